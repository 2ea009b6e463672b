//! The checks that types alone cannot make: a provider without its model,
//! malformed URLs and environment variable names, values out of range.
//!
//! Invariants: every problem names its section and key (so the parser can
//! point at the key's line); no message repeats a value that might be a
//! secret (a URL with credentials, a key written where its variable's name
//! belongs).

use std::fmt;

use super::ConfigError;
use super::schema::{Config, EmbeddingsProvider, LimitsConfig, LlmProvider, RetrieverProvider};

/// A semantic problem: which key, and what is wrong with it.
#[derive(Debug, Clone)]
pub(super) struct Problem {
    pub(super) section: &'static str,
    pub(super) key: &'static str,
    pub(super) message: String,
}

impl Config {
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

    pub(super) fn problems(&self) -> Vec<Problem> {
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
        for (key, message) in llm.limits.problems() {
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
        for (key, message) in emb.limits.problems() {
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
        for (key, message) in ret.limits.problems() {
            add("retriever", key, message);
        }

        let kb = &self.kb;
        if let Err(e) = validate_kb_name(&kb.name) {
            add("kb", "name", e);
        }
        for (key, bytes) in [
            ("max_file_size", kb.max_file_size),
            ("max_fetch_size", kb.max_fetch_size),
        ] {
            if bytes == 0 {
                add("kb", key, "must be more than 0 bytes".into());
            }
        }
        if kb.fetch_timeout.is_zero() {
            add("kb", "fetch_timeout", "must be more than 0".into());
        }

        if self.ui.max_input == 0 {
            add("ui", "max_input", "must be more than 0 bytes".into());
        }

        let tel = &self.telemetry;
        if let Err(e) = check_url(&tel.endpoint) {
            add("telemetry", "endpoint", e);
        }
        if !(1..=1_000_000).contains(&tel.queue_size) {
            add(
                "telemetry",
                "queue_size",
                format!("{} is out of range; use 1 to 1000000", tel.queue_size),
            );
        }
        if tel.export_timeout.is_zero() {
            add("telemetry", "export_timeout", "must be more than 0".into());
        }
        out
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

impl LimitsConfig {
    /// What is wrong with the limits, as (key, message).
    fn problems(&self) -> Vec<(&'static str, String)> {
        let LimitsConfig {
            retries,
            breaker_failures,
            breaker_open_secs,
            concurrency,
            rate_per_minute: _,
            late_policy: _,
            late_grace_secs,
            late_observe_max,
        } = *self;
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
        if !(1..=3_600).contains(&late_grace_secs) {
            out.push((
                "late_grace_secs",
                format!("{late_grace_secs} is out of range; use 1 to 3600"),
            ));
        }
        if late_observe_max > 1_000 {
            out.push((
                "late_observe_max",
                format!("{late_observe_max} is too many; use 0 to 1000"),
            ));
        }
        out
    }
}

/// Whether `name` may name a knowledge base: 1 to 64 ASCII letters, digits,
/// `_`, `-` or `.`, not starting with `.` and without `..` (a name becomes a
/// directory name, so it must never climb out of its parent or hide). The
/// error says what is wrong; it shows the offending character, never the
/// whole name.
pub fn validate_kb_name(name: &str) -> Result<(), String> {
    const RULE: &str = "use 1 to 64 letters, digits, `_`, `-` or `.`";
    if name.is_empty() {
        return Err(format!("is empty; {RULE}"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!("{c:?} is not allowed; {RULE}"));
    }
    if name.len() > 64 {
        return Err(format!("is {} characters long; {RULE}", name.len()));
    }
    if name.starts_with('.') {
        return Err("must not start with `.`".into());
    }
    if name.contains("..") {
        return Err("must not contain `..`".into());
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{diags, parse};

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
    fn kb_names_are_checked_and_the_reason_given() {
        for good in ["default", "a", "campaign-2.v1_x", "A.b", &"x".repeat(64)] {
            assert_eq!(validate_kb_name(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("", "is empty"),
            ("../etc", "'/' is not allowed"),
            ("my kb", "' ' is not allowed"),
            ("caf\u{e9}", "'\u{e9}' is not allowed"),
            ("a\nb", "'\\n' is not allowed"),
            (&"x".repeat(65), "is 65 characters long"),
            (".hidden", "must not start with `.`"),
            ("..", "must not start with `.`"),
            ("a..b", "must not contain `..`"),
        ] {
            let e = validate_kb_name(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn kb_problems_point_at_their_key() {
        let d = diags("[kb]\nname = \"../x\"\nmax_file_size = 0\nmax_fetch_size = \"0MB\"\n");
        let at: Vec<(usize, &str)> = d.iter().map(|d| (d.line, d.message.as_str())).collect();
        assert_eq!(
            at,
            [
                (
                    2,
                    "[kb] name: '/' is not allowed; use 1 to 64 letters, digits, `_`, `-` or `.`"
                ),
                (3, "[kb] max_file_size: must be more than 0 bytes"),
                (4, "[kb] max_fetch_size: must be more than 0 bytes"),
            ]
        );
    }
}
