//! Server-side HTTP(S) fetching of web pages, sitemaps and the GitHub API, safe against
//! SSRF. It owns the whole path from a URL a tenant typed to the bytes we keep: URL checks
//! ([`policy`]), a resolver that refuses a name if *any* of its addresses is refused and hands
//! reqwest only the vetted ones (one resolution, so no DNS rebinding between check and
//! connect), redirects followed here and re-vetted hop by hop, size and time caps, and
//! robots.txt ([`robots`]). It must never connect before vetting, never widen its rules
//! from tenant input, and never put a credential or a response body in an error.

mod fetcher;
pub mod policy;
pub mod robots;

#[cfg(test)]
pub(crate) mod tests;

pub use fetcher::*;
pub use policy::{AddressClass, AllowList};
