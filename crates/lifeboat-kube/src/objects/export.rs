//! Snapshots as kubectl-style YAML trees, and back: `export kube` writes
//! `DIR/<namespace>/<kind plural[.group]>/<name>.yaml` (cluster-scoped
//! objects under `_cluster/`), one object per file, with the fields a person
//! reads first (`apiVersion`, `kind`, `metadata`) first; `restore kube
//! --from-dir` reads such a tree, including one a person edited.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value;

use super::{Record, Resource};
use crate::error::{Cause, write_causes};

/// Why an export tree could not be written or read: what was being done
/// (`reading DIR/ns/configmaps/a.yaml`), then the cause. `{:#}` prints the
/// whole chain, `: ` between.
#[derive(Debug)]
pub struct ExportError {
    /// `None`: the error is the cause itself (an I/O error met directly).
    message: Option<String>,
    cause: Option<Cause>,
}

impl ExportError {
    fn msg(message: String) -> Self {
        Self {
            message: Some(message),
            cause: None,
        }
    }
}

/// An error met directly, shown as itself.
macro_rules! transparent_from {
    ($($t:ty),*) => {$(
        impl From<$t> for ExportError {
            fn from(e: $t) -> Self {
                Self {
                    message: None,
                    cause: Some(Box::new(e)),
                }
            }
        }
    )*};
}

transparent_from!(
    std::io::Error,
    std::path::StripPrefixError,
    serde_json::Error
);

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.message, &self.cause) {
            (Some(m), _) => f.write_str(m)?,
            (None, Some(c)) => write!(f, "{c}")?,
            (None, None) => {}
        }
        if f.alternate() {
            write_causes(f, std::error::Error::source(self))?;
        }
        Ok(())
    }
}

impl std::error::Error for ExportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let cause = self.cause.as_deref()?;
        match self.message {
            Some(_) => Some(cause),
            None => cause.source(),
        }
    }
}

type Result<T, E = ExportError> = std::result::Result<T, E>;

/// `what` was being done when the error happened (anyhow's `Context`, for
/// this module's errors only).
trait Context<T> {
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<Cause>> Context<T> for Result<T, E> {
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| ExportError {
            message: Some(what()),
            cause: Some(e.into()),
        })
    }
}

macro_rules! bail {
    ($($arg:tt)*) => {
        return Err(ExportError::msg(format!($($arg)*)))
    };
}

/// Directory for cluster-scoped objects (not a valid namespace name).
pub const CLUSTER_DIR: &str = "_cluster";
/// Provenance file at the top of an export.
pub const MANIFEST: &str = "lifeboat-export.json";

#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportSummary {
    pub files: u64,
    /// Secrets not written because `--include-secrets` was not given.
    pub secrets_left_out: u64,
}

/// An object with `apiVersion`, `kind`, `metadata` first, the rest sorted.
struct Ordered<'a>(&'a Value);

impl Serialize for Ordered<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Some(map) = self.0.as_object() else {
            return self.0.serialize(s);
        };
        let mut m = s.serialize_map(Some(map.len()))?;
        for k in ["apiVersion", "kind", "metadata"] {
            if let Some(v) = map.get(k) {
                m.serialize_entry(k, v)?;
            }
        }
        for (k, v) in map {
            if !matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

fn safe_component(s: &str, what: &str) -> Result<()> {
    if s.is_empty() || s == "." || s == ".." || s.contains('/') || s.contains('\0') {
        bail!("refusing to write a file for {what} {s:?}: not a valid object name");
    }
    Ok(())
}

/// Where a record goes inside an export directory.
pub fn relative_path(r: &Record) -> Result<PathBuf> {
    let ns = r.namespace().unwrap_or(CLUSTER_DIR);
    safe_component(ns, "namespace")?;
    safe_component(r.name(), "object")?;
    Ok(PathBuf::from(ns)
        .join(r.resource.qualified_plural())
        .join(format!("{}.yaml", r.name())))
}

/// Writes `records` under `dir` (created; must be empty if it exists).
/// Secrets only with `include_secrets`, then as mode 0600 in a 0700 tree.
pub fn write_tree(
    dir: &Path,
    records: &[Record],
    include_secrets: bool,
    provenance: &Value,
) -> Result<ExportSummary> {
    if dir.exists() {
        let mut entries =
            fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} is not empty; export into a new or empty directory so nothing is overwritten",
                dir.display()
            );
        }
    }
    let mode = if include_secrets { 0o700 } else { 0o755 };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let mut summary = ExportSummary::default();
    for r in records {
        let secret = r.resource.group.is_empty() && r.resource.plural == "secrets";
        if secret && !include_secrets {
            summary.secrets_left_out += 1;
            continue;
        }
        let rel = relative_path(r)?;
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let yaml = serde_saphyr::to_string(&Ordered(&r.object))
            .with_context(|| format!("rendering {} as YAML", r.display()))?;
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if secret { 0o600 } else { 0o644 })
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        f.write_all(yaml.as_bytes())
            .and_then(|_| f.sync_all())
            .with_context(|| format!("writing {}", path.display()))?;
        summary.files += 1;
    }
    let manifest = serde_json::to_vec_pretty(provenance)?;
    fs::write(dir.join(MANIFEST), manifest)
        .with_context(|| format!("writing {}", dir.join(MANIFEST).display()))?;
    Ok(summary)
}

/// Reads a tree written by [`write_tree`] (or laid out the same way).
/// Records come back sorted by path; the restore orders them by class.
pub fn read_tree(dir: &Path) -> Result<Vec<Record>> {
    let mut files = Vec::new();
    for ns_entry in read_sorted(dir)? {
        if !ns_entry.is_dir() {
            if ns_entry.file_name().and_then(|n| n.to_str()) == Some(MANIFEST) {
                continue;
            }
            bail!(
                "{}: unexpected file; an export holds only <namespace>/<kind>/<name>.yaml",
                ns_entry.display()
            );
        }
        for kind_entry in read_sorted(&ns_entry)? {
            if !kind_entry.is_dir() {
                bail!(
                    "{}: expected a directory named after a kind",
                    kind_entry.display()
                );
            }
            for f in read_sorted(&kind_entry)? {
                if f.extension().and_then(|e| e.to_str()) != Some("yaml") {
                    bail!("{}: expected only .yaml files here", f.display());
                }
                files.push(f);
            }
        }
    }
    files
        .iter()
        .map(|f| read_one(dir, f).with_context(|| format!("reading {}", f.display())))
        .collect()
}

fn read_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading directory {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading directory {}", dir.display()))?;
    v.sort();
    Ok(v)
}

fn read_one(root: &Path, file: &Path) -> Result<Record> {
    let rel = file.strip_prefix(root)?;
    let parts: Vec<&str> = rel.iter().filter_map(|p| p.to_str()).collect();
    let [ns_dir, kind_dir, _] = parts.as_slice() else {
        bail!("not at <namespace>/<kind>/<name>.yaml");
    };
    let text = fs::read_to_string(file)?;
    let object: Value =
        serde_saphyr::from_str(&text).map_err(|e| ExportError::msg(e.to_string()))?;
    let api_version = object
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .ok_or_else(|| ExportError::msg("no apiVersion".into()))?;
    let kind = object
        .get("kind")
        .and_then(|v| v.as_str())
        .ok_or_else(|| ExportError::msg("no kind".into()))?
        .to_string();
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), api_version.to_string()),
    };
    let (plural, dir_group) = match kind_dir.split_once('.') {
        Some((p, g)) => (p.to_string(), g.to_string()),
        None => (kind_dir.to_string(), String::new()),
    };
    if dir_group != group {
        bail!(
            "the directory {kind_dir} names group {dir_group:?} but the object's apiVersion is {api_version}"
        );
    }
    let namespaced = *ns_dir != CLUSTER_DIR;
    let record = Record {
        resource: Resource {
            group,
            version,
            kind,
            plural,
            namespaced,
        },
        object,
    };
    if namespaced && record.namespace() != Some(ns_dir) {
        bail!(
            "the object's metadata.namespace ({:?}) is not its directory's ({ns_dir})",
            record.namespace()
        );
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(kind: &str, plural: &str, ns: Option<&str>, name: &str, extra: Value) -> Record {
        let mut object = json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name}});
        if let Some(ns) = ns {
            object["metadata"]["namespace"] = json!(ns);
        }
        for (k, v) in extra.as_object().unwrap() {
            object[k] = v.clone();
        }
        Record {
            resource: Resource {
                group: "".into(),
                version: "v1".into(),
                kind: kind.into(),
                plural: plural.into(),
                namespaced: ns.is_some(),
            },
            object,
        }
    }

    #[test]
    fn round_trip_and_secrets_policy() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let records = vec![
            rec("Namespace", "namespaces", None, "ks", json!({})),
            rec(
                "ConfigMap",
                "configmaps",
                Some("ks"),
                "a",
                json!({"data": {"k": "v: 1\nline2"}}),
            ),
            rec(
                "Secret",
                "secrets",
                Some("ks"),
                "s",
                json!({"type": "Opaque", "data": {"p": "c2VjcmV0"}}),
            ),
        ];
        let without = tmp.path().join("without");
        let s = write_tree(&without, &records, false, &json!({})).unwrap();
        assert_eq!((s.files, s.secrets_left_out), (2, 1));
        assert!(!without.join("ks/secrets").exists());
        let with = tmp.path().join("with");
        write_tree(&with, &records, true, &json!({})).unwrap();
        let mode = fs::metadata(with.join("ks/secrets/s.yaml"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = fs::read_to_string(with.join("ks/configmaps/a.yaml")).unwrap();
        assert!(
            text.starts_with("apiVersion: v1\nkind: ConfigMap\nmetadata:"),
            "{text}"
        );
        let back = read_tree(&with).unwrap();
        assert_eq!(back.len(), 3);
        for r in &records {
            assert!(back.contains(r), "{r:?} not read back: {back:?}");
        }
        assert!(
            write_tree(&with, &records, true, &json!({})).is_err(),
            "non-empty dir refused"
        );
    }
}
