//! Ranking the candidate carriers of one shipment: on-time probability (the delay model with the
//! carrier swapped in, blended with the carrier's lane scorecard), expected cost and the
//! shipment's SLA, weighed by a policy file rather than code, with the reasons a dispatcher
//! reads next to the recommendation.

use serde::{Deserialize, Serialize};

use super::scorecard::{Recent, Scorecards};
use crate::error::{Error, Result};

/// `policies/carrier_ranking.toml`: how much on-time delivery, cost and the SLA weigh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RankingPolicy {
    /// Share of the delay model in the on-time probability; the rest is the lane scorecard.
    pub model_weight: f64,
    /// Utility per unit of on-time probability.
    pub on_time_weight: f64,
    /// Utility lost per 100% of cost above the cheapest candidate.
    pub cost_weight: f64,
    /// "Within SLA": at most this far (probability) below the best candidate.
    pub sla_tolerance: f64,
    pub sla: SlaPolicy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlaPolicy {
    /// Customer tiers whose deliveries must above all be on time.
    pub strict_tiers: Vec<String>,
    /// Priorities (Odoo's `priority`: "1" is urgent) treated the same way.
    pub strict_priorities: Vec<String>,
    /// Deadlines closer than this many days after dispatch are strict too.
    pub tight_slack_days: f64,
    /// On strict shipments, on-time weight is multiplied by this.
    pub strict_on_time_multiplier: f64,
}

impl Default for RankingPolicy {
    fn default() -> Self {
        RankingPolicy {
            model_weight: 0.5,
            on_time_weight: 1.0,
            cost_weight: 0.02,
            sla_tolerance: 0.05,
            sla: SlaPolicy::default(),
        }
    }
}

impl Default for SlaPolicy {
    fn default() -> Self {
        SlaPolicy {
            strict_tiers: vec!["premium".into(), "gold".into()],
            strict_priorities: vec!["1".into(), "urgent".into(), "high".into()],
            tight_slack_days: 2.0,
            strict_on_time_multiplier: 3.0,
        }
    }
}

impl RankingPolicy {
    /// Parses and checks a policy file's text.
    pub fn from_toml(text: &str) -> Result<Self> {
        let p: RankingPolicy = toml::from_str(text)
            .map_err(|e| Error::Input(format!("carrier ranking policy: {e}")))?;
        p.check()?;
        Ok(p)
    }

    pub fn check(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.model_weight) {
            return Err(Error::param("model_weight", "must be in [0, 1]"));
        }
        for (name, v) in [
            ("on_time_weight", self.on_time_weight),
            ("cost_weight", self.cost_weight),
            ("sla_tolerance", self.sla_tolerance),
            (
                "sla.strict_on_time_multiplier",
                self.sla.strict_on_time_multiplier,
            ),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::param(name, "must be a number >= 0"));
            }
        }
        Ok(())
    }
}

/// What the ranking needs to know about the shipment itself.
#[derive(Debug, Clone, Copy)]
pub struct Shipment<'a> {
    pub warehouse: &'a str,
    pub destination: &'a str,
    pub customer_tier: Option<&'a str>,
    pub priority: Option<&'a str>,
    /// Days from dispatch to the promised date.
    pub slack_days: f64,
}

impl Shipment<'_> {
    fn is_strict(&self, sla: &SlaPolicy) -> bool {
        let has = |v: Option<&str>, list: &[String]| {
            v.is_some_and(|v| list.iter().any(|x| x.eq_ignore_ascii_case(v.trim())))
        };
        has(self.customer_tier, &sla.strict_tiers)
            || has(self.priority, &sla.strict_priorities)
            || self.slack_days < sla.tight_slack_days
    }
}

/// One candidate before ranking.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub carrier: String,
    /// 1 - the delay model's risk with this carrier; `None` when the model is unavailable.
    pub model_on_time: Option<f64>,
    pub expected_cost: Option<f64>,
    pub transit_days: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedCarrier {
    pub carrier: String,
    pub on_time_probability: f64,
    pub expected_cost: Option<f64>,
    pub transit_days: Option<f64>,
    pub score: f64,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub recommended: RankedCarrier,
    pub alternatives: Vec<RankedCarrier>,
    /// What the ranking could use: "service and cost" or "service only" (no cost known).
    pub basis: String,
    pub strict_sla: bool,
}

/// Ranks `candidates` (at least one) for a shipment.
pub fn rank(
    policy: &RankingPolicy,
    cards: &Scorecards,
    shipment: &Shipment<'_>,
    candidates: Vec<Candidate>,
) -> Option<Recommendation> {
    if candidates.is_empty() {
        return None;
    }
    let strict = shipment.is_strict(&policy.sla);
    let on_time_weight = policy.on_time_weight
        * if strict {
            policy.sla.strict_on_time_multiplier
        } else {
            1.0
        };
    let with_cost = candidates.iter().all(|c| c.expected_cost.is_some());
    let cheapest = candidates
        .iter()
        .filter_map(|c| c.expected_cost)
        .fold(f64::INFINITY, f64::min);
    let mut ranked: Vec<RankedCarrier> = candidates
        .into_iter()
        .map(|c| {
            let card = cards.lane_on_time(&c.carrier, shipment.warehouse, shipment.destination);
            let p = match c.model_on_time {
                Some(m) => policy.model_weight * m + (1.0 - policy.model_weight) * card,
                None => card,
            };
            let cost_penalty = match (with_cost, c.expected_cost) {
                (true, Some(cost)) if cheapest > 0.0 => cost / cheapest - 1.0,
                _ => 0.0,
            };
            RankedCarrier {
                carrier: c.carrier,
                on_time_probability: p,
                expected_cost: c.expected_cost,
                transit_days: c.transit_days,
                score: on_time_weight * p - policy.cost_weight * cost_penalty,
                reasons: Vec::new(),
            }
        })
        .collect();
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.carrier.cmp(&b.carrier)));
    explain(policy, cards, shipment, &mut ranked, with_cost);
    let recommended = ranked.remove(0);
    Some(Recommendation {
        recommended,
        alternatives: ranked,
        basis: if with_cost {
            "service and cost".into()
        } else {
            "service only: no rates or shipping costs known for every candidate".into()
        },
        strict_sla: strict,
    })
}

fn explain(
    policy: &RankingPolicy,
    cards: &Scorecards,
    shipment: &Shipment<'_>,
    ranked: &mut [RankedCarrier],
    with_cost: bool,
) {
    let lane = format!("{} -> {}", shipment.warehouse, shipment.destination);
    // `None`: the carrier has not delivered on the lane.
    let lane_recent: Vec<Option<Recent>> = ranked
        .iter()
        .map(|r| cards.lane_recent(&r.carrier, shipment.warehouse, shipment.destination))
        .collect();
    // A recent rate worth citing: (rate, shipments) over at least 5 shipments.
    let citable = |v: &Option<Recent>| {
        v.and_then(|v| v.on_time_rate.map(|rate| (rate, v.volume)))
            .filter(|(_, n)| *n >= 5)
    };
    let best_recent = lane_recent
        .iter()
        .filter_map(citable)
        .map(|r| r.0)
        .fold(f64::NAN, f64::max);
    let best_p = ranked
        .iter()
        .map(|r| r.on_time_probability)
        .fold(f64::NAN, f64::max);
    let cheapest_within = ranked
        .iter()
        .filter(|r| r.on_time_probability >= best_p - policy.sla_tolerance)
        .filter_map(|r| r.expected_cost)
        .fold(f64::INFINITY, f64::min);
    let days = cards.config.recent_days;
    for (r, card) in ranked.iter_mut().zip(&lane_recent) {
        if r.on_time_probability == best_p {
            r.reasons.push(format!(
                "highest on-time probability ({:.0}%)",
                r.on_time_probability * 100.0
            ));
        }
        if let Some((rate, n)) = citable(card) {
            if rate == best_recent {
                r.reasons.push(format!(
                    "best on-time rate on {lane} over the last {days} days ({:.0}% of {n})",
                    rate * 100.0
                ));
            }
        }
        if with_cost && r.expected_cost == Some(cheapest_within) {
            r.reasons.push("cheapest within SLA".into());
        }
        if card.is_none() {
            r.reasons.push(format!(
                "no deliveries on {lane} yet: rated on its network record"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::carrier::scorecard::ScorecardConfig;

    #[test]
    fn the_committed_policy_is_the_default() {
        let text = include_str!("../../../policies/carrier_ranking.toml");
        assert_eq!(
            RankingPolicy::from_toml(text).unwrap(),
            RankingPolicy::default()
        );
        let bad = RankingPolicy::from_toml("model_weight = 2.0").unwrap_err();
        assert!(bad.to_string().contains("model_weight"), "{bad}");
        assert!(RankingPolicy::from_toml("speed = 1").is_err());
    }

    fn candidate(carrier: &str, p: f64, cost: Option<f64>) -> Candidate {
        Candidate {
            carrier: carrier.into(),
            model_on_time: Some(p),
            expected_cost: cost,
            transit_days: None,
        }
    }

    #[test]
    fn ranks_on_time_first_and_cost_second_and_says_why() {
        let cards = Scorecards::new(ScorecardConfig::default());
        let relaxed = Shipment {
            warehouse: "WH",
            destination: "LYON",
            customer_tier: Some("standard"),
            priority: Some("0"),
            slack_days: 5.0,
        };
        let policy = RankingPolicy {
            cost_weight: 0.5,
            ..RankingPolicy::default()
        };
        // Nearly as punctual and half the price wins a relaxed shipment...
        let r = rank(
            &policy,
            &cards,
            &relaxed,
            vec![
                candidate("FAST", 0.95, Some(200.0)),
                candidate("CHEAP", 0.93, Some(100.0)),
            ],
        )
        .unwrap();
        assert_eq!(r.recommended.carrier, "CHEAP");
        assert!(r
            .recommended
            .reasons
            .iter()
            .any(|s| s == "cheapest within SLA"));
        assert_eq!(r.alternatives[0].carrier, "FAST");
        assert!(r.alternatives[0].reasons[0].starts_with("highest on-time probability"));
        assert_eq!(r.basis, "service and cost");
        // ...but a premium customer's shipment goes with the more punctual carrier.
        let premium = Shipment {
            customer_tier: Some("Premium"),
            ..relaxed
        };
        let r = rank(
            &RankingPolicy {
                cost_weight: 0.05,
                ..policy.clone()
            },
            &cards,
            &premium,
            vec![
                candidate("FAST", 0.95, Some(200.0)),
                candidate("CHEAP", 0.80, Some(100.0)),
            ],
        )
        .unwrap();
        assert!(r.strict_sla);
        assert_eq!(r.recommended.carrier, "FAST");
        // Without a cost for every candidate the ranking says it used service alone.
        let r = rank(
            &policy,
            &cards,
            &relaxed,
            vec![candidate("A", 0.7, None), candidate("B", 0.9, Some(1.0))],
        )
        .unwrap();
        assert_eq!(r.recommended.carrier, "B");
        assert!(r.basis.starts_with("service only"));
        assert!(rank(&policy, &cards, &relaxed, Vec::new()).is_none());
    }
}
