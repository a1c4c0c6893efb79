//! Encrypted backups and the restore drill on both backends, with real data: backup →
//! `restore --verify` round trips, the file is unreadable without (or with the wrong)
//! identity, tampering and count mismatches are caught, and a real restore goes only into
//! an empty target.

use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret;
use parlo::config::{Config, DatabaseUrl, Settings};
use parlo::keyring::{BackupSigningKey, MasterKeys};
use parlo::lifecycle::archive::{self, Progress, Sealer};
use parlo::lifecycle::{backup, restore};
use parlo::model::*;
use parlo::storage::*;
use parlo_tests::fixture::NewTenant;
use parlo_tests::lifecycle::RawDb;
use parlo_tests::{Backend, TEST_MASTER_KEYS, TestStore, both_backends, test_env, test_store};
use sqlx::Connection;

struct Keys {
    dir: tempfile::TempDir,
    recipients: Vec<String>,
}

impl Keys {
    /// Two age key pairs (an operator may encrypt to several) plus one stranger.
    fn new() -> Keys {
        let dir = tempfile::tempdir().unwrap();
        let mut recipients = Vec::new();
        for name in ["ops", "escrow", "stranger"] {
            let id = age::x25519::Identity::generate();
            std::fs::write(
                dir.path().join(format!("{name}.key")),
                format!("# {name}\n{}\n", id.to_string().expose_secret()),
            )
            .unwrap();
            if name != "stranger" {
                recipients.push(id.to_public().to_string());
            }
        }
        Keys { dir, recipients }
    }

    fn identity(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.key"))
    }
}

fn config(
    ts: &TestStore,
    data: &Path,
    recipients: &[String],
    adjust: impl FnOnce(&mut Settings),
) -> Config {
    let mut s = Settings {
        data_dir: Some(data.to_owned()),
        database_url: Some(ts.db.app_url()),
        backup_recipients: Some(recipients.to_vec()),
        backup_database_url: ts.db.pg().map(|pg| pg.admin_url.clone()),
        ..Settings::default()
    };
    adjust(&mut s);
    Config::load(&s, None, &test_env).unwrap()
}

/// Two workspaces with chat data; the message text is what must not appear in the file.
async fn populate(store: &Store) -> TenantId {
    let mut first = None;
    for (email, name) in [("ann@a.example", "Acme"), ("bob@b.example", "Bolt")] {
        let t = NewTenant::owned_by(email)
            .workspace(name)
            .create(store)
            .await;
        for i in 0..5 {
            let c = store
                .create_conversation(
                    t.tenant,
                    &NewConversation {
                        bot_id: t.bot.id,
                        origin: "https://x.example".into(),
                        resume_hash: vec![i; 32],
                    },
                )
                .await
                .unwrap();
            for role in [MessageRole::User, MessageRole::Assistant] {
                let m = store
                    .append_message(
                        t.tenant,
                        &NewMessage {
                            conversation_id: c.id,
                            role,
                            content: format!("PLAINTEXT-CANARY of {name} #{i}"),
                            status: MessageStatus::Complete,
                        },
                    )
                    .await
                    .unwrap();
                if i == 0 && role == MessageRole::Assistant {
                    // A row in every knowledge table (FTS5 index included on SQLite).
                    parlo_tests::knowledge::stage_rows(store, t.tenant, t.bot.id, c.id, m.id).await;
                }
            }
        }
        first.get_or_insert(t.tenant);
    }
    first.unwrap()
}

/// The key the test server signs its backups with.
fn server_signer() -> BackupSigningKey {
    MasterKeys::parse(TEST_MASTER_KEYS)
        .unwrap()
        .backup_signing_key()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

both_backends!(
    backup_round_trips_through_the_restore_drill,
    a_backup_is_never_written_without_a_recipient,
    tampering_and_count_mismatches_fail_the_drill,
    restore_goes_only_into_an_empty_target,
    old_local_backups_are_pruned,
    a_forged_backup_is_refused_by_restore_and_its_drill
);

async fn backup_round_trips_through_the_restore_drill(backend: Backend) {
    let ts = test_store(backend).await;
    let acme = populate(&ts.store).await;
    let raw = RawDb::of(&ts.db).await;
    let keys = Keys::new();
    let data = tempfile::tempdir().unwrap();
    let offsite = tempfile::tempdir().unwrap();
    let command = format!("cp \"$1\" '{}'/", offsite.path().display());
    let config = config(&ts, data.path(), &keys.recipients, |s| {
        s.backup_command = Some(command)
    });

    let r = backup::run(&config, Progress::Quiet).await.unwrap();
    assert!(r.path.starts_with(data.path().join("backups")));
    let name = r.path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("parlo-") && name.ends_with(".age"),
        "{name}"
    );
    // The manifest holds every table's count, equal to what the database holds.
    for table in raw.tables().await {
        assert_eq!(
            r.manifest.tables.get(&table),
            Some(&raw.count(&table).await),
            "{table}"
        );
    }
    assert_eq!(r.manifest.tables["messages"], 20);
    assert_eq!(r.manifest.tables["knowledge_chunks"], 2);
    // Encrypted: neither chat text nor the manifest is readable in the file.
    let bytes = std::fs::read(&r.path).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1"));
    assert!(!contains(&bytes, b"PLAINTEXT-CANARY"));
    assert!(!contains(&bytes, b"workspace_profiles"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&r.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "backup readable by others: {mode:o}");
    }
    // Handed to the off-site command.
    assert_eq!(std::fs::read(offsite.path().join(&name)).unwrap(), bytes);

    // The drill passes with either recipient's identity.
    for id in ["ops", "escrow"] {
        let report = restore::verify(&config, &r.path, &keys.identity(id), Progress::Quiet)
            .await
            .unwrap();
        assert!(report.ok());
        assert_eq!(report.integrity, "ok");
        assert_eq!(report.tables.len(), r.manifest.tables.len());
        assert!(
            report
                .tables
                .iter()
                .all(|t| t.expected == t.found && t.found.is_some())
        );
    }
    if let Some(pg) = ts.db.pg() {
        // The drill's temporary database is gone.
        let mut admin = sqlx::PgConnection::connect(&pg.admin_url).await.unwrap();
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'parlo_restore_verify_%'",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        assert_eq!(left, 0);
    }

    // Unreadable with the wrong identity.
    let err = restore::verify(
        &config,
        &r.path,
        &keys.identity("stranger"),
        Progress::Quiet,
    )
    .await
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("none of the identities"),
        "{err:#}"
    );
    let trusted = restore::trusted_keys(&config).unwrap();
    let err = archive::open(
        &r.path,
        &keys.identity("stranger"),
        &trusted,
        Progress::Quiet,
    )
    .err()
    .unwrap();
    assert!(
        format!("{err:#}").contains("none of the identities"),
        "{err:#}"
    );
    let _ = acme;
    raw.close().await;
}

async fn a_backup_is_never_written_without_a_recipient(backend: Backend) {
    let ts = test_store(backend).await;
    populate(&ts.store).await;
    let data = tempfile::tempdir().unwrap();
    let config = config(&ts, data.path(), &[], |_| {});
    let err = backup::run(&config, Progress::Quiet).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("no recipient is configured"),
        "{err:#}"
    );
    assert!(
        !data.path().join("backups").exists(),
        "nothing may be written"
    );
}

async fn tampering_and_count_mismatches_fail_the_drill(backend: Backend) {
    let ts = test_store(backend).await;
    populate(&ts.store).await;
    let keys = Keys::new();
    let data = tempfile::tempdir().unwrap();
    let config = config(&ts, data.path(), &keys.recipients, |_| {});
    let r = backup::run(&config, Progress::Quiet).await.unwrap();
    let ops = keys.identity("ops");

    // One flipped bit in the ciphertext: age's authentication refuses it.
    let mut bytes = std::fs::read(&r.path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    let flipped = data.path().join("flipped.age");
    std::fs::write(&flipped, &bytes).unwrap();
    assert!(
        restore::verify(&config, &flipped, &ops, Progress::Quiet)
            .await
            .is_err()
    );

    // Truncated.
    let truncated = data.path().join("truncated.age");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    assert!(
        restore::verify(&config, &truncated, &ops, Progress::Quiet)
            .await
            .is_err()
    );

    // Validly encrypted, but the manifest claims a row the payload lacks.
    let trusted = restore::trusted_keys(&config).unwrap();
    let opened = archive::open(&r.path, &ops, &trusted, Progress::Quiet).unwrap();
    let mut manifest = opened.manifest.clone();
    *manifest.tables.get_mut("messages").unwrap() += 1;
    let recipients = archive::recipients(&keys.recipients).unwrap();
    let lying = data.path().join("backups/parlo-lying.age");
    let mut sealer = Sealer::create(&lying, &recipients, Progress::Quiet, None).unwrap();
    std::io::copy(
        &mut std::fs::File::open(&opened.payload).unwrap(),
        &mut sealer,
    )
    .unwrap();
    sealer.finish(manifest, &server_signer()).unwrap();
    let err = restore::verify(&config, &lying, &ops, Progress::Quiet)
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("messages expected Some(21) found Some(20)"),
        "{err:#}"
    );
}

async fn restore_goes_only_into_an_empty_target(backend: Backend) {
    let ts = test_store(backend).await;
    let acme = populate(&ts.store).await;
    let keys = Keys::new();
    let data = tempfile::tempdir().unwrap();
    let config = config(&ts, data.path(), &keys.recipients, |_| {});
    let r = backup::run(&config, Progress::Quiet).await.unwrap();
    let ops = keys.identity("ops");

    // Into the live database: refused, it is not empty.
    let err = restore::restore(&config, &r.path, &ops, None, Progress::Quiet)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("not empty"), "{err:#}");

    let (target, cleanup) = match ts.db.pg() {
        None => (
            format!(
                "sqlite://{}",
                data.path().join("restored/parlo.db").display()
            ),
            None,
        ),
        Some(pg) => {
            let name = format!("{}_restored", pg.name);
            let mut admin = sqlx::PgConnection::connect(&pg.admin_url).await.unwrap();
            sqlx::query(&format!(
                "CREATE DATABASE {name} OWNER {}",
                parlo_tests::OWNER_ROLE
            ))
            .execute(&mut admin)
            .await
            .unwrap();
            let mut u = url::Url::parse(&pg.admin_url).unwrap();
            u.set_path(&name);
            (u.to_string(), Some(name))
        }
    };
    let report = restore::restore(&config, &r.path, &ops, Some(&target), Progress::Quiet)
        .await
        .unwrap();
    assert!(report.ok());
    assert_eq!(
        report
            .tables
            .iter()
            .find(|t| t.table == "messages")
            .unwrap()
            .found,
        Some(20)
    );

    // The restored database serves the application as it was, RLS and grants included.
    let restored: Store = match ts.db.pg() {
        None => Store::open_sqlite(&DatabaseUrl::new(&target))
            .await
            .unwrap(),
        Some(_) => {
            let mut u = url::Url::parse(&target).unwrap();
            u.set_username(parlo_tests::APP_ROLE).unwrap();
            Store::connect_postgres(&DatabaseUrl::new(u.to_string()))
                .await
                .unwrap()
        }
    };
    assert_eq!(
        restored.workspace(acme).await.unwrap().unwrap().name,
        "Acme"
    );
    let convs = restored
        .conversations(
            acme,
            &ConversationQuery {
                limit: 100,
                ..ConversationQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(convs.len(), 5);

    // Restoring again: refused, the target is no longer empty.
    let err = restore::restore(&config, &r.path, &ops, Some(&target), Progress::Quiet)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("not empty"), "{err:#}");
    drop(restored);
    if let (Some(name), Some(pg)) = (cleanup, ts.db.pg()) {
        let mut admin = sqlx::PgConnection::connect(&pg.admin_url).await.unwrap();
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}

async fn old_local_backups_are_pruned(backend: Backend) {
    let ts = test_store(backend).await;
    let keys = Keys::new();
    let data = tempfile::tempdir().unwrap();
    let config = config(&ts, data.path(), &keys.recipients, |s| {
        s.backup_keep_days = Some(7)
    });
    let dir = data.path().join("backups");
    std::fs::create_dir_all(&dir).unwrap();
    let old = dir.join("parlo-sqlite-20200101T000000000Z.age");
    let recent = dir.join("parlo-sqlite-20200102T000000000Z.age");
    let unrelated = dir.join("notes.txt");
    for (p, days) in [(&old, 8u64), (&recent, 6), (&unrelated, 30)] {
        let f = std::fs::File::create(p).unwrap();
        f.set_modified(
            std::time::SystemTime::now() - std::time::Duration::from_secs(days * 86_400),
        )
        .unwrap();
    }
    let r = backup::run(&config, Progress::Quiet).await.unwrap();
    assert_eq!(r.pruned, vec![old.clone()]);
    assert!(!old.exists() && recent.exists() && unrelated.exists() && r.path.exists());
}

/// Encrypts `plain` with age to `recipients`, as anyone knowing the public recipients can.
fn age_encrypt(recipients: &[String], plain: &[u8], to: &Path) {
    use std::io::Write;
    let rs: Vec<age::x25519::Recipient> = recipients.iter().map(|r| r.parse().unwrap()).collect();
    let enc = age::Encryptor::with_recipients(rs.iter().map(|r| r as &dyn age::Recipient)).unwrap();
    let mut out = enc.wrap_output(std::fs::File::create(to).unwrap()).unwrap();
    out.write_all(plain).unwrap();
    out.finish().unwrap();
}

fn age_decrypt(identity: &Path, file: &Path) -> Vec<u8> {
    use std::io::Read;
    let ids = archive::identities(identity).unwrap();
    let dec = age::Decryptor::new(std::fs::File::open(file).unwrap()).unwrap();
    let mut r = dec
        .decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .unwrap();
    let mut plain = Vec::new();
    r.read_to_end(&mut plain).unwrap();
    plain
}

/// Both the drill and a real restore refuse `backup`, saying `why`.
async fn refused(config: &Config, backup: &Path, identity: &Path, into: &str, why: &str) {
    let err = restore::verify(config, backup, identity, Progress::Quiet)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains(why), "verify: {err:#}");
    let err = restore::restore(config, backup, identity, Some(into), Progress::Quiet)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains(why), "restore: {err:#}");
}

/// Attack: age proves only that a file was encrypted *to* the operator's recipient, and the
/// recipient is public, so anyone could write a "backup" (their own data, their own row
/// counts) that passed `restore --verify` and restored. Every backup is signed; one that is
/// unsigned, signed by another key, or whose signature was altered is refused by the drill
/// and by a restore, and a machine holding only the public verify key accepts a genuine one.
async fn a_forged_backup_is_refused_by_restore_and_its_drill(backend: Backend) {
    let ts = test_store(backend).await;
    populate(&ts.store).await;
    let keys = Keys::new();
    let data = tempfile::tempdir().unwrap();
    let config = config(&ts, data.path(), &keys.recipients, |_| {});
    let r = backup::run(&config, Progress::Quiet).await.unwrap();
    let ops = keys.identity("ops");
    let into = match ts.db.pg() {
        None => format!("sqlite://{}", data.path().join("target/parlo.db").display()),
        Some(pg) => pg.admin_url.clone(),
    };
    let trusted = restore::trusted_keys(&config).unwrap();
    let genuine = archive::open(&r.path, &ops, &trusted, Progress::Quiet).unwrap();
    let payload = std::fs::read(&genuine.payload).unwrap();
    let recipients = archive::recipients(&keys.recipients).unwrap();

    // A well-formed backup signed by the forger's own key.
    let forger = MasterKeys::parse("1:Zm9yZ2VyLW1hc3Rlci1rZXktMDEyMzQ1Njc4OWFiY2Q=")
        .unwrap()
        .backup_signing_key();
    let forged = data.path().join("forged.age");
    let mut sealer = Sealer::create(&forged, &recipients, Progress::Quiet, None).unwrap();
    std::io::copy(&mut payload.as_slice(), &mut sealer).unwrap();
    sealer.finish(genuine.manifest.clone(), &forger).unwrap();
    refused(&config, &forged, &ops, &into, "signature does not verify").await;

    // Unsigned, in the old format, built with nothing but age and the public recipient.
    let manifest = serde_json::to_vec(&genuine.manifest).unwrap();
    let unsigned_plain = [
        b"PARLO-BACKUP\0\x01".as_slice(),
        &payload,
        &manifest,
        &(manifest.len() as u64).to_be_bytes(),
        b"PARLOEND",
    ]
    .concat();
    let unsigned = data.path().join("unsigned.age");
    age_encrypt(&keys.recipients, &unsigned_plain, &unsigned);
    refused(&config, &unsigned, &ops, &into, "unsigned backup").await;

    // The genuine backup with one bit of its signature flipped, re-encrypted.
    let mut plain = age_decrypt(&ops, &r.path);
    let n = plain.len();
    plain[n - 8 - 32] ^= 1;
    let tampered = data.path().join("tampered.age");
    age_encrypt(&keys.recipients, &plain, &tampered);
    refused(&config, &tampered, &ops, &into, "signature does not verify").await;
    // ... and with its manifest changed under the genuine signature.
    let mut plain = age_decrypt(&ops, &r.path);
    let at = contains_at(&plain, b"\"messages\":20").expect("the manifest counts messages");
    plain[at + 12] = b'1';
    age_encrypt(&keys.recipients, &plain, &tampered);
    refused(&config, &tampered, &ops, &into, "signature does not verify").await;

    // A restore machine without the master keys: only the public verify key is configured.
    let verify_key = MasterKeys::parse(TEST_MASTER_KEYS)
        .unwrap()
        .backup_verify_keys()[0]
        .1
        .to_string();
    let elsewhere = tempfile::tempdir().unwrap();
    let restore_machine = |verify: Option<&str>| {
        let s = Settings {
            data_dir: Some(elsewhere.path().to_owned()),
            database_url: Some(ts.db.app_url()),
            backup_database_url: ts.db.pg().map(|pg| pg.admin_url.clone()),
            backup_verify_key: verify.map(|k| vec![k.to_owned()]),
            ..Settings::default()
        };
        Config::load(&s, None, &|_| None).unwrap()
    };
    let report = restore::verify(
        &restore_machine(Some(&verify_key)),
        &r.path,
        &ops,
        Progress::Quiet,
    )
    .await
    .unwrap();
    assert!(report.ok());
    let forger_key = parlo::keyring::BackupVerifyKey(forger.verifying_key()).to_string();
    let err = restore::verify(
        &restore_machine(Some(&forger_key)),
        &r.path,
        &ops,
        Progress::Quiet,
    )
    .await
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("signature does not verify"),
        "{err:#}"
    );
    let err = restore::verify(&restore_machine(None), &r.path, &ops, Progress::Quiet)
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("PARLO_BACKUP_VERIFY_KEY"),
        "{err:#}"
    );
    assert!(
        !elsewhere.path().join("keys.toml").exists(),
        "verifying never generates keys"
    );

    // A backup host with a signing key of its own (PARLO_BACKUP_SIGNING_KEY), no master key.
    let host_dir = tempfile::tempdir().unwrap();
    let host_env = |k: &str| {
        (k == "PARLO_BACKUP_SIGNING_KEY")
            .then(|| "c2lnbmluZy1rZXktb2YtdGhlLWJhY2t1cC1ob3N0LTE=".to_owned())
    };
    let host = Config::load(
        &Settings {
            data_dir: Some(host_dir.path().to_owned()),
            database_url: Some(ts.db.app_url()),
            backup_recipients: Some(keys.recipients.clone()),
            backup_database_url: ts.db.pg().map(|pg| pg.admin_url.clone()),
            ..Settings::default()
        },
        None,
        &host_env,
    )
    .unwrap();
    let b = backup::run(&host, Progress::Quiet).await.unwrap();
    assert!(
        !host_dir.path().join("keys.toml").exists(),
        "the backup host needs no master key"
    );
    let host_key = parlo::keyring::own_backup_verify_keys(&host.key_source, &host.key_file, false)
        .unwrap()[0]
        .to_string();
    let report = restore::verify(
        &restore_machine(Some(&host_key)),
        &b.path,
        &ops,
        Progress::Quiet,
    )
    .await
    .unwrap();
    assert!(report.ok());
    let err = restore::verify(
        &restore_machine(Some(&verify_key)),
        &b.path,
        &ops,
        Progress::Quiet,
    )
    .await
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("signature does not verify"),
        "{err:#}"
    );
}

fn contains_at(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
