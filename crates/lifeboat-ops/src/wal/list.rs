//! `wal list [--json]`: what the archive holds, per timeline: the segments
//! (first, last, how many), the gaps between them, each epoch's part, the
//! history files, `.partial` segments and backup labels. One listing of
//! `wal/`; nothing is decrypted (a damaged object is found by `wal fetch`).

use lifeboat_postgres::wal::runs::{TimelineSummary, summarize};
use lifeboat_postgres::wal::{DEFAULT_SEGMENT_SIZE, WalName};
use lifeboat_repo::wal as store;
use serde::Serialize;

use crate::context::Ctx;
use crate::error::Result;

/// How to read the names.
#[derive(Clone, Debug)]
pub struct ListRequest {
    /// The cluster's `wal_segment_size` (gaps are counted in segments of
    /// this size), 16 MiB by default.
    pub segment_size: u64,
}

impl Default for ListRequest {
    fn default() -> Self {
        Self {
            segment_size: DEFAULT_SEGMENT_SIZE,
        }
    }
}

/// The archive's contents.
#[derive(Clone, Debug, Serialize)]
pub struct WalListing {
    /// WAL objects stored (every copy).
    pub objects: u64,
    /// Their stored (compressed, sealed) bytes.
    pub stored_bytes: u64,
    pub timelines: Vec<TimelineSummary>,
    /// Objects under `wal/` whose name is not a WAL file name.
    pub unknown: Vec<String>,
}

pub async fn list(ctx: &Ctx, req: ListRequest) -> Result<WalListing> {
    let repo = super::open::open(ctx).await?;
    let listed = store::list(&repo).await?;
    let mut unknown = Vec::new();
    let mut names = Vec::new();
    let mut stored_bytes = 0;
    for (key, info) in &listed {
        stored_bytes += info.size;
        match WalName::parse(&key.name) {
            Ok(n) if n.timeline() == key.timeline => names.push((n, key.epoch)),
            _ => unknown.push(key.key()),
        }
    }
    Ok(WalListing {
        objects: listed.len() as u64,
        stored_bytes,
        timelines: summarize(names, req.segment_size),
        unknown,
    })
}
