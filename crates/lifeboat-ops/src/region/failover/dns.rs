//! The DNS side of a change of primary, for either provider: the switch
//! (the steered name to the new primary alone, with the epoch's TXT record)
//! and its verification (the TXT publishes the epoch for the new primary;
//! with `rfc2136` the name answers it, with `route53` only its record
//! carries weight, as Route 53 holds them).

use lifeboat_region::topology::Provider;
use lifeboat_region::traffic::rfc2136::Rfc2136Provider;
use lifeboat_region::traffic::route53::{Route53Error, Route53Provider, WeightedRecord};
use lifeboat_region::traffic::{TrafficError, TrafficProvider};

use crate::config::Config;
use crate::context::Ctx;
use crate::error::Result;

/// The configured traffic provider, as the failover drives it.
pub(super) enum DnsSwitch {
    Rfc2136(Box<Rfc2136Provider>),
    Route53 {
        provider: Route53Provider,
        /// The configured steered records (weights as configured).
        desired: Vec<WeightedRecord>,
        name: String,
    },
}

/// A step's failure: whether a retry may help, and what happened.
pub(super) type StepError = (bool, String);

fn traffic_transient(e: &TrafficError) -> bool {
    matches!(
        e,
        TrafficError::Unreachable { .. } | TrafficError::Contended { .. }
    )
}

/// Route 53 failures a later attempt may get past: no answer (after the
/// SDK's own retries) or a change not yet in sync.
fn route53_transient(e: &Route53Error) -> bool {
    matches!(
        e,
        Route53Error::Transport { .. } | Route53Error::NotInSync { .. }
    )
}

impl DnsSwitch {
    /// The provider `traffic:` configures (`None` without `traffic:`).
    pub async fn from_config(ctx: &Ctx, config: &Config) -> Result<Option<DnsSwitch>> {
        match config.traffic.as_ref().map(|t| t.provider()) {
            None => Ok(None),
            Some(Provider::Rfc2136) => Ok(crate::region::traffic::rfc2136_provider(ctx, config)
                .await?
                .map(|p| DnsSwitch::Rfc2136(Box::new(p)))),
            Some(Provider::Route53) => {
                let desired = crate::region::route53::desired_records(config)?.records;
                let name = crate::region::route53::route53_traffic(config)?
                    .name()
                    .normalized();
                let provider =
                    Route53Provider::connect(&crate::region::route53::settings(config)?).await;
                Ok(Some(DnsSwitch::Route53 {
                    provider,
                    desired,
                    name,
                }))
            }
        }
    }

    /// Makes DNS publish `to` as the primary of `epoch`; the note says
    /// what was written.
    pub async fn switch(&self, to: &str, epoch: u64) -> std::result::Result<String, StepError> {
        match self {
            DnsSwitch::Rfc2136(dns) => match dns.switch_primary(to, epoch).await {
                Ok(out) => Ok(format!(
                    "{} answers {to} only; TXT epoch {epoch}{}",
                    dns.record_name(),
                    if out.written { "" } else { " (already so)" }
                )),
                Err(e) => Err((traffic_transient(&e), e.to_string())),
            },
            DnsSwitch::Route53 {
                provider,
                desired,
                name,
            } => match provider.switch_primary(desired, name, to, epoch).await {
                Ok(out) => Ok(format!(
                    "route53: {name} weighted to {to} only; TXT epoch {epoch}{}",
                    if out.txt_written || !out.records.is_empty() {
                        ""
                    } else {
                        " (already so)"
                    }
                )),
                Err(e) => Err((route53_transient(&e), e.to_string())),
            },
        }
    }

    /// DNS publishes `region` as the primary of `epoch` (the TXT), and
    /// steers to it alone.
    pub async fn verify(
        &self,
        config: &Config,
        region: &str,
        epoch: u64,
    ) -> std::result::Result<String, StepError> {
        match self {
            DnsSwitch::Rfc2136(dns) => {
                let txt = dns
                    .authority_txt()
                    .await
                    .map_err(|e| (traffic_transient(&e), e.to_string()))?;
                check_txt(
                    txt.as_ref().map(|t| (t.epoch, t.primary.as_str())),
                    region,
                    epoch,
                )?;
                let want: Vec<_> = crate::region::traffic::region_answers(config)
                    .into_iter()
                    .filter(|a| a.region == region)
                    .map(|a| a.answer)
                    .collect();
                match dns.answers_now().await {
                    Ok(got) if got == want => Ok(format!(
                        "{} answers it, TXT epoch {epoch}",
                        dns.record_name()
                    )),
                    Ok(got) => Err((
                        false,
                        format!(
                            "{} answers {got:?}, not {region}'s {want:?}",
                            dns.record_name()
                        ),
                    )),
                    Err(e) => Err((traffic_transient(&e), e.to_string())),
                }
            }
            DnsSwitch::Route53 {
                provider,
                desired,
                name,
            } => {
                let txt = provider
                    .authority_txt(name)
                    .await
                    .map_err(|e| (route53_transient(&e), e.to_string()))?;
                check_txt(
                    txt.as_ref().map(|t| (t.epoch, t.primary.as_str())),
                    region,
                    epoch,
                )?;
                let want =
                    lifeboat_region::traffic::route53::authority::failover_weights(desired, region);
                let (_, plan) = provider
                    .plan(&want)
                    .await
                    .map_err(|e| (route53_transient(&e), e.to_string()))?;
                if plan.changes.is_empty() {
                    Ok(format!(
                        "route53: {name} weighted to {region} only, TXT epoch {epoch}"
                    ))
                } else {
                    Err((
                        false,
                        format!(
                            "route53: {name}'s records differ from {region} alone weighted \
                             ({} change(s) pending)",
                            plan.changes.len()
                        ),
                    ))
                }
            }
        }
    }
}

fn check_txt(
    published: Option<(u64, &str)>,
    region: &str,
    epoch: u64,
) -> std::result::Result<(), StepError> {
    if published == Some((epoch, region)) {
        Ok(())
    } else {
        Err((
            false,
            format!(
                "DNS publishes {} instead of epoch {epoch} for {region}: a later change of \
                 primary may have written it, or the update was lost; see `lifeboat region \
                 authority`, then run the same command again to resume",
                match published {
                    Some((e, r)) => format!("epoch {e} for {r}"),
                    None => "no authority TXT record".to_string(),
                }
            ),
        ))
    }
}
