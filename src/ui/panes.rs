//! The three panes (chat, scenarios, request lifecycle) and the passage
//! overlay (a cited passage; `search` draws a
//! searched one with the same functions).

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Table, TableState, Wrap};

use super::chat_cache::{ChatCache, ChatContent, MessageParts};
use super::{
    Focus, SortBy, Theme, ViewState, centered, is_generation, kind_cell, lifecycle_row_count,
    markdown, pane_block,
};
use crate::domain::{Passage, Role};
use crate::engine::Engine;
use crate::engine::request::{Outcome, Phase, Request, format_duration};
use crate::engine::workspace::{ChatMessage, Conversation, MessageStatus, ScenarioStatus};
use crate::sanitize::{one_line, sanitize};

pub(super) fn chat(frame: &mut Frame, area: Rect, engine: &Engine, view: &ViewState) {
    let t = &view.theme;
    let empty = Conversation::new("");
    let conv = engine.conversation(view.current).unwrap_or(&empty);
    let block = pane_block("Chat", view.focus == Focus::Chat, t);
    // After the messages: the hint in an empty chat, or the queue and the
    // messages left unsent.
    let mut tail: Vec<Line<'static>> = Vec::new();
    if conv.messages.is_empty() && conv.queue.is_empty() && conv.unsent.is_empty() {
        tail.push(Line::styled(
            "Ask anything about the lore, e.g. `who guards the waystone?`",
            t.dim,
        ));
        tail.push(Line::styled(
            "Answers cite the passages they come from: [1], [2], ...",
            t.dim,
        ));
    }
    if !conv.queue.is_empty() {
        tail.push(Line::styled(
            format!("queued ({})", conv.queue.len()),
            t.warn,
        ));
        for queued in &conv.queue {
            tail.push(Line::styled(
                format!("  #{} {}", queued.number, one_line(&queued.text)),
                t.dim,
            ));
        }
    }
    if !conv.unsent.is_empty() {
        tail.push(Line::styled(
            format!(
                "unsent ({}): not sent before loreweave stopped (/resend sends them)",
                conv.unsent.len()
            ),
            t.warn,
        ));
        for unsent in &conv.unsent {
            tail.push(Line::styled(format!("  {}", one_line(&unsent.text)), t.dim));
        }
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let render = |message: &ChatMessage| message_parts(message, view);
    let content = ChatContent {
        messages: &conv.messages,
        tail,
        theme: t,
        render: &render,
        selected: view.chat_selected,
    };
    let max = match view.chat_cache.try_borrow_mut() {
        Ok(mut cache) => cache.draw(frame, inner, content, view.chat_scroll),
        // Never reached (drawing is not reentrant); a throwaway cache draws
        // the same lines.
        Err(_) => ChatCache::default().draw(frame, inner, content, view.chat_scroll),
    };
    view.chat_max_scroll.set(max);
}

/// One message as the chat shows it: who wrote it, its text (a reply's as
/// markdown, rendered by the cache as it streams), what it cites, and a
/// blank line. What it cites is listed once the reply is final, so a delta
/// never scans the whole text.
fn message_parts(message: &ChatMessage, view: &ViewState) -> MessageParts {
    let t = &view.theme;
    let mut lines = Vec::new();
    let mut foot = Vec::new();
    let mut markdown = false;
    match message.role {
        Role::User => {
            lines.push(Line::styled("you", t.user));
            lines.push(Line::raw(sanitize(&message.text)));
        }
        Role::Assistant => {
            let backend = message.backend.as_deref().unwrap_or("assistant");
            let mut header = vec![Span::styled(sanitize(backend), t.assistant)];
            match &message.status {
                MessageStatus::Running if message.text.is_empty() => {
                    header.push(Span::styled("  … working", t.dim));
                }
                MessageStatus::Running => header.push(Span::styled("  … streaming", t.dim)),
                MessageStatus::Done => {}
                MessageStatus::Failed(reason) => header.push(Span::styled(
                    format!("  incomplete: {}", one_line(reason)),
                    t.error,
                )),
                MessageStatus::Cancelled => header.push(Span::styled("  cancelled", t.warn)),
            }
            lines.push(Line::from(header));
            if let Some(reason) = &message.no_lore {
                lines.push(Line::styled(
                    format!("no lore: {}", one_line(reason)),
                    t.warn,
                ));
            }
            markdown = true;
            if message.status != MessageStatus::Running {
                foot = sources_footer(&message.text, &message.passages, view);
            }
        }
    }
    foot.push(Line::default());
    MessageParts {
        head: lines,
        markdown,
        foot,
    }
}

/// "cited: [1] Title (source)" lines for the passages a text really cites,
/// so a model's `[n]` can be checked against what was retrieved. Texts that
/// list their sources themselves (the offline generator) get none.
fn sources_footer(
    text: &str,
    passages: &[crate::domain::Passage],
    view: &ViewState,
) -> Vec<Line<'static>> {
    let t = &view.theme;
    if text.contains("Sources") {
        return Vec::new();
    }
    let cited = super::citations_in(text, passages.len());
    if cited.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![Line::styled("cited (press the number to open):", t.dim)];
    for n in cited {
        let p = &passages[n - 1];
        lines.push(Line::from(vec![
            Span::styled(format!("[{n}] "), t.citation),
            Span::raw(format!("{} ({})", one_line(&p.title), one_line(&p.source))),
        ]));
    }
    lines
}

pub(super) fn scenarios(frame: &mut Frame, area: Rect, engine: &Engine, view: &ViewState) {
    let t = &view.theme;
    let block = pane_block("Scenarios", view.focus == Focus::Scenarios, t);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(current) = view.current_scenario(engine) else {
        let hint = Text::from(vec![
            Line::styled("No scenario yet.", t.dim),
            Line::styled("Type: generate scenario for the first encounter", t.dim),
            Line::styled("  or: /scenario --seed 7 an ambush at the bridge", t.dim),
        ]);
        frame.render_widget(Paragraph::new(hint).wrap(Wrap { trim: false }), inner);
        return;
    };
    let [list_area, body_area, _] = super::stack(inner, 1, 0, 0);

    // One line of numbered titles, the shown one highlighted.
    let mut spans = Vec::new();
    let scenarios = engine.scenarios();
    let first = current.saturating_sub(2);
    if first > 0 {
        spans.push(Span::styled("… ", t.dim));
    }
    for (i, entry) in scenarios.from_index(first) {
        let mut title: String = one_line(&entry.title()).chars().take(24).collect();
        if entry.status == ScenarioStatus::Running {
            title.push_str(" …");
        }
        let style = if i == current { t.selected } else { t.dim };
        spans.push(Span::styled(format!("{} {}", i + 1, title), style));
        spans.push(Span::raw("  "));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), list_area);

    let entry = &scenarios[current];
    let mut lines: Vec<Line<'static>> = Vec::new();
    match &entry.status {
        ScenarioStatus::Running if entry.markdown.is_empty() => {
            lines.push(Line::styled(
                format!("Generating: {} …", one_line(&entry.prompt)),
                t.dim,
            ));
        }
        ScenarioStatus::Failed(reason) => {
            lines.push(Line::styled(
                format!("failed: {}", one_line(reason)),
                t.error,
            ));
        }
        ScenarioStatus::Cancelled => lines.push(Line::styled("cancelled", t.warn)),
        _ => {}
    }
    lines.extend(markdown::to_text(&entry.markdown, t).lines);
    lines.extend(sources_footer(&entry.markdown, &entry.passages, view));
    let paragraph = Paragraph::new(lines).wrap(Wrap { trim: false });
    let max_top = paragraph
        .line_count(body_area.width)
        .saturating_sub(usize::from(body_area.height));
    view.scenario_max_scroll.set(max_top);
    let top = u16::try_from(view.scenario_scroll.min(max_top)).unwrap_or(u16::MAX);
    frame.render_widget(paragraph.scroll((top, 0)), body_area);
}

pub(super) fn lifecycle(
    frame: &mut Frame,
    area: Rect,
    engine: &Engine,
    view: &ViewState,
    now: Instant,
) {
    let t = &view.theme;
    let mut block = pane_block("Request lifecycle", view.focus == Focus::Lifecycle, t);
    let mut status = table_status(engine, view, now);
    // Spans the OpenTelemetry exporter could not queue or send.
    let otel_dropped = crate::telemetry::dropped_total();
    if otel_dropped > 0 {
        status.push(format!("otel: {otel_dropped} dropped"));
    }
    if !status.is_empty() {
        block =
            block.title(Line::styled(format!(" {} ", status.join(" · ")), t.warn).right_aligned());
    }
    if let Some(typed) = &view.lifecycle.prompt {
        block = block.title_bottom(Line::from(vec![
            Span::styled(" filter: ", t.title),
            Span::raw(one_line(typed)),
            Span::styled("█", t.key),
            Span::styled(" Enter applies · Esc cancels ", t.dim),
        ]));
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);

    let backends = engine.backends();
    let header_height = u16::try_from(backends.len()).unwrap_or(u16::MAX);
    let events_height = if inner.height > 10 { 2 } else { 0 };
    let [header_area, table_area, events_area] =
        super::stack(inner, header_height, 1, events_height);

    let mut header = Vec::new();
    for (name, b) in backends {
        let s = b.metrics.snapshot();
        let pct = |v: Option<u64>| {
            v.map_or("-".to_string(), |ms| {
                format_duration(std::time::Duration::from_millis(ms))
            })
        };
        let (symbol, style) = super::breaker_badge(b, t);
        let mut spans = vec![
            Span::styled(format!("{:<9}", one_line(name)), t.title),
            Span::styled(format!("{symbol} {} ", b.breaker.label()), style),
            Span::styled(format!("│ ok {} ", s.ok), t.ok),
        ];
        // Only what happened: zero counters would drown the ones that matter.
        for (label, n, style) in [
            ("err", s.failed, t.error),
            ("t/o", s.timed_out, t.error),
            ("cxl", s.cancelled, t.warn),
            ("sc", s.short_circuited, t.warn),
            ("join", s.joined, t.ok),
            ("retry", s.retries, t.warn),
            ("late", s.late_drops, t.warn),
        ] {
            if n > 0 {
                spans.push(Span::styled(format!("{label} {n} "), style));
            }
        }
        // Late arrivals (observed calls): how late, and how many still watched.
        let late_by = (s.late_arrivals > 0).then(|| {
            Span::styled(
                format!(
                    "late-by p50 {} p95 {} ",
                    pct(s.late_p50_ms),
                    pct(s.late_p95_ms)
                ),
                t.warn,
            )
        });
        let late_by_at = late_by.as_ref().map(|span| {
            spans.push(span.clone());
            spans.len() - 1
        });
        if s.observing > 0 {
            spans.push(Span::styled(format!("watching {} ", s.observing), t.warn));
        }
        spans.push(Span::raw(format!(
            "│ flight {}/{} queued {} ",
            s.in_flight, b.policy.concurrency, s.queued
        )));
        let percentiles = Span::raw(format!(
            "│ p50 {} p95 {} p99 {} ",
            pct(s.p50_ms),
            pct(s.p95_ms),
            pct(s.p99_ms)
        ));
        // On a narrow pane the latency percentiles go first, then the
        // late-by p50, so the counts and the queue are never cut mid-word.
        let width = |spans: &[Span<'_>]| spans.iter().map(|s| s.width()).sum::<usize>();
        let room = usize::from(header_area.width);
        if width(&spans) > room
            && let Some(at) = late_by_at
        {
            spans[at] = Span::styled(format!("late-by p95 {} ", pct(s.late_p95_ms)), t.warn);
        }
        if width(&spans) + percentiles.width() <= room {
            spans.push(percentiles);
        }
        if let Some(mode) = engine.chaos().get(name) {
            spans.push(Span::styled(format!("CHAOS {mode}"), t.error));
        }
        header.push(Line::from(spans));
    }
    frame.render_widget(Paragraph::new(header), header_area);

    let table = &view.lifecycle;
    let count = table.count(engine, now);
    if count == 0 {
        let text = if lifecycle_row_count(engine) == 0 {
            "No requests yet. Every retrieval and generation shows up here, live."
        } else {
            "No request matches the filter (f to change it)."
        };
        frame.render_widget(Paragraph::new(Line::styled(text, t.dim)), table_area);
    } else {
        // Only the rows on screen are built. With every row one line high
        // and the table scrolled from the top, ratatui shows rows
        // `selected + 1 - height ..` when the selection is below the fold;
        // the window below starts there, so the table draws the same cells.
        let selected = view.lifecycle_selected.min(count - 1);
        let height = usize::from(table_area.height.saturating_sub(1));
        let first = (selected + 1).saturating_sub(height.max(1));
        let rows: Vec<&Request> = table.window(engine, first, height + 1, now);
        let flat = table.is_flat();
        let table_rows = rows.iter().map(|r| {
            let (state_style, info) = row_state(r, view);
            Row::new(vec![
                Cell::from(r.id.short()),
                Cell::from(if flat {
                    r.kind.label().to_string()
                } else {
                    kind_cell(r)
                }),
                Cell::from(one_line(&r.backend)),
                Cell::from(Span::styled(r.phase.label(), state_style)),
                Cell::from(if r.attempt > 0 {
                    r.attempt.to_string()
                } else {
                    "-".into()
                }),
                Cell::from(format!(
                    "{} / {}",
                    format_duration(r.elapsed(now)),
                    r.budget_label()
                )),
                Cell::from(info),
            ])
        });
        let widths = [
            Constraint::Length(6),
            Constraint::Length(10),
            Constraint::Length(8),
            Constraint::Length(15),
            Constraint::Length(3),
            Constraint::Length(15),
            Constraint::Min(10),
        ];
        let table = Table::new(table_rows, widths)
            .header(
                Row::new(vec![
                    "id",
                    "kind",
                    "backend",
                    "state",
                    "att",
                    "elapsed/limit",
                    "detail",
                ])
                .style(t.title),
            )
            .row_highlight_style(if view.focus == Focus::Lifecycle {
                t.selected
            } else {
                Style::default()
            })
            .column_spacing(1);
        let mut state = TableState::default().with_selected(Some(selected - first));
        frame.render_stateful_widget(table, table_area, &mut state);
    }

    if events_height > 0 {
        let events = engine.registry().events();
        let lines = events
            .iter()
            .rev()
            .take(usize::from(events_height))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .map(|e| {
                let style = if e.event.is_late() { t.warn } else { t.dim };
                Line::styled(
                    format!(
                        "{:>7} {} {} {}",
                        format!(
                            "+{}",
                            format_duration(std::time::Duration::from_millis(e.t_ms))
                        ),
                        e.id.map_or_else(|| "------".to_string(), |id| id.short()),
                        e.kind.map_or(&*e.backend, |k| k.label()),
                        one_line(&e.text())
                    ),
                    style,
                )
            })
            .collect::<Vec<_>>();
        frame.render_widget(Paragraph::new(lines), events_area);
    }
}

/// The table's filter, sort and pause, as the pane's header shows them:
/// `filter: state:timed-out · 12 hidden`, `sort: elapsed ↓`, `paused · 5 new`.
fn table_status(engine: &Engine, view: &ViewState, now: Instant) -> Vec<String> {
    let table = &view.lifecycle;
    let mut status = Vec::new();
    if let Some(filter) = &table.filter {
        status.push(format!(
            "filter: {} · {} hidden",
            one_line(&filter.text),
            table.hidden(engine, now)
        ));
    }
    if table.sort != SortBy::Pipeline || table.inverted {
        status.push(format!(
            "sort: {} {}",
            table.sort.label(),
            if table.inverted { "↑" } else { "↓" }
        ));
    }
    if let Some(new) = table.new_since_pause(engine) {
        status.push(format!("paused · {new} new"));
    }
    status
}

/// The state cell's style and the detail column's text.
fn row_state(r: &Request, view: &ViewState) -> (Style, String) {
    let t = &view.theme;
    let mut info = match &r.phase {
        Phase::Done(Outcome::Failed(reason)) => one_line(reason),
        Phase::Done(Outcome::Joined(leader)) => format!("joined {}", leader.short()),
        _ => one_line(&r.label),
    };
    if let (Some(progress), None) = (&r.progress, r.outcome()) {
        info = format!("{} · {info}", one_line(progress));
    }
    if r.late_drops > 0 {
        info = format!("late drop ×{} · {info}", r.late_drops);
    }
    let style = match &r.phase {
        Phase::Done(Outcome::Completed) => t.ok,
        Phase::Done(Outcome::Cancelled) => t.warn,
        Phase::Done(_) => t.error,
        Phase::Streaming if is_generation(r.kind) => t.key,
        _ => Style::default(),
    };
    (style, info)
}

/// Where a passage comes from: the source's shortest unambiguous path, the
/// heading trail and the line range (`shattered-waystone.md › lines 7-9`),
/// or the chunk's heading when the location is unknown. Sanitised.
pub(super) fn passage_place(p: &Passage) -> String {
    let mut place = one_line(&p.source);
    if p.location.is_unknown() {
        if let Some(heading) = &p.heading {
            place.push_str(&format!(" › {}", one_line(heading)));
        }
    } else {
        place.push_str(&format!(" › {}", one_line(&p.location.to_string())));
    }
    place
}

/// A passage as an overlay shows it: its title after `lead` (`[1] `),
/// where it comes from and its score, then its text rendered as markdown.
pub(super) fn passage_lines(
    p: &Passage,
    lead: Option<Span<'static>>,
    t: &Theme,
) -> Vec<Line<'static>> {
    let mut title: Vec<Span<'static>> = lead.into_iter().collect();
    title.push(Span::styled(one_line(&p.title), t.h1));
    let mut lines = vec![
        Line::from(title),
        Line::styled(
            format!("{} · score {:.2}", passage_place(p), p.score),
            t.dim,
        ),
        Line::default(),
    ];
    lines.extend(markdown::to_text(&p.text, t).lines);
    lines
}

/// The rectangle a passage overlay takes.
pub(super) fn passage_popup_area(area: Rect) -> Rect {
    centered(
        area,
        area.width.saturating_sub(10).clamp(20, 100),
        area.height.saturating_sub(6).max(6),
    )
}

/// Draw `lines` wrapped in `block` over `popup`, `scroll` rows down (kept
/// within the text). Returns how far it can scroll.
pub(super) fn passage_popup(
    frame: &mut Frame,
    popup: Rect,
    block: Block<'_>,
    lines: Vec<Line<'static>>,
    scroll: usize,
) -> usize {
    let inner = block.inner(popup);
    let paragraph = Paragraph::new(lines).wrap(Wrap { trim: false });
    let max = paragraph
        .line_count(inner.width)
        .saturating_sub(usize::from(inner.height));
    let top = u16::try_from(scroll.min(max)).unwrap_or(u16::MAX);
    frame.render_widget(Clear, popup);
    frame.render_widget(paragraph.block(block).scroll((top, 0)), popup);
    max
}

/// The passage behind a citation, with where it comes from.
pub(super) fn citation(
    frame: &mut Frame,
    area: Rect,
    engine: &Engine,
    view: &ViewState,
    citation: super::Citation,
) {
    let t = &view.theme;
    let passages = super::cited_passages(engine, citation.source);
    let mut lines: Vec<Line<'static>> = match passages.get(citation.number.wrapping_sub(1)) {
        Some(p) => passage_lines(
            p,
            Some(Span::styled(format!("[{}] ", citation.number), t.citation)),
            t,
        ),
        None => vec![Line::styled(
            format!("There is no passage [{}] here.", citation.number),
            t.warn,
        )],
    };
    lines.push(Line::default());
    lines.push(Line::styled(
        "Esc closes · another digit opens that citation",
        t.dim,
    ));
    passage_popup(
        frame,
        passage_popup_area(area),
        pane_block("Cited passage", true, t),
        lines,
        0,
    );
}
