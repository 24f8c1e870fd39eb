//! The boundary between the HTTP layer and the SLA state (DESIGN.md §8).
//!
//! The HTTP layer knows nothing about buckets or scores: it hands the parsed
//! query to a [`SlaSource`] and serves the JSON bytes it gets back. Bodies are
//! pre-serialized so a source may cache them (a sealed window never changes).
//! Shapes: the OpenAPI document `openapi.json` beside this module.

use std::collections::BTreeMap;

use axum::body::Bytes;

use super::error::ApiError;

/// Query parameters of one request, by name (a repeated name is refused before a source sees it).
pub type Params = BTreeMap<String, String>;

/// What the API asks of the SLA state. Bodies are JSON bytes (pre-serialized, cacheable).
///
/// Every method validates its own parameters and answers
/// [`ApiError::BadRequest`] for unusable ones; none may panic on input. The
/// methods are called on a blocking thread, so they may take locks or compute.
pub trait SlaSource: Send + Sync + 'static {
    /// `GET /v1/sla/orchestrators`: the leaderboard for `window`, `region`,
    /// `model_id`, `pipeline`, `origin`.
    fn orchestrators(&self, params: &Params) -> Result<Bytes, ApiError>;
    /// `GET /v1/sla/orchestrators/{address}`: one orchestrator, `None` when it
    /// was never seen. `by_gateway` only when `restricted` is true.
    fn orchestrator(
        &self,
        address: &str,
        params: &Params,
        restricted: bool,
    ) -> Result<Option<Bytes>, ApiError>;
    /// `GET /v1/orchestrators/{address}/capabilities`: the latest
    /// advertisement of a listed orchestrator, `None` when there is none.
    /// GPU ids, memory and the URI (`restricted`) only when `restricted` is true.
    fn capabilities(&self, address: &str, restricted: bool) -> Result<Option<Bytes>, ApiError>;
    /// `GET /v1/network/demand`: sessions, attempts, inference minutes, fees
    /// and unserved sessions by model, pipeline and region.
    fn demand(&self, params: &Params) -> Result<Bytes, ApiError>;
    /// `GET /v1/policies`: the SLA policies scored (name, id, version,
    /// hash) and the default one; every SLA route takes `?policy=NAME`.
    fn policies(&self) -> Bytes;
    /// `GET /v1/models`: the model registry in force.
    fn models(&self) -> Bytes;
    /// `GET /v1/regions`: gateway regions seen, sorted.
    fn regions(&self) -> Bytes;
    /// `GET /api/aggregated_stats`: go-livepeer's `-orchPerfStatsUrl` shape
    /// (`region`, `model`, `pipeline`, `window`; 24h by default).
    fn aggregated_stats(&self, params: &Params) -> Result<Bytes, ApiError>;

    /// The body the API serves at `route` for the query string `query`:
    /// `orchestrators`, `demand`, `aggregated_stats`, `regions`, `models`,
    /// `policies`, `orchestrator/0x…` or `capabilities/0x…` (public fields
    /// only). What `vouch replay --sla`
    /// prints, so an auditor compares exactly the node's bytes.
    fn answer(&self, route: &str, query: &str) -> Result<Bytes, ApiError> {
        let params: Params = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        match route {
            "orchestrators" => self.orchestrators(&params),
            "demand" => self.demand(&params),
            "aggregated_stats" => self.aggregated_stats(&params),
            "regions" => Ok(self.regions()),
            "models" => Ok(self.models()),
            "policies" => Ok(self.policies()),
            other => {
                let found = if let Some(address) = other.strip_prefix("orchestrator/") {
                    self.orchestrator(address, &params, false)?
                } else if let Some(address) = other.strip_prefix("capabilities/") {
                    self.capabilities(address, false)?
                } else {
                    return Err(ApiError::NotFound(format!("unknown route {other:?}")));
                };
                found.ok_or_else(|| ApiError::NotFound(format!("{other} never seen")))
            }
        }
    }
}
