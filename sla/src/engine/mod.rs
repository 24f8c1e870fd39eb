//! The engine: ingest verified batches ([`ingest`]), seal minutes
//! ([`seal`]), answer queries ([`query`]).
//!
//! Everything the engine holds is in one serializable [`State`], so a
//! snapshot of it restores the engine exactly; what is derived from it
//! (per-principal usage, query caches) is rebuilt, never saved.

mod ingest;
pub(crate) mod inventory;
mod query;
mod seal;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use vouch_delegation::authority::AuthorityView;
use vouch_delegation::{Role, SignedDelegation, VerifiedDelegation};
use vouch_schema::{Address, Origin};

use crate::SlaError;
use crate::attempt::{Session, SessionKey};
use crate::bucket::{Bucket, SelfBucket, Series, SeriesKey};
use crate::corroboration::GatewayBucket;
use crate::inventory::Inventory;
use crate::policy::Policy;
use crate::registry::Registry;
use crate::score::Bench;

/// Who signed a batch: the principal it speaks for, in which role, through
/// which delegate key, and the region its certificate declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observer {
    /// The principal (gateway or orchestrator address).
    pub principal: Address,
    /// The role its delegation grants.
    pub role: Role,
    /// The delegate key that signed.
    pub delegate: Address,
    /// The region the certificate declares: a gateway's observations are
    /// scored in this region, whatever region its events name.
    pub region: String,
}

impl Observer {
    /// The observer a certificate names. Callers pass only certificates that
    /// verified (the pipeline's, or those of envelopes in a verifier's log).
    pub fn of(certificate: &SignedDelegation) -> Observer {
        Observer {
            principal: certificate.principal,
            role: certificate.role,
            delegate: certificate.delegate,
            region: certificate.region.clone(),
        }
    }
}

impl From<&VerifiedDelegation> for Observer {
    fn from(certificate: &VerifiedDelegation) -> Observer {
        Observer::of(certificate.certificate())
    }
}

/// Bounds on every map the engine keeps; hitting one is counted. A node
/// takes them from `[sla.limits]` and records them in its log beside the
/// policy, so a replay applies the same bounds.
///
/// The per-principal bounds make one gateway's cost its own: a principal
/// that floods fills its own share and is refused there, while every other
/// principal keeps its room. Global bounds stay as a last line; with the
/// defaults, ten principals flooding at once are needed to reach them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Open gateway sessions, all principals together.
    pub max_sessions: usize,
    /// Open gateway sessions of one principal.
    pub max_sessions_per_principal: usize,
    /// Approximate bytes of open-session state of one principal (sessions,
    /// attempts, samples and facts at their accounted sizes).
    pub max_state_bytes_per_principal: u64,
    /// Attempts (orchestrators) per session.
    pub max_attempts_per_session: usize,
    /// Errors, swaps and restarts per session.
    pub max_facts_per_session: usize,
    /// Status samples kept per attempt (go-livepeer sends one every 10 s;
    /// an attempt holds at most the samples of its still-open minutes).
    pub max_status_per_attempt: usize,
    /// (orchestrator, model, region, origin) keys.
    pub max_series: usize,
    /// Models outside the registry one orchestrator may be scored under;
    /// further unknown names are scored as `unknown`.
    pub max_unregistered_models_per_orchestrator: usize,
    /// Orchestrators with self-reports.
    pub max_self_series: usize,
    /// ((orchestrator, model, region, origin), gateway) pairs.
    pub max_gateway_pairs: usize,
    /// Orchestrators with an advertisement kept (`network_capabilities`).
    pub max_advertised_orchestrators: usize,
    /// Hardware rows (one per GPU) and, separately, capability prices kept
    /// per advertisement; the rest (after sorting) is cut and counted.
    pub max_hardware_rows_per_orchestrator: usize,
    /// Gateways remembered as reporters of one orchestrator.
    pub max_reporting_gateways: usize,
    /// (origin, model, region) keys of payments and unserved sessions.
    pub max_demand_keys: usize,
    /// Sessions with a "no orchestrator" signal held until decided.
    pub max_unplaced_sessions: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_sessions: 200_000,
            max_sessions_per_principal: 20_000,
            max_state_bytes_per_principal: 32 << 20,
            max_attempts_per_session: 16,
            max_facts_per_session: 256,
            max_status_per_attempt: 512,
            max_series: 200_000,
            max_unregistered_models_per_orchestrator: 16,
            max_self_series: 20_000,
            max_gateway_pairs: 400_000,
            max_advertised_orchestrators: 10_000,
            max_hardware_rows_per_orchestrator: 64,
            max_reporting_gateways: 64,
            max_demand_keys: 20_000,
            max_unplaced_sessions: 100_000,
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
    /// ((orchestrator, model, region, origin), gateway) keys.
    pub gateway_keys: u64,
    /// Minute buckets in memory (open and sealed).
    pub minute_buckets: u64,
    /// Hour buckets in memory.
    pub hour_buckets: u64,
    /// Approximate bytes of state in memory.
    pub approx_state_bytes: u64,
    /// Orchestrators the recorded authority view lists.
    pub listed_orchestrators: u64,
    /// Open-session state per gateway principal: (sessions, approximate bytes).
    pub principals: BTreeMap<Address, (u64, u64)>,
    /// Event counters: accepted, rejected by reason, dropped late, limits hit, ….
    pub counters: BTreeMap<String, u64>,
}

/// Everything [`Engine::snapshot`] saves.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    policy_hash: String,
    registry_hash: String,
    sealed_end_ms: u64,
    /// The orchestrators of the authority view in force (recorded in the
    /// log where it changed): only they are scored.
    orchestrators: BTreeSet<Address>,
    sessions: BTreeMap<SessionKey, Session>,
    series: BTreeMap<SeriesKey, Series<Bucket>>,
    self_series: BTreeMap<Address, Series<SelfBucket>>,
    /// What each gateway saw of each series: corroboration and outliers.
    gateways: BTreeMap<(SeriesKey, Address), Series<GatewayBucket>>,
    /// Every orchestrator's sealed buckets merged per (origin, model): the
    /// cohort the benchmarks come from, kept so a query need not re-merge them.
    cohorts: BTreeMap<(u8, String), Series<Bucket>>,
    counters: BTreeMap<String, u64>,
    /// Advertisements, payments and unserved sessions (absent while empty,
    /// so older snapshots load and unchanged states keep their bytes).
    #[serde(default, skip_serializing_if = "Inventory::is_empty")]
    inventory: Inventory,
}

/// Approximate bytes of a map of series: per entry its key (`key_bytes`),
/// the series' struct, a B-tree slot's share of its node, and the buckets
/// (`open_bytes` the heap of one unpacked bucket).
fn map_bytes<K, B: crate::bucket::Mergeable>(
    map: &BTreeMap<K, Series<B>>,
    key_bytes: impl Fn(&K) -> usize,
    open_bytes: impl Fn(&B) -> usize + Copy,
) -> usize {
    map.iter()
        .map(|(k, s)| key_bytes(k) + std::mem::size_of_val(s) + 16 + s.approx_bytes(open_bytes))
        .sum()
}

impl State {
    /// Packs every sealed bucket (a snapshot reads back unpacked).
    fn freeze(&mut self) {
        let end = (self.sealed_end_ms / crate::bucket::MINUTE_MS) as u32;
        self.series.values_mut().for_each(|s| s.freeze(end));
        self.self_series.values_mut().for_each(|s| s.freeze(end));
        self.gateways.values_mut().for_each(|s| s.freeze(end));
        self.cohorts.values_mut().for_each(|s| s.freeze(end));
        self.inventory.ledger.values_mut().for_each(|s| s.freeze(end));
    }
}

/// Open-session state one gateway principal holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Usage {
    sessions: u64,
    bytes: u64,
}

/// Cohort benchmarks per origin, kept until the next seal.
#[derive(Default)]
struct Cache {
    benches: HashMap<u8, Arc<BTreeMap<String, Bench>>>,
}

/// The SLA engine: policy, registry, open sessions and buckets.
pub struct Engine {
    policy: Policy,
    registry: Registry,
    limits: Limits,
    st: State,
    /// Derived from `st.sessions` (rebuilt on restore and at every seal).
    usage: BTreeMap<Address, Usage>,
    cache: Mutex<Cache>,
}

/// Adds `n` to counter `name`; the name is copied only the first time.
fn count(counters: &mut BTreeMap<String, u64>, name: &str, n: u64) {
    if n == 0 {
        return;
    }
    match counters.get_mut(name) {
        Some(c) => *c += n,
        None => {
            counters.insert(name.to_owned(), n);
        }
    }
}

fn origin_code(o: Origin) -> u8 {
    o.code() as u8
}

impl Engine {
    /// An empty engine. It scores no orchestrator until
    /// [`Engine::set_authority`] names the active set.
    pub fn new(policy: Policy, registry: Registry, limits: Limits) -> Engine {
        let st = State {
            policy_hash: policy.hash.clone(),
            registry_hash: registry.hash.clone(),
            ..State::default()
        };
        Engine::assemble(policy, registry, limits, st)
    }

    /// An engine over `st`, with what derives from it rebuilt.
    fn assemble(policy: Policy, registry: Registry, limits: Limits, mut st: State) -> Engine {
        st.freeze();
        let mut engine = Engine {
            policy,
            registry,
            limits,
            st,
            usage: BTreeMap::new(),
            cache: Mutex::new(Cache::default()),
        };
        engine.recount_usage();
        engine
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

    /// The authority view in force from here on (the node calls it where
    /// it records a view in its log, a replay where it reads one): only
    /// orchestrators it lists are scored; events naming others are counted
    /// (`orchestrator_unlisted`) and dropped. Buckets already made stay.
    pub fn set_authority(&mut self, view: &AuthorityView) {
        self.st.orchestrators = view
            .principals
            .iter()
            .filter(|p| view.allows(p.address, Role::Orchestrator))
            .map(|p| p.address)
            .collect();
    }

    /// The whole mutable state as deterministic bytes (CBOR).
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing into a Vec cannot fail, and the state has only
        // serializable members.
        if let Err(e) = ciborium::into_writer(&self.st, &mut out) {
            unreachable!("serializing SLA state: {e}");
        }
        out
    }

    /// Rebuilds an engine from [`Engine::snapshot`] bytes made under the
    /// same policy and registry.
    pub fn restore(
        policy: Policy,
        registry: Registry,
        limits: Limits,
        bytes: &[u8],
    ) -> Result<Engine, SlaError> {
        let st: State = ciborium::from_reader(bytes).map_err(SlaError::Snapshot)?;
        if st.policy_hash != policy.hash {
            return Err(SlaError::SnapshotMismatch {
                what: "policy",
                found: st.policy_hash,
                expected: policy.hash,
            });
        }
        if st.registry_hash != registry.hash {
            return Err(SlaError::SnapshotMismatch {
                what: "registry",
                found: st.registry_hash,
                expected: registry.hash,
            });
        }
        Ok(Engine::assemble(policy, registry, limits, st))
    }

    /// Rebuilds the per-principal usage from the open sessions.
    fn recount_usage(&mut self) {
        self.usage.clear();
        for (key, session) in &self.st.sessions {
            let u = self.usage.entry(key.gateway).or_default();
            u.sessions += 1;
            u.bytes += session.heap_bytes() as u64;
        }
    }

    /// Counters and sizes for `/metrics`.
    pub fn stats(&self) -> EngineStats {
        let minute_buckets: usize = self.st.series.values().map(Series::minute_count).sum();
        let hour_buckets: usize = self.st.series.values().map(Series::hour_count).sum();
        let key =
            |k: &SeriesKey| std::mem::size_of_val(k) + k.model.capacity() + k.region.capacity();
        let series_bytes: usize = map_bytes(&self.st.series, key, Bucket::heap_bytes);
        let gateway_bytes =
            map_bytes(&self.st.gateways, |(k, g)| key(k) + std::mem::size_of_val(g), |_| 0);
        let cohort_bytes = map_bytes(
            &self.st.cohorts,
            |(o, m)| std::mem::size_of_val(o) + std::mem::size_of_val(m) + m.capacity(),
            Bucket::heap_bytes,
        );
        let self_bytes =
            map_bytes(&self.st.self_series, std::mem::size_of_val, |b: &SelfBucket| {
                b.fps.heap_bytes()
            });
        let session_bytes: u64 = self.usage.values().map(|u| u.bytes).sum();
        let approx =
            series_bytes + gateway_bytes + cohort_bytes + self_bytes + session_bytes as usize;
        EngineStats {
            sealed_end_ms: self.st.sealed_end_ms,
            open_sessions: self.st.sessions.len() as u64,
            open_attempts: self.st.sessions.values().map(|s| s.attempts.len() as u64).sum(),
            series_keys: self.st.series.len() as u64,
            gateway_keys: self.st.gateways.len() as u64,
            minute_buckets: minute_buckets as u64,
            hour_buckets: hour_buckets as u64,
            approx_state_bytes: approx as u64,
            listed_orchestrators: self.st.orchestrators.len() as u64,
            principals: self.usage.iter().map(|(a, u)| (*a, (u.sessions, u.bytes))).collect(),
            counters: self.st.counters.clone(),
        }
    }

    /// Drops cached benchmarks (they are also dropped on every seal);
    /// benchmarks use it to time uncached queries.
    pub fn invalidate_cache(&self) {
        self.clear_cache();
    }

    fn clear_cache(&self) {
        if let Ok(mut c) = self.cache.lock() {
            *c = Cache::default();
        }
    }
}
