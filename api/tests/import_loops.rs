//! No import loops between the files of `api/src`: the folder layout is a picture of the
//! layers only if every arrow points one way (handlers → state → storage, never back).
//!
//! A file imports another when its code names a path that resolves into the other file:
//! `crate::a::b`, `super::x`, `self::x`, a child declared with `mod x;`, or a module alias
//! brought in by `use` (`use crate::storage;` then `storage::Store`). A path is charged to
//! the deepest module that is a file (`a/b.rs` or `a/b/mod.rs`), so importing a re-export
//! from `a/mod.rs` is an arrow to `a/mod.rs`. Paths inside macro calls count too;
//! `#[cfg(test)]` modules do not, since a unit test's imports do not shape the layers.
//!
//! `cargo test -p parlo --test import_loops -- --nocapture` prints the loops (strongly
//! connected components of more than one file) with the arrows inside each.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// Loops that exist and are someone else's to break, each as its sorted list of files.
/// A listed loop that disappears fails the test too, so this list stays true.
const KNOWN_LOOPS: &[&[&str]] = &[];

type Module = Vec<String>;

/// What one file names: raw paths (each with the module it was written in, which differs
/// from the file's own inside an inline `mod`), its `use` aliases and its `mod x;` children.
#[derive(Default)]
struct Names {
    inline: Vec<String>,
    paths: Vec<(Vec<String>, Vec<String>)>,
    uses: Vec<(Vec<String>, Vec<String>, String)>,
    children: BTreeSet<String>,
}

impl Names {
    fn push_path(&mut self, segments: Vec<String>) {
        if segments.len() > 1 {
            self.paths.push((self.inline.clone(), segments));
        }
    }

    fn push_tokens(&mut self, tokens: TokenStream) {
        // `a :: b :: c` sequences inside a macro call's tokens.
        let mut current: Vec<String> = Vec::new();
        let mut colons = 0;
        for token in tokens {
            match token {
                TokenTree::Ident(ident) if current.is_empty() || colons == 2 => {
                    current.push(ident.to_string());
                    colons = 0;
                }
                TokenTree::Punct(p) if p.as_char() == ':' && !current.is_empty() && colons < 2 => {
                    colons += 1;
                }
                other => {
                    self.push_path(std::mem::take(&mut current));
                    colons = 0;
                    match other {
                        TokenTree::Group(group) => self.push_tokens(group.stream()),
                        TokenTree::Ident(ident) => current.push(ident.to_string()),
                        _ => {}
                    }
                }
            }
        }
        self.push_path(current);
    }

    fn push_use(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.push_use(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.push_use_leaf(prefix, &n.ident.to_string(), None),
            syn::UseTree::Rename(r) => {
                self.push_use_leaf(prefix, &r.ident.to_string(), Some(r.rename.to_string()))
            }
            syn::UseTree::Glob(_) => {
                self.uses
                    .push((self.inline.clone(), prefix.clone(), "*".to_owned()))
            }
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    self.push_use(prefix, tree);
                }
            }
        }
    }

    fn push_use_leaf(&mut self, prefix: &[String], name: &str, rename: Option<String>) {
        let mut path = prefix.to_vec();
        if name != "self" {
            path.push(name.to_owned());
        }
        let bound = rename.unwrap_or_else(|| path.last().cloned().unwrap_or_default());
        self.uses.push((self.inline.clone(), path, bound));
    }
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.meta
                .require_list()
                .is_ok_and(|l| l.tokens.to_string() == "test")
    })
}

impl<'ast> Visit<'ast> for Names {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if is_test_only(&m.attrs) {
            return;
        }
        match &m.content {
            None => {
                self.children.insert(m.ident.to_string());
            }
            Some((_, items)) => {
                self.inline.push(m.ident.to_string());
                for item in items {
                    self.visit_item(item);
                }
                self.inline.pop();
            }
        }
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if !is_test_only(&f.attrs) {
            syn::visit::visit_item_fn(self, f);
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.push_use(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        self.push_path(p.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.visit_path(&m.path);
        self.push_tokens(m.tokens.clone());
    }
}

/// `a/b.rs` → `[a, b]`, `a/mod.rs` → `[a]`, `lib.rs` → `[]`.
fn module_of(relative: &Path) -> Module {
    let mut parts: Module = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reading api/src") {
        let path = entry.expect("reading api/src").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Arrows between the files of `src` (the binary's `main.rs` is another crate).
fn import_graph(src: &Path) -> (BTreeMap<Module, String>, BTreeMap<Module, BTreeSet<Module>>) {
    let mut paths = Vec::new();
    rust_files(src, &mut paths);
    let files: BTreeMap<Module, String> = paths
        .iter()
        .map(|p| p.strip_prefix(src).unwrap().to_path_buf())
        .filter(|p| p != Path::new("main.rs"))
        .map(|p| (module_of(&p), p.to_string_lossy().into_owned()))
        .collect();
    let deepest_file = |target: &[String]| {
        (0..=target.len())
            .rev()
            .map(|k| target[..k].to_vec())
            .find(|m| files.contains_key(m))
    };

    let mut edges = BTreeMap::new();
    for (module, file) in &files {
        let text = std::fs::read_to_string(src.join(file)).unwrap();
        let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("parsing {file}: {e}"));
        let mut names = Names::default();
        names.visit_file(&ast);

        let mut aliases: BTreeMap<String, Module> = BTreeMap::new();
        let absolute = |aliases: &BTreeMap<String, Module>, inline: &[String], path: &[String]| {
            let mut here: Module = module.iter().chain(inline).cloned().collect();
            let (first, rest) = path.split_first()?;
            match first.as_str() {
                "crate" => here.clear(),
                "self" => {}
                "super" => {
                    here.pop();
                    let mut rest = rest;
                    while rest.first().is_some_and(|s| s == "super") {
                        here.pop();
                        rest = &rest[1..];
                    }
                    return Some(here.into_iter().chain(rest.iter().cloned()).collect());
                }
                name if inline.is_empty() && aliases.contains_key(name) => {
                    here = aliases[name].clone()
                }
                name if inline.is_empty() && names.children.contains(name) => {
                    here.push(name.to_owned())
                }
                _ => return None,
            }
            Some(
                here.into_iter()
                    .chain(rest.iter().cloned())
                    .collect::<Module>(),
            )
        };

        let mut targets = BTreeSet::new();
        for (inline, path, bound) in &names.uses {
            let Some(target) = absolute(&aliases, inline, path) else {
                continue;
            };
            if bound != "*" && inline.is_empty() && files.contains_key(&target) {
                aliases.insert(bound.clone(), target.clone());
            }
            targets.extend(deepest_file(&target));
        }
        for (inline, path) in &names.paths {
            if let Some(target) = absolute(&aliases, inline, path) {
                targets.extend(deepest_file(&target));
            }
        }
        targets.remove(module);
        edges.insert(module.clone(), targets);
    }
    (files, edges)
}

/// Tarjan's strongly connected components.
fn components(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct Tarjan<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        found: Vec<Vec<Module>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a Module) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            for w in &self.edges[v] {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.stack.contains(&w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let at = self.stack.iter().rposition(|m| *m == v).unwrap();
                let component = self.stack.split_off(at).into_iter().cloned().collect();
                self.found.push(component);
            }
        }
    }
    let mut t = Tarjan {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.found
}

#[test]
fn api_src_has_no_import_loops() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (files, edges) = import_graph(&src);
    let mut components: Vec<Vec<Module>> = components(&edges)
        .into_iter()
        .filter(|c| c.len() > 1)
        .collect();
    components.sort_by_key(|c| std::cmp::Reverse(c.len()));
    let mut loops: Vec<Vec<String>> = Vec::new();
    let mut report = String::new();
    for component in components {
        let mut names: Vec<String> = component.iter().map(|m| files[m].clone()).collect();
        names.sort();
        report += &format!("- loop of {} files: {}\n", names.len(), names.join(", "));
        let inside: BTreeSet<&Module> = component.iter().collect();
        let mut arrows: Vec<String> = component
            .iter()
            .map(|m| {
                let to: Vec<&str> = edges[m]
                    .iter()
                    .filter(|t| inside.contains(t))
                    .map(|t| files[t].as_str())
                    .collect();
                format!("    {} -> {}\n", files[m], to.join(", "))
            })
            .collect();
        arrows.sort();
        report.extend(arrows);
        loops.push(names);
    }
    let arrows: usize = edges.values().map(BTreeSet::len).sum();
    println!(
        "{} files, {arrows} import arrows, {} import loop(s), {} files in loops\n{report}",
        files.len(),
        loops.len(),
        loops.iter().map(Vec::len).sum::<usize>(),
    );

    let known: Vec<Vec<String>> = KNOWN_LOOPS
        .iter()
        .map(|l| l.iter().map(|s| (*s).to_owned()).collect())
        .collect();
    let new: Vec<&Vec<String>> = loops.iter().filter(|l| !known.contains(l)).collect();
    assert!(
        new.is_empty(),
        "new import loop(s) in api/src: {new:?}\n{report}Break them: make the arrows point one way \
         (move what both sides need into a module below them)."
    );
    let gone: Vec<&Vec<String>> = known.iter().filter(|k| !loops.contains(k)).collect();
    assert!(
        gone.is_empty(),
        "these known loops are gone, remove them from KNOWN_LOOPS: {gone:?}"
    );
}

#[test]
fn a_loop_between_two_files_is_found() {
    // The detector itself must be able to fail: two files naming each other form a loop,
    // through a `use`, a `super::` path and a module alias.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod a;\npub mod b;\npub mod c;\n").unwrap();
    std::fs::write(src.join("a/mod.rs"), "mod x;\npub fn f() { x::g() }\n").unwrap();
    std::fs::write(src.join("a/x.rs"), "pub fn g() { super::super::b::h() }\n").unwrap();
    std::fs::write(
        src.join("b.rs"),
        "use crate::c;\npub fn h() { c::i() }\n#[cfg(test)]\nmod tests { use crate::a::f; }\n",
    )
    .unwrap();
    std::fs::write(
        src.join("c.rs"),
        "use crate::a::{self as aa};\npub fn i() { aa::f() }\n",
    )
    .unwrap();
    let (files, edges) = import_graph(src);
    let loops: Vec<BTreeSet<&str>> = components(&edges)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| c.iter().map(|m| files[m].as_str()).collect())
        .collect();
    assert_eq!(
        loops,
        vec![BTreeSet::from(["a/mod.rs", "a/x.rs", "b.rs", "c.rs"])]
    );

    // Without the alias arrow from c back to a, nothing loops (the test-only import of
    // `b.rs` does not count).
    std::fs::write(src.join("c.rs"), "pub fn i() {}\n").unwrap();
    let (_, edges) = import_graph(src);
    assert!(components(&edges).iter().all(|c| c.len() == 1));
}
