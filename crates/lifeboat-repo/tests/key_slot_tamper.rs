//! Every single-byte change to a key slot is either refused on open with an
//! error that names the slot, or caught by `verify_key_slots` (what `check`
//! runs). Exhaustive over the slot's bytes; uses a key-file slot so no
//! Argon2 run slows the loop.

use std::sync::Arc;

use lifeboat_repo::storage::Storage;
use lifeboat_repo::storage::object::open_url_create;
use lifeboat_repo::{InitOptions, Repository, Secret};

#[tokio::test]
async fn every_flipped_byte_in_a_key_slot_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let storage: Arc<dyn Storage> =
        open_url_create(root.to_str().unwrap(), &Default::default()).unwrap();
    let secret = Secret::key_file(Secret::generate_key_file().unwrap()).unwrap();
    Repository::init(Arc::clone(&storage), &secret, InitOptions::default())
        .await
        .unwrap();
    let keys: Vec<_> = std::fs::read_dir(root.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(keys.len(), 1, "one slot after init: {keys:?}");
    let path = &keys[0];
    let id = path.file_name().unwrap().to_str().unwrap().to_string();
    let original = std::fs::read(path).unwrap();
    for i in 0..original.len() {
        let mut b = original.clone();
        b[i] ^= 0x01;
        std::fs::write(path, &b).unwrap();
        match Repository::open(Arc::clone(&storage), &secret).await {
            Err(e) => assert!(
                e.to_string().contains(&id),
                "byte {i}: open failed without naming the slot: {e}"
            ),
            Ok(repo) => {
                let bad = repo.verify_key_slots().await.unwrap();
                assert!(
                    bad.iter().any(|b| b.contains(&id)),
                    "byte {i} flipped ({:?} -> {:?}) went unnoticed",
                    original[i] as char,
                    b[i] as char
                );
            }
        }
    }
    std::fs::write(path, &original).unwrap();
    Repository::open(storage, &secret).await.unwrap();
}
