//! Dead letters: input that could not be processed, kept with its reason on
//! `rapport.dlq.<stage>` so nothing vanishes (DESIGN.md §4).

use async_nats::HeaderMap;
use bytes::Bytes;

use crate::subjects;

/// Header names on every dead letter.
pub const REASON: &str = "Rapport-Reason";
pub const STAGE: &str = "Rapport-Stage";
pub const CONNECTOR: &str = "Rapport-Connector";
pub const SOURCE: &str = "Rapport-Source";
pub const OFFSET: &str = "Rapport-Offset";
pub const ORIGINAL_SUBJECT: &str = "Rapport-Subject";
pub const RAW_BYTES: &str = "Rapport-Raw-Bytes";
pub const TRUNCATED: &str = "Rapport-Truncated";

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
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
    #[serde(skip)]
    pub raw: Bytes,
}

impl DeadLetter {
    /// The letter [`DeadLetter::to_message`] wrote, read back from its headers and payload
    /// (`raw` is the kept part of the input).
    pub fn from_message(headers: &HeaderMap, payload: Bytes) -> DeadLetter {
        let header = |name: &str| {
            headers
                .get(name)
                .map(|v| v.as_str().to_string())
                .unwrap_or_default()
        };
        DeadLetter {
            stage: header(STAGE),
            reason: header(REASON),
            connector: header(CONNECTOR),
            source: header(SOURCE),
            offset: header(OFFSET).parse().ok(),
            original_subject: Some(header(ORIGINAL_SUBJECT)).filter(|s| !s.is_empty()),
            raw: payload,
        }
    }

    pub fn subject(&self) -> String {
        subjects::dead_letter(&self.stage)
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

/// A dead letter as kept in the DLQ stream.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredLetter {
    /// Its sequence in the DLQ stream: what `rapport dlq replay` deletes once replayed.
    pub sequence: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
    #[serde(flatten)]
    pub letter: DeadLetter,
    /// Size of the original input; `letter.raw` holds at most `ingest.dlq_max_raw_bytes` of it.
    pub raw_bytes: usize,
    pub truncated: bool,
}

/// The dead letters of `stage` (all stages: `None`), oldest first.
pub async fn list(
    jetstream: &async_nats::jetstream::Context,
    stage: Option<&str>,
) -> Result<Vec<StoredLetter>, crate::BusError> {
    let failed = |e: &dyn std::fmt::Display| crate::BusError::Publish {
        subject: crate::bus::DLQ_STREAM.into(),
        message: e.to_string(),
    };
    let mut stream = jetstream
        .get_stream(crate::bus::DLQ_STREAM)
        .await
        .map_err(|e| failed(&e))?;
    let state = stream.info().await.map_err(|e| failed(&e))?.state.clone();
    let mut letters = Vec::new();
    if state.messages == 0 {
        return Ok(letters);
    }
    let wanted = stage.map(subjects::dead_letter);
    for sequence in state.first_sequence..=state.last_sequence {
        // Deleted sequences (replayed letters) leave gaps.
        let Ok(message) = stream.get_raw_message(sequence).await else {
            continue;
        };
        if wanted
            .as_deref()
            .is_some_and(|w| message.subject.as_str() != w)
        {
            continue;
        }
        let header = |name| message.headers.get(name).map(|v| v.as_str().to_string());
        letters.push(StoredLetter {
            sequence,
            at: message.time,
            raw_bytes: header(RAW_BYTES)
                .and_then(|n| n.parse().ok())
                .unwrap_or(message.payload.len()),
            truncated: header(TRUNCATED).as_deref() == Some("true"),
            letter: DeadLetter::from_message(&message.headers, message.payload.clone()),
        });
    }
    Ok(letters)
}

/// What became of one dead letter on replay.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Replayed {
    pub sequence: u64,
    pub stage: String,
    pub source: String,
    /// `replayed` (published again, letter deleted) or `kept` (it still fails).
    pub outcome: &'static str,
    /// Why it was kept; interactions published when replayed.
    pub detail: String,
}

/// Reads each letter again with the current code and publishes what now parses: an
/// `analysis` letter's record goes back onto its subject for the workers; an `ingest`
/// letter's unit is parsed again (its format detected from its source name and bytes,
/// with its connector's settings). A replayed letter is deleted from the DLQ only after
/// JetStream stored what it became; one that still fails is kept, with its reason now.
pub async fn replay(
    bus: &crate::Bus,
    letters: &[StoredLetter],
    templates: &dyn Fn(&str) -> rapport_connectors::ParseContext,
) -> Result<Vec<Replayed>, crate::BusError> {
    let stream = bus
        .jetstream
        .get_stream(crate::bus::DLQ_STREAM)
        .await
        .map_err(|e| crate::BusError::Publish {
            subject: crate::bus::DLQ_STREAM.into(),
            message: e.to_string(),
        })?;
    let mut report = Vec::with_capacity(letters.len());
    for stored in letters {
        let letter = &stored.letter;
        let kept = |detail: String| Replayed {
            sequence: stored.sequence,
            stage: letter.stage.clone(),
            source: letter.source.clone(),
            outcome: "kept",
            detail,
        };
        if stored.truncated {
            report.push(kept(format!(
                "only {} of its {} bytes were kept (ingest.dlq_max_raw_bytes): re-read the source",
                letter.raw.len(),
                stored.raw_bytes
            )));
            continue;
        }
        let interactions = match letter.stage.as_str() {
            "analysis" => serde_json::from_slice::<rapport_connectors::Interaction>(&letter.raw)
                .map_err(|e| format!("still not an Interaction record: {e}"))
                .and_then(|i| i.check().map(|()| vec![i])),
            "ingest" => reparse(letter, templates),
            other => Err(format!("no replay for stage {other:?}")),
        };
        let interactions = match interactions {
            Ok(found) if !found.is_empty() => found,
            Ok(_) => {
                report.push(kept("parses to no interaction".into()));
                continue;
            }
            Err(reason) => {
                report.push(kept(reason));
                continue;
            }
        };
        let mut publisher = bus.publisher();
        for interaction in &interactions {
            publisher.publish(interaction).await?;
        }
        publisher.flush().await?;
        stream
            .delete_message(stored.sequence)
            .await
            .map_err(|e| crate::BusError::Publish {
                subject: crate::bus::DLQ_STREAM.into(),
                message: format!("replayed, but not deleted from the DLQ: {e}"),
            })?;
        report.push(Replayed {
            sequence: stored.sequence,
            stage: letter.stage.clone(),
            source: letter.source.clone(),
            outcome: "replayed",
            detail: format!("{} interaction(s) published", interactions.len()),
        });
    }
    Ok(report)
}

fn reparse(
    letter: &DeadLetter,
    templates: &dyn Fn(&str) -> rapport_connectors::ParseContext,
) -> Result<Vec<rapport_connectors::Interaction>, String> {
    let path = std::path::Path::new(&letter.source);
    let format = rapport_connectors::detect(path, &letter.raw)
        .ok_or_else(|| "its format is not recognisable from the unit alone".to_string())?;
    let mut ctx = templates(&letter.connector);
    ctx.source = letter.source.clone();
    let mut found = Vec::new();
    for unit in format.parse(&letter.raw, &ctx) {
        found.extend(unit.outcome.map_err(|e| format!("still fails: {e}"))?);
    }
    Ok(found)
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
        // Read back, it is the same letter but for the reason made one line and the
        // payload cut at the cap.
        let read = DeadLetter::from_message(&headers, payload);
        assert_eq!(read.reason, "truncated JSON: EOF while parsing");
        assert_eq!(
            (read.stage.as_str(), read.source.as_str(), read.offset),
            ("ingest", "/x.ndjson", Some(42))
        );
        assert_eq!(read.raw.len(), 10);
    }
}
