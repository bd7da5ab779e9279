//! Errors from the cluster, classified so the CLI can pick an exit code and
//! say what to do.
//!
//! Every call this crate makes to a cluster fails with a [`KubeError`]. The
//! modules that work offline have small error types of their own (a label
//! selector, a namespace map, a snapshot item, an export tree) so that a
//! caller never mistakes bad input for a cluster's refusal.

use std::error::Error as StdError;
use std::fmt;

/// What went wrong, for exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// An object, namespace or kind that is not there.
    NotFound,
    /// 401 or 403: credentials or RBAC.
    Denied,
    /// The API server cannot be reached.
    Unreachable,
    /// The request or the input was refused as invalid (400, 422).
    Invalid,
    Other,
}

/// Boxed cause of an error (a kubeconfig or I/O error under our context).
pub type Cause = Box<dyn StdError + Send + Sync + 'static>;

/// A Kubernetes error with a message that says what to do.
///
/// `message` is the whole text for errors classified from an API answer;
/// for a failure below the API (reading the kubeconfig) it is the context
/// and the underlying error is the [`source`](StdError::source), so
/// `anyhow`'s chain and `{:#}` print them as they did when this crate
/// returned `anyhow` errors.
#[derive(Debug)]
pub struct KubeError {
    pub kind: ErrorKind,
    pub message: String,
    cause: Option<Cause>,
}

impl fmt::Display for KubeError {
    /// The message; with `{:#}` followed by every cause (`: ` between), as
    /// `anyhow` prints a chain.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if f.alternate() {
            write_causes(f, self.source())?;
        }
        Ok(())
    }
}

impl StdError for KubeError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn StdError + 'static))
    }
}

/// Writes `: cause` for `first` and each of its sources.
pub(crate) fn write_causes(
    f: &mut fmt::Formatter<'_>,
    first: Option<&(dyn StdError + 'static)>,
) -> fmt::Result {
    let mut next = first;
    while let Some(c) = next {
        write!(f, ": {c}")?;
        next = c.source();
    }
    Ok(())
}

impl KubeError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            cause: None,
        }
    }

    /// `context` (what was being done) caused by `cause`.
    pub fn with_cause(
        kind: ErrorKind,
        context: impl Into<String>,
        cause: impl Into<Cause>,
    ) -> Self {
        Self {
            kind,
            message: context.into(),
            cause: Some(cause.into()),
        }
    }

    /// The kind a `kube` error is classified as (see [`KubeError::from_kube`]).
    pub fn kind_of(e: &kube::Error) -> ErrorKind {
        Self::from_kube(e, "").kind
    }

    /// Classifies a `kube` error met while doing `what` (e.g. `listing
    /// configmaps in kubernaut-system`).
    pub fn from_kube(e: &kube::Error, what: &str) -> Self {
        match e {
            kube::Error::Api(s) => {
                let code = s.code;
                let (kind, hint) = match code {
                    401 => (
                        ErrorKind::Denied,
                        "; the credentials were refused: check the kubeconfig's user or the service account token",
                    ),
                    403 => (
                        ErrorKind::Denied,
                        "; the service account lacks a permission: see deploy/rbac.yaml",
                    ),
                    404 => (ErrorKind::NotFound, ""),
                    400 | 422 => (ErrorKind::Invalid, ""),
                    _ => (ErrorKind::Other, ""),
                };
                // A path the server has no handler for (a kind it does not
                // serve) answers a plain-text 404 that kube cannot parse.
                if code == 404 && s.reason != "NotFound" {
                    return Self::new(
                        kind,
                        format!(
                            "{what}: 404: the API server does not serve this kind (is its CRD installed and Established?)"
                        ),
                    );
                }
                let reason = if s.reason.is_empty() {
                    String::new()
                } else {
                    format!(" {}", s.reason)
                };
                Self::new(kind, format!("{what}: {code}{reason}: {}{hint}", s.message))
            }
            kube::Error::HyperError(_) | kube::Error::Service(_) => Self::new(
                ErrorKind::Unreachable,
                format!(
                    "{what}: cannot reach the Kubernetes API server ({e}); check the kubeconfig's server address and the network"
                ),
            ),
            other => Self::new(ErrorKind::Other, format!("{what}: {other}")),
        }
    }

    /// [`KubeError::from_kube`] for a call made through
    /// [`crate::retry::call`]: when transient failures outlasted the retry
    /// budget, the message says so.
    pub fn from_failed(f: &crate::retry::Failed, what: &str) -> Self {
        let mut e = Self::from_kube(&f.error, what);
        e.message.push_str(&f.note());
        e
    }

    /// HTTP status of an API refusal, if that is what it was.
    pub fn status_code(e: &kube::Error) -> Option<u16> {
        match e {
            kube::Error::Api(s) => Some(s.code),
            _ => None,
        }
    }
}
