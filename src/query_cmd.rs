//! `rapport similar|search|portfolio|flags|customer` and `rapport identities import`:
//! the pipeline's queries over the data dir's store, as tables or `--json`.

use std::path::Path;

use rapport_config::Config;
use rapport_config::relationships::RelationshipCatalogue;
use rapport_pipeline::flags::{Flag, FlagKind, FlagStatus};
use rapport_pipeline::profile::Relationship;
use rapport_pipeline::queries::{
    self, CustomerHits, CustomerView, PortfolioRow, QueryError, SimilarCustomer,
};
use rapport_pipeline::store::{
    ConfiguredStore, CustomerSpace, CustomerStore, FlagFilter, StoreError,
};

use crate::api_client::ApiClient;
use crate::exit::{EXIT_CONFIG, EXIT_FAILURE, EXIT_NOT_FOUND};

/// The data dir's store, for text vectors of the signal heads' encoder.
pub(crate) async fn open_store(config: &Config) -> Result<ConfiguredStore, u8> {
    let dir = config.settings.store_dir();
    if config.settings.qdrant.url.is_none() && !dir.exists() {
        eprintln!(
            "rapport: no store at {} yet: run `rapport run` or `rapport demo --data-dir {}` first",
            dir.display(),
            config.settings.data_dir.display()
        );
        return Err(EXIT_FAILURE);
    }
    ConfiguredStore::open(&config.settings, text_dims(config)?)
        .await
        .map_err(|e| {
            eprintln!("rapport: {e}");
            EXIT_FAILURE
        })
}

/// Where a query goes: the store, or, while `rapport run` holds the embedded store, the
/// daemon's API, which answers the same questions from the same data.
pub(crate) enum Source {
    Store(ConfiguredStore),
    Api(ApiClient),
}

pub(crate) async fn open_source(config: &Config) -> Result<Source, u8> {
    let dir = config.settings.store_dir();
    if config.settings.qdrant.url.is_none() && !dir.exists() {
        return open_store(config).await.map(Source::Store);
    }
    match ConfiguredStore::open(&config.settings, text_dims(config)?).await {
        Ok(store) => Ok(Source::Store(store)),
        Err(e @ StoreError::Locked { .. }) => {
            ApiClient::for_daemon(config, &e.to_string()).map(Source::Api)
        }
        Err(e) => {
            eprintln!("rapport: {e}");
            Err(EXIT_FAILURE)
        }
    }
}

/// The encoder behind the stored text vectors: the one the signal branch was tuned from.
fn text_encoder(config: &Config) -> Result<&'static rapport_models::ModelSpec, u8> {
    let branch = crate::model_loading::branch_in_use(config).map_err(|e| {
        eprintln!("rapport: {e}");
        EXIT_CONFIG
    })?;
    rapport_models::by_name(&branch.card.encoder).ok_or_else(|| {
        eprintln!(
            "rapport: the signal branch names an unknown encoder {}",
            branch.card.encoder
        );
        EXIT_CONFIG
    })
}

fn text_dims(config: &Config) -> Result<usize, u8> {
    Ok(text_encoder(config)?.dims)
}

pub(crate) fn catalogue(config: &Config) -> Result<RelationshipCatalogue, u8> {
    rapport_config::relationships::load(config.settings.profiles.relationship_types.as_deref())
        .map_err(|problems| {
            eprintln!("{problems}");
            EXIT_CONFIG
        })
}

fn query_failed(e: QueryError) -> u8 {
    eprintln!("rapport: {e}");
    match e {
        QueryError::UnknownCustomer(_) => EXIT_NOT_FOUND,
        QueryError::Store(_) => EXIT_FAILURE,
    }
}

fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("query results serialise")
    );
}

pub async fn similar(
    config: &Config,
    customer: &str,
    k: usize,
    space: CustomerSpace,
    json: bool,
) -> Result<(), u8> {
    let found: Vec<SimilarCustomer> = match open_source(config).await? {
        Source::Store(store) => queries::similar(&store, customer, k, space)
            .await
            .map_err(query_failed)?,
        Source::Api(api) => {
            let query = [("k", k.to_string()), ("space", space.as_str().to_string())];
            api.get(&["api", "customers", customer, "similar"], &query)
                .await?
        }
    };
    if json {
        print_json(&found);
    } else {
        print_similar(&found, space);
    }
    Ok(())
}

/// Semantic similarity is a cosine (higher is nearer); relationship similarity a
/// Euclidean distance in the ten dimensions (lower is nearer): the column says which.
pub(crate) fn print_similar(found: &[SimilarCustomer], space: CustomerSpace) {
    let column = match space {
        CustomerSpace::Semantic => "cosine",
        CustomerSpace::Relationship => "distance",
    };
    println!(
        "{:<22} {:<24} {:>8}  {:<20} channels",
        "customer", "name", column, "relationship"
    );
    for s in found {
        let channels: Vec<String> = s.channels.iter().map(|(c, n)| format!("{c} {n}")).collect();
        println!(
            "{:<22} {:<24} {:>8.3}  {:<20} {}",
            s.customer_id,
            clip(s.name.as_deref().unwrap_or("-"), 24),
            s.score,
            s.relationship.as_deref().unwrap_or("not enough evidence"),
            channels.join(", ")
        );
    }
}

pub async fn search(
    config: &Config,
    text: &str,
    channel: Option<rapport_connectors::Channel>,
    since: Option<&str>,
    k: usize,
    json: bool,
) -> Result<(), u8> {
    let since = match since {
        None => None,
        Some(value) => Some(queries::parse_since(value).ok_or_else(|| {
            eprintln!(
                "rapport: --since {value:?} is not a date (2026-03-01) or time (2026-03-01T10:00:00Z)"
            );
            EXIT_CONFIG
        })?),
    };
    let store = match open_source(config).await? {
        Source::Store(store) => store,
        Source::Api(api) => {
            let mut query = vec![("q", text.to_string()), ("k", k.to_string())];
            query.extend(channel.map(|c| ("channel", c.as_str().to_string())));
            query.extend(since.map(|s| {
                (
                    "since",
                    s.format(&time::format_description::well_known::Rfc3339)
                        .expect("formats"),
                )
            }));
            let found: Vec<CustomerHits> = api.get(&["api", "search"], &query).await?;
            return print_found(&found, json);
        }
    };
    // The query is embedded by the encoder the stored vectors came from.
    let spec = text_encoder(config)?;
    crate::analysis_cmd::ensure_imported(config, spec)?;
    let encoder = crate::model_loading::load_encoder(config, Some(spec.name), None, None)?;
    let query = encoder
        .embed(&[text], config.settings.models.max_batch_tokens)
        .map_err(|e| {
            eprintln!("rapport: {e}");
            EXIT_FAILURE
        })?
        .vectors
        .remove(0);
    let found = queries::search(&store, query, text, channel, since, k)
        .await
        .map_err(query_failed)?;
    print_found(&found, json)
}

fn print_found(found: &[CustomerHits], json: bool) -> Result<(), u8> {
    if json {
        print_json(&found);
    } else {
        print_search(found);
    }
    Ok(())
}

fn print_search(found: &[CustomerHits]) {
    for group in found {
        println!(
            "{}  (best {:.3})",
            group.customer_id.as_deref().unwrap_or("(no customer)"),
            group.best
        );
        for hit in &group.hits {
            println!(
                "  {:.3}  {:<7} {}  {}",
                hit.score,
                hit.channel,
                &hit.occurred_at[..10.min(hit.occurred_at.len())],
                clip(&hit.text, 90)
            );
        }
    }
}

pub async fn portfolio(config: &Config, json: bool) -> Result<(), u8> {
    let rows: Vec<PortfolioRow> = match open_source(config).await? {
        Source::Store(store) => queries::portfolio(&store, &catalogue(config)?)
            .await
            .map_err(query_failed)?,
        Source::Api(api) => api.get(&["api", "portfolio"], &[]).await?,
    };
    if json {
        print_json(&rows);
    } else {
        print_portfolio(&rows);
    }
    Ok(())
}

pub(crate) fn print_portfolio(rows: &[PortfolioRow]) {
    println!(
        "{:<24} {:>9} {:>6} {:>5}  dimension means (val int rec pow nov pri con tru com pub)",
        "relationship", "customers", "share", "conf"
    );
    for row in rows {
        let dims: Vec<String> = rapport_config::relationships::DIMENSIONS
            .iter()
            .map(|d| format!("{:+.1}", row.dimensions.get(*d).copied().unwrap_or(0.0)))
            .collect();
        println!(
            "{:<24} {:>9} {:>5.0}% {:>5}  {}",
            clip(&row.name, 24),
            row.customers,
            row.share * 100.0,
            row.mean_confidence
                .map_or("-".to_string(), |c| format!("{c:.2}")),
            dims.join(" ")
        );
    }
}

pub async fn flags(
    config: &Config,
    kind: Option<FlagKind>,
    status: Option<FlagStatus>,
    json: bool,
) -> Result<(), u8> {
    let found: Vec<Flag> = match open_source(config).await? {
        Source::Store(store) => {
            let filter = FlagFilter {
                kind,
                status,
                customer_id: None,
            };
            queries::flags(&store, &filter)
                .await
                .map_err(query_failed)?
        }
        Source::Api(api) => {
            let mut query = Vec::new();
            query.extend(kind.map(|k| ("kind", k.as_str().to_string())));
            query.extend(status.map(|s| ("status", s.as_str().to_string())));
            api.get(&["api", "flags"], &query).await?
        }
    };
    if json {
        print_json(&found);
    } else {
        print_flags(&found);
    }
    Ok(())
}

pub(crate) fn print_flags(flags: &[Flag]) {
    println!(
        "{:<18} {:<14} {:<8} {:<22} {:<7} {:<12} excerpt",
        "kind", "reason", "severity", "customer", "channel", "status"
    );
    for f in flags {
        println!(
            "{:<18} {:<14} {:<8} {:<22} {:<7} {:<12} {}",
            f.kind.as_str(),
            if f.reason.is_empty() { "-" } else { &f.reason },
            format!("{:?}", f.severity).to_lowercase(),
            f.customer_id.as_deref().unwrap_or("-"),
            f.channel.as_deref().unwrap_or("-"),
            f.status.as_str(),
            clip(&f.excerpt, 70)
        );
    }
}

/// `rapport flag ID --status S --by WHO`.
pub async fn set_flag_status(
    config: &Config,
    id: &str,
    status: FlagStatus,
    by: &str,
    json: bool,
) -> Result<(), u8> {
    let store = match open_source(config).await? {
        Source::Store(store) => store,
        Source::Api(api) => {
            let body = serde_json::json!({ "status": status.as_str(), "by": by });
            let flag: Flag = api.post(&["api", "flags", id], &body).await?;
            if json {
                print_json(&flag);
            } else {
                print_flags(&[flag]);
            }
            return Ok(());
        }
    };
    let now = time::OffsetDateTime::now_utc();
    match queries::set_flag_status(&store, id, status, by, now).await {
        Ok(Some(flag)) => {
            if json {
                print_json(&flag);
            } else {
                print_flags(&[flag]);
            }
            Ok(())
        }
        Ok(None) => {
            eprintln!("rapport: no flag {id} in the store (`rapport flags` lists them)");
            Err(EXIT_NOT_FOUND)
        }
        Err(e) => Err(fail_store(e)),
    }
}

fn fail_store(e: rapport_pipeline::store::StoreError) -> u8 {
    eprintln!("rapport: {e}");
    EXIT_FAILURE
}

pub async fn customer(config: &Config, id: &str, json: bool) -> Result<(), u8> {
    let view: CustomerView = match open_source(config).await? {
        Source::Store(store) => queries::customer(&store, &catalogue(config)?, id)
            .await
            .map_err(query_failed)?,
        Source::Api(api) => api.get(&["api", "customers", id], &[]).await?,
    };
    if json {
        print_json(&view);
        return Ok(());
    }
    let p = &view.profile;
    println!(
        "{}  {}",
        p.customer_id,
        p.name.as_deref().unwrap_or("(no name)")
    );
    let channels: Vec<String> = p.channels.iter().map(|(c, n)| format!("{c} {n}")).collect();
    println!(
        "  {} interactions ({} own messages): {}; first {}, last {}",
        p.interactions,
        p.messages,
        channels.join(", "),
        p.first_seen.date(),
        p.last_seen.date()
    );
    println!(
        "  sentiment {:+.2} (trend {:+.2}), complaints {}, answers to other customers {}",
        p.sentiment.mean, p.sentiment.trend, p.complaints, p.answers_to_others
    );
    match &p.relationship {
        Relationship::Typed {
            name,
            confidence,
            runner_up,
            ..
        } => {
            println!(
                "  relationship: {name} (confidence {confidence:.2}; runner-up {})",
                runner_up.as_deref().unwrap_or("-")
            );
            if let Some(treatment) = &view.treatment {
                println!("  treatment: {treatment}");
            }
        }
        Relationship::NotEnoughEvidence { messages, needed } => {
            println!("  relationship: not enough evidence ({messages} of {needed} messages)")
        }
    }
    let dims: Vec<String> = p
        .dimensions
        .iter()
        .map(|(d, v)| format!("{d} {v:+.2}"))
        .collect();
    println!("  dimensions: {}", dims.join(", "));
    if !view.evidence.is_empty() {
        println!("  evidence:");
        for s in &view.evidence {
            println!(
                "    {}  {}",
                s.interaction.id,
                clip(&s.interaction.text, 90)
            );
        }
    }
    println!("  timeline:");
    for s in &view.timeline {
        println!(
            "    {} {:<6} {:<8} {}",
            s.interaction.occurred_at.date(),
            s.interaction.channel.as_str(),
            format!("{:?}", s.interaction.author.role).to_lowercase(),
            clip(&s.interaction.text, 80)
        );
    }
    if !view.flags.is_empty() {
        println!("  flags:");
        for f in &view.flags {
            println!("    {} ({}, {})", f.id, f.kind.as_str(), f.status.as_str());
        }
    }
    println!("  similar customers:");
    print_similar(&view.similar, CustomerSpace::Semantic);
    Ok(())
}

/// `rapport identities import FILE`: links each CRM row's ids to one customer.
pub async fn import_identities(config: &Config, file: &Path, json: bool) -> Result<(), u8> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        eprintln!("rapport: cannot read {}: {e}", file.display());
        EXIT_FAILURE
    })?;
    let rows = rapport_pipeline::identities::read_crm_csv(&text, &file.display().to_string())
        .map_err(|problems| {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!("rapport: {} problem(s); nothing imported", problems.len());
            EXIT_CONFIG
        })?;
    let bus = rapport_pipeline::Bus::start(&config.settings)
        .await
        .map_err(|e| {
            eprintln!("rapport: {e}");
            EXIT_FAILURE
        })?;
    let result = import_into(config, &bus, &rows).await;
    bus.shutdown().await;
    let report = result?;
    if json {
        print_json(&report);
    } else {
        println!(
            "imported {} customers ({} identity keys)",
            report.customers, report.ids
        );
        for (from, to) in &report.merged {
            println!("merged {from} into {to}");
        }
    }
    Ok(())
}

/// Plans the import; when it merges customers that already have a history, moves that
/// history in the store and rebuilds the kept customers' profiles. The store must be free
/// for that (no running `rapport run`), and nothing is written until it is.
async fn import_into(
    config: &Config,
    bus: &rapport_pipeline::Bus,
    rows: &[rapport_pipeline::identities::CrmCustomer],
) -> Result<rapport_pipeline::identities::ImportReport, u8> {
    let failed = |e: rapport_pipeline::identities::IdentityError| {
        eprintln!("rapport: {e}");
        EXIT_FAILURE
    };
    let identities = rapport_pipeline::identities::Identities::new(bus.identities.clone());
    let planned = identities.plan(rows).await.map_err(failed)?;
    let merges = planned.iter().any(|row| !row.merged_from.is_empty());
    let stored = config.settings.qdrant.url.is_some() || config.settings.store_dir().exists();
    let store = if merges && stored {
        Some(open_store(config).await.inspect_err(|_| {
            eprintln!(
                "rapport: this import merges customers whose history is stored; stop `rapport run`, import, then start it again (nothing was changed)"
            )
        })?)
    } else {
        None
    };
    let report = identities.apply(&planned).await.map_err(failed)?;
    if let Some(store) = store {
        let mut kept = std::collections::BTreeSet::new();
        for (from, to) in &report.merged {
            store.merge_customers(from, to).await.map_err(fail_store)?;
            kept.insert(to.clone());
        }
        rapport_pipeline::worker::rebuild_profiles(
            &store,
            &kept,
            &catalogue(config)?,
            &crate::analysis_cmd::profile_rules(&config.settings),
            &crate::analysis_cmd::flag_rules(&config.settings),
        )
        .await
        .map_err(|e| {
            eprintln!("rapport: {e}");
            EXIT_FAILURE
        })?;
    }
    Ok(report)
}

fn clip(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let mut out: String = flat.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}
