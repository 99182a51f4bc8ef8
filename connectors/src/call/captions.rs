//! Caption files: WebVTT and SRT. Speakers come from WebVTT voice tags (`<v Name>`), else
//! from a leading `Name:` or `[Name]` on a line; a `- ` line is a new, unnamed speaker.
//! Cues without a speaker stay one turn each; consecutive cues by one named speaker merge.
//!
//! Decisions for malformed input: no `WEBVTT` header, an unparsable timestamp, a cue
//! without its `-->` line, a timing line directly followed by another timing line, and a
//! file without cues are errors naming the cue and line. A cue without text is skipped.

use super::turns::{self, Call, Piece};
use crate::error::ParseError;
use crate::record::Interaction;
use crate::unit::ParseContext;

/// One caption cue: times and raw text (tags and entities still in).
struct Cue {
    start: f64,
    end: f64,
    text: String,
}

pub fn parse_vtt(input: &[u8], ctx: &ParseContext) -> Result<Vec<Interaction>, ParseError> {
    let text = crate::error::utf8(input)?;
    let normalised = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = normalised.split('\n').collect();
    let Some(header_at) = lines.iter().position(|l| !blank(l)) else {
        return Err(ParseError::new(
            "empty file: not a WebVTT file (no WEBVTT header) and no cues",
        ));
    };
    let header = lines[header_at];
    if !(header == "WEBVTT" || header.starts_with("WEBVTT ") || header.starts_with("WEBVTT\t")) {
        return Err(ParseError::new(format!(
            "not a WebVTT file: line {} is {:?}, expected the WEBVTT header",
            header_at + 1,
            shorten(header)
        )));
    }

    // Header lines up to the first blank line (`Kind:`, `Language:`, YouTube's `Style:`).
    let mut i = header_at + 1;
    let mut language = None;
    // A timing line right under the header (no blank line between) starts the cues.
    while i < lines.len() && !blank(lines[i]) && !lines[i].contains("-->") {
        if let Some((key, value)) = lines[i].split_once(':')
            && key.trim().eq_ignore_ascii_case("language")
            && !value.trim().is_empty()
        {
            language = Some(value.trim().to_string());
        }
        i += 1;
    }

    let mut cues: Vec<Cue> = Vec::new();
    let mut cue_no = 0;
    while i < lines.len() {
        if blank(lines[i]) {
            i += 1;
            continue;
        }
        let first = lines[i].trim();
        if ["NOTE", "STYLE", "REGION"]
            .iter()
            .any(|k| is_block_keyword(first, k))
        {
            while i < lines.len() && !blank(lines[i]) {
                i += 1;
            }
            continue;
        }
        cue_no += 1;
        // An optional identifier line, then the timing line.
        let timing_at = if lines[i].contains("-->") { i } else { i + 1 };
        if timing_at >= lines.len() || blank(lines[timing_at]) || !lines[timing_at].contains("-->")
        {
            let at = if timing_at < lines.len() && !blank(lines[timing_at]) {
                timing_at
            } else {
                i
            };
            return Err(ParseError::new(format!(
                "missing \"-->\" timing line in cue {cue_no} (line {}): found {:?}",
                at + 1,
                shorten(lines[at].trim())
            )));
        }
        let (start, end) = timing(lines[timing_at], cue_no, timing_at + 1, Syntax::WebVtt)?;
        let mut j = timing_at + 1;
        let mut text_lines: Vec<&str> = Vec::new();
        while j < lines.len() && !blank(lines[j]) {
            if lines[j].contains("-->") {
                if text_lines.is_empty() {
                    return Err(ParseError::new(format!(
                        "cue {cue_no} (line {}) has no text: another timing line follows it directly (line {}): {:?}",
                        timing_at + 1,
                        j + 1,
                        shorten(lines[j].trim())
                    )));
                }
                // As in the WebVTT parsing rules (and YouTube's output): a timing line ends
                // the cue text and starts the next cue.
                break;
            }
            text_lines.push(lines[j]);
            j += 1;
        }
        cues.push(Cue {
            start,
            end,
            text: text_lines.join("\n"),
        });
        i = j;
    }
    into_turns(
        input,
        ctx,
        &cues,
        "vtt",
        language,
        "WebVTT file (nothing after the header)",
    )
}

pub fn parse_srt(input: &[u8], ctx: &ParseContext) -> Result<Vec<Interaction>, ParseError> {
    let text = crate::error::utf8(input)?;
    let normalised = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = normalised.split('\n').collect();
    if lines.iter().all(|l| blank(l)) {
        return Err(ParseError::new("empty file: no SRT cues"));
    }
    let is_number = |l: &str| {
        let l = l.trim();
        !l.is_empty() && l.chars().all(|c| c.is_ascii_digit())
    };
    let mut cues: Vec<Cue> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if blank(lines[i]) {
            i += 1;
            continue;
        }
        let cue_no = cues.len() + 1;
        let line = lines[i].trim();
        let next = lines.get(i + 1).copied().filter(|l| !blank(l));
        let timing_at = if line.contains("-->") {
            i
        } else if next.is_some_and(|n| n.contains("-->")) {
            if !is_number(line) {
                return Err(ParseError::new(format!(
                    "invalid SRT cue number {:?} in cue {cue_no} (line {}): expected a number before the timeframe",
                    shorten(line),
                    i + 1
                )));
            }
            i + 1
        } else if is_number(line) {
            return Err(ParseError::new(match next {
                Some(found) => format!(
                    "missing SRT timeframe (\"HH:MM:SS,mmm --> HH:MM:SS,mmm\") in cue {cue_no} (line {}): found {:?}",
                    i + 2,
                    shorten(found.trim())
                ),
                None => format!(
                    "missing SRT timeframe (\"HH:MM:SS,mmm --> HH:MM:SS,mmm\") in cue {cue_no}: the cue number {line:?} on line {} is the last line of its cue",
                    i + 1
                ),
            }));
        } else if let Some(last) = cues.last_mut() {
            // Text after a blank line inside a cue: keep it with that cue.
            last.text.push('\n');
            last.text.push_str(lines[i]);
            i += 1;
            continue;
        } else {
            return Err(ParseError::new(format!(
                "not an SRT cue at line {}: {:?} (expected a cue number, then a \"-->\" timeframe)",
                i + 1,
                shorten(line)
            )));
        };
        let (start, end) = timing(lines[timing_at], cue_no, timing_at + 1, Syntax::Srt)?;
        let mut j = timing_at + 1;
        let mut text_lines: Vec<&str> = Vec::new();
        while j < lines.len() && !blank(lines[j]) {
            // Cues run together without a blank line: a number followed by a timeframe.
            let next_is_timing = lines.get(j + 1).is_some_and(|n| n.contains("-->"));
            if lines[j].contains("-->") || (is_number(lines[j]) && next_is_timing) {
                break;
            }
            text_lines.push(lines[j]);
            j += 1;
        }
        cues.push(Cue {
            start,
            end,
            text: text_lines.join("\n"),
        });
        i = j;
    }
    into_turns(input, ctx, &cues, "srt", None, "SRT file")
}

/// Caption cues → speaker turns; a file without cues is an error naming the format.
fn into_turns(
    input: &[u8],
    ctx: &ParseContext,
    cues: &[Cue],
    source_format: &'static str,
    language: Option<String>,
    what: &str,
) -> Result<Vec<Interaction>, ParseError> {
    if cues.is_empty() {
        return Err(ParseError::new(format!("no cues found in {what}")));
    }
    let call = Call {
        id: None,
        start: None,
        language,
        source_format,
        caller_ids: Vec::new(),
    };
    let kind = if source_format == "vtt" {
        "WebVTT"
    } else {
        "SRT"
    };
    turns::build(
        input,
        ctx,
        call,
        pieces(cues),
        &format!("{kind} cues (every cue is empty)"),
    )
}

fn blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// `NOTE`, `STYLE`, `REGION` alone or followed by whitespace.
fn is_block_keyword(line: &str, keyword: &str) -> bool {
    line.strip_prefix(keyword)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(MAX).collect::<String>())
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Syntax {
    WebVtt,
    Srt,
}

/// `start --> end [settings]` to seconds.
fn timing(
    line: &str,
    cue_no: usize,
    line_no: usize,
    syntax: Syntax,
) -> Result<(f64, f64), ParseError> {
    let (left, right) = line.split_once("-->").unwrap_or((line, ""));
    let start_text = left.trim();
    let end_text = right.split_whitespace().next().unwrap_or("");
    let parse = |ts: &str| {
        timestamp(ts, syntax).ok_or_else(|| {
            let kind = if syntax == Syntax::WebVtt {
                "WebVTT"
            } else {
                "SRT"
            };
            ParseError::new(format!(
                "invalid {kind} timestamp {:?} in cue {cue_no} (line {line_no})",
                shorten(ts)
            ))
        })
    };
    Ok((parse(start_text)?, parse(end_text)?))
}

/// WebVTT `[h:]mm:ss.ttt` (unpadded fields accepted); SRT `hh:mm:ss,ttt` (also with `.`).
fn timestamp(ts: &str, syntax: Syntax) -> Option<f64> {
    let parts: Vec<&str> = ts.split(':').collect();
    let (hours, minutes, seconds) = match (parts.len(), syntax) {
        (3, _) => (parts[0], parts[1], parts[2]),
        (2, Syntax::WebVtt) => ("0", parts[0], parts[1]),
        _ => return None,
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 9 && s.chars().all(|c| c.is_ascii_digit());
    let (whole, fraction) = match seconds.split_once(if syntax == Syntax::Srt {
        [',', '.']
    } else {
        ['.', '.']
    }) {
        Some((w, f)) => (w, Some(f)),
        None => (seconds, None),
    };
    if !digits(hours) || !digits(minutes) || !digits(whole) || fraction.is_some_and(|f| !digits(f))
    {
        return None;
    }
    let minutes: f64 = minutes.parse().ok()?;
    let whole: f64 = whole.parse().ok()?;
    if minutes >= 60.0 || whole >= 60.0 {
        return None;
    }
    let fraction: f64 = fraction.map_or(Some(0.0), |f| format!("0.{f}").parse().ok())?;
    Some(hours.parse::<f64>().ok()? * 3600.0 + minutes * 60.0 + whole + fraction)
}

/// Every cue's speaker pieces, in order.
fn pieces(cues: &[Cue]) -> Vec<Piece> {
    let mut out = Vec::new();
    for cue in cues {
        for (voice, text) in voice_spans(&cue.text) {
            let text = decode_cue_entities(&text);
            match voice {
                Some(name) => out.push(Piece::new(
                    Some(name),
                    text.replace('\n', " "),
                    cue.start,
                    Some(cue.end),
                )),
                None => out.extend(line_speakers(&text, cue.start, cue.end)),
            }
        }
    }
    out
}

/// Splits cue text at WebVTT voice tags and strips every other tag (`<c>`, `<i>`, `<b>`,
/// `<font …>`, `<00:00:01.000>`, `{\an8}`). Entities are left for [`decode_cue_entities`].
fn voice_spans(text: &str) -> Vec<(Option<String>, String)> {
    let mut spans: Vec<(Option<String>, String)> = vec![(None, String::new())];
    let mut rest = text;
    while let Some(pos) = rest.find(['<', '{']) {
        let (before, tag_on) = rest.split_at(pos);
        spans.last_mut().expect("never empty").1.push_str(before);
        let close = if tag_on.starts_with('<') { '>' } else { '}' };
        let is_tag = close == '>' || tag_on.starts_with("{\\");
        match tag_on.find(close).filter(|_| is_tag) {
            Some(end) => {
                let inner = tag_on[1..end].trim();
                if let Some(voice) = inner
                    .strip_prefix('v')
                    .filter(|v| v.starts_with([' ', '\t', '.']))
                {
                    // `<v Name>` or `<v.class Name>`: the name follows the first whitespace.
                    let name = voice
                        .split_once([' ', '\t'])
                        .map(|(_, n)| n.trim())
                        .unwrap_or("");
                    let name = (!name.is_empty()).then(|| decode_cue_entities(name));
                    spans.push((name, String::new()));
                } else if inner == "/v" {
                    spans.push((None, String::new()));
                }
                rest = &tag_on[end + 1..];
            }
            None => {
                spans
                    .last_mut()
                    .expect("never empty")
                    .1
                    .push_str(&tag_on[..1]);
                rest = &tag_on[1..];
            }
        }
    }
    spans.last_mut().expect("never empty").1.push_str(rest);
    spans.retain(|(_, t)| !t.trim().is_empty());
    spans
}

/// Speakers inside unvoiced cue text: a line starting with `Name:` or `[Name]` names one,
/// a line starting with a dash is a new unnamed speaker, other lines continue the last.
fn line_speakers(text: &str, start: f64, end: f64) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (dashed, line) = match dialogue_dash(line) {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let named = name_prefix(line);
        if dashed || named.is_some() || out.is_empty() {
            let (speaker, line) = match named {
                Some((name, rest)) => (Some(name), rest),
                None => (None, line),
            };
            let mut piece = Piece::new(speaker, line, start, Some(end));
            piece.speaker_change = dashed && !out.is_empty();
            out.push(piece);
        } else if let Some(last) = out.last_mut() {
            last.push_text(line);
        }
    }
    out
}

/// `- text`, `-text`, `– text`: the rest; `---` and `-->` are not dialogue dashes.
fn dialogue_dash(line: &str) -> Option<&str> {
    let rest = line.strip_prefix(['-', '–', '—'])?;
    if rest.starts_with(['-', '–', '—', '>']) {
        return None;
    }
    let rest = rest.trim_start();
    (!rest.is_empty()).then_some(rest)
}

/// `Anna: text` or `[Anna] text` at the start of a line: the name and the rest.
fn name_prefix(line: &str) -> Option<(String, &str)> {
    let (name, rest) = if let Some(bracketed) = line.strip_prefix('[') {
        let (name, rest) = bracketed.split_once(']')?;
        (name, rest.trim_start())
    } else {
        let (name, rest) = line.split_once(':')?;
        if !rest.starts_with([' ', '\t']) {
            return None;
        }
        (name, rest.trim_start())
    };
    let name = name.trim();
    (plausible_name(name) && !rest.is_empty()).then(|| (name.to_string(), rest))
}

/// One to three words of letters (digits and `_` allowed after the first letter, as in
/// `spk_0`, `Speaker 2`), at most 32 characters, capitalised unless it holds a digit or `_`.
fn plausible_name(name: &str) -> bool {
    let words = name.split_whitespace().count();
    let Some(first) = name.chars().next() else {
        return false;
    };
    first.is_alphabetic()
        && (1..=3).contains(&words)
        && name.chars().count() <= 32
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '.' | '-' | '\'' | '_'))
        && (first.is_uppercase() || name.contains(|c: char| c.is_ascii_digit() || c == '_'))
}

/// Cue text with its entities decoded by [`crate::text::decode_entities`]; a no-break space
/// is layout in a caption, not part of what was said, so it becomes a plain space.
fn decode_cue_entities(text: &str) -> String {
    crate::text::decode_entities(text).replace('\u{a0}', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Role;
    use crate::testing::{corpus, ctx, fixture};

    fn edge(name: &str) -> Option<Result<Vec<Interaction>, ParseError>> {
        let path = corpus(&format!("call/webvtt-srt-edgecases/{name}"))?;
        let input = std::fs::read(&path).unwrap();
        let c = ctx(name);
        Some(if name.ends_with(".srt") {
            parse_srt(&input, &c)
        } else {
            parse_vtt(&input, &c)
        })
    }

    fn texts(out: &[Interaction]) -> Vec<&str> {
        out.iter().map(|i| i.text.as_str()).collect()
    }

    fn err(name: &str) -> Option<String> {
        Some(edge(name)?.expect_err(name).reason)
    }

    fn ok(name: &str) -> Option<Vec<Interaction>> {
        Some(edge(name)?.unwrap_or_else(|e| panic!("{name}: {e}")))
    }

    #[test]
    fn corpus_well_formed_vtt_files() {
        let Some(out) = ok("sample.vtt") else { return };
        assert_eq!(out.len(), 16, "unlabelled cues stay separate turns");
        assert_eq!(out[0].text, "Caption text #1");
        assert_eq!(out[15].attributes["end_s"], 64.3);
        assert!(
            out.iter()
                .all(|i| i.author.role == Role::Unknown && i.in_reply_to.is_none())
        );
        assert_eq!(out[0].attributes["source_format"], "vtt");

        let out = ok("captions_with_bom.vtt").unwrap();
        assert_eq!(
            texts(&out),
            [
                "Caption text #1",
                "Caption text #2",
                "Caption text #3",
                "Caption text #4"
            ]
        );
        assert_eq!(out[0].attributes["start_s"], 0.5);

        let out = ok("one_caption.vtt").unwrap();
        assert_eq!(texts(&out), ["Caption text #1"]);
        assert_eq!(out[0].attributes["end_s"], 7.0);

        let out = ok("using_identifiers.vtt").unwrap();
        assert_eq!(out.len(), 6);
        assert_eq!(out[1].text, "Caption text #2");

        for name in ["metadata_headers.vtt", "metadata_headers_multiline.vtt"] {
            let out = ok(name).unwrap();
            assert_eq!(
                texts(&out),
                ["Caption text #1", "Caption text #2"],
                "{name}"
            );
            assert_eq!(out[0].language.as_deref(), Some("en"), "{name}");
        }
    }

    #[test]
    fn corpus_vtt_blocks_tags_and_voices() {
        let Some(out) = ok("comments.vtt") else {
            return;
        };
        assert_eq!(
            texts(&out),
            [
                "Ta en kopp varmt te.",
                "Det är inte varmt.",
                "Har en kopp te.",
                "Det smakar som te.",
                "Ta en kopp"
            ]
        );
        assert_eq!(
            out[1].in_reply_to.as_deref(),
            Some(out[0].id.as_str()),
            "a dialogue dash is a new speaker"
        );
        assert_eq!(out[2].in_reply_to, None);
        assert_eq!(out[4].attributes["start_s"], 145.0);

        for name in ["styles.vtt", "styles_with_comments.vtt"] {
            assert_eq!(texts(&ok(name).unwrap()), ["Hello world."], "{name}");
        }

        let out = ok("cue_tags.vtt").unwrap();
        assert_eq!(
            texts(&out),
            [
                "When the moon hits your eye",
                "Like a big-a pizza pie",
                "That's amore"
            ]
        );
        assert_eq!(out[0].attributes["start_s"], 16.5, "MM:SS.mmm timestamps");

        let out = ok("regions.vtt").unwrap();
        assert_eq!(texts(&out), ["Hi, my name is Fred", "Hi, I’m Bill"]);
        assert_eq!(out[0].author.name.as_deref(), Some("Fred"));
        assert_eq!(out[1].attributes["speaker"], "Bill");
        assert_eq!(out[1].in_reply_to.as_deref(), Some(out[0].id.as_str()));

        let out = ok("non_padded_timestamps.vtt").unwrap();
        assert_eq!(
            texts(&out),
            [
                "Good morning everyone.",
                "Morning, let's get started.",
                "Thanks for joining."
            ]
        );
        assert_eq!(out[0].author.name.as_deref(), Some("Jane Doe"));
        assert_eq!(out[1].attributes["end_s"], 7.23);
        assert_eq!(out[2].attributes["start_s"], 65.2);
        assert_eq!(out[2].attributes["end_s"], 3727.95);

        let out = ok("styles_colours.vtt").unwrap();
        assert_eq!(
            out[2].text,
            "Some italic and normal coloured text. By the way, 2 < 3 !"
        );
        assert_eq!(out[4].text, "Stéphane ? Où on se gare ?");
        assert_eq!(out.len(), 6);

        let out = ok("youtube_dl.vtt").unwrap();
        assert_eq!(
            texts(&out)[..3],
            ["yeah", "yeah what", "this will happen is I'm telling"]
        );
        assert_eq!(
            out[2].attributes["start_s"], 304.08,
            "a timing line ends the cue before it"
        );

        let out = ok("netflix_chicas_del_cable.vtt").unwrap();
        assert_eq!(out[0].text, "En 1928,");
        assert_eq!(out[0].author.name.as_deref(), Some("Alba"));
        assert_eq!(out[1].text, "las mujeres éramos algo así como adornos");
        assert!(out.len() > 800 && out.iter().all(|i| !i.text.contains('<')));
    }

    #[test]
    fn corpus_invalid_vtt_files_are_precise_errors() {
        let Some(e) = err("empty.vtt") else { return };
        assert!(e.starts_with("empty file"), "{e}");
        let e = err("no_captions.vtt").unwrap();
        assert!(e.starts_with("no cues found in WebVTT"), "{e}");
        let e = err("invalid.vtt").unwrap();
        assert_eq!(
            e,
            "not a WebVTT file: line 1 is \"00:00:00.500 --> 00:00:07.000\", expected the WEBVTT header"
        );
        let e = err("invalid_timeframe.vtt").unwrap();
        assert_eq!(
            e,
            "invalid WebVTT timestamp \"00:00:1d.890\" in cue 2 (line 6)"
        );
        let e = err("missing_timeframe.vtt").unwrap();
        assert_eq!(
            e,
            "missing \"-->\" timing line in cue 2 (line 6): found \"Caption text #2\""
        );
        let e = err("invalid_timeframe_in_cue_text.vtt").unwrap();
        assert!(
            e.starts_with(
                "cue 2 (line 6) has no text: another timing line follows it directly (line 7)"
            ),
            "{e}"
        );
        // Best effort: the cue without text is dropped, the others are kept.
        let out = ok("missing_caption_text.vtt").unwrap();
        assert_eq!(
            texts(&out),
            [
                "Caption text #1",
                "Caption text #3",
                "Caption text #4",
                "Caption text #5"
            ]
        );
        assert_eq!(out[1].attributes["start_s"], 11.89);
    }

    #[test]
    fn corpus_srt_files() {
        let Some(out) = ok("sample.srt") else { return };
        assert_eq!(out.len(), 5);
        assert_eq!(out[4].text, "Caption text #5");
        assert_eq!(out[4].attributes["start_s"], 21.58);
        assert_eq!(out[4].attributes["end_s"], 23.88);
        assert_eq!(out[0].attributes["source_format"], "srt");
        assert_eq!(texts(&ok("one_caption.srt").unwrap()), ["Caption text #1"]);

        let out = ok("styles_colours.srt").unwrap();
        assert_eq!(out[0].text, "Musique douce");
        assert_eq!(
            out[2].text,
            "Some italic and normal coloured text. By the way, 2 < 3 !"
        );
        assert_eq!(out[5].text, "Euh, là-bas, au chêne.");

        let out = ok("missing_caption_text.srt").unwrap();
        assert_eq!(
            texts(&out),
            [
                "Caption text #1",
                "Caption text #3",
                "Caption text #4",
                "Caption text #5"
            ]
        );

        let e = err("invalid_timeframe.srt").unwrap();
        assert_eq!(
            e,
            "invalid SRT timestamp \"00:00:11:890\" in cue 2 (line 6)"
        );
        let e = err("missing_timeframe.srt").unwrap();
        assert!(
            e.starts_with("missing SRT timeframe")
                && e.contains("in cue 2 (line 6): found \"Caption text #2\""),
            "{e}"
        );
        let e = err("invalid_format1.srt").unwrap();
        assert!(
            e.starts_with("missing SRT timeframe") && e.contains("cue 1") && e.contains("line 1"),
            "{e}"
        );
        let e = err("invalid_format2.srt").unwrap();
        assert_eq!(
            e,
            "not an SRT cue at line 1: \"some text\" (expected a cue number, then a \"-->\" timeframe)"
        );
        let e = err("invalid_format3.srt").unwrap();
        assert!(e.contains("in cue 1 (line 2): found \"some text\""), "{e}");
        let e = err("invalid_format4.srt").unwrap();
        assert!(
            e.starts_with("invalid SRT cue number \"some text\" in cue 1 (line 1)"),
            "{e}"
        );
    }

    #[test]
    fn norwegian_vtt_fixture_with_voices() {
        let input = std::fs::read(fixture("call/kundesenter-no.vtt")).unwrap();
        let out = parse_vtt(&input, &ctx("no.vtt")).unwrap();
        let who: Vec<(&str, Role)> = out
            .iter()
            .map(|i| (i.author.name.as_deref().unwrap(), i.author.role))
            .collect();
        assert_eq!(
            who,
            [
                ("Agent", Role::Agent),
                ("Kunde", Role::Customer),
                ("Agent", Role::Agent),
                ("Kunde", Role::Customer)
            ]
        );
        assert_eq!(out[0].language.as_deref(), Some("nb"));
        assert_eq!(
            out[1].text,
            "Hei, jeg har fått feil regning for mars. Dere har trukket meg to ganger & jeg vil ha pengene tilbake."
        );
        assert_eq!(out[1].attributes["start_s"], 4.2);
        assert_eq!(out[1].attributes["end_s"], 12.0);
        assert_eq!(out[1].in_reply_to.as_deref(), Some(out[0].id.as_str()));
        assert_eq!(
            out[0].id,
            format!("call:{}:0", crate::ids::content_hash(&input))
        );
        assert_eq!(out[0].channel, crate::record::Channel::Call);
        assert_eq!(out[3].text, "Takk <3 for hjelpen.");
    }

    #[test]
    fn srt_fixture_with_name_prefixes_and_a_speaker_map() {
        let input = std::fs::read(fixture("call/kundeservice-da.srt")).unwrap();
        let mut c = ctx("da.srt");
        c.speaker_roles = vec![("Mette".into(), Role::Agent)];
        let out = parse_srt(&input, &c).unwrap();
        let names: Vec<Option<&str>> = out.iter().map(|i| i.author.name.as_deref()).collect();
        assert_eq!(
            names,
            [Some("Mette"), Some("Kunde"), Some("Mette"), Some("Kunde")]
        );
        assert_eq!(out[0].author.role, Role::Agent, "from the speaker map");
        assert_eq!(out[1].author.role, Role::Customer, "from the label itself");
        assert_eq!(
            out[1].text,
            "Min ordre er ikke kommet. Den skulle være her i tirsdags."
        );
        assert_eq!(out[2].text, "Det må jeg beklage.");
        assert_eq!(out[3].attributes["start_s"], 14.5);
    }

    #[test]
    fn invalid_fixtures_name_cue_and_line() {
        let input = std::fs::read(fixture("call/invalid-timestamp.vtt")).unwrap();
        let e = parse_vtt(&input, &ctx("x.vtt")).unwrap_err();
        assert_eq!(
            e.reason,
            "invalid WebVTT timestamp \"00:00:0x.000\" in cue 3 (line 12)"
        );
        let input = std::fs::read(fixture("call/invalid-timestamp.srt")).unwrap();
        let e = parse_srt(&input, &ctx("x.srt")).unwrap_err();
        assert_eq!(
            e.reason,
            "invalid SRT timestamp \"00:61:02,000\" in cue 2 (line 6)"
        );
        let input = std::fs::read(fixture("call/latin1.vtt")).unwrap();
        let e = parse_vtt(&input, &ctx("x.vtt")).unwrap_err();
        assert!(
            e.reason
                .starts_with("not valid UTF-8: invalid byte sequence at byte"),
            "{}",
            e.reason
        );
        let input = std::fs::read(fixture("call/latin1.srt")).unwrap();
        let e = parse_srt(&input, &ctx("x.srt")).unwrap_err();
        assert!(e.reason.starts_with("not valid UTF-8"), "{}", e.reason);
    }

    #[test]
    fn timestamps_parse_strictly() {
        assert_eq!(timestamp("01:02:03.500", Syntax::WebVtt), Some(3723.5));
        assert_eq!(timestamp("02:03.5", Syntax::WebVtt), Some(123.5));
        assert_eq!(timestamp("02:03,500", Syntax::Srt), None, "SRT needs hours");
        assert_eq!(timestamp("00:00:01.250", Syntax::Srt), Some(1.25));
        assert_eq!(timestamp("00:00:01,250", Syntax::WebVtt), None);
        assert_eq!(timestamp("00:60:00.000", Syntax::WebVtt), None);
        assert_eq!(timestamp("", Syntax::WebVtt), None);
        assert_eq!(timestamp("-1:00:00.000", Syntax::WebVtt), None);
    }

    #[test]
    fn cue_text_with_many_ampersands_decodes_in_linear_time() {
        // 1 MB of `&a` without a `;`: looking for `;` to the end per `&` never finishes.
        let text = "&a".repeat(500_000);
        assert_eq!(decode_cue_entities(&text), text);
        let vtt = format!("WEBVTT\n\n00:01.000 --> 00:02.000\n<v Kunde>{text}&amp;\n");
        let out = parse_vtt(vtt.as_bytes(), &ctx("x")).unwrap();
        assert_eq!(out[0].text.len(), text.len() + 1);
        assert!(out[0].text.ends_with("a&"));
    }

    #[test]
    fn tags_entities_and_prefixes() {
        let spans = voice_spans("<v.loud Esme Allen>Hej <b>du</b></v> <v Bo>&amp;");
        assert_eq!(
            spans,
            [
                (Some("Esme Allen".to_string()), "Hej du".to_string()),
                (Some("Bo".to_string()), "&amp;".to_string())
            ]
        );
        assert_eq!(
            decode_cue_entities("a &lt;b&gt; &amp;&nbsp;c &#229;&#xE6; &unknown; & x"),
            "a <b> & c åæ &unknown; & x"
        );
        assert_eq!(
            decode_cue_entities("&lrm;Hej&rlm; &apos;du&#39;"),
            "Hej 'du'"
        );
        assert_eq!(
            name_prefix("AGENT: Hej"),
            Some(("AGENT".to_string(), "Hej"))
        );
        assert_eq!(name_prefix("spk_1: ja"), Some(("spk_1".to_string(), "ja")));
        assert_eq!(name_prefix("klokken 10:30 i dag"), None);
        assert_eq!(
            name_prefix("Vi ringer i morgen tidlig om det her: ok"),
            None
        );
        assert_eq!(
            name_prefix("[Musik]"),
            None,
            "a sound cue alone is text, not a speaker"
        );
        assert_eq!(dialogue_dash("--- "), None);
        assert_eq!(dialogue_dash("-Hej"), Some("Hej"));
        let out = parse_vtt(b"WEBVTT\n00:01.000 --> 00:02.000\n<v Kunde>Hej", &ctx("x")).unwrap();
        assert_eq!(out[0].text, "Hej", "a cue right under the header");
        let err = parse_srt(b"1\n00:00:01,000 --> \nHej\n", &ctx("x")).unwrap_err();
        assert_eq!(err.reason, "invalid SRT timestamp \"\" in cue 1 (line 2)");
        let out = parse_srt(
            b"1\n00:00:01,000 --> 00:00:02,000\nA\n2\n00:00:03,000 --> 00:00:04,000\nB\n",
            &ctx("x"),
        )
        .unwrap();
        assert_eq!(out.len(), 2, "cues without blank lines between them");
    }
}
