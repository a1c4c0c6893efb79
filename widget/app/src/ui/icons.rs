//! The widget's icons: inline SVG, hidden from screen readers (the buttons carry the labels).
//!
//! Plain functions rather than components: they take no props and hold no state, so a
//! component would add only its wrapper (about 240 bytes of the main module's `.wasm`), and
//! as `AnyView`s the launcher can swap one for the other.

use leptos::prelude::*;

pub(super) fn icon_chat() -> AnyView {
    view! {
        <svg viewBox="0 0 24 24" width="26" height="26" aria-hidden="true">
            <path fill="currentColor" d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z"></path>
        </svg>
    }
    .into_any()
}

pub(super) fn icon_close() -> AnyView {
    view! {
        <svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true">
            <path stroke="currentColor" stroke-width="2.2" stroke-linecap="round" d="M6 6l12 12M18 6L6 18"></path>
        </svg>
    }
    .into_any()
}

pub(super) fn icon_new() -> AnyView {
    view! {
        <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
            <path fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" d="M12 5v14M5 12h14"></path>
        </svg>
    }
    .into_any()
}

pub(super) fn icon_attach() -> AnyView {
    view! {
        <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
            <path fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" d="M16 7l-7.5 7.5a2 2 0 0 0 2.8 2.8L19 9.6a4 4 0 0 0-5.7-5.7L5.6 11.6a6 6 0 0 0 8.5 8.5L20 14"></path>
        </svg>
    }
    .into_any()
}

pub(super) fn icon_send() -> AnyView {
    view! {
        <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
            <path fill="currentColor" d="M3 20l18-8L3 4v6l12 2-12 2z"></path>
        </svg>
    }
    .into_any()
}
