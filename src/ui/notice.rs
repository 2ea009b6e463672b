//! When the notice in the input's border goes away. The engine holds the
//! newest notice, numbered, and says whether what it states still holds
//! ("queued (depth 1)" stops holding when the queue drains); this clock,
//! kept in the view, times each notice from when the loop first saw its
//! number. A notice shows while it holds and for [`NOTICE_TTL`] after it
//! was first seen ([`ERROR_TTL`] for an error).
//!
//! Invariants: pure (every `now` is passed in, so tests use explicit
//! instants); a notice never seen yet by [`NoticeClock::observe`] shows.

use std::time::{Duration, Instant};

use crate::engine::{Engine, Notice};

/// How long an ordinary notice shows.
pub const NOTICE_TTL: Duration = Duration::from_secs(5);
/// How long an error shows: long enough to read a path or a reason.
pub const ERROR_TTL: Duration = Duration::from_secs(10);

/// The number of the newest notice seen, and when it was first seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoticeClock {
    seen: Option<(u64, Instant)>,
}

fn ttl(notice: &Notice) -> Duration {
    if notice.is_error {
        ERROR_TTL
    } else {
        NOTICE_TTL
    }
}

impl NoticeClock {
    /// Start timing the engine's notice if it is a new one.
    pub fn observe(&mut self, engine: &Engine, now: Instant) {
        if let Some(notice) = engine.notice()
            && self.seen.is_none_or(|(seq, _)| seq != notice.seq)
        {
            self.seen = Some((notice.seq, now));
        }
    }

    /// The notice to show at `now`, if any.
    pub fn visible<'a>(&self, engine: &'a Engine, now: Instant) -> Option<&'a Notice> {
        let notice = engine.notice()?;
        if !engine.notice_holds(notice) {
            return None;
        }
        match self.seen {
            Some((seq, at)) if seq == notice.seq => (now < at + ttl(notice)).then_some(notice),
            _ => Some(notice),
        }
    }

    /// When the shown notice times out, if that is still to come: the loop
    /// wakes then to redraw without it.
    pub fn expiry(&self, engine: &Engine, now: Instant) -> Option<Instant> {
        let notice = self.visible(engine, now)?;
        let (seq, at) = self.seen?;
        let end = at + ttl(notice);
        (seq == notice.seq && end > now).then_some(end)
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::engine::workspace::ConversationId;
    use crate::engine::{Call, Command, Effect, EngineConfig, Input};

    const C: ConversationId = ConversationId(1);

    fn engine(now: Instant) -> Engine {
        let mut engine = Engine::new(EngineConfig::default(), now, SystemTime::UNIX_EPOCH, 1);
        assert!(engine.open_conversation(C, "default", Vec::new(), Vec::new()));
        engine
    }

    fn shown(clock: &NoticeClock, engine: &Engine, now: Instant) -> Option<String> {
        clock.visible(engine, now).map(|n| n.text.clone())
    }

    #[test]
    fn a_notice_goes_after_five_seconds_an_error_after_ten() {
        let t0 = Instant::now();
        let mut engine = engine(t0);
        let mut clock = NoticeClock::default();
        engine.set_notice("renamed", false);
        // Not observed yet: shown.
        assert_eq!(shown(&clock, &engine, t0).as_deref(), Some("renamed"));
        clock.observe(&engine, t0);
        let s = Duration::from_secs;
        assert_eq!(clock.expiry(&engine, t0), Some(t0 + s(5)));
        // Observing again does not restart it.
        clock.observe(&engine, t0 + s(3));
        assert!(shown(&clock, &engine, t0 + s(4)).is_some());
        assert_eq!(shown(&clock, &engine, t0 + s(5)), None);
        assert_eq!(clock.expiry(&engine, t0 + s(5)), None);

        // A new notice with the same text is timed afresh.
        engine.set_notice("renamed", false);
        clock.observe(&engine, t0 + s(6));
        assert!(shown(&clock, &engine, t0 + s(10)).is_some());
        assert_eq!(shown(&clock, &engine, t0 + s(11)), None);

        engine.set_notice("not sent: disk full", true);
        clock.observe(&engine, t0 + s(20));
        assert!(shown(&clock, &engine, t0 + s(29)).is_some());
        assert_eq!(clock.expiry(&engine, t0 + s(29)), Some(t0 + s(30)));
        assert_eq!(shown(&clock, &engine, t0 + s(30)), None);
    }

    fn ask(engine: &mut Engine, text: &str, now: Instant) -> Vec<Effect> {
        engine.handle(
            Input::Command(Command::Ask {
                conversation: C,
                text: text.into(),
                tag: None,
            }),
            now,
        )
    }

    /// Answer the dispatches of one turn the way a quick backend would,
    /// until its generation finishes (the next turn's are left waiting).
    fn answer(engine: &mut Engine, effects: Vec<Effect>, now: Instant) {
        let mut queue = effects;
        while let Some(effect) = queue.pop() {
            let Effect::Dispatch { id, backend, call } = effect else {
                continue;
            };
            let next = match call {
                Call::Retrieve(_) => Input::Retrieved {
                    id,
                    backend,
                    result: Ok(Vec::new()),
                },
                Call::Generate(_) => {
                    let finished = Input::Finished {
                        id,
                        backend,
                        result: Ok(()),
                    };
                    engine.handle(finished, now);
                    return;
                }
                _ => continue,
            };
            queue.extend(engine.handle(next, now));
        }
    }

    #[test]
    fn queued_goes_when_the_queue_drains_before_its_time() {
        let t0 = Instant::now();
        let mut engine = engine(t0);
        let mut clock = NoticeClock::default();
        let first = ask(&mut engine, "first", t0);
        assert!(ask(&mut engine, "second", t0).is_empty(), "queued");
        clock.observe(&engine, t0);
        assert_eq!(
            shown(&clock, &engine, t0).as_deref(),
            Some("queued (depth 1): a reply is still running")
        );
        assert!(clock.expiry(&engine, t0).is_some());
        let seq = engine.notice().map(|n| n.seq);
        // The first reply ends; the queued message runs, the queue is
        // empty: a second later the notice is gone, though its five
        // seconds are not over and no other notice replaced it.
        answer(&mut engine, first, t0);
        let conv = engine.conversation(C).expect("open");
        assert!(conv.queue.is_empty());
        assert_eq!(engine.notice().map(|n| n.seq), seq, "no newer notice");
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(shown(&clock, &engine, t1), None);
        assert_eq!(clock.expiry(&engine, t1), None);
    }

    #[test]
    fn queued_at_depth_two_goes_when_one_leaves_the_queue() {
        let t0 = Instant::now();
        let mut engine = engine(t0);
        let clock = NoticeClock::default();
        let first = ask(&mut engine, "first", t0);
        ask(&mut engine, "second", t0);
        ask(&mut engine, "third", t0);
        assert!(shown(&clock, &engine, t0).is_some_and(|t| t.starts_with("queued (depth 2)")));
        answer(&mut engine, first, t0);
        assert_eq!(engine.conversation(C).map(|c| c.queue.len()), Some(1));
        assert_eq!(shown(&clock, &engine, t0), None);
    }
}
