//! A loopback fault server for backend tests: axum on `127.0.0.1:0`,
//! spawned on the test's own tokio runtime, speaking the OpenAI-compatible
//! API (`/v1/chat/completions`, `/v1/embeddings`), Ollama (`/api/chat`,
//! `/api/embed`) and Hayhooks (`/hayhooks/run`, or any path ending `/run`).
//!
//! Each request takes the next [`Mode`] from a script (then the default
//! mode), so a test chooses exactly what the server does: answer, hang,
//! fail with a status, break a stream in one of many ways. The server counts
//! requests, records what it was sent, and counts responses whose body was
//! dropped before it finished (a drop guard inside every body stream): that
//! is how a test sees the client close its connection.

#![allow(dead_code)] // each test binary uses a part of it

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;
use futures::stream;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// The tokens every chat endpoint sends in `Mode::Ok`.
pub const TOKENS: [&str; 4] = ["Hello", ", wor", "ld", "!"];
/// What `Mode::SplitUtf8` streams: multi-byte characters, each cut between
/// two body chunks.
pub const UTF8_TOKENS: [&str; 3] = ["caf\u{e9}", " \u{1f980} ", "\u{9f8d}!"];

/// What the server does with one request.
#[derive(Debug, Clone)]
pub enum Mode {
    /// A correct answer for the endpoint.
    Ok,
    /// Never answer (not even headers).
    Hang,
    /// Wait, then answer correctly.
    Slow(Duration),
    /// This status with a JSON error body `{"error":{"message":"injected <code>"}}`.
    Status(u16),
    /// This status with this raw body (e.g. escape sequences, FastAPI detail).
    StatusBody(u16, String),
    /// This status, a `Retry-After` header with this value, a JSON error.
    RetryAfter(u16, String),
    /// 401 whose error message quotes the request's `Authorization` header.
    EchoAuth,
    /// 200 with this JSON body (generic shapes for the retriever).
    Json(Value),
    /// Headers and part of the body, then the body stream fails: the
    /// connection is cut without the chunked terminator.
    ResetMidStream,
    /// Part of the answer, then a clean end without `[DONE]` / `done`.
    EarlyEof,
    /// A chunk (or body) that is not JSON.
    Malformed,
    /// 200 carrying an error object (after one token for streams).
    ErrorObject,
    /// The `UTF8_TOKENS` answer with every multi-byte character cut in
    /// two between body chunks, 30 ms apart.
    SplitUtf8,
    /// A token holding a byte that is not UTF-8 (0xFF), then the end.
    InvalidUtf8,
    /// The answer in chunks of `size` bytes, `gap` apart. For Ollama the
    /// last line has no trailing newline.
    Split { size: usize, gap: Duration },
    /// `: ping` comments between events; ends at `[DONE]` with no
    /// `finish_reason`.
    Ping,
    /// Events whose JSON spans several `data:` lines.
    MultiLine,
    /// `count` tokens, `gap` apart (`"t0 "`, `"t1 "`, ...), then the end.
    Drip { gap: Duration, count: usize },
    /// A correct-looking answer of at least this many bytes.
    Huge(usize),
    /// A redirect to `location`.
    Redirect { status: u16, location: String },
}

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
}

#[derive(Debug)]
struct Shared {
    script: Mutex<VecDeque<Mode>>,
    default: Mutex<Mode>,
    requests: AtomicUsize,
    /// Response bodies dropped before their end (client went away).
    disconnects: AtomicUsize,
    /// Handlers dropped while hanging (client went away before headers).
    hangs_dropped: AtomicUsize,
    recorded: Mutex<Vec<Recorded>>,
}

/// A running fault server. Dropping it stops accepting connections.
#[derive(Debug)]
pub struct FaultServer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FaultServer {
    /// Bind an ephemeral loopback port and serve on the current runtime.
    pub async fn start(default: Mode) -> FaultServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(default),
            requests: AtomicUsize::new(0),
            disconnects: AtomicUsize::new(0),
            hangs_dropped: AtomicUsize::new(0),
            recorded: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FaultServer {
            base: format!("http://{addr}"),
            addr,
            shared,
            task,
        }
    }

    /// The next requests get these modes, in order; then the default.
    pub fn script(&self, modes: impl IntoIterator<Item = Mode>) {
        self.shared
            .script
            .lock()
            .expect("script lock")
            .extend(modes);
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.default.lock().expect("mode lock") = mode;
    }

    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    pub fn disconnects(&self) -> usize {
        self.shared.disconnects.load(Ordering::SeqCst)
    }

    pub fn hangs_dropped(&self) -> usize {
        self.shared.hangs_dropped.load(Ordering::SeqCst)
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.shared.recorded.lock().expect("recorded lock").clone()
    }

    /// Wait (bounded) until `at_least` response bodies were dropped early.
    pub async fn wait_disconnects(&self, at_least: usize, within: Duration) -> bool {
        eventually(within, || self.disconnects() >= at_least).await
    }

    /// Wait (bounded) until `at_least` hanging handlers were dropped because
    /// their client went away.
    pub async fn wait_hangs_dropped(&self, at_least: usize, within: Duration) -> bool {
        eventually(within, || self.hangs_dropped() >= at_least).await
    }

    /// Stop accepting connections (open ones end with the runtime).
    pub fn shutdown(self) {
        self.task.abort();
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Poll `condition` every 10 ms until it holds or `within` has passed.
pub async fn eventually(within: Duration, condition: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    condition()
}

/// A base URL nobody listens on: bind an ephemeral port, then free it.
pub fn refused_base() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

/// Which API a path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    OpenAiChat,
    OpenAiEmbed,
    OllamaChat,
    OllamaEmbed,
    Hayhooks,
}

fn api_for(path: &str) -> Option<Api> {
    if path.ends_with("/chat/completions") {
        Some(Api::OpenAiChat)
    } else if path.ends_with("/embeddings") {
        Some(Api::OpenAiEmbed)
    } else if path.ends_with("/api/chat") {
        Some(Api::OllamaChat)
    } else if path.ends_with("/api/embed") {
        Some(Api::OllamaEmbed)
    } else if path.ends_with("/run") {
        Some(Api::Hayhooks)
    } else {
        None
    }
}

/// Counts a hanging handler dropped by the server (the client left).
struct HangGuard(Arc<Shared>);

impl Drop for HangGuard {
    fn drop(&mut self) {
        self.0.hangs_dropped.fetch_add(1, Ordering::SeqCst);
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let path = uri.path().to_string();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared
        .recorded
        .lock()
        .expect("recorded lock")
        .push(Recorded {
            path: path.clone(),
            authorization: authorization.clone(),
            body: request.clone(),
        });
    let mode = {
        let next = shared.script.lock().expect("script lock").pop_front();
        match next {
            Some(mode) => mode,
            None => shared.default.lock().expect("mode lock").clone(),
        }
    };
    let Some(api) = api_for(&path) else {
        return plain(404, "application/json", r#"{"error":"no such endpoint"}"#);
    };
    match mode {
        Mode::Hang => {
            let _guard = HangGuard(shared.clone());
            std::future::pending::<()>().await;
            plain(500, "text/plain", "unreachable")
        }
        Mode::Slow(delay) => {
            tokio::time::sleep(delay).await;
            respond(&shared, api, &request, Mode::Ok)
        }
        Mode::EchoAuth => {
            let echoed = authorization.unwrap_or_default();
            let body = json!({"error": {
                "message": format!("Incorrect API key provided: {echoed}"),
                "type": "invalid_request_error",
            }});
            plain(401, "application/json", &body.to_string())
        }
        other => respond(&shared, api, &request, other),
    }
}

fn plain(status: u16, content_type: &str, body: &str) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body.to_string()))
        .expect("response")
}

/// One step of a planned body.
#[derive(Debug, Clone)]
enum Step {
    Wait(Duration),
    Bytes(Vec<u8>),
    /// Fail the body stream: the server cuts the connection.
    Fail,
}

/// Marks a body complete when its stream ends; counts a disconnect when it
/// is dropped before that.
struct BodyGuard {
    shared: Arc<Shared>,
    complete: bool,
}

impl BodyGuard {
    fn finish(&mut self) {
        self.complete = true;
    }
}

impl Drop for BodyGuard {
    fn drop(&mut self) {
        if !self.complete {
            self.shared.disconnects.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn planned_body(shared: &Arc<Shared>, steps: Vec<Step>) -> Body {
    let guard = BodyGuard {
        shared: shared.clone(),
        complete: false,
    };
    let stream = stream::unfold(
        (VecDeque::from(steps), guard),
        |(mut steps, mut guard)| async move {
            loop {
                match steps.pop_front() {
                    None => {
                        guard.finish();
                        return None;
                    }
                    Some(Step::Wait(d)) => tokio::time::sleep(d).await,
                    Some(Step::Bytes(b)) => {
                        return Some((Ok::<Bytes, std::io::Error>(Bytes::from(b)), (steps, guard)));
                    }
                    Some(Step::Fail) => {
                        // The failure ends the body on purpose: not a disconnect.
                        guard.finish();
                        return Some((
                            Err(std::io::Error::other("injected reset")),
                            (steps, guard),
                        ));
                    }
                }
            }
        },
    );
    Body::from_stream(stream)
}

fn streamed(
    shared: &Arc<Shared>,
    status: u16,
    content_type: &str,
    headers: &[(&str, String)],
    steps: Vec<Step>,
) -> Response {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, content_type);
    for (name, value) in headers {
        builder = builder.header(*name, value.as_str());
    }
    builder.body(planned_body(shared, steps)).expect("response")
}

fn whole(text: impl Into<Vec<u8>>) -> Vec<Step> {
    vec![Step::Bytes(text.into())]
}

/// Cut `bytes` into pieces of `size`, `gap` apart.
fn split(bytes: &[u8], size: usize, gap: Duration) -> Vec<Step> {
    let mut steps = Vec::new();
    for piece in bytes.chunks(size.max(1)) {
        if !steps.is_empty() {
            steps.push(Step::Wait(gap));
        }
        steps.push(Step::Bytes(piece.to_vec()));
    }
    steps
}

/// Cut `bytes` in the middle of every multi-byte character.
fn split_mid_chars(text: &str, gap: Duration) -> Vec<Step> {
    let bytes = text.as_bytes();
    let mut cuts: Vec<usize> = text
        .char_indices()
        .filter(|(_, c)| c.len_utf8() > 1)
        .map(|(i, _)| i + 1)
        .collect();
    cuts.push(bytes.len());
    let mut steps = Vec::new();
    let mut start = 0;
    for cut in cuts {
        if !steps.is_empty() {
            steps.push(Step::Wait(gap));
        }
        steps.push(Step::Bytes(bytes[start..cut].to_vec()));
        start = cut;
    }
    steps
}

// ----- OpenAI SSE ---------------------------------------------------------------

fn sse(value: &Value) -> String {
    format!("data: {value}\n\n")
}

fn sse_role() -> String {
    sse(
        &json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]}),
    )
}

fn sse_token(text: &str) -> String {
    sse(
        &json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]}),
    )
}

fn sse_finish() -> String {
    sse(&json!({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
}

fn sse_usage() -> String {
    sse(
        &json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}}),
    )
}

const SSE_DONE: &str = "data: [DONE]\n\n";

fn sse_answer(tokens: &[&str]) -> String {
    let mut body = sse_role();
    for t in tokens {
        body.push_str(&sse_token(t));
    }
    body.push_str(&sse_finish());
    body.push_str(&sse_usage());
    body.push_str(SSE_DONE);
    body
}

// ----- Ollama NDJSON ------------------------------------------------------------

fn nd_token(text: &str) -> String {
    format!(
        "{}\n",
        json!({"model": "m", "created_at": "2024-01-01T00:00:00Z", "message": {"role": "assistant", "content": text}, "done": false})
    )
}

fn nd_done() -> String {
    format!(
        "{}\n",
        json!({"model": "m", "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop", "prompt_eval_count": 26, "eval_count": 4})
    )
}

fn nd_answer(tokens: &[&str]) -> String {
    let mut body: String = tokens.iter().map(|t| nd_token(t)).collect();
    body.push_str(&nd_done());
    body
}

// ----- JSON endpoints -----------------------------------------------------------

fn inputs(request: &Value) -> Vec<String> {
    request
        .get("input")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// `[chars, position, 0.5]` for each input: tests can check the order.
fn vector_for(text: &str, position: usize) -> Value {
    json!([text.chars().count() as f64, position as f64, 0.5])
}

fn openai_embeddings(request: &Value) -> Value {
    let inputs = inputs(request);
    // Reversed on purpose: clients must order by `index`.
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .rev()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": vector_for(t, i)}))
        .collect();
    json!({"object": "list", "data": data, "model": "m"})
}

fn ollama_embeddings(request: &Value) -> Value {
    let vectors: Vec<Value> = inputs(request)
        .iter()
        .enumerate()
        .map(|(i, t)| vector_for(t, i))
        .collect();
    json!({"model": "m", "embeddings": vectors})
}

fn hayhooks_documents(request: &Value) -> Value {
    let query = request.get("query").and_then(Value::as_str).unwrap_or("");
    json!({"result": [
        {"id": "doc-0", "content": format!("Lore about {query} — café"), "score": 0.9,
         "meta": {"source": "lore/waystone.md", "title": "The Waystone", "kind": "place"}},
        {"id": "doc-1", "content": "A warden keeps the road.", "score": 0.7,
         "meta": {"file_path": "/kb/warden.md"}},
        {"id": "doc-2", "content": "No meta at all.", "score": 0.5, "meta": {}},
    ]})
}

fn json_answer(api: Api, request: &Value) -> Value {
    match api {
        Api::OpenAiEmbed => openai_embeddings(request),
        Api::OllamaEmbed => ollama_embeddings(request),
        _ => hayhooks_documents(request),
    }
}

fn respond(shared: &Arc<Shared>, api: Api, request: &Value, mode: Mode) -> Response {
    let streaming = matches!(api, Api::OpenAiChat | Api::OllamaChat);
    let content_type = match api {
        Api::OpenAiChat => "text/event-stream",
        Api::OllamaChat => "application/x-ndjson",
        _ => "application/json",
    };
    let ok_body = |tokens: &[&str]| -> String {
        match api {
            Api::OpenAiChat => sse_answer(tokens),
            Api::OllamaChat => nd_answer(tokens),
            _ => json_answer(api, request).to_string(),
        }
    };
    let error_json = |message: &str| json!({"error": {"message": message, "type": "server_error"}});
    match mode {
        Mode::Ok | Mode::Hang | Mode::Slow(_) | Mode::EchoAuth => {
            streamed(shared, 200, content_type, &[], whole(ok_body(&TOKENS)))
        }
        Mode::Status(code) => {
            let body = error_json(&format!("injected {code}")).to_string();
            streamed(shared, code, "application/json", &[], whole(body))
        }
        Mode::StatusBody(code, body) => {
            streamed(shared, code, "application/json", &[], whole(body))
        }
        Mode::RetryAfter(code, value) => {
            let body = error_json("slow down").to_string();
            streamed(
                shared,
                code,
                "application/json",
                &[("retry-after", value)],
                whole(body),
            )
        }
        Mode::Json(value) => streamed(
            shared,
            200,
            "application/json",
            &[],
            whole(value.to_string()),
        ),
        Mode::ResetMidStream => {
            let first = match api {
                Api::OpenAiChat => format!("{}{}", sse_role(), sse_token(TOKENS[0])),
                Api::OllamaChat => nd_token(TOKENS[0]),
                _ => {
                    let full = ok_body(&TOKENS);
                    full[..full.len() / 2].to_string()
                }
            };
            let steps = vec![
                Step::Bytes(first.into_bytes()),
                Step::Wait(Duration::from_millis(20)),
                Step::Fail,
            ];
            streamed(shared, 200, content_type, &[], steps)
        }
        Mode::EarlyEof => {
            let body = match api {
                Api::OpenAiChat => format!(
                    "{}{}{}",
                    sse_role(),
                    sse_token(TOKENS[0]),
                    sse_token(TOKENS[1])
                ),
                Api::OllamaChat => format!("{}{}", nd_token(TOKENS[0]), nd_token(TOKENS[1])),
                _ => {
                    let full = ok_body(&TOKENS);
                    full[..full.len() / 2].to_string()
                }
            };
            streamed(shared, 200, content_type, &[], whole(body))
        }
        Mode::Malformed => {
            let body = match api {
                Api::OpenAiChat => {
                    format!("{}{}data: {{not json\n\n", sse_role(), sse_token(TOKENS[0]))
                }
                Api::OllamaChat => format!("{}{{not json\n", nd_token(TOKENS[0])),
                _ => "{not json".to_string(),
            };
            streamed(shared, 200, content_type, &[], whole(body))
        }
        Mode::ErrorObject => {
            let message = "model \u{1b}[31moverloaded\u{1b}[0m\nretry later";
            let body = match api {
                Api::OpenAiChat => format!(
                    "{}{}{}",
                    sse_role(),
                    sse_token(TOKENS[0]),
                    sse(&error_json(message))
                ),
                Api::OllamaChat => {
                    format!("{}{}\n", nd_token(TOKENS[0]), json!({"error": message}))
                }
                _ => error_json(message).to_string(),
            };
            streamed(shared, 200, content_type, &[], whole(body))
        }
        Mode::SplitUtf8 => {
            let body = if streaming {
                ok_body(&UTF8_TOKENS)
            } else {
                ok_body(&[])
            };
            streamed(
                shared,
                200,
                content_type,
                &[],
                split_mid_chars(&body, Duration::from_millis(30)),
            )
        }
        Mode::InvalidUtf8 => {
            let body = ok_body(&["bad@@byte"]).into_bytes();
            let mut bytes = Vec::with_capacity(body.len());
            let mut i = 0;
            while i < body.len() {
                if body[i..].starts_with(b"@@") {
                    bytes.push(0xff);
                    i += 2;
                } else {
                    bytes.push(body[i]);
                    i += 1;
                }
            }
            streamed(
                shared,
                200,
                content_type,
                &[],
                split(&bytes, 9, Duration::from_millis(1)),
            )
        }
        Mode::Split { size, gap } => {
            let mut body = ok_body(&TOKENS);
            if api == Api::OllamaChat {
                // The last line without its newline still counts.
                body.pop();
            }
            streamed(
                shared,
                200,
                content_type,
                &[],
                split(body.as_bytes(), size, gap),
            )
        }
        Mode::Ping => {
            let body = match api {
                Api::OpenAiChat => {
                    let mut b = format!(": ping\n\n{}", sse_role());
                    for t in TOKENS {
                        b.push_str(": ping\n\n");
                        b.push_str(&sse_token(t));
                    }
                    b.push_str(": keep-alive\n\n");
                    b.push_str(SSE_DONE);
                    b
                }
                _ => ok_body(&TOKENS),
            };
            streamed(shared, 200, content_type, &[], whole(body))
        }
        Mode::MultiLine => {
            let body = match api {
                Api::OpenAiChat => {
                    let mut b = sse_role();
                    for t in TOKENS {
                        b.push_str(&format!(
                            "data: {{\"choices\":[{{\"index\":0,\ndata: \"delta\":{{\"content\":{}}}}}]}}\n\n",
                            json!(t)
                        ));
                    }
                    b.push_str(&sse_finish());
                    b.push_str(SSE_DONE);
                    b
                }
                _ => ok_body(&TOKENS),
            };
            streamed(shared, 200, content_type, &[], whole(body))
        }
        Mode::Drip { gap, count } => {
            let mut steps = Vec::new();
            if api == Api::OpenAiChat {
                steps.push(Step::Bytes(sse_role().into_bytes()));
            }
            for n in 0..count {
                let token = format!("t{n} ");
                let line = match api {
                    Api::OpenAiChat => sse_token(&token),
                    _ => nd_token(&token),
                };
                steps.push(Step::Bytes(line.into_bytes()));
                steps.push(Step::Wait(gap));
            }
            let end = match api {
                Api::OpenAiChat => format!("{}{SSE_DONE}", sse_finish()),
                _ => nd_done(),
            };
            steps.push(Step::Bytes(end.into_bytes()));
            streamed(shared, 200, content_type, &[], steps)
        }
        Mode::Huge(bytes) => {
            let steps = if streaming {
                let token = "x".repeat(1000);
                let line = match api {
                    Api::OpenAiChat => sse_token(&token),
                    _ => nd_token(&token),
                };
                let mut steps = Vec::new();
                let mut sent = 0;
                while sent < bytes {
                    steps.push(Step::Bytes(line.clone().into_bytes()));
                    sent += line.len();
                }
                steps
            } else {
                let mut value = json_answer(api, request);
                if let Some(obj) = value.as_object_mut() {
                    obj.insert("padding".into(), Value::String("x".repeat(bytes)));
                }
                split(value.to_string().as_bytes(), 16 * 1024, Duration::ZERO)
            };
            streamed(shared, 200, content_type, &[], steps)
        }
        Mode::Redirect { status, location } => streamed(
            shared,
            status,
            "text/plain",
            &[("location", location)],
            whole("moved"),
        ),
    }
}

/// Tokens of `Mode::Drip`, for assertions.
pub fn drip_token(n: usize) -> String {
    format!("t{n} ")
}

/// A wall-clock time `secs` from now, as an HTTP-date.
pub fn http_date_in(secs: u64) -> String {
    httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(secs))
}
