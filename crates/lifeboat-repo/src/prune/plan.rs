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
                "pack {} waits for {}; {}",
                &pk[..pk.len().min(12)],
                l.describe(),
                l.if_gone()
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
        if !usage.live.contains(pk) && !fences.contains_key(pk) && inputs.stored.contains_key(*pk) {
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
            "{} newly condemned packs may wait for {}; {}",
            p.condemn.len(),
            l.describe(),
            l.if_gone()
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
                "unindexed pack {} waits for {}; {}",
                &id[..id.len().min(12)],
                l.describe(),
                l.if_gone()
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
fn index_rewrite(
    index_docs: &[(String, IndexDoc)],
    delete: &BTreeMap<String, String>,
) -> IndexRewrite {
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

#[cfg(test)]
mod tests {
    //! One row per rule of the protocol, and per interleaving that prune's
    //! hardening (issue 16; `tests/prune_race.rs` drives them against real
    //! storage) and the safety argument in `docs/format.md` name. Times
    //! are minutes on the storage clock. Every row has prune's own lock
    //! (`own`, created at minute 0, older than any fence): it never holds
    //! anything back.

    use super::*;
    use crate::condemned::CondemnedDoc;
    use crate::index::IndexPack;
    use crate::lock::{LockDoc, LockMode};
    use crate::pack::{BlobKind, BlobRecord};

    fn t(min: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + min * 60, 0).unwrap()
    }

    fn minutes(at: DateTime<Utc>) -> i64 {
        (at - t(0)).num_minutes()
    }

    /// Every blob is 100 bytes; every stored pack 1,000.
    const BLOB: u32 = 100;
    const PACK: u64 = 1000;

    type Packs = &'static [(&'static str, &'static [u8])];

    struct Row {
        name: &'static str,
        now: i64,
        grace: i64,
        dry_run: bool,
        /// Index documents: key, packs with the tags of their blobs.
        index: &'static [(&'static str, Packs)],
        /// Stored packs: id, last modified.
        stored: &'static [(&'static str, i64)],
        /// Tags of the blobs snapshots need.
        used: &'static [u8],
        /// Snapshots needing blobs no index lists.
        unindexed: &'static [(&'static str, usize)],
        /// Condemned documents: key, fence (`None`: an announcement), packs.
        condemned: &'static [(&'static str, Option<i64>, &'static [&'static str])],
        /// Other operations' locks: operation, created, stale.
        locks: &'static [(&'static str, i64, bool)],
        /// Packs under Object Lock retention, until.
        retained: &'static [(&'static str, i64)],
        expect: Expect,
    }

    /// What the plan must say.
    #[derive(Clone, Copy)]
    struct Expect {
        refused: bool,
        condemn: &'static [&'static str],
        keep: &'static [(i64, &'static [&'static str])],
        delete: &'static [&'static str],
        rewrite: bool,
        /// The consolidated index document's packs, if one is written.
        index_kept: Option<&'static [&'static str]>,
        index_replaced: &'static [&'static str],
        old_condemned: &'static [&'static str],
        rescued: usize,
        waiting: usize,
        leftovers: usize,
        retained: usize,
        unused_bytes: u64,
        reasons: usize,
    }

    const NOTHING: Expect = Expect {
        refused: false,
        condemn: &[],
        keep: &[],
        delete: &[],
        rewrite: false,
        index_kept: None,
        index_replaced: &[],
        old_condemned: &[],
        rescued: 0,
        waiting: 0,
        leftovers: 0,
        retained: 0,
        unused_bytes: 0,
        reasons: 0,
    };

    /// A snapshot needs blob 1 (in pack A); pack B holds only blob 2.
    const BASE: Row = Row {
        name: "",
        now: 100,
        grace: 60,
        dry_run: false,
        index: &[("index/i1", &[("pA", &[1]), ("pB", &[2])])],
        stored: &[("pA", 0), ("pB", 0)],
        used: &[1],
        unindexed: &[],
        condemned: &[],
        locks: &[],
        retained: &[],
        expect: NOTHING,
    };

    /// The plan's outcome in the rows' terms.
    #[derive(Debug, PartialEq)]
    struct Outcome {
        refused: bool,
        condemn: Vec<String>,
        keep: Vec<(i64, Vec<String>)>,
        delete: Vec<String>,
        rewrite: bool,
        index_kept: Option<Vec<String>>,
        index_replaced: Vec<String>,
        old_condemned: Vec<String>,
        rescued: usize,
        waiting: usize,
        leftovers: usize,
        retained: usize,
        unused_bytes: u64,
        reasons: usize,
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    impl From<Expect> for Outcome {
        fn from(e: Expect) -> Self {
            Outcome {
                refused: e.refused,
                condemn: strings(e.condemn),
                keep: e.keep.iter().map(|(f, p)| (*f, strings(p))).collect(),
                delete: strings(e.delete),
                rewrite: e.rewrite,
                index_kept: e.index_kept.map(strings),
                index_replaced: strings(e.index_replaced),
                old_condemned: strings(e.old_condemned),
                rescued: e.rescued,
                waiting: e.waiting,
                leftovers: e.leftovers,
                retained: e.retained,
                unused_bytes: e.unused_bytes,
                reasons: e.reasons,
            }
        }
    }

    fn lock(operation: &str, created: i64, stale: bool, now: i64) -> LockEntry {
        LockEntry {
            key: format!("locks/{operation}"),
            doc: LockDoc {
                version: 1,
                mode: if operation == "own" {
                    LockMode::Exclusive
                } else {
                    LockMode::Shared
                },
                operation: operation.to_string(),
                hostname: "host".into(),
                username: "user".into(),
                pid: 1,
                created: t(created),
                instance: String::new(),
                boot_id: None,
                pid_namespace: None,
                start_time: None,
            },
            unreadable: None,
            refreshed: t(now),
            stale_at: t(now + 30),
            stale,
        }
    }

    fn inputs(row: &Row) -> PruneInputs {
        let index_docs = row
            .index
            .iter()
            .map(|(key, packs)| {
                let packs = packs
                    .iter()
                    .map(|(id, blobs)| IndexPack {
                        id: id.to_string(),
                        size: PACK,
                        blobs: blobs
                            .iter()
                            .enumerate()
                            .map(|(k, tag)| BlobRecord {
                                id: hex::encode([*tag; 32]),
                                kind: BlobKind::Data,
                                offset: k as u64 * BLOB as u64,
                                length: BLOB,
                                raw_length: BLOB,
                                compressed: false,
                            })
                            .collect(),
                    })
                    .collect();
                let doc = IndexDoc {
                    version: DOC_VERSION,
                    packs,
                };
                (key.to_string(), doc)
            })
            .collect();
        let mut locks = vec![lock("own", 0, false, row.now)];
        locks.extend(row.locks.iter().map(|(op, c, s)| lock(op, *c, *s, row.now)));
        PruneInputs {
            now: t(row.now),
            locks,
            refs: References {
                snapshots: 2,
                used: row.used.iter().map(|tag| [*tag; 32]).collect(),
                unindexed: row
                    .unindexed
                    .iter()
                    .map(|(id, n)| (id.to_string(), *n))
                    .collect(),
            },
            index_docs,
            condemned: row
                .condemned
                .iter()
                .map(|(key, fence, packs)| CondemnedEntry {
                    key: key.to_string(),
                    doc: CondemnedDoc {
                        version: DOC_VERSION,
                        packs: strings(packs),
                        condemned_at: fence.map(t),
                    },
                })
                .collect(),
            stored: row
                .stored
                .iter()
                .map(|(id, modified)| {
                    let info = ObjectInfo {
                        key: format!("data/{id}"),
                        size: PACK,
                        last_modified: t(*modified),
                    };
                    (id.to_string(), info)
                })
                .collect(),
            retained: row
                .retained
                .iter()
                .map(|(id, until)| (id.to_string(), t(*until)))
                .collect(),
        }
    }

    fn outcome(row: &Row) -> Outcome {
        let planned = plan(
            &inputs(row),
            "own",
            Duration::minutes(row.grace),
            row.dry_run,
        );
        let p = match planned {
            Ok(p) => p,
            Err(e) => {
                assert!(
                    e.to_string().contains("lifeboat repair index"),
                    "{}: refusal says what to do: {e}",
                    row.name
                );
                return Outcome {
                    refused: true,
                    ..Expect { ..NOTHING }.into()
                };
            }
        };
        let r = &p.report;
        // Totals agree with the lists, whatever the row.
        assert_eq!(r.deleted_packs, p.delete.len(), "{}", row.name);
        assert_eq!(
            r.deleted_bytes,
            PACK * p.delete.len() as u64,
            "{}",
            row.name
        );
        assert_eq!(r.condemned, p.condemn.len(), "{}", row.name);
        assert_eq!(r.packs_total, row.stored.len(), "{}", row.name);
        assert_eq!(r.dry_run, row.dry_run, "{}", row.name);
        for (id, key) in &p.delete {
            assert_eq!(key, &format!("data/{id}"), "{}", row.name);
        }
        Outcome {
            refused: false,
            condemn: p.condemn.iter().cloned().collect(),
            keep: p
                .keep
                .iter()
                .map(|(f, packs)| (minutes(*f), packs.iter().cloned().collect()))
                .collect(),
            delete: p.delete.keys().cloned().collect(),
            rewrite: p.rewrite_condemned,
            index_kept: p
                .index
                .consolidated
                .as_ref()
                .map(|d| d.packs.iter().map(|pk| pk.id.clone()).collect()),
            index_replaced: p.index.replaced.clone(),
            old_condemned: p.old_condemned.clone(),
            rescued: r.rescued,
            waiting: r.waiting,
            leftovers: r.deleted_leftovers,
            retained: r.retained,
            unused_bytes: r.unused_bytes_in_live_packs,
            reasons: r.waiting_reasons.len(),
        }
    }

    fn run(rows: &[Row]) {
        let mut failed = Vec::new();
        for row in rows {
            let got = outcome(row);
            let want = Outcome::from(row.expect);
            if got != want {
                failed.push(format!("{}:\n  got  {got:?}\n  want {want:?}", row.name));
            }
        }
        assert!(failed.is_empty(), "{}", failed.join("\n"));
    }

    /// Condemned document c1 with pack B fenced at minute 30 (grace passed at 100).
    const B_FENCED_30: &[(&str, Option<i64>, &[&str])] = &[("condemned/c1", Some(30), &["pB"])];

    /// What deleting B out of BASE's index does to it.
    const B_DELETED: Expect = Expect {
        delete: &["pB"],
        rewrite: true,
        index_kept: Some(&["pA"]),
        index_replaced: &["index/i1"],
        old_condemned: &["condemned/c1"],
        ..NOTHING
    };

    /// B condemned by this pass (fenced now), waiting for the grace.
    const B_CONDEMNED: Expect = Expect {
        condemn: &["pB"],
        rewrite: true,
        waiting: 1,
        ..NOTHING
    };

    /// B, condemned in c1, referenced again: rescued, c1 dropped.
    const B_RESCUED: Expect = Expect {
        rescued: 1,
        rewrite: true,
        old_condemned: &["condemned/c1"],
        ..NOTHING
    };

    /// Condemned packs kept under their fences by something that says why
    /// (a lock, Object Lock retention).
    const fn held(keep: &'static [(i64, &'static [&'static str])]) -> Expect {
        Expect {
            keep,
            waiting: 1,
            reasons: 1,
            ..NOTHING
        }
    }

    /// One pack waits, with no reason to report (a leftover not older than
    /// the grace).
    const ONE_WAITS: Expect = Expect {
        waiting: 1,
        ..NOTHING
    };

    /// One pack waits, and the report says why.
    const ONE_HELD: Expect = Expect {
        reasons: 1,
        ..ONE_WAITS
    };

    /// An index listing only pack A.
    const A_INDEXED: &[(&str, Packs)] = &[("index/i1", &[("pA", &[1])])];

    /// Pack A, and pack Z (no index lists it) written at minute 10.
    const LEFTOVER: &[(&str, i64)] = &[("pA", 0), ("pZ", 10)];

    /// Another operation's live lock, created at minute 50.
    const BACKUP_AT_50: &[(&str, i64, bool)] = &[("backup", 50, false)];

    #[test]
    fn condemn_then_delete_after_the_grace() {
        run(&[
            Row {
                name: "every pack used: nothing to do",
                used: &[1, 2],
                ..BASE
            },
            Row {
                name: "an unreferenced pack is condemned, not deleted, in its first pass",
                expect: B_CONDEMNED,
                ..BASE
            },
            Row {
                name: "a condemned pack within the grace waits under its fence",
                condemned: &[("condemned/c1", Some(90), &["pB"])],
                expect: Expect {
                    keep: &[(90, &["pB"])],
                    waiting: 1,
                    ..NOTHING
                },
                ..BASE
            },
            Row {
                name: "a condemned pack is deleted by a later run once the grace has passed (prune's own lock holds nothing)",
                condemned: B_FENCED_30,
                expect: B_DELETED,
                ..BASE
            },
            Row {
                name: "grace reached exactly (now - fence = grace): deleted",
                condemned: &[("condemned/c1", Some(40), &["pB"])],
                expect: B_DELETED,
                ..BASE
            },
            Row {
                name: "a pack in two fenced documents: the earliest fence counts",
                condemned: &[
                    ("condemned/c1", Some(30), &["pB"]),
                    ("condemned/c2", Some(80), &["pB"]),
                ],
                expect: Expect {
                    old_condemned: &["condemned/c1", "condemned/c2"],
                    ..B_DELETED
                },
                ..BASE
            },
            Row {
                name: "others stay condemned under their own fences when one is deleted",
                index: &[("index/i1", &[("pA", &[1]), ("pB", &[2]), ("pC", &[3])])],
                stored: &[("pA", 0), ("pB", 0), ("pC", 0)],
                condemned: &[
                    ("condemned/c1", Some(30), &["pB"]),
                    ("condemned/c2", Some(90), &["pC"]),
                ],
                expect: Expect {
                    keep: &[(90, &["pC"])],
                    index_kept: Some(&["pA", "pC"]),
                    old_condemned: &["condemned/c1", "condemned/c2"],
                    waiting: 1,
                    ..B_DELETED
                },
                ..BASE
            },
        ]);
    }

    #[test]
    fn rescue_and_partly_used_packs() {
        run(&[
            Row {
                name: "a condemned pack referenced again (a snapshot appeared after the condemnation) is rescued",
                used: &[1, 2],
                condemned: B_FENCED_30,
                expect: B_RESCUED,
                ..BASE
            },
            Row {
                name: "a partly used pack is kept whole (prune does not repack): its unused bytes are reported",
                index: &[("index/i1", &[("pA", &[1, 2, 3])])],
                stored: &[("pA", 0)],
                expect: Expect {
                    unused_bytes: 2 * BLOB as u64,
                    ..NOTHING
                },
                ..BASE
            },
            Row {
                name: "a pack listed by two index documents (after `repair index`) counts once",
                index: &[
                    ("index/i1", &[("pA", &[1, 2])]),
                    ("index/i2", &[("pA", &[1, 2])]),
                ],
                stored: &[("pA", 0)],
                expect: Expect {
                    unused_bytes: BLOB as u64,
                    ..NOTHING
                },
                ..BASE
            },
        ]);
    }

    #[test]
    fn index_entries_of_deleted_packs_are_dropped() {
        run(&[
            Row {
                name: "documents listing a deleted pack are replaced by one with their other packs, each once; others untouched",
                index: &[
                    ("index/i1", &[("pA", &[1]), ("pB", &[2])]),
                    ("index/i2", &[("pC", &[3])]),
                    ("index/i3", &[("pB", &[2]), ("pD", &[4]), ("pA", &[1])]),
                ],
                stored: &[("pA", 0), ("pB", 0), ("pC", 0), ("pD", 0)],
                used: &[1, 3, 4],
                condemned: B_FENCED_30,
                expect: Expect {
                    index_kept: Some(&["pA", "pD"]),
                    index_replaced: &["index/i1", "index/i3"],
                    ..B_DELETED
                },
                ..BASE
            },
            Row {
                name: "a document listing only deleted packs is removed, no consolidated document written",
                index: &[("index/i1", &[("pA", &[1])]), ("index/i2", &[("pB", &[2])])],
                condemned: B_FENCED_30,
                expect: Expect {
                    index_kept: None,
                    index_replaced: &["index/i2"],
                    ..B_DELETED
                },
                ..BASE
            },
        ]);
    }

    #[test]
    fn locks_hold_packs_back() {
        run(&[
            Row {
                name: "a live lock created at the fence holds the pack (its backup may have deduplicated against it)",
                condemned: B_FENCED_30,
                locks: &[("backup", 30, false)],
                expect: held(&[(30, &["pB"])]),
                ..BASE
            },
            Row {
                name: "a live lock created after the fence does not hold (its backup saw the condemnation)",
                condemned: B_FENCED_30,
                locks: &[("backup", 31, false)],
                expect: B_DELETED,
                ..BASE
            },
            Row {
                name: "a stale lock (its holder died) holds nothing",
                condemned: B_FENCED_30,
                locks: &[("backup", 10, true)],
                expect: B_DELETED,
                ..BASE
            },
            Row {
                name: "with zero grace a live lock makes newly condemned packs wait, with a reason",
                grace: 0,
                locks: BACKUP_AT_50,
                expect: Expect {
                    reasons: 1,
                    ..B_CONDEMNED
                },
                ..BASE
            },
            Row {
                name: "locks alone never delete: a live exclusive holder (check) created before the fence holds too",
                condemned: B_FENCED_30,
                locks: &[("check", 20, false)],
                expect: held(&[(30, &["pB"])]),
                ..BASE
            },
        ]);
    }

    #[test]
    fn packs_no_index_lists() {
        const DELETED: Expect = Expect {
            delete: &["pZ"],
            leftovers: 1,
            ..NOTHING
        };
        run(&[
            Row {
                name: "a leftover older than the grace, no lock: deleted, no index or condemned document touched",
                stored: LEFTOVER,
                expect: DELETED,
                ..BASE
            },
            Row {
                name: "a leftover younger than the grace waits",
                stored: &[("pA", 0), ("pZ", 50)],
                expect: ONE_WAITS,
                ..BASE
            },
            Row {
                name: "zero grace: a pack written at the pass's start waits (its writer may not be in the lock listing)",
                grace: 0,
                stored: &[("pA", 0), ("pZ", 100)],
                expect: ONE_WAITS,
                ..BASE
            },
            Row {
                name: "a live lock created before the pack (a backup still writing) holds it",
                stored: LEFTOVER,
                locks: &[("backup", 5, false)],
                expect: ONE_HELD,
                ..BASE
            },
            Row {
                name: "a lock created after the pack does not hold it",
                stored: LEFTOVER,
                locks: &[("backup", 20, false)],
                expect: DELETED,
                ..BASE
            },
            Row {
                name: "an interrupted backup (its lock stale): its pack is deleted",
                stored: LEFTOVER,
                locks: &[("backup", 5, true)],
                expect: DELETED,
                ..BASE
            },
        ]
        .map(|row| Row {
            index: A_INDEXED,
            ..row
        }));
    }

    #[test]
    fn incomplete_information_keeps_everything() {
        run(&[Row {
            name: "snapshots need blobs no index lists: refused, nothing deleted or condemned",
            unindexed: &[("0a1b2c3d", 2)],
            condemned: B_FENCED_30,
            stored: &[("pA", 0), ("pB", 0), ("pZ", 0)],
            expect: Expect {
                refused: true,
                ..NOTHING
            },
            ..BASE
        }]);
    }

    #[test]
    fn dry_run() {
        run(&[
            Row {
                name: "dry run, zero grace, no other lock: what a real run's second pass would delete",
                grace: 0,
                dry_run: true,
                expect: Expect {
                    condemn: &["pB"],
                    rewrite: true,
                    delete: &["pB"],
                    index_kept: Some(&["pA"]),
                    index_replaced: &["index/i1"],
                    ..NOTHING
                },
                ..BASE
            },
            Row {
                name: "dry run, zero grace, a live lock: condemned packs wait",
                grace: 0,
                dry_run: true,
                locks: BACKUP_AT_50,
                expect: Expect {
                    reasons: 1,
                    ..B_CONDEMNED
                },
                ..BASE
            },
        ]);
    }

    #[test]
    fn object_lock_retention() {
        run(&[
            Row {
                name: "a retained condemned pack stays condemned under its fence",
                condemned: B_FENCED_30,
                retained: &[("pB", 500)],
                expect: Expect {
                    rewrite: true,
                    old_condemned: &["condemned/c1"],
                    retained: 1,
                    ..held(&[(30, &["pB"])])
                },
                ..BASE
            },
            Row {
                name: "a retained leftover is neither deleted nor counted as deleted",
                index: A_INDEXED,
                stored: LEFTOVER,
                retained: &[("pZ", 500)],
                expect: Expect {
                    retained: 1,
                    ..ONE_HELD
                },
                ..BASE
            },
        ]);
    }

    /// The interleavings of prune's hardening (issue 16), as the passes of
    /// a zero-grace prune see them. Pass 1 of each: the pass reads the
    /// snapshots (pack B unused), then is held; the other operation runs;
    /// pass 1 condemns B with the fence taken at minute 101; pass 2 reads
    /// again at 102. Numbers in the names refer to "Why prune is safe".
    #[test]
    fn interleavings_of_the_hardening() {
        const ZERO: Row = Row {
            grace: 0,
            now: 102,
            condemned: &[("condemned/c1", Some(101), &["pB"])],
            ..BASE
        };
        run(&[
            Row {
                name: "pass 1 of every race: a backup of B's data committing after the snapshots were read is not seen; B is condemned, not deleted (6)",
                now: 100,
                grace: 0,
                expect: B_CONDEMNED,
                ..BASE
            },
            Row {
                name: "backup committed inside the window: pass 2 sees its snapshot and rescues B (3)",
                used: &[1, 2],
                expect: B_RESCUED,
                ..ZERO
            },
            Row {
                name: "backup running across the condemnation: pass 2 sees its lock, older than the fence, and keeps B (2)",
                locks: &[("backup", 100, false)],
                expect: held(&[(101, &["pB"])]),
                ..ZERO
            },
            Row {
                name: "… and once it committed, the next prune rescues B (3)",
                now: 110,
                used: &[1, 2],
                expect: B_RESCUED,
                ..ZERO
            },
            Row {
                name: "backup started after the fence: it saw the condemnation and did not use B, so its lock holds nothing (1)",
                locks: &[("backup", 102, false)],
                expect: Expect {
                    old_condemned: &["condemned/c1"],
                    ..B_DELETED
                },
                ..ZERO
            },
            Row {
                name: "forget at a boundary: pass 2 deletes B and condemns A, which it does not delete in the same pass (6)",
                used: &[],
                expect: Expect {
                    condemn: &["pA"],
                    waiting: 1,
                    index_kept: Some(&["pA"]),
                    old_condemned: &["condemned/c1"],
                    ..B_DELETED
                },
                ..ZERO
            },
            Row {
                name: "check at a boundary is refused by the lock; had it started before the fence, its lock would hold B",
                locks: &[("check", 100, false)],
                expect: held(&[(101, &["pB"])]),
                ..ZERO
            },
            Row {
                name: "interrupted after the announcement, before the fence: the next prune fences B anew",
                condemned: &[("condemned/ann", None, &["pB"])],
                expect: Expect {
                    old_condemned: &["condemned/ann"],
                    ..B_CONDEMNED
                },
                ..ZERO
            },
            Row {
                name: "interrupted after the fenced documents, before the announcement's removal: the fence counts",
                condemned: &[
                    ("condemned/ann", None, &["pB"]),
                    ("condemned/c1", Some(101), &["pB"]),
                ],
                expect: Expect {
                    old_condemned: &["condemned/ann", "condemned/c1"],
                    ..B_DELETED
                },
                ..ZERO
            },
            Row {
                name: "interrupted after the index rewrite, before the packs: B, no longer indexed, is deleted through its condemnation",
                index: &[("index/i2", &[("pA", &[1])])],
                expect: Expect {
                    delete: &["pB"],
                    rewrite: true,
                    old_condemned: &["condemned/c1"],
                    ..NOTHING
                },
                ..ZERO
            },
            Row {
                name: "interrupted after deleting the packs, before the old condemned documents: they are dropped",
                stored: &[("pA", 0)],
                expect: Expect {
                    rewrite: true,
                    old_condemned: &["condemned/c1"],
                    ..NOTHING
                },
                ..ZERO
            },
        ]);
    }
}
