//! Libraries and which of them a bot answers from, with its answering mode.

use super::*;

impl Store {
    pub async fn create_library(&self, t: TenantId, input: &LibraryInput) -> StoreResult<Library> {
        let now = Timestamp::now();
        let row: LibraryRow = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(&format!(
                        "INSERT INTO knowledge_libraries ({LIBRARY_COLUMNS}, revision) \
                         VALUES ($1, $2, $3, $4, $5, $5, 0) RETURNING {LIBRARY_COLUMNS}"
                    ))
                    .bind(LibraryId::new())
                    .bind(&input.name)
                    .bind(input.language.as_str())
                    .bind(now)
                    .fetch_one()
                    .await?)
            })
            .await?;
        row.into_library()
    }

    pub async fn libraries(&self, t: TenantId) -> StoreResult<Vec<Library>> {
        let rows: Vec<LibraryRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(&format!(
                        "SELECT {LIBRARY_COLUMNS} FROM knowledge_libraries WHERE tenant_id = $1 \
                         ORDER BY created_at, id"
                    ))
                    .fetch_all()
                    .await?)
            })
            .await?;
        rows.into_iter().map(LibraryRow::into_library).collect()
    }

    pub async fn library(&self, t: TenantId, id: LibraryId) -> StoreResult<Option<Library>> {
        let row: Option<LibraryRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(&format!(
                        "SELECT {LIBRARY_COLUMNS} FROM knowledge_libraries \
                         WHERE tenant_id = $1 AND id = $2"
                    ))
                    .bind(id)
                    .fetch_optional()
                    .await?)
            })
            .await?;
        row.map(LibraryRow::into_library).transpose()
    }

    /// Deletes a library with its sources, chunks and bot links.
    pub async fn delete_library(&self, t: TenantId, id: LibraryId) -> StoreResult<bool> {
        self.in_tenant(t, async |tx| {
            let n = tx
                .query("DELETE FROM knowledge_libraries WHERE tenant_id = $1 AND id = $2")
                .bind(id)
                .execute()
                .await?;
            Ok(n > 0)
        })
        .await
    }

    /// Sets the libraries bot `bot` answers from and how. `NotFound` if the bot or one of the
    /// libraries does not exist in this workspace (nothing is changed then).
    pub async fn set_bot_knowledge(
        &self,
        t: TenantId,
        bot: BotId,
        mode: AnswerMode,
        libraries: &[LibraryId],
    ) -> StoreResult<()> {
        self.in_tenant(t, async |tx| {
            tx.query(
                "INSERT INTO knowledge_bot_settings (tenant_id, bot_id, answer_mode) \
                 VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant_id, bot_id) DO UPDATE SET answer_mode = excluded.answer_mode",
            )
            .bind(bot)
            .bind(mode.as_str())
            .execute()
            .await
            .map_err(not_found_on_foreign_key)?;
            tx.query("DELETE FROM knowledge_bot_libraries WHERE tenant_id = $1 AND bot_id = $2")
                .bind(bot)
                .execute()
                .await?;
            for l in libraries {
                tx.query(
                    "INSERT INTO knowledge_bot_libraries (tenant_id, bot_id, library_id) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(bot)
                .bind(*l)
                .execute()
                .await
                .map_err(not_found_on_foreign_key)?;
            }
            Ok(())
        })
        .await
    }

    /// The libraries bot `bot` answers from and its answering mode.
    pub async fn bot_knowledge(&self, t: TenantId, bot: BotId) -> StoreResult<BotKnowledge> {
        let (mode, rows): (Option<String>, Vec<LibraryRow>) = self
            .in_tenant(t, async |tx| {
                let mode: Option<String> = tx
                    .query_scalar(
                        "SELECT answer_mode FROM knowledge_bot_settings \
                         WHERE tenant_id = $1 AND bot_id = $2",
                    )
                    .bind(bot)
                    .fetch_optional()
                    .await?;
                let rows = tx
                    .query_as(
                        "SELECT l.tenant_id, l.id, l.name, l.language, l.created_at, l.updated_at \
                         FROM knowledge_bot_libraries b JOIN knowledge_libraries l \
                         ON l.tenant_id = b.tenant_id AND l.id = b.library_id \
                         WHERE b.tenant_id = $1 AND b.bot_id = $2 ORDER BY l.created_at, l.id",
                    )
                    .bind(bot)
                    .fetch_all()
                    .await?;
                Ok((mode, rows))
            })
            .await?;
        Ok(BotKnowledge {
            mode: match mode {
                Some(m) => AnswerMode::parse(&m)
                    .map_err(|_| corrupt("knowledge_bot_settings.answer_mode"))?,
                None => AnswerMode::default(),
            },
            libraries: rows
                .into_iter()
                .map(LibraryRow::into_library)
                .collect::<StoreResult<_>>()?,
        })
    }
}
