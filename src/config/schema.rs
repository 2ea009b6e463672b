//! The configuration's shape: one serde struct per section (`[llm]`,
//! `[embeddings]`, `[retriever]`, `[prompts]`, `[kb]`, `[telemetry]`, `[ui]`), the limits the backend
//! sections share (`LimitsConfig`, one per section), the provider enums, the
//! defaults, the keys as the file spells them, and what the rest of the
//! crate reads from a `Config`: backend names, endpoints, API keys, the
//! engine's settings and each backend's policy.
//!
//! Durations and sizes are written as text ("20s", "50MB") and read back
//! from text or a bare number (seconds, bytes).
//!
//! Invariants: each struct's `Default` is what assets/config.toml says, and
//! `SECTIONS` lists exactly the structs' fields (tests keep both in step).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::engine::EngineConfig;
use crate::engine::limits::{BackendPolicy, LatePolicy};
use crate::engine::retry::RetryPolicy;

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
    pub kb: KbConfig,
    pub telemetry: TelemetryConfig,
    pub ui: UiConfig,
    /// `[keys]`: remapped actions, checked by `parse`.
    #[serde(skip_serializing_if = "KeysConfig::is_empty")]
    pub keys: KeysConfig,
}

/// `[keys]` as written: `action` or `context.action` -> its keys. `parse`
/// refuses unknown actions, contexts and keys and keys bound twice, with
/// their lines; [`KeysConfig::keymap`] applies the entries.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeysConfig(pub BTreeMap<String, Vec<String>>);

impl KeysConfig {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The default binding table with these remaps applied, and the
    /// problems of the entries that could not be (none after `parse`).
    pub fn keymap(&self) -> (crate::keymap::Keymap, Vec<String>) {
        let mut map = crate::keymap::Keymap::default();
        let mut problems = Vec::new();
        for (name, keys) in &self.0 {
            if let Err(e) = apply_remap(&mut map, name, keys) {
                problems.push(format!("[keys] {name}: {e}"));
            }
        }
        (map, problems)
    }
}

/// Apply one `[keys]` entry (`action` or `context.action`) to `map`.
pub(super) fn apply_remap(
    map: &mut crate::keymap::Keymap,
    name: &str,
    keys: &[String],
) -> Result<(), String> {
    use crate::keymap::{Action, Context, Key};
    let (context, action_name) = match name.split_once('.') {
        Some((c, a)) => (Some(c), a),
        None => (None, name),
    };
    let context = match context {
        Some(c) => Some(Context::from_id(c).ok_or_else(|| {
            let ids = Context::ALL.iter().map(|c| c.id());
            match super::parse::closest(c, ids) {
                Some(s) => format!("unknown context `{c}`; did you mean `{s}`?"),
                None => format!(
                    "unknown context `{c}`; contexts are {}",
                    Context::ALL.map(|c| c.id()).join(", ")
                ),
            }
        })?),
        None => None,
    };
    let action = Action::from_id(action_name).ok_or_else(|| {
        let names = crate::keymap::ACTION_NAMES.iter().map(|(n, _)| *n);
        match super::parse::closest(action_name, names) {
            Some(s) => format!("unknown action `{action_name}`; did you mean `{s}`?"),
            None => {
                format!("unknown action `{action_name}`; the actions are listed in docs/keys.md")
            }
        }
    })?;
    let keys = keys
        .iter()
        .map(|k| k.parse::<Key>())
        .collect::<Result<Vec<Key>, String>>()?;
    map.rebind(context, action, keys).map_err(|e| e.to_string())
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
    /// Retries, breaker, concurrency and rate; in the file, keys of this
    /// section (see [`LimitsConfig`]).
    #[serde(flatten, skip_deserializing)]
    pub limits: LimitsConfig,
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
            limits: LimitsConfig::with_concurrency(2),
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
    /// Retries, breaker, concurrency and rate; in the file, keys of this
    /// section (see [`LimitsConfig`]).
    #[serde(flatten, skip_deserializing)]
    pub limits: LimitsConfig,
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
            limits: LimitsConfig::with_concurrency(4).observing(),
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
    /// Retries, breaker, concurrency and rate; in the file, keys of this
    /// section (see [`LimitsConfig`]).
    #[serde(flatten, skip_deserializing)]
    pub limits: LimitsConfig,
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
            limits: LimitsConfig::with_concurrency(8).observing(),
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

/// The knowledge base in use, and the limits of adding to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KbConfig {
    /// Which knowledge base; see [`validate_kb_name`](super::validate_kb_name)
    /// for what a name may be.
    pub name: String,
    /// Files larger than this many bytes are skipped at ingest.
    #[serde(with = "size_text")]
    pub max_file_size: u64,
    /// The deadline of `kb add URL`.
    #[serde(with = "duration_text")]
    pub fetch_timeout: Duration,
    /// The largest page, in bytes, that `kb add URL` fetches.
    #[serde(with = "size_text")]
    pub max_fetch_size: u64,
}

impl Default for KbConfig {
    fn default() -> Self {
        Self {
            name: "default".into(),
            max_file_size: 50_000_000,
            fetch_timeout: Duration::from_secs(20),
            max_fetch_size: 10_000_000,
        }
    }
}

/// OpenTelemetry export of every pipeline as a trace (OTLP/HTTP protobuf).
/// The `OTEL_EXPORTER_OTLP_*` variables and `OTEL_SDK_DISABLED` are read by
/// `crate::telemetry`, over these values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// `false` turns export off even when an endpoint is set.
    pub enabled: bool,
    /// The OTLP/HTTP traces URL, used as given (e.g.
    /// `http://127.0.0.1:6006/v1/traces`); "" means no export unless an
    /// `OTEL_EXPORTER_OTLP_*ENDPOINT` variable names one.
    pub endpoint: String,
    /// Put queries, prompts and answers on the spans.
    pub capture_content: bool,
    /// Finished spans waiting to be sent; past it, spans are dropped (and
    /// counted).
    pub queue_size: usize,
    /// The deadline of one export request.
    #[serde(with = "duration_text")]
    pub export_timeout: Duration,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            endpoint: String::new(),
            capture_content: false,
            queue_size: 2048,
            export_timeout: Duration::from_secs(10),
        }
    }
}

/// The terminal UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    /// Mouse capture: wheel scrolling and click-to-focus (off: the
    /// terminal's own selection works).
    pub mouse: bool,
    /// Borders and glyphs in ASCII only.
    pub ascii: bool,
    /// The largest message the input sends, in bytes; a longer one is
    /// refused with a notice and stays in the input.
    #[serde(with = "size_text")]
    pub max_input: u64,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            mouse: false,
            ascii: false,
            max_input: 100_000,
        }
    }
}

/// The limits that `[llm]`, `[embeddings]` and `[retriever]` share: retries,
/// the circuit breaker, concurrency and rate. In the file they are keys of
/// the section itself. serde's `flatten` cannot read them so (it loses
/// `deny_unknown_fields` and the values' locations), so the sections skip
/// this field when deserializing and the parser reads these keys apart, over
/// the section's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LimitsConfig {
    /// Retries after a transient failure.
    pub retries: u32,
    /// Consecutive failures that open the circuit breaker.
    pub breaker_failures: u32,
    /// Seconds the breaker stays open before one probe is let through.
    pub breaker_open_secs: u64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Requests per minute; 0 means no limit.
    pub rate_per_minute: u32,
    /// What happens to a call still running at its deadline: `observe`
    /// keeps it running, detached, to record when it answers; `abort`
    /// stops it.
    pub late_policy: LatePolicy,
    /// Seconds an observed call may run past its deadline.
    pub late_grace_secs: u64,
    /// Calls observed at once; past it, a late call is aborted.
    pub late_observe_max: u32,
}

impl LimitsConfig {
    /// The keys, as the file spells them, in the order the file lists them.
    pub const KEYS: &'static [&'static str] = &[
        "retries",
        "breaker_failures",
        "breaker_open_secs",
        "concurrency",
        "rate_per_minute",
        "late_policy",
        "late_grace_secs",
        "late_observe_max",
    ];

    /// The defaults every section shares, with `concurrency` requests in
    /// flight (the one default that differs between sections).
    pub const fn with_concurrency(concurrency: usize) -> Self {
        Self {
            retries: 2,
            breaker_failures: 5,
            breaker_open_secs: 60,
            concurrency,
            rate_per_minute: 0,
            late_policy: LatePolicy::Abort,
            late_grace_secs: 30,
            late_observe_max: 8,
        }
    }

    /// The same, observing late calls (retrieval and embeddings, which cost
    /// no tokens).
    pub const fn observing(self) -> Self {
        Self {
            late_policy: LatePolicy::Observe,
            ..self
        }
    }

    /// The engine's policy for the backend of the section.
    pub fn policy(&self) -> BackendPolicy {
        BackendPolicy {
            concurrency: self.concurrency,
            rate_per_minute: (self.rate_per_minute > 0).then_some(self.rate_per_minute),
            retry: RetryPolicy {
                max_retries: self.retries,
                ..RetryPolicy::default()
            },
            breaker_failures: self.breaker_failures,
            breaker_open: Duration::from_secs(self.breaker_open_secs),
            late_policy: self.late_policy,
            late_grace: Duration::from_secs(self.late_grace_secs),
            late_observe_max: self.late_observe_max,
        }
    }
}

/// A section of the file, with its keys as the file spells them.
#[derive(Debug)]
pub(super) struct Section {
    pub(super) name: &'static str,
    /// The section's own keys, in the file's order.
    pub(super) keys: &'static [&'static str],
    /// Whether the section also has the [`LimitsConfig::KEYS`].
    pub(super) limits: bool,
}

impl Section {
    /// Every key of the section: its own, then the limits'.
    pub(super) fn all_keys(&self) -> Vec<&'static str> {
        let limits = if self.limits { LimitsConfig::KEYS } else { &[] };
        self.keys.iter().chain(limits).copied().collect()
    }
}

/// The sections, in the file's order. A test keeps these in step with the
/// structs and the shipped default.
pub(super) const SECTIONS: &[Section] = &[
    Section {
        name: "llm",
        keys: &[
            "provider",
            "base_url",
            "model",
            "api_key_env",
            "temperature",
            "max_tokens",
            "first_token_timeout",
            "idle_timeout",
        ],
        limits: true,
    },
    Section {
        name: "embeddings",
        keys: &[
            "provider",
            "base_url",
            "model",
            "api_key_env",
            "batch_size",
            "timeout",
        ],
        limits: true,
    },
    Section {
        name: "retriever",
        keys: &[
            "provider",
            "url",
            "top_k",
            "timeout",
            "source_meta_key",
            "extra",
        ],
        limits: true,
    },
    Section {
        name: "prompts",
        keys: &["chat", "scenario"],
        limits: false,
    },
    Section {
        name: "kb",
        keys: &["name", "max_file_size", "fetch_timeout", "max_fetch_size"],
        limits: false,
    },
    Section {
        name: "telemetry",
        keys: &[
            "enabled",
            "endpoint",
            "capture_content",
            "queue_size",
            "export_timeout",
        ],
        limits: false,
    },
    Section {
        name: "ui",
        keys: &["mouse", "ascii", "max_input"],
        limits: false,
    },
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
}

impl RetrieverConfig {
    /// The backend name: "local" or "hayhooks".
    pub fn name(&self) -> &'static str {
        self.provider.as_str()
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

impl Config {
    pub fn backend_names(&self) -> BackendNames {
        BackendNames {
            llm: self.llm.name(),
            retriever: self.retriever.name(),
            embeddings: self.embeddings.name(),
        }
    }

    /// The engine settings: backend names, deadlines, `top_k`, and a policy
    /// per backend name.
    pub fn engine_config(&self) -> EngineConfig {
        let mut policies = BTreeMap::new();
        policies.insert(self.llm.name().to_string(), self.llm.limits.policy());
        policies.insert(
            self.retriever.name().to_string(),
            self.retriever.limits.policy(),
        );
        if let Some(name) = self.embeddings.name() {
            policies.insert(name.to_string(), self.embeddings.limits.policy());
        }
        EngineConfig {
            retriever: self.retriever.name().to_string(),
            generator: self.llm.name().to_string(),
            retrieval_timeout: self.retriever.timeout,
            first_token_timeout: self.llm.first_token_timeout,
            idle_timeout: self.llm.idle_timeout,
            top_k: self.retriever.top_k,
            retrieval_policy: self.retriever.limits.policy(),
            chat_policy: self.llm.limits.policy(),
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
}

pub(super) fn or_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("`{s}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
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

// ----- sizes -----------------------------------------------------------------

/// Sizes are written as "50MB", "512KB", "1.5GB" or "64KiB", or as a whole
/// number of bytes.
mod size_text {
    use std::fmt;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_size(*bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        d.deserialize_any(SizeVisitor)
    }

    struct SizeVisitor;

    impl Visitor<'_> for SizeVisitor {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(
                "a size such as \"50MB\", \"512KB\" or \"1.5GB\", or a whole number of bytes",
            )
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            super::parse_size(v).map_err(E::custom)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            // Only a negative number fails here; parse_size refuses it in
            // the same words as a string.
            u64::try_from(v).or_else(|_| super::parse_size(&v.to_string()).map_err(E::custom))
        }
    }
}

/// The units a size may have, case aside: decimal (KB = 1000 bytes) and
/// binary (KiB = 1024 bytes).
const SIZE_UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
];

/// "50MB" -> 50_000_000: a number (a fraction is allowed) and an optional
/// unit of [`SIZE_UNITS`]; no unit means bytes. A fraction of a byte is
/// dropped ("0.5KiB" is 512, "1.5B" is 1).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let not_a_size =
        || format!("`{text}` is not a size; try 50MB, 512KB, 1.5GB or a number of bytes");
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let scale = if unit.is_empty() {
        1
    } else {
        SIZE_UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(not_a_size)?
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(not_a_size());
    }
    // Exact decimal arithmetic: whole.fraction * scale, in u128.
    let digits = |s: &str| -> Result<u128, String> {
        if s.is_empty() {
            Ok(0)
        } else {
            s.parse::<u128>().map_err(|_| not_a_size())
        }
    };
    let too_large = || format!("`{text}` is too large");
    let ten_pow = u32::try_from(fraction.len())
        .ok()
        .and_then(|n| 10u128.checked_pow(n))
        .ok_or_else(not_a_size)?;
    let scale = u128::from(scale);
    let (whole, fraction) = (digits(whole)?, digits(fraction)?);
    let bytes = whole
        .checked_mul(scale)
        .zip(fraction.checked_mul(scale))
        .and_then(|(whole, fraction)| whole.checked_add(fraction / ten_pow))
        .ok_or_else(too_large)?;
    u64::try_from(bytes).map_err(|_| too_large())
}

/// "50MB", "64KiB", "1234B": how a size is written back.
fn format_size(bytes: u64) -> String {
    SIZE_UNITS
        .iter()
        .filter(|(_, scale)| *scale > 1 && bytes > 0 && bytes.is_multiple_of(*scale))
        .max_by_key(|(_, scale)| *scale)
        .map_or_else(
            || format!("{bytes}B"),
            |(unit, scale)| {
                let unit = unit.to_ascii_uppercase().replace('I', "i");
                format!("{}{unit}", bytes / scale)
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEFAULT_TOML, parse};

    #[test]
    fn known_keys_match_the_structs_and_the_asset() {
        let serialized = toml::Value::try_from(Config::default()).unwrap();
        let asset: toml::Table = toml::from_str(DEFAULT_TOML).unwrap();
        let table = serialized.as_table().unwrap();
        assert_eq!(table.len(), SECTIONS.len());
        for section in SECTIONS {
            let mut want = section.all_keys();
            want.sort_unstable();
            let section = section.name;
            for source in [table, &asset] {
                let mut got: Vec<&str> = source[section]
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
        let order: Vec<usize> = SECTIONS
            .iter()
            .map(|s| DEFAULT_TOML.find(&format!("\n[{}]\n", s.name)).unwrap())
            .collect();
        assert!(order.is_sorted());
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
    fn sizes_take_decimal_and_binary_units() {
        for (text, bytes) in [
            ("50MB", 50_000_000),
            ("512KB", 512_000),
            ("1.5GB", 1_500_000_000),
            ("1234", 1234),
            ("0", 0),
            ("7B", 7),
            (" 10 mb ", 10_000_000),
            ("64KiB", 65_536),
            ("1.5MiB", 1_572_864),
            ("2gib", 2_147_483_648),
            (".5KB", 500),
            ("5.", 5),
            ("0.3KiB", 307),
            ("1.5B", 1),
            ("18446744073709551615", u64::MAX),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn bad_sizes_say_why() {
        for text in [
            "", "MB", ".", "-1MB", "50 megs", "1.2.3MB", "1e6", "5 M B", "0x10", "½MB",
        ] {
            let e = parse_size(text).unwrap_err();
            assert!(e.contains("is not a size"), "{text}: {e}");
        }
        for text in ["18446744073709551616", "99999999999GB", "20000000000GiB"] {
            let e = parse_size(text).unwrap_err();
            assert!(e.contains("too large"), "{text}: {e}");
        }
    }

    #[test]
    fn sizes_are_written_back_in_the_largest_whole_unit() {
        for (bytes, text) in [
            (50_000_000, "50MB"),
            (10_000_000, "10MB"),
            (1_500_000_000, "1500MB"),
            (65_536, "64KiB"),
            (1 << 30, "1GiB"),
            (1_024_000_000, "1024MB"),
            (1234, "1234B"),
            (0, "0B"),
        ] {
            assert_eq!(format_size(bytes), text);
            assert_eq!(parse_size(text), Ok(bytes), "{text} parses back");
        }
    }

    #[test]
    fn the_kb_section_takes_sizes_durations_and_a_name() {
        let c = parse(
            "[kb]\nname = \"campaign-2.v1_x\"\nmax_file_size = \"1.5GB\"\nfetch_timeout = \"1.5s\"\nmax_fetch_size = 1048576\n",
        )
        .unwrap();
        assert_eq!(
            c.kb,
            KbConfig {
                name: "campaign-2.v1_x".into(),
                max_file_size: 1_500_000_000,
                fetch_timeout: Duration::from_millis(1500),
                max_fetch_size: 1 << 20,
            }
        );
        assert_eq!(parse("[kb]\n").unwrap().kb, KbConfig::default());
        assert_eq!(KbConfig::default().max_file_size, 50_000_000);
        assert_eq!(KbConfig::default().max_fetch_size, 10_000_000);
        assert_eq!(KbConfig::default().fetch_timeout, Duration::from_secs(20));
    }
}
