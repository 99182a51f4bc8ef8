//! `kind = "maildir"`: a Maildir (`new/` and `cur/`) watched for new mail. Read by the files
//! source with the Maildir layout, which keys messages by their unique name so that one
//! moving from `new/` to `cur/` is not read twice.

use rapport_config::ConnectorSpec;

use crate::sources::files::{Layout, test_layout, watched};
use crate::sources::kind::SourceKind;

pub static SOURCE: SourceKind = SourceKind {
    kind: "maildir",
    build: |connector, cx, settings, sink| {
        let ConnectorSpec::Maildir {
            path,
            poll_interval,
        } = &connector.spec
        else {
            unreachable!("the registry hands a maildir source only maildir connectors")
        };
        Ok(watched(
            cx,
            path,
            Layout::Maildir,
            *poll_interval,
            settings,
            sink,
        ))
    },
    test: |connector, cx, _| {
        let ConnectorSpec::Maildir { path, .. } = &connector.spec else {
            unreachable!("the registry hands a maildir source only maildir connectors")
        };
        Box::pin(test_layout(cx, path, Layout::Maildir))
    },
};
