//! Customer profiles (DESIGN.md §7): counts per channel, first and last contact, the
//! sentiment trajectory, the ten relationship dimensions and the nearest relationship
//! type, with its confidence and the interactions that drove it.
//!
//! **Recomputed, not folded.** A profile is a pure function of the customer's stored
//! interactions (the latest [`PROFILE_WINDOW`]), rebuilt whenever a batch touches the
//! customer. Folding each new interaction into running sums would count a redelivered
//! interaction twice; recomputing makes redelivery, several workers and replays harmless,
//! at the cost of reading the customer's recent history per batch (tens of points).
//!
//! **Time decay.** Each interaction weighs `2^(-age / half_life)`, its age taken from the
//! customer's latest interaction, not the wall clock: the same history always gives the
//! same profile, and a customer who went quiet keeps the profile they had.
//!
//! **Dimensions from signals.** Only the customer's own messages are evidence. Each
//! message gives some dimensions a value in [-1, 1] with a weight; a dimension's score is
//! the decayed, weighted mean, shrunk toward 0 by a prior weight so that one message
//! cannot make an extreme. The reading of each signal is in [`message_evidence`].
//!
//! **Nearest type.** Scores are compared with each prototype scaled by
//! `prototype_scale`: a prototype is the relationship at its clearest, a measured score a
//! shrunk mean, so a typical member reaches about half of their prototype.

use std::collections::BTreeMap;

use crate::relationships::{DIMENSIONS, RelationshipCatalogue};
use rapport_record::Role;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::interaction::AnalysedInteraction;

/// The most recent interactions a profile is computed from; older ones weigh
/// `2^-(age/half-life)` and would change nothing visible.
pub const PROFILE_WINDOW: usize = 500;
/// Evidence interactions kept per profile.
const EVIDENCE_IDS: usize = 5;
/// Prior weight per dimension, pulling scores toward 0 (neutral) until evidence mounts.
const PRIOR_WEIGHT: f32 = 0.5;
/// A prototype label counts in part from this far below its calibrated threshold (in
/// margin units): the thresholds are set for precise per-message flags, and a profile
/// sums many messages, so near misses are evidence too, just weaker.
const NEAR_MISS_BAND: f32 = 0.05;
/// Points in the stored sentiment series (the most recent customer messages).
const SENTIMENT_POINTS: usize = 20;

/// How profiles are computed (`[profiles]` in config).
#[derive(Debug, Clone, Copy)]
pub struct ProfileRules {
    pub half_life_days: f64,
    /// Below this many customer messages the type is "not enough evidence".
    pub min_messages: usize,
    /// Customers are compared with the prototypes scaled by this (`profiles.prototype_scale`).
    pub prototype_scale: f32,
    /// The complaint head's probability from which a message counts as a complaint.
    pub complaint_threshold: f32,
}

/// One stored interaction as the profile reads it.
pub struct ProfileInput<'a> {
    pub stored: &'a AnalysedInteraction,
    pub vector: &'a [f32],
    /// A public reply to another customer's post (community help).
    pub answers_another_customer: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerProfile {
    pub customer_id: String,
    /// Display name from the latest message that carried one.
    pub name: Option<String>,
    /// Every interaction on the customer's timeline (agents' replies included).
    pub interactions: u64,
    /// The customer's own messages: the evidence.
    pub messages: u64,
    pub channels: BTreeMap<String, u64>,
    pub languages: BTreeMap<String, u64>,
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    pub sentiment: SentimentTrajectory,
    /// By name, each in [-1, 1], in [`DIMENSIONS`] order.
    pub dimensions: BTreeMap<String, f32>,
    pub relationship: Relationship,
    /// Public replies to other customers' posts: the superuser signal.
    pub answers_to_others: u64,
    pub complaints: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentimentTrajectory {
    /// Decayed mean of P(positive) − P(negative) over the customer's messages.
    pub mean: f32,
    /// Mean of the latest three messages minus the mean of the ones before (0 with fewer
    /// than four): negative when the relationship is souring.
    pub trend: f32,
    /// The latest messages, oldest first.
    pub series: Vec<SentimentPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentimentPoint {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub valence: f32,
    pub interaction_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Relationship {
    Typed {
        /// The catalogue key, e.g. `best_friends`.
        key: String,
        name: String,
        /// In [0, 1]: how much nearer this type is than the runner-up, times how much
        /// evidence there is.
        confidence: f32,
        distance: f32,
        runner_up: Option<String>,
        /// The interactions that pulled the profile toward this type the most.
        evidence: Vec<String>,
    },
    NotEnoughEvidence {
        messages: u64,
        needed: u64,
    },
}

impl Relationship {
    pub fn key(&self) -> Option<&str> {
        match self {
            Relationship::Typed { key, .. } => Some(key),
            Relationship::NotEnoughEvidence { .. } => None,
        }
    }
}

/// A built profile with its two vectors: `semantic` (decayed mean of the customer's
/// message vectors, unit length) and `relationship` (the dimensions).
pub struct BuiltProfile {
    pub profile: CustomerProfile,
    pub semantic: Vec<f32>,
    pub relationship: Vec<f32>,
}

/// Evidence one message gives: per dimension, a value and a weight (0: says nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Evidence {
    pub value: [f32; 10],
    pub weight: [f32; 10],
}

impl Evidence {
    fn add(&mut self, dimension: Dimension, value: f32, weight: f32) {
        let d = dimension as usize;
        // Several cues on one dimension: their weighted mean, with their summed weight.
        let total = self.weight[d] + weight;
        self.value[d] = (self.value[d] * self.weight[d] + value * weight) / total;
        self.weight[d] = total;
    }
}

/// [`DIMENSIONS`] by name, so the evidence rules read as prose.
#[derive(Debug, Clone, Copy)]
enum Dimension {
    Valence,
    Intensity,
    Reciprocity,
    PowerBalance,
    NoveltySeeking,
    PriceFocus,
    Contribution,
    Trust,
    Commitment,
    Publicness,
}

/// How strongly a prototype label fires, in [0, 1]: 1 at or over its threshold or when
/// the message says it in one of the label's phrases ([`crate::cues`]); for a label
/// without phrases, falling linearly to 0 at [`NEAR_MISS_BAND`] below the threshold (a
/// label with phrases has those to catch what the threshold misses, and its near misses
/// are mostly other topics); 0 for a label that did not run.
fn strength(stored: &AnalysedInteraction, label: &str) -> f32 {
    if crate::cues::says(label, &stored.interaction.text) {
        return 1.0;
    }
    let near_misses_count = !crate::cues::has_phrases(label);
    match stored.signals.prototypes.get(label) {
        Some(score) if score.flagged => 1.0,
        Some(score) if near_misses_count => score.above_threshold.map_or(0.0, |m| {
            ((m + NEAR_MISS_BAND) / NEAR_MISS_BAND).clamp(0.0, 1.0)
        }),
        _ => 0.0,
    }
}

/// What one customer message says about each dimension. The rules follow the dimension
/// definitions in `relationship-types.toml`; each label counts in proportion to its
/// [`strength`]:
/// - valence: sentiment; intensity: how strongly felt (max of P(pos), P(neg));
/// - reciprocity: giving (ideas, helping others) vs only taking (full-service demands);
/// - power balance: leverage (churn threats, demands, complaints) toward the customer;
/// - novelty, price focus, contribution: their expectation labels, and a little toward
///   "no" for every message that shows none of it;
/// - trust: allegations and demands for honesty lower it, warm messages raise it;
/// - commitment: long-term signals vs churn threats;
/// - publicness: public posts and "I will tell others" vs private channels.
pub fn message_evidence(input: &ProfileInput, rules: &ProfileRules) -> Evidence {
    use Dimension::*;
    let stored = input.stored;
    let mut e = Evidence::default();
    let mut cue = |dimension, value, weight: f32| {
        if weight > 0.0 {
            e.add(dimension, value, weight);
        }
    };
    if let Some(p) = stored
        .signals
        .heads
        .get("sentiment")
        .map(|h| &h.probabilities)
    {
        let positive = p.get("positive").copied().unwrap_or(0.0);
        let negative = p.get("negative").copied().unwrap_or(0.0);
        cue(Valence, positive - negative, 1.0);
        cue(Intensity, 2.0 * positive.max(negative) - 1.0, 0.5);
        cue(Trust, 0.5, 0.8 * (positive - 0.5).max(0.0));
    }
    if stored.complaint_probability().unwrap_or(0.0) >= rules.complaint_threshold {
        cue(PowerBalance, 0.5, 0.5);
        cue(Trust, -0.3, 0.3);
        cue(Intensity, 0.6, 0.5);
    }
    let allegation = if stored.may_allege() {
        strength(stored, "allegation")
    } else {
        0.0
    };
    cue(Trust, -1.0, 1.5 * allegation);
    cue(Valence, -0.8, 0.5 * allegation);
    cue(Trust, -0.5, 0.7 * strength(stored, "honest_answers"));
    let churn = strength(stored, "churn_threat");
    cue(Commitment, -1.0, 1.5 * churn);
    cue(PowerBalance, 1.0, churn);
    let long_term = strength(stored, "long_term_commitment");
    cue(Commitment, 1.0, 1.5 * long_term);
    cue(Trust, 0.5, 0.5 * long_term);
    let full_service = strength(stored, "full_service");
    cue(PowerBalance, 0.9, full_service);
    cue(Reciprocity, -0.8, full_service);
    cue(PriceFocus, -0.5, 0.5 * full_service);
    let fast = strength(stored, "fast_resolution");
    cue(PowerBalance, 0.6, 0.5 * fast);
    cue(Intensity, 0.5, 0.5 * fast);
    let novelty = strength(stored, "novelty");
    cue(NoveltySeeking, 1.0, 1.5 * novelty);
    cue(NoveltySeeking, -0.6, 0.2 * (1.0 - novelty));
    let price = strength(stored, "fair_price");
    cue(PriceFocus, 1.0, 1.5 * price);
    cue(PriceFocus, -0.4, 0.15 * (1.0 - price));
    let notice = strength(stored, "advance_notice");
    cue(Trust, 0.2, 0.3 * notice);
    cue(Commitment, 0.3, 0.3 * notice);
    let helps_others = if input.answers_another_customer {
        1.0
    } else {
        0.0
    };
    let ideas = strength(stored, "contribute_ideas").max(helps_others);
    cue(Contribution, 1.0, 1.5 * ideas);
    cue(Reciprocity, 0.8, ideas);
    cue(Contribution, -0.6, 0.2 * (1.0 - ideas));
    cue(Publicness, 1.0, 1.5 * strength(stored, "will_tell_others"));
    if stored.interaction.public {
        cue(Publicness, 1.0, 1.0);
    } else {
        cue(Publicness, -0.6, 0.3);
    }
    e
}

fn is_customer_message(stored: &AnalysedInteraction) -> bool {
    matches!(
        stored.interaction.author.role,
        Role::Customer | Role::Unknown
    )
}

/// Builds the profile of `customer_id` from its interactions (any order).
pub fn build(
    customer_id: &str,
    inputs: &[ProfileInput],
    catalogue: &RelationshipCatalogue,
    rules: &ProfileRules,
) -> Option<BuiltProfile> {
    // Only the customer's own words build the profile (see `AnalysedInteraction::is_authored`).
    let mut inputs: Vec<&ProfileInput> = inputs.iter().filter(|i| i.stored.is_authored()).collect();
    inputs.sort_by_key(|i| {
        (
            i.stored.interaction.occurred_at,
            i.stored.interaction.id.clone(),
        )
    });
    let first = inputs.first()?.stored.interaction.occurred_at;
    let last = inputs.last()?.stored.interaction.occurred_at;
    let half_life_secs = rules.half_life_days.max(1e-3) * 86_400.0;
    let decay = |at: OffsetDateTime| -> f32 {
        let age = (last - at).as_seconds_f64().max(0.0);
        (0.5f64).powf(age / half_life_secs) as f32
    };

    let mut channels = BTreeMap::new();
    let mut languages = BTreeMap::new();
    let mut name = None;
    for input in &inputs {
        let i = &input.stored.interaction;
        *channels.entry(i.channel.as_str().to_string()).or_insert(0) += 1;
        if is_customer_message(input.stored) {
            if let Some(language) = &i.language {
                *languages.entry(language.clone()).or_insert(0) += 1;
            }
            // A call turn's "name" is the transcriber's speaker label, not a person's.
            if i.author.name.is_some() && i.channel != rapport_record::Channel::Call {
                name = i.author.name.clone();
            }
        }
    }

    let own: Vec<&&ProfileInput> = inputs
        .iter()
        .filter(|i| is_customer_message(i.stored))
        .collect();
    let mut semantic = vec![0f32; inputs[0].vector.len()];
    let mut sums = [0f32; 10];
    let mut weights = [0f32; 10];
    let mut valence_sum = 0f32;
    let mut valence_weight = 0f32;
    let mut per_message = Vec::with_capacity(own.len());
    for input in &own {
        let w = decay(input.stored.interaction.occurred_at);
        for (s, v) in semantic.iter_mut().zip(input.vector) {
            *s += w * v;
        }
        let evidence = message_evidence(input, rules);
        for d in 0..10 {
            sums[d] += w * evidence.weight[d] * evidence.value[d];
            weights[d] += w * evidence.weight[d];
        }
        if let Some(v) = input.stored.valence() {
            valence_sum += w * v;
            valence_weight += w;
        }
        per_message.push((input.stored.interaction.id.clone(), w, evidence));
    }
    if own.is_empty() {
        // Only replies to this customer so far (an agent wrote first): describe the
        // conversation instead of nothing.
        for input in &inputs {
            for (s, v) in semantic.iter_mut().zip(input.vector) {
                *s += v;
            }
        }
    }
    let norm = semantic.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        semantic.iter_mut().for_each(|x| *x /= norm);
    }
    let scores: [f32; 10] =
        std::array::from_fn(|d| (sums[d] / (weights[d] + PRIOR_WEIGHT)).clamp(-1.0, 1.0));

    let series: Vec<SentimentPoint> = own
        .iter()
        .filter_map(|i| {
            Some(SentimentPoint {
                at: i.stored.interaction.occurred_at,
                valence: i.stored.valence()?,
                interaction_id: i.stored.interaction.id.clone(),
            })
        })
        .collect();
    let trend = if series.len() >= 4 {
        let (earlier, latest) = series.split_at(series.len() - 3);
        let mean = |points: &[SentimentPoint]| {
            points.iter().map(|p| p.valence).sum::<f32>() / points.len() as f32
        };
        mean(latest) - mean(earlier)
    } else {
        0.0
    };
    let series = series[series.len().saturating_sub(SENTIMENT_POINTS)..].to_vec();

    let messages = own.len() as u64;
    let relationship = if own.len() < rules.min_messages || catalogue.types.is_empty() {
        Relationship::NotEnoughEvidence {
            messages,
            needed: rules.min_messages as u64,
        }
    } else {
        typed(
            &scores,
            &per_message,
            catalogue,
            messages,
            rules.prototype_scale,
        )
    };
    let complaints = own
        .iter()
        .filter(|i| i.stored.complaint_probability().unwrap_or(0.0) >= rules.complaint_threshold)
        .count() as u64;
    let profile = CustomerProfile {
        customer_id: customer_id.to_string(),
        name,
        interactions: inputs.len() as u64,
        messages,
        channels,
        languages,
        first_seen: first,
        last_seen: last,
        sentiment: SentimentTrajectory {
            mean: if valence_weight > 0.0 {
                valence_sum / valence_weight
            } else {
                0.0
            },
            trend,
            series,
        },
        dimensions: DIMENSIONS
            .iter()
            .zip(scores)
            .map(|(d, s)| (d.to_string(), s))
            .collect(),
        relationship,
        answers_to_others: own.iter().filter(|i| i.answers_another_customer).count() as u64,
        complaints,
    };
    Some(BuiltProfile {
        profile,
        semantic,
        relationship: scores.to_vec(),
    })
}

/// The nearest type (Euclidean), its confidence, and the messages that pulled toward it
/// most.
fn typed(
    scores: &[f32; 10],
    per_message: &[(String, f32, Evidence)],
    catalogue: &RelationshipCatalogue,
    messages: u64,
    prototype_scale: f32,
) -> Relationship {
    let distance = |prototype: &[f32; 10]| -> f32 {
        prototype
            .iter()
            .zip(scores)
            .map(|(p, s)| (p * prototype_scale - s) * (p * prototype_scale - s))
            .sum::<f32>()
            .sqrt()
    };
    let mut ranked: Vec<(f32, usize)> = catalogue
        .types
        .iter()
        .enumerate()
        .map(|(i, t)| (distance(&t.prototype), i))
        .collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (nearest, index) = ranked[0];
    let runner_up = ranked.get(1);
    let separation = runner_up.map_or(1.0, |(d2, _)| 1.0 - nearest / d2.max(1e-6));
    let evidence_factor = messages as f32 / (messages as f32 + 3.0);
    let chosen = &catalogue.types[index];
    // A message's pull toward the type: its evidence along the prototype, decayed.
    let mut pulls: Vec<(f32, &String)> = per_message
        .iter()
        .map(|(id, w, e)| {
            let pull: f32 = (0..10)
                .map(|d| e.weight[d] * e.value[d] * chosen.prototype[d])
                .sum();
            (w * pull, id)
        })
        .filter(|(pull, _)| *pull > 0.0)
        .collect();
    pulls.sort_by(|a, b| b.0.total_cmp(&a.0));
    Relationship::Typed {
        key: chosen.key.clone(),
        name: chosen.name.clone(),
        confidence: (separation * evidence_factor).clamp(0.0, 1.0),
        distance: nearest,
        runner_up: runner_up.map(|(_, i)| catalogue.types[*i].key.clone()),
        evidence: pulls
            .into_iter()
            .take(EVIDENCE_IDS)
            .map(|(_, id)| id.clone())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Message, stored};

    const RULES: ProfileRules = ProfileRules {
        half_life_days: 30.0,
        min_messages: 3,
        prototype_scale: 0.55,
        complaint_threshold: 0.8,
    };

    /// The shipped catalogue (`config/relationship-types.toml`; `rapport_config` checks it,
    /// the tests here only need its points).
    fn catalogue() -> RelationshipCatalogue {
        #[derive(serde::Deserialize)]
        struct File {
            types: BTreeMap<String, Type>,
        }
        #[derive(serde::Deserialize)]
        struct Type {
            name: String,
            description: String,
            treatment: String,
            prototype: BTreeMap<String, f32>,
        }
        let file: File =
            toml::from_str(include_str!("../../config/relationship-types.toml")).unwrap();
        RelationshipCatalogue {
            types: file
                .types
                .into_iter()
                .map(|(key, t)| crate::relationships::RelationshipType {
                    key,
                    name: t.name,
                    description: t.description,
                    treatment: t.treatment,
                    prototype: DIMENSIONS.map(|d| t.prototype[d]),
                })
                .collect(),
        }
    }

    fn build_from(messages: &[AnalysedInteraction]) -> BuiltProfile {
        let vectors: Vec<Vec<f32>> = (0..messages.len())
            .map(|i| vec![1.0, i as f32, 0.0])
            .collect();
        let inputs: Vec<ProfileInput> = messages
            .iter()
            .zip(&vectors)
            .map(|(stored, vector)| ProfileInput {
                stored,
                vector,
                answers_another_customer: false,
            })
            .collect();
        build("cust-1", &inputs, &catalogue(), &RULES).unwrap()
    }

    fn dimension(p: &CustomerProfile, name: &str) -> f32 {
        p.dimensions[name]
    }

    #[test]
    fn a_threatening_complainer_leans_to_leaving_and_leverage() {
        let messages: Vec<AnalysedInteraction> = (0..4)
            .map(|i| {
                stored(Message {
                    id: ["a", "b", "c", "d"][i],
                    minute: i as i64 * 60,
                    sentiment: (0.9, 0.05, 0.05),
                    complaint: 0.95,
                    labels: &["churn_threat", "allegation"],
                    ..Default::default()
                })
            })
            .collect();
        let built = build_from(&messages);
        let p = &built.profile;
        assert!(dimension(p, "commitment") < -0.5, "{:?}", p.dimensions);
        assert!(dimension(p, "trust") < -0.5);
        assert!(dimension(p, "valence") < -0.5);
        assert!(dimension(p, "power_balance") > 0.3);
        assert_eq!(p.complaints, 4);
        let Relationship::Typed { key, evidence, .. } = &p.relationship else {
            panic!("typed with 4 messages: {:?}", p.relationship);
        };
        // Hostile, distrustful, leaving: one of the negative types.
        assert!(
            ["enemies", "ex_friends", "love_hate"].contains(&key.as_str()),
            "{key}"
        );
        assert!(!evidence.is_empty());
        assert_eq!(built.relationship.len(), 10);
        let norm: f32 = built.semantic.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }

    #[test]
    fn the_same_history_in_any_order_gives_the_same_profile() {
        let mut messages: Vec<AnalysedInteraction> = (0..6)
            .map(|i| {
                stored(Message {
                    id: ["a", "b", "c", "d", "e", "f"][i],
                    minute: i as i64 * 600,
                    sentiment: if i % 2 == 0 {
                        (0.1, 0.2, 0.7)
                    } else {
                        (0.6, 0.3, 0.1)
                    },
                    labels: if i == 3 { &["novelty"] } else { &[] },
                    ..Default::default()
                })
            })
            .collect();
        let forward = build_from(&messages).profile;
        messages.reverse();
        let backward = build_from(&messages).profile;
        assert_eq!(forward.dimensions, backward.dimensions);
        assert_eq!(forward.relationship, backward.relationship);
        assert_eq!(forward.sentiment, backward.sentiment);
    }

    #[test]
    fn older_messages_weigh_less_and_few_messages_are_not_enough() {
        let old_angry = stored(Message {
            id: "old",
            minute: 0,
            sentiment: (0.95, 0.05, 0.0),
            ..Default::default()
        });
        let recent_happy = |id, minute| {
            stored(Message {
                id,
                minute,
                sentiment: (0.0, 0.05, 0.95),
                ..Default::default()
            })
        };
        // 180 days later (six half-lives): the angry message hardly counts.
        let later = 180 * 24 * 60;
        let p = build_from(&[old_angry.clone(), recent_happy("new", later)]).profile;
        assert!(p.sentiment.mean > 0.8, "{}", p.sentiment.mean);
        assert_eq!(
            p.relationship,
            Relationship::NotEnoughEvidence {
                messages: 2,
                needed: 3
            }
        );
        // The same messages a minute apart: they cancel out.
        let p = build_from(&[old_angry, recent_happy("new", 1)]).profile;
        assert!(p.sentiment.mean.abs() < 0.1, "{}", p.sentiment.mean);
    }

    #[test]
    fn agent_replies_are_on_the_timeline_but_not_evidence() {
        let customer = stored(Message {
            id: "q",
            sentiment: (0.0, 0.1, 0.9),
            ..Default::default()
        });
        let agent = stored(Message {
            id: "r",
            role: Role::Agent,
            minute: 5,
            sentiment: (0.9, 0.1, 0.0),
            labels: &["hype"],
            ..Default::default()
        });
        let p = build_from(&[customer, agent]).profile;
        assert_eq!((p.interactions, p.messages), (2, 1));
        assert!(p.sentiment.mean > 0.8);
        assert_eq!(p.channels["email"], 2);
    }
}
