//! Why a piece of input could not become interactions. Every variant names the problem
//! precisely; the runtime adds the source path and offset and sends it to the DLQ.

/// A unit of input (a file, an mbox message, an NDJSON line, a CSV row) that was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason}")]
pub struct ParseError {
    /// Human-readable, names the field or construct: "invalid timestamp \"25:61\" in cue 3".
    pub reason: String,
}

impl ParseError {
    pub fn new(reason: impl Into<String>) -> Self {
        ParseError {
            reason: reason.into(),
        }
    }
}

impl From<serde_json::Error> for ParseError {
    fn from(e: serde_json::Error) -> Self {
        let kind = if e.is_eof() {
            "truncated JSON"
        } else if e.is_syntax() {
            "invalid JSON"
        } else {
            "unexpected JSON shape"
        };
        ParseError::new(format!(
            "{kind}: {e} (line {}, column {})",
            e.line(),
            e.column()
        ))
    }
}

/// Decodes UTF-8 or says where it stops being UTF-8.
pub fn utf8(bytes: &[u8]) -> Result<&str, ParseError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        ParseError::new(format!(
            "not valid UTF-8: invalid byte sequence at byte {}",
            e.valid_up_to()
        ))
    })
}

/// Deserialises a whole JSON document: a UTF-8 byte-order mark (which editors and Windows
/// tools write, and [`crate::format::detect`] accepts) is skipped, and errors become
/// [`ParseError`]s that say whether the JSON was truncated, invalid or of another shape.
pub fn json_document<T: serde::de::DeserializeOwned>(input: &[u8]) -> Result<T, ParseError> {
    let text = utf8(input).map_err(|e| ParseError::new(format!("invalid JSON: {}", e.reason)))?;
    Ok(serde_json::from_str(text)?)
}

/// The JSON type of a value ("an array", "a string"…), for error messages.
pub fn json_kind(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
