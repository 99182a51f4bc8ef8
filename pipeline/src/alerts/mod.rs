//! The alerter (DESIGN.md §7): flags from `RAPPORT_FLAGS` are matched against the alert
//! rules and mailed over SMTP, one mail each or as a digest, at most so many an hour.
//!
//! Nothing is lost and nothing is mailed twice:
//! - a flag is acknowledged only once every rule it matches has queued it in the
//!   `rapport-alert-outbox` bucket, so a crash redelivers it;
//! - a queued alert leaves the outbox only after the mail server accepted it, and is then
//!   marked in `rapport-alerts-sent`; a redelivered or re-raised flag that is marked there
//!   is not queued again;
//! - while the mail server fails, alerts stay queued (across restarts too) and sending is
//!   retried with back-off.
//!
//! One gap is SMTP's own: the process dying after the server said 250 but before the mark
//! was written. That mail is sent again after the restart, with the same `Message-ID`, so
//! mail clients and archives can fold the two.

mod mail;
mod schedule;
mod transport;

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use lettre::message::Mailbox;
use rapport_config::Settings;
use rapport_config::settings::{AlertMode, AlertRuleSettings};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::bus::{self, AlertTopology};
use crate::flags::{Flag, FlagKind, Severity};
use crate::lifecycle::{Backoff, Shutdown};
pub use mail::Language;
pub use schedule::{Cadence, Delivery};
pub use transport::Mailer;

/// How long stopping waits for a mail being sent. Cut off, that mail stays queued and goes
/// out after the restart (a second copy, same `Message-ID`, if the server had taken it).
const STOP_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("alerts.{rule}: {message}")]
    Rule { rule: String, message: String },
    #[error("smtp: {0}")]
    Smtp(String),
    #[error(transparent)]
    Bus(#[from] crate::bus::BusError),
}

/// One `[alerts.<name>]` rule, checked.
#[derive(Debug, Clone)]
pub struct AlertRule {
    pub name: String,
    /// Empty: every kind.
    pub kinds: BTreeSet<FlagKind>,
    pub min_severity: Severity,
    pub recipients: Vec<Mailbox>,
    pub cadence: Cadence,
    pub include_excerpt: bool,
    pub language: Language,
}

impl AlertRule {
    pub fn from_settings(name: &str, rule: &AlertRuleSettings) -> Result<AlertRule, AlertError> {
        let bad = |message: String| AlertError::Rule {
            rule: name.to_string(),
            message,
        };
        let kinds = rule
            .kinds
            .iter()
            .map(|k| FlagKind::parse(k).ok_or_else(|| bad(format!("{k:?} is not a flag kind"))))
            .collect::<Result<_, _>>()?;
        let min_severity = Severity::parse(&rule.min_severity)
            .ok_or_else(|| bad(format!("{:?} is not a severity", rule.min_severity)))?;
        let recipients = rule
            .recipients
            .iter()
            .map(|r| Mailbox::from_str(r).map_err(|e| bad(format!("recipient {r:?}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if recipients.is_empty() {
            return Err(bad("no recipients".into()));
        }
        let cadence = match rule.mode {
            AlertMode::Immediate => Cadence::Immediate {
                max_per_hour: rule.max_per_hour,
            },
            AlertMode::Digest => Cadence::Digest {
                every: Duration::from_secs(rule.digest_minutes.max(1) * 60),
                max_per_hour: rule.max_per_hour,
            },
        };
        let language = Language::parse(&rule.language)
            .ok_or_else(|| bad(format!("{:?} is not a language", rule.language)))?;
        Ok(AlertRule {
            name: name.to_string(),
            kinds,
            min_severity,
            recipients,
            cadence,
            include_excerpt: rule.include_excerpt,
            language,
        })
    }

    pub fn matches(&self, flag: &Flag) -> bool {
        (self.kinds.is_empty() || self.kinds.iter().any(|&kind| flag.is(kind)))
            && flag.severity >= self.min_severity
    }
}

/// The rules of `settings`, checked.
pub fn rules(settings: &Settings) -> Result<Vec<AlertRule>, AlertError> {
    settings
        .alerts
        .iter()
        .map(|(name, rule)| AlertRule::from_settings(name, rule))
        .collect()
}

/// Mails a sample alert for rule `name` now, through the configured mail server (for
/// `rapport alerts test`): proves the server, login, TLS and recipients before a real flag
/// needs them. Returns the recipients.
pub async fn send_test(settings: &Settings, name: &str) -> Result<Vec<String>, AlertError> {
    let rule_settings = settings.alerts.get(name).ok_or_else(|| AlertError::Rule {
        rule: name.to_string(),
        message: format!(
            "no such rule (configured: {})",
            settings
                .alerts
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })?;
    let rule = AlertRule::from_settings(name, rule_settings)?;
    let mailer = Mailer::new(&settings.smtp, &settings.dashboard_url())?;
    let now = OffsetDateTime::now_utc();
    let flag = Flag {
        // Unique, so the test mail has a Message-ID of its own each time.
        id: format!("test:{}", now.unix_timestamp_nanos()),
        kind: rule
            .kinds
            .iter()
            .next()
            .copied()
            .unwrap_or(FlagKind::Complaint),
        reason: String::new(),
        severity: Severity::High.max(rule.min_severity),
        customer_id: Some("cust-test".into()),
        conversation_id: None,
        channel: Some("email".into()),
        evidence: Vec::new(),
        excerpt: "This is a test alert from `rapport alerts test`: no customer wrote this.".into(),
        public: false,
        raised_at: now,
        status: crate::flags::FlagStatus::Open,
        status_by: None,
        status_at: None,
    };
    let alert = QueuedAlert {
        rule: name.to_string(),
        flag,
        queued_at: now,
    };
    mailer.send(&rule, &[&alert]).await.map_err(|e| {
        AlertError::Smtp(format!(
            "{}: {e}",
            settings.smtp.host.as_deref().unwrap_or("")
        ))
    })?;
    Ok(rule.recipients.iter().map(|r| r.to_string()).collect())
}

/// What each rule did, for `/metrics` and `/api/alerts`; kept across reloads, so the hourly
/// cap counts the mails sent before one too.
#[derive(Default)]
pub struct AlertStats {
    rules: Mutex<BTreeMap<String, RuleStats>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RuleStats {
    /// Alerts this rule queued (a flag it matched).
    pub queued: u64,
    /// Alerts mailed (a digest mails several).
    pub alerts_sent: u64,
    pub mails_sent: u64,
    pub send_failures: u64,
    /// Alerts waiting in the outbox.
    pub pending: u64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_sent_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    /// Failures in a row and the next try (`failures`, `retry_at` in JSON).
    #[serde(flatten)]
    pub delivery: Delivery,
}

impl AlertStats {
    /// A snapshot, by rule name.
    pub fn snapshot(&self) -> BTreeMap<String, RuleStats> {
        self.rules.lock().expect("alert stats lock").clone()
    }

    fn with<R>(&self, rule: &str, f: impl FnOnce(&mut RuleStats) -> R) -> R {
        let mut rules = self.rules.lock().expect("alert stats lock");
        f(rules.entry(rule.to_string()).or_default())
    }
}

/// An alert waiting in the outbox: the flag as raised, for one rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct QueuedAlert {
    rule: String,
    flag: Flag,
    #[serde(with = "time::serde::rfc3339")]
    queued_at: OffsetDateTime,
}

/// The outbox key of `flag_id` for `rule`: KV keys admit few characters, flag ids hold `:`.
fn alert_key(rule: &str, flag_id: &str) -> String {
    format!(
        "{rule}.{}",
        &hex::encode(Sha256::digest(flag_id.as_bytes()))[..32]
    )
}

/// The earlier of two optional times.
fn earliest(a: Option<OffsetDateTime>, b: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The running alerter task.
pub struct Alerter {
    stop_tx: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Alerter {
    /// Starts alerting by `settings`' rules; `None` when there are none. The flags consumer
    /// is created before this returns, so flags raised from then on are all seen. Fails on
    /// what the config check cannot see (a CA file that is not PEM, say) and when NATS
    /// refuses the consumer or buckets.
    pub async fn start(
        settings: &Settings,
        jetstream: &jetstream::Context,
        stats: Arc<AlertStats>,
    ) -> Result<Option<Alerter>, AlertError> {
        if settings.alerts.is_empty() {
            return Ok(None);
        }
        let rules = rules(settings)?;
        let mailer = Mailer::new(&settings.smtp, &settings.dashboard_url())?;
        let topology = bus::alert_topology(jetstream, settings).await?;
        for rule in &rules {
            stats.with(&rule.name, |_| ());
        }
        let (stop_tx, stop) = watch::channel(false);
        let settings = settings.clone();
        let task = tokio::spawn(async move {
            let mut queue = Queue::new(topology, &rules, stats);
            queue.run(&rules, &mailer, &settings, stop).await;
        });
        Ok(Some(Alerter { stop_tx, task }))
    }

    /// Lets a mail being sent finish, at most [`STOP_LIMIT`]; whatever is queued stays
    /// queued for the next start.
    pub async fn stop(self) {
        let _ = self.stop_tx.send(true);
        let abort = self.task.abort_handle();
        if tokio::time::timeout(STOP_LIMIT, self.task).await.is_err() {
            warn!("stopping the alerter without waiting for the mail server");
            abort.abort();
        }
    }
}

/// The alerts queued per rule (the outbox in memory), and how they are mailed.
struct Queue {
    topology: AlertTopology,
    stats: Arc<AlertStats>,
    /// By rule, oldest first; loaded from the outbox at start.
    pending: BTreeMap<String, Vec<(String, QueuedAlert)>>,
    /// Keys mailed whose "sent" mark or outbox removal has not been written yet.
    unrecorded: Vec<(String, OffsetDateTime)>,
    loaded: bool,
    configured: BTreeSet<String>,
}

impl Queue {
    fn new(topology: AlertTopology, rules: &[AlertRule], stats: Arc<AlertStats>) -> Queue {
        Queue {
            topology,
            stats,
            pending: BTreeMap::new(),
            unrecorded: Vec::new(),
            loaded: false,
            configured: rules.iter().map(|r| r.name.clone()).collect(),
        }
    }

    async fn run(
        &mut self,
        rules: &[AlertRule],
        mailer: &Mailer,
        settings: &Settings,
        stop: watch::Receiver<bool>,
    ) {
        let mut shutdown = Shutdown::new(stop);
        let mut messages = None;
        let mut pause = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        info!(rules = rules.len(), "alerter started");
        while !shutdown.requested() {
            if !self.loaded {
                match self.load().await {
                    Ok(()) => self.loaded = true,
                    Err(e) => warn!(error = %e, "reading the alert outbox; retrying"),
                }
            }
            if messages.is_none() {
                match self.topology.flags.messages().await {
                    Ok(stream) => messages = Some(stream),
                    Err(e) => warn!(error = %e, "subscribing to the flags; retrying"),
                }
            }
            self.record_unrecorded().await;
            let now = OffsetDateTime::now_utc();
            let wake = self.deliver(rules, mailer, settings, now).await;
            // Sleep until the next mail is due, a flag arrives, or one second passes (to
            // retry whatever above has not worked yet).
            let mut nap = Duration::from_secs(1);
            if let Some(at) = wake {
                let until = (at - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
                nap = nap.min(until.unsigned_abs());
            }
            let Some(stream) = messages.as_mut().filter(|_| self.loaded) else {
                if shutdown.sleep(pause.next_delay()).await {
                    break;
                }
                continue;
            };
            pause.reset();
            // The select only decides; the work is done after it, where no borrow of the
            // stop signal is held across an await.
            let next = tokio::select! {
                next = stream.next() => Some(next),
                _ = tokio::time::sleep(nap) => None,
                () = shutdown.wait() => break,
            };
            match next {
                Some(Some(Ok(message))) => self.take(rules, message).await,
                // Heartbeats missed while the server restarts: the stream resumes.
                Some(Some(Err(e))) => warn!(error = %e, "pulling flags for alerts"),
                Some(None) => messages = None,
                None => {}
            }
        }
        info!("alerter stopped");
    }

    /// Reads the outbox: alerts queued before a restart are still to be sent.
    async fn load(&mut self) -> Result<(), String> {
        let mut keys = self
            .topology
            .outbox
            .keys()
            .await
            .map_err(|e| e.to_string())?;
        let mut found = BTreeMap::<String, Vec<(String, QueuedAlert)>>::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| e.to_string())?;
            let Some(value) = self
                .topology
                .outbox
                .get(&key)
                .await
                .map_err(|e| e.to_string())?
            else {
                continue;
            };
            if self.is_sent(&key).await? {
                // Mailed, but the process stopped before it left the outbox.
                let _ = self.topology.outbox.purge(&key).await;
                continue;
            }
            match serde_json::from_slice::<QueuedAlert>(&value) {
                Ok(alert) => found
                    .entry(alert.rule.clone())
                    .or_default()
                    .push((key, alert)),
                Err(e) => {
                    warn!(key, error = %e, "an outbox entry that is not an alert is left as it is")
                }
            }
        }
        for (rule, alerts) in &mut found {
            alerts
                .sort_by(|a, b| (a.1.queued_at, &a.1.flag.id).cmp(&(b.1.queued_at, &b.1.flag.id)));
            if !self.configured.contains(rule) {
                warn!(
                    rule,
                    alerts = alerts.len(),
                    "alerts queued for a rule no longer configured stay in the outbox"
                );
            }
            self.stats.with(rule, |s| s.pending = alerts.len() as u64);
        }
        let total: usize = found.values().map(Vec::len).sum();
        if total > 0 {
            info!(
                alerts = total,
                "alerts queued before the restart will be sent"
            );
        }
        self.pending = found;
        Ok(())
    }

    async fn is_sent(&self, key: &str) -> Result<bool, String> {
        self.topology
            .sent
            .get(key)
            .await
            .map(|v| v.is_some())
            .map_err(|e| e.to_string())
    }

    /// Queues `message`'s flag for every rule it matches, then acknowledges it. On a bus
    /// error it is left unacknowledged and comes back.
    async fn take(&mut self, rules: &[AlertRule], message: jetstream::Message) {
        let flag: Flag = match serde_json::from_slice(&message.payload) {
            Ok(flag) => flag,
            Err(e) => {
                // The flag itself stays in RAPPORT_FLAGS and in the store; only its alert
                // cannot be made.
                error!(subject = %message.subject, error = %e, "a flag message that is not a flag: no alert");
                let _ = message.ack().await;
                return;
            }
        };
        for rule in rules.iter().filter(|r| r.matches(&flag)) {
            let key = alert_key(&rule.name, &flag.id);
            // Queued, or mailed and its mark not yet written: either way not again.
            let queued = self.pending.get(&rule.name);
            if queued.is_some_and(|q| q.iter().any(|(k, _)| *k == key))
                || self.unrecorded.iter().any(|(k, _)| *k == key)
            {
                continue;
            }
            match self.is_sent(&key).await {
                Ok(true) => {
                    debug!(flag = %flag.id, rule = %rule.name, "already mailed");
                    continue;
                }
                Ok(false) => {}
                Err(e) => {
                    warn!(error = %e, "checking the alerts sent; the flag comes back");
                    return;
                }
            }
            let alert = QueuedAlert {
                rule: rule.name.clone(),
                flag: flag.clone(),
                queued_at: OffsetDateTime::now_utc(),
            };
            let value = serde_json::to_vec(&alert).expect("an alert serialises");
            if let Err(e) = self.topology.outbox.put(&key, value.into()).await {
                warn!(error = %e, "queueing an alert; the flag comes back");
                return;
            }
            debug!(flag = %flag.id, rule = %rule.name, "alert queued");
            let pending = self.pending.entry(rule.name.clone()).or_default();
            pending.push((key, alert));
            let count = pending.len() as u64;
            self.stats.with(&rule.name, |s| {
                s.queued += 1;
                s.pending = count;
            });
        }
        if let Err(e) = message.ack().await {
            // Redelivered: the outbox and the sent marks keep it from being queued twice.
            warn!(error = %e, "acknowledging a flag");
        }
    }

    /// Sends what is due; returns when something queued is due next.
    async fn deliver(
        &mut self,
        rules: &[AlertRule],
        mailer: &Mailer,
        settings: &Settings,
        now: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        let mut wake: Option<OffsetDateTime> = None;
        for rule in rules {
            let Some(pending) = self.pending.get(&rule.name).filter(|p| !p.is_empty()) else {
                continue;
            };
            let queued: Vec<OffsetDateTime> = pending.iter().map(|(_, a)| a.queued_at).collect();
            let plan = self.stats.with(&rule.name, |s| {
                schedule::plan(rule.cadence, &mut s.delivery, &queued, now)
            });
            wake = earliest(wake, plan.wake_at);
            let mut sent: BTreeSet<usize> = BTreeSet::new();
            for group in &plan.mails {
                let alerts: Vec<&QueuedAlert> = group.iter().map(|&i| &pending[i].1).collect();
                match mailer.send(rule, &alerts).await {
                    Ok(()) => {
                        let at = OffsetDateTime::now_utc();
                        info!(rule = %rule.name, alerts = alerts.len(), "alert mailed");
                        self.stats.with(&rule.name, |s| {
                            s.delivery.sent(at, 1);
                            s.mails_sent += 1;
                            s.alerts_sent += alerts.len() as u64;
                            s.last_sent_at = Some(at);
                            s.last_error = None;
                        });
                        sent.extend(group.iter().copied());
                    }
                    Err(e) => {
                        let smtp = &settings.smtp;
                        let retry_at = self.stats.with(&rule.name, |s| {
                            s.delivery.failed(
                                OffsetDateTime::now_utc(),
                                Duration::from_secs(smtp.retry_initial_secs),
                                Duration::from_secs(smtp.retry_max_secs),
                            );
                            s.send_failures += 1;
                            s.last_error = Some(e.clone());
                            s.delivery.retry_at
                        });
                        warn!(rule = %rule.name, error = %e, retry_at = ?retry_at, alerts = alerts.len(), "alert not mailed; kept and retried");
                        wake = earliest(wake, retry_at);
                        break;
                    }
                }
            }
            if sent.is_empty() {
                continue;
            }
            let pending = self.pending.get_mut(&rule.name).expect("rule has pending");
            let mut index = 0;
            pending.retain(|(key, _)| {
                let keep = !sent.contains(&index);
                if !keep {
                    self.unrecorded.push((key.clone(), now));
                }
                index += 1;
                keep
            });
            let left = pending.len() as u64;
            self.stats.with(&rule.name, |s| s.pending = left);
        }
        self.record_unrecorded().await;
        wake
    }

    /// Marks mailed alerts as sent and takes them out of the outbox; what fails (the bus
    /// is down) is tried again on the next round, and never mailed again meanwhile.
    async fn record_unrecorded(&mut self) {
        let mut left = Vec::new();
        for (key, at) in std::mem::take(&mut self.unrecorded) {
            let mark = serde_json::to_vec(&serde_json::json!({
                "sent_at": at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
            }))
            .expect("json");
            let recorded = async {
                self.topology
                    .sent
                    .put(&key, mark.into())
                    .await
                    .map_err(|e| e.to_string())?;
                self.topology
                    .outbox
                    .purge(&key)
                    .await
                    .map_err(|e| e.to_string())
            };
            if let Err(e) = recorded.await {
                warn!(error = %e, "recording a mailed alert; retrying");
                left.push((key, at));
            }
        }
        self.unrecorded = left;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::FlagStatus;

    #[test]
    fn config_and_pipeline_name_the_same_flag_kinds() {
        let pipeline: Vec<&str> = FlagKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(pipeline, rapport_config::settings::FLAG_KINDS);
        let severities: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(severities, rapport_config::settings::SEVERITIES);
    }

    #[test]
    fn a_rule_matches_its_kinds_from_its_minimum_severity() {
        let settings = AlertRuleSettings {
            kinds: vec!["complaint".into(), "honesty".into()],
            min_severity: "medium".into(),
            recipients: vec!["service@example.dk".into()],
            ..Default::default()
        };
        let rule = AlertRule::from_settings("service", &settings).unwrap();
        let flag = |kind, severity| Flag {
            id: "x".into(),
            kind,
            reason: String::new(),
            severity,
            customer_id: None,
            conversation_id: None,
            channel: None,
            evidence: Vec::new(),
            excerpt: String::new(),
            public: false,
            raised_at: OffsetDateTime::UNIX_EPOCH,
            status: FlagStatus::Open,
            status_by: None,
            status_at: None,
        };
        assert!(rule.matches(&flag(FlagKind::Complaint, Severity::High)));
        assert!(rule.matches(&flag(FlagKind::Honesty, Severity::Medium)));
        assert!(!rule.matches(&flag(FlagKind::Complaint, Severity::Low)));
        assert!(!rule.matches(&flag(FlagKind::ChurnRisk, Severity::High)));
        let every = AlertRule::from_settings(
            "all",
            &AlertRuleSettings {
                recipients: vec!["a@example.dk".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert!(every.matches(&flag(FlagKind::Superuser, Severity::Low)));
    }

    #[test]
    fn alert_keys_are_valid_kv_keys_per_rule() {
        let key = alert_key("service-desk", "honesty:conv:1/allegation");
        assert!(key.starts_with("service-desk."));
        assert!(
            key.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        );
        assert_ne!(key, alert_key("other", "honesty:conv:1/allegation"));
    }
}
