//! The session database: conversations, their messages, scenarios and
//! request lifecycle summaries in SQLite (rusqlite, bundled), in WAL mode,
//! on a thread of its own.
//!
//! - [`Db`] (in `db`) is the synchronous connection with every query;
//!   [`Db::open`] sets the pragmas, migrates, moves a damaged file aside and
//!   finishes a log truncation a delete left pending.
//! - [`StoreThread`] owns a `Db` on a dedicated thread; the rest of the
//!   program sends it closures and awaits their results.
//! - [`model`] holds the plain rows.
//! - A session reopens from its end: [`Db::load_session_paged`] hands over
//!   its newest page of messages first, then reads the older ones, in one
//!   read snapshot.
//!
//! Invariants: nothing here imports the engine or the UI (only
//! `crate::domain`); a write has committed (fsynced, `synchronous=FULL`)
//! when its method returns `Ok`; the schema version is `PRAGMA
//! user_version`, and a newer one is refused, never downgraded.

mod db;
mod error;
mod migrate;
pub mod model;
pub mod screen;
mod thread;

#[cfg(test)]
mod tests;

pub use db::{BUSY_TIMEOUT, Db, MAX_NAME_CHARS, Opened, REQUEST_BOUND, now_ms, validate_name};
pub use error::StoreError;
pub use migrate::SCHEMA_VERSION;
pub use model::{
    DeleteReport, InterruptReport, MessageId, MessageRow, MessageStatus, MessageUpdate, NewMessage,
    RequestRow, ScenarioRow, SessionData, SessionId, SessionRest, SessionRow, SessionSummary,
    SessionTail,
};
pub use thread::StoreThread;
