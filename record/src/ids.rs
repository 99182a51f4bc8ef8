//! Interaction ids: `<namespace>:<native id>`, stable across re-reads (DESIGN.md §3).
//!
//! The namespace names the system that issued the native id, not the connector instance,
//! so the same e-mail read over IMAP and from an mbox export gets one id and JetStream's
//! duplicate window keeps one copy:
//!
//! | source | id |
//! |---|---|
//! | e-mail | `email:<Message-ID without angle brackets>`, else `email:sha256:<content hash of the raw message>` |
//! | chat JSON | `chat:<conversation id>:<message id, else turn index>` |
//! | ABCD chat | `abcd:<convo_id>:<turn index>` |
//! | call transcripts | `call:<vendor job/request id, else sha256 of the file>:<turn index>` |
//! | Mastodon | `mastodon:<status uri>` |
//! | Customer Support on Twitter CSV | `twitter:<tweet_id>` |

use sha2::{Digest, Sha256};

/// `value` as a safe id part: ASCII letters, digits, `-` and `_` kept, anything else `_`
/// (a CRM number in a customer id, a connector name in a KV key).
pub fn token(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Hex of the first 16 bytes of the SHA-256 of `bytes`: a stable native id for sources that have none.
pub fn content_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    hex::encode(&digest[..16])
}
