//! Carries out the engine's effects with tokio: every backend call runs as a
//! task tagged with its request id, and every outcome comes back as an
//! [`Input`] on one channel. The runtime decides nothing: whether a result is
//! still wanted is the engine's call.
//!
//! [`Driver`] glues an [`Engine`] to a [`Runtime`]: it feeds inputs in,
//! executes the effects that come out, and sleeps until the engine's next
//! deadline. The TUI and the headless commands both use it, so there is one
//! code path for the rules.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::backends::{ChatModel, Embedder, Ingester, Retriever, VectorSink};
use crate::domain::{BackendError, ChaosMode};
use crate::engine::request::RequestId;
use crate::engine::{Call, Effect, Engine, Input};

/// The task table is never pruned below this size.
const PRUNE_FLOOR: usize = 64;

/// The backends the runtime can call, by the name the engine uses.
#[derive(Default, Clone)]
pub struct Backends {
    pub retrievers: HashMap<String, Arc<dyn Retriever>>,
    pub models: HashMap<String, Arc<dyn ChatModel>>,
    pub embedders: HashMap<String, Arc<dyn Embedder>>,
    /// Adds documents to the knowledge base in use (`/kb add`).
    pub ingester: Option<Arc<dyn Ingester>>,
    /// Receives chunk vectors embedded as engine requests.
    pub vector_sink: Option<Arc<dyn VectorSink>>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("retrievers", &self.retrievers.keys().collect::<Vec<_>>())
            .field("models", &self.models.keys().collect::<Vec<_>>())
            .field("embedders", &self.embedders.keys().collect::<Vec<_>>())
            .field("ingester", &self.ingester.is_some())
            .finish()
    }
}

#[derive(Debug)]
pub struct Runtime {
    backends: Backends,
    tx: mpsc::UnboundedSender<Input>,
    tasks: HashMap<RequestId, AbortHandle>,
    /// `tasks` is pruned of finished tasks when it reaches this size (then
    /// set to twice what is left): amortised O(1) per dispatch, however
    /// many calls are in flight.
    prune_at: usize,
    /// Where conversations are saved, when they are.
    persister: Option<crate::persist::Persister>,
    /// Ingests run on the blocking pool, where aborting the task does not
    /// stop them: they stop at this flag, between two files.
    cancels: HashMap<RequestId, Arc<AtomicBool>>,
    /// Where exported files go.
    export_dir: PathBuf,
    /// Fault injection by backend name (see `/chaos`).
    chaos: HashMap<String, ChaosMode>,
    rng: SmallRng,
}

impl Runtime {
    pub fn new(backends: Backends, export_dir: PathBuf) -> (Self, mpsc::UnboundedReceiver<Input>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                backends,
                tx,
                tasks: HashMap::new(),
                prune_at: PRUNE_FLOOR,
                persister: None,
                cancels: HashMap::new(),
                export_dir,
                chaos: HashMap::new(),
                rng: SmallRng::seed_from_u64(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos() as u64),
                ),
            },
            rx,
        )
    }

    /// Save conversations through `persister` from now on.
    pub fn set_persister(&mut self, persister: crate::persist::Persister) {
        self.persister = Some(persister);
    }

    /// Swap the backends; tasks already running keep the ones they have.
    pub fn replace_backends(&mut self, backends: Backends) {
        self.backends = backends;
    }

    /// Number of tasks that may still be running (finished ones are pruned
    /// lazily).
    pub fn running_tasks(&mut self) -> usize {
        self.tasks.retain(|_, handle| !handle.is_finished());
        self.tasks.len()
    }

    pub fn execute(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Dispatch { id, backend, call } => self.dispatch(id, backend, call),
                Effect::Abort { id } => {
                    if let Some(cancel) = self.cancels.remove(&id) {
                        cancel.store(true, Ordering::Relaxed);
                    }
                    if let Some(handle) = self.tasks.remove(&id) {
                        handle.abort();
                        tracing::debug!(id = %id, "task aborted");
                    }
                }
                // The task keeps running, detached from its ended request;
                // the engine sends `Abort` when the grace ends.
                Effect::Observe { id, until } => {
                    tracing::debug!(id = %id, ?until, "task observed past its deadline");
                }
                Effect::ChunkVectors { batch, result } => {
                    if let Some(sink) = &self.backends.vector_sink {
                        sink.deliver(batch, result);
                    }
                }
                Effect::Export {
                    path_hint,
                    contents,
                } => self.export(path_hint, contents),
                Effect::Chaos { backend, mode } => match mode {
                    Some(mode) => {
                        self.chaos.insert(backend, mode);
                    }
                    None => {
                        self.chaos.remove(&backend);
                    }
                },
                // Persistence belongs to the session store, which wires
                // these to its own thread; until then nothing is saved.
                effect @ (Effect::SaveReply { .. }
                | Effect::SaveRequests(_)
                | Effect::SaveScenario { .. }
                | Effect::DropQueued { .. }) => {
                    // Without a session database (headless without
                    // --session, tests) nothing is saved.
                    if let Some(persister) = &self.persister {
                        persister.execute(effect);
                    }
                }
            }
        }
    }

    fn dispatch(&mut self, id: RequestId, backend: String, call: Call) {
        if self.tasks.len() >= self.prune_at {
            self.tasks.retain(|_, handle| !handle.is_finished());
            self.cancels.retain(|id, _| self.tasks.contains_key(id));
            self.prune_at = (2 * self.tasks.len()).max(PRUNE_FLOOR);
        }
        let tx = self.tx.clone();
        let chaos = Chaos::roll(self.chaos.get(&backend).copied(), &mut self.rng);
        let handle = match call {
            Call::Retrieve(query) => {
                let retriever = self.backends.retrievers.get(&backend).cloned();
                tokio::spawn(async move {
                    let result = match (chaos.apply().await, retriever) {
                        (Err(error), _) => Err(error),
                        (Ok(()), Some(retriever)) => retriever.retrieve(query).await,
                        (Ok(()), None) => Err(BackendError::permanent(format!(
                            "no retriever named `{backend}`"
                        ))),
                    };
                    let _ = tx.send(Input::Retrieved {
                        id,
                        backend,
                        result,
                    });
                })
            }
            Call::Embed(texts) => {
                let embedder = self.backends.embedders.get(&backend).cloned();
                tokio::spawn(async move {
                    let result = match (chaos.apply().await, embedder) {
                        (Err(error), _) => Err(error),
                        (Ok(()), Some(embedder)) => embedder.embed(texts).await,
                        (Ok(()), None) => Err(BackendError::permanent(format!(
                            "no embeddings backend named `{backend}`"
                        ))),
                    };
                    let _ = tx.send(Input::Embedded {
                        id,
                        backend,
                        result,
                    });
                })
            }
            Call::Ingest(paths) => {
                let ingester = self.backends.ingester.clone();
                let cancel = Arc::new(AtomicBool::new(false));
                self.cancels.insert(id, cancel.clone());
                tokio::spawn(async move {
                    let Some(ingester) = ingester else {
                        let _ = tx.send(Input::Ingested {
                            id,
                            backend,
                            result: Err("this retriever has no local knowledge base".into()),
                        });
                        return;
                    };
                    let progress_tx = tx.clone();
                    let work = tokio::task::spawn_blocking(move || {
                        // At most a few progress updates a second reach the engine.
                        let mut last: Option<std::time::Instant> = None;
                        let mut progress = |p: crate::kb::store::Progress| {
                            let due = last.is_none_or(|t| t.elapsed().as_millis() >= 200)
                                || p.files_done == p.files_total;
                            if due {
                                last = Some(std::time::Instant::now());
                                let _ = progress_tx.send(Input::IngestProgress {
                                    id,
                                    files_done: p.files_done,
                                    files_total: p.files_total,
                                    chunks: p.chunks,
                                });
                            }
                        };
                        ingester.ingest(paths, &mut progress, &cancel)
                    });
                    let result = work
                        .await
                        .unwrap_or_else(|e| Err(format!("the ingest task failed: {e}")));
                    let _ = tx.send(Input::Ingested {
                        id,
                        backend,
                        result,
                    });
                })
            }
            Call::Generate(task) => {
                let model = self.backends.models.get(&backend).cloned();
                tokio::spawn(async move {
                    if let Err(error) = chaos.apply().await {
                        let _ = tx.send(Input::Finished {
                            id,
                            backend,
                            result: Err(error),
                        });
                        return;
                    }
                    let Some(model) = model else {
                        let error =
                            BackendError::permanent(format!("no generator named `{backend}`"));
                        let _ = tx.send(Input::Finished {
                            id,
                            backend,
                            result: Err(error),
                        });
                        return;
                    };
                    let mut stream = model.generate(task);
                    let mut result = Ok(());
                    while let Some(item) = stream.next().await {
                        match item {
                            Ok(chunk) => {
                                let input = match chunk {
                                    crate::backends::Chunk::Text(text) => Input::Token {
                                        id,
                                        backend: backend.clone(),
                                        text,
                                    },
                                    crate::backends::Chunk::Usage(usage) => Input::Usage {
                                        id,
                                        backend: backend.clone(),
                                        usage,
                                    },
                                };
                                if tx.send(input).is_err() {
                                    return;
                                }
                            }
                            Err(error) => {
                                result = Err(error);
                                break;
                            }
                        }
                    }
                    let _ = tx.send(Input::Finished {
                        id,
                        backend,
                        result,
                    });
                })
            }
        };
        self.tasks.insert(id, handle.abort_handle());
    }

    fn export(&self, path_hint: String, contents: String) {
        let tx = self.tx.clone();
        let dir = self.export_dir.clone();
        tokio::task::spawn_blocking(move || {
            let result = write_new_file(&dir, &path_hint, &contents)
                .map(|p| p.display().to_string())
                .map_err(|e| e.to_string());
            let _ = tx.send(Input::Exported { result });
        });
    }
}

/// What fault injection does to one call, decided when it is dispatched.
#[derive(Debug, Clone, Copy)]
enum Chaos {
    None,
    Delay(std::time::Duration),
    Fail,
    Hang,
}

impl Chaos {
    fn roll(mode: Option<ChaosMode>, rng: &mut SmallRng) -> Self {
        match mode {
            None => Chaos::None,
            Some(ChaosMode::Latency(d)) => Chaos::Delay(d),
            Some(ChaosMode::Hang) => Chaos::Hang,
            Some(ChaosMode::Fail { percent }) => {
                if rng.random_range(0..100u8) < percent {
                    Chaos::Fail
                } else {
                    Chaos::None
                }
            }
        }
    }

    async fn apply(self) -> Result<(), BackendError> {
        match self {
            Chaos::None => Ok(()),
            Chaos::Delay(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
            Chaos::Fail => Err(BackendError::transient("chaos: injected failure")),
            Chaos::Hang => std::future::pending().await,
        }
    }
}

/// Write `<dir>/<stem>.md`, or `<stem>-2.md`, ... : never overwrite a file.
pub fn write_new_file(
    dir: &std::path::Path,
    stem: &str,
    contents: &str,
) -> std::io::Result<PathBuf> {
    use std::io::Write;
    for n in 1..1_000 {
        let name = if n == 1 {
            format!("{stem}.md")
        } else {
            format!("{stem}-{n}.md")
        };
        let path = dir.join(name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => {
                file.write_all(contents.as_bytes())?;
                file.sync_all()?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(format!(
        "too many files named {stem}-N.md"
    )))
}

/// An engine and a runtime wired together.
#[derive(Debug)]
pub struct Driver {
    pub engine: Engine,
    pub runtime: Runtime,
    rx: mpsc::UnboundedReceiver<Input>,
    taps: Vec<Box<dyn Tap>>,
}

/// Something that follows the engine: every input with its time, and every
/// lifecycle event it produced (the JSON Lines trace, the OpenTelemetry
/// exporter). Called on the driver's task, so a tap must never block: one
/// that does I/O hands its work to a thread or a task of its own.
pub trait Tap: Send + std::fmt::Debug {
    /// An input about to be handled at `at`.
    fn input(&mut self, _at: std::time::Instant, _input: &Input) {}
    /// The events handling one input produced, oldest first.
    fn events(&mut self, _engine: &Engine, _events: &[crate::engine::event::LifecycleEvent]) {}
    /// loreweave is leaving: write out what is buffered, within `budget`.
    fn finish(&mut self, _engine: &Engine, _budget: std::time::Duration) {}
}

impl Driver {
    pub fn new(engine: Engine, runtime: Runtime, rx: mpsc::UnboundedReceiver<Input>) -> Self {
        Self {
            engine,
            runtime,
            rx,
            taps: Vec::new(),
        }
    }

    /// Follow the engine with `tap` from now on.
    pub fn add_tap(&mut self, tap: Box<dyn Tap>) {
        self.engine.set_event_tap(true);
        self.taps.push(tap);
    }

    /// Apply one input now and carry out the effects.
    pub fn apply(&mut self, input: Input) {
        let now = Instant::now().into_std();
        for tap in &mut self.taps {
            tap.input(now, &input);
        }
        let effects = self.engine.handle(input, now);
        self.feed_taps();
        self.runtime.execute(effects);
    }

    fn feed_taps(&mut self) {
        if self.taps.is_empty() {
            return;
        }
        let events = self.engine.take_events();
        if events.is_empty() {
            return;
        }
        for tap in &mut self.taps {
            tap.events(&self.engine, &events);
        }
    }

    /// Let every tap write out what it holds (at exit), each within `budget`.
    pub fn finish_taps(&mut self, budget: std::time::Duration) {
        self.feed_taps();
        for tap in &mut self.taps {
            tap.finish(&self.engine, budget);
        }
    }

    /// The next input: a task's result, or a tick at the engine's next
    /// deadline. Cancel-safe (usable in `select!`).
    pub async fn next_input(&mut self) -> Input {
        let deadline = self.engine.next_deadline().map(Instant::from_std);
        match deadline {
            Some(at) => tokio::select! {
                input = self.rx.recv() => input.unwrap_or(Input::Tick),
                () = tokio::time::sleep_until(at) => Input::Tick,
            },
            None => match self.rx.recv().await {
                Some(input) => input,
                // The runtime holds a sender, so the channel never closes
                // while the driver lives; wait forever rather than spin.
                None => std::future::pending().await,
            },
        }
    }

    /// At exit: abort every call still observed past its deadline and
    /// count it as abandoned. Returns how many there were.
    pub fn abandon_observed(&mut self) -> usize {
        let now = Instant::now().into_std();
        let count = self.engine.observed_count();
        let effects = self.engine.abandon_observed(now);
        self.feed_taps();
        self.runtime.execute(effects);
        count
    }

    /// A result that is ready now, without waiting.
    pub fn try_next_input(&mut self) -> Option<Input> {
        self.rx.try_recv().ok()
    }

    /// Run until `done` says so, applying every input; bounded by the
    /// engine's deadlines (every request has one through its children).
    pub async fn run_until(&mut self, mut done: impl FnMut(&Engine) -> bool) {
        while !done(&self.engine) {
            let input = self.next_input().await;
            self.apply(input);
        }
    }
}
