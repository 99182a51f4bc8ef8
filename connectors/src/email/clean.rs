//! Removes what the sender did not write in this message: quoted replies (`>` lines, the
//! quoted thread below a reply header) and signatures (`-- ` blocks, mobile sign-offs).
//!
//! The rules are line based and deliberately conservative: a reply header only counts when
//! it has the shape a mail client writes ("On <date>, <name> wrote:", "Den <date> skrev
//! <name>:", "-----Original Message-----", an Outlook `From:`/`Sent:` block), so ordinary
//! sentences that mention writing are kept.

/// How a client's sign-off line starts ("Sent from my iPhone", "Von meinem iPhone
/// gesendet", "Hent Outlook for Android"), matched case-insensitively at the start of the
/// trimmed line. The start alone proves nothing ("Von meinem Konto wurden 50 € doppelt
/// abgebucht." is the customer's sentence): see [`is_sign_off`] for the rest of the line.
const SIGN_OFF_STARTS: &[&str] = &[
    // English
    "sent from ",
    "sent with ",
    "sent via ",
    "sent using ",
    "sent on ",
    // "Get Outlook for iOS" and its translations: only with the app's name, since "Få appen
    // på mobil" may be the sender's own sentence.
    "get outlook ",
    // Danish and Norwegian
    "sendt fra ",
    "sendt med ",
    "sendt via ",
    "sendt från ",
    "hentet fra ",
    "hent outlook ",
    "få outlook ",
    "skaff deg outlook ",
    // Swedish
    "skickat från ",
    "skickad från ",
    "skickat med ",
    "skickat via ",
    "hämta outlook ",
    // German
    "von meinem ",
    "von meiner ",
    "gesendet von ",
    "gesendet mit ",
    "gesendet via ",
    // French
    "envoyé de ",
    "envoyé depuis ",
    "envoyé avec ",
    "envoyé via ",
    "obtenir outlook ",
    "téléchargez outlook ",
];

/// Devices and mail apps a sign-off names; at least one must follow the start.
const SIGN_OFF_DEVICES: &[&str] = &[
    "iphone",
    "ipad",
    "ipod",
    "android",
    "samsung",
    "galaxy",
    "huawei",
    "honor",
    "pixel",
    "xiaomi",
    "redmi",
    "oneplus",
    "oppo",
    "nokia",
    "motorola",
    "moto",
    "sony",
    "xperia",
    "blackberry",
    "fairphone",
    "mobile",
    "mobil",
    "mobilen",
    "mobiltelefon",
    "mobiltelefonen",
    "telefon",
    "telefonen",
    "phone",
    "smartphone",
    "smarttelefon",
    "smarttelefonen",
    "handy",
    "téléphone",
    "portable",
    "tablet",
    "tablette",
    "surfplatta",
    "outlook",
    "mail",
    "email",
    "gmail",
    "yahoo",
    "aol",
    "icloud",
    "gmx",
    "protonmail",
    "proton",
    "thunderbird",
    "windows",
    "ios",
    "ipados",
];

/// Other words a sign-off may hold around the device (possessives, prepositions, "for
/// Android", "gesendet", "secure email"); any other word makes the line the sender's text.
const SIGN_OFF_FILLERS: &[&str] = &[
    "my", "the", "a", "an", "for", "on", "with", "from", "by", "via", "and", "min", "mit", "mine",
    "fra", "til", "på", "med", "og", "från", "för", "och", "meinem", "meiner", "mein", "für",
    "von", "auf", "der", "dem", "gesendet", "mon", "ma", "de", "pour", "sur", "avec", "sendt",
    "skickat", "envoyé", "device", "enhed", "enhet", "gerät", "appareil", "app", "appen", "secure",
    "sikker", "post", "e", "pro", "max", "plus", "mini", "ultra", "lite", "note", "edge", "se",
    "air", "mobilt", "please", "excuse", "brevity", "typos", "t", "lte", "wireless", "verizon",
    "sprint", "telia", "telenor", "tele2", "vodafone",
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
    /// A forwarded message's header: what follows is passed on, not replied to.
    fn is_forward(self) -> bool {
        matches!(self, Marker::Separator | Marker::HeaderBlock)
    }
}

/// Strips quoted replies and signatures from a plain-text body.
///
/// When the body *starts* with a forward (`-----Original Message-----`, an Outlook header
/// block) and nothing would remain, the forwarded text is kept without its header: what the
/// sender chose to pass on. A reply that only quotes keeps nothing: the quoted words are
/// someone else's (the message is then recorded by its subject). An empty result means the
/// sender wrote nothing.
pub fn strip_quotes_and_signatures(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let (kept, first_marker) = own_text(&lines);
    if has_text(&kept) {
        return kept.join("\n").trim().to_string();
    }
    match first_marker {
        Some((0, marker)) if marker.is_forward() => {
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
        } else if introduces_quote(line) && next_non_blank(lines, i + 1).is_some_and(is_quoted) {
            // "Kari Nordmann skrev:" above an inline quote: the quote's label, not an answer.
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

/// A short line that labels the quote below it without a date: "Kari Nordmann skrev:",
/// "Anna <anna@example.net> wrote:", "Lars schrieb:".
fn introduces_quote(line: &str) -> bool {
    const ENDINGS: &[&str] = &[
        "wrote:",
        "writes:",
        "skrev:",
        "skriver:",
        "schrieb:",
        "a écrit :",
        "a écrit:",
        "schreef:",
    ];
    let t = line.trim().to_lowercase();
    t.chars().count() <= 160 && ENDINGS.iter().any(|e| t.ends_with(e))
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

/// A client's sign-off: short, one of [`SIGN_OFF_STARTS`], then nothing but a device or app
/// ([`SIGN_OFF_DEVICES`], at least one), model numbers ("15", "S23") and
/// [`SIGN_OFF_FILLERS`]. "Sent from my iPhone", "Sendt fra min Samsung Galaxy-smarttelefon",
/// "Von meinem iPhone gesendet", "Hentet fra Outlook for Android" are sign-offs; "Von meinem
/// Konto wurden 50 € doppelt abgebucht." and "Sent from my work account" are not.
fn is_sign_off(line: &str) -> bool {
    // Sign-offs are short; a long line that starts the same way is the sender's sentence.
    let t = line.trim().to_lowercase();
    if t.chars().count() > 60 {
        return false;
    }
    let Some(rest) = SIGN_OFF_STARTS.iter().find_map(|p| t.strip_prefix(p)) else {
        return false;
    };
    let mut names_device = false;
    for word in rest
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if SIGN_OFF_DEVICES.contains(&word) {
            names_device = true;
        } else if !(SIGN_OFF_FILLERS.contains(&word) || word.chars().any(|c| c.is_ascii_digit())) {
            return false;
        }
    }
    names_device
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

/// Removes `<blockquote>` elements and quote containers (`<div class="gmail_quote">`,
/// `yahoo_quoted`), each replaced by a `<br>`; an element that is never closed runs to the end.
///
/// One pass: the document is lowercased once for matching (ASCII lowercasing keeps every
/// byte offset), a cursor walks the tags, and the kept ranges are copied to the output, so
/// a mail of 200,000 blockquotes costs what its length costs.
fn remove_quoted_html(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut tag_ends = TagEnds::default();
    let mut out = String::with_capacity(html.len());
    let mut kept_from = 0;
    let mut pos = 0;
    while let Some(rel) = bytes[pos..].iter().position(|&b| b == b'<') {
        let at = pos + rel;
        let quote = if is_open_tag(bytes, at, b"blockquote") {
            Some(b"blockquote".as_slice())
        } else if is_open_tag(bytes, at, b"div") {
            // The tag's text: up to its `>`, and never past the next `<` (a `<div` that is
            // never closed must not make every later one look at the rest of the document).
            let next_lt = bytes[at + 1..]
                .iter()
                .position(|&b| b == b'<')
                .map_or(bytes.len(), |i| at + 1 + i);
            let tag = &lower[at..tag_ends.after(bytes, at).min(next_lt)];
            (tag.contains("gmail_quote") || tag.contains("yahoo_quoted"))
                .then_some(b"div".as_slice())
        } else {
            None
        };
        match quote {
            Some(name) => {
                out.push_str(&html[kept_from..at]);
                out.push_str("<br>");
                let end = element_end(bytes, at, name, &mut tag_ends);
                kept_from = end;
                pos = end;
            }
            None => pos = at + 1,
        }
    }
    out.push_str(&html[kept_from..]);
    out
}

/// `<name` at `at`, followed by `>`, `/` or whitespace (so `<div` is not `<divider`).
fn is_open_tag(lower: &[u8], at: usize, name: &[u8]) -> bool {
    lower[at + 1..].starts_with(name)
        && lower
            .get(at + 1 + name.len())
            .is_some_and(|&c| c == b'>' || c == b'/' || c.is_ascii_whitespace())
}

/// `</name` at `at`, followed by `>` or whitespace.
fn is_close_tag(lower: &[u8], at: usize, name: &[u8]) -> bool {
    lower[at + 1..].starts_with(b"/")
        && lower[at + 2..].starts_with(name)
        && lower
            .get(at + 2 + name.len())
            .is_none_or(|&c| c == b'>' || c.is_ascii_whitespace())
}

/// Byte offset just after the `</name>` that closes the element opened at `start`, nesting
/// counted in the same pass; the end of the document when it is never closed.
fn element_end(lower: &[u8], start: usize, name: &[u8], tag_ends: &mut TagEnds) -> usize {
    let mut depth = 0usize;
    let mut pos = start;
    while let Some(rel) = lower[pos..].iter().position(|&b| b == b'<') {
        let at = pos + rel;
        if is_open_tag(lower, at, name) {
            depth += 1;
            pos = at + 1 + name.len();
        } else if is_close_tag(lower, at, name) {
            depth = depth.saturating_sub(1);
            let end = tag_ends.after(lower, at);
            if depth == 0 {
                return end;
            }
            pos = end;
        } else {
            pos = at + 1;
        }
    }
    lower.len()
}

/// Where the tag starting at a `<` ends, remembered: the first `>` after `at` is also the
/// first after every position between `at` and it, so a run of `<div` without a `>` (or a
/// missing `>` at the end) is searched once, not once per tag.
#[derive(Default)]
struct TagEnds {
    /// The last search: `(from, gt)`, the first `>` at or after `from` is at `gt` (`gt` is
    /// the length when there is none).
    last: Option<(usize, usize)>,
}

impl TagEnds {
    /// The offset just after the `>` that ends the tag at `at` (the end of the document when
    /// there is none).
    fn after(&mut self, lower: &[u8], at: usize) -> usize {
        let gt = match self.last {
            Some((from, gt)) if from <= at && at <= gt => gt,
            _ => {
                let gt = lower[at..]
                    .iter()
                    .position(|&b| b == b'>')
                    .map_or(lower.len(), |i| at + i);
                self.last = Some((at, gt));
                gt
            }
        };
        (gt + 1).min(lower.len())
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
        for sign_off in [
            "Sent from my iPhone",
            "Sent from my Samsung Galaxy S23 Ultra.",
            "Sent from Yahoo Mail on Android",
            "Sent from Mail for Windows",
            "Get Outlook for iOS",
            "Skaff deg Outlook for Android",
            "Sendt fra min Samsung Galaxy-smarttelefon.",
            "Sendt fra Mail til Windows 10",
            "Sendt fra min mobil",
            "Hent Outlook for Android",
            "Skickat från min iPhone",
            "Skickat från E-post för Windows",
            "Hämta Outlook för Android",
            "Von meinem iPhone gesendet",
            "Von meinem Huawei-Telefon gesendet",
            "Gesendet von meinem Handy",
            "Gesendet mit der GMX Mail App",
            "Envoyé de mon iPhone",
            "Envoyé depuis mon téléphone mobile",
        ] {
            assert_eq!(
                strip(&format!("Hej\n\n{sign_off}\nSignatur")),
                "Hej",
                "{sign_off}"
            );
        }
    }

    #[test]
    fn lines_that_only_start_like_a_sign_off_are_the_senders_text() {
        for text in [
            "Von meinem Konto wurden 50 € doppelt abgebucht.",
            "Von meinem iPhone aus kann ich mich nicht einloggen.",
            "Sent from my work account",
            "Sent from my bank yesterday",
            "Sendt fra min adresse i Aarhus",
            "Sendt fra min konto to gange",
            "Skickat från min gamla adress",
            "Envoyé de mon compte hier",
            "Get me a refund now",
            "Get the iPhone app",
            "Få pengene tilbage",
            "Få appen på mobil",
        ] {
            let body = format!("Hej\n{text}\nMvh Bo");
            assert_eq!(strip(&body), body, "{text}");
        }
    }

    #[test]
    fn bottom_posted_answer_below_the_quote_is_kept() {
        let text = "On Mon, 4 Mar 2024, Bo <bo@example.com> wrote:\n> Is it shipped?\n\nYes, today.\n-- \nShop";
        assert_eq!(strip(text), "Yes, today.");
    }

    #[test]
    fn a_forward_without_a_note_keeps_the_forwarded_text_but_a_bare_quote_is_not_the_senders() {
        let forward = "-----Original Message-----\nFrom: Bo <bo@example.com>\nSent: Monday\nSubject: Refund\n\nI still have no refund.\n";
        assert_eq!(strip(forward), "I still have no refund.");
        // Someone else's words: the message is recorded by its subject instead.
        let all_quoted = "> I still have no refund.\n> Bo";
        assert_eq!(strip(all_quoted), "");
        let attributed =
            "Den 2. mar. 2026 kl. 14.00 skrev Sven Ek <sven@example.se>:\n> Samma här.";
        assert_eq!(strip(attributed), "");
    }

    #[test]
    fn an_undated_label_above_an_inline_quote_is_not_an_answer() {
        let text =
            "Kari Nordmann skrev:\n> Jeg har samme feil.\n\nSamma här.\n>> Yes, twice.\nEn timme.";
        assert_eq!(strip(text), "Samma här.\nEn timme.");
        // A sentence that ends in "wrote:" but introduces no quote stays.
        assert_eq!(
            strip("This is what support wrote:\nreinstall"),
            "This is what support wrote:\nreinstall"
        );
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

    #[test]
    fn quoted_html_is_removed_in_one_pass() {
        // 200,000 empty blockquotes (5 MB): rescanning the document per element never ends.
        let html = format!(
            "<p>Hej</p>{}<p>Tak</p>",
            "<BlockQuote></blockquote>".repeat(200_000)
        );
        let removed = super::remove_quoted_html(&html);
        assert_eq!(removed.len(), "<p>Hej</p><p>Tak</p>".len() + 4 * 200_000);
        assert!(removed.starts_with("<p>Hej</p><br><br>"));
        assert!(removed.ends_with("<br><br><p>Tak</p>"));
        assert_eq!(
            crate::text::normalise_whitespace(&super::html_body(&html)),
            "Hej\n\nTak"
        );

        // A quote container holding 100,000 nested divs: one scan finds its end.
        let html = format!(
            "Svar<div class=\"gmail_quote\">{}{}</div>efter",
            "<div>".repeat(100_000),
            "</div >".repeat(100_000)
        );
        assert_eq!(super::remove_quoted_html(&html), "Svar<br>efter");

        // 100,000 `<div` without one `>`: the tag end is searched once.
        let html = format!("Hej{}", "<div ".repeat(100_000));
        assert_eq!(super::remove_quoted_html(&html), html);
    }

    #[test]
    fn quoted_html_nesting_and_unclosed_elements() {
        let remove = super::remove_quoted_html;
        assert_eq!(
            remove("a<blockquote>b<blockquote>c</blockquote>d</blockquote>e"),
            "a<br>e"
        );
        assert_eq!(remove("a<blockquote type=cite>b"), "a<br>");
        assert_eq!(
            remove("a<div class=\"yahoo_quoted\"><div>x</div>y</div>b<div>keep</div>"),
            "a<br>b<div>keep</div>"
        );
        assert_eq!(
            remove("<blockquotes>kept</blockquotes><divider>kept</divider>"),
            "<blockquotes>kept</blockquotes><divider>kept</divider>"
        );
        assert_eq!(remove("æ<BLOCKQUOTE>ø</BLOCKQUOTE>å"), "æ<br>å");
    }
}
