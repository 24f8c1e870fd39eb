//! The Vouch SLA engine (DESIGN.md §8).
//!
//! [`Engine`] turns verified telemetry batches into orchestrator scores. It
//! rebuilds gateway sessions and orchestrator attempts from go-livepeer's
//! events, puts every measurement into a UTC one-minute bucket per
//! (orchestrator, model, gateway region, origin), seals buckets a grace
//! period after they end, and answers queries over the last N sealed minutes
//! with `sla_score` v1 and the legacy leaderboard score.
//!
//! Results never depend on arrival order: every measurement is decided when
//! the bucket of its decision time seals, from the events whose own time
//! precedes that decision time, all of which are then final (later arrivals
//! for sealed minutes are dropped and counted). The same events, in any
//! order, ingested before the same seal calls, give byte-identical answers.
//!
//! Whose word counts: only gateways' and load-test gateways' observations
//! make scores; load tests are their own (`synthetic`) track; what an
//! orchestrator or its runners publish about themselves is kept apart as
//! `self_reported` and never raises a score.

mod attempt;
mod bucket;
mod compact;
mod corroboration;
mod definitions;
mod engine;
mod error;
mod histogram;
mod inventory;
mod policy;
mod query;
mod registry;
mod response;
mod score;

pub use bucket::{BucketCounters, PercentileSummary, SealedBucket};
pub use definitions::{
    BenchmarkGrain, BenchmarkPolicy, Combine, Edge, ExcuseRule, MetricsPolicy, Signal, Span,
    Statistic, Unit, Viability,
};
pub use engine::{Engine, EngineStats, IngestReport, Limits, Observer};
pub use error::{PolicyError, RegistryError, SlaError};
pub use histogram::Histogram;
pub use policy::{
    AttemptPolicy, BUILTIN_POLICIES, CorroborationPolicy, DEFAULT_POLICY_TOML, FailureClass,
    FailureRule, IngestPolicy, LegacyPolicy, Policy, ScoringPolicy, SlaScoreV1, WindowPolicy,
};
pub use query::{Query, QueryError, Window};
pub use registry::{DEFAULT_REGISTRY_TOML, ModelSpec, Registry};
pub use response::{
    AdvertisedGpu, AdvertisedModel, AdvertisedPrice, AggregatedScore, AggregatedStats, Agreement,
    CapabilitiesResponse, Components, DemandFees, DemandResponse, DemandRow, DemandTotals,
    FailureCounts, Filters, FpsSummary, GatewayCount, GpuCount, ModelEntry, ModelsResponse,
    OrchestratorDetail, OrchestratorEntry, OrchestratorMetrics, OrchestratorsResponse, Percentiles,
    PolicyRef, RegionEntry, RegionsResponse, RegistryRef, RestrictedCapabilities, SelfReported,
    SeriesPoint, Targets, WindowInfo,
};
