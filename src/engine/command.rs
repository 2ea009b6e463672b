//! Turns a line typed in the input into what it asks for: a scenario, a
//! question, or a slash command. Pure; errors are messages for the status
//! line.

use super::breaker::Force;
use crate::domain::{ChaosMode, parse_duration};

/// What a typed line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// Ask the focused conversation.
    Ask(String),
    Scenario {
        prompt: String,
        seed: Option<u64>,
    },
    /// Regenerate the selected scenario with a fresh seed.
    Regenerate,
    /// Export the selected scenario to a markdown file.
    Export,
    /// Cancel a request by id, or the focused conversation's running turn.
    Cancel(Option<String>),
    /// Drop every queued message of the focused conversation.
    ClearQueue,
    /// Drop one queued message by its number (`/cancel #3`).
    CancelQueued(u64),
    /// Fault injection: `backend: None, mode: None` is `/chaos off`.
    Chaos {
        backend: Option<String>,
        mode: Option<ChaosMode>,
    },
    Breaker {
        backend: String,
        force: Force,
    },
    Rag(bool),
    /// `/kb add PATH...`: ingest into the knowledge base in use.
    KbAdd(Vec<String>),
    /// `/kb use NAME`: search another knowledge base.
    KbUse(String),
    /// `/kb search QUERY`: list the passages the knowledge base in use
    /// finds for QUERY.
    KbSearch(String),
    /// `/session ...`: many conversations, saved.
    Session(SessionLine),
    /// `/resend`: send the messages left unsent when loreweave stopped.
    Resend,
    /// `/trace export [--redact] [FILE]`: write the trace so far.
    TraceExport {
        file: Option<String>,
        redact: bool,
    },
    Help,
    Quit,
}

/// What a `/session` line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionLine {
    New(Option<String>),
    Open(String),
    Rename(String),
    /// Asks for a confirmation first.
    Delete(String),
    List,
    Export {
        json: bool,
    },
}

const SESSION_USAGE: &str =
    "usage: /session new [NAME] | open NAME | rename NAME | delete NAME | list | export md|json";

fn parse_session(arg: &str) -> Result<Line, String> {
    let (sub, rest) = arg.split_once(char::is_whitespace).unwrap_or((arg, ""));
    let rest = rest.trim();
    let line = match sub {
        "new" => SessionLine::New((!rest.is_empty()).then(|| rest.to_owned())),
        "open" if !rest.is_empty() => SessionLine::Open(rest.to_owned()),
        "rename" if !rest.is_empty() => SessionLine::Rename(rest.to_owned()),
        "delete" if !rest.is_empty() => SessionLine::Delete(rest.to_owned()),
        "list" | "" => SessionLine::List,
        "export" => match rest {
            "" | "md" | "markdown" => SessionLine::Export { json: false },
            "json" => SessionLine::Export { json: true },
            _ => return Err(SESSION_USAGE.into()),
        },
        _ => return Err(SESSION_USAGE.into()),
    };
    Ok(Line::Session(line))
}

const TRACE_USAGE: &str = "usage: /trace export [--redact] [FILE]";

fn parse_trace(arg: &str) -> Result<Line, String> {
    let mut words = arg.split_whitespace();
    if words.next() != Some("export") {
        return Err(TRACE_USAGE.into());
    }
    let mut file = None;
    let mut redact = false;
    for word in words {
        match word {
            "--redact" => redact = true,
            _ if word.starts_with("--") || file.is_some() => return Err(TRACE_USAGE.into()),
            _ => file = Some(word.to_owned()),
        }
    }
    Ok(Line::TraceExport { file, redact })
}

const KB_USAGE: &str = "usage: /kb add PATH... | /kb use NAME | /kb search QUERY";

fn parse_kb(arg: &str) -> Result<Line, String> {
    let (sub, rest) = arg.split_once(char::is_whitespace).unwrap_or((arg, ""));
    let rest = rest.trim();
    match sub {
        "add" if !rest.is_empty() => Ok(Line::KbAdd(
            rest.split_whitespace().map(str::to_owned).collect(),
        )),
        "use" if !rest.is_empty() && !rest.contains(char::is_whitespace) => {
            Ok(Line::KbUse(rest.to_owned()))
        }
        "search" if !rest.is_empty() => Ok(Line::KbSearch(
            rest.split_whitespace().collect::<Vec<_>>().join(" "),
        )),
        _ => Err(KB_USAGE.into()),
    }
}

const SCENARIO_PHRASES: &[&str] = &[
    "generate a scenario for ",
    "generate scenario for ",
    "generate a scenario about ",
    "generate scenario about ",
    "generate a scenario: ",
    "generate scenario: ",
    "generate a scenario ",
    "generate scenario ",
];

/// Parse one line. `Ok(None)` for a blank line.
pub fn parse_line(line: &str) -> Result<Option<Line>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    if let Some(rest) = line.strip_prefix('/') {
        return parse_slash(rest).map(Some);
    }
    let lower = line.to_lowercase();
    for phrase in SCENARIO_PHRASES {
        if lower == phrase.trim_end() {
            return Err(
                "say what the scenario is for, e.g. `generate scenario for the first encounter`"
                    .into(),
            );
        }
        if lower.starts_with(phrase) {
            // Lowercasing can change byte lengths only outside ASCII; the
            // phrases are ASCII, so cut the original at the same char count.
            let prompt: String = line.chars().skip(phrase.chars().count()).collect();
            let prompt = prompt.trim();
            if prompt.is_empty() {
                return Err("say what the scenario is for, e.g. `generate scenario for the first encounter`".into());
            }
            return Ok(Some(Line::Scenario {
                prompt: prompt.to_string(),
                seed: None,
            }));
        }
    }
    Ok(Some(Line::Ask(line.to_string())))
}

fn parse_slash(rest: &str) -> Result<Line, String> {
    let (name, arg) = match rest.split_once(char::is_whitespace) {
        Some((name, arg)) => (name, arg.trim()),
        None => (rest, ""),
    };
    match name.to_lowercase().as_str() {
        "scenario" | "s" => parse_scenario_args(arg),
        "regen" | "regenerate" => Ok(Line::Regenerate),
        "export" => Ok(Line::Export),
        "cancel" => match arg.strip_prefix('#') {
            Some(number) => number
                .parse()
                .map(Line::CancelQueued)
                .map_err(|_| format!("`#{number}` is not a queued message number")),
            None => Ok(Line::Cancel((!arg.is_empty()).then(|| arg.to_string()))),
        },
        "chaos" => parse_chaos(arg),
        "breaker" => parse_breaker(arg),
        "clear-queue" => Ok(Line::ClearQueue),
        "rag" => match arg.to_lowercase().as_str() {
            "on" => Ok(Line::Rag(true)),
            "off" => Ok(Line::Rag(false)),
            _ => Err("usage: /rag on|off".into()),
        },
        "kb" => parse_kb(arg),
        "session" | "sessions" => parse_session(arg),
        "resend" => Ok(Line::Resend),
        "trace" => parse_trace(arg),
        "ask" if !arg.is_empty() => Ok(Line::Ask(arg.to_string())),
        "ask" => Err("usage: /ask QUESTION".into()),
        "help" | "?" => Ok(Line::Help),
        "quit" | "q" => Ok(Line::Quit),
        "" => Err("type a command after `/`; /help lists them".into()),
        other => Err(format!(
            "unknown command /{other}; /help lists the commands"
        )),
    }
}

const CHAOS_USAGE: &str =
    "usage: /chaos <backend> latency 12s | fail 50% | hang | off, or /chaos off";

/// `/chaos <backend> latency 12s | fail 50% | hang | off`, `/chaos off`
fn parse_chaos(arg: &str) -> Result<Line, String> {
    let words: Vec<&str> = arg.split_whitespace().collect();
    let (backend, mode) = match words.as_slice() {
        ["off"] => (None, None),
        [backend, "off"] => (Some(backend.to_string()), None),
        [backend, "hang"] => (Some(backend.to_string()), Some(ChaosMode::Hang)),
        [backend, "latency", duration] => (
            Some(backend.to_string()),
            Some(ChaosMode::Latency(parse_duration(duration)?)),
        ),
        [backend, "fail", percent] => {
            let number = percent.trim_end_matches('%');
            let percent: u8 = number
                .parse()
                .ok()
                .filter(|p| *p <= 100)
                .ok_or_else(|| format!("`{percent}` is not a percentage from 0 to 100"))?;
            (Some(backend.to_string()), Some(ChaosMode::Fail { percent }))
        }
        _ => return Err(CHAOS_USAGE.into()),
    };
    Ok(Line::Chaos { backend, mode })
}

/// `/breaker open|close|auto <backend>`
fn parse_breaker(arg: &str) -> Result<Line, String> {
    let words: Vec<&str> = arg.split_whitespace().collect();
    let [state, backend] = words.as_slice() else {
        return Err("usage: /breaker open|close|auto <backend>".into());
    };
    let force = match state.to_lowercase().as_str() {
        "open" => Force::Open,
        "close" | "closed" => Force::Closed,
        "auto" => Force::Auto,
        _ => return Err("usage: /breaker open|close|auto <backend>".into()),
    };
    Ok(Line::Breaker {
        backend: backend.to_string(),
        force,
    })
}

/// `/scenario [--seed N] PROMPT`
fn parse_scenario_args(arg: &str) -> Result<Line, String> {
    let mut seed = None;
    let mut prompt = arg;
    if let Some(rest) = arg.strip_prefix("--seed") {
        let rest = rest.trim_start();
        let (number, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        seed = Some(
            number
                .parse::<u64>()
                .map_err(|_| format!("--seed wants a whole number, not `{number}`"))?,
        );
        prompt = tail.trim();
    }
    if prompt.is_empty() {
        return Err("usage: /scenario [--seed N] what the scenario is for".into());
    }
    Ok(Line::Scenario {
        prompt: prompt.to_string(),
        seed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_and_slash_scenarios() {
        let want = Some(Line::Scenario {
            prompt: "the first encounter".into(),
            seed: None,
        });
        assert_eq!(
            parse_line("generate scenario for the first encounter"),
            Ok(want.clone())
        );
        assert_eq!(
            parse_line("Generate a scenario for the first encounter "),
            Ok(want.clone())
        );
        assert_eq!(parse_line("/scenario the first encounter"), Ok(want));
        assert_eq!(
            parse_line("/scenario --seed 7 a dark ford"),
            Ok(Some(Line::Scenario {
                prompt: "a dark ford".into(),
                seed: Some(7)
            }))
        );
        assert!(parse_line("/scenario --seed x a").is_err());
        assert!(parse_line("/scenario").is_err());
        assert!(parse_line("generate scenario for ").is_err());
    }

    #[test]
    fn questions_and_commands() {
        assert_eq!(parse_line("  "), Ok(None));
        assert_eq!(
            parse_line("who guards the waystone?"),
            Ok(Some(Line::Ask("who guards the waystone?".into())))
        );
        assert_eq!(parse_line("/rag off"), Ok(Some(Line::Rag(false))));
        assert_eq!(
            parse_line("/cancel k3x9qa"),
            Ok(Some(Line::Cancel(Some("k3x9qa".into()))))
        );
        assert_eq!(parse_line("/cancel"), Ok(Some(Line::Cancel(None))));
        assert!(
            parse_line("/frobnicate")
                .unwrap_err()
                .contains("/frobnicate")
        );
        assert!(parse_line("/rag maybe").is_err());
        assert_eq!(parse_line("/cancel #3"), Ok(Some(Line::CancelQueued(3))));
        assert!(parse_line("/cancel #x").is_err());
    }

    #[test]
    fn chaos_and_breaker_commands() {
        use std::time::Duration;
        let chaos = |b: &str, m| {
            Ok(Some(Line::Chaos {
                backend: Some(b.into()),
                mode: m,
            }))
        };
        assert_eq!(
            parse_line("/chaos local latency 12s"),
            chaos("local", Some(ChaosMode::Latency(Duration::from_secs(12))))
        );
        assert_eq!(
            parse_line("/chaos offline fail 50%"),
            chaos("offline", Some(ChaosMode::Fail { percent: 50 }))
        );
        assert_eq!(
            parse_line("/chaos local hang"),
            chaos("local", Some(ChaosMode::Hang))
        );
        assert_eq!(parse_line("/chaos local off"), chaos("local", None));
        assert_eq!(
            parse_line("/chaos off"),
            Ok(Some(Line::Chaos {
                backend: None,
                mode: None
            }))
        );
        assert!(parse_line("/chaos local fail 150%").is_err());
        assert!(parse_line("/chaos local latency soon").is_err());
        assert!(parse_line("/chaos").is_err());
        assert_eq!(
            parse_line("/breaker open local"),
            Ok(Some(Line::Breaker {
                backend: "local".into(),
                force: Force::Open
            }))
        );
        assert!(parse_line("/breaker sideways local").is_err());
    }

    #[test]
    fn kb_commands() {
        assert_eq!(
            parse_line("/kb add ~/notes other.md"),
            Ok(Some(Line::KbAdd(vec!["~/notes".into(), "other.md".into()])))
        );
        assert_eq!(
            parse_line("/kb use sample"),
            Ok(Some(Line::KbUse("sample".into())))
        );
        assert_eq!(
            parse_line("/kb search  the   shattered waystone "),
            Ok(Some(Line::KbSearch("the shattered waystone".into())))
        );
        for bad in [
            "/kb",
            "/kb search",
            "/kb search   ",
            "/kb use a b",
            "/kb frob x",
        ] {
            let error = parse_line(bad).expect_err(bad);
            assert!(error.contains("/kb search QUERY"), "{bad}: {error}");
        }
    }
}
