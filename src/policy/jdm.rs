//! JDM decision tables (GoRules' JSON Decision Model, the files its visual editor reads and
//! writes), compiled once and evaluated synchronously on any thread.
//!
//! The graphs are read with GoRules' own JDM types (`zen-types`) and every cell is compiled and
//! run by GoRules' expression engine (`zen-expression`), with zen-engine's decision-table
//! semantics: an input column with a field binds `$` to that field's value and its cells are
//! unary tests (`> 5`, `"premium", "gold"`, `[1..3]`); a column without a field takes boolean
//! expressions; an empty cell matches anything; output cells are expressions written at their
//! column's (dotted) path; hit policy `first` answers the first matching row or `null`,
//! `collect` the list of matching rows. Graphs must be input → one decision table → output:
//! zen-engine's other node kinds (functions in JavaScript, switches, sub-decisions) are refused
//! at load rather than evaluated differently from the editor. Evaluation is plain synchronous
//! code: no runtime, no dedicated threads. Cells that zen answers as a plain lookup, comparison
//! or literal (checked against zen when the table is compiled) skip its VM ([`shortcuts`]).

mod shortcuts;

use std::cell::RefCell;
use std::sync::Arc;

use serde_json::{Map, Value};
use shortcuts::{OneOf, Reference};
use zen_expression::expression::{Standard, Unary};
use zen_expression::scope::Scope;
use zen_expression::variable::Variable;
use zen_expression::vm::VM;
use zen_expression::{compile_expression, compile_unary_expression, Expression};
use zen_types::decision::{
    BaseDecisionContent, DecisionNodeKind, DecisionTableContent, DecisionTableHitPolicy,
    TransformExecutionMode,
};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum JdmError {
    #[error("not a JDM decision graph: {0}")]
    Parse(String),
    #[error("unsupported decision graph: {0}")]
    Unsupported(String),
    #[error("rule `{rule}`, column `{column}`: cannot compile `{cell}`: {message}")]
    Cell {
        rule: String,
        column: String,
        cell: String,
        message: String,
    },
    #[error("input column `{column}`: cannot compile its field `{field}`: {message}")]
    Field {
        column: String,
        field: String,
        message: String,
    },
    #[error("evaluating {what}: {message}")]
    Evaluation { what: String, message: String },
}

/// How a decision table answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitPolicy {
    /// The first matching row's outputs, or null.
    First,
    /// The outputs of every matching row, in table order.
    Collect,
}

/// A decision table ready to evaluate. `Send + Sync`: compiled expressions are bytecode.
#[derive(Debug, Clone)]
pub struct DecisionTable {
    pub name: String,
    pub hit_policy: HitPolicy,
    inputs: Vec<InputColumn>,
    rows: Vec<Row>,
}

#[derive(Debug, Clone)]
struct InputColumn {
    /// What `$` takes in this column's cells; none: cells are boolean expressions on the
    /// whole context.
    field: Option<Reference>,
}

#[derive(Debug, Clone)]
enum Test {
    Unary(Expression<Unary>),
    /// A unary cell of literals, compared without the VM.
    OneOf(OneOf),
    Boolean(Expression<Standard>),
}

#[derive(Debug, Clone)]
enum Output {
    Expression(Expression<Standard>),
    /// A literal's value, as zen answers it on any context.
    Constant(Value),
}

#[derive(Debug, Clone)]
struct Row {
    id: String,
    /// One test per input column; `None` where the cell is empty.
    tests: Vec<Option<Test>>,
    /// (dotted path, value) per non-empty output cell.
    outputs: Vec<(Vec<String>, Output)>,
    /// The row's answer when every output cell is a literal.
    constant: Option<Map<String, Value>>,
}

/// Whether cells zen answers as a plain comparison or a literal skip the VM (always, but for
/// the tests that compare the two).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shortcuts {
    On,
    #[cfg(test)]
    Off,
}

thread_local! {
    // The VM keeps its stacks between runs; one per thread saves their allocations.
    static MACHINE: RefCell<VM> = RefCell::new(VM::new());
}

impl DecisionTable {
    /// Reads a JDM graph and compiles its decision table; every cell must compile.
    pub fn parse(text: &str) -> Result<Self, JdmError> {
        Self::parse_with(text, Shortcuts::On)
    }

    /// [`DecisionTable::parse`] with every cell run in zen's VM.
    #[cfg(test)]
    pub(crate) fn parse_without_shortcuts(text: &str) -> Result<Self, JdmError> {
        Self::parse_with(text, Shortcuts::Off)
    }

    fn parse_with(text: &str, shortcuts: Shortcuts) -> Result<Self, JdmError> {
        let graph: BaseDecisionContent =
            serde_json::from_str(text).map_err(|e| JdmError::Parse(e.to_string()))?;
        let (name, content) = single_table(&graph)?;
        Self::compile(name, content, shortcuts)
    }

    fn compile(
        name: String,
        content: &DecisionTableContent,
        shortcuts: Shortcuts,
    ) -> Result<Self, JdmError> {
        let on = shortcuts == Shortcuts::On;
        let attrs = &content.transform_attributes;
        if attrs.input_field.is_some()
            || attrs.output_path.is_some()
            || attrs.pass_through
            || attrs.execution_mode != TransformExecutionMode::Single
        {
            return Err(JdmError::Unsupported(format!(
                "table `{name}` sets inputField, outputPath, passThrough or loop mode; the \
                 service reads the table's own answer"
            )));
        }
        let inputs = content
            .inputs
            .iter()
            .map(|i| {
                let field = match i.field.as_deref().map(str::trim) {
                    None | Some("") => None,
                    Some(f) => {
                        let compiled = compile_expression(f).map_err(|e| JdmError::Field {
                            column: column_name(&i.name, &i.id),
                            field: f.to_string(),
                            message: e.to_string(),
                        })?;
                        Some(if on {
                            Reference::new(f, compiled)
                        } else {
                            Reference::Expression(compiled)
                        })
                    }
                };
                Ok((i.id.clone(), column_name(&i.name, &i.id), field))
            })
            .collect::<Result<Vec<_>, JdmError>>()?;
        let mut rows = Vec::with_capacity(content.rules.len());
        for (index, rule) in content.rules.iter().enumerate() {
            let id = rule
                .get("_id")
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| format!("row {}", index + 1));
            let cell_error = |column: &str, cell: &str, e: String| JdmError::Cell {
                rule: id.clone(),
                column: column.to_string(),
                cell: cell.to_string(),
                message: e,
            };
            let mut tests = Vec::with_capacity(inputs.len());
            for (col_id, col_name, field) in &inputs {
                let cell = rule.get(col_id).map(|c| c.trim()).unwrap_or("");
                tests.push(if cell.is_empty() {
                    None
                } else if field.is_some() {
                    let test = compile_unary_expression(cell)
                        .map_err(|e| cell_error(col_name, cell, e.to_string()))?;
                    Some(match on.then(|| OneOf::new(cell, &test)).flatten() {
                        Some(one_of) => Test::OneOf(one_of),
                        None => Test::Unary(test),
                    })
                } else {
                    Some(Test::Boolean(
                        compile_expression(cell)
                            .map_err(|e| cell_error(col_name, cell, e.to_string()))?,
                    ))
                });
            }
            let mut outputs = Vec::new();
            for o in content.outputs.iter() {
                let (path, collect) = o.write_path();
                if collect {
                    return Err(JdmError::Unsupported(format!(
                        "output column `{}` collects (`[]`); use hit policy collect instead",
                        column_name(&o.name, &o.id)
                    )));
                }
                let cell = rule.get(&o.id).map(|c| c.trim()).unwrap_or("");
                if path.is_empty() || cell.is_empty() {
                    continue;
                }
                let expr = compile_expression(cell)
                    .map_err(|e| cell_error(&column_name(&o.name, &o.id), cell, e.to_string()))?;
                let output = match on.then(|| shortcuts::constant(cell, &expr)).flatten() {
                    Some(value) => Output::Constant(value),
                    None => Output::Expression(expr),
                };
                let path: Vec<String> = path.split('.').map(str::to_string).collect();
                outputs.push((path, output));
            }
            let constant = constant_answer(&outputs);
            rows.push(Row {
                id,
                tests,
                outputs,
                constant,
            });
        }
        Ok(DecisionTable {
            name,
            hit_policy: match content.hit_policy {
                DecisionTableHitPolicy::First => HitPolicy::First,
                DecisionTableHitPolicy::Collect => HitPolicy::Collect,
            },
            inputs: inputs
                .into_iter()
                .map(|(_, _, field)| InputColumn { field })
                .collect(),
            rows,
        })
    }

    /// Evaluates the table on `context` (a JSON object): the first matching row's outputs or
    /// null (hit policy first), or the list of every matching row's outputs (collect).
    pub fn evaluate(&self, context: &Value) -> Result<Value, JdmError> {
        self.evaluate_variable(Variable::from(context))
    }

    /// [`DecisionTable::evaluate`] on a context already made into zen's variables, as
    /// `Variable::from` makes them from JSON.
    pub fn evaluate_variable(&self, context: Variable) -> Result<Value, JdmError> {
        MACHINE.with(|vm| match vm.try_borrow_mut() {
            Ok(mut vm) => self.evaluate_with(context, &mut vm),
            // Only reachable if evaluation re-entered itself; a fresh VM keeps it correct.
            Err(_) => self.evaluate_with(context, &mut VM::new()),
        })
    }

    fn evaluate_with(&self, context: Variable, vm: &mut VM) -> Result<Value, JdmError> {
        let mut scope = Scope::new(context);
        // Each column's `$`, computed once per evaluation as zen-engine's isolate caches it.
        // A field that cannot be evaluated on this context leaves `$` unset: as in zen-engine,
        // that column's non-empty cells then fail to match.
        let references: Vec<Option<Variable>> = self
            .inputs
            .iter()
            .map(|column| column.field.as_ref().and_then(|f| f.evaluate(&scope, vm)))
            .collect();
        let mut collected = Vec::new();
        for row in &self.rows {
            if !self.row_matches(row, &references, &mut scope, vm) {
                continue;
            }
            let out = match &row.constant {
                Some(constant) => constant.clone(),
                None => self.outputs(row, &scope, vm)?,
            };
            match self.hit_policy {
                HitPolicy::First => return Ok(Value::Object(out)),
                HitPolicy::Collect => collected.push(Value::Object(out)),
            }
        }
        Ok(match self.hit_policy {
            HitPolicy::First => Value::Null,
            HitPolicy::Collect => Value::Array(collected),
        })
    }

    /// A matching row's outputs, evaluated on `scope`.
    fn outputs(
        &self,
        row: &Row,
        scope: &Scope,
        vm: &mut VM,
    ) -> Result<Map<String, Value>, JdmError> {
        let mut out = Map::new();
        for (path, output) in &row.outputs {
            let value = match output {
                Output::Constant(value) => value.clone(),
                Output::Expression(expr) => expr
                    .evaluate_with_scope(scope, vm)
                    .map_err(|e| JdmError::Evaluation {
                        what: format!("rule `{}`, output `{}`", row.id, path.join(".")),
                        message: e.to_string(),
                    })?
                    .to_value(),
            };
            insert_at(&mut out, path, value);
        }
        Ok(out)
    }

    /// A cell that fails to evaluate does not match, as in zen-engine: a row is a conjunction
    /// of tests, and a test that cannot say yes says no.
    fn row_matches(
        &self,
        row: &Row,
        references: &[Option<Variable>],
        scope: &mut Scope,
        vm: &mut VM,
    ) -> bool {
        for (test, reference) in row.tests.iter().zip(references) {
            let passed = match test {
                None => true,
                Some(Test::Unary(t)) => {
                    let Some(reference) = reference else {
                        return false;
                    };
                    scope.set_local(Variable::dollar_key(), reference.clone());
                    t.evaluate_with_scope(scope, vm).unwrap_or(false)
                }
                Some(Test::OneOf(one_of)) => match reference {
                    Some(reference) => one_of.matches(reference),
                    None => false,
                },
                Some(Test::Boolean(t)) => t
                    .evaluate_with_scope(scope, vm)
                    .ok()
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false),
            };
            if !passed {
                return false;
            }
        }
        true
    }

    /// How many cells skip the VM (fields read directly, literal tests, literal outputs).
    #[cfg(test)]
    pub(crate) fn shortcuts_taken(&self) -> usize {
        let fields = self
            .inputs
            .iter()
            .filter(|c| matches!(c.field, Some(Reference::Key { .. })))
            .count();
        let cells: usize = self
            .rows
            .iter()
            .map(|r| {
                let tests = r.tests.iter().filter(|t| matches!(t, Some(Test::OneOf(_))));
                let outputs = r
                    .outputs
                    .iter()
                    .filter(|(_, o)| matches!(o, Output::Constant(_)));
                tests.count() + outputs.count()
            })
            .sum();
        fields + cells
    }

    /// The rule ids, in table order.
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.rows.iter().map(|r| r.id.as_str())
    }
}

/// The graph's one decision table, after checking the graph is input → table → output.
fn single_table(graph: &BaseDecisionContent) -> Result<(String, &DecisionTableContent), JdmError> {
    let mut input = None;
    let mut output = None;
    let mut table = None;
    for node in &graph.nodes {
        let slot = match &node.kind {
            DecisionNodeKind::InputNode { .. } => &mut input,
            DecisionNodeKind::OutputNode { .. } => &mut output,
            DecisionNodeKind::DecisionTableNode { content } => {
                if table.is_some() {
                    return Err(JdmError::Unsupported(
                        "more than one decision table; the service evaluates one per file".into(),
                    ));
                }
                table = Some((node.name.to_string(), content, node.id.clone()));
                continue;
            }
            other => {
                return Err(JdmError::Unsupported(format!(
                    "node `{}` is a {}; the service evaluates decision tables only",
                    node.name,
                    kind_name(other)
                )))
            }
        };
        if slot.replace(node.id.clone()).is_some() {
            return Err(JdmError::Unsupported(
                "more than one input or output node".into(),
            ));
        }
    }
    let (Some(input), Some(output), Some((name, content, table_id))) = (input, output, table)
    else {
        return Err(JdmError::Unsupported(
            "the graph needs an input node, a decision table and an output node".into(),
        ));
    };
    let has_edge = |from: &Arc<str>, to: &Arc<str>| {
        graph
            .edges
            .iter()
            .any(|e| &e.source_id == from && &e.target_id == to)
    };
    if graph.edges.len() != 2 || !has_edge(&input, &table_id) || !has_edge(&table_id, &output) {
        return Err(JdmError::Unsupported(format!(
            "the edges must run input → `{name}` → output, and nowhere else"
        )));
    }
    Ok((name, content))
}

fn kind_name(kind: &DecisionNodeKind) -> &'static str {
    match kind {
        DecisionNodeKind::InputNode { .. } => "input node",
        DecisionNodeKind::OutputNode { .. } => "output node",
        DecisionNodeKind::FunctionNode { .. } => "function node",
        DecisionNodeKind::DecisionNode { .. } => "decision (sub-graph) node",
        DecisionNodeKind::DecisionTableNode { .. } => "decision table",
        DecisionNodeKind::ExpressionNode { .. } => "expression node",
        DecisionNodeKind::SwitchNode { .. } => "switch node",
        DecisionNodeKind::CustomNode { .. } => "custom node",
    }
}

fn column_name(name: &str, id: &str) -> String {
    if name.trim().is_empty() {
        id.to_string()
    } else {
        name.to_string()
    }
}

/// A row's answer when every one of its output cells is a literal.
fn constant_answer(outputs: &[(Vec<String>, Output)]) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    for (path, output) in outputs {
        let Output::Constant(value) = output else {
            return None;
        };
        insert_at(&mut out, path, value.clone());
    }
    Some(out)
}

fn insert_at(map: &mut Map<String, Value>, path: &[String], value: Value) {
    match path {
        [] => {}
        [last] => {
            map.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = map
                .entry(first.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            if let Value::Object(inner) = entry {
                insert_at(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn graph(hit_policy: &str, inputs: Value, outputs: Value, rules: Value) -> String {
        json!({
            "contentType": "application/vnd.gorules.decision",
            "nodes": [
                {"id": "in", "name": "request", "type": "inputNode", "content": {}},
                {"id": "t", "name": "table", "type": "decisionTableNode", "content": {
                    "hitPolicy": hit_policy, "inputs": inputs, "outputs": outputs, "rules": rules
                }},
                {"id": "out", "name": "response", "type": "outputNode", "content": {}}
            ],
            "edges": [
                {"id": "e1", "sourceId": "in", "targetId": "t"},
                {"id": "e2", "sourceId": "t", "targetId": "out"}
            ]
        })
        .to_string()
    }

    fn tiers(hit_policy: &str) -> DecisionTable {
        let inputs = json!([
            {"id": "tier", "name": "Tier", "field": "customer.tier"},
            {"id": "value", "name": "Value", "field": "order_value ?? 0"},
            {"id": "flag", "name": "Any", "field": ""}
        ]);
        let outputs = json!([
            {"id": "o1", "name": "Rule", "field": "rule"},
            {"id": "o2", "name": "Points", "field": "score.points"}
        ]);
        let rules = json!([
            {"_id": "premium-big", "tier": "\"premium\", \"gold\"", "value": "> 1000", "o1": "\"premium-big\"", "o2": "order_value / 100"},
            {"_id": "hazard", "flag": "hazardous == true", "o1": "\"hazard\"", "o2": "5"},
            {"_id": "small", "value": "[0..100]", "o1": "\"small\"", "o2": "1"},
            {"_id": "any", "o1": "\"any\""}
        ]);
        DecisionTable::parse(&graph(hit_policy, inputs, outputs, rules)).unwrap()
    }

    #[test]
    fn first_hit_answers_the_first_matching_row() {
        let t = tiers("first");
        assert_eq!(t.hit_policy, HitPolicy::First);
        let premium = json!({"customer": {"tier": "gold"}, "order_value": 2500, "hazardous": true});
        assert_eq!(
            t.evaluate(&premium).unwrap(),
            json!({"rule": "premium-big", "score": {"points": 25}})
        );
        let small =
            json!({"customer": {"tier": "standard"}, "order_value": 50, "hazardous": false});
        assert_eq!(
            t.evaluate(&small).unwrap(),
            json!({"rule": "small", "score": {"points": 1}})
        );
        // A missing value takes the field's default (`?? 0`), which is small.
        let missing = json!({"customer": {"tier": "standard"}, "hazardous": false});
        assert_eq!(t.evaluate(&missing).unwrap()["rule"], json!("small"));
    }

    #[test]
    fn collect_answers_every_matching_row_in_order() {
        let t = tiers("collect");
        let both = json!({"customer": {"tier": "premium"}, "order_value": 5000, "hazardous": true});
        let rules: Vec<Value> = t
            .evaluate(&both)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["rule"].clone())
            .collect();
        assert_eq!(
            rules,
            vec![json!("premium-big"), json!("hazard"), json!("any")]
        );
        assert_eq!(t.rule_ids().count(), 4);
    }

    #[test]
    fn first_hit_with_no_match_is_null() {
        let inputs = json!([{"id": "v", "name": "V", "field": "v"}]);
        let outputs = json!([{"id": "o", "name": "O", "field": "o"}]);
        let rules = json!([{"_id": "big", "v": "> 10", "o": "1"}]);
        let t = DecisionTable::parse(&graph("first", inputs, outputs, rules)).unwrap();
        assert_eq!(t.evaluate(&json!({"v": 3})).unwrap(), Value::Null);
        assert_eq!(t.evaluate(&json!({"v": 30})).unwrap(), json!({"o": 1}));
        // A cell that cannot be evaluated on the value (a string compared to a number) fails
        // to match rather than failing the table.
        assert_eq!(t.evaluate(&json!({"v": "x"})).unwrap(), Value::Null);
    }

    #[test]
    fn a_field_that_cannot_be_evaluated_fails_its_cells_only() {
        let inputs = json!([{"id": "d", "name": "Day", "field": "date(when)"}]);
        let outputs = json!([{"id": "o", "name": "O", "field": "o"}]);
        let rules = json!([
            {"_id": "dated", "d": "$ != null", "o": "\"dated\""},
            {"_id": "any", "o": "\"any\""}
        ]);
        // The premise: the field itself fails on a value that is not a date.
        let bad = Variable::from(json!({"when": "not a date"}));
        assert!(zen_expression::evaluate_expression("date(when)", bad).is_err());
        let t = DecisionTable::parse(&graph("first", inputs, outputs, rules)).unwrap();
        assert_eq!(
            t.evaluate(&json!({"when": "2026-11-27"})).unwrap(),
            json!({"o": "dated"})
        );
        assert_eq!(
            t.evaluate(&json!({"when": "not a date"})).unwrap(),
            json!({"o": "any"})
        );
    }

    #[test]
    fn refuses_what_it_cannot_evaluate_faithfully() {
        let inputs = json!([{"id": "v", "name": "Value", "field": "v"}]);
        let outputs = json!([{"id": "o", "name": "O", "field": "o"}]);
        let bad_cell = DecisionTable::parse(&graph(
            "first",
            inputs.clone(),
            outputs.clone(),
            json!([{"_id": "r1", "v": "> > 3", "o": "1"}]),
        ))
        .unwrap_err();
        assert!(
            matches!(&bad_cell, JdmError::Cell { rule, column, .. } if rule == "r1" && column == "Value"),
            "{bad_cell}"
        );

        let mut function =
            serde_json::from_str::<Value>(&graph("first", inputs, outputs, json!([]))).unwrap();
        function["nodes"][1] = json!({"id": "t", "name": "js", "type": "functionNode",
            "content": {"source": "export const handler = async () => ({})"}});
        let err = DecisionTable::parse(&function.to_string()).unwrap_err();
        assert!(err.to_string().contains("function node"), "{err}");

        assert!(matches!(
            DecisionTable::parse("{\"nodes\": 3}").unwrap_err(),
            JdmError::Parse(_)
        ));
    }

    #[test]
    fn compiled_tables_cross_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<DecisionTable>();
        let t = Arc::new(tiers("first"));
        let answers: Vec<Value> = std::thread::scope(|s| {
            (0..2)
                .map(|i| {
                    let t = t.clone();
                    s.spawn(move || t.evaluate(&json!({"order_value": 50 + i})).unwrap())
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect()
        });
        assert_eq!(answers[0]["rule"], json!("small"));
        assert_eq!(answers[1]["rule"], json!("small"));
    }
}
