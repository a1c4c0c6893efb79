//! The widget in headless Chromium, embedded the way customers embed it: a host page on one
//! origin (`http://localhost:<port>`) loads the widget from the Parlo server on another
//! (`http://127.0.0.1:<port>`), which talks to the faithful fake Mistral.
//!
//! The widget lives in a *closed* shadow root, out of reach of WebDriver and page scripts,
//! so every look inside goes through the Chrome DevTools Protocol (see
//! `parlo_tests::host_page::Shadow` and docs/testing.md). The published bundle comes from
//! `dist/` (`widget/publish.sh`).
//!
//! One test binary with a module per area (one binary links once; see docs/testing.md).

mod accessibility;
mod chat;
mod isolation;
mod loading;
mod origins;
mod setup;
