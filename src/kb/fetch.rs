//! `kb add URL`: one web page fetched through the pooled HTTP client, with
//! a deadline and a size cap (checked on the declared length and again
//! while streaming, so a lying server cannot push past it).

use std::time::Duration;

use futures::StreamExt;

use super::loaders::Format;
use super::store::Input;
use crate::sanitize::one_line;

/// Sizes as people read them (decimal units).
pub fn human_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} KB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

/// Fetches web pages for `kb add URL` and `kb sync` through one pooled
/// HTTP client (the backends' client: same TLS, redirect and connect
/// rules), each with a deadline and a size cap.
#[derive(Debug, Clone)]
pub struct PageFetcher {
    client: reqwest::Client,
    timeout: Duration,
    max: u64,
}

impl PageFetcher {
    pub fn new(timeout: Duration, max: u64) -> Result<Self, String> {
        let client = crate::backends::http::build_client(&crate::backends::http::HttpOptions {
            max_body_bytes: max,
            ..Default::default()
        })
        .map_err(|e| e.message)?;
        Ok(Self {
            client,
            timeout,
            max,
        })
    }

    /// Fetch one page; a failure is the input's reason, not an error.
    pub async fn fetch_page(&self, url: &str) -> Input {
        let fetched = tokio::time::timeout(self.timeout, fetch(&self.client, url, self.max))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "timed out after {}",
                    crate::engine::request::format_duration(self.timeout)
                ))
            });
        Input::Page {
            url: url.to_owned(),
            fetched,
        }
    }
}

async fn fetch(client: &reqwest::Client, url: &str, max: u64) -> Result<(Format, Vec<u8>), String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| one_line(&format!("fetch failed: {e}")))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("text/html")
        .to_ascii_lowercase();
    let format = if content_type.contains("html") {
        Format::Html
    } else if content_type.contains("markdown") {
        Format::Markdown
    } else if content_type.starts_with("text/") {
        Format::Text
    } else {
        return Err(format!(
            "unsupported content type ({})",
            one_line(&content_type)
        ));
    };
    if response.content_length().is_some_and(|len| len > max) {
        return Err(format!("over the {} size cap", human_bytes(max)));
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| one_line(&format!("fetch failed: {e}")))?;
        if (body.len() + chunk.len()) as u64 > max {
            return Err(format!("over the {} size cap", human_bytes(max)));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((format, body))
}
