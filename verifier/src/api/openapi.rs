//! The OpenAPI 3.1 document of the API (`/v1/openapi.json`), checked in as
//! `openapi.json` beside this file. `verifier/tests/api.rs` validates live
//! answers against its schemas and checks that every route is listed.

/// The document, as served.
pub const DOCUMENT: &str = include_str!("openapi.json");
