//! Errors from the cluster, classified so the CLI can pick an exit code and
//! say what to do.

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

/// A Kubernetes error with a message that says what to do.
#[derive(Debug)]
pub struct KubeError {
    pub kind: ErrorKind,
    pub message: String,
}

impl fmt::Display for KubeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for KubeError {}

impl KubeError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
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
