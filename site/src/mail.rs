//! The e-mails Parlo sends: one layout in plain text and HTML, filled with a [`MailView`]
//! whose sentences the server chose in the recipient's language. Every value is escaped in
//! the HTML part; the text part is plain text.

use askama::Template;

/// The content of one e-mail.
#[derive(Debug, Clone, Default)]
pub struct MailView {
    /// `en` or `de`, for `<html lang>`.
    pub lang: &'static str,
    pub heading: String,
    pub paragraphs: Vec<String>,
    /// The one link the mail asks the reader to follow, if any.
    pub action: Option<MailAction>,
    /// Sentences after the link (e.g. "If this was not you, …").
    pub after: Vec<String>,
    pub footer: String,
}

#[derive(Debug, Clone)]
pub struct MailAction {
    pub label: String,
    pub url: String,
}

#[derive(Template)]
#[template(path = "mail/mail.txt")]
pub struct MailText<'a> {
    pub m: &'a MailView,
}

#[derive(Template)]
#[template(path = "mail/mail.html")]
pub struct MailHtml<'a> {
    pub m: &'a MailView,
}
