//! TEST DOUBLE of the SLA engine (`vouch-sla`, which has its own tests): an
//! [`SlaSource`] that serves the fixed JSON files in `tests/data/api/`, shaped
//! exactly as the API contract (`/v1/...` answers of api-shape.md). It checks
//! parameters the way the engine must (unknown names, bad windows, origins and
//! addresses are `BadRequest`) so the HTTP layer's 400 path is exercised, and
//! records every call so tests can see what reached the source.
//!
//! It scores two policies, `sla-policy-v2` (the default) and
//! `naap-quality-benchmark-v1`, as a node configured with both does: `?policy=`
//! picks one (unknown: `BadRequest` naming both) and the answer's `policy`
//! names it, whatever the fixture file says.
//!
//! Files: `orchestrators.json` (window 1h; any window without its own file),
//! `orchestrators.24h.json`, `orchestrator.<address>.json` (with `by_gateway`,
//! removed unless the request is restricted), `demand.json`, `models.json`,
//! `regions.json`, `aggregated_stats.json`, `capabilities.<address>.json`
//! (with `restricted`, removed unless the request is restricted).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::body::Bytes;
use vouch_verifier::api::{Api, ApiError, Params, SlaSource};
use vouch_verifier::http_server::{HttpLimits, HttpServer};

const WINDOWS: [&str; 5] = ["1m", "5m", "1h", "24h", "7d"];
const FILTERS: [&str; 6] = ["window", "region", "model_id", "pipeline", "origin", "policy"];
/// The policies the double scores, default first.
const POLICIES: [&str; 2] = ["sla-policy-v2", "naap-quality-benchmark-v1"];

/// The fixtures' directory.
pub(crate) fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/api")
}

/// The test double; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct FixtureSource {
    /// Where the fixtures are.
    pub(crate) dir: PathBuf,
    /// Return `by_gateway` even to unauthorized requests (a buggy engine), to
    /// check that the HTTP layer still never lets it out.
    pub(crate) leak_restricted: bool,
    /// Every call: (method, parameters, restricted).
    pub(crate) calls: Mutex<Vec<(String, Params, bool)>>,
}

impl FixtureSource {
    /// Serves the checked-in fixtures.
    pub(crate) fn new() -> Self {
        Self { dir: data_dir(), ..Self::default() }
    }

    fn file(&self, name: &str) -> Option<Bytes> {
        std::fs::read(self.dir.join(name)).ok().map(Bytes::from)
    }

    fn must(&self, name: &str) -> Bytes {
        self.file(name).unwrap_or_else(|| panic!("fixture {name} missing"))
    }

    fn record(&self, method: &str, params: &Params, restricted: bool) {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).push((
            method.to_owned(),
            params.clone(),
            restricted,
        ));
    }
}

/// The `policy` object of the policy `params` select (absent: the default).
fn policy_ref(params: &Params) -> Result<serde_json::Value, ApiError> {
    let name = params.get("policy").map_or(POLICIES[0], String::as_str);
    let policy = Some(name)
        .filter(|n| POLICIES.contains(n))
        .and_then(vouch_sla::Policy::builtin)
        .ok_or_else(|| {
        ApiError::BadRequest(format!(
            "unknown policy {name:?}; this verifier scores {}",
            POLICIES.join(", ")
        ))
    })?;
    Ok(serde_json::json!({
        "name": policy.name(),
        "id": policy.id,
        "version": policy.version,
        "hash": policy.hash,
    }))
}

/// `body` with its `policy` object replaced by `policy`.
fn with_policy(body: &[u8], policy: serde_json::Value) -> Result<serde_json::Value, ApiError> {
    let mut v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::Internal(format!("fixture: {e}")))?;
    if let Some(o) = v.as_object_mut() {
        o.insert("policy".into(), policy);
    }
    Ok(v)
}

fn check(params: &Params, allowed: &[&str]) -> Result<(), ApiError> {
    for (k, v) in params {
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::BadRequest(format!("unknown query parameter {k:?}")));
        }
        let ok = match k.as_str() {
            "window" => WINDOWS.contains(&v.as_str()),
            "origin" => v == "production" || v == "synthetic",
            "region" => !v.is_empty() && v.len() <= 8 && v.bytes().all(|b| b.is_ascii_uppercase()),
            _ => !v.is_empty(),
        };
        if !ok {
            return Err(ApiError::BadRequest(format!("bad value for {k}: {v:?}")));
        }
    }
    Ok(())
}

impl SlaSource for FixtureSource {
    fn orchestrators(&self, params: &Params) -> Result<Bytes, ApiError> {
        self.record("orchestrators", params, false);
        check(params, &FILTERS)?;
        let policy = policy_ref(params)?;
        let window = params.get("window").map_or("1h", String::as_str);
        let body = self
            .file(&format!("orchestrators.{window}.json"))
            .unwrap_or_else(|| self.must("orchestrators.json"));
        Ok(Bytes::from(with_policy(&body, policy)?.to_string()))
    }

    fn orchestrator(
        &self,
        address: &str,
        params: &Params,
        restricted: bool,
    ) -> Result<Option<Bytes>, ApiError> {
        self.record("orchestrator", params, restricted);
        check(params, &FILTERS)?;
        let policy = policy_ref(params)?;
        let hex = address.strip_prefix("0x").unwrap_or("");
        if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::BadRequest(format!("not an address: {address:.64}")));
        }
        let Some(body) = self.file(&format!("orchestrator.0x{}.json", hex.to_ascii_lowercase()))
        else {
            return Ok(None);
        };
        let mut v = with_policy(&body, policy)?;
        if !(restricted || self.leak_restricted)
            && let Some(o) = v.as_object_mut()
        {
            o.remove("by_gateway");
        }
        Ok(Some(Bytes::from(v.to_string())))
    }

    fn capabilities(&self, address: &str, restricted: bool) -> Result<Option<Bytes>, ApiError> {
        self.record("capabilities", &Params::new(), restricted);
        let hex = address.strip_prefix("0x").unwrap_or("");
        if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::BadRequest(format!("not an address: {address:.64}")));
        }
        let name = format!("capabilities.0x{}.json", hex.to_ascii_lowercase());
        let Some(body) = self.file(&name) else { return Ok(None) };
        if restricted || self.leak_restricted {
            return Ok(Some(body));
        }
        let mut v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::Internal(format!("fixture: {e}")))?;
        if let Some(o) = v.as_object_mut() {
            o.remove("restricted");
        }
        Ok(Some(Bytes::from(v.to_string())))
    }

    fn demand(&self, params: &Params) -> Result<Bytes, ApiError> {
        self.record("demand", params, false);
        check(params, &FILTERS)?;
        policy_ref(params)?;
        Ok(self.must("demand.json"))
    }

    fn models(&self) -> Bytes {
        self.must("models.json")
    }

    fn policies(&self) -> Bytes {
        let policies: Vec<serde_json::Value> = POLICIES
            .iter()
            .filter_map(|name| policy_ref(&Params::from([("policy".into(), (*name).into())])).ok())
            .collect();
        Bytes::from(serde_json::json!({ "default": POLICIES[0], "policies": policies }).to_string())
    }

    fn regions(&self) -> Bytes {
        self.must("regions.json")
    }

    fn aggregated_stats(&self, params: &Params) -> Result<Bytes, ApiError> {
        self.record("aggregated_stats", params, false);
        check(params, &["region", "model", "pipeline", "window", "policy"])?;
        policy_ref(params)?;
        Ok(self.must("aggregated_stats.json"))
    }
}

/// Serves `api` on `listen` (port 0: a free one) with client addresses, as
/// the node does; the address it listens on.
pub(crate) async fn serve(api: &Api, listen: SocketAddr) -> SocketAddr {
    serve_router(api.router(), listen).await
}

/// Serves `router` on `listen` (port 0: a free one) with the node's HTTP
/// server and its default limits; runs until the runtime stops.
pub(crate) async fn serve_router(router: axum::Router, listen: SocketAddr) -> SocketAddr {
    let server = HttpServer::bind(listen, &HttpLimits::default(), 0).await.expect("bind");
    let addr = server.local_addr();
    tokio::spawn(server.serve(router, std::future::pending()));
    addr
}
