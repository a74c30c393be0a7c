//! `subkeys/<path>[?version=N&depth=D]`: the key structure of a version with
//! every leaf value replaced by `null`, so a caller can see which keys exist
//! without reading any secret value.

use serde_json::{Map, Value};

use super::store;
use super::time;
use crate::barrier::View;
use crate::engines::{object, EngineError, Response};

/// Read attempts, for the same reason as data reads (a concurrent destroy).
const READ_ATTEMPTS: usize = 3;

/// `GET subkeys/<path>`. `depth` 0 means no limit; with `depth` D, objects at
/// level D are reported as `null` even if they have keys.
pub async fn read(
    view: &View,
    path: &str,
    version: Option<u64>,
    depth: u64,
) -> Result<Response, EngineError> {
    let mut number = 0;
    for _ in 0..READ_ATTEMPTS {
        let meta = store::read_meta(view, path)
            .await?
            .ok_or(EngineError::NotFound)?;
        number = version.filter(|v| *v > 0).unwrap_or(meta.current_version);
        let vm = meta.versions.get(&number).ok_or(EngineError::NotFound)?;
        let metadata = meta.version_json(number, vm);
        if !vm.is_live(time::now()) {
            return Ok(Response {
                data: Some(object([("subkeys", Value::Null), ("metadata", metadata)])),
                status: 404,
                ..Default::default()
            });
        }
        if let Some(data) = store::load_version(view, path, number).await? {
            let limit = if depth == 0 { None } else { Some(depth) };
            return Ok(Response::data(object([
                ("subkeys", strip(&data, 1, limit)),
                ("metadata", metadata),
            ])));
        }
    }
    Err(store::missing_version(view, path, number))
}

/// Keys of `map` (at nesting `level`, top level 1) with values removed: a
/// non-empty object is walked while below `limit`, everything else becomes null.
fn strip(map: &Map<String, Value>, level: u64, limit: Option<u64>) -> Value {
    let out = map
        .iter()
        .map(|(k, v)| {
            let stripped = match v {
                Value::Object(inner) if !inner.is_empty() && limit.is_none_or(|l| level < l) => {
                    strip(inner, level + 1, limit)
                }
                _ => Value::Null,
            };
            (k.clone(), stripped)
        })
        .collect();
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Map<String, Value> {
        serde_json::from_value(json!({
            "foo": "abc",
            "bar": {"baz": "def", "deep": {"x": [1, 2]}},
            "quux": {},
            "list": ["secret"],
        }))
        .unwrap_or_default()
    }

    #[test]
    fn leaves_become_null_and_structure_stays() {
        assert_eq!(
            strip(&sample(), 1, None),
            json!({"foo": null, "bar": {"baz": null, "deep": {"x": null}}, "quux": null, "list": null})
        );
    }

    #[test]
    fn depth_cuts_the_walk() {
        assert_eq!(
            strip(&sample(), 1, Some(1)),
            json!({"foo": null, "bar": null, "quux": null, "list": null})
        );
        assert_eq!(
            strip(&sample(), 1, Some(2)),
            json!({"foo": null, "bar": {"baz": null, "deep": null}, "quux": null, "list": null})
        );
    }
}
