//! The widget API's OpenAPI 3.1 document, generated from the handlers' annotations and the
//! router they are registered on (`utoipa` + `utoipa-axum`), so the published contract
//! cannot drift from the code. Served at `/api/widget/v1/openapi.json`;
//! `tests/tests/openapi.rs` validates real responses of every endpoint against it.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Parlo widget API",
        description = "What the Parlo widget (or anyone embedding Parlo) talks to. Claims, not \
                       URLs: every endpoint after `POST /session` takes workspace, bot and \
                       conversation from the session token. See docs/widget-api.md.",
        license(name = "AGPL-3.0-only", identifier = "AGPL-3.0-only")
    ),
    tags((name = "widget", description = "Sessions, messages and attachments")),
    modifiers(&SessionToken)
)]
pub struct WidgetApi;

struct SessionToken;

impl Modify for SessionToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("pw1.<kid>.<claims>.<mac>")
                    .description(Some("The token `POST /api/widget/v1/session` returned"))
                    .build(),
            ),
        );
    }
}

/// The document as JSON (built once, when the router is).
pub fn serve(
    doc: &utoipa::openapi::OpenApi,
) -> impl Fn() -> std::future::Ready<Response> + Clone + use<> {
    let body = doc
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    move || {
        let mut resp = (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body.clone(),
        )
            .into_response();
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        );
        resp.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        std::future::ready(resp)
    }
}
