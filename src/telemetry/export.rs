//! Sending spans: a bounded queue in front of one Tokio task that batches
//! (up to `max_batch` spans, or whatever waited `batch_interval`) and POSTs
//! each batch as OTLP/HTTP protobuf (`application/x-protobuf`) with reqwest.
//!
//! The task runs on the Tokio runtime itself (no thread of its own, so the
//! async client always has its reactor, unlike opentelemetry-rust #3125).
//!
//! Invariants: [`SpanQueue::push`] never blocks or awaits: when the queue
//! is full (a slow or unreachable collector) the span is dropped and
//! counted; a batch the collector refuses or never answers (within
//! `export_timeout`) is counted as dropped too. Every span pushed is
//! eventually counted once, as exported or dropped (or is still pending).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::settings::Settings;

/// Spans dropped by every exporter of this process (the TUI shows it).
static DROPPED_TOTAL: AtomicU64 = AtomicU64::new(0);

/// Spans dropped so far by every exporter in this process.
pub fn dropped_total() -> u64 {
    DROPPED_TOTAL.load(Ordering::Relaxed)
}

/// An exporter's counts.
#[derive(Debug, Default)]
pub struct Stats {
    queued: AtomicU64,
    exported: AtomicU64,
    dropped: AtomicU64,
    failed_requests: AtomicU64,
}

/// A reading of [`Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// Spans accepted into the queue.
    pub queued: u64,
    /// Spans the collector accepted.
    pub exported: u64,
    /// Spans lost: queue full, collector unreachable or refusing, exit.
    pub dropped: u64,
    /// Export requests that failed.
    pub failed_requests: u64,
}

impl StatsSnapshot {
    /// Spans queued and not yet exported or dropped.
    pub fn pending(&self) -> u64 {
        self.queued
            .saturating_sub(self.exported)
            .saturating_sub(self.dropped.min(self.queued))
    }
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            queued: self.queued.load(Ordering::Relaxed),
            exported: self.exported.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed_requests: self.failed_requests.load(Ordering::Relaxed),
        }
    }

    fn drop_spans(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        DROPPED_TOTAL.fetch_add(n, Ordering::Relaxed);
    }
}

/// Why an exporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("OTEL_EXPORTER_OTLP_HEADERS: `{0}` is not a valid header name or value")]
    BadHeader(String),
    #[error("the OpenTelemetry HTTP client could not be built: {0}")]
    Client(String),
}

/// The sending half, owned by the tap. Spans queued before it is closed
/// (or dropped) are still sent.
#[derive(Debug)]
pub struct SpanQueue {
    tx: Option<mpsc::Sender<Span>>,
    stats: Arc<Stats>,
}

impl SpanQueue {
    /// Queue a finished span, or drop it (counted) when the queue is full
    /// or closed. Never blocks.
    pub fn push(&self, span: Span) {
        let Some(tx) = &self.tx else {
            self.stats.drop_spans(1);
            return;
        };
        // Counted before the send, so the task never sees a span that is
        // not counted as queued yet.
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        if tx.try_send(span).is_err() {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            self.stats.drop_spans(1);
        }
    }

    /// No more spans: the task sends what is queued and ends.
    pub fn close(&mut self) {
        self.tx = None;
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }
}

/// The exporting task. [`Exporter::shutdown`] waits (bounded) for it to
/// send what is queued once the queue is closed.
#[derive(Debug)]
pub struct Exporter {
    task: JoinHandle<()>,
    stats: Arc<Stats>,
}

impl Exporter {
    /// Start the task on the current Tokio runtime.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn start(
        settings: &Settings,
        resource: Resource,
    ) -> Result<(SpanQueue, Exporter), ExportError> {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("application/x-protobuf"),
        );
        for (key, value) in &settings.headers {
            let name = reqwest::header::HeaderName::from_bytes(key.as_bytes())
                .map_err(|_| ExportError::BadHeader(key.clone()))?;
            let mut value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| ExportError::BadHeader(key.clone()))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(settings.export_timeout)
            .connect_timeout(settings.export_timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("loreweave/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ExportError::Client(e.to_string()))?;
        let (tx, rx) = mpsc::channel(settings.queue_size.max(1));
        let stats = Arc::new(Stats::default());
        let batcher = Batcher {
            client,
            endpoint: settings.endpoint.clone(),
            resource,
            stats: stats.clone(),
            max_batch: settings.max_batch.max(1),
        };
        let task = tokio::spawn(batcher.run(rx, settings.batch_interval));
        Ok((
            SpanQueue {
                tx: Some(tx),
                stats: stats.clone(),
            },
            Exporter { task, stats },
        ))
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Wait, at most `budget`, for the task to send what is queued (the
    /// queue must have been closed, else this waits the whole budget).
    /// Whatever is still pending then is dropped and counted.
    pub async fn shutdown(mut self, budget: Duration) -> StatsSnapshot {
        if tokio::time::timeout(budget, &mut self.task).await.is_err() {
            self.task.abort();
            let pending = self.stats.snapshot().pending();
            self.stats.drop_spans(pending);
            tracing::warn!(pending, "otel: exit flush took too long; spans dropped");
        }
        self.stats.snapshot()
    }
}

struct Batcher {
    client: reqwest::Client,
    endpoint: String,
    resource: Resource,
    stats: Arc<Stats>,
    max_batch: usize,
}

impl Batcher {
    async fn run(self, mut rx: mpsc::Receiver<Span>, interval: Duration) {
        let mut batch: Vec<Span> = Vec::new();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                span = rx.recv() => match span {
                    Some(span) => {
                        batch.push(span);
                        if batch.len() >= self.max_batch {
                            self.send(std::mem::take(&mut batch)).await;
                        }
                    }
                    None => {
                        if !batch.is_empty() {
                            self.send(std::mem::take(&mut batch)).await;
                        }
                        return;
                    }
                },
                _ = tick.tick() => {
                    if !batch.is_empty() {
                        self.send(std::mem::take(&mut batch)).await;
                    }
                }
            }
        }
    }

    async fn send(&self, spans: Vec<Span>) {
        let count = spans.len() as u64;
        let body = encode(self.resource.clone(), spans);
        let result = self.client.post(&self.endpoint).body(body).send().await;
        let failed = |why: String| {
            self.stats.failed_requests.fetch_add(1, Ordering::Relaxed);
            self.stats.drop_spans(count);
            tracing::warn!(count, "otel: export failed: {why}");
        };
        match result {
            Ok(response) if response.status().is_success() => {
                let rejected = response
                    .bytes()
                    .await
                    .ok()
                    .and_then(|body| ExportTraceServiceResponse::decode(body).ok())
                    .and_then(|r| r.partial_success)
                    .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0))
                    .min(count);
                self.stats
                    .exported
                    .fetch_add(count - rejected, Ordering::Relaxed);
                if rejected > 0 {
                    self.stats.drop_spans(rejected);
                    tracing::warn!(rejected, "otel: the collector rejected spans");
                }
            }
            Ok(response) => failed(format!("HTTP {}", response.status())),
            Err(e) => failed(crate::backends::http::error_from_reqwest(&e).message),
        }
    }
}

/// One export request: the spans under one resource and one scope.
pub fn encode(resource: Resource, spans: Vec<Span>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "loreweave".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec()
}
