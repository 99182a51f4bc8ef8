//! PII redaction before anything is stored or logged: e-mail addresses, phone numbers,
//! payment card numbers, IBANs, Danish CPR numbers and Norwegian fødselsnummer, each
//! replaced by `[kind]`. Numbers are checked, not just shaped: cards by Luhn, IBANs by
//! their mod-97 check, fødselsnummer by both control digits and a date, CPR by its date;
//! so order numbers, amounts and dates stay readable for the models.
//!
//! Where detectors overlap (a Swedish phone number is also ten digits with a date
//! shape), the more specific kind wins, in `PiiKind::ALL` order; either way the text is
//! redacted.

use std::borrow::Cow;
use std::sync::LazyLock;

use rapport_record::Interaction;
use regex::Regex;

/// A kind of personal data Rapport redacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PiiKind {
    Email,
    Iban,
    Card,
    Fodselsnummer,
    Cpr,
    Phone,
}

impl PiiKind {
    /// In priority order: where two detectors claim the same text, the earlier wins.
    pub const ALL: [PiiKind; 6] = [
        PiiKind::Email,
        PiiKind::Iban,
        PiiKind::Card,
        PiiKind::Fodselsnummer,
        PiiKind::Cpr,
        PiiKind::Phone,
    ];

    /// The name in `privacy.kinds` and in the replacement `[name]`.
    pub fn name(&self) -> &'static str {
        match self {
            PiiKind::Email => "email",
            PiiKind::Iban => "iban",
            PiiKind::Card => "card",
            PiiKind::Fodselsnummer => "fodselsnummer",
            PiiKind::Cpr => "cpr",
            PiiKind::Phone => "phone",
        }
    }

    pub fn parse(name: &str) -> Option<PiiKind> {
        PiiKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b[a-z0-9._%+'\-]+@[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}\b").unwrap()
});
static IBAN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b").unwrap());
static CARD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b(?:\d[ \-]?){12,18}\d\b").unwrap());
static FODSELSNUMMER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(\d{6}) ?(\d{5})\b").unwrap());
static CPR: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b(\d{6})[\- ]?(\d{4})\b").unwrap());
/// International (`+45 …`, `0047 …`), grouped national (`12 34 56 78`, `070-123 45 67`,
/// `(555) 123-4567`) and Swedish/British trunk-prefixed (`0701234567`) forms.
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?:\+|\b00)\d{1,3}(?:[ \-]?\(?\d{1,4}\)?){2,6}",
        r"|(?:\(\d{2,4}\)|\b\d{2,4})(?:[ \-]\d{2,4}){2,4}\b",
        r"|\b0\d{9,10}\b",
    ))
    .unwrap()
});
/// A bare eight-digit Danish or Norwegian number counts as a phone number only after a
/// word that says so: alone it is as likely an order or customer number.
static KEYWORD_PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:tlf|tel|telefon|telefonnummer|telefonnr|phone|mobil|mobile|mob|ring)\.?:?\s*(?:på|on|til|to)?\s*(\d{8})\b").unwrap()
});
static ISO_DATE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\d{4}-\d{2}-\d{2}$").unwrap());

fn digits(text: &str) -> Vec<u32> {
    text.chars().filter_map(|c| c.to_digit(10)).collect()
}

fn luhn(d: &[u32]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| match (i % 2, x * 2) {
            (1, doubled) if doubled > 9 => doubled - 9,
            (1, doubled) => doubled,
            _ => x,
        })
        .sum();
    sum.is_multiple_of(10)
}

fn iban_valid(text: &str) -> bool {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let rearranged = compact[4..].chars().chain(compact[..4].chars());
    let mut remainder = 0u32;
    for c in rearranged {
        let value = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

/// Day and month in range (no calendar: 31 February passes, which errs on redacting).
fn plausible_date(day: u32, month: u32) -> bool {
    (1..=31).contains(&day) && (1..=12).contains(&month)
}

fn fodselsnummer_valid(d: &[u32]) -> bool {
    if d.len() != 11 {
        return false;
    }
    const W1: [u32; 9] = [3, 7, 6, 1, 8, 9, 4, 5, 2];
    const W2: [u32; 10] = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
    let control = |weights: &[u32], digits: &[u32]| {
        let k = 11 - weights.iter().zip(digits).map(|(w, x)| w * x).sum::<u32>() % 11;
        if k == 11 { 0 } else { k }
    };
    let (k1, k2) = (control(&W1, &d[..9]), control(&W2, &d[..10]));
    // D-numbers add 4 to the day's first digit, H-numbers 4 to the month's.
    let day = (d[0] % 4) * 10 + d[1];
    let month = (d[2] % 4) * 10 + d[3];
    k1 == d[9] && k2 == d[10] && plausible_date(day, month)
}

/// What was redacted, and how many of each kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Redacted<'a> {
    pub text: Cow<'a, str>,
    pub found: Vec<(PiiKind, usize)>,
}

/// Redacts the configured kinds.
#[derive(Debug, Clone)]
pub struct Redactor {
    kinds: Vec<PiiKind>,
}

impl Redactor {
    /// `kinds` in any order; they are applied in `PiiKind::ALL` priority.
    pub fn new(kinds: &[PiiKind]) -> Redactor {
        Redactor {
            kinds: PiiKind::ALL
                .into_iter()
                .filter(|k| kinds.contains(k))
                .collect(),
        }
    }

    /// Redacts what is stored: the text, the subject and other text attributes, and the
    /// author's identity keys (they live in the identity bucket, linked by `customer_id`).
    pub fn redact_interaction(&self, interaction: &mut Interaction) {
        if let Cow::Owned(text) = self.redact(&interaction.text).text {
            interaction.text = text;
        }
        for value in interaction.attributes.values_mut() {
            if let serde_json::Value::String(s) = value
                && let Cow::Owned(redacted) = self.redact(s).text
            {
                *s = redacted;
            }
        }
        if let Some(name) = &interaction.author.name
            && let Cow::Owned(redacted) = self.redact(name).text
        {
            interaction.author.name = Some(redacted);
        }
        interaction.author.ids.clear();
    }

    /// Every span of `kind` in `text`, validated.
    fn spans(kind: PiiKind, text: &str) -> Vec<(usize, usize)> {
        let whole = |re: &Regex, keep: &dyn Fn(&str) -> bool| -> Vec<(usize, usize)> {
            re.find_iter(text)
                .filter(|m| keep(m.as_str()))
                .map(|m| (m.start(), m.end()))
                .collect()
        };
        match kind {
            PiiKind::Email => whole(&EMAIL, &|_| true),
            PiiKind::Iban => IBAN
                .find_iter(text)
                .filter_map(|m| {
                    // The pattern may run on into a following capitalised word: drop
                    // trailing space-separated groups until the check passes.
                    let mut candidate = m.as_str();
                    loop {
                        if iban_valid(candidate) {
                            return Some((m.start(), m.start() + candidate.len()));
                        }
                        candidate = &candidate[..candidate.rfind(' ')?];
                    }
                })
                .collect(),
            PiiKind::Card => whole(&CARD, &|m| {
                let d = digits(m);
                (13..=19).contains(&d.len()) && luhn(&d)
            }),
            PiiKind::Fodselsnummer => whole(&FODSELSNUMMER, &|m| fodselsnummer_valid(&digits(m))),
            PiiKind::Cpr => whole(&CPR, &|m| {
                let d = digits(m);
                plausible_date(d[0] * 10 + d[1], d[2] * 10 + d[3])
            }),
            PiiKind::Phone => {
                let mut spans = whole(&PHONE, &|m| {
                    (8..=15).contains(&digits(m).len()) && !ISO_DATE.is_match(m)
                });
                spans.extend(
                    KEYWORD_PHONE
                        .captures_iter(text)
                        .filter_map(|c| c.get(1).map(|m| (m.start(), m.end()))),
                );
                spans
            }
        }
    }

    pub fn redact<'a>(&self, text: &'a str) -> Redacted<'a> {
        let mut taken: Vec<(usize, usize, PiiKind)> = Vec::new();
        for &kind in &self.kinds {
            for (start, end) in Redactor::spans(kind, text) {
                if taken.iter().all(|&(s, e, _)| end <= s || start >= e) {
                    taken.push((start, end, kind));
                }
            }
        }
        if taken.is_empty() {
            return Redacted {
                text: Cow::Borrowed(text),
                found: Vec::new(),
            };
        }
        taken.sort_unstable();
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        let mut found: Vec<(PiiKind, usize)> = Vec::new();
        for (start, end, kind) in taken {
            out.push_str(&text[at..start]);
            out.push('[');
            out.push_str(kind.name());
            out.push(']');
            at = end;
            match found.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += 1,
                None => found.push((kind, 1)),
            }
        }
        out.push_str(&text[at..]);
        found.sort_unstable();
        Redacted {
            text: Cow::Owned(out),
            found,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Redactor {
        Redactor::new(&PiiKind::ALL)
    }

    /// (input, expected output) pairs for one kind.
    fn check(kind: PiiKind, cases: &[(&str, &str)]) {
        for (input, expected) in cases {
            let redacted = all().redact(input);
            assert_eq!(redacted.text, *expected, "{kind:?}: {input}");
            assert!(
                redacted.found.iter().any(|(k, _)| *k == kind),
                "{kind:?} not counted for {input}: {:?}",
                redacted.found
            );
        }
    }

    #[test]
    fn emails_in_each_language() {
        check(
            PiiKind::Email,
            &[
                (
                    "Skriv til mig på jens.hansen@posteo.dk, tak.",
                    "Skriv til mig på [email], tak.",
                ),
                (
                    "Min e-post er kari_nordmann+faktura@online.no",
                    "Min e-post er [email]",
                ),
                (
                    "Mejla anna.svensson@foretag.se så svarar jag.",
                    "Mejla [email] så svarar jag.",
                ),
                (
                    "Reach me at John.O'Neil@example.co.uk",
                    "Reach me at [email]",
                ),
            ],
        );
    }

    #[test]
    fn phone_numbers_in_each_countrys_usual_formatting() {
        check(
            PiiKind::Phone,
            &[
                (
                    "Ring på +45 12 34 56 78 i morgen",
                    "Ring på [phone] i morgen",
                ),
                ("mit nummer er 12 34 56 78", "mit nummer er [phone]"),
                ("tlf. 12345678", "tlf. [phone]"),
                ("Ring meg på +47 912 34 567", "Ring meg på [phone]"),
                ("mobil: 91234567", "mobil: [phone]"),
                ("Mitt nummer är 070-123 45 67", "Mitt nummer är [phone]"),
                ("ring +46 70 123 45 67", "ring [phone]"),
                (
                    "Call +44 20 7946 0018 or 020 7946 0018",
                    "Call [phone] or [phone]",
                ),
                ("my cell is (555) 123-4567", "my cell is [phone]"),
            ],
        );
    }

    #[test]
    fn a_bare_ten_digit_number_with_a_date_shape_is_redacted_either_way() {
        // A Swedish mobile without separators is also a valid CPR shape; CPR wins, and
        // the number is gone either way.
        assert_eq!(all().redact("nås på 0701234567").text, "nås på [cpr]");
        assert_eq!(
            Redactor::new(&[PiiKind::Phone])
                .redact("nås på 0701234567")
                .text,
            "nås på [phone]"
        );
    }

    #[test]
    fn card_numbers_pass_luhn() {
        check(
            PiiKind::Card,
            &[
                (
                    "kortet 4111 1111 1111 1111 blev trukket to gange",
                    "kortet [card] blev trukket to gange",
                ),
                ("card 5500-0000-0000-0004 declined", "card [card] declined"),
            ],
        );
        // Sixteen digits that fail Luhn are not a card (nor a phone number).
        let text = "reference 1234 5678 9012 3456";
        assert_eq!(all().redact(text).text, text);
    }

    #[test]
    fn ibans_pass_their_check() {
        check(
            PiiKind::Iban,
            &[
                ("Overfør til DK50 0040 0440 1162 43", "Overfør til [iban]"),
                ("kontonummer NO9386011117947", "kontonummer [iban]"),
                ("IBAN: SE45 5000 0000 0583 9825 7466.", "IBAN: [iban]."),
                ("pay GB82 WEST 1234 5698 7654 32 today", "pay [iban] today"),
                ("IBAN GB82 WEST 1234 5698 7654 32 TAK", "IBAN [iban] TAK"),
            ],
        );
        assert!(!iban_valid("DK5000400440116244"), "one digit off");
    }

    #[test]
    fn danish_cpr_numbers() {
        check(
            PiiKind::Cpr,
            &[
                ("Mit CPR-nummer er 010203-1234", "Mit CPR-nummer er [cpr]"),
                ("cpr 0102031234", "cpr [cpr]"),
            ],
        );
        // Not a date: month 13.
        let text = "ordre 011303-1234";
        assert_eq!(all().redact(text).text, text);
    }

    #[test]
    fn norwegian_fodselsnummer_need_both_control_digits() {
        check(
            PiiKind::Fodselsnummer,
            &[
                ("fødselsnummer 15058912317", "fødselsnummer [fodselsnummer]"),
                ("fnr: 311299 45616", "fnr: [fodselsnummer]"),
            ],
        );
        assert!(!fodselsnummer_valid(&digits("15058912318")));
    }

    #[test]
    fn ordinary_numbers_stay() {
        for text in [
            "Ordre 123456 er sendt",
            "Det kostede 1.299 kr.",
            "Leveringen kom 2024-03-04 kl. 14.30",
            "Fakturanr 87654321",
            "Vi bestilte 12 stk. til 3 450 kr",
        ] {
            let redacted = all().redact(text);
            assert_eq!(redacted.text, text);
            assert!(matches!(redacted.text, Cow::Borrowed(_)));
        }
    }

    #[test]
    fn only_configured_kinds_are_redacted_and_counts_add_up() {
        let text = "mail a@b.dk, b@c.no, ring +45 12 34 56 78";
        let emails_only = Redactor::new(&[PiiKind::Email]).redact(text);
        assert_eq!(
            emails_only.text,
            "mail [email], [email], ring +45 12 34 56 78"
        );
        assert_eq!(emails_only.found, vec![(PiiKind::Email, 2)]);
        let both = all().redact(text);
        assert_eq!(both.found, vec![(PiiKind::Email, 2), (PiiKind::Phone, 1)]);
        assert_eq!(
            PiiKind::parse("fodselsnummer"),
            Some(PiiKind::Fodselsnummer)
        );
        assert_eq!(PiiKind::parse("ssn"), None);
    }
}
