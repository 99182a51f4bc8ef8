//! The Customer Support on Twitter dataset (`twcs.csv`, Kaggle/Thought Vector): columns
//! `tweet_id, author_id, inbound, created_at, text, response_tweet_id,
//! in_response_to_tweet_id`, `created_at` like `Tue Oct 31 22:10:47 +0000 2017`.
//!
//! - One unit per CSV record; `start`/`end` are the record's byte offsets (`end` is where
//!   the next record starts), line numbers in errors are 1-based.
//! - The first record is the header when it names `tweet_id` and `created_at`; columns are looked up by name, so
//!   their order may differ. Input that does not start with a header (the tail of a file
//!   from a checkpoint) is read in the dataset's column order: so a caller may resume by
//!   parsing `input[offset..]` and adding `offset`, or call [`parse_twcs_csv_from`] with the
//!   whole input, which reads the header from the start and returns absolute offsets and
//!   line numbers.
//! - id `twitter:<tweet_id>`; role customer when `inbound` is true, else agent; author id
//!   `handle:twitter:<author_id>`; always public; `in_reply_to` `twitter:<in_response_to_tweet_id>`;
//!   text with its entities (Twitter's `&amp;`, `&lt;`, `&gt;`, and `&quot;`, `&#39;`…)
//!   decoded by [`crate::text::decode_entities`].
//! - conversation: the root of the reply chain as far as the rows of the whole input resolve
//!   it, whatever their order (a reply may come before its parent), else the parent's id,
//!   else the tweet's own id (`twitter:<id>`). The chains are read in a first pass over every
//!   record (those before a resume offset too), so a resumed parse gives the same
//!   conversations as a full one.

use std::collections::HashMap;
use std::rc::Rc;

use csv::ByteRecord;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::error::ParseError;
use crate::record::{Author, Channel, Interaction, Role};
use crate::unit::{ParseContext, Unit};

/// Column positions of the fields Rapport reads.
#[derive(Clone, Copy)]
struct Columns {
    tweet_id: usize,
    author_id: usize,
    inbound: usize,
    created_at: usize,
    text: usize,
    in_response_to: usize,
    /// The record must have at least this many fields: the header's count (fewer means the
    /// record was cut off).
    needed: usize,
}

/// The dataset's own column order.
const DATASET_ORDER: Columns = Columns {
    tweet_id: 0,
    author_id: 1,
    inbound: 2,
    created_at: 3,
    text: 4,
    in_response_to: 6,
    needed: 7,
};

impl Columns {
    fn from_header(header: &ByteRecord) -> Result<Columns, ParseError> {
        let find = |name: &str| {
            header
                .iter()
                .position(|f| strip_bom(f).trim_ascii() == name.as_bytes())
                .ok_or_else(|| {
                    ParseError::new(format!("line 1: the header has no column {name:?}"))
                })
        };
        Ok(Columns {
            tweet_id: find("tweet_id")?,
            author_id: find("author_id")?,
            inbound: find("inbound")?,
            created_at: find("created_at")?,
            text: find("text")?,
            in_response_to: find("in_response_to_tweet_id")?,
            needed: header.len(),
        })
    }
}

fn strip_bom(field: &[u8]) -> &[u8] {
    field.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(field)
}

/// The header names `tweet_id` and `created_at`; no data row has those values.
fn is_header(record: &ByteRecord) -> bool {
    let has = |name: &[u8]| record.iter().any(|f| strip_bom(f).trim_ascii() == name);
    has(b"tweet_id") && has(b"created_at")
}

fn reader(input: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input)
}

pub fn parse_twcs_csv(input: &[u8], ctx: &ParseContext) -> Vec<Unit> {
    parse_twcs_csv_from(input, 0, ctx)
}

/// Parses the records of `input` (a whole file, header first) that start at or after
/// `resume_offset` (a unit's `end` from an earlier parse); offsets and line numbers are
/// absolute. Reply chains resolve through every record of `input`, before the offset too.
pub fn parse_twcs_csv_from(input: &[u8], resume_offset: u64, ctx: &ParseContext) -> Vec<Unit> {
    let mut units = Vec::new();
    let mut record = ByteRecord::new();

    // The header, if the input starts with one.
    let mut head = reader(input);
    let (columns, data_start) = match head.read_byte_record(&mut record) {
        Ok(false) => return units,
        Ok(true) if is_header(&record) => {
            let header_end = head.position().byte() as usize;
            match Columns::from_header(&record) {
                Ok(columns) => (columns, header_end),
                Err(e) => {
                    units.push(Unit {
                        start: 0,
                        end: header_end as u64,
                        outcome: Err(e),
                    });
                    return units;
                }
            }
        }
        Ok(true) => (DATASET_ORDER, 0),
        Err(e) => {
            units.push(Unit {
                start: 0,
                end: input.len() as u64,
                outcome: Err(ParseError::new(format!("line 1: unreadable CSV: {e}"))),
            });
            return units;
        }
    };
    let base = (resume_offset as usize).clamp(data_start, input.len());
    let line_base = if base == 0 {
        0
    } else {
        input[..base].iter().filter(|&&b| b == b'\n').count() as u64
    };

    let mut threads = Threads::read(&input[data_start..], &columns);
    let mut rows = reader(&input[base..]);
    loop {
        match rows.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let position = record.position().expect("the csv reader sets positions");
                let start = base as u64 + position.byte();
                let end = base as u64 + rows.position().byte();
                let line = line_base + position.line();
                let outcome = ctx
                    .check_size((end - start) as usize)
                    .and_then(|()| row(&record, &columns, ctx, &mut threads))
                    .map(|interaction| vec![interaction])
                    .map_err(|e| ParseError::new(format!("line {line}: {}", e.reason)));
                units.push(Unit {
                    start,
                    end,
                    outcome,
                });
            }
            Err(e) => {
                // csv errors here are I/O on a byte slice: not expected, but never a panic.
                let start = base as u64 + e.position().map_or(0, |p| p.byte());
                units.push(Unit {
                    start,
                    end: input.len() as u64,
                    outcome: Err(ParseError::new(format!("unreadable CSV: {e}"))),
                });
                break;
            }
        }
    }
    units
}

/// The reply trees of the whole input: every tweet id (a row's, or a parent's that has no
/// row) with its parent, and each one's root once it has been asked for.
#[derive(Default)]
struct Threads {
    index: HashMap<Rc<str>, u32>,
    ids: Vec<Rc<str>>,
    /// The parent of a row's tweet; `None` for a root and for an id that has no row.
    parent: Vec<Option<u32>>,
    is_row: Vec<bool>,
    /// The resolved root, [`UNRESOLVED`], or [`VISITING`] while a walk is under way.
    root: Vec<u32>,
}

const UNRESOLVED: u32 = u32::MAX;
const VISITING: u32 = u32::MAX - 1;

impl Threads {
    /// First pass: `tweet_id` → `in_response_to_tweet_id` of every record whose tweet id
    /// reads (the first record with an id wins). A row rejected later for another field
    /// still tells the tree its place.
    fn read(input: &[u8], columns: &Columns) -> Threads {
        let mut threads = Threads::default();
        let mut rows = reader(input);
        let mut record = ByteRecord::new();
        while let Ok(true) = rows.read_byte_record(&mut record) {
            if record.len() < columns.needed {
                continue;
            }
            let Ok(tweet_id) = field(&record, columns.tweet_id, "tweet_id") else {
                continue;
            };
            if tweet_id.is_empty() {
                continue;
            }
            let parent = field(&record, columns.in_response_to, "in_response_to_tweet_id")
                .ok()
                .and_then(parent_id);
            threads.link(tweet_id, parent);
        }
        threads
    }

    fn intern(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let i = self.ids.len() as u32;
        let id: Rc<str> = id.into();
        self.index.insert(Rc::clone(&id), i);
        self.ids.push(id);
        self.parent.push(None);
        self.is_row.push(false);
        self.root.push(UNRESOLVED);
        i
    }

    fn link(&mut self, id: &str, parent: Option<&str>) {
        let i = self.intern(id) as usize;
        if self.is_row[i] {
            return;
        }
        self.is_row[i] = true;
        self.parent[i] = parent.map(|p| self.intern(p));
    }

    /// `twitter:<root>` of the tree `id` belongs to. A walk marks its path, so a cycle in bad
    /// data ends where it closes (its first tweet met again is the root) instead of looping,
    /// and every id on the path remembers the answer.
    fn conversation(&mut self, id: &str, parent: Option<&str>) -> String {
        let Some(&start) = self.index.get(id) else {
            // Not read in the first pass (it cannot be, but never a panic).
            return format!("twitter:{}", parent.unwrap_or(id));
        };
        let mut path = Vec::new();
        let mut node = start;
        let root = loop {
            match self.root[node as usize] {
                VISITING => break node,
                UNRESOLVED => match self.parent[node as usize] {
                    Some(parent) => {
                        self.root[node as usize] = VISITING;
                        path.push(node);
                        node = parent;
                    }
                    None => break node,
                },
                root => break root,
            }
        };
        for n in path {
            self.root[n as usize] = root;
        }
        if self.root[node as usize] == UNRESOLVED {
            self.root[node as usize] = root;
        }
        format!("twitter:{}", self.ids[root as usize])
    }
}

/// A parent id as the dataset writes it: empty for none; pandas round-trips write ids as
/// floats (`3.0`).
fn parent_id(raw: &str) -> Option<&str> {
    let parent = raw.strip_suffix(".0").unwrap_or(raw);
    (!parent.is_empty()).then_some(parent)
}

fn field<'r>(record: &'r ByteRecord, index: usize, name: &str) -> Result<&'r str, ParseError> {
    let bytes = record.get(index).unwrap_or(b"");
    crate::error::utf8(bytes)
        .map(str::trim)
        .map_err(|e| ParseError::new(format!("field {name:?}: {}", e.reason)))
}

fn row(
    record: &ByteRecord,
    columns: &Columns,
    ctx: &ParseContext,
    threads: &mut Threads,
) -> Result<Interaction, ParseError> {
    if record.len() < columns.needed {
        return Err(ParseError::new(format!(
            "expected {} fields, found {}",
            columns.needed,
            record.len()
        )));
    }
    let tweet_id = field(record, columns.tweet_id, "tweet_id")?;
    if tweet_id.is_empty() {
        return Err(ParseError::new("empty field \"tweet_id\""));
    }
    let author_id = field(record, columns.author_id, "author_id")?;
    if author_id.is_empty() {
        return Err(ParseError::new(format!(
            "empty field \"author_id\" of tweet {tweet_id}"
        )));
    }
    let role = match field(record, columns.inbound, "inbound")? {
        "True" | "true" | "TRUE" | "1" => Role::Customer,
        "False" | "false" | "FALSE" | "0" => Role::Agent,
        other => {
            return Err(ParseError::new(format!(
                "invalid boolean {other:?} in field \"inbound\" of tweet {tweet_id}"
            )));
        }
    };
    let created_at = field(record, columns.created_at, "created_at")?;
    let occurred_at = twitter_time(created_at)
        .or_else(|| crate::text::parse_timestamp(created_at))
        .ok_or_else(|| {
            ParseError::new(format!(
                "invalid timestamp {created_at:?} in field \"created_at\" of tweet {tweet_id}"
            ))
        })?;
    let text = field(record, columns.text, "text")?;
    if text.is_empty() {
        return Err(ParseError::new(format!(
            "empty field \"text\" of tweet {tweet_id}"
        )));
    }
    let parent = parent_id(field(
        record,
        columns.in_response_to,
        "in_response_to_tweet_id",
    )?);

    Ok(Interaction {
        id: format!("twitter:{tweet_id}"),
        conversation_id: threads.conversation(tweet_id, parent),
        channel: Channel::Social,
        connector: ctx.connector.clone(),
        occurred_at,
        author: Author {
            role,
            ids: vec![format!("handle:twitter:{author_id}")],
            name: None,
        },
        text: crate::text::decode_entities(text),
        language: None,
        public: true,
        in_reply_to: parent.map(|p| format!("twitter:{p}")),
        attributes: Default::default(),
    })
}

/// `Tue Oct 31 22:10:47 +0000 2017` (Twitter's v1.1 `created_at`) to UTC; `None` when it
/// does not parse or is out of range ([`crate::text::to_utc`]).
fn twitter_time(value: &str) -> Option<OffsetDateTime> {
    let mut parts = value.split_ascii_whitespace();
    let _weekday = parts.next()?;
    let month = match parts.next()? {
        "Jan" => Month::January,
        "Feb" => Month::February,
        "Mar" => Month::March,
        "Apr" => Month::April,
        "May" => Month::May,
        "Jun" => Month::June,
        "Jul" => Month::July,
        "Aug" => Month::August,
        "Sep" => Month::September,
        "Oct" => Month::October,
        "Nov" => Month::November,
        "Dec" => Month::December,
        _ => return None,
    };
    let day: u8 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':');
    let (h, m, s): (u8, u8, u8) = (
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
    );
    let offset = parts.next()?.as_bytes();
    let year: i32 = parts.next()?.parse().ok()?;
    if hms.next().is_some() || parts.next().is_some() || offset.len() != 5 {
        return None;
    }
    let sign: i8 = match offset[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    if !offset[1..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let number = |d: &[u8]| ((d[0] - b'0') * 10 + (d[1] - b'0')) as i8;
    let (oh, om) = (number(&offset[1..3]), number(&offset[3..5]));
    let offset = UtcOffset::from_hms(sign * oh, sign * om, 0).ok()?;
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms(h, m, s).ok()?;
    crate::text::to_utc(PrimitiveDateTime::new(date, time).assume_offset(offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ctx, fixture};

    fn sample() -> Vec<u8> {
        std::fs::read(fixture("social/twcs_sample.csv")).unwrap()
    }

    fn ids(units: &[Unit]) -> Vec<String> {
        crate::unit::interactions(units)
            .map(|i| i.id.clone())
            .collect()
    }

    #[test]
    fn sample_rows_become_tweets_with_roles_chains_and_one_error() {
        let input = sample();
        let units = parse_twcs_csv(&input, &ctx("twcs_sample.csv"));
        assert_eq!(units.len(), 10, "one unit per record, header excluded");
        let errors: Vec<&str> = units
            .iter()
            .filter_map(|u| u.outcome.as_ref().err().map(|e| e.reason.as_str()))
            .collect();
        assert_eq!(
            errors,
            [
                "line 9: invalid timestamp \"Mon Nov 31 11:00:00 +0000 2017\" in field \"created_at\" of tweet 107"
            ]
        );
        let all: Vec<&Interaction> = crate::unit::interactions(&units).collect();
        assert_eq!(all.len(), 9);
        let get = |id: &str| *all.iter().find(|i| i.id == id).unwrap();

        // The chain 101 -> 102 -> 103 shares 101's conversation.
        let (t101, t102, t103) = (get("twitter:101"), get("twitter:102"), get("twitter:103"));
        assert_eq!(t101.author.role, Role::Customer);
        assert_eq!(t102.author.role, Role::Agent);
        assert_eq!(t102.author.ids, ["handle:twitter:NordBankHjaelp"]);
        assert_eq!(t101.in_reply_to, None);
        assert_eq!(t102.in_reply_to.as_deref(), Some("twitter:101"));
        assert_eq!(t103.in_reply_to.as_deref(), Some("twitter:102"));
        for t in [t101, t102, t103] {
            assert_eq!(t.conversation_id, "twitter:101", "{}", t.id);
            assert!(t.public);
            assert_eq!(t.channel, Channel::Social);
        }
        assert_eq!(
            t102.text,
            "@900101 Sorry to hear that! Please DM us the last 4 digits & we'll unblock it. ^AL"
        );
        assert_eq!(
            t101.occurred_at,
            time::macros::datetime!(2017-11-06 09:00:00 UTC)
        );
        // A quoted field with a line break; a +0100 offset.
        let t104 = get("twitter:104");
        assert_eq!(
            t104.text,
            "@NordBankHjaelp Hej, jeres app logger mig ud hele tiden.\nHvad sker der?"
        );
        assert_eq!(
            t104.occurred_at,
            time::macros::datetime!(2017-11-06 09:00:00 UTC)
        );
        assert_eq!(get("twitter:105").conversation_id, "twitter:104");
        // 108 answers the rejected 107: its conversation is the parent's id.
        assert_eq!(get("twitter:108").conversation_id, "twitter:107");
        assert_eq!(get("twitter:106").conversation_id, "twitter:106");
        // The row after the bad one still parses.
        assert_eq!(
            get("twitter:110").in_reply_to.as_deref(),
            Some("twitter:109")
        );
    }

    #[test]
    fn offsets_tile_the_records_and_resume_yields_only_the_rest() {
        let input = sample();
        let header_end = input.iter().position(|&b| b == b'\n').unwrap() as u64 + 1;
        let units = parse_twcs_csv(&input, &ctx("t"));
        assert_eq!(units[0].start, header_end);
        for pair in units.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        assert_eq!(units.last().unwrap().end, input.len() as u64);
        assert!(input[units[3].start as usize..].starts_with(b"104,"));

        // From a checkpoint, with the whole file: absolute offsets and line numbers.
        let resume = units[3].end; // after the two-line row 104
        let rest = parse_twcs_csv_from(&input, resume, &ctx("t"));
        assert_eq!(rest.len(), 6);
        for (r, u) in rest.iter().zip(&units[4..]) {
            assert_eq!((r.start, r.end), (u.start, u.end));
        }
        assert_eq!(ids(&rest), ids(&units[4..]));
        let error = rest.iter().find_map(|u| u.outcome.as_ref().err()).unwrap();
        assert!(error.reason.starts_with("line 9: "), "{error}");

        // The file's tail alone (no header): the dataset's column order.
        let tail = parse_twcs_csv(&input[resume as usize..], &ctx("t"));
        assert_eq!(ids(&tail), ids(&units[4..]));
        assert_eq!(tail[0].start + resume, units[4].start);

        // A checkpoint inside the header starts at the first record.
        assert_eq!(parse_twcs_csv_from(&input, 3, &ctx("t")).len(), 10);
        assert!(parse_twcs_csv_from(&input, input.len() as u64, &ctx("t")).is_empty());
    }

    #[test]
    fn header_order_bad_rows_and_non_utf8() {
        let mut input = b"text,tweet_id,inbound,author_id,created_at,in_response_to_tweet_id,response_tweet_id\n\
            hello,1,True,55,Tue Oct 31 22:10:47 +0000 2017,,\n\
            short,2,True\n\
            x,3,maybe,55,Tue Oct 31 22:10:47 +0000 2017,,\n"
            .to_vec();
        input.extend_from_slice(b"caf\xe9,4,True,55,Tue Oct 31 22:10:47 +0000 2017,,\n");
        input.extend_from_slice(b"bye,5,False,Acme,Tue Oct 31 22:11:00 +0000 2017,1.0,\n");
        let units = parse_twcs_csv(&input, &ctx("t"));
        assert_eq!(units.len(), 5);
        assert_eq!(ids(&units), ["twitter:1", "twitter:5"]);
        let reason = |i: usize| units[i].outcome.as_ref().unwrap_err().reason.clone();
        assert_eq!(reason(1), "line 3: expected 7 fields, found 3");
        assert_eq!(
            reason(2),
            "line 4: invalid boolean \"maybe\" in field \"inbound\" of tweet 3"
        );
        assert!(
            reason(3).starts_with("line 5: field \"text\": not valid UTF-8"),
            "{}",
            reason(3)
        );
        let last = &units[4].outcome.as_ref().unwrap()[0];
        assert_eq!(last.in_reply_to.as_deref(), Some("twitter:1"));
        assert_eq!(last.conversation_id, "twitter:1");

        let missing = parse_twcs_csv(b"tweet_id,author_id,created_at,text\n1,2,x,y\n", &ctx("t"));
        assert_eq!(missing.len(), 1);
        assert!(
            missing[0]
                .outcome
                .as_ref()
                .unwrap_err()
                .reason
                .contains("no column \"inbound\"")
        );

        let mut small = ctx("t");
        small.max_message_bytes = 40;
        let units = parse_twcs_csv(&sample(), &small);
        assert!(units.iter().all(|u| {
            u.outcome
                .as_ref()
                .is_err_and(|e| e.reason.contains("too large"))
        }));
    }

    #[test]
    fn replies_before_their_parents_share_the_root_conversation() {
        let input = b"tweet_id,author_id,inbound,created_at,text,response_tweet_id,in_response_to_tweet_id\n\
            303,55,True,Tue Oct 31 22:12:00 +0000 2017,third,,302\n\
            302,Acme,False,Tue Oct 31 22:11:00 +0000 2017,second,303,301.0\n\
            301,55,True,Tue Oct 31 22:10:00 +0000 2017,first,302,\n";
        let units = parse_twcs_csv(input, &ctx("t"));
        let out: Vec<&Interaction> = units
            .iter()
            .map(|u| &u.outcome.as_ref().unwrap()[0])
            .collect();
        assert_eq!(
            out.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            ["twitter:303", "twitter:302", "twitter:301"],
            "units stay in file order"
        );
        for i in &out {
            assert_eq!(i.conversation_id, "twitter:301", "{}", i.id);
        }
        assert_eq!(out[0].in_reply_to.as_deref(), Some("twitter:302"));
        assert_eq!(out[1].in_reply_to.as_deref(), Some("twitter:301"));
        // Resumed after the first record: the same conversations, with the parent known.
        let rest = parse_twcs_csv_from(input, units[0].end, &ctx("t"));
        assert_eq!(rest.len(), 2);
        assert!(
            rest.iter()
                .all(|u| u.outcome.as_ref().unwrap()[0].conversation_id == "twitter:301")
        );
    }

    #[test]
    fn reply_cycles_end_instead_of_looping() {
        let input = b"tweet_id,author_id,inbound,created_at,text,response_tweet_id,in_response_to_tweet_id\n\
            1,55,True,Tue Oct 31 22:10:00 +0000 2017,a,,3\n\
            2,55,True,Tue Oct 31 22:10:00 +0000 2017,b,,1\n\
            3,55,True,Tue Oct 31 22:10:00 +0000 2017,c,,2\n\
            4,55,True,Tue Oct 31 22:10:00 +0000 2017,d,,4\n\
            5,55,True,Tue Oct 31 22:10:00 +0000 2017,e,,3\n";
        let units = parse_twcs_csv(input, &ctx("t"));
        let conversations: Vec<String> = units
            .iter()
            .map(|u| u.outcome.as_ref().unwrap()[0].conversation_id.clone())
            .collect();
        assert_eq!(
            conversations,
            [
                "twitter:1",
                "twitter:1",
                "twitter:1",
                "twitter:4",
                "twitter:1"
            ]
        );
    }

    #[test]
    fn hundred_thousand_rows_parse_fast() {
        let mut input = String::from(
            "tweet_id,author_id,inbound,created_at,text,response_tweet_id,in_response_to_tweet_id\n",
        );
        for i in 1..=100_000u32 {
            let (author, inbound, parent) = if i % 2 == 1 {
                (format!("{}", 100_000 + i % 977), "True", String::new())
            } else {
                ("AcmeSupport".to_string(), "False", (i - 1).to_string())
            };
            input.push_str(&format!(
                "{i},{author},{inbound},Tue Oct 31 22:10:47 +0000 2017,\"@Acme my order #{i} is late, again &amp; again\",,{parent}\n"
            ));
        }
        let started = std::time::Instant::now();
        let units = parse_twcs_csv(input.as_bytes(), &ctx("bench"));
        let elapsed = started.elapsed();
        eprintln!(
            "twcs: 100k rows in {elapsed:?} ({} build)",
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "optimised"
            }
        );
        assert_eq!(units.len(), 100_000);
        assert!(units.iter().all(|u| u.outcome.is_ok()));
        let last = &units[99_999].outcome.as_ref().unwrap()[0];
        assert_eq!(last.conversation_id, "twitter:99999");
        let limit = if cfg!(debug_assertions) { 20.0 } else { 1.0 };
        assert!(elapsed.as_secs_f64() < limit, "{elapsed:?}");
    }

    #[test]
    fn twitter_times_parse_to_utc() {
        assert_eq!(
            twitter_time("Tue Oct 31 22:10:47 +0000 2017"),
            Some(time::macros::datetime!(2017-10-31 22:10:47 UTC))
        );
        assert_eq!(
            twitter_time("Wed Nov 01 08:00:00 +0100 2017"),
            Some(time::macros::datetime!(2017-11-01 07:00:00 UTC))
        );
        assert_eq!(twitter_time("Tue Foo 31 22:10:47 +0000 2017"), None);
        assert_eq!(twitter_time("Tue Oct 32 22:10:47 +0000 2017"), None);
        assert_eq!(twitter_time("Tue Oct 31 22:10:47 +0000"), None);
    }

    #[test]
    fn out_of_range_times_are_invalid_timestamps_not_panics() {
        // Year 10000 in UTC (`to_offset` panicked), a negative year, and one before 1900.
        assert_eq!(twitter_time("Fri Dec 31 23:59:59 -0100 9999"), None);
        assert_eq!(twitter_time("Fri Dec 31 23:59:59 +0000 -5"), None);
        assert_eq!(twitter_time("Fri Dec 31 23:59:59 +0000 1899"), None);
        assert_eq!(
            twitter_time("Tue Dec 31 23:59:59 +0000 2999"),
            Some(time::macros::datetime!(2999-12-31 23:59:59 UTC))
        );
        let input = b"tweet_id,author_id,inbound,created_at,text,response_tweet_id,in_response_to_tweet_id\n\
            1,55,True,Fri Dec 31 23:59:59 -0100 9999,late,,\n\
            2,55,True,9999-12-31T23:59:59-01:00,later,,\n\
            3,55,True,Tue Oct 31 22:10:47 +0000 2017,ok,,\n";
        let units = parse_twcs_csv(input, &ctx("t"));
        let reason = |i: usize| units[i].outcome.as_ref().unwrap_err().reason.clone();
        assert_eq!(
            reason(0),
            "line 2: invalid timestamp \"Fri Dec 31 23:59:59 -0100 9999\" in field \"created_at\" of tweet 1"
        );
        assert_eq!(
            reason(1),
            "line 3: invalid timestamp \"9999-12-31T23:59:59-01:00\" in field \"created_at\" of tweet 2"
        );
        assert!(units[2].outcome.is_ok());
    }

    #[test]
    fn entities_decode() {
        use crate::text::decode_entities;
        assert_eq!(
            decode_entities("a &amp; b &lt;3 &gt; &foo; &"),
            "a & b <3 > &foo; &"
        );
        assert_eq!(decode_entities("plain"), "plain");
        let units = parse_twcs_csv(
            b"1,55,True,Tue Oct 31 22:10:47 +0000 2017,\"I &lt;3 it, &quot;really&quot; &#39;n &amp; &foo;\",,\n",
            &ctx("t"),
        );
        assert_eq!(
            units[0].outcome.as_ref().unwrap()[0].text,
            "I <3 it, \"really\" 'n & &foo;"
        );
    }
}
