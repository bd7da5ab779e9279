//! The decisions of a copy, as pure functions of what was read: may this
//! target receive copies from this source ([`origin_verdict`]), which source
//! snapshots the filters choose ([`select`]), and which of them the target
//! holds already ([`copied_already`]).

use std::collections::BTreeMap;

use crate::snapshot::{Snapshot, SnapshotRef};

/// Which snapshots to copy: every filter given must match. `ids` are ids
/// or unique prefixes (at least 4 hex digits); `latest` keeps the N newest
/// of each source after the other filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub source: Option<String>,
    pub kind: Option<String>,
    pub latest: Option<usize>,
    pub ids: Vec<String>,
}

/// What to do about the target's record of its source (`copy-source`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The target has received copies from this source before.
    Known,
    /// The target is new to copies: record the source before the first write.
    Record,
}

/// Why a target may not receive copies from a source. Nothing is written
/// to the target when one of these is returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Source and target are the same repository (same id).
    SameRepository,
    /// The target holds copies of another repository.
    OtherSource { recorded: String },
    /// The target holds snapshots that are not copies (its own backups).
    OwnSnapshots { count: usize },
}

impl Refusal {
    /// The message, naming what to do instead.
    pub fn message(&self, source_id: &str, target: &str) -> String {
        match self {
            Refusal::SameRepository => format!(
                "{target} is the repository being copied (id {source_id}): give another repository to --to"
            ),
            Refusal::OtherSource { recorded } => format!(
                "{target} receives copies from repository {recorded}, not from this one ({source_id}): a target receives copies from one source repository only. Create another target with `lifeboat init --copy-params-from`; nothing was written"
            ),
            Refusal::OwnSnapshots { count } => format!(
                "{target} holds {count} snapshot(s) of its own, not copies of repository {source_id}: copies go into a repository made for them (`lifeboat init`, or `lifeboat init --copy-params-from`); nothing was written"
            ),
        }
    }
}

/// May the target (`target_id`, recording `recorded`, holding
/// `target_snapshots` snapshots) receive copies from `source_id`?
pub fn origin_verdict(
    source_id: &str,
    target_id: &str,
    recorded: Option<&str>,
    target_snapshots: usize,
) -> Result<Origin, Refusal> {
    if source_id == target_id {
        return Err(Refusal::SameRepository);
    }
    match recorded {
        Some(r) if r == source_id => Ok(Origin::Known),
        Some(r) => Err(Refusal::OtherSource {
            recorded: r.to_string(),
        }),
        None if target_snapshots > 0 => Err(Refusal::OwnSnapshots {
            count: target_snapshots,
        }),
        None => Ok(Origin::Record),
    }
}

/// The source snapshots the filter chooses, oldest first (the order they
/// are copied in, so an interrupted run has copied the oldest).
pub fn select<'a>(snaps: &'a [SnapshotRef], f: &Filter) -> Vec<&'a SnapshotRef> {
    let mut chosen: Vec<&SnapshotRef> = snaps
        .iter()
        .filter(|s| f.source.as_ref().is_none_or(|x| &s.snapshot.source == x))
        .filter(|s| f.kind.as_ref().is_none_or(|x| &s.snapshot.kind == x))
        .filter(|s| {
            f.ids.is_empty()
                || f.ids
                    .iter()
                    .any(|p| s.id.starts_with(&p.to_ascii_lowercase()))
        })
        .collect();
    chosen.sort_by(|a, b| a.snapshot.time.cmp(&b.snapshot.time).then(a.id.cmp(&b.id)));
    if let Some(n) = f.latest {
        let mut per_source: BTreeMap<&str, usize> = BTreeMap::new();
        let mut keep = vec![false; chosen.len()];
        for (i, s) in chosen.iter().enumerate().rev() {
            let seen = per_source.entry(s.snapshot.source.as_str()).or_default();
            if *seen < n {
                keep[i] = true;
                *seen += 1;
            }
        }
        let mut k = keep.into_iter();
        chosen.retain(|_| k.next().unwrap_or(false));
    }
    chosen
}

/// Ids given that match no snapshot, or several (for the error message).
pub fn unmatched_ids(snaps: &[SnapshotRef], ids: &[String]) -> Vec<String> {
    ids.iter()
        .filter(|p| {
            let p = p.to_ascii_lowercase();
            snaps.iter().filter(|s| s.id.starts_with(&p)).count() != 1
        })
        .cloned()
        .collect()
}

/// Whether `copy` is a copy of `original`: the same backup, told by what a
/// copy keeps (time, source, kind, host, user, program, tags, facts, scope;
/// not the items, which a re-chunking copy changes, nor the id, which is
/// the hash of the sealed document).
pub fn same_backup(original: &Snapshot, copy: &Snapshot) -> bool {
    original.time == copy.time
        && original.source == copy.source
        && original.kind == copy.kind
        && original.hostname == copy.hostname
        && original.username == copy.username
        && original.program == copy.program
        && original.tags == copy.tags
        && original.facts == copy.facts
        && original.scope == copy.scope
        && original.items.len() == copy.items.len()
        && original
            .items
            .iter()
            .zip(&copy.items)
            .all(|(a, b)| a.name == b.name && a.size == b.size)
}

/// The target's copy of `original`, when it holds one already.
pub fn copied_already<'a>(
    original: &Snapshot,
    target: &'a [SnapshotRef],
) -> Option<&'a SnapshotRef> {
    target.iter().find(|t| same_backup(original, &t.snapshot))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{BackupStats, Item};
    use chrono::{TimeZone, Utc};

    fn snap(id: &str, minute: u32, source: &str, kind: &str) -> SnapshotRef {
        SnapshotRef {
            id: id.to_string(),
            snapshot: Snapshot {
                version: 1,
                time: Utc.with_ymd_and_hms(2026, 12, 6, 7, minute, 0).unwrap(),
                hostname: "h".into(),
                username: "u".into(),
                source: source.into(),
                kind: kind.into(),
                tags: vec![],
                items: vec![Item {
                    name: "dump".into(),
                    size: 10,
                    chunks: 1,
                    tree: vec!["aa".into()],
                    digest: "d".into(),
                }],
                stats: BackupStats::default(),
                facts: serde_json::json!({"rows": minute}),
                program: "lifeboat 0.1.0".into(),
                scope: None,
            },
        }
    }

    /// Source id, target id, the target's recorded source, its snapshots
    /// count, and the verdict.
    type OriginCase<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        usize,
        Result<Origin, Refusal>,
    );

    #[test]
    fn origin_verdicts() {
        use Origin::*;
        let table: &[OriginCase] = &[
            ("a", "b", None, 0, Ok(Record)),
            ("a", "b", Some("a"), 0, Ok(Known)),
            ("a", "b", Some("a"), 7, Ok(Known)),
            (
                "a",
                "b",
                Some("c"),
                0,
                Err(Refusal::OtherSource {
                    recorded: "c".into(),
                }),
            ),
            ("a", "b", None, 2, Err(Refusal::OwnSnapshots { count: 2 })),
            ("a", "a", None, 0, Err(Refusal::SameRepository)),
            ("a", "a", Some("a"), 3, Err(Refusal::SameRepository)),
        ];
        for (src, tgt, rec, n, want) in table {
            assert_eq!(
                &origin_verdict(src, tgt, *rec, *n),
                want,
                "{src} {tgt} {rec:?} {n}"
            );
        }
    }

    #[test]
    fn selection() {
        let all = vec![
            snap("aaaa01", 1, "db", "postgres"),
            snap("bbbb02", 2, "k", "kube"),
            snap("aaaa03", 3, "db", "postgres"),
            snap("cccc04", 4, "db", "postgres"),
            snap("dddd05", 5, "k", "kube"),
        ];
        let ids =
            |f: Filter| -> Vec<String> { select(&all, &f).iter().map(|s| s.id.clone()).collect() };
        let table: Vec<(Filter, Vec<&str>)> = vec![
            (
                Filter::default(),
                vec!["aaaa01", "bbbb02", "aaaa03", "cccc04", "dddd05"],
            ),
            (
                Filter {
                    source: Some("db".into()),
                    ..Default::default()
                },
                vec!["aaaa01", "aaaa03", "cccc04"],
            ),
            (
                Filter {
                    kind: Some("kube".into()),
                    ..Default::default()
                },
                vec!["bbbb02", "dddd05"],
            ),
            (
                Filter {
                    latest: Some(1),
                    ..Default::default()
                },
                vec!["cccc04", "dddd05"],
            ),
            (
                Filter {
                    latest: Some(2),
                    source: Some("db".into()),
                    ..Default::default()
                },
                vec!["aaaa03", "cccc04"],
            ),
            (
                Filter {
                    ids: vec!["AAAA".into()],
                    ..Default::default()
                },
                vec!["aaaa01", "aaaa03"],
            ),
            (
                Filter {
                    ids: vec!["dddd".into(), "bbbb02".into()],
                    ..Default::default()
                },
                vec!["bbbb02", "dddd05"],
            ),
        ];
        for (f, want) in table {
            assert_eq!(ids(f.clone()), want, "{f:?}");
        }
        assert_eq!(
            unmatched_ids(&all, &["aaaa".into(), "cccc".into(), "eeee".into()]),
            vec!["aaaa".to_string(), "eeee".to_string()]
        );
    }

    #[test]
    fn a_copy_is_recognised_by_what_it_keeps() {
        let a = snap("aaaa01", 1, "db", "postgres");
        let mut copy = a.snapshot.clone();
        copy.items[0].tree = vec!["bb".into()];
        copy.items[0].digest = "other".into();
        assert!(same_backup(&a.snapshot, &copy), "re-chunked items");
        let target = vec![snap("ffff", 2, "db", "postgres")];
        assert!(copied_already(&a.snapshot, &target).is_none());
        for change in [
            |s: &mut Snapshot| s.time += chrono::Duration::seconds(1),
            |s: &mut Snapshot| s.source = "other".into(),
            |s: &mut Snapshot| s.facts = serde_json::json!({"rows": 99}),
            |s: &mut Snapshot| s.hostname = "x".into(),
            |s: &mut Snapshot| s.items[0].size = 11,
        ] {
            let mut c = a.snapshot.clone();
            change(&mut c);
            assert!(!same_backup(&a.snapshot, &c));
        }
    }
}
