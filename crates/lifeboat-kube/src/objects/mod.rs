//! Kubernetes objects in a snapshot: what is stored, how it is selected,
//! backed up, restored and exported.
//!
//! A kube snapshot holds one item, [`ITEM_NAME`]: JSON lines, a [`Header`]
//! first, then one [`Record`] per object (its [`Resource`] and the object
//! with server-managed fields stripped), in dependency order (CRDs,
//! Namespaces, Secrets and ConfigMaps, other built-in kinds, custom
//! resources). Content-defined chunking makes the daily snapshot of a mostly
//! unchanged namespace cost only what changed. Like everything in the
//! repository it is encrypted: Secrets are never stored in plaintext.

pub mod backup;
pub mod delete;
pub mod diff;
pub mod export;
pub mod resource;
pub mod restore;
pub mod select;
pub mod strip;

use serde::{Deserialize, Serialize};

pub use resource::{Class, Resource};

/// Name of the item of a kube snapshot.
pub const ITEM_NAME: &str = "kube-objects.jsonl";
/// `format` of the first line.
pub const FORMAT: &str = "lifeboat-kube-objects";
/// Version of the line format; a newer one is refused.
pub const VERSION: u32 = 1;

/// First line of the item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
}

impl Default for Header {
    fn default() -> Self {
        Self {
            format: FORMAT.into(),
            version: VERSION,
        }
    }
}

/// One stored object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub resource: Resource,
    pub object: serde_json::Value,
}

impl Record {
    pub fn name(&self) -> &str {
        self.object
            .pointer("/metadata/name")
            .and_then(|v| v.as_str())
            .unwrap_or("")
    }

    pub fn namespace(&self) -> Option<&str> {
        self.object
            .pointer("/metadata/namespace")
            .and_then(|v| v.as_str())
    }

    /// `configmap kubernaut-system/rego-policies`, for messages.
    pub fn display(&self) -> String {
        display_ref(&self.resource, self.namespace(), self.name())
    }
}

/// `kind namespace/name` (or `kind name` when cluster-scoped).
pub fn display_ref(resource: &Resource, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{} {ns}/{name}", resource.singular()),
        None => format!("{} {name}", resource.singular()),
    }
}

/// Why a kube snapshot item could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    #[error("the kube snapshot item is empty (no header)")]
    Empty,
    #[error("the kube snapshot item has no valid header: {0}")]
    BadHeader(serde_json::Error),
    #[error("not a kube snapshot item (format {0:?})")]
    NotAnItem(String),
    #[error(
        "this kube snapshot was written in format version {0} by a newer Lifeboat; this one reads up to {VERSION}: upgrade Lifeboat"
    )]
    TooNew(u32),
    /// Object `index` (from 1) is not a valid record.
    #[error("object {index} of the kube snapshot item: {error}")]
    BadObject {
        index: usize,
        error: serde_json::Error,
    },
}

/// Parses the lines of a kube snapshot item into records, checking the header.
pub fn parse_item(bytes: &[u8]) -> Result<Vec<Record>, ItemError> {
    let mut lines = bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty());
    let first = lines.next().ok_or(ItemError::Empty)?;
    let header: Header = serde_json::from_slice(first).map_err(ItemError::BadHeader)?;
    if header.format != FORMAT {
        return Err(ItemError::NotAnItem(header.format));
    }
    if header.version > VERSION {
        return Err(ItemError::TooNew(header.version));
    }
    lines
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_slice::<Record>(l).map_err(|error| ItemError::BadObject {
                index: i + 1,
                error,
            })
        })
        .collect()
}

/// One line (with its newline) for `value`.
pub fn line<T: Serialize>(value: &T) -> Vec<u8> {
    let mut v = serde_json::to_vec(value).expect("JSON values serialise");
    v.push(b'\n');
    v
}
