//! Row filters: `@filter(expr: "...")` in the Common Expression Language (CEL).
//!
//! A filter is compiled once, when the schema loads ([`Filter::compile`]); a syntax
//! error or a variable other than `event`, `args` and `claims` is a load error. Per
//! event, the event is converted to CEL once ([`FilterScope::new`]) and each shape's
//! filter runs in a child scope that adds the shape's arguments and the security
//! context it may observe ([`Filter::evaluate`]):
//!
//! - `event`: the published JSON payload.
//! - `args`: the subscription field's coerced arguments.
//! - `claims`: the subscriber's visible security context: `sub`, `tenant`, `roles`
//!   (list), `scopes` (list) and the token's other claims. For `userIndependent` fields
//!   only `tenant`, `roles` and `scopes` are there (the same context the resolver
//!   sees), so two subscribers sharing a shape always get the same answer.
//!
//! `true` delivers; `false` skips; an error (a missing key, a type mismatch, a result
//! that is not a boolean) also skips and is reported to the caller, which counts it.
//! JSON integers become CEL `int` (`uint` only above `i64::MAX`), other numbers
//! `double`; CEL compares `int`, `uint` and `double` by value, so `event.n == 5` and
//! `event.price > 9.5` work as written. Regular expressions (`matches`) are available;
//! timestamps and durations are not.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, LazyLock};

use cel::common::ast::{EntryExpr, Expr};
use cel::objects::{Key, Map as CelMap};
use cel::parser::Expression;
use cel::{Context, Env, ExecutionError, Program, Value as CelValue};
use serde_json::{Map, Value};

use crate::security::SecurityContext;

/// The variables a filter may read.
pub const VARIABLES: [&str; 3] = ["event", "args", "claims"];

/// The standard CEL environment, built once per process.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// Why a filter did not compile or did not yield a boolean.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FilterError {
    /// The expression is not valid CEL.
    #[error("invalid CEL expression: {0}")]
    Syntax(String),
    /// The expression reads a variable other than `event`, `args` and `claims`.
    #[error("unknown variable `{0}` (a filter can read `event`, `args` and `claims`)")]
    UnknownVariable(String),
    /// Evaluation failed: a missing key, a type mismatch, an unknown function.
    #[error("evaluation failed: {0}")]
    Evaluation(#[source] ExecutionError),
    /// The expression yielded something other than a boolean.
    #[error("the filter yielded a {0}, not a bool")]
    NotBoolean(String),
    /// The CEL interpreter panicked (a bug in it); treated like an evaluation error.
    #[error("the CEL interpreter failed")]
    Panicked,
}

impl FilterError {
    /// Short label for logs and metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Syntax(_) => "syntax",
            Self::UnknownVariable(_) => "unknown_variable",
            Self::Evaluation(_) => "evaluation",
            Self::NotBoolean(_) => "not_boolean",
            Self::Panicked => "panicked",
        }
    }
}

/// A compiled `@filter` expression. Cheap to clone.
#[derive(Clone)]
pub struct Filter {
    source: Arc<str>,
    program: Arc<Program>,
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Filter").field(&self.source).finish()
    }
}

impl PartialEq for Filter {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Filter {
    /// Compiles `source`; errors are load errors of the schema.
    pub fn compile(source: &str) -> Result<Self, FilterError> {
        let program = catch_unwind(|| Program::compile(source))
            .map_err(|_| FilterError::Syntax("the CEL parser failed on this expression".into()))?
            .map_err(|e| FilterError::Syntax(describe_parse_errors(&e)))?;
        if let Some(unknown) = unknown_variable(program.expression()) {
            return Err(FilterError::UnknownVariable(unknown));
        }
        Ok(Self {
            source: source.into(),
            program: Arc::new(program),
        })
    }

    /// The expression as written in the schema.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Runs the filter for one shape: `args` are its field's arguments, `claims` the
    /// security context it may observe (already reduced by
    /// [`SecurityContext::visible_to`]).
    pub fn evaluate(
        &self,
        scope: &FilterScope,
        args: &Map<String, Value>,
        claims: &SecurityContext,
    ) -> Result<bool, FilterError> {
        let run = || {
            let mut ctx = scope.root.new_inner_scope();
            ctx.add_variable_from_value("args", object_to_cel(args));
            ctx.add_variable_from_value("claims", claims_to_cel(claims));
            self.program.execute(&ctx)
        };
        match catch_unwind(AssertUnwindSafe(run)) {
            Err(_) => Err(FilterError::Panicked),
            Ok(Err(e)) => Err(FilterError::Evaluation(e)),
            Ok(Ok(CelValue::Bool(b))) => Ok(b),
            Ok(Ok(other)) => Err(FilterError::NotBoolean(other.type_of().to_string())),
        }
    }
}

/// One event converted to CEL, shared by the filters of every shape it is offered to.
pub struct FilterScope {
    root: Context<'static, 'static>,
}

impl fmt::Debug for FilterScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilterScope").finish_non_exhaustive()
    }
}

impl FilterScope {
    /// Converts `event` (the published payload) once.
    pub fn new(event: &Value) -> Self {
        let mut root = Context::with_env(ENV.clone());
        root.add_variable_from_value("event", json_to_cel(event));
        Self { root }
    }
}

/// A JSON value as a CEL value.
fn json_to_cel(value: &Value) -> CelValue {
    match value {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                CelValue::Int(i)
            } else if let Some(u) = n.as_u64() {
                CelValue::UInt(u)
            } else {
                CelValue::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(items) => CelValue::List(Arc::new(items.iter().map(json_to_cel).collect())),
        Value::Object(map) => object_to_cel(map),
    }
}

fn object_to_cel(map: &Map<String, Value>) -> CelValue {
    let entries: HashMap<Key, CelValue> = map
        .iter()
        .map(|(k, v)| (Key::from(k.as_str()), json_to_cel(v)))
        .collect();
    CelValue::Map(CelMap {
        map: Arc::new(entries),
    })
}

/// `claims`: the token's other claims, overlaid with the normalized `sub`, `tenant`,
/// `roles` and `scopes` of the context.
fn claims_to_cel(security: &SecurityContext) -> CelValue {
    let mut entries: HashMap<Key, CelValue> = security
        .claims
        .iter()
        .map(|(k, v)| (Key::from(k.as_str()), json_to_cel(v)))
        .collect();
    let list = |items: &[String]| {
        CelValue::List(Arc::new(
            items
                .iter()
                .map(|s| CelValue::String(Arc::new(s.clone())))
                .collect(),
        ))
    };
    match &security.subject {
        Some(sub) => entries.insert(Key::from("sub"), CelValue::String(Arc::new(sub.clone()))),
        None => entries.remove(&Key::from("sub")),
    };
    match &security.tenant {
        Some(t) => entries.insert(Key::from("tenant"), CelValue::String(Arc::new(t.clone()))),
        None => entries.remove(&Key::from("tenant")),
    };
    entries.insert(Key::from("roles"), list(&security.roles));
    entries.insert(Key::from("scopes"), list(&security.scopes));
    CelValue::Map(CelMap {
        map: Arc::new(entries),
    })
}

/// The parse errors on one line: `expression column C: message; ...` (the line of the
/// expression is added when it spans several).
fn describe_parse_errors(errors: &cel::ParseErrors) -> String {
    let lines: Vec<String> = errors
        .errors
        .iter()
        .map(|e| match e.pos {
            (1, column) => format!("expression column {column}: {}", e.msg),
            (line, column) => format!("expression line {line} column {column}: {}", e.msg),
        })
        .collect();
    if lines.is_empty() {
        "syntax error".into()
    } else {
        lines.join("; ")
    }
}

/// The first identifier that is neither a filter variable nor bound by a macro
/// (`exists(x, ...)`, `map(x, ...)`...).
fn unknown_variable(root: &Expression) -> Option<String> {
    let mut bound = HashSet::new();
    collect_bound(root, &mut bound);
    let references = root.references();
    let mut unknown: Vec<&str> = references
        .variables()
        .into_iter()
        .filter(|v| !VARIABLES.contains(v) && !bound.contains(*v))
        .collect();
    unknown.sort_unstable();
    unknown.first().map(|v| (*v).to_owned())
}

/// Names bound by comprehensions anywhere in `expr`.
fn collect_bound<'e>(expr: &'e Expression, bound: &mut HashSet<&'e str>) {
    match &expr.expr {
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => {}
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                collect_bound(target, bound);
            }
            for arg in &call.args {
                collect_bound(arg, bound);
            }
        }
        Expr::Comprehension(c) => {
            bound.insert(c.iter_var.as_str());
            if let Some(v) = &c.iter_var2 {
                bound.insert(v.as_str());
            }
            bound.insert(c.accu_var.as_str());
            for e in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                collect_bound(e, bound);
            }
        }
        Expr::List(list) => {
            for e in &list.elements {
                collect_bound(e, bound);
            }
        }
        Expr::Map(map) => {
            for entry in &map.entries {
                collect_entry(&entry.expr, bound);
            }
        }
        Expr::Struct(s) => {
            for entry in &s.entries {
                collect_entry(&entry.expr, bound);
            }
        }
        Expr::Select(select) => collect_bound(&select.operand, bound),
    }
}

fn collect_entry<'e>(entry: &'e EntryExpr, bound: &mut HashSet<&'e str>) {
    match entry {
        EntryExpr::StructField(field) => collect_bound(&field.value, bound),
        EntryExpr::MapEntry(entry) => {
            collect_bound(&entry.key, bound);
            collect_bound(&entry.value, bound);
        }
    }
}

#[cfg(test)]
#[path = "filter_tests.rs"]
mod tests;
