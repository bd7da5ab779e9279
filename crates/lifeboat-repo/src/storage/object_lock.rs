//! S3 Object Lock: reading a bucket's lock configuration and an object's
//! retention, and setting retention on objects a snapshot needs.
//!
//! `object_store` has no Object Lock API, so these few requests are made by
//! hand, but with `object_store`'s own pieces: its SigV4 signer
//! ([`AwsAuthorizer`]), the credential provider of the same builder the
//! repository storage uses (environment, config, web identity, instance
//! metadata: whatever `object_store` resolves), and its reqwest-based HTTP
//! client. That keeps one credential chain and one TLS stack; `aws-sdk-s3`
//! would bring a second of each (and minutes of build) for three calls.
//!
//! The calls (all idempotent, retried with exponential backoff on 5xx, 429
//! and connection failures):
//! - `GET ?object-lock` (GetObjectLockConfiguration): is Object Lock
//!   enabled on the bucket? A 404 `ObjectLockConfigurationNotFoundError`
//!   means no.
//! - `HEAD` an object: its `x-amz-object-lock-retain-until-date`.
//! - `PUT ?retention` (PutObjectRetention) with the mode and date. Without
//!   `s3:BypassGovernanceRetention` S3 only lets a retention be *extended*,
//!   which is all Lifeboat ever asks for.
//!
//! Objects are addressed path-style (`{endpoint}/{bucket}/{prefix}/{key}`),
//! as the repository storage addresses them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::aws::{AmazonS3ConfigKey, AwsAuthorizer, AwsCredential};
use object_store::client::{HttpClient, HttpConnector, HttpRequest, ReqwestConnector};
use object_store::{ClientConfigKey, ClientOptions, CredentialProvider};

use super::object::{S3Settings, s3_builder};
use super::{StorageError, StorageErrorKind, StorageResult};

/// Object Lock as an open repository uses it: the bucket client and the
/// retention to set (re-exported as `retain::ObjectLock`, which sets it on
/// what a snapshot needs).
#[derive(Debug, Clone)]
pub struct ObjectLock {
    pub client: ObjectLockClient,
    pub policy: RetentionPolicy,
}

/// How an object is retained (S3's two Object Lock modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionMode {
    /// Users with `s3:BypassGovernanceRetention` can shorten or remove it
    /// (an administrator's way out of a mistake). Lifeboat's default.
    Governance,
    /// Nobody, not even the account's root user, can shorten it.
    Compliance,
}

impl RetentionMode {
    fn as_s3(self) -> &'static str {
        match self {
            Self::Governance => "GOVERNANCE",
            Self::Compliance => "COMPLIANCE",
        }
    }
}

/// What retention Lifeboat sets: `mode` until at least `days` after the
/// backup. Objects are given `days + renew_slack_days`, and a later backup
/// renews an object only once less than `days` remain, so that daily
/// backups do not rewrite the retention of every shared pack every day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub mode: RetentionMode,
    pub days: u32,
}

impl RetentionPolicy {
    /// The default: GOVERNANCE for 35 days (a month of daily backups and
    /// slack to notice an attack).
    pub const DEFAULT: Self = Self {
        mode: RetentionMode::Governance,
        days: 35,
    };

    /// Extra days given on top of `days` when (re)setting retention.
    pub fn renew_slack_days(&self) -> u32 {
        (self.days / 5).clamp(1, 7)
    }
}

/// Signed Object Lock requests against one bucket and repository prefix.
#[derive(Debug, Clone)]
pub struct ObjectLockClient {
    http: HttpClient,
    credentials: Arc<dyn CredentialProvider<Credential = AwsCredential>>,
    region: String,
    /// `{endpoint}/{bucket}`, no trailing slash.
    bucket_url: String,
    /// The repository prefix inside the bucket, with a trailing `/`, or empty.
    prefix: String,
    location: String,
}

const ATTEMPTS: u32 = 5;

impl ObjectLockClient {
    /// A client for `s3://bucket/prefix` with the same settings (and so the
    /// same credentials) as the repository storage.
    pub fn new(bucket: &str, prefix: &str, s3: &S3Settings) -> StorageResult<Self> {
        let location = format!("s3://{bucket}/{prefix}");
        let fail = |m: String| StorageError::new(StorageErrorKind::Permanent, "open", &location, m);
        let builder = s3_builder(bucket, s3);
        let region = builder
            .get_config_value(&AmazonS3ConfigKey::Region)
            .unwrap_or_else(|| "us-east-1".to_string());
        let endpoint = builder
            .get_config_value(&AmazonS3ConfigKey::Endpoint)
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let allow_http = builder
            .get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp))
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let store = builder
            .build()
            .map_err(|e| fail(format!("invalid S3 configuration: {e}")))?;
        let options = ClientOptions::new()
            .with_allow_http(allow_http)
            .with_timeout(Duration::from_secs(60))
            .with_connect_timeout(Duration::from_secs(5));
        let http = ReqwestConnector::default()
            .connect(&options)
            .map_err(|e| fail(format!("cannot create the HTTP client: {e}")))?;
        let prefix = prefix.trim_matches('/');
        Ok(Self {
            http,
            credentials: Arc::clone(store.credentials()),
            region,
            bucket_url: format!("{}/{bucket}", endpoint.trim_end_matches('/')),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            location,
        })
    }

    /// Is Object Lock enabled on the bucket? Also the bucket's default
    /// retention, if it has one (`(mode, days)`).
    pub async fn bucket_lock(&self) -> StorageResult<Option<Option<(RetentionMode, u32)>>> {
        let url = format!("{}?object-lock", self.bucket_url);
        let (status, body) = self
            .send(
                "object-lock-configuration",
                "",
                http::Method::GET,
                &url,
                None,
            )
            .await?;
        if status == 404 {
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            return Err(self.status_error("object-lock-configuration", "", status, &body));
        }
        let text = String::from_utf8_lossy(&body);
        if xml_value(&text, "ObjectLockEnabled").as_deref() != Some("Enabled") {
            return Ok(None);
        }
        let mode = match xml_value(&text, "Mode").as_deref() {
            Some("GOVERNANCE") => Some(RetentionMode::Governance),
            Some("COMPLIANCE") => Some(RetentionMode::Compliance),
            _ => None,
        };
        let days = xml_value(&text, "Days")
            .and_then(|d| d.parse::<u32>().ok())
            .or_else(|| {
                xml_value(&text, "Years")
                    .and_then(|y| y.parse::<u32>().ok())
                    .map(|y| y.saturating_mul(365))
            });
        Ok(Some(mode.zip(days)))
    }

    /// The retain-until date of the current version of `key`, if any.
    pub async fn retention(&self, key: &str) -> StorageResult<Option<DateTime<Utc>>> {
        let url = self.object_url(key);
        let request = self.request(http::Method::HEAD, &url, None)?;
        let response = self.execute("head-retention", key, &request, None).await?;
        let status = response.status().as_u16();
        if status == 404 {
            return Err(StorageError::not_found("head-retention", key));
        }
        if !(200..300).contains(&status) {
            return Err(self.status_error("head-retention", key, status, &[]));
        }
        Ok(response
            .headers()
            .get("x-amz-object-lock-retain-until-date")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
            .map(|d| d.with_timezone(&Utc)))
    }

    /// Sets `key`'s retention to `mode` until `until` (PutObjectRetention).
    pub async fn set_retention(
        &self,
        key: &str,
        mode: RetentionMode,
        until: DateTime<Utc>,
    ) -> StorageResult<()> {
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode><RetainUntilDate>{}</RetainUntilDate></Retention>",
            mode.as_s3(),
            until.format("%Y-%m-%dT%H:%M:%SZ")
        );
        let url = format!("{}?retention", self.object_url(key));
        let (status, reply) = self
            .send(
                "put-retention",
                key,
                http::Method::PUT,
                &url,
                Some(Bytes::from(body)),
            )
            .await?;
        if status == 404 {
            return Err(StorageError::not_found("put-retention", key));
        }
        if !(200..300).contains(&status) {
            return Err(self.status_error("put-retention", key, status, &reply));
        }
        Ok(())
    }

    fn object_url(&self, key: &str) -> String {
        // Repository keys are `[0-9a-z/_.-]`: nothing to escape.
        format!("{}/{}{key}", self.bucket_url, self.prefix)
    }

    fn request(
        &self,
        method: http::Method,
        url: &str,
        body: Option<Bytes>,
    ) -> StorageResult<HttpRequest> {
        let mut builder = http::Request::builder().method(method).uri(url);
        if let Some(body) = &body {
            // S3 requires an integrity header on PutObjectRetention.
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
            use base64::Engine as _;
            builder = builder
                .header("x-amz-sdk-checksum-algorithm", "SHA256")
                .header(
                    "x-amz-checksum-sha256",
                    base64::engine::general_purpose::STANDARD.encode(digest.as_ref()),
                )
                .header("content-type", "application/xml");
        }
        builder.body(body.unwrap_or_default().into()).map_err(|e| {
            StorageError::new(
                StorageErrorKind::Permanent,
                "object-lock",
                url,
                e.to_string(),
            )
        })
    }

    /// Sends one request (signed anew for every attempt), retrying
    /// transient failures; returns the final status and body.
    async fn send(
        &self,
        op: &'static str,
        key: &str,
        method: http::Method,
        url: &str,
        body: Option<Bytes>,
    ) -> StorageResult<(u16, Bytes)> {
        let request = self.request(method.clone(), url, body.clone())?;
        let response = self.execute(op, key, &request, body.clone()).await?;
        let status = response.status().as_u16();
        let bytes =
            response.into_body().bytes().await.map_err(|e| {
                StorageError::new(StorageErrorKind::Transient, op, key, e.to_string())
            })?;
        Ok((status, bytes))
    }

    async fn execute(
        &self,
        op: &'static str,
        key: &str,
        template: &HttpRequest,
        body: Option<Bytes>,
    ) -> StorageResult<object_store::client::HttpResponse> {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let credential = self.credentials.get_credential().await.map_err(|e| {
                StorageError::new(
                    StorageErrorKind::Permanent,
                    op,
                    key,
                    format!("no usable AWS credentials: {e}"),
                )
            })?;
            let mut request = http::Request::builder()
                .method(template.method().clone())
                .uri(template.uri().clone());
            for (k, v) in template.headers() {
                request = request.header(k, v);
            }
            let mut request: HttpRequest = request
                .body(body.clone().unwrap_or_default().into())
                .map_err(|e| {
                    StorageError::new(StorageErrorKind::Permanent, op, key, e.to_string())
                })?;
            AwsAuthorizer::new(&credential, "s3", &self.region)
                .try_authorize(&mut request, None)
                .map_err(|e| {
                    StorageError::new(StorageErrorKind::Permanent, op, key, e.to_string())
                })?;
            let transient = match self.http.execute(request).await {
                Ok(r) => {
                    let s = r.status().as_u16();
                    if (s == 429 || s >= 500) && attempt < ATTEMPTS {
                        format!("HTTP {s}")
                    } else {
                        return Ok(r);
                    }
                }
                Err(e) if attempt < ATTEMPTS => e.to_string(),
                Err(e) => {
                    return Err(StorageError::new(
                        StorageErrorKind::Transient,
                        op,
                        key,
                        format!("{e} (after {attempt} attempts, on {})", self.location),
                    ));
                }
            };
            tracing::debug!(op, key, attempt, error = %transient, "retrying an Object Lock request");
            let jitter = Duration::from_millis(rand::random::<u64>() % 50);
            tokio::time::sleep(delay + jitter).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    fn status_error(&self, op: &'static str, key: &str, status: u16, body: &[u8]) -> StorageError {
        let text = String::from_utf8_lossy(body);
        let code = xml_value(&text, "Code").unwrap_or_default();
        let message = xml_value(&text, "Message").unwrap_or_default();
        let hint = match status {
            403 => {
                " (the credentials lack s3:GetBucketObjectLockConfiguration, s3:GetObject or s3:PutObjectRetention: see docs/append-only.md)"
            }
            _ => "",
        };
        let kind = if status == 429 || status >= 500 {
            StorageErrorKind::Transient
        } else {
            StorageErrorKind::Permanent
        };
        StorageError::new(
            kind,
            op,
            key,
            format!("HTTP {status} {code} {message} on {}{hint}", self.location),
        )
        .refusing_writes(status == 403)
    }
}

/// The text of the first `<tag>…</tag>` in a small XML reply.
fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(xml[start..end].trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_xml_values() {
        let x = "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Days>7</Days></DefaultRetention></Rule></ObjectLockConfiguration>";
        assert_eq!(
            xml_value(x, "ObjectLockEnabled").as_deref(),
            Some("Enabled")
        );
        assert_eq!(xml_value(x, "Mode").as_deref(), Some("COMPLIANCE"));
        assert_eq!(xml_value(x, "Days").as_deref(), Some("7"));
        assert_eq!(xml_value(x, "Years"), None);
    }

    #[test]
    fn slack_is_bounded() {
        let p = |days| RetentionPolicy {
            mode: RetentionMode::Governance,
            days,
        };
        assert_eq!(p(1).renew_slack_days(), 1);
        assert_eq!(p(35).renew_slack_days(), 7);
        assert_eq!(p(365).renew_slack_days(), 7);
    }
}
