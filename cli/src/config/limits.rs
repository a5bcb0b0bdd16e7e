//! Limits and transport security settings (`limits:` and `tls:` sections of the YAML
//! file).
//!
//! Owned by the security work: per-IP and per-tenant connection limits, rates, query
//! depth and size, allowed Origins, publisher grants, TLS.

use clap::Args;
use serde::Deserialize;

/// Limit flags.
#[derive(Debug, Default, Args)]
pub struct LimitArgs {}

/// The `limits:` section of the YAML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {}
