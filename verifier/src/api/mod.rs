//! The SLA HTTP API and dashboard (DESIGN.md §9).
//!
//! [`Api`] serves the SLA endpoints from any [`SlaSource`], the OpenAPI
//! document, and the dashboard page, behind four layers (outermost first):
//! request counting, CORS (an allowlist of origins), a per-client rate limit,
//! and security headers. A bearer JWT with the configured scope unlocks the
//! restricted `by_gateway` field; any token that fails verification simply
//! unlocks nothing. Errors are JSON with a stable code ([`ApiError`]).
//!
//! Serve with `into_make_service_with_connect_info::<SocketAddr>()` so the
//! rate limit sees each client's address; without it all clients share one
//! bucket.

pub mod auth;
pub mod config;
mod cors;
mod dashboard;
pub mod error;
pub mod limits;
pub mod openapi;
pub mod source;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use vouch_net::metrics::{counter, counter_family, gauge};

pub use auth::{JwtConfigError, JwtRejection, JwtVerifier, PublicKeyError};
pub use config::{ApiConfig, JwtAlgorithm, JwtConfig, RateLimitConfig};
pub use error::ApiError;
pub use source::{Params, SlaSource};

use cors::Cors;
use limits::RateLimiter;

/// Why an [`ApiConfig`] cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ApiConfigError {
    /// The JWT key is unusable.
    #[error(transparent)]
    Jwt(#[from] JwtConfigError),
    /// A CORS origin is not `scheme://host[:port]` or `*`.
    #[error("[api] cors_origins: {origin:?} is not an origin (scheme://host[:port]) or \"*\"")]
    CorsOrigin {
        /// The origin as configured.
        origin: String,
    },
    /// A `frame-ancestors` source would break the header.
    #[error("[api] frame_ancestors: {value:?} is not a CSP source expression")]
    FrameAncestor {
        /// The source expression (or the joined policy) as configured.
        value: String,
    },
}

/// Counters of the API, collected into `/metrics`.
#[derive(Debug)]
pub struct ApiMetrics {
    // (route template, status) → count; bounded by the routes and statuses that exist.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    jwt_rejected: [AtomicU64; JwtRejection::ALL.len()],
    shed: AtomicU64,
    limiter: Arc<RateLimiter>,
}

impl ApiMetrics {
    fn new(limiter: Arc<RateLimiter>) -> Self {
        Self {
            requests: Mutex::new(BTreeMap::new()),
            jwt_rejected: Default::default(),
            shed: AtomicU64::new(0),
            limiter,
        }
    }

    fn count(&self, route: &str, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((route.to_owned(), status)).or_default() += 1;
    }

    /// Requests answered so far for `route` (its template) with `status`.
    pub fn requests(&self, route: &str, status: u16) -> u64 {
        let map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(route.to_owned(), status)).copied().unwrap_or(0)
    }
}

impl Collector for ApiMetrics {
    /// The `vouch_api_*` families.
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let enc = &mut enc;
        let requests: Vec<_> = {
            let map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            map.iter()
                .map(|((route, status), n)| {
                    (vec![("route", route.clone()), ("status", status.to_string())], *n)
                })
                .collect()
        };
        counter_family(
            enc,
            "vouch_api_requests_total",
            "HTTP requests by route and status.",
            requests,
        )?;
        counter_family(
            enc,
            "vouch_api_jwt_rejected_total",
            "Bearer tokens that granted nothing, by reason.",
            JwtRejection::ALL
                .iter()
                .zip(&self.jwt_rejected)
                .map(|(reason, n)| ([("reason", reason.as_str())], n.load(Ordering::Relaxed))),
        )?;
        counter(
            enc,
            "vouch_api_rate_limited_total",
            "Requests refused by the per-client rate limit.",
            self.limiter.limited.load(Ordering::Relaxed),
        )?;
        counter(
            enc,
            "vouch_api_shed_total",
            "Requests answered 503 because max_in_flight source calls were running.",
            self.shed.load(Ordering::Relaxed),
        )?;
        counter(
            enc,
            "vouch_api_rate_limit_evictions_total",
            "Clients forgotten by the rate limiter because its map was full.",
            self.limiter.evictions.load(Ordering::Relaxed),
        )?;
        gauge(
            enc,
            "vouch_api_rate_limit_clients",
            "Clients the rate limiter tracks now.",
            self.limiter.tracked() as u64,
        )
    }
}

struct Shared {
    source: Arc<dyn SlaSource>,
    jwt: Option<JwtVerifier>,
    limiter: Arc<RateLimiter>,
    cors: Cors,
    csp: HeaderValue,
    metrics: Arc<ApiMetrics>,
    // Bounds the blocking threads source calls occupy.
    in_flight: Arc<tokio::sync::Semaphore>,
}

/// The API over one [`SlaSource`]: build once, then take its [`Api::router`].
#[derive(Clone)]
pub struct Api {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").finish_non_exhaustive()
    }
}

/// Every path the API serves itself, as routed (the OpenAPI document must list each).
pub const ROUTES: &[&str] = &[
    "/v1/sla/orchestrators",
    "/v1/sla/orchestrators/{address}",
    "/v1/orchestrators/{address}/capabilities",
    "/v1/network/demand",
    "/v1/models",
    "/v1/policies",
    "/v1/regions",
    "/api/aggregated_stats",
    "/v1/openapi.json",
    "/",
    "/dashboard/app.js",
    "/dashboard/style.css",
];

impl Api {
    /// Checks `config` (reads the JWT key file) and builds the API.
    pub fn new(source: Arc<dyn SlaSource>, config: &ApiConfig) -> Result<Self, ApiConfigError> {
        let jwt = config.jwt.as_ref().map(JwtVerifier::from_config).transpose()?;
        let cors = Cors::new(&config.cors_origins)?;
        let csp = dashboard::content_security_policy(&config.frame_ancestors)?;
        let limiter = Arc::new(RateLimiter::new(&config.rate_limit));
        let metrics = Arc::new(ApiMetrics::new(Arc::clone(&limiter)));
        let in_flight = Arc::new(tokio::sync::Semaphore::new(config.max_in_flight.max(1)));
        Ok(Self {
            shared: Arc::new(Shared { source, jwt, limiter, cors, csp, metrics, in_flight }),
        })
    }

    /// The API's counters (a collector for `/metrics`).
    pub fn metrics(&self) -> Arc<ApiMetrics> {
        Arc::clone(&self.shared.metrics)
    }

    /// The API's own routes with its layers, JSON 404/405 for everything else.
    pub fn router(&self) -> Router {
        self.wrap(Router::new())
    }

    /// The API's routes merged with `inner` (e.g. the node's `/healthz`,
    /// `/metrics`, `/v1/ingest/stats`), all behind the API's layers: counted,
    /// rate limited, CORS-checked, JSON 404/405. `inner` must have no fallback.
    pub fn wrap(&self, inner: Router) -> Router {
        let shared = Arc::clone(&self.shared);
        Router::new()
            .route("/v1/sla/orchestrators", get(orchestrators))
            .route("/v1/sla/orchestrators/{address}", get(orchestrator))
            .route("/v1/orchestrators/{address}/capabilities", get(capabilities))
            .route("/v1/network/demand", get(demand))
            .route("/v1/models", get(models))
            .route("/v1/policies", get(policies))
            .route("/v1/regions", get(regions))
            .route("/api/aggregated_stats", get(aggregated_stats))
            .route("/v1/openapi.json", get(openapi_document))
            .route("/", get(dashboard::index))
            .route("/dashboard/app.js", get(dashboard::app_js))
            .route("/dashboard/style.css", get(dashboard::style_css))
            .with_state(Arc::clone(&shared))
            .merge(inner)
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(middleware::from_fn_with_state(Arc::clone(&shared), limit))
            .layer(middleware::from_fn_with_state(Arc::clone(&shared), cors::layer))
            .layer(middleware::from_fn_with_state(shared, track))
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such path".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Counts every answer by route template and status; adds the headers every answer carries.
async fn track(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let mut response = next.run(req).await;
    shared.metrics.count(&route, response.status().as_u16());
    let headers = response.headers_mut();
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

async fn limit(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let client = shared.limiter.client(req.headers(), peer);
    match shared.limiter.check(client, Instant::now()) {
        Ok(()) => next.run(req).await,
        Err(retry_after_s) => ApiError::RateLimited { retry_after_s }.into_response(),
    }
}

/// Parses the query string; a repeated name or bad encoding is a 400.
fn params(uri: &Uri) -> Result<Params, ApiError> {
    let mut out = Params::new();
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if k.is_empty() {
            continue;
        }
        if out.insert(k.clone().into_owned(), v.into_owned()).is_some() {
            return Err(ApiError::BadRequest(format!(
                "query parameter {k:?} given more than once"
            )));
        }
    }
    Ok(out)
}

/// Runs a source call on a blocking thread (sources may lock and compute).
async fn call<T, F>(shared: &Arc<Shared>, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&dyn SlaSource) -> Result<T, ApiError> + Send + 'static,
{
    let Ok(permit) = Arc::clone(&shared.in_flight).try_acquire_owned() else {
        shared.metrics.shed.fetch_add(1, Ordering::Relaxed);
        return Err(ApiError::Unavailable("busy; retry shortly".into()));
    };
    let source = Arc::clone(&shared.source);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        f(source.as_ref())
    })
    .await
    .map_err(|e| {
        tracing::error!(%e, "SLA source call failed");
        ApiError::Internal("the SLA source failed".into())
    })?
}

fn json(body: Bytes, cache: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// Public answers change at most once a sealed minute.
const PUBLIC_CACHE: &str = "public, max-age=5";

async fn orchestrators(State(s): State<Arc<Shared>>, uri: Uri) -> Result<Response, ApiError> {
    let p = params(&uri)?;
    Ok(json(call(&s, move |src| src.orchestrators(&p)).await?, PUBLIC_CACHE))
}

async fn demand(State(s): State<Arc<Shared>>, uri: Uri) -> Result<Response, ApiError> {
    let p = params(&uri)?;
    Ok(json(call(&s, move |src| src.demand(&p)).await?, PUBLIC_CACHE))
}

async fn aggregated_stats(State(s): State<Arc<Shared>>, uri: Uri) -> Result<Response, ApiError> {
    let p = params(&uri)?;
    Ok(json(call(&s, move |src| src.aggregated_stats(&p)).await?, PUBLIC_CACHE))
}

async fn models(State(s): State<Arc<Shared>>, uri: Uri) -> Result<Response, ApiError> {
    params(&uri)?;
    Ok(json(call(&s, |src| Ok(src.models())).await?, PUBLIC_CACHE))
}

async fn policies(State(s): State<Arc<Shared>>, uri: Uri) -> Result<Response, ApiError> {
    params(&uri)?;
    Ok(json(call(&s, |src| Ok(src.policies())).await?, PUBLIC_CACHE))
}

async fn regions(State(s): State<Arc<Shared>>, uri: Uri) -> Result<Response, ApiError> {
    params(&uri)?;
    Ok(json(call(&s, |src| Ok(src.regions())).await?, PUBLIC_CACHE))
}

async fn orchestrator(
    State(s): State<Arc<Shared>>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let Path(address) = path.map_err(|_| ApiError::BadRequest("bad address in path".into()))?;
    let p = params(&uri)?;
    let restricted = granted(&s, &headers);
    let address_for_error = address.clone();
    let body = call(&s, move |src| src.orchestrator(&address, &p, restricted)).await?.ok_or_else(
        || ApiError::NotFound(format!("orchestrator {address_for_error:.64} not seen")),
    )?;
    restricted_answer(body, restricted)
}

/// Whether the request's bearer token grants the restricted scope; a token
/// that fails verification grants nothing and is counted by reason.
fn granted(s: &Shared, headers: &HeaderMap) -> bool {
    match &s.jwt {
        None => false,
        Some(verifier) => match verifier.grants(headers) {
            Ok(granted) => granted,
            Err(reason) => {
                tracing::debug!(%reason, "bearer token grants nothing");
                if let Some(i) = JwtRejection::ALL.iter().position(|r| *r == reason) {
                    s.metrics.jwt_rejected[i].fetch_add(1, Ordering::Relaxed);
                }
                false
            }
        },
    }
}

async fn capabilities(
    State(s): State<Arc<Shared>>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let Path(address) = path.map_err(|_| ApiError::BadRequest("bad address in path".into()))?;
    if let Some(name) = params(&uri)?.keys().next() {
        return Err(ApiError::BadRequest(format!("unknown query parameter {name:.64?}")));
    }
    let restricted = granted(&s, &headers);
    let address_for_error = address.clone();
    let body =
        call(&s, move |src| src.capabilities(&address, restricted)).await?.ok_or_else(|| {
            ApiError::NotFound(format!("no advertisement of orchestrator {address_for_error:.64}"))
        })?;
    restricted_answer(body, restricted)
}

/// An answer that may hold restricted members: private when `restricted`,
/// else stripped of them and publicly cacheable; varies with the token.
fn restricted_answer(body: Bytes, restricted: bool) -> Result<Response, ApiError> {
    let body = if restricted { body } else { strip_restricted(body)? };
    let mut response = json(body, if restricted { "private, no-store" } else { PUBLIC_CACHE });
    response.headers_mut().insert(header::VARY, HeaderValue::from_static("authorization"));
    Ok(response)
}

/// Top-level members only a restricted caller may see.
const RESTRICTED_FIELDS: [&str; 2] = ["by_gateway", "restricted"];

/// Defence in depth: a source that returned a restricted member to an
/// unauthorized request has a bug; the member is removed here so it never leaves.
fn strip_restricted(body: Bytes) -> Result<Bytes, ApiError> {
    let quoted = |f: &str| format!("\"{f}\"");
    if !RESTRICTED_FIELDS.iter().any(|f| {
        let q = quoted(f);
        body.windows(q.len()).any(|w| w == q.as_bytes())
    }) {
        return Ok(body);
    }
    let mut value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::Internal("the SLA source returned invalid JSON".into()))?;
    if let Some(obj) = value.as_object_mut() {
        for field in RESTRICTED_FIELDS {
            if obj.remove(field).is_some() {
                tracing::error!(
                    field,
                    "SLA source returned a restricted field without authorization; removed"
                );
            }
        }
    }
    Ok(Bytes::from(value.to_string()))
}

async fn openapi_document() -> Response {
    json(Bytes::from_static(openapi::DOCUMENT.as_bytes()), PUBLIC_CACHE)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused() {
        let uri: Uri = "/x?window=1h&region=FRA".parse().unwrap();
        assert_eq!(params(&uri).unwrap().len(), 2);
        let uri: Uri = "/x?window=1h&window=24h".parse().unwrap();
        assert!(matches!(params(&uri), Err(ApiError::BadRequest(_))));
        let uri: Uri = "/x?region=F%52A".parse().unwrap();
        assert_eq!(params(&uri).unwrap()["region"], "FRA");
    }

    #[test]
    fn restricted_field_is_stripped() {
        let body = Bytes::from_static(br#"{"summary":{},"by_gateway":[{"gateway":"0x1"}]}"#);
        let out = strip_restricted(body).unwrap();
        assert_eq!(&out[..], br#"{"summary":{}}"#);
    }
}
