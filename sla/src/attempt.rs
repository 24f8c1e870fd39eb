//! Gateway sessions and orchestrator attempts, rebuilt from go-livepeer
//! events, and the decisions that turn them into bucket contributions.
//!
//! A session holds order-independent facts only: minima of milestone times,
//! and sets of timed samples, errors and swaps. Every measurement has a
//! decision time (an attempt's startup: its first event + the startup
//! horizon; an error, status sample or restart: its own time; a swap: its
//! time + the swap horizon) and is decided when the bucket holding that time
//! seals, from the facts earlier than it. Those facts are final by then (a
//! later arrival for a sealed minute is dropped), so the outcome does not
//! depend on the order in which events arrived.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound::{Excluded, Unbounded};

use serde::{Deserialize, Serialize};
use vouch_schema::Address;

use crate::definitions::{Edge, ExcuseRule, Signal, Span, Unit, Viability};
use crate::policy::{FailureClass, Policy};

/// A gateway session: who observed it, its track and its `request_id`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct SessionKey {
    pub(crate) gateway: Address,
    pub(crate) origin: u8,
    pub(crate) request_id: String,
}

/// One orchestrator serving the session (`manifest_id` where known).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct AttemptKey {
    pub(crate) orch: Address,
    pub(crate) manifest: String,
}

/// Runner state codes we care about.
pub(crate) const STATE_OTHER: u8 = 0;
pub(crate) const STATE_LOADING: u8 = 1;
pub(crate) const STATE_OFFLINE: u8 = 2;
/// ONLINE, DEGRADED_INPUT, DEGRADED_INFERENCE: the runner is producing.
pub(crate) const STATE_RUNNING: u8 = 3;

/// One runner status sample relayed by the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Status {
    /// Output fps, hundredths.
    pub(crate) fps_centi: u32,
    pub(crate) state: u8,
    /// The runner's previous status time (`last_status_timestamp`).
    pub(crate) prev_ts: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Attempt {
    pub(crate) first_ts: u64,
    /// Earliest time of each recorded edge, in [`Edge::RECORDED`] order.
    pub(crate) edges: [Option<u64>; Edge::RECORDED.len()],
    pub(crate) status: BTreeMap<u64, Status>,
    pub(crate) decided: bool,
    /// What the samples pruned so far said (session-unit policies only).
    #[serde(default, skip_serializing_if = "OutputSummary::is_empty")]
    pub(crate) earlier: OutputSummary,
}

impl Attempt {
    fn new(ts: u64) -> Attempt {
        Attempt {
            first_ts: ts,
            edges: [None; Edge::RECORDED.len()],
            status: BTreeMap::new(),
            decided: false,
            earlier: OutputSummary::default(),
        }
    }

    /// Records `edge` at `ts` (the earliest time wins).
    pub(crate) fn record_edge(&mut self, edge: Edge, ts: u64) {
        if let Some(i) = edge.slot() {
            min_into(&mut self.edges[i], ts);
        }
    }

    /// The recorded edge's earliest time.
    fn edge(&self, edge: Edge) -> Option<u64> {
        edge.slot().and_then(|i| self.edges[i])
    }
}

/// What the startup decision knows of a unit's edges, before its decision time.
struct EdgeTimes {
    request: u64,
    start: u64,
    /// Recorded edges, each the earliest before the decision time
    /// (`stream_start`, a runner clock reading, is taken as recorded).
    recorded: [Option<u64>; Edge::RECORDED.len()],
}

impl EdgeTimes {
    fn of(request: u64, start: u64, edges: &[Option<u64>], t: u64) -> EdgeTimes {
        let mut recorded = [None; Edge::RECORDED.len()];
        for (i, e) in Edge::RECORDED.iter().enumerate() {
            recorded[i] = edges[i].filter(|&x| *e == Edge::StreamStart || x < t);
        }
        EdgeTimes { request, start, recorded }
    }

    fn at(&self, edge: Edge) -> Option<u64> {
        match edge {
            Edge::Request => Some(self.request),
            Edge::AttemptStart => Some(self.start),
            e => e.slot().and_then(|i| self.recorded[i]),
        }
    }

    /// A span's length, when both ends were seen in order.
    fn span(&self, span: Span) -> Option<u64> {
        let (from, to) = (self.at(span.from)?, self.at(span.to)?);
        (to >= from).then(|| to - from)
    }
}

/// What status samples say of a unit's output, merged exactly (every field
/// an "any"): kept in an attempt for the samples a session-unit policy has
/// already pruned, so its hourly decisions still judge the whole session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OutputSummary {
    samples: bool,
    /// ONLINE or DEGRADED_*.
    running: bool,
    /// Output fps above zero.
    positive: bool,
    /// Output fps above zero outside LOADING/OFFLINE.
    producing: bool,
}

impl OutputSummary {
    fn of<'a>(samples: impl IntoIterator<Item = &'a Status>) -> OutputSummary {
        let mut out = OutputSummary::default();
        for st in samples {
            out.samples = true;
            out.running |= st.state == STATE_RUNNING;
            out.positive |= st.fps_centi > 0;
            out.producing |=
                st.fps_centi > 0 && st.state != STATE_LOADING && st.state != STATE_OFFLINE;
        }
        out
    }

    fn merge(self, o: OutputSummary) -> OutputSummary {
        OutputSummary {
            samples: self.samples || o.samples,
            running: self.running || o.running,
            positive: self.positive || o.positive,
            producing: self.producing || o.producing,
        }
    }

    fn is_empty(&self) -> bool {
        *self == OutputSummary::default()
    }

    fn facts(self) -> OutputFacts {
        OutputFacts {
            samples: self.samples,
            loading_only: self.samples && !self.running,
            zero_output: self.samples && !self.positive,
            producing: self.producing,
        }
    }
}

/// What a unit's status samples say of its output.
struct OutputFacts {
    samples: bool,
    loading_only: bool,
    zero_output: bool,
    /// A sample with fps above zero outside LOADING/OFFLINE.
    producing: bool,
}

impl OutputFacts {
    fn failed_output(&self) -> bool {
        self.loading_only || self.zero_output
    }
}

/// The startup decision's judgement of one unit (an attempt or a session-hour).
struct Judged {
    success: bool,
    excused: bool,
    viable: bool,
    signals: u64,
}

/// Judges a unit by the policy's definitions.
fn judge(
    policy: &Policy,
    times: &EdgeTimes,
    output: &OutputFacts,
    errors: &[FailureClass],
    closed: bool,
) -> Judged {
    let m = &policy.metrics;
    let success = times.at(m.success).is_some();
    let excused = !success
        && match m.excuse {
            ExcuseRule::FirstError => errors.first().map_or(closed, |c| c.excused()),
            ExcuseRule::AllErrors => !errors.is_empty() && errors.iter().all(|c| c.excused()),
        };
    let viable = match m.viability {
        Viability::StartupOutput => success || output.producing,
        Viability::NoFailedOutput => !output.failed_output(),
    };
    let signals = m
        .signals
        .iter()
        .filter(|s| match s {
            Signal::StatusSample => output.samples,
            Signal::FirstProcessed => times.at(Edge::FirstProcessed).is_some(),
            Signal::FewProcessed => times.at(Edge::FewProcessed).is_some(),
            Signal::OutputOk => output.samples && (!output.loading_only || !output.zero_output),
        })
        .count() as u64;
    Judged { success, excused, viable, signals }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Session {
    pub(crate) request_ts: Option<u64>,
    pub(crate) close_ts: Option<u64>,
    /// Earliest (time, canonical model) seen.
    pub(crate) model: Option<(u64, String)>,
    /// Earliest (time, region) seen.
    pub(crate) region: Option<(u64, String)>,
    pub(crate) attempts: BTreeMap<AttemptKey, Attempt>,
    /// (time, failure class index).
    pub(crate) errors: BTreeSet<(u64, u8)>,
    /// (time, orchestrator swapped away from if named, class index of its message).
    pub(crate) swaps: BTreeSet<(u64, Option<Address>, u8)>,
    pub(crate) restarts: BTreeSet<u64>,
    pub(crate) last_ts: u64,
}

/// Minutes per clock hour, ms.
const HOUR_MS: u64 = 3_600_000;

/// What one decision adds to a bucket.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Delta {
    Startup {
        first_in_session: bool,
        excused: bool,
        /// Counted in the denominators (not excused, or the policy keeps
        /// excused units there).
        scored: bool,
        /// A session unit that saw a swap (attempt units are charged swaps
        /// by their own decisions).
        swapped: bool,
        success: bool,
        viable: bool,
        signals: u64,
        ptff: Option<u64>,
        startup: Option<u64>,
        e2e: Option<u64>,
        /// A failure decided at startup (no error message to count it by).
        failure: Option<FailureClass>,
        gateway: Address,
    },
    Failure {
        class: FailureClass,
        partial: bool,
    },
    Swap,
    Retry,
    Status {
        fps_centi: u32,
        inference_ms: u64,
    },
    Restart,
}

/// A decision: when (its bucket), whom it is charged to, under which model
/// and region, and what it adds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Contribution {
    pub(crate) at_ms: u64,
    pub(crate) orch: Address,
    pub(crate) model: String,
    pub(crate) region: String,
    pub(crate) delta: Delta,
}

/// Counts of decisions that could not be charged.
#[derive(Debug, Default)]
pub(crate) struct DecideStats {
    pub(crate) unattributed_errors: u64,
    /// Swaps away from an orchestrator that served no attempt in the session.
    pub(crate) unattributed_swaps: u64,
    pub(crate) late_decisions: u64,
}

pub(crate) fn min_into(slot: &mut Option<u64>, v: u64) {
    *slot = Some(slot.map_or(v, |old| old.min(v)));
}

pub(crate) fn min_pair_into(slot: &mut Option<(u64, String)>, ts: u64, v: &str) {
    let better = match slot {
        None => true,
        Some((t, s)) => (ts, v) < (*t, s.as_str()),
    };
    if better {
        *slot = Some((ts, v.to_owned()));
    }
}

impl Session {
    /// The attempt `key`, created at `ts` (or moved earlier to `ts`).
    /// `None` when the session already holds `max` attempts.
    pub(crate) fn attempt(&mut self, key: AttemptKey, ts: u64, max: usize) -> Option<&mut Attempt> {
        if !self.attempts.contains_key(&key) && self.attempts.len() >= max {
            return None;
        }
        let a = self.attempts.entry(key).or_insert_with(|| Attempt::new(ts));
        a.first_ts = a.first_ts.min(ts);
        Some(a)
    }

    fn model_at(&self, t: u64) -> String {
        match &self.model {
            Some((ts, m)) if *ts <= t => m.clone(),
            _ => crate::registry::UNKNOWN_MODEL.to_owned(),
        }
    }

    fn region_at(&self, t: u64, default: &str) -> String {
        match &self.region {
            Some((ts, r)) if *ts <= t => r.clone(),
            _ => default.to_owned(),
        }
    }

    /// Every decision whose time falls in `[from, to)`, in a fixed order.
    pub(crate) fn decide(
        &mut self,
        key: &SessionKey,
        from: u64,
        to: u64,
        policy: &Policy,
        stats: &mut DecideStats,
    ) -> Vec<Contribution> {
        let horizon = policy.attempt.startup_horizon_ms;
        let swap_horizon = policy.attempt.swap_horizon_ms;
        let max_gap = policy.attempt.max_status_gap_ms;
        let default_region = policy.ingest.default_region.as_str();
        // Attempts in start order; ties by key.
        let mut order: Vec<(u64, &AttemptKey)> =
            self.attempts.iter().map(|(k, a)| (a.first_ts, k)).collect();
        order.sort();
        let next_start = |i: usize| order.get(i + 1).map_or(u64::MAX, |&(t, _)| t);
        let active = |t: u64| order.iter().rposition(|&(s, _)| s <= t);
        let mut out = Vec::new();
        let mut push = |at_ms: u64, orch: Address, delta: Delta, s: &Session| {
            out.push(Contribution {
                at_ms,
                orch,
                model: s.model_at(at_ms),
                region: s.region_at(at_ms, default_region),
                delta,
            });
        };
        let mut newly_decided = Vec::new();

        if policy.metrics.unit == Unit::Session {
            self.decide_session_hours(key, (from, to), policy, &mut push);
        }

        // Startup decisions.
        for (i, &(s, akey)) in order.iter().enumerate() {
            if policy.metrics.unit != Unit::Attempt {
                break;
            }
            let a = &self.attempts[akey];
            let t = s.saturating_add(horizon);
            if a.decided || t >= to {
                continue;
            }
            newly_decided.push(akey.clone());
            if t < from {
                stats.late_decisions += 1;
                continue;
            }
            let anchor = match self.request_ts {
                Some(r) if i == 0 && r <= s => r,
                _ => s,
            };
            let times = EdgeTimes::of(anchor, s, &a.edges, t);
            let own_end = t.min(next_start(i));
            let errors: Vec<FailureClass> = self
                .errors
                .range((s, 0)..(own_end, 0))
                .map(|&(_, c)| FailureClass::from_index(c))
                .collect();
            // The client closing the stream while this attempt was still the
            // one serving it (not after a swap away) excuses it.
            let closed = self.close_ts.is_some_and(|c| c >= s && c < own_end);
            let output = OutputSummary::of(a.status.range(s..t).map(|(_, st)| st)).facts();
            let j = judge(policy, &times, &output, &errors, closed);
            let failure = if j.success || !errors.is_empty() {
                None
            } else if closed {
                Some(FailureClass::ClientCaused)
            } else if let Some(&(_, _, c)) = self
                .swaps
                .range((s, None, 0)..(t, None, 0))
                .find(|(_, o, _)| o.is_none_or(|o| o == akey.orch))
            {
                Some(FailureClass::from_index(c))
            } else if next_start(i) < t {
                Some(FailureClass::Other)
            } else {
                Some(FailureClass::Timeout)
            };
            let m = &policy.metrics;
            let delta = Delta::Startup {
                first_in_session: i == 0,
                excused: j.excused,
                scored: !j.excused || m.excused_in_denominator,
                swapped: false,
                success: j.success,
                viable: j.viable,
                signals: j.signals,
                ptff: times.span(m.ptff),
                startup: times.span(m.startup),
                e2e: times.span(m.e2e),
                failure,
                gateway: key.gateway,
            };
            push(t, akey.orch, delta, self);
        }

        // Errors: the first error of an attempt is its failure, unless the
        // attempt already failed at its startup decision.
        let attempt_unit = policy.metrics.unit == Unit::Attempt;
        for &(e, c) in self.errors.range((from, 0)..(to, 0)).filter(|_| attempt_unit) {
            let Some(i) = active(e) else {
                stats.unattributed_errors += 1;
                continue;
            };
            let (s, akey) = order[i];
            let a = &self.attempts[akey];
            if self.errors.range((s, 0)..(e, c)).next().is_some() {
                continue;
            }
            let t = s.saturating_add(horizon);
            let success_at = a.edge(policy.metrics.success);
            if e >= t && success_at.is_none_or(|f| f >= t) {
                continue;
            }
            let class = FailureClass::from_index(c);
            let partial = success_at.is_some_and(|f| f <= e);
            push(e, akey.orch, Delta::Failure { class, partial }, self);
        }

        // Swaps, decided a swap horizon after the swap.
        let lo = from.saturating_sub(swap_horizon);
        let hi = to.saturating_sub(swap_horizon);
        for &(w, named, _) in
            self.swaps.range((lo, None, 0)..(hi, None, 0)).filter(|_| attempt_unit)
        {
            let at = w + swap_horizon;
            if at < from {
                continue;
            }
            let Some(away) = named.or_else(|| active(w).map(|i| order[i].1.orch)) else {
                continue;
            };
            // Only an orchestrator that served the session can be swapped
            // away from: a swap naming any other is the gateway's word alone.
            if !self.attempts.keys().any(|k| k.orch == away) {
                stats.unattributed_swaps += 1;
                continue;
            }
            let next = order.iter().find(|&&(t, _)| t > w && t < at);
            let retry = match next {
                Some(&(_, k)) => k.orch == away,
                None => self.attempts.iter().any(|(k, a)| {
                    k.orch == away
                        && a.status
                            .range((Excluded(w), Unbounded))
                            .next()
                            .is_some_and(|(&t, _)| t < at)
                }),
            };
            push(at, away, if retry { Delta::Retry } else { Delta::Swap }, self);
        }

        // Status samples: fps, and inference time since the previous sample.
        for (akey, a) in &self.attempts {
            for (&st_ts, st) in a.status.range(from..to) {
                if st.fps_centi == 0 && policy.metrics.fps_skip_zero {
                    continue;
                }
                let mut inference_ms = 0;
                if st.fps_centi > 0 {
                    let prev = a
                        .status
                        .range(..st_ts)
                        .next_back()
                        .map(|(&t, _)| t)
                        .or(a.edge(Edge::FirstProcessed).filter(|&f| f < st_ts))
                        .or(st.prev_ts.filter(|&p| p < st_ts));
                    if let Some(p) = prev {
                        let gap = st_ts - p;
                        if gap <= max_gap {
                            inference_ms = gap;
                        }
                    }
                }
                push(
                    st_ts,
                    akey.orch,
                    Delta::Status { fps_centi: st.fps_centi, inference_ms },
                    self,
                );
            }
        }

        for &r in self.restarts.range(from..to) {
            if let Some(i) = active(r) {
                push(r, order[i].1.orch, Delta::Restart, self);
            }
        }

        for k in newly_decided {
            if let Some(a) = self.attempts.get_mut(&k) {
                a.decided = true;
            }
        }
        out
    }

    /// Session-unit decisions (`metrics.unit = "session"`): one per clock
    /// hour in which the session has status samples (NaaP's status hours),
    /// made a startup horizon after the hour's first sample from the
    /// session's facts before then, and charged to the orchestrator of the
    /// latest sample before then. Every fact before that time is final when
    /// its minute seals, so the decision does not depend on arrival order.
    fn decide_session_hours(
        &self,
        key: &SessionKey,
        (from, to): (u64, u64),
        policy: &Policy,
        push: &mut impl FnMut(u64, Address, Delta, &Session),
    ) {
        let horizon = policy.attempt.startup_horizon_ms;
        let mut firsts: BTreeMap<u64, u64> = BTreeMap::new();
        for ts in self.attempts.values().flat_map(|a| a.status.keys()) {
            let first = firsts.entry(ts / HOUR_MS).or_insert(*ts);
            *first = (*first).min(*ts);
        }
        let m = &policy.metrics;
        for first in firsts.into_values() {
            let t = first.saturating_add(horizon);
            if t < from || t >= to {
                continue;
            }
            let latest = self
                .attempts
                .iter()
                .filter_map(|(k, a)| a.status.range(..t).next_back().map(|(&ts, _)| (ts, k.orch)))
                .max();
            let Some((_, orch)) = latest else { continue };
            let mut edges = [None; Edge::RECORDED.len()];
            for a in self.attempts.values() {
                for (slot, e) in edges.iter_mut().zip(a.edges) {
                    if let Some(x) = e {
                        min_into(slot, x);
                    }
                }
            }
            let start = self.attempts.values().map(|a| a.first_ts).min().unwrap_or(first);
            let requested = self.request_ts.filter(|&r| r < t);
            let times = EdgeTimes::of(requested.unwrap_or(start), start, &edges, t);
            let errors: Vec<FailureClass> =
                self.errors.range(..(t, 0)).map(|&(_, c)| FailureClass::from_index(c)).collect();
            let closed = self.close_ts.is_some_and(|c| c < t);
            let output = self
                .attempts
                .values()
                .map(|a| a.earlier.merge(OutputSummary::of(a.status.range(..t).map(|(_, st)| st))))
                .fold(OutputSummary::default(), OutputSummary::merge)
                .facts();
            let j = judge(policy, &times, &output, &errors, closed);
            let failure = if j.success {
                None
            } else if j.excused {
                Some(FailureClass::ClientCaused)
            } else {
                Some(errors.first().copied().unwrap_or(FailureClass::Timeout))
            };
            let delta = Delta::Startup {
                first_in_session: requested.is_some(),
                excused: j.excused,
                scored: requested.is_some() && (!j.excused || m.excused_in_denominator),
                swapped: self.swaps.range(..(t, None, 0)).next().is_some(),
                success: j.success,
                viable: j.viable,
                signals: j.signals,
                ptff: times.span(m.ptff),
                startup: times.span(m.startup),
                e2e: times.span(m.e2e),
                failure,
                gateway: key.gateway,
            };
            push(t, orch, delta, self);
        }
    }

    /// Forgets status samples no future decision needs (keeping the last one
    /// before the cut, the "previous sample" of the next).
    ///
    /// Under a session-unit policy the attempts are never "decided" (the
    /// session's hours are), so their samples are cut a horizon back and
    /// what the cut ones said is kept in [`Attempt::earlier`]: an hour not
    /// yet decided has its first sample after the cut, and a long session
    /// keeps a bounded number of samples however many hours it runs.
    pub(crate) fn prune(&mut self, to: u64, policy: &Policy) {
        let gap = policy.attempt.max_status_gap_ms;
        let session_unit = policy.metrics.unit == Unit::Session;
        let horizon = policy.attempt.startup_horizon_ms;
        for a in self.attempts.values_mut() {
            let cut = if session_unit {
                to.saturating_sub(gap.max(horizon))
            } else if a.decided {
                to.saturating_sub(gap)
            } else {
                a.first_ts.min(to.saturating_sub(gap))
            };
            let keep = a.status.split_off(&cut);
            let last = a.status.pop_last();
            if session_unit {
                a.earlier = a.earlier.merge(OutputSummary::of(a.status.values()));
            }
            a.status = keep;
            if let Some((t, st)) = last {
                a.status.insert(t, st);
            }
        }
    }

    /// Whether every decision this session can ever make has been made.
    pub(crate) fn finished(&self, to: u64, policy: &Policy) -> bool {
        let span = policy
            .attempt
            .startup_horizon_ms
            .max(policy.attempt.swap_horizon_ms)
            .max(policy.attempt.max_status_gap_ms);
        self.last_ts.saturating_add(span) < to
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        let status: usize = self.attempts.values().map(|a| a.status.len() * 48 + 96).sum();
        status + (self.errors.len() + self.swaps.len() + self.restarts.len()) * 40 + 128
    }
}
