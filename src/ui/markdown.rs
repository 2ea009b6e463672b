//! Markdown (untrusted: model output, documents) -> ratatui `Text`. The input
//! is sanitised first, so nothing in it can reach the terminal as a control
//! sequence. Citations like `[1]` are highlighted so they read as references;
//! links show their URL after their text; code blocks keep their blank lines
//! and are indented in the code style.
//!
//! A streamed message is rendered incrementally by [`StreamedMarkdown`]: the
//! lines of its finished blocks are kept and only the open tail is parsed
//! and rendered again when a delta arrives, so the cost of a delta does not
//! grow with the length of the message.
//!
//! Invariants (checked by a property test over random split points):
//! - After any sequence of `update`s with growing prefixes of a text, the
//!   lines of a `StreamedMarkdown` equal `to_text` of that text.
//! - A block is kept ("committed") only when the next top-level block has
//!   begun after a blank line with a character that cannot continue any
//!   earlier block (a letter, `#` or `>`), so no later text can change how
//!   the kept blocks parse. A fenced code block or HTML block that is still
//!   open is a single block to the parser and is therefore never split.
//! - Link reference definitions (`[x]: url`) can change how text far before
//!   or after them parses: a message that holds `]:` is rendered whole on
//!   every update (correct, just not incremental).

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Paragraph, Wrap};

use super::theme::Theme;
use crate::sanitize::{sanitize, sanitize_into};

/// Render markdown into lines of styled text.
pub fn to_text(markdown: &str, theme: &Theme) -> Text<'static> {
    let clean = sanitize(markdown);
    let mut lines = render(&clean, theme, false).lines;
    while lines.last().is_some_and(|l| l.spans.is_empty()) {
        lines.pop();
    }
    Text::from(lines)
}

/// The lines of some blocks, and where a later render could start.
struct Rendered {
    lines: Vec<Line<'static>>,
    /// Points where the blocks before can be kept: (byte offset in the
    /// text rendered, lines rendered before it).
    cuts: Vec<(usize, usize)>,
}

/// Render sanitised markdown. `after_content`: lines come before these and
/// the last of them is not blank (so a first block is set apart by a blank
/// line exactly as it would be in one render of everything).
fn render(clean: &str, theme: &Theme, after_content: bool) -> Rendered {
    let mut r = Renderer {
        theme,
        lines: Vec::new(),
        current: Vec::new(),
        styles: vec![Style::default()],
        lists: Vec::new(),
        quote: 0,
        pending_prefix: None,
        after_content,
        links: Vec::new(),
        code: false,
    };
    let mut cuts = Vec::new();
    let mut depth = 0usize;
    // The parser splits text at brackets ("[", "1]"), so adjacent text
    // events are joined before citations are looked for.
    let mut text = String::new();
    for (event, range) in Parser::new_ext(clean, Options::ENABLE_STRIKETHROUGH).into_offset_iter() {
        match event {
            Event::Text(t) => text.push_str(&t),
            other => {
                if !text.is_empty() {
                    r.text(&std::mem::take(&mut text));
                }
                let top_level_start = depth == 0 && matches!(other, Event::Start(_));
                if top_level_start && r.current.is_empty() && is_cut(clean, range.start) {
                    cuts.push((range.start, r.lines.len()));
                }
                match &other {
                    Event::Start(_) => depth += 1,
                    Event::End(_) => depth = depth.saturating_sub(1),
                    _ => {}
                }
                r.event(other);
            }
        }
    }
    if !text.is_empty() {
        r.text(&text);
    }
    r.flush();
    Rendered {
        lines: r.lines,
        cuts,
    }
}

/// Whether a top-level block starting at `at` begins a line after a blank
/// line with a character no earlier block can take in: everything before
/// `at` then parses the same whatever follows.
fn is_cut(clean: &str, at: usize) -> bool {
    let Some(before) = clean.get(..at) else {
        return false;
    };
    let Some(before) = before.strip_suffix('\n') else {
        return false;
    };
    // The line before `at` is blank, and some text comes before it.
    let blank_line = before.rsplit('\n').next().unwrap_or("");
    if !blank_line.trim().is_empty() || before.trim().is_empty() {
        return false;
    }
    clean[at..]
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '#' || c == '>')
}

/// A message's markdown rendered as it streams in. `update` takes the
/// whole text so far (each call's text extends the last one's); `lines`
/// are what `to_text` would render for it.
#[derive(Debug, Default, Clone)]
pub struct StreamedMarkdown {
    /// Bytes of the raw text sanitised into `clean`.
    raw_len: usize,
    /// The last bytes of the raw text sanitised, to notice a text that did
    /// not grow from the last one (then everything is rendered again).
    raw_end: Vec<u8>,
    /// The sanitised text, up to where the sanitiser was last at rest.
    clean: String,
    /// Bytes of `clean` whose blocks are kept in `kept`.
    kept_at: usize,
    /// The lines of the kept blocks (blank lines at the end included).
    kept: Vec<Line<'static>>,
    /// How many blank lines end `kept`.
    kept_blank_tail: usize,
    /// The lines of the blocks after `kept_at` (its blank lines at the end
    /// trimmed).
    open: Vec<Line<'static>>,
    /// The text holds a link reference definition: no blocks are kept.
    whole: bool,
    /// Bumped whenever `kept` loses lines (a rebuild); lines are only ever
    /// appended to `kept` otherwise.
    generation: u64,
    /// Rows of `kept[..kept_counted]` at the width in `rows_at`.
    kept_rows: usize,
    kept_counted: usize,
    rows_at: (u64, u16),
}

/// Rows of `lines` wrapped at `width` without trimming: each line wraps on
/// its own, so rows of a list are the sum of rows of its parts.
///
/// A line no wider than `width` takes one row; only the others go through
/// ratatui's word wrapper (about 100 instructions a character: most of the
/// chat's first frame was counting headers and source lines that fit).
pub fn wrapped_rows(lines: &[Line<'static>], width: u16) -> usize {
    if lines.is_empty() {
        return 0;
    }
    if width == 0 {
        return paragraph_rows(lines.iter().map(borrowed).collect(), width);
    }
    let (mut counted, mut wrapping) = (0, Vec::new());
    for line in lines {
        if line.width() <= usize::from(width) {
            counted += 1;
        } else if let Some(rows) = ascii_rows(line, width) {
            counted += rows;
        } else {
            wrapping.push(borrowed(line));
        }
    }
    if wrapping.is_empty() {
        return counted;
    }
    counted + paragraph_rows(wrapping, width)
}

/// The rows ratatui's word wrapper (`WordWrapper`, without trimming) makes
/// of `line` at `width` (at least 1), when the line is printable ASCII:
/// each byte is then a grapheme one cell wide, a space the only
/// whitespace, and the wrapper's steps reduce to counting. `None` for any
/// other line. The steps are the wrapper's own, in its order (a property
/// test checks the counts against it).
fn ascii_rows(line: &Line<'_>, width: u16) -> Option<usize> {
    let printable = |b: &u8| (0x20..0x7f).contains(b);
    if !line
        .spans
        .iter()
        .all(|span| span.content.bytes().all(|b| printable(&b)))
    {
        return None;
    }
    let max = usize::from(width);
    let mut rows = 0;
    // The wrapper's pending line, word and whitespace, as widths: every
    // grapheme is one cell, so a width is also a count.
    let (mut line_width, mut word, mut space) = (0, 0, 0);
    let mut after_word = false;
    for b in line.spans.iter().flat_map(|span| span.content.bytes()) {
        let is_space = b == b' ';
        let word_found = after_word && is_space;
        let overflow = line_width == 0 && word + space + 1 > max;
        if word_found || overflow {
            line_width += space + word;
            (space, word) = (0, 0);
        }
        let line_full = line_width >= max;
        let word_overflow = line_width + space + word >= max;
        if line_full || word_overflow {
            let remaining = max.saturating_sub(line_width);
            rows += 1;
            line_width = 0;
            // The whitespace that fits the end of the row goes with it.
            space -= space.min(remaining);
            if is_space && space == 0 {
                continue;
            }
        }
        if is_space {
            space += 1;
        } else {
            word += 1;
        }
        after_word = !is_space;
    }
    if line_width + space + word > 0 {
        rows += 1;
    }
    Some(rows.max(1))
}

/// Rows of `lines` wrapped by ratatui at `width`, without trimming.
fn paragraph_rows(lines: Vec<Line<'_>>, width: u16) -> usize {
    Paragraph::new(Text::from(lines))
        .wrap(Wrap { trim: false })
        .line_count(width)
}

/// How many raw bytes are kept to check that a text grew from the last.
const RAW_CHECK: usize = 32;

impl StreamedMarkdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Render `text`, which should extend the text of the last update;
    /// only its unfinished tail is parsed again. A text that does not
    /// extend the last is rendered from scratch.
    pub fn update(&mut self, text: &str, theme: &Theme) {
        let grew = text.len() >= self.raw_len
            && text.is_char_boundary(self.raw_len)
            && text.as_bytes()[..self.raw_len].ends_with(&self.raw_end);
        if !grew {
            let generation = self.generation + 1;
            *self = Self {
                generation,
                rows_at: (u64::MAX, 0),
                ..Self::default()
            };
        }
        // Sanitise what is new, up to where the sanitiser rests; the rest
        // (an escape sequence cut by the delta) waits for the next update.
        let pending = &text[self.raw_len..];
        let (used, kept) = sanitize_into(pending, &mut self.clean);
        let unsettled = self.clean.split_off(kept);
        self.raw_len += used;
        let check_from = self.raw_len.saturating_sub(RAW_CHECK);
        self.raw_end.clear();
        self.raw_end
            .extend_from_slice(&text.as_bytes()[check_from..self.raw_len]);
        if self.clean[self.kept_at..].contains("]:") || unsettled.contains("]:") {
            self.whole = true;
        }
        if self.whole && self.kept_at > 0 {
            self.kept_at = 0;
            self.kept.clear();
            self.kept_blank_tail = 0;
            self.generation += 1;
        }
        let after_content = self.kept.last().is_some_and(|l| !l.spans.is_empty());
        let open: std::borrow::Cow<'_, str> = if unsettled.is_empty() {
            std::borrow::Cow::Borrowed(&self.clean[self.kept_at..])
        } else {
            std::borrow::Cow::Owned(format!("{}{unsettled}", &self.clean[self.kept_at..]))
        };
        let mut rendered = render(&open, theme, after_content);
        // Keep the blocks before the last cut inside the settled text; the
        // open block after it is rendered again next time.
        let settled = self.clean.len() - self.kept_at;
        if !self.whole
            && let Some(&(at, lines)) = rendered.cuts.iter().rev().find(|(at, _)| *at <= settled)
        {
            let rest = rendered.lines.split_off(lines);
            let moved = std::mem::replace(&mut rendered.lines, rest);
            for line in moved {
                if line.spans.is_empty() {
                    self.kept_blank_tail += 1;
                } else {
                    self.kept_blank_tail = 0;
                }
                self.kept.push(line);
            }
            self.kept_at += at;
        }
        while rendered.lines.last().is_some_and(|l| l.spans.is_empty()) {
            rendered.lines.pop();
        }
        self.open = rendered.lines;
    }

    /// The rendered lines: the kept ones, then the open block's; blank lines
    /// at the very end are left out, as `to_text` does.
    pub fn lines(&self) -> impl Iterator<Item = &Line<'static>> {
        let kept = if self.open.is_empty() {
            &self.kept[..self.kept.len() - self.kept_blank_tail]
        } else {
            &self.kept[..]
        };
        kept.iter().chain(self.open.iter())
    }

    /// How many rows `lines` take wrapped at `width` (as a paragraph with
    /// `Wrap { trim: false }` wraps them). The kept lines' rows are counted
    /// once per width; only the open block's are counted each time.
    pub fn rows(&mut self, width: u16) -> usize {
        if self.rows_at != (self.generation, width) {
            self.rows_at = (self.generation, width);
            self.kept_rows = 0;
            self.kept_counted = 0;
        }
        self.kept_rows += wrapped_rows(&self.kept[self.kept_counted..], width);
        self.kept_counted = self.kept.len();
        if self.open.is_empty() {
            // Blank lines take a row each.
            self.kept_rows - self.kept_blank_tail
        } else {
            self.kept_rows + wrapped_rows(&self.open, width)
        }
    }

    /// Bytes of sanitised text whose lines are kept (for tests and figures).
    pub fn kept_bytes(&self) -> usize {
        self.kept_at
    }
}

struct Renderer<'t> {
    theme: &'t Theme,
    lines: Vec<Line<'static>>,
    current: Vec<Span<'static>>,
    styles: Vec<Style>,
    /// Stack of lists: `Some(n)` numbered from n, `None` bulleted.
    lists: Vec<Option<u64>>,
    quote: usize,
    /// Bullet or number waiting for the item's first text.
    pending_prefix: Option<String>,
    /// Lines were rendered before these and the last was not blank.
    after_content: bool,
    /// The URLs of the links being rendered, innermost last.
    links: Vec<String>,
    /// Inside a code block.
    code: bool,
}

impl Renderer<'_> {
    fn style(&self) -> Style {
        self.styles.last().copied().unwrap_or_default()
    }

    fn push_style(&mut self, add: Style) {
        let style = self.style().patch(add);
        self.styles.push(style);
    }

    fn pop_style(&mut self) {
        if self.styles.len() > 1 {
            self.styles.pop();
        }
    }

    fn start_line(&mut self) {
        if !self.current.is_empty() {
            return;
        }
        if self.quote > 0 {
            self.current
                .push(Span::styled("│ ".repeat(self.quote), self.theme.quote_bar));
        }
        if let Some(prefix) = self.pending_prefix.take() {
            let indent = "  ".repeat(self.lists.len().saturating_sub(1));
            self.current.push(Span::styled(
                format!("{indent}{prefix}"),
                self.theme.list_marker,
            ));
        } else if !self.lists.is_empty() {
            self.current.push(Span::raw("  ".repeat(self.lists.len())));
        }
    }

    fn flush(&mut self) {
        if !self.current.is_empty() {
            self.lines
                .push(Line::from(std::mem::take(&mut self.current)));
        }
    }

    fn blank(&mut self) {
        self.flush();
        let last_has_text = match self.lines.last() {
            Some(line) => !line.spans.is_empty(),
            None => self.after_content,
        };
        if last_has_text {
            self.lines.push(Line::default());
        }
    }

    fn text(&mut self, text: &str) {
        let style = self.style();
        if self.code {
            // Every line of a code block, blank ones too, indented; the
            // newline that ends the block makes no line.
            let mut parts = text.split('\n').peekable();
            while let Some(part) = parts.next() {
                if parts.peek().is_none() && part.is_empty() {
                    break;
                }
                self.start_line();
                self.current.push(Span::styled(format!("  {part}"), style));
                if parts.peek().is_some() {
                    self.lines
                        .push(Line::from(std::mem::take(&mut self.current)));
                }
            }
            return;
        }
        for (i, part) in text.split('\n').enumerate() {
            if i > 0 {
                self.flush();
            }
            if part.is_empty() {
                continue;
            }
            self.start_line();
            push_with_citations(&mut self.current, part, style, self.theme.citation);
        }
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => match tag {
                Tag::Heading { level, .. } => {
                    self.blank();
                    let style = match level {
                        HeadingLevel::H1 => self.theme.h1,
                        HeadingLevel::H2 => self.theme.h2,
                        _ => self.theme.h3,
                    };
                    self.push_style(style);
                }
                Tag::Paragraph if self.pending_prefix.is_none() && self.lists.is_empty() => {
                    self.blank();
                }
                Tag::BlockQuote(_) => {
                    self.blank();
                    self.quote += 1;
                    self.push_style(self.theme.quote);
                }
                Tag::List(start) => {
                    if self.lists.is_empty() {
                        self.blank();
                    } else {
                        self.flush();
                    }
                    self.lists.push(start);
                }
                Tag::Item => {
                    self.flush();
                    let prefix = match self.lists.last_mut() {
                        Some(Some(n)) => {
                            let p = format!("{n}. ");
                            *n += 1;
                            p
                        }
                        _ => "• ".to_string(),
                    };
                    self.pending_prefix = Some(prefix);
                }
                Tag::Emphasis => self.push_style(Style::new().add_modifier(Modifier::ITALIC)),
                Tag::Strong => self.push_style(Style::new().add_modifier(Modifier::BOLD)),
                Tag::Strikethrough => {
                    self.push_style(Style::new().add_modifier(Modifier::CROSSED_OUT))
                }
                Tag::CodeBlock(_) => {
                    self.blank();
                    self.push_style(self.theme.code);
                    self.code = true;
                }
                Tag::Link { dest_url, .. } => {
                    self.links.push(dest_url.to_string());
                    self.push_style(self.theme.link);
                }
                _ => {}
            },
            Event::End(tag) => match tag {
                TagEnd::Heading(_) => {
                    self.pop_style();
                    self.flush();
                }
                TagEnd::Paragraph => self.flush(),
                TagEnd::BlockQuote(_) => {
                    self.flush();
                    self.quote = self.quote.saturating_sub(1);
                    self.pop_style();
                }
                TagEnd::List(_) => {
                    self.flush();
                    self.lists.pop();
                }
                TagEnd::Item => {
                    if self.pending_prefix.is_some() {
                        self.start_line();
                    }
                    self.flush();
                }
                TagEnd::Emphasis | TagEnd::Strong | TagEnd::Strikethrough => self.pop_style(),
                TagEnd::Link => {
                    self.pop_style();
                    let url = self.links.pop().unwrap_or_default();
                    // The URL after the text, unless the text is the URL
                    // (an autolink) or there is none.
                    let shown: String = self.current.iter().map(|s| s.content.as_ref()).collect();
                    if !url.is_empty() && !shown.ends_with(url.as_str()) {
                        self.start_line();
                        self.current
                            .push(Span::styled(format!(" ({url})"), self.theme.dim));
                    }
                }
                TagEnd::CodeBlock => {
                    self.flush();
                    self.pop_style();
                    self.code = false;
                }
                _ => {}
            },
            Event::Text(text) => self.text(&text),
            Event::Code(code) => {
                self.start_line();
                self.current
                    .push(Span::styled(code.to_string(), self.theme.code));
            }
            Event::SoftBreak => self.text(" "),
            Event::HardBreak => self.flush(),
            Event::Rule => {
                self.blank();
                self.lines
                    .push(Line::styled("─".repeat(24), self.theme.dim));
            }
            Event::Html(html) | Event::InlineHtml(html) => self.text(&html),
            _ => {}
        }
    }
}

/// Split `text` so that `[n]` citations get their own style.
fn push_with_citations(out: &mut Vec<Span<'static>>, text: &str, style: Style, citation: Style) {
    let mut rest = text;
    while let Some(start) = rest.find('[') {
        let after = &rest[start + 1..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 && after[digits..].starts_with(']') {
            if start > 0 {
                out.push(Span::styled(rest[..start].to_string(), style));
            }
            let end = start + 1 + digits + 1;
            out.push(Span::styled(
                rest[start..end].to_string(),
                style.patch(citation),
            ));
            rest = &rest[end..];
        } else {
            out.push(Span::styled(rest[..=start].to_string(), style));
            rest = &rest[start + 1..];
        }
    }
    if !rest.is_empty() {
        out.push(Span::styled(rest.to_string(), style));
    }
}

/// A line that borrows its text from `line`: drawing or measuring cached
/// lines copies no strings.
pub fn borrowed<'a>(line: &'a Line<'static>) -> Line<'a> {
    Line {
        style: line.style,
        alignment: line.alignment,
        spans: line
            .spans
            .iter()
            .map(|s| Span::styled(s.content.as_ref(), s.style))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Counting the lines that fit as one row each changes nothing:
        /// the same rows as ratatui's wrapper gives the whole text.
        #[test]
        fn wrapped_rows_are_ratatuis(
            lines in proptest::collection::vec(
                proptest::collection::vec("[a-z ]{0,12}|[界é ]{0,6}|☀\u{fe0f}|\u{301}| {1,3}", 0..6),
                0..8,
            ),
            width in 0u16..30,
        ) {
            let lines: Vec<Line<'static>> = lines
                .into_iter()
                .map(|spans| Line::from(spans.into_iter().map(Span::raw).collect::<Vec<_>>()))
                .collect();
            let whole = if lines.is_empty() {
                0
            } else {
                paragraph_rows(lines.iter().map(borrowed).collect(), width)
            };
            prop_assert_eq!(wrapped_rows(&lines, width), whole);
        }

        /// Plain text, as most replies are: counted without the wrapper,
        /// the same rows as the wrapper makes, line by line.
        #[test]
        fn ascii_rows_are_ratatuis(
            spans in proptest::collection::vec("[a-z]{0,14}| {1,4}|[a-z.,]{1,3} ", 0..12),
            width in 1u16..24,
        ) {
            let line = Line::from(spans.into_iter().map(Span::raw).collect::<Vec<_>>());
            let theirs = paragraph_rows(vec![line.clone()], width);
            prop_assert_eq!(ascii_rows(&line, width), Some(theirs));
        }
    }

    #[test]
    fn ascii_rows_leave_other_text_to_the_wrapper() {
        assert_eq!(ascii_rows(&Line::from("界 a"), 2), None);
        assert_eq!(ascii_rows(&Line::from("tab\there"), 2), None);
        assert_eq!(ascii_rows(&Line::from(""), 5), Some(1));
    }

    fn plain(text: &Text<'_>) -> Vec<String> {
        text.lines
            .iter()
            .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
            .collect()
    }

    #[test]
    fn renders_headings_lists_quotes_and_citations() {
        let theme = Theme::plain();
        let md = "# Title\n\n*italic* line with [1] and [x]\n\n## Encounters\n\n1. **One** -- a\n2. Two\n\n- dot\n\n> From the lore: quote [2]\n";
        let text = to_text(md, &theme);
        assert_eq!(
            plain(&text),
            vec![
                "Title",
                "",
                "italic line with [1] and [x]",
                "",
                "Encounters",
                "",
                "1. One -- a",
                "2. Two",
                "",
                "• dot",
                "",
                "│ From the lore: quote [2]",
            ]
        );
        let cite = text.lines[2]
            .spans
            .iter()
            .find(|s| s.content == "[1]")
            .expect("citation span");
        assert_eq!(cite.style, theme.citation);
    }

    #[test]
    fn links_show_their_url_and_code_blocks_keep_blank_lines() {
        let theme = Theme::plain();
        let md = "See [the map](https://example.org/map) and <https://x.org>.\n\n```rust\nfn a() {}\n\nfn b() {}\n```\n";
        assert_eq!(
            plain(&to_text(md, &theme)),
            vec![
                "See the map (https://example.org/map) and https://x.org.",
                "",
                "  fn a() {}",
                "  ",
                "  fn b() {}",
            ]
        );
    }

    /// Markdown an answer is made of: every block kind, blank lines inside
    /// code, loose and nested lists, quotes, links, escapes, CRLF, a
    /// reference definition.
    const PIECES: &[&str] = &[
        "# Heading one\n\n",
        "## Second *level*\n",
        "Setext\n===\n\n",
        "A paragraph with **bold**, _italic_, `code` and a [link](http://e.org/a) [1].\n",
        "continued on the next line\n\n",
        "- item one\n- item two\n  - nested\n\n",
        "1. first\n\n2. second, loose\n\n",
        "3) third\n",
        "> a quote [2]\n> more\n\n",
        "```\ncode line\n\nafter a blank\n",
        "```\n\n",
        "~~~python\nx = 1\n~~~\n",
        "    indented code\n\n    still code\n\n",
        "---\n\n",
        "Plain words then\n\n",
        "Tail text",
        "<!-- a comment\n\nstill comment -->\n\n",
        "\u{1b}[31mred\u{1b}[0m and \u{1b}]0;title\u{7} gone\r\n\r\n",
        "  * star item\n\n",
        "\n",
        "Wörds 龍 ok\n\n",
    ];

    /// Render `text` delta by delta, cut at `cuts` (byte positions, moved to
    /// char boundaries), checking every step against a whole render.
    fn streamed_equals_whole(text: &str, cuts: &[usize]) -> Result<(), String> {
        let theme = Theme::plain();
        let mut streamed = StreamedMarkdown::new();
        let mut points: Vec<usize> = cuts
            .iter()
            .map(|c| {
                let mut c = c % (text.len() + 1);
                while !text.is_char_boundary(c) {
                    c += 1;
                }
                c
            })
            .collect();
        points.push(text.len());
        points.sort_unstable();
        for end in points {
            streamed.update(&text[..end], &theme);
            let whole = to_text(&text[..end], &theme).lines;
            let got: Vec<Line<'static>> = streamed.lines().cloned().collect();
            if got != whole {
                return Err(format!(
                    "at {end} of {text:?}:\nstreamed {:?}\nwhole    {:?}",
                    plain(&Text::from(got)),
                    plain(&Text::from(whole))
                ));
            }
            for width in [13, 40] {
                let rows = streamed.rows(width);
                if rows != wrapped_rows(&whole, width) {
                    return Err(format!("rows at {end} width {width} of {text:?}"));
                }
            }
        }
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn streaming_in_random_deltas_renders_what_a_whole_render_does(
            picks in proptest::collection::vec(0..PIECES.len() - 1, 1..24),
            cuts in proptest::collection::vec(0usize..4_000, 0..40),
        ) {
            // The reference definition is left out here (tested below).
            let text: String = picks.iter().map(|i| PIECES[*i]).collect();
            if let Err(e) = streamed_equals_whole(&text, &cuts) {
                proptest::prop_assert!(false, "{}", e);
            }
        }
    }

    #[test]
    fn four_thousand_deltas_render_like_one_and_keep_finished_blocks() {
        let theme = Theme::plain();
        let mut text = String::new();
        let mut streamed = StreamedMarkdown::new();
        let mut n = 0;
        while n < 4_000 {
            for (i, piece) in PIECES.iter().enumerate().take(PIECES.len() - 1) {
                // Pieces cut into deltas of 1 to 7 bytes.
                let mut rest = *piece;
                while !rest.is_empty() {
                    let mut at = ((n * 7 + i) % 7 + 1).min(rest.len());
                    while !rest.is_char_boundary(at) {
                        at += 1;
                    }
                    text.push_str(&rest[..at]);
                    rest = &rest[at..];
                    streamed.update(&text, &theme);
                    n += 1;
                }
            }
            text.push_str("\n\nClosing words.\n\n");
        }
        streamed.update(&text, &theme);
        let got: Vec<Line<'static>> = streamed.lines().cloned().collect();
        assert_eq!(got, to_text(&text, &theme).lines);
        // Nearly all of it is kept: only the last block is rendered again.
        let open = &streamed.clean[streamed.kept_bytes()..];
        assert_eq!(open, "Closing words.\n\n");
    }

    #[test]
    fn a_reference_definition_is_rendered_whole_and_correctly() {
        let text = "Go [there][x] now.\n\nMiddle words.\n\n[x]: http://e.org\n\nAfter [x].\n";
        for step in [1, 3, 10] {
            let cuts: Vec<usize> = (0..text.len()).step_by(step).collect();
            streamed_equals_whole(text, &cuts).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn a_text_that_did_not_grow_is_rendered_from_scratch() {
        let theme = Theme::plain();
        let mut streamed = StreamedMarkdown::new();
        streamed.update("# One\n\nFirst para.\n\nSecond", &theme);
        streamed.update("Other text\n\nEntirely", &theme);
        let got: Vec<Line<'static>> = streamed.lines().cloned().collect();
        assert_eq!(got, to_text("Other text\n\nEntirely", &theme).lines);
    }

    #[test]
    fn escape_sequences_never_survive() {
        let text = to_text("# \u{1b}[2Jboom\n\nok\u{1b}]0;title\u{7}", &Theme::plain());
        for line in plain(&text) {
            assert!(!line.contains('\u{1b}'), "{line:?}");
            assert!(!line.contains('\u{7}'), "{line:?}");
        }
        assert_eq!(plain(&text)[0], "boom");
    }
}
