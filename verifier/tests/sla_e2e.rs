//! Scores through running `vouch node`s, real processes on loopback: a
//! gateway publishes go-livepeer-shaped sessions (a healthy and a slow
//! orchestrator, timings known) with `vouch publish`; two separate nodes get
//! the same events in opposite orders. Checked over HTTP once the minutes
//! have sealed: the metrics are the generated ones, the healthy orchestrator
//! ranks first, both nodes serve byte-identical JSON, the restricted
//! `by_gateway` field needs a valid JWT, and a Go program decoding
//! `/api/aggregated_stats` with go-livepeer's types reads the same scores.
//! One node also runs the ClickHouse sink against a real ClickHouse: its
//! sealed minute buckets and accepted events land there exactly once.
//!
//! The node runs the v1 policy with its timings shortened (event lag and
//! seal grace 20 s, startup horizon 5 s) so that minutes seal within the
//! test; formulas and targets are v1's. Beside it, the NaaP-compatible
//! policy with the same timings: both nodes serve it byte-identically too. Waits are bounded; nothing asserts
//! timing.
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;
use vouch_testkit::cli::{Identity, Vouch};
use vouch_testkit::clickhouse;
use vouch_testkit::jwt::{SECRET as JWT_SECRET, hs256};
use vouch_testkit::livepeer::session;
use vouch_testkit::node::NodeProcess;
use vouch_testkit::now_ms;
use vouch_testkit::openapi;
use vouch_testkit::repo_root;
use vouch_testkit::sla::{fast_builtin, fast_policy};

const VOUCH: Vouch = Vouch::at(env!("CARGO_BIN_EXE_vouch"));

const HEALTHY: &str = "0x00000000000000000000000000000000000000a1";
const SLOW: &str = "0x00000000000000000000000000000000000000a2";
const SESSIONS: u64 = 12;
/// The NaaP-compatible policy, scored beside the primary (with the same short timings).
const NAAP: &str = "naap-quality-benchmark-v1";
/// Sealing needs the decision minute's end plus the grace: up to ~90 s here.
const SEAL_WAIT: Duration = Duration::from_secs(240);

/// `SESSIONS` sessions per orchestrator: first frame after `ptff` ms,
/// playable 500 ms later, one runner status at `fps`. All in the past.
fn sessions() -> Vec<Value> {
    let t0 = now_ms() - 8_000;
    let mut out = Vec::new();
    for (orch, ptff, fps) in [(HEALTHY, 800, 30.0), (SLOW, 2_500, 18.0)] {
        for n in 0..SESSIONS {
            let rid = format!("{}-{n}", &orch[orch.len() - 2..]);
            out.extend(session(&rid, orch, t0 + n * 50, ptff, fps));
        }
    }
    out
}

/// The leaderboard once both orchestrators are scored in a sealed window.
fn wait_scored(node: &NodeProcess, path: &str) -> Value {
    let deadline = Instant::now() + SEAL_WAIT;
    loop {
        let list = node.get_json(path);
        let ok = list["orchestrators"].as_array().unwrap().iter().filter(|o| o["status"] == "ok");
        if ok.count() == 2 {
            return list;
        }
        assert!(Instant::now() < deadline, "never scored: {list}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn two_nodes_score_the_same_sessions_identically_over_http() {
    let gateway = Identity::filled(VOUCH, 0x21, 0x22);
    let work = TempDir::new().unwrap();
    std::fs::write(work.path().join("policy.toml"), fast_policy()).unwrap();
    std::fs::write(work.path().join("naap.toml"), fast_builtin(NAAP)).unwrap();
    let base = format!(
        "[sla]\npolicy = \"policy.toml\"\nalso = [\"naap.toml\"]\n\
         [api.jwt]\nalgorithm = \"HS256\"\nkey = \"{JWT_SECRET}\"\n"
    );
    // Node A also feeds a real ClickHouse: events from its log, sealed buckets from its engine.
    let ch = clickhouse::ClickHouse::start();
    let with_sink = format!("{base}[sinks.clickhouse]\nurl = \"{}\"\n", ch.url());
    let snapshot = work.path().join("authority.json");
    // The gateway, and the two orchestrators it observes (only listed ones are scored).
    let view = json!({"principals": [
        {"address": gateway.principal, "roles": ["gateway"]},
        {"address": HEALTHY, "roles": ["orchestrator"]},
        {"address": SLOW, "roles": ["orchestrator"]},
    ]});
    std::fs::write(&snapshot, view.to_string()).unwrap();
    let node = |name: &str, config: &str| {
        NodeProcess::spawn_configured(VOUCH, &work.path().join(name), &snapshot, config)
    };
    let (mut a, mut b) = (node("a", &with_sink), node("b", &base));

    // The same events: file order to one node, reversed to the other.
    let mut events = sessions();
    for (target, name) in [(&a, "forward.ndjson"), (&b, "backward.ndjson")] {
        gateway.publish_kafka(name, &events, &target.p2p());
        events.reverse();
    }

    let path = "/v1/sla/orchestrators?window=5m&region=FRA";
    let list = wait_scored(&a, path);
    let (first, second) = (&list["orchestrators"][0], &list["orchestrators"][1]);
    assert_eq!(first["address"], json!(HEALTHY), "{list}");
    assert_eq!(second["address"], json!(SLOW), "{list}");
    assert!(first["sla_score"].as_f64().unwrap() > second["sla_score"].as_f64().unwrap());
    for (o, ptff, fps) in [(first, 800, 30.0), (second, 2_500, 18.0)] {
        assert_eq!(o["attempts"], json!(SESSIONS), "{o}");
        assert_eq!(o["startup_success_rate"], json!(1.0), "{o}");
        let p50 = o["ptff_ms"]["p50"].as_f64().unwrap();
        assert!((p50 - f64::from(ptff)).abs() <= f64::from(ptff) * 0.01, "ptff p50 {p50}: {o}");
        assert_eq!(o["fps"]["p50"], json!(fps), "{o}");
    }

    // Node B: the same bytes for the same sealed window, under both policies.
    let naap_path = format!("{path}&policy={NAAP}");
    let naap = wait_scored(&a, &naap_path);
    assert_eq!(naap["policy"]["name"], NAAP, "{naap}");
    for path in [path, naap_path.as_str()] {
        let deadline = Instant::now() + SEAL_WAIT;
        loop {
            let (_, body_a) = a.get(path);
            let (_, body_b) = b.get(path);
            let end =
                |b: &str| serde_json::from_str::<Value>(b).unwrap()["window"]["end_ms"].clone();
            if end(&body_a) == end(&body_b) {
                assert_eq!(body_a, body_b, "same sealed window, different answers: {path}");
                break;
            }
            assert!(Instant::now() < deadline, "nodes never sealed the same minute");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    // The restricted field needs a valid token with the scope.
    let detail = format!("/v1/sla/orchestrators/{HEALTHY}?window=5m");
    assert!(a.get_json(&detail).get("by_gateway").is_none());
    let exp = now_ms() / 1000 + 600;
    let wrong_scope = hs256(JWT_SECRET.as_bytes(), &json!({"exp": exp, "scope": "sla:read"}));
    let good = hs256(JWT_SECRET.as_bytes(), &json!({"exp": exp, "scope": "sla:restricted"}));
    for token in [wrong_scope.as_str(), "not.a.token"] {
        let (_, body) = a.get_with(&detail, &[("Authorization", &format!("Bearer {token}"))]);
        assert!(serde_json::from_str::<Value>(&body).unwrap().get("by_gateway").is_none());
    }
    let (status, body) = a.get_with(&detail, &[("Authorization", &format!("Bearer {good}"))]);
    assert_eq!(status, 200);
    let detail: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        detail["by_gateway"],
        json!([{"gateway": gateway.principal, "attempts": SESSIONS, "startup_success_rate": 1.0,
                "ptff_mean_ms": 800.0, "flagged": false}]),
        "{detail}"
    );

    // go-livepeer's reading of /api/aggregated_stats.
    let stats = a.get_json("/api/aggregated_stats?window=5m");
    let out = Command::new("go")
        .args(["run", "./cmd/perfstats"])
        .arg(format!("http://{}/api/aggregated_stats?window=5m", a.host_port()))
        .arg("FRA")
        .current_dir(repo_root().join("examples/go-livepeer"))
        .env("GOFLAGS", "-mod=mod")
        .output()
        .expect("Go is installed (apt-get install golang-go)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?} from {stats}");
    for line in &lines {
        let addr = line["address"].as_str().unwrap();
        let score = stats[addr]["FRA"]["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score));
        assert_eq!(line["score"].as_f64().unwrap(), score, "{addr}");
    }
    // The real engine's answers are what the OpenAPI document promises.
    let doc = openapi::document(vouch_verifier::api::openapi::DOCUMENT);
    let bearer = format!("Bearer {good}");
    for (template, url, auth) in [
        ("/v1/sla/orchestrators", path.to_owned(), None),
        (
            "/v1/sla/orchestrators",
            "/v1/sla/orchestrators?window=24h&origin=synthetic".to_owned(),
            None,
        ),
        (
            "/v1/sla/orchestrators/{address}",
            format!("/v1/sla/orchestrators/{HEALTHY}?window=5m"),
            None,
        ),
        (
            "/v1/sla/orchestrators/{address}",
            format!("/v1/sla/orchestrators/{SLOW}?window=5m"),
            Some(&bearer),
        ),
        ("/v1/network/demand", "/v1/network/demand?window=5m".to_owned(), None),
        ("/v1/network/demand", format!("/v1/network/demand?window=5m&policy={NAAP}"), None),
        ("/v1/sla/orchestrators", naap_path.clone(), None),
        ("/v1/policies", "/v1/policies".to_owned(), None),
        ("/v1/models", "/v1/models".to_owned(), None),
        ("/v1/regions", "/v1/regions".to_owned(), None),
        ("/api/aggregated_stats", "/api/aggregated_stats?window=5m".to_owned(), None),
        ("/v1/ingest/stats", "/v1/ingest/stats".to_owned(), None),
    ] {
        let headers: Vec<(&str, &str)> =
            auth.map(|a| vec![("Authorization", a.as_str())]).unwrap_or_default();
        let (status, body) = a.get_with(&url, &headers);
        assert_eq!(status, 200, "{url}: {body}");
        openapi::assert_documented(&doc, template, 200, &serde_json::from_str(&body).unwrap());
    }

    // The sealed buckets reached ClickHouse: every attempt, once, by orchestrator.
    let deadline = Instant::now() + SEAL_WAIT;
    let sql = "SELECT orchestrator, sum(attempts), sum(startup_successes) FROM vouch_sla_minutes \
               FINAL WHERE region = 'FRA' GROUP BY orchestrator ORDER BY orchestrator FORMAT TSV";
    let expected = format!("{HEALTHY}\t{SESSIONS}\t{SESSIONS}\n{SLOW}\t{SESSIONS}\t{SESSIONS}");
    while ch.try_query(sql).as_deref().map(str::trim) != Some(expected.as_str()) {
        assert!(Instant::now() < deadline, "aggregates in ClickHouse: {:?}", ch.try_query(sql));
        std::thread::sleep(Duration::from_millis(300));
    }
    let events = ch.number("SELECT count() FROM vouch_events");
    assert_eq!(events, SESSIONS * 2 * 5, "every accepted event, once");
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}
