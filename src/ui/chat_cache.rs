//! The chat pane's rendered lines, kept between frames so that a frame's
//! cost does not grow with the length of the conversation.
//!
//! Each message's lines (header, markdown, sources, the blank line after)
//! are rendered once per version of the message and its wrapped row count
//! is kept for the pane's width; a frame then only checks the messages that
//! can still change, sums row counts to find what is on screen, and wraps
//! and draws just those messages. Drawing stays pure: the cache is view
//! state, and what it holds is always what a fresh render would produce.
//!
//! Invariants:
//! - `entries[i]` describes `messages[i]` as of the last frame: its
//!   `version`, its `rows` at `width` and `start` (the rows of all messages
//!   before it), with or without its `lines` (evicted ones are rendered
//!   again when they come into view).
//! - `entries[..settled]` are final messages (not running). The engine never
//!   changes a final message and only ever appends text to a running one,
//!   so only `entries[settled..]` are compared each frame, plus the first
//!   and the last settled message as anchors and the messages on screen:
//!   when one of those differs (another conversation is shown, messages
//!   were replaced) everything is rebuilt.
//! - A message's version is what its lines depend on: role, request, the
//!   text's buffer and length (text only grows), status, backend, the
//!   no-lore reason and the passages. The width and the theme key the whole
//!   cache: a change of either empties it.
//! - At most [`MAX_CACHED_LINES`] messages keep their lines; row counts are
//!   kept for every message (a few words each).
//! - A message's markdown is a [`StreamedMarkdown`]: when a running message
//!   grows, only its open last block is parsed, rendered and wrapped again,
//!   so a delta costs the same at 1 KB as at 100 KB.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Paragraph, Wrap};

use super::Theme;
use super::markdown::{StreamedMarkdown, borrowed, wrapped_rows};
use crate::domain::Role;
use crate::engine::request::RequestId;
use crate::engine::workspace::{ChatMessage, MessageStatus};

/// How many messages keep their rendered lines: a few screens' worth. The
/// others keep only their row count.
pub const MAX_CACHED_LINES: usize = 256;

/// What a message's rendered lines depend on.
#[derive(Debug, Clone, PartialEq)]
struct Version {
    role: Role,
    request: Option<RequestId>,
    text_at: usize,
    text_len: usize,
    status: MessageStatus,
    backend: Option<String>,
    no_lore: Option<String>,
    passages_at: usize,
    passages_len: usize,
}

impl Version {
    fn of(m: &ChatMessage) -> Self {
        Self {
            role: m.role,
            request: m.request,
            text_at: m.text.as_ptr() as usize,
            text_len: m.text.len(),
            status: m.status.clone(),
            backend: m.backend.clone(),
            no_lore: m.no_lore.clone(),
            passages_at: m.passages.as_ptr() as usize,
            passages_len: m.passages.len(),
        }
    }

    /// Whether `m` is still this version (no allocation).
    fn matches(&self, m: &ChatMessage) -> bool {
        self.text_len == m.text.len()
            && self.text_at == m.text.as_ptr() as usize
            && self.request == m.request
            && self.role == m.role
            && self.status == m.status
            && self.passages_len == m.passages.len()
            && self.passages_at == m.passages.as_ptr() as usize
            && self.backend == m.backend
            && self.no_lore == m.no_lore
    }
}

#[derive(Debug)]
struct Entry {
    version: Version,
    /// Wrapped rows at the cache's width.
    rows: usize,
    /// Rows of all messages before this one.
    start: usize,
    lines: Option<Rendered>,
    /// The frame that last drew this message (0: never drawn).
    used: u64,
}

/// The rows on screen.
struct Window {
    /// How far the chat can scroll back.
    max: usize,
    /// The first and one past the last row on screen, from the top.
    top: usize,
    bottom: usize,
    /// The first and one past the last message on screen.
    first: usize,
    last: usize,
    /// The rows of all messages: where the tail starts.
    above_tail: usize,
}

/// Rendered chat messages, by position in the conversation shown.
#[derive(Default)]
pub struct ChatCache {
    width: u16,
    theme: Option<Theme>,
    entries: Vec<Entry>,
    settled: usize,
    /// Messages that hold their lines.
    with_lines: usize,
    frame: u64,
    /// Messages rendered (markdown parsed and wrapped) since the start.
    misses: u64,
    /// The messages on screen in the last frame (for keys that act on
    /// what is shown: `w` jumps to the pipeline of the lowest reply).
    shown: std::ops::Range<usize>,
    /// The last frame's pane height and tail rows (for keys that scroll a
    /// selected message into view).
    height: usize,
    tail_rows: usize,
}

impl std::fmt::Debug for ChatCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatCache")
            .field("width", &self.width)
            .field("messages", &self.entries.len())
            .field("settled", &self.settled)
            .field("with_lines", &self.with_lines)
            .field("misses", &self.misses)
            .finish()
    }
}

/// A message as the chat pane shows it: lines before its text, whether its
/// text follows as markdown, lines after.
#[derive(Debug, Default)]
pub struct MessageParts {
    pub head: Vec<Line<'static>>,
    pub markdown: bool,
    pub foot: Vec<Line<'static>>,
}

/// Renders a message's parts; the markdown is rendered by the cache.
pub type RenderMessage<'r> = &'r dyn Fn(&ChatMessage) -> MessageParts;

/// A message's rendered lines: head, markdown, foot.
#[derive(Debug)]
struct Rendered {
    head: Vec<Line<'static>>,
    body: Option<StreamedMarkdown>,
    foot: Vec<Line<'static>>,
}

impl Rendered {
    /// Render `message`, reusing `old`'s markdown when the text grew from
    /// it (only the open block is rendered again).
    fn new(
        message: &ChatMessage,
        render: RenderMessage,
        theme: &Theme,
        old: Option<Rendered>,
    ) -> Self {
        let MessageParts {
            head,
            markdown,
            foot,
        } = render(message);
        let body = markdown.then(|| {
            let mut body = old.and_then(|o| o.body).unwrap_or_default();
            body.update(&message.text, theme);
            body
        });
        Self { head, body, foot }
    }

    fn lines(&self) -> impl Iterator<Item = &Line<'static>> {
        self.head
            .iter()
            .chain(self.body.iter().flat_map(StreamedMarkdown::lines))
            .chain(self.foot.iter())
    }

    fn rows(&mut self, width: u16) -> usize {
        wrapped_rows(&self.head, width)
            + self.body.as_mut().map_or(0, |b| b.rows(width))
            + wrapped_rows(&self.foot, width)
    }
}

/// What the chat pane shows: the messages, then lines after them (the
/// queue, or the hint in an empty chat), in `theme`.
pub struct ChatContent<'a> {
    pub messages: &'a [ChatMessage],
    pub tail: Vec<Line<'static>>,
    pub theme: &'a Theme,
    /// Renders one message; must depend only on the message and `theme`.
    pub render: RenderMessage<'a>,
    /// The selected message: its first line is marked `▶ ` in `theme.selected`
    /// (at draw time: the cached lines stay unmarked).
    pub selected: Option<usize>,
}

impl ChatCache {
    /// How many times a message was rendered (a cache miss) so far.
    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// The messages at least partly on screen in the last frame.
    pub fn shown(&self) -> std::ops::Range<usize> {
        self.shown.clone()
    }

    /// How many messages hold rendered lines now.
    pub fn cached(&self) -> usize {
        self.with_lines
    }

    /// The scroll (rows up from the bottom, as `draw` takes it) that shows
    /// message `index`, moving as little as possible from `up`: its top
    /// row when it is taller than the pane. `up` unchanged when the last
    /// frame did not have the message.
    pub fn scroll_showing(&self, index: usize, up: usize) -> usize {
        let Some(entry) = self.entries.get(index) else {
            return up;
        };
        let total = self.message_rows() + self.tail_rows;
        let max = total.saturating_sub(self.height);
        let top = max.saturating_sub(up.min(max));
        let new_top = if entry.start < top || entry.rows > self.height {
            entry.start
        } else if entry.start + entry.rows > top + self.height {
            entry.start + entry.rows - self.height
        } else {
            top
        };
        max.saturating_sub(new_top.min(max))
    }

    fn reset(&mut self, width: u16, theme: &Theme) {
        self.width = width;
        self.theme = Some(theme.clone());
        self.entries.clear();
        self.settled = 0;
        self.with_lines = 0;
    }

    /// Bring the entries up to date with `messages`.
    fn sync(&mut self, messages: &[ChatMessage], width: u16, theme: &Theme, render: RenderMessage) {
        if width != self.width || self.theme.as_ref() != Some(theme) {
            self.reset(width, theme);
        }
        let anchors_hold = self.settled <= messages.len()
            && (self.settled == 0
                || (self.entries[0].version.matches(&messages[0])
                    && self.entries[self.settled - 1]
                        .version
                        .matches(&messages[self.settled - 1])));
        if !anchors_hold {
            self.reset(width, theme);
        }
        let mut dirty = None;
        if self.entries.len() > messages.len() {
            for gone in self.entries.drain(messages.len()..) {
                self.with_lines -= usize::from(gone.lines.is_some());
            }
            dirty = Some(messages.len());
        }
        for (i, message) in messages.iter().enumerate().skip(self.settled) {
            if self
                .entries
                .get(i)
                .is_some_and(|e| e.version.matches(message))
            {
                continue;
            }
            let old = self.entries.get_mut(i).and_then(|e| e.lines.take());
            self.with_lines -= usize::from(old.is_some());
            let mut lines = Rendered::new(message, render, theme, old);
            self.misses += 1;
            let entry = Entry {
                version: Version::of(message),
                rows: lines.rows(width),
                start: 0,
                lines: Some(lines),
                used: 0,
            };
            self.with_lines += 1;
            match self.entries.get_mut(i) {
                Some(slot) => *slot = entry,
                None => self.entries.push(entry),
            }
            dirty.get_or_insert(i);
        }
        if let Some(from) = dirty {
            let mut start = from
                .checked_sub(1)
                .and_then(|i| self.entries.get(i))
                .map_or(0, |e| e.start + e.rows);
            for entry in &mut self.entries[from..] {
                entry.start = start;
                start += entry.rows;
            }
        }
        while messages
            .get(self.settled)
            .is_some_and(|m| m.status != MessageStatus::Running)
        {
            self.settled += 1;
        }
    }

    /// Rows of all messages.
    fn message_rows(&self) -> usize {
        self.entries.last().map_or(0, |e| e.start + e.rows)
    }

    /// Draw the messages then the tail into `area`, wrapped, showing the
    /// bottom with `up` rows scrolled back. Returns how far it can scroll
    /// back.
    pub fn draw(
        &mut self,
        frame: &mut Frame,
        area: Rect,
        content: ChatContent<'_>,
        up: usize,
    ) -> usize {
        let ChatContent {
            messages,
            tail,
            theme,
            render,
            selected,
        } = content;
        self.frame += 1;
        self.sync(messages, area.width, theme, render);
        // The messages on screen are checked too, settled or not: should a
        // final message ever change, the screen still shows what it says.
        let mut window = self.window(up, area.height, &tail);
        let on_screen = window.first..window.last;
        if !self.entries[on_screen.clone()]
            .iter()
            .zip(&messages[on_screen])
            .all(|(e, m)| e.version.matches(m))
        {
            self.reset(area.width, theme);
            self.sync(messages, area.width, theme, render);
            window = self.window(up, area.height, &tail);
        }
        let Window {
            max,
            top,
            bottom,
            first,
            last,
            above_tail,
        } = window;
        for (entry, message) in self.entries[first..last]
            .iter_mut()
            .zip(&messages[first..last])
        {
            entry.used = self.frame;
            if entry.lines.is_none() {
                entry.lines = Some(Rendered::new(message, render, theme, None));
                self.misses += 1;
                self.with_lines += 1;
            }
        }
        self.shown = first..last;
        self.height = usize::from(area.height);
        self.tail_rows = wrapped_rows(&tail, self.width);
        let skip = top - self.entries.get(first).map_or(above_tail, |e| e.start);
        let mut lines: Vec<Line<'_>> = Vec::new();
        for (i, entry) in self.entries.iter().enumerate().take(last).skip(first) {
            let mut own = entry.lines.iter().flat_map(Rendered::lines).map(borrowed);
            if selected == Some(i)
                && let Some(header) = own.next()
            {
                let mut spans = vec![Span::styled("▶ ", theme.selected)];
                spans.extend(header.spans);
                lines.push(Line::from(spans).patch_style(theme.selected));
            }
            lines.extend(own);
        }
        if above_tail < bottom {
            lines.extend(tail.iter().map(borrowed));
        }
        let paragraph = Paragraph::new(Text::from(lines))
            .wrap(Wrap { trim: false })
            .scroll((u16::try_from(skip).unwrap_or(u16::MAX), 0));
        frame.render_widget(paragraph, area);
        self.evict();
        max
    }

    /// Where the screen is, `up` rows back from the bottom of a pane
    /// `height` rows high.
    fn window(&self, up: usize, height: u16, tail: &[Line<'static>]) -> Window {
        let above_tail = self.message_rows();
        let total = above_tail + wrapped_rows(tail, self.width);
        let height = usize::from(height);
        let max = total.saturating_sub(height);
        let top = max.saturating_sub(up);
        let bottom = top + height;
        // From the first message that ends below `top` to the last that
        // starts above `bottom`.
        let first = self.entries.partition_point(|e| e.start + e.rows <= top);
        let last = first + self.entries[first..].partition_point(|e| e.start < bottom);
        Window {
            max,
            top,
            bottom,
            first,
            last,
            above_tail,
        }
    }

    /// Keep the lines of at most [`MAX_CACHED_LINES`] messages: those drawn
    /// most recently, then the newest.
    fn evict(&mut self) {
        if self.with_lines <= MAX_CACHED_LINES {
            return;
        }
        let keep = MAX_CACHED_LINES * 3 / 4;
        let mut held: Vec<(u64, usize)> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.lines.is_some())
            .map(|(i, e)| (e.used, i))
            .collect();
        // Newest use first, then the newest message.
        held.sort_unstable_by(|a, b| b.cmp(a));
        for &(_, i) in &held[keep..] {
            self.entries[i].lines = None;
        }
        self.with_lines = keep;
    }
}

#[cfg(test)]
mod tests {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::ui::markdown;

    fn message(i: usize) -> ChatMessage {
        // Short and long lines, wide characters, lists and blank lines, so
        // messages wrap to different numbers of rows.
        let text = match i % 4 {
            0 => format!("question {i}"),
            1 => format!(
                "# Answer {i}\n\n{}\n\n- one\n- two [1]\n\n> quoted 龍 {}",
                "word ".repeat(i % 37 + 3),
                "長い".repeat(i % 11)
            ),
            2 => format!("short {i}"),
            _ => format!(
                "{}\n\n```\ncode {i}\n```",
                "a-very-long-unbroken-token".repeat(i % 5 + 1)
            ),
        };
        ChatMessage {
            role: if i.is_multiple_of(2) {
                Role::User
            } else {
                Role::Assistant
            },
            text,
            status: MessageStatus::Done,
            request: None,
            backend: None,
            passages: Vec::new(),
            no_lore: None,
            tag: None,
        }
    }

    fn render(theme: &Theme) -> impl Fn(&ChatMessage) -> Vec<Line<'static>> + '_ {
        move |m| {
            let mut lines = markdown::to_text(&m.text, theme).lines;
            lines.push(Line::default());
            lines
        }
    }

    fn parts(m: &ChatMessage) -> MessageParts {
        let _ = m;
        MessageParts {
            head: Vec::new(),
            markdown: true,
            foot: vec![Line::default()],
        }
    }

    /// The chat as it was drawn before the cache: every message's lines in
    /// one wrapped paragraph, scrolled from the bottom.
    fn draw_whole(
        messages: &[ChatMessage],
        tail: &[Line<'static>],
        up: usize,
        (w, h): (u16, u16),
        theme: &Theme,
    ) -> (String, usize) {
        let mut lines: Vec<Line<'static>> = messages.iter().flat_map(render(theme)).collect();
        lines.extend(tail.iter().cloned());
        let paragraph = Paragraph::new(lines).wrap(Wrap { trim: false });
        let max = paragraph.line_count(w).saturating_sub(usize::from(h));
        let top = u16::try_from(max.saturating_sub(up)).expect("small in tests");
        let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("terminal");
        terminal
            .draw(|f| f.render_widget(paragraph.scroll((top, 0)), f.area()))
            .expect("draw");
        (terminal.backend().to_string(), max)
    }

    fn draw_cached(
        cache: &mut ChatCache,
        messages: &[ChatMessage],
        tail: &[Line<'static>],
        up: usize,
        (w, h): (u16, u16),
        theme: &Theme,
    ) -> (String, usize) {
        let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("terminal");
        let mut max = 0;
        let render = parts;
        terminal
            .draw(|f| {
                let content = ChatContent {
                    messages,
                    tail: tail.to_vec(),
                    theme,
                    render: &render,
                    selected: None,
                };
                max = cache.draw(f, f.area(), content, up);
            })
            .expect("draw");
        (terminal.backend().to_string(), max)
    }

    #[test]
    fn drawing_the_visible_messages_matches_drawing_them_all() {
        let theme = Theme::plain();
        let messages: Vec<ChatMessage> = (0..400).map(message).collect();
        let tail = vec![Line::raw("queued (1)"), Line::raw("  #1 next question")];
        let mut cache = ChatCache::default();
        for size in [(50, 12), (23, 7), (80, 30)] {
            let (_, max) = draw_whole(&messages, &tail, 0, size, &theme);
            assert!(max > 1_000);
            for up in [0, 1, 5, max / 2, max / 2 + 1, max - 3, max, max + 10] {
                let whole = draw_whole(&messages, &tail, up, size, &theme);
                let cached = draw_cached(&mut cache, &messages, &tail, up, size, &theme);
                assert_eq!(cached, whole, "{size:?} up {up}");
            }
            assert!(cache.cached() <= MAX_CACHED_LINES);
        }
        // Fewer messages than fit, and none at all.
        for n in [0, 1, 3] {
            let whole = draw_whole(&messages[..n], &tail, 0, (40, 30), &theme);
            let cached = draw_cached(&mut cache, &messages[..n], &tail, 0, (40, 30), &theme);
            assert_eq!(cached, whole, "{n} messages");
        }
    }

    #[test]
    fn only_messages_that_changed_or_came_into_view_are_rendered_again() {
        let theme = Theme::plain();
        let mut messages: Vec<ChatMessage> = (0..300).map(message).collect();
        let size = (60, 20);
        let mut cache = ChatCache::default();
        draw_cached(&mut cache, &messages, &[], 0, size, &theme);
        assert_eq!(cache.misses(), 300, "every message once, for its rows");
        draw_cached(&mut cache, &messages, &[], 0, size, &theme);
        assert_eq!(cache.misses(), 300);

        // A reply streams in at the end.
        messages.push(ChatMessage {
            status: MessageStatus::Running,
            text: String::new(),
            ..message(1)
        });
        for word in ["The ", "warden ", "of ", "the ", "pass [1]."] {
            messages[300].text.push_str(word);
            let before = cache.misses();
            let drawn = draw_cached(&mut cache, &messages, &[], 0, size, &theme);
            assert_eq!(cache.misses(), before + 1);
            assert_eq!(drawn, draw_whole(&messages, &[], 0, size, &theme));
        }
        messages[300].status = MessageStatus::Done;
        let before = cache.misses();
        draw_cached(&mut cache, &messages, &[], 0, size, &theme);
        assert_eq!(cache.misses(), before + 1);

        // A final message on screen changed after all (the engine never
        // does this): it shows as it is now, and so does the first.
        messages[299].text = "rewritten, and long enough to wrap: ".repeat(5);
        let drawn = draw_cached(&mut cache, &messages, &[], 0, size, &theme);
        assert_eq!(drawn, draw_whole(&messages, &[], 0, size, &theme));
        messages[0].text = "rewritten, and long enough to wrap: ".repeat(5);
        let drawn = draw_cached(&mut cache, &messages, &[], 0, size, &theme);
        assert_eq!(drawn, draw_whole(&messages, &[], 0, size, &theme));

        // Another conversation: the anchors notice and everything is redone.
        let other: Vec<ChatMessage> = (0..300).map(|i| message(i + 1)).collect();
        let drawn = draw_cached(&mut cache, &other, &[], 0, size, &theme);
        assert_eq!(drawn, draw_whole(&other, &[], 0, size, &theme));
        // Back to a shorter list: what is gone is dropped.
        let drawn = draw_cached(&mut cache, &messages[..10], &[], 0, size, &theme);
        assert_eq!(drawn, draw_whole(&messages[..10], &[], 0, size, &theme));
    }
}
