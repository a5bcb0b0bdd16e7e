//! [`JwtVerifier`]: checks a client's JWT and turns its claims into a
//! [`SecurityContext`].
//!
//! The token's header names an algorithm and maybe a `kid`; only keys bound to that
//! algorithm (and that kid) are tried, so `alg: none`, unknown algorithms and algorithm
//! confusion fail before any signature check. After the signature, `exp` and `nbf` are
//! checked with [`VerifierConfig::leeway`], then `iss` and `aud` when configured.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::claims::ClaimPaths;
use super::context::SecurityContext;
use super::keys::{KeyError, KeySet, KeySource};
use super::token::DEFAULT_TOKEN_FIELD;

/// Default clock-skew allowance for `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);

/// Longest token looked at; longer ones are refused unparsed.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The algorithms a key can be bound to.
const ALGORITHMS: [Algorithm; 3] = [Algorithm::HS256, Algorithm::RS256, Algorithm::ES256];

/// Why a token was refused. Messages are safe to log and to show: they never contain
/// the token, a claim value or key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Authentication is required and no token was given.
    #[error("authentication required")]
    Missing,
    /// Not a JWT, or a header naming no supported algorithm (`alg: none` included).
    #[error("malformed token")]
    Malformed,
    /// No configured key is bound to the token's algorithm and `kid`.
    #[error("no key for the token's algorithm and kid")]
    UnknownKey,
    /// The signature does not verify with any candidate key.
    #[error("bad signature")]
    BadSignature,
    /// `exp` has passed (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is missing or not an accepted issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` is missing or names none of the accepted audiences.
    #[error("wrong audience")]
    WrongAudience,
    /// A registered claim is missing or malformed (`exp` when required, a non-numeric
    /// `exp` or `nbf`, a claims part that is not a JSON object).
    #[error("invalid claims")]
    BadClaims,
}

impl AuthError {
    /// Short, stable label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::BadClaims => "bad_claims",
        }
    }
}

/// How client tokens are verified. [`Default`] is "no keys": every connection is
/// anonymous.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierConfig {
    /// Key sources; empty means authentication is off (everyone is anonymous).
    pub keys: Vec<KeySource>,
    /// Accepted `iss` values; when non-empty, `iss` is required.
    pub issuers: Vec<String>,
    /// Accepted `aud` values; when non-empty, `aud` is required. When empty, `aud` is
    /// not checked.
    pub audiences: Vec<String>,
    /// Clock-skew allowance for `exp` and `nbf`. Default [`DEFAULT_LEEWAY`].
    pub leeway: Duration,
    /// Whether a token without `exp` is refused. Default false (such a token never
    /// expires).
    pub require_exp: bool,
    /// Whether a connection without a token is accepted (as anonymous) when keys are
    /// configured. A token that is present is always verified.
    pub allow_anonymous: bool,
    /// Where subject, tenant, roles and scopes are in the claims.
    pub claims: ClaimPaths,
    /// Payload field of `connection_init` and refresh `ping` holding the token.
    pub token_field: String,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: DEFAULT_LEEWAY,
            require_exp: false,
            allow_anonymous: false,
            claims: ClaimPaths::default(),
            token_field: DEFAULT_TOKEN_FIELD.to_owned(),
        }
    }
}

/// A verified token (or an accepted anonymous connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Who the connection is.
    pub context: SecurityContext,
    /// When the token stops being accepted (`exp` plus the leeway); `None` when it
    /// has no `exp` or the connection is anonymous.
    pub expires_at: Option<SystemTime>,
}

impl Verified {
    fn anonymous() -> Self {
        Self {
            context: SecurityContext::anonymous(),
            expires_at: None,
        }
    }
}

/// Verifies client JWTs. Cheap to clone; clones share the key set, so a reload is seen
/// by all of them.
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    config: VerifierConfig,
    /// One validation per algorithm of [`ALGORITHMS`].
    validations: Vec<(Algorithm, Validation)>,
    keys: RwLock<Arc<KeySet>>,
    /// File stamps of `config.keys` at the last (re)load.
    stamps: Mutex<Vec<Option<(SystemTime, u64)>>>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("configured", &self.is_configured())
            .field("keys", &self.key_count())
            .field("allow_anonymous", &self.inner.config.allow_anonymous)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// No authentication: every connection is anonymous, tokens are ignored.
    pub fn anonymous() -> Self {
        Self::build(VerifierConfig::default(), KeySet::default())
    }

    /// HS256 with a shared secret and otherwise default settings.
    pub fn hs256(secret: &[u8]) -> Result<Self, KeyError> {
        Self::new(VerifierConfig {
            keys: vec![KeySource::Secret(secret.to_vec())],
            ..VerifierConfig::default()
        })
    }

    /// A verifier for `config`, loading its keys now. With no key source it is
    /// [`JwtVerifier::anonymous`] (whatever `allow_anonymous` says).
    pub fn new(config: VerifierConfig) -> Result<Self, KeyError> {
        let keys = if config.keys.is_empty() {
            KeySet::default()
        } else {
            KeySet::load(&config.keys)?
        };
        Ok(Self::build(config, keys))
    }

    fn build(config: VerifierConfig, keys: KeySet) -> Self {
        let validations = ALGORITHMS
            .iter()
            .map(|alg| (*alg, validation(*alg, &config)))
            .collect();
        let stamps = config.keys.iter().map(KeySource::stamp).collect();
        Self {
            inner: Arc::new(Inner {
                config,
                validations,
                keys: RwLock::new(Arc::new(keys)),
                stamps: Mutex::new(stamps),
            }),
        }
    }

    /// Whether any key is configured (otherwise everyone is anonymous).
    pub fn is_configured(&self) -> bool {
        !self.inner.config.keys.is_empty()
    }

    /// Whether a connection must present a token.
    pub fn requires_token(&self) -> bool {
        self.is_configured() && !self.inner.config.allow_anonymous
    }

    /// The payload field that carries the token.
    pub fn token_field(&self) -> &str {
        &self.inner.config.token_field
    }

    /// The settings this verifier was built with.
    pub fn config(&self) -> &VerifierConfig {
        &self.inner.config
    }

    /// Number of keys currently loaded.
    pub fn key_count(&self) -> usize {
        self.key_set().len()
    }

    fn key_set(&self) -> Arc<KeySet> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Verifies `token` (or its absence) and returns the connection's context and when
    /// the token stops being accepted.
    pub fn verify(&self, token: Option<&str>) -> Result<Verified, AuthError> {
        if !self.is_configured() {
            return Ok(Verified::anonymous());
        }
        let Some(token) = token else {
            return if self.inner.config.allow_anonymous {
                Ok(Verified::anonymous())
            } else {
                Err(AuthError::Missing)
            };
        };
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed);
        }
        // Unknown algorithms, `none` included, do not parse.
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        let validation = self
            .inner
            .validations
            .iter()
            .find(|(alg, _)| *alg == header.alg)
            .map(|(_, v)| v)
            .ok_or(AuthError::UnknownKey)?;
        let keys = self.key_set();
        let mut tried = false;
        for key in keys.candidates(header.alg, header.kid.as_deref()) {
            tried = true;
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation) {
                Ok(data) => return Ok(self.verified(data.claims)),
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => continue,
                Err(e) => return Err(auth_error(e.kind())),
            }
        }
        Err(if tried {
            AuthError::BadSignature
        } else {
            AuthError::UnknownKey
        })
    }

    fn verified(&self, claims: Map<String, Value>) -> Verified {
        let exp = claims.get("exp").and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        });
        let expires_at = exp.and_then(|exp| {
            UNIX_EPOCH
                .checked_add(Duration::from_secs(exp).saturating_add(self.inner.config.leeway))
        });
        Verified {
            context: SecurityContext::from_claims_with(&self.inner.config.claims, claims),
            expires_at,
        }
    }

    /// Reads every key source again and swaps the key set in; on failure the current
    /// keys stay. Returns the number of keys now loaded.
    pub fn reload(&self) -> Result<usize, KeyError> {
        if !self.is_configured() {
            return Ok(0);
        }
        let stamps: Vec<_> = self
            .inner
            .config
            .keys
            .iter()
            .map(KeySource::stamp)
            .collect();
        let keys = KeySet::load(&self.inner.config.keys)?;
        let count = keys.len();
        *self
            .inner
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
        *self
            .inner
            .stamps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = stamps;
        Ok(count)
    }

    /// [`JwtVerifier::reload`] if a key file changed (modification time or size) since
    /// the last load; `Ok(None)` when nothing changed.
    pub fn reload_if_changed(&self) -> Result<Option<usize>, KeyError> {
        let now: Vec<_> = self
            .inner
            .config
            .keys
            .iter()
            .map(KeySource::stamp)
            .collect();
        let changed = *self
            .inner
            .stamps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            != now;
        if changed {
            self.reload().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Whether any key comes from a file (only then is reloading useful).
    pub fn has_key_files(&self) -> bool {
        self.inner.config.keys.iter().any(|k| k.path().is_some())
    }
}

fn validation(alg: Algorithm, config: &VerifierConfig) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = config.leeway.as_secs();
    v.validate_exp = true;
    v.validate_nbf = true;
    v.required_spec_claims.clear();
    if config.require_exp {
        v.required_spec_claims.insert("exp".into());
    }
    if config.issuers.is_empty() {
        v.iss = None;
    } else {
        v.set_issuer(&config.issuers);
        v.required_spec_claims.insert("iss".into());
    }
    if config.audiences.is_empty() {
        v.validate_aud = false;
    } else {
        v.set_audience(&config.audiences);
        v.required_spec_claims.insert("aud".into());
    }
    v
}

fn auth_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => AuthError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
            AuthError::BadClaims
        }
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidKeyFormat => AuthError::UnknownKey,
        _ => AuthError::Malformed,
    }
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
