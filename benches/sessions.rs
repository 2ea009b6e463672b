//! Time to reopen a long session: a session database with 5,000 messages
//! (half of them answers citing five passages each) is opened, loaded and
//! turned into what the engine restores, in one piece (`load_session`, as
//! headless commands and `/session open` do) and from its end as the TUI
//! does at start (`load_session_paged`: the newest page of messages first,
//! then the rest). Prints medians; `cargo bench --bench sessions`. Under
//! `cargo test` (no `--bench` argument) it is a quick smoke run over 50
//! messages.

use std::time::{Duration, Instant};

use loreweave::store::Db;

mod common;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (messages, runs) = if full { (5_000, 9) } else { (50, 1) };
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("sessions.db");
    let mut db = Db::open(&path).expect("open").db;
    let session = db.create_session("long").expect("create");
    let filled = Instant::now();
    common::fill_session(&mut db, session.id, messages, None).expect("append");
    let fill = filled.elapsed();
    drop(db);
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);

    let mut open = Vec::new();
    let mut load = Vec::new();
    let mut restore = Vec::new();
    let mut tail = Vec::new();
    let mut rest = Vec::new();
    let mut open_unverified = Vec::new();
    let mut verify = Vec::new();
    let page = loreweave::tui::sessions::TAIL_PAGE;
    for _ in 0..runs {
        let t = Instant::now();
        let db = Db::open(&path).expect("open").db;
        open.push(t.elapsed());
        let t = Instant::now();
        let data = db.load_session(session.id).expect("load");
        load.push(t.elapsed());
        let t = Instant::now();
        let restored = loreweave::persist::restore(data);
        restore.push(t.elapsed());
        assert_eq!(restored.messages.len(), messages);

        // From the end, as the TUI's start: opened with the integrity check
        // left for later; the first page as soon as it is restored, then
        // the check, then the rest read and restored.
        drop(db);
        let t = Instant::now();
        let mut db = Db::open_unverified(&path).expect("open").db;
        open_unverified.push(t.elapsed());
        let t = Instant::now();
        let mut shown = None;
        let older = db
            .load_session_paged(session.id, page, |first| {
                shown = Some(loreweave::persist::restore(first.data));
                tail.push(t.elapsed());
            })
            .expect("paged");
        let restored_rest = loreweave::persist::restore_rest(older);
        rest.push(t.elapsed() - tail.last().copied().unwrap_or_default());
        let t = Instant::now();
        db.verify().expect("sound");
        verify.push(t.elapsed());
        let shown = shown.expect("first page");
        assert_eq!(
            shown.messages.len() + restored_rest.messages.len(),
            messages
        );
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "sessions bench ({}): {messages} messages, database {:.1} MB",
        if full { "full" } else { "smoke" },
        bytes as f64 / 1e6
    );
    println!("| what | median |");
    println!("|---|---|");
    println!(
        "| append {messages} messages, one commit each (synchronous=FULL) | {:.1} ms total, {:.2} ms each |",
        ms(fill),
        ms(fill) / messages as f64
    );
    println!(
        "| open the database (pragmas, quick_check, migrations) | {:.2} ms |",
        ms(median(open.clone()))
    );
    println!(
        "| load the session (messages with their passages) | {:.2} ms |",
        ms(median(load.clone()))
    );
    println!(
        "| turn it into what the engine restores | {:.2} ms |",
        ms(median(restore.clone()))
    );
    println!(
        "| reopen in all | {:.2} ms |",
        ms(median(open.clone())) + ms(median(load)) + ms(median(restore))
    );
    println!(
        "| from the end: open, the check left for later (pragmas) | {:.2} ms |",
        ms(median(open_unverified.clone()))
    );
    println!(
        "| from the end: the newest {page} messages read and restored | {:.2} ms |",
        ms(median(tail.clone()))
    );
    println!(
        "| from the end: then the older ones and the requests | {:.2} ms |",
        ms(median(rest))
    );
    println!(
        "| from the end: then quick_check, before the first write | {:.2} ms |",
        ms(median(verify))
    );
    println!(
        "| from the end: open to the first page shown | {:.2} ms |",
        ms(median(open_unverified)) + ms(median(tail))
    );
}
