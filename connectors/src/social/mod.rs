//! Social posts: Mastodon statuses (API JSON, ActivityPub objects, NDJSON exports) and the
//! Customer Support on Twitter CSV.
//!
//! Both are public channels: ids are the platform's global ids (`mastodon:<status uri>`,
//! `twitter:<tweet_id>`), authors are `handle:<platform>:<handle>`, and every author starts
//! as a customer (Mastodon) or is told by the data (`inbound` in the Twitter CSV).

mod mastodon;
mod twcs;

use crate::unit::{ParseContext, Unit};

/// Mastodon API `Status` JSON or ActivityPub objects: one document (a status, an array, a
/// collection) is one unit; NDJSON is one unit per non-blank line. Replies and reply-tree
/// roots are resolved across the whole input. See the `mastodon` module source for the rules.
///
/// id `mastodon:<status uri>`; `in_reply_to` `mastodon:<parent uri>` when the parent is
/// known (ActivityPub `inReplyTo`, or an API `in_reply_to_id` found in the same input; the
/// raw `in_reply_to_id` is kept as an attribute); conversation `mastodon:<context>` or
/// `mastodon:<root uri>`; `public` for visibility `public`/`unlisted`.
pub fn parse_mastodon(input: &[u8], ctx: &ParseContext) -> Vec<Unit> {
    mastodon::parse_mastodon(input, ctx)
}

/// Customer Support on Twitter CSV: one unit per record, the header read first (input
/// without a header is read in the dataset's column order, so a file's tail from a
/// checkpoint parses too, with offsets relative to the tail).
pub fn parse_twcs_csv(input: &[u8], ctx: &ParseContext) -> Vec<Unit> {
    twcs::parse_twcs_csv(input, ctx)
}

/// Customer Support on Twitter CSV from a checkpoint: `input` is the whole file (header
/// first); only records starting at or after `resume_offset` (an earlier unit's `end`) are
/// parsed, with absolute offsets and line numbers.
pub fn parse_twcs_csv_from(input: &[u8], resume_offset: u64, ctx: &ParseContext) -> Vec<Unit> {
    twcs::parse_twcs_csv_from(input, resume_offset, ctx)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::format::{Format, detect};
    use crate::testing::{ctx, fixture};

    #[test]
    fn fixtures_are_detected_and_parsed_through_format() {
        for (rel, format, interactions) in [
            ("social/mastodon_export.ndjson", Format::Mastodon, 8),
            ("social/twcs_sample.csv", Format::TwcsCsv, 9),
        ] {
            let input = std::fs::read(fixture(rel)).unwrap();
            assert_eq!(detect(Path::new(rel), &input), Some(format), "{rel}");
            let units = format.parse(&input, &ctx(rel));
            let count = crate::unit::interactions(&units).count();
            assert_eq!(count, interactions, "{rel}");
        }
    }
}
