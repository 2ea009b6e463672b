//! A retriever for a Haystack pipeline served by Hayhooks (and any service
//! speaking the same generic JSON): `POST {url}` with
//! `{"query", "top_k", ...extra}`, answered by Haystack documents
//! (`{"id", "content", "score", "meta": {...}}`) under `result`, under
//! `documents`, or as a bare array.
//!
//! Invariants: at most `top_k` passages, in the server's order, each with
//! text; a passage's `source` is never empty (meta key, then `file_path` or
//! `name`, then the id); the body is capped; nothing here sleeps or retries.

use std::fmt;

use futures::FutureExt;
use futures::future::BoxFuture;
use reqwest::Url;
use serde_json::{Map, Value};

use super::Retriever;
use super::http::{in_band_error, log_label, parse_http_url, read_capped, send};
use super::openai::malformed_response;
use crate::domain::{BackendError, Passage, RetrieveQuery};

/// How deep to look for a `documents` list in a pipeline's output
/// (`{"result": {"retriever": {"documents": [...]}}}`).
const MAX_NESTING: usize = 4;

pub struct HayhooksRetriever {
    client: reqwest::Client,
    url: Url,
    extra: Map<String, Value>,
    source_meta_key: String,
    max_body_bytes: u64,
}

impl fmt::Debug for HayhooksRetriever {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HayhooksRetriever")
            .field("url", &log_label(&self.url))
            .field("extra_keys", &self.extra.keys().collect::<Vec<_>>())
            .field("source_meta_key", &self.source_meta_key)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl HayhooksRetriever {
    /// `extra` adds fields to every request body (filters, pipeline
    /// inputs); it cannot replace `query` or `top_k`. An empty
    /// `source_meta_key` means `source`.
    pub fn new(
        client: reqwest::Client,
        url: &str,
        extra: Map<String, Value>,
        source_meta_key: &str,
        max_body_bytes: u64,
    ) -> Result<Self, BackendError> {
        let url = parse_http_url("Hayhooks", url)?;
        let key = source_meta_key.trim();
        Ok(Self {
            client,
            url,
            extra,
            source_meta_key: if key.is_empty() { "source" } else { key }.to_string(),
            max_body_bytes,
        })
    }

    fn body(&self, query: &RetrieveQuery) -> Value {
        let mut body = self.extra.clone();
        body.insert("query".into(), Value::String(query.query.clone()));
        body.insert("top_k".into(), Value::from(query.top_k));
        Value::Object(body)
    }
}

impl Retriever for HayhooksRetriever {
    fn retrieve(
        &self,
        query: RetrieveQuery,
    ) -> BoxFuture<'static, Result<Vec<Passage>, BackendError>> {
        let req = self.client.post(self.url.clone()).json(&self.body(&query));
        let cap = self.max_body_bytes;
        let source_key = self.source_meta_key.clone();
        tracing::debug!(url = %log_label(&self.url), top_k = query.top_k, "hayhooks retrieve");
        async move {
            let resp = send(req, None).await?;
            let body = read_capped(resp, cap).await?;
            let value: Value =
                serde_json::from_slice(&body).map_err(|e| malformed_response(&e.to_string()))?;
            if let Some(error) = in_band_error(&value, None) {
                return Err(error);
            }
            let documents = find_documents(&value, 0).ok_or_else(|| {
                malformed_response("no documents (expected `result`, `documents` or an array)")
            })?;
            Ok(documents
                .iter()
                .enumerate()
                .filter_map(|(n, doc)| passage(doc, n, &source_key))
                .take(query.top_k)
                .collect())
        }
        .boxed()
    }
}

/// The list of documents in a response, wherever the pipeline put it.
fn find_documents(value: &Value, depth: usize) -> Option<&Vec<Value>> {
    if depth > MAX_NESTING {
        return None;
    }
    match value {
        Value::Array(items) => Some(items),
        Value::Object(obj) => {
            for key in ["result", "documents"] {
                if let Some(found) = obj.get(key).and_then(|v| find_documents(v, depth + 1)) {
                    return Some(found);
                }
            }
            // A pipeline's output keyed by component name: the one
            // component holding documents.
            if depth > 0 {
                return obj
                    .values()
                    .filter(|v| v.is_object())
                    .find_map(|v| find_documents(v, depth + 1));
            }
            None
        }
        _ => None,
    }
}

fn meta_str<'a>(meta: Option<&'a Map<String, Value>>, key: &str) -> Option<&'a str> {
    meta?
        .get(key)?
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// One Haystack document -> a passage; `None` for one without text.
fn passage(doc: &Value, n: usize, source_key: &str) -> Option<Passage> {
    let text = doc
        .get("content")
        .or_else(|| doc.get("text"))
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())?;
    let meta = doc.get("meta").and_then(Value::as_object);
    let id = match doc.get("id") {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(Value::Number(num)) => Some(num.to_string()),
        _ => None,
    };
    let source = meta_str(meta, source_key)
        .or_else(|| meta_str(meta, "file_path"))
        .or_else(|| meta_str(meta, "name"))
        .map(str::to_string)
        .or_else(|| id.clone())
        .unwrap_or_else(|| format!("document {}", n + 1));
    let id = id.unwrap_or_else(|| format!("{source}#{n}"));
    let title = meta_str(meta, "title").unwrap_or(&source).to_string();
    Some(Passage {
        location: Default::default(),
        id,
        title,
        kind: meta_str(meta, "kind").map(str::to_string),
        heading: meta_str(meta, "heading").map(str::to_string),
        text: text.to_string(),
        score: doc.get("score").and_then(Value::as_f64).unwrap_or(0.0) as f32,
        source,
        entities: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_are_found_in_every_shape() {
        let doc =
            json!({"id": "d1", "content": "text", "score": 0.5, "meta": {"file_path": "a.md"}});
        for shape in [
            json!({"result": [doc.clone()]}),
            json!({"documents": [doc.clone()]}),
            json!([doc.clone()]),
            json!({"result": {"documents": [doc.clone()]}}),
            json!({"result": {"retriever": {"documents": [doc.clone()]}}}),
        ] {
            let docs = find_documents(&shape, 0).expect("found");
            let p = passage(&docs[0], 0, "source").expect("passage");
            assert_eq!(
                (p.id.as_str(), p.source.as_str(), p.title.as_str()),
                ("d1", "a.md", "a.md")
            );
            assert!((p.score - 0.5).abs() < f32::EPSILON);
        }
        assert!(find_documents(&json!({"other": 1}), 0).is_none());
    }

    #[test]
    fn source_falls_back_to_the_id() {
        let p = passage(
            &json!({"id": 7, "content": "x", "meta": {"title": "T", "kind": "npc"}}),
            0,
            "source",
        )
        .expect("passage");
        assert_eq!(p.source, "7");
        assert_eq!(p.title, "T");
        assert_eq!(p.kind.as_deref(), Some("npc"));
        assert!(passage(&json!({"id": "e", "content": null}), 0, "source").is_none());
    }
}
