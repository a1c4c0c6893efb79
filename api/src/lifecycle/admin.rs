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
        self.audited(
            "workspace.suspend",
            &t.to_string(),
            json!({ "reason": reason }),
            async {
                if !self.store.set_suspended(t, Some(now)).await? {
                    bail!("no workspace {t}");
                }
                Ok(())
            },
        )
        .await
        .map(|((), e)| e)
    }

    pub async fn unsuspend(
        &self,
        t: TenantId,
        reason: Option<&str>,
    ) -> anyhow::Result<OperatorAuditEntry> {
        self.audited(
            "workspace.unsuspend",
            &t.to_string(),
            json!({ "reason": reason }),
            async {
                if !self.store.set_suspended(t, None).await? {
                    bail!("no workspace {t}");
                }
                Ok(())
            },
        )
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
