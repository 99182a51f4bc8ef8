//! Identity resolution: the ids an author carries (`email:…`, `phone:…`, `handle:…`,
//! `crm:…`) → one customer id, through the `rapport-identities` KV bucket, so one person's
//! e-mails, chats, calls and posts build one profile.
//!
//! Keys are `id.<sha256(identity)[..32]>` (KV keys cannot hold `@` or `:`, and hashing
//! keeps raw addresses out of key listings); values are the customer id. A conversation's
//! customer is kept under `conversation.<sha256(conversation_id)[..32]>`, so an agent's
//! reply joins the timeline of the customer it answers.
//!
//! **Rules** (the pure ones are `rapport_domain::identity`). An author whose ids are unknown becomes a new customer whose id derives from
//! the author's first id (`cust-<sha256[..16]>`), so two workers meeting the same new
//! author at once agree without coordination; `create` (compare-and-set on absence) makes
//! the first writer win for every id. When an author's ids are already linked to two
//! different customers, the author resolves to the customer of their *first* id that is
//! known, and the other links stay as they are: merging two known customers is an
//! explicit operation (`rapport identities import` with both ids on one row), never a
//! side effect of one message.

use async_nats::jetstream::kv;
use rapport_connectors::Author;
use rapport_domain::identity::{CustomerBy, customer_by, imported_customer};
pub use rapport_domain::identity::{conversation_key, identity_key, new_customer_id};

#[derive(Debug, thiserror::Error)]
#[error("identity store (KV rapport-identities) {operation} failed: {message}")]
pub struct IdentityError {
    operation: &'static str,
    message: String,
}

fn kv_error(operation: &'static str) -> impl Fn(String) -> IdentityError {
    move |message| IdentityError { operation, message }
}

/// Resolves authors to customers; cheap to clone.
#[derive(Clone)]
pub struct Identities {
    bucket: kv::Store,
}

impl Identities {
    pub fn new(bucket: kv::Store) -> Identities {
        Identities { bucket }
    }

    /// The customer an interaction belongs to: a customer's (or unknown author's) own
    /// id; for agents and bots, the customer of the conversation if one is known (resolve
    /// a batch's customers before its agents, so a reply finds the message it answers).
    pub async fn resolve(
        &self,
        author: &Author,
        conversation_id: &str,
    ) -> Result<Option<String>, IdentityError> {
        let customer = match customer_by(author, conversation_id) {
            CustomerBy::Conversation => None,
            CustomerBy::Ids(ids) => self.customer_of(&ids).await?,
        };
        match customer {
            Some(customer) => {
                self.link(&conversation_key(conversation_id), &customer)
                    .await?;
                Ok(Some(customer))
            }
            None => self.get(&conversation_key(conversation_id)).await,
        }
    }

    /// Links `ids` to a customer: the one already known for the first known id, else a
    /// new one. Ids not yet linked are linked to it.
    pub async fn customer_of(&self, ids: &[String]) -> Result<Option<String>, IdentityError> {
        let Some(first) = ids.first() else {
            return Ok(None);
        };
        let mut known = None;
        for id in ids {
            if let Some(customer) = self.get(&identity_key(id)).await? {
                known = Some(customer);
                break;
            }
        }
        let mut customer = known.unwrap_or_else(|| new_customer_id(first));
        for (index, id) in ids.iter().enumerate() {
            let held = self.link(&identity_key(id), &customer).await?;
            // Another worker may have linked the first id a moment earlier: its customer
            // wins, and the remaining ids follow it.
            if index == 0 {
                customer = held;
            }
        }
        Ok(Some(customer))
    }

    /// Sets `key` to `customer` unless it is already set; returns the value it holds.
    async fn link(&self, key: &str, customer: &str) -> Result<String, IdentityError> {
        match self.bucket.create(key, customer.to_string().into()).await {
            Ok(_) => Ok(customer.to_string()),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                Ok(self.get(key).await?.unwrap_or_else(|| customer.to_string()))
            }
            Err(e) => Err(kv_error("create")(e.to_string())),
        }
    }

    /// Points every id at `customer`, overwriting earlier links: the CRM import and the
    /// explicit merge.
    pub async fn assign(&self, ids: &[String], customer: &str) -> Result<(), IdentityError> {
        for id in ids {
            self.bucket
                .put(identity_key(id), customer.to_string().into())
                .await
                .map_err(|e| kv_error("put")(e.to_string()))?;
        }
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<String>, IdentityError> {
        let value = self
            .bucket
            .get(key)
            .await
            .map_err(|e| kv_error("get")(e.to_string()))?;
        Ok(value.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }
}

/// One customer's identity keys from a CRM export.
#[derive(Debug, Clone, PartialEq)]
pub struct CrmCustomer {
    /// The CRM's own customer number (`customer` column), if it has one.
    pub crm_id: Option<String>,
    /// Identity keys as connectors write them: `email:…`, `phone:+…`, `handle:…`, `crm:…`.
    pub ids: Vec<String>,
}

/// Reads a CRM export: a CSV with a header naming any of `customer`, `email`, `phone`,
/// `handle`, `crm` (other columns are ignored); a cell may hold several values separated
/// by `;`. Every problem is reported with its line.
pub fn read_crm_csv(text: &str, file: &str) -> Result<Vec<CrmCustomer>, Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| vec![format!("{file}: {e}")])?
        .clone();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let columns = ["customer", "email", "phone", "handle", "crm"].map(column);
    if columns[1..].iter().all(Option::is_none) {
        return Err(vec![format!(
            "{file}: the header names none of email, phone, handle, crm: {:?}",
            header.iter().collect::<Vec<_>>()
        )]);
    }
    let mut customers = Vec::new();
    let mut problems = Vec::new();
    for (index, row) in reader.records().enumerate() {
        let line = index + 2;
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                problems.push(format!("{file}:{line}: {e}"));
                continue;
            }
        };
        let cell = |c: Option<usize>| -> Vec<&str> {
            c.and_then(|c| row.get(c))
                .map(|v| {
                    v.split(';')
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        let problems_before = problems.len();
        let mut ids = Vec::new();
        for email in cell(columns[1]) {
            match rapport_connectors::email_id(email) {
                Some(id) => ids.push(id),
                None => problems.push(format!("{file}:{line}: {email:?} is not an e-mail address")),
            }
        }
        for phone in cell(columns[2]) {
            match rapport_connectors::phone_id(phone) {
                Some(id) => ids.push(id),
                None => problems.push(format!("{file}:{line}: {phone:?} is not a phone number")),
            }
        }
        for handle in cell(columns[3]) {
            let handle = handle.strip_prefix("handle:").unwrap_or(handle);
            if handle.contains(':') {
                ids.push(format!("handle:{handle}"));
            } else {
                problems.push(format!(
                    "{file}:{line}: handle {handle:?} needs its network, e.g. mastodon:@name@host or twitter:name"
                ));
            }
        }
        for crm in cell(columns[4]) {
            ids.push(format!("crm:{crm}"));
        }
        let crm_id = cell(columns[0]).first().map(|s| s.to_string());
        if ids.is_empty() {
            if problems.len() == problems_before {
                problems.push(format!("{file}:{line}: no identity on this row"));
            }
            continue;
        }
        customers.push(CrmCustomer { crm_id, ids });
    }
    if problems.is_empty() {
        Ok(customers)
    } else {
        Err(problems)
    }
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    pub customers: u64,
    pub ids: u64,
    /// Customers known apart before and now one: `(merged away, kept)`.
    pub merged: Vec<(String, String)>,
}

/// One CRM row resolved against the bucket, before anything is written.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRow {
    pub ids: Vec<String>,
    /// The customer the row's ids will point at.
    pub customer: String,
    /// Other customers the row's ids pointed at: they merge into `customer`.
    pub merged_from: Vec<String>,
}

impl Identities {
    /// Resolves each row without writing. The merge rule: the customer already known for
    /// the row's first known id keeps its id (its history stays attached); every other id
    /// of the row, including ids linked to another customer before, will point at it, and
    /// those other customers merge into it. Rows with no known id get `crm-<customer>`
    /// when the CRM number is given, else the id a new author would get.
    pub async fn plan(&self, rows: &[CrmCustomer]) -> Result<Vec<PlannedRow>, IdentityError> {
        let mut planned = Vec::with_capacity(rows.len());
        for row in rows {
            let mut known: Vec<String> = Vec::new();
            for id in &row.ids {
                if let Some(customer) = self.get(&identity_key(id)).await?
                    && !known.contains(&customer)
                {
                    known.push(customer);
                }
            }
            let customer = imported_customer(&known, row.crm_id.as_deref(), &row.ids);
            planned.push(PlannedRow {
                ids: row.ids.clone(),
                merged_from: known.into_iter().filter(|k| *k != customer).collect(),
                customer,
            });
        }
        Ok(planned)
    }

    /// Points every planned row's ids at its customer.
    pub async fn apply(&self, planned: &[PlannedRow]) -> Result<ImportReport, IdentityError> {
        let mut report = ImportReport::default();
        for row in planned {
            self.assign(&row.ids, &row.customer).await?;
            report.customers += 1;
            report.ids += row.ids.len() as u64;
            for from in &row.merged_from {
                report.merged.push((from.clone(), row.customer.clone()));
            }
        }
        Ok(report)
    }

    /// [`Identities::plan`] then [`Identities::apply`]: for a bucket whose customers have
    /// no stored history to move yet (the demo imports before it ingests).
    pub async fn import(&self, rows: &[CrmCustomer]) -> Result<ImportReport, IdentityError> {
        let planned = self.plan(rows).await?;
        self.apply(&planned).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_kv_keys_and_email_is_case_insensitive() {
        let key = identity_key("email:Kunde@Example.DK");
        assert_eq!(key, identity_key("email:kunde@example.dk"));
        assert_ne!(key, identity_key("phone:+4512345678"));
        assert!(
            key.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-'),
            "{key}"
        );
        assert_eq!(
            new_customer_id("email:A@b.dk"),
            new_customer_id("email:a@b.dk")
        );
        assert!(new_customer_id("crm:1").starts_with("cust-"));
    }

    #[test]
    fn crm_rows_become_identity_keys_as_connectors_write_them() {
        let csv = "customer,email,phone,handle,crm,notes\n\
                   C-1,Anna@Example.DK,+45 20 12 34 56,mastodon:@anna@social.example,,vip\n\
                   ,erik@example.se;e.l@example.se,0046 70 123 45 67,,991,\n";
        let rows = read_crm_csv(csv, "crm.csv").unwrap();
        assert_eq!(rows[0].crm_id.as_deref(), Some("C-1"));
        assert_eq!(
            rows[0].ids,
            [
                "email:anna@example.dk",
                "phone:+4520123456",
                "handle:mastodon:@anna@social.example"
            ]
        );
        assert_eq!(
            rows[1].ids,
            [
                "email:erik@example.se",
                "email:e.l@example.se",
                "phone:+46701234567",
                "crm:991"
            ]
        );
    }

    #[test]
    fn crm_problems_name_file_line_and_value() {
        let problems =
            read_crm_csv("email,handle\nnot-an-address,anna\n,\n", "crm.csv").unwrap_err();
        assert!(problems[0].contains("crm.csv:2") && problems[0].contains("not-an-address"));
        assert!(problems[1].contains("crm.csv:2") && problems[1].contains("needs its network"));
        assert!(problems[2].contains("crm.csv:3") && problems[2].contains("no identity"));
        let problems = read_crm_csv("name,age\nx,1\n", "crm.csv").unwrap_err();
        assert!(problems[0].contains("names none of"), "{problems:?}");
    }
}
