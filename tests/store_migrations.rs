//! Session database migrations: from an empty database, and from a database
//! written by every schema version so far (`tests/fixtures/store/vN.sqlite`).
//!
//! Shipping fixtures: `vN.sqlite` is written by schema N through the ignored
//! `write_fixture` test:
//!
//! ```text
//! LOREWEAVE_WRITE_STORE_FIXTURE=1 cargo test --test store_migrations write_fixture -- --ignored
//! ```
//!
//! It writes the fixture for the build's current `SCHEMA_VERSION` only, and
//! never overwrites one. Schema 1 ships `v1.sqlite`. The first schema change
//! after it (migration `0002_*.sql`, schema 2) must come with `v2.sqlite`,
//! written by that build; `v1.sqlite` stays as schema 1 wrote it, so this test
//! keeps proving that a schema-1 database still opens and reads.

use std::path::{Path, PathBuf};

use loreweave::domain::{Passage, Role};
use loreweave::store::{
    Db, MessageStatus, MessageUpdate, NewMessage, Opened, RequestRow, SCHEMA_VERSION, ScenarioRow,
};

const ENV_WRITE: &str = "LOREWEAVE_WRITE_STORE_FIXTURE";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store")
}

fn cited() -> Passage {
    Passage {
        id: "vel.md#0".to_string(),
        title: "Vel".to_string(),
        source: "vel.md".to_string(),
        kind: Some("place".to_string()),
        heading: Some("Rulers".to_string()),
        text: "Vel is ruled by the Bridge Council.".to_string(),
        score: 2.5,
        entities: Vec::new(),
        location: Default::default(),
    }
}

/// The rows every fixture holds (what `write_fixture` writes and
/// `opens_every_shipped_fixture` reads back).
fn fill(db: &mut Db) {
    let s = db.create_session("fixture").expect("session");
    db.set_session_kb(s.id, Some("sample")).expect("kb");
    db.set_session_model(
        s.id,
        Some("offline"),
        Some(&serde_json::json!({"rag": true})),
    )
    .expect("model");
    db.append_message(
        s.id,
        NewMessage::user("Who rules Vel?", MessageStatus::Sent),
    )
    .expect("user");
    let reply = db
        .append_message(
            s.id,
            NewMessage::assistant_running(Some("01FIXTURE".to_string())),
        )
        .expect("reply");
    db.update_message(
        reply.id,
        MessageUpdate {
            text: Some("The Bridge Council [1].".to_string()),
            status: Some(MessageStatus::Done),
            passages: Some(vec![cited()]),
            backend: Some("offline".to_string()),
            timings: Some(serde_json::json!({"total_ms": 40})),
            ..Default::default()
        },
    )
    .expect("finish");
    db.append_message(
        s.id,
        NewMessage::user("And who before?", MessageStatus::Unsent),
    )
    .expect("queued");
    db.save_scenario(
        s.id,
        ScenarioRow {
            seq: 1,
            prompt: Some("a heist on the bridges".to_string()),
            seed: Some(42),
            title: Some("The Toll".to_string()),
            markdown: Some("# The Toll\n".to_string()),
            sources: Some(serde_json::json!(["vel.md#0"])),
            status: Some("done".to_string()),
            created_ms: 1_700_000_000_000,
        },
    )
    .expect("scenario");
    db.save_requests(
        s.id,
        vec![RequestRow {
            id: "01FIXTURE".to_string(),
            parent: None,
            kind: Some("chat".to_string()),
            backend: Some("offline".to_string()),
            outcome: Some("done".to_string()),
            detail: None,
            attempts: 1,
            created_ms: 1_700_000_000_000,
            ended_ms: Some(1_700_000_000_040),
            events: Some(serde_json::json!([{"event": "sent"}, {"event": "done"}])),
        }],
    )
    .expect("requests");
    db.create_session("empty one").expect("second session");
}

#[test]
#[ignore = "writes tests/fixtures/store/vN.sqlite; run with LOREWEAVE_WRITE_STORE_FIXTURE=1"]
fn write_fixture() {
    if std::env::var_os(ENV_WRITE).is_none() {
        return;
    }
    let out = fixture_dir().join(format!("v{SCHEMA_VERSION}.sqlite"));
    assert!(
        !out.exists(),
        "{} exists: fixtures are never rewritten",
        out.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fixture.sqlite");
    {
        let mut db = Db::open(&path).expect("open").db;
        fill(&mut db);
        // Dropping the only connection checkpoints the log into the file.
    }
    std::fs::create_dir_all(fixture_dir()).expect("fixture dir");
    std::fs::copy(&path, &out).expect("copy the fixture");
    println!("wrote {}", out.display());
}

#[test]
fn migrates_an_empty_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A missing file, and a file that exists but is empty.
    let missing = dir.path().join("a").join("new.sqlite");
    let empty = dir.path().join("empty.sqlite");
    std::fs::write(&empty, b"").expect("empty file");
    for path in [missing, empty] {
        let Opened { mut db, notice } = Db::open(&path).expect("open");
        assert_eq!(notice, None, "{}", path.display());
        assert_eq!(
            db.pragma_i64("user_version").expect("version"),
            SCHEMA_VERSION
        );
        assert_eq!(db.integrity_check().expect("check"), ["ok"]);
        fill(&mut db);
        assert_eq!(db.list_sessions().expect("list").len(), 2);
    }
}

#[test]
fn opens_every_shipped_fixture() {
    for version in 1..=SCHEMA_VERSION {
        let src = fixture_dir().join(format!("v{version}.sqlite"));
        assert!(
            src.exists(),
            "no fixture for schema {version}: write it with \
             {ENV_WRITE}=1 cargo test --test store_migrations write_fixture -- --ignored"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sessions.db");
        std::fs::copy(&src, &path).expect("copy the fixture");

        let Opened { db, notice } = Db::open(&path).expect("open the fixture");
        assert_eq!(notice, None, "v{version}");
        assert_eq!(
            db.pragma_i64("user_version").expect("version"),
            SCHEMA_VERSION
        );
        assert_eq!(db.integrity_check().expect("check"), ["ok"], "v{version}");

        let list = db.list_sessions().expect("list");
        let mut names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["empty one", "fixture"], "v{version}");
        let s = db
            .session_by_name("fixture")
            .expect("look up")
            .expect("fixture session");
        assert_eq!(s.kb.as_deref(), Some("sample"));
        assert_eq!(s.model.as_deref(), Some("offline"));
        assert_eq!(s.settings, Some(serde_json::json!({"rag": true})));

        let data = db.load_session(s.id).expect("load");
        let msgs: Vec<(i64, Role, &str, MessageStatus)> = data
            .messages
            .iter()
            .map(|m| (m.seq, m.role, m.text.as_str(), m.status))
            .collect();
        assert_eq!(
            msgs,
            [
                (1, Role::User, "Who rules Vel?", MessageStatus::Sent),
                (
                    2,
                    Role::Assistant,
                    "The Bridge Council [1].",
                    MessageStatus::Done
                ),
                (3, Role::User, "And who before?", MessageStatus::Unsent),
            ],
            "v{version}"
        );
        assert_eq!(data.messages[1].passages, [cited()]);
        assert_eq!(data.messages[1].request_id.as_deref(), Some("01FIXTURE"));
        assert_eq!(
            data.messages[1].timings,
            Some(serde_json::json!({"total_ms": 40}))
        );
        assert_eq!(data.scenarios.len(), 1);
        assert_eq!(data.scenarios[0].seed, Some(42));
        assert_eq!(data.scenarios[0].title.as_deref(), Some("The Toll"));
        assert_eq!(data.requests.len(), 1);
        assert_eq!(data.requests[0].id, "01FIXTURE");
        assert_eq!(data.requests[0].ended_ms, Some(1_700_000_000_040));
    }
}
