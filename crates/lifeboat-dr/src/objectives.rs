//! Recovery objectives (the seed's §3.1 table) and which of them bind a
//! source: a source "covers" scenarios; its RTO objective is the tightest
//! RTO among them, its RPO objective the tightest non-zero RPO. A zero RPO
//! ("no data loss") cannot be met by backups at all, only by replication, so
//! it is reported apart instead of making every backup look late.
//!
//! What Lifeboat cannot measure (a scenario no source covers, an RPO of 0)
//! may be covered elsewhere — Kubernetes restarting a pod, a replica in
//! another region — and a person says so in the configuration, with their
//! name and a date: [`CoveredElsewhere`]. `status` shows that statement
//! instead of judging the scenario itself.

use chrono::{NaiveDate, TimeDelta};
use serde::Serialize;

/// One row of the objectives table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Objective {
    pub scenario: String,
    #[serde(serialize_with = "seconds")]
    pub rto: TimeDelta,
    #[serde(serialize_with = "seconds")]
    pub rpo: TimeDelta,
    pub priority: Option<String>,
    /// A person's statement that something outside Lifeboat covers this
    /// scenario (`null` when none is configured).
    pub covered_elsewhere: Option<CoveredElsewhere>,
}

/// "Kubernetes restarts the pod", attested by whom and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CoveredElsewhere {
    pub covered_by: String,
    pub attested_by: String,
    pub attested_at: NaiveDate,
}

impl CoveredElsewhere {
    /// "Kubernetes restarts the pod (attested by Jane Roe on 2026-11-30)".
    pub fn describe(&self) -> String {
        format!(
            "{} (attested by {} on {})",
            self.covered_by, self.attested_by, self.attested_at
        )
    }
}

fn seconds<S: serde::Serializer>(d: &TimeDelta, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(d.num_seconds())
}

/// An objective bound to a source, with the scenario that sets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub scenario: String,
    pub seconds: i64,
}

/// The objectives that bind one source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SourceObjectives {
    pub rto: Option<Target>,
    pub rpo: Option<Target>,
    /// Covered scenarios with RPO 0: met only by replication, not backups.
    pub zero_rpo: Vec<String>,
}

/// The binding objectives of a source covering `covers`. Scenarios missing
/// from `objectives` are ignored (the configuration refuses them anyway).
pub fn for_source(objectives: &[Objective], covers: &[String]) -> SourceObjectives {
    let mut out = SourceObjectives::default();
    for o in objectives.iter().filter(|o| covers.contains(&o.scenario)) {
        let rto = o.rto.num_seconds();
        if out.rto.as_ref().is_none_or(|t| rto < t.seconds) {
            out.rto = Some(Target {
                scenario: o.scenario.clone(),
                seconds: rto,
            });
        }
        let rpo = o.rpo.num_seconds();
        if rpo <= 0 {
            out.zero_rpo.push(o.scenario.clone());
        } else if out.rpo.as_ref().is_none_or(|t| rpo < t.seconds) {
            out.rpo = Some(Target {
                scenario: o.scenario.clone(),
                seconds: rpo,
            });
        }
    }
    out
}

#[cfg(test)]
pub(crate) fn seed_table() -> Vec<Objective> {
    let o = |s: &str, rto_m: i64, rpo_m: i64, p: &str| Objective {
        scenario: s.into(),
        rto: TimeDelta::minutes(rto_m),
        rpo: TimeDelta::minutes(rpo_m),
        priority: Some(p.into()),
        covered_elsewhere: None,
    };
    vec![
        o("single-pod-failure", 1, 0, "P0"),
        o("service-failure", 5, 0, "P0"),
        o("database-corruption", 30, 60, "P1"),
        o("region-failure", 15, 5, "P0"),
        o("complete-outage", 120, 60, "P1"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn kubernaut_database_is_bound_by_corruption_rto_and_the_hourly_rpo() {
        let o = for_source(
            &seed_table(),
            &covers(&["database-corruption", "complete-outage"]),
        );
        assert_eq!(
            o.rto,
            Some(Target {
                scenario: "database-corruption".into(),
                seconds: 1800
            })
        );
        assert_eq!(o.rpo.as_ref().map(|t| t.seconds), Some(3600));
        assert!(o.zero_rpo.is_empty());
    }

    #[test]
    fn zero_rpo_scenarios_are_set_apart() {
        let o = for_source(
            &seed_table(),
            &covers(&["single-pod-failure", "complete-outage"]),
        );
        assert_eq!(o.zero_rpo, ["single-pod-failure"]);
        assert_eq!(o.rpo.map(|t| t.scenario), Some("complete-outage".into()));
        assert_eq!(o.rto.map(|t| t.seconds), Some(60));
    }

    #[test]
    fn no_covers_no_objectives() {
        assert_eq!(for_source(&seed_table(), &[]), SourceObjectives::default());
    }
}
