//! What one probe found: success or failure, with the reason a person
//! reads (Route 53 shows "the reason for the last health check failure").

use serde::{Deserialize, Serialize};

/// The result of one probe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    Success(Success),
    Failure(Failure),
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success(_))
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Success(s) => write!(f, "success: {s}"),
            Outcome::Failure(e) => write!(f, "failure: {e}"),
        }
    }
}

/// Why a probe succeeded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Success {
    /// TCP: the connection was established.
    Connected,
    /// HTTP(S): a 2xx or 3xx status (redirects are not followed, as in Route 53).
    Status { code: u16 },
    /// HTTP(S) with a search string: a 2xx/3xx status and the string within
    /// the first 5,120 bytes of the body.
    StringFound { code: u16 },
}

impl std::fmt::Display for Success {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Success::Connected => f.write_str("connected"),
            Success::Status { code } => write!(f, "status {code}"),
            Success::StringFound { code } => write!(f, "status {code}, search string found"),
        }
    }
}

/// Why a probe failed. The kind names the step that failed; `message`s
/// carry the operating system's or the TLS library's words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    /// The host name did not resolve to any address.
    Resolve { message: String },
    /// The endpoint refused the connection (nothing listens on the port).
    Refused,
    /// No connection within the connect timeout (4 s HTTP(S), 10 s TCP).
    ConnectTimeout { timeout_ms: u64 },
    /// Any other connect error (unreachable network, reset, ...).
    Connect { message: String },
    /// The TLS handshake failed (not a certificate problem: certificates
    /// are not validated).
    TlsHandshake { message: String },
    /// No status line and headers within 2 s after connecting.
    ResponseTimeout { timeout_ms: u64 },
    /// The answer was not HTTP, or the connection closed before the status.
    BadResponse { message: String },
    /// A status other than 2xx or 3xx.
    Status { code: u16 },
    /// With a search string: the first 5,120 bytes of the body did not
    /// arrive within 2 s after the status.
    BodyTimeout { timeout_ms: u64, received: usize },
    /// With a search string: not within the first 5,120 bytes of the body
    /// (`searched` bytes were looked at: fewer when the body was shorter).
    StringNotFound { code: u16, searched: usize },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Resolve { message } => write!(f, "host name did not resolve: {message}"),
            Failure::Refused => f.write_str("connection refused"),
            Failure::ConnectTimeout { timeout_ms } => {
                write!(f, "no connection within {timeout_ms} ms")
            }
            Failure::Connect { message } => write!(f, "connect failed: {message}"),
            Failure::TlsHandshake { message } => write!(f, "TLS handshake failed: {message}"),
            Failure::ResponseTimeout { timeout_ms } => {
                write!(
                    f,
                    "no response status within {timeout_ms} ms after connecting"
                )
            }
            Failure::BadResponse { message } => write!(f, "not a valid HTTP response: {message}"),
            Failure::Status { code } => write!(f, "status {code} (2xx or 3xx needed)"),
            Failure::BodyTimeout {
                timeout_ms,
                received,
            } => write!(
                f,
                "response body incomplete {timeout_ms} ms after the status ({received} bytes received)"
            ),
            Failure::StringNotFound { code, searched } => write!(
                f,
                "status {code}, but the search string is not in the first {searched} bytes of the body"
            ),
        }
    }
}
