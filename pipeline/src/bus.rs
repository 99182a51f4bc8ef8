//! The bus: NATS JetStream streams, the analysis consumer and the KV buckets of DESIGN.md §4,
//! created idempotently at start-up, plus the bounded-window interaction publisher.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, kv, stream};
use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use rapport_config::Settings;
use rapport_connectors::Interaction;
use tracing::{debug, info, warn};

use crate::nats_server::{EmbeddedNats, EmbeddedNatsError};

use crate::subjects;
pub use crate::subjects::{
    ALERT_OUTBOX_BUCKET, ALERTER_CONSUMER, ALERTS_SENT_BUCKET, ANALYSIS_CONSUMER,
    CHECKPOINTS_BUCKET, DLQ_STREAM, FLAGS_STREAM, IDENTITIES_BUCKET, INTERACTIONS_STREAM,
};

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error(transparent)]
    Embedded(#[from] EmbeddedNatsError),
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        url: String,
        source: async_nats::ConnectError,
    },
    #[error("cannot read NATS credentials {path}: {source}")]
    Credentials {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot set up JetStream {what}: {message} (is JetStream enabled on the server?)")]
    Topology { what: String, message: String },
    #[error("publish to {subject} failed: {message}")]
    Publish { subject: String, message: String },
    #[error("{0}")]
    Unacknowledged(String),
    #[error("checkpoint store: {0}")]
    Kv(String),
}

/// A connected bus with Rapport's topology in place.
pub struct Bus {
    pub client: async_nats::Client,
    pub jetstream: jetstream::Context,
    pub checkpoints: kv::Store,
    pub identities: kv::Store,
    publish_window: usize,
    embedded: Option<EmbeddedNats>,
    /// Set by [`Bus::shutdown`], so our own disconnect is not reported as a fault.
    closing: Arc<AtomicBool>,
}

/// A cheap, cloneable view of a [`Bus`] for long-running tasks (the analysis worker).
#[derive(Clone)]
pub struct BusHandle {
    client: async_nats::Client,
    pub jetstream: jetstream::Context,
    pub identities: kv::Store,
    publish_window: usize,
}

impl BusHandle {
    /// A publisher with its own context, as [`Bus::publisher`].
    pub fn publisher(&self) -> Publisher {
        Publisher::new(
            publishing_context(&self.client, self.publish_window),
            self.publish_window,
        )
    }
}

impl Bus {
    /// Connects to `nats.url`, or starts the embedded nats-server when it is unset.
    pub async fn start(settings: &Settings) -> Result<Bus, BusError> {
        let (url, embedded) = match &settings.nats.url {
            Some(url) => (url.clone(), None),
            None => {
                let server =
                    EmbeddedNats::start(&settings.nats.server_binary, &settings.data_dir).await?;
                (server.url(), Some(server))
            }
        };
        let mut bus = Bus::connect(&url, settings).await?;
        bus.embedded = embedded;
        Ok(bus)
    }

    /// Connects to a given server (tests use this with their own nats-server).
    pub async fn connect(url: &str, settings: &Settings) -> Result<Bus, BusError> {
        let nats = &settings.nats;
        let closing = Arc::new(AtomicBool::new(false));
        let closing_seen = closing.clone();
        let mut options = async_nats::ConnectOptions::new()
            .name("rapport")
            .connection_timeout(Duration::from_secs(nats.connect_timeout_secs))
            // Reconnect forever with capped exponential back-off: a restarted server is
            // picked up again, and publishes wait rather than fail during the gap.
            .max_reconnects(None)
            .reconnect_delay_callback(|attempt| {
                Duration::from_millis((100u64 << attempt.min(7) as u64).min(10_000))
            })
            .event_callback(move |event| {
                let closing = closing_seen.load(Ordering::Relaxed);
                async move {
                    match event {
                        _ if closing => debug!(event = %event, "NATS event while closing"),
                        async_nats::Event::Disconnected => warn!("NATS disconnected; reconnecting"),
                        async_nats::Event::Connected => info!("NATS connected"),
                        other => info!(event = %other, "NATS event"),
                    }
                }
            });
        if let Some(path) = &nats.credentials_file {
            options =
                options
                    .credentials_file(path)
                    .await
                    .map_err(|source| BusError::Credentials {
                        path: path.display().to_string(),
                        source,
                    })?;
        }
        if let Some(path) = &nats.token_file {
            let token = std::fs::read_to_string(path).map_err(|source| BusError::Credentials {
                path: path.display().to_string(),
                source,
            })?;
            options = options.token(token.trim().to_string());
        }
        let client = options
            .connect(url)
            .await
            .map_err(|source| BusError::Connect {
                url: redact_url(url),
                source,
            })?;
        let jetstream = publishing_context(&client, nats.publish_window);
        let (checkpoints, identities) = ensure_topology(&jetstream, settings).await?;
        Ok(Bus {
            client,
            jetstream,
            checkpoints,
            identities,
            publish_window: nats.publish_window,
            embedded: None,
            closing,
        })
    }

    /// A publisher with its own JetStream context, so its ack window never competes with
    /// other publishers or the KV buckets for one shared in-flight limit (async-nats' limit
    /// is per context: publishers that share one can starve each other into a deadlock).
    /// Interactions the analysis consumer has not finished: not yet delivered, and
    /// delivered but not yet acknowledged.
    pub async fn analysis_backlog(&self) -> Result<(u64, u64), BusError> {
        let mut consumer = analysis_pull_consumer(&self.jetstream).await?;
        let info = consumer
            .info()
            .await
            .map_err(|e| topology("consumer analysis", e))?;
        Ok((info.num_pending, info.num_ack_pending as u64))
    }

    /// What tasks that outlive a borrow of the bus need: contexts, not the server.
    pub fn handle(&self) -> BusHandle {
        BusHandle {
            client: self.client.clone(),
            jetstream: self.jetstream.clone(),
            identities: self.identities.clone(),
            publish_window: self.publish_window,
        }
    }

    pub fn publisher(&self) -> Publisher {
        Publisher::new(
            publishing_context(&self.client, self.publish_window),
            self.publish_window,
        )
    }

    /// Brings existing streams and the analysis consumer to the configured limits. Only the
    /// daemon does this: a one-off command run with another shell's settings must never
    /// shorten a production stream's retention.
    pub async fn reconcile(&self, settings: &Settings) -> Result<(), BusError> {
        for config in stream_configs(settings) {
            let name = config.name.clone();
            let current = self
                .jetstream
                .get_stream(&name)
                .await
                .map_err(|e| topology(&name, e))?
                .cached_info()
                .config
                .clone();
            if differs(&current, &config) {
                info!(stream = %name, max_age = ?config.max_age, max_bytes = config.max_bytes,
                    duplicate_window = ?config.duplicate_window, replicas = config.num_replicas,
                    "updating stream limits to the configured ones");
                self.jetstream
                    .update_stream(config)
                    .await
                    .map_err(|e| topology(&name, e))?;
            }
        }
        let wanted = analysis_consumer(settings);
        let mut consumer = analysis_pull_consumer(&self.jetstream).await?;
        let info = consumer
            .info()
            .await
            .map_err(|e| topology("consumer analysis", e))?;
        if info.config.ack_wait != wanted.ack_wait || info.config.max_deliver != wanted.max_deliver
        {
            info!(ack_wait = ?wanted.ack_wait, max_deliver = wanted.max_deliver, "updating the analysis consumer");
            let stream = self
                .jetstream
                .get_stream(INTERACTIONS_STREAM)
                .await
                .map_err(|e| topology(INTERACTIONS_STREAM, e))?;
            if let Err(e) = stream.create_consumer(wanted).await {
                warn!(error = %e, "the server refused to update consumer analysis; delete it to apply nats.ack_wait_secs and nats.max_deliver");
            }
        }
        Ok(())
    }

    /// The URL of the embedded server, when Rapport started one.
    pub fn embedded_url(&self) -> Option<String> {
        self.embedded.as_ref().map(EmbeddedNats::url)
    }

    /// Flushes the connection and stops the embedded server, if any.
    pub async fn shutdown(self) {
        // Everything that mattered was awaited by its publisher; this only empties the
        // write buffer, and must not hang when the server is already gone.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.client.flush()).await;
        self.closing.store(true, Ordering::Relaxed);
        if let Some(server) = self.embedded {
            server.stop().await;
        }
    }
}

/// Creates whatever is missing of the streams, consumer and buckets; existing ones are left
/// as they are (see [`Bus::reconcile`]). Safe from every process at every start.
async fn ensure_topology(
    js: &jetstream::Context,
    settings: &Settings,
) -> Result<(kv::Store, kv::Store), BusError> {
    for config in stream_configs(settings) {
        ensure_stream(js, config).await?;
    }
    let stream = js
        .get_stream(INTERACTIONS_STREAM)
        .await
        .map_err(|e| topology(INTERACTIONS_STREAM, e))?;
    stream
        .get_or_create_consumer(ANALYSIS_CONSUMER, analysis_consumer(settings))
        .await
        .map_err(|e| topology("consumer analysis", e))?;
    let replicas = settings.nats.replicas;
    let checkpoints = ensure_bucket(
        js,
        CHECKPOINTS_BUCKET,
        "Rapport connector cursors and status",
        1,
        replicas,
        Duration::ZERO,
    )
    .await?;
    let identities = ensure_bucket(
        js,
        IDENTITIES_BUCKET,
        "Rapport identity key -> customer id",
        5,
        replicas,
        Duration::ZERO,
    )
    .await?;
    Ok((checkpoints, identities))
}

/// The three streams as configured.
fn stream_configs(settings: &Settings) -> [stream::Config; 3] {
    let nats = &settings.nats;
    let days = |d: u64| Duration::from_secs(d * 24 * 3600);
    let interactions = stream::Config {
        name: INTERACTIONS_STREAM.into(),
        description: Some("Rapport: every interaction from every connector".into()),
        subjects: vec![subjects::ALL_INTERACTIONS.into()],
        storage: stream::StorageType::File,
        max_age: days(nats.stream_max_age_days),
        max_bytes: if nats.stream_max_bytes > 0 {
            nats.stream_max_bytes
        } else {
            -1
        },
        duplicate_window: Duration::from_secs(nats.duplicate_window_secs),
        num_replicas: nats.replicas,
        ..Default::default()
    };
    let flags = stream::Config {
        name: FLAGS_STREAM.into(),
        description: Some("Rapport: complaint, honesty, churn-risk, escalation flags".into()),
        subjects: vec![subjects::ALL_FLAGS.into()],
        storage: stream::StorageType::File,
        max_age: days(nats.stream_max_age_days),
        max_bytes: -1,
        duplicate_window: Duration::from_secs(nats.duplicate_window_secs),
        num_replicas: nats.replicas,
        ..Default::default()
    };
    let dlq = stream::Config {
        name: DLQ_STREAM.into(),
        description: Some("Rapport: inputs that failed, with reason and stage headers".into()),
        subjects: vec![subjects::ALL_DEAD_LETTERS.into()],
        storage: stream::StorageType::File,
        max_age: days(nats.dlq_max_age_days),
        max_bytes: -1,
        duplicate_window: Duration::from_secs(nats.duplicate_window_secs),
        num_replicas: nats.replicas,
        ..Default::default()
    };
    [interactions, flags, dlq]
}

fn analysis_consumer(settings: &Settings) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(ANALYSIS_CONSUMER.into()),
        description: Some("Rapport analysis workers (shared by every worker process)".into()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(settings.nats.ack_wait_secs),
        max_deliver: settings.nats.max_deliver,
        ..Default::default()
    }
}

/// The limits Rapport manages; anything else an operator set on the stream is left alone.
fn differs(current: &stream::Config, wanted: &stream::Config) -> bool {
    current.max_age != wanted.max_age
        || current.max_bytes != wanted.max_bytes
        || current.duplicate_window != wanted.duplicate_window
        || current.num_replicas != wanted.num_replicas
}

/// A JetStream context whose in-flight ack limit fits one publisher's window.
fn publishing_context(client: &async_nats::Client, window: usize) -> jetstream::Context {
    jetstream::context::ContextBuilder::new()
        .max_ack_inflight(window.max(1) + 64)
        .backpressure_on_inflight(true)
        .build(client.clone())
}

/// A KV bucket is a stream named `KV_<bucket>` with KV semantics. It is declared here rather
/// than with `create_key_value`, whose account-info query fails against nats-server 2.9
/// (the machine's): the stream settings are the ones async-nats itself uses.
async fn ensure_bucket(
    js: &jetstream::Context,
    bucket: &str,
    description: &str,
    history: i64,
    replicas: usize,
    max_age: Duration,
) -> Result<kv::Store, BusError> {
    ensure_stream(
        js,
        stream::Config {
            name: format!("KV_{bucket}"),
            description: Some(description.into()),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: history,
            max_bytes: -1,
            max_message_size: -1,
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            num_replicas: replicas.max(1),
            discard: stream::DiscardPolicy::New,
            max_age,
            ..Default::default()
        },
    )
    .await?;
    js.get_key_value(bucket)
        .await
        .map_err(|e| topology(bucket, e))
}

async fn ensure_stream(js: &jetstream::Context, config: stream::Config) -> Result<(), BusError> {
    let name = config.name.clone();
    match js.get_stream(&name).await {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(_)
            ) =>
        {
            // "stream not found" is a JetStream error; transport errors are not.
            js.create_stream(config)
                .await
                .map(|_| ())
                .map_err(|e| topology(&name, e))
        }
        Err(e) => Err(topology(&name, e)),
    }
}

/// A server URL fit for logs: `nats://user:secret@host` loses its credentials.
pub fn redact_url(urls: &str) -> String {
    urls.split(',')
        .map(|url| match url::Url::parse(url.trim()) {
            Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
                let _ = parsed.set_username("***");
                let _ = parsed.set_password(None);
                parsed.to_string()
            }
            _ => url.trim().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// What the alerter reads and keeps: the flags (from where it first started) and its queue.
pub struct AlertTopology {
    pub flags: consumer::PullConsumer,
    /// Alerts not yet mailed, by `<rule>.<flag hash>`: they survive restarts and outages.
    pub outbox: kv::Store,
    /// Alerts mailed, by the same key, for as long as a flag can be redelivered.
    pub sent: kv::Store,
}

/// Creates (or finds) the alerter's consumer and buckets. Only a process that alerts needs
/// them, so they are not part of every start.
pub async fn alert_topology(
    jetstream: &jetstream::Context,
    settings: &Settings,
) -> Result<AlertTopology, BusError> {
    let replicas = settings.nats.replicas;
    let outbox = ensure_bucket(
        jetstream,
        ALERT_OUTBOX_BUCKET,
        "Rapport alerts waiting to be mailed",
        1,
        replicas,
        Duration::ZERO,
    )
    .await?;
    // A flag lives as long as RAPPORT_FLAGS keeps it; its "sent" mark need not outlive it.
    let sent = ensure_bucket(
        jetstream,
        ALERTS_SENT_BUCKET,
        "Rapport alerts mailed (never twice)",
        1,
        replicas,
        Duration::from_secs(settings.nats.stream_max_age_days.max(1) * 24 * 3600),
    )
    .await?;
    let flags = jetstream
        .get_stream(FLAGS_STREAM)
        .await
        .map_err(|e| topology(FLAGS_STREAM, e))?
        .get_or_create_consumer(
            ALERTER_CONSUMER,
            consumer::pull::Config {
                durable_name: Some(ALERTER_CONSUMER.into()),
                description: Some("Rapport alerter: flags to mail".into()),
                // From the alerter's first start on: enabling alerts on a store with a
                // history must not mail every flag ever raised.
                deliver_policy: consumer::DeliverPolicy::New,
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| topology("consumer alerter", e))?;
    Ok(AlertTopology {
        flags,
        outbox,
        sent,
    })
}

/// The durable `analysis` consumer (it exists once the bus is up).
pub async fn analysis_pull_consumer(
    jetstream: &jetstream::Context,
) -> Result<consumer::PullConsumer, BusError> {
    jetstream
        .get_stream(INTERACTIONS_STREAM)
        .await
        .map_err(|e| topology(INTERACTIONS_STREAM, e))?
        .get_consumer(ANALYSIS_CONSUMER)
        .await
        .map_err(|e| topology("consumer analysis", e))
}

pub(crate) fn topology(what: &str, e: impl std::fmt::Display) -> BusError {
    BusError::Topology {
        what: what.to_string(),
        message: e.to_string(),
    }
}

/// What a flush confirmed: new messages stored vs. duplicates JetStream dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub stored: u64,
    pub duplicates: u64,
}

type AckFuture = BoxFuture<'static, Result<jetstream::publish::PublishAck, String>>;

/// Publishes interactions with `Nats-Msg-Id` = id, keeping at most `window` acks in flight:
/// fast (no per-message round trip) and bounded (no unbounded memory, no client stall).
/// Callers [`Publisher::flush`] before they checkpoint, so a checkpoint never runs ahead
/// of what JetStream has stored.
pub struct Publisher {
    jetstream: jetstream::Context,
    window: usize,
    in_flight: FuturesUnordered<AckFuture>,
    confirmed: Published,
}

impl Publisher {
    pub fn new(jetstream: jetstream::Context, window: usize) -> Self {
        Publisher {
            jetstream,
            window: window.max(1),
            in_flight: FuturesUnordered::new(),
            confirmed: Published::default(),
        }
    }

    pub async fn publish(&mut self, interaction: &Interaction) -> Result<(), BusError> {
        let payload = serde_json::to_vec(interaction).expect("Interaction serializes");
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", interaction.id.as_str());
        self.publish_raw(subjects::interaction(interaction), headers, payload.into())
            .await
    }

    /// Publishes any message on the bus with the same bounded window.
    pub async fn publish_raw(
        &mut self,
        subject: String,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<(), BusError> {
        while self.in_flight.len() >= self.window {
            self.settle_one().await?;
        }
        let ack = self
            .jetstream
            .publish_with_headers(subject.clone(), headers, payload)
            .await
            .map_err(|e| BusError::Publish {
                subject: subject.clone(),
                message: e.to_string(),
            })?;
        self.in_flight.push(Box::pin(async move {
            ack.await
                .map_err(|e| format!("publish to {subject} not acknowledged: {e}"))
        }));
        Ok(())
    }

    async fn settle_one(&mut self) -> Result<(), BusError> {
        if let Some(result) = self.in_flight.next().await {
            let ack = result.map_err(BusError::Unacknowledged)?;
            if ack.duplicate {
                self.confirmed.duplicates += 1;
            } else {
                self.confirmed.stored += 1;
            }
        }
        Ok(())
    }

    /// Waits for every outstanding ack; returns what was confirmed since the last flush.
    pub async fn flush(&mut self) -> Result<Published, BusError> {
        while !self.in_flight.is_empty() {
            self.settle_one().await?;
        }
        Ok(std::mem::take(&mut self.confirmed))
    }
}
