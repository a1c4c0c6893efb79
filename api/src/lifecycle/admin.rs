//! Cross-tenant operator actions (`parlo admin`, and `parlo keys rotate-master`): list
//! workspaces, show usage, suspend, reactivate, delete, erase an account, re-seal secrets
//! under the newest master key. Every action is first appended to the operator
//! audit log (so nothing happens unrecorded; a failure afterwards is recorded as a second
//! entry) and the new head is written to the head file; an append to a log that no longer
//! holds the recorded head is refused (`operator_audit::append`). Must never bypass row-level
//! security: it connects as the application role, lists tenant ids from the registry and
//! reads or changes each workspace in that workspace's own tenant transaction.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::json;

use super::erasure::{self, AccountErasure};
use super::keys::{self, RotationReport};
use super::operator_audit::{self, Head, OperatorAction, VerifyReport};
use crate::keyring::MasterKeys;
use crate::model::{Email, OperatorAuditEntry, TenantId, Timestamp, WorkspaceUsage};
use crate::storage::Store;

#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkspaceSummary {
    pub id: TenantId,
    pub name: String,
    pub created_at: Timestamp,
    pub suspended_at: Option<Timestamp>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkspaceUsageRow {
    #[serde(flatten)]
    pub workspace: WorkspaceSummary,
    #[serde(flatten)]
    pub usage: WorkspaceUsage,
}

/// An operator session: who acts, where the log's head is kept.
pub struct Operator {
    store: Store,
    actor: String,
    head_file: Option<PathBuf>,
}

impl Operator {
    pub fn new(store: Store, actor: impl Into<String>, head_file: Option<PathBuf>) -> Self {
        Self {
            store,
            actor: actor.into(),
            head_file,
        }
    }

    /// The operating system user running the command (`SUDO_USER` first).
    pub fn default_actor() -> String {
        ["SUDO_USER", "USER", "LOGNAME"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| "unknown".to_owned())
    }

    /// The head in the head file, if there is one.
    fn recorded_head(&self) -> anyhow::Result<Option<Head>> {
        match &self.head_file {
            Some(path) => Head::read(path),
            None => Ok(None),
        }
    }

    async fn record(
        &self,
        action: &str,
        target: &str,
        details: serde_json::Value,
    ) -> anyhow::Result<OperatorAuditEntry> {
        let recorded = self.recorded_head()?;
        let e = operator_audit::append(
            &self.store,
            &OperatorAction {
                actor: self.actor.clone(),
                action: action.to_owned(),
                target: target.to_owned(),
                details,
            },
            recorded.as_ref(),
        )
        .await?;
        if let (Some(path), Some(head)) = (&self.head_file, Head::of(&e)) {
            head.write(path)?;
        }
        Ok(e)
    }

    /// Runs `f` after recording `action`; records `<action>.failed` if it fails.
    async fn audited<T>(
        &self,
        action: &str,
        target: &str,
        details: serde_json::Value,
        f: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<(T, OperatorAuditEntry)> {
        let entry = self.record(action, target, details).await?;
        match f.await {
            Ok(v) => Ok((v, entry)),
            Err(e) => {
                let _ = self
                    .record(
                        &format!("{action}.failed"),
                        target,
                        json!({ "error": format!("{e:#}") }),
                    )
                    .await;
                Err(e)
            }
        }
    }

    async fn summaries(&self, only: Option<TenantId>) -> anyhow::Result<Vec<WorkspaceSummary>> {
        let ids = match only {
            Some(t) => vec![t],
            None => self.store.tenant_ids().await?,
        };
        let mut out = Vec::with_capacity(ids.len());
        for t in ids {
            let Some(w) = self.store.workspace(t).await? else {
                if only.is_some() {
                    bail!("no workspace {t}");
                }
                continue;
            };
            out.push(WorkspaceSummary {
                id: w.id,
                name: w.name,
                created_at: w.created_at,
                suspended_at: self.store.suspended_at(t).await?,
            });
        }
        Ok(out)
    }

    pub async fn list_workspaces(
        &self,
    ) -> anyhow::Result<(Vec<WorkspaceSummary>, OperatorAuditEntry)> {
        self.audited("workspaces.list", "*", json!({}), self.summaries(None))
            .await
    }

    pub async fn usage(
        &self,
        only: Option<TenantId>,
    ) -> anyhow::Result<(Vec<WorkspaceUsageRow>, OperatorAuditEntry)> {
        let target = only.map_or("*".to_owned(), |t| t.to_string());
        self.audited("workspaces.usage", &target, json!({}), async {
            let mut rows = Vec::new();
            for w in self.summaries(only).await? {
                let usage = self.store.workspace_usage(w.id).await?;
                rows.push(WorkspaceUsageRow {
                    workspace: w,
                    usage,
                });
            }
            Ok(rows)
        })
        .await
    }

    pub async fn suspend(
        &self,
        t: TenantId,
        reason: Option<&str>,
        now: Timestamp,
    ) -> anyhow::Result<OperatorAuditEntry> {
        self.set_suspension(t, reason, Some(now)).await
    }

    pub async fn unsuspend(
        &self,
        t: TenantId,
        reason: Option<&str>,
    ) -> anyhow::Result<OperatorAuditEntry> {
        self.set_suspension(t, reason, None).await
    }

    /// Suspends (`since`) or lifts a suspension (`None`), audited with the reason.
    async fn set_suspension(
        &self,
        t: TenantId,
        reason: Option<&str>,
        since: Option<Timestamp>,
    ) -> anyhow::Result<OperatorAuditEntry> {
        let action = if since.is_some() {
            "workspace.suspend"
        } else {
            "workspace.unsuspend"
        };
        self.audited(action, &t.to_string(), json!({ "reason": reason }), async {
            if !self.store.set_suspended(t, since).await? {
                bail!("no workspace {t}");
            }
            Ok(())
        })
        .await
        .map(|((), e)| e)
    }

    pub async fn delete_workspace(
        &self,
        t: TenantId,
        reason: Option<&str>,
    ) -> anyhow::Result<OperatorAuditEntry> {
        self.audited(
            "workspace.delete",
            &t.to_string(),
            json!({ "reason": reason }),
            async {
                if !erasure::erase_workspace(&self.store, t).await? {
                    bail!("no workspace {t}");
                }
                Ok(())
            },
        )
        .await
        .map(|((), e)| e)
    }

    /// Erases an account (see `erasure`). The log records the user id, not the address.
    pub async fn delete_account(
        &self,
        email: &Email,
        reason: Option<&str>,
    ) -> anyhow::Result<(AccountErasure, OperatorAuditEntry)> {
        let user = self
            .store
            .user_by_email(email)
            .await?
            .context("no account with that e-mail address")?;
        self.audited(
            "account.delete",
            &user.id.to_string(),
            json!({ "reason": reason }),
            async {
                erasure::erase_account(&self.store, user.id)
                    .await
                    .map_err(anyhow::Error::from)
            },
        )
        .await
    }

    /// Re-seals every stored secret under the newest master key (see `keys`).
    pub async fn rotate_master(
        &self,
        keys: &MasterKeys,
    ) -> anyhow::Result<(RotationReport, OperatorAuditEntry)> {
        self.audited(
            "keys.rotate_master",
            "*",
            json!({ "version": keys.current().0 }),
            keys::rotate_master(&self.store, keys),
        )
        .await
    }

    /// Verifies the chain, against `recorded` or else the head file. Not itself recorded, so
    /// verifying leaves the log as it found it.
    pub async fn verify_audit(&self, recorded: Option<Head>) -> anyhow::Result<VerifyReport> {
        let recorded = match recorded {
            Some(h) => Some(h),
            None => self.recorded_head()?,
        };
        let entries = self.store.operator_audit().await?;
        operator_audit::verify(&entries, recorded.as_ref())
            .context("the operator audit log failed verification")
    }
}

// -- mail: the outbox status and incident notices (issue 13) --

/// What `parlo admin notify` did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct NotifyReport {
    pub workspaces: usize,
    /// Distinct verified owners and admins the notice was queued for.
    pub recipients: usize,
    /// Owners and admins skipped because their address is not confirmed.
    pub unverified_skipped: usize,
}

impl Operator {
    /// The outbox at a glance and its newest `limit` messages (recipients, never content).
    pub async fn mail_status(
        &self,
        limit: i64,
    ) -> anyhow::Result<(
        (crate::model::OutboxSummary, Vec<crate::model::OutboxEntry>),
        OperatorAuditEntry,
    )> {
        self.audited("mail.status", "*", json!({}), async {
            Ok((
                self.store.outbox_summary().await?,
                self.store.outbox_entries(limit).await?,
            ))
        })
        .await
    }

    /// Queues `mail` for every verified owner and admin of `only` (or of every workspace),
    /// each address once; `progress(done, total)` after each workspace.
    pub async fn notify(
        &self,
        mailer: &crate::mail::Mailer,
        only: Option<Vec<TenantId>>,
        mail: &crate::mail::Mail,
        progress: impl Fn(usize, usize),
    ) -> anyhow::Result<(NotifyReport, OperatorAuditEntry)> {
        let ids = match only {
            Some(ids) => ids,
            None => self.store.tenant_ids().await?,
        };
        let subject = match mail {
            crate::mail::Mail::Notice { subject, .. } => subject.clone(),
            _ => String::new(),
        };
        let target = if ids.len() == 1 {
            ids[0].to_string()
        } else {
            format!("{} workspaces", ids.len())
        };
        let details = json!({
            "workspaces": ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "subject": subject,
        });
        self.audited("notify", &target, details, async {
            let mut report = NotifyReport::default();
            let mut seen = std::collections::HashSet::new();
            for (i, t) in ids.iter().enumerate() {
                if self.store.workspace(*t).await?.is_none() {
                    bail!("no workspace {t}");
                }
                for m in self.store.members(*t).await? {
                    if !matches!(
                        m.role,
                        crate::model::Role::Owner | crate::model::Role::Admin
                    ) || !seen.insert(m.user_id)
                    {
                        continue;
                    }
                    let Some(user) = self.store.user(m.user_id).await? else {
                        continue;
                    };
                    if !user.email_verified {
                        report.unverified_skipped += 1;
                        continue;
                    }
                    mailer
                        .send(&user.email, user.language, mail)
                        .await
                        .with_context(|| format!("queueing the notice for a member of {t}"))?;
                    report.recipients += 1;
                }
                report.workspaces += 1;
                progress(i + 1, ids.len());
            }
            Ok(report)
        })
        .await
    }
}

impl Operator {
    /// [`Operator::delete_account`], then mails the account's address what was deleted
    /// (the workspaces by name, memberships and sessions).
    pub async fn delete_account_and_tell(
        &self,
        mailer: &crate::mail::Mailer,
        email: &Email,
        reason: Option<&str>,
    ) -> anyhow::Result<(AccountErasure, OperatorAuditEntry)> {
        let user = self
            .store
            .user_by_email(email)
            .await?
            .context("no account with that e-mail address")?;
        // The names, for the notice: afterwards the deleted workspaces are gone.
        let mut names = Vec::new();
        for m in self.store.memberships_of(user.id).await? {
            if let Some(w) = self.store.workspace(m.tenant_id).await? {
                names.push((w.id, w.name));
            }
        }
        let (erased, entry) = self.delete_account(email, reason).await?;
        let workspaces = names
            .into_iter()
            .filter(|(t, _)| erased.workspaces_deleted.contains(t))
            .map(|(_, n)| n)
            .collect();
        mailer
            .send_or_log(
                &user.email,
                user.language,
                &crate::mail::Mail::AccountClosed {
                    workspaces,
                    memberships: u64::try_from(erased.memberships_removed).unwrap_or(0),
                    sessions: erased.sessions_deleted,
                },
            )
            .await;
        Ok((erased, entry))
    }
}
