//! `Event::from_kafka_json`: go-livepeer's Kafka JSON (the adapter), and
//! what the SLA engine reads out of an event's data (status fields, edges,
//! `start_time`, capabilities, payment amounts).
//!
//! The input is parsed as JSON (an array is read element by element, like the
//! sample file). Asserts, for every accepted event: it passes `validate`, its
//! CBOR round-trips (decode → encode → decode), and `to_kafka_json` →
//! `from_kafka_json` gives the same event back. Then the accepted events go,
//! as a gateway's observations, into an engine under every policy that ships
//! (every address the events name listed as an orchestrator), which seals
//! and answers without panicking.
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use vouch_delegation::Role;
use vouch_delegation::authority::{AuthorityView, PrincipalEntry};
use vouch_schema::{Address, Event};
use vouch_sla::{BUILTIN_POLICIES, Engine, Limits, Observer, Policy, Query, Registry, Window};

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<Value>(data) else { return };
    let events: Vec<Event> = match &json {
        Value::Array(items) => items.iter().filter_map(check).collect(),
        other => check(other).into_iter().collect(),
    };
    if !events.is_empty() {
        score(&events);
    }
});

/// Every string in `v` that reads as an address.
fn addresses(v: &Value, out: &mut BTreeSet<Address>) {
    match v {
        Value::String(s) => out.extend(s.parse::<Address>()),
        Value::Array(items) => items.iter().for_each(|i| addresses(i, out)),
        Value::Object(map) => map.values().for_each(|i| addresses(i, out)),
        _ => {}
    }
}

fn score(events: &[Event]) {
    let mut listed = BTreeSet::new();
    for e in events {
        addresses(&e.data, &mut listed);
    }
    let view = AuthorityView::new(
        "fuzz",
        listed.iter().map(|a| PrincipalEntry {
            address: *a,
            roles: BTreeSet::from([Role::Orchestrator]),
            stake: None,
        }),
    );
    let gateway = Observer {
        principal: Address([0xee; 20]),
        role: Role::Gateway,
        delegate: Address([0xef; 20]),
        region: "FRA".into(),
    };
    let newest = events.iter().filter_map(|e| e.ts).max().unwrap_or(0);
    for (name, _) in BUILTIN_POLICIES {
        let policy = Policy::builtin(name).expect("built-in policies load");
        let mut forward = Engine::new(policy, Registry::default_v1(), Limits::default());
        forward.set_authority(&view);
        for e in events {
            let ts = e.ts.unwrap_or(0);
            forward.ingest(&gateway, ts.saturating_add(1_000), std::slice::from_ref(e));
        }
        forward.seal(newest.saturating_add(10 * 86_400_000));
        for w in [Window::H1, Window::D7] {
            let q = Query { window: w, ..Query::default() };
            let _ = serde_json::to_vec(&forward.orchestrators(&q));
            let _ = serde_json::to_vec(&forward.demand(&q));
        }
        for a in &listed {
            let _ = serde_json::to_vec(&forward.capabilities(a, true));
        }
    }
}

fn check(json: &Value) -> Option<Event> {
    let event = Event::from_kafka_json(json).ok()?;
    assert_eq!(event.validate(), Ok(()), "the adapter built an invalid event");
    let bytes = event.encode();
    assert_eq!(Event::decode(&bytes).as_ref(), Ok(&event), "CBOR round trip");
    assert_eq!(Event::decode(&bytes).map(|e| e.encode()), Ok(bytes));
    let kafka = event.to_kafka_json();
    assert_eq!(Event::from_kafka_json(&kafka).as_ref(), Ok(&event), "Kafka JSON round trip");
    Some(event)
}
