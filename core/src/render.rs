//! Rendering the payload of a `next` message once per shape.
//!
//! The payload is the GraphQL execution result plus `extensions.fanout = {channel,
//! offset, epoch}`; the edge only splices the subscription id around it.

use bytes::Bytes;

use crate::graphql::Projected;

/// Where an event sits in its channel's history.
#[derive(Debug, Clone, Copy)]
pub struct EventMeta<'a> {
    /// Channel of the event.
    pub channel: &'a str,
    /// Per-channel offset.
    pub offset: u64,
    /// Epoch of the partition owner.
    pub epoch: u64,
}

/// The JSON payload of a `next` message for `projected`.
pub fn next_payload(projected: &Projected, meta: EventMeta<'_>) -> Bytes {
    let mut out = String::with_capacity(projected.data.len() + 96);
    out.push_str("{\"data\":");
    out.push_str(&projected.data);
    if !projected.errors.is_empty() {
        out.push_str(",\"errors\":");
        out.push_str(&serde_json::to_string(&projected.errors).unwrap_or_else(|_| "[]".into()));
    }
    out.push_str(",\"extensions\":{\"fanout\":{\"channel\":");
    out.push_str(&serde_json::to_string(meta.channel).unwrap_or_else(|_| "\"\"".into()));
    out.push_str(",\"offset\":");
    out.push_str(&meta.offset.to_string());
    out.push_str(",\"epoch\":");
    out.push_str(&meta.epoch.to_string());
    out.push_str("}}}");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graphql::GraphQLError;

    #[test]
    fn payload_is_valid_json_with_extensions() {
        let p = Projected {
            data: "{\"a\":1}".into(),
            errors: vec![GraphQLError::new("boom")],
        };
        let bytes = next_payload(
            &p,
            EventMeta {
                channel: "c.\"1\"",
                offset: 7,
                epoch: 3,
            },
        );
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(v["data"]["a"], 1);
        assert_eq!(v["errors"][0]["message"], "boom");
        assert_eq!(v["extensions"]["fanout"]["channel"], "c.\"1\"");
        assert_eq!(v["extensions"]["fanout"]["offset"], 7);
        assert_eq!(v["extensions"]["fanout"]["epoch"], 3);
    }
}
