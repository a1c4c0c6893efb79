//! The bot's theme colour: which values are accepted and how they reach the widget's CSS.
//!
//! The colour is the bot owner's choice; it only ever becomes a CSS custom property
//! (validated as a hex colour first), so it cannot inject CSS.

use leptos::prelude::*;

use super::state::Chat;

/// Sets `--parlo-accent` (and a text colour that reads on it) on `host` whenever the bot's
/// colour is known.
pub(super) fn follow_accent(chat: Chat, host: web_sys::HtmlElement) {
    Effect::new(move |_| {
        if let Some(colour) = chat.accent.get() {
            let style = host.style();
            let _ = style.set_property("--parlo-accent", &colour);
            let _ = style.set_property("--parlo-on-accent", text_on(&colour));
        }
    });
}

/// Accepts `#rgb` and `#rrggbb` only.
pub(super) fn is_colour(value: &str) -> bool {
    value
        .strip_prefix('#')
        .is_some_and(|hex| matches!(hex.len(), 3 | 6) && hex.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Black or white, whichever reads better on the given (valid) colour.
fn text_on(colour: &str) -> &'static str {
    let hex = colour.trim_start_matches('#');
    let channel = |i: usize| -> f64 {
        let digits = if hex.len() == 3 {
            hex[i..=i].repeat(2)
        } else {
            hex[i * 2..i * 2 + 2].to_owned()
        };
        let v = f64::from(u8::from_str_radix(&digits, 16).unwrap_or(0)) / 255.0;
        if v <= 0.03928 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    let luminance = 0.2126 * channel(0) + 0.7152 * channel(1) + 0.0722 * channel(2);
    // Contrast with white is (1.05)/(L+0.05), with black (L+0.05)/0.05; they meet at L≈0.179.
    if luminance > 0.179 {
        "#111827"
    } else {
        "#ffffff"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hex_colours_are_applied() {
        assert!(is_colour("#2563eb"));
        assert!(is_colour("#fff"));
        assert!(!is_colour("red"));
        assert!(!is_colour("#2563eb;background:url(x)"));
        assert!(!is_colour("#12345"));
    }

    #[test]
    fn text_colour_contrasts_with_theme() {
        assert_eq!(text_on("#2563eb"), "#ffffff");
        assert_eq!(text_on("#fde047"), "#111827");
        assert_eq!(text_on("#000"), "#ffffff");
        assert_eq!(text_on("#FFF"), "#111827");
    }
}
