//! Unit tests of the session database: opening (pragmas, mode, migrations,
//! damaged and newer files), sessions, messages, scenarios, requests, the
//! wiping of deleted text, error classification and the thread.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

use super::*;
use crate::domain::{Passage, Role};

fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested").join("sessions.db");
    (dir, path)
}

fn open(path: &Path) -> Db {
    let opened = Db::open(path).expect("open");
    assert_eq!(opened.notice, None, "an ordinary open has no notice");
    opened.db
}

fn count(db: &Db, sql: &str) -> i64 {
    db.conn_for_tests()
        .query_row(sql, [], |r| r.get(0))
        .expect(sql)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The bytes of the database file and of its -wal (empty if absent).
fn file_bytes(path: &Path) -> (Vec<u8>, Vec<u8>) {
    let db = std::fs::read(path).expect("read db");
    let wal = std::fs::read(wal_path(path)).unwrap_or_default();
    (db, wal)
}

fn wal_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push("-wal");
    PathBuf::from(s)
}

fn passage(id: &str, text: &str) -> Passage {
    Passage {
        id: id.to_string(),
        title: "Title".to_string(),
        source: "lore.md".to_string(),
        kind: Some("place".to_string()),
        heading: None,
        text: text.to_string(),
        score: 1.5,
        entities: Vec::new(),
        location: Default::default(),
    }
}

fn request(id: &str, created_ms: i64) -> RequestRow {
    RequestRow {
        id: id.to_string(),
        parent: None,
        kind: Some("chat".to_string()),
        backend: Some("offline".to_string()),
        outcome: Some("ok".to_string()),
        detail: None,
        attempts: 1,
        created_ms,
        ended_ms: Some(created_ms + 10),
        events: Some(serde_json::json!([{"at": created_ms, "what": "sent"}])),
    }
}

/// Files next to the database whose name says they were moved aside.
fn corrupt_copies(path: &Path) -> Vec<PathBuf> {
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let mut found: Vec<PathBuf> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{name}.corrupt-"))
        })
        .collect();
    found.sort();
    found
}

#[test]
fn open_creates_and_migrates_an_empty_database() {
    let (_dir, path) = temp();
    let db = open(&path);
    assert!(path.exists());
    assert_eq!(db.pragma_i64("user_version").unwrap(), SCHEMA_VERSION);
    for table in [
        "sessions",
        "messages",
        "scenarios",
        "requests",
        "pending_truncation",
    ] {
        let n = count(
            &db,
            &format!(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '{table}'"
            ),
        );
        assert_eq!(n, 1, "table {table}");
    }
    assert!(db.list_sessions().unwrap().is_empty());
    assert_eq!(db.integrity_check().unwrap(), ["ok"]);
    drop(db);
    // Opening again does not migrate twice or fail.
    let db = open(&path);
    assert_eq!(db.pragma_i64("user_version").unwrap(), SCHEMA_VERSION);
}

#[test]
fn pragmas_are_set() {
    let (_dir, path) = temp();
    let db = open(&path);
    assert_eq!(db.journal_mode().unwrap(), "wal");
    assert_eq!(db.pragma_i64("synchronous").unwrap(), 2, "FULL is 2");
    assert_eq!(db.pragma_i64("foreign_keys").unwrap(), 1);
    assert_eq!(db.pragma_i64("secure_delete").unwrap(), 1);
    assert_eq!(db.pragma_i64("busy_timeout").unwrap(), 5000);
}

#[cfg(unix)]
#[test]
fn database_and_log_are_private_to_the_user() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path) = temp();
    let mut db = open(&path);
    // A write, so the -wal exists.
    db.create_session("mode").unwrap();
    for p in [path.clone(), wal_path(&path)] {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
    }
}

#[test]
fn a_newer_schema_is_refused_and_left_untouched() {
    let (_dir, path) = temp();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE future (x); PRAGMA user_version = 99;")
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = Db::open(&path).unwrap_err();
    assert_eq!(
        err,
        StoreError::NewerSchema {
            found: 99,
            known: SCHEMA_VERSION
        }
    );
    assert!(err.to_string().contains("newer loreweave"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "not written to");
    assert!(corrupt_copies(&path).is_empty());
    let conn = Connection::open(&path).unwrap();
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 99);
}

#[test]
fn a_file_that_is_not_a_database_is_moved_aside() {
    let (_dir, path) = temp();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // Deterministic garbage, two pages long.
    let mut x: u32 = 12345;
    let garbage: Vec<u8> = (0..8192)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    std::fs::write(&path, &garbage).unwrap();
    std::fs::write(wal_path(&path), b"stale log").unwrap();

    let Opened { mut db, notice } = Db::open(&path).expect("open after moving aside");
    let notice = notice.expect("the user is told");
    assert!(notice.contains("moved aside"), "{notice}");

    let copies = corrupt_copies(&path);
    let moved = &copies[0];
    assert!(copies.contains(&wal_path(moved)), "its log too: {copies:?}");
    assert_eq!(std::fs::read(moved).unwrap(), garbage, "kept as it was");
    assert_eq!(std::fs::read(wal_path(moved)).unwrap(), b"stale log");
    assert!(notice.contains(&moved.display().to_string()), "{notice}");

    let s = db.create_session("fresh").unwrap();
    db.append_message(s.id, NewMessage::user("hello", MessageStatus::Sent))
        .unwrap();
    assert_eq!(db.load_session(s.id).unwrap().messages.len(), 1);
    assert_eq!(db.integrity_check().unwrap(), ["ok"]);
}

#[test]
fn a_database_with_damaged_pages_is_moved_aside() {
    let (_dir, path) = temp();
    filled(&path, 200);
    // Closing the last connection checkpointed the log into the file.
    let mut bytes = std::fs::read(&path).unwrap();
    let page = 4096;
    assert!(bytes.len() > 6 * page, "several pages: {}", bytes.len());
    for b in &mut bytes[page..6 * page] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();

    let Opened { db, notice } = Db::open(&path).expect("open");
    assert!(notice.expect("told").contains("damaged"));
    let copies = corrupt_copies(&path);
    let mains: Vec<&PathBuf> = copies
        .iter()
        .filter(|p| {
            !p.to_string_lossy().ends_with("-wal") && !p.to_string_lossy().ends_with("-shm")
        })
        .collect();
    assert_eq!(mains.len(), 1, "{copies:?}");
    assert_eq!(std::fs::read(mains[0]).unwrap(), bytes, "moved as it was");
    assert!(db.list_sessions().unwrap().is_empty(), "a fresh database");
}

#[test]
fn sessions_are_created_renamed_listed_and_deleted() {
    let (_dir, path) = temp();
    let mut db = open(&path);
    let a = db.create_session("alpha").unwrap();
    let b = db.create_session("beta").unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(
        db.create_session("alpha").unwrap_err(),
        StoreError::DuplicateName {
            name: "alpha".to_string()
        }
    );

    for bad in ["", "   ", "tab\there", "new\nline", &"n".repeat(65)] {
        assert!(
            matches!(db.create_session(bad), Err(StoreError::InvalidName { .. })),
            "{bad:?} accepted"
        );
    }
    // 64 characters, however many bytes, is fine.
    db.create_session(&"é".repeat(64)).unwrap();
    // Older activity for all, so the appends below make alpha the newest
    // without depending on the clock moving between statements.
    db.conn_for_tests()
        .execute("UPDATE sessions SET updated_ms = 1000", [])
        .unwrap();

    db.append_message(a.id, NewMessage::user("one", MessageStatus::Sent))
        .unwrap();
    db.append_message(a.id, NewMessage::user("two", MessageStatus::Sent))
        .unwrap();
    db.set_session_kb(a.id, Some("my-lore")).unwrap();

    let list = db.list_sessions().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0].name, "alpha", "most recently active first");
    assert_eq!(list[0].messages, 2);
    assert_eq!(list[0].kb.as_deref(), Some("my-lore"));
    assert_eq!(list.iter().find(|s| s.name == "beta").unwrap().messages, 0);
    assert_eq!(db.most_recent().unwrap().unwrap().id, a.id);
    db.touch(b.id).unwrap();
    // Touching in the same millisecond ties; the id breaks it, so compare
    // updated times instead of the order when the clock did not move.
    let b_now = db.session(b.id).unwrap().unwrap();
    assert!(b_now.updated_ms >= b.updated_ms);

    db.rename_session(b.id, "gamma").unwrap();
    assert!(db.session_by_name("beta").unwrap().is_none());
    assert_eq!(db.session_by_name("gamma").unwrap().unwrap().id, b.id);
    assert!(matches!(
        db.rename_session(b.id, "alpha"),
        Err(StoreError::DuplicateName { .. })
    ));
    assert!(matches!(
        db.rename_session(9999, "zeta"),
        Err(StoreError::NotFound { .. })
    ));

    let settings = serde_json::json!({"temperature": 0.7});
    db.set_session_model(a.id, Some("llama"), Some(&settings))
        .unwrap();
    let a_now = db.session(a.id).unwrap().unwrap();
    assert_eq!(a_now.model.as_deref(), Some("llama"));
    assert_eq!(a_now.settings, Some(settings));

    // Cascade: the session's messages, scenarios and requests go with it.
    db.save_scenario(
        a.id,
        ScenarioRow {
            seq: 1,
            prompt: Some("p".to_string()),
            seed: Some(7),
            title: None,
            markdown: None,
            sources: None,
            status: None,
            created_ms: 1,
        },
    )
    .unwrap();
    db.save_requests(a.id, vec![request("r1", 1)]).unwrap();
    let report = db.delete_session(a.id).unwrap();
    assert_eq!(report.name, "alpha");
    assert!(!report.truncation_pending);
    assert!(db.session(a.id).unwrap().is_none());
    for table in ["messages", "scenarios", "requests"] {
        let n = count(
            &db,
            &format!("SELECT COUNT(*) FROM {table} WHERE session_id = {}", a.id),
        );
        assert_eq!(n, 0, "{table} rows left");
    }
    assert!(matches!(
        db.delete_session(a.id),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(db.list_sessions().unwrap().len(), 2);
}

#[test]
fn messages_are_appended_in_order_updated_and_loaded() {
    let (_dir, path) = temp();
    let mut db = open(&path);
    let s = db.create_session("chat").unwrap();
    let other = db.create_session("other").unwrap();
    let q = db
        .append_message(s.id, NewMessage::user("what is Vel?", MessageStatus::Sent))
        .unwrap();
    let r = db
        .append_message(
            s.id,
            NewMessage::assistant_running(Some("01REQ".to_string())),
        )
        .unwrap();
    let o = db
        .append_message(other.id, NewMessage::user("elsewhere", MessageStatus::Sent))
        .unwrap();
    assert_eq!((q.seq, r.seq, o.seq), (1, 2, 1), "seq per session");

    db.update_message(
        r.id,
        MessageUpdate {
            text: Some("Vel is a city".to_string()),
            ..Default::default()
        },
    )
    .unwrap();
    let cited = vec![passage("vel.md#0", "Vel, city of bridges")];
    db.update_message(
        r.id,
        MessageUpdate {
            text: Some("Vel is a city [1]".to_string()),
            status: Some(MessageStatus::Done),
            passages: Some(cited.clone()),
            backend: Some("offline".to_string()),
            timings: Some(serde_json::json!({"ttft_ms": 12})),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(matches!(
        db.update_message(9999, MessageUpdate::default()),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        db.append_message(9999, NewMessage::user("x", MessageStatus::Sent)),
        Err(StoreError::NotFound { .. })
    ));

    let data = db.load_session(s.id).unwrap();
    assert_eq!(data.session.name, "chat");
    assert_eq!(data.messages.len(), 2);
    let (m1, m2) = (&data.messages[0], &data.messages[1]);
    assert_eq!((m1.role, m1.text.as_str()), (Role::User, "what is Vel?"));
    assert_eq!(m2.role, Role::Assistant);
    assert_eq!(m2.text, "Vel is a city [1]");
    assert_eq!(m2.status, MessageStatus::Done);
    assert_eq!(m2.passages, cited);
    assert_eq!(m2.request_id.as_deref(), Some("01REQ"), "kept from append");
    assert_eq!(m2.backend.as_deref(), Some("offline"));
    assert_eq!(m2.timings, Some(serde_json::json!({"ttft_ms": 12})));
    assert_eq!(db.messages_after(s.id, 1).unwrap().len(), 1);

    // Clearing the passages stores none.
    db.update_message(
        r.id,
        MessageUpdate {
            passages: Some(Vec::new()),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        db.load_session(s.id).unwrap().messages[1]
            .passages
            .is_empty()
    );
}

#[test]
fn every_status_round_trips() {
    let (_dir, path) = temp();
    let mut db = open(&path);
    let s = db.create_session("statuses").unwrap();
    for status in MessageStatus::ALL {
        db.append_message(s.id, NewMessage::new(Role::Assistant, "t", status))
            .unwrap();
    }
    let got: Vec<MessageStatus> = db
        .load_session(s.id)
        .unwrap()
        .messages
        .iter()
        .map(|m| m.status)
        .collect();
    assert_eq!(got, MessageStatus::ALL);
}

#[test]
fn scenarios_are_replaced_by_seq() {
    let (_dir, path) = temp();
    let mut db = open(&path);
    let s = db.create_session("scen").unwrap();
    let mut row = ScenarioRow {
        seq: 1,
        prompt: Some("a heist".to_string()),
        seed: Some(u64::MAX),
        title: Some("First".to_string()),
        markdown: Some("# First".to_string()),
        sources: Some(serde_json::json!(["vel.md#0"])),
        status: Some("done".to_string()),
        created_ms: 5,
    };
    db.save_scenario(s.id, row.clone()).unwrap();
    row.title = Some("Second".to_string());
    db.save_scenario(s.id, row.clone()).unwrap();
    let two = ScenarioRow {
        seq: 2,
        ..row.clone()
    };
    db.save_scenario(s.id, two).unwrap();
    let data = db.load_session(s.id).unwrap();
    assert_eq!(data.scenarios.len(), 2);
    assert_eq!(data.scenarios[0], row, "replaced, u64 seed intact");
    assert_eq!(data.scenarios[1].seq, 2);
}

#[test]
fn requests_are_upserted_and_trimmed_to_the_bound() {
    let (_dir, path) = temp();
    let mut db = open(&path).with_request_bound(5);
    let s = db.create_session("busy").unwrap();
    let t = db.create_session("quiet").unwrap();
    db.save_requests(t.id, vec![request("t1", 1)]).unwrap();

    let trimmed = db
        .save_requests(
            s.id,
            (1..=3)
                .map(|i| request(&format!("r{i}"), i * 100))
                .collect(),
        )
        .unwrap();
    assert_eq!(trimmed, 0);
    // Four newer ones (two created in the same millisecond), and an update
    // of r3.
    let mut batch: Vec<RequestRow> = vec![
        request("r4", 400),
        request("r5", 500),
        request("r6a", 600),
        request("r6b", 600),
    ];
    let mut r3 = request("r3", 300);
    r3.outcome = Some("failed".to_string());
    r3.attempts = 3;
    batch.push(r3);
    let trimmed = db.save_requests(s.id, batch).unwrap();
    assert_eq!(trimmed, 2, "7 rows, bound 5");

    let data = db.load_session(s.id).unwrap();
    let ids: Vec<&str> = data.requests.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        ["r3", "r4", "r5", "r6a", "r6b"],
        "newest five, oldest first"
    );
    assert_eq!(data.requests[0].outcome.as_deref(), Some("failed"));
    assert_eq!(data.requests[0].attempts, 3);
    assert_eq!(data.requests[1], request("r4", 400), "round trip");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM requests"), 6);
    assert_eq!(
        db.load_session(t.id).unwrap().requests.len(),
        1,
        "untouched"
    );
    assert!(matches!(
        db.save_requests(9999, vec![request("x", 1)]),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn mark_interrupted_turns_running_into_incomplete_and_lists_unsent() {
    let (_dir, path) = temp();
    let mut db = open(&path);
    let s = db.create_session("crashy").unwrap();
    let other = db.create_session("other").unwrap();
    db.append_message(s.id, NewMessage::user("q1", MessageStatus::Sent))
        .unwrap();
    let reply = db
        .append_message(s.id, NewMessage::assistant_running(None))
        .unwrap();
    db.update_message(
        reply.id,
        MessageUpdate {
            text: Some("half a repl".to_string()),
            ..Default::default()
        },
    )
    .unwrap();
    let queued = db
        .append_message(s.id, NewMessage::user("q2", MessageStatus::Unsent))
        .unwrap();
    let elsewhere = db
        .append_message(other.id, NewMessage::assistant_running(None))
        .unwrap();

    let report = db.mark_interrupted(s.id).unwrap();
    assert_eq!(report.incomplete, [reply.id]);
    assert_eq!(report.unsent, [queued.id]);
    let data = db.load_session(s.id).unwrap();
    assert_eq!(data.messages[1].status, MessageStatus::Incomplete);
    assert_eq!(data.messages[1].text, "half a repl", "text kept");
    assert_eq!(data.messages[2].status, MessageStatus::Unsent);
    assert_eq!(data.messages[0].status, MessageStatus::Sent);
    assert_eq!(
        db.load_session(other.id).unwrap().messages[0].status,
        MessageStatus::Running,
        "only the named session"
    );
    assert!(elsewhere.id > 0);

    let again = db.mark_interrupted(s.id).unwrap();
    assert!(again.incomplete.is_empty());
    assert_eq!(again.unsent, [queued.id], "still unsent, still listed");
}

const SECRET: &str = "ZEBRA-7f3c-deleted-marker";

/// A session whose messages carry [`SECRET`], one of them long enough to
/// spill onto overflow pages.
fn secret_session(db: &mut Db) -> SessionId {
    let s = db.create_session(&format!("secret {SECRET}")).unwrap();
    db.append_message(
        s.id,
        NewMessage::user(format!("tell me {SECRET}"), MessageStatus::Sent),
    )
    .unwrap();
    let long = format!("{SECRET} {}", "lorem ipsum ".repeat(2000));
    let r = db
        .append_message(
            s.id,
            NewMessage::new(Role::Assistant, long, MessageStatus::Done),
        )
        .unwrap();
    db.update_message(
        r.id,
        MessageUpdate {
            passages: Some(vec![passage("p#1", SECRET)]),
            ..Default::default()
        },
    )
    .unwrap();
    s.id
}

#[test]
fn deleted_text_is_in_neither_the_file_nor_the_log() {
    let (_dir, path) = temp();
    let mut db = open(&path);
    let keep = db.create_session("keep").unwrap();
    db.append_message(keep.id, NewMessage::user("kept text", MessageStatus::Sent))
        .unwrap();
    let s = secret_session(&mut db);
    let (f, w) = file_bytes(&path);
    assert!(
        contains(&f, SECRET.as_bytes()) || contains(&w, SECRET.as_bytes()),
        "the text is on disk before the delete"
    );

    let report = db.delete_session(s).unwrap();
    assert!(!report.truncation_pending, "{}", report.message());
    let (f, w) = file_bytes(&path);
    assert!(!contains(&f, SECRET.as_bytes()), "in the database file");
    assert!(!contains(&w, SECRET.as_bytes()), "in the log");
    assert!(w.is_empty(), "the log is truncated: {} bytes", w.len());
    assert_eq!(
        db.load_session(keep.id).unwrap().messages[0].text,
        "kept text"
    );
}

#[test]
fn a_truncation_blocked_by_a_reader_is_recorded_and_finished_at_the_next_open() {
    let (_dir, path) = temp();
    let mut db = open(&path);
    let s = secret_session(&mut db);

    // Another connection in the middle of a read transaction.
    let reader = Connection::open(&path).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let n: i64 = reader
        .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);

    let report = db.delete_session(s).unwrap();
    assert!(report.truncation_pending);
    assert!(
        report.message().contains("next start"),
        "{}",
        report.message()
    );
    assert!(db.truncation_pending().unwrap());
    let (f, w) = file_bytes(&path);
    assert!(
        contains(&f, SECRET.as_bytes()) || contains(&w, SECRET.as_bytes()),
        "the reader's snapshot still holds the text"
    );

    // This program stops while the other still has the database open (so
    // closing does not checkpoint); the other then finishes its read.
    drop(db);
    reader.execute_batch("COMMIT").unwrap();
    let (f, w) = file_bytes(&path);
    assert!(
        contains(&f, SECRET.as_bytes()) || contains(&w, SECRET.as_bytes()),
        "nothing wiped it yet"
    );

    let db = open(&path);
    assert!(!db.truncation_pending().unwrap(), "finished at open");
    let (f, w) = file_bytes(&path);
    assert!(!contains(&f, SECRET.as_bytes()), "in the database file");
    assert!(!contains(&w, SECRET.as_bytes()), "in the log");
    drop(reader);
}

#[test]
fn errors_are_classified_by_sqlite_code() {
    use rusqlite::ffi;
    let cases = [
        (ffi::SQLITE_FULL, "disk is full"),
        (ffi::SQLITE_READONLY, "read-only"),
        (ffi::SQLITE_BUSY, "locked by another program"),
        (ffi::SQLITE_LOCKED, "locked by another program"),
        (ffi::SQLITE_CORRUPT, "damaged"),
        (ffi::SQLITE_NOTADB, "damaged"),
        (ffi::SQLITE_MISUSE, "session database error"),
    ];
    for (code, words) in cases {
        let e: StoreError = rusqlite::Error::SqliteFailure(ffi::Error::new(code), None).into();
        assert!(e.to_string().contains(words), "{code}: {e}");
    }
    let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
    assert!(matches!(
        StoreError::io("x", &full),
        StoreError::DiskFull { .. }
    ));
}

#[test]
fn a_full_database_reports_disk_full_and_keeps_what_it_had() {
    let (_dir, path) = temp();
    let mut db = open(&path);
    let s = db.create_session("full").unwrap();
    db.append_message(s.id, NewMessage::user("fits", MessageStatus::Sent))
        .unwrap();
    let pages = db.pragma_i64("page_count").unwrap();
    // Stands in for a full disk: SQLite may not grow the file any more.
    db.conn_for_tests()
        .pragma_update(None, "max_page_count", pages)
        .unwrap();
    let err = db
        .append_message(
            s.id,
            NewMessage::user("x".repeat(100_000), MessageStatus::Sent),
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::DiskFull { .. }), "{err:?}");
    assert_eq!(db.load_session(s.id).unwrap().messages.len(), 1);
}

#[test]
fn a_lock_held_past_the_timeout_reports_locked() {
    let (_dir, path) = temp();
    let db = open(&path);
    let mut db = db.with_busy_timeout(Duration::from_millis(100)).unwrap();
    let s = db.create_session("contended").unwrap();
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = db
        .append_message(s.id, NewMessage::user("blocked", MessageStatus::Sent))
        .unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    other.execute_batch("ROLLBACK").unwrap();
    db.append_message(s.id, NewMessage::user("now", MessageStatus::Sent))
        .unwrap();
    assert_eq!(db.load_session(s.id).unwrap().messages.len(), 1);
}

#[test]
fn data_version_moves_when_another_connection_commits() {
    let (_dir, path) = temp();
    let db = open(&path);
    let before = db.data_version().unwrap();
    assert_eq!(db.data_version().unwrap(), before, "steady while idle");
    let mut other = open(&path);
    other.create_session("from elsewhere").unwrap();
    assert_ne!(db.data_version().unwrap(), before);
    assert_eq!(db.list_sessions().unwrap().len(), 1);
}

#[test]
fn the_thread_answers_futures_and_blocking_calls_and_drains_on_drop() {
    let (_dir, path) = temp();
    let (store, notice) = StoreThread::spawn(&path).unwrap();
    assert_eq!(notice, None);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let s = rt
        .block_on(store.call_try(|db| db.create_session("threaded")))
        .unwrap();
    // A job that panics fails its own call only.
    let panicked = rt.block_on(store.call(|_db| -> i32 { panic!("deliberate test panic") }));
    assert_eq!(panicked, Err(StoreError::ThreadGone));
    let list = store
        .call_blocking(|db| db.list_sessions())
        .unwrap()
        .unwrap();
    assert_eq!(list.len(), 1);

    // Queued and never awaited: still written before drop returns.
    let id = s.id;
    for i in 0..50 {
        let _queued = store.call(move |db| {
            db.append_message(id, NewMessage::user(format!("m{i}"), MessageStatus::Sent))
        });
    }
    drop(store);
    let db = open(&path);
    let texts: Vec<String> = db
        .load_session(id)
        .unwrap()
        .messages
        .into_iter()
        .map(|m| m.text)
        .collect();
    let expected: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, expected);
}

#[test]
fn a_session_loads_from_its_end_in_two_parts_that_make_the_whole() {
    let (_dir, path) = temp();
    let mut db = open(&path);
    let s = db.create_session("long").unwrap();
    let other = db.create_session("other").unwrap();
    for i in 0..25 {
        db.append_message(s.id, NewMessage::user(format!("m{i}"), MessageStatus::Sent))
            .unwrap();
        db.append_message(other.id, NewMessage::user("x", MessageStatus::Sent))
            .unwrap();
    }
    db.save_requests(s.id, vec![request("01A", 5), request("01B", 6)])
        .unwrap();
    let whole = db.load_session(s.id).unwrap();
    for page in [1, 10, 24, 25, 100] {
        let mut tail = None;
        let rest = db
            .load_session_paged(s.id, page, |t| tail = Some(t))
            .unwrap();
        let tail = tail.expect("the tail comes first");
        let newest = page.min(25);
        assert_eq!(tail.data.messages.len(), newest, "page {page}");
        assert_eq!(tail.more, page < 25, "page {page}");
        assert!(tail.data.requests.is_empty(), "requests come with the rest");
        assert_eq!(tail.data.scenarios, whole.scenarios);
        assert_eq!(tail.data.session, whole.session);
        assert_eq!(rest.session, s.id);
        assert_eq!(rest.messages.len(), 25 - newest);
        // Put together, exactly what the one-piece load reads.
        let mut messages = rest.messages.clone();
        messages.extend(tail.data.messages.iter().cloned());
        assert_eq!(messages, whole.messages, "page {page}");
        assert_eq!(rest.requests, whole.requests);
    }
    // An empty session: an empty tail and nothing more.
    let empty = db.create_session("empty").unwrap();
    let mut tail = None;
    let rest = db
        .load_session_paged(empty.id, 200, |t| tail = Some(t))
        .unwrap();
    let tail = tail.unwrap();
    assert!(tail.data.messages.is_empty() && !tail.more && rest.messages.is_empty());
    // A session that is not there: an error, and no tail.
    let mut called = false;
    assert!(matches!(
        db.load_session_paged(9999, 10, |_| called = true),
        Err(StoreError::NotFound { .. })
    ));
    assert!(!called);
}

#[test]
fn the_two_parts_of_a_paged_load_are_one_snapshot() {
    let (_dir, path) = temp();
    let mut db = open(&path);
    let s = db.create_session("long").unwrap();
    for i in 0..10 {
        db.append_message(s.id, NewMessage::user(format!("m{i}"), MessageStatus::Sent))
            .unwrap();
    }
    // Another process appends and saves requests while the tail is shown:
    // neither part sees it (the next poll does).
    let mut other = open(&path);
    let rest = db
        .load_session_paged(s.id, 4, |tail| {
            assert_eq!(tail.data.messages.last().unwrap().text, "m9");
            other
                .append_message(s.id, NewMessage::user("late", MessageStatus::Sent))
                .unwrap();
            other.save_requests(s.id, vec![request("01L", 9)]).unwrap();
        })
        .unwrap();
    let texts: Vec<&str> = rest.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["m0", "m1", "m2", "m3", "m4", "m5"]);
    assert!(rest.requests.is_empty());
    assert_eq!(db.load_session(s.id).unwrap().messages.len(), 11);
}

/// A database of one session with `n` messages of some 200 bytes, closed
/// (so its log is checkpointed into the file).
fn filled(path: &Path, n: usize) -> SessionId {
    let mut db = open(path);
    let s = db.create_session("kept").unwrap();
    for i in 0..n {
        db.append_message(
            s.id,
            NewMessage::user(
                format!("message {i} {}", "x".repeat(200)),
                MessageStatus::Sent,
            ),
        )
        .unwrap();
    }
    s.id
}

#[test]
fn an_unverified_open_reads_first_and_checks_before_the_first_write() {
    let (_dir, path) = temp();
    let id = filled(&path, 20);
    let Opened { mut db, notice } = Db::open_unverified(&path).unwrap();
    assert_eq!(notice, None);
    assert!(!db.is_verified(), "the check is left for later");
    assert_eq!(db.load_session(id).unwrap().messages.len(), 20);
    assert!(!db.is_verified(), "reading does not check");
    db.append_message(id, NewMessage::user("after", MessageStatus::Sent))
        .unwrap();
    assert!(db.is_verified(), "the first write checked");
    assert_eq!(db.load_session(id).unwrap().messages.len(), 21);
    drop(db);
    assert_eq!(open(&path).load_session(id).unwrap().messages.len(), 21);

    // Opening that must write (a new file to migrate, a truncation owed)
    // checks at once.
    let (_dir2, new_path) = temp();
    let Opened { db, .. } = Db::open_unverified(&new_path).unwrap();
    assert!(db.is_verified());
    drop(db);
    let db = open(&path);
    db.conn_for_tests()
        .execute(
            "INSERT INTO pending_truncation (id, since_ms) VALUES (1, 0)",
            [],
        )
        .unwrap();
    drop(db);
    let Opened { db, .. } = Db::open_unverified(&path).unwrap();
    assert!(db.is_verified());
    assert!(!db.truncation_pending().unwrap(), "finished at open");
}

#[test]
fn an_unverified_damaged_database_takes_no_write_and_is_replaced_when_found() {
    let (_dir, path) = temp();
    filled(&path, 200);
    // Damage the last pages (message rows): the schema and the first
    // tables still read, so the open itself succeeds.
    let mut bytes = std::fs::read(&path).unwrap();
    let page = 4096;
    let len = bytes.len();
    assert!(len > 8 * page, "several pages: {len}");
    for b in &mut bytes[len - 3 * page..] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();

    let Opened { mut db, notice } = Db::open_unverified(&path).unwrap();
    assert_eq!(notice, None, "not checked yet");
    assert!(matches!(db.verify(), Err(StoreError::Corrupt { .. })));
    assert!(matches!(
        db.create_session("nope"),
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        db.append_message(1, NewMessage::user("nope", MessageStatus::Sent)),
        Err(StoreError::Corrupt { .. })
    ));
    assert!(!db.is_verified());
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing written");

    let StoreError::Corrupt { detail } = db.verify().unwrap_err() else {
        panic!("corrupt");
    };
    let notice = db.replace_damaged(&detail).unwrap();
    assert!(
        notice.contains("damaged") && notice.contains("moved aside"),
        "{notice}"
    );
    let copies = corrupt_copies(&path);
    let main = copies
        .iter()
        .find(|p| !p.to_string_lossy().ends_with("-wal") && !p.to_string_lossy().ends_with("-shm"))
        .expect("moved aside");
    assert_eq!(std::fs::read(main).unwrap(), bytes, "moved as it was");
    assert!(db.is_verified());
    assert!(db.list_sessions().unwrap().is_empty(), "a fresh database");
    let s = db.create_session("fresh").unwrap();
    db.append_message(s.id, NewMessage::user("hello", MessageStatus::Sent))
        .unwrap();
    drop(db);
    assert_eq!(open(&path).load_session(s.id).unwrap().messages.len(), 1);
}
