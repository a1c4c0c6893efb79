//! The error line: what went wrong, in the visitor's words, and Retry where retrying can help.

use leptos::prelude::*;

use super::state::Chat;
use crate::client::ApiError;
use crate::i18n::Text;

#[component]
pub(super) fn ErrorLine(chat: Chat) -> impl IntoView {
    let t = chat.t;
    move || {
        chat.error.get().map(|e| {
            let retryable = e.retryable();
            view! {
                <div class="error" role="alert">
                    <p>{error_text(t, &e)}</p>
                    {retryable
                        .then(|| {
                            view! {
                                <button type="button" class="retry" on:click=move |_| chat.retry()>
                                    {t.retry}
                                </button>
                            }
                        })}
                </div>
            }
        })
    }
}

fn error_text(t: &Text, error: &ApiError) -> String {
    match error {
        ApiError::Offline => t.err_offline.to_owned(),
        ApiError::RateLimited(secs) => t.rate_limited(*secs),
        ApiError::Unavailable => t.err_unavailable.to_owned(),
        ApiError::NoApiKey => t.err_no_api_key.to_owned(),
        ApiError::OriginNotAllowed => t.err_origin.to_owned(),
        ApiError::UnknownBot => t.err_unknown_bot.to_owned(),
        ApiError::TooLarge => t.err_too_large.to_owned(),
        ApiError::Rejected => t.err_rejected.to_owned(),
        ApiError::Interrupted => t.interrupted.to_owned(),
        ApiError::Auth | ApiError::Other => t.err_generic.to_owned(),
    }
}
