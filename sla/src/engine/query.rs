//! Answers: every query merges the sealed buckets of its window and scores
//! them; nothing here changes the state.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use vouch_schema::Address;

use super::inventory::demand_fees;
use super::{Engine, origin_code};
use crate::bucket::Mergeable;
use crate::bucket::{
    Bucket, BucketSum, MINUTE_MS, PercentileSummary, SelfBucket, Series, SeriesKey,
};
use crate::compact::prefetch;
use crate::corroboration::{Corroboration, GatewayBucket};
use crate::definitions::{BenchmarkGrain, Combine};
use crate::histogram::HistogramSum;
use crate::inventory::Ledger;
use crate::query::{Query, Window};
use crate::response::round;
use crate::response::{
    AggregatedScore, AggregatedStats, DemandResponse, DemandRow, DemandTotals, Filters, ModelEntry,
    ModelsResponse, OrchestratorDetail, OrchestratorEntry, OrchestratorsResponse, PolicyRef,
    RegionEntry, RegionsResponse, RegistryRef, SeriesPoint, WindowInfo,
};
use crate::score::{self, Bench, CohortSamples, Edges, Hourly, ScoreCtx, percentile_of_sorted};

/// Minutes per UTC day.
const DAY_MINUTES: u32 = 1440;

pub(super) fn rfc3339(ms: u64) -> String {
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

impl Engine {
    fn end_min(&self) -> u32 {
        (self.st.sealed_end_ms / MINUTE_MS) as u32
    }

    fn window_info(&self, w: Window) -> (u32, u32, WindowInfo) {
        let (start, end) = w.range(self.end_min());
        let (start_ms, end_ms) = (u64::from(start) * MINUTE_MS, u64::from(end) * MINUTE_MS);
        let info = WindowInfo {
            name: w.name(),
            start_ms,
            end_ms,
            start: rfc3339(start_ms),
            end: rfc3339(end_ms),
        };
        (start, end, info)
    }

    /// The policy in force, as answers name it.
    pub fn policy_ref(&self) -> PolicyRef {
        PolicyRef {
            name: self.policy.name(),
            id: self.policy.id.clone(),
            version: self.policy.version,
            hash: self.policy.hash.clone(),
        }
    }

    fn canonical_model(&self, q: &Query) -> Option<String> {
        q.model_id.as_deref().map(|m| self.registry.canonical(m))
    }

    fn filters(&self, q: &Query) -> Filters {
        Filters {
            region: q.region.clone(),
            model_id: self.canonical_model(q),
            pipeline: q.pipeline.clone(),
            origin: q.origin.as_str(),
        }
    }

    fn matches(&self, k: &SeriesKey, q: &Query, model: &Option<String>) -> bool {
        k.origin == origin_code(q.origin)
            && q.region.as_ref().is_none_or(|r| *r == k.region)
            && model.as_ref().is_none_or(|m| *m == k.model)
            && q.pipeline.as_ref().is_none_or(|p| p == self.registry.pipeline(&k.model))
    }

    /// Every gateway's view of the series matching `q` of the orchestrators
    /// in `orchs` over `[start, end)`, grouped by `group`.
    fn corroboration<G: Ord>(
        &self,
        q: &Query,
        model: &Option<String>,
        (start, end): (u32, u32),
        orchs: impl RangeBounds<Address>,
        group: impl Fn(&SeriesKey) -> G,
    ) -> BTreeMap<G, Corroboration> {
        let mut out: BTreeMap<G, Corroboration> = BTreeMap::new();
        // Pairs come sorted by series key, so most groups arrive as one run:
        // a run is summed apart and lands in `out` once.
        let mut run: Option<(G, Corroboration)> = None;
        let mut land = |run: &mut Option<(G, Corroboration)>| {
            if let Some((g, c)) = run.take() {
                out.entry(g).or_default().absorb(c);
            }
        };
        let entries = of_orchestrators(
            &self.st.gateways,
            &orchs,
            |o| (SeriesKey::first_of(o), Address::ZERO),
            |(k, _)| &k.orch,
        );
        let entries = looking_ahead(entries, |_, s| s.prefetch_range(start, end));
        for ((k, gateway), series) in entries {
            if !self.matches(k, q, model) {
                continue;
            }
            let g = group(k);
            if run.as_ref().is_some_and(|(r, _)| *r != g) {
                land(&mut run);
            }
            let seen = &mut run.get_or_insert_with(|| (g, Corroboration::default())).1;
            // Summed per pair first: one map entry per pair, not per bucket.
            let mut pair: Option<GatewayBucket> = None;
            series.fold_range(start, end, |_, b| pair.get_or_insert_default().merge_from(b));
            if let Some(pair) = pair {
                seen.add(*gateway, &pair);
            }
        }
        land(&mut run);
        out
    }

    /// The minutes the cohort benchmarks cover: the rolling benchmark
    /// window, or the whole UTC days before the newest sealed minute's day.
    fn bench_range(&self) -> (u32, u32) {
        let w = Window::parse(&self.policy.scoring.benchmark_window).unwrap_or(Window::D7);
        if !self.policy.benchmark.prior_full_days {
            return w.range(self.end_min());
        }
        let today = self.end_min().saturating_sub(1) / DAY_MINUTES * DAY_MINUTES;
        let days = w.minutes().div_ceil(DAY_MINUTES).max(1);
        (today.saturating_sub(days * DAY_MINUTES), today)
    }

    /// Cohort benchmarks of every model (cached until the next seal).
    fn benches(&self, origin: u8) -> Arc<BTreeMap<String, Bench>> {
        if let Ok(c) = self.cache.lock()
            && let Some(b) = c.benches.get(&origin)
        {
            return Arc::clone(b);
        }
        let (start, end) = self.bench_range();
        let out = match self.policy.benchmark.grain {
            BenchmarkGrain::Samples => {
                let mut samples: BTreeMap<String, CohortSamples> = BTreeMap::new();
                for ((o, model), s) in &self.st.cohorts {
                    if *o != origin {
                        continue;
                    }
                    let c = samples.entry(model.clone()).or_default();
                    s.fold_range(start, end, |_, b| {
                        c.ptff.merge(&b.ptff);
                        c.e2e.merge(&b.e2e);
                        c.fps.merge(&b.fps);
                    });
                }
                samples.into_iter().map(|(m, c)| (m, c.bench(&self.policy))).collect()
            }
            BenchmarkGrain::HourlyRows => self.row_benches(origin, (start, end)),
        };
        let out = Arc::new(out);
        if let Ok(mut c) = self.cache.lock() {
            c.benches.insert(origin, Arc::clone(&out));
        }
        out
    }

    /// Benchmarks from hourly rows (NaaP's): one row per (orchestrator,
    /// model, clock hour) with its mean PTFF, E2E and fps; per UTC day the
    /// rows' percentiles; over the days, the mean of the daily percentiles
    /// weighted by each day's rows, when the days hold enough rows.
    fn row_benches<'a>(&'a self, origin: u8, (start, end): (u32, u32)) -> BTreeMap<String, Bench> {
        // Series are ordered by (orchestrator, model, region, origin), so the
        // rows of one (orchestrator, model) come together: their hours are
        // summed in a small map (sums and counts only, no bucket copies) and
        // flushed as means into (model, day) when the pair changes.
        let mut days: BTreeMap<(&str, u32), [Vec<f64>; 3]> = BTreeMap::new();
        let mut hours: BTreeMap<u32, [u64; 6]> = BTreeMap::new();
        let mut flush = |model: &'a str, hours: &mut BTreeMap<u32, [u64; 6]>| {
            for (hour, [ps, pn, es, en, fs, fnn]) in std::mem::take(hours) {
                let day = days.entry((model, hour / 24)).or_default();
                let mean = |sum: u64, n: u64| (n > 0).then(|| sum as f64 / n as f64);
                for (values, v) in day.iter_mut().zip([mean(ps, pn), mean(es, en), mean(fs, fnn)]) {
                    values.extend(v);
                }
            }
        };
        let mut group: Option<(Address, &str)> = None;
        for (k, s) in &self.st.series {
            if k.origin != origin {
                continue;
            }
            if let Some((orch, model)) = group
                && (orch, model) != (k.orch, k.model.as_str())
            {
                flush(model, &mut hours);
            }
            group = Some((k.orch, k.model.as_str()));
            s.fold_range(start, end, |m, b| {
                let h = hours.entry(m / 60).or_default();
                let add = [
                    b.c.ptff_sum_ms,
                    b.ptff.count(),
                    b.c.e2e_sum_ms,
                    b.e2e.count(),
                    b.c.fps_sum_centi,
                    b.fps.count(),
                ];
                for (acc, v) in h.iter_mut().zip(add) {
                    *acc = acc.saturating_add(v);
                }
            });
        }
        if let Some((_, model)) = group {
            flush(model, &mut hours);
        }
        let sla = &self.policy.sla;
        let percentiles = [
            (sla.latency_good_percentile, sla.latency_bad_percentile),
            (sla.latency_good_percentile, sla.latency_bad_percentile),
            (sla.fps_good_percentile, sla.fps_bad_percentile),
        ];
        // (model) → per metric: Σ rows·good, Σ rows·bad, Σ rows.
        let mut acc: BTreeMap<&str, [(f64, f64, f64); 3]> = BTreeMap::new();
        for ((model, _), mut metrics) in days {
            let a = acc.entry(model).or_default();
            for ((values, (good, bad)), slot) in
                metrics.iter_mut().zip(percentiles).zip(a.iter_mut())
            {
                values.sort_by(f64::total_cmp);
                let n = values.len() as f64;
                if let (Some(g), Some(b)) = (
                    percentile_of_sorted(values, f64::from(good)),
                    percentile_of_sorted(values, f64::from(bad)),
                ) {
                    *slot = (slot.0 + n * g, slot.1 + n * b, slot.2 + n);
                }
            }
        }
        let min = self.policy.scoring.min_benchmark_samples as f64;
        let edges = |(g, b, n): (f64, f64, f64)| {
            (n >= min && n > 0.0).then(|| Edges { good: g / n, bad: b / n })
        };
        acc.into_iter()
            .map(|(model, [p, e, f])| {
                (model.to_owned(), Bench { ptff: edges(p), e2e: edges(e), fps: edges(f) })
            })
            .collect()
    }

    fn self_bucket(&self, orch: &Address, start: u32, end: u32) -> Option<SelfBucket> {
        let s = self.st.self_series.get(orch)?;
        let mut total = SelfBucket::default();
        s.fold_range(start, end, |_, b| total.merge(b));
        Some(total)
    }

    fn ctx<'a>(
        &'a self,
        benches: &'a BTreeMap<String, Bench>,
        median: Option<f64>,
    ) -> ScoreCtx<'a> {
        ScoreCtx {
            policy: &self.policy,
            registry: &self.registry,
            benches,
            legacy_median_ms: median,
        }
    }

    /// Splits the orchestrators into at most `threads` ranges (in address
    /// order, whole orchestrators) holding about as many series each, and
    /// at least `min_series` each: the parts of a query run on threads.
    fn orchestrator_parts(&self, threads: usize, min_series: usize) -> Vec<Orchestrators> {
        let n = self.st.series.len();
        let parts = threads.min(n / min_series.max(1));
        if parts <= 1 {
            return vec![(Bound::Unbounded, Bound::Unbounded)];
        }
        let step = n.div_ceil(parts);
        // Every step-th series starts a part at its orchestrator, unless
        // that orchestrator already started one (or is the first).
        let mut starts: Vec<Address> = Vec::new();
        let mut previous = self.st.series.keys().next().map(|k| k.orch);
        for k in self.st.series.keys().step_by(step).skip(1) {
            if previous != Some(k.orch) {
                starts.push(k.orch);
                previous = Some(k.orch);
            }
        }
        let mut from = Bound::Unbounded;
        let mut out = Vec::with_capacity(starts.len() + 1);
        for start in starts {
            out.push((from, Bound::Excluded(start)));
            from = Bound::Included(start);
        }
        out.push((from, Bound::Unbounded));
        out
    }

    /// Sums the window of `series` (sorted by key) per orchestrator and
    /// model, for [`Engine::orchestrators`].
    fn scan<'a>(
        &self,
        series: impl Iterator<Item = (&'a SeriesKey, &'a Series<Bucket>)>,
        q: &Query,
        model: &Option<String>,
        (start, end): (u32, u32),
    ) -> Scan {
        let by_hour = self.policy.metrics.combine == Combine::HourlyWeighted;
        let mut out = Scan::default();
        // One series' window: it joins its (orchestrator, model) when it
        // holds anything. Series come sorted by key, so the series of one
        // pair come together and are summed as a run in `run`.
        let mut one = BucketSum::default();
        let mut run = BucketSum::default();
        let mut pair: Option<(Address, &str)> = None;
        for (k, s) in series {
            if !self.matches(k, q, model) {
                continue;
            }
            if by_hour {
                s.fold_range(start, end, |m, b| {
                    one.add(b);
                    let hour = out.hourly.entry(k.orch).or_default().entry(m / 60).or_default();
                    hour.entry(k.model.clone()).or_default().merge(b);
                });
            } else {
                s.sum_range(start, end, &mut one);
            }
            if one.is_blank() {
                one.clear();
                continue;
            }
            let this = (k.orch, k.model.as_str());
            if pair.is_some_and(|p| p != this) {
                out.close(pair, &mut run);
            }
            pair = Some(this);
            one.drain_into(&mut run);
        }
        out.close(pair, &mut run);
        out
    }

    /// `GET /v1/sla/orchestrators`.
    pub fn orchestrators(&self, q: &Query) -> OrchestratorsResponse {
        self.orchestrators_in(
            q,
            self.orchestrator_parts(query_threads() * PARTS_PER_THREAD, MIN_SERIES_PER_PART),
        )
    }

    /// [`Engine::orchestrators`], each of `parts` summed and scored on a
    /// thread of its own: their sums and gateways' views first, then (once
    /// the PTFF median of them all is known) their scores.
    fn orchestrators_in(&self, q: &Query, parts: Vec<Orchestrators>) -> OrchestratorsResponse {
        let (start, end, window) = self.window_info(q.window);
        let model = self.canonical_model(q);
        let range = (start, end);
        let mut parts = in_parallel(parts, |orchs| {
            let series =
                of_orchestrators(&self.st.series, &orchs, SeriesKey::first_of, |k| &k.orch);
            let scan = self.scan(
                // The model's name (compared to close runs) and the window's
                // buckets each sit in an allocation of their own.
                looking_ahead(series, |k, s| {
                    prefetch(k.model.as_str());
                    s.prefetch_range(start, end);
                }),
                q,
                &model,
                range,
            );
            (scan, self.corroboration(q, &model, range, orchs, |k| k.orch))
        });
        let mut ptff = HistogramSum::default();
        for (scan, _) in &mut parts {
            scan.ptff.drain_into(&mut ptff);
        }
        let median = ptff.finish().percentile(50.0).map(|v| v as f64);
        let none = Corroboration::default();
        let benches = self.benches(origin_code(q.origin));
        let ctx = self.ctx(&benches, median);
        let scored = in_parallel(&parts, |(Scan { per_orch, hourly, .. }, seen)| {
            per_orch
                .iter()
                .map(|(orch, per_model)| OrchestratorEntry {
                    rank: None,
                    address: *orch,
                    metrics: score::metrics(
                        &ctx,
                        per_model,
                        hourly.get(orch),
                        self.self_bucket(orch, start, end).as_ref(),
                        seen.get(orch).unwrap_or(&none),
                    ),
                })
                .collect::<Vec<_>>()
        });
        let mut entries: Vec<OrchestratorEntry> = scored.into_iter().flatten().collect();
        entries.sort_by(|a, b| {
            let key =
                |e: &OrchestratorEntry| (e.metrics.status != "ok", e.metrics.sla_score.map(|s| -s));
            let (ka, kb) = (key(a), key(b));
            ka.0.cmp(&kb.0)
                .then(ka.1.unwrap_or(0.0).total_cmp(&kb.1.unwrap_or(0.0)))
                .then(a.address.cmp(&b.address))
        });
        for (i, e) in entries.iter_mut().enumerate() {
            e.rank = Some(i as u64 + 1);
        }
        OrchestratorsResponse {
            window,
            policy: self.policy_ref(),
            filters: self.filters(q),
            agreement: None,
            orchestrators: entries,
        }
    }

    /// `GET /v1/sla/orchestrators/{address}`; `None` for an orchestrator never seen.
    /// `restricted` adds the per-gateway breakdown.
    pub fn orchestrator(
        &self,
        address: &Address,
        q: &Query,
        restricted: bool,
    ) -> Option<OrchestratorDetail> {
        let seen = self
            .st
            .series
            .range(SeriesKey::first_of(*address)..)
            .next()
            .is_some_and(|(k, _)| k.orch == *address)
            || self.st.self_series.contains_key(address);
        if !seen {
            return None;
        }
        let (start, end, window) = self.window_info(q.window);
        let model = self.canonical_model(q);
        let step = if q.window.minutes() <= 60 { 1 } else { 60 };
        let mut per_model: BTreeMap<String, Bucket> = BTreeMap::new();
        let mut per_region: BTreeMap<String, BTreeMap<String, Bucket>> = BTreeMap::new();
        let mut steps: BTreeMap<u32, Bucket> = BTreeMap::new();
        let mut hourly: Hourly = BTreeMap::new();
        let by_hour = self.policy.metrics.combine == Combine::HourlyWeighted;
        let mut all_ptff = crate::Histogram::new();
        for (k, s) in &self.st.series {
            if !self.matches(k, q, &model) {
                continue;
            }
            let mut merged = Bucket::default();
            s.fold_range(start, end, |m, b| {
                merged.merge(b);
                if k.orch == *address {
                    steps.entry(m / step * step).or_default().merge(b);
                    if by_hour {
                        let hour = hourly.entry(m / 60).or_default();
                        hour.entry(k.model.clone()).or_default().merge(b);
                    }
                }
            });
            all_ptff.merge(&merged.ptff);
            if k.orch == *address {
                per_model.entry(k.model.clone()).or_default().merge(&merged);
                per_region
                    .entry(k.region.clone())
                    .or_default()
                    .entry(k.model.clone())
                    .or_default()
                    .merge(&merged);
            }
        }
        let range = (start, end);
        let all = self.corroboration(q, &model, range, address..=address, |_| ());
        let all = all.get(&()).cloned().unwrap_or_default();
        let by_model_seen =
            self.corroboration(q, &model, range, address..=address, |k| k.model.clone());
        let by_region_seen =
            self.corroboration(q, &model, range, address..=address, |k| k.region.clone());
        let none = Corroboration::default();
        let benches = self.benches(origin_code(q.origin));
        let ctx = self.ctx(&benches, all_ptff.percentile(50.0).map(|v| v as f64));
        let summary = OrchestratorEntry {
            rank: None,
            address: *address,
            metrics: score::metrics(
                &ctx,
                &per_model,
                by_hour.then_some(&hourly),
                self.self_bucket(address, start, end).as_ref(),
                &all,
            ),
        };
        let by_model = per_model
            .iter()
            .map(|(m, b)| ModelEntry {
                model_id: m.clone(),
                pipeline: self.registry.pipeline(m).to_owned(),
                metrics: score::metrics(
                    &ctx,
                    &BTreeMap::from([(m.clone(), b.clone())]),
                    None,
                    None,
                    by_model_seen.get(m).unwrap_or(&none),
                ),
                targets: score::targets(&ctx, m, b),
            })
            .collect();
        let by_region = per_region
            .iter()
            .map(|(r, pm)| RegionEntry {
                region: r.clone(),
                metrics: score::metrics(
                    &ctx,
                    pm,
                    None,
                    None,
                    by_region_seen.get(r).unwrap_or(&none),
                ),
            })
            .collect();
        let series = steps
            .iter()
            .map(|(&m, b)| SeriesPoint {
                start_ms: u64::from(m) * MINUTE_MS,
                attempts: b.c.attempts,
                ptff_ms: PercentileSummary::of(&b.ptff),
                e2e_ms: PercentileSummary::of(&b.e2e),
                fps_p50: b.fps.percentile(50.0).map(|c| round(c as f64 / 100.0, 2)),
                startup_success_rate: (b.c.scored_attempts > 0)
                    .then(|| round(b.c.startup_successes as f64 / b.c.scored_attempts as f64, 4)),
                swaps: b.c.swaps,
            })
            .collect();
        let by_gateway = restricted.then(|| all.breakdown(&self.policy.corroboration));
        Some(OrchestratorDetail {
            window,
            policy: self.policy_ref(),
            filters: self.filters(q),
            agreement: None,
            summary,
            by_model,
            by_region,
            series,
            by_gateway,
        })
    }

    /// `GET /v1/network/demand`.
    pub fn demand(&self, q: &Query) -> DemandResponse {
        let (start, end, window) = self.window_info(q.window);
        let model = self.canonical_model(q);
        let mut rows: BTreeMap<(String, String), (u64, u64, u64)> = BTreeMap::new();
        for (k, s) in &self.st.series {
            if !self.matches(k, q, &model) {
                continue;
            }
            let row = rows.entry((k.model.clone(), k.region.clone())).or_default();
            s.fold_range(start, end, |_, b| {
                row.0 += b.c.sessions;
                row.1 += b.c.attempts;
                row.2 += b.c.inference_ms;
            });
        }
        rows.retain(|_, r| *r != (0, 0, 0));
        // Payments and unserved sessions: rows of their own where no
        // orchestrator served that (model, region).
        let ledger = self.demand_ledger(q, &model, (start, end));
        for k in ledger.keys() {
            rows.entry(k.clone()).or_default();
        }
        let (mut ts, mut ta, mut ti) = (0, 0, 0);
        let mut total = Ledger::default();
        let rows = rows
            .into_iter()
            .map(|((m, r), (s, a, i))| {
                ts += s;
                ta += a;
                ti += i;
                let l = ledger.get(&(m.clone(), r.clone())).cloned().unwrap_or_default();
                total.merge_from(&l);
                DemandRow {
                    pipeline: self.registry.pipeline(&m).to_owned(),
                    model_id: m,
                    region: r,
                    sessions: s,
                    attempts: a,
                    inference_minutes: round(i as f64 / 60_000.0, 4),
                    fees: demand_fees(&l),
                }
            })
            .collect();
        DemandResponse {
            window,
            agreement: None,
            rows,
            totals: DemandTotals {
                sessions: ts,
                attempts: ta,
                inference_minutes: round(ti as f64 / 60_000.0, 4),
                fees: demand_fees(&total),
            },
        }
    }

    /// `GET /v1/models`.
    pub fn models(&self) -> ModelsResponse {
        ModelsResponse {
            registry: RegistryRef {
                version: self.registry.version,
                hash: self.registry.hash.clone(),
            },
            models: self.registry.models.clone(),
        }
    }

    /// `GET /v1/regions`: gateway regions with buckets in memory, sorted.
    pub fn regions(&self) -> RegionsResponse {
        let set: BTreeSet<&String> = self.st.series.keys().map(|k| &k.region).collect();
        RegionsResponse { regions: set.into_iter().cloned().collect() }
    }

    /// `GET /api/aggregated_stats`: the legacy score per orchestrator and
    /// region, for orchestrators with enough attempts there, observed by
    /// enough distinct gateways.
    pub fn aggregated_stats(&self, q: &Query) -> AggregatedStats {
        let (start, end, _) = self.window_info(q.window);
        let model = self.canonical_model(q);
        let mut cells: BTreeMap<(Address, String), BTreeMap<String, Bucket>> = BTreeMap::new();
        let mut medians: BTreeMap<String, crate::Histogram> = BTreeMap::new();
        for (k, s) in &self.st.series {
            if !self.matches(k, q, &model) {
                continue;
            }
            let mut merged = Bucket::default();
            s.fold_range(start, end, |_, b| merged.merge(b));
            medians.entry(k.region.clone()).or_default().merge(&merged.ptff);
            cells
                .entry((k.orch, k.region.clone()))
                .or_default()
                .entry(k.model.clone())
                .or_default()
                .merge(&merged);
        }
        let seen = self.corroboration(q, &model, (start, end), .., |k| (k.orch, k.region.clone()));
        let min_gateways = self.policy.corroboration.min_gateways;
        let benches = BTreeMap::new();
        let mut out = AggregatedStats::new();
        for ((orch, region), per_model) in &cells {
            let mut total = Bucket::default();
            for b in per_model.values() {
                total.merge(b);
            }
            if total.c.attempts < self.policy.scoring.min_attempts {
                continue;
            }
            let gateways = seen.get(&(*orch, region.clone())).map_or(0, Corroboration::distinct);
            if gateways < min_gateways {
                continue;
            }
            let median = medians.get(region).and_then(|h| h.percentile(50.0)).map(|v| v as f64);
            let ctx = self.ctx(&benches, median);
            if let Some((score, success, rts)) = score::legacy(&ctx, &total) {
                out.entry(orch.to_hex()).or_default().insert(
                    region.clone(),
                    AggregatedScore {
                        score: round(score, 4),
                        success_rate: round(success, 4),
                        round_trip_score: round(rts, 4),
                    },
                );
            }
        }
        out
    }
}

/// What [`Engine::scan`] sums.
#[derive(Default)]
struct Scan {
    /// Per orchestrator (in address order) its models' sums.
    per_orch: Vec<(Address, BTreeMap<String, Bucket>)>,
    /// Per orchestrator, its models' hours (when scores combine by hour).
    hourly: BTreeMap<Address, Hourly>,
    /// Every PTFF sample: the cohort whose median the legacy score reads.
    ptff: HistogramSum,
}

impl Scan {
    /// Finishes the run of `pair` summed in `run` (emptying it).
    fn close(&mut self, pair: Option<(Address, &str)>, run: &mut BucketSum) {
        let Some((orch, model)) = pair else { return };
        let b = run.finish();
        self.ptff.add(&b.ptff);
        match self.per_orch.last_mut() {
            Some((o, models)) if *o == orch => {
                let earlier = models.insert(model.to_owned(), b);
                // Series sort by (orchestrator, model, …): a pair's run is whole.
                debug_assert!(earlier.is_none(), "one run per (orchestrator, model)");
            }
            _ => self.per_orch.push((orch, BTreeMap::from([(model.to_owned(), b)]))),
        }
    }
}

/// Threads one query runs on at most, whatever the machine's cores.
const MAX_QUERY_THREADS: usize = 4;

/// Series that make a query part worth taking apart: starting a thread
/// costs tens of microseconds, summing a day of this many series some
/// milliseconds.
const MIN_SERIES_PER_PART: usize = 2_048;

/// Parts per query thread. The threads share the machine's cores with
/// everything else it runs: with one part each, a query lasts as long as
/// its slowest thread; with several, a thread that falls behind takes
/// fewer of them.
const PARTS_PER_THREAD: usize = 4;

/// Threads a query runs on: the cores this process may use, at most
/// [`MAX_QUERY_THREADS`]. Asked once (the answer reads cgroup files).
fn query_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism().map_or(1, NonZeroUsize::get).min(MAX_QUERY_THREADS)
    })
}

/// The entries of a map, `entries`, calling `warm` with the entry
/// [`AHEAD`] places on as each is taken, after asking for its key and value
/// [`AHEAD`] places before that: a scan asks for the memory of the series
/// it sums next (key and value in the map's node first, then what they
/// point to) while it sums this one.
fn looking_ahead<'a, K: 'a, V: 'a, I: Iterator<Item = (&'a K, &'a V)> + Clone>(
    entries: I,
    warm: impl Fn(&'a K, &'a V),
) -> impl Iterator<Item = I::Item> {
    let mut near = entries.clone().skip(AHEAD);
    let mut far = entries.clone().skip(2 * AHEAD);
    entries.inspect(move |_| {
        if let Some((k, v)) = far.next() {
            prefetch(k);
            prefetch(v);
        }
        if let Some((k, v)) = near.next() {
            warm(k, v);
        }
    })
}

/// How many series ahead a scan warms (see [`looking_ahead`]): enough to
/// cover a load from memory with the summing of the series between.
const AHEAD: usize = 4;

/// A range of orchestrators by address.
type Orchestrators = (Bound<Address>, Bound<Address>);

/// The entries of `map` whose orchestrator (`orch_of` its key) is in
/// `orchs`, in key order, for a map sorted by orchestrator first:
/// `first(a)` is the smallest key of orchestrator `a`.
fn of_orchestrators<'a, K: Ord, V>(
    map: &'a BTreeMap<K, V>,
    orchs: &'a impl RangeBounds<Address>,
    first: impl Fn(Address) -> K,
    orch_of: impl Fn(&K) -> &Address + Copy + 'a,
) -> impl Iterator<Item = (&'a K, &'a V)> + Clone {
    let from = match orchs.start_bound() {
        Bound::Included(a) => Bound::Included(first(*a)),
        // Past an excluded start's keys (no caller has one) by skipping.
        Bound::Excluded(_) | Bound::Unbounded => Bound::Unbounded,
    };
    map.range((from, Bound::Unbounded))
        .skip_while(move |(k, _)| !orchs.contains(orch_of(k)))
        .take_while(move |(k, _)| orchs.contains(orch_of(k)))
}

/// `f` of every part, in order, on at most [`query_threads`] threads: the
/// calling thread and scoped threads each take the next part not yet
/// taken until none is left (when no thread can be started, the calling
/// thread takes them all; parts are small copies, ranges or references).
fn in_parallel<P: Copy + Send + Sync, R: Send>(
    parts: impl IntoIterator<Item = P>,
    f: impl Fn(P) -> R + Sync,
) -> Vec<R> {
    let parts: Vec<P> = parts.into_iter().collect();
    let next = AtomicUsize::new(0);
    let take = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&p) = parts.get(i) else { return done };
            done.push((i, f(p)));
        }
    };
    let helpers = query_threads().min(parts.len()).saturating_sub(1);
    let mut out: Vec<(usize, R)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..helpers)
            .filter_map(|_| std::thread::Builder::new().spawn_scoped(scope, take).ok())
            .collect();
        let mut out = take();
        for t in threads {
            out.extend(t.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        }
        out
    });
    out.sort_unstable_by_key(|&(i, _)| i);
    out.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BUILTIN_POLICIES, Limits, Observer, Policy, Registry};
    use vouch_delegation::Role;
    use vouch_delegation::authority::AuthorityView;
    use vouch_testkit::authority::entry;
    use vouch_testkit::traffic::{BASE, MODELS, REGIONS, orch, session};

    /// Three hours of one session per (orchestrator, model, region).
    fn engine(policy: &Policy, orchs: usize) -> Engine {
        let mut engine = Engine::new(policy.clone(), Registry::default_v1(), Limits::default());
        let entries = (0..orchs).map(|o| entry(orch(o), Role::Orchestrator));
        engine.set_authority(&AuthorityView::new("parts", entries));
        for h in 0..3 {
            let hour = BASE + h * 3_600_000;
            let mut k = 0u64;
            for o in 0..orchs {
                for model in &MODELS[..2] {
                    for (i, region) in REGIONS[..2].iter().enumerate() {
                        k += 1;
                        let gateway = Observer {
                            principal: Address([0xe0 + i as u8; 20]),
                            role: Role::Gateway,
                            delegate: Address([0xf0 + i as u8; 20]),
                            region: (*region).to_owned(),
                        };
                        let t = hour + (k % 50) * 60_000;
                        let rid = format!("{h:02x}{k:06x}");
                        engine.ingest(
                            &gateway,
                            t + 46_000,
                            &session(&rid, orch(o), model, region, t, k + h),
                        );
                    }
                }
            }
            engine.seal(hour + 3_600_000 + engine.policy().ingest.seal_grace_ms);
        }
        engine
    }

    #[test]
    fn parts_are_each_taken_once_and_answered_in_order() {
        use std::sync::Mutex;
        for n in [0usize, 1, 2, 7, 64] {
            let taken = Mutex::new(Vec::new());
            let out = in_parallel(0..n, |i| {
                taken.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(i);
                // Uneven parts, so that threads finish out of order.
                std::thread::sleep(std::time::Duration::from_micros((i % 3) as u64 * 200));
                i * 10
            });
            assert_eq!(out, (0..n).map(|i| i * 10).collect::<Vec<_>>(), "{n} parts");
            let mut taken = taken.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
            taken.sort_unstable();
            assert_eq!(taken, (0..n).collect::<Vec<_>>(), "{n} parts, each once");
        }
    }

    #[test]
    fn looking_ahead_hands_on_every_entry_and_warms_each_later_one_once() {
        use std::cell::RefCell;
        for n in [0u32, 1, AHEAD as u32, AHEAD as u32 + 1, 20] {
            let map: BTreeMap<u32, u32> = (0..n).map(|i| (i, i * 10)).collect();
            let warmed = RefCell::new(Vec::new());
            let out: Vec<(u32, u32)> = looking_ahead(map.iter(), |k, v| {
                warmed.borrow_mut().push((*k, *v));
            })
            .map(|(k, v)| (*k, *v))
            .collect();
            assert_eq!(out, map.clone().into_iter().collect::<Vec<_>>(), "{n} entries, in order");
            // The first AHEAD entries are taken cold; the rest are warmed.
            let later: Vec<(u32, u32)> = map.into_iter().skip(AHEAD).collect();
            assert_eq!(warmed.into_inner(), later, "{n} entries");
        }
    }

    #[test]
    fn a_leaderboard_split_across_threads_says_what_one_thread_says() {
        for (name, _) in BUILTIN_POLICIES {
            let Some(policy) = Policy::builtin(name) else { panic!("{name} is built in") };
            let engine = engine(&policy, 13);
            let one = engine.orchestrator_parts(1, 1);
            assert_eq!(one, vec![(Bound::Unbounded, Bound::Unbounded)]);
            for threads in [2, 3, 5, 64] {
                let parts = engine.orchestrator_parts(threads, 1);
                assert_eq!(parts.len(), threads.min(13), "{name}: whole orchestrators");
                for window in [Window::H1, Window::H24] {
                    let q = Query { window, ..Query::default() };
                    let said = |parts| {
                        serde_json::to_string(&engine.orchestrators_in(&q, parts))
                            .unwrap_or_default()
                    };
                    let whole = said(one.clone());
                    assert!(
                        whole.contains(&orch(12).to_hex()),
                        "{name}: every orchestrator listed"
                    );
                    assert_eq!(said(parts.clone()), whole, "{name}: {threads} threads, {window:?}");
                }
            }
            // Too few series for a thread each: one part.
            assert_eq!(engine.orchestrator_parts(4, 1_000).len(), 1);
        }
        let empty = Engine::with_defaults();
        assert_eq!(empty.orchestrator_parts(4, 1).len(), 1);
        assert!(empty.orchestrators(&Query::default()).orchestrators.is_empty());
    }
}
