//! Paths of test fixtures (`tests/fixtures/`) and examples (`examples/`).

use std::path::PathBuf;

use crate::binary::workspace_root;

/// `tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    workspace_root().join("tests").join("fixtures").join(rel)
}

/// `examples/<rel>`.
pub fn example(rel: &str) -> PathBuf {
    workspace_root().join("examples").join(rel)
}

/// Arguments serving the suite fixture (`tests/fixtures/suite/`), the schema most
/// tests use.
pub fn suite_args() -> Vec<String> {
    vec![
        "--schema".into(),
        fixture("suite/schema.graphql").display().to_string(),
        "--resolvers".into(),
        fixture("suite/resolvers.py").display().to_string(),
    ]
}
