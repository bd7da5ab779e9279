//! Between the SDK's types and ours: what `List*` returned into
//! [`ObservedRecord`]/[`HealthCheckSettings`], and our changes into request
//! shapes.

use aws_sdk_route53::types::{
    self as r53, ChangeAction, HealthCheckType as ApiType, ResourceRecord, ResourceRecordSet,
    RrType,
};

use super::error::Route53Error;
use super::model::{
    HealthCheckSettings, RecordSetState, RecordType, normalize_host, normalize_name,
};
use super::plan::ObservedRecord;

pub(crate) fn rr_type(t: RecordType) -> RrType {
    match t {
        RecordType::A => RrType::A,
        RecordType::Aaaa => RrType::Aaaa,
        RecordType::Cname => RrType::Cname,
    }
}

/// A record set as listed.
pub(crate) fn observed_record(r: &ResourceRecordSet) -> ObservedRecord {
    ObservedRecord {
        name: normalize_name(r.name()),
        record_type: r.r#type().as_str().to_string(),
        set_identifier: r.set_identifier().map(str::to_string),
        weight: r.weight(),
        ttl: r.ttl(),
        values: r
            .resource_records()
            .iter()
            .map(|v| v.value().to_string())
            .collect(),
        alias_target: r.alias_target().map(|a| a.dns_name().to_string()),
        health_check_id: r.health_check_id().map(str::to_string),
        other_routing: r.failover().is_some()
            || r.region().is_some()
            || r.geo_location().is_some()
            || r.multi_value_answer().is_some()
            || r.cidr_routing_config().is_some()
            || r.geo_proximity_location().is_some(),
    }
}

/// A health check's settings as listed (`None` for kinds we never make:
/// calculated, CloudWatch alarm, recovery control).
pub(crate) fn observed_settings(c: &r53::HealthCheckConfig) -> Option<HealthCheckSettings> {
    let api_type = c.r#type().as_str().to_string();
    if !matches!(
        api_type.as_str(),
        "HTTP" | "HTTPS" | "HTTP_STR_MATCH" | "HTTPS_STR_MATCH" | "TCP"
    ) {
        return None;
    }
    let default_port = if api_type.starts_with("HTTPS") {
        443
    } else {
        80
    };
    Some(HealthCheckSettings {
        api_type,
        ip_address: c.ip_address().and_then(|i| i.parse().ok()),
        fqdn: c.fully_qualified_domain_name().map(normalize_host),
        port: c
            .port()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(default_port),
        resource_path: c.resource_path().map(str::to_string),
        search_string: c.search_string().map(str::to_string),
        request_interval: c
            .request_interval()
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(30),
        failure_threshold: c
            .failure_threshold()
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(3),
        enable_sni: c.enable_sni().unwrap_or(false),
    })
}

/// `CreateHealthCheck`'s configuration.
pub(crate) fn health_check_config(
    s: &HealthCheckSettings,
) -> Result<r53::HealthCheckConfig, Route53Error> {
    let mut b = r53::HealthCheckConfig::builder()
        .r#type(ApiType::from(s.api_type.as_str()))
        .port(i32::from(s.port))
        .request_interval(s.request_interval as i32)
        .failure_threshold(s.failure_threshold as i32);
    if let Some(ip) = s.ip_address {
        b = b.ip_address(ip.to_string());
    }
    if let Some(f) = &s.fqdn {
        b = b.fully_qualified_domain_name(f);
    }
    if let Some(p) = &s.resource_path {
        b = b.resource_path(p);
    }
    if let Some(m) = &s.search_string {
        b = b.search_string(m);
    }
    if s.api_type.starts_with("HTTPS") {
        b = b.enable_sni(s.enable_sni);
    }
    b.build()
        .map_err(|e| Route53Error::Unexpected(format!("building a health check: {e}")))
}

/// An `UPSERT` of `to` (whose `health_check_id` is final).
pub(crate) fn upsert(to: &RecordSetState) -> Result<r53::Change, Route53Error> {
    let mut b = ResourceRecordSet::builder()
        .name(&to.key.name)
        .r#type(rr_type(to.key.record_type))
        .set_identifier(&to.key.set_identifier)
        .weight(to.weight)
        .ttl(to.ttl);
    for v in &to.values {
        b = b.resource_records(resource_record(v)?);
    }
    if let Some(id) = &to.health_check_id {
        b = b.health_check_id(id);
    }
    change(ChangeAction::Upsert, b)
}

/// A `DELETE` of `r` exactly as listed.
pub(crate) fn delete(r: &ObservedRecord) -> Result<r53::Change, Route53Error> {
    let mut b = ResourceRecordSet::builder()
        .name(&r.name)
        .r#type(RrType::from(r.record_type.as_str()));
    if let Some(s) = &r.set_identifier {
        b = b.set_identifier(s);
    }
    if let Some(w) = r.weight {
        b = b.weight(w);
    }
    if let Some(t) = r.ttl {
        b = b.ttl(t);
    }
    for v in &r.values {
        b = b.resource_records(resource_record(v)?);
    }
    if let Some(id) = &r.health_check_id {
        b = b.health_check_id(id);
    }
    change(ChangeAction::Delete, b)
}

fn resource_record(v: &str) -> Result<ResourceRecord, Route53Error> {
    ResourceRecord::builder()
        .value(v)
        .build()
        .map_err(|e| Route53Error::Unexpected(format!("building a record value: {e}")))
}

fn change(
    action: ChangeAction,
    b: aws_sdk_route53::types::builders::ResourceRecordSetBuilder,
) -> Result<r53::Change, Route53Error> {
    let set = b
        .build()
        .map_err(|e| Route53Error::Unexpected(format!("building a record set: {e}")))?;
    r53::Change::builder()
        .action(action)
        .resource_record_set(set)
        .build()
        .map_err(|e| Route53Error::Unexpected(format!("building a change: {e}")))
}

/// A zone id without the `/hostedzone/` prefix the API sometimes returns.
pub(crate) fn bare_zone_id(id: &str) -> String {
    id.trim_start_matches("/hostedzone/").to_string()
}

/// A change id without the `/change/` prefix.
pub(crate) fn bare_change_id(id: &str) -> String {
    id.trim_start_matches("/change/").to_string()
}
