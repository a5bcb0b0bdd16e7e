//! Where a client's token is found: the `connection_init` (or refresh `ping`) payload,
//! or the `Authorization` header of the WebSocket upgrade request.

use serde_json::{Map, Value};

/// The default payload field that carries the token.
pub const DEFAULT_TOKEN_FIELD: &str = "token";

/// The token in a `connection_init` or `ping` payload: the string field `field`
/// (default [`DEFAULT_TOKEN_FIELD`]), else an `Authorization`/`authorization` value of
/// the form `Bearer <token>`.
pub fn token_from_payload(payload: Option<&Map<String, Value>>, field: &str) -> Option<String> {
    let payload = payload?;
    if let Some(Value::String(t)) = payload.get(field) {
        return Some(t.trim().to_owned());
    }
    ["Authorization", "authorization"]
        .iter()
        .find_map(|k| payload.get(*k).and_then(Value::as_str))
        .and_then(bearer)
}

/// The token in `connection_init.payload` under the default field name.
pub fn token_from_init_payload(payload: Option<&Map<String, Value>>) -> Option<String> {
    token_from_payload(payload, DEFAULT_TOKEN_FIELD)
}

/// The token of an `Authorization: Bearer <token>` header value (scheme matched
/// case-insensitively); `None` for other schemes or an empty token.
pub fn bearer(value: &str) -> Option<String> {
    let value = value.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
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
    fn token_is_found_in_the_payload() {
        let p = map(json!({"Authorization": "Bearer abc"}));
        assert_eq!(token_from_init_payload(Some(&p)).as_deref(), Some("abc"));
        let p = map(json!({"authorization": "bearer  abc "}));
        assert_eq!(token_from_init_payload(Some(&p)).as_deref(), Some("abc"));
        let p = map(json!({"token": "xyz", "Authorization": "Bearer abc"}));
        assert_eq!(token_from_init_payload(Some(&p)).as_deref(), Some("xyz"));
        let p = map(json!({"accessToken": "xyz"}));
        assert_eq!(
            token_from_payload(Some(&p), "accessToken").as_deref(),
            Some("xyz")
        );
        assert_eq!(token_from_init_payload(Some(&p)), None);
        assert_eq!(token_from_init_payload(None), None);
    }

    #[test]
    fn only_bearer_authorization_counts() {
        assert_eq!(bearer("Basic dXNlcjpwdw==").as_deref(), None);
        assert_eq!(bearer("Bearer ").as_deref(), None);
        assert_eq!(bearer("Bearer").as_deref(), None);
        assert_eq!(bearer("BEARER t").as_deref(), Some("t"));
    }
}
