//! `ask` and `scenario` with standard input, through the real binary: `-`
//! reads the question (or prompt) from stdin; with a question, text piped
//! or redirected from a file is the answer's first passage (source
//! `stdin`), cited `[1]`; `/dev/null` and a closed stdin are never read;
//! input over `--max-stdin` is refused with exit code 2 without waiting for
//! the producer to finish.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

struct Home(tempfile::TempDir);

impl Home {
    fn new() -> Self {
        Self(tempfile::tempdir().expect("tmp"))
    }

    fn root(&self) -> &Path {
        self.0.path()
    }

    /// loreweave with a scratch home and nothing from the environment.
    fn command(&self, program: &str) -> Command {
        let root = self.root();
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", root)
            .env("XDG_DATA_HOME", root.join("data"))
            .env("XDG_CONFIG_HOME", root.join("config"))
            .env("XDG_STATE_HOME", root.join("state"))
            .current_dir(root)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    fn loreweave(&self, args: &[&str]) -> Command {
        let mut command = self.command(env!("CARGO_BIN_EXE_loreweave"));
        command.args(args);
        command
    }
}

/// Run with `input` written to a pipe that is then closed.
fn piped(mut command: Command, input: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn loreweave");
    let mut stdin = child.stdin.take().expect("stdin");
    // A refused input may close its end before everything is written.
    let _ = stdin.write_all(input);
    drop(stdin);
    child.wait_with_output().expect("wait")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const NOTES: &str = "The brass key opens the cellar door. The cellar holds the old wine.\n\
                     Nobody has seen the gardener since spring.\n";

/// The `result` line of `--json` output.
fn result(out: &Output) -> serde_json::Value {
    text(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["type"] == "result")
        .unwrap_or_else(|| panic!("no result line in {}", text(&out.stdout)))
}

#[test]
fn piped_text_is_the_first_passage_and_is_cited() {
    let home = Home::new();
    let out = piped(
        home.loreweave(&["ask", "what opens the cellar door?"]),
        NOTES.as_bytes(),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        stdout.contains("The brass key opens the cellar door. [1]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("- [1] piped input (stdin › lines 1-2)"),
        "{stdout}"
    );
    let out = piped(
        home.loreweave(&["ask", "--json", "what opens the cellar door?"]),
        NOTES.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(result(&out)["sources"][0], "stdin");
}

#[test]
fn a_regular_file_on_stdin_is_context_too() {
    let home = Home::new();
    let notes = home.root().join("notes.md");
    std::fs::write(&notes, NOTES).expect("write notes");
    let out = home
        .loreweave(&["ask", "--json", "who has not seen the gardener?"])
        .stdin(std::fs::File::open(&notes).expect("open notes"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let result = result(&out);
    assert_eq!(result["sources"][0], "stdin");
    assert!(
        result["text"]
            .as_str()
            .is_some_and(|t| t.contains("Nobody has seen the gardener since spring. [1]")),
        "{result}"
    );
}

#[test]
fn dev_null_is_not_read_and_adds_nothing() {
    let home = Home::new();
    let out = home
        .loreweave(&["ask", "--json", "who guards the waystone?"])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let sources = result(&out)["sources"].clone();
    assert!(
        sources
            .as_array()
            .is_some_and(|s| !s.is_empty() && !s.contains(&"stdin".into())),
        "{sources}"
    );
}

#[test]
fn a_closed_stdin_is_not_read_and_adds_nothing() {
    let home = Home::new();
    // `<&-` closes fd 0 before loreweave starts.
    let mut command = home.command("sh");
    command
        .args([
            "-c",
            "exec \"$0\" ask --json 'who guards the waystone?' <&-",
            env!("CARGO_BIN_EXE_loreweave"),
        ])
        .stdin(Stdio::null());
    let out = command.output().expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let sources = result(&out)["sources"].clone();
    assert!(
        sources
            .as_array()
            .is_some_and(|s| !s.is_empty() && !s.contains(&"stdin".into())),
        "{sources}"
    );
}

#[test]
fn dash_reads_the_question_from_stdin() {
    let home = Home::new();
    let out = piped(home.loreweave(&["ask", "-"]), b"who guards the waystone?\n");
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.contains("Warden Tamsin Orrel"), "{stdout}");
    assert!(
        !stdout.contains("stdin"),
        "the question is no passage: {stdout}"
    );
}

#[test]
fn scenario_dash_reads_the_prompt_from_stdin() {
    let home = Home::new();
    let direct = home
        .loreweave(&["scenario", "the first encounter"])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(direct.status.code(), Some(0), "{}", text(&direct.stderr));
    let out = piped(home.loreweave(&["scenario", "-"]), b"the first encounter\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Same prompt, same seed: the same scenario.
    assert_eq!(text(&out.stdout), text(&direct.stdout));
}

#[test]
fn dash_without_a_pipe_is_bad_usage() {
    let home = Home::new();
    let out = home
        .loreweave(&["ask", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("`-` reads the question from standard input"),
        "{stderr}"
    );
    let out = piped(home.loreweave(&["ask", "-"]), b"  \n");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("standard input held no question"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn input_over_the_cap_is_refused_with_exit_code_2() {
    let home = Home::new();
    let big = vec![b'a'; 2_000];
    let out = piped(home.loreweave(&["ask", "--max-stdin", "1KB", "q"]), &big);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("standard input is over the 1000 bytes cap"),
        "{stderr}"
    );
    assert!(stderr.contains("--max-stdin"), "{stderr}");
    assert!(text(&out.stdout).is_empty(), "nothing is answered");
    // Just under the cap is fine.
    let out = piped(
        home.loreweave(&["ask", "--max-stdin", "1KB", "q"]),
        &big[..1_000],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn over_the_cap_ends_without_waiting_for_the_writer_to_close() {
    let home = Home::new();
    let mut child = home
        .loreweave(&["ask", "--max-stdin", "1KB", "q"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    // More than the cap, well within a pipe's buffer, and the pipe stays
    // open while loreweave runs: it must stop reading at the cap.
    stdin.write_all(&[b'a'; 2_000]).expect("write");
    let status = child.wait().expect("wait");
    drop(stdin);
    assert_eq!(status.code(), Some(2));
}

#[test]
fn text_that_is_not_utf8_is_refused() {
    let home = Home::new();
    let out = piped(home.loreweave(&["ask", "q"]), b"ok\xff\xfe");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not UTF-8 text"),
        "{}",
        text(&out.stderr)
    );
}
