//! `@channel(key: "orders.{id}")` templates.
//!
//! A template is literal text with `{argument}` placeholders. Channel names travel as
//! NATS subject tokens, so both the literal text and every rendered value are held to a
//! small alphabet: a client must never be able to subscribe to a wildcard (`*`, `>`) or
//! to reach another channel by putting a `.` into an argument.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// A parsed channel key template: literal text with `{argument}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelKey {
    template: String,
    segments: Vec<Segment>,
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Text copied as is.
    Literal(String),
    /// The value of the named argument.
    Argument(String),
}

/// Why a template could not be parsed or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelKeyError {
    /// The template names an argument the field does not have.
    #[error(
        "channel key `{template}` names argument `{argument}`, which the field does not declare"
    )]
    UnknownArgument {
        /// The template text.
        template: String,
        /// The missing argument.
        argument: String,
    },
    /// The template is not well formed (unbalanced braces, empty placeholder, ...).
    #[error("channel key `{template}` is malformed: {reason}")]
    Malformed {
        /// The template text.
        template: String,
        /// What is wrong.
        reason: String,
    },
    /// An argument value cannot be part of a channel name (object, list, null, or a
    /// string with characters not allowed in channel names).
    #[error("argument `{argument}` cannot form a channel name: {reason}")]
    BadValue {
        /// The argument.
        argument: String,
        /// What is wrong.
        reason: String,
    },
}

/// Characters an argument value may contain: no `.` (token separator), no `*`/`>`
/// (NATS wildcards), no whitespace or control characters.
fn is_value_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '@' | '=' | '+')
}

/// Characters the literal text of a template may contain: value characters and `.`.
fn is_literal_char(c: char) -> bool {
    is_value_char(c) || c == '.'
}

impl ChannelKey {
    /// Parses `template`, checking every placeholder against `arguments`.
    pub fn parse(template: &str, arguments: &[&str]) -> Result<Self, ChannelKeyError> {
        let malformed = |reason: String| ChannelKeyError::Malformed {
            template: template.to_owned(),
            reason,
        };
        if template.is_empty() {
            return Err(malformed("the key is empty".into()));
        }
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut chars = template.char_indices();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for (_, c) in chars.by_ref() {
                        match c {
                            '}' => {
                                closed = true;
                                break;
                            }
                            '{' => {
                                return Err(malformed(format!(
                                    "`{{` at byte {at} opens a placeholder inside a placeholder"
                                )));
                            }
                            c => name.push(c),
                        }
                    }
                    if !closed {
                        return Err(malformed(format!("`{{` at byte {at} is never closed")));
                    }
                    if name.trim().is_empty() {
                        return Err(malformed(format!("empty placeholder at byte {at}")));
                    }
                    if !arguments.contains(&name.as_str()) {
                        return Err(ChannelKeyError::UnknownArgument {
                            template: template.to_owned(),
                            argument: name,
                        });
                    }
                    if !literal.is_empty() {
                        segments.push(Segment::Literal(std::mem::take(&mut literal)));
                    }
                    segments.push(Segment::Argument(name));
                }
                '}' => {
                    return Err(malformed(format!("`}}` at byte {at} has no matching `{{`")));
                }
                c if is_literal_char(c) => literal.push(c),
                c => {
                    return Err(malformed(format!(
                        "character {c:?} is not allowed in channel names \
                         (allowed: letters, digits and `_-:@=+.`)"
                    )));
                }
            }
        }
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        check_tokens(template).map_err(malformed)?;
        Ok(Self {
            template: template.to_owned(),
            segments,
        })
    }

    /// The template text as written in the schema.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// Names of the arguments the template uses, in order of appearance.
    pub fn arguments(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Argument(name) => Some(name.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// Renders the channel name from coerced argument values.
    pub fn render(&self, args: &Map<String, Value>) -> Result<String, ChannelKeyError> {
        let mut out = String::with_capacity(self.template.len() + 16);
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Argument(name) => render_value(name, args.get(name), &mut out)?,
            }
        }
        Ok(out)
    }
}

/// Rejects templates whose dot-separated tokens would be empty (`a..b`, `.a`, `a.`).
fn check_tokens(template: &str) -> Result<(), String> {
    if template.split('.').any(str::is_empty) {
        return Err("a `.`-separated token is empty".into());
    }
    Ok(())
}

fn render_value(
    name: &str,
    value: Option<&Value>,
    out: &mut String,
) -> Result<(), ChannelKeyError> {
    let bad = |reason: &str| ChannelKeyError::BadValue {
        argument: name.to_owned(),
        reason: reason.to_owned(),
    };
    match value {
        None | Some(Value::Null) => Err(bad("the value is null")),
        Some(Value::Object(_)) => Err(bad("objects cannot be part of a channel name")),
        Some(Value::Array(_)) => Err(bad("lists cannot be part of a channel name")),
        Some(Value::Bool(b)) => {
            out.push_str(if *b { "true" } else { "false" });
            Ok(())
        }
        Some(Value::Number(n)) => {
            // JSON number text: digits, `-`, `+`, `.`, `e`; never a wildcard.
            let _ = write!(out, "{n}");
            Ok(())
        }
        Some(Value::String(s)) => {
            if s.is_empty() {
                return Err(bad("the value is an empty string"));
            }
            if let Some(c) = s.chars().find(|c| !is_value_char(*c)) {
                return Err(bad(&format!(
                    "character {c:?} is not allowed (allowed: letters, digits and `_-:@=+`)"
                )));
            }
            out.push_str(s);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn parses_literals_and_placeholders() {
        let key = ChannelKey::parse("orders.{tenant}.{id}", &["id", "tenant"]).expect("valid");
        assert_eq!(key.template(), "orders.{tenant}.{id}");
        assert_eq!(key.arguments().collect::<Vec<_>>(), ["tenant", "id"]);
        let plain = ChannelKey::parse("announcements", &[]).expect("valid");
        assert_eq!(plain.render(&Map::new()).expect("renders"), "announcements");
    }

    #[test]
    fn rejects_malformed_templates() {
        for bad in [
            "orders.{id",
            "orders.id}",
            "orders.{}",
            "orders.{ }",
            "orders.{{id}}",
            "",
            "orders..{id}",
            "orders.*",
            "orders.>",
            "orders {id}",
        ] {
            let err = ChannelKey::parse(bad, &["id"]).expect_err(bad);
            assert!(
                matches!(err, ChannelKeyError::Malformed { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn rejects_unknown_argument() {
        let err = ChannelKey::parse("orders.{orderId}", &["id"]).expect_err("unknown");
        assert_eq!(
            err,
            ChannelKeyError::UnknownArgument {
                template: "orders.{orderId}".into(),
                argument: "orderId".into()
            }
        );
    }

    #[test]
    fn renders_scalars() {
        let key = ChannelKey::parse("t.{s}.{i}.{b}", &["s", "i", "b"]).expect("valid");
        let out = key
            .render(&args(json!({"s": "a-b_c:d@e=f+g", "i": -42, "b": true})))
            .expect("renders");
        assert_eq!(out, "t.a-b_c:d@e=f+g.-42.true");
        let key = ChannelKey::parse("f.{x}", &["x"]).expect("valid");
        assert_eq!(
            key.render(&args(json!({"x": 4.5}))).expect("renders"),
            "f.4.5"
        );
    }

    #[test]
    fn rejects_bad_values() {
        let key = ChannelKey::parse("orders.{id}", &["id"]).expect("valid");
        for v in [
            json!({"id": null}),
            json!({}),
            json!({"id": {"a": 1}}),
            json!({"id": [1]}),
            json!({"id": "4.2"}),
            json!({"id": "*"}),
            json!({"id": ">"}),
            json!({"id": "a b"}),
            json!({"id": "a\n"}),
            json!({"id": ""}),
        ] {
            let err = key.render(&args(v.clone())).expect_err(&v.to_string());
            assert!(
                matches!(&err, ChannelKeyError::BadValue { argument, .. } if argument == "id"),
                "{v}: {err}"
            );
        }
    }
}
