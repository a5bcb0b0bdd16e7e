//! [`SecurityContext`]: who is subscribing, as resolvers, filters and `@auth` see it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::claims::ClaimPaths;

/// Claims that change with every token and that no resolver should depend on; they are
/// left out of the context so that two tokens of one user share shapes.
const VOLATILE_CLAIMS: &[&str] = &["exp", "iat", "nbf", "jti"];

/// Who is subscribing, as far as resolvers, filters and `@auth` may see.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityContext {
    /// The subject (claim `sub` unless configured otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The tenant (claim `tenant` unless configured otherwise).
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

    /// Builds a context from verified JWT claims with the default claim paths.
    pub fn from_claims(claims: Map<String, Value>) -> Self {
        Self::from_claims_with(&ClaimPaths::default(), claims)
    }

    /// Builds a context from verified JWT claims, reading subject, tenant, roles and
    /// scopes at `paths`. The volatile claims (`exp`, `iat`, `nbf`, `jti`) are left out.
    pub fn from_claims_with(paths: &ClaimPaths, mut claims: Map<String, Value>) -> Self {
        for name in VOLATILE_CLAIMS {
            claims.remove(*name);
        }
        Self {
            subject: paths.subject(&claims),
            tenant: paths.tenant(&claims),
            roles: paths.roles(&claims),
            scopes: paths.scopes(&claims),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn volatile_claims_are_dropped_and_paths_are_used() {
        let Value::Object(claims) = json!({
            "sub": "u1", "exp": 1, "iat": 1, "nbf": 1, "jti": "j",
            "org": {"id": "acme"}, "scp": ["w", "r"],
        }) else {
            unreachable!()
        };
        let paths = ClaimPaths {
            tenant: "org.id".into(),
            scopes: vec!["scp".into()],
            ..ClaimPaths::default()
        };
        let ctx = SecurityContext::from_claims_with(&paths, claims);
        assert_eq!(ctx.subject.as_deref(), Some("u1"));
        assert_eq!(ctx.tenant.as_deref(), Some("acme"));
        assert_eq!(ctx.scopes, ["r", "w"]);
        assert!(ctx.roles.is_empty());
        for volatile in VOLATILE_CLAIMS {
            assert!(!ctx.claims.contains_key(*volatile));
        }
        let shared = ctx.visible_to(true);
        assert_eq!(shared.subject, None);
        assert!(shared.claims.is_empty());
        assert_eq!(shared.tenant.as_deref(), Some("acme"));
    }
}
