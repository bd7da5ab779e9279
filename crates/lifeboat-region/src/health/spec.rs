//! What one health check probes: Route 53's `HealthCheckConfig` for
//! endpoints (type, host, port, resource path, search string, request
//! interval, failure threshold), as plain values.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Route 53's default request interval (it allows 10 s or 30 s; any value is
/// accepted here, the configuration decides what it allows).
pub const DEFAULT_REQUEST_INTERVAL: Duration = Duration::from_secs(30);
/// Route 53's default failure threshold (it allows 1 to 10).
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
/// Route 53's default resource path.
pub const DEFAULT_RESOURCE_PATH: &str = "/";

/// The protocol a check speaks. String matching is not a kind of its own
/// (Route 53's `HTTP_STR_MATCH`/`HTTPS_STR_MATCH`): it is an HTTP or HTTPS
/// check with a [`CheckSpec::search_string`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    Http,
    Https,
    Tcp,
}

impl CheckKind {
    /// The port a URL of this kind implies (80, 443); none for TCP.
    pub fn default_port(self) -> Option<u16> {
        match self {
            CheckKind::Http => Some(80),
            CheckKind::Https => Some(443),
            CheckKind::Tcp => None,
        }
    }
}

impl std::fmt::Display for CheckKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CheckKind::Http => "HTTP",
            CheckKind::Https => "HTTPS",
            CheckKind::Tcp => "TCP",
        })
    }
}

/// One health check of a region's endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckSpec {
    /// Unique within the region; names the check in verdicts and metrics.
    pub name: String,
    pub kind: CheckKind,
    /// A DNS name or an IP address; it is also the `Host` header and, for
    /// HTTPS with a DNS name, the TLS server name (SNI).
    pub host: String,
    pub port: u16,
    /// The request path, with an optional query (`/healthz?full=1`); HTTP(S)
    /// only. Default `/`.
    pub resource_path: String,
    /// When set (HTTP(S) only), the check also needs this string entirely in
    /// the first 5,120 bytes of the response body.
    pub search_string: Option<String>,
    /// Time between two probes of this check from one vantage point.
    pub request_interval: Duration,
    /// Consecutive results that flip the status, in either direction (≥ 1;
    /// 0 is read as 1).
    pub failure_threshold: u32,
}

impl CheckSpec {
    /// A check with Route 53's defaults: path `/`, no search string, 30 s,
    /// threshold 3.
    pub fn new(
        name: impl Into<String>,
        kind: CheckKind,
        host: impl Into<String>,
        port: u16,
    ) -> Self {
        CheckSpec {
            name: name.into(),
            kind,
            host: host.into(),
            port,
            resource_path: DEFAULT_RESOURCE_PATH.to_string(),
            search_string: None,
            request_interval: DEFAULT_REQUEST_INTERVAL,
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
        }
    }

    /// The threshold actually applied (at least 1).
    pub fn threshold(&self) -> u32 {
        self.failure_threshold.max(1)
    }

    /// The `Host` header Route 53 would send: the host alone on the kind's
    /// default port (80 for HTTP, 443 for HTTPS), `host:port` otherwise; an
    /// IPv6 address in brackets.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.kind.default_port() {
            Some(p) if p == self.port => host,
            _ => format!("{host}:{}", self.port),
        }
    }

    /// The request target: the resource path with a leading `/` added when
    /// it has none (Route 53 adds it too), `/` when empty.
    pub fn request_target(&self) -> String {
        if self.resource_path.starts_with('/') {
            self.resource_path.clone()
        } else {
            format!("/{}", self.resource_path)
        }
    }

    /// Where the probe goes, for messages: `https://host:port/path`, `tcp://host:port`.
    pub fn endpoint(&self) -> String {
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.kind {
            CheckKind::Tcp => format!("tcp://{host}:{}", self.port),
            CheckKind::Http => format!("http://{host}:{}{}", self.port, self.request_target()),
            CheckKind::Https => format!("https://{host}:{}{}", self.port, self.request_target()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_route53s() {
        let s = CheckSpec::new("web", CheckKind::Http, "example.com", 80);
        assert_eq!(s.resource_path, "/");
        assert_eq!(s.request_interval, Duration::from_secs(30));
        assert_eq!(s.failure_threshold, 3);
        assert_eq!(s.search_string, None);
    }

    #[test]
    fn host_header_and_target_table() {
        let cases = [
            (CheckKind::Http, "example.com", 80, "", "example.com", "/"),
            (
                CheckKind::Http,
                "example.com",
                8080,
                "/healthz",
                "example.com:8080",
                "/healthz",
            ),
            (
                CheckKind::Https,
                "example.com",
                443,
                "healthz?x=1",
                "example.com",
                "/healthz?x=1",
            ),
            (
                CheckKind::Https,
                "example.com",
                80,
                "/",
                "example.com:80",
                "/",
            ),
            (CheckKind::Http, "127.0.0.1", 443, "/", "127.0.0.1:443", "/"),
            (CheckKind::Http, "::1", 80, "/", "[::1]", "/"),
            (CheckKind::Https, "::1", 8443, "/", "[::1]:8443", "/"),
            (
                CheckKind::Tcp,
                "db.example.com",
                5432,
                "/",
                "db.example.com:5432",
                "/",
            ),
        ];
        for (kind, host, port, path, header, target) in cases {
            let mut s = CheckSpec::new("c", kind, host, port);
            s.resource_path = path.to_string();
            assert_eq!(s.host_header(), header, "{kind} {host} {port}");
            assert_eq!(s.request_target(), target, "{kind} {host} {port} {path:?}");
        }
    }

    #[test]
    fn threshold_zero_reads_as_one() {
        let mut s = CheckSpec::new("c", CheckKind::Tcp, "h", 1);
        s.failure_threshold = 0;
        assert_eq!(s.threshold(), 1);
    }
}
