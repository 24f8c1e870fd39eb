//! Response bodies, in the shape of the SLA API contract (api-shape.md).

use std::collections::BTreeMap;

use serde::Serialize;
use vouch_schema::Address;

pub use crate::bucket::PercentileSummary as Percentiles;
use crate::registry::ModelSpec;

/// The window a response covers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowInfo {
    /// `1m` … `7d`.
    pub name: &'static str,
    /// Start, ms.
    pub start_ms: u64,
    /// End (exclusive), ms.
    pub end_ms: u64,
    /// Start, RFC 3339 UTC.
    pub start: String,
    /// End, RFC 3339 UTC.
    pub end: String,
}

/// The policy that produced a score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyRef {
    /// `{id}-v{version}`: what `?policy=` selects it by.
    pub name: String,
    /// Policy id.
    pub id: String,
    /// Policy version.
    pub version: u32,
    /// Hash of the policy file bytes.
    pub hash: String,
}

/// The registry in force.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegistryRef {
    /// Registry version.
    pub version: u32,
    /// Hash of the registry file bytes.
    pub hash: String,
}

/// How the verifiers that checkpointed a window agree with the one answering:
/// `verifiers` signed checkpoints of its minutes (this one included), `agree`
/// of them signed the same envelopes and buckets for every minute this one
/// checkpointed (this one included). Filled in by the verifier from its
/// checkpoint book; absent where no book exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Agreement {
    /// Verifiers with a checkpoint in the window.
    pub verifiers: u64,
    /// Of those, verifiers that agree on every minute.
    pub agree: u64,
}

/// The filters applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Filters {
    /// Region filter.
    pub region: Option<String>,
    /// Canonical model filter.
    pub model_id: Option<String>,
    /// Pipeline filter.
    pub pipeline: Option<String>,
    /// `production` or `synthetic`.
    pub origin: &'static str,
}

/// Failed attempts by class.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct FailureCounts {
    pub timeout: u64,
    pub model_error: u64,
    pub transport_disconnect: u64,
    pub orchestrator_rejection: u64,
    pub gateway_error: u64,
    pub client_caused: u64,
    pub other: u64,
}

/// Output fps observed by gateways.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FpsSummary {
    /// Median fps.
    pub p50: Option<f64>,
    /// σ/μ of the samples.
    pub jitter: Option<f64>,
    /// Status samples.
    pub samples: u64,
}

/// The score's components.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Components {
    /// Health-signal coverage, 0..1.
    pub coverage: Option<f64>,
    /// Reliability, 0..1.
    pub reliability: Option<f64>,
    /// Quality against the cohort, 0..1.
    pub quality: Option<f64>,
}

/// What the orchestrator says about itself (never raises its score).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SelfReported {
    /// Self-reported median fps.
    pub fps_p50: Option<f64>,
    /// Compute efficiency, 0..1.
    pub cue: Option<f64>,
    /// `gpm`, `nvml` or `proxy`.
    pub cue_source: Option<&'static str>,
    /// Whether self-reported fps and the gateways' differ badly.
    pub disagrees: bool,
}

/// The metric fields shared by every entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct OrchestratorMetrics {
    /// `ok` or `insufficient_data` (too few attempts, or too few distinct gateways).
    pub status: &'static str,
    /// Distinct gateways whose observations are in these figures.
    pub gateways: u64,
    /// Of those, gateways whose view is far from the others'.
    pub flagged_gateways: u64,
    pub sla_score: Option<f64>,
    pub legacy_score: Option<f64>,
    pub attempts: u64,
    pub sessions: u64,
    pub startup_success_rate: Option<f64>,
    pub swap_rate: Option<f64>,
    pub failure_rate: Option<f64>,
    pub excused_failures: u64,
    pub failures: FailureCounts,
    pub ptff_ms: Percentiles,
    pub startup_ms: Percentiles,
    pub e2e_ms: Percentiles,
    pub fps: FpsSummary,
    pub inference_minutes: f64,
    pub components: Components,
    pub self_reported: SelfReported,
}

/// One orchestrator in the list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrchestratorEntry {
    /// 1-based rank; `null` in a detail's summary.
    pub rank: Option<u64>,
    /// The orchestrator.
    pub address: Address,
    /// Its metrics.
    #[serde(flatten)]
    pub metrics: OrchestratorMetrics,
}

/// `GET /v1/sla/orchestrators`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct OrchestratorsResponse {
    pub window: WindowInfo,
    pub policy: PolicyRef,
    pub filters: Filters,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement: Option<Agreement>,
    pub orchestrators: Vec<OrchestratorEntry>,
}

/// How an orchestrator's tail compares with the model's targets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Targets {
    /// The policy's compliance percentile.
    pub percentile: u32,
    /// PTFF at that percentile, ms.
    pub ptff_ms: Option<u64>,
    /// The model's PTFF target, ms.
    pub ptff_target_ms: u64,
    /// Startup at that percentile, ms.
    pub startup_ms: Option<u64>,
    /// The model's startup target, ms.
    pub startup_target_ms: u64,
    /// Median output fps.
    pub fps_p50: Option<f64>,
    /// The model's target fps.
    pub target_fps: f64,
    /// Whether every known figure meets its target.
    pub met: bool,
}

/// One model of an orchestrator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelEntry {
    /// Canonical model id.
    pub model_id: String,
    /// Its pipeline.
    pub pipeline: String,
    /// Its metrics.
    #[serde(flatten)]
    pub metrics: OrchestratorMetrics,
    /// Against the model's targets (`null` for models the registry lacks).
    pub targets: Option<Targets>,
}

/// One region of an orchestrator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionEntry {
    /// Gateway region.
    pub region: String,
    /// Its metrics.
    #[serde(flatten)]
    pub metrics: OrchestratorMetrics,
}

/// One step of an orchestrator's series.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct SeriesPoint {
    pub start_ms: u64,
    pub attempts: u64,
    pub ptff_ms: Percentiles,
    pub e2e_ms: Percentiles,
    pub fps_p50: Option<f64>,
    pub startup_success_rate: Option<f64>,
    pub swaps: u64,
}

/// What one gateway observed of an orchestrator (restricted).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GatewayCount {
    /// The gateway (signer's principal).
    pub gateway: Address,
    /// Attempts.
    pub attempts: u64,
    /// Its startup success rate (excused attempts left out).
    pub startup_success_rate: Option<f64>,
    /// Its mean PTFF, ms.
    pub ptff_mean_ms: Option<f64>,
    /// Whether its view is far from the other gateways' (policy `[corroboration]`).
    pub flagged: bool,
}

/// `GET /v1/sla/orchestrators/{address}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct OrchestratorDetail {
    pub window: WindowInfo,
    pub policy: PolicyRef,
    pub filters: Filters,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement: Option<Agreement>,
    pub summary: OrchestratorEntry,
    pub by_model: Vec<ModelEntry>,
    pub by_region: Vec<RegionEntry>,
    pub series: Vec<SeriesPoint>,
    /// Only for restricted callers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_gateway: Option<Vec<GatewayCount>>,
}

/// One demand row.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct DemandRow {
    pub model_id: String,
    pub pipeline: String,
    pub region: String,
    pub sessions: u64,
    pub attempts: u64,
    pub inference_minutes: f64,
    #[serde(flatten)]
    pub fees: DemandFees,
}

/// Demand totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct DemandTotals {
    pub sessions: u64,
    pub attempts: u64,
    pub inference_minutes: f64,
    #[serde(flatten)]
    pub fees: DemandFees,
}

/// What gateways paid and could not place, per demand row and in totals
/// (from `create_new_payment` and "no orchestrator" signals in the window).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DemandFees {
    /// Expected value of the tickets paid (Σ faceValue × numTickets ×
    /// winProb), ETH; `fees_wei` is the exact figure.
    pub fees_eth: f64,
    /// The same in wei, exact, as a decimal string.
    pub fees_wei: String,
    /// Σ faceValue of the payments, ETH: NaaP's `ticket_face_value_eth`
    /// (a face value, not a fee).
    pub ticket_face_value_eth: f64,
    /// Payment events.
    pub payments: u64,
    /// Sessions a gateway could not place with any orchestrator.
    pub unserved_sessions: u64,
}

/// `GET /v1/orchestrators/{address}/capabilities`: the latest advertisement
/// gateways relayed for a listed orchestrator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapabilitiesResponse {
    /// The orchestrator.
    pub address: Address,
    /// Event time of the advertisement served, ms.
    pub advertised_at_ms: u64,
    /// The same, RFC 3339 UTC.
    pub advertised_at: String,
    /// Distinct gateways that reported this orchestrator within an hour
    /// before the advertisement served.
    pub reported_by_gateways: u64,
    /// Pipelines of the advertised hardware, sorted.
    pub pipelines: Vec<String>,
    /// Per advertised model.
    pub models: Vec<AdvertisedModel>,
    /// `price_info`: wei per pixel (pricePerUnit / pixelsPerUnit), as advertised.
    pub price_per_pixel_wei: Option<f64>,
    /// `capabilities_prices`, as advertised.
    pub capability_prices: Vec<AdvertisedPrice>,
    /// Only for restricted callers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restricted: Option<RestrictedCapabilities>,
}

/// One advertised (pipeline, model).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdvertisedModel {
    /// Canonical id (model registry).
    pub model_id: String,
    /// The name the orchestrator advertised.
    pub advertised_as: String,
    /// As advertised.
    pub pipeline: String,
    /// GPUs by type name.
    pub gpus: Vec<GpuCount>,
    /// GPUs in all.
    pub gpu_count: u64,
}

/// GPUs of one type name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuCount {
    /// GPU name (`unknown` when not advertised).
    pub name: String,
    /// How many.
    pub count: u64,
}

/// One `capabilities_prices` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdvertisedPrice {
    /// go-livepeer capability number.
    pub capability: Option<u64>,
    /// Constraint as advertised (a model id for live AI).
    pub constraint: Option<String>,
    /// Canonical id of the constraint, when it names a model.
    pub model_id: Option<String>,
    /// As advertised.
    pub price_per_unit: u64,
    /// As advertised.
    pub pixels_per_unit: u64,
    /// price_per_unit / pixels_per_unit (`null` for 0 pixels).
    pub price_per_pixel_wei: Option<f64>,
}

/// Fields only a caller with the restricted scope sees (DESIGN.md §3.2).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestrictedCapabilities {
    /// The orchestrator's service URI.
    pub orch_uri: Option<String>,
    /// Every advertised GPU.
    pub gpus: Vec<AdvertisedGpu>,
}

/// One advertised GPU in full.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct AdvertisedGpu {
    /// Canonical model id.
    pub model_id: String,
    pub pipeline: String,
    /// GPU UUID.
    pub id: Option<String>,
    pub name: Option<String>,
    pub major: Option<u64>,
    pub minor: Option<u64>,
    /// As advertised (go-livepeer: bytes).
    pub memory_free: Option<u64>,
    /// As advertised (go-livepeer: bytes).
    pub memory_total: Option<u64>,
}

/// `GET /v1/network/demand`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct DemandResponse {
    pub window: WindowInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement: Option<Agreement>,
    pub rows: Vec<DemandRow>,
    pub totals: DemandTotals,
}

/// `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct ModelsResponse {
    pub registry: RegistryRef,
    pub models: Vec<ModelSpec>,
}

/// `GET /v1/regions`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionsResponse {
    /// Gateway regions seen, sorted.
    pub regions: Vec<String>,
}

/// One `/api/aggregated_stats` cell (the legacy leaderboard's shape).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AggregatedScore {
    /// Legacy score, 0..1.
    pub score: f64,
    /// Startup success rate, 0..1.
    pub success_rate: f64,
    /// e^(−k·rtt), 0..1.
    pub round_trip_score: f64,
}

/// Orchestrator → region → score.
pub type AggregatedStats = BTreeMap<String, BTreeMap<String, AggregatedScore>>;

/// Rounds a figure of an answer to `digits` decimals (stable output, no
/// float noise, never `-0`).
pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    let r = (x * f).round() / f;
    if r == 0.0 { 0.0 } else { r }
}
