//! File loaders: turn one file (markdown, plain text, HTML or PDF) into a
//! [`Document`], or say in a few words why it was skipped ([`Skip`]).
//!
//! Invariants:
//! - Loading never panics and never aborts the process on bad input: every
//!   failure is a [`Skip`]. The PDF parser, which can panic, loop or eat
//!   memory on a bad file, runs in a child process (`loreweave
//!   __extract-pdf`) with a timeout and an address-space cap ([`pdf`]).
//! - A file's size is checked from its metadata before it is read, and the
//!   read is capped at [`LoadOptions::max_file_size`] anyway (the file may
//!   grow). FIFOs, devices and directories are never opened.
//! - Markdown, text and HTML must be UTF-8 (a BOM is stripped); a NUL byte in
//!   the first 8 KiB means a binary file. HTML may instead declare another
//!   encoding (a UTF-16 BOM or `<meta charset>`), which is decoded strictly.
//! - Every body is markdown that [`chunk`](super::chunk) reads as the format
//!   means it: in text, HTML and PDF bodies a line that would read as a
//!   heading or a code fence gets a `\` before its first character, so the
//!   only headings are those the loader made (HTML `<h1>`-`<h6>`, PDF pages).
//!   Line numbers never move: [`Document::body_line`] and chunk line ranges
//!   refer to the file's lines for markdown and text, and to the extracted
//!   text for HTML and PDF, of which the body is a contiguous run of lines
//!   (see [`html`] and [`pdf`]).

mod html;
mod pdf;
mod text;

use std::fmt;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Document;
use super::chunking::is_markup_line;

pub use pdf::{EXTRACT_PDF_COMMAND, extract_pdf_command};

/// A file format a loader understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `.md`, `.markdown`, `.mdown`, `.mkd`: front matter, `# ` title,
    /// headings.
    Markdown,
    /// `.txt`, `.text`, `.rst`, `.adoc`, `.asciidoc`, `.org`: plain text
    /// without headings. Log files (`.log`) are not knowledge: unsupported.
    Text,
    /// `.html`, `.htm`, `.xhtml`.
    Html,
    /// `.pdf`.
    Pdf,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Markdown => "markdown",
            Format::Text => "text",
            Format::Html => "HTML",
            Format::Pdf => "PDF",
        })
    }
}

/// The format of a file by its extension (case-insensitive), if supported.
pub fn format_for_path(path: &Path) -> Option<Format> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "md" | "markdown" | "mdown" | "mkd" => Some(Format::Markdown),
        "txt" | "text" | "rst" | "adoc" | "asciidoc" | "org" => Some(Format::Text),
        "html" | "htm" | "xhtml" => Some(Format::Html),
        "pdf" => Some(Format::Pdf),
        _ => None,
    }
}

/// Why a file was not loaded. `Display` gives a short reason for a summary
/// line ("binary file", "too large (200.0 MB > 50.0 MB)", ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    #[error("binary file")]
    Binary,
    #[error("too large ({} > {})", human_size(*.size), human_size(*.max))]
    TooLarge { size: u64, max: u64 },
    /// The extension (without the dot), or `"no extension"`.
    #[error("unsupported type ({})", dotted(.0))]
    Unsupported(String),
    #[error("unreadable: {0}")]
    Unreadable(String),
    #[error("invalid encoding (not UTF-8)")]
    InvalidEncoding,
    #[error("parser failure: {0}")]
    ParserFailure(String),
}

fn dotted(ext: &str) -> String {
    if ext == NO_EXTENSION {
        ext.to_owned()
    } else {
        format!(".{ext}")
    }
}

const NO_EXTENSION: &str = "no extension";

/// `200.0 MB`, `12.5 kB` or `17 bytes` (decimal units).
fn human_size(bytes: u64) -> String {
    const KB: f64 = 1_000.0;
    const MB: f64 = 1_000_000.0;
    const GB: f64 = 1_000_000_000.0;
    let size = bytes as f64;
    if size >= GB {
        format!("{:.1} GB", size / GB)
    } else if size >= MB {
        format!("{:.1} MB", size / MB)
    } else if size >= KB {
        format!("{:.1} kB", size / KB)
    } else {
        format!("{bytes} bytes")
    }
}

/// Limits for loading one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Largest file read, in bytes (default 50 MB).
    pub max_file_size: u64,
    /// How long the PDF extractor may run before it is killed (default 30 s).
    pub pdf_timeout: Duration,
    /// Address-space cap of the PDF extractor, in bytes (default 1 GiB).
    pub pdf_memory: u64,
    /// Executable run as `EXE __extract-pdf - --max-memory N` for PDFs;
    /// `None` runs this program (`std::env::current_exe()`).
    pub extractor: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            max_file_size: 50_000_000,
            pdf_timeout: Duration::from_secs(30),
            pdf_memory: 1 << 30,
            extractor: None,
        }
    }
}

/// Read and parse one file; `source` is the key to put in
/// [`Document::source`] (the caller passes the absolute path or a URL).
/// Returns the document and the raw bytes (for hashing).
pub fn load_file(
    path: &Path,
    source: &str,
    opts: &LoadOptions,
) -> Result<(Document, Vec<u8>), Skip> {
    // `metadata` follows symlinks: a dangling one fails here.
    let meta = std::fs::metadata(path).map_err(|error| {
        let dangling = error.kind() == ErrorKind::NotFound
            && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        if dangling {
            Skip::Unreadable("broken symlink".to_owned())
        } else {
            Skip::Unreadable(io_reason(&error))
        }
    })?;
    if meta.is_dir() {
        return Err(Skip::Unreadable("is a directory".to_owned()));
    }
    if !meta.is_file() {
        // A FIFO or a device could block or never end.
        return Err(Skip::Unreadable("not a regular file".to_owned()));
    }
    let format = format_for_path(path).ok_or_else(|| {
        Skip::Unsupported(
            path.extension()
                .map(|ext| ext.to_string_lossy().into_owned())
                .unwrap_or_else(|| NO_EXTENSION.to_owned()),
        )
    })?;
    let max = opts.max_file_size;
    if meta.len() > max {
        return Err(Skip::TooLarge {
            size: meta.len(),
            max,
        });
    }
    let file = File::open(path).map_err(|error| Skip::Unreadable(io_reason(&error)))?;
    let capacity = usize::try_from(meta.len()).unwrap_or(0);
    let mut bytes = Vec::with_capacity(capacity);
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|error| Skip::Unreadable(io_reason(&error)))?;
    let read = bytes.len() as u64;
    if read > max {
        return Err(Skip::TooLarge {
            size: read.max(meta.len()),
            max,
        });
    }
    let doc = load_bytes(source, format, &bytes, opts)?;
    Ok((doc, bytes))
}

/// Parse bytes already in memory (a fetched web page).
pub fn load_bytes(
    source: &str,
    format: Format,
    bytes: &[u8],
    opts: &LoadOptions,
) -> Result<Document, Skip> {
    let size = bytes.len() as u64;
    if size > opts.max_file_size {
        return Err(Skip::TooLarge {
            size,
            max: opts.max_file_size,
        });
    }
    match format {
        Format::Markdown => Ok(super::parse_markdown(source, utf8_text(bytes)?)),
        Format::Text => Ok(text::parse_text(source, utf8_text(bytes)?)),
        Format::Html => html::parse_html(source, bytes),
        Format::Pdf => pdf::load_pdf(source, bytes, opts),
    }
}

/// How many leading bytes are searched for a NUL.
const BINARY_SNIFF_BYTES: usize = 8 * 1024;

fn looks_binary(bytes: &[u8]) -> bool {
    bytes.iter().take(BINARY_SNIFF_BYTES).any(|&b| b == 0)
}

/// The bytes as UTF-8 text without a BOM, unless binary or not UTF-8.
fn utf8_text(bytes: &[u8]) -> Result<&str, Skip> {
    if looks_binary(bytes) {
        return Err(Skip::Binary);
    }
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|_| Skip::InvalidEncoding)
}

/// A short, lowercase reason for an I/O error ("permission denied").
fn io_reason(error: &std::io::Error) -> String {
    match error.kind() {
        ErrorKind::NotFound => "not found".to_owned(),
        ErrorKind::PermissionDenied => "permission denied".to_owned(),
        ErrorKind::IsADirectory => "is a directory".to_owned(),
        kind => kind.to_string(),
    }
}

/// Splits text into lines as an editor does (`\n`, `\r\n` or a lone `\r`).
fn split_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(['\r', '\n']) {
        lines.push(&rest[..at]);
        let skip = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[at + skip..];
    }
    lines.push(rest);
    lines
}

/// `line` with a `\` before its first non-blank character when the chunker
/// would read it as a heading or a code fence.
fn escape_markup(line: &str) -> String {
    if is_markup_line(line) {
        let indent = line.len() - line.trim_start().len();
        format!("{}\\{}", &line[..indent], &line[indent..])
    } else {
        line.to_owned()
    }
}

/// A document whose source text is `lines`: the body is every line (minus
/// `drop`, blanked, e.g. a title heading) without leading and trailing
/// blank lines, and `body_line` says where it starts.
fn document_from_lines(
    source: &str,
    title: String,
    lines: &[String],
    drop: Option<usize>,
) -> Document {
    let blank = |at: usize, line: &str| Some(at) == drop || line.trim().is_empty();
    let start = lines
        .iter()
        .enumerate()
        .position(|(at, line)| !blank(at, line))
        .unwrap_or(lines.len());
    let end = lines
        .iter()
        .enumerate()
        .rposition(|(at, line)| !blank(at, line))
        .map_or(start, |at| at + 1);
    let body = lines
        .iter()
        .enumerate()
        .take(end)
        .skip(start)
        .map(|(at, line)| if Some(at) == drop { "" } else { line.as_str() })
        .collect::<Vec<_>>()
        .join("\n");
    Document {
        source: source.to_owned(),
        title,
        kind: None,
        tags: Vec::new(),
        body,
        body_line: start + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_extension_ignore_case() {
        let cases = [
            ("a.md", Some(Format::Markdown)),
            ("a.MARKDOWN", Some(Format::Markdown)),
            ("a.mdown", Some(Format::Markdown)),
            ("a.Mkd", Some(Format::Markdown)),
            ("a.txt", Some(Format::Text)),
            ("a.rst", Some(Format::Text)),
            ("a.adoc", Some(Format::Text)),
            ("a.org", Some(Format::Text)),
            ("a.HTM", Some(Format::Html)),
            ("a.xhtml", Some(Format::Html)),
            ("dir.d/a.PDF", Some(Format::Pdf)),
            ("a.log", None),
            ("a.xyz", None),
            ("Makefile", None),
            (".md", None),
        ];
        for (path, want) in cases {
            assert_eq!(format_for_path(Path::new(path)), want, "{path}");
        }
    }

    #[test]
    fn skip_reasons_are_short() {
        let cases = [
            (Skip::Binary, "binary file"),
            (
                Skip::TooLarge {
                    size: 200_000_000,
                    max: 50_000_000,
                },
                "too large (200.0 MB > 50.0 MB)",
            ),
            (
                Skip::TooLarge {
                    size: 1500,
                    max: 10,
                },
                "too large (1.5 kB > 10 bytes)",
            ),
            (Skip::Unsupported("xyz".into()), "unsupported type (.xyz)"),
            (
                Skip::Unsupported(NO_EXTENSION.into()),
                "unsupported type (no extension)",
            ),
            (
                Skip::Unreadable("permission denied".into()),
                "unreadable: permission denied",
            ),
            (Skip::InvalidEncoding, "invalid encoding (not UTF-8)"),
            (
                Skip::ParserFailure("timed out after 30 s".into()),
                "parser failure: timed out after 30 s",
            ),
        ];
        for (skip, want) in cases {
            assert_eq!(skip.to_string(), want);
        }
    }

    #[test]
    fn lines_split_like_an_editor() {
        assert_eq!(split_lines("a\r\nb\rc\nd"), ["a", "b", "c", "d"]);
        assert_eq!(split_lines("a\n"), ["a", ""]);
        assert_eq!(split_lines(""), [""]);
    }

    #[test]
    fn markup_lines_are_escaped() {
        assert_eq!(escape_markup("# not a heading"), "\\# not a heading");
        assert_eq!(escape_markup("  ## also not"), "  \\## also not");
        assert_eq!(escape_markup("```"), "\\```");
        assert_eq!(escape_markup("#hashtag"), "#hashtag");
        assert_eq!(escape_markup("    # indented code"), "    # indented code");
        assert_eq!(escape_markup("plain"), "plain");
    }

    #[test]
    fn utf8_checks() {
        assert_eq!(utf8_text(b"\xef\xbb\xbfhi"), Ok("hi"));
        assert_eq!(utf8_text(b"a\0b"), Err(Skip::Binary));
        assert_eq!(utf8_text(b"caf\xe9"), Err(Skip::InvalidEncoding));
        // A NUL after the first 8 KiB is not sniffed; the text is still UTF-8.
        let mut late = vec![b'a'; BINARY_SNIFF_BYTES];
        late.push(0);
        assert!(utf8_text(&late).is_ok());
    }
}
