//! Database URLs as secrets: the password of `PARLO_DATABASE_URL` (and of the migration and
//! backup URLs) never reaches `Debug` output, `parlo config check` or a log line.

use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// A database URL whose password never reaches `Debug` output or logs.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(SecretString::from(url.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn is_postgres(&self) -> bool {
        let url = self.expose();
        url.starts_with("postgres://") || url.starts_with("postgresql://")
    }

    /// The URL with its password replaced, safe to print.
    pub fn redacted(&self) -> String {
        match Url::parse(self.expose()) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("REDACTED"));
                }
                url.to_string()
            }
            Err(_) => "<unparseable database URL>".to_owned(),
        }
    }

    /// The user name in a PostgreSQL URL (the application role to grant privileges to).
    pub fn user(&self) -> Option<String> {
        Url::parse(self.expose())
            .ok()
            .map(|u| u.username().to_owned())
            .filter(|u| !u.is_empty())
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Settings};

    #[test]
    fn backup_database_password_is_redacted() {
        let cli = Settings {
            database_url: Some("postgres://app@db/parlo".into()),
            backup_database_url: Some("postgres://backup:s3cretbackup@db/parlo".into()),
            ..Settings::default()
        };
        let c = Config::load(&cli, None, &|_| None).unwrap();
        assert!(!format!("{c:?}").contains("s3cretbackup"));
        assert!(!c.render_redacted().contains("s3cretbackup"));
    }

    #[test]
    fn database_password_is_redacted_everywhere() {
        let cli = Settings {
            database_url: Some("postgres://app:hunter2secret@db/parlo".into()),
            ..Settings::default()
        };
        let c = Config::load(&cli, None, &|_| None).unwrap();
        assert!(!format!("{c:?}").contains("hunter2secret"));
        assert!(!c.render_redacted().contains("hunter2secret"));
        assert!(
            c.render_redacted()
                .contains("postgres://app:REDACTED@db/parlo")
        );
    }
}
