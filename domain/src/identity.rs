//! The identity rules, without the bucket that keeps the links: which ids stand for an
//! author, the key an id is kept under, the id a new customer gets, and who a CRM row
//! belongs to. `rapport-pipeline`'s `identities` applies them to the KV bucket.

use rapport_record::{Author, Role};
use sha2::{Digest, Sha256};

/// The KV key of an identity (`email:a@b.dk`); ids compare case-insensitively for e-mail.
/// Hashed: KV keys cannot hold `@` or `:`, and raw addresses stay out of key listings.
pub fn identity_key(identity: &str) -> String {
    format!("id.{}", hashed(&normalise(identity)))
}

/// The KV key under which a conversation's customer is kept.
pub fn conversation_key(conversation_id: &str) -> String {
    format!("conversation.{}", hashed(conversation_id))
}

/// The customer id a new author gets: stable for the same first identity, so two workers
/// meeting the same new author at once agree without coordination.
pub fn new_customer_id(first_identity: &str) -> String {
    format!("cust-{}", &hashed(&normalise(first_identity))[..16])
}

fn hashed(value: &str) -> String {
    hex::encode(&Sha256::digest(value.as_bytes())[..16])
}

/// E-mail addresses are case-insensitive in practice; handles and phones are already
/// normalised by the connectors.
fn normalise(identity: &str) -> String {
    match identity.strip_prefix("email:") {
        Some(address) => format!("email:{}", address.to_lowercase()),
        None => identity.to_string(),
    }
}

/// How an interaction's customer is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerBy {
    /// An agent or a bot: the customer of the conversation, if one is known.
    Conversation,
    /// A customer (or an unknown author) by these ids; the first known one decides.
    Ids(Vec<String>),
}

/// Which ids stand for `author`. A caller without a number, a chat visitor without a
/// login, is known only by the conversation, which then stands for them.
pub fn customer_by(author: &Author, conversation_id: &str) -> CustomerBy {
    match author.role {
        Role::Agent | Role::Bot => CustomerBy::Conversation,
        Role::Customer | Role::Unknown if author.ids.is_empty() => {
            CustomerBy::Ids(vec![format!("conversation:{conversation_id}")])
        }
        Role::Customer | Role::Unknown => CustomerBy::Ids(author.ids.clone()),
    }
}

/// The customer a CRM row's ids will point at: the one already known for the row's first
/// known id (its history stays attached), else `crm-<customer number>`, else the id a new
/// author with the row's first id would get. `known` are the customers the row's ids
/// point at now, in the row's order.
pub fn imported_customer(known: &[String], crm_id: Option<&str>, ids: &[String]) -> String {
    match (known.first(), crm_id) {
        (Some(customer), _) => customer.clone(),
        (None, Some(crm)) => format!("crm-{}", rapport_record::ids::token(crm)),
        (None, None) => new_customer_id(&ids[0]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn author(role: Role, ids: &[&str]) -> Author {
        Author {
            role,
            ids: ids.iter().map(|s| s.to_string()).collect(),
            name: None,
        }
    }

    #[test]
    fn e_mail_ids_compare_without_case_and_new_ids_are_stable() {
        assert_eq!(
            identity_key("email:Anna@Example.DK"),
            identity_key("email:anna@example.dk")
        );
        assert_ne!(
            identity_key("phone:+4512345678"),
            identity_key("phone:+4512345679")
        );
        assert_eq!(
            new_customer_id("email:A@b.dk"),
            new_customer_id("email:a@b.dk")
        );
        assert!(new_customer_id("email:a@b.dk").starts_with("cust-"));
        assert!(
            !identity_key("email:a@b.dk").contains('@'),
            "raw addresses stay out of keys"
        );
    }

    #[test]
    fn agents_take_the_conversation_and_anonymous_customers_are_their_conversation() {
        assert_eq!(
            customer_by(&author(Role::Agent, &["email:a@shop.dk"]), "c1"),
            CustomerBy::Conversation
        );
        assert_eq!(
            customer_by(&author(Role::Bot, &[]), "c1"),
            CustomerBy::Conversation
        );
        assert_eq!(
            customer_by(&author(Role::Customer, &[]), "c1"),
            CustomerBy::Ids(vec!["conversation:c1".into()])
        );
        assert_eq!(
            customer_by(&author(Role::Unknown, &["phone:+45"]), "c1"),
            CustomerBy::Ids(vec!["phone:+45".into()])
        );
    }

    #[test]
    fn a_crm_row_keeps_the_first_known_customer_else_its_number() {
        let ids = vec!["email:a@b.dk".to_string()];
        assert_eq!(
            imported_customer(&["cust-1".into(), "cust-2".into()], Some("77"), &ids),
            "cust-1"
        );
        assert_eq!(imported_customer(&[], Some("K 77/a"), &ids), "crm-K_77_a");
        assert_eq!(
            imported_customer(&[], None, &ids),
            new_customer_id("email:a@b.dk")
        );
    }
}
