//! Forget: the snapshots a retention policy does not keep are removed. One
//! flow for `lifeboat forget` (every source or one, the flags' policy or
//! each source's configured one, optionally a prune afterwards) and for the
//! daemon's retention after each backup (`serve/retention.rs`: one source,
//! its policy).
//!
//! Snapshots are planned per (source, scope) group: a partial snapshot
//! never uses up the full snapshots' counts, and a source's physical base
//! backups are a group of their own (`lifeboat_repo::retention`).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_repo::Repository;
use lifeboat_repo::format::SNAPSHOTS_PREFIX;
use lifeboat_repo::lock::{LockMode, acquire};
use lifeboat_repo::prune::PruneReport;
use lifeboat_repo::retention::{Group, RetentionPolicy, SnapshotSummary, group, group_key, plan};
use lifeboat_repo::snapshot::SnapshotRef;
use serde::Serialize;

use crate::config::Config;
use crate::context::Ctx;
use crate::error::{Kind, Result, error_with_hint, usage};

#[derive(Debug, Clone, Default)]
pub struct ForgetRequest {
    /// Only this source's snapshots; `None`: every source's.
    pub source: Option<String>,
    /// One policy for every source (the CLI's `--keep-*` flags); `None`:
    /// each source's own from `per_source`.
    pub policy: Option<RetentionPolicy>,
    /// Each source's policy (the configuration's `retention:`).
    pub per_source: BTreeMap<String, RetentionPolicy>,
    /// Plan only, remove nothing.
    pub dry_run: bool,
}

impl ForgetRequest {
    /// Refuses a request without any policy, and a given policy that keeps
    /// nothing (it would forget every snapshot).
    pub fn validate(&self) -> Result<()> {
        if self.policy.is_none() && self.per_source.is_empty() {
            return Err(usage(
                "no retention policy: give --keep-last/--keep-hourly/--keep-daily/--keep-weekly/--keep-monthly/--keep-within… flags, or a retention: section per source in the config",
            ));
        }
        if self.policy.as_ref().is_some_and(|p| p.is_empty()) {
            return Err(usage(
                "the retention policy keeps nothing; refusing to forget every snapshot",
            ));
        }
        Ok(())
    }

    /// The policy applying to `source`, if any keeps something.
    fn policy_for(&self, source: &str) -> Option<&RetentionPolicy> {
        self.policy
            .as_ref()
            .or(self.per_source.get(source))
            .filter(|p| !p.is_empty())
    }
}

/// Each configured source's retention policy.
pub fn configured_policies(cfg: Option<&Config>) -> BTreeMap<String, RetentionPolicy> {
    cfg.map(|c| {
        c.sources
            .iter()
            .filter_map(|(n, s)| s.retention.clone().map(|r| (n.clone(), r)))
            .collect()
    })
    .unwrap_or_default()
}

/// One (source, scope) group's plan, as `lifeboat forget --json` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ForgetGroup {
    pub source: String,
    /// The group's scope key: `full`, the partial scope (`tables: …`), or
    /// `physical` for the base backups.
    pub scope: String,
    pub policy: String,
    /// Kept ids, each with the rules that keep it.
    pub keep: Vec<(String, Vec<String>)>,
    pub forget: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Forgotten {
    /// The groups a policy applied to.
    pub groups: Vec<ForgetGroup>,
    /// Sources without a policy that keeps something: every snapshot kept.
    pub skipped: Vec<String>,
    /// How many snapshots the skipped sources' groups hold.
    pub untouched: usize,
    /// Every source with snapshots in the repository (sorted).
    pub known_sources: Vec<String>,
}

impl Forgotten {
    /// The ids forgotten (or, dry run, that would be).
    pub fn forgotten_ids(&self) -> Vec<String> {
        self.groups.iter().flat_map(|g| g.forget.clone()).collect()
    }

    /// How many of the considered snapshots remain.
    pub fn kept(&self) -> usize {
        self.untouched + self.groups.iter().map(|g| g.keep.len()).sum::<usize>()
    }

    /// A request for one source that has no snapshots at all: not found
    /// (exit 3), naming the sources that have some.
    pub fn unknown_source(&self, req: &ForgetRequest) -> Result<()> {
        let Some(src) = req.source.as_deref() else {
            return Ok(());
        };
        if self.known_sources.iter().any(|s| s == src) {
            return Ok(());
        }
        let known = if self.known_sources.is_empty() {
            "the repository holds no snapshots".to_string()
        } else {
            format!("sources with snapshots: {}", self.known_sources.join(", "))
        };
        Err(error_with_hint(
            Kind::NotFound,
            format!(
                "source {src} has no snapshots in this repository ({known}); nothing was forgotten"
            ),
            "check the source name with `lifeboat snapshots`",
        ))
    }
}

/// Applies `req` at `now` under a shared repository lock. A source with no
/// snapshots forgets nothing (see [`Forgotten::unknown_source`]).
pub async fn forget(
    repo: &Repository,
    req: &ForgetRequest,
    now: DateTime<Utc>,
) -> Result<Forgotten> {
    if !req.dry_run {
        repo.ensure_may_delete("forget")?;
    }
    let lock = acquire(repo, LockMode::Shared, "forget").await?;
    let snaps = repo.snapshots().await?;
    let mut out = Forgotten {
        known_sources: known_sources(&snaps),
        ..Default::default()
    };
    for (g, list) in &group(summaries(&snaps, req.source.as_deref())) {
        let Some(policy) = req.policy_for(&g.source) else {
            if !out.skipped.contains(&g.source) {
                out.skipped.push(g.source.clone());
            }
            out.untouched += list.len();
            continue;
        };
        let p = plan(list, policy, now);
        if !req.dry_run {
            for id in &p.forget {
                repo.storage()
                    .delete(&format!("{SNAPSHOTS_PREFIX}{id}"))
                    .await?;
            }
        }
        out.groups.push(ForgetGroup {
            source: g.source.clone(),
            scope: g.scope.clone(),
            policy: policy.to_string(),
            keep: p
                .keep
                .iter()
                .map(|(id, r)| (id.clone(), r.iter().map(|x| x.to_string()).collect()))
                .collect(),
            forget: p.forget,
        });
    }
    lock.release().await?;
    Ok(out)
}

/// The snapshots (of `source`, or all) by (source, scope) group.
fn summaries<'a>(
    snaps: &'a [SnapshotRef],
    source: Option<&'a str>,
) -> impl Iterator<Item = (Group, SnapshotSummary)> + 'a {
    snaps
        .iter()
        .filter(move |s| source.is_none_or(|src| s.snapshot.source == src))
        .map(|s| {
            (
                Group::new(s.snapshot.source.clone(), group_key(&s.snapshot)),
                SnapshotSummary {
                    id: s.id.clone(),
                    time: s.snapshot.time,
                },
            )
        })
}

fn known_sources(snaps: &[SnapshotRef]) -> Vec<String> {
    let mut known: Vec<String> = snaps.iter().map(|s| s.snapshot.source.clone()).collect();
    known.sort_unstable();
    known.dedup();
    known
}

/// What `lifeboat forget` did: the plan per group, and the prune after it.
#[derive(Debug, Clone)]
pub struct ForgetOutcome {
    pub forgotten: Forgotten,
    /// `--prune` (not with a dry run).
    pub prune: Option<PruneReport>,
}

/// `lifeboat forget`: validates the request, forgets now, then prunes with
/// `prune_grace` when given (never after a dry run).
pub async fn run(
    ctx: &Ctx,
    req: &ForgetRequest,
    prune_grace: Option<Duration>,
) -> Result<ForgetOutcome> {
    req.validate()?;
    let repo = ctx.open().await?;
    let forgotten = forget(&repo, req, Utc::now()).await?;
    forgotten.unknown_source(req)?;
    let prune = match prune_grace {
        Some(grace) if !req.dry_run => Some(super::prune::prune(&repo, grace, false).await?),
        _ => None,
    };
    Ok(ForgetOutcome { forgotten, prune })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keep_last(n: u32) -> RetentionPolicy {
        RetentionPolicy {
            keep_last: Some(n),
            ..Default::default()
        }
    }

    #[test]
    fn a_request_needs_a_policy_that_keeps_something() {
        let none = ForgetRequest::default();
        assert_eq!(none.validate().unwrap_err().kind(), Kind::Usage);
        let nothing = ForgetRequest {
            policy: Some(RetentionPolicy::default()),
            ..Default::default()
        };
        let e = nothing.validate().unwrap_err();
        assert!(e.message.contains("keeps nothing"), "{}", e.message);
        let configured = ForgetRequest {
            per_source: [("db".to_string(), keep_last(1))].into(),
            ..Default::default()
        };
        configured.validate().unwrap();
    }

    #[test]
    fn the_flags_policy_wins_and_an_empty_one_applies_to_nobody() {
        let req = ForgetRequest {
            policy: Some(keep_last(2)),
            per_source: [("db".to_string(), keep_last(7))].into(),
            ..Default::default()
        };
        assert_eq!(req.policy_for("db"), Some(&keep_last(2)));
        let req = ForgetRequest {
            per_source: [
                ("db".to_string(), keep_last(7)),
                ("kube".to_string(), RetentionPolicy::default()),
            ]
            .into(),
            ..Default::default()
        };
        assert_eq!(req.policy_for("db"), Some(&keep_last(7)));
        assert_eq!(req.policy_for("kube"), None);
        assert_eq!(req.policy_for("other"), None);
    }

    #[test]
    fn kept_counts_the_untouched_and_an_unknown_source_is_not_found() {
        let done = Forgotten {
            groups: vec![ForgetGroup {
                source: "db".into(),
                scope: "full".into(),
                policy: "keep last 1".into(),
                keep: vec![("a".into(), vec!["last".into()])],
                forget: vec!["b".into(), "c".into()],
            }],
            skipped: vec!["kube".into()],
            untouched: 4,
            known_sources: vec!["db".into(), "kube".into()],
        };
        assert_eq!(done.kept(), 5);
        assert_eq!(done.forgotten_ids(), ["b", "c"]);
        let req = |s: Option<&str>| ForgetRequest {
            source: s.map(str::to_string),
            ..Default::default()
        };
        done.unknown_source(&req(None)).unwrap();
        done.unknown_source(&req(Some("db"))).unwrap();
        let e = done.unknown_source(&req(Some("dbb"))).unwrap_err();
        assert_eq!(e.kind(), Kind::NotFound);
        assert!(
            e.message.contains("sources with snapshots: db, kube"),
            "{}",
            e.message
        );
    }
}
