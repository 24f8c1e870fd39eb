//! Corroboration: what each gateway saw of an orchestrator.
//!
//! One gateway can report anything about an orchestrator (its signature
//! proves only who said it). Two defences follow: a score needs
//! observations from a policy minimum of distinct gateways, and a gateway
//! whose view of an orchestrator is far from the other gateways' view is
//! flagged — compared with the median over every gateway that saw enough
//! attempts, so that with three or more gateways the odd one out is named,
//! and with two that disagree both are (nobody can tell which is right).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vouch_schema::Address;

use crate::bucket::Mergeable;
use crate::compact::{Pack, get64, put};
use crate::policy::CorroborationPolicy;
use crate::response::{GatewayCount, round};

/// What one gateway saw of one series in one minute or hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GatewayBucket {
    /// Attempts decided.
    pub(crate) attempts: u64,
    /// Of those, not excused.
    pub(crate) scored_attempts: u64,
    /// Scored attempts that reached playable output.
    pub(crate) startup_successes: u64,
    /// Sum of PTFF samples, ms.
    pub(crate) ptff_sum_ms: u64,
    /// PTFF samples.
    pub(crate) ptff_count: u64,
}

impl Pack for GatewayBucket {
    fn pack(&self, out: &mut Vec<u8>) {
        for v in self.fields() {
            put(out, u128::from(v));
        }
    }

    fn unpack(&mut self, mut bytes: &[u8]) -> Option<()> {
        let mut f = [0u64; 5];
        for v in &mut f {
            *v = get64(&mut bytes)?;
        }
        let [attempts, scored_attempts, startup_successes, ptff_sum_ms, ptff_count] = f;
        *self =
            GatewayBucket { attempts, scored_attempts, startup_successes, ptff_sum_ms, ptff_count };
        bytes.is_empty().then_some(())
    }
}

impl Mergeable for GatewayBucket {
    fn merge_from(&mut self, o: &Self) {
        let s = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        s(&mut self.attempts, o.attempts);
        s(&mut self.scored_attempts, o.scored_attempts);
        s(&mut self.startup_successes, o.startup_successes);
        s(&mut self.ptff_sum_ms, o.ptff_sum_ms);
        s(&mut self.ptff_count, o.ptff_count);
    }
}

impl GatewayBucket {
    fn fields(&self) -> [u64; 5] {
        [
            self.attempts,
            self.scored_attempts,
            self.startup_successes,
            self.ptff_sum_ms,
            self.ptff_count,
        ]
    }

    fn success_rate(&self) -> Option<f64> {
        (self.scored_attempts > 0)
            .then(|| self.startup_successes as f64 / self.scored_attempts as f64)
    }

    fn ptff_mean(&self) -> Option<f64> {
        (self.ptff_count > 0).then(|| self.ptff_sum_ms as f64 / self.ptff_count as f64)
    }
}

/// Every gateway's view of one orchestrator over one scope (window and filters).
#[derive(Debug, Clone, Default)]
pub(crate) struct Corroboration {
    by_gateway: BTreeMap<Address, GatewayBucket>,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 })
}

impl Corroboration {
    /// Adds what `gateway` saw.
    pub(crate) fn add(&mut self, gateway: Address, b: &GatewayBucket) {
        self.by_gateway.entry(gateway).or_default().merge_from(b);
    }

    /// Adds everything `other` holds.
    pub(crate) fn absorb(&mut self, other: Corroboration) {
        if self.by_gateway.is_empty() {
            self.by_gateway = other.by_gateway;
            return;
        }
        for (gateway, b) in &other.by_gateway {
            self.add(*gateway, b);
        }
    }

    /// Gateways that observed at least one attempt.
    pub(crate) fn distinct(&self) -> u64 {
        self.by_gateway.values().filter(|b| b.attempts > 0).count() as u64
    }

    /// The gateways whose view is far from the others', in address order.
    pub(crate) fn flagged(&self, policy: &CorroborationPolicy) -> Vec<Address> {
        let enough: Vec<(&Address, &GatewayBucket)> = self
            .by_gateway
            .iter()
            .filter(|(_, b)| b.scored_attempts >= policy.min_attempts)
            .collect();
        if enough.len() < 2 {
            return Vec::new();
        }
        let rate = median(enough.iter().filter_map(|(_, b)| b.success_rate()).collect());
        let ptff = median(enough.iter().filter_map(|(_, b)| b.ptff_mean()).collect());
        enough
            .iter()
            .filter(|(_, b)| {
                let off_rate = matches!((b.success_rate(), rate),
                    (Some(r), Some(m)) if (r - m).abs() > policy.success_rate_delta);
                let off_ptff = matches!((b.ptff_mean(), ptff),
                    (Some(p), Some(m)) if p > 0.0 && m > 0.0
                        && (p / m).max(m / p) > policy.ptff_ratio);
                off_rate || off_ptff
            })
            .map(|(a, _)| **a)
            .collect()
    }

    /// The restricted per-gateway breakdown.
    pub(crate) fn breakdown(&self, policy: &CorroborationPolicy) -> Vec<GatewayCount> {
        let flagged = self.flagged(policy);
        self.by_gateway
            .iter()
            .filter(|(_, b)| b.attempts > 0)
            .map(|(g, b)| GatewayCount {
                gateway: *g,
                attempts: b.attempts,
                startup_success_rate: b.success_rate().map(|r| round(r, 4)),
                ptff_mean_ms: b.ptff_mean().map(|p| round(p, 1)),
                flagged: flagged.contains(g),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(scored: u64, successes: u64, ptff_ms: u64) -> GatewayBucket {
        GatewayBucket {
            attempts: scored,
            scored_attempts: scored,
            startup_successes: successes,
            ptff_sum_ms: ptff_ms * scored,
            ptff_count: scored,
        }
    }

    fn policy() -> CorroborationPolicy {
        CorroborationPolicy::default()
    }

    #[test]
    fn the_odd_gateway_out_is_flagged_and_only_it() {
        let mut c = Corroboration::default();
        c.add(Address([1; 20]), &seen(20, 20, 800));
        c.add(Address([2; 20]), &seen(20, 19, 850));
        c.add(Address([3; 20]), &seen(20, 2, 800));
        assert_eq!(c.distinct(), 3);
        assert_eq!(c.flagged(&policy()), vec![Address([3; 20])]);
        let mut slow = Corroboration::default();
        slow.add(Address([1; 20]), &seen(20, 20, 800));
        slow.add(Address([2; 20]), &seen(20, 20, 820));
        slow.add(Address([3; 20]), &seen(20, 20, 9_000));
        assert_eq!(slow.flagged(&policy()), vec![Address([3; 20])], "PTFF far off");
    }

    #[test]
    fn two_that_disagree_are_both_flagged_and_few_attempts_flag_nobody() {
        let mut c = Corroboration::default();
        c.add(Address([1; 20]), &seen(20, 20, 800));
        c.add(Address([2; 20]), &seen(20, 0, 800));
        assert_eq!(c.flagged(&policy()).len(), 2);
        let mut thin = Corroboration::default();
        thin.add(Address([1; 20]), &seen(20, 20, 800));
        thin.add(Address([2; 20]), &seen(3, 0, 800));
        assert!(thin.flagged(&policy()).is_empty(), "3 attempts are not enough to judge");
        let rows = thin.breakdown(&policy());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].startup_success_rate, Some(0.0));
    }
}
