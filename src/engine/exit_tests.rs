//! [`Engine::pending_saves`]: on an exit, a reply still streaming is saved
//! with its text so far (between its throttled saves), and request
//! summaries waiting for their batch are handed out; then nothing is left.

use std::time::{Duration, Instant, SystemTime};

use super::*;

const C: ConversationId = ConversationId(1);

fn dispatched_generation(fx: &[Effect]) -> Option<RequestId> {
    fx.iter().find_map(|e| match e {
        Effect::Dispatch {
            id,
            call: Call::Generate(_),
            ..
        } => Some(*id),
        _ => None,
    })
}

#[test]
fn a_streaming_reply_is_saved_with_its_text_so_far() {
    let t0 = Instant::now();
    let cfg = EngineConfig {
        rag: false,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(cfg, t0, SystemTime::UNIX_EPOCH, 7);
    assert!(engine.open_conversation(C, "test", Vec::new(), Vec::new()));
    let fx = engine.handle(
        Input::Command(Command::Ask {
            conversation: C,
            text: "q".into(),
            tag: Some(5),
        }),
        t0,
    );
    let generate = dispatched_generation(&fx).expect("generation starts");
    let backend = engine.config().generator.clone();
    let mut now = t0;
    for word in ["one ", "two ", "three"] {
        // Well within the reply's save interval: not saved by themselves.
        now += Duration::from_millis(1);
        let fx = engine.handle(
            Input::Token {
                id: generate,
                backend: backend.clone(),
                text: word.into(),
            },
            now,
        );
        assert!(
            !fx.iter()
                .any(|e| matches!(e, Effect::SaveReply { text, .. } if text.contains("three"))),
            "saved early: {fx:?}"
        );
    }
    let saves = engine.pending_saves();
    let texts: Vec<&str> = saves
        .iter()
        .filter_map(|e| match e {
            Effect::SaveReply { text, status, .. } => {
                assert_eq!(*status, MessageStatus::Running);
                Some(text.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["one two three"]);
}

#[test]
fn waiting_request_summaries_are_handed_out_once() {
    let t0 = Instant::now();
    let cfg = EngineConfig {
        rag: false,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(cfg, t0, SystemTime::UNIX_EPOCH, 7);
    assert!(engine.open_conversation(C, "test", Vec::new(), Vec::new()));
    // Two turns: the first ends while the second is still live, so its
    // summaries wait for their batch.
    let mut generations = Vec::new();
    for text in ["first", "second"] {
        let fx = engine.handle(
            Input::Command(Command::Ask {
                conversation: C,
                text: text.into(),
                tag: None,
            }),
            t0,
        );
        if let Some(id) = dispatched_generation(&fx) {
            generations.push(id);
        }
    }
    let backend = engine.config().generator.clone();
    let fx = engine.handle(
        Input::Finished {
            id: generations[0],
            backend: backend.clone(),
            result: Ok(()),
        },
        t0 + Duration::from_millis(1),
    );
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::SaveRequests(_))),
        "the batch waits while requests are live: {fx:?}"
    );
    let saves = engine.pending_saves();
    let batched: usize = saves
        .iter()
        .map(|e| match e {
            Effect::SaveRequests(list) => list.len(),
            _ => 0,
        })
        .sum();
    assert!(batched >= 2, "the first turn and its generation: {saves:?}");
    assert!(
        !engine
            .pending_saves()
            .iter()
            .any(|e| matches!(e, Effect::SaveRequests(_))),
        "handed out once"
    );
}
