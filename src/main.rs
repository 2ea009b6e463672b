//! The loreweave binary: command line -> config -> logging -> TUI, a
//! headless job, or a config command.

use std::process::ExitCode;

use clap::Parser;
use loreweave::cli::{Cli, Cmd, ConfigCmd};
use loreweave::headless::{self, Job, stdin};
use loreweave::sanitize::one_line;
use loreweave::tui::{self, Exit};
use loreweave::{app, config, logging, startup};

/// Bad usage or a bad config, as clap reports bad flags.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    // Each start-up step is timed (`start-up steps` in the log).
    let started = startup::begin();
    let cli = Cli::parse();
    startup::mark("flags");
    // The PDF extractor child: before config and logging, which it needs not.
    if let Some(Cmd::ExtractPdf { path, max_memory }) = &cli.command {
        return loreweave::kb::loaders::extract_pdf_command(path, *max_memory);
    }
    if let Some(Cmd::Config { action }) = &cli.command {
        return config_command(action, &cli);
    }
    if let Some(Cmd::Sessions { action }) = cli.command {
        return loreweave::headless::sessions::run(action);
    }
    let config = match app::load_config(&cli.global) {
        Ok(config) => config,
        Err(error) => {
            // Located problems are in the file; others (a bad flag or
            // environment value) are not, so they get no file name.
            let located = error
                .downcast_ref::<config::ConfigError>()
                .is_some_and(|e| !e.diagnostics().is_empty());
            let path = config::resolve_path(cli.global.config.as_deref()).filter(|_| located);
            let at = path
                .map(|p| format!("{}: ", p.display()))
                .unwrap_or_default();
            eprintln!("loreweave: bad configuration:");
            for line in format!("{error:#}").lines() {
                eprintln!("  {at}{}", one_line(line));
            }
            eprintln!("(`loreweave config check` lists every problem)");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    startup::mark("config");
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
    startup::mark("logging");
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
    startup::mark("runtime");
    let cfg = app::engine_config(&config, &cli.global);
    if !matches!(cli.command, Some(Cmd::Kb { .. }))
        && let Err(error) = app::check_kb(&config, &cli.global)
    {
        eprintln!("loreweave: {}", one_line(&format!("{error:#}")));
        return ExitCode::from(EXIT_USAGE);
    }
    let kb_context = match app::kb_context(&config, &cli.global) {
        Ok(ctx) => ctx,
        Err(error) => {
            eprintln!("loreweave: {}", one_line(&format!("{error:#}")));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    startup::mark("knowledge-base checks");
    let result = runtime.block_on(async {
        match cli.command {
            None => {
                let (config_for_kb, args) = (config.clone(), cli.global.clone());
                let open: tui::KbOpener = Box::new(move || app::open_kb(&config_for_kb, &args));
                tui::run(cfg, &config, open, started)
                    .await
                    .map(|exit: Exit| ExitCode::from(exit.code()))
            }
            Some(Cmd::Ask {
                question,
                max_stdin,
                json,
                session,
                trace,
            }) => {
                let input = match stdin::resolve(question, stdin::ASK, max_stdin).await {
                    Ok(input) => input,
                    Err(error) => return Ok(stdin_failed(&error)),
                };
                let kb = app::open_kb(&config, &cli.global);
                let job = Job::Ask {
                    question: input.text,
                };
                headless::run(job, cfg, &config, kb, json, session, trace, input.context).await
            }
            Some(Cmd::Scenario {
                prompt,
                max_stdin,
                json,
                session,
                trace,
            }) => {
                let input = match stdin::resolve(prompt, stdin::SCENARIO, max_stdin).await {
                    Ok(input) => input,
                    Err(error) => return Ok(stdin_failed(&error)),
                };
                let seed = cli.global.seed;
                let kb = app::open_kb(&config, &cli.global);
                let job = Job::Scenario {
                    prompt: input.text,
                    seed,
                };
                headless::run(job, cfg, &config, kb, json, session, trace, input.context).await
            }
            Some(Cmd::Kb { action }) => headless::kb::run(action, kb_context).await,
            Some(Cmd::Config { .. } | Cmd::ExtractPdf { .. } | Cmd::Sessions { .. }) => {
                Ok(ExitCode::SUCCESS)
            }
        }
    });
    // Don't wait for tasks still running (a hung backend): they are moot now.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("loreweave: {}", one_line(&format!("{error:#}")));
            ExitCode::FAILURE
        }
    }
}

/// Standard input could not be used: the invocation's fault, found before
/// any request ran, so bad usage (2), not a failed request (1).
fn stdin_failed(error: &stdin::StdinError) -> ExitCode {
    eprintln!("loreweave: {}", one_line(&error.to_string()));
    ExitCode::from(EXIT_USAGE)
}

/// `loreweave config init|check|path`.
fn config_command(action: &ConfigCmd, cli: &Cli) -> ExitCode {
    let Some(path) = config::resolve_path(cli.global.config.as_deref()) else {
        eprintln!("loreweave: no config directory on this system; pass --config FILE");
        return ExitCode::from(EXIT_USAGE);
    };
    match action {
        ConfigCmd::Path => {
            let state = if path.exists() {
                ""
            } else {
                " (not created yet: `loreweave config init`)"
            };
            println!("{}{state}", path.display());
            ExitCode::SUCCESS
        }
        ConfigCmd::Init { force } => match config::init(&path, *force) {
            Ok(path) => {
                println!("wrote {}", path.display());
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("loreweave: {}", one_line(&error.to_string()));
                ExitCode::from(EXIT_USAGE)
            }
        },
        ConfigCmd::Check => {
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(error)
                    if error.kind() == std::io::ErrorKind::NotFound
                        && cli.global.config.is_none() =>
                {
                    println!("{}: no file; the built-in defaults apply", path.display());
                    return ExitCode::SUCCESS;
                }
                Err(error) => {
                    eprintln!("loreweave: cannot read {}: {error}", path.display());
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            let problems = config::check_report(&text);
            if problems.is_empty() {
                println!("{}: OK", path.display());
                ExitCode::SUCCESS
            } else {
                for problem in &problems {
                    eprintln!("{}: {}", path.display(), one_line(&problem.to_string()));
                }
                eprintln!("{} problem(s)", problems.len());
                ExitCode::from(EXIT_USAGE)
            }
        }
    }
}
