//! Every per-message signal at once, from one pass of the encoder per message: the
//! signal branch's heads (sentiment, emotion, complaint, and the prototype labels it was
//! chosen for) and the phrase prototypes (the other labels, on the general vector). What
//! `rapport classify` prints and what the pipeline stores.

use crate::prototypes::{PrototypeScore, PrototypeScorer};
use crate::signal_branch::recipe::LABELS_TASK;
use crate::signal_branch::{BranchError, SignalBranch};
use crate::{Encoder, ModelError};

pub use rapport_record::signals::{HeadVerdict, MessageSignals};

/// Who wrote a message, for labels that apply to one side only (`hype` is the agent's,
/// `allegation` the customer's); `None` where unknown, and then every label applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    Customer,
    Agent,
}

/// The encoder (with the signal branch), its heads and the prototypes, loaded once.
pub struct Classifier {
    encoder: Encoder,
    branch: SignalBranch,
    prototypes: PrototypeScorer,
    /// Per prototype label, who it applies to (`None`: anyone).
    label_speakers: Vec<Option<Speaker>>,
    max_batch_tokens: usize,
    /// Tokens run through the encoder by [`Classifier::classify`] since start (metrics).
    tokens_classified: std::sync::atomic::AtomicU64,
}

impl Classifier {
    /// Fails if the branch was tuned from another encoder, or the encoder runs without it.
    pub fn new(
        encoder: Encoder,
        branch: SignalBranch,
        prototypes: PrototypeScorer,
        label_speakers: Vec<Option<Speaker>>,
        max_batch_tokens: usize,
    ) -> Result<Classifier, BranchError> {
        branch.check_encoder(encoder.spec().name)?;
        if !encoder.has_branch() {
            return Err(BranchError::Invalid {
                what: "the classifier".into(),
                problem: format!(
                    "{} was loaded without the signal branch",
                    encoder.spec().name
                ),
            });
        }
        Ok(Classifier {
            encoder,
            branch,
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

    pub fn branch(&self) -> &SignalBranch {
        &self.branch
    }

    /// Signals for each text, with its embedding.
    pub fn classify(
        &self,
        texts: &[&str],
        speakers: &[Option<Speaker>],
    ) -> Result<Vec<(Vec<f32>, MessageSignals)>, ModelError> {
        let embedded = self
            .encoder
            .embed_with_signals(texts, self.max_batch_tokens)?;
        self.tokens_classified
            .fetch_add(embedded.tokens as u64, std::sync::atomic::Ordering::Relaxed);
        let inference = |e: candle_core::Error| ModelError::Inference(e.to_string());
        let head_outputs: Vec<Vec<Vec<f32>>> = self
            .branch
            .heads()
            .iter()
            .map(|h| h.probabilities(&embedded.signals))
            .collect::<Result<_, _>>()
            .map_err(inference)?;
        let prototype_scores = self
            .prototypes
            .score(&embedded.vectors)
            .map_err(inference)?;
        let names: Vec<&str> = self.prototypes.label_names().collect();
        // Labels the branch was chosen for: their output index and threshold.
        let trained: Vec<Option<(usize, usize, f32)>> = names
            .iter()
            .map(|name| {
                self.branch
                    .heads()
                    .iter()
                    .enumerate()
                    .filter(|(_, h)| h.name() == LABELS_TASK)
                    .find_map(|(at, h)| {
                        let threshold = *h.card.thresholds.get(*name)?;
                        let output = h.outputs().iter().position(|o| o == name)?;
                        Some((at, output, threshold))
                    })
            })
            .collect();
        Ok(embedded
            .vectors
            .into_iter()
            .enumerate()
            .map(|(at, vector)| {
                let heads = self
                    .branch
                    .heads()
                    .iter()
                    .zip(&head_outputs)
                    .filter(|(head, _)| head.name() != LABELS_TASK)
                    .map(|(head, outputs)| {
                        let p = &outputs[at];
                        let best = (0..p.len())
                            .max_by(|&a, &b| p[a].total_cmp(&p[b]))
                            .unwrap_or(0);
                        let verdict = HeadVerdict {
                            label: head.outputs()[best].clone(),
                            probability: p[best],
                            probabilities: head
                                .outputs()
                                .iter()
                                .cloned()
                                .zip(p.iter().copied())
                                .collect(),
                        };
                        (head.name().to_string(), verdict)
                    })
                    .collect();
                let speaker = speakers.get(at).copied().flatten();
                let prototypes = names
                    .iter()
                    .zip(&prototype_scores[at])
                    .zip(&trained)
                    .zip(&self.label_speakers)
                    .filter(|(_, only)| match (only, speaker) {
                        (Some(only), Some(speaker)) => *only == speaker,
                        _ => true,
                    })
                    .map(|(((name, phrase_score), trained), _)| {
                        let score = match trained {
                            Some((head, output, threshold)) => {
                                let p = head_outputs[*head][at][*output];
                                PrototypeScore {
                                    score: p,
                                    flagged: p >= *threshold,
                                    above_threshold: Some(p - threshold),
                                }
                            }
                            None => *phrase_score,
                        };
                        (name.to_string(), score)
                    })
                    .collect();
                (vector, MessageSignals { heads, prototypes })
            })
            .collect())
    }
}
