//! Handing a finished message to the world: an SMTP server (lettre; STARTTLS or implicit TLS
//! from `PARLO_SMTP_URL`) or, in development without one, an `.eml` file (mode 0600) in
//! `<data dir>/outbox/`. Errors say what went wrong and whether trying again may help; they
//! never hold the message (which may contain a link with a token) or the server's password.

use std::path::PathBuf;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::MailConfig;

/// Why a message was not handed over.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    /// The server refused for good (e.g. unknown recipient): trying again will not help.
    pub permanent: bool,
    pub message: String,
}

/// Where a handed-over message went.
#[derive(Debug, Clone)]
pub enum Delivered {
    Smtp,
    File(PathBuf),
}

#[derive(Clone)]
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(PathBuf),
}

impl Transport {
    /// The transport the configuration names (checked by `Config::load`).
    pub fn from_config(c: &MailConfig) -> anyhow::Result<Transport> {
        Ok(match &c.smtp_url {
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .map_err(|e| anyhow::anyhow!("PARLO_SMTP_URL cannot be used: {e}"))?
                    .timeout(Some(Duration::from_secs(30)))
                    .build(),
            ),
            None => Transport::Files(c.outbox_dir.clone()),
        })
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Transport::Smtp(_) => "smtp",
            Transport::Files(_) => "files",
        }
    }

    pub async fn deliver(
        &self,
        from: &Address,
        to: &str,
        id: uuid::Uuid,
        raw: &[u8],
    ) -> Result<Delivered, DeliveryError> {
        let to: Address = to.parse().map_err(|_| DeliveryError {
            permanent: true,
            message: "the recipient's address is malformed".into(),
        })?;
        let envelope = Envelope::new(Some(from.clone()), vec![to]).map_err(|e| DeliveryError {
            permanent: true,
            message: format!("no envelope: {e}"),
        })?;
        match self {
            Transport::Smtp(smtp) => match smtp.send_raw(&envelope, raw).await {
                Ok(_) => Ok(Delivered::Smtp),
                Err(e) => Err(DeliveryError {
                    permanent: e.is_permanent(),
                    message: format!("SMTP: {e}"),
                }),
            },
            Transport::Files(dir) => {
                write_eml(dir, id, raw)
                    .await
                    .map(Delivered::File)
                    .map_err(|e| DeliveryError {
                        permanent: false,
                        message: format!("writing to {}: {e}", dir.display()),
                    })
            }
        }
    }
}

async fn write_eml(dir: &std::path::Path, id: uuid::Uuid, raw: &[u8]) -> std::io::Result<PathBuf> {
    use tokio::io::AsyncWriteExt;
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    let path = dir.join(format!("{id}.eml"));
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut f = options.open(&path).await?;
    f.write_all(raw).await?;
    f.sync_all().await?;
    Ok(path)
}
