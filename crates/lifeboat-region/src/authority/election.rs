//! The election among the daemons (etcd's election API, name
//! `<prefix>/election`): the leader drives failovers. A candidate's key is
//! attached to its region lease, so leadership ends when that lease does.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, LeaderKey, ResignOptions};

use super::call;
use super::error::{AuthorityError, Failure, failure};
use super::lease::RegionLease;
use super::members::Members;
use super::settings::EtcdSettings;
use super::store::{AuthorityStore, settles, to_error, transient};

/// Longest wait between campaign attempts after transient failures.
const MAX_CAMPAIGN_DELAY: Duration = Duration::from_secs(1);

/// etcd's answer to Leader when no candidate holds the election.
const NO_LEADER: &str = "election: no leader";
/// etcd's answer to Resign when the key is no longer the leader's.
const NOT_LEADER: &str = "election: not leader";

/// This process leads the election (until its lease ends or it resigns).
pub struct Leadership {
    members: Arc<Members>,
    settings: EtcdSettings,
    name: String,
    candidate: String,
    key: LeaderKey,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("name", &self.name)
            .field("candidate", &self.candidate)
            .field("key", &String::from_utf8_lossy(self.key.key()))
            .finish()
    }
}

impl AuthorityStore {
    /// Campaigns as `candidate` (stored as the leader's value) with `lease`;
    /// blocks until elected and the leader key is checked to be ours, so
    /// wrap it in a timeout. Transient failures are retried without end;
    /// [`AuthorityError::LeaseExpired`] when the lease is gone.
    pub async fn campaign(
        &self,
        candidate: &str,
        lease: &RegionLease,
    ) -> Result<Leadership, AuthorityError> {
        self.campaign_with(candidate, lease.id(), lease.region())
            .await
    }

    /// [`AuthorityStore::campaign`] with a lease this process holds by id
    /// (a daemon whose region lease is held by another of its tasks);
    /// `region` names it in errors.
    pub async fn campaign_with(
        &self,
        candidate: &str,
        lease_id: i64,
        region: &str,
    ) -> Result<Leadership, AuthorityError> {
        let name = self.keys.election();
        let mut delay = call::first_delay();
        loop {
            // To the preferred member: a campaign waits until elected, and
            // one held by a member that went silent is given up by the
            // caller's timeout, which moves the preference on.
            let campaign = |c: Client| {
                let name = name.clone();
                async move {
                    c.election_client()
                        .campaign(name, candidate, lease_id)
                        .await
                }
            };
            let attempt = self
                .members
                .one(campaign, transient)
                .await
                .map_err(|e| failure(&e));
            let failed = match attempt {
                Ok(mut resp) => match resp.take_leader() {
                    Some(key) => {
                        let l = Leadership {
                            members: self.members.clone(),
                            settings: self.settings.clone(),
                            name: name.clone(),
                            candidate: candidate.to_string(),
                            key,
                        };
                        // etcd returns once the keys before ours are gone;
                        // ours may have gone with an expired lease meanwhile.
                        match l.is_current().await {
                            Ok(true) => return Ok(l),
                            Ok(false) => Failure::Transient(
                                "elected, but the leader key is no longer ours".to_string(),
                            ),
                            Err(e) if e.is_transient() => Failure::Transient(e.to_string()),
                            Err(e) => return Err(e),
                        }
                    }
                    None => {
                        Failure::Transient("the campaign answered without a leader key".to_string())
                    }
                },
                Err(f) => f,
            };
            match failed {
                Failure::Transient(why) => {
                    tracing::debug!(candidate, "campaign failed, trying again: {why}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_CAMPAIGN_DELAY);
                }
                Failure::LeaseNotFound(_) => {
                    return Err(AuthorityError::LeaseExpired {
                        region: region.to_string(),
                        lease_id,
                    });
                }
                f => return Err(self.error("campaign in the election", f)),
            }
        }
    }

    /// The current leader's value (its candidate name), read linearizably;
    /// `None` when nobody leads.
    pub async fn leader(&self) -> Result<Option<String>, AuthorityError> {
        let name = self.keys.election();
        leader_kv(&self.members, &self.settings, &name)
            .await
            .map(|kv| kv.map(|(_, value)| value))
    }
}

/// The leader's key and value, or `None`.
async fn leader_kv(
    members: &Members,
    settings: &EtcdSettings,
    name: &str,
) -> Result<Option<(etcd_client::KeyValue, String)>, AuthorityError> {
    let budget = call::Budget::new(settings.request_timeout);
    let ask = |c: Client| {
        let name = name.to_string();
        async move {
            match c.election_client().leader(name).await {
                Ok(r) => Ok(Some(r)),
                Err(e) if e.to_string().contains(NO_LEADER) => Ok(None),
                Err(e) => Err(e),
            }
        }
    };
    let ask = &ask;
    let resp = call::retried(budget, || members.any(ask, settles))
        .await
        .map_err(|f| to_error(settings, "read the election's leader", f))?;
    Ok(resp.and_then(|mut r| r.take_kv()).map(|kv| {
        let value = String::from_utf8_lossy(kv.value()).into_owned();
        (kv, value)
    }))
}

impl Leadership {
    pub fn candidate(&self) -> &str {
        &self.candidate
    }

    /// Whether this is still the leader: etcd's leader key is ours (same key,
    /// same creation revision). Read linearizably; check before each step
    /// that only the leader may take.
    pub async fn is_current(&self) -> Result<bool, AuthorityError> {
        Ok(
            match leader_kv(&self.members, &self.settings, &self.name).await? {
                Some((kv, _)) => {
                    kv.key() == self.key.key() && kv.create_revision() == self.key.rev()
                }
                None => false,
            },
        )
    }

    /// Gives the leadership up (the next candidate is elected). Not leading
    /// any more is not an error.
    pub async fn resign(self) -> Result<(), AuthorityError> {
        let budget = call::Budget::new(self.settings.request_timeout);
        let once = |c: Client| {
            let options = ResignOptions::new().with_leader(self.key.clone());
            async move {
                match c.election_client().resign(Some(options)).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.to_string().contains(NOT_LEADER) => Ok(()),
                    Err(e) => Err(e),
                }
            }
        };
        let once = &once;
        let result = call::retried(budget, || self.members.one(once, transient)).await;
        match result {
            Ok(()) | Err(Failure::LeaseNotFound(_)) => Ok(()),
            Err(f) => Err(to_error(&self.settings, "resign from the election", f)),
        }
    }
}
