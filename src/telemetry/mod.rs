//! OpenTelemetry export: every pipeline (a scenario or a chat turn, with its
//! retrieval, embedding and generation) as a trace over OTLP/HTTP protobuf,
//! for Arize Phoenix, Langfuse, Jaeger, Grafana Tempo or any collector.
//!
//! Spans are built directly from the engine's typed lifecycle events
//! ([`spans`]) by a [`Tap`] on the driver ([`OtelTap`]), encoded with the
//! `opentelemetry-proto` messages and sent by one Tokio task behind a
//! bounded queue ([`export`]). No OpenTelemetry SDK: the engine already
//! knows every request's start, end, parent and outcome.
//!
//! Invariants: the tap never blocks or awaits (it runs on the TUI's loop);
//! spans that cannot be queued or sent are dropped and counted
//! ([`dropped_total`]); nothing is exported unless an endpoint is
//! configured ([`settings`]); content only with `capture_content`.

pub mod export;
pub mod settings;
pub mod spans;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::config::{Config, EmbeddingsProvider, LlmProvider, RetrieverProvider};
use crate::engine::event::LifecycleEvent;
use crate::engine::request::{Kind, RequestId};
use crate::engine::{Engine, KB_BACKEND};
use crate::runtime::{Driver, Tap};

pub use export::{Exporter, SpanQueue, StatsSnapshot, dropped_total};
pub use settings::Settings;
pub use spans::{BackendInfo, Lookup, RequestInfo, SpanBuilder, SpanOptions, WallClock};

/// How long a headless command waits for its spans to be sent at exit.
pub const EXIT_FLUSH: Duration = Duration::from_secs(3);

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
    #[error(transparent)]
    Export(#[from] export::ExportError),
}

/// The tap that turns lifecycle events into spans and queues them.
#[derive(Debug)]
pub struct OtelTap {
    builder: SpanBuilder,
    queue: SpanQueue,
    finished: bool,
}

impl OtelTap {
    pub fn new(builder: SpanBuilder, queue: SpanQueue) -> Self {
        Self {
            builder,
            queue,
            finished: false,
        }
    }

    /// Close every open span and the queue (at exit; once).
    fn close(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        for span in self
            .builder
            .close_all(tokio::time::Instant::now().into_std())
        {
            self.queue.push(span);
        }
        self.queue.close();
    }
}

impl Tap for OtelTap {
    fn events(&mut self, engine: &Engine, events: &[LifecycleEvent]) {
        if self.finished {
            return;
        }
        for span in self.builder.on_events(events, &EngineLookup(engine)) {
            self.queue.push(span);
        }
    }

    fn finish(&mut self, _engine: &Engine, _budget: Duration) {
        // The waiting is `Exporter::shutdown`'s, off this loop.
        self.close();
    }
}

impl Drop for OtelTap {
    fn drop(&mut self) {
        self.close();
    }
}

/// Requests as the engine's registry holds them.
pub struct EngineLookup<'a>(pub &'a Engine);

impl Lookup for EngineLookup<'_> {
    fn request(&self, id: RequestId) -> Option<RequestInfo> {
        let registry = self.0.registry();
        let request = registry.get(id)?;
        // Pipelines are shallow; the bound guards against a cycle.
        let mut root = request.id;
        let mut parent = request.parent;
        for _ in 0..16 {
            let Some(p) = parent else { break };
            root = p;
            parent = registry.get(p).and_then(|r| r.parent);
        }
        Some(RequestInfo {
            kind: request.kind,
            backend: request.backend.to_string(),
            parent: request.parent,
            root,
            conversation: request.conversation,
            label: request.label.to_string(),
            created: request.created,
            attempt: request.attempt,
        })
    }

    fn output(&self, id: RequestId) -> Option<String> {
        let request = self.0.registry().get(id)?;
        match request.kind {
            Kind::Scenario => self
                .0
                .scenarios()
                .iter()
                .rev()
                .find(|s| s.request == id)
                .map(|s| s.markdown.clone()),
            Kind::Turn => {
                let conversation = self.0.conversation(request.conversation?)?;
                conversation
                    .messages
                    .iter()
                    .rev()
                    .take(64)
                    .find(|m| m.request == Some(id))
                    .map(|m| m.text.clone())
            }
            _ => None,
        }
    }
}

/// Provider and model of each backend name the config sets up.
pub fn backend_infos(config: &Config) -> HashMap<String, BackendInfo> {
    let model = |m: &str| (!m.trim().is_empty()).then(|| m.trim().to_string());
    let mut out = HashMap::new();
    let llm = &config.llm;
    out.insert(
        llm.name().to_string(),
        BackendInfo {
            provider: llm.provider.as_str().to_string(),
            model: match llm.provider {
                LlmProvider::Offline => Some("offline".into()),
                _ => model(&llm.model),
            },
            remote: llm.provider != LlmProvider::Offline,
        },
    );
    let retriever = &config.retriever;
    out.insert(
        retriever.name().to_string(),
        BackendInfo {
            provider: match retriever.provider {
                RetrieverProvider::Local => "loreweave".into(),
                RetrieverProvider::Hayhooks => "hayhooks".into(),
            },
            model: None,
            remote: retriever.provider != RetrieverProvider::Local,
        },
    );
    if let Some(name) = config.embeddings.name() {
        out.insert(
            name.to_string(),
            BackendInfo {
                provider: match config.embeddings.provider {
                    EmbeddingsProvider::OpenAi => "openai".into(),
                    EmbeddingsProvider::Ollama => "ollama".into(),
                    EmbeddingsProvider::None => "none".into(),
                },
                model: model(&config.embeddings.model),
                remote: true,
            },
        );
    }
    out.insert(
        KB_BACKEND.to_string(),
        BackendInfo {
            provider: "loreweave".into(),
            model: None,
            remote: false,
        },
    );
    out
}

/// The resource every span is under: `service.name` (`OTEL_SERVICE_NAME`,
/// else "loreweave") and the version.
pub fn resource(env: impl Fn(&str) -> Option<String>) -> Resource {
    let service = env("OTEL_SERVICE_NAME")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "loreweave".into());
    Resource {
        attributes: vec![
            spans::kv("service.name", service),
            spans::kv("service.version", env!("CARGO_PKG_VERSION")),
            spans::kv("telemetry.sdk.name", "loreweave"),
            spans::kv("telemetry.sdk.language", "rust"),
        ],
        ..Default::default()
    }
}

/// Follow `driver` with an OpenTelemetry tap when `config` and the
/// `OTEL_*` variables turn export on. Returns the exporter, whose
/// [`Exporter::shutdown`] a caller awaits (bounded) before it exits.
///
/// # Panics
/// Outside a Tokio runtime.
pub fn attach(driver: &mut Driver, config: &Config) -> Result<Option<Exporter>, TelemetryError> {
    let env = |name: &str| std::env::var(name).ok();
    let Some(settings) = settings::resolve(&config.telemetry, env)? else {
        return Ok(None);
    };
    tracing::info!(endpoint = %settings.endpoint, "otel: exporting traces");
    Ok(Some(attach_with(driver, config, &settings, resource(env))?))
}

/// [`attach`] with settings resolved by the caller.
pub fn attach_with(
    driver: &mut Driver,
    config: &Config,
    settings: &Settings,
    resource: Resource,
) -> Result<Exporter, TelemetryError> {
    let (queue, exporter) = Exporter::start(settings, resource)?;
    let clock = WallClock::new(tokio::time::Instant::now().into_std(), SystemTime::now());
    let builder = SpanBuilder::new(
        clock,
        SpanOptions {
            backends: backend_infos(config),
            top_k: driver.engine.config().top_k,
            capture_content: settings.capture_content,
        },
    );
    driver.add_tap(Box::new(OtelTap::new(builder, queue)));
    Ok(exporter)
}
