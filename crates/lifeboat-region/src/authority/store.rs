//! The connection to etcd and the authority record, the failover progress
//! and the failover records (leases: [`super::lease`], the election:
//! [`super::election`]). The CAS rules are in the [module docs](super).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, KeyValue,
    SortOrder, SortTarget, TlsOptions, Txn, TxnOp, TxnOpResponse, TxnResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::call;
use super::error::{AuthorityError, Failure};
use super::keys::{Keys, region_problem};
use super::members::Members;
use super::record::{AuthorityRecord, ChangeReason, LeaseHolder, Versioned, decode, encode};
use super::settings::{EtcdSettings, EtcdTls};

/// HTTP/2 pings on a connection with requests in flight, so a member cut
/// off without a TCP reset is noticed. etcd refuses pings more often than
/// every 5 s (`--grpc-keepalive-min-time`) and pings without a stream
/// (`PermitWithoutStream` is off), hence 10 s and only while busy.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// A connected client of the authority's etcd, with its settings. Cloning
/// shares the connections.
#[derive(Clone)]
pub struct AuthorityStore {
    /// etcd's balanced client over every endpoint: it checked the
    /// credentials at connect; the leader keeper's one-member stores use it.
    pub(super) client: Client,
    /// One client per member: every request of this module goes through
    /// them ([`Members`]: a silent member cannot take an attempt).
    pub(super) members: Arc<Members>,
    pub(super) settings: EtcdSettings,
    pub(super) keys: Keys,
}

impl fmt::Debug for AuthorityStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorityStore")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// How a compare-and-swap transaction ended (see [`AuthorityStore::send_cas`]).
pub(super) enum Sent {
    /// It applied; the store's revision after it (the written key's
    /// `mod_revision`).
    Applied(i64),
    /// Its compare failed; the response holds the `or_else` reads.
    /// `after_unknown`: an earlier send of it had an unknown outcome.
    Refused {
        resp: TxnResponse,
        after_unknown: bool,
    },
    /// After an unknown outcome, the read back found our write, at this
    /// `mod_revision` (0 when our write was a delete).
    Found(i64),
    /// After an unknown outcome, the read back found the key changed by
    /// someone else.
    Changed(Option<KeyValue>),
}

/// What a read back after an unknown outcome shows.
pub(super) enum ReadBack {
    /// Our write is there, at this `mod_revision`.
    Ours(i64),
    /// The key is as the transaction expects: sending it again is safe.
    Unchanged,
    /// Someone else changed the key.
    Changed,
}

impl AuthorityStore {
    /// Checks the settings, loads the TLS files and connects. With a user,
    /// it authenticates now (etcd needs a quorum for that); without one, the
    /// connection is opened by the first request.
    pub async fn connect(settings: EtcdSettings) -> Result<Self, AuthorityError> {
        let problems = settings.problems();
        if !problems.is_empty() {
            return Err(AuthorityError::Settings { problems });
        }
        let mut options = ConnectOptions::new()
            .with_connect_timeout(settings.dial_timeout)
            .with_keep_alive(KEEPALIVE_INTERVAL, settings.dial_timeout)
            .with_keep_alive_while_idle(false)
            // A member without a leader answers at once instead of
            // forwarding into the void or answering from a stale state.
            .with_require_leader(true)
            .with_auto_token_refresh(true);
        if let Some(tls) = &settings.tls {
            options = options.with_tls(tls_options(tls)?);
        }
        if let (Some(user), Some(password)) = (&settings.user, &settings.password) {
            options = options.with_user(user.clone(), password.as_str());
        }
        let budget = call::Budget::new(settings.dial_timeout + settings.request_timeout);
        let client = call::retried(budget, || {
            Client::connect(settings.endpoints.clone(), Some(options.clone()))
        })
        .await
        .map_err(|f| to_error(&settings, "connect", f))?;
        let members = Members::new(settings.endpoints.clone(), options, client.clone());
        Ok(AuthorityStore {
            client,
            members: Arc::new(members),
            keys: Keys::new(&settings.prefix),
            settings,
        })
    }

    pub fn settings(&self) -> &EtcdSettings {
        &self.settings
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    // --- the authority record ----------------------------------------------------

    /// The authority record, read linearizably; `None` before
    /// [`AuthorityStore::initialize`].
    pub async fn authority(&self) -> Result<Option<Versioned<AuthorityRecord>>, AuthorityError> {
        let key = self.keys.authority();
        self.get_kv(&key, "read the authority record")
            .await?
            .map(|kv| versioned(&key, &kv))
            .transpose()
    }

    /// Creates the record with epoch 1 and `primary` if there is none
    /// (`create_revision == 0`); otherwise returns the record there, whoever
    /// wrote it. Safe to call from every daemon at start.
    pub async fn initialize(
        &self,
        primary: &str,
        by: &str,
    ) -> Result<Versioned<AuthorityRecord>, AuthorityError> {
        check_region(primary)?;
        let key = self.keys.authority();
        let record = AuthorityRecord {
            primary: primary.to_string(),
            epoch: 1,
            changed_at: Utc::now(),
            changed_by: by.to_string(),
            reason: ChangeReason::Initial,
        };
        let bytes = encode(&record)?;
        let txn = || {
            Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key.clone(), bytes.clone(), None)])
                .or_else([TxnOp::get(key.clone(), None)])
        };
        let judge = |kv: Option<&KeyValue>| match kv {
            None => ReadBack::Unchanged,
            Some(kv) if kv.value() == bytes.as_slice() => ReadBack::Ours(kv.mod_revision()),
            Some(_) => ReadBack::Changed,
        };
        match self
            .send_cas("initialize the authority record", txn, &key, judge)
            .await?
        {
            Sent::Applied(rev) | Sent::Found(rev) => Ok(Versioned {
                value: record,
                mod_revision: rev,
            }),
            Sent::Refused { resp, .. } => match txn_get(&resp, 0) {
                Some(kv) => versioned(&key, &kv),
                None => Err(self.vanished(&key)),
            },
            Sent::Changed(Some(kv)) => versioned(&key, &kv),
            Sent::Changed(None) => Err(self.vanished(&key)),
        }
    }

    /// Makes `new_primary` the primary with epoch `current.epoch + 1`, in one
    /// transaction that applies only if the record is still at
    /// `current.mod_revision` and, when `require_lease_gone` names a region,
    /// that region's lease key does not exist (its lease expired or was
    /// revoked). A failed compare is [`AuthorityError::Conflict`] with what
    /// made it fail, read in the same transaction.
    ///
    /// An unknown outcome (a timeout after sending, a leader change) is
    /// resolved by reading the record back: ours iff it is exactly the
    /// record this call wrote; unchanged: the identical transaction is sent
    /// again; still unknown when the request timeout ends:
    /// [`AuthorityError::Unavailable`] saying so (read the record before
    /// deciding anything).
    pub async fn bump(
        &self,
        current: &Versioned<AuthorityRecord>,
        new_primary: &str,
        by: &str,
        reason: ChangeReason,
        require_lease_gone: Option<&str>,
    ) -> Result<Versioned<AuthorityRecord>, AuthorityError> {
        check_region(new_primary)?;
        if reason == ChangeReason::Initial {
            return Err(AuthorityError::Invalid {
                detail: "a change of primary is a failover, a switchover or manual, not initial"
                    .to_string(),
            });
        }
        let epoch = current
            .value
            .epoch
            .checked_add(1)
            .ok_or_else(|| AuthorityError::Invalid {
                detail: "the epoch cannot grow any more".to_string(),
            })?;
        let lease_key = match require_lease_gone {
            Some(region) => {
                check_region(region)?;
                Some(self.keys.lease(region))
            }
            None => None,
        };
        let key = self.keys.authority();
        let record = AuthorityRecord {
            primary: new_primary.to_string(),
            epoch,
            changed_at: Utc::now(),
            changed_by: by.to_string(),
            reason,
        };
        let bytes = encode(&record)?;
        let txn = || {
            let mut when = vec![Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                current.mod_revision,
            )];
            let mut reads = vec![TxnOp::get(key.clone(), None)];
            if let Some(lk) = &lease_key {
                when.push(Compare::create_revision(lk.clone(), CompareOp::Equal, 0));
                reads.push(TxnOp::get(lk.clone(), None));
            }
            Txn::new()
                .when(when)
                .and_then([TxnOp::put(key.clone(), bytes.clone(), None)])
                .or_else(reads)
        };
        let judge = |kv: Option<&KeyValue>| match kv {
            Some(kv) if kv.value() == bytes.as_slice() => ReadBack::Ours(kv.mod_revision()),
            Some(kv) if kv.mod_revision() == current.mod_revision => ReadBack::Unchanged,
            _ => ReadBack::Changed,
        };
        let what = format!("bump the authority to epoch {epoch} (primary {new_primary})");
        let ours = |rev| {
            Ok(Versioned {
                value: record.clone(),
                mod_revision: rev,
            })
        };
        match self.send_cas(&what, txn, &key, judge).await? {
            Sent::Applied(rev) | Sent::Found(rev) => ours(rev),
            Sent::Refused {
                resp,
                after_unknown,
            } => {
                let now = txn_get(&resp, 0)
                    .map(|kv| versioned(&key, &kv))
                    .transpose()?;
                if let Some(now) = &now
                    && after_unknown
                    && now.value == record
                {
                    return ours(now.mod_revision);
                }
                let lease_held_by = match (&lease_key, require_lease_gone) {
                    (Some(_), Some(region)) => {
                        txn_get(&resp, 1).map(|kv| describe_holder(region, &kv))
                    }
                    _ => None,
                };
                Err(AuthorityError::Conflict {
                    now: now.map(|v| v.value),
                    lease_held_by,
                })
            }
            Sent::Changed(kv) => Err(AuthorityError::Conflict {
                now: kv
                    .map(|kv| versioned(&key, &kv))
                    .transpose()?
                    .map(|v| v.value),
                lease_held_by: None,
            }),
        }
    }

    // --- failover progress ---------------------------------------------------------

    /// The running failover's progress (`<prefix>/failover`), if any.
    pub async fn progress<T: DeserializeOwned>(
        &self,
    ) -> Result<Option<Versioned<T>>, AuthorityError> {
        let key = self.keys.progress();
        self.get_kv(&key, "read the failover progress")
            .await?
            .map(|kv| versioned(&key, &kv))
            .transpose()
    }

    /// Writes the progress if it is still at `expected_mod_revision` (`None`:
    /// only if there is none); returns its new `mod_revision`, the next
    /// call's expectation. A mismatch is [`AuthorityError::ProgressConflict`].
    pub async fn put_progress<T: Serialize>(
        &self,
        expected_mod_revision: Option<i64>,
        value: &T,
    ) -> Result<i64, AuthorityError> {
        let key = self.keys.progress();
        let bytes = encode(value)?;
        let txn = || {
            Txn::new()
                .when([expect(&key, expected_mod_revision)])
                .and_then([TxnOp::put(key.clone(), bytes.clone(), None)])
                .or_else([TxnOp::get(key.clone(), None)])
        };
        let judge = |kv: Option<&KeyValue>| match (kv, expected_mod_revision) {
            (Some(kv), e) if kv.value() == bytes.as_slice() && Some(kv.mod_revision()) != e => {
                ReadBack::Ours(kv.mod_revision())
            }
            (None, None) => ReadBack::Unchanged,
            (Some(kv), Some(e)) if kv.mod_revision() == e => ReadBack::Unchanged,
            _ => ReadBack::Changed,
        };
        let conflict = |now: Option<&KeyValue>| AuthorityError::ProgressConflict {
            key: key.clone(),
            expected: expected_mod_revision,
            now: now.map(|kv| kv.mod_revision()),
        };
        match self
            .send_cas("write the failover progress", txn, &key, judge)
            .await?
        {
            Sent::Applied(rev) | Sent::Found(rev) => Ok(rev),
            Sent::Refused {
                resp,
                after_unknown,
            } => {
                let now = txn_get(&resp, 0);
                match &now {
                    Some(kv) if after_unknown && kv.value() == bytes.as_slice() => {
                        Ok(kv.mod_revision())
                    }
                    _ => Err(conflict(now.as_ref())),
                }
            }
            Sent::Changed(kv) => Err(conflict(kv.as_ref())),
        }
    }

    /// Deletes the progress (the failover finished) if it is still at
    /// `expected_mod_revision`; [`AuthorityError::ProgressConflict`] if not.
    /// Already gone after an unknown outcome counts as done.
    pub async fn clear_progress(&self, expected_mod_revision: i64) -> Result<(), AuthorityError> {
        let key = self.keys.progress();
        let txn = || {
            Txn::new()
                .when([Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    expected_mod_revision,
                )])
                .and_then([TxnOp::delete(key.clone(), None)])
                .or_else([TxnOp::get(key.clone(), None)])
        };
        let judge = |kv: Option<&KeyValue>| match kv {
            None => ReadBack::Ours(0),
            Some(kv) if kv.mod_revision() == expected_mod_revision => ReadBack::Unchanged,
            Some(_) => ReadBack::Changed,
        };
        let conflict = |now: Option<&KeyValue>| AuthorityError::ProgressConflict {
            key: key.clone(),
            expected: Some(expected_mod_revision),
            now: now.map(|kv| kv.mod_revision()),
        };
        match self
            .send_cas("clear the failover progress", txn, &key, judge)
            .await?
        {
            Sent::Applied(_) | Sent::Found(_) => Ok(()),
            Sent::Refused { resp, .. } => Err(conflict(txn_get(&resp, 0).as_ref())),
            Sent::Changed(kv) => Err(conflict(kv.as_ref())),
        }
    }

    // --- failover records -------------------------------------------------------------

    /// Writes the record of the failover that made `epoch`, once
    /// (`<prefix>/failovers/<epoch>`). Writing the identical value again is a
    /// no-op; another value is [`AuthorityError::AlreadyExists`].
    pub async fn put_failover_record<T: Serialize>(
        &self,
        epoch: u64,
        record: &T,
    ) -> Result<(), AuthorityError> {
        let key = self.keys.failover_record(epoch);
        let bytes = encode(record)?;
        let txn = || {
            Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key.clone(), bytes.clone(), None)])
                .or_else([TxnOp::get(key.clone(), None)])
        };
        let judge = |kv: Option<&KeyValue>| match kv {
            None => ReadBack::Unchanged,
            Some(kv) if kv.value() == bytes.as_slice() => ReadBack::Ours(kv.mod_revision()),
            Some(_) => ReadBack::Changed,
        };
        match self
            .send_cas("write a failover record", txn, &key, judge)
            .await?
        {
            Sent::Applied(_) | Sent::Found(_) => Ok(()),
            Sent::Refused { resp, .. } => match txn_get(&resp, 0) {
                Some(kv) if kv.value() == bytes.as_slice() => Ok(()),
                _ => Err(AuthorityError::AlreadyExists { key }),
            },
            Sent::Changed(_) => Err(AuthorityError::AlreadyExists { key }),
        }
    }

    /// Up to `limit` failover records with their epochs, newest first.
    pub async fn failover_records<T: DeserializeOwned>(
        &self,
        limit: usize,
    ) -> Result<Vec<(u64, T)>, AuthorityError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let prefix = self.keys.failovers();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut resp = self
            .read_either("read the failover records", |c| {
                let mut kv = c.kv_client();
                let options = GetOptions::new()
                    .with_prefix()
                    .with_sort(SortTarget::Key, SortOrder::Descend)
                    .with_limit(limit);
                let prefix = prefix.clone();
                async move { kv.get(prefix, Some(options)).await }
            })
            .await?;
        let mut out = Vec::new();
        for kv in resp.take_kvs() {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let epoch =
                self.keys
                    .epoch_of_record_key(&key)
                    .ok_or_else(|| AuthorityError::Corrupt {
                        key: key.clone(),
                        detail: "not a failover record key (20 digits of epoch)".to_string(),
                    })?;
            out.push((epoch, decode(&key, kv.value())?));
        }
        Ok(out)
    }

    // --- plumbing shared with leases and the election -----------------------------

    /// A fresh budget of one request timeout.
    pub(super) fn budget(&self) -> call::Budget {
        call::Budget::new(self.settings.request_timeout)
    }

    pub(super) fn error(&self, what: &str, f: Failure) -> AuthorityError {
        to_error(&self.settings, what, f)
    }

    /// A call sent once per attempt, to the preferred member
    /// ([`Members::one`]), retried within one request timeout: for calls
    /// that may be repeated after a failure but not sent twice at once
    /// (a grant, a transaction that compares, a delete).
    pub(super) async fn read<T, F, Fut>(&self, what: &str, call: F) -> Result<T, AuthorityError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let call = &call;
        call::retried(self.budget(), || self.members.one(call, transient))
            .await
            .map_err(|f| self.error(what, f))
    }

    /// [`Self::read`] for a call that may be sent to several members at
    /// once (a get, a plain put): every attempt goes to every member
    /// ([`Members::any`]), so a member that swallows requests (partitioned,
    /// its connection not yet seen dead) cannot take the attempt. Not for
    /// grants or transactions: three of those are three. (A losing put a
    /// member already took still lands; votes and decisions carry their
    /// time.)
    pub(super) async fn read_either<T, F, Fut>(
        &self,
        what: &str,
        call: F,
    ) -> Result<T, AuthorityError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let call = &call;
        call::retried(self.budget(), || self.members.any(call, settles))
            .await
            .map_err(|f| self.error(what, f))
    }

    /// One key, linearizably.
    pub(super) async fn get_kv(
        &self,
        key: &str,
        what: &str,
    ) -> Result<Option<KeyValue>, AuthorityError> {
        let mut resp = self
            .read_either(what, |c| {
                let mut kv = c.kv_client();
                let key = key.to_string();
                async move { kv.get(key, None).await }
            })
            .await?;
        Ok(resp.take_kvs().into_iter().next())
    }

    /// Sends a compare-and-swap transaction within one request timeout.
    /// After a transient failure (outcome unknown) it reads `key` back and
    /// asks `judge`: ours → [`Sent::Found`]; unchanged → the identical
    /// transaction again (both compare against the same state, so at most
    /// one applies); changed → [`Sent::Changed`]. When the budget ends with
    /// the outcome still unknown: [`AuthorityError::Unavailable`] saying so.
    pub(super) async fn send_cas(
        &self,
        what: &str,
        txn: impl Fn() -> Txn,
        key: &str,
        judge: impl Fn(Option<&KeyValue>) -> ReadBack,
    ) -> Result<Sent, AuthorityError> {
        let budget = self.budget();
        let mut delay = call::first_delay();
        let mut unknown: Option<String> = None;
        loop {
            let sent = txn();
            let attempt = self
                .members
                .one(|c| async move { c.kv_client().txn(sent).await }, transient);
            match call::once(budget, attempt).await {
                Ok(resp) if resp.succeeded() => {
                    let rev = resp.header().map(|h| h.revision()).unwrap_or_default();
                    return Ok(Sent::Applied(rev));
                }
                Ok(resp) => {
                    return Ok(Sent::Refused {
                        resp,
                        after_unknown: unknown.is_some(),
                    });
                }
                Err(Failure::Transient(why)) => {
                    unknown = Some(why);
                    let get = |c: Client| {
                        let key = key.to_string();
                        async move { c.kv_client().get(key, None).await }
                    };
                    let get = &get;
                    let back = call::retried(budget, || self.members.any(get, settles)).await;
                    match back {
                        Ok(mut resp) => {
                            let now = resp.take_kvs().into_iter().next();
                            match judge(now.as_ref()) {
                                ReadBack::Ours(rev) => return Ok(Sent::Found(rev)),
                                ReadBack::Changed => return Ok(Sent::Changed(now)),
                                ReadBack::Unchanged => {}
                            }
                        }
                        Err(Failure::Transient(why)) => unknown = Some(why),
                        Err(other) => return Err(self.error(what, other)),
                    }
                    if !call::pause(budget, &mut delay).await {
                        break;
                    }
                }
                Err(other) => return Err(self.error(what, other)),
            }
        }
        Err(AuthorityError::Unavailable {
            endpoints: self.settings.endpoint_list(),
            detail: format!(
                "{what}: the outcome is unknown ({}); read {key} before deciding anything",
                unknown.unwrap_or_default()
            ),
        })
    }

    fn vanished(&self, key: &str) -> AuthorityError {
        AuthorityError::Etcd {
            what: format!("read {key}"),
            detail: "the key vanished between the compare and the read of one transaction"
                .to_string(),
        }
    }
}

use std::future::Future;

/// `mod_revision == r`, or the key absent for `None`.
fn expect(key: &str, expected: Option<i64>) -> Compare {
    match expected {
        Some(r) => Compare::mod_revision(key, CompareOp::Equal, r),
        None => Compare::create_revision(key, CompareOp::Equal, 0),
    }
}

/// The first key of the `index`th operation (a get) of a transaction's
/// answer.
/// An answer that may change on another attempt or member (see
/// [`super::error::failure`]).
pub(super) fn transient(e: &etcd_client::Error) -> bool {
    matches!(super::error::failure(e), Failure::Transient(_))
}

/// An answer that settles a fan-out whatever the other members would say
/// ("lease not found", a refused credential, a refused request).
pub(super) fn settles(e: &etcd_client::Error) -> bool {
    !transient(e)
}

pub(super) fn txn_get(resp: &TxnResponse, index: usize) -> Option<KeyValue> {
    match resp.op_responses().into_iter().nth(index) {
        Some(TxnOpResponse::Get(mut g)) => g.take_kvs().into_iter().next(),
        _ => None,
    }
}

pub(super) fn versioned<T: DeserializeOwned>(
    key: &str,
    kv: &KeyValue,
) -> Result<Versioned<T>, AuthorityError> {
    Ok(Versioned {
        value: decode(key, kv.value())?,
        mod_revision: kv.mod_revision(),
    })
}

/// Who holds a region's lease key, for messages.
pub(super) fn describe_holder(region: &str, kv: &KeyValue) -> String {
    match serde_json::from_slice::<LeaseHolder>(kv.value()) {
        Ok(h) => format!("{h} with lease {:#x}", kv.lease()),
        Err(_) => format!("{region} with lease {:#x}", kv.lease()),
    }
}

pub(super) fn check_region(region: &str) -> Result<(), AuthorityError> {
    match region_problem(region) {
        None => Ok(()),
        Some(why) => Err(AuthorityError::Invalid {
            detail: format!("region name {region:?} {why}: it cannot be part of an etcd key"),
        }),
    }
}

pub(super) fn to_error(settings: &EtcdSettings, what: &str, f: Failure) -> AuthorityError {
    match f {
        Failure::Transient(why) => AuthorityError::Unavailable {
            endpoints: settings.endpoint_list(),
            detail: format!("{what}: {why}"),
        },
        Failure::Unauthorized(detail) => AuthorityError::Unauthorized {
            user: settings.user.clone(),
            detail,
        },
        Failure::Tls(detail) => AuthorityError::Tls { detail },
        Failure::LeaseNotFound(detail) | Failure::Other(detail) => AuthorityError::Etcd {
            what: what.to_string(),
            detail,
        },
    }
}

fn tls_options(tls: &EtcdTls) -> Result<TlsOptions, AuthorityError> {
    let read = |what: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| AuthorityError::Tls {
            detail: format!("cannot read the {what} {}: {e}", path.display()),
        })
    };
    let mut options =
        TlsOptions::new().ca_certificate(Certificate::from_pem(read("CA certificate", &tls.ca)?));
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        options = options.identity(Identity::from_pem(
            read("client certificate", cert)?,
            read("client key", key)?,
        ));
    }
    Ok(options)
}
