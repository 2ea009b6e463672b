//! Schema migrations: numbered SQL files embedded in the binary, tracked by
//! `PRAGMA user_version`.
//!
//! Invariants:
//! - Migration `n` (file `migrations/000n_*.sql`) takes the schema from
//!   version `n - 1` to `n`; they run in order, each in its own IMMEDIATE
//!   transaction together with the `user_version` bump, so a crash leaves the
//!   database at a whole version.
//! - A database whose `user_version` is above [`SCHEMA_VERSION`] is refused
//!   before anything is written to it (never downgraded).
//! - Adding a migration comes with a fixture `tests/fixtures/store/vN.sqlite`
//!   written by the previous schema (see `tests/store_migrations.rs`).

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// The migrations, in order; index `i` produces schema version `i + 1`.
const MIGRATIONS: &[&str] = &[include_str!("migrations/0001_init.sql")];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The database's schema version.
pub(crate) fn user_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Refuses a database from a newer build.
pub(crate) fn refuse_newer(found: i64) -> Result<(), StoreError> {
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found,
            known: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Brings the schema up to [`SCHEMA_VERSION`]. Safe against another process
/// migrating at the same time: each step re-reads the version under the
/// write lock.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found = user_version(conn)?;
    refuse_newer(found)?;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let target = i as i64 + 1;
        if found >= target {
            continue;
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = user_version(&tx)?;
        refuse_newer(current)?;
        if current >= target {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", target)?;
        tx.commit()?;
    }
    Ok(())
}
