//! Prototype signals: labels without training data, scored by similarity to example
//! phrases (`config/signals.toml`), embedded once at start-up.
//!
//! A message's score for a label is a margin: how much closer it is to the label's own
//! examples than to its contrast set, the label's near misses (same topic, label absent)
//! and the other labels' examples:
//!
//! `score = mean of the TOP_K highest cosines to the examples
//!        − mean of the TOP_K highest cosines to the contrast set`
//!
//! Cosines are taken after subtracting the mean of all phrases and re-normalising. e5
//! puts every customer message at 0.75–0.9 of every other one; the shared direction says
//! "a customer message" and drowns what tells labels apart. Raw similarity to a label's
//! examples is then mostly "is a complaint"; the margin asks which of the nearby
//! phrasings a message resembles most, which is what the label is. A mean of a few
//! neighbours instead of the single nearest keeps one odd phrase from deciding. Each
//! label's threshold is calibrated on the team's dev set (`rapport calibrate`), because
//! margins differ in spread between labels. models/eval/README.md has what else was tried.

use candle_core::Tensor;

use crate::train::matrix;

use crate::{Encoder, ModelError};

/// Neighbours averaged on each side of the margin.
pub const TOP_K: usize = 5;

/// A label's phrases and threshold, as the configuration gives them.
#[derive(Debug, Clone)]
pub struct PrototypeSpec {
    pub name: String,
    pub examples: Vec<String>,
    pub near_misses: Vec<String>,
    pub threshold: Option<f32>,
}

struct Label {
    name: String,
    threshold: Option<f32>,
    /// Rows of the phrase matrix: the label's examples, and its contrast set.
    examples: Vec<usize>,
    contrast: Vec<usize>,
}

/// Every label's embedded prototypes.
pub struct PrototypeScorer {
    labels: Vec<Label>,
    /// Every phrase, centred and L2-normalised, `[phrases × dims]`: one product with a
    /// batch gives every label's similarities (the labels share their phrases as
    /// contrast, so per-label products would repeat the work twelvefold).
    phrases: Tensor,
    dims: usize,
    /// The mean of every phrase vector, subtracted before comparing.
    centre: Vec<f32>,
}

pub use rapport_record::signals::PrototypeScore;

/// `v − centre`, scaled back to unit length.
fn centred(vector: &[f32], centre: &[f32]) -> Vec<f32> {
    let shifted: Vec<f32> = vector.iter().zip(centre).map(|(v, c)| v - c).collect();
    let norm = shifted.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    shifted.into_iter().map(|x| x / norm).collect()
}

/// The mean of the `k` largest of `row[columns]`; 0 for no columns.
fn top_k_mean(row: &[f32], columns: &[usize], scratch: &mut Vec<f32>, k: usize) -> f32 {
    if columns.is_empty() {
        return 0.0;
    }
    scratch.clear();
    scratch.extend(columns.iter().map(|&c| row[c]));
    let k = k.min(scratch.len());
    scratch.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    scratch[..k].iter().sum::<f32>() / k as f32
}

impl PrototypeScorer {
    /// Embeds every label's phrases with `encoder`.
    pub fn build(
        specs: &[PrototypeSpec],
        encoder: &Encoder,
        max_batch_tokens: usize,
    ) -> Result<PrototypeScorer, ModelError> {
        let mut phrases: Vec<&str> = Vec::new();
        for spec in specs {
            phrases.extend(spec.examples.iter().map(String::as_str));
            phrases.extend(spec.near_misses.iter().map(String::as_str));
        }
        let vectors = encoder.embed(&phrases, max_batch_tokens)?.vectors;
        PrototypeScorer::from_vectors(specs, &vectors, encoder.spec().dims)
            .map_err(|e| ModelError::Inference(e.to_string()))
    }

    /// From vectors already embedded, in the order `build` embeds them: per spec its
    /// examples, then its near misses.
    pub fn from_vectors(
        specs: &[PrototypeSpec],
        vectors: &[Vec<f32>],
        dims: usize,
    ) -> candle_core::Result<PrototypeScorer> {
        let mut at = 0;
        let mut spans = Vec::new();
        for spec in specs {
            let examples = at..at + spec.examples.len();
            let near_misses = examples.end..examples.end + spec.near_misses.len();
            at = near_misses.end;
            spans.push((examples, near_misses));
        }
        assert_eq!(at, vectors.len(), "one vector per phrase");
        let mut centre = vec![0.0f32; dims];
        for vector in vectors {
            for (c, v) in centre.iter_mut().zip(vector) {
                *c += v / vectors.len() as f32;
            }
        }
        let vectors: Vec<Vec<f32>> = vectors.iter().map(|v| centred(v, &centre)).collect();
        let mut labels = Vec::new();
        for (index, spec) in specs.iter().enumerate() {
            let (examples, near_misses) = &spans[index];
            let mut contrast: Vec<usize> = near_misses.clone().collect();
            for (other, (other_examples, _)) in spans.iter().enumerate() {
                if other != index {
                    contrast.extend(other_examples.clone());
                }
            }
            labels.push(Label {
                name: spec.name.clone(),
                threshold: spec.threshold,
                examples: examples.clone().collect(),
                contrast,
            });
        }
        Ok(PrototypeScorer {
            labels,
            phrases: matrix(vectors.iter(), dims)?,
            dims,
            centre,
        })
    }

    pub fn label_names(&self) -> impl Iterator<Item = &str> {
        self.labels.iter().map(|l| l.name.as_str())
    }

    /// Raw margins, `[message][label]`, in label order.
    pub fn margins(&self, vectors: &[Vec<f32>]) -> candle_core::Result<Vec<Vec<f32>>> {
        if vectors.is_empty() || self.labels.is_empty() {
            return Ok(vec![Vec::new(); vectors.len()]);
        }
        let centred: Vec<Vec<f32>> = vectors.iter().map(|v| centred(v, &self.centre)).collect();
        let x = matrix(centred.iter(), self.dims)?;
        let similarities = x.matmul(&self.phrases.t()?)?.to_vec2::<f32>()?;
        let mut scratch = Vec::new();
        let out = similarities
            .iter()
            .map(|row| {
                self.labels
                    .iter()
                    .map(|label| {
                        top_k_mean(row, &label.examples, &mut scratch, TOP_K)
                            - top_k_mean(row, &label.contrast, &mut scratch, TOP_K)
                    })
                    .collect()
            })
            .collect();
        Ok(out)
    }

    /// Scores with flags, `[message][label]`.
    pub fn score(&self, vectors: &[Vec<f32>]) -> candle_core::Result<Vec<Vec<PrototypeScore>>> {
        Ok(self
            .margins(vectors)?
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .zip(&self.labels)
                    .map(|(score, label)| PrototypeScore {
                        score,
                        flagged: label.threshold.is_some_and(|t| score >= t),
                        above_threshold: label.threshold.map(|t| score - t),
                    })
                    .collect()
            })
            .collect())
    }
}

/// Counts and rates of flagging at one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct PrecisionRecall {
    pub true_positives: usize,
    pub false_positives: usize,
    pub false_negatives: usize,
}

impl PrecisionRecall {
    /// Flags `scores[i] ≥ threshold` against `truth[i]`.
    pub fn at(scores: &[f32], truth: &[bool], threshold: f32) -> PrecisionRecall {
        let mut counts = PrecisionRecall::default();
        for (&score, &is) in scores.iter().zip(truth) {
            match (score >= threshold, is) {
                (true, true) => counts.true_positives += 1,
                (true, false) => counts.false_positives += 1,
                (false, true) => counts.false_negatives += 1,
                (false, false) => {}
            }
        }
        counts
    }

    pub fn add(&mut self, other: PrecisionRecall) {
        self.true_positives += other.true_positives;
        self.false_positives += other.false_positives;
        self.false_negatives += other.false_negatives;
    }

    /// 1 when nothing is flagged (no false flags were raised).
    pub fn precision(&self) -> f64 {
        let flagged = self.true_positives + self.false_positives;
        if flagged == 0 {
            1.0
        } else {
            self.true_positives as f64 / flagged as f64
        }
    }

    pub fn recall(&self) -> f64 {
        let positives = self.true_positives + self.false_negatives;
        if positives == 0 {
            0.0
        } else {
            self.true_positives as f64 / positives as f64
        }
    }
}

/// The threshold that flags the most positives while keeping precision ≥ `precision` on
/// (`scores`, `truth`): the deepest cut down the ranking that still has that precision,
/// placed halfway to the next lower score so a message scoring a hair below the last
/// positive is not flagged by rounding. `None` when no cut reaches the precision.
pub fn threshold_for_precision(scores: &[f32], truth: &[bool], precision: f64) -> Option<f32> {
    let mut ranked: Vec<(f32, bool)> = scores.iter().copied().zip(truth.iter().copied()).collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut hits = 0usize;
    let mut deepest = None;
    for (at, &(score, is)) in ranked.iter().enumerate() {
        hits += usize::from(is);
        // Only cut between distinct scores: ties are flagged together.
        let next = ranked.get(at + 1).map(|r| r.0);
        if next == Some(score) {
            continue;
        }
        if is && hits as f64 / (at + 1) as f64 >= precision {
            deepest = Some(match next {
                Some(lower) => (score + lower) / 2.0,
                None => score,
            });
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_is_the_deepest_cut_with_the_precision() {
        // Ranked: 0.9 T, 0.8 T, 0.7 F, 0.6 T, 0.5 F, 0.4 T, 0.3 F.
        let scores = [0.5, 0.9, 0.3, 0.7, 0.8, 0.4, 0.6];
        let truth = [false, true, false, false, true, true, true];
        // Cuts at a positive: 1/1, 2/2, 3/4 = 0.75, 4/6 = 0.67.
        let at = |precision| threshold_for_precision(&scores, &truth, precision).unwrap();
        assert!((at(0.75) - 0.55).abs() < 1e-6);
        assert!((at(0.8) - 0.75).abs() < 1e-6);
        assert!((at(0.6) - 0.35).abs() < 1e-6);
        let counts = PrecisionRecall::at(&scores, &truth, 0.55);
        assert_eq!(
            (
                counts.true_positives,
                counts.false_positives,
                counts.false_negatives
            ),
            (3, 1, 1)
        );
        assert_eq!(counts.precision(), 0.75);
        assert_eq!(counts.recall(), 0.75);
        assert_eq!(
            threshold_for_precision(&[0.2, 0.9], &[true, false], 0.9),
            None
        );
    }

    #[test]
    fn margins_favour_the_label_a_message_is_nearest() {
        let specs = vec![
            PrototypeSpec {
                name: "a".into(),
                examples: vec!["a1".into(), "a2".into()],
                near_misses: vec!["not a".into()],
                threshold: Some(0.1),
            },
            PrototypeSpec {
                name: "b".into(),
                examples: vec!["b1".into()],
                near_misses: vec![],
                threshold: None,
            },
        ];
        let unit = |x: f32, y: f32| {
            let n = (x * x + y * y).sqrt();
            vec![x / n, y / n]
        };
        // a's examples point along x, its near miss and b along y.
        let vectors = vec![
            unit(1.0, 0.0),
            unit(1.0, 0.1),
            unit(0.3, 1.0),
            unit(0.0, 1.0),
        ];
        let scorer = PrototypeScorer::from_vectors(&specs, &vectors, 2).unwrap();
        let scores = scorer.score(&[unit(1.0, 0.05), unit(0.1, 1.0)]).unwrap();
        assert!(
            scores[0][0].score > 0.1 && scores[0][0].flagged,
            "{scores:?}"
        );
        assert!(
            scores[1][0].score < 0.0 && !scores[1][0].flagged,
            "{scores:?}"
        );
        // b is uncalibrated: scored, never flagged.
        assert!(
            scores[1][1].score > 0.0 && !scores[1][1].flagged,
            "{scores:?}"
        );
    }
}
