//! How the model's ids and timestamps are stored: an id is a UUID column, a timestamp an
//! integer of unix milliseconds, in both backends. Lives here, not in the model, so the model
//! does not depend on the driver.
//!
//! [`TenantId`] decodes but does not encode: no query can bind a tenant of its choosing. A
//! tenant transaction binds its own tenant as `$1` (see `sql::TenantTx`).

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Type};
use uuid::Uuid;

use super::error::{StoreResult, corrupt};
use crate::model::*;

/// Gives `$ty` the column type and decoding of `$inner`, and with `encode` also its encoding
/// (what `#[sqlx(transparent)]` derives, for a type of another module).
macro_rules! stored_as {
    ($inner:ty: $($ty:ident),+ $(,)?) => {$(
        impl<DB: Database> Type<DB> for $ty
        where
            $inner: Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <$inner as Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <$inner as Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: Database> Decode<'r, DB> for $ty
        where
            $inner: Decode<'r, DB>,
        {
            fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                <$inner as Decode<'r, DB>>::decode(value).map(Self)
            }
        }
    )+};
    (encode $inner:ty: $($ty:ident),+ $(,)?) => {$(
        stored_as!($inner: $ty);

        impl<'q, DB: Database> Encode<'q, DB> for $ty
        where
            $inner: Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as Database>::ArgumentBuffer<'q>,
            ) -> Result<IsNull, BoxDynError> {
                <$inner as Encode<'q, DB>>::encode_by_ref(&self.0, buf)
            }

            fn produces(&self) -> Option<DB::TypeInfo> {
                <$inner as Encode<'q, DB>>::produces(&self.0)
            }

            fn size_hint(&self) -> usize {
                <$inner as Encode<'q, DB>>::size_hint(&self.0)
            }
        }
    )+};
}

stored_as!(Uuid: TenantId);
stored_as!(encode Uuid: UserId, SessionId, BotId, ConversationId, MessageId, AttachmentId);
stored_as!(encode Uuid: AuditId, InvitationId);
stored_as!(encode Uuid: LibraryId, SourceId, ChunkId, KnowledgeJobId, GapId);
stored_as!(encode i64: Timestamp);

/// A message role as stored (`user`, `assistant`, `system`).
pub(super) fn parse_role(role: &str) -> StoreResult<MessageRole> {
    Ok(match role {
        "user" => MessageRole::User,
        "assistant" => MessageRole::Assistant,
        "system" => MessageRole::System,
        _ => return Err(corrupt("messages.role")),
    })
}

pub(super) fn parse_status(status: &str) -> StoreResult<MessageStatus> {
    Ok(match status {
        "pending" => MessageStatus::Pending,
        "complete" => MessageStatus::Complete,
        "interrupted" => MessageStatus::Interrupted,
        "failed" => MessageStatus::Failed,
        _ => return Err(corrupt("messages.status")),
    })
}
