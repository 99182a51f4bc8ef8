//! Source formats, their detection from content, and the common parse interface.
//!
//! A format turns bytes into [`Unit`]s. A unit is the smallest piece that succeeds or fails
//! on its own: a whole file for JSON transcripts, one message for mbox, one line for NDJSON,
//! one row for CSV. `end` is the byte offset just after the unit, so a checkpoint at `end`
//! resumes an append-only file without re-reading.

use std::path::Path;

pub use crate::unit::{ParseContext, Unit, interactions, whole};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Eml,
    Mbox,
    Maildir,
    ChatJson,
    Abcd,
    Transcribe,
    Deepgram,
    Assemblyai,
    Whisper,
    Vtt,
    Srt,
    Mastodon,
    TwcsCsv,
}

impl Format {
    pub const ALL: [Format; 13] = [
        Format::Eml,
        Format::Mbox,
        Format::Maildir,
        Format::ChatJson,
        Format::Abcd,
        Format::Transcribe,
        Format::Deepgram,
        Format::Assemblyai,
        Format::Whisper,
        Format::Vtt,
        Format::Srt,
        Format::Mastodon,
        Format::TwcsCsv,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Eml => "eml",
            Format::Mbox => "mbox",
            Format::Maildir => "maildir",
            Format::ChatJson => "chat-json",
            Format::Abcd => "abcd",
            Format::Transcribe => "transcribe",
            Format::Deepgram => "deepgram",
            Format::Assemblyai => "assemblyai",
            Format::Whisper => "whisper",
            Format::Vtt => "vtt",
            Format::Srt => "srt",
            Format::Mastodon => "mastodon",
            Format::TwcsCsv => "twcs-csv",
        }
    }

    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Formats whose units are appended over time (a checkpoint offset can resume them).
    pub fn is_append_only(self) -> bool {
        matches!(
            self,
            Format::Mbox | Format::ChatJson | Format::Mastodon | Format::TwcsCsv
        )
    }

    /// Whether a large input of this format can be cut at unit boundaries into windows that
    /// parse on their own (mbox; NDJSON chat or Mastodon exports). JSON documents, captions
    /// and CSV (its rows need the header and the rows before them for threading) cannot.
    pub fn splits(self, input: &[u8]) -> bool {
        match self {
            Format::Mbox => true,
            Format::ChatJson | Format::Mastodon => crate::json_input::is_ndjson(input),
            _ => false,
        }
    }

    /// For a format that [`Format::splits`], the start of the first unit at or after byte
    /// `at`; `None` when no unit starts there or later.
    pub fn unit_boundary(self, input: &[u8], at: usize) -> Option<usize> {
        if at >= input.len() {
            return None;
        }
        match self {
            Format::Mbox => crate::email::next_message_start(input, at),
            Format::ChatJson | Format::Mastodon => {
                if at == 0 || input[at - 1] == b'\n' {
                    Some(at)
                } else {
                    let newline = input[at..].iter().position(|&b| b == b'\n')?;
                    Some(at + newline + 1).filter(|&b| b < input.len())
                }
            }
            _ => None,
        }
    }

    /// Parses a whole input. `Maildir` is a directory layout, not a byte format: each of its
    /// files is parsed as [`Format::Eml`].
    pub fn parse(self, input: &[u8], ctx: &ParseContext) -> Vec<Unit> {
        match self {
            // parse_eml checks the message cap itself.
            Format::Eml | Format::Maildir => vec![Unit {
                start: 0,
                end: input.len() as u64,
                outcome: crate::email::parse_eml(input, ctx),
            }],
            Format::Mbox => crate::email::parse_mbox(input, ctx),
            Format::ChatJson => crate::chat::parse_chat_json(input, ctx),
            Format::Abcd => whole(input, ctx, crate::chat::parse_abcd),
            Format::Transcribe => whole(input, ctx, crate::call::parse_transcribe),
            Format::Deepgram => whole(input, ctx, crate::call::parse_deepgram),
            Format::Assemblyai => whole(input, ctx, crate::call::parse_assemblyai),
            Format::Whisper => whole(input, ctx, crate::call::parse_whisper),
            Format::Vtt => whole(input, ctx, crate::call::parse_vtt),
            Format::Srt => whole(input, ctx, crate::call::parse_srt),
            Format::Mastodon => crate::social::parse_mastodon(input, ctx),
            Format::TwcsCsv => crate::social::parse_twcs_csv(input, ctx),
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Detects a file's format from its content (and, only to break ties, its extension).
/// `None` means "not a format Rapport reads"; the caller reports it with the path.
///
/// `head` is the whole file or its beginning. JSON is told by its keys, read from the whole
/// of `head` (a long transcript names `utterances` or `segments` after megabytes of words),
/// so a head cut off in the middle of a large document may give `None` where the whole
/// file is recognised: a caller with only a head retries with the whole file.
pub fn detect(path: &Path, head: &[u8]) -> Option<Format> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let text = String::from_utf8_lossy(&head[..head.len().min(64 * 1024)]);
    let trimmed = text.trim_start();

    if trimmed.starts_with("WEBVTT") {
        return Some(Format::Vtt);
    }
    if trimmed.starts_with("From ") && text.contains('\n') {
        return Some(Format::Mbox);
    }
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        // An object's keys decide where it parses (the whole document, or an NDJSON file's
        // first line); an array's first element where that tells; the text of the first
        // 64 KiB only where neither does (a head cut off mid-document).
        let format = match json_keys::read(head) {
            Some(shape @ json_keys::Shape::Object(_)) => shape.format(),
            Some(shape) => shape.format().or_else(|| detect_json(trimmed)),
            None => detect_json(trimmed),
        };
        return format.or(match ext.as_deref() {
            Some("ndjson" | "jsonl") => Some(Format::ChatJson),
            _ => None,
        });
    }
    if trimmed.starts_with("tweet_id,") || trimmed.starts_with("\"tweet_id\",") {
        return Some(Format::TwcsCsv);
    }
    if looks_like_srt(trimmed) {
        return Some(Format::Srt);
    }
    if looks_like_email(&text) {
        return Some(Format::Eml);
    }
    match ext.as_deref() {
        Some("vtt") => Some(Format::Vtt),
        Some("srt") => Some(Format::Srt),
        Some("eml") => Some(Format::Eml),
        Some("mbox") => Some(Format::Mbox),
        Some("csv") => Some(Format::TwcsCsv),
        _ => None,
    }
}

/// The fallback for JSON that does not parse (a head cut off mid-document): the shapes'
/// characteristic keys anywhere in the first 64 KiB of text.
fn detect_json(text: &str) -> Option<Format> {
    let has = |key: &str| text.contains(&format!("\"{key}\""));
    if has("convo_id") && has("original") {
        Some(Format::Abcd)
    } else if has("Transcript") && has("ParticipantRole")
        || has("jobName") && has("results")
        || has("speaker_labels") && has("items")
    {
        Some(Format::Transcribe)
    } else if has("metadata") && has("results") && (has("channels") || has("utterances")) {
        Some(Format::Deepgram)
    } else if has("utterances") && (has("speaker") && has("confidence")) && !has("metadata") {
        Some(Format::Assemblyai)
    } else if has("segments") && (has("text") || has("words")) {
        Some(Format::Whisper)
    } else if has("content") && (has("visibility") || has("account") || has("attributedTo")) {
        Some(Format::Mastodon)
    } else if has("messages") || has("conversation_id") || has("session_id") {
        Some(Format::ChatJson)
    } else if has("audio_url") || has("acoustic_model") {
        // AssemblyAI writes these near the top, before a long `words` array.
        Some(Format::Assemblyai)
    } else {
        None
    }
}

/// Reading a JSON document's shape from its keys, however far into the file they come: a
/// long transcript's `words` array or `text` may run for megabytes before `utterances` or
/// `segments`. Values are skipped, not kept, so this costs a parse and no memory.
mod json_keys {
    use std::fmt;

    use serde::Deserializer;
    use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

    use super::Format;

    /// An object's keys, each with the keys of its value when that is an object.
    #[derive(Debug, Default)]
    pub(super) struct Object(Vec<(String, Vec<String>)>);

    /// A top-level object (or an NDJSON file's first line), or an array's first element.
    #[derive(Debug)]
    pub(super) enum Shape {
        Object(Object),
        Array(Option<Object>),
    }

    /// The shape of `input` (byte-order mark skipped): the whole document when it parses,
    /// else its first value when more follow on later lines (NDJSON); `None` when it does not
    /// parse, e.g. a head cut off in the middle of the document.
    pub(super) fn read(input: &[u8]) -> Option<Shape> {
        let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
        let mut values = serde_json::Deserializer::from_slice(input).into_iter::<ShapeOf>();
        let first = values.next()?.ok()?.0;
        // Several values: NDJSON, unless the first is an array (not a format that has lines).
        match (&first, values.next()) {
            (_, None) | (Shape::Object(_), Some(_)) => Some(first),
            (Shape::Array(_), Some(_)) => None,
        }
    }

    impl Object {
        fn has(&self, key: &str) -> bool {
            self.0.iter().any(|(k, _)| k == key)
        }

        fn inner_has(&self, key: &str, inner: &str) -> bool {
            self.0
                .iter()
                .any(|(k, keys)| k == key && keys.iter().any(|i| i == inner))
        }

        /// The format whose key set this object has.
        fn format(&self) -> Option<Format> {
            let has = |key: &str| self.has(key);
            if has("convo_id") && has("original") {
                Some(Format::Abcd)
            } else if has("Transcript") {
                // Call Analytics (with JobStatus, Participants, ConversationCharacteristics…).
                Some(Format::Transcribe)
            } else if has("metadata") && has("results") {
                Some(Format::Deepgram)
            } else if has("jobName") && has("results")
                || ["items", "speaker_labels", "transcripts"]
                    .iter()
                    .any(|inner| self.inner_has("results", inner))
            {
                Some(Format::Transcribe)
            } else if !has("metadata")
                && (has("utterances") || has("acoustic_model") || has("audio_url"))
            {
                Some(Format::Assemblyai)
            } else if has("segments") || has("text") && has("task") {
                // openai-whisper, whisper-timestamped, WhisperX; the OpenAI API's verbose JSON.
                Some(Format::Whisper)
            } else if has("words") && has("text") && !has("metadata") {
                Some(Format::Assemblyai)
            } else if has("messages") || has("conversation_id") || has("session_id") {
                Some(Format::ChatJson)
            } else if has("content") && (has("account") || has("visibility"))
                || has("account") && has("uri")
                || has("type")
                    && [
                        "object",
                        "attributedTo",
                        "orderedItems",
                        "items",
                        "content",
                        "@context",
                    ]
                    .iter()
                    .any(|key| has(key))
            {
                // A Mastodon API status; an ActivityPub object, activity or collection.
                Some(Format::Mastodon)
            } else {
                None
            }
        }
    }

    impl Shape {
        pub(super) fn format(&self) -> Option<Format> {
            match self {
                Shape::Object(object) => object.format(),
                // Arrays hold conversations, chat transcripts or messages, or posts.
                Shape::Array(first) => first
                    .as_ref()?
                    .format()
                    .filter(|f| matches!(f, Format::Abcd | Format::ChatJson | Format::Mastodon)),
            }
        }
    }

    /// Deserialises a [`Shape`].
    struct ShapeOf(Shape);

    impl<'de> de::Deserialize<'de> for ShapeOf {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(TopVisitor).map(ShapeOf)
        }
    }

    struct TopVisitor;

    impl<'de> Visitor<'de> for TopVisitor {
        type Value = Shape;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object or array")
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Shape, A::Error> {
            ObjectVisitor.visit_map(map).map(Shape::Object)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
            let first = seq.next_element_seed(ObjectSeed)?.flatten();
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Shape::Array(first))
        }
    }

    /// An object's keys and its values' keys; `None` for a value that is not an object.
    struct ObjectSeed;

    impl<'de> DeserializeSeed<'de> for ObjectSeed {
        type Value = Option<Object>;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(AnyVisitor(ObjectVisitor))
        }
    }

    struct ObjectVisitor;

    impl<'de> Visitor<'de> for ObjectVisitor {
        type Value = Object;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object, A::Error> {
            let mut keys = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                let inner = map.next_value_seed(KeysSeed)?.unwrap_or_default();
                keys.push((key, inner));
            }
            Ok(Object(keys))
        }
    }

    /// An object's keys, values skipped; `None` for a value that is not an object.
    struct KeysSeed;

    impl<'de> DeserializeSeed<'de> for KeysSeed {
        type Value = Option<Vec<String>>;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(AnyVisitor(KeysVisitor))
        }
    }

    struct KeysVisitor;

    impl<'de> Visitor<'de> for KeysVisitor {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
            let mut keys = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                keys.push(key);
            }
            Ok(keys)
        }
    }

    /// Any JSON value: an object goes to the inner visitor, anything else is skipped and
    /// reads as `None`.
    struct AnyVisitor<V>(V);

    impl<'de, V: Visitor<'de>> Visitor<'de> for AnyVisitor<V> {
        type Value = Option<V::Value>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            self.0.visit_map(map).map(Some)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }

        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
}

fn looks_like_srt(text: &str) -> bool {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("");
    let second = lines.next().unwrap_or("");
    first.chars().all(|c| c.is_ascii_digit()) && !first.is_empty() && second.contains("-->")
}

fn looks_like_email(text: &str) -> bool {
    let header_block = text.split("\n\n").next().unwrap_or("");
    let names: Vec<String> = header_block
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('\t'))
        .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_ascii_lowercase()))
        .collect();
    let known = [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "received",
        "mime-version",
        "return-path",
        "content-type",
    ];
    names.iter().filter(|n| known.contains(&n.as_str())).count() >= 2
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn detect_json_input(input: &str) -> Option<Format> {
        detect(Path::new("input.json"), input.as_bytes())
    }

    #[test]
    fn long_transcripts_are_detected_by_keys_after_the_first_64_kib() {
        // AssemblyAI: `utterances` after a `words` array of ~200 KB.
        let words = (0..3000)
            .map(|i| {
                format!(
                    r#"{{"text":"word{i}","start":{},"end":{},"confidence":0.9,"speaker":"A"}}"#,
                    i * 10,
                    i * 10 + 5
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        assert!(words.len() > 100_000);
        let assemblyai = format!(
            r#"{{"words":[{words}],"text":"…","utterances":[{{"speaker":"A","text":"Hi.","start":0,"end":500}}],"id":"t-1","status":"completed"}}"#
        );
        assert_eq!(detect_json_input(&assemblyai), Some(Format::Assemblyai));
        let out =
            Format::Assemblyai.parse(assemblyai.as_bytes(), &ParseContext::new("t", "a.json"));
        assert_eq!(out[0].outcome.as_ref().unwrap()[0].text, "Hi.");

        // whisper: `segments` after a `text` of ~150 KB.
        let whisper = format!(
            r#"{{"text":"{}","segments":[{{"id":0,"start":0.0,"end":2.0,"text":" Hej."}}],"language":"da"}}"#,
            "Hej med dig. ".repeat(12_000)
        );
        assert!(whisper.len() > 150_000);
        assert_eq!(detect_json_input(&whisper), Some(Format::Whisper));
        // With a BOM and a `.txt` name too: content decides.
        let with_bom = [b"\xEF\xBB\xBF".as_slice(), whisper.as_bytes()].concat();
        assert_eq!(detect(Path::new("x.txt"), &with_bom), Some(Format::Whisper));
        // A head cut off inside the text does not parse: the textual fallback knows nothing,
        // so the caller reads the whole file.
        assert_eq!(detect_json_input(&whisper[..64 * 1024]), None);
    }

    #[test]
    fn key_sets_decide_and_nested_keys_do_not_count() {
        let cases = [
            (
                r#"{"jobName":"j","accountId":"1","results":{"transcripts":[]},"status":"COMPLETED"}"#,
                Some(Format::Transcribe),
            ),
            (
                r#"{"results":{"speaker_labels":{"segments":[]},"items":[]}}"#,
                Some(Format::Transcribe),
            ),
            (
                r#"{"JobStatus":"COMPLETED","Transcript":[],"Participants":[]}"#,
                Some(Format::Transcribe),
            ),
            (
                r#"{"metadata":{"request_id":"r"},"results":{"channels":[]}}"#,
                Some(Format::Deepgram),
            ),
            (
                r#"{"id":"x","audio_url":"https://a/b.mp3","words":[]}"#,
                Some(Format::Assemblyai),
            ),
            (
                r#"{"text":"Hej","words":[{"text":"Hej"}],"confidence":0.9}"#,
                Some(Format::Assemblyai),
            ),
            (
                r#"{"task":"transcribe","language":"danish","text":"Hej","words":[]}"#,
                Some(Format::Whisper),
            ),
            (r#"{"convo_id":1,"original":[]}"#, Some(Format::Abcd)),
            (
                r#"[{"convo_id":1,"scenario":{},"original":[["agent","hi"]]}]"#,
                Some(Format::Abcd),
            ),
            (
                r#"{"id":"1","uri":"https://m/1","account":{},"content":"<p>x</p>"}"#,
                Some(Format::Mastodon),
            ),
            (
                r#"{"type":"Note","id":"https://m/1","content":"x"}"#,
                Some(Format::Mastodon),
            ),
            (
                r#"{"type":"OrderedCollection","orderedItems":[]}"#,
                Some(Format::Mastodon),
            ),
            (
                r#"{"session_id":"s","messages":[]}"#,
                Some(Format::ChatJson),
            ),
            // A chat transcript whose message attributes hold `segments` and `text`: the
            // text of the document says whisper, its keys say chat.
            (
                r#"{"conversation_id":"c","messages":[{"at":"2024-01-01T00:00:00Z","text":"x","attributes":{"segments":[1]}}]}"#,
                Some(Format::ChatJson),
            ),
            (r#"{"hello":1,"nested":{"messages":[]}}"#, None),
        ];
        for (input, expected) in cases {
            assert_eq!(detect_json_input(input), expected, "{input}");
        }
        // NDJSON: the first line's keys (later lines may be broken).
        let nd = "{\"conversation_id\":\"c\",\"at\":\"2024-01-01T00:00:00Z\",\"text\":\"x\"}\n{\"broken\n";
        assert_eq!(detect_json_input(nd), Some(Format::ChatJson));
        // Unparsable input keeps the textual heuristic.
        assert_eq!(
            detect_json_input(r#"{"jobName":"j","results":{"items":[{"#),
            Some(Format::Transcribe)
        );
    }
}
