//! Restoring part of a stream: a byte range in order (the rows of one table
//! of an archive) and a file with holes where ranges were skipped (a staged
//! archive without the table whose rows are loaded from the range).

use std::io::Read;
use std::sync::Arc;

use lifeboat_repo::backup::{BackupSession, Progress, SnapshotMeta};
use lifeboat_repo::restore::{Part, restore_item_part, restore_item_part_to_file};
use lifeboat_repo::storage::object::open_url_create;
use lifeboat_repo::{InitOptions, Repository, Secret};

fn data(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

#[derive(Clone, Default)]
struct SharedBuf(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_and_holes_hold_exactly_the_stream_s_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open_url_create(
        dir.path().join("repo").to_str().unwrap(),
        &Default::default(),
    )
    .unwrap();
    let repo = Repository::init(
        storage,
        &Secret::Passphrase("pw".into()),
        InitOptions::default(),
    )
    .await
    .unwrap();
    // Several MiB: many chunks, so ranges start and end inside chunks.
    let input = data(9 << 20);
    let mut s = BackupSession::start(&repo, Arc::new(Progress::default()))
        .await
        .unwrap();
    s.add_stream("stdin", std::io::Cursor::new(input.clone()))
        .await
        .unwrap();
    let snap = s
        .commit(SnapshotMeta {
            source: "parts".into(),
            kind: "stream".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let len = input.len() as u64;
    for r in [0..len, 0..1, 1..2, 12_345..4_000_001, len - 7..len, 5..5] {
        let out = SharedBuf::default();
        let n = restore_item_part(
            &repo,
            &snap,
            None,
            &Part::Range(r.clone()),
            out.clone(),
            Arc::new(Progress::default()),
        )
        .await
        .unwrap();
        assert_eq!(n, r.end - r.start);
        let got = out.0.lock().unwrap().clone();
        assert!(
            got == input[r.start as usize..r.end as usize],
            "range {r:?} differs"
        );
    }
    let past = restore_item_part(
        &repo,
        &snap,
        None,
        &Part::Range(0..len + 1),
        SharedBuf::default(),
        Arc::new(Progress::default()),
    )
    .await;
    assert!(past.is_err(), "a range past the end is refused");

    // Holes, then filling them: the file ends up equal to the stream.
    let skip = vec![100_000..3_500_000, 6_000_000..len - 10];
    let path = dir.path().join("staged");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(len).unwrap();
    let n = restore_item_part_to_file(
        &repo,
        &snap,
        None,
        &Part::Except(skip.clone()),
        f.try_clone().unwrap(),
        Arc::new(Progress::default()),
    )
    .await
    .unwrap();
    assert!(n < len - 5_000_000, "{n} bytes written, holes skipped");
    let mut staged = Vec::new();
    std::fs::File::open(&path)
        .unwrap()
        .read_to_end(&mut staged)
        .unwrap();
    let kept = |i: usize| !skip.iter().any(|r| r.contains(&(i as u64)));
    assert!(
        (0..input.len())
            .filter(|&i| kept(i))
            .all(|i| staged[i] == input[i]),
        "bytes outside the holes differ"
    );
    for r in &skip {
        restore_item_part_to_file(
            &repo,
            &snap,
            None,
            &Part::Range(r.clone()),
            f.try_clone().unwrap(),
            Arc::new(Progress::default()),
        )
        .await
        .unwrap();
    }
    let mut filled = Vec::new();
    std::fs::File::open(&path)
        .unwrap()
        .read_to_end(&mut filled)
        .unwrap();
    assert!(filled == input, "the filled file differs from the stream");
}
