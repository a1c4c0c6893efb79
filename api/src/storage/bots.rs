//! Bots and the tenant's provider keys (ciphertext only; see `crypto`).

use super::error::{StoreError, StoreResult, corrupt};
use super::store::Store;
use crate::model::{Bot, BotId, BotLanguage, BotSettings, Provider, ProviderKey, SealedSecret};
use crate::model::{TenantId, Timestamp};

pub(super) const BOT_COLUMNS: &str = "tenant_id, id, public_id, name, greeting, system_prompt, \
     model, allowed_origins, theme_color, language, retention_days, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(super) struct BotRow {
    tenant_id: TenantId,
    id: BotId,
    public_id: String,
    name: String,
    greeting: String,
    system_prompt: String,
    model: String,
    allowed_origins: String,
    theme_color: String,
    language: String,
    retention_days: i32,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl BotRow {
    pub(super) fn into_bot(self) -> StoreResult<Bot> {
        Ok(Bot {
            tenant_id: self.tenant_id,
            id: self.id,
            public_id: self.public_id,
            settings: BotSettings {
                name: self.name,
                greeting: self.greeting,
                system_prompt: self.system_prompt,
                model: self.model,
                allowed_origins: serde_json::from_str(&self.allowed_origins)
                    .map_err(|_| corrupt("bots.allowed_origins"))?,
                theme_color: self.theme_color,
                language: BotLanguage::parse(&self.language)
                    .map_err(|_| corrupt("bots.language"))?,
                retention_days: u16::try_from(self.retention_days)
                    .map_err(|_| corrupt("bots.retention_days"))?,
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn origins_json(s: &BotSettings) -> String {
    serde_json::to_string(&s.allowed_origins).expect("origins serialise")
}

#[derive(sqlx::FromRow)]
struct ProviderKeyRow {
    ciphertext: Vec<u8>,
    nonce: Vec<u8>,
    key_version: i32,
    last_four: String,
    updated_at: Timestamp,
}

impl Store {
    pub async fn create_bot(&self, t: TenantId, b: &BotSettings) -> StoreResult<Bot> {
        let now = Timestamp::now();
        let row: BotRow = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(&format!(
                        "INSERT INTO bots ({BOT_COLUMNS}) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) \
                         RETURNING {BOT_COLUMNS}"
                    ))
                    .bind(BotId::new())
                    .bind(Bot::new_public_id(t))
                    .bind(&b.name)
                    .bind(&b.greeting)
                    .bind(&b.system_prompt)
                    .bind(&b.model)
                    .bind(origins_json(b))
                    .bind(&b.theme_color)
                    .bind(b.language.as_str())
                    .bind(i32::from(b.retention_days))
                    .bind(now)
                    .fetch_one()
                    .await?)
            })
            .await?;
        row.into_bot()
    }

    pub async fn update_bot(&self, t: TenantId, id: BotId, b: &BotSettings) -> StoreResult<Bot> {
        let row: Option<BotRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(&format!(
                        "UPDATE bots SET name = $3, greeting = $4, system_prompt = $5, \
                         model = $6, allowed_origins = $7, theme_color = $8, language = $9, \
                         retention_days = $10, updated_at = $11 \
                         WHERE tenant_id = $1 AND id = $2 RETURNING {BOT_COLUMNS}"
                    ))
                    .bind(id)
                    .bind(&b.name)
                    .bind(&b.greeting)
                    .bind(&b.system_prompt)
                    .bind(&b.model)
                    .bind(origins_json(b))
                    .bind(&b.theme_color)
                    .bind(b.language.as_str())
                    .bind(i32::from(b.retention_days))
                    .bind(Timestamp::now())
                    .fetch_optional()
                    .await?)
            })
            .await?;
        row.ok_or(StoreError::NotFound)?.into_bot()
    }

    pub async fn bot(&self, t: TenantId, id: BotId) -> StoreResult<Option<Bot>> {
        let row: Option<BotRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(&format!(
                        "SELECT {BOT_COLUMNS} FROM bots WHERE tenant_id = $1 AND id = $2"
                    ))
                    .bind(id)
                    .fetch_optional()
                    .await?)
            })
            .await?;
        row.map(BotRow::into_bot).transpose()
    }

    pub async fn bot_by_public_id(&self, t: TenantId, public_id: &str) -> StoreResult<Option<Bot>> {
        let row: Option<BotRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(&format!(
                        "SELECT {BOT_COLUMNS} FROM bots WHERE tenant_id = $1 AND public_id = $2"
                    ))
                    .bind(public_id)
                    .fetch_optional()
                    .await?)
            })
            .await?;
        row.map(BotRow::into_bot).transpose()
    }

    pub async fn bots(&self, t: TenantId) -> StoreResult<Vec<Bot>> {
        let rows: Vec<BotRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(&format!(
                        "SELECT {BOT_COLUMNS} FROM bots WHERE tenant_id = $1 ORDER BY created_at, id"
                    ))
                    .fetch_all()
                    .await?)
            })
            .await?;
        rows.into_iter().map(BotRow::into_bot).collect()
    }

    pub async fn delete_bot(&self, t: TenantId, id: BotId) -> StoreResult<bool> {
        self.in_tenant(t, async |tx| {
            let n = tx
                .query("DELETE FROM bots WHERE tenant_id = $1 AND id = $2")
                .bind(id)
                .execute()
                .await?;
            Ok(n > 0)
        })
        .await
    }

    pub async fn put_provider_key(&self, t: TenantId, k: &ProviderKey) -> StoreResult<()> {
        self.in_tenant(t, async |tx| {
            tx.query(
                "INSERT INTO provider_keys \
                 (tenant_id, provider, ciphertext, nonce, key_version, last_four, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (tenant_id, provider) DO UPDATE SET ciphertext = excluded.ciphertext, \
                 nonce = excluded.nonce, key_version = excluded.key_version, \
                 last_four = excluded.last_four, updated_at = excluded.updated_at",
            )
            .bind(k.provider.as_str())
            .bind(&k.sealed.ciphertext)
            .bind(&k.sealed.nonce)
            .bind(k.sealed.key_version)
            .bind(&k.last_four)
            .bind(k.updated_at)
            .execute()
            .await?;
            Ok(())
        })
        .await
    }

    pub async fn provider_key(
        &self,
        t: TenantId,
        provider: Provider,
    ) -> StoreResult<Option<ProviderKey>> {
        let row: Option<ProviderKeyRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(
                        "SELECT ciphertext, nonce, key_version, last_four, updated_at \
                         FROM provider_keys WHERE tenant_id = $1 AND provider = $2",
                    )
                    .bind(provider.as_str())
                    .fetch_optional()
                    .await?)
            })
            .await?;
        Ok(row.map(|r| ProviderKey {
            provider,
            sealed: SealedSecret {
                ciphertext: r.ciphertext,
                nonce: r.nonce,
                key_version: r.key_version,
            },
            last_four: r.last_four,
            updated_at: r.updated_at,
        }))
    }

    pub async fn delete_provider_key(&self, t: TenantId, provider: Provider) -> StoreResult<bool> {
        self.in_tenant(t, async |tx| {
            let n = tx
                .query("DELETE FROM provider_keys WHERE tenant_id = $1 AND provider = $2")
                .bind(provider.as_str())
                .execute()
                .await?;
            Ok(n > 0)
        })
        .await
    }
}
