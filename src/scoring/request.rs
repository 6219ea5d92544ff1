//! A shipment as a workflow sends it (the history contract's columns, without outcomes), and
//! [`Shipment`], the checked form the scorer takes: dates parsed, numbers finite and not
//! negative, identifiers present. Checking names the field, with its index in a batch.

use std::collections::BTreeMap;

use dispatch_risk_training::data::contract;
use dispatch_risk_training::data::dates::DateParser;
use dispatch_risk_training::data::table::{CategoricalColumn, Labels, NumericColumn, Texts};
use dispatch_risk_training::data::{ShipmentTable, Timestamp};
use serde::{Deserialize, Serialize};

/// The JSON body of a score request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentRequest {
    /// Odoo's transfer reference (`stock.picking` name), e.g. `WH/OUT/00042`.
    pub shipment_id: String,
    /// Planned dispatch (ISO 8601, UTC); the decision time. Defaults to the time of the request.
    #[serde(default)]
    pub scheduled_date: Option<String>,
    /// The date promised to the customer (ISO 8601, UTC).
    pub date_deadline: String,
    /// The booked carrier; without one, the risk is scored for the recommended carrier.
    #[serde(default)]
    pub carrier: Option<String>,
    pub warehouse: String,
    pub destination: String,
    #[serde(default)]
    pub customer_id: Option<String>,
    /// e.g. `basic`, `standard`, `premium`.
    #[serde(default)]
    pub customer_tier: Option<String>,
    /// Odoo's priority: `"0"` normal, `"1"` urgent (a number is accepted too).
    #[serde(default)]
    pub priority: Option<Priority>,
    #[serde(default)]
    pub transport_mode: Option<String>,
    #[serde(default)]
    pub service_level: Option<String>,
    #[serde(default)]
    pub order_value: Option<f64>,
    #[serde(default)]
    pub weight_kg: Option<f64>,
    #[serde(default)]
    pub volume_m3: Option<f64>,
    #[serde(default)]
    pub package_count: Option<f64>,
    #[serde(default)]
    pub distance_km: Option<f64>,
    #[serde(default)]
    pub shipping_cost: Option<f64>,
    #[serde(default)]
    pub hazardous: Option<bool>,
    #[serde(default)]
    pub temperature_controlled: Option<bool>,
    /// The customer asked for delivery today (policy input, not a model feature).
    #[serde(default)]
    pub same_day: Option<bool>,
    /// The customer's account is on credit hold (policy input).
    #[serde(default)]
    pub credit_hold: Option<bool>,
    /// Extra feature columns the model was trained with (import-profile extras), by name.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub extra: BTreeMap<String, ExtraValue>,
}

/// Odoo sends priority as a string; some flows send the number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Priority {
    Text(String),
    Number(i64),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExtraValue {
    Number(f64),
    Text(String),
}

/// A request field that holds an unusable value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// The same error for the `index`th shipment of a batch.
    pub fn in_batch(self, index: usize) -> Self {
        FieldError {
            field: format!("shipments[{index}].{}", self.field),
            ..self
        }
    }
}

/// A checked shipment.
#[derive(Debug, Clone, PartialEq)]
pub struct Shipment {
    pub id: String,
    pub scheduled: Timestamp,
    pub deadline: Timestamp,
    pub carrier: Option<String>,
    pub warehouse: String,
    pub destination: String,
    /// The contract's categories, in `contract::CATEGORICAL` order.
    pub categories: [Option<String>; 5],
    /// The contract's numbers then flags (`contract::NUMERIC`, `contract::FLAGS`); NaN is missing.
    pub numbers: [f64; 8],
    pub same_day: bool,
    pub credit_hold: bool,
    pub extra: Vec<(String, ExtraValue)>,
}

const MAX_ID_CHARS: usize = 256;
/// Most extra fields one shipment may carry. A model is trained with a handful; without a
/// bound, a 2 MB body of 170k keys kept a worker busy for tens of seconds.
pub const MAX_EXTRA_FIELDS: usize = 64;
/// Longest extra field name.
const MAX_NAME_CHARS: usize = 64;

/// Why a text cannot be stored or matched: control characters (a NUL byte makes PostgreSQL
/// refuse the whole transaction it is in) and lengths past `max` characters.
fn unusable_text(t: &str, max: usize) -> Option<String> {
    if let Some(c) = t.chars().find(|c| c.is_control()) {
        return Some(format!("contains the control character U+{:04X}", c as u32));
    }
    (t.chars().count() > max).then(|| format!("is longer than {max} characters"))
}

/// An identifier as the store keeps it (a shipment's id, a warehouse, a carrier): trimmed, not
/// empty, without control characters, at most 256 characters.
pub fn identifier(field: &str, v: &str) -> Result<String, FieldError> {
    let t = v.trim();
    if t.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    match unusable_text(t, MAX_ID_CHARS) {
        Some(why) => Err(FieldError::new(field, why)),
        None => Ok(t.to_string()),
    }
}

impl Shipment {
    /// Checks a request; `now` is the decision time when the request gives none.
    pub fn parse(r: ShipmentRequest, now: Timestamp) -> Result<Shipment, FieldError> {
        let dates = DateParser::default();
        let date = |field: &str, text: &str| {
            dates.parse(text).ok_or_else(|| {
                FieldError::new(
                    field,
                    format!(
                        "`{text}` is not a date; expected ISO 8601 such as 2025-03-05T14:30:00Z"
                    ),
                )
            })
        };
        let text = |field: &str, v: String| identifier(field, &v);
        let optional = |field: &str, v: Option<String>| -> Result<Option<String>, FieldError> {
            match v {
                Some(s) if s.trim().is_empty() => Ok(None),
                Some(s) => text(field, s).map(Some),
                None => Ok(None),
            }
        };
        let number = |field: &str, v: Option<f64>| -> Result<f64, FieldError> {
            match v {
                None => Ok(f64::NAN),
                Some(x) if x.is_finite() && x >= 0.0 => Ok(x),
                Some(x) => Err(FieldError::new(field, format!("{x} is not a number >= 0"))),
            }
        };
        let flag = |v: Option<bool>| v.map_or(f64::NAN, |b| b as u8 as f64);
        let scheduled = match &r.scheduled_date {
            Some(s) => date("scheduled_date", s)?,
            None => now,
        };
        let deadline = date("date_deadline", &r.date_deadline)?;
        let priority = match r.priority {
            Some(Priority::Number(n)) => Some(n.to_string()),
            Some(Priority::Text(t)) => optional("priority", Some(t))?,
            None => None,
        };
        if r.extra.len() > MAX_EXTRA_FIELDS {
            return Err(FieldError::new(
                "extra",
                format!(
                    "has {} fields; at most {MAX_EXTRA_FIELDS} are accepted",
                    r.extra.len()
                ),
            ));
        }
        // In name order (the map's), so a table's lookups are binary searches.
        let mut extra = Vec::with_capacity(r.extra.len());
        for (name, value) in r.extra {
            if let Some(why) = unusable_text(&name, MAX_NAME_CHARS) {
                return Err(FieldError::new("extra", format!("a field name {why}")));
            }
            if contract::is_contract_column(&name) {
                return Err(FieldError::new(
                    &format!("extra.{name}"),
                    "is a contract field: send it at the top level",
                ));
            }
            match &value {
                ExtraValue::Number(x) if !x.is_finite() => {
                    return Err(FieldError::new(&format!("extra.{name}"), "must be finite"));
                }
                ExtraValue::Text(t) => {
                    if let Some(why) = unusable_text(t, MAX_ID_CHARS) {
                        return Err(FieldError::new(&format!("extra.{name}"), why));
                    }
                }
                ExtraValue::Number(_) => {}
            }
            extra.push((name, value));
        }
        Ok(Shipment {
            id: text("shipment_id", r.shipment_id)?,
            scheduled,
            deadline,
            carrier: optional("carrier", r.carrier)?,
            warehouse: text("warehouse", r.warehouse)?,
            destination: text("destination", r.destination)?,
            categories: [
                optional("customer_id", r.customer_id)?,
                optional("customer_tier", r.customer_tier)?,
                priority,
                optional("transport_mode", r.transport_mode)?,
                optional("service_level", r.service_level)?,
            ],
            numbers: [
                number("order_value", r.order_value)?,
                number("weight_kg", r.weight_kg)?,
                number("volume_m3", r.volume_m3)?,
                number("package_count", r.package_count)?,
                number("distance_km", r.distance_km)?,
                number("shipping_cost", r.shipping_cost)?,
                flag(r.hazardous),
                flag(r.temperature_controlled),
            ],
            same_day: r.same_day.unwrap_or(false),
            credit_hold: r.credit_hold.unwrap_or(false),
            extra,
        })
    }

    pub fn category(&self, name: &str) -> Option<&str> {
        let i = contract::CATEGORICAL.iter().position(|c| *c == name)?;
        self.categories[i].as_deref()
    }

    pub fn number(&self, name: &str) -> Option<f64> {
        let i = contract::NUMERIC
            .iter()
            .chain(contract::FLAGS.iter())
            .position(|c| *c == name)?;
        Some(self.numbers[i]).filter(|x| !x.is_nan())
    }

    pub fn flag(&self, name: &str) -> bool {
        self.number(name).is_some_and(|x| x > 0.5)
    }
}

/// The shipments as a table, in order: the representation features are computed from. A
/// shipment without a carrier gets an empty name (an unseen category) until one is chosen.
pub fn to_table(shipments: &[Shipment]) -> ShipmentTable {
    let n = shipments.len();
    let mut t = ShipmentTable {
        shipment_id: Texts::with_capacity(n, n * 16),
        scheduled_date: Vec::with_capacity(n),
        date_deadline: Vec::with_capacity(n),
        delivered_at: vec![None; n],
        carrier: Labels::with_capacity(n),
        warehouse: Labels::with_capacity(n),
        destination: Labels::with_capacity(n),
        numeric: Vec::new(),
        categorical: Vec::new(),
        notes: std::iter::repeat_n(None, n).collect(),
    };
    for s in shipments {
        t.shipment_id.push(&s.id);
        t.scheduled_date.push(s.scheduled);
        t.date_deadline.push(s.deadline);
        t.carrier.push(s.carrier.as_deref().unwrap_or_default());
        t.warehouse.push(&s.warehouse);
        t.destination.push(&s.destination);
    }
    for (k, name) in contract::NUMERIC
        .iter()
        .chain(contract::FLAGS.iter())
        .enumerate()
    {
        t.numeric.push(NumericColumn {
            name: (*name).to_string(),
            values: shipments.iter().map(|s| s.numbers[k]).collect(),
        });
    }
    for (k, name) in contract::CATEGORICAL.iter().enumerate() {
        t.categorical.push(CategoricalColumn {
            name: (*name).to_string(),
            values: shipments
                .iter()
                .map(|s| s.categories[k].as_deref())
                .collect(),
        });
    }
    // Extras: a column per name seen in the batch, numeric when every value given is a number.
    let mut names: Vec<&str> = shipments
        .iter()
        .flat_map(|s| s.extra.iter().map(|(n, _)| n.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        fn value<'s>(s: &'s Shipment, name: &str) -> Option<&'s ExtraValue> {
            s.extra
                .binary_search_by(|(n, _)| n.as_str().cmp(name))
                .ok()
                .map(|i| &s.extra[i].1)
        }
        let numeric = shipments
            .iter()
            .all(|s| !matches!(value(s, name), Some(ExtraValue::Text(_))));
        if numeric {
            t.numeric.push(NumericColumn {
                name: name.to_string(),
                values: shipments
                    .iter()
                    .map(|s| match value(s, name) {
                        Some(ExtraValue::Number(x)) => *x,
                        _ => f64::NAN,
                    })
                    .collect(),
            });
        } else {
            t.categorical.push(CategoricalColumn {
                name: name.to_string(),
                values: shipments
                    .iter()
                    .map(|s| match value(s, name) {
                        Some(ExtraValue::Number(x)) => Some(x.to_string()),
                        Some(ExtraValue::Text(v)) => Some(v.clone()),
                        None => None,
                    })
                    .collect::<Vec<_>>()
                    .iter()
                    .map(Option::as_deref)
                    .collect(),
            });
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ShipmentRequest {
        serde_json::from_value(serde_json::json!({
            "shipment_id": "WH/OUT/00042",
            "scheduled_date": "2025-03-03T08:00:00Z",
            "date_deadline": "2025-03-05 18:00:00",
            "warehouse": "WH-WEST",
            "destination": "IT-TO Turin",
            "priority": 1,
            "hazardous": true,
            "weight_kg": 12.5,
        }))
        .unwrap()
    }

    #[test]
    fn a_request_becomes_a_checked_shipment_and_a_table_row() {
        let s = Shipment::parse(request(), 0).unwrap();
        assert_eq!(s.deadline - s.scheduled, 2 * 86_400 + 10 * 3_600);
        assert_eq!(s.category("priority"), Some("1"));
        assert!(s.flag("hazardous"));
        assert_eq!(s.number("order_value"), None);
        let t = to_table(&[s.clone(), s]);
        assert_eq!(t.len(), 2);
        assert_eq!(t.numeric("weight_kg").unwrap().values, vec![12.5, 12.5]);
        assert_eq!(
            t.carrier.iter().collect::<Vec<_>>(),
            vec![Some(""), Some("")]
        );
    }

    #[test]
    fn bad_values_name_their_field() {
        let mut r = request();
        r.date_deadline = "next tuesday".into();
        let e = Shipment::parse(r, 0).unwrap_err().in_batch(3);
        assert_eq!(e.field, "shipments[3].date_deadline");
        assert!(e.message.contains("next tuesday"), "{}", e.message);
        let mut r = request();
        r.weight_kg = Some(-1.0);
        assert_eq!(Shipment::parse(r, 0).unwrap_err().field, "weight_kg");
        let mut r = request();
        r.warehouse = "  ".into();
        assert_eq!(Shipment::parse(r, 0).unwrap_err().field, "warehouse");
        let mut r = request();
        r.extra
            .insert("carrier".into(), ExtraValue::Text("x".into()));
        assert_eq!(Shipment::parse(r, 0).unwrap_err().field, "extra.carrier");
    }

    #[test]
    fn control_characters_long_texts_and_too_many_extras_are_refused() {
        let refused = |f: &dyn Fn(&mut ShipmentRequest)| {
            let mut r = request();
            f(&mut r);
            Shipment::parse(r, 0).unwrap_err()
        };
        let e = refused(&|r| r.shipment_id = "WH/OUT/\u{0}42".into());
        assert_eq!(e.field, "shipment_id");
        assert!(e.message.contains("U+0000"), "{}", e.message);
        let e = refused(&|r| r.carrier = Some("DHL\u{1b}[2J".into()));
        assert_eq!(
            (e.field.as_str(), e.message.contains("U+001B")),
            ("carrier", true)
        );
        let e = refused(&|r| r.destination = "x".repeat(MAX_ID_CHARS + 1));
        assert_eq!(e.field, "destination");
        let e = refused(&|r| {
            r.extra
                .insert("zone".into(), ExtraValue::Text("a\0b".into()));
        });
        assert_eq!(e.field, "extra.zone");
        let e = refused(&|r| {
            r.extra.insert("z\0".into(), ExtraValue::Number(1.0));
        });
        assert_eq!(e.field, "extra");
        let e = refused(&|r| {
            for i in 0..=MAX_EXTRA_FIELDS {
                r.extra.insert(format!("f{i}"), ExtraValue::Number(1.0));
            }
        });
        assert_eq!(e.field, "extra");
        assert!(e.message.contains("65 fields"), "{}", e.message);
        // At the bound, accepted; tabs and newlines inside are control characters too, but
        // the surrounding whitespace a form adds is trimmed first.
        let mut r = request();
        for i in 0..MAX_EXTRA_FIELDS {
            r.extra
                .insert(format!("f{i:02}"), ExtraValue::Number(i as f64));
        }
        r.shipment_id = " WH/OUT/1\n".into();
        let s = Shipment::parse(r, 0).unwrap();
        assert_eq!(s.id, "WH/OUT/1");
        let t = to_table(&[s]);
        assert_eq!(t.numeric("f07").unwrap().values, vec![7.0]);
    }

    #[test]
    fn the_decision_time_defaults_to_now() {
        let mut r = request();
        r.scheduled_date = None;
        assert_eq!(
            Shipment::parse(r, 1_700_000_000).unwrap().scheduled,
            1_700_000_000
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Texts with what clients send by mistake: control characters, long runs, non-ASCII.
        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                "[A-Za-z0-9/ -]{0,20}",
                ".{0,40}",
                "[\\x00-\\x1f]{1,3}",
                "x{250,300}",
            ]
        }

        fn value() -> impl Strategy<Value = serde_json::Value> {
            use serde_json::Value;
            prop_oneof![
                text().prop_map(Value::String),
                any::<f64>().prop_map(|f| serde_json::json!(f)),
                any::<i64>().prop_map(|i| serde_json::json!(i)),
                any::<bool>().prop_map(Value::Bool),
                Just(Value::Null),
                "2025-0[1-9]-[0-3][0-9]T[0-2][0-9]:00:00Z".prop_map(Value::String),
            ]
        }

        const FIELDS: [&str; 12] = [
            "shipment_id",
            "scheduled_date",
            "date_deadline",
            "carrier",
            "warehouse",
            "destination",
            "customer_tier",
            "priority",
            "order_value",
            "weight_kg",
            "hazardous",
            "same_day",
        ];

        fn request_json() -> impl Strategy<Value = serde_json::Value> {
            let fields = proptest::collection::btree_map(
                prop_oneof![
                    proptest::sample::select(&FIELDS[..]).prop_map(str::to_string),
                    text()
                ],
                value(),
                0..14,
            );
            let extra = proptest::collection::btree_map(text(), value(), 0..70);
            (fields, extra).prop_map(|(fields, extra)| {
                let mut m: serde_json::Map<String, serde_json::Value> =
                    fields.into_iter().collect();
                if !extra.is_empty() {
                    m.insert(
                        "extra".into(),
                        serde_json::Value::Object(extra.into_iter().collect()),
                    );
                }
                serde_json::Value::Object(m)
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

            /// Whatever arrives, parsing never panics; a refusal names a field; what is accepted
            /// holds only storable texts and at most 64 extras, and makes a table row.
            #[test]
            fn any_request_is_refused_naming_a_field_or_accepted_clean(json in request_json()) {
                let Ok(request) = serde_json::from_value::<ShipmentRequest>(json) else {
                    return Ok(());
                };
                match Shipment::parse(request, 1_700_000_000) {
                    Err(e) => prop_assert!(!e.field.is_empty() && !e.message.is_empty()),
                    Ok(s) => {
                        let clean = |t: &str| t.chars().count() <= 256 && !t.chars().any(char::is_control);
                        prop_assert!(clean(&s.id) && clean(&s.warehouse) && clean(&s.destination));
                        prop_assert!(s.carrier.as_deref().is_none_or(clean));
                        prop_assert!(s.extra.len() <= MAX_EXTRA_FIELDS);
                        for (name, v) in &s.extra {
                            prop_assert!(clean(name));
                            if let ExtraValue::Text(t) = v {
                                prop_assert!(clean(t));
                            }
                        }
                        prop_assert_eq!(to_table(&[s]).len(), 1);
                    }
                }
            }
        }
    }
}
