//! Analysed interactions with hand-set signals, for the tests of the rules (here and in
//! the crates above).

use std::collections::BTreeMap;

use rapport_record::{Author, Channel, Interaction, Role};

use crate::interaction::AnalysedInteraction;
use crate::signals::{HeadVerdict, MessageSignals, PrototypeScore};

/// Sentiment as P(negative), P(neutral), P(positive).
pub type Sentiment = (f32, f32, f32);

pub struct Message<'a> {
    pub id: &'a str,
    pub conversation: &'a str,
    pub role: Role,
    pub minute: i64,
    pub text: &'a str,
    pub sentiment: Sentiment,
    pub complaint: f32,
    /// Prototype labels that fire.
    pub labels: &'a [&'a str],
    pub public: bool,
    pub customer: &'a str,
    pub in_reply_to: Option<&'a str>,
}

impl Default for Message<'_> {
    fn default() -> Self {
        Message {
            id: "m",
            conversation: "c",
            role: Role::Customer,
            minute: 0,
            text: "hello",
            sentiment: (0.1, 0.8, 0.1),
            complaint: 0.1,
            labels: &[],
            public: false,
            customer: "cust-1",
            in_reply_to: None,
        }
    }
}

fn verdict(classes: &[(&str, f32)]) -> HeadVerdict {
    let (label, probability) = classes
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(l, p)| (l.to_string(), *p))
        .unwrap();
    HeadVerdict {
        label,
        probability,
        probabilities: classes.iter().map(|(l, p)| (l.to_string(), *p)).collect(),
    }
}

pub fn stored(m: Message) -> AnalysedInteraction {
    let (neg, neu, pos) = m.sentiment;
    let mut heads = BTreeMap::new();
    heads.insert(
        "sentiment".into(),
        verdict(&[("negative", neg), ("neutral", neu), ("positive", pos)]),
    );
    heads.insert(
        "complaint".into(),
        verdict(&[
            ("complaint", m.complaint),
            ("not_complaint", 1.0 - m.complaint),
        ]),
    );
    let prototypes = m
        .labels
        .iter()
        .map(|l| {
            (
                l.to_string(),
                PrototypeScore {
                    score: 0.1,
                    flagged: true,
                    above_threshold: Some(0.05),
                },
            )
        })
        .collect();
    AnalysedInteraction {
        interaction: Interaction {
            id: m.id.into(),
            conversation_id: m.conversation.into(),
            channel: if m.public {
                Channel::Social
            } else {
                Channel::Email
            },
            connector: "test".into(),
            occurred_at: time::macros::datetime!(2026-01-01 00:00 UTC)
                + time::Duration::minutes(m.minute),
            author: Author {
                role: m.role,
                ids: vec![],
                name: None,
            },
            text: m.text.into(),
            language: Some("da".into()),
            public: m.public,
            in_reply_to: m.in_reply_to.map(str::to_string),
            attributes: Default::default(),
        },
        customer_id: Some(m.customer.into()),
        signals: MessageSignals { heads, prototypes },
    }
}
