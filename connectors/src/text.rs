//! Text clean-up shared by the formats.

/// HTML to readable plain text (block elements become line breaks, entities decoded).
pub fn html_to_text(html: &str) -> String {
    normalise_whitespace(&mail_parser::decoders::html::html_to_text(html))
}

/// Trims every line, collapses runs of blank lines to one, and trims the whole.
pub fn normalise_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
        }
        blank_run = 0;
        out.push_str(line);
    }
    out.trim().to_string()
}

/// Parses an RFC 3339 or ISO 8601 timestamp (with `Z`, an offset, or none meaning UTC) to UTC.
pub fn parse_timestamp(value: &str) -> Option<time::OffsetDateTime> {
    use time::format_description::well_known::{Iso8601, Rfc3339};
    let value = value.trim();
    if let Ok(t) = time::OffsetDateTime::parse(value, &Rfc3339) {
        return Some(t.to_offset(time::UtcOffset::UTC));
    }
    if let Ok(t) = time::OffsetDateTime::parse(value, &Iso8601::DEFAULT) {
        return Some(t.to_offset(time::UtcOffset::UTC));
    }
    // "2019-11-06 10:31:00" or "2019-11-06T10:31:00" without an offset: taken as UTC.
    let normalised = value.replacen(' ', "T", 1);
    time::PrimitiveDateTime::parse(&normalised, &Iso8601::DEFAULT)
        .ok()
        .map(|t| t.assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_becomes_plain_text() {
        let text = html_to_text("<p>Hej <b>Anna</b> &amp; co</p><p>Tak!</p>");
        assert!(text.contains("Hej Anna & co"), "{text}");
        assert!(text.contains("Tak!"));
        assert!(!text.contains('<'));
    }

    #[test]
    fn timestamps_in_common_shapes_parse_to_utc() {
        let t = parse_timestamp("2024-03-01T10:00:00+01:00").unwrap();
        assert_eq!(t.hour(), 9);
        assert!(parse_timestamp("2024-03-01 10:00:00").is_some());
        assert!(parse_timestamp("2024-03-01T10:00:00.123Z").is_some());
        assert!(parse_timestamp("yesterday").is_none());
        assert!(parse_timestamp("2024-13-45T99:00:00Z").is_none());
    }
}
