//! What a restore would change in an object, as a unified diff of YAML, with
//! Secret values masked (a dry run's output goes to terminals and logs).

use serde_json::Value;
use similar::TextDiff;

/// Replaces each value of a Secret's `data`/`stringData` by a marker that
/// changes when the value does, and never shows it.
pub fn mask_secret(obj: &Value) -> Value {
    let mut v = obj.clone();
    if v.get("kind").and_then(|k| k.as_str()) != Some("Secret") {
        return v;
    }
    for field in ["data", "stringData"] {
        if let Some(map) = v.get_mut(field).and_then(|d| d.as_object_mut()) {
            for val in map.values_mut() {
                let s = val.as_str().unwrap_or_default();
                let h = blake3::hash(s.as_bytes()).to_hex();
                *val = Value::String(format!("*** ({} bytes, fingerprint {})", s.len(), &h[..8]));
            }
        }
    }
    v
}

/// YAML for display.
pub fn to_yaml(v: &Value) -> String {
    serde_saphyr::to_string(v).unwrap_or_else(|e| format!("<cannot render: {e}>\n"))
}

/// A unified diff from `before` (None: absent) to `after`, Secrets masked.
/// Empty when they render the same.
pub fn diff(before: Option<&Value>, after: &Value, label: &str) -> String {
    let old = before.map(|b| to_yaml(&mask_secret(b))).unwrap_or_default();
    let new = to_yaml(&mask_secret(after));
    if old == new {
        return String::new();
    }
    TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("{label} (live)"), &format!("{label} (snapshot)"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_masked_and_changes_still_show() {
        let a = json!({"kind": "Secret", "data": {"password": "c2VjcmV0"}});
        let b = json!({"kind": "Secret", "data": {"password": "b3RoZXI="}});
        let d = diff(Some(&a), &b, "secret x");
        assert!(!d.contains("c2VjcmV0") && !d.contains("b3RoZXI="), "{d}");
        assert!(d.contains("-") && d.contains("+"), "{d}");
        assert_eq!(diff(Some(&a), &a, "secret x"), "");
        let cm = json!({"kind": "ConfigMap", "data": {"k": "v"}});
        assert!(diff(None, &cm, "configmap x").contains("+  k: v"));
    }
}
