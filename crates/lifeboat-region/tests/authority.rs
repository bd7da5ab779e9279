//! The failover authority against real etcd: Debian's etcd 3.4
//! (`/usr/bin/etcd`), one or three members on loopback ports
//! (tests/support/etcd.rs). Without etcd the tests fail and say to run
//! scripts/test.sh.
//!
//! What is shown: the authority record is created once and changed only by
//! compare-and-swap (concurrent bumps: one wins, the other learns who did);
//! a failover bump waits for the old primary's lease to be gone (revoked,
//! or expired on its own); a lease keeps its key while renewed and a region
//! has one holder; the election has one leader and passes on when the
//! leader's lease ends; the failover progress is CAS'd and survives a
//! client crash; with one of three members lost nothing changes, with two
//! lost every call fails as `Unavailable` within the request timeout and
//! nothing changed once they return; etcd auth: a wrong password is
//! `Unauthorized` and no password appears in any message.

use crate::etcd;

use std::time::{Duration, Instant};

use etcd::EtcdCluster;
use lifeboat_region::authority::{
    AuthorityError, AuthorityRecord, AuthorityStore, ChangeReason, EtcdSettings, LeaderKeeper,
    Placement, Versioned,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Bound on the waits the tests make for etcd to do something (a lease to
/// expire, a candidate to be elected): generous, never a timing assertion.
const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

fn settings(endpoints: Vec<String>, prefix: &str) -> EtcdSettings {
    let mut s = EtcdSettings::new(endpoints);
    s.prefix = prefix.to_string();
    s.dial_timeout = Duration::from_secs(2);
    s.request_timeout = Duration::from_secs(4);
    s
}

async fn store(c: &EtcdCluster, prefix: &str) -> AuthorityStore {
    AuthorityStore::connect(settings(c.endpoints(), prefix))
        .await
        .expect("connect to etcd")
}

/// A raw client of the test's own (to make the states the code under test
/// must meet).
async fn raw(c: &EtcdCluster) -> etcd_client::Client {
    etcd_client::Client::connect(c.endpoints(), None)
        .await
        .expect("raw etcd client")
}

fn epoch_of(r: &Versioned<AuthorityRecord>) -> u64 {
    r.value.epoch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_once_and_concurrent_bumps_one_wins() {
    let _alone = crate::alone::alone(module_path!());
    let c = EtcdCluster::start(1).await;
    let s1 = store(&c, "/t-bump").await;
    let s2 = store(&c, "/t-bump").await;
    assert_eq!(s1.authority().await.unwrap(), None);

    let a = s1.initialize("us-east", "us-east/daemon-1").await.unwrap();
    let b = s2.initialize("eu-west", "eu-west/daemon-2").await.unwrap();
    assert_eq!(a, b, "the second initialize returns the first record");
    assert_eq!((a.value.epoch, a.value.primary.as_str()), (1, "us-east"));
    assert_eq!(a.value.reason, ChangeReason::Initial);
    assert_eq!(s2.authority().await.unwrap(), Some(a.clone()));

    // Two bumps from the same version at once: exactly one applies.
    let (r1, r2) = tokio::join!(
        s1.bump(
            &a,
            "eu-west",
            "eu-west/daemon-2",
            ChangeReason::Failover,
            None
        ),
        s2.bump(
            &a,
            "ap-south",
            "ap-south/daemon-3",
            ChangeReason::Manual,
            None
        ),
    );
    let (winner, loser) = match (r1, r2) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        (r1, r2) => panic!("want exactly one winner, got {r1:?} and {r2:?}"),
    };
    assert_eq!(winner.value.epoch, 2);
    match &loser {
        AuthorityError::Conflict {
            now: Some(now),
            lease_held_by: None,
        } => assert_eq!(now, &winner.value, "the loser learns the new primary"),
        other => panic!("want Conflict naming the winner, got {other:?}"),
    }
    assert!(loser.to_string().contains(&winner.value.primary), "{loser}");
    assert_eq!(s1.authority().await.unwrap(), Some(winner.clone()));

    // From the new version: epoch 3; a stale version: refused, naming epoch 3.
    let third = s1
        .bump(&winner, "us-east", "op", ChangeReason::Switchover, None)
        .await
        .unwrap();
    let stale = s2
        .bump(
            &a,
            "ap-south",
            "ap-south/daemon-3",
            ChangeReason::Manual,
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&stale, AuthorityError::Conflict { now: Some(n), .. } if n.epoch == 3),
        "{stale:?}"
    );
    let epochs = [epoch_of(&a), epoch_of(&winner), epoch_of(&third)];
    assert!(epochs.windows(2).all(|w| w[0] < w[1]), "{epochs:?}");
    assert!(third.mod_revision > winner.mod_revision);

    // A bump is never "initial"; region names must fit in a key.
    assert!(matches!(
        s1.bump(&third, "eu-west", "x", ChangeReason::Initial, None)
            .await,
        Err(AuthorityError::Invalid { .. })
    ));
    assert!(matches!(
        s1.bump(&third, "eu/west", "x", ChangeReason::Manual, None)
            .await,
        Err(AuthorityError::Invalid { .. })
    ));

    // Something else at the key is Corrupt, naming it.
    let mut r = raw(&c).await;
    r.put("/t-corrupt/authority", "not lifeboat's", None)
        .await
        .unwrap();
    let s3 = store(&c, "/t-corrupt").await;
    match s3.authority().await {
        Err(AuthorityError::Corrupt { key, .. }) => assert_eq!(key, "/t-corrupt/authority"),
        other => panic!("want Corrupt, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_bump_waits_until_the_old_primarys_lease_is_gone() {
    let _alone = crate::alone::alone(module_path!());
    let c = EtcdCluster::start(1).await;
    let s = store(&c, "/t-lease-gone").await;
    let first = s.initialize("us-east", "us-east/d").await.unwrap();

    // us-east's daemon holds its lease: the failover is refused.
    let us_east = s.grant("us-east", Duration::from_secs(30)).await.unwrap();
    let refused = s
        .bump(
            &first,
            "eu-west",
            "eu-west/d",
            ChangeReason::Failover,
            Some("us-east"),
        )
        .await
        .unwrap_err();
    match &refused {
        AuthorityError::Conflict {
            now: Some(now),
            lease_held_by: Some(holder),
        } => {
            assert_eq!(now, &first.value, "the record itself did not change");
            assert!(holder.contains("us-east"), "{holder}");
            assert!(
                holder.contains(&format!("pid {}", std::process::id())),
                "{holder}"
            );
        }
        other => panic!("want Conflict with the lease holder, got {other:?}"),
    }
    assert!(refused.to_string().contains("still alive"), "{refused}");
    assert_eq!(s.authority().await.unwrap(), Some(first.clone()));

    // Revoked (a clean shutdown): allowed.
    us_east.revoke().await.unwrap();
    assert_eq!(s.lease_of("us-east").await.unwrap(), None);
    let second = s
        .bump(
            &first,
            "eu-west",
            "eu-west/d",
            ChangeReason::Failover,
            Some("us-east"),
        )
        .await
        .unwrap();
    assert_eq!(
        (second.value.epoch, second.value.primary.as_str()),
        (2, "eu-west")
    );

    // Expired on its own (short TTL, never renewed): refused while it
    // lives, allowed once etcd has removed the key.
    let eu_west = s.grant("eu-west", Duration::from_secs(2)).await.unwrap();
    let info = s.lease_of("eu-west").await.unwrap().expect("a live lease");
    assert_eq!(info.lease_id, eu_west.id());
    assert!(info.ttl_remaining <= eu_west.ttl(), "{info:?}");
    let r = s
        .bump(
            &second,
            "us-east",
            "us-east/d",
            ChangeReason::Failover,
            Some("eu-west"),
        )
        .await;
    assert!(
        matches!(
            &r,
            Err(AuthorityError::Conflict {
                lease_held_by: Some(_),
                ..
            })
        ),
        "{r:?}"
    );
    let deadline = Instant::now() + WAIT;
    while s.lease_of("eu-west").await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "eu-west's lease did not expire within {WAIT:?}"
        );
        tokio::time::sleep(POLL).await;
    }
    let third = s
        .bump(
            &second,
            "us-east",
            "us-east/d",
            ChangeReason::Failover,
            Some("eu-west"),
        )
        .await
        .unwrap();
    assert_eq!(third.value.epoch, 3);
    drop(eu_west);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_keeps_the_key_and_a_region_has_one_holder() {
    let _alone = crate::alone::alone(module_path!());
    let c = EtcdCluster::start(1).await;
    let s = store(&c, "/t-keep").await;
    let other = store(&c, "/t-keep").await;
    let mut lease = s.grant("us-east", Duration::from_secs(2)).await.unwrap();
    let ttl = lease.ttl();
    assert!(ttl >= Duration::from_secs(2), "{ttl:?}");

    // Renewed every 300 ms for three TTLs: the key stays, same lease.
    let until = Instant::now() + 3 * ttl;
    while Instant::now() < until {
        assert_eq!(lease.keep_alive().await.unwrap(), ttl);
        let info = s.lease_of("us-east").await.unwrap().expect("the key lives");
        assert_eq!(info.lease_id, lease.id());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // A second daemon for us-east is refused, naming the holder.
    match other.grant("us-east", Duration::from_secs(2)).await {
        Err(AuthorityError::RegionTaken { region, holder }) => {
            assert_eq!(region, "us-east");
            assert!(holder.contains(&format!("{:#x}", lease.id())), "{holder}");
        }
        r => panic!("want RegionTaken, got {r:?}"),
    }
    // Its refused lease was revoked: only ours is left under the prefix.
    let live = s.live_leases().await.unwrap();
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(
        (live[0].region.as_str(), live[0].lease_id),
        ("us-east", lease.id())
    );
    let holder = live[0].holder.as_ref().expect("our JSON");
    assert_eq!(holder.pid, std::process::id());

    // Another region can be held beside it.
    let eu_west = other
        .grant("eu-west", Duration::from_secs(5))
        .await
        .unwrap();
    let mut regions: Vec<String> = s
        .live_leases()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.region)
        .collect();
    regions.sort();
    assert_eq!(regions, ["eu-west", "us-east"]);

    // etcd forgets the lease (revoked behind the daemon's back): the next
    // renewal says so, and the region can be taken again.
    raw(&c).await.lease_revoke(lease.id()).await.unwrap();
    match lease.keep_alive().await {
        Err(AuthorityError::LeaseExpired { region, lease_id }) => {
            assert_eq!((region.as_str(), lease_id), ("us-east", lease.id()))
        }
        r => panic!("want LeaseExpired, got {r:?}"),
    }
    assert_eq!(s.lease_of("us-east").await.unwrap(), None);
    let again = other
        .grant("us-east", Duration::from_secs(5))
        .await
        .unwrap();
    assert_ne!(again.id(), lease.id());
    again.revoke().await.unwrap();
    eu_west.revoke().await.unwrap();
    assert_eq!(s.live_leases().await.unwrap(), []);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn election_has_one_leader_and_passes_on_when_its_lease_ends() {
    let _alone = crate::alone::alone(module_path!());
    let c = EtcdCluster::start(1).await;
    let s1 = store(&c, "/t-elect").await;
    let s2 = store(&c, "/t-elect").await;
    assert_eq!(s1.leader().await.unwrap(), None);

    let l1 = s1.grant("us-east", Duration::from_secs(30)).await.unwrap();
    let l2 = s2.grant("eu-west", Duration::from_secs(30)).await.unwrap();
    let lead1 = tokio::time::timeout(WAIT, s1.campaign("us-east/d1", &l1))
        .await
        .expect("elected with nobody else campaigning")
        .unwrap();
    assert_eq!(s2.leader().await.unwrap().as_deref(), Some("us-east/d1"));
    assert!(lead1.is_current().await.unwrap());

    // The second candidate waits while the first leads.
    let second = tokio::spawn(async move {
        let lead = s2.campaign("eu-west/d2", &l2).await;
        (lead, s2, l2)
    });
    // Pause point: its candidate key is in etcd (two keys under the name).
    let mut r = raw(&c).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let n = r
            .get(
                "/t-elect/election/",
                Some(
                    etcd_client::GetOptions::new()
                        .with_prefix()
                        .with_count_only(),
                ),
            )
            .await
            .unwrap()
            .count();
        if n == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second candidate never campaigned"
        );
        tokio::time::sleep(POLL).await;
    }
    assert!(!second.is_finished(), "two leaders at once");
    assert_eq!(s1.leader().await.unwrap().as_deref(), Some("us-east/d1"));
    assert!(lead1.is_current().await.unwrap());

    // The leader's lease ends: the other is elected.
    l1.revoke().await.unwrap();
    let (lead2, s2, _l2) = tokio::time::timeout(WAIT, second)
        .await
        .expect("the second candidate elected after the first lease ended")
        .unwrap();
    let lead2 = lead2.unwrap();
    assert!(lead2.is_current().await.unwrap());
    assert!(!lead1.is_current().await.unwrap());
    assert_eq!(s1.leader().await.unwrap().as_deref(), Some("eu-west/d2"));
    // Resigning twice is harmless (the first leader's key is long gone).
    lead1.resign().await.unwrap();
    lead2.resign().await.unwrap();
    assert_eq!(s2.leader().await.unwrap(), None);
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Progress {
    step: String,
    epoch: u64,
}

fn step(name: &str) -> Progress {
    Progress {
        step: name.to_string(),
        epoch: 2,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_compare_and_swap_and_survives_a_crash() {
    let _alone = crate::alone::alone(module_path!());
    let c = EtcdCluster::start(1).await;
    let s = store(&c, "/t-progress").await;
    assert_eq!(s.progress::<Progress>().await.unwrap(), None);

    // Updating what does not exist: refused.
    match s.put_progress(Some(5), &step("bumped")).await {
        Err(AuthorityError::ProgressConflict { expected, now, .. }) => {
            assert_eq!((expected, now), (Some(5), None))
        }
        r => panic!("want ProgressConflict, got {r:?}"),
    }
    // Create-only.
    let r1 = s.put_progress(None, &step("bumped")).await.unwrap();
    match s.put_progress(None, &step("other")).await {
        Err(AuthorityError::ProgressConflict { now, .. }) => assert_eq!(now, Some(r1)),
        r => panic!("want ProgressConflict, got {r:?}"),
    }
    // Update with the right revision; the wrong one is refused.
    let r2 = s.put_progress(Some(r1), &step("promoted")).await.unwrap();
    assert!(r2 > r1);
    match s.put_progress(Some(r1), &step("dns")).await {
        Err(AuthorityError::ProgressConflict { now, .. }) => assert_eq!(now, Some(r2)),
        r => panic!("want ProgressConflict, got {r:?}"),
    }

    // The driver "crashes"; a new one connects and resumes from etcd.
    drop(s);
    let s = store(&c, "/t-progress").await;
    let found = s.progress::<Progress>().await.unwrap().expect("progress");
    assert_eq!(
        found,
        Versioned {
            value: step("promoted"),
            mod_revision: r2
        }
    );
    let r3 = s
        .put_progress(Some(found.mod_revision), &step("dns"))
        .await
        .unwrap();
    assert!(matches!(
        s.clear_progress(r2).await,
        Err(AuthorityError::ProgressConflict { .. })
    ));
    s.clear_progress(r3).await.unwrap();
    assert_eq!(s.progress::<Progress>().await.unwrap(), None);

    // Failover records: create-only, the same value again is fine, listed
    // newest first.
    s.put_failover_record(2, &step("done-2")).await.unwrap();
    s.put_failover_record(2, &step("done-2")).await.unwrap();
    assert!(matches!(
        s.put_failover_record(2, &step("different")).await,
        Err(AuthorityError::AlreadyExists { .. })
    ));
    s.put_failover_record(10, &step("done-10")).await.unwrap();
    s.put_failover_record(3, &step("done-3")).await.unwrap();
    let newest: Vec<(u64, Progress)> = s.failover_records(2).await.unwrap();
    assert_eq!(newest, [(10, step("done-10")), (3, step("done-3"))]);
    let all: Vec<u64> = s
        .failover_records::<Progress>(100)
        .await
        .unwrap()
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    assert_eq!(all, [10, 3, 2]);
    // The progress key beside the records is not one of them.
    assert_eq!(s.progress::<Progress>().await.unwrap(), None);
}

/// Runs `f`, which must end (with anything) well before `bound`: the calls
/// under test must not hang while etcd has no majority.
async fn bounded<T>(what: &str, bound: Duration, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(bound, f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung past {bound:?} without a majority"))
}

/// `keeper`, asked while member `leader` leads, hands the leadership over;
/// etcd's leader becomes member `wanted`, and the next look finds it placed.
async fn hands_over_and_places(
    keeper: &mut LeaderKeeper,
    c: &EtcdCluster,
    leader: usize,
    wanted: usize,
) {
    assert_eq!(
        keeper.check(true).await.unwrap(),
        Placement::Moved {
            from: format!("m{leader}")
        }
    );
    let deadline = Instant::now() + WAIT;
    while c.leader().await != Some(wanted) {
        assert!(
            Instant::now() < deadline,
            "the leadership never moved to m{wanted}"
        );
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(keeper.check(true).await.unwrap(), Placement::Placed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_keeper_hands_etcds_leadership_to_the_wanted_member() {
    let _alone = crate::alone::alone(module_path!());
    let mut c = EtcdCluster::start(3).await;
    let leader = c.wait_leader().await;
    let wanted = (0..3).find(|i| *i != leader).unwrap();
    let settings = settings(c.endpoints(), "/t-leader");

    // Not a member: said so, with the members' names; nothing moved.
    let mut bogus = LeaderKeeper::new(settings.clone(), "nobody".into());
    match bogus.check(true).await.unwrap() {
        Placement::NotAMember { wanted, members } => {
            assert_eq!(wanted, "nobody");
            let mut members = members;
            members.sort();
            assert_eq!(members, vec!["m0", "m1", "m2"]);
        }
        other => panic!("want NotAMember, got {other:?}"),
    }
    assert_eq!(c.wait_leader().await, leader);

    // Elsewhere, but not now: nothing asked.
    let mut keeper = LeaderKeeper::new(settings.clone(), format!("m{wanted}"));
    assert_eq!(
        keeper.check(false).await.unwrap(),
        Placement::Deferred {
            leader: format!("m{leader}")
        }
    );
    assert_eq!(c.wait_leader().await, leader);

    // Elsewhere: handed over by the leader itself, and then it stays.
    hands_over_and_places(&mut keeper, &c, leader, wanted).await;

    // Its member lost: another leads, and the keeper cannot move it there
    // until it is back; then it does.
    c.stop(wanted);
    // The others believe in the stopped leader until their election.
    let deadline = Instant::now() + WAIT;
    let other = loop {
        match c.leader().await {
            Some(l) if l != wanted => break l,
            _ => {
                assert!(
                    Instant::now() < deadline,
                    "no new leader after m{wanted} stopped"
                );
                tokio::time::sleep(POLL).await;
            }
        }
    };
    assert_eq!(
        keeper.check(true).await.unwrap(),
        Placement::WantedDown {
            leader: format!("m{other}")
        }
    );
    c.restart(&[wanted]).await;
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(Placement::Placed) = keeper.check(true).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the leadership never came back to m{wanted}"
        );
        tokio::time::sleep(POLL * 5).await;
    }
    assert_eq!(c.wait_leader().await, wanted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_one_lost_changes_nothing_a_majority_lost_moves_nothing() {
    let _alone = crate::alone::alone(module_path!());
    let mut c = EtcdCluster::start(3).await;
    let s = store(&c, "/t-quorum").await;
    let first = s.initialize("us-east", "us-east/d").await.unwrap();

    // One member lost (the leader, the harder case): a bump still applies.
    let leader = c.wait_leader().await;
    c.stop(leader);
    let second = s
        .bump(&first, "eu-west", "eu-west/d", ChangeReason::Manual, None)
        .await
        .unwrap();
    assert_eq!(s.authority().await.unwrap(), Some(second.clone()));
    c.restart(&[leader]).await;

    // A majority lost: kill two members at once, keeping a follower, so no
    // member alive can have taken a proposal into its log.
    let leader = c.wait_leader().await;
    let survivor = (0..3).find(|i| *i != leader).unwrap();
    let gone: Vec<usize> = (0..3).filter(|i| *i != survivor).collect();
    c.kill(&gone);
    let timeout = s.settings().request_timeout;
    let bound = 3 * timeout + Duration::from_secs(10);
    let bump = bounded(
        "bump",
        bound,
        s.bump(
            &second,
            "ap-south",
            "ap-south/d",
            ChangeReason::Failover,
            None,
        ),
    )
    .await;
    match &bump {
        Err(e @ AuthorityError::Unavailable { .. }) => {
            assert!(e.is_transient());
            assert!(e.to_string().contains("no region can be promoted"), "{e}");
        }
        other => panic!("want Unavailable, got {other:?}"),
    }
    let read = bounded("authority()", bound, s.authority()).await;
    assert!(
        matches!(read, Err(AuthorityError::Unavailable { .. })),
        "{read:?}"
    );
    let grant = bounded("grant", bound, s.grant("ap-south", Duration::from_secs(5))).await;
    assert!(
        matches!(grant, Err(AuthorityError::Unavailable { .. })),
        "{grant:?}"
    );

    // The majority returns: nothing changed, and the authority works again.
    c.restart(&gone).await;
    assert_eq!(s.authority().await.unwrap(), Some(second.clone()));
    let third = s
        .bump(
            &second,
            "ap-south",
            "ap-south/d",
            ChangeReason::Failover,
            None,
        )
        .await
        .unwrap();
    assert_eq!(third.value.epoch, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_unavailable_naming_the_endpoint() {
    let _alone = crate::alone::alone(module_path!());
    let port = lifeboat_test_ports::reserve();
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut st = settings(vec![endpoint.clone()], "/t-none");
    st.request_timeout = Duration::from_secs(2);
    let s = AuthorityStore::connect(st).await.unwrap();
    let e = bounded("authority()", Duration::from_secs(20), s.authority())
        .await
        .unwrap_err();
    assert!(matches!(e, AuthorityError::Unavailable { .. }), "{e:?}");
    assert!(e.to_string().contains(&endpoint), "{e}");

    // Settings that cannot work are refused before connecting.
    let mut bad = settings(vec!["127.0.0.1:2379".into()], "lifeboat");
    bad.user = Some("lifeboat".into());
    match AuthorityStore::connect(bad).await {
        Err(AuthorityError::Settings { problems }) => assert_eq!(problems.len(), 3, "{problems:?}"),
        r => panic!("want Settings, got {r:?}"),
    }
}

/// etcd's auth, as an operator sets it up: a root user, a user `lifeboat`
/// (password `password`) whose role may read and write only under
/// `prefix`, then `auth enable`.
async fn enable_auth(c: &EtcdCluster, root_password: &str, prefix: &str, password: &str) {
    let mut r = raw(c).await;
    r.user_add("root", root_password, None).await.unwrap();
    r.user_grant_role("root", "root").await.unwrap();
    r.role_add("lifeboat").await.unwrap();
    r.role_grant_permission(
        "lifeboat",
        etcd_client::Permission::read_write(prefix).with_prefix(),
    )
    .await
    .unwrap();
    r.user_add("lifeboat", password, None).await.unwrap();
    r.user_grant_role("lifeboat", "lifeboat").await.unwrap();
    r.auth_enable().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_auth_a_wrong_password_is_unauthorized_and_never_printed() {
    let _alone = crate::alone::alone(module_path!());
    const ROOT_PW: &str = "root-pw-Zq81";
    const RIGHT: &str = "lifeboat-pw-Xk93";
    const WRONG: &str = "wrong-pw-Jd27";
    let c = EtcdCluster::start(1).await;
    enable_auth(&c, ROOT_PW, "/t-auth/", RIGHT).await;

    let with = |password: Option<&str>| {
        let mut s = settings(c.endpoints(), "/t-auth");
        if let Some(p) = password {
            s.user = Some("lifeboat".into());
            s.password = Some(Zeroizing::new(p.to_string()));
        }
        s
    };

    // The wrong password: refused at connect, no password in any message.
    let e = AuthorityStore::connect(with(Some(WRONG)))
        .await
        .unwrap_err();
    assert!(matches!(e, AuthorityError::Unauthorized { .. }), "{e:?}");
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(!text.contains(WRONG) && !text.contains(RIGHT), "{text}");
        assert!(text.contains("lifeboat"), "names the user: {text}");
    }
    assert!(!e.is_transient());
    assert!(!format!("{:?}", with(Some(WRONG))).contains(WRONG));

    // No user while etcd requires one: refused too.
    let anonymous = AuthorityStore::connect(with(None)).await.unwrap();
    let e = anonymous.authority().await.unwrap_err();
    assert!(matches!(e, AuthorityError::Unauthorized { .. }), "{e:?}");

    // The right password: everything works within the user's prefix
    // (records, leases, the election).
    let s = AuthorityStore::connect(with(Some(RIGHT))).await.unwrap();
    assert!(!format!("{s:?}").contains(RIGHT));
    let first = s.initialize("us-east", "us-east/d").await.unwrap();
    let lease = s.grant("eu-west", Duration::from_secs(10)).await.unwrap();
    let lead = tokio::time::timeout(WAIT, s.campaign("eu-west/d", &lease))
        .await
        .expect("elected")
        .unwrap();
    let second = s
        .bump(&first, "eu-west", "eu-west/d", ChangeReason::Manual, None)
        .await
        .unwrap();
    assert_eq!(second.value.epoch, 2);
    lead.resign().await.unwrap();
    lease.revoke().await.unwrap();

    // Outside its prefix the role has no permission: refused, not retried.
    let mut other = with(Some(RIGHT));
    other.prefix = "/elsewhere".into();
    let s = AuthorityStore::connect(other).await.unwrap();
    let e = s.authority().await.unwrap_err();
    assert!(matches!(e, AuthorityError::Unauthorized { .. }), "{e:?}");
}

// --- unknown outcomes ----------------------------------------------------------------

/// A TCP relay of the test's own between the store and etcd that can lose
/// everything one way (requests, or replies) and cut its connections: the
/// way a write's outcome becomes unknown to the writer.
mod link {
    use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinHandle;

    pub const PASS: u8 = 0;
    pub const LOSE_REQUESTS: u8 = 1;
    pub const LOSE_REPLIES: u8 = 2;

    pub struct Link {
        pub port: u16,
        mode: Arc<AtomicU8>,
        /// Bytes lost since the mode was last set.
        lost: Arc<AtomicU64>,
        tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
        accept: JoinHandle<()>,
    }

    impl Link {
        pub async fn to(upstream: u16) -> Link {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let mode = Arc::new(AtomicU8::new(PASS));
            let lost = Arc::new(AtomicU64::new(0));
            let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
            let accept = {
                let (mode, lost, tasks) = (mode.clone(), lost.clone(), tasks.clone());
                tokio::spawn(async move {
                    while let Ok((client, _)) = listener.accept().await {
                        let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                            continue;
                        };
                        let (cr, cw) = client.into_split();
                        let (sr, sw) = server.into_split();
                        let up =
                            tokio::spawn(pump(cr, sw, LOSE_REQUESTS, mode.clone(), lost.clone()));
                        let down =
                            tokio::spawn(pump(sr, cw, LOSE_REPLIES, mode.clone(), lost.clone()));
                        tasks.lock().unwrap().extend([up, down]);
                    }
                })
            };
            Link {
                port,
                mode,
                lost,
                tasks,
                accept,
            }
        }

        pub fn endpoint(&self) -> String {
            format!("http://127.0.0.1:{}", self.port)
        }

        pub fn set(&self, mode: u8) {
            self.mode.store(mode, Ordering::SeqCst);
            self.lost.store(0, Ordering::SeqCst);
        }

        pub fn lost(&self) -> u64 {
            self.lost.load(Ordering::SeqCst)
        }

        /// Closes every relayed connection (both sides see it end).
        pub fn cut(&self) {
            for t in self.tasks.lock().unwrap().drain(..) {
                t.abort();
            }
        }
    }

    impl Drop for Link {
        fn drop(&mut self) {
            self.cut();
            self.accept.abort();
        }
    }

    async fn pump(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        lose_when: u8,
        mode: Arc<AtomicU8>,
        lost: Arc<AtomicU64>,
    ) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if mode.load(Ordering::SeqCst) == lose_when {
                lost.fetch_add(n as u64, Ordering::SeqCst);
                continue;
            }
            if to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }
}

/// The authority key's modification count (`version`), read directly.
async fn writes_of(r: &mut etcd_client::Client, key: &str) -> i64 {
    r.get(key, None).await.unwrap().kvs()[0].version()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bump_with_an_unknown_outcome_is_settled_by_reading_back() {
    let _alone = crate::alone::alone(module_path!());
    let c = EtcdCluster::start(1).await;
    let link = link::Link::to(c.client_port(0)).await;
    let mut st = settings(vec![link.endpoint()], "/t-unknown");
    st.request_timeout = Duration::from_secs(10);
    let s = AuthorityStore::connect(st).await.unwrap();
    let first = s.initialize("us-east", "us-east/d").await.unwrap();
    let mut r = raw(&c).await;
    let key = "/t-unknown/authority";
    assert_eq!(writes_of(&mut r, key).await, 1);

    // 1. The transaction applies but its reply is lost, then the connection
    //    breaks: the store reads back, finds its own record, and reports
    //    success (not Unavailable, not a Conflict with itself).
    link.set(link::LOSE_REPLIES);
    let s = std::sync::Arc::new(s);
    let bump = {
        let (s, first) = (s.clone(), first.clone());
        tokio::spawn(async move {
            s.bump(&first, "eu-west", "eu-west/d", ChangeReason::Failover, None)
                .await
        })
    };
    // Pause point: etcd holds the new record (read past the link).
    let deadline = Instant::now() + WAIT;
    while writes_of(&mut r, key).await < 2 {
        assert!(Instant::now() < deadline, "the bump never reached etcd");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !bump.is_finished(),
        "the reply was lost: the bump cannot know yet"
    );
    link.cut();
    link.set(link::PASS);
    let second = bump
        .await
        .unwrap()
        .expect("settled as ours by reading back");
    assert_eq!(
        (second.value.epoch, second.value.primary.as_str()),
        (2, "eu-west")
    );
    assert_eq!(s.authority().await.unwrap(), Some(second.clone()));
    assert_eq!(writes_of(&mut r, key).await, 2, "written once");

    // 2. The request is lost before etcd sees it, then the connection
    //    breaks: the read back finds the record unchanged, and the identical
    //    transaction is sent again: applied exactly once.
    link.set(link::LOSE_REQUESTS);
    let bump = {
        let (s, second) = (s.clone(), second.clone());
        tokio::spawn(async move {
            s.bump(
                &second,
                "us-east",
                "us-east/d",
                ChangeReason::Failover,
                None,
            )
            .await
        })
    };
    // Pause point: the relay has swallowed the request.
    let deadline = Instant::now() + WAIT;
    while link.lost() == 0 {
        assert!(Instant::now() < deadline, "the bump was never sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(writes_of(&mut r, key).await, 2, "nothing reached etcd");
    link.cut();
    link.set(link::PASS);
    let third = bump.await.unwrap().expect("sent again and applied");
    assert_eq!(
        (third.value.epoch, third.value.primary.as_str()),
        (3, "us-east")
    );
    assert_eq!(s.authority().await.unwrap(), Some(third));
    assert_eq!(writes_of(&mut r, key).await, 3, "written once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_over_tls_with_client_certificates() {
    let _alone = crate::alone::alone(module_path!());
    use lifeboat_region::authority::EtcdTls;
    let c = EtcdCluster::start_tls(1).await;
    let pki = c.pki().unwrap().clone();
    assert!(c.endpoint(0).starts_with("https://"));
    let with = |tls: EtcdTls| {
        let mut s = settings(c.endpoints(), "/t-tls");
        s.request_timeout = Duration::from_secs(3);
        s.tls = Some(tls);
        s
    };
    let full = EtcdTls {
        ca: pki.ca.clone(),
        cert: Some(pki.client_cert.clone()),
        key: Some(pki.client_key.clone()),
    };

    // The CA and a client certificate: everything works.
    let s = AuthorityStore::connect(with(full.clone())).await.unwrap();
    let first = s.initialize("us-east", "us-east/d").await.unwrap();
    assert_eq!(s.authority().await.unwrap(), Some(first));

    // A CA that did not sign the members' certificate: refused as TLS, not
    // retried as if etcd were down.
    let wrong_ca = EtcdTls {
        ca: pki.other_ca.clone(),
        ..full.clone()
    };
    let s = AuthorityStore::connect(with(wrong_ca)).await.unwrap();
    let e = bounded("authority()", Duration::from_secs(30), s.authority())
        .await
        .unwrap_err();
    assert!(matches!(e, AuthorityError::Tls { .. }), "{e:?}");

    // No client certificate while etcd requires one: refused (with TLS 1.3
    // the server's alert comes after the handshake; seen as TLS here, but a
    // reset connection instead would read as Unavailable).
    let no_cert = EtcdTls {
        cert: None,
        key: None,
        ..full.clone()
    };
    let s = AuthorityStore::connect(with(no_cert)).await.unwrap();
    let e = bounded("authority()", Duration::from_secs(30), s.authority())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            AuthorityError::Tls { .. } | AuthorityError::Unavailable { .. }
        ),
        "{e:?}"
    );

    // A CA file that is not there: said at connect.
    let missing = EtcdTls {
        ca: pki.ca.with_file_name("absent.pem"),
        ..full
    };
    match AuthorityStore::connect(with(missing)).await {
        Err(AuthorityError::Tls { detail }) => assert!(detail.contains("absent.pem"), "{detail}"),
        r => panic!("want Tls, got {r:?}"),
    }
}

/// With etcd's auth on, the keeper works as a user whose role covers only
/// Lifeboat's prefix (etcd 3.4 lets any authenticated user ask for
/// `MoveLeader`), and a wrong password is an error naming the user, not
/// "no leader" (as it was: the daemon then logged nothing above debug).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_keeper_with_etcd_auth_moves_as_a_prefix_user_and_names_a_refusal() {
    let _alone = crate::alone::alone(module_path!());
    const RIGHT: &str = "keeper-pw-Lq40";
    const WRONG: &str = "keeper-wrong-Tz55";
    let c = EtcdCluster::start(3).await;
    let leader = c.wait_leader().await;
    let wanted = (0..3).find(|i| *i != leader).unwrap();
    enable_auth(&c, "root-pw-Vb02", "/t-keeper-auth/", RIGHT).await;
    let keeper = |password: &str| {
        let mut s = settings(c.endpoints(), "/t-keeper-auth");
        s.user = Some("lifeboat".into());
        s.password = Some(Zeroizing::new(password.to_string()));
        LeaderKeeper::new(s, format!("m{wanted}"))
    };

    // A wrong password: refused, named, never printed; nothing moved.
    let e = keeper(WRONG).check(true).await.unwrap_err();
    assert!(matches!(e, AuthorityError::Unauthorized { .. }), "{e:?}");
    assert!(!e.is_transient());
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(!text.contains(WRONG) && !text.contains(RIGHT), "{text}");
        assert!(text.contains("lifeboat"), "names the user: {text}");
    }
    assert_eq!(c.wait_leader().await, leader);

    // The right one: handed over, then placed.
    let mut keeper = keeper(RIGHT);
    hands_over_and_places(&mut keeper, &c, leader, wanted).await;
}
