//! Projecting a resolved JSON value onto a selection set.
//!
//! A [`SelectionPlan`] is compiled once per subscription (see [`super::selection`]):
//! fragments are resolved against the schema, fields merged, `@skip`/`@include` decided.
//! [`SelectionPlan::project`] then runs per event and writes the `data` JSON text
//! directly, in selection order, following the GraphQL spec's value completion and
//! field error handling: a type mismatch or a null in a non-null position is a field
//! error, and the null propagates to the nearest nullable parent.

use std::fmt::Write as _;

use serde_json::Value;

use super::{GraphQLError, Location, PathSegment};

/// A compiled selection set for one subscription root field: aliases, fragments resolved
/// against the schema, `@skip`/`@include` already decided from the variables.
#[derive(Debug, Clone, Default)]
pub struct SelectionPlan {
    root: Option<RootPlan>,
}

/// The root field of the subscription.
#[derive(Debug, Clone)]
struct RootPlan {
    /// Name of the subscription root type, for error messages.
    parent_type: Box<str>,
    /// Where the root field is in the document.
    location: Option<Location>,
    field: FieldPlan,
}

/// One field of a selection set after merging.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldPlan {
    /// Response key (alias or name).
    pub(crate) key: Box<str>,
    /// `"<key>":`, escaped once at compile time.
    pub(crate) key_json: Box<str>,
    /// Field name: the key of the value in the resolved object.
    pub(crate) name: Box<str>,
    /// How to complete the value.
    pub(crate) kind: FieldKind,
}

/// What a field's value is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldKind {
    /// `__typename`: the concrete type's name.
    Typename,
    /// A schema field of the given type.
    Value(TypePlan),
}

/// The compiled output type of a field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TypePlan {
    /// `T!`.
    NonNull(Box<TypePlan>),
    /// `[T]`.
    List(Box<TypePlan>),
    /// A built-in or custom scalar.
    Scalar(ScalarKind),
    /// An enum; its value names, sorted.
    Enum(Box<[Box<str>]>),
    /// An object type with its merged fields.
    Object(ObjectPlan),
    /// An interface or union: one field list per possible type.
    Abstract(AbstractPlan),
}

/// How a scalar value is checked and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScalarKind {
    /// 32-bit signed integer.
    Int,
    /// Any JSON number.
    Float,
    /// A JSON string.
    String,
    /// A JSON boolean.
    Boolean,
    /// A string, or an integer written as a string.
    Id,
    /// Any JSON, passed through.
    Custom,
}

/// A concrete object type and its fields.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ObjectPlan {
    /// The type's name.
    pub(crate) type_name: Box<str>,
    /// The type's name as a JSON string.
    pub(crate) type_name_json: Box<str>,
    /// Merged fields in selection order.
    pub(crate) fields: Vec<FieldPlan>,
}

/// An interface or union: the value's `__typename` picks the branch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AbstractPlan {
    /// The abstract type's name, for error messages.
    pub(crate) type_name: Box<str>,
    /// One plan per possible type, sorted by type name.
    pub(crate) branches: Vec<ObjectPlan>,
}

/// The result of projecting one value.
#[derive(Debug, Clone, PartialEq)]
pub struct Projected {
    /// Serialized `data` object (`{"<responseKey>": ...}`), or `null` when a non-null
    /// violation propagated to the root. Fields appear in selection order.
    pub data: String,
    /// Field errors (non-null violations, type mismatches) with paths.
    pub errors: Vec<GraphQLError>,
}

/// The value at this position is null because of a field error, and the position is
/// non-null: the parent must become null in turn.
struct Propagate;

/// A response path as a linked list on the stack: no allocation unless an error needs it.
#[derive(Clone, Copy)]
struct Path<'a> {
    segment: Segment<'a>,
    parent: Option<&'a Path<'a>>,
}

#[derive(Clone, Copy)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

impl Path<'_> {
    fn segments(&self) -> Vec<PathSegment> {
        let mut segments = Vec::new();
        let mut at = Some(self);
        while let Some(path) = at {
            segments.push(match path.segment {
                Segment::Key(key) => PathSegment::Key(key.to_owned()),
                Segment::Index(index) => PathSegment::Index(index),
            });
            at = path.parent;
        }
        segments.reverse();
        segments
    }
}

/// The field being completed, for error messages (`Order.id`).
#[derive(Clone, Copy)]
struct FieldRef<'a> {
    parent_type: &'a str,
    name: &'a str,
}

/// Writes `s` as a JSON string literal.
pub(crate) fn json_string(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

impl SelectionPlan {
    /// A plan for the root field `field` of `parent_type`.
    pub(crate) fn new(parent_type: &str, location: Option<Location>, field: FieldPlan) -> Self {
        Self {
            root: Some(RootPlan {
                parent_type: parent_type.into(),
                location,
                field,
            }),
        }
    }

    /// Projects `value` (the root field's resolved value) onto the selection set.
    pub fn project(&self, value: &serde_json::Value) -> Projected {
        let Some(root) = &self.root else {
            return Projected {
                data: "null".into(),
                errors: Vec::new(),
            };
        };
        let mut out = String::with_capacity(128);
        let mut errors = Vec::new();
        out.push('{');
        out.push_str(&root.field.key_json);
        let path = Path {
            segment: Segment::Key(&root.field.key),
            parent: None,
        };
        let field = FieldRef {
            parent_type: &root.parent_type,
            name: &root.field.name,
        };
        let result = match &root.field.kind {
            FieldKind::Typename => {
                out.push_str(&json_string(&root.parent_type));
                Ok(())
            }
            FieldKind::Value(ty) => complete(ty, Some(value), &mut out, &path, field, &mut errors),
        };
        match result {
            Ok(()) => out.push('}'),
            Err(Propagate) => {
                out.clear();
                out.push_str("null");
            }
        }
        Projected { data: out, errors }
    }

    /// The response for a root field whose resolver failed with `error`: the field is
    /// null (propagated if it is non-null) and `error` carries the root path.
    pub fn project_field_error(&self, mut error: GraphQLError) -> Projected {
        let Some(root) = &self.root else {
            return Projected {
                data: "null".into(),
                errors: vec![error],
            };
        };
        error.path = vec![PathSegment::Key(root.field.key.to_string())];
        if error.locations.is_empty() {
            error.locations.extend(root.location);
        }
        let non_null = matches!(root.field.kind, FieldKind::Value(TypePlan::NonNull(_)));
        let data = if non_null {
            "null".to_owned()
        } else {
            format!("{{{}null}}", root.field.key_json)
        };
        Projected {
            data,
            errors: vec![error],
        }
    }
}

fn field_error(errors: &mut Vec<GraphQLError>, path: &Path<'_>, message: String) {
    let mut error = GraphQLError::new(message);
    error.path = path.segments();
    errors.push(error);
}

/// Completes `value` (absent counts as null) of type `ty` at `path`.
fn complete(
    ty: &TypePlan,
    value: Option<&Value>,
    out: &mut String,
    path: &Path<'_>,
    field: FieldRef<'_>,
    errors: &mut Vec<GraphQLError>,
) -> Result<(), Propagate> {
    let value = value.filter(|v| !v.is_null());
    match (ty, value) {
        (TypePlan::NonNull(_), None) => {
            field_error(
                errors,
                path,
                format!(
                    "Cannot return null for non-nullable field {}.{}",
                    field.parent_type, field.name
                ),
            );
            Err(Propagate)
        }
        (TypePlan::NonNull(inner), Some(value)) => {
            complete_non_null(inner, value, out, path, field, errors)
        }
        (_, None) => {
            out.push_str("null");
            Ok(())
        }
        (_, Some(value)) => {
            let start = out.len();
            if complete_non_null(ty, value, out, path, field, errors).is_err() {
                out.truncate(start);
                out.push_str("null");
            }
            Ok(())
        }
    }
}

/// Completes a value that is not null, of a type that is not `NonNull`.
fn complete_non_null(
    ty: &TypePlan,
    value: &Value,
    out: &mut String,
    path: &Path<'_>,
    field: FieldRef<'_>,
    errors: &mut Vec<GraphQLError>,
) -> Result<(), Propagate> {
    match ty {
        TypePlan::NonNull(_) => complete(ty, Some(value), out, path, field, errors),
        TypePlan::List(item) => {
            let Value::Array(items) = value else {
                field_error(
                    errors,
                    path,
                    format!(
                        "Expected a list for field {}.{}, got {}",
                        field.parent_type,
                        field.name,
                        kind_of(value)
                    ),
                );
                return Err(Propagate);
            };
            out.push('[');
            for (index, value) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                let path = Path {
                    segment: Segment::Index(index),
                    parent: Some(path),
                };
                complete(item, Some(value), out, &path, field, errors)?;
            }
            out.push(']');
            Ok(())
        }
        TypePlan::Scalar(kind) => {
            if write_scalar(*kind, value, out) {
                Ok(())
            } else {
                field_error(
                    errors,
                    path,
                    format!(
                        "{} cannot represent {} (field {}.{})",
                        scalar_name(*kind),
                        kind_of(value),
                        field.parent_type,
                        field.name
                    ),
                );
                Err(Propagate)
            }
        }
        TypePlan::Enum(names) => match value {
            Value::String(s) if names.binary_search_by(|n| n.as_ref().cmp(s)).is_ok() => {
                let _ = write!(out, "{value}");
                Ok(())
            }
            _ => {
                field_error(
                    errors,
                    path,
                    format!(
                        "Enum value expected for field {}.{}, got {}",
                        field.parent_type,
                        field.name,
                        match value {
                            Value::String(_) => "a string that names no value of the enum",
                            other => kind_of(other),
                        }
                    ),
                );
                Err(Propagate)
            }
        },
        TypePlan::Object(object) => {
            let Value::Object(map) = value else {
                field_error(
                    errors,
                    path,
                    format!(
                        "Expected an object for field {}.{}, got {}",
                        field.parent_type,
                        field.name,
                        kind_of(value)
                    ),
                );
                return Err(Propagate);
            };
            complete_object(object, map, out, path, errors)
        }
        TypePlan::Abstract(plan) => {
            let Value::Object(map) = value else {
                field_error(
                    errors,
                    path,
                    format!(
                        "Expected an object for field {}.{}, got {}",
                        field.parent_type,
                        field.name,
                        kind_of(value)
                    ),
                );
                return Err(Propagate);
            };
            let branch = match map.get("__typename") {
                Some(Value::String(name)) => plan
                    .branches
                    .binary_search_by(|b| b.type_name.as_ref().cmp(name))
                    .ok()
                    .map(|i| &plan.branches[i]),
                _ => None,
            };
            let Some(branch) = branch else {
                field_error(
                    errors,
                    path,
                    format!(
                        "Abstract type {} must resolve to an object type at runtime for field \
                         {}.{}: the value needs a `__typename` naming one of its possible types",
                        plan.type_name, field.parent_type, field.name
                    ),
                );
                return Err(Propagate);
            };
            complete_object(branch, map, out, path, errors)
        }
    }
}

fn complete_object(
    object: &ObjectPlan,
    map: &serde_json::Map<String, Value>,
    out: &mut String,
    path: &Path<'_>,
    errors: &mut Vec<GraphQLError>,
) -> Result<(), Propagate> {
    out.push('{');
    for (index, field) in object.fields.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(&field.key_json);
        match &field.kind {
            FieldKind::Typename => out.push_str(&object.type_name_json),
            FieldKind::Value(ty) => {
                let path = Path {
                    segment: Segment::Key(&field.key),
                    parent: Some(path),
                };
                let field_ref = FieldRef {
                    parent_type: &object.type_name,
                    name: &field.name,
                };
                complete(
                    ty,
                    map.get(field.name.as_ref()),
                    out,
                    &path,
                    field_ref,
                    errors,
                )?;
            }
        }
    }
    out.push('}');
    Ok(())
}

/// Writes `value` as scalar `kind`; false when it cannot represent the value.
fn write_scalar(kind: ScalarKind, value: &Value, out: &mut String) -> bool {
    match (kind, value) {
        (ScalarKind::Int, Value::Number(n)) => {
            let int = n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() <= f64::from(i32::MAX) + 1.0)
                    .map(|f| f as i64)
            });
            match int.and_then(|i| i32::try_from(i).ok()) {
                Some(i) => {
                    let _ = write!(out, "{i}");
                    true
                }
                None => false,
            }
        }
        (ScalarKind::Float, Value::Number(n)) => {
            let _ = write!(out, "{n}");
            true
        }
        (ScalarKind::String | ScalarKind::Id, Value::String(_))
        | (ScalarKind::Boolean, Value::Bool(_))
        | (ScalarKind::Custom, _) => {
            let _ = write!(out, "{value}");
            true
        }
        (ScalarKind::Id, Value::Number(n)) if n.is_i64() || n.is_u64() => {
            let _ = write!(out, "\"{n}\"");
            true
        }
        _ => false,
    }
}

fn scalar_name(kind: ScalarKind) -> &'static str {
    match kind {
        ScalarKind::Int => "Int",
        ScalarKind::Float => "Float",
        ScalarKind::String => "String",
        ScalarKind::Boolean => "Boolean",
        ScalarKind::Id => "ID",
        ScalarKind::Custom => "custom scalar",
    }
}

/// A short description of a JSON value's kind, for error messages (never the value
/// itself).
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a non-integer number",
        Value::Number(n) if n.as_i64().is_none_or(|i| i32::try_from(i).is_err()) => {
            "an integer outside the 32-bit range"
        }
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
#[path = "projection_tests.rs"]
mod tests;
