//! `loreweave load` through the real binary against a loopback
//! OpenAI-compatible server (127.0.0.1, an ephemeral port): the summary's
//! numbers add up, `--json` has its shape, Ctrl-C (SIGINT to the child)
//! still prints the summary, and a backend limit below `--concurrency` is
//! named as the bottleneck. Bounded: every run has few pipelines and the
//! server answers at once or after a fixed delay.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::{FaultServer, Mode};

struct Home(tempfile::TempDir);

impl Home {
    fn new() -> Self {
        Self(tempfile::tempdir().expect("tmp"))
    }

    fn root(&self) -> &Path {
        self.0.path()
    }

    /// Write a config whose `[llm]` is the loopback server with this
    /// concurrency limit.
    fn config(&self, base: &str, concurrency: usize) {
        let dir = self.root().join("config").join("loreweave");
        std::fs::create_dir_all(&dir).expect("config dir");
        std::fs::write(
            dir.join("config.toml"),
            format!(
                "[llm]\nprovider = \"openai\"\nbase_url = \"{base}/v1\"\nmodel = \"test\"\nconcurrency = {concurrency}\nretries = 0\n"
            ),
        )
        .expect("config");
    }

    fn loreweave(&self, args: &[&str]) -> Command {
        let root = self.root();
        let mut command = Command::new(env!("CARGO_BIN_EXE_loreweave"));
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", root)
            .env("XDG_DATA_HOME", root.join("data"))
            .env("XDG_CONFIG_HOME", root.join("config"))
            .env("XDG_STATE_HOME", root.join("state"))
            .current_dir(root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.loreweave(args).output().expect("run loreweave")
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(text(&out.stdout).trim())
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", text(&out.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_counts_every_pipeline_and_every_stage() {
    let server = FaultServer::start(Mode::Ok).await;
    let home = Home::new();
    home.config(&server.base, 4);
    let out = tokio::task::block_in_place(|| {
        home.run(&["load", "-n", "12", "-c", "4", "--no-tui", "--json"])
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = json(&out);
    assert_eq!(s["submitted"], 12);
    assert_eq!(s["ended"], 12);
    assert_eq!(s["outcomes"]["completed"], 12, "{s}");
    assert_eq!(s["interrupted"], false);
    assert_eq!(s["stages"]["pipeline"]["count"], 12);
    assert_eq!(s["stages"]["generate"]["count"], 12);
    // Identical questions may be joined onto one retrieval: still counted.
    assert_eq!(s["stages"]["retrieve"]["count"], 12);
    let buckets: u64 = s["stages"]["pipeline"]["histogram"]
        .as_array()
        .expect("histogram")
        .iter()
        .map(|b| b["count"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(buckets, 12);
    let p = &s["stages"]["pipeline"];
    assert!(p["p50_ms"].as_f64() <= p["p95_ms"].as_f64());
    assert!(p["p95_ms"].as_f64() <= p["p99_ms"].as_f64());
    assert_eq!(server.requests(), 12, "one chat call per question");
    assert_eq!(s["backends"]["openai"]["calls"], 12, "{s}");
    assert!(s["open_files_limit"].as_u64().unwrap_or(0) > 0);
    for key in [
        "throughput_per_s",
        "elapsed_s",
        "retries",
        "breaker_trips",
        "late_arrivals",
        "errors",
        "out_of_descriptors",
        "bottleneck",
    ] {
        assert!(s.get(key).is_some(), "no {key} in {s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_counted_by_class_with_their_error() {
    let server = FaultServer::start(Mode::Status(400)).await;
    let home = Home::new();
    home.config(&server.base, 4);
    let out = tokio::task::block_in_place(|| home.run(&["load", "-n", "5", "-c", "2", "--no-tui"]));
    // Nothing completed: exit 1, and the summary says why.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let summary = text(&out.stdout);
    assert!(summary.contains("outcomes:   failed 5"), "{summary}");
    assert!(summary.contains("Most common errors:"), "{summary}");
    assert!(summary.contains("HTTP 400"), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_limit_below_the_concurrency_is_named_as_the_bottleneck() {
    let server = FaultServer::start(Mode::Slow(Duration::from_millis(50))).await;
    let home = Home::new();
    home.config(&server.base, 1);
    let out = tokio::task::block_in_place(|| {
        home.run(&["load", "-n", "6", "-c", "6", "--no-tui", "--json"])
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = json(&out);
    assert_eq!(s["bottleneck"]["by"], "backend_limit", "{s}");
    assert_eq!(s["bottleneck"]["backend"], "openai");
    assert_eq!(s["bottleneck"]["limit"], 1);
    assert!(s["bottleneck"]["waited"].as_u64().unwrap_or(0) >= 1, "{s}");

    // The same stack with the limit above the concurrency: C is the limit.
    let home = Home::new();
    home.config(&server.base, 8);
    let out = tokio::task::block_in_place(|| {
        home.run(&["load", "-n", "4", "-c", "2", "--no-tui", "--json"])
    });
    let s = json(&out);
    assert_eq!(s["bottleneck"]["by"], "concurrency", "{s}");
    assert_eq!(s["bottleneck"]["concurrency"], 2);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_early_and_still_prints_the_summary() {
    // Every answer hangs: only Ctrl-C ends this run.
    let server = FaultServer::start(Mode::Hang).await;
    let home = Home::new();
    home.config(&server.base, 4);
    let child = home
        .loreweave(&["load", "-n", "1000", "-c", "4", "--no-tui", "--json"])
        .spawn()
        .expect("spawn");
    // Wait until the calls are out, then interrupt.
    assert!(
        support::eventually(Duration::from_secs(20), || server.requests() >= 4).await,
        "the calls never reached the server"
    );
    let pid = child.id().to_string();
    let kill = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(kill.success());
    let out = tokio::task::block_in_place(|| child.wait_with_output().expect("wait"));
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    let s = json(&out);
    assert_eq!(s["interrupted"], true);
    assert_eq!(s["submitted"], 4, "{s}");
    assert_eq!(s["outcomes"]["cancelled"], 4, "{s}");
}
