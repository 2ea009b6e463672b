//! The loreweave binary: command line -> config -> logging -> TUI, a
//! headless job, or a config command.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

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
    let cli = Cli::from_args();
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
    let tui = cli.command.is_none();
    // A log that cannot be opened must not stop the tool; it is said on
    // stderr, never over the TUI's screen.
    let logs = Arc::new(Mutex::new(Logs::default()));
    let start_logging = {
        let (dir, level, logs) = (
            logging::log_dir(),
            cli.global.log_level.clone(),
            logs.clone(),
        );
        let quiet: &'static [&'static str] = if matches!(cli.command, Some(Cmd::Load { .. })) {
            loreweave::headless::load::QUIET_LOG_TARGETS
        } else {
            &[]
        };
        move || {
            let result = logging::init(&dir, &level, quiet);
            if let Ok(mut logs) = logs.lock() {
                match result {
                    Ok(guard) => logs.guard = Some(guard),
                    Err(error) => {
                        logs.error = Some(format!(
                            "loreweave: cannot write logs to {}: {error}",
                            dir.display()
                        ));
                    }
                }
            }
        }
    };
    if tui {
        // The log writer's thread costs 1.5-2 ms before the first frame;
        // nothing is logged before it, so it starts right after.
        startup::after_first_frame(start_logging);
    } else {
        start_logging();
        print_log_error(&logs);
    }
    // The TUI runs on one thread: its loop, the engine and the backends'
    // I/O share it, and disk and index work goes to the blocking pool, as
    // before. Starting no worker threads saves their start (0.2 to several
    // ms on a loaded machine) and their stacks before the first frame.
    // Headless commands keep two workers.
    let mut builder = if tui {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(2);
        builder
    };
    let runtime = match builder.enable_all().build() {
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
                let mut config = config.clone();
                config.ui.mouse |= cli.global.mouse;
                config.ui.ascii |= cli.global.ascii;
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
            Some(Cmd::Load {
                requests,
                concurrency,
                duration,
                kind,
                prompts,
                no_tui,
                json,
            }) => {
                let prompts = match prompts {
                    Some(path) => match headless::load::read_prompts(&path) {
                        Ok(prompts) => prompts,
                        Err(error) => {
                            eprintln!("loreweave: {}", one_line(&format!("{error:#}")));
                            return Ok(ExitCode::from(EXIT_USAGE));
                        }
                    },
                    None => headless::load::DEFAULT_PROMPTS
                        .iter()
                        .map(|p| (*p).to_owned())
                        .collect(),
                };
                let opts = headless::load::LoadOptions {
                    requests,
                    concurrency: usize::try_from(concurrency).unwrap_or(usize::MAX),
                    duration,
                    kind,
                    prompts,
                    tui: !no_tui,
                    json,
                };
                let kb = app::open_kb(&config, &cli.global);
                headless::load::run(opts, cfg, &config, kb).await
            }
            Some(Cmd::Kb { action }) => headless::kb::run(action, kb_context).await,
            Some(Cmd::Config { .. } | Cmd::ExtractPdf { .. } | Cmd::Sessions { .. }) => {
                Ok(ExitCode::SUCCESS)
            }
        }
    });
    // Don't wait for tasks still running (a hung backend): they are moot now.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    print_log_error(&logs);
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("loreweave: {}", one_line(&format!("{error:#}")));
            ExitCode::FAILURE
        }
    }
}

/// The log writer (its guard flushes it when dropped) or why there is
/// none.
#[derive(Default)]
struct Logs {
    guard: Option<tracing_appender::non_blocking::WorkerGuard>,
    error: Option<String>,
}

/// Say, once, that the log could not be opened.
fn print_log_error(logs: &Mutex<Logs>) {
    if let Some(error) = logs.lock().ok().and_then(|mut logs| logs.error.take()) {
        eprintln!("{error}");
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
