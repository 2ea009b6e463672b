//! The scenarios the engine holds for the views: every scenario still
//! running, and the newest finished ones up to a cap ([`SCENARIOS_KEPT`]).
//! Older finished scenarios stay in the session database (each is saved
//! when it ends, [`super::Effect::SaveScenario`]) and are no longer held in
//! memory: `loreweave load --kind scenario` or a long TUI session runs any
//! number of scenarios in bounded memory.
//!
//! Invariants: a scenario's index is given once, in the order scenarios are
//! added (0 for the first this engine held), and never changes: trimming
//! only moves [`ScenarioLog::first`] forward, so an index held by a
//! pipeline (`Target::Scenario`), the TUI's selection, `/regenerate N` or
//! `/export N` names the same scenario for as long as it is held, and
//! nothing at all (`get` says `None`) after. Only finished scenarios are
//! dropped, oldest first, and only while more than the cap are held: a
//! running one is never dropped (its pipeline writes into it), so a
//! scenario still running at the front holds the finished ones behind it
//! until it ends (every scenario ends: its children have deadlines). At
//! most `max(cap, running + those held behind a running front)` are held.

use std::collections::VecDeque;
use std::collections::vec_deque;

use super::workspace::{ScenarioEntry, ScenarioStatus};

/// Scenarios held in memory at most (more only while more are running).
pub const SCENARIOS_KEPT: usize = 1_000;

/// Scenarios by stable index, oldest first (see the module doc).
#[derive(Debug, Clone)]
pub struct ScenarioLog {
    entries: VecDeque<ScenarioEntry>,
    /// The index of `entries[0]`: how many were dropped so far.
    first: usize,
    cap: usize,
}

impl Default for ScenarioLog {
    fn default() -> Self {
        Self::with_cap(SCENARIOS_KEPT)
    }
}

impl ScenarioLog {
    /// A log that holds at most `cap` scenarios (at least one) beyond the
    /// running ones.
    pub fn with_cap(cap: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            first: 0,
            cap: cap.max(1),
        }
    }

    /// Add a scenario; its index. Finished ones past the cap are dropped.
    pub fn push(&mut self, entry: ScenarioEntry) -> usize {
        self.entries.push_back(entry);
        let index = self.end() - 1;
        self.trim();
        index
    }

    /// Drop the oldest finished scenarios while more than the cap are
    /// held (call after a scenario ends).
    pub fn trim(&mut self) {
        while self.entries.len() > self.cap
            && self
                .entries
                .front()
                .is_some_and(|e| e.status != ScenarioStatus::Running)
        {
            self.entries.pop_front();
            self.first += 1;
        }
    }

    /// The index of the oldest scenario held (the scenarios before it were
    /// dropped from memory).
    pub fn first(&self) -> usize {
        self.first
    }

    /// The index the next scenario will get: one past the newest.
    pub fn end(&self) -> usize {
        self.first + self.entries.len()
    }

    /// How many scenarios are held now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The scenario at `index`, if it is held.
    pub fn get(&self, index: usize) -> Option<&ScenarioEntry> {
        self.entries.get(index.checked_sub(self.first)?)
    }

    pub fn get_mut(&mut self, index: usize) -> Option<&mut ScenarioEntry> {
        self.entries.get_mut(index.checked_sub(self.first)?)
    }

    /// The newest scenario.
    pub fn last(&self) -> Option<&ScenarioEntry> {
        self.entries.back()
    }

    /// The scenarios held, oldest first.
    pub fn iter(&self) -> vec_deque::Iter<'_, ScenarioEntry> {
        self.entries.iter()
    }

    /// The scenarios held from `index` on, with their indexes.
    pub fn from_index(&self, index: usize) -> impl Iterator<Item = (usize, &ScenarioEntry)> {
        let skip = index.saturating_sub(self.first).min(self.entries.len());
        self.entries
            .range(skip..)
            .enumerate()
            .map(move |(i, e)| (self.first + skip + i, e))
    }
}

/// `log[index]`: the scenario at `index`; panics when it is not held (use
/// [`ScenarioLog::get`] for an index that may have been dropped).
impl std::ops::Index<usize> for ScenarioLog {
    type Output = ScenarioEntry;

    fn index(&self, index: usize) -> &ScenarioEntry {
        match self.get(index) {
            Some(entry) => entry,
            None => panic!(
                "scenario {index} is not held (held: {}..{})",
                self.first,
                self.end()
            ),
        }
    }
}

impl<'a> IntoIterator for &'a ScenarioLog {
    type Item = &'a ScenarioEntry;
    type IntoIter = vec_deque::Iter<'a, ScenarioEntry>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::request::RequestId;
    use crate::engine::workspace::ConversationId;

    fn entry(n: usize, status: ScenarioStatus) -> ScenarioEntry {
        ScenarioEntry {
            conversation: ConversationId(1),
            index: n,
            prompt: format!("prompt {n}"),
            seed: n as u64,
            request: RequestId::nil(),
            backend: "offline".into(),
            markdown: String::new(),
            status,
            passages: Vec::new(),
            no_lore: None,
        }
    }

    #[test]
    fn finished_scenarios_past_the_cap_go_and_indexes_stay() {
        let mut log = ScenarioLog::with_cap(3);
        for n in 0..10 {
            assert_eq!(log.push(entry(n, ScenarioStatus::Done)), n);
        }
        assert_eq!((log.first(), log.end(), log.len()), (7, 10, 3));
        assert!(log.get(6).is_none());
        assert_eq!(log[7].prompt, "prompt 7");
        assert_eq!(log.last().map(|e| e.seed), Some(9));
        let held: Vec<usize> = log.from_index(8).map(|(i, _)| i).collect();
        assert_eq!(held, vec![8, 9]);
        let all: Vec<usize> = log.from_index(0).map(|(i, e)| i - e.index).collect();
        assert_eq!(all, vec![0, 0, 0]);
    }

    #[test]
    fn a_running_scenario_is_never_dropped_and_holds_those_behind_it() {
        let mut log = ScenarioLog::with_cap(2);
        let running = log.push(entry(0, ScenarioStatus::Running));
        for n in 1..6 {
            log.push(entry(n, ScenarioStatus::Done));
        }
        // The running front holds everything behind it.
        assert_eq!((log.first(), log.len()), (0, 6));
        assert!(log.get_mut(running).is_some());
        if let Some(e) = log.get_mut(running) {
            e.status = ScenarioStatus::Cancelled;
        }
        log.trim();
        assert_eq!((log.first(), log.end()), (4, 6));
        assert!(log.get(running).is_none());
        assert_eq!(log[5].prompt, "prompt 5");
    }
}
