use super::*;

const SDL: &str = r#"
type Query { ok: Boolean }

type Order { id: ID!, status: String }

type Subscription {
  orderUpdated(id: ID!): Order
    @channel(key: "orders.{id}")
    @auth(roles: ["customer", "support"], scopes: ["orders:read"])
  announcements: String @channel(key: "announcements", userIndependent: true)
}
"#;

fn errors(sdl: &str) -> Vec<SchemaDiagnostic> {
    match Schema::parse(sdl, "schema.graphql") {
        Ok(_) => panic!("expected errors"),
        Err(SchemaErrors(list)) => list,
    }
}

#[test]
fn reads_directives_of_subscription_fields() {
    let schema = Schema::parse(SDL, "schema.graphql").expect("valid schema");
    assert_eq!(schema.subscription_type(), "Subscription");
    let order = schema.subscription_field("orderUpdated").expect("field");
    assert_eq!(order.channel.template(), "orders.{id}");
    assert_eq!(
        order.auth,
        Some(AuthRule {
            roles: vec!["customer".into(), "support".into()],
            scopes: vec!["orders:read".into()],
        })
    );
    assert!(!order.user_independent);
    assert_eq!(order.filter, None);
    assert_eq!(order.line, 7);
    let announcements = schema.subscription_field("announcements").expect("field");
    assert!(announcements.user_independent);
    assert_eq!(announcements.auth, None);
    assert_eq!(schema.subscription_fields().count(), 2);
    let debug = format!("{schema:?}");
    assert!(debug.contains("orderUpdated"));
}

#[test]
fn accepts_declared_directives() {
    let sdl = format!(
        "directive @channel(key: String!, userIndependent: Boolean = false) on FIELD_DEFINITION\n{SDL}"
    );
    Schema::parse(&sdl, "schema.graphql").expect("valid schema");
}

#[test]
fn requires_subscription_type() {
    let list = errors("type Query { ok: Boolean }");
    assert_eq!(list.len(), 1, "{list:?}");
    assert!(list[0].message.contains("no subscription root type"));
}

#[test]
fn reports_every_problem_with_locations() {
    let sdl = "type Query { ok: Boolean }\n\
               type Subscription {\n\
               \x20 a(id: ID!): String\n\
               \x20 b(id: ID!): String @channel(key: \"b.{nope}\")\n\
               \x20 c: Unknown @channel(key: \"c\")\n\
               \x20 d(x: Int): String @channel(key: \"d.{x}\") @filter(expr: \"event.x ==\")\n\
               }\n\
               type Other { e: String @auth(roles: [\"x\"]) }\n";
    let list = errors(sdl);
    let find = |needle: &str| {
        list.iter()
            .find(|d| d.message.contains(needle))
            .unwrap_or_else(|| panic!("no diagnostic with {needle:?} in {list:?}"))
    };
    let a = find("`Subscription.a` needs `@channel");
    assert_eq!((a.line, a.column), (3, 3));
    assert_eq!(a.file, "schema.graphql");
    let b = find("nope");
    assert_eq!(b.line, 4);
    let c = find("Unknown");
    assert_eq!(c.line, 5);
    let d = find("`@filter` on `Subscription.d`: invalid CEL expression");
    assert_eq!(d.line, 6);
    assert!(d.column > 1);
    let e = find("`@auth` on `Other.e` has no effect");
    assert_eq!(e.line, 8);
    assert_eq!(list.len(), 5, "{list:?}");
    let all = SchemaErrors(list).to_string();
    assert!(all.starts_with("invalid schema (5 problem(s))"), "{all}");
}

#[test]
fn query_type_is_optional() {
    let schema = Schema::parse(
        "type Subscription { a: String @channel(key: \"a\") }",
        "schema.graphql",
    )
    .expect("valid without a query type");
    assert_eq!(schema.subscription_fields().count(), 1);
}

#[test]
fn reports_syntax_errors() {
    let list = errors("type Subscription {\n  a: String @channel(key: \"a\"\n}\n");
    assert!(!list.is_empty());
    assert!(list.iter().all(|d| d.line > 0), "{list:?}");
}

#[test]
fn compiles_filters_at_load() {
    let schema = Schema::parse(
        "type Query { ok: Boolean }\ntype Subscription {\n  a(id: ID!): String @channel(key: \"a.{id}\") @filter(expr: \"event.x == 1 && args.id == claims.sub\")\n}",
        "schema.graphql",
    )
    .expect("valid schema");
    let a = schema.subscription_field("a").expect("field");
    assert_eq!(
        a.filter.as_ref().map(|f| f.source()),
        Some("event.x == 1 && args.id == claims.sub")
    );
}

#[test]
fn bad_filters_are_load_errors_naming_the_field() {
    let list = errors(
        "type Query { ok: Boolean }\ntype Subscription {\n  a: String @channel(key: \"a\")\n  b: String @channel(key: \"b\") @filter(expr: \"evnt.x == 1\")\n  c: String @channel(key: \"c\") @filter(expr: \"event.x ==\")\n}",
    );
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0].line, 4);
    assert!(
        list[0].message.contains("`@filter` on `Subscription.b`")
            && list[0].message.contains("unknown variable `evnt`"),
        "{list:?}"
    );
    assert_eq!(list[1].line, 5);
    assert!(
        list[1]
            .message
            .contains("`@filter` on `Subscription.c`: invalid CEL expression"),
        "{list:?}"
    );
}

#[test]
fn rejects_bad_auth_arguments_from_redeclared_directive() {
    let sdl = "directive @auth(roles: [Int!], scopes: [String!]) on FIELD_DEFINITION\n\
               type Query { ok: Boolean }\n\
               type Subscription { a: String @channel(key: \"a\") @auth(roles: [1]) }\n";
    let list = errors(sdl);
    assert!(
        list.iter()
            .any(|d| d.message.contains("must be a list of strings")),
        "{list:?}"
    );
}

#[test]
fn schema_is_shareable() {
    fn assert_shareable<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    assert_shareable::<Schema>();
    assert_shareable::<SubscriptionField>();
    assert_shareable::<super::super::Prepared>();
}
