//! Every name Rapport gives on the bus, in one place (DESIGN.md §4): the streams and the
//! subjects they hold, the consumers and the KV buckets. A subject is built only here.

use rapport_connectors::Interaction;

use crate::flags::FlagKind;

/// Every interaction, on `rapport.interactions.<channel>.<connector>`.
pub const INTERACTIONS_STREAM: &str = "RAPPORT_INTERACTIONS";
pub const ALL_INTERACTIONS: &str = "rapport.interactions.>";
/// Every raised flag, on `rapport.flags.<kind>`.
pub const FLAGS_STREAM: &str = "RAPPORT_FLAGS";
pub const ALL_FLAGS: &str = "rapport.flags.>";
/// Inputs that failed, on `rapport.dlq.<stage>`.
pub const DLQ_STREAM: &str = "RAPPORT_DLQ";
pub const ALL_DEAD_LETTERS: &str = "rapport.dlq.>";

/// The workers' durable consumer of the interactions stream.
pub const ANALYSIS_CONSUMER: &str = "analysis";
/// The alerter's durable consumer of the flags stream.
pub const ALERTER_CONSUMER: &str = "alerter";

pub const CHECKPOINTS_BUCKET: &str = "rapport-checkpoints";
pub const IDENTITIES_BUCKET: &str = "rapport-identities";
pub const ALERT_OUTBOX_BUCKET: &str = "rapport-alert-outbox";
pub const ALERTS_SENT_BUCKET: &str = "rapport-alerts-sent";

/// `rapport.interactions.<channel>.<connector>`: where a record is published.
pub fn interaction(interaction: &Interaction) -> String {
    format!(
        "rapport.interactions.{}.{}",
        interaction.channel.as_str(),
        token(&interaction.connector)
    )
}

/// `rapport.flags.<kind>`
pub fn flag(kind: FlagKind) -> String {
    format!("rapport.flags.{}", kind.as_str())
}

/// `rapport.dlq.<stage>`
pub fn dead_letter(stage: &str) -> String {
    format!("rapport.dlq.{stage}")
}

/// Makes a connector name safe as one NATS subject token (no dots, spaces or wildcards).
pub fn token(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '.' | ' ' | '*' | '>' | '\t' | '\r' | '\n' => '_',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subject_falls_under_its_stream() {
        let mut record = rapport_domain::testing::stored(Default::default()).interaction;
        record.connector = "mail.eu support".into();
        let subject = interaction(&record);
        assert_eq!(subject, "rapport.interactions.email.mail_eu_support");
        for (subject, all) in [
            (subject, ALL_INTERACTIONS),
            (flag(FlagKind::ChurnRisk), ALL_FLAGS),
            (dead_letter("ingest"), ALL_DEAD_LETTERS),
        ] {
            assert!(
                subject.starts_with(all.trim_end_matches('>')),
                "{subject} under {all}"
            );
        }
    }
}
