//! The help overlay, drawn from the binding table (`crate::keymap`): one
//! group per context, plus the slash commands, each row the keys and what
//! they do.
//!
//! Invariant: every binding and command is reachable at every terminal
//! size. The rows are laid out here at the column's exact width (descriptions
//! wrapped with a hanging indent; keys too wide for the key column get a row
//! of their own), and drawn without further wrapping, so the number of rows
//! is the number of screen rows and the scroll limit is exact. With two
//! columns, groups are never split and both columns scroll together up to
//! the taller one's end, so neither is ever cut.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

use super::{Theme, ViewState, centered, pane_block};
use crate::keymap::{Action, COMMANDS, Context, Keymap};

/// Several columns from this terminal width on, each at least
/// `MIN_COLUMN` wide, at most `MAX_COLUMNS` (a third column of the widest
/// overlay would stack the commands' descriptions under their syntax and
/// come out taller than two).
const MANY_COLUMNS_FROM: u16 = 150;
const MIN_COLUMN: u16 = 60;
const MAX_COLUMNS: usize = 2;
/// The overlay's widest, with one column and with several (wide columns
/// wrap less, so more of the overlay fits without scrolling).
const ONE_COLUMN_WIDTH: u16 = 96;
const TWO_COLUMN_WIDTH: u16 = 196;
/// Between two columns: ` │ `.
const GUTTER: u16 = 3;
/// Rows start with this indent; keys and description are this far apart.
const INDENT: usize = 2;
const GAP: usize = 2;
const MARGIN: usize = 1;
/// Narrower room than this for descriptions beside the keys, and they go
/// under the keys instead.
const MIN_WHAT: usize = 30;

/// A heading and its rows: (keys, what they do).
struct Group {
    title: &'static str,
    rows: Vec<(String, String)>,
    /// Commands get their own key column width (their syntax is long).
    commands: bool,
}

/// Every binding by context, in `Context::ALL` order, with the slash
/// commands after the input's keys.
fn groups(keymap: &Keymap) -> Vec<Group> {
    let mut groups = Vec::new();
    for context in Context::ALL {
        groups.push(Group {
            title: context.title(),
            rows: keymap
                .in_context(context)
                .map(|b| (b.keys_label(), b.description.to_string()))
                .collect(),
            commands: false,
        });
        if context == Context::Input {
            groups.push(Group {
                title: "Slash commands (typed in the input)",
                rows: COMMANDS
                    .iter()
                    .map(|c| {
                        let what = match c.aliases {
                            [] => c.description.to_string(),
                            aliases => format!("{} (also {})", c.description, aliases.join(" ")),
                        };
                        (c.syntax.to_string(), what)
                    })
                    .collect(),
                commands: true,
            });
        }
    }
    groups
}

fn width(text: &str) -> usize {
    Span::raw(text).width()
}

/// `text` in rows at most `room` wide, broken between words (a word wider
/// than `room` is broken inside).
fn wrap(text: &str, room: usize) -> Vec<String> {
    let room = room.max(1);
    let mut rows = Vec::new();
    let mut row = String::new();
    for word in text.split_whitespace() {
        let needed = if row.is_empty() {
            width(word)
        } else {
            width(&row) + 1 + width(word)
        };
        if needed <= room {
            if !row.is_empty() {
                row.push(' ');
            }
            row.push_str(word);
            continue;
        }
        if !row.is_empty() {
            rows.push(std::mem::take(&mut row));
        }
        for c in word.chars() {
            if width(&row) + width(c.encode_utf8(&mut [0; 4])) > room && !row.is_empty() {
                rows.push(std::mem::take(&mut row));
            }
            row.push(c);
        }
    }
    if !row.is_empty() || rows.is_empty() {
        rows.push(row);
    }
    rows
}

/// The key column widths (key groups, command group) for a column `room`
/// wide: the widest keys, or 0 (descriptions under the keys) when that
/// would leave descriptions less than `MIN_WHAT`.
fn key_widths(groups: &[Group], room: usize) -> (usize, usize) {
    let widest = |commands: bool| {
        let widest = groups
            .iter()
            .filter(|g| g.commands == commands)
            .flat_map(|g| g.rows.iter().map(|(keys, _)| width(keys)))
            .max()
            .unwrap_or(0);
        if room.saturating_sub(INDENT + widest + GAP) < MIN_WHAT {
            0
        } else {
            widest
        }
    };
    (widest(false), widest(true))
}

/// One group as screen rows exactly `room` wide or less.
fn group_rows(group: &Group, key_width: usize, room: usize, t: &Theme) -> Vec<Line<'static>> {
    let mut lines: Vec<Line<'static>> = wrap(group.title, room)
        .into_iter()
        .map(|row| Line::styled(row, t.h2))
        .collect();
    let what_x = INDENT + key_width + GAP;
    let what_room = room.saturating_sub(what_x).max(1);
    for (keys, what) in &group.rows {
        let what_rows = wrap(what, what_room);
        let mut what_rows = what_rows.into_iter();
        if width(keys) <= key_width {
            let pad = key_width - width(keys);
            lines.push(Line::from(vec![
                Span::raw(" ".repeat(INDENT)),
                Span::styled(keys.clone(), t.key),
                Span::raw(" ".repeat(pad + GAP)),
                Span::raw(what_rows.next().unwrap_or_default()),
            ]));
        } else {
            // Too wide for the key column: the keys get rows of their own.
            for part in wrap(keys, room.saturating_sub(INDENT)) {
                lines.push(Line::from(vec![
                    Span::raw(" ".repeat(INDENT)),
                    Span::styled(part, t.key),
                ]));
            }
        }
        for row in what_rows {
            lines.push(Line::from(format!("{}{row}", " ".repeat(what_x))));
        }
    }
    lines
}

/// Split `heights` (groups' rows) into `n` runs, in order, so that the
/// tallest run (a blank row between groups) is as short as possible.
/// Returns where each run after the first starts.
fn partition(heights: &[usize], n: usize) -> Vec<usize> {
    fn tall(heights: &[usize]) -> usize {
        heights.iter().sum::<usize>() + heights.len().saturating_sub(1)
    }
    fn best(heights: &[usize], n: usize, from: usize) -> (usize, Vec<usize>) {
        if n <= 1 || heights.len() - from <= 1 {
            return (tall(&heights[from..]), Vec::new());
        }
        (from + 1..heights.len())
            .map(|split| {
                let (rest, mut splits) = best(heights, n - 1, split);
                splits.insert(0, split);
                (tall(&heights[from..split]).max(rest), splits)
            })
            .min_by_key(|(height, _)| *height)
            .unwrap_or((tall(&heights[from..]), Vec::new()))
    }
    best(heights, n, 0).1
}

/// The overlay laid out in `n` columns `room` wide each.
fn columns(groups: &[Group], n: usize, room: u16, t: &Theme) -> Vec<Vec<Line<'static>>> {
    // Text never touches the border or the gutter on its right.
    let room = usize::from(room).saturating_sub(MARGIN);
    let widths = key_widths(groups, room);
    let rendered: Vec<Vec<Line<'static>>> = groups
        .iter()
        .map(|g| {
            let key_width = if g.commands { widths.1 } else { widths.0 };
            group_rows(g, key_width, room, t)
        })
        .collect();
    let heights: Vec<usize> = rendered.iter().map(Vec::len).collect();
    let mut starts = partition(&heights, n);
    let mut columns = Vec::new();
    let mut column: Vec<Line<'static>> = Vec::new();
    for (i, rows) in rendered.into_iter().enumerate() {
        if starts.first() == Some(&i) {
            starts.remove(0);
            columns.push(std::mem::take(&mut column));
        }
        if !column.is_empty() {
            column.push(Line::default());
        }
        column.extend(rows);
    }
    columns.push(column);
    columns
}

/// How the overlay is laid out for one number of columns.
struct HelpLayout {
    width: u16,
    column_width: u16,
    columns: Vec<Vec<Line<'static>>>,
}

impl HelpLayout {
    fn rows(&self) -> usize {
        self.columns.iter().map(Vec::len).max().unwrap_or(0)
    }
}

/// The fewest columns that show everything in `area`; if none does, the
/// layout with the fewest rows (it scrolls). Several columns only on a wide
/// terminal, each at least `MIN_COLUMN` wide.
fn layout(groups: &[Group], area: Rect, t: &Theme) -> HelpLayout {
    let body = usize::from(area.height.saturating_sub(2));
    let max_columns = if area.width < MANY_COLUMNS_FROM {
        1
    } else {
        let inner = TWO_COLUMN_WIDTH.min(area.width).saturating_sub(2);
        usize::from((inner + GUTTER) / (MIN_COLUMN + GUTTER)).clamp(1, MAX_COLUMNS)
    };
    let mut best: Option<HelpLayout> = None;
    for n in 1..=max_columns {
        let width = if n == 1 {
            ONE_COLUMN_WIDTH
        } else {
            TWO_COLUMN_WIDTH
        }
        .min(area.width);
        let count = u16::try_from(n).unwrap_or(1);
        let column_width = width.saturating_sub(2).saturating_sub(GUTTER * (count - 1)) / count;
        let candidate = HelpLayout {
            width,
            column_width,
            columns: columns(groups, n, column_width, t),
        };
        if candidate.rows() <= body {
            return candidate;
        }
        if best.as_ref().is_none_or(|b| candidate.rows() < b.rows()) {
            best = Some(candidate);
        }
    }
    best.unwrap_or(HelpLayout {
        width: area.width,
        column_width: area.width.saturating_sub(2),
        columns: Vec::new(),
    })
}

/// `a`, `a or b`, `a, b or c`.
fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// "↑↓ scroll · Esc, q or ? closes this help", from the table.
fn footer(keymap: &Keymap) -> String {
    let mut parts = keymap.hints(Context::Help);
    if let Some(close) = keymap.binding_for(Context::Help, Action::Close) {
        let keys: Vec<String> = close.keys.iter().take(3).map(|k| k.to_string()).collect();
        parts.push(format!("{} closes this help", or_list(&keys)));
    }
    parts.join(" · ")
}

/// As many columns as it takes to show everything (up to what the width
/// allows); scrolls when even that does not fit, and says where it is.
pub(super) fn draw(frame: &mut Frame, area: Rect, view: &ViewState) {
    let t = &view.theme;
    let laid = layout(&groups(&view.keymap), area, t);
    let rows = laid.rows();
    // The rows and the border; the footer sits in the bottom border.
    let wanted = u16::try_from(rows).unwrap_or(u16::MAX).saturating_add(2);
    let popup = centered(area, laid.width, wanted.min(area.height));
    frame.render_widget(Clear, popup);
    let body = pane_block("Keys", true, t).inner(popup);
    let max_scroll = rows.saturating_sub(usize::from(body.height));
    view.help_max_scroll.set(max_scroll);
    let scroll = view.help_scroll.min(max_scroll);
    let position = if max_scroll > 0 {
        let last = (scroll + usize::from(body.height)).min(rows);
        format!(" {}-{last} of {rows} ", scroll + 1)
    } else {
        String::new()
    };
    let block = pane_block("Keys", true, t)
        .title_bottom(Line::styled(format!(" {} ", footer(&view.keymap)), t.dim))
        .title_bottom(Line::styled(position, t.dim).right_aligned());
    frame.render_widget(block, popup);

    let offset = u16::try_from(scroll).unwrap_or(u16::MAX);
    let mut constraints = Vec::new();
    for i in 0..laid.columns.len() {
        if i > 0 {
            constraints.push(Constraint::Length(GUTTER));
        }
        constraints.push(Constraint::Length(laid.column_width));
    }
    let areas = Layout::horizontal(constraints).split(body);
    for (i, lines) in laid.columns.into_iter().enumerate() {
        if i > 0 {
            let gutter = vec![Line::styled(" │ ", t.border); usize::from(body.height)];
            frame.render_widget(Paragraph::new(gutter), areas[2 * i - 1]);
        }
        frame.render_widget(Paragraph::new(lines).scroll((offset, 0)), areas[2 * i]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_breaks_between_words_and_inside_long_ones() {
        assert_eq!(
            wrap("scroll back one line", 11),
            ["scroll back", "one line"]
        );
        assert_eq!(wrap("abcdefgh", 3), ["abc", "def", "gh"]);
        assert_eq!(wrap("", 5), [""]);
        assert_eq!(wrap("a b", 0), ["a", "b"]);
    }

    #[test]
    fn rows_never_exceed_the_column() {
        let t = Theme::plain();
        let groups = groups(&Keymap::default());
        for room in [20_u16, 38, 60, 78, 94, 120] {
            for n in 1..=3 {
                for lines in columns(&groups, n, room, &t) {
                    for line in lines {
                        assert!(line.width() <= usize::from(room), "{room}: {line:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn partition_keeps_order_and_minimises_the_tallest_column() {
        // Runs with a blank row between groups.
        assert_eq!(partition(&[5, 5, 5, 5], 2), [2]);
        assert_eq!(partition(&[10, 1, 1, 1, 1], 2), [1]);
        assert_eq!(partition(&[3, 3, 3], 3), [1, 2]);
        assert_eq!(partition(&[3], 2), Vec::<usize>::new());
        assert_eq!(partition(&[3, 4], 1), Vec::<usize>::new());
    }

    #[test]
    fn wide_terminals_get_as_many_columns_as_showing_everything_takes() {
        let t = Theme::plain();
        let groups = groups(&Keymap::default());
        let count = |w, h| layout(&groups, Rect::new(0, 0, w, h), &t).columns.len();
        assert_eq!(count(120, 40), 1);
        assert_eq!(count(160, 48), 2);
        assert_eq!(count(200, 30), 2);
        assert_eq!(count(80, 24), 1);
    }

    #[test]
    fn the_footer_names_the_close_keys() {
        assert_eq!(
            footer(&Keymap::default()),
            "↑↓ scroll · Esc, q or ? closes this help"
        );
    }
}
