//! `parlo knowledge …` as an operator runs it: import files into a library (created by
//! name) with progress, search as a bot (JSON lines), reindex, and a readable failure for a
//! file that cannot be read.

mod support;

use std::path::Path;
use std::process::Command;

use parlo::config::DatabaseUrl;
use parlo::model::{AnswerMode, BotInput, BotSettings, Email, TenantId, WorkspaceName};
use parlo::storage::Store;
use support::parlo;

const HANDBOOK: &str = "# Shipping\n\nWe ship parcels within three working days.\n\n\
    # Returns\n\nReturns are accepted within thirty days of delivery.\n";

fn run(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let mut cmd: Command = parlo(dir);
    let out = cmd.args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn store(dir: &Path) -> Store {
    let url = format!("sqlite://{}/data/parlo.db?mode=rwc", dir.display());
    Store::open_sqlite(&DatabaseUrl::new(url)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_search_and_reindex_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let (t, bot): (TenantId, String) = {
        let s = store(dir.path()).await;
        let user = s
            .create_user(&Email::parse("ops@a.example").unwrap(), "h")
            .await
            .unwrap();
        let w = s
            .create_workspace(&WorkspaceName::parse("Acme").unwrap(), user.id)
            .await
            .unwrap();
        let bot = s
            .create_bot(
                w.id,
                &BotSettings::parse(&BotInput {
                    name: "Helper".into(),
                    ..BotInput::default()
                })
                .unwrap(),
            )
            .await
            .unwrap();
        s.close().await;
        (w.id, bot.public_id)
    };
    std::fs::write(dir.path().join("handbook.md"), HANDBOOK).unwrap();
    std::fs::write(dir.path().join("broken.docx"), b"PK\x03\x04 not a zip").unwrap();
    let ws = t.to_string();

    let (ok, _, err) = run(
        dir.path(),
        &[
            "knowledge",
            "import",
            "--workspace",
            &ws,
            "--library",
            "Handbook",
            "handbook.md",
        ],
    );
    assert!(ok, "{err}");
    assert!(err.contains("created library \"Handbook\""), "{err}");
    assert!(
        err.contains("[####################] [1/1] handbook.md: ready (1 pages, 2 passages)"),
        "{err}"
    );

    // The bot answers from the library once linked to it.
    {
        let s = store(dir.path()).await;
        let lib = s.libraries(t).await.unwrap()[0].id;
        let b = s.bot_by_public_id(t, &bot).await.unwrap().unwrap();
        s.set_bot_knowledge(t, b.id, AnswerMode::OnlyLibraries, &[lib])
            .await
            .unwrap();
        s.close().await;
    }
    let (ok, out, err) = run(
        dir.path(),
        &[
            "knowledge",
            "search",
            "--bot",
            &bot,
            "How long can I return things?",
        ],
    );
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!lines.is_empty(), "{out}");
    assert_eq!(lines[0]["rank"], 1);
    assert_eq!(lines[0]["source"], "handbook.md");
    assert_eq!(lines[0]["heading"], "Returns");
    assert!(lines[0]["page"].is_null());
    assert!(lines[0]["score"].as_f64().unwrap() > 0.0);
    assert!(lines[0]["text"].as_str().unwrap().contains("thirty days"));

    let (ok, _, err) = run(dir.path(), &["knowledge", "reindex", "--workspace", &ws]);
    assert!(ok, "{err}");
    assert!(err.contains("handbook.md: ready"), "{err}");

    // A damaged file: a readable reason and a failing exit status.
    let (ok, _, err) = run(
        dir.path(),
        &[
            "knowledge",
            "import",
            "--workspace",
            &ws,
            "--library",
            "Handbook",
            "broken.docx",
        ],
    );
    assert!(!ok);
    assert!(err.contains("broken.docx: failed"), "{err}");
    assert!(
        err.contains("1 of 1 source(s) could not be ingested"),
        "{err}"
    );
}
