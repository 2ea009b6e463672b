//! Start-up step timings: what runs between process start and the TUI's
//! first frame, each step's share measured, so that the start-up bench
//! (`scripts/bench-startup`) can say where the time goes.
//!
//! The binary calls [`begin`] first thing and [`mark`] after each step; the
//! TUI calls [`first_frame_done`] once its first frame is out, which logs one line
//! (`start-up steps`) and, with `LOREWEAVE_STARTUP_TIMINGS` set, keeps the
//! same line for [`print_pending`] to write to stderr once the terminal is
//! restored (stderr is the screen before that). The line ends with the
//! memory at the first frame (peak, heap and stacks, mapped files).
//!
//! What can wait for the first frame is queued with [`after_first_frame`]
//! (the log writer's thread, for the TUI) and run by [`first_frame_done`].
//!
//! Invariants: marks are cheap (a clock read and a push under an
//! uncontended lock, at most [`MAX_MARKS`] of them); nothing here can fail
//! or change behaviour; without [`begin`] every call is a no-op.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Marks beyond this are dropped: a bound, not an expected count.
const MAX_MARKS: usize = 32;

static START: OnceLock<Instant> = OnceLock::new();
static MARKS: Mutex<Vec<(&'static str, Duration)>> = Mutex::new(Vec::new());
static PENDING: Mutex<Option<String>> = Mutex::new(None);
type Deferred = Box<dyn FnOnce() + Send>;
static DEFERRED: Mutex<Vec<Deferred>> = Mutex::new(Vec::new());

/// Start the clock (the first call wins); returns the start instant.
pub fn begin() -> Instant {
    *START.get_or_init(Instant::now)
}

/// The step `name` just ended.
pub fn mark(name: &'static str) {
    let Some(start) = START.get() else { return };
    let at = start.elapsed();
    if let Ok(mut marks) = MARKS.lock()
        && marks.len() < MAX_MARKS
    {
        marks.push((name, at));
    }
}

/// Run `job` once the TUI's first frame is out, before its loop starts.
pub fn after_first_frame(job: impl FnOnce() + Send + 'static) {
    if let Ok(mut jobs) = DEFERRED.lock() {
        jobs.push(Box::new(job));
    }
}

/// The first frame is out: run what waited for it (in order), then
/// log the steps with the memory at the first frame.
pub fn first_frame_done() {
    let jobs = DEFERRED
        .lock()
        .map(|mut jobs| std::mem::take(&mut *jobs))
        .unwrap_or_default();
    // Memory as it is at the first frame, before what waited runs.
    let memory = memory();
    for job in jobs {
        job();
    }
    mark("deferred until after the first frame");
    report(&memory);
}

/// Each step with its own duration, in order: `name 0.12 ms, ...`.
pub fn steps() -> String {
    let Ok(marks) = MARKS.lock() else {
        return String::new();
    };
    let mut last = Duration::ZERO;
    marks
        .iter()
        .map(|&(name, at)| {
            let took = at.saturating_sub(last);
            last = at;
            format!("{name} {:.2} ms", took.as_secs_f64() * 1e3)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Log the steps so far and `memory` (as [`memory`] read it at the first
/// frame).
fn report(memory: &str) {
    let Some(start) = START.get() else { return };
    let steps = steps();
    let total_ms = start.elapsed().as_secs_f64() * 1e3;
    tracing::info!(total_ms, steps = %steps, first_frame_memory = %memory, "start-up steps");
    if std::env::var_os("LOREWEAVE_STARTUP_TIMINGS").is_some()
        && let Ok(mut pending) = PENDING.lock()
    {
        *pending = Some(format!(
            "loreweave: start-up steps ({total_ms:.2} ms in all): {steps}; at the first frame: {memory}"
        ));
    }
}

/// Peak and current resident memory now, split into heap and stacks
/// (anonymous) and mapped files (the binary's pages): `VmHWM 7.9 MB, ...`.
/// Empty where `/proc/self/status` is not there.
fn memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            if !matches!(key, "VmHWM" | "RssAnon" | "RssFile" | "Threads") {
                return None;
            }
            let value = value.trim();
            Some(match value.strip_suffix(" kB") {
                Some(kb) => format!("{key} {:.1} MB", kb.trim().parse::<f64>().ok()? / 1024.0),
                None => format!("{key} {value}"),
            })
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Write what [`first_frame_done`] kept for stderr, if anything (after the terminal
/// is restored).
pub fn print_pending() {
    if let Ok(mut pending) = PENDING.lock()
        && let Some(line) = pending.take()
    {
        eprintln!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_listed_in_order_with_their_own_durations() {
        begin();
        mark("one");
        mark("two");
        let steps = steps();
        let one = steps.find("one ").expect("one is listed");
        let two = steps.find("two ").expect("two is listed");
        assert!(one < two, "{steps}");
        assert!(steps.contains(" ms, "), "{steps}");
    }

    #[test]
    fn deferred_jobs_run_once_when_the_first_frame_is_done() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        begin();
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = runs.clone();
        after_first_frame(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(runs.load(Ordering::SeqCst), 0);
        first_frame_done();
        first_frame_done();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
