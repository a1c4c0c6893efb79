//! The widget's user-facing strings in English and German, and the choice between them.
//!
//! Owns every word an end user reads or hears from the widget itself (answers come from the
//! assistant). The choice follows the embed's `data-lang`, then the host page's
//! `<html lang>`, then the browser; anything that is not German is English.

/// A supported language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    De,
}

impl Lang {
    /// Picks the language from the first non-empty candidate, in priority order
    /// (embed override, page language, browser language).
    pub fn pick<'a>(candidates: impl IntoIterator<Item = Option<&'a str>>) -> Lang {
        let tag = candidates
            .into_iter()
            .flatten()
            .map(str::trim)
            .find(|t| !t.is_empty())
            .unwrap_or("en");
        let primary = tag.split(['-', '_']).next().unwrap_or("");
        if primary.eq_ignore_ascii_case("de") {
            Lang::De
        } else {
            Lang::En
        }
    }

    /// The BCP 47 tag set on the widget's root so screen readers pronounce it right.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
        }
    }

    pub fn text(self) -> &'static Text {
        match self {
            Lang::En => &EN,
            Lang::De => &DE,
        }
    }
}

/// Every fixed string of the widget in one language.
#[derive(Debug)]
pub struct Text {
    pub open_chat: &'static str,
    pub close_chat: &'static str,
    pub chat: &'static str,
    pub message_label: &'static str,
    pub placeholder: &'static str,
    pub send: &'static str,
    pub attach: &'static str,
    pub new_conversation: &'static str,
    pub retry: &'static str,
    pub connecting: &'static str,
    pub writing: &'static str,
    pub you: &'static str,
    pub assistant: &'static str,
    pub interrupted: &'static str,
    pub attached: &'static str,
    pub err_offline: &'static str,
    pub err_rate_limited: &'static str,
    pub err_rate_limited_secs: &'static str,
    pub err_unavailable: &'static str,
    pub err_no_api_key: &'static str,
    pub err_origin: &'static str,
    pub err_unknown_bot: &'static str,
    pub err_too_large: &'static str,
    pub err_rejected: &'static str,
    pub err_generic: &'static str,
}

impl Text {
    /// "rate limited" with the wait time when the server told us one.
    pub fn rate_limited(&self, retry_after: Option<u32>) -> String {
        match retry_after {
            Some(secs) => self.err_rate_limited_secs.replace("{n}", &secs.to_string()),
            None => self.err_rate_limited.to_owned(),
        }
    }
}

static EN: Text = Text {
    open_chat: "Open chat",
    close_chat: "Close chat",
    chat: "Chat",
    message_label: "Your message",
    placeholder: "Write a message…",
    send: "Send",
    attach: "Attach an image or PDF",
    new_conversation: "New conversation",
    retry: "Retry",
    connecting: "Connecting…",
    writing: "The assistant is writing…",
    you: "You",
    assistant: "Assistant",
    interrupted: "This answer was interrupted.",
    attached: "Attached",
    err_offline: "You seem to be offline. Check your connection, then retry.",
    err_rate_limited: "Too many messages. Please wait a moment, then retry.",
    err_rate_limited_secs: "Too many messages. Please wait {n} seconds, then retry.",
    err_unavailable: "The assistant is unavailable right now. Please try again later.",
    err_no_api_key: "This assistant is not set up yet: no API key is configured.",
    err_origin: "This chat is not enabled on this website.",
    err_unknown_bot: "This chat assistant does not exist.",
    err_too_large: "That is too large to send.",
    err_rejected: "That could not be sent. Files must be images or PDFs.",
    err_generic: "Something went wrong.",
};

static DE: Text = Text {
    open_chat: "Chat öffnen",
    close_chat: "Chat schließen",
    chat: "Chat",
    message_label: "Ihre Nachricht",
    placeholder: "Nachricht schreiben…",
    send: "Senden",
    attach: "Bild oder PDF anhängen",
    new_conversation: "Neue Unterhaltung",
    retry: "Erneut versuchen",
    connecting: "Verbinde…",
    writing: "Der Assistent schreibt…",
    you: "Sie",
    assistant: "Assistent",
    interrupted: "Diese Antwort wurde unterbrochen.",
    attached: "Angehängt",
    err_offline: "Sie scheinen offline zu sein. Prüfen Sie Ihre Verbindung und versuchen Sie es erneut.",
    err_rate_limited: "Zu viele Nachrichten. Bitte warten Sie einen Moment und versuchen Sie es erneut.",
    err_rate_limited_secs: "Zu viele Nachrichten. Bitte warten Sie {n} Sekunden und versuchen Sie es erneut.",
    err_unavailable: "Der Assistent ist gerade nicht erreichbar. Bitte versuchen Sie es später erneut.",
    err_no_api_key: "Dieser Assistent ist noch nicht eingerichtet: Es ist kein API-Schlüssel hinterlegt.",
    err_origin: "Dieser Chat ist auf dieser Website nicht freigeschaltet.",
    err_unknown_bot: "Diesen Chat-Assistenten gibt es nicht.",
    err_too_large: "Das ist zu groß zum Senden.",
    err_rejected: "Das konnte nicht gesendet werden. Dateien müssen Bilder oder PDFs sein.",
    err_generic: "Etwas ist schiefgelaufen.",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embed_override_wins_over_page_and_browser() {
        assert_eq!(
            Lang::pick([Some("de"), Some("en-US"), Some("en")]),
            Lang::De
        );
        assert_eq!(
            Lang::pick([Some("en"), Some("de-DE"), Some("de")]),
            Lang::En
        );
    }

    #[test]
    fn empty_candidates_fall_through() {
        assert_eq!(Lang::pick([None, Some(" "), Some("de-AT")]), Lang::De);
        assert_eq!(Lang::pick([None, None, None]), Lang::En);
    }

    #[test]
    fn unsupported_languages_are_english() {
        assert_eq!(Lang::pick([Some("fr-CH")]), Lang::En);
        assert_eq!(Lang::pick([Some("DE_ch")]), Lang::De);
    }

    #[test]
    fn rate_limit_message_carries_seconds() {
        assert!(
            Lang::De
                .text()
                .rate_limited(Some(30))
                .contains("30 Sekunden")
        );
        assert!(!Lang::En.text().rate_limited(None).contains('{'));
    }
}
