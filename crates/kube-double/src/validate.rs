//! Validation the real server does and Lifeboat can run into: names,
//! labels, ConfigMap/Secret data, workload selectors, CRD shape; plus the
//! Secret `stringData` fold and the defaulting of `spec.replicas`.

use crate::resources::{Builtin, ResourceDef};
use crate::selector::{label_key_error, label_value_error};
use crate::status::ApiError;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};

pub(crate) const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const MAX_DATA_BYTES: usize = 1024 * 1024;

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase() || *c == b'-')
        && !b.iter().any(u8::is_ascii_uppercase)
}

pub(crate) fn dns1123_subdomain_error(s: &str) -> Option<String> {
    if s.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    if s.split('.').all(is_label) {
        None
    } else {
        Some(DNS1123_SUBDOMAIN_MSG.into())
    }
}

fn dns1123_label_error(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    if is_label(s) {
        None
    } else {
        Some(DNS1123_LABEL_MSG.into())
    }
}

fn dns1035_label_error(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    if is_label(s) && s.as_bytes()[0].is_ascii_lowercase() {
        None
    } else {
        Some(DNS1035_LABEL_MSG.into())
    }
}

/// The 422 the server gives for a bad `metadata.name` of this kind.
pub(crate) fn name_error(def: &ResourceDef, name: &str) -> Option<ApiError> {
    let msg = match def.builtin {
        Builtin::Namespace => dns1123_label_error(name),
        Builtin::Service => dns1035_label_error(name),
        _ => dns1123_subdomain_error(name),
    }?;
    Some(ApiError::invalid(
        &def.group,
        &def.kind,
        name,
        &[(
            "metadata.name".into(),
            format!("Invalid value: \"{name}\": {msg}"),
        )],
    ))
}

fn invalid_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

/// Keys of ConfigMap/Secret data.
fn data_key_error(k: &str) -> Option<String> {
    if k.is_empty()
        || k.len() > 253
        || !k
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        Some(format!(
            "Invalid value: \"{k}\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
        ))
    } else {
        None
    }
}

/// Shape errors the server reports as 400 (the body does not decode into
/// the kind's Go type), checked before anything else.
pub(crate) fn decode_errors(def: &ResourceDef, obj: &Value) -> Result<(), ApiError> {
    let bad = |m: String| {
        Err(ApiError::bad_request(format!(
            "{} in version \"v1\" cannot be handled as a {}: {m}",
            def.kind, def.kind
        )))
    };
    if let Some(md) = obj.get("metadata") {
        if !md.is_object() {
            return bad(
                "json: cannot unmarshal into Go struct field .metadata of type v1.ObjectMeta"
                    .into(),
            );
        }
        for f in ["labels", "annotations"] {
            if let Some(m) = md.get(f)
                && !m.is_null()
            {
                let ok = m
                    .as_object()
                    .is_some_and(|m| m.values().all(Value::is_string));
                if !ok {
                    return bad(format!(
                        "json: cannot unmarshal into Go struct field ObjectMeta.metadata.{f} of type map[string]string"
                    ));
                }
            }
        }
    }
    match def.builtin {
        Builtin::ConfigMap => {
            if let Some(d) = obj.get("data").filter(|d| !d.is_null())
                && !d
                    .as_object()
                    .is_some_and(|m| m.values().all(Value::is_string))
            {
                return bad("json: cannot unmarshal into Go struct field ConfigMap.data of type map[string]string".into());
            }
            check_base64_map(obj.get("binaryData"), &bad)?;
        }
        Builtin::Secret => {
            check_base64_map(obj.get("data"), &bad)?;
            if let Some(d) = obj.get("stringData").filter(|d| !d.is_null())
                && !d
                    .as_object()
                    .is_some_and(|m| m.values().all(Value::is_string))
            {
                return bad("json: cannot unmarshal into Go struct field Secret.stringData of type map[string]string".into());
            }
        }
        _ => {}
    }
    Ok(())
}

fn check_base64_map(
    v: Option<&Value>,
    bad: &dyn Fn(String) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let Some(m) = v.as_object() else {
        return bad("json: cannot unmarshal into map[string][]byte".into());
    };
    for s in m.values() {
        let Some(s) = s.as_str() else {
            return bad("json: cannot unmarshal into []byte".into());
        };
        if let Err(e) = B64.decode(s) {
            return bad(format!("illegal base64 data: {e}"));
        }
    }
    Ok(())
}

/// Server-side normalisation before validation: a Secret's `stringData`
/// is folded into base64 `data` and dropped; `type` defaults to `Opaque`;
/// workloads get `spec.replicas: 1` when absent; a Namespace gets its
/// `kubernetes.io/metadata.name` label, `spec.finalizers` and phase.
pub(crate) fn normalise(def: &ResourceDef, obj: &mut Value) {
    match def.builtin {
        Builtin::Secret => {
            fold_string_data(def, obj);
            if let Some(map) = obj.as_object_mut() {
                map.entry("type").or_insert_with(|| json!("Opaque"));
            }
        }
        Builtin::Deployment | Builtin::StatefulSet => {
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                spec.entry("replicas").or_insert_with(|| json!(1));
            }
        }
        Builtin::Namespace => {
            // The server keeps this label equal to the name, whatever the
            // client sends.
            let name = crate::util::str_at(obj, &["metadata", "name"])
                .unwrap_or_default()
                .to_string();
            let md = crate::util::metadata_mut(obj);
            let labels = crate::util::ensure_map(
                md.entry("labels")
                    .or_insert_with(|| Value::Object(Map::new())),
            );
            labels.insert("kubernetes.io/metadata.name".into(), json!(name));
            let Some(map) = obj.as_object_mut() else {
                return;
            };
            let spec = crate::util::ensure_map(
                map.entry("spec")
                    .or_insert_with(|| Value::Object(Map::new())),
            );
            spec.entry("finalizers")
                .or_insert_with(|| json!(["kubernetes"]));
            let status = crate::util::ensure_map(
                map.entry("status")
                    .or_insert_with(|| Value::Object(Map::new())),
            );
            status.insert("phase".into(), json!("Active"));
        }
        _ => {}
    }
}

/// A Secret's write-only `stringData` folded into base64 `data` (it wins
/// over `data` for the same key) and dropped, as the server does.
pub(crate) fn fold_string_data(def: &ResourceDef, obj: &mut Value) {
    if def.builtin != Builtin::Secret {
        return;
    }
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(sd)) = map.remove("stringData") {
        let data = map
            .entry("data")
            .or_insert_with(|| Value::Object(Map::new()));
        let data = crate::util::ensure_map(data);
        for (k, v) in sd {
            if let Value::String(s) = v {
                data.insert(k, Value::String(B64.encode(s.as_bytes())));
            }
        }
    }
}

/// The 422 checks, on the object as it would be stored. `old` is the
/// stored object on updates (immutable fields).
pub(crate) fn validate(
    def: &ResourceDef,
    obj: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let name = obj
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut causes: Vec<(String, String)> = Vec::new();
    if let Some(labels) = obj
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
    {
        for (k, v) in labels {
            if let Some(e) = label_key_error(k) {
                causes.push((
                    "metadata.labels".into(),
                    format!("Invalid value: \"{k}\": {e}"),
                ));
            }
            let v = v.as_str().unwrap_or_default();
            if let Some(e) = label_value_error(v) {
                causes.push((
                    "metadata.labels".to_string(),
                    format!("Invalid value: \"{v}\": {e}"),
                ));
            }
        }
    }
    if let Some(ann) = obj
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
    {
        let total: usize = ann
            .iter()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum();
        if total > 256 * 1024 {
            causes.push((
                "metadata.annotations".into(),
                "Too long: must have at most 262144 bytes".into(),
            ));
        }
    }
    match def.builtin {
        Builtin::ConfigMap | Builtin::Secret => {
            let mut total = 0usize;
            let mut seen = std::collections::BTreeSet::new();
            for field in ["data", "binaryData"] {
                if let Some(m) = obj.get(field).and_then(Value::as_object) {
                    for (k, v) in m {
                        if let Some(e) = data_key_error(k) {
                            causes.push((format!("{field}[{k}]"), e));
                        }
                        if !seen.insert(k.clone()) {
                            causes.push((
                                format!("{field}[{k}]"),
                                format!("Invalid value: \"{k}\": duplicate of key present in data"),
                            ));
                        }
                        let s = v.as_str().unwrap_or_default();
                        total += k.len()
                            + if def.builtin == Builtin::Secret || field == "binaryData" {
                                s.len() / 4 * 3
                            } else {
                                s.len()
                            };
                    }
                }
            }
            if total > MAX_DATA_BYTES {
                causes.push((
                    "data".into(),
                    format!("Too long: must have at most {MAX_DATA_BYTES} bytes"),
                ));
            }
            if def.builtin == Builtin::Secret
                && let Some(old) = old
                && old.get("type") != obj.get("type")
            {
                causes.push((
                    "type".into(),
                    format!(
                        "Invalid value: {}: field is immutable",
                        invalid_value(obj.get("type").unwrap_or(&Value::Null))
                    ),
                ));
            }
        }
        Builtin::Deployment | Builtin::StatefulSet => {
            let selector = obj.get("spec").and_then(|s| s.get("selector"));
            match selector.filter(|s| s.is_object()) {
                None => causes.push(("spec.selector".into(), "Required value".into())),
                Some(sel) => {
                    let labels = crate::util::at(obj, &["spec", "template", "metadata", "labels"])
                        .and_then(Value::as_object);
                    let ok = sel
                        .get("matchLabels")
                        .and_then(Value::as_object)
                        .map(|ml| {
                            ml.iter()
                                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
                        })
                        .unwrap_or(true);
                    if !ok || labels.is_none_or(|l| l.is_empty()) {
                        causes.push((
                            "spec.template.metadata.labels".into(),
                            format!(
                                "Invalid value: {}: `selector` does not match template `labels`",
                                invalid_value(&json!(
                                    labels
                                        .map(|l| Value::Object(l.clone()))
                                        .unwrap_or(json!({}))
                                ))
                            ),
                        ));
                    }
                    if let Some(old) = old
                        && old.get("spec").and_then(|s| s.get("selector")) != Some(sel)
                    {
                        causes.push((
                            "spec.selector".into(),
                            format!("Invalid value: {}: field is immutable", sel),
                        ));
                    }
                }
            }
            if let Some(r) = obj.get("spec").and_then(|s| s.get("replicas")) {
                match r.as_i64() {
                    Some(n) if n >= 0 => {}
                    _ => causes.push((
                        "spec.replicas".into(),
                        format!(
                            "Invalid value: {}: must be greater than or equal to 0",
                            invalid_value(r)
                        ),
                    )),
                }
            }
        }
        Builtin::Crd => crd_causes(obj, &name, &mut causes),
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&def.group, &def.kind, &name, &causes))
    }
}

fn crd_causes(obj: &Value, name: &str, causes: &mut Vec<(String, String)>) {
    let spec = obj.get("spec");
    let s = |path: &[&str]| {
        let mut cur = spec;
        for p in path {
            cur = cur.and_then(|c| c.get(p));
        }
        cur.and_then(Value::as_str).unwrap_or_default().to_string()
    };
    let group = s(&["group"]);
    let plural = s(&["names", "plural"]);
    if group.is_empty() {
        causes.push(("spec.group".into(), "Required value".into()));
    } else if !group.contains('.') {
        causes.push((
            "spec.group".into(),
            format!("Invalid value: \"{group}\": should be a domain with at least one dot"),
        ));
    }
    if plural.is_empty() {
        causes.push(("spec.names.plural".into(), "Required value".into()));
    }
    if s(&["names", "kind"]).is_empty() {
        causes.push(("spec.names.kind".into(), "Required value".into()));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push((
            "metadata.name".into(),
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let scope = s(&["scope"]);
    if scope != "Namespaced" && scope != "Cluster" {
        causes.push((
            "spec.scope".into(),
            format!(
                "Unsupported value: \"{scope}\": supported values: \"Cluster\", \"Namespaced\""
            ),
        ));
    }
    let versions = spec
        .and_then(|s| s.get("versions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push((
            "spec.versions".into(),
            "Invalid value: \"null\": must have exactly one version marked as storage version"
                .into(),
        ));
        return;
    }
    let storage = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if storage != 1 {
        causes.push((
            "spec.versions".into(),
            "Invalid value: []apiextensions.CustomResourceDefinitionVersion: must have exactly one version marked as storage version".into(),
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        let n = v.get("name").and_then(Value::as_str).unwrap_or_default();
        if dns1035_label_error(n).is_some() {
            causes.push((
                format!("spec.versions[{i}].name"),
                format!("Invalid value: \"{n}\": {DNS1035_LABEL_MSG}"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(dns1123_subdomain_error("a.b-c.d1").is_none());
        assert!(dns1123_subdomain_error("Bad").is_some());
        assert!(dns1123_subdomain_error("-a").is_some());
        assert!(dns1123_subdomain_error("a..b").is_some());
        assert!(dns1123_subdomain_error("").is_some());
        assert!(dns1123_label_error("a.b").is_some());
        assert!(dns1035_label_error("1a").is_some());
        assert!(dns1035_label_error("a1").is_none());
    }
}
