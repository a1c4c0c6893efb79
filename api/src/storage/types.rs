//! The data model: ids, validated values (parsed once, so invalid data cannot travel
//! further) and the rows the storage interface returns.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($($(#[$m:meta])* $name:ident),* $(,)?) => {$(
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type)]
        #[sqlx(transparent)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new time-ordered id (UUIDv7).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    )*};
}

id_type!(
    /// A workspace: the unit of tenancy. Every tenant-scoped row carries it as `tenant_id`.
    TenantId,
    UserId,
    SessionId,
    BotId,
    ConversationId,
    MessageId,
    AttachmentId,
    AuditId,
    InvitationId,
);

/// Unix time in milliseconds, UTC.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, sqlx::Type,
)]
#[sqlx(transparent)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        Self((time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64)
    }

    pub fn plus_secs(self, secs: i64) -> Self {
        Self(self.0 + secs * 1000)
    }

    pub fn minus_days(self, days: i64) -> Self {
        Self(self.0 - days * 86_400_000)
    }

    pub fn to_rfc3339(self) -> String {
        time::OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1_000_000)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default()
    }
}

/// Why a value was rejected; the message is safe to show the user who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid<T>(msg: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(msg.into()))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Trimmed and lower-cased; one `@` with something on both sides and a dot in the domain.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim().to_lowercase();
        let ok = s.len() <= 254
            && s.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
            })
            && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if ok {
            Ok(Self(s))
        } else {
            invalid("Enter a valid e-mail address.")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A short human name (workspace, bot): 1–80 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct WorkspaceName(String);

impl WorkspaceName {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        parse_name(s).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn parse_name(s: &str) -> Result<String, Invalid> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > 80 || s.chars().any(char::is_control) {
        return invalid("A name has 1 to 80 characters.");
    }
    Ok(s.to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        match s {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            _ => invalid("Role must be owner, admin or member."),
        }
    }

    /// Owners and admins configure bots and keys; members read.
    pub fn can_manage(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Mistral,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Mistral => "mistral",
        }
    }
}

/// An origin a bot may be embedded on: `scheme://host[:port]`, http(s) only, no path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AllowedOrigin(String);

impl AllowedOrigin {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim().trim_end_matches('/');
        let Ok(url) = url::Url::parse(s) else {
            return invalid(format!(
                "{s:?} is not an origin like https://www.example.com"
            ));
        };
        if !matches!(url.scheme(), "http" | "https")
            || url.host_str().is_none()
            || url.path() != "/"
            || url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
        {
            return invalid(format!(
                "{s:?} is not an origin like https://www.example.com"
            ));
        }
        Ok(Self(url.origin().ascii_serialization()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BotLanguage {
    /// Follow the host page, then the browser.
    Auto,
    En,
    De,
}

impl BotLanguage {
    pub fn as_str(self) -> &'static str {
        match self {
            BotLanguage::Auto => "auto",
            BotLanguage::En => "en",
            BotLanguage::De => "de",
        }
    }

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        match s {
            "auto" => Ok(Self::Auto),
            "en" => Ok(Self::En),
            "de" => Ok(Self::De),
            _ => invalid("Language must be auto, en or de."),
        }
    }
}

pub const MAX_RETENTION_DAYS: u16 = 365;

/// Everything a customer configures on a bot, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BotSettings {
    pub name: String,
    pub greeting: String,
    pub system_prompt: String,
    pub model: String,
    pub allowed_origins: Vec<AllowedOrigin>,
    /// `#rrggbb`.
    pub theme_color: String,
    pub language: BotLanguage,
    pub retention_days: u16,
}

/// Raw form input for a bot, before validation.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BotInput {
    pub name: String,
    #[serde(default)]
    pub greeting: String,
    #[serde(default)]
    pub system_prompt: String,
    #[serde(default)]
    pub model: String,
    /// One origin per line (or comma-separated).
    #[serde(default)]
    pub allowed_origins: String,
    #[serde(default)]
    pub theme_color: String,
    #[serde(default)]
    pub language: String,
    #[serde(default)]
    pub retention_days: Option<u16>,
}

pub const DEFAULT_MODEL: &str = "mistral-small-latest";
pub const DEFAULT_THEME_COLOR: &str = "#2563eb";

impl BotSettings {
    pub fn parse(input: &BotInput) -> Result<Self, Invalid> {
        let name = parse_name(&input.name)?;
        let greeting = input.greeting.trim().to_owned();
        if greeting.chars().count() > 2_000 {
            return invalid("The greeting has at most 2,000 characters.");
        }
        let system_prompt = input.system_prompt.trim().to_owned();
        if system_prompt.chars().count() > 20_000 {
            return invalid("The system prompt has at most 20,000 characters.");
        }
        let model = match input.model.trim() {
            "" => DEFAULT_MODEL.to_owned(),
            m if m.len() <= 64
                && m.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) =>
            {
                m.to_owned()
            }
            _ => return invalid("A model name has letters, digits, '-', '_', '.' or ':'."),
        };
        let mut allowed_origins = Vec::new();
        for o in input
            .allowed_origins
            .split(|c: char| c == '\n' || c == ',' || c.is_whitespace())
            .filter(|o| !o.trim().is_empty())
        {
            let o = AllowedOrigin::parse(o)?;
            if !allowed_origins.contains(&o) {
                allowed_origins.push(o);
            }
        }
        if allowed_origins.len() > 50 {
            return invalid("A bot has at most 50 allowed origins.");
        }
        let theme_color = match input.theme_color.trim() {
            "" => DEFAULT_THEME_COLOR.to_owned(),
            c if c.len() == 7
                && c.starts_with('#')
                && c[1..].bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                c.to_ascii_lowercase()
            }
            _ => return invalid("The theme colour looks like #2563eb."),
        };
        let language = match input.language.trim() {
            "" => BotLanguage::Auto,
            l => BotLanguage::parse(l)?,
        };
        let retention_days = input.retention_days.unwrap_or(90);
        if !(1..=MAX_RETENTION_DAYS).contains(&retention_days) {
            return invalid("Retention is between 1 and 365 days.");
        }
        Ok(Self {
            name,
            greeting,
            system_prompt,
            model,
            allowed_origins,
            theme_color,
            language,
            retention_days,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workspace {
    pub id: TenantId,
    pub name: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub password_hash: String,
    pub totp: Option<SealedSecret>,
    pub created_at: Timestamp,
}

/// A secret sealed with the master key (AES-256-GCM); see `crypto`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
    pub key_version: i32,
}

#[derive(Debug, Clone)]
pub struct NewLoginSession {
    pub user_id: UserId,
    /// SHA-256 of the cookie value; the value itself is never stored.
    pub token_hash: Vec<u8>,
    pub mfa_verified: bool,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginSession {
    pub id: SessionId,
    pub user_id: UserId,
    pub mfa_verified: bool,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bot {
    pub tenant_id: TenantId,
    pub id: BotId,
    /// The id in embed snippets: `bot_` + the workspace id + random, so a widget session can
    /// be scoped to its tenant before any row is read.
    pub public_id: String,
    #[serde(flatten)]
    pub settings: BotSettings,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Bot {
    pub fn new_public_id(t: TenantId) -> String {
        let mut rand = [0u8; 8];
        getrandom::fill(&mut rand).expect("OS random number generator");
        format!("bot_{}{}", t.0.simple(), hex::encode(rand))
    }

    /// The tenant a public bot id names, if it is well-formed.
    pub fn tenant_of_public_id(public_id: &str) -> Option<TenantId> {
        let rest = public_id.strip_prefix("bot_")?;
        if rest.len() != 48 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Uuid::parse_str(&rest[..32]).ok().map(TenantId)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderKey {
    pub provider: Provider,
    pub sealed: SealedSecret,
    pub last_four: String,
    pub updated_at: Timestamp,
}

/// One chat turn as it starts: what the end user wrote, and how much context to read back.
#[derive(Debug, Clone)]
pub struct NewTurn {
    pub bot: BotId,
    pub conversation: ConversationId,
    pub content: String,
    pub provider: Provider,
    /// At most this many earlier messages (complete or interrupted, non-empty) come back.
    pub context: u32,
}

/// How [`NewTurn`] ended; only `Started` stored anything.
#[derive(Debug)]
pub enum TurnStart {
    Started(Box<Turn>),
    /// The workspace is suspended; nothing was stored.
    Suspended,
    /// The bot no longer exists; nothing was stored.
    NoBot,
    /// The conversation was cleared or expired; nothing was stored.
    NoConversation,
}

/// A started turn: the user's message and an empty `pending` answer are stored.
#[derive(Debug)]
pub struct Turn {
    pub bot: Bot,
    /// The user's message just stored.
    pub question: MessageId,
    /// The `pending` assistant message the answer is finished into.
    pub answer: MessageId,
    /// The latest usable messages, oldest first, ending with the question.
    pub context: Vec<Message>,
    /// The tenant's stored key for the turn's provider, if any.
    pub key: Option<ProviderKey>,
}

/// One hit on a rate-limit counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitHit {
    pub key_hash: Vec<u8>,
    pub window_start: Timestamp,
    /// When the counter row may be purged.
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewConversation {
    pub bot_id: BotId,
    pub origin: String,
    /// SHA-256 of the resume secret given to the widget.
    pub resume_hash: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub tenant_id: TenantId,
    pub id: ConversationId,
    pub bot_id: BotId,
    pub origin: String,
    pub resume_hash: Vec<u8>,
    pub created_at: Timestamp,
    pub last_activity_at: Timestamp,
}

#[derive(Debug, Clone, Default)]
pub struct ConversationQuery {
    pub bot_id: Option<BotId>,
    /// Only conversations active before this (for paging, newest first).
    pub before: Option<Timestamp>,
    pub limit: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    User,
    Assistant,
    System,
}

impl MessageRole {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageRole::User => "user",
            MessageRole::Assistant => "assistant",
            MessageRole::System => "system",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Stored before the answer is known (an assistant message being streamed).
    Pending,
    Complete,
    /// The stream broke; the content is the partial answer.
    Interrupted,
    /// No answer at all (upstream refused); content is empty.
    Failed,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Pending => "pending",
            MessageStatus::Complete => "complete",
            MessageStatus::Interrupted => "interrupted",
            MessageStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewMessage {
    pub conversation_id: ConversationId,
    pub role: MessageRole,
    pub content: String,
    pub status: MessageStatus,
}

#[derive(Debug, Clone, Default)]
pub struct TokenUsage {
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct FinishedMessage {
    pub content: String,
    pub status: MessageStatus,
    pub usage: TokenUsage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub role: MessageRole,
    pub content: String,
    pub status: MessageStatus,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub created_at: Timestamp,
    pub completed_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub conversation_id: ConversationId,
    pub message_id: Option<MessageId>,
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    pub id: AttachmentId,
    pub conversation_id: ConversationId,
    pub message_id: Option<MessageId>,
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    #[serde(skip)]
    pub sha256: Vec<u8>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewInvitation {
    /// SHA-256 of the token in the invitation link; the token itself is never stored.
    pub token_hash: Vec<u8>,
    /// Admin or member (owners are made by an owner, not by invitation).
    pub role: Role,
    pub created_by: Option<UserId>,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub id: InvitationId,
    pub role: Role,
    pub created_by: Option<UserId>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    pub actor: Option<UserId>,
    /// A stable verb such as `bot.update` or `provider_key.set`.
    pub action: String,
    pub target: String,
    /// JSON object with non-secret details.
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: AuditId,
    pub actor: Option<UserId>,
    pub action: String,
    pub target: String,
    pub details: String,
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_bot_id_names_its_tenant() {
        let t = TenantId::new();
        let id = Bot::new_public_id(t);
        assert_eq!(Bot::tenant_of_public_id(&id), Some(t));
        assert_eq!(Bot::tenant_of_public_id("bot_123"), None);
        assert_eq!(Bot::tenant_of_public_id(&id.replace("bot_", "bat_")), None);
    }

    #[test]
    fn origins_are_normalised_and_paths_refused() {
        assert_eq!(
            AllowedOrigin::parse("https://Example.com/")
                .unwrap()
                .as_str(),
            "https://example.com"
        );
        assert_eq!(
            AllowedOrigin::parse("http://localhost:3000")
                .unwrap()
                .as_str(),
            "http://localhost:3000"
        );
        assert!(AllowedOrigin::parse("https://example.com/path").is_err());
        assert!(AllowedOrigin::parse("javascript:alert(1)").is_err());
        assert!(AllowedOrigin::parse("*").is_err());
    }

    #[test]
    fn bot_settings_reject_long_retention() {
        let input = BotInput {
            name: "Help".into(),
            retention_days: Some(366),
            ..BotInput::default()
        };
        assert!(BotSettings::parse(&input).is_err());
        let ok = BotSettings::parse(&BotInput {
            name: "Help".into(),
            allowed_origins: "https://a.example\nhttps://b.example, https://a.example".into(),
            ..BotInput::default()
        })
        .unwrap();
        assert_eq!(ok.allowed_origins.len(), 2);
        assert_eq!(ok.retention_days, 90);
        assert_eq!(ok.model, DEFAULT_MODEL);
    }

    #[test]
    fn emails_are_normalised() {
        assert_eq!(
            Email::parse(" Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
        assert!(Email::parse("ann@localhost").is_err());
        assert!(Email::parse("a b@example.com").is_err());
    }
}
