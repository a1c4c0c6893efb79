//! Rendering pages and page errors. Errors on the site are HTML pages with the right status;
//! causes are logged, never shown. A workspace the user does not belong to is a plain 404,
//! the same page as a workspace that does not exist.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use parlo_site::{Chrome, ErrorPage, Template};

use crate::model::Timestamp;
use crate::storage::{StoreError, StoreErrorKind};

/// Renders a template as a page (the security headers layer adds the page CSP).
pub fn render<T: Template>(page: &T) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => PageError::Internal(anyhow::anyhow!("rendering a template: {e}")).into_response(),
    }
}

/// Renders a template with a status other than 200 (a form that comes back with an error).
pub fn render_status<T: Template>(status: StatusCode, page: &T) -> Response {
    let mut resp = render(page);
    if resp.status() == StatusCode::OK {
        *resp.status_mut() = status;
    }
    resp
}

/// After a successful POST: back to a page with a GET (no resubmission on reload).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Not signed in (or the session is gone): go to this page.
    #[error("redirect to {0}")]
    Redirect(String),
    #[error("not found")]
    NotFound,
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("the form expired or did not come from this site")]
    Csrf,
    #[error("rate limited for {0} s")]
    RateLimited(u64),
    #[error("{0}")]
    BadRequest(String),
    /// A sentence to show, e.g. "Email already registered." (see `StoreError::kind`).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type PageResult<T = Response> = Result<T, PageError>;

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        match e.kind() {
            StoreErrorKind::NotFound => PageError::NotFound,
            StoreErrorKind::Conflict(sentence) => PageError::Conflict(sentence),
            StoreErrorKind::Internal(cause) => PageError::Internal(cause),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, heading, message) = match &self {
            PageError::Redirect(to) => return see_other(to),
            PageError::NotFound => (
                StatusCode::NOT_FOUND,
                "Page not found",
                "There is nothing here, or you do not have access to it.".to_owned(),
            ),
            PageError::Forbidden(why) => (
                StatusCode::FORBIDDEN,
                "Not allowed",
                format!("Your role in this workspace does not allow this: {why}"),
            ),
            PageError::Csrf => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form expired or was not sent from this site. Go back, reload the page and try again."
                    .to_owned(),
            ),
            PageError::RateLimited(secs) => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                format!("Too many attempts. Try again in {} minutes.", secs.div_ceil(60).max(1)),
            ),
            PageError::BadRequest(m) => (StatusCode::BAD_REQUEST, "That did not work", m.clone()),
            PageError::Conflict(m) => (StatusCode::CONFLICT, "That did not work", m.clone()),
            PageError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error on a page");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "Something went wrong on our side. Please try again later.".to_owned(),
                )
            }
        };
        let page = ErrorPage {
            chrome: Chrome::new(heading),
            heading: heading.to_owned(),
            message,
        };
        let body = page
            .render()
            .unwrap_or_else(|_| "<!doctype html><title>Error</title><p>Error</p>".to_owned());
        let mut resp = (status, Html(body)).into_response();
        if let PageError::RateLimited(secs) = self {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// `2025-03-01 14:05 UTC`: what pages show for a timestamp.
pub fn when(t: Timestamp) -> String {
    let iso = t.to_rfc3339();
    match (iso.get(..10), iso.get(11..16)) {
        (Some(d), Some(hm)) => format!("{d} {hm} UTC"),
        _ => iso,
    }
}
