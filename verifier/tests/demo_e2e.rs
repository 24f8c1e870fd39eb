//! `vouch demo` as a new user runs it: a real process that starts three
//! verifier processes and a simulated network, then the verifiers' HTTP API
//! must rank healthy orchestrators above slow and flaky ones, not reward the
//! one inflating its self-reports, and agree byte for byte on closed windows;
//! `vouch replay` of each verifier's log prints that verifier's answer byte
//! for byte, and fails at the frame holding a flipped byte.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vouch_testkit::cli::Vouch;
use vouch_testkit::now_ms;
use vouch_testkit::process::{Announced, http_get};

const VOUCH: Vouch = Vouch::at(env!("CARGO_BIN_EXE_vouch"));

/// The longest the demo may take to announce its verifiers (three node starts).
const START: Duration = Duration::from_secs(120);

/// The longest to wait for scores: the demo policy seals a minute 12 s after
/// it ends, so every orchestrator has enough attempts in a sealed minute
/// within about two minutes of the start; this leaves room for a slow machine.
const SCORES: Duration = Duration::from_secs(240);

struct Demo {
    process: Announced,
    stderr: mpsc::Receiver<String>,
}

impl Demo {
    fn start(dir: &Path, extra: &[&str]) -> Demo {
        let mut command = VOUCH.command(&["demo", "--dir", dir.to_str().unwrap()]);
        command.args(extra).stderr(Stdio::piped());
        let mut process = Announced::spawn(&mut command, "the demo", START);
        let (err_tx, err_rx) = mpsc::channel();
        let stderr = process.child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("demo: {line}");
                let _ = err_tx.send(line);
            }
        });
        Demo { process, stderr: err_rx }
    }

    fn verifiers(&self) -> Vec<String> {
        self.process.announce["verifiers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["http"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Waits for the demo to exit; its status and everything it wrote to stderr.
    fn wait(&mut self, limit: Duration) -> (std::process::ExitStatus, Vec<String>) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(s) = self.process.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "the demo did not stop");
            std::thread::sleep(Duration::from_millis(100));
        };
        std::thread::sleep(Duration::from_millis(200));
        (status, self.stderr.try_iter().collect())
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if matches!(self.process.child.try_wait(), Ok(None)) {
            let _ =
                Command::new("kill").args(["-INT", &self.process.child.id().to_string()]).status();
            let _ = self.wait(Duration::from_secs(60));
        }
    }
}

/// GET of `path` on the server at `base` (`http://host:port/`): (status, body).
fn get(base: &str, path: &str) -> (u16, String) {
    http_get(base.strip_prefix("http://").unwrap().trim_end_matches('/'), path)
}

const DEMO_POLICY: &str = include_str!("../../schemas/policy/sla-policy-demo.toml");

fn end_ms(body: &str) -> u64 {
    serde_json::from_str::<Value>(body).unwrap()["window"]["end_ms"].as_u64().unwrap()
}

fn get_json(base: &str, path: &str) -> Value {
    let (status, body) = get(base, path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The NaaP-compatible policy with the demo's timings, scored beside the demo policy.
const NAAP: &str = "naap-quality-benchmark-demo-v1";

#[test]
fn demo_ranks_orchestrators_and_its_verifiers_agree() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let started = Instant::now();
    let mut demo = Demo::start(&run, &["--duration", "6m"]);
    let verifiers = demo.verifiers();
    assert_eq!(verifiers.len(), 3);
    let dashboard = demo.process.announce["dashboard"].as_str().unwrap().to_owned();
    let (status, page) = get(&dashboard, "/");
    assert_eq!(status, 200);
    assert!(page.contains("<html") || page.contains("<!doctype") || page.contains("<!DOCTYPE"));

    let profiles: BTreeMap<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(run.join("profiles.json")).unwrap()).unwrap();
    let profile = |addr: &str| profiles[addr]["profile"].as_str().unwrap().to_owned();
    let query = "/v1/sla/orchestrators?window=5m";

    // Wait until every orchestrator has a score on the first verifier.
    let deadline = Instant::now() + SCORES;
    let board = loop {
        let board = get_json(&verifiers[0], query);
        let rows = board["orchestrators"].as_array().unwrap();
        if rows.len() == profiles.len() && rows.iter().all(|r| r["status"] == "ok") {
            break board;
        }
        assert!(Instant::now() < deadline, "no scores for every orchestrator: {board}");
        std::thread::sleep(Duration::from_secs(2));
    };
    let scores_after = started.elapsed();
    let rows = board["orchestrators"].as_array().unwrap();
    let by_profile = |p: &str| -> Vec<&Value> {
        rows.iter().filter(|r| profile(r["address"].as_str().unwrap()) == p).collect()
    };
    let score = |r: &Value| r["sla_score"].as_f64().unwrap();
    let healthy = by_profile("healthy");
    let worst_healthy = healthy.iter().map(|r| score(r)).fold(f64::INFINITY, f64::min);
    for p in ["slow", "flaky", "swapping"] {
        for r in by_profile(p) {
            assert!(
                score(r) < worst_healthy,
                "{p} {r} scores above a healthy one ({worst_healthy})"
            );
        }
    }
    let inflator = by_profile("self_inflating");
    assert_eq!(inflator.len(), 1);
    let inflator = inflator[0];
    assert!(
        score(inflator) < worst_healthy,
        "the self-inflating orchestrator is rewarded: {inflator}, worst healthy {worst_healthy}"
    );
    let claimed = inflator["self_reported"]["fps_p50"].as_f64().unwrap();
    let observed = inflator["fps"]["p50"].as_f64().unwrap();
    assert!(claimed > observed * 2.0, "{inflator}");
    assert_eq!(inflator["self_reported"]["disagrees"], true, "{inflator}");
    for r in &healthy {
        assert_eq!(r["self_reported"]["disagrees"], false, "{r}");
    }
    // Ranks follow scores.
    let ranked: Vec<f64> = rows.iter().map(score).collect();
    assert!(ranked.windows(2).all(|w| w[0] >= w[1]), "{ranked:?}");
    // The load-test gateway's probes are scored on their own track.
    let synthetic = get_json(&verifiers[0], "/v1/sla/orchestrators?window=5m&origin=synthetic");
    assert_eq!(synthetic["filters"]["origin"], "synthetic");
    assert!(!synthetic["orchestrators"].as_array().unwrap().is_empty(), "{synthetic}");

    // The three verifiers agree on the same closed window.
    let deadline = Instant::now() + SCORES;
    loop {
        let answers: Vec<Value> = verifiers.iter().map(|v| get_json(v, query)).collect();
        let ends: Vec<&Value> = answers.iter().map(|a| &a["window"]["end_ms"]).collect();
        if ends.iter().all(|e| *e == ends[0]) {
            for (v, a) in verifiers.iter().zip(&answers).skip(1) {
                assert_eq!(
                    a["orchestrators"], answers[0]["orchestrators"],
                    "{v} disagrees with {} on the window ending {}",
                    verifiers[0], ends[0]
                );
                assert_eq!(a["policy"], answers[0]["policy"]);
            }
            assert_eq!(answers[0]["policy"]["id"], "sla-policy-demo");
            break;
        }
        assert!(Instant::now() < deadline, "the verifiers never sealed the same minute: {ends:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    // The same events under the NaaP-compatible policy, scored beside the
    // demo policy and selected by `?policy=`.
    let naap_query = format!("{query}&policy={NAAP}");
    let naap = get_json(&verifiers[0], &naap_query);
    assert_eq!(naap["policy"]["name"], NAAP, "{naap}");
    assert_ne!(naap["policy"]["hash"], board["policy"]["hash"]);
    let naap_rows = naap["orchestrators"].as_array().unwrap();
    assert!(!naap_rows.is_empty(), "{naap}");
    assert!(naap_rows.iter().any(|r| r["sla_score"].is_number()), "{naap}");
    let listed = get_json(&verifiers[0], "/v1/policies");
    assert_eq!(listed["default"], "sla-policy-demo-v1", "{listed}");
    let names: Vec<&Value> =
        listed["policies"].as_array().unwrap().iter().map(|p| &p["name"]).collect();
    assert_eq!(names, [&json!("sla-policy-demo-v1"), &json!(NAAP)], "{listed}");

    let ingest: Vec<Value> = verifiers.iter().map(|v| get_json(v, "/v1/ingest/stats")).collect();
    for s in &ingest {
        assert_eq!(s["rejected"], 0, "{s}");
        assert!(s["accepted"].as_u64().unwrap() > 0, "{s}");
    }

    // What each verifier serves now, taken well before the next seal (the
    // demo policy seals a minute `seal_grace_ms` after it ends), so that the
    // nodes stop with exactly this window sealed: replaying their logs must
    // give the same bytes.
    let grace = vouch_sla::Policy::from_toml(DEMO_POLICY).unwrap().ingest.seal_grace_ms;
    let deadline = Instant::now() + SCORES;
    let served: Vec<(String, String)> = loop {
        let bodies: Vec<(String, String)> =
            verifiers.iter().map(|v| (get(v, query).1, get(v, &naap_query).1)).collect();
        let ends: Vec<u64> = bodies.iter().flat_map(|(a, b)| [end_ms(a), end_ms(b)]).collect();
        let next_seal = ends[0] + 60_000 + grace;
        if ends.iter().all(|e| *e == ends[0]) && now_ms() + 20_000 < next_seal {
            break bodies;
        }
        assert!(Instant::now() < deadline, "no quiet moment to stop in: {ends:?}");
        std::thread::sleep(Duration::from_millis(500));
    };

    // Ctrl-C stops everything cleanly and keeps the data.
    let stop = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-INT", &demo.process.child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let (status, stderr) = demo.wait(Duration::from_secs(90));
    assert!(status.success(), "{status}: {stderr:?}");
    assert!(stderr.iter().any(|l| l.contains("vouch replay")), "{stderr:?}");
    let naap_replay_query = format!("window=5m&policy={NAAP}");
    for (i, (served, served_naap)) in served.iter().enumerate() {
        let log = run.join(format!("verifier-{}/log", i + 1));
        for (q, served) in [("window=5m", served), (naap_replay_query.as_str(), served_naap)] {
            let out = VOUCH.run(&[
                "replay",
                log.to_str().unwrap(),
                "--sla",
                "orchestrators",
                "--query",
                q,
            ]);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let replayed = String::from_utf8(out.stdout).unwrap();
            assert_eq!(
                replayed.strip_suffix('\n').unwrap(),
                served,
                "verifier {} replayed {q} differently",
                i + 1
            );
        }
    }
    // One flipped byte in a segment: replay fails naming that frame.
    let log = run.join("verifier-1/log");
    let segment = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "vlog"))
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&segment, bytes).unwrap();
    let out = VOUCH.run(&["replay", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let failure: Value = serde_json::from_slice(&out.stdout).unwrap();
    let name = segment.file_name().unwrap().to_str().unwrap();
    assert_eq!(failure["segment"], name, "{failure}");
    let frame = failure["offset"].as_u64().unwrap();
    assert!(
        frame <= at as u64,
        "the named frame ({frame}) starts at or before the flipped byte ({at})"
    );
    eprintln!(
        "timings: every orchestrator scored after {:.0?}; stop took {:.1?}; whole test {:.0?}",
        scores_after,
        stop.elapsed(),
        started.elapsed()
    );
}

#[test]
fn demo_stops_by_itself_after_its_duration() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("short");
    let mut demo =
        Demo::start(&run, &["--duration", "15s", "--orchestrators", "4", "--verifiers", "1"]);
    let (status, stderr) = demo.wait(Duration::from_secs(120));
    assert!(status.success(), "{status}: {stderr:?}");
    assert!(stderr.iter().any(|l| l.contains("data kept in")), "{stderr:?}");
    assert!(run.join("authority.json").is_file());
    assert!(run.join("keys/loadtest.cert").is_file());
    assert!(run.join("verifier-1/log").is_dir());
    // The folder is kept apart: a second run into it is refused.
    let again = VOUCH.run(&["demo", "--duration", "1s", "--dir", run.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
}

/// The demo policy is v1 with short timings: same formulas, targets and
/// failure rules, a different hash (so its scores are never taken for v1's).
#[test]
fn demo_policy_is_v1_with_short_timings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/policy");
    let v1 = vouch_sla::Policy::load(&root.join("sla-policy-v1.toml")).unwrap();
    let demo = vouch_sla::Policy::load(&root.join("sla-policy-demo.toml")).unwrap();
    assert_eq!(demo.sla, v1.sla);
    assert_eq!(demo.legacy, v1.legacy);
    assert_eq!(demo.failure_rules, v1.failure_rules);
    assert_eq!(demo.windows, v1.windows);
    assert_eq!(demo.scoring.compliance_percentile, v1.scoring.compliance_percentile);
    assert_eq!(demo.scoring.self_report_disagree_ratio, v1.scoring.self_report_disagree_ratio);
    assert_ne!(demo.hash, v1.hash);
    assert_ne!(demo.id, v1.id);
    assert!(demo.ingest.seal_grace_ms >= demo.ingest.event_lag_ms);
    assert!(demo.ingest.seal_grace_ms < v1.ingest.seal_grace_ms);
    assert_eq!(vouch_sla::Policy::default_v1().hash, v1.hash, "production default stays v1");
}
