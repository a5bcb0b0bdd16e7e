//! What is subscribed and published: channels, documents and payloads.
//!
//! Subscription g (numbered over all connections of a run) listens on channel g % C and
//! uses shape g % S. Every payload carries `"<seq>:<publish time µs>"` in the selected
//! field, so latency and sequence checks need nothing else from the server.

use serde_json::{Value, json};

use crate::args::Field;

/// The room (chat) or order id of channel `c`.
pub fn key(c: usize) -> String {
    format!("bench{c}")
}

/// The channel name publishers use for channel `c`.
pub fn channel(field: Field, c: usize) -> String {
    match field {
        Field::Chat => format!("chat.{}", key(c)),
        Field::Order => format!("orders.{}", key(c)),
    }
}

/// The subscription document of channel `c` and shape `shape` (of `shapes`).
pub fn document(field: Field, c: usize, shape: usize, shapes: usize) -> String {
    let selected = match field {
        Field::Chat => "text",
        Field::Order => "note",
    };
    let selection = if shapes > 1 {
        format!("s{shape}: {selected}")
    } else {
        selected.to_string()
    };
    let k = key(c);
    match field {
        Field::Chat => format!("subscription {{ chatMessage(room: \"{k}\") {{ {selection} }} }}"),
        Field::Order => format!("subscription {{ orderUpdated(id: \"{k}\") {{ {selection} }} }}"),
    }
}

/// The event payload for channel `c`, sequence number `seq` (from 1) sent at `sent_us`.
pub fn payload(field: Field, c: usize, seq: u64, sent_us: u64) -> Value {
    let stamp = format!("{seq}:{sent_us}");
    match field {
        Field::Chat => json!({"room": key(c), "from": "bench", "text": stamp}),
        Field::Order => {
            json!({"id": key(c), "status": "paid", "cents": 1999, "items": [], "note": stamp})
        }
    }
}

/// Finds the first `"<digits>:<digits>"` string in a `next` payload: (seq, sent µs).
///
/// A scan instead of a JSON parse keeps the client's share of the two cores small.
pub fn find_stamp(raw: &str) -> Option<(u64, u64)> {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'"'
            && let Some((stamp, _)) = parse_stamp(&bytes[i + 1..])
        {
            return Some(stamp);
        }
        i += 1;
    }
    None
}

/// The decimal number at the start of `bytes` (1 to 19 digits) and its length.
fn digits(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    let mut n = 0;
    for &b in bytes.iter().take_while(|b| b.is_ascii_digit()) {
        if n == 19 {
            return None;
        }
        value = value * 10 + u64::from(b - b'0');
        n += 1;
    }
    (n > 0).then_some((value, n))
}

fn parse_stamp(bytes: &[u8]) -> Option<((u64, u64), usize)> {
    let (seq, a) = digits(bytes)?;
    if bytes.get(a) != Some(&b':') {
        return None;
    }
    let (sent, b) = digits(&bytes[a + 1..])?;
    if bytes.get(a + 1 + b) != Some(&b'"') {
        return None;
    }
    Some(((seq, sent), a + b + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_is_found_in_aliased_payloads() {
        let raw = r#"{"data":{"chatMessage":{"s7":"12:1733300000000000"}}}"#;
        assert_eq!(find_stamp(raw), Some((12, 1_733_300_000_000_000)));
        assert_eq!(find_stamp(r#"{"data":{"x":"bench3"}}"#), None);
        assert_eq!(find_stamp(r#"{"a":"1:2x","b":"3:4"}"#), Some((3, 4)));
        let max = format!(r#"{{"a":"{}:1"}}"#, u64::MAX / 10);
        assert_eq!(find_stamp(&max), Some((u64::MAX / 10, 1)));
        assert_eq!(find_stamp(r#"{"a":"12345678901234567890:1"}"#), None);
    }

    #[test]
    fn documents_alias_only_with_several_shapes() {
        assert_eq!(
            document(Field::Chat, 3, 0, 1),
            r#"subscription { chatMessage(room: "bench3") { text } }"#
        );
        assert_eq!(
            document(Field::Order, 0, 5, 10),
            r#"subscription { orderUpdated(id: "bench0") { s5: note } }"#
        );
    }
}
