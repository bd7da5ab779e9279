//! Every single-byte change to the small objects that open a repository (the
//! marker, the config, a key slot) is either refused on open with an error
//! that names the object, or caught by the checks `lifeboat check` runs.
//! Exhaustive over each object's bytes; uses a key-file slot so no Argon2
//! run slows the loop.

use std::path::Path;
use std::sync::Arc;

use lifeboat_repo::storage::Storage;
use lifeboat_repo::storage::object::open_url_create;
use lifeboat_repo::{InitOptions, Repository, Secret};

/// Flips one bit of every byte of `path` in turn; each must be noticed and
/// the message must contain `name`.
async fn every_flip_is_named(storage: &Arc<dyn Storage>, secret: &Secret, path: &Path, name: &str) {
    let original = std::fs::read(path).unwrap();
    assert!(!original.is_empty());
    for i in 0..original.len() {
        let mut b = original.clone();
        b[i] ^= 0x01;
        std::fs::write(path, &b).unwrap();
        match Repository::open(Arc::clone(storage), secret).await {
            Err(e) => assert!(
                e.to_string().contains(name),
                "{name} byte {i}: open failed without naming it: {e}"
            ),
            Ok(repo) => {
                let slots = repo.verify_key_slots().await.unwrap();
                let marker = repo.verify_marker_and_config().await;
                let named = slots.iter().any(|s| s.contains(name))
                    || marker.as_ref().is_err_and(|e| e.to_string().contains(name));
                assert!(
                    named,
                    "{name} byte {i} flipped ({:?} -> {:?}) went unnoticed",
                    original[i] as char, b[i] as char
                );
            }
        }
    }
    std::fs::write(path, &original).unwrap();
    Repository::open(Arc::clone(storage), secret).await.unwrap();
}

#[tokio::test]
async fn every_flipped_byte_in_marker_config_or_key_slot_is_named() {
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
    let slot_id = keys[0].file_name().unwrap().to_str().unwrap().to_string();
    every_flip_is_named(&storage, &secret, &keys[0], &slot_id).await;
    every_flip_is_named(
        &storage,
        &secret,
        &root.join("lifeboat.repo"),
        "lifeboat.repo",
    )
    .await;
    every_flip_is_named(&storage, &secret, &root.join("config"), "config").await;
}
