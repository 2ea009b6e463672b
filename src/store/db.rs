//! [`Db`]: one connection to the session database and every query the
//! program makes of it. Synchronous; the program calls it through
//! [`super::StoreThread`] so no UI code ever waits on the disk.
//!
//! Invariants:
//! - Every connection runs with WAL, `synchronous=FULL` (a commit that
//!   returned survives a power loss), `foreign_keys=ON`, `secure_delete=ON`
//!   and a busy timeout; the file is created 0600 (unix) before SQLite opens
//!   it, and SQLite gives its -wal/-shm the same mode.
//! - A method that writes has committed when it returns `Ok` (one IMMEDIATE
//!   transaction per call, so two processes writing at once serialise on the
//!   write lock instead of failing on a stale snapshot).
//! - A damaged database is moved aside (`NAME.corrupt-<unix-secs>`, with its
//!   -wal/-shm) and reported, never overwritten; a newer schema is refused.
//! - Nothing is written to a database that has not passed `quick_check`:
//!   [`Db::open`] checks it before returning; [`Db::open_unverified`] (the
//!   TUI's start, to show a session's newest messages sooner) may leave the
//!   check to [`Db::verify`], which every writing method calls first, and
//!   until then the file is never checkpointed on close.
//! - After a delete the write-ahead log is checkpointed and truncated; when a
//!   reader in another connection prevents that, a row in
//!   `pending_truncation` records it and the next [`Db::open`] finishes it.
//! - Per session at most `request_bound` request summaries are kept: the
//!   newest by `created_ms` (ties by id), trimmed in the inserting transaction.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::config::DbConfig;
use rusqlite::types::{Type, Value};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::StoreError;
use super::migrate;
use super::model::{
    DeleteReport, InterruptReport, MessageId, MessageRow, MessageStatus, MessageUpdate, NewMessage,
    RequestRow, ScenarioRow, SessionData, SessionId, SessionRest, SessionRow, SessionSummary,
    SessionTail,
};
use crate::domain::{Passage, Role};

/// Request summaries kept per session (the newest by creation time).
pub const REQUEST_BOUND: usize = 10_000;
/// How long a statement waits for another connection's lock before failing
/// with [`StoreError::Locked`].
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a delete waits for other connections' readers before it leaves
/// the log truncation pending (to be finished at the next start).
const CHECKPOINT_WAIT: Duration = Duration::from_secs(1);
/// Longest session name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// An open session database.
pub struct Db {
    conn: Connection,
    path: PathBuf,
    request_bound: usize,
    busy_timeout: Duration,
    /// Opened with its `quick_check` left for [`Db::verify`].
    unverified: bool,
}

/// What [`Db::open`] returns: the database, and a sentence for the user when
/// opening it took something out of the ordinary (a damaged database moved
/// aside).
#[derive(Debug)]
pub struct Opened {
    pub db: Db,
    pub notice: Option<String>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.path)
            .field("request_bound", &self.request_bound)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Checks a session name: 1 to [`MAX_NAME_CHARS`] characters, not blank, no
/// control characters.
pub fn validate_name(name: &str) -> Result<(), StoreError> {
    let bad = |reason: &str| {
        Err(StoreError::InvalidName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.trim().is_empty() {
        return bad("a session name cannot be empty or blank");
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return bad("a session name is at most 64 characters");
    }
    if name.chars().any(char::is_control) {
        return bad("a session name cannot contain control characters");
    }
    Ok(())
}

/// A query of one session's messages (`?1`), every column
/// [`message_row`] reads, then `$tail`: the rest of the `WHERE` and the
/// order.
macro_rules! message_select {
    ($tail:literal) => {
        concat!(
            "SELECT id, session_id, seq, role, text, status, detail, backend, passages, \
             request_id, created_ms, updated_ms, timings \
             FROM messages WHERE session_id = ?1",
            $tail
        )
    };
}

impl Db {
    /// Opens (creating if needed) the session database at `path`, migrating
    /// it to this build's schema. A damaged database is moved aside and a
    /// fresh one created; `notice` then says so.
    pub fn open(path: impl AsRef<Path>) -> Result<Opened, StoreError> {
        Db::open_with(path.as_ref(), false)
    }

    /// As [`Db::open`], except that when nothing needs writing at open (the
    /// schema is current and no log truncation is pending) the integrity
    /// check is left for [`Db::verify`]: reads may come first; the first
    /// write (or an explicit `verify`) checks, and fails with
    /// [`StoreError::Corrupt`] on a damaged file, which
    /// [`Db::replace_damaged`] then moves aside. A file SQLite cannot read
    /// as a database at all is still moved aside here.
    pub fn open_unverified(path: impl AsRef<Path>) -> Result<Opened, StoreError> {
        Db::open_with(path.as_ref(), true)
    }

    /// As [`Db::open_unverified`], except that a lock another connection
    /// holds fails the open at once ([`StoreError::Locked`]) instead of
    /// waiting [`BUSY_TIMEOUT`] (for reading before the first frame); the
    /// database returned waits as usual.
    pub fn open_unverified_nowait(path: impl AsRef<Path>) -> Result<Opened, StoreError> {
        let Opened { db, notice } = Db::open_with_wait(path.as_ref(), true, Duration::ZERO)?;
        Ok(Opened {
            db: db.with_busy_timeout(BUSY_TIMEOUT)?,
            notice,
        })
    }

    fn open_with(path: &Path, defer: bool) -> Result<Opened, StoreError> {
        Db::open_with_wait(path, defer, BUSY_TIMEOUT)
    }

    fn open_with_wait(path: &Path, defer: bool, wait: Duration) -> Result<Opened, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| {
                StoreError::io(format!("could not create {}", parent.display()), &e)
            })?;
        }
        create_private(path)?;
        // The first screen's copy is for a start that has not opened the
        // database yet; once it is open, the copy may go stale (and must
        // not outlive a delete).
        super::screen::remove(path);
        match Db::open_existing(path, defer, wait) {
            Ok(db) => Ok(Opened { db, notice: None }),
            Err(StoreError::Corrupt { detail }) => {
                let moved = move_aside(path)?;
                create_private(path)?;
                let db = Db::open_existing(path, false, wait)?;
                Ok(Opened {
                    db,
                    notice: Some(damaged_notice(path, &detail, &moved)),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Whether the database has passed its integrity check (always, unless
    /// opened with [`Db::open_unverified`] and not written to since).
    pub fn is_verified(&self) -> bool {
        !self.unverified
    }

    /// Runs the integrity check left by [`Db::open_unverified`], if any:
    /// `Ok` once the database has passed it (then closing may checkpoint
    /// again); [`StoreError::Corrupt`] while it fails (nothing is written).
    pub fn verify(&mut self) -> Result<(), StoreError> {
        if !self.unverified {
            return Ok(());
        }
        let problems = check(&self.conn, "quick_check")?;
        if problems != ["ok"] {
            return Err(StoreError::Corrupt {
                detail: summarize(&problems),
            });
        }
        self.conn
            .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false)?;
        self.unverified = false;
        Ok(())
    }

    /// The database failed [`Db::verify`]: close it without checkpointing,
    /// move it aside (with its -wal/-shm) and open a fresh one in its place.
    /// Returns the sentence for the user, as [`Db::open`] words it.
    pub fn replace_damaged(&mut self, detail: &str) -> Result<String, StoreError> {
        let path = self.path.clone();
        // Closed first (no checkpoint: the check has not passed), so that
        // nothing of the damaged file's connection outlives the move.
        let placeholder = Connection::open_in_memory()?;
        drop(std::mem::replace(&mut self.conn, placeholder));
        let moved = move_aside(&path)?;
        create_private(&path)?;
        let fresh = Db::open_existing(&path, false, self.busy_timeout)?;
        *self = fresh.with_request_bound(self.request_bound);
        Ok(damaged_notice(&path, detail, &moved))
    }

    fn open_existing(path: &Path, defer: bool, wait: Duration) -> Result<Db, StoreError> {
        let mut conn = Connection::open(path)?;
        // Until the file has passed its checks, closing must not checkpoint a
        // possibly damaged log into it, nor delete that log.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        conn.busy_timeout(wait)?;
        // Reading the header first: a file that is not a database fails here,
        // and a newer schema is refused before anything is written.
        migrate::refuse_newer(migrate::user_version(&conn)?)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Other {
                detail: format!("could not switch the journal to WAL (it is {mode:?})"),
            });
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "secure_delete", "ON")?;
        // Deferred only when opening writes nothing: no migration, no
        // truncation to finish (both read; a damaged file fails here).
        let defer = defer
            && migrate::user_version(&conn)? == migrate::SCHEMA_VERSION
            && !conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM pending_truncation)",
                [],
                |r| r.get::<_, bool>(0),
            )?;
        if defer {
            return Ok(Db {
                conn,
                path: path.to_path_buf(),
                request_bound: REQUEST_BOUND,
                busy_timeout: wait,
                unverified: true,
            });
        }
        let problems = check(&conn, "quick_check")?;
        if problems != ["ok"] {
            return Err(StoreError::Corrupt {
                detail: summarize(&problems),
            });
        }
        migrate::migrate(&mut conn)?;
        // Sound: the last connection to close checkpoints and removes the log.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false)?;
        let mut db = Db {
            conn,
            path: path.to_path_buf(),
            request_bound: REQUEST_BOUND,
            busy_timeout: wait,
            unverified: false,
        };
        if !db.finish_pending_truncation()? {
            tracing::info!(target: "store", "a deleted session's log truncation is still pending");
        }
        Ok(db)
    }

    /// Keeps at most `bound` request summaries per session (tests use a small
    /// one; the program keeps [`REQUEST_BOUND`]).
    pub fn with_request_bound(mut self, bound: usize) -> Db {
        self.request_bound = bound;
        self
    }

    /// Waits at most `timeout` for another connection's lock.
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Result<Db, StoreError> {
        self.conn.busy_timeout(timeout)?;
        self.busy_timeout = timeout;
        Ok(self)
    }

    /// The raw connection, for tests that set up odd states.
    #[cfg(test)]
    pub(crate) fn conn_for_tests(&self) -> &Connection {
        &self.conn
    }

    /// Where the database file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many request summaries a session keeps.
    pub fn request_bound(&self) -> usize {
        self.request_bound
    }

    /// `PRAGMA data_version`: changes when another connection commits, so a
    /// reader can poll it cheaply to notice another process's writes.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// `PRAGMA integrity_check`: `["ok"]` for a sound database.
    pub fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        check(&self.conn, "integrity_check")
    }

    /// The value of a pragma that returns one integer (`user_version`,
    /// `foreign_keys`, `synchronous`, ...), for diagnostics and tests.
    pub fn pragma_i64(&self, name: &str) -> Result<i64, StoreError> {
        Ok(self.conn.pragma_query_value(None, name, |r| r.get(0))?)
    }

    /// The journal mode (`"wal"`).
    pub fn journal_mode(&self) -> Result<String, StoreError> {
        Ok(self
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))?)
    }

    // ---- sessions -------------------------------------------------------

    /// Creates an empty session. The name must be valid and unused.
    pub fn create_session(&mut self, name: &str) -> Result<SessionRow, StoreError> {
        self.verify()?;
        validate_name(name)?;
        let now = now_ms();
        self.conn
            .execute(
                "INSERT INTO sessions (name, created_ms, updated_ms) VALUES (?1, ?2, ?2)",
                params![name, now],
            )
            .map_err(|e| name_error(e, name))?;
        Ok(SessionRow {
            id: self.conn.last_insert_rowid(),
            name: name.to_string(),
            created_ms: now,
            updated_ms: now,
            kb: None,
            model: None,
            settings: None,
        })
    }

    /// Renames a session (not counted as activity). The new name must be
    /// valid and unused.
    pub fn rename_session(&mut self, id: SessionId, new_name: &str) -> Result<(), StoreError> {
        self.verify()?;
        validate_name(new_name)?;
        let n = self
            .conn
            .execute(
                "UPDATE sessions SET name = ?2 WHERE id = ?1",
                params![id, new_name],
            )
            .map_err(|e| name_error(e, new_name))?;
        if n == 0 {
            return Err(session_not_found(id));
        }
        Ok(())
    }

    /// Deletes a session with its messages, scenarios and requests, then
    /// checkpoints and truncates the write-ahead log so the deleted text is
    /// gone from both files. If another connection keeps the log from being
    /// truncated, that is recorded (and finished by the next [`Db::open`]).
    pub fn delete_session(&mut self, id: SessionId) -> Result<DeleteReport, StoreError> {
        self.verify()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let name: String = tx
            .query_row("SELECT name FROM sessions WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| session_not_found(id))?;
        tx.execute("DELETE FROM sessions WHERE id = ?1", [id])?;
        tx.commit()?;
        // No copy of its text beside the file either (one is only written
        // after the last connection closes, but another program's may be).
        super::screen::remove(&self.path);
        // The session is gone from here on: failing to truncate is reported,
        // not returned as an error.
        let truncated = match self.checkpoint_truncate() {
            Ok(true) => self.finish_pending_truncation().unwrap_or(false),
            Ok(false) => false,
            Err(e) => {
                tracing::warn!(target: "store", "checkpoint after delete failed: {e}");
                false
            }
        };
        if !truncated
            && let Err(e) = self.conn.execute(
                "INSERT OR IGNORE INTO pending_truncation (id, since_ms) VALUES (1, ?1)",
                [now_ms()],
            )
        {
            tracing::warn!(target: "store", "could not record the pending truncation: {e}");
        }
        Ok(DeleteReport {
            id,
            name,
            truncation_pending: !truncated,
        })
    }

    /// Whether a deleted session's text may still be in the write-ahead log.
    pub fn truncation_pending(&self) -> Result<bool, StoreError> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM pending_truncation)",
            [],
            |r| r.get(0),
        )?)
    }

    /// Finishes a pending log truncation if no other connection prevents it.
    /// Returns whether nothing is pending any more.
    pub fn finish_pending_truncation(&mut self) -> Result<bool, StoreError> {
        self.verify()?;
        if !self.truncation_pending()? {
            return Ok(true);
        }
        if !self.checkpoint_truncate()? {
            return Ok(false);
        }
        self.conn.execute("DELETE FROM pending_truncation", [])?;
        // Leave the log empty again (it now holds only the marker's removal).
        let _ = self.checkpoint_truncate();
        Ok(true)
    }

    /// `PRAGMA wal_checkpoint(TRUNCATE)`, waiting at most [`CHECKPOINT_WAIT`]
    /// for readers. Returns false when a reader kept it from finishing.
    fn checkpoint_truncate(&mut self) -> Result<bool, StoreError> {
        self.conn.busy_timeout(CHECKPOINT_WAIT)?;
        let result = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            });
        self.conn.busy_timeout(self.busy_timeout)?;
        match result {
            Ok(busy) => Ok(busy == 0),
            Err(e) => match StoreError::from(e) {
                StoreError::Locked { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    /// All sessions, most recently active first.
    pub fn list_sessions(&self) -> Result<Vec<SessionSummary>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT s.id, s.name, (SELECT COUNT(*) FROM messages m WHERE m.session_id = s.id), \
                    s.updated_ms, s.kb \
             FROM sessions s ORDER BY s.updated_ms DESC, s.id DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(SessionSummary {
                id: r.get(0)?,
                name: r.get(1)?,
                messages: r.get::<_, i64>(2)?.try_into().unwrap_or(0),
                updated_ms: r.get(3)?,
                kb: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The session with this id, if any.
    pub fn session(&self, id: SessionId) -> Result<Option<SessionRow>, StoreError> {
        self.one_session("WHERE id = ?1", [id])
    }

    /// The session with exactly this name, if any.
    pub fn session_by_name(&self, name: &str) -> Result<Option<SessionRow>, StoreError> {
        self.one_session("WHERE name = ?1", [name])
    }

    /// The most recently active session, if any.
    pub fn most_recent(&self) -> Result<Option<SessionRow>, StoreError> {
        self.one_session("ORDER BY updated_ms DESC, id DESC LIMIT 1", [])
    }

    fn one_session(
        &self,
        tail: &str,
        params: impl rusqlite::Params,
    ) -> Result<Option<SessionRow>, StoreError> {
        let sql = format!(
            "SELECT id, name, created_ms, updated_ms, kb, model, settings FROM sessions {tail}"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        Ok(stmt.query_row(params, session_row).optional()?)
    }

    /// Marks a session as active now.
    pub fn touch(&mut self, id: SessionId) -> Result<(), StoreError> {
        self.verify()?;
        let n = self.conn.execute(
            "UPDATE sessions SET updated_ms = MAX(updated_ms, ?2) WHERE id = ?1",
            params![id, now_ms()],
        )?;
        if n == 0 {
            return Err(session_not_found(id));
        }
        Ok(())
    }

    /// Records the knowledge base a session uses.
    pub fn set_session_kb(&mut self, id: SessionId, kb: Option<&str>) -> Result<(), StoreError> {
        self.verify()?;
        let n = self.conn.execute(
            "UPDATE sessions SET kb = ?2, updated_ms = MAX(updated_ms, ?3) WHERE id = ?1",
            params![id, kb, now_ms()],
        )?;
        if n == 0 {
            return Err(session_not_found(id));
        }
        Ok(())
    }

    /// Records the model and model settings (JSON) a session uses.
    pub fn set_session_model(
        &mut self,
        id: SessionId,
        model: Option<&str>,
        settings: Option<&serde_json::Value>,
    ) -> Result<(), StoreError> {
        self.verify()?;
        let settings = settings.map(serde_json::to_string).transpose()?;
        let n = self.conn.execute(
            "UPDATE sessions SET model = ?2, settings = ?3, updated_ms = MAX(updated_ms, ?4) \
             WHERE id = ?1",
            params![id, model, settings, now_ms()],
        )?;
        if n == 0 {
            return Err(session_not_found(id));
        }
        Ok(())
    }

    // ---- messages -------------------------------------------------------

    /// Appends a message at the end of a session (the next `seq`). It is
    /// committed (fsynced) when this returns: only then may the caller show
    /// a user message as sent.
    pub fn append_message(
        &mut self,
        session: SessionId,
        m: NewMessage,
    ) -> Result<MessageRow, StoreError> {
        self.verify()?;
        let now = now_ms();
        let passages = passages_json(&m.passages)?;
        let timings = m.timings.as_ref().map(serde_json::to_string).transpose()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let touched = tx.execute(
            "UPDATE sessions SET updated_ms = MAX(updated_ms, ?2) WHERE id = ?1",
            params![session, now],
        )?;
        if touched == 0 {
            return Err(session_not_found(session));
        }
        let seq: i64 = tx.query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE session_id = ?1",
            [session],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO messages (session_id, seq, role, text, status, detail, backend, \
                                   passages, request_id, created_ms, updated_ms, timings) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11)",
            params![
                session,
                seq,
                role_str(m.role),
                m.text,
                m.status.as_str(),
                m.detail,
                m.backend,
                passages,
                m.request_id,
                now,
                timings,
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(MessageRow {
            id,
            session_id: session,
            seq,
            role: m.role,
            text: m.text,
            status: m.status,
            detail: m.detail,
            backend: m.backend,
            passages: m.passages,
            request_id: m.request_id,
            created_ms: now,
            updated_ms: now,
            timings: m.timings,
        })
    }

    /// Changes a stored message (a streaming batch, or its final state).
    /// Committed when it returns.
    pub fn update_message(&mut self, id: MessageId, u: MessageUpdate) -> Result<(), StoreError> {
        self.verify()?;
        let now = now_ms();
        let mut sets: Vec<&str> = vec!["updated_ms = ?"];
        let mut values: Vec<Value> = vec![Value::Integer(now)];
        if let Some(text) = u.text {
            sets.push("text = ?");
            values.push(Value::Text(text));
        }
        if let Some(status) = u.status {
            sets.push("status = ?");
            values.push(Value::Text(status.as_str().to_string()));
        }
        if let Some(detail) = u.detail {
            sets.push("detail = ?");
            values.push(Value::Text(detail));
        }
        if let Some(passages) = u.passages {
            sets.push("passages = ?");
            values.push(passages_json(&passages)?.map_or(Value::Null, Value::Text));
        }
        if let Some(backend) = u.backend {
            sets.push("backend = ?");
            values.push(Value::Text(backend));
        }
        if let Some(request_id) = u.request_id {
            sets.push("request_id = ?");
            values.push(Value::Text(request_id));
        }
        if let Some(timings) = u.timings {
            sets.push("timings = ?");
            values.push(Value::Text(serde_json::to_string(&timings)?));
        }
        values.push(Value::Integer(id));
        let sql = format!("UPDATE messages SET {} WHERE id = ?", sets.join(", "));
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let session: SessionId = tx
            .query_row("SELECT session_id FROM messages WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| StoreError::NotFound {
                what: format!("message {id}"),
            })?;
        tx.prepare_cached(&sql)?
            .execute(rusqlite::params_from_iter(values))?;
        tx.execute(
            "UPDATE sessions SET updated_ms = MAX(updated_ms, ?2) WHERE id = ?1",
            params![session, now],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Everything a reopened session shows: the session, its messages and
    /// scenarios in order, and its newest requests (oldest of them first).
    pub fn load_session(&self, id: SessionId) -> Result<SessionData, StoreError> {
        // One read transaction: a consistent snapshot even while another
        // process writes.
        let tx = self.conn.unchecked_transaction()?;
        let session = self.session(id)?.ok_or_else(|| session_not_found(id))?;
        let messages = self.messages_after(id, 0)?;
        let scenarios = self.scenarios(id)?;
        let requests = self.requests(id)?;
        tx.finish()?;
        Ok(SessionData {
            session,
            messages,
            scenarios,
            requests,
        })
    }

    /// The same as [`Db::load_session`], from the end: the newest `page`
    /// messages (with the session and its scenarios) go to `first` as soon
    /// as they are read, then the older messages and the requests are read
    /// and returned. One read snapshot for both, so together they are
    /// exactly what `load_session` would have read (nothing another process
    /// commits meanwhile shows in either).
    pub fn load_session_paged(
        &self,
        id: SessionId,
        page: usize,
        first: impl FnOnce(SessionTail),
    ) -> Result<SessionRest, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let tail = self.tail(id, page, |_| false)?;
        let before = tail.older_than();
        first(tail);
        let rest = self.rest(id, before)?;
        tx.finish()?;
        Ok(rest)
    }

    /// The first part of [`Db::load_session_paged`] on its own: the session
    /// with its newest `page` messages and its scenarios.
    pub fn load_session_tail(&self, id: SessionId, page: usize) -> Result<SessionTail, StoreError> {
        self.load_session_tail_until(id, page, |_| false)
    }

    /// As [`Db::load_session_tail`], reading the newest messages one at a
    /// time (newest first) and stopping after the first for which `enough`
    /// says so: a screen's worth, before the first frame, decodes no more
    /// rows than it shows.
    pub fn load_session_tail_until(
        &self,
        id: SessionId,
        page: usize,
        enough: impl FnMut(&MessageRow) -> bool,
    ) -> Result<SessionTail, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let tail = self.tail(id, page, enough)?;
        tx.finish()?;
        Ok(tail)
    }

    fn tail(
        &self,
        id: SessionId,
        page: usize,
        enough: impl FnMut(&MessageRow) -> bool,
    ) -> Result<SessionTail, StoreError> {
        let session = self.session(id)?.ok_or_else(|| session_not_found(id))?;
        let page = i64::try_from(page.max(1)).unwrap_or(i64::MAX);
        let mut messages = self.newest_messages(id, page, enough)?;
        messages.reverse();
        let more = match messages.first() {
            Some(m) => self.conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM messages WHERE session_id = ?1 AND seq < ?2)",
                params![id, m.seq],
                |r| r.get(0),
            )?,
            None => false,
        };
        let scenarios = self.scenarios(id)?;
        Ok(SessionTail {
            data: SessionData {
                session,
                messages,
                scenarios,
                requests: Vec::new(),
            },
            more,
        })
    }

    /// The second part of [`Db::load_session_paged`] on its own: the
    /// messages before `before_seq` (none when `None`: the tail held them
    /// all; see [`SessionTail::older_than`]) and the requests.
    pub fn load_session_rest(
        &self,
        id: SessionId,
        before_seq: Option<i64>,
    ) -> Result<SessionRest, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let rest = self.rest(id, before_seq)?;
        tx.finish()?;
        Ok(rest)
    }

    fn rest(&self, id: SessionId, before_seq: Option<i64>) -> Result<SessionRest, StoreError> {
        let messages = match before_seq {
            Some(seq) => self.messages_before(id, seq)?,
            None => Vec::new(),
        };
        let requests = self.requests(id)?;
        Ok(SessionRest {
            session: id,
            messages,
            requests,
        })
    }

    /// A session's scenarios, in `seq` order.
    fn scenarios(&self, id: SessionId) -> Result<Vec<ScenarioRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, prompt, seed, title, markdown, sources, status, created_ms \
             FROM scenarios WHERE session_id = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([id], scenario_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// A session's newest requests (at most the bound), oldest first.
    fn requests(&self, id: SessionId) -> Result<Vec<RequestRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT * FROM ( \
               SELECT id, parent, kind, backend, outcome, detail, attempts, created_ms, \
                      ended_ms, events \
               FROM requests WHERE session_id = ?1 \
               ORDER BY created_ms DESC, id DESC LIMIT ?2) \
             ORDER BY created_ms, id",
        )?;
        let bound = i64::try_from(self.request_bound).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![id, bound], request_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// A session's newest `limit` messages, newest first, up to the first
    /// for which `enough` says so.
    fn newest_messages(
        &self,
        session: SessionId,
        limit: i64,
        mut enough: impl FnMut(&MessageRow) -> bool,
    ) -> Result<Vec<MessageRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(message_select!(" ORDER BY seq DESC LIMIT ?2"))?;
        let mut rows = stmt.query(params![session, limit])?;
        let mut messages = Vec::new();
        while let Some(row) = rows.next()? {
            let message = message_row(row)?;
            let done = enough(&message);
            messages.push(message);
            if done {
                break;
            }
        }
        Ok(messages)
    }

    /// The messages of a session whose `seq` is below `before_seq`, in
    /// order.
    pub fn messages_before(
        &self,
        session: SessionId,
        before_seq: i64,
    ) -> Result<Vec<MessageRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(message_select!(" AND seq < ?2 ORDER BY seq"))?;
        let rows = stmt.query_map(params![session, before_seq], message_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The messages of a session whose `seq` is above `after_seq`, in order
    /// (`after_seq = 0`: all of them).
    pub fn messages_after(
        &self,
        session: SessionId,
        after_seq: i64,
    ) -> Result<Vec<MessageRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(message_select!(" AND seq > ?2 ORDER BY seq"))?;
        let rows = stmt.query_map(params![session, after_seq], message_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// At start: replies left `running` by a crash or a kill become
    /// `incomplete` (their text is kept); user messages left `unsent` stay
    /// so and are listed, to be sent again.
    pub fn mark_interrupted(&mut self, session: SessionId) -> Result<InterruptReport, StoreError> {
        self.verify()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ids = |sql: &str| -> Result<Vec<MessageId>, StoreError> {
            let mut stmt = tx.prepare_cached(sql)?;
            let rows = stmt.query_map([session], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        };
        let incomplete = ids(RUNNING_IDS)?;
        let unsent = ids(UNSENT_IDS)?;
        if !incomplete.is_empty() {
            tx.execute(
                "UPDATE messages SET status = 'incomplete', updated_ms = ?2 \
                 WHERE session_id = ?1 AND status = 'running'",
                params![session, now_ms()],
            )?;
        }
        tx.commit()?;
        Ok(InterruptReport { incomplete, unsent })
    }

    // ---- scenarios ------------------------------------------------------

    /// Saves a scenario, replacing the one with the same `seq` in the session.
    pub fn save_scenario(&mut self, session: SessionId, s: ScenarioRow) -> Result<(), StoreError> {
        self.verify()?;
        let sources = s.sources.as_ref().map(serde_json::to_string).transpose()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let touched = tx.execute(
            "UPDATE sessions SET updated_ms = MAX(updated_ms, ?2) WHERE id = ?1",
            params![session, now_ms()],
        )?;
        if touched == 0 {
            return Err(session_not_found(session));
        }
        tx.execute(
            "INSERT INTO scenarios (session_id, seq, prompt, seed, title, markdown, sources, \
                                    status, created_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (session_id, seq) DO UPDATE SET \
               prompt = excluded.prompt, seed = excluded.seed, title = excluded.title, \
               markdown = excluded.markdown, sources = excluded.sources, \
               status = excluded.status, created_ms = excluded.created_ms",
            params![
                session,
                s.seq,
                s.prompt,
                s.seed.map(|v| v.to_string()),
                s.title,
                s.markdown,
                sources,
                s.status,
                s.created_ms,
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    // ---- requests -------------------------------------------------------

    /// Saves a batch of request summaries (inserting or replacing by id) in
    /// one transaction, then trims the session to the newest
    /// `request_bound`. Returns how many old summaries were trimmed.
    pub fn save_requests(
        &mut self,
        session: SessionId,
        rows: Vec<RequestRow>,
    ) -> Result<usize, StoreError> {
        self.verify()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM sessions WHERE id = ?1)",
            [session],
            |r| r.get(0),
        )?;
        if !exists {
            return Err(session_not_found(session));
        }
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO requests (session_id, id, parent, kind, backend, outcome, detail, \
                                       attempts, created_ms, ended_ms, events) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
                 ON CONFLICT (session_id, id) DO UPDATE SET \
                   parent = excluded.parent, kind = excluded.kind, \
                   backend = excluded.backend, outcome = excluded.outcome, \
                   detail = excluded.detail, attempts = excluded.attempts, \
                   created_ms = excluded.created_ms, ended_ms = excluded.ended_ms, \
                   events = excluded.events",
            )?;
            for r in rows {
                let events = r.events.as_ref().map(serde_json::to_string).transpose()?;
                stmt.execute(params![
                    session,
                    r.id,
                    r.parent,
                    r.kind,
                    r.backend,
                    r.outcome,
                    r.detail,
                    r.attempts,
                    r.created_ms,
                    r.ended_ms,
                    events,
                ])?;
            }
        }
        let bound = i64::try_from(self.request_bound).unwrap_or(i64::MAX);
        // The newest row past the bound: it and everything older goes.
        let cut: Option<(i64, String)> = tx
            .query_row(
                "SELECT created_ms, id FROM requests WHERE session_id = ?1 \
                 ORDER BY created_ms DESC, id DESC LIMIT 1 OFFSET ?2",
                params![session, bound],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let trimmed = match cut {
            Some((created, id)) => tx.execute(
                "DELETE FROM requests WHERE session_id = ?1 \
                 AND (created_ms < ?2 OR (created_ms = ?2 AND id <= ?3))",
                params![session, created, id],
            )?,
            None => 0,
        };
        tx.commit()?;
        Ok(trimmed)
    }
}

/// Creates the database file with mode 0600 (unix) if it does not exist, so
/// SQLite never creates it with the umask's mode.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::io(
            format!("could not create {}", path.display()),
            &e,
        )),
    }
}

/// `path` with `suffix` appended to its file name (`x.db` -> `x.db-wal`).
pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Moves a damaged database (and its -wal, -shm, -journal) to
/// `NAME.corrupt-<unix-secs>` (`-<n>` added if that is taken). The side files
/// go first, so a fresh database never meets the old log.
fn move_aside(path: &Path) -> Result<PathBuf, StoreError> {
    const SIDES: [&str; 3] = ["-wal", "-shm", "-journal"];
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let base = with_suffix(path, &format!(".corrupt-{secs}"));
    let taken = |p: &Path| p.exists() || SIDES.iter().any(|s| with_suffix(p, s).exists());
    let mut target = base.clone();
    let mut n = 1;
    while taken(&target) {
        if n > 1000 {
            return Err(StoreError::MoveAsideFailed {
                to: base,
                detail: "too many damaged copies already there".to_string(),
            });
        }
        target = with_suffix(&base, &format!("-{n}"));
        n += 1;
    }
    let rename = |from: &Path, to: &Path| {
        fs::rename(from, to).map_err(|e| StoreError::MoveAsideFailed {
            to: to.to_path_buf(),
            detail: e.to_string(),
        })
    };
    for side in SIDES {
        let from = with_suffix(path, side);
        if from.exists() {
            rename(&from, &with_suffix(&target, side))?;
        }
    }
    rename(path, &target)?;
    Ok(target)
}

/// The rows of `PRAGMA quick_check` / `integrity_check`.
fn check(conn: &Connection, pragma: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare(&format!("PRAGMA {pragma}"))?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A session's replies still marked running, in order.
const RUNNING_IDS: &str =
    "SELECT id FROM messages WHERE session_id = ?1 AND status = 'running' ORDER BY seq";
/// A session's user messages still unsent, in order.
const UNSENT_IDS: &str = "SELECT id FROM messages WHERE session_id = ?1 AND role = 'user' \
                          AND status = 'unsent' ORDER BY seq";

/// What the user is told when a damaged database was moved aside.
fn damaged_notice(path: &Path, detail: &str, moved: &Path) -> String {
    let notice = format!(
        "The session database {} was damaged ({detail}); it was moved aside to {} \
         and a fresh one was started.",
        path.display(),
        moved.display()
    );
    tracing::warn!(target: "store", "{notice}");
    notice
}

/// The first few problems a check reported, in one line.
fn summarize(problems: &[String]) -> String {
    let mut s = problems
        .iter()
        .take(3)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("; ");
    if problems.len() > 3 {
        s.push_str(&format!("; and {} more", problems.len() - 3));
    }
    s
}

fn session_not_found(id: SessionId) -> StoreError {
    StoreError::NotFound {
        what: format!("session {id}"),
    }
}

/// A unique-constraint failure on a session name becomes `DuplicateName`.
fn name_error(e: rusqlite::Error, name: &str) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    {
        return StoreError::DuplicateName {
            name: name.to_string(),
        };
    }
    e.into()
}

fn role_str(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

fn passages_json(passages: &[Passage]) -> Result<Option<String>, StoreError> {
    if passages.is_empty() {
        return Ok(None);
    }
    Ok(Some(serde_json::to_string(passages)?))
}

/// A conversion failure for column `idx`.
fn bad_column(idx: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, what.into())
}

/// A JSON column; text that does not parse is dropped with a warning (a
/// damaged snapshot must not make the whole session unreadable).
fn json_column<T: serde::de::DeserializeOwned>(
    r: &Row<'_>,
    idx: usize,
) -> rusqlite::Result<Option<T>> {
    // Borrowed from the row: parsed in place, not copied first.
    let Some(text) = r.get_ref(idx)?.as_str_or_null()? else {
        return Ok(None);
    };
    match serde_json::from_str(text) {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            tracing::warn!(target: "store", "unreadable JSON in column {idx}: {e}");
            Ok(None)
        }
    }
}

fn session_row(r: &Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: r.get(0)?,
        name: r.get(1)?,
        created_ms: r.get(2)?,
        updated_ms: r.get(3)?,
        kb: r.get(4)?,
        model: r.get(5)?,
        settings: json_column(r, 6)?,
    })
}

fn message_row(r: &Row<'_>) -> rusqlite::Result<MessageRow> {
    let role = match r.get_ref(3)?.as_str()? {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => return Err(bad_column(3, format!("unknown role {other:?}"))),
    };
    let status_text = r.get_ref(5)?.as_str()?;
    let status = MessageStatus::parse(status_text)
        .ok_or_else(|| bad_column(5, format!("unknown message status {status_text:?}")))?;
    Ok(MessageRow {
        id: r.get(0)?,
        session_id: r.get(1)?,
        seq: r.get(2)?,
        role,
        text: r.get(4)?,
        status,
        detail: r.get(6)?,
        backend: r.get(7)?,
        passages: json_column(r, 8)?.unwrap_or_default(),
        request_id: r.get(9)?,
        created_ms: r.get(10)?,
        updated_ms: r.get(11)?,
        timings: json_column(r, 12)?,
    })
}

fn scenario_row(r: &Row<'_>) -> rusqlite::Result<ScenarioRow> {
    Ok(ScenarioRow {
        seq: r.get(0)?,
        prompt: r.get(1)?,
        seed: r
            .get::<_, Option<String>>(2)?
            .and_then(|s| s.parse::<u64>().ok()),
        title: r.get(3)?,
        markdown: r.get(4)?,
        sources: json_column(r, 5)?,
        status: r.get(6)?,
        created_ms: r.get(7)?,
    })
}

fn request_row(r: &Row<'_>) -> rusqlite::Result<RequestRow> {
    Ok(RequestRow {
        id: r.get(0)?,
        parent: r.get(1)?,
        kind: r.get(2)?,
        backend: r.get(3)?,
        outcome: r.get(4)?,
        detail: r.get(5)?,
        attempts: r
            .get::<_, Option<i64>>(6)?
            .and_then(|a| u32::try_from(a).ok())
            .unwrap_or(0),
        created_ms: r.get(7)?,
        ended_ms: r.get(8)?,
        events: json_column(r, 9)?,
    })
}
