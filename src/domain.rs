//! Plain data shared by the engine, the backends and the views: what a
//! retrieved passage is, what a generation task asks for, and how a backend
//! reports an error. This module imports nothing else from the crate, so both
//! sides of the engine/backends boundary can depend on it without depending
//! on each other.

use std::fmt;
use std::time::Duration;

/// One retrieved chunk of a knowledge-base document.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Passage {
    /// Stable id of the chunk (`<source>#<n>`).
    pub id: String,
    /// Title of the document the chunk comes from (its `# ` heading).
    pub title: String,
    /// Where the document comes from (file name, URL, ...): what a citation shows.
    pub source: String,
    /// The document's kind from its front matter (`place`, `npc`, ...), if any.
    pub kind: Option<String>,
    /// The `##` heading the chunk sits under, if any.
    pub heading: Option<String>,
    /// The chunk's text (markdown, untrusted).
    pub text: String,
    /// Relevance score from the retriever (higher is better).
    pub score: f32,
    /// Named entities the retriever recognised in the chunk, with their kind.
    #[serde(default)]
    pub entities: Vec<Entity>,
    /// Where in its source the chunk sits (heading trail, line range), when known.
    #[serde(default, skip_serializing_if = "Location::is_unknown")]
    pub location: Location,
}

/// Where a passage sits inside its source document.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Location {
    /// Enclosing headings, outermost first (the document title excluded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trail: Vec<String>,
    /// 1-based inclusive line range in the source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<(usize, usize)>,
}

impl Location {
    pub fn is_unknown(&self) -> bool {
        self.trail.is_empty() && self.lines.is_none()
    }
}

impl fmt::Display for Location {
    /// `History › The Founding · lines 12-18`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.trail.join(" › "))?;
        if let Some((start, end)) = self.lines {
            if !self.trail.is_empty() {
                f.write_str(" · ")?;
            }
            if start == end {
                write!(f, "line {start}")?;
            } else {
                write!(f, "lines {start}-{end}")?;
            }
        }
        Ok(())
    }
}

/// A retrieval query as the engine sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrieveQuery {
    pub query: String,
    pub top_k: usize,
    /// The query's embedding, when an embeddings backend is configured and
    /// answered in time: the retriever may rank by meaning as well as words.
    pub vector: Option<Vec<f32>>,
}

/// A proper name found in the lore, with the kind of thing it names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Entity {
    pub name: String,
    pub kind: String,
}

/// What a generator is asked to produce.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskMode {
    /// Answer `question` in a conversation whose earlier turns are `history`.
    Chat {
        question: String,
        history: Vec<ChatTurn>,
    },
    /// Write a scenario about `prompt`, deterministically for `seed`.
    Scenario { prompt: String, seed: u64 },
}

/// One earlier exchange in a conversation, as context for the next answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatTurn {
    pub role: Role,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// A generation request: the mode plus the passages retrieved for it, in
/// citation order (`passages[0]` is cited as `[1]`).
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationTask {
    pub mode: TaskMode,
    pub passages: Vec<Passage>,
    /// Why there is no lore, when retrieval failed, timed out or was skipped.
    pub no_lore_reason: Option<String>,
}

/// How the engine's retry policy should treat an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Connect errors, timeouts, 5xx, 408, 429: worth another attempt.
    Transient,
    /// Everything else: retrying cannot help.
    Permanent,
}

/// An error reported by a backend. The message is untrusted (it may quote a
/// server's body) and is sanitised before display.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackendError {
    pub class: ErrorClass,
    pub message: String,
    /// A server's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

impl BackendError {
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Transient,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Permanent,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BackendError {}

/// FNV-1a, 64 bit: a stable hash for deriving seeds from prompts. Stable
/// across Rust versions and platforms, unlike `DefaultHasher`.
pub fn stable_hash(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The seed a prompt gets when the user gives none: the same prompt gives the
/// same scenario in the TUI and headless.
pub fn seed_for_prompt(prompt: &str) -> u64 {
    let normalised = prompt
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    stable_hash(&normalised)
}

/// Fault injection on a backend, for watching timeouts, retries, breakers
/// and late drops happen on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChaosMode {
    /// Every call waits this long before it starts.
    Latency(Duration),
    /// This share of calls (0-100) fails at once with a transient error.
    Fail { percent: u8 },
    /// Calls never answer.
    Hang,
}

impl fmt::Display for ChaosMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChaosMode::Latency(d) if d.as_millis() % 1000 == 0 => {
                write!(f, "latency {}s", d.as_secs())
            }
            ChaosMode::Latency(d) => write!(f, "latency {}ms", d.as_millis()),
            ChaosMode::Fail { percent } => write!(f, "fail {percent}%"),
            ChaosMode::Hang => f.write_str("hang"),
        }
    }
}

/// `10s`, `1.5s`, `200ms`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; try 10s, 1.5s or 200ms"))?;
    if !value.is_finite() || value <= 0.0 || value * scale > 86_400.0 {
        return Err(format!(
            "`{text}` is out of range (more than 0, at most a day)"
        ));
    }
    Ok(Duration::from_secs_f64(value * scale))
}
