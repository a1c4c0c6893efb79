//! Accounts (global, not tenant data): users, login sessions, the TOTP step a login used and
//! MFA recovery codes.

use super::error::{StoreResult, conflict_on_unique, corrupt};
use super::sql::Tx;
use super::store::Store;
use crate::model::{Email, LoginSession, NewLoginSession, SealedSecret, SessionId, Timestamp};
use crate::model::{Lang, SessionInfo, TokenPurpose, UsedToken, User, UserId};

const USER_COLUMNS: &str = "id, email, password_hash, totp_ciphertext, totp_nonce, \
     totp_key_version, created_at, email_verified_at, language";

#[derive(sqlx::FromRow)]
struct UserRow {
    id: UserId,
    email: String,
    password_hash: String,
    totp_ciphertext: Option<Vec<u8>>,
    totp_nonce: Option<Vec<u8>>,
    totp_key_version: Option<i32>,
    created_at: Timestamp,
    email_verified_at: Option<Timestamp>,
    language: String,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        let totp = match (r.totp_ciphertext, r.totp_nonce, r.totp_key_version) {
            (Some(ciphertext), Some(nonce), Some(key_version)) => Some(SealedSecret {
                ciphertext,
                nonce,
                key_version,
            }),
            _ => None,
        };
        User {
            id: r.id,
            email: r.email,
            password_hash: r.password_hash,
            totp,
            created_at: r.created_at,
            email_verified: r.email_verified_at.is_some(),
            language: Lang::parse(&r.language),
        }
    }
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: SessionId,
    user_id: UserId,
    mfa_verified: bool,
    created_at: Timestamp,
    expires_at: Timestamp,
    last_seen_at: Option<Timestamp>,
    client: String,
}

impl From<SessionRow> for LoginSession {
    fn from(r: SessionRow) -> Self {
        LoginSession {
            id: r.id,
            user_id: r.user_id,
            mfa_verified: r.mfa_verified,
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_seen_at: r.last_seen_at,
            client: r.client,
        }
    }
}

/// The stored recovery codes: a JSON array of entries, one per unused code, each a keyed
/// hash whose format belongs to the site (`site::mfa`); storage only keeps and removes them.
fn parse_code_entries(json: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(json).map_err(|_| corrupt("users.recovery_codes"))
}

fn code_entries_json(entries: &[String]) -> String {
    serde_json::to_string(entries).expect("strings serialise")
}

async fn recovery_codes(tx: &mut Tx, id: UserId) -> StoreResult<Option<String>> {
    Ok(tx
        .query_scalar("SELECT recovery_codes FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional()
        .await?)
}

/// Stores `codes` if the stored JSON is still `seen`; false if it changed meanwhile.
async fn compare_and_set_codes(
    tx: &mut Tx,
    id: UserId,
    seen: &str,
    codes: &[String],
) -> StoreResult<bool> {
    let n = tx
        .query("UPDATE users SET recovery_codes = $2 WHERE id = $1 AND recovery_codes = $3")
        .bind(id)
        .bind(code_entries_json(codes))
        .bind(seen)
        .execute()
        .await?;
    Ok(n == 1)
}

impl Store {
    pub async fn create_user(&self, email: &Email, password_hash: &str) -> StoreResult<User> {
        let user = User {
            id: UserId::new(),
            email: email.as_str().to_owned(),
            password_hash: password_hash.to_owned(),
            totp: None,
            created_at: Timestamp::now(),
            email_verified: false,
            language: Lang::En,
        };
        self.in_global(async |tx| {
            tx.query(
                "INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(user.id)
            .bind(&user.email)
            .bind(&user.password_hash)
            .bind(user.created_at)
            .execute()
            .await
            .map_err(conflict_on_unique("email already registered"))?;
            Ok(())
        })
        .await?;
        Ok(user)
    }

    pub async fn user(&self, id: UserId) -> StoreResult<Option<User>> {
        self.in_global(async |tx| {
            let row: Option<UserRow> = tx
                .query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
                .bind(id)
                .fetch_optional()
                .await?;
            Ok(row.map(Into::into))
        })
        .await
    }

    pub async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        self.in_global(async |tx| {
            let row: Option<UserRow> = tx
                .query_as(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE email = $1"
                ))
                .bind(email.as_str())
                .fetch_optional()
                .await?;
            Ok(row.map(Into::into))
        })
        .await
    }

    pub async fn set_password_hash(&self, id: UserId, password_hash: &str) -> StoreResult<()> {
        self.in_global(async |tx| {
            tx.query("UPDATE users SET password_hash = $2 WHERE id = $1")
                .bind(id)
                .bind(password_hash)
                .execute()
                .await?;
            Ok(())
        })
        .await
    }

    /// Turns TOTP on with the sealed secret and the time step of the code that confirmed it
    /// (recorded as used, so that code cannot log in afterwards), or off with `None`.
    pub async fn set_totp(
        &self,
        id: UserId,
        totp: Option<(&SealedSecret, i64)>,
    ) -> StoreResult<()> {
        self.in_global(async |tx| {
            tx.query(
                "UPDATE users SET totp_ciphertext = $2, totp_nonce = $3, totp_key_version = $4, \
                 totp_last_step = CASE WHEN $5 IS NULL THEN totp_last_step \
                 WHEN totp_last_step IS NULL OR totp_last_step < $5 THEN $5 \
                 ELSE totp_last_step END \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(totp.map(|(s, _)| s.ciphertext.clone()))
            .bind(totp.map(|(s, _)| s.nonce.clone()))
            .bind(totp.map(|(s, _)| s.key_version))
            .bind(totp.map(|(_, step)| step))
            .execute()
            .await?;
            Ok(())
        })
        .await
    }

    pub async fn create_login_session(&self, s: &NewLoginSession) -> StoreResult<LoginSession> {
        let session = LoginSession {
            id: SessionId::new(),
            user_id: s.user_id,
            mfa_verified: s.mfa_verified,
            created_at: Timestamp::now(),
            expires_at: s.expires_at,
            last_seen_at: None,
            client: String::new(),
        };
        self.in_global(async |tx| {
            tx.query(
                "INSERT INTO login_sessions \
                 (id, user_id, token_hash, mfa_verified, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(session.id)
            .bind(s.user_id)
            .bind(&s.token_hash)
            .bind(s.mfa_verified)
            .bind(session.created_at)
            .bind(s.expires_at)
            .execute()
            .await?;
            Ok(())
        })
        .await?;
        Ok(session)
    }

    pub async fn login_session(&self, token_hash: &[u8]) -> StoreResult<Option<LoginSession>> {
        self.in_global(async |tx| {
            let row: Option<SessionRow> = tx
                .query_as(
                    "SELECT id, user_id, mfa_verified, created_at, expires_at, last_seen_at, \
                     client FROM login_sessions WHERE token_hash = $1 AND expires_at > $2",
                )
                .bind(token_hash)
                .bind(Timestamp::now())
                .fetch_optional()
                .await?;
            Ok(row.map(Into::into))
        })
        .await
    }

    pub async fn mark_login_session_mfa(&self, id: SessionId) -> StoreResult<()> {
        self.in_global(async |tx| {
            tx.query("UPDATE login_sessions SET mfa_verified = true WHERE id = $1")
                .bind(id)
                .execute()
                .await?;
            Ok(())
        })
        .await
    }

    pub async fn delete_login_session(&self, token_hash: &[u8]) -> StoreResult<()> {
        self.in_global(async |tx| {
            tx.query("DELETE FROM login_sessions WHERE token_hash = $1")
                .bind(token_hash)
                .execute()
                .await?;
            Ok(())
        })
        .await
    }

    pub async fn delete_user_sessions(&self, user: UserId) -> StoreResult<u64> {
        self.in_global(async |tx| {
            Ok(tx
                .query("DELETE FROM login_sessions WHERE user_id = $1")
                .bind(user)
                .execute()
                .await?)
        })
        .await
    }

    /// Deletes the account, its sessions and its memberships (not its workspaces).
    pub async fn delete_user(&self, id: UserId) -> StoreResult<bool> {
        self.in_global(async |tx| {
            let n = tx
                .query("DELETE FROM users WHERE id = $1")
                .bind(id)
                .execute()
                .await?;
            Ok(n > 0)
        })
        .await
    }

    /// Replaces the user's MFA recovery codes with these stored entries (the codes
    /// themselves are shown once and never stored).
    pub async fn set_recovery_codes(&self, id: UserId, entries: &[String]) -> StoreResult<()> {
        let json = code_entries_json(entries);
        self.in_global(async |tx| {
            tx.query("UPDATE users SET recovery_codes = $2 WHERE id = $1")
                .bind(id)
                .bind(json)
                .execute()
                .await?;
            Ok(())
        })
        .await
    }

    /// The stored entries of the user's unused recovery codes.
    pub async fn recovery_code_entries(&self, id: UserId) -> StoreResult<Vec<String>> {
        let json = self
            .in_global(async |tx| recovery_codes(tx, id).await)
            .await?;
        match json {
            Some(j) => parse_code_entries(&j),
            None => Ok(Vec::new()),
        }
    }

    pub async fn recovery_codes_left(&self, id: UserId) -> StoreResult<usize> {
        Ok(self.recovery_code_entries(id).await?.len())
    }

    /// Uses up the recovery code whose stored entry `matches`: true if there was one (and
    /// now it is gone), false otherwise.
    pub async fn consume_recovery_code(
        &self,
        id: UserId,
        matches: impl Fn(&str) -> bool,
    ) -> StoreResult<bool> {
        self.in_global(async |tx| {
            let Some(json) = recovery_codes(tx, id).await? else {
                return Ok(false);
            };
            let mut codes = parse_code_entries(&json)?;
            let Some(pos) = codes.iter().position(|c| matches(c)) else {
                return Ok(false);
            };
            codes.remove(pos);
            // Compare-and-set: of two concurrent uses of one code, only one changes the row.
            compare_and_set_codes(tx, id, &json, &codes).await
        })
        .await
    }

    /// Replaces each stored entry for which `rewrite` gives a new one (e.g. to re-key entries
    /// of an older format); true if anything changed.
    pub async fn rewrite_recovery_codes(
        &self,
        id: UserId,
        rewrite: impl Fn(&str) -> Option<String>,
    ) -> StoreResult<bool> {
        self.in_global(async |tx| {
            let Some(json) = recovery_codes(tx, id).await? else {
                return Ok(false);
            };
            let codes = parse_code_entries(&json)?;
            let rewritten: Vec<String> = codes
                .iter()
                .map(|c| rewrite(c).unwrap_or_else(|| c.clone()))
                .collect();
            if rewritten == codes {
                return Ok(false);
            }
            compare_and_set_codes(tx, id, &json, &rewritten).await
        })
        .await
    }

    /// Records the TOTP time step a login used: false if that step or a later one was used
    /// before, so a code cannot be replayed.
    pub async fn consume_totp_step(&self, id: UserId, step: i64) -> StoreResult<bool> {
        self.in_global(async |tx| {
            let n = tx
                .query(
                    "UPDATE users SET totp_last_step = $2 WHERE id = $1 \
                     AND (totp_last_step IS NULL OR totp_last_step < $2)",
                )
                .bind(id)
                .bind(step)
                .execute()
                .await?;
            Ok(n == 1)
        })
        .await
    }
}

// -- e-mail: verification, language, account tokens, the sessions list (issue 13) --

#[derive(sqlx::FromRow)]
struct TokenRow {
    user_id: UserId,
    new_email: Option<String>,
}

#[derive(sqlx::FromRow)]
struct SessionInfoRow {
    id: SessionId,
    created_at: Timestamp,
    last_seen_at: Option<Timestamp>,
    client: String,
}

impl Store {
    /// Records that the user receives mail at their address.
    pub async fn mark_email_verified(&self, id: UserId) -> StoreResult<()> {
        self.in_global(async |tx| {
            tx.query(
                "UPDATE users SET email_verified_at = $2 WHERE id = $1 AND email_verified_at IS NULL",
            )
            .bind(id)
            .bind(Timestamp::now())
            .execute()
            .await?;
            Ok(())
        })
        .await
    }

    pub async fn set_user_language(&self, id: UserId, lang: Lang) -> StoreResult<()> {
        self.in_global(async |tx| {
            tx.query("UPDATE users SET language = $2 WHERE id = $1")
                .bind(id)
                .bind(lang.as_str())
                .execute()
                .await?;
            Ok(())
        })
        .await
    }

    /// Changes the user's address (confirmed from it, so it counts as verified).
    pub async fn set_user_email(&self, id: UserId, email: &Email) -> StoreResult<()> {
        self.in_global(async |tx| {
            tx.query("UPDATE users SET email = $2, email_verified_at = $3 WHERE id = $1")
                .bind(id)
                .bind(email.as_str())
                .bind(Timestamp::now())
                .execute()
                .await
                .map_err(conflict_on_unique("email already registered"))?;
            Ok(())
        })
        .await
    }

    /// Stores a single-use token (its SHA-256) for `purpose`, valid until `expires_at`.
    /// Earlier unused tokens of the same purpose stop working: only the newest link counts.
    pub async fn create_account_token(
        &self,
        user: UserId,
        purpose: TokenPurpose,
        token_hash: &[u8],
        new_email: Option<&Email>,
        expires_at: Timestamp,
    ) -> StoreResult<()> {
        let now = Timestamp::now();
        self.in_global(async |tx| {
            tx.query(
                "UPDATE account_tokens SET used_at = $3 \
                 WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
            )
            .bind(user)
            .bind(purpose.as_str())
            .bind(now)
            .execute()
            .await?;
            tx.query(
                "INSERT INTO account_tokens \
                 (token_hash, user_id, purpose, new_email, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(token_hash)
            .bind(user)
            .bind(purpose.as_str())
            .bind(new_email.map(|e| e.as_str().to_owned()))
            .bind(now)
            .bind(expires_at)
            .execute()
            .await?;
            Ok(())
        })
        .await
    }

    /// The user a token is valid for, without using it up (to show the page a link opens).
    pub async fn peek_account_token(
        &self,
        token_hash: &[u8],
        purpose: TokenPurpose,
    ) -> StoreResult<Option<UsedToken>> {
        self.in_global(async |tx| {
            let row: Option<TokenRow> = tx
                .query_as(
                    "SELECT user_id, new_email FROM account_tokens WHERE token_hash = $1 \
                     AND purpose = $2 AND used_at IS NULL AND expires_at > $3",
                )
                .bind(token_hash)
                .bind(purpose.as_str())
                .bind(Timestamp::now())
                .fetch_optional()
                .await?;
            Ok(row.map(|r| UsedToken {
                user_id: r.user_id,
                new_email: r.new_email,
            }))
        })
        .await
    }

    /// Uses up a token: its user (and new address) if it was valid, unused and unexpired; of
    /// two concurrent uses only one succeeds.
    pub async fn use_account_token(
        &self,
        token_hash: &[u8],
        purpose: TokenPurpose,
    ) -> StoreResult<Option<UsedToken>> {
        let now = Timestamp::now();
        self.in_global(async |tx| {
            let n = tx
                .query(
                    "UPDATE account_tokens SET used_at = $3 WHERE token_hash = $1 \
                     AND purpose = $2 AND used_at IS NULL AND expires_at > $3",
                )
                .bind(token_hash)
                .bind(purpose.as_str())
                .bind(now)
                .execute()
                .await?;
            if n != 1 {
                return Ok(None);
            }
            let row: TokenRow = tx
                .query_as("SELECT user_id, new_email FROM account_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_one()
                .await?;
            Ok(Some(UsedToken {
                user_id: row.user_id,
                new_email: row.new_email,
            }))
        })
        .await
    }

    /// Notes that a session was used now, from a client of this coarse description (at most
    /// once a minute per session, so a page view rarely writes).
    pub async fn touch_login_session(&self, id: SessionId, client: &str) -> StoreResult<()> {
        let now = Timestamp::now();
        self.in_global(async |tx| {
            tx.query(
                "UPDATE login_sessions SET last_seen_at = $2, client = $3 WHERE id = $1 \
                 AND (last_seen_at IS NULL OR last_seen_at < $4 OR client <> $3)",
            )
            .bind(id)
            .bind(now)
            .bind(client)
            .bind(Timestamp(now.0 - 60_000))
            .execute()
            .await?;
            Ok(())
        })
        .await
    }

    /// The user's unexpired sessions, newest first.
    pub async fn user_sessions(&self, user: UserId) -> StoreResult<Vec<SessionInfo>> {
        self.in_global(async |tx| {
            let rows: Vec<SessionInfoRow> = tx
                .query_as(
                    "SELECT id, created_at, last_seen_at, client FROM login_sessions \
                     WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at DESC, id DESC",
                )
                .bind(user)
                .bind(Timestamp::now())
                .fetch_all()
                .await?;
            Ok(rows
                .into_iter()
                .map(|r| SessionInfo {
                    id: r.id,
                    created_at: r.created_at,
                    last_seen_at: r.last_seen_at,
                    client: r.client,
                })
                .collect())
        })
        .await
    }

    /// Ends one of the user's sessions (only theirs): true if it existed.
    pub async fn end_user_session(&self, user: UserId, id: SessionId) -> StoreResult<bool> {
        self.in_global(async |tx| {
            let n = tx
                .query("DELETE FROM login_sessions WHERE user_id = $1 AND id = $2")
                .bind(user)
                .bind(id)
                .execute()
                .await?;
            Ok(n == 1)
        })
        .await
    }

    /// Ends every session of the user except `keep`; how many ended.
    pub async fn end_other_sessions(&self, user: UserId, keep: SessionId) -> StoreResult<u64> {
        self.in_global(async |tx| {
            Ok(tx
                .query("DELETE FROM login_sessions WHERE user_id = $1 AND id <> $2")
                .bind(user)
                .bind(keep)
                .execute()
                .await?)
        })
        .await
    }
}
