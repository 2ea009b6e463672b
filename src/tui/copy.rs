//! `y`: what is copied and how it leaves. [`what`] picks the text (the
//! selected chat message, the shown scenario, the open passage, the
//! selected lifecycle request as a plain-text summary with its timeline);
//! the loop then hands it to a clipboard tool when a display is reachable
//! ([`clipboard_tool`]: `wl-copy` under Wayland, `xclip` or `xsel` under
//! X11, `pbcopy` on macOS), run on the blocking pool, else writes
//! [`osc52`] to the terminal between frames. OSC 52 works over SSH, and in
//! tmux with `set-clipboard on`.
//!
//! Why tools rather than a clipboard crate: `arboard` pulls in x11rb and
//! wayland crates for a feature that is only used with a display, and
//! holds the X11 selection in a thread of its own; the tools are on every
//! desktop that has a clipboard, and OSC 52 covers the rest.
//!
//! Invariants: only an explicit `y` copies; the notice says what and how.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use crate::domain::Role;
use crate::engine::Engine;
use crate::keymap::Context;
use crate::ui::ViewState;

/// Text to copy and what to call it in the notice ("reply", "scenario").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub what: String,
    pub text: String,
}

impl Copied {
    fn new(what: impl Into<String>, text: impl Into<String>) -> Result<Self, String> {
        Ok(Self {
            what: what.into(),
            text: text.into(),
        })
    }

    /// "copied reply (1.2 KB) via OSC 52".
    pub fn notice(&self, how: &str) -> String {
        format!(
            "copied {} ({}) via {how}",
            self.what,
            crate::tui::input::human_size(self.text.len())
        )
    }
}

/// What `y` copies where keys go now.
pub fn what(context: Context, view: &ViewState, engine: &Engine) -> Result<Copied, String> {
    match context {
        Context::Chat => {
            let messages = engine
                .conversation(view.current)
                .map(|c| &c.messages[..])
                .unwrap_or_default();
            let index = view
                .chat_selected
                .ok_or("select a message first (↑↓ in the chat)")?;
            let message = messages.get(index).ok_or("that message is gone")?;
            let what = match message.role {
                Role::User => "message",
                Role::Assistant => "reply",
            };
            Copied::new(what, message.text.clone())
        }
        Context::Scenarios => {
            let i = view
                .current_scenario(engine)
                .ok_or("no scenario to copy yet")?;
            let scenario = &engine.scenarios()[i];
            Copied::new("scenario", scenario.markdown.clone())
        }
        Context::Citation => {
            let open = view.citation.ok_or("no passage open")?;
            let passages = crate::ui::cited_passages(engine, open.source);
            let passage = passages
                .get(open.number.wrapping_sub(1))
                .ok_or("no such passage")?;
            Copied::new(format!("passage [{}]", open.number), passage_text(passage))
        }
        Context::Search => {
            let passage = view
                .search
                .as_ref()
                .and_then(|s| s.selected_passage())
                .ok_or("no passage to copy")?;
            Copied::new("passage", passage_text(passage))
        }
        Context::Lifecycle => {
            let now = Instant::now();
            let row = view
                .lifecycle
                .row(engine, view.lifecycle_selected, now)
                .ok_or("no request selected")?;
            Copied::new("request", request_summary(row, now))
        }
        _ => Err("nothing to copy here".into()),
    }
}

/// A passage as markdown: its title and source, then its text.
fn passage_text(p: &crate::domain::Passage) -> String {
    let heading = p
        .heading
        .as_deref()
        .map_or(String::new(), |h| format!(" › {h}"));
    format!(
        "## {}{heading}\n\nsource: {}\n\n{}\n",
        p.title, p.source, p.text
    )
}

/// A request as plain text: what it is, how it ended, then its timeline.
pub fn request_summary(r: &crate::engine::request::Request, now: Instant) -> String {
    let mut out = format!(
        "request {}\nkind: {}\nbackend: {}\nlabel: {}\nstate: {}\nelapsed: {} ms\nattempts: {}\n",
        r.id,
        r.kind.label(),
        r.backend,
        r.label,
        r.phase.label(),
        r.elapsed(now).as_millis(),
        r.attempt,
    );
    if let Some(parent) = r.parent {
        out.push_str(&format!("parent: {parent}\n"));
    }
    out.push_str("timeline:\n");
    for entry in &r.timeline {
        out.push_str(&format!("  +{} ms  {}\n", entry.offset_ms, entry.text()));
    }
    out
}

/// Standard base64 (RFC 4648, with padding).
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The OSC 52 sequence that puts `text` on the clipboard.
pub fn osc52(text: &str) -> String {
    format!("\x1b]52;c;{}\x07", base64(text.as_bytes()))
}

/// Write `text` to the clipboard through the terminal (between frames).
pub fn write_osc52(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    out.write_all(osc52(text).as_bytes())?;
    out.flush()
}

/// A clipboard tool to run, if a display is reachable and the tool is on
/// the PATH (looked up in the environment; no process is started here).
pub fn clipboard_tool(
    env: &dyn Fn(&str) -> Option<String>,
    exists: &dyn Fn(&str) -> bool,
) -> Option<(&'static str, &'static [&'static str])> {
    let wayland = env("WAYLAND_DISPLAY").is_some_and(|v| !v.is_empty());
    let x11 = env("DISPLAY").is_some_and(|v| !v.is_empty());
    let candidates: &[(&str, &[&str])] = &[
        ("wl-copy", &[]),
        ("xclip", &["-selection", "clipboard"]),
        ("xsel", &["--clipboard", "--input"]),
        ("pbcopy", &[]),
    ];
    candidates.iter().copied().find(|(tool, _)| {
        let reachable = match *tool {
            "wl-copy" => wayland,
            "pbcopy" => cfg!(target_os = "macos"),
            _ => x11,
        };
        reachable && exists(tool)
    })
}

/// Whether `name` is an executable file on `PATH` (disk access: call it
/// off the UI loop).
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir: PathBuf| dir.join(name).is_file())
    })
}

/// Run the clipboard tool with `text` on its standard input (blocking:
/// the blocking pool only). `Ok(tool)` when it took the text.
pub fn run_tool(tool: &str, args: &[&str], text: &str) -> Result<(), String> {
    use std::process::{Command, Stdio};
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{tool}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("{tool}: {e}"))?;
    }
    // xclip and wl-copy fork to serve the selection; the parent exits.
    let status = child.wait().map_err(|e| format!("{tool}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{tool} exited with {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain}");
        }
        assert_eq!(osc52("hi"), "\x1b]52;c;aGk=\x07");
    }

    #[test]
    fn a_tool_only_with_a_display_and_on_the_path() {
        let none = |_: &str| None;
        let x11 = |k: &str| (k == "DISPLAY").then(|| ":0".to_owned());
        let wayland = |k: &str| (k == "WAYLAND_DISPLAY").then(|| "wayland-0".to_owned());
        let all = |_: &str| true;
        let only_xsel = |t: &str| t == "xsel";
        // Over SSH: no display, OSC 52.
        if !cfg!(target_os = "macos") {
            assert_eq!(clipboard_tool(&none, &all), None);
        }
        assert_eq!(clipboard_tool(&x11, &all).map(|t| t.0), Some("xclip"));
        assert_eq!(clipboard_tool(&x11, &only_xsel).map(|t| t.0), Some("xsel"));
        assert_eq!(clipboard_tool(&wayland, &all).map(|t| t.0), Some("wl-copy"));
        if !cfg!(target_os = "macos") {
            assert_eq!(clipboard_tool(&wayland, &only_xsel), None);
        }
    }

    #[test]
    fn the_notice_says_what_and_how() {
        let c = Copied {
            what: "reply".into(),
            text: "x".repeat(1234),
        };
        assert_eq!(c.notice("OSC 52"), "copied reply (1.2 KB) via OSC 52");
    }
}
