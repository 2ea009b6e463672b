//! Golden tests of what a person sees from the configuration commands: the
//! real binary runs `config check`, `config init` and `config path` (and,
//! for errors met while loading, `ask` with a bad file or a bad override) on
//! the fixtures in tests/fixtures/config/, and its exit code, stdout and
//! stderr are compared with insta snapshots (tests/snapshots/config_golden__*).
//!
//! Invariants: nothing of the machine leaks in. The environment is cleared;
//! HOME and every XDG directory point into a fresh temporary directory, whose
//! path is written `$HOME` in the snapshots; fixture paths are given relative
//! to the crate root (the working directory), so they print the same
//! everywhere.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// The shipped default configuration, as `config init` must write it.
const DEFAULT_TOML: &str = include_str!("../assets/config.toml");

/// A clean home for one run of the binary.
struct Home {
    dir: TempDir,
}

impl Home {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where the binary looks for its config when no `--config` is given.
    fn default_config(&self) -> PathBuf {
        self.path().join(".config/loreweave/config.toml")
    }

    /// Runs the binary in `cwd` with only HOME and the XDG directories set
    /// (plus `env`), and renders exit code, stdout and stderr.
    fn run_in(&self, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
        let home = self.path();
        let output = Command::new(env!("CARGO_BIN_EXE_loreweave"))
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_STATE_HOME", home.join(".local/state"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("XDG_RUNTIME_DIR", home.join("run"))
            .envs(env.iter().copied())
            .output()
            .expect("the loreweave binary runs");
        let code = output
            .status
            .code()
            .map_or_else(|| "killed by a signal".to_string(), |c| c.to_string());
        let text = format!(
            "$ loreweave {}\nexit: {code}\n--- stdout\n{}--- stderr\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        text.replace(&home.display().to_string(), "$HOME")
    }

    /// As [`Home::run_in`], from the crate root.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        self.run_in(Path::new(env!("CARGO_MANIFEST_DIR")), args, env)
    }
}

fn fixture(name: &str) -> String {
    format!("tests/fixtures/config/{name}.toml")
}

/// `config check --config tests/fixtures/config/NAME.toml`.
fn check(name: &str) -> String {
    Home::new().run(&["config", "check", "--config", &fixture(name)], &[])
}

macro_rules! check_cases {
    ($($name:ident),+ $(,)?) => {
        $(
            #[test]
            fn $name() {
                insta::assert_snapshot!(concat!("check_", stringify!($name)), check(stringify!($name)));
            }
        )+
    };
}

check_cases!(
    empty,
    good_minimal,
    good_full,
    unknown_keys,
    type_errors,
    section_as_value,
    bad_urls,
    bad_urls_more,
    bad_durations,
    bad_durations_more,
    bad_limits,
    bad_env_names,
    bad_env_names_more,
    missing_models,
    many_problems,
    syntax_error,
    duplicate_key,
    unicode_columns,
    kb_good,
    kb_good_units,
    kb_bad_name,
    kb_bad_name_hidden,
    kb_bad_name_dots,
    kb_bad_name_long,
    kb_bad_name_empty,
    kb_bad_size,
    kb_bad_values,
    kb_zero_sizes,
    telemetry_good,
    telemetry_bad,
    keys_good,
    keys_bad,
    ui_good,
    ui_bad,
    ui_bad_value,
);

#[test]
fn check_the_shipped_default() {
    let out = Home::new().run(&["config", "check", "--config", "assets/config.toml"], &[]);
    insta::assert_snapshot!("check_shipped_default", out);
}

#[test]
fn check_a_missing_named_file() {
    let out = Home::new().run(&["config", "check", "--config", &fixture("absent")], &[]);
    insta::assert_snapshot!("check_missing_named_file", out);
}

#[test]
fn check_with_no_file_at_the_default_path() {
    let out = Home::new().run(&["config", "check"], &[]);
    insta::assert_snapshot!("check_no_default_file", out);
}

#[test]
fn check_reads_the_default_path() {
    let home = Home::new();
    let path = home.default_config();
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("config dir");
    std::fs::write(&path, "[llm]\nprovider = \"ollama\"\n").expect("config written");
    insta::assert_snapshot!("check_default_path", home.run(&["config", "check"], &[]));
}

#[test]
fn path_without_a_file() {
    let out = Home::new().run(&["config", "path"], &[]);
    insta::assert_snapshot!("path_not_created", out);
}

#[test]
fn init_writes_the_default_and_refuses_to_overwrite() {
    let home = Home::new();
    let cwd = home.path().join("work");
    std::fs::create_dir_all(&cwd).expect("work dir");
    let written = cwd.join("nested/dir/config.toml");
    let args = ["config", "init", "--config", "nested/dir/config.toml"];

    let first = home.run_in(&cwd, &args, &[]);
    assert_eq!(
        std::fs::read_to_string(&written).expect("init wrote the file"),
        DEFAULT_TOML
    );

    std::fs::write(&written, "[llm]\n").expect("file replaced by hand");
    let again = home.run_in(&cwd, &args, &[]);
    assert_eq!(
        std::fs::read_to_string(&written).expect("file still there"),
        "[llm]\n",
        "without --force the file is untouched"
    );

    let forced = home.run_in(
        &cwd,
        &[
            "config",
            "init",
            "--force",
            "--config",
            "nested/dir/config.toml",
        ],
        &[],
    );
    assert_eq!(
        std::fs::read_to_string(&written).expect("init --force wrote the file"),
        DEFAULT_TOML
    );
    let checked = home.run_in(
        &cwd,
        &["config", "check", "--config", "nested/dir/config.toml"],
        &[],
    );

    insta::assert_snapshot!("init_new_file", first);
    insta::assert_snapshot!("init_refuses_to_overwrite", again);
    insta::assert_snapshot!("init_force", forced);
    insta::assert_snapshot!("init_then_check", checked);
}

#[test]
fn init_at_the_default_path() {
    let home = Home::new();
    let out = home.run(&["config", "init"], &[]);
    assert_eq!(
        std::fs::read_to_string(home.default_config()).expect("init wrote the default path"),
        DEFAULT_TOML
    );
    let path = home.run(&["config", "path"], &[]);
    insta::assert_snapshot!("init_default_path", out);
    insta::assert_snapshot!("path_after_init", path);
}

#[test]
fn a_command_with_a_missing_named_file() {
    let out = Home::new().run(&["--config", &fixture("absent"), "ask", "who?"], &[]);
    insta::assert_snapshot!("load_missing_named_file", out);
}

#[test]
fn a_command_with_a_bad_file() {
    let out = Home::new().run(&["--config", &fixture("many_problems"), "ask", "who?"], &[]);
    insta::assert_snapshot!("load_bad_file", out);
}

#[test]
fn a_command_with_bad_overrides() {
    let home = Home::new();
    let config = fixture("good_minimal");
    let llm = home.run(
        &["--config", &config, "ask", "who?"],
        &[("LOREWEAVE_LLM", "gpt4")],
    );
    let retriever = home.run(
        &[
            "--config",
            &config,
            "--retriever",
            "hayhooks",
            "ask",
            "who?",
        ],
        &[],
    );
    let url = home.run(
        &["--config", &config, "ask", "who?"],
        &[("LOREWEAVE_LLM_URL", "https://user:hunter2@example.com")],
    );
    let embeddings = home.run(
        &[
            "--config",
            &config,
            "--embeddings",
            "none:model",
            "ask",
            "who?",
        ],
        &[],
    );
    insta::assert_snapshot!("load_bad_llm_env", llm);
    insta::assert_snapshot!("load_hayhooks_without_url", retriever);
    insta::assert_snapshot!("load_url_with_credentials", url);
    insta::assert_snapshot!("load_embeddings_none_with_model", embeddings);
}

#[test]
fn a_command_with_a_bad_kb_name_in_the_environment() {
    let out = Home::new().run(
        &["--config", &fixture("good_minimal"), "ask", "who?"],
        &[("LOREWEAVE_KB", ".hidden")],
    );
    insta::assert_snapshot!("load_bad_kb_env", out);
}
