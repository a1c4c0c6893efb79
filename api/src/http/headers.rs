//! Security headers on every response. Pages get a strict CSP with `frame-ancestors 'none'`;
//! everything else gets `default-src 'none'`. Widget bundles set their own cross-origin
//! resource policy (they are meant to be embedded); nothing here loosens a header a handler set.

use std::any::Any;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Response, StatusCode, header};
use axum::middleware::Next;

use crate::config::Config;

/// CSP for server-rendered pages: first-party scripts and styles only.
pub const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; font-src 'self'; connect-src 'self'; form-action 'self'; \
     base-uri 'none'; object-src 'none'; frame-ancestors 'none'";
/// CSP for everything that is not a page (JSON, SSE, scripts, wasm).
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

#[derive(Clone, Debug)]
pub struct HeaderPolicy {
    hsts: bool,
}

impl HeaderPolicy {
    pub fn from_config(config: &Config) -> Self {
        Self {
            hsts: config.public_is_https(),
        }
    }
}

pub async fn security_headers(
    State(policy): State<HeaderPolicy>,
    req: Request,
    next: Next,
) -> Response<Body> {
    let mut resp = next.run(req).await;
    let is_html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        let csp = if is_html { PAGE_CSP } else { API_CSP };
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(csp),
        );
    }
    if is_html {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    if !h.contains_key("cross-origin-resource-policy") {
        h.insert(
            "cross-origin-resource-policy",
            HeaderValue::from_static("same-origin"),
        );
    }
    if policy.hsts {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
    }
    resp
}

/// A panic in a handler becomes a plain 500 (the panic message is logged, never sent).
pub fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let detail = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = detail, "handler panicked");
    let mut resp = Response::new(Body::from(
        r#"{"error":{"code":"internal","message":"Something went wrong on our side. Please try again later."}}"#,
    ));
    *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
