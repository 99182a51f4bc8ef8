//! `rapport eval FILE --search`: how well search finds the message, measured through the
//! store's own search (a throwaway embedded store per variant), before and after each
//! change to it:
//!
//! - a labelled file (banking77's intents): each of `--queries` seeded utterances is a
//!   query over all the others; the figure is the share of its top 10 with its intent;
//! - judged queries (`models/eval/search/demo-queries.jsonl`) over the interactions of a
//!   data dir where `rapport demo --data-dir` ran: recall@10 (out of min(10, relevant))
//!   and MRR, a hit being a stored message that contains a judged snippet.
//!
//! Variants: dense only (what Rapport searched before), the documents embedded in e5's
//! `passage: ` role instead of `query: ` (measured, not shipped: the stored vector also
//! serves similar customers), the near-empty floor, and keyword scores added to the
//! cosine at several weights (`queries::find_interactions`; the shipped one marked).

use std::collections::HashSet;
use std::io::Write;

use rapport_config::Config;
use rapport_connectors::{Author, Channel, Interaction, Role};
use rapport_models::classify::MessageSignals;
use rapport_models::train::Rng;
use rapport_models::{Encoder, labelled};
use rapport_pipeline::queries::{TERMS_WEIGHT, below_floor, find_interactions};
use rapport_pipeline::store::{
    AnalysedInteraction, EdgeStore, InteractionFilter, InteractionPoint, InteractionStore, Terms,
};

use crate::exit::{EXIT_CONFIG, EXIT_FAILURE, fail};
use crate::model_loading::load_encoder;
use crate::signal_args::EvalArgs;

/// Results a measure looks at.
const TOP: usize = 10;

#[derive(Debug, Clone)]
struct Variant {
    name: String,
    passages: bool,
    /// The keyword score's weight beside the cosine (`queries::find_interactions`); 0 is
    /// dense only.
    terms_weight: f32,
    floor: bool,
}

/// Weights of the words tried beside the shipped one, to show the curve.
const TERMS_WEIGHTS: [f32; 5] = [0.005, 0.01, 0.02, 0.04, 0.08];

fn variants() -> Vec<Variant> {
    let variant = |name: String, passages, terms_weight, floor| Variant {
        name,
        passages,
        terms_weight,
        floor,
    };
    let mut all = vec![
        variant("dense (before)".into(), false, 0.0, false),
        variant("dense, documents as passage:".into(), true, 0.0, false),
        variant("dense + floor".into(), false, 0.0, true),
    ];
    for weight in TERMS_WEIGHTS {
        let shipped = if weight == TERMS_WEIGHT {
            " (shipped)"
        } else {
            ""
        };
        all.push(variant(
            format!("dense + words {weight} + floor{shipped}"),
            false,
            weight,
            true,
        ));
    }
    all.push(variant(
        format!("passage: + words {TERMS_WEIGHT} + floor"),
        true,
        TERMS_WEIGHT,
        true,
    ));
    all
}

/// A document of the measured collection.
struct Document {
    id: String,
    text: String,
}

/// A query with what counts as a hit.
struct Query {
    text: String,
    /// Documents that answer it.
    relevant: HashSet<usize>,
    /// Its own document, left out of its results (a labelled utterance).
    itself: Option<usize>,
}

pub fn eval_search(config: &Config, args: &EvalArgs) -> Result<(), u8> {
    let encoder = load_encoder(config, args.encoder.as_deref(), None, None)?;
    let judged = args.file.extension().is_some_and(|e| e == "jsonl");
    let (documents, queries, measure) = if judged {
        judged_queries(config, &args.file, encoder.spec().dims)?
    } else {
        labelled_queries(&args.file, args.queries, args.training.seed)?
    };
    let budget = config.settings.models.max_batch_tokens;
    let texts: Vec<&str> = documents.iter().map(|d| d.text.as_str()).collect();
    let embed_failed = |e: rapport_models::ModelError| fail(EXIT_FAILURE)(e.to_string());
    let as_queries = encoder.embed(&texts, budget).map_err(embed_failed)?.vectors;
    let as_passages = encoder
        .embed_passages(&texts, budget)
        .map_err(embed_failed)?
        .vectors;
    let query_texts: Vec<&str> = queries.iter().map(|q| q.text.as_str()).collect();
    let query_vectors = encoder
        .embed(&query_texts, budget)
        .map_err(embed_failed)?
        .vectors;
    let runtime = tokio::runtime::Handle::current();
    let mut rows = Vec::new();
    // One store per way of embedding the documents, every variant measured on it.
    for passages in [false, true] {
        let dir = tempfile::tempdir().map_err(|e| fail(EXIT_FAILURE)(e.to_string()))?;
        let vectors = if passages { &as_passages } else { &as_queries };
        let measured: Vec<Variant> = variants()
            .into_iter()
            .filter(|v| v.passages == passages)
            .collect();
        let figures = tokio::task::block_in_place(|| {
            runtime.block_on(measure_variants(
                dir.path(),
                &encoder,
                &documents,
                vectors,
                &queries,
                &query_vectors,
                &measured,
            ))
        })
        .map_err(fail(EXIT_FAILURE))?;
        rows.extend(measured.into_iter().zip(figures));
    }
    // In the order `variants()` lists them.
    let order = variants();
    rows.sort_by_key(|(v, _)| order.iter().position(|o| o.name == v.name));
    let mut out = std::io::stdout().lock();
    if args.json {
        let variants: Vec<serde_json::Value> = rows
            .iter()
            .map(|(v, f)| {
                serde_json::json!({
                    "variant": v.name,
                    "precision_at_10": f.precision,
                    "recall_at_10": f.recall,
                    "mrr": f.mrr,
                })
            })
            .collect();
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({
                "file": args.file,
                "documents": documents.len(),
                "queries": queries.len(),
                "measure": measure,
                "variants": variants,
            })
        );
    } else {
        let _ = writeln!(
            out,
            "{}: {} documents, {} queries; {measure}",
            args.file.display(),
            documents.len(),
            queries.len()
        );
        let _ = writeln!(
            out,
            "{:<40} {:>14} {:>11} {:>6}",
            "variant", "precision@10", "recall@10", "MRR"
        );
        for (variant, f) in &rows {
            let _ = writeln!(
                out,
                "{:<40} {:>14.4} {:>11.4} {:>6.4}",
                variant.name, f.precision, f.recall, f.mrr
            );
        }
    }
    Ok(())
}

#[derive(Debug, Default)]
struct Figures {
    /// Share of the top 10 that are hits.
    precision: f64,
    /// Hits in the top 10 out of min(10, hits there are).
    recall: f64,
    mrr: f64,
}

async fn measure_variants(
    dir: &std::path::Path,
    encoder: &Encoder,
    documents: &[Document],
    vectors: &[Vec<f32>],
    queries: &[Query],
    query_vectors: &[Vec<f32>],
    variants: &[Variant],
) -> Result<Vec<Figures>, String> {
    let store = EdgeStore::open(dir, encoder.spec().dims).map_err(|e| e.to_string())?;
    let points: Vec<InteractionPoint> = documents
        .iter()
        .zip(vectors)
        .map(|(d, v)| InteractionPoint {
            stored: stored(d),
            vector: v.clone(),
        })
        .collect();
    for chunk in points.chunks(2048) {
        store
            .upsert_interactions(chunk.to_vec())
            .await
            .map_err(|e| e.to_string())?;
    }
    store.optimize().await.map_err(|e| e.to_string())?;
    let index: std::collections::HashMap<&str, usize> = documents
        .iter()
        .enumerate()
        .map(|(at, d)| (d.id.as_str(), at))
        .collect();
    let mut all = Vec::new();
    for variant in variants {
        let mut figures = Figures::default();
        for (query, vector) in queries.iter().zip(query_vectors) {
            let terms = Terms::of_query(&query.text);
            // Enough to fill the top 10 after the floor and the query's own document.
            let found = find_interactions(
                &store,
                vector.clone(),
                &terms,
                &InteractionFilter::default(),
                TOP * 4,
                variant.terms_weight,
            )
            .await
            .map_err(|e| e.to_string())?;
            let ranked: Vec<usize> = found
                .iter()
                .filter(|s| !variant.floor || !below_floor(&s.item.interaction.text, &terms))
                .filter_map(|s| index.get(s.item.interaction.id.as_str()).copied())
                .filter(|&d| Some(d) != query.itself)
                .take(TOP)
                .collect();
            let hits = ranked.iter().filter(|d| query.relevant.contains(d)).count();
            figures.precision += hits as f64 / TOP as f64;
            figures.recall += hits as f64 / query.relevant.len().clamp(1, TOP) as f64;
            figures.mrr += ranked
                .iter()
                .position(|d| query.relevant.contains(d))
                .map_or(0.0, |rank| 1.0 / (rank + 1) as f64);
        }
        let n = queries.len().max(1) as f64;
        figures.precision /= n;
        figures.recall /= n;
        figures.mrr /= n;
        all.push(figures);
    }
    Ok(all)
}

fn stored(d: &Document) -> AnalysedInteraction {
    AnalysedInteraction {
        interaction: Interaction {
            id: d.id.clone(),
            conversation_id: d.id.clone(),
            channel: Channel::Chat,
            connector: "search-eval".into(),
            occurred_at: time::OffsetDateTime::UNIX_EPOCH,
            author: Author {
                role: Role::Customer,
                ids: Vec::new(),
                name: None,
            },
            text: d.text.clone(),
            language: None,
            public: false,
            in_reply_to: None,
            attributes: Default::default(),
        },
        customer_id: Some(d.id.clone()),
        signals: MessageSignals {
            heads: Default::default(),
            prototypes: Default::default(),
        },
    }
}

/// Every row a document; `count` seeded rows also queries, their label's rows the hits.
fn labelled_queries(
    path: &std::path::Path,
    count: usize,
    seed: u64,
) -> Result<(Vec<Document>, Vec<Query>, String), u8> {
    let examples = labelled::read(path).map_err(|e| fail(EXIT_CONFIG)(e.to_string()))?;
    let documents: Vec<Document> = examples
        .iter()
        .enumerate()
        .map(|(at, e)| Document {
            id: format!("row-{at}"),
            text: e.text.clone(),
        })
        .collect();
    let mut order: Vec<usize> = (0..examples.len()).collect();
    Rng::new(seed).shuffle(&mut order);
    let queries = order
        .into_iter()
        .take(count)
        .map(|q| Query {
            text: examples[q].text.clone(),
            relevant: (0..examples.len())
                .filter(|&d| d != q && examples[d].label == examples[q].label)
                .collect(),
            itself: Some(q),
        })
        .collect();
    Ok((
        documents,
        queries,
        format!(
            "precision@10: the share of each query's 10 nearest other rows with its label (seed {seed})"
        ),
    ))
}

#[derive(serde::Deserialize)]
struct JudgedQuery {
    query: String,
    relevant: Vec<Judgement>,
}

#[derive(serde::Deserialize)]
struct Judgement {
    snippet: String,
}

/// The interactions stored in the data dir (a demo run), and the judged queries.
fn judged_queries(
    config: &Config,
    path: &std::path::Path,
    dims: usize,
) -> Result<(Vec<Document>, Vec<Query>, String), u8> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail(EXIT_CONFIG)(format!("{}: {e}", path.display())))?;
    let judged: Vec<JudgedQuery> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(at, l)| {
            serde_json::from_str(l).map_err(|e| {
                fail(EXIT_CONFIG)(format!(
                    "{}:{}: not a judged query {{query, relevant: [{{snippet}}]}}: {e}",
                    path.display(),
                    at + 1
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    let store_dir = config.settings.data_dir.join("store");
    let runtime = tokio::runtime::Handle::current();
    let stored = tokio::task::block_in_place(|| {
        runtime.block_on(async {
            let store = EdgeStore::open(&store_dir, dims).map_err(|e| e.to_string())?;
            store
                .list_interactions(&InteractionFilter::default(), usize::MAX)
                .await
                .map_err(|e| e.to_string())
        })
    })
    .map_err(|e| {
        fail(EXIT_CONFIG)(format!(
            "{}: {e} (run `rapport demo --data-dir DIR` and point RAPPORT_DATA_DIR at DIR)",
            store_dir.display()
        ))
    })?;
    if stored.is_empty() {
        return Err(fail(EXIT_CONFIG)(format!(
            "{} holds no interactions: run `rapport demo --data-dir` there first",
            store_dir.display()
        )));
    }
    let documents: Vec<Document> = stored
        .iter()
        .map(|s| Document {
            id: s.interaction.id.clone(),
            text: s.interaction.text.clone(),
        })
        .collect();
    let mut queries = Vec::new();
    for q in judged {
        let mut relevant = HashSet::new();
        for j in &q.relevant {
            let found: Vec<usize> = (0..documents.len())
                .filter(|&d| documents[d].text.contains(&j.snippet))
                .collect();
            if found.is_empty() {
                eprintln!(
                    "rapport eval: query {:?}: no stored message contains {:?} (redacted or cut?)",
                    q.query, j.snippet
                );
            }
            relevant.extend(found);
        }
        queries.push(Query {
            text: q.query,
            relevant,
            itself: None,
        });
    }
    Ok((
        documents,
        queries,
        "recall@10 (out of min(10, relevant)) and MRR over the stored messages".into(),
    ))
}
