//! The session database's errors, sorted by what the user can do about them
//! (free disk space, fix permissions, close the other program, upgrade).
//!
//! Invariant: every SQLite failure maps to exactly one variant by its primary
//! result code ([`StoreError::from`]); messages are whole sentences a status
//! line can show as they are.

use std::io;
use std::path::PathBuf;

use rusqlite::ErrorCode;

/// Why a session-database operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the disk is full: the session database could not be written ({detail})")]
    DiskFull { detail: String },

    #[error("the session database is read-only: nothing can be saved ({detail})")]
    ReadOnly { detail: String },

    #[error(
        "the session database is locked by another program and stayed locked past the busy \
         timeout ({detail})"
    )]
    Locked { detail: String },

    #[error(
        "the session database was written by a newer loreweave (schema version {found}; this \
         build knows up to {known}); it was left untouched: use a newer loreweave"
    )]
    NewerSchema { found: i64, known: i64 },

    #[error(
        "the session database is damaged ({detail}); it is moved aside and a fresh one started \
         at the next start"
    )]
    Corrupt { detail: String },

    #[error("the corrupt session database could not be moved aside to {to}: {detail}")]
    MoveAsideFailed { to: PathBuf, detail: String },

    #[error("invalid session name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },

    #[error("a session named {name:?} already exists")]
    DuplicateName { name: String },

    #[error("{what} not found")]
    NotFound { what: String },

    #[error("the session database thread has stopped")]
    ThreadGone,

    #[error("{context}: {detail}")]
    Io {
        context: String,
        kind: io::ErrorKind,
        detail: String,
    },

    #[error("session database error: {detail}")]
    Other { detail: String },
}

impl StoreError {
    /// An I/O failure while doing `context`, sorted like SQLite's.
    pub fn io(context: impl Into<String>, e: &io::Error) -> StoreError {
        let detail = e.to_string();
        match e.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                StoreError::DiskFull { detail }
            }
            io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::PermissionDenied => {
                StoreError::ReadOnly { detail }
            }
            kind => StoreError::Io {
                context: context.into(),
                kind,
                detail,
            },
        }
    }

    /// The database file is damaged (or is not a database at all).
    pub fn is_corrupt(&self) -> bool {
        matches!(self, StoreError::Corrupt { .. })
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        let detail = e.to_string();
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::DiskFull { detail },
            Some(ErrorCode::ReadOnly) | Some(ErrorCode::PermissionDenied) => {
                StoreError::ReadOnly { detail }
            }
            Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
                StoreError::Locked { detail }
            }
            Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase) => {
                StoreError::Corrupt { detail }
            }
            _ => StoreError::Other { detail },
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Other {
            detail: format!("could not encode a JSON column: {e}"),
        }
    }
}
