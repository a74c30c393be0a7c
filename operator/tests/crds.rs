//! The committed CRD YAML in `crds/` (and the chart's copy) is what the Rust
//! types generate, and every schema is structural, as the API server
//! demands of a CRD.

use std::path::PathBuf;

use serde_json::Value;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn committed_crds_equal_the_generated_ones() {
    for (name, yaml) in cairn_operator::crd::crd_yaml_files().unwrap() {
        for dir in ["crds", "charts/cairn/crds"] {
            let path = repo_root().join(dir).join(name);
            let committed = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}; run `cairn-operator crd`", path.display()));
            assert_eq!(
                committed,
                yaml,
                "{} differs from the generated CRD: regenerate with scripts in crds/README.md",
                path.display()
            );
        }
    }
}

/// Checks the structural-schema rules of apiextensions.k8s.io/v1: every
/// node has a type (unless it preserves unknown fields or is int-or-string),
/// no `$ref`, no `additionalProperties` beside `properties`, and the
/// value-validation keywords (`allOf`, `anyOf`, `oneOf`, `not`) carry no
/// types, defaults or descriptions of their own.
fn check_structural(node: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        errors.push(format!("{at}: not an object"));
        return;
    };
    if obj.contains_key("$ref") {
        errors.push(format!("{at}: $ref"));
    }
    let free = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        || obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    if !free
        && obj
            .get("type")
            .and_then(Value::as_str)
            .map_or(true, str::is_empty)
    {
        errors.push(format!("{at}: no type"));
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        errors.push(format!("{at}: properties and additionalProperties"));
    }
    for keyword in ["allOf", "anyOf", "oneOf", "not"] {
        if let Some(inner) = obj.get(keyword) {
            let nodes: Vec<&Value> = match inner {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            for n in nodes {
                for bad in [
                    "type",
                    "default",
                    "description",
                    "nullable",
                    "additionalProperties",
                ] {
                    if n.get(bad).is_some() {
                        errors.push(format!("{at}.{keyword}: {bad} inside a value validation"));
                    }
                }
            }
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            check_structural(v, &format!("{at}.{k}"), errors);
        }
    }
    if let Some(items) = obj.get("items") {
        check_structural(items, &format!("{at}[]"), errors);
    }
    if let Some(ap) = obj.get("additionalProperties").filter(|v| v.is_object()) {
        check_structural(ap, &format!("{at}{{}}"), errors);
    }
}

/// Every property of the spec and status is documented (`kubectl explain`).
fn check_described(node: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            let path = format!("{at}.{k}");
            if v.get("description")
                .and_then(Value::as_str)
                .map_or(true, str::is_empty)
            {
                errors.push(format!("{path}: no description"));
            }
            check_described(v, &path, errors);
        }
    }
    if let Some(items) = node.get("items") {
        check_described(items, &format!("{at}[]"), errors);
    }
}

#[test]
fn schemas_are_structural_and_documented() {
    use kube::CustomResourceExt;
    for crd in [
        cairn_operator::crd::SecretPolicy::crd(),
        cairn_operator::crd::DynamicCredential::crd(),
    ] {
        let crd = serde_json::to_value(&crd).unwrap();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_owned();
        let version = &crd["spec"]["versions"][0];
        let schema = &version["schema"]["openAPIV3Schema"];
        let mut errors = Vec::new();
        check_structural(schema, &kind, &mut errors);
        for part in ["spec", "status"] {
            check_described(
                &schema["properties"][part],
                &format!("{kind}.{part}"),
                &mut errors,
            );
        }
        assert!(errors.is_empty(), "{kind}: {errors:#?}");
        assert_eq!(crd["spec"]["group"], "cairn.dev");
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        assert_eq!(
            crd["spec"]["names"]["categories"],
            serde_json::json!(["cairn"])
        );
        assert!(version["subresources"]["status"].is_object());
        let columns: Vec<&str> = version["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert!(
            columns.contains(&"Ready") && columns.contains(&"Age"),
            "{columns:?}"
        );
    }
}

#[test]
fn short_names_and_expires_column() {
    use kube::CustomResourceExt;
    let sp = serde_json::to_value(cairn_operator::crd::SecretPolicy::crd()).unwrap();
    let dc = serde_json::to_value(cairn_operator::crd::DynamicCredential::crd()).unwrap();
    assert_eq!(sp["spec"]["names"]["shortNames"], serde_json::json!(["sp"]));
    assert_eq!(dc["spec"]["names"]["shortNames"], serde_json::json!(["dc"]));
    let columns = dc["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap();
    assert!(columns
        .iter()
        .any(|c| c["name"] == "Expires" && c["jsonPath"] == ".status.leaseExpiresAt"));
}
