//! A lost index document is a repair case, never data loss (issue 16,
//! "Prune and check never turn a repair case into data loss", first item):
//! `check` advises `repair index`, `prune` refuses and deletes nothing, and
//! `repair index` rebuilds the index from the packs' headers — safely when
//! interrupted at any request, and beside a running backup.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use lifeboat_repo::ErrorClass;
use lifeboat_repo::backup::Progress;
use lifeboat_repo::format::{DATA_PREFIX, INDEX_PREFIX};
use lifeboat_repo::pack::BlobId;
use lifeboat_repo::prune::{PruneOptions, prune};
use lifeboat_repo::repair::repair_index;

use crate::common;
use common::{Fixture, backup, data, fixture};

/// Every snapshot restores to what was backed up, check is clean, and no
/// pack lacks its index entries.
async fn assert_intact(f: &Fixture, context: &str) {
    let report = common::assert_intact(f, context).await;
    assert_eq!(report.unindexed_packs, 0, "{context}");
}

async fn keys(f: &Fixture, prefix: &str) -> Vec<String> {
    let mut k: Vec<String> = f
        .repo
        .storage()
        .list(prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    k.sort();
    k
}

/// The case: snapshot 1 (data X), since forgotten; snapshot 2 (X
/// then Y) deduplicated X against snapshot 1's packs; snapshot 3 apart.
/// Snapshot 1's index document is lost: snapshot 2's tree blobs are still
/// indexed, but most of its chunks are in packs no index lists, which look
/// like an interrupted backup's leftovers.
async fn lost_index_document(f: &mut Fixture) {
    let x = data(700_000, 1);
    let s1 = backup(f, x.clone()).await;
    let first_doc = keys(f, INDEX_PREFIX).await;
    assert_eq!(first_doc.len(), 1);
    let mut xy = x;
    xy.extend(data(300_000, 2));
    backup(f, xy).await;
    backup(f, data(300_000, 3)).await;
    f.repo
        .storage()
        .delete(&format!("{}{s1}", lifeboat_repo::format::SNAPSHOTS_PREFIX))
        .await
        .unwrap();
    f.expected.remove(&s1);
    f.repo.storage().delete(&first_doc[0]).await.unwrap();
}

async fn indexed_blobs(f: &Fixture) -> HashSet<BlobId> {
    let index = f.repo.load_index().await.unwrap();
    let mut out = HashSet::new();
    for s in f.repo.snapshots().await.unwrap() {
        for item in &s.snapshot.items {
            for t in &item.tree {
                let id = lifeboat_repo::format::parse_hex32(t).unwrap();
                if index.contains(&id) {
                    out.insert(id);
                }
            }
            if let Ok(ids) = lifeboat_repo::restore::chunk_ids(&f.repo, &index, item).await {
                out.extend(ids.into_iter().filter(|id| index.contains(id)));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_refuses_while_a_snapshot_needs_unindexed_blobs() {
    let mut f = fixture("repair").await;
    lost_index_document(&mut f).await;
    let packs = keys(&f, DATA_PREFIX).await;

    for dry_run in [true, false] {
        let e = prune(
            &f.repo,
            &PruneOptions {
                grace: Duration::ZERO,
                dry_run,
            },
        )
        .await
        .expect_err("prune must refuse");
        assert_eq!(e.class(), ErrorClass::Integrity, "{e}");
        let msg = e.to_string();
        assert!(msg.contains("lifeboat repair index"), "{msg}");
        assert!(msg.contains("deleted nothing"), "{msg}");
    }
    assert_eq!(keys(&f, DATA_PREFIX).await, packs, "prune deleted packs");
    assert!(keys(&f, "condemned/").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_advises_repair_and_repair_index_restores_everything() {
    let mut f = fixture("repair").await;
    lost_index_document(&mut f).await;

    let report = lifeboat_repo::check::check(&f.repo, false, Arc::new(Progress::default()))
        .await
        .unwrap();
    assert!(!report.ok());
    assert!(report.unindexed_blobs > 0, "{report:?}");
    assert!(report.unindexed_packs > 0, "{report:?}");
    for p in &report.errors {
        assert!(p.detail.contains("lifeboat repair index"), "{p:?}");
        assert!(!p.detail.contains("prune removes"), "{p:?}");
    }

    let r = repair_index(&f.repo, Arc::new(Progress::default()))
        .await
        .unwrap();
    assert_eq!(r.packs, keys(&f, DATA_PREFIX).await.len());
    assert!(r.packs_newly_indexed > 0, "{r:?}");
    assert_eq!(r.index_files_removed, 2, "{r:?}");
    assert!(
        r.unreadable_packs.is_empty() && r.missing_packs.is_empty(),
        "{r:?}"
    );
    assert_intact(&f, "after repair").await;
    // Prune now runs and keeps everything a snapshot needs.
    prune(
        &f.repo,
        &PruneOptions {
            grace: Duration::ZERO,
            dry_run: false,
        },
    )
    .await
    .unwrap();
    assert_intact(&f, "after repair and prune").await;
}

/// Repair interrupted before each of its requests in turn: no blob that was
/// indexed becomes unindexed, and a second repair finishes the job. A backup
/// runs at the same boundary (repair holds an exclusive lock, backups a
/// shared one) and is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_interrupted_at_every_step_loses_no_index_entry() {
    let mut k = 1;
    loop {
        let mut f = fixture("repair").await;
        lost_index_document(&mut f).await;
        let before = indexed_blobs(&f).await;

        let mut pause = f.gated.pause_before(None, "", k);
        let mut repairing = {
            let repo = f.repo.clone();
            tokio::spawn(async move { repair_index(&repo, Arc::new(Progress::default())).await })
        };
        let held = tokio::select! {
            r = pause.reached() => r,
            done = &mut repairing => {
                done.unwrap().unwrap();
                assert!(k > 10, "only {k} boundaries");
                return;
            }
        };
        let context = format!("repair interrupted before request {k} {held:?}");
        backup(&mut f, data(200_000, 100 + k)).await;
        // Interrupted: the process is gone, and so is its lock (as
        // `lifeboat unlock` removes a dead process's lock).
        repairing.abort();
        let _ = repairing.await;
        drop(pause);
        lifeboat_repo::lock::unlock(&f.repo, true).await.unwrap();
        let after = indexed_blobs(&f).await;
        assert!(
            before.is_subset(&after),
            "{context}: {} blobs lost their index entry",
            before.difference(&after).count()
        );
        let r = repair_index(&f.repo, Arc::new(Progress::default()))
            .await
            .unwrap_or_else(|e| panic!("{context}: second repair: {e}"));
        assert!(r.unreadable_packs.is_empty(), "{context}: {r:?}");
        assert_intact(&f, &context).await;
        k += 1;
    }
}
