//! Backend traits and their implementations. A backend turns one call into a
//! result or a stream of tokens and an error class; it knows nothing of
//! deadlines, retries or request ids (the engine's business) and imports
//! neither the engine nor the UI.

pub mod haystack;
pub mod http;
pub mod local;
pub mod offline;
pub mod ollama;
pub mod openai;

use futures::future::BoxFuture;
use futures::stream::BoxStream;

pub use crate::domain::RetrieveQuery;
use crate::domain::{BackendError, GenerationTask, Passage};

/// Finds passages for a query.
pub trait Retriever: Send + Sync {
    fn retrieve(
        &self,
        query: RetrieveQuery,
    ) -> BoxFuture<'static, Result<Vec<Passage>, BackendError>>;
}

/// Turns texts into vectors, one per text, in order.
pub trait Embedder: Send + Sync {
    fn embed(&self, texts: Vec<String>) -> BoxFuture<'static, Result<Vec<Vec<f32>>, BackendError>>;
}

/// Adds documents to a knowledge base. Blocking (parsing and index writes):
/// the runtime calls it on the blocking pool, never on the UI loop.
pub trait Ingester: Send + Sync {
    /// Ingest `paths` (as the user typed them: files, folders or URLs),
    /// reporting progress, stopping between files once `cancel` is set
    /// (what was committed stays). A one-line summary, or why it failed.
    fn ingest(
        &self,
        paths: Vec<String>,
        progress: &mut dyn FnMut(crate::kb::store::Progress),
        cancel: &std::sync::atomic::AtomicBool,
    ) -> Result<String, String>;
}

/// Keeps the vectors of knowledge-base chunk batches embedded as engine
/// requests (so that they show in the lifecycle pane).
pub trait VectorSink: Send + Sync {
    fn deliver(&self, batch: u64, result: Result<Vec<Vec<f32>>, String>);
}

/// Streams generated text for a task, chunk by chunk. The stream ends after
/// the last chunk; an `Err` item ends it with an error.
pub trait ChatModel: Send + Sync {
    fn generate(&self, task: GenerationTask) -> BoxStream<'static, Result<Chunk, BackendError>>;
}

/// One item of a generation stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    /// Generated text.
    Text(String),
    /// Token counts, when the server reports them (Ollama's last line; an
    /// OpenAI-compatible chunk that carries `usage`).
    Usage(Usage),
}

impl Chunk {
    /// The text, if this is text.
    pub fn text(self) -> Option<String> {
        match self {
            Chunk::Text(text) => Some(text),
            Chunk::Usage(_) => None,
        }
    }
}

/// Tokens a generation used, as the server counted them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
}
