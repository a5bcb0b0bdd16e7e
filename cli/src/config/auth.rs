//! Client authentication settings (`auth:` section of the YAML file).
//!
//! Owned by the security work: JWT algorithms, key sources, claim paths, anonymous
//! access.

use clap::Args;
use serde::Deserialize;

/// Authentication flags.
#[derive(Debug, Default, Args)]
pub struct AuthArgs {}

/// The `auth:` section of the YAML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {}
