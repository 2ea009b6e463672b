//! The runtime under tokio's paused clock, with in-memory backends (never
//! real sockets under a paused clock): deadlines fire exactly, hung tasks
//! are aborted (or, on an observing backend, observed until they answer
//! late or their grace ends), and the pipeline goes on without lore.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use loreweave::backends::offline::{OfflineModel, Tables};
use loreweave::backends::{RetrieveQuery, Retriever};
use loreweave::domain::{BackendError, Passage};
use loreweave::engine::limits::LatePolicy;
use loreweave::engine::request::{Kind, Outcome};
use loreweave::engine::workspace::ConversationId;
use loreweave::engine::workspace::ScenarioStatus;
use loreweave::engine::{Command, EngineConfig, Input};
use loreweave::runtime::{Backends, Driver};

/// The conversation every test talks in.
const C: ConversationId = ConversationId(1);

/// A driver with conversation `C` open.
fn opened(mut driver: Driver) -> Driver {
    driver
        .engine
        .open_conversation(C, "test", Vec::new(), Vec::new());
    driver
}

/// Sets its flag when dropped: proves the task holding it was aborted.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A retriever that never answers.
struct HungRetriever {
    dropped: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

impl Retriever for HungRetriever {
    fn retrieve(
        &self,
        _query: RetrieveQuery,
    ) -> BoxFuture<'static, Result<Vec<Passage>, BackendError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let flag = DropFlag(self.dropped.clone());
        Box::pin(async move {
            let _flag = flag;
            std::future::pending::<()>().await;
            unreachable!("pending never resolves")
        })
    }
}

fn driver_with(retriever: Arc<dyn Retriever>, cfg: EngineConfig) -> Driver {
    let mut backends = Backends::default();
    backends.retrievers.insert("local".into(), retriever);
    let tables = Arc::new(Tables::embedded().expect("embedded tables parse"));
    backends
        .models
        .insert("offline".into(), Arc::new(OfflineModel::new(tables)));
    opened(loreweave::app::driver(cfg, backends))
}

#[tokio::test(start_paused = true)]
async fn hung_retriever_times_out_at_its_deadline_is_aborted_and_generation_proceeds() {
    let dropped = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let retriever = Arc::new(HungRetriever {
        dropped: dropped.clone(),
        calls: calls.clone(),
    });
    // Under `abort` (observing is covered below).
    let mut cfg = EngineConfig::default();
    cfg.retrieval_policy.late_policy = LatePolicy::Abort;
    let mut driver = driver_with(retriever, cfg);
    let start = tokio::time::Instant::now();
    driver.apply(Input::Command(Command::Scenario {
        conversation: C,
        prompt: "the first encounter".into(),
        seed: Some(3),
    }));
    driver.run_until(|engine| !engine.is_busy()).await;

    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        tokio::time::Instant::now() - start,
        Duration::from_secs(10),
        "the whole pipeline ends right at the retrieval deadline"
    );
    let engine = &driver.engine;
    let all = engine.registry().all();
    let retrieve = all
        .iter()
        .find(|r| r.kind == Kind::Retrieve)
        .expect("retrieve request");
    assert_eq!(retrieve.outcome(), Some(&Outcome::TimedOut));
    assert_eq!(
        retrieve
            .ended
            .map(|e| e - retrieve.dispatched.expect("dispatched")),
        Some(Duration::from_secs(10)),
        "timed out exactly at its deadline"
    );
    let generate = all
        .iter()
        .find(|r| r.kind == Kind::Generate)
        .expect("generation ran");
    assert_eq!(generate.outcome(), Some(&Outcome::Completed));
    let scenario = &engine.scenarios()[0];
    assert_eq!(scenario.status, ScenarioStatus::Done);
    assert_eq!(
        scenario.no_lore.as_deref(),
        Some("retrieval timed out after 10 s")
    );
    assert!(
        scenario.markdown.contains("No lore"),
        "{}",
        scenario.markdown
    );

    // Abort is delivered when the runtime next polls the task.
    for _ in 0..10 {
        if dropped.load(Ordering::SeqCst) {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(
        dropped.load(Ordering::SeqCst),
        "the hung retrieval task was aborted"
    );
    assert_eq!(driver.runtime.running_tasks(), 0);
}

#[tokio::test(start_paused = true)]
async fn retrieval_deadline_follows_the_configured_timeout() {
    let retriever = Arc::new(HungRetriever {
        dropped: Arc::new(AtomicBool::new(false)),
        calls: Arc::new(AtomicUsize::new(0)),
    });
    let cfg = EngineConfig {
        retrieval_timeout: Duration::from_millis(250),
        ..EngineConfig::default()
    };
    let mut driver = driver_with(retriever, cfg);
    let start = tokio::time::Instant::now();
    driver.apply(Input::Command(Command::Ask {
        conversation: C,
        text: "who guards the waystone?".into(),
        tag: None,
    }));
    driver.run_until(|engine| !engine.is_busy()).await;
    assert_eq!(
        tokio::time::Instant::now() - start,
        Duration::from_millis(250)
    );
    let reply = driver
        .engine
        .conversation(C)
        .expect("conversation C")
        .messages
        .last()
        .expect("a reply");
    assert_eq!(
        reply.no_lore.as_deref(),
        Some("retrieval timed out after 250 ms")
    );
    assert!(reply.text.contains("No lore"), "{}", reply.text);
}

#[tokio::test(start_paused = true)]
async fn embedded_defaults_answer_with_citations() {
    let kb = loreweave::backends::local::KbHandle::start_build(loreweave::kb::embedded_lore());
    let backends = loreweave::app::default_backends(kb).expect("backends");
    let mut driver = opened(loreweave::app::driver(EngineConfig::default(), backends));
    driver.apply(Input::Command(Command::Ask {
        conversation: C,
        text: "who guards the waystone?".into(),
        tag: None,
    }));
    driver.run_until(|engine| !engine.is_busy()).await;
    let reply = driver
        .engine
        .conversation(C)
        .expect("conversation C")
        .messages
        .last()
        .expect("a reply");
    assert!(reply.text.contains("[1]"), "{}", reply.text);
    assert!(reply.text.contains("Warden Tamsin Orrel"), "{}", reply.text);
    assert!(
        reply.text.contains("shattered-waystone.md"),
        "{}",
        reply.text
    );
    assert!(
        reply.text.to_lowercase().contains("offline"),
        "offline answers are labelled"
    );
    assert_eq!(reply.no_lore, None);
}

/// Answers after a fixed delay, whatever the deadline.
struct SlowRetriever(Duration);

impl Retriever for SlowRetriever {
    fn retrieve(
        &self,
        _query: RetrieveQuery,
    ) -> BoxFuture<'static, Result<Vec<Passage>, BackendError>> {
        let delay = self.0;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            Ok(Vec::new())
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_result_arriving_at_the_deadline_is_a_counted_late_drop() {
    let mut driver = driver_with(
        Arc::new(SlowRetriever(Duration::from_secs(10))),
        EngineConfig::default(),
    );
    driver.apply(Input::Command(Command::Scenario {
        conversation: C,
        prompt: "the first encounter".into(),
        seed: Some(1),
    }));
    // Let the retriever start, then finish at exactly the deadline and post
    // its result before the engine hears of the time.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    tokio::time::advance(Duration::from_secs(10)).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    driver.run_until(|engine| !engine.is_busy()).await;
    let engine = &driver.engine;
    let retrieve = engine
        .registry()
        .all()
        .into_iter()
        .find(|r| r.kind == Kind::Retrieve)
        .expect("retrieve");
    assert_eq!(retrieve.outcome(), Some(&Outcome::TimedOut));
    assert_eq!(retrieve.late_drops, 1, "{:?}", retrieve.timeline);
    assert_eq!(engine.backends()["local"].metrics.late_drops, 1);
    assert_eq!(engine.total_late_drops(), 1);
    assert_eq!(
        engine.scenarios()[0].no_lore.as_deref(),
        Some("retrieval timed out after 10 s"),
        "the late result was not applied"
    );
}

#[tokio::test(start_paused = true)]
async fn chaos_failures_are_retried_then_trip_the_breaker() {
    let kb = loreweave::backends::local::KbHandle::start_build(loreweave::kb::embedded_lore());
    let backends = loreweave::app::default_backends(kb).expect("backends");
    let mut driver = opened(loreweave::app::driver(EngineConfig::default(), backends));
    driver.apply(Input::Command(Command::Chaos {
        backend: Some("local".into()),
        mode: Some(loreweave::domain::ChaosMode::Fail { percent: 100 }),
    }));
    for n in 0..2 {
        driver.apply(Input::Command(Command::Scenario {
            conversation: C,
            prompt: format!("prompt {n}"),
            seed: Some(n),
        }));
        driver.run_until(|engine| !engine.is_busy()).await;
    }
    let engine = &driver.engine;
    let local = &engine.backends()["local"];
    // Two scenarios x three attempts = six failures: the breaker opened on
    // the fifth, so the sixth attempt was short-circuited.
    assert_eq!(local.metrics.retries, 4, "{:?}", local.metrics.snapshot());
    assert_eq!(local.breaker.label(), "open");
    assert_eq!(local.metrics.failed + local.metrics.short_circuited, 2);
    for entry in engine.scenarios() {
        assert!(entry.no_lore.is_some(), "fell back without lore");
        assert_eq!(entry.status, ScenarioStatus::Done);
    }
    assert!(
        engine
            .registry()
            .events()
            .iter()
            .any(|e| e.text().contains("closed -> open")),
        "the transition is in the feed"
    );
}

#[tokio::test(start_paused = true)]
async fn chaos_hang_times_out_and_chaos_off_restores() {
    let kb = loreweave::backends::local::KbHandle::start_build(loreweave::kb::embedded_lore());
    let backends = loreweave::app::default_backends(kb).expect("backends");
    let mut driver = opened(loreweave::app::driver(EngineConfig::default(), backends));
    driver.apply(Input::Command(Command::Chaos {
        backend: Some("local".into()),
        mode: Some(loreweave::domain::ChaosMode::Hang),
    }));
    let start = tokio::time::Instant::now();
    driver.apply(Input::Command(Command::Ask {
        conversation: C,
        text: "who guards the waystone?".into(),
        tag: None,
    }));
    driver.run_until(|engine| !engine.is_busy()).await;
    assert_eq!(tokio::time::Instant::now() - start, Duration::from_secs(10));
    assert_eq!(
        driver.runtime.running_tasks(),
        1,
        "the hung call is observed, detached"
    );
    assert_eq!(driver.engine.observed_count(), 1);
    driver.apply(Input::Command(Command::Chaos {
        backend: None,
        mode: None,
    }));
    driver.apply(Input::Command(Command::Ask {
        conversation: C,
        text: "who guards the waystone?".into(),
        tag: None,
    }));
    driver.run_until(|engine| !engine.is_busy()).await;
    let reply = driver
        .engine
        .conversation(C)
        .expect("conversation C")
        .messages
        .last()
        .expect("reply");
    assert!(reply.text.contains("Warden Tamsin Orrel"), "{}", reply.text);
}

#[tokio::test(start_paused = true)]
async fn a_real_late_answer_is_observed_and_reported() {
    let mut driver = driver_with(
        Arc::new(SlowRetriever(Duration::from_secs(12))),
        EngineConfig::default(),
    );
    let start = tokio::time::Instant::now();
    driver.apply(Input::Command(Command::Scenario {
        conversation: C,
        prompt: "the first encounter".into(),
        seed: Some(1),
    }));
    // A headless command is done at the deadline: it does not wait.
    driver.run_until(|engine| !engine.is_busy()).await;
    assert_eq!(tokio::time::Instant::now() - start, Duration::from_secs(10));
    assert_eq!(driver.engine.observed_count(), 1);
    assert_eq!(driver.runtime.running_tasks(), 1, "the call runs on");

    driver
        .run_until(|engine| engine.observed_count() == 0)
        .await;
    assert_eq!(tokio::time::Instant::now() - start, Duration::from_secs(12));
    let engine = &driver.engine;
    let retrieve = engine
        .registry()
        .all()
        .into_iter()
        .find(|r| r.kind == Kind::Retrieve)
        .expect("retrieve");
    assert_eq!(retrieve.outcome(), Some(&Outcome::TimedOut));
    let arrivals: Vec<String> = retrieve
        .timeline
        .iter()
        .map(|e| e.text())
        .filter(|w| w.starts_with("late arrival"))
        .collect();
    assert_eq!(
        arrivals,
        vec!["late arrival: retrieval result 2s after the deadline"]
    );
    let m = engine.backends()["local"].metrics.snapshot();
    assert_eq!((m.late_arrivals, m.late_abandoned, m.observing), (1, 0, 0));
    assert!(
        (1_990..=2_010).contains(&m.late_p50_ms.unwrap_or(0)),
        "{m:?}"
    );
    assert_eq!(
        engine.scenarios()[0].no_lore.as_deref(),
        Some("retrieval timed out after 10 s"),
        "the late answer was not applied"
    );
    assert_eq!(driver.runtime.running_tasks(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_observed_call_still_hung_at_the_grace_end_is_aborted() {
    let dropped = Arc::new(AtomicBool::new(false));
    let retriever = Arc::new(HungRetriever {
        dropped: dropped.clone(),
        calls: Arc::new(AtomicUsize::new(0)),
    });
    let mut cfg = EngineConfig::default();
    cfg.retrieval_policy.late_grace = Duration::from_secs(5);
    let mut driver = driver_with(retriever, cfg);
    let start = tokio::time::Instant::now();
    driver.apply(Input::Command(Command::Scenario {
        conversation: C,
        prompt: "the first encounter".into(),
        seed: Some(3),
    }));
    driver.run_until(|engine| !engine.is_busy()).await;
    assert!(!dropped.load(Ordering::SeqCst), "observed, not aborted");
    assert_eq!(driver.runtime.running_tasks(), 1);
    driver
        .run_until(|engine| engine.observed_count() == 0)
        .await;
    assert_eq!(tokio::time::Instant::now() - start, Duration::from_secs(15));
    for _ in 0..10 {
        if dropped.load(Ordering::SeqCst) {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(dropped.load(Ordering::SeqCst), "aborted at the grace end");
    assert_eq!(driver.engine.backends()["local"].metrics.late_abandoned, 1);
    assert_eq!(driver.runtime.running_tasks(), 0);
}

#[tokio::test(start_paused = true)]
async fn calls_still_observed_at_exit_are_aborted_and_counted_abandoned() {
    let dropped = Arc::new(AtomicBool::new(false));
    let retriever = Arc::new(HungRetriever {
        dropped: dropped.clone(),
        calls: Arc::new(AtomicUsize::new(0)),
    });
    let mut driver = driver_with(retriever, EngineConfig::default());
    driver.apply(Input::Command(Command::Ask {
        conversation: C,
        text: "who guards the waystone?".into(),
        tag: None,
    }));
    driver.run_until(|engine| !engine.is_busy()).await;
    assert_eq!(driver.abandon_observed(), 1);
    for _ in 0..10 {
        if dropped.load(Ordering::SeqCst) {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(dropped.load(Ordering::SeqCst), "aborted at exit");
    assert_eq!(driver.engine.backends()["local"].metrics.late_abandoned, 1);
    assert_eq!(driver.engine.observed_count(), 0);
}

/// Works file by file until told to stop (at most ~10 s, so a broken
/// cancel fails the test instead of hanging it).
struct StoppableIngester {
    saw_cancel: Arc<AtomicBool>,
}

impl loreweave::backends::Ingester for StoppableIngester {
    fn ingest(
        &self,
        _paths: Vec<String>,
        progress: &mut dyn FnMut(loreweave::kb::store::Progress),
        cancel: &AtomicBool,
    ) -> Result<String, String> {
        for done in 0..1000 {
            if cancel.load(Ordering::Relaxed) {
                self.saw_cancel.store(true, Ordering::Relaxed);
                return Ok(format!("stopped after {done} files"));
            }
            progress(loreweave::kb::store::Progress {
                files_done: done,
                files_total: 1000,
                chunks: done * 2,
            });
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok("done".into())
    }
}

#[tokio::test]
async fn an_ingest_shows_progress_and_stops_between_files_when_cancelled() {
    let saw_cancel = Arc::new(AtomicBool::new(false));
    let backends = Backends {
        ingester: Some(Arc::new(StoppableIngester {
            saw_cancel: saw_cancel.clone(),
        })),
        ..Backends::default()
    };
    let mut driver = opened(loreweave::app::driver(EngineConfig::default(), backends));
    driver.apply(Input::Command(Command::KbAdd {
        paths: vec!["notes".into()],
    }));
    let id = driver
        .engine
        .registry()
        .all()
        .into_iter()
        .find(|r| r.kind == Kind::Ingest)
        .map(|r| r.id)
        .expect("an ingest request");
    // Progress arrives (bounded: the ingester ends by itself in ~10 s).
    driver
        .run_until(|engine| {
            engine
                .registry()
                .get(id)
                .is_some_and(|r| r.progress.is_some() || r.outcome().is_some())
        })
        .await;
    let progress = driver
        .engine
        .registry()
        .get(id)
        .and_then(|r| r.progress.clone());
    assert!(
        progress
            .as_deref()
            .is_some_and(|p| p.contains("/1000 files")),
        "{progress:?}"
    );
    driver.apply(Input::Command(Command::Cancel { id: id.to_string() }));
    assert_eq!(
        driver.engine.registry().get(id).and_then(|r| r.outcome()),
        Some(&Outcome::Cancelled)
    );
    // The blocking work sees the flag at its next file and ends.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !saw_cancel.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        saw_cancel.load(Ordering::Relaxed),
        "the ingest never saw the cancel"
    );
}
