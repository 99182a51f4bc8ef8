//! The alert e-mail: one flag, or a digest of several, in English or Danish, as plain text
//! that reads well in any client. It names the customer, the channel and what raised the
//! flag (the stored excerpt, redacted before it was stored, and only if the rule includes
//! it), and links to the customer's page on the dashboard.

use std::fmt::Write;

use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Mailboxes};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::flags::{Flag, FlagKind};

/// Longest evidence excerpt quoted in a mail, in characters.
const MAX_EXCERPT_CHARS: usize = 400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    English,
    Danish,
}

impl Language {
    pub fn parse(code: &str) -> Option<Language> {
        match code {
            "en" => Some(Language::English),
            "da" => Some(Language::Danish),
            _ => None,
        }
    }
}

/// The words of a mail in one language.
struct Words {
    kind: fn(FlagKind) -> &'static str,
    value: fn(&str) -> &str,
    raised: &'static str,
    customer: &'static str,
    channel: &'static str,
    at: &'static str,
    reason: &'static str,
    evidence: &'static str,
    open_customer: &'static str,
    flag_queue: &'static str,
    digest_subject: &'static str,
    digest_intro: &'static str,
    footer: &'static str,
    unknown: &'static str,
    /// Said beside the severity of a flag raised from a public post.
    public: &'static str,
}

const ENGLISH: Words = Words {
    kind: |kind| match kind {
        FlagKind::Complaint => "Complaint",
        FlagKind::Honesty => "Honesty",
        FlagKind::ChurnRisk => "Churn risk",
        FlagKind::PublicEscalation => "Public escalation",
        FlagKind::Superuser => "Superuser",
    },
    value: |value| match value {
        "evasive_reply" => "evasive reply",
        other => other,
    },
    raised: "flag raised",
    customer: "Customer",
    channel: "Channel",
    at: "Raised",
    reason: "Reason",
    evidence: "What they wrote (redacted)",
    open_customer: "Open the customer",
    flag_queue: "Flag queue",
    digest_subject: "flags",
    digest_intro: "Flags raised since the last mail",
    footer: "Sent by Rapport for the alert rule",
    unknown: "unknown",
    public: "public",
};

const DANISH: Words = Words {
    kind: |kind| match kind {
        FlagKind::Complaint => "Klage",
        FlagKind::Honesty => "Ærlighed",
        FlagKind::ChurnRisk => "Risiko for at miste kunden",
        FlagKind::PublicEscalation => "Offentlig eskalering",
        FlagKind::Superuser => "Superbruger",
    },
    value: |value| match value {
        "high" => "høj",
        "medium" => "middel",
        "low" => "lav",
        "email" => "e-mail",
        "call" => "opkald",
        "social" => "sociale medier",
        "allegation" => "beskyldning",
        "evasive_reply" => "undvigende svar",
        other => other,
    },
    raised: "flag rejst",
    customer: "Kunde",
    channel: "Kanal",
    at: "Rejst",
    reason: "Årsag",
    evidence: "Hvad kunden skrev (anonymiseret)",
    open_customer: "Åbn kunden",
    flag_queue: "Flagkø",
    digest_subject: "flag",
    digest_intro: "Flag rejst siden sidste mail",
    footer: "Sendt af Rapport for alarmreglen",
    unknown: "ukendt",
    public: "offentlig",
};

/// Everything about a mail but its flags.
pub struct Envelope<'a> {
    pub from: &'a Mailbox,
    pub to: &'a [Mailbox],
    /// Stable for the same alerts, so a mail sent again after a crash can be recognised.
    pub message_id: String,
    pub rule: &'a str,
    pub language: Language,
    pub include_excerpt: bool,
    /// Ends with `/`.
    pub dashboard_url: &'a str,
}

/// The mail for `flags` (one: an alert; several: a digest).
pub fn compose(envelope: &Envelope, flags: &[&Flag]) -> Result<Message, lettre::error::Error> {
    let words = match envelope.language {
        Language::English => &ENGLISH,
        Language::Danish => &DANISH,
    };
    let subject = match flags {
        [flag] => format!(
            "[Rapport] {} ({}): {} {}",
            (words.kind)(flag.kind),
            severity(flag, words),
            flag.customer_id.as_deref().unwrap_or(words.unknown),
            flag.channel
                .as_deref()
                .map(|c| format!("· {}", (words.value)(c)))
                .unwrap_or_default(),
        )
        .trim_end()
        .to_string(),
        _ => format!(
            "[Rapport] {} {}: {}",
            flags.len(),
            words.digest_subject,
            kind_counts(flags, words)
        ),
    };
    let mut body = String::new();
    if flags.len() > 1 {
        let _ = writeln!(body, "{} ({}):\n", words.digest_intro, flags.len());
    }
    for (n, flag) in flags.iter().enumerate() {
        if flags.len() > 1 {
            let _ = writeln!(body, "{}. ", n + 1);
        }
        describe(&mut body, flag, words, envelope);
        body.push('\n');
    }
    let _ = writeln!(
        body,
        "{}: {}#/flags?status=open\n\n-- \n{} \"{}\".",
        words.flag_queue, envelope.dashboard_url, words.footer, envelope.rule
    );
    let mut to = Mailboxes::new();
    for recipient in envelope.to {
        to.push(recipient.clone());
    }
    Message::builder()
        .from(envelope.from.clone())
        .mailbox(lettre::message::header::To::from(to))
        .subject(subject)
        .message_id(Some(envelope.message_id.clone()))
        .header(ContentType::TEXT_PLAIN)
        .body(body)
}

/// "high", or "high, public" for a flag raised from a public post.
fn severity(flag: &Flag, words: &Words) -> String {
    let severity = (words.value)(flag.severity.as_str());
    if flag.public {
        format!("{severity}, {}", words.public)
    } else {
        severity.to_string()
    }
}

fn describe(body: &mut String, flag: &Flag, words: &Words, envelope: &Envelope) {
    let _ = writeln!(
        body,
        "{} {} ({})",
        (words.kind)(flag.kind),
        words.raised,
        severity(flag, words)
    );
    let customer = flag.customer_id.as_deref().unwrap_or(words.unknown);
    let _ = writeln!(body, "  {}: {customer}", words.customer);
    if let Some(channel) = &flag.channel {
        let _ = writeln!(body, "  {}: {}", words.channel, (words.value)(channel));
    }
    let _ = writeln!(body, "  {}: {}", words.at, timestamp(flag.raised_at));
    if !flag.reason.is_empty() {
        let _ = writeln!(body, "  {}: {}", words.reason, (words.value)(&flag.reason));
    }
    if envelope.include_excerpt && !flag.excerpt.is_empty() {
        let _ = writeln!(
            body,
            "  {}:\n    \"{}\"",
            words.evidence,
            shortened(&flag.excerpt)
        );
    }
    if let Some(id) = &flag.customer_id {
        let _ = writeln!(
            body,
            "  {}: {}#/customer/{}",
            words.open_customer,
            envelope.dashboard_url,
            url_escape(id)
        );
    }
}

/// "3 complaint, 1 churn risk", in the kinds' order.
fn kind_counts(flags: &[&Flag], words: &Words) -> String {
    FlagKind::ALL
        .into_iter()
        .filter_map(|kind| {
            let n = flags.iter().filter(|f| f.kind == kind).count();
            (n > 0).then(|| format!("{n} {}", (words.kind)(kind).to_lowercase()))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn timestamp(at: OffsetDateTime) -> String {
    at.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute] UTC"
    ))
    .unwrap_or_default()
}

/// One line, at most [`MAX_EXCERPT_CHARS`].
fn shortened(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(MAX_EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// Percent-encodes what a URL fragment segment must not hold raw.
fn url_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::{FlagStatus, Severity};
    use std::str::FromStr;

    fn flag(kind: FlagKind, customer: &str, excerpt: &str) -> Flag {
        Flag {
            id: format!("{}:conv-{customer}", kind.as_str()),
            kind,
            reason: String::new(),
            severity: Severity::High,
            customer_id: Some(customer.into()),
            conversation_id: Some(format!("conv-{customer}")),
            channel: Some("email".into()),
            evidence: vec!["i-1".into()],
            excerpt: excerpt.into(),
            public: false,
            raised_at: time::macros::datetime!(2026-11-29 10:15 UTC),
            status: FlagStatus::Open,
            status_by: None,
            status_at: None,
        }
    }

    /// Headers and decoded body, as a mail client shows them.
    fn text_of(message: &Message) -> String {
        let raw = message.formatted();
        let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
        let headers =
            String::from_utf8_lossy(&raw[..parsed.root_part().raw_body_offset() as usize]);
        format!(
            "{headers}Subject: {}\n{}",
            parsed.subject().unwrap_or_default(),
            parsed.body_text(0).unwrap_or_default()
        )
    }

    #[test]
    fn an_alert_names_customer_channel_evidence_and_links_the_customer() {
        let from = Mailbox::from_str("Rapport <rapport@example.dk>").unwrap();
        let to = [Mailbox::from_str("service@example.dk").unwrap()];
        let mut envelope = Envelope {
            from: &from,
            to: &to,
            message_id: "<a1@example.dk>".into(),
            rule: "service",
            language: Language::English,
            include_excerpt: true,
            dashboard_url: "https://rapport.example.dk/",
        };
        let complaint = flag(
            FlagKind::Complaint,
            "cust-0001",
            "Third broken delivery. Call me on [phone].",
        );
        let text = text_of(&compose(&envelope, &[&complaint]).unwrap());
        for expected in [
            "Subject: [Rapport] Complaint (high): cust-0001 · email",
            "Customer: cust-0001",
            "Channel: email",
            "Third broken delivery. Call me on [phone].",
            "https://rapport.example.dk/#/customer/cust-0001",
            "Message-ID: <a1@example.dk>",
            "To: service@example.dk",
        ] {
            assert!(text.contains(expected), "{expected:?} missing:\n{text}");
        }

        envelope.include_excerpt = false;
        envelope.language = Language::Danish;
        let churn = flag(FlagKind::ChurnRisk, "cust 2", "I will leave");
        let text = text_of(&compose(&envelope, &[&complaint, &churn]).unwrap());
        assert!(!text.contains("Third broken"), "excerpts left out:\n{text}");
        assert!(text.contains("#/customer/cust%202"), "{text}");
        assert!(
            text.contains("Subject: [Rapport] 2 flag: 1 klage, 1 risiko for at miste kunden"),
            "{text}"
        );
        assert!(text.contains("Kunde: cust-0001"), "{text}");
        assert!(text.contains("Flag rejst siden sidste mail (2)"), "{text}");
    }

    #[test]
    fn long_excerpts_are_cut_to_one_line() {
        let long = "word ".repeat(200);
        let cut = shortened(&format!("line one\n{long}"));
        assert!(!cut.contains('\n'));
        assert_eq!(cut.chars().count(), MAX_EXCERPT_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
