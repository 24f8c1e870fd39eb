//! Metric definitions as data: the `[metrics]` table of a policy file.
//!
//! Two communities measure the same go-livepeer events differently (DESIGN.md
//! §8, issue "comparable with the community's SLA"): which event edges a
//! latency spans, whether the unit is an orchestrator attempt or a gateway
//! session, which failures are excused and whether they stay in the
//! denominator, what counts as viable output, how the value compared with
//! the cohort is taken, and how a window longer than an hour combines. Each
//! of those is a key here, so a policy file (versioned and hashed) says what
//! its scores mean, and two policies can score the same log side by side.
//!
//! Every key has a default: the definitions of `sla-policy` v1, so a policy
//! file written before the table existed loads and scores as it did.

use serde::Deserialize;

/// A point in an attempt's life that a latency starts or ends at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Edge {
    /// The session's `gateway_receive_stream_request` (for the session's
    /// first attempt; a later attempt starts at its own first event).
    Request,
    /// The attempt's first event.
    AttemptStart,
    /// `ai_stream_status.start_time`: the runner's stream start, as a
    /// number of milliseconds since the epoch (go-livepeer sends a number).
    StreamStart,
    /// `gateway_send_first_ingest_segment`.
    Ingest,
    /// `gateway_receive_first_processed_segment`.
    FirstProcessed,
    /// `gateway_receive_few_processed_segments` (playable output).
    FewProcessed,
    /// `runner_send_first_processed_segment`, relayed by the gateway.
    RunnerFirstProcessed,
}

impl Edge {
    /// The edges an attempt records (those not derived from the session or
    /// the attempt's first event), in storage order.
    pub(crate) const RECORDED: [Edge; 5] = [
        Edge::StreamStart,
        Edge::Ingest,
        Edge::FirstProcessed,
        Edge::FewProcessed,
        Edge::RunnerFirstProcessed,
    ];

    /// Slot in an attempt's recorded edges; `None` for derived edges.
    pub(crate) fn slot(self) -> Option<usize> {
        Edge::RECORDED.iter().position(|&e| e == self)
    }

    /// The edge a `stream_trace` subtype records, if any.
    pub(crate) fn of_trace(subtype: &str) -> Option<Edge> {
        match subtype {
            "gateway_send_first_ingest_segment" => Some(Edge::Ingest),
            "gateway_receive_first_processed_segment" => Some(Edge::FirstProcessed),
            "gateway_receive_few_processed_segments" => Some(Edge::FewProcessed),
            "runner_send_first_processed_segment" => Some(Edge::RunnerFirstProcessed),
            _ => None,
        }
    }
}

/// A latency: from one edge to another, measured when both were seen and
/// the end is not before the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Span {
    /// Where it starts.
    pub from: Edge,
    /// Where it ends.
    pub to: Edge,
}

/// What one observation in the denominators is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Every orchestrator that served a session is judged on its own
    /// attempt; a swap is charged to the orchestrator swapped away from.
    Attempt,
    /// A gateway session is judged once, charged to one attributed
    /// orchestrator (the one that served it last within the startup horizon).
    Session,
}

/// Which errors excuse a failed unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExcuseRule {
    /// The unit's first error is of an excused class (or, without errors,
    /// the client closed the stream while the unit was serving it).
    FirstError,
    /// The unit had errors and every one is of an excused class (a client
    /// closing the stream without an error excuses nothing).
    AllErrors,
}

/// What counts as viable output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Viability {
    /// Playable output, or a status sample with output fps above zero
    /// outside LOADING/OFFLINE, within the startup horizon.
    StartupOutput,
    /// Neither loading-only (every status sample LOADING) nor zero-output
    /// (status samples, none with fps above zero) over the unit's samples
    /// within the startup horizon; a unit without samples is viable.
    NoFailedOutput,
}

/// The value of an orchestrator compared with its cohort's benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Statistic {
    /// The median of its samples.
    P50,
    /// The mean of its samples.
    Mean,
}

/// How a window of more than one hour is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// One score of the window's merged buckets.
    Merged,
    /// Each hour scored alone, then the mean of the hourly scores weighted
    /// by each hour's units (NaaP's public rollup of hourly rows).
    HourlyWeighted,
}

/// Which samples a cohort benchmark is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BenchmarkGrain {
    /// Every sample of the cohort in the benchmark window.
    Samples,
    /// One value per (orchestrator, region, hour) row with samples: its
    /// mean; percentiles are taken over the rows of the window.
    HourlyRows,
}

/// A health signal a known unit is expected to give (the coverage ratio's
/// numerator counts those seen within the startup horizon).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// At least one runner status sample.
    StatusSample,
    /// The first processed segment.
    FirstProcessed,
    /// Playable output (few processed segments).
    FewProcessed,
    /// Output that is not a failed output (see [`Viability::NoFailedOutput`]).
    OutputOk,
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsPolicy {
    /// What one observation is.
    pub unit: Unit,
    /// Prompt to first frame (named as the community names it).
    pub ptff: Span,
    /// Startup latency.
    pub startup: Span,
    /// End to end latency.
    pub e2e: Span,
    /// Success: the edge whose arrival within the horizon makes a
    /// successful startup.
    pub success: Edge,
    /// Which errors excuse a failure.
    pub excuse: ExcuseRule,
    /// Whether an excused unit stays in the denominators (as a success for
    /// startup, counted in the others as it was).
    pub excused_in_denominator: bool,
    /// What counts as viable output.
    pub viability: Viability,
    /// The health signals the coverage ratio expects.
    pub signals: Vec<Signal>,
    /// Output fps samples of 0 are left out of fps figures.
    pub fps_skip_zero: bool,
    /// The value compared with the benchmark.
    pub value: Statistic,
    /// How multi-hour windows combine.
    pub combine: Combine,
}

impl Default for MetricsPolicy {
    fn default() -> Self {
        MetricsPolicy {
            unit: Unit::Attempt,
            ptff: Span { from: Edge::Request, to: Edge::FirstProcessed },
            startup: Span { from: Edge::Request, to: Edge::FewProcessed },
            e2e: Span { from: Edge::Ingest, to: Edge::FirstProcessed },
            success: Edge::FewProcessed,
            excuse: ExcuseRule::FirstError,
            excused_in_denominator: false,
            viability: Viability::StartupOutput,
            signals: vec![Signal::StatusSample, Signal::FirstProcessed, Signal::FewProcessed],
            fps_skip_zero: false,
            value: Statistic::P50,
            combine: Combine::Merged,
        }
    }
}

/// `[benchmark]`: where cohort benchmarks come from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BenchmarkPolicy {
    /// Samples or hourly rows.
    pub grain: BenchmarkGrain,
    /// The benchmark covers whole UTC days before the current one (the
    /// scored window's own day is excluded); otherwise it is the rolling
    /// `scoring.benchmark_window` ending at the newest sealed minute.
    pub prior_full_days: bool,
}

impl Default for BenchmarkPolicy {
    fn default() -> Self {
        BenchmarkPolicy { grain: BenchmarkGrain::Samples, prior_full_days: false }
    }
}

impl MetricsPolicy {
    /// Why these definitions cannot be scored, if they cannot.
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        for span in [self.ptff, self.startup, self.e2e] {
            if span.from == span.to {
                return Err("metrics: a span must start and end at different edges");
            }
            if span.to == Edge::Request || span.to == Edge::AttemptStart {
                return Err("metrics: a span cannot end at request or attempt_start");
            }
        }
        if matches!(self.success, Edge::Request | Edge::AttemptStart | Edge::StreamStart) {
            return Err("metrics.success must be an output edge");
        }
        if self.signals.is_empty() {
            return Err("metrics.signals must name at least one signal");
        }
        Ok(())
    }
}
