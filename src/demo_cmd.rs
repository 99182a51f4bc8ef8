//! `rapport demo`: the whole pipeline on embedded defaults over the bundled sample corpus.
//! It starts its own nats-server and store (in a temporary data dir unless `--data-dir`),
//! links the corpus's CRM identities, ingests every channel through the real connectors,
//! runs an analysis worker until the stream is drained, and prints the portfolio, the
//! flags and, for two customers, their most similar customers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rapport_config::Config;
use rapport_pipeline::Bus;
use rapport_pipeline::checkpoint::Checkpoints;
use rapport_pipeline::flags::FlagKind;
use rapport_pipeline::identities::{Identities, read_crm_csv};
use rapport_pipeline::profile::Relationship;
use rapport_pipeline::queries;
use rapport_pipeline::sources::files::{FileReader, Layout};
use rapport_pipeline::sources::{Sink, SourceContext, parse_template};
use rapport_pipeline::store::{
    CustomerSpace, CustomerStore, EdgeStore, FlagFilter, InteractionFilter, InteractionStore,
};
use rapport_pipeline::worker::{self, WorkerCounters};
use tokio::sync::watch;

use crate::exit::{EXIT_CONFIG, EXIT_FAILURE, fail};
use crate::query_cmd::{catalogue, print_flags, print_portfolio, print_similar};

/// The company in the sample corpus: its agents write from this domain.
const CORPUS_COMPANY_DOMAIN: &str = "nordlys.example";
/// Give up waiting for the worker after this long without progress.
const STALL_LIMIT: Duration = Duration::from_secs(120);

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Keep the data here (reusable by `rapport similar|search|portfolio|flags|customer`
    /// with RAPPORT_DATA_DIR); default: a temporary directory removed afterwards.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The corpus: email/, chat/, call/, social/ and an optional crm.csv.
    #[arg(long, default_value = "examples/corpus")]
    corpus: PathBuf,
    /// Print the results as one JSON document.
    #[arg(long)]
    json: bool,
}

pub async fn demo(mut config: Config, args: DemoArgs) -> Result<(), u8> {
    if !args.corpus.join("email").is_dir() {
        eprintln!(
            "rapport: no sample corpus at {} (run the demo from the repository root, or pass --corpus)",
            args.corpus.display()
        );
        return Err(EXIT_CONFIG);
    }
    let temporary = match &args.data_dir {
        Some(_) => None,
        None => Some(
            tempfile::tempdir().map_err(|e| fail(EXIT_FAILURE)(format!("temporary dir: {e}")))?,
        ),
    };
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| temporary.as_ref().unwrap().path().to_path_buf());
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| fail(EXIT_FAILURE)(format!("{}: {e}", data_dir.display())))?;
    let settings = &mut config.settings;
    // Embedded defaults: our own nats-server and store under the data dir. The models
    // stay where `rapport models import` put them (or are imported there on first use).
    let models_dir = settings.models_dir();
    settings.models.dir = Some(models_dir);
    settings.data_dir = data_dir.clone();
    settings.nats.url = None;
    settings.qdrant.url = None;
    if !settings
        .ingest
        .company_domains
        .iter()
        .any(|d| d == CORPUS_COMPANY_DOMAIN)
    {
        settings
            .ingest
            .company_domains
            .push(CORPUS_COMPANY_DOMAIN.into());
    }
    let started = Instant::now();
    let analyzer = crate::analysis_cmd::load_analyzer(&config)?;
    let dims = analyzer.classifier.encoder().spec().dims;
    let store = EdgeStore::open(&config.settings.store_dir(), dims)
        .map_err(|e| fail(EXIT_FAILURE)(e.to_string()))?;
    let bus = Bus::start(&config.settings)
        .await
        .map_err(|e| fail(EXIT_FAILURE)(e.to_string()))?;
    let result = run_demo(&config, &args, &bus, store, analyzer, started).await;
    bus.shutdown().await;
    if let Some(dir) = &args.data_dir
        && result.is_ok()
        && !args.json
    {
        println!(
            "\nThe data is kept in {}: try  RAPPORT_DATA_DIR={} rapport customer <id>",
            dir.display(),
            dir.display()
        );
    }
    drop(temporary);
    result
}

async fn run_demo(
    config: &Config,
    args: &DemoArgs,
    bus: &Bus,
    store: EdgeStore,
    analyzer: Arc<worker::Analyzer>,
    started: Instant,
) -> Result<(), u8> {
    let say = |line: String| {
        if !args.json {
            eprintln!("{line}");
        }
    };
    let crm = args.corpus.join("crm.csv");
    if crm.exists() {
        let text = std::fs::read_to_string(&crm)
            .map_err(|e| fail(EXIT_FAILURE)(format!("{}: {e}", crm.display())))?;
        let rows = read_crm_csv(&text, &crm.display().to_string())
            .map_err(|p| fail(EXIT_FAILURE)(p.join("\n")))?;
        let report = Identities::new(bus.identities.clone())
            .import(&rows)
            .await
            .map_err(|e| fail(EXIT_FAILURE)(e.to_string()))?;
        say(format!(
            "identities: {} CRM customers linked ({} keys)",
            report.customers, report.ids
        ));
    }

    let ingested = ingest_corpus(config, bus, &args.corpus).await?;
    say(format!(
        "ingested: {ingested} interactions from {}",
        args.corpus.display()
    ));

    let (stop_tx, stop) = watch::channel(false);
    let counters = Arc::new(WorkerCounters::default());
    let worker = {
        let handle = bus.handle();
        let store = store.clone();
        let settings = config.settings.clone();
        let counters = counters.clone();
        tokio::spawn(async move {
            worker::run(&handle, store, analyzer, &settings, counters, stop).await
        })
    };
    wait_until_analysed(bus, &counters).await?;
    let _ = stop_tx.send(true);
    match worker.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(fail(EXIT_FAILURE)(e.to_string())),
        Err(e) => return Err(fail(EXIT_FAILURE)(format!("the worker failed: {e}"))),
    }
    store
        .optimize()
        .await
        .map_err(|e| fail(EXIT_FAILURE)(e.to_string()))?;
    let seconds = started.elapsed().as_secs_f64();
    say(format!(
        "analysed: {} interactions stored, {} dead-lettered, {} flags raised, in {seconds:.1} s\n",
        counters.stored.load(std::sync::atomic::Ordering::Relaxed),
        counters
            .dead_lettered
            .load(std::sync::atomic::Ordering::Relaxed),
        counters
            .flags_raised
            .load(std::sync::atomic::Ordering::Relaxed),
    ));
    report(config, args, &store).await
}

/// Every file of the corpus through the file connector, as `rapport ingest` does.
async fn ingest_corpus(config: &Config, bus: &Bus, corpus: &Path) -> Result<u64, u8> {
    let settings = &config.settings;
    let mut template = parse_template(None, "demo", &settings.ingest);
    // The corpus's calls are Deepgram transcripts: the first speaker is the agent.
    template.speaker_roles = vec![
        ("Speaker 0".into(), rapport_connectors::Role::Agent),
        ("Speaker 1".into(), rapport_connectors::Role::Customer),
    ];
    let cx = SourceContext::new(template, Some(Checkpoints::new(bus.checkpoints.clone())));
    let mut sink = Sink::bus(bus, settings.ingest.dlq_max_raw_bytes);
    let mut total = 0;
    for channel in ["email", "chat", "call", "social"] {
        let dir = corpus.join(channel);
        if !dir.exists() {
            continue;
        }
        let mut reader = FileReader::new(cx.clone(), dir.clone(), Layout::Files(None));
        let report = reader
            .scan(&mut sink, &mut |_, _| {})
            .await
            .map_err(|e| fail(EXIT_FAILURE)(format!("{}: {e}", dir.display())))?;
        total += report.interactions;
    }
    sink.commit()
        .await
        .map_err(|e| fail(EXIT_FAILURE)(e.to_string()))?;
    Ok(total)
}

/// Until the analysis consumer has nothing pending and nothing unacknowledged.
async fn wait_until_analysed(bus: &Bus, counters: &WorkerCounters) -> Result<(), u8> {
    let mut last_progress = Instant::now();
    let mut last_done = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (pending, unacked) = bus
            .analysis_backlog()
            .await
            .map_err(|e| fail(EXIT_FAILURE)(e.to_string()))?;
        if pending == 0 && unacked == 0 {
            return Ok(());
        }
        let done = counters.stored.load(std::sync::atomic::Ordering::Relaxed)
            + counters
                .dead_lettered
                .load(std::sync::atomic::Ordering::Relaxed);
        if done != last_done {
            last_done = done;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > STALL_LIMIT {
            return Err(fail(EXIT_FAILURE)(format!(
                "the analysis worker made no progress for {STALL_LIMIT:?} ({pending} pending, {unacked} unacknowledged)"
            )));
        }
    }
}

async fn report(config: &Config, args: &DemoArgs, store: &EdgeStore) -> Result<(), u8> {
    let catalogue = catalogue(config)?;
    let failed = |e: queries::QueryError| fail(EXIT_FAILURE)(e.to_string());
    let portfolio = queries::portfolio(store, &catalogue)
        .await
        .map_err(failed)?;
    let flags = queries::flags(store, &FlagFilter::default())
        .await
        .map_err(failed)?;
    let customers = store
        .all_customers()
        .await
        .map_err(|e| fail(EXIT_FAILURE)(e.to_string()))?;
    let interactions = store
        .count_interactions(&InteractionFilter::default())
        .await
        .map_err(|e| fail(EXIT_FAILURE)(e.to_string()))?;
    // Two customers worth a look: the most confidently typed one, and the most confidently
    // typed one of another type.
    let mut typed: Vec<(&str, f32, &str)> = customers
        .iter()
        .filter_map(|c| match &c.relationship {
            Relationship::Typed {
                key, confidence, ..
            } => Some((c.customer_id.as_str(), *confidence, key.as_str())),
            Relationship::NotEnoughEvidence { .. } => None,
        })
        .collect();
    typed.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let mut picked: Vec<(&str, &str)> = Vec::new();
    for (id, _, key) in &typed {
        if picked.len() < 2 && picked.iter().all(|(_, k)| k != key) {
            picked.push((id, key));
        }
    }
    let mut similar = Vec::new();
    for (id, key) in &picked {
        let found = queries::similar(store, id, 5, CustomerSpace::Relationship)
            .await
            .map_err(failed)?;
        similar.push((id.to_string(), key.to_string(), found));
    }
    if args.json {
        let json = serde_json::json!({
            "interactions": interactions,
            "customers": customers.len(),
            "profiles": customers,
            "portfolio": portfolio,
            "flags": flags,
            "similar": similar.iter().map(|(id, key, found)| serde_json::json!({
                "customer_id": id, "relationship": key, "similar": found,
            })).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&json).expect("serialises")
        );
        return Ok(());
    }
    println!(
        "== Relationship portfolio: {} customers, {interactions} interactions ==",
        customers.len()
    );
    print_portfolio(&portfolio);
    println!("\n== Flags ({}) ==", flags.len());
    let counts: Vec<String> = FlagKind::ALL
        .iter()
        .map(|k| {
            format!(
                "{} {}",
                k.as_str(),
                flags.iter().filter(|f| f.kind == *k).count()
            )
        })
        .collect();
    println!("{}", counts.join(", "));
    print_flags(&flags);
    for (id, key, found) in &similar {
        let name = customers
            .iter()
            .find(|c| c.customer_id == *id)
            .and_then(|c| c.name.clone())
            .unwrap_or_default();
        println!("\n== Customers most like {id} ({name}, {key}) ==");
        print_similar(found, CustomerSpace::Relationship);
    }
    Ok(())
}
