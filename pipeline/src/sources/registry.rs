//! Every connector kind Rapport knows, by the name configuration gives it. A new kind is a
//! folder under `sources/` exporting a [`SourceKind`] and one line in [`SOURCES`].

use rapport_config::Connector;

use super::kind::SourceKind;

pub static SOURCES: &[&SourceKind] = &[
    &super::files::SOURCE,
    &super::maildir::SOURCE,
    &super::imap::SOURCE,
    &super::chat_webhook::SOURCE,
    &super::mastodon::SOURCE,
];

/// The source kind of a configured connector. Configuration only admits the kinds in
/// `rapport_config::connector::KINDS`, and a test checks each has an entry here.
pub fn source_kind(connector: &Connector) -> &'static SourceKind {
    let kind = connector.spec.kind();
    SOURCES
        .iter()
        .copied()
        .find(|source| source.kind == kind)
        .unwrap_or_else(|| panic!("connector kind {kind:?} has no entry in sources::SOURCES"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_configurable_kind_has_exactly_one_source() {
        let mut registered: Vec<&str> = super::SOURCES.iter().map(|s| s.kind).collect();
        registered.sort_unstable();
        let mut configurable = rapport_config::connector::KINDS.to_vec();
        configurable.sort_unstable();
        assert_eq!(registered, configurable);
    }
}
