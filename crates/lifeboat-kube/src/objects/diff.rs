//! What a restore would change in an object, as a unified diff of YAML, with
//! Secret values masked (a dry run's output goes to terminals and logs).

use serde::Serialize;
use serde_json::Value;
use similar::TextDiff;

/// The keys (leaf paths; lists count as one value) that differ between
/// two versions of an object. Paths only: no values, so Secrets show
/// nothing but their key names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }

    /// `added data["b"]; removed data["extra"]`, the empty lists left out.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        for (label, keys) in [
            ("added", &self.added),
            ("changed", &self.changed),
            ("removed", &self.removed),
        ] {
            if !keys.is_empty() {
                parts.push(format!("{label} {}", keys.join(", ")));
            }
        }
        parts.join("; ")
    }
}

/// What `after` adds, changes and removes relative to `before`.
pub fn changes(before: &Value, after: &Value) -> Changes {
    let mut c = Changes::default();
    walk(before, after, "", &mut c);
    c
}

fn segment(path: &str, key: &str) -> String {
    let simple = !key.is_empty()
        && key
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
        && !key.starts_with(|ch: char| ch.is_ascii_digit());
    match (path.is_empty(), simple) {
        (true, true) => key.to_string(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{}]", serde_json::Value::String(key.into())),
    }
}

fn walk(before: &Value, after: &Value, path: &str, c: &mut Changes) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, bv) in b {
                let p = segment(path, k);
                match a.get(k) {
                    None => c.removed.push(p),
                    Some(av) => walk(bv, av, &p, c),
                }
            }
            for k in a.keys().filter(|k| !b.contains_key(*k)) {
                c.added.push(segment(path, k));
            }
        }
        (b, a) if b != a => c.changed.push(path.to_string()),
        _ => {}
    }
}

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
    fn changed_keys_are_named_by_path() {
        let before = json!({"metadata": {"labels": {"app.kubernetes.io/part-of": "k", "team": "a"}},
                            "data": {"k": "v", "extra.conf": "x"}});
        let after = json!({"metadata": {"labels": {"app.kubernetes.io/part-of": "k", "team": "b"}},
                           "data": {"k": "v", "new": "y"}, "immutable": true});
        let c = changes(&before, &after);
        assert_eq!(c.removed, vec![r#"data["extra.conf"]"#]);
        assert_eq!(c.changed, vec!["metadata.labels.team"]);
        assert_eq!(c.added, vec!["data.new", "immutable"]);
        assert_eq!(
            c.summary(),
            r#"added data.new, immutable; changed metadata.labels.team; removed data["extra.conf"]"#
        );
        assert!(changes(&before, &before).is_empty());
    }

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
