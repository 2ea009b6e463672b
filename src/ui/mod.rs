//! Pure drawing: `draw(frame, engine, view, now)` reads the engine's state
//! and the view state and writes cells. Nothing here changes state, starts
//! work or touches the disk. Every untrusted string is sanitised on its way
//! to the screen (`sanitize`, `markdown`).

pub mod markdown;
mod panes;
pub mod theme;

use std::cell::Cell;
use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui_textarea::TextArea;

use crate::engine::Engine;
use crate::engine::breaker::{BreakerState, Force};
use crate::engine::limits::Backend;
use crate::engine::request::{Kind, Request};
pub use theme::Theme;

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
}

/// Where a citation overlay's passages come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CitedIn {
    /// A chat message, by index in the conversation.
    Message(usize),
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
        CitedIn::Message(i) => engine.conversations()[0]
            .messages
            .get(i)
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
#[derive(Debug)]
pub struct ViewState {
    pub focus: Focus,
    pub input: TextArea<'static>,
    pub help: bool,
    /// Help overlay: lines scrolled down, and how far it can go.
    pub help_scroll: usize,
    pub help_max_scroll: Cell<usize>,
    /// The request detail overlay for the selected lifecycle row.
    pub detail: bool,
    /// The passage overlay: citation `[n]` of a reply or a scenario.
    pub citation: Option<Citation>,
    /// Chat: lines scrolled up from the newest.
    pub chat_scroll: usize,
    /// Scenarios: the one shown (`None` follows the newest).
    pub scenario_selected: Option<usize>,
    pub scenario_scroll: usize,
    /// Lifecycle: selected row (0 is the newest).
    pub lifecycle_selected: usize,
    /// "kb 32 docs · 9 ms" once the index is built, "kb: indexing..." before.
    pub kb_status: String,
    pub theme: Theme,
    pub session: String,
    /// A first Ctrl-C was pressed with nothing to cancel.
    pub quit_armed: bool,
    /// Layout feedback written by `draw`: how far the chat and the shown
    /// scenario can scroll at the current size, so keys can clamp. Only
    /// these cells are written while drawing.
    pub chat_max_scroll: Cell<usize>,
    pub scenario_max_scroll: Cell<usize>,
}

impl ViewState {
    pub fn new(theme: Theme) -> Self {
        let mut view = Self {
            focus: Focus::Input,
            input: TextArea::default(),
            help: false,
            help_scroll: 0,
            help_max_scroll: Cell::new(0),
            detail: false,
            citation: None,
            chat_scroll: 0,
            scenario_selected: None,
            scenario_scroll: 0,
            lifecycle_selected: 0,
            kb_status: "kb: indexing...".into(),
            theme,
            session: "default".into(),
            quit_armed: false,
            chat_max_scroll: Cell::new(0),
            scenario_max_scroll: Cell::new(0),
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

    /// The scenario on screen.
    pub fn current_scenario(&self, engine: &Engine) -> Option<usize> {
        let n = engine.scenarios().len();
        if n == 0 {
            return None;
        }
        Some(self.scenario_selected.unwrap_or(n - 1).min(n - 1))
    }
}

/// The lifecycle table's rows, newest pipeline first, each followed by its
/// children in the order they started.
pub fn lifecycle_rows(engine: &Engine) -> Vec<&Request> {
    let all = engine.registry().all();
    let mut rows = Vec::with_capacity(all.len());
    for root in all.iter().rev().filter(|r| r.parent.is_none()) {
        rows.push(*root);
        for child in &root.children {
            if let Some(child) = engine.registry().get(*child) {
                rows.push(child);
            }
        }
    }
    // Children whose parent fell out of the history ring still show.
    let shown: std::collections::HashSet<_> = rows.iter().map(|r| r.id).collect();
    rows.extend(all.iter().rev().filter(|r| !shown.contains(&r.id)).copied());
    rows
}

pub fn draw(frame: &mut Frame, engine: &Engine, view: &ViewState, now: Instant) {
    let area = frame.area();
    let [main, input_area, status_area] = Layout::vertical([
        Constraint::Min(8),
        Constraint::Length(3),
        Constraint::Length(1),
    ])
    .areas(area);
    let [top, lifecycle_area] =
        Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(main);
    let [chat_area, scenario_area] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(top);

    panes::chat(frame, chat_area, engine, view);
    panes::scenarios(frame, scenario_area, engine, view);
    panes::lifecycle(frame, lifecycle_area, engine, view, now);
    input(frame, input_area, engine, view);
    status_bar(frame, status_area, engine, view);

    if view.detail {
        panes::detail(frame, area, engine, view, now);
    }
    if let Some(citation) = view.citation {
        panes::citation(frame, area, engine, view, citation);
    }
    if view.help {
        help(frame, area, view);
    }
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

fn input(frame: &mut Frame, area: Rect, engine: &Engine, view: &ViewState) {
    let focused = view.focus == Focus::Input;
    let mut block = pane_block("Input", focused, &view.theme);
    if let Some(notice) = engine.notice() {
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
    let mut textarea = view.input.clone();
    if !focused {
        textarea.set_cursor_style(Style::default());
    }
    frame.render_widget(&textarea, inner);
}

fn status_bar(frame: &mut Frame, area: Rect, engine: &Engine, view: &ViewState) {
    let t = &view.theme;
    let conv = &engine.conversations()[0];
    // Segments in display order, each with a priority (lower is kept
    // longer): on a narrow terminal the least useful ones go first, so the
    // breakers, chaos and the queue stay visible.
    let mut segments: Vec<(u8, Vec<Span<'static>>)> = vec![
        (0, vec![Span::raw(" loreweave ")]),
        (5, vec![Span::raw(format!("│ {} ", view.session))]),
        (
            2,
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
    let running = if conv.running.is_some() {
        "+1 running "
    } else {
        ""
    };
    segments.push((
        1,
        vec![Span::raw(format!("│ queue {} {running}", conv.queue.len()))],
    ));
    segments.push((4, vec![Span::raw(format!("│ {} ", view.kb_status))]));
    let keys = match view.focus {
        Focus::Input => "Enter send · Tab panes · F1 help",
        Focus::Chat => "↑↓ scroll · 1-9 open citation · q quit",
        Focus::Scenarios => "←→ pick · r regen · e export · 1-9 cite",
        Focus::Lifecycle => "Enter detail · c cancel · b breaker",
    };
    let keys_len = keys.chars().count() + 1;
    let width = |spans: &[Span<'_>]| {
        spans
            .iter()
            .map(|s| s.content.chars().count())
            .sum::<usize>()
    };
    let room = usize::from(area.width);
    // Drop the lowest-priority segments until everything fits; the keys go
    // last, before the essentials.
    let mut show_keys = true;
    loop {
        let used: usize = segments.iter().map(|(_, s)| width(s)).sum::<usize>()
            + if show_keys { keys_len } else { 0 };
        if used <= room {
            break;
        }
        let worst = segments
            .iter()
            .enumerate()
            .filter(|(_, (p, _))| *p > 0)
            .max_by_key(|(i, (p, _))| (*p, *i));
        match worst {
            Some((i, _)) => {
                segments.remove(i);
            }
            None if show_keys => show_keys = false,
            None => break,
        }
    }
    let left = Line::from(
        segments
            .into_iter()
            .flat_map(|(_, s)| s)
            .collect::<Vec<_>>(),
    );
    let right_len = if show_keys { keys_len as u16 } else { 0 };
    let [left_area, right_area] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(right_len)]).areas(area);
    frame.render_widget(Paragraph::new(left).style(t.status_bar), left_area);
    if show_keys {
        frame.render_widget(
            Paragraph::new(Line::from(format!("{keys} "))).style(t.status_bar),
            right_area,
        );
    }
}

/// Every key, grouped by where it works.
pub const HELP: &[(&str, &[(&str, &str)])] = &[
    (
        "Anywhere",
        &[
            (
                "Tab / Shift-Tab",
                "move focus: input, chat, scenarios, lifecycle",
            ),
            ("F1", "this help (also ? outside the input)"),
            ("Ctrl-C", "cancel the running reply; twice when idle: quit"),
            ("Esc", "close an overlay; from the input, focus the chat"),
        ],
    ),
    (
        "Input",
        &[
            ("Enter", "send: a question, or `generate scenario for ...`"),
            ("/scenario [--seed N] X", "generate a scenario for X"),
            ("/regen  /export", "regenerate / export the shown scenario"),
            (
                "/cancel [id]  /clear-queue",
                "cancel a request; drop queued messages",
            ),
            ("/cancel #N", "drop queued message N"),
            ("/rag on|off  /quit", "retrieval on or off; quit"),
            (
                "/chaos <backend> latency 12s",
                "inject faults: latency D, fail 50%, hang, off",
            ),
            ("/chaos off", "stop every fault injection"),
            (
                "/breaker open|close|auto <b>",
                "force a backend's breaker, or back to auto",
            ),
        ],
    ),
    (
        "Panes",
        &[
            ("↑ ↓ / j k", "scroll, or select a lifecycle row"),
            ("PgUp PgDn / Home End", "scroll by a page / to either end"),
            ("g / G", "to the top / bottom"),
            ("1 .. 9", "chat, scenarios: open the passage cited as [n]"),
            ("i, / or Esc", "back to the input"),
            ("q", "quit"),
        ],
    ),
    (
        "Scenarios",
        &[
            ("← → / h l", "previous / next scenario"),
            ("r  e", "regenerate  export to .md"),
        ],
    ),
    (
        "Request lifecycle",
        &[
            ("Enter", "timeline of the selected request"),
            ("c", "cancel it and its children"),
        ],
    ),
];

fn help_lines(
    groups: &[(&'static str, &'static [(&'static str, &'static str)])],
    t: &Theme,
) -> Vec<Line<'static>> {
    let key_width = groups
        .iter()
        .flat_map(|(_, keys)| keys.iter().map(|(k, _)| k.chars().count()))
        .max()
        .unwrap_or(0)
        + 2;
    let mut lines = Vec::new();
    for (group, keys) in groups {
        lines.push(Line::styled(*group, t.h2));
        for (key, what) in *keys {
            lines.push(Line::from(vec![
                Span::styled(format!("  {key:<key_width$}"), t.key),
                Span::raw(*what),
            ]));
        }
        lines.push(Line::default());
    }
    lines
}

/// Two columns when the terminal is wide enough, one otherwise; scrolls
/// (↑ ↓ PgUp PgDn) when it does not fit.
fn help(frame: &mut Frame, area: Rect, view: &ViewState) {
    let t = &view.theme;
    let footer = Line::styled("↑ ↓ scroll · Esc, q or ? closes this help", t.dim);
    let two_columns = area.width >= 150;
    let columns: Vec<Vec<Line<'static>>> = if two_columns {
        let split = 2;
        vec![help_lines(&HELP[..split], t), help_lines(&HELP[split..], t)]
    } else {
        vec![help_lines(HELP, t)]
    };
    let content_height = columns.iter().map(Vec::len).max().unwrap_or(0) as u16 + 1;
    let width = if two_columns { 148 } else { 96 }.min(area.width);
    let height = (content_height + 2).min(area.height);
    let popup = centered(area, width, height);
    frame.render_widget(Clear, popup);
    let block = pane_block("Keys", true, t);
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let [body, foot] = Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
    let max_scroll = content_height.saturating_sub(1).saturating_sub(body.height);
    view.help_max_scroll.set(usize::from(max_scroll));
    let scroll = u16::try_from(view.help_scroll)
        .unwrap_or(u16::MAX)
        .min(max_scroll);
    let areas = Layout::horizontal(vec![
        Constraint::Ratio(1, columns.len() as u32);
        columns.len()
    ])
    .split(body);
    for (lines, column) in columns.into_iter().zip(areas.iter()) {
        frame.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: false })
                .scroll((scroll, 0)),
            *column,
        );
    }
    frame.render_widget(Paragraph::new(footer), foot);
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

    #[test]
    fn finds_in_range_citations_once_in_order() {
        assert_eq!(citations_in("a [2] b [1][2] c [9] [x] [", 3), vec![1, 2]);
        assert_eq!(citations_in("no cites", 3), Vec::<usize>::new());
        assert_eq!(citations_in("[0] [4]", 3), Vec::<usize>::new());
    }
}
