//! The customer site over HTTP, as a browser without JavaScript would use it, on both
//! backends: tenant isolation of every workspace route (one table), roles, CSRF, session
//! cookies, login limits, logout, TOTP, invitations, keys, embed snippets, trust pages.
//!
//! One test binary with a module per area (one binary links once; see docs/testing.md).

mod authorization;
mod embed;
mod keys_and_data;
mod logs;
mod members;
mod ratings;
mod sign_in;
mod trust;
mod world;
