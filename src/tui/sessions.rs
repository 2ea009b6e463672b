//! The TUI's sessions: the session database on its thread, and what the
//! loop asks of it. Every job is queued on the store thread and its result
//! comes back to the loop as a [`SessionEvent`] on a channel: the loop never
//! waits for the disk.
//!
//! Invariants: a user message is committed before the engine is told to
//! send it (`commit` -> [`SessionEvent::Committed`] -> `Command::Ask`); if
//! the commit fails the text goes back into the input with the reason. At
//! start the most recent session reopens (or a first one is made), replies
//! cut short by a crash are marked incomplete and queued messages come back
//! unsent.
//!
//! A session reopens at start from its end: its newest [`TAIL_PAGE`]
//! messages arrive first ([`SessionEvent::Open`], shown at once), then the
//! older ones with its request history ([`SessionEvent::Rest`], put in
//! front of them), both read in one snapshot by the same store job, so any
//! job queued meanwhile (a question's commit) runs after both are read and
//! its event comes after both.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::engine::workspace::ConversationId;
use crate::persist::{RestoredRest, session_of};
use crate::store::{
    DeleteReport, MessageStatus, NewMessage, SessionData, SessionId, SessionSummary, StoreError,
    StoreThread,
};

/// What the store thread answers the loop.
#[derive(Debug)]
pub enum SessionEvent {
    /// The database is open (with a notice when a damaged one was moved
    /// aside).
    Ready(Arc<StoreThread>, Option<String>),
    /// The database turned out damaged after a session was shown from it:
    /// close what is shown (the fresh session follows in an `Open`).
    Damaged,
    /// The database cannot be used: nothing will be saved.
    Unavailable(String),
    /// Show this session (at start, `/session new`, `/session open`, or
    /// after the open one was deleted). At start, only its newest messages
    /// and no requests: [`SessionEvent::Rest`] follows with the others.
    Open(Box<SessionData>, Option<String>),
    /// The older messages and the requests of the session opened from its
    /// end, to put in front of the messages shown (when the conversation's
    /// first message still has the tag `first`: the row id of the oldest
    /// message shown, `None` when none is).
    Rest {
        rest: Box<RestoredRest>,
        first: Option<u64>,
        /// What reopening found (replies cut short, messages unsent).
        note: Option<String>,
    },
    /// A user message was committed (its row id), or why not.
    Committed {
        conversation: ConversationId,
        text: String,
        result: Result<u64, String>,
    },
    Listed(Vec<SessionSummary>),
    /// Every session's name, for Tab completion.
    Names(Vec<String>),
    Renamed {
        conversation: ConversationId,
        name: String,
    },
    Deleted(DeleteReport),
    Exported(PathBuf),
    /// The database's `data_version` now (it moves only when another
    /// process commits), and the open session as it is then, when it moved.
    Polled {
        version: i64,
        changed: Option<Box<SessionData>>,
    },
    /// A job failed; say so.
    Problem(String),
}

/// How many of a session's newest messages are read and shown first when it
/// reopens at start: a few screens' worth.
pub const TAIL_PAGE: usize = 200;

/// At most how many of the newest messages are read before the first frame
/// (when the database can be read then, see [`read_early`]): several
/// screens, fewer than [`TAIL_PAGE`], as the first frame waits for them
/// (the rest follows a few milliseconds later).
pub const FIRST_FRAME_PAGE: usize = 50;

/// The chat pane the first frame draws, in cells inside its borders: what
/// [`read_early`] reads enough messages to fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstScreen {
    pub width: u16,
    pub height: u16,
}

impl FirstScreen {
    /// The chat pane's inside on a terminal of `size` with `view`'s layout
    /// (zero when the terminal is too small for the panes).
    pub fn of(size: ratatui::layout::Size, view: &crate::ui::ViewState) -> Self {
        let area = ratatui::layout::Rect::new(0, 0, size.width, size.height);
        let chat = crate::ui::ScreenLayout::of(area, view).map_or(area, |layout| layout.chat);
        // Inside the pane's borders.
        Self {
            width: chat.width.saturating_sub(2),
            height: chat.height.saturating_sub(2),
        }
    }

    /// The chat pane's inside as a fresh start lays it out on a terminal of
    /// `size`: what the next start's first frame shows, for the copy left
    /// at the way out (the layout does not depend on the theme).
    pub fn at_start(size: ratatui::layout::Size) -> Self {
        let fresh = crate::ui::ViewState::new(crate::ui::Theme::plain(), super::FIRST_CONVERSATION);
        Self::of(size, &fresh)
    }

    /// The rows the chat pane makes exact on its first frame: the screen
    /// and a screen above it.
    fn rows(&self) -> usize {
        2 * usize::from(self.height)
    }
}

/// The most recent session's newest messages, as many as fill `screen`
/// (at most [`FIRST_FRAME_PAGE`]); `None` when there is no session.
fn first_screen_tail(
    db: &crate::store::Db,
    screen: FirstScreen,
) -> Result<Option<crate::store::SessionTail>, StoreError> {
    let Some(row) = db.most_recent()? else {
        return Ok(None);
    };
    // The rows of the messages read, as the chat pane estimates them
    // before it measures; once they fill `screen.rows()`, the chat pane's
    // margin of MARGIN_MESSAGES messages more (it measures those too).
    let (need, mut rows, mut past) = (screen.rows(), 0, 0);
    let tail = db.load_session_tail_until(row.id, FIRST_FRAME_PAGE, |m| {
        if rows >= need {
            past += 1;
        } else {
            let sources = match m.role {
                crate::domain::Role::Assistant => m.passages.len(),
                crate::domain::Role::User => 0,
            };
            rows += crate::ui::chat_cache::estimate_text_rows(m.text.len(), sources, screen.width);
        }
        rows >= need && past >= crate::ui::chat_cache::MARGIN_MESSAGES
    })?;
    Ok(Some(tail))
}

/// Read what the next start's first frame shows (for `screen`), close `db`
/// and write that copy beside it (`store::screen`). Closed first: the last
/// connection's close checkpoints the log into the file, and the copy is
/// stamped with the files as they are after.
fn close_and_copy(db: crate::store::Db, screen: FirstScreen) -> Result<(), String> {
    let path = db.path().to_path_buf();
    let tail = first_screen_tail(&db, screen).map_err(|e| describe(&e))?;
    drop(db);
    match tail {
        Some(tail) => crate::store::screen::write(&path, tail, screen.width, screen.rows())
            .map_err(|e| e.to_string()),
        None => Ok(()),
    }
}

/// The database at `path` as the TUI leaves it at its exit on a terminal of
/// `size`: with the copy of the next first screen beside it. For the
/// start-up bench, whose session is made with the store API.
pub fn leave_with_copy(path: &std::path::Path, size: ratatui::layout::Size) -> Result<(), String> {
    let db = crate::store::Db::open(path).map_err(|e| describe(&e))?.db;
    close_and_copy(db, FirstScreen::at_start(size))
}

/// Before the first frame, without opening the database: the first
/// screen's copy the last run left (see `store::screen`), when it was
/// written for this `screen` and the database has not changed since. The
/// TUI shows it in its placeholder until the database opens.
pub fn read_screen(path: Option<&std::path::Path>, screen: FirstScreen) -> Option<SessionData> {
    let tail = crate::store::screen::read(path?, screen.width, screen.rows())?;
    Some(tail.data)
}

/// The session database opened before the first frame, with the most
/// recent session's newest messages read (see [`read_early`]); handed to
/// [`Sessions::start`] to read the rest.
#[derive(Debug)]
pub struct Early {
    db: crate::store::Db,
    notice: Option<String>,
    session: SessionId,
    name: String,
    before: Option<i64>,
    first: Option<u64>,
}

/// Before the first frame: when the session database exists and no other
/// process holds it locked, open it (without `quick_check`: see
/// `Db::open_unverified`) and read the most recent session's newest
/// messages, enough to fill `screen` (at most [`FIRST_FRAME_PAGE`]), so
/// that the first frame shows them. Each row read costs its decoding
/// (passages are JSON), so no more are read than the frame needs.
/// `None` in every other case (nothing read or written in the database):
/// the database then opens after the first frame, as before.
pub fn read_early(
    path: Option<&std::path::Path>,
    screen: FirstScreen,
) -> Option<(Early, SessionData)> {
    let path = path?;
    if !path.is_file() {
        return None;
    }
    let crate::store::Opened { db, notice } =
        crate::store::Db::open_unverified_nowait(path).ok()?;
    crate::startup::mark("session database opened");
    let tail = first_screen_tail(&db, screen).ok()??;
    crate::startup::mark("session's newest messages read");
    let row = &tail.data.session;
    let early = Early {
        notice,
        session: row.id,
        name: row.name.clone(),
        before: tail.older_than(),
        first: crate::persist::first_tag(&tail.data.messages),
        db,
    };
    Some((early, tail.data))
}

/// The loop's handle on the session database.
#[derive(Debug, Clone)]
pub struct Sessions {
    store: Option<Arc<StoreThread>>,
    tx: mpsc::UnboundedSender<SessionEvent>,
}

fn describe(error: &StoreError) -> String {
    crate::sanitize::one_line(&error.to_string())
}

/// A session name from the clock, unique among `taken`.
fn fresh_name(taken: &[String]) -> String {
    let base = crate::headless::kb::utc_time((crate::store::now_ms().max(0) / 1000) as u64)
        .trim_end_matches(" UTC")
        .to_owned();
    if !taken.contains(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base} ({n})"))
        .find(|name| !taken.contains(name))
        .unwrap_or(base)
}

/// The session read before the first frame: its database goes to its
/// thread, whose first job reads the rest (its own snapshot: what another
/// process appended meanwhile shows at the next poll), checks the file,
/// marks the replies cut short and hands the rest over, as `reopen` does.
fn finish_early(early: Early, events: &mpsc::UnboundedSender<SessionEvent>) {
    let Early {
        db,
        notice,
        session,
        name,
        before,
        first,
    } = early;
    let store = match StoreThread::with_db(db) {
        Ok(store) => Arc::new(store),
        Err(e) => {
            let _ = events.send(SessionEvent::Unavailable(describe(&e)));
            return;
        }
    };
    let ready = store.clone();
    let shown = events.clone();
    let opened = store.call_blocking(move |db| {
        let _ = shown.send(SessionEvent::Ready(ready, notice));
        match rest_of(db, session, &name, before, first, &shown) {
            Err(StoreError::Corrupt { detail }) => replace(db, &detail, &shown),
            other => other,
        }
    });
    match opened {
        Ok(Ok(())) => {}
        Ok(Err(e)) | Err(e) => {
            let _ = events.send(SessionEvent::Unavailable(describe(&e)));
        }
    }
}

/// After a session's newest page was shown: check the file, mark the
/// replies cut short, read the older messages and the requests and hand
/// them over ([`SessionEvent::Rest`]).
fn rest_of(
    db: &mut crate::store::Db,
    session: SessionId,
    name: &str,
    before: Option<i64>,
    first: Option<u64>,
    events: &mpsc::UnboundedSender<SessionEvent>,
) -> Result<(), StoreError> {
    let rest = db.load_session_rest(session, before)?;
    db.verify()?;
    send_rest(db, session, name, rest, first, events)
}

/// Mark the replies cut short (the database has passed its check) and hand
/// the rest over.
fn send_rest(
    db: &mut crate::store::Db,
    session: SessionId,
    name: &str,
    rest: crate::store::SessionRest,
    first: Option<u64>,
    events: &mpsc::UnboundedSender<SessionEvent>,
) -> Result<(), StoreError> {
    let interrupted = db.mark_interrupted(session)?;
    let note = (!interrupted.is_empty()).then(|| {
        format!(
            "reopened {name:?}: {} reply(ies) cut short are marked incomplete, {} message(s) were not sent (/resend sends them)",
            interrupted.incomplete.len(),
            interrupted.unsent.len()
        )
    });
    let rest = Box::new(crate::persist::restore_rest(rest));
    let _ = events.send(SessionEvent::Rest { rest, first, note });
    Ok(())
}

/// The database was found damaged after a session was shown from it: what
/// was shown is closed ([`SessionEvent::Damaged`]), the file is moved aside
/// and a fresh session opens in a fresh database, with the notice.
fn replace(
    db: &mut crate::store::Db,
    detail: &str,
    events: &mpsc::UnboundedSender<SessionEvent>,
) -> Result<(), StoreError> {
    let _ = events.send(SessionEvent::Damaged);
    let notice = db.replace_damaged(detail)?;
    let row = db.create_session(&fresh_name(&[]))?;
    let data = db.load_session(row.id)?;
    let _ = events.send(SessionEvent::Open(Box::new(data), Some(notice)));
    Ok(())
}

/// The start's job on a database opened unverified: reopen the most recent
/// session from its end; should the file turn out damaged (its deferred
/// check, or a read), what was shown from it is closed
/// ([`SessionEvent::Damaged`]), the file is moved aside and a fresh session
/// opens in a fresh database, with the notice saying so.
fn reopen(
    db: &mut crate::store::Db,
    events: &mpsc::UnboundedSender<SessionEvent>,
) -> Result<(), StoreError> {
    match reopen_latest(db, events) {
        Err(StoreError::Corrupt { detail }) => replace(db, &detail, events),
        other => other,
    }
}

/// Show the most recent session (or a first one) from its end: its newest
/// [`TAIL_PAGE`] messages, then, once the database has passed its check,
/// the replies cut short are marked and the older messages follow.
fn reopen_latest(
    db: &mut crate::store::Db,
    events: &mpsc::UnboundedSender<SessionEvent>,
) -> Result<(), StoreError> {
    let row = match db.most_recent()? {
        Some(row) => row,
        // A first session: written, so checked first.
        None => db.create_session(&fresh_name(&[]))?,
    };
    let mut first = None;
    let rest = db.load_session_paged(row.id, TAIL_PAGE, |tail| {
        let data = tail.data;
        first = crate::persist::first_tag(&data.messages);
        // Shown while the rest is read and the file checked (a reply left
        // running shows as interrupted before it is marked so).
        let _ = events.send(SessionEvent::Open(Box::new(data), None));
    })?;
    // Before anything is written: the check left at open.
    db.verify()?;
    send_rest(db, row.id, &row.name, rest, first, events)
}

impl Sessions {
    /// Open the database at `path` on the blocking pool, then the most
    /// recent session (or a first one). Results arrive on `tx`.
    ///
    /// # Panics
    /// When called outside a tokio runtime.
    pub fn start(
        path: Option<PathBuf>,
        early: Option<Early>,
        tx: mpsc::UnboundedSender<SessionEvent>,
    ) -> Self {
        let events = tx.clone();
        if let Some(early) = early {
            tokio::task::spawn_blocking(move || finish_early(early, &events));
            return Self { store: None, tx };
        }
        tokio::task::spawn_blocking(move || {
            let Some(path) = path else {
                let _ = events.send(SessionEvent::Unavailable(
                    "no data directory on this system".into(),
                ));
                return;
            };
            // The check of the file waits until the newest messages are
            // shown; nothing is written before it (see `reopen`).
            match StoreThread::spawn_unverified(&path) {
                Ok((store, notice)) => {
                    let store = Arc::new(store);
                    let ready = store.clone();
                    let shown = events.clone();
                    // Ready is said from the first job, so every job the
                    // loop queues runs after this one.
                    let opened = store.call_blocking(move |db| {
                        let _ = shown.send(SessionEvent::Ready(ready, notice));
                        reopen(db, &shown)
                    });
                    match opened {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) | Err(e) => {
                            let _ = events.send(SessionEvent::Unavailable(describe(&e)));
                        }
                    }
                }
                Err(e) => {
                    let _ = events.send(SessionEvent::Unavailable(describe(&e)));
                }
            }
        });
        Self { store: None, tx }
    }

    /// Hand `event` back to the loop after `delay` (the rest of a session
    /// waits for a running turn to end).
    ///
    /// # Panics
    /// When called outside a tokio runtime.
    pub fn again_later(&self, event: SessionEvent, delay: std::time::Duration) {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(event);
        });
    }

    /// The database is ready.
    pub fn set_store(&mut self, store: Arc<StoreThread>) {
        self.store = Some(store);
    }

    pub fn is_ready(&self) -> bool {
        self.store.is_some()
    }

    /// At the way out, after every save: the last job reads what the next
    /// start's first frame will show (for `screen`), closes the database
    /// and then writes that copy beside it (`store::screen`), so that the
    /// next start shows it without opening SQLite. Nothing when the
    /// database never opened.
    pub fn save_screen(&self, screen: FirstScreen) {
        let Some(store) = &self.store else {
            return;
        };
        let queued = store.close_with(move |db| {
            if let Err(why) = close_and_copy(db, screen) {
                tracing::warn!(target: "store", "first screen's copy not written: {why}");
            }
        });
        if let Err(e) = queued {
            tracing::warn!(target: "store", "first screen's copy not queued: {e}");
        }
    }

    /// Queue `job`; its event (or the failure) goes to the loop.
    fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut crate::store::Db) -> Result<T, StoreError> + Send + 'static,
        done: impl FnOnce(Result<T, String>) -> SessionEvent + Send + 'static,
    ) -> Result<(), String> {
        let Some(store) = &self.store else {
            return Err("the session database is not open (yet)".into());
        };
        let result = store.call_try(job);
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let event = done(result.await.map_err(|e| describe(&e)));
            let _ = tx.send(event);
        });
        Ok(())
    }

    fn problem_or<T>(
        f: impl FnOnce(T) -> SessionEvent,
    ) -> impl FnOnce(Result<T, String>) -> SessionEvent {
        move |result| match result {
            Ok(value) => f(value),
            Err(why) => SessionEvent::Problem(why),
        }
    }

    /// Commit a user message as unsent; the engine is told to send it once
    /// [`SessionEvent::Committed`] arrives. The session records the
    /// knowledge base and the model it is used with.
    pub fn commit(
        &self,
        conversation: ConversationId,
        text: String,
        kb: Option<String>,
        model: String,
    ) -> Result<(), String> {
        let stored = text.clone();
        self.run(
            move |db| {
                let session = session_of(conversation);
                let row =
                    db.append_message(session, NewMessage::user(stored, MessageStatus::Unsent))?;
                db.set_session_kb(session, kb.as_deref())?;
                db.set_session_model(session, Some(&model), None)?;
                Ok(row)
            },
            move |result| SessionEvent::Committed {
                conversation,
                text,
                result: result.map(|row| row.id as u64),
            },
        )
    }

    /// `/session new [NAME]`.
    pub fn create(&self, name: Option<String>) -> Result<(), String> {
        self.run(
            move |db| {
                let name = match name {
                    Some(name) => name,
                    None => {
                        let taken: Vec<String> =
                            db.list_sessions()?.into_iter().map(|s| s.name).collect();
                        fresh_name(&taken)
                    }
                };
                let row = db.create_session(&name)?;
                db.load_session(row.id)
            },
            Self::problem_or(|data: SessionData| {
                let note = format!("new session {:?}", data.session.name);
                SessionEvent::Open(Box::new(data), Some(note))
            }),
        )
    }

    /// `/session open NAME`.
    pub fn open(&self, name: String) -> Result<(), String> {
        self.run(
            move |db| {
                let row = db.session_by_name(&name)?.ok_or(StoreError::NotFound {
                    what: format!("session {name:?} (/session list lists them)"),
                })?;
                db.load_session(row.id)
            },
            Self::problem_or(|data| SessionEvent::Open(Box::new(data), None)),
        )
    }

    /// Open a session by id (after picking it in the list).
    pub fn open_id(&self, id: SessionId) -> Result<(), String> {
        self.run(
            move |db| db.load_session(id),
            Self::problem_or(|data| SessionEvent::Open(Box::new(data), None)),
        )
    }

    /// `/session rename NAME` of the open session.
    pub fn rename(&self, conversation: ConversationId, name: String) -> Result<(), String> {
        let new = name.clone();
        self.run(
            move |db| db.rename_session(session_of(conversation), &new),
            Self::problem_or(move |()| SessionEvent::Renamed { conversation, name }),
        )
    }

    /// Delete a session (the caller closed its conversation first), then
    /// show `next` when it was the open one: the most recent other session,
    /// or a new one.
    pub fn delete(&self, id: SessionId, then_open_next: bool) -> Result<(), String> {
        let tx = self.tx.clone();
        self.run(
            move |db| {
                let report = db.delete_session(id)?;
                let next = if then_open_next {
                    let row = match db.most_recent()? {
                        Some(row) => row,
                        None => db.create_session(&fresh_name(&[]))?,
                    };
                    Some(db.load_session(row.id)?)
                } else {
                    None
                };
                Ok((report, next))
            },
            move |result| match result {
                Ok((report, next)) => {
                    if let Some(data) = next {
                        let _ = tx.send(SessionEvent::Open(Box::new(data), None));
                    }
                    SessionEvent::Deleted(report)
                }
                Err(why) => SessionEvent::Problem(why),
            },
        )
    }

    /// Every session's name (for Tab completion), read off the loop.
    pub fn names(&self) -> Result<(), String> {
        self.run(
            |db| {
                Ok(db
                    .list_sessions()?
                    .into_iter()
                    .map(|s| s.name)
                    .collect::<Vec<_>>())
            },
            Self::problem_or(SessionEvent::Names),
        )
    }

    /// `/session list` and the picker.
    pub fn list(&self) -> Result<(), String> {
        self.run(
            |db| db.list_sessions(),
            Self::problem_or(SessionEvent::Listed),
        )
    }

    /// `/session export md|json`: a new file in `dir`, never overwriting.
    pub fn export(
        &self,
        conversation: ConversationId,
        json: bool,
        dir: PathBuf,
    ) -> Result<(), String> {
        self.run(
            move |db| {
                let data = db.load_session(session_of(conversation))?;
                let (text, ext) = if json {
                    (
                        serde_json::to_string_pretty(&crate::headless::sessions::export_json(
                            &data,
                        ))
                        .unwrap_or_default()
                            + "\n",
                        "json",
                    )
                } else {
                    (crate::headless::sessions::export_markdown(&data), "md")
                };
                let stem = crate::engine::slug(&data.session.name);
                let stem = if stem.is_empty() {
                    "session".to_owned()
                } else {
                    stem
                };
                for n in 0..1000 {
                    let name = if n == 0 {
                        format!("session-{stem}.{ext}")
                    } else {
                        format!("session-{stem}-{n}.{ext}")
                    };
                    let path = dir.join(name);
                    match crate::headless::sessions::write_new(&path, &text) {
                        Ok(()) => return Ok(path),
                        Err(_) if path.exists() => continue,
                        Err(e) => {
                            return Err(StoreError::Other {
                                detail: format!("{e:#}"),
                            });
                        }
                    }
                }
                Err(StoreError::Other {
                    detail: "too many exports of this session here".into(),
                })
            },
            Self::problem_or(SessionEvent::Exported),
        )
    }

    /// Has another process written since `version`? (`PRAGMA data_version`
    /// makes the check cheap.) Then the open session comes back reloaded.
    pub fn poll(&self, conversation: ConversationId, version: Option<i64>) {
        let _ = self.run(
            move |db| {
                let now = db.data_version()?;
                if version.is_none_or(|v| v == now) {
                    return Ok((now, None));
                }
                Ok((
                    now,
                    Some(Box::new(db.load_session(session_of(conversation))?)),
                ))
            },
            move |result| match result {
                Ok((version, changed)) => SessionEvent::Polled { version, changed },
                Err(why) => SessionEvent::Problem(why),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Db, Opened};

    fn events(rx: &mut mpsc::UnboundedReceiver<SessionEvent>) -> Vec<SessionEvent> {
        let mut all = Vec::new();
        while let Ok(event) = rx.try_recv() {
            all.push(event);
        }
        all
    }

    /// A session of `n` user messages, the last reply left running.
    fn session(path: &std::path::Path, n: usize) -> SessionId {
        let mut db = Db::open(path).expect("open").db;
        let s = db.create_session("long").expect("create");
        for i in 0..n {
            db.append_message(
                s.id,
                NewMessage::user(format!("m{i} {}", "x".repeat(200)), MessageStatus::Sent),
            )
            .expect("append");
        }
        db.append_message(s.id, crate::store::NewMessage::assistant_running(None))
            .expect("append");
        s.id
    }

    #[test]
    fn the_newest_page_is_shown_first_then_the_rest_and_the_marks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sessions.db");
        let id = session(&path, 450);
        let Opened { mut db, .. } = Db::open_unverified(&path).expect("open");
        assert!(!db.is_verified());
        let (tx, mut rx) = mpsc::unbounded_channel();
        reopen(&mut db, &tx).expect("reopen");
        assert!(db.is_verified());
        let mut seen = events(&mut rx).into_iter();
        let Some(SessionEvent::Open(tail, None)) = seen.next() else {
            panic!("the tail first");
        };
        assert_eq!(tail.messages.len(), TAIL_PAGE);
        assert_eq!(tail.messages[0].text.split(' ').next(), Some("m251"));
        let Some(SessionEvent::Rest { rest, first, note }) = seen.next() else {
            panic!("then the rest");
        };
        assert!(note.expect("a note").contains("1 reply(ies) cut short"));
        assert_eq!(first, Some(tail.messages[0].id as u64));
        assert_eq!(rest.messages.len(), 451 - TAIL_PAGE);
        assert!(rest.messages[0].text.starts_with("m0 "));
        assert!(seen.next().is_none());
        // The reply left running is marked, once the check has passed.
        let data = db.load_session(id).expect("load");
        assert_eq!(
            data.messages.last().map(|m| m.status),
            Some(MessageStatus::Incomplete)
        );
    }

    #[test]
    fn a_database_found_damaged_is_replaced_and_what_it_showed_is_closed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sessions.db");
        session(&path, 300);
        let mut bytes = std::fs::read(&path).expect("read");
        let len = bytes.len();
        for b in &mut bytes[len - 3 * 4096..] {
            *b = 0xA5;
        }
        std::fs::write(&path, &bytes).expect("write");
        let Opened { mut db, notice } = Db::open_unverified(&path).expect("open");
        assert_eq!(notice, None);
        let (tx, mut rx) = mpsc::unbounded_channel();
        reopen(&mut db, &tx).expect("reopen");
        let seen = events(&mut rx);
        let damaged = seen
            .iter()
            .position(|e| matches!(e, SessionEvent::Damaged))
            .expect("what was shown is closed");
        assert!(
            seen.iter().all(|e| !matches!(e, SessionEvent::Rest { .. })),
            "nothing more of the damaged file"
        );
        let Some(SessionEvent::Open(fresh, Some(notice))) = seen.last() else {
            panic!("a fresh session with a notice: {seen:?}");
        };
        assert!(seen.len() - 1 > damaged);
        assert!(notice.contains("damaged"), "{notice}");
        assert!(fresh.messages.is_empty());
        assert_eq!(std::fs::read(&path).ok().map(|b| b == bytes), Some(false));
    }

    #[test]
    fn the_newest_page_can_be_read_before_the_first_frame_and_the_rest_after() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sessions.db");
        // A screen taller than the page: the whole page is read.
        let tall = FirstScreen {
            width: 80,
            height: 1000,
        };
        // No database yet: nothing read, nothing made.
        assert!(read_early(Some(&path), tall).is_none());
        assert!(!path.exists());
        assert!(read_early(None, tall).is_none());

        let id = session(&path, 450);
        // Held by another process (readers too): not waited for.
        let locker = rusqlite::Connection::open(&path).expect("open");
        locker
            .execute_batch(
                "PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE; \
                 UPDATE sessions SET updated_ms = updated_ms;",
            )
            .expect("lock");
        assert!(read_early(Some(&path), tall).is_none());
        locker.execute_batch("COMMIT").expect("commit");
        drop(locker);

        let (early, data) = read_early(Some(&path), tall).expect("read early");
        assert_eq!(data.session.id, id);
        assert_eq!(data.messages.len(), FIRST_FRAME_PAGE);
        assert!(!early.db.is_verified(), "checked after the first frame");
        let Early {
            mut db,
            session,
            name,
            before,
            first,
            ..
        } = early;
        let (tx, mut rx) = mpsc::unbounded_channel();
        rest_of(&mut db, session, &name, before, first, &tx).expect("rest");
        assert!(db.is_verified());
        let mut seen = events(&mut rx).into_iter();
        let Some(SessionEvent::Rest { rest, first, note }) = seen.next() else {
            panic!("the rest");
        };
        assert_eq!(first, Some(data.messages[0].id as u64));
        assert_eq!(rest.messages.len(), 451 - FIRST_FRAME_PAGE);
        assert!(note.expect("a note").contains("1 reply(ies) cut short"));
        assert!(seen.next().is_none());
    }

    /// The first frame at `cols` x `rows`, drawn from `data` as the TUI
    /// opens it.
    fn first_frame(data: &SessionData, cols: u16, rows: u16) -> ratatui::buffer::Buffer {
        let (mut view, mut engine) = crate::tui::test_view(&[]);
        view.session = data.session.name.clone();
        view.current = crate::persist::open_in(&mut engine, data.clone(), true);
        draw(&view, &engine, cols, rows)
    }

    /// The first frame drawn from the last run's copy, as the TUI shows it:
    /// in its placeholder conversation.
    fn first_frame_of_copy(data: SessionData, cols: u16, rows: u16) -> ratatui::buffer::Buffer {
        let (mut view, mut engine) = crate::tui::test_view(&[]);
        view.session = data.session.name.clone();
        crate::persist::open_as(&mut engine, data, view.current, false);
        draw(&view, &engine, cols, rows)
    }

    fn draw(
        view: &crate::ui::ViewState,
        engine: &crate::engine::Engine,
        cols: u16,
        rows: u16,
    ) -> ratatui::buffer::Buffer {
        let mut terminal = ratatui::Terminal::new(ratatui::backend::TestBackend::new(cols, rows))
            .expect("terminal");
        let now = std::time::Instant::now();
        terminal
            .draw(|frame| crate::ui::draw(frame, engine, view, now))
            .expect("draw");
        terminal.backend().buffer().clone()
    }

    /// Leave as the TUI does: after every save, the copy of the next
    /// first screen, written once the database is closed.
    fn leave_through_the_thread(path: &std::path::Path, screen: FirstScreen) {
        let (store, _) = StoreThread::spawn(path).expect("store");
        let (tx, _rx) = mpsc::unbounded_channel();
        let sessions = Sessions {
            store: Some(Arc::new(store)),
            tx,
        };
        sessions.save_screen(screen);
        // The last handle joins the thread: its last job has run.
        drop(sessions);
    }

    #[test]
    fn the_last_runs_copy_draws_the_same_first_frame_until_the_database_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sessions.db");
        let id = session(&path, 300);
        let full = Db::open(&path)
            .expect("open")
            .db
            .load_session(id)
            .expect("load");
        let copy_path = crate::store::screen::path_of(&path);
        let view = crate::tui::test_view(&[]).0;
        for (cols, rows) in [(120, 40), (80, 24)] {
            let screen = FirstScreen::of(ratatui::layout::Size::new(cols, rows), &view);
            assert!(read_screen(Some(&path), screen).is_none(), "no copy yet");
            leave_through_the_thread(&path, screen);
            let copy = read_screen(Some(&path), screen).expect("the copy");
            assert!(copy.messages.len() < FIRST_FRAME_PAGE);
            assert_eq!(
                first_frame_of_copy(copy, cols, rows),
                first_frame(&full, cols, rows),
                "{cols}x{rows}"
            );
            // Made for another pane: not used.
            let taller = FirstScreen {
                height: screen.height + 1,
                ..screen
            };
            let narrower = FirstScreen {
                width: screen.width - 1,
                ..screen
            };
            assert!(read_screen(Some(&path), taller).is_none());
            assert!(read_screen(Some(&path), narrower).is_none());
            // Opening the database removes it.
            drop(Db::open(&path).expect("open"));
            assert!(!copy_path.exists());
        }

        // Written to since (by any program): not used.
        let screen = FirstScreen::of(ratatui::layout::Size::new(120, 40), &view);
        leave_through_the_thread(&path, screen);
        let other = rusqlite::Connection::open(&path).expect("open");
        other
            .execute("UPDATE sessions SET name = 'renamed' WHERE id = ?1", [id])
            .expect("write");
        drop(other);
        assert!(copy_path.exists());
        assert!(
            read_screen(Some(&path), screen).is_none(),
            "a stale copy was used"
        );

        // A delete removes a copy another program left beside the file.
        let mut db = Db::open(&path).expect("open").db;
        let tail = db.load_session_tail(id, 5).expect("tail");
        crate::store::screen::write(&path, tail, screen.width, screen.rows()).expect("write");
        db.delete_session(id).expect("delete");
        assert!(!copy_path.exists(), "a copy of a deleted session's text");
    }

    #[test]
    fn before_the_first_frame_only_what_it_shows_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sessions.db");
        let id = session(&path, 450);
        // Replies citing passages take more rows: they count as such.
        let mut db = Db::open(&path).expect("open").db;
        for i in 0..6 {
            let mut reply = NewMessage::new(
                crate::domain::Role::Assistant,
                format!("reply {i} {}", "y ".repeat(75 * i)),
                MessageStatus::Done,
            );
            reply.passages = (0..i)
                .map(|n| crate::domain::Passage {
                    id: format!("lore.md#{n}"),
                    title: format!("Lore {n}"),
                    source: "lore.md".into(),
                    kind: None,
                    heading: None,
                    text: format!("passage {n}"),
                    score: 1.0,
                    entities: Vec::new(),
                    location: crate::domain::Location::default(),
                })
                .collect();
            db.append_message(id, reply).expect("append");
        }
        let full = db.load_session(id).expect("load");
        drop(db);
        let view = crate::tui::test_view(&[]).0;
        for (cols, rows) in [(120, 40), (80, 24), (200, 60), (60, 12)] {
            let size = ratatui::layout::Size::new(cols, rows);
            let screen = FirstScreen::of(size, &view);
            let (_, early) = read_early(Some(&path), screen).expect("read early");
            if rows < 60 {
                assert!(early.messages.len() < FIRST_FRAME_PAGE, "{cols}x{rows}");
            }
            assert_eq!(
                first_frame(&early, cols, rows),
                first_frame(&full, cols, rows),
                "{cols}x{rows}: {} messages read",
                early.messages.len()
            );
        }
    }
}
