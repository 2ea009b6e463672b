//! Parsing a configuration text into a [`Config`], with diagnostics a person
//! can act on: syntax errors, unknown sections and keys (with "did you
//! mean"), wrong types (every wrong value of a section, not only the first)
//! and the semantic problems that validation finds, each located at its
//! line and column.
//!
//! The limit keys that `[llm]`, `[embeddings]` and `[retriever]` share are
//! split off each section's table and read into its `LimitsConfig` apart
//! (`with_limits`), so that both parts keep `deny_unknown_fields` and every
//! value's location, which `#[serde(flatten)]` would lose.
//!
//! Invariants: the diagnostics come sorted by position; a key whose value
//! was refused (or a misspelt key's intended name) is not judged again by
//! the semantic checks; a string given where a number was expected is never
//! repeated (it might be a secret put in the wrong place).

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, Visitor};
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::schema::{
    Config, EmbeddingsConfig, KbConfig, KeysConfig, LimitsConfig, LlmConfig, PromptsConfig,
    RetrieverConfig, SECTIONS, TelemetryConfig, UiConfig, apply_remap,
};
use super::{ConfigError, Diagnostic};

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

/// "[a], [b] and [c]".
fn section_list(names: &[&str]) -> String {
    let names: Vec<String> = names.iter().map(|n| format!("[{n}]")).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.concat(),
    }
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

/// The known name closest to a mistyped `name` (by edit distance, within
/// a third of the known name's length, at least 2), for "did you mean".
pub(crate) fn closest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (edit_distance(k, name), k))
        .filter(|(d, k)| *d <= 2.max(k.chars().count() / 3))
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance, for "did you mean" suggestions.
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

/// Reads one section's `table` (its unknown keys already removed) into
/// `config`; serde stops at the first wrong value.
fn deserialize_section(
    config: &mut Config,
    section: &str,
    table: &DeTable<'_>,
    span: &Range<usize>,
) -> Result<(), toml::de::Error> {
    match section {
        "llm" => config.llm = with_limits(table, span, |s: &mut LlmConfig| &mut s.limits)?,
        "embeddings" => {
            config.embeddings = with_limits(table, span, |s: &mut EmbeddingsConfig| &mut s.limits)?;
        }
        "retriever" => {
            config.retriever = with_limits(table, span, |s: &mut RetrieverConfig| &mut s.limits)?;
        }
        "prompts" => config.prompts = PromptsConfig::deserialize(part(table, span, |_| true))?,
        "telemetry" => {
            config.telemetry = TelemetryConfig::deserialize(part(table, span, |_| true))?;
        }
        "ui" => config.ui = UiConfig::deserialize(part(table, span, |_| true))?,
        _ => config.kb = KbConfig::deserialize(part(table, span, |_| true))?,
    }
    Ok(())
}

/// A section that embeds [`LimitsConfig`]: its own keys are read by its
/// derived `Deserialize` (which skips `limits`, so they keep the section's
/// defaults), then the limit keys over those defaults. Both parts keep
/// `deny_unknown_fields` and the values' spans, which `#[serde(flatten)]`
/// would lose.
fn with_limits<T: DeserializeOwned>(
    table: &DeTable<'_>,
    span: &Range<usize>,
    limits: impl Fn(&mut T) -> &mut LimitsConfig,
) -> Result<T, toml::de::Error> {
    let is_limit = |key: &str| LimitsConfig::KEYS.contains(&key);
    let mut section = T::deserialize(part(table, span, |k| !is_limit(k)))?;
    let slot = limits(&mut section);
    *slot = LimitsOver(*slot).deserialize(part(table, span, is_limit))?;
    Ok(section)
}

/// The keys of `table` that `keep` keeps, as a table spanning `span`.
fn part<'i>(
    table: &DeTable<'i>,
    span: &Range<usize>,
    keep: impl Fn(&str) -> bool,
) -> ValueDeserializer<'i> {
    let part: DeTable<'i> = table
        .iter()
        .filter(|(k, _)| keep(k.get_ref()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    ValueDeserializer::from(toml::Spanned::new(span.clone(), DeValue::Table(part)))
}

/// Reads limit keys over `.0`: a key that is absent keeps its value there
/// (the section's default), an unknown key is refused as with
/// `deny_unknown_fields`. Each value is read as a derived `Deserialize`
/// would read it, so type errors say the same.
struct LimitsOver(LimitsConfig);

impl<'de> DeserializeSeed<'de> for LimitsOver {
    type Value = LimitsConfig;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<LimitsConfig, D::Error> {
        d.deserialize_struct("LimitsConfig", LimitsConfig::KEYS, self)
    }
}

impl<'de> Visitor<'de> for LimitsOver {
    type Value = LimitsConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table of limits")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LimitsConfig, A::Error> {
        let mut limits = self.0;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "retries" => limits.retries = map.next_value()?,
                "breaker_failures" => limits.breaker_failures = map.next_value()?,
                "breaker_open_secs" => limits.breaker_open_secs = map.next_value()?,
                "concurrency" => limits.concurrency = map.next_value()?,
                "rate_per_minute" => limits.rate_per_minute = map.next_value()?,
                "late_policy" => limits.late_policy = map.next_value()?,
                "late_grace_secs" => limits.late_grace_secs = map.next_value()?,
                "late_observe_max" => limits.late_observe_max = map.next_value()?,
                other => return Err(de::Error::unknown_field(other, LimitsConfig::KEYS)),
            }
        }
        Ok(limits)
    }
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
    let mut section_names: Vec<&str> = SECTIONS.iter().map(|s| s.name).collect();
    section_names.push("keys");

    for (key, value) in root.into_inner() {
        let name = key.get_ref().as_ref();
        if name == "keys" {
            let DeValue::Table(table) = value.into_inner() else {
                diagnostics.push(diagnostic(
                    text,
                    key.span().start,
                    "`keys` must be a section ([keys]), not a single value".into(),
                ));
                continue;
            };
            let (keys, found) = read_keys(text, &table, key.span().start);
            config.keys = keys;
            diagnostics.extend(found);
            continue;
        }
        let Some(section) = SECTIONS.iter().find(|s| s.name == name) else {
            let hint = match suggestion(name, &section_names) {
                Some(s) => format!("did you mean [{s}]?"),
                None => format!("sections are {}", section_list(&section_names)),
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
        let (section, fields) = (section.name, section.all_keys());
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
                if let Some(meant) = suggestion(k_name, &fields) {
                    refused.push((section, meant));
                }
                diagnostics.push(diagnostic(
                    text,
                    k.span().start,
                    unknown_key_message(section, k_name, &fields),
                ));
            }
        }
        for k in &unknown {
            table.remove(k.as_str());
        }

        // serde stops at the first wrong value; drop it and go on, so every
        // wrong value in the section is reported at once.
        for _ in 0..=fields.len() {
            let Err(e) = deserialize_section(&mut config, section, &table, &span) else {
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

/// Reads `[keys]`: `action = KEYS` remaps an action wherever it works,
/// `context.action = KEYS` (or `[keys.context]`) in one context; KEYS is a
/// key or a list of keys. Unknown contexts, actions and keys are reported
/// at their line, then every key the remaps bind twice where contexts meet,
/// at the line of the remap that did it.
fn read_keys(text: &str, table: &DeTable<'_>, header: usize) -> (KeysConfig, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let mut keys = KeysConfig::default();
    let mut map = crate::keymap::Keymap::default();
    // (entry name, where it is written, the keys it gave)
    let mut applied: Vec<(String, usize, Vec<crate::keymap::Key>)> = Vec::new();
    let mut entries: Vec<(String, usize, &toml::Spanned<DeValue<'_>>)> = Vec::new();
    for (k, v) in table.iter() {
        let name = k.get_ref().to_string();
        match v.get_ref() {
            DeValue::Table(inner) => {
                for (k2, v2) in inner.iter() {
                    entries.push((format!("{name}.{}", k2.get_ref()), k2.span().start, v2));
                }
            }
            _ => entries.push((name, k.span().start, v)),
        }
    }
    for (name, at, value) in entries {
        let given: Vec<String> = match value.get_ref() {
            DeValue::String(s) => vec![s.to_string()],
            DeValue::Array(items) => {
                let strings: Vec<String> = items
                    .iter()
                    .filter_map(|i| i.get_ref().as_str().map(str::to_string))
                    .collect();
                if strings.len() != items.len() {
                    diagnostics.push(diagnostic(
                        text,
                        value.span().start,
                        format!("[keys] {name}: every key must be a string, e.g. [\"Up\", \"k\"]"),
                    ));
                    continue;
                }
                strings
            }
            _ => {
                diagnostics.push(diagnostic(
                    text,
                    value.span().start,
                    format!("[keys] {name}: give a key or a list of keys, e.g. \"Ctrl-Q\" or [\"Up\", \"k\"]"),
                ));
                continue;
            }
        };
        match apply_remap(&mut map, &name, &given) {
            Ok(()) => {
                let parsed = given.iter().filter_map(|g| g.parse().ok()).collect();
                applied.push((name.clone(), at, parsed));
                keys.0.insert(name, given);
            }
            Err(e) => diagnostics.push(diagnostic(text, at, format!("[keys] {name}: {e}"))),
        }
    }
    for conflict in map.conflicts() {
        // The last remap that gave this key to one of the two actions.
        let culprit = applied.iter().rev().find(|(name, _, given)| {
            let action = name.rsplit('.').next().unwrap_or(name);
            [conflict.first.1, conflict.second.1]
                .iter()
                .any(|a| a.id() == action)
                && given.iter().any(|k| k.overlaps(conflict.key))
        });
        // Where they meet, when that is not already named.
        let place = if conflict.context == conflict.first.0 && conflict.context == conflict.second.0
        {
            String::new()
        } else {
            format!(" (in {})", conflict.context.id())
        };
        let (at, message) = match culprit {
            Some((name, at, _)) => (*at, format!("[keys] {name}: {conflict}{place}")),
            None => (header, format!("[keys]: {conflict}{place}")),
        };
        if !diagnostics
            .iter()
            .any(|d: &Diagnostic| d.message == message)
        {
            diagnostics.push(diagnostic(text, at, message));
        }
    }
    (keys, diagnostics)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{DEFAULT_TOML, diags};

    #[test]
    fn default_asset_parses_to_the_defaults() {
        assert_eq!(parse(DEFAULT_TOML).unwrap(), Config::default());
        assert_eq!(parse("").unwrap(), Config::default());
        Config::default().validate().unwrap();
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
    fn limits_are_read_over_each_sections_defaults() {
        let c = parse("[embeddings]\nretries = 0\n[retriever]\nrate_per_minute = 60\n").unwrap();
        assert_eq!(
            c.embeddings.limits,
            LimitsConfig {
                retries: 0,
                ..LimitsConfig::with_concurrency(4).observing()
            }
        );
        assert_eq!(
            c.retriever.limits,
            LimitsConfig {
                rate_per_minute: 60,
                ..LimitsConfig::with_concurrency(8).observing()
            }
        );
        assert_eq!(c.llm.limits, LimitsConfig::with_concurrency(2));
        assert_eq!(c, {
            let mut want = Config::default();
            want.embeddings.limits.retries = 0;
            want.retriever.limits.rate_per_minute = 60;
            want
        });
    }

    #[test]
    fn a_config_written_back_parses_to_itself() {
        let mut c = Config::default();
        c.llm.provider = crate::config::LlmProvider::Ollama;
        c.llm.model = "m".into();
        c.llm.first_token_timeout = Duration::from_millis(1500);
        for (i, limits) in [
            &mut c.llm.limits,
            &mut c.embeddings.limits,
            &mut c.retriever.limits,
        ]
        .into_iter()
        .enumerate()
        {
            let i = i as u32;
            *limits = LimitsConfig {
                retries: 3 + i,
                breaker_failures: 7 + i,
                breaker_open_secs: 90 + u64::from(i),
                concurrency: 11 + i as usize,
                rate_per_minute: 13 + i,
                late_policy: if i == 1 {
                    crate::engine::limits::LatePolicy::Abort
                } else {
                    crate::engine::limits::LatePolicy::Observe
                },
                late_grace_secs: 17 + u64::from(i),
                late_observe_max: 19 + i,
            };
        }
        let text = toml::to_string(&c).unwrap();
        assert!(text.contains("breaker_open_secs = 91"), "{text}");
        assert_eq!(parse(&text).unwrap(), c);
    }

    #[test]
    fn limits_refuse_an_unknown_key_like_deny_unknown_fields() {
        let table: toml::Table = toml::from_str("retries = 1\nretires = 2\n").unwrap();
        let e = LimitsOver(LimitsConfig::with_concurrency(1))
            .deserialize(toml::Value::Table(table))
            .unwrap_err();
        assert!(e.to_string().contains("unknown field `retires`"), "{e}");
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
