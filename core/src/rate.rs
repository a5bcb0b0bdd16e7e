//! Token buckets: the rate limits of subscribes per connection and publishes per
//! publisher.
//!
//! A bucket holds up to `burst` tokens and refills at `per_second`; each operation takes
//! one. Time is passed in, so the bucket is deterministic under test.

use std::time::{Duration, Instant};

/// A rate: `per_second` sustained, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Tokens added per second (at least 1).
    pub per_second: u32,
    /// Bucket size: how many operations may happen back to back (at least 1).
    pub burst: u32,
}

/// One token bucket.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: Rate,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket for `rate`, as of `now`.
    pub fn new(rate: Rate, now: Instant) -> Self {
        Self {
            rate,
            tokens: f64::from(rate.burst.max(1)),
            last: now,
        }
    }

    /// Takes one token if there is one; `false` means the caller is over the rate.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        let burst = f64::from(self.rate.burst.max(1));
        let refill = elapsed.as_secs_f64() * f64::from(self.rate.per_second.max(1));
        self.tokens = (self.tokens + refill).min(burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket would be full at `now` (an idle bucket can be forgotten).
    pub fn is_full_at(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * f64::from(self.rate.per_second.max(1))
            >= f64::from(self.rate.burst.max(1))
    }

    /// How long until a token is available (zero when one is).
    pub fn wait_time(&self) -> Duration {
        let missing = 1.0 - self.tokens;
        if missing <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(missing / f64::from(self.rate.per_second.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_the_sustained_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(
            Rate {
                per_second: 2,
                burst: 3,
            },
            start,
        );
        assert!((0..3).all(|_| bucket.try_take(start)));
        assert!(!bucket.try_take(start));
        assert_eq!(bucket.wait_time(), Duration::from_millis(500));
        assert!(!bucket.try_take(start + Duration::from_millis(400)));
        assert!(bucket.try_take(start + Duration::from_millis(600)));
        // A long pause refills no more than the burst.
        let later = start + Duration::from_secs(60);
        assert!((0..3).all(|_| bucket.try_take(later)));
        assert!(!bucket.try_take(later));
    }
}
