//! The first screen's copy: what the TUI's first frame shows of the most
//! recent session, written beside the database (`sessions.db-screen`) when
//! the TUI closes it, so that the next start draws that session before it
//! opens SQLite. Opening a database in WAL mode (its log and shared-memory
//! files created, sized and locked) and reading the newest messages was
//! most of a reopened session's time to its first frame: about 0.7 ms of
//! 1.4 ms in the process.
//!
//! Invariants:
//! - It is a cache, never a source: the TUI shows it in the placeholder
//!   conversation and opens the database right after the first frame;
//!   what the database holds then replaces it. (Another process writing
//!   between the quitting one's last read and its close is the one case
//!   a stamp can miss: the first frame then shows what was read, and the
//!   database replaces it a few milliseconds later.)
//! - It is used only when the database file and its log are exactly as
//!   they were when it was written: for each, present or absent as then,
//!   and of the same inode, length and modification time (to the
//!   nanosecond). Any write since, by any program, changes one of them.
//! - It holds message text, as the database does: written `0600`, and
//!   removed by every open of the database ([`super::Db`] opens call
//!   [`remove`]) and every session delete, so no copy of a deleted session
//!   outlives it and a start after a crash never finds one.
//! - Only the program's own start reads it; a file that cannot be read or
//!   parsed, or of another version, is ignored.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::db::with_suffix;
use super::model::{MessageRow, ScenarioRow, SessionData, SessionRow, SessionTail};

/// Bumped when the layout changes: a copy of another version is ignored.
const VERSION: u32 = 1;

/// The copy of `db`'s first screen.
pub fn path_of(db: &Path) -> PathBuf {
    with_suffix(db, "-screen")
}

/// One file as it was: `None` when it did not exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileStamp {
    ino: u64,
    len: u64,
    mtime_s: i64,
    mtime_ns: i64,
}

fn file_stamp(path: &Path) -> std::io::Result<Option<FileStamp>> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(FileStamp {
            ino: m.ino(),
            len: m.len(),
            mtime_s: m.mtime(),
            mtime_ns: m.mtime_nsec(),
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The database file and its log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    db: Option<FileStamp>,
    wal: Option<FileStamp>,
}

fn stamp(db: &Path) -> std::io::Result<Stamp> {
    Ok(Stamp {
        db: file_stamp(db)?,
        wal: file_stamp(&with_suffix(db, "-wal"))?,
    })
}

/// What the file holds.
#[derive(Debug, Serialize, Deserialize)]
struct Copy {
    version: u32,
    stamp: Stamp,
    /// The chat pane's inside the messages were read to fill.
    width: u16,
    rows: usize,
    session: SessionRow,
    /// The newest messages, oldest first.
    messages: Vec<MessageRow>,
    scenarios: Vec<ScenarioRow>,
    /// Whether older messages remain.
    more: bool,
}

/// Write the copy of `tail` (read to fill `rows` rows of a pane `width`
/// cells wide) beside `db`, stamped with the database as it is now: call
/// it once the last write is done and the connection closed. Written to a
/// temporary file and renamed, so a reader never sees half of it.
pub fn write(db: &Path, tail: SessionTail, width: u16, rows: usize) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let copy = Copy {
        version: VERSION,
        stamp: stamp(db)?,
        width,
        rows,
        session: tail.data.session,
        messages: tail.data.messages,
        scenarios: tail.data.scenarios,
        more: tail.more,
    };
    let path = path_of(db);
    let partial = with_suffix(&path, ".partial");
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .and_then(|mut file| {
            let bytes = serde_json::to_vec(&copy).map_err(std::io::Error::other)?;
            file.write_all(&bytes)
        })
        .and_then(|()| std::fs::rename(&partial, &path));
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// The copy beside `db`, when there is one, of this version, read for a
/// pane `width` wide to fill at least `rows` rows, and the database and its
/// log are as they were when it was written. `None` in every other case.
pub fn read(db: &Path, width: u16, rows: usize) -> Option<SessionTail> {
    let bytes = std::fs::read(path_of(db)).ok()?;
    let copy: Copy = serde_json::from_slice(&bytes).ok()?;
    if copy.version != VERSION || copy.width != width || copy.rows < rows {
        return None;
    }
    if stamp(db).ok()? != copy.stamp || copy.stamp.db.is_none() {
        return None;
    }
    Some(SessionTail {
        data: SessionData {
            session: copy.session,
            messages: copy.messages,
            scenarios: copy.scenarios,
            requests: Vec::new(),
        },
        more: copy.more,
    })
}

/// Remove the copy beside `db`, if any.
pub fn remove(db: &Path) {
    let path = path_of(db);
    if let Err(e) = std::fs::remove_file(&path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(target: "store", "could not remove {}: {e}", path.display());
    }
}
