//! The session picker (`Ctrl-O`, `/session list`): a filter-as-you-type
//! list of sessions with their message count and last activity; and the
//! delete confirmation. Pure drawing; names are sanitised.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

use super::{ViewState, centered, pane_block};
use crate::sanitize::one_line;

fn ago(updated_ms: i64) -> String {
    let now = crate::store::now_ms();
    let secs = ((now - updated_ms).max(0) / 1000) as u64;
    match secs {
        0..=59 => "just now".into(),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => crate::headless::kb::utc_time((updated_ms.max(0) / 1000) as u64)
            .trim_end_matches(" UTC")
            .to_owned(),
    }
}

/// The picker overlay.
pub fn picker(frame: &mut Frame, area: Rect, view: &ViewState) {
    let Some(picker) = &view.picker else { return };
    let t = &view.theme;
    let width = area.width.saturating_sub(8).clamp(20, 90);
    let height = area.height.saturating_sub(4).clamp(6, 24);
    let popup = centered(area, width, height);
    frame.render_widget(Clear, popup);
    let block = pane_block(" Sessions ", true, t);
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let mut lines = vec![Line::from(vec![
        Span::styled("filter: ", t.dim),
        Span::raw(one_line(&picker.filter)),
        Span::styled("▏", t.key),
    ])];
    match &picker.sessions {
        None => lines.push(Line::styled("reading the sessions...", t.dim)),
        Some(_) => {
            let matching = picker.matching();
            if matching.is_empty() {
                lines.push(Line::styled("no session matches", t.warn));
            }
            let rows = usize::from(inner.height.saturating_sub(2)).max(1);
            let selected = picker.selected.min(matching.len().saturating_sub(1));
            let first = selected.saturating_sub(rows.saturating_sub(1));
            // "▸ " name " 12345 msg  2026-01-01 00:00  (open)"
            let name_width = usize::from(inner.width).saturating_sub(38).max(8);
            for (i, s) in matching.iter().enumerate().skip(first).take(rows) {
                let mark = if i == selected { "▸ " } else { "  " };
                let mut name = one_line(&s.name);
                if name.chars().count() > name_width {
                    name = name
                        .chars()
                        .take(name_width.saturating_sub(1))
                        .collect::<String>()
                        + "…";
                }
                let current = crate::persist::conversation_of(s.id) == view.current;
                let text = format!(
                    "{mark}{name:<name_width$} {:>5} msg  {}{}",
                    s.messages,
                    ago(s.updated_ms),
                    if current { "  (open)" } else { "" }
                );
                lines.push(if i == selected {
                    Line::styled(text, t.title)
                } else {
                    Line::raw(text)
                });
            }
        }
    }
    lines.push(Line::styled(
        "Enter opens · Ctrl-R renames · Ctrl-D deletes · Esc closes",
        t.dim,
    ));
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The rename prompt (Ctrl-R in the picker).
pub fn rename(frame: &mut Frame, area: Rect, view: &ViewState) {
    let Some((_, old, typed)) = &view.rename else {
        return;
    };
    let t = &view.theme;
    let popup = centered(area, area.width.saturating_sub(8).clamp(20, 64), 5);
    frame.render_widget(Clear, popup);
    let block = pane_block(" Rename session ", true, t);
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let lines = vec![
        Line::from(vec![
            Span::styled(format!("{:?} → ", one_line(old)), t.dim),
            Span::raw(one_line(typed)),
            Span::styled("▏", t.key),
        ]),
        Line::styled("Enter renames · Esc keeps the name", t.dim),
    ];
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The delete confirmation.
pub fn confirm(frame: &mut Frame, area: Rect, view: &ViewState) {
    let Some((_, name)) = &view.confirm_delete else {
        return;
    };
    let t = &view.theme;
    let popup = centered(area, area.width.saturating_sub(8).clamp(20, 64), 5);
    frame.render_widget(Clear, popup);
    let block = pane_block(" Delete session ", true, t);
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let lines = vec![
        Line::from(vec![
            Span::raw("Delete "),
            Span::styled(format!("{:?}", one_line(name)), t.title),
            Span::raw(" and everything in it, for good?"),
        ]),
        Line::styled("y deletes · any other key keeps it", t.warn),
    ];
    frame.render_widget(Paragraph::new(lines), inner);
}
