//! The widget's stylesheet and how it enters the shadow root.
//!
//! Owns all widget CSS. It is attached as a constructed stylesheet (`adoptedStyleSheets`),
//! which host-page CSP `style-src` does not restrict; only browsers without constructable
//! stylesheets get a `<style>` element instead. Nothing is ever added outside the shadow root.

use wasm_bindgen::{JsCast, JsValue};
use web_sys::{CssStyleSheet, Document, ShadowRoot};

const CSS: &str = include_str!("style.css");

pub fn install(root: &ShadowRoot, document: &Document) -> Result<(), JsValue> {
    if let Ok(sheet) = CssStyleSheet::new() {
        sheet.replace_sync(CSS)?;
        root.set_adopted_style_sheets(&js_sys::Array::of1(&sheet));
        return Ok(());
    }
    let style: web_sys::HtmlStyleElement = document.create_element("style")?.unchecked_into();
    style.set_text_content(Some(CSS));
    root.append_child(&style)?;
    Ok(())
}
