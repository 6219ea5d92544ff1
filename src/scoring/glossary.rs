//! Plain words for a risk factor: `required_km_per_day = 640` becomes "the promise needs 640 km
//! a day". The API's `top_factors` and the manager's page say the same thing, from here. A
//! feature this glossary does not know is said as `name = value`.

use serde_json::Value;

/// What the entity of a history feature is, in words.
fn entity(key: &str) -> Option<&'static str> {
    Some(match key {
        "carrier" => "the carrier",
        "lane" => "this lane",
        "carrier_dest" => "the carrier to this destination",
        "warehouse" => "the warehouse",
        "destination" => "this destination",
        _ => return None,
    })
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_bool().map(|b| if b { 1.0 } else { 0.0 }))
}

fn round(x: f64) -> String {
    if x.abs() >= 100.0 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

fn percent(x: f64) -> String {
    format!("{:.0} %", x * 100.0)
}

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// The factor in words; `contribution` says whether it raises or lowers the risk.
pub fn describe(feature: &str, value: &Value, contribution: f64) -> String {
    let mut said = say(feature, value).unwrap_or_else(|| match value {
        Value::String(s) => format!("{feature} is {s}"),
        other => format!("{feature} = {other}"),
    });
    said.push_str(if contribution >= 0.0 {
        ": raises the risk"
    } else {
        ": lowers the risk"
    });
    said
}

fn say(feature: &str, value: &Value) -> Option<String> {
    if let Value::String(s) = value {
        return Some(match feature {
            "carrier" => format!("carrier {s}"),
            "warehouse" => format!("ships from {s}"),
            "destination" => format!("goes to {s}"),
            "customer_tier" => format!("a {s} customer"),
            "transport_mode" => format!("travels by {s}"),
            "service_level" => format!("{s} service"),
            _ => return None,
        });
    }
    let x = number(value)?;
    let plain = match feature {
        "required_km_per_day" => format!("the promise needs {} km a day", round(x)),
        "lead_time_days" => format!("{} days from dispatch to the promised date", round(x)),
        "distance_km" => format!("{} km to travel", round(x)),
        "order_value" => format!("an order worth {}", round(x)),
        "weight_kg" => format!("{} kg", round(x)),
        "volume_m3" => format!("{} m³", round(x)),
        "package_count" => format!("{} packages", round(x)),
        "shipping_cost" => format!("shipping costs {}", round(x)),
        "hazardous" => (if x > 0.5 {
            "hazardous goods"
        } else {
            "no hazardous goods"
        })
        .into(),
        "temperature_controlled" => (if x > 0.5 {
            "needs a cold chain"
        } else {
            "no cold chain"
        })
        .into(),
        "decision_weekday" | "deadline_weekday" => {
            let day = WEEKDAYS.get(x as usize).copied().unwrap_or("?");
            if feature == "decision_weekday" {
                format!("decided on a {day}")
            } else {
                format!("promised for a {day}")
            }
        }
        "decision_hour" => format!("decided at {:02}:00", x as u32),
        "decision_month" => format!("decided in month {}", x as u32),
        "decision_day_of_year" => format!("day {} of the year", x as u32),
        "hist_overall_late_rate" => format!("{} of recent deliveries were late", percent(x)),
        _ => return history(feature, x),
    };
    Some(plain)
}

/// `hist_<entity>_<measure>` and `load_<entity>_<measure>`.
fn history(feature: &str, x: f64) -> Option<String> {
    let (kind, rest) = feature.split_once('_')?;
    let (key, measure) = [
        "carrier_dest",
        "carrier",
        "lane",
        "warehouse",
        "destination",
    ]
    .iter()
    .find_map(|k| {
        rest.strip_prefix(k)
            .and_then(|m| m.strip_prefix('_'))
            .map(|m| (*k, m))
    })?;
    let who = entity(key)?;
    Some(match (kind, measure) {
        ("hist", "late_rate_all") => format!("{who} was late {} of the time", percent(x)),
        ("hist", "late_rate_last10") => format!("{who} was late {} of its last 10", percent(x)),
        ("hist", "mean_lateness_days") => format!("{who} is {} days late on average", round(x)),
        ("hist", "mean_transit_days") => format!("{who} takes {} days in transit", round(x)),
        ("hist", "slack_days") => format!("{who} usually leaves {} days of slack", round(x)),
        ("load", "decided_7d") => format!("{who} took {} shipments this week", round(x)),
        ("load", "open_now") => format!("{who} has {} shipments under way", round(x)),
        ("hist", m) => {
            let (what, window) = m.rsplit_once('_')?;
            let days = window.strip_suffix('d')?;
            match what {
                "late_rate" => format!("{who} was late {} in the last {days} days", percent(x)),
                "volume" => format!("{who} carried {} in the last {days} days", round(x)),
                _ => return None,
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn factors_read_as_sentences() {
        assert_eq!(
            describe("required_km_per_day", &json!(640.0), 0.12),
            "the promise needs 640 km a day: raises the risk"
        );
        assert_eq!(
            describe("hist_carrier_late_rate_30d", &json!(0.18), 0.05),
            "the carrier was late 18 % in the last 30 days: raises the risk"
        );
        assert_eq!(
            describe("hist_carrier_dest_mean_transit_days", &json!(2.5), -0.01),
            "the carrier to this destination takes 2.5 days in transit: lowers the risk"
        );
        assert_eq!(
            describe("carrier", &json!("NordFreight"), 0.1),
            "carrier NordFreight: raises the risk"
        );
        assert_eq!(
            describe("mystery", &json!(3), 0.1),
            "mystery = 3: raises the risk"
        );
    }
}
