#!/usr/bin/env bash
# Publishes the widget: one command from source to an immutable bundle in dist/.
#
#   widget/publish.sh
#
# Builds the main module (parlo-widget: UI, API client), the markdown module
# (parlo-markdown: markdown + sanitiser) and the math module (parlo-math: KaTeX) for wasm32 with the size-first `wasm-release` profile, runs wasm-bindgen (the exact
# version the crates pin; installed if missing) and wasm-opt -Oz (when available), then
# runs `parlo-publish`, which bakes hashes into the loader, precompresses every file and
# records the release in dist/manifest.json. Refuses to overwrite a published version.
#
# Environment:
#   PARLO_WASM_TARGET_DIR  cargo target dir for the wasm builds (default: target/wasm)
#   CARGO_TARGET_DIR       cargo target dir for the native publish tool (cargo's default)
#   CARGO_WASM             the cargo-wasm script used when rustup has no wasm32 target
#                          (default: ../shared/toolchain/cargo-wasm next to the repository)
#   WASM_OPT               a wasm-opt binary (default: on PATH, else npm's binaryen under
#                          target/tools, installed there when npm is available)
#   PARLO_PUBLISH_DIST     where to publish (default: dist). Point it at a copy of dist/ to
#                          try a build in the browser tests (PARLO_TEST_DIST) without
#                          publishing it.
set -euo pipefail

root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
cd "$root"
dist=${PARLO_PUBLISH_DIST:-dist}

version=$(sed -n 's/^version = "\([^"]*\)"$/\1/p' widget/app/Cargo.toml | head -n1)
[ -n "$version" ] || { echo "publish: no version in widget/app/Cargo.toml" >&2; exit 1; }
if [ -e "$dist/widget/v$version" ] || grep -q "\"$version\": {" "$dist/manifest.json" 2>/dev/null; then
  echo "publish: widget v$version is already published ($dist/widget/v$version)." >&2
  echo "publish: published bundles never change; bump version in widget/app/Cargo.toml." >&2
  exit 1
fi
vid="v${version//./_}"
# The lazily loaded modules are published with the widget and carry its version.
for toml in widget/markdown/Cargo.toml widget/math/Cargo.toml; do
  module_version=$(sed -n 's/^version = "\([^"]*\)"$/\1/p' "$toml" | head -n1)
  [ "$module_version" = "$version" ] || {
    echo "publish: $toml has version $module_version, widget/app has $version" >&2
    exit 1
  }
done

# wasm-bindgen's CLI must match the wasm-bindgen crate exactly.
bindgen_version=$(sed -n 's/^wasm-bindgen = "=\(.*\)"$/\1/p' widget/app/Cargo.toml)
[ -n "$bindgen_version" ] || { echo "publish: widget/app must pin wasm-bindgen with =" >&2; exit 1; }
if ! wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $bindgen_version"; then
  echo "publish: installing wasm-bindgen-cli $bindgen_version" >&2
  cargo install wasm-bindgen-cli --version "$bindgen_version" --locked ||
    cargo install wasm-bindgen-cli --version "$bindgen_version"
fi

# Plain cargo where rustup has the wasm32 target, else the build-std toolchain script.
if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  wasm_cargo=(cargo)
else
  wasm_cargo=("${CARGO_WASM:-$root/../shared/toolchain/cargo-wasm}")
  [ -x "${wasm_cargo[0]}" ] || {
    echo "publish: no wasm32 target in rustup and no cargo-wasm at ${wasm_cargo[0]}" >&2
    echo "publish: run 'rustup target add wasm32-unknown-unknown' or set CARGO_WASM" >&2
    exit 1
  }
fi
wasm_target_dir=${PARLO_WASM_TARGET_DIR:-$root/target/wasm}

staging=$(mktemp -d)
cp Cargo.lock "$staging/Cargo.lock.workspace"
trap 'cp "$staging/Cargo.lock.workspace" Cargo.lock; rm -rf "$staging"' EXIT

# The sanitiser parses link URLs with the url crate, whose IDNA backend (ICU4X, via
# idna_adapter 1.2) links large Unicode tables. For the widget only, the build selects
# idna_adapter 1.0.0 (hosts must be ASCII or punycode; a link to a raw Unicode host loses
# its href in the widget) in a temporary lock file; the workspace's lock is restored after.
# PARLO_WIDGET_IDNA=unicode keeps the workspace's choice.
if [ "${PARLO_WIDGET_IDNA:-ascii}" = ascii ]; then
  cargo update --quiet -p idna_adapter --precise 1.0.0
fi

# One build per module, not one shared build: a shared build would unify parlo-render's
# features and link KaTeX into the markdown module.
for crate in parlo-widget parlo-markdown parlo-math; do
  echo "publish: building $crate (wasm-release)" >&2
  CARGO_TARGET_DIR=$wasm_target_dir "${wasm_cargo[@]}" build --locked -p "$crate" \
    --profile wasm-release --target wasm32-unknown-unknown
done
cp "$staging/Cargo.lock.workspace" Cargo.lock
for module in parlo_widget parlo_markdown parlo_math; do
  wasm-bindgen --target no-modules --no-modules-global "${module}_$vid" --no-typescript \
    --out-dir "$staging" "$wasm_target_dir/wasm32-unknown-unknown/wasm-release/$module.wasm"
done

wasm_opt=${WASM_OPT:-}
if [ -z "$wasm_opt" ]; then
  if command -v wasm-opt >/dev/null 2>&1; then
    wasm_opt=$(command -v wasm-opt)
  else
    tools="$root/target/tools"
    if [ ! -x "$tools/node_modules/.bin/wasm-opt" ] && command -v npm >/dev/null 2>&1; then
      echo "publish: installing binaryen (wasm-opt) with npm into $tools" >&2
      npm install --silent --no-audit --no-fund --prefix "$tools" binaryen >&2 || true
    fi
    [ -x "$tools/node_modules/.bin/wasm-opt" ] && wasm_opt="$tools/node_modules/.bin/wasm-opt"
  fi
fi
if [ -n "$wasm_opt" ]; then
  for wasm in "$staging"/*_bg.wasm; do
    # The features Rust enables by default for wasm32-unknown-unknown.
    "$wasm_opt" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
      --enable-mutable-globals --enable-reference-types --enable-multivalue \
      -o "$wasm.opt" "$wasm"
    mv "$wasm.opt" "$wasm"
  done
else
  echo "publish: notice: wasm-opt not found; publishing without it (bigger .wasm files)" >&2
fi

cargo run --quiet --locked --release -p parlo-publish -- \
  --version "$version" --staging "$staging" --loader widget/loader/widget.js --dist "$dist"
