//! Parlo's server-rendered pages: askama templates, the view models they display, the one
//! stylesheet, the one script and the shipped legal texts. Presentation only: this crate
//! never touches the database or decides who may see what; handlers in `parlo::site` build
//! these view models from data they were allowed to read.
//!
//! Every value is HTML-escaped by askama; the only `|safe` outputs are the QR code SVG we
//! generate ourselves and HTML that went through `parlo_render`'s sanitiser.

pub use askama::Template;

pub mod mail;

/// The one stylesheet, served at `/assets/site.css`.
pub const SITE_CSS: &str = include_str!("../assets/site.css");
/// Progressive enhancement (copy buttons), served at `/assets/site.js`.
pub const SITE_JS: &str = include_str!("../assets/site.js");
/// The preview page's script (hands the widget a session through the site), served at
/// `/assets/preview.js`.
pub const PREVIEW_JS: &str = include_str!("../assets/preview.js");

/// Shipped defaults of the operator-editable legal texts (Markdown with `{{placeholders}}`).
pub const DEFAULT_TOMS: &str = include_str!("../templates/legal/toms.md");
pub const DEFAULT_DPA: &str = include_str!("../templates/legal/dpa.md");

/// Replaces each `{{name}}` in an operator's legal text by its value. Unknown placeholders
/// stay as they are, so a typo is visible rather than silently empty.
pub fn fill_placeholders(text: &str, values: &[(&str, String)]) -> String {
    let mut out = text.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("{{{{{name}}}}}"), value);
    }
    out
}

/// What every page shows around its content.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    pub title: String,
    /// The CSRF token for forms on this page (empty on pages without forms).
    pub csrf: String,
    /// The signed-in user's e-mail.
    pub user: Option<String>,
    /// The workspace the page belongs to.
    pub current: Option<WorkspaceLink>,
    /// Which main navigation entry is current (`bots`, `logs`, `keys`, …).
    pub section: &'static str,
    pub notice: Option<String>,
    pub error: Option<String>,
}

impl Chrome {
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone)]
pub struct WorkspaceLink {
    pub id: String,
    pub name: String,
    pub role: String,
}

/// The fixed set of confirmations a page can show after a redirect (`?notice=code`), so no
/// text from a URL is ever reflected into a page.
pub fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "signed_up" => "Welcome! Your account and workspace are ready.",
        "password_changed" => "Your password was changed. Your other sessions were logged out.",
        "mfa_disabled" => "Two-factor authentication is off.",
        "bot_created" => "The bot was created. Add it to your site with the snippet below.",
        "bot_saved" => "The bot was saved.",
        "bot_deleted" => "The bot and its chat logs were deleted.",
        "key_saved" => "The API key was saved.",
        "key_saved_unchecked" => {
            "The API key was saved. Mistral could not be reached to check it; it will be used as entered."
        }
        "key_deleted" => "The API key was deleted.",
        "logs_wiped" => "The chat logs were wiped.",
        "conversation_deleted" => "The conversation was deleted.",
        "member_updated" => "The member's role was changed.",
        "member_removed" => "The member was removed.",
        "invitation_revoked" => "The invitation was revoked.",
        "joined" => "You joined the workspace.",
        "renamed" => "The workspace was renamed.",
        "workspace_deleted" => "The workspace and all its data were deleted.",
        "verify_sent" => {
            "Check your inbox: we sent you a link to confirm your e-mail address. It is valid for 24 hours."
        }
        "verified" => "Your e-mail address is confirmed.",
        "reset_sent" => {
            "If an account exists for that address, we sent it a link to choose a new password. It is valid for 30 minutes."
        }
        "password_reset" => {
            "Your password was changed and every session was logged out. Log in with the new password."
        }
        "email_change_sent" => {
            "We sent a confirmation link to the new address. Your address changes once you open it."
        }
        "email_changed" => "Your e-mail address was changed.",
        "sessions_ended" => "The other sessions were logged out.",
        "session_ended" => "The session was logged out.",
        "language_saved" => "The language of your e-mails was saved.",
        _ => return None,
    })
}

#[derive(Template)]
#[template(path = "landing.html")]
pub struct LandingPage {
    pub chrome: Chrome,
}

#[derive(Template)]
#[template(path = "signup.html")]
pub struct SignupPage {
    pub chrome: Chrome,
    pub email: String,
    pub workspace: String,
    pub invite: String,
    pub min_password: usize,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub chrome: Chrome,
    pub email: String,
    pub invite: String,
}

#[derive(Template)]
#[template(path = "login_mfa.html")]
pub struct LoginMfaPage {
    pub chrome: Chrome,
    /// An invitation to return to once the second factor is checked (validated by the caller).
    pub invite: String,
}

#[derive(Template)]
#[template(path = "workspaces.html")]
pub struct WorkspacesPage {
    pub chrome: Chrome,
    pub workspaces: Vec<WorkspaceLink>,
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    pub chrome: Chrome,
    pub email: String,
    pub mfa_enabled: bool,
    pub recovery_left: usize,
    pub min_password: usize,
    /// The language of the user's mail (`en` or `de`).
    pub language: String,
    /// The user's active sessions, this one first.
    pub sessions: Vec<SessionRow>,
}

/// A login session on the account page.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: String,
    pub created: String,
    pub last_seen: String,
    /// Coarse: "Chrome on Linux".
    pub client: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "mfa_enrol.html")]
pub struct MfaEnrolPage {
    pub chrome: Chrome,
    /// Inline SVG generated by the server (no external image, no data from the user).
    pub qr_svg: String,
    /// The base32 secret: the text alternative to the QR code.
    pub secret: String,
    /// The secret sealed to this user, carried by the form until the code confirms it.
    pub sealed: String,
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
pub struct RecoveryCodesPage {
    pub chrome: Chrome,
    pub codes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct BotRow {
    pub id: String,
    pub name: String,
    pub model: String,
    pub origins: String,
    pub retention_days: u16,
}

#[derive(Template)]
#[template(path = "workspace_home.html")]
pub struct WorkspaceHomePage {
    pub chrome: Chrome,
    pub ws: WorkspaceLink,
    pub bots: Vec<BotRow>,
    pub can_manage: bool,
    pub has_key: bool,
}

/// The bot form's values, as typed (so a rejected form comes back filled in).
#[derive(Debug, Clone)]
pub struct BotFormValues {
    pub name: String,
    pub greeting: String,
    pub system_prompt: String,
    pub model: String,
    pub allowed_origins: String,
    pub theme_color: String,
    pub language: String,
    pub retention_days: String,
}

#[derive(Template)]
#[template(path = "bot_form.html")]
pub struct BotFormPage {
    pub chrome: Chrome,
    pub ws: WorkspaceLink,
    pub bot_id: Option<String>,
    pub action: String,
    pub form: BotFormValues,
    pub models: Vec<String>,
    pub languages: Vec<(String, String)>,
    pub can_manage: bool,
    /// What deleting the bot deletes with it: (conversations, messages).
    pub deletes: (i64, i64),
}

#[derive(Debug, Clone)]
pub struct PinnedSnippet {
    pub version: String,
    pub published_at: String,
    pub latest: bool,
    pub snippet: String,
}

#[derive(Template)]
#[template(path = "embed.html")]
pub struct EmbedPage {
    pub chrome: Chrome,
    pub ws: WorkspaceLink,
    pub bot_id: String,
    pub bot_name: String,
    pub rolling: String,
    pub pinned: Vec<PinnedSnippet>,
    pub csp: String,
    pub origins: Vec<String>,
    /// Whether the workspace has a Mistral key (the widget cannot answer without one).
    pub has_key: bool,
    pub can_manage: bool,
}

#[derive(Template)]
#[template(path = "preview.html")]
pub struct PreviewPage {
    pub chrome: Chrome,
    pub ws: WorkspaceLink,
    pub bot_id: String,
    pub bot_name: String,
    pub public_id: String,
    pub script_src: String,
    /// The widget API's session URL the preview's script answers through the site.
    pub widget_session: String,
}

#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub last_four: String,
    pub updated_at: String,
}

#[derive(Template)]
#[template(path = "keys.html")]
pub struct KeysPage {
    pub chrome: Chrome,
    pub ws: WorkspaceLink,
    pub key: Option<KeyInfo>,
    pub can_manage: bool,
    /// How many bots stop answering when the key is deleted.
    pub bots: usize,
}

#[derive(Debug, Clone)]
pub struct MemberRow {
    pub user_id: String,
    pub email: String,
    pub role: String,
    /// Whether the viewer may change this member (not themselves, owners only by owners).
    pub editable: bool,
}

#[derive(Debug, Clone)]
pub struct InvitationRow {
    pub id: String,
    pub role: String,
    /// The e-mail address of the member who created it.
    pub created_by: String,
    pub expires_at: String,
}

#[derive(Template)]
#[template(path = "members.html")]
pub struct MembersPage {
    pub chrome: Chrome,
    pub ws: WorkspaceLink,
    pub members: Vec<MemberRow>,
    pub invitations: Vec<InvitationRow>,
    pub can_manage: bool,
    pub is_owner: bool,
    /// A freshly created invitation link, shown once.
    pub new_link: Option<String>,
}

#[derive(Template)]
#[template(path = "invite.html")]
pub struct InvitePage {
    pub chrome: Chrome,
    pub workspace: String,
    pub role: String,
    pub token: String,
    pub signed_in: bool,
}

#[derive(Debug, Clone)]
pub struct ConversationRow {
    pub id: String,
    /// The short reference a visitor can quote (`Conversation::reference`).
    pub reference: String,
    pub bot_name: String,
    pub origin: String,
    pub created: String,
    pub last_activity: String,
    pub last_activity_iso: String,
    /// The start of the first visitor message.
    pub preview: String,
    pub message_count: i64,
}

/// The inbox's filters as the visitor set them (echoed back into the form).
#[derive(Debug, Clone, Default)]
pub struct InboxFilters {
    pub q: String,
    pub bot: String,
    pub from: String,
    pub to: String,
    pub unanswered: bool,
}

#[derive(Template)]
#[template(path = "logs.html")]
pub struct LogsPage {
    pub chrome: Chrome,
    pub ws: WorkspaceLink,
    /// (id, name) of every bot, for the filter.
    pub bots: Vec<(String, String)>,
    pub selected_bot: String,
    pub filters: InboxFilters,
    /// A filter value that could not be read, said next to the form.
    pub filter_error: Option<String>,
    pub conversations: Vec<ConversationRow>,
    pub next_page: Option<String>,
    /// Link back to the newest conversations when this is not the first page.
    pub first_page: Option<String>,
    pub can_manage: bool,
}

#[derive(Debug, Clone)]
pub struct MessageView {
    pub role: &'static str,
    pub role_label: &'static str,
    pub at: String,
    pub at_iso: String,
    pub status_note: &'static str,
    /// The visitor's rating of an answer ("rated helpful" / "rated not helpful"), else empty.
    pub rating_note: &'static str,
    /// Sanitised HTML when `is_html`, else plain text (escaped by the template).
    pub html: String,
    pub is_html: bool,
}

#[derive(Template)]
#[template(path = "conversation.html")]
pub struct ConversationPage {
    pub chrome: Chrome,
    pub ws: WorkspaceLink,
    pub bot_name: String,
    pub origin: String,
    pub created: String,
    pub messages: Vec<MessageView>,
    pub id: String,
    pub reference: String,
    pub can_manage: bool,
}

#[derive(Template)]
#[template(path = "conversation_delete.html")]
pub struct ConversationDeletePage {
    pub chrome: Chrome,
    pub ws: WorkspaceLink,
    pub id: String,
    pub reference: String,
    pub bot_name: String,
    pub origin: String,
    pub created: String,
    pub message_count: usize,
}

#[derive(Template)]
#[template(path = "workspace_settings.html")]
pub struct WorkspaceSettingsPage {
    pub chrome: Chrome,
    pub ws: WorkspaceLink,
    pub can_manage: bool,
    pub is_owner: bool,
    /// What deleting the workspace deletes (shown to owners only).
    pub deletes: Option<WorkspaceContents>,
}

/// Counts of what a workspace holds, for the delete confirmation.
#[derive(Debug, Clone)]
pub struct WorkspaceContents {
    pub bots: i64,
    pub conversations: i64,
    pub messages: i64,
    pub members: i64,
}

#[derive(Debug, Clone)]
pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub chrome: Chrome,
    pub ws: WorkspaceLink,
    pub entries: Vec<AuditRow>,
}

/// One live self-check of the trust page.
#[derive(Debug, Clone)]
pub struct CheckRow {
    pub title: String,
    /// `ok`, `info`, `warn` or `fail` (also the row's CSS class).
    pub status: String,
    pub value: String,
    pub checked_at: String,
}

#[derive(Debug, Clone)]
pub struct SubProcessorRow {
    pub name: String,
    pub purpose: String,
    pub location: String,
    pub added: String,
    /// Empty while in use.
    pub removed: String,
}

#[derive(Template)]
#[template(path = "trust.html")]
pub struct TrustPage {
    pub chrome: Chrome,
    pub generated: String,
    /// The live self-checks, as last measured.
    pub checks: Vec<CheckRow>,
    /// How often the checks run, in words ("every 5 minutes").
    pub check_interval: String,
    /// (topic, statement) pairs derived from the running configuration.
    pub facts: Vec<(String, String)>,
    pub subprocessors: Vec<SubProcessorRow>,
    pub last_change: Option<String>,
    pub contact: Option<String>,
}

#[derive(Template)]
#[template(path = "legal.html")]
pub struct LegalPage {
    pub chrome: Chrome,
    /// Sanitised HTML rendered from the operator's Markdown.
    pub body: String,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub chrome: Chrome,
    pub heading: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let page = LoginPage {
            chrome: Chrome::new("Log in"),
            email: "\"><script>alert(1)</script>".into(),
            invite: String::new(),
        };
        let html = page.render().unwrap();
        assert!(!html.contains("<script>alert(1)"), "{html}");
        assert!(
            html.contains("&#34;&#62;&#60;script&#62;")
                || html.contains("&quot;&gt;&lt;script&gt;")
        );
    }

    #[test]
    fn placeholders_are_filled_and_unknown_ones_kept() {
        let out = fill_placeholders(
            "at {{public_url}} for {{unknown}}",
            &[("public_url", "https://x".into())],
        );
        assert_eq!(out, "at https://x for {{unknown}}");
    }

    #[test]
    fn notices_come_from_a_fixed_list() {
        assert!(notice_text("key_saved").is_some());
        assert!(notice_text("<b>phish</b>").is_none());
    }
}

/// A page reached from a link in an e-mail: explains itself and asks for one click (so a
/// mail scanner fetching the link changes nothing), optionally a new password.
#[derive(Template)]
#[template(path = "mail_link.html")]
pub struct MailLinkPage {
    pub chrome: Chrome,
    pub heading: String,
    pub text: String,
    /// Where the form posts; empty when the link is not valid (no form is shown).
    pub action: String,
    pub token: String,
    pub button: String,
    /// Ask for a new password (password reset).
    pub new_password: bool,
    pub min_password: usize,
}

/// Asks for the address to send a password-reset link to.
#[derive(Template)]
#[template(path = "forgot_password.html")]
pub struct ForgotPasswordPage {
    pub chrome: Chrome,
    pub email: String,
}

/// After sign-up, whatever the address: "check your inbox".
#[derive(Template)]
#[template(path = "check_inbox.html")]
pub struct CheckInboxPage {
    pub chrome: Chrome,
    pub text: String,
}
