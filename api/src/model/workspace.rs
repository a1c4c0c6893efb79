//! Workspaces (tenants), their members, roles and invitations.

use serde::{Deserialize, Serialize};

use super::ids::{InvitationId, TenantId, Timestamp, UserId};
use super::parse::{Invalid, invalid, parse_name};

/// A workspace's name: 1–80 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct WorkspaceName(String);

impl WorkspaceName {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        parse_name(s).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        match s {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            _ => invalid("Role must be owner, admin or member."),
        }
    }

    /// Owners and admins configure bots and keys; members read.
    pub fn can_manage(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workspace {
    pub id: TenantId,
    pub name: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
}

#[derive(Debug, Clone)]
pub struct NewInvitation {
    /// SHA-256 of the token in the invitation link; the token itself is never stored.
    pub token_hash: Vec<u8>,
    /// Admin or member (owners are made by an owner, not by invitation).
    pub role: Role,
    pub created_by: Option<UserId>,
    pub expires_at: Timestamp,
    /// The address the invitation was mailed to: only a verified account with this address
    /// may accept it.
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub id: InvitationId,
    pub role: Role,
    pub created_by: Option<UserId>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// The invited address (see [`NewInvitation::email`]).
    pub email: Option<String>,
}
