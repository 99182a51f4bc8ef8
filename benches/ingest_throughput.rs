//! End-to-end ingest throughput: files → parse → JetStream, on a real nats-server started
//! here. `cargo bench --bench ingest_throughput` (env: RAPPORT_BENCH_N, default 100000).
//!
//! Measures, in one run on one machine:
//! 1. publish window 1 (one ack awaited per message: the synchronous baseline) on 10% of N;
//! 2. the configured window (2048) on N interactions from an NDJSON chat export;
//! 3. the same N from a twcs CSV;
//! 4. the re-run of (2) under a new connector name (no checkpoint): JetStream must drop all
//!    N as duplicates, so the stream gains nothing;
//! 5. the re-run of (2) under the same name: the checkpoint skips the file.

use std::path::Path;
use std::time::Instant;

use rapport_config::Settings;
use rapport_connectors::ParseContext;
use rapport_pipeline::nats_server::EmbeddedNats;
use rapport_pipeline::sources::files::{FileReader, Layout, ScanReport};
use rapport_pipeline::sources::{Sink, SourceContext};
use rapport_pipeline::{Bus, Checkpoints};

#[path = "../tests/support/samples.rs"]
mod samples;

async fn ingest(bus: &Bus, connector: &str, path: &Path, window: usize) -> (ScanReport, f64) {
    let mut template = ParseContext::new(connector, "");
    template.max_message_bytes = 1 << 20;
    let cx = SourceContext::new(template, Some(Checkpoints::new(bus.checkpoints.clone())));
    let mut reader = FileReader::new(cx, path.to_path_buf(), Layout::Files(None));
    let mut sink = Sink::Bus {
        interactions: rapport_pipeline::Publisher::new(bus.jetstream.clone(), window),
        dead_letters: bus.publisher(),
        max_raw: 65536,
    };
    let started = Instant::now();
    let report = reader.scan(&mut sink, &mut |_, _| {}).await.unwrap();
    (report, started.elapsed().as_secs_f64())
}

async fn stream_len(bus: &Bus) -> u64 {
    let mut stream = bus
        .jetstream
        .get_stream("RAPPORT_INTERACTIONS")
        .await
        .unwrap();
    stream.info().await.unwrap().state.messages
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and `cargo test --benches` probes
    }
    let n: usize = std::env::var("RAPPORT_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let binary = if Path::new("/usr/sbin/nats-server").exists() {
        "/usr/sbin/nats-server"
    } else {
        "nats-server"
    };
    let server = EmbeddedNats::start(binary, dir.path())
        .await
        .expect("nats-server starts");
    let settings = Settings::default();
    let bus = Bus::connect(&server.url(), &settings).await.unwrap();

    let baseline_file = dir.path().join("baseline.ndjson");
    let chat_file = dir.path().join("chat.ndjson");
    let csv_file = dir.path().join("twcs.csv");
    std::fs::write(&baseline_file, samples::chat_ndjson("baseline-", 0..n / 10)).unwrap();
    std::fs::write(&chat_file, samples::chat_ndjson("c", 0..n)).unwrap();
    std::fs::write(&csv_file, samples::twcs_csv(n)).unwrap();

    println!(
        "ingest throughput, {n} interactions, nats-server at {}",
        server.url()
    );
    println!(
        "{:<44} {:>9} {:>9} {:>11} {:>9}",
        "run", "handed", "stored", "duplicates", "per s"
    );
    let row = |name: &str, r: &ScanReport, secs: f64| {
        println!(
            "{name:<44} {:>9} {:>9} {:>11} {:>9.0}",
            r.interactions,
            r.stored,
            r.duplicates,
            r.interactions as f64 / secs
        );
    };

    let (r, s) = ingest(&bus, "baseline", &baseline_file, 1).await;
    row("NDJSON chat, window 1 (sync acks), N/10", &r, s);
    let before = stream_len(&bus).await;
    let (r, s) = ingest(&bus, "chat", &chat_file, settings.nats.publish_window).await;
    row(
        &format!("NDJSON chat, window {}", settings.nats.publish_window),
        &r,
        s,
    );
    assert_eq!(
        stream_len(&bus).await - before,
        n as u64,
        "every interaction stored once"
    );
    let (r, s) = ingest(&bus, "twcs", &csv_file, settings.nats.publish_window).await;
    row(
        &format!("twcs CSV, window {}", settings.nats.publish_window),
        &r,
        s,
    );
    let after = stream_len(&bus).await;
    let (r, s) = ingest(&bus, "chat-again", &chat_file, settings.nats.publish_window).await;
    row("NDJSON chat again, new connector (dedup)", &r, s);
    assert_eq!(r.stored, 0, "a re-run adds nothing");
    let (r, s) = ingest(&bus, "chat", &chat_file, settings.nats.publish_window).await;
    row("NDJSON chat again, same connector (skipped)", &r, s);
    assert_eq!(r.files_unchanged, 1);
    assert_eq!(
        stream_len(&bus).await,
        after,
        "the stream gained nothing from re-runs"
    );
    println!("stream holds {after} interactions");
    bus.shutdown().await;
    server.stop().await;
}
