//! The authority's epoch in Route 53 (issue 20), the `route53` twin of
//! `rfc2136`'s switch: the TXT record `_lifeboat-authority.<name>` holding
//! `lifeboat epoch=E primary=R`, and the steered name's weighted records
//! set so that only the new primary's has weight (every other region's
//! weight 0: Route 53 answers a weight-0 record only when every record is
//! 0 or unhealthy).
//!
//! Route 53 has no prerequisites (no compare-and-swap on record values), so
//! the refusal of a stale epoch is a read-then-write: a switch whose epoch
//! is below the TXT's is refused before anything is written. Two writers
//! of one epoch cannot exist (the epoch is bumped by compare-and-swap in
//! etcd, and only the change's driver writes DNS); a stale driver of an
//! older epoch racing a newer one can at worst land its write after the
//! newer one's read, which the newer driver's verification step then sees
//! (it reads the TXT back and fails, and a resume writes again). The TXT is
//! written first and the weights second, each sent through the provider's one
//! batch-and-wait path (`send_changes`, waited for until `INSYNC`), so
//! a driver killed between them leaves a state its resume completes.

use aws_sdk_route53::types::{
    Change as SdkChange, ChangeAction, ResourceRecord, ResourceRecordSet, RrType,
};
use serde::Serialize;

use super::{Route53Error, Route53Provider, WeightedRecord};
use crate::traffic::rfc2136::{AuthorityTxt, authority_txt_name};

/// TTL of the TXT record: short, it changes at every failover.
pub const TXT_TTL: i64 = 30;

/// What [`Route53Provider::switch_primary`] did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Route53Switch {
    /// The TXT record before (`None`: there was none).
    pub previous: Option<AuthorityTxt>,
    /// Whether the TXT record was written (false: it said so already).
    pub txt_written: bool,
    /// The record changes sent (empty: the weights were so already).
    pub records: Vec<String>,
}

/// The steered records with only `to`'s carrying weight (pure): every
/// other region's record gets weight 0; `to`'s keeps its configured weight,
/// or 1 when that is 0 (a region configured out of the answers that is
/// promoted must answer).
pub fn failover_weights(desired: &[WeightedRecord], to: &str) -> Vec<WeightedRecord> {
    desired
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if r.set_identifier == to {
                r.weight = r.weight.max(1);
            } else {
                r.weight = 0;
            }
            r
        })
        .collect()
}

/// The steered records once regions are back in the answers (pure; a
/// rejoin's `restore_dns`): the primary's and those of `answering` keep
/// their configured weight (the primary at least 1, as in
/// [`failover_weights`]), every other region's weight is 0. With every
/// steered region answering this is the configured active-active split.
pub fn restored_weights(
    desired: &[WeightedRecord],
    primary: &str,
    answering: &[String],
) -> Vec<WeightedRecord> {
    desired
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if r.set_identifier == primary {
                r.weight = r.weight.max(1);
            } else if !answering.contains(&r.set_identifier) {
                r.weight = 0;
            }
            r
        })
        .collect()
}

/// Whether a switch to `to` at `epoch` may go ahead given the TXT record
/// `published` (pure): `Ok(true)` when the TXT must be written, `Ok(false)`
/// when it says so already, `Err` naming why when it publishes a newer
/// epoch or the same epoch for another region.
pub fn txt_decision(
    published: Option<&AuthorityTxt>,
    to: &str,
    epoch: u64,
) -> Result<bool, String> {
    match published {
        None => Ok(true),
        Some(t) if t.epoch > epoch => Err(format!(
            "Route 53 publishes epoch {} (primary {}), newer than this change's epoch {epoch}: \
             a later change of primary has happened; see `lifeboat region authority`",
            t.epoch, t.primary
        )),
        Some(t) if t.epoch == epoch && t.primary != to => Err(format!(
            "Route 53 publishes epoch {epoch} for {}, not {to}: the record was written by \
             something else; see `lifeboat region authority`",
            t.primary
        )),
        Some(t) if t.epoch == epoch => Ok(false),
        Some(_) => Ok(true),
    }
}

impl Route53Provider {
    /// The TXT record beside steered name `name`, parsed (`None`: absent;
    /// a TXT that is not Lifeboat's is an error, never overwritten).
    pub async fn authority_txt(&self, name: &str) -> Result<Option<AuthorityTxt>, Route53Error> {
        let owner = format!("{}.", authority_txt_name(name));
        let out = self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(&self.zone_id)
            .start_record_name(&owner)
            .start_record_type(RrType::Txt)
            .max_items(1)
            .send()
            .await
            .map_err(|e| self.sdk_err("ListResourceRecordSets", e))?;
        let Some(set) = out.resource_record_sets().first() else {
            return Ok(None);
        };
        if !same_name(set.name(), &owner) || set.r#type() != &RrType::Txt {
            return Ok(None);
        }
        let text: String = set
            .resource_records()
            .iter()
            .map(|r| r.value().trim_matches('"').to_string())
            .collect::<Vec<_>>()
            .join("");
        AuthorityTxt::parse(&text).map(Some).ok_or_else(|| {
            Route53Error::Unexpected(format!(
                "{owner} TXT holds {text:?}, not a Lifeboat authority record; remove it or \
                 choose another steered name (Lifeboat does not overwrite it)"
            ))
        })
    }

    /// Makes Route 53 publish `to` as the primary of `epoch`: the TXT record
    /// first, then the weights ([`failover_weights`] of `desired`, the
    /// configured steered records); both waited for until `INSYNC`.
    /// Refused before any write when the TXT publishes a newer epoch.
    pub async fn switch_primary(
        &self,
        desired: &[WeightedRecord],
        name: &str,
        to: &str,
        epoch: u64,
    ) -> Result<Route53Switch, Route53Error> {
        if !desired.iter().any(|r| r.set_identifier == to) {
            return Err(Route53Error::Unexpected(format!(
                "no steered record of {name} belongs to region {to}"
            )));
        }
        let previous = self.authority_txt(name).await?;
        let write_txt =
            txt_decision(previous.as_ref(), to, epoch).map_err(Route53Error::Unexpected)?;
        if write_txt {
            self.upsert_txt(
                name,
                &AuthorityTxt {
                    epoch,
                    primary: to.to_string(),
                },
            )
            .await?;
        }
        let weights = failover_weights(desired, to);
        let report = self.apply(&weights, false).await.map_err(|e| e.cause)?;
        Ok(Route53Switch {
            previous,
            txt_written: write_txt,
            records: report.done,
        })
    }

    /// Puts the regions of `answering` back into the steered name's
    /// answers with their configured weights ([`restored_weights`]) once
    /// Route 53 publishes `primary` at `epoch` (the failover's DNS step
    /// done); refused before any write when the TXT says otherwise (an
    /// older epoch: the switch has not completed; a newer one: a later
    /// change happened). Returns the record changes sent (empty: the
    /// weights were so already).
    pub async fn restore_weights(
        &self,
        desired: &[WeightedRecord],
        name: &str,
        primary: &str,
        epoch: u64,
        answering: &[String],
    ) -> Result<Vec<String>, Route53Error> {
        match self.authority_txt(name).await? {
            Some(t) if t.epoch == epoch && t.primary == primary => {}
            published => {
                let says = published.map_or_else(
                    || "no authority TXT record".to_string(),
                    |t| format!("epoch {} for {}", t.epoch, t.primary),
                );
                return Err(Route53Error::Unexpected(format!(
                    "Route 53 publishes {says}, not epoch {epoch} for {primary}: the weights are \
                     restored only under the epoch DNS publishes (run `lifeboat region failover \
                     --to {primary}` to finish a switch; see `lifeboat region authority`)"
                )));
            }
        }
        let weights = restored_weights(desired, primary, answering);
        let report = self.apply(&weights, false).await.map_err(|e| e.cause)?;
        Ok(report.done)
    }

    async fn upsert_txt(&self, name: &str, txt: &AuthorityTxt) -> Result<(), Route53Error> {
        let owner = format!("{}.", authority_txt_name(name));
        let unexpected = |what: &str, e: &dyn std::fmt::Display| {
            Route53Error::Unexpected(format!("building the {what}: {e}"))
        };
        let record = ResourceRecord::builder()
            .value(format!("\"{}\"", txt.text()))
            .build()
            .map_err(|e| unexpected("TXT value", &e))?;
        let set = ResourceRecordSet::builder()
            .name(&owner)
            .r#type(RrType::Txt)
            .ttl(TXT_TTL)
            .resource_records(record)
            .build()
            .map_err(|e| unexpected("TXT record set", &e))?;
        let change = SdkChange::builder()
            .action(ChangeAction::Upsert)
            .resource_record_set(set)
            .build()
            .map_err(|e| unexpected("TXT change", &e))?;
        self.send_changes(
            &self.zone_id,
            &format!("lifeboat authority epoch {}", txt.epoch),
            vec![change],
            |_| {},
        )
        .await
        .map(|_| ())
    }
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::route53::RecordType;

    #[test]
    fn only_the_new_primary_keeps_weight() {
        let mut a =
            WeightedRecord::new("app.example.com", RecordType::A, "us-east", &["192.0.2.10"]);
        a.weight = 70;
        let mut b =
            WeightedRecord::new("app.example.com", RecordType::A, "eu-west", &["192.0.2.20"]);
        b.weight = 0;
        let w = failover_weights(&[a.clone(), b.clone()], "eu-west");
        assert_eq!((w[0].weight, w[1].weight), (0, 1));
        let w = failover_weights(&[a, b], "us-east");
        assert_eq!((w[0].weight, w[1].weight), (70, 0));
        assert_eq!(w[0].values, vec!["192.0.2.10".to_string()]);
    }

    #[test]
    fn a_rejoined_region_gets_its_configured_weight_back() {
        let rec = |set: &str, weight: u8| {
            let mut r = WeightedRecord::new("app.example.com", RecordType::A, set, &["192.0.2.1"]);
            r.weight = weight;
            r
        };
        let desired = [rec("us-east", 70), rec("eu-west", 30), rec("ap-south", 0)];
        let weights = |primary: &str, answering: &[&str]| -> Vec<u8> {
            let answering: Vec<String> = answering.iter().map(|s| s.to_string()).collect();
            restored_weights(&desired, primary, &answering)
                .iter()
                .map(|r| r.weight)
                .collect()
        };
        // Both back: the configured split (a region configured at 0 stays 0).
        assert_eq!(
            weights("eu-west", &["us-east", "eu-west", "ap-south"]),
            [70, 30, 0]
        );
        // Only the primary eligible: the failover's weights.
        assert_eq!(weights("eu-west", &[]), [0, 30, 0]);
        assert_eq!(weights("eu-west", &["eu-west"]), [0, 30, 0]);
        // The primary answers even when configured at 0.
        assert_eq!(weights("ap-south", &["us-east"]), [70, 0, 1]);
    }

    #[test]
    fn a_newer_or_foreign_epoch_refuses_the_switch() {
        let txt = |epoch, primary: &str| AuthorityTxt {
            epoch,
            primary: primary.into(),
        };
        // (published, to, epoch, expected: Ok(write?) or Err substring)
        type Case<'a> = (Option<AuthorityTxt>, &'a str, u64, Result<bool, &'a str>);
        let cases: Vec<Case> = vec![
            (None, "eu-west", 2, Ok(true)),
            (Some(txt(1, "us-east")), "eu-west", 2, Ok(true)),
            (Some(txt(2, "eu-west")), "eu-west", 2, Ok(false)),
            (
                Some(txt(3, "us-east")),
                "eu-west",
                2,
                Err("newer than this change's epoch 2"),
            ),
            (
                Some(txt(2, "us-east")),
                "eu-west",
                2,
                Err("publishes epoch 2 for us-east"),
            ),
        ];
        for (i, (published, to, epoch, want)) in cases.into_iter().enumerate() {
            let got = txt_decision(published.as_ref(), to, epoch);
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "case {i}"),
                (Err(g), Err(w)) => assert!(g.contains(w), "case {i}: {g}"),
                (g, w) => panic!("case {i}: got {g:?}, want {w:?}"),
            }
        }
    }
}
