//! Routing rules: CEL expressions daprd evaluates over each CloudEvent.
//!
//! With the `check-rules` feature (on with `testing`) they are parsed with
//! the `cel` crate when the server is built, so a typo fails at start-up and
//! not on the first event; without it only empty rules are refused and daprd
//! reports a bad expression when it loads the subscription. The test sidecars evaluate
//! them with the same crate, over the event as daprd sees it: the standard
//! functions and macros and `matches` (regular expressions), but not
//! `timestamp`/`duration` (the crate's time support would bring a time-zone
//! database into every build with the `testing` feature).

#[cfg(feature = "check-rules")]
use cel::common::ast::{EntryExpr, Expr, IdedExpr};

/// A routing rule: when the CEL expression `matches`, the sidecar delivers the
/// event on `path`. Rules of a topic are evaluated in registration order.
///
/// daprd evaluates the expression over one variable, `event`: the CloudEvent
/// as a map (`event.type`, `event.source`, `event.topic`, extensions, and
/// `event.data` with JSON data decoded, numbers as doubles).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rule {
    /// A CEL expression over the CloudEvent, e.g. `event.type == "order.v2"`.
    pub matches: String,
    /// The path the sidecar sends matching events on.
    pub path: String,
    /// Lower first, when daprd is given the topic's rules (default 0).
    pub priority: i32,
}

/// Identifiers CEL resolves itself: type names, for `type(x) == string`.
#[cfg(feature = "check-rules")]
const CEL_TYPE_NAMES: [&str; 10] =
    ["bool", "bytes", "double", "int", "list", "map", "null_type", "string", "type", "uint"];

impl Rule {
    /// A rule.
    pub fn new(matches: impl Into<String>, path: impl Into<String>) -> Self {
        Rule { matches: matches.into(), path: path.into(), priority: 0 }
    }

    /// Checks that neither part is empty and, with the `check-rules`
    /// feature, parses the expression and checks that it reads no variable
    /// but `event`; `Err` says what is wrong and where.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.path.is_empty() {
            return Err("the path is empty".into());
        }
        if self.matches.trim().is_empty() {
            return Err("the match is empty".into());
        }
        #[cfg(feature = "check-rules")]
        self.check_expression()?;
        Ok(())
    }

    #[cfg(feature = "check-rules")]
    fn check_expression(&self) -> Result<(), String> {
        let program = cel::Program::compile(&self.matches).map_err(|e| e.to_string())?;
        let mut unknown = Vec::new();
        free_variables(program.expression(), &mut Vec::new(), &mut unknown);
        match unknown.first() {
            // daprd would accept it and fail on every event.
            Some(name) => Err(format!("unknown variable `{name}`: daprd provides only `event`")),
            None => Ok(()),
        }
    }

    /// Evaluates the rule over `event`, a structured CloudEvent as daprd
    /// reads it. An error (a missing field, a result that is not a boolean)
    /// is what daprd reports as "error finding matching route".
    #[cfg(feature = "testing")]
    pub(crate) fn evaluate(&self, event: &serde_json::Value) -> Result<bool, String> {
        let program = cel::Program::compile(&self.matches).map_err(|e| e.to_string())?;
        let mut context = cel::Context::default();
        context.add_variable_from_value("event", as_go_reads_it(event));
        match program.execute(&context) {
            Ok(cel::Value::Bool(matched)) => Ok(matched),
            Ok(other) => Err(format!("{:?} is {other:?}, not a boolean", self.matches)),
            Err(e) => Err(format!("{:?}: {e}", self.matches)),
        }
    }
}

#[cfg(feature = "check-rules")]
/// Collects the variables `expr` reads that neither `event`, a CEL type name
/// nor a macro's own variable (`exists(i, …)`) accounts for.
fn free_variables<'e>(expr: &'e IdedExpr, bound: &mut Vec<&'e str>, unknown: &mut Vec<&'e str>) {
    let mut visit = |e: &'e IdedExpr, bound: &mut Vec<&'e str>| free_variables(e, bound, unknown);
    match &expr.expr {
        Expr::Ident(name) => {
            // '@'-names are the parser's own, from macro expansion.
            let known = name == "event" || name.starts_with('@') || CEL_TYPE_NAMES.contains(&name.as_str());
            if !known && !bound.contains(&name.as_str()) {
                unknown.push(name);
            }
        }
        Expr::Call(call) => {
            call.target.iter().for_each(|target| visit(target, bound));
            call.args.iter().for_each(|arg| visit(arg, bound));
        }
        Expr::Comprehension(loop_) => {
            visit(&loop_.iter_range, bound);
            visit(&loop_.accu_init, bound);
            let outer = bound.len();
            bound.extend([loop_.iter_var.as_str(), loop_.accu_var.as_str()]);
            bound.extend(loop_.iter_var2.as_deref());
            for part in [&loop_.loop_cond, &loop_.loop_step, &loop_.result] {
                visit(part, bound);
            }
            bound.truncate(outer);
        }
        Expr::List(list) => list.elements.iter().for_each(|element| visit(element, bound)),
        Expr::Map(map) => map.entries.iter().for_each(|entry| visit_entry(&entry.expr, bound, &mut visit)),
        Expr::Struct(object) => object.entries.iter().for_each(|entry| visit_entry(&entry.expr, bound, &mut visit)),
        Expr::Select(select) => visit(&select.operand, bound),
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

#[cfg(feature = "check-rules")]
fn visit_entry<'e>(
    entry: &'e EntryExpr,
    bound: &mut Vec<&'e str>,
    visit: &mut impl FnMut(&'e IdedExpr, &mut Vec<&'e str>),
) {
    match entry {
        EntryExpr::StructField(field) => visit(&field.value, bound),
        EntryExpr::MapEntry(entry) => {
            visit(&entry.key, bound);
            visit(&entry.value, bound);
        }
    }
}

/// A JSON value as Go's `json.Unmarshal` into `any` gives it to cel-go:
/// every number a double.
#[cfg(feature = "testing")]
fn as_go_reads_it(value: &serde_json::Value) -> cel::Value {
    use serde_json::Value as Json;
    use std::sync::Arc;
    match value {
        Json::Null => cel::Value::Null,
        Json::Bool(b) => cel::Value::Bool(*b),
        Json::Number(n) => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => cel::Value::String(Arc::new(s.clone())),
        Json::Array(items) => cel::Value::List(Arc::new(items.iter().map(as_go_reads_it).collect())),
        Json::Object(fields) => fields
            .iter()
            .map(|(key, value)| (key.clone(), as_go_reads_it(value)))
            .collect::<std::collections::HashMap<_, _>>()
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(matches: &str) -> Result<(), String> {
        Rule::new(matches, "/path").check()
    }

    #[cfg(feature = "check-rules")]
    #[test]
    fn accepts_what_daprd_evaluates() {
        for ok in [
            r#"event.type == "order.v2""#,
            "event.type.startsWith('order.') && has(event.data.vip)",
            "event.data.items.exists(item, item.qty > 1) || size(event.data.items) == 0",
            "event.data.items.all(i, i.tags.exists(t, t == 'gift'))",
            "type(event.data.total) == double",
            "{'a': event.id}.a == 'x'",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[cfg(feature = "check-rules")]
    #[test]
    fn names_the_mistake() {
        let syntax = check("event.type = 'x'").unwrap_err();
        assert!(syntax.contains("Syntax error"), "{syntax}");
        assert_eq!(check("evnt.type == 'x'"), Err("unknown variable `evnt`: daprd provides only `event`".into()));
        // A macro's variable is bound only inside the macro.
        assert!(check("event.data.items.exists(i, i > 1) && i == 2").unwrap_err().contains("`i`"));
    }

    #[test]
    fn refuses_empty_parts_without_a_parser() {
        assert_eq!(check("  "), Err("the match is empty".into()));
        assert_eq!(Rule::new("true", "").check(), Err("the path is empty".into()));
    }

    #[cfg(feature = "testing")]
    #[test]
    fn evaluates_like_daprd() {
        let event = serde_json::json!({"type": "order.v2", "data": {"total": 150, "items": [{"qty": 3}]}});
        let evaluate = |matches: &str| Rule::new(matches, "/p").evaluate(&event);
        assert_eq!(evaluate("event.data.total > 100"), Ok(true));
        assert_eq!(evaluate("event.data.total > 100.0 && event.data.items.exists(i, i.qty > 2)"), Ok(true));
        assert_eq!(evaluate("event.type.startsWith('invoice.')"), Ok(false));
        assert_eq!(evaluate(r"event.type.matches('^order\\.v[0-9]+$')"), Ok(true));
        assert!(evaluate("event.data.vip == true").unwrap_err().contains("vip"));
        assert!(evaluate("event.type").unwrap_err().contains("not a boolean"));
    }
}
