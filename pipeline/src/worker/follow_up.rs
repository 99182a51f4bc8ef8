//! After a batch is stored: reads what it touched once (the customers' histories, the
//! conversations' messages), lets the domain rebuild profiles and decide flags, and
//! publishes and stores the flags not raised before.

use std::collections::{BTreeMap, BTreeSet};

use tracing::info;

use super::Analyzer;
use super::error::BatchError;
use crate::bus::Publisher;
use crate::flags::{self, Flag, FlagRules};
use crate::profile::{self, ProfileInput, ProfileRules};
use crate::store::{AnalysedInteraction, CustomerPoint, InteractionFilter, Store};
use rapport_config::relationships::RelationshipCatalogue;

/// Recomputes the profiles of `customers` and the flags of `conversations` from what is
/// stored (so a redelivery changes nothing), stores the profiles, and publishes and stores
/// the flags not raised before. Returns how many flags were new.
pub(super) async fn follow_up<S: Store>(
    store: &S,
    analyzer: &Analyzer,
    customers: &BTreeSet<String>,
    conversations: &BTreeSet<String>,
    publisher: &mut Publisher,
) -> Result<u64, BatchError> {
    let mut raised = rebuild_profiles(
        store,
        customers,
        &analyzer.catalogue,
        &analyzer.profile_rules,
        &analyzer.flag_rules,
    )
    .await?;

    let those = InteractionFilter {
        any_conversation: conversations.iter().cloned().collect(),
        ..Default::default()
    };
    let by_conversation = grouped(store, &those, |s| {
        Some(s.interaction.conversation_id.clone())
    })
    .await?;
    for items in by_conversation.values() {
        for flag in flags::conversation_flags(items, &analyzer.flag_rules) {
            let vector = items
                .iter()
                .find(|(s, _)| flag.evidence.first() == Some(&s.interaction.id))
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            raised.push((flag, vector));
        }
    }
    if raised.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = raised.iter().map(|(f, _)| f.id.clone()).collect();
    let existing: BTreeSet<String> = store.existing_flags(&ids).await?.into_iter().collect();
    raised.retain(|(f, _)| !existing.contains(&f.id));
    if raised.is_empty() {
        return Ok(0);
    }
    // Published before stored: a crash in between re-raises it on redelivery, and
    // JetStream drops the second publish by its message id.
    for (flag, _) in &raised {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", flag.id.as_str());
        let payload = serde_json::to_vec(flag).expect("a flag serialises");
        publisher
            .publish_raw(crate::subjects::flag(flag.kind), headers, payload.into())
            .await?;
    }
    publisher.flush().await?;
    for (flag, _) in &raised {
        info!(flag = %flag.id, kind = flag.kind.as_str(), customer = ?flag.customer_id, "flag raised");
    }
    let new = store.insert_new_flags(raised).await?;
    Ok(new.len() as u64)
}

/// Recomputes and stores the profiles of `customers` from their stored interactions;
/// returns the superuser flags they now call for (not yet published or stored).
pub async fn rebuild_profiles<S: Store>(
    store: &S,
    customers: &BTreeSet<String>,
    catalogue: &RelationshipCatalogue,
    profile_rules: &ProfileRules,
    flag_rules: &FlagRules,
) -> Result<Vec<(Flag, Vec<f32>)>, BatchError> {
    let mut superusers: Vec<(Flag, Vec<f32>)> = Vec::new();
    let mut profiles = Vec::with_capacity(customers.len());
    // One query for the batch's customers, then each customer's latest history.
    let all_of_them = InteractionFilter {
        any_customer: customers.iter().cloned().collect(),
        ..Default::default()
    };
    let histories = grouped(store, &all_of_them, |s| s.customer_id.clone()).await?;
    for (customer, mut history) in histories {
        // Oldest first already; keep the latest window.
        let skip = history.len().saturating_sub(profile::PROFILE_WINDOW);
        history.drain(..skip);
        let customer = &customer;
        let answers = answers_to_other_customers(store, &history).await?;
        let inputs: Vec<ProfileInput> = history
            .iter()
            .map(|(stored, vector)| ProfileInput {
                stored,
                vector,
                answers_another_customer: answers.contains(&stored.interaction.id),
            })
            .collect();
        let Some(built) = profile::build(customer, &inputs, catalogue, profile_rules) else {
            continue;
        };
        let answering: Vec<&AnalysedInteraction> = history
            .iter()
            .map(|(s, _)| s)
            .filter(|s| answers.contains(&s.interaction.id))
            .collect();
        if let Some(flag) = flags::superuser_flag(&built.profile, &answering, flag_rules) {
            superusers.push((flag, built.semantic.clone()));
        }
        profiles.push(CustomerPoint {
            profile: built.profile,
            semantic: built.semantic,
            relationship: built.relationship,
        });
    }
    store.upsert_customers(profiles).await?;
    Ok(superusers)
}

/// The customer's public replies to another customer's question (a post with a `?`, so
/// thanks and chatter do not count): community help, the superuser signal.
async fn answers_to_other_customers<S: Store>(
    store: &S,
    history: &[(AnalysedInteraction, Vec<f32>)],
) -> Result<BTreeSet<String>, BatchError> {
    let replies: Vec<&AnalysedInteraction> = history
        .iter()
        .map(|(s, _)| s)
        .filter(|s| s.interaction.public && s.interaction.in_reply_to.is_some())
        .collect();
    if replies.is_empty() {
        return Ok(BTreeSet::new());
    }
    let parents: Vec<String> = replies
        .iter()
        .filter_map(|s| s.interaction.in_reply_to.clone())
        .collect();
    let parents = store.interactions(&parents).await?;
    Ok(replies
        .iter()
        .filter(|reply| {
            parents
                .iter()
                .any(|parent| flags::answers_peer_question(reply, parent))
        })
        .map(|s| s.interaction.id.clone())
        .collect())
}

/// Every stored interaction `filter` finds, with its vector, grouped by `key` (oldest first
/// within a group; those without a key left out): what a batch touched, read once. A filter
/// naming no customer and no conversation reads nothing, rather than the whole store (a
/// batch of agents' replies touches no customer).
async fn grouped<S: Store>(
    store: &S,
    filter: &InteractionFilter,
    key: impl Fn(&AnalysedInteraction) -> Option<String>,
) -> Result<BTreeMap<String, Vec<(AnalysedInteraction, Vec<f32>)>>, BatchError> {
    let mut groups: BTreeMap<String, Vec<(AnalysedInteraction, Vec<f32>)>> = BTreeMap::new();
    if filter.any_customer.is_empty() && filter.any_conversation.is_empty() {
        return Ok(groups);
    }
    for (stored, vector) in store
        .list_interactions_with_vectors(filter, usize::MAX)
        .await?
    {
        if let Some(group) = key(&stored) {
            groups.entry(group).or_default().push((stored, vector));
        }
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use rapport_domain::testing::{Message, stored};

    use super::*;
    use crate::store::{EdgeStore, InteractionPoint, InteractionStore};

    #[tokio::test]
    async fn what_a_batch_touched_is_read_once_and_nothing_when_it_touched_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = EdgeStore::open(dir.path(), 2).unwrap();
        let message = |id, customer, conversation| InteractionPoint {
            stored: stored(Message {
                id,
                customer,
                conversation,
                text: "Pakken er ikke kommet",
                ..Default::default()
            }),
            vector: vec![1.0, 0.0],
        };
        store
            .upsert_interactions(vec![
                message("m1", "anna", "c1"),
                message("m2", "anna", "c2"),
                message("m3", "erik", "c3"),
            ])
            .await
            .unwrap();
        let by_customer = |customers: &[&str]| InteractionFilter {
            any_customer: customers.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        };
        let annas = grouped(&store, &by_customer(&["anna"]), |s| s.customer_id.clone())
            .await
            .unwrap();
        assert_eq!(annas.keys().collect::<Vec<_>>(), ["anna"]);
        assert_eq!(annas["anna"].len(), 2);
        // A batch that touched no customer reads nothing, not the whole store.
        let none = grouped(&store, &by_customer(&[]), |s| s.customer_id.clone())
            .await
            .unwrap();
        assert!(none.is_empty());
    }
}
