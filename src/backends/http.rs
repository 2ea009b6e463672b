//! HTTP hygiene shared by the real backends: one pooled client per backend,
//! API keys that never print, `Authorization` headers marked sensitive,
//! bounded response bodies, and the classification of every HTTP failure into
//! a [`BackendError`] the engine's retry policy understands.
//!
//! Invariants: nothing here sleeps, retries or imposes a total deadline (the
//! engine owns time); every message built here is one sanitised line that
//! names a host, never a URL's userinfo or query string nor an API key;
//! every body read is capped.

use std::fmt;
use std::time::{Duration, SystemTime};

use futures::{Stream, StreamExt};
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};

use crate::domain::BackendError;
use crate::sanitize::one_line;

/// The most of an error body that is read to explain a failure.
const ERROR_BODY_CAP: u64 = 64 * 1024;
/// The longest server message quoted in an error.
const SERVER_MESSAGE_CHARS: usize = 300;
/// Redirects followed (same origin only) before giving up.
const MAX_REDIRECTS: usize = 5;

/// Client settings shared by every HTTP backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpOptions {
    /// How long establishing a TCP (and TLS) connection may take.
    pub connect_timeout: Duration,
    /// The largest response body accepted, streamed or not.
    pub max_body_bytes: u64,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            max_body_bytes: 16 * 1024 * 1024,
        }
    }
}

/// One pooled client: rustls, keep-alive, a connect timeout, and redirects
/// followed only within the same origin (scheme, host and port), at most 5.
/// A redirect to another origin fails the request (a permanent error): the
/// request carries an API key and a body meant for the configured server.
pub fn build_client(opts: &HttpOptions) -> Result<reqwest::Client, BackendError> {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt
            .previous()
            .first()
            .is_some_and(|first| same_origin(first, attempt.url()));
        if !same_origin {
            let target = host_label(attempt.url());
            attempt.error(RedirectRefused(format!(
                "refused a redirect to another host ({target})"
            )))
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(RedirectRefused(format!(
                "more than {MAX_REDIRECTS} redirects"
            )))
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(opts.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_keepalive(Duration::from_secs(60))
        .redirect(policy)
        .build()
        .map_err(|e| {
            BackendError::permanent(format!("cannot build the HTTP client: {}", chain(&e)))
        })
}

/// Why a redirect was not followed (becomes the source of reqwest's error).
#[derive(Debug)]
struct RedirectRefused(String);

impl fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RedirectRefused {}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// `host` or `host:port`: how messages name a server (never userinfo, path
/// or query).
pub fn host_label(url: &Url) -> String {
    let host = url.host_str().unwrap_or("unknown host");
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// `scheme://host[:port]/path`: a URL safe for debug logs.
pub fn log_label(url: &Url) -> String {
    format!("{}://{}{}", url.scheme(), host_label(url), url.path())
}

/// Parse and check a configured URL: http or https with a host.
pub fn parse_http_url(what: &str, text: &str) -> Result<Url, BackendError> {
    let url = Url::parse(text.trim()).map_err(|e| {
        BackendError::permanent(format!(
            "{what} URL `{}` is not valid: {e}",
            one_line(&redact_userinfo_text(text))
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(BackendError::permanent(format!(
            "{what} URL must start with http:// or https:// (got `{}:`)",
            one_line(url.scheme())
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(BackendError::permanent(format!("{what} URL has no host")));
    }
    Ok(url)
}

/// A URL that did not parse may still hold `user:pass@` or a query with a
/// key in it: drop the query and fragment, and the userinfo before the
/// last `@`.
fn redact_userinfo_text(text: &str) -> String {
    let text = text.split(['?', '#']).next().unwrap_or_default();
    match (text.find("//"), text.rfind('@')) {
        (Some(start), Some(at)) if at > start => {
            format!("{}//[redacted]@{}", &text[..start], &text[at + 1..])
        }
        _ => text.to_string(),
    }
}

/// `base` with `segments` appended to its path (its query, if any, kept).
pub fn endpoint(base: &Url, segments: &[&str]) -> Result<Url, BackendError> {
    let mut url = base.clone();
    {
        let mut path = url.path_segments_mut().map_err(|()| {
            BackendError::permanent(format!("URL for {} cannot take a path", host_label(base)))
        })?;
        path.pop_if_empty();
        path.extend(segments);
    }
    Ok(url)
}

/// An API key read from the environment variable named in the config.
/// Debug and Display print `[redacted]`; it is never logged.
#[derive(Clone)]
pub struct ApiKey(SecretString);

impl ApiKey {
    /// The key in `var`, or `None` when the variable is unset or blank.
    pub fn from_env(var: &str) -> Result<Option<ApiKey>, String> {
        match std::env::var(var) {
            Ok(value) if value.trim().is_empty() => Ok(None),
            Ok(value) => {
                let key = ApiKey::new(value);
                if HeaderValue::from_str(&format!("Bearer {}", key.0.expose_secret())).is_err() {
                    return Err(format!(
                        "the API key in ${var} holds characters not allowed in an HTTP header"
                    ));
                }
                Ok(Some(key))
            }
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("the API key in ${var} is not valid UTF-8"))
            }
        }
    }

    /// A key from any source; surrounding whitespace is dropped.
    pub fn new(s: String) -> Self {
        let trimmed = s.trim();
        if trimmed.len() == s.len() {
            ApiKey(SecretString::from(s))
        } else {
            ApiKey(SecretString::from(trimmed))
        }
    }

    fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Add `Authorization: Bearer <key>` marked sensitive (so it is left out of
/// debug output). A key that cannot be a header value makes the request fail
/// as a builder error (permanent) without the key appearing anywhere.
pub fn with_bearer(req: reqwest::RequestBuilder, key: Option<&ApiKey>) -> reqwest::RequestBuilder {
    let Some(key) = key else {
        return req;
    };
    match HeaderValue::from_str(&format!("Bearer {}", key.expose())) {
        Ok(mut value) => {
            value.set_sensitive(true);
            req.header(AUTHORIZATION, value)
        }
        Err(_) => {
            tracing::warn!("the API key holds characters not allowed in an HTTP header");
            // An invalid value that is not the key: the send fails with a
            // builder error.
            req.header(AUTHORIZATION, "invalid api key\n")
        }
    }
}

/// `Retry-After` as delay-seconds or an HTTP-date, relative to `now`. A date
/// in the past means "now" (zero).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Classify a non-2xx response: 5xx, 408 and 429 are transient (429 and 503
/// carry `Retry-After` when sent), other statuses permanent. The message is
/// `HTTP 503 from host: <server message>`, sanitised and shortened.
pub async fn error_from_response(resp: reqwest::Response) -> BackendError {
    error_from_response_redacting(resp, None).await
}

/// [`error_from_response`], also removing `key` from the server's message
/// (a server may echo the `Authorization` header back).
pub async fn error_from_response_redacting(
    resp: reqwest::Response,
    key: Option<&ApiKey>,
) -> BackendError {
    let status = resp.status();
    let host = host_label(resp.url());
    let retry_after = if matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        resp.headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()))
    } else {
        None
    };
    // A body that breaks off still explains what arrived of it.
    let body = read_prefix(resp, ERROR_BODY_CAP).await;
    let mut detail = server_message(&body);
    if detail.is_empty() {
        detail = status
            .canonical_reason()
            .unwrap_or("no message")
            .to_string();
    }
    let detail = shorten(&redact_secrets(&detail, key), SERVER_MESSAGE_CHARS);
    let message = format!("HTTP {} from {host}: {detail}", status.as_u16());
    let transient = status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS;
    let mut error = if transient {
        BackendError::transient(message)
    } else {
        BackendError::permanent(message)
    };
    error.retry_after = retry_after;
    error
}

/// Up to `cap` bytes of a body; whatever arrived if it breaks off.
async fn read_prefix(mut resp: reqwest::Response, cap: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = usize::try_from(cap)
            .unwrap_or(usize::MAX)
            .saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() as u64 >= cap {
            break;
        }
    }
    out
}

/// The human part of an error body: JSON `error.message`, `error` (string),
/// `message` or `detail` (string, or FastAPI's list of `{msg}`), else the
/// text. One sanitised line (not yet shortened).
pub fn server_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text)
        && let Some(found) = json_error_message(&value)
    {
        return one_line(&found);
    }
    one_line(&text)
}

/// The message of a JSON error object, when `value` looks like one.
pub fn json_error_message(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    let from_detail = |detail: &Value| -> Option<String> {
        match detail {
            Value::String(s) => Some(s.clone()),
            Value::Array(items) => {
                let msgs: Vec<String> = items
                    .iter()
                    .filter_map(|item| {
                        let msg = item.get("msg")?.as_str()?;
                        let loc = item.get("loc").and_then(Value::as_array).map(|loc| {
                            loc.iter()
                                .map(|p| match p {
                                    Value::String(s) => s.clone(),
                                    other => other.to_string(),
                                })
                                .collect::<Vec<_>>()
                                .join(".")
                        });
                        Some(match loc {
                            Some(loc) if !loc.is_empty() => format!("{loc}: {msg}"),
                            _ => msg.to_string(),
                        })
                    })
                    .collect();
                (!msgs.is_empty()).then(|| msgs.join("; "))
            }
            _ => None,
        }
    };
    match value.get("error") {
        Some(Value::String(s)) => return Some(s.clone()),
        Some(Value::Object(obj)) => {
            if let Some(Value::String(s)) = obj.get("message") {
                return Some(s.clone());
            }
            return Some(Value::Object(obj.clone()).to_string());
        }
        _ => {}
    }
    if let Some(detail) = value.get("detail").and_then(from_detail) {
        return Some(detail);
    }
    value
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Remove `key` and anything that looks like a bearer token or an `sk-`
/// key from a server's message.
pub fn redact_secrets(text: &str, key: Option<&ApiKey>) -> String {
    let mut text = text.to_string();
    if let Some(key) = key {
        let secret = key.expose();
        if !secret.is_empty() {
            text = text.replace(secret, "[redacted]");
        }
    }
    let mut out = Vec::new();
    let mut redact_next = false;
    for word in text.split(' ') {
        if redact_next && !word.is_empty() {
            out.push("[redacted]".to_string());
            redact_next = false;
            continue;
        }
        let bare = word.trim_start_matches(|c: char| !c.is_alphanumeric());
        if bare.eq_ignore_ascii_case("bearer") || bare.eq_ignore_ascii_case("bearer:") {
            redact_next = true;
            out.push(word.to_string());
        } else if bare.starts_with("sk-") && bare.len() > 6 {
            out.push("[redacted]".to_string());
        } else {
            out.push(word.to_string());
        }
    }
    out.join(" ")
}

/// At most `max` characters, with an ellipsis when cut.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Classify a reqwest error: connect errors, timeouts and interrupted
/// bodies are transient; builder and redirect errors permanent. The message
/// names the host only (never userinfo, path or query).
pub fn error_from_reqwest(err: &reqwest::Error) -> BackendError {
    classify_reqwest(err, err.url().map(host_label))
}

/// [`error_from_reqwest`] for errors met while reading a body, which carry
/// no URL: `host` names the server.
fn error_reading_body(err: &reqwest::Error, host: &str) -> BackendError {
    classify_reqwest(
        err,
        err.url().map(host_label).or_else(|| Some(host.to_string())),
    )
}

fn classify_reqwest(err: &reqwest::Error, host: Option<String>) -> BackendError {
    let host = host.map(|h| format!(" {h}")).unwrap_or_default();
    let causes = chain(err);
    let detail = if causes.is_empty() {
        String::new()
    } else {
        format!(": {causes}")
    };
    if err.is_builder() {
        BackendError::permanent(format!("could not build the request{detail}"))
    } else if err.is_redirect() {
        BackendError::permanent(format!("redirect from{host} not followed{detail}"))
    } else if err.is_timeout() {
        BackendError::transient(format!("timed out talking to{host}{detail}"))
    } else if err.is_connect() {
        BackendError::transient(format!("cannot connect to{host}{detail}"))
    } else if err.is_body() || err.is_decode() {
        BackendError::transient(format!("response from{host} broke off{detail}"))
    } else if err.is_request() {
        BackendError::transient(format!("request to{host} failed{detail}"))
    } else if let Some(status) = err.status() {
        let transient = status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS;
        let message = format!("HTTP {} from{host}", status.as_u16());
        if transient {
            BackendError::transient(message)
        } else {
            BackendError::permanent(message)
        }
    } else {
        BackendError::transient(format!("HTTP error with{host}{detail}"))
    }
}

/// The error's causes (not the error itself, whose Display names the full
/// URL), de-duplicated, as one sanitised line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = one_line(&cause.to_string());
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    shorten(&parts.join(": "), SERVER_MESSAGE_CHARS)
}

/// The permanent error for a body over the cap.
pub fn too_large(cap: u64) -> BackendError {
    BackendError::permanent(format!("response body over {cap} bytes"))
}

/// Read a whole body, counting bytes as they arrive; over `cap` it is a
/// permanent error (the rest is not read).
pub async fn read_capped(mut resp: reqwest::Response, cap: u64) -> Result<Vec<u8>, BackendError> {
    let host = host_label(resp.url());
    if resp.content_length().is_some_and(|len| len > cap) {
        return Err(too_large(cap));
    }
    let mut out = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if out.len() as u64 + chunk.len() as u64 > cap {
                    return Err(too_large(cap));
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(out),
            Err(e) => return Err(error_reading_body(&e, &host)),
        }
    }
}

/// A response's body as a stream of chunks, each counted against `cap`:
/// the chunk that crosses it becomes a permanent error and ends the stream.
/// Transport errors are classified with [`error_from_reqwest`].
pub fn capped_stream(
    resp: reqwest::Response,
    cap: u64,
) -> impl Stream<Item = Result<impl AsRef<[u8]> + Send + 'static, BackendError>> + Send + 'static {
    let host = host_label(resp.url());
    let mut seen: u64 = 0;
    let mut over = false;
    resp.bytes_stream()
        .map(move |item| match item {
            Ok(bytes) => {
                seen = seen.saturating_add(bytes.len() as u64);
                if seen > cap {
                    Err(too_large(cap))
                } else {
                    Ok(bytes)
                }
            }
            Err(e) => Err(error_reading_body(&e, &host)),
        })
        // Nothing after the first error: the stream is over.
        .take_while(move |item| {
            let keep = !over;
            over = over || item.is_err();
            futures::future::ready(keep)
        })
}

/// Bytes -> text, chunk by chunk: a character cut between two chunks is
/// carried over and decoded whole; an invalid sequence becomes U+FFFD
/// (rather than stalling the stream or failing it); an incomplete sequence
/// at the very end becomes U+FFFD too. Errors pass through and end it.
pub fn utf8_lossy<S, B>(
    body: S,
) -> impl Stream<Item = Result<String, BackendError>> + Send + 'static
where
    S: Stream<Item = Result<B, BackendError>> + Send + 'static,
    B: AsRef<[u8]> + Send + 'static,
{
    futures::stream::unfold(
        (body.boxed(), Vec::new(), false),
        |(mut body, mut carry, ended)| async move {
            if ended {
                return None;
            }
            match body.next().await {
                Some(Ok(bytes)) => {
                    carry.extend_from_slice(bytes.as_ref());
                    let text = decode_prefix(&mut carry);
                    Some((Ok(text), (body, carry, false)))
                }
                Some(Err(error)) => Some((Err(error), (body, carry, true))),
                None if carry.is_empty() => None,
                None => {
                    let text = String::from_utf8_lossy(&carry).into_owned();
                    carry.clear();
                    Some((Ok(text), (body, carry, true)))
                }
            }
        },
    )
}

/// Decode what `buf` holds, leaving only an incomplete trailing character.
fn decode_prefix(buf: &mut Vec<u8>) -> String {
    let mut out = String::new();
    loop {
        match std::str::from_utf8(buf) {
            Ok(text) => {
                out.push_str(text);
                buf.clear();
                return out;
            }
            Err(e) => {
                let valid = e.valid_up_to();
                out.push_str(std::str::from_utf8(&buf[..valid]).unwrap_or_default());
                match e.error_len() {
                    None => {
                        buf.drain(..valid);
                        return out;
                    }
                    Some(bad) => {
                        out.push('\u{fffd}');
                        buf.drain(..valid + bad);
                    }
                }
            }
        }
    }
}

/// Send a request; a non-2xx status becomes its classified error (with
/// `key` redacted from the server's message).
pub async fn send(
    req: reqwest::RequestBuilder,
    key: Option<&ApiKey>,
) -> Result<reqwest::Response, BackendError> {
    let resp = req.send().await.map_err(|e| error_from_reqwest(&e))?;
    if resp.status().is_success() {
        Ok(resp)
    } else {
        let error = error_from_response_redacting(resp, key).await;
        tracing::debug!(error = %error.message, "backend answered with an error status");
        Err(error)
    }
}

/// The error for a stream that ended without its end marker.
pub fn incomplete() -> BackendError {
    BackendError::transient("stream ended early (incomplete)")
}

/// The error for a stream chunk that is not the JSON it should be.
pub fn malformed_chunk(detail: &str) -> BackendError {
    BackendError::permanent(format!(
        "malformed stream chunk: {}",
        shorten(&one_line(detail), 120)
    ))
}

/// An error object a server sent inside a 200 response (a stream chunk or a
/// body). A request the server accepted failed on its side, so it is
/// transient unless its type says the request itself was wrong.
pub fn in_band_error(value: &serde_json::Value, key: Option<&ApiKey>) -> Option<BackendError> {
    let error = value.get("error")?;
    if error.is_null() {
        return None;
    }
    let message = json_error_message(value).unwrap_or_else(|| error.to_string());
    let message = shorten(
        &redact_secrets(&one_line(&message), key),
        SERVER_MESSAGE_CHARS,
    );
    let hint = |field: &str| {
        error
            .get(field)
            .map(|v| match v {
                serde_json::Value::String(s) => s.to_lowercase(),
                other => other.to_string(),
            })
            .unwrap_or_default()
    };
    let kind = format!("{} {} {}", hint("type"), hint("code"), hint("status"));
    let permanent = [
        "invalid_request",
        "authentication",
        "permission",
        "not_found",
        "400",
        "401",
        "403",
        "404",
        "422",
    ]
    .iter()
    .any(|k| kind.contains(k));
    let message = format!("server error: {message}");
    Some(if permanent {
        BackendError::permanent(message)
    } else {
        BackendError::transient(message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(90))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(parse_retry_after("99999999999999999999999", now), None);
    }

    #[test]
    fn server_messages_prefer_json_fields_and_are_one_line() {
        assert_eq!(
            server_message(br#"{"error":{"message":"bad \u001b[31mthing\nhere"}}"#),
            "bad thing here"
        );
        assert_eq!(server_message(br#"{"error":"plain"}"#), "plain");
        assert_eq!(server_message(br#"{"detail":"nope"}"#), "nope");
        assert_eq!(
            server_message(br#"{"detail":[{"loc":["body","query"],"msg":"field required"}]}"#),
            "body.query: field required"
        );
        assert_eq!(
            server_message(b"<h1>Bad\tGateway</h1>\r\n"),
            "<h1>Bad Gateway</h1>"
        );
        assert_eq!(server_message(&[0xff, b'o', b'k']), "\u{fffd}ok");
    }

    #[test]
    fn secrets_are_redacted_from_messages() {
        let key = ApiKey::new("  sk-SENTINEL-1234 ".into());
        assert_eq!(format!("{key:?} {key}"), "[redacted] [redacted]");
        assert_eq!(
            redact_secrets("bad key sk-SENTINEL-1234!", Some(&key)),
            "bad key [redacted]!"
        );
        assert_eq!(
            redact_secrets("got Authorization: Bearer abc.def", None),
            "got Authorization: Bearer [redacted]"
        );
        assert_eq!(redact_secrets("key 'sk-other-999'", None), "key [redacted]");
        assert_eq!(redact_secrets("ask-me sk-", None), "ask-me sk-");
    }

    #[tokio::test]
    async fn utf8_is_decoded_across_chunks_and_invalid_bytes_replaced() {
        let text = "caf\u{e9} \u{1f980}\u{9f8d}";
        for size in 1..=5 {
            let parts: Vec<Result<Vec<u8>, BackendError>> = text
                .as_bytes()
                .chunks(size)
                .map(|c| Ok(c.to_vec()))
                .collect();
            let out: Vec<_> = utf8_lossy(futures::stream::iter(parts)).collect().await;
            let joined: String = out.into_iter().map(|r| r.expect("ok")).collect();
            assert_eq!(joined, text, "chunk size {size}");
        }
        let parts: Vec<Result<Vec<u8>, BackendError>> =
            vec![Ok(b"a\xffb\xe2".to_vec()), Ok(b"\x82\xac\xc3".to_vec())];
        let out: Vec<_> = utf8_lossy(futures::stream::iter(parts)).collect().await;
        let joined: String = out.into_iter().map(|r| r.expect("ok")).collect();
        assert_eq!(joined, "a\u{fffd}b\u{20ac}\u{fffd}");
    }

    #[test]
    fn urls_are_checked_and_joined() {
        let base = parse_http_url("chat", "http://h:8080/v1/").expect("valid");
        assert_eq!(
            endpoint(&base, &["chat", "completions"])
                .expect("joined")
                .as_str(),
            "http://h:8080/v1/chat/completions"
        );
        let err = parse_http_url("chat", "ftp://h/").expect_err("scheme");
        assert!(err.message.contains("http://"), "{}", err.message);
        let err = parse_http_url("chat", "http://user:pw@[::1?key=k1").expect_err("bad");
        assert!(!err.message.contains("pw"), "{}", err.message);
        assert!(!err.message.contains("k1"), "{}", err.message);
        assert_eq!(shorten("abcdef", 4), "abc…");
    }
}
