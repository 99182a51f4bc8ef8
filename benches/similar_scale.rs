//! `similar` at scale: 100,000 customers and 1,000,000 interactions in the embedded store
//! (synthetic vectors), then the latency of `queries::similar` — what `rapport similar`
//! runs — on random customers, in both spaces.
//!
//! `cargo bench --bench similar_scale` (env: RAPPORT_BENCH_CUSTOMERS, default 100000;
//! RAPPORT_BENCH_INTERACTIONS, default 1000000; RAPPORT_BENCH_QUERIES, default 2000).

use std::collections::BTreeMap;
use std::time::Instant;

use rapport_config::relationships::DIMENSIONS;
use rapport_connectors::{Author, Channel, Interaction, Role};
use rapport_models::classify::MessageSignals;
use rapport_pipeline::profile::{CustomerProfile, Relationship, SentimentTrajectory};
use rapport_pipeline::queries;
use rapport_pipeline::store::{
    AnalysedInteraction, CustomerPoint, CustomerSpace, CustomerStore, EdgeStore, InteractionFilter,
    InteractionPoint, InteractionStore,
};

const DIMS: usize = 384;
const BATCH: usize = 2_000;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator (xorshift): no extra crate, same data every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    /// A unit vector near one of 64 cluster centres, like customers who talk about the
    /// same things.
    fn clustered(&mut self, centres: &[Vec<f32>]) -> Vec<f32> {
        let centre = &centres[(self.0 % centres.len() as u64) as usize];
        let mut v: Vec<f32> = centre.iter().map(|c| c + 0.4 * self.next()).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn profile(id: &str, relationship: &[f32]) -> CustomerProfile {
    let at = time::macros::datetime!(2026-06-01 10:00 UTC);
    CustomerProfile {
        customer_id: id.into(),
        name: None,
        interactions: 10,
        messages: 5,
        channels: BTreeMap::from([("email".into(), 10)]),
        languages: BTreeMap::new(),
        first_seen: at,
        last_seen: at,
        sentiment: SentimentTrajectory {
            mean: 0.0,
            trend: 0.0,
            series: Vec::new(),
        },
        dimensions: DIMENSIONS
            .iter()
            .zip(relationship)
            .map(|(d, v)| (d.to_string(), *v))
            .collect(),
        relationship: Relationship::Typed {
            key: "buddies".into(),
            name: "Buddies".into(),
            confidence: 0.5,
            distance: 0.5,
            runner_up: None,
            evidence: Vec::new(),
        },
        answers_to_others: 0,
        complaints: 0,
    }
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and `cargo test --benches` probes
    }
    let customers = env("RAPPORT_BENCH_CUSTOMERS", 100_000);
    let interactions = env("RAPPORT_BENCH_INTERACTIONS", 1_000_000);
    let queries_n = env("RAPPORT_BENCH_QUERIES", 2_000);
    let dir = tempfile::tempdir().unwrap();
    let store = EdgeStore::open(dir.path(), DIMS).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let centres: Vec<Vec<f32>> = (0..64)
        .map(|_| (0..DIMS).map(|_| rng.next()).collect())
        .collect();

    let started = Instant::now();
    for start in (0..customers).step_by(BATCH) {
        let batch = (start..(start + BATCH).min(customers))
            .map(|i| {
                let relationship: Vec<f32> = (0..DIMENSIONS.len()).map(|_| rng.next()).collect();
                CustomerPoint {
                    profile: profile(&format!("cust-{i}"), &relationship),
                    semantic: rng.clustered(&centres),
                    relationship,
                }
            })
            .collect();
        store.upsert_customers(batch).await.unwrap();
    }
    let customers_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let template = Interaction {
        id: String::new(),
        conversation_id: String::new(),
        channel: Channel::Email,
        connector: "bench".into(),
        occurred_at: time::macros::datetime!(2026-06-01 10:00 UTC),
        author: Author {
            role: Role::Customer,
            ids: Vec::new(),
            name: None,
        },
        text: "Min pakke er ikke kommet endnu, hvornår kommer den?".into(),
        language: Some("da".into()),
        public: false,
        in_reply_to: None,
        attributes: Default::default(),
    };
    for start in (0..interactions).step_by(BATCH) {
        let batch = (start..(start + BATCH).min(interactions))
            .map(|i| {
                let mut interaction = template.clone();
                interaction.id = format!("bench:{i}");
                interaction.conversation_id = format!("conv-{}", i / 4);
                InteractionPoint {
                    stored: AnalysedInteraction {
                        interaction,
                        customer_id: Some(format!("cust-{}", i % customers)),
                        signals: MessageSignals {
                            heads: BTreeMap::new(),
                            prototypes: BTreeMap::new(),
                        },
                    },
                    vector: rng.clustered(&centres),
                }
            })
            .collect();
        store.upsert_interactions(batch).await.unwrap();
    }
    let interactions_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    store.optimize().await.unwrap();
    let optimize_s = started.elapsed().as_secs_f64();
    let stored = store
        .count_interactions(&InteractionFilter::default())
        .await
        .unwrap();
    assert_eq!(stored, interactions as u64);

    println!(
        "loaded {customers} customers in {customers_s:.1} s ({:.0}/s), {interactions} interactions in {interactions_s:.1} s ({:.0}/s), optimize {optimize_s:.1} s",
        customers as f64 / customers_s,
        interactions as f64 / interactions_s
    );
    for space in [CustomerSpace::Semantic, CustomerSpace::Relationship] {
        let mut latencies = Vec::with_capacity(queries_n);
        for q in 0..queries_n {
            let id = format!("cust-{}", (q * 7919) % customers);
            let started = Instant::now();
            let found = queries::similar(&store, &id, 10, space).await.unwrap();
            latencies.push(started.elapsed().as_secs_f64() * 1e3);
            assert_eq!(found.len(), 10);
            assert!(found.iter().all(|s| s.customer_id != id));
        }
        latencies.sort_by(f64::total_cmp);
        println!(
            "similar ({space:?}, k=10) over {queries_n} queries: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
            latencies.last().unwrap()
        );
    }
}
