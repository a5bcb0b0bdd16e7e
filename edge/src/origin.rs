//! The allowed-`Origin` check of the WebSocket upgrade, against cross-site WebSocket
//! hijacking: a page on another site cannot open a socket with its visitor's cookies or
//! network position when the edge only accepts the origins it is told to.
//!
//! Browsers always send `Origin` on a WebSocket upgrade; other clients (servers, the
//! `fanout` CLI, mobile apps) usually do not, and could forge it anyway. So:
//! - no allowed origins configured (the default): every upgrade is accepted;
//! - origins configured: an upgrade whose `Origin` is not listed gets HTTP 403; one
//!   without `Origin` gets 403 too unless `allow_missing` is set.
//!
//! Origins compare as `scheme://host[:port]`, case-insensitively, without a trailing
//! slash; `*` in the list allows any origin.

/// Which origins may open a WebSocket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    /// Normalized allowed origins; empty means any origin.
    allowed: Vec<String>,
    /// Whether an upgrade without an `Origin` header is accepted when `allowed` is not
    /// empty.
    allow_missing: bool,
}

/// Why an origin setting is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid allowed origin {origin:?}: expected scheme://host[:port] (e.g. https://app.example.com) or *"
)]
pub struct InvalidOrigin {
    /// The value given.
    pub origin: String,
}

impl OriginPolicy {
    /// A policy allowing `origins` (each `scheme://host[:port]` or `*`).
    pub fn new<I, S>(origins: I, allow_missing: bool) -> Result<Self, InvalidOrigin>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut allowed = Vec::new();
        for origin in origins {
            let origin = origin.as_ref();
            let normalized = normalize(origin);
            let valid = normalized == "*"
                || normalized.split_once("://").is_some_and(|(scheme, rest)| {
                    !scheme.is_empty()
                        && scheme
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.')
                        && !rest.is_empty()
                        && !rest.contains(['/', '?', '#', ' '])
                });
            if !valid {
                return Err(InvalidOrigin {
                    origin: origin.to_owned(),
                });
            }
            allowed.push(normalized);
        }
        Ok(Self {
            allowed,
            allow_missing,
        })
    }

    /// Whether any origin restriction is configured.
    pub fn is_restricted(&self) -> bool {
        !self.allowed.is_empty() && !self.allowed.iter().any(|o| o == "*")
    }

    /// Whether an upgrade with this `Origin` header value (or none) is accepted.
    pub fn allows(&self, origin: Option<&[u8]>) -> bool {
        if !self.is_restricted() {
            return true;
        }
        match origin {
            None => self.allow_missing,
            Some(value) => match std::str::from_utf8(value) {
                Ok(value) => {
                    let value = normalize(value);
                    self.allowed.contains(&value)
                }
                Err(_) => false,
            },
        }
    }
}

fn normalize(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unrestricted_by_default() {
        let p = OriginPolicy::default();
        assert!(p.allows(None));
        assert!(p.allows(Some(b"https://evil.example")));
    }

    #[test]
    fn listed_origins_only() {
        let p = OriginPolicy::new(["https://App.example.com/", "http://localhost:3000"], false)
            .expect("valid");
        assert!(p.allows(Some(b"https://app.example.com")));
        assert!(p.allows(Some(b"HTTP://localhost:3000")));
        assert!(!p.allows(Some(b"https://evil.example")));
        assert!(!p.allows(Some(b"https://app.example.com.evil.example")));
        assert!(!p.allows(Some(b"null")));
        assert!(!p.allows(Some(&[0xff, 0xfe])));
        assert!(!p.allows(None));
        let p = OriginPolicy::new(["https://app.example.com"], true).expect("valid");
        assert!(p.allows(None));
    }

    #[test]
    fn bad_origins_are_refused() {
        for bad in ["app.example.com", "https://", "https://a.com/path", "://x"] {
            assert!(OriginPolicy::new([bad], false).is_err(), "{bad}");
        }
        assert!(OriginPolicy::new(["*"], false).is_ok_and(|p| !p.is_restricted()));
    }
}
