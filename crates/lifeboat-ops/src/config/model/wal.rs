//! `wal:`: the daemon's WAL streaming (docs/physical.md, "Streaming").
//!
//! ```yaml
//! wal:
//!   spool_dir: /var/lib/lifeboat/wal   # persistent: see docs/physical.md
//!   streaming:
//!     main:                            # a postgres source
//!       slot: lifeboat_main            # created if absent
//!       partial_interval: 5s           # 0s: complete segments only
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::TimeDelta;
use serde::Deserialize;

/// The default spool directory (one subdirectory per source).
pub const DEFAULT_SPOOL_DIR: &str = "/var/lib/lifeboat/wal";
/// How often the segment being received is stored, by default.
pub const DEFAULT_PARTIAL_INTERVAL: TimeDelta = TimeDelta::seconds(5);

/// `wal:`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalConfig {
    /// Where `pg_receivewal` writes (a subdirectory per source). It must
    /// survive restarts of the daemon: a segment the replication slot has
    /// let go of exists only here until it is stored. Default
    /// `/var/lib/lifeboat/wal`.
    #[serde(default)]
    pub spool_dir: Option<PathBuf>,
    /// The postgres sources whose WAL the active daemon streams into the
    /// repository, by source name.
    #[serde(default)]
    pub streaming: BTreeMap<String, StreamingConfig>,
}

/// `wal.streaming.<source>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamingConfig {
    /// The physical replication slot (created if absent). Default
    /// `lifeboat_<source>` (characters other than a-z, 0-9 and `_` become
    /// `_`).
    #[serde(default)]
    pub slot: Option<String>,
    /// How often the segment still being received is stored (its newest
    /// version; docs/format.md, "Partial WAL objects"): the archive's
    /// recovery point under load. Default `5s`; `0s` stores complete
    /// segments only.
    #[serde(default, with = "lifeboat_repo::retention::opt_duration")]
    pub partial_interval: Option<TimeDelta>,
    /// `pg_receivewal --synchronous`: flush and report every write at once
    /// (only needed to serve as a synchronous standby). Default false.
    #[serde(default)]
    pub synchronous: bool,
}

impl WalConfig {
    /// Every streamed name must be a configured postgres source (its URL
    /// and password are what `pg_receivewal` connects with), and a slot
    /// name PostgreSQL accepts (lower-case letters, digits, `_`, at most
    /// 63).
    pub fn problems(&self, sources: &BTreeMap<String, super::SourceConfig>) -> Vec<String> {
        let mut out = Vec::new();
        for (name, s) in &self.streaming {
            match sources.get(name) {
                None => out.push(format!(
                    "wal.streaming.{name}: no source {name} in sources: (name a postgres source)"
                )),
                Some(src) if src.postgres.is_none() => out.push(format!(
                    "wal.streaming.{name}: source {name} is not a postgres source"
                )),
                Some(_) => {}
            }
            let slot = s.slot_name(name);
            if slot.is_empty()
                || slot.len() > 63
                || !slot
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                out.push(format!(
                    "wal.streaming.{name}.slot: {slot:?} is not a replication slot name (lower-case \
                     letters, digits and _, at most 63)"
                ));
            }
        }
        out
    }
}

impl StreamingConfig {
    /// The slot's name for `source`.
    pub fn slot_name(&self, source: &str) -> String {
        self.slot.clone().unwrap_or_else(|| {
            let clean: String = source
                .chars()
                .map(|c| match c.to_ascii_lowercase() {
                    c @ ('a'..='z' | '0'..='9' | '_') => c,
                    _ => '_',
                })
                .collect();
            format!("lifeboat_{clean}")
        })
    }

    pub fn partial_interval(&self) -> TimeDelta {
        self.partial_interval.unwrap_or(DEFAULT_PARTIAL_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_names() {
        let c = StreamingConfig::default();
        assert_eq!(c.slot_name("main"), "lifeboat_main");
        assert_eq!(c.slot_name("Kubernaut-DB.1"), "lifeboat_kubernaut_db_1");
        let c = StreamingConfig {
            slot: Some("mine".into()),
            ..Default::default()
        };
        assert_eq!(c.slot_name("main"), "mine");
    }
}
