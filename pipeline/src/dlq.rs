//! Dead letters: input that could not be processed, kept with its reason on
//! `rapport.dlq.<stage>` so nothing vanishes (DESIGN.md §4).

use async_nats::HeaderMap;
use bytes::Bytes;

/// Header names on every dead letter.
pub const REASON: &str = "Rapport-Reason";
pub const STAGE: &str = "Rapport-Stage";
pub const CONNECTOR: &str = "Rapport-Connector";
pub const SOURCE: &str = "Rapport-Source";
pub const OFFSET: &str = "Rapport-Offset";
pub const ORIGINAL_SUBJECT: &str = "Rapport-Subject";
pub const RAW_BYTES: &str = "Rapport-Raw-Bytes";
pub const TRUNCATED: &str = "Rapport-Truncated";

#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// `ingest`, `analysis`, …: the last part of the subject.
    pub stage: String,
    pub reason: String,
    pub connector: String,
    /// File path, URL or webhook route the input came from.
    pub source: String,
    /// Byte offset of the rejected unit in its source, where that means something.
    pub offset: Option<u64>,
    /// The subject the input was on, for messages that were already on the bus.
    pub original_subject: Option<String>,
    pub raw: Bytes,
}

impl DeadLetter {
    pub fn subject(&self) -> String {
        format!("rapport.dlq.{}", self.stage)
    }

    /// Headers and a payload of at most `max_raw` bytes of the original input. The message
    /// id makes re-reading the same bad input add no second dead letter.
    pub fn to_message(&self, max_raw: usize) -> (String, HeaderMap, Bytes) {
        let mut headers = HeaderMap::new();
        headers.insert(REASON, header_safe(&self.reason).as_str());
        headers.insert(STAGE, header_safe(&self.stage).as_str());
        headers.insert(CONNECTOR, header_safe(&self.connector).as_str());
        headers.insert(SOURCE, header_safe(&self.source).as_str());
        if let Some(offset) = self.offset {
            headers.insert(OFFSET, offset.to_string().as_str());
        }
        if let Some(subject) = &self.original_subject {
            headers.insert(ORIGINAL_SUBJECT, header_safe(subject).as_str());
        }
        headers.insert(RAW_BYTES, self.raw.len().to_string().as_str());
        let payload = if self.raw.len() > max_raw {
            headers.insert(TRUNCATED, "true");
            self.raw.slice(..max_raw)
        } else {
            self.raw.clone()
        };
        let identity = format!(
            "{}\0{}\0{}\0{}",
            self.stage,
            self.source,
            self.offset.unwrap_or(0),
            rapport_connectors::ids::content_hash(&self.raw)
        );
        headers.insert(
            "Nats-Msg-Id",
            format!(
                "dlq:{}",
                rapport_connectors::ids::content_hash(identity.as_bytes())
            )
            .as_str(),
        );
        (self.subject(), headers, payload)
    }
}

/// Header values are one line of visible text; long reasons are cut, not dropped.
fn header_safe(value: &str) -> String {
    let one_line: String = value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match one_line.char_indices().nth(1000) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_are_capped_one_line_and_stable() {
        let letter = DeadLetter {
            stage: "ingest".into(),
            reason: "truncated JSON:\nEOF while parsing".into(),
            connector: "c".into(),
            source: "/x.ndjson".into(),
            offset: Some(42),
            original_subject: None,
            raw: Bytes::from(vec![b'x'; 100]),
        };
        let (subject, headers, payload) = letter.to_message(10);
        assert_eq!(subject, "rapport.dlq.ingest");
        assert_eq!(payload.len(), 10);
        assert_eq!(headers.get(TRUNCATED).unwrap().as_str(), "true");
        assert_eq!(headers.get(RAW_BYTES).unwrap().as_str(), "100");
        assert_eq!(
            headers.get(REASON).unwrap().as_str(),
            "truncated JSON: EOF while parsing"
        );
        let (_, again, _) = letter.to_message(10);
        assert_eq!(headers.get("Nats-Msg-Id"), again.get("Nats-Msg-Id"));
    }
}
