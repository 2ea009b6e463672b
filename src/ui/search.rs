//! The `/kb search` overlay: what a search asked for and found (`KbSearch`,
//! held by the view), the results list, and the passage view opened from
//! it (drawn like a cited passage, by `panes::passage_lines`).
//!
//! Invariants: a search's results are applied only to the overlay that
//! asked for them (same `seq`, still waiting), so a slow search can never
//! fill a newer or closed overlay; the selection is kept within the results
//! by the keys and clamped again when drawn; every string from the
//! knowledge base is sanitised (`one_line`, the markdown renderer).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, List, ListItem, ListState, Paragraph};

use super::panes::{passage_lines, passage_place, passage_popup, passage_popup_area};
use super::{Theme, ViewState, centered, markdown, pane_block};
use crate::domain::Passage;
use crate::keymap::{Action, Context};
use crate::sanitize::one_line;

/// How many passages a search lists.
pub const SEARCH_TOP_K: usize = 20;

/// What a search found: the knowledge base it searched and its passages,
/// best first.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub kb: String,
    pub passages: Vec<Passage>,
}

/// A finished search, as it comes back from the blocking pool.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchDone {
    /// The `seq` of the overlay that asked (`ViewState::open_search`).
    pub seq: u64,
    pub result: Result<Found, String>,
}

/// Where a search stands.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchResults {
    Pending,
    Found(Found),
    Failed(String),
}

/// The open search overlay.
#[derive(Debug, Clone, PartialEq)]
pub struct KbSearch {
    pub seq: u64,
    pub query: String,
    pub results: SearchResults,
    /// The selected row (0 is the best match).
    pub selected: usize,
    /// The selected passage is open in the passage view.
    pub opened: bool,
    /// Passage view: rows scrolled down.
    pub passage_scroll: usize,
}

impl KbSearch {
    pub fn new(seq: u64, query: String) -> Self {
        Self {
            seq,
            query,
            results: SearchResults::Pending,
            selected: 0,
            opened: false,
            passage_scroll: 0,
        }
    }

    /// The passages found (none while waiting or after a failure).
    pub fn passages(&self) -> &[Passage] {
        match &self.results {
            SearchResults::Found(found) => &found.passages,
            _ => &[],
        }
    }

    /// The selected passage, if there is one.
    pub fn selected_passage(&self) -> Option<&Passage> {
        let passages = self.passages();
        passages.get(self.selected.min(passages.len().saturating_sub(1)))
    }
}

/// The results list, or the passage view when one is open.
pub(super) fn draw(frame: &mut Frame, area: Rect, view: &ViewState, search: &KbSearch) {
    match search.selected_passage() {
        Some(passage) if search.opened => draw_passage(frame, area, view, search, passage),
        _ => draw_results(frame, area, view, search),
    }
}

/// The keys' hints, in the overlay's bottom border: the results' from the
/// table's hints, the open passage's from the same bindings.
fn hints_line(view: &ViewState, opened: bool) -> Line<'static> {
    let hints = if opened {
        let keys = |actions: &[Action]| -> String {
            actions
                .iter()
                .filter_map(|a| view.keymap.binding_for(Context::Search, *a))
                .filter_map(|b| b.keys.first())
                .map(ToString::to_string)
                .collect()
        };
        vec![
            format!("{} scroll", keys(&[Action::ScrollUp, Action::ScrollDown])),
            format!("{} back", keys(&[Action::Close])),
        ]
    } else {
        view.keymap.hints(Context::Search)
    };
    Line::styled(format!(" {} ", hints.join(" · ")), view.theme.dim)
}

fn draw_results(frame: &mut Frame, area: Rect, view: &ViewState, search: &KbSearch) {
    let t = &view.theme;
    let popup = centered(
        area,
        area.width.saturating_sub(6).clamp(20, 110),
        area.height.saturating_sub(4).max(6),
    );
    frame.render_widget(Clear, popup);
    let block = pane_block("Knowledge base search", true, t).title_bottom(hints_line(view, false));
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let [header_area, list_area] =
        Layout::vertical([Constraint::Length(2), Constraint::Min(0)]).areas(inner);

    let query = format!("\"{}\"", one_line(&search.query));
    let header = match &search.results {
        SearchResults::Pending => Line::styled(format!("searching for {query} …"), t.dim),
        SearchResults::Failed(error) => {
            Line::styled(format!("search failed: {}", one_line(error)), t.error)
        }
        SearchResults::Found(found) if found.passages.is_empty() => Line::styled(
            format!("no passage matches {query} in kb {}", one_line(&found.kb)),
            t.warn,
        ),
        SearchResults::Found(found) => Line::from(vec![
            Span::styled(query, t.h1),
            Span::styled(
                format!(
                    "  {} passage{} · kb {}",
                    found.passages.len(),
                    if found.passages.len() == 1 { "" } else { "s" },
                    one_line(&found.kb)
                ),
                t.dim,
            ),
        ]),
    };
    frame.render_widget(Paragraph::new(header), header_area);

    let passages = search.passages();
    if passages.is_empty() {
        return;
    }
    // The highlight symbol takes two columns of every row; one more keeps
    // the text off the border.
    let room = usize::from(list_area.width).saturating_sub(3);
    let items: Vec<ListItem<'static>> = passages
        .iter()
        .enumerate()
        .map(|(i, p)| result_item(i + 1, p, room, t))
        .collect();
    let list = List::new(items)
        .highlight_symbol("▸ ")
        .highlight_style(t.selected);
    let mut state =
        ListState::default().with_selected(Some(search.selected.min(passages.len() - 1)));
    frame.render_stateful_widget(list, list_area, &mut state);
}

/// Width of `  1   17.69  `: the rank and score columns before the place.
const ROW_LEAD: usize = 13;

/// Two rows: rank, score and where the passage comes from; then a one-line
/// snippet of its text, each cut to `room` columns.
fn result_item(rank: usize, p: &Passage, room: usize, t: &Theme) -> ListItem<'static> {
    let lead = format!("{rank:>3}  {:>6.2}  ", p.score);
    let place = fit(&passage_place(p), room.saturating_sub(ROW_LEAD));
    // The snippet sits under the place, unless that leaves it too little room.
    let indent = if room >= ROW_LEAD + 20 { ROW_LEAD } else { 0 };
    let snippet = fit(&snippet(p, t), room - indent);
    let indent = " ".repeat(indent);
    ListItem::new(vec![
        Line::from(vec![Span::styled(lead, t.dim), Span::raw(place)]),
        Line::styled(format!("{indent}{snippet}"), t.dim),
    ])
}

fn width(text: &str) -> usize {
    Span::raw(text).width()
}

/// The passage's text as one plain line: rendered as markdown first, so
/// the snippet shows no markup.
fn snippet(p: &Passage, t: &Theme) -> String {
    let text = markdown::to_text(&p.text, t);
    let words: Vec<String> = text
        .lines
        .iter()
        .map(|line| {
            line.spans
                .iter()
                .map(|s| s.content.as_ref())
                .collect::<String>()
        })
        .collect();
    one_line(&words.join(" "))
}

/// `text` cut to `room` columns, with `…` where it was cut.
fn fit(text: &str, room: usize) -> String {
    if width(text) <= room {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = width(c.encode_utf8(&mut [0; 4]));
        if used + w + 1 > room {
            break;
        }
        out.push(c);
        used += w;
    }
    if room > 0 {
        out.push('…');
    }
    out
}

fn draw_passage(
    frame: &mut Frame,
    area: Rect,
    view: &ViewState,
    search: &KbSearch,
    passage: &Passage,
) {
    let t = &view.theme;
    let rank = search
        .selected
        .min(search.passages().len().saturating_sub(1))
        + 1;
    let lines = passage_lines(
        passage,
        Some(Span::styled(format!("#{rank} "), t.citation)),
        t,
    );
    let popup = passage_popup_area(area);
    let title = format!(
        "Search result {rank} of {} · \"{}\"",
        search.passages().len(),
        one_line(&search.query)
    );
    let block = pane_block(&title, true, t).title_bottom(hints_line(view, true));
    let max = passage_popup(frame, popup, block, lines, search.passage_scroll);
    view.passage_max_scroll.set(max);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_cuts_with_an_ellipsis_only_when_needed() {
        assert_eq!(fit("waystone", 8), "waystone");
        assert_eq!(fit("waystone", 5), "ways…");
        assert_eq!(fit("waystone", 0), "");
        assert_eq!(fit("日本語", 4), "日…");
    }

    #[test]
    fn the_snippet_shows_no_markup_or_control_characters() {
        let p = Passage {
            id: "w.md#0".into(),
            title: "Waystone".into(),
            source: "w.md".into(),
            kind: None,
            heading: None,
            text: "## Guard\n\nThe **waystone** is\x1b[31m guarded.\n\n- by Tamsin".into(),
            score: 1.0,
            entities: Vec::new(),
            location: crate::domain::Location::default(),
        };
        assert_eq!(
            snippet(&p, &Theme::plain()),
            "Guard The waystone is guarded. • by Tamsin"
        );
    }
}
