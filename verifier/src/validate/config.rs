//! Bounds of every guard, with defaults that work.

use serde::{Deserialize, Serialize};
use vouch_delegation::{Eip712Network, Policy, Role};

/// One role's token bucket: `rate_per_sec` envelopes per second, bursts of `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Sustained envelopes per second per principal.
    pub rate_per_sec: u32,
    /// Bucket size (envelopes that may arrive at once).
    pub burst: u32,
}

/// Token buckets per role (each principal gets one bucket per role).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimits {
    /// Orchestrators.
    pub orchestrator: RateLimit,
    /// Runners (charged to their orchestrator principal).
    pub runner: RateLimit,
    /// Gateways.
    pub gateway: RateLimit,
    /// Load-test gateways.
    pub loadtest: RateLimit,
    /// Verifiers.
    pub verifier: RateLimit,
}

impl Default for RateLimits {
    fn default() -> Self {
        let normal = RateLimit { rate_per_sec: 50, burst: 200 };
        RateLimits {
            orchestrator: normal,
            runner: normal,
            gateway: RateLimit { rate_per_sec: 200, burst: 800 },
            loadtest: RateLimit { rate_per_sec: 20, burst: 40 },
            verifier: RateLimit { rate_per_sec: 5, burst: 20 },
        }
    }
}

impl RateLimits {
    /// The bucket parameters for `role`.
    pub fn for_role(&self, role: Role) -> RateLimit {
        match role {
            Role::Orchestrator => self.orchestrator,
            Role::Runner => self.runner,
            Role::Gateway => self.gateway,
            Role::Loadtest => self.loadtest,
            Role::Verifier => self.verifier,
        }
    }
}

/// Every bound of the validation pipeline. All maps are bounded by these
/// numbers by construction; reaching a bound evicts the oldest entry and
/// counts the eviction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ValidationConfig {
    /// The EIP-712 network certificates must be signed for.
    pub network: Eip712Network,
    /// Longest accepted certificate lifetime, seconds.
    pub max_certificate_lifetime_secs: u64,
    /// Clock skew allowed around a certificate's validity, seconds: a
    /// certificate is accepted this long before its `notBefore`, and an
    /// envelope whose certificate's `notAfter` plus this is already past on
    /// the verifier's clock when it arrives is refused (`expired_certificate`)
    /// whatever its own stamp, so an expired delegate cannot keep publishing
    /// envelopes back-dated inside the replay window.
    pub certificate_clock_skew_secs: u64,
    /// Stream path after the principal: stream id = `<principal><stream_path>`.
    pub stream_path: String,
    /// How far in the future an envelope may be stamped, ms.
    pub max_future_skew_ms: u64,
    /// Envelopes stamped longer ago than this are stale, ms.
    pub replay_window_ms: u64,
    /// How far behind its chain's newest message an envelope may arrive, ms.
    pub reorder_window_ms: u64,
    /// Positions remembered per chain for duplicate detection.
    pub dedup_per_chain: usize,
    /// (publisher, chain) pairs tracked.
    pub max_chains: usize,
    /// Chains one publisher may have tracked at once (chains idle longer than
    /// the replay window are reclaimed first).
    pub max_chains_per_publisher: usize,
    /// Verified certificates cached.
    pub certificate_cache: usize,
    /// Delegate public keys cached.
    pub delegate_key_cache: usize,
    /// (principal, role) token buckets kept.
    pub max_buckets: usize,
    /// Principals whose live delegates are tracked.
    pub max_principals: usize,
    /// Live (unexpired) delegates a principal may have at once.
    pub max_delegates_per_principal: usize,
    /// Revocations of delegates this verifier never saw (no verified
    /// certificate of that delegate for that principal, or all expired) kept
    /// per principal; past it the principal's own oldest such revocation is
    /// evicted (`vouch_guard_evictions_total{bound="revocations"}`). A
    /// revocation of a delegate it saw is never dropped for capacity. Only
    /// principals of the authority view may revoke, so the table holds at
    /// most principals × (this + `max_delegates_per_principal`) entries.
    pub max_unknown_revocations_per_principal: usize,
    /// Roles that may publish on telemetry topics.
    pub telemetry_roles: Vec<Role>,
    /// Token buckets by role.
    pub rate_limits: RateLimits,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig {
            network: Eip712Network::arbitrum_one(),
            max_certificate_lifetime_secs: Policy::DEFAULT_MAX_LIFETIME_SECS,
            certificate_clock_skew_secs: Policy::DEFAULT_CLOCK_SKEW_SECS,
            stream_path: "/livepeer/telemetry".to_owned(),
            max_future_skew_ms: 30_000,
            replay_window_ms: 10 * 60 * 1000,
            reorder_window_ms: 30_000,
            dedup_per_chain: 1024,
            max_chains: 65_536,
            max_chains_per_publisher: 16,
            certificate_cache: 16_384,
            delegate_key_cache: 16_384,
            max_buckets: 16_384,
            max_principals: 16_384,
            max_delegates_per_principal: 16,
            max_unknown_revocations_per_principal: 64,
            telemetry_roles: vec![Role::Orchestrator, Role::Runner, Role::Gateway, Role::Loadtest],
            rate_limits: RateLimits::default(),
        }
    }
}

impl ValidationConfig {
    /// The certificate policy these settings describe.
    pub fn policy(&self) -> Policy {
        Policy {
            max_lifetime_secs: self.max_certificate_lifetime_secs,
            clock_skew_secs: self.certificate_clock_skew_secs,
        }
    }
}
