//! Whisper JSON: openai-whisper and whisper-timestamped `segments[]` (with optional word
//! confidences), and WhisperX segments with a `speaker`. Undiarised segments stay one turn
//! each, so a whole call never collapses into a single turn.

use serde::Deserialize;

use super::turns::{self, Call, Piece, lenient_f64};
use crate::error::ParseError;
use crate::record::Interaction;
use crate::unit::ParseContext;

#[derive(Debug, Deserialize)]
struct Output {
    text: Option<String>,
    #[serde(default)]
    segments: Vec<Segment>,
    language: Option<String>,
    duration: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Segment {
    #[serde(default, deserialize_with = "lenient_f64")]
    start: Option<f64>,
    #[serde(default, deserialize_with = "lenient_f64")]
    end: Option<f64>,
    #[serde(default)]
    text: String,
    confidence: Option<f64>,
    speaker: Option<String>,
    #[serde(default)]
    words: Vec<Word>,
}

#[derive(Debug, Deserialize)]
struct Word {
    /// whisper-timestamped `confidence`, openai-whisper `probability`, WhisperX `score`.
    #[serde(alias = "probability", alias = "score")]
    confidence: Option<f64>,
}

pub fn parse(input: &[u8], ctx: &ParseContext) -> Result<Vec<Interaction>, ParseError> {
    let output: Output = crate::error::json_document(input)?;
    let call = Call {
        id: None,
        start: None,
        language: output.language.as_deref().and_then(language_tag),
        source_format: "whisper",
        caller_ids: Vec::new(),
    };
    let pieces: Vec<Piece> = if output.segments.is_empty() {
        let text = output.text.clone().unwrap_or_default();
        vec![Piece::new(None, text, 0.0, output.duration)]
    } else {
        output.segments.iter().map(segment_piece).collect()
    };
    turns::build(
        input,
        ctx,
        call,
        pieces,
        "Whisper output (no segments and empty text)",
    )
}

fn segment_piece(s: &Segment) -> Piece {
    let speaker = s
        .speaker
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string);
    let mut p = Piece::new(speaker, s.text.clone(), s.start.unwrap_or(0.0), s.end);
    if s.words.iter().any(|w| w.confidence.is_some()) {
        s.words.iter().for_each(|w| p.add_confidence(w.confidence));
    } else {
        p.add_confidence(s.confidence);
    }
    p
}

/// Whisper writes an ISO 639-1 code (`en`), the OpenAI API a language name (`english`).
fn language_tag(language: &str) -> Option<String> {
    let l = language.trim().to_ascii_lowercase();
    let code = match l.as_str() {
        "english" => "en",
        "danish" => "da",
        "norwegian" => "no",
        "nynorsk" => "nn",
        "swedish" => "sv",
        "finnish" => "fi",
        "icelandic" => "is",
        "german" => "de",
        "dutch" => "nl",
        "french" => "fr",
        "spanish" => "es",
        "italian" => "it",
        "portuguese" => "pt",
        "polish" => "pl",
        code if (2..=3).contains(&code.len()) && code.chars().all(|c| c.is_ascii_lowercase()) => {
            code
        }
        _ => return None,
    };
    Some(code.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Role;
    use crate::testing::{corpus, ctx};

    #[test]
    fn corpus_whisper_timestamped_segments_are_turns() {
        let Some(path) = corpus("call/deepgram-assemblyai-fixtures/whisper_timestamped.json")
        else {
            return;
        };
        let input = std::fs::read(path).unwrap();
        let out = parse(&input, &ctx("w")).unwrap();
        assert_eq!(
            out.len(),
            4,
            "one turn per segment, not one for the whole call"
        );
        assert_eq!(
            out[0].text,
            "Yeah, as much as it's worth celebrating the first spacewalk with an all-female team,"
        );
        assert_eq!(out[0].attributes["start_s"], 0.12);
        assert_eq!(out[0].attributes["end_s"], 7.62);
        assert_eq!(out[3].attributes["start_s"], 19.82);
        assert_eq!(out[0].language.as_deref(), Some("en"));
        assert!(
            out.iter()
                .all(|i| i.author.role == Role::Unknown && i.author.name.is_none())
        );
        let conf = out[0].attributes["confidence"].as_f64().unwrap();
        assert!(conf > 0.0 && conf < 1.0);
        assert_eq!(
            out[0].id,
            format!("call:{}:0", crate::ids::content_hash(&input))
        );
        assert_eq!(out[0].attributes["source_format"], "whisper");
    }

    #[test]
    fn whisperx_speakers_merge_and_map() {
        let input = br#"{"language":"danish","segments":[
          {"start":0.0,"end":2.0,"text":" Hej, det er Lars fra kundeservice.","speaker":"SPEAKER_00","words":[{"word":"Hej","score":0.9},{"word":"det","score":0.7}]},
          {"start":2.1,"end":3.0,"text":" Hvad drejer det sig om?","speaker":"SPEAKER_00"},
          {"start":3.5,"end":6.0,"text":" Min regning er for hoj.","speaker":"SPEAKER_01"}]}"#;
        let mut c = ctx("w");
        c.speaker_roles = vec![("SPEAKER_00".into(), Role::Agent)];
        let out = parse(input, &c).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0].text,
            "Hej, det er Lars fra kundeservice. Hvad drejer det sig om?"
        );
        assert_eq!(out[0].author.role, Role::Agent);
        assert_eq!(out[1].author.role, Role::Unknown);
        assert_eq!(out[0].attributes["end_s"], 3.0);
        assert_eq!(out[0].attributes["confidence"], 0.8);
        assert_eq!(out[0].language.as_deref(), Some("da"));
        assert_eq!(out[1].in_reply_to.as_deref(), Some(out[0].id.as_str()));
    }

    #[test]
    fn text_only_and_empty_outputs() {
        let out = parse(
            br#"{"text":" Kun tekst.","language":"xx-unknown-name"}"#,
            &ctx("w"),
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text, "Kun tekst.");
        assert_eq!(out[0].language, None);
        let err = parse(br#"{"text":"","segments":[]}"#, &ctx("w")).unwrap_err();
        assert!(
            err.reason.starts_with("no speech turns found in Whisper"),
            "{}",
            err.reason
        );
        let err = parse(br#"{"segments":[{"start":0,"#, &ctx("w")).unwrap_err();
        assert!(err.reason.starts_with("truncated JSON"), "{}", err.reason);
    }
}
