//! Mastodon: API `Status` entities and ActivityPub objects, as one JSON document (a status,
//! an array of them, an `OrderedCollection` such as an account archive's `outbox.json`) or
//! NDJSON (one per line).
//!
//! **Recognised items.** An object with `account` is an API Status (a reblog is read as the
//! status it reblogs, with attribute `reblogged_by`). An object with `type` is ActivityPub:
//! `Note`, `Question`, `Article`, `Page` are posts; `Create`/`Update`/`Announce` with an
//! embedded object are read as that object (an `Announce` adds `reblogged_by`), with only a
//! reference they carry nothing to read and are skipped; collections are read item by item;
//! poll votes (a `Note` with `name`, `inReplyTo` and no `content`) and non-post activities
//! (`Like`, `Follow`, `Delete`, `Undo`, …) are skipped. Anything else is an error. A unit
//! (a document, an NDJSON line) left with no post at all is an error that lists what it
//! skipped ("no posts: Like activity (skipped: only posts become interactions)").
//!
//! **Ids.** `mastodon:<status uri>`: the uri is global (the same post fetched from two
//! instances, or a reblog of it, gets one id), whereas API `id`s are local to the instance
//! that served them.
//!
//! **Replies and threads.** The API gives only `in_reply_to_id`, an instance-local id: it is
//! kept as attribute `in_reply_to_id`, and `in_reply_to` is set to `mastodon:<parent uri>`
//! only when the parent is in the same input (all API statuses of one input are taken to
//! come from one instance). ActivityPub's `inReplyTo` is a uri and is always used.
//! `conversation_id` is `mastodon:<conversation>` where ActivityPub gives `conversation` or
//! `context` (on the post or its nearest ancestor in the input); else `mastodon:<root uri>`,
//! the root of the reply tree as far as the input shows it (a reply whose parent is not in
//! the input is its own root under the API, its parent under ActivityPub). Resolution looks
//! at the whole input, earlier and later lines alike (API timelines list newest first).
//!
//! **Fields.** text: `content` as plain text, prefixed `CW: <spoiler_text or summary>` when
//! there is a content warning; a post with no text but media descriptions uses those
//! (attribute `text_from: "media_description"`); a post with no text at all is an error.
//! `public`: visibility `public` or `unlisted` (ActivityPub: the Public collection in `to` or
//! `cc`). language: `language`, else the first `contentMap` key. author: role customer
//! (the pipeline decides who is staff), id `handle:mastodon:@user@host` in lower case, the
//! host from the account's `url` when `acct` has none (ActivityPub: from the actor uri),
//! name `display_name`. Attributes: `account_id` (API id, or the actor uri), `url`,
//! `replies_count`, `favourites_count`, `reblogs_count`, `mentions` (`@user@host` list),
//! `visibility`, `in_reply_to_id`, `reblogged_by`, `poll_options`. An ActivityPub object
//! without `published` (nor its activity) gets `ctx.source_time` and attribute
//! `occurred_at_estimated: true`.

use std::collections::HashMap;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::error::ParseError;
use crate::json_input::{self, id_field, kind, object_field, str_field, timestamp, within};
use crate::record::{Author, Channel, Interaction, Role};
use crate::unit::{ParseContext, Unit};

const PUBLIC: [&str; 3] = [
    "https://www.w3.org/ns/activitystreams#Public",
    "as:Public",
    "Public",
];

pub fn parse_mastodon(input: &[u8], ctx: &ParseContext) -> Vec<Unit> {
    let pieces = json_input::split(input, ctx);
    // Pass 1: every piece's posts, so that replies can be resolved across the whole input.
    let parsed: Vec<Result<Vec<Post>, ParseError>> = pieces
        .iter()
        .map(|piece| {
            piece
                .value(ctx)
                .and_then(|value| {
                    let mut posts = Vec::new();
                    let mut skipped = Skipped::default();
                    posts_from_value(&value, ctx, &mut posts, &mut skipped)?;
                    // Skipping is right for an activity among posts; a unit left with
                    // nothing says what it held instead of passing as an empty success.
                    if posts.is_empty() {
                        return Err(ParseError::new(skipped.reason()));
                    }
                    Ok(posts)
                })
                .map_err(|e| piece.locate(e))
        })
        .collect();
    let threads = Threads::new(parsed.iter().flatten().flatten());
    // Pass 2: interactions.
    pieces
        .iter()
        .zip(parsed)
        .map(|(piece, posts)| Unit {
            start: piece.start as u64,
            end: piece.end as u64,
            outcome: posts.map(|posts| {
                posts
                    .into_iter()
                    .map(|post| threads.interaction(post, ctx))
                    .collect()
            }),
        })
        .collect()
}

/// A post as read, before its thread is resolved.
struct Post {
    uri: String,
    /// API `id` (instance-local).
    local_id: Option<String>,
    /// API `in_reply_to_id`.
    parent_local_id: Option<String>,
    /// ActivityPub `inReplyTo`.
    parent_uri: Option<String>,
    /// ActivityPub `conversation` / `context`.
    context: Option<String>,
    occurred_at: OffsetDateTime,
    author: Author,
    text: String,
    language: Option<String>,
    public: bool,
    attributes: Map<String, Value>,
}

/// What the input says about reply trees.
struct Threads {
    uri_of_local_id: HashMap<String, String>,
    /// uri → (parent uri if known, parent local id, context).
    nodes: HashMap<String, Node>,
}

struct Node {
    parent_uri: Option<String>,
    parent_local_id: Option<String>,
    context: Option<String>,
}

impl Threads {
    fn new<'a>(posts: impl Iterator<Item = &'a Post>) -> Threads {
        let mut threads = Threads {
            uri_of_local_id: HashMap::new(),
            nodes: HashMap::new(),
        };
        for post in posts {
            if let Some(local) = &post.local_id {
                threads
                    .uri_of_local_id
                    .entry(local.clone())
                    .or_insert_with(|| post.uri.clone());
            }
            threads
                .nodes
                .entry(post.uri.clone())
                .or_insert_with(|| Node {
                    parent_uri: post.parent_uri.clone(),
                    parent_local_id: post.parent_local_id.clone(),
                    context: post.context.clone(),
                });
        }
        threads
    }

    fn parent<'a>(
        &'a self,
        parent_uri: &'a Option<String>,
        parent_local_id: &Option<String>,
    ) -> Option<&'a str> {
        parent_uri.as_deref().or_else(|| {
            parent_local_id
                .as_ref()
                .and_then(|id| self.uri_of_local_id.get(id))
                .map(String::as_str)
        })
    }

    fn conversation(&self, post: &Post) -> String {
        if let Some(context) = &post.context {
            return format!("mastodon:{context}");
        }
        let mut root = post.uri.as_str();
        let mut parent = self.parent(&post.parent_uri, &post.parent_local_id);
        // Bounded walk up the tree: a cycle in bad data cannot loop forever.
        for _ in 0..=self.nodes.len() {
            let Some(p) = parent else { break };
            root = p;
            let Some(node) = self.nodes.get(p) else { break };
            if let Some(context) = &node.context {
                return format!("mastodon:{context}");
            }
            parent = self.parent(&node.parent_uri, &node.parent_local_id);
        }
        format!("mastodon:{root}")
    }

    fn interaction(&self, post: Post, ctx: &ParseContext) -> Interaction {
        let conversation_id = self.conversation(&post);
        let in_reply_to = self
            .parent(&post.parent_uri, &post.parent_local_id)
            .map(|uri| format!("mastodon:{uri}"));
        Interaction {
            id: format!("mastodon:{}", post.uri),
            conversation_id,
            channel: Channel::Social,
            connector: ctx.connector.clone(),
            occurred_at: post.occurred_at,
            author: post.author,
            text: post.text,
            language: post.language,
            public: post.public,
            in_reply_to,
            attributes: post.attributes,
        }
    }
}

/// What a unit skipped (label → count, in order of appearance), for the error when it has
/// no post at all.
#[derive(Default)]
struct Skipped(Vec<(String, usize)>);

impl Skipped {
    fn note(&mut self, label: impl Into<String>) {
        let label = label.into();
        match self.0.iter_mut().find(|(l, _)| *l == label) {
            Some((_, n)) => *n += 1,
            None => self.0.push((label, 1)),
        }
    }

    fn reason(&self) -> String {
        let list = self
            .0
            .iter()
            .map(|(label, n)| match n {
                1 => label.clone(),
                n => format!("{label} ×{n}"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        if list.is_empty() {
            "no posts".to_string()
        } else if self.0.iter().all(|(label, _)| label.starts_with("empty ")) {
            format!("no posts: {list}")
        } else {
            format!("no posts: {list} (skipped: only posts become interactions)")
        }
    }
}

fn posts_from_value(
    value: &Value,
    ctx: &ParseContext,
    out: &mut Vec<Post>,
    skipped: &mut Skipped,
) -> Result<(), ParseError> {
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                skipped.note("empty array");
            }
            for (i, item) in items.iter().enumerate() {
                posts_from_value(item, ctx, out, skipped)
                    .map_err(|e| within(&format!("[{i}]"), e))?;
            }
            Ok(())
        }
        Value::Object(obj) => item(obj, ctx, out, skipped),
        other => Err(ParseError::new(format!(
            "expected a Mastodon status or ActivityPub object, not {}",
            kind(other)
        ))),
    }
}

fn item(
    obj: &Map<String, Value>,
    ctx: &ParseContext,
    out: &mut Vec<Post>,
    skipped: &mut Skipped,
) -> Result<(), ParseError> {
    if obj.contains_key("account") {
        out.push(api_status(obj)?);
        return Ok(());
    }
    let Some(ty) = obj.get("type").and_then(Value::as_str) else {
        return Err(ParseError::new(
            "not a Mastodon status (no \"account\") nor an ActivityPub object (no \"type\")",
        ));
    };
    match ty {
        "Note" | "Question" | "Article" | "Page" => match ap_object(obj, None, ctx)? {
            Some(post) => out.push(post),
            None => skipped.note("poll vote"),
        },
        "Create" | "Update" | "Announce" => match obj.get("object") {
            Some(Value::Object(object)) => match ap_object(object, Some(obj), ctx)? {
                Some(post) => out.push(post),
                None => skipped.note("poll vote"),
            },
            _ => skipped.note(format!("{ty} of a post given only by reference")),
        },
        "OrderedCollection" | "OrderedCollectionPage" | "Collection" | "CollectionPage" => {
            let mut entries = 0;
            for key in ["orderedItems", "items"] {
                if let Some(Value::Array(items)) = obj.get(key) {
                    for (i, entry) in items.iter().enumerate() {
                        entries += 1;
                        match entry {
                            Value::Object(entry) => item(entry, ctx, out, skipped)
                                .map_err(|e| within(&format!("{key}[{i}]"), e))?,
                            _ => skipped.note("collection item given only by reference"),
                        }
                    }
                }
            }
            if entries == 0 {
                skipped.note(format!("empty {ty}"));
            }
        }
        "Like" | "Follow" | "Delete" | "Undo" | "Accept" | "Reject" | "Block" | "Add"
        | "Remove" | "Move" | "Flag" | "Tombstone" => skipped.note(format!("{ty} activity")),
        other => {
            return Err(ParseError::new(format!(
                "not a post: ActivityPub type {other:?}"
            )));
        }
    }
    Ok(())
}

/// A Mastodon API `Status` (reblogs: the reblogged status).
fn api_status(outer: &Map<String, Value>) -> Result<Post, ParseError> {
    let (status, reblogged_by) = match outer.get("reblog") {
        Some(Value::Object(reblog)) => {
            let by = object_field(outer, "account", "the reblog")?.and_then(api_handle);
            (reblog, by)
        }
        _ => (outer, None),
    };
    let local_id = id_field(status, "id", "the status")?;
    let uri = str_field(status, "uri", "the status")?
        .or(str_field(status, "url", "the status")?)
        .map(str::to_string)
        .ok_or_else(|| {
            ParseError::new(match &local_id {
                Some(id) => format!("status {id:?} has no \"uri\""),
                None => "status has no \"uri\"".to_string(),
            })
        })?;
    let what = format!("status {uri}");
    let created_at = str_field(status, "created_at", &what)?
        .ok_or_else(|| ParseError::new(format!("missing field \"created_at\" of {what}")))?;
    let occurred_at = timestamp(created_at, "created_at", &what)?;
    let account = object_field(status, "account", &what)?
        .ok_or_else(|| ParseError::new(format!("missing field \"account\" of {what}")))?;

    let mut attributes = Map::new();
    let content = str_field(status, "content", &what)?
        .map(crate::text::html_to_text)
        .unwrap_or_default();
    let warning = str_field(status, "spoiler_text", &what)?;
    let media = descriptions(status.get("media_attachments"), "description");
    let text = compose(warning, content, media, &mut attributes).ok_or_else(|| {
        ParseError::new(format!(
            "{what} has no text (no content, spoiler_text or media description)"
        ))
    })?;

    let visibility = str_field(status, "visibility", &what)?;
    let parent_local_id = id_field(status, "in_reply_to_id", &what)?;
    if let Some(id) = id_field(account, "id", &what)? {
        attributes.insert("account_id".into(), Value::String(id));
    }
    for key in [
        "url",
        "replies_count",
        "favourites_count",
        "reblogs_count",
        "visibility",
    ] {
        if let Some(v) = status.get(key).filter(|v| !v.is_null()) {
            attributes.insert(key.into(), v.clone());
        }
    }
    if let Some(Value::Array(mentions)) = status.get("mentions") {
        let handles: Vec<Value> = mentions
            .iter()
            .filter_map(Value::as_object)
            .filter_map(|m| {
                let acct = m.get("acct")?.as_str()?;
                Some(Value::String(full_acct(
                    acct,
                    m.get("url").and_then(Value::as_str),
                )))
            })
            .collect();
        attributes.insert("mentions".into(), Value::Array(handles));
    }
    if let Some(id) = &parent_local_id {
        attributes.insert("in_reply_to_id".into(), Value::String(id.clone()));
    }
    if let Some(by) = reblogged_by {
        attributes.insert("reblogged_by".into(), Value::String(by));
    }
    poll_options(
        status.get("poll").and_then(|p| p.get("options")),
        "title",
        &mut attributes,
    );

    Ok(Post {
        uri,
        local_id,
        parent_local_id,
        parent_uri: None,
        context: None,
        occurred_at,
        author: Author {
            role: Role::Customer,
            ids: api_handle(account)
                .map(|h| format!("handle:mastodon:{h}"))
                .into_iter()
                .collect(),
            name: account
                .get("display_name")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string),
        },
        text,
        language: language(str_field(status, "language", &what)?),
        public: matches!(visibility, Some("public" | "unlisted")),
        attributes,
    })
}

/// An ActivityPub post; `None` for a poll vote. `activity` is the wrapping Create/Announce.
fn ap_object(
    obj: &Map<String, Value>,
    activity: Option<&Map<String, Value>>,
    ctx: &ParseContext,
) -> Result<Option<Post>, ParseError> {
    let ty = obj.get("type").and_then(Value::as_str).unwrap_or("object");
    let uri = str_field(obj, "id", ty)?
        .map(str::to_string)
        .ok_or_else(|| ParseError::new(format!("ActivityPub {ty} has no \"id\"")))?;
    let what = format!("{ty} {uri}");
    let parent_uri = reference(obj.get("inReplyTo"));

    let content_map = object_field(obj, "contentMap", &what)?;
    let map_first = content_map.and_then(|m| m.iter().find(|(_, v)| v.is_string()));
    let html = str_field(obj, "content", &what)?.or(map_first.and_then(|(_, v)| v.as_str()));
    if html.is_none() && obj.get("name").is_some_and(Value::is_string) && parent_uri.is_some() {
        return Ok(None); // a poll vote, not a post
    }
    let mut attributes = Map::new();
    let content = html.map(crate::text::html_to_text).unwrap_or_default();
    let media = descriptions(obj.get("attachment"), "name");
    let text = compose(
        str_field(obj, "summary", &what)?,
        content,
        media,
        &mut attributes,
    )
    .ok_or_else(|| {
        ParseError::new(format!(
            "{what} has no text (no content, summary or attachment description)"
        ))
    })?;

    let published = match str_field(obj, "published", &what)? {
        Some(p) => Some((p, "published")),
        None => match activity {
            Some(a) => str_field(a, "published", &what)?.map(|p| (p, "published")),
            None => None,
        },
    };
    let occurred_at = match published {
        Some((value, key)) => timestamp(value, key, &what)?,
        None => {
            attributes.insert("occurred_at_estimated".into(), Value::Bool(true));
            ctx.source_time
        }
    };

    let actor = reference(obj.get("attributedTo"))
        .or_else(|| activity.and_then(|a| reference(a.get("actor"))));
    if let Some(actor) = &actor {
        attributes.insert("account_id".into(), Value::String(actor.clone()));
    }
    let announced_by = activity
        .filter(|a| a.get("type").and_then(Value::as_str) == Some("Announce"))
        .and_then(|a| reference(a.get("actor")));
    if let Some(by) = announced_by {
        attributes.insert("reblogged_by".into(), Value::String(actor_handle(&by)));
    }
    if let Some(url) = reference(obj.get("url")) {
        attributes.insert("url".into(), Value::String(url));
    }
    if let Some(n) = obj
        .get("replies")
        .and_then(|r| r.get("totalItems"))
        .filter(|n| n.is_u64())
    {
        attributes.insert("replies_count".into(), n.clone());
    }
    if let Some(Value::Array(tags)) = obj.get("tag") {
        let mentions: Vec<Value> = tags
            .iter()
            .filter(|t| t.get("type").and_then(Value::as_str) == Some("Mention"))
            .filter_map(|t| {
                let name = t.get("name")?.as_str()?;
                let acct = name.trim_start_matches('@');
                Some(Value::String(full_acct(
                    acct,
                    t.get("href").and_then(Value::as_str),
                )))
            })
            .collect();
        if !mentions.is_empty() {
            attributes.insert("mentions".into(), Value::Array(mentions));
        }
    }
    let options = obj.get("oneOf").or(obj.get("anyOf"));
    poll_options(options, "name", &mut attributes);

    let public = ["to", "cc"].iter().any(|key| match obj.get(*key) {
        Some(Value::String(s)) => PUBLIC.contains(&s.as_str()),
        Some(Value::Array(list)) => list
            .iter()
            .any(|v| v.as_str().is_some_and(|s| PUBLIC.contains(&s))),
        _ => false,
    });
    let context = str_field(obj, "conversation", &what)?
        .or(str_field(obj, "context", &what)?)
        .map(str::to_string);

    Ok(Some(Post {
        uri,
        local_id: None,
        parent_local_id: None,
        parent_uri,
        context,
        occurred_at,
        author: Author {
            role: Role::Customer,
            ids: actor
                .iter()
                .map(|a| format!("handle:mastodon:{}", actor_handle(a)))
                .collect(),
            name: None,
        },
        text,
        language: language(map_first.map(|(k, _)| k.as_str())),
        public,
        attributes,
    }))
}

/// Text with its content warning; media descriptions when there is no content.
fn compose(
    warning: Option<&str>,
    content: String,
    media: Vec<&str>,
    attributes: &mut Map<String, Value>,
) -> Option<String> {
    let mut body = content;
    if body.is_empty() && !media.is_empty() {
        body = media.join("\n");
        attributes.insert("text_from".into(), Value::from("media_description"));
    }
    let text = match warning.map(str::trim).filter(|w| !w.is_empty()) {
        Some(w) if body.is_empty() => format!("CW: {w}"),
        Some(w) => format!("CW: {w}\n\n{body}"),
        None => body,
    };
    (!text.is_empty()).then_some(text)
}

fn descriptions<'a>(attachments: Option<&'a Value>, key: &str) -> Vec<&'a str> {
    match attachments {
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|a| a.get(key)?.as_str())
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}

fn poll_options(options: Option<&Value>, key: &str, attributes: &mut Map<String, Value>) {
    if let Some(Value::Array(options)) = options {
        let names: Vec<Value> = options
            .iter()
            .filter_map(|o| o.get(key)?.as_str())
            .map(Value::from)
            .collect();
        if !names.is_empty() {
            attributes.insert("poll_options".into(), Value::Array(names));
        }
    }
}

fn language(tag: Option<&str>) -> Option<String> {
    tag.map(str::trim)
        .filter(|l| !l.is_empty() && *l != "und")
        .map(str::to_string)
}

/// A uri given as a string, an object with `id` (or `href`), or a list (its first).
fn reference(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Object(o) => o
            .get("id")
            .or(o.get("href"))
            .and_then(Value::as_str)
            .map(str::to_string),
        Value::Array(list) => list.iter().find_map(|v| reference(Some(v))),
        _ => None,
    }
}

/// `@user@host` for an API account (host from its `url` when `acct` is local).
fn api_handle(account: &Map<String, Value>) -> Option<String> {
    let acct = account
        .get("acct")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())?;
    Some(full_acct(acct, account.get("url").and_then(Value::as_str)))
}

/// `@user@host`, lower-cased; the host from `url` when `acct` has none.
fn full_acct(acct: &str, url: Option<&str>) -> String {
    let acct = acct.trim().trim_start_matches('@');
    let handle = match (acct.contains('@'), url.and_then(url_host)) {
        (false, Some(host)) => format!("@{acct}@{host}"),
        _ => format!("@{acct}"),
    };
    handle.to_lowercase()
}

/// `@user@host` from an actor uri (`https://host/users/user`, `https://host/@user`), else
/// the uri itself.
fn actor_handle(uri: &str) -> String {
    if let Some(host) = url_host(uri) {
        let path = uri.split_once("://").map_or("", |(_, rest)| rest);
        let path = path.find('/').map_or("", |i| &path[i..]);
        let user = path
            .strip_prefix("/users/")
            .or_else(|| path.strip_prefix("/@"))
            .map(|rest| rest.split(['/', '#', '?']).next().unwrap_or(""))
            .filter(|u| !u.is_empty());
        if let Some(user) = user {
            return format!("@{user}@{host}").to_lowercase();
        }
    }
    uri.to_string()
}

fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{corpus, ctx, fixture};

    const KARI_1: &str = "https://snakk.example.no/users/kari/statuses/1100000000000000001";
    const FJORD_1: &str = "https://social.example.no/users/fjordnett/statuses/5551";
    const MADS_1: &str = "https://toot.example.dk/users/mads/statuses/777";

    fn export() -> Vec<u8> {
        std::fs::read(fixture("social/mastodon_export.ndjson")).unwrap()
    }

    fn all(units: &[Unit]) -> Vec<&Interaction> {
        crate::unit::interactions(units).collect()
    }

    #[test]
    fn export_lines_resolve_replies_threads_and_visibility() {
        let input = export();
        let units = parse_mastodon(&input, &ctx("mastodon_export.ndjson"));
        assert_eq!(units.len(), 10);
        let out = all(&units);
        assert_eq!(out.len(), 8);
        let get = |uri: &str| {
            *out.iter()
                .find(|i| i.id == format!("mastodon:{uri}"))
                .unwrap()
        };

        // The public Norwegian complaint.
        let complaint = get(KARI_1);
        assert!(complaint.public);
        assert_eq!(complaint.channel, Channel::Social);
        assert_eq!(complaint.author.role, Role::Customer);
        assert_eq!(
            complaint.author.ids,
            ["handle:mastodon:@kari@snakk.example.no"]
        );
        assert_eq!(complaint.author.name.as_deref(), Some("Kari Nordmann"));
        assert_eq!(complaint.language.as_deref(), Some("nb"));
        assert!(
            complaint.text.contains("Helt uakseptabelt!"),
            "{}",
            complaint.text
        );
        assert!(!complaint.text.contains('<'));
        assert_eq!(complaint.in_reply_to, None);
        assert_eq!(complaint.conversation_id, format!("mastodon:{KARI_1}"));
        assert_eq!(complaint.attributes["account_id"], "201");
        assert_eq!(complaint.attributes["replies_count"], 2);
        assert_eq!(complaint.attributes["favourites_count"], 7);
        assert_eq!(complaint.attributes["reblogs_count"], 3);
        assert_eq!(
            complaint.attributes["url"],
            "https://snakk.example.no/@kari/1100000000000000001"
        );
        assert_eq!(
            complaint.attributes["mentions"],
            serde_json::json!(["@fjordnett@social.example.no"])
        );
        assert_eq!(
            complaint.occurred_at,
            time::macros::datetime!(2024-03-01 08:12:30 UTC)
        );

        // The company's reply comes first in the file (newest first) and still resolves.
        let answer = get(FJORD_1);
        assert_eq!(
            answer.in_reply_to.as_deref(),
            Some(format!("mastodon:{KARI_1}").as_str())
        );
        assert_eq!(answer.conversation_id, format!("mastodon:{KARI_1}"));
        assert_eq!(answer.attributes["in_reply_to_id"], "1100000000000000001");
        assert_eq!(
            answer.author.ids,
            ["handle:mastodon:@fjordnett@social.example.no"]
        );
        assert_eq!(
            answer.attributes["mentions"],
            serde_json::json!(["@kari@snakk.example.no"])
        );

        // Kari's unlisted follow-up: public, two levels down the same tree.
        let followup = get("https://snakk.example.no/users/kari/statuses/1100000000000000003");
        assert!(followup.public);
        assert_eq!(
            followup.in_reply_to.as_deref(),
            Some(format!("mastodon:{FJORD_1}").as_str())
        );
        assert_eq!(followup.conversation_id, format!("mastodon:{KARI_1}"));

        // Danish post with a content warning; a direct message answering it is not public.
        let danish = get(MADS_1);
        assert!(
            danish
                .text
                .starts_with("CW: Klage over levering\n\nAnden gang"),
            "{}",
            danish.text
        );
        assert_eq!(danish.language.as_deref(), Some("da"));
        assert_eq!(danish.author.ids, ["handle:mastodon:@mads@toot.example.dk"]);
        let dm = get("https://snakk.example.no/users/lone/statuses/1100000000000000005");
        assert!(!dm.public);
        assert_eq!(
            dm.in_reply_to.as_deref(),
            Some(format!("mastodon:{MADS_1}").as_str())
        );
        assert_eq!(dm.conversation_id, format!("mastodon:{MADS_1}"));

        // The reblog is the reblogged status (same id), marked with who boosted it.
        let reblog = out
            .iter()
            .filter(|i| i.id == format!("mastodon:{KARI_1}"))
            .nth(1)
            .unwrap();
        assert_eq!(reblog.attributes["reblogged_by"], "@ola@snakk.example.no");
        assert_eq!(reblog.text, complaint.text);

        // A reply to a status outside the input: no in_reply_to, its own root, raw id kept.
        let orphan = get("https://snakk.example.no/users/per/statuses/1100000000000000008");
        assert_eq!(orphan.in_reply_to, None);
        assert_eq!(orphan.attributes["in_reply_to_id"], "1099999999999999999");
        assert_eq!(
            orphan.conversation_id,
            format!(
                "mastodon:{}",
                "https://snakk.example.no/users/per/statuses/1100000000000000008"
            )
        );

        // ActivityPub Create: inReplyTo, conversation, Public in cc, contentMap language.
        let note = get("https://toot.example.dk/users/mads/statuses/778");
        assert_eq!(
            note.in_reply_to.as_deref(),
            Some(format!("mastodon:{MADS_1}").as_str())
        );
        assert_eq!(
            note.conversation_id,
            "mastodon:tag:toot.example.dk,2024-03-02:objectId=901:objectType=Conversation"
        );
        assert!(note.public);
        assert_eq!(note.language.as_deref(), Some("da"));
        assert_eq!(
            note.author.ids, danish.author.ids,
            "same person over API and ActivityPub"
        );
        assert!(note.text.starts_with("Opdatering:"), "{}", note.text);

        // Bad lines fail alone, with their line numbers.
        let errors: Vec<&str> = units
            .iter()
            .filter_map(|u| u.outcome.as_ref().err().map(|e| e.reason.as_str()))
            .collect();
        assert_eq!(
            errors,
            [
                "line 7: invalid timestamp \"2024-02-30T25:00:00Z\" in field \"created_at\" of status https://snakk.example.no/users/per/statuses/1100000000000000007",
                "line 10: status https://snakk.example.no/users/ola/statuses/1100000000000000009 has no text (no content, spoiler_text or media description)",
            ]
        );
    }

    #[test]
    fn resuming_at_a_unit_end_yields_only_the_rest() {
        let input = export();
        let units = parse_mastodon(&input, &ctx("t"));
        let resume = units[1].end as usize;
        let rest = parse_mastodon(&input[resume..], &ctx("t"));
        assert_eq!(rest.len(), units.len() - 2);
        for (r, u) in rest.iter().zip(&units[2..]) {
            assert_eq!(
                (r.start + resume as u64, r.end + resume as u64),
                (u.start, u.end)
            );
        }
        let ids = |units: &[Unit]| all(units).iter().map(|i| i.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&rest), ids(&units[2..]));
        assert!(!ids(&rest).contains(&format!("mastodon:{FJORD_1}")));
        // Its parent is no longer in the input: the follow-up's reply link cannot resolve.
        let followup = all(&rest)
            .into_iter()
            .find(|i| i.id.ends_with("/1100000000000000003"))
            .unwrap();
        assert_eq!(followup.in_reply_to, None);
    }

    #[test]
    fn unknown_shapes_and_truncated_json_are_errors() {
        let units = parse_mastodon(
            b"{\"type\": \"Person\", \"id\": \"https://x.example/users/a\"}",
            &ctx("t"),
        );
        assert_eq!(
            units[0].outcome.as_ref().unwrap_err().reason,
            "not a post: ActivityPub type \"Person\""
        );
        let units = parse_mastodon(b"{\"hello\": 1}", &ctx("t"));
        assert!(
            units[0]
                .outcome
                .as_ref()
                .unwrap_err()
                .reason
                .starts_with("not a Mastodon status")
        );
        let units = parse_mastodon(b"[{\"id\": \"1\", \"account\": {}", &ctx("t"));
        assert!(
            units[0]
                .outcome
                .as_ref()
                .unwrap_err()
                .reason
                .starts_with("truncated JSON")
        );
        // An outbox collection with a boost by reference and a Like: nothing to read, no error.
        let outbox = br#"{"type": "OrderedCollection", "orderedItems": [
            {"type": "Announce", "actor": "https://x.example/users/a", "object": "https://y.example/notes/1"},
            {"type": "Like", "object": "https://y.example/notes/2"},
            {"type": "Create", "published": "2024-01-02T03:04:05Z", "object": {"type": "Note",
             "id": "https://x.example/users/a/statuses/9", "attributedTo": "https://x.example/users/a",
             "to": ["https://www.w3.org/ns/activitystreams#Public"], "summary": "spoiler", "content": "<p>Hej</p>"}},
            {"type": "Announce", "actor": "https://x.example/@a", "object": {"type": "Note",
             "id": "https://z.example/users/b/statuses/1", "attributedTo": {"id": "https://z.example/users/b"},
             "published": "2024-01-01T00:00:00Z", "cc": "as:Public", "content": "Boosted"}}]}"#;
        let units = parse_mastodon(outbox, &ctx("t"));
        let out = units[0].outcome.as_ref().unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].id, "mastodon:https://z.example/users/b/statuses/1");
        assert_eq!(out[1].author.ids, ["handle:mastodon:@b@z.example"]);
        assert_eq!(out[1].attributes["reblogged_by"], "@a@x.example");
        assert!(out[1].public, "Public in cc: unlisted");
        assert_eq!(out[0].text, "CW: spoiler\n\nHej");
        assert_eq!(
            out[0].occurred_at,
            time::macros::datetime!(2024-01-02 03:04:05 UTC),
            "published of the activity"
        );
        assert!(out[0].public);
    }

    #[test]
    fn out_of_range_times_are_invalid_timestamps_not_panics() {
        let input = br#"{"type": "Note", "id": "https://x.example/notes/1", "content": "Hej",
            "published": "9999-12-31T23:59:59-01:00"}"#;
        let units = parse_mastodon(input, &ctx("t"));
        assert_eq!(
            units[0].outcome.as_ref().unwrap_err().reason,
            "invalid timestamp \"9999-12-31T23:59:59-01:00\" in field \"published\" of Note https://x.example/notes/1"
        );
    }

    #[test]
    fn units_with_nothing_but_skipped_items_say_why() {
        let reason = |input: &[u8]| {
            let units = parse_mastodon(input, &ctx("t"));
            assert_eq!(units.len(), 1);
            units[0].outcome.as_ref().unwrap_err().reason.clone()
        };
        assert_eq!(
            reason(br#"{"type": "Like", "object": "https://y.example/notes/2"}"#),
            "no posts: Like activity (skipped: only posts become interactions)"
        );
        assert_eq!(
            reason(
                br#"{"type": "OrderedCollection", "orderedItems": [
                {"type": "Announce", "object": "https://y.example/notes/1"},
                {"type": "Announce", "object": "https://y.example/notes/3"},
                {"type": "Follow", "object": "https://y.example/users/b"}]}"#
            ),
            "no posts: Announce of a post given only by reference ×2, Follow activity \
             (skipped: only posts become interactions)"
        );
        assert_eq!(reason(b"[]"), "no posts: empty array");
        assert_eq!(
            reason(br#"{"type": "OrderedCollection", "totalItems": 0}"#),
            "no posts: empty OrderedCollection"
        );
        // NDJSON: the Like line is an error of its own, the post line still parses.
        let input = b"{\"type\": \"Like\", \"object\": \"https://y.example/notes/2\"}\n\
            {\"type\": \"Note\", \"id\": \"https://x.example/notes/1\", \"content\": \"Hej\", \"published\": \"2024-01-01T00:00:00Z\"}\n";
        let units = parse_mastodon(input, &ctx("t"));
        assert_eq!(units.len(), 2);
        assert_eq!(
            units[0].outcome.as_ref().unwrap_err().reason,
            "line 1: no posts: Like activity (skipped: only posts become interactions)"
        );
        assert_eq!(units[1].outcome.as_ref().unwrap()[0].text, "Hej");
    }

    #[test]
    fn corpus_api_statuses_parse_with_text_and_visibility() {
        let Some(path) = corpus("social/mastodon/statuses_from_docs.json") else {
            return;
        };
        let input = std::fs::read(&path).unwrap();
        let raw: Vec<Value> = serde_json::from_slice(&input).unwrap();
        let units = parse_mastodon(&input, &ctx("statuses_from_docs.json"));
        assert_eq!(units.len(), 1);
        let out = units[0].outcome.as_ref().unwrap();
        assert_eq!(out.len(), raw.len());
        for (status, parsed) in raw.iter().zip(out) {
            assert_eq!(
                parsed.id,
                format!("mastodon:{}", status["uri"].as_str().unwrap())
            );
            assert!(!parsed.text.is_empty(), "{}", parsed.id);
            let visibility = status["visibility"].as_str().unwrap();
            assert_eq!(
                parsed.public,
                matches!(visibility, "public" | "unlisted"),
                "{}",
                parsed.id
            );
            assert_eq!(
                parsed.author.ids,
                ["handle:mastodon:@gargron@mastodon.social"]
            );
            // Each status on its own (as an NDJSON line) parses the same way.
            let alone = parse_mastodon(status.to_string().as_bytes(), &ctx("t"));
            assert_eq!(alone[0].outcome.as_ref().unwrap()[0], *parsed);
        }
        assert!(
            out[0]
                .text
                .contains("\"I lost my inheritance with one wrong digit on my sort code\""),
            "{}",
            out[0].text
        );
        assert_eq!(out[1].text, "Hello world");
        assert_eq!(out[1].language.as_deref(), Some("en"));
    }

    #[test]
    fn corpus_activitypub_objects_parse_or_are_skipped() {
        let Some(path) = corpus("social/mastodon/activitypub_objects_from_docs.json") else {
            return;
        };
        let input = std::fs::read(&path).unwrap();
        let raw: Vec<Value> = serde_json::from_slice(&input).unwrap();
        let units = parse_mastodon(&input, &ctx("activitypub_objects_from_docs.json"));
        let out = units[0].outcome.as_ref().unwrap();
        // Question + 3 Notes; the two poll votes (Create of a Note with only a name) are skipped.
        assert_eq!(out.len(), 4);
        for item in &raw {
            let alone = parse_mastodon(item.to_string().as_bytes(), &ctx("t"));
            match alone[0].outcome.as_ref() {
                Ok(posts) => {
                    assert!(!posts.is_empty(), "{item}");
                    for post in posts {
                        assert!(!post.text.is_empty(), "{}", post.id);
                        assert!(
                            !post.public,
                            "no Public audience in the docs' examples: {}",
                            post.id
                        );
                    }
                }
                // A unit left with nothing is an error that says why; only votes are skipped.
                Err(e) if item["object"]["name"].is_string() => assert_eq!(
                    e.reason, "no posts: poll vote (skipped: only posts become interactions)",
                    "{item}"
                ),
                Err(e) => panic!("{item}: {e}"),
            }
        }
        let question = &out[0];
        assert_eq!(
            question.id,
            "mastodon:https://mastodon.example/users/alice/statuses/1009947848598745"
        );
        assert_eq!(
            question.attributes["poll_options"],
            serde_json::json!(["apple", "orange", "banana"])
        );
        assert_eq!(
            question.occurred_at,
            time::macros::datetime!(2023-03-05 07:40:13 UTC)
        );
        let cats = out
            .iter()
            .find(|i| i.id == "mastodon:https://example.com/some-post")
            .unwrap();
        assert_eq!(cats.text, "I love #cats");
        assert_eq!(cats.attributes["occurred_at_estimated"], true);
        assert_eq!(cats.author.ids, ["handle:mastodon:https://example.com"]);
    }

    #[test]
    fn handles_and_hosts() {
        assert_eq!(
            full_acct("Gargron", Some("https://mastodon.social/@Gargron")),
            "@gargron@mastodon.social"
        );
        assert_eq!(
            full_acct("kari@Snakk.example.no", None),
            "@kari@snakk.example.no"
        );
        assert_eq!(
            actor_handle("https://mastodon.example/users/bob"),
            "@bob@mastodon.example"
        );
        assert_eq!(
            actor_handle("https://example.com/@alice/hello"),
            "@alice@example.com"
        );
        assert_eq!(actor_handle("https://example.com"), "https://example.com");
        assert_eq!(
            url_host("https://u@h.example:8443/x"),
            Some("h.example:8443")
        );
    }
}
