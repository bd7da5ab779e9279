//! Health verdicts published through the repository: each vantage point
//! (a region's daemon) stores its newest view as one sealed document,
//! `serve/verdicts/<observer in hex>`, replaced on every publish; readers
//! (`region status`, `region traffic apply`, every daemon) read them all.
//!
//! `serve/` is the prefix the daemon's lease lives under: its objects are
//! rewritten by design, so append-only mode allows replacing them
//! (`lifeboat_repo::storage::append_only::MUTABLE_PREFIXES`) and check and
//! prune leave them alone. The observer's name is hex-encoded in the key so
//! that any name (`us-east`, `host/1`) makes one flat object name; the name
//! itself is inside the document.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use lifeboat_region::health::{Consensus, RegionVerdict, Verdict, consensus, region_verdict};
use lifeboat_repo::Repository;
use lifeboat_repo::format::{open_doc, seal_doc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where the views live in the repository.
pub const PREFIX: &str = "serve/verdicts/";
/// The document kind sealed into each view.
const KIND: &str = "verdicts";
const VERSION: u64 = 1;

/// One vantage point's newest view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObserverView {
    pub observer: String,
    pub published_at: DateTime<Utc>,
    pub verdicts: Vec<Verdict>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    version: u64,
    observer: String,
    published_at: DateTime<Utc>,
    verdicts: Vec<Verdict>,
}

/// The object key of `observer`'s view.
pub fn key_of(observer: &str) -> String {
    let hex: String = observer.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{PREFIX}{hex}")
}

/// Stores `verdicts` as `observer`'s newest view (replacing its previous
/// one), stamped now. Verdicts of other observers in `verdicts` are stored
/// as given: the caller publishes what it observed.
pub async fn publish(repo: &Repository, observer: &str, verdicts: &[Verdict]) -> Result<()> {
    publish_at(repo, observer, verdicts, Utc::now()).await
}

/// [`publish`] stamped with `published_at` (tests: stale views).
pub async fn publish_at(
    repo: &Repository,
    observer: &str,
    verdicts: &[Verdict],
    published_at: DateTime<Utc>,
) -> Result<()> {
    if observer.is_empty() {
        return Err(Error::usage(
            "a vantage point publishing health verdicts needs a name (its region or host)",
        ));
    }
    let doc = Doc {
        version: VERSION,
        observer: observer.to_string(),
        published_at,
        verdicts: verdicts.to_vec(),
    };
    let key = key_of(observer);
    let bytes = seal_doc(repo.key(), KIND, &doc)?;
    repo.storage()
        .put(&key, Bytes::from(bytes))
        .await
        .map_err(|e| {
            Error::from(e).context(format!("publishing the health verdicts of {observer}"))
        })
}

/// Every vantage point's newest view, sorted by observer. A view that
/// vanished between listing and reading (replaced under a rename, deleted)
/// is skipped; one that cannot be opened is an error (wrong key: another
/// repository's object; corrupt).
pub async fn read_all(repo: &Repository) -> Result<Vec<ObserverView>> {
    let listed = repo.storage().list(PREFIX).await?;
    let mut views = Vec::with_capacity(listed.len());
    for o in listed {
        let bytes = match repo.storage().get(&o.key).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        let doc: Doc = open_doc(repo.key(), KIND, &o.key, &bytes)?;
        views.push(ObserverView {
            observer: doc.observer,
            published_at: doc.published_at,
            verdicts: doc.verdicts,
        });
    }
    views.sort_by(|a, b| a.observer.cmp(&b.observer));
    Ok(views)
}

/// Each vantage point's verdict on each region, from its view (pure).
pub fn region_verdicts(views: &[ObserverView], regions: &[String]) -> Vec<RegionVerdict> {
    let mut out = Vec::new();
    for v in views {
        for r in regions {
            // A view that says nothing about a region has no verdict on it.
            if v.verdicts.iter().any(|x| &x.region == r) {
                out.push(region_verdict(r, &v.observer, &v.verdicts));
            }
        }
    }
    out
}

/// Per region, the view across the vantage points whose verdicts are at
/// most `max_age` old at `now` (Route 53's consensus: see
/// [`lifeboat_region::health::consensus`]). Pure.
pub fn consensus_by_region(
    views: &[ObserverView],
    regions: &[String],
    now: DateTime<Utc>,
    max_age: Duration,
) -> BTreeMap<String, Consensus> {
    let rv = region_verdicts(views, regions);
    regions
        .iter()
        .map(|r| (r.clone(), consensus(r, &rv, now, max_age)))
        .collect()
}

/// `published` with `own` in place of what it holds for the same observer:
/// a daemon steers by its view from memory, which is newer than the one it
/// last published (and than the one it could not publish).
pub fn with_own(published: Vec<ObserverView>, own: ObserverView) -> Vec<ObserverView> {
    let mut views: Vec<ObserverView> = published
        .into_iter()
        .filter(|v| v.observer != own.observer)
        .collect();
    views.push(own);
    views
}

/// The one steering decision, for `region traffic apply|status`, the
/// daemon's RFC 2136 loop and readiness alike: per region the consensus of
/// the fresh views ([`consensus_by_region`], Route 53's rule: healthy when
/// more than 18 % of the fresh vantage points say so) and the verdicts the
/// answer set is made from ([`traffic_verdicts`]). Pure.
pub fn steering(
    views: &[ObserverView],
    regions: &[String],
    now: DateTime<Utc>,
    max_age: Duration,
) -> (
    lifeboat_region::traffic::Verdicts,
    BTreeMap<String, Consensus>,
) {
    let by_region = consensus_by_region(views, regions, now, max_age);
    (traffic_verdicts(&by_region), by_region)
}

/// The traffic verdicts from the consensus: a region with a fresh consensus
/// gets it; one without (no fresh view) is left out, which the answer-set
/// rule reads as healthy (as Route 53 treats a new health check). Pure.
pub fn traffic_verdicts(
    by_region: &BTreeMap<String, Consensus>,
) -> lifeboat_region::traffic::Verdicts {
    by_region
        .iter()
        .filter_map(|(r, c)| c.healthy.map(|h| (r.clone(), h)))
        .collect()
}

#[cfg(test)]
// Table tests: each row is a tuple of inputs and expected problems, spelt out in place.
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    fn verdict(region: &str, check: &str, observer: &str, healthy: bool, at: i64) -> Verdict {
        Verdict {
            region: region.into(),
            check: check.into(),
            healthy,
            since: t(0),
            observed_at: t(at),
            observer: observer.into(),
            last_outcome: None,
        }
    }

    fn view(observer: &str, verdicts: Vec<Verdict>) -> ObserverView {
        ObserverView {
            observer: observer.into(),
            published_at: t(100),
            verdicts,
        }
    }

    /// A daemon's own view from memory replaces its published one; with
    /// three vantage points, one healthy view keeps the region in (Route
    /// 53's 18 %), three unhealthy ones take it out.
    #[test]
    fn steering_with_own_view() {
        let regions = vec!["eu-west".to_string()];
        let max_age = Duration::from_secs(60);
        let published = vec![
            view(
                "us-east",
                vec![verdict("eu-west", "gw", "us-east", false, 99)],
            ),
            view(
                "witness",
                vec![verdict("eu-west", "gw", "witness", false, 95)],
            ),
            view("ap", vec![verdict("eu-west", "gw", "ap", false, 95)]),
        ];
        let own = |healthy| {
            view(
                "us-east",
                vec![verdict("eu-west", "gw", "us-east", healthy, 100)],
            )
        };
        let table = [(true, true), (false, false)];
        for (own_healthy, want) in table {
            let views = with_own(published.clone(), own(own_healthy));
            assert_eq!(views.len(), 3, "{views:?}");
            let (got, by_region) = steering(&views, &regions, t(100), max_age);
            assert_eq!(got.get("eu-west"), Some(&want), "{by_region:?}");
        }
    }

    #[test]
    fn key_is_flat_and_distinct() {
        assert_eq!(key_of("us-east"), "serve/verdicts/75732d65617374");
        assert_ne!(key_of("a/b"), key_of("a_b"));
        assert!(!key_of("a/b").trim_start_matches(PREFIX).contains('/'));
    }

    /// (views, expected traffic verdicts) at t(100), fresh within 60 s.
    #[test]
    fn traffic_verdicts_table() {
        let regions = vec!["us-east".to_string(), "eu-west".to_string()];
        let table: Vec<(Vec<ObserverView>, Vec<(&str, bool)>)> = vec![
            // nobody published: no verdicts (all healthy by the rule)
            (vec![], vec![]),
            // one observer, one region down
            (
                vec![view(
                    "us-east",
                    vec![
                        verdict("us-east", "gw", "us-east", true, 90),
                        verdict("eu-west", "gw", "us-east", false, 90),
                    ],
                )],
                vec![("eu-west", false), ("us-east", true)],
            ),
            // two observers disagree: one healthy view of two (50 % > 18 %) is healthy
            (
                vec![
                    view("a", vec![verdict("eu-west", "gw", "a", false, 90)]),
                    view("b", vec![verdict("eu-west", "gw", "b", true, 90)]),
                ],
                vec![("eu-west", true)],
            ),
            // a stale view is not counted: no verdict on the region
            (
                vec![view("a", vec![verdict("eu-west", "gw", "a", false, 10)])],
                vec![],
            ),
            // one failing check of two makes the region unhealthy for that observer
            (
                vec![view(
                    "a",
                    vec![
                        verdict("us-east", "gw", "a", true, 95),
                        verdict("us-east", "db", "a", false, 95),
                    ],
                )],
                vec![("us-east", false)],
            ),
        ];
        for (views, want) in table {
            let (got, _) = steering(&views, &regions, t(100), Duration::from_secs(60));
            let want: lifeboat_region::traffic::Verdicts =
                want.into_iter().map(|(r, h)| (r.to_string(), h)).collect();
            assert_eq!(got, want, "views: {views:?}");
        }
    }
}
