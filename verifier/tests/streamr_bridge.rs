//! The Streamr bridge end to end, real processes on loopback: `vouch node`
//! verifiers, `vouch publish` gateways, `vouch bridge streamr` bridges, and
//! a private mosquitto broker standing in for a Streamr node's MQTT plugin
//! (standard MQTT 3.1.1, QoS 1; the plugin is an Aedes broker). What crossed
//! is checked by the receiving verifiers' own counts, by Streamr's own
//! signer (`interop/bridge-verify.mjs` with `@streamr/utils`), and for
//! loops by counting every message on the broker. Waits are bounded;
//! nothing asserts timing (the latency figures come from the ignored
//! `bridge_latency` test).
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;
use vouch_schema::Envelope;
use vouch_schema::bridge::BridgePayload;
use vouch_testkit::WAIT;
use vouch_testkit::authority::gateway_snapshot;
use vouch_testkit::bridge::{Bridge, inbound, publish, stream_of, wait_accepted};
use vouch_testkit::cli::{Identity, Vouch};
use vouch_testkit::mosquitto::Mosquitto;
use vouch_testkit::node::NodeProcess;
use vouch_testkit::repo_root;

const VOUCH: Vouch = Vouch::at(env!("CARGO_BIN_EXE_vouch"));

/// The bridge payloads in a capture file (the ready probe and deliberate
/// garbage left out).
fn lines(path: &Path) -> Vec<String> {
    // Lossy: the garbage published on purpose is not UTF-8.
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default())
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v["message_id"].is_string()))
        .map(str::to_owned)
        .collect()
}

fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = lines(path);
        if got.len() >= n {
            return got;
        }
        assert!(Instant::now() < deadline, "only {} of {n} MQTT messages captured", got.len());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Streamr's own signer over bridged messages (`payloads` or `frames`).
fn streamr_verify(mode: &str, file: &Path) -> Value {
    let out = Command::new("node")
        .arg(repo_root().join("interop/bridge-verify.mjs"))
        .arg(mode)
        .arg(file)
        .output()
        .expect("node (Node.js 20+) is needed for the Streamr cross-check");
    assert!(
        out.status.success(),
        "bridge-verify.mjs failed (run `npm ci --prefix interop`, as scripts/test.sh does): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn envelopes_cross_from_one_network_to_another_and_verify_with_streamr() {
    let gateway = Identity::filled(VOUCH, 0x44, 0x55);
    let work = TempDir::new().unwrap();
    let snapshot = gateway_snapshot(work.path(), &[&gateway.principal]);
    let broker = Mosquitto::start();
    let stream = stream_of(&gateway);
    let capture_file = work.path().join("mqtt.ndjson");
    let _capture = broker.capture(&stream, &capture_file);

    // Network A: a verifier and bridge A following its log (outbound only).
    let node_a = NodeProcess::spawn(VOUCH, &work.path().join("a"), &snapshot);
    let log_a = work.path().join("a/log");
    let mut bridge_a =
        Bridge::spawn(VOUCH, &["--mqtt", &broker.url(), "--log", log_a.to_str().unwrap()]);
    // Network B: a verifier and bridge B gossiping to it (inbound only).
    let node_b = NodeProcess::spawn(VOUCH, &work.path().join("b"), &snapshot);
    // (An MQTT wildcard: every principal's telemetry stream.)
    let bridge_b = Bridge::spawn(
        VOUCH,
        &[
            "--mqtt",
            &broker.url(),
            "--stream",
            "+/livepeer/telemetry",
            "--bootstrap",
            &node_b.p2p(),
            "--authority-snapshot",
            snapshot.to_str().unwrap(),
        ],
    );
    assert!(!bridge_b.announce()["p2p_listen"].as_array().unwrap().is_empty());

    let n = publish(&gateway, &node_a.p2p(), 5);
    wait_accepted(&node_a, n);
    bridge_a.wait_stats("outbound publishes", |s| s["outbound"]["published"] == json!(n));
    bridge_b.wait_stats("inbound forwards", |s| s["inbound"]["forwarded"] == json!(n));
    wait_accepted(&node_b, n);
    let stats_b = node_b.stats();
    assert_eq!((stats_b["rejected"].clone(), stats_b["ignored"].clone()), (json!(0), json!(0)));

    // Every bridged payload verifies with Streamr's own signer.
    let captured = wait_lines(&capture_file, n as usize);
    assert_eq!(captured.len() as u64, n);
    let payloads_file = work.path().join("payloads.ndjson");
    std::fs::write(&payloads_file, captured.join("\n")).unwrap();
    let v = streamr_verify("payloads", &payloads_file);
    assert_eq!((v["total"].clone(), v["verified"].clone()), (json!(n), json!(n)), "{v}");
    assert_eq!(v["streams"], json!([stream]));

    // The same payload on MQTT again is not forwarded again.
    broker.publish(&stream, captured[0].as_bytes());
    let s = bridge_b.wait_stats("a repeat", |s| inbound(s, "ignore", "seen") == 1);
    assert_eq!(s["inbound"]["forwarded"], json!(n));
    // Garbage and a payload on the wrong topic are rejected by reason.
    broker.publish(&stream, b"{\"vouch_bridge\":1}");
    broker.publish(&stream, b"\xff\x00");
    broker.publish(&stream, &vec![b' '; 300_000]);
    bridge_b.wait_stats("garbage rejected", |s| {
        inbound(s, "reject", "payload_json") == 2 && inbound(s, "reject", "payload_oversize") == 1
    });
    // Well-formed payloads the pipeline refuses: a principal outside the
    // authority snapshot, and a forged signature. Counted, never gossiped.
    let stranger = Identity::filled(VOUCH, 0x66, 0x77);
    let payload = |cbor: Vec<u8>| BridgePayload::from_cbor(cbor).unwrap().encode();
    broker.publish(&stream_of(&stranger), &payload(stranger.sign("s.cbor")));
    let mut forged = gateway.sign("g.cbor");
    let len = forged.len();
    forged[len - 10] ^= 0x01; // inside the signature's s
    broker.publish(&stream, &payload(forged));
    let s = bridge_b.wait_stats("pipeline rejections", |s| {
        inbound(s, "reject", "unauthorized") == 1 && inbound(s, "reject", "bad_signature") == 1
    });
    assert_eq!(s["inbound"]["forwarded"], json!(n));
    let (status, metrics) = bridge_b.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics
            .contains("vouch_bridge_inbound_total{outcome=\"reject\",reason=\"payload_json\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("vouch_bridge_seen_evictions_total 0"), "{metrics}");

    // Raw export: Streamr storage-resend frames of exactly the accepted envelopes.
    let out = VOUCH.run(&["bridge", "streamr", "export", log_a.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(summary["frames"], json!(n));
    let mut frames = Vec::new();
    let mut rest = &out.stdout[..];
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let env = Envelope::from_streamr_bytes(&rest[4..4 + len]).unwrap();
        env.verify().unwrap();
        frames.push(env);
        rest = &rest[4 + len..];
    }
    assert_eq!(frames.len() as u64, n);
    let frames_file = work.path().join("export.frames");
    std::fs::write(&frames_file, &out.stdout).unwrap();
    let v = streamr_verify("frames", &frames_file);
    assert_eq!((v["total"].clone(), v["verified"].clone()), (json!(n), json!(n)), "{v}");

    // A restarted bridge resumes at its cursor: only new envelopes go out.
    assert!(bridge_a.terminate().success());
    let cursor: u64 = std::fs::read_to_string(work.path().join("a/streamr-bridge.cursor"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(cursor, node_a.stats()["log_records"].as_u64().unwrap());
    let bridge_a =
        Bridge::spawn(VOUCH, &["--mqtt", &broker.url(), "--log", log_a.to_str().unwrap()]);
    let more = publish(&gateway, &node_a.p2p(), 1);
    wait_accepted(&node_a, n + more);
    wait_accepted(&node_b, n + more);
    bridge_a.wait_stats("new publishes", |s| s["outbound"]["published"] == json!(more));
    // Bridged payloads, plus the repeat and the forgery this test published itself.
    let captured = wait_lines(&capture_file, (n + more + 2) as usize);
    assert_eq!(captured.len() as u64, n + more + 2);
    let ids: std::collections::BTreeSet<&str> = captured
        .iter()
        .map(|l| l.split("\"message_id\":\"").nth(1).unwrap().get(..40).unwrap())
        .collect();
    assert_eq!(ids.len() as u64, n + more + 1);
}

#[test]
fn outbound_catches_up_after_the_broker_restarts() {
    let gateway = Identity::filled(VOUCH, 0x44, 0x55);
    let work = TempDir::new().unwrap();
    let snapshot = gateway_snapshot(work.path(), &[&gateway.principal]);
    let mut broker = Mosquitto::start_with(true);
    let stream = stream_of(&gateway);
    // A persistent session: the broker keeps its subscription across the restart.
    let capture_file = work.path().join("mqtt.ndjson");
    let _capture = broker.capture_as(&stream, &capture_file, Some("vouch-test-capture"));
    // The bridge may start before its node: it waits for the log to appear.
    let log_a = work.path().join("a/log");
    let bridge_a =
        Bridge::spawn(VOUCH, &["--mqtt", &broker.url(), "--log", log_a.to_str().unwrap()]);
    bridge_a.wait_stats("a broker connection", |s| s["mqtt"]["connects"] == json!(1));
    let node_a = NodeProcess::spawn(VOUCH, &work.path().join("a"), &snapshot);

    // Envelopes committed while the broker is down wait in the log.
    broker.stop();
    let n = publish(&gateway, &node_a.p2p(), 2);
    wait_accepted(&node_a, n);
    bridge_a.wait_stats("the outage noticed", |s| s["mqtt"]["errors"].as_u64().unwrap() >= 1);
    assert_eq!(bridge_a.stats()["outbound"]["published"], json!(0));

    broker.restart();
    let s = bridge_a.wait_stats("catch-up", |s| s["outbound"]["published"] == json!(n));
    assert!(s["mqtt"]["connects"].as_u64().unwrap() >= 2, "{s}");
    let captured = wait_lines(&capture_file, n as usize);
    let ids: std::collections::BTreeSet<&str> = captured
        .iter()
        .map(|l| l.split("\"message_id\":\"").nth(1).unwrap().get(..40).unwrap())
        .collect();
    assert_eq!(ids.len() as u64, n);
}

#[test]
fn a_bridge_both_ways_on_each_network_never_loops() {
    let gw_a = Identity::filled(VOUCH, 0x44, 0x55);
    let gw_b = Identity::filled(VOUCH, 0x66, 0x77);
    let work = TempDir::new().unwrap();
    let snapshot = gateway_snapshot(work.path(), &[&gw_a.principal, &gw_b.principal]);
    let broker = Mosquitto::start();
    let capture_file = work.path().join("mqtt.ndjson");
    let _capture = broker.capture("#", &capture_file);
    let streams = [stream_of(&gw_a), stream_of(&gw_b)];

    let node_a = NodeProcess::spawn(VOUCH, &work.path().join("a"), &snapshot);
    let node_b = NodeProcess::spawn(VOUCH, &work.path().join("b"), &snapshot);
    let both_ways = |node: &NodeProcess, dir: &str| {
        let log = work.path().join(dir).join("log");
        Bridge::spawn(
            VOUCH,
            &[
                "--mqtt",
                &broker.url(),
                "--log",
                log.to_str().unwrap(),
                "--stream",
                &streams[0],
                "--stream",
                &streams[1],
                "--bootstrap",
                &node.p2p(),
                "--authority-snapshot",
                snapshot.to_str().unwrap(),
            ],
        )
    };
    let bridge_a = both_ways(&node_a, "a");
    let bridge_b = both_ways(&node_b, "b");

    // Traffic starts on both sides.
    let n_a = publish(&gw_a, &node_a.p2p(), 3);
    let n_b = publish(&gw_b, &node_b.p2p(), 2);
    let total = n_a + n_b;
    wait_accepted(&node_a, total);
    wait_accepted(&node_b, total);

    // Each bridge sent its own network's envelopes once, heard them back
    // once (its own echo), and kept what came from MQTT off MQTT.
    for (bridge, own, other, node) in
        [(&bridge_a, n_a, n_b, &node_a), (&bridge_b, n_b, n_a, &node_b)]
    {
        let log_end = node.stats()["log_records"].as_u64().unwrap();
        let s = bridge.wait_stats("the log followed to its end and echoes heard", |s| {
            s["outbound"]["cursor"] == json!(log_end) && inbound(s, "ignore", "own_echo") == own
        });
        assert_eq!(s["outbound"]["published"], json!(own), "{s}");
        assert_eq!(s["outbound"]["from_mqtt"], json!(other), "{s}");
        assert_eq!(s["inbound"]["forwarded"], json!(other), "{s}");
        assert_eq!(s["inbound"]["rejected"], json!(0), "{s}");
        assert_eq!(s["seen"]["evictions"], json!(0), "{s}");
    }
    // Exactly one copy of each envelope ever crossed the broker, and no
    // verifier saw a duplicate.
    std::thread::sleep(Duration::from_millis(500));
    let captured = lines(&capture_file);
    assert_eq!(captured.len() as u64, total);
    let ids: std::collections::BTreeSet<String> = captured
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["message_id"].as_str().unwrap().into())
        .collect();
    assert_eq!(ids.len() as u64, total);
    for node in [&node_a, &node_b] {
        let s = node.stats();
        assert_eq!((s["accepted"].clone(), s["ignored"].clone()), (json!(total), json!(0)), "{s}");
    }
}

/// The bridge's latency on loopback: from an envelope committed in node A's
/// log (A's stats count it) to node B accepting it, through bridge A
/// (outbound, polling the log every 10 ms by default), mosquitto, bridge B
/// (inbound validation) and gossip. One envelope at a time, so each is
/// timed alone; the stats are polled every 0.2 ms. Prints p50/p90/p99/max.
/// `cargo test -p vouch-verifier --release --test streamr_bridge -- --ignored --nocapture`
#[test]
#[ignore = "benchmark: prints latency figures"]
fn bridge_latency() {
    let n: usize =
        std::env::var("BRIDGE_LATENCY_N").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let gateway = Identity::filled(VOUCH, 0x44, 0x55);
    let work = TempDir::new().unwrap();
    let snapshot = gateway_snapshot(work.path(), &[&gateway.principal]);
    let broker = Mosquitto::start();
    let stream = stream_of(&gateway);
    // Stats are polled far faster than the API's default per-client limit.
    let unlimited = "[api.rate_limit]\nper_second = 0.0\n";
    let node_a = NodeProcess::spawn_configured(VOUCH, &work.path().join("a"), &snapshot, unlimited);
    let log_a = work.path().join("a/log");
    let bridge_a =
        Bridge::spawn(VOUCH, &["--mqtt", &broker.url(), "--log", log_a.to_str().unwrap()]);
    let node_b = NodeProcess::spawn_configured(VOUCH, &work.path().join("b"), &snapshot, unlimited);
    let bridge_b = Bridge::spawn(
        VOUCH,
        &[
            "--mqtt",
            &broker.url(),
            "--stream",
            &stream,
            "--bootstrap",
            &node_b.p2p(),
            "--authority-snapshot",
            snapshot.to_str().unwrap(),
        ],
    );

    let publisher = gateway.publisher(&node_a.p2p(), 1, 0);
    let events = std::fs::read(gateway.events()).unwrap();
    let line = events.split(|b| *b == b'\n').next().unwrap();
    let wait_until = |what: &str, done: &dyn Fn() -> bool| -> Instant {
        let deadline = Instant::now() + WAIT;
        loop {
            if done() {
                return Instant::now();
            }
            assert!(Instant::now() < deadline, "{what} never happened");
            std::thread::sleep(Duration::from_micros(200));
        }
    };
    let (mut total_us, mut out_us, mut in_us) = (Vec::new(), Vec::new(), Vec::new());
    for i in 1..=n as u64 {
        publisher.publish(vouch_sdk::adapter::from_kafka_line(line).unwrap()).unwrap();
        publisher.flush(WAIT).unwrap();
        let committed =
            wait_until("commit in A", &|| node_a.stats()["accepted"].as_u64().unwrap() >= i);
        let acked = wait_until("broker ack", &|| {
            bridge_a.stats()["outbound"]["published"].as_u64().unwrap() >= i
        });
        let forwarded = wait_until("gossiped by bridge B", &|| {
            bridge_b.stats()["inbound"]["forwarded"].as_u64().unwrap() >= i
        });
        let arrived =
            wait_until("accepted by B", &|| node_b.stats()["accepted"].as_u64().unwrap() >= i);
        total_us.push(arrived.duration_since(committed).as_micros() as u64);
        out_us.push(acked.duration_since(committed).as_micros() as u64);
        in_us.push(forwarded.duration_since(acked).as_micros() as u64);
    }
    let _ = publisher.close(Duration::from_secs(5));
    let report = |name: &str, mut v: Vec<u64>| {
        v.sort_unstable();
        let pct = |p: f64| v[((v.len() as f64 * p).ceil() as usize).max(1) - 1] as f64 / 1000.0;
        println!(
            "{name}: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            pct(0.50),
            pct(0.90),
            pct(0.99),
            pct(1.0)
        );
    };
    println!("bridge latency over {n} envelopes, one at a time, loopback:");
    report("  committed in A -> accepted by B (total)", total_us);
    report("  committed in A -> broker acked bridge A's publish", out_us);
    report("  broker ack -> bridge B validated and gossiped", in_us);
    assert_eq!(node_b.stats()["accepted"], json!(n));
}
