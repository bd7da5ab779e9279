//! How to reach the etcd cluster: endpoints, TLS, credentials, timeouts,
//! and the pure checks that refuse settings Lifeboat cannot use.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

/// The etcd cluster holding the authority.
#[derive(Clone)]
pub struct EtcdSettings {
    /// Every member's client URL, `http://host:port` or `https://host:port`
    /// (all the same scheme). Give all members: the client fails over between
    /// them.
    pub endpoints: Vec<String>,
    /// The key prefix of this Lifeboat cluster, e.g. `/lifeboat` (starts with
    /// `/`, does not end with one).
    pub prefix: String,
    /// TLS: required for `https` endpoints, refused for `http` ones.
    pub tls: Option<EtcdTls>,
    /// etcd user (etcd's `auth enable`); `None` when auth is off.
    pub user: Option<String>,
    /// The user's password; never printed (see the `Debug` impl).
    pub password: Option<Zeroizing<String>>,
    /// Bound on opening a connection to one member.
    pub dial_timeout: Duration,
    /// Bound on one operation, retries of idempotent reads included; then
    /// [`AuthorityError::Unavailable`](super::AuthorityError::Unavailable).
    pub request_timeout: Duration,
}

/// TLS towards etcd: the CA that signed the members' certificates and,
/// when etcd asks for client certificates (`--client-cert-auth`), ours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdTls {
    /// PEM file of the CA that signed the etcd members' server certificates.
    pub ca: PathBuf,
    /// PEM client certificate (with `key`).
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<PathBuf>,
}

impl EtcdSettings {
    /// Default prefix.
    pub const DEFAULT_PREFIX: &'static str = "/lifeboat";
    /// Default bound on connecting to one member.
    pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(3);
    /// Default bound on one operation (retries included). Shorter than the
    /// default lease TTL (10 s) minus the fence guard (3 s), so one failed
    /// renewal still leaves time to fence.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

    /// Plain-text endpoints, no auth, the default prefix and timeouts.
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdSettings {
            endpoints,
            prefix: Self::DEFAULT_PREFIX.to_string(),
            tls: None,
            user: None,
            password: None,
            dial_timeout: Self::DEFAULT_DIAL_TIMEOUT,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Everything wrong with these settings, each saying what to change;
    /// empty when they can be used.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.endpoints.is_empty() {
            out.push(
                "no etcd endpoints: give every member's client URL (http(s)://host:port); \
                 three or five members let a majority survive one or two failures"
                    .to_string(),
            );
        }
        for e in &self.endpoints {
            match parse_endpoint(e) {
                Err(why) => out.push(format!(
                    "etcd endpoint {e:?} {why}: write it as http://host:port or https://host:port"
                )),
                Ok(Scheme::Https) if self.tls.is_none() => out.push(format!(
                    "etcd endpoint {e:?} is https but no TLS settings are given: set the CA \
                     (and a client certificate and key when etcd requires them)"
                )),
                Ok(Scheme::Http) if self.tls.is_some() => out.push(format!(
                    "etcd endpoint {e:?} is plain http but TLS settings are given: use https \
                     endpoints, or drop the TLS settings"
                )),
                Ok(_) => {}
            }
        }
        if let Some(why) = prefix_problem(&self.prefix) {
            out.push(format!(
                "etcd prefix {:?} {why}: use something like /lifeboat",
                self.prefix
            ));
        }
        if let Some(tls) = &self.tls {
            match (&tls.cert, &tls.key) {
                (Some(_), None) => {
                    out.push("etcd TLS: a client certificate without its key".to_string())
                }
                (None, Some(_)) => {
                    out.push("etcd TLS: a client key without its certificate".to_string())
                }
                _ => {}
            }
            if tls.ca.as_os_str().is_empty() {
                out.push("etcd TLS: the CA file path is empty".to_string());
            }
        }
        match (&self.user, &self.password) {
            (Some(u), _) if u.trim().is_empty() => {
                out.push("etcd user is empty: give the user's name or no user".to_string())
            }
            (Some(_), None) => out.push(
                "etcd user given without a password: give the password (a secret reference)"
                    .to_string(),
            ),
            (None, Some(_)) => {
                out.push("etcd password given without a user: give the user's name too".to_string())
            }
            _ => {}
        }
        if self.dial_timeout.is_zero() {
            out.push("etcd dial timeout is zero: give a positive duration (e.g. 3s)".to_string());
        }
        if self.request_timeout.is_zero() {
            out.push(
                "etcd request timeout is zero: give a positive duration (e.g. 5s)".to_string(),
            );
        }
        out
    }

    /// The endpoints joined for messages.
    pub fn endpoint_list(&self) -> String {
        self.endpoints.join(", ")
    }
}

impl fmt::Debug for EtcdSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdSettings")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("dial_timeout", &self.dial_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

/// `http(s)://host:port` with nothing else (an optional trailing `/`).
fn parse_endpoint(e: &str) -> Result<Scheme, &'static str> {
    let (scheme, rest) = if let Some(r) = e.strip_prefix("http://") {
        (Scheme::Http, r)
    } else if let Some(r) = e.strip_prefix("https://") {
        (Scheme::Https, r)
    } else {
        return Err("has no http:// or https:// scheme");
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') || rest.contains('?') || rest.contains('#') {
        return Err("has a path");
    }
    if rest.contains('@') {
        return Err("has credentials in it (give user and password separately)");
    }
    let (host, port) = if let Some(r) = rest.strip_prefix('[') {
        // [v6]:port
        let Some((h, p)) = r.split_once("]:") else {
            return Err("has no port");
        };
        (h, p)
    } else {
        let Some((h, p)) = rest.rsplit_once(':') else {
            return Err("has no port");
        };
        (h, p)
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace()) {
        return Err("has no host");
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(scheme),
        _ => Err("has no valid port"),
    }
}

fn prefix_problem(p: &str) -> Option<&'static str> {
    if !p.starts_with('/') {
        Some("does not start with /")
    } else if p.len() == 1 {
        Some("is only /")
    } else if p.ends_with('/') {
        Some("ends with /")
    } else if p.contains("//") {
        Some("has an empty segment (//)")
    } else if p.chars().any(|c| c.is_control() || c.is_whitespace()) {
        Some("has spaces or control characters")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> EtcdSettings {
        EtcdSettings::new(vec![
            "http://10.0.0.1:2379".into(),
            "http://etcd-2.example:2379/".into(),
            "http://[::1]:2379".into(),
        ])
    }

    fn tls() -> Option<EtcdTls> {
        Some(EtcdTls {
            ca: "/etc/etcd/ca.pem".into(),
            cert: None,
            key: None,
        })
    }

    #[test]
    fn problems_table() {
        type Edit = fn(&mut EtcdSettings);
        let cases: Vec<(&str, Edit, Option<&str>)> = vec![
            ("valid", |_| {}, None),
            (
                "no endpoints",
                |s| s.endpoints.clear(),
                Some("no etcd endpoints"),
            ),
            (
                "no scheme",
                |s| s.endpoints = vec!["10.0.0.1:2379".into()],
                Some("no http:// or https://"),
            ),
            (
                "other scheme",
                |s| s.endpoints = vec!["unix:///run/etcd.sock".into()],
                Some("no http:// or https://"),
            ),
            (
                "no port",
                |s| s.endpoints = vec!["http://10.0.0.1".into()],
                Some("has no port"),
            ),
            (
                "bad port",
                |s| s.endpoints = vec!["http://10.0.0.1:99999".into()],
                Some("no valid port"),
            ),
            (
                "port 0",
                |s| s.endpoints = vec!["http://10.0.0.1:0".into()],
                Some("no valid port"),
            ),
            (
                "no host",
                |s| s.endpoints = vec!["http://:2379".into()],
                Some("has no host"),
            ),
            (
                "path",
                |s| s.endpoints = vec!["http://h:2379/v3".into()],
                Some("has a path"),
            ),
            (
                "userinfo",
                |s| s.endpoints = vec!["http://u:p@h:2379".into()],
                Some("credentials"),
            ),
            (
                "https without tls",
                |s| s.endpoints = vec!["https://h:2379".into()],
                Some("no TLS settings"),
            ),
            (
                "https with tls",
                |s| {
                    s.endpoints = vec!["https://h:2379".into()];
                    s.tls = tls();
                },
                None,
            ),
            (
                "http with tls",
                |s| {
                    s.endpoints = vec!["http://h:2379".into()];
                    s.tls = tls();
                },
                Some("plain http but TLS"),
            ),
            (
                "cert without key",
                |s| {
                    s.endpoints = vec!["https://h:2379".into()];
                    s.tls = tls();
                    s.tls.as_mut().unwrap().cert = Some("/c.pem".into());
                },
                Some("without its key"),
            ),
            (
                "key without cert",
                |s| {
                    s.endpoints = vec!["https://h:2379".into()];
                    s.tls = tls();
                    s.tls.as_mut().unwrap().key = Some("/k.pem".into());
                },
                Some("without its certificate"),
            ),
            (
                "prefix relative",
                |s| s.prefix = "lifeboat".into(),
                Some("does not start with /"),
            ),
            ("prefix root", |s| s.prefix = "/".into(), Some("is only /")),
            (
                "prefix trailing",
                |s| s.prefix = "/lifeboat/".into(),
                Some("ends with /"),
            ),
            (
                "prefix empty segment",
                |s| s.prefix = "/a//b".into(),
                Some("empty segment"),
            ),
            (
                "prefix space",
                |s| s.prefix = "/life boat".into(),
                Some("spaces"),
            ),
            (
                "nested prefix",
                |s| s.prefix = "/org/lifeboat-prod".into(),
                None,
            ),
            (
                "user without password",
                |s| s.user = Some("lifeboat".into()),
                Some("without a password"),
            ),
            (
                "password without user",
                |s| s.password = Some(Zeroizing::new("pw".into())),
                Some("without a user"),
            ),
            (
                "empty user",
                |s| {
                    s.user = Some(" ".into());
                    s.password = Some(Zeroizing::new("pw".into()));
                },
                Some("user is empty"),
            ),
            (
                "user and password",
                |s| {
                    s.user = Some("lifeboat".into());
                    s.password = Some(Zeroizing::new("pw".into()));
                },
                None,
            ),
            (
                "zero dial",
                |s| s.dial_timeout = Duration::ZERO,
                Some("dial timeout is zero"),
            ),
            (
                "zero request",
                |s| s.request_timeout = Duration::ZERO,
                Some("request timeout is zero"),
            ),
        ];
        for (name, edit, want) in cases {
            let mut s = ok();
            edit(&mut s);
            let p = s.problems();
            match want {
                None => assert!(p.is_empty(), "{name}: unexpected problems {p:?}"),
                Some(w) => assert!(
                    p.len() == 1 && p[0].contains(w),
                    "{name}: want one problem containing {w:?}, got {p:?}"
                ),
            }
        }
    }

    #[test]
    fn debug_never_prints_the_password() {
        let mut s = ok();
        s.user = Some("lifeboat".into());
        s.password = Some(Zeroizing::new("hunter2-secret".into()));
        let d = format!("{s:?}");
        assert!(!d.contains("hunter2-secret"), "{d}");
        assert!(d.contains("<redacted>") && d.contains("lifeboat"), "{d}");
    }
}
