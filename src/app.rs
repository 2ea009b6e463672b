//! Assembles the embedded defaults: the `local` retriever over the sample
//! lore and the `offline` generator, wired into an engine and a runtime.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use crate::backends::local::{KbHandle, LocalRetriever};
use crate::backends::offline::{OfflineModel, Tables};
use crate::cli::GlobalArgs;
use crate::engine::{Engine, EngineConfig};
use crate::runtime::{Backends, Driver, Runtime};

/// The engine settings the command line chose.
pub fn engine_config(args: &GlobalArgs) -> EngineConfig {
    EngineConfig {
        retrieval_timeout: args.retrieval_timeout,
        rag: !args.no_rag,
        scenario_seed: args.seed,
        history_cap: usize::try_from(args.history).unwrap_or(usize::MAX),
        ..EngineConfig::default()
    }
}

/// The built-in backends: `local` over `kb`, and `offline`.
pub fn default_backends(kb: KbHandle) -> anyhow::Result<Backends> {
    let tables = Tables::embedded()
        .map_err(|e| anyhow::anyhow!("the embedded scenario tables are broken: {e}"))?;
    let mut backends = Backends::default();
    backends
        .retrievers
        .insert("local".into(), Arc::new(LocalRetriever::new(kb)));
    backends.models.insert(
        "offline".into(),
        Arc::new(OfflineModel::new(Arc::new(tables))),
    );
    Ok(backends)
}

/// An engine and runtime ready to go. Must be called inside a tokio runtime.
pub fn driver(cfg: EngineConfig, backends: Backends) -> Driver {
    let now = tokio::time::Instant::now().into_std();
    let wall = SystemTime::now();
    // Ids and fresh seeds differ between runs; the prompt-derived scenario
    // seed does not depend on this.
    let seed = wall
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id());
    let engine = Engine::new(cfg, now, wall, seed);
    let export_dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let (runtime, rx) = Runtime::new(backends, export_dir);
    Driver::new(engine, runtime, rx)
}
