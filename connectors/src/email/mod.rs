//! E-mail: RFC 5322 messages (`.eml`, Maildir files, IMAP fetches) and mbox files.
//!
//! | field | from |
//! |---|---|
//! | `id` | `email:<Message-ID>`, else `email:sha256:<content hash of the raw message>` |
//! | `conversation_id` | `email:<first References id, else In-Reply-To, else own id>` |
//! | `in_reply_to` | `email:<In-Reply-To>` |
//! | `author` | From (and Reply-To) as `email:<address>`; agent when the domain is one of `company_domains` or below it |
//! | `occurred_at` | Date in UTC, else the newest Received date (`date_source: "received"`), else the source time: file mtime or IMAP INTERNALDATE (`date_source: "source"`); a bad Date is kept as `date_header` |
//! | `text` | the text body (HTML converted), quoted replies and signatures removed; for a message with no text of its own (only quotes, only attachments), its subject and attachment names, with `own_text: false` |
//! | `language` | Content-Language |
//! | `attributes` | `subject`, `message_id`, `to`, `cc`, `attachments` (count), `attachment_names`, `references`, `date_source`, `auto_reply: true` (RFC 3834 `Auto-Submitted`, `X-Autoreply`, out-of-office subjects), `own_text: false` |
//!
//! Charsets are decoded by `mail-parser`. A `multipart/digest` gives one interaction per
//! message it bundles. A message with no text of its own after cleaning is recorded by its
//! subject and attachments (`own_text: false`), and auto-replies are marked: the domain keeps
//! both out of profiles and flags, but they stay on the timeline. Only a message with
//! neither text, subject nor attachment is an error ("empty body") for the dead-letter queue.
//! Size caps: the raw message, attachments included, is held to `max_file_bytes`; the text
//! extracted from it to `max_message_bytes`.

mod clean;
mod mbox;
mod message;
#[cfg(test)]
mod tests;

pub use clean::{html_body, strip_quotes_and_signatures};
pub(crate) use mbox::next_message_start;
pub use mbox::{escape_from, unescape_from};
pub use message::{EMPTY_BODY, is_company_address};

use crate::error::ParseError;
use crate::record::Interaction;
use crate::unit::{ParseContext, Unit};

/// One RFC 5322 message → one interaction (one per bundled message for a digest).
pub fn parse_eml(input: &[u8], ctx: &ParseContext) -> Result<Vec<Interaction>, ParseError> {
    message::parse(input, ctx)
}

/// An mbox file (mboxrd/mboxo, LF or CRLF) → one unit per message.
pub fn parse_mbox(input: &[u8], ctx: &ParseContext) -> Vec<Unit> {
    mbox::parse(input, ctx)
}
