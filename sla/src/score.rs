//! Scores: `sla_score` v1 and the legacy leaderboard score, from merged
//! buckets and (pipeline, model) cohort benchmarks (livepeer.md §2).

use std::collections::BTreeMap;

use crate::bucket::{Bucket, PercentileSummary, SelfBucket};
use crate::corroboration::Corroboration;
use crate::definitions::{Combine, Statistic};
use crate::histogram::Histogram;
use crate::policy::{FailureClass, Policy};
use crate::registry::Registry;
use crate::response::{
    Components, FailureCounts, FpsSummary, OrchestratorMetrics, SelfReported, Targets, round,
};

/// One metric's cohort benchmark: the value that scores 1 and the value
/// that scores 0 (linear between).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Edges {
    pub(crate) good: f64,
    pub(crate) bad: f64,
}

/// Benchmarks of one model's cohort; `None` where the cohort is too sparse.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bench {
    pub(crate) ptff: Option<Edges>,
    pub(crate) e2e: Option<Edges>,
    pub(crate) fps: Option<Edges>,
}

/// Cohort samples of one model (the `samples` benchmark grain).
#[derive(Debug, Clone, Default)]
pub(crate) struct CohortSamples {
    pub(crate) ptff: Histogram,
    pub(crate) e2e: Histogram,
    pub(crate) fps: Histogram,
}

impl CohortSamples {
    /// The benchmark: percentiles of the samples, when there are enough.
    pub(crate) fn bench(&self, policy: &Policy) -> Bench {
        let sla = &policy.sla;
        let min = policy.scoring.min_benchmark_samples;
        let edges = |h: &Histogram, good: u32, bad: u32| {
            (h.count() >= min).then(|| Edges {
                good: h.percentile(f64::from(good)).unwrap_or(0) as f64,
                bad: h.percentile(f64::from(bad)).unwrap_or(0) as f64,
            })
        };
        Bench {
            ptff: edges(&self.ptff, sla.latency_good_percentile, sla.latency_bad_percentile),
            e2e: edges(&self.e2e, sla.latency_good_percentile, sla.latency_bad_percentile),
            fps: edges(&self.fps, sla.fps_good_percentile, sla.fps_bad_percentile),
        }
    }
}

/// Percentile `p` (0..=100) of sorted `values`, linear between order statistics.
pub(crate) fn percentile_of_sorted(values: &[f64], p: f64) -> Option<f64> {
    let last = values.len().checked_sub(1)?;
    let rank = p.clamp(0.0, 100.0) / 100.0 * last as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    let (a, b) = (values[lo.min(last)], values[hi.min(last)]);
    Some(a + (b - a) * (rank - lo as f64))
}

/// What scoring needs besides the buckets.
pub(crate) struct ScoreCtx<'a> {
    pub(crate) policy: &'a Policy,
    pub(crate) registry: &'a Registry,
    /// By canonical model.
    pub(crate) benches: &'a BTreeMap<String, Bench>,
    /// Median PTFF of the query's filters (the legacy round-trip median).
    pub(crate) legacy_median_ms: Option<f64>,
}

fn ratio(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

/// 1 at or below `good`, 0 at or above `bad`, linear between (latency).
fn lower_is_better(v: f64, good: f64, bad: f64) -> f64 {
    if v <= good {
        1.0
    } else if v >= bad {
        0.0
    } else {
        (bad - v) / (bad - good)
    }
}

/// The value of `own` the policy compares with the cohort: its median, or
/// its mean (`sum / count`).
fn value_of(policy: &Policy, own: &Histogram, sum: u64) -> Option<f64> {
    match policy.metrics.value {
        Statistic::P50 => own.percentile(50.0).map(|v| v as f64),
        Statistic::Mean => (own.count() > 0).then(|| sum as f64 / own.count() as f64),
    }
}

/// Score of `own` against the cohort `bench`, shrunk toward neutral by sample count.
fn benchmarked(
    ctx: &ScoreCtx<'_>,
    (own, sum): (&Histogram, u64),
    bench: Option<Edges>,
    higher_better: bool,
) -> f64 {
    let sla = &ctx.policy.sla;
    let neutral = sla.neutral;
    let Some(Edges { good, bad }) = bench else { return neutral };
    let Some(v) = value_of(ctx.policy, own, sum) else { return neutral };
    let (raw, shrink_n) = if higher_better {
        let raw = if v >= good {
            1.0
        } else if v <= bad {
            0.0
        } else {
            (v - bad) / (good - bad)
        };
        (raw, sla.fps_shrink_n)
    } else {
        (lower_is_better(v, good, bad), sla.latency_shrink_n)
    };
    let weight = (own.count() as f64 / shrink_n.max(1) as f64).min(1.0);
    neutral + weight * (raw - neutral)
}

/// (coverage, reliability, quality) of one model's bucket; `None` without scored attempts.
fn model_components(ctx: &ScoreCtx<'_>, model: &str, b: &Bucket) -> Option<(f64, f64, f64)> {
    let sla = &ctx.policy.sla;
    let n = b.c.scored_attempts;
    if n == 0 {
        return None;
    }
    let nf = n as f64;
    let coverage = (b.c.signals as f64 / (nf * sla.expected_signals.max(1) as f64)).min(1.0);
    let startup = b.c.startup_successes as f64 / nf;
    let no_swap = 1.0 - (b.c.swaps as f64 / nf).min(1.0);
    let viability = b.c.viable as f64 / nf;
    let reliability = sla.startup_success_weight * startup
        + sla.no_swap_weight * no_swap
        + sla.output_viability_weight * viability;
    let bench = ctx.benches.get(model);
    let ptff = benchmarked(ctx, (&b.ptff, b.c.ptff_sum_ms), bench.and_then(|x| x.ptff), false);
    let e2e = benchmarked(ctx, (&b.e2e, b.c.e2e_sum_ms), bench.and_then(|x| x.e2e), false);
    let fps = benchmarked(ctx, (&b.fps, b.c.fps_sum_centi), bench.and_then(|x| x.fps), true);
    let latency = sla.ptff_weight * ptff + sla.e2e_weight * e2e;
    let quality = sla.latency_weight * latency + sla.fps_weight * fps;
    Some((coverage.clamp(0.0, 1.0), reliability.clamp(0.0, 1.0), quality.clamp(0.0, 1.0)))
}

/// (coverage, reliability, quality) of per-model buckets, each model
/// weighted by its scored units; `None` without any.
fn components(
    ctx: &ScoreCtx<'_>,
    per_model: &BTreeMap<String, Bucket>,
) -> Option<(f64, f64, f64, f64)> {
    let (mut wc, mut wr, mut wq, mut w) = (0.0, 0.0, 0.0, 0.0);
    for (model, b) in per_model {
        if let Some((cov, rel, q)) = model_components(ctx, model, b) {
            let n = b.c.scored_attempts as f64;
            wc += n * cov;
            wr += n * rel;
            wq += n * q;
            w += n;
        }
    }
    (w > 0.0).then(|| (wc / w, wr / w, wq / w, w))
}

/// The SLA score of (coverage, reliability, quality).
fn sla_score(ctx: &ScoreCtx<'_>, (cov, rel, q): (f64, f64, f64)) -> f64 {
    let sla = &ctx.policy.sla;
    (100.0 * cov * (sla.reliability_weight * rel + sla.quality_weight * q)).clamp(0.0, 100.0)
}

/// The legacy AI score: (score, success_rate, round_trip_score).
pub(crate) fn legacy(ctx: &ScoreCtx<'_>, b: &Bucket) -> Option<(f64, f64, f64)> {
    let lp = &ctx.policy.legacy;
    let success = ratio(b.c.startup_successes, b.c.scored_attempts)?;
    let n = b.ptff.count();
    let rts = match (ctx.legacy_median_ms, n) {
        (Some(median), n) if n > 0 && median > 0.0 => {
            let rtt = b.c.ptff_sum_ms as f64 / n as f64;
            let k = -lp.median_score.ln() / median;
            (-k * rtt).exp()
        }
        _ => 0.0,
    };
    let score =
        if success == 0.0 { 0.0 } else { lp.success_weight * success + lp.latency_weight * rts };
    Some((score, success, rts))
}

fn fps_of(h: &Histogram) -> Option<f64> {
    h.percentile(50.0).map(|c| round(c as f64 / 100.0, 2))
}

/// Per clock hour (hour index), per-model buckets: what a policy that
/// combines hours scores.
pub(crate) type Hourly = BTreeMap<u32, BTreeMap<String, Bucket>>;

/// Every metric field of an entry from its per-model buckets (and, for a
/// policy that combines hourly scores, the same per hour).
pub(crate) fn metrics(
    ctx: &ScoreCtx<'_>,
    per_model: &BTreeMap<String, Bucket>,
    hours: Option<&Hourly>,
    self_b: Option<&SelfBucket>,
    seen: &Corroboration,
) -> OrchestratorMetrics {
    let mut total = Bucket::default();
    for b in per_model.values() {
        total.merge(b);
    }
    let c = &total.c;
    let gateways = seen.distinct();
    let ok = c.attempts >= ctx.policy.scoring.min_attempts
        && c.scored_attempts > 0
        && gateways >= ctx.policy.corroboration.min_gateways;
    let combined = match (ctx.policy.metrics.combine, hours) {
        // Each hour scored alone; the window's figures are the means of
        // the hourly ones, weighted by each hour's scored units.
        (Combine::HourlyWeighted, Some(hours)) => {
            let (mut wc, mut wr, mut wq, mut ws, mut w) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for per_model in hours.values() {
                if let Some((cov, rel, q, n)) = components(ctx, per_model) {
                    wc += n * cov;
                    wr += n * rel;
                    wq += n * q;
                    ws += n * sla_score(ctx, (cov, rel, q));
                    w += n;
                }
            }
            (w > 0.0).then(|| ((wc / w, wr / w, wq / w), ws / w))
        }
        _ => components(ctx, per_model).map(|(c, r, q, _)| ((c, r, q), sla_score(ctx, (c, r, q)))),
    };
    let (components, sla_score) = if let Some(((cov, rel, q), score)) = combined.filter(|_| ok) {
        (
            Components {
                coverage: Some(round(cov, 4)),
                reliability: Some(round(rel, 4)),
                quality: Some(round(q, 4)),
            },
            Some(round(score, 2)),
        )
    } else {
        (Components { coverage: None, reliability: None, quality: None }, None)
    };
    let legacy_score = if ok { legacy(ctx, &total).map(|(s, _, _)| round(s, 4)) } else { None };
    let f = &c.failures;
    let at = |k: FailureClass| f[k.index()];
    let n_fps = total.fps.count();
    let jitter = (n_fps > 0 && c.fps_sum_centi > 0).then(|| {
        let mean = c.fps_sum_centi as f64 / n_fps as f64;
        let var = (c.fps_sq_sum_centi as f64 / n_fps as f64 - mean * mean).max(0.0);
        round(var.sqrt() / mean, 4)
    });
    let observed_fps = fps_of(&total.fps);
    OrchestratorMetrics {
        status: if ok { "ok" } else { "insufficient_data" },
        gateways,
        flagged_gateways: seen.flagged(&ctx.policy.corroboration).len() as u64,
        sla_score,
        legacy_score,
        attempts: c.attempts,
        sessions: c.sessions,
        startup_success_rate: ratio(c.startup_successes, c.scored_attempts).map(|r| round(r, 4)),
        swap_rate: ratio(c.swaps, c.scored_attempts).map(|r| round(r.min(1.0), 4)),
        failure_rate: ratio(c.failed, c.attempts).map(|r| round(r, 4)),
        excused_failures: at(FailureClass::ClientCaused),
        failures: FailureCounts {
            timeout: at(FailureClass::Timeout),
            model_error: at(FailureClass::ModelError),
            transport_disconnect: at(FailureClass::TransportDisconnect),
            orchestrator_rejection: at(FailureClass::OrchestratorRejection),
            gateway_error: at(FailureClass::GatewayError),
            client_caused: at(FailureClass::ClientCaused),
            other: at(FailureClass::Other),
        },
        ptff_ms: PercentileSummary::of(&total.ptff),
        startup_ms: PercentileSummary::of(&total.startup),
        e2e_ms: PercentileSummary::of(&total.e2e),
        fps: FpsSummary { p50: observed_fps, jitter, samples: n_fps },
        inference_minutes: round(c.inference_ms as f64 / 60_000.0, 4),
        components,
        self_reported: self_reported(ctx, per_model, self_b, observed_fps),
    }
}

fn self_reported(
    ctx: &ScoreCtx<'_>,
    per_model: &BTreeMap<String, Bucket>,
    self_b: Option<&SelfBucket>,
    observed_fps: Option<f64>,
) -> SelfReported {
    let Some(s) = self_b else {
        return SelfReported { fps_p50: None, cue: None, cue_source: None, disagrees: false };
    };
    let fps_p50 = fps_of(&s.fps);
    let names = ["gpm", "nvml", "proxy"];
    // The most frequent source; ties go to the better one.
    let source = (0..3).filter(|&i| s.sources[i] > 0).max_by_key(|&i| (s.sources[i], 3 - i));
    let (cue, cue_source) = if s.cue_count > 0 {
        (
            Some(round(s.cue_sum_milli as f64 / s.cue_count as f64 / 1000.0, 4)),
            source.map(|i| names[i]),
        )
    } else {
        // Proxy: self-reported fps over the model's target, for a single known model.
        let target = match per_model.keys().collect::<Vec<_>>().as_slice() {
            [only] => ctx.registry.model(only).map(|m| m.target_fps),
            _ => None,
        };
        match (fps_p50, target) {
            (Some(f), Some(t)) if t > 0.0 => (Some(round((f / t).min(1.0), 4)), Some("proxy")),
            _ => (None, source.map(|i| names[i])),
        }
    };
    let ratio = ctx.policy.scoring.self_report_disagree_ratio;
    let disagrees = match (fps_p50, observed_fps) {
        (Some(own), Some(seen)) if seen > 0.0 => ((own - seen) / seen).abs() > ratio,
        (Some(own), None) => own > 0.0 && per_model.values().any(|b| b.c.scored_attempts > 0),
        _ => false,
    };
    SelfReported { fps_p50, cue, cue_source, disagrees }
}

/// Tail figures of one model against its registry targets.
pub(crate) fn targets(ctx: &ScoreCtx<'_>, model: &str, b: &Bucket) -> Option<Targets> {
    let spec = ctx.registry.model(model)?;
    let p = ctx.policy.scoring.compliance_percentile;
    let ptff_ms = b.ptff.percentile(f64::from(p));
    let startup_ms = b.startup.percentile(f64::from(p));
    let fps_p50 = fps_of(&b.fps);
    let met = ptff_ms.is_none_or(|v| v <= spec.ptff_target_ms)
        && startup_ms.is_none_or(|v| v <= spec.startup_target_ms)
        && fps_p50.is_none_or(|v| v >= spec.target_fps);
    Some(Targets {
        percentile: p,
        ptff_ms,
        ptff_target_ms: spec.ptff_target_ms,
        startup_ms,
        startup_target_ms: spec.startup_target_ms,
        fps_p50,
        target_fps: spec.target_fps,
        met,
    })
}
