//! The waterfall: a request's pipeline (its root and every descendant) as
//! one horizontal bar per request against a shared time axis, with the
//! selected bar's typed events beneath. Enter in the lifecycle pane opens
//! it; `w` from a chat reply or the shown scenario jumps to it (and back).
//!
//! Invariants:
//! - Bars are derived from the typed timeline ([`lane`]), never from text:
//!   queued from creation to the first dispatch, in flight from a dispatch
//!   to the first token or the end, streaming from the first token to the
//!   end, backoff from a scheduled retry to the next dispatch, and the
//!   observed tail of a call watched past its deadline.
//! - Times on screen are milliseconds from the root's creation. The axis
//!   runs from 0 to the furthest thing drawn (a bar's end, a late arrival,
//!   an observed call still running), so every late marker is on it; live
//!   bars end at `now` and grow with it.
//! - Every glyph is in [`GLYPHS`]; each segment kind has its own glyph as
//!   well as its own colour, so the waterfall reads with `NO_COLOR`.
//! - Drawing is pure and costs the pipeline, never the history: only the
//!   bars on screen and the selected bar's events become lines.

use std::time::{Duration, Instant};

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

use super::{Focus, Theme, ViewState, centered, pane_block};
use crate::engine::Engine;
use crate::engine::event::EventKind;
use crate::engine::request::{
    DeadlinePolicy, Outcome, Request, RequestId, TimelineEntry, format_duration, millis,
};
use crate::keymap::Context;
use crate::sanitize::one_line;

/// The open waterfall: whose pipeline, which bar is selected, and where a
/// jump came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waterfall {
    /// The pipeline's root request.
    pub root: RequestId,
    /// The selected bar (0 is the root).
    pub selected: usize,
    /// Set when a jump opened it: where the return key goes back to.
    pub back: Option<Back>,
}

/// Where the jump to a waterfall came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Back {
    pub focus: Focus,
    pub lifecycle_selected: usize,
}

/// One stretch of a request's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// Created, waiting for a slot, a rate token or a leader.
    Queued,
    /// Handed to the backend; no token or result yet.
    InFlight,
    /// Tokens arriving.
    Streaming,
    /// Waiting for a retry's delay to pass.
    Backoff,
    /// Past its end, the call still runs, watched for a late arrival.
    Observed,
}

/// A segment, in milliseconds from its request's creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub kind: SegmentKind,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// A request's bar, derived from its timeline; milliseconds from its
/// creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lane {
    pub segments: Vec<Segment>,
    /// Its final event's time, or `now` while it is live.
    pub end_ms: u64,
    /// Whether a final event was seen.
    pub ended: bool,
    /// Late arrivals (and late drops).
    pub late_ms: Vec<u64>,
    /// The furthest time the bar shows: its end, its observed tail, its
    /// late arrivals.
    pub reach_ms: u64,
}

/// Derive a request's segments from its timeline. `now_ms` (from the
/// request's creation) closes what is still open: a live request's last
/// segment, or an observed call still watched.
pub fn lane(timeline: &[TimelineEntry], now_ms: u64) -> Lane {
    type Open = Option<(SegmentKind, u64)>;
    fn close(segments: &mut Vec<Segment>, open: &mut Open, at: u64) {
        if let Some((kind, start)) = open.take()
            && at > start
        {
            segments.push(Segment {
                kind,
                start_ms: start,
                end_ms: at,
            });
        }
    }
    fn switch(segments: &mut Vec<Segment>, open: &mut Open, kind: SegmentKind, at: u64) {
        if open.is_some_and(|(k, _)| k == kind) {
            return;
        }
        close(segments, open, at);
        *open = Some((kind, at));
    }
    let mut segments = Vec::new();
    let mut open: Open = Some((SegmentKind::Queued, 0));
    let mut end = None;
    let mut late_ms = Vec::new();
    for entry in timeline {
        let at = entry.offset_ms;
        let s = &mut segments;
        if end.is_some() {
            // Past the end, events only ever concern an observed call.
            match &entry.event {
                EventKind::Observed { .. } => switch(s, &mut open, SegmentKind::Observed, at),
                EventKind::LateArrival(_) => {
                    late_ms.push(at);
                    if open.is_some_and(|(k, _)| k == SegmentKind::Observed) {
                        close(s, &mut open, at);
                    }
                }
                EventKind::Abandoned { .. } => close(s, &mut open, at),
                _ => {}
            }
            continue;
        }
        match &entry.event {
            EventKind::Dispatched { .. } | EventKind::Working | EventKind::TookOver { .. } => {
                switch(s, &mut open, SegmentKind::InFlight, at);
            }
            EventKind::FirstToken => switch(s, &mut open, SegmentKind::Streaming, at),
            EventKind::RetryScheduled { .. } => switch(s, &mut open, SegmentKind::Backoff, at),
            EventKind::Final { .. } => {
                close(s, &mut open, at);
                end = Some(at);
            }
            EventKind::LateArrival(_) => late_ms.push(at),
            _ => {}
        }
    }
    let end_ms = end.unwrap_or(now_ms);
    // What is still open (a live request's segment, a watched call) runs
    // to now.
    close(&mut segments, &mut open, now_ms);
    let reach_ms = segments
        .iter()
        .map(|s| s.end_ms)
        .chain(late_ms.iter().copied())
        .chain([end_ms])
        .max()
        .unwrap_or(end_ms);
    Lane {
        segments,
        end_ms,
        ended: end.is_some(),
        late_ms,
        reach_ms,
    }
}

/// The bar of a finished request whose timeline has no typed events (saved
/// before events were typed, restored with a session): queued until its
/// dispatch, in flight until its end.
fn untyped_lane(r: &Request) -> Lane {
    let since = |at: Instant| millis(at.saturating_duration_since(r.created));
    let end_ms = r.ended.map_or(0, since);
    let dispatched_ms = r.dispatched.map_or(end_ms, since).min(end_ms);
    let segments = [
        (SegmentKind::Queued, 0, dispatched_ms),
        (SegmentKind::InFlight, dispatched_ms, end_ms),
    ]
    .into_iter()
    .filter(|(_, start, end)| end > start)
    .map(|(kind, start_ms, end_ms)| Segment {
        kind,
        start_ms,
        end_ms,
    })
    .collect();
    Lane {
        segments,
        end_ms,
        ended: true,
        late_ms: Vec::new(),
        reach_ms: end_ms,
    }
}

/// Where a request's deadline fell, in milliseconds from its creation:
/// at the end of a timed-out request; where it stands for a live one; at
/// creation + budget for a finished one with a total budget (deadlines run
/// from submission). `None` for parents, unbounded work and finished
/// streams (whose idle deadline moved with every token).
pub fn deadline_ms(r: &Request, lane: &Lane) -> Option<u64> {
    if matches!(
        r.policy,
        DeadlinePolicy::Children | DeadlinePolicy::Unbounded
    ) {
        // A parent times out with its child: the deadline is the child's.
        return None;
    }
    if matches!(r.outcome(), Some(Outcome::TimedOut)) {
        return Some(lane.end_ms);
    }
    if r.outcome().is_none() {
        return r
            .deadline
            .map(|d| millis(d.saturating_duration_since(r.created)));
    }
    match r.policy {
        DeadlinePolicy::Total(budget) => Some(millis(budget)),
        _ => None,
    }
}

/// The root of `id`'s pipeline: its furthest ancestor still retained.
pub fn root_of(engine: &Engine, id: RequestId) -> Option<&Request> {
    let mut request = engine.registry().get(id)?;
    // Bounded: pipelines are a few levels deep.
    for _ in 0..16 {
        match request.parent.and_then(|p| engine.registry().get(p)) {
            Some(parent) => request = parent,
            None => break,
        }
    }
    Some(request)
}

/// The most bars a waterfall lists.
pub const MAX_BARS: usize = 256;

/// The root and its descendants, depth first, children in the order they
/// started; with their depth (0 for the root).
pub fn pipeline<'e>(engine: &'e Engine, root: &'e Request) -> Vec<(usize, &'e Request)> {
    let mut out = Vec::new();
    let mut stack = vec![(0usize, root)];
    while let Some((depth, r)) = stack.pop() {
        out.push((depth, r));
        if out.len() >= MAX_BARS {
            break;
        }
        if depth < 8 {
            stack.extend(
                r.children
                    .iter()
                    .rev()
                    .filter_map(|c| engine.registry().get(*c))
                    .map(|c| (depth + 1, c)),
            );
        }
    }
    out
}

/// How many bars the waterfall of `root` has.
pub fn bar_count(engine: &Engine, root: RequestId) -> usize {
    engine
        .registry()
        .get(root)
        .map_or(0, |r| pipeline(engine, r).len())
}

/// Which bar of `root`'s waterfall shows `id`.
pub fn bar_index(engine: &Engine, root: RequestId, id: RequestId) -> Option<usize> {
    let root = engine.registry().get(root)?;
    pipeline(engine, root).iter().position(|(_, r)| r.id == id)
}

/// Every glyph the waterfall draws (an ASCII set can sit beside it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Glyphs {
    pub queued: char,
    pub in_flight: char,
    pub streaming: char,
    pub backoff: char,
    pub observed: char,
    pub deadline: char,
    pub late: char,
    pub live: char,
    pub completed: char,
    pub failed: char,
    pub timed_out: char,
    pub cancelled: char,
    pub short_circuited: char,
    pub joined: char,
}

pub const GLYPHS: Glyphs = Glyphs {
    queued: '░',
    in_flight: '█',
    streaming: '▓',
    backoff: '·',
    observed: '╌',
    deadline: '┆',
    late: '◆',
    live: '▸',
    completed: '✓',
    failed: '✗',
    timed_out: '⏱',
    cancelled: '⊘',
    short_circuited: '○',
    joined: '↪',
};

impl Glyphs {
    pub fn segment(&self, kind: SegmentKind) -> char {
        match kind {
            SegmentKind::Queued => self.queued,
            SegmentKind::InFlight => self.in_flight,
            SegmentKind::Streaming => self.streaming,
            SegmentKind::Backoff => self.backoff,
            SegmentKind::Observed => self.observed,
        }
    }

    pub fn outcome(&self, outcome: &Outcome) -> char {
        match outcome {
            Outcome::Completed => self.completed,
            Outcome::Failed(_) => self.failed,
            Outcome::TimedOut => self.timed_out,
            Outcome::Cancelled => self.cancelled,
            Outcome::ShortCircuited => self.short_circuited,
            Outcome::Joined(_) => self.joined,
        }
    }
}

fn segment_style(kind: SegmentKind, t: &Theme) -> Style {
    match kind {
        SegmentKind::Queued => t.wf_queued,
        SegmentKind::InFlight => t.wf_flight,
        SegmentKind::Streaming => t.wf_stream,
        SegmentKind::Backoff => t.wf_backoff,
        SegmentKind::Observed => t.dim,
    }
}

fn outcome_style(outcome: &Outcome, t: &Theme) -> Style {
    match outcome {
        Outcome::Completed | Outcome::Joined(_) => t.ok,
        Outcome::Cancelled => t.warn,
        _ => t.error,
    }
}

/// An event's style, by variant.
pub fn event_style(event: &EventKind, t: &Theme) -> Style {
    if event.is_error() {
        t.error
    } else if event.is_warning() || event.is_late() {
        t.warn
    } else if matches!(
        event,
        EventKind::Final {
            outcome: Outcome::Completed
        }
    ) {
        t.ok
    } else {
        t.dim
    }
}

/// A request as one bar: where it starts on the axis and what it did.
#[derive(Debug, Clone)]
struct Bar<'e> {
    request: &'e Request,
    depth: usize,
    /// From the root's creation to this request's.
    start_ms: u64,
    lane: Lane,
    deadline_ms: Option<u64>,
}

impl<'e> Bar<'e> {
    fn of(request: &'e Request, depth: usize, origin: Instant, now: Instant) -> Self {
        let now_ms = millis(now.saturating_duration_since(request.created));
        let mut lane = lane(&request.timeline, now_ms);
        if !lane.ended && request.outcome().is_some() {
            lane = untyped_lane(request);
        }
        Bar {
            request,
            depth,
            start_ms: millis(request.created.saturating_duration_since(origin)),
            deadline_ms: deadline_ms(request, &lane),
            lane,
        }
    }

    fn reach_ms(&self) -> u64 {
        self.start_ms.saturating_add(self.lane.reach_ms)
    }
}

/// The cells of one bar, `width` wide, on an axis of `total` ms. The last
/// two cells are room for the end glyph and a marker past the axis end.
fn bar_cells(bar: &Bar<'_>, total: u64, width: usize, t: &Theme) -> Vec<(char, Style)> {
    let g = &GLYPHS;
    let mut cells = vec![(' ', Style::default()); width];
    if width == 0 {
        return cells;
    }
    let axis = u64::try_from(width.saturating_sub(2).max(1)).unwrap_or(1);
    let total = total.max(1);
    let col = |ms: u64| -> usize {
        let ms = ms.min(total);
        usize::try_from((ms * axis + total / 2) / total).unwrap_or(0)
    };
    let mut filled_to = None;
    for seg in &bar.lane.segments {
        let (s, e) = (bar.start_ms + seg.start_ms, bar.start_ms + seg.end_ms);
        let from = col(s).min(width - 1);
        let to = col(e).max(from + 1).min(width);
        for cell in &mut cells[from..to] {
            *cell = (g.segment(seg.kind), segment_style(seg.kind, t));
        }
        if seg.kind != SegmentKind::Observed {
            filled_to = Some(to);
        }
    }
    // Markers never cover each other: a later one moves right.
    let mut marked = vec![false; width];
    let mut put = |cells: &mut Vec<(char, Style)>, at: usize, ch: char, style: Style| {
        if let Some(i) = (at..width).find(|i| !marked[*i]) {
            cells[i] = (ch, style);
            marked[i] = true;
        }
    };
    let total_ms = total;
    if let Some(d) = bar.deadline_ms.map(|d| bar.start_ms + d)
        && d <= total_ms
    {
        put(&mut cells, col(d), g.deadline, t.warn);
    }
    let end_at = col(bar.start_ms + bar.lane.end_ms).max(filled_to.unwrap_or(0));
    match bar.request.outcome() {
        Some(outcome) => put(
            &mut cells,
            end_at,
            g.outcome(outcome),
            outcome_style(outcome, t),
        ),
        None => {
            let style = bar
                .lane
                .segments
                .last()
                .map_or(t.dim, |s| segment_style(s.kind, t));
            put(&mut cells, end_at, g.live, style);
        }
    }
    for late in &bar.lane.late_ms {
        put(&mut cells, col(bar.start_ms + late), g.late, t.error);
    }
    cells
}

/// Cells as spans, one per run of the same style.
fn cells_to_spans(cells: Vec<(char, Style)>) -> Vec<Span<'static>> {
    let mut spans: Vec<Span<'static>> = Vec::new();
    let mut run = String::new();
    let mut style = None;
    for (ch, s) in cells {
        if style != Some(s) {
            if let Some(prev) = style {
                spans.push(Span::styled(std::mem::take(&mut run), prev));
            }
            style = Some(s);
        }
        run.push(ch);
    }
    if let Some(prev) = style {
        spans.push(Span::styled(run, prev));
    }
    spans
}

/// `text` cut or padded to `width` columns (counted in characters).
fn fit(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count <= width {
        format!("{text:<width$}")
    } else {
        let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// The time labels over the bars: 0, the quarters where they fit, total.
fn axis_line(total: u64, width: usize) -> String {
    let mut row = vec![' '; width];
    if width < 4 {
        return row.into_iter().collect();
    }
    let axis = width - 2;
    let label = |ms: u64| format_duration(Duration::from_millis(ms));
    let mut taken_to = 0usize;
    let place = |row: &mut Vec<char>, at: usize, text: &str, taken_to: &mut usize| {
        let len = text.chars().count();
        if at + len > width || (at > 0 && at <= *taken_to) {
            return;
        }
        for (i, ch) in text.chars().enumerate() {
            row[at + i] = ch;
        }
        *taken_to = at + len;
    };
    place(&mut row, 0, "0", &mut taken_to);
    let end = label(total);
    let end_at = (axis + 1).saturating_sub(end.chars().count());
    for quarter in 1..4u64 {
        let text = label(total * quarter / 4);
        let centre = axis * usize::try_from(quarter).unwrap_or(0) / 4;
        let at = centre.saturating_sub(text.chars().count() / 2);
        if at + text.chars().count() < end_at {
            place(&mut row, at, &text, &mut taken_to);
        }
    }
    place(&mut row, end_at.max(taken_to + 1), &end, &mut taken_to);
    row.into_iter().collect::<String>().trim_end().to_string()
}

/// The legend: every segment glyph and marker, as many as fit in `width`.
fn legend(width: usize, t: &Theme) -> Line<'static> {
    let g = &GLYPHS;
    let items = [
        (g.queued, "queued", t.wf_queued),
        (g.in_flight, "in flight", t.wf_flight),
        (g.streaming, "streaming", t.wf_stream),
        (g.backoff, "backoff", t.wf_backoff),
        (g.deadline, "deadline", t.warn),
        (g.late, "late", t.error),
        (g.observed, "observed", t.dim),
    ];
    let item_len = |text: &str| text.chars().count() + 2;
    let all: usize = items.iter().map(|(_, text, _)| item_len(text)).sum();
    // Two spaces between items where they all fit, else one.
    let gap = if all + 2 * (items.len() - 1) <= width {
        2
    } else {
        1
    };
    let mut spans = Vec::new();
    let mut used = 0;
    for (glyph, text, style) in items {
        let len = item_len(text) + if used > 0 { gap } else { 0 };
        if used + len > width {
            break;
        }
        if used > 0 {
            spans.push(Span::raw(" ".repeat(gap)));
        }
        spans.push(Span::styled(glyph.to_string(), style));
        spans.push(Span::styled(format!(" {text}"), t.dim));
        used += len;
    }
    Line::from(spans)
}

/// The bar's name: `scenario`, `└ retrieve`, with the backend when it fits.
fn bar_name(bar: &Bar<'_>, width: usize) -> String {
    let r = bar.request;
    let mut name = match bar.depth {
        0 => String::new(),
        d => format!("{}└ ", "  ".repeat(d - 1)),
    };
    name.push_str(r.kind.label());
    let backend = one_line(&r.backend);
    if r.parent.is_some() && name.chars().count() + 1 + backend.chars().count() <= width {
        name.push(' ');
        name.push_str(&backend);
    }
    fit(&name, width)
}

/// The open waterfall over `area`.
pub(super) fn draw(
    frame: &mut Frame,
    area: Rect,
    engine: &Engine,
    view: &ViewState,
    open: &Waterfall,
    now: Instant,
) {
    let t = &view.theme;
    let popup = centered(
        area,
        area.width.saturating_sub(4).max(20),
        area.height.saturating_sub(2).max(6),
    );
    frame.render_widget(Clear, popup);
    let hints = view.keymap.hints(Context::Detail);
    let mut block = pane_block("Pipeline", true, t);
    if !hints.is_empty() {
        block = block.title_bottom(Line::styled(format!(" {} ", hints.join(" · ")), t.dim));
    }
    let Some(root) = engine.registry().get(open.root) else {
        frame.render_widget(
            Paragraph::new(Line::styled(
                "This pipeline is no longer in the history.",
                t.warn,
            ))
            .block(block),
            popup,
        );
        return;
    };
    let inner = block.inner(popup);
    frame.render_widget(block, popup);

    let bars: Vec<Bar<'_>> = pipeline(engine, root)
        .into_iter()
        .map(|(depth, r)| Bar::of(r, depth, root.created, now))
        .collect();
    let total = bars.iter().map(Bar::reach_ms).max().unwrap_or(0).max(1);
    let selected = open.selected.min(bars.len().saturating_sub(1));

    let width = usize::from(inner.width);
    let name_w = if width >= 100 { 24 } else { 14 };
    let dur_w = 8;
    let bar_w = width.saturating_sub(name_w + dur_w + 2).max(4);
    let height = usize::from(inner.height);
    // Label, axis, legend and the selected bar's title take four rows; the
    // events keep at least three.
    let bar_rows = height.saturating_sub(7).max(1).min(bars.len());
    let first = (selected + 1).saturating_sub(bar_rows);

    let mut lines: Vec<Line<'static>> = Vec::with_capacity(height);
    lines.push(Line::from(vec![
        Span::styled(format!("{} ", root.kind.label()), t.title),
        Span::styled(format!("{} ", root.id.short()), t.dim),
        Span::raw(one_line(&root.label)),
        Span::styled(
            format!(
                " · {} · {}",
                root.phase.label(),
                format_duration(root.elapsed(now))
            ),
            t.dim,
        ),
    ]));
    lines.push(Line::styled(
        format!("{}{}", " ".repeat(name_w + 1), axis_line(total, bar_w)),
        t.dim,
    ));
    for (i, bar) in bars.iter().enumerate().skip(first).take(bar_rows) {
        let name_style = if i == selected {
            t.selected
        } else {
            Style::default()
        };
        let mut spans = vec![
            Span::styled(bar_name(bar, name_w), name_style),
            Span::raw(" "),
        ];
        spans.extend(cells_to_spans(bar_cells(bar, total, bar_w, t)));
        spans.push(Span::raw(format!(
            " {:>dur_w$}",
            format_duration(bar.request.elapsed(now))
        )));
        lines.push(Line::from(spans));
    }
    lines.push(legend(width, t));

    if let Some(bar) = bars.get(selected) {
        let r = bar.request;
        lines.push(Line::styled(
            format!(
                "{} on {} · {} · attempt {} · {} / {} · {}",
                r.kind.label(),
                one_line(&r.backend),
                r.phase.label(),
                r.attempt,
                format_duration(r.elapsed(now)),
                r.budget_label(),
                r.id.short()
            ),
            t.title,
        ));
        let room = height.saturating_sub(lines.len());
        let entries = &r.timeline;
        let shown = if entries.len() > room {
            room.saturating_sub(1)
        } else {
            entries.len()
        };
        for entry in entries.iter().take(shown) {
            let at = bar.start_ms.saturating_add(entry.offset_ms);
            lines.push(Line::styled(
                format!(
                    "{:>8} {}",
                    format!("+{}", format_duration(Duration::from_millis(at))),
                    one_line(&entry.text())
                ),
                event_style(&entry.event, t),
            ));
        }
        if shown < entries.len() && room > 0 {
            lines.push(Line::styled(
                format!("     … {} more", entries.len() - shown),
                t.dim,
            ));
        }
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::{LateAfter, QueueReason};

    fn entry(offset_ms: u64, event: EventKind) -> TimelineEntry {
        TimelineEntry { offset_ms, event }
    }

    fn seg(kind: SegmentKind, start_ms: u64, end_ms: u64) -> Segment {
        Segment {
            kind,
            start_ms,
            end_ms,
        }
    }

    fn created() -> EventKind {
        EventKind::Created { label: "q".into() }
    }

    #[test]
    fn queued_in_flight_streaming_then_the_end() {
        let timeline = [
            entry(0, created()),
            entry(
                0,
                EventKind::Queued {
                    reason: QueueReason::Slots { busy: 1, limit: 1 },
                },
            ),
            entry(200, EventKind::Dispatched { attempt: 1 }),
            entry(700, EventKind::FirstToken),
            entry(
                1_500,
                EventKind::Final {
                    outcome: Outcome::Completed,
                },
            ),
        ];
        let lane = lane(&timeline, 9_999);
        assert_eq!(
            lane.segments,
            vec![
                seg(SegmentKind::Queued, 0, 200),
                seg(SegmentKind::InFlight, 200, 700),
                seg(SegmentKind::Streaming, 700, 1_500),
            ]
        );
        assert!(lane.ended);
        assert_eq!(lane.end_ms, 1_500);
        assert_eq!(lane.reach_ms, 1_500, "now does not stretch a finished bar");
        assert!(lane.late_ms.is_empty());
    }

    #[test]
    fn a_retry_backs_off_until_the_next_dispatch() {
        let timeline = [
            entry(0, created()),
            entry(0, EventKind::Dispatched { attempt: 1 }),
            entry(
                300,
                EventKind::RetryScheduled {
                    retry: 1,
                    delay_ms: 800,
                    reason: "HTTP 503".into(),
                },
            ),
            entry(1_100, EventKind::Dispatched { attempt: 2 }),
            entry(1_400, EventKind::PassagesRetrieved { count: 5 }),
            entry(
                1_400,
                EventKind::Final {
                    outcome: Outcome::Completed,
                },
            ),
        ];
        assert_eq!(
            lane(&timeline, 5_000).segments,
            vec![
                seg(SegmentKind::InFlight, 0, 300),
                seg(SegmentKind::Backoff, 300, 1_100),
                seg(SegmentKind::InFlight, 1_100, 1_400),
            ],
            "no zero-length queued segment, backoff between the attempts"
        );
    }

    #[test]
    fn a_timed_out_call_observed_until_its_late_arrival() {
        let timeline = [
            entry(0, created()),
            entry(0, EventKind::Dispatched { attempt: 1 }),
            entry(
                10_000,
                EventKind::Final {
                    outcome: Outcome::TimedOut,
                },
            ),
            entry(10_000, EventKind::Observed { grace_ms: 30_000 }),
            entry(
                12_000,
                EventKind::late_arrival("retrieval result", LateAfter::Deadline, Some(2_000)),
            ),
        ];
        let lane = lane(&timeline, 20_000);
        assert_eq!(
            lane.segments,
            vec![
                seg(SegmentKind::InFlight, 0, 10_000),
                seg(SegmentKind::Observed, 10_000, 12_000),
            ]
        );
        assert_eq!(lane.end_ms, 10_000);
        assert_eq!(lane.late_ms, vec![12_000]);
        assert_eq!(
            lane.reach_ms, 12_000,
            "the axis must reach the late arrival"
        );
    }

    #[test]
    fn a_live_request_and_a_call_still_observed_end_at_now() {
        let live = [
            entry(0, created()),
            entry(50, EventKind::Dispatched { attempt: 1 }),
            entry(400, EventKind::FirstToken),
        ];
        let lane_live = lane(&live, 2_000);
        assert!(!lane_live.ended);
        assert_eq!(lane_live.end_ms, 2_000);
        assert_eq!(
            lane_live.segments.last(),
            Some(&seg(SegmentKind::Streaming, 400, 2_000))
        );
        let watched = [
            entry(0, created()),
            entry(0, EventKind::Dispatched { attempt: 1 }),
            entry(
                1_000,
                EventKind::Final {
                    outcome: Outcome::TimedOut,
                },
            ),
            entry(1_000, EventKind::Observed { grace_ms: 30_000 }),
        ];
        let lane_watched = lane(&watched, 4_000);
        assert_eq!(lane_watched.end_ms, 1_000);
        assert_eq!(
            lane_watched.segments.last(),
            Some(&seg(SegmentKind::Observed, 1_000, 4_000))
        );
        assert_eq!(lane_watched.reach_ms, 4_000);
    }

    #[test]
    fn a_late_drop_after_the_end_is_a_marker_without_a_tail() {
        let timeline = [
            entry(0, created()),
            entry(0, EventKind::Dispatched { attempt: 1 }),
            entry(
                100,
                EventKind::Final {
                    outcome: Outcome::Cancelled,
                },
            ),
            entry(
                900,
                EventKind::late_arrival(
                    "retrieval result",
                    LateAfter::End {
                        phase: "cancelled".into(),
                    },
                    Some(800),
                ),
            ),
        ];
        let lane = lane(&timeline, 5_000);
        assert_eq!(lane.segments, vec![seg(SegmentKind::InFlight, 0, 100)]);
        assert_eq!(lane.late_ms, vec![900]);
        assert_eq!(lane.reach_ms, 900);
    }

    fn request(policy: DeadlinePolicy, timeline: Vec<TimelineEntry>) -> Request {
        use crate::engine::request::{Kind, Phase};
        let created = Instant::now();
        let outcome = timeline.iter().find_map(|e| match &e.event {
            EventKind::Final { outcome } => Some(outcome.clone()),
            _ => None,
        });
        let ended = timeline
            .iter()
            .find(|e| e.event.is_final())
            .map(|e| created + Duration::from_millis(e.offset_ms));
        Request {
            id: RequestId(ulid::Ulid::from_parts(1, 7)),
            seq: 1,
            kind: Kind::Retrieve,
            backend: "local".into(),
            parent: Some(RequestId::nil()),
            children: Vec::new(),
            conversation: None,
            label: "q".into(),
            created,
            dispatched: Some(created),
            ended,
            policy,
            deadline: None,
            phase: outcome.map_or(Phase::Dispatched, Phase::Done),
            attempt: 1,
            late_drops: 0,
            timeline,
            progress: None,
            restored: false,
        }
    }

    fn timed_out_then_late() -> Vec<TimelineEntry> {
        vec![
            entry(0, created()),
            entry(0, EventKind::Dispatched { attempt: 1 }),
            entry(
                1_000,
                EventKind::RetryScheduled {
                    retry: 1,
                    delay_ms: 1_000,
                    reason: "HTTP 503".into(),
                },
            ),
            entry(2_000, EventKind::Dispatched { attempt: 2 }),
            entry(
                10_000,
                EventKind::Final {
                    outcome: Outcome::TimedOut,
                },
            ),
            entry(10_000, EventKind::Observed { grace_ms: 30_000 }),
            entry(
                12_000,
                EventKind::late_arrival("retrieval result", LateAfter::Deadline, Some(2_000)),
            ),
        ]
    }

    #[test]
    fn deadlines_fall_at_a_timeout_or_at_creation_plus_the_budget() {
        let budget = DeadlinePolicy::Total(Duration::from_secs(10));
        let r = request(budget, timed_out_then_late());
        assert_eq!(deadline_ms(&r, &lane(&r.timeline, 20_000)), Some(10_000));
        let done = request(
            budget,
            vec![
                entry(0, EventKind::Dispatched { attempt: 1 }),
                entry(
                    300,
                    EventKind::Final {
                        outcome: Outcome::Completed,
                    },
                ),
            ],
        );
        assert_eq!(deadline_ms(&done, &lane(&done.timeline, 0)), Some(10_000));
        let parent = request(DeadlinePolicy::Children, timed_out_then_late());
        assert_eq!(deadline_ms(&parent, &lane(&parent.timeline, 0)), None);
    }

    #[test]
    fn a_bar_draws_backoff_then_the_deadline_the_outcome_and_the_late_marker() {
        let r = request(
            DeadlinePolicy::Total(Duration::from_secs(10)),
            timed_out_then_late(),
        );
        let origin = r.created;
        let bar = Bar::of(&r, 1, origin, origin + Duration::from_secs(20));
        assert_eq!(bar.reach_ms(), 12_000);
        // 26 cells: an axis of 24 (500 ms each) and two of slack.
        let cells: String = bar_cells(&bar, 12_000, 26, &Theme::plain())
            .into_iter()
            .map(|(ch, _)| ch)
            .collect();
        assert_eq!(cells, "██··████████████████┆⏱╌╌◆ ");
    }

    #[test]
    fn a_restored_request_with_untyped_notes_draws_from_its_dispatch_and_end() {
        let mut r = request(
            DeadlinePolicy::Total(Duration::from_secs(10)),
            vec![
                entry(
                    0,
                    EventKind::Note {
                        text: "created".into(),
                    },
                ),
                entry(
                    900,
                    EventKind::Note {
                        text: "completed".into(),
                    },
                ),
            ],
        );
        r.phase = crate::engine::request::Phase::Done(Outcome::Completed);
        r.dispatched = Some(r.created + Duration::from_millis(200));
        r.ended = Some(r.created + Duration::from_millis(900));
        let bar = Bar::of(&r, 1, r.created, r.created + Duration::from_secs(5));
        assert_eq!(
            bar.lane.segments,
            vec![
                seg(SegmentKind::Queued, 0, 200),
                seg(SegmentKind::InFlight, 200, 900),
            ]
        );
        assert_eq!(bar.reach_ms(), 900, "not stretched to now");
    }

    #[test]
    fn the_axis_labels_start_at_zero_and_end_at_the_total() {
        let axis = axis_line(12_000, 52);
        assert!(axis.starts_with("0 "), "{axis:?}");
        assert!(axis.ends_with("12s"), "{axis:?}");
        assert!(axis.contains("6s"), "{axis:?}");
        // The total ends at the axis end (the last two cells are slack).
        assert_eq!(axis.chars().count(), 51, "{axis:?}");
    }

    #[test]
    fn every_segment_kind_has_its_own_glyph() {
        let kinds = [
            SegmentKind::Queued,
            SegmentKind::InFlight,
            SegmentKind::Streaming,
            SegmentKind::Backoff,
            SegmentKind::Observed,
        ];
        let mut glyphs: Vec<char> = kinds.iter().map(|k| GLYPHS.segment(*k)).collect();
        glyphs.extend([GLYPHS.deadline, GLYPHS.late, GLYPHS.live]);
        let n = glyphs.len();
        glyphs.sort_unstable();
        glyphs.dedup();
        assert_eq!(glyphs.len(), n);
    }
}
