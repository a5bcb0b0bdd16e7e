//! Compiling a validated selection set into a [`SelectionPlan`].
//!
//! This is the spec's CollectFields and field merging, done once per subscription:
//! `@skip`/`@include` are decided from the coerced variables, fragments are expanded for
//! each concrete type they can apply to, and fields with the same response key are
//! merged. Interfaces and unions get one field list per possible object type.

use apollo_compiler::Node;
use apollo_compiler::ast::{DirectiveList, Type, Value as GqlValue};
use apollo_compiler::executable::{ExecutableDocument, Field, Selection, SelectionSet};
use apollo_compiler::schema::ExtendedType;
use serde_json::{Map, Value};

use super::Schema;
use super::projection::{
    AbstractPlan, FieldKind, FieldPlan, ObjectPlan, ScalarKind, TypePlan, json_string,
};

/// Fields collected under one response key, in the order they were met.
pub(crate) type FieldGroup<'d> = (&'d str, Vec<&'d Node<Field>>);

/// Compiles selection sets against one schema, document and set of variables.
pub(crate) struct Compiler<'a> {
    pub(crate) schema: &'a Schema,
    pub(crate) document: &'a ExecutableDocument,
    pub(crate) variables: &'a Map<String, Value>,
}

impl<'a> Compiler<'a> {
    /// CollectFields: the fields of `set` that apply to `object_type`, grouped by response
    /// key, fragments expanded and `@skip`/`@include` applied.
    pub(crate) fn collect(
        &self,
        object_type: &str,
        set: &'a SelectionSet,
        groups: &mut Vec<FieldGroup<'a>>,
        visited: &mut Vec<&'a str>,
    ) {
        for selection in &set.selections {
            if !self.included(selection.directives()) {
                continue;
            }
            match selection {
                Selection::Field(field) => {
                    let key = field.response_key().as_str();
                    match groups.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, fields)) => fields.push(field),
                        None => groups.push((key, vec![field])),
                    }
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.fragment_name.as_str();
                    if visited.contains(&name) {
                        continue;
                    }
                    visited.push(name);
                    let Some(fragment) = self.document.fragments.get(name) else {
                        continue;
                    };
                    if self.applies(object_type, fragment.type_condition()) {
                        self.collect(object_type, &fragment.selection_set, groups, visited);
                    }
                }
                Selection::InlineFragment(inline) => {
                    let applies = inline
                        .type_condition
                        .as_ref()
                        .is_none_or(|condition| self.applies(object_type, condition));
                    if !applies {
                        continue;
                    }
                    self.collect(object_type, &inline.selection_set, groups, visited);
                }
            }
        }
    }

    /// DoesFragmentTypeApply.
    fn applies(&self, object_type: &str, condition: &str) -> bool {
        condition == object_type || self.schema.apollo().is_subtype(condition, object_type)
    }

    /// `@skip(if:)` and `@include(if:)`, decided from literals and coerced variables.
    fn included(&self, directives: &DirectiveList) -> bool {
        let condition = |name: &str| -> Option<bool> {
            let value = directives.get(name)?.specified_argument_by_name("if")?;
            match value.as_ref() {
                GqlValue::Boolean(b) => Some(*b),
                GqlValue::Variable(var) => self.variables.get(var.as_str())?.as_bool(),
                _ => None,
            }
        };
        condition("skip") != Some(true) && condition("include") != Some(false)
    }

    /// Compiles the fields merged under response key `key`.
    pub(crate) fn field(&self, key: &str, fields: &[&'a Node<Field>]) -> FieldPlan {
        let name = fields.first().map_or(key, |f| f.name.as_str());
        let kind = match fields.first() {
            Some(_) if name == "__typename" => FieldKind::Typename,
            Some(first) => FieldKind::Value(self.output_type(&first.definition.ty, fields)),
            None => FieldKind::Value(TypePlan::Scalar(ScalarKind::Custom)),
        };
        FieldPlan {
            key: key.into(),
            key_json: format!("{}:", json_string(key)).into(),
            name: name.into(),
            kind,
        }
    }

    fn output_type(&self, ty: &Type, fields: &[&'a Node<Field>]) -> TypePlan {
        match ty {
            Type::Named(name) => self.named_type(name, fields),
            Type::NonNullNamed(name) => TypePlan::NonNull(Box::new(self.named_type(name, fields))),
            Type::List(item) => TypePlan::List(Box::new(self.output_type(item, fields))),
            Type::NonNullList(item) => TypePlan::NonNull(Box::new(TypePlan::List(Box::new(
                self.output_type(item, fields),
            )))),
        }
    }

    fn named_type(&self, name: &str, fields: &[&'a Node<Field>]) -> TypePlan {
        match self.schema.apollo().types.get(name) {
            Some(ExtendedType::Scalar(_)) | None => TypePlan::Scalar(match name {
                "Int" => ScalarKind::Int,
                "Float" => ScalarKind::Float,
                "String" => ScalarKind::String,
                "Boolean" => ScalarKind::Boolean,
                "ID" => ScalarKind::Id,
                _ => ScalarKind::Custom,
            }),
            Some(ExtendedType::Enum(def)) => {
                let mut names: Vec<Box<str>> =
                    def.values.keys().map(|v| v.as_str().into()).collect();
                names.sort_unstable();
                TypePlan::Enum(names.into_boxed_slice())
            }
            Some(ExtendedType::Object(_)) => TypePlan::Object(self.object(name, fields)),
            Some(ExtendedType::Interface(_) | ExtendedType::Union(_)) => {
                let mut branches: Vec<ObjectPlan> = self
                    .schema
                    .possible_types(name)
                    .iter()
                    .map(|concrete| self.object(concrete, fields))
                    .collect();
                branches.sort_by(|a, b| a.type_name.cmp(&b.type_name));
                TypePlan::Abstract(AbstractPlan {
                    type_name: name.into(),
                    branches,
                })
            }
            // Input objects are not output types; validation rules them out.
            Some(ExtendedType::InputObject(_)) => TypePlan::Scalar(ScalarKind::Custom),
        }
    }

    /// CollectSubfields for `object_type` over every merged field, then compile each.
    fn object(&self, object_type: &str, fields: &[&'a Node<Field>]) -> ObjectPlan {
        let mut groups = Vec::new();
        for field in fields {
            let mut visited = Vec::new();
            self.collect(object_type, &field.selection_set, &mut groups, &mut visited);
        }
        ObjectPlan {
            type_name: object_type.into(),
            type_name_json: json_string(object_type).into(),
            fields: groups
                .iter()
                .map(|(key, group)| self.field(key, group))
                .collect(),
        }
    }
}
