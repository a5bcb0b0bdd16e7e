//! The security context of a connection and JWT verification.
//!
//! A connection authenticates with a JWT in `connection_init.payload` (field `token`,
//! or `Authorization: "Bearer ..."`). With no secret configured, connections are
//! anonymous. The security issue extends this with more algorithms and key sources.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Claims that change with every token and that no resolver should depend on; they are
/// left out of the context so that two tokens of one user share shapes.
const VOLATILE_CLAIMS: &[&str] = &["exp", "iat", "nbf", "jti"];

/// Who is subscribing, as far as resolvers, filters and `@auth` may see.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityContext {
    /// `sub` claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Tenant claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Roles, sorted and deduplicated.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Scopes, sorted and deduplicated.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Other claims (without `exp`, `iat`, `nbf`, `jti`), sorted by name.
    #[serde(default)]
    pub claims: Map<String, Value>,
}

impl SecurityContext {
    /// The anonymous context.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// Builds a context from verified JWT claims.
    pub fn from_claims(mut claims: Map<String, Value>) -> Self {
        for name in VOLATILE_CLAIMS {
            claims.remove(*name);
        }
        let subject = claims.get("sub").and_then(Value::as_str).map(str::to_owned);
        let tenant = claims
            .get("tenant")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut roles = string_list(claims.get("roles"));
        roles.sort();
        roles.dedup();
        let mut scopes = match claims.get("scope") {
            Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            _ => string_list(claims.get("scopes")),
        };
        scopes.sort();
        scopes.dedup();
        Self {
            subject,
            tenant,
            roles,
            scopes,
            claims,
        }
    }

    /// The part of this context a field may observe: for user-independent fields the
    /// subject and custom claims are removed.
    pub fn visible_to(&self, user_independent: bool) -> Self {
        if user_independent {
            Self {
                subject: None,
                tenant: self.tenant.clone(),
                roles: self.roles.clone(),
                scopes: self.scopes.clone(),
                claims: Map::new(),
            }
        } else {
            self.clone()
        }
    }
}

fn string_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// Why a token was refused. Messages are safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Authentication is required and no token was given.
    #[error("authentication required")]
    Missing,
    /// The token is expired.
    #[error("token expired")]
    Expired,
    /// The token failed verification (signature, algorithm, format, claims).
    #[error("invalid token")]
    Invalid,
}

/// A verification key could not be built from configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JWT key: {0}")]
pub struct KeyError(String);

/// Verifies client JWTs.
#[derive(Clone)]
pub struct JwtVerifier {
    key: Option<(DecodingKey, Validation)>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("configured", &self.key.is_some())
            .finish()
    }
}

impl JwtVerifier {
    /// No authentication: every connection is anonymous, tokens are ignored.
    pub fn anonymous() -> Self {
        Self { key: None }
    }

    /// HS256 with a shared secret.
    pub fn hs256(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.is_empty() {
            return Err(KeyError("the HS256 secret is empty".into()));
        }
        let key = DecodingKey::from_secret(secret).map_err(|e| KeyError(e.to_string()))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = 5;
        validation.required_spec_claims.clear();
        validation.validate_aud = false;
        Ok(Self {
            key: Some((key, validation)),
        })
    }

    /// Whether a token is required.
    pub fn requires_token(&self) -> bool {
        self.key.is_some()
    }

    /// Verifies `token` (or its absence) and returns the connection's context and the
    /// token's expiry (Unix seconds), if any.
    pub fn verify(&self, token: Option<&str>) -> Result<(SecurityContext, Option<u64>), AuthError> {
        let Some((key, validation)) = &self.key else {
            return Ok((SecurityContext::anonymous(), None));
        };
        let token = token.ok_or(AuthError::Missing)?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            },
        )?;
        let exp = data.claims.get("exp").and_then(Value::as_u64);
        Ok((SecurityContext::from_claims(data.claims), exp))
    }
}

/// Extracts the token from a `connection_init` payload: `token`, or an
/// `Authorization`/`authorization` value of the form `Bearer <token>`.
pub fn token_from_init_payload(payload: Option<&Map<String, Value>>) -> Option<String> {
    let payload = payload?;
    if let Some(Value::String(t)) = payload.get("token") {
        return Some(t.clone());
    }
    ["Authorization", "authorization"]
        .iter()
        .find_map(|k| payload.get(*k).and_then(Value::as_str))
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    fn token(secret: &[u8], claims: Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret).expect("key"),
        )
        .expect("encode")
    }

    #[test]
    fn hs256_valid_token_yields_context() {
        let v = JwtVerifier::hs256(b"s3cret").expect("key");
        let t = token(
            b"s3cret",
            serde_json::json!({"sub":"u1","tenant":"t1","roles":["b","a"],"scope":"x y","exp": 4_000_000_000u64}),
        );
        let (ctx, exp) = v.verify(Some(&t)).expect("valid");
        assert_eq!(ctx.subject.as_deref(), Some("u1"));
        assert_eq!(ctx.tenant.as_deref(), Some("t1"));
        assert_eq!(ctx.roles, vec!["a", "b"]);
        assert_eq!(ctx.scopes, vec!["x", "y"]);
        assert!(!ctx.claims.contains_key("exp"));
        assert_eq!(exp, Some(4_000_000_000));
    }

    #[test]
    fn wrong_secret_expired_and_missing_are_refused() {
        let v = JwtVerifier::hs256(b"s3cret").expect("key");
        let forged = token(b"other", serde_json::json!({"sub":"u1"}));
        assert_eq!(v.verify(Some(&forged)), Err(AuthError::Invalid));
        let expired = token(b"s3cret", serde_json::json!({"sub":"u1","exp": 1_000}));
        assert_eq!(v.verify(Some(&expired)), Err(AuthError::Expired));
        assert_eq!(v.verify(None), Err(AuthError::Missing));
        assert_eq!(v.verify(Some("garbage")), Err(AuthError::Invalid));
    }

    #[test]
    fn token_is_found_in_init_payload() {
        let p: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"Authorization":"Bearer abc"})).expect("map");
        assert_eq!(token_from_init_payload(Some(&p)).as_deref(), Some("abc"));
        let p: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"token":"xyz"})).expect("map");
        assert_eq!(token_from_init_payload(Some(&p)).as_deref(), Some("xyz"));
        assert_eq!(token_from_init_payload(None), None);
    }
}
