//! The SLA engine's test world: engines whose authority view lists the
//! orchestrators a test names, observers, go-livepeer-shaped events (the
//! data of [`crate::livepeer`]) and whole sessions of orchestrators that
//! behave in known ways, and a v1 policy with timings short enough for an
//! end-to-end test.

use serde_json::json;
use vouch_delegation::Role;
use vouch_delegation::authority::AuthorityView;
use vouch_schema::{Address, Event};
use vouch_sla::{Engine, Limits, Observer, Policy, Registry};

use crate::authority::entry;
use crate::livepeer::{self, PIPELINE};

/// Base time of generated traffic: 2026-11-26T10:00:00Z.
pub const T0: u64 = 1_795_687_200_000;

/// The address whose 20 bytes are all `n`.
pub fn addr(n: u8) -> Address {
    Address([n; 20])
}

/// Principal `addr(n)` observing as `role` from FRA, through delegate `addr(n + 100)`.
pub fn observer(n: u8, role: Role) -> Observer {
    Observer {
        principal: addr(n),
        role,
        delegate: addr(n.wrapping_add(100)),
        region: "FRA".to_owned(),
    }
}

/// The gateway every engine test observes through (`addr(200)`).
pub fn gateway() -> Observer {
    observer(200, Role::Gateway)
}

/// An engine whose recorded authority view lists `orchestrators`.
pub fn engine_listing(orchestrators: impl IntoIterator<Item = Address>) -> Engine {
    engine_with(Policy::default_v1(), Limits::default(), orchestrators)
}

/// An engine under `policy` and `limits` whose view lists `orchestrators`.
pub fn engine_with(
    policy: Policy,
    limits: Limits,
    orchestrators: impl IntoIterator<Item = Address>,
) -> Engine {
    let mut engine = Engine::new(policy, Registry::default_v1(), limits);
    let entries = orchestrators.into_iter().map(|a| entry(a, Role::Orchestrator));
    engine.set_authority(&AuthorityView::new("test", entries));
    engine
}

/// An engine listing `addr(1)` to `addr(99)`, every orchestrator the tests name.
pub fn engine() -> Engine {
    engine_listing((1..100).map(addr))
}

/// A `stream_trace` event of request `rid` in FRA, naming `orch` if any.
pub fn trace(subtype: &str, rid: &str, orch: Option<Address>, ts: u64) -> Event {
    let address = orch.map_or(String::new(), |a| a.to_hex());
    livepeer::event("stream_trace", ts, livepeer::trace_data("FRA", subtype, rid, &address))
}

/// The gateway swapping request `rid` away from `orch`, saying why.
pub fn swap(rid: &str, orch: Address, ts: u64, message: &str) -> Event {
    livepeer::event(
        "stream_trace",
        ts,
        json!({"type": "orchestrator_swap", "request_id": rid, "pipeline": PIPELINE,
               "gateway_region": "FRA", "message": message,
               "orchestrator_info": {"address": orch.to_hex(), "url": ""}}),
    )
}

/// A runner status sample of `orch` in `state`, relayed from FRA.
pub fn status(rid: &str, orch: Address, ts: u64, fps: f64, state: &str) -> Event {
    let data = livepeer::status_data("FRA", rid, &orch.to_hex(), ts, fps, state);
    livepeer::event("ai_stream_status", ts, data)
}

/// A runner error of request `rid`, relayed from FRA.
pub fn error(rid: &str, ts: u64, message: &str) -> Event {
    livepeer::event(
        "ai_stream_events",
        ts,
        json!({"type": "error", "request_id": rid, "pipeline": PIPELINE, "message": message,
               "gateway_region": "FRA"}),
    )
}

/// How an orchestrator behaves in generated sessions.
#[derive(Debug, Clone, Copy)]
pub enum Profile {
    /// Fast first frame, 30 fps.
    Healthy,
    /// Slow first frame, 18 fps.
    Slow,
    /// Healthy, but every 3rd session fails with a runner error before output.
    Flaky,
    /// First frame, then swapped away (too many inflight segments) before playable.
    Swapping,
}

/// Session number `n` of `profile` on `orch` starting at `t`; `backup`
/// takes over after a swap.
pub fn session(
    rid: &str,
    orch: Address,
    backup: Address,
    t: u64,
    profile: Profile,
    n: usize,
) -> Vec<Event> {
    let mut ev = vec![trace("gateway_receive_stream_request", rid, None, t)];
    ev.push(trace("gateway_send_first_ingest_segment", rid, Some(orch), t + 100));
    let healthy = |ev: &mut Vec<Event>, orch: Address, t: u64, ptff: u64, fps: f64| {
        ev.push(trace("gateway_receive_first_processed_segment", rid, Some(orch), t + ptff));
        ev.push(trace("gateway_receive_few_processed_segments", rid, Some(orch), t + ptff + 500));
        for i in 1..=6 {
            ev.push(status(rid, orch, t + ptff + i * 10_000, fps, "ONLINE"));
        }
    };
    match profile {
        Profile::Healthy => healthy(&mut ev, orch, t, 800 + (n as u64 % 5) * 10, 30.0),
        Profile::Slow => healthy(&mut ev, orch, t, 4_000 + (n as u64 % 5) * 10, 18.0),
        Profile::Flaky if n % 3 == 2 => {
            ev.push(status(rid, orch, t + 4_000, 0.0, "LOADING"));
            ev.push(error(rid, t + 5_000, "runner crashed: CUDA out of memory"));
        }
        Profile::Flaky => healthy(&mut ev, orch, t, 850 + (n as u64 % 5) * 10, 30.0),
        Profile::Swapping => {
            ev.push(trace("gateway_receive_first_processed_segment", rid, Some(orch), t + 1_500));
            ev.push(status(rid, orch, t + 5_000, 5.0, "DEGRADED_INFERENCE"));
            ev.push(swap(rid, orch, t + 8_000, "too many inflight segments"));
            ev.push(trace("gateway_send_first_ingest_segment", rid, Some(backup), t + 8_200));
            healthy(&mut ev, backup, t + 8_200, 800, 30.0);
        }
    }
    ev.push(trace("gateway_ingest_stream_closed", rid, None, t + 90_000));
    ev
}

/// Ingests events one batch each, envelope time one second after the
/// event; every event must count (accepted or self-reported).
pub fn ingest_all(engine: &mut Engine, obs: &Observer, events: &[Event]) {
    for e in events {
        let ts = e.ts.unwrap();
        let r = engine.ingest(obs, ts + 1_000, std::slice::from_ref(e));
        assert_eq!(r.accepted + r.self_reported, 1, "{r:?} for {e:?}");
    }
}

/// Seals everything up to `t` plus the grace period.
pub fn seal_through(engine: &mut Engine, t: u64) {
    let grace = engine.policy().ingest.seal_grace_ms;
    engine.seal(t + grace);
}

/// v1's policy (TOML) with timings short enough for an end-to-end test:
/// event lag and seal grace 20 s, startup horizon 5 s (formulas and
/// targets unchanged).
pub fn fast_policy() -> String {
    fast(vouch_sla::DEFAULT_POLICY_TOML)
}

/// The built-in policy `name` (e.g. `naap-quality-benchmark-v1`) with the
/// timings of [`fast_policy`].
pub fn fast_builtin(name: &str) -> String {
    fast(Policy::builtin_text(name).expect("a built-in policy"))
}

fn fast(text: &str) -> String {
    let policy = text
        .replace("event_lag_ms = 300000", "event_lag_ms = 20000")
        .replace("seal_grace_ms = 360000", "seal_grace_ms = 20000")
        .replace("startup_horizon_ms = 120000", "startup_horizon_ms = 5000");
    for key in ["event_lag_ms = 20000", "seal_grace_ms = 20000", "startup_horizon_ms = 5000"] {
        assert!(policy.contains(key), "the policy's timings moved: {key} not set");
    }
    policy
}
