//! The `parlo` command line: `serve` (default), `migrate`, `config check`, `keys generate`,
//! `render`, and the data lifecycle: `retention run`, `backup`, `restore`, `admin …`.
//! Parses configuration once and hands it to the application.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::{self, AppState};
use crate::config::{Config, Settings};
use crate::keys::{self, KeyOrigin};
use crate::lifecycle;
use crate::logging::{self, Redactor};
use crate::model;
use crate::storage;

const SECRETS_HELP: &str = "\
Secrets are read from the environment (or the key file), never from the command line:
  PARLO_MASTER_KEYS   master keys encrypting customers' API keys, `1:<base64 32 bytes>[,…]`;
                      the highest version encrypts, all listed versions decrypt
  PARLO_TOKEN_KEYS    widget token signing keys, `k1:<base64 32 bytes>[,…]`; the first signs,
                      all verify (rotate by prepending a new key, remove the old one later)
  PARLO_PLATFORM_MISTRAL_KEY
                      optional operator key used for workspaces that stored none
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

#[derive(Debug, clap::Args)]
struct AdminArgs {
    /// Who is acting, for the audit log (default: $SUDO_USER or $USER).
    #[arg(long, value_name = "NAME")]
    actor: Option<String>,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Workspaces (tenants).
    #[command(subcommand)]
    Workspaces(WorkspacesCommand),
    /// User accounts.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// The operator audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
enum WorkspacesCommand {
    /// List every workspace.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Members, bots, conversations, messages and tokens per workspace.
    Usage {
        id: Option<model::TenantId>,
        #[arg(long)]
        json: bool,
    },
    /// Stop a workspace's widgets from starting sessions.
    Suspend {
        id: model::TenantId,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a suspension.
    Unsuspend {
        id: model::TenantId,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Delete a workspace and every row of its data.
    Delete {
        id: model::TenantId,
        #[arg(long)]
        reason: Option<String>,
        /// Confirms the deletion (it cannot be undone, except from a backup).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
enum AccountsCommand {
    /// Erase an account: its sessions, memberships, and workspaces where it is the only
    /// member. Refuses if it is the only owner of a workspace with other members.
    Delete {
        email: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the hash chain, and that it still contains the recorded head.
    Verify {
        /// The head to check against (`SEQ:HEX`, as printed after each action); defaults to
        /// the head file.
        #[arg(long, value_name = "SEQ:HEX")]
        head: Option<lifecycle::audit::Head>,
    },
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
}

pub fn main() -> ExitCode {
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
        Command::Serve => runtime()?.block_on(serve(load()?)),
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
            print!("{}", keys::generate_env_lines());
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
                let r =
                    lifecycle::backup::run(&config, lifecycle::archive::Progress::Terminal).await?;
                println!("{}", r.path.display());
                Ok(())
            })
        }
        Command::Restore(args) => {
            let config = load()?;
            runtime()?.block_on(restore(config, args))
        }
        Command::Admin(args) => {
            let config = load()?;
            runtime()?.block_on(admin(config, args))
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

async fn serve(config: Config) -> anyhow::Result<()> {
    let redactor = Redactor::default();
    if let Ok(url) = url::Url::parse(config.database_url.expose())
        && let Some(pw) = url.password()
    {
        redactor.register(pw);
    }
    logging::init(&config, redactor.clone())?;
    let (keys, origin) = keys::load(&config)?;
    for literal in keys.literals() {
        redactor.register(&literal);
    }
    if let Some(k) = &config.platform_mistral_key {
        redactor.register(secrecy::ExposeSecret::expose_secret(k));
    }
    if origin == KeyOrigin::Generated {
        tracing::warn!(
            key_file = %config.key_file.display(),
            "generated development keys; set PARLO_MASTER_KEYS and PARLO_TOKEN_KEYS in production"
        );
        eprintln!(
            "parlo: WARNING: no keys configured; generated development keys into {} (mode 0600). \
             Set PARLO_MASTER_KEYS and PARLO_TOKEN_KEYS in production.",
            config.key_file.display()
        );
    }
    let store = storage::open(&config.database_url, config.migration_database_url.as_ref()).await?;
    let state = AppState::new(config, store, keys);
    let backend = state.store.backend();
    // Listen for signals before announcing the URL, so a supervisor that stops us right
    // after start-up gets a graceful shutdown, not the default signal death.
    let signal = shutdown_signal()?;
    let jobs = lifecycle::jobs::spawn(state.store.clone(), state.config.clone())?;
    let server = app::spawn(state.clone()).await?;
    let url = local_url(server.addr);
    tracing::info!(url = %url, backend = ?backend, "parlo is listening");
    eprintln!(
        "parlo: serving on {url} (database: {})",
        state.config.database_url.redacted()
    );
    if url.trim_end_matches('/') != state.config.public_url.as_str().trim_end_matches('/') {
        eprintln!("parlo: public URL: {}", state.config.public_url);
    }
    signal.await?;
    tracing::info!("shutting down");
    jobs.stop();
    server.shutdown().await
}

async fn restore(config: Config, args: RestoreArgs) -> anyhow::Result<()> {
    use lifecycle::archive::Progress;
    let report = if args.verify {
        lifecycle::restore::verify(&config, &args.backup, &args.identity, Progress::Terminal)
            .await?
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

async fn admin(config: Config, args: AdminArgs) -> anyhow::Result<()> {
    use lifecycle::admin::Operator;
    let store = storage::open(&config.database_url, None).await?;
    let op = Operator::new(
        store,
        args.actor.unwrap_or_else(Operator::default_actor),
        Some(config.lifecycle.audit_head_file.clone()),
    );
    let recorded = |e: &model::OperatorAuditEntry| {
        if let Some(head) = lifecycle::audit::Head::of(e) {
            eprintln!(
                "parlo: recorded as operator audit entry {}; head {head}",
                e.seq
            );
        }
    };
    let when = |t: Option<model::Timestamp>| t.map_or("-".to_owned(), |t| t.to_rfc3339());
    match args.command {
        AdminCommand::Workspaces(WorkspacesCommand::List { json }) => {
            let (rows, e) = op.list_workspaces().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!("{:<36}  {:<24}  {:<24}  NAME", "ID", "CREATED", "SUSPENDED");
                for w in &rows {
                    println!(
                        "{:<36}  {:<24}  {:<24}  {}",
                        w.id,
                        when(Some(w.created_at)),
                        when(w.suspended_at),
                        w.name
                    );
                }
            }
            recorded(&e);
        }
        AdminCommand::Workspaces(WorkspacesCommand::Usage { id, json }) => {
            let (rows, e) = op.usage(id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:<36}  {:>7} {:>5} {:>13} {:>10} {:>11} {:>14}  LAST ACTIVITY",
                    "ID", "MEMBERS", "BOTS", "CONVERSATIONS", "MESSAGES", "ATTACHMENTS", "TOKENS"
                );
                for r in &rows {
                    let u = &r.usage;
                    println!(
                        "{:<36}  {:>7} {:>5} {:>13} {:>10} {:>11} {:>14}  {}",
                        r.workspace.id,
                        u.members,
                        u.bots,
                        u.conversations,
                        u.messages,
                        u.attachments,
                        u.prompt_tokens + u.completion_tokens,
                        when(u.last_activity_at)
                    );
                }
            }
            recorded(&e);
        }
        AdminCommand::Workspaces(WorkspacesCommand::Suspend { id, reason }) => {
            let e = op
                .suspend(id, reason.as_deref(), model::Timestamp::now())
                .await?;
            eprintln!("parlo: workspace {id} suspended");
            recorded(&e);
        }
        AdminCommand::Workspaces(WorkspacesCommand::Unsuspend { id, reason }) => {
            let e = op.unsuspend(id, reason.as_deref()).await?;
            eprintln!("parlo: workspace {id} is active again");
            recorded(&e);
        }
        AdminCommand::Workspaces(WorkspacesCommand::Delete { id, reason, yes }) => {
            if !yes {
                anyhow::bail!(
                    "deleting workspace {id} removes all of its data; repeat with --yes to confirm"
                );
            }
            let e = op.delete_workspace(id, reason.as_deref()).await?;
            eprintln!("parlo: workspace {id} and all of its data deleted");
            recorded(&e);
        }
        AdminCommand::Accounts(AccountsCommand::Delete { email, reason, yes }) => {
            let email =
                model::Email::parse(&email).map_err(|e| anyhow::anyhow!("{email:?}: {e}"))?;
            if !yes {
                anyhow::bail!(
                    "deleting the account {} cannot be undone; repeat with --yes to confirm",
                    email.as_str()
                );
            }
            let (r, e) = op.delete_account(&email, reason.as_deref()).await?;
            eprintln!(
                "parlo: account deleted ({} workspaces deleted with it, {} memberships and {} sessions removed)",
                r.workspaces_deleted.len(),
                r.memberships_removed,
                r.sessions_deleted
            );
            recorded(&e);
        }
        AdminCommand::Audit(AuditCommand::Verify { head }) => {
            let r = op.verify_audit(head).await?;
            let head = r.head.map_or("(empty)".to_owned(), |h| h.to_string());
            println!("{head}");
            if r.anchored {
                eprintln!(
                    "parlo: operator audit log intact: {} entries, head {head}",
                    r.entries
                );
            } else {
                eprintln!(
                    "parlo: operator audit chain intact: {} entries, head {head}. No recorded                      head was given (--head or {}), so removal of the newest entries cannot be                      ruled out",
                    r.entries,
                    config.lifecycle.audit_head_file.display()
                );
            }
        }
    }
    Ok(())
}

fn local_url(addr: std::net::SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() {
        "localhost".to_owned()
    } else {
        addr.ip().to_string()
    };
    format!("http://{host}:{}/", addr.port())
}

/// Registers SIGTERM and Ctrl-C handlers now; the returned future completes on either.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = anyhow::Result<()>>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let ctrl_c = tokio::signal::ctrl_c();
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            r = ctrl_c => r?,
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        ctrl_c.await?;
        Ok(())
    })
}
