//! The load-test gateway's probes: the schedule (which orchestrators it
//! probes, in which order, and when, within a rate budget per orchestrator)
//! and the [`Prober`] that turns it into synthetic sessions as their times
//! come.
//!
//! A schedule is a pure function of its inputs (targets, strategy, seed,
//! interval, budget), so the same seed probes the same orchestrators in the
//! same order, and `vouch loadtest --dry-run` prints exactly what a real run
//! would do.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;
use vouch_delegation::Role;
use vouch_delegation::authority::AuthorityView;
use vouch_schema::{Address, Origin};

use super::events::{Profile, SessionPlan};
use super::rng::SplitMix64;
use super::timeline::Timeline;

/// One minute, ms: the span of the rate budget.
pub const BUDGET_SPAN_MS: u64 = 60_000;

/// An orchestrator that may be probed, with its stake (LPT wei; 0 if unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The orchestrator's address.
    pub address: Address,
    /// Its bonded stake, LPT wei.
    pub stake: u128,
}

/// How the load-test gateway picks orchestrators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Every orchestrator in turn, largest stake first.
    All,
    /// The `n` largest stakes in turn.
    TopN(usize),
    /// Weighted-random by stake from a seeded generator (reproducible).
    Weighted {
        /// The generator's seed.
        seed: u64,
    },
}

/// Pacing of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleParams {
    /// Time between two probes, ms (at least 1).
    pub interval_ms: u64,
    /// Most probes of one orchestrator in any [`BUDGET_SPAN_MS`] (at least 1).
    pub budget_per_minute: u32,
    /// Probes to schedule.
    pub count: usize,
}

/// One scheduled probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Probe {
    /// Position in the schedule, from 0.
    pub index: u64,
    /// When, ms after the schedule's start.
    pub offset_ms: u64,
    /// Which orchestrator.
    pub orchestrator: Address,
    /// Its stake, LPT wei (a decimal string in JSON: wei overflow JSON numbers).
    #[serde(serialize_with = "as_decimal")]
    pub stake: u128,
}

fn as_decimal<S: serde::Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

/// Why no schedule can be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The authority view lists no orchestrator.
    #[error("no orchestrators to probe")]
    NoTargets,
    /// `top-n` with n = 0.
    #[error("top-n needs n of at least 1")]
    ZeroN,
    /// An interval or budget of 0.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// A stake that is not a decimal integer of at most 128 bits.
    #[error("orchestrator {0} has an unreadable stake {1:?}")]
    BadStake(Address, String),
}

/// The orchestrators of `view`, with their stakes (0 where not given).
pub fn targets_from_view(view: &AuthorityView) -> Result<Vec<Target>, ProbeError> {
    view.principals
        .iter()
        .filter(|p| p.roles.contains(&Role::Orchestrator))
        .map(|p| {
            let stake = match &p.stake {
                None => 0,
                Some(s) => s.parse().map_err(|_| ProbeError::BadStake(p.address, s.clone()))?,
            };
            Ok(Target { address: p.address, stake })
        })
        .collect()
}

/// Builds the schedule. Probes are `interval_ms` apart; an orchestrator whose
/// budget for the last minute is spent is skipped (all, top-n) or not drawn
/// (weighted), and when every candidate's budget is spent the next probe
/// waits until the first budget frees.
pub fn schedule(
    targets: &[Target],
    strategy: Strategy,
    params: ScheduleParams,
) -> Result<Vec<Probe>, ProbeError> {
    if params.interval_ms == 0 {
        return Err(ProbeError::Zero("interval"));
    }
    if params.budget_per_minute == 0 {
        return Err(ProbeError::Zero("budget"));
    }
    let mut sorted = targets.to_vec();
    // Largest stake first; ties by address, so the order never depends on input order.
    sorted.sort_by(|a, b| b.stake.cmp(&a.stake).then(a.address.cmp(&b.address)));
    sorted.dedup_by_key(|t| t.address);
    let candidates: Vec<Target> = match strategy {
        Strategy::All | Strategy::Weighted { .. } => sorted,
        Strategy::TopN(0) => return Err(ProbeError::ZeroN),
        Strategy::TopN(n) => sorted.into_iter().take(n).collect(),
    };
    if candidates.is_empty() {
        return Err(ProbeError::NoTargets);
    }
    let mut rng = match strategy {
        Strategy::Weighted { seed } => Some(SplitMix64::new(seed)),
        _ => None,
    };
    let budget = params.budget_per_minute as usize;
    // Times of each candidate's probes within the last budget span.
    let mut recent: Vec<VecDeque<u64>> = vec![VecDeque::new(); candidates.len()];
    let mut next_rr = 0usize;
    let mut t = 0u64;
    let mut out = Vec::with_capacity(params.count);
    while out.len() < params.count {
        for r in recent.iter_mut() {
            while r.front().is_some_and(|&p| p + BUDGET_SPAN_MS <= t) {
                r.pop_front();
            }
        }
        let eligible: Vec<usize> =
            (0..candidates.len()).filter(|&i| recent[i].len() < budget).collect();
        if eligible.is_empty() {
            // Every budget is spent: wait for the first to free.
            t = recent
                .iter()
                .filter_map(|r| r.front())
                .map(|&p| p + BUDGET_SPAN_MS)
                .min()
                .unwrap_or(t + 1);
            continue;
        }
        let pick = match rng.as_mut() {
            None => {
                let n = candidates.len();
                let i = (0..n).map(|k| (next_rr + k) % n).find(|i| recent[*i].len() < budget);
                let i = i.unwrap_or(eligible[0]);
                next_rr = (i + 1) % n;
                i
            }
            Some(rng) => {
                // Stake-weighted; all-zero stakes draw uniformly.
                let total: u128 = eligible.iter().map(|&i| candidates[i].stake).sum();
                if total == 0 {
                    eligible[rng.below(eligible.len() as u64) as usize]
                } else {
                    let mut x = rng.below_u128(total);
                    let mut chosen = eligible[eligible.len() - 1];
                    for &i in &eligible {
                        if x < candidates[i].stake {
                            chosen = i;
                            break;
                        }
                        x -= candidates[i].stake;
                    }
                    chosen
                }
            }
        };
        recent[pick].push_back(t);
        out.push(Probe {
            index: out.len() as u64,
            offset_ms: t,
            orchestrator: candidates[pick].address,
            stake: candidates[pick].stake,
        });
        t += params.interval_ms;
    }
    Ok(out)
}

/// Turns a probe schedule into synthetic sessions as their times come: the
/// load-test gateway of `vouch loadtest` and of `vouch demo`.
#[derive(Debug)]
pub struct Prober {
    schedule: Vec<Probe>,
    next: usize,
    start_ms: u64,
    seed: u64,
    region: String,
    rng: SplitMix64,
    nth: BTreeMap<Address, u64>,
    started: u64,
}

impl Prober {
    /// Runs `schedule` from `start_ms` (Unix ms), observed from `region`;
    /// `seed` names the probes' requests and seeds their sessions.
    pub fn new(schedule: Vec<Probe>, start_ms: u64, seed: u64, region: String) -> Prober {
        Prober {
            schedule,
            next: 0,
            start_ms,
            seed,
            region,
            rng: SplitMix64::new(seed ^ 0x7072_6f62_6573),
            nth: BTreeMap::new(),
            started: 0,
        }
    }

    /// Whether every probe of the schedule has started.
    pub fn finished(&self) -> bool {
        self.next >= self.schedule.len()
    }

    /// Probes started so far.
    pub fn started(&self) -> u64 {
        self.started
    }

    /// Plans the session of every probe due at `now` on `timeline` for
    /// `publisher`: each orchestrator behaves as `profile_of` says, and
    /// `backup` takes over a session swapped away.
    pub fn plan_due(
        &mut self,
        now: u64,
        timeline: &mut Timeline,
        publisher: usize,
        profile_of: impl Fn(&Address) -> Profile,
        backup: Address,
    ) {
        while let Some(p) = self.schedule.get(self.next) {
            let at = self.start_ms + p.offset_ms;
            if at > now {
                break;
            }
            self.next += 1;
            let nth = self.nth.entry(p.orchestrator).or_default();
            let plan = SessionPlan {
                request_id: format!("probe-{:x}-{}", self.seed, p.index),
                orchestrator: p.orchestrator,
                profile: profile_of(&p.orchestrator),
                backup,
                region: self.region.clone(),
                origin: Origin::Synthetic,
                start_ms: now,
                nth: *nth,
            };
            *nth += 1;
            self.started += 1;
            for e in plan.events(&mut self.rng) {
                timeline.push(e.at_ms, publisher, e.event);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn targets() -> Vec<Target> {
        (1..=8u8)
            .map(|i| Target { address: Address([i; 20]), stake: u128::from(i) * 1000 })
            .collect()
    }

    fn params(count: usize) -> ScheduleParams {
        ScheduleParams { interval_ms: 1000, budget_per_minute: 3, count }
    }

    #[test]
    fn all_goes_round_robin_by_stake() {
        let s = schedule(&targets(), Strategy::All, params(16)).unwrap();
        let order: Vec<u8> = s.iter().map(|p| p.orchestrator.0[0]).collect();
        assert_eq!(order, [8, 7, 6, 5, 4, 3, 2, 1, 8, 7, 6, 5, 4, 3, 2, 1]);
    }

    #[test]
    fn budget_holds_and_waits() {
        let s = schedule(&targets(), Strategy::TopN(2), params(10)).unwrap();
        for p in &s {
            let in_span = s
                .iter()
                .filter(|q| q.orchestrator == p.orchestrator)
                .filter(|q| {
                    q.offset_ms <= p.offset_ms && q.offset_ms + BUDGET_SPAN_MS > p.offset_ms
                })
                .count();
            assert!(in_span <= 3, "{s:?}");
        }
        // Six probes fit in the first minute; the seventh waits for a budget.
        assert!(s[6].offset_ms >= BUDGET_SPAN_MS, "{s:?}");
    }

    #[test]
    fn weighted_is_seeded() {
        let w = |seed| schedule(&targets(), Strategy::Weighted { seed }, params(50)).unwrap();
        assert_eq!(w(1), w(1));
        assert_ne!(w(1), w(2));
    }
}
