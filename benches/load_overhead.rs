//! loreweave's own overhead under load: `loreweave load --no-rag` against a
//! loopback OpenAI-compatible server that answers every chat call after a
//! fixed delay, compared with a bare pooled reqwest client making the same
//! calls (the same headers and body bytes loreweave sends: its chat prompt
//! with the same questions in turn, `max_tokens`, `temperature`; the body
//! read to its end; HTTP/1.1 keep-alive, an unbounded idle pool, as
//! loreweave's client) at the same in-flight count, with loreweave's chat
//! concurrency limit set to that count.
//!
//! ```text
//! cargo bench --bench load_overhead            # 64, 256 and 1,024 in flight
//! cargo bench --bench load_overhead -- --quick # a smoke run (scripts/check)
//! ```
//!
//! Prints, per in-flight count: requests/s of each, overhead = 1 -
//! (loreweave's / the bare client's), CPU time per request of each, and
//! loreweave's peak RSS. The server runs in a child process of its own so
//! that neither side's CPU time includes it; loreweave's CPU time is its
//! whole process (start-up included), read from this process's `cutime` and
//! `cstime` after it is reaped; the bare client's is this process's own.
//! Throughput is what each measured over its calls (loreweave's from its
//! `--json` summary, start-up excluded). Medians of 3 runs.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const DELAY: Duration = Duration::from_millis(50);

/// Sampling settings written into loreweave's config and sent by the bare
/// client alike.
const MAX_TOKENS: u32 = 512;
const TEMPERATURE: f32 = 0.7;

/// The messages loreweave sends for each default question with RAG off,
/// in the order it asks them.
fn chat_messages() -> Vec<serde_json::Value> {
    use loreweave::domain::{GenerationTask, TaskMode};
    let prompts = loreweave::prompts::Prompts::default();
    loreweave::headless::load::DEFAULT_PROMPTS
        .iter()
        .map(|question| {
            let task = GenerationTask {
                mode: TaskMode::Chat {
                    question: (*question).to_string(),
                    history: Vec::new(),
                },
                passages: Vec::new(),
                no_lore_reason: Some("RAG is off".into()),
            };
            serde_json::json!(prompts.messages(&task))
        })
        .collect()
}

fn sse_body() -> String {
    let mut body = String::new();
    for token in ["The ", "keep ", "stands."] {
        body.push_str(&format!(
            "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{token}\"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    body.push_str("data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
    body.push_str("data: [DONE]\n\n");
    body
}

/// Child mode: serve on 127.0.0.1:0, print the port, run until stdin closes.
fn serve() {
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    else {
        return;
    };
    rt.block_on(async {
        use axum::http::header;
        use axum::routing::post;
        let body = Arc::new(sse_body());
        let app = axum::Router::new().route(
            "/v1/chat/completions",
            post(move || {
                let body = body.clone();
                async move {
                    tokio::time::sleep(DELAY).await;
                    (
                        [(header::CONTENT_TYPE, "text/event-stream")],
                        (*body).clone(),
                    )
                }
            }),
        );
        let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
            return;
        };
        let Ok(addr) = listener.local_addr() else {
            return;
        };
        println!("{}", addr.port());
        let _ = std::io::stdout().flush();
        let stop = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            let _ = std::io::stdin().read_line(&mut sink);
        });
        tokio::select! {
            _ = axum::serve(listener, app) => {}
            _ = stop => {}
        }
    });
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start() -> Option<Server> {
        let exe = std::env::current_exe().ok()?;
        let mut child = Command::new(exe)
            .arg("--serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take()?)
            .read_line(&mut line)
            .ok()?;
        let port: u16 = line.trim().parse().ok()?;
        Some(Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// (user + system) CPU seconds: this process's own, and its reaped children's.
fn cpu() -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0.0);
    };
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // utime, stime, cutime, cstime are fields 14..17 (1-based); `rest`
    // starts at field 3.
    let at = |n: usize| f.get(n - 3).copied().unwrap_or(0.0);
    let hz = 100.0;
    ((at(14) + at(15)) / hz, (at(16) + at(17)) / hz)
}

/// The bare client: `total` calls, `inflight` at a time. Returns requests/s
/// and CPU seconds per request.
fn bare(base: &str, inflight: usize, total: u64) -> (f64, f64) {
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    else {
        return (0.0, 0.0);
    };
    let url = format!("{base}/v1/chat/completions");
    let (cpu0, _) = cpu();
    let start = Instant::now();
    let done = rt.block_on(async move {
        let Ok(client) = reqwest::Client::builder()
            .pool_max_idle_per_host(usize::MAX)
            .build()
        else {
            return 0;
        };
        let left = Arc::new(AtomicU64::new(total));
        let ok = Arc::new(AtomicU64::new(0));
        let messages = Arc::new(chat_messages());
        let mut tasks = Vec::new();
        for _ in 0..inflight {
            let (client, url, left, ok, messages) = (
                client.clone(),
                url.clone(),
                left.clone(),
                ok.clone(),
                messages.clone(),
            );
            tasks.push(tokio::spawn(async move {
                while let Ok(n) =
                    left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                {
                    // loreweave asks the questions in turn from the first.
                    let turn = ((total - n) % messages.len() as u64) as usize;
                    let body = serde_json::json!({
                        "max_tokens": MAX_TOKENS,
                        "messages": messages[turn],
                        "model": "bench",
                        "stream": true,
                        "temperature": TEMPERATURE,
                    });
                    if let Ok(resp) = client
                        .post(&url)
                        .header(reqwest::header::ACCEPT, "text/event-stream")
                        .json(&body)
                        .send()
                        .await
                        && resp.bytes().await.is_ok()
                    {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
        ok.load(Ordering::Relaxed)
    });
    let elapsed = start.elapsed().as_secs_f64();
    let (cpu1, _) = cpu();
    (done as f64 / elapsed, (cpu1 - cpu0) / done.max(1) as f64)
}

/// `loreweave load` with the same calls. Returns requests/s, CPU seconds
/// per request, peak RSS in MB.
fn loreweave(base: &str, inflight: usize, total: u64) -> Option<(f64, f64, f64)> {
    let home = tempfile::tempdir().ok()?;
    let dir = home.path().join("config").join("loreweave");
    std::fs::create_dir_all(&dir).ok()?;
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[llm]\nprovider = \"openai\"\nbase_url = \"{base}/v1\"\nmodel = \"bench\"\nconcurrency = {inflight}\nretries = 0\nmax_tokens = {MAX_TOKENS}\ntemperature = {TEMPERATURE}\n"
        ),
    )
    .ok()?;
    let (_, c0) = cpu();
    let root = home.path();
    let out = Command::new(env!("CARGO_BIN_EXE_loreweave"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", root)
        .env("XDG_DATA_HOME", root.join("data"))
        .env("XDG_CONFIG_HOME", root.join("config"))
        .env("XDG_STATE_HOME", root.join("state"))
        .args([
            "--no-rag",
            "load",
            "-n",
            &total.to_string(),
            "-c",
            &inflight.to_string(),
            "--no-tui",
            "--json",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .ok()?;
    let (_, c1) = cpu();
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let completed = s["outcomes"]["completed"].as_u64().unwrap_or(0);
    if completed != total {
        eprintln!(
            "load_overhead: loreweave completed {completed} of {total}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let rate = s["throughput_per_s"].as_f64().unwrap_or(0.0);
    let rss = s["peak_rss_mb"].as_f64().unwrap_or(0.0);
    Some((rate, (c1 - c0) / completed.max(1) as f64, rss))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--serve") {
        serve();
        return;
    }
    let full = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--quick");
    let (counts, runs): (&[usize], usize) = if full {
        (&[64, 256, 1_024], 3)
    } else {
        (&[8], 1)
    };
    let Some(server) = Server::start() else {
        eprintln!("load_overhead: the loopback server did not start");
        return;
    };
    println!(
        "load_overhead: loopback server answers every chat call after {} ms",
        DELAY.as_millis()
    );
    for &inflight in counts {
        // Enough calls for every slot to go round 20 times.
        let total = (inflight * if full { 20 } else { 2 }) as u64;
        let mut b_rate = Vec::new();
        let mut b_cpu = Vec::new();
        let mut l_rate = Vec::new();
        let mut l_cpu = Vec::new();
        let mut l_rss = Vec::new();
        for _ in 0..runs {
            let (rate, cpu) = bare(&server.base, inflight, total);
            b_rate.push(rate);
            b_cpu.push(cpu);
            if let Some((rate, cpu, rss)) = loreweave(&server.base, inflight, total) {
                l_rate.push(rate);
                l_cpu.push(cpu);
                l_rss.push(rss);
            }
        }
        let (br, lr) = (median(b_rate), median(l_rate));
        let overhead = if br > 0.0 { 1.0 - lr / br } else { f64::NAN };
        println!(
            "load_overhead: {inflight:>5} in flight, {total} calls: bare {br:>8.0} req/s, {:>6.1} µs CPU/req | loreweave {lr:>8.0} req/s, {:>6.1} µs CPU/req, peak RSS {:.1} MB | overhead {:.1} % (target <= 10 %)",
            median(b_cpu) * 1e6,
            median(l_cpu) * 1e6,
            median(l_rss),
            overhead * 100.0,
        );
    }
}
