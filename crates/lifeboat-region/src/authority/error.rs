//! What can go wrong talking to the authority, each saying what to do next.
//! Passwords never appear: etcd's answers do not carry them, and settings
//! are printed only through their redacting `Debug`.

use super::record::AuthorityRecord;

/// Errors of [`AuthorityStore`](super::AuthorityStore) and its leases and
/// elections.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    #[error("the etcd settings cannot be used: {}", problems.join("; "))]
    Settings { problems: Vec<String> },

    /// No answer from a majority of etcd: members down, unreachable, no
    /// leader, or the request timed out. Nothing changed because of this
    /// call, unless `detail` says its outcome is unknown.
    #[error(
        "etcd ({endpoints}) did not answer: {detail}. Without a majority of the etcd members \
         the authority cannot change and no region can be promoted; check the members \
         (`etcdctl endpoint health --cluster`) and the network from this host to them"
    )]
    Unavailable { endpoints: String, detail: String },

    /// A compare-and-swap of the authority record failed: someone else
    /// changed it since it was read, or the region whose lease had to be
    /// gone still holds it. Read [`AuthorityStore::authority`](super::AuthorityStore::authority)
    /// again before deciding anything.
    #[error("{}", conflict_message(now.as_ref(), lease_held_by.as_deref()))]
    Conflict {
        /// The record now in etcd (`None`: there is none).
        now: Option<AuthorityRecord>,
        /// Who holds the lease that had to be gone, if it is still held.
        lease_held_by: Option<String>,
    },

    /// A compare-and-swap of the failover progress failed.
    #[error(
        "the failover progress at {key} changed since it was read (expected {}, now {}): \
         another daemon is driving the failover, or it finished; read the progress again",
        revision(*expected),
        revision(*now)
    )]
    ProgressConflict {
        key: String,
        expected: Option<i64>,
        now: Option<i64>,
    },

    /// A create-only key (a failover record) already holds something else.
    #[error(
        "{key} already holds a different value: records are written once; read it instead of \
         writing it again"
    )]
    AlreadyExists { key: String },

    /// etcd no longer knows the lease (it expired or was revoked).
    #[error(
        "the etcd lease {lease_id:#x} of region {region} has expired (or was revoked): its key \
         is gone, and a daemon whose lease expired must fence its primary; grant a new lease"
    )]
    LeaseExpired { region: String, lease_id: i64 },

    /// Another live lease holds the region's lease key.
    #[error(
        "region {region}'s lease is already held by {holder}: is a second daemon running for \
         this region? Stop it, or wait until its lease expires"
    )]
    RegionTaken { region: String, holder: String },

    /// etcd refused the credentials or the permission.
    #[error(
        "etcd refused {}: {detail}; check the etcd user and password (or client certificate) \
         in Lifeboat's configuration, and that the user's role may read and write the prefix",
        user.as_deref().map(|u| format!("user {u:?}")).unwrap_or_else(|| "the request (no etcd user configured)".to_string())
    )]
    Unauthorized {
        user: Option<String>,
        detail: String,
    },

    /// TLS could not be set up or the handshake failed.
    #[error(
        "TLS towards etcd failed: {detail}; check the CA, client certificate and key files, and \
         that the endpoints' host names are in the members' certificates"
    )]
    Tls { detail: String },

    /// A value in etcd that is not Lifeboat's JSON.
    #[error(
        "{key} in etcd does not hold what Lifeboat wrote there ({detail}); someone else writes \
         under this prefix: use a prefix of Lifeboat's own"
    )]
    Corrupt { key: String, detail: String },

    #[error("a value could not be encoded as JSON: {detail}")]
    Encode { detail: String },

    /// The caller asked for something that cannot be done (a region name
    /// that cannot be a key, an epoch overflow).
    #[error("{detail}")]
    Invalid { detail: String },

    /// etcd refused the request for another reason.
    #[error("etcd refused to {what}: {detail}")]
    Etcd { what: String, detail: String },
}

impl AuthorityError {
    /// Whether trying the same call again later can succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, AuthorityError::Unavailable { .. })
    }
}

fn revision(r: Option<i64>) -> String {
    match r {
        Some(r) => format!("revision {r}"),
        None => "absent".to_string(),
    }
}

fn conflict_message(now: Option<&AuthorityRecord>, lease_held_by: Option<&str>) -> String {
    let mut s = match now {
        Some(r) => format!(
            "the authority record is now epoch {} with primary {} ({} by {})",
            r.epoch, r.primary, r.reason, r.changed_by
        ),
        None => "there is no authority record".to_string(),
    };
    if let Some(holder) = lease_held_by {
        s.push_str(&format!(
            "; the lease of {holder} is still alive, so its daemon may still serve writes: \
             wait until it expires"
        ));
    } else {
        s.push_str("; it changed since it was read");
    }
    s.push_str(": read the authority again before deciding anything");
    s
}

/// How one failed etcd call is classified, before the operation's context
/// turns it into an [`AuthorityError`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No quorum, no leader, unreachable, timed out: retry within the budget.
    Transient(String),
    Unauthorized(String),
    LeaseNotFound(String),
    Tls(String),
    Other(String),
}

// gRPC status codes (stable numbers of the gRPC protocol).
const CANCELLED: i32 = 1;
const UNKNOWN: i32 = 2;
const DEADLINE_EXCEEDED: i32 = 4;
const NOT_FOUND: i32 = 5;
const PERMISSION_DENIED: i32 = 7;
const RESOURCE_EXHAUSTED: i32 = 8;
const ABORTED: i32 = 10;
const INTERNAL: i32 = 13;
const UNAVAILABLE: i32 = 14;
const UNAUTHENTICATED: i32 = 16;

/// Classifies an answer: `code` is the gRPC status code (`None`: no status,
/// the transport failed), `text` the message with its causes.
pub(crate) fn classify(code: Option<i32>, text: &str) -> Failure {
    let t = text.to_ascii_lowercase();
    let owned = || text.to_string();
    if t.contains("authentication failed")
        || t.contains("invalid user id or password")
        || t.contains("user name is empty")
        || t.contains("user name not found")
        || t.contains("permission denied")
        || t.contains("invalid auth token")
        || t.contains("authentication is not enabled")
        || matches!(code, Some(PERMISSION_DENIED | UNAUTHENTICATED))
    {
        return Failure::Unauthorized(owned());
    }
    if t.contains("lease not found") || (code == Some(NOT_FOUND) && t.contains("lease")) {
        return Failure::LeaseNotFound(owned());
    }
    if t.contains("certificate") || t.contains("handshake") || t.contains("tls") {
        return Failure::Tls(owned());
    }
    match code {
        None => Failure::Transient(owned()),
        Some(
            CANCELLED | UNKNOWN | DEADLINE_EXCEEDED | RESOURCE_EXHAUSTED | ABORTED | INTERNAL
            | UNAVAILABLE,
        ) => Failure::Transient(owned()),
        Some(_) => Failure::Other(owned()),
    }
}

/// An error and its causes on one line (tonic nests the interesting part).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let c_s = c.to_string();
        if !s.contains(&c_s) {
            s.push_str(": ");
            s.push_str(&c_s);
        }
        cur = c.source();
    }
    s
}

/// Classifies an `etcd-client` error.
pub(crate) fn failure(e: &etcd_client::Error) -> Failure {
    use etcd_client::Error as E;
    match e {
        E::GRpcStatus(s) => {
            let mut text = s.message().to_string();
            if let Some(src) = std::error::Error::source(s) {
                text.push_str(": ");
                text.push_str(&chain(src));
            }
            classify(Some(s.code() as i32), &text)
        }
        E::TransportError(_) | E::IoError(_) => classify(None, &chain(e)),
        E::LeaseKeepAliveError(m) if m.contains("not found") => Failure::LeaseNotFound(m.clone()),
        E::LeaseKeepAliveError(m) | E::WatchError(m) => Failure::Transient(m.clone()),
        // Invalid arguments, URIs, internal errors of the client: not
        // something a retry mends (unless it names TLS or credentials).
        other => match classify(None, &chain(other)) {
            Failure::Transient(text) => Failure::Other(text),
            f => f,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn classify_table() {
        use Failure::*;
        let t = |s: &str| s.to_string();
        let cases: Vec<(Option<i32>, &str, Failure)> = vec![
            // What etcd 3.4 answers, by message and code.
            (
                Some(14),
                "etcdserver: no leader",
                Transient(t("etcdserver: no leader")),
            ),
            (
                Some(14),
                "etcdserver: request timed out",
                Transient(t("etcdserver: request timed out")),
            ),
            (
                Some(14),
                "etcdserver: leader changed",
                Transient(t("etcdserver: leader changed")),
            ),
            (
                Some(8),
                "etcdserver: too many requests",
                Transient(t("etcdserver: too many requests")),
            ),
            (
                Some(4),
                "context deadline exceeded",
                Transient(t("context deadline exceeded")),
            ),
            (
                Some(2),
                "h2 protocol error",
                Transient(t("h2 protocol error")),
            ),
            (
                None,
                "transport error: tcp connect error: Connection refused",
                Transient(t("transport error: tcp connect error: Connection refused")),
            ),
            (
                Some(3),
                "etcdserver: authentication failed, invalid user ID or password",
                Unauthorized(t(
                    "etcdserver: authentication failed, invalid user ID or password",
                )),
            ),
            (
                Some(3),
                "etcdserver: user name is empty",
                Unauthorized(t("etcdserver: user name is empty")),
            ),
            (
                Some(7),
                "etcdserver: permission denied",
                Unauthorized(t("etcdserver: permission denied")),
            ),
            (
                Some(16),
                "etcdserver: invalid auth token",
                Unauthorized(t("etcdserver: invalid auth token")),
            ),
            (
                Some(5),
                "etcdserver: requested lease not found",
                LeaseNotFound(t("etcdserver: requested lease not found")),
            ),
            (
                Some(14),
                "error trying to connect: invalid peer certificate: UnknownIssuer",
                Tls(t(
                    "error trying to connect: invalid peer certificate: UnknownIssuer",
                )),
            ),
            (
                Some(3),
                "etcdserver: key is not provided",
                Other(t("etcdserver: key is not provided")),
            ),
            (
                Some(3),
                "etcdserver: duplicate key given in txn request",
                Other(t("etcdserver: duplicate key given in txn request")),
            ),
        ];
        for (code, text, want) in cases {
            assert_eq!(classify(code, text), want, "{code:?} {text}");
        }
    }

    #[test]
    fn only_unavailable_is_transient() {
        let all = [
            AuthorityError::Unavailable {
                endpoints: "http://a:2379".into(),
                detail: "no leader".into(),
            },
            AuthorityError::Conflict {
                now: None,
                lease_held_by: None,
            },
            AuthorityError::LeaseExpired {
                region: "us-east".into(),
                lease_id: 1,
            },
            AuthorityError::Unauthorized {
                user: None,
                detail: "x".into(),
            },
        ];
        let transient: Vec<bool> = all.iter().map(|e| e.is_transient()).collect();
        assert_eq!(transient, [true, false, false, false]);
    }

    #[test]
    fn messages_say_what_happened_and_what_next() {
        let conflict = AuthorityError::Conflict {
            now: Some(AuthorityRecord {
                primary: "eu-west".into(),
                epoch: 4,
                changed_at: Utc::now(),
                changed_by: "eu-west/h".into(),
                reason: super::super::ChangeReason::Failover,
            }),
            lease_held_by: Some("us-east (host a, pid 1, since x)".into()),
        }
        .to_string();
        assert!(
            conflict.contains("epoch 4 with primary eu-west"),
            "{conflict}"
        );
        assert!(conflict.contains("lease of us-east"), "{conflict}");
        let unavailable = AuthorityError::Unavailable {
            endpoints: "http://127.0.0.1:1".into(),
            detail: "timed out".into(),
        }
        .to_string();
        assert!(
            unavailable.contains("no region can be promoted"),
            "{unavailable}"
        );
        assert!(unavailable.contains("http://127.0.0.1:1"), "{unavailable}");
        let progress = AuthorityError::ProgressConflict {
            key: "/l/failover".into(),
            expected: Some(5),
            now: None,
        }
        .to_string();
        assert!(
            progress.contains("expected revision 5, now absent"),
            "{progress}"
        );
    }
}
