//! The OpenTelemetry exporter against real sockets: a collector that is not
//! there (the tap never blocks, every span is counted as dropped) and a tiny
//! in-process collector whose request body is decoded as OTLP protobuf.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use loreweave::engine::event::{EventKind, LifecycleEvent};
use loreweave::engine::request::{Kind, Outcome, RequestId};
use loreweave::engine::{Engine, EngineConfig};
use loreweave::runtime::Tap;
use loreweave::telemetry::{
    Exporter, OtelTap, Settings, SpanBuilder, SpanOptions, WallClock, dropped_total, resource,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use ulid::Ulid;

fn engine() -> Engine {
    Engine::new(
        EngineConfig::default(),
        Instant::now(),
        SystemTime::now(),
        1,
    )
}

fn tap(settings: &Settings) -> (OtelTap, Exporter) {
    let (queue, exporter) =
        Exporter::start(settings, resource(|_| None)).expect("the exporter starts");
    let builder = SpanBuilder::new(
        WallClock::new(Instant::now(), SystemTime::now()),
        SpanOptions::default(),
    );
    (OtelTap::new(builder, queue), exporter)
}

/// `n` pipelines of one scenario and one retrieval, each ending: 2n spans.
fn pipelines(n: usize) -> Vec<LifecycleEvent> {
    let now = Instant::now();
    let mut out = Vec::new();
    for _ in 0..n {
        let root = RequestId(Ulid::new());
        let child = RequestId(Ulid::new());
        let event = |id, parent, kind, backend: &str, event| LifecycleEvent {
            at: now,
            t_ms: 0,
            id: Some(id),
            parent,
            kind: Some(kind),
            backend: backend.into(),
            conversation: None,
            event,
        };
        out.push(event(
            child,
            Some(root),
            Kind::Retrieve,
            "local",
            EventKind::Dispatched { attempt: 1 },
        ));
        out.push(event(
            child,
            Some(root),
            Kind::Retrieve,
            "local",
            EventKind::Final {
                outcome: Outcome::TimedOut,
            },
        ));
        out.push(event(
            root,
            None,
            Kind::Scenario,
            "pipeline",
            EventKind::Final {
                outcome: Outcome::Completed,
            },
        ));
    }
    out
}

/// A port where nothing listens: bound, then let go.
fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

#[tokio::test]
async fn an_unreachable_collector_never_blocks_the_tap_and_every_span_is_counted_dropped() {
    let mut settings =
        Settings::for_endpoint(format!("http://127.0.0.1:{}/v1/traces", dead_port()));
    settings.queue_size = 4;
    settings.max_batch = 2;
    settings.export_timeout = Duration::from_secs(5);
    let before = dropped_total();
    let (mut tap, exporter) = tap(&settings);
    let engine = engine();

    // 50 spans at once, on this (single) thread: the export task cannot
    // run meanwhile, so the queue holds 4 and the rest are dropped at once
    // instead of waiting.
    tap.events(&engine, &pipelines(25));
    let stats = exporter.stats();
    assert_eq!((stats.queued, stats.dropped), (4, 46), "{stats:?}");

    tap.finish(&engine, Duration::from_secs(1));
    let stats = exporter.shutdown(Duration::from_secs(30)).await;
    assert_eq!(stats.exported, 0, "{stats:?}");
    assert_eq!(stats.dropped, 50, "the 4 queued failed to send: {stats:?}");
    assert!(stats.failed_requests >= 1, "{stats:?}");
    assert_eq!(stats.pending(), 0);
    assert!(dropped_total() >= before + 50);
}

#[derive(Default)]
struct Received {
    content_type: Option<String>,
    authorization: Option<String>,
    bodies: Vec<Vec<u8>>,
}

#[tokio::test]
async fn a_collector_receives_protobuf_it_can_decode() {
    use axum::http::HeaderMap;
    use axum::routing::post;

    let received = Arc::new(Mutex::new(Received::default()));
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let mut r = sink.lock().expect("lock");
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                r.content_type = header("content-type");
                r.authorization = header("authorization");
                r.bodies.push(body.to_vec());
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut settings = Settings::for_endpoint(format!("http://127.0.0.1:{port}/v1/traces"));
    settings.headers = vec![("authorization".into(), "Bearer t0ken".into())];
    let (mut tap, exporter) = tap(&settings);
    let engine = engine();
    tap.events(&engine, &pipelines(2));
    tap.finish(&engine, Duration::from_secs(1));
    let stats = exporter.shutdown(Duration::from_secs(30)).await;
    server.abort();
    assert_eq!((stats.exported, stats.dropped), (4, 0), "{stats:?}");

    let received = received.lock().expect("lock");
    assert_eq!(
        received.content_type.as_deref(),
        Some("application/x-protobuf")
    );
    assert_eq!(received.authorization.as_deref(), Some("Bearer t0ken"));
    let mut spans = Vec::new();
    for body in &received.bodies {
        let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
        for rs in request.resource_spans {
            let resource = rs.resource.expect("a resource");
            let service = resource
                .attributes
                .iter()
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.clone())
                .and_then(|v| v.value);
            assert_eq!(service, Some(Value::StringValue("loreweave".into())));
            for ss in rs.scope_spans {
                assert_eq!(ss.scope.map(|s| s.name).as_deref(), Some("loreweave"));
                spans.extend(ss.spans);
            }
        }
    }
    assert_eq!(spans.len(), 4);
    let roots: Vec<_> = spans.iter().filter(|s| s.name == "scenario").collect();
    let children: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "retrieval local")
        .collect();
    assert_eq!((roots.len(), children.len()), (2, 2));
    for child in children {
        let parent = roots
            .iter()
            .find(|r| r.span_id == child.parent_span_id)
            .expect("the child's parent is a scenario span");
        assert_eq!(parent.trace_id, child.trace_id);
        assert_eq!(
            child.status.as_ref().map(|s| s.message.as_str()),
            Some("timed out")
        );
    }
}
