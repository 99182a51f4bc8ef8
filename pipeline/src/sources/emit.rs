//! From parsed units to the sink: interactions that pass the record contract, dead letters
//! for the rest, and parser panics caught as rejects.

use bytes::Bytes;
use rapport_connectors::{ParseError, Unit};

use super::context::SourceContext;
use super::sink::Sink;
use crate::bus::BusError;
use crate::dlq::DeadLetter;

/// Hands one parsed unit to the sink: its interactions, or a dead letter with the unit's raw
/// bytes. `input` is what the unit's offsets are relative to, starting at byte
/// `input_offset` of the source. Returns the number of interactions handed over, or the
/// reason the unit was rejected: by its parser, by the record contract
/// ([`Interaction::check`]), or for holding nothing, so that no input vanishes untraced.
pub async fn emit_unit(
    sink: &mut Sink,
    cx: &SourceContext,
    source: &str,
    unit: Unit,
    input: &Bytes,
    input_offset: u64,
) -> Result<Result<u64, String>, BusError> {
    let counters = &cx.counters;
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
                ingest_dead_letter(&cx.name, source, Some(offset), error.reason.clone(), raw);
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
