//! Knowledge libraries on both backends: ingestion of every source kind through the durable
//! queue (against the fake Mistral for OCR and embeddings, and a local web site reached
//! through the operator's fetch allow-list), failure states with readable reasons and
//! nothing half-indexed, limits, the queue shared by several workers, tenant isolation of
//! retrieval, and the chat turn grounded in a bot's libraries (sources event, citations,
//! knowledge gaps).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use parlo::knowledge::retrieve;
use parlo::model::{
    AnswerMode, ClaimedJob, KnowledgeLimits, LibraryInput, SourceKind, SourceStatus, TenantId,
    Timestamp,
};
use parlo_tests::fake_mistral::FakeMistral;
use parlo_tests::fixture::{NewTenant, SHOP, Tenant};
use parlo_tests::knowledge::{file, ingestor, library_for, web};
use parlo_tests::lifecycle::RawDb;
use parlo_tests::{Backend, TestApp, both_backends, spawn_app_with, test_store};
use serde_json::Value;

const KEY: &str = "sk-knowledge-test-abcd";

const HANDBOOK: &str = "# Shipping\n\nWe ship parcels to Germany, Austria and Switzerland \
    within three working days.\n\n# Returns\n\nReturns are accepted within thirty days of \
    delivery. Print the return label from your account.\n";

struct World {
    app: TestApp,
    fake: FakeMistral,
    t: Tenant,
}

/// The app pointed at a fake Mistral that accepts [`KEY`], with one tenant (with the key
/// when `with_key`) and the fetch allow-list open for loopback (the test web site).
async fn world(backend: Backend, with_key: bool, limits: Option<KnowledgeLimits>) -> World {
    world_with(backend, with_key, limits, None).await
}

async fn world_with(
    backend: Backend,
    with_key: bool,
    limits: Option<KnowledgeLimits>,
    github: Option<url::Url>,
) -> World {
    let fake = FakeMistral::start().await;
    fake.accept_key(KEY);
    let base = fake.base_url.clone();
    let app = spawn_app_with(backend, move |s| {
        s.mistral_base_url = Some(base);
        s.upstream_read_timeout_secs = Some(5);
        s.rate_limit_conversation_per_minute = Some(1000);
        s.rate_limit_ip_per_minute = Some(1000);
        s.knowledge_fetch_allow = Some(vec!["127.0.0.0/8".parse().unwrap()]);
        s.github_api_url = github;
        if let Some(l) = limits {
            s.knowledge_max_documents = Some(l.max_documents);
            s.knowledge_max_mb = Some(l.max_bytes / (1024 * 1024));
            s.knowledge_max_chunks = Some(l.max_chunks);
        }
    })
    .await;
    let mut tenant = NewTenant::owned_by("ann@a.example");
    if with_key {
        tenant = tenant.with_key(KEY);
    }
    let t = tenant.create(app.store()).await;
    World { app, fake, t }
}

/// Runs every due job and returns the source as it ended.
async fn ingest(w: &World, id: parlo::model::SourceId) -> parlo::model::Source {
    ingestor(&w.app).run_due().await.unwrap();
    w.app
        .store()
        .source(w.t.tenant, id)
        .await
        .unwrap()
        .expect("the source exists")
}

both_backends!(
    markdown_file_is_ingested_and_found_by_full_text_without_a_key,
    bad_files_fail_with_a_readable_reason_and_leave_nothing_indexed,
    pdf_is_read_by_ocr_with_page_numbers_and_an_ocr_error_fails_the_source,
    limits_are_enforced_with_clear_errors,
    deleting_a_source_removes_its_chunks_at_once,
    a_tenant_never_retrieves_another_tenants_chunks,
    unchanged_content_is_not_embedded_again,
    web_page_and_sitemap_are_fetched_and_a_failing_site_is_retried_with_backoff,
    the_queue_leases_jobs_and_takes_over_expired_leases,
    several_workers_share_the_queue_without_taking_a_job_twice,
    chat_turn_cites_numbered_sources_and_records_knowledge_gaps,
    github_markdown_is_read_with_the_sealed_token_and_api_failures_are_told_apart,
    embedding_failures_are_retried_and_inputs_go_in_batches_of_32,
);

async fn markdown_file_is_ingested_and_found_by_full_text_without_a_key(backend: Backend) {
    let w = world(backend, false, None).await;
    let store = w.app.store();
    let lib = library_for(store, w.t.tenant, w.t.bot.id, "Handbook").await;
    let limits = KnowledgeLimits::default();
    let added = store
        .add_source(
            w.t.tenant,
            &file(lib.id, "handbook.md", HANDBOOK.as_bytes()),
            &limits,
        )
        .await
        .unwrap();
    assert_eq!(added.status, SourceStatus::Queued);
    let s = ingest(&w, added.id).await;
    assert_eq!(s.status, SourceStatus::Ready, "{:?}", s.reason);
    assert_eq!(s.chunks, 2, "one chunk per section");
    assert_eq!(s.bytes, HANDBOOK.len() as i64);
    let jobs = store.knowledge_jobs(w.t.tenant, s.id).await.unwrap();
    assert_eq!(jobs[0].status, "done");
    let found = retrieve::retrieve(
        store,
        &w.app.state.mistral,
        None,
        w.t.tenant,
        w.t.bot.id,
        "How long do I have to return a parcel?",
        3,
    )
    .await
    .unwrap();
    assert!(!found.used_vectors);
    assert!(!found.gap);
    assert_eq!(found.hits[0].heading_path, ["Returns"]);
    assert!(found.hits[0].text.contains("thirty days"));
    // No key: nothing was sent upstream.
    assert!(w.fake.requests().is_empty());
}

async fn bad_files_fail_with_a_readable_reason_and_leave_nothing_indexed(backend: Backend) {
    let w = world(backend, false, None).await;
    let store = w.app.store();
    let lib = library_for(store, w.t.tenant, w.t.bot.id, "Files").await;
    let limits = KnowledgeLimits::default();
    let cases: &[(&str, &[u8], &str)] = &[
        ("empty.txt", b"", "empty"),
        (
            "anim.gif",
            b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
            "not supported",
        ),
        (
            "broken.docx",
            b"PK\x03\x04\x14\x00\x00\x00\x08\x00garbage that is no zip at all",
            "damaged",
        ),
        (
            "scripts.html",
            b"<!DOCTYPE html><html><head><script>var x = 1;</script></head><body>\
              <script>alert(1)</script></body></html>",
            "readable text was found",
        ),
        (
            "scan.pdf",
            b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n",
            "needs a Mistral API key",
        ),
        (
            "locked.pdf",
            b"%PDF-1.7\n1 0 obj << >> endobj\ntrailer << /Root 1 0 R /Encrypt 2 0 R >>\n%%EOF\n",
            "encrypted",
        ),
    ];
    for (name, bytes, reason) in cases {
        let added = store
            .add_source(w.t.tenant, &file(lib.id, name, bytes), &limits)
            .await
            .unwrap();
        let s = ingest(&w, added.id).await;
        assert_eq!(s.status, SourceStatus::Failed, "{name}");
        let why = s.reason.unwrap_or_default();
        assert!(
            why.contains(reason),
            "{name}: {why:?} should say {reason:?}"
        );
        assert_eq!(s.chunks, 0, "{name}");
        let jobs = store.knowledge_jobs(w.t.tenant, s.id).await.unwrap();
        assert_eq!(
            (jobs[0].status.as_str(), jobs[0].attempts),
            ("failed", 1),
            "{name}: a file the customer must fix is not retried"
        );
    }
    assert_eq!(store.knowledge_chunk_count(w.t.tenant).await.unwrap(), 0);
}

async fn pdf_is_read_by_ocr_with_page_numbers_and_an_ocr_error_fails_the_source(backend: Backend) {
    let w = world(backend, true, None).await;
    let store = w.app.store();
    let lib = library_for(store, w.t.tenant, w.t.bot.id, "Manuals").await;
    let limits = KnowledgeLimits::default();
    w.fake.set_ocr_pages(&[
        "# Installation\n\nMount the bracket on the wall.",
        "Tighten the four screws with the hex key.",
    ]);
    let pdf = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
    let added = store
        .add_source(w.t.tenant, &file(lib.id, "manual.pdf", pdf), &limits)
        .await
        .unwrap();
    let s = ingest(&w, added.id).await;
    assert_eq!(s.status, SourceStatus::Ready, "{:?}", s.reason);
    assert_eq!(s.pages, 2);
    let ocr = w.fake.requests_to("/v1/ocr");
    assert_eq!(ocr.len(), 1);
    assert_eq!(
        ocr[0].authorization(),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(ocr[0].body["document"]["type"], "document_url");
    // Chunks were embedded with mistral-embed in one batch.
    let embed = w.fake.requests_to("/v1/embeddings");
    assert_eq!(embed.len(), 1);
    assert_eq!(embed[0].body["model"], "mistral-embed");
    assert_eq!(
        embed[0].body["input"].as_array().unwrap().len() as i64,
        s.chunks
    );
    let found = retrieve::retrieve(
        store,
        &w.app.state.mistral,
        Some(&secrecy::SecretString::from(KEY)),
        w.t.tenant,
        w.t.bot.id,
        "Which screws do I tighten?",
        1,
    )
    .await
    .unwrap();
    assert!(found.used_vectors);
    assert_eq!(found.hits[0].page, Some(2));
    assert_eq!(found.hits[0].heading_path, ["Installation"]);
    // Deleting the source also takes its vectors out of the process's index at once.
    assert!(store.delete_source(w.t.tenant, added.id).await.unwrap());
    let gone = retrieve::retrieve(
        store,
        &w.app.state.mistral,
        Some(&secrecy::SecretString::from(KEY)),
        w.t.tenant,
        w.t.bot.id,
        "Which screws do I tighten?",
        1,
    )
    .await
    .unwrap();
    assert!(gone.hits.is_empty(), "{:?}", gone.hits);

    // An image goes to OCR as an image, decided by its bytes, not its name.
    w.fake
        .set_ocr_pages(&["# Opening hours\n\nThe shop opens at nine."]);
    let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00";
    let image = store
        .add_source(w.t.tenant, &file(lib.id, "hours.txt", png), &limits)
        .await
        .unwrap();
    let s = ingest(&w, image.id).await;
    assert_eq!(s.status, SourceStatus::Ready, "{:?}", s.reason);
    let ocr = w.fake.requests_to("/v1/ocr");
    let sent = &ocr.last().unwrap().body["document"];
    assert_eq!(sent["type"], "image_url");
    assert!(
        sent["image_url"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,")
    );

    w.fake.set_ocr_failure(Some(
        "The document could not be processed: invalid PDF structure",
    ));
    let broken = store
        .add_source(w.t.tenant, &file(lib.id, "broken.pdf", pdf), &limits)
        .await
        .unwrap();
    let s = ingest(&w, broken.id).await;
    assert_eq!(s.status, SourceStatus::Failed);
    let why = s.reason.unwrap();
    assert!(
        why.starts_with("Mistral:") && why.contains("invalid PDF"),
        "{why}"
    );
    assert!(!why.contains(KEY));
    assert_eq!(s.chunks, 0);
}

async fn limits_are_enforced_with_clear_errors(backend: Backend) {
    let limits = KnowledgeLimits {
        max_documents: 2,
        max_bytes: 1024 * 1024,
        max_chunks: 3,
    };
    let w = world(backend, false, Some(limits)).await;
    let store = w.app.store();
    let limits = *ingestor(&w.app).limits();
    assert_eq!(
        limits.max_documents, 2,
        "the configuration reaches the ingestor"
    );
    let lib = library_for(store, w.t.tenant, w.t.bot.id, "Small").await;
    // Bytes: one file over the megabyte.
    let big = vec![b'a'; 1024 * 1024 + 1];
    let err = store
        .add_source(w.t.tenant, &file(lib.id, "big.txt", &big), &limits)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("limit of 1 MB"), "{err}");
    // Chunks: a document of four sections is refused at ingestion, nothing stored.
    let four = "# A\n\none\n\n# B\n\ntwo\n\n# C\n\nthree\n\n# D\n\nfour\n";
    let s = store
        .add_source(
            w.t.tenant,
            &file(lib.id, "four.md", four.as_bytes()),
            &limits,
        )
        .await
        .unwrap();
    let s = ingest(&w, s.id).await;
    assert_eq!(s.status, SourceStatus::Failed);
    assert!(
        s.reason.as_deref().unwrap().contains("limit of 3"),
        "{:?}",
        s.reason
    );
    assert_eq!(store.knowledge_chunk_count(w.t.tenant).await.unwrap(), 0);
    // Documents: the third is refused and not stored.
    store
        .add_source(
            w.t.tenant,
            &file(lib.id, "two.md", b"# Two\n\ntext"),
            &limits,
        )
        .await
        .unwrap();
    let err = store
        .add_source(
            w.t.tenant,
            &file(lib.id, "three.md", b"# Three\n\ntext"),
            &limits,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("limit of 2 documents"), "{err}");
    assert_eq!(store.sources(w.t.tenant, lib.id).await.unwrap().len(), 2);
}

async fn deleting_a_source_removes_its_chunks_at_once(backend: Backend) {
    let w = world(backend, false, None).await;
    let store = w.app.store();
    let lib = library_for(store, w.t.tenant, w.t.bot.id, "Handbook").await;
    let s = store
        .add_source(
            w.t.tenant,
            &file(lib.id, "handbook.md", HANDBOOK.as_bytes()),
            &KnowledgeLimits::default(),
        )
        .await
        .unwrap();
    // Every change of a library's chunks changes its revision (what cached vector indexes
    // are checked against).
    let revision = || store.bot_knowledge_revision(w.t.tenant, w.t.bot.id);
    let queued = revision().await.unwrap();
    ingest(&w, s.id).await;
    let ingested = revision().await.unwrap();
    assert_ne!(queued, ingested);
    let words = ["parcels".to_owned(), "germany".to_owned()];
    let search = || store.search_fulltext(w.t.tenant, w.t.bot.id, &words, 5);
    assert!(!search().await.unwrap().is_empty());
    assert!(store.delete_source(w.t.tenant, s.id).await.unwrap());
    assert!(
        search().await.unwrap().is_empty(),
        "the full-text index forgot it"
    );
    assert_ne!(revision().await.unwrap(), ingested);
    assert_eq!(store.knowledge_chunk_count(w.t.tenant).await.unwrap(), 0);
    let raw = RawDb::of(&w.app.db).await;
    assert_eq!(raw.count("knowledge_chunks").await, 0);
    assert_eq!(raw.count("knowledge_jobs").await, 0);
    if backend == Backend::Sqlite {
        // The FTS5 index holds no entry for the deleted chunks either.
        assert_eq!(raw.count("knowledge_chunks_fts_docsize").await, 0);
    }
    raw.close().await;
}

async fn a_tenant_never_retrieves_another_tenants_chunks(backend: Backend) {
    let w = world(backend, false, None).await;
    let store = w.app.store();
    let other = NewTenant::owned_by("bob@b.example")
        .workspace("Bolt")
        .create(store)
        .await;
    let limits = KnowledgeLimits::default();
    for (t, secret) in [(&w.t, "aardvark"), (&other, "zebrafish")] {
        let lib = library_for(store, t.tenant, t.bot.id, "Secrets").await;
        store
            .add_source(
                t.tenant,
                &file(
                    lib.id,
                    "s.md",
                    format!("# Code\n\nThe code word is {secret}.").as_bytes(),
                ),
                &limits,
            )
            .await
            .unwrap();
    }
    ingestor(&w.app).run_due().await.unwrap();
    let mistral = &w.app.state.mistral;
    let ask = |t: TenantId, bot, q: &'static str| async move {
        retrieve::retrieve(store, mistral, None, t, bot, q, 5)
            .await
            .unwrap()
            .hits
    };
    // Each finds its own…
    assert_eq!(ask(w.t.tenant, w.t.bot.id, "aardvark").await.len(), 1);
    assert_eq!(ask(other.tenant, other.bot.id, "zebrafish").await.len(), 1);
    // …never the other's, even for a question naming it.
    let hits = ask(w.t.tenant, w.t.bot.id, "code word zebrafish").await;
    assert!(
        hits.iter().all(|h| !h.text.contains("zebrafish")),
        "{hits:?}"
    );
    // Another tenant's bot id inside this tenant finds nothing.
    assert!(
        ask(w.t.tenant, other.bot.id, "zebrafish code")
            .await
            .is_empty()
    );
    // Nor can a library of the other tenant be linked.
    let theirs = store.libraries(other.tenant).await.unwrap()[0].id;
    let err = store
        .set_bot_knowledge(w.t.tenant, w.t.bot.id, AnswerMode::OnlyLibraries, &[theirs])
        .await
        .unwrap_err();
    assert!(matches!(err, parlo::storage::StoreError::NotFound), "{err}");
}

async fn unchanged_content_is_not_embedded_again(backend: Backend) {
    let w = world(backend, true, None).await;
    let store = w.app.store();
    let lib = library_for(store, w.t.tenant, w.t.bot.id, "Handbook").await;
    let s = store
        .add_source(
            w.t.tenant,
            &file(lib.id, "handbook.md", HANDBOOK.as_bytes()),
            &KnowledgeLimits::default(),
        )
        .await
        .unwrap();
    let first = ingest(&w, s.id).await;
    assert_eq!(first.status, SourceStatus::Ready);
    assert_eq!(w.fake.requests_to("/v1/embeddings").len(), 1);
    assert!(store.queue_source(w.t.tenant, s.id).await.unwrap());
    assert!(
        !store.queue_source(w.t.tenant, s.id).await.unwrap(),
        "one pending job per source"
    );
    let again = ingest(&w, s.id).await;
    assert_eq!(again.status, SourceStatus::Ready);
    assert_eq!(again.chunks, first.chunks);
    assert_eq!(
        w.fake.requests_to("/v1/embeddings").len(),
        1,
        "same hash: not embedded again"
    );
    let jobs = store.knowledge_jobs(w.t.tenant, s.id).await.unwrap();
    assert_eq!(jobs.len(), 2);
    assert!(jobs.iter().all(|j| j.status == "done"));
}

/// A web site on loopback: a page, a sitemap of two pages (one of another site, skipped),
/// and a page that answers 503 until told otherwise.
async fn web_site(failing: Arc<AtomicU32>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let b = base.clone();
    let html = |body: &str| {
        (
            [("content-type", "text/html; charset=utf-8")],
            format!(
                "<!DOCTYPE html><html><head><title>Shop</title></head><body><main>{body}</main></body></html>"
            ),
        )
    };
    let app = Router::new()
        .route(
            "/faq",
            get(move || async move {
                html("<h1>FAQ</h1><p>Our opening hours are nine to five, Monday to Friday.</p>")
            }),
        )
        .route(
            "/a",
            get(move || async move { html("<h1>Alpha</h1><p>The alpha plan costs ten euros.</p>") }),
        )
        .route(
            "/b",
            get(move || async move { html("<h1>Beta</h1><p>The beta plan costs twenty euros.</p>") }),
        )
        .route(
            "/sitemap.xml",
            get(move || async move {
                (
                    [("content-type", "application/xml")],
                    format!(
                        "<?xml version=\"1.0\"?><urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\
                         <url><loc>{b}/a</loc></url><url><loc>{b}/b</loc></url>\
                         <url><loc>https://elsewhere.example/c</loc></url></urlset>"
                    ),
                )
            }),
        )
        .route(
            "/flaky",
            get(move || async move {
                if failing.load(Ordering::SeqCst) > 0 {
                    StatusCode::SERVICE_UNAVAILABLE.into_response()
                } else {
                    html("<h1>Flaky</h1><p>Back again.</p>").into_response()
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

async fn web_page_and_sitemap_are_fetched_and_a_failing_site_is_retried_with_backoff(
    backend: Backend,
) {
    let w = world(backend, false, None).await;
    let store = w.app.store();
    let failing = Arc::new(AtomicU32::new(1));
    let site = web_site(failing.clone()).await;
    let lib = library_for(store, w.t.tenant, w.t.bot.id, "Site").await;
    let limits = KnowledgeLimits::default();
    let page = store
        .add_source(
            w.t.tenant,
            &web(lib.id, SourceKind::Url, &format!("{site}/faq")),
            &limits,
        )
        .await
        .unwrap();
    let map = store
        .add_source(
            w.t.tenant,
            &web(lib.id, SourceKind::Sitemap, &format!("{site}/sitemap.xml")),
            &limits,
        )
        .await
        .unwrap();
    let flaky = store
        .add_source(
            w.t.tenant,
            &web(lib.id, SourceKind::Url, &format!("{site}/flaky")),
            &limits,
        )
        .await
        .unwrap();
    ingestor(&w.app).run_due().await.unwrap();
    let page = store.source(w.t.tenant, page.id).await.unwrap().unwrap();
    assert_eq!(page.status, SourceStatus::Ready, "{:?}", page.reason);
    let map = store.source(w.t.tenant, map.id).await.unwrap().unwrap();
    assert_eq!(map.status, SourceStatus::Ready, "{:?}", map.reason);
    assert_eq!(map.pages, 2, "the other site's page is not fetched");
    let hits = retrieve::retrieve(
        store,
        &w.app.state.mistral,
        None,
        w.t.tenant,
        w.t.bot.id,
        "What does the beta plan cost?",
        1,
    )
    .await
    .unwrap()
    .hits;
    let cite = retrieve::citation(1, &hits[0]);
    assert_eq!(cite.url.as_deref(), Some(format!("{site}/b").as_str()));
    // A 503 is retried later, not failed: queued again with the reason and a backoff.
    let s = store.source(w.t.tenant, flaky.id).await.unwrap().unwrap();
    assert_eq!(s.status, SourceStatus::Queued);
    assert!(
        s.reason.as_deref().unwrap().contains("503"),
        "{:?}",
        s.reason
    );
    let job = &store.knowledge_jobs(w.t.tenant, flaky.id).await.unwrap()[0];
    assert_eq!((job.status.as_str(), job.attempts), ("queued", 1));
    assert!(
        job.run_after.0 >= Timestamp::now().0 + 20_000,
        "backoff of 30 s"
    );
    // Once due and the site is back, the next attempt succeeds.
    failing.store(0, Ordering::SeqCst);
    let later = Timestamp::now().plus_secs(31);
    let claimed = store
        .claim_knowledge_job(w.t.tenant, later, later.plus_secs(900))
        .await
        .unwrap()
        .expect("due after the backoff");
    assert_eq!(claimed.attempts, 2);
    ingestor(&w.app).run(&claimed).await;
    let s = store.source(w.t.tenant, flaky.id).await.unwrap().unwrap();
    assert_eq!(s.status, SourceStatus::Ready, "{:?}", s.reason);
}

async fn the_queue_leases_jobs_and_takes_over_expired_leases(backend: Backend) {
    let ts = test_store(backend).await;
    let store = &ts.store;
    let t = NewTenant::owned_by("ann@a.example").create(store).await;
    let lib = library_for(store, t.tenant, t.bot.id, "Q").await;
    store
        .add_source(
            t.tenant,
            &file(lib.id, "a.md", b"# A\n\ntext"),
            &KnowledgeLimits::default(),
        )
        .await
        .unwrap();
    let now = Timestamp::now();
    let lease = now.plus_secs(900);
    let job = store
        .claim_knowledge_job(t.tenant, now, lease)
        .await
        .unwrap()
        .expect("a queued job");
    assert_eq!(job.attempts, 1);
    assert!(
        store
            .claim_knowledge_job(t.tenant, now, lease)
            .await
            .unwrap()
            .is_none(),
        "a leased job is not claimed again"
    );
    // The worker died: after the lease, another takes it over.
    let after = lease.plus_secs(1);
    let again = store
        .claim_knowledge_job(t.tenant, after, after.plus_secs(900))
        .await
        .unwrap()
        .expect("an expired lease is taken over");
    assert_eq!((again.id, again.attempts), (job.id, 2));
    // A transient failure queues it for later; a permanent one ends it.
    store
        .fail_knowledge_job(t.tenant, &again, "Timed out.", Some(after.plus_secs(60)))
        .await
        .unwrap();
    assert!(
        store
            .claim_knowledge_job(t.tenant, after, after.plus_secs(900))
            .await
            .unwrap()
            .is_none(),
        "not before its backoff"
    );
    let third = store
        .claim_knowledge_job(t.tenant, after.plus_secs(61), after.plus_secs(999))
        .await
        .unwrap()
        .unwrap();
    store
        .fail_knowledge_job(t.tenant, &third, "Gone.", None)
        .await
        .unwrap();
    let s = store
        .source(t.tenant, third.source_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (s.status, s.reason.as_deref()),
        (SourceStatus::Failed, Some("Gone."))
    );
    assert!(
        store
            .claim_knowledge_job(t.tenant, after.plus_secs(9999), after.plus_secs(99999))
            .await
            .unwrap()
            .is_none()
    );
}

async fn several_workers_share_the_queue_without_taking_a_job_twice(backend: Backend) {
    let ts = test_store(backend).await;
    let store = ts.store.clone();
    let t = NewTenant::owned_by("ann@a.example").create(&store).await;
    let lib = store
        .create_library(t.tenant, &LibraryInput::parse("Q", "").unwrap())
        .await
        .unwrap();
    const JOBS: usize = 12;
    for i in 0..JOBS {
        store
            .add_source(
                t.tenant,
                &file(lib.id, &format!("{i}.md"), b"# A\n\ntext"),
                &KnowledgeLimits::default(),
            )
            .await
            .unwrap();
    }
    let mut workers = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        let tenant = t.tenant;
        workers.push(tokio::spawn(async move {
            let mut mine: Vec<ClaimedJob> = Vec::new();
            loop {
                let now = Timestamp::now();
                match store
                    .claim_knowledge_job(tenant, now, now.plus_secs(900))
                    .await
                {
                    Ok(Some(job)) => mine.push(job),
                    Ok(None) => return mine,
                    // SQLite: a writer waiting too long for the lock; try again.
                    Err(e) if format!("{e}").contains("locked") => {}
                    Err(e) => panic!("{e}"),
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let mut ids: Vec<_> = all.iter().map(|j| j.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), JOBS, "every job claimed exactly once");
    assert_eq!(all.len(), JOBS);
    assert!(all.iter().all(|j| j.attempts == 1));
}

/// The events of an SSE body, in order, as (event, data).
fn events(body: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for block in body.split("\n\n") {
        let mut name = String::from("message");
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
        if !data.is_empty() {
            out.push((name, serde_json::from_str(&data).unwrap_or(Value::Null)));
        }
    }
    out
}

async fn chat_turn_cites_numbered_sources_and_records_knowledge_gaps(backend: Backend) {
    let w = world(backend, true, None).await;
    let store = w.app.store();
    let lib = library_for(store, w.t.tenant, w.t.bot.id, "Handbook").await;
    store
        .set_bot_knowledge(w.t.tenant, w.t.bot.id, AnswerMode::OnlyLibraries, &[lib.id])
        .await
        .unwrap();
    let s = store
        .add_source(
            w.t.tenant,
            &file(lib.id, "handbook.md", HANDBOOK.as_bytes()),
            &KnowledgeLimits::default(),
        )
        .await
        .unwrap();
    assert_eq!(ingest(&w, s.id).await.status, SourceStatus::Ready);
    w.fake.clear_requests();
    w.fake
        .set_reply("Returns are accepted within thirty days [1].");
    let widget = w.t.widget(&w.app, SHOP).session().await;
    let reply = widget.send("How many days do I have for returns?").await;
    assert_eq!(reply.status(), 200);
    let evs = events(&reply.text().await.unwrap());
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"sources"), "{names:?}");
    assert_eq!(names.last(), Some(&"done"), "{names:?}");
    let sources = evs[0].1["sources"].as_array().unwrap();
    assert_eq!(sources[0]["number"], 1);
    assert_eq!(sources[0]["file_name"], "handbook.md");
    assert!(sources[0]["url"].is_null());
    // The upstream got the numbered sources and the "only from the libraries" rule.
    let chat = w.fake.requests_to("/v1/chat/completions");
    let messages = chat[0].body["messages"].as_array().unwrap();
    let grounding = messages
        .iter()
        .find(|m| m["content"].as_str().unwrap().contains("[1]"))
        .expect("a system message with numbered sources");
    assert_eq!(grounding["role"], "system");
    let g = grounding["content"].as_str().unwrap();
    assert!(g.contains("ONLY from these sources"), "{g}");
    assert!(g.contains("thirty days"), "{g}");
    // The citations are stored with the answer.
    let message_id: parlo::model::MessageId = evs.last().unwrap().1["message_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let cited = store.citations(w.t.tenant, message_id).await.unwrap();
    assert_eq!(cited.len(), sources.len());
    assert_eq!(cited[0].file_name.as_deref(), Some("handbook.md"));
    assert!(
        store
            .knowledge_gaps(w.t.tenant, w.t.bot.id)
            .await
            .unwrap()
            .is_empty()
    );

    // A question the handbook does not answer is recorded as a knowledge gap.
    let reply = widget.send("Do you sell helicopters?").await;
    let evs = events(&reply.text().await.unwrap());
    assert!(
        evs.iter().all(|(n, _)| n != "sources"),
        "no sources to cite"
    );
    let gaps = store.knowledge_gaps(w.t.tenant, w.t.bot.id).await.unwrap();
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].question, "Do you sell helicopters?");
    // Knowledge gaps are chat-log data: they go with the conversation.
    assert!(
        store
            .delete_conversation(w.t.tenant, gaps[0].conversation_id)
            .await
            .unwrap()
    );
    assert!(
        store
            .knowledge_gaps(w.t.tenant, w.t.bot.id)
            .await
            .unwrap()
            .is_empty()
    );
}

const GITHUB_TOKEN: &str = "ghp_knowledgeTestToken0123456789";

/// A fake of the GitHub REST API (as documented: trees, contents with base64 and
/// `html_url`, `{"message": "Not Found"}` 404s, 403 with `x-ratelimit-remaining: 0` when
/// rate limited). `acme/docs` needs [`GITHUB_TOKEN`]; `acme/limited` is rate limited. The
/// Authorization headers it saw are recorded.
async fn fake_github(seen: Arc<std::sync::Mutex<Vec<String>>>) -> url::Url {
    use axum::extract::{Path, Query};
    use axum::http::HeaderMap;
    use base64::Engine;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api/v3", listener.local_addr().unwrap());
    let files: &'static [(&str, &str)] = &[
        (
            "README.md",
            "# Acme\n\nTop-level readme about the company picnic.",
        ),
        (
            "docs/guide.md",
            "# Guide\n\nInstall the widget with one script tag.",
        ),
        ("docs/sub/faq.md", "# FAQ\n\nThe widget supports dark mode."),
        ("docs/logo.png", "not markdown"),
    ];
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({ "message": "Not Found", "status": "404" })),
        )
            .into_response()
    };
    let check = move |seen: &std::sync::Mutex<Vec<String>>, h: &HeaderMap| {
        let auth = h
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        seen.lock().unwrap().push(auth.clone());
        auth == format!("Bearer {GITHUB_TOKEN}")
    };
    let s1 = seen.clone();
    let app = Router::new()
        .route(
            "/api/v3/repos/{owner}/{repo}/git/trees/{git_ref}",
            get(
                move |Path((owner, repo, git_ref)): Path<(String, String, String)>,
                      h: HeaderMap| async move {
                    if repo == "limited" {
                        return (
                            StatusCode::FORBIDDEN,
                            [("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "0")],
                            axum::Json(serde_json::json!({ "message": "API rate limit exceeded" })),
                        )
                            .into_response();
                    }
                    if (owner, repo.as_str(), git_ref.as_str()) != ("acme".into(), "docs", "main")
                        || !check(&s1, &h)
                    {
                        return not_found();
                    }
                    let tree: Vec<Value> = files
                        .iter()
                        .map(|(path, text)| {
                            serde_json::json!({ "path": path, "mode": "100644", "type": "blob",
                                "sha": format!("{:x}", text.len()), "size": text.len() })
                        })
                        .chain([serde_json::json!({ "path": "docs", "mode": "040000",
                            "type": "tree", "sha": "d0" })])
                        .collect();
                    axum::Json(serde_json::json!({ "sha": "t0", "tree": tree, "truncated": false }))
                        .into_response()
                },
            ),
        )
        .route(
            "/api/v3/repos/acme/docs/contents/{*path}",
            get(
                move |Path(path): Path<String>,
                      Query(q): Query<std::collections::HashMap<String, String>>,
                      h: HeaderMap| async move {
                    let Some((_, text)) = files.iter().find(|(p, _)| *p == path) else {
                        return not_found();
                    };
                    if q.get("ref").map(String::as_str) != Some("main") || !check(&seen, &h) {
                        return not_found();
                    }
                    let b64 = base64::engine::general_purpose::STANDARD.encode(text);
                    // GitHub wraps the base64 at 60 characters.
                    let wrapped: Vec<String> = b64
                        .as_bytes()
                        .chunks(60)
                        .map(|c| String::from_utf8(c.to_vec()).unwrap())
                        .collect();
                    axum::Json(serde_json::json!({
                        "type": "file", "encoding": "base64", "path": path,
                        "content": wrapped.join("\n"),
                        "html_url": format!("https://github.com/acme/docs/blob/main/{path}"),
                    }))
                    .into_response()
                },
            ),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url::Url::parse(&base).unwrap()
}

async fn github_markdown_is_read_with_the_sealed_token_and_api_failures_are_told_apart(
    backend: Backend,
) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let api = fake_github(seen.clone()).await;
    let w = world_with(backend, false, None, Some(api)).await;
    let store = w.app.store();
    let lib = library_for(store, w.t.tenant, w.t.bot.id, "Repo").await;
    let master = parlo::keyring::MasterKeys::parse(parlo_tests::TEST_MASTER_KEYS).unwrap();
    let limits = KnowledgeLimits::default();
    let github = |repo: &str, token: bool| {
        let mut s = web(lib.id, SourceKind::Github, repo);
        s.options.path = "docs".into();
        s.options.git_ref = "main".into();
        if token {
            s.token = Some(parlo::crypto::seal(
                &master,
                parlo::crypto::Purpose::SourceToken(w.t.tenant, s.id),
                GITHUB_TOKEN.as_bytes(),
            ));
        }
        s
    };
    let docs = store
        .add_source(w.t.tenant, &github("acme/docs", true), &limits)
        .await
        .unwrap();
    let s = ingest(&w, docs.id).await;
    assert_eq!(s.status, SourceStatus::Ready, "{:?}", s.reason);
    assert_eq!(
        s.pages, 2,
        "the Markdown under docs/, not the readme or the image"
    );
    let seen_now = seen.lock().unwrap().clone();
    assert_eq!(seen_now.len(), 3, "the tree and two files");
    assert!(
        seen_now
            .iter()
            .all(|a| a == &format!("Bearer {GITHUB_TOKEN}"))
    );
    let hits = retrieve::retrieve(
        store,
        &w.app.state.mistral,
        None,
        w.t.tenant,
        w.t.bot.id,
        "Does the widget support dark mode?",
        1,
    )
    .await
    .unwrap()
    .hits;
    let cite = retrieve::citation(1, &hits[0]);
    assert_eq!(
        cite.url.as_deref(),
        Some("https://github.com/acme/docs/blob/main/docs/sub/faq.md")
    );
    // Without the token the repository is invisible: a readable "not found", not retried.
    let hidden = store
        .add_source(w.t.tenant, &github("acme/docs", false), &limits)
        .await
        .unwrap();
    let s = ingest(&w, hidden.id).await;
    assert_eq!(s.status, SourceStatus::Failed);
    assert!(
        s.reason.as_deref().unwrap().contains("not found"),
        "{:?}",
        s.reason
    );
    // Rate limited: retried later.
    let limited = store
        .add_source(w.t.tenant, &github("acme/limited", true), &limits)
        .await
        .unwrap();
    let s = ingest(&w, limited.id).await;
    assert_eq!(s.status, SourceStatus::Queued);
    let why = s.reason.unwrap();
    assert!(why.to_lowercase().contains("rate"), "{why}");
    assert!(!why.contains(GITHUB_TOKEN));
    // A malformed repository name is refused with a sentence.
    let bad = store
        .add_source(w.t.tenant, &github("acme/../etc", false), &limits)
        .await
        .unwrap();
    let s = ingest(&w, bad.id).await;
    assert_eq!(s.status, SourceStatus::Failed);
    assert!(
        s.reason.as_deref().unwrap().contains("owner/repo"),
        "{:?}",
        s.reason
    );
}

async fn embedding_failures_are_retried_and_inputs_go_in_batches_of_32(backend: Backend) {
    let w = world(backend, true, None).await;
    let store = w.app.store();
    let lib = library_for(store, w.t.tenant, w.t.bot.id, "Big").await;
    let doc: String = (0..40)
        .map(|i| format!("# Section {i}\n\nParagraph number {i} about topic {i}.\n\n"))
        .collect();
    let s = store
        .add_source(
            w.t.tenant,
            &file(lib.id, "big.md", doc.as_bytes()),
            &KnowledgeLimits::default(),
        )
        .await
        .unwrap();
    w.fake
        .set_fault(parlo_tests::fake_mistral::Fault::Status500);
    let failed = ingest(&w, s.id).await;
    assert_eq!(failed.status, SourceStatus::Queued, "retried later");
    assert!(
        failed.reason.as_deref().unwrap().starts_with("Mistral:"),
        "{:?}",
        failed.reason
    );
    assert_eq!(store.knowledge_chunk_count(w.t.tenant).await.unwrap(), 0);
    w.fake.clear_fault();
    w.fake.clear_requests();
    let later = Timestamp::now().plus_secs(31);
    let job = store
        .claim_knowledge_job(w.t.tenant, later, later.plus_secs(900))
        .await
        .unwrap()
        .unwrap();
    ingestor(&w.app).run(&job).await;
    let ready = store.source(w.t.tenant, s.id).await.unwrap().unwrap();
    assert_eq!(ready.status, SourceStatus::Ready, "{:?}", ready.reason);
    assert_eq!(ready.chunks, 40);
    let sizes: Vec<usize> = w
        .fake
        .requests_to("/v1/embeddings")
        .iter()
        .map(|r| r.body["input"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [32, 8]);
}
