//! Fixture and corpus tests for the e-mail formats.
//!
//! Fixtures (tests/fixtures/email/, written by the team, all names and domains fictional):
//! a Danish thread (`dk-thread-*.eml`, LF, UTF-8), a Norwegian thread (`no-thread-*.eml`,
//! CRLF; HTML-only, quoted-printable ISO-8859-1, multipart with an attachment), both threads
//! in one mboxrd file, and edge cases (empty body, invalid Date, no Date, windows-1252).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use time::macros::datetime;

use super::message::body_text;
use super::{EMPTY_BODY, is_company_address, parse_eml, parse_mbox};
use crate::format::{Format, Unit, detect};
use crate::ids::content_hash;
use crate::record::{Channel, Interaction, Role};
use crate::testing::{corpus, ctx, fixture};

const DK1: &str = "email:CAF8x2k1-dk1@mail.postmail.example";
const DK2: &str = "email:20240304120205.48213.dk2@support.example-shop.dk";
const DK3: &str = "email:CAF8x2k3-dk3@mail.postmail.example";
const NO1: &str = "email:a1b2c3d4-no1@epost.example";
const NO2: &str = "email:no2.77120.0311@example-shop.dk";
const NO3: &str = "email:a1b2c3d4-no3@epost.example";

const THREAD_FILES: [&str; 6] = [
    "dk-thread-1.eml",
    "dk-thread-2.eml",
    "dk-thread-3.eml",
    "no-thread-1.eml",
    "no-thread-2.eml",
    "no-thread-3.eml",
];

fn bytes(name: &str) -> Vec<u8> {
    let path = fixture(&format!("email/{name}"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn one(name: &str) -> Interaction {
    let mut all = parse_eml(&bytes(name), &ctx(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(all.len(), 1, "{name}: one message, one interaction");
    all.remove(0)
}

fn error(name: &str) -> String {
    match parse_eml(&bytes(name), &ctx(name)) {
        Ok(i) => panic!("{name}: expected an error, got {i:?}"),
        Err(e) => e.reason,
    }
}

fn ok_ids(units: &[Unit]) -> Vec<String> {
    units
        .iter()
        .map(|u| match &u.outcome {
            Ok(i) => i[0].id.clone(),
            Err(e) => panic!("unit {}..{} failed: {e}", u.start, u.end),
        })
        .collect()
}

#[test]
fn danish_thread_ids_threading_roles_and_times() {
    let [m1, m2, m3] = ["dk-thread-1.eml", "dk-thread-2.eml", "dk-thread-3.eml"].map(one);

    assert_eq!([&m1.id, &m2.id, &m3.id], [DK1, DK2, DK3]);
    for m in [&m1, &m2, &m3] {
        assert_eq!(m.conversation_id, DK1, "{}: one conversation", m.id);
        assert_eq!(m.channel, Channel::Email);
        assert_eq!(m.connector, "test");
        assert!(!m.public);
    }
    assert_eq!(m1.in_reply_to, None);
    assert_eq!(m2.in_reply_to.as_deref(), Some(DK1));
    assert_eq!(m3.in_reply_to.as_deref(), Some(DK2));

    // The customer's address is lowercased; the agent writes from a subdomain of the company
    // domain and adds the shared mailbox as Reply-To.
    assert_eq!(m1.author.role, Role::Customer);
    assert_eq!(m1.author.ids, ["email:sofie.kjaer@postmail.example"]);
    assert_eq!(m1.author.name.as_deref(), Some("Sofie Kjær"));
    assert_eq!(m2.author.role, Role::Agent);
    assert_eq!(
        m2.author.ids,
        [
            "email:mikkel.holm@support.example-shop.dk",
            "email:kundeservice@example-shop.dk"
        ]
    );
    assert_eq!(m2.author.name.as_deref(), Some("Mikkel Holm"));
    assert_eq!(m3.author.role, Role::Customer);

    assert_eq!(m1.occurred_at, datetime!(2024-03-04 08:14:22 UTC));
    assert_eq!(m2.occurred_at, datetime!(2024-03-04 12:02:05 UTC));
    assert_eq!(m3.occurred_at, datetime!(2024-03-05 19:41:10 UTC));

    assert_eq!(m1.language.as_deref(), Some("da"));
    assert_eq!(m3.language, None);
    assert_eq!(
        m1.attributes["subject"],
        "Ordre 48213 – pakken er ikke kommet"
    );
    assert_eq!(
        m1.attributes["message_id"],
        "CAF8x2k1-dk1@mail.postmail.example"
    );
    assert_eq!(m1.attributes["to"], json!(["kundeservice@example-shop.dk"]));
    assert!(!m1.attributes.contains_key("cc"));
    assert!(!m1.attributes.contains_key("references"));
    assert!(!m1.attributes.contains_key("date_source"));
    assert_eq!(m2.attributes["cc"], json!(["logistik@example-shop.dk"]));
    assert_eq!(
        m3.attributes["references"],
        json!([
            "CAF8x2k1-dk1@mail.postmail.example",
            "20240304120205.48213.dk2@support.example-shop.dk"
        ])
    );
}

#[test]
fn danish_thread_quotes_and_signatures_are_removed() {
    let [m1, m2, m3] = ["dk-thread-1.eml", "dk-thread-2.eml", "dk-thread-3.eml"].map(one);

    assert!(
        m1.text.starts_with("Hej\n\nJeg bestilte en kaffemaskine"),
        "{}",
        m1.text
    );
    assert!(
        m1.text.ends_with("Venlig hilsen\nSofie"),
        "signature kept: {}",
        m1.text
    );
    assert!(!m1.text.contains("Tlf."));

    // The reply is kept, the "Den … skrev …:" header and the `>` lines below it are not,
    // and the sign-off below the quote survives while the `-- ` signature goes.
    assert!(m2.text.starts_with("Kære Sofie"), "{}", m2.text);
    assert!(m2.text.contains("terminalen i Taulov"));
    assert!(m2.text.contains("refunderet fragten på 49 kr."));
    assert!(m2.text.ends_with("Med venlig hilsen"), "{}", m2.text);
    assert!(!m2.text.contains("skrev"));
    assert!(!m2.text.contains("bestilte"));
    assert!(!m2.text.contains("www.example-shop.dk"));

    assert_eq!(
        m3.text,
        "Tak for svaret, men det er ikke godt nok. Jeg har taget fri onsdag for at\n\
         vente på en pakke, der allerede er en uge forsinket.\n\n\
         Jeg vil gerne have ordren annulleret og hele beløbet (1.299 kr.) refunderet."
    );
}

#[test]
fn norwegian_thread_html_only_latin1_quoted_printable_and_attachment() {
    let [m1, m2, m3] = ["no-thread-1.eml", "no-thread-2.eml", "no-thread-3.eml"].map(one);

    assert_eq!([&m1.id, &m2.id, &m3.id], [NO1, NO2, NO3]);
    for m in [&m1, &m2, &m3] {
        assert_eq!(m.conversation_id, NO1, "{}: one conversation", m.id);
    }
    assert_eq!(m2.in_reply_to.as_deref(), Some(NO1));
    assert_eq!(m3.in_reply_to.as_deref(), Some(NO2));
    assert_eq!(
        [m1.author.role, m2.author.role, m3.author.role],
        [Role::Customer, Role::Agent, Role::Customer]
    );
    assert_eq!(m1.occurred_at, datetime!(2024-03-08 21:17:43 UTC));
    assert_eq!(m2.occurred_at, datetime!(2024-03-11 09:30:00 UTC));
    // Sent at 13:05 -0400: stored in UTC.
    assert_eq!(m3.occurred_at, datetime!(2024-03-11 17:05:31 UTC));
    assert_eq!(m1.language.as_deref(), Some("nb"));

    // HTML-only: tags, the <style> block and the mobile sign-off are gone, entities decoded.
    assert!(
        m1.text.starts_with("Hei,\nJeg returnerte en vinterjakke"),
        "{}",
        m1.text
    );
    assert!(
        m1.text.contains("refusjonen på 1\u{a0}899 kr?"),
        "{}",
        m1.text
    );
    assert!(m1.text.ends_with("Mvh\nKari Haugen"), "{}", m1.text);
    assert!(!m1.text.contains('<') && !m1.text.contains("margin"));
    assert!(!m1.text.contains("Sendt fra min iPad"));

    // Quoted-printable ISO-8859-1 decoded to æøå; the "Opprinnelig melding" quote is cut.
    assert!(
        m2.text
            .contains("Beklager at du har måttet vente på refusjonen."),
        "{}",
        m2.text
    );
    assert!(m2.text.contains("tilbakeført til"));
    assert!(m2.text.contains("Ønsker du å bytte jakken"));
    assert!(
        m2.text.ends_with("Kundeservice, Example Shop"),
        "{}",
        m2.text
    );
    assert!(!m2.text.contains("Opprinnelig") && !m2.text.contains("Fra: Kari"));
    assert_eq!(
        m2.attributes["subject"],
        "SV: Refusjon for returnert jakke, ordre 77120 (lageret på Ås)"
    );

    // Outlook for Android: the sign-off and the "Fra:/Sendt:" block are cut; the pasted
    // line starting with "From " is the customer's text; the PNG is counted.
    assert!(m3.text.starts_with("Takk, Jonas."), "{}", m3.text);
    assert!(
        m3.text
            .contains("From 14:05 on 19 Feb the parcel was \"Delivered to sender\".")
    );
    assert!(
        m3.text.ends_with("Jeg håper dere retter rutinene."),
        "{}",
        m3.text
    );
    assert!(!m3.text.contains("Outlook") && !m3.text.contains("Fra: Jonas"));
    assert!(!m3.text.contains("____"));
    assert_eq!(m3.attributes["attachments"], 1);
}

#[test]
fn mbox_holds_both_threads_exactly_as_the_eml_files() {
    let input = bytes("both-threads.mbox");
    let units = parse_mbox(&input, &ctx("both-threads.mbox"));
    assert_eq!(units.len(), 6);
    for (unit, name) in units.iter().zip(THREAD_FILES) {
        let from_mbox = match &unit.outcome {
            Ok(i) => i.clone(),
            Err(e) => panic!("{name} in the mbox: {e}"),
        };
        // Same record as the file on its own: separator line, the blank line after the
        // message and the `>From ` escape (in no-thread-3) are all undone, CRLF or LF.
        let alone = parse_eml(&bytes(name), &ctx("both-threads.mbox")).unwrap();
        assert_eq!(from_mbox, alone, "{name}");
    }
    assert_eq!(ok_ids(&units), [DK1, DK2, DK3, NO1, NO2, NO3]);
}

#[test]
fn mbox_offsets_are_contiguous_and_resume_after_every_unit() {
    let input = bytes("both-threads.mbox");
    let ctx = ctx("both-threads.mbox");
    let units = parse_mbox(&input, &ctx);
    let ids = ok_ids(&units);

    assert_eq!(units[0].start, 0);
    assert_eq!(units.last().unwrap().end, input.len() as u64);
    for pair in units.windows(2) {
        assert_eq!(
            pair[0].end, pair[1].start,
            "end = start of the next \"From \" line"
        );
    }
    for unit in &units {
        assert!(input[unit.start as usize..].starts_with(b"From "));
    }
    // The Danish messages are LF and the Norwegian CRLF; both end where the next begins.
    assert!(input[..units[3].start as usize].ends_with(b"\n\n"));
    assert!(input[..units[5].start as usize].ends_with(b"\r\n\r\n"));

    for (i, unit) in units.iter().enumerate() {
        let rest = parse_mbox(&input[unit.end as usize..], &ctx);
        assert_eq!(ok_ids(&rest), ids[i + 1..], "resuming at {}", unit.end);
        for (r, u) in rest.iter().zip(&units[i + 1..]) {
            assert_eq!((r.start + unit.end, r.end + unit.end), (u.start, u.end));
        }
    }

    // An appended message leaves the earlier units as they were.
    let mut appended = input.clone();
    appended.extend_from_slice(
        b"From bo@postmail.example Wed Mar 13 09:00:00 2024\nFrom: bo@postmail.example\n\
          Date: Wed, 13 Mar 2024 10:00:00 +0100\nMessage-ID: <late@postmail.example>\n\n\
          Hvor er min pakke?\n\n",
    );
    let more = parse_mbox(&appended, &ctx);
    assert_eq!(more.len(), 7);
    assert_eq!(more[5].end, input.len() as u64);
    let tail = parse_mbox(&appended[units[5].end as usize..], &ctx);
    assert_eq!(ok_ids(&tail), ["email:late@postmail.example"]);
}

#[test]
fn mbox_in_crlf_and_with_quoted_from_lines() {
    let input = bytes("both-threads.mbox");
    let lf = String::from_utf8(input.clone())
        .unwrap()
        .replace("\r\n", "\n");
    let crlf = lf.replace('\n', "\r\n");
    let ctx = ctx("crlf.mbox");
    for variant in [lf, crlf] {
        let units = parse_mbox(variant.as_bytes(), &ctx);
        assert_eq!(ok_ids(&units), [DK1, DK2, DK3, NO1, NO2, NO3]);
        let no3 = units[5].outcome.as_ref().unwrap()[0].text.clone();
        assert!(no3.contains("\nFrom 14:05 on 19 Feb"), "{no3}");
    }

    // mboxrd: ">>From " in the file was ">From " in the message, a quoted line; the
    // single-escaped line is the sender's own text.
    let mbox = b"From a@postmail.example Mon Mar  4 10:00:00 2024\n\
        From: a@postmail.example\nDate: Mon, 4 Mar 2024 10:00:00 +0000\nMessage-ID: <q@x>\n\n\
        >From now on I shop elsewhere.\n>>From your last mail: we apologise\n";
    let units = parse_mbox(mbox, &ctx);
    assert_eq!(
        units[0].outcome.as_ref().unwrap()[0].text,
        "From now on I shop elsewhere."
    );
}

#[test]
fn size_cap_rejects_a_message_before_parsing() {
    // The raw message is held to the file cap (max_file_bytes), not the message cap.
    let mut small = ctx("cap");
    small.max_file_bytes = 500;
    let err = parse_eml(&bytes("dk-thread-1.eml"), &small).unwrap_err();
    assert!(
        err.reason.starts_with("too large: 1052 bytes"),
        "{}",
        err.reason
    );
    assert!(
        err.reason.ends_with("(ingest.max_file_bytes)"),
        "{}",
        err.reason
    );

    // In an mbox only the oversized message fails; the others still parse.
    let input = bytes("both-threads.mbox");
    let units = parse_mbox(&input, &ctx("cap"));
    let biggest = units.iter().map(|u| u.end - u.start).max().unwrap();
    let mut cap = ctx("cap");
    cap.max_file_bytes = biggest as usize - 1;
    let capped = parse_mbox(&input, &cap);
    let failed: Vec<_> = capped.iter().filter(|u| u.outcome.is_err()).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].end - failed[0].start, biggest);
    assert!(
        failed[0]
            .outcome
            .as_ref()
            .unwrap_err()
            .reason
            .starts_with("too large"),
        "{:?}",
        failed[0].outcome
    );
}

/// A customer's mail: a short text and a photo of about 6 KB as base64.
fn mail_with_photo() -> String {
    let photo: String = (0..80)
        .map(|i| format!("{}\r\n", ["QUJDRA", "RUZHSA", "SUpLTA"][i % 3].repeat(12)))
        .collect();
    format!(
        "From: Sofie <sofie@postmail.example>\r\nTo: kundeservice@example-shop.dk\r\n\
         Subject: Skadet sofa\r\nDate: Mon, 4 Mar 2024 09:14:22 +0100\r\n\
         Message-ID: <photo-1@postmail.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Hej, sofaen kom i stykker. Billeder vedhæftet.\r\n\
         --b1\r\nContent-Type: image/jpeg; name=\"sofa.jpg\"\r\n\
         Content-Disposition: attachment; filename=\"sofa.jpg\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{photo}--b1--\r\n"
    )
}

#[test]
fn attachments_do_not_count_against_the_message_cap() {
    let eml = mail_with_photo();
    assert!(eml.len() > 6000, "{}", eml.len());
    let mut c = ctx("cap");
    c.max_message_bytes = 1000;
    let m = parse_eml(eml.as_bytes(), &c).unwrap();
    assert_eq!(m[0].text, "Hej, sofaen kom i stykker. Billeder vedhæftet.");
    assert_eq!(m[0].attributes["attachments"], 1);
    let mbox = format!("From sofie@postmail.example Mon Mar  4 09:14:22 2024\n{eml}\n");
    let units = parse_mbox(mbox.as_bytes(), &c);
    assert_eq!(units.len(), 1);
    assert_eq!(
        units[0].outcome.as_ref().unwrap()[0].id,
        "email:photo-1@postmail.example"
    );

    // The text itself is what the message cap holds.
    c.max_message_bytes = 20;
    let expected = format!(
        "too large: the text body is {} bytes, over the cap of 20 bytes (ingest.max_message_bytes)",
        "Hej, sofaen kom i stykker. Billeder vedhæftet.".len()
    );
    assert_eq!(parse_eml(eml.as_bytes(), &c).unwrap_err().reason, expected);
    let units = parse_mbox(mbox.as_bytes(), &c);
    assert_eq!(units[0].outcome.as_ref().unwrap_err().reason, expected);
}

#[test]
fn dates_outside_1900_to_2999_fall_back_like_invalid_ones() {
    for date in [
        "Fri, 31 Dec 9999 23:59:59 -0100",
        "Mon, 1 Jan 1855 10:00:00 +0000",
        "Sat, 1 Jan 3000 00:00:00 +0000",
    ] {
        let eml = format!(
            "From: a@postmail.example\nDate: {date}\n\
             Received: from x by y; Tue, 12 Mar 2024 08:03:11 +0100\n\
             Message-ID: <d@x>\n\nHej\n"
        );
        let m = parse_eml(eml.as_bytes(), &ctx("t")).unwrap_or_else(|e| panic!("{date}: {e}"));
        assert_eq!(
            m[0].occurred_at,
            datetime!(2024-03-12 07:03:11 UTC),
            "{date}"
        );
        assert_eq!(m[0].attributes["date_source"], "received", "{date}");
        assert_eq!(m[0].attributes["date_header"], date, "{date}");
        assert!(m[0].check().is_ok(), "{date}");
    }
}

#[test]
fn a_message_without_text_of_its_own_is_recorded_by_its_subject() {
    // "Sendt fra min iPhone" above a quote: nothing the customer wrote, but part of the thread.
    let m = one("empty-body.eml");
    assert_eq!(m.text, "Re: Din returlabel");
    assert_eq!(m.attributes["own_text"], false);
    // No text, no subject, no attachment: nothing to record, so a dead letter says why.
    assert_eq!(error("nothing-at-all.eml"), EMPTY_BODY);
}

/// A mailing list's archive in the shapes that lost messages before: inline answers between
/// quotes, an answer below a leading quote, a tracker's notification, an out-of-office, an
/// undated label over a quote three levels deep, a reply that only quotes, a message that is
/// only an attachment, a forward with a note. Every message is kept, with its own words.
#[test]
fn a_list_archive_keeps_every_answer_and_marks_automatic_mail() {
    let units = parse_mbox(&bytes("list-archive.mbox"), &ctx("list-archive.mbox"));
    let all: Vec<Interaction> = units
        .into_iter()
        .flat_map(|u| {
            u.outcome
                .unwrap_or_else(|e| panic!("a message was rejected: {e}"))
        })
        .collect();
    assert_eq!(all.len(), 8, "every message is an interaction");
    let by_id = |id: &str| {
        all.iter()
            .find(|i| i.id == format!("email:{id}"))
            .unwrap_or_else(|| panic!("{id} missing"))
    };
    let flag = |i: &Interaction, key: &str| i.attributes.get(key).and_then(|v| v.as_bool());

    let inline = by_id("list-inline-1@example.net");
    for answer in ["Not for me;", "Yes, twice.", "4.2.1 on both phones."] {
        assert!(
            inline.text.contains(answer),
            "{answer:?} in {:?}",
            inline.text
        );
    }
    assert!(!inline.text.contains("Did you try"), "{:?}", inline.text);

    let after_quote = by_id("list-after-quote-1@example.no");
    assert!(
        after_quote.text.starts_with("Jeg har samme feil."),
        "{:?}",
        after_quote.text
    );
    assert!(
        after_quote
            .text
            .ends_with("Med vennlig hilsen\nKari Nordmann\nOslo"),
        "the answer and its closing are kept: {:?}",
        after_quote.text
    );

    let tracker = by_id("bug-4711-3@tracker.example.org");
    assert!(
        tracker.text.contains("Reproduced on 4.2.1"),
        "{:?}",
        tracker.text
    );
    assert_eq!(flag(tracker, "auto_reply"), Some(true));
    let away = by_id("ooo-mette-1@example.dk");
    assert_eq!(flag(away, "auto_reply"), Some(true));
    assert_eq!(
        flag(inline, "auto_reply"),
        None,
        "people's mail is not automatic"
    );

    let deep = by_id("list-deep-1@example.se");
    assert_eq!(
        deep.text,
        "Samma här, och supporten har inte svarat på en vecka.\nDet stämmer med vad jag ser: ungefär en timme.\n\nMed vänliga hälsningar\nSven"
    );

    let quoted_only = by_id("list-quoted-only-1@example.dk");
    assert_eq!(quoted_only.text, "Re: [users] sync stops after the update");
    assert_eq!(flag(quoted_only, "own_text"), Some(false));

    let attachment = by_id("list-attachment-1@example.dk");
    assert_eq!(
        attachment.text,
        "Log from my laptop\n[attachments: sync.log]"
    );
    assert_eq!(flag(attachment, "own_text"), Some(false));
    assert_eq!(
        attachment.attributes["attachment_names"],
        serde_json::json!(["sync.log"])
    );

    let forward = by_id("list-forward-1@example.dk");
    assert_eq!(
        forward.text,
        "Her er svaret fra supporten, det hjælper ikke."
    );
}

#[test]
fn a_digest_gives_each_bundled_message_its_own_interaction() {
    let all = parse_eml(&bytes("digest.eml"), &ctx("digest.eml")).unwrap();
    let found: Vec<(&str, &str)> = all
        .iter()
        .map(|i| (i.id.as_str(), i.text.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (
                "email:digest-part-1@example.net",
                "The nightly build fixed it for me."
            ),
            (
                "email:digest-part-2@example.org",
                "Not for me, it still stops after an hour."
            ),
        ]
    );
    assert_eq!(all[1].author.ids, ["email:lars@example.org"]);
}

#[test]
fn invalid_date_falls_back_to_the_newest_received_header() {
    let m = one("invalid-date.eml");
    assert_eq!(m.occurred_at, datetime!(2024-03-12 07:03:11 UTC));
    assert_eq!(m.attributes["date_source"], "received");
    assert!(m.text.contains("tilbageføre det ene beløb på 649 kr."));
}

#[test]
fn missing_or_invalid_date_without_received_falls_back_to_the_source_time() {
    let mut context = ctx("x");
    context.source_time = datetime!(2024-03-15 08:00:00 UTC);
    let m = parse_eml(&bytes("no-date.eml"), &context)
        .unwrap()
        .remove(0);
    assert_eq!(m.occurred_at, context.source_time);
    assert_eq!(m.attributes["date_source"], "source");
    assert!(m.attributes.get("date_header").is_none());

    // The invalid-date fixture without its Received headers: the bad value is kept.
    let text = String::from_utf8(bytes("invalid-date.eml")).unwrap();
    let mut in_received = false;
    let without: String = text
        .split_inclusive('\n')
        .filter(|line| {
            if line.starts_with("Received:") {
                in_received = true;
            } else if !line.starts_with('\t') {
                in_received = false;
            }
            !in_received
        })
        .collect();
    let m = parse_eml(without.as_bytes(), &context).unwrap().remove(0);
    assert_eq!(m.occurred_at, context.source_time);
    assert_eq!(m.attributes["date_source"], "source");
    assert_eq!(m.attributes["date_header"], "tirsdag den 32. marts");
}

#[test]
fn windows_1252_is_decoded_and_a_missing_message_id_is_hashed() {
    let raw = bytes("windows-1252.eml");
    let m = one("windows-1252.eml");
    assert!(m.text.contains("gavekort på 500 €"), "{}", m.text);
    assert!(m.text.contains("“ugyldig kode”"), "{}", m.text);
    assert!(m.text.contains("i Århus – kvitteringen"), "{}", m.text);
    assert!(m.text.ends_with("Ærlige Åse Øberg"), "{}", m.text);
    assert_eq!(m.author.name.as_deref(), Some("Åse Øberg"));
    assert_eq!(m.attributes["subject"], "Gavekort på 500 € virker ikke");

    let hashed = format!("email:sha256:{}", content_hash(&raw));
    assert_eq!(m.id, hashed);
    assert_eq!(m.conversation_id, hashed);
    assert!(!m.attributes.contains_key("message_id"));
    // Stable across re-reads.
    assert_eq!(one("windows-1252.eml").id, m.id);
}

#[test]
fn input_that_is_not_a_message_is_an_error() {
    for input in [
        &b""[..],
        b"just a line of text\nand another\n",
        b"\x00\x01\x02",
    ] {
        let err = parse_eml(input, &ctx("x")).unwrap_err();
        assert!(
            err.reason.starts_with("not an e-mail message"),
            "{input:?}: {}",
            err.reason
        );
    }
    let units = parse_mbox(b"no separator here\n", &ctx("x"));
    assert_eq!(units.len(), 1);
    assert!(
        units[0]
            .outcome
            .as_ref()
            .unwrap_err()
            .reason
            .contains("\"From \"")
    );
    assert!(parse_mbox(b"", &ctx("x")).is_empty());
}

#[test]
fn company_domains_match_exactly_or_as_parent_case_insensitively() {
    let domains = vec!["Example-Shop.dk".to_string()];
    assert!(is_company_address("a@example-shop.dk", &domains));
    assert!(is_company_address("A@SUPPORT.EXAMPLE-SHOP.DK", &domains));
    assert!(!is_company_address("a@notexample-shop.dk", &domains));
    assert!(!is_company_address(
        "a@example-shop.dk.postmail.example",
        &domains
    ));
    assert!(!is_company_address("example-shop.dk", &domains));
    assert!(!is_company_address("a@example-shop.dk", &[]));
}

#[test]
fn reply_to_is_an_author_id_unless_it_is_a_recipient_list() {
    let mail = |reply_to: &str| {
        format!(
            "From: Bo <Bo@postmail.example>\nTo: forum@lists.example\nReply-To: {reply_to}\n\
             Date: Mon, 4 Mar 2024 10:00:00 +0000\nMessage-ID: <r@x>\n\nHvor er pakken?\n"
        )
    };
    let ids = |reply_to: &str| {
        parse_eml(mail(reply_to).as_bytes(), &ctx("x")).unwrap()[0]
            .author
            .ids
            .clone()
    };
    assert_eq!(
        ids("bo.private@postmail.example"),
        [
            "email:bo@postmail.example",
            "email:bo.private@postmail.example"
        ]
    );
    assert_eq!(ids("BO@postmail.example"), ["email:bo@postmail.example"]);
    assert_eq!(
        ids("Forum <forum@lists.example>"),
        ["email:bo@postmail.example"]
    );
}

#[test]
fn fixtures_are_detected_and_parsed_through_format() {
    let mbox = bytes("both-threads.mbox");
    assert_eq!(detect(Path::new("x"), &mbox), Some(Format::Mbox));
    let eml = bytes("dk-thread-1.eml");
    assert_eq!(detect(Path::new("x"), &eml), Some(Format::Eml));
    let units = Format::Eml.parse(&eml, &ctx("x"));
    assert_eq!(ok_ids(&units), [DK1]);
    assert_eq!(Format::Mbox.parse(&mbox, &ctx("x")).len(), 6);
}

#[test]
fn interactions_round_trip_as_json() {
    let m = one("dk-thread-2.eml");
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["channel"], "email");
    assert_eq!(json["occurred_at"], "2024-03-04T12:02:05Z");
    assert_eq!(json["author"]["role"], "agent");
    let back: Interaction = serde_json::from_value(json).unwrap();
    assert_eq!(back, m);
}

// ------------------------------------------------------------------------------ corpus

const CORPUS_DIRS: [&str; 4] = ["rfc", "thirdparty", "legacy", "malformed"];

fn corpus_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    files
}

/// Every `.eml` of the e-mail corpus (RFC samples, real clients, legacy and malformed
/// messages): how many interactions are kept. 45 before digests were split and messages
/// without text of their own were recorded by their subject; 53 now. What is still
/// rejected has no text, subject or attachment at all, or is not a message.
#[test]
fn corpus_messages_with_text_a_subject_or_an_attachment_are_all_kept() {
    let Some(root) = corpus("email/mail-parser") else {
        return;
    };
    let (mut files, mut kept) = (0, 0);
    let mut rejected = Vec::new();
    for dir in ["rfc", "thirdparty", "legacy", "malformed"] {
        for path in corpus_files(&root.join(dir)) {
            files += 1;
            let name = path.display().to_string();
            match parse_eml(&std::fs::read(&path).unwrap(), &ctx(&name)) {
                Ok(all) => {
                    assert!(all.iter().all(|i| i.check().is_ok()), "{name}");
                    kept += all.len();
                }
                Err(e) => rejected.push((name, e.reason)),
            }
        }
    }
    eprintln!(
        "{files} messages: {kept} interactions kept, {} rejected",
        rejected.len()
    );
    for (name, reason) in &rejected {
        eprintln!("  {name}: {reason}");
        assert!(
            reason == EMPTY_BODY || reason.starts_with("not an e-mail message"),
            "{name}: rejected for another reason: {reason}"
        );
    }
    assert_eq!(files, 61, "the corpus changed: update the counts");
    assert!(
        kept >= 53,
        "only {kept} interactions kept from {files} messages"
    );
}

#[test]
fn corpus_every_message_parses_or_fails_with_a_reason() {
    let Some(root) = corpus("email/mail-parser") else {
        return;
    };
    let mut panicked = Vec::new();
    let mut seen = 0;
    for dir in CORPUS_DIRS {
        let files = corpus_files(&root.join(dir));
        assert!(!files.is_empty(), "no .eml in {dir}");
        for path in files {
            seen += 1;
            let raw = std::fs::read(&path).unwrap();
            let ctx = ctx(&path.display().to_string());
            // The same bytes as a one-message mbox must behave the same.
            let mut mbox = b"From corpus@example.org Mon Jan  1 00:00:00 2024\n".to_vec();
            mbox.extend_from_slice(&super::escape_from(&raw));
            // A writer ends the message with a newline, then the separating blank line.
            let crlf = raw.ends_with(b"\r\n");
            let newline: &[u8] = if crlf { b"\r\n" } else { b"\n" };
            if !raw.ends_with(b"\n") {
                mbox.extend_from_slice(newline);
            }
            mbox.extend_from_slice(newline);
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                (parse_eml(&raw, &ctx), parse_mbox(&mbox, &ctx))
            }));
            match outcome {
                Err(_) => panicked.push(path.display().to_string()),
                Ok((eml, units)) => {
                    match &eml {
                        Ok(i) => assert!(!i[0].text.is_empty(), "{}", path.display()),
                        Err(e) => assert!(!e.reason.trim().is_empty(), "{}", path.display()),
                    }
                    assert_eq!(units.len(), 1, "{}", path.display());
                    // Without a final newline the writer's added one changes the content hash.
                    if raw.ends_with(b"\n") {
                        assert_eq!(
                            units[0]
                                .outcome
                                .as_ref()
                                .map(|i| &i[0].id)
                                .map_err(|e| &e.reason),
                            eml.as_ref().map(|i| &i[0].id).map_err(|e| &e.reason),
                            "{} as mbox",
                            path.display()
                        );
                    } else {
                        assert_eq!(units[0].outcome.is_ok(), eml.is_ok(), "{}", path.display());
                    }
                    eprintln!(
                        "{}: {}",
                        path.display(),
                        match &eml {
                            Ok(i) => format!("ok {}", i[0].id),
                            Err(e) => format!("error: {e}"),
                        }
                    );
                }
            }
        }
    }
    assert!(panicked.is_empty(), "panicked on: {panicked:?}");
    assert!(seen >= 60, "only {seen} corpus messages");
}

#[test]
fn corpus_text_bodies_are_extracted_and_complete_messages_parse() {
    let Some(root) = corpus("email/mail-parser") else {
        return;
    };
    let (mut with_text, mut extracted, mut complete, mut parsed) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for dir in ["rfc", "thirdparty"] {
        for path in corpus_files(&root.join(dir)) {
            let raw = std::fs::read(&path).unwrap();
            let Some(message) = mail_parser::MessageParser::default().parse(&raw) else {
                continue;
            };
            let has_text = message.body_text(0).is_some_and(|t| !t.trim().is_empty());
            if !has_text {
                continue;
            }
            with_text += 1;
            if body_text(&message).is_ok() {
                extracted += 1;
            }
            // Date, else Received, else the source time: every message with text parses;
            // (many of these files are bare MIME structures without a Date or Received header).
            let dated = message.date().is_some() || message.received().is_some();
            if dated {
                complete += 1;
            }
            match parse_eml(&raw, &ctx(&path.display().to_string())) {
                Ok(_) => parsed += 1,
                Err(e) => {
                    failures.push(format!("{}: {e}", path.display()));
                    assert!(
                        e.reason == EMPTY_BODY,
                        "{}: a message with text failed: {e}",
                        path.display()
                    );
                }
            }
        }
    }
    eprintln!(
        "{with_text} with a text body: {extracted} extracted; {complete} dated, {parsed} parsed"
    );
    for f in &failures {
        eprintln!("  {f}");
    }
    assert!(
        with_text >= 15,
        "only {with_text} corpus messages with a text body"
    );
    assert!(
        extracted * 10 >= with_text * 8,
        "{extracted} of {with_text} texts extracted"
    );
    assert!(
        parsed * 10 >= complete * 8,
        "{parsed} of {complete} dated messages parsed"
    );
}

#[test]
fn corpus_subject_and_sender_match_the_expected_parse() {
    let Some(root) = corpus("email/mail-parser") else {
        return;
    };
    let mut compared = 0;
    for (dir, suffix) in [("rfc", ".json"), ("legacy", ".expected.json")] {
        for path in corpus_files(&root.join(dir)) {
            let expected_path = path.with_file_name(format!(
                "{}{suffix}",
                path.file_stem().unwrap().to_string_lossy()
            ));
            let Ok(expected) = std::fs::read_to_string(&expected_path) else {
                continue;
            };
            let expected: Value = serde_json::from_str(&expected).unwrap();
            let headers = expected["parts"][0]["headers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let header = |name: &str| {
                headers
                    .iter()
                    .find(|h| h["name"] == name)
                    .map(|h| &h["value"])
            };
            let raw = std::fs::read(&path).unwrap();
            let Ok(mut parsed) = parse_eml(&raw, &ctx("corpus")) else {
                continue;
            };
            let m = parsed.remove(0);
            let what = path.display();
            if let Some(subject) = header("subject").and_then(|v| v["Text"].as_str()) {
                assert_eq!(m.attributes["subject"], subject.trim(), "{what}");
                compared += 1;
            }
            if let Some(from) = header("from").and_then(|v| v["Address"]["List"][0].as_object()) {
                match from["address"].as_str() {
                    Some(address) => assert_eq!(
                        m.author.ids.first(),
                        Some(&format!("email:{}", address.to_lowercase())),
                        "{what}"
                    ),
                    None => assert!(m.author.ids.is_empty(), "{what}"),
                }
                if let Some(name) = from["name"].as_str() {
                    assert_eq!(m.author.name.as_deref(), Some(name.trim()), "{what}");
                }
                compared += 1;
            }
            if let Some(id) = header("message_id").and_then(|v| v["Text"].as_str()) {
                assert_eq!(m.id, format!("email:{id}"), "{what}");
                compared += 1;
            }
        }
    }
    eprintln!("{compared} header values compared with mail-parser's expected parse");
    assert!(compared >= 15, "only {compared} values compared");
}
