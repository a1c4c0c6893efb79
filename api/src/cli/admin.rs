//! `parlo admin …`: the operator's actions across workspaces (list, usage, suspend,
//! unsuspend, delete; delete an account; verify the audit chain), each run through
//! `lifecycle::admin::Operator`, which records it in the operator audit log. This file only
//! parses the arguments and prints tables, JSON and the new audit head.

use anyhow::Context;
use clap::Subcommand;

use crate::config::Config;
use crate::lifecycle;
use crate::{model, storage};

#[derive(Debug, clap::Args)]
pub(super) struct AdminArgs {
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
    /// The mail outbox.
    #[command(subcommand)]
    Mail(MailCommand),
    /// Mail a notice (e.g. of a security incident) to every owner and admin of the named
    /// workspaces, or of all with --all; each address once, only confirmed addresses.
    Notify(NotifyArgs),
}

#[derive(Debug, Subcommand)]
enum MailCommand {
    /// Pending, sent and failed messages, and the newest ones with their last error.
    Status {
        /// How many of the newest messages to list.
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
struct NotifyArgs {
    /// A workspace to notify (repeat for several).
    #[arg(long = "workspace", value_name = "ID", required_unless_present = "all")]
    workspaces: Vec<model::TenantId>,
    /// Every workspace.
    #[arg(long, conflicts_with = "workspaces")]
    all: bool,
    /// The subject: one line.
    #[arg(long)]
    subject: String,
    /// A text file with the body (paragraphs separated by blank lines).
    #[arg(long, value_name = "FILE")]
    body_file: std::path::PathBuf,
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
        head: Option<lifecycle::operator_audit::Head>,
    },
}

/// Tells the operator which audit entry recorded the action, and the new head.
pub(super) fn print_recorded(e: &model::OperatorAuditEntry) {
    if let Some(head) = lifecycle::operator_audit::Head::of(e) {
        eprintln!(
            "parlo: recorded as operator audit entry {}; head {head}",
            e.seq
        );
    }
}

pub(super) async fn admin(config: Config, args: AdminArgs) -> anyhow::Result<()> {
    use lifecycle::admin::Operator;
    let store = storage::open(&config.database_url, None).await?;
    // Checked before anything is recorded, so a bad notice leaves no trace but an error.
    let notice = match &args.command {
        AdminCommand::Notify(n) => {
            let body = std::fs::read_to_string(&n.body_file)
                .with_context(|| format!("reading {}", n.body_file.display()))?;
            Some(
                crate::mail::Mail::notice(&n.subject, &body)
                    .map_err(|e| anyhow::anyhow!("{}", e.0))?,
            )
        }
        _ => None,
    };
    let mails = notice.is_some()
        || matches!(
            &args.command,
            AdminCommand::Accounts(AccountsCommand::Delete { yes: true, .. })
        );
    let mailer = match mails {
        true => {
            let (keys, _) =
                crate::keyring::load(&config.key_source, &config.key_file, config.is_production())?;
            Some(crate::mail::Mailer::new(
                &config.mail,
                store.clone(),
                std::sync::Arc::new(keys),
            )?)
        }
        false => None,
    };
    let op = Operator::new(
        store,
        args.actor.unwrap_or_else(Operator::default_actor),
        Some(config.lifecycle.audit_head_file.clone()),
    );
    let recorded = print_recorded;
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
            let mailer = mailer.expect("prepared above");
            let (r, e) = op
                .delete_account_and_tell(&mailer, &email, reason.as_deref())
                .await?;
            eprintln!(
                "parlo: account deleted ({} workspaces deleted with it, {} memberships and {} sessions removed)",
                r.workspaces_deleted.len(),
                r.memberships_removed,
                r.sessions_deleted
            );
            recorded(&e);
            let sent = mailer.drain().await?;
            eprintln!(
                "parlo: closing notice: {} sent now, {} to be retried by `parlo serve`",
                sent.sent, sent.retried
            );
        }
        AdminCommand::Mail(MailCommand::Status { limit, json }) => {
            let ((summary, entries), e) = op.mail_status(limit).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"summary": summary, "messages": entries})
                    )?
                );
            } else {
                println!(
                    "pending {}  sent {}  failed {}  oldest pending {}",
                    summary.pending,
                    summary.sent,
                    summary.failed,
                    when(summary.oldest_pending)
                );
                println!(
                    "{:<36}  {:<8} {:>8}  {:<24}  {:<28}  {:<32}  LAST ERROR",
                    "ID", "STATUS", "ATTEMPTS", "NEXT ATTEMPT", "KIND", "RECIPIENT"
                );
                for m in &entries {
                    println!(
                        "{:<36}  {:<8} {:>8}  {:<24}  {:<28}  {:<32}  {}",
                        m.id,
                        m.status.as_str(),
                        m.attempts,
                        when(Some(m.next_attempt_at)),
                        m.kind,
                        m.recipient,
                        m.last_error.as_deref().unwrap_or("-")
                    );
                }
            }
            recorded(&e);
        }
        AdminCommand::Notify(n) => {
            let (Some(mail), Some(mailer)) = (notice, mailer) else {
                unreachable!("prepared above");
            };
            let only = (!n.all).then_some(n.workspaces);
            let (r, e) = op
                .notify(&mailer, only, &mail, |done, total| {
                    eprintln!("parlo: notify: {done}/{total} workspaces queued");
                })
                .await?;
            eprintln!(
                "parlo: notice queued for {} owners and admins of {} workspaces ({} unconfirmed addresses skipped)",
                r.recipients, r.workspaces, r.unverified_skipped
            );
            recorded(&e);
            let sent = mailer.drain().await?;
            eprintln!(
                "parlo: {} sent now, {} to be retried by `parlo serve`, {} failed (see `parlo admin mail status`)",
                sent.sent, sent.retried, sent.failed
            );
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
