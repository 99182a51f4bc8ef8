//! `/metrics` in the Prometheus text format (version 0.0.4): per-connector and per-stage
//! counters, tokens per batch and stage latencies as histograms, the analysis backlog and
//! the dead-letter depth, and per alert rule the alerts queued, mailed and failed.
//! Hand-written: a few atomics need no metrics framework.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use async_nats::jetstream;

use crate::alerts::{AlertStats, RuleStats};
use crate::bus::{ANALYSIS_CONSUMER, DLQ_STREAM, INTERACTIONS_STREAM};
use crate::sources::Counters;
use crate::worker::WorkerCounters;

/// A counter per connector: metric name, help text, and how to read it.
type CounterSeries = (&'static str, &'static str, fn(&Counters) -> u64);

/// What `/metrics` reads: the live counters of this process and the bus.
pub struct Metrics {
    pub worker: Arc<WorkerCounters>,
    /// The running connectors' counters, replaced on a reload.
    pub connectors: Mutex<HashMap<String, (String, Arc<Counters>)>>,
    /// The alert rules' counters (none where this process does not alert).
    pub alerts: Arc<AlertStats>,
    jetstream: jetstream::Context,
}

/// A counter or gauge per alert rule: metric name, type, help text, and how to read it.
type AlertSeries = (
    &'static str,
    &'static str,
    &'static str,
    fn(&RuleStats) -> u64,
);

impl Metrics {
    pub fn new(
        worker: Arc<WorkerCounters>,
        alerts: Arc<AlertStats>,
        jetstream: jetstream::Context,
    ) -> Metrics {
        Metrics {
            worker,
            connectors: Mutex::new(HashMap::new()),
            alerts,
            jetstream,
        }
    }

    /// Replaces the connectors' counters (name → (kind, counters)).
    pub fn set_connectors(&self, connectors: HashMap<String, (String, Arc<Counters>)>) {
        *self.connectors.lock().expect("metrics lock") = connectors;
    }

    pub async fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        self.render_connectors(&mut out);
        self.render_worker(&mut out);
        self.render_alerts(&mut out);
        self.render_bus(&mut out).await;
        out
    }

    fn render_alerts(&self, out: &mut String) {
        let rules = self.alerts.snapshot();
        let series: [AlertSeries; 5] = [
            (
                "rapport_alerts_queued_total",
                "counter",
                "Flags an alert rule matched and queued.",
                |s| s.queued,
            ),
            (
                "rapport_alerts_sent_total",
                "counter",
                "Alerts mailed (a digest mails several).",
                |s| s.alerts_sent,
            ),
            (
                "rapport_alert_mails_total",
                "counter",
                "Mails the mail server accepted.",
                |s| s.mails_sent,
            ),
            (
                "rapport_alert_send_failures_total",
                "counter",
                "Sends that failed (the alerts stay queued and are retried).",
                |s| s.send_failures,
            ),
            (
                "rapport_alerts_pending",
                "gauge",
                "Alerts queued and not yet mailed.",
                |s| s.pending,
            ),
        ];
        for (name, kind, help, value) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (rule, stats) in &rules {
                let _ = writeln!(out, "{name}{{rule=\"{}\"}} {}", escape(rule), value(stats));
            }
        }
    }

    fn render_connectors(&self, out: &mut String) {
        let connectors = self.connectors.lock().expect("metrics lock").clone();
        let mut names: Vec<&String> = connectors.keys().collect();
        names.sort();
        let series: [CounterSeries; 5] = [
            (
                "rapport_connector_read_total",
                "Units of input read (messages, lines, rows, files).",
                |c| c.read.load(Ordering::Relaxed),
            ),
            (
                "rapport_connector_published_total",
                "Interactions JetStream stored.",
                |c| c.published.load(Ordering::Relaxed),
            ),
            (
                "rapport_connector_duplicates_total",
                "Interactions JetStream dropped as already stored.",
                |c| c.duplicates.load(Ordering::Relaxed),
            ),
            (
                "rapport_connector_failed_total",
                "Units sent to the dead-letter queue.",
                |c| c.failed.load(Ordering::Relaxed),
            ),
            (
                "rapport_connector_restarts_total",
                "Times the daemon restarted the connector.",
                |c| c.restarts.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for connector in &names {
                let (kind, counters) = &connectors[*connector];
                let _ = writeln!(
                    out,
                    "{name}{{connector=\"{}\",kind=\"{kind}\"}} {}",
                    escape(connector),
                    value(counters)
                );
            }
        }
        let name = "rapport_connector_up";
        let _ = writeln!(
            out,
            "# HELP {name} 1 while the connector's task runs.\n# TYPE {name} gauge"
        );
        for connector in &names {
            let (kind, counters) = &connectors[*connector];
            let up = u8::from(counters.running.load(Ordering::Relaxed));
            let _ = writeln!(
                out,
                "{name}{{connector=\"{}\",kind=\"{kind}\"}} {up}",
                escape(connector)
            );
        }
    }

    fn render_worker(&self, out: &mut String) {
        let w = &self.worker;
        let name = "rapport_stage_interactions_total";
        let _ = writeln!(
            out,
            "# HELP {name} Interactions per analysis stage outcome.\n# TYPE {name} counter"
        );
        for (outcome, value) in [
            ("stored", &w.stored),
            ("retried", &w.retried),
            ("dead_lettered", &w.dead_lettered),
        ] {
            let _ = writeln!(
                out,
                "{name}{{stage=\"analysis\",outcome=\"{outcome}\"}} {}",
                value.load(Ordering::Relaxed)
            );
        }
        for (name, help, value) in [
            (
                "rapport_batches_total",
                "Batches pulled by the analysis worker.",
                &w.batches,
            ),
            (
                "rapport_flags_raised_total",
                "Flags raised (each once per cause).",
                &w.flags_raised,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let name = "rapport_batch_tokens";
        let _ = writeln!(
            out,
            "# HELP {name} Tokens the encoder ran per analysed batch.\n# TYPE {name} histogram"
        );
        w.batch_tokens.render(out, name, "");
        let name = "rapport_stage_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Wall time per batch and stage: analyse (models), store (upsert, profiles, flags).\n# TYPE {name} histogram"
        );
        w.analyse_seconds.render(out, name, "stage=\"analyse\"");
        w.store_seconds.render(out, name, "stage=\"store\"");
        let name = "rapport_ingest_to_stored_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} From JetStream's receipt of an interaction to its ack after storing.\n# TYPE {name} histogram"
        );
        w.ingest_to_stored_seconds.render(out, name, "");
    }

    async fn render_bus(&self, out: &mut String) {
        let pending = match self.jetstream.get_stream(INTERACTIONS_STREAM).await {
            Ok(stream) => match stream
                .get_consumer::<jetstream::consumer::pull::Config>(ANALYSIS_CONSUMER)
                .await
            {
                Ok(mut consumer) => consumer.info().await.ok().map(|i| i.num_pending),
                Err(_) => None,
            },
            Err(_) => None,
        };
        let dlq = match self.jetstream.get_stream(DLQ_STREAM).await {
            Ok(mut stream) => stream.info().await.ok().map(|i| i.state.messages),
            Err(_) => None,
        };
        for (name, help, value) in [
            (
                "rapport_analysis_backlog",
                "Interactions in the stream not yet delivered to the analysis workers.",
                pending,
            ),
            (
                "rapport_dlq_messages",
                "Messages in the dead-letter stream, all stages.",
                dlq,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            if let Some(value) = value {
                let _ = writeln!(out, "{name} {value}");
            }
        }
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
