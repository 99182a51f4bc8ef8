//! What the models read in one message: each head's verdict and each prototype label's
//! score. The models produce them; every rule of the domain reads them.

use std::collections::BTreeMap;

/// A head's verdict: the most probable class and every class's probability.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HeadVerdict {
    pub label: String,
    pub probability: f32,
    pub probabilities: BTreeMap<String, f32>,
}

/// One message's signals.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MessageSignals {
    /// Per head, by signal name.
    pub heads: BTreeMap<String, HeadVerdict>,
    /// Per prototype label that applies to the speaker, by label name.
    pub prototypes: BTreeMap<String, PrototypeScore>,
}

/// One label's verdict on one message.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PrototypeScore {
    pub score: f32,
    /// `score ≥ threshold`; false for an uncalibrated label.
    pub flagged: bool,
    /// `score − threshold`: how far over (or under) the calibrated cut, for consumers that
    /// weigh near misses (customer profiles); `None` for an uncalibrated label.
    #[serde(default)]
    pub above_threshold: Option<f32>,
}
