//! The analysed interaction: the record as the worker stores it, with who it belongs to and
//! what the models read in it, and the readings of those signals every rule shares
//! (profiles, flags). No I/O: the store keeps it, queries return it.

use crate::signals::MessageSignals;
use rapport_record::Interaction;
use serde::{Deserialize, Serialize};

/// One analysed interaction as stored: the record (text already redacted), who it belongs
/// to, and what the models read in it. This is also the payload queries get back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysedInteraction {
    #[serde(flatten)]
    pub interaction: Interaction,
    /// The customer this interaction is from or about; `None` for an agent's or bot's
    /// message whose conversation has no known customer yet.
    pub customer_id: Option<String>,
    pub signals: MessageSignals,
}

/// An allegation of being misled is a grievance, so the `allegation` label counts only where
/// the complaint head leans complaint as well (or did not run). On the signals dev set every
/// true allegation has P(complaint) ≥ 0.60; the label's misfires on calm or happy messages
/// in the demo corpus ("Bra, då blir det R3…", "I'm honestly chuffed to bits") sit at
/// 0.34–0.36. The cut costs the dev set no allegation.
pub const ALLEGATION_MIN_COMPLAINT: f32 = 0.5;

impl AnalysedInteraction {
    /// P(positive) − P(negative) of the sentiment head, if it ran.
    pub fn valence(&self) -> Option<f32> {
        let p = &self.signals.heads.get("sentiment")?.probabilities;
        Some(p.get("positive").copied().unwrap_or(0.0) - p.get("negative").copied().unwrap_or(0.0))
    }

    /// P(complaint) of the complaint head, if it ran.
    pub fn complaint_probability(&self) -> Option<f32> {
        self.signals
            .heads
            .get("complaint")?
            .probabilities
            .get("complaint")
            .copied()
    }

    /// Whether the text is the author's own words: not an auto-reply (`attributes.auto_reply`,
    /// an out-of-office or a tracker's notification), and not the stand-in for a message with
    /// no text of its own (`attributes.own_text = false`: only quotes, or only attachments,
    /// recorded by its subject). Only the author's words count towards a profile and its
    /// flags; the rest stays on the timeline.
    pub fn is_authored(&self) -> bool {
        let attributes = &self.interaction.attributes;
        attributes.get("auto_reply").and_then(|v| v.as_bool()) != Some(true)
            && attributes.get("own_text").and_then(|v| v.as_bool()) != Some(false)
    }

    /// Whether the message reads enough like a complaint to carry an allegation
    /// ([`ALLEGATION_MIN_COMPLAINT`]; a message the complaint head did not read may).
    pub fn may_allege(&self) -> bool {
        self.complaint_probability()
            .is_none_or(|p| p >= ALLEGATION_MIN_COMPLAINT)
    }
}
