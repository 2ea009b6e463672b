//! Named knowledge bases on disk, under `$XDG_DATA_HOME/loreweave/kb/NAME/`:
//! a tantivy index in an mmap directory (`index/`) that holds the chunks and
//! the manifest alike (see `index`), and `writer.lock`.
//!
//! Invariants:
//! - One writer at a time per knowledge base, enforced by an OS file lock on
//!   `writer.lock` (released by the kernel when a writer dies, so a SIGKILLed
//!   writer never blocks the next run). A second writer gets
//!   [`StoreError::Locked`] naming the other process; it never touches the
//!   index.
//! - A document is replaced (old records deleted, new ones added) inside one
//!   commit, so a crash or a kill at any moment leaves the last committed
//!   state, manifest and chunks agreeing; the next `kb add` finishes the job
//!   (what was committed is "unchanged", the rest is added).
//! - Unchanged files (same BLAKE3 of their bytes) cost a read and a hash,
//!   never a parse or an index write.
//! - Nothing already indexed is lost to bad input: every file that cannot be
//!   read or parsed becomes a [`Skipped`] with its reason; a root that has
//!   vanished as a whole (an unmounted disk) or a URL that fails keeps its
//!   documents and is reported.
//! - `sample` is the built-in, read-only sample lore: never written.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tantivy::directory::MmapDirectory;
use tantivy::{Index, IndexWriter, ReloadPolicy, TantivyDocument};

use super::index::{self, DocRecord, Fields};
use super::loaders::{self, Format, LoadOptions, Skip};
use super::{KbError, KnowledgeBase};

/// The built-in, read-only knowledge base of sample lore.
pub const SAMPLE: &str = "sample";
/// The knowledge base used when none is named.
pub const DEFAULT: &str = "default";

/// Heap of a knowledge base's index writer (one indexing thread).
const WRITER_HEAP_BYTES: usize = 64_000_000;
/// Commit at least this often while ingesting, so a kill loses little.
const COMMIT_EVERY: Duration = Duration::from_secs(2);
/// ... or after this many changed files.
const COMMIT_FILES: usize = 500;

#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    #[error("no knowledge base named '{name}'{}; `loreweave kb add PATH --kb {name}` creates one (`loreweave kb bases` lists them)", suggestion.as_ref().map(|s| format!(" (did you mean '{s}'?)")).unwrap_or_default())]
    NotFound {
        name: String,
        suggestion: Option<String>,
    },
    #[error(
        "'{0}' is the built-in sample lore and is read-only; add your documents to another knowledge base (the default is 'default')"
    )]
    ReadOnly(String),
    #[error("knowledge base '{name}' is being written by another loreweave process{}; try again when it has finished", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked { name: String, pid: Option<u32> },
    #[error("bad knowledge-base name '{name}': {why}")]
    BadName { name: String, why: String },
    #[error("no data directory on this system (set XDG_DATA_HOME)")]
    NoHome,
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("knowledge base '{name}': {source}")]
    Index {
        name: String,
        #[source]
        source: KbError,
    },
}

/// Where knowledge bases live: `$XDG_DATA_HOME/loreweave/kb`.
pub fn home() -> Result<PathBuf, StoreError> {
    directories::ProjectDirs::from("", "", "loreweave")
        .map(|dirs| dirs.data_dir().join("kb"))
        .ok_or(StoreError::NoHome)
}

/// A knowledge-base name is a single path component of `[A-Za-z0-9_.-]`.
pub fn check_name(name: &str) -> Result<(), StoreError> {
    let bad = |why: &str| {
        Err(StoreError::BadName {
            name: crate::sanitize::one_line(name),
            why: why.to_owned(),
        })
    };
    if name.is_empty() || name.len() > 64 {
        return bad("use 1 to 64 characters");
    }
    if name.starts_with('.') || name.contains("..") {
        return bad("it may not start with '.' or contain '..'");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return bad("use letters, digits, '_', '-' and '.' only (no path separators)");
    }
    Ok(())
}

fn index_dir(home: &Path, name: &str) -> PathBuf {
    home.join(name).join("index")
}

/// Does a knowledge base of that name exist on disk?
pub fn exists(home: &Path, name: &str) -> bool {
    index_dir(home, name).join("meta.json").is_file()
}

/// Names of the knowledge bases on disk, sorted.
pub fn names(home: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(home) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| check_name(n).is_ok() && exists(home, n))
        .collect();
    names.sort();
    names
}

/// The closest existing name to a mistyped one.
fn suggest(home: &Path, name: &str) -> Option<String> {
    let mut known = names(home);
    known.push(SAMPLE.to_owned());
    crate::config::closest(name, known.iter().map(String::as_str)).map(str::to_owned)
}

fn not_found(home: &Path, name: &str) -> StoreError {
    StoreError::NotFound {
        name: name.to_owned(),
        suggestion: suggest(home, name),
    }
}

/// Open an existing knowledge base for reading; every search sees the
/// latest commit (the reader reloads when another process commits).
pub fn open(home: &Path, name: &str) -> Result<KnowledgeBase, StoreError> {
    check_name(name)?;
    if !exists(home, name) {
        return Err(not_found(home, name));
    }
    let dir = index_dir(home, name);
    let index = open_index(&dir, name)?;
    let (_, fields) = index::schema();
    KnowledgeBase::from_index(&index, fields, ReloadPolicy::OnCommitWithDelay)
        .map(|kb| kb.in_dir(&base_dir(home, name)))
        .map_err(|source| StoreError::Index {
            name: name.to_owned(),
            source,
        })
}

fn open_index(dir: &Path, name: &str) -> Result<Index, StoreError> {
    let directory = MmapDirectory::open(dir).map_err(|e| StoreError::Io {
        what: "cannot open the index in",
        path: dir.to_owned(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let index = Index::open(directory).map_err(|e| StoreError::Index {
        name: name.to_owned(),
        source: KbError::Build(e),
    })?;
    index::register(&index);
    Ok(index)
}

/// Bytes the files under `dir` take on disk.
pub fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => total += entry.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

/// The directory of a knowledge base.
pub fn base_dir(home: &Path, name: &str) -> PathBuf {
    home.join(name)
}

/// A fetched page (its format and bytes), or why it could not be fetched.
pub type Fetched = Result<(Format, Vec<u8>), String>;

/// One thing given to `kb add`.
#[derive(Debug, Clone)]
pub enum Input {
    /// A file or directory (absolute).
    Path(PathBuf),
    /// A web page already fetched (or the reason it could not be).
    Page { url: String, fetched: Fetched },
}

/// How ingest behaves.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    pub load: LoadOptions,
    /// Walk into hidden files and directories.
    pub hidden: bool,
    /// Re-index even unchanged files (`kb rebuild`).
    pub force: bool,
    /// Drop documents under a re-walked root that are gone (`kb sync`).
    pub prune: bool,
}

/// A file that was not indexed, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

/// What one ingest did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub removed: usize,
    pub skipped: Vec<Skipped>,
    /// Known roots or URLs that could not be checked; their documents are kept.
    pub kept: Vec<Skipped>,
    /// Paths or URLs given that could not be read at all (nothing was known
    /// of them): the command failed for them.
    pub failed: Vec<Skipped>,
    pub chunks_written: usize,
    pub cancelled: bool,
    #[serde(serialize_with = "secs")]
    pub elapsed: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Summary {
    pub fn changed(&self) -> usize {
        self.added + self.updated + self.removed
    }

    /// `kb 'notes': 2 changed (1 added, 1 updated), 40 unchanged, 1 skipped; 9 chunks written in 0.31 s`.
    pub fn line(&self, name: &str) -> String {
        let removed = if self.removed > 0 {
            format!(", {} removed", self.removed)
        } else {
            String::new()
        };
        format!(
            "kb '{name}': {} changed ({} added, {} updated{removed}), {} unchanged, {} skipped; {} chunks written in {:.2} s{}",
            self.changed(),
            self.added,
            self.updated,
            self.unchanged,
            self.skipped.len(),
            self.chunks_written,
            self.elapsed.as_secs_f64(),
            if self.cancelled { " (cancelled)" } else { "" },
        )
    }
}

/// Where an ingest stands, for a progress bar or the lifecycle pane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub files_done: usize,
    pub files_total: usize,
    pub chunks: usize,
}

/// The single writer of one knowledge base.
pub struct Writer {
    name: String,
    index: Index,
    writer: IndexWriter<TantivyDocument>,
    fields: Fields,
    /// The committed manifest, updated as documents are written.
    manifest: HashMap<String, DocRecord>,
    roots: Vec<String>,
    /// Roots walked with hidden files: `kb sync` walks them the same way.
    hidden_roots: HashSet<String>,
    /// Holds the OS lock while the writer lives.
    _lock: File,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Writer {
    /// Take the writer lock of `name`, creating the knowledge base when
    /// `create` (only `kb add` creates).
    pub fn open(home: &Path, name: &str, create: bool) -> Result<Writer, StoreError> {
        check_name(name)?;
        if name == SAMPLE {
            return Err(StoreError::ReadOnly(name.to_owned()));
        }
        let existed = exists(home, name);
        if !existed && !create {
            return Err(not_found(home, name));
        }
        let base = base_dir(home, name);
        let dir = index_dir(home, name);
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            what: "cannot create",
            path: dir.clone(),
            source,
        })?;
        let lock = take_lock(&base.join("writer.lock"), name)?;
        let (schema, fields) = index::schema();
        let index = if dir.join("meta.json").is_file() {
            open_index(&dir, name)?
        } else {
            let directory = MmapDirectory::open(&dir).map_err(|e| StoreError::Io {
                what: "cannot open the index in",
                path: dir.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
            let index = Index::create(directory, schema, Default::default()).map_err(|e| {
                StoreError::Index {
                    name: name.to_owned(),
                    source: KbError::Build(e),
                }
            })?;
            index::register(&index);
            index
        };
        let index_error = |e: tantivy::TantivyError| StoreError::Index {
            name: name.to_owned(),
            source: KbError::Write(e),
        };
        let writer: IndexWriter<TantivyDocument> = index
            .writer_with_num_threads(1, WRITER_HEAP_BYTES)
            .map_err(index_error)?;
        // Files a killed writer left half-written are not in any commit.
        let _ = futures::executor::block_on(writer.garbage_collect_files());
        let reader =
            KnowledgeBase::from_index(&index, fields, ReloadPolicy::Manual).map_err(|source| {
                StoreError::Index {
                    name: name.to_owned(),
                    source,
                }
            })?;
        let manifest = reader
            .documents()
            .map_err(|source| StoreError::Index {
                name: name.to_owned(),
                source,
            })?
            .into_iter()
            .map(|d| (d.path.clone(), d))
            .collect();
        let with_options = reader
            .roots_with_options()
            .map_err(|source| StoreError::Index {
                name: name.to_owned(),
                source,
            })?;
        let hidden_roots = with_options
            .iter()
            .filter(|(_, hidden)| *hidden)
            .map(|(root, _)| root.clone())
            .collect();
        let roots = with_options.into_iter().map(|(root, _)| root).collect();
        Ok(Writer {
            name: name.to_owned(),
            index,
            writer,
            fields,
            manifest,
            roots,
            hidden_roots,
            _lock: lock,
        })
    }

    fn index_error(&self, source: KbError) -> StoreError {
        StoreError::Index {
            name: self.name.clone(),
            source,
        }
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.writer
            .commit()
            .map(|_| ())
            .map_err(|e| self.index_error(KbError::Write(e)))
    }

    /// The roots given to `kb add` so far.
    pub fn roots(&self) -> &[String] {
        &self.roots
    }

    /// The committed manifest.
    pub fn manifest(&self) -> &HashMap<String, DocRecord> {
        &self.manifest
    }

    /// Ingest files, directories and fetched pages. Commits as it goes; on
    /// `cancel`, commits what is done and stops.
    pub fn ingest(
        &mut self,
        inputs: &[Input],
        opts: &IngestOptions,
        progress: &mut dyn FnMut(Progress),
        cancel: &AtomicBool,
    ) -> Result<Summary, StoreError> {
        let started = Instant::now();
        let mut summary = Summary::default();
        // Expand every input into the files to look at, each with its root.
        let mut files: Vec<(PathBuf, String)> = Vec::new();
        let mut pages: Vec<(&str, &Fetched)> = Vec::new();
        let mut walked_roots: Vec<String> = Vec::new();
        let mut walked_hidden: HashSet<String> = HashSet::new();
        for input in inputs {
            match input {
                Input::Path(path) => {
                    let root = path.to_string_lossy().into_owned();
                    // `kb sync` walks a root as `kb add` last did.
                    let hidden = opts.hidden || (opts.prune && self.hidden_roots.contains(&root));
                    if hidden {
                        walked_hidden.insert(root.clone());
                    }
                    match std::fs::metadata(path) {
                        Ok(meta) if meta.is_dir() => {
                            walk(path, hidden, &root, &mut files, &mut summary.skipped);
                            walked_roots.push(root);
                        }
                        Ok(_) => {
                            files.push((path.clone(), root.clone()));
                            walked_roots.push(root);
                        }
                        Err(error) => {
                            // A root that vanished keeps its documents.
                            let known = self.roots.contains(&root);
                            let what = if error.kind() == std::io::ErrorKind::NotFound {
                                "not found".to_owned()
                            } else {
                                io_reason(&error)
                            };
                            if known {
                                summary.kept.push(Skipped {
                                    path: root,
                                    reason: format!("{what} (its documents are kept)"),
                                });
                            } else {
                                summary.failed.push(Skipped {
                                    path: root,
                                    reason: what,
                                });
                            }
                        }
                    }
                }
                Input::Page { url, fetched } => pages.push((url.as_str(), fetched)),
            }
        }
        let total = files.len() + pages.len();
        let mut done = Progress {
            files_done: 0,
            files_total: total,
            chunks: 0,
        };
        progress(done);
        let mut last_commit = Instant::now();
        let mut seen: HashSet<String> = HashSet::new();
        let added_at = now_secs();

        // Roots already recorded as they are walked now cost no write, so
        // re-adding an unchanged tree commits nothing at all.
        let mut roots_written = 0usize;
        for root in &walked_roots {
            let hidden = walked_hidden.contains(root);
            let known = self.roots.contains(root) && self.hidden_roots.contains(root) == hidden;
            if !known {
                index::add_root(&self.writer, &self.fields, root, added_at, hidden)
                    .map_err(|e| self.index_error(e))?;
                roots_written += 1;
            }
            if hidden {
                self.hidden_roots.insert(root.clone());
            } else {
                self.hidden_roots.remove(root);
            }
            if !self.roots.contains(root) {
                self.roots.push(root.clone());
            }
        }
        // Like a path that does not exist, a page that could not be fetched
        // does not become a root (a known root stays one).
        for (url, _) in pages.iter().filter(|(_, fetched)| fetched.is_ok()) {
            if !self.roots.iter().any(|r| r == url) {
                index::add_root(&self.writer, &self.fields, url, added_at, false)
                    .map_err(|e| self.index_error(e))?;
                roots_written += 1;
                self.roots.push((*url).to_owned());
            }
        }
        let mut pending = roots_written;

        let mut work: Vec<Work> = Vec::with_capacity(total);
        work.extend(
            files
                .into_iter()
                .map(|(path, root)| Work::File { path, root }),
        );
        work.extend(
            pages
                .into_iter()
                .map(|(url, fetched)| Work::Page { url, fetched }),
        );

        for item in work {
            if cancel.load(Ordering::Relaxed) {
                summary.cancelled = true;
                break;
            }
            let key = item.key();
            seen.insert(key.clone());
            match self.one(&item, &key, opts, added_at) {
                Outcome::Unchanged => summary.unchanged += 1,
                Outcome::Written { chunks, new } => {
                    if new {
                        summary.added += 1;
                    } else {
                        summary.updated += 1;
                    }
                    summary.chunks_written += chunks;
                    done.chunks += chunks;
                    pending += 1;
                }
                Outcome::Skipped(reason) => summary.skipped.push(Skipped {
                    path: key.clone(),
                    reason,
                }),
                Outcome::Kept(reason) if self.manifest.contains_key(&key) => {
                    summary.kept.push(Skipped {
                        path: key.clone(),
                        reason: format!("{reason} (its documents are kept)"),
                    })
                }
                Outcome::Kept(reason) => summary.failed.push(Skipped {
                    path: key.clone(),
                    reason,
                }),
                Outcome::Failed(error) => return Err(self.index_error(error)),
            }
            done.files_done += 1;
            progress(done);
            if pending > 0 && (pending >= COMMIT_FILES || last_commit.elapsed() >= COMMIT_EVERY) {
                self.commit()?;
                pending = 0;
                last_commit = Instant::now();
            }
        }

        // `kb sync`: documents under a re-walked directory root that were
        // not seen are gone from disk.
        if opts.prune && !summary.cancelled {
            let gone: Vec<String> = self
                .manifest
                .values()
                .filter(|d| walked_roots.contains(&d.root) && !seen.contains(&d.path))
                .map(|d| d.path.clone())
                .collect();
            for path in gone {
                index::delete_document(&self.writer, &self.fields, &path);
                self.manifest.remove(&path);
                summary.removed += 1;
                pending += 1;
            }
        }
        if pending > 0 {
            self.commit()?;
        }
        summary.elapsed = started.elapsed();
        Ok(summary)
    }

    /// Read, hash, compare, parse and write one file or page.
    fn one(&mut self, item: &Work, key: &str, opts: &IngestOptions, now: u64) -> Outcome {
        let (format, bytes, root) = match item {
            Work::File { path, root } => {
                let Some(format) = loaders::format_for_path(path) else {
                    let ext = path
                        .extension()
                        .map(|e| e.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "no extension".to_owned());
                    return Outcome::Skipped(Skip::Unsupported(ext).to_string());
                };
                match read_capped(path, opts.load.max_file_size) {
                    Ok(bytes) => (format, bytes, root.clone()),
                    Err(skip) => return Outcome::Skipped(skip.to_string()),
                }
            }
            Work::Page { url, fetched } => match fetched {
                Ok((format, bytes)) => (*format, bytes.clone(), (*url).to_owned()),
                Err(why) => return Outcome::Kept(why.clone()),
            },
        };
        let hash = blake3::hash(&bytes).to_hex().to_string();
        let old = self.manifest.get(key);
        if !opts.force && old.is_some_and(|d| d.hash == hash) {
            return Outcome::Unchanged;
        }
        let new = old.is_none();
        let parsed = match (item, format) {
            (Work::File { path, .. }, Format::Pdf) => {
                loaders::load_file(path, key, &opts.load).map(|(doc, _)| doc)
            }
            _ => loaders::load_bytes(key, format, &bytes, &opts.load),
        };
        let doc = match parsed {
            Ok(doc) => doc,
            Err(skip) => return Outcome::Skipped(skip.to_string()),
        };
        let chunks = super::chunk(&doc);
        let record = DocRecord {
            path: key.to_owned(),
            title: doc.title.clone(),
            hash,
            bytes: bytes.len() as u64,
            chunks: chunks.len() as u64,
            indexed_at: now,
            root,
        };
        index::delete_document(&self.writer, &self.fields, key);
        if let Err(error) = index::add_document(&self.writer, &self.fields, &doc, &chunks, &record)
        {
            return Outcome::Failed(error);
        }
        self.manifest.insert(key.to_owned(), record);
        Outcome::Written {
            chunks: chunks.len(),
            new,
        }
    }

    /// Drop documents: each target is a document key, a file or folder
    /// (absolute), or a name as `kb list` shows it. Returns what was removed
    /// and the targets that matched nothing.
    pub fn remove(
        &mut self,
        targets: &[String],
        cwd: &Path,
    ) -> Result<(Vec<String>, Vec<String>), StoreError> {
        let paths: Vec<&str> = self.manifest.keys().map(String::as_str).collect();
        let display = index::shortest_unambiguous(&paths);
        let mut removed: Vec<String> = Vec::new();
        let mut unmatched = Vec::new();
        for target in targets {
            let absolute = if target.starts_with("http://") || target.starts_with("https://") {
                target.clone()
            } else {
                let joined = cwd.join(target);
                std::path::absolute(&joined)
                    .unwrap_or(joined)
                    .to_string_lossy()
                    .into_owned()
            };
            let absolute = absolute.trim_end_matches('/').to_owned();
            let prefix = format!("{absolute}/");
            let matches: Vec<String> = self
                .manifest
                .keys()
                .filter(|key| {
                    **key == absolute
                        || key.starts_with(&prefix)
                        || display
                            .get(key.as_str())
                            .is_some_and(|shown| shown == target)
                })
                .cloned()
                .collect();
            if matches.is_empty() {
                unmatched.push(target.clone());
            }
            for key in matches {
                index::delete_document(&self.writer, &self.fields, &key);
                self.manifest.remove(&key);
                removed.push(key);
            }
            // A removed root is no longer re-checked by `kb sync`.
            let roots: Vec<String> = self
                .roots
                .iter()
                .filter(|r| **r == absolute || r.starts_with(&prefix))
                .cloned()
                .collect();
            for root in roots {
                index::delete_root(&self.writer, &self.fields, &root)
                    .map_err(|e| self.index_error(e))?;
                self.roots.retain(|r| *r != root);
            }
        }
        self.commit()?;
        removed.sort();
        removed.dedup();
        Ok((removed, unmatched))
    }

    /// Merge every segment into one (after `kb rebuild`).
    pub fn compact(&mut self) -> Result<(), StoreError> {
        let ids = self
            .index
            .searchable_segment_ids()
            .map_err(|e| self.index_error(KbError::Write(e)))?;
        if ids.len() > 1 {
            let _ = self.writer.merge(&ids).wait();
        }
        Ok(())
    }

    /// Let background merges finish and release the lock.
    pub fn close(self) -> Result<(), StoreError> {
        let name = self.name.clone();
        self.writer
            .wait_merging_threads()
            .map_err(|e| StoreError::Index {
                name,
                source: KbError::Write(e),
            })
    }
}

enum Work<'a> {
    File { path: PathBuf, root: String },
    Page { url: &'a str, fetched: &'a Fetched },
}

impl Work<'_> {
    fn key(&self) -> String {
        match self {
            Work::File { path, .. } => path.to_string_lossy().into_owned(),
            Work::Page { url, .. } => (*url).to_owned(),
        }
    }
}

enum Outcome {
    Unchanged,
    Written { chunks: usize, new: bool },
    Skipped(String),
    Kept(String),
    Failed(KbError),
}

/// Read a file, refusing one over `max` bytes before reading it.
fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>, Skip> {
    let meta = std::fs::metadata(path).map_err(|e| Skip::Unreadable(io_reason(&e)))?;
    if !meta.is_file() {
        return Err(Skip::Unreadable("not a regular file".into()));
    }
    if meta.len() > max {
        return Err(Skip::TooLarge {
            size: meta.len(),
            max,
        });
    }
    let file = File::open(path).map_err(|e| Skip::Unreadable(io_reason(&e)))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow while we read it: never past the cap.
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Skip::Unreadable(io_reason(&e)))?;
    if bytes.len() as u64 > max {
        return Err(Skip::TooLarge {
            size: bytes.len() as u64,
            max,
        });
    }
    Ok(bytes)
}

fn io_reason(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::NotFound => "not found".into(),
        _ => crate::sanitize::one_line(&error.to_string()),
    }
}

/// Every file under `dir`, honouring `.gitignore`/`.ignore` (also outside a
/// git repository), hidden files only when asked; errors become skips.
fn walk(
    dir: &Path,
    hidden: bool,
    root: &str,
    files: &mut Vec<(PathBuf, String)>,
    skipped: &mut Vec<Skipped>,
) {
    let walker = ignore::WalkBuilder::new(dir)
        .hidden(!hidden)
        .require_git(false)
        .follow_links(true)
        .git_global(false)
        .build();
    let mut found = Vec::new();
    for entry in walker {
        match entry {
            Ok(entry) => {
                if entry.file_type().is_some_and(|t| t.is_file()) {
                    // The walker's own rules are not documents.
                    let name = entry.file_name();
                    if name == ".gitignore" || name == ".ignore" {
                        continue;
                    }
                    found.push(entry.into_path());
                } else if entry.file_type().is_some_and(|t| t.is_symlink()) {
                    skipped.push(Skipped {
                        path: entry.path().to_string_lossy().into_owned(),
                        reason: "unreadable: broken symbolic link".into(),
                    });
                }
            }
            Err(error) => {
                let (path, reason) = walk_error(&error);
                skipped.push(Skipped {
                    path: path.unwrap_or_else(|| root.to_owned()),
                    reason,
                });
            }
        }
    }
    found.sort();
    files.extend(found.into_iter().map(|p| (p, root.to_owned())));
}

fn walk_error(error: &ignore::Error) -> (Option<String>, String) {
    match error {
        ignore::Error::WithPath { path, err } => {
            let (_, reason) = walk_error(err);
            (Some(path.to_string_lossy().into_owned()), reason)
        }
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            walk_error(err)
        }
        ignore::Error::Loop { child, .. } => (
            Some(child.to_string_lossy().into_owned()),
            "symbolic link loop".into(),
        ),
        ignore::Error::Io(io) => (None, format!("unreadable: {}", io_reason(io))),
        other => (
            None,
            format!(
                "unreadable: {}",
                crate::sanitize::one_line(&other.to_string())
            ),
        ),
    }
}

/// Take the writer lock, or say who holds it.
fn take_lock(path: &Path, name: &str) -> Result<File, StoreError> {
    let io = |source| StoreError::Io {
        what: "cannot open the lock file",
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0).map_err(io)?;
            writeln!(file, "{}", std::process::id()).map_err(io)?;
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            Err(StoreError::Locked {
                name: name.to_owned(),
                pid: text.trim().parse().ok(),
            })
        }
        Err(std::fs::TryLockError::Error(source)) => Err(io(source)),
    }
}

/// Statistics of a knowledge base.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    pub name: String,
    pub documents: usize,
    pub chunks: usize,
    pub bytes: u64,
    pub bytes_on_disk: u64,
    pub embedded_chunks: usize,
    pub roots: Vec<String>,
}

/// Group documents by root, for listings.
pub fn by_root(docs: &[DocRecord]) -> BTreeMap<&str, Vec<&DocRecord>> {
    let mut map: BTreeMap<&str, Vec<&DocRecord>> = BTreeMap::new();
    for doc in docs {
        map.entry(doc.root.as_str()).or_default().push(doc);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, text).expect("write");
        path
    }

    fn add(home: &Path, name: &str, inputs: &[Input], opts: &IngestOptions) -> Summary {
        let mut writer = Writer::open(home, name, true).expect("writer");
        let summary = writer
            .ingest(inputs, opts, &mut |_| {}, &AtomicBool::new(false))
            .expect("ingest");
        writer.close().expect("close");
        summary
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("default").is_ok());
        assert!(check_name("my-kb_2.0").is_ok());
        for bad in ["", "..", "a/b", "a\\b", ".hidden", "x..y", "sp ace"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn add_is_incremental_and_sync_drops_deleted_files() {
        let tmp = tempfile::tempdir().expect("tmp");
        let home = tmp.path().join("kb");
        let docs = tmp.path().join("docs");
        write(&docs, "a.md", "# Alpha\n\nThe amber gate.\n");
        write(
            &docs,
            "sub/b.md",
            "# Beta\n\nThe bronze bell.\n\n## More\n\nBells.\n",
        );
        write(&docs, "c.bin", "x");
        let opts = IngestOptions::default();
        let first = add(&home, "t", &[Input::Path(docs.clone())], &opts);
        assert_eq!((first.added, first.updated, first.unchanged), (2, 0, 0));
        assert_eq!(first.skipped.len(), 1, "{:?}", first.skipped);
        assert!(first.skipped[0].reason.contains("unsupported"));
        assert_eq!(first.chunks_written, 3);

        let meta = home.join("t/index/meta.json");
        let committed = std::fs::read(&meta).expect("meta");
        let again = add(&home, "t", &[Input::Path(docs.clone())], &opts);
        // Nothing was written: not even a commit.
        assert_eq!(std::fs::read(&meta).expect("meta"), committed);
        assert_eq!(again.changed(), 0);
        assert_eq!(again.unchanged, 2);
        assert_eq!(again.chunks_written, 0);

        write(
            &docs,
            "a.md",
            "# Alpha\n\nThe amber gate, rebuilt in copper.\n",
        );
        let changed = add(&home, "t", &[Input::Path(docs.clone())], &opts);
        assert_eq!(
            (changed.added, changed.updated, changed.unchanged),
            (0, 1, 1)
        );
        let kb = open(&home, "t").expect("open");
        assert_eq!(kb.document_count(), 2);
        assert_eq!(kb.chunk_count(), 3);
        let hits = kb.search("copper", 5).expect("search");
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].source, "a.md");

        std::fs::remove_file(docs.join("sub/b.md")).expect("rm");
        let sync = add(
            &home,
            "t",
            &[Input::Path(docs.clone())],
            &IngestOptions {
                prune: true,
                ..opts.clone()
            },
        );
        assert_eq!(sync.removed, 1);
        let kb = open(&home, "t").expect("open");
        assert_eq!(kb.document_count(), 1);
        assert!(kb.search("bronze", 5).expect("search").is_empty());
    }

    #[test]
    fn a_missing_root_keeps_its_documents() {
        let tmp = tempfile::tempdir().expect("tmp");
        let home = tmp.path().join("kb");
        let docs = tmp.path().join("disk");
        write(&docs, "a.md", "# Alpha\n\nAmber.\n");
        add(
            &home,
            "t",
            &[Input::Path(docs.clone())],
            &IngestOptions::default(),
        );
        std::fs::rename(&docs, tmp.path().join("elsewhere")).expect("mv");
        let sync = add(
            &home,
            "t",
            &[Input::Path(docs.clone())],
            &IngestOptions {
                prune: true,
                ..Default::default()
            },
        );
        assert_eq!(sync.removed, 0);
        assert_eq!(sync.kept.len(), 1);
        assert_eq!(open(&home, "t").expect("open").document_count(), 1);
    }

    #[test]
    fn a_second_writer_is_refused_with_the_holder_named() {
        let tmp = tempfile::tempdir().expect("tmp");
        let home = tmp.path().join("kb");
        let _first = Writer::open(&home, "t", true).expect("writer");
        match Writer::open(&home, "t", true) {
            Err(StoreError::Locked { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected Locked, got {other:?}"),
        }
    }

    #[test]
    fn remove_takes_paths_as_typed_or_as_listed() {
        let tmp = tempfile::tempdir().expect("tmp");
        let home = tmp.path().join("kb");
        let docs = tmp.path().join("docs");
        write(&docs, "one/README.md", "# One\n\nFirst readme.\n");
        write(&docs, "two/README.md", "# Two\n\nSecond readme.\n");
        write(&docs, "two/x.md", "# X\n\nEx.\n");
        add(
            &home,
            "t",
            &[Input::Path(docs.clone())],
            &IngestOptions::default(),
        );
        let kb = open(&home, "t").expect("open");
        let shown: Vec<String> = kb
            .documents()
            .expect("docs")
            .iter()
            .map(|d| kb.display_name(&d.path))
            .collect();
        assert!(shown.contains(&"one/README.md".to_owned()), "{shown:?}");
        let mut writer = Writer::open(&home, "t", false).expect("writer");
        let (removed, unmatched) = writer
            .remove(&["one/README.md".into(), "nothing.md".into()], tmp.path())
            .expect("remove");
        assert_eq!(removed.len(), 1);
        assert_eq!(unmatched, vec!["nothing.md".to_owned()]);
        let (removed, _) = writer
            .remove(&["docs/two".into()], tmp.path())
            .expect("remove");
        assert_eq!(removed.len(), 2);
        writer.close().expect("close");
        assert_eq!(open(&home, "t").expect("open").document_count(), 0);
    }

    #[test]
    fn sample_is_read_only_and_typos_get_a_suggestion() {
        let tmp = tempfile::tempdir().expect("tmp");
        let home = tmp.path().join("kb");
        assert!(matches!(
            Writer::open(&home, SAMPLE, true),
            Err(StoreError::ReadOnly(_))
        ));
        let docs = tmp.path().join("d");
        write(&docs, "a.md", "# A\n\nA.\n");
        add(
            &home,
            "campaign",
            &[Input::Path(docs)],
            &IngestOptions::default(),
        );
        let error = open(&home, "campaing").expect_err("typo");
        assert!(
            error.to_string().contains("did you mean 'campaign'"),
            "{error}"
        );
        assert!(matches!(
            Writer::open(&home, "campaing", false),
            Err(StoreError::NotFound { .. })
        ));
    }

    #[test]
    fn bad_input_becomes_skips_with_reasons_and_the_rest_is_indexed() {
        let tmp = tempfile::tempdir().expect("tmp");
        let home = tmp.path().join("kb");
        let docs = tmp.path().join("docs");
        write(&docs, "good.md", "# Good\n\nThe lantern district.\n");
        write(
            &docs,
            "page.html",
            "<html><head><title>Page</title><script>var zzscript = 1;</script><style>p{}</style></head><body><nav>menu zznav</nav><p>Harbour lights.</p></body></html>",
        );
        std::fs::write(docs.join("binary.md"), b"# B\n\x00\x01\x02 binary").expect("write");
        std::fs::write(docs.join("latin1.txt"), b"caf\xe9 au lait").expect("write");
        // 200 MB, sparse: over the 50 MB default, and never read.
        let huge = std::fs::File::create(docs.join("huge.md")).expect("create");
        huge.set_len(200_000_000).expect("set_len");
        std::fs::write(docs.join("empty.md"), "").expect("write");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&docs, docs.join("loop")).expect("symlink loop");
            std::os::unix::fs::symlink(docs.join("nowhere.md"), docs.join("dangling.md"))
                .expect("dangling symlink");
        }
        let summary = add(
            &home,
            "t",
            &[Input::Path(docs.clone())],
            &IngestOptions::default(),
        );
        let reason = |name: &str| {
            summary
                .skipped
                .iter()
                .find(|s| s.path.ends_with(name))
                .map(|s| s.reason.clone())
                .unwrap_or_else(|| panic!("{name} not skipped: {:#?}", summary.skipped))
        };
        assert_eq!(reason("binary.md"), "binary file");
        assert_eq!(reason("latin1.txt"), "invalid encoding (not UTF-8)");
        assert!(
            reason("huge.md").starts_with("too large (200.0 MB > 50.0 MB)"),
            "{}",
            reason("huge.md")
        );
        #[cfg(unix)]
        {
            assert!(
                reason("loop").contains("symbolic link loop"),
                "{}",
                reason("loop")
            );
            assert!(
                reason("dangling.md").starts_with("unreadable"),
                "{}",
                reason("dangling.md")
            );
        }
        // good.md, page.html and the empty file are documents.
        assert_eq!(summary.added, 3, "{summary:#?}");
        let kb = open(&home, "t").expect("open");
        assert_eq!(kb.search("lantern", 5).expect("search").len(), 1);
        assert_eq!(kb.search("harbour", 5).expect("search").len(), 1);
        assert!(kb.search("zzscript", 5).expect("search").is_empty());
        assert!(kb.search("zznav", 5).expect("search").is_empty());
    }

    #[test]
    fn citations_carry_the_trail_and_the_line_range() {
        let tmp = tempfile::tempdir().expect("tmp");
        let home = tmp.path().join("kb");
        let docs = tmp.path().join("docs");
        write(
            &docs,
            "ash.md",
            "---\nkind: place\n---\n# Ashford\n\n## History\n\n### The Founding\n\nFounded by the amber guild.\nIt grew.\n",
        );
        add(&home, "t", &[Input::Path(docs)], &IngestOptions::default());
        let kb = open(&home, "t").expect("open");
        let hits = kb.search("amber guild", 1).expect("search");
        let p = &hits[0];
        assert_eq!(p.source, "ash.md");
        assert_eq!(
            p.location.trail,
            vec!["History".to_owned(), "The Founding".to_owned()]
        );
        assert_eq!(p.location.lines, Some((10, 11)));
        assert_eq!(
            p.location.to_string(),
            "History › The Founding · lines 10-11"
        );
    }

    #[test]
    fn manifest_and_root_records_do_not_move_bm25_scores() {
        let tmp = tempfile::tempdir().expect("tmp");
        let home = tmp.path().join("kb");
        let docs = tmp.path().join("docs");
        write(
            &docs,
            "a.md",
            "# Alpha\n\nThe amber gate and the amber road.\n",
        );
        write(&docs, "b.md", "# Beta\n\nThe bronze bell.\n");
        add(
            &home,
            "t",
            &[Input::Path(docs.clone())],
            &IngestOptions::default(),
        );
        let in_memory = KnowledgeBase::build(vec![
            crate::kb::parse_markdown("a.md", "# Alpha\n\nThe amber gate and the amber road.\n"),
            crate::kb::parse_markdown("b.md", "# Beta\n\nThe bronze bell.\n"),
        ])
        .expect("build");
        let score = |kb: &KnowledgeBase| kb.search("amber gate", 1).expect("search")[0].score;
        let before = score(&open(&home, "t").expect("open"));
        // More roots (empty folders) add records but no text.
        for n in 0..5 {
            let empty = tmp.path().join(format!("empty{n}"));
            std::fs::create_dir_all(&empty).expect("mkdir");
            add(&home, "t", &[Input::Path(empty)], &IngestOptions::default());
        }
        let after = score(&open(&home, "t").expect("open"));
        assert_eq!(before, after);
        assert_eq!(before, score(&in_memory));
    }
}
