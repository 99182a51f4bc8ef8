//! Call transcripts from speech-to-text vendors and caption files: one interaction per
//! speaker turn.
//!
//! Each vendor module reads its own shape into speaker pieces; [`turns`] merges consecutive
//! pieces by one speaker and builds the interactions, so ids, times, roles and attributes
//! follow one contract for every format:
//!
//! - `id` `call:<job/request id, else content hash>:<turn index>`, `conversation_id`
//!   `call:<…>`, `in_reply_to` the previous turn when another speaker said it;
//! - `occurred_at` call start plus the turn's start offset: Deepgram `metadata.created`,
//!   else a date (and time) in the file name, else `ctx.source_time` (the file's mtime),
//!   recorded in `date_source` (`vendor`, `file_name`, `source`);
//! - `author.role` from the vendor's role (Call Analytics), else the configured speaker map,
//!   else the label itself (`Agent`, `Kunde`), else unknown; `author.name` the label;
//! - `attributes`: `speaker`, `start_s`, `end_s`, `confidence` (mean over words),
//!   `source_format`, `date_source`, and for Call Analytics `vendor_sentiment`, `loudness_mean`,
//!   `loudness_max`, `issues`, `action_items`, `outcomes`.

mod assemblyai;
mod captions;
mod deepgram;
mod start_time;
mod transcribe;
mod turns;
mod whisper;

use crate::error::ParseError;
use crate::record::Interaction;
use crate::unit::ParseContext;

/// Amazon Transcribe: standard job output or Call Analytics output (detected).
pub fn parse_transcribe(input: &[u8], ctx: &ParseContext) -> Result<Vec<Interaction>, ParseError> {
    transcribe::parse(input, ctx)
}

/// Deepgram pre-recorded response JSON.
pub fn parse_deepgram(input: &[u8], ctx: &ParseContext) -> Result<Vec<Interaction>, ParseError> {
    deepgram::parse(input, ctx)
}

/// AssemblyAI transcript JSON.
pub fn parse_assemblyai(input: &[u8], ctx: &ParseContext) -> Result<Vec<Interaction>, ParseError> {
    assemblyai::parse(input, ctx)
}

/// openai-whisper, whisper-timestamped or WhisperX JSON.
pub fn parse_whisper(input: &[u8], ctx: &ParseContext) -> Result<Vec<Interaction>, ParseError> {
    whisper::parse(input, ctx)
}

/// WebVTT captions.
pub fn parse_vtt(input: &[u8], ctx: &ParseContext) -> Result<Vec<Interaction>, ParseError> {
    captions::parse_vtt(input, ctx)
}

/// SubRip (SRT) captions.
pub fn parse_srt(input: &[u8], ctx: &ParseContext) -> Result<Vec<Interaction>, ParseError> {
    captions::parse_srt(input, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{Format, detect};
    use crate::testing::{ctx, fixture};

    #[test]
    fn fixtures_are_detected_and_parsed_through_format() {
        for (name, format) in [
            ("transcribe-call-analytics-da.json", Format::Transcribe),
            ("transcribe-standard-sv.json", Format::Transcribe),
            ("kundesenter-no.vtt", Format::Vtt),
            ("kundeservice-da.srt", Format::Srt),
        ] {
            let path = fixture(&format!("call/{name}"));
            let input = std::fs::read(&path).unwrap();
            assert_eq!(detect(&path, &input), Some(format), "{name}");
            let units = format.parse(&input, &ctx(name));
            assert_eq!(units.len(), 1);
            let out = units[0]
                .outcome
                .as_ref()
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(out.len() >= 3, "{name}");
            assert!(
                out.iter()
                    .all(|i| i.channel == crate::Channel::Call && i.connector == "test")
            );
            // Re-reading gives the same ids.
            let again = format.parse(&input, &ctx(name));
            let ids = |o: &Vec<Interaction>| o.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
            assert_eq!(ids(out), ids(again[0].outcome.as_ref().unwrap()));
        }
    }

    #[test]
    fn json_with_a_byte_order_mark_parses() {
        let bom = |bytes: &[u8]| [b"\xEF\xBB\xBF".as_slice(), bytes].concat();
        let path = fixture("call/transcribe-call-analytics-da.json");
        let plain = std::fs::read(&path).unwrap();
        let with_bom = bom(&plain);
        assert_eq!(detect(&path, &with_bom), Some(Format::Transcribe));
        let out = parse_transcribe(&with_bom, &ctx("da.json")).unwrap();
        assert_eq!(out.len(), 5);
        assert_eq!(
            out[1].text,
            parse_transcribe(&plain, &ctx("da.json")).unwrap()[1].text
        );

        let deepgram = bom(
            br#"{"metadata":{"request_id":"r-1","created":"2024-05-02T08:00:00Z"},
            "results":{"channels":[{"alternatives":[{"transcript":"Hej med dig.","words":[]}]}]}}"#,
        );
        assert_eq!(
            detect(std::path::Path::new("dg.json"), &deepgram),
            Some(Format::Deepgram)
        );
        let out = parse_deepgram(&deepgram, &ctx("dg")).unwrap();
        assert_eq!(out[0].text, "Hej med dig.");
        assert_eq!(out[0].id, "call:r-1:0");

        let assemblyai =
            bom(br#"{"id":"t-1","status":"completed","text":"Hej.","utterances":null}"#);
        assert_eq!(
            parse_assemblyai(&assemblyai, &ctx("a")).unwrap()[0].text,
            "Hej."
        );
        let whisper = bom(br#"{"text":" Hej.","segments":[{"start":0,"end":1,"text":" Hej."}]}"#);
        assert_eq!(parse_whisper(&whisper, &ctx("w")).unwrap()[0].text, "Hej.");
        let standard =
            bom(br#"{"jobName":"j","results":{"transcripts":[{"transcript":"Hej."}],"items":[]}}"#);
        assert_eq!(
            parse_transcribe(&standard, &ctx("t")).unwrap()[0].text,
            "Hej."
        );
    }

    #[test]
    fn non_utf8_json_is_an_error_not_a_panic() {
        let err = parse_transcribe(b"{\"jobName\": \"\xff\"}", &ctx("x")).unwrap_err();
        assert!(err.reason.contains("JSON"), "{}", err.reason);
        let err = parse_whisper(b"\xfe\xff", &ctx("x")).unwrap_err();
        assert!(err.reason.contains("JSON"), "{}", err.reason);
    }
}
