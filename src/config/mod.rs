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
//!
//! Layout: `schema` has the sections as serde structs and enums, their
//! defaults and what the crate reads from them; `parse` turns a text into a
//! `Config` with located diagnostics; `validate` checks what types alone
//! cannot; `overrides` applies `LOREWEAVE_*` variables and flags; `load`
//! finds, reads and writes the file. This file holds the error types and
//! re-exports the public API, so callers only ever name `crate::config::X`.

mod load;
mod overrides;
mod parse;
mod schema;
mod validate;

use std::fmt;
use std::path::PathBuf;

pub use load::{DEFAULT_TOML, FILE_NAME, default_path, init, load, resolve_path};
pub use overrides::Overrides;
pub(crate) use parse::closest;
pub use parse::{check_report, parse};
/// Sizes such as `1MiB` (also used by `--max-stdin`).
pub use schema::parse_size;
pub use schema::{
    BackendNames, Config, EmbeddingsConfig, EmbeddingsProvider, KbConfig, LimitsConfig, LlmConfig,
    LlmProvider, PromptsConfig, RetrieverConfig, RetrieverProvider, TelemetryConfig, UiConfig,
};
pub use validate::validate_kb_name;

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

/// The diagnostics of a text that must not parse (a test helper shared by
/// the submodules' tests).
#[cfg(test)]
fn diags(text: &str) -> Vec<Diagnostic> {
    match parse(text) {
        Err(ConfigError::Parse(d)) => d,
        other => panic!("expected diagnostics, got {other:?}"),
    }
}
