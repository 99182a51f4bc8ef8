//! The ABCD dataset (Action-Based Conversations Dataset, ASAPP): a JSON array of
//! conversations, each with `convo_id`, `scenario` (`personal`, `flow`, `subflow`, …) and
//! `original` turns `[speaker, text]`, speaker `agent`, `customer` or `action`.
//!
//! - id `abcd:<convo_id>:<turn index>` (0-based over `original`), conversation `abcd:<convo_id>`;
//! - `action` turns (the agent's system actions) become [`Role::Bot`] with attribute
//!   `kind: "action"`; they take no part in reply linking;
//! - a customer or agent turn answers the previous customer/agent turn when the role changed;
//! - the customer's ids come from `scenario.personal`: `email:…`, `phone:+1…` (US numbers),
//!   `handle:abcd:<username>`; name `customer_name`;
//! - attributes `flow`, `subflow` (and `member_level` where given);
//! - ABCD has no timestamps: turn *n* happens at `ctx.source_time` + *n* seconds, which is
//!   stable across re-reads of the same file (a time outside 1900–2999 is an error); language
//!   `en`;
//! - empty turns are skipped (their index is not reused); an input with no turn with text at
//!   all (`[]`, or conversations whose turns are all empty) is an error.

use serde_json::{Map, Value};
use time::Duration;

use crate::error::ParseError;
use crate::json_input::{email_id, id_field, kind, object_field, str_field, within};
use crate::record::{Author, Channel, Interaction, Role};
use crate::unit::ParseContext;

pub fn parse_abcd(input: &[u8], ctx: &ParseContext) -> Result<Vec<Interaction>, ParseError> {
    let value: Value = crate::error::json_document(input)?;
    let conversations: Vec<&Value> = match &value {
        Value::Array(items) if items.is_empty() => {
            return Err(ParseError::new("empty array: no conversations"));
        }
        Value::Array(items) => items.iter().collect(),
        // One conversation on its own is accepted too.
        Value::Object(_) => vec![&value],
        other => {
            return Err(ParseError::new(format!(
                "ABCD: expected an array of conversations, not {}",
                kind(other)
            )));
        }
    };
    let mut out = Vec::new();
    let mut last_id = None;
    let count = conversations.len();
    for (i, convo) in conversations.into_iter().enumerate() {
        last_id = Some(
            conversation(convo, ctx, &mut out)
                .map_err(|e| within(&format!("ABCD conversation [{i}]"), e))?,
        );
    }
    // A conversation with no text among others is no reason to reject the file; a file
    // with no text at all is.
    if out.is_empty() {
        return Err(ParseError::new(match (count, last_id) {
            (1, Some(id)) => format!("ABCD conversation {id} has no turns with text"),
            _ => format!("none of the {count} ABCD conversations has a turn with text"),
        }));
    }
    Ok(out)
}

/// Appends one conversation's turns to `out`; returns its id.
fn conversation(
    convo: &Value,
    ctx: &ParseContext,
    out: &mut Vec<Interaction>,
) -> Result<String, ParseError> {
    let Value::Object(convo) = convo else {
        return Err(ParseError::new(format!(
            "expected an object, not {}",
            kind(convo)
        )));
    };
    let convo_id = id_field(convo, "convo_id", "the conversation")?
        .ok_or_else(|| ParseError::new("missing field \"convo_id\""))?;
    let what = format!("conversation {convo_id}");
    let scenario = object_field(convo, "scenario", &what)?;
    let personal = match scenario {
        Some(s) => object_field(s, "personal", &what)?,
        None => None,
    };
    let customer = customer(personal, &what)?;

    let mut attributes = Map::new();
    for key in ["flow", "subflow"] {
        if let Some(v) = scenario.and_then(|s| s.get(key)).filter(|v| v.is_string()) {
            attributes.insert(key.to_string(), v.clone());
        }
    }
    if let Some(v) = personal
        .and_then(|p| p.get("member_level"))
        .filter(|v| v.is_string())
    {
        attributes.insert("member_level".to_string(), v.clone());
    }

    let Some(Value::Array(turns)) = convo.get("original") else {
        return Err(ParseError::new(format!(
            "field \"original\" of {what} is missing or not an array"
        )));
    };
    let conversation_id = format!("abcd:{convo_id}");
    let mut previous: Option<(String, Role)> = None;
    for (index, turn) in turns.iter().enumerate() {
        let (speaker, text) = match turn {
            Value::Array(pair) if pair.len() == 2 => match (&pair[0], &pair[1]) {
                (Value::String(s), Value::String(t)) => (s.as_str(), t.trim()),
                _ => return Err(not_a_turn(index, &what)),
            },
            _ => return Err(not_a_turn(index, &what)),
        };
        if text.is_empty() {
            continue;
        }
        let id = format!("abcd:{convo_id}:{index}");
        let is_action = speaker.eq_ignore_ascii_case("action");
        let role = if is_action {
            Role::Bot
        } else {
            Role::from_label(speaker)
        };
        let mut turn_attributes = attributes.clone();
        let mut in_reply_to = None;
        if is_action {
            turn_attributes.insert("kind".to_string(), Value::from("action"));
        } else {
            in_reply_to = previous
                .as_ref()
                .filter(|(_, r)| *r != role)
                .map(|(p, _)| p.clone());
            previous = Some((id.clone(), role));
        }
        // Turn n at source time + n seconds; an absurd source time is an error, not a panic.
        let occurred_at = i64::try_from(index)
            .ok()
            .and_then(|n| ctx.source_time.checked_add(Duration::seconds(n)))
            .and_then(crate::text::to_utc)
            .ok_or_else(|| {
                ParseError::new(format!(
                    "turn {index} of {what}: its time (source time {} + {index} s) is out of range",
                    ctx.source_time
                ))
            })?;
        let author = if role == Role::Customer {
            customer.clone()
        } else {
            Author {
                role,
                ids: Vec::new(),
                name: None,
            }
        };
        out.push(Interaction {
            id,
            conversation_id: conversation_id.clone(),
            channel: Channel::Chat,
            connector: ctx.connector.clone(),
            occurred_at,
            author,
            text: text.to_string(),
            language: Some("en".to_string()),
            public: false,
            in_reply_to,
            attributes: turn_attributes,
        });
    }
    Ok(convo_id)
}

fn not_a_turn(index: usize, what: &str) -> ParseError {
    ParseError::new(format!(
        "turn {index} of {what} is not a [speaker, text] pair of strings"
    ))
}

fn customer(personal: Option<&Map<String, Value>>, what: &str) -> Result<Author, ParseError> {
    let mut author = Author {
        role: Role::Customer,
        ids: Vec::new(),
        name: None,
    };
    let Some(personal) = personal else {
        return Ok(author);
    };
    let what = format!("scenario.personal of {what}");
    if let Some(email) = str_field(personal, "email", &what)?.and_then(email_id) {
        author.ids.push(email);
    }
    if let Some(phone) = str_field(personal, "phone", &what)?.and_then(us_phone) {
        author.ids.push(phone);
    }
    if let Some(user) = str_field(personal, "username", &what)?
        .map(str::trim)
        .filter(|u| !u.is_empty())
    {
        author.ids.push(format!("handle:abcd:{user}"));
    }
    author.name = str_field(personal, "customer_name", &what)?
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    Ok(author)
}

/// ABCD's phones are US numbers like `(977) 625-2661`: ten digits get `+1`, eleven starting
/// with 1 get `+`; anything else keeps its digits.
fn us_phone(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    match digits.len() {
        0..=2 => None,
        10 => Some(format!("phone:+1{digits}")),
        11 if digits.starts_with('1') => Some(format!("phone:+{digits}")),
        _ => Some(format!("phone:{digits}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{corpus, ctx};

    #[test]
    fn us_phones_get_country_code() {
        assert_eq!(
            us_phone("(977) 625-2661").as_deref(),
            Some("phone:+19776252661")
        );
        assert_eq!(
            us_phone("1-977-625-2661").as_deref(),
            Some("phone:+19776252661")
        );
        assert_eq!(us_phone(""), None);
    }

    #[test]
    fn small_conversation_maps_roles_ids_and_times() {
        let input = br#"[{"convo_id": 7, "scenario": {"flow": "f", "subflow": "s",
            "personal": {"customer_name": "ann lee", "email": "Ann@Mail.com", "phone": "(111) 222-3333", "username": "annl"}},
            "original": [["agent", "Hi!"], ["customer", "My order is late"], ["action", "Pulled up account"], ["", ""], ["agent", "Sorry, checking"]]}]"#;
        let mut c = ctx("t.json");
        c.source_time = time::macros::datetime!(2024-01-01 00:00 UTC);
        let out = parse_abcd(input, &c).unwrap();
        assert_eq!(out.len(), 4, "the empty turn is skipped");
        assert_eq!(out[1].id, "abcd:7:1");
        assert_eq!(
            out[1].author.ids,
            [
                "email:ann@mail.com",
                "phone:+11112223333",
                "handle:abcd:annl"
            ]
        );
        assert_eq!(out[1].author.name.as_deref(), Some("ann lee"));
        assert_eq!(out[1].in_reply_to.as_deref(), Some("abcd:7:0"));
        assert_eq!(out[2].author.role, Role::Bot);
        assert_eq!(out[2].attributes["kind"], "action");
        assert_eq!(out[2].in_reply_to, None);
        // The agent answers the customer, not the action between them.
        assert_eq!(out[3].id, "abcd:7:4");
        assert_eq!(out[3].in_reply_to.as_deref(), Some("abcd:7:1"));
        assert_eq!(out[3].occurred_at, c.source_time + Duration::seconds(4));
        assert_eq!(out[0].attributes["flow"], "f");
        assert_eq!(out[0].conversation_id, "abcd:7");
    }

    #[test]
    fn malformed_turn_is_named() {
        let input = br#"[{"convo_id": 1, "original": [["agent", "hi"]]}, {"convo_id": 2, "original": [["agent"]]}]"#;
        let err = parse_abcd(input, &ctx("t.json")).unwrap_err();
        assert!(err.reason.contains("conversation [1]"), "{err}");
        assert!(err.reason.contains("turn 0 of conversation 2"), "{err}");
    }

    #[test]
    fn absurd_source_time_is_an_error_not_a_panic() {
        let input =
            br#"[{"convo_id": 7, "original": [["agent", "Hi!"], ["customer", "Late order"]]}]"#;
        let mut c = ctx("t.json");
        c.source_time = time::PrimitiveDateTime::MAX.assume_utc();
        let err = parse_abcd(input, &c).unwrap_err();
        assert!(
            err.reason
                .starts_with("ABCD conversation [0]: turn 0 of conversation 7: its time"),
            "{err}"
        );
        assert!(err.reason.ends_with("is out of range"), "{err}");
        c.source_time = time::macros::datetime!(2999-12-31 23:59:59 UTC);
        let err = parse_abcd(input, &c).unwrap_err();
        assert!(err.reason.contains("turn 1 of conversation 7"), "{err}");
    }

    #[test]
    fn inputs_without_turns_are_errors_with_reasons() {
        let err = parse_abcd(b"[]", &ctx("t.json")).unwrap_err();
        assert_eq!(err.reason, "empty array: no conversations");
        let err = parse_abcd(
            br#"[{"convo_id": 7, "original": [["agent", " "], ["customer", ""]]}]"#,
            &ctx("t.json"),
        )
        .unwrap_err();
        assert_eq!(err.reason, "ABCD conversation 7 has no turns with text");
        let err = parse_abcd(br#"{"convo_id": 8, "original": []}"#, &ctx("t.json")).unwrap_err();
        assert_eq!(err.reason, "ABCD conversation 8 has no turns with text");
        let err = parse_abcd(
            br#"[{"convo_id": 1, "original": []}, {"convo_id": 2, "original": [["agent", ""]]}]"#,
            &ctx("t.json"),
        )
        .unwrap_err();
        assert_eq!(
            err.reason,
            "none of the 2 ABCD conversations has a turn with text"
        );
        // An empty conversation among others is skipped.
        let out = parse_abcd(
            br#"[{"convo_id": 1, "original": []}, {"convo_id": 2, "original": [["agent", "Hi"]]}]"#,
            &ctx("t.json"),
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].id, "abcd:2:0");
    }

    #[test]
    fn corpus_sample_has_three_conversations_with_their_turns() {
        let Some(path) = corpus("chat/abcd/abcd_sample.json") else {
            return;
        };
        let input = std::fs::read(&path).unwrap();
        let raw: Value = serde_json::from_slice(&input).unwrap();
        let out = parse_abcd(&input, &ctx("abcd_sample.json")).unwrap();
        let conversations = raw.as_array().unwrap();
        assert_eq!(conversations.len(), 3);
        let mut seen = 0;
        for convo in conversations {
            let id = convo["convo_id"].to_string();
            let turns = convo["original"].as_array().unwrap();
            let mine: Vec<&Interaction> = out
                .iter()
                .filter(|i| i.conversation_id == format!("abcd:{id}"))
                .collect();
            let non_empty = turns
                .iter()
                .filter(|t| !t[1].as_str().unwrap().trim().is_empty())
                .count();
            assert_eq!(mine.len(), non_empty, "turn count of {id}");
            for turn in &mine {
                let index: usize = turn.id.rsplit(':').next().unwrap().parse().unwrap();
                let expected = match turns[index][0].as_str().unwrap() {
                    "agent" => Role::Agent,
                    "customer" => Role::Customer,
                    "action" => Role::Bot,
                    other => panic!("unexpected speaker {other}"),
                };
                assert_eq!(turn.author.role, expected, "{}", turn.id);
            }
            seen += mine.len();
        }
        assert_eq!(seen, out.len());
        // 3592: crystal minh, with e-mail, US phone and username.
        let customer = out
            .iter()
            .find(|i| i.id.starts_with("abcd:3592:") && i.author.role == Role::Customer)
            .unwrap();
        assert!(
            customer
                .author
                .ids
                .contains(&"phone:+19776252661".to_string())
        );
        assert!(
            customer
                .author
                .ids
                .contains(&"handle:abcd:cminh730".to_string())
        );
        assert_eq!(customer.attributes["subflow"], "return_size");
        assert_eq!(
            out.iter()
                .filter(|i| i.conversation_id == "abcd:3592")
                .count(),
            29
        );
    }
}
