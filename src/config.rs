//! The configuration: one TOML file (`$XDG_CONFIG_HOME/loreweave/config.toml`
//! or `--config FILE`), layered as defaults < file < environment < flags.
//!
//! It owns parsing with diagnostics a person can act on (every problem with
//! its line and column: syntax errors, unknown keys, wrong types, and
//! semantic mistakes such as a provider without a model), the overrides from
//! `LOREWEAVE_*` variables and flags, `config init`, and the mapping to the
//! engine's settings.
//!
//! Invariants: a `Config` returned by [`parse`], [`load`] or
//! [`Config::apply`] has passed [`Config::validate`]; API keys are never part
//! of it, only the *name* of the environment variable that holds one, and no
//! message made here repeats a value that might be a secret.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::engine::EngineConfig;
use crate::engine::limits::BackendPolicy;
use crate::engine::retry::RetryPolicy;
use crate::prompts::Prompts;

/// The commented default configuration that `config init` writes.
pub const DEFAULT_TOML: &str = include_str!("../assets/config.toml");

/// The file name inside the configuration directory.
pub const FILE_NAME: &str = "config.toml";

// ----- errors and diagnostics ----------------------------------------------

/// One problem in a configuration text, located at its line and column
/// (both 1-based; columns count characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

#[derive(thiserror::Error, Debug)]
pub enum ConfigError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Problems found in a configuration text, in file order.
    #[error("{}", render_diagnostics(.0))]
    Parse(Vec<Diagnostic>),
    /// A configuration that is wrong after overrides, or a bad override.
    #[error("{0}")]
    Invalid(String),
    /// `--config FILE` names a file that does not exist.
    #[error(
        "config file {} does not exist (write a commented default with `loreweave config init --config {}`)",
        path.display(),
        path.display()
    )]
    NotFound { path: PathBuf },
    /// `config init` found a file in the way.
    #[error(
        "{} already exists; not overwriting it (use --force to replace it)",
        path.display()
    )]
    Exists { path: PathBuf },
    /// `api_key_env` names a variable that is not set.
    #[error(
        "environment variable {var} is not set or empty; [{section}] api_key_env says the API key is there"
    )]
    MissingKey { section: &'static str, var: String },
}

impl ConfigError {
    /// The located problems, if this is a parse error.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Parse(d) => d,
            _ => &[],
        }
    }
}

fn render_diagnostics(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(Diagnostic::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

// ----- providers -------------------------------------------------------------

macro_rules! provider_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            #[default]
            $($variant),+
        }

        impl $name {
            /// Every value, as written in the file.
            pub const ALL: &'static [&'static str] = &[$($text),+];

            /// As written in the file.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!("unknown provider `{}`; choose {}", s.trim(), or_list(Self::ALL))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

// The first variant is the default (the macro puts `#[default]` on it).
provider_enum!(
    /// Which language model answers and writes scenarios.
    LlmProvider { Offline => "offline", OpenAi => "openai", Ollama => "ollama" }
);
provider_enum!(
    /// Which service computes embeddings, if any.
    EmbeddingsProvider { None => "none", OpenAi => "openai", Ollama => "ollama" }
);
provider_enum!(
    /// Where lore is retrieved from.
    RetrieverProvider { Local => "local", Hayhooks => "hayhooks" }
);

const OPENAI_DEFAULT_URL: &str = "http://127.0.0.1:8080/v1";
const OLLAMA_DEFAULT_URL: &str = "http://127.0.0.1:11434";

impl LlmProvider {
    /// The server address used when `base_url` is empty.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            LlmProvider::Offline => None,
            LlmProvider::OpenAi => Some(OPENAI_DEFAULT_URL),
            LlmProvider::Ollama => Some(OLLAMA_DEFAULT_URL),
        }
    }
}

impl EmbeddingsProvider {
    /// The server address used when `base_url` is empty.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            EmbeddingsProvider::None => None,
            EmbeddingsProvider::OpenAi => Some(OPENAI_DEFAULT_URL),
            EmbeddingsProvider::Ollama => Some(OLLAMA_DEFAULT_URL),
        }
    }
}

// ----- the configuration -----------------------------------------------------

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub llm: LlmConfig,
    pub embeddings: EmbeddingsConfig,
    pub retriever: RetrieverConfig,
    pub prompts: PromptsConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    pub provider: LlmProvider,
    /// "" means the provider's default (see [`LlmConfig::endpoint`]).
    pub base_url: String,
    pub model: String,
    /// The name of the environment variable holding the API key.
    pub api_key_env: String,
    pub temperature: f32,
    pub max_tokens: u32,
    #[serde(with = "duration_text")]
    pub first_token_timeout: Duration,
    #[serde(with = "duration_text")]
    pub idle_timeout: Duration,
    pub retries: u32,
    pub breaker_failures: u32,
    pub breaker_open_secs: u64,
    pub concurrency: usize,
    /// 0 means no limit.
    pub rate_per_minute: u32,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            provider: LlmProvider::Offline,
            base_url: String::new(),
            model: String::new(),
            api_key_env: String::new(),
            temperature: 0.7,
            max_tokens: 512,
            first_token_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30),
            retries: 2,
            breaker_failures: 5,
            breaker_open_secs: 60,
            concurrency: 2,
            rate_per_minute: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddingsConfig {
    pub provider: EmbeddingsProvider,
    pub base_url: String,
    pub model: String,
    pub api_key_env: String,
    pub batch_size: usize,
    #[serde(with = "duration_text")]
    pub timeout: Duration,
    pub retries: u32,
    pub breaker_failures: u32,
    pub breaker_open_secs: u64,
    pub concurrency: usize,
    pub rate_per_minute: u32,
}

impl Default for EmbeddingsConfig {
    fn default() -> Self {
        Self {
            provider: EmbeddingsProvider::None,
            base_url: String::new(),
            model: String::new(),
            api_key_env: String::new(),
            batch_size: 32,
            timeout: Duration::from_secs(30),
            retries: 2,
            breaker_failures: 5,
            breaker_open_secs: 60,
            concurrency: 4,
            rate_per_minute: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrieverConfig {
    pub provider: RetrieverProvider,
    /// The Hayhooks pipeline endpoint, e.g. `http://127.0.0.1:1416/lore/run`.
    pub url: String,
    pub top_k: usize,
    #[serde(with = "duration_text")]
    pub timeout: Duration,
    /// The metadata field of a retrieved document that names its source.
    pub source_meta_key: String,
    /// Extra JSON parameters sent to Hayhooks with every query.
    pub extra: serde_json::Map<String, serde_json::Value>,
    pub retries: u32,
    pub breaker_failures: u32,
    pub breaker_open_secs: u64,
    pub concurrency: usize,
    pub rate_per_minute: u32,
}

impl Default for RetrieverConfig {
    fn default() -> Self {
        Self {
            provider: RetrieverProvider::Local,
            url: String::new(),
            top_k: 5,
            timeout: Duration::from_secs(10),
            source_meta_key: "source".into(),
            extra: serde_json::Map::new(),
            retries: 2,
            breaker_failures: 5,
            breaker_open_secs: 60,
            concurrency: 8,
            rate_per_minute: 0,
        }
    }
}

/// Template files overriding the built-in prompts; "" means built-in.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromptsConfig {
    pub chat: String,
    pub scenario: String,
}

/// The keys of each section, as the file spells them. A test keeps these in
/// step with the structs.
const SECTIONS: &[(&str, &[&str])] = &[
    (
        "llm",
        &[
            "provider",
            "base_url",
            "model",
            "api_key_env",
            "temperature",
            "max_tokens",
            "first_token_timeout",
            "idle_timeout",
            "retries",
            "breaker_failures",
            "breaker_open_secs",
            "concurrency",
            "rate_per_minute",
        ],
    ),
    (
        "embeddings",
        &[
            "provider",
            "base_url",
            "model",
            "api_key_env",
            "batch_size",
            "timeout",
            "retries",
            "breaker_failures",
            "breaker_open_secs",
            "concurrency",
            "rate_per_minute",
        ],
    ),
    (
        "retriever",
        &[
            "provider",
            "url",
            "top_k",
            "timeout",
            "source_meta_key",
            "extra",
            "retries",
            "breaker_failures",
            "breaker_open_secs",
            "concurrency",
            "rate_per_minute",
        ],
    ),
    ("prompts", &["chat", "scenario"]),
];

/// The names the lifecycle pane and the engine use for the backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendNames {
    pub llm: &'static str,
    pub retriever: &'static str,
    /// `None` when embeddings are off.
    pub embeddings: Option<&'static str>,
}

impl LlmConfig {
    /// The backend name: "offline", "openai" or "ollama".
    pub fn name(&self) -> &'static str {
        self.provider.as_str()
    }

    /// `base_url`, or the provider's default when it is empty.
    pub fn endpoint(&self) -> Option<String> {
        endpoint(&self.base_url, self.provider.default_base_url())
    }

    /// The API key from the variable named by `api_key_env` (`None` when no
    /// variable is named).
    pub fn api_key(&self) -> Result<Option<SecretString>, ConfigError> {
        api_key("llm", &self.api_key_env, |name| std::env::var(name).ok())
    }

    pub fn policy(&self) -> BackendPolicy {
        policy(
            self.retries,
            self.breaker_failures,
            self.breaker_open_secs,
            self.concurrency,
            self.rate_per_minute,
        )
    }
}

impl EmbeddingsConfig {
    /// The backend name: "openai-embed" or "ollama-embed"; `None` when off.
    pub fn name(&self) -> Option<&'static str> {
        match self.provider {
            EmbeddingsProvider::None => None,
            EmbeddingsProvider::OpenAi => Some("openai-embed"),
            EmbeddingsProvider::Ollama => Some("ollama-embed"),
        }
    }

    pub fn endpoint(&self) -> Option<String> {
        endpoint(&self.base_url, self.provider.default_base_url())
    }

    pub fn api_key(&self) -> Result<Option<SecretString>, ConfigError> {
        api_key("embeddings", &self.api_key_env, |name| {
            std::env::var(name).ok()
        })
    }

    pub fn policy(&self) -> BackendPolicy {
        policy(
            self.retries,
            self.breaker_failures,
            self.breaker_open_secs,
            self.concurrency,
            self.rate_per_minute,
        )
    }
}

impl RetrieverConfig {
    /// The backend name: "local" or "hayhooks".
    pub fn name(&self) -> &'static str {
        self.provider.as_str()
    }

    pub fn policy(&self) -> BackendPolicy {
        policy(
            self.retries,
            self.breaker_failures,
            self.breaker_open_secs,
            self.concurrency,
            self.rate_per_minute,
        )
    }
}

fn endpoint(base_url: &str, default: Option<&str>) -> Option<String> {
    let base = base_url.trim();
    if base.is_empty() {
        default.map(str::to_string)
    } else {
        Some(base.trim_end_matches('/').to_string())
    }
}

fn api_key(
    section: &'static str,
    var: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<SecretString>, ConfigError> {
    let var = var.trim();
    if var.is_empty() {
        return Ok(None);
    }
    match lookup(var) {
        Some(key) if !key.trim().is_empty() => Ok(Some(SecretString::from(key.trim()))),
        _ => Err(ConfigError::MissingKey {
            section,
            var: var.to_string(),
        }),
    }
}

fn policy(
    retries: u32,
    breaker_failures: u32,
    breaker_open_secs: u64,
    concurrency: usize,
    rate_per_minute: u32,
) -> BackendPolicy {
    BackendPolicy {
        concurrency,
        rate_per_minute: (rate_per_minute > 0).then_some(rate_per_minute),
        retry: RetryPolicy {
            max_retries: retries,
            ..RetryPolicy::default()
        },
        breaker_failures,
        breaker_open: Duration::from_secs(breaker_open_secs),
    }
}

/// A semantic problem: which key, and what is wrong with it.
#[derive(Debug, Clone)]
struct Problem {
    section: &'static str,
    key: &'static str,
    message: String,
}

impl Config {
    pub fn backend_names(&self) -> BackendNames {
        BackendNames {
            llm: self.llm.name(),
            retriever: self.retriever.name(),
            embeddings: self.embeddings.name(),
        }
    }

    /// Checks what types alone cannot; every problem is reported, one per
    /// line.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(
                problems
                    .into_iter()
                    .map(|p| p.message)
                    .collect::<Vec<_>>()
                    .join("\n"),
            ))
        }
    }

    fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut add = |section: &'static str, key: &'static str, message: String| {
            out.push(Problem {
                section,
                key,
                message: format!("[{section}] {key}: {message}"),
            });
        };

        let llm = &self.llm;
        for (key, message) in server_problems(
            "--llm",
            &llm.provider,
            llm.provider != LlmProvider::Offline,
            &llm.model,
            &llm.base_url,
            &llm.api_key_env,
        ) {
            add("llm", key, message);
        }
        if !(llm.temperature.is_finite() && (0.0..=2.0).contains(&llm.temperature)) {
            add(
                "llm",
                "temperature",
                format!("{} is out of range; use 0 to 2", llm.temperature),
            );
        }
        if llm.max_tokens == 0 {
            add("llm", "max_tokens", "must be at least 1".into());
        }
        for (key, d) in [
            ("first_token_timeout", llm.first_token_timeout),
            ("idle_timeout", llm.idle_timeout),
        ] {
            if d.is_zero() {
                add("llm", key, "must be more than 0".into());
            }
        }
        for (key, message) in limit_problems(
            llm.retries,
            llm.breaker_failures,
            llm.breaker_open_secs,
            llm.concurrency,
        ) {
            add("llm", key, message);
        }

        let emb = &self.embeddings;
        for (key, message) in server_problems(
            "--embeddings",
            &emb.provider,
            emb.provider != EmbeddingsProvider::None,
            &emb.model,
            &emb.base_url,
            &emb.api_key_env,
        ) {
            add("embeddings", key, message);
        }
        if emb.batch_size == 0 {
            add("embeddings", "batch_size", "must be at least 1".into());
        }
        if emb.timeout.is_zero() {
            add("embeddings", "timeout", "must be more than 0".into());
        }
        for (key, message) in limit_problems(
            emb.retries,
            emb.breaker_failures,
            emb.breaker_open_secs,
            emb.concurrency,
        ) {
            add("embeddings", key, message);
        }

        let ret = &self.retriever;
        if ret.provider == RetrieverProvider::Hayhooks && ret.url.trim().is_empty() {
            add(
                "retriever",
                "url",
                "provider \"hayhooks\" needs the pipeline's url, e.g. url = \"http://127.0.0.1:1416/lore/run\", or use --retriever-url URL".into(),
            );
        }
        if let Err(e) = check_url(&ret.url) {
            add("retriever", "url", e);
        }
        if !(1..=100).contains(&ret.top_k) {
            add(
                "retriever",
                "top_k",
                format!("{} is out of range; use 1 to 100", ret.top_k),
            );
        }
        if ret.timeout.is_zero() {
            add("retriever", "timeout", "must be more than 0".into());
        }
        if ret.source_meta_key.trim().is_empty() {
            add(
                "retriever",
                "source_meta_key",
                "must name a metadata field, e.g. \"source\"".into(),
            );
        }
        for (key, message) in limit_problems(
            ret.retries,
            ret.breaker_failures,
            ret.breaker_open_secs,
            ret.concurrency,
        ) {
            add("retriever", key, message);
        }
        out
    }

    /// Applies environment and flag overrides (merge them first with
    /// [`Overrides::or`]), then validates the result.
    ///
    /// `--llm PROVIDER[:MODEL]` sets the provider and, when given, the model.
    /// Switching to another provider resets `base_url` to the new provider's
    /// default and clears the model unless one is given; switching between
    /// two network providers also clears `api_key_env`, so a key meant for
    /// one server is never sent to another. `--embeddings` works the same.
    pub fn apply(&mut self, o: &Overrides) -> Result<(), ConfigError> {
        if let Some(spec) = &o.llm {
            let llm = &mut self.llm;
            let model = switch_provider(
                spec,
                "--llm (or LOREWEAVE_LLM)",
                "ollama:llama3.2",
                &mut llm.provider,
                [&mut llm.base_url, &mut llm.model, &mut llm.api_key_env],
            )?;
            if let Some(model) = model {
                llm.model = model.to_string();
            }
        }
        if let Some(url) = &o.llm_url {
            self.llm.base_url = url.trim().to_string();
        }

        if let Some(spec) = &o.embeddings {
            let emb = &mut self.embeddings;
            let model = switch_provider(
                spec,
                "--embeddings (or LOREWEAVE_EMBEDDINGS)",
                "ollama:nomic-embed-text",
                &mut emb.provider,
                [&mut emb.base_url, &mut emb.model, &mut emb.api_key_env],
            )?;
            match model {
                Some(_) if emb.provider == EmbeddingsProvider::None => {
                    return Err(ConfigError::Invalid(
                        "--embeddings none takes no model".into(),
                    ));
                }
                Some(model) => emb.model = model.to_string(),
                None => {}
            }
        }
        if let Some(url) = &o.embeddings_url {
            self.embeddings.base_url = url.trim().to_string();
        }

        if let Some(spec) = &o.retriever {
            let spec = spec.trim();
            if spec.contains(':') {
                return Err(ConfigError::Invalid(format!(
                    "--retriever (or LOREWEAVE_RETRIEVER) wants a PROVIDER, {}; give a hayhooks URL with --retriever-url",
                    or_list(RetrieverProvider::ALL)
                )));
            }
            self.retriever.provider = spec.parse().map_err(|e| {
                ConfigError::Invalid(format!(
                    "--retriever (or LOREWEAVE_RETRIEVER) wants a PROVIDER: {e}"
                ))
            })?;
        }
        if let Some(url) = &o.retriever_url {
            self.retriever.url = url.trim().to_string();
        }
        self.validate()
    }

    /// The engine settings: backend names, deadlines, `top_k`, and a policy
    /// per backend name.
    pub fn engine_config(&self) -> EngineConfig {
        let mut policies = BTreeMap::new();
        policies.insert(self.llm.name().to_string(), self.llm.policy());
        policies.insert(self.retriever.name().to_string(), self.retriever.policy());
        if let Some(name) = self.embeddings.name() {
            policies.insert(name.to_string(), self.embeddings.policy());
        }
        EngineConfig {
            retriever: self.retriever.name().to_string(),
            generator: self.llm.name().to_string(),
            retrieval_timeout: self.retriever.timeout,
            first_token_timeout: self.llm.first_token_timeout,
            idle_timeout: self.llm.idle_timeout,
            top_k: self.retriever.top_k,
            retrieval_policy: self.retriever.policy(),
            chat_policy: self.llm.policy(),
            policies,
            embedder: self.query_embedder().map(str::to_string),
            embed_timeout: self.embeddings.timeout,
            ..EngineConfig::default()
        }
    }

    /// The embeddings backend that embeds queries: only with the local
    /// retriever (a Hayhooks pipeline embeds queries itself).
    pub fn query_embedder(&self) -> Option<&'static str> {
        match self.retriever.provider {
            RetrieverProvider::Local => self.embeddings.name(),
            RetrieverProvider::Hayhooks => None,
        }
    }

    /// The prompt templates: built-in, or read from the files named in
    /// `[prompts]`.
    pub fn prompts(&self) -> Result<Prompts, ConfigError> {
        let mut prompts = Prompts::default();
        if let Some(text) = read_template(&self.prompts.chat)? {
            prompts.chat = text;
        }
        if let Some(text) = read_template(&self.prompts.scenario)? {
            prompts.scenario = text;
        }
        Ok(prompts)
    }
}

/// The checks shared by the sections that talk to a model server: a
/// provider other than none/offline needs a model; the URL and the key's
/// variable name must be well formed.
fn server_problems(
    flag: &str,
    provider: &dyn fmt::Display,
    remote: bool,
    model: &str,
    base_url: &str,
    api_key_env: &str,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if remote && model.trim().is_empty() {
        out.push((
            "model",
            format!("provider \"{provider}\" needs a model; set model = \"...\" or use {flag} {provider}:MODEL"),
        ));
    }
    if let Err(e) = check_url(base_url) {
        out.push(("base_url", e));
    }
    if let Err(e) = check_env_name(api_key_env) {
        out.push(("api_key_env", e));
    }
    out
}

fn limit_problems(
    retries: u32,
    breaker_failures: u32,
    breaker_open_secs: u64,
    concurrency: usize,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if retries > 10 {
        out.push(("retries", format!("{retries} is too many; use 0 to 10")));
    }
    if breaker_failures == 0 {
        out.push(("breaker_failures", "must be at least 1".into()));
    }
    if !(1..=86_400).contains(&breaker_open_secs) {
        out.push((
            "breaker_open_secs",
            format!("{breaker_open_secs} is out of range; use 1 to 86400"),
        ));
    }
    if concurrency == 0 {
        out.push(("concurrency", "must be at least 1".into()));
    }
    out
}

fn read_template(path: &str) -> Result<Option<String>, ConfigError> {
    if path.trim().is_empty() {
        return Ok(None);
    }
    let path = expand_home(path.trim());
    let text = fs::read_to_string(&path).map_err(|source| ConfigError::Io {
        path: path.clone(),
        source,
    })?;
    if text.trim().is_empty() {
        return Err(ConfigError::Invalid(format!(
            "prompt template {} is empty",
            path.display()
        )));
    }
    Ok(Some(text))
}

/// "~/x" is x in the home directory.
fn expand_home(path: &str) -> PathBuf {
    if let Some(rest) = path.strip_prefix("~/")
        && let Some(dirs) = directories::BaseDirs::new()
    {
        return dirs.home_dir().join(rest);
    }
    PathBuf::from(path)
}

/// Empty is fine (the provider's default); otherwise an http(s) URL with a
/// host and no credentials.
fn check_url(value: &str) -> Result<(), String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(());
    }
    let url = reqwest::Url::parse(value).map_err(|e| {
        if value.contains('@') {
            format!("not a valid URL ({e})")
        } else {
            format!("`{value}` is not a valid URL ({e}); e.g. \"http://127.0.0.1:8080/v1\"")
        }
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        // Not repeated: it holds a credential.
        return Err(
            "must not contain a user name or password; put an API key in the environment and name it with api_key_env".into(),
        );
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{value}` must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{value}` has no host"));
    }
    Ok(())
}

/// `api_key_env` must be a variable's name, never the key. The value is not
/// repeated in the message: it might be the key.
fn check_env_name(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    let is_name = value.len() <= 64
        && value
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    // Long runs of mixed letters and digits without separators are how keys
    // look, not how variables are named.
    let is_key_like = value.len() >= 24
        && !value.contains('_')
        && value.chars().any(|c| c.is_ascii_digit())
        && value.chars().any(|c| c.is_ascii_alphabetic());
    if is_name && !is_key_like {
        Ok(())
    } else {
        Err("must be the NAME of an environment variable, such as OPENAI_API_KEY, not the key itself; put the key in the environment (export OPENAI_API_KEY=...) and write only its name here".into())
    }
}

fn or_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("`{s}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// "ollama:llama3.2:1b" -> ("ollama", Some("llama3.2:1b")): the model may
/// itself contain ':'.
/// `--llm` / `--embeddings`: parse `PROVIDER[:MODEL]` into the section's
/// provider and return the model, if one was given. Switching to another
/// provider drops the section's `base_url` and `model`, and its
/// `api_key_env` when leaving a network provider (the default, first
/// variant is the local one), so a key meant for one server is never sent
/// to another.
fn switch_provider<'s, P>(
    spec: &'s str,
    flag: &str,
    example: &str,
    provider: &mut P,
    [base_url, model, api_key_env]: [&mut String; 3],
) -> Result<Option<&'s str>, ConfigError>
where
    P: FromStr<Err = String> + PartialEq + Copy + Default,
{
    let wants = || format!("{flag} wants PROVIDER[:MODEL], e.g. {example}");
    let (name, given) = split_spec(spec);
    let new: P = name
        .parse()
        .map_err(|e| ConfigError::Invalid(format!("{}: {e}", wants())))?;
    if new != *provider {
        base_url.clear();
        model.clear();
        if *provider != P::default() {
            api_key_env.clear();
        }
    }
    *provider = new;
    if given == Some("") {
        return Err(ConfigError::Invalid(format!(
            "{}: the model after `:` is empty",
            wants()
        )));
    }
    Ok(given)
}

fn split_spec(spec: &str) -> (&str, Option<&str>) {
    match spec.trim().split_once(':') {
        Some((provider, model)) => (provider.trim(), Some(model.trim())),
        None => (spec.trim(), None),
    }
}

// ----- durations ---------------------------------------------------------------

/// Durations are written as "60s", "1.5s", "200ms" or "2m", or as a number of
/// seconds.
mod duration_text {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    use crate::domain::parse_duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(DurationVisitor)
    }

    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as \"10s\", \"1.5s\" or \"200ms\", or a number of seconds")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            parse_duration(v).map_err(E::custom)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            parse_duration(&format!("{v}s")).map_err(E::custom)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            parse_duration(&format!("{v}s")).map_err(E::custom)
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
            if !v.is_finite() {
                return Err(E::custom(format!("{v} is not a duration")));
            }
            parse_duration(&format!("{v}s")).map_err(E::custom)
        }
    }
}

/// "60s", "1500ms": how a duration is written back.
fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

// ----- parsing with locations ----------------------------------------------------

/// 1-based line and character column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// Where each section header and key was written, for pointing at them.
#[derive(Default)]
struct Locations {
    sections: HashMap<String, Range<usize>>,
    keys: HashMap<(String, String), Range<usize>>,
}

impl Locations {
    /// The key itself, else the section's `provider` (what made the key
    /// needed), else the section header, else the top of the file.
    fn of(&self, section: &str, key: &str) -> usize {
        let find = |k: &str| self.keys.get(&(section.to_string(), k.to_string()));
        find(key)
            .or_else(|| find("provider"))
            .or_else(|| self.sections.get(section))
            .map_or(0, |r| r.start)
    }
}

fn diagnostic(text: &str, offset: usize, message: String) -> Diagnostic {
    let (line, column) = line_col(text, offset);
    Diagnostic {
        line,
        column,
        message,
    }
}

/// serde's wording, made for people: Rust type names become words, and a
/// string given where a number was expected is not repeated (it might be a
/// secret put in the wrong place).
fn humanize(message: &str) -> String {
    let mut m = message.to_string();
    if let Some(rest) = m.strip_prefix("invalid type: string \"")
        && let Some(i) = rest.find("\", expected")
    {
        m = format!("invalid type: a string{}", &rest[i + 1..]);
    }
    for (rust, words) in [
        ("expected usize", "expected a whole number, 0 or more"),
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected u32", "expected a whole number, 0 or more"),
        ("expected f32", "expected a number"),
        (
            "expected a map",
            "expected a table, e.g. { key = \"value\" }",
        ),
    ] {
        m = m.replace(rust, words);
    }
    m
}

/// The closest known name, for "did you mean".
fn suggestion<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(unknown, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}

fn unknown_key_message(section: &str, key: &str, known: &[&str]) -> String {
    let lower = key.to_ascii_lowercase();
    if ["api_key", "key", "token", "apikey", "secret", "password"].contains(&lower.as_str()) {
        return format!(
            "unknown key `{key}` in [{section}]: API keys never go in this file; put the key in an environment variable and set api_key_env to that variable's name"
        );
    }
    match suggestion(key, known) {
        Some(s) => format!("unknown key `{key}` in [{section}]; did you mean `{s}`?"),
        None => format!(
            "unknown key `{key}` in [{section}]; known keys: {}",
            known.join(", ")
        ),
    }
}

fn deserialize_section(
    config: &mut Config,
    section: &str,
    value: ValueDeserializer<'_>,
) -> Result<(), toml::de::Error> {
    match section {
        "llm" => config.llm = LlmConfig::deserialize(value)?,
        "embeddings" => config.embeddings = EmbeddingsConfig::deserialize(value)?,
        "retriever" => config.retriever = RetrieverConfig::deserialize(value)?,
        _ => config.prompts = PromptsConfig::deserialize(value)?,
    }
    Ok(())
}

/// Parses a configuration text. Every problem is reported with its line and
/// column: syntax errors, unknown sections and keys, wrong types (one per
/// key), and then what [`Config::validate`] checks.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let (root, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        let diagnostics = errors
            .iter()
            .map(|e| diagnostic(text, e.span().map_or(0, |s| s.start), e.message().into()))
            .collect();
        return Err(ConfigError::Parse(sorted(diagnostics)));
    }

    let mut diagnostics = Vec::new();
    let mut at = Locations::default();
    let mut refused: Vec<(&str, &str)> = Vec::new();
    let mut config = Config::default();
    let section_names: Vec<&str> = SECTIONS.iter().map(|(s, _)| *s).collect();

    for (key, value) in root.into_inner() {
        let name = key.get_ref().as_ref();
        let Some(&(section, fields)) = SECTIONS.iter().find(|(s, _)| *s == name) else {
            let hint = match suggestion(name, &section_names) {
                Some(s) => format!("did you mean [{s}]?"),
                None => "sections are [llm], [embeddings], [retriever] and [prompts]".into(),
            };
            let what = if value.get_ref().is_table() {
                format!("unknown section [{name}]")
            } else {
                format!("unknown key `{name}` outside any section")
            };
            diagnostics.push(diagnostic(
                text,
                key.span().start,
                format!("{what}; {hint}"),
            ));
            continue;
        };
        at.sections.insert(section.to_string(), key.span());
        let span = value.span();
        let DeValue::Table(mut table) = value.into_inner() else {
            diagnostics.push(diagnostic(
                text,
                key.span().start,
                format!("`{section}` must be a section ([{section}]), not a single value"),
            ));
            continue;
        };

        let mut unknown = Vec::new();
        for (k, _) in table.iter() {
            let k_name = k.get_ref().as_ref();
            if fields.contains(&k_name) {
                at.keys
                    .insert((section.to_string(), k_name.to_string()), k.span());
            } else {
                unknown.push(k_name.to_string());
                // A misspelt key: what it was meant to set is not judged
                // again ("needs a model" under `modle = ...` says nothing new).
                if let Some(meant) = suggestion(k_name, fields) {
                    refused.push((section, meant));
                }
                diagnostics.push(diagnostic(
                    text,
                    k.span().start,
                    unknown_key_message(section, k_name, fields),
                ));
            }
        }
        for k in &unknown {
            table.remove(k.as_str());
        }

        // serde stops at the first wrong value; drop it and go on, so every
        // wrong value in the section is reported at once.
        for _ in 0..=fields.len() {
            let value = ValueDeserializer::from(toml::Spanned::new(
                span.clone(),
                DeValue::Table(table.clone()),
            ));
            let Err(e) = deserialize_section(&mut config, section, value) else {
                break;
            };
            let culprit = e.span().and_then(|s| {
                table
                    .iter()
                    .find(|(k, v)| {
                        let (k, v) = (k.span(), v.span());
                        (k.start <= s.start && s.start < k.end)
                            || (v.start <= s.start && s.start < v.end.max(v.start + 1))
                    })
                    .map(|(k, _)| k.get_ref().to_string())
            });
            let offset = e.span().map_or(span.start, |s| s.start);
            let message = match &culprit {
                Some(k) => format!("[{section}] {k}: {}", humanize(e.message())),
                None => format!("[{section}]: {}", humanize(e.message())),
            };
            diagnostics.push(diagnostic(text, offset, message));
            match culprit {
                Some(k) => {
                    table.remove(k.as_str());
                    if let Some(field) = fields.iter().find(|f| **f == k) {
                        refused.push((section, *field));
                    }
                }
                None => break,
            }
        }
    }
    // Semantic checks run even when some values were wrong, so one pass
    // shows everything; a key whose value was refused is not checked again
    // (its default stands in for it).
    for p in config.problems() {
        if !refused.contains(&(p.section, p.key)) {
            diagnostics.push(diagnostic(text, at.of(p.section, p.key), p.message));
        }
    }
    if !diagnostics.is_empty() {
        return Err(ConfigError::Parse(sorted(diagnostics)));
    }
    Ok(config)
}

fn sorted(mut diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diagnostics.sort_by_key(|d| (d.line, d.column));
    diagnostics
}

/// For `config check`: every problem in `text`; empty means it is fine.
pub fn check_report(text: &str) -> Vec<Diagnostic> {
    match parse(text) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Parse(d)) => d,
        Err(other) => vec![Diagnostic {
            line: 1,
            column: 1,
            message: other.to_string(),
        }],
    }
}

// ----- files -----------------------------------------------------------------------

/// `$XDG_CONFIG_HOME/loreweave/config.toml` (or the platform's equivalent);
/// `None` when there is no home directory.
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "loreweave").map(|d| d.config_dir().join(FILE_NAME))
}

/// Where the config is read from: the flag, else the default path.
pub fn resolve_path(flag: Option<&Path>) -> Option<PathBuf> {
    flag.map(Path::to_path_buf).or_else(default_path)
}

/// Reads and parses the file at `path`. A missing file is the defaults,
/// unless it was named explicitly (`--config`). Relative prompt template
/// paths are taken relative to the file's directory.
pub fn load(path: Option<&Path>, explicit: bool) -> Result<Config, ConfigError> {
    let Some(path) = path else {
        return if explicit {
            Err(ConfigError::Invalid(
                "no configuration file was named".into(),
            ))
        } else {
            Ok(Config::default())
        };
    };
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return if explicit {
                Err(ConfigError::NotFound {
                    path: path.to_path_buf(),
                })
            } else {
                Ok(Config::default())
            };
        }
        Err(source) => {
            return Err(ConfigError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut config = parse(&text)?;
    let dir = path.parent().unwrap_or(Path::new(""));
    for template in [&mut config.prompts.chat, &mut config.prompts.scenario] {
        let trimmed = template.trim();
        if trimmed.is_empty() {
            continue;
        }
        let expanded = expand_home(trimmed);
        let resolved = if expanded.is_relative() {
            dir.join(expanded)
        } else {
            expanded
        };
        *template = resolved.to_string_lossy().into_owned();
    }
    Ok(config)
}

/// `config init`: writes the commented default to `path`, creating its
/// directory; an existing file is replaced only with `force`.
pub fn init(path: &Path, force: bool) -> Result<PathBuf, ConfigError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ConfigError::Io { path, source }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        // create_new: no window between "does it exist" and writing.
        options.create_new(true);
    }
    let mut file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(ConfigError::Exists {
                path: path.to_path_buf(),
            });
        }
        Err(source) => return Err(io(path)(source)),
    };
    file.write_all(DEFAULT_TOML.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io(path))?;
    Ok(path.to_path_buf())
}

// ----- overrides ---------------------------------------------------------------------

/// Settings from the environment or the command line; `None` leaves the file's
/// value. Layered file < environment < flags: `flags.or(env)`, then
/// [`Config::apply`].
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct Overrides {
    /// "PROVIDER[:MODEL]", e.g. "ollama:llama3.2".
    pub llm: Option<String>,
    pub llm_url: Option<String>,
    /// "local" or "hayhooks".
    pub retriever: Option<String>,
    pub retriever_url: Option<String>,
    /// "PROVIDER[:MODEL]", e.g. "ollama:nomic-embed-text".
    pub embeddings: Option<String>,
    pub embeddings_url: Option<String>,
}

impl Overrides {
    /// `LOREWEAVE_LLM`, `LOREWEAVE_LLM_URL`, `LOREWEAVE_RETRIEVER`,
    /// `LOREWEAVE_RETRIEVER_URL`, `LOREWEAVE_EMBEDDINGS`,
    /// `LOREWEAVE_EMBEDDINGS_URL`; empty values are ignored.
    pub fn from_env() -> Overrides {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`Overrides::from_env`], reading variables through `f`.
    pub fn from_lookup(f: impl Fn(&str) -> Option<String>) -> Overrides {
        let get = |name: &str| {
            f(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        Overrides {
            llm: get("LOREWEAVE_LLM"),
            llm_url: get("LOREWEAVE_LLM_URL"),
            retriever: get("LOREWEAVE_RETRIEVER"),
            retriever_url: get("LOREWEAVE_RETRIEVER_URL"),
            embeddings: get("LOREWEAVE_EMBEDDINGS"),
            embeddings_url: get("LOREWEAVE_EMBEDDINGS_URL"),
        }
    }

    /// Each setting from `self` when it has one, else from `lower`.
    pub fn or(self, lower: Overrides) -> Overrides {
        Overrides {
            llm: self.llm.or(lower.llm),
            llm_url: self.llm_url.or(lower.llm_url),
            retriever: self.retriever.or(lower.retriever),
            retriever_url: self.retriever_url.or(lower.retriever_url),
            embeddings: self.embeddings.or(lower.embeddings),
            embeddings_url: self.embeddings_url.or(lower.embeddings_url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diags(text: &str) -> Vec<Diagnostic> {
        match parse(text) {
            Err(ConfigError::Parse(d)) => d,
            other => panic!("expected diagnostics, got {other:?}"),
        }
    }

    #[test]
    fn default_asset_parses_to_the_defaults() {
        assert_eq!(parse(DEFAULT_TOML).unwrap(), Config::default());
        assert_eq!(parse("").unwrap(), Config::default());
        Config::default().validate().unwrap();
    }

    #[test]
    fn known_keys_match_the_structs_and_the_asset() {
        let serialized = toml::Value::try_from(Config::default()).unwrap();
        let asset: toml::Table = toml::from_str(DEFAULT_TOML).unwrap();
        let table = serialized.as_table().unwrap();
        assert_eq!(table.len(), SECTIONS.len());
        for (section, fields) in SECTIONS {
            let mut want: Vec<&str> = fields.to_vec();
            want.sort_unstable();
            for source in [table, &asset] {
                let mut got: Vec<&str> = source[*section]
                    .as_table()
                    .unwrap()
                    .keys()
                    .map(String::as_str)
                    .collect();
                got.sort_unstable();
                assert_eq!(got, want, "[{section}]");
            }
        }
        // The asset keeps the documented order of sections.
        let order: Vec<usize> = ["[llm]", "[embeddings]", "[retriever]", "[prompts]"]
            .iter()
            .map(|h| DEFAULT_TOML.find(&format!("\n{h}\n")).unwrap())
            .collect();
        assert!(order.is_sorted());
    }

    #[test]
    fn unknown_key_is_reported_at_its_line_and_column() {
        let text = "[llm]\nprovider = \"ollama\"\n# a comment\nmodle = \"x\"\n";
        let d = diags(text);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].line, d[0].column), (4, 1));
        assert!(d[0].message.contains("`modle`"), "{}", d[0].message);
        assert!(
            d[0].message.contains("did you mean `model`"),
            "{}",
            d[0].message
        );
        assert!(d[0].to_string().starts_with("line 4, column 1: "));
    }

    #[test]
    fn every_unknown_key_and_section_is_reported() {
        let text = "[llm]\n  tempurature = 1.0\n\n[retreiver]\ntop_k = 3\n[prompts]\nchat = \"\"\nstyle = 1\n";
        let d = diags(text);
        let at: Vec<(usize, usize)> = d.iter().map(|d| (d.line, d.column)).collect();
        assert_eq!(at, [(2, 3), (4, 2), (8, 1)], "{d:?}");
        assert!(d[0].message.contains("did you mean `temperature`"));
        assert!(
            d[1].message
                .contains("unknown section [retreiver]; did you mean [retriever]?")
        );
    }

    #[test]
    fn an_api_key_in_the_file_is_refused_without_repeating_it() {
        let d = diags("[llm]\napi_key = \"sk-secret123\"\n");
        assert_eq!(d[0].line, 2);
        assert!(d[0].message.contains("api_key_env"));
        assert!(!d[0].message.contains("sk-secret123"));
    }

    #[test]
    fn type_errors_are_reported_at_the_value() {
        let text = "[retriever]\nprovider = \"local\"\ntop_k = \"five\"\n";
        let d = diags(text);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].line, d[0].column), (3, 9));
        assert!(
            d[0].message.starts_with("[retriever] top_k: "),
            "{}",
            d[0].message
        );
        assert!(d[0].message.contains("whole number"), "{}", d[0].message);
        assert!(!d[0].message.contains("five"));
    }

    #[test]
    fn several_type_errors_in_one_section_are_all_reported() {
        let text = "[llm]\nprovider = \"gpt\"\nmax_tokens = -1\ntemperature = \"hot\"\n";
        let d = diags(text);
        let lines: Vec<usize> = d.iter().map(|d| d.line).collect();
        assert_eq!(lines, [2, 3, 4], "{d:?}");
        assert!(
            d[0].message.contains("`offline`, `openai`, `ollama`"),
            "{}",
            d[0].message
        );
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let d = diags("[llm]\nmodel = \"unterminated\n");
        assert_eq!(d[0].line, 2, "{d:?}");
        let d = diags("[llm]\nmodel = 'a'\nmodel = 'b'\n");
        assert_eq!(d[0].line, 3, "{d:?}");
    }

    #[test]
    fn a_provider_without_its_model_or_url_is_refused() {
        let d = diags("[llm]\nprovider = \"openai\"\n");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].line, 2, "points at the provider");
        assert!(d[0].message.contains("needs a model"), "{}", d[0].message);

        let d = diags("# lore\n[retriever]\nprovider = \"hayhooks\"\n");
        assert_eq!(d[0].line, 3);
        assert!(d[0].message.contains("[retriever] url"), "{}", d[0].message);

        let d = diags("[retriever]\nprovider = \"hayhooks\"\nurl = \"ftp://x/run\"\n");
        assert_eq!(d[0].line, 3);
        assert!(d[0].message.contains("http://"), "{}", d[0].message);

        let d = diags("[embeddings]\nprovider = \"ollama\"\nbatch_size = 0\n");
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!(d[1].line, 3);
    }

    #[test]
    fn range_checks_point_at_their_key() {
        let d = diags("[retriever]\n\ntop_k = 500\n[llm]\ntemperature = 3.5\nconcurrency = 0\n");
        let at: Vec<usize> = d.iter().map(|d| d.line).collect();
        assert_eq!(at, [3, 5, 6], "{d:?}");
    }

    #[test]
    fn durations_take_units_or_seconds_and_must_be_positive() {
        let c = parse("[llm]\nfirst_token_timeout = \"1.5s\"\nidle_timeout = 20\n[retriever]\ntimeout = \"200ms\"\n").unwrap();
        assert_eq!(c.llm.first_token_timeout, Duration::from_millis(1500));
        assert_eq!(c.llm.idle_timeout, Duration::from_secs(20));
        assert_eq!(c.retriever.timeout, Duration::from_millis(200));

        let d = diags("[llm]\nidle_timeout = \"soon\"\n");
        assert_eq!((d[0].line, d[0].column), (2, 16), "{d:?}");
        assert!(d[0].message.contains("not a duration"), "{}", d[0].message);
        let d = diags("[retriever]\ntimeout = 0\n");
        assert_eq!(d[0].line, 2);
        assert!(d[0].message.contains("out of range"), "{}", d[0].message);
        let d = diags("[embeddings]\ntimeout = \"-1s\"\n");
        assert_eq!(d[0].line, 2);
    }

    #[test]
    fn api_key_env_must_be_a_name_not_a_key() {
        let d = diags("[llm]\nprovider = \"openai\"\nmodel = \"m\"\napi_key_env = \"sk-abc123\"\n");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].line, 4);
        assert!(d[0].message.contains("environment"), "{}", d[0].message);
        assert!(!d[0].message.contains("sk-abc123"));
        for bad in ["my key", "abcdef0123456789abcdef0123456789", "OPENAI-KEY"] {
            assert!(check_env_name(bad).is_err(), "{bad}");
        }
        for good in ["OPENAI_API_KEY", "GROQ_API_KEY", "_K", ""] {
            assert!(check_env_name(good).is_ok(), "{good}");
        }
        let c = parse(
            "[llm]\nprovider = \"openai\"\nmodel = \"m\"\napi_key_env = \"OPENAI_API_KEY\"\n",
        )
        .unwrap();
        assert_eq!(c.llm.api_key_env, "OPENAI_API_KEY");
    }

    #[test]
    fn urls_with_credentials_are_refused_without_repeating_them() {
        let e = check_url("https://user:hunter2@example.com/v1").unwrap_err();
        assert!(!e.contains("hunter2"));
        assert!(check_url("http://127.0.0.1:11434").is_ok());
        assert!(check_url("localhost:11434").is_err());
    }

    #[test]
    fn api_key_is_read_from_the_named_variable_only() {
        let k = api_key("llm", "MY_KEY", |n| {
            (n == "MY_KEY").then(|| "s3cret".into())
        })
        .unwrap();
        assert!(k.is_some());
        assert!(api_key("llm", "", |_| Some("x".into())).unwrap().is_none());
        let e = api_key("llm", "MISSING", |_| None).unwrap_err();
        assert!(e.to_string().contains("MISSING"));
    }

    fn env(pairs: &[(&str, &str)]) -> Overrides {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Overrides::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn overrides_layer_file_then_environment_then_flags() {
        let file = "[llm]\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\nbase_url = \"http://vllm:8000/v1\"\n[retriever]\nprovider = \"hayhooks\"\nurl = \"http://file:1416/lore/run\"\n";
        let base = parse(file).unwrap();

        let environment = env(&[
            ("LOREWEAVE_LLM", "ollama:llama3.2"),
            ("LOREWEAVE_RETRIEVER_URL", "http://env:1416/lore/run"),
            ("LOREWEAVE_EMBEDDINGS", ""),
        ]);
        assert_eq!(environment.embeddings, None, "empty values are ignored");

        let mut c = base.clone();
        c.apply(&Overrides::default().or(environment.clone()))
            .unwrap();
        assert_eq!(c.llm.provider, LlmProvider::Ollama);
        assert_eq!(c.llm.model, "llama3.2");
        assert_eq!(
            c.llm.base_url, "",
            "a new provider gets its own default url"
        );
        assert_eq!(c.llm.endpoint().as_deref(), Some("http://127.0.0.1:11434"));
        assert_eq!(c.retriever.url, "http://env:1416/lore/run");
        assert_eq!(
            c.retriever.provider,
            RetrieverProvider::Hayhooks,
            "from the file"
        );

        let flags = Overrides {
            llm: Some("openai:gpt-4.1".into()),
            retriever: Some("local".into()),
            ..Overrides::default()
        };
        let mut c = base.clone();
        c.apply(&flags.or(environment)).unwrap();
        assert_eq!(c.llm.provider, LlmProvider::OpenAi);
        assert_eq!(c.llm.model, "gpt-4.1");
        assert_eq!(
            c.llm.base_url, "http://vllm:8000/v1",
            "same provider keeps the file's url"
        );
        assert_eq!(c.retriever.provider, RetrieverProvider::Local);
        assert_eq!(c.retriever.url, "http://env:1416/lore/run");
    }

    #[test]
    fn provider_model_specs_keep_colons_in_the_model() {
        let mut c = Config::default();
        c.apply(&Overrides {
            llm: Some("ollama:llama3.2:1b".into()),
            embeddings: Some("openai:text-embedding-3-small".into()),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(c.llm.provider, LlmProvider::Ollama);
        assert_eq!(c.llm.model, "llama3.2:1b");
        assert_eq!(c.embeddings.model, "text-embedding-3-small");
        assert_eq!(split_spec(" offline "), ("offline", None));
    }

    #[test]
    fn bad_overrides_say_what_is_wanted() {
        let bad = |o: Overrides| Config::default().apply(&o).unwrap_err().to_string();
        let e = bad(Overrides {
            llm: Some("gpt4".into()),
            ..Overrides::default()
        });
        assert!(
            e.contains("--llm") && e.contains("PROVIDER[:MODEL]") && e.contains("ollama:llama3.2"),
            "{e}"
        );
        let e = bad(Overrides {
            llm: Some("openai".into()),
            ..Overrides::default()
        });
        assert!(e.contains("needs a model"), "{e}");
        let e = bad(Overrides {
            llm: Some("ollama:".into()),
            ..Overrides::default()
        });
        assert!(e.contains("empty"), "{e}");
        let e = bad(Overrides {
            retriever: Some("hayhooks".into()),
            ..Overrides::default()
        });
        assert!(e.contains("--retriever-url"), "{e}");
        let e = bad(Overrides {
            llm_url: Some("not a url".into()),
            ..Overrides::default()
        });
        assert!(e.contains("base_url"), "{e}");
    }

    #[test]
    fn engine_config_maps_names_deadlines_and_policies() {
        let c = parse(
            "[llm]\nprovider = \"ollama\"\nmodel = \"m\"\nretries = 0\nrate_per_minute = 30\nfirst_token_timeout = \"5s\"\n\
             [retriever]\nprovider = \"hayhooks\"\nurl = \"http://127.0.0.1:1416/lore/run\"\nconcurrency = 3\ntop_k = 7\ntimeout = \"2s\"\n\
             [embeddings]\nprovider = \"openai\"\nmodel = \"e\"\nbreaker_failures = 9\n",
        )
        .unwrap();
        let e = c.engine_config();
        assert_eq!(
            (e.retriever.as_str(), e.generator.as_str()),
            ("hayhooks", "ollama")
        );
        assert_eq!(e.top_k, 7);
        assert_eq!(e.retrieval_timeout, Duration::from_secs(2));
        assert_eq!(e.first_token_timeout, Duration::from_secs(5));
        assert_eq!(e.policy_for("hayhooks").concurrency, 3);
        let llm = e.policy_for("ollama");
        assert_eq!(llm.retry.max_retries, 0);
        assert_eq!(llm.rate_per_minute, Some(30));
        assert_eq!(llm.retry.base, Duration::from_secs(1));
        assert_eq!(llm.retry.cap, Duration::from_secs(8));
        assert_eq!(e.policy_for("openai-embed").breaker_failures, 9);
        assert_eq!(e.policy_for("openai-embed").concurrency, 4);
        assert_eq!(
            c.backend_names(),
            BackendNames {
                llm: "ollama",
                retriever: "hayhooks",
                embeddings: Some("openai-embed")
            }
        );

        let d = Config::default().engine_config();
        assert_eq!(
            (d.retriever.as_str(), d.generator.as_str()),
            ("local", "offline")
        );
        assert_eq!(d.policy_for("local"), BackendPolicy::retrieval());
        assert_eq!(d.policy_for("offline"), BackendPolicy::chat());
        assert_eq!(Config::default().backend_names().embeddings, None);
    }

    #[test]
    fn extra_parameters_become_json() {
        let c = parse("[retriever]\nextra = { filters = { field = \"meta.campaign\", value = \"greywater\" }, n = 2 }\n").unwrap();
        assert_eq!(c.retriever.extra["n"], serde_json::json!(2));
        assert_eq!(
            c.retriever.extra["filters"]["value"],
            serde_json::json!("greywater")
        );
        let d = diags("[retriever]\nextra = 3\n");
        assert_eq!(d[0].line, 2);
    }

    #[test]
    fn init_writes_a_parsable_file_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/loreweave/config.toml");
        assert_eq!(init(&path, false).unwrap(), path);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(parse(&text).unwrap(), Config::default());

        fs::write(&path, "[llm]\n").unwrap();
        let e = init(&path, false).unwrap_err();
        assert!(matches!(e, ConfigError::Exists { .. }));
        assert!(e.to_string().contains("--force"), "{e}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "[llm]\n", "untouched");
        init(&path, true).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), DEFAULT_TOML);
    }

    #[test]
    fn load_missing_default_is_defaults_but_missing_explicit_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.toml");
        assert_eq!(load(Some(&missing), false).unwrap(), Config::default());
        assert!(matches!(
            load(Some(&missing), true),
            Err(ConfigError::NotFound { .. })
        ));
        assert_eq!(load(None, false).unwrap(), Config::default());

        let bad = dir.path().join("bad.toml");
        fs::write(&bad, "[llm]\nmodle = 1\n").unwrap();
        let e = load(Some(&bad), true).unwrap_err();
        assert_eq!(e.diagnostics()[0].line, 2);
        assert_eq!(resolve_path(Some(&bad)), Some(bad.clone()));
    }

    #[test]
    fn prompt_templates_come_from_files_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("chat.md"),
            "Lore: {passages}\nQ: {question}\n",
        )
        .unwrap();
        let path = dir.path().join("config.toml");
        fs::write(&path, "[prompts]\nchat = \"chat.md\"\n").unwrap();
        let c = load(Some(&path), true).unwrap();
        let p = c.prompts().unwrap();
        assert_eq!(p.chat, "Lore: {passages}\nQ: {question}\n");
        assert_eq!(p.scenario, Prompts::default().scenario);

        fs::write(&path, "[prompts]\nscenario = \"gone.md\"\n").unwrap();
        let e = load(Some(&path), true).unwrap().prompts().unwrap_err();
        assert!(e.to_string().contains("gone.md"), "{e}");
    }

    #[test]
    fn check_report_lists_problems_or_nothing() {
        assert!(check_report(DEFAULT_TOML).is_empty());
        let r = check_report("[llm]\nprovider = \"ollama\"\n");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].line, 2);
    }

    #[test]
    fn line_and_column_count_characters() {
        let text = "a\nbé = 1\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 2), (2, 1));
        assert_eq!(line_col(text, 6), (2, 4));
        assert_eq!(line_col(text, 999), (3, 1));
    }
}
