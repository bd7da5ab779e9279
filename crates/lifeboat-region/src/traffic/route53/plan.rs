//! The plan: what to change in Route 53 so that the hosted zone holds the
//! desired weighted records and health checks. A pure function of the
//! desired records and what the API returned; [`super::Route53Provider`]
//! reads and applies.
//!
//! Which health checks are ours: every check the provider creates has a
//! caller reference starting with `lifeboat-` (derived from the zone, the
//! record and the settings, [`caller_reference`]) and tags naming the zone,
//! record name, type and set identifier. Health checks are account-wide,
//! so the tags say which zone a check belongs to; a check whose tagging was
//! interrupted is recognised by its caller reference and tagged again.
//! Which records are ours: the desired ones, and any weighted record in the
//! zone whose health check is ours (a region removed from the
//! configuration: deleted). Other records at a managed name are left alone
//! and reported in the plan's notes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use super::model::{
    CALLER_REFERENCE_PREFIX, HealthCheckSettings, ModelError, RecordKey, RecordSetState,
    RecordType, WeightedRecord, caller_reference, normalize_name, normalize_values,
};

/// Tag keys on the provider's health checks.
pub const TAG_ZONE: &str = "lifeboat:zone";
pub const TAG_RECORD: &str = "lifeboat:record";
pub const TAG_TYPE: &str = "lifeboat:type";
pub const TAG_SET_IDENTIFIER: &str = "lifeboat:set-identifier";
/// The console shows this one.
pub const TAG_NAME: &str = "Name";

/// The hosted zone the records live in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Zone {
    /// Without the `/hostedzone/` prefix.
    pub id: String,
    /// Normalised (lower case, trailing dot).
    pub name: String,
}

/// A record set as `ListResourceRecordSets` returned it (name normalised,
/// everything else as it came: a `DELETE` must repeat it exactly).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedRecord {
    pub name: String,
    pub record_type: String,
    pub set_identifier: Option<String>,
    pub weight: Option<i64>,
    pub ttl: Option<i64>,
    pub values: Vec<String>,
    /// An alias record's target name.
    pub alias_target: Option<String>,
    pub health_check_id: Option<String>,
    /// Failover, latency, geolocation, multivalue, CIDR or geoproximity
    /// routing: not a weighted record.
    pub other_routing: bool,
}

impl ObservedRecord {
    /// Its key, when it is a weighted record of a type we manage.
    pub fn key(&self) -> Option<RecordKey> {
        let record_type = RecordType::parse(&self.record_type)?;
        if self.weight.is_none() || self.other_routing || self.alias_target.is_some() {
            return None;
        }
        Some(RecordKey {
            name: self.name.clone(),
            record_type,
            set_identifier: self.set_identifier.clone()?,
        })
    }

    /// Its contents, normalised, when it is a weighted record we manage.
    pub fn state(&self) -> Option<RecordSetState> {
        let key = self.key()?;
        Some(RecordSetState {
            values: normalize_values(key.record_type, &self.values),
            key,
            weight: self.weight.unwrap_or_default(),
            ttl: self.ttl.unwrap_or_default(),
            health_check_id: self.health_check_id.clone(),
        })
    }
}

/// A health check as `ListHealthChecks` and `ListTagsForResources` returned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedCheck {
    pub id: String,
    pub caller_reference: String,
    /// For `UpdateHealthCheck`'s optimistic concurrency.
    pub version: i64,
    pub settings: HealthCheckSettings,
    pub tags: BTreeMap<String, String>,
}

impl ObservedCheck {
    /// The record it belongs to, when its tags say it is ours in `zone_id`.
    pub fn owner(&self, zone_id: &str) -> Option<RecordKey> {
        if !self.caller_reference.starts_with(CALLER_REFERENCE_PREFIX)
            || self.tags.get(TAG_ZONE).map(String::as_str) != Some(zone_id)
        {
            return None;
        }
        Some(RecordKey {
            name: normalize_name(self.tags.get(TAG_RECORD)?),
            record_type: RecordType::parse(self.tags.get(TAG_TYPE)?)?,
            set_identifier: self.tags.get(TAG_SET_IDENTIFIER)?.clone(),
        })
    }

    /// Made by the provider but never tagged (interrupted after
    /// `CreateHealthCheck`): its zone is known only by its caller reference.
    fn untagged_ours(&self) -> bool {
        self.caller_reference.starts_with(CALLER_REFERENCE_PREFIX)
            && !self.tags.contains_key(TAG_ZONE)
    }
}

/// What the zone and the account hold now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Observed {
    pub records: Vec<ObservedRecord>,
    pub checks: Vec<ObservedCheck>,
}

/// Which health check an upserted record points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckRef {
    None,
    Existing(String),
    /// The one this plan's `CreateHealthCheck` for the same record makes.
    New,
}

/// One change, in the order [`super::Route53Provider::apply`] makes them:
/// health checks first, then one change batch of record sets, then the
/// health checks nothing points at any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Change {
    CreateHealthCheck {
        record: RecordKey,
        caller_reference: String,
        settings: HealthCheckSettings,
        /// The check it replaces (deleted after the records move).
        replaces: Option<String>,
    },
    UpdateHealthCheck {
        record: RecordKey,
        id: String,
        version: i64,
        from: HealthCheckSettings,
        to: HealthCheckSettings,
    },
    /// Tags a check of ours whose tagging was interrupted.
    TagHealthCheck {
        record: RecordKey,
        id: String,
    },
    UpsertRecord {
        from: Option<RecordSetState>,
        /// `health_check_id` is filled in at apply time when `health_check`
        /// is [`HealthCheckRef::New`].
        to: RecordSetState,
        health_check: HealthCheckRef,
    },
    DeleteRecord {
        current: ObservedRecord,
    },
    DeleteHealthCheck {
        id: String,
        record: Option<RecordKey>,
        reason: DeleteReason,
    },
}

/// Why a health check goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteReason {
    /// A setting `UpdateHealthCheck` cannot change changed.
    Replaced,
    /// A second check for the same record.
    Duplicate,
    /// Its record is gone from the configuration or has no check now.
    Orphaned,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::CreateHealthCheck {
                record,
                settings,
                replaces,
                ..
            } => {
                write!(f, "create health check for {record}: {settings}")?;
                if let Some(old) = replaces {
                    write!(f, " (replaces {old})")?;
                }
                Ok(())
            }
            Change::UpdateHealthCheck {
                record,
                id,
                from,
                to,
                ..
            } => write!(f, "update health check {id} for {record}: {from} => {to}"),
            Change::TagHealthCheck { record, id } => {
                write!(f, "tag health check {id} as {record}'s")
            }
            Change::UpsertRecord {
                from,
                to,
                health_check,
            } => {
                let hc = match health_check {
                    HealthCheckRef::New => " (health check: the new one)",
                    _ => "",
                };
                match from {
                    None => write!(f, "UPSERT (create) {to}{hc}"),
                    Some(old) => write!(f, "UPSERT {to}{hc} (was: {old})"),
                }
            }
            Change::DeleteRecord { current } => write!(
                f,
                "DELETE {} {} [{}] (its health check is ours, its region is no longer configured)",
                current.name,
                current.record_type,
                current.set_identifier.as_deref().unwrap_or("")
            ),
            Change::DeleteHealthCheck { id, record, reason } => {
                write!(f, "delete health check {id}")?;
                if let Some(r) = record {
                    write!(f, " of {r}")?;
                }
                write!(f, " ({reason:?})")
            }
        }
    }
}

/// The changes and what the planner noticed but leaves alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub notes: Vec<String>,
}

impl Plan {
    /// Nothing to do: the zone holds what the configuration says.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// A configuration the zone cannot take as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("route53: {0}")]
    Invalid(#[from] ModelError),
    #[error("route53: {0} is configured twice")]
    Duplicate(RecordKey),
    #[error(
        "route53: {0}; Route 53 would refuse the change. Remove or rename that record (or change the configured name), then apply again"
    )]
    Conflict(String),
}

/// The changes that make `zone` hold `desired` given `observed`.
pub fn plan(
    zone: &Zone,
    desired: &[WeightedRecord],
    observed: &Observed,
) -> Result<Plan, PlanError> {
    let mut seen = BTreeSet::new();
    for d in desired {
        d.validate(&zone.name)?;
        if !seen.insert(d.key()) {
            return Err(PlanError::Duplicate(d.key()));
        }
    }
    let mut desired: Vec<&WeightedRecord> = desired.iter().collect();
    desired.sort_by_key(|d| d.key());

    // Our checks in this zone, by the record they belong to.
    let mut owned: BTreeMap<RecordKey, Vec<&ObservedCheck>> = BTreeMap::new();
    for c in &observed.checks {
        if let Some(k) = c.owner(&zone.id) {
            owned.entry(k).or_default().push(c);
        }
    }
    let ours_ids: BTreeSet<&str> = observed
        .checks
        .iter()
        .filter(|c| c.owner(&zone.id).is_some() || c.untagged_ours())
        .map(|c| c.id.as_str())
        .collect();
    let desired_keys: BTreeSet<RecordKey> = desired.iter().map(|d| d.key()).collect();

    // Records that go: weighted, ours by their health check, not desired.
    let deleted: Vec<&ObservedRecord> = observed
        .records
        .iter()
        .filter(|r| {
            r.key().is_some_and(|k| !desired_keys.contains(&k))
                && r.health_check_id
                    .as_deref()
                    .is_some_and(|id| ours_ids.contains(id))
        })
        .collect();

    let mut notes = Vec::new();
    check_conflicts(&desired, observed, &deleted, &mut notes)?;

    let mut checks = Vec::new();
    let mut records = Vec::new();
    let mut retire = Vec::new();
    let mut used = BTreeSet::new();
    for d in &desired {
        let key = d.key();
        let current = observed
            .records
            .iter()
            .find(|r| r.key().as_ref() == Some(&key));
        let current_state = current.and_then(ObservedRecord::state);
        let current_hc = current.and_then(|r| r.health_check_id.as_deref());
        let mut candidates: Vec<&ObservedCheck> = owned.get(&key).cloned().unwrap_or_default();
        let hc_ref = match &d.health_check {
            None => {
                for c in candidates {
                    retire.push((c.id.clone(), Some(key.clone()), DeleteReason::Orphaned));
                }
                HealthCheckRef::None
            }
            Some(cfg) => {
                let want = cfg.settings();
                let reference = caller_reference(&zone.id, &key, &want, 0);
                for c in &observed.checks {
                    let same_ref = c.caller_reference == reference
                        || c.caller_reference.starts_with(&format!("{reference}-"));
                    if c.untagged_ours() && same_ref {
                        candidates.push(c);
                    }
                }
                // Keep the one the record points at, else one already right.
                candidates.sort_by_key(|c| {
                    (
                        Some(c.id.as_str()) != current_hc,
                        c.settings != want,
                        c.id.clone(),
                    )
                });
                let mut rest = candidates.into_iter();
                let hc_ref = match rest.next() {
                    None => {
                        checks.push(Change::CreateHealthCheck {
                            record: key.clone(),
                            caller_reference: reference,
                            settings: want,
                            replaces: None,
                        });
                        HealthCheckRef::New
                    }
                    Some(c) => {
                        used.insert(c.id.clone());
                        if c.untagged_ours() {
                            checks.push(Change::TagHealthCheck {
                                record: key.clone(),
                                id: c.id.clone(),
                            });
                        }
                        if c.settings == want {
                            HealthCheckRef::Existing(c.id.clone())
                        } else if c.settings.needs_replacement(&want) {
                            checks.push(Change::CreateHealthCheck {
                                record: key.clone(),
                                caller_reference: reference,
                                settings: want,
                                replaces: Some(c.id.clone()),
                            });
                            retire.push((c.id.clone(), Some(key.clone()), DeleteReason::Replaced));
                            HealthCheckRef::New
                        } else {
                            checks.push(Change::UpdateHealthCheck {
                                record: key.clone(),
                                id: c.id.clone(),
                                version: c.version,
                                from: c.settings.clone(),
                                to: want,
                            });
                            HealthCheckRef::Existing(c.id.clone())
                        }
                    }
                };
                for c in rest {
                    used.insert(c.id.clone());
                    retire.push((c.id.clone(), Some(key.clone()), DeleteReason::Duplicate));
                }
                hc_ref
            }
        };
        let id = match &hc_ref {
            HealthCheckRef::Existing(id) => Some(id.clone()),
            HealthCheckRef::None | HealthCheckRef::New => None,
        };
        let to = d.state(id);
        let changed = hc_ref == HealthCheckRef::New || current_state.as_ref() != Some(&to);
        if changed {
            records.push(Change::UpsertRecord {
                from: current_state,
                to,
                health_check: hc_ref,
            });
        }
    }
    for r in deleted {
        records.push(Change::DeleteRecord { current: r.clone() });
    }
    // Our checks in this zone whose record is no longer desired.
    for (key, cs) in &owned {
        if desired_keys.contains(key) {
            continue;
        }
        for c in cs {
            retire.push((c.id.clone(), Some(key.clone()), DeleteReason::Orphaned));
        }
    }
    for c in &observed.checks {
        if c.untagged_ours() && !used.contains(&c.id) {
            notes.push(format!(
                "health check {} (caller reference {}) was made by Lifeboat but never tagged and matches no configured record; it may belong to another hosted zone, so it is left alone (delete it by hand if it is not)",
                c.id, c.caller_reference
            ));
        }
    }
    let mut changes = checks;
    changes.extend(records);
    changes.extend(
        retire
            .into_iter()
            .map(|(id, record, reason)| Change::DeleteHealthCheck { id, record, reason }),
    );
    Ok(Plan { changes, notes })
}

/// Refuses what Route 53 would refuse, notes what it would allow but the
/// operator should know: other records sharing a managed name.
fn check_conflicts(
    desired: &[&WeightedRecord],
    observed: &Observed,
    deleted: &[&ObservedRecord],
    notes: &mut Vec<String>,
) -> Result<(), PlanError> {
    let keys: BTreeSet<RecordKey> = desired.iter().map(|d| d.key()).collect();
    let names: BTreeSet<(String, RecordType)> = keys
        .iter()
        .map(|k| (k.name.clone(), k.record_type))
        .collect();
    for r in &observed.records {
        if deleted.contains(&r) {
            continue;
        }
        for (name, rtype) in &names {
            if &r.name != name {
                continue;
            }
            let what = format!(
                "{} {}{} already exists",
                r.name,
                r.record_type,
                r.set_identifier
                    .as_deref()
                    .map(|s| format!(" [{s}]"))
                    .unwrap_or_default()
            );
            let same_type = r.record_type == rtype.as_str();
            let cname_clash = (*rtype == RecordType::Cname) != (r.record_type == "CNAME");
            if same_type {
                if r.set_identifier.is_none() {
                    return Err(PlanError::Conflict(format!(
                        "{what} as a simple (not weighted) record"
                    )));
                }
                if r.key().is_none() {
                    return Err(PlanError::Conflict(format!(
                        "{what} with another routing policy or as an alias"
                    )));
                }
                if r.key().is_some_and(|k| !keys.contains(&k)) {
                    notes.push(format!(
                        "{what}, not made by Lifeboat: it shares the answers for {name} by its weight; Lifeboat leaves it alone"
                    ));
                }
            } else if cname_clash && !matches!(r.record_type.as_str(), "NS" | "SOA") {
                return Err(PlanError::Conflict(format!(
                    "{what}, and a CNAME cannot share its name with other records"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::model::{HealthCheckConfig, RecordType, WeightedRecord};
    use super::*;

    const ZONE: &str = "Z0123";

    fn zone() -> Zone {
        Zone {
            id: ZONE.into(),
            name: "kubernaut.io.".into(),
        }
    }

    fn region(set: &str, ip: &str) -> WeightedRecord {
        let mut r = WeightedRecord::new("gateway.kubernaut.io", RecordType::A, set, &[ip]);
        r.health_check = Some(HealthCheckConfig::https(
            &format!("gateway.{set}.kubernaut.io"),
            "/healthz",
        ));
        r
    }

    fn seed() -> Vec<WeightedRecord> {
        vec![
            region("us-east", "192.0.2.10"),
            region("eu-west", "198.51.100.20"),
        ]
    }

    fn tags(key: &RecordKey) -> BTreeMap<String, String> {
        [
            (TAG_ZONE, ZONE.to_string()),
            (TAG_RECORD, key.name.clone()),
            (TAG_TYPE, key.record_type.to_string()),
            (TAG_SET_IDENTIFIER, key.set_identifier.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn check_of(d: &WeightedRecord, id: &str) -> ObservedCheck {
        let settings = d.health_check.as_ref().unwrap().settings();
        ObservedCheck {
            id: id.into(),
            caller_reference: caller_reference(ZONE, &d.key(), &settings, 0),
            version: 1,
            settings,
            tags: tags(&d.key()),
        }
    }

    fn record_of(d: &WeightedRecord, hc: Option<&str>) -> ObservedRecord {
        ObservedRecord {
            name: d.key().name,
            record_type: d.record_type.to_string(),
            set_identifier: Some(d.set_identifier.clone()),
            weight: Some(i64::from(d.weight)),
            ttl: Some(i64::from(d.ttl)),
            values: d.values.clone(),
            alias_target: None,
            health_check_id: hc.map(str::to_string),
            other_routing: false,
        }
    }

    /// The zone after a complete apply of `desired` (check ids hc-<set>).
    fn applied(desired: &[WeightedRecord]) -> Observed {
        let mut o = Observed::default();
        for d in desired {
            let id = format!("hc-{}", d.set_identifier);
            o.checks.push(check_of(d, &id));
            o.records.push(record_of(d, Some(&id)));
        }
        o
    }

    fn actions(p: &Plan) -> Vec<String> {
        p.changes
            .iter()
            .map(|c| {
                let (a, k) = match c {
                    Change::CreateHealthCheck {
                        record, replaces, ..
                    } => (
                        format!(
                            "create-hc{}",
                            replaces
                                .as_ref()
                                .map(|r| format!(" replacing {r}"))
                                .unwrap_or_default()
                        ),
                        record.set_identifier.clone(),
                    ),
                    Change::UpdateHealthCheck { record, id, .. } => {
                        (format!("update-hc {id}"), record.set_identifier.clone())
                    }
                    Change::TagHealthCheck { record, id } => {
                        (format!("tag-hc {id}"), record.set_identifier.clone())
                    }
                    Change::UpsertRecord {
                        to, health_check, ..
                    } => (
                        format!("upsert hc={health_check:?}"),
                        to.key.set_identifier.clone(),
                    ),
                    Change::DeleteRecord { current } => (
                        "delete-record".into(),
                        current.set_identifier.clone().unwrap_or_default(),
                    ),
                    Change::DeleteHealthCheck { id, reason, .. } => {
                        (format!("delete-hc {id} {reason:?}"), String::new())
                    }
                };
                format!("{a} {k}").trim().to_string()
            })
            .collect()
    }

    #[test]
    fn plans_from_empty_changed_and_applied_zones() {
        let desired = seed();
        let done = applied(&desired);
        let mut heavier = desired.clone();
        heavier[1].weight = 0;
        let mut moved = desired.clone();
        moved[0].values = vec!["192.0.2.99".into()];
        let mut slower = desired.clone();
        slower[0].health_check.as_mut().unwrap().failure_threshold = 5;
        let mut faster = desired.clone();
        faster[0].health_check.as_mut().unwrap().request_interval = 10;
        let mut unchecked = desired.clone();
        unchecked[1].health_check = None;
        let only_us = vec![desired[0].clone()];
        let mut untagged = done.clone();
        untagged.checks[0].tags.clear();
        let mut lost_tags_and_record = Observed::default();
        let mut c = check_of(&desired[0], "hc-us-east");
        c.tags.clear();
        lost_tags_and_record.checks.push(c);
        let mut dup = done.clone();
        dup.checks.push(check_of(&desired[0], "hc-us-east-2"));
        let mut foreign_check = done.clone();
        foreign_check.records[0].health_check_id = Some("someone-elses".into());
        let mut other_zone = Observed::default();
        let mut oc = check_of(&desired[0], "hc-other-zone");
        oc.tags.insert(TAG_ZONE.into(), "ZOTHER".into());
        other_zone.checks.push(oc);
        let mut aaaa_spelling = desired.clone();
        aaaa_spelling[0] = WeightedRecord {
            record_type: RecordType::Aaaa,
            values: vec!["2001:DB8::1".into()],
            ..desired[0].clone()
        };
        let mut aaaa_done = applied(&aaaa_spelling);
        aaaa_done.records[0].values = vec!["2001:db8:0:0::1".into()];

        let table: Vec<(&str, Vec<WeightedRecord>, Observed, Vec<&str>)> = vec![
            (
                "empty zone",
                desired.clone(),
                Observed::default(),
                vec![
                    "create-hc eu-west",
                    "create-hc us-east",
                    "upsert hc=New eu-west",
                    "upsert hc=New us-east",
                ],
            ),
            ("applied", desired.clone(), done.clone(), vec![]),
            (
                "weight",
                heavier,
                done.clone(),
                vec!["upsert hc=Existing(\"hc-eu-west\") eu-west"],
            ),
            (
                "address",
                moved,
                done.clone(),
                vec!["upsert hc=Existing(\"hc-us-east\") us-east"],
            ),
            (
                "threshold: updated in place",
                slower,
                done.clone(),
                vec!["update-hc hc-us-east us-east"],
            ),
            (
                "interval: replaced",
                faster,
                done.clone(),
                vec![
                    "create-hc replacing hc-us-east us-east",
                    "upsert hc=New us-east",
                    "delete-hc hc-us-east Replaced",
                ],
            ),
            (
                "check dropped",
                unchecked,
                done.clone(),
                vec!["upsert hc=None eu-west", "delete-hc hc-eu-west Orphaned"],
            ),
            (
                "region removed",
                only_us,
                done.clone(),
                vec!["delete-record eu-west", "delete-hc hc-eu-west Orphaned"],
            ),
            (
                "tagging interrupted",
                desired.clone(),
                untagged,
                vec!["tag-hc hc-us-east us-east"],
            ),
            (
                "interrupted before the records",
                desired.clone(),
                lost_tags_and_record,
                vec![
                    "create-hc eu-west",
                    "tag-hc hc-us-east us-east",
                    "upsert hc=New eu-west",
                    "upsert hc=Existing(\"hc-us-east\") us-east",
                ],
            ),
            (
                "duplicate check",
                desired.clone(),
                dup,
                vec!["delete-hc hc-us-east-2 Duplicate"],
            ),
            (
                "record points at a check not ours",
                desired.clone(),
                foreign_check,
                vec!["upsert hc=Existing(\"hc-us-east\") us-east"],
            ),
            (
                "a check of another zone is not ours",
                vec![desired[0].clone()],
                other_zone,
                vec!["create-hc us-east", "upsert hc=New us-east"],
            ),
            (
                "addresses compare canonically",
                aaaa_spelling,
                aaaa_done,
                vec![],
            ),
        ];
        for (what, desired, observed, want) in table {
            let p = plan(&zone(), &desired, &observed).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(actions(&p), want, "{what}");
        }
    }

    #[test]
    fn the_upsert_carries_everything_the_record_needs() {
        let mut desired = seed();
        desired[0].weight = 7;
        desired[0].ttl = 30;
        let p = plan(&zone(), &desired, &applied(&seed())).unwrap();
        let [
            Change::UpsertRecord {
                from,
                to,
                health_check,
            },
        ] = p.changes.as_slice()
        else {
            panic!("{:?}", p.changes)
        };
        assert_eq!(from.as_ref().unwrap().weight, 100);
        assert_eq!(to.weight, 7);
        assert_eq!(to.ttl, 30);
        assert_eq!(to.values, vec!["192.0.2.10".to_string()]);
        assert_eq!(to.health_check_id.as_deref(), Some("hc-us-east"));
        assert_eq!(health_check, &HealthCheckRef::Existing("hc-us-east".into()));
        assert_eq!(to.key.set_identifier, "us-east");
    }

    #[test]
    fn refuses_what_route53_would_refuse() {
        let desired = seed();
        let simple = ObservedRecord {
            set_identifier: None,
            weight: None,
            ..record_of(&desired[0], None)
        };
        let failover = ObservedRecord {
            set_identifier: Some("primary".into()),
            weight: None,
            other_routing: true,
            ..record_of(&desired[0], None)
        };
        let cname = ObservedRecord {
            record_type: "CNAME".into(),
            values: vec!["elsewhere.example.com.".into()],
            ..record_of(&desired[0], None)
        };
        let mut dup = desired.clone();
        dup.push(desired[0].clone());
        let table: Vec<(Vec<WeightedRecord>, Vec<ObservedRecord>, &str)> = vec![
            (desired.clone(), vec![simple], "simple (not weighted)"),
            (desired.clone(), vec![failover], "another routing policy"),
            (desired.clone(), vec![cname], "CNAME cannot share"),
            (dup, vec![], "configured twice"),
        ];
        for (d, records, want) in table {
            let observed = Observed {
                records,
                checks: vec![],
            };
            let e = plan(&zone(), &d, &observed).unwrap_err().to_string();
            assert!(e.contains(want), "{e} should say {want}");
        }
    }

    #[test]
    fn foreign_weighted_records_are_left_alone_and_noted() {
        let desired = seed();
        let mut observed = applied(&desired);
        let mut legacy = record_of(&desired[0], None);
        legacy.set_identifier = Some("legacy".into());
        observed.records.push(legacy);
        let p = plan(&zone(), &desired, &observed).unwrap();
        assert!(p.is_empty(), "{:?}", p.changes);
        assert_eq!(p.notes.len(), 1);
        assert!(p.notes[0].contains("[legacy]"), "{}", p.notes[0]);
    }
}
