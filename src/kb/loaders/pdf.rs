//! PDF text extraction, in a child process.
//!
//! PDF parsers panic, loop and exhaust memory on bad files, and
//! `catch_unwind` catches none of a hang, an abort or an OOM kill. So the
//! parent ([`load_pdf`]) runs `EXE __extract-pdf - --max-memory N` (EXE is
//! [`LoadOptions::extractor`] or this program), writes the PDF to its stdin,
//! reads its stdout with a cap, and kills it at [`LoadOptions::pdf_timeout`].
//! The child ([`extract_pdf_command`]) caps its own address space, extracts
//! the text with `pdf-extract` and writes it to stdout after a header line
//! (`%loreweave-pdf-text 1`), pages separated by a form feed (`\x0c`), exit
//! 0; on failure it prints one short reason on stderr and exits non-zero.
//! The parent refuses output without the header: the program it ran was not
//! the extractor.
//!
//! Invariants:
//! - The parent never blocks past the timeout (plus a short grace to
//!   collect output), whatever the child does; every failure of the child is
//!   a [`Skip::ParserFailure`] with a one-line reason.
//! - The "source text" of a PDF document is the extracted text with a
//!   `# Page N` heading line before each page that has text (so chunks cite
//!   their page); it is exactly the body, so `body_line` is 1. Extracted
//!   lines that would read as headings or code fences are escaped with `\`.
//! - The title is the file stem of the source.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::super::markdown::fallback_title;
use super::{Document, LoadOptions, Skip, document_from_lines, escape_markup, split_lines};

/// The hidden subcommand that runs the extractor.
pub const EXTRACT_PDF_COMMAND: &str = "__extract-pdf";

/// Separates pages in the extractor's output.
const PAGE_BREAK: char = '\x0c';

/// First line of the extractor's output: proves that the program run is
/// really `loreweave __extract-pdf` (with `extractor: None` from a test or
/// bench binary, `current_exe` is not loreweave).
const OUTPUT_HEADER: &str = "%loreweave-pdf-text 1\n";

/// How often the parent checks whether the child has finished.
const POLL: Duration = Duration::from_millis(10);

/// How long the parent waits for the output pipes to close once the child
/// is gone (a grandchild may hold them open).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Most bytes of the child's stderr kept.
const MAX_STDERR: u64 = 64 * 1024;

/// Longest failure reason kept, in characters.
const MAX_REASON_CHARS: usize = 200;

/// Extract a PDF's text in a child process and make it a document.
pub(super) fn load_pdf(source: &str, bytes: &[u8], opts: &LoadOptions) -> Result<Document, Skip> {
    // Readers accept the header anywhere in the first KiB.
    let head = bytes.get(..1024).unwrap_or(bytes);
    if !head.windows(5).any(|window| window == b"%PDF-") {
        return Err(Skip::ParserFailure(
            "not a PDF (no %PDF- header)".to_owned(),
        ));
    }
    let text = run_extractor(bytes, opts)?;
    Ok(pdf_document(source, &text))
}

/// Pages (form-feed separated) as `# Page N` sections.
fn pdf_document(source: &str, text: &str) -> Document {
    let mut lines: Vec<String> = Vec::new();
    for (n, page) in text.split(PAGE_BREAK).enumerate() {
        if page.trim().is_empty() {
            continue;
        }
        if !lines.is_empty() {
            lines.push(String::new());
        }
        lines.push(format!("# Page {}", n + 1));
        lines.push(String::new());
        let page_lines: Vec<&str> = split_lines(page.trim_matches(['\r', '\n']))
            .into_iter()
            .map(str::trim_end)
            .collect();
        lines.extend(page_lines.into_iter().map(escape_markup));
    }
    document_from_lines(source, fallback_title(source), &lines, None)
}

/// What the stdout reader saw.
enum Output {
    Complete(Vec<u8>),
    TooLarge,
    Failed(String),
}

fn run_extractor(bytes: &[u8], opts: &LoadOptions) -> Result<String, Skip> {
    let exe = match &opts.extractor {
        Some(exe) => exe.clone(),
        None => std::env::current_exe().map_err(|error| {
            Skip::ParserFailure(format!("cannot find the PDF extractor: {error}"))
        })?,
    };
    let mut child = Command::new(&exe)
        .arg(EXTRACT_PDF_COMMAND)
        .arg("-")
        .arg("--max-memory")
        .arg(opts.pdf_memory.to_string())
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| {
            Skip::ParserFailure(format!(
                "cannot run the PDF extractor {}: {error}",
                exe.display()
            ))
        })?;

    // Threads own their pipes and data, so that a child that neither reads
    // nor exits cannot block the parent: it is killed at the deadline.
    if let Some(mut stdin) = child.stdin.take() {
        let input = bytes.to_vec();
        thread::spawn(move || {
            // A child that exits early closes the pipe: not our failure.
            let _ = stdin.write_all(&input);
        });
    }
    let cap = opts.max_file_size.saturating_mul(4).max(1 << 20);
    let too_large = Arc::new(AtomicBool::new(false));
    let (out_tx, out_rx) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        let too_large = Arc::clone(&too_large);
        thread::spawn(move || {
            let mut buf = Vec::new();
            let output = match stdout.take(cap.saturating_add(1)).read_to_end(&mut buf) {
                Ok(_) if buf.len() as u64 > cap => {
                    too_large.store(true, Ordering::SeqCst);
                    Output::TooLarge
                }
                Ok(_) => Output::Complete(buf),
                Err(error) => Output::Failed(error.to_string()),
            };
            let _ = out_tx.send(output);
        });
    }
    let (err_tx, err_rx) = mpsc::channel();
    if let Some(stderr) = child.stderr.take() {
        thread::spawn(move || {
            let mut stderr = stderr;
            let mut buf = Vec::new();
            let _ = (&mut stderr).take(MAX_STDERR).read_to_end(&mut buf);
            // Keep draining so that a chatty child never blocks on a full pipe.
            let _ = std::io::copy(&mut stderr, &mut std::io::sink());
            let _ = err_tx.send(buf);
        });
    }

    let status = wait_with_deadline(&mut child, opts.pdf_timeout, &too_large)?;
    let stderr = err_rx
        .recv_timeout(DRAIN_GRACE)
        .map(|buf| reason_from_stderr(&buf))
        .unwrap_or_default();
    let output = match out_rx.recv_timeout(DRAIN_GRACE) {
        Ok(output) => output,
        Err(_) => Output::Failed("its output did not end".to_owned()),
    };
    if let Output::TooLarge = output {
        return Err(Skip::ParserFailure(format!(
            "extracted text larger than {}",
            super::human_size(cap)
        )));
    }
    if !status.success() {
        let status = describe(status);
        return Err(Skip::ParserFailure(if stderr.is_empty() {
            format!("PDF extractor {status}")
        } else {
            format!("{stderr} ({status})")
        }));
    }
    match output {
        Output::Complete(buf) => match buf.strip_prefix(OUTPUT_HEADER.as_bytes()) {
            Some(text) => Ok(String::from_utf8_lossy(text).into_owned()),
            None => Err(Skip::ParserFailure(format!(
                "{} is not a loreweave PDF extractor (unexpected output)",
                exe.display()
            ))),
        },
        Output::TooLarge => Err(Skip::ParserFailure("extracted text too large".to_owned())),
        Output::Failed(why) => Err(Skip::ParserFailure(format!(
            "reading the PDF extractor's output: {why}"
        ))),
    }
}

/// Waits for the child until `timeout`; kills it then, or as soon as its
/// output overflows.
fn wait_with_deadline(
    child: &mut Child,
    timeout: Duration,
    too_large: &AtomicBool,
) -> Result<ExitStatus, Skip> {
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {}
            Err(error) => {
                kill(child);
                return Err(Skip::ParserFailure(format!(
                    "waiting for the PDF extractor: {error}"
                )));
            }
        }
        if too_large.load(Ordering::SeqCst) {
            kill(child);
            // The reader reports the overflow.
            return child.wait().map_err(|error| {
                Skip::ParserFailure(format!("waiting for the PDF extractor: {error}"))
            });
        }
        if started.elapsed() >= timeout {
            kill(child);
            return Err(Skip::ParserFailure(format!(
                "timed out after {}",
                seconds(timeout)
            )));
        }
        thread::sleep(POLL);
    }
}

fn kill(child: &mut Child) {
    // Fails only when the child has already exited, which is what we want.
    let _ = child.kill();
    let _ = child.wait();
}

/// `30 s`, `0.2 s`.
fn seconds(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

fn describe(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("killed by signal {signal}");
        }
    }
    match status.code() {
        Some(code) => format!("exit status {code}"),
        None => "failed".to_owned(),
    }
}

/// The last non-blank stderr line, on one line, without control
/// characters, at most [`MAX_REASON_CHARS`] long.
fn reason_from_stderr(buf: &[u8]) -> String {
    let text = String::from_utf8_lossy(buf);
    let line = text
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .unwrap_or_default();
    let clean: String = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match clean.char_indices().nth(MAX_REASON_CHARS) {
        Some((at, _)) => format!("{}…", &clean[..at]),
        None => clean,
    }
}

/// `loreweave __extract-pdf PATH [--max-memory BYTES]`: the child side.
/// `PATH` `-` reads the PDF from stdin. Caps the address space first, then
/// writes a header line and the text to stdout (pages separated by a form
/// feed), exit 0; on
/// failure prints a short reason on stderr, exit 1.
pub fn extract_pdf_command(path: &Path, max_memory: Option<u64>) -> ExitCode {
    // A panic is reported as a reason below, not as a backtrace.
    std::panic::set_hook(Box::new(|_| {}));
    match extract(path, max_memory) {
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            let written = stdout
                .write_all(OUTPUT_HEADER.as_bytes())
                .and_then(|()| stdout.write_all(text.as_bytes()))
                .and_then(|()| stdout.flush());
            match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => fail(&format!("cannot write the text: {error}")),
            }
        }
        Err(reason) => fail(&reason),
    }
}

fn fail(reason: &str) -> ExitCode {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{reason}");
    ExitCode::FAILURE
}

fn extract(path: &Path, max_memory: Option<u64>) -> Result<String, String> {
    if let Some(limit) = max_memory {
        cap_memory(limit)?;
    }
    let bytes = if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut buf)
            .map_err(|error| format!("cannot read stdin: {error}"))?;
        buf
    } else {
        std::fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?
    };
    let pages = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem_by_pages(&bytes))
        .map_err(|payload| {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown error".to_owned());
            format!("PDF parser panicked: {message}")
        })?
        .map_err(|error| format!("PDF: {error}"))?;
    // Form feeds inside a page would read as page breaks.
    let pages: Vec<String> = pages
        .into_iter()
        .map(|page| page.replace(PAGE_BREAK, "\n"))
        .collect();
    Ok(pages.join(&PAGE_BREAK.to_string()))
}

#[cfg(unix)]
fn cap_memory(limit: u64) -> Result<(), String> {
    rlimit::setrlimit(rlimit::Resource::AS, limit, limit)
        .map_err(|error| format!("cannot cap memory at {limit} bytes: {error}"))
}

#[cfg(not(unix))]
fn cap_memory(_limit: u64) -> Result<(), String> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::super::chunk;
    use super::*;

    #[test]
    fn pages_become_headings_with_exact_lines() {
        let text = "Title line\nFirst page text.\n\x0c\n\x0c# hash line\nSecond\npage.\n";
        let doc = pdf_document("/kb/report.final.pdf", text);
        assert_eq!(doc.title, "report.final");
        assert_eq!(doc.body_line, 1);
        assert_eq!(
            doc.body,
            "# Page 1\n\nTitle line\nFirst page text.\n\n# Page 3\n\n\\# hash line\nSecond\npage."
        );
        let chunks = chunk(&doc);
        let got: Vec<_> = chunks
            .iter()
            .map(|c| (c.heading.as_deref(), c.lines, c.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (Some("Page 1"), (3, 4), "Title line\nFirst page text."),
                (Some("Page 3"), (8, 10), "\\# hash line\nSecond\npage."),
            ]
        );
    }

    #[test]
    fn empty_extraction_is_an_empty_document() {
        let doc = pdf_document("scan.pdf", "\x0c \x0c\n");
        assert_eq!(doc.body, "");
        assert!(chunk(&doc).is_empty());
    }

    #[test]
    fn reasons_are_one_short_line() {
        assert_eq!(
            reason_from_stderr(b"noise\nreal \x1b[31mreason\n\n"),
            "real  [31mreason"
        );
        let long = "x".repeat(500);
        assert_eq!(
            reason_from_stderr(long.as_bytes()).chars().count(),
            MAX_REASON_CHARS + 1
        );
        assert_eq!(seconds(Duration::from_secs(30)), "30 s");
        assert_eq!(seconds(Duration::from_millis(200)), "0.2 s");
    }

    #[test]
    fn non_pdf_bytes_are_refused_without_a_child() {
        let opts = LoadOptions {
            extractor: Some("/nonexistent/extractor".into()),
            ..LoadOptions::default()
        };
        assert_eq!(
            load_pdf("x.pdf", b"garbage, not a pdf", &opts),
            Err(Skip::ParserFailure("not a PDF (no %PDF- header)".into()))
        );
        // A missing extractor is a parser failure too.
        let got = load_pdf("x.pdf", b"%PDF-1.4 broken", &opts);
        assert!(
            matches!(&got, Err(Skip::ParserFailure(why)) if why.contains("cannot run")),
            "{got:?}"
        );
    }
}
