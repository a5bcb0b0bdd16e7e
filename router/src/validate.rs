//! Checks of publish requests.

use crate::{Error, Result};

/// Longest accepted channel name, in bytes.
pub const MAX_CHANNEL_BYTES: usize = 256;

/// A channel is dot-separated tokens of `[A-Za-z0-9_-:@=+]`: no wildcards, no spaces,
/// no empty tokens — the same alphabet channel keys are rendered from.
pub fn channel(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::InvalidRequest("channel is empty".into()));
    }
    if name.len() > MAX_CHANNEL_BYTES {
        return Err(Error::InvalidRequest(format!(
            "channel is longer than {MAX_CHANNEL_BYTES} bytes"
        )));
    }
    for token in name.split('.') {
        if token.is_empty() {
            return Err(Error::InvalidRequest(
                "channel has an empty token (leading, trailing or double dot)".into(),
            ));
        }
        if let Some(c) = token.chars().find(|c| !allowed(*c)) {
            return Err(Error::InvalidRequest(format!(
                "channel contains {c:?}; allowed are letters, digits, '.', '_', '-', ':', '@', '=', '+'"
            )));
        }
    }
    Ok(())
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '@' | '=' | '+')
}

/// Parses the payload as JSON, within `max_bytes`.
pub fn payload(bytes: &[u8], max_bytes: usize) -> Result<serde_json::Value> {
    if bytes.len() > max_bytes {
        return Err(Error::InvalidRequest(format!(
            "payload is {} bytes; the limit is {max_bytes}",
            bytes.len()
        )));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| Error::InvalidRequest(format!("payload is not valid JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels() {
        assert!(channel("orders.42").is_ok());
        assert!(channel("a:b@c=d+e-f_g").is_ok());
        for bad in ["", "a..b", ".a", "a.", "a.*", "a.>", "a b", "é"] {
            assert!(channel(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(channel(&"a".repeat(300)).is_err());
    }

    #[test]
    fn payloads() {
        assert!(payload(br#"{"a":1}"#, 100).is_ok());
        assert!(payload(b"nope", 100).is_err());
        assert!(payload(br#"{"a":1}"#, 3).is_err());
    }
}
