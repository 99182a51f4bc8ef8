//! Shared turn building: every vendor module turns its file into [`Piece`]s (utterances,
//! segments, word runs, caption cues) and [`build`] merges consecutive pieces by the same
//! speaker into one [`Interaction`] per speaker turn.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

use crate::error::ParseError;
use crate::record::{Author, Channel, Interaction, Role};
use crate::unit::ParseContext;

/// One stretch of speech as the vendor reports it, before merging into turns.
#[derive(Debug, Clone, Default)]
pub(crate) struct Piece {
    /// Vendor speaker label (`spk_0`, `Speaker 1`, `A`, a caption voice); `None` when the
    /// source is not diarised. Unlabelled pieces never merge with each other.
    pub speaker: Option<String>,
    /// The role the vendor itself states (Call Analytics `ParticipantRole`).
    pub role: Option<Role>,
    /// Known to be spoken by someone else than the previous piece, though nobody is named
    /// (a caption's `- ` dialogue line).
    pub speaker_change: bool,
    pub text: String,
    /// Seconds from the start of the call.
    pub start: f64,
    pub end: Option<f64>,
    pub confidence_sum: f64,
    pub confidence_count: u32,
    /// Call Analytics per-turn sentiment (`POSITIVE`, `NEUTRAL`, `NEGATIVE`, `MIXED`).
    pub sentiment: Vec<String>,
    pub loudness: Vec<f64>,
    pub issues: Vec<String>,
    pub action_items: Vec<String>,
    pub outcomes: Vec<String>,
}

impl Piece {
    pub fn new(
        speaker: Option<String>,
        text: impl Into<String>,
        start: f64,
        end: Option<f64>,
    ) -> Self {
        Piece {
            speaker,
            text: text.into(),
            start,
            end,
            ..Piece::default()
        }
    }

    /// Counts one confidence value (a word's, or an utterance's when words have none).
    pub fn add_confidence(&mut self, confidence: Option<f64>) {
        if let Some(c) = confidence.filter(|c| c.is_finite()) {
            self.confidence_sum += c;
            self.confidence_count += 1;
        }
    }

    /// Appends a word or phrase, separated by a space.
    pub fn push_text(&mut self, text: &str) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        if !self.text.trim().is_empty() {
            self.text.push(' ');
        }
        self.text.push_str(text);
    }

    fn continues(&self, next: &Piece) -> bool {
        self.speaker.is_some()
            && self.speaker == next.speaker
            && self.role == next.role
            && !next.speaker_change
    }

    fn absorb(&mut self, next: Piece) {
        self.push_text(&next.text);
        self.end = match (self.end, next.end) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.confidence_sum += next.confidence_sum;
        self.confidence_count += next.confidence_count;
        self.sentiment.extend(next.sentiment);
        self.loudness.extend(next.loudness);
        self.issues.extend(next.issues);
        self.action_items.extend(next.action_items);
        self.outcomes.extend(next.outcomes);
    }
}

/// What is known about the call as a whole.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    /// The vendor's job or request id; `None` falls back to a hash of the file.
    pub id: Option<String>,
    /// When the call (or the recording) started, by the vendor; `None` falls back to a date
    /// in the file name, then `ctx.source_time` ([`super::start_time`]).
    pub start: Option<OffsetDateTime>,
    /// BCP 47 tag the file states.
    pub language: Option<String>,
    /// `source_format` attribute: `transcribe`, `deepgram`, `vtt`…
    pub source_format: &'static str,
    /// The caller's identity keys (`phone:+45…`) where the file carries them; given to
    /// the customer's turns, so a call joins the caller's profile.
    pub caller_ids: Vec<String>,
}

/// Merges pieces into speaker turns and makes one interaction per turn. `what` names the
/// source for the "no speech turns" error ("Deepgram response", "WebVTT cues").
pub(crate) fn build(
    input: &[u8],
    ctx: &ParseContext,
    call: Call,
    pieces: Vec<Piece>,
    what: &str,
) -> Result<Vec<Interaction>, ParseError> {
    let mut turns: Vec<Piece> = Vec::new();
    for mut piece in pieces {
        piece.text = piece.text.split_whitespace().collect::<Vec<_>>().join(" ");
        if piece.text.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some(last) if last.continues(&piece) => last.absorb(piece),
            _ => turns.push(piece),
        }
    }
    if turns.is_empty() {
        return Err(ParseError::new(format!("no speech turns found in {what}")));
    }

    let call_id = call
        .id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| crate::ids::content_hash(input));
    let conversation_id = format!("call:{call_id}");
    let (call_start, date_source) = super::start_time::call_start(call.start, ctx);
    let language = call
        .language
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty());

    let mut out: Vec<Interaction> = Vec::with_capacity(turns.len());
    for (index, turn) in turns.iter().enumerate() {
        let in_reply_to = match index.checked_sub(1).map(|i| &turns[i]) {
            Some(prev) if other_speaker(prev, turn) => out.last().map(|i| i.id.clone()),
            _ => None,
        };
        let role = turn
            .role
            .or_else(|| turn.speaker.as_deref().and_then(|s| ctx.mapped_role(s)))
            .or_else(|| turn.speaker.as_deref().map(Role::from_label))
            .unwrap_or(Role::Unknown);
        out.push(Interaction {
            id: format!("{conversation_id}:{index}"),
            conversation_id: conversation_id.clone(),
            channel: Channel::Call,
            connector: ctx.connector.clone(),
            occurred_at: at_offset(call_start, turn.start),
            author: Author {
                role,
                ids: if role == Role::Customer {
                    call.caller_ids.clone()
                } else {
                    Vec::new()
                },
                name: turn.speaker.clone(),
            },
            text: turn.text.clone(),
            language: language.map(str::to_string),
            public: false,
            in_reply_to,
            attributes: {
                let mut attributes = attributes(turn, call.source_format);
                attributes.insert("date_source".into(), date_source.into());
                attributes
            },
        });
    }
    Ok(out)
}

fn other_speaker(prev: &Piece, cur: &Piece) -> bool {
    cur.speaker_change
        || matches!((&prev.speaker, &cur.speaker), (Some(a), Some(b)) if a != b)
        || matches!((prev.role, cur.role), (Some(a), Some(b)) if a != b)
}

fn attributes(turn: &Piece, source_format: &str) -> Map<String, Value> {
    let mut attrs = Map::new();
    if let Some(speaker) = &turn.speaker {
        attrs.insert("speaker".into(), speaker.clone().into());
    }
    insert_f64(&mut attrs, "start_s", round(turn.start, 1000.0));
    if let Some(end) = turn.end {
        insert_f64(&mut attrs, "end_s", round(end, 1000.0));
    }
    if turn.confidence_count > 0 {
        let mean = turn.confidence_sum / f64::from(turn.confidence_count);
        insert_f64(&mut attrs, "confidence", round(mean, 10_000.0));
    }
    attrs.insert("source_format".into(), source_format.into());
    if let Some(sentiment) = combine_sentiment(&turn.sentiment) {
        attrs.insert("vendor_sentiment".into(), sentiment.into());
    }
    if !turn.loudness.is_empty() {
        let mean = turn.loudness.iter().sum::<f64>() / turn.loudness.len() as f64;
        let max = turn.loudness.iter().copied().fold(f64::MIN, f64::max);
        insert_f64(&mut attrs, "loudness_mean", round(mean, 100.0));
        insert_f64(&mut attrs, "loudness_max", round(max, 100.0));
    }
    for (key, list) in [
        ("issues", &turn.issues),
        ("action_items", &turn.action_items),
        ("outcomes", &turn.outcomes),
    ] {
        if !list.is_empty() {
            attrs.insert(
                key.into(),
                Value::Array(list.iter().map(|s| s.clone().into()).collect()),
            );
        }
    }
    attrs
}

fn insert_f64(attrs: &mut Map<String, Value>, key: &str, value: f64) {
    if let Some(n) = serde_json::Number::from_f64(value) {
        attrs.insert(key.into(), Value::Number(n));
    }
}

fn round(value: f64, scale: f64) -> f64 {
    (value * scale).round() / scale
}

/// One sentiment for a merged turn: the only one if all agree, `MIXED` when positive and
/// negative meet, else the one that is not neutral.
fn combine_sentiment(values: &[String]) -> Option<String> {
    let mut distinct: Vec<String> = Vec::new();
    for v in values {
        let v = v.trim().to_ascii_uppercase();
        if !v.is_empty() && !distinct.contains(&v) {
            distinct.push(v);
        }
    }
    match distinct.len() {
        0 => None,
        1 => distinct.pop(),
        _ => {
            let has = |s: &str| distinct.iter().any(|d| d == s);
            if has("MIXED") || (has("POSITIVE") && has("NEGATIVE")) {
                Some("MIXED".into())
            } else {
                distinct.into_iter().find(|d| d != "NEUTRAL")
            }
        }
    }
}

/// `start` plus an offset in seconds; a negative, non-finite or absurd offset (one that
/// leaves the range [`crate::text::to_utc`] accepts) stays at `start`.
pub(crate) fn at_offset(start: OffsetDateTime, seconds: f64) -> OffsetDateTime {
    if !seconds.is_finite() || seconds <= 0.0 {
        return start;
    }
    let millis = (seconds * 1000.0).round() as i64;
    start
        .checked_add(Duration::milliseconds(millis))
        .and_then(crate::text::to_utc)
        .unwrap_or(start)
}

/// Reads a number that vendors write either as a JSON number or as a string
/// (standard Transcribe: `"start_time": "0.49"`). Anything else reads as absent.
pub(crate) fn lenient_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    })
}

/// Reads an id that vendors write as a string or a number.
pub(crate) fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ctx;

    fn call() -> Call {
        Call {
            id: Some("job-1".into()),
            start: None,
            language: Some("da-DK".into()),
            source_format: "test",
            caller_ids: Vec::new(),
        }
    }

    #[test]
    fn consecutive_pieces_by_one_speaker_merge_and_replies_link() {
        let pieces = vec![
            Piece::new(Some("spk_0".into()), "Hej,", 0.5, Some(1.0)),
            Piece::new(Some("spk_0".into()), "velkommen.", 1.1, Some(2.0)),
            Piece::new(Some("spk_1".into()), "Tak.", 2.5, Some(3.0)),
            Piece::new(None, "   ", 3.0, Some(3.5)),
        ];
        let out = build(b"x", &ctx("t"), call(), pieces, "test").unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].text, "Hej, velkommen.");
        assert_eq!(out[0].id, "call:job-1:0");
        assert_eq!(out[0].attributes["end_s"], 2.0);
        assert_eq!(out[0].in_reply_to, None);
        assert_eq!(out[1].in_reply_to.as_deref(), Some("call:job-1:0"));
        assert_eq!(out[1].language.as_deref(), Some("da-DK"));
        assert_eq!(
            out[1].occurred_at,
            OffsetDateTime::UNIX_EPOCH + Duration::milliseconds(2500)
        );
    }

    #[test]
    fn unlabelled_pieces_stay_separate_turns() {
        let pieces = vec![
            Piece::new(None, "one", 0.0, None),
            Piece::new(None, "two", 1.0, None),
        ];
        let out = build(b"x", &ctx("t"), call(), pieces, "test").unwrap();
        assert_eq!(out.len(), 2);
        assert!(
            out.iter()
                .all(|i| i.author.role == Role::Unknown && i.in_reply_to.is_none())
        );
    }

    #[test]
    fn no_pieces_is_an_error_and_hash_is_the_fallback_id() {
        let err = build(b"x", &ctx("t"), call(), vec![], "test file").unwrap_err();
        assert_eq!(err.reason, "no speech turns found in test file");
        let mut c = call();
        c.id = Some("  ".into());
        let out = build(
            b"abc",
            &ctx("t"),
            c,
            vec![Piece::new(None, "hi", 0.0, None)],
            "t",
        )
        .unwrap();
        assert_eq!(
            out[0].id,
            format!("call:{}:0", crate::ids::content_hash(b"abc"))
        );
    }

    #[test]
    fn sentiments_combine() {
        let s =
            |v: &[&str]| combine_sentiment(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(s(&["NEUTRAL", "NEGATIVE"]).as_deref(), Some("NEGATIVE"));
        assert_eq!(s(&["POSITIVE", "NEGATIVE"]).as_deref(), Some("MIXED"));
        assert_eq!(s(&["NEUTRAL", "NEUTRAL"]).as_deref(), Some("NEUTRAL"));
        assert_eq!(s(&[]), None);
    }

    #[test]
    fn offsets_never_panic() {
        let t = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(at_offset(t, f64::NAN), t);
        assert_eq!(at_offset(t, -3.0), t);
        assert_eq!(at_offset(t, 1e300), t);
        assert_eq!(at_offset(t, 1.5), t + Duration::milliseconds(1500));
        let late = time::macros::datetime!(2999-12-31 23:59:59 UTC);
        assert_eq!(at_offset(late, 2.0), late, "year 3000 is out of range");
    }
}
