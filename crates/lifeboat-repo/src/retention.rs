//! Retention planning: which snapshots of one group to keep and which to forget.
//!
//! This is a pure function over data ([`plan`]): no IO and no clock reads, the
//! current time is a parameter. `plan` looks at one group at a time.
//!
//! # Groups
//!
//! Retention counts each [`Group`] on its own: the snapshots of one source
//! with one scope (`full`, `tables: public.audit`, `schema-only`, …; see
//! `lifeboat_repo::snapshot::Scope`). A `backup postgres --table T` snapshot
//! is not a newer version of the full backups, so it must not use up their
//! `keep_last` count or occupy their buckets: `keep_last: 1` keeps the newest
//! full snapshot *and* the newest of each partial scope. A source's physical
//! base backups are a group of their own too ([`PHYSICAL_GROUP`],
//! [`group_key`]). [`group`] sorts snapshots into groups; [`plan_grouped`]
//! plans every group under one policy.
//!
//! # Rules
//!
//! The policy is modelled on restic's `forget`:
//!
//! * `keep_last: N` keeps the N newest snapshots.
//! * `keep_hourly/daily/weekly/monthly/yearly: N` keep the newest snapshot of
//!   each of the N newest hours/days/ISO weeks/months/years that have
//!   snapshots. Buckets are computed in UTC; weeks are ISO 8601 weeks (they
//!   start on Monday and the first week of a year is the one holding its first
//!   Thursday, so 2025-12-29 belongs to `2026-W01`).
//! * `keep_within: D` keeps every snapshot taken within D of the reference
//!   time (see below).
//! * `keep_within_hourly/daily/weekly/monthly/yearly: D` keep the newest
//!   snapshot of every hour/day/… within D of the reference time. This is
//!   what "hourly backups kept 30 days" means (`keep_within_hourly: 30d`, one
//!   snapshot per hour for 30 days) and what `examples/kubernaut.yaml` uses.
//!
//! A snapshot is kept when any rule keeps it, and the plan says which rules
//! did ([`Reason`]). The newest snapshot in a bucket is the one kept; several
//! snapshots in one hour keep only the newest for that hour's bucket. Equal
//! times are ordered by id (the greater id counts as newer), so the plan never
//! depends on input order.
//!
//! # Reference time and safety
//!
//! Windows (`within`) are measured back from the newest snapshot that is not
//! in the future, not from `now`, exactly like restic: when backups stop
//! failing silently for longer than the window, `forget` still keeps the last
//! window's worth of history instead of deleting everything. A window excludes
//! its far end, so `keep_within_hourly: 30d` over hourly snapshots keeps
//! exactly 720 of them.
//!
//! Snapshots dated after `now` (clock skew on the machine that took them) are
//! always kept, with [`Reason::Future`], and take no part in the rules: they
//! do not use up a `keep_last` count, do not occupy a bucket and do not move
//! the reference time, so they can never push a real snapshot out.
//!
//! A policy without any rule (or with only zero counts and zero durations)
//! is *empty*: [`RetentionPolicy::is_empty`]. `plan` keeps everything under an
//! empty policy, and callers must refuse to run `forget` with one rather than
//! rely on that.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::fmt;

use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// Errors of this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    /// A duration string could not be parsed.
    #[error(
        "invalid duration {input:?}: {reason}; write a number and a unit, like 30d, 12h, 90m or 1d12h \
         (units: s, m, h, d, w, y = 365d)"
    )]
    InvalidDuration { input: String, reason: String },
}

/// One snapshot of a group, as far as retention is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    pub id: String,
    pub time: DateTime<Utc>,
}

/// The scope key of a full snapshot (`Scope::key` of the whole source).
pub const FULL_SCOPE: &str = "full";

/// The group key of a source's physical base backups
/// ([`crate::physical::KIND`]): counted on their own, so that a source
/// backed up logically every hour and physically every day does not have
/// its base backups pushed out by `keep_last` of the hourly ones (nor the
/// other way round).
pub const PHYSICAL_GROUP: &str = "physical";

/// The group key of `s` within its source: [`PHYSICAL_GROUP`] for a base
/// backup, else its scope's key ([`FULL_SCOPE`] for a full snapshot).
pub fn group_key(s: &crate::snapshot::Snapshot) -> String {
    if s.kind == crate::physical::KIND {
        PHYSICAL_GROUP.to_string()
    } else {
        s.scope().key()
    }
}

/// Snapshots that retention counts together: one source, one scope (the
/// scope's key, [`FULL_SCOPE`] for full snapshots). Ordered by source, then
/// the full group first, then by scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Group {
    pub source: String,
    pub scope: String,
}

impl Group {
    pub fn new(source: impl Into<String>, scope: impl Into<String>) -> Self {
        Group {
            source: source.into(),
            scope: scope.into(),
        }
    }

    pub fn is_full(&self) -> bool {
        self.scope == FULL_SCOPE
    }
}

impl Ord for Group {
    fn cmp(&self, other: &Self) -> Ordering {
        self.source
            .cmp(&other.source)
            .then_with(|| other.is_full().cmp(&self.is_full()))
            .then_with(|| self.scope.cmp(&other.scope))
    }
}

impl PartialOrd for Group {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Sorts snapshots into their groups (see the module docs).
pub fn group(
    snapshots: impl IntoIterator<Item = (Group, SnapshotSummary)>,
) -> BTreeMap<Group, Vec<SnapshotSummary>> {
    let mut out: BTreeMap<Group, Vec<SnapshotSummary>> = BTreeMap::new();
    for (g, s) in snapshots {
        out.entry(g).or_default().push(s);
    }
    out
}

/// [`plan`] for every group of `snapshots` under one policy, in [`Group`]
/// order. Every input id appears in exactly one group's plan.
pub fn plan_grouped(
    snapshots: impl IntoIterator<Item = (Group, SnapshotSummary)>,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
) -> Vec<(Group, RetentionPlan)> {
    group(snapshots)
        .into_iter()
        .map(|(g, list)| {
            let p = plan(&list, policy, now);
            (g, p)
        })
        .collect()
}

/// Which snapshots to keep. All rules are optional; see the module docs.
///
/// In configuration files durations are strings such as `30d`, `12h`, `1d12h`
/// ([`parse_duration`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionPolicy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_hourly: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<u32>,
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<TimeDelta>,
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub keep_within_hourly: Option<TimeDelta>,
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub keep_within_daily: Option<TimeDelta>,
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub keep_within_weekly: Option<TimeDelta>,
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub keep_within_monthly: Option<TimeDelta>,
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub keep_within_yearly: Option<TimeDelta>,
}

impl RetentionPolicy {
    /// True when the policy has no rule that keeps anything: every field is
    /// unset, zero, or a zero/negative duration. Forgetting with such a policy
    /// would delete every snapshot, so callers refuse it.
    pub fn is_empty(&self) -> bool {
        let counts = [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ];
        counts.iter().all(|c| c.unwrap_or(0) == 0)
            && self.windows().iter().all(|(_, d)| d.is_none())
            && positive(self.keep_within).is_none()
    }

    fn counted(&self) -> [(Bucket, Option<u32>); 5] {
        [
            (Bucket::Hourly, self.keep_hourly),
            (Bucket::Daily, self.keep_daily),
            (Bucket::Weekly, self.keep_weekly),
            (Bucket::Monthly, self.keep_monthly),
            (Bucket::Yearly, self.keep_yearly),
        ]
    }

    /// The `keep_within_*` rules that are set to a positive duration.
    fn windows(&self) -> [(Bucket, Option<TimeDelta>); 5] {
        [
            (Bucket::Hourly, positive(self.keep_within_hourly)),
            (Bucket::Daily, positive(self.keep_within_daily)),
            (Bucket::Weekly, positive(self.keep_within_weekly)),
            (Bucket::Monthly, positive(self.keep_within_monthly)),
            (Bucket::Yearly, positive(self.keep_within_yearly)),
        ]
    }
}

fn positive(d: Option<TimeDelta>) -> Option<TimeDelta> {
    d.filter(|d| *d > TimeDelta::zero())
}

impl fmt::Display for RetentionPolicy {
    /// For example `keep the last 3; one per hour for 30d; one per day for 90d`,
    /// or `no retention rules (keeps everything)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("no retention rules (keeps everything)");
        }
        let mut parts = Vec::new();
        if let Some(n) = self.keep_last.filter(|n| *n > 0) {
            parts.push(format!("the last {n}"));
        }
        for (bucket, n) in self.counted() {
            if let Some(n) = n.filter(|n| *n > 0) {
                parts.push(format!("{n} {}", bucket.adjective()));
            }
        }
        if let Some(d) = positive(self.keep_within) {
            parts.push(format!("all within {}", format_duration(d)));
        }
        for (bucket, d) in self.windows() {
            if let Some(d) = d {
                parts.push(format!(
                    "one per {} for {}",
                    bucket.noun(),
                    format_duration(d)
                ));
            }
        }
        write!(f, "keep {}", parts.join("; "))
    }
}

/// Why a snapshot is kept. `Display` gives the human-readable form
/// (`last 3`, `hourly 2026-11-25T13`, `within 30d`, …), which is also how it
/// serializes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// One of the `n` newest snapshots (`keep_last: n`).
    Last { n: u32 },
    /// Newest snapshot of its bucket under a counted rule (`keep_daily: 7`).
    Bucket { bucket: Bucket, key: String },
    /// Taken within `within` of the reference time (`keep_within`).
    Within { within: TimeDelta },
    /// Newest snapshot of its bucket inside a window (`keep_within_daily`).
    BucketWithin {
        bucket: Bucket,
        key: String,
        within: TimeDelta,
    },
    /// Dated after `now` by `ahead`: always kept (clock skew).
    Future { ahead: TimeDelta },
    /// The policy is empty, so everything is kept.
    EmptyPolicy,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Last { n } => write!(f, "last {n}"),
            Reason::Bucket { bucket, key } => write!(f, "{} {key}", bucket.adjective()),
            Reason::Within { within } => write!(f, "within {}", format_duration(*within)),
            Reason::BucketWithin {
                bucket,
                key,
                within,
            } => write!(
                f,
                "{} {key} within {}",
                bucket.adjective(),
                format_duration(*within)
            ),
            Reason::Future { ahead } => write!(
                f,
                "dated {} in the future (clock skew?), always kept",
                format_duration(*ahead)
            ),
            Reason::EmptyPolicy => f.write_str("no retention rules, everything kept"),
        }
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A calendar bucket, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Bucket {
    fn adjective(self) -> &'static str {
        match self {
            Bucket::Hourly => "hourly",
            Bucket::Daily => "daily",
            Bucket::Weekly => "weekly",
            Bucket::Monthly => "monthly",
            Bucket::Yearly => "yearly",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Bucket::Hourly => "hour",
            Bucket::Daily => "day",
            Bucket::Weekly => "week",
            Bucket::Monthly => "month",
            Bucket::Yearly => "year",
        }
    }

    /// The bucket's key: `2026-11-25T13`, `2026-11-25`, `2026-W48`,
    /// `2026-11`, `2026`.
    pub fn key(self, t: DateTime<Utc>) -> String {
        match self {
            Bucket::Hourly => format!(
                "{:04}-{:02}-{:02}T{:02}",
                t.year(),
                t.month(),
                t.day(),
                t.hour()
            ),
            Bucket::Daily => format!("{:04}-{:02}-{:02}", t.year(), t.month(), t.day()),
            Bucket::Weekly => {
                let w = t.iso_week();
                format!("{:04}-W{:02}", w.year(), w.week())
            }
            Bucket::Monthly => format!("{:04}-{:02}", t.year(), t.month()),
            Bucket::Yearly => format!("{:04}", t.year()),
        }
    }
}

/// The outcome of [`plan`]. Both lists are ordered newest first; every input
/// id appears in exactly one of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetentionPlan {
    pub keep: Vec<(String, Vec<Reason>)>,
    pub forget: Vec<String>,
}

/// Decide which snapshots of one group to keep. See the module documentation
/// for the rules. Pure: the result depends only on the arguments, not on their
/// order.
///
/// Ids are expected to be unique; if one appears more than once it is kept
/// when any of its entries is kept, and is listed once.
pub fn plan(
    snapshots: &[SnapshotSummary],
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
) -> RetentionPlan {
    let mut sorted: Vec<&SnapshotSummary> = snapshots.iter().collect();
    // Newest first; equal times: greater id first.
    sorted.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));

    let empty = policy.is_empty();
    // The reference for windows: the newest snapshot not in the future.
    let reference = sorted
        .iter()
        .find(|s| s.time <= now)
        .map_or(now, |s| s.time);
    let window_start = |d: TimeDelta| reference.checked_sub_signed(d);
    let in_window = |t: DateTime<Utc>, d: TimeDelta| window_start(d).is_none_or(|start| t > start);

    let mut last_left = policy.keep_last.unwrap_or(0);
    let mut counted: Vec<(Bucket, u32, Option<String>)> = policy
        .counted()
        .into_iter()
        .filter_map(|(b, n)| n.filter(|n| *n > 0).map(|n| (b, n, None)))
        .collect();
    let mut windows: Vec<(Bucket, TimeDelta, Option<String>)> = policy
        .windows()
        .into_iter()
        .filter_map(|(b, d)| d.map(|d| (b, d, None)))
        .collect();
    let within = positive(policy.keep_within);

    let mut result = RetentionPlan::default();
    let mut kept_ids: HashSet<&str> = HashSet::new();
    let mut forget_candidates: Vec<&str> = Vec::new();
    for snap in sorted {
        let mut reasons = Vec::new();
        if snap.time > now {
            reasons.push(Reason::Future {
                ahead: snap.time - now,
            });
        } else if empty {
            reasons.push(Reason::EmptyPolicy);
        } else {
            if last_left > 0 {
                last_left -= 1;
                reasons.push(Reason::Last {
                    n: policy.keep_last.unwrap_or(0),
                });
            }
            for (bucket, left, last_key) in counted.iter_mut() {
                if *left == 0 {
                    continue;
                }
                let key = bucket.key(snap.time);
                if last_key.as_deref() != Some(key.as_str()) {
                    *left -= 1;
                    *last_key = Some(key.clone());
                    reasons.push(Reason::Bucket {
                        bucket: *bucket,
                        key,
                    });
                }
            }
            if let Some(d) = within.filter(|d| in_window(snap.time, *d)) {
                reasons.push(Reason::Within { within: d });
            }
            for (bucket, d, last_key) in windows.iter_mut() {
                if !in_window(snap.time, *d) {
                    continue;
                }
                let key = bucket.key(snap.time);
                if last_key.as_deref() != Some(key.as_str()) {
                    *last_key = Some(key.clone());
                    reasons.push(Reason::BucketWithin {
                        bucket: *bucket,
                        key,
                        within: *d,
                    });
                }
            }
        }
        if reasons.is_empty() {
            forget_candidates.push(&snap.id);
        } else if kept_ids.insert(&snap.id) {
            result.keep.push((snap.id.clone(), reasons));
        } else if let Some((_, existing)) = result.keep.iter_mut().find(|(id, _)| *id == snap.id) {
            existing.extend(reasons);
        }
    }
    let mut forgotten: HashSet<&str> = HashSet::new();
    for id in forget_candidates {
        if !kept_ids.contains(id) && forgotten.insert(id) {
            result.forget.push(id.to_string());
        }
    }
    result
}

/// Parse a duration such as `30d`, `12h`, `90m`, `45s`, `2w`, `1y` (365 days),
/// or a sum such as `1d12h` / `1d 12h`. Long unit names (`30 days`, `12 hours`)
/// are accepted too. Months are not a unit: their length varies; write days.
pub fn parse_duration(input: &str) -> Result<TimeDelta, RetentionError> {
    let err = |reason: &str| RetentionError::InvalidDuration {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("it is empty"));
    }
    let mut total_secs: i64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(err("expected a number"));
        }
        let number: i64 = rest[..digits]
            .parse()
            .map_err(|_| err("the number is too large"))?;
        rest = rest[digits..].trim_start();
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        if unit_len == 0 {
            return Err(err("a unit is missing after the number"));
        }
        let unit_secs: i64 = match &rest[..unit_len] {
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 7 * 86_400,
            "y" | "year" | "years" => 365 * 86_400,
            "M" | "mo" | "month" | "months" => {
                return Err(err("months have no fixed length; use days (30d, 90d)"));
            }
            _ => return Err(err("unknown unit")),
        };
        rest = rest[unit_len..].trim_start();
        total_secs = number
            .checked_mul(unit_secs)
            .and_then(|v| total_secs.checked_add(v))
            .ok_or_else(|| err("it is too large"))?;
    }
    TimeDelta::try_seconds(total_secs).ok_or_else(|| err("it is too large"))
}

/// Format a duration the way [`parse_duration`] reads it: `30d`, `12h`,
/// `1d12h`, `90m` → `1h30m`, `0s`. Sub-second parts are dropped.
pub fn format_duration(d: TimeDelta) -> String {
    let mut secs = d.num_seconds();
    let mut out = String::new();
    if secs < 0 {
        out.push('-');
        secs = -secs;
    }
    if secs == 0 {
        return "0s".to_string();
    }
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// Serde adapter for `Option<TimeDelta>` as a duration string (`"30d"`).
pub mod opt_duration {
    use super::format_duration;
    use chrono::TimeDelta;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<TimeDelta>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TimeDelta>, D::Error> {
        match Option::<super::DurationString>::deserialize(d)? {
            Some(super::DurationString(d)) => Ok(Some(d)),
            None => Ok(None),
        }
    }
}

/// Serde adapter for `TimeDelta` as a duration string (`"1h"`).
pub mod duration {
    use super::format_duration;
    use chrono::TimeDelta;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &TimeDelta, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TimeDelta, D::Error> {
        super::DurationString::deserialize(d).map(|v| v.0)
    }
}

/// A duration read from a string; the visitor names what was expected when
/// the value has the wrong type (`30` instead of `30d`).
struct DurationString(TimeDelta);

impl<'de> Deserialize<'de> for DurationString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = DurationString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"30d\", \"12h\" or \"1d12h\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DurationString, E> {
                parse_duration(v).map(DurationString).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn snap(id: &str, time: DateTime<Utc>) -> SnapshotSummary {
        SnapshotSummary {
            id: id.to_string(),
            time,
        }
    }

    /// Snapshots named after their time, e.g. `2026-01-31T23:59:59`.
    fn snaps(times: &[DateTime<Utc>]) -> Vec<SnapshotSummary> {
        times
            .iter()
            .map(|t| snap(&t.format("%Y-%m-%dT%H:%M:%S").to_string(), *t))
            .collect()
    }

    fn days(n: i64) -> TimeDelta {
        TimeDelta::days(n)
    }

    /// Run `plan`, check its invariants, and check that input order does not
    /// matter.
    fn run(
        input: &[SnapshotSummary],
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
    ) -> RetentionPlan {
        let p = plan(input, policy, now);
        let mut all: Vec<&str> = p
            .keep
            .iter()
            .map(|(id, _)| id.as_str())
            .chain(p.forget.iter().map(String::as_str))
            .collect();
        all.sort();
        let mut expected: Vec<&str> = input.iter().map(|s| s.id.as_str()).collect();
        expected.sort();
        expected.dedup();
        assert_eq!(all, expected, "every id is either kept or forgotten, once");
        assert!(p.keep.iter().all(|(_, r)| !r.is_empty()));
        let mut reversed = input.to_vec();
        reversed.reverse();
        assert_eq!(plan(&reversed, policy, now), p, "input order matters");
        p
    }

    fn kept(p: &RetentionPlan) -> Vec<&str> {
        p.keep.iter().map(|(id, _)| id.as_str()).collect()
    }

    fn reasons(p: &RetentionPlan, id: &str) -> Vec<String> {
        p.keep
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, r)| r.iter().map(ToString::to_string).collect())
            .unwrap_or_default()
    }

    /// 120 days of hourly snapshots at :30, 2026-01-01T00:30 … 2026-04-30T23:30.
    fn hourly_120_days() -> Vec<SnapshotSummary> {
        let start = t(2026, 1, 1, 0, 30, 0);
        snaps(
            &(0..120 * 24)
                .map(|h| start + TimeDelta::hours(h))
                .collect::<Vec<_>>(),
        )
    }

    fn seed_hourly() -> RetentionPolicy {
        RetentionPolicy {
            keep_within_hourly: Some(days(30)),
            ..Default::default()
        }
    }

    fn seed_daily() -> RetentionPolicy {
        RetentionPolicy {
            keep_within_daily: Some(days(90)),
            ..Default::default()
        }
    }

    #[test]
    fn seed_hourly_kept_30_days() {
        let input = hourly_120_days();
        let now = t(2026, 5, 1, 0, 5, 0);
        let p = run(&input, &seed_hourly(), now);
        assert_eq!(p.keep.len(), 30 * 24);
        assert_eq!(p.forget.len(), 90 * 24);
        assert_eq!(p.keep.first().unwrap().0, "2026-04-30T23:30:00");
        assert_eq!(p.keep.last().unwrap().0, "2026-04-01T00:30:00");
        assert_eq!(p.forget.first().unwrap(), "2026-03-31T23:30:00");
        assert_eq!(
            reasons(&p, "2026-04-01T00:30:00"),
            ["hourly 2026-04-01T00 within 30d"]
        );
    }

    #[test]
    fn seed_daily_kept_90_days() {
        let input = hourly_120_days();
        let now = t(2026, 5, 1, 0, 5, 0);
        let p = run(&input, &seed_daily(), now);
        // 2026-01-31 … 2026-04-30 is 90 days, one snapshot (the 23:30) each.
        assert_eq!(p.keep.len(), 90);
        assert!(p.keep.iter().all(|(id, _)| id.ends_with("T23:30:00")));
        assert_eq!(p.keep.last().unwrap().0, "2026-01-31T23:30:00");
        assert_eq!(
            reasons(&p, "2026-02-28T23:30:00"),
            ["daily 2026-02-28 within 90d"]
        );
        assert_eq!(p.forget.len(), 120 * 24 - 90);
    }

    #[test]
    fn seed_policies_combined_in_one_group() {
        let input = hourly_120_days();
        let mut policy = seed_hourly();
        policy.keep_within_daily = Some(days(90));
        let p = run(&input, &policy, t(2026, 5, 1, 0, 5, 0));
        // 720 hourly in April, plus one per day for 2026-01-31 … 2026-03-31.
        assert_eq!(p.keep.len(), 720 + 60);
        assert_eq!(
            reasons(&p, "2026-04-30T23:30:00"),
            [
                "hourly 2026-04-30T23 within 30d",
                "daily 2026-04-30 within 90d"
            ]
        );
    }

    /// A daemon that forgets after every hourly backup ends where one plan
    /// over the whole history ends: nothing it forgot early was needed later.
    #[test]
    fn seed_policy_applied_every_hour_converges() {
        let all = hourly_120_days();
        let mut policy = seed_hourly();
        policy.keep_within_daily = Some(days(90));
        let mut repo: Vec<SnapshotSummary> = Vec::new();
        for s in &all {
            repo.push(s.clone());
            let p = plan(&repo, &policy, s.time + TimeDelta::minutes(1));
            repo.retain(|s| !p.forget.contains(&s.id));
        }
        let one_shot = run(&all, &policy, all.last().unwrap().time);
        let mut ids: Vec<&str> = repo.iter().map(|s| s.id.as_str()).collect();
        ids.reverse();
        assert_eq!(ids, kept(&one_shot));
    }

    #[test]
    fn keep_last() {
        let input = snaps(&[
            t(2026, 3, 1, 0, 0, 0),
            t(2026, 3, 2, 0, 0, 0),
            t(2026, 3, 3, 0, 0, 0),
            t(2026, 3, 4, 0, 0, 0),
            t(2026, 3, 5, 0, 0, 0),
        ]);
        let policy = RetentionPolicy {
            keep_last: Some(3),
            ..Default::default()
        };
        let p = run(&input, &policy, t(2026, 3, 6, 0, 0, 0));
        assert_eq!(
            kept(&p),
            [
                "2026-03-05T00:00:00",
                "2026-03-04T00:00:00",
                "2026-03-03T00:00:00"
            ]
        );
        assert_eq!(p.forget, ["2026-03-02T00:00:00", "2026-03-01T00:00:00"]);
        assert_eq!(reasons(&p, "2026-03-03T00:00:00"), ["last 3"]);
        // More than there are: keeps all.
        let policy = RetentionPolicy {
            keep_last: Some(10),
            ..Default::default()
        };
        assert!(
            run(&input, &policy, t(2026, 3, 6, 0, 0, 0))
                .forget
                .is_empty()
        );
    }

    /// Table of calendar-bucket cases: (policy, snapshot times, kept ids).
    #[test]
    fn calendar_boundaries() {
        let daily = |n| RetentionPolicy {
            keep_daily: Some(n),
            ..Default::default()
        };
        let weekly = |n| RetentionPolicy {
            keep_weekly: Some(n),
            ..Default::default()
        };
        let monthly = |n| RetentionPolicy {
            keep_monthly: Some(n),
            ..Default::default()
        };
        let yearly = |n| RetentionPolicy {
            keep_yearly: Some(n),
            ..Default::default()
        };
        let hourly = |n| RetentionPolicy {
            keep_hourly: Some(n),
            ..Default::default()
        };
        #[allow(clippy::type_complexity)]
        let table: Vec<(&str, RetentionPolicy, Vec<DateTime<Utc>>, Vec<&str>)> = vec![
            (
                "a second before midnight and midnight are different days",
                daily(2),
                vec![
                    t(2026, 1, 1, 10, 0, 0),
                    t(2026, 1, 1, 23, 59, 59),
                    t(2026, 1, 2, 0, 0, 0),
                ],
                vec!["2026-01-02T00:00:00", "2026-01-01T23:59:59"],
            ),
            (
                "daily counts days that have snapshots, not calendar days",
                daily(2),
                vec![
                    t(2026, 1, 1, 12, 0, 0),
                    t(2026, 1, 5, 12, 0, 0),
                    t(2026, 1, 9, 12, 0, 0),
                ],
                vec!["2026-01-09T12:00:00", "2026-01-05T12:00:00"],
            ),
            (
                "ISO weeks start on Monday; 2025-12-29..2026-01-04 is 2026-W01",
                weekly(10),
                vec![
                    t(2025, 12, 28, 12, 0, 0), // Sunday, 2025-W52
                    t(2025, 12, 29, 0, 0, 0),  // Monday, 2026-W01
                    t(2026, 1, 4, 23, 59, 59), // Sunday, 2026-W01
                    t(2026, 1, 5, 0, 0, 0),    // Monday, 2026-W02
                ],
                vec![
                    "2026-01-05T00:00:00",
                    "2026-01-04T23:59:59",
                    "2025-12-28T12:00:00",
                ],
            ),
            (
                "a 53-week year: 2026-12-31 is in 2026-W53, 2027-01-04 starts 2027-W01",
                weekly(10),
                vec![
                    t(2026, 12, 28, 0, 0, 0),
                    t(2027, 1, 3, 23, 0, 0),
                    t(2027, 1, 4, 0, 0, 0),
                ],
                vec!["2027-01-04T00:00:00", "2027-01-03T23:00:00"],
            ),
            (
                "month ends, including a leap February",
                monthly(3),
                vec![
                    t(2028, 1, 31, 23, 59, 59),
                    t(2028, 2, 1, 0, 0, 0),
                    t(2028, 2, 29, 23, 0, 0),
                    t(2028, 3, 1, 0, 0, 0),
                    t(2028, 3, 31, 23, 59, 59),
                ],
                vec![
                    "2028-03-31T23:59:59",
                    "2028-02-29T23:00:00",
                    "2028-01-31T23:59:59",
                ],
            ),
            (
                "year end",
                yearly(2),
                vec![
                    t(2024, 6, 1, 0, 0, 0),
                    t(2025, 1, 1, 0, 0, 0),
                    t(2025, 12, 31, 23, 59, 59),
                    t(2026, 1, 1, 0, 0, 0),
                ],
                vec!["2026-01-01T00:00:00", "2025-12-31T23:59:59"],
            ),
            (
                "several snapshots in one hour keep only the newest",
                hourly(5),
                vec![
                    t(2026, 11, 25, 12, 40, 0),
                    t(2026, 11, 25, 13, 0, 0),
                    t(2026, 11, 25, 13, 20, 0),
                    t(2026, 11, 25, 13, 59, 59),
                ],
                vec!["2026-11-25T13:59:59", "2026-11-25T12:40:00"],
            ),
        ];
        for (name, policy, times, want) in table {
            let input = snaps(&times);
            let p = run(&input, &policy, t(2030, 1, 1, 0, 0, 0));
            assert_eq!(kept(&p), want, "{name}");
        }
    }

    #[test]
    fn reasons_name_the_bucket() {
        let input = snaps(&[t(2026, 11, 25, 13, 5, 0), t(2026, 11, 24, 1, 0, 0)]);
        let policy = RetentionPolicy {
            keep_last: Some(1),
            keep_hourly: Some(1),
            keep_daily: Some(2),
            keep_weekly: Some(1),
            keep_monthly: Some(1),
            keep_yearly: Some(1),
            ..Default::default()
        };
        let p = run(&input, &policy, t(2026, 11, 26, 0, 0, 0));
        assert_eq!(
            reasons(&p, "2026-11-25T13:05:00"),
            [
                "last 1",
                "hourly 2026-11-25T13",
                "daily 2026-11-25",
                "weekly 2026-W48",
                "monthly 2026-11",
                "yearly 2026"
            ]
        );
        assert_eq!(reasons(&p, "2026-11-24T01:00:00"), ["daily 2026-11-24"]);
    }

    #[test]
    fn keep_within_is_measured_from_the_newest_snapshot() {
        let input = snaps(&[
            t(2026, 1, 1, 0, 0, 0),
            t(2026, 1, 2, 0, 0, 0), // exactly 2d before the newest: outside
            t(2026, 1, 2, 0, 0, 1),
            t(2026, 1, 4, 0, 0, 0),
        ]);
        let policy = RetentionPolicy {
            keep_within: Some(days(2)),
            ..Default::default()
        };
        let want = ["2026-01-04T00:00:00", "2026-01-02T00:00:01"];
        let p = run(&input, &policy, t(2026, 1, 4, 0, 30, 0));
        assert_eq!(kept(&p), want);
        assert_eq!(reasons(&p, "2026-01-02T00:00:01"), ["within 2d"]);
        // Backups stopped 40 days ago: the history is still kept.
        let p = run(&input, &policy, t(2026, 2, 13, 0, 0, 0));
        assert_eq!(kept(&p), want);
    }

    #[test]
    fn clock_skew_future_snapshot_is_kept_and_displaces_nothing() {
        let now = t(2026, 6, 1, 12, 0, 0);
        let mut input = snaps(&[
            t(2026, 6, 1, 9, 0, 0),
            t(2026, 6, 1, 10, 0, 0),
            t(2026, 6, 1, 11, 0, 0),
        ]);
        input.push(snap("skewed", now + TimeDelta::hours(2)));

        let last2 = RetentionPolicy {
            keep_last: Some(2),
            ..Default::default()
        };
        let p = run(&input, &last2, now);
        assert_eq!(
            kept(&p),
            ["skewed", "2026-06-01T11:00:00", "2026-06-01T10:00:00"]
        );
        assert_eq!(
            reasons(&p, "skewed"),
            ["dated 2h in the future (clock skew?), always kept"]
        );

        // Same hour bucket as the future snapshot: the real one still counts.
        let hourly1 = RetentionPolicy {
            keep_hourly: Some(1),
            ..Default::default()
        };
        let earlier_now = t(2026, 6, 1, 11, 30, 0);
        let mut same_hour = input.clone();
        same_hour.push(snap("late", t(2026, 6, 1, 11, 20, 0)));
        same_hour.push(snap("skewed-same-hour", t(2026, 6, 1, 11, 50, 0)));
        let p = run(&same_hour, &hourly1, earlier_now);
        assert_eq!(kept(&p), ["skewed", "skewed-same-hour", "late"]);

        // The window is measured from the newest real snapshot, not from the
        // future one.
        let within = RetentionPolicy {
            keep_within_hourly: Some(TimeDelta::hours(2)),
            ..Default::default()
        };
        let p = run(&input, &within, now);
        assert_eq!(
            kept(&p),
            ["skewed", "2026-06-01T11:00:00", "2026-06-01T10:00:00"]
        );
    }

    #[test]
    fn equal_times_are_ordered_by_id() {
        let at = t(2026, 6, 1, 10, 0, 0);
        let input = vec![
            snap("b", at),
            snap("a", at),
            snap("c", at - TimeDelta::hours(1)),
        ];
        let policy = RetentionPolicy {
            keep_hourly: Some(10),
            ..Default::default()
        };
        let p = run(&input, &policy, at);
        assert_eq!(kept(&p), ["b", "c"]);
        assert_eq!(p.forget, ["a"]);
    }

    #[test]
    fn empty_input() {
        let p = run(&[], &seed_hourly(), t(2026, 1, 1, 0, 0, 0));
        assert_eq!(p, RetentionPlan::default());
    }

    #[test]
    fn empty_policy_keeps_everything() {
        let input = hourly_120_days();
        for policy in [
            RetentionPolicy::default(),
            RetentionPolicy {
                keep_last: Some(0),
                keep_daily: Some(0),
                keep_within: Some(TimeDelta::zero()),
                keep_within_hourly: Some(TimeDelta::zero()),
                ..Default::default()
            },
        ] {
            assert!(policy.is_empty());
            let p = run(&input, &policy, t(2026, 5, 1, 0, 0, 0));
            assert_eq!(p.keep.len(), input.len());
            assert!(p.forget.is_empty());
            assert_eq!(
                reasons(&p, "2026-01-01T00:30:00"),
                ["no retention rules, everything kept"]
            );
        }
        assert!(!seed_hourly().is_empty());
        assert!(
            !RetentionPolicy {
                keep_yearly: Some(1),
                ..Default::default()
            }
            .is_empty()
        );
    }

    #[test]
    fn duplicate_ids_are_listed_once() {
        let input = vec![
            snap("x", t(2026, 1, 2, 0, 0, 0)),
            snap("x", t(2026, 1, 1, 0, 0, 0)),
            snap("y", t(2026, 1, 1, 12, 0, 0)),
        ];
        let policy = RetentionPolicy {
            keep_last: Some(1),
            ..Default::default()
        };
        let p = plan(&input, &policy, t(2026, 1, 3, 0, 0, 0));
        assert_eq!(kept(&p), ["x"]);
        assert_eq!(p.forget, ["y"]);
    }

    #[test]
    fn parse_durations() {
        let table: &[(&str, i64)] = &[
            ("30d", 30 * 86_400),
            ("90d", 90 * 86_400),
            ("12h", 12 * 3600),
            ("1d12h", 36 * 3600),
            ("1d 12h", 36 * 3600),
            ("90m", 5400),
            ("45s", 45),
            ("2w", 14 * 86_400),
            ("1y", 365 * 86_400),
            ("30 days", 30 * 86_400),
            (" 1 hour ", 3600),
            ("0s", 0),
        ];
        for (input, secs) in table {
            assert_eq!(
                parse_duration(input),
                Ok(TimeDelta::seconds(*secs)),
                "{input}"
            );
        }
        for bad in [
            "",
            "30",
            "d",
            "1x",
            "-1d",
            "1.5h",
            "3M",
            "3 months",
            "1d-",
            "99999999999999999999d",
            "9999999999999999y",
        ] {
            let e = parse_duration(bad).expect_err(bad).to_string();
            assert!(e.contains("invalid duration"), "{bad}: {e}");
            assert!(e.contains("30d"), "{bad}: {e}");
        }
    }

    #[test]
    fn format_durations_round_trip() {
        for s in ["30d", "12h", "1d12h", "1h30m", "45s", "0s", "365d"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
        assert_eq!(format_duration(parse_duration("90m").unwrap()), "1h30m");
    }

    #[test]
    fn policy_serde_and_display() {
        let policy: RetentionPolicy = serde_json::from_str(
            r#"{"keep_last": 3, "keep_within_hourly": "30d", "keep_within_daily": "90d"}"#,
        )
        .unwrap();
        assert_eq!(policy.keep_last, Some(3));
        assert_eq!(policy.keep_within_hourly, Some(days(30)));
        assert_eq!(
            policy.to_string(),
            "keep the last 3; one per hour for 30d; one per day for 90d"
        );
        let json = serde_json::to_string(&policy).unwrap();
        assert_eq!(
            json,
            r#"{"keep_last":3,"keep_within_hourly":"30d","keep_within_daily":"90d"}"#
        );
        assert_eq!(
            serde_json::from_str::<RetentionPolicy>(&json).unwrap(),
            policy
        );
        assert_eq!(
            RetentionPolicy::default().to_string(),
            "no retention rules (keeps everything)"
        );
        let all = RetentionPolicy {
            keep_daily: Some(7),
            keep_weekly: Some(4),
            keep_within: Some(days(2)),
            ..Default::default()
        };
        assert_eq!(all.to_string(), "keep 7 daily; 4 weekly; all within 2d");

        let unknown = serde_json::from_str::<RetentionPolicy>(r#"{"keep_hourlly": 3}"#);
        assert!(unknown.unwrap_err().to_string().contains("keep_hourlly"));
        let bad = serde_json::from_str::<RetentionPolicy>(r#"{"keep_within": 30}"#);
        assert!(bad.unwrap_err().to_string().contains("duration string"));
        let bad = serde_json::from_str::<RetentionPolicy>(r#"{"keep_within": "30x"}"#);
        assert!(bad.unwrap_err().to_string().contains("unknown unit"));
    }

    /// A `--table` snapshot after the full ones: `keep_last: 1` keeps the
    /// newest full snapshot and the partial one, each in its own group.
    #[test]
    fn groups_by_source_and_scope() {
        let full = |id: &str, h| {
            (
                Group::new("db", FULL_SCOPE),
                snap(id, t(2026, 1, 1, h, 0, 0)),
            )
        };
        let part = |id: &str, h| {
            (
                Group::new("db", "tables: public.t"),
                snap(id, t(2026, 1, 1, h, 0, 0)),
            )
        };
        let input = vec![
            full("f1", 1),
            full("f2", 2),
            part("p1", 3),
            part("p2", 4),
            (
                Group::new("other", FULL_SCOPE),
                snap("o1", t(2026, 1, 1, 5, 0, 0)),
            ),
        ];
        let policy = RetentionPolicy {
            keep_last: Some(1),
            ..Default::default()
        };
        let plans = plan_grouped(input, &policy, t(2026, 1, 2, 0, 0, 0));
        let got: Vec<(String, String, Vec<&str>, Vec<String>)> = plans
            .iter()
            .map(|(g, p)| (g.source.clone(), g.scope.clone(), kept(p), p.forget.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "db".into(),
                    "full".into(),
                    vec!["f2"],
                    vec!["f1".to_string()]
                ),
                (
                    "db".into(),
                    "tables: public.t".into(),
                    vec!["p2"],
                    vec!["p1".to_string()]
                ),
                ("other".into(), "full".into(), vec!["o1"], vec![]),
            ]
        );
        // The full group sorts first whatever the scope's spelling.
        assert!(Group::new("db", FULL_SCOPE) < Group::new("db", "a"));
        assert!(Group::new("a", "z") < Group::new("b", FULL_SCOPE));
    }

    #[test]
    fn plan_serializes_reasons_as_text() {
        let input = snaps(&[t(2026, 1, 1, 0, 0, 0)]);
        let policy = RetentionPolicy {
            keep_last: Some(1),
            ..Default::default()
        };
        let p = plan(&input, &policy, t(2026, 1, 1, 1, 0, 0));
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"keep":[["2026-01-01T00:00:00",["last 1"]]],"forget":[]}"#
        );
    }
}
