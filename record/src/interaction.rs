//! The `Interaction` record: the connectors' output contract (DESIGN.md §3).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// One message, turn or post, normalised from any source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    /// Stable, source-derived: `<namespace>:<native id>`; see [`crate::ids`].
    pub id: String,
    /// Thread, call, chat session or reply tree.
    pub conversation_id: String,
    pub channel: Channel,
    /// The connector instance name from config (`ingest` for one-off imports).
    pub connector: String,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    pub author: Author,
    /// Plain text: HTML stripped, quoted replies and signatures removed.
    pub text: String,
    /// BCP 47 tag when the source states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// True where other people can see it (public social posts).
    #[serde(default)]
    pub public: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<String>,
    /// Source-specific extras (subject, duration, STT confidence, vendor sentiment).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attributes: Map<String, Value>,
}

impl Interaction {
    /// The contract every record must meet before it goes on the bus, whatever its source:
    /// ids that can be a NATS header (no control characters, not empty), a time RFC 3339
    /// can write (years 1900–2999 are what customer messages plausibly carry), some text.
    pub fn check(&self) -> Result<(), String> {
        for (field, value) in [("id", &self.id), ("conversation_id", &self.conversation_id)] {
            if value.trim().is_empty() {
                return Err(format!("{field} is empty"));
            }
            if value.chars().any(char::is_control) {
                return Err(format!("{field} {value:?} contains control characters"));
            }
            if value.len() > 1024 {
                return Err(format!("{field} is {} bytes long, over 1024", value.len()));
            }
        }
        let year = self.occurred_at.year();
        if !(1900..=2999).contains(&year) {
            return Err(format!(
                "occurred_at {} is outside the years 1900-2999",
                self.occurred_at
            ));
        }
        if self.occurred_at.offset() != time::UtcOffset::UTC {
            return Err(format!("occurred_at {} is not UTC", self.occurred_at));
        }
        if self.text.trim().is_empty() {
            return Err(format!("interaction {} has no text", self.id));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Chat,
    Call,
    Social,
}

impl Channel {
    pub const ALL: [Channel; 4] = [
        Channel::Email,
        Channel::Chat,
        Channel::Call,
        Channel::Social,
    ];

    pub fn parse(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Chat => "chat",
            Channel::Call => "call",
            Channel::Social => "social",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Author {
    pub role: Role,
    /// Identity keys: `email:a@b.dk`, `phone:+4512…`, `handle:mastodon:@x@host`, `crm:123`.
    #[serde(default)]
    pub ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Agent,
    Bot,
    Unknown,
}

impl Role {
    /// Maps the many vendor spellings (AGENT, CUSTOMER, Caller, rep, assistant…) onto a role.
    pub fn from_label(label: &str) -> Role {
        match label.trim().to_ascii_lowercase().as_str() {
            "customer" | "client" | "caller" | "user" | "visitor" | "guest" | "kunde" | "kund" => {
                Role::Customer
            }
            "agent" | "rep" | "representative" | "support" | "staff" | "operator" | "advisor"
            | "medarbejder" | "medarbeider" | "handläggare" => Role::Agent,
            "bot" | "assistant" | "system" | "virtual_agent" | "ivr" => Role::Bot,
            _ => Role::Unknown,
        }
    }
}
