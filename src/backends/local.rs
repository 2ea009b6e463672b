//! The `local` retriever: searches the built-in [`KnowledgeBase`], which is
//! built in the background on tokio's blocking pool.
//!
//! Invariants: a [`KbHandle`]'s state only ever moves from `Building` to
//! `Ready` or `Failed`, once; searches run on the blocking pool, never on an
//! async worker; a retrieve issued while the index is still building waits
//! for it (the engine's deadline bounds the wait), and build or search
//! failures are reported as permanent backend errors.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot, watch};

use crate::backends::{Embedder, RetrieveQuery, Retriever};
use crate::domain::{BackendError, Passage};
use crate::kb::vectors::{VectorIndex, fuse};
use crate::kb::{Document, KbError, KnowledgeBase};

/// Where the background index build stands.
#[derive(Debug, Clone)]
pub enum KbState {
    Building,
    Ready(Arc<KnowledgeBase>, IndexStats),
    Failed(String),
}

/// Size of the built index and how long building it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexStats {
    pub documents: usize,
    pub chunks: usize,
    pub build_time: Duration,
}

/// A shared view of the knowledge base's build state.
#[derive(Debug, Clone)]
pub struct KbHandle {
    state: watch::Receiver<KbState>,
    /// Present on handles that can be switched to another knowledge base.
    tx: Option<Arc<watch::Sender<KbState>>>,
}

impl KbHandle {
    /// Start building the index on tokio's blocking pool and return at once.
    ///
    /// # Panics
    /// When called outside a tokio runtime.
    pub fn start_build(docs: Vec<Document>) -> KbHandle {
        let (tx, rx) = watch::channel(KbState::Building);
        tokio::task::spawn_blocking(move || {
            let built =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| build_timed(docs)));
            let state = match built {
                Ok(Ok((kb, stats))) => {
                    log_ready(&stats);
                    KbState::Ready(Arc::new(kb), stats)
                }
                Ok(Err(error)) => {
                    tracing::error!(%error, "knowledge base index build failed");
                    KbState::Failed(error.to_string())
                }
                Err(_) => {
                    tracing::error!("knowledge base index build panicked");
                    KbState::Failed("the index build panicked".to_owned())
                }
            };
            tx.send_replace(state);
        });
        KbHandle {
            state: rx,
            tx: None,
        }
    }

    /// Open (or build) a knowledge base on tokio's blocking pool with
    /// `open`, and return at once.
    ///
    /// # Panics
    /// When called outside a tokio runtime.
    pub fn start_open<F>(open: F) -> KbHandle
    where
        F: FnOnce() -> Result<KnowledgeBase, String> + Send + 'static,
    {
        let (tx, rx) = watch::channel(KbState::Building);
        let handle = KbHandle {
            state: rx,
            tx: Some(Arc::new(tx)),
        };
        handle.switch(open);
        handle
    }

    /// Replace the knowledge base every clone of this handle searches with
    /// what `open` returns, opened on the blocking pool (`/kb use`, or the
    /// first `/kb add` while the sample lore is in use). Searches issued
    /// meanwhile wait for it.
    ///
    /// # Panics
    /// When called outside a tokio runtime.
    pub fn switch<F>(&self, open: F)
    where
        F: FnOnce() -> Result<KnowledgeBase, String> + Send + 'static,
    {
        let Some(tx) = self.tx.clone() else {
            return;
        };
        tx.send_replace(KbState::Building);
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(open));
            let state = match opened {
                Ok(Ok(kb)) => {
                    let stats = IndexStats {
                        documents: kb.document_count(),
                        chunks: kb.chunk_count(),
                        build_time: started.elapsed(),
                    };
                    log_ready(&stats);
                    KbState::Ready(Arc::new(kb), stats)
                }
                Ok(Err(error)) => {
                    tracing::error!(%error, "knowledge base could not be opened");
                    KbState::Failed(error)
                }
                Err(_) => {
                    tracing::error!("opening the knowledge base panicked");
                    KbState::Failed("opening the knowledge base panicked".to_owned())
                }
            };
            tx.send_replace(state);
        });
    }

    /// A receiver that wakes on every change of state (ready, switched).
    pub fn subscribe(&self) -> watch::Receiver<KbState> {
        self.state.clone()
    }

    /// Recount documents and chunks after this process committed to the
    /// knowledge base in use, so status lines are current.
    pub fn refresh(&self) {
        let Some(tx) = &self.tx else { return };
        if let KbState::Ready(kb, stats) = self.state() {
            let _ = kb.reload();
            let stats = IndexStats {
                documents: kb.document_count(),
                chunks: kb.chunk_count(),
                ..stats
            };
            tx.send_replace(KbState::Ready(kb, stats));
        }
    }

    /// A handle that is already ready.
    pub fn ready(kb: KnowledgeBase, stats: IndexStats) -> KbHandle {
        log_ready(&stats);
        let (tx, rx) = watch::channel(KbState::Ready(Arc::new(kb), stats));
        KbHandle {
            state: rx,
            tx: Some(Arc::new(tx)),
        }
    }

    /// Build the index synchronously, on the calling thread, and return a
    /// ready handle (for tests and headless runs outside a runtime).
    pub fn build_now(docs: Vec<Document>) -> Result<KbHandle, KbError> {
        let (kb, stats) = build_timed(docs)?;
        Ok(KbHandle::ready(kb, stats))
    }

    /// A clone of the current state.
    pub fn state(&self) -> KbState {
        self.state.borrow().clone()
    }

    /// Wait until the build has finished; the knowledge base or why the
    /// build failed.
    pub async fn wait_ready(&self) -> Result<Arc<KnowledgeBase>, String> {
        let mut rx = self.state.clone();
        let state = rx
            .wait_for(|state| !matches!(state, KbState::Building))
            .await
            .map(|state| state.clone());
        match state {
            Ok(KbState::Ready(kb, _)) => Ok(kb),
            Ok(KbState::Failed(message)) => Err(message),
            // The builder went away without reporting: it cannot finish.
            Ok(KbState::Building) | Err(_) => {
                Err("the index build stopped without finishing".to_owned())
            }
        }
    }
}

fn build_timed(docs: Vec<Document>) -> Result<(KnowledgeBase, IndexStats), KbError> {
    let started = Instant::now();
    let kb = KnowledgeBase::build(docs)?;
    let stats = IndexStats {
        documents: kb.document_count(),
        chunks: kb.chunk_count(),
        build_time: started.elapsed(),
    };
    Ok((kb, stats))
}

fn log_ready(stats: &IndexStats) {
    tracing::info!(
        documents = stats.documents,
        chunks = stats.chunks,
        build_ms = stats.build_time.as_secs_f64() * 1000.0,
        "knowledge base index ready"
    );
}

/// Where the chunk embeddings for hybrid retrieval stand.
#[derive(Debug, Clone)]
pub enum VectorState {
    /// No embeddings backend: keyword (BM25) retrieval only.
    Off,
    Building,
    Ready(Arc<Embedded>),
    Failed(String),
}

/// Chunk vectors and the passages their rows stand for.
#[derive(Debug)]
pub struct Embedded {
    pub index: VectorIndex,
    pub passages: Vec<Passage>,
}

/// Retrieves passages from the built-in knowledge base: by keywords (BM25),
/// or, when an embeddings backend is configured and the query comes with a
/// vector, by keywords and meaning fused (reciprocal-rank fusion).
#[derive(Debug, Clone)]
pub struct LocalRetriever {
    kb: KbHandle,
    vectors: watch::Receiver<VectorState>,
}

impl LocalRetriever {
    pub fn new(kb: KbHandle) -> Self {
        let (_, vectors) = watch::channel(VectorState::Off);
        Self { kb, vectors }
    }

    /// Also rank by meaning: every chunk of the knowledge base in use gets
    /// a vector from `route` (only chunks whose vector for `model` is not
    /// kept yet are embedded, in batches of `batch_size`), again whenever
    /// the knowledge base changes (`/kb add`, `/kb use`). Until the vectors
    /// are there (or if embedding fails), retrieval is by keywords alone.
    ///
    /// # Panics
    /// When called outside a tokio runtime.
    pub fn with_embeddings(
        kb: KbHandle,
        route: EmbedRoute,
        model: String,
        batch_size: usize,
    ) -> Self {
        let (tx, vectors) = watch::channel(VectorState::Building);
        let handle = kb.clone();
        tokio::spawn(async move {
            let mut states = handle.subscribe();
            // The sample lore has no directory: its vectors live here.
            let mut memory = crate::kb::cache::VectorCache::memory(&model);
            loop {
                let state = states.borrow_and_update().clone();
                if let KbState::Ready(base, _) = state {
                    let result =
                        refresh_vectors(base, &route, &model, batch_size.max(1), &mut memory).await;
                    let state = match result {
                        Ok(embedded) => {
                            tracing::info!(
                                chunks = embedded.index.len(),
                                dimension = embedded.index.dimension(),
                                "chunk embeddings ready"
                            );
                            VectorState::Ready(Arc::new(embedded))
                        }
                        Err(error) => {
                            let error = crate::sanitize::one_line(&error);
                            tracing::warn!(%error, "chunk embeddings failed: keyword retrieval only");
                            VectorState::Failed(error)
                        }
                    };
                    if tx.send(state).is_err() {
                        return;
                    }
                }
                if states.changed().await.is_err() {
                    return;
                }
            }
        });
        Self { kb, vectors }
    }

    pub fn vector_state(&self) -> VectorState {
        self.vectors.borrow().clone()
    }
}

/// How batches of chunks reach the embeddings backend.
#[derive(Clone)]
pub enum EmbedRoute {
    /// Straight to the embedder (headless commands, tests).
    Direct(Arc<dyn Embedder>),
    /// As engine requests, which show in the lifecycle pane (the TUI).
    Engine(EngineEmbeds),
}

impl std::fmt::Debug for EmbedRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EmbedRoute::Direct(_) => f.write_str("Direct"),
            EmbedRoute::Engine(_) => f.write_str("Engine"),
        }
    }
}

impl EmbedRoute {
    /// Embed one batch of texts; the vectors in order, or why not.
    pub fn embed(&self, texts: Vec<String>) -> BoxFuture<'static, Result<Vec<Vec<f32>>, String>> {
        match self {
            EmbedRoute::Direct(embedder) => {
                let call = embedder.embed(texts);
                async move { call.await.map_err(|e| e.message) }.boxed()
            }
            EmbedRoute::Engine(engine) => engine.embed(texts),
        }
    }
}

/// One batch of chunk texts for the engine to embed.
#[derive(Debug)]
pub struct ChunkBatch {
    pub batch: u64,
    pub texts: Vec<String>,
}

type Pending = HashMap<u64, oneshot::Sender<Result<Vec<Vec<f32>>, String>>>;

/// Chunk batches sent to the engine (by the TUI loop, which turns each into
/// a `Command::EmbedChunks`) and their vectors handed back by the runtime.
#[derive(Clone, Debug)]
pub struct EngineEmbeds {
    tx: mpsc::UnboundedSender<ChunkBatch>,
    pending: Arc<Mutex<Pending>>,
    next: Arc<AtomicU64>,
}

impl EngineEmbeds {
    pub fn new() -> (Self, mpsc::UnboundedReceiver<ChunkBatch>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                tx,
                pending: Arc::new(Mutex::new(HashMap::new())),
                next: Arc::new(AtomicU64::new(1)),
            },
            rx,
        )
    }

    fn embed(&self, texts: Vec<String>) -> BoxFuture<'static, Result<Vec<Vec<f32>>, String>> {
        let batch = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(batch, tx);
        }
        let sent = self.tx.send(ChunkBatch { batch, texts });
        async move {
            sent.map_err(|_| "the engine is gone".to_owned())?;
            rx.await
                .unwrap_or_else(|_| Err("the embedding request was dropped".to_owned()))
        }
        .boxed()
    }
}

impl crate::backends::VectorSink for EngineEmbeds {
    fn deliver(&self, batch: u64, result: Result<Vec<Vec<f32>>, String>) {
        let waiter = self.pending.lock().ok().and_then(|mut p| p.remove(&batch));
        if let Some(waiter) = waiter {
            let _ = waiter.send(result);
        }
    }
}

/// Bring the vectors of `kb`'s chunks up to date with `model`.
async fn refresh_vectors(
    kb: Arc<KnowledgeBase>,
    route: &EmbedRoute,
    model: &str,
    batch_size: usize,
    memory: &mut crate::kb::cache::VectorCache,
) -> Result<Embedded, String> {
    use crate::kb::cache::{VectorCache, embed_missing};
    let owned_model = model.to_owned();
    let (passages, disk) = tokio::task::spawn_blocking(move || {
        let passages = kb.passages().map_err(|e| e.to_string())?;
        let disk = match kb.dir() {
            Some(dir) => Some(
                VectorCache::open(dir, &owned_model)
                    .map_err(|e| format!("cannot open the chunk vectors: {e}"))?,
            ),
            None => None,
        };
        Ok::<_, String>((passages, disk))
    })
    .await
    .map_err(|e| e.to_string())??;
    let embed = |texts: Vec<String>| route.embed(texts);
    let (rows, report) = match disk {
        Some((mut cache, others)) => {
            if cache.is_empty() && !others.is_empty() && !passages.is_empty() {
                tracing::info!(
                    model,
                    previous = others.join(", "),
                    chunks = passages.len(),
                    "the embedding model changed: re-embedding every chunk"
                );
            }
            embed_missing(&passages, &mut cache, batch_size, &embed).await?
        }
        None => embed_missing(&passages, memory, batch_size, &embed).await?,
    };
    tracing::info!(
        chunks = report.chunks,
        kept = report.cached,
        embedded = report.embedded,
        batches = report.batches,
        "chunk vectors up to date"
    );
    Ok(Embedded {
        index: VectorIndex::new(rows)?,
        passages,
    })
}

impl Retriever for LocalRetriever {
    fn retrieve(
        &self,
        query: RetrieveQuery,
    ) -> BoxFuture<'static, Result<Vec<Passage>, BackendError>> {
        let handle = self.kb.clone();
        let vectors = match &*self.vectors.borrow() {
            VectorState::Ready(index) => Some(index.clone()),
            _ => None,
        };
        async move {
            let kb = handle.wait_ready().await.map_err(|message| {
                BackendError::permanent(format!("the local index is unavailable: {message}"))
            })?;
            let RetrieveQuery {
                query,
                top_k,
                vector,
            } = query;
            tokio::task::spawn_blocking(move || match (vector, vectors) {
                (Some(vector), Some(embedded)) if vector.len() == embedded.index.dimension() => {
                    // Both rankings go deeper than top_k so that fusion has
                    // something to agree on.
                    let depth = (top_k * 4).max(20);
                    let keyword = kb.search(&query, depth)?;
                    let semantic = embedded.index.nearest(&vector, depth);
                    Ok(fuse(&keyword, &semantic, &embedded.passages, top_k))
                }
                _ => kb.search(&query, top_k),
            })
            .await
            .map_err(|error| BackendError::permanent(format!("local search task failed: {error}")))?
            .map_err(|error: KbError| {
                BackendError::permanent(format!("local search failed: {error}"))
            })
        }
        .boxed()
    }
}

/// Adds documents to the knowledge base the TUI searches (`/kb add`).
/// While the sample lore is in use, documents go to `default`, which then
/// replaces the sample lore.
#[derive(Debug, Clone)]
pub struct LocalIngester {
    pub home: std::path::PathBuf,
    pub kb: KbHandle,
    pub opts: crate::kb::store::IngestOptions,
    /// One pooled client for every page `/kb add` fetches.
    pub fetcher: crate::kb::fetch::PageFetcher,
    /// Where relative paths are taken from.
    pub cwd: std::path::PathBuf,
}

impl crate::backends::Ingester for LocalIngester {
    fn ingest(
        &self,
        paths: Vec<String>,
        progress: &mut dyn FnMut(crate::kb::store::Progress),
        cancel: &std::sync::atomic::AtomicBool,
    ) -> Result<String, String> {
        use crate::kb::store::{self, Input, Writer};
        let in_use = match self.kb.state() {
            KbState::Ready(kb, _) => kb.name().to_owned(),
            KbState::Building => return Err("the knowledge base is still opening".into()),
            KbState::Failed(error) => return Err(error),
        };
        let target = if in_use == store::SAMPLE || in_use.is_empty() {
            store::DEFAULT.to_owned()
        } else {
            in_use.clone()
        };
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| e.to_string())?;
        let mut inputs = Vec::new();
        for path in &paths {
            if path.starts_with("http://") || path.starts_with("https://") {
                inputs.push(runtime.block_on(self.fetcher.fetch_page(path)));
            } else {
                let expanded = match path.strip_prefix("~/") {
                    Some(rest) => std::env::var_os("HOME")
                        .map(|home| std::path::PathBuf::from(home).join(rest))
                        .unwrap_or_else(|| self.cwd.join(path)),
                    None => self.cwd.join(path),
                };
                let absolute = std::path::absolute(&expanded).map_err(|e| e.to_string())?;
                inputs.push(Input::Path(absolute));
            }
        }
        let mut writer = Writer::open(&self.home, &target, true).map_err(|e| e.to_string())?;
        let summary = writer
            .ingest(&inputs, &self.opts, progress, cancel)
            .map_err(|e| e.to_string())?;
        writer.close().map_err(|e| e.to_string())?;
        if target != in_use {
            let home = self.home.clone();
            let name = target.clone();
            self.kb.switch(move || {
                store::open(&home, &name)
                    .map(|kb| kb.named(&name))
                    .map_err(|e| e.to_string())
            });
        } else {
            self.kb.refresh();
        }
        let mut line = summary.line(&target);
        if let Some(first) = summary.skipped.first() {
            line.push_str(&format!(
                " (first skip: {}: {})",
                crate::sanitize::one_line(&first.path),
                first.reason
            ));
        }
        if let Some(kept) = summary.kept.first() {
            line.push_str(&format!(
                " ({}: {})",
                crate::sanitize::one_line(&kept.path),
                kept.reason
            ));
        }
        Ok(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ErrorClass;
    use crate::kb::parse_markdown;

    fn docs() -> Vec<Document> {
        vec![
            parse_markdown(
                "waystone.md",
                "---\nkind: place\n---\n# The Shattered Waystone\n\nGuarded by **Warden Ilsa Marrow**.\n",
            ),
            parse_markdown(
                "ilsa.md",
                "---\nkind: npc\n---\n# Warden Ilsa Marrow\n\nShe keeps the old road.\n",
            ),
        ]
    }

    fn query(text: &str, top_k: usize) -> RetrieveQuery {
        RetrieveQuery {
            query: text.to_owned(),
            top_k,
            vector: None,
        }
    }

    #[tokio::test]
    async fn retrieve_waits_for_background_build() {
        let handle = KbHandle::start_build(docs());
        let retriever = LocalRetriever::new(handle.clone());
        let passages = retriever
            .retrieve(query("who guards the waystone?", 5))
            .await
            .expect("retrieve");
        assert!(!passages.is_empty());
        assert_eq!(passages[0].source, "waystone.md");
        assert!(passages.len() <= 5);
        match handle.state() {
            KbState::Ready(kb, stats) => {
                assert_eq!(stats.documents, 2);
                assert_eq!(stats.chunks, kb.chunk_count());
            }
            other => panic!("not ready: {other:?}"),
        }
    }

    #[tokio::test]
    async fn ready_handle_serves_at_once_and_respects_top_k() {
        let handle = KbHandle::build_now(docs()).expect("build");
        assert!(matches!(handle.state(), KbState::Ready(..)));
        let retriever = LocalRetriever::new(handle);
        let passages = retriever
            .retrieve(query("warden road waystone", 1))
            .await
            .expect("retrieve");
        assert_eq!(passages.len(), 1);
        let none = retriever.retrieve(query("?!", 5)).await.expect("retrieve");
        assert!(none.is_empty());
    }

    #[tokio::test]
    async fn failed_build_is_a_permanent_error() {
        let (_tx, rx) = watch::channel(KbState::Failed("disk on fire".to_owned()));
        let retriever = LocalRetriever::new(KbHandle {
            state: rx,
            tx: None,
        });
        let error = retriever
            .retrieve(query("waystone", 3))
            .await
            .expect_err("must fail");
        assert_eq!(error.class, ErrorClass::Permanent);
        assert!(error.message.contains("disk on fire"), "{}", error.message);
    }

    #[tokio::test]
    async fn abandoned_build_does_not_hang() {
        let (tx, rx) = watch::channel(KbState::Building);
        drop(tx);
        let handle = KbHandle {
            state: rx,
            tx: None,
        };
        assert!(handle.wait_ready().await.is_err());
    }
}

#[cfg(test)]
mod hybrid_tests {
    use super::*;
    use crate::kb::parse_markdown;

    /// A toy embedder: one dimension per concept, counting its words. Enough
    /// to find a passage by meaning that shares no word with the query.
    struct ConceptEmbedder;

    const CONCEPTS: &[&[&str]] = &[
        &[
            "guard", "guarded", "guards", "keeper", "watch", "vigil", "sentinel",
        ],
        &["bridge", "river", "ford", "crossing"],
        &["gold", "coin", "treasure", "riches"],
    ];

    impl Embedder for ConceptEmbedder {
        fn embed(
            &self,
            texts: Vec<String>,
        ) -> BoxFuture<'static, Result<Vec<Vec<f32>>, BackendError>> {
            let vectors = texts
                .iter()
                .map(|t| {
                    let lower = t.to_lowercase();
                    let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).collect();
                    let mut v: Vec<f32> = CONCEPTS
                        .iter()
                        .map(|c| words.iter().filter(|w| c.contains(w)).count() as f32)
                        .collect();
                    v.push(0.01); // never a zero vector
                    v
                })
                .collect();
            async move { Ok(vectors) }.boxed()
        }
    }

    fn docs() -> Vec<Document> {
        vec![
            parse_markdown(
                "stone.md",
                "# The Old Stone\n\nA sentinel keeps a vigil here, night and day.\n",
            ),
            parse_markdown(
                "bridge.md",
                "# The Bridge\n\nThe river crossing is a ford in summer.\n",
            ),
            parse_markdown(
                "hoard.md",
                "# The Hoard\n\nCoin and treasure lie under the hill.\n",
            ),
        ]
    }

    #[tokio::test]
    async fn hybrid_retrieval_finds_by_meaning_when_words_do_not_match() {
        let kb = KbHandle::start_build(docs());
        let retriever = LocalRetriever::with_embeddings(
            kb,
            EmbedRoute::Direct(Arc::new(ConceptEmbedder)),
            "test:concepts".into(),
            2,
        );
        let mut state = retriever.vectors.clone();
        let ready = tokio::time::timeout(
            Duration::from_secs(5),
            state.wait_for(|s| !matches!(s, VectorState::Building)),
        )
        .await
        .expect("vectors within 5 s")
        .map(|s| s.clone())
        .expect("state");
        assert!(
            matches!(ready, VectorState::Ready(ref index) if index.index.len() == 3),
            "{ready:?}"
        );

        // "guard duty" shares no indexed word with any document.
        let words_only = retriever
            .retrieve(RetrieveQuery {
                query: "guard duty".into(),
                top_k: 1,
                vector: None,
            })
            .await
            .expect("keyword retrieve");
        assert!(
            words_only.iter().all(|p| p.source != "stone.md"),
            "{words_only:?}"
        );
        let vector = ConceptEmbedder
            .embed(vec!["guard duty".into()])
            .await
            .expect("embed")
            .remove(0);
        let hybrid = retriever
            .retrieve(RetrieveQuery {
                query: "guard duty".into(),
                top_k: 1,
                vector: Some(vector),
            })
            .await
            .expect("hybrid retrieve");
        assert_eq!(hybrid.len(), 1);
        assert_eq!(hybrid[0].source, "stone.md", "found by meaning");
    }

    #[tokio::test]
    async fn a_vector_of_the_wrong_size_falls_back_to_keywords() {
        let kb = KbHandle::start_build(docs());
        let retriever = LocalRetriever::with_embeddings(
            kb,
            EmbedRoute::Direct(Arc::new(ConceptEmbedder)),
            "test:concepts".into(),
            8,
        );
        let mut state = retriever.vectors.clone();
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            state.wait_for(|s| !matches!(s, VectorState::Building)),
        )
        .await;
        let passages = retriever
            .retrieve(RetrieveQuery {
                query: "river ford".into(),
                top_k: 2,
                vector: Some(vec![1.0; 7]),
            })
            .await
            .expect("retrieve");
        assert_eq!(passages[0].source, "bridge.md");
    }
}
