//! The Mistral client against the fake Mistral over real sockets: streaming, every fault
//! mode, cancellation, the key on the wire, OCR, key checks and redirects.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::StreamExt;
use parlo::mistral::{
    ChatEvent, ChatMessage, ChatRequest, ChatStream, MistralClient, OcrInput, Role, Timeouts,
    UpstreamError,
};
use parlo_tests::fake_mistral::{FakeMistral, Fault};
use secrecy::SecretString;
use serde_json::json;

const KEY: &str = "sk-tenant-4f1c2b";

fn key() -> SecretString {
    SecretString::from(KEY)
}

fn client_with_read_timeout(fake: &FakeMistral, read: Duration) -> MistralClient {
    MistralClient::new(
        fake.base_url.clone(),
        Timeouts {
            connect: Duration::from_secs(2),
            read,
            ocr: Duration::from_secs(5),
        },
    )
}

fn client(fake: &FakeMistral) -> MistralClient {
    client_with_read_timeout(fake, Duration::from_secs(5))
}

async fn fake() -> FakeMistral {
    let fake = FakeMistral::start().await;
    fake.accept_key(KEY);
    fake
}

fn request() -> ChatRequest {
    ChatRequest {
        model: "mistral-small-latest".to_owned(),
        messages: vec![
            ChatMessage {
                role: Role::System,
                content: "You answer questions about Parlo.".to_owned(),
            },
            ChatMessage {
                role: Role::User,
                content: "What is two squared?".to_owned(),
            },
        ],
    }
}

/// The error a chat call gets when the fake upstream answers with `fault`.
async fn chat_error(fake: &FakeMistral, fault: Fault) -> UpstreamError {
    fake.set_fault(fault);
    client(fake)
        .chat_stream(&key(), &request())
        .await
        .unwrap_err()
}

/// Every item of the stream, until it ends.
async fn collect(mut stream: ChatStream) -> Vec<Result<ChatEvent, UpstreamError>> {
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        items.push(item);
    }
    items
}

fn delta(s: &str) -> Result<ChatEvent, UpstreamError> {
    Ok(ChatEvent::Delta(s.to_owned()))
}

#[tokio::test]
async fn streams_deltas_then_usage_then_done() {
    let fake = fake().await;
    fake.set_reply("Hello **world** $x^2$");
    let stream = client(&fake).chat_stream(&key(), &request()).await.unwrap();
    assert_eq!(
        collect(stream).await,
        vec![
            delta("Hello "),
            delta("**world** "),
            delta("$x^2$"),
            // 5 + 4 words in the two messages; 3 content chunks.
            Ok(ChatEvent::Usage {
                prompt_tokens: 9,
                completion_tokens: 3
            }),
            Ok(ChatEvent::Done),
        ]
    );
    assert_eq!(fake.stream_stats().completed, 1);
}

#[tokio::test]
async fn the_request_carries_exactly_the_tenants_key_and_the_conversation() {
    let fake = fake().await;
    collect(client(&fake).chat_stream(&key(), &request()).await.unwrap()).await;
    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "exactly one upstream request");
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.authorization(), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(r.headers.get_all("authorization").iter().count(), 1);
    assert_eq!(r.header("accept"), Some("text/event-stream"));
    assert_eq!(
        r.body,
        json!({
            "model": "mistral-small-latest",
            "messages": [
                { "role": "system", "content": "You answer questions about Parlo." },
                { "role": "user", "content": "What is two squared?" },
            ],
            "stream": true,
        })
    );
}

#[tokio::test]
async fn events_split_across_reads_at_odd_bytes_are_reassembled() {
    let fake = fake().await;
    fake.set_reply("h\u{e9}llo w\u{f6}rld \u{1f600} $\\frac{1}{2}$");
    for size in [1, 2, 3, 5, 7] {
        fake.set_fragment_size(Some(size));
        let stream = client(&fake).chat_stream(&key(), &request()).await.unwrap();
        let text: String = collect(stream)
            .await
            .into_iter()
            .filter_map(|e| match e.unwrap() {
                ChatEvent::Delta(d) => Some(d),
                _ => None,
            })
            .collect();
        assert_eq!(
            text, "h\u{e9}llo w\u{f6}rld \u{1f600} $\\frac{1}{2}$",
            "pieces of {size} bytes"
        );
    }

    // The fragments really arrive as separate reads, not re-joined on the way.
    fake.set_fragment_size(Some(1));
    let response = reqwest::Client::new()
        .post(fake.base_url.join("v1/chat/completions").unwrap())
        .bearer_auth(KEY)
        .json(&json!({ "model": "m", "messages": [{ "role": "user", "content": "x" }], "stream": true }))
        .send()
        .await
        .unwrap();
    let reads = response.bytes_stream().count().await;
    assert!(reads > 50, "{reads} reads");
}

#[tokio::test]
async fn an_unknown_key_is_an_invalid_key() {
    let fake = fake().await;
    let other = SecretString::from("sk-somebody-else");
    let e = client(&fake)
        .chat_stream(&other, &request())
        .await
        .unwrap_err();
    assert_eq!(e, UpstreamError::InvalidKey);
    assert_eq!(e.code(), "invalid_api_key");
    assert!(!e.to_string().contains("sk-"), "{e}");
    assert_eq!(
        fake.requests()[0].authorization(),
        Some("Bearer sk-somebody-else")
    );
}

#[tokio::test]
async fn status_401_is_an_invalid_key() {
    let fake = fake().await;
    let e = chat_error(&fake, Fault::Status401).await;
    assert_eq!(e, UpstreamError::InvalidKey);
}

#[tokio::test]
async fn an_empty_key_is_no_key_and_nothing_is_sent() {
    let fake = fake().await;
    let e = client(&fake)
        .chat_stream(&SecretString::from(""), &request())
        .await
        .unwrap_err();
    assert_eq!((e.code(), e), ("no_api_key", UpstreamError::NoApiKey));
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn status_429_is_rate_limited_with_the_retry_time() {
    let fake = fake().await;
    let e = chat_error(
        &fake,
        Fault::Status429 {
            retry_after: Some(7),
        },
    )
    .await;
    assert_eq!(
        e,
        UpstreamError::RateLimited {
            retry_after_secs: Some(7)
        }
    );
    assert_eq!(e.code(), "upstream_rate_limited");
    assert_eq!(e.retry_after_secs(), Some(7));
    assert_eq!(
        e.to_string(),
        "Mistral's rate limit was reached. Try again in 7 seconds."
    );

    let e = chat_error(&fake, Fault::Status429 { retry_after: None }).await;
    assert_eq!(
        e,
        UpstreamError::RateLimited {
            retry_after_secs: None
        }
    );
}

#[tokio::test]
async fn status_500_is_unavailable() {
    let fake = fake().await;
    let e = chat_error(&fake, Fault::Status500).await;
    assert_eq!(e, UpstreamError::Unavailable { status: Some(500) });
    assert_eq!(e.code(), "upstream_unavailable");
}

#[tokio::test]
async fn a_closed_port_is_unavailable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = MistralClient::new(
        url::Url::parse(&format!("http://{addr}")).unwrap(),
        Timeouts::default(),
    );
    let e = client.chat_stream(&key(), &request()).await.unwrap_err();
    assert_eq!(e, UpstreamError::Unavailable { status: None });
}

#[tokio::test]
async fn a_stream_cut_in_the_middle_yields_its_deltas_then_interrupted() {
    let fake = fake().await;
    fake.set_reply("one two three four");
    fake.set_fault(Fault::CutMidStream { after_chunks: 2 });
    let stream = client(&fake).chat_stream(&key(), &request()).await.unwrap();
    assert_eq!(
        collect(stream).await,
        vec![
            delta("one "),
            delta("two "),
            Err(UpstreamError::Interrupted)
        ]
    );
    assert_eq!(fake.stream_stats().cut, 1);
}

#[tokio::test]
async fn a_malformed_chunk_ends_the_stream_after_the_earlier_deltas() {
    let fake = fake().await;
    fake.set_reply("one two three");
    fake.set_fault(Fault::MalformedChunk { after_chunks: 1 });
    let items = collect(client(&fake).chat_stream(&key(), &request()).await.unwrap()).await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0], delta("one "));
    let e = items[1].clone().unwrap_err();
    assert!(matches!(e, UpstreamError::Malformed(_)), "{e:?}");
    assert_eq!(e.code(), "upstream_malformed");
    assert!(
        !e.to_string().contains("broken"),
        "no upstream payload in the message: {e}"
    );
}

#[tokio::test]
async fn a_stalled_stream_times_out_and_the_connection_is_closed() {
    let fake = fake().await;
    fake.set_reply("one two three");
    fake.set_fault(Fault::Stall { after_chunks: 1 });
    let read = Duration::from_millis(300);
    let client = client_with_read_timeout(&fake, read);
    let started = tokio::time::Instant::now();
    let mut stream = client.chat_stream(&key(), &request()).await.unwrap();
    assert_eq!(stream.next().await, Some(delta("one ")));
    assert_eq!(stream.next().await, Some(Err(UpstreamError::Timeout)));
    let waited = started.elapsed();
    assert!(
        waited >= read && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert_eq!(stream.next().await, None);
    // The client let go of the connection when it gave up, while the stream value lives.
    let stats = fake
        .wait_for_streams(Duration::from_secs(5), |s| s.dropped == 1)
        .await;
    assert!(stats.is_some(), "{:?}", fake.stream_stats());
    drop(stream);
}

#[tokio::test]
async fn a_silent_upstream_times_out_before_the_first_chunk() {
    let fake = fake().await;
    fake.set_first_token_delay(Duration::from_secs(30));
    let client = client_with_read_timeout(&fake, Duration::from_millis(300));
    let mut stream = client.chat_stream(&key(), &request()).await.unwrap();
    assert_eq!(stream.next().await, Some(Err(UpstreamError::Timeout)));
}

#[tokio::test]
async fn dropping_the_stream_cancels_the_upstream_request() {
    let fake = fake().await;
    let long_answer = "word ".repeat(200);
    fake.set_reply(&long_answer);
    fake.set_chunk_delay(Duration::from_millis(20));
    let mut stream = client(&fake).chat_stream(&key(), &request()).await.unwrap();
    assert_eq!(stream.next().await, Some(delta("word ")));
    assert_eq!(fake.stream_stats().open(), 1);
    drop(stream);
    let stats = fake
        .wait_for_streams(Duration::from_secs(5), |s| s.dropped == 1)
        .await
        .unwrap_or_else(|| {
            panic!(
                "the fake never saw the client go: {:?}",
                fake.stream_stats()
            )
        });
    assert_eq!((stats.completed, stats.open()), (0, 0));
}

#[tokio::test]
async fn dropping_the_stream_cancels_even_a_silent_upstream() {
    let fake = fake().await;
    fake.set_fault(Fault::Stall { after_chunks: 1 });
    let mut stream = client(&fake).chat_stream(&key(), &request()).await.unwrap();
    assert!(matches!(stream.next().await, Some(Ok(ChatEvent::Delta(_)))));
    drop(stream);
    let stats = fake
        .wait_for_streams(Duration::from_secs(5), |s| s.dropped == 1)
        .await;
    assert!(stats.is_some(), "{:?}", fake.stream_stats());
}

#[tokio::test]
async fn mistral_refusals_carry_its_message() {
    let fake = fake().await;
    let mut req = request();
    req.model = String::new();
    let e = client(&fake).chat_stream(&key(), &req).await.unwrap_err();
    assert_eq!(e, UpstreamError::BadRequest("Invalid model: ".to_owned()));
    assert_eq!(e.code(), "upstream_bad_request");

    let mut req = request();
    req.messages.clear();
    let e = client(&fake).chat_stream(&key(), &req).await.unwrap_err();
    assert_eq!(
        e,
        UpstreamError::BadRequest(
            "List should have at least 1 item after validation, not 0 (body.messages)".to_owned()
        )
    );
}

#[tokio::test]
async fn redirects_are_never_followed() {
    let fake = fake().await;
    let elsewhere = FakeMistral::start().await;
    elsewhere.accept_key(KEY);
    for path in ["v1/chat/completions", "v1/models", "v1/ocr"] {
        fake.set_fault(Fault::Redirect {
            location: elsewhere.base_url.join(path).unwrap().to_string(),
        });
        let client = client(&fake);
        let e = match path {
            "v1/chat/completions" => client.chat_stream(&key(), &request()).await.unwrap_err(),
            "v1/models" => client.check_key(&key()).await.unwrap_err(),
            _ => client
                .ocr(
                    &key(),
                    OcrInput {
                        content_type: "image/png".to_owned(),
                        bytes: vec![1, 2, 3],
                        file_name: None,
                    },
                )
                .await
                .unwrap_err(),
        };
        assert_eq!(
            e,
            UpstreamError::Unavailable { status: Some(307) },
            "{path}"
        );
    }
    assert!(elsewhere.requests().is_empty(), "the key went elsewhere");
}

#[tokio::test]
async fn ocr_reads_a_pdf_and_joins_its_pages() {
    let fake = fake().await;
    fake.set_ocr_pages(&["# Invoice 42", "Total: **12 EUR**"]);
    let pdf = b"%PDF-1.7 fake document".to_vec();
    let text = client(&fake)
        .ocr(
            &key(),
            OcrInput {
                content_type: "application/pdf".to_owned(),
                bytes: pdf.clone(),
                file_name: Some("invoice.pdf".to_owned()),
            },
        )
        .await
        .unwrap();
    assert_eq!(text, "# Invoice 42\n\nTotal: **12 EUR**");
    let r = &fake.requests()[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/v1/ocr"));
    assert_eq!(r.authorization(), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(r.body["model"], "mistral-ocr-latest");
    assert_eq!(r.body["document"]["type"], "document_url");
    assert_eq!(r.body["document"]["document_name"], "invoice.pdf");
    let url = r.body["document"]["document_url"].as_str().unwrap();
    let data = url.strip_prefix("data:application/pdf;base64,").unwrap();
    assert_eq!(B64.decode(data).unwrap(), pdf);
}

#[tokio::test]
async fn ocr_reads_an_image() {
    let fake = fake().await;
    let text = client(&fake)
        .ocr(
            &key(),
            OcrInput {
                content_type: "Image/PNG; charset=binary".to_owned(),
                bytes: vec![0x89, b'P', b'N', b'G'],
                file_name: Some("scan.png".to_owned()),
            },
        )
        .await
        .unwrap();
    assert_eq!(text, "Read 4 bytes of image/png.");
    let r = &fake.requests()[0];
    assert_eq!(r.body["document"]["type"], "image_url");
    assert_eq!(
        r.body["document"]["image_url"],
        "data:image/png;base64,iVBORw=="
    );
}

#[tokio::test]
async fn ocr_refuses_other_types_without_calling_mistral() {
    let fake = fake().await;
    let e = client(&fake)
        .ocr(
            &key(),
            OcrInput {
                content_type: "text/html".to_owned(),
                bytes: b"<script>".to_vec(),
                file_name: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, UpstreamError::BadRequest(_)), "{e:?}");
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn ocr_maps_upstream_faults() {
    let fake = fake().await;
    let input = || OcrInput {
        content_type: "application/pdf".to_owned(),
        bytes: vec![1],
        file_name: None,
    };
    fake.set_fault(Fault::Status429 {
        retry_after: Some(2),
    });
    assert_eq!(
        client(&fake).ocr(&key(), input()).await.unwrap_err(),
        UpstreamError::RateLimited {
            retry_after_secs: Some(2)
        }
    );
    fake.set_fault(Fault::Status401);
    assert_eq!(
        client(&fake).ocr(&key(), input()).await.unwrap_err(),
        UpstreamError::InvalidKey
    );
}

#[tokio::test]
async fn check_key_accepts_a_good_key_and_refuses_a_bad_one() {
    let fake = fake().await;
    let client = client(&fake);
    client.check_key(&key()).await.unwrap();
    let r = &fake.requests()[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/v1/models"));
    assert_eq!(r.authorization(), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(
        client
            .check_key(&SecretString::from("sk-typo"))
            .await
            .unwrap_err(),
        UpstreamError::InvalidKey
    );
    fake.set_fault(Fault::Status500);
    assert_eq!(
        client.check_key(&key()).await.unwrap_err(),
        UpstreamError::Unavailable { status: Some(500) }
    );
}

#[tokio::test]
async fn the_fake_answers_stream_false_with_a_json_completion_and_401_with_mistrals_body() {
    let fake = fake().await;
    fake.set_reply("Hello world");
    let http = reqwest::Client::new();
    let url = fake.base_url.join("v1/chat/completions").unwrap();
    let body = json!({ "model": "m", "messages": [{ "role": "user", "content": "hi there" }] });
    let r = http
        .post(url.clone())
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello world");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        v["usage"],
        json!({ "prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4 })
    );

    let r = http.post(url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["message"], "Unauthorized");
    assert!(v["request_id"].as_str().is_some_and(|id| id.len() == 32));
}

#[tokio::test]
async fn the_fake_frames_sse_like_mistral() {
    let fake = fake().await;
    fake.set_reply("Hi there");
    let r = reqwest::Client::new()
        .post(fake.base_url.join("v1/chat/completions").unwrap())
        .bearer_auth(KEY)
        .json(&json!({ "model": "m", "messages": [{ "role": "user", "content": "x" }], "stream": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let text = r.text().await.unwrap();
    let events: Vec<&str> = text.split_terminator("\n\n").collect();
    assert_eq!(events.len(), 5, "{text}");
    assert!(events.iter().all(|e| e.starts_with("data: ")));
    assert_eq!(events[4], "data: [DONE]");
    let chunk = |i: usize| -> serde_json::Value {
        serde_json::from_str(events[i].strip_prefix("data: ").unwrap()).unwrap()
    };
    assert_eq!(chunk(0)["object"], "chat.completion.chunk");
    assert_eq!(chunk(0)["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunk(1)["choices"][0]["delta"]["content"], "Hi ");
    assert_eq!(chunk(2)["choices"][0]["delta"]["content"], "there");
    assert_eq!(chunk(3)["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunk(3)["usage"]["total_tokens"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_streams_share_one_client() {
    const STREAMS: usize = 300;
    let fake = fake().await;
    fake.set_reply("a b c d e f g h");
    fake.set_chunk_delay(Duration::from_millis(10));
    let client = client(&fake);
    let tasks: Vec<_> = (0..STREAMS)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let stream = client.chat_stream(&key(), &request()).await.unwrap();
                collect(stream).await
            })
        })
        .collect();
    for task in tasks {
        let items = task.await.unwrap();
        assert_eq!(items.last(), Some(&Ok(ChatEvent::Done)));
        assert_eq!(items.len(), 8 + 2);
    }
    let stats = fake.stream_stats();
    assert_eq!(
        (stats.started, stats.completed),
        (STREAMS as u64, STREAMS as u64)
    );
}

#[tokio::test]
async fn a_finished_stream_leaves_its_connection_for_the_next_request() {
    let fake = fake().await;
    let client = client(&fake);
    for turn in 0..3 {
        let items = collect(client.chat_stream(&key(), &request()).await.unwrap()).await;
        assert_eq!(items.last(), Some(&Ok(ChatEvent::Done)));
        // The end of the body is read in the background; a person's next message takes
        // longer than this to type.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(fake.connections_accepted(), 1, "turn {turn}");
    }
    client.check_key(&key()).await.unwrap();
    assert_eq!(fake.connections_accepted(), 1);
}
