//! Deepgram pre-recorded responses: `results.utterances[]` when the request asked for them,
//! else diarised `words[]` grouped by speaker, else each channel's transcript as one turn.

use serde::Deserialize;

use super::turns::{self, Call, Piece, lenient_string};
use crate::error::ParseError;
use crate::record::Interaction;
use crate::unit::ParseContext;

#[derive(Debug, Deserialize)]
struct Response {
    metadata: Option<Metadata>,
    results: Option<Results>,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    #[serde(default, deserialize_with = "lenient_string")]
    request_id: Option<String>,
    created: Option<String>,
    channels: Option<u32>,
    /// Deepgram echoes the request's `extra` parameters here; telephony integrations pass
    /// the caller's number as one of them.
    #[serde(default)]
    extra: serde_json::Map<String, serde_json::Value>,
}

/// `extra` keys that carry the caller's phone number.
const CALLER_KEYS: [&str; 4] = ["caller_number", "caller", "from", "phone"];

impl Metadata {
    fn caller_ids(&self) -> Vec<String> {
        CALLER_KEYS
            .iter()
            .filter_map(|key| self.extra.get(*key)?.as_str())
            .filter_map(crate::json_input::phone_id)
            .take(1)
            .collect()
    }
}

#[derive(Debug, Deserialize)]
struct Results {
    #[serde(default)]
    channels: Vec<ChannelResult>,
    utterances: Option<Vec<Utterance>>,
}

#[derive(Debug, Deserialize)]
struct ChannelResult {
    #[serde(default)]
    alternatives: Vec<Alternative>,
    detected_language: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Alternative {
    #[serde(default)]
    transcript: String,
    confidence: Option<f64>,
    #[serde(default)]
    words: Vec<Word>,
}

#[derive(Debug, Deserialize)]
struct Word {
    #[serde(default)]
    word: String,
    punctuated_word: Option<String>,
    start: Option<f64>,
    end: Option<f64>,
    confidence: Option<f64>,
    speaker: Option<u32>,
}

impl Word {
    fn text(&self) -> &str {
        self.punctuated_word.as_deref().unwrap_or(&self.word)
    }
}

#[derive(Debug, Deserialize)]
struct Utterance {
    start: Option<f64>,
    end: Option<f64>,
    confidence: Option<f64>,
    channel: Option<u32>,
    #[serde(default)]
    transcript: String,
    speaker: Option<u32>,
    #[serde(default)]
    words: Vec<Word>,
}

pub fn parse(input: &[u8], ctx: &ParseContext) -> Result<Vec<Interaction>, ParseError> {
    let response: Response = crate::error::json_document(input)?;
    let results = response.results.ok_or_else(|| {
        ParseError::new("unexpected JSON shape: a Deepgram response needs `results`")
    })?;
    let metadata = response.metadata;
    let multichannel =
        metadata.as_ref().and_then(|m| m.channels).unwrap_or(1) > 1 || results.channels.len() > 1;
    let call = Call {
        id: metadata.as_ref().and_then(|m| m.request_id.clone()),
        start: metadata
            .as_ref()
            .and_then(|m| m.created.as_deref())
            .and_then(crate::text::parse_timestamp),
        language: results
            .channels
            .iter()
            .find_map(|c| c.detected_language.clone()),
        source_format: "deepgram",
        caller_ids: metadata
            .as_ref()
            .map(Metadata::caller_ids)
            .unwrap_or_default(),
    };

    let pieces = match results.utterances.as_deref() {
        Some(utterances) if !utterances.is_empty() => utterances
            .iter()
            .map(|u| utterance_piece(u, multichannel, ctx))
            .collect(),
        _ => channel_pieces(&results.channels, multichannel, ctx),
    };
    turns::build(
        input,
        ctx,
        call,
        pieces,
        "Deepgram response (no utterances, words or transcript)",
    )
}

/// `Speaker 0`; with several audio channels `Channel 1` or `Channel 1 Speaker 0`.
fn label(channel: u32, speaker: Option<u32>, multichannel: bool) -> Option<String> {
    match (multichannel, speaker) {
        (false, Some(s)) => Some(format!("Speaker {s}")),
        (true, Some(s)) => Some(format!("Channel {channel} Speaker {s}")),
        (true, None) => Some(format!("Channel {channel}")),
        (false, None) => None,
    }
}

/// A configured speaker map may name Deepgram speakers `Speaker 0` or just `0`.
fn piece(
    label: Option<String>,
    speaker: Option<u32>,
    ctx: &ParseContext,
    text: &str,
    start: f64,
    end: Option<f64>,
) -> Piece {
    let role = match (&label, speaker) {
        (Some(l), Some(s)) if ctx.mapped_role(l).is_none() => ctx.mapped_role(&s.to_string()),
        _ => None,
    };
    let mut piece = Piece::new(label, text, start, end);
    piece.role = role;
    piece
}

fn utterance_piece(u: &Utterance, multichannel: bool, ctx: &ParseContext) -> Piece {
    let channel = u.channel.unwrap_or(0);
    let label = label(channel, u.speaker, multichannel);
    let mut p = piece(
        label,
        u.speaker,
        ctx,
        &u.transcript,
        u.start.unwrap_or(0.0),
        u.end,
    );
    if u.words.iter().any(|w| w.confidence.is_some()) {
        u.words.iter().for_each(|w| p.add_confidence(w.confidence));
    } else {
        p.add_confidence(u.confidence);
    }
    p
}

fn channel_pieces(
    channels: &[ChannelResult],
    multichannel: bool,
    ctx: &ParseContext,
) -> Vec<Piece> {
    let diarised = multichannel
        || channels
            .iter()
            .filter_map(|c| c.alternatives.first())
            .any(|a| a.words.iter().any(|w| w.speaker.is_some()));
    if !diarised {
        // One turn per channel: the whole transcript, timed by its first and last word.
        return channels
            .iter()
            .filter_map(|c| c.alternatives.first())
            .map(|alt| {
                let text = if alt.transcript.trim().is_empty() {
                    alt.words
                        .iter()
                        .map(Word::text)
                        .collect::<Vec<_>>()
                        .join(" ")
                } else {
                    alt.transcript.clone()
                };
                let start = alt.words.first().and_then(|w| w.start).unwrap_or(0.0);
                let end = alt.words.last().and_then(|w| w.end);
                let mut p = Piece::new(None, text, start, end);
                if alt.words.iter().any(|w| w.confidence.is_some()) {
                    alt.words
                        .iter()
                        .for_each(|w| p.add_confidence(w.confidence));
                } else {
                    p.add_confidence(alt.confidence);
                }
                p
            })
            .collect();
    }
    // Words of every channel in time order, grouped into runs by speaker.
    let mut words: Vec<(u32, &Word)> = channels
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.alternatives.first().map(|a| (i as u32, a)))
        .flat_map(|(i, a)| a.words.iter().map(move |w| (i, w)))
        .collect();
    words.sort_by(|a, b| {
        a.1.start
            .unwrap_or(0.0)
            .total_cmp(&b.1.start.unwrap_or(0.0))
    });
    let mut pieces: Vec<Piece> = Vec::new();
    for (channel, word) in words {
        let label = label(channel, word.speaker, multichannel);
        match pieces.last_mut() {
            Some(p) if p.speaker == label && label.is_some() => {
                p.push_text(word.text());
                p.end = word.end.or(p.end);
                p.add_confidence(word.confidence);
            }
            _ => {
                let mut p = piece(
                    label,
                    word.speaker,
                    ctx,
                    word.text(),
                    word.start.unwrap_or(0.0),
                    word.end,
                );
                p.add_confidence(word.confidence);
                pieces.push(p);
            }
        }
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Role;
    use crate::testing::{corpus, ctx};

    fn corpus_bytes(name: &str) -> Option<Vec<u8>> {
        let path = corpus(&format!("call/deepgram-assemblyai-fixtures/{name}"))?;
        Some(std::fs::read(path).unwrap())
    }

    #[test]
    fn corpus_diarised_utterances_become_speaker_turns() {
        let Some(input) = corpus_bytes("dg_speakers.json") else {
            return;
        };
        let out = parse(&input, &ctx("dg")).unwrap();
        let speakers: Vec<&str> = out
            .iter()
            .map(|i| i.author.name.as_deref().unwrap())
            .collect();
        assert_eq!(
            speakers,
            [
                "Speaker 0",
                "Speaker 1",
                "Speaker 0",
                "Speaker 1",
                "Speaker 2",
                "Speaker 1",
                "Speaker 2",
                "Speaker 1"
            ]
        );
        assert_eq!(out[0].id, "call:e4ac910d-2bd6-4e54-b656-4cb971284bad:0");
        assert!(out[0].text.starts_with("And, Jessica,"), "{}", out[0].text);
        assert_eq!(out[0].attributes["start_s"], 3.04);
        assert_eq!(out[7].attributes["end_s"], 163.105);
        let created = crate::text::parse_timestamp("2023-11-02T12:59:59.945Z").unwrap();
        assert_eq!(
            out[0].occurred_at,
            created + time::Duration::milliseconds(3040)
        );
        assert!(
            out.windows(2)
                .all(|w| w[1].in_reply_to.as_deref() == Some(w[0].id.as_str()))
        );
        assert!(out[0].attributes["confidence"].as_f64().unwrap() > 0.5);
        assert_eq!(out[0].attributes["source_format"], "deepgram");
    }

    #[test]
    fn corpus_words_are_grouped_when_utterances_are_absent() {
        let Some(input) = corpus_bytes("dg_speakers.json") else {
            return;
        };
        let mut value: serde_json::Value = serde_json::from_slice(&input).unwrap();
        value["results"]
            .as_object_mut()
            .unwrap()
            .remove("utterances");
        let out = parse(&serde_json::to_vec(&value).unwrap(), &ctx("dg")).unwrap();
        let speakers: Vec<&str> = out
            .iter()
            .map(|i| i.attributes["speaker"].as_str().unwrap())
            .collect();
        assert_eq!(speakers.len(), 10);
        assert_eq!(&speakers[..3], ["Speaker 0", "Speaker 1", "Speaker 0"]);
        assert!(out[0].text.starts_with("And, Jessica,"));
    }

    #[test]
    fn corpus_undiarised_utterances_stay_separate() {
        let Some(input) = corpus_bytes("dg_utterances.json") else {
            return;
        };
        let out = parse(&input, &ctx("dg")).unwrap();
        assert_eq!(out.len(), 6);
        assert!(
            out.iter()
                .all(|i| i.author.name.is_none() && i.in_reply_to.is_none())
        );
        assert_eq!(out[0].text, "Yeah. As as much as, it's worth celebrating,");
        assert_eq!(out[5].attributes["start_s"], 22.3);
    }

    #[test]
    fn corpus_whisper_hosted_response_is_one_turn() {
        let Some(input) = corpus_bytes("dg_whisper_transcription.json") else {
            return;
        };
        let out = parse(&input, &ctx("dg")).unwrap();
        assert_eq!(out.len(), 1);
        assert!(
            out[0]
                .text
                .starts_with("yeah as much as it's worth celebrating")
        );
        assert_eq!(out[0].attributes["start_s"], 0.06);
        assert_eq!(out[0].id, "call:9e213b5c-cf78-4c95-bb5d-bb1ca65f26a1:0");
    }

    #[test]
    fn speaker_numbers_map_to_roles_and_language_is_kept() {
        let input = br#"{"metadata":{"request_id":"r-1","created":"2024-05-02T08:00:00Z","channels":1},
          "results":{"channels":[{"detected_language":"nb","alternatives":[{"transcript":"x","words":[
            {"word":"hei","punctuated_word":"Hei,","start":0.5,"end":0.8,"confidence":0.9,"speaker":0},
            {"word":"velkommen","punctuated_word":"velkommen.","start":0.8,"end":1.2,"confidence":0.7,"speaker":0},
            {"word":"takk","punctuated_word":"Takk.","start":2.0,"end":2.3,"confidence":0.8,"speaker":1}]}]}]}}"#;
        let mut c = ctx("dg");
        c.speaker_roles = vec![
            ("0".into(), Role::Agent),
            ("Speaker 1".into(), Role::Customer),
        ];
        let out = parse(input, &c).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].text, "Hei, velkommen.");
        assert_eq!(out[0].author.role, Role::Agent);
        assert_eq!(out[1].author.role, Role::Customer);
        assert_eq!(out[0].language.as_deref(), Some("nb"));
        assert_eq!(out[0].attributes["confidence"], 0.8);
        assert_eq!(
            out[1].occurred_at,
            crate::text::parse_timestamp("2024-05-02T08:00:02Z").unwrap()
        );
        // No caller number in this response: nobody's identity is guessed.
        assert!(out[1].author.ids.is_empty());
    }

    #[test]
    fn the_caller_number_in_extra_identifies_the_customer_turns() {
        let input =
            br#"{"metadata":{"request_id":"r-2","created":"2026-05-02T08:00:00Z","channels":1,
            "extra":{"caller_number":"+47 912 34 567","queue":"faktura"}},
          "results":{"channels":[{"alternatives":[{"transcript":"x","words":[
            {"word":"hei","start":0.5,"end":0.8,"speaker":0},
            {"word":"takk","start":2.0,"end":2.3,"speaker":1}]}]}]}}"#;
        let mut c = ctx("dg");
        c.speaker_roles = vec![
            ("Speaker 0".into(), Role::Agent),
            ("Speaker 1".into(), Role::Customer),
        ];
        let out = parse(input, &c).unwrap();
        assert!(out[0].author.ids.is_empty(), "the agent is not the caller");
        assert_eq!(out[1].author.ids, ["phone:+4791234567"]);
    }

    #[test]
    fn out_of_range_created_is_treated_like_an_invalid_one() {
        for created in ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00Z", "soon"] {
            let input = format!(
                r#"{{"metadata":{{"request_id":"r","created":"{created}"}},
                   "results":{{"channels":[{{"alternatives":[{{"transcript":"Hej.","words":[]}}]}}]}}}}"#
            );
            let mut c = ctx("dg");
            c.source_time = time::macros::datetime!(2024-05-02 08:00 UTC);
            let out = parse(input.as_bytes(), &c).unwrap();
            assert_eq!(out[0].occurred_at, c.source_time, "{created}");
        }
    }

    #[test]
    fn missing_results_and_empty_transcripts_are_errors() {
        let err = parse(br#"{"metadata":{}}"#, &ctx("dg")).unwrap_err();
        assert!(err.reason.contains("`results`"), "{}", err.reason);
        let err = parse(
            br#"{"results":{"channels":[{"alternatives":[{"transcript":"","words":[]}]}]}}"#,
            &ctx("dg"),
        )
        .unwrap_err();
        assert!(
            err.reason.starts_with("no speech turns found in Deepgram"),
            "{}",
            err.reason
        );
        let err = parse(br#"{"results": {"channels": ["#, &ctx("dg")).unwrap_err();
        assert!(err.reason.starts_with("truncated JSON"), "{}", err.reason);
    }
}
