//! Publisher authentication and channel grants on the gRPC publish API.
//!
//! Each publishing service has a name, a bearer token and the channel prefixes it may
//! publish to. A request carries `authorization: Bearer <token>` metadata.
//! - No publisher configured: publishing is open to anyone who can reach the port.
//! - Otherwise: no or an unknown token is `UNAUTHENTICATED`; a channel outside the
//!   publisher's prefixes is `PERMISSION_DENIED`.
//!
//! Tokens are kept only as SHA-256 digests and compared in constant time against every
//! configured publisher (no early exit), so neither timing nor logs reveal them. Error
//! messages never contain a token.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use tonic::Status;
use tonic::metadata::MetadataMap;

/// Shortest token accepted in the configuration.
pub const MIN_TOKEN_BYTES: usize = 16;

/// One publishing service and what it may publish.
#[derive(Clone)]
pub struct PublisherGrant {
    /// Name, used in logs, metrics and rate limits.
    pub name: String,
    digest: [u8; 32],
    /// Channel prefixes; `*` allows every channel.
    pub prefixes: Vec<String>,
}

impl std::fmt::Debug for PublisherGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublisherGrant")
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .field("prefixes", &self.prefixes)
            .finish()
    }
}

/// Why a publisher's configuration is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// The name is empty or not `[A-Za-z0-9_.-]+`.
    #[error("publisher name {0:?} must be non-empty letters, digits, '_', '.' or '-'")]
    BadName(String),
    /// The token is too short (its value is never shown).
    #[error("publisher {0}: token must be at least {MIN_TOKEN_BYTES} bytes")]
    ShortToken(String),
    /// No channel prefixes were granted.
    #[error("publisher {0}: no channel prefixes granted (use \"*\" for every channel)")]
    NoPrefixes(String),
    /// Two publishers share a name or a token.
    #[error("publisher {0}: duplicate name or token")]
    Duplicate(String),
}

impl PublisherGrant {
    /// A publisher `name` authenticating with `token`, allowed `prefixes`.
    pub fn new(name: &str, token: &str, prefixes: Vec<String>) -> Result<Self, GrantError> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(GrantError::BadName(name.to_owned()));
        }
        if token.len() < MIN_TOKEN_BYTES {
            return Err(GrantError::ShortToken(name.to_owned()));
        }
        let prefixes: Vec<String> = prefixes
            .into_iter()
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect();
        if prefixes.is_empty() {
            return Err(GrantError::NoPrefixes(name.to_owned()));
        }
        Ok(Self {
            name: name.to_owned(),
            digest: digest(token.as_bytes()),
            prefixes,
        })
    }

    /// Whether this publisher may publish to `channel`.
    pub fn allows(&self, channel: &str) -> bool {
        self.prefixes
            .iter()
            .any(|p| p == "*" || channel.starts_with(p.as_str()))
    }
}

/// Who is publishing: the authenticated publisher, or anyone when auth is off.
#[derive(Debug, Clone)]
pub enum Publisher {
    /// Authentication is off.
    Open,
    /// An authenticated publisher.
    Granted(Arc<PublisherGrant>),
}

impl Publisher {
    /// Checks that this publisher may publish to `channel` (`PERMISSION_DENIED`).
    pub fn check_channel(&self, channel: &str) -> Result<(), Status> {
        match self {
            Self::Open => Ok(()),
            Self::Granted(grant) if grant.allows(channel) => Ok(()),
            Self::Granted(grant) => Err(Status::permission_denied(format!(
                "publisher {} may not publish to channel {channel}",
                grant.name
            ))),
        }
    }

    /// The publisher's name, when authenticated.
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Open => None,
            Self::Granted(grant) => Some(&grant.name),
        }
    }
}

/// The configured publishers; empty means open publishing.
#[derive(Debug, Clone, Default)]
pub struct PublisherAuth {
    grants: Vec<Arc<PublisherGrant>>,
}

impl PublisherAuth {
    /// Publishers allowed to publish; none means publishing is open.
    pub fn new(grants: Vec<PublisherGrant>) -> Result<Self, GrantError> {
        for (i, g) in grants.iter().enumerate() {
            if grants[..i]
                .iter()
                .any(|o| o.name == g.name || o.digest == g.digest)
            {
                return Err(GrantError::Duplicate(g.name.clone()));
            }
        }
        Ok(Self {
            grants: grants.into_iter().map(Arc::new).collect(),
        })
    }

    /// Whether publishers must authenticate.
    pub fn is_enabled(&self) -> bool {
        !self.grants.is_empty()
    }

    /// Names of the configured publishers.
    pub fn names(&self) -> Vec<&str> {
        self.grants.iter().map(|g| g.name.as_str()).collect()
    }

    /// Authenticates a call from its `authorization: Bearer <token>` metadata.
    pub fn authenticate(&self, metadata: &MetadataMap) -> Result<Publisher, Status> {
        if self.grants.is_empty() {
            return Ok(Publisher::Open);
        }
        let unauthenticated =
            || Status::unauthenticated("a valid `authorization: Bearer <token>` is required");
        let token = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
            .ok_or_else(unauthenticated)?;
        let presented = digest(token.as_bytes());
        let mut found = None;
        for grant in &self.grants {
            // Every grant is compared, in constant time, whatever matched before.
            if constant_time_eq(&grant.digest, &presented) {
                found = Some(grant.clone());
            }
        }
        found.map(Publisher::Granted).ok_or_else(unauthenticated)
    }
}

/// The token of an `authorization` value `Bearer <token>` (scheme case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const BILLING: &str = "billing-token-0123456789";
    const CHAT: &str = "chat-token-abcdefghijkl";

    fn auth() -> PublisherAuth {
        PublisherAuth::new(vec![
            PublisherGrant::new(
                "billing",
                BILLING,
                vec!["orders.".into(), "invoices.".into()],
            )
            .expect("billing"),
            PublisherGrant::new("chat", CHAT, vec!["*".into()]).expect("chat"),
        ])
        .expect("auth")
    }

    fn with(value: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("authorization", value.parse().expect("ascii"));
        m
    }

    #[test]
    fn open_without_publishers() {
        let p = PublisherAuth::default()
            .authenticate(&MetadataMap::new())
            .expect("open");
        assert!(p.check_channel("anything.at.all").is_ok());
    }

    #[test]
    fn tokens_authenticate_and_grants_restrict() {
        let auth = auth();
        for bad in [
            None,
            Some("Bearer nope-nope-nope-nope"),
            Some(BILLING),
            Some("Basic x"),
        ] {
            let md = bad.map(with).unwrap_or_default();
            let status = auth.authenticate(&md).expect_err("refused");
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
            assert!(!status.message().contains("nope"));
        }
        let billing = auth
            .authenticate(&with(&format!("bearer {BILLING}")))
            .expect("billing");
        assert_eq!(billing.name(), Some("billing"));
        assert!(billing.check_channel("orders.42").is_ok());
        assert!(billing.check_channel("invoices.7").is_ok());
        let denied = billing.check_channel("chat.lobby").expect_err("denied");
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert!(!denied.message().contains(BILLING));
        let chat = auth
            .authenticate(&with(&format!("Bearer {CHAT}")))
            .expect("chat");
        assert!(chat.check_channel("orders.1").is_ok());
    }

    #[test]
    fn bad_configuration_is_refused_without_showing_tokens() {
        let e = PublisherGrant::new("x", "short", vec!["a.".into()]).expect_err("short");
        assert!(!e.to_string().contains("short,"));
        assert!(PublisherGrant::new("", BILLING, vec!["a.".into()]).is_err());
        assert!(PublisherGrant::new("x y", BILLING, vec!["a.".into()]).is_err());
        assert!(PublisherGrant::new("x", BILLING, vec![" ".into()]).is_err());
        let dup = PublisherAuth::new(vec![
            PublisherGrant::new("a", BILLING, vec!["*".into()]).expect("a"),
            PublisherGrant::new("b", BILLING, vec!["*".into()]).expect("b"),
        ]);
        assert!(matches!(dup, Err(GrantError::Duplicate(_))));
        assert!(format!("{:?}", auth()).contains("<redacted>"));
        assert!(!format!("{:?}", auth()).contains(BILLING));
    }
}
