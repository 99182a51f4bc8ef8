//! Text clean-up shared by the formats.

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

/// Decodes the named entities that occur in mail and posts, and all numeric ones.
pub fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest[1..]
            .find(|c: char| c == ';' || c == '&' || c.is_whitespace())
            .map(|i| i + 1);
        let decoded = end.filter(|&e| rest.as_bytes()[e] == b';').and_then(|e| {
            let entity = &rest[1..e];
            let ch = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                "aelig" => Some('æ'),
                "AElig" => Some('Æ'),
                "oslash" => Some('ø'),
                "Oslash" => Some('Ø'),
                "aring" => Some('å'),
                "Aring" => Some('Å'),
                "auml" => Some('ä'),
                "Auml" => Some('Ä'),
                "ouml" => Some('ö'),
                "Ouml" => Some('Ö'),
                "uuml" => Some('ü'),
                "eacute" => Some('é'),
                "hellip" => Some('…'),
                "ndash" => Some('–'),
                "mdash" => Some('—'),
                "lsquo" => Some('‘'),
                "rsquo" => Some('’'),
                "ldquo" => Some('“'),
                "rdquo" => Some('”'),
                "euro" => Some('€'),
                "copy" => Some('©'),
                _ => {
                    let num = entity.strip_prefix('#')?;
                    let code = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => num.parse().ok()?,
                    };
                    char::from_u32(code)
                }
            }?;
            Some((ch, e + 1))
        });
        match decoded {
            Some((ch, len)) => {
                out.push(ch);
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
}
