//! The settings an operator can give, each in three places: a command-line flag, a
//! `PARLO_*` environment variable (both through clap) or a key of the TOML file (serde).
//! Everything here is optional; `Config::load` applies the precedence and the defaults.
//! Secrets are not settings: they come only from the environment or the key file. Database
//! URLs (which may carry a password) are settings without a flag: the environment or the
//! TOML file only ([`CREDENTIAL_SETTINGS`]).

/// A setting that may carry a credential, so is never taken from the command line (where
/// `ps` shows it to every user of the machine).
pub struct CredentialSetting {
    /// The flag someone might try (refused with a pointer to the other two).
    pub flag: &'static str,
    pub env: &'static str,
    pub toml_key: &'static str,
    pub slot: fn(&mut Settings) -> &mut Option<String>,
}

pub const CREDENTIAL_SETTINGS: [CredentialSetting; 3] = [
    CredentialSetting {
        flag: "--database-url",
        env: "PARLO_DATABASE_URL",
        toml_key: "database_url",
        slot: |s| &mut s.database_url,
    },
    CredentialSetting {
        flag: "--migration-database-url",
        env: "PARLO_MIGRATION_DATABASE_URL",
        toml_key: "migration_database_url",
        slot: |s| &mut s.migration_database_url,
    },
    CredentialSetting {
        flag: "--backup-database-url",
        env: "PARLO_BACKUP_DATABASE_URL",
        toml_key: "backup_database_url",
        slot: |s| &mut s.backup_database_url,
    },
];

impl CredentialSetting {
    /// The refusal for a command line that names this setting, if it does (`--flag value`
    /// or `--flag=value`). Never repeats the value.
    pub fn refuse<S: AsRef<str>>(args: &[S]) -> Option<String> {
        let args = args.iter().map(AsRef::as_ref).take_while(|a| *a != "--");
        for a in args {
            for c in &CREDENTIAL_SETTINGS {
                if a == c.flag || a.strip_prefix(c.flag).is_some_and(|r| r.starts_with('=')) {
                    return Some(format!(
                        "{} is not accepted: a database URL may carry a password, and \
                         command-line arguments are visible to every user of the machine \
                         (ps, /proc). Set {} in the environment or `{}` in the config file \
                         (--config) instead",
                        c.flag, c.env, c.toml_key
                    ));
                }
            }
        }
        None
    }
}

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
    /// own no table and be NOSUPERUSER NOBYPASSRLS NOINHERIT. Only from `PARLO_DATABASE_URL`
    /// or the config file: never a flag, since it may carry a password (see `Config::load`).
    #[arg(skip)]
    pub database_url: Option<String>,

    /// PostgreSQL only: URL of the role that owns the schema and runs migrations. Without
    /// it, `parlo serve` on PostgreSQL checks that migrations were applied by `parlo migrate`.
    /// Only from `PARLO_MIGRATION_DATABASE_URL` or the config file.
    #[arg(skip)]
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

    /// Proxies whose X-Forwarded-For is believed (comma-separated IPs or CIDRs, e.g.
    /// `10.0.0.7,10.1.0.0/16`). Without this the client IP is the socket peer and
    /// X-Forwarded-For is ignored.
    #[arg(
        long,
        global = true,
        env = "PARLO_TRUSTED_PROXIES",
        value_name = "LIST",
        value_delimiter = ',',
        value_parser = parse_trusted_proxy
    )]
    #[serde(default, deserialize_with = "trusted_proxies_from_file")]
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

    /// Public keys (`ed25519:…`, comma-separated) a backup's signature must verify with
    /// before `parlo restore` (and `--verify`) trusts it, as `parlo keys backup-verify-key`
    /// prints them on the server. Needed on a machine without the server's master keys;
    /// where they are present their own verify keys are trusted as well.
    #[arg(
        long,
        global = true,
        env = "PARLO_BACKUP_VERIFY_KEY",
        value_name = "LIST",
        value_delimiter = ','
    )]
    pub backup_verify_key: Option<Vec<String>>,

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
    /// superuser); it also needs CREATEDB for `parlo restore --verify`. Only from
    /// `PARLO_BACKUP_DATABASE_URL` or the config file.
    #[arg(skip)]
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

    /// The sender of every mail, e.g. `Parlo <parlo@example.com>` (default
    /// `Parlo <noreply@<public host>>`).
    #[arg(long, global = true, env = "PARLO_MAIL_FROM", value_name = "MAILBOX")]
    pub mail_from: Option<String>,

    /// Seconds before the first retry of a mail the server could not hand over; each further
    /// retry waits twice as long, at most an hour (default 30).
    #[arg(
        long,
        global = true,
        env = "PARLO_MAIL_RETRY_SECS",
        value_name = "SECS"
    )]
    pub mail_retry_secs: Option<u64>,

    /// The SMTP server (a secret: from the TOML file or `PARLO_SMTP_URL`, never a flag).
    #[arg(skip)]
    #[serde(default)]
    pub smtp_url: Option<secrecy::SecretString>,

    /// Most knowledge sources (documents, pages, repositories) a workspace may hold
    /// (default 500).
    #[arg(
        long,
        global = true,
        env = "PARLO_KNOWLEDGE_MAX_DOCUMENTS",
        value_name = "N"
    )]
    pub knowledge_max_documents: Option<u64>,

    /// Most megabytes of uploaded and fetched knowledge a workspace may hold (default 200).
    #[arg(long, global = true, env = "PARLO_KNOWLEDGE_MAX_MB", value_name = "MB")]
    pub knowledge_max_mb: Option<u64>,

    /// Most indexed passages (chunks) a workspace may hold (default 100000).
    #[arg(
        long,
        global = true,
        env = "PARLO_KNOWLEDGE_MAX_CHUNKS",
        value_name = "N"
    )]
    pub knowledge_max_chunks: Option<u64>,

    /// How often `parlo serve` looks for queued knowledge ingestion, in milliseconds
    /// (default 2000; 0 turns the worker off).
    #[arg(
        long,
        global = true,
        env = "PARLO_KNOWLEDGE_POLL_MS",
        value_name = "MS"
    )]
    pub knowledge_poll_ms: Option<u64>,

    /// Networks server-side knowledge fetches may reach although they are private or
    /// loopback (operator only; default none).
    #[arg(
        long,
        global = true,
        env = "PARLO_KNOWLEDGE_FETCH_ALLOW",
        value_name = "LIST",
        value_delimiter = ','
    )]
    pub knowledge_fetch_allow: Option<Vec<ipnet::IpNet>>,

    /// Base URL of the GitHub API for GitHub knowledge sources (default
    /// https://api.github.com).
    #[arg(long, global = true, env = "PARLO_GITHUB_API_URL", value_name = "URL")]
    pub github_api_url: Option<Url>,

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

/// One trusted proxy: a network (`10.1.0.0/16`) or a bare address (`10.0.0.7`, meaning
/// that address alone).
pub fn parse_trusted_proxy(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| {
            format!("{s:?} is neither an IP address nor a network in CIDR notation (10.0.0.0/8)")
        })
}

fn trusted_proxies_from_file<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<ipnet::IpNet>>, D::Error> {
    let list: Option<Vec<String>> = Option::deserialize(d)?;
    list.map(|l| {
        l.iter()
            .map(|s| parse_trusted_proxy(s).map_err(serde::de::Error::custom))
            .collect()
    })
    .transpose()
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
            backup_verify_key: self.backup_verify_key.or(other.backup_verify_key),
            backup_command: self.backup_command.or(other.backup_command),
            backup_keep_days: self.backup_keep_days.or(other.backup_keep_days),
            backup_interval_hours: self.backup_interval_hours.or(other.backup_interval_hours),
            backup_database_url: self.backup_database_url.or(other.backup_database_url),
            audit_head_file: self.audit_head_file.or(other.audit_head_file),
            mail_from: self.mail_from.or(other.mail_from),
            mail_retry_secs: self.mail_retry_secs.or(other.mail_retry_secs),
            smtp_url: self.smtp_url.or(other.smtp_url),
            knowledge_max_documents: self
                .knowledge_max_documents
                .or(other.knowledge_max_documents),
            knowledge_max_mb: self.knowledge_max_mb.or(other.knowledge_max_mb),
            knowledge_max_chunks: self.knowledge_max_chunks.or(other.knowledge_max_chunks),
            knowledge_poll_ms: self.knowledge_poll_ms.or(other.knowledge_poll_ms),
            knowledge_fetch_allow: self.knowledge_fetch_allow.or(other.knowledge_fetch_allow),
            github_api_url: self.github_api_url.or(other.github_api_url),
            trust_check_interval_secs: self
                .trust_check_interval_secs
                .or(other.trust_check_interval_secs),
            metrics_listen: self.metrics_listen.or(other.metrics_listen),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }

    /// Attack surface: the documented `PARLO_TRUSTED_PROXIES=10.0.0.7` was refused (a bare
    /// address is not CIDR), pushing operators to trust far wider networks than their proxy.
    #[test]
    fn trusted_proxies_accept_bare_addresses_and_networks() {
        let cli = Cli::try_parse_from([
            "parlo",
            "--trusted-proxies",
            "10.0.0.7,2001:db8::1,10.1.0.0/16",
        ])
        .unwrap();
        let nets: Vec<String> = cli
            .settings
            .trusted_proxies
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(nets, ["10.0.0.7/32", "2001:db8::1/128", "10.1.0.0/16"]);
        let file: Settings =
            toml::from_str("trusted_proxies = [\"192.0.2.1\", \"192.0.2.0/24\"]").unwrap();
        assert_eq!(file.trusted_proxies.unwrap()[0].to_string(), "192.0.2.1/32");
        assert!(Cli::try_parse_from(["parlo", "--trusted-proxies", "proxy.local"]).is_err());
        assert!(toml::from_str::<Settings>("trusted_proxies = [\"x\"]").is_err());
    }
}
