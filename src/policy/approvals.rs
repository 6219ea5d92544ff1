//! The approval policy (`policies/approvals.toml`): the reason codes each kind of decision may
//! give, how long an approval may wait (per queue and customer tier) before it escalates and
//! when it expires, the role that takes over an escalated one, the roles that outrank others,
//! the reasons that need two different approvers, how long a claim holds and whether the one
//! who raised an approval may decide it. Checked whole at load; business users edit the file.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// What a manager decides.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    Approve,
    Reject,
    /// Approve with another carrier or release time.
    Override,
}

impl DecisionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Approve => "approve",
            DecisionKind::Reject => "reject",
            DecisionKind::Override => "override",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    claim_minutes: u32,
    separation_of_duties: bool,
    #[serde(default)]
    four_eyes: Vec<String>,
    reasons: Reasons,
    sla: Sla,
    #[serde(default)]
    escalation: BTreeMap<String, String>,
    #[serde(default)]
    outranks: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reasons {
    approve: Vec<String>,
    reject: Vec<String>,
    r#override: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sla {
    default_minutes: u32,
    expire_minutes: u32,
    #[serde(default)]
    queue: BTreeMap<String, u32>,
    #[serde(default)]
    tier: BTreeMap<String, u32>,
}

/// The checked policy.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalPolicy {
    file: File,
}

impl Default for ApprovalPolicy {
    /// The committed file's content, for a policies directory without one.
    fn default() -> Self {
        ApprovalPolicy::from_toml(include_str!("../../policies/approvals.toml"))
            .expect("the committed approval policy checks")
    }
}

impl ApprovalPolicy {
    /// Parses and checks the file: every reason list non-empty and free of repeats, minutes
    /// above zero and an expiry past every SLA, escalations that end (no role escalates to
    /// itself or round in a circle), and no role outranking itself.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let policy = ApprovalPolicy { file };
        policy.check()?;
        Ok(policy)
    }

    fn check(&self) -> Result<(), String> {
        let f = &self.file;
        if f.claim_minutes == 0 {
            return Err("claim_minutes must be above 0".into());
        }
        for kind in [
            DecisionKind::Approve,
            DecisionKind::Reject,
            DecisionKind::Override,
        ] {
            let list = self.reasons(kind);
            if list.is_empty() {
                return Err(format!(
                    "reasons.{} must name at least one reason",
                    kind.as_str()
                ));
            }
            let mut seen = BTreeSet::new();
            for r in list {
                if r.trim().is_empty() || !seen.insert(r) {
                    return Err(format!(
                        "reasons.{}: `{r}` is empty or repeated",
                        kind.as_str()
                    ));
                }
            }
        }
        let slas = std::iter::once(("sla.default_minutes".to_string(), f.sla.default_minutes))
            .chain(
                f.sla
                    .queue
                    .iter()
                    .map(|(q, m)| (format!("sla.queue.{q}"), *m)),
            )
            .chain(
                f.sla
                    .tier
                    .iter()
                    .map(|(t, m)| (format!("sla.tier.{t}"), *m)),
            );
        for (name, minutes) in slas {
            if minutes == 0 {
                return Err(format!("{name} must be above 0"));
            }
            if minutes >= f.sla.expire_minutes {
                return Err(format!(
                    "{name} ({minutes}) must be under sla.expire_minutes ({}): an approval \
                     would expire before it could escalate",
                    f.sla.expire_minutes
                ));
            }
        }
        for start in f.escalation.keys() {
            let mut seen = BTreeSet::from([start.as_str()]);
            let mut role = start.as_str();
            while let Some(next) = f.escalation.get(role) {
                if !seen.insert(next) {
                    return Err(format!("escalation from `{start}` goes round in a circle"));
                }
                role = next;
            }
        }
        for (role, below) in &f.outranks {
            if below.contains(role) {
                return Err(format!("outranks.{role} names the role itself"));
            }
        }
        Ok(())
    }

    /// The reason codes a decision of `kind` may give.
    pub fn reasons(&self, kind: DecisionKind) -> &[String] {
        let r = &self.file.reasons;
        match kind {
            DecisionKind::Approve => &r.approve,
            DecisionKind::Reject => &r.reject,
            DecisionKind::Override => &r.r#override,
        }
    }

    /// Minutes an approval of `queue` for a customer of `tier` may stay pending.
    pub fn sla_minutes(&self, queue: &str, tier: Option<&str>) -> u32 {
        let sla = &self.file.sla;
        tier.and_then(|t| sla.tier.get(t))
            .or_else(|| sla.queue.get(queue))
            .copied()
            .unwrap_or(sla.default_minutes)
    }

    /// Minutes after opening an undecided approval expires.
    pub fn expire_minutes(&self) -> u32 {
        self.file.sla.expire_minutes
    }

    pub fn claim_minutes(&self) -> u32 {
        self.file.claim_minutes
    }

    pub fn separation_of_duties(&self) -> bool {
        self.file.separation_of_duties
    }

    /// How many different people must approve an approval raised for `reasons`.
    pub fn approvers_needed(&self, reasons: &[String]) -> u32 {
        if reasons.iter().any(|r| self.file.four_eyes.contains(r)) {
            2
        } else {
            1
        }
    }

    /// The role an escalated approval of `role` moves to (none: it stays, escalated).
    pub fn escalation_of(&self, role: &str) -> Option<&str> {
        self.file.escalation.get(role).map(String::as_str)
    }

    /// Whether someone holding `held` may decide what `needed` decides: the role itself, or one
    /// that outranks it (directly or through others).
    pub fn may_decide(&self, held: &[String], needed: &str) -> bool {
        let mut open: Vec<&str> = held.iter().map(String::as_str).collect();
        let mut seen = BTreeSet::new();
        while let Some(role) = open.pop() {
            if role == needed {
                return true;
            }
            if seen.insert(role) {
                if let Some(below) = self.file.outranks.get(role) {
                    open.extend(below.iter().map(String::as_str));
                }
            }
        }
        false
    }

    /// Every role the policy names, for checking users' roles.
    pub fn roles(&self) -> BTreeSet<&str> {
        let f = &self.file;
        f.escalation
            .iter()
            .flat_map(|(a, b)| [a.as_str(), b.as_str()])
            .chain(
                f.outranks.iter().flat_map(|(a, b)| {
                    std::iter::once(a.as_str()).chain(b.iter().map(String::as_str))
                }),
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed() -> String {
        include_str!("../../policies/approvals.toml").to_string()
    }

    #[test]
    fn the_committed_policy_reads_as_written() {
        let p = ApprovalPolicy::default();
        assert_eq!(p.sla_minutes("priority_approval", None), 60);
        assert_eq!(p.sla_minutes("priority_approval", Some("premium")), 30);
        assert_eq!(p.sla_minutes("unknown_queue", Some("standard")), 120);
        assert_eq!(p.approvers_needed(&["very_high_value".into()]), 2);
        assert_eq!(p.approvers_needed(&["critical_risk".into()]), 1);
        assert_eq!(
            p.escalation_of("dispatch_manager"),
            Some("operations_director")
        );
        assert!(p.may_decide(&["operations_director".into()], "dispatch_manager"));
        assert!(!p.may_decide(&["dispatch_manager".into()], "operations_director"));
        assert!(!p.may_decide(&["account_manager".into()], "dispatch_manager"));
        assert!(p
            .reasons(DecisionKind::Override)
            .contains(&"faster_carrier".to_string()));
    }

    #[test]
    fn a_policy_that_cannot_work_is_refused_naming_why() {
        let cases = [
            (committed().replace("claim_minutes = 15", "claim_minutes = 0"), "claim_minutes"),
            (committed().replace("premium = 30", "premium = 2000"), "sla.tier.premium"),
            (
                committed().replace(
                    "finance_director = [\"credit_controller\"]",
                    "finance_director = [\"finance_director\"]",
                ),
                "names the role itself",
            ),
            (
                committed().replace(
                    "credit_controller = \"finance_director\"",
                    "credit_controller = \"finance_director\"\nfinance_director = \"credit_controller\"",
                ),
                "circle",
            ),
            (
                committed().replace(
                    "reject = [\"hold_for_customer\", \"credit_not_cleared\", \"documents_missing\", \"unsafe_to_ship\"]",
                    "reject = []",
                ),
                "reasons.reject",
            ),
            (committed().replace("[sla]", "[sla]\nbogus = 1"), "bogus"),
        ];
        for (text, expected) in cases {
            let e = ApprovalPolicy::from_toml(&text).unwrap_err();
            assert!(e.contains(expected), "{expected}: {e}");
        }
    }
}
