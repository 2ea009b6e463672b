//! The whole stack as the binary assembles it from a config file: real
//! HTTP backends against the loopback fault server, the local knowledge
//! base, the engine and the runtime. Real time with small deadlines (never a
//! paused clock with real sockets); every wait is bounded.

mod support;

use std::time::Duration;

use loreweave::backends::local::KbHandle;
use loreweave::engine::request::{Kind, Outcome};
use loreweave::engine::workspace::ConversationId;
use loreweave::engine::workspace::MessageStatus;
use loreweave::engine::{Command, Input};

const C: ConversationId = ConversationId(1);
use support::{FaultServer, Mode, TOKENS};

async fn ask(config_toml: &str, question: &str) -> loreweave::runtime::Driver {
    let config = loreweave::config::parse(config_toml).expect("config parses");
    let kb = KbHandle::start_build(loreweave::kb::embedded_lore());
    let backends = loreweave::app::build_backends(&config, kb).expect("backends");
    let mut driver = loreweave::app::driver(config.engine_config(), backends);
    driver
        .engine
        .open_conversation(C, "test", Vec::new(), Vec::new());
    driver.apply(Input::Command(Command::Ask {
        conversation: C,
        text: question.into(),
        tag: None,
    }));
    tokio::time::timeout(Duration::from_secs(20), driver.run_until(|e| !e.is_busy()))
        .await
        .expect("the turn ends within 20 s");
    driver
}

#[tokio::test]
async fn openai_chat_and_openai_embeddings_from_the_config_file() {
    let server = FaultServer::start(Mode::Ok).await;
    let toml = format!(
        r#"
[llm]
provider = "openai"
base_url = "{base}/v1"
model = "m"
first_token_timeout = "2s"

[embeddings]
provider = "openai"
base_url = "{base}/v1"
model = "e"
batch_size = 16

[retriever]
provider = "local"
"#,
        base = server.base
    );
    let driver = ask(&toml, "who guards the waystone?").await;
    let engine = &driver.engine;
    let all = engine.registry().all();
    let find = |kind| {
        all.iter()
            .find(|r| r.kind == kind)
            .expect("request of that kind")
    };
    let embed = find(Kind::Embed);
    assert_eq!(&*embed.backend, "openai-embed");
    assert_eq!(embed.outcome(), Some(&Outcome::Completed));
    assert_eq!(find(Kind::Retrieve).outcome(), Some(&Outcome::Completed));
    let chat = find(Kind::Chat);
    assert_eq!(
        (&*chat.backend, chat.outcome()),
        ("openai", Some(&Outcome::Completed))
    );
    let reply = engine
        .conversation(C)
        .expect("conversation C")
        .messages
        .last()
        .expect("reply");
    assert_eq!(reply.status, MessageStatus::Done);
    assert_eq!(reply.text, TOKENS.concat());
    assert!(!reply.passages.is_empty(), "the local kb retrieved lore");

    // The prompt carried the numbered passages; batches respected the size.
    let recorded = server.recorded();
    let chat_body = recorded
        .iter()
        .find(|r| r.path.ends_with("/chat/completions"))
        .expect("a chat request");
    let system = chat_body.body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default();
    assert!(system.contains("[1] "), "{system}");
    assert_eq!(chat_body.body["stream"], true);
    assert!(chat_body.body["max_tokens"].as_u64().is_some());
    for r in recorded.iter().filter(|r| r.path.ends_with("/embeddings")) {
        let n = r.body["input"].as_array().map_or(0, Vec::len);
        assert!((1..=16).contains(&n), "batch of {n}");
    }
}

#[tokio::test]
async fn hayhooks_retrieval_and_ollama_chat_from_the_config_file() {
    let server = FaultServer::start(Mode::Ok).await;
    let toml = format!(
        r#"
[llm]
provider = "ollama"
base_url = "{base}"
model = "llama3.2:1b"

[retriever]
provider = "hayhooks"
url = "{base}/hayhooks/run"
top_k = 3
timeout = "2s"
"#,
        base = server.base
    );
    let driver = ask(&toml, "who guards the waystone?").await;
    let engine = &driver.engine;
    let all = engine.registry().all();
    assert!(
        all.iter().all(|r| r.kind != Kind::Embed),
        "no embed step without embeddings"
    );
    let retrieve = all
        .iter()
        .find(|r| r.kind == Kind::Retrieve)
        .expect("retrieve");
    assert_eq!(&*retrieve.backend, "hayhooks");
    assert_eq!(retrieve.outcome(), Some(&Outcome::Completed));
    let reply = engine
        .conversation(C)
        .expect("conversation C")
        .messages
        .last()
        .expect("reply");
    assert_eq!(reply.status, MessageStatus::Done, "{reply:?}");
    assert_eq!(reply.backend.as_deref(), Some("ollama"));
    let sent = server
        .recorded()
        .into_iter()
        .find(|r| r.path.ends_with("/run"))
        .expect("a hayhooks call");
    assert_eq!(sent.body["query"], "who guards the waystone?");
    assert_eq!(sent.body["top_k"], 3);
}

#[tokio::test]
async fn a_dead_model_server_fails_the_reply_after_retries_and_the_lore_stays() {
    let toml = format!(
        r#"
[llm]
provider = "openai"
base_url = "{base}/v1"
model = "m"
retries = 1
"#,
        base = support::refused_base()
    );
    let driver = ask(&toml, "who guards the waystone?").await;
    let reply = driver
        .engine
        .conversation(C)
        .expect("conversation C")
        .messages
        .last()
        .expect("reply");
    let MessageStatus::Failed(reason) = &reply.status else {
        panic!("fails: {reply:?}")
    };
    assert!(
        reason.contains("cannot connect") && reason.contains("gave up after 1 retry"),
        "{reason}"
    );
    assert!(!reply.passages.is_empty(), "retrieval still worked");
    assert_eq!(driver.engine.backends()["openai"].metrics.retries, 1);
}
