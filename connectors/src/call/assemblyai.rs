//! AssemblyAI transcripts: `utterances[]` (speaker `A`, `B`…, times in milliseconds) when
//! speaker labels were requested, else the whole `text` as one turn.

use serde::Deserialize;

use super::turns::{self, Call, Piece, lenient_string};
use crate::error::ParseError;
use crate::record::Interaction;
use crate::unit::ParseContext;

#[derive(Debug, Deserialize)]
struct Transcript {
    #[serde(default, deserialize_with = "lenient_string")]
    id: Option<String>,
    status: Option<String>,
    error: Option<String>,
    language_code: Option<String>,
    text: Option<String>,
    utterances: Option<Vec<Utterance>>,
    #[serde(default)]
    words: Vec<Word>,
    confidence: Option<f64>,
    audio_duration: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Utterance {
    speaker: Option<String>,
    #[serde(default)]
    text: String,
    start: Option<f64>,
    end: Option<f64>,
    confidence: Option<f64>,
    #[serde(default)]
    words: Vec<Word>,
}

#[derive(Debug, Deserialize)]
struct Word {
    start: Option<f64>,
    end: Option<f64>,
    confidence: Option<f64>,
}

pub fn parse(input: &[u8], ctx: &ParseContext) -> Result<Vec<Interaction>, ParseError> {
    let transcript: Transcript = crate::error::json_document(input)?;
    if let Some(status) = transcript.status.as_deref()
        && status != "completed"
        && transcript
            .text
            .as_deref()
            .is_none_or(|t| t.trim().is_empty())
    {
        let detail = transcript
            .error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        return Err(ParseError::new(format!(
            "AssemblyAI transcript has status {status:?}, not \"completed\"{detail}"
        )));
    }
    let call = Call {
        id: transcript.id.clone(),
        start: None,
        language: transcript.language_code.clone(),
        source_format: "assemblyai",
        caller_ids: Vec::new(),
    };
    let pieces: Vec<Piece> = match transcript.utterances.as_deref() {
        Some(utterances) if !utterances.is_empty() => {
            utterances.iter().map(utterance_piece).collect()
        }
        _ => {
            let text = transcript.text.clone().unwrap_or_default();
            let start = transcript
                .words
                .first()
                .and_then(|w| w.start)
                .unwrap_or(0.0)
                / 1000.0;
            let end = transcript
                .words
                .last()
                .and_then(|w| w.end)
                .map(|ms| ms / 1000.0)
                .or(transcript.audio_duration);
            let mut p = Piece::new(None, text, start, end);
            if transcript.words.iter().any(|w| w.confidence.is_some()) {
                transcript
                    .words
                    .iter()
                    .for_each(|w| p.add_confidence(w.confidence));
            } else {
                p.add_confidence(transcript.confidence);
            }
            vec![p]
        }
    };
    turns::build(
        input,
        ctx,
        call,
        pieces,
        "AssemblyAI transcript (no utterances and empty text)",
    )
}

fn utterance_piece(u: &Utterance) -> Piece {
    let speaker = u
        .speaker
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let start = u.start.unwrap_or(0.0) / 1000.0;
    let mut p = Piece::new(speaker, u.text.clone(), start, u.end.map(|ms| ms / 1000.0));
    if u.words.iter().any(|w| w.confidence.is_some()) {
        u.words.iter().for_each(|w| p.add_confidence(w.confidence));
    } else {
        p.add_confidence(u.confidence);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Role;
    use crate::testing::{corpus, ctx};

    #[test]
    fn corpus_utterances_keep_speaker_times_and_language() {
        let Some(path) = corpus("call/deepgram-assemblyai-fixtures/assemblyai_utterances.json")
        else {
            return;
        };
        let out = parse(&std::fs::read(path).unwrap(), &ctx("aai")).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].author.name.as_deref(), Some("A"));
        assert_eq!(out[0].attributes["speaker"], "A");
        assert_eq!(out[0].attributes["start_s"], 0.17);
        assert_eq!(out[0].attributes["end_s"], 25.14);
        assert_eq!(out[0].language.as_deref(), Some("en"));
        assert_eq!(out[0].id, "call:6a9zvzyx8u-f8fd-4bf4-9614-9497d76c6891:0");
        assert!(
            out[0]
                .text
                .starts_with("Yeah. As much as it's worth celebrating")
        );
        let conf = out[0].attributes["confidence"].as_f64().unwrap();
        assert!(conf > 0.9 && conf <= 1.0, "{conf}");
        assert_eq!(out[0].attributes["source_format"], "assemblyai");
    }

    #[test]
    fn two_speakers_with_a_map_and_text_fallback() {
        let input = r#"{"id":"t-9","status":"completed","language_code":"sv","text":"Hej. Hej hej.",
          "utterances":[
            {"speaker":"A","text":"Hej, det gäller min beställning.","start":250,"end":2100,"confidence":0.91,"words":[]},
            {"speaker":"B","text":"Vad är ordernumret?","start":2600,"end":3900,"confidence":0.87,"words":[]}]}"#
            .as_bytes();
        let mut c = ctx("aai");
        c.speaker_roles = vec![("a".into(), Role::Customer), ("B".into(), Role::Agent)];
        let out = parse(input, &c).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].author.role, Role::Customer);
        assert_eq!(out[1].author.role, Role::Agent);
        assert_eq!(out[1].in_reply_to.as_deref(), Some("call:t-9:0"));
        assert_eq!(out[1].attributes["confidence"], 0.87);
        let input = br#"{"id":"t-10","status":"completed","text":"Bara text.","utterances":null,"audio_duration":4}"#;
        let out = parse(input, &ctx("aai")).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text, "Bara text.");
        assert_eq!(out[0].attributes["end_s"], 4.0);
        assert_eq!(out[0].author.role, Role::Unknown);
    }

    #[test]
    fn failed_and_empty_transcripts_are_errors() {
        let err = parse(
            br#"{"id":"x","status":"error","error":"audio too short"}"#,
            &ctx("a"),
        )
        .unwrap_err();
        assert!(
            err.reason.contains("\"error\"") && err.reason.contains("audio too short"),
            "{}",
            err.reason
        );
        let err = parse(
            br#"{"id":"x","status":"completed","text":"","utterances":[]}"#,
            &ctx("a"),
        )
        .unwrap_err();
        assert!(
            err.reason
                .starts_with("no speech turns found in AssemblyAI"),
            "{}",
            err.reason
        );
        let err = parse(b"[1,2]", &ctx("a")).unwrap_err();
        assert!(
            err.reason.starts_with("unexpected JSON shape"),
            "{}",
            err.reason
        );
    }
}
