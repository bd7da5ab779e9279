//! The provider's errors: what Route 53 said, classified so that the
//! message says what to check next. Built from the error code the service
//! returned (or, when the SDK could not parse one, the `<Code>` in the
//! response body), never from the endpoint's spelling. No credential ever
//! reaches a message: the SDK's errors carry none, and AWS's messages are
//! cut to their first line.

use std::fmt;
use std::time::Duration;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_route53::error::{ProvideErrorMetadata, SdkError};

use super::plan::PlanError;

/// What went wrong talking to Route 53.
#[derive(Debug, thiserror::Error)]
pub enum Route53Error {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(
        "route53: {operation}: Route 53 refused the credentials ({code}: {message}). Check the credentials Lifeboat finds through the standard AWS chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws, web identity, container or instance role): that the key exists and is active, the secret belongs to it, a session token has not expired, and the clock is right"
    )]
    CredentialsRefused {
        operation: &'static str,
        code: String,
        message: String,
    },
    #[error(
        "route53: {operation}: the credentials are valid but not allowed to do this ({code}: {message}). Grant the IAM permissions listed in docs/regions/route53.md for this hosted zone"
    )]
    AccessDenied {
        operation: &'static str,
        code: String,
        message: String,
    },
    #[error(
        "route53: no AWS credentials found ({detail}). Provide them through the standard AWS chain (environment, AWS_PROFILE and ~/.aws, web identity, container or instance role); Lifeboat never takes them as flags"
    )]
    NoCredentials { detail: String },
    #[error(
        "route53: hosted zone {zone} does not exist for these credentials (NoSuchHostedZone). Check the configured hosted_zone_id (e.g. Z0123456789ABCDEFGHIJ) and the AWS account"
    )]
    NoSuchHostedZone { zone: String },
    #[error("route53: {operation} failed: {code}: {message}")]
    Api {
        operation: &'static str,
        code: String,
        message: String,
    },
    #[error(
        "route53: {operation}: could not get an answer from Route 53 ({detail}), after the SDK's retries; check the network path to the endpoint and try again"
    )]
    Transport {
        operation: &'static str,
        detail: String,
    },
    #[error(
        "route53: change {change_id} was still PENDING after {waited:?}; Route 53 normally syncs within a minute. Its records are accepted and will sync; `region traffic status` shows them"
    )]
    NotInSync { change_id: String, waited: Duration },
    #[error("route53: {0}")]
    Unexpected(String),
}

/// Codes meaning "these credentials are not accepted at all".
const CREDENTIAL_CODES: &[&str] = &[
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidSignatureException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "AuthFailure",
];
/// Codes meaning "accepted, but not allowed".
const DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
];

/// Classifies what the service said (code, message, HTTP status).
pub(crate) fn classify_service(
    operation: &'static str,
    zone: &str,
    code: Option<&str>,
    message: Option<&str>,
    status: u16,
) -> Route53Error {
    let message = first_line(message.unwrap_or(""));
    match code {
        Some(c) if CREDENTIAL_CODES.contains(&c) => Route53Error::CredentialsRefused {
            operation,
            code: c.to_string(),
            message,
        },
        Some(c) if DENIED_CODES.contains(&c) => Route53Error::AccessDenied {
            operation,
            code: c.to_string(),
            message,
        },
        Some("NoSuchHostedZone") => Route53Error::NoSuchHostedZone {
            zone: zone.to_string(),
        },
        Some(c) => Route53Error::Api {
            operation,
            code: c.to_string(),
            message,
        },
        None => Route53Error::Api {
            operation,
            code: format!("HTTP {status}"),
            message: if message.is_empty() {
                "no error code in the answer".into()
            } else {
                message
            },
        },
    }
}

/// Turns an SDK error into ours.
pub(crate) fn from_sdk<E>(
    operation: &'static str,
    zone: &str,
    err: SdkError<E, aws_sdk_route53::config::http::HttpResponse>,
) -> Route53Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(se) => {
            let raw = se.raw();
            let body = raw.body().bytes().map(String::from_utf8_lossy);
            let body_code = body.as_deref().and_then(|b| xml_element(b, "Code"));
            let body_message = body.as_deref().and_then(|b| xml_element(b, "Message"));
            let e = se.err();
            classify_service(
                operation,
                zone,
                e.code().or(body_code.as_deref()),
                e.message().or(body_message.as_deref()),
                raw.status().as_u16(),
            )
        }
        _ => {
            // The credentials chain's failure travels as a source of the
            // dispatch or construction failure.
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
            while let Some(e) = source {
                if let Some(c) = e.downcast_ref::<CredentialsError>() {
                    return Route53Error::NoCredentials {
                        detail: first_line(
                            &aws_sdk_route53::error::DisplayErrorContext(c).to_string(),
                        ),
                    };
                }
                source = e.source();
            }
            Route53Error::Transport {
                operation,
                detail: first_line(&aws_sdk_route53::error::DisplayErrorContext(&err).to_string()),
            }
        }
    }
}

/// The text of the first `<name>…</name>` in an XML error body (Route 53's
/// `<ErrorResponse><Error><Code>` and the `<Errors><Error><Code>` that
/// moto's IAM layer answers with alike).
fn xml_element(body: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = body.find(&open)? + open.len();
    let len = body[start..].find(&close)?;
    let text = body[start..start + len].trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    let mut out: String = line.chars().take(300).collect();
    if out.len() < line.len() {
        out.push('…');
    }
    out
}

/// An `apply` that failed: the cause, and what had been done before it (so
/// the message says whether anything changed).
#[derive(Debug)]
pub struct ApplyError {
    pub cause: Route53Error,
    /// The changes made before the failure, in order.
    pub done: Vec<String>,
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.cause)?;
        if self.done.is_empty() {
            write!(f, "; nothing was changed in Route 53")
        } else {
            write!(
                f,
                "; done before it: {}. Apply again: it continues from what is there (health checks made are recognised by their tags and caller reference)",
                self.done.join("; ")
            )
        }
    }
}

impl std::error::Error for ApplyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

impl From<Route53Error> for ApplyError {
    fn from(cause: Route53Error) -> Self {
        ApplyError {
            cause,
            done: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_errors_say_what_to_check() {
        let table: Vec<(Option<&str>, u16, &str)> = vec![
            (Some("InvalidClientTokenId"), 403, "refused the credentials"),
            (
                Some("SignatureDoesNotMatch"),
                403,
                "refused the credentials",
            ),
            (Some("ExpiredToken"), 403, "refused the credentials"),
            (Some("AccessDenied"), 403, "docs/regions/route53.md"),
            (Some("NoSuchHostedZone"), 404, "hosted_zone_id"),
            (Some("InvalidChangeBatch"), 400, "InvalidChangeBatch"),
            (None, 500, "HTTP 500"),
        ];
        for (code, status, want) in table {
            let e = classify_service(
                "ListResourceRecordSets",
                "Z1",
                code,
                Some("m\nsecond"),
                status,
            );
            let s = e.to_string();
            assert!(s.contains(want), "{code:?}: {s}");
            assert!(!s.contains("second"), "first line only: {s}");
        }
    }

    #[test]
    fn codes_are_found_in_either_xml_shape() {
        let r53 = "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>no</Message></Error></ErrorResponse>";
        let moto = "<ErrorResponse><Errors><Error><Code>InvalidClientTokenId</Code><Message>bad</Message></Error></Errors></ErrorResponse>";
        assert_eq!(xml_element(r53, "Code").as_deref(), Some("AccessDenied"));
        assert_eq!(
            xml_element(moto, "Code").as_deref(),
            Some("InvalidClientTokenId")
        );
        assert_eq!(xml_element(moto, "Message").as_deref(), Some("bad"));
        assert_eq!(xml_element("<x/>", "Code"), None);
    }

    #[test]
    fn apply_errors_say_whether_anything_changed() {
        let cause = || Route53Error::Unexpected("x".into());
        let none = ApplyError::from(cause()).to_string();
        assert!(none.contains("nothing was changed"), "{none}");
        let some = ApplyError {
            cause: cause(),
            done: vec!["created health check abc".into()],
        }
        .to_string();
        assert!(some.contains("created health check abc"), "{some}");
        assert!(some.contains("Apply again"), "{some}");
    }
}
