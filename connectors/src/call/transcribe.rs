//! Amazon Transcribe output in both shapes:
//! - standard jobs: `results.items[]` words and punctuation, speakers from
//!   `results.speaker_labels.segments[]` (or `speaker_label`/`channel_label` on each item);
//! - Call Analytics: top-level `Transcript[]` turns with `ParticipantRole` AGENT/CUSTOMER,
//!   per-turn `Sentiment`, `LoudnessScores` and detected issues.

use serde::Deserialize;

use super::turns::{self, Call, Piece, lenient_f64};
use crate::error::ParseError;
use crate::record::{Interaction, Role};
use crate::unit::ParseContext;

#[derive(Debug, Deserialize)]
struct TranscribeFile {
    /// Standard job name.
    #[serde(rename = "jobName")]
    job_name: Option<String>,
    /// Call Analytics job name.
    #[serde(rename = "JobName")]
    analytics_job_name: Option<String>,
    status: Option<String>,
    #[serde(rename = "JobStatus")]
    job_status: Option<String>,
    #[serde(rename = "LanguageCode")]
    language_code: Option<String>,
    results: Option<Results>,
    #[serde(rename = "Transcript")]
    transcript: Option<Vec<AnalyticsTurn>>,
}

#[derive(Debug, Deserialize)]
struct Results {
    #[serde(default)]
    transcripts: Vec<TranscriptText>,
    speaker_labels: Option<SpeakerLabels>,
    #[serde(default)]
    items: Vec<Item>,
    language_code: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TranscriptText {
    #[serde(default)]
    transcript: String,
}

#[derive(Debug, Deserialize)]
struct SpeakerLabels {
    #[serde(default)]
    segments: Vec<Segment>,
}

#[derive(Debug, Deserialize)]
struct Segment {
    speaker_label: Option<String>,
    #[serde(default, deserialize_with = "lenient_f64")]
    start_time: Option<f64>,
    #[serde(default, deserialize_with = "lenient_f64")]
    end_time: Option<f64>,
    #[serde(default)]
    items: Vec<SegmentItem>,
}

#[derive(Debug, Deserialize)]
struct SegmentItem {
    speaker_label: Option<String>,
    #[serde(default, deserialize_with = "lenient_f64")]
    start_time: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Item {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default, deserialize_with = "lenient_f64")]
    start_time: Option<f64>,
    #[serde(default, deserialize_with = "lenient_f64")]
    end_time: Option<f64>,
    #[serde(default)]
    alternatives: Vec<Alternative>,
    speaker_label: Option<String>,
    channel_label: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Alternative {
    #[serde(default)]
    content: String,
    #[serde(default, deserialize_with = "lenient_f64")]
    confidence: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct AnalyticsTurn {
    #[serde(rename = "ParticipantRole")]
    participant_role: Option<String>,
    #[serde(rename = "Content", default)]
    content: String,
    #[serde(
        rename = "BeginOffsetMillis",
        default,
        deserialize_with = "lenient_f64"
    )]
    begin_millis: Option<f64>,
    #[serde(rename = "EndOffsetMillis", default, deserialize_with = "lenient_f64")]
    end_millis: Option<f64>,
    #[serde(rename = "Sentiment")]
    sentiment: Option<String>,
    #[serde(rename = "LoudnessScores", default)]
    loudness_scores: Vec<Option<f64>>,
    #[serde(rename = "IssuesDetected", default)]
    issues_detected: Vec<Detected>,
    #[serde(rename = "ActionItemsDetected", default)]
    action_items_detected: Vec<Detected>,
    #[serde(rename = "OutcomesDetected", default)]
    outcomes_detected: Vec<Detected>,
    #[serde(rename = "Items", default)]
    items: Vec<AnalyticsItem>,
}

#[derive(Debug, Deserialize)]
struct Detected {
    #[serde(rename = "CharacterOffsets")]
    character_offsets: Option<CharacterOffsets>,
}

#[derive(Debug, Deserialize)]
struct CharacterOffsets {
    #[serde(rename = "Begin", default)]
    begin: usize,
    #[serde(rename = "End", default)]
    end: usize,
}

#[derive(Debug, Deserialize)]
struct AnalyticsItem {
    #[serde(rename = "Type")]
    kind: Option<String>,
    #[serde(rename = "Confidence", default, deserialize_with = "lenient_f64")]
    confidence: Option<f64>,
}

/// Either Transcribe shape, told apart by `Transcript` (Call Analytics) or `results` (standard).
pub fn parse(input: &[u8], ctx: &ParseContext) -> Result<Vec<Interaction>, ParseError> {
    let file: TranscribeFile = crate::error::json_document(input)?;
    if let Some(turns) = file.transcript {
        let call = Call {
            id: file.analytics_job_name.or(file.job_name),
            start: None,
            language: file.language_code,
            source_format: "transcribe-call-analytics",
            caller_ids: Vec::new(),
        };
        let pieces = turns.into_iter().map(analytics_piece).collect();
        return turns::build(
            input,
            ctx,
            call,
            pieces,
            "Transcribe Call Analytics Transcript[]",
        );
    }
    let Some(results) = file.results else {
        let status = file.status.or(file.job_status);
        return Err(ParseError::new(match status {
            Some(status) => format!(
                "Transcribe job has status {status:?} and no results (neither `results` nor `Transcript`)"
            ),
            None => "unexpected JSON shape: a Transcribe file needs `results` (standard job) \
                     or `Transcript` (Call Analytics)"
                .to_string(),
        }));
    };
    let call = Call {
        id: file.job_name.or(file.analytics_job_name),
        start: None,
        language: results.language_code.clone().or(file.language_code),
        source_format: "transcribe",
        caller_ids: Vec::new(),
    };
    let pieces = standard_pieces(&results);
    turns::build(
        input,
        ctx,
        call,
        pieces,
        "Transcribe results (no items and an empty transcript)",
    )
}

fn analytics_piece(turn: AnalyticsTurn) -> Piece {
    let label = turn
        .participant_role
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    let role = label
        .as_deref()
        .map(Role::from_label)
        .filter(|r| *r != Role::Unknown);
    let start = turn.begin_millis.unwrap_or(0.0) / 1000.0;
    let end = turn.end_millis.map(|ms| ms / 1000.0);
    let mut piece = Piece::new(label, turn.content.clone(), start, end);
    piece.role = role;
    for item in &turn.items {
        if item.kind.as_deref() != Some("punctuation") {
            piece.add_confidence(item.confidence);
        }
    }
    piece.sentiment.extend(turn.sentiment);
    piece.loudness.extend(
        turn.loudness_scores
            .iter()
            .flatten()
            .filter(|l| l.is_finite()),
    );
    let excerpt = |d: &Detected| {
        d.character_offsets
            .as_ref()
            .map(|o| char_slice(&turn.content, o))
    };
    piece
        .issues
        .extend(turn.issues_detected.iter().filter_map(excerpt));
    piece
        .action_items
        .extend(turn.action_items_detected.iter().filter_map(excerpt));
    piece
        .outcomes
        .extend(turn.outcomes_detected.iter().filter_map(excerpt));
    piece
}

/// The part of `text` between character (not byte) offsets, as Call Analytics counts them.
fn char_slice(text: &str, offsets: &CharacterOffsets) -> String {
    let len = offsets.end.saturating_sub(offsets.begin);
    text.chars()
        .skip(offsets.begin)
        .take(len)
        .collect::<String>()
        .trim()
        .to_string()
}

/// Rebuilds speaker runs from word items; punctuation joins the word before it.
fn standard_pieces(results: &Results) -> Vec<Piece> {
    let segments = results
        .speaker_labels
        .as_ref()
        .map(|s| s.segments.as_slice())
        .unwrap_or(&[]);
    let lookup = SpeakerLookup::new(segments);
    let diarised = !segments.is_empty()
        || results
            .items
            .iter()
            .any(|i| i.speaker_label.is_some() || i.channel_label.is_some());

    let mut pieces: Vec<Piece> = Vec::new();
    let mut last_label: Option<String> = None;
    for item in &results.items {
        let Some(alt) = item.alternatives.first() else {
            continue;
        };
        let content = alt.content.trim();
        if content.is_empty() {
            continue;
        }
        if item.kind == "punctuation" {
            if let Some(piece) = pieces.last_mut() {
                piece.text.push_str(content);
            }
            continue;
        }
        let label = if diarised {
            item.speaker_label
                .clone()
                .or_else(|| item.channel_label.clone())
                .or_else(|| item.start_time.and_then(|t| lookup.find(t)))
                .or_else(|| last_label.clone())
        } else {
            None
        };
        last_label.clone_from(&label);
        let start = item.start_time.unwrap_or(0.0);
        let end = item.end_time.or(item.start_time);
        match pieces.last_mut() {
            Some(piece) if piece.speaker == label => {
                piece.push_text(content);
                if end.is_some() {
                    piece.end = end;
                }
                piece.add_confidence(alt.confidence);
            }
            _ => {
                let mut piece = Piece::new(label, content, start, end);
                piece.add_confidence(alt.confidence);
                pieces.push(piece);
            }
        }
    }
    if pieces.is_empty() {
        let text = results
            .transcripts
            .iter()
            .map(|t| t.transcript.trim())
            .collect::<Vec<_>>()
            .join(" ");
        let end = segments.iter().filter_map(|s| s.end_time).reduce(f64::max);
        pieces.push(Piece::new(None, text, 0.0, end));
    }
    pieces
}

/// Speaker of a word by its start time: the segment item starting then, else the segment
/// whose time range holds it.
struct SpeakerLookup {
    /// (start time, speaker) of every segment item, sorted by time.
    items: Vec<(f64, String)>,
    /// (start, end, speaker) of every segment.
    ranges: Vec<(f64, f64, String)>,
}

impl SpeakerLookup {
    fn new(segments: &[Segment]) -> Self {
        let mut items: Vec<(f64, String)> = segments
            .iter()
            .flat_map(|seg| {
                seg.items.iter().filter_map(move |item| {
                    let label = item
                        .speaker_label
                        .clone()
                        .or_else(|| seg.speaker_label.clone())?;
                    Some((item.start_time?, label))
                })
            })
            .collect();
        items.sort_by(|a, b| a.0.total_cmp(&b.0));
        let ranges = segments
            .iter()
            .filter_map(|s| Some((s.start_time?, s.end_time?, s.speaker_label.clone()?)))
            .collect();
        SpeakerLookup { items, ranges }
    }

    fn find(&self, time: f64) -> Option<String> {
        const EPS: f64 = 1e-4;
        let i = self.items.partition_point(|(t, _)| *t < time - EPS);
        if let Some((t, label)) = self.items.get(i)
            && (t - time).abs() <= EPS
        {
            return Some(label.clone());
        }
        self.ranges
            .iter()
            .find(|(start, end, _)| *start - EPS <= time && time <= *end + EPS)
            .map(|(_, _, label)| label.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{corpus, ctx, fixture};

    fn read(path: &std::path::Path) -> Vec<u8> {
        std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn corpus_call_analytics_example_has_roles_sentiment_and_turns() {
        let Some(path) = corpus("call/aws-transcribe-call-analytics/example-call.json") else {
            return;
        };
        let out = parse(&read(&path), &ctx("example-call.json")).unwrap();
        assert_eq!(out.len(), 37, "every Transcript turn alternates speaker");
        assert_eq!(
            out[0].text,
            "Thank you for calling Anchor Credit Union, the number one choice for captains \
             worldwide, how can I help you?"
        );
        assert_eq!(out[0].author.role, Role::Agent);
        assert_eq!(out[1].author.role, Role::Customer);
        assert_eq!(out[0].author.name.as_deref(), Some("AGENT"));
        assert!(out.iter().all(|i| i.author.ids.is_empty() && !i.public));
        assert_eq!(out[0].id, "call:example-call.wav:0");
        assert_eq!(out[36].id, "call:example-call.wav:36");
        assert_eq!(out[0].conversation_id, "call:example-call.wav");
        assert_eq!(
            out[1].in_reply_to.as_deref(),
            Some("call:example-call.wav:0")
        );
        assert_eq!(out[0].language.as_deref(), Some("en-US"));
        assert!(
            out.iter()
                .all(|i| i.attributes.contains_key("vendor_sentiment"))
        );
        assert_eq!(out[0].attributes["vendor_sentiment"], "POSITIVE");
        assert_eq!(out[3].attributes["vendor_sentiment"], "NEGATIVE");
        assert_eq!(
            out[0].attributes["source_format"],
            "transcribe-call-analytics"
        );
        assert_eq!(out[0].attributes["start_s"], 0.04);
        assert_eq!(out[0].attributes["end_s"], 5.05);
        assert!(out[0].attributes["loudness_max"].as_f64().unwrap() > 80.0);
        let conf = out[0].attributes["confidence"].as_f64().unwrap();
        assert!(conf > 0.5 && conf < 1.0, "{conf}");
        let issues = out[3].attributes["issues"].as_array().unwrap();
        assert!(
            issues[0]
                .as_str()
                .unwrap()
                .starts_with("I'm trying to dock up my ship")
        );
        assert_eq!(
            out[3].occurred_at,
            time::OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(11040)
        );
    }

    #[test]
    fn corpus_standard_transcribe_rebuilds_alternating_turns_with_punctuation() {
        let Some(path) = corpus("call/aws-transcribe-standard/03-speaker-identification.json")
        else {
            return;
        };
        let out = parse(&read(&path), &ctx("03.json")).unwrap();
        let speakers: Vec<&str> = out
            .iter()
            .map(|i| i.attributes["speaker"].as_str().unwrap())
            .collect();
        assert_eq!(
            speakers,
            [
                "spk_0", "spk_1", "spk_0", "spk_2", "spk_0", "spk_1", "spk_0"
            ]
        );
        for pair in out.windows(2) {
            assert_ne!(pair[0].author.name, pair[1].author.name);
            assert_eq!(pair[1].in_reply_to.as_deref(), Some(pair[0].id.as_str()));
        }
        assert!(
            out[0]
                .text
                .starts_with("She was gone out into the village on some errand when, as she")
        );
        assert!(
            out.iter()
                .all(|i| !i.text.contains(" ,") && !i.text.contains(" ."))
        );
        assert!(out[0].text.ends_with('.'));
        assert_eq!(out[0].attributes["start_s"], 0.49);
        assert_eq!(out[0].attributes["source_format"], "transcribe");
        assert_eq!(out[0].id, "call:03-speaker-identification:0");
        assert_eq!(out.last().unwrap().attributes["end_s"], 141.54);
        assert!(out.iter().all(|i| i.author.role == Role::Unknown));
        // All words survive: the turns hold the whole transcript.
        let words: usize = out.iter().map(|i| i.text.split_whitespace().count()).sum();
        let file: serde_json::Value = serde_json::from_slice(&read(&path)).unwrap();
        let full = file["results"]["transcripts"][0]["transcript"]
            .as_str()
            .unwrap();
        assert_eq!(words, full.split_whitespace().count());
    }

    #[test]
    fn danish_call_analytics_fixture() {
        let input = read(&fixture("call/transcribe-call-analytics-da.json"));
        let out = parse(&input, &ctx("da.json")).unwrap();
        assert_eq!(out.len(), 5, "two consecutive CUSTOMER turns merge");
        let roles: Vec<Role> = out.iter().map(|i| i.author.role).collect();
        assert_eq!(
            roles,
            [
                Role::Agent,
                Role::Customer,
                Role::Agent,
                Role::Customer,
                Role::Agent
            ]
        );
        assert_eq!(out[0].language.as_deref(), Some("da-DK"));
        assert_eq!(out[0].conversation_id, "call:kundeservice-2024-03-12-0042");
        assert!(out[1].text.starts_with("Ja hej, jeg ringer om en pakke"));
        assert!(
            out[1].text.contains("Det er simpelthen ikke i orden."),
            "{}",
            out[1].text
        );
        assert_eq!(out[1].attributes["vendor_sentiment"], "NEGATIVE");
        assert_eq!(out[1].attributes["end_s"], 19.8);
        assert_eq!(
            out[1].attributes["issues"][0],
            "min pakke er otte dage forsinket"
        );
        assert_eq!(
            out[4].attributes["outcomes"][0],
            "pakken bliver leveret i morgen"
        );
        assert_eq!(out[4].attributes["vendor_sentiment"], "POSITIVE");
        assert_eq!(out[1].attributes["loudness_max"], 91.2);
        assert_eq!(out[2].in_reply_to.as_deref(), Some(out[1].id.as_str()));
        assert_eq!(out[0].connector, "test");
    }

    #[test]
    fn truncated_json_is_a_clear_error() {
        let input = read(&fixture("call/transcribe-truncated.json"));
        let err = parse(&input, &ctx("t.json")).unwrap_err();
        assert!(err.reason.starts_with("truncated JSON"), "{}", err.reason);
    }

    #[test]
    fn speaker_map_gives_roles_to_standard_labels() {
        let input = read(&fixture("call/transcribe-standard-sv.json"));
        let mut c = ctx("sv.json");
        c.speaker_roles = vec![
            ("spk_0".into(), Role::Agent),
            ("spk_1".into(), Role::Customer),
        ];
        let out = parse(&input, &c).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].author.role, Role::Agent);
        assert_eq!(out[1].author.role, Role::Customer);
        assert_eq!(out[2].author.role, Role::Agent);
        assert_eq!(out[0].text, "Hej, du har kommit till kundtjänst.");
        assert_eq!(out[1].text, "Hej! Min faktura är fel, igen.");
        assert_eq!(out[0].attributes["confidence"], 0.95);
        // Without a map the labels stay, the roles are unknown.
        let out = parse(&input, &ctx("sv.json")).unwrap();
        assert!(out.iter().all(|i| i.author.role == Role::Unknown));
        assert_eq!(out[1].author.name.as_deref(), Some("spk_1"));
    }

    #[test]
    fn standard_without_speaker_labels_is_one_unknown_turn() {
        let input = br#"{"jobName":"j","results":{"transcripts":[{"transcript":"Hej. Tak."}],
            "items":[
              {"start_time":"0.1","end_time":"0.4","alternatives":[{"confidence":"0.9","content":"Hej"}],"type":"pronunciation"},
              {"alternatives":[{"confidence":"0.0","content":"."}],"type":"punctuation"},
              {"start_time":"1.0","end_time":"1.3","alternatives":[{"confidence":"0.7","content":"Tak"}],"type":"pronunciation"},
              {"alternatives":[{"confidence":"0.0","content":"."}],"type":"punctuation"}]}}"#;
        let out = parse(input, &ctx("t")).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text, "Hej. Tak.");
        assert_eq!(out[0].author.role, Role::Unknown);
        assert_eq!(out[0].author.name, None);
        assert_eq!(out[0].attributes["end_s"], 1.3);
        assert_eq!(out[0].attributes["confidence"], 0.8);
    }

    #[test]
    fn standard_falls_back_to_transcript_text_and_rejects_empty() {
        let input = br#"{"jobName":"j","results":{"transcripts":[{"transcript":"Kun tekst."}],"items":[]}}"#;
        let out = parse(input, &ctx("t")).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text, "Kun tekst.");
        let input = br#"{"jobName":"j","results":{"transcripts":[{"transcript":""}],"items":[]}}"#;
        let err = parse(input, &ctx("t")).unwrap_err();
        assert!(
            err.reason
                .starts_with("no speech turns found in Transcribe"),
            "{}",
            err.reason
        );
        let err = parse(br#"{"jobName":"j","status":"FAILED"}"#, &ctx("t")).unwrap_err();
        assert!(err.reason.contains("\"FAILED\""), "{}", err.reason);
        let err = parse(br#"{"hello":1}"#, &ctx("t")).unwrap_err();
        assert!(err.reason.contains("`results`"), "{}", err.reason);
    }

    #[test]
    fn item_level_speaker_labels_are_used() {
        let input = br#"{"results":{"transcripts":[{"transcript":"a b"}],"items":[
            {"start_time":"0.1","end_time":"0.2","speaker_label":"spk_1","alternatives":[{"content":"Hi"}],"type":"pronunciation"},
            {"start_time":"0.3","end_time":"0.4","speaker_label":"spk_0","alternatives":[{"content":"Hello"}],"type":"pronunciation"}]}}"#;
        let out = parse(input, &ctx("t")).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].author.name.as_deref(), Some("spk_1"));
        assert_eq!(
            out[0].id,
            format!("call:{}:0", crate::ids::content_hash(input))
        );
    }
}
