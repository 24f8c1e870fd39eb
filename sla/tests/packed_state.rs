//! Sealed buckets are held packed (`sla/src/compact.rs`). Packing must not
//! change a byte of what the engine says: these hashes were recorded with
//! the engine that held every bucket as a struct (commit 743f79b), over the
//! same traffic, and a restored engine must say the same again.

use keccak_asm::Keccak256;
use vouch_delegation::Role;
use vouch_delegation::authority::AuthorityView;
use vouch_sla::{BUILTIN_POLICIES, Engine, Limits, Policy, Query, Registry, Window};
use vouch_testkit::authority::entry;
use vouch_testkit::traffic::{BASE, MODELS, REGIONS, gateway, orch, session};

const ORCHS: usize = 20;
const HOURS: u64 = 30;

/// (policy, snapshot hash, answers hash) recorded before packing.
const GOLDEN: [(&str, &str, &str); 3] = [
    (
        "sla-policy-v1",
        "4e7779d29ffb9dd00976f00d0476a0448d960db6943ae30b56cb9d3c88bfa781",
        "7bdac33a2809f9a30de5653cb6234e3b28e55a20486df7e6386cca73b7ea4408",
    ),
    (
        "sla-policy-v2",
        "f90e89bebe1152386fd9a6b4f1f99106fa256a562b3ccd67424dde0d9847115c",
        "8fd1b5cda87817edc054b153cf3428bbb564b5094a69f484dbb2c457273f61cf",
    ),
    (
        "naap-quality-benchmark-v1",
        "742be4498608d15e17d28af0f911588f2364a8694a3feaa904aba75780484d2b",
        "d6cc47028ccc45580fdaba14fcb08d92e07943f3015fde1f0bf23d98f47486a3",
    ),
];

/// 30 hours of one session per (orchestrator, model, region) per hour,
/// sealed at uneven points so that hours complete in the middle of seals.
fn engine(policy: &Policy) -> Engine {
    let mut engine = Engine::new(policy.clone(), Registry::default_v1(), Limits::default());
    let entries = (0..ORCHS).map(|o| entry(orch(o), Role::Orchestrator));
    engine.set_authority(&AuthorityView::new("packed", entries));
    let grace = engine.policy().ingest.seal_grace_ms;
    for h in 0..HOURS {
        let hour = BASE + h * 3_600_000;
        let mut k = 0u64;
        for o in 0..ORCHS {
            for model in &MODELS[..3] {
                for region in &REGIONS[..3] {
                    k += 1;
                    let t = hour + (k % 50) * 60_000 + (k * 7919) % 60_000;
                    let batch =
                        session(&format!("{h:02x}{k:06x}"), orch(o), model, region, t, k + h);
                    engine.ingest(&gateway(region), t + 46_000, &batch);
                }
            }
        }
        engine.seal(hour + 3_600_000 + grace - 1_200_000 * (h % 3));
    }
    engine.seal(BASE + HOURS * 3_600_000 + 600_000 + grace);
    engine
}

fn answers(engine: &Engine) -> String {
    let mut out = String::new();
    for window in [Window::H1, Window::H24, Window::D7] {
        let q = Query { window, ..Query::default() };
        out += &serde_json::to_string(&engine.orchestrators(&q)).unwrap_or_default();
        out += &serde_json::to_string(&engine.regions()).unwrap_or_default();
    }
    out
}

fn hash(bytes: &[u8]) -> String {
    hex::encode(Keccak256::digest(bytes))
}

#[test]
fn packing_changes_no_byte_of_snapshots_or_answers() {
    for ((name, _), (golden_name, snapshot, said)) in BUILTIN_POLICIES.iter().zip(GOLDEN) {
        assert_eq!(*name, golden_name);
        let Some(policy) = Policy::builtin(name) else { panic!("{name} is built in") };
        let live = engine(&policy);
        let bytes = live.snapshot();
        assert_eq!(hash(&bytes), snapshot, "{name}: snapshot bytes");
        assert_eq!(hash(answers(&live).as_bytes()), said, "{name}: answers");
        let restored =
            match Engine::restore(policy, Registry::default_v1(), Limits::default(), &bytes) {
                Ok(e) => e,
                Err(e) => panic!("{name}: restore: {e}"),
            };
        assert_eq!(restored.snapshot(), bytes, "{name}: a restored engine saves the same bytes");
        assert_eq!(answers(&restored), answers(&live), "{name}: and answers the same");
    }
}

#[test]
fn a_sealed_hour_of_one_key_costs_tens_of_bytes() {
    let Some(policy) = Policy::builtin("sla-policy-v2") else { panic!("built in") };
    let stats = engine(&policy).stats();
    let keys = (ORCHS * 3 * 3) as u64;
    // Hours are kept for the policy's retention: all 30 here.
    assert_eq!(stats.hour_buckets, keys * HOURS);
    let per_key_hour = stats.approx_state_bytes / stats.hour_buckets;
    // As structs in maps (before packing) this was ~450 bytes, gateway
    // buckets included.
    assert!(per_key_hour <= 100, "{per_key_hour} bytes per key-hour");
}

/// Writes the seed of the `sla_snapshot` fuzz target (a small engine's
/// snapshot under the default policy): `cargo test -p vouch-sla --test
/// packed_state -- --ignored write_fuzz_seed`.
#[test]
#[ignore = "writes fuzz/seeds/sla_snapshot/; run by hand when the snapshot format changes"]
fn write_fuzz_seed() {
    let (engine, _) = vouch_testkit::traffic::big_engine(2, 1, 2, 3);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/sla_snapshot");
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("small-engine.cbor"), engine.snapshot()));
    assert!(written.is_ok(), "{written:?}");
}
