//! Splitting a [`Document`] into retrievable [`Chunk`]s.
//!
//! Invariants: a chunk never crosses a heading (`#`, `##`, ... at any
//! level), is never empty, and holds at most [`MAX_CHUNK_CHARS`] characters
//! unless a single word is longer. Paragraphs are packed greedily; a
//! paragraph that is too long is split at sentence ends, and a sentence that
//! is too long at word boundaries. Every word of the body outside heading
//! lines ends up in exactly one chunk, in order. Lines inside fenced code
//! (```` ``` ```` or `~~~`) are never headings.
//!
//! Each chunk knows where it comes from: its heading trail (every enclosing
//! heading, outermost first; a heading closes every deeper or equal one
//! before it) and the 1-based inclusive range of source lines its text spans,
//! from the first line holding one of its words to the last.

use super::markdown::strip_closing_hashes;
use super::{Chunk, Document};

/// The largest chunk, in characters (not bytes).
pub const MAX_CHUNK_CHARS: usize = 900;

/// Split a document into chunks by headings, then by paragraphs.
pub fn chunk(doc: &Document) -> Vec<Chunk> {
    let mut sections: Vec<Section> = vec![Section::default()];
    // Open headings, outermost first: (level, text).
    let mut open: Vec<(usize, String)> = Vec::new();
    let mut paragraph: Vec<(usize, &str)> = Vec::new();
    let mut fence: Option<&str> = None;

    for (at, line) in doc.body.lines().enumerate() {
        if let Some(marker) = fence {
            paragraph.push((at, line));
            if line.trim_start().starts_with(marker) {
                fence = None;
            }
            continue;
        }
        let trimmed = line.trim_start();
        if let Some(marker) = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m)) {
            fence = Some(marker);
            paragraph.push((at, line));
            continue;
        }
        if let Some((level, heading)) = heading_of(line) {
            flush(&mut paragraph, &mut sections);
            while open
                .last()
                .is_some_and(|(open_level, _)| *open_level >= level)
            {
                open.pop();
            }
            // An empty heading closes deeper sections but names nothing.
            if !heading.is_empty() {
                open.push((level, heading.to_owned()));
            }
            sections.push(Section {
                trail: open.iter().map(|(_, text)| text.clone()).collect(),
                paragraphs: Vec::new(),
            });
        } else if line.trim().is_empty() {
            flush(&mut paragraph, &mut sections);
        } else {
            paragraph.push((at, line));
        }
    }
    flush(&mut paragraph, &mut sections);

    let mut chunks = Vec::new();
    for section in sections {
        let pieces = section.paragraphs.iter().flat_map(split_long);
        for piece in pack(pieces, "\n\n") {
            if piece.text.trim().is_empty() {
                continue;
            }
            chunks.push(Chunk {
                id: format!("{}#{}", doc.source, chunks.len()),
                source: doc.source.clone(),
                title: doc.title.clone(),
                kind: doc.kind.clone(),
                heading: section.trail.last().cloned(),
                trail: section.trail.clone(),
                lines: (doc.body_line + piece.first, doc.body_line + piece.last),
                text: piece.text,
            });
        }
    }
    chunks
}

#[derive(Default)]
struct Section {
    trail: Vec<String>,
    paragraphs: Vec<Paragraph>,
}

/// Consecutive body lines joined with `\n`.
struct Paragraph {
    text: String,
    /// Body line (0-based) of the first line of `text`.
    first: usize,
}

impl Paragraph {
    /// Byte offsets of every `\n` in `text`.
    fn newlines(&self) -> Vec<usize> {
        self.text
            .bytes()
            .enumerate()
            .filter_map(|(at, byte)| (byte == b'\n').then_some(at))
            .collect()
    }
}

/// Text with the body lines (0-based, inclusive) it spans.
struct Piece {
    text: String,
    first: usize,
    last: usize,
}

/// Maps byte ranges of a paragraph to pieces with body line numbers.
struct Lines<'a> {
    paragraph: &'a Paragraph,
    newlines: Vec<usize>,
}

impl Lines<'_> {
    /// Body line of the byte at `offset`.
    fn line_of(&self, offset: usize) -> usize {
        self.paragraph.first + self.newlines.partition_point(|&nl| nl < offset)
    }

    /// The non-empty, trimmed range `start..end` of the paragraph as a piece.
    fn piece(&self, start: usize, end: usize) -> Piece {
        Piece {
            text: self.paragraph.text[start..end].to_owned(),
            first: self.line_of(start),
            last: self.line_of(end.saturating_sub(1).max(start)),
        }
    }
}

fn flush(paragraph: &mut Vec<(usize, &str)>, sections: &mut [Section]) {
    let Some(&(first, _)) = paragraph.first() else {
        return;
    };
    let text = paragraph
        .iter()
        .map(|(_, line)| *line)
        .collect::<Vec<_>>()
        .join("\n");
    paragraph.clear();
    if text.trim().is_empty() {
        return;
    }
    if let Some(section) = sections.last_mut() {
        section.paragraphs.push(Paragraph { text, first });
    }
}

/// Whether [`chunk`] reads `line` as a heading or as a code fence marker.
pub(super) fn is_markup_line(line: &str) -> bool {
    let trimmed = line.trim_start();
    heading_of(line).is_some() || trimmed.starts_with("```") || trimmed.starts_with("~~~")
}

/// The level and text of an ATX heading (`## Sub` is level 2), if `line` is
/// one.
fn heading_of(line: &str) -> Option<(usize, &str)> {
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
    Some((hashes, strip_closing_hashes(after.trim())))
}

fn char_len(text: &str) -> usize {
    text.chars().count()
}

/// The byte range of `text` without surrounding whitespace, if any is left.
fn trimmed_range(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let slice = &text[start..end];
    let lead = slice.len() - slice.trim_start().len();
    let trimmed = slice.trim();
    (!trimmed.is_empty()).then(|| (start + lead, start + lead + trimmed.len()))
}

/// A paragraph as pieces of at most [`MAX_CHUNK_CHARS`] characters (unless a
/// single word is longer): whole if it fits, else packed sentences.
fn split_long(paragraph: &Paragraph) -> Vec<Piece> {
    let text = paragraph.text.as_str();
    let lines = Lines {
        paragraph,
        newlines: paragraph.newlines(),
    };
    let Some((start, end)) = trimmed_range(text, 0, text.len()) else {
        return Vec::new();
    };
    if char_len(&text[start..end]) <= MAX_CHUNK_CHARS {
        return vec![lines.piece(start, end)];
    }
    let pieces = sentences(text).into_iter().flat_map(|(start, end)| {
        if char_len(&text[start..end]) <= MAX_CHUNK_CHARS {
            vec![lines.piece(start, end)]
        } else {
            let words = words(&text[start..end])
                .into_iter()
                .map(|(word_start, word_end)| lines.piece(start + word_start, start + word_end));
            pack(words, " ")
        }
    });
    pack(pieces.collect::<Vec<_>>(), " ")
}

/// Byte ranges of the whitespace-separated words of `text`.
fn words(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (at, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(from)) => {
                out.push((from, at));
                start = None;
            }
            (false, None) => start = Some(at),
            _ => {}
        }
    }
    if let Some(from) = start {
        out.push((from, text.len()));
    }
    out
}

/// Splits text after `.`, `!` or `?` (plus any closing quotes, brackets or
/// emphasis markers) followed by whitespace. Returns the byte ranges of the
/// pieces, trimmed, never empty.
fn sentences(text: &str) -> Vec<(usize, usize)> {
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
                out.extend(trimmed_range(text, start, at));
                start = at;
            }
            _ => {}
        }
    }
    out.extend(trimmed_range(text, start, text.len()));
    out
}

/// Greedily joins pieces with `sep` into pieces of at most
/// [`MAX_CHUNK_CHARS`] characters; a piece longer than that stands alone.
fn pack(pieces: impl IntoIterator<Item = Piece>, sep: &str) -> Vec<Piece> {
    let sep_len = char_len(sep);
    let mut out = Vec::new();
    let mut current: Option<(Piece, usize)> = None;
    for piece in pieces {
        let piece_len = char_len(&piece.text);
        match current.as_mut() {
            Some((joined, joined_len)) if *joined_len + sep_len + piece_len <= MAX_CHUNK_CHARS => {
                joined.text.push_str(sep);
                joined.text.push_str(&piece.text);
                joined.last = piece.last;
                *joined_len += sep_len + piece_len;
            }
            _ => {
                if let Some((done, _)) = current.replace((piece, piece_len)) {
                    out.push(done);
                }
            }
        }
    }
    if let Some((done, _)) = current {
        out.push(done);
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
        let text = "He said \"Go.\" Then **left.** Done? yes 3.5 ok";
        let got: Vec<&str> = sentences(text)
            .into_iter()
            .map(|(start, end)| &text[start..end])
            .collect();
        assert_eq!(
            got,
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

    /// (trail, lines, first words of the text) of every chunk.
    fn located(chunks: &[Chunk]) -> Vec<(Vec<&str>, (usize, usize), String)> {
        chunks
            .iter()
            .map(|c| {
                let trail = c.trail.iter().map(String::as_str).collect();
                let start: String = c.text.chars().take(12).collect();
                (trail, c.lines, start)
            })
            .collect()
    }

    const NESTED: &str = "---\nkind: place\ntags: [moor]\n---\n# The Moor\n\n\
        Intro line one.\nIntro line two.\n\n\
        ## History\n\nOld times.\n\n\
        ### The Founding\n\nFounders came.\n\n\
        #### Details\n\n```sh\n# not a heading\n\n## nor this\n```\n\n\
        # Appendix\n\n\
        ## Notes\n\nNote text.\n\nMore notes.\n\n\
        ## \n\nUnder an empty heading.\n";

    fn nested_expected() -> Vec<(Vec<&'static str>, (usize, usize), String)> {
        vec![
            (vec![], (7, 8), "Intro line o".into()),
            (vec!["History"], (12, 12), "Old times.".into()),
            (
                vec!["History", "The Founding"],
                (16, 16),
                "Founders cam".into(),
            ),
            (
                vec!["History", "The Founding", "Details"],
                (20, 24),
                "```sh\n# not ".into(),
            ),
            (vec!["Appendix", "Notes"], (30, 32), "Note text.\n\n".into()),
            (vec!["Appendix"], (36, 36), "Under an emp".into()),
        ]
    }

    #[test]
    fn nested_headings_give_trails_and_exact_lines() {
        let doc = parse_markdown("moor.md", NESTED);
        assert_eq!(doc.body_line, 7);
        let chunks = chunk(&doc);
        assert_eq!(located(&chunks), nested_expected());
        // `heading` is the last element of the trail.
        for c in &chunks {
            assert_eq!(c.heading.as_ref(), c.trail.last(), "{c:?}");
        }
        assert_eq!(chunks[3].text, "```sh\n# not a heading\n\n## nor this\n```");
        assert_eq!(chunks[4].text, "Note text.\n\nMore notes.");
        // The line range points at the chunk's text in the source.
        let source: Vec<&str> = NESTED.lines().collect();
        for c in &chunks {
            let (first, last) = c.lines;
            let span = source[first - 1..last].join("\n");
            assert_eq!(span.trim(), c.text, "{c:?}");
        }
    }

    #[test]
    fn crlf_source_gives_the_same_lines() {
        let crlf = NESTED.replace('\n', "\r\n");
        let chunks = chunk(&parse_markdown("moor.md", &crlf));
        assert_eq!(located(&chunks), nested_expected());
        assert!(chunks.iter().all(|c| !c.text.contains('\r')));
    }

    /// A 99-character sentence.
    fn line_sentence(n: usize) -> String {
        format!("S{n:02} {}.", "a".repeat(94))
    }

    #[test]
    fn split_paragraphs_keep_exact_lines() {
        // Twenty 99-character sentences, one per line: nine fit in a chunk
        // (9 * 99 + 8 = 899), so the paragraph splits 9 + 9 + 2.
        let long: Vec<String> = (0..20).map(line_sentence).collect();
        // 25 lines of nine 9-letter words without a sentence end: 90 words
        // fill a chunk (90 * 9 + 89 = 899), so 10 + 10 + 5 lines.
        let line = ["abcdefghi"; 9].join(" ");
        let endless = vec![line.as_str(); 25].join("\n");
        let text = format!(
            "---\nkind: place\n---\n# Long\n\n## Sentences\n\n{}\n\n## Words\n\n{endless}\n",
            long.join("\n")
        );
        let doc = parse_markdown("long.md", &text);
        assert_eq!(doc.body_line, 6);
        let chunks = chunk(&doc);
        let got: Vec<_> = chunks
            .iter()
            .map(|c| (c.heading.as_deref(), c.lines))
            .collect();
        assert_eq!(
            got,
            [
                (Some("Sentences"), (8, 16)),
                (Some("Sentences"), (17, 25)),
                (Some("Sentences"), (26, 27)),
                (Some("Words"), (31, 40)),
                (Some("Words"), (41, 50)),
                (Some("Words"), (51, 55)),
            ]
        );
        assert!(chunks[0].text.starts_with("S00 ") && chunks[0].text.ends_with('.'));
        assert!(chunks[1].text.starts_with("S09 ") && chunks[2].text.starts_with("S18 "));
        assert_eq!(chunks[3].text, vec!["abcdefghi"; 90].join(" "));
        assert!(chunks.iter().all(|c| char_len(&c.text) <= MAX_CHUNK_CHARS));
        // Each range starts at the line holding the chunk's first word and
        // ends at the line holding its last.
        let source: Vec<&str> = text.lines().collect();
        for c in &chunks {
            let first_word = c.text.split_whitespace().next().unwrap_or_default();
            let last_word = c.text.split_whitespace().last().unwrap_or_default();
            assert!(source[c.lines.0 - 1].starts_with(first_word), "{c:?}");
            assert!(source[c.lines.1 - 1].ends_with(last_word), "{c:?}");
        }
    }

    #[test]
    fn empty_document_has_no_chunks() {
        assert!(chunk(&parse_markdown("e.md", "# E\n\n## Only a heading\n")).is_empty());
    }
}
