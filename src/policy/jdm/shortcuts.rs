//! Shortcuts past zen's VM for the commonest cells of a decision table: a column whose field
//! names one key of the context, a test that compares `$` with literal strings or booleans
//! (`"premium", "gold"`, `true`), and an output cell that is a literal (`"exception"`, `10`).
//! Each is taken only where zen itself, probed when the table is compiled, answers as the
//! shortcut does; anything else runs in the VM as before. The routing table ran the VM about
//! 25 times per shipment, most of them for cells like these.

use serde_json::Value;
use zen_expression::expression::{Standard, Unary};
use zen_expression::scope::Scope;
use zen_expression::variable::Variable;
use zen_expression::vm::VM;
use zen_expression::Expression;
use zen_types::variable::VariableMap;

/// What an input column's `$` is taken from.
#[derive(Debug, Clone)]
pub(super) enum Reference {
    /// A key of the context, read directly; `missing_is_null`: what zen answers for a key the
    /// context lacks (null), else the column's `$` is unset, as when zen fails.
    Key {
        name: String,
        missing_is_null: bool,
    },
    Expression(Expression<Standard>),
}

impl Reference {
    /// `field`'s text and its compiled form: a key read directly when zen reads it so.
    pub fn new(field: &str, compiled: Expression<Standard>) -> Reference {
        if !is_identifier(field) {
            return Reference::Expression(compiled);
        }
        let mut vm = VM::new();
        let sentinel = Variable::String("\u{1}probe".into());
        let present = object([(field, sentinel.clone())]);
        let reads_it = compiled
            .evaluate_with_scope(&Scope::new(present), &mut vm)
            .is_ok_and(|v| v == sentinel);
        let mut missing = |base: Variable| compiled.evaluate_with_scope(&Scope::new(base), &mut vm);
        let missing_is_null = match (missing(object([])), missing(Variable::Null)) {
            (Ok(Variable::Null), Ok(Variable::Null)) => true,
            (Err(_), Err(_)) => false,
            _ => return Reference::Expression(compiled),
        };
        if !reads_it {
            return Reference::Expression(compiled);
        }
        Reference::Key {
            name: field.to_string(),
            missing_is_null,
        }
    }

    /// The column's `$` on `scope` (no locals set yet); `None` leaves it unset.
    pub fn evaluate(&self, scope: &Scope, vm: &mut VM) -> Option<Variable> {
        match self {
            Reference::Key {
                name,
                missing_is_null,
            } => match scope.get_str(name) {
                Some(v) => Some(v),
                None => missing_is_null.then_some(Variable::Null),
            },
            Reference::Expression(e) => e.evaluate_with_scope(scope, vm).ok(),
        }
    }
}

/// A unary cell that says "`$` is one of these strings or booleans".
#[derive(Debug, Clone)]
pub(super) struct OneOf(Vec<Literal>);

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Bool(bool),
    Text(String),
}

impl OneOf {
    /// The cell's literals, when it is only those and zen's compiled `test` agrees with the
    /// comparison on every probe.
    pub fn new(cell: &str, test: &Expression<Unary>) -> Option<OneOf> {
        let literals = split_literals(cell)?;
        let one_of = OneOf(literals);
        let mut probes = vec![
            Variable::Null,
            Variable::Bool(true),
            Variable::Bool(false),
            Variable::Number(0.into()),
            Variable::Number(1.into()),
            Variable::String("".into()),
            Variable::String("true".into()),
        ];
        for l in &one_of.0 {
            if let Literal::Text(t) = l {
                probes.push(Variable::String(t.as_str().into()));
                probes.push(Variable::String(format!("{t}_").into()));
                probes.push(Variable::String(t.to_uppercase().into()));
            }
        }
        let mut vm = VM::new();
        let agrees = probes.into_iter().all(|probe| {
            let mut scope = Scope::new(object([]));
            scope.set_local(Variable::dollar_key(), probe.clone());
            let zen = test.evaluate_with_scope(&scope, &mut vm).unwrap_or(false);
            zen == one_of.matches(&probe)
        });
        agrees.then_some(one_of)
    }

    pub fn matches(&self, reference: &Variable) -> bool {
        self.0.iter().any(|l| match (l, reference) {
            (Literal::Bool(a), Variable::Bool(b)) => a == b,
            (Literal::Text(a), Variable::String(b)) => a.as_str() == &**b,
            _ => false,
        })
    }
}

/// `"a", "b"` or `true` as literals; `None` for anything else (ranges, comparisons, escapes).
fn split_literals(cell: &str) -> Option<Vec<Literal>> {
    let mut out = Vec::new();
    let mut rest = cell.trim();
    loop {
        let (literal, after) = if let Some(inner) = rest.strip_prefix('"') {
            let end = inner.find('"')?;
            let text = &inner[..end];
            if text.contains('\\') {
                return None;
            }
            (Literal::Text(text.to_string()), &inner[end + 1..])
        } else if let Some(after) = rest.strip_prefix("true") {
            (Literal::Bool(true), after)
        } else if let Some(after) = rest.strip_prefix("false") {
            (Literal::Bool(false), after)
        } else {
            return None;
        };
        out.push(literal);
        let after = after.trim_start();
        if after.is_empty() {
            return Some(out);
        }
        rest = after.strip_prefix(',')?.trim_start();
    }
}

/// An output cell's value when the cell is a JSON literal and zen answers it whatever the
/// context.
pub fn constant(cell: &str, compiled: &Expression<Standard>) -> Option<Value> {
    serde_json::from_str::<Value>(cell).ok()?;
    let mut vm = VM::new();
    let mut on = |base: Variable| {
        compiled
            .evaluate_with_scope(&Scope::new(base), &mut vm)
            .ok()
            .map(|v| v.to_value())
    };
    let value = on(object([]))?;
    let probe = object([("probe", Variable::Bool(true))]);
    (on(probe).as_ref() == Some(&value) && on(Variable::Null).as_ref() == Some(&value))
        .then_some(value)
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn object<const N: usize>(entries: [(&str, Variable); N]) -> Variable {
    let mut map = VariableMap::with_capacity(N);
    for (key, value) in entries {
        map.insert(Variable::key(key), value);
    }
    Variable::from_object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zen_expression::{compile_expression, compile_unary_expression};

    #[test]
    fn literal_cells_split_and_other_cells_do_not() {
        assert_eq!(
            split_literals(r#" "premium", "gold" "#),
            Some(vec![
                Literal::Text("premium".into()),
                Literal::Text("gold".into())
            ])
        );
        assert_eq!(split_literals("true"), Some(vec![Literal::Bool(true)]));
        for cell in [
            "> 5",
            "[1..3]",
            r#""a" or "b""#,
            r#""a\"b""#,
            "truex",
            r#""a","#,
            "'single'",
        ] {
            assert_eq!(split_literals(cell), None, "{cell}");
        }
    }

    #[test]
    fn shortcuts_are_taken_where_zen_agrees() {
        let test = compile_unary_expression(r#""premium", "gold""#).unwrap();
        let one_of = OneOf::new(r#""premium", "gold""#, &test).expect("taken");
        assert!(one_of.matches(&Variable::String("gold".into())));
        assert!(!one_of.matches(&Variable::String("Gold".into())));
        assert!(!one_of.matches(&Variable::Null));

        let field = compile_expression("risk_band").unwrap();
        let reference = Reference::new("risk_band", field);
        assert!(matches!(reference, Reference::Key { .. }), "{reference:?}");
        let scope = Scope::new(object([("risk_band", Variable::String("high".into()))]));
        assert_eq!(
            reference.evaluate(&scope, &mut VM::new()),
            Some(Variable::String("high".into()))
        );

        let reference = Reference::new(
            "order_value ?? 0",
            compile_expression("order_value ?? 0").unwrap(),
        );
        assert!(matches!(reference, Reference::Expression(_)));

        let out = compile_expression(r#""exception""#).unwrap();
        assert_eq!(
            constant(r#""exception""#, &out),
            Some(Value::from("exception"))
        );
        let out = compile_expression("order_value * 2").unwrap();
        assert_eq!(constant("order_value * 2", &out), None);
    }
}
