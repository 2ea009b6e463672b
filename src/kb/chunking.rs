//! Splitting a [`Document`] into retrievable [`Chunk`]s.
//!
//! Invariants: a chunk never crosses a heading (`##`, `###`, ... at any
//! level), is never empty, and holds at most [`MAX_CHUNK_CHARS`] characters
//! unless a single word is longer. Paragraphs are packed greedily; a
//! paragraph that is too long is split at sentence ends, and a sentence that
//! is too long at word boundaries. Every word of the body outside heading
//! lines ends up in exactly one chunk, in order.

use super::markdown::strip_closing_hashes;
use super::{Chunk, Document};

/// The largest chunk, in characters (not bytes).
pub const MAX_CHUNK_CHARS: usize = 900;

/// Split a document into chunks by headings, then by paragraphs.
pub fn chunk(doc: &Document) -> Vec<Chunk> {
    let mut sections: Vec<Section> = vec![Section::default()];
    let mut paragraph: Vec<&str> = Vec::new();
    let mut fence: Option<&str> = None;

    for line in doc.body.lines() {
        if let Some(marker) = fence {
            paragraph.push(line);
            if line.trim_start().starts_with(marker) {
                fence = None;
            }
            continue;
        }
        let trimmed = line.trim_start();
        if let Some(marker) = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m)) {
            fence = Some(marker);
            paragraph.push(line);
            continue;
        }
        if let Some(heading) = heading_of(line) {
            flush(&mut paragraph, &mut sections);
            sections.push(Section {
                heading: (!heading.is_empty()).then(|| heading.to_owned()),
                paragraphs: Vec::new(),
            });
        } else if line.trim().is_empty() {
            flush(&mut paragraph, &mut sections);
        } else {
            paragraph.push(line);
        }
    }
    flush(&mut paragraph, &mut sections);

    let mut chunks = Vec::new();
    for section in sections {
        let pieces = section
            .paragraphs
            .iter()
            .flat_map(|paragraph| split_long(paragraph));
        for text in pack(pieces, "\n\n") {
            if text.trim().is_empty() {
                continue;
            }
            chunks.push(Chunk {
                id: format!("{}#{}", doc.source, chunks.len()),
                source: doc.source.clone(),
                title: doc.title.clone(),
                kind: doc.kind.clone(),
                heading: section.heading.clone(),
                text,
                trail: section.heading.clone().into_iter().collect(),
                lines: (0, 0),
            });
        }
    }
    chunks
}

#[derive(Default)]
struct Section {
    heading: Option<String>,
    paragraphs: Vec<String>,
}

fn flush(paragraph: &mut Vec<&str>, sections: &mut [Section]) {
    let text = paragraph.join("\n");
    paragraph.clear();
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    if let Some(section) = sections.last_mut() {
        section.paragraphs.push(text.to_owned());
    }
}

/// The text of an ATX heading of any level (`## Sub`), if `line` is one.
fn heading_of(line: &str) -> Option<&str> {
    let rest = line.trim_start_matches(' ');
    if line.len() - rest.len() > 3 {
        return None;
    }
    let hashes = rest.len() - rest.trim_start_matches('#').len();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let after = &rest[hashes..];
    if !(after.is_empty() || after.starts_with([' ', '\t'])) {
        return None;
    }
    Some(strip_closing_hashes(after.trim()))
}

fn char_len(text: &str) -> usize {
    text.chars().count()
}

/// A paragraph as pieces of at most [`MAX_CHUNK_CHARS`] characters (unless a
/// single word is longer): whole if it fits, else packed sentences.
fn split_long(paragraph: &str) -> Vec<String> {
    if char_len(paragraph) <= MAX_CHUNK_CHARS {
        return vec![paragraph.to_owned()];
    }
    let pieces = sentences(paragraph).into_iter().flat_map(|sentence| {
        if char_len(sentence) <= MAX_CHUNK_CHARS {
            vec![sentence.to_owned()]
        } else {
            pack(sentence.split_whitespace().map(str::to_owned), " ")
        }
    });
    pack(pieces, " ")
}

/// Splits text after `.`, `!` or `?` (plus any closing quotes, brackets or
/// emphasis markers) followed by whitespace. Pieces are trimmed, never empty.
fn sentences(text: &str) -> Vec<&str> {
    const CLOSERS: &[char] = &['"', '\'', ')', ']', '”', '’', '*', '_'];
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if !matches!(c, '.' | '!' | '?') {
            continue;
        }
        while let Some(&(_, next)) = chars.peek() {
            if CLOSERS.contains(&next) {
                chars.next();
            } else {
                break;
            }
        }
        match chars.peek() {
            Some(&(at, next)) if next.is_whitespace() => {
                let sentence = text[start..at].trim();
                if !sentence.is_empty() {
                    out.push(sentence);
                }
                start = at;
            }
            _ => {}
        }
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// Greedily joins pieces with `sep` into strings of at most
/// [`MAX_CHUNK_CHARS`] characters; a piece longer than that stands alone.
fn pack(pieces: impl IntoIterator<Item = String>, sep: &str) -> Vec<String> {
    let sep_len = char_len(sep);
    let mut out = Vec::new();
    let mut current = String::new();
    let mut current_len = 0;
    for piece in pieces {
        let piece_len = char_len(&piece);
        if current.is_empty() {
            current = piece;
            current_len = piece_len;
        } else if current_len + sep_len + piece_len <= MAX_CHUNK_CHARS {
            current.push_str(sep);
            current.push_str(&piece);
            current_len += sep_len + piece_len;
        } else {
            out.push(std::mem::replace(&mut current, piece));
            current_len = piece_len;
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::parse_markdown;
    use super::*;

    fn words(text: &str) -> Vec<&str> {
        text.split_whitespace().collect()
    }

    fn body_words_without_headings(body: &str) -> Vec<&str> {
        body.lines()
            .filter(|line| heading_of(line).is_none())
            .flat_map(str::split_whitespace)
            .collect()
    }

    fn sentence(n: usize) -> String {
        format!(
            "Sentence number {n} tells of **Warden Ilsa Marrow** walking the moor at dusk, \
             lantern raised against the fog."
        )
    }

    fn long_doc() -> Document {
        let long_paragraph: Vec<String> = (0..20).map(sentence).collect();
        let long_paragraph = long_paragraph.join(" ");
        let short: Vec<String> = (0..6)
            .map(|i| format!("Short paragraph {i} about the waystone."))
            .collect();
        let text = format!(
            "---\nkind: place\n---\n# The Moor\n\nIntro paragraph.\n\n## Roads\n\n{}\n\n{long_paragraph}\n\n\
             ### Fords\n\nThe fords are shallow.\n\n## Empty\n\n## Weather\n\nFog. Rain!\n",
            short.join("\n\n")
        );
        parse_markdown("moor.md", &text)
    }

    #[test]
    fn headings_split_chunks() {
        let doc = parse_markdown(
            "a.md",
            "# A\n\nIntro.\n\n## One\n\nFirst.\n\n### Two\n\nSecond.\n\n## Three ##\n\nThird.\n",
        );
        let chunks = chunk(&doc);
        let got: Vec<_> = chunks
            .iter()
            .map(|c| (c.id.as_str(), c.heading.as_deref(), c.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("a.md#0", None, "Intro."),
                ("a.md#1", Some("One"), "First."),
                ("a.md#2", Some("Two"), "Second."),
                ("a.md#3", Some("Three"), "Third."),
            ]
        );
        assert!(chunks.iter().all(|c| c.title == "A" && c.source == "a.md"));
    }

    #[test]
    fn long_paragraphs_are_split_and_sizes_bounded() {
        let doc = long_doc();
        let chunks = chunk(&doc);
        assert!(chunks.iter().all(|c| char_len(&c.text) <= MAX_CHUNK_CHARS));
        assert!(chunks.iter().all(|c| !c.text.trim().is_empty()));
        let roads: Vec<_> = chunks
            .iter()
            .filter(|c| c.heading.as_deref() == Some("Roads"))
            .collect();
        assert!(roads.len() >= 3, "{roads:#?}");
        // Sentences are kept whole.
        for c in &roads {
            assert!(c.text.ends_with('.'), "{:?}", c.text);
        }
        // The empty section yields no chunk; ids are consecutive.
        assert!(chunks.iter().all(|c| c.heading.as_deref() != Some("Empty")));
        for (n, c) in chunks.iter().enumerate() {
            assert_eq!(c.id, format!("moor.md#{n}"));
            assert_eq!(c.kind.as_deref(), Some("place"));
        }
    }

    #[test]
    fn text_is_preserved() {
        let doc = long_doc();
        let chunks = chunk(&doc);
        let chunk_words: Vec<&str> = chunks.iter().flat_map(|c| words(&c.text)).collect();
        assert_eq!(chunk_words, body_words_without_headings(&doc.body));
    }

    #[test]
    fn oversized_sentences_split_at_words() {
        let endless = vec!["word"; 400].join(" ");
        let doc = parse_markdown("w.md", &format!("# W\n\n{endless}"));
        let chunks = chunk(&doc);
        assert!(chunks.len() >= 2);
        assert!(chunks.iter().all(|c| char_len(&c.text) <= MAX_CHUNK_CHARS));
        let chunk_words: Vec<&str> = chunks.iter().flat_map(|c| words(&c.text)).collect();
        assert_eq!(chunk_words, words(&endless));
    }

    #[test]
    fn sentence_ends_include_closers() {
        assert_eq!(
            sentences("He said \"Go.\" Then **left.** Done? yes 3.5 ok"),
            ["He said \"Go.\"", "Then **left.**", "Done?", "yes 3.5 ok"]
        );
    }

    #[test]
    fn fenced_code_is_not_a_heading() {
        let doc = parse_markdown(
            "c.md",
            "# C\n\n```\n# not a heading\n\nstill code\n```\n\nAfter.",
        );
        let chunks = chunk(&doc);
        assert_eq!(chunks.len(), 1);
        assert!(chunks[0].text.contains("# not a heading"));
        assert!(chunks[0].heading.is_none());
    }

    #[test]
    fn embedded_lore_chunks_keep_invariants() {
        for doc in super::super::embedded_lore() {
            let chunks = chunk(&doc);
            assert!(!chunks.is_empty(), "{} has no chunks", doc.source);
            assert!(
                chunks.iter().all(|c| char_len(&c.text) <= MAX_CHUNK_CHARS),
                "{}",
                doc.source
            );
            let chunk_words: Vec<&str> = chunks.iter().flat_map(|c| words(&c.text)).collect();
            assert_eq!(
                chunk_words,
                body_words_without_headings(&doc.body),
                "{}",
                doc.source
            );
        }
    }

    #[test]
    fn empty_document_has_no_chunks() {
        assert!(chunk(&parse_markdown("e.md", "# E\n\n## Only a heading\n")).is_empty());
    }
}
