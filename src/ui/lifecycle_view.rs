//! The lifecycle table's view state: a filter (typed after `f`), a sort
//! column and direction, and pausing. It decides which requests the table
//! shows and in what order; `panes::lifecycle` draws only the rows on
//! screen, fetched through [`LifecycleTable::window`].
//!
//! Invariants:
//! - With no filter, no sort and no pause the table is the registry's
//!   pipeline order (`ui::lifecycle_rows_from`), built row by row: the frame
//!   cost is the rows on screen, as before.
//! - Otherwise the table is a list of ids, built from the whole history
//!   only when the filter or the sort changes, or when the registry changed
//!   (or, sorted by elapsed time, requests are live and age) and the last
//!   build is at least [`REBUILD`] old. Between builds a frame only looks up the rows on screen (and, for
//!   a sort by elapsed time, re-sorts that window, since live requests age
//!   every tick). So a frame costs the visible rows, plus at most one
//!   rebuild (a filter pass and a sort of what the filter keeps) per
//!   [`REBUILD`]: with a sort by elapsed time and 100,000 retained requests
//!   the per-frame cost stays bounded while the rebuild is amortised.
//!   Throttling was chosen over a capped working set because a cap would
//!   make a filter miss old matches, and the filter must be exact.
//! - Unsorted, children stay under their parents (the pipeline order,
//!   filtered); sorted, rows are flat.
//! - Paused, the table shows the ids it showed when paused, in that order;
//!   requests created since are counted, not shown.

use std::cell::{Ref, RefCell};
use std::cmp::Ordering;
use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::engine::request::{Request, RequestId};

/// The shortest time between two rebuilds of the filtered and sorted list
/// while the registry keeps changing.
pub const REBUILD: Duration = Duration::from_millis(250);

/// A column the table can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortBy {
    /// The pipeline order: newest pipeline first, children under parents.
    #[default]
    Pipeline,
    /// Longest elapsed first.
    Elapsed,
    State,
    Kind,
    Backend,
    Id,
}

impl SortBy {
    /// The next column in the cycle.
    pub fn next(self) -> Self {
        match self {
            SortBy::Pipeline => SortBy::Elapsed,
            SortBy::Elapsed => SortBy::State,
            SortBy::State => SortBy::Kind,
            SortBy::Kind => SortBy::Backend,
            SortBy::Backend => SortBy::Id,
            SortBy::Id => SortBy::Pipeline,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SortBy::Pipeline => "pipeline",
            SortBy::Elapsed => "elapsed",
            SortBy::State => "state",
            SortBy::Kind => "kind",
            SortBy::Backend => "backend",
            SortBy::Id => "id",
        }
    }

    /// `a` against `b` in this column's natural order (elapsed: longest
    /// first; the others ascending). `Pipeline` compares equal.
    pub fn compare(self, a: &Request, b: &Request, now: Instant) -> Ordering {
        match self {
            SortBy::Pipeline => Ordering::Equal,
            SortBy::Elapsed => b.elapsed(now).cmp(&a.elapsed(now)),
            SortBy::State => a.phase.label().cmp(b.phase.label()),
            SortBy::Kind => a.kind.label().cmp(b.kind.label()),
            SortBy::Backend => a.backend.cmp(&b.backend),
            SortBy::Id => a.id.0.cmp(&b.id.0),
        }
    }
}

/// One filter term.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    /// An outcome or phase label, with `-` for spaces (`timed-out`).
    State(String),
    Backend(String),
    Kind(String),
    /// Requests with late drops.
    Late,
    /// Case-insensitive text in the label or the id.
    Text(String),
}

/// A parsed filter: every term must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// What was typed, as shown in the header.
    pub text: String,
    terms: Vec<Term>,
}

impl Filter {
    /// Parse `state:timed-out backend:ollama kind:retrieve late words`;
    /// `None` for an empty filter.
    pub fn parse(text: &str) -> Option<Filter> {
        let terms: Vec<Term> = text
            .split_whitespace()
            .map(|word| {
                let lower = word.to_lowercase();
                if let Some(v) = lower.strip_prefix("state:") {
                    Term::State(v.replace('-', " "))
                } else if let Some(v) = lower.strip_prefix("backend:") {
                    Term::Backend(v.to_string())
                } else if let Some(v) = lower.strip_prefix("kind:") {
                    Term::Kind(v.to_string())
                } else if lower == "late" {
                    Term::Late
                } else {
                    Term::Text(lower)
                }
            })
            .collect();
        (!terms.is_empty()).then(|| Filter {
            text: text.split_whitespace().collect::<Vec<_>>().join(" "),
            terms,
        })
    }

    pub fn matches(&self, r: &Request) -> bool {
        self.terms.iter().all(|term| match term {
            Term::State(s) => r.phase.label().replace('-', " ") == *s,
            Term::Backend(b) => r.backend.to_lowercase() == *b,
            Term::Kind(k) => r.kind.label() == k,
            Term::Late => r.late_drops > 0,
            Term::Text(t) => {
                r.label.to_lowercase().contains(t.as_str())
                    || r.id.short().contains(t.as_str())
                    || r.id.to_string().to_lowercase().contains(t.as_str())
            }
        })
    }
}

/// The table frozen by a pause.
#[derive(Debug, Clone)]
struct Paused {
    rows: Vec<RequestId>,
    /// The registry's last sequence number when paused.
    seq: u64,
}

/// The built list and what it was built from.
#[derive(Debug, Clone)]
struct Built {
    filter: Option<String>,
    sort: SortBy,
    inverted: bool,
    fingerprint: (usize, usize, u64),
    at: Instant,
    rows: Vec<RequestId>,
}

/// The lifecycle table's filter, sort and pause.
#[derive(Debug, Clone, Default)]
pub struct LifecycleTable {
    pub filter: Option<Filter>,
    /// The filter being typed after `f`, while the prompt is open.
    pub prompt: Option<String>,
    pub sort: SortBy,
    pub inverted: bool,
    paused: Option<Paused>,
    built: RefCell<Option<Built>>,
}

impl LifecycleTable {
    /// Whether the table is the plain pipeline order.
    fn is_plain(&self) -> bool {
        self.filter.is_none() && self.sort == SortBy::Pipeline && !self.inverted
    }

    /// Whether rows are flat (sorted by a column): children are not under
    /// their parents, so they are not drawn as if they were.
    pub fn is_flat(&self) -> bool {
        self.sort != SortBy::Pipeline
    }

    pub fn is_paused(&self) -> bool {
        self.paused.is_some()
    }

    /// Requests created since the pause.
    pub fn new_since_pause(&self, engine: &Engine) -> Option<u64> {
        let paused = self.paused.as_ref()?;
        Some(engine.registry().last_seq().saturating_sub(paused.seq))
    }

    /// Pause (freezing the rows shown now) or resume.
    pub fn toggle_pause(&mut self, engine: &Engine, now: Instant) {
        if self.paused.take().is_some() {
            return;
        }
        let rows = if self.is_plain() {
            crate::ui::lifecycle_rows_from(engine, 0)
                .map(|r| r.id)
                .collect()
        } else {
            self.ids(engine, now).clone()
        };
        self.paused = Some(Paused {
            rows,
            seq: engine.registry().last_seq(),
        });
    }

    /// Apply a typed filter; an empty one clears it.
    pub fn set_filter(&mut self, text: &str) {
        self.filter = Filter::parse(text);
        self.paused = None;
    }

    pub fn cycle_sort(&mut self) {
        self.sort = self.sort.next();
        self.paused = None;
    }

    pub fn invert(&mut self) {
        self.inverted = !self.inverted;
        self.paused = None;
    }

    /// The ids in table order, rebuilt when stale (see the module doc).
    fn ids(&self, engine: &Engine, now: Instant) -> Ref<'_, Vec<RequestId>> {
        let registry = engine.registry();
        let fingerprint = (
            registry.retained_len(),
            registry.events_len(),
            registry.last_seq(),
        );
        let filter = self.filter.as_ref().map(|f| f.text.clone());
        let stale = match &*self.built.borrow() {
            None => true,
            Some(b) => {
                b.filter != filter
                    || b.sort != self.sort
                    || b.inverted != self.inverted
                    // Live requests age: sorted by elapsed time they move
                    // past finished ones, so the list is rebuilt while any
                    // is live (finished requests keep their elapsed time).
                    || (b.fingerprint != fingerprint
                        || self.sort == SortBy::Elapsed && registry.live_count() > 0)
                        && now.saturating_duration_since(b.at) >= REBUILD
            }
        };
        if stale {
            let rows = filtered_sorted(engine, self.filter.as_ref(), self.sort, self.inverted, now)
                .into_iter()
                .map(|r| r.id)
                .collect();
            *self.built.borrow_mut() = Some(Built {
                filter,
                sort: self.sort,
                inverted: self.inverted,
                fingerprint,
                at: now,
                rows,
            });
        }
        Ref::map(self.built.borrow(), |b| match b {
            Some(b) => &b.rows,
            None => &EMPTY,
        })
    }

    /// How many rows the table has.
    pub fn count(&self, engine: &Engine, now: Instant) -> usize {
        if let Some(paused) = &self.paused {
            return paused.rows.len();
        }
        if self.is_plain() {
            return crate::ui::lifecycle_row_count(engine);
        }
        self.ids(engine, now).len()
    }

    /// How many retained requests the filter hides.
    pub fn hidden(&self, engine: &Engine, now: Instant) -> usize {
        if self.filter.is_none() {
            return 0;
        }
        engine
            .registry()
            .retained_len()
            .saturating_sub(self.ids(engine, now).len())
    }

    /// Row `index` of the table.
    pub fn row<'e>(&self, engine: &'e Engine, index: usize, now: Instant) -> Option<&'e Request> {
        self.window(engine, index, 1, now).into_iter().next()
    }

    /// The row that shows `id`, if the table shows it. Walks the table from
    /// the top and stops there: a key press's cost, not a frame's.
    pub fn position(&self, engine: &Engine, id: RequestId, now: Instant) -> Option<usize> {
        if let Some(paused) = &self.paused {
            return paused.rows.iter().position(|r| *r == id);
        }
        if self.is_plain() {
            return crate::ui::lifecycle_rows_from(engine, 0).position(|r| r.id == id);
        }
        self.ids(engine, now).iter().position(|r| *r == id)
    }

    /// Rows `first..first + len` of the table, the only ones built.
    pub fn window<'e>(
        &self,
        engine: &'e Engine,
        first: usize,
        len: usize,
        now: Instant,
    ) -> Vec<&'e Request> {
        let registry = engine.registry();
        if let Some(paused) = &self.paused {
            return paused
                .rows
                .iter()
                .skip(first)
                .take(len)
                .filter_map(|id| registry.get(*id))
                .collect();
        }
        if self.is_plain() {
            return crate::ui::lifecycle_rows_from(engine, first)
                .take(len)
                .collect();
        }
        let mut rows: Vec<&Request> = self
            .ids(engine, now)
            .iter()
            .skip(first)
            .take(len)
            .filter_map(|id| registry.get(*id))
            .collect();
        // Live requests age between rebuilds: keep the window in order.
        if self.sort == SortBy::Elapsed {
            rows.sort_by(|a, b| directed(SortBy::Elapsed, self.inverted, a, b, now));
        }
        rows
    }
}

static EMPTY: Vec<RequestId> = Vec::new();

fn directed(sort: SortBy, inverted: bool, a: &Request, b: &Request, now: Instant) -> Ordering {
    let order = sort.compare(a, b, now);
    if inverted { order.reverse() } else { order }
}

/// Every retained request the filter keeps, in table order: the pipeline
/// order filtered (reversed when inverted), or sorted flat by `sort` (a
/// stable sort over the pipeline order, so ties keep it).
pub fn filtered_sorted<'e>(
    engine: &'e Engine,
    filter: Option<&Filter>,
    sort: SortBy,
    inverted: bool,
    now: Instant,
) -> Vec<&'e Request> {
    let mut rows: Vec<&Request> = crate::ui::lifecycle_rows_from(engine, 0)
        .filter(|r| filter.is_none_or(|f| f.matches(r)))
        .collect();
    if sort == SortBy::Pipeline {
        if inverted {
            rows.reverse();
        }
    } else if sort == SortBy::Elapsed {
        // Each elapsed time computed once, not per comparison (stable: the
        // keys carry their index).
        if inverted {
            rows.sort_by_cached_key(|r| r.elapsed(now));
        } else {
            rows.sort_by_cached_key(|r| std::cmp::Reverse(r.elapsed(now)));
        }
    } else {
        rows.sort_by(|a, b| directed(sort, inverted, a, b, now));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_terms_and_an_empty_one_clears() {
        assert!(Filter::parse("   ").is_none());
        let f = Filter::parse("state:timed-out  backend:Ollama kind:retrieve late ford")
            .expect("terms");
        assert_eq!(
            f.text,
            "state:timed-out backend:Ollama kind:retrieve late ford"
        );
        assert_eq!(
            f.terms,
            vec![
                Term::State("timed out".into()),
                Term::Backend("ollama".into()),
                Term::Kind("retrieve".into()),
                Term::Late,
                Term::Text("ford".into()),
            ]
        );
    }

    #[test]
    fn sort_cycles_through_every_column_back_to_pipeline() {
        let mut s = SortBy::Pipeline;
        let mut seen = Vec::new();
        for _ in 0..6 {
            s = s.next();
            seen.push(s.label());
        }
        assert_eq!(
            seen,
            ["elapsed", "state", "kind", "backend", "id", "pipeline"]
        );
    }
}
