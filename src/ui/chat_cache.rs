//! The chat pane's rendered lines, kept between frames so that a frame's
//! cost does not grow with the length of the conversation, not even the
//! first frame of a long session reopened.
//!
//! Each message's lines (header, markdown, sources, the blank line after)
//! are rendered once per version of the message and its wrapped row count
//! is kept for the pane's width; a frame then only checks the messages that
//! can still change, sums row counts to find what is on screen, and wraps
//! and draws just those messages. Drawing stays pure: the cache is view
//! state, and what it holds is always what a fresh render would produce.
//!
//! Row counts are exact where it matters and estimated elsewhere. The chat
//! scrolls in rows up from its newest line (`up`), so only the messages from
//! the screen down to the end decide what the screen shows: those are
//! measured (rendered and wrapped) before a frame is drawn, with a screen
//! and [`MARGIN_MESSAGES`] messages above as a margin: keys that select the
//! messages above the screen (the keys' `scroll_showing` reads the last
//! frame's rows, and several keys may come between two frames) land on
//! measured rows. A message selected further up than that before a frame
//! is drawn is scrolled to by its estimate (the frame shows it, perhaps not
//! at the top of the pane).
//! Every other message starts with an
//! estimate from its text's length and the width ([`estimate_rows`]),
//! replaced by its exact count when it is measured: as the screen moves up
//! to it, or a few messages a frame in the background (frames that had
//! nothing new to measure for the screen; [`MEASURE_PER_FRAME`], from the
//! newest unmeasured one up) so that how far the chat can scroll converges
//! to the exact figure.
//! A correction only ever changes rows above the screen, which are not
//! counted in `up`: what is on screen never moves when an estimate is
//! corrected; only the scroll limit does.
//!
//! The top is the one place reached from the other end: scrolling to the
//! limit (`up` at or past the limit the last frame returned) measures every
//! message, shows the first one at the top of the pane and, when the exact
//! limit came out larger than the estimated one the keys scrolled to, keeps
//! the difference as an offset added to `up` until the chat follows its
//! newest line again (`up` = 0), so the next key moves from the top the
//! reader sees.
//!
//! Invariants:
//! - `entries[i]` describes `messages[i]` as of the last frame: its
//!   `version`, its `rows` at `width` (exact or estimated, `exact` says
//!   which) and `start` (the rows of all messages before it), with or
//!   without its `lines` (evicted ones are rendered again when they come
//!   into view). An entry with lines is exact.
//! - `entries[exact_from..]` are exact, and after a frame `exact_from` is at
//!   or above the first message on screen: the rows from the screen down are
//!   exact, so the screen is exactly where a full render would put it.
//! - `entries[..settled]` are final messages (not running). The engine never
//!   changes a final message and only ever appends text to a running one,
//!   so only `entries[settled..]` are compared each frame, plus the first
//!   and the last settled message as anchors and the messages on screen:
//!   when one of those differs (another conversation is shown, messages
//!   were replaced or older ones put in front) everything is rebuilt, which
//!   costs estimates for all and a screenful of measuring.
//! - A message's version is what its lines depend on: role, request, the
//!   text's buffer and length (text only grows), status, backend, the
//!   no-lore reason and the passages. The width and the theme key the whole
//!   cache: a change of either empties it.
//! - At most [`MAX_CACHED_LINES`] messages keep their lines; row counts are
//!   kept for every message (a few words each). Messages measured in the
//!   background keep only their row count.
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

/// How many messages above the rows a frame needs exact are measured too:
/// the keys that select the message above may come several times between
/// two frames.
pub const MARGIN_MESSAGES: usize = 2;

/// How many unmeasured messages a frame that measured nothing for the
/// screen measures in the background (the newest first), so the scroll
/// limit converges to the exact one: about 50 µs a frame for replies of a
/// few hundred words.
pub const MEASURE_PER_FRAME: usize = 4;

/// Bytes of text per line break (paragraphs, list items, blank lines) that
/// [`estimate_rows`] assumes: about a short paragraph's.
pub const BYTES_PER_BREAK: usize = 160;

/// A message's rows at `width` before it is rendered, from its text's
/// length alone (reading the text, even only to count its line breaks,
/// costs milliseconds over thousands of long replies): its header and the
/// blank line after it; its length in bytes over `width` (so wide and
/// multi-byte characters count one row per `width` bytes); one more row
/// per [`BYTES_PER_BREAK`] bytes for the rows that line breaks start; and
/// one row per passage a final reply lists. Replaced by the exact count
/// when the message is measured.
pub fn estimate_rows(message: &ChatMessage, width: u16) -> usize {
    let sources = match (message.role, &message.status) {
        (Role::Assistant, MessageStatus::Running) => 0,
        (Role::Assistant, _) => message.passages.len(),
        (Role::User, _) => 0,
    };
    estimate_text_rows(message.text.len(), sources, width)
}

/// [`estimate_rows`] of a message whose text is `len` bytes long and that
/// lists `sources` passages.
pub fn estimate_text_rows(len: usize, sources: usize, width: u16) -> usize {
    let width = usize::from(width.max(1));
    let text = len.div_ceil(width).max(1) + len / BYTES_PER_BREAK;
    2 + text + sources
}

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
    /// Wrapped rows at the cache's width: exact, or an estimate.
    rows: usize,
    /// Whether `rows` is exact (the message was rendered at this width).
    exact: bool,
    /// Rows of all messages before this one.
    start: usize,
    /// Boxed: most entries have none, and 5,000 entries are made at once.
    lines: Option<Box<Rendered>>,
    /// The frame that last drew this message (0: never drawn).
    used: u64,
}

/// The rows on screen.
struct Window {
    /// How far the chat can scroll back, as the keys count it (`up`).
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
    /// `entries[exact_from..]` have exact rows.
    exact_from: usize,
    /// Rows added to `up` since the top was reached with an estimated limit
    /// smaller than the exact one (0 once the chat follows its end).
    offset: usize,
    /// The scroll limit the last frame returned (what the keys clamp to);
    /// `None` after a rebuild (the keys' `up` was not clamped to this).
    last_max: Option<usize>,
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
            .field("exact_from", &self.exact_from)
            .field("offset", &self.offset)
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
        old: Option<Box<Rendered>>,
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

    /// How many messages have an estimated row count (not yet measured).
    pub fn estimated(&self) -> usize {
        self.entries.iter().filter(|e| !e.exact).count()
    }

    /// `up` as the rows are counted: with the offset kept since the top
    /// was reached, at most the exact limit `max`.
    fn effective(&self, up: usize, max: usize) -> usize {
        if up == 0 {
            0
        } else {
            up.saturating_add(self.offset).min(max)
        }
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
        let top = max - self.effective(up, max);
        let new_top = if entry.start < top || entry.rows > self.height {
            entry.start
        } else if entry.start + entry.rows > top + self.height {
            entry.start + entry.rows - self.height
        } else {
            top
        };
        match max.saturating_sub(new_top.min(max)) {
            0 => 0,
            // Still scrolled back: in the keys' count, never 0 (following).
            rows => rows.saturating_sub(self.offset).max(1),
        }
    }

    fn reset(&mut self, width: u16, theme: &Theme) {
        self.width = width;
        self.theme = Some(theme.clone());
        self.entries.clear();
        self.settled = 0;
        self.exact_from = 0;
        self.last_max = None;
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
            self.exact_from = self.exact_from.min(messages.len());
            dirty = Some(messages.len());
        }
        // A cache filled from nothing (start, another conversation, a new
        // width) estimates every message and measures only what the frame
        // needs; a message added to a cache in use is measured (it is at
        // the end, where the chat is read).
        let fresh = self.entries.is_empty();
        self.entries
            .reserve(messages.len().saturating_sub(self.entries.len()));
        for (i, message) in messages.iter().enumerate().skip(self.settled) {
            if self
                .entries
                .get(i)
                .is_some_and(|e| e.version.matches(message))
            {
                continue;
            }
            let measure = match self.entries.get(i) {
                Some(e) => e.exact,
                None => !fresh,
            };
            let entry = if measure {
                let old = self.entries.get_mut(i).and_then(|e| e.lines.take());
                self.with_lines -= usize::from(old.is_some());
                let mut lines = Rendered::new(message, render, theme, old);
                self.misses += 1;
                self.with_lines += 1;
                Entry {
                    version: Version::of(message),
                    rows: lines.rows(width),
                    exact: true,
                    start: 0,
                    lines: Some(Box::new(lines)),
                    used: 0,
                }
            } else {
                self.exact_from = self.exact_from.max(i + 1);
                Entry {
                    version: Version::of(message),
                    rows: estimate_rows(message, width),
                    exact: false,
                    start: 0,
                    lines: None,
                    used: 0,
                }
            };
            match self.entries.get_mut(i) {
                Some(slot) => {
                    self.with_lines -= usize::from(slot.lines.is_some());
                    *slot = entry;
                }
                None => self.entries.push(entry),
            }
            dirty.get_or_insert(i);
        }
        if let Some(from) = dirty {
            self.restart(from);
        }
        while messages
            .get(self.settled)
            .is_some_and(|m| m.status != MessageStatus::Running)
        {
            self.settled += 1;
        }
    }

    /// Recount `start` from entry `from` on.
    fn restart(&mut self, from: usize) {
        let mut start = from
            .checked_sub(1)
            .and_then(|i| self.entries.get(i))
            .map_or(0, |e| e.start + e.rows);
        for entry in self.entries.iter_mut().skip(from) {
            entry.start = start;
            start += entry.rows;
        }
    }

    /// Rows of all messages.
    fn message_rows(&self) -> usize {
        self.entries.last().map_or(0, |e| e.start + e.rows)
    }

    /// Measure entry `i` (render it and count its rows) unless it is exact;
    /// it keeps its lines when `keep`. Whether it was measured now.
    fn measure(
        &mut self,
        i: usize,
        message: &ChatMessage,
        render: RenderMessage,
        theme: &Theme,
        keep: bool,
    ) -> bool {
        let width = self.width;
        let Some(entry) = self.entries.get_mut(i) else {
            return false;
        };
        if entry.exact {
            return false;
        }
        let mut lines = Rendered::new(message, render, theme, None);
        self.misses += 1;
        entry.rows = lines.rows(width);
        entry.exact = true;
        if keep {
            entry.lines = Some(Box::new(lines));
            self.with_lines += 1;
        }
        true
    }

    /// Measure messages from the newest unmeasured one up until the exact
    /// rows at the end (the tail's included) reach `need`, and then the
    /// [`MARGIN_MESSAGES`] above the one that reached it, or every message
    /// is exact. Returns the lowest index measured, if any.
    fn measure_until(
        &mut self,
        need: usize,
        messages: &[ChatMessage],
        render: RenderMessage,
        theme: &Theme,
    ) -> Option<usize> {
        let below = |cache: &Self| {
            let suffix_start = cache
                .entries
                .get(cache.exact_from)
                .map_or(cache.message_rows(), |e| e.start);
            cache.message_rows() - suffix_start
        };
        // The measured rows so far, kept as the suffix grows (the starts
        // above it are recounted once at the end).
        let mut exact_rows = below(self) + self.tail_rows;
        let mut lowest = None;
        while self.exact_from > 0 {
            // The rows below the next candidate's MARGIN_MESSAGES lower
            // neighbours (all exact): while they fall short of `need`, it is
            // within the margin.
            let next = self.exact_from - 1;
            let neighbours: usize = self
                .entries
                .iter()
                .skip(next + 1)
                .take(MARGIN_MESSAGES)
                .map(|e| e.rows)
                .sum();
            if exact_rows.saturating_sub(neighbours) >= need {
                break;
            }
            self.exact_from = next;
            let i = self.exact_from;
            self.measure(i, &messages[i], render, theme, true);
            exact_rows += self.entries[i].rows;
            lowest = Some(i);
        }
        lowest
    }

    /// Measure up to [`MEASURE_PER_FRAME`] unmeasured messages above the
    /// exact rows, without keeping their lines.
    fn measure_some(
        &mut self,
        messages: &[ChatMessage],
        render: RenderMessage,
        theme: &Theme,
    ) -> Option<usize> {
        let mut done = 0;
        let mut lowest = None;
        while self.exact_from > 0 && done < MEASURE_PER_FRAME {
            self.exact_from -= 1;
            let i = self.exact_from;
            done += usize::from(self.measure(i, &messages[i], render, theme, false));
            lowest = Some(i);
        }
        lowest
    }

    /// Make the rows that the screen `up` rows back (as the keys count it)
    /// and a screen above it exact, and find where the screen is.
    fn place(
        &mut self,
        up: usize,
        messages: &[ChatMessage],
        render: RenderMessage,
        theme: &Theme,
    ) -> Window {
        if up == 0 {
            self.offset = 0;
        }
        // At the limit the keys were given: the top, measured exactly.
        let at_top = up > 0 && self.last_max.is_some_and(|max| up >= max);
        let wanted = if at_top {
            usize::MAX
        } else {
            up.saturating_add(self.offset)
                .saturating_add(self.height.saturating_mul(2))
        };
        let measured = self.measure_until(wanted, messages, render, theme);
        let background = match measured {
            Some(_) => None,
            None => self.measure_some(messages, render, theme),
        };
        if let Some(from) = measured.into_iter().chain(background).min() {
            self.restart(from);
        }
        let above_tail = self.message_rows();
        let total = above_tail + self.tail_rows;
        let exact_max = total.saturating_sub(self.height);
        if at_top && up < exact_max {
            self.offset = exact_max - up;
        }
        let eff = self.effective(up, exact_max);
        let max = exact_max.saturating_sub(self.offset);
        self.last_max = Some(max);
        let top = exact_max - eff;
        let bottom = top + self.height;
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
        self.height = usize::from(area.height);
        self.tail_rows = wrapped_rows(&tail, self.width);
        // The messages on screen are checked too, settled or not: should a
        // final message ever change, the screen still shows what it says.
        let mut window = self.place(up, messages, render, theme);
        let on_screen = window.first..window.last;
        if !self.entries[on_screen.clone()]
            .iter()
            .zip(&messages[on_screen])
            .all(|(e, m)| e.version.matches(m))
        {
            self.reset(area.width, theme);
            self.sync(messages, area.width, theme, render);
            window = self.place(up, messages, render, theme);
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
                entry.lines = Some(Box::new(Rendered::new(message, render, theme, None)));
                self.misses += 1;
                self.with_lines += 1;
            }
        }
        self.shown = first..last;
        let skip = top - self.entries.get(first).map_or(above_tail, |e| e.start);
        let mut lines: Vec<Line<'_>> = Vec::new();
        for (i, entry) in self.entries.iter().enumerate().take(last).skip(first) {
            let mut own = entry.lines.iter().flat_map(|r| r.lines()).map(borrowed);
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
            let (bottom, max) = draw_whole(&messages, &tail, 0, size, &theme);
            assert!(max > 1_000);
            // A new width: estimates, and the bottom exact at once.
            let first = draw_cached(&mut cache, &messages, &tail, 0, size, &theme);
            assert_eq!(first.0, bottom, "{size:?}");
            assert!(cache.estimated() > 0);
            // Measured (a few a frame), the limit is exact too.
            while cache.estimated() > 0 {
                draw_cached(&mut cache, &messages, &tail, 0, size, &theme);
            }
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
        // Two screens and a few in the background, not all 300.
        let first = cache.misses();
        assert!(first < 60, "{first} rendered");
        assert_eq!(cache.estimated(), 300 - first as usize);
        // Later frames measure a few more each, until none is left; then
        // nothing is rendered again.
        while cache.estimated() > 0 {
            let before = cache.misses();
            draw_cached(&mut cache, &messages, &[], 0, size, &theme);
            assert!(cache.misses() - before <= MEASURE_PER_FRAME as u64);
            assert!(cache.misses() > before);
        }
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
        // (Rebuilt, the cache estimates again: the screens match at once,
        // the limit later.)
        messages[299].text = "rewritten, and long enough to wrap: ".repeat(5);
        let drawn = draw_cached(&mut cache, &messages, &[], 0, size, &theme);
        assert_eq!(drawn.0, draw_whole(&messages, &[], 0, size, &theme).0);
        messages[0].text = "rewritten, and long enough to wrap: ".repeat(5);
        let drawn = draw_cached(&mut cache, &messages, &[], 0, size, &theme);
        assert_eq!(drawn.0, draw_whole(&messages, &[], 0, size, &theme).0);

        // Another conversation: the anchors notice and everything is redone.
        let other: Vec<ChatMessage> = (0..300).map(|i| message(i + 1)).collect();
        let drawn = draw_cached(&mut cache, &other, &[], 0, size, &theme);
        assert_eq!(drawn.0, draw_whole(&other, &[], 0, size, &theme).0);
        // Back to a shorter list: what is gone is dropped.
        let drawn = draw_cached(&mut cache, &messages[..10], &[], 0, size, &theme);
        assert_eq!(drawn.0, draw_whole(&messages[..10], &[], 0, size, &theme).0);
    }

    /// Messages whose estimates are far off: wide characters (two columns,
    /// three bytes) and long unbroken tokens, in both directions.
    fn misestimated(i: usize) -> ChatMessage {
        let text = match i % 3 {
            0 => "龍".repeat(10 + i % 40),
            1 => format!("{}\n\n\n\n", "word ".repeat(5 + i % 30)),
            _ => format!("Title {i} {}", "長い".repeat(5 + i % 20)),
        };
        ChatMessage { text, ..message(i) }
    }

    /// Messages estimated too short: blocks without blank lines between
    /// them (markdown puts one there) and short lines that wrap by words.
    fn underestimated(i: usize) -> ChatMessage {
        let text = format!(
            "# T{i}\n- a\n- b\n> q\n```\nx\n```\n# U\n{}",
            "abcdefghi ".repeat(3 + i % 9)
        );
        ChatMessage { text, ..message(i) }
    }

    /// What the keys do with `up` (rows back from the newest) when moving
    /// `rows` towards the top (negative: towards the end) against the limit
    /// the last frame returned (`tui::keys::scroll`).
    fn key(up: usize, max: usize, rows: isize) -> usize {
        let from_top = max - up.min(max);
        max - from_top.saturating_add_signed(-rows).min(max)
    }

    #[test]
    fn estimates_are_off_but_the_screen_is_exact_and_the_limit_converges() {
        let theme = Theme::plain();
        let messages: Vec<ChatMessage> = (0..600).map(misestimated).collect();
        let size = (40, 10);
        let (_, true_max) = draw_whole(&messages, &[], 0, size, &theme);
        let mut cache = ChatCache::default();
        let (screen, first_max) = draw_cached(&mut cache, &messages, &[], 0, size, &theme);
        assert_eq!(screen, draw_whole(&messages, &[], 0, size, &theme).0);
        assert_ne!(first_max, true_max, "the test needs estimates that are off");
        // Scrolled back a little: the screen stays put while estimates
        // above it are corrected frame after frame.
        let up = 25;
        let (held, _) = draw_cached(&mut cache, &messages, &[], up, size, &theme);
        assert_eq!(held, draw_whole(&messages, &[], up, size, &theme).0);
        let mut max = first_max;
        while cache.estimated() > 0 {
            let (screen, m) = draw_cached(&mut cache, &messages, &[], up, size, &theme);
            assert_eq!(screen, held);
            max = m;
        }
        assert_eq!(max, true_max);
    }

    #[test]
    fn scrolling_to_the_top_lands_on_the_first_message_and_moves_from_there() {
        let theme = Theme::plain();
        let size = (40, 10);
        let over: Vec<ChatMessage> = (0..600).map(misestimated).collect();
        let under: Vec<ChatMessage> = (0..600).map(underestimated).collect();
        for (messages, scrolled) in [
            (&over, false),
            (&over, true),
            (&under, false),
            (&under, true),
        ] {
            let (top_screen, true_max) = draw_whole(messages, &[], usize::MAX, size, &theme);
            let mut cache = ChatCache::default();
            let (_, mut max) = draw_cached(&mut cache, messages, &[], 0, size, &theme);
            // Both ways: the estimated limit above and below the exact one.
            assert_eq!(max > true_max, std::ptr::eq(messages, &over));

            let messages = &messages[..];
            let first = if std::ptr::eq(messages, &over[..]) {
                "龍"
            } else {
                "T0"
            };
            assert!(top_screen.contains(first), "message 0 at the top");
            let mut up = 0;
            if scrolled {
                // Page up a few times first, as a reader would.
                for _ in 0..5 {
                    up = key(up, max, 9);
                    max = draw_cached(&mut cache, messages, &[], up, size, &theme).1;
                }
            }
            assert!(cache.estimated() > 0);
            // Home: the limit as the keys know it, estimated.
            up = key(up, max, isize::MAX);
            let (screen, m) = draw_cached(&mut cache, messages, &[], up, size, &theme);
            assert_eq!(screen, top_screen, "scrolled first: {scrolled}");
            assert_eq!(cache.estimated(), 0);
            // One row down, then a screen down: from the top the reader
            // sees, whatever the estimate was.
            up = key(up, m, -1);
            let (screen, m) = draw_cached(&mut cache, messages, &[], up, size, &theme);
            assert_eq!(
                screen,
                draw_whole(messages, &[], true_max - 1, size, &theme).0
            );
            up = key(up, m, -9);
            let (screen, m) = draw_cached(&mut cache, messages, &[], up, size, &theme);
            assert_eq!(
                screen,
                draw_whole(messages, &[], true_max - 10, size, &theme).0
            );
            // Up again to the top, and back to the end.
            up = key(up, m, 10);
            let (screen, m) = draw_cached(&mut cache, messages, &[], up, size, &theme);
            assert_eq!(screen, top_screen);
            up = key(up, m, -isize::MAX);
            assert_eq!(up, 0);
            let (screen, m) = draw_cached(&mut cache, messages, &[], up, size, &theme);
            assert_eq!(screen, draw_whole(messages, &[], 0, size, &theme).0);
            assert_eq!(m, true_max);
        }
    }

    #[test]
    fn older_messages_put_in_front_leave_the_screen_where_it_was() {
        let theme = Theme::plain();
        let messages: Vec<ChatMessage> = (0..800).map(misestimated).collect();
        let size = (40, 10);
        let tail = &messages[600..];
        for up in [0, 7, 60] {
            let mut cache = ChatCache::default();
            let (shown, _) = draw_cached(&mut cache, tail, &[], up, size, &theme);
            let (after, max) = draw_cached(&mut cache, &messages, &[], up, size, &theme);
            assert_eq!(after, shown, "up {up}");
            assert_eq!(after, draw_whole(&messages, &[], up, size, &theme).0);
            assert!(max > 0);
            assert!(cache.estimated() > 0, "the rest is estimated");
        }
    }

    #[test]
    fn selecting_a_message_scrolls_to_its_exact_rows() {
        let theme = Theme::plain();
        let messages: Vec<ChatMessage> = (0..600).map(misestimated).collect();
        let size = (40, 10);
        let mut cache = ChatCache::default();
        let mut up = 0;
        draw_cached(&mut cache, &messages, &[], up, size, &theme);
        // Up, message by message, as `select_message` does.
        for i in (580..600).rev() {
            up = cache.scroll_showing(i, up);
            draw_cached(&mut cache, &messages, &[], up, size, &theme);
            let shown = cache.shown();
            assert!(shown.contains(&i), "{i} in {shown:?}");
            let entry = &cache.entries[i];
            assert!(entry.exact);
        }
    }
}
