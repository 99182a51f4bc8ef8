//! Source formats, their detection from content, and the common parse interface.
//!
//! A format turns bytes into [`Unit`]s. A unit is the smallest piece that succeeds or fails
//! on its own: a whole file for JSON transcripts, one message for mbox, one line for NDJSON,
//! one row for CSV. `end` is the byte offset just after the unit, so a checkpoint at `end`
//! resumes an append-only file without re-reading.

use std::path::Path;

use time::OffsetDateTime;

use crate::error::ParseError;
use crate::record::Interaction;

/// What a format needs to know besides the bytes.
#[derive(Debug, Clone)]
pub struct ParseContext {
    /// Connector instance name (`ingest` for one-off imports).
    pub connector: String,
    /// Where the bytes came from, for attributes and error messages.
    pub source: String,
    /// Fallback time for sources that carry none (caption files): the file's mtime.
    pub source_time: OffsetDateTime,
    /// E-mail: addresses in these domains are the company's agents.
    pub company_domains: Vec<String>,
    /// Calls: vendor speaker label (`spk_0`, `Speaker 1`, `A`) → role.
    pub speaker_roles: Vec<(String, crate::record::Role)>,
    /// A message, line or row larger than this is rejected as "too large" instead of parsed.
    pub max_message_bytes: usize,
    /// The same for formats whose unit is a whole document (call transcripts, a chat
    /// transcript or ABCD file): a one-hour call with word timings runs to megabytes.
    pub max_file_bytes: usize,
}

impl ParseContext {
    pub fn new(connector: impl Into<String>, source: impl Into<String>) -> Self {
        ParseContext {
            connector: connector.into(),
            source: source.into(),
            source_time: OffsetDateTime::UNIX_EPOCH,
            company_domains: Vec::new(),
            speaker_roles: Vec::new(),
            max_message_bytes: 1 << 20,
            max_file_bytes: 256 << 20,
        }
    }

    /// Rejects a unit over the configured size cap before any parsing work is spent on it.
    pub fn check_size(&self, len: usize) -> Result<(), ParseError> {
        if len > self.max_message_bytes {
            return Err(ParseError::new(format!(
                "too large: {len} bytes, over the cap of {} bytes (ingest.max_message_bytes)",
                self.max_message_bytes
            )));
        }
        Ok(())
    }

    /// [`ParseContext::check_size`] for whole-document units.
    pub fn check_file_size(&self, len: usize) -> Result<(), ParseError> {
        if len > self.max_file_bytes {
            return Err(ParseError::new(format!(
                "too large: {len} bytes, over the cap of {} bytes (ingest.max_file_bytes)",
                self.max_file_bytes
            )));
        }
        Ok(())
    }

    /// Role for a speaker label from the configured map, if any.
    pub fn mapped_role(&self, speaker: &str) -> Option<crate::record::Role> {
        self.speaker_roles
            .iter()
            .find(|(label, _)| label.eq_ignore_ascii_case(speaker))
            .map(|(_, role)| *role)
    }
}

/// One independently parsed piece of input.
#[derive(Debug)]
pub struct Unit {
    /// Byte offset of the unit's first byte in the input.
    pub start: u64,
    /// Byte offset just after the unit: the resume point.
    pub end: u64,
    pub outcome: Result<Vec<Interaction>, ParseError>,
}

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
            Format::ChatJson | Format::Mastodon => crate::chat::json_input::is_ndjson(input),
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

/// Wraps a whole-document parser as one unit, enforcing the file size cap first.
pub fn whole(
    input: &[u8],
    ctx: &ParseContext,
    parse: impl FnOnce(&[u8], &ParseContext) -> Result<Vec<Interaction>, ParseError>,
) -> Vec<Unit> {
    vec![Unit {
        start: 0,
        end: input.len() as u64,
        outcome: ctx
            .check_file_size(input.len())
            .and_then(|()| parse(input, ctx)),
    }]
}

/// Detects a file's format from its content (and, only to break ties, its extension).
/// `None` means "not a format Rapport reads"; the caller reports it with the path.
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
        return detect_json(trimmed).or(match ext.as_deref() {
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

/// JSON shapes are told apart by their characteristic keys.
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
    } else {
        None
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
