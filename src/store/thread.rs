//! [`StoreThread`]: the session database on its own OS thread. Callers send
//! jobs (closures over `&mut Db`) through a channel and get each result back
//! through a oneshot, so the async UI loop only ever awaits a future and
//! never waits on the disk itself.
//!
//! Invariants:
//! - Jobs run one at a time, in the order they were sent.
//! - A job that panics is contained: its caller gets
//!   [`StoreError::ThreadGone`] and the thread goes on with the next job
//!   (an open transaction rolls back as the panic unwinds).
//! - Dropping the handle closes the channel, lets the thread finish every job
//!   already queued, closes the database and joins the thread.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::mpsc;
use std::thread;

use super::{Db, Opened, StoreError};

/// A job for the thread: one that uses the connection, or the last one,
/// which is given the connection to close.
enum Job {
    Run(Box<dyn FnOnce(&mut Db) + Send + 'static>),
    Close(Box<dyn FnOnce(Db) + Send + 'static>),
}

/// Owner of the database thread. Share it behind an `Arc`; it is `Sync`.
pub struct StoreThread {
    jobs: Option<mpsc::Sender<Job>>,
    handle: Option<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for StoreThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreThread")
            .field("running", &self.jobs.is_some())
            .finish()
    }
}

impl StoreThread {
    /// Opens the database at `path` (see [`Db::open`]) and starts its thread.
    /// The second value is the open's notice for the user, if any.
    pub fn spawn(path: impl AsRef<Path>) -> Result<(StoreThread, Option<String>), StoreError> {
        let Opened { db, notice } = Db::open(path)?;
        Ok((StoreThread::with_db(db)?, notice))
    }

    /// As [`StoreThread::spawn`] with [`Db::open_unverified`]: the first
    /// job may read before the integrity check (every write checks first).
    pub fn spawn_unverified(
        path: impl AsRef<Path>,
    ) -> Result<(StoreThread, Option<String>), StoreError> {
        let Opened { db, notice } = Db::open_unverified(path)?;
        Ok((StoreThread::with_db(db)?, notice))
    }

    /// Starts the thread over an already open database.
    pub fn with_db(db: Db) -> Result<StoreThread, StoreError> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let handle = thread::Builder::new()
            .name("loreweave-store".to_string())
            .spawn(move || run(db, rx))
            .map_err(|e| StoreError::io("could not start the session database thread", &e))?;
        Ok(StoreThread {
            jobs: Some(jobs),
            handle: Some(handle),
        })
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.jobs
            .as_ref()
            .ok_or(StoreError::ThreadGone)?
            .send(job)
            .map_err(|_| StoreError::ThreadGone)
    }

    /// Queues `job` and returns a future of its result. The job is queued
    /// now, whether or not the future is ever polled.
    pub fn call<T, F>(&self, job: F) -> impl Future<Output = Result<T, StoreError>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&mut Db) -> T + Send + 'static,
    {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let sent = self.send(Job::Run(Box::new(move |db| {
            let _ = reply.send(job(db));
        })));
        async move {
            sent?;
            rx.await.map_err(|_| StoreError::ThreadGone)
        }
    }

    /// [`StoreThread::call`] for a job that itself returns a store result.
    pub fn call_try<T, F>(
        &self,
        job: F,
    ) -> impl Future<Output = Result<T, StoreError>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&mut Db) -> Result<T, StoreError> + Send + 'static,
    {
        let result = self.call(job);
        async move { result.await? }
    }

    /// Runs `job` on the thread and blocks until it is done (headless code;
    /// never call it from an async task).
    pub fn call_blocking<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Db) -> T + Send + 'static,
    {
        let (reply, rx) = mpsc::sync_channel(1);
        self.send(Job::Run(Box::new(move |db| {
            let _ = reply.send(job(db));
        })))?;
        rx.recv().map_err(|_| StoreError::ThreadGone)
    }

    /// Queues the last job: after every job queued before it, `job` is
    /// given the connection (to close it and then act on the closed
    /// files); jobs queued after it fail with [`StoreError::ThreadGone`].
    pub fn close_with(&self, job: impl FnOnce(Db) + Send + 'static) -> Result<(), StoreError> {
        self.send(Job::Close(Box::new(job)))
    }
}

fn run(mut db: Db, jobs: mpsc::Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Run(job) => {
                if catch_unwind(AssertUnwindSafe(|| job(&mut db))).is_err() {
                    tracing::error!(target: "store", "a session database job panicked; going on");
                }
            }
            Job::Close(job) => {
                // Later jobs find the channel closed.
                drop(jobs);
                if catch_unwind(AssertUnwindSafe(|| job(db))).is_err() {
                    tracing::error!(target: "store", "the session database's last job panicked");
                }
                return;
            }
        }
    }
}

impl Drop for StoreThread {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
