//! The `rfc2136` provider against a real BIND 9 (`named` started by the
//! test, see support/bind.rs): answers read back with `dig`, the zone serial
//! as the witness of writes, a competing writer made deterministic with the
//! provider's pause point.

use crate::bind;

use std::collections::BTreeSet;
use std::time::Duration;

use bind::{Bind, KEY_NAME, UNGRANTED_KEY_NAME, ZONE};
use lifeboat_region::traffic::rfc2136::{Rfc2136Config, Rfc2136Provider, TsigKey};
use lifeboat_region::traffic::{Answer, RegionAnswer, TrafficError, TrafficProvider, Verdicts};
use tokio::sync::mpsc;

const US: &str = "192.0.2.10";
const EU: &str = "198.51.100.20";

fn name() -> String {
    format!("app.{ZONE}")
}

fn regions() -> Vec<RegionAnswer> {
    [("us-east", US), ("eu-west", EU)]
        .iter()
        .map(|(r, a)| RegionAnswer {
            region: r.to_string(),
            answer: Answer::parse(a).unwrap(),
        })
        .collect()
}

fn verdicts(list: &[(&str, bool)]) -> Verdicts {
    list.iter().map(|(r, h)| (r.to_string(), *h)).collect()
}

fn config(bind: &Bind, key_name: &str, secret: &str) -> Rfc2136Config {
    let key = TsigKey::from_base64(key_name, secret).unwrap();
    let mut config = Rfc2136Config::new(bind.server(), ZONE, &name(), key);
    config.backoff = Duration::from_millis(20);
    config
}

fn provider(bind: &Bind) -> Rfc2136Provider {
    Rfc2136Provider::new(config(bind, KEY_NAME, bind.secret()), regions()).unwrap()
}

fn addrs(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

fn set(list: &[&str]) -> BTreeSet<Answer> {
    list.iter().map(|a| Answer::parse(a).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_follow_health_and_fall_back_to_all() {
    let bind = Bind::start();
    let p = provider(&bind);
    assert!(
        bind.dig(&name(), "A").is_empty(),
        "the zone starts without the name"
    );
    assert!(p.current().await.unwrap().is_empty());

    // Dry run: planned, nothing written.
    let serial = bind.serial();
    let dry = p.apply(&verdicts(&[]), true).await.unwrap();
    assert!(!dry.written);
    assert_eq!(dry.changes.len(), 2, "{dry:?}");
    assert!(bind.dig(&name(), "A").is_empty());
    assert_eq!(bind.serial(), serial, "a dry run wrote to the zone");

    // Both healthy: both answered.
    let all = verdicts(&[("us-east", true), ("eu-west", true)]);
    let applied = p.apply(&all, false).await.unwrap();
    assert!(applied.written && applied.attempts == 1, "{applied:?}");
    assert_eq!(bind.dig(&name(), "A"), addrs(&[US, EU]));
    assert_eq!(p.current().await.unwrap(), set(&[US, EU]));

    // us-east unhealthy: dropped.
    let us_down = verdicts(&[("us-east", false), ("eu-west", true)]);
    let applied = p.apply(&us_down, false).await.unwrap();
    assert_eq!(applied.before, set(&[US, EU]));
    assert_eq!(bind.dig(&name(), "A"), addrs(&[EU]));

    // Back: returns.
    p.apply(&all, false).await.unwrap();
    assert_eq!(bind.dig(&name(), "A"), addrs(&[US, EU]));

    // eu-west unhealthy, then none healthy: all answered, and said so.
    p.apply(&verdicts(&[("us-east", true), ("eu-west", false)]), false)
        .await
        .unwrap();
    assert_eq!(bind.dig(&name(), "A"), addrs(&[US]));
    let none = verdicts(&[("us-east", false), ("eu-west", false)]);
    let applied = p.apply(&none, false).await.unwrap();
    assert!(applied.desired.all_unhealthy, "{applied:?}");
    assert_eq!(bind.dig(&name(), "A"), addrs(&[US, EU]));
    // Nothing else at the name was touched or created.
    assert!(bind.dig(&name(), "AAAA").is_empty());
    assert!(bind.dig(&name(), "CNAME").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_twice_sends_no_second_update() {
    let bind = Bind::start();
    let p = provider(&bind);
    let all = verdicts(&[]);
    let first = p.apply(&all, false).await.unwrap();
    assert!(first.written);
    let serial = bind.serial();
    assert!(serial > 1, "the first apply did not change the zone");

    let second = p.apply(&all, false).await.unwrap();
    assert!(!second.written, "{second:?}");
    assert!(second.changes.is_empty(), "{second:?}");
    assert_eq!(bind.serial(), serial, "the second apply wrote to the zone");
    assert_eq!(bind.dig(&name(), "A"), addrs(&[US, EU]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_key_is_a_clear_error_and_changes_nothing() {
    let bind = Bind::start();
    provider(&bind).apply(&verdicts(&[]), false).await.unwrap();
    let serial = bind.serial();
    let us_down = verdicts(&[("us-east", false)]);

    // The right key name with another secret: BADSIG.
    let wrong_secret = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZy0xMjM=";
    let p = Rfc2136Provider::new(config(&bind, KEY_NAME, wrong_secret), regions()).unwrap();
    let err = p.apply(&us_down, false).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, TrafficError::Credentials { .. }), "{err:?}");
    assert!(msg.contains("BADSIG") && msg.contains("secret"), "{msg}");
    assert!(msg.contains(KEY_NAME), "{msg}");
    assert!(!msg.contains(wrong_secret) && !format!("{err:?}").contains(wrong_secret));
    assert!(!format!("{p:?}").contains(wrong_secret));

    // A key name the server does not know: BADKEY.
    let p = Rfc2136Provider::new(config(&bind, "other-key", bind.secret()), regions()).unwrap();
    let err = p.apply(&us_down, false).await.unwrap_err();
    assert!(matches!(err, TrafficError::Credentials { .. }), "{err:?}");
    assert!(err.to_string().contains("BADKEY"), "{err}");

    // A key the server knows but does not let update the zone: REFUSED.
    let p =
        Rfc2136Provider::new(config(&bind, UNGRANTED_KEY_NAME, bind.secret()), regions()).unwrap();
    let err = p.apply(&us_down, false).await.unwrap_err();
    assert!(matches!(err, TrafficError::Refused { .. }), "{err:?}");
    assert!(err.to_string().contains("allow-update"), "{err}");

    assert_eq!(bind.serial(), serial, "a rejected UPDATE changed the zone");
    assert_eq!(bind.dig(&name(), "A"), addrs(&[US, EU]));
}

/// Two daemons with different views: ours reads {US, EU} and plans to drop
/// US; before it writes, the other daemon (it sees EU down) makes the set
/// {US}. Our planned UPDATE ("delete US") would, applied blindly, leave the
/// name with no answer at all. Its prerequisite ({US, EU} exactly) fails
/// instead, and we read again and plan from {US}.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_between_read_and_write_is_not_overwritten_blindly() {
    let bind = Bind::start();
    provider(&bind).apply(&verdicts(&[]), false).await.unwrap();
    assert_eq!(bind.dig(&name(), "A"), addrs(&[US, EU]));

    let mut ours = provider(&bind);
    let (pauses, mut paused) = mpsc::unbounded_channel();
    ours.pause_after_read(pauses);
    let task = tokio::spawn(async move {
        ours.apply(&verdicts(&[("us-east", false), ("eu-west", true)]), false)
            .await
    });

    let first = paused
        .recv()
        .await
        .expect("the provider reached its pause point");
    assert_eq!(first.attempt, 1);
    assert_eq!(first.read, set(&[US, EU]));
    let theirs = provider(&bind);
    let competing = theirs
        .apply(&verdicts(&[("us-east", true), ("eu-west", false)]), false)
        .await
        .unwrap();
    assert!(competing.written);
    assert_eq!(bind.dig(&name(), "A"), addrs(&[US]));
    let serial_before_ours = bind.serial();
    first.resume();

    // The prerequisite failed: the provider read again.
    let second = paused.recv().await.expect("the provider planned again");
    assert_eq!(second.attempt, 2);
    assert_eq!(second.read, set(&[US]));
    assert_eq!(
        bind.serial(),
        serial_before_ours,
        "the first UPDATE was applied"
    );
    second.resume();

    let applied = task.await.unwrap().unwrap();
    assert_eq!(applied.attempts, 2, "{applied:?}");
    assert_eq!(applied.before, set(&[US]));
    assert_eq!(bind.dig(&name(), "A"), addrs(&[EU]));
}

/// A person's edit (nsupdate) is seen by the next apply's read, which plans
/// from what the zone holds: a stray record is removed, nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_plans_from_what_the_server_holds() {
    let bind = Bind::start();
    let p = provider(&bind);
    p.apply(&verdicts(&[]), false).await.unwrap();
    bind.nsupdate(&format!("update add {} 60 A 203.0.113.7", name()));
    assert_eq!(bind.dig(&name(), "A"), addrs(&[US, EU, "203.0.113.7"]));
    assert_eq!(p.current().await.unwrap(), set(&[US, EU, "203.0.113.7"]));

    let applied = p.apply(&verdicts(&[]), false).await.unwrap();
    assert_eq!(applied.changes.len(), 1, "{applied:?}");
    assert_eq!(bind.dig(&name(), "A"), addrs(&[US, EU]));
}

/// One region answering with a target name: a CNAME.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_region_may_answer_with_a_cname() {
    let bind = Bind::start();
    let regions = vec![RegionAnswer {
        region: "us-east".into(),
        answer: Answer::parse("lb.us-east.example.com").unwrap(),
    }];
    let p = Rfc2136Provider::new(config(&bind, KEY_NAME, bind.secret()), regions).unwrap();
    p.apply(&verdicts(&[]), false).await.unwrap();
    assert_eq!(
        bind.dig(&name(), "CNAME"),
        vec!["lb.us-east.example.com.".to_string()]
    );
    assert_eq!(p.current().await.unwrap(), set(&["lb.us-east.example.com"]));
}

/// Nothing listening: retried with backoff, then a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_retried_then_reported() {
    let port = lifeboat_test_ports::reserve();
    let key = TsigKey::from_base64(KEY_NAME, "c2VjcmV0").unwrap();
    let mut config = Rfc2136Config::new(([127, 0, 0, 1], port).into(), ZONE, &name(), key);
    config.attempts = 3;
    config.backoff = Duration::from_millis(10);
    let p = Rfc2136Provider::new(config, regions()).unwrap();
    let err = p.apply(&verdicts(&[]), false).await.unwrap_err();
    match &err {
        TrafficError::Unreachable { attempts, .. } => assert_eq!(*attempts, 3),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("reachable"), "{err}");
}

/// Failover's DNS switch (issue 20): the name answers only the new primary
/// and the TXT record beside it carries the epoch, in one UPDATE; a stale
/// epoch is refused by what DNS holds, and a repeat writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_the_primary_publishes_the_epoch_and_refuses_stale_ones() {
    use lifeboat_region::traffic::rfc2136::{AuthorityTxt, authority_txt_name};
    let bind = Bind::start();
    let p = provider(&bind);
    let both = verdicts(&[("us-east", true), ("eu-west", true)]);
    p.apply(&both, false).await.unwrap();
    assert_eq!(p.authority_txt().await.unwrap(), None);
    let txt_name = authority_txt_name(&name());

    let serial = bind.serial();
    let out = p.switch_primary("eu-west", 2).await.unwrap();
    assert!(out.written && out.previous.is_none(), "{out:?}");
    assert_eq!(out.before, set(&[US, EU]));
    assert_eq!(bind.dig(&name(), "A"), addrs(&[EU]));
    assert_eq!(
        bind.dig(&txt_name, "TXT"),
        vec!["\"lifeboat epoch=2 primary=eu-west\"".to_string()]
    );
    // One UPDATE: the serial moved by exactly one.
    assert_eq!(bind.serial(), serial + 1);
    assert_eq!(
        p.authority_txt().await.unwrap(),
        Some(AuthorityTxt {
            epoch: 2,
            primary: "eu-west".into()
        })
    );

    // The same switch again: nothing sent.
    let again = p.switch_primary("eu-west", 2).await.unwrap();
    assert!(!again.written, "{again:?}");
    assert_eq!(bind.serial(), serial + 1);

    // A stale promoter (older epoch, or the same epoch for another region)
    // is refused and changes nothing.
    for (region, epoch) in [("us-east", 1), ("us-east", 2)] {
        let e = p.switch_primary(region, epoch).await.unwrap_err();
        assert!(
            matches!(e, TrafficError::Refused { .. }) && e.to_string().contains("stale"),
            "{e}"
        );
    }
    assert_eq!(bind.dig(&name(), "A"), addrs(&[EU]));
    assert_eq!(bind.serial(), serial + 1);

    // The next epoch moves it back, replacing the TXT record (one remains).
    p.switch_primary("us-east", 3).await.unwrap();
    assert_eq!(bind.dig(&name(), "A"), addrs(&[US]));
    assert_eq!(
        bind.dig(&txt_name, "TXT"),
        vec!["\"lifeboat epoch=3 primary=us-east\"".to_string()]
    );

    // A TXT record someone else wrote there is not overwritten.
    bind.nsupdate(&format!(
        "update delete {txt_name}. TXT\nupdate add {txt_name}. 60 TXT \"v=spf1 -all\"\n"
    ));
    let e = p.switch_primary("eu-west", 4).await.unwrap_err();
    assert!(e.to_string().contains("did not write"), "{e}");
    assert_eq!(bind.dig(&name(), "A"), addrs(&[US]));
}
