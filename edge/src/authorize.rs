//! The `@auth` check at subscribe time.
//!
//! A subscriber needs at least one of the rule's roles (when it lists any) and every one
//! of its scopes. A refusal names only the requirement that is missing.

use fanout_core::graphql::{GraphQLError, SubscriptionField};
use fanout_core::security::SecurityContext;

/// `extensions.code` of a refused subscription.
pub const FORBIDDEN: &str = "FORBIDDEN";

/// Checks `field`'s `@auth` rule against `security`.
pub fn authorize(
    field: &SubscriptionField,
    security: &SecurityContext,
) -> Result<(), GraphQLError> {
    let Some(rule) = &field.auth else {
        return Ok(());
    };
    if !rule.roles.is_empty() && !rule.roles.iter().any(|r| security.roles.contains(r)) {
        return Err(GraphQLError::new(format!(
            "forbidden: subscription to {} requires role one of [{}]",
            field.name,
            rule.roles.join(", ")
        ))
        .with_code(FORBIDDEN));
    }
    if let Some(scope) = rule.scopes.iter().find(|s| !security.scopes.contains(s)) {
        return Err(GraphQLError::new(format!(
            "forbidden: subscription to {} requires scope {scope}",
            field.name
        ))
        .with_code(FORBIDDEN));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fanout_core::graphql::{AuthRule, ChannelKey};

    fn field(roles: &[&str], scopes: &[&str]) -> SubscriptionField {
        SubscriptionField {
            name: "orderUpdated".into(),
            channel: ChannelKey::parse("orders", &[]).expect("key"),
            auth: Some(AuthRule {
                roles: roles.iter().map(|s| (*s).to_owned()).collect(),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            }),
            filter: None,
            user_independent: false,
            line: 1,
        }
    }

    fn ctx(roles: &[&str], scopes: &[&str]) -> SecurityContext {
        SecurityContext {
            roles: roles.iter().map(|s| (*s).to_owned()).collect(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            ..SecurityContext::default()
        }
    }

    #[test]
    fn one_role_and_all_scopes_are_needed() {
        let f = field(&["customer", "support"], &["orders:read"]);
        assert!(authorize(&f, &ctx(&["support"], &["orders:read", "x"])).is_ok());

        let e = authorize(&f, &ctx(&["guest"], &["orders:read"])).expect_err("role");
        assert_eq!(
            e.message,
            "forbidden: subscription to orderUpdated requires role one of [customer, support]"
        );
        assert_eq!(
            e.extensions.as_ref().map(|x| x["code"].clone()),
            Some("FORBIDDEN".into())
        );

        let e = authorize(&f, &ctx(&["customer"], &[])).expect_err("scope");
        assert_eq!(
            e.message,
            "forbidden: subscription to orderUpdated requires scope orders:read"
        );
    }

    #[test]
    fn fields_without_rule_or_roles_are_open_accordingly() {
        let mut f = field(&[], &[]);
        assert!(authorize(&f, &ctx(&[], &[])).is_ok());
        f.auth = None;
        assert!(authorize(&f, &SecurityContext::anonymous()).is_ok());
    }
}
