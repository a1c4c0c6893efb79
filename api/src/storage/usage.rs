//! What a destructive action would delete, counted before the customer confirms it.

use super::error::StoreResult;
use super::store::Store;
use crate::model::{BotId, TenantId};

impl Store {
    /// The conversations and messages of one bot: what deleting it deletes with it.
    pub async fn bot_content_counts(&self, t: TenantId, bot: BotId) -> StoreResult<(i64, i64)> {
        self.in_tenant(t, async |tx| {
            let conversations: Option<i64> = tx
                .query_scalar(
                    "SELECT count(*) FROM conversations WHERE tenant_id = $1 AND bot_id = $2",
                )
                .bind(bot)
                .fetch_optional()
                .await?;
            let messages: Option<i64> = tx
                .query_scalar(
                    "SELECT count(*) FROM messages m JOIN conversations c \
                     ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id \
                     WHERE m.tenant_id = $1 AND c.bot_id = $2",
                )
                .bind(bot)
                .fetch_optional()
                .await?;
            Ok((conversations.unwrap_or(0), messages.unwrap_or(0)))
        })
        .await
    }
}
