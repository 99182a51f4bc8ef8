//! Rapport's pipeline: the bus (JetStream topology, bounded publisher, embedded nats-server),
//! checkpoints, dead letters and the connector runtime that feeds the bus.

pub mod bus;
pub mod checkpoint;
pub mod daemon;
pub mod dlq;
pub mod ingest;
pub mod nats_server;
pub mod redact;

pub use bus::{Bus, BusError, Published, Publisher};
pub use checkpoint::Checkpoints;
pub use dlq::DeadLetter;
