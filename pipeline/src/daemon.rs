//! `rapport run`: connectors (and, as they land, workers, alerter and API) in one process,
//! with graceful SIGTERM drain and SIGHUP reload of connector config.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rapport_config::{Config, ConnectorSpec};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::bus::{Bus, BusError};
use crate::checkpoint::Checkpoints;
use crate::ingest::files::{FileReader, Layout, parse_template};
use crate::ingest::imap::ImapReader;
use crate::ingest::mastodon::MastodonReader;
use crate::ingest::webhook::ChatWebhook;
use crate::ingest::{ConnectorState, Counters, Sink};

/// How long a watched file's unfinished last line is given to be completed by its writer.
const UNFINISHED_TAIL_SETTLE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    All,
    Connectors,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("cannot listen on api.addr {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error(
        "connectors.{name}: a chat-webhook needs a bearer token: set api.token, api.token_file or RAPPORT_API_TOKEN"
    )]
    NoToken { name: String },
    #[error("connectors.{name}: {message}")]
    Connector { name: String, message: String },
}

/// Runs until SIGTERM/SIGINT. SIGHUP re-reads `config_path` and restarts the connectors
/// with the new settings; their checkpoints keep their position.
pub async fn run(mut config: Config, role: Role) -> Result<(), DaemonError> {
    let bus = Bus::start(&config.settings).await?;
    info!(
        ?role,
        embedded = bus.embedded_url().is_some(),
        "rapport running"
    );
    let mut terminate = signal(tokio::signal::unix::SignalKind::terminate());
    let mut interrupt = signal(tokio::signal::unix::SignalKind::interrupt());
    let mut hangup = signal(tokio::signal::unix::SignalKind::hangup());
    loop {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = start_connectors(&config, &bus, stop_rx)?;
        let reload = tokio::select! {
            _ = terminate.recv() => false,
            _ = interrupt.recv() => false,
            _ = hangup.recv() => true,
        };
        info!(reload, "stopping connectors: finishing in-flight work");
        let _ = stop_tx.send(true);
        while let Some(result) = tasks.join_next().await {
            if let Err(e) = result {
                error!(error = %e, "connector task failed");
            }
        }
        if !reload {
            break;
        }
        match config
            .file
            .as_deref()
            .map(|f| rapport_config::load(Some(f)))
        {
            Some(Ok(new)) => {
                info!(connectors = new.connectors.len(), "configuration reloaded");
                config = new;
            }
            Some(Err(problems)) => {
                warn!(%problems, "configuration reload rejected; keeping the running settings")
            }
            None => warn!("SIGHUP without a config file: nothing to reload"),
        }
    }
    bus.shutdown().await;
    info!("rapport stopped");
    Ok(())
}

fn signal(kind: tokio::signal::unix::SignalKind) -> tokio::signal::unix::Signal {
    tokio::signal::unix::signal(kind).expect("signal handlers install on unix")
}

fn start_connectors(
    config: &Config,
    bus: &Bus,
    stop: watch::Receiver<bool>,
) -> Result<JoinSet<()>, DaemonError> {
    let settings = &config.settings;
    let checkpoints = Checkpoints::new(bus.checkpoints.clone());
    let mut tasks = JoinSet::new();
    let mut router: Option<axum::Router> = None;
    for connector in config.connectors.iter().filter(|c| c.enabled) {
        let state = ConnectorState {
            name: connector.name.clone(),
            checkpoints: Some(checkpoints.clone()),
            counters: Arc::new(Counters::default()),
        };
        let template = parse_template(connector, &settings.ingest);
        let sink = Sink::bus(bus, settings.ingest.dlq_max_raw_bytes);
        tasks.spawn(save_status(
            state.clone(),
            connector.spec.kind(),
            stop.clone(),
        ));
        match &connector.spec {
            ConnectorSpec::Files {
                path,
                format,
                poll_interval,
            } => {
                let format = format
                    .as_deref()
                    .and_then(rapport_connectors::Format::from_name);
                let reader = FileReader::new(state, path.clone(), Layout::Files(format), template)
                    .hold_unfinished_tail(UNFINISHED_TAIL_SETTLE);
                tasks.spawn(poll_files(reader, sink, *poll_interval, stop.clone()));
            }
            ConnectorSpec::Maildir {
                path,
                poll_interval,
            } => {
                let reader = FileReader::new(state, path.clone(), Layout::Maildir, template);
                tasks.spawn(poll_files(reader, sink, *poll_interval, stop.clone()));
            }
            ConnectorSpec::ChatWebhook { route } => {
                let token = api_token(settings).ok_or_else(|| DaemonError::NoToken {
                    name: connector.name.clone(),
                })?;
                let hook = ChatWebhook::new(state, template, token, sink)
                    .router(route, settings.api.max_body_bytes);
                router = Some(match router {
                    Some(r) => r.merge(hook),
                    None => hook,
                });
            }
            ConnectorSpec::Imap(spec) => {
                let reader = ImapReader::new(state, spec.clone(), template);
                let name = connector.name.clone();
                let stop = stop.clone();
                tasks.spawn(async move {
                    let (mut reader, mut sink) = (reader, sink);
                    if let Err(e) = reader.run(&mut sink, stop).await {
                        error!(connector = %name, error = %e, "IMAP connector stopped");
                    }
                });
            }
            ConnectorSpec::Mastodon(spec) => {
                let mut reader =
                    MastodonReader::new(state, spec.clone(), template).map_err(|e| {
                        DaemonError::Connector {
                            name: connector.name.clone(),
                            message: e.to_string(),
                        }
                    })?;
                let stop = stop.clone();
                tasks.spawn(async move {
                    let mut sink = sink;
                    reader.run(&mut sink, stop).await;
                });
            }
        }
    }
    if let Some(router) = router {
        let addr = settings.api.addr.clone();
        let listener = std::net::TcpListener::bind(&addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| DaemonError::Listen {
                addr: addr.clone(),
                source,
            })?;
        let listener =
            tokio::net::TcpListener::from_std(listener).map_err(|source| DaemonError::Listen {
                addr: addr.clone(),
                source,
            })?;
        info!(%addr, "HTTP listener for webhooks");
        let mut stop = stop.clone();
        tasks.spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
            {
                error!(error = %e, "HTTP listener failed");
            }
        });
    }
    Ok(tasks)
}

/// The API bearer token from `api.token` or `api.token_file`.
pub fn api_token(settings: &rapport_config::Settings) -> Option<String> {
    if let Some(token) = &settings.api.token {
        return Some(token.clone());
    }
    let file = settings.api.token_file.as_ref()?;
    std::fs::read_to_string(file)
        .ok()
        .and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
        .filter(|t| !t.is_empty())
}

async fn poll_files(
    mut reader: FileReader,
    mut sink: Sink,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = interval;
    loop {
        match reader.scan(&mut sink, &mut |_, _| {}).await {
            Ok(report) if report.files_read > 0 => {
                backoff = interval;
                info!(?report, "files scanned");
            }
            Ok(_) => backoff = interval,
            Err(e) => {
                warn!(error = %e, "file scan failed; retrying");
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn save_status(state: ConnectorState, kind: &'static str, mut stop: watch::Receiver<bool>) {
    let Some(checkpoints) = state.checkpoints.clone() else {
        return;
    };
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        if let Err(e) = state
            .counters
            .snapshot(&state.name, kind)
            .save(&checkpoints)
            .await
        {
            warn!(connector = %state.name, error = %e, "cannot save connector status");
        }
        if stopping {
            return;
        }
    }
}

/// The config file a command should read: `--config`, else `RAPPORT_CONFIG`.
pub fn config_path(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| std::env::var_os("RAPPORT_CONFIG").map(PathBuf::from))
}
