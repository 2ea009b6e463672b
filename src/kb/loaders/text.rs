//! Plain text (`.txt`, `.rst`, `.adoc`, `.org`, ...) as a [`Document`].
//!
//! Invariants: the title is the first non-blank line when it is short
//! ([`MAX_TITLE_CHARS`]), else the file stem; the body is the whole text
//! (the title line included: it is content too) without leading and trailing
//! blank lines, with every line that would read as a markdown heading or code
//! fence escaped, so a text document has no headings. Line numbers are the
//! file's.

use super::super::markdown::fallback_title;
use super::{Document, document_from_lines, escape_markup, split_lines};

/// Longest first line taken as the title, in characters.
pub(super) const MAX_TITLE_CHARS: usize = 80;

/// Parse plain text (already decoded, without BOM).
pub(super) fn parse_text(source: &str, text: &str) -> Document {
    let lines: Vec<String> = split_lines(text).into_iter().map(escape_markup).collect();
    let title = split_lines(text)
        .into_iter()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .filter(|line| line.chars().count() <= MAX_TITLE_CHARS)
        .map_or_else(|| fallback_title(source), str::to_owned);
    document_from_lines(source, title, &lines, None)
}

#[cfg(test)]
mod tests {
    use super::super::super::chunk;
    use super::*;

    #[test]
    fn first_short_line_is_the_title_and_body_is_everything() {
        let text = "\n\nThe Lantern Guild\r\n\r\n# members only\r\nThey trade oil.\r\n```\r\n\r\nSecond paragraph.\r\n\r\n";
        let doc = parse_text("/kb/guild.txt", text);
        assert_eq!(doc.title, "The Lantern Guild");
        assert_eq!(doc.body_line, 3);
        assert_eq!(
            doc.body,
            "The Lantern Guild\n\n\\# members only\nThey trade oil.\n\\```\n\nSecond paragraph."
        );
        let chunks = chunk(&doc);
        let got: Vec<_> = chunks
            .iter()
            .map(|c| (c.trail.clone(), c.lines, c.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [(
                Vec::<String>::new(),
                (3, 9),
                "The Lantern Guild\n\n\\# members only\nThey trade oil.\n\\```\n\nSecond paragraph."
            )]
        );
    }

    #[test]
    fn long_first_line_falls_back_to_the_stem() {
        let long = "x".repeat(MAX_TITLE_CHARS + 1);
        let doc = parse_text("/kb/notes.v2.txt", &format!("{long}\nmore"));
        assert_eq!(doc.title, "notes.v2");
        let exact = "y".repeat(MAX_TITLE_CHARS);
        assert_eq!(parse_text("a.txt", &exact).title, exact);
    }

    #[test]
    fn empty_text_is_an_empty_document() {
        let doc = parse_text("/kb/empty.txt", "");
        assert_eq!((doc.title.as_str(), doc.body.as_str()), ("empty", ""));
        assert!(chunk(&doc).is_empty());
        let doc = parse_text("/kb/blank.txt", " \n\t\n");
        assert_eq!(doc.body, "");
    }
}
