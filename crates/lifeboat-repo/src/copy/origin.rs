//! The target's record of the one repository it receives copies from:
//! `copy-source`, a sealed document (kind `copy-source`) written once,
//! before the first object of the first copy, with a conditional create.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{BadInput, RepoError, Result};
use crate::format::{DOC_VERSION, open_doc, seal_doc};
use crate::repo::Repository;

/// Where the record lives in the target.
pub const ORIGIN_KEY: &str = "copy-source";
const KIND: &str = "copy-source";

/// `{ "version": 1, "source": "<repository id>", "recorded": "RFC 3339" }`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginDoc {
    pub version: u64,
    /// The id (marker and config) of the source repository.
    pub source: String,
    pub recorded: DateTime<Utc>,
}

/// The repository id `target` receives copies from, if it has a record.
pub async fn read(target: &Repository) -> Result<Option<String>> {
    match target.storage().get(ORIGIN_KEY).await {
        Ok(sealed) => {
            let doc: OriginDoc = open_doc(target.key(), KIND, ORIGIN_KEY, &sealed)?;
            Ok(Some(doc.source))
        }
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Records `source_id` as `target`'s source. When another process recorded
/// one meanwhile, it must be the same.
pub async fn record(target: &Repository, source_id: &str) -> Result<()> {
    let doc = OriginDoc {
        version: DOC_VERSION,
        source: source_id.to_string(),
        recorded: Utc::now(),
    };
    let sealed = seal_doc(target.key(), KIND, &doc)?;
    if target
        .storage()
        .put_new(ORIGIN_KEY, Bytes::from(sealed))
        .await?
    {
        return Ok(());
    }
    match read(target).await? {
        Some(s) if s == source_id => Ok(()),
        other => Err(RepoError::invalid(
            BadInput::Location,
            format!(
                "{} started receiving copies from repository {} meanwhile: a target receives copies from one source only",
                target.location(),
                other.unwrap_or_default()
            ),
        )),
    }
}
