//! Rapport's generic chat JSON/NDJSON shape (documented in the parent module).

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::error::ParseError;
use crate::json_input::{
    self, email_id, id_field, kind, object_field, phone_id, str_field, timestamp, within,
};
use crate::record::{Author, Channel, Interaction, Role};
use crate::unit::{ParseContext, Unit};

/// The last message seen per conversation in this input: `(interaction id, role)`. It links
/// single-message lines (and transcript chunks) of one conversation across units.
type Last = HashMap<String, (String, Role)>;

pub fn parse_chat_json(input: &[u8], ctx: &ParseContext) -> Vec<Unit> {
    let mut last = Last::new();
    json_input::split(input, ctx)
        .into_iter()
        .map(|piece| {
            let outcome = piece
                .value(ctx)
                .and_then(|value| from_value(&value, ctx, &mut last))
                .map_err(|e| piece.locate(e));
            Unit {
                start: piece.start as u64,
                end: piece.end as u64,
                outcome,
            }
        })
        .collect()
}

fn from_value(
    value: &Value,
    ctx: &ParseContext,
    last: &mut Last,
) -> Result<Vec<Interaction>, ParseError> {
    let mut out = Vec::new();
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                element(item, ctx, last, &mut out).map_err(|e| within(&format!("[{i}]"), e))?;
            }
        }
        other => element(other, ctx, last, &mut out)?,
    }
    // Every message either becomes an interaction or fails: nothing left means transcripts
    // without messages, which is worth a reason rather than a silent empty unit.
    if out.is_empty() {
        return Err(ParseError::new(match value {
            Value::Array(items) if items.is_empty() => "empty array: no conversations".to_string(),
            Value::Array(items) => format!(
                "no messages: the {} transcripts in the array have empty \"messages\"",
                items.len()
            ),
            Value::Object(obj) => format!("transcript {:?} has no messages", conversation_id(obj)?),
            _ => "no messages".to_string(),
        }));
    }
    Ok(out)
}

fn element(
    value: &Value,
    ctx: &ParseContext,
    last: &mut Last,
    out: &mut Vec<Interaction>,
) -> Result<(), ParseError> {
    let Value::Object(obj) = value else {
        return Err(ParseError::new(format!(
            "expected a transcript or message object, not {}",
            kind(value)
        )));
    };
    let conversation = conversation_id(obj)?;
    let what = format!("conversation {conversation:?}");
    let mut shared = Shared {
        conversation: &conversation,
        language: str_field(obj, "language", &what)?,
        attributes: object_field(obj, "attributes", &what)?,
        participants: HashMap::new(),
    };
    if let Some(messages) = obj.get("messages") {
        let Value::Array(messages) = messages else {
            return Err(ParseError::new(format!(
                "field \"messages\" of {what} must be an array, not {}",
                kind(messages)
            )));
        };
        if let Some(started_at) = str_field(obj, "started_at", &what)? {
            timestamp(started_at, "started_at", &what)?;
        }
        shared.participants = participants(obj, &what)?;
        let mut previous = last.get(&conversation).cloned();
        for (i, m) in messages.iter().enumerate() {
            let Value::Object(m) = m else {
                return Err(ParseError::new(format!(
                    "messages[{i}] of {what} must be an object, not {}",
                    kind(m)
                )));
            };
            out.push(message(m, Some(i), &shared, ctx, &mut previous)?);
        }
        if let Some(previous) = previous {
            last.insert(conversation.clone(), previous);
        }
    } else {
        // A single message: its conversation-level fields are its own.
        shared.language = None;
        shared.attributes = None;
        let mut previous = last.get(&conversation).cloned();
        out.push(message(obj, None, &shared, ctx, &mut previous)?);
        if let Some(previous) = previous {
            last.insert(conversation.clone(), previous);
        }
    }
    Ok(())
}

/// What the messages of one transcript share.
struct Shared<'a> {
    conversation: &'a str,
    language: Option<&'a str>,
    attributes: Option<&'a Map<String, Value>>,
    participants: HashMap<String, Person>,
}

#[derive(Clone, Default)]
struct Person {
    role: Option<Role>,
    ids: Vec<String>,
    name: Option<String>,
}

fn conversation_id(obj: &Map<String, Value>) -> Result<String, ParseError> {
    let what = "the object";
    id_field(obj, "conversation_id", what)?
        .or(id_field(obj, "session_id", what)?)
        .ok_or_else(|| {
            ParseError::new(if obj.contains_key("messages") {
                "transcript has no \"conversation_id\""
            } else {
                "message has no \"conversation_id\""
            })
        })
}

fn participants(
    obj: &Map<String, Value>,
    what: &str,
) -> Result<HashMap<String, Person>, ParseError> {
    let mut map = HashMap::new();
    match obj.get("participants") {
        None | Some(Value::Null) => {}
        Some(Value::Object(entries)) => {
            for (id, p) in entries {
                let Value::Object(p) = p else {
                    return Err(ParseError::new(format!(
                        "participant {id:?} of {what} must be an object, not {}",
                        kind(p)
                    )));
                };
                map.insert(
                    id.clone(),
                    person(p, Some(id), &format!("participant {id:?} of {what}"))?,
                );
            }
        }
        // Also accepted: a list of participant objects with their own "id".
        Some(Value::Array(entries)) => {
            for (i, p) in entries.iter().enumerate() {
                let place = format!("participants[{i}] of {what}");
                let Value::Object(p) = p else {
                    return Err(ParseError::new(format!(
                        "{place} must be an object, not {}",
                        kind(p)
                    )));
                };
                let id = id_field(p, "id", &place)?
                    .ok_or_else(|| ParseError::new(format!("{place} has no \"id\"")))?;
                let person = person(p, Some(&id), &place)?;
                map.insert(id, person);
            }
        }
        Some(other) => {
            return Err(ParseError::new(format!(
                "field \"participants\" of {what} must be an object, not {}",
                kind(other)
            )));
        }
    }
    Ok(map)
}

/// A participant or inline author: role, identity keys and name.
fn person(obj: &Map<String, Value>, id: Option<&str>, what: &str) -> Result<Person, ParseError> {
    let mut ids = Vec::new();
    if let Some(email) = str_field(obj, "email", what)?.and_then(email_id) {
        ids.push(email);
    }
    if let Some(phone) = id_field(obj, "phone", what)?.as_deref().and_then(phone_id) {
        ids.push(phone);
    }
    if let Some(crm) = id_field(obj, "crm_id", what)? {
        ids.push(format!("crm:{crm}"));
    }
    let own_id = match id {
        Some(id) => Some(id.to_string()),
        None => id_field(obj, "id", what)?,
    };
    if let Some(id) = own_id {
        ids.push(format!("chat:{id}"));
    }
    Ok(Person {
        role: str_field(obj, "role", what)?.map(Role::from_label),
        ids,
        name: str_field(obj, "name", what)?
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string),
    })
}

/// One message of a transcript (`index` is its position) or a single-message object.
fn message(
    m: &Map<String, Value>,
    index: Option<usize>,
    shared: &Shared<'_>,
    ctx: &ParseContext,
    previous: &mut Option<(String, Role)>,
) -> Result<Interaction, ParseError> {
    let conversation = shared.conversation;
    let place = format!("conversation {conversation:?}");
    let native_id = id_field(m, "id", &place)?;
    let what = match (&native_id, index) {
        (Some(id), Some(i)) => {
            format!("message {id:?} (messages[{i}]) of conversation {conversation:?}")
        }
        (None, Some(i)) => format!("messages[{i}] of conversation {conversation:?}"),
        (Some(id), None) => format!("message {id:?} of conversation {conversation:?}"),
        (None, None) => format!("the message of conversation {conversation:?}"),
    };

    let at = str_field(m, "at", &what)?
        .ok_or_else(|| ParseError::new(format!("missing field \"at\" of {what}")))?;
    let occurred_at = timestamp(at, "at", &what)?;

    let mut author = Person::default();
    if let Some(from) = id_field(m, "from", &what)? {
        author = shared
            .participants
            .get(&from)
            .cloned()
            .unwrap_or_else(|| Person {
                ids: vec![format!("chat:{from}")],
                ..Person::default()
            });
    }
    if let Some(inline) = object_field(m, "author", &what)? {
        let inline = person(inline, None, &format!("the author of {what}"))?;
        author.role = inline.role.or(author.role);
        author.name = inline.name.or(author.name);
        for id in inline.ids {
            if !author.ids.contains(&id) {
                author.ids.push(id);
            }
        }
    }
    let role = match str_field(m, "role", &what)? {
        Some(label) => Role::from_label(label),
        None => author.role.unwrap_or(Role::Unknown),
    };

    let text = match str_field(m, "text", &what)?.map(str::trim) {
        Some(text) if !text.is_empty() => text.to_string(),
        _ => str_field(m, "html", &what)?
            .map(crate::text::html_to_text)
            .unwrap_or_default(),
    };
    if text.is_empty() {
        return Err(ParseError::new(format!(
            "{what} has no text (\"text\" and \"html\" are missing or empty)"
        )));
    }

    let native_id = match (native_id, index) {
        (Some(id), _) => id,
        (None, Some(i)) => i.to_string(),
        // No id and no position: a hash of what makes the message itself, so a re-sent
        // webhook body gets the same id.
        (None, None) => format!(
            "h{}",
            crate::ids::content_hash(format!("{at}\0{role:?}\0{text}").as_bytes())
        ),
    };
    let id = format!("chat:{conversation}:{native_id}");

    let in_reply_to = match id_field(m, "in_reply_to", &what)? {
        Some(parent) => Some(format!("chat:{conversation}:{parent}")),
        None => previous
            .as_ref()
            .filter(|(_, previous_role)| *previous_role != role)
            .map(|(previous_id, _)| previous_id.clone()),
    };

    let mut attributes = shared.attributes.cloned().unwrap_or_default();
    if let Some(own) = object_field(m, "attributes", &what)? {
        attributes.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let language = str_field(m, "language", &what)?
        .or(shared.language)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string);

    *previous = Some((id.clone(), role));
    Ok(Interaction {
        id,
        conversation_id: format!("chat:{conversation}"),
        channel: Channel::Chat,
        connector: ctx.connector.clone(),
        occurred_at,
        author: Author {
            role,
            ids: author.ids,
            name: author.name,
        },
        text,
        language,
        public: false,
        in_reply_to,
        attributes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ctx, fixture};

    fn read(rel: &str) -> Vec<u8> {
        std::fs::read(fixture(rel)).unwrap()
    }

    fn ok(units: &[Unit]) -> Vec<&Interaction> {
        crate::unit::interactions(units).collect()
    }

    #[test]
    fn danish_transcript_is_one_unit_with_roles_ids_and_replies() {
        let input = read("chat/transcript_da.json");
        let units = parse_chat_json(&input, &ctx("transcript_da.json"));
        assert_eq!(units.len(), 1);
        assert_eq!((units[0].start, units[0].end), (0, input.len() as u64));
        let out = units[0].outcome.as_ref().unwrap();
        assert_eq!(out.len(), 5);
        let ids: Vec<&str> = out.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "chat:dk-2024-0517:m1",
                "chat:dk-2024-0517:m2",
                "chat:dk-2024-0517:m3",
                "chat:dk-2024-0517:m4",
                "chat:dk-2024-0517:m5"
            ]
        );
        assert!(
            out.iter()
                .all(|i| i.conversation_id == "chat:dk-2024-0517" && i.channel == Channel::Chat)
        );
        let roles: Vec<Role> = out.iter().map(|i| i.author.role).collect();
        assert_eq!(
            roles,
            [
                Role::Bot,
                Role::Customer,
                Role::Customer,
                Role::Agent,
                Role::Customer
            ]
        );
        assert_eq!(
            out[1].author.ids,
            [
                "email:mette.kjaergaard@example.dk",
                "phone:+4520304050",
                "crm:40217",
                "chat:visitor-881"
            ]
        );
        assert_eq!(out[1].author.name.as_deref(), Some("Mette Kjærgaard"));
        // Replies: only where the role changes.
        assert_eq!(out[1].in_reply_to.as_deref(), Some("chat:dk-2024-0517:m1"));
        assert_eq!(out[2].in_reply_to, None);
        assert_eq!(out[3].in_reply_to.as_deref(), Some("chat:dk-2024-0517:m3"));
        assert_eq!(out[4].in_reply_to.as_deref(), Some("chat:dk-2024-0517:m4"));
        // HTML becomes text; timestamps become UTC; language and attributes flow down.
        assert!(
            out[3].text.contains("Kolding & bliver leveret"),
            "{}",
            out[3].text
        );
        assert!(!out[3].text.contains('<'));
        assert_eq!(
            out[0].occurred_at,
            time::macros::datetime!(2024-05-17 12:02:03 UTC)
        );
        assert_eq!(out[4].language.as_deref(), Some("da"));
        assert_eq!(out[4].attributes["queue"], "levering");
        assert_eq!(out[4].attributes["sentiment_vendor"], -0.4);
        assert!(!out[4].public);
    }

    #[test]
    fn swedish_transcript_array_uses_positions_as_ids_and_participant_list() {
        let input = read("chat/transcript_sv.json");
        let units = parse_chat_json(&input, &ctx("transcript_sv.json"));
        assert_eq!(units.len(), 1);
        let out = units[0].outcome.as_ref().unwrap();
        let ids: Vec<&str> = out.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(
            ids,
            ["chat:se-77031:0", "chat:se-77031:1", "chat:se-77031:2"]
        );
        assert_eq!(out[0].author.role, Role::Customer, "kund");
        assert_eq!(out[1].author.role, Role::Agent, "handläggare");
        assert_eq!(
            out[0].author.ids,
            [
                "email:linnea.berg@example.se",
                "phone:+46701234567",
                "chat:kund-5"
            ]
        );
        assert_eq!(out[2].in_reply_to.as_deref(), Some("chat:se-77031:1"));
        assert_eq!(out[2].language.as_deref(), Some("sv"));
        // Re-reading gives the same ids.
        let again = parse_chat_json(&input, &ctx("transcript_sv.json"));
        assert_eq!(again[0].outcome.as_ref().unwrap(), out);
    }

    #[test]
    fn ndjson_lines_fail_alone_and_link_across_lines() {
        let input = read("chat/mixed.ndjson");
        let units = parse_chat_json(&input, &ctx("mixed.ndjson"));
        assert_eq!(units.len(), 7, "the blank line is no unit");
        let errors: Vec<String> = units
            .iter()
            .filter_map(|u| u.outcome.as_ref().err().map(|e| e.reason.clone()))
            .collect();
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(
            errors[0].starts_with("line 4: truncated JSON"),
            "{}",
            errors[0]
        );
        assert_eq!(
            errors[1],
            "line 6: invalid timestamp \"2024-13-45T10:00:00Z\" in field \"at\" of message \"m4\" of conversation \"web-2\""
        );
        assert!(
            errors[2].starts_with("line 7: message \"x1\" of conversation \"web-3\" has no text"),
            "{}",
            errors[2]
        );

        let out = ok(&units);
        let ids: Vec<&str> = out.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(
            &ids[..4],
            [
                "chat:web-1:1",
                "chat:web-1:2",
                "chat:web-2:m1",
                "chat:web-2:m3"
            ]
        );
        assert!(
            ids[4].starts_with("chat:web-2:h") && ids[4].len() == "chat:web-2:h".len() + 32,
            "{}",
            ids[4]
        );
        assert_eq!(out[1].in_reply_to.as_deref(), Some("chat:web-1:1"));
        // m3 (agent) answers m1 on an earlier line; the line without id answers m3.
        assert_eq!(out[3].in_reply_to.as_deref(), Some("chat:web-2:m1"));
        assert_eq!(out[4].in_reply_to.as_deref(), Some("chat:web-2:m3"));
        assert_eq!(out[2].author.ids, ["phone:+46812345678", "chat:v-9"]);
        assert_eq!(out[3].author.ids, ["chat:agent-4"]);
        assert_eq!(out[2].language.as_deref(), Some("sv"));

        // Offsets: units tile the non-blank lines, and each ends after its newline.
        assert_eq!(units[0].start, 0);
        for unit in &units {
            assert_eq!(input[unit.end as usize - 1], b'\n');
        }
        assert_eq!(units[2].start, units[1].end + 1, "blank line between");
        assert_eq!(units.last().unwrap().end, input.len() as u64);
    }

    #[test]
    fn resuming_at_a_unit_end_yields_only_the_rest() {
        let input = read("chat/mixed.ndjson");
        let all = parse_chat_json(&input, &ctx("mixed.ndjson"));
        let resume = all[3].end as usize; // after m3
        let rest = parse_chat_json(&input[resume..], &ctx("mixed.ndjson"));
        assert_eq!(rest.len(), all.len() - 4);
        for (r, a) in rest.iter().zip(&all[4..]) {
            assert_eq!(r.start + resume as u64, a.start);
            assert_eq!(r.end + resume as u64, a.end);
        }
        let ids: Vec<String> = ok(&rest).iter().map(|i| i.id.clone()).collect();
        let expected: Vec<String> = ok(&all[4..]).iter().map(|i| i.id.clone()).collect();
        assert_eq!(ids, expected);
        assert_eq!(ids.len(), 1);
    }

    #[test]
    fn webhook_body_single_message_object() {
        let body = br#"{
            "conversation_id": 9001,
            "at": "2024-08-01T09:00:00+02:00",
            "author": {"role": "visitor", "email": "Ole@Example.no", "crm_id": "c-7", "name": "Ole"},
            "html": "<div>Hei, n&aring;r kommer ordren?</div>"
        }"#;
        let units = parse_chat_json(body, &ctx("webhook"));
        assert_eq!(units.len(), 1);
        let out = units[0].outcome.as_ref().unwrap();
        assert_eq!(out.len(), 1);
        let m = &out[0];
        assert_eq!(m.conversation_id, "chat:9001");
        assert_eq!(m.author.role, Role::Customer);
        assert_eq!(m.author.ids, ["email:ole@example.no", "crm:c-7"]);
        assert_eq!(m.text, "Hei, når kommer ordren?");
        assert_eq!(m.occurred_at, time::macros::datetime!(2024-08-01 07:00 UTC));
        // The same body re-sent gets the same id.
        let again = parse_chat_json(body, &ctx("webhook"));
        assert_eq!(again[0].outcome.as_ref().unwrap()[0].id, m.id);
    }

    #[test]
    fn explicit_in_reply_to_and_errors_name_the_message() {
        let input = br#"[{"conversation_id": "c", "id": "a", "at": "2024-01-01T00:00:00Z", "role": "agent", "text": "x"},
                         {"conversation_id": "c", "id": "b", "at": "2024-01-01T00:01:00Z", "role": "agent", "text": "y", "in_reply_to": "z"}]"#;
        let units = parse_chat_json(input, &ctx("t"));
        let out = units[0].outcome.as_ref().unwrap();
        assert_eq!(out[1].in_reply_to.as_deref(), Some("chat:c:z"));

        let missing_at =
            br#"{"conversation_id": "c", "messages": [{"text": "hi"}, {"at": 5, "text": "x"}]}"#;
        let err = parse_chat_json(missing_at, &ctx("t"))[0]
            .outcome
            .clone()
            .unwrap_err();
        assert_eq!(
            err.reason,
            "missing field \"at\" of messages[0] of conversation \"c\""
        );
        let bad_start = br#"{"conversation_id": "c", "started_at": "soon", "messages": []}"#;
        let err = parse_chat_json(bad_start, &ctx("t"))[0]
            .outcome
            .clone()
            .unwrap_err();
        assert_eq!(
            err.reason,
            "invalid timestamp \"soon\" in field \"started_at\" of conversation \"c\""
        );
        let no_conversation = br#"{"messages": []}"#;
        let err = parse_chat_json(no_conversation, &ctx("t"))[0]
            .outcome
            .clone()
            .unwrap_err();
        assert!(err.reason.contains("no \"conversation_id\""), "{err}");
        let bad_element = br#"[{"conversation_id": "c", "messages": []}, 3]"#;
        let err = parse_chat_json(bad_element, &ctx("t"))[0]
            .outcome
            .clone()
            .unwrap_err();
        assert!(
            err.reason
                .starts_with("[1]: expected a transcript or message object"),
            "{err}"
        );
    }

    #[test]
    fn out_of_range_times_are_invalid_timestamps_not_panics() {
        let input =
            br#"{"conversation_id":"c","id":"m","at":"9999-12-31T23:59:59-01:00","text":"x"}"#;
        let units = parse_chat_json(input, &ctx("t"));
        assert_eq!(
            units[0].outcome.as_ref().unwrap_err().reason,
            "invalid timestamp \"9999-12-31T23:59:59-01:00\" in field \"at\" of message \"m\" of conversation \"c\""
        );
    }

    #[test]
    fn transcripts_without_messages_are_errors_with_reasons() {
        let reason = |input: &[u8]| {
            let units = parse_chat_json(input, &ctx("t"));
            assert_eq!(units.len(), 1);
            units[0].outcome.as_ref().unwrap_err().reason.clone()
        };
        assert_eq!(
            reason(br#"{"conversation_id":"c","messages":[]}"#),
            "transcript \"c\" has no messages"
        );
        assert_eq!(reason(b"[]"), "empty array: no conversations");
        assert_eq!(reason(b"  [ ]\n"), "empty array: no conversations");
        assert_eq!(
            reason(br#"[{"session_id":1,"messages":[]},{"conversation_id":"d","messages":[]}]"#),
            "no messages: the 2 transcripts in the array have empty \"messages\""
        );
        // An empty transcript next to one with messages is no error.
        let units = parse_chat_json(
            br#"[{"conversation_id":"e","messages":[]},
                 {"conversation_id":"f","messages":[{"at":"2024-01-01T00:00:00Z","text":"Hej"}]}]"#,
            &ctx("t"),
        );
        assert_eq!(units[0].outcome.as_ref().unwrap()[0].id, "chat:f:0");
        // As an NDJSON line it says which line.
        let units = parse_chat_json(
            b"{\"conversation_id\":\"c\",\"messages\":[]}\n{\"conversation_id\":\"c\",\"at\":\"2024-01-01T00:00:00Z\",\"text\":\"x\"}\n",
            &ctx("t"),
        );
        assert_eq!(
            units[0].outcome.as_ref().unwrap_err().reason,
            "line 1: transcript \"c\" has no messages"
        );
        assert!(units[1].outcome.is_ok());
    }

    #[test]
    fn a_known_ndjson_window_is_read_by_line_however_its_first_lines_look() {
        // A window cut in the middle of a line, then a broken line, then good lines.
        let input = b"ssage\", \"at\": \"2024-01-01T00:00:00Z\"}\n\
            {\"conversation_id\": \"c\", \"text\": \n\
            {\"conversation_id\":\"c\",\"id\":\"3\",\"at\":\"2024-01-01T00:00:00Z\",\"role\":\"customer\",\"text\":\"Hej\"}\n\
            {\"conversation_id\":\"c\",\"id\":\"4\",\"at\":\"2024-01-01T00:01:00Z\",\"role\":\"agent\",\"text\":\"Hej!\"}\n";
        let mut c = ctx("t");
        c.ndjson = Some(true);
        let units = parse_chat_json(input, &c);
        assert_eq!(units.len(), 4);
        assert!(units[0].outcome.is_err() && units[1].outcome.is_err());
        let ids: Vec<&str> = ok(&units).iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["chat:c:3", "chat:c:4"]);
        assert_eq!(ok(&units)[1].in_reply_to.as_deref(), Some("chat:c:3"));
        assert_eq!(units[3].end, input.len() as u64);
        // Without the flag the same bytes are one broken document.
        let units = parse_chat_json(input, &ctx("t"));
        assert_eq!(units.len(), 1);
        assert!(units[0].outcome.is_err());
    }

    #[test]
    fn non_utf8_and_oversized_lines_fail_alone() {
        let mut input = b"{\"conversation_id\":\"c\",\"id\":\"1\",\"at\":\"2024-01-01T00:00:00Z\",\"role\":\"agent\",\"text\":\"ok\"}\n".to_vec();
        input.extend_from_slice(b"{\"conversation_id\":\"c\",\"text\":\"\xff\xfe\"}\n");
        input.extend_from_slice(
            format!(
                "{{\"conversation_id\":\"c\",\"text\":\"{}\"}}\n",
                "a".repeat(200)
            )
            .as_bytes(),
        );
        let mut c = ctx("t");
        c.max_message_bytes = 150;
        let units = parse_chat_json(&input, &c);
        assert_eq!(units.len(), 3);
        assert!(units[0].outcome.is_ok());
        let e1 = units[1].outcome.as_ref().unwrap_err();
        assert!(e1.reason.starts_with("line 2: not valid UTF-8"), "{e1}");
        let e2 = units[2].outcome.as_ref().unwrap_err();
        assert!(e2.reason.starts_with("line 3: too large"), "{e2}");
    }
}
