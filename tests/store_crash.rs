//! Crash safety and concurrency of the session database, with real processes.
//!
//! The children are this test binary itself, re-run with `--exact <name>
//! --ignored --nocapture` and an environment variable naming the database:
//! the `child_*` tests are `#[ignore]`d and do nothing without that variable.
//!
//! - `sigkill_loses_no_acknowledged_message`: a child appends messages and
//!   streams a reply, printing an acknowledgement after each write returns;
//!   the parent SIGKILLs it at pseudo-random moments (fixed seed, 6 rounds)
//!   and checks that every acknowledged write is there and the database is
//!   sound.
//! - `two_processes_writing_at_once_lose_nothing`: two children append to
//!   their own sessions at the same time; every message is there afterwards.
//!
//! Every wait is bounded.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use loreweave::store::{Db, MessageStatus, MessageUpdate, NewMessage, Opened};

const ENV_DB: &str = "LOREWEAVE_TEST_STORE_DB";
const ENV_SESSION: &str = "LOREWEAVE_TEST_STORE_SESSION";
const ENV_COUNT: &str = "LOREWEAVE_TEST_STORE_COUNT";
const ENV_GO: &str = "LOREWEAVE_TEST_STORE_GO";

const CRASH_SESSION: &str = "crash";
/// Longest wait for a child to start writing or to finish.
const CHILD_DEADLINE: Duration = Duration::from_secs(120);

fn child(test: &str, db: &Path) -> Command {
    let exe = std::env::current_exe().expect("current exe");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        test,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(ENV_DB, db)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    cmd
}

/// Forwards the child's stdout lines to a channel (ends at its EOF).
fn read_lines(child: &mut Child) -> (mpsc::Receiver<String>, thread::JoinHandle<()>) {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (rx, handle)
}

/// Pseudo-random numbers from a fixed seed (so a failure can be replayed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// What a crash child acknowledged.
#[derive(Default)]
struct Acks {
    seqs: BTreeSet<i64>,
    /// The streaming reply's id and the longest text length acknowledged.
    stream: Option<(i64, usize)>,
}

impl Acks {
    fn take(&mut self, line: &str) -> bool {
        let mut words = line.trim().split(' ');
        match (words.next(), words.next(), words.next()) {
            (Some("ACK"), Some(seq), None) => match seq.parse() {
                Ok(seq) => {
                    self.seqs.insert(seq);
                    true
                }
                Err(_) => false,
            },
            (Some("STREAMED"), Some(id), Some(len)) => match (id.parse(), len.parse()) {
                (Ok(id), Ok(len)) => {
                    self.stream = Some((id, len));
                    true
                }
                _ => false,
            },
            _ => false,
        }
    }
}

#[test]
#[ignore = "child process of sigkill_loses_no_acknowledged_message"]
fn child_writer() {
    let Some(path) = std::env::var_os(ENV_DB) else {
        return;
    };
    let mut db = Db::open(&path).expect("open").db;
    let session = match db.session_by_name(CRASH_SESSION).expect("look up") {
        Some(s) => s,
        None => db.create_session(CRASH_SESSION).expect("create"),
    };
    let stream = db
        .append_message(session.id, NewMessage::assistant_running(None))
        .expect("start the reply");
    let mut out = std::io::stdout().lock();
    // libtest has printed "test child_writer ... " without a newline.
    writeln!(out).expect("stdout");
    let mut text = String::new();
    // Bounded: the parent kills it long before the end.
    for i in 0..20_000 {
        let m = db
            .append_message(
                session.id,
                NewMessage::user(format!("message {i}"), MessageStatus::Sent),
            )
            .expect("append");
        writeln!(out, "ACK {}", m.seq).expect("stdout");
        out.flush().expect("flush");
        text.push_str(&format!("chunk {i}; "));
        db.update_message(
            stream.id,
            MessageUpdate {
                text: Some(text.clone()),
                ..Default::default()
            },
        )
        .expect("stream");
        writeln!(out, "STREAMED {} {}", stream.id, text.len()).expect("stdout");
        out.flush().expect("flush");
        thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(unix)]
#[test]
fn sigkill_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sessions.db");
    let mut rng = Lcg(0x10_4e_57_ea_11);
    let mut all_acked: BTreeSet<i64> = BTreeSet::new();

    for round in 0..6 {
        let mut proc = child("child_writer", &path).spawn().expect("spawn child");
        let (lines, reader) = read_lines(&mut proc);
        let mut acks = Acks::default();

        // Wait (bounded) for the first acknowledged write.
        let deadline = Instant::now() + CHILD_DEADLINE;
        while acks.seqs.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    acks.take(&line);
                }
                Err(e) => {
                    let _ = proc.kill();
                    let _ = proc.wait();
                    panic!("round {round}: the child never acknowledged a write ({e})");
                }
            }
        }
        // Then kill it at a pseudo-random moment.
        let delay = Duration::from_millis(5 + rng.next() % 250);
        thread::sleep(delay);
        proc.kill().expect("SIGKILL");
        let status = proc.wait().expect("reap");
        assert!(!status.success(), "round {round}: killed, not finished");
        reader.join().expect("reader");
        for line in lines.try_iter() {
            acks.take(&line);
        }
        all_acked.extend(&acks.seqs);
        println!(
            "round {round}: killed after {delay:?}, {} writes acknowledged",
            acks.seqs.len()
        );

        let Opened { mut db, notice } = Db::open(&path).expect("reopen after the kill");
        assert_eq!(notice, None, "round {round}: the database was not damaged");
        assert_eq!(
            db.integrity_check().expect("check"),
            ["ok"],
            "round {round}"
        );
        let session = db
            .session_by_name(CRASH_SESSION)
            .expect("look up")
            .expect("the session exists");
        let data = db.load_session(session.id).expect("load");
        let stored: BTreeSet<i64> = data.messages.iter().map(|m| m.seq).collect();
        let missing: Vec<&i64> = all_acked.difference(&stored).collect();
        assert!(
            missing.is_empty(),
            "round {round} (killed after {delay:?}): acknowledged but lost: {missing:?}"
        );

        if let Some((id, len)) = acks.stream {
            let reply = data
                .messages
                .iter()
                .find(|m| m.id == id)
                .expect("the streaming reply is stored");
            assert!(
                reply.text.len() >= len && reply.text.starts_with("chunk 0; "),
                "round {round}: reply has {} bytes, {len} were acknowledged",
                reply.text.len()
            );
            assert_eq!(reply.status, MessageStatus::Running);
            let report = db.mark_interrupted(session.id).expect("mark");
            assert!(report.incomplete.contains(&id), "round {round}");
            let after = db.load_session(session.id).expect("load");
            let reply = after.messages.iter().find(|m| m.id == id).expect("reply");
            assert_eq!(reply.status, MessageStatus::Incomplete);
            assert!(reply.text.len() >= len, "text kept when marked");
        }
    }
    assert!(all_acked.len() >= 6, "every round acknowledged something");
}

#[test]
#[ignore = "child process of two_processes_writing_at_once_lose_nothing"]
fn child_appender() {
    let Some(path) = std::env::var_os(ENV_DB) else {
        return;
    };
    let session = std::env::var(ENV_SESSION).expect("session env");
    let count: usize = std::env::var(ENV_COUNT)
        .expect("count env")
        .parse()
        .expect("count");
    let go = PathBuf::from(std::env::var_os(ENV_GO).expect("go env"));
    let mut db = Db::open(&path).expect("open").db;
    let id = db
        .session_by_name(&session)
        .expect("look up")
        .expect("the parent made the session")
        .id;
    // A newline first: libtest has printed "test child_appender ... ".
    println!("\nREADY");
    // Start together with the other child (bounded wait for the signal).
    let deadline = Instant::now() + CHILD_DEADLINE;
    while !go.exists() {
        assert!(Instant::now() < deadline, "never told to go");
        thread::sleep(Duration::from_millis(5));
    }
    for i in 0..count {
        db.append_message(
            id,
            NewMessage::user(format!("{session} {i}"), MessageStatus::Sent),
        )
        .expect("append");
    }
    println!("DONE");
}

#[test]
fn two_processes_writing_at_once_lose_nothing() {
    const N: usize = 150;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sessions.db");
    let go = dir.path().join("go");
    {
        let mut db = Db::open(&path).expect("create").db;
        db.create_session("left").expect("left");
        db.create_session("right").expect("right");
    }
    let mut procs = Vec::new();
    for name in ["left", "right"] {
        let mut cmd = child("child_appender", &path);
        cmd.env(ENV_SESSION, name)
            .env(ENV_COUNT, N.to_string())
            .env(ENV_GO, &go);
        let mut proc = cmd.spawn().expect("spawn child");
        let (lines, reader) = read_lines(&mut proc);
        procs.push((name, proc, lines, reader));
    }
    let deadline = Instant::now() + CHILD_DEADLINE;
    let kill_all = |procs: &mut Vec<(&str, Child, _, _)>| {
        for (_, p, _, _) in procs.iter_mut() {
            let _ = p.kill();
            let _ = p.wait();
        }
    };
    for i in 0..procs.len() {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match procs[i].2.recv_timeout(left) {
                Ok(line) if line.trim() == "READY" => break,
                Ok(_) => {}
                Err(e) => {
                    kill_all(&mut procs);
                    panic!("{} never got ready: {e}", procs[i].0);
                }
            }
        }
    }
    std::fs::write(&go, b"go").expect("go");
    for (name, mut proc, lines, reader) in procs {
        let status = loop {
            match proc.try_wait().expect("wait") {
                Some(status) => break status,
                None if Instant::now() > deadline => {
                    let _ = proc.kill();
                    let _ = proc.wait();
                    panic!("{name} did not finish in time");
                }
                None => thread::sleep(Duration::from_millis(20)),
            }
        };
        assert!(status.success(), "{name} failed: {status}");
        // The child has exited, so its stdout is at EOF and the reader ends.
        reader.join().expect("reader");
        let said: Vec<String> = lines.try_iter().collect();
        assert!(
            said.iter().any(|l| l.trim() == "DONE"),
            "{name} did not report DONE: {said:?}"
        );
    }
    let db = Db::open(&path).expect("reopen").db;
    assert_eq!(db.integrity_check().expect("check"), ["ok"]);
    for name in ["left", "right"] {
        let s = db.session_by_name(name).expect("look up").expect(name);
        let msgs = db.load_session(s.id).expect("load").messages;
        let texts: Vec<String> = msgs.iter().map(|m| m.text.clone()).collect();
        let expected: Vec<String> = (0..N).map(|i| format!("{name} {i}")).collect();
        assert_eq!(texts, expected, "{name}: all {N}, in order");
        let seqs: Vec<i64> = msgs.iter().map(|m| m.seq).collect();
        let want: Vec<i64> = (1..=N as i64).collect();
        assert_eq!(seqs, want);
    }
}
