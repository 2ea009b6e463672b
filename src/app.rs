//! Assembles what the config chose (or the embedded defaults: the `local`
//! retriever over the sample lore and the `offline` generator) into an
//! engine and a runtime. Layering: config file < environment < flags.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use secrecy::ExposeSecret;

use crate::backends::haystack::HayhooksRetriever;
use crate::backends::http::{ApiKey, HttpOptions, build_client};
use crate::backends::local::{EmbedRoute, EngineEmbeds, KbHandle, LocalRetriever};
use crate::backends::offline::{OfflineModel, Tables};
use crate::backends::ollama::{OllamaChat, OllamaEmbedder};
use crate::backends::openai::{GenParams, OpenAiChat, OpenAiEmbedder};
use crate::cli::GlobalArgs;
use crate::config::{Config, EmbeddingsProvider, LlmProvider, Overrides, RetrieverProvider};
use crate::engine::{Engine, EngineConfig};
use crate::headless::kb::KbContext;
use crate::runtime::{Backends, Driver, Runtime};

/// The config file, then the environment, then the flags.
pub fn load_config(args: &GlobalArgs) -> anyhow::Result<Config> {
    let explicit = args.config.is_some();
    let path = crate::config::resolve_path(args.config.as_deref());
    let mut config = crate::config::load(path.as_deref(), explicit)?;
    let flags = Overrides {
        llm: args.llm.clone(),
        llm_url: args.llm_url.clone(),
        retriever: args.retriever.clone(),
        retriever_url: args.retriever_url.clone(),
        embeddings: args.embeddings.clone(),
        embeddings_url: args.embeddings_url.clone(),
        kb: args.kb.clone(),
    };
    config.apply(&flags.or(Overrides::from_env()))?;
    Ok(config)
}

/// The knowledge base the flags, the environment and the config name
/// (`--kb` > `LOREWEAVE_KB` > `[kb] name` > `default`).
pub fn kb_name(config: &Config, args: &GlobalArgs) -> String {
    // The environment is already folded into `config.kb.name`.
    args.kb.clone().unwrap_or_else(|| config.kb.name.clone())
}

/// Did the user name a knowledge base (flag, environment or config)?
fn kb_named(config: &Config, args: &GlobalArgs) -> bool {
    args.kb.is_some() || config.kb.name != crate::kb::store::DEFAULT
}

/// What the `kb` commands need.
pub fn kb_context(config: &Config, args: &GlobalArgs) -> anyhow::Result<KbContext> {
    Ok(KbContext {
        home: crate::kb::store::home()?,
        name: kb_name(config, args),
        max_file_size: config.kb.max_file_size,
        fetch_timeout: config.kb.fetch_timeout,
        max_fetch_size: config.kb.max_fetch_size,
        embeddings: build_embedder(config)?.map(|embedder| crate::headless::kb::Embeddings {
            model: embedding_model(config),
            embedder,
            batch_size: config.embeddings.batch_size,
        }),
    })
}

/// Refuse, before any screen is drawn, a knowledge base that cannot be
/// used: a bad name, one that does not exist (with a "did you mean"), or
/// any name with the Hayhooks retriever, whose knowledge base lives in the
/// pipeline. Cheap: a few `stat` calls.
pub fn check_kb(config: &Config, args: &GlobalArgs) -> anyhow::Result<()> {
    if config.retriever.provider == RetrieverProvider::Hayhooks {
        if kb_named(config, args) {
            anyhow::bail!(
                "--kb, LOREWEAVE_KB and [kb] name a local knowledge base, but the retriever is hayhooks: the knowledge base lives in the Haystack pipeline"
            );
        }
        return Ok(());
    }
    let name = kb_name(config, args);
    crate::kb::store::check_name(&name)?;
    if name != crate::kb::store::DEFAULT && name != crate::kb::store::SAMPLE {
        let home = crate::kb::store::home()?;
        if !crate::kb::store::exists(&home, &name) {
            crate::kb::store::open(&home, &name)?;
        }
    }
    Ok(())
}

/// Open the knowledge base the local retriever searches, on the blocking
/// pool: the one named, or the sample lore while `default` is empty.
///
/// # Panics
/// When called outside a tokio runtime.
pub fn open_kb(config: &Config, args: &GlobalArgs) -> KbHandle {
    if config.retriever.provider == RetrieverProvider::Hayhooks {
        return KbHandle::start_open(|| Err("the retriever is hayhooks".into()));
    }
    let name = kb_name(config, args);
    KbHandle::start_open(move || {
        let home = crate::kb::store::home().map_err(|e| e.to_string())?;
        let selection = crate::headless::kb::select(&home, &name).map_err(|e| e.to_string())?;
        crate::headless::kb::open_selection(&home, &selection).map_err(|e| format!("{e:#}"))
    })
}

/// Open a knowledge base by name for `/kb use` (the sample lore by
/// `sample`, the default falling back to it while empty).
pub fn open_named_kb(name: &str) -> Result<crate::kb::KnowledgeBase, String> {
    let home = crate::kb::store::home().map_err(|e| e.to_string())?;
    let selection = crate::headless::kb::select(&home, name).map_err(|e| e.to_string())?;
    crate::headless::kb::open_selection(&home, &selection).map_err(|e| format!("{e:#}"))
}

/// The `/kb add` ingester, with the local retriever only.
pub fn ingester(config: &Config, kb: &KbHandle) -> Option<Arc<dyn crate::backends::Ingester>> {
    if config.retriever.provider != RetrieverProvider::Local {
        return None;
    }
    let home = crate::kb::store::home().ok()?;
    let fetcher =
        crate::kb::fetch::PageFetcher::new(config.kb.fetch_timeout, config.kb.max_fetch_size)
            .ok()?;
    Some(Arc::new(crate::backends::local::LocalIngester {
        home,
        kb: kb.clone(),
        opts: crate::kb::store::IngestOptions {
            load: crate::kb::loaders::LoadOptions {
                max_file_size: config.kb.max_file_size,
                ..Default::default()
            },
            ..Default::default()
        },
        fetcher,
        cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    }))
}

/// The engine settings: the config's, then the flags that tune the engine.
pub fn engine_config(config: &Config, args: &GlobalArgs) -> EngineConfig {
    let mut cfg = config.engine_config();
    if let Some(timeout) = args.retrieval_timeout {
        cfg.retrieval_timeout = timeout;
    }
    cfg.rag = !args.no_rag;
    cfg.scenario_seed = args.seed;
    cfg.history_cap = usize::try_from(args.history).unwrap_or(usize::MAX);
    cfg
}

/// The embedded defaults, with nothing configured.
pub fn default_backends(kb: KbHandle) -> anyhow::Result<Backends> {
    build_backends(&Config::default(), kb)
}

/// The backends the config names, under the names the engine uses.
pub fn build_backends(config: &Config, kb: KbHandle) -> anyhow::Result<Backends> {
    build_backends_routed(config, kb, None)
}

/// The embeddings backend the config names, if any.
pub fn build_embedder(
    config: &Config,
) -> anyhow::Result<Option<Arc<dyn crate::backends::Embedder>>> {
    let http = HttpOptions::default();
    let emb = &config.embeddings;
    let api_key =
        |key: Option<secrecy::SecretString>| key.map(|k| ApiKey::new(k.expose_secret().to_owned()));
    let embedder: Option<Arc<dyn crate::backends::Embedder>> = match emb.provider {
        EmbeddingsProvider::None => None,
        EmbeddingsProvider::OpenAi => Some(Arc::new(backend(
            OpenAiEmbedder::new(
                backend(build_client(&http), "HTTP client")?,
                &emb.endpoint().unwrap_or_default(),
                &emb.model,
                api_key(emb.api_key()?),
                emb.batch_size,
                http.max_body_bytes,
            ),
            "[embeddings]",
        )?)),
        EmbeddingsProvider::Ollama => Some(Arc::new(backend(
            OllamaEmbedder::new(
                backend(build_client(&http), "HTTP client")?,
                &emb.endpoint().unwrap_or_default(),
                &emb.model,
                emb.batch_size,
                http.max_body_bytes,
            ),
            "[embeddings]",
        )?)),
    };
    Ok(embedder)
}

/// The chat model a session records: `provider:model` (`offline`).
pub fn model_name(config: &Config) -> String {
    match config.llm.provider {
        LlmProvider::Offline => "offline".to_owned(),
        _ => format!("{}:{}", config.llm.name(), config.llm.model),
    }
}

/// Which embedding model chunk vectors are kept for: provider and model.
pub fn embedding_model(config: &Config) -> String {
    let emb = &config.embeddings;
    format!("{}:{}", emb.name().unwrap_or("none"), emb.model)
}

/// [`build_backends`], with knowledge-base chunks embedded as engine
/// requests through `route` (the TUI, where they show in the lifecycle
/// pane) instead of straight to the embedder.
pub fn build_backends_routed(
    config: &Config,
    kb: KbHandle,
    route: Option<EngineEmbeds>,
) -> anyhow::Result<Backends> {
    let http = HttpOptions::default();
    let mut backends = Backends::default();
    let engine_cfg = config.engine_config();
    let prompts = Arc::new(config.prompts()?);

    // The key is read from the variable the config names, and only wrapped:
    // it never reaches a log or a message.
    let api_key =
        |key: Option<secrecy::SecretString>| key.map(|k| ApiKey::new(k.expose_secret().to_owned()));

    let llm = &config.llm;
    let params = GenParams {
        temperature: Some(llm.temperature),
        max_tokens: llm.max_tokens,
    };
    let model: Arc<dyn crate::backends::ChatModel> = match llm.provider {
        LlmProvider::Offline => {
            let tables = Tables::embedded()
                .map_err(|e| anyhow::anyhow!("the embedded scenario tables are broken: {e}"))?;
            Arc::new(OfflineModel::new(Arc::new(tables)))
        }
        LlmProvider::OpenAi => Arc::new(backend(
            OpenAiChat::new(
                backend(build_client(&http), "HTTP client")?,
                &llm.endpoint().unwrap_or_default(),
                &llm.model,
                api_key(llm.api_key()?),
                params,
                prompts.clone(),
                http.max_body_bytes,
            ),
            "[llm]",
        )?),
        LlmProvider::Ollama => Arc::new(backend(
            OllamaChat::new(
                backend(build_client(&http), "HTTP client")?,
                &llm.endpoint().unwrap_or_default(),
                &llm.model,
                params,
                prompts.clone(),
                http.max_body_bytes,
            ),
            "[llm]",
        )?),
    };
    backends.models.insert(engine_cfg.generator.clone(), model);

    let emb = &config.embeddings;
    let embedder = build_embedder(config)?;
    let retriever: Arc<dyn crate::backends::Retriever> = match config.retriever.provider {
        RetrieverProvider::Local => match (&embedder, config.query_embedder()) {
            // Hybrid: chunks are embedded in the background; queries are
            // embedded by the engine's embed step.
            (Some(embedder), Some(_)) => Arc::new(LocalRetriever::with_embeddings(
                kb,
                match route {
                    Some(engine) => EmbedRoute::Engine(engine),
                    None => EmbedRoute::Direct(embedder.clone()),
                },
                embedding_model(config),
                emb.batch_size,
            )),
            _ => Arc::new(LocalRetriever::new(kb)),
        },
        RetrieverProvider::Hayhooks => Arc::new(backend(
            HayhooksRetriever::new(
                backend(build_client(&http), "HTTP client")?,
                &config.retriever.url,
                config.retriever.extra.clone(),
                &config.retriever.source_meta_key,
                http.max_body_bytes,
            ),
            "[retriever]",
        )?),
    };
    backends
        .retrievers
        .insert(engine_cfg.retriever.clone(), retriever);

    if let (Some(embedder), Some(name)) = (embedder, emb.name()) {
        backends.embedders.insert(name.to_string(), embedder);
    }
    Ok(backends)
}

/// A backend that could not be built, said with the config section it
/// comes from.
fn backend<T>(result: Result<T, crate::domain::BackendError>, what: &str) -> anyhow::Result<T> {
    result.map_err(|e| anyhow::anyhow!("{what}: {}", e.message))
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
