//! Accounts: e-mail addresses, users, sealed secrets and login sessions. Users and their
//! sessions are global, not tenant data.

use serde::Serialize;

use super::ids::{SessionId, Timestamp, UserId};
use super::parse::{Invalid, invalid};

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

/// The language of a user's mail (and of the pages a mail link opens); English by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    #[default]
    En,
    De,
}

impl Lang {
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
        }
    }

    /// `en` or `de`; anything else is English.
    pub fn parse(s: &str) -> Lang {
        match s.trim() {
            "de" => Lang::De,
            _ => Lang::En,
        }
    }

    /// The first language of an `Accept-Language` header that Parlo writes (English if none).
    pub fn from_accept_language(header: &str) -> Lang {
        for part in header.split(',') {
            let tag = part
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if tag == "de" || tag.starts_with("de-") {
                return Lang::De;
            }
            if tag == "en" || tag.starts_with("en-") {
                return Lang::En;
            }
        }
        Lang::En
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub password_hash: String,
    pub totp: Option<SealedSecret>,
    pub created_at: Timestamp,
    /// Whether the owner proved they receive mail at `email` (a link, or a password reset).
    pub email_verified: bool,
    /// The language of the user's mail.
    pub language: Lang,
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
    /// When the session was last used (noted at most once a minute).
    pub last_seen_at: Option<Timestamp>,
    /// A coarse description of its client ("Chrome on Linux").
    pub client: String,
}

/// A login session as its owner sees it on the account page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: SessionId,
    pub created_at: Timestamp,
    pub last_seen_at: Option<Timestamp>,
    /// A coarse description of the client ("Chrome on Linux"), never the User-Agent.
    pub client: String,
}

#[cfg(test)]
mod tests {
    use super::*;

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
