//! OpenAI-compatible backends (OpenAI, vLLM, llama.cpp server, LiteLLM, LM
//! Studio, ...): streaming chat over `POST {base}/chat/completions` (SSE) and
//! batched embeddings over `POST {base}/embeddings`.
//!
//! Invariants: a chat stream yields only non-empty content deltas, and ends
//! cleanly only after `[DONE]` or a `finish_reason`; anything else that ends
//! it is an `Err` item (`stream ended early (incomplete)` when it just
//! stops). Embeddings come back one per input text, in input order, all of
//! one dimension, all finite. Nothing here sleeps or retries.

use std::fmt;
use std::sync::Arc;

use eventsource_stream::{EventStreamError, Eventsource};
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream};
use futures::{FutureExt, Stream, StreamExt};
use reqwest::Url;
use serde_json::{Value, json};

use super::http::{
    ApiKey, capped_stream, endpoint, in_band_error, incomplete, log_label, malformed_chunk,
    parse_http_url, read_capped, redact_secrets, send, shorten, utf8_lossy, with_bearer,
};
use super::{ChatModel, Chunk, Embedder, Usage};
use crate::domain::{BackendError, GenerationTask};
use crate::prompts::Prompts;
use crate::sanitize::one_line;

/// Sampling settings sent with every generation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenParams {
    /// `None`: the server's default.
    pub temperature: Option<f32>,
    pub max_tokens: u32,
}

/// Streaming chat against an OpenAI-compatible server.
pub struct OpenAiChat {
    client: reqwest::Client,
    url: Url,
    model: String,
    api_key: Option<ApiKey>,
    params: GenParams,
    prompts: Arc<Prompts>,
    max_body_bytes: u64,
}

impl fmt::Debug for OpenAiChat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiChat")
            .field("url", &log_label(&self.url))
            .field("model", &self.model)
            .field("api_key", &self.api_key)
            .field("params", &self.params)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl OpenAiChat {
    pub fn new(
        client: reqwest::Client,
        base_url: &str,
        model: &str,
        api_key: Option<ApiKey>,
        params: GenParams,
        prompts: Arc<Prompts>,
        max_body_bytes: u64,
    ) -> Result<Self, BackendError> {
        let base = parse_http_url("OpenAI-compatible", base_url)?;
        Ok(Self {
            client,
            url: endpoint(&base, &["chat", "completions"])?,
            model: model.to_string(),
            api_key,
            params,
            prompts,
            max_body_bytes,
        })
    }

    /// The request body, serialized straight from borrowed fields (no
    /// `serde_json::Value` tree in between). Keys are in the order the
    /// `json!` object this replaced wrote them (alphabetical), and the
    /// temperature is widened to `f64` as it was, so the bytes sent are the
    /// same.
    fn body(&self, task: &GenerationTask) -> Result<Vec<u8>, BackendError> {
        let messages = self.prompts.messages(task);
        let body = ChatBody {
            max_tokens: self.params.max_tokens,
            messages: messages
                .iter()
                .map(|m| BodyMessage {
                    content: &m.content,
                    role: m.role,
                })
                .collect(),
            model: &self.model,
            stream: true,
            temperature: self.params.temperature.map(f64::from),
        };
        serde_json::to_vec(&body)
            .map_err(|e| BackendError::permanent(format!("cannot encode the request: {e}")))
    }
}

/// A chat completion request body (see [`OpenAiChat::body`]).
#[derive(serde::Serialize)]
struct ChatBody<'a> {
    max_tokens: u32,
    messages: Vec<BodyMessage<'a>>,
    model: &'a str,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
}

#[derive(serde::Serialize)]
struct BodyMessage<'a> {
    content: &'a str,
    role: &'a str,
}

impl ChatModel for OpenAiChat {
    fn generate(&self, task: GenerationTask) -> BoxStream<'static, Result<Chunk, BackendError>> {
        let body = match self.body(&task) {
            Ok(body) => body,
            Err(error) => return stream::iter([Err(error)]).boxed(),
        };
        let req = with_bearer(
            self.client
                .post(self.url.clone())
                .header(reqwest::header::ACCEPT, "text/event-stream")
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body),
            self.api_key.as_ref(),
        );
        let key = self.api_key.clone();
        let cap = self.max_body_bytes;
        tracing::debug!(url = %log_label(&self.url), model = %self.model, "openai chat request");
        let opened = async move {
            match send(req, key.as_ref()).await {
                Ok(resp) => sse_tokens(capped_stream(resp, cap), key).boxed(),
                Err(error) => stream::iter([Err(error)]).boxed(),
            }
        };
        stream::once(opened).flatten().boxed()
    }
}

/// The content deltas of an OpenAI SSE body (already capped), and the
/// token usage of a chunk that carries one (up to the `finish_reason`: a
/// trailing usage chunk after it is not waited for).
pub fn sse_tokens<S, B>(
    body: S,
    key: Option<ApiKey>,
) -> impl Stream<Item = Result<Chunk, BackendError>> + Send + 'static
where
    S: Stream<Item = Result<B, BackendError>> + Send + 'static,
    B: AsRef<[u8]> + Send + 'static,
{
    struct State<E> {
        events: E,
        key: Option<ApiKey>,
        /// A `finish_reason` arrived: the stream is complete.
        finished: bool,
        /// Usage that came in the same chunk as text: sent next.
        queued: Option<Usage>,
    }
    let state = State {
        events: utf8_lossy(body).eventsource().boxed(),
        key,
        finished: false,
        queued: None,
    };
    stream::unfold(Some(state), |state| async move {
        let mut st = state?;
        if let Some(usage) = st.queued.take() {
            return Some((Ok(Chunk::Usage(usage)), Some(st)));
        }
        if st.finished {
            return None;
        }
        loop {
            let event = match st.events.next().await {
                None if st.finished => return None,
                None => return Some((Err(incomplete()), None)),
                Some(Err(e)) => return Some((Err(event_error(e)), None)),
                Some(Ok(event)) => event,
            };
            let data = event.data.trim();
            if data == "[DONE]" {
                return None;
            }
            if data.is_empty() {
                continue;
            }
            if event.event == "error" {
                let error = serde_json::from_str::<Value>(data)
                    .ok()
                    .and_then(|v| in_band_error(&v, st.key.as_ref()))
                    .unwrap_or_else(|| {
                        BackendError::transient(format!(
                            "server error: {}",
                            shorten(&redact_secrets(&one_line(data), st.key.as_ref()), 300)
                        ))
                    });
                return Some((Err(error), None));
            }
            let step = match fast_chunk(data, &mut st.finished) {
                Some(step) => step,
                None => match general_chunk(data, &mut st.finished, st.key.as_ref()) {
                    Ok(step) => step,
                    Err(error) => return Some((Err(error), None)),
                },
            };
            match step {
                Step::Emit(Chunk::Text(text), usage) => {
                    st.queued = usage;
                    return Some((Ok(Chunk::Text(text)), Some(st)));
                }
                Step::Emit(usage, _) => return Some((Ok(usage), Some(st))),
                // A finish_reason ends the reply: nothing after it is needed
                // (and a server that then hangs cannot stall a done reply).
                Step::End => return None,
                Step::Skip => {}
            }
        }
    })
}

/// What one data event of a chat stream means.
#[derive(Debug, PartialEq)]
enum Step {
    /// Send this chunk; a usage that came with text goes next.
    Emit(Chunk, Option<Usage>),
    /// The reply is complete.
    End,
    /// Nothing to send: read the next event.
    Skip,
}

/// A stream chunk read into typed fields: fields not read are skipped
/// without being built.
#[derive(serde::Deserialize)]
struct FastChunk {
    #[serde(default)]
    choices: Option<Vec<Object<FastChoice>>>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct FastChoice {
    #[serde(default)]
    index: Option<Value>,
    #[serde(default)]
    finish_reason: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    delta: Option<Object<FastDelta>>,
}

#[derive(serde::Deserialize)]
struct FastDelta {
    #[serde(default)]
    content: Option<String>,
}

/// `T` read from a JSON object only (a derived struct also accepts an
/// array of its fields in order, which the general path reads as nothing).
struct Object<T>(T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Only<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Only<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(Only(std::marker::PhantomData))
            .map(Object)
    }
}

/// The common case of [`sse_tokens`] without a `serde_json::Value` tree:
/// `None` when the chunk is not of the usual shape (not JSON, not an
/// object, a field of another type, a duplicate key, an in-band error),
/// and the caller reads it the general way, which gives the same answer
/// for every chunk this accepts (but one: a number beyond `f64` or a lone
/// surrogate in a field neither path reads is skipped here, where the
/// general path refuses the chunk as malformed). Sets `finished` on a
/// `finish_reason`.
fn fast_chunk(data: &str, finished: &mut bool) -> Option<Step> {
    let Object(chunk) = serde_json::from_str::<Object<FastChunk>>(data).ok()?;
    if chunk.error.is_some() {
        return None;
    }
    let usage = chunk.usage.as_ref().and_then(usage_in);
    let mut choices = chunk.choices.unwrap_or_default();
    let at = choices
        .iter()
        .position(|Object(c)| c.index.as_ref().and_then(Value::as_u64) == Some(0))
        .or_else(|| (!choices.is_empty()).then_some(0));
    let Some(Object(choice)) = at.map(|at| choices.swap_remove(at)) else {
        return Some(match usage {
            Some(usage) => Step::Emit(Chunk::Usage(usage), None),
            None => Step::Skip,
        });
    };
    if choice.finish_reason.is_some() {
        *finished = true;
    }
    let content = choice
        .delta
        .and_then(|Object(d)| d.content)
        .filter(|c| !c.is_empty());
    Some(match (content, usage) {
        (Some(text), usage) => Step::Emit(Chunk::Text(text), usage),
        (None, Some(usage)) => Step::Emit(Chunk::Usage(usage), None),
        (None, None) if *finished => Step::End,
        (None, None) => Step::Skip,
    })
}

/// One data event read as a `serde_json::Value`: any chunk, including an
/// in-band error (`Err`). Sets `finished` on a `finish_reason`.
fn general_chunk(
    data: &str,
    finished: &mut bool,
    key: Option<&ApiKey>,
) -> Result<Step, BackendError> {
    let value: Value = serde_json::from_str(data).map_err(|e| malformed_chunk(&e.to_string()))?;
    if let Some(error) = in_band_error(&value, key) {
        return Err(error);
    }
    let choice = value
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|choices| {
            choices
                .iter()
                .find(|c| c.get("index").and_then(Value::as_u64) == Some(0))
                .or_else(|| choices.first())
        });
    let usage = usage_of(&value);
    let Some(choice) = choice else {
        // A usage chunk (choices empty) or something else to skip.
        return Ok(match usage {
            Some(usage) => Step::Emit(Chunk::Usage(usage), None),
            None => Step::Skip,
        });
    };
    if choice.get("finish_reason").is_some_and(|r| !r.is_null()) {
        *finished = true;
    }
    let content = choice
        .get("delta")
        .and_then(|d| d.get("content"))
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    Ok(match (content, usage) {
        (Some(text), usage) => Step::Emit(Chunk::Text(text), usage),
        (None, Some(usage)) => Step::Emit(Chunk::Usage(usage), None),
        (None, None) if *finished => Step::End,
        (None, None) => Step::Skip,
    })
}

/// An OpenAI `usage` object's counts, when the chunk has one.
fn usage_of(value: &Value) -> Option<Usage> {
    usage_in(value.get("usage")?)
}

/// The counts of a `usage` value, when it is an object with any.
fn usage_in(usage: &Value) -> Option<Usage> {
    let usage = Some(usage).filter(|u| u.is_object())?;
    let count = |key: &str| usage.get(key).and_then(Value::as_u64);
    let usage = Usage {
        input_tokens: count("prompt_tokens"),
        output_tokens: count("completion_tokens"),
    };
    (usage != Usage::default()).then_some(usage)
}

fn event_error(error: EventStreamError<BackendError>) -> BackendError {
    match error {
        EventStreamError::Transport(e) => e,
        EventStreamError::Utf8(_) => BackendError::permanent("stream is not valid UTF-8"),
        EventStreamError::Parser(_) => malformed_chunk("not a server-sent event"),
    }
}

/// Batched embeddings against an OpenAI-compatible server.
pub struct OpenAiEmbedder {
    client: reqwest::Client,
    url: Url,
    model: String,
    api_key: Option<ApiKey>,
    batch_size: usize,
    max_body_bytes: u64,
}

impl fmt::Debug for OpenAiEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiEmbedder")
            .field("url", &log_label(&self.url))
            .field("model", &self.model)
            .field("api_key", &self.api_key)
            .field("batch_size", &self.batch_size)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl OpenAiEmbedder {
    pub fn new(
        client: reqwest::Client,
        base_url: &str,
        model: &str,
        api_key: Option<ApiKey>,
        batch_size: usize,
        max_body_bytes: u64,
    ) -> Result<Self, BackendError> {
        let base = parse_http_url("OpenAI-compatible embeddings", base_url)?;
        if batch_size == 0 {
            return Err(BackendError::permanent(
                "embedding batch size must be at least 1",
            ));
        }
        Ok(Self {
            client,
            url: endpoint(&base, &["embeddings"])?,
            model: model.to_string(),
            api_key,
            batch_size,
            max_body_bytes,
        })
    }
}

impl Embedder for OpenAiEmbedder {
    fn embed(&self, texts: Vec<String>) -> BoxFuture<'static, Result<Vec<Vec<f32>>, BackendError>> {
        let client = self.client.clone();
        let url = self.url.clone();
        let model = self.model.clone();
        let key = self.api_key.clone();
        let batch_size = self.batch_size;
        let cap = self.max_body_bytes;
        async move {
            reject_empty(&texts)?;
            let mut out: Vec<Vec<f32>> = Vec::with_capacity(texts.len());
            for batch in texts.chunks(batch_size) {
                tracing::debug!(url = %log_label(&url), model = %model, n = batch.len(), "openai embeddings request");
                let req = with_bearer(
                    client
                        .post(url.clone())
                        .json(&json!({ "model": model, "input": batch })),
                    key.as_ref(),
                );
                let resp = send(req, key.as_ref()).await?;
                let body = read_capped(resp, cap).await?;
                let value: Value = serde_json::from_slice(&body)
                    .map_err(|e| malformed_response(&e.to_string()))?;
                if let Some(error) = in_band_error(&value, key.as_ref()) {
                    return Err(error);
                }
                let vectors = openai_vectors(&value, batch.len())?;
                out.extend(vectors);
            }
            check_dimensions(&out)?;
            Ok(out)
        }
        .boxed()
    }
}

/// Empty texts are refused before any call: servers reject them anyway, and
/// the whole batch with them.
pub(crate) fn reject_empty(texts: &[String]) -> Result<(), BackendError> {
    match texts.iter().position(|t| t.trim().is_empty()) {
        Some(i) => Err(BackendError::permanent(format!(
            "cannot embed an empty text (input {})",
            i + 1
        ))),
        None => Ok(()),
    }
}

pub(crate) fn malformed_response(detail: &str) -> BackendError {
    BackendError::permanent(format!(
        "malformed response: {}",
        shorten(&one_line(detail), 120)
    ))
}

/// `{"data": [{"index", "embedding"}]}` -> vectors in input order.
fn openai_vectors(value: &Value, expected: usize) -> Result<Vec<Vec<f32>>, BackendError> {
    let data = value
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed_response("no `data` array"))?;
    if data.len() != expected {
        return Err(malformed_response(&format!(
            "{} embeddings for {expected} inputs",
            data.len()
        )));
    }
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; expected];
    for (position, item) in data.iter().enumerate() {
        let index = match item.get("index") {
            None => position,
            Some(v) => v
                .as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .ok_or_else(|| malformed_response("an embedding `index` is not a number"))?,
        };
        let slot = slots
            .get_mut(index)
            .ok_or_else(|| malformed_response(&format!("embedding index {index} out of range")))?;
        if slot.is_some() {
            return Err(malformed_response(&format!(
                "embedding index {index} appears twice"
            )));
        }
        *slot = Some(vector(item.get("embedding"))?);
    }
    // Every slot is filled: `expected` distinct in-range indices.
    Ok(slots.into_iter().flatten().collect())
}

/// One JSON array of finite numbers -> a vector.
pub(crate) fn vector(value: Option<&Value>) -> Result<Vec<f32>, BackendError> {
    let items = value
        .and_then(Value::as_array)
        .ok_or_else(|| malformed_response("an embedding is not an array of numbers"))?;
    items
        .iter()
        .map(|n| {
            n.as_f64()
                .map(|f| f as f32)
                .filter(|f| f.is_finite())
                .ok_or_else(|| {
                    malformed_response("an embedding holds a value that is not a finite number")
                })
        })
        .collect()
}

/// All vectors non-empty and of one dimension.
pub(crate) fn check_dimensions(vectors: &[Vec<f32>]) -> Result<(), BackendError> {
    let Some(first) = vectors.first() else {
        return Ok(());
    };
    if first.is_empty() {
        return Err(malformed_response("an embedding is empty"));
    }
    if let Some(other) = vectors.iter().find(|v| v.len() != first.len()) {
        return Err(malformed_response(&format!(
            "embeddings of different dimensions ({} and {})",
            first.len(),
            other.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(
        parts: &[&str],
    ) -> impl Stream<Item = Result<Vec<u8>, BackendError>> + Send + 'static {
        let owned: Vec<Result<Vec<u8>, BackendError>> =
            parts.iter().map(|p| Ok(p.as_bytes().to_vec())).collect();
        stream::iter(owned)
    }

    async fn collect(parts: &[&str]) -> Vec<Result<String, BackendError>> {
        sse_tokens(chunks(parts), None)
            .filter_map(|item| async move {
                match item {
                    Ok(Chunk::Text(text)) => Some(Ok(text)),
                    Ok(Chunk::Usage(_)) => None,
                    Err(e) => Some(Err(e)),
                }
            })
            .collect()
            .await
    }

    #[tokio::test]
    async fn usage_in_a_chunk_is_reported_after_its_text() {
        let out: Vec<_> = sse_tokens(
            chunks(&[
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"!\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":2}}\n\n",
                "data: [DONE]\n\n",
            ]),
            None,
        )
        .collect()
        .await;
        let usage = Usage {
            input_tokens: Some(12),
            output_tokens: Some(2),
        };
        assert_eq!(
            out,
            vec![
                Ok(Chunk::Text("Hi".into())),
                Ok(Chunk::Text("!".into())),
                Ok(Chunk::Usage(usage)),
            ]
        );
    }

    #[tokio::test]
    async fn sse_yields_content_and_ends_at_done() {
        let out = collect(&[
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n",
            ": ping\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":\ndata: {\"content\":\"lo\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        ])
        .await;
        assert_eq!(out, vec![Ok("Hel".to_string()), Ok("lo".to_string())]);
    }

    #[tokio::test]
    async fn sse_split_at_any_byte_decodes_the_same() {
        let body = concat!(
            ": ping\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"caf\u{e9} \"}}]}\r\n\r\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"\u{1f980}\"}}]}\n\n",
            "data: [DONE]\n\n"
        );
        for size in 1..=9 {
            let parts: Vec<Result<Vec<u8>, BackendError>> = body
                .as_bytes()
                .chunks(size)
                .map(|c| Ok(c.to_vec()))
                .collect();
            let out: Vec<_> = sse_tokens(stream::iter(parts), None).collect().await;
            assert_eq!(
                out,
                vec![
                    Ok(Chunk::Text("caf\u{e9} ".to_string())),
                    Ok(Chunk::Text("\u{1f980}".to_string()))
                ],
                "chunk size {size}"
            );
        }
    }

    #[test]
    fn the_fast_path_reads_every_chunk_it_accepts_as_the_general_path_does() {
        let cases = [
            r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#,
            r#"{"choices":[{"index":1,"delta":{"content":"b"}},{"index":0,"delta":{"content":"a"}}]}"#,
            r#"{"choices":[{"index":"0","delta":{"content":"first"}},{"delta":{"content":"x"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"caf\u00e9 \"q\""}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":null,"finish_reason":"length"}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":null}}],"usage":{"prompt_tokens":3}}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":2}}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":2}}"#,
            r#"{"choices":[],"usage":{}}"#,
            r#"{"choices":null,"usage":null,"error":null}"#,
            r#"{"id":"c1","object":"chat.completion.chunk","x":[1,{"y":2}],"choices":[{"index":0,"logprobs":null,"delta":{"role":"assistant","content":"ok"}}]}"#,
            r#"{"usage":[1]}"#,
        ];
        // Shapes the fast path leaves to the general one.
        let left = [
            r#"{"error":{"message":"overloaded","type":"server_error"}}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"a"}}],"choices":[]}"#,
            r#"{"choices":[[0,null,{"content":"x"}]]}"#,
            r#"[[{"delta":{"content":"x"}}]]"#,
            r#"{"choices":[{"index":0,"delta":"text"}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":["a"]}}]}"#,
            r#"{"choices":[null]}"#,
            r#"{"choices":{"index":0}}"#,
            r#"{oops"#,
            r#"7"#,
        ];
        for data in cases {
            for was_finished in [false, true] {
                let (mut fast_finished, mut general_finished) = (was_finished, was_finished);
                let general = general_chunk(data, &mut general_finished, None);
                let fast = fast_chunk(data, &mut fast_finished);
                assert_eq!(
                    fast.as_ref().ok_or(()),
                    general.as_ref().map_err(|_| ()),
                    "{data}"
                );
                assert_eq!(fast_finished, general_finished, "{data}");
            }
        }
        for data in left {
            let mut finished = false;
            assert_eq!(fast_chunk(data, &mut finished), None, "{data}");
            assert!(!finished, "{data}");
        }
        let mut finished = false;
        assert_eq!(
            fast_chunk(
                r#"{"choices":[{"index":1,"delta":{"content":"b"}},{"index":0,"delta":{"content":"a"}}]}"#,
                &mut finished
            ),
            Some(Step::Emit(Chunk::Text("a".into()), None))
        );
    }

    #[tokio::test]
    async fn sse_without_end_marker_is_incomplete() {
        let out = collect(&["data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"]).await;
        assert_eq!(out, vec![Ok("a".to_string()), Err(incomplete())]);
    }

    #[tokio::test]
    async fn sse_bad_json_is_permanent() {
        let out = collect(&["data: {oops\n\n"]).await;
        assert_eq!(out.len(), 1);
        let err = out[0].clone().expect_err("malformed");
        assert_eq!(err.class, crate::domain::ErrorClass::Permanent);
        assert!(
            err.message.starts_with("malformed stream chunk"),
            "{}",
            err.message
        );
    }

    #[test]
    fn vectors_are_ordered_and_validated() {
        let v = json!({"data": [
            {"index": 1, "embedding": [3.0, 4.0]},
            {"index": 0, "embedding": [1.0, 2.0]}
        ]});
        assert_eq!(
            openai_vectors(&v, 2).expect("ok"),
            vec![vec![1.0, 2.0], vec![3.0, 4.0]]
        );
        let dup = json!({"data": [
            {"index": 0, "embedding": [1.0]},
            {"index": 0, "embedding": [1.0]}
        ]});
        assert!(openai_vectors(&dup, 2).is_err());
        let big = json!({"data": [{"index": 0, "embedding": [1e300]}]});
        assert!(openai_vectors(&big, 1).is_err());
        assert!(check_dimensions(&[vec![1.0], vec![1.0, 2.0]]).is_err());
        assert!(reject_empty(&["a".into(), " ".into()]).is_err());
    }
}
