//! Workspaces (the tenants), their memberships and invitations, and each workspace's own
//! append-only audit log.

use super::error::{StoreError, StoreResult, conflict_on_unique, corrupt};
use super::sql::TenantTx;
use super::store::Store;
use crate::model::{AuditEntry, AuditId, Invitation, InvitationId, Member, Membership};
use crate::model::{NewAuditEntry, NewInvitation, Role, TenantId, Timestamp, UserId};
use crate::model::{Workspace, WorkspaceName};

#[derive(sqlx::FromRow)]
struct WorkspaceRow {
    id: TenantId,
    name: String,
    created_at: Timestamp,
}

impl From<WorkspaceRow> for Workspace {
    fn from(r: WorkspaceRow) -> Self {
        Workspace {
            id: r.id,
            name: r.name,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct MembershipRow {
    tenant_id: TenantId,
    user_id: UserId,
    role: String,
}

impl MembershipRow {
    fn into_membership(self) -> StoreResult<Membership> {
        Ok(Membership {
            tenant_id: self.tenant_id,
            user_id: self.user_id,
            role: parse_role(&self.role)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    user_id: UserId,
    email: String,
    role: String,
}

fn parse_role(s: &str) -> StoreResult<Role> {
    Role::parse(s).map_err(|_| corrupt("memberships.role"))
}

const INVITATION_COLUMNS: &str = "id, role, created_by, created_at, expires_at, email";

#[derive(sqlx::FromRow)]
struct InvitationRow {
    id: InvitationId,
    role: String,
    created_by: Option<UserId>,
    created_at: Timestamp,
    expires_at: Timestamp,
    email: Option<String>,
}

impl InvitationRow {
    fn into_invitation(self) -> StoreResult<Invitation> {
        Ok(Invitation {
            id: self.id,
            role: parse_role(&self.role)?,
            created_by: self.created_by,
            created_at: self.created_at,
            expires_at: self.expires_at,
            email: self.email,
        })
    }
}

/// What a change that would leave a workspace without an owner gets (as a conflict).
pub const LAST_OWNER: &str = "a workspace must keep at least one owner";

/// An invitation counts only while the member who created it may still grant it: an owner or
/// an admin of the workspace (both may invite admins and members). `$1` is the tenant.
const CREATOR_MAY_GRANT: &str = "EXISTS (SELECT 1 FROM memberships m \
     WHERE m.tenant_id = $1 AND m.user_id = invitations.created_by \
     AND m.role IN ('owner', 'admin'))";

/// Owner above admin above member.
fn rank(r: Role) -> u8 {
    match r {
        Role::Owner => 2,
        Role::Admin => 1,
        Role::Member => 0,
    }
}

async fn role_of(tx: &mut TenantTx, user: UserId) -> StoreResult<Option<Role>> {
    let role: Option<String> = tx
        .query_scalar("SELECT role FROM memberships WHERE tenant_id = $1 AND user_id = $2")
        .bind(user)
        .fetch_optional()
        .await?;
    role.as_deref().map(parse_role).transpose()
}

/// Refuses (rolling the transaction back) when the workspace has no owner left.
async fn ensure_an_owner(tx: &mut TenantTx) -> StoreResult<()> {
    let owners: Option<i64> = tx
        .query_scalar("SELECT COUNT(*) FROM memberships WHERE tenant_id = $1 AND role = 'owner'")
        .fetch_optional()
        .await?;
    if owners.unwrap_or(0) == 0 {
        return Err(StoreError::Conflict(LAST_OWNER));
    }
    Ok(())
}

/// Deletes the open invitations `user` created; how many.
async fn revoke_invitations_by(tx: &mut TenantTx, user: UserId) -> StoreResult<u64> {
    Ok(tx
        .query("DELETE FROM invitations WHERE tenant_id = $1 AND created_by = $2")
        .bind(user)
        .execute()
        .await?)
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: AuditId,
    actor: Option<UserId>,
    action: String,
    target: String,
    details: String,
    created_at: Timestamp,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        AuditEntry {
            id: r.id,
            actor: r.actor,
            action: r.action,
            target: r.target,
            details: r.details,
            created_at: r.created_at,
        }
    }
}

impl Store {
    /// Creates a workspace and makes `owner` its owner, in one transaction.
    pub async fn create_workspace(
        &self,
        name: &WorkspaceName,
        owner: UserId,
    ) -> StoreResult<Workspace> {
        let t = TenantId::new();
        let now = Timestamp::now();
        self.in_tenant(t, async |tx| {
            tx.query("INSERT INTO workspaces (id, created_at) VALUES ($1, $2)")
                .bind(now)
                .execute()
                .await?;
            tx.query("INSERT INTO workspace_profiles (tenant_id, name) VALUES ($1, $2)")
                .bind(name.as_str())
                .execute()
                .await?;
            tx.query(
                "INSERT INTO memberships (tenant_id, user_id, role, created_at) \
                 VALUES ($1, $2, 'owner', $3)",
            )
            .bind(owner)
            .bind(now)
            .execute()
            .await?;
            Ok(())
        })
        .await?;
        Ok(Workspace {
            id: t,
            name: name.as_str().to_owned(),
            created_at: now,
        })
    }

    pub async fn workspace(&self, t: TenantId) -> StoreResult<Option<Workspace>> {
        self.in_tenant(t, async |tx| {
            let row: Option<WorkspaceRow> = tx
                .query_as(
                    "SELECT w.id, p.name, w.created_at FROM workspaces w \
                     JOIN workspace_profiles p ON p.tenant_id = w.id \
                     WHERE w.id = $1 AND p.tenant_id = $1",
                )
                .fetch_optional()
                .await?;
            Ok(row.map(Into::into))
        })
        .await
    }

    pub async fn rename_workspace(&self, t: TenantId, name: &WorkspaceName) -> StoreResult<()> {
        let n = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query("UPDATE workspace_profiles SET name = $2 WHERE tenant_id = $1")
                    .bind(name.as_str())
                    .execute()
                    .await?)
            })
            .await?;
        if n == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    /// Deletes the workspace and, by cascade, every row of its data.
    pub async fn delete_workspace(&self, t: TenantId) -> StoreResult<bool> {
        self.in_tenant(t, async |tx| {
            let n = tx
                .query("DELETE FROM workspaces WHERE id = $1")
                .execute()
                .await?;
            Ok(n > 0)
        })
        .await
    }

    /// Every tenant's id (and nothing else), for background jobs that then work per tenant.
    pub async fn tenant_ids(&self) -> StoreResult<Vec<TenantId>> {
        self.in_global(async |tx| {
            Ok(tx
                .query_scalar("SELECT id FROM workspaces ORDER BY id")
                .fetch_all()
                .await?)
        })
        .await
    }

    /// The workspaces a user belongs to (read across tenants by user id only).
    pub async fn memberships_of(&self, user: UserId) -> StoreResult<Vec<Membership>> {
        let mut tx = self.user_tx(user).await?;
        let rows: Vec<MembershipRow> = tx
            .query_as(
                "SELECT tenant_id, user_id, role FROM memberships WHERE user_id = $1 \
                 ORDER BY created_at",
            )
            .bind(user)
            .fetch_all()
            .await?;
        tx.commit().await?;
        rows.into_iter()
            .map(MembershipRow::into_membership)
            .collect()
    }

    pub async fn members(&self, t: TenantId) -> StoreResult<Vec<Member>> {
        let rows: Vec<MemberRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(
                        "SELECT m.user_id, u.email, m.role FROM memberships m \
                         JOIN users u ON u.id = m.user_id \
                         WHERE m.tenant_id = $1 ORDER BY m.created_at",
                    )
                    .fetch_all()
                    .await?)
            })
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(Member {
                    user_id: r.user_id,
                    email: r.email,
                    role: parse_role(&r.role)?,
                })
            })
            .collect()
    }

    pub async fn add_member(&self, t: TenantId, user: UserId, role: Role) -> StoreResult<()> {
        self.in_tenant(t, async |tx| {
            tx.query(
                "INSERT INTO memberships (tenant_id, user_id, role, created_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(user)
            .bind(role.as_str())
            .bind(Timestamp::now())
            .execute()
            .await
            .map_err(conflict_on_unique("already a member"))?;
            Ok(())
        })
        .await
    }

    /// Changes a member's role: `None` if `user` is not a member, else how many of the open
    /// invitations they created were revoked (a demotion revokes them all, in the same
    /// transaction). Refuses with [`LAST_OWNER`] to leave the workspace without an owner.
    pub async fn set_member_role(
        &self,
        t: TenantId,
        user: UserId,
        role: Role,
    ) -> StoreResult<Option<u64>> {
        self.in_tenant_one_at_a_time(t, async |tx| {
            let Some(old) = role_of(tx, user).await? else {
                return Ok(None);
            };
            tx.query("UPDATE memberships SET role = $3 WHERE tenant_id = $1 AND user_id = $2")
                .bind(user)
                .bind(role.as_str())
                .execute()
                .await?;
            ensure_an_owner(tx).await?;
            let demoted = rank(role) < rank(old);
            Ok(Some(if demoted {
                revoke_invitations_by(tx, user).await?
            } else {
                0
            }))
        })
        .await
    }

    /// Removes a member: `None` if `user` is not a member, else how many of the open
    /// invitations they created were revoked with the membership (same transaction). Refuses
    /// with [`LAST_OWNER`] to remove the last owner.
    pub async fn remove_member(&self, t: TenantId, user: UserId) -> StoreResult<Option<u64>> {
        self.in_tenant_one_at_a_time(t, async |tx| {
            let n = tx
                .query("DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2")
                .bind(user)
                .execute()
                .await?;
            if n == 0 {
                return Ok(None);
            }
            ensure_an_owner(tx).await?;
            Ok(Some(revoke_invitations_by(tx, user).await?))
        })
        .await
    }

    /// Runs `work` in tenant `t` after every earlier unit of work that changes who owns or
    /// manages the workspace has ended, and before any later one starts: the transaction
    /// first locks the workspace's row (PostgreSQL: a no-op update takes its row lock, a
    /// `FOR NO KEY UPDATE` that the foreign-key checks of other tables' inserts do not wait
    /// for; SQLite: `BEGIN IMMEDIATE` already holds the database's write lock). So two owners
    /// demoting each other at the same moment are counted one after the other.
    async fn in_tenant_one_at_a_time<T>(
        &self,
        t: TenantId,
        work: impl AsyncFnOnce(&mut TenantTx) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut tx = self.tenant_write_tx(t).await?;
        tx.query("UPDATE workspaces SET created_at = created_at WHERE id = $1")
            .execute()
            .await?;
        let out = work(&mut tx).await?;
        tx.commit().await?;
        Ok(out)
    }

    // -- invitations (links carry a token; only its hash is stored) --

    pub async fn create_invitation(
        &self,
        t: TenantId,
        i: &NewInvitation,
    ) -> StoreResult<Invitation> {
        let row: InvitationRow = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(&format!(
                        "INSERT INTO invitations \
                         (tenant_id, id, token_hash, role, created_by, created_at, expires_at, \
                         email) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                         RETURNING {INVITATION_COLUMNS}"
                    ))
                    .bind(InvitationId::new())
                    .bind(&i.token_hash)
                    .bind(i.role.as_str())
                    .bind(i.created_by)
                    .bind(Timestamp::now())
                    .bind(i.expires_at)
                    .bind(i.email.clone())
                    .fetch_one()
                    .await?)
            })
            .await?;
        row.into_invitation()
    }

    pub async fn invitations(&self, t: TenantId) -> StoreResult<Vec<Invitation>> {
        let rows: Vec<InvitationRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(&format!(
                        "SELECT {INVITATION_COLUMNS} FROM invitations WHERE tenant_id = $1 \
                         ORDER BY created_at, id"
                    ))
                    .fetch_all()
                    .await?)
            })
            .await?;
        rows.into_iter()
            .map(InvitationRow::into_invitation)
            .collect()
    }

    pub async fn invitation_by_token(
        &self,
        t: TenantId,
        token_hash: &[u8],
    ) -> StoreResult<Option<Invitation>> {
        let row: Option<InvitationRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(&format!(
                        "SELECT {INVITATION_COLUMNS} FROM invitations \
                         WHERE tenant_id = $1 AND token_hash = $2 AND expires_at > $3 \
                         AND {CREATOR_MAY_GRANT}"
                    ))
                    .bind(token_hash)
                    .bind(Timestamp::now())
                    .fetch_optional()
                    .await?)
            })
            .await?;
        row.map(InvitationRow::into_invitation).transpose()
    }

    pub async fn delete_invitation(&self, t: TenantId, id: InvitationId) -> StoreResult<bool> {
        self.in_tenant(t, async |tx| {
            let n = tx
                .query("DELETE FROM invitations WHERE tenant_id = $1 AND id = $2")
                .bind(id)
                .execute()
                .await?;
            Ok(n > 0)
        })
        .await
    }

    /// Makes `user` a member with the invitation's role and deletes the invitation, in one
    /// transaction. `NotFound` if it does not exist, expired, or its creator may no longer
    /// grant it (removed, or demoted to member); `Conflict` if already a member. Runs one at
    /// a time with removals and role changes, so a creator removed at the same moment is
    /// either still an admin when the invitation is used or it is gone.
    pub async fn accept_invitation(
        &self,
        t: TenantId,
        token_hash: &[u8],
        user: UserId,
    ) -> StoreResult<Role> {
        self.in_tenant_one_at_a_time(t, async |tx| {
            let role: Option<String> = tx
                .query_scalar(&format!(
                    "DELETE FROM invitations \
                     WHERE tenant_id = $1 AND token_hash = $2 AND expires_at > $3 \
                     AND {CREATOR_MAY_GRANT} RETURNING role"
                ))
                .bind(token_hash)
                .bind(Timestamp::now())
                .fetch_optional()
                .await?;
            let role = parse_role(&role.ok_or(StoreError::NotFound)?)?;
            tx.query(
                "INSERT INTO memberships (tenant_id, user_id, role, created_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(user)
            .bind(role.as_str())
            .bind(Timestamp::now())
            .execute()
            .await
            .map_err(conflict_on_unique("already a member of this workspace"))?;
            Ok(role)
        })
        .await
    }

    // -- the workspace's audit log (append-only) --

    pub async fn append_audit(&self, t: TenantId, e: &NewAuditEntry) -> StoreResult<()> {
        self.in_tenant(t, async |tx| {
            tx.query(
                "INSERT INTO audit_log (tenant_id, id, actor, action, target, details, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(AuditId::new())
            .bind(e.actor)
            .bind(&e.action)
            .bind(&e.target)
            .bind(e.details.to_string())
            .bind(Timestamp::now())
            .execute()
            .await?;
            Ok(())
        })
        .await
    }

    pub async fn audit_log(&self, t: TenantId, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        self.in_tenant(t, async |tx| {
            let rows: Vec<AuditRow> = tx
                .query_as(
                    "SELECT id, actor, action, target, details, created_at FROM audit_log \
                     WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
                )
                .bind(i64::from(limit.clamp(1, 1000)))
                .fetch_all()
                .await?;
            Ok(rows.into_iter().map(Into::into).collect())
        })
        .await
    }
}
