//! The operator audit log: every `parlo admin` action, kept apart from tenant data (the
//! global `operator_audit` table, not the workspaces' own `audit_log`) and chained: entry n's hash is
//! `SHA-256(hash of entry n-1 ‖ canonical encoding of entry n)`, the first entry chaining
//! from 32 zero bytes. Sequence numbers start at 1 and have no gaps.
//!
//! What verification detects, and what it cannot:
//! - a changed entry (its hash no longer matches), a removed entry other than the newest
//!   (a gap in the sequence, or a broken link), an inserted entry (a broken link or a
//!   duplicate sequence number) — as long as the attacker did not recompute every later hash;
//! - the chain is a plain hash, not keyed: whoever can write the table can rewrite it from
//!   some entry on and recompute everything after, and can drop the newest entries. Both are
//!   caught only by comparing with a head recorded outside the database: after every action
//!   the head (`seq:hash`) is printed and written to the head file, and `audit verify` checks
//!   that the chain still contains that exact entry. Every append first checks the same
//!   (the log's tip is the recorded head, or chains from it) and refuses otherwise, so a
//!   later action cannot re-use the removed sequence numbers and overwrite the head file.
//!   Keep a copy of the head somewhere the database's administrators cannot write (a
//!   ticket, a log shipper, another host).
//!
//! Must never update or delete an entry (the application role may only INSERT and SELECT on
//! PostgreSQL; triggers refuse it on SQLite).

use std::path::Path;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::model::{OperatorAuditEntry, Timestamp};
use crate::storage::{Store, StoreError};

pub const GENESIS: [u8; 32] = [0; 32];
const DOMAIN: &[u8] = b"parlo-operator-audit-v1\0";

/// An action about to be recorded.
#[derive(Debug, Clone)]
pub struct OperatorAction {
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: serde_json::Value,
}

/// The entry's fields in an unambiguous byte encoding: fixed-width integers, then each text
/// field prefixed with its length.
pub fn canonical(
    seq: i64,
    created_at: Timestamp,
    actor: &str,
    action: &str,
    target: &str,
    details: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        DOMAIN.len() + 16 + 32 + actor.len() + action.len() + target.len() + details.len(),
    );
    out.extend_from_slice(DOMAIN);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&created_at.0.to_be_bytes());
    for field in [actor, action, target, details] {
        out.extend_from_slice(&(field.len() as u64).to_be_bytes());
        out.extend_from_slice(field.as_bytes());
    }
    out
}

pub fn entry_hash(prev_hash: &[u8], e: &OperatorAuditEntry) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev_hash);
    h.update(canonical(
        e.seq,
        e.created_at,
        &e.actor,
        &e.action,
        &e.target,
        &e.details,
    ));
    h.finalize().into()
}

/// The newest entry of the chain as recorded outside the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: i64,
    pub hash: [u8; 32],
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, hex::encode(self.hash))
    }
}

impl std::str::FromStr for Head {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        let (seq, hash) = s
            .trim()
            .split_once(':')
            .context("an audit head looks like SEQ:HEX")?;
        let seq: i64 = seq.parse().context("audit head sequence number")?;
        let hash: [u8; 32] = hex::decode(hash)
            .ok()
            .and_then(|b| b.try_into().ok())
            .context("audit head hash: 64 hex digits")?;
        Ok(Head { seq, hash })
    }
}

impl Head {
    pub fn of(e: &OperatorAuditEntry) -> Option<Head> {
        Some(Head {
            seq: e.seq,
            hash: e.hash.clone().try_into().ok()?,
        })
    }

    /// Reads a head file; `None` if there is none yet.
    pub fn read(path: &Path) -> anyhow::Result<Option<Head>> {
        match std::fs::read_to_string(path) {
            Ok(text) => text
                .parse()
                .map(Some)
                .with_context(|| format!("reading the audit head {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Replaces the head file atomically (write, fsync, rename).
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("head.tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)
                .with_context(|| format!("writing {}", tmp.display()))?;
            writeln!(f, "{self}")?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}

/// The chain's tip disagrees with the recorded head: entries were removed or rewritten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refusing to append to the operator audit log: the recorded head is entry {expected}, but \
     the log's newest entry is {found}. Entries were removed or rewritten since the head was \
     recorded; nothing was changed, so the evidence stays. Keep the head file and the \
     database as they are and run `parlo admin audit verify` for details"
)]
pub struct TipMismatch {
    /// The recorded head (`SEQ:HEX`).
    pub expected: String,
    /// The log's tip (`SEQ:HEX`, or a description of an empty log).
    pub found: String,
}

/// Checks, before appending, that the log still holds the recorded head `head`: its tip is
/// that entry, or a later one that chains from it (another operator appended since).
async fn check_tip(
    store: &Store,
    tip: Option<&OperatorAuditEntry>,
    head: &Head,
) -> anyhow::Result<()> {
    let found = tip.and_then(Head::of);
    match &found {
        Some(t) if t == head => return Ok(()),
        // Another operator appended since: fine if the chain still holds this head.
        Some(t)
            if t.seq > head.seq && verify(&store.operator_audit().await?, Some(head)).is_ok() =>
        {
            return Ok(());
        }
        _ => {}
    }
    Err(TipMismatch {
        expected: head.to_string(),
        found: found.map_or_else(|| "none (the log is empty)".to_owned(), |t| t.to_string()),
    }
    .into())
}

/// Appends `a` to the chain and returns the stored entry, after checking that the chain
/// still holds `recorded` (the head written after the last action), if there is one.
/// Retries when another operator appended at the same moment (the sequence number is the
/// primary key).
pub async fn append(
    store: &Store,
    a: &OperatorAction,
    recorded: Option<&Head>,
) -> anyhow::Result<OperatorAuditEntry> {
    let details = serde_json::to_string(&a.details)?;
    for _ in 0..10 {
        let last = store.last_operator_audit().await?;
        if let Some(head) = recorded {
            check_tip(store, last.as_ref(), head).await?;
        }
        let (seq, prev_hash) = match &last {
            Some(l) => (l.seq + 1, l.hash.clone()),
            None => (1, GENESIS.to_vec()),
        };
        let mut e = OperatorAuditEntry {
            seq,
            created_at: Timestamp::now(),
            actor: a.actor.clone(),
            action: a.action.clone(),
            target: a.target.clone(),
            details: details.clone(),
            prev_hash,
            hash: Vec::new(),
        };
        e.hash = entry_hash(&e.prev_hash, &e).to_vec();
        match store.insert_operator_audit(&e).await {
            Ok(()) => return Ok(e),
            Err(StoreError::Conflict(_)) => continue,
            Err(other) => return Err(other).context("appending to the operator audit log"),
        }
    }
    bail!("could not append to the operator audit log: too many concurrent appends")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub entries: usize,
    pub head: Option<Head>,
    /// Whether a recorded head was compared (without one, dropping the newest entries
    /// cannot be detected).
    pub anchored: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBroken {
    #[error(
        "entry {position} has sequence number {found}, expected {expected} (an entry was removed or inserted)"
    )]
    Sequence {
        position: usize,
        expected: i64,
        found: i64,
    },
    #[error(
        "entry {seq} does not link to the entry before it (an entry was removed, inserted or changed)"
    )]
    Link { seq: i64 },
    #[error("entry {seq} was changed: its hash does not match its contents")]
    Changed { seq: i64 },
    #[error(
        "the log has {entries} entries but the recorded head is entry {head_seq}: the newest entries were removed"
    )]
    Truncated { entries: usize, head_seq: i64 },
    #[error("entry {seq} differs from the recorded head: the log was rewritten")]
    HeadMismatch { seq: i64 },
}

/// Checks the whole chain, and that it still contains `recorded` if given.
pub fn verify(
    entries: &[OperatorAuditEntry],
    recorded: Option<&Head>,
) -> Result<VerifyReport, ChainBroken> {
    let mut prev: &[u8] = &GENESIS;
    for (i, e) in entries.iter().enumerate() {
        let expected = i as i64 + 1;
        if e.seq != expected {
            return Err(ChainBroken::Sequence {
                position: i + 1,
                expected,
                found: e.seq,
            });
        }
        if e.prev_hash != prev {
            return Err(ChainBroken::Link { seq: e.seq });
        }
        if entry_hash(&e.prev_hash, e)[..] != e.hash[..] {
            return Err(ChainBroken::Changed { seq: e.seq });
        }
        prev = &e.hash;
    }
    if let Some(head) = recorded {
        let Some(at) = usize::try_from(head.seq - 1)
            .ok()
            .and_then(|i| entries.get(i))
        else {
            return Err(ChainBroken::Truncated {
                entries: entries.len(),
                head_seq: head.seq,
            });
        };
        if at.hash[..] != head.hash[..] {
            return Err(ChainBroken::HeadMismatch { seq: head.seq });
        }
    }
    Ok(VerifyReport {
        entries: entries.len(),
        head: entries.last().and_then(Head::of),
        anchored: recorded.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<OperatorAuditEntry> {
        let mut out: Vec<OperatorAuditEntry> = Vec::new();
        for seq in 1..=n {
            let prev_hash = out.last().map_or(GENESIS.to_vec(), |e| e.hash.clone());
            let mut e = OperatorAuditEntry {
                seq,
                created_at: Timestamp(1_700_000_000_000 + seq),
                actor: "ops".into(),
                action: "workspace.suspend".into(),
                target: format!("w{seq}"),
                details: "{}".into(),
                prev_hash,
                hash: vec![],
            };
            e.hash = entry_hash(&e.prev_hash, &e).to_vec();
            out.push(e);
        }
        out
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let a = canonical(1, Timestamp(0), "ab", "c", "", "{}");
        let b = canonical(1, Timestamp(0), "a", "bc", "", "{}");
        assert_ne!(a, b);
    }

    #[test]
    fn intact_chain_verifies_against_its_head() {
        let c = chain(4);
        let head = Head::of(c.last().unwrap()).unwrap();
        let r = verify(&c, Some(&head)).unwrap();
        assert_eq!(r.entries, 4);
        assert_eq!(r.head, Some(head.clone()));
        assert_eq!(head.to_string().parse::<Head>().unwrap(), head);
    }

    #[test]
    fn each_kind_of_tampering_is_detected() {
        let c = chain(4);
        let head = Head::of(c.last().unwrap()).unwrap();

        let mut changed = c.clone();
        changed[1].target = "someone else".into();
        assert_eq!(verify(&changed, None), Err(ChainBroken::Changed { seq: 2 }));

        let mut removed = c.clone();
        removed.remove(1);
        assert!(matches!(
            verify(&removed, None),
            Err(ChainBroken::Sequence { .. })
        ));

        let mut truncated = c.clone();
        truncated.pop();
        assert!(verify(&truncated, None).is_ok(), "unanchored: undetectable");
        assert!(matches!(
            verify(&truncated, Some(&head)),
            Err(ChainBroken::Truncated { .. })
        ));

        // Rewriting from entry 2 on with recomputed hashes passes the chain check and fails
        // only against the recorded head.
        let mut rewritten = c.clone();
        rewritten[1].target = "forged".into();
        for i in 1..rewritten.len() {
            rewritten[i].prev_hash = rewritten[i - 1].hash.clone();
            rewritten[i].hash = entry_hash(&rewritten[i].prev_hash, &rewritten[i]).to_vec();
        }
        assert!(verify(&rewritten, None).is_ok());
        assert_eq!(
            verify(&rewritten, Some(&head)),
            Err(ChainBroken::HeadMismatch { seq: 4 })
        );
    }
}
