//! Many conversations and what the engine asks to persist, under a fake
//! clock: independent queues and histories, closing, restoring unsent
//! messages, and the cadence of the `Save*` effects.

use std::time::{Duration, Instant, SystemTime};

use super::request::{Kind, Outcome, RequestId, RequestSummary};
use super::*;
use crate::domain::{BackendError, ChatTurn};

const A: ConversationId = ConversationId(1);
const B: ConversationId = ConversationId(2);
/// The wall clock at the engine's origin, in ms since the epoch.
const WALL: u64 = 1_700_000_000_000;

struct H {
    engine: Engine,
    t0: Instant,
    now: Instant,
}

impl H {
    fn with(cfg: EngineConfig) -> Self {
        let t0 = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_millis(WALL);
        let mut engine = Engine::new(cfg, t0, wall, 13);
        assert!(engine.open_conversation(A, "a", Vec::new(), Vec::new()));
        assert!(engine.open_conversation(B, "b", Vec::new(), Vec::new()));
        Self {
            engine,
            t0,
            now: t0,
        }
    }

    fn new() -> Self {
        Self::with(EngineConfig::default())
    }

    fn at_ms(&mut self, ms: u64) {
        self.now = self.t0 + Duration::from_millis(ms);
    }

    fn send(&mut self, input: Input) -> Vec<Effect> {
        self.engine.handle(input, self.now)
    }

    fn ask(&mut self, conversation: ConversationId, text: &str) -> Vec<Effect> {
        self.send(Input::Command(Command::Ask {
            conversation,
            text: text.into(),
            tag: None,
        }))
    }

    fn retrieved(&mut self, id: RequestId) -> Vec<Effect> {
        self.send(Input::Retrieved {
            id,
            backend: "local".into(),
            result: Ok(vec![]),
        })
    }

    fn token(&mut self, id: RequestId, text: &str) -> Vec<Effect> {
        self.send(Input::Token {
            id,
            backend: "offline".into(),
            text: text.into(),
        })
    }

    fn finished(&mut self, id: RequestId, result: Result<(), BackendError>) -> Vec<Effect> {
        self.send(Input::Finished {
            id,
            backend: "offline".into(),
            result,
        })
    }

    fn conv(&self, id: ConversationId) -> &Conversation {
        self.engine.conversation(id).expect("open conversation")
    }

    fn texts(&self, id: ConversationId) -> Vec<&str> {
        self.conv(id)
            .messages
            .iter()
            .map(|m| m.text.as_str())
            .collect()
    }
}

/// The one retrieval dispatched in `fx`, and what it asks.
fn retrieval(fx: &[Effect]) -> (RequestId, String) {
    let found: Vec<_> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::Dispatch {
                id,
                call: Call::Retrieve(q),
                ..
            } => Some((*id, q.query.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(found.len(), 1, "one retrieval expected in {fx:?}");
    found[0].clone()
}

/// The one generation dispatched in `fx`, and the chat history it carries.
fn generation(fx: &[Effect]) -> (RequestId, Vec<ChatTurn>) {
    let found: Vec<_> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::Dispatch {
                id,
                call: Call::Generate(task),
                ..
            } => Some((
                *id,
                match &task.mode {
                    TaskMode::Chat { history, .. } => history.clone(),
                    TaskMode::Scenario { .. } => Vec::new(),
                },
            )),
            _ => None,
        })
        .collect();
    assert_eq!(found.len(), 1, "one generation expected in {fx:?}");
    found[0].clone()
}

fn no_dispatch(fx: &[Effect]) -> bool {
    !fx.iter().any(|e| matches!(e, Effect::Dispatch { .. }))
}

/// (conversation, message, status, text) of every reply save in `fx`.
fn reply_saves(fx: &[Effect]) -> Vec<(ConversationId, MessageKey, ReplyStatus, String)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::SaveReply {
                conversation,
                message,
                status,
                text,
                ..
            } => Some((*conversation, *message, status.clone(), text.clone())),
            _ => None,
        })
        .collect()
}

fn summary_batches(fx: &[Effect]) -> Vec<Vec<RequestSummary>> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::SaveRequests(batch) => Some(batch.clone()),
            _ => None,
        })
        .collect()
}

/// Whether any effect in `fx` persists something for `conversation`.
fn saves_for(fx: &[Effect], conversation: ConversationId) -> bool {
    fx.iter().any(|e| match e {
        Effect::SaveReply {
            conversation: c, ..
        }
        | Effect::SaveScenario {
            conversation: c, ..
        } => *c == conversation,
        Effect::SaveRequests(batch) => batch.iter().any(|s| s.conversation == Some(conversation)),
        _ => false,
    })
}

fn turn(role: Role, text: &str) -> ChatTurn {
    ChatTurn {
        role,
        text: text.into(),
    }
}

/// A chat message with nothing but its role, text and status (also the
/// workspace tests' starting point).
pub(super) fn message(role: Role, text: &str, status: MessageStatus) -> ChatMessage {
    ChatMessage {
        role,
        text: text.into(),
        status,
        request: None,
        backend: None,
        passages: Vec::new(),
        no_lore: None,
        tag: None,
    }
}

#[test]
fn a_new_engine_has_no_conversation_and_opening_one_twice_changes_nothing() {
    let t0 = Instant::now();
    let mut engine = Engine::new(EngineConfig::default(), t0, SystemTime::UNIX_EPOCH, 1);
    assert_eq!(engine.conversations().count(), 0);
    assert!(engine.open_conversation(B, "second", Vec::new(), Vec::new()));
    assert!(engine.open_conversation(A, "first", Vec::new(), Vec::new()));
    let again = vec![message(Role::User, "x", MessageStatus::Done)];
    assert!(!engine.open_conversation(A, "other", again, Vec::new()));
    assert!(engine.rename_conversation(B, "renamed"));
    assert!(!engine.rename_conversation(ConversationId(9), "nobody"));
    let listed: Vec<(ConversationId, &str, usize)> = engine
        .conversations()
        .map(|(id, c)| (id, c.name.as_str(), c.messages.len()))
        .collect();
    assert_eq!(listed, vec![(A, "first", 0), (B, "renamed", 0)]);
}

#[test]
fn two_conversations_keep_their_own_order_and_histories() {
    let mut h = H::new();
    // Interleaved: each conversation's first question starts, the rest queue
    // in their own conversation.
    let (ra1, q) = retrieval(&h.ask(A, "a1"));
    assert_eq!(q, "a1");
    let (rb1, q) = retrieval(&h.ask(B, "b1"));
    assert_eq!(q, "b1");
    for text in ["a2", "b2", "a3", "b3"] {
        let to = if text.starts_with('a') { A } else { B };
        assert!(no_dispatch(&h.ask(to, text)), "{text} waits its turn");
    }
    let queued =
        |h: &H, c| -> Vec<String> { h.conv(c).queue.iter().map(|q| q.text.clone()).collect() };
    assert_eq!(queued(&h, A), vec!["a2", "a3"]);
    assert_eq!(queued(&h, B), vec!["b2", "b3"]);

    // B's first turn ends before A's: B moves on, A keeps waiting.
    h.at_ms(100);
    let (gb1, history) = generation(&h.retrieved(rb1));
    assert!(history.is_empty(), "b1 has no earlier turn");
    h.token(gb1, "B one");
    let (rb2, q) = retrieval(&h.finished(gb1, Ok(())));
    assert_eq!(q, "b2");
    assert_eq!(queued(&h, A), vec!["a2", "a3"], "A is untouched");
    assert!(h.conv(A).running.is_some());

    h.at_ms(200);
    let (ga1, history) = generation(&h.retrieved(ra1));
    assert!(history.is_empty(), "a1 sees nothing of B");
    h.token(ga1, "A one");
    let (ra2, q) = retrieval(&h.finished(ga1, Ok(())));
    assert_eq!(q, "a2");

    // Each second turn carries its own conversation's first turn only.
    h.at_ms(300);
    let (gb2, history) = generation(&h.retrieved(rb2));
    assert_eq!(
        history,
        vec![turn(Role::User, "b1"), turn(Role::Assistant, "B one")]
    );
    let (ga2, history) = generation(&h.retrieved(ra2));
    assert_eq!(
        history,
        vec![turn(Role::User, "a1"), turn(Role::Assistant, "A one")]
    );
    h.token(ga2, "A two");
    let (ra3, q) = retrieval(&h.finished(ga2, Ok(())));
    assert_eq!(q, "a3");
    h.token(gb2, "B two");
    let (rb3, q) = retrieval(&h.finished(gb2, Ok(())));
    assert_eq!(q, "b3");
    for (r, text) in [(ra3, "A three"), (rb3, "B three")] {
        let (g, _) = generation(&h.retrieved(r));
        h.token(g, text);
        h.finished(g, Ok(()));
    }
    assert_eq!(
        h.texts(A),
        vec!["a1", "A one", "a2", "A two", "a3", "A three"]
    );
    assert_eq!(
        h.texts(B),
        vec!["b1", "B one", "b2", "B two", "b3", "B three"]
    );
    assert!(!h.engine.is_busy());
}

#[test]
fn a_failure_in_one_conversation_does_not_stop_its_queue_nor_touch_the_other() {
    let mut h = H::new();
    let (ra1, _) = retrieval(&h.ask(A, "a1"));
    h.ask(A, "a2");
    let (rb1, _) = retrieval(&h.ask(B, "b1"));
    h.ask(B, "b2");
    let (gb1, _) = generation(&h.retrieved(rb1));
    h.token(gb1, "B streaming");
    let (ga1, _) = generation(&h.retrieved(ra1));

    let fx = h.finished(ga1, Err(BackendError::permanent("model exploded")));
    let (_, q) = retrieval(&fx);
    assert_eq!(q, "a2", "A's queue goes on after the failure");
    assert!(matches!(
        &h.conv(A).messages[1].status,
        MessageStatus::Failed(reason) if reason.contains("model exploded")
    ));
    // B: still streaming its reply, its queue still waiting, nothing saved.
    assert!(!saves_for(&fx, B), "{fx:?}");
    let b = h.conv(B);
    assert_eq!(b.messages[1].status, MessageStatus::Running);
    assert_eq!(b.messages[1].text, "B streaming");
    assert_eq!(
        b.queue.iter().map(|q| q.text.as_str()).collect::<Vec<_>>(),
        vec!["b2"]
    );
    let (_, q) = retrieval(&h.finished(gb1, Ok(())));
    assert_eq!(q, "b2");
    assert_eq!(h.conv(B).messages[1].status, MessageStatus::Done);
}

#[test]
fn closing_a_conversation_cancels_its_work_and_emits_nothing_for_it_afterwards() {
    let mut h = H::new();
    // A: a turn streaming, one queued, a scenario retrieving, and a
    // finished retrieval whose summary has not been saved yet.
    let (ra1, _) = retrieval(&h.ask(A, "a1"));
    h.ask(A, "a2");
    let (rs, _) = retrieval(&h.send(Input::Command(Command::Scenario {
        conversation: A,
        prompt: "an ambush".into(),
        seed: Some(1),
    })));
    // B: a turn waiting for its retrieval.
    let (rb1, _) = retrieval(&h.ask(B, "b1"));
    h.at_ms(100);
    let (ga1, _) = generation(&h.retrieved(ra1));
    h.token(ga1, "partial");
    let a_requests: Vec<RequestId> = h
        .engine
        .registry()
        .all()
        .iter()
        .filter(|r| r.conversation == Some(A))
        .map(|r| r.id)
        .collect();
    assert_eq!(
        a_requests.len(),
        5,
        "turn, retrieve, chat, scenario, retrieve"
    );

    h.at_ms(200);
    let fx = h.engine.close_conversation(A, h.now);
    let mut aborted: Vec<RequestId> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::Abort { id } => Some(*id),
            _ => None,
        })
        .collect();
    aborted.sort();
    let mut want = vec![ga1, rs];
    want.sort();
    assert_eq!(aborted, want, "its running calls are aborted");
    assert!(!saves_for(&fx, A), "{fx:?}");
    assert!(h.engine.conversation(A).is_none());
    for id in &a_requests {
        let r = h.engine.registry().get(*id).expect("known");
        assert!(r.phase.is_final(), "{id} still live");
    }
    assert!(
        h.engine
            .scenarios()
            .iter()
            .all(|s| s.status == ScenarioStatus::Cancelled)
    );
    assert!(h.engine.registry().is_live(rb1), "B's work goes on");

    // Late results for A are dropped; its queued question never starts.
    h.at_ms(300);
    let mut after = h.token(ga1, "more");
    after.extend(h.finished(ga1, Ok(())));
    after.extend(h.retrieved(rs));
    assert!(no_dispatch(&after), "{after:?}");
    let fx = h.ask(A, "hello?");
    assert!(fx.is_empty());
    assert!(h.engine.notice().is_some_and(|n| n.is_error));

    // B finishes; the engine goes idle and saves B's requests, none of A's.
    let (gb1, _) = generation(&h.retrieved(rb1));
    after.extend(h.token(gb1, "B"));
    after.extend(h.finished(gb1, Ok(())));
    after.extend(h.send(Input::Tick));
    assert!(!saves_for(&after, A), "{after:?}");
    let batches = summary_batches(&after);
    assert_eq!(batches.len(), 1, "{after:?}");
    assert_eq!(batches[0].len(), 3, "B's turn, retrieve and chat");
    assert!(batches[0].iter().all(|s| s.conversation == Some(B)));
    assert!(!h.engine.is_busy());
}

#[test]
fn a_streaming_reply_is_saved_at_its_start_about_every_250_ms_and_at_its_end() {
    let mut h = H::new();
    let fx = h.ask(A, "who guards the waystone?");
    let start = reply_saves(&fx);
    assert_eq!(
        start,
        vec![(A, MessageKey(1), MessageStatus::Running, String::new())],
        "saved as soon as it starts"
    );
    let (r, _) = retrieval(&fx);
    let (g, _) = generation(&h.retrieved(r));
    // 20 tokens, one every 100 ms, over 2 s.
    let mut saves: Vec<(u64, String)> = Vec::new();
    let mut full = String::new();
    for i in 1..=20u64 {
        h.at_ms(i * 100);
        let word = format!("w{i} ");
        full.push_str(&word);
        for (c, key, status, text) in reply_saves(&h.token(g, &word)) {
            assert_eq!((c, key, status), (A, MessageKey(1), MessageStatus::Running));
            saves.push((i * 100, text));
        }
    }
    let times: Vec<u64> = saves.iter().map(|(t, _)| *t).collect();
    assert_eq!(times, vec![300, 600, 900, 1_200, 1_500, 1_800]);
    let mut last = 0;
    for (t, text) in &saves {
        assert!(t - last >= 250, "two saves within 250 ms");
        last = *t;
        // All the text up to and with this token.
        let words = usize::try_from(t / 100).unwrap_or(0);
        let want: String = (1..=words).map(|i| format!("w{i} ")).collect();
        assert_eq!(text, &want);
    }
    h.at_ms(2_050);
    let end = reply_saves(&h.finished(g, Ok(())));
    assert_eq!(end, vec![(A, MessageKey(1), MessageStatus::Done, full)]);
}

#[test]
fn a_reply_is_saved_once_at_its_end_whatever_the_end() {
    // Cancelled mid-stream: the partial text is saved as cancelled.
    let mut h = H::new();
    let (r, _) = retrieval(&h.ask(A, "q"));
    let (g, _) = generation(&h.retrieved(r));
    h.token(g, "half");
    h.at_ms(100);
    let fx = h.send(Input::Command(Command::CancelRunning { conversation: A }));
    assert_eq!(
        reply_saves(&fx),
        vec![(A, MessageKey(1), MessageStatus::Cancelled, "half".into())]
    );
    // Timed out waiting for the first token.
    let mut h = H::new();
    let (r, _) = retrieval(&h.ask(B, "q"));
    h.retrieved(r);
    h.at_ms(60_000);
    let saves = reply_saves(&h.send(Input::Tick));
    assert_eq!(saves.len(), 1, "{saves:?}");
    assert_eq!(
        saves[0].2,
        MessageStatus::Failed("generation timed out".into())
    );
    // Failed: the reason is saved, and the next question's reply is saved
    // under the next key.
    let mut h = H::new();
    let (r, _) = retrieval(&h.ask(A, "q1"));
    h.ask(A, "q2");
    let (g, _) = generation(&h.retrieved(r));
    let fx = h.finished(g, Err(BackendError::permanent("400")));
    let saves = reply_saves(&fx);
    assert_eq!(saves.len(), 2, "{saves:?}");
    assert!(matches!(&saves[0].2, MessageStatus::Failed(why) if why.contains("400")));
    assert_eq!(saves[0].1, MessageKey(1));
    assert_eq!(
        saves[1],
        (A, MessageKey(3), MessageStatus::Running, String::new()),
        "q2's reply starts"
    );
}

#[test]
fn a_hundred_requests_finished_within_a_second_are_saved_in_one_batch() {
    let cfg = EngineConfig {
        rag: false,
        ..EngineConfig::default()
    };
    let mut h = H::with(cfg);
    // 50 scenarios: 50 parents and 50 generations, two at a time on the
    // generator's slots.
    let mut running: Vec<RequestId> = Vec::new();
    let mut fx_all = Vec::new();
    for i in 0..50u64 {
        let fx = h.send(Input::Command(Command::Scenario {
            conversation: if i % 2 == 0 { A } else { B },
            prompt: format!("scenario {i}"),
            seed: Some(i),
        }));
        running.extend(fx.iter().filter_map(|e| match e {
            Effect::Dispatch { id, .. } => Some(*id),
            _ => None,
        }));
        fx_all.extend(fx);
    }
    let mut finished = 0;
    while let Some(id) = running.pop() {
        finished += 1;
        h.at_ms(finished * 18);
        let fx = h.finished(id, Ok(()));
        running.extend(fx.iter().filter_map(|e| match e {
            Effect::Dispatch { id, .. } => Some(*id),
            _ => None,
        }));
        fx_all.extend(fx);
    }
    assert_eq!(finished, 50);
    assert!(h.now < h.t0 + Duration::from_secs(1));
    let batches = summary_batches(&fx_all);
    assert_eq!(batches.len(), 1, "one batch, not one per request");
    let batch = &batches[0];
    assert_eq!(batch.len(), 100);
    let mut ids: Vec<RequestId> = batch.iter().map(|s| s.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100, "each request once");
    // A summary says what the inspector needs, with wall-clock times.
    let generation = batch
        .iter()
        .find(|s| s.kind == Kind::Generate)
        .expect("a generation");
    assert_eq!(generation.outcome, Outcome::Completed);
    assert_eq!(generation.attempts, 1);
    assert!(generation.parent.is_some());
    assert!(generation.created_ms >= WALL && generation.ended_ms < WALL + 1_000);
    assert!(generation.ended_ms >= generation.created_ms);
    assert!(generation.timeline.iter().any(|e| e.text() == "completed"));
    let a = batch.iter().filter(|s| s.conversation == Some(A)).count();
    let b = batch.iter().filter(|s| s.conversation == Some(B)).count();
    assert_eq!((a, b), (50, 50), "each says its conversation");
    assert_eq!(h.engine.footprint().summaries, 0);
}

#[test]
fn while_busy_a_batch_is_saved_a_second_after_its_first_summary_and_no_sooner() {
    let cfg = EngineConfig {
        rag: false,
        ..EngineConfig::default()
    };
    let mut h = H::with(cfg);
    let scenario = |h: &mut H, i: u64| {
        let fx = h.send(Input::Command(Command::Scenario {
            conversation: A,
            prompt: format!("s{i}"),
            seed: Some(i),
        }));
        generation(&fx).0
    };
    let first = scenario(&mut h, 1);
    let _long = scenario(&mut h, 2);
    h.at_ms(400);
    let fx = h.finished(first, Ok(()));
    assert!(summary_batches(&fx).is_empty(), "still busy: it waits");
    assert_eq!(h.engine.footprint().summaries, 2);
    assert_eq!(
        h.engine.next_deadline(),
        Some(h.t0 + Duration::from_millis(1_400)),
        "the engine asks to be woken for the batch"
    );
    h.at_ms(1_399);
    assert!(summary_batches(&h.send(Input::Tick)).is_empty());
    h.at_ms(1_400);
    let batches = summary_batches(&h.send(Input::Tick));
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].len(), 2);
    assert_eq!(h.engine.footprint().summaries, 0);
}

#[test]
fn restored_messages_stay_unsent_until_resent_then_go_in_order() {
    let t0 = Instant::now();
    let mut engine = Engine::new(EngineConfig::default(), t0, SystemTime::UNIX_EPOCH, 5);
    let restored = vec![
        message(Role::User, "q0", MessageStatus::Done),
        message(Role::Assistant, "a0", MessageStatus::Done),
        message(Role::User, "q1", MessageStatus::Done),
        // Interrupted mid-stream by a crash.
        message(Role::Assistant, "a1 par", MessageStatus::Running),
    ];
    let unsent = ["u1", "u2"]
        .map(|text| crate::engine::workspace::UnsentMessage {
            text: text.into(),
            tag: None,
        })
        .to_vec();
    assert!(engine.open_conversation(A, "restored", restored, unsent));
    let mut h = H {
        engine,
        t0,
        now: t0,
    };
    assert_eq!(
        h.conv(A).messages[3].status,
        MessageStatus::Failed("interrupted".into())
    );
    let texts: Vec<&str> = h.conv(A).unsent.iter().map(|u| u.text.as_str()).collect();
    assert_eq!(texts, vec!["u1", "u2"]);
    assert!(h.conv(A).queue.is_empty());
    h.at_ms(5_000);
    assert!(h.send(Input::Tick).is_empty(), "unsent is not started");
    assert!(!h.engine.is_busy());

    let fx = h.send(Input::Command(Command::ResendUnsent { conversation: A }));
    let (r1, q) = retrieval(&fx);
    assert_eq!(q, "u1");
    assert_eq!(
        reply_saves(&fx),
        vec![(A, MessageKey(5), MessageStatus::Running, String::new())],
        "numbered after the restored messages"
    );
    assert!(h.conv(A).unsent.is_empty());
    assert_eq!(
        h.conv(A)
            .queue
            .iter()
            .map(|q| q.text.as_str())
            .collect::<Vec<_>>(),
        vec!["u2"]
    );
    let (g1, history) = generation(&h.retrieved(r1));
    assert_eq!(
        history,
        vec![
            turn(Role::User, "q0"),
            turn(Role::Assistant, "a0"),
            turn(Role::User, "q1")
        ],
        "the restored turns are the history; the interrupted reply is not"
    );
    h.token(g1, "U one");
    let (_, q) = retrieval(&h.finished(g1, Ok(())));
    assert_eq!(q, "u2");
    assert_eq!(&h.texts(A)[4..], ["u1", "U one", "u2", ""]);
    let fx = h.send(Input::Command(Command::ResendUnsent { conversation: A }));
    assert!(no_dispatch(&fx));
    assert_eq!(
        h.engine.notice().map(|n| n.text.as_str()),
        Some("no unsent messages")
    );
}

#[test]
fn commands_for_an_unknown_conversation_only_say_so() {
    let mut h = H::new();
    let nobody = ConversationId(99);
    for command in [
        Command::Ask {
            conversation: nobody,
            text: "q".into(),
            tag: None,
        },
        Command::Scenario {
            conversation: nobody,
            prompt: "p".into(),
            seed: None,
        },
        Command::CancelRunning {
            conversation: nobody,
        },
        Command::ClearQueue {
            conversation: nobody,
        },
        Command::CancelQueued {
            conversation: nobody,
            number: 1,
        },
        Command::ResendUnsent {
            conversation: nobody,
        },
    ] {
        let fx = h.send(Input::Command(command.clone()));
        assert!(fx.is_empty(), "{command:?}: {fx:?}");
        let notice = h.engine.notice().expect("a notice");
        assert!(notice.is_error && notice.text.contains("99"), "{notice:?}");
        assert_eq!(h.engine.registry().live_count(), 0);
        assert!(h.engine.scenarios().is_empty());
    }
    assert!(h.engine.close_conversation(nobody, h.now).is_empty());
}

#[test]
fn scenarios_are_saved_when_they_end_numbered_within_their_conversation() {
    let cfg = EngineConfig {
        rag: false,
        ..EngineConfig::default()
    };
    let mut h = H::with(cfg);
    // A has two scenarios stored already.
    let stored = |index: usize| ScenarioEntry {
        conversation: B,
        index,
        prompt: format!("old {index}"),
        seed: 1,
        request: RequestId(ulid::Ulid::from_parts(1, index as u128)),
        backend: "offline".into(),
        markdown: format!("# Old {index}\n"),
        status: if index == 0 {
            ScenarioStatus::Done
        } else {
            ScenarioStatus::Running
        },
        passages: Vec::new(),
        no_lore: None,
    };
    h.engine.restore_scenarios(A, vec![stored(0), stored(1)]);
    assert!(h.engine.scenarios().iter().all(|s| s.conversation == A));
    assert_eq!(
        h.engine.scenarios()[1].status,
        ScenarioStatus::Failed("interrupted".into())
    );
    let ask = |h: &mut H, conversation| {
        let fx = h.send(Input::Command(Command::Scenario {
            conversation,
            prompt: "the ford".into(),
            seed: Some(3),
        }));
        assert!(
            !fx.iter().any(|e| matches!(e, Effect::SaveScenario { .. })),
            "nothing saved before it ends"
        );
        generation(&fx).0
    };
    let ga = ask(&mut h, A);
    let gb = ask(&mut h, B);
    h.token(gb, "# The Ford\nbody");
    let fx = h.finished(gb, Ok(()));
    let saved: Vec<_> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::SaveScenario {
                conversation,
                index,
                title,
                markdown,
                status,
                seed,
                ..
            } => Some((
                *conversation,
                *index,
                title.clone(),
                markdown.clone(),
                status.clone(),
                *seed,
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        saved,
        vec![(
            B,
            0,
            "The Ford".to_string(),
            "# The Ford\nbody".to_string(),
            ScenarioStatus::Done,
            3
        )]
    );
    let fx = h.finished(ga, Err(BackendError::permanent("400")));
    let Some(Effect::SaveScenario {
        conversation,
        index,
        status,
        ..
    }) = fx.iter().find(|e| matches!(e, Effect::SaveScenario { .. }))
    else {
        panic!("A's scenario is saved: {fx:?}")
    };
    assert_eq!((*conversation, *index), (A, 2), "after the two restored");
    assert!(matches!(status, ScenarioStatus::Failed(_)));
}

#[test]
fn a_messages_tag_comes_back_when_its_turn_starts_or_when_it_is_dropped() {
    let mut h = H::new();
    let tagged = |h: &mut H, text: &str, tag: u64| {
        h.send(Input::Command(Command::Ask {
            conversation: A,
            text: text.into(),
            tag: Some(tag),
        }))
    };
    let question = |fx: &[Effect]| {
        fx.iter().find_map(|e| match e {
            Effect::SaveReply { question, .. } => Some(*question),
            _ => None,
        })
    };
    let fx = tagged(&mut h, "first", 11);
    assert_eq!(question(&fx), Some(Some(11)), "{fx:?}");
    let (first, _) = retrieval(&fx);
    // Two more wait behind it; one of them is dropped.
    assert!(question(&tagged(&mut h, "second", 12)).is_none());
    assert!(question(&tagged(&mut h, "third", 13)).is_none());
    let fx = h.send(Input::Command(Command::CancelQueued {
        conversation: A,
        number: 2,
    }));
    assert!(
        fx.contains(&Effect::DropQueued {
            conversation: A,
            tags: vec![13]
        }),
        "{fx:?}"
    );
    // The first turn ends; the second starts and says which message it is.
    let fx = h.retrieved(first);
    let (generation, _) = generation(&fx);
    let fx = h.finished(generation, Ok(()));
    assert_eq!(
        question(
            &fx.iter()
                .filter(|e| matches!(
                    e,
                    Effect::SaveReply {
                        status: MessageStatus::Running,
                        ..
                    }
                ))
                .cloned()
                .collect::<Vec<_>>()
        ),
        Some(Some(12)),
        "{fx:?}"
    );
}
