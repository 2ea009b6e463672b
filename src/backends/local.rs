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
use tokio::sync::watch;

use crate::backends::{RetrieveQuery, Retriever};
use crate::domain::{BackendError, Passage};
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
        KbHandle { state: rx }
    }

    /// A handle that is already ready.
    pub fn ready(kb: KnowledgeBase, stats: IndexStats) -> KbHandle {
        log_ready(&stats);
        let (_tx, rx) = watch::channel(KbState::Ready(Arc::new(kb), stats));
        KbHandle { state: rx }
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

/// Retrieves passages from the built-in knowledge base.
#[derive(Debug, Clone)]
pub struct LocalRetriever {
    kb: KbHandle,
}

impl LocalRetriever {
    pub fn new(kb: KbHandle) -> Self {
        Self { kb }
    }
}

impl Retriever for LocalRetriever {
    fn retrieve(
        &self,
        query: RetrieveQuery,
    ) -> BoxFuture<'static, Result<Vec<Passage>, BackendError>> {
        let handle = self.kb.clone();
        async move {
            let kb = handle.wait_ready().await.map_err(|message| {
                BackendError::permanent(format!("the local index is unavailable: {message}"))
            })?;
            let RetrieveQuery { query, top_k } = query;
            tokio::task::spawn_blocking(move || kb.search(&query, top_k))
                .await
                .map_err(|error| {
                    BackendError::permanent(format!("local search task failed: {error}"))
                })?
                .map_err(|error| BackendError::permanent(format!("local search failed: {error}")))
        }
        .boxed()
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
        let retriever = LocalRetriever::new(KbHandle { state: rx });
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
        let handle = KbHandle { state: rx };
        assert!(handle.wait_ready().await.is_err());
    }
}
