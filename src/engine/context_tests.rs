//! Caller-given context passages ([`Engine::set_context`]): they go first in
//! the generation task, before what retrieval found, and are kept with the
//! reply as the passages it may cite; with RAG off they are the only ones.

use std::time::{Instant, SystemTime};

use super::*;
use crate::domain::Passage;

const C: ConversationId = ConversationId(1);

fn passage(source: &str) -> Passage {
    Passage {
        location: Default::default(),
        id: format!("{source}#0"),
        title: source.into(),
        source: source.into(),
        kind: None,
        heading: None,
        text: format!("{source} says something."),
        score: 1.0,
        entities: vec![],
    }
}

fn engine(cfg: EngineConfig) -> (Engine, Instant) {
    let t0 = Instant::now();
    let mut engine = Engine::new(cfg, t0, SystemTime::UNIX_EPOCH, 7);
    assert!(engine.open_conversation(C, "test", Vec::new(), Vec::new()));
    engine.set_context(vec![passage("stdin")]);
    (engine, t0)
}

fn ask(engine: &mut Engine, now: Instant) -> Vec<Effect> {
    engine.handle(
        Input::Command(Command::Ask {
            conversation: C,
            text: "what does it say?".into(),
            tag: None,
        }),
        now,
    )
}

/// The generation task in `fx`, if one was dispatched.
fn generation(fx: &[Effect]) -> Option<GenerationTask> {
    fx.iter().find_map(|e| match e {
        Effect::Dispatch {
            call: Call::Generate(task),
            ..
        } => Some(task.clone()),
        _ => None,
    })
}

fn sources(passages: &[Passage]) -> Vec<&str> {
    passages.iter().map(|p| p.source.as_str()).collect()
}

#[test]
fn context_goes_before_the_retrieved_passages() {
    let (mut engine, now) = engine(EngineConfig::default());
    let fx = ask(&mut engine, now);
    assert!(generation(&fx).is_none(), "retrieval runs first");
    let retrieve = fx
        .iter()
        .find_map(|e| match e {
            Effect::Dispatch {
                id,
                call: Call::Retrieve(_),
                ..
            } => Some(*id),
            _ => None,
        })
        .expect("a retrieval");
    let fx = engine.handle(
        Input::Retrieved {
            id: retrieve,
            backend: "local".into(),
            result: Ok(vec![passage("a.md"), passage("b.md")]),
        },
        now,
    );
    let task = generation(&fx).expect("generation starts");
    assert_eq!(sources(&task.passages), ["stdin", "a.md", "b.md"]);
    let reply = engine
        .conversation(C)
        .and_then(|c| c.messages.last())
        .expect("the reply");
    assert_eq!(sources(&reply.passages), ["stdin", "a.md", "b.md"]);
}

#[test]
fn context_is_there_when_retrieval_finds_nothing() {
    let (mut engine, now) = engine(EngineConfig::default());
    let fx = ask(&mut engine, now);
    let retrieve = fx
        .iter()
        .find_map(|e| match e {
            Effect::Dispatch {
                id,
                call: Call::Retrieve(_),
                ..
            } => Some(*id),
            _ => None,
        })
        .expect("a retrieval");
    let fx = engine.handle(
        Input::Retrieved {
            id: retrieve,
            backend: "local".into(),
            result: Ok(vec![]),
        },
        now,
    );
    let task = generation(&fx).expect("generation starts");
    assert_eq!(sources(&task.passages), ["stdin"]);
    assert_eq!(task.no_lore_reason.as_deref(), Some("no lore matched"));
}

#[test]
fn context_is_the_only_passage_with_rag_off() {
    let cfg = EngineConfig {
        rag: false,
        ..EngineConfig::default()
    };
    let (mut engine, now) = engine(cfg);
    let task = generation(&ask(&mut engine, now)).expect("straight to generation");
    assert_eq!(sources(&task.passages), ["stdin"]);
}

#[test]
fn without_context_only_retrieved_passages_are_given() {
    let (mut engine, now) = engine(EngineConfig {
        rag: false,
        ..EngineConfig::default()
    });
    engine.set_context(Vec::new());
    let task = generation(&ask(&mut engine, now)).expect("straight to generation");
    assert!(task.passages.is_empty());
}
