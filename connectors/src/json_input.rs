//! JSON input shared by the chat and social formats: telling one JSON document from NDJSON,
//! splitting it into units, and reading fields with errors that name the field.
//!
//! A document (an object or an array, pretty-printed or not) is one unit. NDJSON is one unit
//! per non-blank line; a line's `end` is the offset after its newline, so a checkpoint there
//! resumes an appended file. Input is NDJSON when it starts with `{` and one of its first two
//! non-blank lines is a complete JSON object on its own (so a file whose first line was cut
//! off still splits into lines); a single-line object is the same unit either way.

use serde::de::IgnoredAny;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::error::ParseError;
use crate::unit::ParseContext;

/// One independently parsed piece of input: the whole document or one NDJSON line.
pub(crate) struct Piece<'a> {
    pub start: usize,
    /// Just after the piece (after the newline for an NDJSON line).
    pub end: usize,
    /// 1-based line number (within the input given) of an NDJSON line; `None` for a document.
    pub line: Option<usize>,
    /// The piece without its line ending.
    pub bytes: &'a [u8],
}

impl Piece<'_> {
    /// Size cap, UTF-8, then JSON (serde_json's errors say whether the JSON was truncated).
    pub fn value(&self, ctx: &ParseContext) -> Result<Value, ParseError> {
        match self.line {
            Some(_) => ctx.check_size(self.bytes.len())?,
            None => ctx.check_file_size(self.bytes.len())?,
        }
        let text = crate::error::utf8(self.bytes)?;
        Ok(serde_json::from_str(text)?)
    }

    /// Prefixes an NDJSON line's error with its line number.
    pub fn locate(&self, e: ParseError) -> ParseError {
        match self.line {
            Some(n) => ParseError::new(format!("line {n}: {}", e.reason)),
            None => e,
        }
    }
}

/// Splits input into one document or NDJSON lines (see the module doc). Empty or blank
/// input has no pieces. `ctx.ndjson` overrides the detection: `Some(true)` (the caller knows
/// the input is NDJSON, e.g. a later window of a file detected as NDJSON) reads it line by
/// line however broken its first lines are, `Some(false)` reads it as one document.
pub(crate) fn split<'a>(input: &'a [u8], ctx: &ParseContext) -> Vec<Piece<'a>> {
    let body = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let Some(first) = body.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Vec::new();
    };
    let document = || {
        vec![Piece {
            start: 0,
            end: input.len(),
            line: None,
            bytes: input,
        }]
    };
    match ctx.ndjson {
        // Lines keep their numbers even when there is only one: it is a line of a file.
        Some(true) => lines(input).collect(),
        Some(false) => document(),
        None if body[first] == b'{' && is_ndjson(input) => {
            let mut pieces: Vec<Piece<'_>> = lines(input).collect();
            if pieces.len() == 1 {
                // One object on one line (a webhook body): a document, no line number needed.
                pieces[0].line = None;
            }
            pieces
        }
        None => document(),
    }
}

/// True when the input is NDJSON: one of its first two non-blank lines is a whole object.
pub(crate) fn is_ndjson(input: &[u8]) -> bool {
    lines(input).take(2).any(|piece| {
        let bytes = piece
            .bytes
            .strip_prefix(b"\xEF\xBB\xBF")
            .unwrap_or(piece.bytes);
        bytes.first() == Some(&b'{') && serde_json::from_slice::<IgnoredAny>(bytes).is_ok()
    })
}

/// Non-blank lines with their offsets; `bytes` excludes `\r\n` and surrounding blanks.
fn lines(input: &[u8]) -> Lines<'_> {
    Lines {
        input,
        start: 0,
        number: 0,
    }
}

/// Lazy, so that telling NDJSON from a large document looks at two lines only.
struct Lines<'a> {
    input: &'a [u8],
    start: usize,
    number: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = Piece<'a>;

    fn next(&mut self) -> Option<Piece<'a>> {
        let input = self.input;
        while self.start < input.len() {
            let start = self.start;
            self.number += 1;
            let (content_end, end) = match input[start..].iter().position(|&b| b == b'\n') {
                Some(i) => (start + i, start + i + 1),
                None => (input.len(), input.len()),
            };
            self.start = end;
            let bytes = input[start..content_end].trim_ascii();
            if !bytes.is_empty() {
                return Some(Piece {
                    start,
                    end,
                    line: Some(self.number),
                    bytes,
                });
            }
        }
        None
    }
}

/// Prefixes an error with where it happened inside a larger value (`[3]`, `orderedItems[2]`).
pub(crate) fn within(place: &str, e: ParseError) -> ParseError {
    ParseError::new(format!("{place}: {}", e.reason))
}

pub(crate) use crate::error::json_kind as kind;

/// An optional string field; `null` counts as absent.
pub(crate) fn str_field<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<Option<&'a str>, ParseError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ParseError::new(format!(
            "field \"{key}\" of {what} must be a string, not {}",
            kind(other)
        ))),
    }
}

/// An optional identifier: a non-empty string or an integer (platforms emit both).
pub(crate) fn id_field(
    obj: &Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<Option<String>, ParseError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(Some(n.to_string())),
        Some(other) => Err(ParseError::new(format!(
            "field \"{key}\" of {what} must be a string or an integer, not {}",
            kind(other)
        ))),
    }
}

/// An optional object field.
pub(crate) fn object_field<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<Option<&'a Map<String, Value>>, ParseError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(other) => Err(ParseError::new(format!(
            "field \"{key}\" of {what} must be an object, not {}",
            kind(other)
        ))),
    }
}

/// A timestamp field's value, or an error naming the field, the value and the record.
pub(crate) fn timestamp(value: &str, key: &str, what: &str) -> Result<OffsetDateTime, ParseError> {
    crate::text::parse_timestamp(value).ok_or_else(|| {
        ParseError::new(format!(
            "invalid timestamp {value:?} in field \"{key}\" of {what}"
        ))
    })
}

/// `phone:<E.164-ish>`: `+` and digits only; a leading `00` becomes `+`. Without a country
/// code the digits are kept as they are (the source's own convention).
pub fn phone_id(raw: &str) -> Option<String> {
    let plus = raw.trim_start().starts_with('+');
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 3 {
        return None;
    }
    Some(if plus {
        format!("phone:+{digits}")
    } else if let Some(rest) = digits.strip_prefix("00") {
        format!("phone:+{rest}")
    } else {
        format!("phone:{digits}")
    })
}

/// `email:<address>`, trimmed and lower-cased; `None` unless it looks like an address.
pub fn email_id(raw: &str) -> Option<String> {
    let address = raw.trim().trim_start_matches("mailto:");
    (address.contains('@') && !address.contains(char::is_whitespace))
        .then(|| format!("email:{}", address.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ParseContext {
        crate::testing::ctx("t")
    }

    #[test]
    fn pretty_document_is_one_piece_and_ndjson_is_one_per_line() {
        let doc = b"{\n  \"a\": 1\n}\n";
        let pieces = split(doc, &ctx());
        assert_eq!(pieces.len(), 1);
        assert_eq!(
            (pieces[0].start, pieces[0].end, pieces[0].line),
            (0, doc.len(), None)
        );

        let nd = b"{\"a\":1}\r\n\n{\"b\":2}\n{\"c\":";
        let pieces = split(nd, &ctx());
        assert_eq!(pieces.len(), 3);
        assert_eq!((pieces[0].start, pieces[0].end), (0, 9));
        assert_eq!(pieces[0].bytes, b"{\"a\":1}");
        assert_eq!((pieces[1].start, pieces[1].line), (10, Some(3)));
        assert_eq!(pieces[2].end, nd.len());
        assert!(split(b" \n \n", &ctx()).is_empty());
    }

    #[test]
    fn ndjson_whose_first_line_is_cut_still_splits() {
        let nd = b"{\"a\":\n{\"b\":2}\n";
        assert_eq!(split(nd, &ctx()).len(), 2);
    }

    #[test]
    fn the_callers_ndjson_flag_overrides_detection() {
        // Two broken lines first: detection sees no whole object and takes one document.
        let nd = b"\"a\": 1}\n{\"b\":\n{\"c\":3}\n{\"d\":4}\n";
        assert_eq!(split(nd, &ctx()).len(), 1);
        let mut c = ctx();
        c.ndjson = Some(true);
        let pieces = split(nd, &c);
        assert_eq!(pieces.len(), 4);
        assert_eq!(pieces[2].bytes, b"{\"c\":3}");
        assert_eq!(pieces[2].line, Some(3));
        // One line stays a numbered line.
        assert_eq!(split(b"{\"c\":3}\n", &c)[0].line, Some(1));
        c.ndjson = Some(false);
        let pieces = split(b"{\"c\":3}\n{\"d\":4}\n", &c);
        assert_eq!(pieces.len(), 1);
        assert_eq!(pieces[0].line, None);
    }

    #[test]
    fn phones_and_emails_normalise() {
        assert_eq!(
            phone_id("+45 12 34-56 78").as_deref(),
            Some("phone:+4512345678")
        );
        assert_eq!(
            phone_id("0046 70 123 45 67").as_deref(),
            Some("phone:+46701234567")
        );
        assert_eq!(phone_id("n/a"), None);
        assert_eq!(
            email_id(" Anna@Example.DK ").as_deref(),
            Some("email:anna@example.dk")
        );
        assert_eq!(email_id("not an address"), None);
    }
}
