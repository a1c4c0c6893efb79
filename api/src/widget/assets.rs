//! Serves the published widget bundles (no WASM toolchain needed at run time) from
//! `crate::dist`: built into the binary, or `PARLO_DIST_DIR`:
//! - `/widget.js`: the newest version's loader (short cache: it rolls forward);
//! - `/widget/vX.Y.Z.js`: a pinned loader, `/widget/vX.Y.Z/<file>`: its files (immutable);
//! - `/widget/versions.json`: the manifest with every file's SHA-384.
//!
//! Only files listed in the manifest are served (no path is ever built from unchecked
//! input). CORS is open (`*`, no credentials): `<script integrity crossorigin>` and
//! `fetch(…, {integrity})` from customers' pages need it. A precompressed `.br`/`.gz`
//! sibling is sent when the client accepts it. From `PARLO_DIST_DIR`, files are read per
//! request, so what is on disk is what is served — the browser's SRI check is the last word
//! on integrity.

use std::borrow::Cow;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use parlo_publish::{LOADER_FILE as LOADER, Manifest, content_type};

use crate::dist::Dist;
use crate::state::AppState;

const ROLLING_CACHE: &str = "public, max-age=300";
const IMMUTABLE_CACHE: &str = "public, max-age=31536000, immutable";

#[derive(Clone)]
pub struct Bundles {
    dist: Dist,
    manifest: Option<Arc<Manifest>>,
}

impl Bundles {
    pub fn load(dist: Dist) -> Self {
        let manifest = match dist.load_manifest() {
            Ok(m) => Some(Arc::new(m)),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "no widget is served; /widget.js will answer 404");
                None
            }
        };
        Self { dist, manifest }
    }

    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_deref()
    }
}

pub fn router(state: &AppState) -> Router<AppState> {
    let bundles = Bundles::load(state.dist.clone());
    Router::new()
        .route("/widget.js", get(rolling_loader))
        .route("/widget/versions.json", get(versions))
        .route("/widget/{file}", get(pinned_loader))
        .route("/widget/{version}/{file}", get(bundle_file))
        .with_state(bundles)
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not a published widget file\n").into_response()
}

async fn rolling_loader(State(b): State<Bundles>, headers: HeaderMap) -> Response {
    let Some(m) = b.manifest() else {
        return not_found();
    };
    serve(&b, &m.latest, LOADER, &headers, ROLLING_CACHE).await
}

async fn versions(State(b): State<Bundles>) -> Response {
    match b.dist.read("manifest.json").await {
        Some(bytes) if b.manifest.is_some() => {
            with_headers(bytes, "application/json", None, "public, max-age=60")
        }
        _ => not_found(),
    }
}

async fn pinned_loader(
    State(b): State<Bundles>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(version) = file.strip_prefix('v').and_then(|f| f.strip_suffix(".js")) else {
        return not_found();
    };
    serve(&b, version, LOADER, &headers, IMMUTABLE_CACHE).await
}

async fn bundle_file(
    State(b): State<Bundles>,
    Path((version, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(version) = version.strip_prefix('v') else {
        return not_found();
    };
    serve(&b, version, &file, &headers, IMMUTABLE_CACHE).await
}

async fn serve(
    b: &Bundles,
    version: &str,
    file: &str,
    headers: &HeaderMap,
    cache: &'static str,
) -> Response {
    let listed = b.manifest().and_then(|m| m.file(version, file)).is_some();
    if !listed {
        return not_found();
    }
    // Both names come from the manifest's keys, never from the request as such.
    let path = format!("widget/v{version}/{file}");
    let accepts = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let content_type = content_type(file);
    for (enc, ext) in [("br", "br"), ("gzip", "gz")] {
        if accepts_encoding(accepts, enc)
            && let Some(bytes) = b.dist.read(&format!("{path}.{ext}")).await
        {
            return with_headers(bytes, content_type, Some(enc), cache);
        }
    }
    match b.dist.read(&path).await {
        Some(bytes) => with_headers(bytes, content_type, None, cache),
        None => {
            tracing::error!(path = %path, dist = %b.dist.describe(), "a published widget file is missing");
            not_found()
        }
    }
}

fn accepts_encoding(header: &str, enc: &str) -> bool {
    header.split(',').any(|part| {
        let mut it = part.trim().split(';');
        let name = it.next().unwrap_or("").trim();
        let q_zero = it.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
        name.eq_ignore_ascii_case(enc) && !q_zero
    })
}

fn with_headers(
    bytes: Cow<'static, [u8]>,
    content_type: &'static str,
    encoding: Option<&'static str>,
    cache: &'static str,
) -> Response {
    let mut resp = match bytes {
        Cow::Borrowed(b) => b.into_response(),
        Cow::Owned(v) => v.into_response(),
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(enc) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(enc));
    }
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("cross-origin"),
    );
    // Public files: the host page's own Resource Timing may see their sizes and timings.
    h.insert("timing-allow-origin", HeaderValue::from_static("*"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_negotiation_respects_q_zero() {
        assert!(accepts_encoding("gzip, deflate, br", "br"));
        assert!(accepts_encoding("br;q=0.5", "br"));
        assert!(!accepts_encoding("br;q=0, gzip", "br"));
        assert!(!accepts_encoding("identity", "gzip"));
    }
}
