//! Ollama backends: streaming chat over `POST {base}/api/chat` (NDJSON, one
//! JSON object per line) and embeddings over `POST {base}/api/embed`.
//!
//! Invariants: lines are split on `\n` over the raw bytes, so a line (or a
//! UTF-8 character) cut across network chunks decodes whole; a final line
//! without a newline still counts; the stream ends cleanly only at
//! `done: true`, and an `error` field or `done_reason: "error"` is an error
//! even on HTTP 200. Embeddings come back one per text, in order, of one
//! dimension, finite. Nothing here sleeps or retries.

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::{self, BoxStream};
use futures::{FutureExt, Stream, StreamExt};
use reqwest::Url;
use serde_json::{Value, json};

use super::http::{
    capped_stream, endpoint, in_band_error, incomplete, log_label, malformed_chunk, parse_http_url,
    read_capped, send,
};
use super::openai::{GenParams, check_dimensions, malformed_response, reject_empty, vector};
use super::{ChatModel, Chunk, Embedder, Usage};
use crate::domain::{BackendError, GenerationTask};
use crate::prompts::Prompts;

/// Streaming chat against Ollama.
pub struct OllamaChat {
    client: reqwest::Client,
    url: Url,
    model: String,
    params: GenParams,
    prompts: Arc<Prompts>,
    max_body_bytes: u64,
}

impl fmt::Debug for OllamaChat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OllamaChat")
            .field("url", &log_label(&self.url))
            .field("model", &self.model)
            .field("params", &self.params)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl OllamaChat {
    pub fn new(
        client: reqwest::Client,
        base_url: &str,
        model: &str,
        params: GenParams,
        prompts: Arc<Prompts>,
        max_body_bytes: u64,
    ) -> Result<Self, BackendError> {
        let base = parse_http_url("Ollama", base_url)?;
        Ok(Self {
            client,
            url: endpoint(&base, &["api", "chat"])?,
            model: model.to_string(),
            params,
            prompts,
            max_body_bytes,
        })
    }

    fn body(&self, task: &GenerationTask) -> Value {
        let mut options = json!({ "num_predict": self.params.max_tokens });
        if let (Some(t), Some(obj)) = (self.params.temperature, options.as_object_mut()) {
            obj.insert("temperature".into(), json!(t));
        }
        json!({
            "model": self.model,
            "messages": self.prompts.messages(task),
            "stream": true,
            "options": options,
        })
    }
}

impl ChatModel for OllamaChat {
    fn generate(&self, task: GenerationTask) -> BoxStream<'static, Result<Chunk, BackendError>> {
        let req = self.client.post(self.url.clone()).json(&self.body(&task));
        let cap = self.max_body_bytes;
        tracing::debug!(url = %log_label(&self.url), model = %self.model, "ollama chat request");
        let opened = async move {
            match send(req, None).await {
                Ok(resp) => ndjson_tokens(capped_stream(resp, cap)).boxed(),
                Err(error) => stream::iter([Err(error)]).boxed(),
            }
        };
        stream::once(opened).flatten().boxed()
    }
}

/// What one NDJSON line means.
enum Line {
    /// Text; `last` when the line also says `done: true` (then with the
    /// token counts it reports).
    Token {
        text: String,
        last: bool,
        usage: Option<Usage>,
    },
    Nothing,
    Done(Option<Usage>),
}

/// The counts of Ollama's last line (`prompt_eval_count`, `eval_count`).
fn usage_of(value: &Value) -> Option<Usage> {
    let count = |key: &str| value.get(key).and_then(Value::as_u64);
    let usage = Usage {
        input_tokens: count("prompt_eval_count"),
        output_tokens: count("eval_count"),
    };
    (usage != Usage::default()).then_some(usage)
}

fn parse_line(line: &[u8]) -> Result<Line, BackendError> {
    // Invalid UTF-8 becomes U+FFFD rather than failing the reply.
    let line = String::from_utf8_lossy(line);
    let value: Value = serde_json::from_str(&line).map_err(|e| malformed_chunk(&e.to_string()))?;
    if let Some(error) = in_band_error(&value, None) {
        return Err(error);
    }
    let content = value
        .get("message")
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if value.get("done").and_then(Value::as_bool) == Some(true) {
        if value.get("done_reason").and_then(Value::as_str) == Some("error") {
            return Err(BackendError::transient(
                "server error: generation stopped with done_reason \"error\"",
            ));
        }
        // A last line may still carry text.
        let usage = usage_of(&value);
        return Ok(if content.is_empty() {
            Line::Done(usage)
        } else {
            Line::Token {
                text: content.to_string(),
                last: true,
                usage,
            }
        });
    }
    Ok(if content.is_empty() {
        Line::Nothing
    } else {
        Line::Token {
            text: content.to_string(),
            last: false,
            usage: None,
        }
    })
}

/// The content of an Ollama NDJSON body (already capped), then the token
/// counts its last line reports.
pub fn ndjson_tokens<S, B>(
    body: S,
) -> impl Stream<Item = Result<Chunk, BackendError>> + Send + 'static
where
    S: Stream<Item = Result<B, BackendError>> + Send + 'static,
    B: AsRef<[u8]> + Send + 'static,
{
    struct State<S> {
        body: S,
        buffer: Vec<u8>,
        eof: bool,
        done: bool,
        /// The last line's counts, sent after its text.
        queued: Option<Usage>,
    }
    let state = State {
        body: body.boxed(),
        buffer: Vec::new(),
        eof: false,
        done: false,
        queued: None,
    };
    stream::unfold(Some(state), |state| async move {
        let mut st = state?;
        loop {
            if let Some(usage) = st.queued.take() {
                return Some((Ok(Chunk::Usage(usage)), Some(st)));
            }
            if st.done {
                return None;
            }
            // A complete line in the buffer, or the unterminated rest at EOF.
            let line = match st.buffer.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    let rest = st.buffer.split_off(end + 1);
                    Some(std::mem::replace(&mut st.buffer, rest))
                }
                None if st.eof && !st.buffer.is_empty() => Some(std::mem::take(&mut st.buffer)),
                None if st.eof => return Some((Err(incomplete()), None)),
                None => None,
            };
            if let Some(line) = line {
                let trimmed = line.trim_ascii();
                if trimmed.is_empty() {
                    continue;
                }
                match parse_line(trimmed) {
                    Err(error) => return Some((Err(error), None)),
                    Ok(Line::Nothing) => continue,
                    Ok(Line::Done(None)) => return None,
                    Ok(Line::Done(Some(usage))) => {
                        st.done = true;
                        return Some((Ok(Chunk::Usage(usage)), Some(st)));
                    }
                    Ok(Line::Token { text, last, usage }) => {
                        st.done = last;
                        st.queued = usage;
                        return Some((Ok(Chunk::Text(text)), Some(st)));
                    }
                }
            }
            match st.body.next().await {
                Some(Ok(chunk)) => st.buffer.extend_from_slice(chunk.as_ref()),
                Some(Err(error)) => return Some((Err(error), None)),
                None => st.eof = true,
            }
        }
    })
}

/// Embeddings against Ollama's `/api/embed`.
pub struct OllamaEmbedder {
    client: reqwest::Client,
    url: Url,
    model: String,
    batch_size: usize,
    max_body_bytes: u64,
}

impl fmt::Debug for OllamaEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OllamaEmbedder")
            .field("url", &log_label(&self.url))
            .field("model", &self.model)
            .field("batch_size", &self.batch_size)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl OllamaEmbedder {
    pub fn new(
        client: reqwest::Client,
        base_url: &str,
        model: &str,
        batch_size: usize,
        max_body_bytes: u64,
    ) -> Result<Self, BackendError> {
        let base = parse_http_url("Ollama embeddings", base_url)?;
        if batch_size == 0 {
            return Err(BackendError::permanent(
                "embedding batch size must be at least 1",
            ));
        }
        Ok(Self {
            client,
            url: endpoint(&base, &["api", "embed"])?,
            model: model.to_string(),
            batch_size,
            max_body_bytes,
        })
    }
}

impl Embedder for OllamaEmbedder {
    fn embed(&self, texts: Vec<String>) -> BoxFuture<'static, Result<Vec<Vec<f32>>, BackendError>> {
        let client = self.client.clone();
        let url = self.url.clone();
        let model = self.model.clone();
        let batch_size = self.batch_size;
        let cap = self.max_body_bytes;
        async move {
            reject_empty(&texts)?;
            let mut out: Vec<Vec<f32>> = Vec::with_capacity(texts.len());
            for batch in texts.chunks(batch_size) {
                tracing::debug!(url = %log_label(&url), model = %model, n = batch.len(), "ollama embed request");
                let req = client
                    .post(url.clone())
                    .json(&json!({ "model": model, "input": batch }));
                let resp = send(req, None).await?;
                let body = read_capped(resp, cap).await?;
                let value: Value = serde_json::from_slice(&body)
                    .map_err(|e| malformed_response(&e.to_string()))?;
                if let Some(error) = in_band_error(&value, None) {
                    return Err(error);
                }
                let vectors = value
                    .get("embeddings")
                    .and_then(Value::as_array)
                    .ok_or_else(|| malformed_response("no `embeddings` array"))?;
                if vectors.len() != batch.len() {
                    return Err(malformed_response(&format!(
                        "{} embeddings for {} inputs",
                        vectors.len(),
                        batch.len()
                    )));
                }
                for v in vectors {
                    out.push(vector(Some(v))?);
                }
            }
            check_dimensions(&out)?;
            Ok(out)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ErrorClass;

    async fn collect(parts: &[&[u8]]) -> Vec<Result<String, BackendError>> {
        collect_all(parts)
            .await
            .into_iter()
            .filter_map(|item| match item {
                Ok(Chunk::Text(text)) => Some(Ok(text)),
                Ok(Chunk::Usage(_)) => None,
                Err(e) => Some(Err(e)),
            })
            .collect()
    }

    async fn collect_all(parts: &[&[u8]]) -> Vec<Result<Chunk, BackendError>> {
        let owned: Vec<Result<Vec<u8>, BackendError>> =
            parts.iter().map(|p| Ok(p.to_vec())).collect();
        ndjson_tokens(stream::iter(owned)).collect().await
    }

    #[tokio::test]
    async fn the_last_line_reports_its_token_counts() {
        let body = b"{\"message\":{\"content\":\"Hi\"}}\n{\"message\":{\"content\":\"\"},\"done\":true,\"prompt_eval_count\":26,\"eval_count\":3}\n";
        let out = collect_all(&[body]).await;
        let usage = Usage {
            input_tokens: Some(26),
            output_tokens: Some(3),
        };
        assert_eq!(
            out,
            vec![Ok(Chunk::Text("Hi".into())), Ok(Chunk::Usage(usage))]
        );
    }

    #[tokio::test]
    async fn lines_split_anywhere_decode_whole() {
        let body = "{\"message\":{\"content\":\"caf\u{e9} \"}}\n{\"message\":{\"content\":\"\u{1f980}\"},\"done\":false}\n{\"done\":true}";
        let bytes = body.as_bytes();
        for size in [1, 2, 3, 7] {
            let parts: Vec<&[u8]> = bytes.chunks(size).collect();
            let out = collect(&parts).await;
            assert_eq!(
                out,
                vec![Ok("caf\u{e9} ".to_string()), Ok("\u{1f980}".to_string())],
                "chunk size {size}"
            );
        }
    }

    #[tokio::test]
    async fn errors_and_early_end() {
        let out = collect(&[b"{\"message\":{\"content\":\"a\"}}\n"]).await;
        assert_eq!(out, vec![Ok("a".to_string()), Err(incomplete())]);
        let out = collect(&[b"{\"error\":\"boom\"}\n"]).await;
        assert_eq!(
            out[0].clone().expect_err("error").message,
            "server error: boom"
        );
        let out = collect(&[b"{\"done\":true,\"done_reason\":\"error\"}\n"]).await;
        assert_eq!(
            out[0].clone().expect_err("error").class,
            ErrorClass::Transient
        );
        let out = collect(&[b"nope\n"]).await;
        assert_eq!(
            out[0].clone().expect_err("error").class,
            ErrorClass::Permanent
        );
    }
}
