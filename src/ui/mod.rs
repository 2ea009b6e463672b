//! Pure drawing: `draw(frame, engine, view, now)` reads the engine's state
//! and the view state and writes cells. Nothing here changes state, starts
//! work or touches the disk. Every untrusted string is sanitised on its way
//! to the screen (`sanitize`, `markdown`). The only state a draw writes is
//! view-side: layout feedback (`Cell`s) and the chat's rendered-lines cache
//! (`chat_cache`), which only ever holds what a fresh render would draw.
//!
//! Layout: [`ScreenLayout`] places the panes (or one zoomed pane), the input
//! and the status bar; below [`MIN_WIDTH`] x [`MIN_HEIGHT`] a "terminal too
//! small" message is drawn instead. Every size is safe to draw at, 0x0 too.
//! With `ViewState::ascii` the finished frame's glyphs are replaced by ASCII
//! (`ascii.rs`), so no box drawing reaches the terminal.

mod ascii;
pub mod chat_cache;
mod help;
pub mod lifecycle_view;
pub mod markdown;
pub mod notice;
mod panes;
pub mod search;
pub mod sessions;
pub mod theme;
pub mod waterfall;

use std::cell::{Cell, RefCell};
use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui_textarea::TextArea;

use crate::engine::Engine;
use crate::engine::breaker::{BreakerState, Force};
use crate::engine::limits::Backend;
use crate::engine::request::{Kind, Request};
use crate::engine::workspace::ConversationId;
use crate::keymap::{Context, Keymap};
pub use lifecycle_view::{Filter, LifecycleTable, SortBy};
pub use search::{Found, KbSearch, SEARCH_TOP_K, SearchDone, SearchResults};
pub use theme::Theme;
pub use waterfall::{Back, Waterfall};

/// Where keys go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Input,
    Chat,
    Scenarios,
    Lifecycle,
}

impl Focus {
    const ORDER: [Focus; 4] = [
        Focus::Input,
        Focus::Chat,
        Focus::Scenarios,
        Focus::Lifecycle,
    ];

    pub fn next(self) -> Self {
        let i = Self::ORDER.iter().position(|f| *f == self).unwrap_or(0);
        Self::ORDER[(i + 1) % Self::ORDER.len()]
    }

    pub fn prev(self) -> Self {
        let i = Self::ORDER.iter().position(|f| *f == self).unwrap_or(0);
        Self::ORDER[(i + Self::ORDER.len() - 1) % Self::ORDER.len()]
    }

    /// The binding context of what has the focus.
    pub fn context(self) -> Context {
        match self {
            Focus::Input => Context::Input,
            Focus::Chat => Context::Chat,
            Focus::Scenarios => Context::Scenarios,
            Focus::Lifecycle => Context::Lifecycle,
        }
    }
}

/// Where a citation overlay's passages come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CitedIn {
    /// A chat message, by index in its conversation.
    Message {
        conversation: ConversationId,
        index: usize,
    },
    /// A scenario, by index.
    Scenario(usize),
}

/// Citation `[number]` of a reply or scenario, opened by its digit key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Citation {
    pub source: CitedIn,
    pub number: usize,
}

/// The passages a reply or scenario can cite, in citation order.
pub fn cited_passages(engine: &Engine, source: CitedIn) -> &[crate::domain::Passage] {
    match source {
        CitedIn::Message {
            conversation,
            index,
        } => engine
            .conversation(conversation)
            .and_then(|c| c.messages.get(index))
            .map_or(&[][..], |m| &m.passages[..]),
        CitedIn::Scenario(i) => engine
            .scenarios()
            .get(i)
            .map_or(&[][..], |s| &s.passages[..]),
    }
}

/// Citation numbers `[n]` that appear in `text` and point at one of
/// `count` passages, ascending, each once.
pub fn citations_in(text: &str, count: usize) -> Vec<usize> {
    let mut found = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find('[') {
        rest = &rest[start + 1..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty()
            && rest[digits.len()..].starts_with(']')
            && let Ok(n) = digits.parse::<usize>()
            && (1..=count).contains(&n)
        {
            found.insert(n);
        }
    }
    found.into_iter().collect()
}

/// Everything about the screen that is not the engine's business.
/// The session picker: a filter typed so far and the selected row among
/// the sessions that match it.
#[derive(Debug, Clone, Default)]
pub struct SessionPicker {
    pub filter: String,
    pub selected: usize,
    /// Every session (most recent first), once the database answered.
    pub sessions: Option<Vec<crate::store::SessionSummary>>,
}

impl SessionPicker {
    /// The sessions whose name holds the filter (case-insensitive).
    pub fn matching(&self) -> Vec<&crate::store::SessionSummary> {
        let filter = self.filter.to_lowercase();
        self.sessions
            .iter()
            .flatten()
            .filter(|s| s.name.to_lowercase().contains(&filter))
            .collect()
    }

    /// The selected matching session.
    pub fn chosen(&self) -> Option<&crate::store::SessionSummary> {
        let matching = self.matching();
        let last = matching.len().checked_sub(1)?;
        matching.get(self.selected.min(last)).copied()
    }
}

#[derive(Debug)]
pub struct ViewState {
    /// The conversation on screen: the chat pane, the queue depth and the
    /// keys that send or cancel work on this one.
    pub current: ConversationId,
    pub focus: Focus,
    pub input: TextArea<'static>,
    pub help: bool,
    /// Help overlay: lines scrolled down, and how far it can go.
    pub help_scroll: usize,
    pub help_max_scroll: Cell<usize>,
    /// The waterfall of a request's pipeline (Enter in the lifecycle pane,
    /// or a jump from a reply or a scenario).
    pub waterfall: Option<Waterfall>,
    /// The passage overlay: citation `[n]` of a reply or a scenario.
    pub citation: Option<Citation>,
    /// The `/kb search` overlay.
    pub search: Option<KbSearch>,
    /// The session picker (`Ctrl-O`), while open.
    pub picker: Option<SessionPicker>,
    /// A session delete waiting for `y`: (session id, name).
    pub confirm_delete: Option<(i64, String)>,
    /// Renaming a session from the picker: (session id, old name, new
    /// name typed so far).
    pub rename: Option<(i64, String, String)>,
    /// `/session delete NAME` of a session not open here: its id is being
    /// looked up.
    pub pending_delete: Option<String>,
    /// The `seq` of the newest search asked for.
    pub search_seq: u64,
    /// Chat: lines scrolled up from the newest.
    pub chat_scroll: usize,
    /// Chat: the selected message (Up/Down with the chat focused; `y`
    /// copies it). `None`: nothing selected.
    pub chat_selected: Option<usize>,
    /// Scenarios: the one shown (`None` follows the newest).
    pub scenario_selected: Option<usize>,
    pub scenario_scroll: usize,
    /// Lifecycle: selected row (0 is the top of the table).
    pub lifecycle_selected: usize,
    /// Lifecycle: filter, sort and pause.
    pub lifecycle: LifecycleTable,
    /// "kb 32 docs · 9 ms" once the index is built, "kb: indexing..." before.
    pub kb_status: String,
    pub theme: Theme,
    pub session: String,
    /// A first Ctrl-C was pressed with nothing to cancel.
    pub quit_armed: bool,
    /// The key bindings: the handler looks keys up here, help and the
    /// status bar describe them.
    pub keymap: Keymap,
    /// Layout feedback written by `draw`: how far the chat and the shown
    /// scenario can scroll at the current size, so keys can clamp. Only
    /// these cells are written while drawing.
    pub chat_max_scroll: Cell<usize>,
    pub scenario_max_scroll: Cell<usize>,
    /// How far the open search passage can scroll.
    pub passage_max_scroll: Cell<usize>,
    /// The chat's rendered messages, kept between frames.
    pub chat_cache: RefCell<chat_cache::ChatCache>,
    /// The focused pane fills the screen (above the input and status bar).
    pub zoom: bool,
    /// Borders and glyphs in ASCII only (`--ascii`, `[ui] ascii`).
    pub ascii: bool,
    /// When the notice in the input's border goes (the loop observes).
    pub notices: notice::NoticeClock,
    /// Lines sent this run that are not chat messages, for recalling.
    pub sent_lines: Vec<crate::tui::input::SentLine>,
    /// An earlier input being recalled with Up/Down.
    pub recall: crate::tui::input::Recall,
    /// `[ui] max_input`: the largest message sent, in bytes.
    pub max_input: usize,
    /// Directories listed (off the loop) for Tab completion.
    pub dir_cache: std::collections::HashMap<std::path::PathBuf, crate::tui::complete::Listing>,
    /// Every stored session's name, as last read (for Tab completion).
    pub session_names: Vec<String>,
}

impl ViewState {
    pub fn new(theme: Theme, current: ConversationId) -> Self {
        let mut view = Self {
            current,
            focus: Focus::Input,
            input: TextArea::default(),
            help: false,
            help_scroll: 0,
            help_max_scroll: Cell::new(0),
            waterfall: None,
            citation: None,
            search: None,
            picker: None,
            confirm_delete: None,
            rename: None,
            pending_delete: None,
            search_seq: 0,
            chat_scroll: 0,
            chat_selected: None,
            scenario_selected: None,
            scenario_scroll: 0,
            lifecycle_selected: 0,
            lifecycle: LifecycleTable::default(),
            kb_status: "kb: indexing...".into(),
            theme,
            session: "default".into(),
            quit_armed: false,
            keymap: Keymap::default(),
            chat_max_scroll: Cell::new(0),
            scenario_max_scroll: Cell::new(0),
            passage_max_scroll: Cell::new(0),
            chat_cache: RefCell::default(),
            zoom: false,
            ascii: false,
            notices: notice::NoticeClock::default(),
            sent_lines: Vec::new(),
            recall: crate::tui::input::Recall::default(),
            max_input: 100_000,
            dir_cache: std::collections::HashMap::new(),
            session_names: Vec::new(),
        };
        view.reset_input();
        view
    }

    /// An empty input line with its placeholder.
    pub fn reset_input(&mut self) {
        let mut input = TextArea::default();
        input.set_placeholder_text(
            "Ask the lore, or: generate scenario for the first encounter  (/help)",
        );
        input.set_cursor_line_style(Style::default());
        input.set_placeholder_style(self.theme.dim);
        self.input = input;
    }

    /// Where keys go now: the open overlay, else the focused pane.
    pub fn key_context(&self) -> Context {
        if self.help {
            Context::Help
        } else if self.waterfall.is_some() {
            Context::Detail
        } else if self.citation.is_some() {
            Context::Citation
        } else if self.search.is_some() {
            Context::Search
        } else {
            self.focus.context()
        }
    }

    /// Open the search overlay, waiting for the results of `query`; the
    /// number the results must come back with.
    pub fn open_search(&mut self, query: String) -> u64 {
        self.search_seq += 1;
        self.search = Some(KbSearch::new(self.search_seq, query));
        self.search_seq
    }

    /// Show a finished search, if the overlay that asked for it is still
    /// open and waiting; whether it was shown.
    pub fn search_finished(&mut self, done: SearchDone) -> bool {
        match &mut self.search {
            Some(search) if search.seq == done.seq && search.results == SearchResults::Pending => {
                search.results = match done.result {
                    Ok(found) => SearchResults::Found(found),
                    Err(error) => SearchResults::Failed(error),
                };
                search.selected = 0;
                true
            }
            _ => false,
        }
    }

    /// The pane a zoom shows: the focused one, or the chat while the
    /// input has the focus.
    pub fn zoomed(&self) -> Focus {
        match self.focus {
            Focus::Input => Focus::Chat,
            pane => pane,
        }
    }

    /// The scenario on screen.
    /// (An index, stable while the scenario is held: see
    /// [`crate::engine::scenarios::ScenarioLog`].)
    pub fn current_scenario(&self, engine: &Engine) -> Option<usize> {
        let scenarios = engine.scenarios();
        let last = scenarios.end().checked_sub(1)?;
        if scenarios.is_empty() {
            return None;
        }
        Some(
            self.scenario_selected
                .unwrap_or(last)
                .clamp(scenarios.first(), last),
        )
    }
}

/// The lifecycle table's rows, newest pipeline first, each followed by its
/// children in the order they started; then the requests whose parent left
/// the history ring (or never listed them), newest first.
pub fn lifecycle_rows(engine: &Engine) -> Vec<&Request> {
    lifecycle_rows_from(engine, 0).collect()
}

/// How many rows the lifecycle table has: one per retained request.
pub fn lifecycle_row_count(engine: &Engine) -> usize {
    engine.registry().retained_len()
}

/// The lifecycle table's row `index`, as [`lifecycle_rows`] orders them,
/// without building the others.
pub fn lifecycle_row(engine: &Engine, index: usize) -> Option<&Request> {
    lifecycle_rows_from(engine, index).next()
}

/// The lifecycle table's rows from `first` on, built as they are taken: the
/// cost is the rows skipped and taken, never a sort of the whole history
/// (the registry keeps roots and detached requests in creation order).
pub fn lifecycle_rows_from(engine: &Engine, first: usize) -> impl Iterator<Item = &Request> {
    let registry = engine.registry();
    let detached_from = registry
        .retained_len()
        .saturating_sub(registry.detached_len());
    // Rows in the detached tail are reached without walking the roots.
    let (roots, skip_roots, skip_detached) = if first >= detached_from {
        (0, 0, first - detached_from)
    } else {
        (usize::MAX, first, 0)
    };
    registry
        .roots_newest_first()
        .take(roots)
        .flat_map(move |root| {
            std::iter::once(root).chain(
                root.children
                    .iter()
                    .filter_map(move |child| registry.get(*child)),
            )
        })
        .skip(skip_roots)
        .chain(registry.detached_newest_first().skip(skip_detached))
}

/// Below this size the panes are replaced by a "terminal too small"
/// message: at 40x12 every pane still shows a few lines (the main area
/// keeps its 8 rows) and the status bar its essentials.
pub const MIN_WIDTH: u16 = 40;
pub const MIN_HEIGHT: u16 = 12;

/// Where everything goes at one terminal size: the three panes (a zoomed
/// pane gets the whole main area, the others none), the input and the
/// status bar. `None` below [`MIN_WIDTH`] x [`MIN_HEIGHT`]. The mouse
/// handler reads the same rectangles the frame was drawn with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScreenLayout {
    pub chat: Rect,
    pub scenarios: Rect,
    pub lifecycle: Rect,
    pub input: Rect,
    pub status: Rect,
}

/// Rows of the main area the frame keeps at the least.
const MAIN_MIN_ROWS: u16 = 8;

/// `Layout::vertical([Min(8), Length(input), Length(1)])` for an area at
/// least [`MIN_HEIGHT`] tall, computed directly: the main area, the input
/// and the status bar. ratatui solves its layouts with a constraint solver
/// (kasuari), and the first solve of these three cost 0.71 M of the 5.96 M
/// instructions an empty-home start ran to its first frame (callgrind); a
/// test checks these splits against ratatui's at every size.
fn rows(area: Rect, input: u16) -> [Rect; 3] {
    // Too short for both: the input gives way, as ratatui's solver does.
    let input = input.min(area.height.saturating_sub(MAIN_MIN_ROWS + 1));
    let main = area.height.saturating_sub(input + 1);
    [
        Rect::new(area.x, area.y, area.width, main),
        Rect::new(area.x, area.y + main, area.width, input),
        Rect::new(
            area.x,
            area.y + main + input,
            area.width,
            area.height - main - input,
        ),
    ]
}

/// `Layout::vertical([Length(top), Min(min), Length(bottom)])` over `area`,
/// computed directly when all three fit (as [`rows`] is, and for the same
/// reason: these run on every frame, the first included); ratatui's solver
/// settles the rare area too small for them. A test checks both against
/// ratatui's at every size.
pub(crate) fn stack(area: Rect, top: u16, min: u16, bottom: u16) -> [Rect; 3] {
    let fixed = u32::from(top) + u32::from(bottom);
    if fixed + u32::from(min) > u32::from(area.height) {
        return Layout::vertical([
            Constraint::Length(top),
            Constraint::Min(min),
            Constraint::Length(bottom),
        ])
        .areas(area);
    }
    let middle = area.height - top - bottom;
    [
        Rect::new(area.x, area.y, area.width, top),
        Rect::new(area.x, area.y + top, area.width, middle),
        Rect::new(area.x, area.y + top + middle, area.width, bottom),
    ]
}

/// `Layout::horizontal([Min(0), Length(end)])` over `area`: the rest, then
/// `end` cells at the right, computed directly when they fit (see
/// [`stack`]).
pub(crate) fn split_end(area: Rect, end: u16) -> [Rect; 2] {
    if end > area.width {
        return Layout::horizontal([Constraint::Min(0), Constraint::Length(end)]).areas(area);
    }
    let rest = area.width - end;
    [
        Rect::new(area.x, area.y, rest, area.height),
        Rect::new(area.x + rest, area.y, end, area.height),
    ]
}

/// The first part of `[Percentage(55), Percentage(45)]` over `n` cells, as
/// ratatui rounds it (55 % of `n`, halves up); the second gets the rest.
fn share_55(n: u16) -> u16 {
    u16::try_from((u32::from(n) * 55 + 50) / 100).unwrap_or(n)
}

impl ScreenLayout {
    pub fn of(area: Rect, view: &ViewState) -> Option<Self> {
        if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
            return None;
        }
        let [main, input, status] = rows(area, input_height(view));
        let none = Rect::new(main.x, main.y, 0, 0);
        if view.zoom {
            let mut out = Self {
                chat: none,
                scenarios: none,
                lifecycle: none,
                input,
                status,
            };
            match view.zoomed() {
                Focus::Scenarios => out.scenarios = main,
                Focus::Lifecycle => out.lifecycle = main,
                _ => out.chat = main,
            }
            return Some(out);
        }
        let top_rows = share_55(main.height);
        let top = Rect::new(main.x, main.y, main.width, top_rows);
        let lifecycle = Rect::new(
            main.x,
            main.y + top_rows,
            main.width,
            main.height - top_rows,
        );
        let chat_cols = share_55(top.width);
        let chat = Rect::new(top.x, top.y, chat_cols, top.height);
        let scenarios = Rect::new(top.x + chat_cols, top.y, top.width - chat_cols, top.height);
        Some(Self {
            chat,
            scenarios,
            lifecycle,
            input,
            status,
        })
    }

    /// The pane at a screen position, if any.
    pub fn pane_at(&self, column: u16, row: u16) -> Option<Focus> {
        let at = ratatui::layout::Position::new(column, row);
        [
            (self.chat, Focus::Chat),
            (self.scenarios, Focus::Scenarios),
            (self.lifecycle, Focus::Lifecycle),
            (self.input, Focus::Input),
        ]
        .into_iter()
        .find(|(r, _)| r.contains(at))
        .map(|(_, f)| f)
    }
}

pub fn draw(frame: &mut Frame, engine: &Engine, view: &ViewState, now: Instant) {
    draw_screen(frame, engine, view, now);
    if view.ascii {
        ascii::downgrade(frame.buffer_mut());
    }
}

fn draw_screen(frame: &mut Frame, engine: &Engine, view: &ViewState, now: Instant) {
    let area = frame.area();
    let Some(layout) = ScreenLayout::of(area, view) else {
        too_small(frame, area, view);
        return;
    };
    let ScreenLayout {
        chat: chat_area,
        scenarios: scenario_area,
        lifecycle: lifecycle_area,
        input: input_area,
        status: status_area,
    } = layout;

    if !chat_area.is_empty() {
        panes::chat(frame, chat_area, engine, view);
    }
    if !scenario_area.is_empty() {
        panes::scenarios(frame, scenario_area, engine, view);
    }
    if !lifecycle_area.is_empty() {
        panes::lifecycle(frame, lifecycle_area, engine, view, now);
    }
    input(frame, input_area, engine, view, now);
    status_bar(frame, status_area, engine, view);

    if let Some(open) = &view.waterfall {
        waterfall::draw(frame, area, engine, view, open, now);
    }
    if let Some(citation) = view.citation {
        panes::citation(frame, area, engine, view, citation);
    }
    if let Some(search) = &view.search {
        search::draw(frame, area, view, search);
    }
    sessions::picker(frame, area, view);
    sessions::confirm(frame, area, view);
    sessions::rename(frame, area, view);
    if view.help {
        help::draw(frame, area, view);
    }
}

/// The message that replaces the panes below the minimum size.
fn too_small(frame: &mut Frame, area: Rect, view: &ViewState) {
    let t = &view.theme;
    let lines = vec![
        Line::styled("terminal too small", t.warn),
        Line::raw(format!("need {MIN_WIDTH} x {MIN_HEIGHT}")),
        Line::styled(format!("now {} x {}", area.width, area.height), t.dim),
    ];
    let height = u16::try_from(lines.len()).unwrap_or(u16::MAX);
    let top = area.y + area.height.saturating_sub(height) / 2;
    let rect = Rect::new(area.x, top, area.width, height.min(area.height));
    frame.render_widget(
        Paragraph::new(lines)
            .alignment(ratatui::layout::Alignment::Center)
            .wrap(ratatui::widgets::Wrap { trim: true }),
        rect,
    );
}

/// The request-lifecycle pane alone, in `area` (`loreweave load`'s live
/// view).
pub fn draw_lifecycle(
    frame: &mut Frame,
    area: ratatui::layout::Rect,
    engine: &Engine,
    view: &ViewState,
    now: Instant,
) {
    panes::lifecycle(frame, area, engine, view, now);
}

pub(crate) fn pane_block<'a>(title: &'a str, focused: bool, theme: &Theme) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(if focused {
            theme.border_focused
        } else {
            theme.border
        })
        .title(Span::styled(format!(" {title} "), theme.title))
}

/// The most lines the input shows; past them it scrolls.
pub const INPUT_MAX_ROWS: u16 = 6;

/// The input's height with its border: it grows with its lines up to
/// [`INPUT_MAX_ROWS`].
fn input_height(view: &ViewState) -> u16 {
    let rows = u16::try_from(view.input.lines().len()).unwrap_or(u16::MAX);
    rows.clamp(1, INPUT_MAX_ROWS) + 2
}

fn input(frame: &mut Frame, area: Rect, engine: &Engine, view: &ViewState, now: Instant) {
    let focused = view.focus == Focus::Input;
    let mut block = pane_block("Input", focused, &view.theme);
    if let Some(notice) = view.notices.visible(engine, now) {
        let style = if notice.is_error {
            view.theme.error
        } else {
            view.theme.ok
        };
        let text = crate::sanitize::one_line(&notice.text);
        block = block
            .title_bottom(Line::from(Span::styled(format!(" {text} "), style)).right_aligned());
    }
    if view.quit_armed {
        block = block.title_bottom(
            Line::from(Span::styled(
                " press Ctrl-C again to quit ",
                view.theme.warn,
            ))
            .left_aligned(),
        );
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if focused {
        // Drawn in place (no copy of what may be a large paste); it keeps
        // its scroll position between frames.
        frame.render_widget(&view.input, inner);
    } else {
        let mut textarea = view.input.clone();
        textarea.set_cursor_style(Style::default());
        frame.render_widget(&textarea, inner);
    }
}

fn status_bar(frame: &mut Frame, area: Rect, engine: &Engine, view: &ViewState) {
    let t = &view.theme;
    let conv = engine.conversation(view.current);
    // Segments in display order, each with a priority (lower is kept
    // longer): on a narrow terminal the least useful ones go first, so the
    // breakers, chaos and the queue stay visible.
    let mut segments: Vec<(u8, Vec<Span<'static>>)> = vec![
        (0, vec![Span::raw(" loreweave ")]),
        (5, vec![Span::raw(format!("│ {} ", view.session))]),
        (
            3,
            vec![Span::raw(format!(
                "│ RAG {} ",
                if engine.config().rag { "on" } else { "off" }
            ))],
        ),
    ];
    let mut backends = vec![Span::raw("│ ")];
    for (name, backend) in engine.backends() {
        let (symbol, style) = breaker_badge(backend, t);
        backends.push(Span::raw(format!("{} ", crate::sanitize::one_line(name))));
        backends.push(Span::styled(symbol, style));
        backends.push(Span::raw(" "));
    }
    segments.push((0, backends));
    if !engine.chaos().is_empty() {
        let active: Vec<String> = engine
            .chaos()
            .iter()
            .map(|(b, m)| format!("{b} {m}"))
            .collect();
        segments.push((
            0,
            vec![Span::styled(
                format!("│ CHAOS {} ", active.join(", ")),
                t.error,
            )],
        ));
    }
    let running = if conv.is_some_and(|c| c.running.is_some()) {
        "+1 running "
    } else {
        ""
    };
    let queued = conv.map_or(0, |c| c.queue.len());
    segments.push((1, vec![Span::raw(format!("│ queue {queued} {running}"))]));
    segments.push((2, vec![Span::raw(format!("│ {} ", view.kb_status))]));
    // The focused pane's key hints, most useful first.
    let mut hints = view.keymap.hints(view.focus.context());
    let keys_len = |hints: &[String]| match hints {
        [] => 0,
        _ => hints.iter().map(|h| h.chars().count()).sum::<usize>() + 3 * (hints.len() - 1) + 1,
    };
    let width = |spans: &[Span<'_>]| {
        spans
            .iter()
            .map(|s| s.content.chars().count())
            .sum::<usize>()
    };
    let room = usize::from(area.width);
    // Drop the lowest-priority segments until everything fits; the key
    // hints go last (least useful first), before the essentials.
    loop {
        let used: usize = segments.iter().map(|(_, s)| width(s)).sum::<usize>() + keys_len(&hints);
        if used <= room {
            break;
        }
        let worst = segments
            .iter()
            .enumerate()
            .filter(|(_, (p, _))| *p > 0)
            .max_by_key(|(i, (p, _))| (*p, *i));
        match worst {
            // The knowledge base in use outlasts all but the most useful
            // key hint.
            Some((_, (p, _))) if *p <= 2 && hints.len() > 1 => {
                hints.pop();
            }
            Some((i, _)) => {
                segments.remove(i);
            }
            None if !hints.is_empty() => {
                hints.pop();
            }
            None => break,
        }
    }
    let left = Line::from(
        segments
            .into_iter()
            .flat_map(|(_, s)| s)
            .collect::<Vec<_>>(),
    );
    let right_len = u16::try_from(keys_len(&hints)).unwrap_or(u16::MAX);
    let [left_area, right_area] = split_end(area, right_len);
    frame.render_widget(Paragraph::new(left).style(t.status_bar), left_area);
    if !hints.is_empty() {
        frame.render_widget(
            Paragraph::new(Line::from(format!("{} ", hints.join(" · ")))).style(t.status_bar),
            right_area,
        );
    }
}

pub(crate) fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let x = area.x + area.width.saturating_sub(width) / 2;
    let y = area.y + area.height.saturating_sub(height) / 2;
    Rect::new(x, y, width.min(area.width), height.min(area.height))
}

/// The breaker at a glance: ● closed, ◐ half-open, ○ open (forced states
/// show as open/closed), with a colour where colours are on.
pub(crate) fn breaker_badge(backend: &Backend, t: &Theme) -> (&'static str, Style) {
    if backend.breaker.is_rejecting() {
        return ("○", t.error);
    }
    match (backend.breaker.force(), backend.breaker.state()) {
        (Force::Closed, _) | (Force::Auto, BreakerState::Closed { .. }) => ("●", t.ok),
        _ => ("◐", t.warn),
    }
}

/// "└ retrieve" for children, "scenario" for roots.
pub(crate) fn kind_cell(request: &Request) -> String {
    if request.parent.is_some() {
        format!("└ {}", request.kind.label())
    } else {
        request.kind.label().to_string()
    }
}

pub(crate) fn is_generation(kind: Kind) -> bool {
    matches!(kind, Kind::Chat | Kind::Generate)
}

#[cfg(test)]
mod tests {
    use super::citations_in;
    use super::{INPUT_MAX_ROWS, MIN_HEIGHT, rows, share_55, split_end, stack};
    use ratatui::layout::{Constraint, Layout, Rect};

    #[test]
    fn the_screen_splits_are_ratatuis_at_every_size() {
        for n in 0..=2000u16 {
            let area = Rect::new(3, 2, n, n);
            let [left, right] =
                Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                    .areas(area);
            let first = share_55(n);
            assert_eq!(
                (left.width, right.x, right.width),
                (first, 3 + first, n - first),
                "{n}"
            );
            let [top, bottom] =
                Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)])
                    .areas(area);
            assert_eq!(
                (top.height, bottom.y, bottom.height),
                (first, 2 + first, n - first)
            );
        }
        for height in MIN_HEIGHT..=300 {
            for input in 3..=INPUT_MAX_ROWS + 2 {
                let area = Rect::new(1, 4, 80, height);
                let solved = Layout::vertical([
                    Constraint::Min(8),
                    Constraint::Length(input),
                    Constraint::Length(1),
                ])
                .areas::<3>(area);
                assert_eq!(rows(area, input), solved, "height {height}, input {input}");
            }
        }
    }

    #[test]
    fn the_pane_splits_are_ratatuis_at_every_size() {
        for height in 0..=60u16 {
            let area = Rect::new(2, 5, 30, height);
            for top in 0..=12 {
                for bottom in 0..=3 {
                    for min in 0..=1 {
                        let solved = Layout::vertical([
                            Constraint::Length(top),
                            Constraint::Min(min),
                            Constraint::Length(bottom),
                        ])
                        .areas::<3>(area);
                        assert_eq!(
                            stack(area, top, min, bottom),
                            solved,
                            "height {height}: {top}, min {min}, {bottom}"
                        );
                    }
                }
            }
            // The scenarios pane's title row and body.
            let [a, b] =
                Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas::<2>(area);
            let [x, y, _] = stack(area, 1, 0, 0);
            assert_eq!([x, y], [a, b], "height {height}");
        }
        for width in 0..=200u16 {
            for end in (0..=220).step_by(7) {
                let area = Rect::new(4, 1, width, 1);
                let solved = Layout::horizontal([Constraint::Min(0), Constraint::Length(end)])
                    .areas::<2>(area);
                assert_eq!(split_end(area, end), solved, "width {width}, end {end}");
            }
        }
    }

    #[test]
    fn finds_in_range_citations_once_in_order() {
        assert_eq!(citations_in("a [2] b [1][2] c [9] [x] [", 3), vec![1, 2]);
        assert_eq!(citations_in("no cites", 3), Vec::<usize>::new());
        assert_eq!(citations_in("[0] [4]", 3), Vec::<usize>::new());
    }
}
