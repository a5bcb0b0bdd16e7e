//! Resolver metrics, gathered per batch and emitted once at its end.

use std::time::Duration;

use fanout_core::telemetry::{RESOLVER_CALLS, RESOLVER_ERRORS, RESOLVER_SECONDS};

/// Why a call counts as an error (the `kind` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// The resolver raised.
    Raised,
    /// The resolver ran past the timeout.
    Timeout,
    /// The resolver returned something that is not JSON.
    BadReturn,
}

/// Metrics of one batch, emitted once at its end rather than per call.
pub(crate) struct Stats {
    fields: Vec<FieldStats>,
}

#[derive(Default)]
struct FieldStats {
    calls: u64,
    raised: u64,
    timeout: u64,
    bad_return: u64,
    seconds: Option<metrics::Histogram>,
}

impl Stats {
    pub(crate) fn new(resolvers: usize) -> Self {
        Self {
            fields: (0..resolvers).map(|_| FieldStats::default()).collect(),
        }
    }

    pub(crate) fn record(
        &mut self,
        field: &str,
        index: usize,
        elapsed: Duration,
        kind: Option<ErrorKind>,
    ) {
        let stats = &mut self.fields[index];
        stats.calls += 1;
        match kind {
            Some(ErrorKind::Raised) => stats.raised += 1,
            Some(ErrorKind::Timeout) => stats.timeout += 1,
            Some(ErrorKind::BadReturn) => stats.bad_return += 1,
            None => {}
        }
        stats
            .seconds
            .get_or_insert_with(
                || metrics::histogram!(RESOLVER_SECONDS, "field" => field.to_owned()),
            )
            .record(elapsed.as_secs_f64());
    }

    /// Counts a call the caller gave up on as a timeout.
    pub(crate) fn count_timeout(&mut self, index: usize) {
        self.fields[index].timeout += 1;
    }

    pub(crate) fn emit<'a>(&self, fields: impl IntoIterator<Item = &'a str>) {
        for (field, stats) in fields.into_iter().zip(&self.fields) {
            if stats.calls > 0 {
                metrics::counter!(RESOLVER_CALLS, "field" => field.to_owned())
                    .increment(stats.calls);
            }
            for (kind, n) in [
                ("raised", stats.raised),
                ("timeout", stats.timeout),
                ("bad_return", stats.bad_return),
            ] {
                if n > 0 {
                    metrics::counter!(RESOLVER_ERRORS, "field" => field.to_owned(), "kind" => kind)
                        .increment(n);
                }
            }
        }
    }
}
