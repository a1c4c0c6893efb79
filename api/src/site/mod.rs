//! The customer site: accounts (sign-up with a confirmed address, login with optional TOTP,
//! password reset and e-mail change by mailed links, sessions), workspaces
//! and roles, bots, the BYOK key, embed snippets, chat logs, and the public trust and
//! signed-in legal pages. Pages are rendered by `parlo-site`; this module decides who may
//! see and change what. See docs/site.md.
//!
//! Rules every handler here follows:
//! - a state change is a POST whose last extractor is [`csrf::CsrfForm`];
//! - a workspace page takes [`workspace::Member`], [`workspace::Manager`] or
//!   [`workspace::Owner`], so the role check cannot be forgotten; non-members get 404;
//! - secrets (passwords, codes, keys, cookies) never reach a log line or the audit log.

mod account;
mod auth;
mod bots;
mod cookies;
pub mod csrf;
mod invite;
mod limits;
mod links;
mod logs;
mod mail_links;
mod members;
pub mod mfa;
mod page;
pub mod password;
mod provider_keys;
pub mod session;
mod settings;
mod trust;
mod workspace;
mod workspace_audit;

use axum::Router;

use crate::state::AppState;

pub use bots::MODELS;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(auth::router())
        .merge(invite::router())
        .merge(mail_links::router())
        .merge(account::router())
        .merge(bots::router())
        .merge(provider_keys::router())
        .merge(members::router())
        .merge(logs::router())
        .merge(settings::router())
        .merge(trust::router())
}
