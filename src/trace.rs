//! JSON Lines traces: what the engine was given and what it did, for a bug
//! report or for re-driving an engine later. The format is documented in
//! `docs/trace-format.md` and versioned by [`TRACE_FORMAT_VERSION`].
//!
//! A [`Recorder`] is a [`Tap`] on the driver: it turns every engine input
//! (with its time) and every lifecycle event into a line as it happens and
//! keeps them in a shared [`Recording`], up to a byte cap (past it the trace
//! says it is incomplete; nothing is written twice or reordered). A headless
//! run keeps its lines in memory; the TUI, which may run for days, spools
//! them to a file of its own (`trace-PID.spool` beside the log) through a
//! writer thread, so its memory does not grow with the trace and the loop
//! never touches the disk. Exporting takes a cheap [`Snapshot`] on the
//! caller's thread and writes it elsewhere: the TUI writes on the blocking
//! pool, never on its loop. The snapshot adds a header first and one line per
//! retained request last; requests restored from a stored session carry
//! `"restored": true` (their timelines are what was saved).
//!
//! `--redact` rewrites every free text (queries, passages, tokens, answers,
//! reasons, file names) as `[redacted len=N b3=HASH]`: its length in
//! characters and the first 12 hex digits of its BLAKE3, so equal texts
//! still match. Ids, kinds, backend names, states, numbers and times stay.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::event::{EVENT_FORMAT_VERSION, EventKind, LifecycleEvent};
use crate::engine::request::{Kind, Outcome, Request, RequestId, TimelineEntry};
use crate::engine::workspace::ConversationId;
use crate::engine::{Engine, EngineConfig, Input};
use crate::runtime::Tap;

/// Version of the trace format (the header's `version`).
pub const TRACE_FORMAT_VERSION: u32 = 1;

/// The header's `format`.
pub const TRACE_FORMAT: &str = "loreweave-trace";

/// Lines kept in memory at most, in bytes (a headless run).
pub const DEFAULT_CAP_BYTES: usize = 256 * 1024 * 1024;

/// Bytes a spool may hold (the TUI's recording, on disk).
pub const SPOOL_CAP_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// One line of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TraceLine {
    Header(Box<Header>),
    /// An engine input, `t_us` microseconds after the engine's start.
    Input {
        t_us: u64,
        input: Input,
    },
    Event(EventLine),
    Request(RequestLine),
}

/// The first line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
    /// Version of the typed events inside.
    pub event_version: u32,
    pub loreweave: String,
    /// When the engine started and when the trace was written (Unix ms).
    pub started_ms: u64,
    pub exported_ms: u64,
    /// The engine's seed: with `engine` and the inputs, ids and scenario
    /// seeds come out the same when re-driven.
    pub seed: u64,
    /// Every input since the engine started is in the trace (false past
    /// the recording cap, or when recording started late).
    pub complete: bool,
    pub redacted: bool,
    /// Requests restored from a stored session are in the trace.
    pub has_restored: bool,
    /// The engine's settings (timeouts, limits, retry and late policies).
    pub engine: EngineConfig,
    /// The backends by name, without secrets: provider, model, address.
    pub backends: Value,
}

/// A lifecycle event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventLine {
    pub t_us: u64,
    pub t_ms: u64,
    pub id: Option<RequestId>,
    pub parent: Option<RequestId>,
    pub kind: Option<Kind>,
    pub backend: String,
    pub conversation: Option<ConversationId>,
    pub event: EventKind,
    /// What the inspector shows.
    pub text: String,
}

/// A request as it stood when the trace was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestLine {
    pub id: RequestId,
    pub parent: Option<RequestId>,
    pub conversation: Option<ConversationId>,
    pub kind: Kind,
    pub backend: String,
    pub label: String,
    /// `queued`, `streaming`, ... or the outcome's label.
    pub state: String,
    pub outcome: Option<Outcome>,
    pub attempts: u32,
    pub late_drops: u32,
    /// Unix ms.
    pub created_ms: u64,
    pub dispatched_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    /// From a stored session (an earlier run).
    pub restored: bool,
    pub timeline: Vec<TimelineLine>,
}

/// One entry of a request's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineLine {
    /// Milliseconds after the request was created.
    pub offset_ms: u64,
    pub event: EventKind,
    pub text: String,
}

#[derive(Debug, Default)]
struct Buffer {
    lines: Vec<Arc<str>>,
    bytes: usize,
    cap: usize,
    /// Lines not kept because the cap was reached.
    dropped: u64,
}

/// The lines recorded so far, shared between the recorder (on the driver)
/// and whoever exports.
#[derive(Debug, Clone)]
pub struct Recording(Store);

#[derive(Debug, Clone)]
enum Store {
    Memory(Arc<Mutex<Buffer>>),
    Spool(Arc<Spool>),
}

/// A spool file and the thread that appends to it.
#[derive(Debug)]
struct Spool {
    path: PathBuf,
    tx: Mutex<mpsc::Sender<SpoolJob>>,
    /// Bytes sent to the writer and lines past the cap (counted on the
    /// sender's side, so the cap holds without asking the thread).
    sent: Mutex<(u64, u64)>,
    cap: u64,
}

enum SpoolJob {
    Line(String),
    /// Flush, then answer with the file's length and whether writing failed.
    Sync(mpsc::Sender<(u64, bool)>),
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Recording {
    /// Lines kept in memory, up to `cap_bytes`.
    pub fn new(cap_bytes: usize) -> Self {
        Recording(Store::Memory(Arc::new(Mutex::new(Buffer {
            cap: cap_bytes,
            ..Buffer::default()
        }))))
    }

    /// Lines appended to a file in `dir` (named after this process,
    /// removed when the last handle goes), up to `cap_bytes`. Spool files
    /// left by processes that are gone (a SIGKILL) are removed. The caller
    /// never touches the disk: the writer thread creates the file, and a
    /// spool that could not be written makes the trace say it is incomplete.
    ///
    /// The writer thread is left for the caller to start
    /// ([`SpoolWriter::start`]): the TUI starts it after its first frame.
    /// Lines recorded meanwhile wait in the channel.
    pub fn spooled_later(dir: &Path, cap_bytes: u64) -> (Self, SpoolWriter) {
        let path = dir.join(format!("trace-{}.spool", std::process::id()));
        let (tx, rx) = mpsc::channel::<SpoolJob>();
        let recording = Recording(Store::Spool(Arc::new(Spool {
            path: path.clone(),
            tx: Mutex::new(tx),
            sent: Mutex::new((0, 0)),
            cap: cap_bytes,
        })));
        let writer = SpoolWriter {
            dir: dir.to_path_buf(),
            path,
            rx,
        };
        (recording, writer)
    }
}

/// The thread that writes a spooled [`Recording`], not started yet.
#[derive(Debug)]
pub struct SpoolWriter {
    dir: PathBuf,
    path: PathBuf,
    rx: mpsc::Receiver<SpoolJob>,
}

impl SpoolWriter {
    /// Start writing. On failure nothing is written: every line is counted
    /// as dropped, so the trace says it is incomplete.
    pub fn start(self) -> std::io::Result<()> {
        let SpoolWriter {
            dir,
            path: file_path,
            rx,
        } = self;
        std::thread::Builder::new()
            .name("trace-spool".into())
            .spawn(move || {
                let opened = std::fs::create_dir_all(&dir).and_then(|()| {
                    remove_stale_spools(&dir);
                    std::fs::File::create(&file_path)
                });
                let mut failed = opened.is_err();
                if let Err(e) = &opened {
                    tracing::warn!("trace spool {}: {e}; recording stops", file_path.display());
                }
                let mut out = opened.ok().map(std::io::BufWriter::new);
                let mut len = 0u64;
                for job in rx {
                    match job {
                        SpoolJob::Line(line) if !failed => {
                            let Some(out) = out.as_mut() else { continue };
                            let ok = out
                                .write_all(line.as_bytes())
                                .and_then(|()| out.write_all(b"\n"));
                            match ok {
                                Ok(()) => len += line.len() as u64 + 1,
                                Err(e) => {
                                    tracing::warn!("trace spool: {e}; recording stops");
                                    failed = true;
                                }
                            }
                        }
                        SpoolJob::Line(_) => {}
                        SpoolJob::Sync(reply) => {
                            if let Some(out) = out.as_mut() {
                                failed |= out.flush().is_err();
                            }
                            let _ = reply.send((len, failed));
                        }
                    }
                }
            })?;
        Ok(())
    }
}

impl Recording {
    fn push(&self, line: String) {
        match &self.0 {
            Store::Memory(buffer) => {
                let mut buffer = buffer.lock().unwrap_or_else(PoisonError::into_inner);
                if buffer.bytes + line.len() > buffer.cap {
                    buffer.dropped += 1;
                    return;
                }
                buffer.bytes += line.len() + 1;
                buffer.lines.push(line.into());
            }
            Store::Spool(spool) => {
                let mut sent = spool.sent.lock().unwrap_or_else(PoisonError::into_inner);
                if sent.0 + line.len() as u64 + 1 > spool.cap {
                    sent.1 += 1;
                    return;
                }
                sent.0 += line.len() as u64 + 1;
                let tx = spool.tx.lock().unwrap_or_else(PoisonError::into_inner);
                if tx.send(SpoolJob::Line(line)).is_err() {
                    sent.1 += 1;
                }
            }
        }
    }

    /// What is recorded so far: lines in memory (shared, not copied), or
    /// the spool's file and how much of it is written. Waits for the spool
    /// thread to flush: call it off the UI loop.
    fn lines(&self) -> Lines {
        match &self.0 {
            Store::Memory(buffer) => {
                let buffer = buffer.lock().unwrap_or_else(PoisonError::into_inner);
                Lines::Memory(buffer.lines.clone(), buffer.dropped)
            }
            Store::Spool(spool) => {
                let (reply, answer) = mpsc::channel();
                let sent = spool
                    .tx
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .send(SpoolJob::Sync(reply));
                let dropped = spool.sent.lock().unwrap_or_else(PoisonError::into_inner).1;
                match sent.ok().and_then(|()| answer.recv().ok()) {
                    Some((len, failed)) => Lines::Spool {
                        path: spool.path.clone(),
                        len,
                        dropped: dropped + u64::from(failed),
                        _keep: spool.clone(),
                    },
                    None => Lines::Memory(Vec::new(), dropped + 1),
                }
            }
        }
    }
}

/// Spool files in `dir` whose process is gone.
fn remove_stale_spools(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("trace-"))
            .and_then(|n| n.strip_suffix(".spool"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The recorded lines a snapshot writes.
#[derive(Debug, Clone)]
enum Lines {
    Memory(Vec<Arc<str>>, u64),
    Spool {
        path: PathBuf,
        /// Bytes of the file that were written when the snapshot was taken.
        len: u64,
        dropped: u64,
        /// The file stays while the snapshot needs it.
        _keep: Arc<Spool>,
    },
}

impl Lines {
    fn dropped(&self) -> u64 {
        match self {
            Lines::Memory(_, dropped) | Lines::Spool { dropped, .. } => *dropped,
        }
    }

    /// Each line, in order.
    fn for_each(&self, mut f: impl FnMut(&str) -> std::io::Result<()>) -> std::io::Result<usize> {
        match self {
            Lines::Memory(lines, _) => {
                for line in lines {
                    f(line)?;
                }
                Ok(lines.len())
            }
            Lines::Spool { len: 0, .. } => Ok(0),
            Lines::Spool { path, len, .. } => {
                use std::io::{BufRead, Read};
                let file = std::fs::File::open(path)?;
                let mut reader = std::io::BufReader::new(file.take(*len));
                let mut line = String::new();
                let mut count = 0;
                while reader.read_line(&mut line)? > 0 {
                    f(line.trim_end_matches('\n'))?;
                    count += 1;
                    line.clear();
                }
                Ok(count)
            }
        }
    }
}

/// Records every input and event into a [`Recording`].
#[derive(Debug)]
pub struct Recorder {
    recording: Recording,
    origin: Instant,
}

impl Recorder {
    /// Records for `engine` (its start is the trace's time zero).
    pub fn new(engine: &Engine, recording: Recording) -> Self {
        Self {
            recording,
            origin: engine.origin(),
        }
    }

    fn micros(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_micros()).unwrap_or(u64::MAX)
    }

    fn push(&self, line: &TraceLine) {
        match serde_json::to_string(line) {
            Ok(text) => self.recording.push(text),
            Err(e) => tracing::warn!("trace line not recorded: {e}"),
        }
    }
}

impl Tap for Recorder {
    fn input(&mut self, at: Instant, input: &Input) {
        self.push(&TraceLine::Input {
            t_us: self.micros(at),
            input: input.clone(),
        });
    }

    fn events(&mut self, _engine: &Engine, events: &[LifecycleEvent]) {
        for event in events {
            self.push(&TraceLine::Event(EventLine {
                t_us: self.micros(event.at),
                t_ms: event.t_ms,
                id: event.id,
                parent: event.parent,
                kind: event.kind,
                backend: event.backend.to_string(),
                conversation: event.conversation,
                event: event.event.clone(),
                text: event.text(),
            }));
        }
    }
}

/// Everything a trace file holds, taken on the caller's thread; writing it
/// is [`Snapshot::write_to`], wherever the caller likes.
#[derive(Debug, Clone)]
pub struct Snapshot {
    header: Header,
    recording: Option<Recording>,
    requests: Vec<RequestLine>,
}

/// What a written trace holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub inputs_and_events: usize,
    pub requests: usize,
    pub restored: usize,
    pub bytes: u64,
}

impl Snapshot {
    /// The trace of `engine` so far. `recording` is `None` when nothing was
    /// recorded (then only the requests are in it, and it is incomplete).
    /// Cheap: the recorded lines are read when the trace is written.
    pub fn take(
        engine: &Engine,
        recording: Option<&Recording>,
        backends: Value,
        redact: bool,
    ) -> Self {
        let requests: Vec<RequestLine> = engine
            .registry()
            .all()
            .into_iter()
            .map(|r| request_line(engine, r))
            .collect();
        let has_restored = requests.iter().any(|r| r.restored);
        let header = Header {
            format: TRACE_FORMAT.into(),
            version: TRACE_FORMAT_VERSION,
            event_version: EVENT_FORMAT_VERSION,
            loreweave: env!("CARGO_PKG_VERSION").into(),
            started_ms: engine.wall_ms(engine.origin()),
            exported_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            seed: engine.seed(),
            // Settled when written (lines past the cap are known then).
            complete: recording.is_some(),
            redacted: redact,
            has_restored,
            engine: engine.config().clone(),
            backends,
        };
        Self {
            header,
            recording: recording.cloned(),
            requests,
        }
    }

    /// Write the trace as JSON Lines. With a spooled recording this waits
    /// for the spool to be flushed and reads it: never on the UI loop.
    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<Written> {
        let mut out = Counting {
            inner: out,
            bytes: 0,
        };
        let lines = match &self.recording {
            Some(recording) => recording.lines(),
            None => Lines::Memory(Vec::new(), 0),
        };
        let mut header = self.header.clone();
        header.complete &= lines.dropped() == 0;
        let redact = header.redacted;
        let line = |value: &TraceLine| -> std::io::Result<String> {
            if !redact {
                return serde_json::to_string(value).map_err(std::io::Error::other);
            }
            let mut value = serde_json::to_value(value).map_err(std::io::Error::other)?;
            redact_value(&mut value, None);
            serde_json::to_string(&value).map_err(std::io::Error::other)
        };
        // The header holds settings, not the user's text: never redacted.
        let header = serde_json::to_string(&TraceLine::Header(Box::new(header)))
            .map_err(std::io::Error::other)?;
        writeln!(out, "{header}")?;
        let recorded = lines.for_each(|text| {
            if redact {
                let mut value: Value = serde_json::from_str(text).map_err(std::io::Error::other)?;
                redact_value(&mut value, None);
                writeln!(out, "{value}")
            } else {
                writeln!(out, "{text}")
            }
        })?;
        for request in &self.requests {
            writeln!(out, "{}", line(&TraceLine::Request(request.clone()))?)?;
        }
        out.flush()?;
        Ok(Written {
            inputs_and_events: recorded,
            requests: self.requests.len(),
            restored: self.requests.iter().filter(|r| r.restored).count(),
            bytes: out.bytes,
        })
    }

    /// Write the trace to `path` (created or truncated), through a
    /// temporary file renamed into place, so a crash never leaves half a
    /// trace under the name asked for.
    pub fn write_file(&self, path: &Path) -> std::io::Result<Written> {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "trace".into());
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let result = (|| {
            let file = std::fs::File::create(&tmp)?;
            let mut out = std::io::BufWriter::new(file);
            let written = self.write_to(&mut out)?;
            let file = out
                .into_inner()
                .map_err(std::io::IntoInnerError::into_error)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)?;
            Ok(written)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

struct Counting<'a, W: Write> {
    inner: &'a mut W,
    bytes: u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn request_line(engine: &Engine, r: &Request) -> RequestLine {
    RequestLine {
        id: r.id,
        parent: r.parent,
        conversation: r.conversation,
        kind: r.kind,
        backend: r.backend.to_string(),
        label: r.label.to_string(),
        state: r.phase.label().to_string(),
        outcome: r.outcome().cloned(),
        attempts: r.attempt,
        late_drops: r.late_drops,
        created_ms: engine.wall_ms(r.created),
        dispatched_ms: r.dispatched.map(|at| engine.wall_ms(at)),
        ended_ms: r.ended.map(|at| engine.wall_ms(at)),
        restored: r.restored,
        timeline: r.timeline.iter().map(timeline_line).collect(),
    }
}

fn timeline_line(entry: &TimelineEntry) -> TimelineLine {
    TimelineLine {
        offset_ms: entry.offset_ms,
        event: entry.event.clone(),
        text: entry.text(),
    }
}

/// Keys whose string values are structure, not the user's text: tags,
/// ids, names from the config, states.
const KEEP: &[&str] = &[
    "type",
    "format",
    "loreweave",
    "input",
    "command",
    "event",
    "outcome",
    "wait",
    "after",
    "phase",
    "state",
    "from",
    "to",
    "backend",
    "class",
    "mode",
];

/// Replace every free text in `value` by its length and hash. `key` is
/// the key `value` sits under.
pub fn redact_value(value: &mut Value, key: Option<&str>) {
    match value {
        Value::String(text) if !structural(key, text) => {
            *text = redacted(text);
        }
        Value::Array(items) => {
            for item in items {
                // Array items inherit the key (a list of ids stays ids).
                redact_value(item, key);
            }
        }
        Value::Object(map) => {
            // A joined outcome's detail is the leader's id.
            let joined = map.get("outcome").and_then(Value::as_str) == Some("joined");
            for (k, v) in map.iter_mut() {
                if joined && k == "detail" {
                    continue;
                }
                redact_value(v, Some(k));
            }
        }
        _ => {}
    }
}

/// Whether the string `text` under `key` is structure to keep. Ids are kept
/// only when they are request ids (a passage's id holds its file name), and
/// kinds only when they are request kinds (a passage's kind comes from its
/// document).
fn structural(key: Option<&str>, text: &str) -> bool {
    match key {
        Some("id" | "parent" | "leader") => ulid::Ulid::from_string(text).is_ok(),
        Some("kind") => [
            "scenario", "turn", "retrieve", "embed", "chat", "generate", "ingest",
        ]
        .contains(&text),
        Some(k) => KEEP.contains(&k),
        None => false,
    }
}

/// `[redacted len=N b3=HASH]`.
pub fn redacted(text: &str) -> String {
    let hash = blake3::hash(text.as_bytes()).to_hex();
    format!(
        "[redacted len={} b3={}]",
        text.chars().count(),
        &hash.as_str()[..12]
    )
}

/// The backends a trace's header names: each name with its provider, model
/// and address, never a key. Addresses lose any user:password and query.
pub fn backends_of(config: &crate::config::Config) -> Value {
    let mut map = serde_json::Map::new();
    let llm = &config.llm;
    map.insert(
        llm.name().to_string(),
        serde_json::json!({
            "role": "generator",
            "provider": format!("{:?}", llm.provider).to_lowercase(),
            "model": llm.model,
            "url": llm.endpoint().map(|u| without_secrets(&u)),
        }),
    );
    map.insert(
        config.retriever.name().to_string(),
        serde_json::json!({
            "role": "retriever",
            "provider": format!("{:?}", config.retriever.provider).to_lowercase(),
            "url": (!config.retriever.url.is_empty()).then(|| without_secrets(&config.retriever.url)),
            "kb": config.kb.name,
        }),
    );
    if let Some(name) = config.embeddings.name() {
        map.insert(
            name.to_string(),
            serde_json::json!({
                "role": "embedder",
                "provider": format!("{:?}", config.embeddings.provider).to_lowercase(),
                "model": config.embeddings.model,
                "url": config.embeddings.endpoint().map(|u| without_secrets(&u)),
            }),
        );
    }
    Value::Object(map)
}

/// `url` without user info, query or fragment.
fn without_secrets(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => "[unparsable address]".into(),
    }
}

/// Parse a trace (every line), for tools and tests.
pub fn parse(text: &str) -> Result<Vec<TraceLine>, (usize, serde_json::Error)> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| serde_json::from_str(line).map_err(|e| (n + 1, e)))
        .collect()
}

/// How long a headless command waits for a trace to be written.
pub const WRITE_BUDGET: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_structure_and_hides_text() {
        let mut value = serde_json::json!({
            "type": "event",
            "id": "01J00000000000000000000000",
            "backend": "local",
            "event": {"event": "created", "label": "who guards the waystone?"},
            "text": "created",
            "outcome": {"outcome": "joined", "detail": "01J00000000000000000000001"},
            "passages": [{"id": "secret-plans.md#0", "kind": "vault", "source": "secret-plans.md", "text": "the vault code is 1234"}],
            "n": 3
        });
        redact_value(&mut value, None);
        assert_eq!(value["type"], "event");
        assert_eq!(value["backend"], "local");
        assert_eq!(value["event"]["event"], "created");
        assert_eq!(value["n"], 3);
        assert_eq!(value["outcome"]["detail"], "01J00000000000000000000001");
        let label = value["event"]["label"].as_str().unwrap_or_default();
        assert!(label.starts_with("[redacted len=24 b3="), "{label}");
        let text = value.to_string();
        for secret in ["waystone", "1234", "secret", "vault"] {
            assert!(!text.contains(secret), "{secret} survived: {text}");
        }
        // Equal texts hash equal.
        assert_eq!(redacted("a"), redacted("a"));
        assert_ne!(redacted("a"), redacted("b"));
    }

    #[test]
    fn a_spooled_recording_writes_every_line_in_order_and_removes_its_file() {
        let dir = std::env::temp_dir().join(format!("lw-spool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        // A spool of a process that is gone is removed at start.
        let stale = dir.join("trace-4000000000.spool");
        std::fs::write(&stale, "old").expect("stale spool");
        let (recording, writer) = Recording::spooled_later(&dir, 1 << 20);
        let path = dir.join(format!("trace-{}.spool", std::process::id()));
        // Lines recorded before the writer starts wait for it; nothing
        // touches the disk until then.
        for n in 0..400 {
            recording.push(format!("{{\"n\":{n}}}"));
        }
        assert!(!path.exists() && stale.exists());
        writer.start().expect("spool");
        for n in 400..1000 {
            recording.push(format!("{{\"n\":{n}}}"));
        }
        let lines = recording.lines();
        let mut seen = Vec::new();
        let count = lines
            .for_each(|line| {
                seen.push(line.to_string());
                Ok(())
            })
            .expect("read back");
        assert_eq!(count, 1000);
        assert_eq!(seen[0], "{\"n\":0}");
        assert_eq!(seen[999], "{\"n\":999}");
        assert_eq!(lines.dropped(), 0);
        assert!(!stale.exists(), "the stale spool is still there");
        assert!(path.exists());
        drop(lines);
        drop(recording);
        assert!(!path.exists(), "the spool outlived its recording");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn past_the_cap_lines_are_counted_not_kept() {
        let recording = Recording::new(25);
        for n in 0..5 {
            recording.push(format!("line {n}"));
        }
        let lines = recording.lines();
        assert_eq!(lines.for_each(|_| Ok(())).expect("memory"), 3);
        assert_eq!(lines.dropped(), 2);
    }

    #[test]
    fn addresses_lose_their_secrets() {
        assert_eq!(
            without_secrets("https://user:pw@example.com:8080/v1?key=abc#x"),
            "https://example.com:8080/v1"
        );
    }
}
