//! The chat-log inbox and its exports: previews and counts, full-text search, reference
//! look-up, filters, keyset pages; one conversation as CSV/JSON (formula injection
//! neutralised), the workspace's logs streamed page by page, and a confirmed deletion.

use futures_util::StreamExt;
use parlo::model::*;
use parlo::site::log_export::{csv_cell, export_stream};
use parlo_tests::fixture::{self, location};
use parlo_tests::lifecycle::RawDb;
use parlo_tests::{Backend, both_backends};

use super::world::*;

both_backends!(
    inbox_lists_previews_and_counts_and_finds_by_words_reference_and_filters,
    inbox_pages_by_keyset_through_every_conversation_once,
    conversation_exports_escape_csv_and_neutralise_formulas,
    workspace_export_streams_every_message_page_by_page,
    a_conversation_is_deleted_only_after_confirmation_and_audited
);

async fn failed_chat(w: &World, question: &str, status: MessageStatus) -> Conversation {
    let store = w.app.store();
    let (c, _) = fixture::chat(store, w.a.t, w.a.bot.id, &[(MessageRole::User, question)]).await;
    store
        .append_message(
            w.a.t,
            &NewMessage {
                conversation_id: c.id,
                role: MessageRole::Assistant,
                content: String::new(),
                status,
            },
        )
        .await
        .unwrap();
    c
}

async fn inbox_lists_previews_and_counts_and_finds_by_words_reference_and_filters(
    backend: Backend,
) {
    let w = world(backend).await;
    let store = w.app.store();
    let (t, bot) = (w.a.t, w.a.bot.id);
    let (refund, _) = fixture::chat(
        store,
        t,
        bot,
        &[
            (MessageRole::User, "Can I get a refund for my order?"),
            (MessageRole::Assistant, "Yes, within 30 days."),
            (MessageRole::User, "Thanks"),
        ],
    )
    .await;
    let norway = failed_chat(&w, "Do you ship to Norway?", MessageStatus::Failed).await;
    let broken = failed_chat(
        &w,
        "Is the warranty transferable?",
        MessageStatus::Interrupted,
    )
    .await;
    let empty = store
        .create_conversation(
            t,
            &NewConversation {
                bot_id: bot,
                origin: fixture::SHOP.into(),
                resume_hash: vec![7; 32],
            },
        )
        .await
        .unwrap();
    let logs = format!("/w/{t}/logs");
    let listed = |page: &str, c: &Conversation| page.contains(&c.id.to_string());

    let (status, page) = w.alice.page(&logs).await;
    assert_eq!(status, 200);
    assert!(page.contains("Can I get a refund for my order?"), "{page}");
    assert!(
        page.contains("What does it cost?"),
        "the first question of each: {page}"
    );
    assert!(
        page.contains("<td class=\"count\">3</td>"),
        "message count: {page}"
    );
    assert!(page.contains(&refund.reference()), "the reference is shown");
    for c in [&refund, &norway, &broken] {
        assert!(listed(&page, c), "{} listed", c.id);
    }
    assert!(
        !listed(&page, &empty),
        "a conversation without messages is not listed"
    );

    // Full-text search: a word of an answer or a question; every word must match.
    let (_, page) = w.alice.page(&format!("{logs}?q=days")).await;
    assert!(listed(&page, &refund) && !listed(&page, &norway), "{page}");
    let (_, page) = w.alice.page(&format!("{logs}?q=Norway")).await;
    assert!(listed(&page, &norway) && !listed(&page, &refund), "{page}");
    let (_, page) = w.alice.page(&format!("{logs}?q=refund+Norway")).await;
    assert!(page.contains("id=\"no-conversations\""), "{page}");

    // A reference, with or without `ref:`, in any case, finds exactly its conversation.
    let r = norway.reference();
    assert_eq!(r.len(), 8);
    assert!(
        r.bytes()
            .all(|b| b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".contains(&b))
    );
    for q in [format!("ref:{r}"), r.to_lowercase(), format!("REF:{r}")] {
        let (_, page) = w.alice.page(&format!("{logs}?q={q}")).await;
        assert!(listed(&page, &norway), "{q}: {page}");
        for other in [&refund, &broken] {
            assert!(!listed(&page, other), "{q} finds only its conversation");
        }
    }
    // An 8-letter word that could be a reference is still searched as a word.
    let (_, page) = w.alice.page(&format!("{logs}?q=THANKS+BY")).await;
    assert!(
        page.contains("id=\"no-conversations\""),
        "two words, not a reference"
    );
    let (_, page) = w.alice.page(&format!("{logs}?q=Thanksby")).await;
    assert!(page.contains("id=\"no-conversations\""));
    let (shipping, _) = fixture::chat(
        store,
        t,
        bot,
        &[(MessageRole::User, "Is shipping free over 50 euros?")],
    )
    .await;
    let (_, page) = w.alice.page(&format!("{logs}?q=shipping")).await;
    assert!(
        listed(&page, &shipping),
        "a word that parses as base32: {page}"
    );
    let (_, page) = w.alice.page(&format!("{logs}?q=ref:shipping")).await;
    assert!(!listed(&page, &shipping), "ref: looks up references only");
    // Another workspace's reference finds nothing here.
    let (_, page) = w
        .alice
        .page(&format!("{logs}?q=ref:{}", reference_of(w.b.conversation)))
        .await;
    assert!(page.contains("id=\"no-conversations\""), "{page}");

    // Unanswered: failed, interrupted (no complete answer); not the answered ones.
    let (_, page) = w.alice.page(&format!("{logs}?unanswered=1")).await;
    assert!(listed(&page, &norway) && listed(&page, &broken), "{page}");
    assert!(!listed(&page, &refund) && !page.contains("What does it cost?"));

    // Date range on the last activity (UTC days).
    let today = &Timestamp::now().to_rfc3339()[..10];
    let (_, page) = w
        .alice
        .page(&format!("{logs}?from={today}&to={today}"))
        .await;
    assert!(listed(&page, &refund), "{page}");
    let (_, page) = w.alice.page(&format!("{logs}?to=2020-01-01")).await;
    assert!(page.contains("id=\"no-conversations\""), "{page}");
    let (_, page) = w.alice.page(&format!("{logs}?from=2999-01-01")).await;
    assert!(page.contains("id=\"no-conversations\""), "{page}");
    let (status, page) = w.alice.page(&format!("{logs}?from=yesterday")).await;
    assert_eq!(status, 200);
    assert!(page.contains("must look like 2026-01-31"), "{page}");

    // Bot filter: another bot's conversations are not listed under this one.
    let other = store
        .create_bot(
            t,
            &BotSettings::parse(&BotInput {
                name: "Other bot".into(),
                allowed_origins: fixture::SHOP.into(),
                ..BotInput::default()
            })
            .unwrap(),
        )
        .await
        .unwrap();
    let (elsewhere, _) = fixture::chat(
        store,
        t,
        other.id,
        &[(MessageRole::User, "Hello from elsewhere")],
    )
    .await;
    let (_, page) = w.alice.page(&format!("{logs}?bot={bot}")).await;
    assert!(listed(&page, &refund) && !listed(&page, &elsewhere));
    let (_, page) = w.alice.page(&format!("{logs}?bot={}", other.id)).await;
    assert!(listed(&page, &elsewhere) && !listed(&page, &refund));

    // Markup in a question is text, not HTML.
    let (xss, _) = fixture::chat(
        store,
        t,
        bot,
        &[(MessageRole::User, "<img src=x onerror=alert(1)>")],
    )
    .await;
    let (_, page) = w.alice.page(&logs).await;
    assert!(listed(&page, &xss));
    assert!(
        !page.contains("<img src=x") && page.contains("&#60;img src=x"),
        "{page}"
    );
    w.app.stop().await;
}

async fn inbox_pages_by_keyset_through_every_conversation_once(backend: Backend) {
    let w = world(backend).await;
    let store = w.app.store();
    let t = w.a.t;
    // 120 conversations.
    let mut made = vec![w.a.conversation];
    for i in 0..119 {
        let question = format!("Question number {i}");
        made.push(
            fixture::chat(store, t, w.a.bot.id, &[(MessageRole::User, &question)])
                .await
                .0
                .id,
        );
    }
    // Every conversation active in the same millisecond: the order, and the pages, rest
    // on the id alone (a cursor on the time only would skip or repeat them).
    let raw = RawDb::of(&w.app.db).await;
    raw.try_exec("UPDATE conversations SET last_activity_at = 1764000000000")
        .await
        .unwrap();
    raw.close().await;
    let mut seen = Vec::new();
    let mut next = Some(format!("/w/{t}/logs"));
    let mut pages = 0;
    while let Some(path) = next.take() {
        let (status, page) = w.alice.page(&path.replace("&#38;", "&")).await;
        assert_eq!(status, 200, "{path}");
        pages += 1;
        for chunk in page.split(&format!("href=\"/w/{t}/logs/")).skip(1) {
            let id = &chunk[..36];
            if let Ok(id) = id.parse::<ConversationId>() {
                seen.push(id);
            }
        }
        next = page
            .split("rel=\"next\"")
            .next()
            .and_then(|before| before.rsplit("<a href=\"").next())
            .filter(|_| page.contains("rel=\"next\""))
            .map(|s| s.split('"').next().unwrap().to_owned());
        assert!(pages <= 5, "paging ends: {path}");
    }
    assert_eq!(pages, 3, "50 + 50 + 20");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no conversation on two pages");
    made.sort();
    assert_eq!(unique, made, "every conversation on some page");
    // Newest first across pages, by the same order the store pages with.
    let all = store
        .inbox(
            t,
            &InboxQuery {
                limit: 500,
                ..InboxQuery::default()
            },
        )
        .await
        .unwrap();
    let order: Vec<ConversationId> = all.iter().map(|e| e.conversation.id).collect();
    assert_eq!(order, seen);
    for pair in all.windows(2) {
        let (a, b) = (&pair[0].conversation, &pair[1].conversation);
        assert!((a.last_activity_at, a.id) > (b.last_activity_at, b.id));
    }
    // A cursor that is not one is refused, not ignored.
    let (status, _) = w.alice.page(&format!("/w/{t}/logs?after=nonsense")).await;
    assert_eq!(status, 404);
    w.app.stop().await;
}

#[test]
fn csv_cells_are_quoted_and_formulas_neutralised() {
    assert_eq!(csv_cell("plain"), "plain");
    assert_eq!(csv_cell("a,b"), "\"a,b\"");
    assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_eq!(csv_cell("two\nlines"), "\"two\nlines\"");
    assert_eq!(csv_cell("=1+1"), "'=1+1");
    assert_eq!(csv_cell("+1"), "'+1");
    assert_eq!(csv_cell("-1"), "'-1");
    assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
    assert_eq!(csv_cell("\tx"), "'\tx");
    assert_eq!(csv_cell(" padded "), "\" padded \"");
    assert_eq!(
        csv_cell("=HYPERLINK(\"http://evil\",\"x\")"),
        "\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\""
    );
}

async fn conversation_exports_escape_csv_and_neutralise_formulas(backend: Backend) {
    let w = world(backend).await;
    let store = w.app.store();
    let t = w.a.t;
    let (c, messages) = fixture::chat(
        store,
        t,
        w.a.bot.id,
        &[
            (
                MessageRole::User,
                "=HYPERLINK(\"http://evil.example\",\"x\")",
            ),
            (MessageRole::Assistant, "a, b and \"c\"\nsecond line"),
            (MessageRole::User, "@SUM(1)"),
        ],
    )
    .await;
    let path = format!("/w/{t}/logs/{}/export", c.id);
    let r = w.carol.get(&format!("{path}?format=csv")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    let disposition = r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        disposition,
        format!(
            "attachment; filename=\"parlo-conversation-{}.csv\"",
            c.reference()
        )
    );
    let csv = r.text().await.unwrap();
    assert!(
        csv.starts_with("conversation_reference,conversation_id,"),
        "{csv}"
    );
    assert!(
        csv.contains(",\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\"\r\n"),
        "{csv}"
    );
    assert!(
        csv.contains(",\"a, b and \"\"c\"\"\nsecond line\"\r\n"),
        "{csv}"
    );
    assert!(csv.contains(",'@SUM(1)\r\n"), "{csv}");
    assert_eq!(csv.matches("\r\n").count(), 4, "header and three messages");

    let r = w.carol.get(&format!("{path}?format=json")).await;
    assert_eq!(r.status(), 200);
    let doc: serde_json::Value = r.json().await.unwrap();
    assert_eq!(doc["conversation"]["reference"], c.reference());
    assert_eq!(doc["conversation"]["id"], c.id.to_string());
    let exported = doc["messages"].as_array().unwrap();
    assert_eq!(exported.len(), 3);
    for (e, m) in exported.iter().zip(&messages) {
        assert_eq!(e["content"], m.content, "JSON keeps the text as written");
        assert_eq!(e["message_id"], m.id.to_string());
    }
    let (status, _) = w.carol.page(&format!("{path}?format=xml")).await;
    assert_eq!(status, 400);
    let audit = store.audit_log(t, 100).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "conversation.export" && e.target == c.reference())
    );
    w.app.stop().await;
}

async fn workspace_export_streams_every_message_page_by_page(backend: Backend) {
    let w = world(backend).await;
    let store = w.app.store();
    let t = w.a.t;
    for i in 0..6 {
        let q = format!("Question {i}, with a comma");
        fixture::chat(
            store,
            t,
            w.a.bot.id,
            &[(MessageRole::User, &q), (MessageRole::Assistant, "-answer")],
        )
        .await;
    }
    // 2 (route_ids) + 12 messages; pages of 3, 7 and 14 (an exact multiple) all give the same.
    let total = 14;
    let mut texts = Vec::new();
    for page in [3, 7, 14, 500] {
        let chunks: Vec<_> = export_stream(store.clone(), t, false, page)
            .collect::<Vec<_>>()
            .await;
        let expected_chunks = total / page as usize + 1;
        assert_eq!(
            chunks.len(),
            expected_chunks,
            "one chunk per page (page {page})"
        );
        let body: Vec<u8> = chunks
            .into_iter()
            .flat_map(|c| c.unwrap().to_vec())
            .collect();
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let rows = doc.as_array().unwrap();
        assert_eq!(rows.len(), total, "page {page}");
        let mut ids: Vec<&str> = rows
            .iter()
            .map(|r| r["message_id"].as_str().unwrap())
            .collect();
        ids.dedup();
        assert_eq!(ids.len(), total);
        texts.push(body);
    }
    assert!(
        texts.windows(2).all(|p| p[0] == p[1]),
        "page size changes nothing"
    );

    // Over HTTP, for an admin: the same rows, CSV neutralised; B's messages are not in it.
    let r = w.alice.get(&format!("/w/{t}/logs/export?format=csv")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = r.text().await.unwrap();
    assert_eq!(csv.matches("\r\n").count(), total + 1, "{csv}");
    assert!(csv.contains(",\"Question 5, with a comma\"\r\n"), "{csv}");
    assert!(
        csv.contains(",'-answer\r\n") && !csv.contains(",-answer"),
        "{csv}"
    );
    assert!(!csv.contains(&w.b.conversation.to_string()));
    let r = w
        .alice
        .get(&format!("/w/{t}/logs/export?format=json"))
        .await;
    let doc: serde_json::Value = r.json().await.unwrap();
    assert_eq!(doc.as_array().unwrap().len(), total);
    // An empty workspace exports an empty list.
    store.wipe_conversations(t, None).await.unwrap();
    let r = w
        .alice
        .get(&format!("/w/{t}/logs/export?format=json"))
        .await;
    let doc: serde_json::Value = r.json().await.unwrap();
    assert_eq!(doc, serde_json::json!([]));
    let audit = store.audit_log(t, 100).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "logs.export"));
    w.app.stop().await;
}

async fn a_conversation_is_deleted_only_after_confirmation_and_audited(backend: Backend) {
    let w = world(backend).await;
    let store = w.app.store();
    let t = w.a.t;
    let c = w.a.conversation;
    let reference = reference_of(c);
    let page_path = format!("/w/{t}/logs/{c}");
    let (_, page) = w.alice.page(&page_path).await;
    assert!(
        page.contains(&format!("href=\"{page_path}/delete\"")),
        "{page}"
    );
    assert!(page.contains(&reference));
    // A member sees no delete link.
    let (_, page) = w.carol.page(&page_path).await;
    assert!(!page.contains("/delete\""), "{page}");

    let (status, confirm) = w.alice.page(&format!("{page_path}/delete")).await;
    assert_eq!(status, 200);
    assert!(
        confirm.contains("its 2 messages") && confirm.contains(&reference),
        "{confirm}"
    );
    assert!(
        store.conversation(t, c).await.unwrap().is_some(),
        "GET deletes nothing"
    );

    let csrf = w.alice.csrf(&format!("{page_path}/delete")).await;
    let r = w
        .alice
        .post(&format!("{page_path}/delete"), &csrf, &[])
        .await;
    assert_eq!(r.status(), 400);
    assert!(
        store.conversation(t, c).await.unwrap().is_some(),
        "unconfirmed: kept"
    );

    let r = w
        .alice
        .post(&format!("{page_path}/delete"), &csrf, &[("confirm", "yes")])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        location(&r),
        format!("/w/{t}/logs?notice=conversation_deleted")
    );
    assert!(store.conversation(t, c).await.unwrap().is_none());
    assert!(store.messages(t, c).await.unwrap().is_empty());
    let audit = store.audit_log(t, 100).await.unwrap();
    let entry = audit
        .iter()
        .find(|e| e.action == "conversation.delete")
        .expect("audited");
    assert_eq!(entry.target, reference);
    // Deleting it again is a 404, and B's conversation of the same path shape is untouched.
    let r = w
        .alice
        .post(&format!("{page_path}/delete"), &csrf, &[("confirm", "yes")])
        .await;
    assert_eq!(r.status(), 404);
    assert!(
        store
            .conversation(w.b.t, w.b.conversation)
            .await
            .unwrap()
            .is_some()
    );
    w.app.stop().await;
}
