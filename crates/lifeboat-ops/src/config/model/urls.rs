//! URLs checked while the file is read: a repository URL (known scheme, no
//! embedded password), a PostgreSQL connection string (no password), and
//! the other URLs of the regions (Redis, Patroni's API) through
//! [`checked_url`].

use std::fmt;

use serde::{Deserialize, Serialize};
/// A repository URL, checked for an empty value, a known scheme and the
/// absence of an embedded password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RepoUrl(String);

impl RepoUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `s3`, `gs`, `az` or `file` (also for a plain path).
    pub fn scheme(&self) -> &str {
        match self.0.split_once("://") {
            Some((scheme, _)) => scheme,
            None => "file",
        }
    }

    fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err(
                "the repository url is empty; give a path, file:///path or s3://bucket/prefix"
                    .into(),
            );
        }
        if let Some((scheme, rest)) = s.split_once("://") {
            if !matches!(scheme, "file" | "s3" | "gs" | "az") {
                return Err(format!(
                    "unsupported repository scheme {scheme:?}; use a path, file:///path, s3://bucket/prefix, gs://bucket/prefix or az://container/prefix"
                ));
            }
            if scheme != "file" && rest.trim_matches('/').is_empty() {
                return Err(format!("the repository url {s:?} names no bucket"));
            }
            if password_in_authority(rest) {
                return Err("the repository url carries a password; give credentials by reference (repository.s3 or the AWS environment)".into());
            }
        }
        Ok(RepoUrl(s.to_string()))
    }
}

impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RepoUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RepoUrl::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `user:password@` in the authority part of a URL (after `scheme://`).
fn password_in_authority(after_scheme: &str) -> bool {
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
    match authority.rsplit_once('@') {
        Some((userinfo, _)) => userinfo.contains(':'),
        None => false,
    }
}

/// A PostgreSQL connection string, refused when it carries a password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PgUrl(String);

impl PgUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("the PostgreSQL url is empty".into());
        }
        let has_password = match s.split_once("://") {
            Some((scheme, rest)) => {
                if !matches!(scheme, "postgresql" | "postgres") {
                    return Err(format!(
                        "a PostgreSQL url starts with postgresql://, not {scheme}://"
                    ));
                }
                password_in_authority(rest)
                    || rest
                        .split_once('?')
                        .is_some_and(|(_, q)| q.split('&').any(|kv| kv.starts_with("password=")))
            }
            // key=value form
            None => s.split_whitespace().any(|kv| kv.starts_with("password=")),
        };
        if has_password {
            return Err(
                "the PostgreSQL url carries a password; remove it and use password: {env: …} or {file: …}".into(),
            );
        }
        Ok(PgUrl(s.to_string()))
    }
}

impl fmt::Display for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PgUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PgUrl::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `s` as a URL of one of `schemes`, refused when it carries a password;
/// `what` names it in messages ("Redis").
pub(crate) fn checked_url(s: &str, schemes: &[&str], what: &str) -> Result<String, String> {
    let s = s.trim();
    let want = || {
        schemes
            .iter()
            .map(|sc| format!("{sc}://"))
            .collect::<Vec<_>>()
            .join(" or ")
    };
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(format!(
            "the {what} url {s:?} does not start with {}",
            want()
        ));
    };
    if !schemes.contains(&scheme) {
        return Err(format!(
            "the {what} url starts with {scheme}://; use {}",
            want()
        ));
    }
    if rest.split(['/', '?', '#']).next().unwrap_or("").is_empty() {
        return Err(format!("the {what} url {s:?} names no host"));
    }
    if password_in_authority(rest) {
        return Err(format!(
            "the {what} url carries a password; remove it and use password: {{env: …}} or {{file: …}}"
        ));
    }
    Ok(s.to_string())
}
