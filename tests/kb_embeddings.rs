//! Hybrid retrieval's chunk vectors, end to end through the real binary and
//! a loopback OpenAI-compatible embeddings server that counts what it is
//! asked to embed: only new or changed chunks are embedded, an unchanged
//! tree embeds nothing, and switching the model re-embeds and says so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};

/// Words hashed into 64 buckets: deterministic, no model.
fn vector(text: &str) -> Vec<f32> {
    let mut v = vec![0.0f32; 64];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let h = word
            .to_lowercase()
            .bytes()
            .fold(7usize, |a, b| a.wrapping_mul(31).wrapping_add(b as usize));
        v[h % 64] += 1.0;
    }
    v[63] += 0.01;
    v
}

struct Server {
    url: String,
    texts: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

fn server() -> Server {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let texts = Arc::new(AtomicUsize::new(0));
    let counter = texts.clone();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new()
        .route(
            "/v1/embeddings",
            post(
                |State(counter): State<Arc<AtomicUsize>>, Json(body): Json<Value>| async move {
                    let inputs: Vec<String> = body["input"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    counter.fetch_add(inputs.len(), Ordering::SeqCst);
                    let data: Vec<Value> = inputs
                        .iter()
                        .enumerate()
                        .map(|(i, t)| json!({"index": i, "embedding": vector(t)}))
                        .collect();
                    Json(json!({"data": data}))
                },
            ),
        )
        .with_state(counter);
    runtime.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server {
        url: format!("http://{addr}/v1"),
        texts,
        _runtime: runtime,
    }
}

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tmp"),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn config(&self, url: &str, model: &str) {
        let dir = self.root().join("config/loreweave");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(
            dir.join("config.toml"),
            format!(
                "[embeddings]\nprovider = \"openai\"\nbase_url = \"{url}\"\nmodel = \"{model}\"\nbatch_size = 4\n"
            ),
        )
        .expect("config");
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_loreweave"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.root())
            .env("XDG_DATA_HOME", self.root().join("data"))
            .env("XDG_CONFIG_HOME", self.root().join("config"))
            .env("XDG_STATE_HOME", self.root().join("state"))
            .output()
            .expect("run loreweave");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn write(path: PathBuf, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

#[test]
fn only_new_or_changed_chunks_are_embedded_and_a_new_model_re_embeds() {
    let server = server();
    let sb = Sandbox::new();
    sb.config(&server.url, "hash-a");
    let docs = sb.root().join("docs");
    write(
        docs.join("a.md"),
        "# Alpha\n\n## One\n\nThe amber gate.\n\n## Two\n\nThe bronze bell.\n",
    );
    write(docs.join("b.md"), "# Beta\n\nThe copper kettle.\n");
    let docs_arg = docs.to_str().expect("utf-8 path");

    let (code, out, err) = sb.run(&["kb", "add", docs_arg]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("embedded 3 new chunk(s) in 1 batch(es) with openai-embed:hash-a (0 kept)"),
        "{out}"
    );
    assert_eq!(server.texts.load(Ordering::SeqCst), 3);

    // The same tree again: nothing embedded.
    let (code, out, _) = sb.run(&["kb", "add", docs_arg]);
    assert_eq!(code, 0);
    assert!(out.contains("0 changed"), "{out}");
    assert!(out.contains("embeddings up to date: 3 chunk(s)"), "{out}");
    assert_eq!(server.texts.load(Ordering::SeqCst), 3);

    // One paragraph inserted: only its chunk is embedded.
    write(
        docs.join("a.md"),
        "# Alpha\n\n## One\n\nThe amber gate.\n\n## New\n\nA dusk lantern.\n\n## Two\n\nThe bronze bell.\n",
    );
    let (_, out, _) = sb.run(&["kb", "add", docs_arg]);
    assert!(out.contains("embedded 1 new chunk(s)"), "{out}");
    assert!(out.contains("(3 kept)"), "{out}");
    assert_eq!(server.texts.load(Ordering::SeqCst), 4);

    let (_, stats, _) = sb.run(&["kb", "stats", "--json"]);
    let stats: Value = serde_json::from_str(stats.trim()).expect("json");
    assert_eq!(stats["embedded_chunks"], json!(4), "{stats}");

    // Hybrid figures next to BM25's.
    let eval = sb.root().join("eval.jsonl");
    std::fs::write(
        &eval,
        "{\"question\":\"where is the dusk lantern\",\"expect\":[\"a.md\"]}\n",
    )
    .expect("eval");
    let (code, out, err) = sb.run(&["kb", "eval", eval.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("bm25: 1 questions"), "{out}");
    assert!(
        out.contains("hybrid (openai-embed:hash-a): 1 questions"),
        "{out}"
    );

    // Another model: everything again, and it says why.
    sb.config(&server.url, "hash-b");
    let before = server.texts.load(Ordering::SeqCst);
    let (_, out, _) = sb.run(&["kb", "sync"]);
    assert!(
        out.contains("the embedding model changed to openai-embed:hash-b (vectors for openai-embed:hash-a are kept): re-embedding 4 chunks"),
        "{out}"
    );
    assert!(out.contains("embedded 4 new chunk(s)"), "{out}");
    assert!(server.texts.load(Ordering::SeqCst) >= before + 4);
}
