//! The parse contract every format implements: a [`ParseContext`] in, [`Unit`]s out. A
//! unit is the smallest piece that succeeds or fails on its own (a whole file for JSON
//! transcripts, one message for mbox, one line for NDJSON, one row for CSV); `end` is the
//! byte offset just after it, so a checkpoint at `end` resumes an append-only file.

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
    /// Chat and Mastodon JSON: `Some(true)` when the caller already knows the input is
    /// NDJSON (a later window of a file detected as NDJSON), so a window whose first lines
    /// happen to be broken is still read line by line (never as one document); `Some(false)`
    /// reads it as one document. `None` detects from the input.
    pub ndjson: Option<bool>,
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
            ndjson: None,
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

/// The interactions of the units that parsed, in order.
pub fn interactions(units: &[Unit]) -> impl Iterator<Item = &Interaction> {
    units
        .iter()
        .filter_map(|u| u.outcome.as_ref().ok())
        .flatten()
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
