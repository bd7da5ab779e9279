//! The decision of one prune pass, as a pure function: [`plan`] takes what
//! the pass saw ([`PruneInputs`]: locks, snapshots' references, index,
//! condemned lists, the pack listing, retention, the storage time) and
//! returns a [`PrunePlan`] saying exactly what to write and delete, in
//! which step of the documented order ([`super::execute()`] carries it out).
//! No storage, no clock, no async: the table tests below pin every rule of
//! `docs/format.md` ("Write order and concurrency", "Why prune is safe").

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};

use super::PruneReport;
use crate::condemned::CondemnedEntry;
use crate::error::{RepoError, Result};
use crate::format::{DOC_VERSION, id_of_key, parse_hex32};
use crate::index::IndexDoc;
use crate::lock::LockEntry;
use crate::references::References;
use crate::storage::ObjectInfo;

/// What one pass of prune saw, in the order it looked.
#[derive(Debug, Clone)]
pub struct PruneInputs {
    /// Storage time at the start of the pass (prune's own lock, rewritten).
    pub now: DateTime<Utc>,
    /// Listed first: an operation missing here had finished (snapshot and
    /// index written) before the snapshots and the index were read.
    pub locks: Vec<LockEntry>,
    /// What the snapshots (read after the locks) need.
    pub refs: References,
    /// Every index document with its key (read after the snapshots).
    pub index_docs: Vec<(String, IndexDoc)>,
    pub condemned: Vec<CondemnedEntry>,
    /// Stored packs by id (listed last).
    pub stored: HashMap<String, ObjectInfo>,
    /// Packs under S3 Object Lock retention, by id: until when. Asked only
    /// for packs a plan without it would delete; empty without Object Lock.
    pub retained: HashMap<String, DateTime<Utc>>,
}

/// What a pass does, step by step in the documented order.
#[derive(Debug, Default, Clone)]
pub struct PrunePlan {
    pub report: PruneReport,
    /// Step 1: packs to condemn now (newly unreferenced, or announced by an
    /// interrupted prune and never fenced): announce, take the fence, and
    /// list them under it in step 2.
    pub condemn: BTreeSet<String>,
    /// Step 2: fenced packs that stay condemned, by fence.
    pub keep: BTreeMap<DateTime<Utc>, BTreeSet<String>>,
    /// Whether the condemned documents must be rewritten (steps 2 and 5).
    pub rewrite_condemned: bool,
    /// Step 3: the index without the deleted packs.
    pub index: IndexRewrite,
    /// Step 4: packs to delete now, id → storage key.
    pub delete: BTreeMap<String, String>,
    /// Step 5: the condemned documents the rewritten ones replace (empty
    /// unless `rewrite_condemned`).
    pub old_condemned: Vec<String>,
}

/// The index documents that list deleted packs, replaced by one document
/// listing the rest of their packs.
#[derive(Debug, Default, Clone)]
pub struct IndexRewrite {
    /// Stored first (absent when nothing else was in those documents).
    pub consolidated: Option<IndexDoc>,
    /// Deleted after it.
    pub replaced: Vec<String>,
}

/// Decides what a pass does from what it saw. `own_lock` is the id of the
/// prune's own lock (ignored when judging others). Fails, deciding
/// nothing, when snapshots need blobs no index lists.
pub fn plan(
    inputs: &PruneInputs,
    own_lock: &str,
    grace: Duration,
    dry_run: bool,
) -> Result<PrunePlan> {
    if !inputs.refs.unindexed.is_empty() {
        return Err(unindexed_error(&inputs.refs.unindexed));
    }
    let mut p = PrunePlan::default();
    p.report.dry_run = dry_run;
    p.report.snapshots = inputs.refs.snapshots;
    p.report.packs_total = inputs.stored.len();
    let holders = Holders::new(&inputs.locks, own_lock);
    let usage = Usage::of(inputs);
    p.report.unused_bytes_in_live_packs = usage.unused_in_live;
    let fences = earliest_fences(inputs, &mut p);
    let mut delete = judge_condemned(inputs, &usage, &fences, &holders, grace, &mut p);
    condemn_unreferenced(inputs, &usage, &fences, &holders, grace, dry_run, &mut p);
    if dry_run && grace.is_zero() && holders.others.is_empty() {
        // A real run would fence them and delete them in its second pass.
        delete.extend(p.condemn.iter().cloned());
    }
    let leftovers = judge_leftovers(inputs, &usage, &fences, &holders, grace, &mut p);
    p.report.deleted_leftovers = leftovers.len();
    delete.extend(leftovers.iter().cloned());
    p.report.waiting_reasons.sort();
    p.report.waiting_reasons.dedup();
    keep_retained(inputs, &fences, &leftovers, &mut delete, &mut p);
    p.report.deleted_packs = delete.len();
    p.report.deleted_bytes = delete
        .iter()
        .filter_map(|pk| inputs.stored.get(pk))
        .map(|o| o.size)
        .sum();
    p.delete = delete
        .into_iter()
        .filter_map(|pk| inputs.stored.get(&pk).map(|o| (pk, o.key.clone())))
        .collect();
    p.index = index_rewrite(&inputs.index_docs, &p.delete);
    if p.rewrite_condemned {
        p.old_condemned = inputs.condemned.iter().map(|c| c.key.clone()).collect();
    }
    Ok(p)
}

/// The refusal when snapshots need blobs no index lists.
fn unindexed_error(unindexed: &[(String, usize)]) -> RepoError {
    let list: Vec<String> = unindexed
        .iter()
        .map(|(id, n)| format!("snapshot {id} ({n} blobs)"))
        .collect();
    RepoError::corrupt(
        "index/",
        format!(
            "{} need blobs that no index document lists (an index document is missing or damaged); the packs holding them would look unused, so prune deleted nothing. Run `lifeboat repair index` to rebuild the index from the packs' own headers, then `lifeboat check`",
            list.join(", ")
        ),
    )
}

/// The live locks of other operations: what may still use a pack.
struct Holders<'a> {
    others: Vec<&'a LockEntry>,
}

impl<'a> Holders<'a> {
    fn new(locks: &'a [LockEntry], own_lock: &str) -> Self {
        let others = locks
            .iter()
            .filter(|l| !l.stale && id_of_key(&l.key) != own_lock)
            .collect();
        Self { others }
    }

    /// One created at or before `t` (it may have used what existed then).
    fn older_than(&self, t: DateTime<Utc>) -> Option<&'a LockEntry> {
        self.others.iter().find(|l| l.doc.created <= t).copied()
    }
}

/// Which indexed packs hold referenced blobs (any copy counts).
struct Usage<'a> {
    indexed: BTreeSet<&'a str>,
    live: HashSet<&'a str>,
    /// Bytes of unreferenced blobs in packs that are still partly used.
    unused_in_live: u64,
}

impl<'a> Usage<'a> {
    fn of(inputs: &'a PruneInputs) -> Self {
        let used = &inputs.refs.used;
        let mut indexed: BTreeSet<&str> = BTreeSet::new();
        let mut live: HashSet<&str> = HashSet::new();
        let mut unused: HashMap<&str, u64> = HashMap::new();
        for (_, doc) in &inputs.index_docs {
            for pk in &doc.packs {
                if !indexed.insert(&pk.id) {
                    continue; // listed twice (e.g. after `repair index`): count once
                }
                for b in &pk.blobs {
                    if parse_hex32(&b.id).is_some_and(|id| used.contains(&id)) {
                        live.insert(&pk.id);
                    } else {
                        *unused.entry(&pk.id).or_default() += b.length as u64;
                    }
                }
            }
        }
        let unused_in_live = unused
            .iter()
            .filter(|(pk, _)| live.contains(*pk))
            .map(|(_, n)| n)
            .sum();
        Self {
            indexed,
            live,
            unused_in_live,
        }
    }
}

/// Earlier condemnations: each pack's earliest fence (any fenced document
/// still stored has been visible since before its fence), or none when only
/// an announcement lists it.
fn earliest_fences<'a>(
    inputs: &'a PruneInputs,
    p: &mut PrunePlan,
) -> BTreeMap<&'a str, Option<DateTime<Utc>>> {
    let mut fence_of: BTreeMap<&str, Option<DateTime<Utc>>> = BTreeMap::new();
    for c in &inputs.condemned {
        if c.doc.condemned_at.is_none() {
            p.rewrite_condemned = true; // an announcement left by an interrupted prune
        }
        for pk in &c.doc.packs {
            let f = fence_of.entry(pk).or_insert(c.doc.condemned_at);
            *f = match (*f, c.doc.condemned_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
    fence_of
}

/// Packs condemned earlier: deleted, rescued, kept waiting, or (announced
/// only) condemned again. Returns those to delete.
fn judge_condemned(
    inputs: &PruneInputs,
    usage: &Usage,
    fences: &BTreeMap<&str, Option<DateTime<Utc>>>,
    holders: &Holders,
    grace: Duration,
    p: &mut PrunePlan,
) -> BTreeSet<String> {
    let mut delete = BTreeSet::new();
    for (pk, fence) in fences {
        if !inputs.stored.contains_key(*pk) {
            p.rewrite_condemned = true; // deleted already
            continue;
        }
        if usage.live.contains(pk) {
            p.report.rescued += 1;
            p.rewrite_condemned = true;
            continue;
        }
        let Some(fence) = *fence else {
            p.condemn.insert(pk.to_string());
            continue;
        };
        if inputs.now - fence < grace {
            p.report.waiting += 1;
            p.keep.entry(fence).or_default().insert(pk.to_string());
        } else if let Some(l) = holders.older_than(fence) {
            p.report.waiting += 1;
            p.report.waiting_reasons.push(format!(
                "pack {} waits for {}",
                &pk[..pk.len().min(12)],
                l.describe()
            ));
            p.keep.entry(fence).or_default().insert(pk.to_string());
        } else {
            delete.insert(pk.to_string());
            p.rewrite_condemned = true;
        }
    }
    delete
}

/// Indexed packs no snapshot needs any more, not condemned yet.
fn condemn_unreferenced(
    inputs: &PruneInputs,
    usage: &Usage,
    fences: &BTreeMap<&str, Option<DateTime<Utc>>>,
    holders: &Holders,
    grace: Duration,
    dry_run: bool,
    p: &mut PrunePlan,
) {
    for pk in &usage.indexed {
        if !usage.live.contains(pk) && !fences.contains_key(pk) && inputs.stored.contains_key(*pk)
        {
            p.condemn.insert(pk.to_string());
        }
    }
    p.report.condemned = p.condemn.len();
    if p.condemn.is_empty() {
        return;
    }
    p.rewrite_condemned = true;
    if dry_run && grace.is_zero() && holders.others.is_empty() {
        return; // the caller counts them as deleted
    }
    p.report.waiting += p.condemn.len();
    if grace.is_zero()
        && let Some(l) = holders.others.first()
    {
        p.report.waiting_reasons.push(format!(
            "{} newly condemned packs may wait for {}",
            p.condemn.len(),
            l.describe()
        ));
    }
}

/// Packs no index lists (left by interrupted backups). Returns those to delete.
fn judge_leftovers(
    inputs: &PruneInputs,
    usage: &Usage,
    fences: &BTreeMap<&str, Option<DateTime<Utc>>>,
    holders: &Holders,
    grace: Duration,
    p: &mut PrunePlan,
) -> BTreeSet<String> {
    let mut delete = BTreeSet::new();
    for (id, info) in &inputs.stored {
        if usage.indexed.contains(id.as_str()) || fences.contains_key(id.as_str()) {
            continue;
        }
        // Written at or after the start of this pass: its writer may not be
        // in the lock listing yet.
        if info.last_modified >= inputs.now - grace {
            p.report.waiting += 1;
        } else if let Some(l) = holders.older_than(info.last_modified) {
            p.report.waiting += 1;
            p.report.waiting_reasons.push(format!(
                "unindexed pack {} waits for {}",
                &id[..id.len().min(12)],
                l.describe()
            ));
        } else {
            delete.insert(id.clone());
        }
    }
    delete
}

/// On a bucket with S3 Object Lock: takes the packs still under retention
/// out of `delete`. Deleting one would only hide it behind a delete marker;
/// a condemned one is kept in its condemned document (with its fence) so
/// that a later prune deletes it once its retention has passed, and a
/// leftover no index lists is simply found again next time.
fn keep_retained(
    inputs: &PruneInputs,
    fences: &BTreeMap<&str, Option<DateTime<Utc>>>,
    leftovers: &BTreeSet<String>,
    delete: &mut BTreeSet<String>,
    p: &mut PrunePlan,
) {
    let r = &mut p.report;
    let mut latest: Option<DateTime<Utc>> = None;
    for pk in delete.clone() {
        let Some(until) = inputs.retained.get(&pk) else {
            continue;
        };
        delete.remove(&pk);
        r.retained += 1;
        r.waiting += 1;
        latest = latest.max(Some(*until));
        if let Some(Some(fence)) = fences.get(pk.as_str()) {
            p.keep.entry(*fence).or_default().insert(pk.clone());
        } else if leftovers.contains(&pk) {
            r.deleted_leftovers -= 1;
        }
    }
    r.retained_until = latest;
    if let Some(until) = latest {
        r.waiting_reasons.push(format!(
            "{} packs are under S3 Object Lock retention until {} at the latest; they stay condemned and a later prune deletes them",
            r.retained,
            until.format("%Y-%m-%d %H:%M UTC")
        ));
    }
}

/// The index documents listing deleted packs, and the one document that
/// replaces them (their other packs, each once).
fn index_rewrite(index_docs: &[(String, IndexDoc)], delete: &BTreeMap<String, String>) -> IndexRewrite {
    let touched: Vec<&(String, IndexDoc)> = index_docs
        .iter()
        .filter(|(_, d)| d.packs.iter().any(|pk| delete.contains_key(&pk.id)))
        .collect();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut kept = IndexDoc {
        version: DOC_VERSION,
        packs: Vec::new(),
    };
    for (_, d) in &touched {
        for pk in &d.packs {
            if !delete.contains_key(&pk.id) && seen.insert(&pk.id) {
                kept.packs.push(pk.clone());
            }
        }
    }
    IndexRewrite {
        consolidated: (!kept.packs.is_empty()).then_some(kept),
        replaced: touched.into_iter().map(|(k, _)| k.clone()).collect(),
    }
}
