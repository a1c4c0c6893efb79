//! HTTP plumbing below every area: the layers every response goes through (request id,
//! tracing without secrets: spans name the matched route template, never the path, body limits, security headers, panic safety), the client's IP
//! for rate limits, and the health probes. The areas (`widget`, `site`) may use it; it never
//! imports an area — `app` assembles the areas' routers and wraps them here.

pub mod client_ip;
mod headers;
pub mod health;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::{HeaderName, Request, header};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::sensitive_headers::SetSensitiveHeadersLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::config::Config;

use headers::HeaderPolicy;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What a request span says about the URL: the route template that matched
/// (`/invite/{token}`), never the path itself, which may carry a credential (invitation
/// links, and every future tokenised link); no query string, no header. A request no route
/// matched is logged as `<unmatched>`.
pub fn route_of<B>(req: &Request<B>) -> &str {
    req.extensions()
        .get::<MatchedPath>()
        .map_or("<unmatched>", MatchedPath::as_str)
}

/// Wraps the assembled application in the layers every response goes through.
pub fn layers(app: Router, config: &Config) -> Router {
    let policy = HeaderPolicy::from_config(config);
    app.layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            policy,
            headers::security_headers,
        ))
        .layer(
            ServiceBuilder::new()
                .layer(SetSensitiveHeadersLayer::new([
                    header::AUTHORIZATION,
                    header::PROXY_AUTHORIZATION,
                    header::COOKIE,
                    header::SET_COOKIE,
                ]))
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|req: &Request<_>| {
                            let id = req
                                .extensions()
                                .get::<RequestId>()
                                .and_then(|id| id.header_value().to_str().ok())
                                .unwrap_or("-");
                            tracing::info_span!(
                                "request",
                                method = %req.method(),
                                route = route_of(req),
                                request_id = %id,
                            )
                        })
                        .on_request(())
                        .on_response(DefaultOnResponse::new().level(Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(CatchPanicLayer::custom(headers::panic_response)),
        )
}
