//! `loreweave sessions ...`: saved conversations for scripts (list, show,
//! export, rename, delete), and the markdown and JSON exports the TUI's
//! `/session export` writes too. Every untrusted string is sanitised before
//! it reaches a terminal; exports keep the text as stored (markdown), with
//! control characters removed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;

use crate::cli::SessionsCmd;
use crate::domain::Role;
use crate::sanitize::{one_line, sanitize};
use crate::store::Db;
use crate::store::model::{MessageRow, MessageStatus, SessionData, SessionRow};

/// The session database: `$XDG_DATA_HOME/loreweave/sessions.db`.
pub fn db_path() -> anyhow::Result<PathBuf> {
    directories::ProjectDirs::from("", "", "loreweave")
        .map(|dirs| dirs.data_dir().join("sessions.db"))
        .context("no data directory on this system (set XDG_DATA_HOME)")
}

/// Open the database, saying on stderr when a damaged one was moved aside.
pub fn open_db() -> anyhow::Result<Db> {
    let opened = Db::open(db_path()?)?;
    if let Some(notice) = &opened.notice {
        eprintln!("loreweave: {}", one_line(notice));
    }
    Ok(opened.db)
}

fn find(db: &Db, name: &str) -> anyhow::Result<SessionRow> {
    db.session_by_name(name)?.ok_or_else(|| {
        let known: Vec<String> = db
            .list_sessions()
            .map(|l| l.into_iter().map(|s| s.name).collect())
            .unwrap_or_default();
        let hint = crate::config::closest(name, known.iter().map(String::as_str))
            .map(|k| format!(" (did you mean {k:?}?)"))
            .unwrap_or_default();
        anyhow::anyhow!(
            "no session named {:?}{hint}; `loreweave sessions list` lists them",
            one_line(name)
        )
    })
}

/// Run one `sessions` command: 0 done, 1 failed, 2 for an unknown session.
pub fn run(cmd: SessionsCmd) -> ExitCode {
    match run_inner(cmd) {
        Ok(code) => code,
        Err(error)
            if error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(error) => {
            let text = format!("{error:#}");
            eprintln!("loreweave: {}", one_line(&text));
            let usage = text.contains("no session named") || text.contains("invalid session name");
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

fn run_inner(cmd: SessionsCmd) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match cmd {
        SessionsCmd::List { json } => {
            let db = open_db()?;
            let sessions = db.list_sessions()?;
            for s in &sessions {
                if json {
                    writeln!(out, "{}", serde_json::to_string(s)?)?;
                } else {
                    writeln!(
                        out,
                        "{:<32} {:>6} messages  {}",
                        one_line(&s.name),
                        s.messages,
                        crate::headless::kb::utc_time((s.updated_ms.max(0) / 1000) as u64)
                    )?;
                }
            }
            if sessions.is_empty() && !json {
                writeln!(
                    out,
                    "no sessions yet: the TUI saves one as soon as you ask something"
                )?;
            }
        }
        SessionsCmd::Show { name, json } => {
            let db = open_db()?;
            let session = find(&db, &name)?;
            let data = db.load_session(session.id)?;
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&export_json(&data))?
                )?;
            } else {
                // Markdown on a terminal: sanitised like every other output.
                write!(out, "{}", sanitize(&export_markdown(&data)))?;
            }
        }
        SessionsCmd::Export {
            name,
            format,
            output,
        } => {
            let db = open_db()?;
            let session = find(&db, &name)?;
            let data = db.load_session(session.id)?;
            let text = if format == "json" {
                serde_json::to_string_pretty(&export_json(&data))? + "\n"
            } else {
                export_markdown(&data)
            };
            match output {
                Some(path) => {
                    write_new(&path, &text)?;
                    eprintln!(
                        "exported session {:?} to {}",
                        one_line(&name),
                        path.display()
                    );
                }
                None => write!(out, "{}", sanitize(&text))?,
            }
        }
        SessionsCmd::Rename { old, new } => {
            let mut db = open_db()?;
            let session = find(&db, &old)?;
            db.rename_session(session.id, &new)?;
            writeln!(out, "renamed {:?} to {:?}", one_line(&old), one_line(&new))?;
        }
        SessionsCmd::Delete { name } => {
            let mut db = open_db()?;
            let session = find(&db, &name)?;
            let report = db.delete_session(session.id)?;
            writeln!(out, "{}", one_line(&report.message()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Create `path` and write `text`, refusing to overwrite anything.
pub fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {} (it is never overwritten)", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The whole session as one JSON document: the session, its messages (with
/// the passages each cites, as they were when it was written) and scenarios.
pub fn export_json(data: &SessionData) -> serde_json::Value {
    json!({
        "session": data.session,
        "messages": data.messages,
        "scenarios": data.scenarios,
    })
}

fn status_note(m: &MessageRow) -> String {
    match m.status {
        MessageStatus::Done | MessageStatus::Sent => String::new(),
        MessageStatus::Incomplete => " (incomplete: interrupted)".into(),
        MessageStatus::Unsent => " (not sent)".into(),
        MessageStatus::Running => " (still running)".into(),
        MessageStatus::Cancelled => " (cancelled)".into(),
        MessageStatus::Failed => format!(
            " (failed: {})",
            m.detail.as_deref().map(one_line).unwrap_or_default()
        ),
    }
}

/// The session as markdown: the conversation (each answer followed by the
/// passages it cites, with where they come from), then the scenarios.
pub fn export_markdown(data: &SessionData) -> String {
    let s = &data.session;
    let mut md = format!("# {}\n\n", one_line(&s.name));
    md.push_str(&format!(
        "_Session exported from loreweave · created {} · last activity {}",
        crate::headless::kb::utc_time((s.created_ms.max(0) / 1000) as u64),
        crate::headless::kb::utc_time((s.updated_ms.max(0) / 1000) as u64),
    ));
    if let Some(kb) = &s.kb {
        md.push_str(&format!(" · knowledge base {}", one_line(kb)));
    }
    md.push_str("_\n");
    for m in &data.messages {
        let who = match m.role {
            Role::User => "You".to_owned(),
            Role::Assistant => m
                .backend
                .as_deref()
                .map(|b| format!("loreweave ({})", one_line(b)))
                .unwrap_or_else(|| "loreweave".into()),
        };
        md.push_str(&format!("\n## {who}{}\n\n", status_note(m)));
        md.push_str(m.text.trim_end());
        md.push('\n');
        if !m.passages.is_empty() {
            md.push_str("\n**Cited passages**\n");
            for (i, p) in m.passages.iter().enumerate() {
                let mut place = one_line(&p.source);
                if !p.location.is_unknown() {
                    place.push_str(" › ");
                    place.push_str(&one_line(&p.location.to_string()));
                }
                md.push_str(&format!(
                    "\n[{}] **{}** ({place})\n\n",
                    i + 1,
                    one_line(&p.title)
                ));
                for line in p.text.trim().lines() {
                    md.push_str("> ");
                    md.push_str(line);
                    md.push('\n');
                }
            }
        }
    }
    if !data.scenarios.is_empty() {
        md.push_str("\n## Scenarios\n");
        for sc in &data.scenarios {
            md.push_str(&format!(
                "\n### {}. {}\n\n",
                sc.seq,
                one_line(sc.title.as_deref().unwrap_or("(untitled)"))
            ));
            let mut meta = Vec::new();
            if let Some(prompt) = &sc.prompt {
                meta.push(format!("prompt \"{}\"", one_line(prompt)));
            }
            if let Some(seed) = sc.seed {
                meta.push(format!("seed {seed}"));
            }
            if !meta.is_empty() {
                md.push_str(&format!("_{}_\n\n", meta.join(" · ")));
            }
            if let Some(body) = &sc.markdown {
                md.push_str(body.trim_end());
                md.push('\n');
            }
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Location, Passage};
    use crate::store::model::{NewMessage, ScenarioRow};

    #[test]
    fn exports_hold_messages_citations_with_locations_and_scenarios() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut db = Db::open(tmp.path().join("s.db")).expect("open").db;
        let s = db.create_session("Ashford campaign").expect("create");
        db.append_message(
            s.id,
            NewMessage::user("who guards the waystone?", MessageStatus::Sent),
        )
        .expect("append");
        let mut answer = NewMessage::new(
            Role::Assistant,
            "Warden Tamsin Orrel. [1]",
            MessageStatus::Done,
        );
        answer.backend = Some("offline".into());
        answer.passages = vec![Passage {
            id: "/n/waystone.md#0".into(),
            title: "The Shattered Waystone".into(),
            source: "waystone.md".into(),
            kind: None,
            heading: None,
            text: "Guarded by **Warden Tamsin Orrel**.".into(),
            score: 3.0,
            entities: vec![],
            location: Location {
                trail: vec!["Keepers".into()],
                lines: Some((7, 9)),
            },
        }];
        db.append_message(s.id, answer).expect("append");
        let mut cut = NewMessage::new(Role::Assistant, "The road forks", MessageStatus::Incomplete);
        cut.backend = Some("ollama".into());
        db.append_message(s.id, cut).expect("append");
        db.save_scenario(
            s.id,
            ScenarioRow {
                seq: 1,
                prompt: Some("the first encounter".into()),
                seed: Some(7),
                title: Some("Ambush at the Ford".into()),
                markdown: Some("# Ambush at the Ford\n\nRain.".into()),
                sources: None,
                status: Some("done".into()),
                created_ms: 0,
            },
        )
        .expect("scenario");
        let data = db.load_session(s.id).expect("load");
        let md = export_markdown(&data);
        assert!(md.starts_with("# Ashford campaign\n"), "{md}");
        assert!(md.contains("## You\n\nwho guards the waystone?"), "{md}");
        assert!(
            md.contains("## loreweave (offline)\n\nWarden Tamsin Orrel. [1]"),
            "{md}"
        );
        assert!(
            md.contains("[1] **The Shattered Waystone** (waystone.md › Keepers · lines 7-9)"),
            "{md}"
        );
        assert!(md.contains("> Guarded by **Warden Tamsin Orrel**."), "{md}");
        assert!(
            md.contains("## loreweave (ollama) (incomplete: interrupted)"),
            "{md}"
        );
        assert!(md.contains("### 1. Ambush at the Ford"), "{md}");
        assert!(
            md.contains("_prompt \"the first encounter\" · seed 7_"),
            "{md}"
        );

        let json = export_json(&data);
        assert_eq!(json["session"]["name"], "Ashford campaign");
        assert_eq!(
            json["messages"][1]["passages"][0]["location"]["lines"][0],
            7
        );
        assert_eq!(json["messages"][2]["status"], "incomplete");
        assert_eq!(json["scenarios"][0]["seed"], 7);

        // Never overwrites.
        let file = tmp.path().join("out.md");
        write_new(&file, &md).expect("write");
        assert!(write_new(&file, "again").is_err());
        assert_eq!(std::fs::read_to_string(&file).expect("read"), md);
    }
}
