//! Parlo's embeddable chat widget: a Leptos (CSR) app compiled to WASM.
//!
//! Owns the widget's entry point. The loader (`widget/loader/widget.js`) creates the host
//! element and its *closed* shadow root, verifies and instantiates this module, and calls
//! [`start`] with that shadow root; the app then renders only inside it. The API origin is
//! whatever the loader passes (its own script origin); nothing in the page can change it.
//! This crate links no markdown parser, sanitiser or KaTeX: answers are rendered by the
//! separately loaded markdown module (`parlo-markdown`), formulas by the math module.

pub mod client;
pub mod i18n;
pub mod markdown_module;
pub mod sse;
mod style;
mod ui;

use wasm_bindgen::prelude::*;

use crate::i18n::Lang;

/// Takes over the loader's shadow root and shows the widget.
///
/// `lang` is the embed's `data-lang` (if any); `open` says the visitor already clicked the
/// launcher; `load_math` returns a promise of the math module's `render_math(tex, display)`,
/// `load_markdown` a promise of the markdown module's namespace (see [`render`]).
#[wasm_bindgen]
pub fn start(
    root: web_sys::ShadowRoot,
    origin: String,
    bot: String,
    lang: Option<String>,
    open: bool,
    load_math: js_sys::Function,
    load_markdown: js_sys::Function,
) -> Result<(), JsValue> {
    let window = web_sys::window().ok_or_else(|| JsValue::from_str("no window"))?;
    let document = window
        .document()
        .ok_or_else(|| JsValue::from_str("no document"))?;
    let page_lang = document
        .document_element()
        .and_then(|e| e.get_attribute("lang"));
    let browser_lang = window.navigator().language();
    let lang = Lang::pick([
        lang.as_deref(),
        page_lang.as_deref(),
        browser_lang.as_deref(),
    ]);

    root.set_inner_html("");
    style::install(&root, &document)?;
    let mount: web_sys::HtmlElement = document.create_element("div")?.unchecked_into();
    mount.set_class_name("parlo");
    mount.set_attribute("lang", lang.tag())?;
    root.append_child(&mount)?;

    let config = ui::Config {
        origin,
        bot,
        lang,
        open,
        load_math,
        load_markdown,
    };
    leptos::mount::mount_to(mount.clone(), move || ui::widget(config, mount)).forget();
    Ok(())
}
