//! Mail settings: the SMTP server (`PARLO_SMTP_URL`, a secret: environment or TOML file
//! only), the sender (`PARLO_MAIL_FROM`) and the retry pace. Without an SMTP server,
//! development writes each message as an `.eml` file into `<data dir>/outbox/`; production
//! refuses to start.

use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use lettre::message::Mailbox;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::settings::Settings;

#[derive(Debug, Clone)]
pub struct MailConfig {
    /// `smtp://host:port` (plain, loopback only in production), `smtp://…?tls=required`
    /// (STARTTLS) or `smtps://…` (implicit TLS), optionally with `user:password@`.
    pub smtp_url: Option<SecretString>,
    pub from: Mailbox,
    /// Where development writes messages when no SMTP server is configured.
    pub outbox_dir: std::path::PathBuf,
    /// The wait before the first retry; doubled for each further one, at most an hour.
    pub retry_base: Duration,
}

impl MailConfig {
    /// Refuses production without an SMTP server (checked after the other production rules).
    pub(super) fn check_production(&self) -> anyhow::Result<()> {
        if self.smtp_url.is_none() {
            bail!(
                "PARLO_ENV=production needs an SMTP server for account mail: set PARLO_SMTP_URL \
                 in the environment (or smtp_url in the config file) to smtps://HOST (implicit \
                 TLS) or smtp://HOST:587?tls=required (STARTTLS), with the mail account as the \
                 URL's user and password"
            );
        }
        Ok(())
    }

    pub(super) fn from_settings(
        s: &Settings,
        secret_env: &dyn Fn(&str) -> Option<String>,
        public_url: &Url,
        data_dir: &Path,
        production: bool,
    ) -> anyhow::Result<MailConfig> {
        let smtp_url = secret_env("PARLO_SMTP_URL")
            .filter(|u| !u.trim().is_empty())
            .map(SecretString::from)
            .or_else(|| s.smtp_url.clone());
        if let Some(url) = &smtp_url {
            check_smtp_url(url.expose_secret(), production)?;
        }
        let from = match &s.mail_from {
            Some(f) => Mailbox::from_str(f.trim()).map_err(|e| {
                anyhow::anyhow!(
                    "PARLO_MAIL_FROM must be an address such as `Parlo <parlo@example.com>`: {e}"
                )
            })?,
            None => {
                let host = match public_url.host() {
                    Some(url::Host::Domain(d)) if d.contains('.') => d.to_owned(),
                    _ => "localhost".to_owned(),
                };
                Mailbox::from_str(&format!("Parlo <noreply@{host}>"))
                    .context("building the default PARLO_MAIL_FROM")?
            }
        };
        Ok(MailConfig {
            smtp_url,
            from,
            outbox_dir: data_dir.join("outbox"),
            retry_base: Duration::from_secs(s.mail_retry_secs.unwrap_or(30).max(1)),
        })
    }
}

/// Checks the SMTP URL's form without ever putting it (it may hold a password) in an error.
fn check_smtp_url(url: &str, production: bool) -> anyhow::Result<()> {
    let Ok(u) = Url::parse(url) else {
        bail!("PARLO_SMTP_URL is not a URL (expected smtps://user:password@host:465)");
    };
    let tls = u
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let encrypted = match (u.scheme(), tls.as_deref()) {
        ("smtps", _) => true,
        ("smtp", Some("required")) => true,
        ("smtp", None | Some("opportunistic")) => false,
        _ => bail!(
            "PARLO_SMTP_URL must use smtps:// (implicit TLS) or smtp:// (with ?tls=required for \
             STARTTLS)"
        ),
    };
    let Some(host) = u.host_str() else {
        bail!("PARLO_SMTP_URL names no host");
    };
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if production && !encrypted && !loopback {
        bail!(
            "PARLO_ENV=production sends mail to another host only over TLS: use smtps:// or \
             smtp://…?tls=required in PARLO_SMTP_URL"
        );
    }
    lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url)
        .map_err(|e| anyhow::anyhow!("PARLO_SMTP_URL cannot be used: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(url: Option<&str>, production: bool) -> anyhow::Result<MailConfig> {
        let url = url.map(str::to_owned);
        MailConfig::from_settings(
            &Settings::default(),
            &move |k| (k == "PARLO_SMTP_URL").then(|| url.clone()).flatten(),
            &Url::parse("https://chat.example.com").unwrap(),
            Path::new("data"),
            production,
        )
    }

    #[test]
    fn production_needs_smtp_and_tls_to_other_hosts() {
        let e = load(None, true)
            .unwrap()
            .check_production()
            .unwrap_err()
            .to_string();
        assert!(e.contains("PARLO_SMTP_URL"), "{e}");
        let e = load(Some("smtp://u:hunter2@mail.example.com"), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("TLS") && !e.contains("hunter2"), "{e}");
        load(Some("smtps://u:hunter2@mail.example.com"), true).unwrap();
        load(Some("smtp://u:p@mail.example.com:587?tls=required"), true).unwrap();
        load(Some("smtp://127.0.0.1:25"), true).unwrap();
        load(Some("smtp://mail.example.com"), false).unwrap();
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        for bad in [
            "imap://u:hunter2@x.example",
            "hunter2",
            "smtp://u:hunter2@x?tls=maybe",
        ] {
            let e = load(Some(bad), false).unwrap_err().to_string();
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn default_sender_uses_the_public_host() {
        let c = load(None, false).unwrap();
        assert_eq!(c.from.email.to_string(), "noreply@chat.example.com");
    }
}
