//! `parlo-publish`: turns a built widget (wasm-bindgen output in a staging folder) into an
//! immutable, hash-pinned bundle in `dist/widget/vX.Y.Z/` and records it in
//! `dist/manifest.json`.
//!
//! Owns baking the version and every file's SRI hash into the loader, precompressing each
//! file (`.br`, `.gz`), and refusing to overwrite a published version. It never builds WASM
//! itself; `widget/publish.sh` does that and then runs this.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine;
use parlo_publish::{BundleFile, LOADER_FILE, Manifest, Release, Version};
use sha2::{Digest, Sha384};

struct Args {
    version: String,
    staging: PathBuf,
    loader: PathBuf,
    dist: PathBuf,
}

const USAGE: &str = "usage: parlo-publish --version X.Y.Z --staging DIR --loader widget/loader/widget.js --dist dist";

/// The WASM modules a bundle must contain, each as wasm-bindgen's glue `<name>.js` and
/// `<name>_bg.wasm`, with what they are for (in the size table).
const MODULES: [(&str, &str); 3] = [
    ("parlo_widget", "first open"),
    ("parlo_markdown", "markdown module"),
    ("parlo_math", "math module"),
];

/// The files of one module.
fn module_files(module: &str) -> [String; 2] {
    [format!("{module}.js"), format!("{module}_bg.wasm")]
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("parlo-publish: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match publish(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("parlo-publish: {message}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut raw: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut version, mut staging, mut loader, mut dist) = (None, None, None, None);
    while let Some(flag) = raw.next() {
        let value = raw.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--version" => version = Some(value),
            "--staging" => staging = Some(PathBuf::from(value)),
            "--loader" => loader = Some(PathBuf::from(value)),
            "--dist" => dist = Some(PathBuf::from(value)),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        version: version.ok_or("--version is required")?,
        staging: staging.ok_or("--staging is required")?,
        loader: loader.ok_or("--loader is required")?,
        dist: dist.ok_or("--dist is required")?,
    })
}

fn publish(args: &Args) -> Result<(), String> {
    let version = Version::parse(&args.version)
        .ok_or_else(|| format!("{} is not a plain X.Y.Z version", args.version))?;
    let manifest_path = args.dist.join("manifest.json");
    let mut manifest = match fs::read_to_string(&manifest_path) {
        Ok(text) => Manifest::from_json(&text)
            .map_err(|e| format!("{} is not a valid manifest: {e}", manifest_path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest::default(),
        Err(e) => return Err(format!("cannot read {}: {e}", manifest_path.display())),
    };
    let widget_dir = args.dist.join("widget");
    let target = widget_dir.join(format!("v{version}"));
    if manifest.versions.contains_key(&args.version) || target.exists() {
        return Err(format!(
            "widget v{version} is already published ({}); published bundles never change. \
             Bump `version` in widget/app/Cargo.toml to publish again.",
            target.display()
        ));
    }

    let mut contents: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for name in MODULES.iter().flat_map(|(module, _)| module_files(module)) {
        let path = args.staging.join(&name);
        let bytes = fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        contents.insert(name, bytes);
    }
    let hashes: BTreeMap<&str, String> = contents
        .iter()
        .map(|(name, bytes)| (name.as_str(), integrity(bytes)))
        .collect();
    let template = fs::read_to_string(&args.loader)
        .map_err(|e| format!("cannot read {}: {e}", args.loader.display()))?;
    let loader = bake_loader(&template, version, &hashes)?;
    contents.insert(LOADER_FILE.to_owned(), loader.into_bytes());

    // Everything goes to a temporary folder first, so a failure never leaves half a version.
    fs::create_dir_all(&widget_dir)
        .map_err(|e| format!("cannot create {}: {e}", widget_dir.display()))?;
    let staging_out = widget_dir.join(format!(".v{version}.partial"));
    if staging_out.exists() {
        fs::remove_dir_all(&staging_out)
            .map_err(|e| format!("cannot clean {}: {e}", staging_out.display()))?;
    }
    fs::create_dir(&staging_out)
        .map_err(|e| format!("cannot create {}: {e}", staging_out.display()))?;
    let mut files = BTreeMap::new();
    for (name, bytes) in &contents {
        let gz = gzip(bytes)?;
        let br = brotli(bytes)?;
        write(&staging_out.join(name), bytes)?;
        write(&staging_out.join(format!("{name}.gz")), &gz)?;
        write(&staging_out.join(format!("{name}.br")), &br)?;
        files.insert(
            name.clone(),
            BundleFile {
                integrity: integrity(bytes),
                bytes: bytes.len() as u64,
                gzip_bytes: Some(gz.len() as u64),
                brotli_bytes: Some(br.len() as u64),
            },
        );
    }
    fs::rename(&staging_out, &target)
        .map_err(|e| format!("cannot move bundle into {}: {e}", target.display()))?;

    let published_at = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .ok_or("cannot format the publication time")?;
    print_sizes(&files);
    manifest.add(
        &args.version,
        Release {
            published_at,
            files,
        },
    );
    let tmp = args.dist.join(".manifest.json.partial");
    write(&tmp, manifest.to_json().as_bytes())?;
    fs::rename(&tmp, &manifest_path)
        .map_err(|e| format!("cannot write {}: {e}", manifest_path.display()))?;
    println!(
        "published widget v{version} to {} (latest: {})",
        target.display(),
        manifest.latest
    );
    Ok(())
}

/// Fills the loader template and strips its comments and indentation.
fn bake_loader(
    template: &str,
    version: Version,
    hashes: &BTreeMap<&str, String>,
) -> Result<String, String> {
    for placeholder in ["__PARLO_VERSION__", "__PARLO_HASHES__", "__PARLO_VID__"] {
        if !template.contains(placeholder) {
            return Err(format!("the loader template lacks {placeholder}"));
        }
    }
    let hashes_js = format!(
        "{{{}}}",
        hashes
            .iter()
            .map(|(name, hash)| format!("\"{name}\":\"{hash}\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    // Suffix of the wasm-bindgen globals; must match `--no-modules-global` in publish.sh.
    let vid = format!("v{}_{}_{}", version.0, version.1, version.2);
    let baked = template
        .replace("__PARLO_VERSION__", &version.to_string())
        .replace("__PARLO_HASHES__", &hashes_js)
        .replace("__PARLO_VID__", &vid);
    Ok(minify(&baked))
}

/// Drops whole-line `//` comments (except the first, the file's title), indentation and
/// blank lines. Deliberately dumb: it never touches code inside a line.
fn minify(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut kept_title = false;
    for line in source.lines().map(str::trim) {
        if line.is_empty() {
            continue;
        }
        if line.starts_with("//") {
            if kept_title {
                continue;
            }
            kept_title = true;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The SRI form of a file's SHA-384.
fn integrity(bytes: &[u8]) -> String {
    let digest = Sha384::digest(bytes);
    format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).map_err(|e| e.to_string())?;
    encoder.finish().map_err(|e| e.to_string())
}

fn brotli(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    {
        let mut writer = brotli::CompressorWriter::new(&mut out, 4096, 11, 22);
        writer.write_all(bytes).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn print_sizes(files: &BTreeMap<String, BundleFile>) {
    println!(
        "{:<24} {:>10} {:>10} {:>10}",
        "file", "raw", "gzip", "brotli"
    );
    let row =
        |name: &str, f: (u64, u64, u64)| println!("{name:<24} {:>10} {:>10} {:>10}", f.0, f.1, f.2);
    let sizes = |f: &BundleFile| {
        (
            f.bytes,
            f.gzip_bytes.unwrap_or(0),
            f.brotli_bytes.unwrap_or(0),
        )
    };
    for (name, file) in files {
        row(name, sizes(file));
    }
    for (module, what) in MODULES {
        let sum = module_files(module)
            .iter()
            .filter_map(|n| files.get(n))
            .map(sizes)
            .fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
        row(&format!("= {what}"), sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrity_is_sri_sha384_base64() {
        // `printf abc | openssl dgst -sha384 -binary | base64`
        assert_eq!(
            integrity(b"abc"),
            "sha384-ywB1P0WjXou1oD1pmsZQBycsMqsO3tFjGotgWkP/W+2AhgcroefMI1i67KE0yCWn"
        );
    }

    #[test]
    fn loader_is_baked_with_version_and_hashes() {
        let template = "// title\n  // gone\n  var V = \"__PARLO_VERSION__\";\n\n  var H = __PARLO_HASHES__;\n  parlo_widget___PARLO_VID__;\n";
        let hashes = BTreeMap::from([("a.wasm", "sha384-x".to_owned())]);
        let baked = bake_loader(template, Version(1, 2, 3), &hashes).expect("bakes");
        assert_eq!(
            baked,
            "// title\nvar V = \"1.2.3\";\nvar H = {\"a.wasm\":\"sha384-x\"};\nparlo_widget_v1_2_3;\n"
        );
    }

    #[test]
    fn template_without_placeholders_is_refused() {
        assert!(bake_loader("var V = 1;", Version(0, 1, 0), &BTreeMap::new()).is_err());
    }
}
