//! `Engine::restore`: SLA engine snapshot bytes (a checkpoint's state).
//!
//! Restoring packs every sealed bucket (`sla/src/compact.rs`). Asserts, for
//! every accepted snapshot: what the engine saves reads back, and saves the
//! same bytes again (packing loses nothing a snapshot can say); answering
//! a query over it does not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_sla::{Engine, Limits, Policy, Query, Registry, Window};

fuzz_target!(|data: &[u8]| {
    let restore = |bytes: &[u8]| {
        Engine::restore(Policy::default_v1(), Registry::default_v1(), Limits::default(), bytes)
    };
    let Ok(engine) = restore(data) else { return };
    let saved = engine.snapshot();
    let again = restore(&saved).expect("an engine's own snapshot is rejected");
    assert_eq!(again.snapshot(), saved, "a second round trip changed the bytes");
    for window in [Window::H1, Window::H24] {
        let _ = engine.orchestrators(&Query { window, ..Query::default() });
    }
});
