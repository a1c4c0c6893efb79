//! Links in mail: absolute URLs on `PARLO_PUBLIC_URL`, and single-use account tokens (256
//! random bits, only their SHA-256 stored) behind them. Shared by sign-up and login
//! (`auth.rs`), the pages links open (`mail_links.rs`) and the account page.

use crate::crypto;
use crate::mail::Mail;
use crate::model::{Email, Timestamp, TokenPurpose, User};
use crate::state::AppState;
use crate::storage::StoreError;

use super::page::{PageError, PageResult};

/// An absolute link on this server (links in mail use `PARLO_PUBLIC_URL`).
pub fn public_link(state: &AppState, path: &str) -> String {
    format!(
        "{}{path}",
        state.config.public_url.as_str().trim_end_matches('/')
    )
}

/// Creates a single-use token for `user` and returns the link carrying it.
pub async fn issue_link(
    state: &AppState,
    user: &User,
    purpose: TokenPurpose,
    new_email: Option<&Email>,
    path: &str,
) -> Result<String, StoreError> {
    let token = crypto::random_token("");
    state
        .store
        .create_account_token(
            user.id,
            purpose,
            &crypto::sha256(token.as_bytes()),
            new_email,
            Timestamp::now().plus_secs(purpose.lifetime_secs()),
        )
        .await?;
    Ok(public_link(state, &format!("{path}/{token}")))
}

/// Mails `user` a fresh link confirming their address; an invitation being accepted is
/// carried through.
pub async fn send_verification(state: &AppState, user: &User, invite: &str) -> PageResult<()> {
    let mut link = issue_link(state, user, TokenPurpose::Verify, None, "/verify").await?;
    if !invite.is_empty() {
        link.push_str(&format!("?invite={invite}"));
    }
    state
        .mailer
        .send(&user.email, user.language, &Mail::Verify { link })
        .await
        .map_err(|e| PageError::Internal(e.into()))
}
