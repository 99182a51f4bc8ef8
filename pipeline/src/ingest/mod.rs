//! The connector runtime: reads sources, turns them into interactions with
//! `rapport-connectors`, and hands them to a [`Sink`]: the bus, or stdout for `--dry-run`.
//!
//! One module per way of reading (files and Maildir, IMAP, the chat webhook, Mastodon);
//! the formats themselves live in `rapport-connectors`.

pub mod files;
pub mod imap;
pub mod mastodon;
pub mod status;
pub mod webhook;

use std::io::Write;

use bytes::Bytes;
use rapport_connectors::{Interaction, ParseError, Unit};

use crate::bus::{Bus, BusError, Published, Publisher};
use crate::checkpoint::Checkpoints;
use crate::dlq::DeadLetter;
pub use status::{ConnectorStatus, Counters};

/// Where interactions and dead letters go.
#[expect(
    clippy::large_enum_variant,
    reason = "one Sink per connector, never stored in bulk: boxing buys nothing"
)]
pub enum Sink {
    /// Publish to JetStream (interactions) and `rapport.dlq.ingest` (rejects).
    Bus {
        interactions: Publisher,
        dead_letters: Publisher,
        max_raw: usize,
    },
    /// `--dry-run`: print interactions as JSON lines (or count them); rejects to stderr.
    Print { json: bool, printed: u64 },
}

impl Sink {
    pub fn bus(bus: &Bus, max_raw: usize) -> Sink {
        Sink::Bus {
            interactions: bus.publisher(),
            dead_letters: bus.publisher(),
            max_raw,
        }
    }

    pub async fn interaction(&mut self, interaction: &Interaction) -> Result<(), BusError> {
        match self {
            Sink::Bus { interactions, .. } => interactions.publish(interaction).await,
            Sink::Print { json, printed } => {
                *printed += 1;
                if *json {
                    let mut out = std::io::stdout().lock();
                    serde_json::to_writer(&mut out, interaction)
                        .map_err(std::io::Error::from)
                        .and_then(|()| out.write_all(b"\n"))
                        .map_err(|e| BusError::Publish {
                            subject: "stdout".into(),
                            message: e.to_string(),
                        })?;
                }
                Ok(())
            }
        }
    }

    pub async fn dead_letter(&mut self, letter: &DeadLetter) -> Result<(), BusError> {
        match self {
            Sink::Bus {
                dead_letters,
                max_raw,
                ..
            } => {
                let (subject, headers, payload) = letter.to_message(*max_raw);
                dead_letters.publish_raw(subject, headers, payload).await
            }
            Sink::Print { .. } => {
                let at = letter
                    .offset
                    .map(|o| format!(" at byte {o}"))
                    .unwrap_or_default();
                eprintln!("rejected: {}{at}: {}", letter.source, letter.reason);
                Ok(())
            }
        }
    }

    /// Waits until everything handed over so far is durably stored; only then may a
    /// connector move its checkpoint.
    pub async fn commit(&mut self) -> Result<Published, BusError> {
        match self {
            Sink::Bus {
                interactions,
                dead_letters,
                ..
            } => {
                dead_letters.flush().await?;
                interactions.flush().await
            }
            Sink::Print { printed, .. } => Ok(Published {
                stored: std::mem::take(printed),
                duplicates: 0,
            }),
        }
    }
}

/// What a connector needs to read resumably: its checkpoints (none in dry-run) and counters.
#[derive(Clone)]
pub struct ConnectorState {
    pub name: String,
    pub checkpoints: Option<Checkpoints>,
    pub counters: std::sync::Arc<Counters>,
}

/// Hands one parsed unit to the sink: its interactions, or a dead letter with the unit's raw
/// bytes. `input` is what the unit's offsets are relative to, starting at byte
/// `input_offset` of the source. Returns the number of interactions handed over, or the
/// reason the unit was rejected: by its parser, by the record contract
/// ([`Interaction::check`]), or for holding nothing, so that no input vanishes untraced.
pub async fn emit_unit(
    sink: &mut Sink,
    state: &ConnectorState,
    source: &str,
    unit: Unit,
    input: &Bytes,
    input_offset: u64,
) -> Result<Result<u64, String>, BusError> {
    let counters = &state.counters;
    counters.add(&counters.read, 1);
    let outcome = unit.outcome.and_then(|interactions| {
        if interactions.is_empty() {
            return Err(ParseError::new(
                "parsed, but holds no message, turn or post to keep",
            ));
        }
        for interaction in &interactions {
            interaction.check().map_err(ParseError::new)?;
        }
        Ok(interactions)
    });
    match outcome {
        Ok(interactions) => {
            for interaction in &interactions {
                sink.interaction(interaction).await?;
                counters.saw_item(interaction.occurred_at);
            }
            Ok(Ok(interactions.len() as u64))
        }
        Err(error) => {
            let offset = input_offset + unit.start;
            let clamp = |o: u64| (o as usize).min(input.len());
            let raw = input.slice(clamp(unit.start)..clamp(unit.end));
            counters.add(&counters.failed, 1);
            counters.record_error(format!("{source} at byte {offset}: {}", error.reason));
            let letter =
                ingest_dead_letter(&state.name, source, Some(offset), error.reason.clone(), raw);
            sink.dead_letter(&letter).await?;
            Ok(Err(error.reason))
        }
    }
}

/// Runs a parser, turning a panic (a bug in a parser) into one rejected unit covering the
/// input: a poison input is dead-lettered once instead of killing its connector on every
/// retry.
pub fn parse_guarded(input_len: usize, parse: impl FnOnce() -> Vec<Unit>) -> Vec<Unit> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(parse)) {
        Ok(units) => units,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            vec![Unit {
                start: 0,
                end: input_len as u64,
                outcome: Err(ParseError::new(format!(
                    "the parser failed on this input (a bug in Rapport; please report it): {message}"
                ))),
            }]
        }
    }
}

/// Builds a dead letter for the ingest stage.
pub fn ingest_dead_letter(
    connector: &str,
    source: &str,
    offset: Option<u64>,
    reason: impl Into<String>,
    raw: Bytes,
) -> DeadLetter {
    DeadLetter {
        stage: "ingest".into(),
        reason: reason.into(),
        connector: connector.to_string(),
        source: source.to_string(),
        offset,
        original_subject: None,
        raw,
    }
}
