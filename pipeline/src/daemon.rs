//! `rapport run`: connectors, analysis workers, the alerter and the HTTP API in one process,
//! or one role per process (`--role connectors|workers|alerter`; the API lives with the
//! workers, which hold the store).
//!
//! Each connector runs as a supervised task: one that stops by itself (a bug, a permanent
//! error) is logged, marked in its status, and restarted with back-off; its checkpoint keeps
//! its position. SIGTERM/SIGINT drain in-flight work (a second signal, or 30 s, cuts it
//! short); SIGHUP reloads the configuration and restarts the connectors with it, falling
//! back to the running configuration when the new one cannot start.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rapport_config::{Config, Connector};
use tokio::signal::unix::{Signal, SignalKind};
use tokio::sync::watch;
use tokio::task::{Id, JoinSet};
use tracing::{error, info, warn};

use crate::alerts::{AlertError, AlertStats, Alerter};
use crate::api::{self, ApiContext, ApiLimits, Metrics};
use crate::bearer::api_token;
use crate::bus::{Bus, BusError};
use crate::checkpoint::Checkpoints;
use crate::lifecycle::{Backoff, Shutdown, drain};
use crate::sources::{
    BuiltSource, Counters, Retry, Sink, SourceContext, SourceError, parse_template, source_kind,
};
use crate::store::{ConfiguredStore, StoreError};
use crate::worker::{self, Analyzer, WorkerCounters};

/// How long draining may take before the remaining tasks are cut off.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// Restart back-off for a task that stopped by itself: 1 s doubling to 60 s.
const RESTART: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything: connectors, workers (with the API) and the alerter.
    All,
    Connectors,
    /// Analysis workers only: more of these share the `analysis` consumer to scale out.
    Workers,
    /// The alerter only: one per deployment (its hourly caps and digests are its own).
    Alerter,
}

impl Role {
    pub fn runs_connectors(self) -> bool {
        matches!(self, Role::All | Role::Connectors)
    }

    pub fn runs_workers(self) -> bool {
        matches!(self, Role::All | Role::Workers)
    }

    pub fn runs_alerter(self) -> bool {
        matches!(self, Role::All | Role::Alerter)
    }
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
    /// A connector could not be built from its configuration.
    #[error("connectors.{name}: {source}")]
    Connector { name: String, source: SourceError },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Alerts(#[from] AlertError),
    #[error("cannot keep the generated API token in {path}: {source}")]
    Token {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl DaemonError {
    /// Only a configuration change can fix it (a webhook without a token, an unusable
    /// `ca_file`): the exit code says so.
    pub fn needs_configuration(&self) -> bool {
        matches!(self, DaemonError::Connector { source, .. } if source.retry == Retry::Never)
    }
}

/// Runs until SIGTERM/SIGINT. `analyzer` (the loaded models) is needed where the role
/// runs workers.
pub async fn run(
    config: Config,
    role: Role,
    analyzer: Option<Arc<Analyzer>>,
) -> Result<(), DaemonError> {
    let mut config = for_role(config, role);
    // Handlers first: a SIGTERM during start-up must drain, not kill.
    let mut terminate = signal(SignalKind::terminate());
    let mut interrupt = signal(SignalKind::interrupt());
    let mut hangup = signal(SignalKind::hangup());
    let bus = Bus::start(&config.settings).await?;
    bus.reconcile(&config.settings).await?;
    info!(
        ?role,
        embedded = bus.embedded_url().is_some(),
        "rapport running"
    );
    // Before the workers: the alerter's consumer must exist before they raise flags.
    let alert_stats = Arc::new(AlertStats::default());
    let mut alerter = if role.runs_alerter() {
        Alerter::start(&config.settings, &bus.jetstream, alert_stats.clone()).await?
    } else {
        None
    };
    let (workers, api) = match analyzer.filter(|_| role.runs_workers()) {
        Some(analyzer) => {
            let dims = analyzer.classifier.encoder().spec().dims;
            let store = ConfiguredStore::open(&config.settings, dims).await?;
            let counters = Arc::new(WorkerCounters::default());
            let workers = Workers::start(
                &config,
                &bus,
                analyzer.clone(),
                store.clone(),
                counters.clone(),
            );
            let api = Api::start(
                &config,
                &bus,
                analyzer,
                store,
                counters,
                alert_stats.clone(),
            )?;
            (Some(workers), Some(api))
        }
        None => (None, None),
    };
    let mut services = Services::start(&config, &bus, HashMap::new(), api.as_ref())?;
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = hangup.recv() => {
                let running = Running { bus: &bus, services: &mut services, api: api.as_ref(), alerter: &mut alerter, alert_stats: &alert_stats };
                config = reload(config, role, running, &mut terminate, &mut interrupt).await?;
            }
            Some(ended) = services.tasks.join_next_with_id() => services.restart(ended, &config, &bus),
        }
    }
    info!("stopping: finishing in-flight work");
    services.stop(&mut terminate, &mut interrupt).await;
    if let Some(workers) = workers {
        workers.stop(&mut terminate, &mut interrupt).await;
    }
    // After the workers: the flags they raised while draining are queued before it stops.
    if let Some(alerter) = alerter {
        alerter.stop().await;
    }
    bus.shutdown().await;
    info!("rapport stopped");
    Ok(())
}

/// What a reload restarts.
struct Running<'a> {
    bus: &'a Bus,
    services: &'a mut Services,
    api: Option<&'a Api>,
    alerter: &'a mut Option<Alerter>,
    alert_stats: &'a Arc<AlertStats>,
}

/// SIGHUP: re-reads the file; restarts the connectors and the alerter with the new
/// configuration, or with the old one when the new one is invalid or cannot start (a port
/// in use, say).
async fn reload(
    config: Config,
    role: Role,
    running: Running<'_>,
    terminate: &mut Signal,
    interrupt: &mut Signal,
) -> Result<Config, DaemonError> {
    let Running {
        bus,
        services,
        api,
        alerter,
        alert_stats,
    } = running;
    let Some(file) = config.file.clone() else {
        warn!("SIGHUP without a config file: nothing to reload");
        return Ok(config);
    };
    let new = match rapport_config::load(Some(&file)) {
        Ok(new) => for_role(new, role),
        Err(problems) => {
            warn!(%problems, "configuration reload rejected; keeping the running settings");
            return Ok(config);
        }
    };
    services.stop(terminate, interrupt).await;
    if let Some(old) = alerter.take() {
        old.stop().await;
    }
    let counters = services.take_counters();
    // The alerter first: it binds no port, so a failure leaves nothing to undo but itself.
    let new_alerter = match role.runs_alerter() {
        true => Alerter::start(&new.settings, &bus.jetstream, alert_stats.clone()).await,
        false => Ok(None),
    };
    let started = match new_alerter {
        Ok(new_alerter) => match Services::start(&new, bus, counters.clone(), api) {
            Ok(services) => Ok((services, new_alerter)),
            Err(e) => {
                if let Some(new_alerter) = new_alerter {
                    new_alerter.stop().await;
                }
                Err(e)
            }
        },
        Err(e) => Err(DaemonError::from(e)),
    };
    match started {
        Ok((started, new_alerter)) => {
            *services = started;
            *alerter = new_alerter;
            if let Err(e) = bus.reconcile(&new.settings).await {
                warn!(error = %e, "stream limits not updated");
            }
            info!(connectors = new.connectors.len(), "configuration reloaded");
            Ok(new)
        }
        Err(e) => {
            error!(error = %e, "the new configuration cannot start; going back to the running one");
            *services = Services::start(&config, bus, counters, api)?;
            if role.runs_alerter() {
                *alerter =
                    Alerter::start(&config.settings, &bus.jetstream, alert_stats.clone()).await?;
            }
            Ok(config)
        }
    }
}

/// A process whose role runs no connectors gets none: another process runs them.
fn for_role(mut config: Config, role: Role) -> Config {
    if !role.runs_connectors() {
        config.connectors.clear();
    }
    config
}

/// The analysis worker, restarted with back-off when the bus fails under it.
struct Workers {
    stop_tx: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Workers {
    fn start(
        config: &Config,
        bus: &Bus,
        analyzer: Arc<Analyzer>,
        store: ConfiguredStore,
        counters: Arc<WorkerCounters>,
    ) -> Workers {
        let (stop_tx, stop) = watch::channel(false);
        let bus = bus.handle();
        let settings = config.settings.clone();
        let task = tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                let result = worker::run(
                    &bus,
                    store.clone(),
                    analyzer.clone(),
                    &settings,
                    counters.clone(),
                    stop.clone(),
                )
                .await;
                if *stop.borrow() {
                    return;
                }
                failures += 1;
                let delay = RESTART.after(failures);
                match result {
                    Ok(()) => warn!(?delay, "analysis worker stopped by itself; restarting"),
                    Err(e) => error!(error = %e, ?delay, "analysis worker failed; restarting"),
                }
                if Shutdown::new(stop.clone()).sleep(delay).await {
                    return;
                }
            }
        });
        Workers { stop_tx, task }
    }

    /// Lets the batches in flight finish (stored and acked), at most [`DRAIN_LIMIT`].
    async fn stop(self, terminate: &mut Signal, interrupt: &mut Signal) {
        let _ = self.stop_tx.send(true);
        let abort = self.task.abort_handle();
        if drain(self.task, DRAIN_LIMIT, terminate, interrupt).await {
            warn!(
                "stopping the analysis worker without waiting: unacknowledged interactions are redelivered"
            );
            abort.abort();
        }
    }
}

/// The query API of a process that holds the store: its routes, and what they read that a
/// reload changes (the connectors).
struct Api {
    router: axum::Router,
    context: Arc<ApiContext>,
}

impl Api {
    fn start(
        config: &Config,
        bus: &Bus,
        analyzer: Arc<Analyzer>,
        store: ConfiguredStore,
        counters: Arc<WorkerCounters>,
        alert_stats: Arc<AlertStats>,
    ) -> Result<Api, DaemonError> {
        let settings = &config.settings;
        let (token, generated) = api::token_or_generated(api_token(settings), &settings.data_dir)
            .map_err(|source| DaemonError::Token {
            path: settings.data_dir.join("api.token"),
            source,
        })?;
        if let Some(file) = generated {
            info!(file = %file.display(), "API bearer token in this file (set api.token or RAPPORT_API_TOKEN to choose one)");
        }
        let context = Arc::new(ApiContext {
            store,
            analyzer,
            max_batch_tokens: settings.models.max_batch_tokens,
            checkpoints: Checkpoints::new(bus.checkpoints.clone()),
            connectors: std::sync::RwLock::new(config.connectors.clone()),
            metrics: Arc::new(Metrics::new(
                counters,
                alert_stats,
                bus.handle().jetstream.clone(),
            )),
            token,
        });
        let limits = ApiLimits {
            max_body_bytes: settings.api.max_body_bytes,
            requests_per_second: settings.api.requests_per_second,
        };
        Ok(Api {
            router: api::router(context.clone(), limits),
            context,
        })
    }

    /// Points `/api/connectors` and `/metrics` at the connectors now running.
    fn follow(&self, config: &Config, counters: &HashMap<String, Arc<Counters>>) {
        *self.context.connectors.write().expect("connectors lock") = config.connectors.clone();
        self.context.metrics.set_connectors(
            config
                .connectors
                .iter()
                .filter_map(|c| {
                    let counters = counters.get(&c.name)?.clone();
                    Some((c.name.clone(), (c.spec.kind().to_string(), counters)))
                })
                .collect(),
        );
    }
}

fn signal(kind: SignalKind) -> Signal {
    tokio::signal::unix::signal(kind).expect("signal handlers install on unix")
}

/// What a supervised task runs.
#[derive(Debug, Clone, Copy)]
enum Task {
    /// The connector at this index of `config.connectors`.
    Connector(usize),
    /// Its status heartbeat.
    Status(usize),
    /// The HTTP listener (API, webhooks).
    Http,
}

/// The running connectors, their heartbeats and the HTTP listener.
struct Services {
    stop_tx: watch::Sender<bool>,
    tasks: JoinSet<()>,
    task_of: HashMap<Id, Task>,
    counters: HashMap<String, Arc<Counters>>,
    router: Option<axum::Router>,
}

impl Services {
    /// Starts every enabled connector. `counters` carries counts across a reload.
    fn start(
        config: &Config,
        bus: &Bus,
        mut counters: HashMap<String, Arc<Counters>>,
        api: Option<&Api>,
    ) -> Result<Services, DaemonError> {
        let (stop_tx, _) = watch::channel(false);
        let mut services = Services {
            stop_tx,
            tasks: JoinSet::new(),
            task_of: HashMap::new(),
            counters: HashMap::new(),
            router: None,
        };
        let mut router: Option<axum::Router> = None;
        for (index, connector) in config.connectors.iter().enumerate() {
            if !connector.enabled {
                continue;
            }
            let counters = counters.remove(&connector.name).unwrap_or_default();
            services
                .counters
                .insert(connector.name.clone(), counters.clone());
            match services.build(connector, config, bus)? {
                BuiltSource::Pushed(routes) => {
                    router = Some(match router {
                        Some(r) => r.merge(routes),
                        None => routes,
                    });
                    counters.running.store(true, Ordering::Relaxed);
                }
                pulled @ BuiltSource::Pulled { .. } => {
                    let future = run_pulled(connector.name.clone(), pulled);
                    services.spawn_future(Task::Connector(index), future, config, Duration::ZERO);
                }
            }
            services.spawn(Task::Status(index), config, bus, Duration::ZERO)?;
        }
        if let Some(api) = api {
            router = Some(match router {
                Some(r) => r.merge(api.router.clone()),
                None => api.router.clone(),
            });
            api.follow(config, &services.counters);
        }
        if let Some(router) = router {
            services.router = Some(router);
            services.spawn(Task::Http, config, bus, Duration::ZERO)?;
        }
        Ok(services)
    }

    /// The context a connector runs in: its checkpoints, counters, parse settings and the
    /// daemon's stop signal.
    fn context(&self, connector: &Connector, config: &Config, bus: &Bus) -> SourceContext {
        let template = parse_template(Some(connector), &connector.name, &config.settings.ingest);
        SourceContext::new(template, Some(Checkpoints::new(bus.checkpoints.clone())))
            .with_counters(self.counters[&connector.name].clone())
            .with_shutdown(Shutdown::new(self.stop_tx.subscribe()))
    }

    /// The connector, built by its kind's entry in the source registry.
    fn build(
        &self,
        connector: &Connector,
        config: &Config,
        bus: &Bus,
    ) -> Result<BuiltSource, DaemonError> {
        let cx = self.context(connector, config, bus);
        let sink = Sink::bus(bus, config.settings.ingest.dlq_max_raw_bytes);
        (source_kind(connector).build)(connector, cx, &config.settings, sink).map_err(|source| {
            DaemonError::Connector {
                name: connector.name.clone(),
                source,
            }
        })
    }

    /// Starts `task` after `delay` (zero at start-up; back-off after a crash).
    fn spawn(
        &mut self,
        task: Task,
        config: &Config,
        bus: &Bus,
        delay: Duration,
    ) -> Result<(), DaemonError> {
        let stop = self.stop_tx.subscribe();
        let settings = &config.settings;
        let future: futures::future::BoxFuture<'static, ()> = match task {
            Task::Connector(index) => {
                let connector = &config.connectors[index];
                run_pulled(connector.name.clone(), self.build(connector, config, bus)?)
            }
            Task::Status(index) => {
                let connector = &config.connectors[index];
                Box::pin(save_status(
                    self.context(connector, config, bus),
                    connector.spec.kind(),
                ))
            }
            Task::Http => {
                let router = self.router.clone().expect("an HTTP task has routes");
                let addr = settings.api.addr.clone();
                let listener = bind(&addr)?;
                info!(%addr, "HTTP listener (API, dashboard, webhooks)");
                Box::pin(async move {
                    if let Err(e) = api::serve(listener, router, stop).await {
                        error!(error = %e, "HTTP listener failed");
                    }
                })
            }
        };
        self.spawn_future(task, future, config, delay);
        Ok(())
    }

    /// Runs `future` as `task` after `delay`, supervised: [`Services::restart`] learns when
    /// it ends.
    fn spawn_future(
        &mut self,
        task: Task,
        future: futures::future::BoxFuture<'static, ()>,
        config: &Config,
        delay: Duration,
    ) {
        let liveness = match task {
            Task::Connector(index) => Some(self.counters[&config.connectors[index].name].clone()),
            _ => None,
        };
        let mut shutdown = Shutdown::new(self.stop_tx.subscribe());
        let handle = self.tasks.spawn(async move {
            if !delay.is_zero() && shutdown.sleep(delay).await {
                return;
            }
            if let Some(counters) = &liveness {
                counters.running.store(true, Ordering::Relaxed);
            }
            future.await;
        });
        self.task_of.insert(handle.id(), task);
    }

    /// A task ended while nothing asked it to: record it and start it again with back-off.
    fn restart(
        &mut self,
        ended: Result<(Id, ()), tokio::task::JoinError>,
        config: &Config,
        bus: &Bus,
    ) {
        let (id, why) = match ended {
            Ok((id, ())) => (id, "stopped by itself".to_string()),
            Err(e) => (e.id(), format!("crashed: {e}")),
        };
        let Some(task) = self.task_of.remove(&id) else {
            return;
        };
        if *self.stop_tx.borrow() {
            return;
        }
        let name = match task {
            Task::Connector(i) | Task::Status(i) => config.connectors[i].name.clone(),
            Task::Http => "HTTP listener".to_string(),
        };
        let delay = match task {
            Task::Connector(_) => {
                let counters = &self.counters[&name];
                counters.running.store(false, Ordering::Relaxed);
                let restarts = counters.restarts.fetch_add(1, Ordering::Relaxed);
                let delay = RESTART.after(restarts.min(16) as u32);
                counters.record_error(format!("connector {why}; restarting in {delay:?}"));
                delay
            }
            Task::Status(_) | Task::Http => Duration::from_secs(1),
        };
        error!(task = %name, %why, ?delay, "restarting");
        if let Err(e) = self.spawn(task, config, bus, delay) {
            error!(task = %name, error = %e, "cannot restart; it stays stopped until SIGHUP");
        }
    }

    /// Signals every task to finish and waits for them, at most [`DRAIN_LIMIT`]; a second
    /// SIGTERM/SIGINT stops waiting at once.
    async fn stop(&mut self, terminate: &mut Signal, interrupt: &mut Signal) {
        let _ = self.stop_tx.send(true);
        let finish = async {
            while let Some(result) = self.tasks.join_next().await {
                if let Err(e) = result
                    && e.is_panic()
                {
                    error!(error = %e, "task failed while stopping");
                }
            }
        };
        if drain(finish, DRAIN_LIMIT, terminate, interrupt).await {
            warn!(
                "stopping without waiting for the rest of the in-flight work (its checkpoints were not moved: it is read again next start)"
            );
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
        self.task_of.clear();
        for counters in self.counters.values() {
            counters.running.store(false, Ordering::Relaxed);
        }
    }

    fn take_counters(&mut self) -> HashMap<String, Arc<Counters>> {
        std::mem::take(&mut self.counters)
    }
}

/// The long-running future of a pulled connector: the shared source loop. It ends only
/// for an error no retry can fix, which the supervisor logs and restarts with back-off.
fn run_pulled(name: String, running: BuiltSource) -> futures::future::BoxFuture<'static, ()> {
    let BuiltSource::Pulled {
        mut source,
        mut sink,
    } = running
    else {
        unreachable!("pushed connectors are routes of the HTTP task, not tasks")
    };
    Box::pin(async move {
        if let Err(e) = crate::sources::run(source.as_mut(), &mut sink).await {
            error!(connector = %name, error = %e, "connector stopped");
        }
    })
}

fn bind(addr: &str) -> Result<tokio::net::TcpListener, DaemonError> {
    let listen = |source| DaemonError::Listen {
        addr: addr.to_string(),
        source,
    };
    let listener = std::net::TcpListener::bind(addr).map_err(listen)?;
    listener.set_nonblocking(true).map_err(listen)?;
    tokio::net::TcpListener::from_std(listener).map_err(listen)
}

async fn save_status(cx: SourceContext, kind: &'static str) {
    let Some(checkpoints) = cx.checkpoints.clone() else {
        return;
    };
    let mut shutdown = cx.shutdown.clone();
    loop {
        let stopping = shutdown.sleep(Duration::from_secs(2)).await;
        if stopping {
            cx.counters.running.store(false, Ordering::Relaxed);
        }
        if let Err(e) = cx
            .counters
            .snapshot(&cx.name, kind)
            .save(&checkpoints)
            .await
        {
            warn!(connector = %cx.name, error = %e, "cannot save connector status");
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
