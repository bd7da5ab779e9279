//! The Route 53 traffic provider: weighted records, one per region, each
//! with a Route 53 health check (the seed's active-active, §2.3), made and
//! kept equal to the configuration through the Route 53 API. Route 53 itself
//! probes the checks and leaves unhealthy regions out of the answers (all
//! of them in when none is healthy), so this provider's job is the
//! configuration, not per-verdict updates (unlike `rfc2136`, where the
//! daemon edits the answer set).
//!
//! - [`model`]: the desired records and checks as plain values, validated.
//! - [`plan`]: the pure diff between desired and observed.
//! - [`Route53Provider`]: reads the zone and the checks, applies a plan
//!   (checks first, then one change batch, waited for until `INSYNC`, then
//!   deleting checks nothing points at), and reads the status.
//! - [`error`]: what Route 53 said, classified for the message.
//! - [`wait`]: the `GetChange` polling schedule.
//! - [`authority`]: the failover switch: the epoch TXT record and the new
//!   primary alone weighted (issue 20).
//!
//! Credentials come only from the standard AWS chain (environment, profile,
//! web identity, container or instance role); the endpoint can be
//! overridden (moto in the tests, a VPC endpoint). The SDK retries
//! throttling (`Throttling`, `PriorRequestNotComplete`), 5xx and transport
//! errors with its standard exponential backoff (`max_attempts` attempts);
//! every call we make is safe to repeat (`CreateHealthCheck` carries a
//! deterministic caller reference, `UPSERT` is idempotent) except a
//! `DELETE` in a batch, which a repeat after a lost answer turns into an
//! `InvalidChangeBatch`, and the next apply then finds nothing to delete.
//! See docs/regions/route53.md.

pub mod authority;
mod convert;
pub mod error;
pub mod model;
pub mod plan;
pub mod wait;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_sdk_route53::Client;
use aws_sdk_route53::operation::create_health_check::CreateHealthCheckError;
use aws_sdk_route53::types::{
    ChangeBatch, ChangeStatus, ResettableElementName, Tag, TagResourceType,
};
use serde::Serialize;

pub use error::{ApplyError, Route53Error};
pub use model::{
    HealthCheckConfig, HealthCheckSettings, HealthCheckType, RecordKey, RecordSetState, RecordType,
    WeightedRecord,
};
pub use plan::{Change, HealthCheckRef, Observed, Plan, Zone};
pub use wait::WaitPolicy;

use convert::{bare_change_id, bare_zone_id};
use plan::{ObservedCheck, TAG_NAME, TAG_RECORD, TAG_SET_IDENTIFIER, TAG_TYPE, TAG_ZONE};

/// How to reach Route 53 (credentials are not here: the AWS chain finds them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route53Settings {
    /// `Z…`, with or without `/hostedzone/`.
    pub hosted_zone_id: String,
    /// Another endpoint than Route 53's (moto, a VPC endpoint); otherwise
    /// the SDK's (which honours `AWS_ENDPOINT_URL_ROUTE_53`).
    pub endpoint: Option<String>,
    /// An AWS profile name (not a secret: names a section of ~/.aws).
    pub profile: Option<String>,
    /// Attempts per call, the SDK's standard retry with backoff.
    pub max_attempts: u32,
    pub wait: WaitPolicy,
}

impl Route53Settings {
    pub fn new(hosted_zone_id: &str) -> Route53Settings {
        Route53Settings {
            hosted_zone_id: hosted_zone_id.to_string(),
            endpoint: None,
            profile: None,
            max_attempts: 5,
            wait: WaitPolicy::default(),
        }
    }
}

/// What an apply did (or, dry run, would do).
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub zone: Zone,
    pub plan: Plan,
    pub dry_run: bool,
    /// Health checks created, by record.
    pub created_checks: BTreeMap<String, String>,
    /// The change batch's id, when records changed.
    pub change_id: Option<String>,
    /// Every change made, in order (empty for a dry run).
    pub done: Vec<String>,
}

/// What Route 53 holds for the configured records now.
#[derive(Debug, Clone, Serialize)]
pub struct TrafficStatus {
    pub zone: Zone,
    pub records: Vec<RecordStatus>,
    /// The zone holds exactly what the configuration says.
    pub in_sync: bool,
    /// What an apply would change (empty when in sync).
    pub pending: Vec<String>,
    pub notes: Vec<String>,
}

/// One configured record: what is in the zone and its check's status.
#[derive(Debug, Clone, Serialize)]
pub struct RecordStatus {
    pub key: RecordKey,
    /// `None`: missing from the zone.
    pub present: Option<RecordSetState>,
    pub health_check: Option<CheckStatus>,
}

/// A health check and what Route 53's checkers report for it.
#[derive(Debug, Clone, Serialize)]
pub struct CheckStatus {
    pub id: String,
    /// `None`: the record points at a check that does not exist.
    pub settings: Option<HealthCheckSettings>,
    pub observations: Vec<Observation>,
    /// Route 53 counts an endpoint healthy when more than 18 % of its
    /// checkers say so; `None` without observations.
    pub healthy: Option<bool>,
}

/// One Route 53 checker's last report.
#[derive(Debug, Clone, Serialize)]
pub struct Observation {
    pub region: String,
    pub ip_address: String,
    pub status: String,
    pub checked_at: Option<String>,
}

/// Route 53 counts a check healthy when more than 18 % of its checkers
/// report success.
pub fn healthy_by_observations(statuses: &[&str]) -> Option<bool> {
    if statuses.is_empty() {
        return None;
    }
    let ok = statuses.iter().filter(|s| s.starts_with("Success")).count();
    Some(ok * 100 > statuses.len() * 18)
}

/// The provider for one hosted zone.
#[derive(Debug, Clone)]
pub struct Route53Provider {
    client: Client,
    zone_id: String,
    wait: WaitPolicy,
}

impl Route53Provider {
    /// The SDK configuration loader for `settings`: the standard chain for
    /// credentials and region (Route 53 is global: `us-east-1` when none is
    /// configured), the endpoint override, standard retries, timeouts.
    pub fn loader(settings: &Route53Settings) -> ConfigLoader {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(RegionProviderChain::default_provider().or_else(Region::new("us-east-1")))
            .retry_config(RetryConfig::standard().with_max_attempts(settings.max_attempts.max(1)))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .build(),
            );
        if let Some(p) = &settings.profile {
            loader = loader.profile_name(p);
        }
        if let Some(e) = &settings.endpoint {
            loader = loader.endpoint_url(e);
        }
        loader
    }

    /// Connects with the standard AWS chain.
    pub async fn connect(settings: &Route53Settings) -> Route53Provider {
        let sdk = Self::loader(settings).load().await;
        Self::from_sdk_config(&sdk, settings)
    }

    /// From an SDK configuration already loaded (e.g. [`Self::loader`] with
    /// a credentials provider of the caller's).
    pub fn from_sdk_config(sdk: &SdkConfig, settings: &Route53Settings) -> Route53Provider {
        Route53Provider {
            client: Client::new(sdk),
            zone_id: bare_zone_id(&settings.hosted_zone_id),
            wait: settings.wait,
        }
    }

    /// The hosted zone (`GetHostedZone`).
    pub async fn zone(&self) -> Result<Zone, Route53Error> {
        let out = self
            .client
            .get_hosted_zone()
            .id(&self.zone_id)
            .send()
            .await
            .map_err(|e| self.sdk_err("GetHostedZone", e))?;
        let z = out
            .hosted_zone()
            .ok_or_else(|| Route53Error::Unexpected("GetHostedZone returned no zone".into()))?;
        Ok(Zone {
            id: bare_zone_id(z.id()),
            name: model::normalize_name(z.name()),
        })
    }

    /// Every record set in the zone and the account's health checks that
    /// are Lifeboat's (caller reference `lifeboat-…`), with their tags.
    pub async fn observe(&self) -> Result<Observed, Route53Error> {
        let mut records = Vec::new();
        let mut start: Option<(String, aws_sdk_route53::types::RrType, Option<String>)> = None;
        loop {
            let mut req = self
                .client
                .list_resource_record_sets()
                .hosted_zone_id(&self.zone_id);
            if let Some((name, t, id)) = &start {
                req = req
                    .start_record_name(name)
                    .start_record_type(t.clone())
                    .set_start_record_identifier(id.clone());
            }
            let out = req
                .send()
                .await
                .map_err(|e| self.sdk_err("ListResourceRecordSets", e))?;
            records.extend(
                out.resource_record_sets()
                    .iter()
                    .map(convert::observed_record),
            );
            match (
                out.is_truncated(),
                out.next_record_name(),
                out.next_record_type(),
            ) {
                (true, Some(n), Some(t)) => {
                    start = Some((
                        n.to_string(),
                        t.clone(),
                        out.next_record_identifier().map(str::to_string),
                    ))
                }
                _ => break,
            }
        }

        let mut listed = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .client
                .list_health_checks()
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(|e| self.sdk_err("ListHealthChecks", e))?;
            for hc in out.health_checks() {
                if !hc
                    .caller_reference()
                    .starts_with(model::CALLER_REFERENCE_PREFIX)
                {
                    continue;
                }
                let Some(settings) = hc
                    .health_check_config()
                    .and_then(convert::observed_settings)
                else {
                    continue;
                };
                listed.push(ObservedCheck {
                    id: hc.id().to_string(),
                    caller_reference: hc.caller_reference().to_string(),
                    version: hc.health_check_version(),
                    settings,
                    tags: BTreeMap::new(),
                });
            }
            match (out.is_truncated(), out.next_marker()) {
                (true, Some(m)) => marker = Some(m.to_string()),
                _ => break,
            }
        }
        // Tags, ten checks a call (the API's limit).
        for chunk in listed.chunks_mut(10) {
            let out = self
                .client
                .list_tags_for_resources()
                .resource_type(TagResourceType::Healthcheck)
                .set_resource_ids(Some(chunk.iter().map(|c| c.id.clone()).collect()))
                .send()
                .await
                .map_err(|e| self.sdk_err("ListTagsForResources", e))?;
            for set in out.resource_tag_sets() {
                let Some(c) = chunk
                    .iter_mut()
                    .find(|c| Some(c.id.as_str()) == set.resource_id())
                else {
                    continue;
                };
                for t in set.tags() {
                    if let (Some(k), Some(v)) = (t.key(), t.value()) {
                        c.tags.insert(k.to_string(), v.to_string());
                    }
                }
            }
        }
        Ok(Observed {
            records,
            checks: listed,
        })
    }

    /// The changes that would make the zone hold `desired` (reads only).
    pub async fn plan(&self, desired: &[WeightedRecord]) -> Result<(Zone, Plan), Route53Error> {
        let zone = self.zone().await?;
        let observed = self.observe().await?;
        let p = plan::plan(&zone, desired, &observed)?;
        Ok((zone, p))
    }

    /// Makes the zone hold `desired`. With `dry_run`, only reads and
    /// returns the plan: no mutating call is made.
    pub async fn apply(
        &self,
        desired: &[WeightedRecord],
        dry_run: bool,
    ) -> Result<ApplyReport, ApplyError> {
        let (zone, plan) = self.plan(desired).await?;
        if dry_run {
            return Ok(ApplyReport {
                zone,
                plan,
                dry_run: true,
                created_checks: BTreeMap::new(),
                change_id: None,
                done: Vec::new(),
            });
        }
        self.execute(&zone, plan).await
    }

    /// Carries out `plan` in `zone`: health checks created, tagged and
    /// updated; then every record change in one `ChangeResourceRecordSets`
    /// batch, waited for until `INSYNC`; then the health checks nothing
    /// points at any more deleted. Makes no read before its first write
    /// (see docs/regions/route53.md on moto's IAM).
    pub async fn execute(&self, zone: &Zone, plan: Plan) -> Result<ApplyReport, ApplyError> {
        let mut done = Vec::new();
        let mut created = BTreeMap::new();
        let mut change_id = None;
        match self
            .execute_steps(zone, &plan, &mut done, &mut created, &mut change_id)
            .await
        {
            Ok(()) => Ok(ApplyReport {
                zone: zone.clone(),
                plan,
                dry_run: false,
                created_checks: created
                    .into_iter()
                    .map(|(k, v): (RecordKey, String)| (k.to_string(), v))
                    .collect(),
                change_id,
                done,
            }),
            Err(cause) => Err(ApplyError { cause, done }),
        }
    }

    async fn execute_steps(
        &self,
        zone: &Zone,
        plan: &Plan,
        done: &mut Vec<String>,
        created: &mut BTreeMap<RecordKey, String>,
        change_id: &mut Option<String>,
    ) -> Result<(), Route53Error> {
        // 1. Health checks.
        for c in &plan.changes {
            match c {
                Change::CreateHealthCheck {
                    record,
                    caller_reference,
                    settings,
                    ..
                } => {
                    let id = self.create_check(caller_reference, settings).await?;
                    done.push(format!("created health check {id} for {record}"));
                    self.tag_check(zone, record, &id).await?;
                    created.insert(record.clone(), id);
                }
                Change::UpdateHealthCheck {
                    record,
                    id,
                    version,
                    from,
                    to,
                } => {
                    self.update_check(id, *version, from, to).await?;
                    done.push(format!("updated health check {id} for {record}"));
                }
                Change::TagHealthCheck { record, id } => {
                    self.tag_check(zone, record, id).await?;
                    done.push(format!("tagged health check {id} for {record}"));
                }
                _ => {}
            }
        }
        // 2. One change batch for the records.
        let mut batch = Vec::new();
        let mut lines = Vec::new();
        for c in &plan.changes {
            match c {
                Change::UpsertRecord {
                    to, health_check, ..
                } => {
                    let mut to = to.clone();
                    if *health_check == HealthCheckRef::New {
                        let id = created.get(&to.key).ok_or_else(|| {
                            Route53Error::Unexpected(format!(
                                "no health check was created for {}",
                                to.key
                            ))
                        })?;
                        to.health_check_id = Some(id.clone());
                    }
                    batch.push(convert::upsert(&to)?);
                    lines.push(format!("UPSERT {to}"));
                }
                Change::DeleteRecord { current } => {
                    batch.push(convert::delete(current)?);
                    lines.push(format!(
                        "DELETE {} {} [{}]",
                        current.name,
                        current.record_type,
                        current.set_identifier.as_deref().unwrap_or("")
                    ));
                }
                _ => {}
            }
        }
        if !batch.is_empty() {
            self.send_changes(&zone.id, "lifeboat region traffic apply", batch, |id| {
                done.push(format!("change {id}: {}", lines.join(", ")));
                *change_id = Some(id.to_string());
            })
            .await?;
        }
        // 3. Checks nothing points at any more.
        for c in &plan.changes {
            if let Change::DeleteHealthCheck { id, reason, .. } = c {
                self.client
                    .delete_health_check()
                    .health_check_id(id)
                    .send()
                    .await
                    .map_err(|e| self.sdk_err("DeleteHealthCheck", e))?;
                done.push(format!("deleted health check {id} ({reason:?})"));
            }
        }
        Ok(())
    }

    /// Sends `changes` as one `ChangeResourceRecordSets` batch in zone
    /// `zone_id` and waits until Route 53 reports it `INSYNC`; `sent` sees
    /// the change id as soon as Route 53 accepted the batch (before the
    /// wait, so a report names it even when the wait fails).
    pub(crate) async fn send_changes(
        &self,
        zone_id: &str,
        comment: &str,
        changes: Vec<aws_sdk_route53::types::Change>,
        sent: impl FnOnce(&str),
    ) -> Result<String, Route53Error> {
        let started = Instant::now();
        let change_batch = ChangeBatch::builder()
            .comment(comment)
            .set_changes(Some(changes))
            .build()
            .map_err(|e| Route53Error::Unexpected(format!("building the change batch: {e}")))?;
        let out = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(zone_id)
            .change_batch(change_batch)
            .send()
            .await
            .map_err(|e| self.sdk_err("ChangeResourceRecordSets", e))?;
        let info = out.change_info().ok_or_else(|| {
            Route53Error::Unexpected("ChangeResourceRecordSets returned no ChangeInfo".into())
        })?;
        let id = bare_change_id(info.id());
        sent(&id);
        self.wait_insync(&id, info.status() == &ChangeStatus::Insync, started)
            .await?;
        Ok(id)
    }

    /// `CreateHealthCheck` with the deterministic caller reference; when
    /// Route 53 refuses it because a deleted check used it
    /// (`HealthCheckAlreadyExists`), once more with a suffix.
    async fn create_check(
        &self,
        caller_reference: &str,
        settings: &HealthCheckSettings,
    ) -> Result<String, Route53Error> {
        let config = convert::health_check_config(settings)?;
        let mut reference = caller_reference.to_string();
        for retry in [false, true] {
            match self
                .client
                .create_health_check()
                .caller_reference(&reference)
                .health_check_config(config.clone())
                .send()
                .await
            {
                Ok(out) => {
                    return out
                        .health_check()
                        .map(|h| h.id().to_string())
                        .ok_or_else(|| {
                            Route53Error::Unexpected("CreateHealthCheck returned no check".into())
                        });
                }
                Err(e)
                    if !retry
                        && matches!(
                            e.as_service_error(),
                            Some(CreateHealthCheckError::HealthCheckAlreadyExists(_))
                        ) =>
                {
                    let secs = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(1);
                    reference = format!("{caller_reference}-{secs}");
                }
                Err(e) => return Err(self.sdk_err("CreateHealthCheck", e)),
            }
        }
        Err(Route53Error::Unexpected(
            "CreateHealthCheck refused both caller references".into(),
        ))
    }

    /// Tags a check as the one of `record` in `zone`.
    async fn tag_check(
        &self,
        zone: &Zone,
        record: &RecordKey,
        id: &str,
    ) -> Result<(), Route53Error> {
        let tags = [
            (
                TAG_NAME,
                format!(
                    "lifeboat {} {} {}",
                    record.name, record.record_type, record.set_identifier
                ),
            ),
            (TAG_ZONE, zone.id.clone()),
            (TAG_RECORD, record.name.clone()),
            (TAG_TYPE, record.record_type.to_string()),
            (TAG_SET_IDENTIFIER, record.set_identifier.clone()),
        ];
        let mut req = self
            .client
            .change_tags_for_resource()
            .resource_type(TagResourceType::Healthcheck)
            .resource_id(id);
        for (k, v) in tags {
            req = req.add_tags(Tag::builder().key(k).value(v).build());
        }
        req.send()
            .await
            .map_err(|e| self.sdk_err("ChangeTagsForResource", e))?;
        Ok(())
    }

    /// `UpdateHealthCheck` with what changed, guarded by the version read.
    async fn update_check(
        &self,
        id: &str,
        version: i64,
        from: &HealthCheckSettings,
        to: &HealthCheckSettings,
    ) -> Result<(), Route53Error> {
        let mut req = self
            .client
            .update_health_check()
            .health_check_id(id)
            .health_check_version(version);
        if from.ip_address != to.ip_address
            && let Some(ip) = to.ip_address
        {
            req = req.ip_address(ip.to_string());
        }
        if from.port != to.port {
            req = req.port(i32::from(to.port));
        }
        if from.resource_path != to.resource_path {
            req = match &to.resource_path {
                Some(p) => req.resource_path(p),
                None => req.reset_elements(ResettableElementName::ResourcePath),
            };
        }
        if from.fqdn != to.fqdn {
            req = match &to.fqdn {
                Some(f) => req.fully_qualified_domain_name(f),
                None => req.reset_elements(ResettableElementName::FullyQualifiedDomainName),
            };
        }
        if from.search_string != to.search_string
            && let Some(s) = &to.search_string
        {
            req = req.search_string(s);
        }
        if from.failure_threshold != to.failure_threshold {
            req = req.failure_threshold(to.failure_threshold as i32);
        }
        if from.enable_sni != to.enable_sni {
            req = req.enable_sni(to.enable_sni);
        }
        req.send()
            .await
            .map_err(|e| self.sdk_err("UpdateHealthCheck", e))?;
        Ok(())
    }

    /// Polls `GetChange` until `INSYNC`, bounded by the wait policy.
    async fn wait_insync(
        &self,
        change_id: &str,
        mut insync: bool,
        started: Instant,
    ) -> Result<(), Route53Error> {
        let mut polls = 0;
        loop {
            match self.wait.next(insync, polls, started.elapsed()) {
                wait::Next::Done => return Ok(()),
                wait::Next::GiveUp => {
                    return Err(Route53Error::NotInSync {
                        change_id: change_id.to_string(),
                        waited: started.elapsed(),
                    });
                }
                wait::Next::PollAfter(d) => tokio::time::sleep(d).await,
            }
            polls += 1;
            let out = self
                .client
                .get_change()
                .id(change_id)
                .send()
                .await
                .map_err(|e| self.sdk_err("GetChange", e))?;
            insync = out
                .change_info()
                .is_some_and(|i| i.status() == &ChangeStatus::Insync);
        }
    }

    /// What the zone holds for `desired`, each record's health check and
    /// its checkers' last reports (`GetHealthCheckStatus`), and whether an
    /// apply would change anything.
    pub async fn status(&self, desired: &[WeightedRecord]) -> Result<TrafficStatus, Route53Error> {
        let zone = self.zone().await?;
        let observed = self.observe().await?;
        let p = plan::plan(&zone, desired, &observed)?;
        let mut records = Vec::new();
        let mut keys: Vec<RecordKey> = desired.iter().map(WeightedRecord::key).collect();
        keys.sort();
        for key in keys {
            let present = observed
                .records
                .iter()
                .find(|r| r.key().as_ref() == Some(&key))
                .and_then(plan::ObservedRecord::state);
            let health_check = match present.as_ref().and_then(|r| r.health_check_id.clone()) {
                None => None,
                Some(id) => Some(self.check_status(&id, &observed).await?),
            };
            records.push(RecordStatus {
                key,
                present,
                health_check,
            });
        }
        Ok(TrafficStatus {
            zone,
            records,
            in_sync: p.is_empty(),
            pending: p.changes.iter().map(ToString::to_string).collect(),
            notes: p.notes,
        })
    }

    async fn check_status(
        &self,
        id: &str,
        observed: &Observed,
    ) -> Result<CheckStatus, Route53Error> {
        let settings = observed
            .checks
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.settings.clone());
        let out = match self
            .client
            .get_health_check_status()
            .health_check_id(id)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(aws_sdk_route53::operation::get_health_check_status::GetHealthCheckStatusError::NoSuchHealthCheck(_))
                ) =>
            {
                return Ok(CheckStatus {
                    id: id.to_string(),
                    settings: None,
                    observations: Vec::new(),
                    healthy: None,
                });
            }
            Err(e) => return Err(self.sdk_err("GetHealthCheckStatus", e)),
        };
        let observations: Vec<Observation> = out
            .health_check_observations()
            .iter()
            .map(|o| Observation {
                region: o
                    .region()
                    .map(|r| r.as_str().to_string())
                    .unwrap_or_default(),
                ip_address: o.ip_address().unwrap_or_default().to_string(),
                status: o
                    .status_report()
                    .and_then(|s| s.status())
                    .unwrap_or_default()
                    .to_string(),
                checked_at: o
                    .status_report()
                    .and_then(|s| s.checked_time())
                    .map(|t| t.to_string()),
            })
            .collect();
        let statuses: Vec<&str> = observations.iter().map(|o| o.status.as_str()).collect();
        Ok(CheckStatus {
            id: id.to_string(),
            settings,
            healthy: healthy_by_observations(&statuses),
            observations,
        })
    }

    fn sdk_err<E>(
        &self,
        operation: &'static str,
        e: aws_sdk_route53::error::SdkError<E, aws_sdk_route53::config::http::HttpResponse>,
    ) -> Route53Error
    where
        E: aws_sdk_route53::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        error::from_sdk(operation, &self.zone_id, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_when_more_than_18_percent_of_checkers_say_so() {
        let ok = "Success: HTTP Status Code 200";
        let bad = "Failure: Connection timed out";
        let table: Vec<(Vec<&str>, Option<bool>)> = vec![
            (vec![], None),
            (vec![ok], Some(true)),
            (vec![bad], Some(false)),
            (vec![ok, bad, bad, bad, bad], Some(true)), // 20 %
            (vec![ok, bad, bad, bad, bad, bad, bad], Some(false)), // 14 %
        ];
        for (s, want) in table {
            assert_eq!(healthy_by_observations(&s), want, "{s:?}");
        }
    }
}
