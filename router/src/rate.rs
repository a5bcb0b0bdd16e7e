//! Publish rate limits: one token bucket per publisher (its name when publishers
//! authenticate, else the client's IP address). Over the rate, a publish is
//! `RESOURCE_EXHAUSTED` and is not published.

use std::collections::HashMap;
use std::time::Instant;

use dashmap::DashMap;
use fanout_core::rate::{Rate, TokenBucket};
use tonic::Status;

/// Buckets kept before idle (full) ones are forgotten.
const MAX_IDLE_KEYS: usize = 10_000;

/// Publish rates, per publisher.
#[derive(Debug, Default)]
pub struct PublishRate {
    /// Rate of publishers without an override; `None` = unlimited.
    default: Option<Rate>,
    /// Per-publisher rates, by publisher name.
    overrides: HashMap<String, Rate>,
    buckets: DashMap<String, TokenBucket>,
}

impl PublishRate {
    /// `default` for every publisher, except those named in `overrides`.
    pub fn new(default: Option<Rate>, overrides: HashMap<String, Rate>) -> Self {
        Self {
            default,
            overrides,
            buckets: DashMap::new(),
        }
    }

    /// Whether any rate is configured.
    pub fn is_enabled(&self) -> bool {
        self.default.is_some() || !self.overrides.is_empty()
    }

    /// Takes one publish for `key` (`name` is the publisher's name when authenticated);
    /// over the rate, the status to answer with.
    pub fn check(&self, name: Option<&str>, key: &str) -> Result<(), Status> {
        let Some(rate) = name
            .and_then(|n| self.overrides.get(n).copied())
            .or(self.default)
        else {
            return Ok(());
        };
        let now = Instant::now();
        if self.buckets.len() > MAX_IDLE_KEYS {
            self.buckets.retain(|_, bucket| !bucket.is_full_at(now));
        }
        let mut bucket = self
            .buckets
            .entry(key.to_owned())
            .or_insert_with(|| TokenBucket::new(rate, now));
        if bucket.try_take(now) {
            return Ok(());
        }
        let retry_ms = bucket.wait_time().as_millis().max(1);
        Err(Status::resource_exhausted(format!(
            "rate limited: at most {} publishes per second (burst {}); retry in {retry_ms} ms",
            rate.per_second, rate.burst
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_publisher_has_its_own_bucket_and_overrides_apply() {
        let rate = PublishRate::new(
            Some(Rate {
                per_second: 1,
                burst: 2,
            }),
            HashMap::from([(
                "bulk".to_owned(),
                Rate {
                    per_second: 1,
                    burst: 5,
                },
            )]),
        );
        assert!(rate.check(Some("a"), "a").is_ok());
        assert!(rate.check(Some("a"), "a").is_ok());
        let e = rate.check(Some("a"), "a").expect_err("over");
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(rate.check(None, "10.0.0.1").is_ok());
        assert_eq!(
            (0..6)
                .filter(|_| rate.check(Some("bulk"), "bulk").is_ok())
                .count(),
            5
        );
        assert!(PublishRate::default().check(Some("a"), "a").is_ok());
    }
}
