//! Rapport's record: the [`Interaction`] every stage passes on (the connectors' output
//! contract, DESIGN.md §3), its stable [`ids`], and the [`signals`] the models read in it.
//!
//! The bottom of the dependency map: the parsers (`rapport-connectors`) produce it, the
//! domain core reads it, configuration names its `Role`; it depends on nothing of
//! Rapport's, so a change to a parser never recompiles the domain or the models.

pub mod ids;
pub mod interaction;
pub mod signals;

pub use interaction::{Author, Channel, Interaction, Role};
