//! The key and command tables of `docs/keys.md`, written from the binding
//! table. The doc keeps its own prose; each table sits between
//! `<!-- keys:begin ID -->` and `<!-- keys:end ID -->`, where ID is a
//! `Context::id` or `commands`. `update` rewrites only those sections; a test
//! fails when the file on disk differs from what `update` makes of it.
//!
//! Regenerate: `UPDATE_DOCS=1 cargo test --lib keymap::docs`.

use super::{COMMANDS, Context, Key, Keymap};

/// The section id of the slash command table.
pub const COMMANDS_ID: &str = "commands";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DocError {
    #[error("no `<!-- keys:begin {0} -->` ... `<!-- keys:end {0} -->` section")]
    MissingSection(String),
    #[error("`<!-- keys:begin {0} -->` is never closed by `<!-- keys:end {0} -->`")]
    Unclosed(String),
    #[error("unknown section `{0}` (known: a context id or `commands`)")]
    UnknownSection(String),
}

/// `doc` with every marked section rewritten from `keymap` and `COMMANDS`.
pub fn update(doc: &str, keymap: &Keymap) -> Result<String, DocError> {
    let mut out = String::with_capacity(doc.len());
    let mut seen = Vec::new();
    let mut lines = doc.split_inclusive('\n');
    while let Some(line) = lines.next() {
        out.push_str(line);
        let Some(id) = marker(line, "begin") else {
            continue;
        };
        let table = section(id, keymap).ok_or_else(|| DocError::UnknownSection(id.into()))?;
        out.push_str(&table);
        let end = lines
            .by_ref()
            .find(|l| marker(l, "end") == Some(id))
            .ok_or_else(|| DocError::Unclosed(id.into()))?;
        out.push_str(end);
        seen.push(id.to_string());
    }
    let wanted = Context::ALL
        .iter()
        .map(|c| c.id())
        .chain(std::iter::once(COMMANDS_ID));
    for id in wanted {
        if !seen.iter().any(|s| s == id) {
            return Err(DocError::MissingSection(id.into()));
        }
    }
    Ok(out)
}

/// `<!-- keys:begin chat -->` -> `Some("chat")` for `which` = "begin".
fn marker<'a>(line: &'a str, which: &str) -> Option<&'a str> {
    line.trim()
        .strip_prefix("<!-- keys:")?
        .strip_prefix(which)?
        .strip_suffix("-->")
        .map(str::trim)
        .filter(|id| !id.is_empty())
}

fn section(id: &str, keymap: &Keymap) -> Option<String> {
    if id == COMMANDS_ID {
        return Some(commands_table());
    }
    let context = Context::ALL.into_iter().find(|c| c.id() == id)?;
    Some(keys_table(keymap, context))
}

/// The markdown table of one context's keys.
pub fn keys_table(keymap: &Keymap, context: Context) -> String {
    let mut out = String::from("| key | does | `[keys]` name |\n|---|---|---|\n");
    for binding in keymap.in_context(context) {
        let mut keys: Vec<String> = Vec::new();
        for key in binding.keys.iter() {
            let shown = key_markdown(*key);
            if !keys.contains(&shown) {
                keys.push(shown);
            }
        }
        out.push_str(&format!(
            "| {} | {} | `{}` |\n",
            or_list(&keys),
            escape(binding.description),
            binding.action.id()
        ));
    }
    out
}

/// The markdown table of the slash commands.
pub fn commands_table() -> String {
    let mut out = String::from("| command | does |\n|---|---|\n");
    for command in COMMANDS {
        let mut syntax = code(command.syntax);
        if !command.aliases.is_empty() {
            let aliases: Vec<String> = command.aliases.iter().map(|a| code(a)).collect();
            syntax.push_str(&format!(" (or {})", aliases.join(", ")));
        }
        out.push_str(&format!("| {syntax} | {} |\n", escape(command.description)));
    }
    out
}

/// Character keys in backticks (`q`), named keys as they are (Enter, ↑).
fn key_markdown(key: Key) -> String {
    match key {
        Key::Digit => "`1`-`9`".into(),
        key if key.is_char() => code(&key.to_string()),
        key => key.to_string(),
    }
}

/// `a`, `a or b`, `a, b or c`.
fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

fn code(text: &str) -> String {
    format!("`{}`", text.replace('|', "\\|"))
}

/// Text safe in a table cell: `|` would end the cell, `<` could open an
/// HTML tag.
fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('<', "\\<")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn docs_keys_md_matches_the_binding_table() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/keys.md");
        let doc = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let want = update(&doc, &Keymap::default()).unwrap_or_else(|e| panic!("docs/keys.md: {e}"));
        if want == doc {
            return;
        }
        if std::env::var_os("UPDATE_DOCS").is_some_and(|v| v == "1") {
            std::fs::write(&path, &want)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            return;
        }
        let first = doc
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| doc.lines().count().min(want.lines().count()));
        panic!(
            "docs/keys.md disagrees with the binding table (src/keymap/table.rs), \
             first at line {}:\n  doc:   {:?}\n  table: {:?}\n\
             Regenerate its key tables with:\n  UPDATE_DOCS=1 cargo test --lib keymap::docs\n\
             and review the diff.",
            first + 1,
            doc.lines().nth(first).unwrap_or(""),
            want.lines().nth(first).unwrap_or(""),
        );
    }

    fn skeleton(extra: &str) -> String {
        let mut doc = String::from("# Keys\n\nProse stays.\n");
        for id in Context::ALL.iter().map(|c| c.id()).chain([COMMANDS_ID]) {
            doc.push_str(&format!(
                "<!-- keys:begin {id} -->\nstale\n<!-- keys:end {id} -->\nafter {id}\n"
            ));
        }
        doc.push_str(extra);
        doc
    }

    #[test]
    fn update_rewrites_only_the_marked_sections() {
        let map = Keymap::default();
        let doc = update(&skeleton(""), &map).expect("all sections present");
        assert!(!doc.contains("stale"), "{doc}");
        assert!(doc.starts_with("# Keys\n\nProse stays.\n"));
        assert!(doc.contains("after lifecycle\n"));
        assert!(
            doc.contains("| `b` | cycle the selected backend's breaker"),
            "{doc}"
        );
        assert!(doc.contains("| Ctrl-C | cancel the running reply"), "{doc}");
        assert!(
            doc.contains("| Esc, `q`, `?`, F1 or Enter | close this help |"),
            "{doc}"
        );
        assert!(doc.contains("| `1`-`9` | open the passage"), "{doc}");
        assert!(
            doc.contains("| `/breaker open\\|close\\|auto BACKEND` | "),
            "{doc}"
        );
        assert!(doc.contains("| `/quit` (or `/q`) | quit |"), "{doc}");
        // Idempotent.
        assert_eq!(update(&doc, &map), Ok(doc.clone()));
    }

    #[test]
    fn update_says_what_is_wrong_with_the_markers() {
        let map = Keymap::default();
        let missing = skeleton("").replace("keys:begin chat", "keys:begin nope");
        assert_eq!(
            update(&missing, &map),
            Err(DocError::UnknownSection("nope".into()))
        );
        let unclosed = skeleton("<!-- keys:begin chat -->\n");
        assert_eq!(
            update(&unclosed, &map),
            Err(DocError::Unclosed("chat".into()))
        );
        let gone = skeleton("").replace(
            "<!-- keys:begin detail -->\nstale\n<!-- keys:end detail -->\n",
            "",
        );
        assert_eq!(
            update(&gone, &map),
            Err(DocError::MissingSection("detail".into()))
        );
    }
}
