//! What the configuration asks of Route 53, as plain values: weighted
//! records and their health checks, validated against Route 53's rules, and
//! the normalised forms the plan compares with what the API returns.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

/// Route 53's defaults and limits we check before calling the API.
pub const DEFAULT_WEIGHT: u8 = 100;
/// Seconds; the seed's records do not name one.
pub const DEFAULT_TTL: u32 = 60;
/// Route 53's default and the seed's.
pub const DEFAULT_REQUEST_INTERVAL: u32 = 30;
/// Route 53's default and the seed's.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
/// Route 53 allows only these intervals (seconds); 10 costs more.
pub const REQUEST_INTERVALS: [u32; 2] = [10, 30];
/// Longest `SearchString` and `ResourcePath` Route 53 accepts.
const MAX_SEARCH_STRING: usize = 255;
const MAX_RESOURCE_PATH: usize = 255;
/// Longest `SetIdentifier`.
const MAX_SET_IDENTIFIER: usize = 128;

/// The record types the provider manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum RecordType {
    A,
    Aaaa,
    Cname,
}

impl RecordType {
    /// The type as Route 53 spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
            RecordType::Cname => "CNAME",
        }
    }

    /// Parses Route 53's spelling; other types are not ours.
    pub fn parse(s: &str) -> Option<RecordType> {
        match s {
            "A" => Some(RecordType::A),
            "AAAA" => Some(RecordType::Aaaa),
            "CNAME" => Some(RecordType::Cname),
            _ => None,
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How Route 53 probes an endpoint. A search string turns `Http`/`Https`
/// into `HTTP_STR_MATCH`/`HTTPS_STR_MATCH` (see [`HealthCheckConfig::api_type`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HealthCheckType {
    Http,
    Https,
    Tcp,
}

/// One region's health check as the configuration describes it. Route 53
/// probes `ip_address` when given (sending `fqdn` as the Host header and,
/// for HTTPS, as SNI), otherwise resolves `fqdn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckConfig {
    pub check_type: HealthCheckType,
    pub ip_address: Option<IpAddr>,
    pub fqdn: Option<String>,
    /// `None`: 80 for HTTP, 443 for HTTPS; required for TCP.
    pub port: Option<u16>,
    /// HTTP(S) only, e.g. `/healthz`.
    pub resource_path: Option<String>,
    /// HTTP(S) only: healthy only if the first 5,120 bytes of the body
    /// contain it.
    pub search_string: Option<String>,
    /// 10 or 30 seconds.
    pub request_interval: u32,
    /// 1 to 10 consecutive results to flip.
    pub failure_threshold: u32,
}

impl HealthCheckConfig {
    /// An HTTPS check of `fqdn` at `path` with Route 53's defaults (port
    /// 443, every 30 s, 3 results to flip): the seed's check.
    pub fn https(fqdn: &str, path: &str) -> HealthCheckConfig {
        HealthCheckConfig {
            check_type: HealthCheckType::Https,
            ip_address: None,
            fqdn: Some(fqdn.to_string()),
            port: None,
            resource_path: Some(path.to_string()),
            search_string: None,
            request_interval: DEFAULT_REQUEST_INTERVAL,
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
        }
    }

    /// Route 53's `Type`: the search string picks the `_STR_MATCH` kind.
    pub fn api_type(&self) -> &'static str {
        match (self.check_type, self.search_string.is_some()) {
            (HealthCheckType::Http, false) => "HTTP",
            (HealthCheckType::Http, true) => "HTTP_STR_MATCH",
            (HealthCheckType::Https, false) => "HTTPS",
            (HealthCheckType::Https, true) => "HTTPS_STR_MATCH",
            (HealthCheckType::Tcp, _) => "TCP",
        }
    }

    /// Checks Route 53's rules; `what` names the record in messages.
    pub fn validate(&self, what: &str) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError(format!("{what}: health check: {m}")));
        if !REQUEST_INTERVALS.contains(&self.request_interval) {
            return bad(format!(
                "request_interval {} is not one Route 53 allows (10 or 30 seconds)",
                self.request_interval
            ));
        }
        if !(1..=10).contains(&self.failure_threshold) {
            return bad(format!(
                "failure_threshold {} is outside 1..=10",
                self.failure_threshold
            ));
        }
        if self.ip_address.is_none() && self.fqdn.is_none() {
            return bad("needs an IP address or a domain name to probe".into());
        }
        if let Some(ip) = self.ip_address
            && !routable(ip)
        {
            return bad(format!(
                "{ip} is a local, private, link-local or multicast address, which Route 53's checkers cannot reach"
            ));
        }
        if let Some(f) = &self.fqdn
            && (f.is_empty() || f.len() > 255)
        {
            return bad(format!("domain name {f:?} is empty or longer than 255"));
        }
        match self.check_type {
            HealthCheckType::Tcp => {
                if self.port.is_none() {
                    return bad("a TCP check needs a port".into());
                }
                if self.resource_path.is_some() || self.search_string.is_some() {
                    return bad("a TCP check has no path or search string".into());
                }
            }
            HealthCheckType::Http | HealthCheckType::Https => {
                if let Some(p) = &self.resource_path
                    && (!p.starts_with('/') || p.len() > MAX_RESOURCE_PATH)
                {
                    return bad(format!(
                        "resource_path {p:?} must start with / and be at most {MAX_RESOURCE_PATH} characters"
                    ));
                }
                if let Some(s) = &self.search_string
                    && (s.is_empty() || s.len() > MAX_SEARCH_STRING)
                {
                    return bad(format!(
                        "search_string must be 1 to {MAX_SEARCH_STRING} characters"
                    ));
                }
            }
        }
        if self.port == Some(0) {
            return bad("port 0".into());
        }
        Ok(())
    }

    /// The settings as Route 53 stores them, defaults filled in: what the
    /// plan compares with a health check read from the API.
    pub fn settings(&self) -> HealthCheckSettings {
        let port = self.port.unwrap_or(match self.check_type {
            HealthCheckType::Https => 443,
            _ => 80,
        });
        let fqdn = self.fqdn.as_deref().map(normalize_host);
        HealthCheckSettings {
            api_type: self.api_type().to_string(),
            ip_address: self.ip_address,
            // SNI only makes sense with a name to send.
            enable_sni: self.check_type == HealthCheckType::Https && fqdn.is_some(),
            fqdn,
            port,
            resource_path: self.resource_path.clone(),
            search_string: self.search_string.clone(),
            request_interval: self.request_interval,
            failure_threshold: self.failure_threshold,
        }
    }
}

/// Route 53 rejects checks of addresses its checkers cannot reach.
fn routable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_unspecified()
                || v4.is_broadcast())
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80) // link-local
        }
    }
}

/// A health check's settings in the shape both the configuration and the
/// API map to, so that "what we want" and "what is there" compare with `==`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct HealthCheckSettings {
    /// `HTTP`, `HTTPS`, `HTTP_STR_MATCH`, `HTTPS_STR_MATCH`, `TCP` (or
    /// whatever else the API holds for a check we did not make).
    pub api_type: String,
    pub ip_address: Option<IpAddr>,
    /// Lower case, no trailing dot.
    pub fqdn: Option<String>,
    pub port: u16,
    pub resource_path: Option<String>,
    pub search_string: Option<String>,
    pub request_interval: u32,
    pub failure_threshold: u32,
    pub enable_sni: bool,
}

impl HealthCheckSettings {
    /// Fields `UpdateHealthCheck` cannot change: a difference there means a
    /// new check (created, records pointed at it, the old one deleted).
    /// Removing the IP address is one too (there is no reset for it).
    pub fn needs_replacement(&self, want: &HealthCheckSettings) -> bool {
        self.api_type != want.api_type
            || self.request_interval != want.request_interval
            || (self.ip_address.is_some() && want.ip_address.is_none())
    }

    /// A stable text of every field, hashed into the caller reference.
    pub(crate) fn canonical(&self) -> String {
        format!(
            "type={};ip={};fqdn={};port={};path={};search={};interval={};threshold={};sni={}",
            self.api_type,
            self.ip_address.map(|i| i.to_string()).unwrap_or_default(),
            self.fqdn.as_deref().unwrap_or(""),
            self.port,
            self.resource_path.as_deref().unwrap_or(""),
            self.search_string.as_deref().unwrap_or(""),
            self.request_interval,
            self.failure_threshold,
            self.enable_sni
        )
    }
}

impl fmt::Display for HealthCheckSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.api_type)?;
        match (&self.ip_address, &self.fqdn) {
            (Some(ip), Some(h)) => write!(f, "{ip} (Host {h})")?,
            (Some(ip), None) => write!(f, "{ip}")?,
            (None, Some(h)) => write!(f, "{h}")?,
            (None, None) => f.write_str("?")?,
        }
        write!(f, ":{}", self.port)?;
        if let Some(p) = &self.resource_path {
            f.write_str(p)?;
        }
        if let Some(s) = &self.search_string {
            write!(f, " matching {s:?}")?;
        }
        write!(
            f,
            " every {} s, {} to flip",
            self.request_interval, self.failure_threshold
        )
    }
}

/// One weighted record: one region's answer for a name. Route 53 answers
/// with each healthy record in proportion to its weight (and with all of
/// them when none is healthy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedRecord {
    /// Fully qualified; a trailing dot is optional.
    pub name: String,
    pub record_type: RecordType,
    /// Route 53's `SetIdentifier`: the region's name.
    pub set_identifier: String,
    /// 0 to 255; 0 takes the record out of the answers while others have
    /// weight (Route 53's rule).
    pub weight: u8,
    pub ttl: u32,
    /// Addresses (A/AAAA) or one target name (CNAME).
    pub values: Vec<String>,
    pub health_check: Option<HealthCheckConfig>,
}

impl WeightedRecord {
    /// A record with the defaults: weight 100, TTL 60 s, no health check.
    pub fn new(
        name: &str,
        record_type: RecordType,
        set_identifier: &str,
        values: &[&str],
    ) -> WeightedRecord {
        WeightedRecord {
            name: name.to_string(),
            record_type,
            set_identifier: set_identifier.to_string(),
            weight: DEFAULT_WEIGHT,
            ttl: DEFAULT_TTL,
            values: values.iter().map(|v| v.to_string()).collect(),
            health_check: None,
        }
    }

    /// Which record set this is in the zone.
    pub fn key(&self) -> RecordKey {
        RecordKey {
            name: normalize_name(&self.name),
            record_type: self.record_type,
            set_identifier: self.set_identifier.clone(),
        }
    }

    /// Checks Route 53's rules for this record in the zone `zone_name`.
    pub fn validate(&self, zone_name: &str) -> Result<(), ModelError> {
        let key = self.key();
        let bad = |m: String| Err(ModelError(format!("{key}: {m}")));
        let zone = normalize_name(zone_name);
        if !(key.name == zone || key.name.ends_with(&format!(".{zone}"))) {
            return bad(format!("the name is not in the hosted zone {zone}"));
        }
        if key.name.len() > 255 || key.name.split('.').any(|l| l.len() > 63) {
            return bad("the name is longer than DNS allows".into());
        }
        if self.set_identifier.is_empty() || self.set_identifier.len() > MAX_SET_IDENTIFIER {
            return bad(format!(
                "set_identifier must be 1 to {MAX_SET_IDENTIFIER} characters"
            ));
        }
        if self.values.is_empty() {
            return bad("no value to answer with".into());
        }
        match self.record_type {
            RecordType::A | RecordType::Aaaa => {
                for v in &self.values {
                    match v.parse::<IpAddr>() {
                        Ok(IpAddr::V4(_)) if self.record_type == RecordType::A => {}
                        Ok(IpAddr::V6(_)) if self.record_type == RecordType::Aaaa => {}
                        _ => {
                            return bad(format!(
                                "{v:?} is not an {} address",
                                if self.record_type == RecordType::A {
                                    "IPv4"
                                } else {
                                    "IPv6"
                                }
                            ));
                        }
                    }
                }
            }
            RecordType::Cname => {
                if self.values.len() != 1 {
                    return bad("a CNAME has exactly one target".into());
                }
                if key.name == zone {
                    return bad("a CNAME cannot be at the zone apex".into());
                }
            }
        }
        if i64::from(self.ttl) > i64::from(i32::MAX) {
            return bad("ttl too large".into());
        }
        if let Some(hc) = &self.health_check {
            hc.validate(&key.to_string())?;
        }
        Ok(())
    }

    /// The record set as Route 53 would hold it, with `health_check_id`.
    pub fn state(&self, health_check_id: Option<String>) -> RecordSetState {
        RecordSetState {
            key: self.key(),
            weight: i64::from(self.weight),
            ttl: i64::from(self.ttl),
            values: normalize_values(self.record_type, &self.values),
            health_check_id,
        }
    }
}

/// A record set's identity in a zone: name, type and set identifier.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RecordKey {
    /// Lower case with the trailing dot, as Route 53 returns it.
    pub name: String,
    pub record_type: RecordType,
    pub set_identifier: String,
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} [{}]",
            self.name, self.record_type, self.set_identifier
        )
    }
}

/// A weighted record set's contents, normalised for comparing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordSetState {
    pub key: RecordKey,
    pub weight: i64,
    pub ttl: i64,
    /// Normalised and sorted (see [`normalize_values`]).
    pub values: Vec<String>,
    pub health_check_id: Option<String>,
}

impl fmt::Display for RecordSetState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} weight {} ttl {} -> {}",
            self.key,
            self.weight,
            self.ttl,
            self.values.join(",")
        )?;
        if let Some(id) = &self.health_check_id {
            write!(f, " (health check {id})")?;
        }
        Ok(())
    }
}

/// A configuration the provider refuses before calling Route 53.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ModelError(pub String);

/// Lower case with one trailing dot: Route 53's form of a record name.
/// Route 53 lists characters other than `a-z0-9-_.` as octal escapes
/// (`*.kubernaut.io` as `\052.kubernaut.io`); they are decoded so that a
/// configured name and a listed one compare equal.
pub fn normalize_name(name: &str) -> String {
    let n = decode_octal_escapes(name.trim()).to_ascii_lowercase();
    let n = n.trim_end_matches('.');
    format!("{n}.")
}

/// `\ooo` (three octal digits) to the character; anything else as it is.
fn decode_octal_escapes(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let digit = |k: usize| u32::from(b[i + k] - b'0');
            let v = digit(1) * 64 + digit(2) * 8 + digit(3);
            if let Some(c) = char::from_u32(v).filter(char::is_ascii) {
                out.push(c);
                i += 4;
                continue;
            }
        }
        let ch = s[i..].chars().next().unwrap_or_default();
        out.push(ch);
        i += ch.len_utf8().max(1);
    }
    out
}

/// Lower case without the trailing dot: a health check's domain name.
pub fn normalize_host(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Addresses in their canonical text (so `2001:DB8:0::1` equals
/// `2001:db8::1`), CNAME targets as record names; sorted, since Route 53
/// answers a record set's values in no promised order.
pub fn normalize_values(record_type: RecordType, values: &[String]) -> Vec<String> {
    let mut out: Vec<String> = values
        .iter()
        .map(|v| match record_type {
            RecordType::Cname => normalize_name(v),
            RecordType::A | RecordType::Aaaa => v
                .trim()
                .parse::<IpAddr>()
                .map(|ip| ip.to_string())
                .unwrap_or_else(|_| v.trim().to_string()),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The deterministic `CallerReference` of the health check for `key` in
/// `zone_id` with `settings`: the same desired check always sends the same
/// reference, so a `CreateHealthCheck` retried after a lost answer returns
/// the check already made instead of a second one (Route 53's idempotency;
/// moto does not implement it, see docs/regions/route53.md). `attempt` > 0
/// adds a suffix, used when Route 53 refuses the plain one because a
/// deleted check used it (a configuration changed and then changed back).
pub fn caller_reference(
    zone_id: &str,
    key: &RecordKey,
    settings: &HealthCheckSettings,
    attempt: u64,
) -> String {
    let mut h = blake3::Hasher::new();
    for part in [
        zone_id,
        &key.name,
        key.record_type.as_str(),
        &key.set_identifier,
        &settings.canonical(),
    ] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let hex = h.finalize().to_hex();
    let base = format!("{CALLER_REFERENCE_PREFIX}{}", &hex[..32]);
    if attempt == 0 {
        base
    } else {
        format!("{base}-{attempt}")
    }
}

/// Every health check the provider makes has a caller reference starting
/// with this.
pub const CALLER_REFERENCE_PREFIX: &str = "lifeboat-";

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, t: RecordType, values: &[&str]) -> WeightedRecord {
        WeightedRecord::new(name, t, "us-east", values)
    }

    #[test]
    fn records_are_checked_against_route53_rules() {
        let zone = "kubernaut.io";
        let cname_apex = rec("kubernaut.io", RecordType::Cname, &["x.example.com"]);
        let mut long_set = rec("gw.kubernaut.io", RecordType::A, &["192.0.2.1"]);
        long_set.set_identifier = "x".repeat(129);
        let mut bad_interval = rec("gw.kubernaut.io", RecordType::A, &["192.0.2.1"]);
        bad_interval.health_check = Some(HealthCheckConfig {
            request_interval: 20,
            ..HealthCheckConfig::https("gw.us-east.kubernaut.io", "/healthz")
        });
        let mut tcp_path = rec("gw.kubernaut.io", RecordType::A, &["192.0.2.1"]);
        tcp_path.health_check = Some(HealthCheckConfig {
            check_type: HealthCheckType::Tcp,
            port: Some(5432),
            ..HealthCheckConfig::https("gw.us-east.kubernaut.io", "/healthz")
        });
        let mut private_ip = rec("gw.kubernaut.io", RecordType::A, &["192.0.2.1"]);
        private_ip.health_check = Some(HealthCheckConfig {
            ip_address: Some("10.1.2.3".parse().unwrap()),
            ..HealthCheckConfig::https("gw.us-east.kubernaut.io", "/healthz")
        });
        let mut ok_check = rec("GW.Kubernaut.IO.", RecordType::A, &["192.0.2.1"]);
        ok_check.health_check = Some(HealthCheckConfig::https("gw.us-east.kubernaut.io", "/"));
        let table: Vec<(WeightedRecord, Option<&str>)> = vec![
            (rec("gw.kubernaut.io", RecordType::A, &["192.0.2.1"]), None),
            (ok_check, None),
            (
                rec("gw.other.io", RecordType::A, &["192.0.2.1"]),
                Some("not in the hosted zone"),
            ),
            (
                rec("notkubernaut.io", RecordType::A, &["192.0.2.1"]),
                Some("not in the hosted zone"),
            ),
            (
                rec("gw.kubernaut.io", RecordType::A, &["2001:db8::1"]),
                Some("not an IPv4"),
            ),
            (
                rec("gw.kubernaut.io", RecordType::Aaaa, &["192.0.2.1"]),
                Some("not an IPv6"),
            ),
            (
                rec("gw.kubernaut.io", RecordType::Cname, &["a.x.io", "b.x.io"]),
                Some("exactly one target"),
            ),
            (cname_apex, Some("zone apex")),
            (rec("gw.kubernaut.io", RecordType::A, &[]), Some("no value")),
            (long_set, Some("set_identifier")),
            (bad_interval, Some("request_interval 20")),
            (tcp_path, Some("no path")),
            (private_ip, Some("private")),
        ];
        for (r, want) in table {
            let got = r.validate(zone);
            match want {
                None => assert_eq!(got, Ok(()), "{r:?}"),
                Some(w) => {
                    let e = got.expect_err(w).0;
                    assert!(e.contains(w), "{e} should say {w}");
                }
            }
        }
    }

    #[test]
    fn settings_fill_in_route53_defaults() {
        let https = HealthCheckConfig::https("GW.us-east.Kubernaut.io.", "/healthz");
        let s = https.settings();
        assert_eq!(s.api_type, "HTTPS");
        assert_eq!(s.port, 443);
        assert_eq!(s.fqdn.as_deref(), Some("gw.us-east.kubernaut.io"));
        assert!(s.enable_sni);
        let table = [
            (HealthCheckType::Http, None, "HTTP", 80),
            (HealthCheckType::Http, Some("ok"), "HTTP_STR_MATCH", 80),
            (HealthCheckType::Https, Some("ok"), "HTTPS_STR_MATCH", 443),
        ];
        for (t, search, api, port) in table {
            let c = HealthCheckConfig {
                check_type: t,
                search_string: search.map(str::to_string),
                ..https.clone()
            };
            assert_eq!(c.settings().api_type, api);
            assert_eq!(c.settings().port, port);
        }
        let tcp = HealthCheckConfig {
            check_type: HealthCheckType::Tcp,
            ip_address: Some("198.51.100.7".parse().unwrap()),
            fqdn: None,
            port: Some(5432),
            resource_path: None,
            search_string: None,
            request_interval: 10,
            failure_threshold: 2,
        };
        let s = tcp.settings();
        assert_eq!(
            (s.api_type.as_str(), s.port, s.enable_sni),
            ("TCP", 5432, false)
        );
    }

    #[test]
    fn replacement_only_for_what_update_cannot_change() {
        let base = HealthCheckConfig::https("gw.kubernaut.io", "/healthz").settings();
        let with = |f: &dyn Fn(&mut HealthCheckSettings)| {
            let mut s = base.clone();
            f(&mut s);
            s
        };
        let table: Vec<(HealthCheckSettings, bool)> = vec![
            (with(&|s| s.port = 8443), false),
            (with(&|s| s.resource_path = Some("/ready".into())), false),
            (with(&|s| s.failure_threshold = 5), false),
            (with(&|s| s.fqdn = Some("other.kubernaut.io".into())), false),
            (
                with(&|s| s.ip_address = Some("198.51.100.1".parse().unwrap())),
                false,
            ),
            (with(&|s| s.request_interval = 10), true),
            (with(&|s| s.api_type = "HTTPS_STR_MATCH".into()), true),
        ];
        for (want, replace) in table {
            assert_eq!(base.needs_replacement(&want), replace, "{want}");
        }
        let with_ip = with(&|s| s.ip_address = Some("198.51.100.1".parse().unwrap()));
        assert!(
            with_ip.needs_replacement(&base),
            "an IP address cannot be reset"
        );
    }

    #[test]
    fn values_compare_in_canonical_form() {
        assert_eq!(
            normalize_values(
                RecordType::Aaaa,
                &[
                    "2001:DB8:0::1".into(),
                    "2001:db8::1".into(),
                    "2001:db8::0".into()
                ]
            ),
            vec!["2001:db8::".to_string(), "2001:db8::1".to_string()]
        );
        assert_eq!(
            normalize_values(RecordType::Cname, &["GW.us-east.kubernaut.io".into()]),
            vec!["gw.us-east.kubernaut.io.".to_string()]
        );
        assert_eq!(normalize_name("Gw.Kubernaut.io"), "gw.kubernaut.io.");
        assert_eq!(normalize_name("gw.kubernaut.io."), "gw.kubernaut.io.");
        assert_eq!(normalize_name("\\052.Kubernaut.io."), "*.kubernaut.io.");
        assert_eq!(normalize_name("a\\1.kubernaut.io"), "a\\1.kubernaut.io.");
        assert_eq!(normalize_name("\\05"), "\\05.");
    }

    #[test]
    fn caller_reference_is_deterministic_and_fits() {
        let key = rec("gw.kubernaut.io", RecordType::A, &["192.0.2.1"]).key();
        let s = HealthCheckConfig::https("gw.us-east.kubernaut.io", "/healthz").settings();
        let a = caller_reference("Z1", &key, &s, 0);
        assert_eq!(a, caller_reference("Z1", &key, &s, 0));
        assert!(a.starts_with(CALLER_REFERENCE_PREFIX));
        assert!(a.len() <= 64, "Route 53 allows 64 characters");
        let mut other = s.clone();
        other.failure_threshold = 4;
        assert_ne!(a, caller_reference("Z1", &key, &other, 0));
        assert_ne!(a, caller_reference("Z2", &key, &s, 0));
        let mut eu = key.clone();
        eu.set_identifier = "eu-west".into();
        assert_ne!(a, caller_reference("Z1", &eu, &s, 0));
        let retry = caller_reference("Z1", &key, &s, 1_786_000_000);
        assert!(retry.starts_with(&a) && retry.len() <= 64, "{retry}");
    }
}
