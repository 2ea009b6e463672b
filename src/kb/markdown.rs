//! Parsing one lore markdown file into a [`Document`]: optional `---` front
//! matter (only `kind` and `tags` are read), the first `# ` heading as the
//! title, the rest as the body.
//!
//! Invariants: parsing is total. Malformed front matter is treated as body
//! text, a missing title falls back to the source name, CRLF and a leading
//! byte-order mark are accepted. Lines are counted as an editor does: `\n`,
//! `\r\n` and a lone `\r` each end a line. The body is a contiguous run of
//! source lines starting at [`Document::body_line`]: the title line, when
//! text precedes it, stays in the body as a blank line.

use std::path::Path;

use super::Document;

/// Parse one markdown file. `source` names the file (used for the fallback
/// title); `text` is its content.
pub fn parse_markdown(source: &str, text: &str) -> Document {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = text.split('\n').collect();

    let (front, content_at) = split_front_matter(&lines);
    let (kind, tags) = front.map(parse_front_matter).unwrap_or_default();

    let content = lines.get(content_at..).unwrap_or_default();
    let title_at = find_title(content);
    let title = title_at
        .and_then(|at| content.get(at))
        .and_then(|line| title_of(line))
        .filter(|title| !title.is_empty())
        .map_or_else(|| fallback_title(source), str::to_owned);
    // The title line becomes a blank line, so that body lines keep their
    // distance from each other and anything before the title is kept.
    let body_lines: Vec<&str> = content
        .iter()
        .enumerate()
        .map(|(at, line)| if Some(at) == title_at { "" } else { *line })
        .collect();
    let (skipped, body_lines) = trim_blank_lines(&body_lines);
    let body_line = content_at + skipped + 1;

    Document {
        source: source.to_owned(),
        title,
        kind,
        tags,
        body: body_lines.join("\n"),
        body_line,
    }
}

/// Index of the first `# ` heading outside fenced code, if any.
fn find_title(lines: &[&str]) -> Option<usize> {
    let mut fence: Option<&str> = None;
    for (at, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if let Some(marker) = fence {
            if trimmed.starts_with(marker) {
                fence = None;
            }
            continue;
        }
        if let Some(marker) = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m)) {
            fence = Some(marker);
            continue;
        }
        if title_of(line).is_some() {
            return Some(at);
        }
    }
    None
}

/// Splits off front matter: a first line `---` up to a closing `---` or `...`.
/// Without a closing line there is no front matter. Returns the front
/// matter's lines and the index of the first line after it.
fn split_front_matter<'a, 'b>(lines: &'b [&'a str]) -> (Option<&'b [&'a str]>, usize) {
    if lines.first().map(|line| line.trim_end()) != Some("---") {
        return (None, 0);
    }
    let close = lines
        .iter()
        .skip(1)
        .position(|line| matches!(line.trim_end(), "---" | "..."));
    match close {
        Some(offset) => {
            let end = offset + 1;
            (lines.get(1..end), end + 1)
        }
        None => (None, 0),
    }
}

/// Reads `kind:` and `tags:` (flow list `[a, b]`, comma list, or block list
/// of `- item` lines). Unknown keys are ignored.
fn parse_front_matter(lines: &[&str]) -> (Option<String>, Vec<String>) {
    let mut kind = None;
    let mut tags = Vec::new();
    let mut in_tag_block = false;
    for line in lines {
        let trimmed = line.trim();
        if in_tag_block {
            if let Some(item) = trimmed.strip_prefix("- ").or_else(|| {
                // A bare "-" is an empty item.
                (trimmed == "-").then_some("")
            }) {
                let item = unquote(item.trim());
                if !item.is_empty() {
                    tags.push(item.to_owned());
                }
                continue;
            }
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            in_tag_block = false;
        }
        // Keys are only read at the top level.
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((key, value)) = trimmed.split_once(':') else {
            continue;
        };
        let value = strip_comment(value).trim();
        match key.trim() {
            "kind" => {
                let value = unquote(value);
                kind = (!value.is_empty()).then(|| value.to_owned());
            }
            "tags" => {
                tags.clear();
                if value.is_empty() {
                    in_tag_block = true;
                } else {
                    let inner = value
                        .strip_prefix('[')
                        .map(|v| v.strip_suffix(']').unwrap_or(v))
                        .unwrap_or(value);
                    tags.extend(
                        inner
                            .split(',')
                            .map(|tag| unquote(tag.trim()))
                            .filter(|tag| !tag.is_empty())
                            .map(str::to_owned),
                    );
                }
            }
            _ => {}
        }
    }
    (kind, tags)
}

/// Drops a YAML comment (` #...`) from a value.
fn strip_comment(value: &str) -> &str {
    match value.find(" #") {
        Some(at) => &value[..at],
        None => value,
    }
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner.trim();
        }
    }
    value
}

/// The text of a level-1 ATX heading (`# Title`, optional closing `#`s).
fn title_of(line: &str) -> Option<&str> {
    let rest = line.trim_start_matches(' ');
    // More than three spaces of indentation makes a code block.
    if line.len() - rest.len() > 3 {
        return None;
    }
    let rest = rest.strip_prefix('#')?;
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    Some(strip_closing_hashes(rest.trim()))
}

/// Removes an ATX heading's optional closing sequence (`## Title ##`).
pub(super) fn strip_closing_hashes(text: &str) -> &str {
    let without = text.trim_end_matches('#');
    if without.len() == text.len() {
        return text;
    }
    if without.is_empty() {
        return "";
    }
    if without.ends_with([' ', '\t']) {
        without.trim_end()
    } else {
        text
    }
}

/// The source name without directory and extension (the title of a
/// document without one).
pub(super) fn fallback_title(source: &str) -> String {
    let stem = Path::new(source)
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    if stem.is_empty() {
        source.to_owned()
    } else {
        stem
    }
}

/// The lines without leading and trailing blank lines, and how many leading
/// lines were dropped.
fn trim_blank_lines<'a, 'b>(lines: &'b [&'a str]) -> (usize, &'b [&'a str]) {
    let start = lines
        .iter()
        .position(|line| !line.trim().is_empty())
        .unwrap_or(lines.len());
    let end = lines
        .iter()
        .rposition(|line| !line.trim().is_empty())
        .map_or(start, |at| at + 1);
    (start, &lines[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_front_matter_title_and_body() {
        let text = "---\nkind: place\ntags: [waystone, ruins, \"leyline\"]\nauthor: someone\n---\n\
                    # The Shattered Waystone\n\nGuarded by **Warden Ilsa Marrow**.\n\n## History\n\nOld.\n";
        let doc = parse_markdown("shattered-waystone.md", text);
        assert_eq!(doc.source, "shattered-waystone.md");
        assert_eq!(doc.title, "The Shattered Waystone");
        assert_eq!(doc.kind.as_deref(), Some("place"));
        assert_eq!(doc.tags, ["waystone", "ruins", "leyline"]);
        assert_eq!(
            doc.body,
            "Guarded by **Warden Ilsa Marrow**.\n\n## History\n\nOld."
        );
    }

    #[test]
    fn accepts_block_list_tags_and_quoted_kind() {
        let text = "---\nkind: 'npc'  # a person\ntags:\n  - warden\n  - moor\nname: x\n---\n# Ilsa\nText.";
        let doc = parse_markdown("ilsa.md", text);
        assert_eq!(doc.kind.as_deref(), Some("npc"));
        assert_eq!(doc.tags, ["warden", "moor"]);
        assert_eq!(doc.title, "Ilsa");
        assert_eq!(doc.body, "Text.");
    }

    #[test]
    fn without_front_matter() {
        let doc = parse_markdown("notes.md", "# Notes #\n\nSome text.\n");
        assert_eq!(doc.title, "Notes");
        assert_eq!(doc.kind, None);
        assert!(doc.tags.is_empty());
        assert_eq!(doc.body, "Some text.");
    }

    #[test]
    fn without_title_falls_back_to_source_stem() {
        let doc = parse_markdown(
            "river-roads.md",
            "---\nkind: place\n---\nJust text.\n\n## A section\n\nMore.",
        );
        assert_eq!(doc.title, "river-roads");
        assert_eq!(doc.kind.as_deref(), Some("place"));
        assert_eq!(doc.body, "Just text.\n\n## A section\n\nMore.");
        // A `##` heading is not a title, and `#hashtag` is not a heading.
        let doc = parse_markdown("x.md", "#hashtag\n## Sub\ntext");
        assert_eq!(doc.title, "x");
    }

    #[test]
    fn unclosed_front_matter_is_body() {
        let doc = parse_markdown("a.md", "---\nkind: place\n# Title\nbody");
        assert_eq!(doc.kind, None);
        assert_eq!(doc.title, "Title");
        // The title line stays as a blank line, so body lines map 1:1 onto
        // source lines.
        assert_eq!(doc.body, "---\nkind: place\n\nbody");
        assert_eq!(doc.body_line, 1);
    }

    #[test]
    fn body_line_counts_front_matter_title_and_blank_lines() {
        let text = "---\nkind: place\n---\n\n# Title\n\n\nFirst.\n\nSecond.\n\n";
        let doc = parse_markdown("t.md", text);
        assert_eq!(doc.title, "Title");
        assert_eq!(doc.body, "First.\n\nSecond.");
        assert_eq!(doc.body_line, 8);
        // Without front matter or title the body starts at its first
        // non-blank line.
        let doc = parse_markdown("t.md", "\n\nJust text.\n");
        assert_eq!((doc.body.as_str(), doc.body_line), ("Just text.", 3));
        // Text before the title is kept; the title line is blanked.
        let doc = parse_markdown("t.md", "Preface.\n# Title\nAfter.");
        assert_eq!(doc.title, "Title");
        assert_eq!(
            (doc.body.as_str(), doc.body_line),
            ("Preface.\n\nAfter.", 1)
        );
        // A title-only document has an empty body.
        let doc = parse_markdown("t.md", "# Only\n");
        assert_eq!((doc.title.as_str(), doc.body.as_str()), ("Only", ""));
    }

    #[test]
    fn line_ends_count_as_an_editor_counts_them() {
        // CRLF and lone CR each end one line.
        let doc = parse_markdown("t.md", "---\r\nkind: npc\r\n---\r\n# T\r\n\r\nBody.\r\n");
        assert_eq!((doc.body.as_str(), doc.body_line), ("Body.", 6));
        let doc = parse_markdown("t.md", "# T\r\rBody.\r");
        assert_eq!((doc.body.as_str(), doc.body_line), ("Body.", 3));
    }

    #[test]
    fn a_hash_line_in_fenced_code_is_not_the_title() {
        let doc = parse_markdown("t.md", "```sh\n# comment\n```\n# Real\nText.");
        assert_eq!(doc.title, "Real");
        assert_eq!(doc.body, "```sh\n# comment\n```\n\nText.");
        assert_eq!(doc.body_line, 1);
    }

    #[test]
    fn handles_crlf_and_bom() {
        let text = "\u{feff}---\r\nkind: npc\r\ntags: [a, b]\r\n---\r\n# Warden Ilsa Marrow\r\n\r\nLine one.\r\n\r\nLine two.\r\n";
        let doc = parse_markdown("ilsa.md", text);
        assert_eq!(doc.kind.as_deref(), Some("npc"));
        assert_eq!(doc.tags, ["a", "b"]);
        assert_eq!(doc.title, "Warden Ilsa Marrow");
        assert_eq!(doc.body, "Line one.\n\nLine two.");
        assert_eq!(doc.body_line, 7);
        assert!(!doc.body.contains('\r'));
    }

    #[test]
    fn empty_input() {
        let doc = parse_markdown("empty.md", "");
        assert_eq!(doc.title, "empty");
        assert_eq!(doc.body, "");
    }
}
