//! Every per-message signal at once: the trained heads (sentiment, emotion, complaint) and
//! the prototype labels (honesty, expectations), from one embedding per message. What
//! `rapport classify` prints and what the pipeline stores.

use std::collections::BTreeMap;

use crate::heads::{Head, HeadError};
use crate::prototypes::{PrototypeScore, PrototypeScorer};
use crate::{Encoder, ModelError};

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

/// Who wrote a message, for labels that apply to one side only (`hype` is the agent's,
/// `allegation` the customer's); `None` where unknown, and then every label applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    Customer,
    Agent,
}

/// The encoder, heads and prototypes, loaded once.
pub struct Classifier {
    encoder: Encoder,
    heads: Vec<Head>,
    prototypes: PrototypeScorer,
    /// Per prototype label, who it applies to (`None`: anyone).
    label_speakers: Vec<Option<Speaker>>,
    max_batch_tokens: usize,
    /// Tokens run through the encoder by [`Classifier::classify`] since start (metrics).
    tokens_classified: std::sync::atomic::AtomicU64,
}

impl Classifier {
    /// Fails if a head was trained on another encoder's vectors.
    pub fn new(
        encoder: Encoder,
        heads: Vec<Head>,
        prototypes: PrototypeScorer,
        label_speakers: Vec<Option<Speaker>>,
        max_batch_tokens: usize,
    ) -> Result<Classifier, HeadError> {
        for head in &heads {
            head.check_encoder(encoder.spec().name)?;
        }
        Ok(Classifier {
            encoder,
            heads,
            prototypes,
            label_speakers,
            max_batch_tokens,
            tokens_classified: Default::default(),
        })
    }

    /// Tokens [`Classifier::classify`] has run through the encoder since start.
    pub fn tokens_classified(&self) -> u64 {
        self.tokens_classified
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// Signals for each text, with its embedding.
    pub fn classify(
        &self,
        texts: &[&str],
        speakers: &[Option<Speaker>],
    ) -> Result<Vec<(Vec<f32>, MessageSignals)>, ModelError> {
        let embedded = self.encoder.embed(texts, self.max_batch_tokens)?;
        self.tokens_classified
            .fetch_add(embedded.tokens as u64, std::sync::atomic::Ordering::Relaxed);
        let vectors = embedded.vectors;
        let inference = |e: candle_core::Error| ModelError::Inference(e.to_string());
        let head_outputs: Vec<Vec<Vec<f32>>> = self
            .heads
            .iter()
            .map(|h| h.probabilities(&vectors))
            .collect::<Result<_, _>>()
            .map_err(inference)?;
        let prototype_scores = self.prototypes.score(&vectors).map_err(inference)?;
        let names: Vec<&str> = self.prototypes.label_names().collect();
        Ok(vectors
            .into_iter()
            .enumerate()
            .map(|(at, vector)| {
                let heads = self
                    .heads
                    .iter()
                    .zip(&head_outputs)
                    .map(|(head, outputs)| {
                        let p = &outputs[at];
                        let best = (0..p.len())
                            .max_by(|&a, &b| p[a].total_cmp(&p[b]))
                            .unwrap_or(0);
                        let verdict = HeadVerdict {
                            label: head.card.classes[best].clone(),
                            probability: p[best],
                            probabilities: head
                                .card
                                .classes
                                .iter()
                                .cloned()
                                .zip(p.iter().copied())
                                .collect(),
                        };
                        (head.card.signal.clone(), verdict)
                    })
                    .collect();
                let speaker = speakers.get(at).copied().flatten();
                let prototypes = names
                    .iter()
                    .zip(&prototype_scores[at])
                    .zip(&self.label_speakers)
                    .filter(|(_, only)| match (only, speaker) {
                        (Some(only), Some(speaker)) => *only == speaker,
                        _ => true,
                    })
                    .map(|((name, score), _)| (name.to_string(), *score))
                    .collect();
                (vector, MessageSignals { heads, prototypes })
            })
            .collect())
    }
}
