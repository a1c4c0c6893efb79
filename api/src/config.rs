//! The effective configuration: command line > `PARLO_*` environment > TOML file > defaults.
//! Owns validation of the production rules (keys present, key file private, https URL).
//! Secrets never come from the command line (they would show in `ps`), and every secret is
//! a `SecretString` so that neither `Debug` nor `parlo config check` can print it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::keyring::KeySource;

/// Settings that may be given on the command line, in the environment or in the TOML file.
#[derive(Debug, Default, Clone, clap::Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Settings {
    /// `development` (default) or `production`. Production refuses to start with generated
    /// keys, a key file others can read, or a public URL that is not https.
    #[arg(long, global = true, env = "PARLO_ENV", value_enum)]
    pub env: Option<Environment>,

    /// Address to listen on.
    #[arg(long, global = true, env = "PARLO_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// The URL customers and end users reach this server at (origin of the widget, links in
    /// pages). Defaults to http://<listen address>. Must be https in production.
    #[arg(long, global = true, env = "PARLO_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<Url>,

    /// Directory for the SQLite database and the development key file.
    #[arg(long, global = true, env = "PARLO_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Database URL: `sqlite://path/to/file.db` or `postgres://user@host/db`. Defaults to
    /// SQLite in the data directory. On PostgreSQL this is the application role, which must
    /// own no table and be NOSUPERUSER NOBYPASSRLS NOINHERIT.
    #[arg(
        long,
        global = true,
        env = "PARLO_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// PostgreSQL only: URL of the role that owns the schema and runs migrations. Without
    /// it, `parlo serve` on PostgreSQL checks that migrations were applied by `parlo migrate`.
    #[arg(
        long,
        global = true,
        env = "PARLO_MIGRATION_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub migration_database_url: Option<String>,

    /// Key file holding the master and token keys when they are not in the environment.
    /// Defaults to `<data dir>/keys.toml`, generated on first start in development.
    #[arg(long, global = true, env = "PARLO_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    /// Directory of published widget bundles (`manifest.json`, `widget/vX.Y.Z/`).
    #[arg(long, global = true, env = "PARLO_DIST_DIR", value_name = "DIR")]
    pub dist_dir: Option<PathBuf>,

    /// Base URL of the Mistral API (operator configuration only; tenants cannot change it).
    #[arg(
        long,
        global = true,
        env = "PARLO_MISTRAL_BASE_URL",
        value_name = "URL"
    )]
    pub mistral_base_url: Option<Url>,

    /// Seconds to wait for a connection to the upstream API.
    #[arg(
        long,
        global = true,
        env = "PARLO_UPSTREAM_CONNECT_TIMEOUT_SECS",
        value_name = "SECS"
    )]
    pub upstream_connect_timeout_secs: Option<u64>,

    /// Seconds to wait for the upstream's first byte and between two pieces of an answer.
    #[arg(
        long,
        global = true,
        env = "PARLO_UPSTREAM_READ_TIMEOUT_SECS",
        value_name = "SECS"
    )]
    pub upstream_read_timeout_secs: Option<u64>,

    /// Largest request body accepted, in bytes (attachments have their own limit).
    #[arg(
        long,
        global = true,
        env = "PARLO_MAX_BODY_BYTES",
        value_name = "BYTES"
    )]
    pub max_body_bytes: Option<usize>,

    /// Proxies whose X-Forwarded-For is believed (comma-separated IPs or CIDRs). Without
    /// this the client IP is the socket peer and X-Forwarded-For is ignored.
    #[arg(
        long,
        global = true,
        env = "PARLO_TRUSTED_PROXIES",
        value_name = "LIST",
        value_delimiter = ','
    )]
    pub trusted_proxies: Option<Vec<ipnet::IpNet>>,

    /// Widget requests per client IP per minute (all widget endpoints together).
    #[arg(
        long,
        global = true,
        env = "PARLO_RATE_LIMIT_IP_PER_MINUTE",
        value_name = "N"
    )]
    pub rate_limit_ip_per_minute: Option<u32>,

    /// Messages per conversation per minute.
    #[arg(
        long,
        global = true,
        env = "PARLO_RATE_LIMIT_CONVERSATION_PER_MINUTE",
        value_name = "N"
    )]
    pub rate_limit_conversation_per_minute: Option<u32>,

    /// Log filter in `tracing` syntax, e.g. `info` or `parlo=debug,sqlx=warn`.
    #[arg(long, global = true, env = "PARLO_LOG", value_name = "FILTER")]
    pub log: Option<String>,

    /// Log format: `json` (default) or `pretty`.
    #[arg(long, global = true, env = "PARLO_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// TOML file listing the sub-processors shown on the public trust page: `[[subprocessor]]`
    /// tables with `name`, `purpose`, `location`, `added` (YYYY-MM-DD) and optional `removed`.
    #[arg(
        long,
        global = true,
        env = "PARLO_SUBPROCESSORS_FILE",
        value_name = "FILE"
    )]
    pub subprocessors_file: Option<PathBuf>,

    /// Where security researchers reach the operator (`mailto:…` or an https URL); the
    /// `Contact` line of `/.well-known/security.txt`, which is only served when this is set.
    #[arg(
        long,
        global = true,
        env = "PARLO_SECURITY_CONTACT",
        value_name = "URI"
    )]
    pub security_contact: Option<String>,

    /// Directory whose `toms.md` and `dpa.md` replace the shipped legal templates.
    #[arg(long, global = true, env = "PARLO_LEGAL_DIR", value_name = "DIR")]
    pub legal_dir: Option<PathBuf>,

    /// Seconds to let in-flight requests finish after SIGTERM/Ctrl-C.
    #[arg(
        long,
        global = true,
        env = "PARLO_SHUTDOWN_GRACE_SECS",
        value_name = "SECS"
    )]
    pub shutdown_grace_secs: Option<u64>,

    /// How often `parlo serve` deletes conversations older than their bot's retention, in
    /// seconds (default 3600; 0 turns the job off, e.g. when cron runs `parlo retention run`).
    #[arg(
        long,
        global = true,
        env = "PARLO_RETENTION_INTERVAL_SECS",
        value_name = "SECS"
    )]
    pub retention_interval_secs: Option<u64>,

    /// Most messages and attachments retention deletes in one transaction (default 1000).
    #[arg(
        long,
        global = true,
        env = "PARLO_RETENTION_BATCH_ROWS",
        value_name = "N"
    )]
    pub retention_batch_rows: Option<u32>,

    /// Pause between two retention transactions, in milliseconds, so requests waiting for
    /// the database get their turn (default 100 on SQLite, 5 on PostgreSQL).
    #[arg(
        long,
        global = true,
        env = "PARLO_RETENTION_PAUSE_MS",
        value_name = "MS"
    )]
    pub retention_pause_ms: Option<u64>,

    /// Directory for encrypted backups (default `<data dir>/backups`).
    #[arg(long, global = true, env = "PARLO_BACKUP_DIR", value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,

    /// age X25519 recipients (`age1…`, comma-separated) every backup is encrypted to. Without
    /// one, `parlo backup` refuses to write anything.
    #[arg(
        long,
        global = true,
        env = "PARLO_BACKUP_RECIPIENTS",
        value_name = "LIST",
        value_delimiter = ','
    )]
    pub backup_recipients: Option<Vec<String>>,

    /// Shell command run after each backup with the backup's path as `$1`, e.g.
    /// `rclone copy "$1" offsite:parlo/`.
    #[arg(long, global = true, env = "PARLO_BACKUP_COMMAND", value_name = "CMD")]
    pub backup_command: Option<String>,

    /// Local backups older than this many days are deleted after a backup (default 14; 0
    /// keeps all).
    #[arg(
        long,
        global = true,
        env = "PARLO_BACKUP_KEEP_DAYS",
        value_name = "DAYS"
    )]
    pub backup_keep_days: Option<u32>,

    /// `parlo serve` writes a backup every this many hours (e.g. 24; default 0: off).
    #[arg(
        long,
        global = true,
        env = "PARLO_BACKUP_INTERVAL_HOURS",
        value_name = "HOURS"
    )]
    pub backup_interval_hours: Option<u64>,

    /// PostgreSQL only: URL of the role that dumps and restores (pg_dump/pg_restore). Row
    /// level security is forced even for the owner, so this role needs BYPASSRLS (or is a
    /// superuser); it also needs CREATEDB for `parlo restore --verify`.
    #[arg(
        long,
        global = true,
        env = "PARLO_BACKUP_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub backup_database_url: Option<String>,

    /// File holding the head (sequence number and hash) of the operator audit chain, written
    /// after every `parlo admin` action (default `<data dir>/operator-audit.head`).
    #[arg(
        long,
        global = true,
        env = "PARLO_AUDIT_HEAD_FILE",
        value_name = "FILE"
    )]
    pub audit_head_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Json,
    Pretty,
}

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
    pub dist_dir: PathBuf,
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
}

/// One entry of the operator's sub-processor list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubProcessor {
    pub name: String,
    pub purpose: String,
    pub location: String,
    /// The day it was added (a change customers are told about), `YYYY-MM-DD`.
    #[serde(with = "toml_date")]
    pub added: time::Date,
    /// The day it stopped being used, if it did; kept on the list as part of its history.
    #[serde(default, with = "toml_date::option")]
    pub removed: Option<time::Date>,
}

/// TOML dates (`added = 2025-01-15`, or the same as a string) as `time::Date`, written back
/// as `"2025-01-15"` (for the JSON twin of the list).
mod toml_date {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Toml(toml::value::Datetime),
        Text(String),
    }

    fn parse(raw: Raw) -> Result<time::Date, String> {
        let text = match raw {
            Raw::Toml(dt) if dt.time.is_none() && dt.offset.is_none() => dt.to_string(),
            Raw::Toml(dt) => return Err(format!("{dt} is not a plain date (YYYY-MM-DD)")),
            Raw::Text(t) => t,
        };
        time::Date::parse(
            &text,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .map_err(|_| format!("{text:?} is not a date (YYYY-MM-DD)"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<time::Date, D::Error> {
        parse(Raw::deserialize(d)?).map_err(serde::de::Error::custom)
    }

    pub fn serialize<S: Serializer>(date: &time::Date, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(date)
    }

    pub mod option {
        use super::*;

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<time::Date>, D::Error> {
            Option::<Raw>::deserialize(d)?
                .map(parse)
                .transpose()
                .map_err(serde::de::Error::custom)
        }

        pub fn serialize<S: Serializer>(
            date: &Option<time::Date>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match date {
                Some(d) => s.collect_str(d),
                None => s.serialize_none(),
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubProcessorsFile {
    #[serde(default)]
    subprocessor: Vec<SubProcessor>,
}

/// Reads `PARLO_SUBPROCESSORS_FILE`.
pub fn load_subprocessors(path: &Path) -> anyhow::Result<Vec<SubProcessor>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the sub-processor list {}", path.display()))?;
    let file: SubProcessorsFile = toml::from_str(&text)
        .with_context(|| format!("parsing the sub-processor list {}", path.display()))?;
    Ok(file.subprocessor)
}

/// Retention, backups and the operator audit log (`crate::lifecycle`).
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    /// `None`: `parlo serve` runs no retention job.
    pub retention_interval: Option<Duration>,
    pub retention_batch_rows: u32,
    pub retention_pause: Duration,
    pub backup_dir: PathBuf,
    /// Validated `age1…` X25519 recipients.
    pub backup_recipients: Vec<String>,
    pub backup_command: Option<String>,
    /// `None`: keep every local backup.
    pub backup_keep_days: Option<u32>,
    /// `None`: `parlo serve` writes no backups.
    pub backup_interval: Option<Duration>,
    pub backup_database_url: Option<DatabaseUrl>,
    pub audit_head_file: PathBuf,
}

impl LifecycleConfig {
    fn from_settings(s: &Settings, data_dir: &Path, postgres: bool) -> anyhow::Result<Self> {
        let recipients: Vec<String> = s
            .backup_recipients
            .iter()
            .flatten()
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .collect();
        for r in &recipients {
            r.parse::<age::x25519::Recipient>().map_err(|e| {
                anyhow::anyhow!(
                    "PARLO_BACKUP_RECIPIENTS: {r:?} is not an age X25519 recipient (age1…): {e}"
                )
            })?;
        }
        // Also meaningful with a SQLite PARLO_DATABASE_URL: an operator's machine drilling a
        // PostgreSQL backup against a scratch server.
        let backup_database_url = s.backup_database_url.clone().map(DatabaseUrl::new);
        if backup_database_url
            .as_ref()
            .is_some_and(|u| !u.is_postgres())
        {
            bail!("PARLO_BACKUP_DATABASE_URL must be a postgres:// URL");
        }
        Ok(LifecycleConfig {
            retention_interval: Some(s.retention_interval_secs.unwrap_or(3600))
                .filter(|&n| n > 0)
                .map(Duration::from_secs),
            retention_batch_rows: s.retention_batch_rows.unwrap_or(1000).clamp(1, 100_000),
            // SQLite has one writer and waiting writers poll for the lock in steps of up to
            // 100 ms: without a pause that long the purge starves requests (see
            // docs/bench-lifecycle.md). PostgreSQL needs only a breather.
            retention_pause: Duration::from_millis(s.retention_pause_ms.unwrap_or(if postgres {
                5
            } else {
                100
            })),
            backup_dir: s
                .backup_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("backups")),
            backup_recipients: recipients,
            backup_command: s.backup_command.clone().filter(|c| !c.trim().is_empty()),
            backup_keep_days: Some(s.backup_keep_days.unwrap_or(14)).filter(|&d| d > 0),
            backup_interval: s
                .backup_interval_hours
                .filter(|&h| h > 0)
                .map(|h| Duration::from_secs(h * 3600)),
            backup_database_url,
            audit_head_file: s
                .audit_head_file
                .clone()
                .unwrap_or_else(|| data_dir.join("operator-audit.head")),
        })
    }
}

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
        let s = cli.clone().or(file);
        let lifecycle_settings = s.clone();

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
        let lifecycle = LifecycleConfig::from_settings(
            &lifecycle_settings,
            &data_dir,
            database_url.is_postgres(),
        )?;

        let config = Config {
            env,
            listen,
            public_url,
            dist_dir: s.dist_dir.unwrap_or_else(|| PathBuf::from("dist")),
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
        Ok(())
    }

    /// The effective configuration as TOML-like text, secrets redacted.
    pub fn render_redacted(&self) -> String {
        let mut out = String::new();
        let mut line = |k: &str, v: String| out.push_str(&format!("{k} = {v}\n"));
        line("env", format!("{:?}", self.env).to_lowercase());
        line("listen", quote(&self.listen.to_string()));
        line("public_url", quote(self.public_url.as_str()));
        line("data_dir", quote(&self.data_dir.display().to_string()));
        line("database_url", quote(&self.database_url.redacted()));
        line(
            "migration_database_url",
            self.migration_database_url
                .as_ref()
                .map_or("(unset)".to_owned(), |u| quote(&u.redacted())),
        );
        line("key_file", quote(&self.key_file.display().to_string()));
        line("master_keys", self.key_source.describe_master());
        line("token_keys", self.key_source.describe_token());
        line(
            "platform_mistral_key",
            if self.platform_mistral_key.is_some() {
                "\"REDACTED (set)\""
            } else {
                "(unset)"
            }
            .to_owned(),
        );
        line("dist_dir", quote(&self.dist_dir.display().to_string()));
        line("mistral_base_url", quote(self.mistral_base_url.as_str()));
        line(
            "upstream_connect_timeout_secs",
            self.upstream_timeouts.connect.as_secs().to_string(),
        );
        line(
            "upstream_read_timeout_secs",
            self.upstream_timeouts.read.as_secs().to_string(),
        );
        line("max_body_bytes", self.max_body_bytes.to_string());
        line(
            "trusted_proxies",
            format!(
                "{:?}",
                self.trusted_proxies
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            ),
        );
        line(
            "rate_limit_ip_per_minute",
            self.rate_limit_ip_per_minute.to_string(),
        );
        line(
            "rate_limit_conversation_per_minute",
            self.rate_limit_conversation_per_minute.to_string(),
        );
        line("log", quote(&self.log));
        line(
            "log_format",
            format!("{:?}", self.log_format).to_lowercase(),
        );
        line(
            "subprocessors",
            format!("{} entries", self.subprocessors.len()),
        );
        line(
            "security_contact",
            self.security_contact
                .as_deref()
                .map_or("(unset)".to_owned(), quote),
        );
        line(
            "legal_dir",
            self.legal_dir
                .as_ref()
                .map_or("(shipped templates)".to_owned(), |d| {
                    quote(&d.display().to_string())
                }),
        );
        line(
            "shutdown_grace_secs",
            self.shutdown_grace.as_secs().to_string(),
        );
        let l = &self.lifecycle;
        line(
            "retention_interval_secs",
            l.retention_interval.map_or(0, |d| d.as_secs()).to_string(),
        );
        line("retention_batch_rows", l.retention_batch_rows.to_string());
        line(
            "retention_pause_ms",
            l.retention_pause.as_millis().to_string(),
        );
        line("backup_dir", quote(&l.backup_dir.display().to_string()));
        line("backup_recipients", format!("{:?}", l.backup_recipients));
        line(
            "backup_command",
            l.backup_command
                .as_deref()
                .map_or("(unset)".to_owned(), quote),
        );
        line(
            "backup_keep_days",
            l.backup_keep_days.unwrap_or(0).to_string(),
        );
        line(
            "backup_interval_hours",
            l.backup_interval
                .map_or(0, |d| d.as_secs() / 3600)
                .to_string(),
        );
        line(
            "backup_database_url",
            l.backup_database_url
                .as_ref()
                .map_or("(unset)".to_owned(), |u| quote(&u.redacted())),
        );
        line(
            "audit_head_file",
            quote(&l.audit_head_file.display().to_string()),
        );
        out
    }
}

impl Settings {
    /// Field-wise: `self` where set, else `other`.
    fn or(self, other: Settings) -> Settings {
        Settings {
            env: self.env.or(other.env),
            listen: self.listen.or(other.listen),
            public_url: self.public_url.or(other.public_url),
            data_dir: self.data_dir.or(other.data_dir),
            database_url: self.database_url.or(other.database_url),
            migration_database_url: self.migration_database_url.or(other.migration_database_url),
            key_file: self.key_file.or(other.key_file),
            dist_dir: self.dist_dir.or(other.dist_dir),
            mistral_base_url: self.mistral_base_url.or(other.mistral_base_url),
            upstream_connect_timeout_secs: self
                .upstream_connect_timeout_secs
                .or(other.upstream_connect_timeout_secs),
            upstream_read_timeout_secs: self
                .upstream_read_timeout_secs
                .or(other.upstream_read_timeout_secs),
            max_body_bytes: self.max_body_bytes.or(other.max_body_bytes),
            trusted_proxies: self.trusted_proxies.or(other.trusted_proxies),
            rate_limit_ip_per_minute: self
                .rate_limit_ip_per_minute
                .or(other.rate_limit_ip_per_minute),
            rate_limit_conversation_per_minute: self
                .rate_limit_conversation_per_minute
                .or(other.rate_limit_conversation_per_minute),
            log: self.log.or(other.log),
            log_format: self.log_format.or(other.log_format),
            subprocessors_file: self.subprocessors_file.or(other.subprocessors_file),
            security_contact: self.security_contact.or(other.security_contact),
            legal_dir: self.legal_dir.or(other.legal_dir),
            shutdown_grace_secs: self.shutdown_grace_secs.or(other.shutdown_grace_secs),
            retention_interval_secs: self
                .retention_interval_secs
                .or(other.retention_interval_secs),
            retention_batch_rows: self.retention_batch_rows.or(other.retention_batch_rows),
            retention_pause_ms: self.retention_pause_ms.or(other.retention_pause_ms),
            backup_dir: self.backup_dir.or(other.backup_dir),
            backup_recipients: self.backup_recipients.or(other.backup_recipients),
            backup_command: self.backup_command.or(other.backup_command),
            backup_keep_days: self.backup_keep_days.or(other.backup_keep_days),
            backup_interval_hours: self.backup_interval_hours.or(other.backup_interval_hours),
            backup_database_url: self.backup_database_url.or(other.backup_database_url),
            audit_head_file: self.audit_head_file.or(other.audit_head_file),
        }
    }
}

fn quote(s: &str) -> String {
    format!("{s:?}")
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

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_need_no_configuration() {
        let c = Config::load(&Settings::default(), None, &no_env).unwrap();
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
        let c = Config::load(&cli, Some(&file), &no_env).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.log, "warn");
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("parlo.toml");
        std::fs::write(&file, "lisen = \"127.0.0.1:9000\"\n").unwrap();
        let err = Config::load(&Settings::default(), Some(&file), &no_env).unwrap_err();
        assert!(format!("{err:#}").contains("lisen"), "{err:#}");
    }

    #[test]
    fn production_requires_https_public_url() {
        let cli = Settings {
            env: Some(Environment::Production),
            public_url: Some(Url::parse("http://chat.example.com").unwrap()),
            ..Settings::default()
        };
        let err = Config::load(&cli, None, &no_env).unwrap_err().to_string();
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
        let err = Config::load(&cli, None, &no_env).unwrap_err().to_string();
        assert!(err.contains("PARLO_MASTER_KEYS"), "{err}");
    }

    #[test]
    fn subprocessor_list_is_read_from_toml() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("subprocessors.toml");
        std::fs::write(
            &file,
            "[[subprocessor]]\nname = \"Mistral AI\"\npurpose = \"LLM inference\"\n\
             location = \"EU (France)\"\nadded = 2025-01-15\n",
        )
        .unwrap();
        let cli = Settings {
            subprocessors_file: Some(file),
            security_contact: Some("mailto:security@example.com".into()),
            ..Settings::default()
        };
        let c = Config::load(&cli, None, &no_env).unwrap();
        assert_eq!(c.subprocessors.len(), 1);
        assert_eq!(c.subprocessors[0].added.to_string(), "2025-01-15");
        let bad = Settings {
            security_contact: Some("security@example.com".into()),
            ..Settings::default()
        };
        assert!(Config::load(&bad, None, &no_env).is_err());
    }

    #[test]
    fn backup_recipients_must_be_age_keys() {
        let cli = Settings {
            backup_recipients: Some(vec!["ssh-ed25519 AAAA".into()]),
            ..Settings::default()
        };
        let err = Config::load(&cli, None, &no_env).unwrap_err().to_string();
        assert!(err.contains("PARLO_BACKUP_RECIPIENTS"), "{err}");
        let key = age::x25519::Identity::generate().to_public().to_string();
        let cli = Settings {
            backup_recipients: Some(vec![key.clone()]),
            ..Settings::default()
        };
        let c = Config::load(&cli, None, &no_env).unwrap();
        assert_eq!(c.lifecycle.backup_recipients, vec![key]);
        assert_eq!(c.lifecycle.backup_keep_days, Some(14));
        assert_eq!(c.lifecycle.backup_interval, None);
    }

    #[test]
    fn backup_database_password_is_redacted() {
        let cli = Settings {
            database_url: Some("postgres://app@db/parlo".into()),
            backup_database_url: Some("postgres://backup:s3cretbackup@db/parlo".into()),
            ..Settings::default()
        };
        let c = Config::load(&cli, None, &no_env).unwrap();
        assert!(!format!("{c:?}").contains("s3cretbackup"));
        assert!(!c.render_redacted().contains("s3cretbackup"));
    }

    #[test]
    fn database_password_is_redacted_everywhere() {
        let cli = Settings {
            database_url: Some("postgres://app:hunter2secret@db/parlo".into()),
            ..Settings::default()
        };
        let c = Config::load(&cli, None, &no_env).unwrap();
        assert!(!format!("{c:?}").contains("hunter2secret"));
        assert!(!c.render_redacted().contains("hunter2secret"));
        assert!(
            c.render_redacted()
                .contains("postgres://app:REDACTED@db/parlo")
        );
    }
}
