//! A hostile gossip peer against a running `vouch node` (issue 18, items 2,
//! 4 and 6), real processes on loopback, each outcome read back over HTTP
//! with the outcome table's reason: a flood of revocations from throw-away
//! keys cannot disable revocation; several certificates of one principal
//! share one rate budget; an expired certificate does not work for a
//! back-dated envelope; and every envelope a publisher sends is accounted
//! for, at the node or in the publisher's counters, even when the node
//! stops reading for a while. Waits are bounded; nothing asserts timing.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k256::ecdsa::SigningKey;
use serde_json::{Value, json};
use tempfile::TempDir;
use vouch_delegation::keys::parse_hex_key;
use vouch_delegation::{Eip712Network, SignedDelegation, SignedRevocation};
use vouch_schema::crypto::address_of;
use vouch_schema::{Address, Envelope, Event, MessageId, MessageRef, TelemetryBatch};
use vouch_testkit::authority::gateway_snapshot;
use vouch_testkit::cli::{Identity, Vouch, ok_json};
use vouch_testkit::node::{NodeProcess, count, count_in};
use vouch_testkit::now_secs;
use vouch_verifier::store::{LogReader, RecordKind};

const VOUCH: Vouch = Vouch::at(env!("CARGO_BIN_EXE_vouch"));

fn key(a: u8, b: u8) -> String {
    format!("0x{}", format!("{a:02x}{b:02x}").repeat(16))
}

/// `vouch publish --raw FILES… [--control]`; the JSON report, whatever the exit status.
fn publish_raw(files: &[PathBuf], bootstrap: &str, control: bool) -> (bool, Value) {
    let mut args: Vec<String> = vec!["publish".into(), "--raw".into()];
    args.extend(files.iter().map(|f| f.to_str().unwrap().to_owned()));
    if control {
        args.push("--control".into());
    }
    args.extend(["--bootstrap".into(), bootstrap.into(), "--timeout".into(), "60s".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = VOUCH.run(&args);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!("no report: {}", String::from_utf8_lossy(&out.stderr));
    });
    (out.status.success(), report)
}

/// The count of one (outcome, reason) among the control-topic outcomes.
fn control(stats: &Value, outcome: &str, reason: &str) -> u64 {
    count_in(stats, "control", outcome, reason)
}

fn records(data_dir: &Path, kind: RecordKind) -> Vec<Vec<u8>> {
    LogReader::open(data_dir.join("log"), 0)
        .unwrap()
        .map(Result::unwrap)
        .filter(|r| r.kind == kind)
        .map(|r| r.payload)
        .collect()
}

/// A delegate certificate's delegate address.
fn delegate_of(id: &Identity) -> Address {
    SignedDelegation::decode(&std::fs::read(id.p("d.cert")).unwrap()).unwrap().delegate
}

/// Publishes the 8 fixture events of `id` through the SDK, one envelope each.
fn publish_events(id: &Identity, bootstrap: &str) -> Value {
    ok_json(&id.publish_each_command(&id.events(), bootstrap, "60s").output().unwrap())
}

/// Issue 18, item 2: 2,000 revocations signed by 500 throw-away keys were
/// all accepted and filled the table, after which a real principal's
/// revocation of its stolen delegate was ignored. Now the flood is refused
/// `unauthorized` and stores nothing, and the real revocation takes effect.
#[test]
fn a_revocation_flood_from_throwaway_keys_cannot_disable_revocation() {
    let gateway = Identity::new(VOUCH, &key(0x71, 0x01), &key(0x72, 0x01));
    let work = TempDir::new().unwrap();
    let snapshot = gateway_snapshot(work.path(), &[&gateway.principal]);
    let data_dir = work.path().join("data");
    let mut node = NodeProcess::spawn(VOUCH, &data_dir, &snapshot);

    let flood_dir = work.path().join("flood");
    std::fs::create_dir(&flood_dir).unwrap();
    let network = Eip712Network::arbitrum_one();
    let mut flood = Vec::new();
    for k in 0..500u32 {
        let mut bytes = [0x5au8; 32];
        bytes[28..].copy_from_slice(&k.to_be_bytes());
        let junk = SigningKey::from_slice(&bytes).unwrap();
        for d in 0..4u32 {
            // Any delegate, including the gateway's real one.
            let delegate = if d == 0 {
                delegate_of(&gateway)
            } else {
                let mut b = [0x6bu8; 32];
                b[24..28].copy_from_slice(&k.to_be_bytes());
                b[28..].copy_from_slice(&d.to_be_bytes());
                address_of(SigningKey::from_slice(&b).unwrap().verifying_key())
            };
            let r = SignedRevocation::issue(&junk, network, delegate, now_secs());
            let path = flood_dir.join(format!("{k}-{d}.cbor"));
            std::fs::write(&path, r.encode()).unwrap();
            flood.push(path);
        }
    }
    let (_, report) = publish_raw(&flood, &node.p2p(), true);
    assert_eq!(report["stats"]["published"], json!(2000), "{report}");
    let stats = node.wait_stats("the flood refused", |s| control(s, "reject", "unauthorized") >= 1);
    // gossipsub graylists the flooding peer after a few rejections: what it
    // sent after that never reaches the node (see the README's security notes).
    println!("flood: {} of 2000 validated before the peer was graylisted", {
        control(&stats, "reject", "unauthorized")
    });
    assert_eq!(control(&stats, "accept", "revocation"), 0, "{stats}");

    // The gateway's delegate still publishes; its principal revokes it; its
    // next envelope is refused as revoked.
    publish_events(&gateway, &node.p2p());
    node.wait_stats("the delegate accepted", |s| s["accepted"].as_u64().unwrap() >= 8);
    gateway.revoke(&delegate_of(&gateway).to_hex(), None, "revocation.cbor");
    let (ok, report) = publish_raw(&[gateway.p("revocation.cbor").into()], &node.p2p(), true);
    assert!(ok, "{report}");
    node.wait_stats("the revocation applied", |s| control(s, "accept", "revocation") == 1);
    gateway.sign_envelope("d.cert", "after-revocation", None, "after.cbor");
    publish_raw(&[gateway.p("after.cbor").into()], &node.p2p(), false);
    let stats =
        node.wait_stats("the revoked delegate refused", |s| count(s, "reject", "revoked") >= 1);
    assert_eq!(control(&stats, "accept", "revocation"), 1, "{stats}");
    assert!(node.terminate().success());
    // The log holds the real revocation only.
    let logged = records(&data_dir, RecordKind::Revocation);
    assert_eq!(logged, vec![std::fs::read(gateway.p("revocation.cbor")).unwrap()]);

    // After a restart (revocations re-read from the state and the log) the
    // delegate is still refused.
    let mut node = NodeProcess::spawn(VOUCH, &data_dir, &snapshot);
    gateway.sign_envelope("d.cert", "after-restart", None, "restart.cbor");
    publish_raw(&[gateway.p("restart.cbor").into()], &node.p2p(), false);
    node.wait_stats("refused after the restart", |s| count(s, "reject", "revoked") == 1);
    assert!(node.terminate().success());
}

/// Issue 18, item 6: one principal's rate budget is shared by all of its
/// delegates. Three gateway delegates of one principal, each sending more
/// than the whole budget, get exactly the budget together (the bucket is
/// refilled at 0 per second here, so time does not matter); its loadtest
/// delegate has its own, smaller bucket by design.
#[test]
fn several_delegates_of_one_principal_share_one_rate_budget() {
    const GATEWAY_BURST: u64 = 5;
    const LOADTEST_BURST: u64 = 2;
    let principal = key(0x73, 0x01);
    let gateways: Vec<Identity> =
        (0..3).map(|i| Identity::new(VOUCH, &principal, &key(0x74, i))).collect();
    let loadtest = Identity::with_role(VOUCH, &principal, &key(0x75, 0x01), "loadtest");
    let work = TempDir::new().unwrap();
    let snapshot = gateway_snapshot(work.path(), &[&gateways[0].principal]);
    let data_dir = work.path().join("data");
    let config = format!(
        "[validation.rate_limits.gateway]\nrate_per_sec = 0\nburst = {GATEWAY_BURST}\n\
         [validation.rate_limits.loadtest]\nrate_per_sec = 0\nburst = {LOADTEST_BURST}\n"
    );
    let mut node = NodeProcess::spawn_configured(VOUCH, &data_dir, &snapshot, &config);
    for id in gateways.iter().chain([&loadtest]) {
        publish_events(id, &node.p2p());
    }
    let total = 8 * 4;
    let stats = node.wait_stats("every envelope decided", |s| {
        s["accepted"].as_u64().unwrap() + count(s, "ignore", "rate_limited") >= total
    });
    assert_eq!(stats["accepted"], json!(GATEWAY_BURST + LOADTEST_BURST), "{stats}");
    assert!(node.terminate().success());
    let mut gateway_role = 0;
    let mut loadtest_role = 0;
    for payload in records(&data_dir, RecordKind::Envelope) {
        let env = Envelope::decode(&payload).unwrap();
        let batch = TelemetryBatch::decode(&env.content).unwrap();
        let cert = SignedDelegation::decode(&batch.certificate).unwrap();
        assert_eq!(cert.principal.to_hex(), gateways[0].principal);
        match cert.role {
            vouch_delegation::Role::Gateway => gateway_role += 1,
            vouch_delegation::Role::Loadtest => loadtest_role += 1,
            other => panic!("{other}"),
        }
    }
    assert_eq!((gateway_role, loadtest_role), (GATEWAY_BURST, LOADTEST_BURST));
}

/// Issue 18, item 6: validity is judged at the envelope's own stamp, so an
/// expired certificate kept working for envelopes back-dated inside the
/// 10-minute replay window. Arriving more than the clock skew (5 min) after
/// the certificate's notAfter, an envelope is refused whatever its stamp.
#[test]
fn an_expired_certificate_does_not_work_for_a_backdated_envelope() {
    let gateway = Identity::new(VOUCH, &key(0x76, 0x01), &key(0x77, 0x01));
    let now = now_secs();
    // notAfter 400 s ago; the envelope stamped 450 s ago, inside the window.
    let out = VOUCH.json(&[
        "delegate",
        "issue",
        "--principal-key",
        &gateway.p("p.key"),
        "--delegate",
        &delegate_of(&gateway).to_hex(),
        "--role",
        "gateway",
        "--region",
        "FRA",
        "--not-before",
        &(now - 3600).to_string(),
        "--valid-for",
        "3200s",
        "--out",
        &gateway.p("expired.cert"),
    ]);
    assert_eq!(out["not_after"], json!(now - 400), "{out}");
    gateway.sign_envelope("expired.cert", "backdated", Some((now - 450) * 1000), "backdated.cbor");
    let work = TempDir::new().unwrap();
    let snapshot = gateway_snapshot(work.path(), &[&gateway.principal]);
    let mut node = NodeProcess::spawn(VOUCH, &work.path().join("data"), &snapshot);
    let (ok, report) = publish_raw(&[gateway.p("backdated.cbor").into()], &node.p2p(), false);
    assert!(ok, "{report}");
    let stats = node.wait_stats("the back-dated envelope refused", |s| {
        count(s, "reject", "expired_certificate") == 1
    });
    assert_eq!(stats["accepted"], json!(0), "{stats}");
    assert!(node.terminate().success());
}

/// Signed envelopes of `id` with `n` status-heavy events (one each), on one chain.
fn heavy_envelopes(id: &Identity, dir: &Path, n: u32) -> Vec<PathBuf> {
    let delegate = parse_hex_key(std::fs::read_to_string(id.p("d.key")).unwrap().trim()).unwrap();
    let cert = std::fs::read(id.p("d.cert")).unwrap();
    let stamp = now_secs() * 1000;
    let pad = "x".repeat(10_000);
    let mut prev = None;
    (0..n)
        .map(|seq| {
            let data = json!({"type": "status", "stream_id": format!("s{seq}"), "pad": pad});
            let event = Event::from_type_and_data("ai_stream_status", data, stamp).unwrap();
            let batch = TelemetryBatch::new(cert.clone(), vec![event]);
            let msg = MessageId {
                stream_id: format!("{}/livepeer/telemetry", id.principal),
                partition: 0,
                timestamp: stamp,
                seq,
                publisher: Address::ZERO,
                msg_chain_id: "heavy".into(),
            };
            let env = Envelope::sign(msg, prev, batch.encode(), &delegate).unwrap();
            prev = Some(MessageRef { timestamp: stamp, seq });
            let path = dir.join(format!("{seq:05}.cbor"));
            std::fs::write(&path, env.encode()).unwrap();
            path
        })
        .collect()
}

/// Issue 18, item 4: in the hostile pass thousands of envelopes a gateway
/// sent never reached validation and nothing counted them (gossipsub drops
/// what waits in its per-peer send queue past its publish timeout, and
/// reports it only in a `SlowPeer` event nobody handled). Here the node
/// stops reading for a while (SIGSTOP) in the middle of a burst: every
/// envelope sent is then either decided or shed at the node, or counted as
/// lost by the publisher.
#[test]
fn every_envelope_sent_is_accounted_for_when_the_node_stalls() {
    const N: u32 = 4000;
    let gateway = Identity::new(VOUCH, &key(0x78, 0x01), &key(0x79, 0x01));
    let work = TempDir::new().unwrap();
    let snapshot = gateway_snapshot(work.path(), &[&gateway.principal]);
    let config = "[validation.rate_limits.gateway]\nrate_per_sec = 100000\nburst = 100000\n";
    let mut node =
        NodeProcess::spawn_configured(VOUCH, &work.path().join("data"), &snapshot, config);
    let dir = work.path().join("burst");
    std::fs::create_dir(&dir).unwrap();
    let files = heavy_envelopes(&gateway, &dir, N);
    let pid = node.process.child.id().to_string();
    let stall = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
        // Longer than gossipsub's 5 s publish timeout.
        std::thread::sleep(Duration::from_secs(7));
        assert!(Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    });
    let (_, report) = publish_raw(&files, &node.p2p(), false);
    stall.join().unwrap();
    let s = &report["stats"];
    let lost = ["dropped_pending", "queue_full", "send_failed", "unsent"]
        .iter()
        .map(|k| s[k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(s["accepted"], json!(N), "{report}");
    assert_eq!(s["in_flight"], json!(0), "{report}");
    let seen = |s: &Value| -> u64 {
        ["accepted", "rejected", "ignored", "shed"].iter().map(|k| s[k].as_u64().unwrap()).sum()
    };
    let stats =
        node.wait_stats("everything that left decided", |st| seen(st) + lost >= u64::from(N));
    println!("sent {N}: node {stats}, publisher lost {lost}: {report}");
    assert_eq!(seen(&stats) + lost, u64::from(N), "{stats} {report}");
    assert!(node.terminate().success());
}
