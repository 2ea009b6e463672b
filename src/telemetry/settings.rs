//! Whether and where to export: `[telemetry]` with the standard OpenTelemetry
//! variables over it.
//!
//! - `OTEL_SDK_DISABLED=true` or `[telemetry] enabled = false`: off.
//! - `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: the traces URL, used as given.
//! - else `OTEL_EXPORTER_OTLP_ENDPOINT`: a base, to which `/v1/traces` is
//!   appended.
//! - else `[telemetry] endpoint` (used as given); none of them: off.
//! - `OTEL_EXPORTER_OTLP_HEADERS` (then `OTEL_EXPORTER_OTLP_TRACES_HEADERS`,
//!   which wins key by key): `key=value,key2=value2`, values percent-decoded.
//!
//! Invariants: header values (authorization tokens) never appear in a
//! message or in `Debug`; an endpoint with credentials in it is refused
//! without repeating it.

use std::fmt;
use std::time::Duration;

use crate::config::TelemetryConfig;

/// Spans sent in one request at most.
pub const MAX_BATCH: usize = 512;
/// A partial batch waits at most this long.
pub const BATCH_INTERVAL: Duration = Duration::from_secs(1);

/// What the exporter needs, resolved.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// The OTLP/HTTP traces URL.
    pub endpoint: String,
    /// Extra request headers (e.g. `authorization`); values are secret.
    pub headers: Vec<(String, String)>,
    pub capture_content: bool,
    pub queue_size: usize,
    pub export_timeout: Duration,
    pub max_batch: usize,
    pub batch_interval: Duration,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Settings")
            .field("endpoint", &self.endpoint)
            .field("headers", &header_names)
            .field("capture_content", &self.capture_content)
            .field("queue_size", &self.queue_size)
            .field("export_timeout", &self.export_timeout)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Settings for `endpoint` with the defaults of `[telemetry]` (tests,
    /// callers that build an exporter by hand).
    pub fn for_endpoint(endpoint: impl Into<String>) -> Self {
        let defaults = TelemetryConfig::default();
        Self {
            endpoint: endpoint.into(),
            headers: Vec::new(),
            capture_content: defaults.capture_content,
            queue_size: defaults.queue_size,
            export_timeout: defaults.export_timeout,
            max_batch: MAX_BATCH,
            batch_interval: BATCH_INTERVAL,
        }
    }
}

/// A variable that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("{var}: {why}")]
    BadEndpoint { var: &'static str, why: String },
    #[error("{var}: {why} (expected key=value pairs separated by commas)")]
    BadHeaders { var: &'static str, why: String },
}

/// Resolve `[telemetry]` and the variables `env` gives. `Ok(None)`: export
/// is off.
pub fn resolve(
    config: &TelemetryConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Settings>, SettingsError> {
    let set = |name: &str| {
        env(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    if set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) || !config.enabled {
        return Ok(None);
    }
    let (var, endpoint) = if let Some(url) = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url)
    } else if let Some(base) = set("OTEL_EXPORTER_OTLP_ENDPOINT") {
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("{}/v1/traces", base.trim_end_matches('/')),
        )
    } else if !config.endpoint.trim().is_empty() {
        ("[telemetry] endpoint", config.endpoint.trim().to_string())
    } else {
        return Ok(None);
    };
    check_endpoint(&endpoint).map_err(|why| SettingsError::BadEndpoint { var, why })?;
    let mut headers: Vec<(String, String)> = Vec::new();
    for var in [
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ] {
        if let Some(text) = set(var) {
            for (key, value) in
                parse_headers(&text).map_err(|why| SettingsError::BadHeaders { var, why })?
            {
                headers.retain(|(k, _)| !k.eq_ignore_ascii_case(&key));
                headers.push((key, value));
            }
        }
    }
    Ok(Some(Settings {
        endpoint,
        headers,
        capture_content: config.capture_content,
        queue_size: config.queue_size.max(1),
        export_timeout: config.export_timeout,
        max_batch: MAX_BATCH,
        batch_interval: BATCH_INTERVAL,
    }))
}

fn check_endpoint(value: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(value).map_err(|e| {
        if value.contains('@') {
            format!("not a valid URL ({e})")
        } else {
            format!("`{value}` is not a valid URL ({e})")
        }
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "must not contain a user name or password; send credentials with OTEL_EXPORTER_OTLP_HEADERS".into(),
        );
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "`{value}` must start with http:// or https:// (OTLP over HTTP)"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{value}` has no host"));
    }
    Ok(())
}

/// `k=v,k2=v2` (W3C baggage-like, as the OpenTelemetry spec says); keys
/// are lowercased, values percent-decoded. Errors never repeat a value.
fn parse_headers(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (n, pair) in text.split(',').enumerate() {
        if pair.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!("entry {} has no `=`", n + 1));
        };
        let key = key.trim();
        let valid_key = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid_key {
            return Err(format!("entry {} has no valid header name", n + 1));
        }
        let value = percent_decode(value.trim())
            .ok_or_else(|| format!("the value of `{key}` has a bad %-escape"))?;
        if value.chars().any(|c| c.is_control()) {
            return Err(format!("the value of `{key}` has a control character"));
        }
        out.push((key.to_ascii_lowercase(), value));
    }
    Ok(out)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(
        vars: &[(&str, &str)],
        config: &TelemetryConfig,
    ) -> Result<Option<Settings>, SettingsError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        resolve(config, |name| vars.get(name).cloned())
    }

    #[test]
    fn off_without_an_endpoint_and_on_with_any() {
        let config = TelemetryConfig::default();
        assert_eq!(with(&[], &config), Ok(None));
        let s = with(
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:6006/")],
            &config,
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.endpoint, "http://127.0.0.1:6006/v1/traces");
        let s = with(
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://tempo:4318/custom",
                ),
            ],
            &config,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            s.endpoint, "http://tempo:4318/custom",
            "used as given, and it wins"
        );
        let file = TelemetryConfig {
            endpoint: "http://127.0.0.1:6006/v1/traces".into(),
            ..TelemetryConfig::default()
        };
        assert_eq!(
            with(&[], &file).unwrap().unwrap().endpoint,
            "http://127.0.0.1:6006/v1/traces"
        );
        assert_eq!(
            with(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318")], &file)
                .unwrap()
                .unwrap()
                .endpoint,
            "http://env:4318/v1/traces",
            "the environment is over the file"
        );
    }

    #[test]
    fn disabled_by_the_variable_or_the_file() {
        let file = TelemetryConfig {
            endpoint: "http://127.0.0.1:6006/v1/traces".into(),
            ..TelemetryConfig::default()
        };
        assert_eq!(with(&[("OTEL_SDK_DISABLED", "TRUE")], &file), Ok(None));
        assert!(
            with(&[("OTEL_SDK_DISABLED", "false")], &file)
                .unwrap()
                .is_some()
        );
        let off = TelemetryConfig {
            enabled: false,
            ..file
        };
        assert_eq!(
            with(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318")], &off),
            Ok(None)
        );
    }

    #[test]
    fn headers_are_parsed_decoded_and_never_repeated() {
        let config = TelemetryConfig::default();
        let s = with(
            &[
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "https://cloud.langfuse.com/api/public/otel",
                ),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "Authorization=Basic%20cGs6c2s=, x-scope-orgid=tenant",
                ),
                ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-scope-orgid=other"),
            ],
            &config,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            s.headers,
            vec![
                ("authorization".to_string(), "Basic cGs6c2s=".to_string()),
                ("x-scope-orgid".to_string(), "other".to_string()),
            ]
        );
        assert!(!format!("{s:?}").contains("cGs6c2s"), "{s:?}");
        let e = with(
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x:4318"),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "authorization=Bearer%zzsecret",
                ),
            ],
            &config,
        )
        .unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(e.to_string().contains("OTEL_EXPORTER_OTLP_HEADERS"), "{e}");
    }

    #[test]
    fn bad_endpoints_are_refused_with_the_variable_named() {
        let config = TelemetryConfig::default();
        let e = with(
            &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4317")],
            &config,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT:"),
            "{e}"
        );
        let e = with(
            &[(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://user:hunter2@host:4318",
            )],
            &config,
        )
        .unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
