//! The `parlo` command line: `serve` (default), `migrate`, `config check`, `keys generate`,
//! `render`, and the data lifecycle: `retention run`, `backup`, `restore`, `admin …`.
//! Parses configuration once and hands it to the application. `serve.rs` runs the server,
//! `admin.rs` the operator's `parlo admin` commands; the rest is small enough to live here.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod admin;
mod env;
mod knowledge;
mod serve;

use crate::config::{Config, CredentialSetting, Settings};
use crate::keyring;
use crate::lifecycle;
use crate::logging::{self, Redactor};
use crate::{model, storage};

use admin::AdminArgs;
use knowledge::KnowledgeCommand;

const SECRETS_HELP: &str = "\
Secrets are read from the environment (or the key file), never from the command line:
  PARLO_MASTER_KEYS   master keys encrypting customers' API keys, `1:<base64 32 bytes>[,…]`;
                      the highest version encrypts, all listed versions decrypt
  PARLO_TOKEN_KEYS    widget token signing keys, `k1:<base64 32 bytes>[,…]`; the first signs,
                      all verify (rotate by prepending a new key, remove the old one later)
  PARLO_PLATFORM_MISTRAL_KEY
                      optional operator key used for workspaces that stored none
  PARLO_BACKUP_SIGNING_KEY
                      optional `<base64 32 bytes>` signing backups instead of the key derived
                      from the newest master key (for a backup host without master keys)
Database URLs may carry a password, so they have no flag either: set them in the
environment or the config file (database_url, migration_database_url, backup_database_url):
  PARLO_DATABASE_URL  `sqlite://path/to/file.db` or `postgres://user@host/db` (default: SQLite
                      in the data directory); on PostgreSQL the application role, which must
                      own no table and be NOSUPERUSER NOBYPASSRLS NOINHERIT
  PARLO_MIGRATION_DATABASE_URL
                      PostgreSQL only: the role that owns the schema and runs migrations
  PARLO_BACKUP_DATABASE_URL
                      PostgreSQL only: the role (BYPASSRLS, CREATEDB) that dumps and restores
Without them, development generates both into <data dir>/keys.toml (mode 0600);
PARLO_ENV=production refuses to start without them. `parlo keys generate` prints new keys.";

#[derive(Debug, Parser)]
#[command(
    name = "parlo",
    version,
    about = "Parlo: a self-hostable, security-first embeddable AI chat widget platform",
    after_long_help = SECRETS_HELP
)]
struct Cli {
    /// Optional TOML file with any of the settings below (snake_case keys); command-line
    /// flags and PARLO_* variables override it.
    #[arg(long, global = true, env = "PARLO_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(flatten)]
    settings: Settings,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default): applies migrations and serves HTTP.
    Serve,
    /// Apply database migrations (on PostgreSQL as the owner role, then grant the app role).
    Migrate,
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage the server's keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Read markdown on stdin and write exactly the sanitised HTML the widget would show.
    Render,
    /// Delete chat data older than each bot's retention (what `parlo serve` does hourly).
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Write an encrypted backup (age, to PARLO_BACKUP_RECIPIENTS) into the backup directory.
    Backup,
    /// Restore a backup into an empty database, or with --verify run the restore drill.
    Restore(RestoreArgs),
    /// Operator actions across workspaces; every one is recorded in the operator audit log.
    Admin(AdminArgs),
    /// Knowledge libraries: import files and pages, search as a bot, reindex.
    #[command(subcommand)]
    Knowledge(KnowledgeCommand),
}

#[derive(Debug, Subcommand)]
enum RetentionCommand {
    /// Run retention once and report what was deleted (for cron when the serve job is off).
    Run,
}

#[derive(Debug, clap::Args)]
struct RestoreArgs {
    /// The backup file (`parlo-….age`).
    backup: PathBuf,
    /// age identity file holding the secret key matching one of the backup's recipients.
    #[arg(long, value_name = "KEYFILE")]
    identity: PathBuf,
    /// Restore into a temporary database, check integrity and row counts, then delete it.
    #[arg(long)]
    verify: bool,
    /// Target: a SQLite file (or sqlite:// URL) or a postgres:// URL of an empty database.
    /// Defaults to the configured SQLite database or PARLO_BACKUP_DATABASE_URL.
    #[arg(long, value_name = "TARGET", conflicts_with = "verify")]
    into: Option<String>,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration with secrets redacted, and check it.
    Check,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Print a fresh PARLO_MASTER_KEYS and PARLO_TOKEN_KEYS for the environment.
    Generate,
    /// Print a new age identity for backups (the format of `age-keygen`): keep the output
    /// offline, put the public key it names into PARLO_BACKUP_RECIPIENTS.
    BackupIdentity,
    /// Print the public keys that verify this server's backup signatures (one per master key
    /// version, and PARLO_BACKUP_SIGNING_KEY's), for PARLO_BACKUP_VERIFY_KEY on the machines
    /// that restore.
    BackupVerifyKey,
    /// Re-seal every stored secret (provider keys of all workspaces, TOTP secrets) under the
    /// newest master key, so older versions can be removed from PARLO_MASTER_KEYS. Recorded
    /// in the operator audit log like `parlo admin` actions.
    RotateMaster,
}

pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if let Some(refusal) = CredentialSetting::refuse(&args) {
        eprintln!("parlo: {refusal}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let redactor = Redactor::default();
            eprintln!("parlo: {}", redactor.redact(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let load = || {
        Config::load(&cli.settings, cli.config.as_deref(), &|k| {
            std::env::var(k).ok()
        })
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let known = env::known_env(&<Cli as clap::CommandFactory>::command());
            runtime()?.block_on(serve::serve(load()?, known))
        }
        Command::Migrate => {
            let config = load()?;
            logging::init(&config, Redactor::default())?;
            runtime()?.block_on(storage::migrate(
                &config.database_url,
                config.migration_database_url.as_ref(),
            ))?;
            eprintln!(
                "parlo: migrations applied to {}",
                config.database_url.redacted()
            );
            Ok(())
        }
        Command::Config(ConfigCommand::Check) => {
            let config = load()?;
            print!("{}", config.render_redacted());
            let keys = if config.key_source.is_complete() {
                "from the environment".to_owned()
            } else if config.key_file.exists() {
                format!("from {}", config.key_file.display())
            } else {
                format!(
                    "will be generated into {} on first start",
                    config.key_file.display()
                )
            };
            eprintln!("parlo: configuration is valid; keys {keys}");
            Ok(())
        }
        Command::Keys(KeysCommand::Generate) => {
            print!("{}", keyring::generate_env_lines());
            Ok(())
        }
        Command::Keys(KeysCommand::BackupIdentity) => {
            let id = age::x25519::Identity::generate();
            let public = id.to_public();
            println!("# created: {}", model::Timestamp::now().to_rfc3339());
            println!("# public key: {public}");
            println!("{}", secrecy::ExposeSecret::expose_secret(&id.to_string()));
            eprintln!("parlo: public key (for PARLO_BACKUP_RECIPIENTS): {public}");
            Ok(())
        }
        Command::Keys(KeysCommand::BackupVerifyKey) => {
            let config = load()?;
            let list = keyring::own_backup_verify_keys(
                &config.key_source,
                &config.key_file,
                config.is_production(),
            )?;
            if list.is_empty() {
                anyhow::bail!(
                    "no backup signing key here: run this where the server's master keys (or \
                     PARLO_BACKUP_SIGNING_KEY) are configured"
                );
            }
            let all: Vec<String> = list.iter().map(ToString::to_string).collect();
            println!("PARLO_BACKUP_VERIFY_KEY={}", all.join(","));
            Ok(())
        }
        Command::Keys(KeysCommand::RotateMaster) => {
            let config = load()?;
            let (keys, _) =
                keyring::load(&config.key_source, &config.key_file, config.is_production())?;
            runtime()?.block_on(async {
                let store = storage::open(&config.database_url, None).await?;
                let op = lifecycle::admin::Operator::new(
                    store,
                    lifecycle::admin::Operator::default_actor(),
                    Some(config.lifecycle.audit_head_file.clone()),
                );
                let (r, e) = op.rotate_master(&keys.master).await?;
                eprintln!("parlo: {r}");
                admin::print_recorded(&e);
                println!("{}", serde_json::to_string(&r)?);
                Ok(())
            })
        }
        Command::Retention(RetentionCommand::Run) => {
            let config = load()?;
            runtime()?.block_on(async {
                let store = storage::open(&config.database_url, None).await?;
                let l = &config.lifecycle;
                let opts = lifecycle::retention::RetentionOptions {
                    batch_rows: l.retention_batch_rows,
                    pause: l.retention_pause,
                };
                match lifecycle::retention::run(&store, model::Timestamp::now(), opts).await? {
                    lifecycle::retention::RetentionOutcome::Ran(r) => {
                        eprintln!("parlo: retention: {r}");
                        println!("{}", serde_json::to_string(&r)?);
                    }
                    lifecycle::retention::RetentionOutcome::AlreadyRunning => {
                        eprintln!("parlo: retention: another process is running it; nothing done");
                    }
                }
                Ok(())
            })
        }
        Command::Backup => {
            let config = load()?;
            runtime()?.block_on(async {
                let result =
                    lifecycle::backup::run(&config, lifecycle::archive::Progress::Terminal).await;
                if let Some(store) = lifecycle::records::open_store(&config).await {
                    lifecycle::records::backup(&store, &result).await;
                }
                println!("{}", result?.path.display());
                Ok(())
            })
        }
        Command::Restore(args) => {
            let config = load()?;
            runtime()?.block_on(restore(config, args))
        }
        Command::Admin(args) => {
            let config = load()?;
            runtime()?.block_on(admin::admin(config, args))
        }
        Command::Knowledge(command) => {
            let config = load()?;
            runtime()?.block_on(knowledge::knowledge(config, command))
        }
        Command::Render => {
            let mut markdown = String::new();
            std::io::stdin()
                .read_to_string(&mut markdown)
                .context("reading markdown from stdin")?;
            print!("{}", parlo_render::render(&markdown));
            Ok(())
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn restore(config: Config, args: RestoreArgs) -> anyhow::Result<()> {
    use lifecycle::archive::Progress;
    let report = if args.verify {
        let result =
            lifecycle::restore::verify(&config, &args.backup, &args.identity, Progress::Terminal)
                .await;
        if let Some(store) = lifecycle::records::open_store(&config).await {
            lifecycle::records::restore_drill(&store, &result).await;
        }
        result?
    } else {
        lifecycle::restore::restore(
            &config,
            &args.backup,
            &args.identity,
            args.into.as_deref(),
            Progress::Terminal,
        )
        .await?
    };
    println!("{:<28} {:>12} {:>12}", "TABLE", "BACKUP", "RESTORED");
    for t in &report.tables {
        let n = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
        println!("{:<28} {:>12} {:>12}", t.table, n(t.expected), n(t.found));
    }
    eprintln!(
        "parlo: restore{}: {} backup of {} restored into {}; integrity {}, all {} row counts match",
        if args.verify { " drill passed" } else { "" },
        report.backend,
        report.created_at,
        report.restored_into,
        report.integrity,
        report.tables.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_is_a_known_environment_variable() {
        let known = env::known_env(&<Cli as clap::CommandFactory>::command());
        for name in [
            "PARLO_LISTEN",
            "PARLO_CONFIG",
            "PARLO_METRICS_LISTEN",
            "PARLO_MASTER_KEYS",
            // Read outside clap: credentials (no flags) and secrets.
            "PARLO_DATABASE_URL",
            "PARLO_MIGRATION_DATABASE_URL",
            "PARLO_BACKUP_DATABASE_URL",
            "PARLO_SMTP_URL",
            "PARLO_BACKUP_SIGNING_KEY",
            "PARLO_KNOWLEDGE_POLL_MS",
        ] {
            assert!(
                known.iter().any(|k| k == name),
                "{name} missing from {known:?}"
            );
        }
    }
}
