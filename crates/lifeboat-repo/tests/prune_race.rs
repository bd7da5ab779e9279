//! Prune beside backups, forgets and checks, in every interleaving at prune's
//! storage-request boundaries (issue 16, "Prune and check never turn a
//! repair case into data loss", second item). The `Gated` storage wrapper
//! holds prune before its k-th request, the test runs another operation
//! there, lets prune go on, and then proves that every snapshot restores
//! byte-identical and `check` is clean. No sleeps: the ordering is the
//! wrapper's.
//!
//! The first two tests are the race the issue describes: a backup that
//! starts after prune's lock but before its condemned list is stored
//! deduplicates against packs prune then deletes (`--grace 0s`). They hold
//! prune at its listing of the packs, after it read the snapshots and
//! before it writes anything, in the old protocol and in the new one.

use std::sync::Arc;
use std::time::Duration;

use lifeboat_repo::ErrorClass;
use lifeboat_repo::backup::{BackupSession, Progress};
use lifeboat_repo::format::{DATA_PREFIX, SNAPSHOTS_PREFIX};
use lifeboat_repo::prune::{PruneOptions, prune};
use lifeboat_repo::storage::faulty::Op;

use crate::common;
use common::{Fixture, assert_intact, backup, data, fixture};

const GRACE_ZERO: PruneOptions = PruneOptions {
    grace: Duration::ZERO,
    dry_run: false,
};

async fn forget(f: &mut Fixture, id: &str) {
    f.repo
        .storage()
        .delete(&format!("{SNAPSHOTS_PREFIX}{id}"))
        .await
        .unwrap();
    f.expected.remove(id);
}

/// A forgotten snapshot of `x` (its packs unreferenced) and a kept one of `y`.
async fn forgotten_and_kept(f: &mut Fixture, x: &[u8], y: &[u8]) {
    let a = backup(f, x.to_vec()).await;
    backup(f, y.to_vec()).await;
    forget(f, &a).await;
}

/// The race, backup finishing inside the window: prune has read the
/// snapshots and is about to store its condemned list when a backup of the
/// same data starts, deduplicates against the doomed packs and commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_committed_before_the_condemned_list_is_stored_survives_prune() {
    let mut f = fixture("race").await;
    let x = data(600_000, 1);
    forgotten_and_kept(&mut f, &x, &data(300_000, 2)).await;

    // Held after it read the snapshots, before it condemns anything.
    let mut pause = f.gated.pause_before(Some(Op::List), DATA_PREFIX, 1);
    let mut pruning = {
        let repo = f.repo.clone();
        tokio::spawn(async move { prune(&repo, &GRACE_ZERO).await })
    };
    tokio::select! {
        r = pause.reached() => r.expect("held"),
        r = &mut pruning => panic!("prune never listed the packs: {r:?}"),
    };
    backup(&mut f, x.clone()).await;
    pause.release();
    pruning.await.unwrap().unwrap();
    assert_intact(&f, "after prune").await;
    // A later prune keeps them too.
    prune(&f.repo, &GRACE_ZERO).await.unwrap();
    assert_intact(&f, "after a second prune").await;
}

/// The same race with the backup still running when prune finishes: its
/// lock is newer than prune's, which must not let prune delete the packs
/// it deduplicated against.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_running_across_the_condemnation_survives_prune() {
    let mut f = fixture("race").await;
    let x = data(600_000, 3);
    forgotten_and_kept(&mut f, &x, &data(300_000, 4)).await;

    // Held after it read the snapshots, before it condemns anything.
    let mut pause = f.gated.pause_before(Some(Op::List), DATA_PREFIX, 1);
    let mut pruning = {
        let repo = f.repo.clone();
        tokio::spawn(async move { prune(&repo, &GRACE_ZERO).await })
    };
    tokio::select! {
        r = pause.reached() => r.expect("held"),
        r = &mut pruning => panic!("prune never listed the packs: {r:?}"),
    };
    let mut session = BackupSession::start(&f.repo, Arc::new(Progress::default()))
        .await
        .unwrap();
    session
        .add_stream("stdin", std::io::Cursor::new(x.clone()))
        .await
        .unwrap();
    pause.release();
    let report = pruning.await.unwrap().unwrap();
    let id = session.commit(common::meta("race")).await.unwrap().id;
    f.expected.insert(id, x);
    assert_intact(&f, &format!("after prune {report:?}")).await;
    prune(&f.repo, &GRACE_ZERO).await.unwrap();
    assert_intact(&f, "after a second prune").await;
}

/// What runs at the boundary where prune is held.
#[derive(Debug, Clone, Copy)]
enum Other {
    /// A whole backup of the forgotten data.
    Backup,
    /// A backup of the forgotten data that starts here and commits after prune.
    BackupAcross,
    /// Forget the kept snapshot.
    Forget,
    /// `check` (refused while prune holds its lock, which is fine).
    Check,
}

/// Prune held before each of its storage requests in turn, with each kind of
/// other operation run there. Returns how many boundaries were explored.
async fn every_boundary(other: Other) -> u64 {
    let mut k = 1;
    loop {
        let mut f = fixture("race").await;
        let x = data(400_000, 10 + k);
        let y = data(200_000, 1000 + k);
        forgotten_and_kept(&mut f, &x, &y).await;
        let kept = f.expected.keys().next().unwrap().clone();

        let mut pause = f.gated.pause_before(None, "", k);
        let mut pruning = {
            let repo = f.repo.clone();
            tokio::spawn(async move { prune(&repo, &GRACE_ZERO).await })
        };
        let held = tokio::select! {
            r = pause.reached() => r,
            done = &mut pruning => {
                done.unwrap().unwrap();
                return k - 1;
            }
        };
        let context = format!("{other:?} before prune request {k} {held:?}");
        let mut across = None;
        match other {
            Other::Backup => {
                backup(&mut f, x.clone()).await;
            }
            Other::BackupAcross => {
                let mut s = BackupSession::start(&f.repo, Arc::new(Progress::default()))
                    .await
                    .unwrap();
                s.add_stream("stdin", std::io::Cursor::new(x.clone()))
                    .await
                    .unwrap();
                across = Some(s);
            }
            Other::Forget => forget(&mut f, &kept).await,
            Other::Check => {
                match lifeboat_repo::check::check(&f.repo, false, Arc::new(Progress::default()))
                    .await
                {
                    Ok(r) => assert!(r.ok(), "{context}: check: {:?}", r.errors),
                    Err(e) => assert_eq!(e.class(), ErrorClass::Locked, "{context}: {e}"),
                }
            }
        }
        pause.release();
        match pruning.await.unwrap() {
            Ok(_) => {}
            // Check took its lock first.
            Err(e) if e.class() == ErrorClass::Locked => {}
            Err(e) => panic!("{context}: prune: {e}"),
        }
        if let Some(s) = across {
            let id = s.commit(common::meta("race")).await.unwrap().id;
            f.expected.insert(id, x.clone());
        }
        assert_intact(&f, &context).await;
        prune(&f.repo, &GRACE_ZERO).await.unwrap();
        assert_intact(&f, &format!("{context}, then another prune")).await;
        k += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_at_every_prune_step_loses_nothing() {
    let n = every_boundary(Other::Backup).await;
    assert!(n > 10, "only {n} boundaries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_across_every_prune_step_loses_nothing() {
    let n = every_boundary(Other::BackupAcross).await;
    assert!(n > 10, "only {n} boundaries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_at_every_prune_step_loses_nothing_else() {
    let n = every_boundary(Other::Forget).await;
    assert!(n > 10, "only {n} boundaries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_at_every_prune_step_is_clean_or_locked() {
    let n = every_boundary(Other::Check).await;
    assert!(n > 10, "only {n} boundaries");
}
