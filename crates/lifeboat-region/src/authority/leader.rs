//! Keeping etcd's raft leader on one member (`failover.etcd.leader`, the
//! witness's): a region's failure then never takes etcd's leader with it.
//!
//! Why it matters for the RTO: when etcd's leader fails, the remaining
//! members elect a new one, and the new leader **extends every lease** to
//! a full TTL from its election (etcd's lessor does this so that no lease
//! expires for want of a leader). A primary region that held etcd's leader
//! therefore keeps its dead agent's lease alive for the election time plus
//! a whole `lease_ttl` after the failure, and no failover can start before
//! it is gone: on the test bed this added 2–4 s (bench/failover.sh). With
//! the leader at the witness, a region's failure costs etcd only a
//! follower, and the lease expires `lease_ttl` after its last renewal.
//!
//! [`LeaderKeeper::check`] asks the members (one connection per configured
//! endpoint, so the answer comes from each member itself) who leads, and
//! when it is not the wanted member asks the leader to hand over
//! (`MoveLeader`, which only the current leader accepts). A transfer makes
//! the cluster leaderless for about one heartbeat; etcd refuses it when the
//! transferee is not caught up. A hand-over is itself a leader change (the
//! new leader extends every lease), so the caller defers it while a failure
//! is being handled.

use etcd_client::Client;

use super::call;
use super::error::AuthorityError;
use super::settings::EtcdSettings;
use super::store::AuthorityStore;

/// What [`LeaderKeeper::check`] found or did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The wanted member leads.
    Placed,
    /// Leadership was handed from `from` to the wanted member.
    Moved { from: String },
    /// No member that answered knows a leader (no quorum, or an election).
    NoLeader,
    /// No member of the cluster has the wanted name.
    NotAMember {
        wanted: String,
        members: Vec<String>,
    },
    /// The leader is elsewhere, but none of the configured endpoints is
    /// the leader's (it is not reachable from here): nothing was asked.
    LeaderUnreachable { leader: String },
    /// The leader is elsewhere and the wanted member does not answer here
    /// (down, or cut off): nothing was asked.
    WantedDown { leader: String },
    /// The leader is elsewhere, but the caller said not now (a hand-over
    /// is a leader change, which extends every lease: not while a failed
    /// primary's lease is expiring).
    Deferred { leader: String },
}

/// One member's answer to `Status`.
struct Seen {
    /// Index into the configured endpoints.
    endpoint: usize,
    own_id: u64,
    leader_id: u64,
    raft_term: u64,
}

/// Keeps etcd's leader on the member named `wanted`.
pub struct LeaderKeeper {
    settings: EtcdSettings,
    wanted: String,
    /// One store per configured endpoint, connected on first use.
    members: Vec<Option<AuthorityStore>>,
}

impl LeaderKeeper {
    pub fn new(settings: EtcdSettings, wanted: String) -> Self {
        let n = settings.endpoints.len();
        LeaderKeeper {
            settings,
            wanted,
            members: (0..n).map(|_| None).collect(),
        }
    }

    /// The member behind endpoint `i`, connected on demand: `None` when
    /// it cannot be reached now; an error when it refuses us for good (a
    /// wrong user or password, a TLS mismatch), which asking again will
    /// not mend and which must not pass for "no leader".
    async fn member(&mut self, i: usize) -> Result<Option<Client>, AuthorityError> {
        if self.members[i].is_none() {
            let mut one = self.settings.clone();
            one.endpoints = vec![self.settings.endpoints[i].clone()];
            match AuthorityStore::connect(one).await {
                Ok(s) => self.members[i] = Some(s),
                Err(e) if e.is_transient() => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(self.members[i].as_ref().map(|s| s.client.clone()))
    }

    /// Asks each member (at once) for its id and its leader's id.
    async fn statuses(&mut self) -> Result<Vec<Seen>, AuthorityError> {
        let mut clients = Vec::new();
        for i in 0..self.members.len() {
            if let Some(c) = self.member(i).await? {
                clients.push((i, c));
            }
        }
        let budget = call::Budget::new(self.settings.request_timeout);
        let mut asks = tokio::task::JoinSet::new();
        for (i, mut c) in clients {
            asks.spawn(async move { (i, call::once(budget, c.status()).await) });
        }
        let mut out = Vec::new();
        while let Some(Ok((i, r))) = asks.join_next().await {
            match r {
                Ok(s) => out.push(Seen {
                    endpoint: i,
                    own_id: s.header().map_or(0, |h| h.member_id()),
                    leader_id: s.leader(),
                    raft_term: s.raft_term(),
                }),
                // A member that does not answer is asked again next time,
                // on a new connection.
                Err(_) => self.members[i] = None,
            }
        }
        Ok(out)
    }

    /// One look, and a hand-over when the leader is not the wanted member
    /// and `may_move`. An error when a member refuses the configured
    /// credentials or TLS (never mistaken for [`Placement::NoLeader`]), or
    /// when listing the members or the hand-over fails.
    pub async fn check(&mut self, may_move: bool) -> Result<Placement, AuthorityError> {
        let seen = self.statuses().await?;
        // The leader as a member says of itself (the newest term's, should
        // a partitioned old leader not have stepped down yet); a follower's
        // view may be stale.
        let leader_id = seen
            .iter()
            .filter(|s| s.own_id != 0 && s.own_id == s.leader_id)
            .max_by_key(|s| s.raft_term)
            .or_else(|| seen.iter().find(|s| s.leader_id != 0))
            .map(|s| s.leader_id);
        let Some(leader_id) = leader_id else {
            return Ok(Placement::NoLeader);
        };
        let Some(asked) = seen.iter().map(|s| s.endpoint).min() else {
            return Ok(Placement::NoLeader);
        };
        let Some(mut client) = self.member(asked).await? else {
            return Ok(Placement::NoLeader);
        };
        let budget = call::Budget::new(self.settings.request_timeout);
        let list = call::retried(budget, || {
            let mut c = client.clone();
            async move { c.member_list().await }
        })
        .await
        .map_err(|f| super::store::to_error(&self.settings, "list the etcd members", f))?;
        let name_of = |id: u64| {
            list.members()
                .iter()
                .find(|m| m.id() == id)
                .map(|m| m.name().to_string())
        };
        let Some(wanted_id) = list
            .members()
            .iter()
            .find(|m| m.name() == self.wanted)
            .map(|m| m.id())
        else {
            return Ok(Placement::NotAMember {
                wanted: self.wanted.clone(),
                members: list
                    .members()
                    .iter()
                    .map(|m| m.name().to_string())
                    .collect(),
            });
        };
        if leader_id == wanted_id {
            return Ok(Placement::Placed);
        }
        let leader = name_of(leader_id).unwrap_or_else(|| format!("{leader_id:x}"));
        if !seen.iter().any(|s| s.own_id == wanted_id) {
            return Ok(Placement::WantedDown { leader });
        }
        if !may_move {
            return Ok(Placement::Deferred { leader });
        }
        // Only the leader accepts MoveLeader: ask it on its own connection.
        let Some(at) = seen
            .iter()
            .find(|s| s.own_id == leader_id)
            .map(|s| s.endpoint)
        else {
            return Ok(Placement::LeaderUnreachable { leader });
        };
        let Some(c) = self.member(at).await? else {
            return Ok(Placement::LeaderUnreachable { leader });
        };
        client = c;
        call::once(budget, client.move_leader(wanted_id))
            .await
            .map_err(|f| {
                super::store::to_error(
                    &self.settings,
                    &format!("move etcd's leadership from {leader} to {}", self.wanted),
                    f,
                )
            })?;
        Ok(Placement::Moved { from: leader })
    }
}
