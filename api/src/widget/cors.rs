//! CORS and origins of the widget API. Preflights are answered for any origin (they grant
//! nothing: no credentials are ever allowed). A session is only issued to an origin the bot
//! allows; that refusal itself is readable so the widget can say "not enabled on this
//! website". A token used from an origin other than its own gets a 403 the page cannot read
//! ([`origin_refused`]).

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::AppError;
use crate::state::AppState;

/// Marks a response whose origin was refused: it must not carry CORS headers.
#[derive(Clone, Copy, Debug)]
pub struct OriginRefused;

pub async fn cors(req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    if req.method() == Method::OPTIONS {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        if let Some(origin) = origin {
            let h = resp.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, DELETE"),
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

/// The request's Origin, normalised like an allowed origin.
pub fn request_origin(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(header::ORIGIN)?.to_str().ok()?;
    crate::model::AllowedOrigin::parse(raw)
        .ok()
        .map(|o| o.as_str().to_owned())
}

/// The public URL's own origin (the preview page on Parlo itself is always allowed).
pub fn own_origin(state: &AppState) -> String {
    state.config.public_url.origin().ascii_serialization()
}
