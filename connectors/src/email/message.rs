//! One RFC 5322 message → one [`Interaction`].

use mail_parser::{
    Address, HeaderName, HeaderValue, Message, MessageParser, MimeHeaders, PartType,
};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::clean;
use crate::error::ParseError;
use crate::ids::content_hash;
use crate::record::{Author, Channel, Interaction, Role};
use crate::unit::ParseContext;

/// The reason given for a message with nothing to record: no text of its own once quotes
/// and signatures are removed, and no subject or attachment to stand for it.
pub const EMPTY_BODY: &str = "empty body: the message has no text after removing quotes and signatures, and no subject or attachment to stand for it";

/// Subject prefixes of automatic replies (out-of-office and the like) in the four languages
/// and the clients' English, matched case-insensitively.
const AUTO_REPLY_SUBJECTS: &[&str] = &[
    "auto:",
    "automatic reply",
    "autoreply",
    "auto-reply",
    "out of office",
    "autosvar",
    "automatisk svar",
    "automatiskt svar",
    "fraværende",
    "frånvaro",
    "abwesenheitsnotiz",
];

/// Parses one message, or each message of a digest: a mailing list's `multipart/digest`
/// bundles its members' messages, and each is an interaction of its own. See
/// [`super::parse_eml`].
///
/// Size caps: the raw message (attachments included: a customer's mail with photos runs to
/// megabytes) is held to `max_file_bytes`; the text extracted from it to `max_message_bytes`.
pub fn parse(input: &[u8], ctx: &ParseContext) -> Result<Vec<Interaction>, ParseError> {
    ctx.check_file_size(input.len())?;
    let message = MessageParser::default()
        .parse(input)
        .ok_or_else(|| ParseError::new("not an e-mail message: no header fields found"))?;
    let digest: Vec<&[u8]> = if is_digest(&message) {
        message
            .attachments()
            .filter_map(|part| part.message())
            .map(|inner| inner.raw_message())
            .collect()
    } else {
        Vec::new()
    };
    if digest.is_empty() {
        return one(&message, input, ctx).map(|interaction| vec![interaction]);
    }
    let mut all = Vec::with_capacity(digest.len());
    for (n, raw) in digest.iter().enumerate() {
        let inner = MessageParser::default().parse(raw).ok_or_else(|| {
            ParseError::new(format!("digest message {}: no header fields", n + 1))
        })?;
        let interaction = one(&inner, raw, ctx).map_err(|e| {
            ParseError::new(format!(
                "digest message {} of {}: {}",
                n + 1,
                digest.len(),
                e.reason
            ))
        })?;
        all.push(interaction);
    }
    Ok(all)
}

/// `Content-Type: multipart/digest` (RFC 2046 §5.1.5).
fn is_digest(message: &Message<'_>) -> bool {
    message.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("digest"))
    })
}

/// An automatic reply: `Auto-Submitted` other than `no` (RFC 3834: out-of-office
/// responders, trackers' notifications), the older `X-Autoreply`/`X-Autorespond`,
/// `Precedence: auto_reply`, or an out-of-office subject.
fn is_auto_reply(message: &Message<'_>) -> bool {
    let header = |name: &str| {
        // `HeaderName::parse` gives the known names (Auto-Submitted is one) their variant.
        message
            .header_raw(HeaderName::parse(name)?)
            .map(|v| v.trim().to_ascii_lowercase())
    };
    let auto_submitted = header("Auto-Submitted").is_some_and(|v| !v.is_empty() && v != "no");
    let legacy = header("X-Autoreply").is_some() || header("X-Autorespond").is_some();
    let precedence = header("Precedence").is_some_and(|v| v == "auto_reply");
    let subject = message.subject().map(|s| s.trim().to_lowercase());
    let subject_says =
        subject.is_some_and(|s| AUTO_REPLY_SUBJECTS.iter().any(|p| s.starts_with(p)));
    auto_submitted || legacy || precedence || subject_says
}

/// What stands for a message without text of its own (only quotes, only attachments): its
/// subject and the names of its attachments; `None` when it has neither.
fn stand_in_text(message: &Message<'_>) -> Option<String> {
    let subject = message.subject().map(str::trim).filter(|s| !s.is_empty());
    let names = attachment_names(message);
    let attached = (!names.is_empty()).then(|| format!("[attachments: {}]", names.join(", ")));
    match (subject, attached) {
        (None, None) => None,
        (Some(subject), None) => Some(subject.to_string()),
        (None, Some(attached)) => Some(attached),
        (Some(subject), Some(attached)) => Some(format!("{subject}\n{attached}")),
    }
}

fn attachment_names(message: &Message<'_>) -> Vec<String> {
    message
        .attachments()
        .filter_map(|part| part.attachment_name())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .collect()
}

/// One message → its interaction.
fn one(message: &Message<'_>, input: &[u8], ctx: &ParseContext) -> Result<Interaction, ParseError> {
    if !has_message_headers(message) {
        return Err(ParseError::new(
            "not an e-mail message: none of the header fields From, To, Subject, Date, \
             Message-ID, Received or Content-Type is present",
        ));
    }

    let message_id = message.message_id().and_then(bare_id);
    let native_id = match &message_id {
        Some(id) => id.clone(),
        None => format!("sha256:{}", content_hash(input)),
    };
    let references = id_list(message.references());
    let in_reply_to = id_list(message.in_reply_to()).into_iter().next();
    let conversation_id = format!(
        "email:{}",
        references
            .first()
            .or(in_reply_to.as_ref())
            .unwrap_or(&native_id)
    );

    let mut attributes = Map::new();
    let occurred_at = occurred_at(message, ctx, &mut attributes);
    // A message with no text of its own is still recorded (it is part of the thread), by
    // its subject and attachments, and marked so that profiles and flags leave it out.
    let text = match body_text(message) {
        Ok(text) => text,
        Err(empty) => {
            let text = stand_in_text(message).ok_or(empty)?;
            attributes.insert("own_text".into(), Value::from(false));
            text
        }
    };
    if is_auto_reply(message) {
        attributes.insert("auto_reply".into(), Value::from(true));
    }
    if text.len() > ctx.max_message_bytes {
        return Err(ParseError::new(format!(
            "too large: the text body is {} bytes, over the cap of {} bytes (ingest.max_message_bytes)",
            text.len(),
            ctx.max_message_bytes
        )));
    }

    if let Some(subject) = message.subject() {
        attributes.insert("subject".into(), Value::from(subject.trim()));
    }
    if let Some(id) = &message_id {
        attributes.insert("message_id".into(), Value::from(id.as_str()));
    }
    attributes.insert("to".into(), Value::from(addresses(message.to())));
    let cc = addresses(message.cc());
    if !cc.is_empty() {
        attributes.insert("cc".into(), Value::from(cc));
    }
    if message.attachment_count() > 0 {
        attributes.insert(
            "attachments".into(),
            Value::from(message.attachment_count()),
        );
        let names = attachment_names(message);
        if !names.is_empty() {
            attributes.insert("attachment_names".into(), Value::from(names));
        }
    }
    if !references.is_empty() {
        attributes.insert("references".into(), Value::from(references));
    }

    Ok(Interaction {
        id: format!("email:{native_id}"),
        conversation_id,
        channel: Channel::Email,
        connector: ctx.connector.clone(),
        occurred_at,
        author: author(message, ctx),
        text,
        language: language(message),
        public: false,
        in_reply_to: in_reply_to.map(|id| format!("email:{id}")),
        attributes,
    })
}

fn has_message_headers(message: &Message<'_>) -> bool {
    message.root_part().headers().iter().any(|h| {
        matches!(
            h.name,
            HeaderName::From
                | HeaderName::To
                | HeaderName::Subject
                | HeaderName::Date
                | HeaderName::MessageId
                | HeaderName::Received
                | HeaderName::ContentType
                | HeaderName::Sender
        )
    })
}

/// A message id without angle brackets or surrounding space; `None` when nothing is left.
fn bare_id(id: &str) -> Option<String> {
    let id = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// The ids of a References or In-Reply-To field, in order.
fn id_list(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(id) => bare_id(id).into_iter().collect(),
        HeaderValue::TextList(ids) => ids.iter().filter_map(|id| bare_id(id)).collect(),
        _ => Vec::new(),
    }
}

fn addresses(address: Option<&Address<'_>>) -> Vec<String> {
    address
        .map(|a| {
            a.iter()
                .filter_map(|a| a.address())
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn author(message: &Message<'_>, ctx: &ParseContext) -> Author {
    let from = message
        .from()
        .or_else(|| message.sender())
        .and_then(|a| a.first());
    let address = from
        .and_then(|a| a.address())
        .map(|a| a.trim().to_lowercase())
        .filter(|a| !a.is_empty());
    let name = from
        .and_then(|a| a.name())
        .map(|n| n.trim().trim_matches('"').trim().to_string())
        .filter(|n| !n.is_empty());

    let mut ids = Vec::new();
    if let Some(address) = &address {
        ids.push(format!("email:{address}"));
    }
    // A Reply-To that points back at a recipient is a mailing list, not the author: as an
    // identity key it would merge everyone who posts to the list into one customer.
    let recipients: Vec<String> = addresses(message.to())
        .into_iter()
        .chain(addresses(message.cc()))
        .map(|a| a.to_lowercase())
        .collect();
    for reply_to in addresses(message.reply_to()) {
        let reply_to = reply_to.to_lowercase();
        let id = format!("email:{reply_to}");
        if !ids.contains(&id) && !recipients.contains(&reply_to) {
            ids.push(id);
        }
    }
    let role = match &address {
        Some(address) if is_company_address(address, &ctx.company_domains) => Role::Agent,
        Some(_) => Role::Customer,
        None => Role::Unknown,
    };
    Author { role, ids, name }
}

/// True when the address's domain is one of `domains` or a subdomain of one.
pub fn is_company_address(address: &str, domains: &[String]) -> bool {
    let Some((_, domain)) = address.rsplit_once('@') else {
        return false;
    };
    let domain = domain.trim().trim_end_matches('.').to_lowercase();
    domains.iter().any(|d| {
        let d = d
            .trim()
            .trim_start_matches('@')
            .trim_matches('.')
            .to_lowercase();
        !d.is_empty() && (domain == d || domain.ends_with(&format!(".{d}")))
    })
}

/// The Date header in UTC, else the newest Received date, else the source's own time (the
/// file's mtime, the IMAP INTERNALDATE): a customer's mail with a broken Date is still a
/// customer's mail. The fallbacks are recorded as `date_source`, a bad header as `date_header`.
fn occurred_at(
    message: &Message<'_>,
    ctx: &ParseContext,
    attributes: &mut Map<String, Value>,
) -> OffsetDateTime {
    if let Some(t) = message.date().and_then(to_utc) {
        return t;
    }
    let raw = message.header_raw(HeaderName::Date).unwrap_or("").trim();
    if !raw.is_empty() {
        attributes.insert("date_header".into(), Value::from(raw));
    }
    if let Some(t) = message
        .received_all()
        .filter_map(|r| r.date())
        .filter_map(|d| to_utc(&d))
        .max()
    {
        attributes.insert("date_source".into(), Value::from("received"));
        return t;
    }
    attributes.insert("date_source".into(), Value::from("source"));
    ctx.source_time
}

/// A mail date in UTC; `None` when it is invalid or out of range ([`crate::text::to_utc`]).
fn to_utc(date: &mail_parser::DateTime) -> Option<OffsetDateTime> {
    if !date.is_valid() {
        return None;
    }
    OffsetDateTime::from_unix_timestamp(date.to_timestamp())
        .ok()
        .and_then(crate::text::to_utc)
}

/// The sender's text: every inline text part (HTML converted), quotes and signatures removed.
pub(super) fn body_text(message: &Message<'_>) -> Result<String, ParseError> {
    let mut parts = Vec::new();
    for part in message.text_bodies() {
        let text = match &part.body {
            PartType::Text(text) => clean::strip_quotes_and_signatures(text),
            PartType::Html(html) => clean::html_body(html),
            _ => continue,
        };
        let text = crate::text::normalise_whitespace(&text);
        if !text.is_empty() {
            parts.push(text);
        }
    }
    let text = parts.join("\n\n");
    if text.is_empty() {
        return Err(ParseError::new(EMPTY_BODY));
    }
    Ok(text)
}

/// The first tag of Content-Language.
fn language(message: &Message<'_>) -> Option<String> {
    let tag = match message.header(HeaderName::ContentLanguage)? {
        HeaderValue::Text(tag) => tag.split(',').next()?.trim().to_string(),
        HeaderValue::TextList(tags) => tags.first()?.trim().to_string(),
        _ => return None,
    };
    (!tag.is_empty()).then_some(tag)
}
