//! mbox files (mboxrd and mboxo, LF or CRLF): one unit per message.
//!
//! A message runs from its `From ` separator line to the next one, so a unit's `end` is
//! the next message's `start` and a checkpoint at `end` resumes an appended file. Before
//! parsing, the separator line and the blank line that ends the message are removed and
//! `>From ` quoting is undone (one `>` off every line matching `^>+From `).

use std::borrow::Cow;

use crate::error::ParseError;
use crate::unit::{ParseContext, Unit};

/// Splits `input` and parses each message with [`super::message::parse`].
pub fn parse(input: &[u8], ctx: &ParseContext) -> Vec<Unit> {
    let starts = message_starts(input);
    let mut units = Vec::with_capacity(starts.len() + 1);
    if let Some(&first) = starts.first()
        && !input[..first].iter().all(u8::is_ascii_whitespace)
    {
        units.push(Unit {
            start: 0,
            end: first as u64,
            outcome: Err(ParseError::new(format!(
                "not an mbox message: {first} bytes before the first \"From \" separator line"
            ))),
        });
    }
    if starts.is_empty() && !input.iter().all(u8::is_ascii_whitespace) {
        units.push(Unit {
            start: 0,
            end: input.len() as u64,
            outcome: Err(ParseError::new(
                "not an mbox file: no \"From \" separator line found",
            )),
        });
    }
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(input.len());
        let raw = &input[start..end];
        // The raw message is held to the file cap; parse holds its text to the message cap.
        let outcome = ctx.check_file_size(raw.len()).and_then(|()| {
            let message = message_bytes(raw);
            if message.iter().all(u8::is_ascii_whitespace) {
                return Err(ParseError::new(
                    "empty mbox entry: a \"From \" separator line with no message after it",
                ));
            }
            super::message::parse(&message, ctx)
        });
        units.push(Unit {
            start: start as u64,
            end: end as u64,
            outcome,
        });
    }
    units
}

/// Byte offsets of the separator lines.
fn message_starts(input: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut line_start = 0;
    while line_start < input.len() {
        let line_end =
            memchr_newline(&input[line_start..]).map_or(input.len(), |i| line_start + i + 1);
        let line = &input[line_start..line_end];
        let first = line_start == 0;
        // A byte-order mark written by an editor in front of the first separator.
        let line = if first {
            line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line)
        } else {
            line
        };
        if is_separator(line, first) {
            starts.push(line_start);
        }
        line_start = line_end;
    }
    starts
}

/// The start of the first message at or after byte `at` (a separator line that begins at or
/// after it), for cutting a large mbox into windows that parse on their own.
pub(crate) fn next_message_start(input: &[u8], at: usize) -> Option<usize> {
    let mut line_start = match at {
        0 => 0,
        _ if input.get(at - 1) == Some(&b'\n') => at,
        _ => at + memchr_newline(input.get(at..)?)? + 1,
    };
    while line_start < input.len() {
        let line_end =
            memchr_newline(&input[line_start..]).map_or(input.len(), |i| line_start + i + 1);
        if is_separator(&input[line_start..line_end], false) {
            return Some(line_start);
        }
        line_start = line_end;
    }
    None
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

/// A `From ` line. In the file's first line any `From ` line counts; elsewhere it must also
/// look like a separator (`From sender date` with a time of day), so that an unescaped
/// "From 12:00 …" is the only body line that can still be mistaken for one.
fn is_separator(line: &[u8], first: bool) -> bool {
    if !line.starts_with(b"From ") {
        return false;
    }
    first || has_time_of_day(line)
}

fn has_time_of_day(line: &[u8]) -> bool {
    line.windows(5).any(|w| {
        w[0].is_ascii_digit()
            && w[1].is_ascii_digit()
            && w[2] == b':'
            && w[3].is_ascii_digit()
            && w[4].is_ascii_digit()
    })
}

/// The message inside a unit: without the separator line and the blank line that ends it,
/// with `>From ` quoting undone.
fn message_bytes(raw: &[u8]) -> Cow<'_, [u8]> {
    let body_start = memchr_newline(raw).map_or(raw.len(), |i| i + 1);
    let mut message = &raw[body_start..];
    if let Some(rest) = message.strip_suffix(b"\r\n\r\n") {
        message = &message[..rest.len() + 2];
    } else if let Some(rest) = message.strip_suffix(b"\n\n") {
        message = &message[..rest.len() + 1];
    }
    unescape_from(message)
}

/// Removes one `>` from every line matching `^>+From ` (mboxrd; also right for mboxo).
pub fn unescape_from(message: &[u8]) -> Cow<'_, [u8]> {
    let needs = |line: &[u8]| {
        let quotes = line.iter().take_while(|&&b| b == b'>').count();
        quotes > 0 && line[quotes..].starts_with(b"From ")
    };
    if !message.split(|&b| b == b'\n').any(needs) {
        return Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(message.len());
    for (i, line) in message.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(if needs(line) { &line[1..] } else { line });
    }
    Cow::Owned(out)
}

/// Adds one `>` to every line matching `^>*From ` (mboxrd), the inverse of [`unescape_from`]:
/// how a message is stored in an mbox.
pub fn escape_from(message: &[u8]) -> Cow<'_, [u8]> {
    let needs = |line: &[u8]| {
        let quotes = line.iter().take_while(|&&b| b == b'>').count();
        line[quotes..].starts_with(b"From ")
    };
    if !message.split(|&b| b == b'\n').any(needs) {
        return Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(message.len() + 16);
    for (i, line) in message.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        if needs(line) {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_one_level_of_from_quoting() {
        let escaped = b"a\n>From here\n>>From there\n> From not\r\n>From crlf\r\n";
        assert_eq!(
            unescape_from(escaped).as_ref(),
            b"a\nFrom here\n>From there\n> From not\r\nFrom crlf\r\n"
        );
        assert!(matches!(unescape_from(b"plain\n"), Cow::Borrowed(_)));
        let message = b"From: a\n\nFrom here\n>From there\n> From not\r\n";
        assert_eq!(
            escape_from(message).as_ref(),
            b"From: a\n\n>From here\n>>From there\n> From not\r\n".as_slice()
        );
        assert_eq!(
            unescape_from(&escape_from(message)).as_ref(),
            message.as_slice()
        );
    }

    #[test]
    fn separator_and_trailing_blank_line_are_removed() {
        assert_eq!(
            message_bytes(b"From a@b Mon Mar  4 10:00:00 2024\nSubject: x\n\nbody\n\n").as_ref(),
            b"Subject: x\n\nbody\n"
        );
        assert_eq!(
            message_bytes(b"From a@b Mon Mar  4 10:00:00 2024\r\nSubject: x\r\n\r\nbody\r\n\r\n")
                .as_ref(),
            b"Subject: x\r\n\r\nbody\r\n"
        );
    }

    #[test]
    fn windows_start_at_separator_lines() {
        let mbox = b"From a@x Mon Mar  4 10:00:00 2024\nSubject: 1\n\nFrom now on\n\nFrom b@x Mon Mar  4 11:00:00 2024\nSubject: 2\n\nhi\n";
        let second = mbox.windows(8).position(|w| w == b"From b@x").unwrap();
        assert_eq!(
            next_message_start(mbox, 1),
            Some(second),
            "a body 'From ' line is no separator"
        );
        assert_eq!(next_message_start(mbox, second), Some(second));
        assert_eq!(next_message_start(mbox, second + 1), None);
    }

    #[test]
    fn body_lines_that_start_with_from_do_not_split() {
        let input = b"From a@b Mon Mar  4 10:00:00 2024\nSubject: x\n\nFrom tomorrow on\n\nFrom b@c Tue Mar  5 11:00:00 2024\nSubject: y\n\nz\n";
        let starts = message_starts(input);
        assert_eq!(starts.len(), 2);
        assert!(input[starts[1]..].starts_with(b"From b@c"));
        assert_eq!(
            message_starts(b"\xEF\xBB\xBFFrom a@b Mon Mar  4 10:00:00 2024\n"),
            [0]
        );
    }
}
