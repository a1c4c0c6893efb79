//! The settings an operator can give, each in three places: a command-line flag, a
//! `PARLO_*` environment variable (both through clap) or a key of the TOML file (serde).
//! Everything here is optional; `Config::load` applies the precedence and the defaults.
//! Secrets are not settings: they come only from the environment or the key file.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use url::Url;

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

    /// Directory of published widget bundles (`manifest.json`, `widget/vX.Y.Z/`). Without
    /// it the bundles built into the binary are served.
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

    /// How often the trust page's live checks run, in seconds (default 300; they also run
    /// at start). One process at a time runs them; every process shows their results.
    #[arg(
        long,
        global = true,
        env = "PARLO_TRUST_CHECK_INTERVAL_SECS",
        value_name = "SECS"
    )]
    pub trust_check_interval_secs: Option<u64>,

    /// Address of the operator-only Prometheus listener serving `/metrics` (off by default;
    /// never the public listener). E.g. `127.0.0.1:9090`.
    #[arg(long, global = true, env = "PARLO_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
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

impl Settings {
    /// Field-wise: `self` where set, else `other`.
    pub(super) fn or(self, other: Settings) -> Settings {
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
            trust_check_interval_secs: self
                .trust_check_interval_secs
                .or(other.trust_check_interval_secs),
            metrics_listen: self.metrics_listen.or(other.metrics_listen),
        }
    }
}
