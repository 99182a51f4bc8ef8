//! Flags (DESIGN.md §7): what customer service should look at, raised from the stored
//! interactions and profiles, each once per cause.
//!
//! | kind | cause (the flag id) | raised when |
//! |---|---|---|
//! | `complaint` | conversation | a customer message's complaint probability ≥ the threshold |
//! | `honesty` | conversation + `allegation` | the customer says they were misled (`allegation` label) |
//! | `honesty` | conversation + `evasive_reply` | the first agent reply after a complaint neither acknowledges nor answers it |
//! | `churn_risk` | conversation | the customer threatens to leave (`churn_threat` label or a phrase, see `cues`) |
//! | `superuser` | customer | the customer has publicly answered ≥ `superuser_min_answers` other customers' questions |
//!
//! A complaint made in public is the same complaint, not a second flag: it is raised at
//! severity `high` with `public = true`, and `public_escalation` selects such complaints
//! wherever flags are filtered (API, CLI, alert rules), so one cause is one item in the
//! queue.
//!
//! The id is derived from the cause, so a redelivered or replayed interaction re-raises
//! the same flag: it is published on `rapport.flags.<kind>` with that id as `Nats-Msg-Id`
//! and stored only if absent, which keeps its status (acknowledged, resolved) intact.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::interaction::AnalysedInteraction;
use crate::profile::CustomerProfile;
use rapport_record::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagKind {
    Complaint,
    Honesty,
    ChurnRisk,
    /// Not raised: selects the complaints raised from a public message (`Flag::public`).
    /// Stores written before that change may still hold flags of this kind.
    PublicEscalation,
    Superuser,
}

impl FlagKind {
    pub const ALL: [FlagKind; 5] = [
        FlagKind::Complaint,
        FlagKind::Honesty,
        FlagKind::ChurnRisk,
        FlagKind::PublicEscalation,
        FlagKind::Superuser,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FlagKind::Complaint => "complaint",
            FlagKind::Honesty => "honesty",
            FlagKind::ChurnRisk => "churn_risk",
            FlagKind::PublicEscalation => "public_escalation",
            FlagKind::Superuser => "superuser",
        }
    }

    pub fn parse(name: &str) -> Option<FlagKind> {
        FlagKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagStatus {
    Open,
    Acknowledged,
    Resolved,
}

impl FlagStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FlagStatus::Open => "open",
            FlagStatus::Acknowledged => "acknowledged",
            FlagStatus::Resolved => "resolved",
        }
    }

    pub const ALL: [FlagStatus; 3] = [
        FlagStatus::Open,
        FlagStatus::Acknowledged,
        FlagStatus::Resolved,
    ];

    pub fn parse(name: &str) -> Option<FlagStatus> {
        FlagStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Low, Severity::Medium, Severity::High];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }

    pub fn parse(name: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flag {
    /// `<kind>:<cause>`: stable for the same cause.
    pub id: String,
    pub kind: FlagKind,
    /// What exactly: `allegation` or `evasive_reply` for honesty; empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    pub severity: Severity,
    pub customer_id: Option<String>,
    pub conversation_id: Option<String>,
    pub channel: Option<String>,
    /// The interactions that raised it, oldest first.
    pub evidence: Vec<String>,
    /// The first evidence text (already redacted), for the queue and alerts.
    pub excerpt: String,
    /// Raised from a message other people can see (a complaint in a public post).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub raised_at: OffsetDateTime,
    pub status: FlagStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_by: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub status_at: Option<OffsetDateTime>,
}

impl Flag {
    /// A person works the flag: acknowledges it, resolves it, or reopens it. Any status may
    /// follow any other (reopening a resolved flag is a person's call); who and when are
    /// kept with it, the evidence never changes.
    pub fn set_status(&mut self, status: FlagStatus, by: &str, at: OffsetDateTime) {
        self.status = status;
        self.status_by = Some(by.to_string());
        self.status_at = Some(at);
    }

    /// Whether the flag is of `kind`, where `public_escalation` means a public complaint.
    pub fn is(&self, kind: FlagKind) -> bool {
        self.kind == kind
            || (kind == FlagKind::PublicEscalation
                && self.kind == FlagKind::Complaint
                && self.public)
    }
}

/// Thresholds for raising flags (`[flags]` in config).
#[derive(Debug, Clone, Copy)]
pub struct FlagRules {
    pub complaint_threshold: f32,
    /// An agent reply at least this similar (cosine) to the complaint counts as answering it.
    pub answer_similarity: f32,
    pub superuser_min_answers: u64,
}

/// Words that acknowledge a complaint, in the four languages (lower case, matched as
/// substrings): an apology or an admission is not evasive, whatever else the reply says.
const ACKNOWLEDGEMENTS: &[&str] = &[
    // Danish / Norwegian
    "beklager",
    "undskyld",
    "unnskyld",
    "ked af",
    "kede af",
    "lei meg for",
    "lei for",
    "vores fejl",
    "vår feil",
    "vores skyld",
    "du har ret",
    "du har rett",
    "refusion",
    "refundering",
    "godtgørelse",
    // Swedish
    "ursäkta",
    "beklagar",
    "förlåt",
    "vi ber om ursäkt",
    "tråkigt att",
    "vårt fel",
    "du har rätt",
    "återbetal",
    // English
    "sorry",
    "apolog",
    "our mistake",
    "our fault",
    "you are right",
    "you're right",
    "refund",
];

pub fn acknowledges(text: &str) -> bool {
    let lower = text.to_lowercase();
    ACKNOWLEDGEMENTS.iter().any(|cue| lower.contains(cue))
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}

fn severity_of(probability: f32) -> Severity {
    if probability >= 0.95 {
        Severity::High
    } else if probability >= 0.85 {
        Severity::Medium
    } else {
        Severity::Low
    }
}

fn is_customer(stored: &AnalysedInteraction) -> bool {
    matches!(
        stored.interaction.author.role,
        Role::Customer | Role::Unknown
    )
}

/// Whether a message carries prototype label `label`: the label fired, or the message
/// says it in one of the label's phrases ([`crate::cues`]).
fn flagged(stored: &AnalysedInteraction, label: &str) -> bool {
    stored
        .signals
        .prototypes
        .get(label)
        .is_some_and(|s| s.flagged)
        || crate::cues::says(label, &stored.interaction.text)
}

/// Whether `reply` answers another customer's question: a customer's public reply to a
/// question another customer posted. That is the superuser signal, and help for a peer
/// rather than a complaint to the company: the complaint head, trained on messages to
/// companies, reads step-by-step instructions as problem reports (P 0.91–0.93 on the demo
/// superuser's answers), so such replies raise no complaint.
pub fn answers_peer_question(reply: &AnalysedInteraction, parent: &AnalysedInteraction) -> bool {
    reply.interaction.public
        && is_customer(reply)
        && reply.interaction.in_reply_to.as_deref() == Some(parent.interaction.id.as_str())
        && is_customer(parent)
        && parent.interaction.text.contains('?')
        && parent.customer_id.is_some()
        && parent.customer_id != reply.customer_id
}

/// Whether a customer message says the company misled them: the label, on a message that
/// reads as a complaint ([`AnalysedInteraction::may_allege`]).
pub fn alleges_misleading(stored: &AnalysedInteraction) -> bool {
    flagged(stored, "allegation") && stored.may_allege()
}

fn new_flag(
    kind: FlagKind,
    reason: &str,
    cause: &str,
    severity: Severity,
    evidence: &[&AnalysedInteraction],
) -> Flag {
    let first = evidence[0];
    let id = if reason.is_empty() {
        format!("{}:{cause}", kind.as_str())
    } else {
        format!("{}:{reason}:{cause}", kind.as_str())
    };
    Flag {
        id,
        kind,
        reason: reason.to_string(),
        severity,
        customer_id: first.customer_id.clone(),
        conversation_id: Some(first.interaction.conversation_id.clone()),
        channel: Some(first.interaction.channel.as_str().to_string()),
        evidence: evidence.iter().map(|s| s.interaction.id.clone()).collect(),
        excerpt: excerpt(&first.interaction.text),
        public: false,
        raised_at: evidence
            .iter()
            .map(|s| s.interaction.occurred_at)
            .max()
            .unwrap_or(first.interaction.occurred_at),
        status: FlagStatus::Open,
        status_by: None,
        status_at: None,
    }
}

fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 280;
    let mut out: String = text.chars().take(MAX_CHARS).collect();
    if text.chars().count() > MAX_CHARS {
        out.push('…');
    }
    out
}

/// Whether `stored` could give its conversation a flag it did not have: a customer message
/// that meets a rule, or an agent's (or bot's) reply, which may evade an earlier complaint.
/// Conversations of other messages need no second look.
pub fn may_raise(stored: &AnalysedInteraction, rules: &FlagRules) -> bool {
    if !stored.is_authored() {
        return false;
    }
    if !is_customer(stored) {
        return true;
    }
    stored
        .complaint_probability()
        .is_some_and(|p| p >= rules.complaint_threshold)
        || alleges_misleading(stored)
        || flagged(stored, "churn_threat")
}

/// The flags one conversation raises, from all of its stored interactions (any order;
/// vectors alongside, for judging whether a reply answers a complaint).
pub fn conversation_flags(
    conversation: &[(AnalysedInteraction, Vec<f32>)],
    rules: &FlagRules,
) -> Vec<Flag> {
    // Auto-replies and messages without text of their own neither raise nor answer a flag.
    let mut items: Vec<&(AnalysedInteraction, Vec<f32>)> = conversation
        .iter()
        .filter(|(s, _)| s.is_authored())
        .collect();
    items.sort_by(|a, b| {
        (a.0.interaction.occurred_at, &a.0.interaction.id)
            .cmp(&(b.0.interaction.occurred_at, &b.0.interaction.id))
    });
    let Some(first) = items.first() else {
        return Vec::new();
    };
    let cause = first.0.interaction.conversation_id.clone();
    let answers_a_peer = |s: &AnalysedInteraction| {
        items
            .iter()
            .any(|(parent, _)| answers_peer_question(s, parent))
    };
    let complaint_of = |s: &AnalysedInteraction| {
        (is_customer(s) && !answers_a_peer(s))
            .then(|| s.complaint_probability())
            .flatten()
            .filter(|p| *p >= rules.complaint_threshold)
    };
    let mut flags = Vec::new();

    let complaints: Vec<(&AnalysedInteraction, f32)> = items
        .iter()
        .filter_map(|(s, _)| complaint_of(s).map(|p| (s, p)))
        .collect();
    if !complaints.is_empty() {
        let top = complaints.iter().map(|(_, p)| *p).fold(0.0, f32::max);
        let evidence: Vec<&AnalysedInteraction> = complaints.iter().map(|(s, _)| *s).collect();
        let public = evidence.iter().any(|s| s.interaction.public);
        let severity = if public {
            Severity::High
        } else {
            severity_of(top)
        };
        let mut flag = new_flag(FlagKind::Complaint, "", &cause, severity, &evidence);
        flag.public = public;
        flags.push(flag);
    }

    let allegations: Vec<&AnalysedInteraction> = items
        .iter()
        .map(|(s, _)| s)
        .filter(|s| is_customer(s) && alleges_misleading(s))
        .collect();
    if !allegations.is_empty() {
        flags.push(new_flag(
            FlagKind::Honesty,
            "allegation",
            &cause,
            Severity::High,
            &allegations,
        ));
    }

    // The first agent reply after each complaint: evasive if it neither acknowledges
    // (apology, admission, refund) nor answers (close in meaning), or if it is hype.
    let mut evasive = Vec::new();
    for (index, (message, vector)) in items.iter().enumerate() {
        if complaint_of(message).is_none() {
            continue;
        }
        let reply = items[index + 1..]
            .iter()
            .find(|(s, _)| matches!(s.interaction.author.role, Role::Agent | Role::Bot));
        if let Some((reply, reply_vector)) = reply {
            let answers = cosine(vector, reply_vector) >= rules.answer_similarity;
            let hype = flagged(reply, "hype");
            if hype || (!acknowledges(&reply.interaction.text) && !answers) {
                evasive.push(message);
                evasive.push(reply);
            }
        }
    }
    if !evasive.is_empty() {
        let mut seen = BTreeSet::new();
        evasive.retain(|s| seen.insert(s.interaction.id.clone()));
        let customer = evasive[0].customer_id.clone();
        let mut flag = new_flag(
            FlagKind::Honesty,
            "evasive_reply",
            &cause,
            Severity::Medium,
            &evasive,
        );
        flag.customer_id = customer;
        flags.push(flag);
    }

    let threats: Vec<&AnalysedInteraction> = items
        .iter()
        .map(|(s, _)| s)
        .filter(|s| is_customer(s) && flagged(s, "churn_threat"))
        .collect();
    if !threats.is_empty() {
        flags.push(new_flag(
            FlagKind::ChurnRisk,
            "",
            &cause,
            Severity::High,
            &threats,
        ));
    }
    flags
}

/// The superuser flag of a profile, once it has answered enough other customers.
pub fn superuser_flag(
    profile: &CustomerProfile,
    answers: &[&AnalysedInteraction],
    rules: &FlagRules,
) -> Option<Flag> {
    if profile.answers_to_others < rules.superuser_min_answers || answers.is_empty() {
        return None;
    }
    let mut flag = new_flag(
        FlagKind::Superuser,
        "",
        &profile.customer_id,
        Severity::Low,
        answers,
    );
    flag.conversation_id = None;
    flag.customer_id = Some(profile.customer_id.clone());
    Some(flag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Message, stored};

    const RULES: FlagRules = FlagRules {
        complaint_threshold: 0.8,
        answer_similarity: 0.85,
        superuser_min_answers: 5,
    };

    #[test]
    fn auto_replies_and_messages_without_their_own_text_raise_no_flag() {
        for (key, value) in [("auto_reply", true), ("own_text", false)] {
            let mut automatic = complaint(true);
            automatic
                .interaction
                .attributes
                .insert(key.into(), serde_json::Value::from(value));
            assert!(!automatic.is_authored(), "{key}");
            assert!(!may_raise(&automatic, &RULES), "{key}");
            assert!(
                conversation(vec![(automatic, vec![1.0])]).is_empty(),
                "{key}"
            );
        }
        // The same complaint, written by the customer, is flagged.
        assert!(complaint(true).is_authored());
        assert!(!conversation(vec![(complaint(true), vec![1.0])]).is_empty());
    }

    #[test]
    fn working_a_flag_keeps_who_and_when_and_never_its_evidence() {
        let mut flag = conversation(vec![(complaint(false), vec![1.0])]).remove(0);
        let evidence = flag.evidence.clone();
        let at = time::macros::datetime!(2026-03-02 10:00 UTC);
        flag.set_status(FlagStatus::Resolved, "mette", at);
        assert_eq!(flag.status, FlagStatus::Resolved);
        assert_eq!(flag.status_by.as_deref(), Some("mette"));
        assert_eq!(flag.status_at, Some(at));
        // Reopening is allowed: a person's call.
        flag.set_status(FlagStatus::Open, "jonas", at + time::Duration::hours(1));
        assert_eq!(
            (flag.status, flag.status_by.as_deref()),
            (FlagStatus::Open, Some("jonas"))
        );
        assert_eq!(flag.evidence, evidence);
    }

    fn conversation(messages: Vec<(AnalysedInteraction, Vec<f32>)>) -> Vec<Flag> {
        conversation_flags(&messages, &RULES)
    }

    fn complaint(public: bool) -> AnalysedInteraction {
        stored(Message {
            id: "c1",
            text: "I was charged twice, refund me now",
            complaint: 0.97,
            public,
            ..Default::default()
        })
    }

    fn reply(text: &str, labels: &'static [&'static str]) -> AnalysedInteraction {
        stored(Message {
            id: "r1",
            role: Role::Agent,
            minute: 10,
            text,
            labels,
            ..Default::default()
        })
    }

    fn kinds(flags: &[Flag]) -> Vec<(FlagKind, &str)> {
        flags.iter().map(|f| (f.kind, f.reason.as_str())).collect()
    }

    #[test]
    fn hype_instead_of_an_answer_is_an_evasive_reply() {
        let flags = conversation(vec![
            (complaint(false), vec![1.0, 0.0]),
            (
                reply("We offer the best prices in Scandinavia!", &["hype"]),
                vec![0.0, 1.0],
            ),
        ]);
        assert_eq!(
            kinds(&flags),
            [
                (FlagKind::Complaint, ""),
                (FlagKind::Honesty, "evasive_reply")
            ]
        );
        let evasive = &flags[1];
        assert_eq!(evasive.id, "honesty:evasive_reply:c");
        assert_eq!(evasive.evidence, ["c1", "r1"]);
        assert_eq!(evasive.customer_id.as_deref(), Some("cust-1"));
        assert_eq!(flags[0].severity, Severity::High);
    }

    #[test]
    fn an_apology_or_an_answer_is_not_evasive() {
        for (text, vector) in [
            ("Det beklager vi, pengene er sendt retur.", vec![0.0, 1.0]),
            ("The second payment was reversed today.", vec![0.9, 0.1]),
        ] {
            let flags = conversation(vec![
                (complaint(false), vec![1.0, 0.0]),
                (reply(text, &[]), vector),
            ]);
            assert_eq!(kinds(&flags), [(FlagKind::Complaint, "")], "{text}");
        }
        assert!(acknowledges("Vi ber om ursäkt för dröjsmålet"));
        assert!(!acknowledges("Check out our autumn deals"));
    }

    #[test]
    fn a_public_complaint_is_one_high_flag_and_ids_are_stable() {
        let private = stored(Message {
            id: "c1",
            text: "I was charged twice, refund me now",
            complaint: 0.86,
            ..Default::default()
        });
        let flags = conversation(vec![(private.clone(), vec![1.0, 0.0])]);
        assert_eq!(kinds(&flags), [(FlagKind::Complaint, "")]);
        assert_eq!(flags[0].severity, Severity::Medium);
        assert!(!flags[0].public && !flags[0].is(FlagKind::PublicEscalation));

        let mut public = private;
        public.interaction.public = true;
        let messages = vec![(public, vec![1.0, 0.0])];
        let first = conversation(messages.clone());
        assert_eq!(
            kinds(&first),
            [(FlagKind::Complaint, "")],
            "one flag, not two"
        );
        assert_eq!(first[0].severity, Severity::High);
        assert!(first[0].public);
        assert!(first[0].is(FlagKind::PublicEscalation) && first[0].is(FlagKind::Complaint));
        assert!(!first[0].is(FlagKind::ChurnRisk));
        assert_eq!(first, conversation(messages), "same cause, same flags");
        assert_eq!(first[0].id, "complaint:c");
    }

    #[test]
    fn allegations_and_churn_threats_raise_their_flags_once_per_conversation() {
        let message = |id: &'static str, minute| {
            (
                stored(Message {
                    id,
                    minute,
                    labels: &["allegation", "churn_threat"],
                    complaint: 0.7,
                    ..Default::default()
                }),
                vec![1.0],
            )
        };
        let flags = conversation(vec![message("a", 0), message("b", 5)]);
        assert_eq!(
            kinds(&flags),
            [(FlagKind::Honesty, "allegation"), (FlagKind::ChurnRisk, "")]
        );
        assert_eq!(flags[0].evidence, ["a", "b"]);
        // An agent cannot allege or threaten to leave.
        let agent = stored(Message {
            role: Role::Agent,
            labels: &["allegation", "churn_threat"],
            ..Default::default()
        });
        assert!(conversation(vec![(agent, vec![1.0])]).is_empty());
    }

    #[test]
    fn an_allegation_needs_a_message_that_reads_as_a_complaint() {
        let message = |complaint| {
            stored(Message {
                text: "Great, I'll take the R3 then. Is shipping free?",
                labels: &["allegation"],
                complaint,
                ..Default::default()
            })
        };
        assert!(conversation(vec![(message(0.34), vec![1.0])]).is_empty());
        assert_eq!(
            kinds(&conversation(vec![(message(0.6), vec![1.0])])),
            [(FlagKind::Honesty, "allegation")]
        );
    }

    #[test]
    fn answering_another_customers_question_is_help_not_a_complaint() {
        let answer = |parent_text: &'static str| {
            let parent = stored(Message {
                id: "q",
                customer: "cust-asker",
                text: parent_text,
                public: true,
                ..Default::default()
            });
            let answer = stored(Message {
                id: "a",
                minute: 5,
                customer: "cust-helper",
                text: "Yes, since firmware 4.2. Update first under Settings > Support.",
                complaint: 0.93,
                public: true,
                in_reply_to: Some("q"),
                ..Default::default()
            });
            conversation(vec![(parent, vec![1.0]), (answer, vec![1.0])])
        };
        assert!(answer("Does the Polaris 55 do AirPlay?").is_empty());
        // A reply to a statement, not a question, is judged like any other message.
        assert_eq!(
            kinds(&answer("My Polaris 55 arrived today.")),
            [(FlagKind::Complaint, "")]
        );
    }
}
