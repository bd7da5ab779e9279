//! The repository layout and the encoding of its documents.
//! `docs/format.md` is the specification; this module is its implementation.
//!
//! Layout (keys relative to the repository root):
//! - `lifeboat.repo`: plaintext marker (format name, version, repository id).
//! - `keys/<random id>`: key slots, plaintext JSON wrapping the master key.
//! - `config`: encrypted repository parameters (chunker, pack size, zstd level).
//! - `data/<2 hex>/<pack id>`: pack files.
//! - `index/<id>`, `snapshots/<id>`, `condemned/<id>`: encrypted documents.
//! - `locks/<random id>`: encrypted lock documents.
//!
//! Packs, indexes, snapshots and condemned lists are named by the plain
//! BLAKE3 hash of their stored (encrypted) bytes, so any modification is
//! detectable from the name alone, without the key.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::crypto::MasterKey;
use crate::error::{Fault, RepoError, Result};

pub const MARKER_KEY: &str = "lifeboat.repo";
pub const CONFIG_KEY: &str = "config";
pub const KEYS_PREFIX: &str = "keys/";
pub const DATA_PREFIX: &str = "data/";
pub const INDEX_PREFIX: &str = "index/";
pub const SNAPSHOTS_PREFIX: &str = "snapshots/";
pub const LOCKS_PREFIX: &str = "locks/";
pub const CONDEMNED_PREFIX: &str = "condemned/";

/// The marker's `format` value.
pub const FORMAT_NAME: &str = "lifeboat-repository";
/// The repository format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u64 = 1;
/// Version of every encrypted document this build writes and the newest it reads.
pub const DOC_VERSION: u64 = 1;

/// Key of a pack: fanned out over 256 directories.
pub fn pack_key(pack_id: &str) -> String {
    format!("{DATA_PREFIX}{}/{pack_id}", &pack_id[..2])
}

/// The id (last path element) of a key such as `snapshots/ab12…`.
pub fn id_of_key(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// Plain BLAKE3 of stored bytes, hex: the name of content-addressed objects.
pub fn storage_id(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Associated data binding an encrypted document to its kind.
fn doc_aad(kind: &str) -> Vec<u8> {
    format!("lifeboat/doc/{kind}").into_bytes()
}

/// Encodes a document: JSON, zstd, sealed with the master key.
/// The document must carry a `version` field (checked on read).
pub fn seal_doc<T: Serialize>(key: &MasterKey, kind: &str, doc: &T) -> Result<Vec<u8>> {
    let json =
        serde_json::to_vec(doc).map_err(|e| RepoError::internal(Fault::Encoding, e.to_string()))?;
    let compressed = zstd::bulk::compress(&json, 3)
        .map_err(|e| RepoError::internal(Fault::Encoding, format!("compressing {kind}: {e}")))?;
    Ok(key.seal(&doc_aad(kind), &compressed)?)
}

/// Decodes a document sealed by [`seal_doc`]; `object` names it in errors.
pub fn open_doc<T: DeserializeOwned>(
    key: &MasterKey,
    kind: &str,
    object: &str,
    sealed: &[u8],
) -> Result<T> {
    let compressed = key
        .open(&doc_aad(kind), sealed)
        .map_err(|e| RepoError::corrupt(object, e))?;
    let json = zstd::stream::decode_all(&compressed[..])
        .map_err(|e| RepoError::corrupt(object, format!("decompression failed: {e}")))?;
    parse_versioned_up_to(object, &json, supported_version(kind))
}

/// The newest version of a document of kind K this build reads: snapshots
/// go up to [`crate::snapshot::SCOPED_SNAPSHOT_VERSION`], everything else is
/// at [`DOC_VERSION`].
fn supported_version(kind: &str) -> u64 {
    match kind {
        "snapshot" => crate::snapshot::SCOPED_SNAPSHOT_VERSION,
        _ => DOC_VERSION,
    }
}

/// Parses JSON that carries a `version` field, refusing newer versions with
/// a clear error before looking at any other field.
pub fn parse_versioned<T: DeserializeOwned>(object: &str, json: &[u8]) -> Result<T> {
    parse_versioned_up_to(object, json, DOC_VERSION)
}

/// [`parse_versioned`] for a document whose newest known version is `supported`.
pub fn parse_versioned_up_to<T: DeserializeOwned>(
    object: &str,
    json: &[u8],
    supported: u64,
) -> Result<T> {
    let value: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| RepoError::corrupt(object, e))?;
    let version = value
        .get("version")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| RepoError::corrupt(object, "document has no version"))?;
    if version > supported {
        return Err(RepoError::NewerFormat {
            what: object.to_string(),
            found: version,
            supported,
        });
    }
    serde_json::from_value(value).map_err(|e| RepoError::corrupt(object, e))
}

/// Checks that content-addressed bytes match their name.
pub fn verify_storage_id(object: &str, bytes: &[u8]) -> Result<()> {
    let expected = id_of_key(object);
    let actual = storage_id(bytes);
    if actual != expected {
        return Err(RepoError::corrupt(
            object,
            format!("content hash is {actual}, the name says {expected}"),
        ));
    }
    Ok(())
}

/// Hex helpers for 32-byte ids.
pub fn hex32(id: &[u8; 32]) -> String {
    hex::encode(id)
}

pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let v = hex::decode(s).ok()?;
    v.try_into().ok()
}
