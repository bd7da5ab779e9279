//! Which restore paths a source's drills must prove (docs/drills.md,
//! "Logical and physical drills"): a logical drill restores its `pg_dump`
//! archive (or Kubernetes objects), a physical drill its base backup and
//! archived WAL. `status` and `readiness` judge each expected kind by its
//! own drills ([`crate::status::source_status`]); a pure decision, gathered
//! by `lifeboat-ops::assess`.

use crate::record::DrillKind;

/// What decides a source's drill kinds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrillEvidence {
    /// `drill.kinds` of the source, when written: exactly those.
    pub configured: Option<Vec<DrillKind>>,
    /// The repository holds a logical (postgres, kube, stream) snapshot of it.
    pub logical_snapshots: bool,
    /// The repository holds a physical base backup of it.
    pub physical_snapshots: bool,
    /// The daemon streams its WAL (`wal.streaming.<source>`).
    pub wal_streaming: bool,
    /// It has a backup `schedule` (the daemon's backups are logical).
    pub logical_schedule: bool,
    /// It has `physical.schedule` (the daemon takes base backups of it).
    pub physical_schedule: bool,
}

/// The kinds of drill the source must pass, in order (logical first).
/// Written in `drill.kinds`: those. Otherwise physical when it has physical
/// backups (a base backup stored or scheduled, or WAL streamed), and logical unless it
/// has physical backups only (no logical snapshot, no backup schedule): a
/// source with no physical backups is judged as before physical drills
/// existed, by its logical drills alone.
pub fn expected(e: &DrillEvidence) -> Vec<DrillKind> {
    if let Some(kinds) = &e.configured
        && !kinds.is_empty()
    {
        let mut k = kinds.clone();
        k.sort();
        k.dedup();
        return k;
    }
    let physical = e.physical_snapshots || e.wal_streaming || e.physical_schedule;
    let logical = !physical || e.logical_snapshots || e.logical_schedule;
    let mut out = Vec::new();
    if logical {
        out.push(DrillKind::Logical);
    }
    if physical {
        out.push(DrillKind::Physical);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use DrillKind::{Logical, Physical};

    #[test]
    fn kinds_follow_the_configuration_else_the_backups() {
        let e = |logical_snapshots, physical_snapshots, wal_streaming, logical_schedule| {
            DrillEvidence {
                configured: None,
                logical_snapshots,
                physical_snapshots,
                wal_streaming,
                logical_schedule,
                physical_schedule: false,
            }
        };
        let table: &[(DrillEvidence, &[DrillKind])] = &[
            // Nothing yet: judged as before (a logical drill is due).
            (e(false, false, false, false), &[Logical]),
            (e(true, false, false, true), &[Logical]),
            (e(true, true, false, true), &[Logical, Physical]),
            (e(false, false, true, true), &[Logical, Physical]),
            // Physical backups only: no logical drill can run.
            (e(false, true, false, false), &[Physical]),
            (e(false, false, true, false), &[Physical]),
            (e(true, true, true, false), &[Logical, Physical]),
            (
                DrillEvidence {
                    configured: Some(vec![Physical, Physical]),
                    ..e(true, true, false, true)
                },
                &[Physical],
            ),
            (
                DrillEvidence {
                    configured: Some(vec![Physical, Logical]),
                    ..e(false, false, false, false)
                },
                &[Logical, Physical],
            ),
            // Base backups on the daemon's schedule, none taken yet.
            (
                DrillEvidence {
                    physical_schedule: true,
                    ..e(false, false, false, false)
                },
                &[Physical],
            ),
            (
                DrillEvidence {
                    physical_schedule: true,
                    ..e(true, false, false, true)
                },
                &[Logical, Physical],
            ),
            // An empty list is no statement.
            (
                DrillEvidence {
                    configured: Some(vec![]),
                    ..e(true, false, false, false)
                },
                &[Logical],
            ),
        ];
        for (ev, want) in table {
            assert_eq!(expected(ev), *want, "{ev:?}");
        }
    }
}
