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
    pub(crate) ingest: Option<u64>,
    pub(crate) first_processed: Option<u64>,
    pub(crate) few_processed: Option<u64>,
    pub(crate) status: BTreeMap<u64, Status>,
    pub(crate) decided: bool,
}

impl Attempt {
    fn new(ts: u64) -> Attempt {
        Attempt {
            first_ts: ts,
            ingest: None,
            first_processed: None,
            few_processed: None,
            status: BTreeMap::new(),
            decided: false,
        }
    }
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

/// What one decision adds to a bucket.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Delta {
    Startup {
        first_in_session: bool,
        excused: bool,
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

        // Startup decisions.
        for (i, &(s, akey)) in order.iter().enumerate() {
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
            let before = |v: Option<u64>| v.filter(|&x| x < t);
            let (fp, few, ing) =
                (before(a.first_processed), before(a.few_processed), before(a.ingest));
            let anchor = match self.request_ts {
                Some(r) if i == 0 && r <= s => r,
                _ => s,
            };
            let success = few.is_some();
            let own_end = t.min(next_start(i));
            let first_err = self
                .errors
                .range((s, 0)..(own_end, 0))
                .next()
                .map(|&(_, c)| FailureClass::from_index(c));
            // The client closing the stream while this attempt was still the
            // one serving it (not after a swap away) excuses it.
            let closed = self.close_ts.is_some_and(|c| c >= s && c < own_end);
            let excused = !success && first_err.map_or(closed, FailureClass::excused);
            let failure = if success || first_err.is_some() {
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
            let samples: Vec<&Status> = a.status.range(s..t).map(|(_, st)| st).collect();
            let viable = success
                || samples.iter().any(|st| {
                    st.fps_centi > 0 && st.state != STATE_LOADING && st.state != STATE_OFFLINE
                });
            let signals =
                u64::from(!samples.is_empty()) + u64::from(fp.is_some()) + u64::from(success);
            let delta = Delta::Startup {
                first_in_session: i == 0,
                excused,
                success,
                viable,
                signals,
                ptff: fp.map(|f| f.saturating_sub(anchor)),
                startup: few.map(|f| f.saturating_sub(anchor)),
                e2e: match (ing, fp) {
                    (Some(i), Some(f)) if i <= f => Some(f - i),
                    _ => None,
                },
                failure,
                gateway: key.gateway,
            };
            push(t, akey.orch, delta, self);
        }

        // Errors: the first error of an attempt is its failure, unless the
        // attempt already failed at its startup decision.
        for &(e, c) in self.errors.range((from, 0)..(to, 0)) {
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
            let success_by_t = a.few_processed.is_some_and(|f| f < t);
            if e >= t && !success_by_t {
                continue;
            }
            let class = FailureClass::from_index(c);
            let partial = a.few_processed.is_some_and(|f| f <= e);
            push(e, akey.orch, Delta::Failure { class, partial }, self);
        }

        // Swaps, decided a swap horizon after the swap.
        let lo = from.saturating_sub(swap_horizon);
        let hi = to.saturating_sub(swap_horizon);
        for &(w, named, _) in self.swaps.range((lo, None, 0)..(hi, None, 0)) {
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
                let mut inference_ms = 0;
                if st.fps_centi > 0 {
                    let prev = a
                        .status
                        .range(..st_ts)
                        .next_back()
                        .map(|(&t, _)| t)
                        .or(a.first_processed.filter(|&f| f < st_ts))
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

    /// Forgets status samples no future decision needs (keeping the last one
    /// before the cut, the "previous sample" of the next).
    pub(crate) fn prune(&mut self, to: u64, max_gap: u64) {
        for a in self.attempts.values_mut() {
            let cut = if a.decided {
                to.saturating_sub(max_gap)
            } else {
                a.first_ts.min(to.saturating_sub(max_gap))
            };
            let keep = a.status.split_off(&cut);
            let last = a.status.pop_last();
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
