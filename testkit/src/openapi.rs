//! Checks an answer against the API's OpenAPI document (the verifier's
//! `vouch_verifier::api::openapi::DOCUMENT`, which the caller passes in:
//! this crate does not depend on the verifier), with the `jsonschema` crate.

use serde_json::{Value, json};

/// The document, parsed.
pub fn document(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// A validator for the JSON answer of `GET path` (a documented path
/// template, e.g. `/v1/sla/orchestrators/{address}`) with `status`.
pub fn validator(doc: &Value, path: &str, status: u16) -> jsonschema::Validator {
    let schema = &doc["paths"][path]["get"]["responses"][status.to_string()]["content"]["application/json"]
        ["schema"];
    assert!(schema.is_object(), "{path} {status} has no JSON schema in the document");
    let root = json!({"$ref": schema["$ref"], "components": doc["components"]});
    let root = if schema.get("$ref").is_some() { root } else { schema.clone() };
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap()
}

/// Panics with every violation when `body` does not match what the
/// document promises for `GET path` answering `status`.
pub fn assert_documented(doc: &Value, path: &str, status: u16, body: &Value) {
    let errors: Vec<String> = validator(doc, path, status)
        .iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{path} {status}: {errors:#?}\n{body}");
}
