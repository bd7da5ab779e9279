//! The key layout under the prefix (see the [module docs](super)).

/// Keys of one Lifeboat cluster's authority, under its prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

/// Digits of the epoch in a failover record's key: `u64::MAX` has 20, so
/// the keys sort by epoch.
const EPOCH_DIGITS: usize = 20;

impl Keys {
    /// `prefix` as checked by [`EtcdSettings::problems`](super::EtcdSettings::problems).
    pub fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>/authority`: the [`AuthorityRecord`](super::AuthorityRecord).
    pub fn authority(&self) -> String {
        format!("{}/authority", self.prefix)
    }

    /// `<prefix>/leases/`: every region's lease key starts so.
    pub fn leases(&self) -> String {
        format!("{}/leases/", self.prefix)
    }

    /// `<prefix>/leases/<region>`.
    pub fn lease(&self, region: &str) -> String {
        format!("{}{region}", self.leases())
    }

    /// The region of a key under [`Keys::leases`].
    pub fn region_of_lease_key<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(&self.leases()).filter(|r| !r.is_empty())
    }

    /// `<prefix>/election`: the election's name (its candidates' keys are
    /// `<prefix>/election/<lease id in hex>`).
    pub fn election(&self) -> String {
        format!("{}/election", self.prefix)
    }

    /// `<prefix>/failover`: the running failover's progress.
    pub fn progress(&self) -> String {
        format!("{}/failover", self.prefix)
    }

    /// `<prefix>/failovers/`: failover records start so.
    pub fn failovers(&self) -> String {
        format!("{}/failovers/", self.prefix)
    }

    /// `<prefix>/failovers/<epoch, zero-padded to 20 digits>`.
    pub fn failover_record(&self, epoch: u64) -> String {
        format!("{}{epoch:0width$}", self.failovers(), width = EPOCH_DIGITS)
    }

    /// `<prefix>/votes/`: every vantage point's vote starts so.
    pub fn votes(&self) -> String {
        format!("{}/votes/", self.prefix)
    }

    /// `<prefix>/votes/<observer>`: one vantage point's vote, attached to
    /// its region lease.
    pub fn vote(&self, observer: &str) -> String {
        format!("{}{observer}", self.votes())
    }

    /// `<prefix>/decision`: the latest failover decision a daemon made.
    pub fn decision(&self) -> String {
        format!("{}/decision", self.prefix)
    }

    /// The epoch of a key made by [`Keys::failover_record`].
    pub fn epoch_of_record_key(&self, key: &str) -> Option<u64> {
        key.strip_prefix(&self.failovers())
            .filter(|d| d.len() == EPOCH_DIGITS && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse().ok())
    }
}

/// Why `region` cannot be part of a key, if it cannot.
pub fn region_problem(region: &str) -> Option<&'static str> {
    if region.is_empty() {
        Some("is empty")
    } else if region.contains('/') {
        Some("contains /")
    } else if region.chars().any(|c| c.is_control() || c.is_whitespace()) {
        Some("contains spaces or control characters")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let k = Keys::new("/lifeboat");
        assert_eq!(k.authority(), "/lifeboat/authority");
        assert_eq!(k.lease("us-east"), "/lifeboat/leases/us-east");
        assert_eq!(
            k.region_of_lease_key("/lifeboat/leases/us-east"),
            Some("us-east")
        );
        assert_eq!(k.region_of_lease_key("/lifeboat/leases/"), None);
        assert_eq!(k.region_of_lease_key("/other/leases/us-east"), None);
        assert_eq!(k.election(), "/lifeboat/election");
        assert_eq!(k.progress(), "/lifeboat/failover");
        assert_eq!(k.vote("witness"), "/lifeboat/votes/witness");
        assert_eq!(k.decision(), "/lifeboat/decision");
        // Neither is under the leases', records' or election's prefixes.
        for other in [k.leases(), k.failovers(), format!("{}/", k.election())] {
            assert!(!k.vote("witness").starts_with(&other));
            assert!(!k.decision().starts_with(&other));
        }
        assert_eq!(
            k.failover_record(7),
            "/lifeboat/failovers/00000000000000000007"
        );
        assert_eq!(
            k.failover_record(u64::MAX),
            "/lifeboat/failovers/18446744073709551615"
        );
        for e in [0, 1, 7, 10, u64::MAX] {
            assert_eq!(k.epoch_of_record_key(&k.failover_record(e)), Some(e));
        }
        assert_eq!(k.epoch_of_record_key("/lifeboat/failovers/7"), None);
        assert_eq!(k.epoch_of_record_key("/lifeboat/failover"), None);
        // Record keys sort as their epochs do.
        assert!(k.failover_record(9) < k.failover_record(10));
        // The progress key is not under the records' prefix.
        assert!(!k.progress().starts_with(&k.failovers()));
    }

    #[test]
    fn region_names_table() {
        for (name, want) in [
            ("us-east", None),
            ("eu_west.2", None),
            ("", Some("is empty")),
            ("us/east", Some("contains /")),
            ("us east", Some("contains spaces or control characters")),
            ("us\neast", Some("contains spaces or control characters")),
        ] {
            assert_eq!(region_problem(name), want, "{name:?}");
        }
    }
}
