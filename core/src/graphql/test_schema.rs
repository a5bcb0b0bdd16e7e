//! The schema shared by the unit tests of this module.

use super::{Prepared, Schema, SubscribeRequest, prepare};

pub(crate) const SDL: &str = r#"
scalar JSON
enum Status { DRAFT PAID SHIPPED }
interface Node { id: ID! }
type Order implements Node {
  id: ID!
  status: Status
  total: Float
  count: Int
  note: String
  paid: Boolean
  lines: [Line!]
  tags: [String]
  customer: Customer!
  meta: JSON
}
type Line { sku: String!, qty: Int! }
type Customer implements Node { id: ID!, name: String! }
type Refund implements Node { id: ID!, amount: Float! }
union Event = Order | Refund
input Range { from: Int = 0, to: Int }
type Query { ok: Boolean }
type Subscription {
  orderUpdated(id: ID!): Order @channel(key: "orders.{id}")
  orderStrict(id: ID!): Order! @channel(key: "orders.{id}")
  node(id: ID!): Node @channel(key: "nodes.{id}")
  event(tenant: String! = "acme", kind: Status, range: Range): Event @channel(key: "events.{tenant}")
  count(id: ID!): Int! @channel(key: "count.{id}")
}
"#;

pub(crate) fn schema() -> Schema {
    Schema::parse(SDL, "test.graphql").expect("test schema is valid")
}

pub(crate) fn request(query: &str, variables: serde_json::Value) -> SubscribeRequest {
    SubscribeRequest {
        query: query.to_owned(),
        operation_name: None,
        variables: match variables {
            serde_json::Value::Object(map) => Some(map),
            _ => None,
        },
        extensions: None,
    }
}

pub(crate) fn prepared(query: &str, variables: serde_json::Value) -> Prepared {
    match prepare(&schema(), &request(query, variables)) {
        Ok(prepared) => prepared,
        Err(errors) => panic!("prepare failed: {errors:?}"),
    }
}
