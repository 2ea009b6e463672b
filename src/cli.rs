//! Command-line interface (clap). With no subcommand, loreweave opens the
//! TUI; `ask` and `scenario` do the same jobs headless; `config` manages the
//! config file. Backend flags override the config file and the environment
//! (file < environment < flags). API keys are never accepted here: only the
//! name of the environment variable that holds one, in the config file.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "loreweave",
    version,
    about = "A terminal workbench for retrieval-augmented chat and scenario generation, with a live view of every request's lifecycle.",
    after_help = after_help()
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

impl Cli {
    /// The command line, parsed. With no arguments at all (the TUI on the
    /// defaults, the most common start) clap is not run: building its
    /// command tree costs ~0.3 ms and faults in code pages before the first
    /// frame. The values are what clap gives for no arguments (a test
    /// checks it).
    pub fn from_args() -> Cli {
        if std::env::args_os().len() <= 1 {
            return Cli::without_arguments();
        }
        Cli::parse()
    }

    fn without_arguments() -> Cli {
        Cli {
            global: GlobalArgs {
                config: None,
                llm: None,
                llm_url: None,
                retriever: None,
                retriever_url: None,
                embeddings: None,
                embeddings_url: None,
                retrieval_timeout: None,
                seed: None,
                history: 10_000,
                no_rag: false,
                kb: None,
                mouse: false,
                ascii: false,
                log_level: "info".to_owned(),
            },
            command: None,
        }
    }
}

#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Config file to read instead of the default ($XDG_CONFIG_HOME/loreweave/config.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Chat model: offline, openai:MODEL or ollama:MODEL (env LOREWEAVE_LLM).
    #[arg(long, global = true, value_name = "PROVIDER[:MODEL]")]
    pub llm: Option<String>,
    /// Base URL of the chat model's server (env LOREWEAVE_LLM_URL).
    #[arg(long, global = true, value_name = "URL")]
    pub llm_url: Option<String>,
    /// Retriever: local or hayhooks (env LOREWEAVE_RETRIEVER).
    #[arg(long, global = true, value_name = "PROVIDER")]
    pub retriever: Option<String>,
    /// URL of the Hayhooks pipeline's run endpoint (env LOREWEAVE_RETRIEVER_URL).
    #[arg(long, global = true, value_name = "URL")]
    pub retriever_url: Option<String>,
    /// Embeddings: none, openai:MODEL or ollama:MODEL (env LOREWEAVE_EMBEDDINGS).
    #[arg(long, global = true, value_name = "PROVIDER[:MODEL]")]
    pub embeddings: Option<String>,
    /// Base URL of the embeddings server (env LOREWEAVE_EMBEDDINGS_URL).
    #[arg(long, global = true, value_name = "URL")]
    pub embeddings_url: Option<String>,
    /// Retrieval deadline, e.g. `10s`, `1.5s` or `200ms` (a bare number is seconds); default from the config (10 s).
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub retrieval_timeout: Option<Duration>,
    /// Seed for the offline generator (default: derived from the prompt).
    #[arg(long, global = true, value_name = "N")]
    pub seed: Option<u64>,
    /// Finished requests kept for the lifecycle inspector.
    #[arg(long, global = true, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub history: u64,
    /// Answer and generate without retrieval (no lore).
    #[arg(long, global = true)]
    pub no_rag: bool,
    /// Knowledge base to use (env LOREWEAVE_KB; default `default`, or the built-in `sample` lore while `default` is empty).
    #[arg(long, global = true, value_name = "NAME")]
    pub kb: Option<String>,
    /// Mouse capture in the TUI: wheel scrolling and click-to-focus (as `[ui] mouse = true`; off by default so the terminal's own selection works).
    #[arg(long, global = true)]
    pub mouse: bool,
    /// Draw borders and glyphs in ASCII only (as `[ui] ascii = true`).
    #[arg(long, global = true)]
    pub ascii: bool,
    /// Log level for the log file: error, warn, info, debug or trace (RUST_LOG wins when set).
    #[arg(long, global = true, value_name = "LEVEL", default_value = "info", value_parser = ["error", "warn", "info", "debug", "trace"])]
    pub log_level: String,
}

/// `--trace FILE [--redact]` on the headless commands.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TraceArgs {
    /// Write a JSON Lines trace of the run to FILE: a header, every engine input and lifecycle event with its time, then every request (format: docs/trace-format.md).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<std::path::PathBuf>,
    /// With --trace: replace every text in the trace (queries, passages, tokens, answers) with its length and a hash.
    #[arg(long, requires = "trace")]
    pub redact: bool,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Ask a question of the knowledge base and print the answer (markdown).
    Ask {
        /// The question, e.g. "who guards the waystone?", or `-` to read it from standard input. Text piped in with a question is added as context: the answer's first passage, [1].
        question: String,
        /// Cap on what is read from standard input, e.g. `1MiB` (the default) or `200KB`.
        #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = parse_size)]
        max_stdin: u64,
        /// Emit JSON Lines: lifecycle events, then the result and metrics.
        #[arg(long)]
        json: bool,
        /// Continue this saved session (created when missing): its earlier turns go to the model as history, and the new turn is saved.
        #[arg(long, value_name = "NAME")]
        session: Option<String>,
        #[command(flatten)]
        trace: TraceArgs,
    },
    /// Generate a scenario and print it (markdown).
    Scenario {
        /// What the scenario is for, e.g. "the first encounter", or `-` to read it from standard input. Text piped in with a prompt is added as context: the first passage.
        prompt: String,
        /// Cap on what is read from standard input, e.g. `1MiB` (the default) or `200KB`.
        #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = parse_size)]
        max_stdin: u64,
        /// Emit JSON Lines: lifecycle events, then the result and metrics.
        #[arg(long)]
        json: bool,
        /// Save the scenario into this session (created when missing).
        #[arg(long, value_name = "NAME")]
        session: Option<String>,
        #[command(flatten)]
        trace: TraceArgs,
    },
    /// Load-test the configured stack: run N pipelines, C at a time, through the configured backends and their limits, then print throughput, latency per stage, outcomes and errors.
    Load {
        /// Pipelines to run (default 100 without --duration; with it, as many as the duration allows).
        #[arg(short = 'n', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        requests: Option<u64>,
        /// Pipelines in flight at once.
        #[arg(short = 'c', long, value_name = "C", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        concurrency: u64,
        /// Stop after this long, e.g. `30s` or `2m` (whichever of N and D ends first).
        #[arg(short = 'z', long, value_name = "D", value_parser = parse_duration)]
        duration: Option<Duration>,
        /// What each pipeline is: a question (retrieve, chat) or a scenario (retrieve, generate).
        #[arg(long, value_enum, default_value = "ask")]
        kind: crate::headless::load::LoadKind,
        /// Prompts to use in turn, one per line (default: questions about the sample lore).
        #[arg(long, value_name = "FILE")]
        prompts: Option<PathBuf>,
        /// Show a progress bar instead of the live lifecycle view.
        #[arg(long)]
        no_tui: bool,
        /// Print the summary as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Manage knowledge bases: add your documents, search, list, sync, evaluate.
    Kb {
        #[command(subcommand)]
        action: KbCmd,
    },
    /// Saved conversations: list, show, export, rename, delete.
    Sessions {
        #[command(subcommand)]
        action: SessionsCmd,
    },
    /// Manage the config file.
    Config {
        #[command(subcommand)]
        action: ConfigCmd,
    },
    /// Internal: extract a PDF's text to stdout (the knowledge base runs
    /// this in a child process; see `kb::loaders`).
    #[command(hide = true, name = "__extract-pdf")]
    ExtractPdf {
        /// The PDF, or `-` for stdin.
        path: PathBuf,
        /// Cap the address space at this many bytes.
        #[arg(long, value_name = "BYTES")]
        max_memory: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Write a commented default config file (refuses to overwrite without --force).
    Init {
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Validate the config file: unknown keys, type errors and bad values, with line and column.
    Check,
    /// Print where the config file is read from.
    Path,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCmd {
    /// The sessions, most recent first: name, messages, last activity.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// A session's conversation and scenarios.
    Show {
        name: String,
        /// The whole session as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Write a session (messages, cited passages, scenarios) as markdown or JSON.
    Export {
        name: String,
        #[arg(long, default_value = "md", value_parser = ["md", "json"])]
        format: String,
        /// Write to FILE (never overwritten) instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Give a session another name.
    Rename { old: String, new: String },
    /// Delete a session for good (its text is wiped from the database file).
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum KbCmd {
    /// Ingest files, folders (recursively, honouring .gitignore/.ignore) and web pages (URLs); creates the knowledge base if needed.
    Add {
        /// Files, folders or http(s) URLs.
        #[arg(required = true, value_name = "PATH|URL")]
        paths: Vec<String>,
        /// Also walk into hidden files and folders.
        #[arg(long)]
        hidden: bool,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-check every added folder, file and URL: index what changed, drop files that were deleted.
    Sync {
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drop documents: a file, a whole folder, or a path as `kb list` shows it.
    Remove {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<String>,
    },
    /// List the documents: path, title, chunks, bytes, when indexed.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Search the knowledge base (BM25) and show the passages found.
    Search {
        query: String,
        /// How many passages to show.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
        top_k: u64,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Re-read and re-index every document from its source, then compact the index.
    Rebuild,
    /// Documents, chunks, bytes on disk, embedded chunks.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// List the knowledge bases.
    Bases {
        #[arg(long)]
        json: bool,
    },
    /// Retrieval quality on a JSON Lines file of {"question": ..., "expect": ["source.md", ...]}: recall@k and MRR.
    Eval {
        file: PathBuf,
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
        top_k: u64,
        #[arg(long)]
        json: bool,
    },
}

fn after_help() -> String {
    format!(
        "Config: {} (see `loreweave config init`).\n\
         Logs go to {}/loreweave.log.<date> (never to the screen).\n\
         Set the level with --log-level or RUST_LOG.\n\n\
         Exit codes: 0 done, 1 the request failed or timed out, 2 bad usage or a bad config\n\
         (standard input over --max-stdin or not text is bad usage); 128+N ended by signal N.",
        crate::config::default_path().map_or_else(
            || "(no config directory)".to_string(),
            |p| p.display().to_string()
        ),
        crate::logging::log_dir().display()
    )
}

pub use crate::domain::parse_duration;

fn parse_size(text: &str) -> Result<u64, String> {
    crate::config::parse_size(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn no_arguments_give_what_clap_gives() {
        let parsed = Cli::try_parse_from(["loreweave"]).expect("no arguments parse");
        assert_eq!(
            format!("{:?}", Cli::without_arguments()),
            format!("{parsed:?}")
        );
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
