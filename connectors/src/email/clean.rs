//! Removes what the sender did not write in this message: quoted replies (`>` lines, the
//! quoted thread below a reply header) and signatures (`-- ` blocks, mobile sign-offs).
//!
//! The rules are line based and deliberately conservative: a reply header only counts when
//! it has the shape a mail client writes ("On <date>, <name> wrote:", "Den <date> skrev
//! <name>:", "-----Original Message-----", an Outlook `From:`/`Sent:` block), so ordinary
//! sentences that mention writing are kept.

/// Lines that open a signature or a sign-off added by a client (matched case-insensitively
/// at the start of the trimmed line).
const SIGN_OFFS: &[&str] = &[
    "sent from my ",
    "sent from mail for windows",
    "sent from outlook",
    "sent from yahoo mail",
    "sent from samsung",
    "get outlook for ",
    "sendt fra min ",
    "sendt fra mail",
    "sendt fra outlook",
    "sendt fra yahoo",
    "sendt fra samsung",
    "hentet fra outlook",
    "hent outlook for ",
    "få outlook for ",
    "skaff deg outlook",
    "skickat från min ",
    "skickat från e-post",
    "skickat från outlook",
    "skickat från mail",
    "hämta outlook för ",
    "von meinem ",
    "gesendet von meinem ",
    "envoyé de mon ",
];

/// Phrases of the separator line clients put above a quoted or forwarded message
/// (`-----Original Message-----` and its translations).
const SEPARATORS: &[&str] = &[
    "original message",
    "oprindelig meddelelse",
    "oprindelig besked",
    "opprinnelig melding",
    "ursprungligt meddelande",
    "ursprüngliche nachricht",
    "original-nachricht",
    "message d'origine",
    "forwarded message",
    "videresendt meddelelse",
    "videresendt besked",
    "videresendt melding",
    "vidarebefordrat meddelande",
    "begin forwarded message",
];

/// First line of an Outlook-style quoted header block.
const HEADER_FROM: &[&str] = &["from:", "fra:", "från:", "von:", "de :", "de:"];

/// The line that must follow [`HEADER_FROM`] within a few lines for it to be a header block.
const HEADER_SENT: &[&str] = &[
    "sent:",
    "sendt:",
    "skickat:",
    "date:",
    "dato:",
    "datum:",
    "gesendet:",
    "envoyé :",
    "envoyé:",
];

/// Why the text is cut at a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    /// A reply header ("On … wrote:") spanning this many lines.
    Attribution(usize),
    /// `-----Original Message-----` and friends.
    Separator,
    /// Outlook's `From:`/`Sent:` block.
    HeaderBlock,
    /// `-- ` or a mobile sign-off: everything below is the signature.
    Signature,
    /// A `>` line.
    Quote,
}

impl Marker {
    fn is_quote(self) -> bool {
        !matches!(self, Marker::Signature)
    }
}

/// Strips quoted replies and signatures from a plain-text body.
///
/// When the body *starts* with a quote marker and nothing would remain (a forward without a
/// note, a fully quoted message), the quoted material is kept without its markers instead:
/// a best-effort text beats an empty one. An empty result means the sender wrote nothing.
pub fn strip_quotes_and_signatures(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let (kept, first_marker) = own_text(&lines);
    if has_text(&kept) {
        return kept.join("\n").trim().to_string();
    }
    match first_marker {
        Some((0, marker)) if marker.is_quote() => {
            let rest = unquote(skip_leading_markers(&lines));
            let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
            own_text(&rest).0.join("\n").trim().to_string()
        }
        _ => String::new(),
    }
}

/// The sender's own lines, and the first marker with its index among the non-blank lines
/// (0 = the body opens with it).
fn own_text<'a>(lines: &[&'a str]) -> (Vec<&'a str>, Option<(usize, Marker)>) {
    let mut kept = Vec::with_capacity(lines.len());
    let mut first_marker = None;
    let mut content_seen = 0;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(marker) = marker_at(lines, i) {
            first_marker.get_or_insert((content_seen, marker));
            // "On … wrote:" directly above `>` lines only introduces them; the sender may
            // answer below (bottom posting), so drop the header and go on.
            if let Marker::Attribution(n) = marker
                && next_non_blank(lines, i + n).is_some_and(is_quoted)
            {
                i += n;
                continue;
            }
            break;
        }
        if is_quoted(line) {
            first_marker.get_or_insert((content_seen, Marker::Quote));
        } else {
            if !line.trim().is_empty() {
                content_seen += 1;
            }
            kept.push(line);
        }
        i += 1;
    }
    // An Outlook rule ("____") or a dash line left hanging above the cut.
    while kept
        .last()
        .is_some_and(|l| l.trim().is_empty() || is_rule(l))
    {
        kept.pop();
    }
    (kept, first_marker)
}

fn marker_at(lines: &[&str], i: usize) -> Option<Marker> {
    let line = lines[i];
    let raw = line.trim_end_matches('\r');
    if raw == "-- " || raw == "--" || is_sign_off(raw) {
        return Some(Marker::Signature);
    }
    if is_separator(raw) {
        return Some(Marker::Separator);
    }
    if is_header_block(lines, i) {
        return Some(Marker::HeaderBlock);
    }
    attribution_len(lines, i).map(Marker::Attribution)
}

fn has_text(lines: &[&str]) -> bool {
    lines.iter().any(|l| !l.trim().is_empty())
}

fn next_non_blank<'a>(lines: &[&'a str], from: usize) -> Option<&'a str> {
    lines
        .iter()
        .skip(from)
        .find(|l| !l.trim().is_empty())
        .copied()
}

fn is_quoted(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

fn is_rule(line: &str) -> bool {
    let t = line.trim();
    t.len() >= 5 && t.chars().all(|c| c == '_' || c == '-' || c == '=')
}

fn is_sign_off(line: &str) -> bool {
    // Sign-offs are short; a long line that starts the same way is the sender's sentence.
    let t = line.trim().to_lowercase();
    t.chars().count() <= 60 && SIGN_OFFS.iter().any(|p| t.starts_with(p))
}

fn is_separator(line: &str) -> bool {
    let t = line.trim().to_lowercase();
    if t.chars().count() > 80 {
        return false;
    }
    let phrase = t.trim_matches(|c: char| c == '-' || c == '_' || c == '*' || c.is_whitespace());
    let framed = t.starts_with("--") || t.starts_with("__") || t.ends_with("--");
    SEPARATORS.iter().any(|s| {
        phrase == *s
            || (framed && phrase.contains(s))
            || (*s == "begin forwarded message" && phrase.starts_with(s))
    })
}

/// Header-field prefix of a line, ignoring the `*bold*` that HTML conversion leaves.
fn header_line_starts(line: &str, names: &[&str]) -> bool {
    let t = line.trim().trim_start_matches('*').to_lowercase();
    names.iter().any(|n| t.starts_with(n))
}

fn is_header_block(lines: &[&str], i: usize) -> bool {
    if !header_line_starts(lines[i], HEADER_FROM) {
        return false;
    }
    // Outlook on the web flattens the block onto one line.
    let lower = lines[i].to_lowercase();
    if HEADER_SENT
        .iter()
        .any(|s| lower.contains(&format!(" {s}")) || lower.contains(&format!("*{s}")))
    {
        return true;
    }
    lines
        .iter()
        .skip(i + 1)
        .filter(|l| !l.trim().is_empty())
        .take(3)
        .any(|l| header_line_starts(l, HEADER_SENT))
}

/// Length in lines of the reply header starting at `i` (clients wrap long ones), if any.
fn attribution_len(lines: &[&str], i: usize) -> Option<usize> {
    let first = lines[i].trim();
    if !opens_attribution(first) {
        return None;
    }
    let mut joined = String::from(first);
    for n in 1..=3 {
        if is_attribution(&joined) {
            return Some(n);
        }
        let next = lines.get(i + n)?.trim();
        if next.is_empty() {
            return None;
        }
        joined.push(' ');
        joined.push_str(next);
    }
    None
}

fn opens_attribution(line: &str) -> bool {
    let starts = |p: &str| line.starts_with(p);
    if starts("On ")
        || starts("Den ")
        || starts("den ")
        || starts("Am ")
        || starts("Le ")
        || starts("Op ")
    {
        return true;
    }
    if line.contains(" skrev") || line.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        return true;
    }
    let lower = line.to_lowercase();
    SCANDINAVIAN_DAYS.iter().any(|d| lower.starts_with(d))
}

/// Weekday abbreviations Gmail puts in front of Danish, Norwegian and Swedish reply headers.
const SCANDINAVIAN_DAYS: &[&str] = &[
    "man. ", "tir. ", "ons. ", "tor. ", "tors. ", "fre. ", "lør. ", "søn. ", "mån ", "tis ",
    "tors ", "fre ", "lör ", "sön ", "mån. ", "tis. ", "lör. ", "sön. ",
];

fn is_attribution(joined: &str) -> bool {
    let t = joined.trim();
    if t.chars().count() > 300 || !t.ends_with(':') {
        return false;
    }
    let has_digit = t.chars().any(|c| c.is_ascii_digit());
    let lower = t.to_lowercase();
    (t.starts_with("On ") && lower.ends_with("wrote:"))
        || (t.starts_with("Am ") && lower.contains("schrieb"))
        || (t.starts_with("Le ") && lower.contains("a écrit"))
        || (t.starts_with("Op ") && lower.contains("schreef"))
        || (lower.contains("skrev")
            && has_digit
            && (lower.starts_with("den ")
                || t.contains('@')
                || lower.contains(" kl. ")
                || SCANDINAVIAN_DAYS.iter().any(|d| lower.starts_with(d))))
}

/// Drops the reply header, separator and header block the body opens with.
fn skip_leading_markers<'a, 'b>(lines: &'b [&'a str]) -> &'b [&'a str] {
    let mut i = 0;
    loop {
        while lines
            .get(i)
            .is_some_and(|l| l.trim().is_empty() || is_rule(l))
        {
            i += 1;
        }
        if i >= lines.len() {
            return &lines[i..];
        }
        match marker_at(lines, i) {
            Some(Marker::Attribution(n)) => i += n,
            Some(Marker::Separator) => i += 1,
            Some(Marker::HeaderBlock) => {
                // "Key: value" lines (with wrapped continuations) up to the first blank line.
                while lines.get(i).is_some_and(|l| !l.trim().is_empty()) {
                    i += 1;
                }
            }
            _ => return &lines[i..],
        }
    }
}

/// Removes one level of `>` quoting from every line, and deeper levels too.
fn unquote(lines: &[&str]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            let mut t = l.trim_start();
            while let Some(rest) = t.strip_prefix('>') {
                t = rest.strip_prefix(' ').unwrap_or(rest);
            }
            t.to_string()
        })
        .collect()
}

/// An HTML body as the sender's plain text: quoted blocks (`<blockquote>`, Gmail's
/// `gmail_quote`, Yahoo's `yahoo_quoted`) are removed before conversion, block elements
/// become line breaks so the line rules above apply, then quotes and signatures are
/// stripped as for plain text. Falls back to the whole HTML when that leaves nothing.
pub fn html_body(html: &str) -> String {
    let without_quotes = remove_quoted_html(html);
    let text = strip_quotes_and_signatures(&crate::text::html_to_text(&without_quotes));
    if !text.trim().is_empty() || without_quotes.len() == html.len() {
        return text;
    }
    strip_quotes_and_signatures(&crate::text::html_to_text(html))
}

/// Removes `<blockquote>` elements and quote containers (`<div class="gmail_quote">`).
fn remove_quoted_html(html: &str) -> String {
    let mut out = html.to_string();
    loop {
        let lower = out.to_ascii_lowercase();
        let found = find_open_tag(&lower, "blockquote", |_| true)
            .map(|at| (at, "blockquote"))
            .or_else(|| {
                find_open_tag(&lower, "div", |tag| {
                    tag.contains("gmail_quote") || tag.contains("yahoo_quoted")
                })
                .map(|at| (at, "div"))
            });
        let Some((start, name)) = found else {
            return out;
        };
        let end = matching_close(&lower, start, name).unwrap_or(lower.len());
        out.replace_range(start..end, "<br>");
    }
}

/// Byte offset of the first `<name …>` whose tag text satisfies `accept`.
fn find_open_tag(lower: &str, name: &str, accept: impl Fn(&str) -> bool) -> Option<usize> {
    let open = format!("<{name}");
    let mut from = 0;
    while let Some(rel) = lower[from..].find(&open) {
        let at = from + rel;
        let after = lower[at + open.len()..].chars().next();
        if matches!(after, Some(c) if c == '>' || c == '/' || c.is_whitespace()) {
            let tag_end = lower[at..].find('>').map_or(lower.len(), |e| at + e + 1);
            if accept(&lower[at..tag_end]) {
                return Some(at);
            }
        }
        from = at + open.len();
    }
    None
}

/// Byte offset just after the `</name>` closing the element opened at `start`.
fn matching_close(lower: &str, start: usize, name: &str) -> Option<usize> {
    let open = format!("<{name}");
    let close = format!("</{name}");
    let mut depth = 0usize;
    let mut pos = start;
    loop {
        let next_open = lower[pos..].find(&open).map(|i| pos + i);
        let next_close = lower[pos..].find(&close).map(|i| pos + i)?;
        match next_open {
            Some(o) if o < next_close => {
                depth += 1;
                pos = o + open.len();
            }
            _ => {
                depth = depth.saturating_sub(1);
                let end = lower[next_close..]
                    .find('>')
                    .map_or(lower.len(), |e| next_close + e + 1);
                if depth == 0 {
                    return Some(end);
                }
                pos = end;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::strip_quotes_and_signatures as strip;

    #[test]
    fn quoted_lines_are_dropped_and_interleaved_answers_kept() {
        let text = "Hej\n> Hvornår kommer pakken?\nDen kommer i morgen.\n>> gammel tekst\nMvh";
        assert_eq!(strip(text), "Hej\nDen kommer i morgen.\nMvh");
    }

    #[test]
    fn english_reply_header_wrapped_over_two_lines_cuts_the_quote() {
        let text = "Thanks, that works.\n\nOn Mon, 4 Mar 2024 at 10:12, Mette Jensen <\nmette@example.com> wrote:\nWe have sent a new parcel.\n";
        assert_eq!(strip(text), "Thanks, that works.");
    }

    #[test]
    fn danish_norwegian_swedish_reply_headers() {
        for header in [
            "Den tir. 5. mar. 2024 kl. 10.12 skrev Kundeservice <kundeservice@example-shop.dk>:",
            "tir. 5. mar. 2024 kl. 10:12 skrev Ola Nordmann <ola@example.no>:",
            "Den 5 mars 2024 kl. 10:12 skrev Sara Lind <sara@example.se>:",
            "Den 05.03.2024 kl. 10:12 skrev Mette Jensen:",
        ] {
            let text = format!("Tak for svaret.\n\n{header}\nGammel tekst uden citattegn\n");
            assert_eq!(strip(&text), "Tak for svaret.", "header: {header}");
        }
    }

    #[test]
    fn prose_that_mentions_writing_is_kept() {
        let text = "Jeg skrev til jer den 3. marts:\nPakken er ikke kommet.";
        assert_eq!(strip(text), text);
    }

    #[test]
    fn original_message_separators_in_four_languages() {
        for sep in [
            "-----Original Message-----",
            "-----Oprindelig meddelelse-----",
            "-----Opprinnelig melding-----",
            "-----Ursprungligt meddelande-----",
            "---------- Forwarded message ---------",
        ] {
            let text = format!("Se nedenfor.\n{sep}\nFrom: a@example.com\nText\n");
            assert_eq!(strip(&text), "Se nedenfor.", "separator: {sep}");
        }
    }

    #[test]
    fn outlook_header_block_cuts_the_quote() {
        let text = "Det er i orden.\n\n________________________________\nFra: Anna Berg <anna@example.com>\nSendt: 4. marts 2024 10:12\nTil: kundeservice@example-shop.dk\nEmne: Ordre 1234\n\nGammel besked\n";
        assert_eq!(strip(text), "Det er i orden.");
        let one_line = "OK.\n*From:* Anna *Sent:* Monday *To:* Bo\nold";
        assert_eq!(strip(one_line), "OK.");
        let not_a_block = "From: the shop I expected better.\nNothing else.";
        assert_eq!(strip(not_a_block), not_a_block);
    }

    #[test]
    fn signatures_and_mobile_sign_offs_are_dropped() {
        assert_eq!(strip("Hej\n\n-- \nMette Jensen\nTlf 12345678"), "Hej");
        assert_eq!(strip("Hej\n--\nMette"), "Hej");
        assert_eq!(strip("Hej\n\nSent from my iPhone"), "Hej");
        assert_eq!(strip("Hej\n\nSendt fra min iPad\n"), "Hej");
        assert_eq!(strip("Hej\nSkickat från min iPhone"), "Hej");
        assert_eq!(strip("Hej\nHentet fra Outlook for Android"), "Hej");
        let sentence = "Sent from my work account, since the private one is blocked by your shop.";
        assert_eq!(strip(sentence), sentence);
        // A dash line that is not exactly the delimiter is text.
        assert_eq!(strip("Pris -- 200 kr"), "Pris -- 200 kr");
    }

    #[test]
    fn bottom_posted_answer_below_the_quote_is_kept() {
        let text = "On Mon, 4 Mar 2024, Bo <bo@example.com> wrote:\n> Is it shipped?\n\nYes, today.\n-- \nShop";
        assert_eq!(strip(text), "Yes, today.");
    }

    #[test]
    fn a_body_that_opens_with_a_quote_marker_keeps_the_quoted_text() {
        let forward = "-----Original Message-----\nFrom: Bo <bo@example.com>\nSent: Monday\nSubject: Refund\n\nI still have no refund.\n";
        assert_eq!(strip(forward), "I still have no refund.");
        let all_quoted = "> I still have no refund.\n> Bo";
        assert_eq!(strip(all_quoted), "I still have no refund.\nBo");
    }

    #[test]
    fn signature_only_is_empty() {
        assert_eq!(strip("\n-- \nMette Jensen\n"), "");
        assert_eq!(strip("Sent from my iPhone"), "");
    }

    #[test]
    fn html_quotes_are_removed_and_blocks_become_lines() {
        let html = "<div dir=\"ltr\">Pakken er ikke kommet.</div><div>Hilsen Ole</div>\
            <div class=\"gmail_quote\"><div>Den 4. mar. 2024 kl. 10:12 skrev Butikk:</div>\
            <blockquote><div>Vi sender i dag.<div>nested</div></div></blockquote></div>";
        assert_eq!(
            crate::text::normalise_whitespace(&super::html_body(html)),
            "Pakken er ikke kommet.\nHilsen Ole"
        );
        let only_quote = "<blockquote>Bare dette</blockquote>";
        assert_eq!(super::html_body(only_quote).trim(), "Bare dette");
    }
}
