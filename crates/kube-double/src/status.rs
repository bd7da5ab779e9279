//! Error answers, shaped as the API server shapes them: a `v1` `Status`
//! object with `code`, `reason`, `message` and `details`, except for paths
//! the server has no handler for, which get Go's plain-text
//! `404 page not found` (see [`ApiError::no_route`]).

use serde_json::{Value, json};

/// An error answer. Built by the handlers, never shown to test code except
/// through [`crate::InsertError`]. Boxed: it travels in every `Result`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError(Box<ErrorBody>);

#[derive(Debug, Clone)]
pub(crate) struct ErrorBody {
    pub code: u16,
    pub reason: String,
    pub message: String,
    pub details: Option<Value>,
    /// Sent as `Retry-After` and `details.retryAfterSeconds`.
    pub retry_after: Option<u32>,
    /// Answer with the plain-text body of Go's `http.NotFound`.
    pub plain_text: bool,
    /// `Status.metadata` (a 410's `continue`).
    pub metadata: Option<Value>,
}

impl std::ops::Deref for ApiError {
    type Target = ErrorBody;
    fn deref(&self) -> &ErrorBody {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut ErrorBody {
        &mut self.0
    }
}

/// What a message names: `configmaps`, `deployments.apps`, `widgets.example.com`.
pub(crate) fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

fn details(group: &str, kind: &str, name: &str) -> Value {
    let mut d = serde_json::Map::new();
    if !name.is_empty() {
        d.insert("name".into(), json!(name));
    }
    if !group.is_empty() {
        d.insert("group".into(), json!(group));
    }
    d.insert("kind".into(), json!(kind));
    Value::Object(d)
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError(Box::new(ErrorBody {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details: None,
            retry_after: None,
            plain_text: false,
            metadata: None,
        }))
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// A path no handler serves, e.g. the group of a CRD that is not
    /// installed or not yet Established. The real server answers these with
    /// Go's `http.NotFound`: `404 page not found` as `text/plain`.
    pub fn no_route() -> Self {
        let mut e = ApiError::new(404, "NotFound", "404 page not found");
        e.plain_text = true;
        e
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(group, plural)),
        )
        .with_details(details(group, plural, name))
    }

    pub fn namespace_not_found(ns: &str) -> Self {
        ApiError::not_found("", "namespaces", ns)
    }

    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(group, plural)),
        )
        .with_details(details(group, plural, name))
    }

    /// A failed `resourceVersion` or `uid` precondition.
    pub fn conflict(group: &str, plural: &str, name: &str, why: &str) -> Self {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified(group, plural)
            ),
        )
        .with_details(details(group, plural, name))
    }

    /// 422 with one cause per `(field, message)`; the message format is the
    /// server's: `Kind.group "name" is invalid: field: message`, with
    /// several causes in brackets.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: &[(String, String)]) -> Self {
        let what = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let parts: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        let joined = if parts.len() == 1 {
            parts[0].clone()
        } else {
            format!("[{}]", parts.join(", "))
        };
        let mut d = details(group, kind, name);
        d["causes"] = Value::Array(
            causes
                .iter()
                .map(|(f, m)| {
                    let reason = if m.starts_with("Required value") {
                        "FieldValueRequired"
                    } else if m.starts_with("Unsupported value") {
                        "FieldValueNotSupported"
                    } else if m.starts_with("Too long") {
                        "FieldValueTooLong"
                    } else if m.starts_with("Duplicate value") {
                        "FieldValueDuplicate"
                    } else {
                        "FieldValueInvalid"
                    };
                    json!({"reason": reason, "message": m, "field": f})
                })
                .collect(),
        );
        ApiError::new(
            422,
            "Invalid",
            format!("{what} \"{name}\" is invalid: {joined}"),
        )
        .with_details(d)
    }

    pub fn method_not_allowed() -> Self {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> Self {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
        .with_details(json!({"causes": [{"reason": "UnexpectedServerResponse", "message": content_type}]}))
    }

    pub fn unauthorized() -> Self {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    /// The `v1` `Status` body.
    pub fn to_status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": self.metadata.clone().unwrap_or_else(|| json!({})),
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        let mut details = self.details.clone();
        if let Some(secs) = self.retry_after {
            let d = details.get_or_insert_with(|| json!({}));
            d["retryAfterSeconds"] = json!(secs);
        }
        if let Some(d) = details {
            v["details"] = d;
        }
        v
    }
}

/// The `Status` a successful DELETE of most built-in kinds answers with.
pub(crate) fn success_status(group: &str, plural: &str, name: &str, uid: &str) -> Value {
    let mut d = details(group, plural, name);
    d["uid"] = json!(uid);
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": d,
    })
}
