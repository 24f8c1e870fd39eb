//! Verifiers converge and prove it, with real `vouch node` processes on
//! loopback and the demo's simulated network publishing through the SDK:
//!
//! - one verifier is killed with SIGKILL for 90 s while publishing goes on;
//!   restarted, it holds its seals, fetches what it missed by sync, and
//!   then publishes checkpoints identical to the other two for every
//!   minute it missed, and serves the same scores;
//! - `vouch prove` gives an inclusion proof, from the restarted verifier's
//!   log, of an envelope it only ever got by sync, and an independent
//!   implementation (Node's SHA-256 and ethers, `interop/prove-verify.mjs`)
//!   verifies it against a root another verifier signed;
//! - a verifier built with the test-only `fault-injection` feature that
//!   leaves one principal's envelopes out is named by the others (the
//!   minute, in `/v1/checkpoints` and a metric), and `vouch replay
//!   --checkpoints` of its log against an honest verifier's checkpoints
//!   names the omission.
//!
//! Waits are bounded; nothing asserts timing.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;
use vouch_schema::Envelope;
use vouch_schema::merkle::envelope_id;
use vouch_testkit::cli::Vouch;
use vouch_testkit::node::{NodeProcess, count_in};
use vouch_testkit::now_ms;
use vouch_testkit::process::http_get;
use vouch_verifier::demo::{Demo, DemoOptions};
use vouch_verifier::store::{LogReader, RecordKind};

const VOUCH: Vouch = Vouch::at(env!("CARGO_BIN_EXE_vouch"));

/// How long the killed verifier stays down.
const DOWN: Duration = Duration::from_secs(90);

/// The longest any one wait may take (a minute to seal, its grace, a slow machine).
const LIMIT: Duration = Duration::from_secs(240);

/// Sets the flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn minute(ms: u64) -> u64 {
    ms / 60_000
}

fn host(base: &str) -> &str {
    base.strip_prefix("http://").unwrap().trim_end_matches('/')
}

fn get_json(base: &str, path: &str) -> Value {
    let (status, body) = http_get(host(base), path);
    assert_eq!(status, 200, "{base}{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// A counter or gauge from `/metrics` (0 when absent).
fn metric(base: &str, name: &str) -> u64 {
    let (_, body) = http_get(host(base), "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// `/v1/checkpoints` over minutes `[from, to)`.
fn checkpoints(base: &str, from: u64, to: u64) -> Value {
    get_json(base, &format!("/v1/checkpoints?from={from}&to={to}"))
}

/// The verifier's own checkpoint of `m`: (envelopes, root, buckets).
fn own(answer: &Value, m: u64) -> Option<(u64, String, String)> {
    let row = answer["minutes"].as_array()?.iter().find(|r| r["minute"] == m)?;
    let own = &row["own"];
    Some((
        own["envelopes"].as_u64()?,
        own["root"].as_str()?.to_owned(),
        own["buckets"].as_str()?.to_owned(),
    ))
}

fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The end of the newest minute `base` has sealed.
fn sealed_end(base: &str) -> u64 {
    metric(base, "vouch_sla_sealed_end_ms")
}

fn kill9(pid: u32) {
    let status = Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
    assert!(status.success());
}

/// `vouch node --config FILE`, announced.
fn restart(config: &Path) -> NodeProcess {
    NodeProcess::spawn_args(VOUCH, &["--config", config.to_str().unwrap()])
}

/// Ids of logged envelopes stamped in minute `m`.
fn logged_ids(log: &Path, m: u64) -> Vec<[u8; 32]> {
    LogReader::open(log, 0)
        .unwrap()
        .map(|r| r.unwrap())
        .filter(|r| r.kind == RecordKind::Envelope)
        .filter(|r| minute(Envelope::decode(&r.payload).unwrap().id.timestamp) == m)
        .map(|r| envelope_id(&r.payload))
        .collect()
}

#[test]
fn verifiers_converge_after_a_crash_and_name_one_that_hides_a_principal() {
    let node_modules = vouch_testkit::repo_root().join("interop/node_modules/ethers");
    assert!(
        node_modules.is_dir(),
        "interop/node_modules is missing: run `npm ci --prefix interop`"
    );
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut demo = Demo::prepare(DemoOptions {
        dir: run.clone(),
        vouch: VOUCH.path().into(),
        orchestrators: 6,
        verifiers: 3,
        seed: 13,
        session_interval: Duration::from_millis(250),
        duration: None,
    })
    .unwrap();
    let stop = AtomicBool::new(false);
    demo.start_verifiers(&stop, |_| {}).unwrap();
    let mut http: Vec<String> = demo.verifiers().iter().map(|v| v.http.clone()).collect();
    let pids: Vec<u32> = demo.verifiers().iter().map(|v| v.pid()).collect();
    let configs: Vec<_> = demo.verifiers().iter().map(|v| v.config.clone()).collect();
    let signers: Vec<String> =
        demo.network().verifiers.iter().map(|v| v.principal().to_hex()).collect();
    let hot_keys: Vec<String> =
        demo.network().verifiers.iter().map(|v| v.certificate.delegate.to_hex()).collect();
    let hidden = demo.network().gateways[0].principal();

    std::thread::scope(|scope| {
        let simulation = scope.spawn(|| demo.simulate(&stop, |_| {}));
        // A failed assertion must stop the simulation too, or the scope waits for it.
        let _stop = StopOnDrop(&stop);
        // Traffic reaches all three.
        for base in &http {
            wait_for("envelopes on every verifier", || {
                let s = get_json(base, "/v1/ingest/stats");
                (s["accepted"].as_u64().unwrap() > 50).then_some(())
            });
        }

        // Verifier 3 dies for DOWN while publishing goes on, then comes back.
        let killed_at = now_ms();
        kill9(pids[2]);
        std::thread::sleep(DOWN);
        let third = restart(&configs[2]);
        http[2] = format!("http://{}", third.host_port());
        let restarted_at = now_ms();
        let stats = wait_for("the restarted verifier to catch up", || {
            let s = get_json(&http[2], "/v1/ingest/stats");
            (s["catching_up"] == false).then_some(s)
        });
        let fetched = count_in(&stats, "synced", "accept", "accepted")
            + count_in(&stats, "synced", "accept", "late");
        assert!(fetched > 0, "nothing fetched by sync: {stats}");

        // Every minute it missed, sealed everywhere: the same checkpoint.
        let (from, to) = (minute(killed_at), minute(restarted_at) + 1);
        for base in &http {
            wait_for("the missed minutes sealed", || {
                (sealed_end(base) >= to * 60_000).then_some(())
            });
        }
        // A seal moves `sealed_end` before it commits and makes that
        // minute's own checkpoint: wait for the checkpoints themselves.
        let answers: Vec<Value> = http
            .iter()
            .map(|b| {
                wait_for("own checkpoints of the missed minutes", || {
                    let a = checkpoints(b, from, to);
                    (from..to).all(|m| own(&a, m).is_some()).then_some(a)
                })
            })
            .collect();
        for m in from..to {
            let theirs: Vec<_> = answers.iter().map(|a| own(a, m)).collect();
            let first = theirs[0].clone().unwrap_or_else(|| panic!("no checkpoint of {m}"));
            assert!(first.0 > 0, "minute {m} had no traffic");
            for (i, t) in theirs.iter().enumerate() {
                assert_eq!(t.as_ref(), Some(&first), "verifier {} differs on minute {m}", i + 1);
            }
        }
        // The others hold its (late) checkpoints of those minutes, and agree.
        for base in &http[..2] {
            wait_for("the restarted verifier's checkpoints on its peers", || {
                let a = checkpoints(base, from, to);
                let rows = a["minutes"].as_array().unwrap();
                let held = rows.iter().all(|r| {
                    r["peers"].as_array().unwrap().iter().any(|p| {
                        p["verifier"].as_str() == Some(signers[2].as_str()) && p["agrees"] == true
                    })
                });
                (held && rows.len() as u64 == to - from).then_some(())
            });
            assert_eq!(checkpoints(base, from, to)["disagreements"], Value::Array(Vec::new()));
            assert_eq!(metric(base, "vouch_checkpoints_disagreements_total"), 0);
        }

        // The same scores, once all three serve the same closed window.
        let query = "/v1/sla/orchestrators?window=5m";
        wait_for("the same scores everywhere", || {
            let a: Vec<Value> = http.iter().map(|b| get_json(b, query)).collect();
            let ends: Vec<&Value> = a.iter().map(|x| &x["window"]["end_ms"]).collect();
            if !ends.iter().all(|e| *e == ends[0]) {
                return None;
            }
            for (i, x) in a.iter().enumerate() {
                assert_eq!(x["orchestrators"], a[0]["orchestrators"], "verifier {}", i + 1);
            }
            Some(())
        });

        // An envelope the restarted verifier only got by sync, proved from
        // its log, checked independently against verifier 1's signed root.
        let missed = from + 1;
        let log3 = run.join("verifier-3/log");
        let id = logged_ids(&log3, missed)[0];
        let out = VOUCH.run(&["prove", log3.to_str().unwrap(), &hex::encode(id)]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let proof_file = dir.path().join("proof.json");
        std::fs::write(&proof_file, &out.stdout).unwrap();
        let checked = Command::new("node")
            .arg(vouch_testkit::repo_root().join("interop/prove-verify.mjs"))
            .arg(&proof_file)
            .output()
            .unwrap();
        let verdict: Value = serde_json::from_slice(&checked.stdout).unwrap();
        assert!(checked.status.success() && verdict["ok"] == true, "{verdict}");
        assert_eq!(verdict["signer"].as_str().unwrap(), hot_keys[2], "signed by its hot key");
        let root = hex::decode(verdict["root"].as_str().unwrap()).unwrap();
        let signed_by_1 = own(&answers[0], missed).unwrap().1;
        assert_eq!(base64::engine::general_purpose::STANDARD.encode(root), signed_by_1);

        hiding_verifier_is_named(&run, &mut http, pids[1], &configs[1], hidden, &signers);

        stop.store(true, Ordering::SeqCst);
        simulation.join().unwrap().unwrap();
        drop(third);
    });
}

/// Verifier 2 comes back leaving `hidden`'s envelopes out; verifier 1
/// names it, and a replay of its log against verifier 1's checkpoints
/// names the omission.
#[cfg(feature = "fault-injection")]
fn hiding_verifier_is_named(
    run: &Path,
    http: &mut [String],
    pid: u32,
    config: &Path,
    hidden: vouch_schema::Address,
    signers: &[String],
) {
    kill9(pid);
    let faulty = config.with_file_name("verifier-2-faulty.toml");
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(
        &faulty,
        format!("{text}\n[faults]\ndrop_principal = \"{}\"\n", hidden.to_hex()),
    )
    .unwrap();
    let mut second = restart(&faulty);
    http[1] = format!("http://{}", second.host_port());
    let from = minute(now_ms()) + 1;
    let (minute_named, theirs, ours) = wait_for("verifier 1 to name verifier 2", || {
        let a = checkpoints(&http[0], from, from + 10);
        a["disagreements"].as_array().unwrap().iter().find_map(|d| {
            (d["verifier"].as_str() == Some(signers[1].as_str())).then(|| {
                let e = &d["envelopes"];
                (d["minute"].as_u64().unwrap(), e[0].as_u64().unwrap(), e[1].as_u64().unwrap())
            })
        })
    });
    assert!(theirs < ours, "minute {minute_named}: {theirs} against {ours}");
    assert!(metric(&http[0], "vouch_checkpoints_disagreements_total") > 0);

    assert!(second.terminate().success());
    let url = format!("{}/v1/checkpoints?from={from}&to={}", http[0], from + 10);
    let log2 = run.join("verifier-2/log");
    let out = VOUCH.run(&["replay", log2.to_str().unwrap(), "--checkpoints", &url]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &summary["published_checkpoints"]["first_difference"];
    assert_eq!(first["kind"], "omits", "{summary}");
    assert!(first["minute"].as_u64().unwrap() >= from, "{summary}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("omits"));
}

/// Without the test-only feature there is no hiding verifier to build.
#[cfg(not(feature = "fault-injection"))]
fn hiding_verifier_is_named(
    _: &Path,
    _: &mut [String],
    _: u32,
    _: &Path,
    _: vouch_schema::Address,
    _: &[String],
) {
    eprintln!("built without fault-injection: the hiding verifier is not tested");
}
