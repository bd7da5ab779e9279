//! Steering by the authority (docs/failover.md, "Rejoin"): which regions may
//! be in the steered name's answers under the authority in etcd. Pure
//! decisions ([`eligible`], [`follow_authority`]) over what the servers say
//! ([`server_facts`]); used by the daemon's steering loop
//! (`daemon/regions/steer.rs`), `region rejoin` and `region rehearse`.

use std::collections::BTreeMap;

use lifeboat_region::promotion::rejoin::has_replayed;
use lifeboat_region::traffic::Verdicts;
use serde::Serialize;

use crate::config::Config;
use crate::context::Ctx;

/// The authority as steering uses it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuthorityView {
    pub primary: String,
    pub epoch: u64,
}

/// What a region's server says, for the authority rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ServerFacts {
    /// Not in recovery; `epoch`: its highest `lifeboat.authority` row.
    Primary { epoch: Option<u64> },
    /// In recovery; `epoch`: the highest row it replayed.
    Standby { epoch: Option<u64> },
    /// Not reached.
    Unknown,
}

/// What a server said, for the log.
pub fn describe(f: Option<&ServerFacts>) -> String {
    let e = |e: &Option<u64>| e.map(|e| e.to_string()).unwrap_or_else(|| "none".into());
    match f {
        Some(ServerFacts::Primary { epoch }) => {
            format!("a writable primary, newest epoch row {}", e(epoch))
        }
        Some(ServerFacts::Standby { epoch }) => {
            format!("a standby that replayed epoch row {}", e(epoch))
        }
        Some(ServerFacts::Unknown) | None => "not reached".into(),
    }
}

/// Whether `region` may be answered under `authority` (health aside): it is
/// the primary, or its server is a standby that replayed the epoch.
pub fn eligible(region: &str, authority: &AuthorityView, server: Option<&ServerFacts>) -> bool {
    region == authority.primary
        || matches!(server, Some(ServerFacts::Standby { epoch }) if has_replayed(*epoch, authority.epoch))
}

/// The health verdicts narrowed by the authority, one verdict per steered
/// region (pure): healthy (absent from `health` counts as healthy, as in
/// the answer-set rule) and [`eligible`]. When no eligible region is
/// healthy, the eligible ones are answered anyway (Route 53's "answer all
/// when none is healthy", kept to the regions that may take traffic: a
/// stale old primary is never answered). `None` when no steered region is
/// eligible: the caller leaves DNS as it is.
pub fn follow_authority(
    health: &Verdicts,
    steered: &[String],
    authority: &AuthorityView,
    servers: &BTreeMap<String, ServerFacts>,
) -> Option<Verdicts> {
    let ok: Vec<(&String, bool, bool)> = steered
        .iter()
        .map(|r| {
            (
                r,
                eligible(r, authority, servers.get(r)),
                health.get(r).copied().unwrap_or(true),
            )
        })
        .collect();
    if !ok.iter().any(|(_, e, _)| *e) {
        return None;
    }
    let any_healthy = ok.iter().any(|(_, e, h)| *e && *h);
    Some(
        ok.into_iter()
            .map(|(r, e, h)| (r.clone(), e && (h || !any_healthy)))
            .collect(),
    )
}

/// How long one server's facts may take: a server whose packets vanish (a
/// partitioned region) is `Unknown` after this, not after its connect
/// timeout (10 s), which would make the facts older than the authority read
/// beside them.
const FACTS_BOUND: std::time::Duration = std::time::Duration::from_secs(2);

/// What each region's server says now (role, highest epoch row), all read
/// at once, each once and within [`FACTS_BOUND`]; a server not reached in
/// time is `Unknown`.
pub async fn server_facts(
    ctx: &Ctx,
    config: &Config,
    regions: &[String],
) -> BTreeMap<String, ServerFacts> {
    let mut set = tokio::task::JoinSet::new();
    let mut out = BTreeMap::new();
    for r in regions {
        let conn = match config.region(r) {
            Ok(rc) => {
                crate::postgres::source::connection(
                    ctx,
                    &rc.postgres.url,
                    rc.postgres.password.as_ref(),
                )
                .await
            }
            Err(e) => Err(crate::error::usage(e.to_string())),
        };
        match conn {
            Ok(conn) => {
                let r = r.clone();
                set.spawn(async move {
                    let facts = tokio::time::timeout(FACTS_BOUND, read_facts(&conn))
                        .await
                        .unwrap_or(ServerFacts::Unknown);
                    (r, facts)
                });
            }
            Err(_) => {
                out.insert(r.clone(), ServerFacts::Unknown);
            }
        }
    }
    while let Some(done) = set.join_next().await {
        if let Ok((r, facts)) = done {
            out.insert(r, facts);
        }
    }
    for r in regions {
        out.entry(r.clone()).or_insert(ServerFacts::Unknown);
    }
    out
}

/// The highest epoch a server shows above `authority`'s (pure): an
/// authority read older than a server's `lifeboat.authority` row (read
/// before a failover's bump, the server promoted since) must not steer.
pub fn newer_epoch_seen(
    authority: &AuthorityView,
    servers: &BTreeMap<String, ServerFacts>,
) -> Option<u64> {
    servers
        .values()
        .filter_map(|f| match f {
            ServerFacts::Primary { epoch } | ServerFacts::Standby { epoch } => *epoch,
            ServerFacts::Unknown => None,
        })
        .filter(|e| *e > authority.epoch)
        .max()
}

async fn read_facts(conn: &lifeboat_postgres::conn::ConnConfig) -> ServerFacts {
    use lifeboat_region::replication::observe::connect;
    use lifeboat_region::replication::retry::Retry;
    let Ok(c) = connect(conn, Retry::ONCE).await else {
        return ServerFacts::Unknown;
    };
    let Ok(row) = c.query_one("SELECT pg_is_in_recovery()", &[]).await else {
        return ServerFacts::Unknown;
    };
    let in_recovery: bool = row.get(0);
    let epoch = match connect(&lifeboat_region::heartbeat::lifeboat_db(conn), Retry::ONCE).await {
        Ok(lb) => lifeboat_region::promotion::authority_row::read_epoch(&lb)
            .await
            .ok()
            .flatten()
            .map(|r| r.epoch),
        Err(_) => None,
    };
    if in_recovery {
        ServerFacts::Standby { epoch }
    } else {
        ServerFacts::Primary { epoch }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_ahead_of_the_authority_read_is_seen() {
        let a = AuthorityView {
            primary: "us-east".into(),
            epoch: 1,
        };
        let facts = |v: &[(&str, ServerFacts)]| -> BTreeMap<String, ServerFacts> {
            v.iter().map(|(r, f)| (r.to_string(), *f)).collect()
        };
        let promoted = facts(&[
            ("us-east", ServerFacts::Unknown),
            ("eu-west", ServerFacts::Primary { epoch: Some(2) }),
        ]);
        assert_eq!(newer_epoch_seen(&a, &promoted), Some(2));
        let same = facts(&[
            ("us-east", ServerFacts::Primary { epoch: Some(1) }),
            ("eu-west", ServerFacts::Standby { epoch: Some(1) }),
        ]);
        assert_eq!(newer_epoch_seen(&a, &same), None);
        let none = facts(&[("eu-west", ServerFacts::Standby { epoch: None })]);
        assert_eq!(newer_epoch_seen(&a, &none), None);
    }

    #[test]
    fn follow_authority_table() {
        let steered = vec!["us-east".to_string(), "eu-west".to_string()];
        let auth = AuthorityView {
            primary: "eu-west".into(),
            epoch: 3,
        };
        let sb = |e: Option<u64>| ServerFacts::Standby { epoch: e };
        let pr = |e: Option<u64>| ServerFacts::Primary { epoch: e };
        type Row = (
            &'static str,
            Vec<(&'static str, bool)>,
            Vec<(&'static str, ServerFacts)>,
            Option<Vec<(&'static str, bool)>>,
        );
        let rows: Vec<Row> = vec![
            (
                "old primary back as a writable primary at epoch 2: left out though healthy",
                vec![],
                vec![("us-east", pr(Some(2))), ("eu-west", pr(Some(3)))],
                Some(vec![("eu-west", true), ("us-east", false)]),
            ),
            (
                "old primary a standby that has not replayed epoch 3: left out",
                vec![],
                vec![("us-east", sb(Some(2))), ("eu-west", pr(Some(3)))],
                Some(vec![("eu-west", true), ("us-east", false)]),
            ),
            (
                "rejoined (replayed epoch 3): answered again",
                vec![],
                vec![("us-east", sb(Some(3))), ("eu-west", pr(Some(3)))],
                Some(vec![("eu-west", true), ("us-east", true)]),
            ),
            (
                "rejoined but unhealthy: left out by health",
                vec![("us-east", false)],
                vec![("us-east", sb(Some(3))), ("eu-west", pr(Some(3)))],
                Some(vec![("eu-west", true), ("us-east", false)]),
            ),
            (
                "old region unreachable: left out",
                vec![],
                vec![("us-east", ServerFacts::Unknown), ("eu-west", pr(Some(3)))],
                Some(vec![("eu-west", true), ("us-east", false)]),
            ),
            (
                "the primary unhealthy, the stale region healthy: the primary still answered, never the stale one",
                vec![("eu-west", false), ("us-east", true)],
                vec![("us-east", pr(Some(2))), ("eu-west", ServerFacts::Unknown)],
                Some(vec![("eu-west", true), ("us-east", false)]),
            ),
        ];
        for (what, health, servers, want) in rows {
            let health: Verdicts = health
                .into_iter()
                .map(|(r, h)| (r.to_string(), h))
                .collect();
            let servers: BTreeMap<String, ServerFacts> = servers
                .into_iter()
                .map(|(r, f)| (r.to_string(), f))
                .collect();
            let want: Option<Verdicts> =
                want.map(|w| w.into_iter().map(|(r, h)| (r.to_string(), h)).collect());
            assert_eq!(
                follow_authority(&health, &steered, &auth, &servers),
                want,
                "{what}"
            );
        }
        // Epoch 1 (no promotion yet, no row anywhere): a standby is answered.
        let first = AuthorityView {
            primary: "us-east".into(),
            epoch: 1,
        };
        let servers = BTreeMap::from([("eu-west".to_string(), sb(None))]);
        assert_eq!(
            follow_authority(&Verdicts::new(), &steered, &first, &servers),
            Some(Verdicts::from([
                ("eu-west".to_string(), true),
                ("us-east".to_string(), true)
            ]))
        );
        // A primary not among the steered regions and no eligible standby.
        let elsewhere = AuthorityView {
            primary: "ap-south".into(),
            epoch: 4,
        };
        assert_eq!(
            follow_authority(&Verdicts::new(), &steered, &elsewhere, &BTreeMap::new()),
            None
        );
    }
}
