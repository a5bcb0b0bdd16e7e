//! HS256 tokens for servers started with `--jwt-secret`.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};

/// The secret the tests start servers with.
pub const SECRET: &str = "fanout-test-secret-0123456789abcdef";

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Signs `claims` with HS256 and `secret`; adds `exp` one hour ahead when missing.
pub fn mint(secret: &str, claims: &Value) -> Result<String> {
    let mut claims = claims.clone();
    if let Value::Object(map) = &mut claims {
        map.entry("exp").or_insert_with(|| json!(now() + 3600));
    }
    let key = EncodingKey::from_secret(secret.as_bytes()).context("bad HS256 secret")?;
    encode(&Header::default(), &claims, &key).context("cannot sign token")
}

/// Claims of a user: `sub`, `tenant`, `roles` and space-separated `scope`.
pub fn claims(sub: &str, tenant: &str, roles: &[&str], scopes: &[&str]) -> Value {
    json!({
        "sub": sub,
        "tenant": tenant,
        "roles": roles,
        "scope": scopes.join(" "),
    })
}

/// A token signed with [`SECRET`] for [`claims`].
pub fn user(sub: &str, tenant: &str, roles: &[&str], scopes: &[&str]) -> Result<String> {
    mint(SECRET, &claims(sub, tenant, roles, scopes))
}
