//! One probe of one check, with Route 53's timing rules
//! ([how Route 53 determines whether a health check is healthy](https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/dns-failover-determining-health-of-endpoints.html)):
//!
//! - TCP: a connection established within 10 s (nothing is sent).
//! - HTTP and HTTPS: a TCP connection within 4 s; then, within 2 s after
//!   connecting, a status line with a 2xx or 3xx code (redirects are not
//!   followed). For HTTPS the TLS handshake is part of those 2 s, and the
//!   certificate is **not** validated (see [`super::tls`]).
//! - With a search string: within 2 s after the status, the string must
//!   appear entirely in the first 5,120 bytes of the body. The probe stops
//!   reading as soon as it is found (or 5,120 bytes or the body's end came).
//!
//! The request is `GET <resource path>` over HTTP/1.1 with a `Host` header
//! as Route 53 builds it ([`CheckSpec::host_header`]) and
//! `User-Agent: Lifeboat-Health-Check` (Route 53 sends
//! `Amazon-Route53-Health-Check-Service`), one connection per probe.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{CONNECTION, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};

use super::outcome::{Failure, Outcome, Success};
use super::spec::{CheckKind, CheckSpec};

/// The `User-Agent` of every HTTP(S) probe.
pub const USER_AGENT_VALUE: &str = "Lifeboat-Health-Check";
/// How much of the body a search string is looked for in (Route 53: 5,120 bytes).
pub const SEARCH_WINDOW: usize = 5120;

/// The time limits of a probe. [`Timeouts::ROUTE53`] are Route 53's and the
/// default; others are for callers that deliberately differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// HTTP(S): resolving the name and establishing the TCP connection.
    pub connect_http: Duration,
    /// TCP checks: resolving the name and establishing the connection.
    pub connect_tcp: Duration,
    /// HTTP(S): from the connection to the status line and headers (the TLS
    /// handshake included).
    pub response: Duration,
    /// With a search string: from the status to the searched body bytes.
    pub body: Duration,
}

impl Timeouts {
    pub const ROUTE53: Timeouts = Timeouts {
        connect_http: Duration::from_secs(4),
        connect_tcp: Duration::from_secs(10),
        response: Duration::from_secs(2),
        body: Duration::from_secs(2),
    };
}

impl Timeouts {
    /// These limits, none longer than the check's `interval` (at least
    /// 100 ms): probes of one check run one after the other, so a probe
    /// that may outlast the interval would space the probes of a silent
    /// endpoint (a partitioned region: no refusal, no answer) by the time
    /// limit instead of the interval, and a threshold of 3 at 1 s would
    /// take 30 s to confirm. Route 53's own intervals (10 s, 30 s) keep
    /// its limits.
    pub fn within(self, interval: Duration) -> Timeouts {
        let cap = interval.max(Duration::from_millis(100));
        Timeouts {
            connect_http: self.connect_http.min(cap),
            connect_tcp: self.connect_tcp.min(cap),
            response: self.response.min(cap),
            body: self.body.min(cap),
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::ROUTE53
    }
}

/// Probes `spec` once with Route 53's time limits.
pub async fn probe(spec: &CheckSpec) -> Outcome {
    probe_with(spec, &Timeouts::ROUTE53).await
}

/// Probes `spec` once with the given time limits.
pub async fn probe_with(spec: &CheckSpec, timeouts: &Timeouts) -> Outcome {
    let result = match spec.kind {
        CheckKind::Tcp => connect(spec, timeouts.connect_tcp)
            .await
            .map(|_| Success::Connected),
        CheckKind::Http => match connect(spec, timeouts.connect_http).await {
            Ok(stream) => {
                let deadline = Instant::now() + timeouts.response;
                exchange(stream, spec, deadline, timeouts.body).await
            }
            Err(e) => Err(e),
        },
        CheckKind::Https => match connect(spec, timeouts.connect_http).await {
            Ok(stream) => {
                let deadline = Instant::now() + timeouts.response;
                match handshake(stream, spec, deadline, timeouts.response).await {
                    Ok(tls) => exchange(tls, spec, deadline, timeouts.body).await,
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(s) => Outcome::Success(s),
        Err(f) => Outcome::Failure(f),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Resolves the host and connects to its addresses in turn, all within `limit`.
async fn connect(spec: &CheckSpec, limit: Duration) -> Result<TcpStream, Failure> {
    let attempt = async {
        let addrs: Vec<_> = tokio::net::lookup_host((spec.host.as_str(), spec.port))
            .await
            .map_err(|e| Failure::Resolve {
                message: format!("{}: {e}", spec.host),
            })?
            .collect();
        let mut last = Failure::Resolve {
            message: format!("{}: no address", spec.host),
        };
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => {
                    last = match e.kind() {
                        std::io::ErrorKind::ConnectionRefused => Failure::Refused,
                        std::io::ErrorKind::TimedOut => Failure::ConnectTimeout {
                            timeout_ms: millis(limit),
                        },
                        _ => Failure::Connect {
                            message: format!("{addr}: {e}"),
                        },
                    }
                }
            }
        }
        Err::<TcpStream, Failure>(last)
    };
    match timeout(limit, attempt).await {
        Ok(r) => r,
        Err(_) => Err(Failure::ConnectTimeout {
            timeout_ms: millis(limit),
        }),
    }
}

/// The TLS handshake, before `deadline`. The server name (SNI) is the host
/// when it is a DNS name; an IP address is sent as none.
async fn handshake(
    stream: TcpStream,
    spec: &CheckSpec,
    deadline: Instant,
    limit: Duration,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Failure> {
    let name = rustls::pki_types::ServerName::try_from(spec.host.clone()).map_err(|e| {
        Failure::TlsHandshake {
            message: format!("{:?} is not a valid TLS server name: {e}", spec.host),
        }
    })?;
    let connector = tokio_rustls::TlsConnector::from(super::tls::client_config());
    match timeout_at(deadline, connector.connect(name, stream)).await {
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(e)) => Err(Failure::TlsHandshake {
            message: e.to_string(),
        }),
        Err(_) => Err(Failure::TlsHandshake {
            message: format!("not completed within {} ms after connecting", millis(limit)),
        }),
    }
}

/// `GET` the resource path on `io`; the status before `deadline`, then the
/// search string (if any) within `body_limit` after the status.
async fn exchange<S>(
    io: S,
    spec: &CheckSpec,
    deadline: Instant,
    body_limit: Duration,
) -> Result<Success, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let response_ms = millis(deadline.saturating_duration_since(Instant::now()));
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(io))
            .await
            .map_err(|e| Failure::BadResponse {
                message: e.to_string(),
            })?;
    // The connection is driven by its own task, aborted when the probe ends.
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let request = hyper::Request::builder()
        .method(hyper::Method::GET)
        .uri(spec.request_target())
        .header(HOST, spec.host_header())
        .header(USER_AGENT, USER_AGENT_VALUE)
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| Failure::BadResponse {
            message: format!(
                "cannot build the request for {:?}: {e}",
                spec.request_target()
            ),
        })?;
    let response = match timeout_at(deadline, sender.send_request(request)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return Err(Failure::BadResponse {
                message: e.to_string(),
            });
        }
        Err(_) => {
            return Err(Failure::ResponseTimeout {
                timeout_ms: response_ms.max(1),
            });
        }
    };
    let code = response.status().as_u16();
    if !(200..400).contains(&code) {
        return Err(Failure::Status { code });
    }
    let Some(needle) = spec.search_string.as_deref() else {
        return Ok(Success::Status { code });
    };
    let body_deadline = Instant::now() + body_limit;
    let mut body = response.into_body();
    let mut window: Vec<u8> = Vec::with_capacity(SEARCH_WINDOW);
    loop {
        if contains(&window, needle.as_bytes()) {
            return Ok(Success::StringFound { code });
        }
        if window.len() >= SEARCH_WINDOW {
            break;
        }
        match timeout_at(body_deadline, body.frame()).await {
            Err(_) => {
                return Err(Failure::BodyTimeout {
                    timeout_ms: millis(body_limit),
                    received: window.len(),
                });
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(Failure::BadResponse {
                    message: format!("reading the body: {e}"),
                });
            }
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let room = SEARCH_WINDOW - window.len();
                    window.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
        }
    }
    Err(Failure::StringNotFound {
        code,
        searched: window.len(),
    })
}

/// Whether `needle` is in `haystack` (an empty needle always is).
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::contains;

    #[test]
    fn contains_table() {
        let cases: &[(&[u8], &[u8], bool)] = &[
            (b"", b"", true),
            (b"abc", b"", true),
            (b"", b"a", false),
            (b"status: ok", b"ok", true),
            (b"status: o", b"ok", false),
            (b"okay", b"ok", true),
        ];
        for (h, n, want) in cases {
            assert_eq!(contains(h, n), *want, "{h:?} {n:?}");
        }
    }
}
