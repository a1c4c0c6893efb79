//! CORS and origins of the widget API. Preflights are answered for any well-formed origin
//! (they grant nothing: no credentials are ever allowed). An Origin that is present but
//! `null` (sandboxed iframes, `data:` and `file:` pages, some redirects) or unparseable is
//! never treated as absent: it gets no CORS headers and every endpoint refuses it. A session
//! is only issued to an origin the bot allows — Parlo's own origin is no exemption: the
//! dashboard preview gets its token from the signed-in site (`site/bots.rs`). That refusal
//! itself is readable so the widget can say "not enabled on this website". A token used
//! from an origin other than its own gets a 403 the page cannot read ([`origin_refused`]).

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::AppError;
use crate::state::AppState;

/// Marks a response whose origin was refused: it must not carry CORS headers.
#[derive(Clone, Copy, Debug)]
pub struct OriginRefused;

/// The request's `Origin` header, as the widget API sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOrigin {
    /// No header: a same-origin GET, or a client that is not a browser.
    Absent,
    /// A well-formed origin, normalised like an allowed origin.
    Valid(String),
    /// Present but `null` or unparseable: refused everywhere, never treated as absent.
    Invalid,
}

/// The request's Origin header, classified.
pub fn request_origin(headers: &HeaderMap) -> RequestOrigin {
    let Some(raw) = headers.get(header::ORIGIN) else {
        return RequestOrigin::Absent;
    };
    raw.to_str()
        .ok()
        .and_then(|raw| crate::model::AllowedOrigin::parse(raw).ok())
        .map_or(RequestOrigin::Invalid, |o| {
            RequestOrigin::Valid(o.as_str().to_owned())
        })
}

pub async fn cors(req: Request, next: Next) -> Response {
    // Only a well-formed origin is ever echoed: never `null`, never garbage.
    let origin = match request_origin(req.headers()) {
        RequestOrigin::Valid(_) => req.headers().get(header::ORIGIN).cloned(),
        RequestOrigin::Absent | RequestOrigin::Invalid => None,
    };
    if req.method() == Method::OPTIONS {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        if let Some(origin) = origin {
            let h = resp.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, PUT, DELETE"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
            h.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
        return resp;
    }
    let mut resp = next.run(req).await;
    if let Some(origin) = origin
        && resp.extensions().get::<OriginRefused>().is_none()
    {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("retry-after"),
        );
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
}

/// A 403 without CORS headers: the page that sent the request cannot read it.
pub fn origin_refused(code: &'static str, message: String) -> Response {
    let mut resp = AppError::Forbidden(code, message).into_response();
    resp.extensions_mut().insert(OriginRefused);
    resp
}

/// The refusal of a present but `null` or unparseable Origin, on every endpoint.
pub fn invalid_origin() -> Response {
    origin_refused(
        "origin_invalid",
        "The request's Origin is null or malformed; the chat only runs on a website that \
         sends its own origin (not in a sandboxed frame)."
            .into(),
    )
}

/// The public URL's own origin: the dashboard preview's, whose tokens only the signed-in
/// site issues.
pub fn own_origin(state: &AppState) -> String {
    state.config.public_url.origin().ascii_serialization()
}
