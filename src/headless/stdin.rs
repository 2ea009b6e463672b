//! Standard input for `ask` and `scenario`: `-` in place of the question
//! (or prompt) reads it from stdin, and with a question given, text piped on
//! stdin becomes a context passage (`cat notes.md | loreweave ask "..."`),
//! the first passage of the answer, cited `[1]` like any passage.
//!
//! Invariants:
//! - fd 0 is read only when `fstat` says it is a FIFO (a pipe) or a regular
//!   file. A terminal, a character device such as `/dev/null`, a socket or a
//!   closed descriptor is never read and never waited on (Rust's runtime
//!   reopens a closed fd 0 on `/dev/null` at start, so "closed" shows as a
//!   character device).
//! - At most `cap + 1` bytes are ever read: input over the cap is refused
//!   without draining the producer.
//! - The text must be UTF-8; whitespace-only piped context adds no passage.

use std::fs::{File, FileType};
use std::io::{IsTerminal, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::time::Duration;

use crate::domain::{Location, Passage};

/// Default cap on what is read from stdin (`--max-stdin` changes it).
pub const DEFAULT_MAX_STDIN: u64 = 1 << 20;

/// The context passage's source, as citations show it.
pub const SOURCE: &str = "stdin";

/// After this long with a pipe still open and silent, say on stderr what
/// loreweave is waiting for (it keeps waiting: a pipe is read to its end).
const HINT_AFTER: Duration = Duration::from_secs(3);

/// What fd 0 is, as far as reading it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdinKind {
    /// A terminal: never read.
    Terminal,
    /// A pipe (FIFO): read to its end (or the cap).
    Pipe,
    /// A regular file (`< notes.md`): read to its end (or the cap).
    File,
    /// A character device such as `/dev/null`, a socket, or a closed or
    /// unreadable descriptor: never read.
    Other,
}

impl StdinKind {
    /// Whether loreweave reads stdin of this kind.
    pub fn is_read(self) -> bool {
        matches!(self, StdinKind::Pipe | StdinKind::File)
    }

    fn describe(self) -> &'static str {
        match self {
            StdinKind::Terminal => "a terminal",
            StdinKind::Pipe => "a pipe",
            StdinKind::File => "a file",
            StdinKind::Other => "not a pipe or a file (e.g. /dev/null or closed)",
        }
    }
}

/// What a file type means for reading it as stdin.
pub fn classify(file_type: FileType) -> StdinKind {
    if file_type.is_fifo() {
        StdinKind::Pipe
    } else if file_type.is_file() {
        StdinKind::File
    } else {
        StdinKind::Other
    }
}

/// What this process's fd 0 is (`isatty`, then `fstat`).
pub fn stdin_kind() -> StdinKind {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return StdinKind::Terminal;
    }
    // fstat through a duplicate, so no unsafe code touches fd 0 itself.
    let Ok(fd) = stdin.as_fd().try_clone_to_owned() else {
        return StdinKind::Other;
    };
    match File::from(fd).metadata() {
        Ok(meta) => classify(meta.file_type()),
        Err(_) => StdinKind::Other,
    }
}

/// Why stdin could not be used. All of these are the invocation's fault,
/// found before any request runs: exit code 2 (bad usage).
#[derive(Debug, thiserror::Error)]
pub enum StdinError {
    #[error(
        "standard input is over the {} cap; pass --max-stdin SIZE to raise it, or send less",
        spoken_size(*cap)
    )]
    TooLarge { cap: u64 },
    #[error("standard input is not UTF-8 text (invalid bytes at byte {at})")]
    NotText { at: usize },
    #[error("cannot read standard input: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "`-` reads the {what} from standard input, but standard input is {}; pipe it in, e.g. `echo \"...\" | loreweave {command} -`",
        kind.describe()
    )]
    NotPiped {
        what: &'static str,
        command: &'static str,
        kind: StdinKind,
    },
    #[error("standard input held no {what} (`-` reads the {what} from it)")]
    Empty { what: &'static str },
}

/// `1048576` -> "1 MiB (1048576 bytes)"; a size that is no whole number
/// of KiB or MiB in bytes only.
fn spoken_size(bytes: u64) -> String {
    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB ({bytes} bytes)", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB ({bytes} bytes)", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// Read `reader` to its end as UTF-8 text of at most `cap` bytes. Never
/// reads more than `cap + 1` bytes.
pub fn read_capped(reader: impl Read, cap: u64) -> Result<String, StdinError> {
    let mut bytes = Vec::new();
    reader.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(StdinError::TooLarge { cap });
    }
    // A byte-order mark is not part of the text.
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    match std::str::from_utf8(body) {
        Ok(text) => Ok(text.to_owned()),
        Err(e) => Err(StdinError::NotText {
            at: e.valid_up_to(),
        }),
    }
}

/// The context passage for piped `text`: source `stdin`, its whole text, its
/// line range; `None` when the text is only whitespace.
pub fn context_passage(text: &str) -> Option<Passage> {
    if text.trim().is_empty() {
        return None;
    }
    let lines = text.lines().count().max(1);
    Some(Passage {
        id: format!("{SOURCE}#0"),
        title: "piped input".into(),
        source: SOURCE.into(),
        kind: None,
        heading: None,
        text: text.to_owned(),
        // Not ranked: it is given, not retrieved.
        score: 0.0,
        entities: Vec::new(),
        location: Location {
            trail: Vec::new(),
            lines: Some((1, lines)),
        },
    })
}

/// A job's text and its context once stdin has been looked at.
#[derive(Debug, Clone, PartialEq)]
pub struct JobInput {
    /// The question or prompt.
    pub text: String,
    /// Passages given on stdin (none, or the one piped text).
    pub context: Vec<Passage>,
}

/// Which argument stdin may stand in for.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    /// "question" or "prompt".
    pub what: &'static str,
    /// "ask" or "scenario".
    pub command: &'static str,
}

pub const ASK: Slot = Slot {
    what: "question",
    command: "ask",
};
pub const SCENARIO: Slot = Slot {
    what: "prompt",
    command: "scenario",
};

/// Resolve `arg` against this process's stdin: `-` reads the text from
/// it; any other text keeps stdin, when it is a pipe or a file, as context.
/// A terminal, `/dev/null` or a closed stdin is never read.
pub async fn resolve(arg: String, slot: Slot, cap: u64) -> Result<JobInput, StdinError> {
    resolve_from(arg, slot, cap, stdin_kind(), read_stdin).await
}

/// [`resolve`] with what stdin is and how it is read given (tests).
pub async fn resolve_from<F, Fut>(
    arg: String,
    slot: Slot,
    cap: u64,
    kind: StdinKind,
    read: F,
) -> Result<JobInput, StdinError>
where
    F: FnOnce(u64) -> Fut,
    Fut: std::future::Future<Output = Result<String, StdinError>>,
{
    if arg == "-" {
        if !kind.is_read() {
            return Err(StdinError::NotPiped {
                what: slot.what,
                command: slot.command,
                kind,
            });
        }
        let text = read(cap).await?;
        let text = text.trim();
        if text.is_empty() {
            return Err(StdinError::Empty { what: slot.what });
        }
        return Ok(JobInput {
            text: text.to_owned(),
            context: Vec::new(),
        });
    }
    let context = if kind.is_read() {
        context_passage(&read(cap).await?).into_iter().collect()
    } else {
        Vec::new()
    };
    Ok(JobInput { text: arg, context })
}

/// Read this process's stdin on the blocking pool. When a pipe stays open
/// and silent for a while, say on stderr what is awaited (once).
async fn read_stdin(cap: u64) -> Result<String, StdinError> {
    let task = tokio::task::spawn_blocking(move || read_capped(std::io::stdin().lock(), cap));
    tokio::pin!(task);
    let joined = tokio::select! {
        joined = &mut task => joined,
        () = tokio::time::sleep(HINT_AFTER) => {
            eprintln!(
                "loreweave: reading standard input (a pipe that is still open); \
                 run with </dev/null if there is nothing to pipe in"
            );
            task.await
        }
    };
    joined.map_err(|e| StdinError::Io(std::io::Error::other(e)))?
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn given(text: &'static str) -> Result<String, StdinError> {
        Ok(text.to_owned())
    }

    #[test]
    fn reads_up_to_the_cap_and_refuses_one_byte_more() {
        assert_eq!(read_capped(&b"12345"[..], 5).unwrap(), "12345");
        let err = read_capped(&b"123456"[..], 5).unwrap_err();
        assert!(matches!(err, StdinError::TooLarge { cap: 5 }), "{err:?}");
        assert!(err.to_string().contains("--max-stdin"), "{err}");
    }

    #[test]
    fn never_reads_past_the_cap() {
        // An endless reader: the cap ends the read.
        let endless = std::io::repeat(b'a');
        let err = read_capped(endless, 1000).unwrap_err();
        assert!(matches!(err, StdinError::TooLarge { cap: 1000 }));
    }

    #[test]
    fn refuses_bytes_that_are_not_utf8_and_drops_a_bom() {
        let err = read_capped(&b"ok\xff\xfe"[..], 100).unwrap_err();
        assert!(matches!(err, StdinError::NotText { at: 2 }), "{err:?}");
        assert_eq!(read_capped(&b"\xEF\xBB\xBFhi"[..], 100).unwrap(), "hi");
    }

    #[test]
    fn the_cap_is_said_in_words() {
        assert_eq!(spoken_size(1 << 20), "1 MiB (1048576 bytes)");
        assert_eq!(spoken_size(4096), "4 KiB (4096 bytes)");
        assert_eq!(spoken_size(1000), "1000 bytes");
    }

    #[test]
    fn only_pipes_and_files_are_read() {
        assert!(StdinKind::Pipe.is_read());
        assert!(StdinKind::File.is_read());
        assert!(!StdinKind::Terminal.is_read());
        assert!(!StdinKind::Other.is_read());
    }

    #[test]
    fn file_types_classify_from_fstat() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(classify(meta.file_type()), StdinKind::File);
        let null = std::fs::metadata("/dev/null").unwrap();
        assert_eq!(classify(null.file_type()), StdinKind::Other);
        assert_eq!(
            classify(std::fs::metadata(dir.path()).unwrap().file_type()),
            StdinKind::Other
        );
    }

    #[test]
    fn the_context_passage_spans_the_text() {
        let p = context_passage("line one\nline two\n").unwrap();
        assert_eq!(p.source, "stdin");
        assert_eq!(p.location.lines, Some((1, 2)));
        assert_eq!(p.text, "line one\nline two\n");
        assert!(context_passage(" \n\t\n").is_none());
    }

    #[tokio::test]
    async fn dash_reads_the_question_and_adds_no_context() {
        let input = resolve_from("-".into(), ASK, 100, StdinKind::Pipe, |_| {
            given("  who guards the waystone?\n")
        })
        .await
        .unwrap();
        assert_eq!(input.text, "who guards the waystone?");
        assert!(input.context.is_empty());
    }

    #[tokio::test]
    async fn dash_with_nothing_to_read_is_refused_without_reading() {
        for kind in [StdinKind::Terminal, StdinKind::Other] {
            let err = resolve_from("-".into(), SCENARIO, 100, kind, |_| async {
                panic!("stdin must not be read")
            })
            .await
            .unwrap_err();
            assert!(matches!(err, StdinError::NotPiped { .. }), "{err:?}");
            assert!(err.to_string().contains("loreweave scenario -"), "{err}");
        }
        let err = resolve_from("-".into(), ASK, 100, StdinKind::Pipe, |_| given("\n  \n"))
            .await
            .unwrap_err();
        assert!(matches!(err, StdinError::Empty { what: "question" }));
    }

    #[tokio::test]
    async fn a_question_with_piped_text_gets_it_as_context() {
        let input = resolve_from("summarise".into(), ASK, 100, StdinKind::File, |cap| {
            assert_eq!(cap, 100);
            given("The notes.")
        })
        .await
        .unwrap();
        assert_eq!(input.text, "summarise");
        assert_eq!(input.context.len(), 1);
        assert_eq!(input.context[0].text, "The notes.");
    }

    #[tokio::test]
    async fn a_terminal_or_dev_null_is_never_read_for_context() {
        for kind in [StdinKind::Terminal, StdinKind::Other] {
            let input = resolve_from("q".into(), ASK, 100, kind, |_| async {
                panic!("stdin must not be read")
            })
            .await
            .unwrap();
            assert!(input.context.is_empty());
        }
    }
}
