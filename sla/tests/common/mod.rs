//! Builders of go-livepeer-shaped events for the SLA engine's tests.
#![allow(dead_code, clippy::unwrap_used)]

use serde_json::{Value as Json, json};
use vouch_delegation::Role;
use vouch_delegation::authority::{AuthorityView, PrincipalEntry};
use vouch_schema::{Address, Event};
use vouch_sla::{Engine, Limits, Observer, Policy, Registry};

/// Base time of generated traffic: 2026-11-26T10:00:00Z.
pub(crate) const T0: u64 = 1_795_687_200_000;

pub(crate) fn addr(n: u8) -> Address {
    Address([n; 20])
}

pub(crate) fn observer(n: u8, role: Role) -> Observer {
    Observer {
        principal: addr(n),
        role,
        delegate: addr(n.wrapping_add(100)),
        region: "FRA".to_owned(),
    }
}

/// An engine whose recorded authority view lists `orchestrators`.
pub(crate) fn engine_listing(orchestrators: impl IntoIterator<Item = Address>) -> Engine {
    engine_with(Policy::default_v1(), Limits::default(), orchestrators)
}

/// An engine under `policy` and `limits` whose view lists `orchestrators`.
pub(crate) fn engine_with(
    policy: Policy,
    limits: Limits,
    orchestrators: impl IntoIterator<Item = Address>,
) -> Engine {
    let mut engine = Engine::new(policy, Registry::default_v1(), limits);
    let entries = orchestrators.into_iter().map(|address| PrincipalEntry {
        address,
        roles: [Role::Orchestrator].into(),
        stake: None,
    });
    engine.set_authority(&AuthorityView::new("test", entries));
    engine
}

/// An engine listing `addr(1)` to `addr(99)`, every orchestrator the tests name.
pub(crate) fn engine() -> Engine {
    engine_listing((1..100).map(addr))
}

pub(crate) fn gateway() -> Observer {
    observer(200, Role::Gateway)
}

fn event(family: &str, mut data: Json, ts: u64) -> Event {
    data["timestamp"] = json!(ts);
    Event::from_type_and_data(family, data, ts).unwrap()
}

pub(crate) fn trace(subtype: &str, rid: &str, orch: Option<Address>, ts: u64) -> Event {
    let address = orch.map_or(String::new(), |a| a.to_hex());
    event(
        "stream_trace",
        json!({"type": subtype, "request_id": rid, "stream_id": format!("s-{rid}"), "pipeline_id": "",
               "pipeline": "streamdiffusion", "gateway_region": "FRA",
               "orchestrator_info": {"address": address, "url": ""}}),
        ts,
    )
}

pub(crate) fn swap(rid: &str, orch: Address, ts: u64, message: &str) -> Event {
    event(
        "stream_trace",
        json!({"type": "orchestrator_swap", "request_id": rid, "pipeline": "streamdiffusion",
               "gateway_region": "FRA", "message": message,
               "orchestrator_info": {"address": orch.to_hex(), "url": ""}}),
        ts,
    )
}

pub(crate) fn status(rid: &str, orch: Address, ts: u64, fps: f64, state: &str) -> Event {
    event(
        "ai_stream_status",
        json!({"type": "status", "request_id": rid, "pipeline": "streamdiffusion", "state": state,
               "gateway_region": "FRA",
               "inference_status": {"fps": fps, "last_output_time": ts},
               "input_status": {"fps": 30.0},
               "orchestrator_info": {"address": orch.to_hex(), "url": ""}}),
        ts,
    )
}

pub(crate) fn error(rid: &str, ts: u64, message: &str) -> Event {
    event(
        "ai_stream_events",
        json!({"type": "error", "request_id": rid, "pipeline": "streamdiffusion", "message": message,
               "gateway_region": "FRA"}),
        ts,
    )
}

/// How an orchestrator behaves in generated sessions.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Profile {
    /// Fast first frame, 30 fps.
    Healthy,
    /// Slow first frame, 18 fps.
    Slow,
    /// Healthy, but every 3rd session fails with a runner error before output.
    Flaky,
    /// First frame, then swapped away (too many inflight segments) before playable.
    Swapping,
}

/// One session of `profile` on `orch` starting at `t`; `backup` takes over after a swap.
pub(crate) fn session(
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

/// Ingests events one batch each, envelope time one second after the event.
pub(crate) fn ingest_all(engine: &mut Engine, obs: &Observer, events: &[Event]) {
    for e in events {
        let ts = e.ts.unwrap();
        let r = engine.ingest(obs, ts + 1_000, std::slice::from_ref(e));
        assert_eq!(r.accepted + r.self_reported, 1, "{r:?} for {e:?}");
    }
}

/// Seals everything up to `t` plus the grace period.
pub(crate) fn seal_through(engine: &mut Engine, t: u64) {
    let grace = engine.policy().ingest.seal_grace_ms;
    engine.seal(t + grace);
}
