//! Bots: what a customer configures (validated from form input), the public id in embed
//! snippets, and the sealed provider keys a bot's turns use.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::account::SealedSecret;
use super::ids::{BotId, TenantId, Timestamp};
use super::parse::{Invalid, invalid, parse_name};

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
}
