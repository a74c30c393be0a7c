//! Vault's batch semantics, shared by encrypt, decrypt, rewrap, hmac and
//! verify: without `batch_input` the body is one item and its error fails the
//! request; with it, each item gets a result or its own `error`, results keep
//! the input's order and echo each item's `reference`, and the request answers
//! 400 (with the results) when an item failed — or the caller's
//! `partial_failure_response_code` when some succeeded.

use serde_json::{Map, Value};

use super::error::TransitError;
use super::input::{self, Items};
use crate::engines::{object, Response};

/// Run `f` over the request's items and shape the answer.
pub fn run<F>(
    items: Items<'_>,
    body: &Map<String, Value>,
    mut f: F,
) -> Result<Response, TransitError>
where
    F: FnMut(&Map<String, Value>) -> Result<Map<String, Value>, TransitError>,
{
    let list = match items {
        Items::Single(item) => return f(item).map(|m| Response::data(Value::Object(m))),
        Items::Batch(list) => list,
    };
    let partial_code = input::int_field(body, "partial_failure_response_code")?;
    let mut results = Vec::with_capacity(list.len());
    let (mut ok, mut failed) = (0usize, 0usize);
    for item in list {
        let mut result = match f(item) {
            Ok(m) => {
                ok += 1;
                m
            }
            Err(TransitError::Barrier(e)) => return Err(TransitError::Barrier(e)),
            Err(e) => {
                failed += 1;
                let mut m = Map::new();
                m.insert("error".into(), Value::String(e.to_string()));
                m
            }
        };
        let reference = match item.get("reference") {
            Some(Value::String(r)) => Value::String(r.clone()),
            _ => Value::String(String::new()),
        };
        result.insert("reference".into(), reference);
        results.push(Value::Object(result));
    }
    let mut resp = Response::data(object([("batch_results", Value::Array(results))]));
    if failed > 0 {
        resp.status = 400;
        match partial_code {
            Some(code) if ok > 0 => match u16::try_from(code) {
                Ok(code @ 1..=599) => resp.status = code,
                _ => resp.warnings.push(
                    "partial_failure_response_code must be between 1 and 599; ignoring it".into(),
                ),
            },
            _ => {}
        }
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn double(item: &Map<String, Value>) -> Result<Map<String, Value>, TransitError> {
        match item.get("n").and_then(Value::as_i64) {
            Some(n) => Ok(obj(json!({ "out": n * 2 }))),
            None => Err(TransitError::bad("missing n")),
        }
    }

    #[test]
    fn single_item_error_fails_the_request() {
        let body = obj(json!({}));
        assert!(run(input::items(&body).unwrap(), &body, double).is_err());
        let body = obj(json!({"n": 2}));
        let resp = run(input::items(&body).unwrap(), &body, double).unwrap();
        assert_eq!(resp.data, Some(json!({"out": 4})));
        assert_eq!(resp.status, 0);
    }

    #[test]
    fn batch_keeps_order_references_and_per_item_errors() {
        let body =
            obj(json!({"batch_input": [{"n": 1, "reference": "a"}, {"reference": "b"}, {"n": 3}]}));
        let resp = run(input::items(&body).unwrap(), &body, double).unwrap();
        assert_eq!(resp.status, 400);
        assert_eq!(
            resp.data,
            Some(json!({"batch_results": [
                {"out": 2, "reference": "a"},
                {"error": "missing n", "reference": "b"},
                {"out": 6, "reference": ""},
            ]}))
        );
    }

    #[test]
    fn partial_failure_code_applies_only_when_something_succeeded() {
        let body =
            obj(json!({"partial_failure_response_code": 207, "batch_input": [{"n": 1}, {}]}));
        assert_eq!(
            run(input::items(&body).unwrap(), &body, double)
                .unwrap()
                .status,
            207
        );
        let body = obj(json!({"partial_failure_response_code": 207, "batch_input": [{}, {}]}));
        assert_eq!(
            run(input::items(&body).unwrap(), &body, double)
                .unwrap()
                .status,
            400
        );
        let body = obj(json!({"partial_failure_response_code": 207, "batch_input": [{"n": 1}]}));
        assert_eq!(
            run(input::items(&body).unwrap(), &body, double)
                .unwrap()
                .status,
            0
        );
        let body =
            obj(json!({"partial_failure_response_code": 9999, "batch_input": [{"n": 1}, {}]}));
        let resp = run(input::items(&body).unwrap(), &body, double).unwrap();
        assert_eq!(resp.status, 400);
        assert_eq!(resp.warnings.len(), 1);
    }
}
