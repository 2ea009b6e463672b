//! Markdown (untrusted: model output, documents) -> ratatui `Text`. The input
//! is sanitised first, so nothing in it can reach the terminal as a control
//! sequence. Citations like `[1]` are highlighted so they read as references.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span, Text};

use super::theme::Theme;
use crate::sanitize::sanitize;

/// Render markdown into lines of styled text.
pub fn to_text(markdown: &str, theme: &Theme) -> Text<'static> {
    let clean = sanitize(markdown);
    let mut r = Renderer {
        theme,
        lines: Vec::new(),
        current: Vec::new(),
        styles: vec![Style::default()],
        lists: Vec::new(),
        quote: 0,
        pending_prefix: None,
    };
    // The parser splits text at brackets ("[", "1]"), so adjacent text
    // events are joined before citations are looked for.
    let mut text = String::new();
    for event in Parser::new_ext(&clean, Options::ENABLE_STRIKETHROUGH) {
        match event {
            Event::Text(t) => text.push_str(&t),
            other => {
                if !text.is_empty() {
                    r.text(&std::mem::take(&mut text));
                }
                r.event(other);
            }
        }
    }
    if !text.is_empty() {
        r.text(&text);
    }
    r.flush();
    while r.lines.last().is_some_and(|l| l.spans.is_empty()) {
        r.lines.pop();
    }
    Text::from(r.lines)
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
        if self.lines.last().is_some_and(|l| !l.spans.is_empty()) {
            self.lines.push(Line::default());
        }
    }

    fn text(&mut self, text: &str) {
        let style = self.style();
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
                }
                Tag::Link { .. } => self.push_style(self.theme.link),
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
                TagEnd::Emphasis | TagEnd::Strong | TagEnd::Strikethrough | TagEnd::Link => {
                    self.pop_style()
                }
                TagEnd::CodeBlock => {
                    self.flush();
                    self.pop_style();
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn escape_sequences_never_survive() {
        let text = to_text("# \u{1b}[2Jboom\n\nok\u{1b}]0;title\u{7}", &Theme::plain());
        for line in plain(&text) {
            assert!(!line.contains('\u{1b}'), "{line:?}");
            assert!(!line.contains('\u{7}'), "{line:?}");
        }
        assert_eq!(plain(&text)[0], "boom");
    }
}
