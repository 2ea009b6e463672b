//! The real HTTP backends (OpenAI-compatible, Ollama, Hayhooks) against the
//! loopback fault server in `support/`: every failure mode gives the exact
//! text and the exact error class, retry hint and sanitised message; the
//! engine's view of hangs, retries and broken streams end to end; cancelling
//! closes the connection; an API key never leaks.
//!
//! Real sockets, so real time: `tokio::time::timeout` only guards against a
//! test hanging; no paused clock here. Every request loop is bounded.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use loreweave::backends::haystack::HayhooksRetriever;
use loreweave::backends::http::{ApiKey, HttpOptions, build_client, with_bearer};
use loreweave::backends::ollama::{OllamaChat, OllamaEmbedder};
use loreweave::backends::openai::{GenParams, OpenAiChat, OpenAiEmbedder};
use loreweave::backends::{ChatModel, Chunk, Embedder, RetrieveQuery, Retriever};
use loreweave::domain::{BackendError, ErrorClass, GenerationTask, Passage, TaskMode};
use loreweave::engine::request::{Kind, Outcome};
use loreweave::engine::workspace::MessageStatus;
use loreweave::engine::{Command, EngineConfig, Input};
use loreweave::prompts::Prompts;
use loreweave::runtime::{Backends, Driver};
use serde_json::{Value, json};
use support::{FaultServer, Mode, TOKENS, UTF8_TOKENS, drip_token, http_date_in, refused_base};

/// Guard around every call: a broken backend fails the test, never hangs it.
const GUARD: Duration = Duration::from_secs(2);
/// Body cap for most tests.
const CAP: u64 = 1024 * 1024;
/// Body cap for the huge-body tests.
const SMALL_CAP: u64 = 64 * 1024;
const SENTINEL: &str = "sk-SENTINEL-1234";

fn client() -> reqwest::Client {
    build_client(&HttpOptions::default()).expect("client builds")
}

fn params() -> GenParams {
    GenParams {
        temperature: Some(0.25),
        max_tokens: 64,
    }
}

fn task() -> GenerationTask {
    GenerationTask {
        mode: TaskMode::Chat {
            question: "who guards the waystone?".into(),
            history: vec![],
        },
        passages: vec![Passage {
            location: Default::default(),
            id: "p1".into(),
            title: "The Waystone".into(),
            source: "waystone.md".into(),
            kind: None,
            heading: None,
            text: "Warden Tamsin guards it.".into(),
            score: 1.0,
            entities: vec![],
        }],
        no_lore_reason: None,
    }
}

fn openai_with(base: &str, key: Option<ApiKey>, cap: u64) -> OpenAiChat {
    OpenAiChat::new(
        client(),
        &format!("{base}/v1"),
        "gpt-test",
        key,
        params(),
        Arc::new(Prompts::default()),
        cap,
    )
    .expect("valid openai config")
}

fn openai(base: &str) -> OpenAiChat {
    openai_with(base, None, CAP)
}

fn ollama_with(base: &str, cap: u64) -> OllamaChat {
    OllamaChat::new(
        client(),
        base,
        "llama-test",
        params(),
        Arc::new(Prompts::default()),
        cap,
    )
    .expect("valid ollama config")
}

fn hayhooks_with(base: &str, extra: serde_json::Map<String, Value>, cap: u64) -> HayhooksRetriever {
    HayhooksRetriever::new(
        client(),
        &format!("{base}/hayhooks/run"),
        extra,
        "source",
        cap,
    )
    .expect("valid hayhooks config")
}

fn host(server: &FaultServer) -> String {
    format!("127.0.0.1:{}", server.addr.port())
}

/// What a chat stream produced: its tokens, then its error if it ended
/// with one. Also checks that nothing follows an error.
#[derive(Debug)]
struct Streamed {
    tokens: Vec<String>,
    /// The token counts the server reported.
    usage: Option<loreweave::backends::Usage>,
    error: Option<BackendError>,
}

impl Streamed {
    fn text(&self) -> String {
        self.tokens.concat()
    }

    fn error(&self) -> &BackendError {
        self.error.as_ref().expect("the stream ended with an error")
    }
}

async fn stream_all(model: &dyn ChatModel) -> Streamed {
    let mut stream = model.generate(task());
    tokio::time::timeout(GUARD, async move {
        let mut tokens = Vec::new();
        let mut usage = None;
        let mut error = None;
        for _ in 0..10_000 {
            match stream.next().await {
                None => break,
                Some(Ok(Chunk::Text(t))) => tokens.push(t),
                Some(Ok(Chunk::Usage(u))) => usage = Some(u),
                Some(Err(e)) => {
                    error = Some(e);
                    assert!(stream.next().await.is_none(), "an error ends the stream");
                    break;
                }
            }
        }
        Streamed {
            tokens,
            usage,
            error,
        }
    })
    .await
    .expect("the stream ends within the guard")
}

async fn guarded<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(GUARD, fut)
        .await
        .expect("the call ends within the guard")
}

fn assert_clean(message: &str) {
    assert!(
        !message.chars().any(char::is_control),
        "control characters in {message:?}"
    );
}

// ----- OpenAI-compatible chat ---------------------------------------------------

#[tokio::test]
async fn openai_chat_streams_tokens_and_sends_the_expected_request() {
    let server = FaultServer::start(Mode::Ok).await;
    let model = openai_with(&server.base, Some(ApiKey::new("k-test".into())), CAP);
    let out = stream_all(&model).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.tokens, TOKENS);
    let sent = server.recorded();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, "/v1/chat/completions");
    assert_eq!(sent[0].authorization.as_deref(), Some("Bearer k-test"));
    let body = &sent[0].body;
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["stream"], true);
    assert_eq!(body["max_tokens"], 64);
    assert_eq!(body["temperature"], 0.25);
    let roles: Vec<&str> = body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["role"].as_str())
        .collect();
    assert_eq!(roles, ["system", "user"]);
    assert!(
        body["messages"][0]["content"]
            .as_str()
            .is_some_and(|c| c.contains("[1] The Waystone (waystone.md)"))
    );
}

#[tokio::test]
async fn openai_chat_without_temperature_leaves_it_to_the_server() {
    let server = FaultServer::start(Mode::Ok).await;
    let model = OpenAiChat::new(
        client(),
        &format!("{}/v1/", server.base),
        "m",
        None,
        GenParams {
            temperature: None,
            max_tokens: 7,
        },
        Arc::new(Prompts::default()),
        CAP,
    )
    .expect("valid");
    assert_eq!(stream_all(&model).await.text(), "Hello, world!");
    let body = &server.recorded()[0].body;
    assert!(body.get("temperature").is_none(), "{body}");
    assert_eq!(body["max_tokens"], 7);
    assert_eq!(server.recorded()[0].authorization, None);
}

#[tokio::test]
async fn openai_chat_skips_pings_joins_multiline_data_and_ends_at_done() {
    let server = FaultServer::start(Mode::Ping).await;
    let out = stream_all(&openai(&server.base)).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.tokens, TOKENS, "[DONE] alone ends the stream cleanly");

    server.set_mode(Mode::MultiLine);
    let out = stream_all(&openai(&server.base)).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.tokens, TOKENS);
}

#[tokio::test]
async fn openai_chat_decodes_utf8_split_across_chunks() {
    let server = FaultServer::start(Mode::SplitUtf8).await;
    let out = stream_all(&openai(&server.base)).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.text(), UTF8_TOKENS.concat());
    assert!(!out.text().contains('\u{fffd}'));
}

#[tokio::test]
async fn invalid_utf8_becomes_a_replacement_character_not_a_stall() {
    let server = FaultServer::start(Mode::InvalidUtf8).await;
    let out = stream_all(&openai(&server.base)).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.text(), "bad\u{fffd}byte");
    let out = stream_all(&ollama_with(&server.base, CAP)).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.text(), "bad\u{fffd}byte");
}

#[tokio::test]
async fn openai_chat_decodes_events_split_at_arbitrary_bytes() {
    let server = FaultServer::start(Mode::Ok).await;
    for size in [1, 3, 7, 64] {
        server.script([Mode::Split {
            size,
            gap: Duration::from_millis(if size == 1 { 0 } else { 1 }),
        }]);
        let out = stream_all(&openai(&server.base)).await;
        assert!(out.error.is_none(), "size {size}: {:?}", out.error);
        assert_eq!(out.tokens, TOKENS, "size {size}");
    }
}

#[tokio::test]
async fn openai_chat_early_eof_yields_what_arrived_then_a_transient_error() {
    let server = FaultServer::start(Mode::EarlyEof).await;
    let out = stream_all(&openai(&server.base)).await;
    assert_eq!(out.tokens, TOKENS[..2]);
    let error = out.error();
    assert_eq!(error.class, ErrorClass::Transient);
    assert_eq!(error.message, "stream ended early (incomplete)");
}

#[tokio::test]
async fn openai_chat_reset_mid_stream_is_transient() {
    let server = FaultServer::start(Mode::ResetMidStream).await;
    let out = stream_all(&openai(&server.base)).await;
    assert_eq!(out.tokens, TOKENS[..1]);
    let error = out.error();
    assert_eq!(error.class, ErrorClass::Transient, "{}", error.message);
    assert!(
        error.message.contains(&host(&server)),
        "names the host: {}",
        error.message
    );
}

#[tokio::test]
async fn openai_chat_malformed_chunk_is_permanent() {
    let server = FaultServer::start(Mode::Malformed).await;
    let out = stream_all(&openai(&server.base)).await;
    assert_eq!(out.tokens, TOKENS[..1]);
    let error = out.error();
    assert_eq!(error.class, ErrorClass::Permanent);
    assert!(
        error.message.starts_with("malformed stream chunk"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn openai_chat_error_object_in_a_200_is_an_error_with_a_clean_message() {
    let server = FaultServer::start(Mode::ErrorObject).await;
    let out = stream_all(&openai(&server.base)).await;
    assert_eq!(out.tokens, TOKENS[..1]);
    let error = out.error();
    assert_eq!(error.class, ErrorClass::Transient);
    assert_eq!(error.message, "server error: model overloaded retry later");
}

#[tokio::test]
async fn openai_chat_statuses_are_classified_with_the_server_message() {
    let server = FaultServer::start(Mode::Ok).await;
    let h = host(&server);
    for (code, class) in [
        (500, ErrorClass::Transient),
        (502, ErrorClass::Transient),
        (503, ErrorClass::Transient),
        (408, ErrorClass::Transient),
        (400, ErrorClass::Permanent),
        (404, ErrorClass::Permanent),
    ] {
        server.script([Mode::Status(code)]);
        let out = stream_all(&openai(&server.base)).await;
        assert!(out.tokens.is_empty());
        let error = out.error();
        assert_eq!(error.class, class, "HTTP {code}");
        assert_eq!(
            error.message,
            format!("HTTP {code} from {h}: injected {code}")
        );
        assert_eq!(error.retry_after, None, "no Retry-After was sent");
    }
}

#[tokio::test]
async fn server_error_bodies_are_sanitised_and_shortened() {
    let server = FaultServer::start(Mode::Ok).await;
    let h = host(&server);
    server.script([Mode::StatusBody(
        500,
        r#"{"error":{"message":"boom \u001b[31mred\u001b]0;title\u0007 done"}}"#.into(),
    )]);
    let out = stream_all(&openai(&server.base)).await;
    assert_eq!(
        out.error().message,
        format!("HTTP 500 from {h}: boom red done")
    );

    server.script([Mode::StatusBody(
        502,
        "\u{1b}[2J<html>bad\r\ngateway\u{202e}</html>".into(),
    )]);
    let out = stream_all(&openai(&server.base)).await;
    assert_eq!(
        out.error().message,
        format!("HTTP 502 from {h}: <html>bad gateway</html>")
    );

    server.script([Mode::StatusBody(500, "y".repeat(200_000))]);
    let out = stream_all(&openai(&server.base)).await;
    let message = &out.error().message;
    assert!(message.starts_with(&format!("HTTP 500 from {h}: yyy")));
    let detail = message.split(": ").nth(1).expect("detail");
    assert_eq!(detail.chars().count(), 300, "quoted message is cut at 300");
    assert_clean(message);

    server.script([Mode::StatusBody(503, String::new())]);
    let out = stream_all(&openai(&server.base)).await;
    assert_eq!(
        out.error().message,
        format!("HTTP 503 from {h}: Service Unavailable")
    );
}

#[tokio::test]
async fn retry_after_is_read_as_seconds_and_as_an_http_date() {
    let server = FaultServer::start(Mode::Ok).await;
    server.script([Mode::RetryAfter(429, "7".into())]);
    let out = stream_all(&openai(&server.base)).await;
    let error = out.error();
    assert_eq!(error.class, ErrorClass::Transient);
    assert_eq!(error.retry_after, Some(Duration::from_secs(7)));
    assert!(
        error.message.starts_with("HTTP 429 from"),
        "{}",
        error.message
    );

    server.script([Mode::RetryAfter(503, http_date_in(30))]);
    let out = stream_all(&openai(&server.base)).await;
    let after = out.error().retry_after.expect("a date is honoured");
    assert!(
        (Duration::from_secs(28)..=Duration::from_secs(30)).contains(&after),
        "{after:?}"
    );

    // Only 429 and 503 carry the hint.
    server.script([Mode::RetryAfter(500, "7".into())]);
    let out = stream_all(&openai(&server.base)).await;
    assert_eq!(out.error().retry_after, None);
    server.script([Mode::RetryAfter(429, "whenever".into())]);
    let out = stream_all(&openai(&server.base)).await;
    assert_eq!(out.error().retry_after, None);
}

#[tokio::test]
async fn connection_refused_is_transient_and_names_only_the_host() {
    let base = refused_base();
    let port = base.rsplit(':').next().expect("port");
    let out = stream_all(&openai(&base)).await;
    let error = out.error();
    assert_eq!(error.class, ErrorClass::Transient);
    assert!(
        error
            .message
            .starts_with(&format!("cannot connect to 127.0.0.1:{port}")),
        "{}",
        error.message
    );
    assert!(!error.message.contains("/v1"), "{}", error.message);
    assert_clean(&error.message);
}

#[tokio::test]
async fn userinfo_and_query_never_reach_an_error_message() {
    let base = refused_base();
    let url = base.replace("http://", "http://user:hunter2@");
    let model = OpenAiChat::new(
        client(),
        &format!("{url}/v1?api_key=hunter3"),
        "m",
        None,
        params(),
        Arc::new(Prompts::default()),
        CAP,
    )
    .expect("valid");
    let out = stream_all(&model).await;
    let message = &out.error().message;
    assert!(!message.contains("hunter"), "{message}");
    assert!(!format!("{model:?}").contains("hunter"));
}

#[tokio::test]
async fn a_hanging_server_is_bounded_only_by_the_caller() {
    let server = FaultServer::start(Mode::Hang).await;
    let model = openai(&server.base);
    let mut stream = model.generate(task());
    let waited = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    assert!(waited.is_err(), "the backend has no deadline of its own");
    drop(stream);
    assert_eq!(server.requests(), 1);
    assert!(
        server.wait_hangs_dropped(1, Duration::from_secs(1)).await,
        "dropping the call closed the connection"
    );
}

#[tokio::test]
async fn a_slow_server_still_answers() {
    let server = FaultServer::start(Mode::Slow(Duration::from_millis(300))).await;
    let start = Instant::now();
    let out = stream_all(&openai(&server.base)).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.text(), "Hello, world!");
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn a_slow_drip_arrives_token_by_token_and_dropping_it_disconnects() {
    let server = FaultServer::start(Mode::Drip {
        gap: Duration::from_millis(50),
        count: 100,
    })
    .await;
    let model = openai(&server.base);
    let mut stream = model.generate(task());
    let mut arrivals = Vec::new();
    for n in 0..3 {
        let token = guarded(stream.next())
            .await
            .expect("a token")
            .expect("not an error");
        assert_eq!(token, Chunk::Text(drip_token(n)));
        arrivals.push(Instant::now());
    }
    assert!(
        arrivals[2] - arrivals[0] >= Duration::from_millis(80),
        "tokens are yielded as they arrive, not buffered"
    );
    drop(stream);
    assert!(
        server.wait_disconnects(1, Duration::from_secs(1)).await,
        "the server saw the connection close"
    );
}

#[tokio::test]
async fn a_huge_stream_is_cut_at_the_cap() {
    let server = FaultServer::start(Mode::Huge(256 * 1024)).await;
    let out = stream_all(&openai_with(&server.base, None, SMALL_CAP)).await;
    let error = out.error();
    assert_eq!(error.class, ErrorClass::Permanent);
    assert_eq!(error.message, "response body over 65536 bytes");
    let received: usize = out.tokens.iter().map(String::len).sum();
    assert!(received > 0 && received < 65536, "{received}");
}

#[tokio::test]
async fn a_cross_host_redirect_is_not_followed() {
    let other = FaultServer::start(Mode::Ok).await;
    let server = FaultServer::start(Mode::Redirect {
        status: 307,
        // Another host name for this machine: same port space, other origin.
        location: format!("http://localhost:{}/v1/chat/completions", other.addr.port()),
    })
    .await;
    let key = ApiKey::new("k-redirect".into());
    let out = stream_all(&openai_with(&server.base, Some(key), CAP)).await;
    let error = out.error();
    assert_eq!(error.class, ErrorClass::Permanent);
    assert!(error.message.contains("another host"), "{}", error.message);
    assert_eq!(server.requests(), 1);
    assert_eq!(other.requests(), 0, "the redirect target was never asked");
}

#[tokio::test]
async fn same_host_redirects_are_followed_up_to_five() {
    let server = FaultServer::start(Mode::Ok).await;
    server.script([Mode::Redirect {
        status: 307,
        location: "/v2/chat/completions".into(),
    }]);
    let key = ApiKey::new("k-same".into());
    let out = stream_all(&openai_with(&server.base, Some(key), CAP)).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.text(), "Hello, world!");
    let sent = server.recorded();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].path, "/v2/chat/completions");
    assert_eq!(sent[1].authorization.as_deref(), Some("Bearer k-same"));
    assert_eq!(sent[1].body["model"], "gpt-test", "307 keeps the body");

    let server = FaultServer::start(Mode::Redirect {
        status: 307,
        location: "/v1/chat/completions".into(),
    })
    .await;
    let out = stream_all(&openai(&server.base)).await;
    let error = out.error();
    assert_eq!(error.class, ErrorClass::Permanent);
    assert!(
        error.message.contains("more than 5 redirects"),
        "{}",
        error.message
    );
    assert_eq!(server.requests(), 6, "the first request and five redirects");
}

#[tokio::test]
async fn bad_urls_are_refused_by_new() {
    for url in [
        "ftp://host/v1",
        "not a url",
        "http://",
        "file:///etc/passwd",
    ] {
        let error = OpenAiChat::new(
            client(),
            url,
            "m",
            None,
            params(),
            Arc::new(Prompts::default()),
            CAP,
        )
        .expect_err(url);
        assert_eq!(error.class, ErrorClass::Permanent, "{url}");
        assert!(error.message.contains("URL"), "{url}: {}", error.message);
    }
    assert!(OllamaEmbedder::new(client(), "gopher://h", "m", 4, CAP).is_err());
    assert!(
        HayhooksRetriever::new(client(), "h:1/run", Default::default(), "source", CAP).is_err()
    );
    assert!(OpenAiEmbedder::new(client(), "http://h/v1", "m", None, 0, CAP).is_err());
}

// ----- Ollama chat --------------------------------------------------------------

#[tokio::test]
async fn ollama_chat_streams_ndjson_and_sends_options() {
    let server = FaultServer::start(Mode::Ok).await;
    let out = stream_all(&ollama_with(&server.base, CAP)).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.tokens, TOKENS);
    // The last line's counts come through.
    assert_eq!(
        out.usage,
        Some(loreweave::backends::Usage {
            input_tokens: Some(26),
            output_tokens: Some(4)
        })
    );
    let sent = &server.recorded()[0];
    assert_eq!(sent.path, "/api/chat");
    assert_eq!(sent.body["model"], "llama-test");
    assert_eq!(sent.body["stream"], true);
    assert_eq!(
        sent.body["options"],
        json!({"temperature": 0.25, "num_predict": 64})
    );
    assert_eq!(
        sent.body["messages"][1]["content"],
        "who guards the waystone?"
    );
}

#[tokio::test]
async fn ollama_chat_lines_split_anywhere_and_an_unterminated_last_line_count() {
    let server = FaultServer::start(Mode::Ok).await;
    for size in [1, 5, 13] {
        server.script([Mode::Split {
            size,
            gap: Duration::from_millis(if size == 1 { 0 } else { 1 }),
        }]);
        let out = stream_all(&ollama_with(&server.base, CAP)).await;
        assert!(out.error.is_none(), "size {size}: {:?}", out.error);
        assert_eq!(out.tokens, TOKENS, "size {size}");
    }
    server.script([Mode::SplitUtf8]);
    let out = stream_all(&ollama_with(&server.base, CAP)).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.text(), UTF8_TOKENS.concat());
}

#[tokio::test]
async fn ollama_chat_failures_are_classified() {
    let server = FaultServer::start(Mode::Ok).await;
    let h = host(&server);

    server.script([Mode::EarlyEof]);
    let out = stream_all(&ollama_with(&server.base, CAP)).await;
    assert_eq!(out.tokens, TOKENS[..2]);
    assert_eq!(out.error().class, ErrorClass::Transient);
    assert_eq!(out.error().message, "stream ended early (incomplete)");

    server.script([Mode::ErrorObject]);
    let out = stream_all(&ollama_with(&server.base, CAP)).await;
    assert_eq!(out.tokens, TOKENS[..1]);
    assert_eq!(
        out.error().message,
        "server error: model overloaded retry later"
    );

    server.script([Mode::Json(
        json!({"message": {"content": ""}, "done": true, "done_reason": "error"}),
    )]);
    let out = stream_all(&ollama_with(&server.base, CAP)).await;
    assert!(
        out.error().message.contains("done_reason"),
        "{}",
        out.error().message
    );

    server.script([Mode::Malformed]);
    let out = stream_all(&ollama_with(&server.base, CAP)).await;
    assert_eq!(out.tokens, TOKENS[..1]);
    assert_eq!(out.error().class, ErrorClass::Permanent);
    assert!(out.error().message.starts_with("malformed stream chunk"));

    server.script([Mode::ResetMidStream]);
    let out = stream_all(&ollama_with(&server.base, CAP)).await;
    assert_eq!(out.tokens, TOKENS[..1]);
    assert_eq!(out.error().class, ErrorClass::Transient);

    server.script([Mode::Status(500)]);
    let out = stream_all(&ollama_with(&server.base, CAP)).await;
    assert_eq!(
        out.error().message,
        format!("HTTP 500 from {h}: injected 500")
    );
    assert_eq!(out.error().class, ErrorClass::Transient);

    server.script([Mode::StatusBody(
        404,
        r#"{"error":"model \"x\" not found"}"#.into(),
    )]);
    let out = stream_all(&ollama_with(&server.base, CAP)).await;
    assert_eq!(
        out.error().message,
        format!("HTTP 404 from {h}: model \"x\" not found")
    );
    assert_eq!(out.error().class, ErrorClass::Permanent);

    server.script([Mode::Huge(200 * 1024)]);
    let out = stream_all(&ollama_with(&server.base, SMALL_CAP)).await;
    assert_eq!(out.error().message, "response body over 65536 bytes");
}

#[tokio::test]
async fn ollama_chat_drip_then_drop_disconnects() {
    let server = FaultServer::start(Mode::Drip {
        gap: Duration::from_millis(50),
        count: 100,
    })
    .await;
    let model = ollama_with(&server.base, CAP);
    let mut stream = model.generate(task());
    let first = guarded(stream.next()).await.expect("token").expect("ok");
    assert_eq!(first, Chunk::Text(drip_token(0)));
    drop(stream);
    assert!(server.wait_disconnects(1, Duration::from_secs(1)).await);
}

// ----- Embeddings ---------------------------------------------------------------

fn texts(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn openai_embeddings_batch_order_by_index_and_validate() {
    let server = FaultServer::start(Mode::Ok).await;
    let embedder = OpenAiEmbedder::new(
        client(),
        &format!("{}/v1", server.base),
        "embed-test",
        Some(ApiKey::new("k-embed".into())),
        2,
        CAP,
    )
    .expect("valid");
    let input = texts(&["a", "bb", "ccc", "dddd", "eeeee"]);
    let vectors = guarded(embedder.embed(input)).await.expect("embeddings");
    // [chars, position in its batch, 0.5]; the server lists them reversed.
    assert_eq!(
        vectors,
        vec![
            vec![1.0, 0.0, 0.5],
            vec![2.0, 1.0, 0.5],
            vec![3.0, 0.0, 0.5],
            vec![4.0, 1.0, 0.5],
            vec![5.0, 0.0, 0.5],
        ]
    );
    let sent = server.recorded();
    assert_eq!(sent.len(), 3);
    let batches: Vec<Value> = sent.iter().map(|r| r.body["input"].clone()).collect();
    assert_eq!(
        batches,
        [json!(["a", "bb"]), json!(["ccc", "dddd"]), json!(["eeeee"])]
    );
    assert!(
        sent.iter()
            .all(|r| r.path == "/v1/embeddings" && r.body["model"] == "embed-test")
    );
    assert!(
        sent.iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer k-embed"))
    );

    assert_eq!(
        guarded(embedder.embed(vec![])).await.expect("nothing"),
        Vec::<Vec<f32>>::new()
    );
    assert_eq!(server.requests(), 3, "no call for no texts");
}

#[tokio::test]
async fn openai_embeddings_reject_empty_text_before_any_call() {
    let server = FaultServer::start(Mode::Ok).await;
    let embedder = OpenAiEmbedder::new(client(), &format!("{}/v1", server.base), "m", None, 8, CAP)
        .expect("valid");
    let error = guarded(embedder.embed(texts(&["fine", "", "also"])))
        .await
        .expect_err("empty text");
    assert_eq!(error.class, ErrorClass::Permanent);
    assert_eq!(error.message, "cannot embed an empty text (input 2)");
    assert_eq!(server.requests(), 0);
}

#[tokio::test]
async fn openai_embeddings_failures_are_classified() {
    let server = FaultServer::start(Mode::Ok).await;
    let h = host(&server);
    let embedder = OpenAiEmbedder::new(
        client(),
        &format!("{}/v1", server.base),
        "m",
        None,
        8,
        SMALL_CAP,
    )
    .expect("valid");
    let one = || texts(&["x"]);

    server.script([Mode::RetryAfter(429, "3".into())]);
    let error = guarded(embedder.embed(one())).await.expect_err("429");
    assert_eq!(error.class, ErrorClass::Transient);
    assert_eq!(error.retry_after, Some(Duration::from_secs(3)));
    assert_eq!(error.message, format!("HTTP 429 from {h}: slow down"));

    server.script([Mode::Malformed]);
    let error = guarded(embedder.embed(one())).await.expect_err("malformed");
    assert_eq!(error.class, ErrorClass::Permanent);
    assert!(
        error.message.starts_with("malformed response"),
        "{}",
        error.message
    );

    server.script([Mode::EarlyEof]);
    let error = guarded(embedder.embed(one())).await.expect_err("cut json");
    assert!(
        error.message.starts_with("malformed response"),
        "{}",
        error.message
    );

    server.script([Mode::ErrorObject]);
    let error = guarded(embedder.embed(one()))
        .await
        .expect_err("error object");
    assert_eq!(error.class, ErrorClass::Transient);
    assert_eq!(error.message, "server error: model overloaded retry later");

    server.script([Mode::Huge(200 * 1024)]);
    let error = guarded(embedder.embed(one())).await.expect_err("huge");
    assert_eq!(error.class, ErrorClass::Permanent);
    assert_eq!(error.message, "response body over 65536 bytes");

    server.script([Mode::ResetMidStream]);
    let error = guarded(embedder.embed(one())).await.expect_err("reset");
    assert_eq!(error.class, ErrorClass::Transient, "{}", error.message);

    server.script([Mode::Json(
        json!({"data": [{"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": [1.0, 2.0]}]}),
    )]);
    let error = guarded(embedder.embed(texts(&["a", "b"])))
        .await
        .expect_err("dims");
    assert!(
        error.message.contains("different dimensions"),
        "{}",
        error.message
    );

    server.script([Mode::Json(
        json!({"data": [{"index": 0, "embedding": [1.0, "x"]}]}),
    )]);
    let error = guarded(embedder.embed(one()))
        .await
        .expect_err("not numbers");
    assert!(error.message.contains("finite number"), "{}", error.message);

    server.script([Mode::Json(json!({"data": []}))]);
    let error = guarded(embedder.embed(one())).await.expect_err("count");
    assert!(
        error.message.contains("0 embeddings for 1 inputs"),
        "{}",
        error.message
    );

    let refused = OpenAiEmbedder::new(client(), &refused_base(), "m", None, 8, CAP).expect("valid");
    let error = guarded(refused.embed(one())).await.expect_err("refused");
    assert_eq!(error.class, ErrorClass::Transient);
}

#[tokio::test]
async fn ollama_embeddings_come_back_in_order() {
    let server = FaultServer::start(Mode::Ok).await;
    let embedder = OllamaEmbedder::new(client(), &server.base, "nomic", 10, CAP).expect("valid");
    let vectors = guarded(embedder.embed(texts(&["one", "three", "seventeen"])))
        .await
        .expect("ok");
    assert_eq!(
        vectors,
        vec![
            vec![3.0, 0.0, 0.5],
            vec![5.0, 1.0, 0.5],
            vec![9.0, 2.0, 0.5]
        ]
    );
    let sent = server.recorded();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, "/api/embed");
    assert_eq!(
        sent[0].body,
        json!({"model": "nomic", "input": ["one", "three", "seventeen"]})
    );

    server.script([Mode::Json(json!({"embeddings": [[1.0, 2.0]]}))]);
    let error = guarded(embedder.embed(texts(&["a", "b"])))
        .await
        .expect_err("count");
    assert!(
        error.message.contains("1 embeddings for 2 inputs"),
        "{}",
        error.message
    );

    server.script([Mode::Status(503)]);
    let error = guarded(embedder.embed(texts(&["a"])))
        .await
        .expect_err("503");
    assert_eq!(error.class, ErrorClass::Transient);
    let error = guarded(embedder.embed(texts(&["  "])))
        .await
        .expect_err("blank");
    assert_eq!(error.class, ErrorClass::Permanent);
    assert_eq!(server.requests(), 3);
}

// ----- Hayhooks retriever -------------------------------------------------------

fn query(text: &str, top_k: usize) -> RetrieveQuery {
    RetrieveQuery {
        vector: None,
        query: text.into(),
        top_k,
    }
}

#[tokio::test]
async fn hayhooks_maps_documents_to_passages() {
    let server = FaultServer::start(Mode::Ok).await;
    let mut extra = serde_json::Map::new();
    extra.insert(
        "filters".into(),
        json!({"field": "meta.kind", "value": "place"}),
    );
    extra.insert("query".into(), json!("not the user's query"));
    let retriever = hayhooks_with(&server.base, extra, CAP);
    let passages = guarded(retriever.retrieve(query("waystone", 3)))
        .await
        .expect("ok");
    assert_eq!(passages.len(), 3);
    let p = &passages[0];
    assert_eq!(p.id, "doc-0");
    assert_eq!(p.source, "lore/waystone.md");
    assert_eq!(p.title, "The Waystone");
    assert_eq!(p.kind.as_deref(), Some("place"));
    assert_eq!(p.text, "Lore about waystone — café");
    assert!((p.score - 0.9).abs() < 1e-6);
    assert!(p.entities.is_empty());
    assert_eq!(passages[1].source, "/kb/warden.md", "file_path fallback");
    assert_eq!(
        passages[1].title, "/kb/warden.md",
        "title falls back to the source"
    );
    assert_eq!(passages[2].source, "doc-2", "id fallback");

    let sent = &server.recorded()[0];
    assert_eq!(sent.path, "/hayhooks/run");
    assert_eq!(
        sent.body["query"], "waystone",
        "extra cannot replace the query"
    );
    assert_eq!(sent.body["top_k"], 3);
    assert_eq!(sent.body["filters"]["value"], "place");

    let two = guarded(retriever.retrieve(query("waystone", 2)))
        .await
        .expect("ok");
    assert_eq!(two.len(), 2, "never more than top_k");

    let by_title = HayhooksRetriever::new(
        client(),
        &format!("{}/hayhooks/run", server.base),
        Default::default(),
        "title",
        CAP,
    )
    .expect("valid");
    let passages = guarded(by_title.retrieve(query("w", 1))).await.expect("ok");
    assert_eq!(passages[0].source, "The Waystone");
}

#[tokio::test]
async fn hayhooks_accepts_the_generic_shapes() {
    let server = FaultServer::start(Mode::Ok).await;
    let retriever = hayhooks_with(&server.base, Default::default(), CAP);
    let doc = json!({"id": "g1", "content": "generic", "score": 2.5, "meta": {"source": "s.md"}});
    for shape in [
        json!([doc.clone()]),
        json!({"documents": [doc.clone()]}),
        json!({"result": {"retriever": {"documents": [doc.clone()]}}}),
    ] {
        server.script([Mode::Json(shape.clone())]);
        let passages = guarded(retriever.retrieve(query("q", 5)))
            .await
            .expect("ok");
        assert_eq!(passages.len(), 1, "{shape}");
        assert_eq!(
            (passages[0].id.as_str(), passages[0].source.as_str()),
            ("g1", "s.md")
        );
    }
    server.script([Mode::Json(json!({"answer": 42}))]);
    let error = guarded(retriever.retrieve(query("q", 5)))
        .await
        .expect_err("no docs");
    assert_eq!(error.class, ErrorClass::Permanent);
}

#[tokio::test]
async fn hayhooks_failures_are_classified() {
    let server = FaultServer::start(Mode::Ok).await;
    let h = host(&server);
    let retriever = hayhooks_with(&server.base, Default::default(), SMALL_CAP);

    server.script([Mode::StatusBody(
        422,
        r#"{"detail":[{"loc":["body","query"],"msg":"field required","type":"missing"}]}"#.into(),
    )]);
    let error = guarded(retriever.retrieve(query("q", 5)))
        .await
        .expect_err("422");
    assert_eq!(error.class, ErrorClass::Permanent);
    assert_eq!(
        error.message,
        format!("HTTP 422 from {h}: body.query: field required")
    );

    server.script([Mode::Status(503)]);
    let error = guarded(retriever.retrieve(query("q", 5)))
        .await
        .expect_err("503");
    assert_eq!(error.class, ErrorClass::Transient);

    server.script([Mode::Malformed]);
    let error = guarded(retriever.retrieve(query("q", 5)))
        .await
        .expect_err("bad json");
    assert_eq!(error.class, ErrorClass::Permanent);

    server.script([Mode::Huge(100 * 1024)]);
    let error = guarded(retriever.retrieve(query("q", 5)))
        .await
        .expect_err("huge");
    assert_eq!(error.message, "response body over 65536 bytes");

    server.script([Mode::SplitUtf8]);
    let passages = guarded(retriever.retrieve(query("q", 5)))
        .await
        .expect("split body");
    assert_eq!(passages[0].text, "Lore about q — café");

    server.script([Mode::Hang]);
    let hung = tokio::time::timeout(
        Duration::from_millis(200),
        retriever.retrieve(query("q", 5)),
    )
    .await;
    assert!(hung.is_err(), "a hang is bounded by the caller only");
    assert!(server.wait_hangs_dropped(1, Duration::from_secs(1)).await);
    assert_eq!(server.requests(), 6);
}

// ----- Secret hygiene -----------------------------------------------------------

/// Tracing output of the current thread, captured for assertions.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("capture lock")).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn trace_subscriber(capture: &Captured) -> impl tracing::Subscriber + Send + Sync + 'static {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(capture.clone())
        .finish()
}

/// Requests that fail against a server echoing the Authorization header;
/// returns every string the key must not appear in.
async fn leak_surfaces(key: ApiKey) -> Vec<String> {
    let server = FaultServer::start(Mode::EchoAuth).await;
    let chat = openai_with(&server.base, Some(key.clone()), CAP);
    let embedder = OpenAiEmbedder::new(
        client(),
        &format!("{}/v1", server.base),
        "m",
        Some(key.clone()),
        4,
        CAP,
    )
    .expect("valid");
    let out = stream_all(&chat).await;
    let chat_error = out.error().clone();
    let embed_error = guarded(embedder.embed(texts(&["x"])))
        .await
        .expect_err("401");
    // The server really was sent the key and echoed it back.
    let sent = server.recorded();
    assert_eq!(sent.len(), 2);
    assert!(
        sent.iter()
            .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {SENTINEL}")[..]))
    );
    for error in [&chat_error, &embed_error] {
        assert_eq!(error.class, ErrorClass::Permanent);
        assert!(
            error.message.starts_with("HTTP 401 from"),
            "{}",
            error.message
        );
        assert!(error.message.contains("[redacted]"), "{}", error.message);
    }
    let request = with_bearer(client().post(format!("{}/x", server.base)), Some(&key))
        .build()
        .expect("request builds");
    let header = request
        .headers()
        .get(reqwest::header::AUTHORIZATION)
        .expect("authorization set");
    assert!(header.is_sensitive(), "the header is marked sensitive");
    vec![
        chat_error.message.clone(),
        format!("{chat_error:?}"),
        embed_error.message.clone(),
        format!("{embed_error:?}"),
        format!("{chat:?}"),
        format!("{embedder:?}"),
        format!("{key:?}"),
        format!("{key}"),
        format!("{request:?}"),
    ]
}

#[tokio::test]
async fn an_api_key_never_reaches_errors_debug_output_or_traces() {
    let capture = Captured::default();
    let _default = tracing::subscriber::set_default(trace_subscriber(&capture));
    let surfaces = leak_surfaces(ApiKey::new(SENTINEL.into())).await;
    assert!(surfaces.iter().any(|s| s.contains("[redacted]")));
    for surface in &surfaces {
        assert!(!surface.contains(SENTINEL), "leaked in {surface}");
        assert!(!surface.contains("SENTINEL"), "partly leaked in {surface}");
    }
    let traces = capture.text();
    assert!(
        traces.contains("openai chat request") && traces.contains("HTTP 401"),
        "the capture saw the backends' events: {traces}"
    );
    assert!(!traces.contains("SENTINEL"), "leaked into traces: {traces}");
}

const KEY_VAR: &str = "LOREWEAVE_TEST_SECRET_KEY";
const CHILD_MARKER: &str = "LOREWEAVE_SECRET_CHILD";

/// Runs in a child process (the only way to set an environment variable
/// without `unsafe`): reads the key with `ApiKey::from_env`, and captures
/// tracing process-wide, `log` records from dependencies included.
#[test]
#[ignore = "run as a child process by an_api_key_from_the_environment_never_leaks"]
fn secret_from_env_child() {
    if std::env::var_os(CHILD_MARKER).is_none() {
        return;
    }
    let capture = Captured::default();
    {
        use tracing_subscriber::util::SubscriberInitExt;
        trace_subscriber(&capture)
            .try_init()
            .expect("no global subscriber yet in the child");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let key = ApiKey::from_env(KEY_VAR)
        .expect("a valid key")
        .expect("the key is set");
    let surfaces = runtime.block_on(leak_surfaces(key));
    for surface in &surfaces {
        assert!(!surface.contains("SENTINEL"), "leaked in {surface}");
    }
    let traces = capture.text();
    assert!(traces.contains("openai chat request"), "{traces}");
    assert!(!traces.contains("SENTINEL"), "leaked into traces");
    assert!(matches!(
        ApiKey::from_env("LOREWEAVE_TEST_UNSET_VARIABLE_X"),
        Ok(None)
    ));
    println!("SECRET-CHILD-RAN");
}

#[test]
fn an_api_key_from_the_environment_never_leaks() {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = std::process::Command::new(exe)
        .args([
            "secret_from_env_child",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(KEY_VAR, SENTINEL)
        .env(CHILD_MARKER, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the child test");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("child status") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the child test did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().expect("child output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("SECRET-CHILD-RAN"),
        "the child really ran:\n{stdout}"
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
    assert!(!stdout.contains("SENTINEL") && !stderr.contains("SENTINEL"));
}

// ----- The engine's view --------------------------------------------------------

fn engine_config() -> EngineConfig {
    let mut cfg = EngineConfig {
        generator: "openai".into(),
        retriever: "hayhooks".into(),
        retrieval_timeout: Duration::from_millis(200),
        first_token_timeout: Duration::from_millis(300),
        ..EngineConfig::default()
    };
    cfg.chat_policy.retry.base = Duration::from_millis(50);
    cfg.retrieval_policy.retry.base = Duration::from_millis(50);
    // Retrieval observes late calls; keep their grace short here.
    cfg.retrieval_policy.late_grace = Duration::from_millis(300);
    cfg
}

fn engine_driver(hayhooks: &FaultServer, openai_server: &FaultServer) -> Driver {
    let mut backends = Backends::default();
    backends.retrievers.insert(
        "hayhooks".into(),
        Arc::new(hayhooks_with(&hayhooks.base, Default::default(), CAP)),
    );
    backends
        .models
        .insert("openai".into(), Arc::new(openai(&openai_server.base)));
    let mut driver = loreweave::app::driver(engine_config(), backends);
    driver
        .engine
        .open_conversation(C, "test", Vec::new(), Vec::new());
    driver
}

/// The conversation the engine tests talk in.
const C: loreweave::engine::workspace::ConversationId =
    loreweave::engine::workspace::ConversationId(1);

async fn ask_and_settle(driver: &mut Driver) {
    driver.apply(Input::Command(Command::Ask {
        conversation: C,
        text: "who guards the waystone?".into(),
        tag: None,
    }));
    tokio::time::timeout(Duration::from_secs(5), driver.run_until(|e| !e.is_busy()))
        .await
        .expect("the engine settles");
}

fn request_of(driver: &Driver, kind: Kind) -> loreweave::engine::request::Request {
    driver
        .engine
        .registry()
        .all()
        .into_iter()
        .find(|r| r.kind == kind)
        .cloned()
        .unwrap_or_else(|| panic!("a {kind:?} request"))
}

#[tokio::test]
async fn engine_hung_retriever_times_out_and_the_reply_goes_on_without_lore() {
    let hayhooks = FaultServer::start(Mode::Hang).await;
    let llm = FaultServer::start(Mode::Ok).await;
    let mut driver = engine_driver(&hayhooks, &llm);
    ask_and_settle(&mut driver).await;

    assert_eq!(
        request_of(&driver, Kind::Retrieve).outcome(),
        Some(&Outcome::TimedOut)
    );
    assert_eq!(
        request_of(&driver, Kind::Chat).outcome(),
        Some(&Outcome::Completed)
    );
    let reply = driver
        .engine
        .conversation(C)
        .expect("conversation C")
        .messages
        .last()
        .expect("reply");
    assert_eq!(reply.status, MessageStatus::Done);
    assert_eq!(reply.text, "Hello, world!");
    assert_eq!(
        reply.no_lore.as_deref(),
        Some("retrieval timed out after 200 ms")
    );
    assert_eq!(hayhooks.requests(), 1, "a timeout is not retried");
    // The expired call is observed (retrieval's late policy) until its
    // grace ends; then it is aborted, which closes its connection.
    tokio::time::timeout(
        Duration::from_secs(5),
        driver.run_until(|e| e.observed_count() == 0),
    )
    .await
    .expect("the grace ends");
    assert_eq!(
        driver.engine.backends()["hayhooks"].metrics.late_abandoned,
        1
    );
    assert!(
        hayhooks.wait_hangs_dropped(1, Duration::from_secs(1)).await,
        "the grace end aborted the task and so closed its connection"
    );
    let prompt = llm.recorded()[0].body["messages"][0]["content"].clone();
    assert!(
        prompt
            .as_str()
            .is_some_and(|p| p.contains("retrieval timed out")),
        "the model is told why there is no lore: {prompt}"
    );
}

#[tokio::test]
async fn engine_retries_a_503_and_completes() {
    let hayhooks = FaultServer::start(Mode::Ok).await;
    let llm = FaultServer::start(Mode::Ok).await;
    hayhooks.script([Mode::Status(503)]);
    llm.script([Mode::Status(503)]);
    let mut driver = engine_driver(&hayhooks, &llm);
    ask_and_settle(&mut driver).await;

    let retrieve = request_of(&driver, Kind::Retrieve);
    assert_eq!(retrieve.outcome(), Some(&Outcome::Completed));
    let chat = request_of(&driver, Kind::Chat);
    assert_eq!(chat.outcome(), Some(&Outcome::Completed));
    for request in [&retrieve, &chat] {
        assert!(
            request
                .timeline
                .iter()
                .any(|t| t.text().starts_with("retry 1 in") && t.text().contains("HTTP 503")),
            "{:?}",
            request.timeline
        );
    }
    assert_eq!((hayhooks.requests(), llm.requests()), (2, 2));
    let reply = driver
        .engine
        .conversation(C)
        .expect("conversation C")
        .messages
        .last()
        .expect("reply");
    assert_eq!(reply.status, MessageStatus::Done);
    assert_eq!(reply.text, "Hello, world!");
    assert_eq!(reply.passages.len(), 3);
    assert_eq!(reply.passages[0].source, "lore/waystone.md");
    assert_eq!(reply.no_lore, None);
}

#[tokio::test]
async fn engine_keeps_partial_text_when_a_stream_ends_early() {
    let hayhooks = FaultServer::start(Mode::Ok).await;
    let llm = FaultServer::start(Mode::EarlyEof).await;
    let mut driver = engine_driver(&hayhooks, &llm);
    ask_and_settle(&mut driver).await;

    let reply = driver
        .engine
        .conversation(C)
        .expect("conversation C")
        .messages
        .last()
        .expect("reply");
    assert_eq!(reply.text, TOKENS[..2].concat(), "partial text kept");
    match &reply.status {
        MessageStatus::Failed(reason) => assert!(reason.contains("incomplete"), "{reason}"),
        other => panic!("expected a failed reply, got {other:?}"),
    }
    assert!(matches!(
        request_of(&driver, Kind::Chat).outcome(),
        Some(Outcome::Failed(reason)) if reason.contains("incomplete")
    ));
    assert_eq!(llm.requests(), 1, "streamed output is never retried");
}

#[tokio::test]
async fn engine_cancel_closes_the_streaming_connection() {
    let hayhooks = FaultServer::start(Mode::Ok).await;
    let llm = FaultServer::start(Mode::Drip {
        gap: Duration::from_millis(50),
        count: 200,
    })
    .await;
    let mut driver = engine_driver(&hayhooks, &llm);
    driver.apply(Input::Command(Command::Ask {
        conversation: C,
        text: "who guards the waystone?".into(),
        tag: None,
    }));
    tokio::time::timeout(
        Duration::from_secs(2),
        driver.run_until(|e| {
            e.conversation(C)
                .expect("conversation C")
                .messages
                .last()
                .is_some_and(|m| !m.text.is_empty())
        }),
    )
    .await
    .expect("a first token arrives");
    assert_eq!(llm.disconnects(), 0);
    driver.apply(Input::Command(Command::CancelRunning { conversation: C }));
    assert!(
        llm.wait_disconnects(1, Duration::from_secs(1)).await,
        "the server saw the connection close within 1 s"
    );
    tokio::time::timeout(Duration::from_secs(2), driver.run_until(|e| !e.is_busy()))
        .await
        .expect("the engine settles");
    let reply = driver
        .engine
        .conversation(C)
        .expect("conversation C")
        .messages
        .last()
        .expect("reply");
    assert_eq!(reply.status, MessageStatus::Cancelled);
    assert!(reply.text.starts_with(&drip_token(0)), "{}", reply.text);
    assert_eq!(
        request_of(&driver, Kind::Chat).outcome(),
        Some(&Outcome::Cancelled)
    );
    assert_eq!(llm.requests(), 1);
}
