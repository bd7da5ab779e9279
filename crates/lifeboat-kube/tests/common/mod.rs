//! Support for the tests that read `deploy/` manifests into typed values.
#![allow(dead_code)]

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Drops nulls so that a round trip compares equal.
pub fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), normalize(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

/// Deserialises `doc` (from `file`) into `T`; serialising back must give the
/// same document, so no field of it is unknown to the type.
pub fn typed<T: DeserializeOwned + Serialize>(doc: &Value, file: &str) -> T {
    let t: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{file}: {e} in {}", doc["kind"]));
    let back = serde_json::to_value(&t).unwrap();
    assert_eq!(
        normalize(&back),
        normalize(doc),
        "{file}: a field of {} is not part of its type",
        doc["kind"]
    );
    t
}
