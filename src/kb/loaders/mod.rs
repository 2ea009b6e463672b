//! Turning one file into a [`Document`]. (Interim: markdown and text; the
//! full loaders land from the loaders branch.)

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Document, parse_markdown};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Text,
    Html,
    Pdf,
}

pub fn format_for_path(path: &Path) -> Option<Format> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "md" | "markdown" => Some(Format::Markdown),
        "txt" => Some(Format::Text),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    Binary,
    TooLarge { size: u64, max: u64 },
    Unsupported(String),
    Unreadable(String),
    InvalidEncoding,
    ParserFailure(String),
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::Binary => f.write_str("binary file"),
            Skip::TooLarge { size, max } => write!(f, "too large ({size} > {max} bytes)"),
            Skip::Unsupported(ext) => write!(f, "unsupported type ({ext})"),
            Skip::Unreadable(why) => write!(f, "unreadable: {why}"),
            Skip::InvalidEncoding => f.write_str("invalid encoding (not UTF-8)"),
            Skip::ParserFailure(why) => write!(f, "parser failure: {why}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub max_file_size: u64,
    pub pdf_timeout: Duration,
    pub pdf_memory: u64,
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

pub fn load_file(
    path: &Path,
    source: &str,
    opts: &LoadOptions,
) -> Result<(Document, Vec<u8>), Skip> {
    let format = format_for_path(path).ok_or_else(|| Skip::Unsupported("?".into()))?;
    let bytes = std::fs::read(path).map_err(|e| Skip::Unreadable(e.to_string()))?;
    let doc = load_bytes(source, format, &bytes, opts)?;
    Ok((doc, bytes))
}

pub fn load_bytes(
    source: &str,
    _format: Format,
    bytes: &[u8],
    _opts: &LoadOptions,
) -> Result<Document, Skip> {
    if bytes.iter().take(8192).any(|b| *b == 0) {
        return Err(Skip::Binary);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| Skip::InvalidEncoding)?;
    Ok(parse_markdown(source, text))
}
