//! Test helpers: the team's fixtures and the third-party corpus (through `RAPPORT_CORPUS`).

use std::path::PathBuf;

use crate::unit::ParseContext;

/// `tests/fixtures/<rel>` at the workspace root.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(rel)
}

/// `$RAPPORT_CORPUS/<rel>`, or `None` after printing why the test is skipped.
/// A relative `RAPPORT_CORPUS` is taken from the workspace root, as `.ci/run` sets it.
pub fn corpus(rel: &str) -> Option<PathBuf> {
    let Some(root) = std::env::var_os("RAPPORT_CORPUS") else {
        eprintln!("SKIP: RAPPORT_CORPUS is not set, so the corpus test for {rel} cannot run");
        return None;
    };
    let root = PathBuf::from(root);
    let root = if root.is_absolute() {
        root
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(root)
    };
    let path = root.join(rel);
    assert!(
        path.exists(),
        "RAPPORT_CORPUS is set but {} does not exist",
        path.display()
    );
    Some(path)
}

/// A context as a test connector named `test` would build it.
pub fn ctx(source: &str) -> ParseContext {
    let mut ctx = ParseContext::new("test", source);
    ctx.company_domains = vec!["example-shop.dk".into()];
    ctx
}
