//! Conversions between JSON and `google.protobuf.Struct`/`Value`, used for
//! the maps where a null unsets a key and for health-check probes.

use std::collections::{BTreeMap, HashMap};

use deis_client::proto::prost_types::{ListValue, Struct, Value, value::Kind};
use serde_json::{Map, Number, Value as Json};

/// A string value.
pub(crate) fn string(text: impl Into<String>) -> Value {
    Value {
        kind: Some(Kind::StringValue(text.into())),
    }
}

/// The null value, which unsets a key.
pub(crate) fn null() -> Value {
    Value {
        kind: Some(Kind::NullValue(0)),
    }
}

/// `{key: "value"}` for every pair (setting keys).
pub(crate) fn set_map<I, K, V>(pairs: I) -> HashMap<String, Value>
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    pairs.into_iter().map(|(k, v)| (k.into(), string(v))).collect()
}

/// `{key: null}` for every key (unsetting keys).
pub(crate) fn unset_map<I, K>(keys: I) -> HashMap<String, Value>
where
    I: IntoIterator<Item = K>,
    K: Into<String>,
{
    keys.into_iter().map(|k| (k.into(), null())).collect()
}

/// JSON to a protobuf value.
pub(crate) fn from_json(json: Json) -> Value {
    let kind = match json {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Json::String(s) => Kind::StringValue(s),
        Json::Array(items) => Kind::ListValue(ListValue {
            values: items.into_iter().map(from_json).collect(),
        }),
        Json::Object(map) => Kind::StructValue(struct_from_json(map)),
    };
    Value { kind: Some(kind) }
}

/// A JSON object to a protobuf struct.
pub(crate) fn struct_from_json(map: Map<String, Json>) -> Struct {
    Struct {
        fields: map
            .into_iter()
            .map(|(k, v)| (k, from_json(v)))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// A protobuf value to JSON; whole numbers become integers so probes print
/// as `50`, not `50.0`.
pub(crate) fn to_json(value: &Value) -> Json {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::NumberValue(n)) => number(*n),
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::ListValue(list)) => Json::Array(list.values.iter().map(to_json).collect()),
        Some(Kind::StructValue(s)) => struct_to_json(s),
    }
}

/// A protobuf struct to a JSON object.
pub(crate) fn struct_to_json(value: &Struct) -> Json {
    Json::Object(
        value
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), to_json(v)))
            .collect(),
    )
}

fn number(n: f64) -> Json {
    // Exactly representable whole numbers print as integers.
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        #[allow(clippy::cast_possible_truncation)]
        return Json::Number(Number::from(n as i64));
    }
    Number::from_f64(n).map_or(Json::Null, Json::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip() {
        let original = json!({"web": {"livenessProbe": {"httpGet": {"path": "/", "port": 5000}, "ratio": 0.5, "exec": null, "on": true, "cmd": ["a", "b"]}}});
        let Json::Object(map) = original.clone() else {
            panic!("object")
        };
        assert_eq!(struct_to_json(&struct_from_json(map)), original);
    }

    #[test]
    fn set_and_unset_maps() {
        let set = set_map([("A", "1")]);
        assert_eq!(set.get("A"), Some(&string("1")));
        let unset = unset_map(["B"]);
        assert_eq!(
            unset.get("B").and_then(|v| v.kind.clone()),
            Some(Kind::NullValue(0))
        );
    }
}
