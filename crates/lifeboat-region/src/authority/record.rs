//! The values kept in etcd (JSON) and the versions they are read at.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::AuthorityError;

/// Which region is primary, since which epoch, and who changed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorityRecord {
    /// The primary region's name.
    pub primary: String,
    /// 1 for the first primary, +1 on every change of primary.
    pub epoch: u64,
    /// When this record was written (the writer's clock; for people, not for
    /// decisions).
    pub changed_at: DateTime<Utc>,
    /// Who wrote it (a daemon's region and host, or an operator's command).
    pub changed_by: String,
    /// Why the primary changed.
    pub reason: ChangeReason,
}

/// Why the authority record was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeReason {
    /// The first record (epoch 1).
    Initial,
    /// An automatic failover after the primary region failed.
    Failover,
    /// A planned switchover.
    Switchover,
    /// An operator's `region failover --to`.
    Manual,
}

impl std::fmt::Display for ChangeReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChangeReason::Initial => "initial",
            ChangeReason::Failover => "failover",
            ChangeReason::Switchover => "switchover",
            ChangeReason::Manual => "manual",
        })
    }
}

/// A value with the etcd `mod_revision` it was read at: the version a later
/// compare-and-swap compares against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub mod_revision: i64,
}

/// What a region's lease key holds: who holds the lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseHolder {
    pub region: String,
    /// Host name of the daemon's machine.
    pub host: String,
    /// The daemon's process id.
    pub pid: u32,
    pub granted_at: DateTime<Utc>,
}

impl LeaseHolder {
    /// This process, now.
    pub fn this_process(region: &str) -> Self {
        LeaseHolder {
            region: region.to_string(),
            host: hostname(),
            pid: std::process::id(),
            granted_at: Utc::now(),
        }
    }
}

impl std::fmt::Display for LeaseHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (host {}, pid {}, since {})",
            self.region,
            self.host,
            self.pid,
            self.granted_at.format("%Y-%m-%dT%H:%M:%SZ")
        )
    }
}

/// A live region lease as etcd reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseInfo {
    pub region: String,
    pub lease_id: i64,
    /// What etcd's LeaseTimeToLive says is left (whole seconds).
    pub ttl_remaining: Duration,
    /// The key's value; `None` when it is not our JSON.
    pub holder: Option<LeaseHolder>,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Serializes a value for etcd.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, AuthorityError> {
    serde_json::to_vec(value).map_err(|e| AuthorityError::Encode {
        detail: e.to_string(),
    })
}

/// Reads a value from etcd; anything else than our JSON is
/// [`AuthorityError::Corrupt`] naming the key.
pub(crate) fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, AuthorityError> {
    serde_json::from_slice(bytes).map_err(|e| AuthorityError::Corrupt {
        key: key.to_string(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn record(reason: ChangeReason) -> AuthorityRecord {
        AuthorityRecord {
            primary: "us-east".into(),
            epoch: 7,
            changed_at: Utc.with_ymd_and_hms(2026, 12, 6, 14, 20, 0).unwrap()
                + chrono::Duration::nanoseconds(123_456_789),
            changed_by: "eu-west/host-b".into(),
            reason,
        }
    }

    #[test]
    fn authority_record_json_table() {
        for (reason, word) in [
            (ChangeReason::Initial, "initial"),
            (ChangeReason::Failover, "failover"),
            (ChangeReason::Switchover, "switchover"),
            (ChangeReason::Manual, "manual"),
        ] {
            let r = record(reason);
            let json = String::from_utf8(encode(&r).unwrap()).unwrap();
            assert_eq!(
                json,
                format!(
                    r#"{{"primary":"us-east","epoch":7,"changed_at":"2026-12-06T14:20:00.123456789Z","changed_by":"eu-west/host-b","reason":"{word}"}}"#
                )
            );
            // Exactly the same record back, nanoseconds included: a bump
            // whose outcome is unknown recognises its own write by equality.
            assert_eq!(decode::<AuthorityRecord>("/k", json.as_bytes()).unwrap(), r);
            assert_eq!(reason.to_string(), word);
        }
    }

    #[test]
    fn not_our_json_is_corrupt_naming_the_key() {
        let cases: &[(&str, &str)] = &[
            ("not json", "expected"),
            (r#"{"primary":"a","epoch":1}"#, "missing field"),
            (
                r#"{"primary":"a","epoch":-1,"changed_at":"2026-12-06T14:20:00Z","changed_by":"x","reason":"manual"}"#,
                "invalid value",
            ),
            (
                r#"{"primary":"a","epoch":1,"changed_at":"2026-12-06T14:20:00Z","changed_by":"x","reason":"guess"}"#,
                "unknown variant",
            ),
            (
                r#"{"primary":"a","epoch":1,"changed_at":"2026-12-06T14:20:00Z","changed_by":"x","reason":"manual","extra":1}"#,
                "unknown field",
            ),
            (
                r#"{"primary":"a","epoch":1,"changed_at":"yesterday","changed_by":"x","reason":"manual"}"#,
                "invalid",
            ),
        ];
        for (json, why) in cases {
            match decode::<AuthorityRecord>("/lifeboat/authority", json.as_bytes()) {
                Err(AuthorityError::Corrupt { key, detail }) => {
                    assert_eq!(key, "/lifeboat/authority");
                    assert!(detail.contains(why), "{json}: {detail}");
                }
                other => panic!("{json}: want Corrupt, got {other:?}"),
            }
        }
    }

    #[test]
    fn lease_holder_json_and_display() {
        let h = LeaseHolder {
            region: "us-east".into(),
            host: "db-1".into(),
            pid: 4242,
            granted_at: Utc.with_ymd_and_hms(2026, 12, 6, 14, 20, 0).unwrap(),
        };
        let json = String::from_utf8(encode(&h).unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"region":"us-east","host":"db-1","pid":4242,"granted_at":"2026-12-06T14:20:00Z"}"#
        );
        assert_eq!(decode::<LeaseHolder>("/k", json.as_bytes()).unwrap(), h);
        assert_eq!(
            h.to_string(),
            "us-east (host db-1, pid 4242, since 2026-12-06T14:20:00Z)"
        );
        let me = LeaseHolder::this_process("eu-west");
        assert_eq!(
            (me.region.as_str(), me.pid),
            ("eu-west", std::process::id())
        );
        assert!(!me.host.is_empty());
    }
}
