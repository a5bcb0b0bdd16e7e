//! `graphql-transport-ws` messages: parsing what clients send, writing what the
//! server sends.
//!
//! Validation follows the `graphql-ws` library: every message is a JSON object with a
//! string `type`; `payload` of `connection_init`, `ping` and `pong` is an object, `null`
//! or absent; `subscribe` and `complete` carry a non-empty string `id`; `subscribe`
//! carries `{query, operationName?, variables?, extensions?}`. Anything else, and any
//! message only a server may send, is invalid (close 4400).

use fanout_core::graphql::{GraphQLError, SubscribeRequest};
use serde::Serialize;
use serde_json::{Map, Value};

/// A message a client may send.
#[derive(Debug, Clone)]
pub enum ClientMessage {
    /// `connection_init`, with its optional payload.
    ConnectionInit {
        /// Connection parameters (the token lives here).
        payload: Option<Map<String, Value>>,
    },
    /// `ping`; answered with `pong` carrying the same payload.
    Ping {
        /// Optional payload, echoed back.
        payload: Option<Map<String, Value>>,
    },
    /// `pong`, solicited or not.
    Pong,
    /// `subscribe`: start an operation.
    Subscribe {
        /// Client-chosen operation id.
        id: String,
        /// The GraphQL request.
        payload: SubscribeRequest,
    },
    /// `complete`: stop an operation.
    Complete {
        /// Id of the operation to stop.
        id: String,
    },
}

/// Why a client message is invalid; the text becomes the 4400 close reason and never
/// contains client input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidMessage(pub &'static str);

impl ClientMessage {
    /// Parses one text frame.
    pub fn parse(text: &str) -> Result<Self, InvalidMessage> {
        let Ok(Value::Object(mut msg)) = serde_json::from_str::<Value>(text) else {
            return Err(InvalidMessage("Message must be a JSON object"));
        };
        let kind = match msg.get("type") {
            None => return Err(InvalidMessage("Message is missing the 'type' property")),
            Some(Value::String(kind)) => kind.clone(),
            Some(_) => return Err(InvalidMessage("Message 'type' property must be a string")),
        };
        match kind.as_str() {
            "connection_init" => Ok(Self::ConnectionInit {
                payload: optional_object(msg.remove("payload"))?,
            }),
            "ping" => Ok(Self::Ping {
                payload: optional_object(msg.remove("payload"))?,
            }),
            "pong" => {
                optional_object(msg.remove("payload"))?;
                Ok(Self::Pong)
            }
            "subscribe" => {
                let id = required_id(msg.remove("id"))?;
                let payload = match msg.remove("payload") {
                    Some(payload @ Value::Object(_)) => serde_json::from_value(payload)
                        .map_err(|_| InvalidMessage("Invalid 'subscribe' payload"))?,
                    _ => return Err(InvalidMessage("'subscribe' payload must be an object")),
                };
                Ok(Self::Subscribe { id, payload })
            }
            "complete" => Ok(Self::Complete {
                id: required_id(msg.remove("id"))?,
            }),
            "next" => Err(InvalidMessage("Unexpected message of type next received")),
            "error" => Err(InvalidMessage("Unexpected message of type error received")),
            "connection_ack" => Err(InvalidMessage(
                "Unexpected message of type connection_ack received",
            )),
            _ => Err(InvalidMessage("Invalid message 'type' property")),
        }
    }
}

fn optional_object(value: Option<Value>) -> Result<Option<Map<String, Value>>, InvalidMessage> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(InvalidMessage(
            "Message payload must be an object, null or missing",
        )),
    }
}

fn required_id(value: Option<Value>) -> Result<String, InvalidMessage> {
    match value {
        Some(Value::String(id)) if !id.is_empty() => Ok(id),
        Some(Value::String(_)) => Err(InvalidMessage("Message 'id' property must not be empty")),
        Some(_) => Err(InvalidMessage("Message 'id' property must be a string")),
        None => Err(InvalidMessage("Message is missing the 'id' property")),
    }
}

/// `{"type":"connection_ack"}`.
pub const CONNECTION_ACK: &str = r#"{"type":"connection_ack"}"#;

/// `{"type":"ping"}`, the server's keepalive.
pub const PING: &str = r#"{"type":"ping"}"#;

/// `pong`, echoing the payload of the client's `ping`.
pub fn pong(payload: Option<&Map<String, Value>>) -> String {
    #[derive(Serialize)]
    struct Pong<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        payload: Option<&'a Map<String, Value>>,
    }
    serde_json::to_string(&Pong {
        kind: "pong",
        payload,
    })
    .unwrap_or_else(|_| r#"{"type":"pong"}"#.to_owned())
}

/// `error` for operation `id`.
pub fn error(id: &str, errors: &[GraphQLError]) -> String {
    #[derive(Serialize)]
    struct Error<'a> {
        id: &'a str,
        #[serde(rename = "type")]
        kind: &'static str,
        payload: &'a [GraphQLError],
    }
    serde_json::to_string(&Error {
        id,
        kind: "error",
        payload: errors,
    })
    .unwrap_or_else(|_| {
        format!(
            r#"{{"id":{},"type":"error","payload":[{{"message":"internal error"}}]}}"#,
            json_string(id)
        )
    })
}

/// `complete` for operation `id`.
pub fn complete(id: &str) -> String {
    format!(r#"{{"id":{},"type":"complete"}}"#, json_string(id))
}

/// The part of a `next` frame before its payload: `{"id":"<id>","type":"next","payload":`.
/// Built once per subscription so a delivery only appends the shared payload.
pub fn next_prefix(id: &str) -> Box<str> {
    format!(r#"{{"id":{},"type":"next","payload":"#, json_string(id)).into_boxed_str()
}

/// The text of a `next` frame, in parts: the subscription's prefix (see
/// [`next_prefix`]), the shape's rendered payload, and the closing brace.
pub fn next_parts<'a>(prefix: &'a str, payload: &'a [u8]) -> [&'a [u8]; 3] {
    [prefix.as_bytes(), payload, b"}"]
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(text: &str) -> &'static str {
        match ClientMessage::parse(text) {
            Err(InvalidMessage(why)) => why,
            Ok(msg) => panic!("{text} parsed as {msg:?}"),
        }
    }

    #[test]
    fn parses_every_client_message() {
        assert!(matches!(
            ClientMessage::parse(r#"{"type":"connection_init"}"#),
            Ok(ClientMessage::ConnectionInit { payload: None })
        ));
        assert!(matches!(
            ClientMessage::parse(r#"{"type":"connection_init","payload":null}"#),
            Ok(ClientMessage::ConnectionInit { payload: None })
        ));
        let Ok(ClientMessage::ConnectionInit { payload: Some(p) }) =
            ClientMessage::parse(r#"{"type":"connection_init","payload":{"token":"t"}}"#)
        else {
            panic!("init with payload");
        };
        assert_eq!(p["token"], "t");
        assert!(matches!(
            ClientMessage::parse(r#"{"type":"ping","payload":{"a":1}}"#),
            Ok(ClientMessage::Ping { payload: Some(_) })
        ));
        assert!(matches!(
            ClientMessage::parse(r#"{"type":"pong"}"#),
            Ok(ClientMessage::Pong)
        ));
        let Ok(ClientMessage::Subscribe { id, payload }) = ClientMessage::parse(
            r#"{"id":"1","type":"subscribe","payload":{"query":"subscription { a }","operationName":null,"variables":{"x":1},"extensions":null}}"#,
        ) else {
            panic!("subscribe");
        };
        assert_eq!(id, "1");
        assert_eq!(payload.query, "subscription { a }");
        assert_eq!(payload.operation_name, None);
        assert_eq!(
            payload.variables.as_ref().map(|v| v["x"].clone()),
            Some(1.into())
        );
        assert!(matches!(
            ClientMessage::parse(r#"{"id":"1","type":"complete"}"#),
            Ok(ClientMessage::Complete { id }) if id == "1"
        ));
    }

    #[test]
    fn rejects_malformed_messages() {
        assert_eq!(invalid("not json"), "Message must be a JSON object");
        assert_eq!(invalid("[1]"), "Message must be a JSON object");
        assert_eq!(invalid("{}"), "Message is missing the 'type' property");
        assert_eq!(
            invalid(r#"{"type":1}"#),
            "Message 'type' property must be a string"
        );
        assert_eq!(
            invalid(r#"{"type":"nope"}"#),
            "Invalid message 'type' property"
        );
        invalid(r#"{"type":"connection_init","payload":"x"}"#);
        invalid(r#"{"type":"ping","payload":[1]}"#);
        invalid(r#"{"type":"complete"}"#);
        invalid(r#"{"type":"complete","id":""}"#);
        invalid(r#"{"type":"complete","id":7}"#);
        invalid(r#"{"type":"subscribe","payload":{"query":"x"}}"#);
        invalid(r#"{"id":"1","type":"subscribe"}"#);
        invalid(r#"{"id":"1","type":"subscribe","payload":{"query":1}}"#);
        invalid(r#"{"id":"1","type":"subscribe","payload":{"query":"x","variables":[1]}}"#);
    }

    #[test]
    fn rejects_messages_only_servers_send() {
        for kind in ["next", "error", "connection_ack"] {
            let text = format!(r#"{{"id":"1","type":"{kind}","payload":{{}}}}"#);
            assert!(invalid(&text).starts_with("Unexpected message of type"));
        }
    }

    #[test]
    fn server_messages_are_valid_json() {
        let prefix = next_prefix("a\"b");
        let frame = next_parts(&prefix, br#"{"data":{"x":1}}"#).concat();
        let frame = String::from_utf8(frame).expect("utf-8");
        let v: Value = serde_json::from_str(&frame).expect("json");
        assert_eq!(v["id"], "a\"b");
        assert_eq!(v["type"], "next");
        assert_eq!(v["payload"]["data"]["x"], 1);

        let e: Value =
            serde_json::from_str(&error("7", &[GraphQLError::new("bad").with_code("X")]))
                .expect("json");
        assert_eq!(e["type"], "error");
        assert_eq!(e["payload"][0]["message"], "bad");
        assert_eq!(e["payload"][0]["extensions"]["code"], "X");

        let c: Value = serde_json::from_str(&complete("7")).expect("json");
        assert_eq!(c, serde_json::json!({"id":"7","type":"complete"}));
        assert_eq!(pong(None), r#"{"type":"pong"}"#);
        let mut p = Map::new();
        p.insert("k".into(), 1.into());
        assert_eq!(pong(Some(&p)), r#"{"type":"pong","payload":{"k":1}}"#);
    }
}
