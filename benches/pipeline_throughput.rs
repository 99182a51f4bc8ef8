//! End-to-end analysis throughput and latency: JetStream → `rapport run --role workers`
//! (redaction, identities, e5-small, heads, prototypes, store, profiles, flags) → ack, on a
//! real nats-server started here, against `rapport models bench` on the same texts.
//!
//! `cargo bench --bench pipeline_throughput` (env: BENCH_THREADS, default 2; BENCH_WORKER_LOG
//! to see the worker's log). Not `RAPPORT_*`: the `rapport` processes started here would
//! reject unknown variables of their own prefix.
//!
//! 1. `rapport models bench --texts T --threads N --json`: the encoder alone (texts/s).
//! 2. A worker process is started and warmed up (model load is not timed); then the same
//!    texts are published as interactions at once and timed until the last is acked; the
//!    better of two passes is reported, as for the encoder.
//!    A worker acks only after the store is flushed, so acked = stored and searchable.
//! 3. The texts again (new ids) paced at half the measured rate: per interaction, the time
//!    from publish to its ack, read off the acks themselves (`$JS.ACK.…` subjects).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream;
use futures::StreamExt;
use rapport_pipeline::nats_server::EmbeddedNats;

const RAPPORT: &str = env!("CARGO_BIN_EXE_rapport");
const TEXTS: &str = "benches/texts/customer-messages.txt";

fn nats_binary() -> String {
    if Path::new("/usr/sbin/nats-server").exists() {
        "/usr/sbin/nats-server".into()
    } else {
        "nats-server".into()
    }
}

fn interaction(id: &str, text: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": id,
        "conversation_id": format!("conv-{id}"),
        "channel": "chat",
        "connector": "bench",
        "occurred_at": "2026-06-01T10:00:00Z",
        "author": {"role": "customer", "ids": [format!("chat:{id}")]},
        "text": text,
    }))
    .unwrap()
}

/// Publishes and returns the stream sequence of each message.
async fn publish(js: &jetstream::Context, prefix: &str, texts: &[&str]) -> Vec<u64> {
    let mut acks = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        let id = format!("{prefix}:{i}");
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.as_str());
        acks.push(
            js.publish_with_headers(
                "rapport.interactions.chat.bench",
                headers,
                interaction(&id, text).into(),
            )
            .await
            .unwrap(),
        );
    }
    let mut sequences = Vec::with_capacity(acks.len());
    for ack in acks {
        sequences.push(ack.await.unwrap().sequence);
    }
    sequences
}

async fn ack_floor(js: &jetstream::Context) -> u64 {
    let stream = js.get_stream("RAPPORT_INTERACTIONS").await.unwrap();
    let mut consumer: jetstream::consumer::PullConsumer =
        stream.get_consumer("analysis").await.unwrap();
    consumer.info().await.unwrap().ack_floor.stream_sequence
}

async fn wait_acked(js: &jetstream::Context, sequence: u64) {
    while ack_floor(js).await < sequence {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and `cargo test --benches` probes
    }
    let threads = std::env::var("BENCH_THREADS").unwrap_or_else(|_| "2".into());
    let text = std::fs::read_to_string(TEXTS).unwrap();
    let texts: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let data = tempfile::tempdir().unwrap();
    let models = data.path().join("models");
    let import = Command::new(RAPPORT)
        .args(["models", "import", "--model", "e5-small"])
        .env("RAPPORT_MODELS_DIR", &models)
        .output()
        .unwrap();
    assert!(import.status.success(), "run scripts/fetch-models first");

    // 1. The encoder alone.
    let bench = Command::new(RAPPORT)
        .args([
            "models", "bench", "--model", "e5-small", "--texts", TEXTS, "--passes", "2",
        ])
        .args(["--threads", &threads, "--json"])
        .env("RAPPORT_MODELS_DIR", &models)
        .output()
        .unwrap();
    assert!(
        bench.status.success(),
        "{}",
        String::from_utf8_lossy(&bench.stderr)
    );
    let bench: serde_json::Value = serde_json::from_slice(&bench.stdout).unwrap();
    let encoder_rate = bench["texts_per_s"].as_f64().unwrap();

    // 2. The pipeline, warmed up.
    let nats = EmbeddedNats::start(&nats_binary(), &data.path().join("bus"))
        .await
        .unwrap();
    let _worker = Worker(
        Command::new(RAPPORT)
            .args(["run", "--role", "workers"])
            .env("RAPPORT_NATS_URL", nats.url())
            .env("RAPPORT_DATA_DIR", data.path().join("worker"))
            .env("RAPPORT_MODELS_DIR", &models)
            .env("RAPPORT_MODELS_THREADS", &threads)
            .stdout(Stdio::null())
            .stderr(match std::env::var_os("BENCH_WORKER_LOG") {
                Some(_) => Stdio::inherit(),
                None => Stdio::null(),
            })
            .spawn()
            .unwrap(),
    );
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    while js.get_stream("RAPPORT_INTERACTIONS").await.is_err()
        || js
            .get_stream("RAPPORT_INTERACTIONS")
            .await
            .unwrap()
            .get_consumer::<jetstream::consumer::pull::Config>("analysis")
            .await
            .is_err()
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let warm = publish(&js, "warm", &texts[..64]).await;
    wait_acked(&js, *warm.last().unwrap()).await;

    // Two passes, the best reported: as `models bench --passes 2` does for the encoder.
    let mut seconds = f64::INFINITY;
    for pass in 0..2 {
        let started = Instant::now();
        let sequences = publish(&js, &format!("bulk{pass}"), &texts).await;
        wait_acked(&js, *sequences.last().unwrap()).await;
        seconds = seconds.min(started.elapsed().as_secs_f64());
    }
    let pipeline_rate = texts.len() as f64 / seconds;

    // 3. Latency at half that rate, from the acks on the wire.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut acks = client
        .subscribe("$JS.ACK.RAPPORT_INTERACTIONS.analysis.>")
        .await
        .unwrap();
    let acked: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let collector = {
        let acked = acked.clone();
        tokio::spawn(async move {
            while let Some(ack) = acks.next().await {
                // $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts>.<pending>
                if let Some(seq) = ack.subject.split('.').nth(5).and_then(|s| s.parse().ok()) {
                    acked
                        .lock()
                        .unwrap()
                        .entry(seq)
                        .or_insert_with(Instant::now);
                }
            }
        })
    };
    let gap = Duration::from_secs_f64(2.0 / pipeline_rate);
    let mut sent: Vec<(u64, Instant)> = Vec::with_capacity(texts.len());
    let paced_start = Instant::now();
    for (i, text) in texts.iter().enumerate() {
        let due = paced_start + gap * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let at = Instant::now();
        let id = format!("paced:{i}");
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.as_str());
        let ack = js
            .publish_with_headers(
                "rapport.interactions.chat.bench",
                headers,
                interaction(&id, text).into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        sent.push((ack.sequence, at));
    }
    wait_acked(&js, sent.last().unwrap().0).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    collector.abort();
    let acked = acked.lock().unwrap().clone();
    let mut latencies: Vec<f64> = sent
        .iter()
        .filter_map(|(seq, at)| acked.get(seq).map(|done| (*done - *at).as_secs_f64() * 1e3))
        .collect();
    latencies.sort_by(f64::total_cmp);
    nats.stop().await;

    println!("encoder alone (rapport models bench, {threads} threads): {encoder_rate:.1} texts/s");
    println!(
        "pipeline, stream to stored: {} interactions in {seconds:.2} s = {pipeline_rate:.1} interactions/s ({:.0}% of the encoder)",
        texts.len(),
        100.0 * pipeline_rate / encoder_rate
    );
    if latencies.is_empty() {
        println!("latency: no acks observed");
    } else {
        println!(
            "ingest-to-searchable at {:.1}/s: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} of {} acks seen)",
            pipeline_rate / 2.0,
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
            latencies.last().unwrap(),
            latencies.len(),
            sent.len()
        );
    }
}
