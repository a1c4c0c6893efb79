//! The effective configuration: command line > `PARLO_*` environment > TOML file > defaults,
//! loaded once into one [`Config`] that every other module reads. Owns validation of the
//! production rules (keys present, key file private, https URL). Secrets never come from the
//! command line (they would show in `ps`; database URLs only from `PARLO_*` or the file, see
//! [`CREDENTIAL_SETTINGS`]), and every secret is a `SecretString` so that
//! neither `Debug` nor `parlo config check` can print it.
//!
//! | file | holds |
//! |---|---|
//! | `mod.rs` | [`Config`], loading with precedence and defaults, the production rules |
//! | `settings.rs` | [`Settings`]: every flag / `PARLO_*` variable / TOML key |
//! | `database_url.rs` | [`DatabaseUrl`], redacted in `Debug` |
//! | `env_check.rs` | misspelled `PARLO_*` environment variables |
//! | `lifecycle.rs` | [`LifecycleConfig`]: retention, backups, the operator audit head |
//! | `subprocessors.rs` | the trust page's sub-processor list file |
//! | `mail.rs` | [`MailConfig`]: the SMTP server (a secret), the sender, the retry pace |
//! | `render.rs` | the redacted text of `parlo config check` |

mod database_url;
mod env_check;
mod knowledge;
mod lifecycle;
mod mail;
mod render;
mod settings;
mod subprocessors;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::SecretString;
use url::Url;

use crate::keyring::KeySource;

pub use database_url::DatabaseUrl;
pub use env_check::{OTHER_KNOWN_ENV, UnknownEnv, check_env, unknown_env};
pub use knowledge::KnowledgeConfig;
pub use lifecycle::LifecycleConfig;
pub use mail::MailConfig;
pub use settings::{CREDENTIAL_SETTINGS, CredentialSetting, Environment, LogFormat, Settings};
pub use subprocessors::{SubProcessor, load_subprocessors};

/// The configuration every other module reads. Built once by [`Config::load`].
#[derive(Debug, Clone)]
pub struct Config {
    pub env: Environment,
    pub listen: SocketAddr,
    pub public_url: Url,
    pub data_dir: PathBuf,
    pub database_url: DatabaseUrl,
    pub migration_database_url: Option<DatabaseUrl>,
    pub key_file: PathBuf,
    /// `PARLO_DIST_DIR`; `None` serves the bundles built into the binary.
    pub dist_dir: Option<PathBuf>,
    pub mistral_base_url: Url,
    pub upstream_timeouts: crate::mistral::Timeouts,
    pub max_body_bytes: usize,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub rate_limit_ip_per_minute: u32,
    pub rate_limit_conversation_per_minute: u32,
    pub log: String,
    pub log_format: LogFormat,
    pub shutdown_grace: Duration,
    /// Where the keys come from; resolved (and in development generated) by `keyring::load`.
    pub key_source: KeySource,
    /// The operator's own Mistral key for workspaces without one (`PARLO_PLATFORM_MISTRAL_KEY`).
    pub platform_mistral_key: Option<SecretString>,
    /// Sub-processors for the trust page, from `PARLO_SUBPROCESSORS_FILE` (empty if unset).
    pub subprocessors: Vec<SubProcessor>,
    pub security_contact: Option<String>,
    pub legal_dir: Option<PathBuf>,
    pub lifecycle: LifecycleConfig,
    pub mail: MailConfig,
    pub knowledge: KnowledgeConfig,
    /// How often the trust page's live checks run.
    pub trust_check_interval: Duration,
    /// The operator-only metrics listener, off when `None`.
    pub metrics_listen: Option<SocketAddr>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_MISTRAL_BASE_URL: &str = "https://api.mistral.ai";
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

impl Config {
    /// Merges the command line/environment (`cli`, already merged by clap) over the TOML
    /// file named by `config_file`, applies defaults and checks the production rules.
    /// `secret_env` supplies secret environment variables (a parameter so tests can pass
    /// their own without touching the process environment).
    pub fn load(
        cli: &Settings,
        config_file: Option<&Path>,
        secret_env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Config> {
        let file = match config_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str::<Settings>(&text)
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => Settings::default(),
        };
        let mut s = cli.clone().or(file);
        // Credential-bearing settings have no flag: the environment wins over the file.
        for c in &CREDENTIAL_SETTINGS {
            if let Some(value) = secret_env(c.env).filter(|v| !v.trim().is_empty()) {
                *(c.slot)(&mut s) = Some(value);
            }
        }
        let lifecycle_settings = s.clone();
        let knowledge = KnowledgeConfig::from_settings(&s);

        let env = s.env.unwrap_or(Environment::Development);
        let listen = s
            .listen
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default"));
        let public_url = match s.public_url {
            Some(url) => url,
            None => Url::parse(&format!("http://{}", display_addr(listen)))
                .context("building the default public URL")?,
        };
        if public_url.path() != "/" || public_url.query().is_some() {
            bail!(
                "PARLO_PUBLIC_URL must be an origin such as https://chat.example.com (no path), got {public_url}"
            );
        }
        let data_dir = s.data_dir.unwrap_or_else(|| PathBuf::from("data"));
        let database_url = DatabaseUrl::new(s.database_url.unwrap_or_else(|| {
            format!("sqlite://{}?mode=rwc", data_dir.join("parlo.db").display())
        }));
        let migration_database_url = s.migration_database_url.map(DatabaseUrl::new);
        if migration_database_url.is_some() && !database_url.is_postgres() {
            bail!("PARLO_MIGRATION_DATABASE_URL is only used with a PostgreSQL PARLO_DATABASE_URL");
        }
        let key_file_explicit = s.key_file.is_some();
        let key_file = s.key_file.unwrap_or_else(|| data_dir.join("keys.toml"));
        let key_source = KeySource::from_env(secret_env)?;
        let subprocessors = match &s.subprocessors_file {
            Some(path) => load_subprocessors(path)?,
            None => Vec::new(),
        };
        let security_contact = s.security_contact.filter(|c| !c.trim().is_empty());
        if let Some(c) = &security_contact
            && !(c.starts_with("mailto:") || c.starts_with("https://"))
        {
            bail!("PARLO_SECURITY_CONTACT must be a mailto: or https:// URI, got {c:?}");
        }
        let mail = MailConfig::from_settings(
            &lifecycle_settings,
            secret_env,
            &public_url,
            &data_dir,
            env == Environment::Production,
        )?;
        let lifecycle = LifecycleConfig::from_settings(
            &lifecycle_settings,
            &data_dir,
            database_url.is_postgres(),
        )?;

        let config = Config {
            env,
            listen,
            public_url,
            dist_dir: s.dist_dir,
            data_dir,
            database_url,
            migration_database_url,
            key_file,
            mistral_base_url: s
                .mistral_base_url
                .unwrap_or_else(|| Url::parse(DEFAULT_MISTRAL_BASE_URL).expect("valid default")),
            upstream_timeouts: {
                let d = crate::mistral::Timeouts::default();
                crate::mistral::Timeouts {
                    connect: s
                        .upstream_connect_timeout_secs
                        .map_or(d.connect, Duration::from_secs),
                    read: s
                        .upstream_read_timeout_secs
                        .map_or(d.read, Duration::from_secs),
                    ocr: d.ocr,
                }
            },
            max_body_bytes: s.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
            trusted_proxies: s.trusted_proxies.unwrap_or_default(),
            rate_limit_ip_per_minute: s.rate_limit_ip_per_minute.unwrap_or(60),
            rate_limit_conversation_per_minute: s.rate_limit_conversation_per_minute.unwrap_or(12),
            log: s.log.unwrap_or_else(|| "info".to_owned()),
            log_format: s.log_format.unwrap_or(LogFormat::Json),
            shutdown_grace: Duration::from_secs(s.shutdown_grace_secs.unwrap_or(20)),
            key_source,
            platform_mistral_key: secret_env("PARLO_PLATFORM_MISTRAL_KEY")
                .filter(|k| !k.trim().is_empty())
                .map(SecretString::from),
            subprocessors,
            security_contact,
            legal_dir: s.legal_dir,
            lifecycle,
            mail,
            knowledge,
            trust_check_interval: Duration::from_secs(
                s.trust_check_interval_secs.unwrap_or(300).max(1),
            ),
            metrics_listen: s.metrics_listen,
        };
        config.check_production(key_file_explicit)?;
        Ok(config)
    }

    pub fn is_production(&self) -> bool {
        self.env == Environment::Production
    }

    pub fn public_is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// The production rules that do not need the file system (the key file's mode is
    /// checked when it is read, in `keyring::load`).
    fn check_production(&self, key_file_explicit: bool) -> anyhow::Result<()> {
        if !self.is_production() {
            return Ok(());
        }
        if !self.public_is_https() {
            bail!(
                "PARLO_ENV=production needs an https public URL: set PARLO_PUBLIC_URL=https://your-host (got {})",
                self.public_url
            );
        }
        if !self.key_source.is_complete() && !key_file_explicit && !self.key_file.exists() {
            bail!(
                "PARLO_ENV=production needs its keys: set PARLO_MASTER_KEYS and PARLO_TOKEN_KEYS \
                 (generate each with `parlo keys generate`), or PARLO_KEY_FILE pointing at a key \
                 file readable only by the server's user"
            );
        }
        self.mail.check_production()
    }
}

/// `127.0.0.1:8080` stays as is; an unspecified address is shown as localhost so the
/// printed URL is one a browser can open.
fn display_addr(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_configuration() {
        let c = Config::load(&Settings::default(), None, &|_| None).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_url.as_str(), "http://127.0.0.1:8080/");
        assert!(
            c.database_url
                .expose()
                .starts_with("sqlite://data/parlo.db")
        );
        assert_eq!(c.env, Environment::Development);
    }

    #[test]
    fn command_line_wins_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("parlo.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nlog = \"debug\"\n").unwrap();
        let cli = Settings {
            log: Some("warn".into()),
            ..Settings::default()
        };
        let c = Config::load(&cli, Some(&file), &|_| None).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.log, "warn");
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("parlo.toml");
        std::fs::write(&file, "lisen = \"127.0.0.1:9000\"\n").unwrap();
        let err = Config::load(&Settings::default(), Some(&file), &|_| None).unwrap_err();
        assert!(format!("{err:#}").contains("lisen"), "{err:#}");
    }

    #[test]
    fn production_requires_https_public_url() {
        let cli = Settings {
            env: Some(Environment::Production),
            public_url: Some(Url::parse("http://chat.example.com").unwrap()),
            ..Settings::default()
        };
        let err = Config::load(&cli, None, &|_| None).unwrap_err().to_string();
        assert!(err.contains("PARLO_PUBLIC_URL=https://"), "{err}");
    }

    #[test]
    fn production_requires_keys() {
        let dir = tempfile::tempdir().unwrap();
        let cli = Settings {
            env: Some(Environment::Production),
            public_url: Some(Url::parse("https://chat.example.com").unwrap()),
            data_dir: Some(dir.path().to_owned()),
            ..Settings::default()
        };
        let err = Config::load(&cli, None, &|_| None).unwrap_err().to_string();
        assert!(err.contains("PARLO_MASTER_KEYS"), "{err}");
    }
}
