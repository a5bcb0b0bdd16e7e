//! What goes into a resolver call and what comes out.

use std::collections::BTreeMap;

use fanout_core::security::SecurityContext;
use serde_json::{Map, Value};

/// One event, shared by every call of a batch. Converted to a Python `dict` once per
/// batch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventInput {
    /// The channel the event was published to (`orders.42`).
    pub channel: String,
    /// The published JSON payload; the resolver's `event` argument.
    pub payload: Value,
    /// The tenant the publisher stamped on the event (`ctx.event_tenant`).
    pub tenant: Option<String>,
    /// Publisher headers (`ctx.headers`).
    pub headers: BTreeMap<String, String>,
    /// Offset assigned by the partition owner (`ctx.offset`).
    pub offset: u64,
    /// Epoch of the partition owner (`ctx.epoch`).
    pub epoch: u64,
}

/// One resolver call: one shape of one Subscription field.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolveCall {
    /// The Subscription field (`orderUpdated`).
    pub field: String,
    /// The field's arguments; the resolver's `args` argument.
    pub args: Map<String, Value>,
    /// What the shape's subscribers may observe of themselves (`ctx.claims`, ...).
    pub security: SecurityContext,
}

/// The result of one [`ResolveCall`].
#[derive(Debug, Clone, PartialEq)]
pub enum ResolveOutcome {
    /// The resolver returned this value.
    Value(Value),
    /// The resolver returned `None`: the event is not delivered to this shape.
    Skip,
    /// The resolver raised or returned something that is not JSON. The message is safe
    /// to show to clients (`resolver raised ValueError: bad id`); the traceback is only
    /// logged.
    Error(String),
    /// The resolver ran past the configured timeout.
    Timeout,
    /// No resolver is registered for the field: the event passes through unchanged.
    NoResolver,
}
