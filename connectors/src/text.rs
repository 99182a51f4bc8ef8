//! Text clean-up shared by the formats.

use time::{OffsetDateTime, UtcOffset};

/// HTML to readable plain text: block elements and `<br>` become line breaks, other
/// whitespace collapses as a browser would, entities are decoded, and `<script>`, `<style>`
/// and `<head>` are dropped. (mail-parser's converter loses the space after a run of inline
/// tags, which turns every Mastodon reply "@kari Beklager" into "@kariBeklager".)
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut pending_space = false;
    let mut rest = html;
    let mut skip_until: Option<&'static str> = None;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            if skip_until.is_none() {
                push_text(&mut out, rest, &mut pending_space);
            }
            break;
        };
        if skip_until.is_none() {
            push_text(&mut out, &rest[..lt], &mut pending_space);
        }
        rest = &rest[lt..];
        if rest.starts_with("<!--") {
            rest = rest.find("-->").map_or("", |end| &rest[end + 3..]);
            continue;
        }
        let Some(gt) = rest.find('>') else {
            // A lone '<' is text.
            if skip_until.is_none() {
                push_text(&mut out, rest, &mut pending_space);
            }
            break;
        };
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if let Some(end) = skip_until {
            if closing && name == end {
                skip_until = None;
            }
            continue;
        }
        match name.as_str() {
            "script" | "style" | "head" | "title" if !closing => {
                skip_until = Some(match name.as_str() {
                    "script" => "script",
                    "style" => "style",
                    "head" => "head",
                    _ => "title",
                });
            }
            "br" => {
                out.push('\n');
                pending_space = false;
            }
            "p" | "div" | "li" | "tr" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "ul" | "ol"
            | "table" | "blockquote" | "pre" | "hr" | "section" | "article" | "header"
            | "footer" => {
                if !out.is_empty() && !out.ends_with('\n') {
                    out.push('\n');
                }
                pending_space = false;
            }
            "td" | "th" if closing => pending_space = true,
            _ => {}
        }
    }
    normalise_whitespace(&out)
}

/// Appends HTML text with whitespace collapsed and entities decoded.
fn push_text(out: &mut String, text: &str, pending_space: &mut bool) {
    let decoded = decode_entities(text);
    for (i, word) in decoded
        .split(|c: char| c.is_whitespace() && c != '\u{a0}')
        .enumerate()
    {
        if i > 0 {
            *pending_space = true;
        }
        if word.is_empty() {
            continue;
        }
        if *pending_space && !out.is_empty() && !out.ends_with('\n') && !out.ends_with(' ') {
            out.push(' ');
        }
        *pending_space = false;
        // A no-break space stays one: it binds "1 899 kr" and is what the author wrote.
        out.push_str(word);
    }
}

/// The longest entity name looked at (`&` and `;` not counted): anything longer is text, so
/// a stray `&` costs a bounded look-ahead and decoding stays linear.
const MAX_ENTITY_NAME: usize = 32;

/// Decodes the named entities that occur in mail, posts, tweets and captions, and all
/// numeric ones (`&#39;`, `&#xE6;`). `&lrm;` and `&rlm;` (invisible direction marks that
/// caption files carry) decode to nothing. Anything else, an unknown name or a bare `&`,
/// stays as written. The one entity decoder of the crate.
pub fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        match entity_at(rest) {
            Some((decoded, len)) => {
                out.extend(decoded);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The reference `rest` starts with (`rest` starts with `&`): what it decodes to (`None` for
/// a direction mark) and its length in bytes including `&` and `;`.
fn entity_at(rest: &str) -> Option<(Option<char>, usize)> {
    let bytes = rest.as_bytes();
    let window = &bytes[1..bytes.len().min(MAX_ENTITY_NAME + 2)];
    let semicolon = window.iter().position(|&b| b == b';')? + 1;
    // `;` is ASCII, so both ends are character boundaries.
    let name = &rest[1..semicolon];
    let ch = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "lrm" | "rlm" => return Some((None, semicolon + 1)),
        "aelig" => 'æ',
        "AElig" => 'Æ',
        "oslash" => 'ø',
        "Oslash" => 'Ø',
        "aring" => 'å',
        "Aring" => 'Å',
        "auml" => 'ä',
        "Auml" => 'Ä',
        "ouml" => 'ö',
        "Ouml" => 'Ö',
        "uuml" => 'ü',
        "Uuml" => 'Ü',
        "eacute" => 'é',
        "hellip" => '…',
        "ndash" => '–',
        "mdash" => '—',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "euro" => '€',
        "copy" => '©',
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    u32::from_str_radix(hex, 16).ok()?
                }
                None if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) => {
                    number.parse().ok()?
                }
                _ => return None,
            };
            char::from_u32(code)?
        }
    };
    Some((Some(ch), semicolon + 1))
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

/// A time in UTC, or `None` when it cannot be one a record carries: the conversion would
/// leave the range `time` can represent (`9999-12-31T23:59:59-01:00` is year 10000 in UTC),
/// or the year is outside 1900–2999 ([`crate::record::Interaction::check`]'s range, and what
/// customer messages plausibly carry). Every timestamp the formats read goes through here,
/// so an absurd one is the same error as an unparsable one, never a panic.
pub fn to_utc(t: OffsetDateTime) -> Option<OffsetDateTime> {
    let utc = t.checked_to_offset(UtcOffset::UTC)?;
    (1900..=2999).contains(&utc.year()).then_some(utc)
}

/// Parses an RFC 3339 or ISO 8601 timestamp (with `Z`, an offset, or none meaning UTC) to UTC;
/// `None` when it does not parse or is out of range (see [`to_utc`]).
pub fn parse_timestamp(value: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::{Iso8601, Rfc3339};
    let value = value.trim();
    if let Ok(t) = OffsetDateTime::parse(value, &Rfc3339) {
        return to_utc(t);
    }
    if let Ok(t) = OffsetDateTime::parse(value, &Iso8601::DEFAULT) {
        return to_utc(t);
    }
    // "2019-11-06 10:31:00" or "2019-11-06T10:31:00" without an offset: taken as UTC.
    let normalised = value.replacen(' ', "T", 1);
    time::PrimitiveDateTime::parse(&normalised, &Iso8601::DEFAULT)
        .ok()
        .and_then(|t| to_utc(t.assume_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_tags_keep_the_spaces_between_words() {
        let text = html_to_text(
            "<p><span class=\"h-card\"><a href=\"u\">@<span>kari</span></a></span> Beklager så mye</p>",
        );
        assert_eq!(text, "@kari Beklager så mye");
    }

    #[test]
    fn blocks_breaks_entities_and_scripts() {
        let text = html_to_text(
            "<html><head><title>t</title><style>p{}</style></head><body><div>Hej&nbsp;Anna,</div>\n<p>Pris: 10&euro; &amp; fragt&#33;<br>Mvh   Lars</p><script>x()</script></body></html>",
        );
        assert_eq!(text, "Hej\u{a0}Anna,\nPris: 10€ & fragt!\nMvh Lars");
        assert_eq!(decode_entities("a &unknown; b & c"), "a &unknown; b & c");
    }

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

    #[test]
    fn out_of_range_timestamps_are_none_not_a_panic() {
        // Year 10000 in UTC: `to_offset` panicked on this.
        assert_eq!(parse_timestamp("9999-12-31T23:59:59-01:00"), None);
        assert_eq!(
            parse_timestamp("2999-12-31T23:59:59-01:00"),
            None,
            "year 3000"
        );
        assert_eq!(parse_timestamp("1899-12-31T23:59:59Z"), None);
        assert_eq!(parse_timestamp("0001-01-01T00:00:00Z"), None);
        assert_eq!(parse_timestamp("0001-01-01 00:00:00"), None);
        assert_eq!(
            parse_timestamp("2999-12-31T23:59:59Z"),
            Some(time::macros::datetime!(2999-12-31 23:59:59 UTC))
        );
        assert_eq!(
            parse_timestamp("1900-01-01T01:00:00+01:00"),
            Some(time::macros::datetime!(1900-01-01 00:00 UTC))
        );
        let max = time::PrimitiveDateTime::MAX.assume_offset(time::macros::offset!(-1));
        assert_eq!(to_utc(max), None);
        let negative = time::macros::datetime!(-0044-03-15 12:00 UTC);
        assert_eq!(to_utc(negative), None);
    }

    #[test]
    fn entities_of_every_former_decoder() {
        // Twitter's, the captions' and mail's entities, numeric ones, direction marks.
        assert_eq!(
            decode_entities("a &amp; b &lt;3 &gt; &foo; &"),
            "a & b <3 > &foo; &"
        );
        assert_eq!(
            decode_entities("&quot;it&#39;s&apos; &#x2764;&#10084;"),
            "\"it's' ❤❤"
        );
        assert_eq!(decode_entities("&lrm;Hej&rlm;!"), "Hej!");
        assert_eq!(
            decode_entities("&#+65; &#; &#x; &#xZZ;"),
            "&#+65; &#; &#x; &#xZZ;"
        );
        // A name longer than 32 bytes is text, even when it would decode.
        let long = format!("&#{}65;", "0".repeat(40));
        assert_eq!(decode_entities(&long), long);
        assert_eq!(decode_entities(&format!("&#{}65;", "0".repeat(28))), "A");
    }

    #[test]
    fn many_ampersands_without_semicolons_decode_in_linear_time() {
        // 1 MB of `&a` and not one `;`: a look-ahead to the end per `&` never finishes.
        let text = "&a".repeat(500_000);
        assert_eq!(decode_entities(&text), text);
        let text = format!("{}&amp;", "&".repeat(1_000_000));
        let decoded = decode_entities(&text);
        assert_eq!(decoded.len(), 1_000_001);
        assert!(decoded.ends_with("&&"));
    }
}
