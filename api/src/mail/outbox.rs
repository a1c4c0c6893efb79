//! The [`Mailer`]: queues mail in the durable outbox and drains it. A message is composed
//! and sealed (AES-256-GCM with the master key: it may hold a link with a token) when it is
//! queued, so a crash or an SMTP outage loses nothing; the drain claims each due message
//! (one sender at a time, across processes), hands it over and erases its content. A
//! failed attempt is retried with exponential backoff (the configured base, doubled each
//! time, at most an hour) up to [`MAX_ATTEMPTS`]; a permanent refusal is not retried.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use tokio::sync::Notify;
use uuid::Uuid;

use super::compose::{Mail, compose};
use super::transport::{Delivered, Transport};
use crate::config::MailConfig;
use crate::crypto::{self, Purpose};
use crate::keyring::KeyRing;
use crate::model::{Lang, NewOutboxMail, Timestamp};
use crate::storage::{Store, StoreError};

/// Attempts before a message is given up.
pub const MAX_ATTEMPTS: i32 = 10;
/// How long a sender holds a claimed message before another may take it.
const LEASE_SECS: i64 = 300;
/// Finished messages (recipient, kind, status) are kept this long for `parlo admin mail
/// status`, then forgotten.
const KEEP_FINISHED_DAYS: i64 = 7;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the e-mail address cannot receive mail: {0}")]
    BadAddress(String),
    #[error("composing the mail: {0}")]
    Compose(#[from] anyhow::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one drain did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainReport {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
}

/// Queues and sends mail; cheap to clone.
#[derive(Clone)]
pub struct Mailer(Arc<Inner>);

struct Inner {
    store: Store,
    keys: Arc<KeyRing>,
    from: Mailbox,
    transport: Transport,
    retry_base: Duration,
    wake: Notify,
    /// This process's claim id.
    sender: Uuid,
}

impl Mailer {
    pub fn new(config: &MailConfig, store: Store, keys: Arc<KeyRing>) -> anyhow::Result<Mailer> {
        Ok(Mailer(Arc::new(Inner {
            transport: Transport::from_config(config)?,
            from: config.from.clone(),
            retry_base: config.retry_base,
            store,
            keys,
            wake: Notify::new(),
            sender: Uuid::new_v4(),
        })))
    }

    /// Whether mail can be addressed to `to` (an address the model accepts may still be one
    /// SMTP cannot carry, e.g. with quotes).
    pub fn accepts(to: &str) -> bool {
        Mailbox::from_str(to.trim()).is_ok_and(|m| m.name.is_none())
    }

    /// Queues `mail` to `to` in `lang` and wakes the sender. The message is in the outbox
    /// (durable) when this returns.
    pub async fn send(&self, to: &str, lang: Lang, mail: &Mail) -> Result<(), MailError> {
        let mailbox = Mailbox::from_str(to.trim())
            .ok()
            .filter(|m| m.name.is_none())
            .ok_or_else(|| MailError::BadAddress(to.to_owned()))?;
        let raw = compose(&self.0.from, &mailbox, lang, mail)?;
        let raw = String::from_utf8(raw)
            .map_err(|_| anyhow::anyhow!("a composed message is not 7-bit text"))?;
        let id = Uuid::now_v7();
        let sealed = crypto::seal(&self.0.keys.master, Purpose::Mail(id), raw.as_bytes());
        self.0
            .store
            .enqueue_mail(&NewOutboxMail {
                id,
                recipient: mailbox.email.to_string(),
                kind: mail.kind().to_owned(),
                sealed,
                next_attempt_at: Timestamp::now(),
            })
            .await?;
        self.0.wake.notify_one();
        Ok(())
    }

    /// Queues `mail` and logs (never returns) a failure: for notices that must not stop the
    /// action they tell about.
    pub async fn send_or_log(&self, to: &str, lang: Lang, mail: &Mail) {
        if let Err(e) = self.send(to, lang, mail).await {
            tracing::error!(kind = mail.kind(), error = %e, "could not queue a mail");
        }
    }

    /// The wait before attempt `attempts + 1`.
    fn backoff(&self, attempts: i32) -> Duration {
        let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(0);
        self.0
            .retry_base
            .saturating_mul(1u32 << doublings)
            .min(Duration::from_secs(3600))
    }

    /// Sends every message that is due now, once.
    pub async fn drain(&self) -> Result<DrainReport, StoreError> {
        let i = &self.0;
        let mut report = DrainReport::default();
        loop {
            let now = Timestamp::now();
            let due = i.store.due_mail(now, 20).await?;
            if due.is_empty() {
                return Ok(report);
            }
            let mut claimed_any = false;
            for id in due {
                let now = Timestamp::now();
                let Some(m) = i
                    .store
                    .claim_mail(id, i.sender, now, now.plus_secs(LEASE_SECS))
                    .await?
                else {
                    continue;
                };
                claimed_any = true;
                let raw = match crypto::open(&i.keys.master, Purpose::Mail(m.id), &m.sealed) {
                    Ok(raw) => raw,
                    Err(e) => {
                        tracing::error!(mail_id = %m.id, kind = %m.kind, error = %e, "a queued mail does not open");
                        i.store.mail_failed(m.id, i.sender, &e.to_string()).await?;
                        report.failed += 1;
                        continue;
                    }
                };
                let raw = secrecy::ExposeSecret::expose_secret(&raw).as_bytes();
                match i
                    .transport
                    .deliver(&i.from.email, &m.recipient, m.id, raw)
                    .await
                {
                    Ok(delivered) => {
                        i.store.mail_sent(m.id, i.sender, Timestamp::now()).await?;
                        report.sent += 1;
                        match delivered {
                            Delivered::File(path) => tracing::info!(
                                mail_id = %m.id,
                                kind = %m.kind,
                                file = %path.display(),
                                "mail written to the development outbox (no PARLO_SMTP_URL)"
                            ),
                            Delivered::Smtp => {
                                tracing::info!(mail_id = %m.id, kind = %m.kind, "mail sent")
                            }
                        }
                    }
                    Err(e) if e.permanent || m.attempts >= MAX_ATTEMPTS => {
                        tracing::warn!(mail_id = %m.id, kind = %m.kind, attempts = m.attempts, error = %e, "mail given up");
                        i.store.mail_failed(m.id, i.sender, &e.message).await?;
                        report.failed += 1;
                    }
                    Err(e) => {
                        let wait = self.backoff(m.attempts);
                        let next = Timestamp(
                            Timestamp::now().0
                                + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2),
                        );
                        tracing::warn!(mail_id = %m.id, kind = %m.kind, attempts = m.attempts, retry_in_secs = wait.as_secs(), error = %e, "mail not sent; will retry");
                        i.store.mail_retry(m.id, i.sender, next, &e.message).await?;
                        report.retried += 1;
                    }
                }
            }
            if !claimed_any {
                return Ok(report);
            }
        }
    }

    /// Drains whenever mail is queued, and every `poll` for retries; forgets finished
    /// messages after a week. Runs until aborted; a failed drain is logged and retried.
    pub fn spawn_worker(&self) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        let poll = self.0.retry_base.min(Duration::from_secs(5));
        tokio::spawn(async move {
            let mut rounds: u64 = 0;
            loop {
                if let Err(e) = me.drain().await {
                    tracing::warn!(error = %e, "draining the mail outbox failed");
                }
                if rounds.is_multiple_of(720) {
                    let before = Timestamp::now().minus_days(KEEP_FINISHED_DAYS);
                    if let Err(e) = me.0.store.purge_finished_mail(before).await {
                        tracing::warn!(error = %e, "forgetting finished mail failed");
                    }
                }
                rounds = rounds.wrapping_add(1);
                tokio::select! {
                    _ = me.0.wake.notified() => {}
                    _ = tokio::time::sleep(poll) => {}
                }
            }
        })
    }

    pub fn transport(&self) -> &'static str {
        self.0.transport.describe()
    }
}
