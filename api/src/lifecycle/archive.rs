//! The backup file format. Plaintext layout, before age encryption:
//!
//! ```text
//! "PARLO-BACKUP\0\x02"   magic and format version
//! payload                the database snapshot (SQLite file or pg_dump custom archive)
//! manifest               JSON: backend, time, per-table row counts, payload size and SHA-256,
//!                        the signing key's public half
//! u64 big-endian         manifest length
//! signature              64 bytes: Ed25519 over SIGNED_DOMAIN ‖ manifest
//! "PARLOEND"
//! ```
//!
//! The manifest is a trailer so the payload can be streamed straight from `pg_dump` into
//! the encryptor; the whole is encrypted with age to X25519 recipients, so only holders of a
//! matching identity can read any of it. age proves only that a file was encrypted *to* the
//! operator's recipient, and a recipient is public: anyone could write a file that decrypts.
//! So the manifest (which names the payload's SHA-256) is signed with the server's backup
//! key (`keyring::MasterKeys::backup_signing_key`), and [`open`] refuses a backup whose
//! signature does not verify with a trusted key — before anything is restored from it.
//! Format 1 (unsigned) is refused. Owns sealing and opening; must never write a plaintext
//! byte to the destination file, nor leave a partial file under a backup's final name.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::keyring::BackupVerifyKey;

const MAGIC: &[u8; 14] = b"PARLO-BACKUP\0\x02";
/// Format 1: the same without signature, written before backups were signed.
const MAGIC_UNSIGNED: &[u8; 14] = b"PARLO-BACKUP\0\x01";
const END: &[u8; 8] = b"PARLOEND";
const SIGNATURE_LEN: usize = ed25519_dalek::SIGNATURE_LENGTH;
/// Bytes after the manifest: its length, the signature, the end marker.
const TRAILER_LEN: u64 = 8 + SIGNATURE_LEN as u64 + 8;
/// Prefixed to the manifest before signing, so the signature means nothing elsewhere.
const SIGNED_DOMAIN: &[u8] = b"parlo-backup-manifest-v2\0";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// `sqlite` or `postgres`.
    pub backend: String,
    pub created_at: String,
    pub parlo_version: String,
    /// Highest migration applied in the snapshot.
    pub schema_version: i64,
    /// Row count of every table, counted inside the same snapshot as the payload.
    pub tables: BTreeMap<String, i64>,
    pub payload_bytes: u64,
    pub payload_sha256: String,
    /// The public half of the key that signed this backup (`ed25519:…`).
    #[serde(default)]
    pub signing_key: String,
}

/// Where progress goes: a person at a terminal or the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Terminal,
    Log,
    Quiet,
}

impl Progress {
    pub fn say(self, msg: &str) {
        match self {
            Progress::Terminal => eprintln!("parlo: {msg}"),
            Progress::Log => tracing::info!("{msg}"),
            Progress::Quiet => {}
        }
    }
}

struct Meter {
    progress: Progress,
    what: &'static str,
    total: Option<u64>,
    done: u64,
    last: Instant,
}

impl Meter {
    fn add(&mut self, n: usize) {
        self.done += n as u64;
        if self.last.elapsed() >= Duration::from_secs(1) {
            self.last = Instant::now();
            self.report();
        }
    }

    fn report(&self) {
        let mib = self.done as f64 / (1024.0 * 1024.0);
        let msg = match self.total.filter(|&t| t > 0) {
            Some(t) => format!(
                "{}: {mib:.1} MiB of {:.1} MiB ({:.0}%)",
                self.what,
                t as f64 / (1024.0 * 1024.0),
                100.0 * self.done as f64 / t as f64
            ),
            None => format!("{}: {mib:.1} MiB", self.what),
        };
        self.progress.say(&msg);
    }
}

/// Writes a backup to `<final>.partial` and renames it into place in [`Sealer::finish`].
pub struct Sealer {
    out: age::stream::StreamWriter<BufWriter<File>>,
    partial: PathBuf,
    final_path: PathBuf,
    hasher: Sha256,
    meter: Meter,
}

/// Parses `age1…` recipients; refuses an empty list.
pub fn recipients(list: &[String]) -> anyhow::Result<Vec<age::x25519::Recipient>> {
    if list.is_empty() {
        bail!(
            "refusing to write a backup: no recipient is configured, and backups are never \
             written unencrypted. Set PARLO_BACKUP_RECIPIENTS=age1… (create a key pair with \
             `age-keygen -o backup-key.txt`, keep that file offline, and configure the public \
             key it prints)"
        );
    }
    list.iter()
        .map(|r| {
            r.parse::<age::x25519::Recipient>()
                .map_err(|e| anyhow::anyhow!("{r:?} is not an age recipient: {e}"))
        })
        .collect()
}

impl Sealer {
    pub fn create(
        final_path: &Path,
        recipients: &[age::x25519::Recipient],
        progress: Progress,
        total: Option<u64>,
    ) -> anyhow::Result<Self> {
        let encryptor =
            age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                .context("setting up age encryption")?;
        let partial = final_path.with_extension("age.partial");
        let file = private_file(&partial)?;
        let mut out = encryptor
            .wrap_output(BufWriter::with_capacity(1 << 20, file))
            .context("writing the backup header")?;
        out.write_all(MAGIC)?;
        Ok(Self {
            out,
            partial,
            final_path: final_path.to_owned(),
            hasher: Sha256::new(),
            meter: Meter {
                progress,
                what: "backup",
                total,
                done: 0,
                last: Instant::now(),
            },
        })
    }

    /// Appends the signed trailer, finishes encryption, syncs and renames into place.
    pub fn finish(
        mut self,
        mut manifest: Manifest,
        signer: &ed25519_dalek::SigningKey,
    ) -> anyhow::Result<(PathBuf, Manifest)> {
        use ed25519_dalek::Signer;
        manifest.payload_bytes = self.meter.done;
        manifest.payload_sha256 = hex::encode(self.hasher.finalize_reset());
        manifest.signing_key = BackupVerifyKey(signer.verifying_key()).to_string();
        self.meter.report();
        let json = serde_json::to_vec(&manifest)?;
        let signature = signer.sign(&signed_message(&json));
        self.out.write_all(&json)?;
        self.out.write_all(&(json.len() as u64).to_be_bytes())?;
        self.out.write_all(&signature.to_bytes())?;
        self.out.write_all(END)?;
        let file = self
            .out
            .finish()?
            .into_inner()
            .map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.partial, &self.final_path)
            .with_context(|| format!("moving the backup into {}", self.final_path.display()))?;
        if let Some(dir) = self.final_path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok((self.final_path.clone(), manifest))
    }

    /// Removes the partial file (after a failure).
    pub fn abandon(self) {
        let partial = self.partial.clone();
        drop(self);
        let _ = std::fs::remove_file(partial);
    }
}

impl Write for Sealer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.meter.add(n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn signed_message(manifest_json: &[u8]) -> Vec<u8> {
    [SIGNED_DOMAIN, manifest_json].concat()
}

/// Whether one of `trusted` signed `manifest_json` with `signature`.
fn signed_by_trusted(
    manifest_json: &[u8],
    signature: &[u8; SIGNATURE_LEN],
    trusted: &[BackupVerifyKey],
) -> bool {
    let signature = ed25519_dalek::Signature::from_bytes(signature);
    let message = signed_message(manifest_json);
    trusted
        .iter()
        .any(|k| k.0.verify_strict(&message, &signature).is_ok())
}

/// Creates a file only its owner can read.
pub fn private_file(path: &Path) -> anyhow::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// Reads the identities (age X25519 secret keys) of an identity file.
pub fn identities(path: &Path) -> anyhow::Result<Vec<Box<dyn age::Identity>>> {
    age::IdentityFile::from_file(path.display().to_string())
        .with_context(|| format!("reading the identity file {}", path.display()))?
        .into_identities()
        .map_err(|e| anyhow::anyhow!("reading the identity file {}: {e}", path.display()))
}

/// A decrypted backup: its manifest and the payload in a private temporary directory
/// (removed when this is dropped).
pub struct Opened {
    pub manifest: Manifest,
    pub payload: PathBuf,
    pub dir: tempfile::TempDir,
}

/// Decrypts `backup` with the identities in `identity_file` into a private temporary
/// directory, then checks the trailer's signature (by one of `trusted`) and the payload's
/// SHA-256. Refuses an unsigned backup, and any whose signature does not verify.
pub fn open(
    backup: &Path,
    identity_file: &Path,
    trusted: &[BackupVerifyKey],
    progress: Progress,
) -> anyhow::Result<Opened> {
    if trusted.is_empty() {
        bail!(
            "cannot check who wrote {}: no key to verify backup signatures with. Set \
             PARLO_BACKUP_VERIFY_KEY to what `parlo keys backup-verify-key` prints on the \
             server (or run where the server's master keys are configured)",
            backup.display()
        );
    }
    let ids = identities(identity_file)?;
    let file = File::open(backup).with_context(|| format!("opening {}", backup.display()))?;
    let total = file.metadata().ok().map(|m| m.len());
    let decryptor = age::Decryptor::new_buffered(io::BufReader::new(file))
        .with_context(|| format!("{} is not an age-encrypted Parlo backup", backup.display()))?;
    let mut reader = decryptor
        .decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => anyhow::anyhow!(
                "none of the identities in {} can decrypt {}",
                identity_file.display(),
                backup.display()
            ),
            other => anyhow::anyhow!("decrypting {}: {other}", backup.display()),
        })?;
    let dir = tempfile::Builder::new()
        .prefix("parlo-restore-")
        .tempdir()
        .context("creating a temporary directory")?;
    let payload = dir.path().join("payload");
    let mut out = BufWriter::with_capacity(1 << 20, private_file(&payload)?);
    let mut magic = [0u8; MAGIC.len()];
    reader
        .read_exact(&mut magic)
        .with_context(|| format!("decrypting {}", backup.display()))?;
    if &magic == MAGIC_UNSIGNED {
        bail!(
            "refusing {}: it is an unsigned backup (format 1). Anyone who knows the public age \
             recipient can write such a file, so its origin cannot be checked; restore it only \
             with the Parlo version that wrote it, after making sure where it came from",
            backup.display()
        );
    }
    if &magic != MAGIC {
        bail!("{} is not a Parlo backup (format 2)", backup.display());
    }
    let mut meter = Meter {
        progress,
        what: "decrypt",
        total,
        done: 0,
        last: Instant::now(),
    };
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader
            .read(&mut buf)
            .with_context(|| format!("decrypting {} (damaged or truncated?)", backup.display()))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
        meter.add(n);
    }
    let mut file = out.into_inner().map_err(|e| e.into_error())?;
    let len = file.seek(SeekFrom::End(0))?;
    if len < TRAILER_LEN {
        bail!("{} is truncated", backup.display());
    }
    let mut tail = [0u8; TRAILER_LEN as usize];
    file.seek(SeekFrom::Start(len - TRAILER_LEN))?;
    file.read_exact(&mut tail)?;
    let (mlen, rest) = tail.split_at(8);
    let (signature, end) = rest.split_at(SIGNATURE_LEN);
    if end != END {
        bail!("{} has no manifest (truncated?)", backup.display());
    }
    let mlen = u64::from_be_bytes(mlen.try_into().expect("8 bytes"));
    let payload_len = len
        .checked_sub(TRAILER_LEN)
        .and_then(|l| l.checked_sub(mlen))
        .context("the backup's manifest length is impossible")?;
    let mut json = vec![0u8; mlen as usize];
    file.seek(SeekFrom::Start(payload_len))?;
    file.read_exact(&mut json)?;
    let signature: &[u8; SIGNATURE_LEN] = signature.try_into().expect("64 bytes");
    if !signed_by_trusted(&json, signature, trusted) {
        bail!(
            "refusing {}: its signature does not verify with any trusted backup key ({}). It \
             was not written by this Parlo server, or it was altered",
            backup.display(),
            trusted
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let manifest: Manifest =
        serde_json::from_slice(&json).context("reading the backup's manifest")?;
    file.set_len(payload_len)?;
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher)?;
    if manifest.payload_bytes != payload_len
        || hex::encode(hasher.finalize()) != manifest.payload_sha256
    {
        bail!("the backup's payload does not match its manifest (size or SHA-256)");
    }
    Ok(Opened {
        manifest,
        payload,
        dir,
    })
}
