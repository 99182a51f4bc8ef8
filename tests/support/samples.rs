//! Synthetic inputs at scale, shared by the tests and the benches (`#[path]`-included):
//! small, realistic Danish customer-service messages with distinct, stable ids.
#![allow(dead_code)]

/// NDJSON chat messages `range`, ten to a conversation `<prefix><n>`.
pub fn chat_ndjson(prefix: &str, range: std::ops::Range<usize>) -> String {
    let mut out = String::with_capacity(range.len() * 150);
    for i in range {
        let role = if i % 2 == 0 { "customer" } else { "agent" };
        let text = match i % 4 {
            0 => "Min pakke er ikke kommet endnu, hvor bliver den af?",
            1 => "Beklager! Jeg tjekker forsendelsen med det samme.",
            2 => "Fakturaen er for høj, jeg vil have en forklaring.",
            _ => "Tak for tålmodigheden, vi har rettet beløbet.",
        };
        out.push_str(&format!(
            r#"{{"conversation_id":"{prefix}{}","id":"m{i}","at":"2026-01-01T10:00:00Z","role":"{role}","text":"{text} #{i}"}}"#,
            i / 10
        ));
        out.push('\n');
    }
    out
}

/// A Customer Support on Twitter CSV of `n` tweets: customer questions, each answered.
pub fn twcs_csv(n: usize) -> String {
    let mut out = String::from(
        "tweet_id,author_id,inbound,created_at,text,response_tweet_id,in_response_to_tweet_id\n",
    );
    for i in 1..=n {
        let (inbound, author) = if i % 2 == 1 {
            ("True", "115712")
        } else {
            ("False", "sprintcare")
        };
        let parent = if i % 2 == 0 {
            (i - 1).to_string()
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{i},{author},{inbound},Tue Oct 31 22:10:47 +0000 2017,\"@sprintcare my bill doubled this month, why? #{i}\",,{parent}\n"
        ));
    }
    out
}
