//! Where in a token's claims the subject, tenant, roles and scopes live.
//!
//! A claim path is a dotted path into the claims object: `realm_access.roles` reads
//! `claims["realm_access"]["roles"]`. Claim names may themselves contain dots (the
//! namespaced claims of many identity providers, such as
//! `https://example.com/claims.tenant`): at each level the path is matched against the
//! object's keys, trying the longest name first, so both forms resolve.

use serde_json::{Map, Value};

/// The claim paths used to build a [`super::SecurityContext`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPaths {
    /// Path of the subject (a string). Default `sub`.
    pub subject: String,
    /// Path of the tenant (a string). Default `tenant`.
    pub tenant: String,
    /// Path of the roles (an array of strings, or one string). Default `roles`.
    pub roles: String,
    /// Paths of the scopes, the first present one wins (a space-separated string or an
    /// array of strings). Default `scope`, then `scopes`.
    pub scopes: Vec<String>,
}

impl Default for ClaimPaths {
    fn default() -> Self {
        Self {
            subject: "sub".into(),
            tenant: "tenant".into(),
            roles: "roles".into(),
            scopes: vec!["scope".into(), "scopes".into()],
        }
    }
}

impl ClaimPaths {
    /// The subject: a string claim (a number is taken as its decimal text).
    pub fn subject(&self, claims: &Map<String, Value>) -> Option<String> {
        scalar(lookup(claims, &self.subject)?)
    }

    /// The tenant: a string claim (a number is taken as its decimal text).
    pub fn tenant(&self, claims: &Map<String, Value>) -> Option<String> {
        scalar(lookup(claims, &self.tenant)?)
    }

    /// The roles, sorted and deduplicated.
    pub fn roles(&self, claims: &Map<String, Value>) -> Vec<String> {
        let mut roles = match lookup(claims, &self.roles) {
            Some(Value::Array(items)) => strings(items),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        roles.sort();
        roles.dedup();
        roles
    }

    /// The scopes, sorted and deduplicated.
    pub fn scopes(&self, claims: &Map<String, Value>) -> Vec<String> {
        let mut scopes = match self.scopes.iter().find_map(|p| lookup(claims, p)) {
            Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            Some(Value::Array(items)) => strings(items),
            _ => Vec::new(),
        };
        scopes.sort();
        scopes.dedup();
        scopes
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn strings(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// Resolves a dotted `path` in `claims`; see the module documentation.
pub fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return None;
    }
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    // Longest key first: split at each dot from the right.
    for (i, _) in path.rmatch_indices('.') {
        let (head, tail) = (&path[..i], &path[i + 1..]);
        if let Some(Value::Object(inner)) = claims.get(head)
            && let Some(found) = lookup(inner, tail)
        {
            return Some(found);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn dotted_paths_reach_nested_and_namespaced_claims() {
        let c = map(json!({
            "realm_access": {"roles": ["b", "a", "a"]},
            "https://example.com/claims": {"tenant": "acme", "org": {"id": 7}},
            "https://example.com/flat": "x",
        }));
        assert_eq!(
            lookup(&c, "realm_access.roles"),
            Some(&json!(["b", "a", "a"]))
        );
        assert_eq!(
            lookup(&c, "https://example.com/claims.tenant"),
            Some(&json!("acme"))
        );
        assert_eq!(
            lookup(&c, "https://example.com/claims.org.id"),
            Some(&json!(7))
        );
        assert_eq!(lookup(&c, "https://example.com/flat"), Some(&json!("x")));
        assert_eq!(lookup(&c, "realm_access.nope"), None);
        assert_eq!(lookup(&c, ""), None);
        let paths = ClaimPaths {
            tenant: "https://example.com/claims.org.id".into(),
            roles: "realm_access.roles".into(),
            ..ClaimPaths::default()
        };
        assert_eq!(paths.tenant(&c).as_deref(), Some("7"));
        assert_eq!(paths.roles(&c), ["a", "b"]);
    }

    #[test]
    fn scopes_come_from_the_first_present_path() {
        let p = ClaimPaths::default();
        assert_eq!(p.scopes(&map(json!({"scope": "b a b"}))), ["a", "b"]);
        assert_eq!(p.scopes(&map(json!({"scopes": ["x"]}))), ["x"]);
        assert_eq!(
            p.scopes(&map(json!({"scope": "s", "scopes": ["x"]}))),
            ["s"]
        );
        assert!(p.scopes(&map(json!({"scope": 5}))).is_empty());
        assert_eq!(p.roles(&map(json!({"roles": "admin"}))), ["admin"]);
        assert_eq!(p.subject(&map(json!({"sub": ["no"]}))), None);
    }
}
