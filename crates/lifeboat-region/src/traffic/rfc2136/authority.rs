//! The authority's epoch in DNS (issue 20): a TXT record beside the steered
//! name, `_lifeboat-authority.<name>`, holding `lifeboat epoch=E primary=R`,
//! and the switch of the steered name to the new primary's answer together
//! with that record in ONE UPDATE. Its prerequisites are the answer set and
//! the TXT record exactly as read, so:
//!
//! - a promoter whose epoch is not newer than the TXT's is refused before
//!   it sends anything (a stale primary is refused by DNS too, not only by
//!   etcd);
//! - two promoters racing cannot both land: the second one's prerequisite
//!   fails at the server, it reads again, and finds a newer or equal epoch.

use hickory_proto::op::{Message, UpdateMessage};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use serde::Serialize;

use super::{PROVIDER, Rfc2136Provider, fqdn, update_message};
use crate::traffic::{Answer, AnswerSet, TrafficError, changes};

/// The TXT record's owner for steered name `name`.
pub fn authority_txt_name(name: &str) -> String {
    format!("_lifeboat-authority.{}", name.trim_end_matches('.'))
}

/// What the TXT record says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuthorityTxt {
    pub epoch: u64,
    pub primary: String,
}

impl AuthorityTxt {
    pub fn text(&self) -> String {
        format!("lifeboat epoch={} primary={}", self.epoch, self.primary)
    }

    /// Parses [`AuthorityTxt::text`]'s form; anything else is `None`.
    pub fn parse(text: &str) -> Option<AuthorityTxt> {
        let mut words = text.split_whitespace();
        if words.next()? != "lifeboat" {
            return None;
        }
        let epoch = words.next()?.strip_prefix("epoch=")?.parse().ok()?;
        let primary = words.next()?.strip_prefix("primary=")?.to_string();
        if primary.is_empty() || words.next().is_some() {
            return None;
        }
        Some(AuthorityTxt { epoch, primary })
    }
}

/// What [`Rfc2136Provider::switch_primary`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SwitchOutcome {
    /// The steered name's answers before.
    pub before: AnswerSet,
    /// The TXT record before (`None`: there was none).
    pub previous: Option<AuthorityTxt>,
    /// Whether an UPDATE was sent (false: DNS already said so).
    pub written: bool,
}

/// The TXT records at the owner, as read (their raw data, for the
/// value-dependent prerequisite) and as parsed.
struct ReadTxt {
    records: Vec<TXT>,
    parsed: Option<AuthorityTxt>,
}

fn txt_string(t: &TXT) -> String {
    t.txt_data()
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect::<Vec<_>>()
        .join("")
}

impl Rfc2136Provider {
    fn txt_owner(&self) -> Result<Name, TrafficError> {
        fqdn(&authority_txt_name(&self.name_text), "authority TXT name")
    }

    async fn read_txt(&self) -> Result<ReadTxt, TrafficError> {
        let owner = self.txt_owner()?;
        let response = self.query(&owner, RecordType::TXT).await?;
        let records: Vec<TXT> = response
            .answers()
            .iter()
            .filter(|r| r.name().to_lowercase() == owner)
            .filter_map(|r| match r.data() {
                RData::TXT(t) => Some(t.clone()),
                _ => None,
            })
            .collect();
        let parsed = match records.as_slice() {
            [] => None,
            [one] => Some(AuthorityTxt::parse(&txt_string(one)).ok_or_else(|| {
                TrafficError::Provider {
                    provider: PROVIDER,
                    detail: format!(
                        "{} holds a TXT record Lifeboat did not write ({:?}); remove it so the \
                         epoch can be published there",
                        owner.to_ascii(),
                        txt_string(one)
                    ),
                }
            })?),
            _ => {
                return Err(TrafficError::Provider {
                    provider: PROVIDER,
                    detail: format!(
                        "{} holds {} TXT records; Lifeboat keeps exactly one there (the epoch): \
                         remove the others",
                        owner.to_ascii(),
                        records.len()
                    ),
                });
            }
        };
        Ok(ReadTxt { records, parsed })
    }

    /// The epoch as DNS publishes it.
    pub async fn authority_txt(&self) -> Result<Option<AuthorityTxt>, TrafficError> {
        Ok(self.read_txt().await?.parsed)
    }

    /// Makes the steered name answer only `region`'s answer and the TXT
    /// record say `epoch` and `region`, in one UPDATE (see the module
    /// docs). Refused, with nothing sent, when DNS already holds a newer
    /// epoch, or the same epoch for another region.
    pub async fn switch_primary(
        &self,
        region: &str,
        epoch: u64,
    ) -> Result<SwitchOutcome, TrafficError> {
        let answer = self
            .regions
            .iter()
            .find(|r| r.region == region)
            .map(|r| r.answer.clone())
            .ok_or_else(|| {
                TrafficError::Config(format!(
                    "region {region} has no DNS answer (regions.{region}.dns), so the steered \
                     name cannot answer it"
                ))
            })?;
        let desired: AnswerSet = [answer].into_iter().collect();
        let wanted = AuthorityTxt {
            epoch,
            primary: region.to_string(),
        };
        for _ in 1..=self.config.max_plans {
            let read = self.read().await?;
            let txt = self.read_txt().await?;
            if let Some(have) = &txt.parsed
                && (have.epoch > epoch || (have.epoch == epoch && have.primary != region))
            {
                return Err(TrafficError::Refused {
                    provider: PROVIDER,
                    server: self.config.server.to_string(),
                    detail: format!(
                        "DNS already publishes epoch {} (primary {}), so epoch {epoch} for \
                         {region} is stale; nothing was changed",
                        have.epoch, have.primary
                    ),
                });
            }
            let plan = changes(&read, &desired);
            if plan.is_empty() && txt.parsed.as_ref() == Some(&wanted) {
                return Ok(SwitchOutcome {
                    before: read,
                    previous: txt.parsed,
                    written: false,
                });
            }
            let mut message =
                update_message(&self.zone, &self.name, self.config.ttl, &read, &plan)?;
            self.add_txt_change(&mut message, &txt, &wanted)?;
            if self.send_update(message).await? {
                tracing::info!(
                    name = %self.config.name,
                    region,
                    epoch,
                    "rfc2136: steered name switched to the new primary"
                );
                return Ok(SwitchOutcome {
                    before: read,
                    previous: txt.parsed,
                    written: true,
                });
            }
        }
        Err(TrafficError::Contended {
            provider: PROVIDER,
            name: self.config.name.clone(),
            attempts: self.config.max_plans,
        })
    }

    /// Adds to `message` the prerequisite that the TXT owner holds exactly
    /// `read` (or no TXT), the deletion of those records and the new one.
    fn add_txt_change(
        &self,
        message: &mut Message,
        read: &ReadTxt,
        wanted: &AuthorityTxt,
    ) -> Result<(), TrafficError> {
        let owner = self.txt_owner()?;
        if read.records.is_empty() {
            let mut none = Record::update0(owner.clone(), 0, RecordType::TXT);
            none.set_dns_class(DNSClass::NONE);
            message.add_pre_requisite(none);
        }
        for t in &read.records {
            message.add_pre_requisite(Record::from_rdata(owner.clone(), 0, RData::TXT(t.clone())));
            let mut delete = Record::from_rdata(owner.clone(), 0, RData::TXT(t.clone()));
            delete.set_dns_class(DNSClass::NONE);
            message.add_update(delete);
        }
        message.add_update(Record::from_rdata(
            owner,
            self.config.ttl,
            RData::TXT(TXT::new(vec![wanted.text()])),
        ));
        Ok(())
    }

    /// The answers the steered name gives now, for a verification step.
    pub async fn answers_now(&self) -> Result<Vec<Answer>, TrafficError> {
        Ok(self.read().await?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_round_trip_and_refusals() {
        let t = AuthorityTxt {
            epoch: 7,
            primary: "eu-west".into(),
        };
        assert_eq!(t.text(), "lifeboat epoch=7 primary=eu-west");
        assert_eq!(AuthorityTxt::parse(&t.text()), Some(t));
        for bad in [
            "",
            "v=spf1 -all",
            "lifeboat epoch=x primary=a",
            "lifeboat epoch=1",
            "lifeboat epoch=1 primary=",
            "lifeboat epoch=1 primary=a extra",
            "lifeboat primary=a epoch=1",
        ] {
            assert_eq!(AuthorityTxt::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            authority_txt_name("app.kubernaut.test."),
            "_lifeboat-authority.app.kubernaut.test"
        );
    }
}
