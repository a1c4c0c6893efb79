//! What answers leave behind: the sources an answer was given (citations) and the questions the libraries could not answer (knowledge gaps).

use super::*;

impl Store {
    /// Stores the numbered sources of an answer.
    pub async fn save_citations(
        &self,
        t: TenantId,
        message: MessageId,
        citations: &[Citation],
    ) -> StoreResult<()> {
        self.in_tenant(t, async |tx| {
            for c in citations {
                tx.query(
                    "INSERT INTO message_citations \
                     (tenant_id, message_id, number, title, url, file_name, page) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(message)
                .bind(c.number as i32)
                .bind(&c.title)
                .bind(c.url.as_deref())
                .bind(c.file_name.as_deref())
                .bind(c.page.map(|p| p as i32))
                .execute()
                .await?;
            }
            Ok(())
        })
        .await
    }

    pub async fn citations(&self, t: TenantId, message: MessageId) -> StoreResult<Vec<Citation>> {
        let rows: Vec<CitationRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(
                        "SELECT number, title, url, file_name, page FROM message_citations \
                         WHERE tenant_id = $1 AND message_id = $2 ORDER BY number",
                    )
                    .bind(message)
                    .fetch_all()
                    .await?)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Citation {
                number: u32::try_from(r.number).unwrap_or(0),
                title: r.title,
                url: r.url,
                file_name: r.file_name,
                page: r.page.and_then(|p| u32::try_from(p).ok()),
            })
            .collect())
    }

    /// Records a question the libraries could not answer.
    pub async fn record_gap(
        &self,
        t: TenantId,
        bot: BotId,
        conversation: ConversationId,
        question: &str,
        score: f64,
    ) -> StoreResult<()> {
        self.in_tenant(t, async |tx| {
            tx.query(
                "INSERT INTO knowledge_gaps \
                 (tenant_id, id, bot_id, conversation_id, question, score, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(GapId::new())
            .bind(bot)
            .bind(conversation)
            .bind(question)
            .bind(score)
            .bind(Timestamp::now())
            .execute()
            .await?;
            Ok(())
        })
        .await
    }

    /// The knowledge gaps of bot `bot`, newest first.
    pub async fn knowledge_gaps(&self, t: TenantId, bot: BotId) -> StoreResult<Vec<KnowledgeGap>> {
        let rows: Vec<GapRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(
                        "SELECT id, bot_id, conversation_id, question, score, created_at \
                         FROM knowledge_gaps WHERE tenant_id = $1 AND bot_id = $2 \
                         ORDER BY created_at DESC, id DESC",
                    )
                    .bind(bot)
                    .fetch_all()
                    .await?)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| KnowledgeGap {
                id: r.id,
                bot_id: r.bot_id,
                conversation_id: r.conversation_id,
                question: r.question,
                score: r.score,
                created_at: r.created_at,
            })
            .collect())
    }
}
