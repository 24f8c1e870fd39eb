//! Any arrival order of the same events gives byte-identical answers, and a
//! checkpoint restores to the same answers, under every policy that ships.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use vouch_schema::Event;
use vouch_sla::{Engine, Limits, Policy, Query, Registry, Window};
use vouch_testkit::sla::{
    self, Profile, T0, addr, error, gateway, ingest_all, seal_through, session,
};

fn build(specs: &[(u8, u8, u64, usize)]) -> Vec<Event> {
    let mut out = Vec::new();
    for (i, &(profile, orch, offset_s, n)) in specs.iter().enumerate() {
        let p = [Profile::Healthy, Profile::Slow, Profile::Flaky, Profile::Swapping]
            [usize::from(profile)];
        let rid = format!("r{i:07x}");
        let t = T0 + offset_s * 1_000;
        out.extend(session(&rid, addr(orch), addr(orch % 5 + 1), t, p, n));
        if n == 1 {
            out.push(error(&rid, t + 20_000, "trickle subscribe: connection reset"));
        }
    }
    out
}

/// Every answer the engine gives, serialized.
fn answers(engine: &Engine) -> Vec<String> {
    let mut out = Vec::new();
    for w in [Window::M5, Window::H1, Window::H24] {
        let q = Query { window: w, ..Query::default() };
        out.push(serde_json::to_string(&engine.orchestrators(&q)).unwrap());
        out.push(serde_json::to_string(&engine.demand(&q)).unwrap());
        out.push(serde_json::to_string(&engine.aggregated_stats(&q)).unwrap());
        for o in 1..=5 {
            out.push(serde_json::to_string(&engine.orchestrator(&addr(o), &q, true)).unwrap());
        }
    }
    out.push(serde_json::to_string(&engine.regions()).unwrap());
    out
}

fn run(events: &[Event]) -> Engine {
    run_under(Policy::default_v1(), events)
}

fn run_under(policy: Policy, events: &[Event]) -> Engine {
    let mut e = sla::engine_with(policy, Limits::default(), (1..100).map(addr));
    ingest_all(&mut e, &gateway(), events);
    seal_through(&mut e, T0 + 1_000_000);
    e
}

/// Every policy that ships (`sla-policy-v1`, `-v2`, `naap-quality-benchmark-v1`).
fn policies() -> Vec<Policy> {
    vouch_sla::BUILTIN_POLICIES.iter().map(|(name, _)| Policy::builtin(name).unwrap()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn any_order_gives_identical_answers(
        (events, shuffled) in prop::collection::vec((0u8..4, 1u8..6, 0u64..600, 0usize..6), 1..14)
            .prop_flat_map(|specs| {
                let events = build(&specs);
                (Just(events.clone()), Just(events).prop_shuffle())
            }),
        duplicates in 0usize..4,
    ) {
        for policy in policies() {
            let a = run_under(policy.clone(), &events);
            // Re-deliveries of events change nothing either.
            let mut twice = shuffled.clone();
            twice.extend(shuffled.iter().take(duplicates).cloned());
            let b = run_under(policy.clone(), &twice);
            prop_assert_eq!(answers(&a), answers(&b), "{}", policy.name());
            // Without re-deliveries even the state bytes (event counters included) match.
            prop_assert_eq!(a.snapshot(), run_under(policy.clone(), &shuffled).snapshot());

            let restored = Engine::restore(
                policy.clone(), Registry::default_v1(), Limits::default(), &a.snapshot()).unwrap();
            prop_assert_eq!(answers(&a), answers(&restored));
            prop_assert_eq!(restored.snapshot(), a.snapshot());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Verifiers seal on their own clocks: one seals minute by minute, one
    /// catches up many minutes in one seal after a restart. With the same
    /// events in hand before each minute seals, the answers are the same.
    #[test]
    fn how_seals_are_batched_changes_nothing(
        specs in prop::collection::vec((0u8..4, 1u8..6, 0u64..600, 0usize..6), 1..14),
        cuts in prop::collection::vec(0u64..1_000, 0..6),
    ) {
        let events = build(&specs);
        let mut cuts = cuts;
        cuts.sort_unstable();
        for policy in policies() {
            let once = run_under(policy.clone(), &events);
            let mut stepped = sla::engine_with(policy, Limits::default(), (1..100).map(addr));
            ingest_all(&mut stepped, &gateway(), &events);
            for &c in &cuts {
                seal_through(&mut stepped, T0 + c * 1_000);
            }
            seal_through(&mut stepped, T0 + 1_000_000);
            prop_assert_eq!(answers(&once), answers(&stepped));
        }
    }
}

#[test]
fn checkpoint_mid_stream_then_replaying_the_tail_matches_one_run() {
    let events =
        build(&[(0, 1, 0, 0), (1, 2, 30, 1), (2, 3, 60, 2), (3, 4, 90, 3), (0, 1, 400, 4)]);
    let whole = run(&events);
    // The events of the first 200 s, a seal of the minutes before T0 + 120 s
    // (whose decisions need only those events), a checkpoint, then the rest.
    let mut first = sla::engine();
    let (head, tail): (Vec<Event>, Vec<Event>) =
        events.iter().cloned().partition(|e| e.ts.unwrap() < T0 + 200_000);
    ingest_all(&mut first, &gateway(), &head);
    seal_through(&mut first, T0 + 150_000);
    assert_eq!(first.stats().sealed_end_ms, T0 + 120_000);
    let bytes = first.snapshot();
    let mut second =
        Engine::restore(Policy::default_v1(), Registry::default_v1(), Limits::default(), &bytes)
            .unwrap();
    ingest_all(&mut second, &gateway(), &tail);
    seal_through(&mut second, T0 + 1_000_000);
    assert_eq!(answers(&whole), answers(&second));
}

#[test]
fn a_checkpoint_under_another_policy_is_refused() {
    let bytes = run(&build(&[(0, 1, 0, 0)])).snapshot();
    let other = Policy::from_toml(
        &vouch_sla::DEFAULT_POLICY_TOML.replace("min_attempts = 10", "min_attempts = 5"),
    )
    .unwrap();
    let err =
        Engine::restore(other, Registry::default_v1(), Limits::default(), &bytes).err().unwrap();
    assert!(err.to_string().contains("policy hash"), "{err}");
    assert!(
        Engine::restore(Policy::default_v1(), Registry::default_v1(), Limits::default(), b"junk")
            .is_err()
    );
}
