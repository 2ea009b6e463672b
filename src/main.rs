//! The loreweave binary: command line -> logging -> TUI or a headless job.

use std::process::ExitCode;

use clap::Parser;
use loreweave::cli::{Cli, Cmd};
use loreweave::headless::{self, Job};
use loreweave::tui::{self, Exit};
use loreweave::{app, logging};

fn main() -> ExitCode {
    let started = std::time::Instant::now();
    let cli = Cli::parse();
    let log_dir = logging::log_dir();
    // A log that cannot be opened must not stop the tool; say so on stderr
    // before any screen is drawn.
    let _guard = match logging::init(&log_dir, &cli.global.log_level) {
        Ok(guard) => Some(guard),
        Err(error) => {
            eprintln!(
                "loreweave: cannot write logs to {}: {error}",
                log_dir.display()
            );
            None
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("loreweave: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let cfg = app::engine_config(&cli.global);
    let result = runtime.block_on(async {
        match cli.command {
            None => tui::run(cfg, started).await.map(|exit| match exit {
                Exit::Quit => ExitCode::SUCCESS,
                Exit::Signal(n) => ExitCode::from(128u8.saturating_add(n as u8)),
            }),
            Some(Cmd::Ask { question, json }) => {
                headless::run(Job::Ask { question }, cfg, json).await
            }
            Some(Cmd::Scenario { prompt, json }) => {
                let seed = cli.global.seed;
                headless::run(Job::Scenario { prompt, seed }, cfg, json).await
            }
        }
    });
    // Don't wait for tasks still running (a hung backend): they are moot now.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!(
                "loreweave: {}",
                loreweave::sanitize::one_line(&format!("{error:#}"))
            );
            ExitCode::FAILURE
        }
    }
}
