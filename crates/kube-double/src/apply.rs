//! Server-side apply (simplified), field ownership in `managedFields`, and
//! the other patch formats.
//!
//! Field sets are leaf paths through maps: a list, a scalar or an empty map
//! is one field, owned whole (the real server can also own list items by
//! key; Lifeboat never needs that). The `fieldsV1` written is the real
//! encoding restricted to `f:` keys and `.`.

use crate::util::ensure_map;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

pub(crate) type Path = Vec<String>;

/// `metadata` fields the server owns: never part of a field set, never
/// merged from a request body.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generateName",
];

/// `v` without the fields a client cannot set: `apiVersion`, `kind`, the
/// server's metadata, and `status` when the kind has a status subresource.
pub(crate) fn settable(v: &Value, skip_status: bool) -> Value {
    let mut out = v.clone();
    if let Some(m) = out.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
        if skip_status {
            m.remove("status");
        }
        if let Some(md) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            for f in SERVER_METADATA {
                md.remove(*f);
            }
        }
        if m.get("metadata")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            m.remove("metadata");
        }
    }
    out
}

/// Leaf paths of `v` (maps descended, everything else a leaf). `null`
/// values are not fields.
pub(crate) fn leaf_paths(v: &Value) -> BTreeSet<Path> {
    fn walk(v: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
        match v {
            Value::Null => {}
            Value::Object(m) if !m.is_empty() => {
                for (k, c) in m {
                    prefix.push(k.clone());
                    walk(c, prefix, out);
                    prefix.pop();
                }
            }
            _ => {
                if !prefix.is_empty() {
                    out.insert(prefix.clone());
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

pub(crate) fn value_at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for p in path {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

fn overlaps(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// Removes the field at `path`, then every map on the way up that this
/// left empty.
pub(crate) fn remove_path(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = &mut *v;
    for p in parents {
        match cur.as_object_mut().and_then(|m| m.get_mut(p)) {
            Some(next) => cur = next,
            None => return,
        }
    }
    let Some(m) = cur.as_object_mut() else {
        return;
    };
    if m.remove(last).is_some() && m.is_empty() && !parents.is_empty() {
        remove_path(v, parents);
    }
}

fn path_str(p: &[String]) -> String {
    p.iter().map(|s| format!(".{s}")).collect()
}

/// One `managedFields` entry.
#[derive(Debug, Clone)]
pub(crate) struct Managed {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: BTreeSet<Path>,
}

impl Managed {
    fn same_owner(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }
}

fn decode_fields(v: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    let Some(m) = v.as_object() else { return };
    if m.is_empty() {
        if !prefix.is_empty() {
            out.insert(prefix.clone());
        }
        return;
    }
    for (k, c) in m {
        if k == "." {
            if !prefix.is_empty() {
                out.insert(prefix.clone());
            }
        } else if let Some(name) = k.strip_prefix("f:") {
            prefix.push(name.to_string());
            decode_fields(c, prefix, out);
            prefix.pop();
        } else if !prefix.is_empty() {
            // `k:`/`v:`/`i:` (list items): the double owns lists whole.
            out.insert(prefix.clone());
        }
    }
}

pub(crate) fn encode_fields(paths: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for p in paths {
        let mut cur = &mut root;
        for (i, seg) in p.iter().enumerate() {
            let node = ensure_map(
                cur.entry(format!("f:{seg}"))
                    .or_insert_with(|| Value::Object(Map::new())),
            );
            if i + 1 == p.len() && !node.is_empty() {
                node.insert(".".into(), json!({}));
            }
            cur = node;
        }
    }
    // A leaf that later got children must keep its own mark.
    fn mark(v: &mut Map<String, Value>, prefix: &mut Path, paths: &BTreeSet<Path>) {
        for (k, c) in v.iter_mut() {
            let Some(name) = k.strip_prefix("f:") else {
                continue;
            };
            prefix.push(name.to_string());
            if let Value::Object(m) = c {
                if !m.is_empty() && paths.contains(prefix) {
                    m.insert(".".into(), json!({}));
                }
                mark(m, prefix, paths);
            }
            prefix.pop();
        }
    }
    mark(&mut root, &mut Vec::new(), paths);
    Value::Object(root)
}

pub(crate) fn parse_managed(obj: &Value) -> Vec<Managed> {
    let Some(list) = obj
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .map(|e| {
            let s = |k: &str| {
                e.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let mut fields = BTreeSet::new();
            if let Some(f) = e.get("fieldsV1") {
                decode_fields(f, &mut Vec::new(), &mut fields);
            }
            Managed {
                manager: s("manager"),
                operation: s("operation"),
                api_version: s("apiVersion"),
                time: s("time"),
                subresource: s("subresource"),
                fields,
            }
        })
        .collect()
}

pub(crate) fn write_managed(obj: &mut Value, entries: Vec<Managed>) {
    let list: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": encode_fields(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    let md = crate::util::metadata_mut(obj);
    if list.is_empty() {
        md.remove("managedFields");
    } else {
        md.insert("managedFields".into(), Value::Array(list));
    }
}

/// Who applies, and how.
pub(crate) struct ApplyCtx<'a> {
    pub manager: &'a str,
    pub force: bool,
    pub skip_status: bool,
    pub api_version: &'a str,
    pub now: &'a str,
    pub subresource: &'a str,
}

/// A field another manager owns with a different value.
#[derive(Debug)]
pub(crate) struct Conflict {
    pub field: String,
    pub manager: String,
    pub api_version: String,
}

/// Server-side apply of `applied` onto `old` (`None`: create). Returns the
/// merged object with its `managedFields`, or the conflicts when not
/// forced.
///
/// Simplification of the real algorithm: maps merge key by key; lists
/// and scalars are replaced whole; a field this manager applied before and
/// no longer applies is removed unless another manager also owns it; a
/// field another manager owns is a conflict only when the values differ
/// (`force` takes the field over instead).
pub(crate) fn apply(
    old: Option<&Value>,
    applied: &Value,
    ctx: &ApplyCtx,
) -> Result<Value, Vec<Conflict>> {
    let cfg = settable(applied, ctx.skip_status);
    let mine = leaf_paths(&cfg);
    let base = old.cloned().unwrap_or_else(|| json!({}));
    let mut entries = parse_managed(&base);

    let mut conflicts = Vec::new();
    let mut taken: Vec<(usize, Path)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.same_owner(ctx.manager, "Apply", ctx.subresource) {
            continue;
        }
        for q in &e.fields {
            for p in mine.iter().filter(|p| overlaps(p, q)) {
                let longer = if p.len() >= q.len() { p } else { q };
                if value_at(&base, longer) != value_at(&cfg, longer) {
                    conflicts.push(Conflict {
                        field: path_str(q),
                        manager: e.manager.clone(),
                        api_version: e.api_version.clone(),
                    });
                    taken.push((i, q.clone()));
                    break;
                }
            }
        }
    }
    if !conflicts.is_empty() && !ctx.force {
        return Err(conflicts);
    }
    for (i, q) in taken {
        entries[i].fields.remove(&q);
    }

    let mut result = base.clone();
    let previous: BTreeSet<Path> = entries
        .iter()
        .find(|e| e.same_owner(ctx.manager, "Apply", ctx.subresource))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for q in &previous {
        let still_mine = mine.iter().any(|p| overlaps(p, q));
        let others = entries.iter().any(|e| {
            !e.same_owner(ctx.manager, "Apply", ctx.subresource)
                && e.fields.iter().any(|f| overlaps(f, q))
        });
        if !still_mine && !others {
            remove_path(&mut result, q);
        }
    }
    merge_applied(&mut result, &cfg);
    if let (Some(r), Some(a)) = (result.as_object_mut(), applied.as_object()) {
        for k in ["apiVersion", "kind"] {
            if let Some(v) = a.get(k) {
                r.insert(k.into(), v.clone());
            }
        }
    }

    match entries
        .iter_mut()
        .find(|e| e.same_owner(ctx.manager, "Apply", ctx.subresource))
    {
        Some(e) => {
            e.fields = mine;
            e.time = ctx.now.to_string();
            e.api_version = ctx.api_version.to_string();
        }
        None => entries.push(Managed {
            manager: ctx.manager.to_string(),
            operation: "Apply".into(),
            api_version: ctx.api_version.to_string(),
            time: ctx.now.to_string(),
            subresource: ctx.subresource.to_string(),
            fields: mine,
        }),
    }
    prune_gone(&mut entries, &result);
    write_managed(&mut result, entries);
    Ok(result)
}

/// Drops owned fields that no longer exist in `obj`.
fn prune_gone(entries: &mut [Managed], obj: &Value) {
    for e in entries.iter_mut() {
        e.fields.retain(|p| value_at(obj, p).is_some());
    }
}

/// Records an Update-operation write (create, replace, merge/JSON patch,
/// scale, status): the fields whose values changed from `old` become
/// `manager`'s, taken from whoever owned them (updates never conflict).
pub(crate) fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    now: &str,
    subresource: &str,
    skip_status: bool,
) {
    let mut entries = old.map(parse_managed).unwrap_or_default();
    let new_cfg = settable(new, skip_status);
    let old_cfg = old.map(|o| settable(o, skip_status)).unwrap_or(json!({}));
    let changed: BTreeSet<Path> = leaf_paths(&new_cfg)
        .into_iter()
        .filter(|p| value_at(&old_cfg, p) != value_at(&new_cfg, p))
        .collect();
    if !changed.is_empty() {
        for e in entries.iter_mut() {
            if !e.same_owner(manager, "Update", subresource) {
                e.fields.retain(|q| !changed.iter().any(|p| overlaps(p, q)));
            }
        }
        match entries
            .iter_mut()
            .find(|e| e.same_owner(manager, "Update", subresource))
        {
            Some(e) => {
                e.fields.extend(changed);
                e.time = now.to_string();
                e.api_version = api_version.to_string();
            }
            None => entries.push(Managed {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version: api_version.to_string(),
                time: now.to_string(),
                subresource: subresource.to_string(),
                fields: changed,
            }),
        }
    }
    prune_gone(&mut entries, new);
    write_managed(new, entries);
}

/// Apply's merge: maps merge recursively, anything else replaces; `null`
/// removes.
fn merge_applied(target: &mut Value, applied: &Value) {
    match applied {
        Value::Object(a) => {
            let t = ensure_map(target);
            for (k, v) in a {
                if v.is_null() {
                    t.remove(k);
                } else if v.is_object() {
                    merge_applied(t.entry(k.clone()).or_insert(Value::Null), v);
                } else {
                    t.insert(k.clone(), v.clone());
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// RFC 7386 JSON merge patch.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            let t = ensure_map(target);
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// RFC 6902 JSON patch.
pub(crate) fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops
        .as_array()
        .ok_or("a JSON patch must be a list of operations")?;
    for op in ops {
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or("operation has no \"op\"")?;
        let path = pointer(op, "path")?;
        match kind {
            "add" => add(doc, &path, value_of(op)?)?,
            "remove" => {
                remove(doc, &path)?;
            }
            "replace" => {
                remove(doc, &path)?;
                add(doc, &path, value_of(op)?)?;
            }
            "move" => {
                let from = pointer(op, "from")?;
                let v = remove(doc, &from)?;
                add(doc, &path, v)?;
            }
            "copy" => {
                let from = pointer(op, "from")?;
                let v = get(doc, &from)
                    .ok_or_else(|| format!("copy from missing path {from:?}"))?
                    .clone();
                add(doc, &path, v)?;
            }
            "test" => {
                if get(doc, &path) != Some(value_of(op)?).as_ref() {
                    return Err(format!("test failed at {path:?}"));
                }
            }
            other => return Err(format!("unknown operation {other:?}")),
        }
    }
    Ok(())
}

fn value_of(op: &Value) -> Result<Value, String> {
    op.get("value")
        .cloned()
        .ok_or_else(|| "operation has no \"value\"".into())
}

fn pointer(op: &Value, key: &str) -> Result<Vec<String>, String> {
    let s = op
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("operation has no \"{key}\""))?;
    if s.is_empty() {
        return Ok(vec![]);
    }
    let rest = s
        .strip_prefix('/')
        .ok_or_else(|| format!("JSON pointer {s:?} must start with '/'"))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn get<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = doc;
    for seg in path {
        cur = match cur {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn parent_mut<'a>(doc: &'a mut Value, path: &[String]) -> Result<(&'a mut Value, String), String> {
    let Some((last, parents)) = path.split_last() else {
        return Err("cannot address the document root".into());
    };
    let mut cur = doc;
    for seg in parents {
        cur = match cur {
            Value::Object(m) => m.get_mut(seg),
            Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| format!("missing path segment {seg:?}"))?;
    }
    Ok((cur, last.clone()))
}

fn add(doc: &mut Value, path: &[String], v: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = v;
        return Ok(());
    }
    let (parent, last) = parent_mut(doc, path)?;
    match parent {
        Value::Object(m) => {
            m.insert(last, v);
        }
        Value::Array(a) => {
            let i = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .map_err(|_| format!("bad index {last:?}"))?
            };
            if i > a.len() {
                return Err(format!("index {i} out of range"));
            }
            a.insert(i, v);
        }
        _ => return Err("cannot add into a scalar".into()),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &[String]) -> Result<Value, String> {
    let (parent, last) = parent_mut(doc, path)?;
    match parent {
        Value::Object(m) => m
            .remove(&last)
            .ok_or_else(|| format!("missing key {last:?}")),
        Value::Array(a) => {
            let i = last
                .parse::<usize>()
                .map_err(|_| format!("bad index {last:?}"))?;
            if i >= a.len() {
                return Err(format!("index {i} out of range"));
            }
            Ok(a.remove(i))
        }
        _ => Err("cannot remove from a scalar".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(manager: &'a str, force: bool) -> ApplyCtx<'a> {
        ApplyCtx {
            manager,
            force,
            skip_status: false,
            api_version: "v1",
            now: "2025-01-01T00:00:00Z",
            subresource: "",
        }
    }

    fn cm(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "n"}, "data": data})
    }

    #[test]
    fn apply_creates_updates_and_removes_own_fields() {
        let o1 = apply(None, &cm(json!({"x": "1", "y": "2"})), &ctx("m", false)).unwrap();
        assert_eq!(o1["data"], json!({"x": "1", "y": "2"}));
        assert_eq!(
            o1["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:data": {"f:x": {}, "f:y": {}}})
        );
        let o2 = apply(Some(&o1), &cm(json!({"x": "3"})), &ctx("m", false)).unwrap();
        assert_eq!(o2["data"], json!({"x": "3"}));
        let o3 = apply(
            Some(&o2),
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
            &ctx("m", false),
        )
        .unwrap();
        assert!(o3.get("data").is_none(), "{o3}");
    }

    #[test]
    fn conflicts_between_managers() {
        let o1 = apply(None, &cm(json!({"x": "1"})), &ctx("a", false)).unwrap();
        // Same value: shared, no conflict.
        let o2 = apply(
            Some(&o1),
            &cm(json!({"x": "1", "z": "9"})),
            &ctx("b", false),
        )
        .unwrap();
        assert_eq!(o2["metadata"]["managedFields"].as_array().unwrap().len(), 2);
        // Different value: conflict naming the owner.
        let err = apply(Some(&o2), &cm(json!({"x": "2"})), &ctx("b", false)).unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(err[0].manager, "a");
        assert_eq!(err[0].field, ".data.x");
        // Forced: taken over, and "a" loses it.
        let o3 = apply(Some(&o2), &cm(json!({"x": "2"})), &ctx("b", true)).unwrap();
        assert_eq!(o3["data"], json!({"x": "2"}));
        let mf = parse_managed(&o3);
        assert_eq!(mf.len(), 1);
        assert_eq!(mf[0].manager, "b");
        // "b" dropped z; "b" was its only owner.
        assert!(o3["data"].get("z").is_none());
    }

    #[test]
    fn updates_take_fields() {
        let o1 = apply(None, &cm(json!({"x": "1"})), &ctx("a", false)).unwrap();
        let mut o2 = o1.clone();
        o2["data"]["x"] = json!("2");
        record_update(Some(&o1), &mut o2, "kubectl", "v1", "t", "", false);
        let mf = parse_managed(&o2);
        assert_eq!(mf.len(), 1);
        assert_eq!(mf[0].manager, "kubectl");
        assert_eq!(mf[0].operation, "Update");
    }

    #[test]
    fn fields_v1_round_trip() {
        let paths: BTreeSet<Path> = [
            vec!["a".to_string()],
            vec!["a".to_string(), "b".to_string()],
        ]
        .into_iter()
        .collect();
        let enc = encode_fields(&paths);
        assert_eq!(enc, json!({"f:a": {".": {}, "f:b": {}}}));
        let mut dec = BTreeSet::new();
        decode_fields(&enc, &mut Vec::new(), &mut dec);
        assert_eq!(dec, paths);
    }

    #[test]
    fn patches() {
        let mut d = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge_patch(&mut d, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(d, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
        json_patch(
            &mut d,
            &json!([
                {"op": "add", "path": "/l/-", "value": 4},
                {"op": "replace", "path": "/a/c", "value": 5},
                {"op": "remove", "path": "/a/d"},
                {"op": "copy", "from": "/a/c", "path": "/x~1y"},
                {"op": "test", "path": "/x~1y", "value": 5}
            ]),
        )
        .unwrap();
        assert_eq!(d, json!({"a": {"c": 5}, "l": [3, 4], "x/y": 5}));
        assert!(json_patch(&mut d, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }
}
