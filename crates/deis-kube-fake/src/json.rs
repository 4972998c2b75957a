//! JSON helpers: patch semantics, canonical hashing, small accessors.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// RFC 7386 JSON merge patch: maps merge recursively, `null` removes a key, anything else
/// (lists included) replaces. Strategic merge patches are applied the same way (so a list in a
/// strategic patch replaces the stored list instead of being merged by key).
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in patch {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// A simplified server-side apply merge. Maps are deep-merged; scalars and lists in the applied
/// configuration replace the stored value wholesale (the real server merges lists keyed by
/// `name`/`containerPort`/... per the OpenAPI schema; replacing them is close enough for one
/// field manager owning its lists). Fields that this manager applied last time but no longer
/// applies (`previous`) are removed, which is how the real server prunes fields a manager gave up.
pub(crate) fn apply_merge(stored: &mut Value, applied: &Value, previous: Option<&Value>) {
    let (Value::Object(s), Value::Object(a)) = (&mut *stored, applied) else {
        *stored = applied.clone();
        return;
    };
    if let Some(Value::Object(prev)) = previous {
        for k in prev.keys() {
            if !a.contains_key(k) {
                s.remove(k);
            }
        }
    }
    for (k, v) in a {
        let prev_k = match previous {
            Some(Value::Object(p)) => p.get(k),
            _ => None,
        };
        match (s.get_mut(k), v) {
            (Some(existing @ Value::Object(_)), Value::Object(_)) => apply_merge(existing, v, prev_k),
            _ => {
                s.insert(k.clone(), v.clone());
            }
        }
    }
}

/// A minimal `fieldsV1` description of the fields in an applied configuration.
pub(crate) fn fields_v1(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (format!("f:{k}"), fields_v1(v)))
                .collect::<Map<_, _>>(),
        ),
        _ => Value::Object(Map::new()),
    }
}

fn canonical_into(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for k in keys {
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical_into(&m[k], out);
                out.push(',');
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for x in a {
                canonical_into(x, out);
                out.push(',');
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The first `len` hex digits of a SHA-256 of the value's canonical (sorted-key) JSON.
pub(crate) fn hash_hex(v: &Value, len: usize) -> String {
    let mut s = String::new();
    canonical_into(v, &mut s);
    let digest = Sha256::digest(s.as_bytes());
    let mut h = hex::encode(digest);
    h.truncate(len);
    h
}

/// The map at a path of keys, creating (or replacing non-maps with) empty maps on the way.
pub(crate) fn map_path<'a>(v: &'a mut Value, path: &[&str]) -> &'a mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    let Value::Object(m) = v else {
        unreachable!("just made an object")
    };
    match path.split_first() {
        None => m,
        Some((first, rest)) => map_path(m.entry((*first).to_string()).or_insert(Value::Null), rest),
    }
}

/// `v[key]` as a mutable map (see [`map_path`]).
pub(crate) fn obj_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    map_path(v, &[key])
}

/// `metadata` of an object, created if missing.
pub(crate) fn meta_mut(v: &mut Value) -> &mut Map<String, Value> {
    map_path(v, &["metadata"])
}

/// A string at a JSON pointer, or `""`.
pub(crate) fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

/// An integer at a JSON pointer.
pub(crate) fn int_at(v: &Value, ptr: &str) -> Option<i64> {
    v.pointer(ptr).and_then(Value::as_i64)
}

/// Applies an RFC 6902 JSON patch (`add`, `remove`, `replace`, `test`, `move`, `copy`).
pub(crate) fn json_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    let ops = patch
        .as_array()
        .ok_or("a JSON patch must be an array of operations")?;
    for op in ops {
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or("JSON patch operation without \"op\"")?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or("JSON patch operation without \"path\"")?;
        match kind {
            "add" | "replace" | "test" => {
                let value = op
                    .get("value")
                    .ok_or("JSON patch operation without \"value\"")?
                    .clone();
                match kind {
                    "add" => pointer_add(target, path, value)?,
                    "replace" => {
                        let slot = target
                            .pointer_mut(path)
                            .ok_or_else(|| format!("path {path} not found"))?;
                        *slot = value;
                    }
                    _ => {
                        if target.pointer(path) != Some(&value) {
                            return Err(format!("test failed at {path}"));
                        }
                    }
                }
            }
            "remove" => {
                pointer_remove(target, path)?;
            }
            "move" | "copy" => {
                let from = op
                    .get("from")
                    .and_then(Value::as_str)
                    .ok_or("JSON patch operation without \"from\"")?;
                let value = if kind == "move" {
                    pointer_remove(target, from)?
                } else {
                    target
                        .pointer(from)
                        .cloned()
                        .ok_or_else(|| format!("path {from} not found"))?
                };
                pointer_add(target, path, value)?;
            }
            other => return Err(format!("unknown JSON patch operation {other:?}")),
        }
    }
    Ok(())
}

fn split_pointer(path: &str) -> Result<(&str, String), String> {
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or_else(|| format!("invalid JSON pointer {path:?}"))?;
    Ok((parent, last.replace("~1", "/").replace("~0", "~")))
}

fn pointer_add(target: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *target = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    match target.pointer_mut(parent) {
        Some(Value::Object(m)) => {
            m.insert(last, value);
            Ok(())
        }
        Some(Value::Array(a)) => {
            if last == "-" {
                a.push(value);
                return Ok(());
            }
            let i: usize = last
                .parse()
                .map_err(|_| format!("invalid array index in {path:?}"))?;
            if i > a.len() {
                return Err(format!("array index out of range in {path:?}"));
            }
            a.insert(i, value);
            Ok(())
        }
        _ => Err(format!("path {parent:?} not found")),
    }
}

fn pointer_remove(target: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split_pointer(path)?;
    match target.pointer_mut(parent) {
        Some(Value::Object(m)) => m.remove(&last).ok_or_else(|| format!("path {path:?} not found")),
        Some(Value::Array(a)) => {
            let i: usize = last
                .parse()
                .map_err(|_| format!("invalid array index in {path:?}"))?;
            if i >= a.len() {
                return Err(format!("array index out of range in {path:?}"));
            }
            Ok(a.remove(i))
        }
        _ => Err(format!("path {parent:?} not found")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_semantics() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge_patch(&mut v, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(v, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    }

    #[test]
    fn apply_prunes_previously_applied_fields() {
        let mut stored = json!({"metadata": {"labels": {"a": "1", "b": "2", "other": "x"}}});
        let prev = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        let applied = json!({"metadata": {"labels": {"a": "1"}}});
        apply_merge(&mut stored, &applied, Some(&prev));
        assert_eq!(stored, json!({"metadata": {"labels": {"a": "1", "other": "x"}}}));
    }

    #[test]
    fn hashing_ignores_key_order() {
        let a: Value = serde_json::from_str(r#"{"x":1,"y":{"b":2,"a":1}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"y":{"a":1,"b":2},"x":1}"#).unwrap();
        assert_eq!(hash_hex(&a, 10), hash_hex(&b, 10));
        assert_eq!(hash_hex(&a, 10).len(), 10);
    }

    #[test]
    fn json_patch_ops() {
        let mut v = json!({"spec": {"replicas": 1, "l": [1]}});
        json_patch(
            &mut v,
            &json!([
                {"op": "replace", "path": "/spec/replicas", "value": 3},
                {"op": "add", "path": "/spec/l/-", "value": 2},
                {"op": "remove", "path": "/spec/l/0"},
            ]),
        )
        .unwrap();
        assert_eq!(v, json!({"spec": {"replicas": 3, "l": [2]}}));
    }
}
