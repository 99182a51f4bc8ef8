//! Chat transcripts: Rapport's generic JSON/NDJSON shape and the ABCD dataset shape.
//!
//! # Rapport's chat JSON
//!
//! The shape a live-chat platform emits to feed Rapport: by file (`rapport ingest`, a watched
//! folder) or by webhook (`POST /ingest/chat`, one object per request body). Send either a
//! **transcript** (a whole chat session) or a **single message** (as it happens).
//!
//! ```json
//! {
//!   "conversation_id": "s-1042",
//!   "started_at": "2024-05-02T09:14:00+02:00",
//!   "language": "da",
//!   "participants": {
//!     "v-77": {"role": "customer", "name": "Mette Jensen", "email": "mette@example.dk",
//!              "phone": "+45 20 30 40 50", "crm_id": "88412"},
//!     "a-3":  {"role": "agent", "name": "Jonas"}
//!   },
//!   "messages": [
//!     {"id": "m1", "at": "2024-05-02T09:14:05+02:00", "from": "v-77", "text": "Hej, min pakke er ikke kommet."},
//!     {"id": "m2", "at": "2024-05-02T09:15:10+02:00", "from": "a-3",
//!      "html": "<p>Hej Mette, det beklager jeg. Jeg kigger på det nu.</p>"}
//!   ]
//! }
//! ```
//!
//! ```json
//! {"conversation_id": "s-1042", "id": "m3", "at": "2024-05-02T09:16:00Z", "role": "customer",
//!  "author": {"id": "v-77", "email": "mette@example.dk"}, "text": "Tak!"}
//! ```
//!
//! A file (or request body) holds one object, an array of objects, or NDJSON (one object
//! per line); transcripts and single messages may be mixed. An object with `messages` is a
//! transcript; any other object is a single message.
//!
//! **Transcript fields**
//!
//! | field | | meaning |
//! |---|---|---|
//! | `conversation_id` | required | the chat session's id, string or integer (`session_id` is accepted as an alias) |
//! | `messages` | required | array of messages, in order |
//! | `started_at` | optional | RFC 3339; checked, informational |
//! | `language` | optional | BCP 47 tag for every message that does not state its own |
//! | `participants` | optional | object: participant id → participant (or an array of participants with an `id`) |
//! | `attributes` | optional | object copied into every message's attributes |
//!
//! **Participant / author fields**: `role` (`customer`, `agent`, `bot`; vendor spellings such
//! as `visitor`, `operator`, `assistant`, `kunde` are understood), `name`, `email`, `phone`
//! (E.164 preferred: `+4520304050`; without a country code the digits are kept as sent),
//! `crm_id`, and for an inline `author` its `id`.
//!
//! **Message fields**
//!
//! | field | | meaning |
//! |---|---|---|
//! | `conversation_id` | single messages: required | as above |
//! | `id` | recommended | the message's id, unique within the conversation |
//! | `at` | required | RFC 3339 (or ISO 8601; no offset means UTC) |
//! | `from` | optional | participant id (transcripts), or the author's id |
//! | `role` | optional | overrides the participant's role |
//! | `author` | optional | inline participant object (single messages) |
//! | `text` | required unless `html` | plain text |
//! | `html` | optional | used when `text` is absent or empty; converted to plain text |
//! | `language` | optional | BCP 47, overrides the transcript's |
//! | `in_reply_to` | optional | id of the message this one answers |
//! | `attributes` | optional | object copied into the interaction's attributes |
//!
//! **What Rapport makes of it**
//!
//! - id `chat:<conversation_id>:<message id>`; without an id, a transcript message uses its
//!   0-based position (`chat:s-1042:0`) and a single message `h` + a hash of `at`, role and
//!   text, so a re-sent message keeps its id. Ids must not change between re-sends, or a
//!   message is counted twice.
//! - conversation `chat:<conversation_id>`; channel `chat`; never `public`.
//! - author ids: `email:<lower-cased address>`, `phone:+<digits>`, `crm:<crm_id>` and
//!   `chat:<participant id>`; name from the participant.
//! - role: the message's `role`, else its participant's, else `unknown`.
//! - `in_reply_to`: the explicit `in_reply_to`, else the previous message of the same
//!   conversation (in this transcript, or earlier in the same file or request) when the role
//!   changed (a customer message after an agent message answers it).
//! - errors: a message without text, without `at` or with an invalid timestamp rejects its
//!   unit with a reason naming the field, value and message, e.g.
//!   `line 3: invalid timestamp "2024-13-45T10:00:00Z" in field "at" of message "m3" of conversation "s-1042"`.
//!   A transcript with an empty `messages` array, or an empty array, is an error too
//!   (`transcript "c" has no messages`, `empty array: no conversations`) when nothing else
//!   in its unit has messages: an empty transcript among others is skipped.
//!   A document (object or array) is one unit: one bad message rejects the document. In
//!   NDJSON each line is its own unit (line numbers count from the start of the input
//!   given), so send NDJSON or one object per request to isolate failures.
//!
//! # ABCD
//!
//! See [`abcd`](parse_abcd): the Action-Based Conversations Dataset's JSON array.

mod abcd;
mod generic;

use crate::error::ParseError;
use crate::record::Interaction;
use crate::unit::{ParseContext, Unit};

/// Generic chat JSON (one document: object or array) or NDJSON (one message or transcript
/// per line), as documented in the module. A document is one unit; NDJSON is one unit per
/// non-blank line, `end` just after its newline.
pub fn parse_chat_json(input: &[u8], ctx: &ParseContext) -> Vec<Unit> {
    generic::parse_chat_json(input, ctx)
}

/// ABCD dataset: a JSON array of conversations with `original` turns (one unit: the file).
///
/// - id `abcd:<convo_id>:<turn index>` (0-based over `original`), conversation `abcd:<convo_id>`;
/// - `action` turns become `bot` with attribute `kind: "action"`;
/// - customer ids from `scenario.personal`: `email:…`, `phone:+1…`, `handle:abcd:<username>`;
/// - attributes `flow`, `subflow`, `member_level`;
/// - no timestamps in ABCD: turn *n* is at `ctx.source_time` + *n* seconds;
/// - an input without a turn with text (`[]`, only empty conversations) is an error.
pub fn parse_abcd(input: &[u8], ctx: &ParseContext) -> Result<Vec<Interaction>, ParseError> {
    abcd::parse_abcd(input, ctx)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::format::{Format, detect};
    use crate::testing::{corpus, ctx, fixture};

    #[test]
    fn fixtures_are_detected_and_parsed_through_format() {
        for (rel, interactions) in [
            ("chat/transcript_da.json", 5),
            ("chat/transcript_sv.json", 3),
            ("chat/mixed.ndjson", 5),
        ] {
            let input = std::fs::read(fixture(rel)).unwrap();
            assert_eq!(
                detect(Path::new(rel), &input),
                Some(Format::ChatJson),
                "{rel}"
            );
            let units = Format::ChatJson.parse(&input, &ctx(rel));
            let count = crate::unit::interactions(&units).count();
            assert_eq!(count, interactions, "{rel}");
        }
    }

    #[test]
    fn abcd_corpus_is_detected_as_abcd() {
        let Some(path) = corpus("chat/abcd/abcd_sample.json") else {
            return;
        };
        let input = std::fs::read(&path).unwrap();
        assert_eq!(detect(&path, &input), Some(Format::Abcd));
        let units = Format::Abcd.parse(&input, &ctx("abcd_sample.json"));
        assert_eq!(units.len(), 1);
        assert!(units[0].outcome.is_ok());
    }
}
