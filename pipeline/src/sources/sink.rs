//! Where a source hands what it read: the bus, or stdout for `--dry-run`.

use std::io::Write;

use crate::bus::{Bus, BusError, Published, Publisher};
use crate::dlq::DeadLetter;
use rapport_connectors::Interaction;

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
