//! Sealing: at each seal every session makes the decisions whose time fell
//! in the newly sealed minutes, those land in minute buckets, and the
//! minutes roll into hours. A sealed minute never changes again.

use vouch_schema::{Address, Origin};

use super::{Engine, count};
use crate::attempt::{Contribution, DecideStats, Delta};
use std::collections::BTreeMap;

use crate::bucket::{MINUTE_MS, Mergeable, PercentileSummary, SealedBucket, Series, SeriesKey};
use crate::registry::UNKNOWN_MODEL;

/// Seals minutes `[from, to)` of every series in `map` into their hours,
/// prunes what is older than `(minute, hour)` retention, drops empty series.
fn roll<K: Ord, B: Mergeable>(
    map: &mut BTreeMap<K, Series<B>>,
    (from, to): (u32, u32),
    (keep_minute, keep_hour): (u32, u32),
) {
    for series in map.values_mut() {
        series.seal(from, to, |_, _| {});
        series.prune(keep_minute, keep_hour);
    }
    map.retain(|_, s| !s.is_empty());
}

impl Engine {
    /// Seals every minute whose grace has passed at `now_ms`: makes the
    /// decisions that fall in those minutes, rolls them into hours, and
    /// returns the newly sealed buckets (sorted by key, then minute).
    pub fn seal(&mut self, now_ms: u64) -> Vec<SealedBucket> {
        let to = now_ms.saturating_sub(self.policy.ingest.seal_grace_ms) / MINUTE_MS * MINUTE_MS;
        let from = self.st.sealed_end_ms;
        if to <= from {
            return Vec::new();
        }
        self.seal_inventory(from, to);
        let mut stats = DecideStats::default();
        let mut contributions: Vec<(u8, Contribution)> = Vec::new();
        for (key, session) in self.st.sessions.iter_mut() {
            for c in session.decide(key, from, to, &self.policy, &mut stats) {
                contributions.push((key.origin, c));
            }
            session.prune(to, &self.policy);
        }
        let policy = &self.policy;
        self.st.sessions.retain(|_, s| !s.finished(to, policy));
        self.recount_usage();
        count(&mut self.st.counters, "errors_unattributed", stats.unattributed_errors);
        count(&mut self.st.counters, "swaps_unattributed", stats.unattributed_swaps);
        count(&mut self.st.counters, "decisions_late", stats.late_decisions);
        for (origin, c) in contributions {
            self.apply(origin, c);
        }

        let (from_min, to_min) = ((from / MINUTE_MS) as u32, (to / MINUTE_MS) as u32);
        let keep_min = to_min.saturating_sub(self.policy.windows.minute_retention);
        let keep_hour = (to_min / 60).saturating_sub(self.policy.windows.hour_retention);
        let mut sealed = Vec::new();
        let (cohorts, registry) = (&mut self.st.cohorts, &self.registry);
        for (k, series) in self.st.series.iter_mut() {
            series.seal(from_min, to_min, |m, b| {
                cohorts.entry((k.origin, k.model.clone())).or_default().minute_mut(m).merge(b);
                sealed.push(SealedBucket {
                    orchestrator: k.orch,
                    model_id: k.model.clone(),
                    pipeline: registry.pipeline(&k.model).to_owned(),
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
            });
            series.prune(keep_min, keep_hour);
        }
        self.st.series.retain(|_, s| !s.is_empty());
        let (minutes, keep) = ((from_min, to_min), (keep_min, keep_hour));
        roll(&mut self.st.self_series, minutes, keep);
        roll(&mut self.st.cohorts, minutes, keep);
        roll(&mut self.st.gateways, minutes, keep);
        count(&mut self.st.counters, "buckets_sealed", sealed.len() as u64);
        self.st.sealed_end_ms = to;
        self.clear_cache();
        sealed
    }

    /// The series key a contribution lands in: a model outside the registry
    /// only while the orchestrator has fewer than the bound of such models
    /// (else `unknown`, counted), so made-up model names cannot multiply an
    /// orchestrator's series.
    fn series_key(&mut self, origin: u8, c: &Contribution) -> SeriesKey {
        let mut key =
            SeriesKey { orch: c.orch, model: c.model.clone(), region: c.region.clone(), origin };
        if self.st.series.contains_key(&key)
            || key.model == UNKNOWN_MODEL
            || self.registry.model(&key.model).is_some()
        {
            return key;
        }
        let unregistered = self
            .st
            .series
            .range(SeriesKey::first_of(c.orch)..)
            .take_while(|(k, _)| k.orch == c.orch)
            .filter(|(k, _)| k.model != UNKNOWN_MODEL && self.registry.model(&k.model).is_none())
            .map(|(k, _)| &k.model)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        if unregistered >= self.limits.max_unregistered_models_per_orchestrator {
            count(&mut self.st.counters, "limit_models", 1);
            key.model = UNKNOWN_MODEL.to_owned();
        }
        key
    }

    fn apply(&mut self, origin: u8, c: Contribution) {
        let minute = (c.at_ms / MINUTE_MS) as u32;
        let key = self.series_key(origin, &c);
        if !self.st.series.contains_key(&key) && self.st.series.len() >= self.limits.max_series {
            count(&mut self.st.counters, "limit_series", 1);
            return;
        }
        if let Delta::Startup { gateway, scored, success, ptff, .. } = &c.delta {
            self.observed_by(&key, *gateway, minute, *scored, *success, *ptff);
        }
        let b = self.st.series.entry(key).or_default().minute_mut(minute);
        match c.delta {
            Delta::Startup {
                first_in_session,
                excused: _,
                scored,
                swapped,
                success,
                viable,
                signals,
                ptff,
                startup,
                e2e,
                failure,
                gateway: _,
            } => {
                b.c.attempts += 1;
                b.c.sessions += u64::from(first_in_session);
                b.c.swaps += u64::from(swapped && scored);
                if scored {
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
                    b.c.e2e_sum_ms += v;
                }
                if let Some(class) = failure {
                    b.c.failures[class.index()] += 1;
                    b.c.failed += u64::from(!class.excused());
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

    /// Records what `gateway` saw of one attempt of `key`'s series.
    fn observed_by(
        &mut self,
        key: &SeriesKey,
        gateway: Address,
        minute: u32,
        scored: bool,
        success: bool,
        ptff: Option<u64>,
    ) {
        let pair = (key.clone(), gateway);
        if !self.st.gateways.contains_key(&pair)
            && self.st.gateways.len() >= self.limits.max_gateway_pairs
        {
            count(&mut self.st.counters, "limit_gateway_pairs", 1);
            return;
        }
        let b = self.st.gateways.entry(pair).or_default().minute_mut(minute);
        b.attempts += 1;
        if scored {
            b.scored_attempts += 1;
            b.startup_successes += u64::from(success);
        }
        if let Some(v) = ptff {
            b.ptff_sum_ms += v;
            b.ptff_count += 1;
        }
    }
}
