//! `vouch loadtest --dry-run` as a user runs it: reproducible sampling,
//! top-N by stake, and the per-orchestrator rate budget in the schedule.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use vouch_testkit::cli::Vouch;
use vouch_testkit::process::http_get;

const VOUCH: Vouch = Vouch::at(env!("CARGO_BIN_EXE_vouch"));

/// A snapshot of 10 orchestrators with distinct stakes (orchestrator i has
/// stake i × 10^21) and one gateway.
fn snapshot(dir: &Path) -> std::path::PathBuf {
    let mut principals: Vec<Value> = (1..=10u32)
        .map(|i| {
            json!({"address": format!("0x{:040x}", 0x1000 + i), "roles": ["orchestrator"],
                   "stake": format!("{i}000000000000000000000")})
        })
        .collect();
    principals.push(json!({"address": format!("0x{:040x}", 0xabc), "roles": ["gateway"]}));
    let path = dir.join("authority.json");
    std::fs::write(&path, serde_json::to_vec(&json!({"principals": principals})).unwrap()).unwrap();
    path
}

fn dry_run(snapshot: &Path, args: &[&str]) -> Vec<Value> {
    let out = VOUCH
        .command(&["loadtest", "--dry-run", "--authority-snapshot", snapshot.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn orchestrators(schedule: &[Value]) -> Vec<String> {
    schedule.iter().map(|p| p["orchestrator"].as_str().unwrap().to_owned()).collect()
}

/// Every orchestrator's probes within any minute, at most `budget`.
fn assert_budget(schedule: &[Value], budget: usize) {
    let mut times: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for p in schedule {
        times
            .entry(p["orchestrator"].as_str().unwrap().to_owned())
            .or_default()
            .push(p["offset_ms"].as_u64().unwrap());
    }
    for (orch, ts) in &times {
        for (i, &t) in ts.iter().enumerate() {
            let in_minute = ts[i..].iter().take_while(|&&u| u < t + 60_000).count();
            assert!(in_minute <= budget, "{orch} probed {in_minute} times in a minute: {ts:?}");
        }
    }
}

#[test]
fn same_seed_same_probes_in_the_same_order() {
    let dir = tempfile::tempdir().unwrap();
    let snap = snapshot(dir.path());
    let args = ["--strategy", "weighted", "--seed", "7", "--count", "60", "--budget", "3"];
    let a = dry_run(&snap, &args);
    let b = dry_run(&snap, &args);
    assert_eq!(a.len(), 60);
    assert_eq!(a, b, "the same seed gave another schedule");
    let other = dry_run(
        &snap,
        &["--strategy", "weighted", "--seed", "8", "--count", "60", "--budget", "3"],
    );
    assert_ne!(orchestrators(&a), orchestrators(&other), "another seed gave the same order");
    // Weighted by stake (with a budget that never binds): the largest stake
    // is probed more often than the smallest.
    let free = dry_run(
        &snap,
        &["--strategy", "weighted", "--seed", "7", "--count", "200", "--budget", "1000"],
    );
    let count = |addr: u32| {
        orchestrators(&free).iter().filter(|o| **o == format!("0x{:040x}", 0x1000 + addr)).count()
    };
    assert!(count(10) > count(1), "{} vs {}", count(10), count(1));
    assert_budget(&a, 3);
    for (i, p) in a.iter().enumerate() {
        assert_eq!(p["index"], i as u64);
        assert!(p["stake"].as_str().unwrap().ends_with("000000000000000000000"));
    }
}

#[test]
fn top_n_picks_the_highest_stakes() {
    let dir = tempfile::tempdir().unwrap();
    let snap = snapshot(dir.path());
    let s = dry_run(&snap, &["--strategy", "top-n", "--n", "3", "--count", "9", "--budget", "10"]);
    let picked: BTreeSet<String> = orchestrators(&s).into_iter().collect();
    let top3: BTreeSet<String> = (8..=10u32).map(|i| format!("0x{:040x}", 0x1000 + i)).collect();
    assert_eq!(picked, top3);
    // In turn, largest stake first.
    assert_eq!(orchestrators(&s)[..3], [10u32, 9, 8].map(|i| format!("0x{:040x}", 0x1000 + i)));
    // `all` covers every orchestrator and never the gateway.
    let all = dry_run(&snap, &["--strategy", "all", "--count", "10"]);
    assert_eq!(orchestrators(&all).into_iter().collect::<BTreeSet<_>>().len(), 10);
}

#[test]
fn the_rate_budget_is_respected() {
    let dir = tempfile::tempdir().unwrap();
    let snap = snapshot(dir.path());
    // Two orchestrators, two probes a minute each, a probe a second asked for:
    // four probes fit in a minute, then the schedule waits.
    let s = dry_run(
        &snap,
        &["--strategy", "top-n", "--n", "2", "--interval", "1s", "--budget", "2", "--count", "12"],
    );
    assert_budget(&s, 2);
    assert!(s[4]["offset_ms"].as_u64().unwrap() >= 60_000, "{s:?}");
    let offsets: Vec<u64> = s.iter().map(|p| p["offset_ms"].as_u64().unwrap()).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    for strategy in [&["--strategy", "all"][..], &["--strategy", "weighted", "--seed", "3"]] {
        let s = dry_run(
            &snap,
            &[strategy, &["--budget", "1", "--interval", "1s", "--count", "40"]].concat(),
        );
        assert_budget(&s, 1);
    }
}

#[test]
fn bad_usage_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let snap = snapshot(dir.path());
    let status = |args: &[&str]| {
        VOUCH
            .command(&["loadtest", "--authority-snapshot", snap.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(status(&["--dry-run", "--strategy", "top-n"]), Some(2), "top-n without --n");
    assert_eq!(status(&["--dry-run", "--budget", "0"]), Some(2));
    assert_eq!(status(&[]), Some(2), "publishing needs --key and --cert");
}

/// Publishing for real: the load-test gateway of a running `vouch demo`
/// (its key, certificate and profiles) probes through gossip, and the
/// demo's verifier accepts every envelope (a loadtest certificate, all synthetic).
#[test]
fn probes_reach_a_verifier_and_are_accepted() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("demo");
    let mut demo = VOUCH
        .command(&["demo", "--duration", "90s", "--orchestrators", "3", "--verifiers", "1"])
        .args(["--dir", run.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(demo.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let announce: Value = serde_json::from_str(&line).unwrap();
    let verifier = &announce["verifiers"][0];
    let p2p = verifier["p2p_listen"][0].as_str().unwrap();
    let path = |p: &str| run.join(p).to_str().unwrap().to_owned();
    let out = VOUCH
        .command(&["loadtest", "--authority-snapshot", &path("authority.json")])
        .args(["--key", &path("keys/loadtest.key"), "--cert", &path("keys/loadtest.cert")])
        .args(["--profiles", &path("profiles.json"), "--bootstrap", p2p])
        .args(["--strategy", "top-n", "--n", "2", "--interval", "500ms", "--count", "4"])
        .output()
        .unwrap();
    // Everything that reached the verifier was accepted.
    let stats = {
        let host = verifier["http"].as_str().unwrap().strip_prefix("http://").unwrap();
        serde_json::from_str::<Value>(&http_get(host, "/v1/ingest/stats").1).unwrap()
    };
    let _ = Command::new("kill").args(["-INT", &demo.id().to_string()]).status();
    assert_eq!(stats["rejected"], 0, "{stats}");
    assert!(stats["accepted"].as_u64().unwrap() > 0, "{stats}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert_eq!(summary["probes"], 4, "{summary}");
    assert!(summary["envelopes"].as_u64().unwrap() > 0, "{summary}");
    let status = demo.wait().unwrap();
    assert!(status.success(), "{status}");
    // The verifier's log holds them: replay verifies every envelope and certificate.
    let replay = VOUCH
        .command(&[
            "replay",
            &path("verifier-1/log"),
            "--config",
            &path("verifier-1.toml"),
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stdout));
}
