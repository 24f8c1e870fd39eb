//! The engine: ingest verified batches, seal minutes, answer queries.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use vouch_delegation::Role;
use vouch_schema::{Address, Event, Family, Origin};

use crate::SlaError;
use crate::attempt::{
    AttemptKey, Contribution, DecideStats, Delta, STATE_LOADING, STATE_OFFLINE, STATE_OTHER,
    Session, SessionKey, Status, min_into, min_pair_into,
};
use crate::bucket::{
    Bucket, MINUTE_MS, PercentileSummary, SealedBucket, SelfBucket, Series, SeriesKey,
};
use crate::policy::Policy;
use crate::query::{Query, Window};
use crate::registry::Registry;
use crate::response::{
    AggregatedScore, AggregatedStats, DemandResponse, DemandRow, DemandTotals, Filters,
    GatewayCount, ModelEntry, ModelsResponse, OrchestratorDetail, OrchestratorEntry,
    OrchestratorsResponse, PolicyRef, RegionEntry, RegionsResponse, RegistryRef, SeriesPoint,
    WindowInfo,
};
use crate::score::{self, Bench, ScoreCtx, round};

/// Who signed a batch: the principal it speaks for, in which role, through
/// which delegate key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observer {
    /// The principal (gateway or orchestrator address).
    pub principal: Address,
    /// The role its delegation grants.
    pub role: Role,
    /// The delegate key that signed.
    pub delegate: Address,
}

/// Bounds on every map the engine keeps; hitting one is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open gateway sessions.
    pub max_sessions: usize,
    /// Attempts (orchestrators) per session.
    pub max_attempts_per_session: usize,
    /// Errors, swaps and restarts per session.
    pub max_facts_per_session: usize,
    /// Status samples kept per attempt.
    pub max_status_per_attempt: usize,
    /// (orchestrator, model, region, origin) keys.
    pub max_series: usize,
    /// Orchestrators with self-reports.
    pub max_self_series: usize,
    /// (orchestrator, gateway) pairs.
    pub max_gateway_pairs: usize,
    /// Cached query answers.
    pub max_cached_queries: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_sessions: 200_000,
            max_attempts_per_session: 16,
            max_facts_per_session: 256,
            max_status_per_attempt: 2_048,
            max_series: 200_000,
            max_self_series: 20_000,
            max_gateway_pairs: 200_000,
            max_cached_queries: 256,
        }
    }
}

/// What one [`Engine::ingest`] did with a batch's events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    /// Gateway or load-test observations taken.
    pub accepted: u64,
    /// Self-reports taken (shown beside scores, never in them).
    pub self_reported: u64,
    /// Events not taken, by reason.
    pub rejected: BTreeMap<&'static str, u64>,
}

/// Counters and sizes for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    /// End of the newest sealed minute, ms (0 before the first seal).
    pub sealed_end_ms: u64,
    /// Open gateway sessions.
    pub open_sessions: u64,
    /// Attempts in open sessions.
    pub open_attempts: u64,
    /// (orchestrator, model, region, origin) keys.
    pub series_keys: u64,
    /// Minute buckets in memory (open and sealed).
    pub minute_buckets: u64,
    /// Hour buckets in memory.
    pub hour_buckets: u64,
    /// Approximate bytes of state in memory.
    pub approx_state_bytes: u64,
    /// Event counters: accepted, rejected by reason, dropped late, limits hit, ….
    pub counters: BTreeMap<String, u64>,
}

/// Everything [`Engine::checkpoint`] saves.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    policy_hash: String,
    registry_hash: String,
    sealed_end_ms: u64,
    sessions: BTreeMap<SessionKey, Session>,
    series: BTreeMap<SeriesKey, Series<Bucket>>,
    self_series: BTreeMap<Address, Series<SelfBucket>>,
    gateways: BTreeMap<(Address, Address), Series<u64>>,
    /// Every orchestrator's sealed buckets merged per (origin, model): the
    /// cohort the benchmarks come from, kept so a query need not re-merge them.
    cohorts: BTreeMap<(u8, String), Series<Bucket>>,
    counters: BTreeMap<String, u64>,
}

#[derive(Default)]
struct Cache {
    lists: HashMap<String, OrchestratorsResponse>,
    benches: HashMap<u8, Arc<BTreeMap<String, Bench>>>,
}

/// The SLA engine: policy, registry, open sessions and buckets.
pub struct Engine {
    policy: Policy,
    registry: Registry,
    limits: Limits,
    st: State,
    cache: Mutex<Cache>,
}

fn count(counters: &mut BTreeMap<String, u64>, name: &str, n: u64) {
    if n > 0 {
        *counters.entry(name.to_owned()).or_default() += n;
    }
}

fn rfc3339(ms: u64) -> String {
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

fn origin_code(o: Origin) -> u8 {
    o.code() as u8
}

impl Engine {
    /// An empty engine.
    pub fn new(policy: Policy, registry: Registry, limits: Limits) -> Engine {
        let st = State {
            policy_hash: policy.hash.clone(),
            registry_hash: registry.hash.clone(),
            ..State::default()
        };
        Engine { policy, registry, limits, st, cache: Mutex::new(Cache::default()) }
    }

    /// An empty engine with the embedded policy and registry and default limits.
    pub fn with_defaults() -> Engine {
        Engine::new(Policy::default_v1(), Registry::default_v1(), Limits::default())
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The registry in force.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// One verified batch: its signer, its envelope timestamp (ms) and its events.
    pub fn ingest(
        &mut self,
        observer: &Observer,
        envelope_ts_ms: u64,
        events: &[Event],
    ) -> IngestReport {
        let mut report = IngestReport::default();
        for ev in events {
            match self.ingest_one(observer, envelope_ts_ms, ev) {
                Ok(true) => report.accepted += 1,
                Ok(false) => report.self_reported += 1,
                Err(reason) => *report.rejected.entry(reason).or_default() += 1,
            }
        }
        let c = &mut self.st.counters;
        count(c, "events_accepted", report.accepted);
        count(c, "events_self_reported", report.self_reported);
        for (reason, n) in &report.rejected {
            count(c, &format!("events_rejected_{reason}"), *n);
        }
        report
    }

    /// Ok(true): an observation; Ok(false): a self-report.
    fn ingest_one(
        &mut self,
        observer: &Observer,
        envelope_ts: u64,
        ev: &Event,
    ) -> Result<bool, &'static str> {
        let ts = ev.ts.ok_or("no_timestamp")?;
        if ts > envelope_ts {
            return Err("future_timestamp");
        }
        if envelope_ts - ts > self.policy.ingest.event_lag_ms {
            return Err("lag_exceeded");
        }
        if ts < self.st.sealed_end_ms {
            return Err("late_sealed");
        }
        match observer.role {
            Role::Gateway | Role::Loadtest => {
                let origin = if observer.role == Role::Loadtest {
                    Origin::Synthetic
                } else {
                    ev.origin.unwrap_or(Origin::Production)
                };
                self.observe(observer.principal, origin_code(origin), ev, ts).map(|()| true)
            }
            Role::Orchestrator | Role::Runner => {
                self.self_report(observer.principal, ev, ts).map(|()| false)
            }
            Role::Verifier => Err("observer_role"),
        }
    }

    fn observe(
        &mut self,
        gateway: Address,
        origin: u8,
        ev: &Event,
        ts: u64,
    ) -> Result<(), &'static str> {
        if !matches!(
            ev.family,
            Family::StreamTrace | Family::AiStreamStatus | Family::AiStreamEvents
        ) {
            return Err("family_not_scored");
        }
        let request_id = ev.request_id.clone().ok_or("no_request_id")?;
        let key = SessionKey { gateway, origin, request_id };
        if !self.st.sessions.contains_key(&key)
            && self.st.sessions.len() >= self.limits.max_sessions
        {
            count(&mut self.st.counters, "limit_sessions", 1);
            return Err("limit_sessions");
        }
        let model = ev.model_id.as_deref().map(|m| self.registry.canonical(m));
        let region = ev.gateway_region.as_deref().map(str::to_uppercase);
        let orch = ev.orchestrator.filter(|a| *a != Address::ZERO);
        let classify = |ev: &Event| {
            let msg = ev.get_str("/message").unwrap_or("");
            self.policy.classify(msg).index() as u8
        };
        let max_attempts = self.limits.max_attempts_per_session;
        let max_facts = self.limits.max_facts_per_session;
        let max_status = self.limits.max_status_per_attempt;
        let subtype = ev.subtype().unwrap_or("");
        let fact_class = match (&ev.family, subtype) {
            (Family::StreamTrace, "orchestrator_swap") | (Family::AiStreamEvents, "error") => {
                classify(ev)
            }
            _ => 0,
        };
        let s = self.st.sessions.entry(key).or_default();
        s.last_ts = s.last_ts.max(ts);
        if let Some(m) = &model {
            min_pair_into(&mut s.model, ts, m);
        }
        if let Some(r) = &region {
            min_pair_into(&mut s.region, ts, r);
        }
        let facts = s.errors.len() + s.swaps.len() + s.restarts.len();
        let mut limit_hit = None;
        match (&ev.family, subtype) {
            (Family::StreamTrace, "gateway_receive_stream_request") => {
                min_into(&mut s.request_ts, ts)
            }
            (Family::StreamTrace, "gateway_ingest_stream_closed") => min_into(&mut s.close_ts, ts),
            (Family::StreamTrace, "orchestrator_swap") => {
                if facts < max_facts {
                    s.swaps.insert((ts, orch, fact_class));
                } else {
                    limit_hit = Some("limit_session_facts");
                }
            }
            (Family::StreamTrace, _) => {
                if let Some(o) = orch {
                    match s.attempt(
                        AttemptKey { orch: o, manifest: String::new() },
                        ts,
                        max_attempts,
                    ) {
                        None => limit_hit = Some("limit_attempts"),
                        Some(a) => match subtype {
                            "gateway_send_first_ingest_segment" => min_into(&mut a.ingest, ts),
                            "gateway_receive_first_processed_segment" => {
                                min_into(&mut a.first_processed, ts)
                            }
                            "gateway_receive_few_processed_segments" => {
                                min_into(&mut a.few_processed, ts)
                            }
                            _ => {}
                        },
                    }
                }
            }
            (Family::AiStreamStatus, _) => {
                let o = orch.ok_or("no_orchestrator")?;
                let fps = ev
                    .get_f64("/inference_status/fps")
                    .or_else(|| ev.get_f64("/output_fps"))
                    .unwrap_or(0.0);
                let state = match ev.get_str("/state") {
                    Some("LOADING") => STATE_LOADING,
                    Some("OFFLINE") => STATE_OFFLINE,
                    _ => STATE_OTHER,
                };
                let status = Status {
                    fps_centi: (fps.max(0.0) * 100.0).round().min(f64::from(u32::MAX)) as u32,
                    state,
                    prev_ts: ev.get_u64("/last_status_timestamp"),
                };
                match s.attempt(AttemptKey { orch: o, manifest: String::new() }, ts, max_attempts) {
                    None => limit_hit = Some("limit_attempts"),
                    Some(a) if a.status.len() >= max_status && !a.status.contains_key(&ts) => {
                        limit_hit = Some("limit_status_samples");
                    }
                    Some(a) => {
                        // Duplicates of one sample time keep the smallest
                        // reading, whatever order they came in.
                        let slot = a.status.entry(ts).or_insert(status);
                        if (status.fps_centi, status.state, status.prev_ts)
                            < (slot.fps_centi, slot.state, slot.prev_ts)
                        {
                            *slot = status;
                        }
                    }
                }
            }
            (Family::AiStreamEvents, "error") => {
                if facts < max_facts {
                    s.errors.insert((ts, fact_class));
                } else {
                    limit_hit = Some("limit_session_facts");
                }
            }
            (Family::AiStreamEvents, "restart") => {
                if facts < max_facts {
                    s.restarts.insert(ts);
                } else {
                    limit_hit = Some("limit_session_facts");
                }
            }
            _ => {}
        }
        if let Some(limit) = limit_hit {
            count(&mut self.st.counters, limit, 1);
            return Err(limit);
        }
        Ok(())
    }

    fn self_report(&mut self, orch: Address, ev: &Event, ts: u64) -> Result<(), &'static str> {
        if !self.st.self_series.contains_key(&orch)
            && self.st.self_series.len() >= self.limits.max_self_series
        {
            count(&mut self.st.counters, "limit_self_series", 1);
            return Err("limit_self_series");
        }
        let minute = (ts / MINUTE_MS) as u32;
        match ev.family {
            Family::AiStreamStatus => {
                let fps = ev
                    .get_f64("/inference_status/fps")
                    .or_else(|| ev.get_f64("/output_fps"))
                    .ok_or("no_fps")?;
                let b = self.st.self_series.entry(orch).or_default().minute_mut(minute);
                b.fps.record((fps.max(0.0) * 100.0).round() as u64);
            }
            Family::GpuStats => {
                let (idx, pct) = match ev.get_str("/source") {
                    Some("gpm") => (0, ev.get_f64("/tensor_active_pct")),
                    Some("nvml") => (1, ev.get_f64("/utilization_gpu_pct")),
                    Some("proxy") => (2, None),
                    _ => return Err("unknown_cue_source"),
                };
                let b = self.st.self_series.entry(orch).or_default().minute_mut(minute);
                b.sources[idx] += 1;
                if let Some(p) = pct {
                    b.cue_sum_milli += (p.clamp(0.0, 100.0) * 10.0).round() as u64;
                    b.cue_count += 1;
                }
            }
            _ => return Err("family_not_scored"),
        }
        Ok(())
    }

    /// Seals every minute whose grace has passed at `now_ms`: makes the
    /// decisions that fall in those minutes, rolls them into hours, and
    /// returns the newly sealed buckets (sorted by key, then minute).
    pub fn seal(&mut self, now_ms: u64) -> Vec<SealedBucket> {
        let to = now_ms.saturating_sub(self.policy.ingest.seal_grace_ms) / MINUTE_MS * MINUTE_MS;
        let from = self.st.sealed_end_ms;
        if to <= from {
            return Vec::new();
        }
        let mut stats = DecideStats::default();
        let mut contributions: Vec<(u8, Contribution)> = Vec::new();
        let gap = self.policy.attempt.max_status_gap_ms;
        for (key, session) in self.st.sessions.iter_mut() {
            for c in session.decide(key, from, to, &self.policy, &mut stats) {
                contributions.push((key.origin, c));
            }
            session.prune(to, gap);
        }
        let policy = &self.policy;
        self.st.sessions.retain(|_, s| !s.finished(to, policy));
        count(&mut self.st.counters, "errors_unattributed", stats.unattributed_errors);
        count(&mut self.st.counters, "decisions_late", stats.late_decisions);
        for (origin, c) in contributions {
            self.apply(origin, c);
        }

        let (from_min, to_min) = ((from / MINUTE_MS) as u32, (to / MINUTE_MS) as u32);
        let keep_min = to_min.saturating_sub(self.policy.windows.minute_retention);
        let keep_hour = (to_min / 60).saturating_sub(self.policy.windows.hour_retention);
        let mut sealed = Vec::new();
        for (k, series) in self.st.series.iter_mut() {
            for (m, b) in series.seal(from_min, to_min) {
                self.st
                    .cohorts
                    .entry((k.origin, k.model.clone()))
                    .or_default()
                    .minute_mut(m)
                    .merge(b);
                sealed.push(SealedBucket {
                    orchestrator: k.orch,
                    model_id: k.model.clone(),
                    pipeline: self.registry.pipeline(&k.model).to_owned(),
                    region: k.region.clone(),
                    origin: Origin::from_code(u64::from(k.origin))
                        .unwrap_or(Origin::Production)
                        .as_str(),
                    minute_start_ms: u64::from(m) * MINUTE_MS,
                    counters: b.c.clone(),
                    ptff_ms: PercentileSummary::of(&b.ptff),
                    startup_ms: PercentileSummary::of(&b.startup),
                    e2e_ms: PercentileSummary::of(&b.e2e),
                    fps_centi: PercentileSummary::of(&b.fps),
                });
            }
            series.prune(keep_min, keep_hour);
        }
        self.st.series.retain(|_, s| !s.is_empty());
        for series in self.st.self_series.values_mut() {
            series.seal(from_min, to_min);
            series.prune(keep_min, keep_hour);
        }
        self.st.self_series.retain(|_, s| !s.is_empty());
        for series in self.st.cohorts.values_mut() {
            series.seal(from_min, to_min);
            series.prune(keep_min, keep_hour);
        }
        self.st.cohorts.retain(|_, s| !s.is_empty());
        for series in self.st.gateways.values_mut() {
            series.seal(from_min, to_min);
            series.prune(keep_min, keep_hour);
        }
        self.st.gateways.retain(|_, s| !s.is_empty());
        count(&mut self.st.counters, "buckets_sealed", sealed.len() as u64);
        self.st.sealed_end_ms = to;
        self.clear_cache();
        sealed
    }

    /// Drops cached query answers (they are also dropped on every seal);
    /// benchmarks use it to time uncached queries.
    pub fn invalidate_cache(&self) {
        self.clear_cache();
    }

    fn clear_cache(&self) {
        if let Ok(mut c) = self.cache.lock() {
            *c = Cache::default();
        }
    }

    fn apply(&mut self, origin: u8, c: Contribution) {
        let minute = (c.at_ms / MINUTE_MS) as u32;
        let key = SeriesKey { orch: c.orch, model: c.model, region: c.region, origin };
        if !self.st.series.contains_key(&key) && self.st.series.len() >= self.limits.max_series {
            count(&mut self.st.counters, "limit_series", 1);
            return;
        }
        let b = self.st.series.entry(key).or_default().minute_mut(minute);
        match c.delta {
            Delta::Startup {
                first_in_session,
                excused,
                success,
                viable,
                signals,
                ptff,
                startup,
                e2e,
                failure,
                gateway,
            } => {
                b.c.attempts += 1;
                b.c.sessions += u64::from(first_in_session);
                if !excused {
                    b.c.scored_attempts += 1;
                    b.c.startup_successes += u64::from(success);
                    b.c.viable += u64::from(viable);
                    b.c.signals += signals;
                }
                if let Some(v) = ptff {
                    b.ptff.record(v);
                    b.c.ptff_sum_ms += v;
                }
                if let Some(v) = startup {
                    b.startup.record(v);
                }
                if let Some(v) = e2e {
                    b.e2e.record(v);
                }
                if let Some(class) = failure {
                    b.c.failures[class.index()] += 1;
                    b.c.failed += u64::from(!class.excused());
                }
                let pair = (c.orch, gateway);
                if self.st.gateways.contains_key(&pair)
                    || self.st.gateways.len() < self.limits.max_gateway_pairs
                {
                    *self.st.gateways.entry(pair).or_default().minute_mut(minute) += 1;
                } else {
                    count(&mut self.st.counters, "limit_gateway_pairs", 1);
                }
            }
            Delta::Failure { class, partial } => {
                b.c.failures[class.index()] += 1;
                if !class.excused() {
                    b.c.failed += 1;
                    b.c.partial_successes += u64::from(partial);
                }
            }
            Delta::Swap => b.c.swaps += 1,
            Delta::Retry => b.c.retries += 1,
            Delta::Restart => b.c.restarts += 1,
            Delta::Status { fps_centi, inference_ms } => {
                let f = u64::from(fps_centi);
                b.fps.record(f);
                b.c.fps_sum_centi = b.c.fps_sum_centi.saturating_add(f);
                b.c.fps_sq_sum_centi = b.c.fps_sq_sum_centi.saturating_add(f * f);
                b.c.inference_ms += inference_ms;
            }
        }
    }

    /// The whole mutable state as deterministic bytes (CBOR).
    pub fn checkpoint(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing into a Vec cannot fail, and the state has only
        // serializable members.
        if let Err(e) = ciborium::into_writer(&self.st, &mut out) {
            unreachable!("serializing SLA state: {e}");
        }
        out
    }

    /// Rebuilds an engine from [`Engine::checkpoint`] bytes made under the
    /// same policy and registry.
    pub fn restore(
        policy: Policy,
        registry: Registry,
        limits: Limits,
        bytes: &[u8],
    ) -> Result<Engine, SlaError> {
        let st: State =
            ciborium::from_reader(bytes).map_err(|e| SlaError::Checkpoint(e.to_string()))?;
        if st.policy_hash != policy.hash {
            return Err(SlaError::CheckpointMismatch {
                what: "policy",
                found: st.policy_hash,
                expected: policy.hash,
            });
        }
        if st.registry_hash != registry.hash {
            return Err(SlaError::CheckpointMismatch {
                what: "registry",
                found: st.registry_hash,
                expected: registry.hash,
            });
        }
        Ok(Engine { policy, registry, limits, st, cache: Mutex::new(Cache::default()) })
    }

    /// Counters and sizes for `/metrics`.
    pub fn stats(&self) -> EngineStats {
        let minute_buckets: usize = self.st.series.values().map(|s| s.minutes.len()).sum();
        let hour_buckets: usize = self.st.series.values().map(|s| s.hours.len()).sum();
        let bucket_heap: usize = self
            .st
            .series
            .values()
            .flat_map(|s| s.minutes.values().chain(s.hours.values()))
            .map(Bucket::heap_bytes)
            .sum();
        let bucket_size = std::mem::size_of::<Bucket>() + 8;
        let session_bytes: usize = self.st.sessions.values().map(Session::heap_bytes).sum();
        let approx = (minute_buckets + hour_buckets) * bucket_size
            + bucket_heap
            + self.st.series.len() * 160
            + session_bytes;
        EngineStats {
            sealed_end_ms: self.st.sealed_end_ms,
            open_sessions: self.st.sessions.len() as u64,
            open_attempts: self.st.sessions.values().map(|s| s.attempts.len() as u64).sum(),
            series_keys: self.st.series.len() as u64,
            minute_buckets: minute_buckets as u64,
            hour_buckets: hour_buckets as u64,
            approx_state_bytes: approx as u64,
            counters: self.st.counters.clone(),
        }
    }

    // ----- queries -----

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

    fn policy_ref(&self) -> PolicyRef {
        PolicyRef {
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

    /// Cohort benchmarks of every model over the benchmark window (cached until the next seal).
    fn benches(&self, origin: u8) -> Arc<BTreeMap<String, Bench>> {
        if let Ok(c) = self.cache.lock()
            && let Some(b) = c.benches.get(&origin)
        {
            return Arc::clone(b);
        }
        let w = Window::parse(&self.policy.scoring.benchmark_window).unwrap_or(Window::D7);
        let (start, end) = w.range(self.end_min());
        let mut out: BTreeMap<String, Bench> = BTreeMap::new();
        for ((o, model), s) in &self.st.cohorts {
            if *o != origin {
                continue;
            }
            let bench = out.entry(model.clone()).or_default();
            s.fold_range(start, end, |_, b| {
                bench.ptff.merge(&b.ptff);
                bench.e2e.merge(&b.e2e);
                bench.fps.merge(&b.fps);
            });
        }
        let out = Arc::new(out);
        if let Ok(mut c) = self.cache.lock() {
            c.benches.insert(origin, Arc::clone(&out));
        }
        out
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

    /// `GET /v1/sla/orchestrators`.
    pub fn orchestrators(&self, q: &Query) -> OrchestratorsResponse {
        let cache_key = q.cache_key();
        if let Ok(c) = self.cache.lock()
            && let Some(r) = c.lists.get(&cache_key)
        {
            return r.clone();
        }
        let (start, end, window) = self.window_info(q.window);
        let model = self.canonical_model(q);
        let mut per_orch: BTreeMap<Address, BTreeMap<String, Bucket>> = BTreeMap::new();
        let mut all_ptff = crate::Histogram::new();
        for (k, s) in &self.st.series {
            if !self.matches(k, q, &model) {
                continue;
            }
            let mut merged = Bucket::default();
            s.fold_range(start, end, |_, b| merged.merge(b));
            if merged.c.attempts == 0 && merged.fps.is_empty() && merged.c == Default::default() {
                continue;
            }
            all_ptff.merge(&merged.ptff);
            per_orch.entry(k.orch).or_default().entry(k.model.clone()).or_default().merge(&merged);
        }
        let benches = self.benches(origin_code(q.origin));
        let ctx = self.ctx(&benches, all_ptff.percentile(50.0).map(|v| v as f64));
        let mut entries: Vec<OrchestratorEntry> = per_orch
            .iter()
            .map(|(orch, per_model)| OrchestratorEntry {
                rank: None,
                address: *orch,
                metrics: score::metrics(
                    &ctx,
                    per_model,
                    self.self_bucket(orch, start, end).as_ref(),
                ),
            })
            .collect();
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
        let resp = OrchestratorsResponse {
            window,
            policy: self.policy_ref(),
            filters: self.filters(q),
            orchestrators: entries,
        };
        if let Ok(mut c) = self.cache.lock() {
            if c.lists.len() >= self.limits.max_cached_queries {
                c.lists.clear();
            }
            c.lists.insert(cache_key, resp.clone());
        }
        resp
    }

    /// `GET /v1/sla/orchestrators/{address}`; `None` for an orchestrator never seen.
    /// `restricted` adds the per-gateway breakdown.
    pub fn orchestrator(
        &self,
        address: &Address,
        q: &Query,
        restricted: bool,
    ) -> Option<OrchestratorDetail> {
        let seen = self.st.series.keys().any(|k| k.orch == *address)
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
        let benches = self.benches(origin_code(q.origin));
        let ctx = self.ctx(&benches, all_ptff.percentile(50.0).map(|v| v as f64));
        let summary = OrchestratorEntry {
            rank: None,
            address: *address,
            metrics: score::metrics(
                &ctx,
                &per_model,
                self.self_bucket(address, start, end).as_ref(),
            ),
        };
        let by_model = per_model
            .iter()
            .map(|(m, b)| ModelEntry {
                model_id: m.clone(),
                pipeline: self.registry.pipeline(m).to_owned(),
                metrics: score::metrics(&ctx, &BTreeMap::from([(m.clone(), b.clone())]), None),
                targets: score::targets(&ctx, m, b),
            })
            .collect();
        let by_region = per_region
            .iter()
            .map(|(r, pm)| RegionEntry {
                region: r.clone(),
                metrics: score::metrics(&ctx, pm, None),
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
        let by_gateway = restricted.then(|| {
            let lo = (*address, Address::ZERO);
            self.st
                .gateways
                .range(lo..)
                .take_while(|((o, _), _)| o == address)
                .filter_map(|((_, g), s)| {
                    let mut n = 0u64;
                    s.fold_range(start, end, |_, c| n += c);
                    (n > 0).then_some(GatewayCount { gateway: *g, attempts: n })
                })
                .collect()
        });
        Some(OrchestratorDetail {
            window,
            policy: self.policy_ref(),
            filters: self.filters(q),
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
        let (mut ts, mut ta, mut ti) = (0, 0, 0);
        let rows = rows
            .into_iter()
            .map(|((m, r), (s, a, i))| {
                ts += s;
                ta += a;
                ti += i;
                DemandRow {
                    pipeline: self.registry.pipeline(&m).to_owned(),
                    model_id: m,
                    region: r,
                    sessions: s,
                    attempts: a,
                    inference_minutes: round(i as f64 / 60_000.0, 4),
                }
            })
            .collect();
        DemandResponse {
            window,
            rows,
            totals: DemandTotals {
                sessions: ts,
                attempts: ta,
                inference_minutes: round(ti as f64 / 60_000.0, 4),
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
    /// region, for orchestrators with enough attempts there.
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
