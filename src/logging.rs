//! Tracing to a rolling file through tracing-appender's non-blocking writer.
//! Nothing is ever written to the terminal the TUI draws on. Secrets are
//! never passed to tracing in the first place; the file is plain text, no
//! ANSI.

use std::path::{Path, PathBuf};

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// Where logs go: `$XDG_STATE_HOME/loreweave` (usually
/// `~/.local/state/loreweave`), or the data directory where there is no
/// state directory.
pub fn log_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "loreweave")
        .map(|dirs| {
            dirs.state_dir()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| dirs.data_local_dir().to_path_buf())
        })
        .unwrap_or_else(|| std::env::temp_dir().join("loreweave"))
}

/// The filter for `--log-level LEVEL`: loreweave's own lines at `level`,
/// other crates' warnings. At `info`, the targets in `quiet` keep only
/// their warnings and errors (`debug` and `trace` keep everything).
pub fn directives(level: &str, quiet: &[&str]) -> String {
    let mut directives = format!("loreweave={level},warn");
    if level == "info" {
        for target in quiet {
            directives.push_str(&format!(",{target}=warn"));
        }
    }
    directives
}

/// Start logging to a daily-rolled `loreweave.log.YYYY-MM-DD` in `dir`,
/// filtered by [`directives`]. `RUST_LOG` wins over `level` when set. Keep
/// the guard alive: dropping it flushes the log.
pub fn init(dir: &Path, level: &str, quiet: &[&str]) -> std::io::Result<WorkerGuard> {
    std::fs::create_dir_all(dir)?;
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("loreweave.log")
        .max_log_files(7)
        .build(dir)
        .map_err(std::io::Error::other)?;
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::try_new(directives(level, quiet))
            .unwrap_or_else(|_| EnvFilter::new("loreweave=info,warn"))
    });
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .try_init();
    if installed.is_err() {
        // A subscriber is already set (tests): keep it.
    }
    Ok(guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_targets_are_held_to_warnings_at_info_only() {
        let quiet = ["loreweave::engine::flow"];
        assert_eq!(
            directives("info", &quiet),
            "loreweave=info,warn,loreweave::engine::flow=warn"
        );
        assert_eq!(directives("debug", &quiet), "loreweave=debug,warn");
        assert_eq!(directives("error", &quiet), "loreweave=error,warn");
        assert_eq!(directives("info", &[]), "loreweave=info,warn");
        for level in ["error", "warn", "info", "debug", "trace"] {
            assert!(
                EnvFilter::try_new(directives(level, &quiet)).is_ok(),
                "{level}"
            );
        }
    }
}
