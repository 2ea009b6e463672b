//! Tab completion of a slash command in the input: the command's name,
//! then its arguments (backend names for `/chaos` and `/breaker`, session
//! names for `/session open|rename|delete`, knowledge-base names for
//! `/kb use`, file paths for `/kb add`).
//!
//! Invariants:
//! - Pure: nothing here touches the disk. A directory listing a completion
//!   needs (paths, knowledge-base names) comes from `ViewState::dir_cache`;
//!   when it is not there, [`complete`] asks the loop for it
//!   ([`Completion::NeedDir`]), which lists it on the blocking pool and
//!   completes again when it comes back.
//! - Only a one-line input ending at the cursor is completed; otherwise Tab
//!   moves the focus as always.

use std::path::{Path, PathBuf};

use crate::engine::Engine;
use crate::keymap::COMMANDS;
use crate::ui::ViewState;

/// One directory's entries: name and whether it is a directory.
pub type Listing = Vec<(String, bool)>;

/// What Tab did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// Nothing to complete here: Tab moves the focus.
    NotApplicable,
    /// The input was completed (or already as far as it can go).
    Done,
    /// Several fit and share no longer prefix: these, for a notice.
    Candidates(Vec<String>),
    /// This directory must be listed first (off the loop).
    NeedDir(PathBuf),
}

/// What a word may be completed to, or the directory that says.
enum Source {
    Words(Vec<String>),
    Paths { dir: PathBuf, shown: String },
}

fn words(items: &[&str]) -> Source {
    Source::Words(items.iter().map(|s| (*s).to_owned()).collect())
}

/// Every command name and alias, each once.
fn command_names() -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for command in COMMANDS {
        let first = command.syntax.split_whitespace().next().unwrap_or("");
        for name in std::iter::once(first).chain(command.aliases.iter().copied()) {
            if !name.is_empty() && !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
    }
    names
}

fn backends(engine: &Engine) -> Vec<String> {
    engine.backends().keys().cloned().collect()
}

fn sessions(view: &ViewState, engine: &Engine) -> Vec<String> {
    let mut names: Vec<String> = engine
        .conversations()
        .map(|(_, c)| c.name.clone())
        .collect();
    let listed = view.picker.iter().flat_map(|p| p.sessions.iter().flatten());
    for name in listed.map(|s| &s.name).chain(&view.session_names) {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// Where knowledge bases live (no disk access: a path from the
/// environment).
pub fn kb_home() -> Option<PathBuf> {
    crate::kb::store::home().ok()
}

/// What the word at `index` (0 is the command) of `args` may be.
fn source(
    command: &str,
    index: usize,
    args: &[&str],
    view: &ViewState,
    engine: &Engine,
) -> Option<Source> {
    let sub = args.first().copied().unwrap_or("");
    Some(match (command, index) {
        ("/chaos", 1) => {
            let mut b = backends(engine);
            b.push("off".into());
            Source::Words(b)
        }
        ("/chaos", 2) if sub != "off" => words(&["latency", "fail", "hang", "off"]),
        ("/breaker", 1) => words(&["open", "close", "auto"]),
        ("/breaker", 2) => Source::Words(backends(engine)),
        ("/rag", 1) => words(&["on", "off"]),
        ("/trace", 1) => words(&["export"]),
        ("/session" | "/sessions", 1) => {
            words(&["new", "open", "rename", "delete", "list", "export"])
        }
        ("/session", 2) if matches!(sub, "open" | "rename" | "delete") => {
            Source::Words(sessions(view, engine))
        }
        ("/session", 2) if sub == "export" => words(&["md", "json"]),
        ("/kb", 1) => words(&["add", "use", "search"]),
        ("/kb", 2) if sub == "use" => {
            let home = kb_home()?;
            let mut names = vec!["sample".to_owned()];
            match view.dir_cache.get(&home) {
                Some(listing) => names.extend(
                    listing
                        .iter()
                        .filter(|(n, dir)| *dir && !n.starts_with('.'))
                        .map(|(n, _)| n.clone()),
                ),
                None => {
                    return Some(Source::Paths {
                        dir: home,
                        shown: String::new(),
                    });
                }
            }
            Source::Words(names)
        }
        ("/kb", n) if n >= 2 && sub == "add" => {
            let word = args.get(n - 1).copied().unwrap_or("");
            let shown = word.rfind('/').map_or("", |i| &word[..=i]).to_owned();
            Source::Paths {
                dir: expand(&shown),
                shown,
            }
        }
        _ => return None,
    })
}

/// `~/x/` with the home directory, `""` as `.`.
fn expand(dir: &str) -> PathBuf {
    if dir.is_empty() {
        return PathBuf::from(".");
    }
    if let Some(rest) = dir.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return Path::new(&home).join(rest);
    }
    PathBuf::from(dir)
}

fn common_prefix(items: &[String]) -> String {
    let Some(first) = items.first() else {
        return String::new();
    };
    let mut end = first.len();
    for item in &items[1..] {
        end = first
            .char_indices()
            .zip(item.chars())
            .find(|((_, a), b)| a != b)
            .map_or(end.min(item.len()), |((i, _), _)| i.min(end));
    }
    first[..end].to_owned()
}

/// Complete the input's slash command at the cursor, if there is one that
/// can be completed.
pub fn complete_input(view: &mut ViewState, engine: &Engine) -> Completion {
    let lines = view.input.lines();
    let ratatui_textarea::DataCursor(row, col) = view.input.cursor();
    if lines.len() != 1 || row != 0 || col != lines[0].chars().count() {
        return Completion::NotApplicable;
    }
    let text = lines[0].clone();
    if !text.starts_with('/') {
        return Completion::NotApplicable;
    }
    let parts: Vec<&str> = text.split(' ').collect();
    let index = parts.len() - 1;
    let word = parts[index];
    let source = if index == 0 {
        Source::Words(command_names())
    } else {
        let args: Vec<&str> = parts[1..]
            .iter()
            .copied()
            .filter(|w| !w.is_empty())
            .collect();
        // Words typed so far (the one being typed counts, even empty).
        let at = parts[1..index].iter().filter(|w| !w.is_empty()).count() + 1;
        let mut args = args;
        if word.is_empty() {
            args.push("");
        }
        match source(parts[0], at, &args, view, engine) {
            Some(source) => source,
            None => return Completion::NotApplicable,
        }
    };
    let (candidates, prefix_len, shown) = match source {
        Source::Words(all) => {
            let fit: Vec<String> = all.into_iter().filter(|w| w.starts_with(word)).collect();
            let fit = fit.into_iter().map(|w| (w, false)).collect::<Vec<_>>();
            (fit, word.len(), String::new())
        }
        Source::Paths { dir, shown } => {
            let Some(listing) = view.dir_cache.get(&dir) else {
                return Completion::NeedDir(dir);
            };
            let prefix = &word[shown.len().min(word.len())..];
            let fit: Vec<(String, bool)> = listing
                .iter()
                .filter(|(n, _)| {
                    n.starts_with(prefix) && (prefix.starts_with('.') || !n.starts_with('.'))
                })
                .map(|(n, dir)| (if *dir { format!("{n}/") } else { n.clone() }, *dir))
                .collect();
            (fit, prefix.len(), shown)
        }
    };
    if candidates.is_empty() {
        return Completion::NotApplicable;
    }
    let names: Vec<String> = candidates.iter().map(|(n, _)| n.clone()).collect();
    let (replacement, finished) = if let [(only, is_dir)] = &candidates[..] {
        (only.clone(), !is_dir)
    } else {
        (common_prefix(&names), false)
    };
    if candidates.len() > 1 && replacement.len() <= prefix_len {
        return Completion::Candidates(names);
    }
    let head = parts[..index].join(" ");
    let mut line = if index == 0 {
        String::new()
    } else {
        format!("{head} ")
    };
    line.push_str(&shown);
    line.push_str(&replacement);
    if finished {
        line.push(' ');
    }
    crate::tui::input::set_text(view, &line);
    Completion::Done
}

/// List `dir` for completion: on the blocking pool, never the UI loop.
pub fn list_dir(dir: &Path) -> Listing {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut listing: Listing = entries
        .filter_map(Result::ok)
        .take(10_000)
        .map(|e| {
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir())
                || (e.file_type().is_ok_and(|t| t.is_symlink()) && e.path().is_dir());
            (e.file_name().to_string_lossy().into_owned(), is_dir)
        })
        .collect();
    listing.sort();
    listing
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::input::set_text;

    fn setup() -> (ViewState, Engine) {
        crate::tui::test_view(&["campaign", "ashford"])
    }

    fn tab(view: &mut ViewState, engine: &Engine, typed: &str) -> (Completion, String) {
        set_text(view, typed);
        let done = complete_input(view, engine);
        (done, view.input.lines().join("\n"))
    }

    #[test]
    fn commands_and_their_arguments_complete() {
        let (mut view, engine) = setup();
        let v = &mut view;
        assert_eq!(tab(v, &engine, "/ses").1, "/session");
        assert_eq!(tab(v, &engine, "/session o").1, "/session open ");
        assert_eq!(
            tab(v, &engine, "/session open a").1,
            "/session open ashford "
        );
        // A stored session not open in this run completes too.
        v.session_names = vec!["winter-campaign".into()];
        assert_eq!(
            tab(v, &engine, "/session delete wi").1,
            "/session delete winter-campaign "
        );
        assert_eq!(tab(v, &engine, "/kb u").1, "/kb use ");
        assert_eq!(
            tab(v, &engine, "/rag o").0,
            Completion::Candidates(vec!["on".into(), "off".into()])
        );
        assert_eq!(tab(v, &engine, "/rag of").1, "/rag off ");
        let backend = engine.backends().keys().next().cloned().expect("a backend");
        let typed = format!("/chaos {}", &backend[..1]);
        let (_, line) = tab(v, &engine, &typed);
        assert!(
            line.starts_with("/chaos ") && line.len() > typed.len(),
            "{line}"
        );
        assert!(
            matches!(tab(v, &engine, "/breaker open ").0, Completion::Candidates(b) if b.len() == engine.backends().len())
        );
        // /s and /scenario /session /sessions share "/s": candidates.
        assert!(
            matches!(tab(v, &engine, "/s").0, Completion::Candidates(c) if c.contains(&"/session".to_owned()))
        );
    }

    #[test]
    fn not_a_command_or_not_at_the_end_is_left_to_tab_focus() {
        let (mut view, engine) = setup();
        assert_eq!(
            tab(&mut view, &engine, "who guards").0,
            Completion::NotApplicable
        );
        assert_eq!(tab(&mut view, &engine, "/xyz").0, Completion::NotApplicable);
        assert_eq!(
            tab(&mut view, &engine, "/ses\nmore").0,
            Completion::NotApplicable
        );
        assert_eq!(
            tab(&mut view, &engine, "/session open zz").0,
            Completion::NotApplicable
        );
    }

    #[test]
    fn paths_come_from_the_listing_the_loop_fetched() {
        let (mut view, engine) = setup();
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir(dir.path().join("notes")).expect("mkdir");
        std::fs::write(dir.path().join("notes/ford.md"), "x").expect("write");
        std::fs::write(dir.path().join("north.txt"), "x").expect("write");
        let base = format!("{}/", dir.path().display());
        let typed = format!("/kb add {base}no");
        // Not listed yet: the loop is asked to.
        assert_eq!(
            tab(&mut view, &engine, &typed).0,
            Completion::NeedDir(PathBuf::from(&base))
        );
        view.dir_cache
            .insert(PathBuf::from(&base), list_dir(dir.path()));
        let (done, line) = tab(&mut view, &engine, &typed);
        assert_eq!(
            done,
            Completion::Candidates(vec!["north.txt".into(), "notes/".into()])
        );
        assert_eq!(line, typed);
        let (_, line) = tab(&mut view, &engine, &format!("{typed}te"));
        assert_eq!(line, format!("/kb add {base}notes/"));
        view.dir_cache.insert(
            PathBuf::from(format!("{base}notes/")),
            list_dir(&dir.path().join("notes")),
        );
        let (_, line) = tab(&mut view, &engine, &format!("/kb add {base}notes/"));
        assert_eq!(line, format!("/kb add {base}notes/ford.md "));
    }

    #[test]
    fn the_longest_shared_prefix_is_taken() {
        assert_eq!(
            common_prefix(&["/session".into(), "/sessions".into()]),
            "/session"
        );
        assert_eq!(
            common_prefix(&["abc".into(), "abd".into(), "ab".into()]),
            "ab"
        );
    }
}
