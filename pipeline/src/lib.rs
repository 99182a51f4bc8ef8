//! Rapport's pipeline: the bus (JetStream topology, bounded publisher, embedded nats-server),
//! checkpoints, dead letters, the sources that feed the bus, and the analysis
//! worker that turns interactions into stored vectors, signals and identities.

pub mod alerts;
pub mod api;
pub mod bearer;
pub mod bus;
pub mod checkpoint;
pub mod daemon;
pub mod dlq;
pub mod histogram;
pub mod identities;
pub mod lifecycle;
pub mod nats_server;
pub mod queries;
pub mod sources;
pub mod store;
pub mod subjects;
pub mod worker;

/// The domain core's modules, where the pipeline has always named them.
pub use rapport_domain::{cues, flags, interaction, profile, redaction};

pub use bus::{Bus, BusError, Published, Publisher};
pub use checkpoint::Checkpoints;
pub use dlq::DeadLetter;
