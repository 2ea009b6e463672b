//! Headless sessions through the real binary: `ask --session` continues a
//! conversation (the second request to a loopback OpenAI-compatible server
//! carries the first turn as history) and saves it; `sessions list / show /
//! export / rename / delete`; without `--session` nothing is saved.

mod support;

use std::path::Path;
use std::process::Command;

use support::{FaultServer, Mode};

struct Home(tempfile::TempDir);

impl Home {
    fn new() -> Self {
        Self(tempfile::tempdir().expect("tmp"))
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let root: &Path = self.0.path();
        let out = Command::new(env!("CARGO_BIN_EXE_loreweave"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", root)
            .env("XDG_DATA_HOME", root.join("data"))
            .env("XDG_CONFIG_HOME", root.join("config"))
            .env("XDG_STATE_HOME", root.join("state"))
            .current_dir(root)
            .output()
            .expect("run loreweave");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn messages(body: &serde_json::Value) -> Vec<(String, String)> {
    body["messages"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|m| {
                    (
                        m["role"].as_str().unwrap_or_default().to_owned(),
                        m["content"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_with_a_session_continues_the_conversation_and_saves_it() {
    let server = FaultServer::start(Mode::Ok).await;
    let url = format!("{}/v1", server.base);
    let home = Home::new();
    let ask = |question: &'static str, session: Option<&'static str>| {
        let url = url.clone();
        let home = &home;
        move || {
            let mut args = vec!["--llm", "openai:test", "--llm-url", url.as_str(), "ask"];
            if let Some(s) = session {
                args.extend(["--session", s]);
            }
            args.push(question);
            home.run(&args)
        }
    };

    // Without --session: answered, nothing saved.
    let (code, out, err) = tokio::task::block_in_place(ask("who keeps the ford?", None));
    assert_eq!(code, 0, "{out}{err}");
    let (_, list, _) = home.run(&["sessions", "list", "--json"]);
    assert!(list.trim().is_empty(), "{list}");

    let (code, out, err) =
        tokio::task::block_in_place(ask("who guards the waystone?", Some("work")));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Hello, world!"), "{out}");
    let (code, _, err) = tokio::task::block_in_place(ask("and where does she live?", Some("work")));
    assert_eq!(code, 0, "{err}");

    // The second request carried the first turn as history.
    let recorded = server.recorded();
    let chats: Vec<_> = recorded
        .iter()
        .filter(|r| r.path.ends_with("/chat/completions"))
        .collect();
    assert_eq!(chats.len(), 3, "{recorded:?}");
    let first = messages(&chats[1].body);
    let second = messages(&chats[2].body);
    assert!(
        !first.iter().any(|(_, c)| c.contains("who keeps the ford")),
        "an unsaved ask leaked into the session: {first:?}"
    );
    let user_turns: Vec<&str> = second
        .iter()
        .filter(|(r, _)| r == "user")
        .map(|(_, c)| c.as_str())
        .collect();
    assert!(
        user_turns
            .iter()
            .any(|c| c.contains("who guards the waystone?")),
        "{second:?}"
    );
    assert!(
        second
            .iter()
            .any(|(r, c)| r == "assistant" && c.contains("Hello, world!")),
        "{second:?}"
    );

    // The session holds both turns, in order, done.
    let (code, list, _) = home.run(&["sessions", "list", "--json"]);
    assert_eq!(code, 0);
    let list: serde_json::Value = serde_json::from_str(list.trim()).expect("json");
    assert_eq!(list["name"], "work");
    assert_eq!(list["messages"], 4);
    // The session records the knowledge base it searched.
    assert_eq!(list["kb"], "sample");
    let (_, show, _) = home.run(&["sessions", "show", "work", "--json"]);
    let show: serde_json::Value = serde_json::from_str(&show).expect("json");
    let statuses: Vec<&str> = show["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["status"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(statuses, ["sent", "done", "sent", "done"]);

    // Export never overwrites; rename; delete.
    let (code, _, err) = home.run(&["sessions", "export", "work", "-o", "work.md"]);
    assert_eq!(code, 0, "{err}");
    let md = std::fs::read_to_string(home.0.path().join("work.md")).expect("export");
    assert!(md.contains("## You\n\nwho guards the waystone?"), "{md}");
    let (code, _, err) = home.run(&["sessions", "export", "work", "-o", "work.md"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("never overwritten"), "{err}");
    let (code, _, _) = home.run(&["sessions", "rename", "work", "campaign"]);
    assert_eq!(code, 0);
    let (code, _, err) = home.run(&["sessions", "show", "work"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no session named"), "{err}");
    let (code, out, _) = home.run(&["sessions", "delete", "campaign"]);
    assert_eq!(code, 0);
    assert!(out.contains("Deleted session"), "{out}");
    let (_, list, _) = home.run(&["sessions", "list", "--json"]);
    assert!(list.trim().is_empty(), "{list}");
    server.shutdown();
}
