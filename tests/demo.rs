//! End-to-end: `rapport demo` over the bundled corpus (its own nats-server and embedded
//! store), checked against the corpus's answer key in `examples/corpus/README.md`: every
//! interaction stored and searchable, every customer profiled, each flag raised and
//! published exactly once, and the flags and types a reader of the corpus expects.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use rapport_pipeline::store::{CustomerStore, EdgeStore, InteractionFilter, InteractionStore};
use serde_json::Value;
use support::{RAPPORT, nats_binary};

/// The answer key: customer name → (corpus key, intended type, expected flags).
fn answer_key() -> BTreeMap<String, (String, String, BTreeSet<String>)> {
    let readme = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/corpus/README.md"),
    )
    .unwrap();
    readme
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // | `key` | name | language | channels | `type` | flags |
            if cells.len() != 8 || !cells[1].starts_with('`') || !cells[5].starts_with('`') {
                return None;
            }
            let flags = cells[6]
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty() && *f != "–")
                .map(str::to_string)
                .collect();
            Some((
                cells[2].to_string(),
                (
                    cells[1].trim_matches('`').to_string(),
                    cells[5].trim_matches('`').to_string(),
                    flags,
                ),
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_analyses_the_corpus_as_its_answer_key_says() {
    let Some(cache) = support::model_wheels() else {
        return;
    };
    let key = answer_key();
    assert!(
        key.len() >= 40,
        "the answer key lists {} customers",
        key.len()
    );
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(RAPPORT)
        .args(["demo", "--json", "--data-dir"])
        .arg(data.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RAPPORT_MODELS_CACHE", &cache)
        .env("RAPPORT_NATS_SERVER_BINARY", nats_binary())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();

    // Every interaction stored once, and each findable by its own vector.
    let store = EdgeStore::open(&data.path().join("store"), 384).unwrap();
    let everything = InteractionFilter::default();
    let stored = store
        .list_interactions_with_vectors(&everything, usize::MAX)
        .await
        .unwrap();
    assert!(stored.len() > 200, "{} interactions", stored.len());
    assert_eq!(report["interactions"], stored.len() as u64);
    for (interaction, vector) in &stored {
        let found = store
            .search_interactions(vector.clone(), &everything, 1)
            .await
            .unwrap();
        assert!(
            found[0].score > 0.999,
            "{} is not found by its own vector",
            interaction.interaction.id
        );
    }

    // Every customer with an interaction has a profile, and no profile lacks one.
    let customers: BTreeSet<String> = stored
        .iter()
        .filter_map(|(s, _)| s.customer_id.clone())
        .collect();
    let profiles = store.all_customers().await.unwrap();
    let profiled: BTreeSet<String> = profiles.iter().map(|p| p.customer_id.clone()).collect();
    assert_eq!(customers, profiled);
    assert!(profiles.len() >= 40, "{} customers", profiles.len());

    // Flags: each stored once, published once.
    let flags = report["flags"].as_array().unwrap();
    let ids: BTreeSet<&str> = flags.iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), flags.len(), "flag ids are unique");
    // The demo's bus is kept in its data dir: start a server on it and count what was
    // published on rapport.flags.>.
    let server = rapport_pipeline::nats_server::EmbeddedNats::start(&nats_binary(), data.path())
        .await
        .unwrap();
    let client = async_nats::connect(server.url()).await.unwrap();
    let mut stream = async_nats::jetstream::new(client)
        .get_stream("RAPPORT_FLAGS")
        .await
        .unwrap();
    let published = stream.info().await.unwrap().state.messages;
    server.stop().await;
    assert_eq!(published, flags.len() as u64, "each flag published once");

    // Customers by name: CRM-linked ones are `crm-<key>`, the rest carry their name.
    let customer_of = |name: &str| -> Option<String> {
        let (slug, _, _) = &key[name];
        let crm = format!("crm-{slug}");
        profiles
            .iter()
            .find(|p| p.customer_id == crm || p.name.as_deref() == Some(name))
            .map(|p| p.customer_id.clone())
    };
    let flagged = |kind: &str, reason: &str| -> BTreeSet<String> {
        flags
            .iter()
            .filter(|f| f["kind"] == kind && f["reason"].as_str().unwrap_or("") == reason)
            .filter_map(|f| f["customer_id"].as_str().map(str::to_string))
            .collect()
    };
    let expected = |flag: &str| -> BTreeSet<String> {
        key.iter()
            .filter(|(_, (_, _, flags))| flags.contains(flag))
            .filter_map(|(name, _)| customer_of(name))
            .collect()
    };
    // The superuser: exactly the one customer who answers the others.
    assert_eq!(flagged("superuser", ""), expected("superuser"));
    assert_eq!(expected("superuser").len(), 1);
    // Every evasive reply in the corpus is found.
    let evasive = flagged("honesty", "evasive_reply");
    for customer in expected("evasive_reply") {
        assert!(
            evasive.contains(&customer),
            "missed evasive reply to {customer}"
        );
    }
    // Public complaints are escalations, and nothing else is: the superuser's public
    // answers to other customers are help, not complaints. All of them with AVX-512 VNNI
    // or f32 arithmetic; on AVX2 the int8 kernel's 7-bit activations put Chloe
    // Barrington's half-happy "Still cross about the three missed delivery slots" at
    // P(complaint) 0.884 instead of 0.907, under the 0.9 threshold, so one may be missed.
    // A public complaint is one flag (a complaint, high, `public`), never a second one.
    assert!(
        flags.iter().all(|f| f["kind"] != "public_escalation"),
        "public complaints raise no second flag"
    );
    let escalations: BTreeSet<String> = flags
        .iter()
        .filter(|f| f["kind"] == "complaint" && f["public"] == true)
        .inspect(|f| assert_eq!(f["severity"], "high", "a public complaint is high: {f}"))
        .filter_map(|f| f["customer_id"].as_str().map(str::to_string))
        .collect();
    let wanted = expected("public_escalation");
    assert!(
        escalations.is_subset(&wanted),
        "false escalations: {:?}",
        escalations.difference(&wanted).collect::<Vec<_>>()
    );
    assert!(
        escalations.len() + 1 >= wanted.len(),
        "escalations missed: {:?}",
        wanted.difference(&escalations).collect::<Vec<_>>()
    );
    // Every threat to leave is found (the label or a phrase of leaving), and nobody else
    // is flagged as a churn risk.
    assert_eq!(flagged("churn_risk", ""), expected("churn_risk"));
    assert_eq!(expected("churn_risk").len(), 8);
    // Most complaints and allegations are found, with few false ones.
    for (kind, reason, flag) in [
        ("complaint", "", "complaint"),
        ("honesty", "allegation", "allegation"),
    ] {
        let found = flagged(kind, reason);
        let wanted = expected(flag);
        let hits = found.intersection(&wanted).count();
        assert!(
            hits * 10 >= wanted.len() * 6,
            "{flag}: {hits} of {} found ({found:?})",
            wanted.len()
        );
        assert!(
            found.len() <= hits * 2,
            "{flag}: {} flagged, {hits} right",
            found.len()
        );
    }

    // Relationship types: at least six kinds, most customers typed, and well above chance
    // (one in seventeen) agreement with the intended types (24 of 46 when measured).
    let typed: Vec<(&str, &str)> = profiles
        .iter()
        .filter_map(|p| Some((p.customer_id.as_str(), p.relationship.key()?)))
        .collect();
    let kinds: BTreeSet<&str> = typed.iter().map(|(_, k)| *k).collect();
    assert!(kinds.len() >= 6, "types seen: {kinds:?}");
    assert!(
        typed.len() * 10 >= profiles.len() * 8,
        "{} typed",
        typed.len()
    );
    let agree = key
        .iter()
        .filter(|(name, (_, intended, _))| {
            customer_of(name).is_some_and(|id| typed.iter().any(|(c, k)| *c == id && k == intended))
        })
        .count();
    assert!(
        agree * 100 >= key.len() * 40,
        "{agree} of {} customers typed as intended",
        key.len()
    );
    // Customer service works the queue: acknowledge a flag through the CLI, and the
    // queue shows who did it; an unknown flag is exit 4.
    drop(store);
    let cli = |args: &[&str]| {
        Command::new(RAPPORT)
            .args(args)
            .env_clear()
            .env("RAPPORT_DATA_DIR", data.path())
            .env("RAPPORT_MODELS_CACHE", &cache)
            .output()
            .unwrap()
    };
    let superuser = flags.iter().find(|f| f["kind"] == "superuser").unwrap()["id"]
        .as_str()
        .unwrap();
    let done = cli(&[
        "flag",
        superuser,
        "--status",
        "acknowledged",
        "--by",
        "mette",
        "--json",
    ]);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let queue = cli(&["flags", "--status", "acknowledged", "--json"]);
    let queue: Value = serde_json::from_slice(&queue.stdout).unwrap();
    assert_eq!(queue.as_array().unwrap().len(), 1);
    assert_eq!(queue[0]["id"], superuser);
    assert_eq!(queue[0]["status_by"], "mette");
    let unknown = cli(&[
        "flag",
        "complaint:nope",
        "--status",
        "resolved",
        "--by",
        "x",
    ]);
    assert_eq!(unknown.status.code(), Some(4));

    // Semantic search across languages: an English query finds the Swedish customer whose
    // remote is broken, and a Norwegian one the double charge, each grouped by customer.
    for (query, name) in [
        ("the remote control is broken", "Ebba Lindahl"),
        ("dobbelt trukket for ordren", "Eirik Halvorsen"),
    ] {
        let out = cli(&["search", query, "--k", "3", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let groups: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            groups[0]["customer_id"].as_str(),
            customer_of(name).as_deref(),
            "{query}: {groups}"
        );
    }

    // Similar customers for two of them, nearest first.
    let similar = report["similar"].as_array().unwrap();
    assert_eq!(similar.len(), 2);
    for entry in similar {
        let found = entry["similar"].as_array().unwrap();
        assert!(!found.is_empty());
        let scores: Vec<f64> = found.iter().map(|s| s["score"].as_f64().unwrap()).collect();
        assert!(scores.windows(2).all(|w| w[0] <= w[1]), "{scores:?}");
    }
}
