//! Knowledge libraries in tests: a row in every knowledge table of a workspace (for the
//! tenancy, erasure and backup tests, which must see every table filled), sources to add,
//! and an ingestor wired to a test app's store, keys and fake upstream.

use std::sync::Arc;

use parlo::knowledge::ingest::Ingestor;
use parlo::model::{
    AnswerMode, BotId, Citation, ConversationId, KnowledgeLimits, Library, LibraryId, LibraryInput,
    MessageId, NewChunk, NewSource, Source, SourceId, SourceKind, SourceOptions, TenantId,
};
use parlo::storage::Store;

use crate::TestApp;

/// A Markdown file source for `library`.
pub fn file(library: LibraryId, name: &str, bytes: &[u8]) -> NewSource {
    NewSource {
        id: SourceId::new(),
        library_id: library,
        kind: SourceKind::File,
        location: name.to_owned(),
        title: name.to_owned(),
        options: SourceOptions::default(),
        content: Some(bytes.to_vec()),
        token: None,
    }
}

/// A web page (or, with `kind`, a sitemap) source for `library`.
pub fn web(library: LibraryId, kind: SourceKind, url: &str) -> NewSource {
    NewSource {
        id: SourceId::new(),
        library_id: library,
        kind,
        location: url.to_owned(),
        title: url.to_owned(),
        options: SourceOptions::default(),
        content: None,
        token: None,
    }
}

/// A library named `name` (English), used by `bot`.
pub async fn library_for(store: &Store, t: TenantId, bot: BotId, name: &str) -> Library {
    let library = store
        .create_library(t, &LibraryInput::parse(name, "english").unwrap())
        .await
        .unwrap();
    store
        .set_bot_knowledge(t, bot, AnswerMode::LibrariesFirst, &[library.id])
        .await
        .unwrap();
    library
}

/// One row in every knowledge table of workspace `t`: a library used by `bot`, its
/// answering mode, a source with its job, a chunk, a citation on `message` and a knowledge
/// gap in `conversation`.
pub async fn stage_rows(
    store: &Store,
    t: TenantId,
    bot: BotId,
    conversation: ConversationId,
    message: MessageId,
) -> Source {
    let library = library_for(store, t, bot, "Handbook").await;
    let limits = KnowledgeLimits::default();
    let source = store
        .add_source(
            t,
            &file(library.id, "handbook.md", b"# Returns\n\nWithin 30 days."),
            &limits,
        )
        .await
        .unwrap();
    store
        .replace_chunks(
            t,
            source.id,
            library.id,
            &[7; 32],
            27,
            1,
            &[NewChunk {
                ordinal: 0,
                heading_path: vec!["Returns".into()],
                page: None,
                url: None,
                text: "Returns are accepted within 30 days.".into(),
                hash: "0".repeat(64),
                embedding: None,
            }],
            &limits,
        )
        .await
        .unwrap();
    store
        .save_citations(
            t,
            message,
            &[Citation {
                number: 1,
                title: "handbook.md".into(),
                url: None,
                file_name: Some("handbook.md".into()),
                page: None,
            }],
        )
        .await
        .unwrap();
    store
        .record_gap(t, bot, conversation, "Do you ship to Mars?", 0.0)
        .await
        .unwrap();
    source
}

/// An ingestor on the app's store, keys and upstream (the fake Mistral the app was pointed
/// at), with the app's configuration (limits, fetch allow-list).
pub fn ingestor(app: &TestApp) -> Ingestor {
    Ingestor::new(
        app.state.store.clone(),
        &app.state.config,
        Arc::clone(&app.state.keys),
        app.state.mistral.clone(),
    )
    .unwrap()
}
