//! The Streamr bridge on a real, private Streamr network, loopback only:
//! ganache with Streamr's StreamRegistryV5, a trackerless-network entry
//! point, Streamr's own SDK as an independent subscriber and publisher
//! (`interop/streamr-client.mjs`), `vouch node` verifiers, and `vouch bridge
//! streamr` with its sidecar. The stream and its PUBLISH grants are made
//! with `vouch streamr` and sent as a wallet would. What crossed is checked
//! by Streamr's SDK (signature and on-chain permission of every message) and
//! by the receiving verifier's own counts. Waits are bounded; nothing
//! asserts timing (the figures come from the ignored `bench_streamr_network`).
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tempfile::TempDir;
use vouch_delegation::SignedDelegation;
use vouch_schema::Envelope;
use vouch_schema::streamr::partition_for_key;
use vouch_testkit::authority::gateway_snapshot;
use vouch_testkit::bridge::{Bridge, inbound, publish, stream_of, wait_accepted};
use vouch_testkit::cli::{Identity, Vouch, ok_json};
use vouch_testkit::node::{NodeProcess, count, count_in};
use vouch_testkit::process::child_pid;
use vouch_testkit::streamr::{Lines, StreamrNet, node_options, sidecar_script};
use vouch_testkit::{WAIT, repo_root};

const VOUCH: Vouch = Vouch::at(env!("CARGO_BIN_EXE_vouch"));

const PRINCIPAL_KEY: &str = "0x4444444444444444444444444444444444444444444444444444444444444444";
const DELEGATE_KEY: &str = "0x5555555555555555555555555555555555555555555555555555555555555555";
/// A second delegate of the same principal: a valid certificate, never granted PUBLISH.
const UNGRANTED_KEY: &str = "0x7777777777777777777777777777777777777777777777777777777777777777";

fn delegate_of(id: &Identity) -> String {
    let cert = SignedDelegation::decode(&std::fs::read(id.p("d.cert")).unwrap()).unwrap();
    cert.delegate.to_string()
}

/// The partition the fixtures' certificates (region FRA) publish on.
fn partition() -> u32 {
    partition_for_key(100, "FRA")
}

fn vouch_json(args: &[String]) -> Value {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    VOUCH.json(&args)
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Creates the principal's stream as its wallet would: the
/// `eth_sendTransaction` request `vouch streamr create` printed, sent to the
/// chain, where the principal's account is unlocked.
fn create_stream(net: &StreamrNet, id: &Identity) {
    let mut args =
        vec!["streamr".into(), "create".into(), "--principal".into(), id.principal.clone()];
    args.extend(net.registry_args());
    let doc = vouch_json(&args);
    assert_eq!(doc["stream_id"], json!(stream_of(id)));
    net.send(&doc["eth_sendTransaction"]);
}

/// Grants PUBLISH to `id`'s delegate the cold way: prepared with nonce and
/// fees read from the chain, signed offline with the principal's key file,
/// then sent raw.
fn grant_publish(net: &StreamrNet, id: &Identity) {
    let mut args = vec!["streamr".into(), "grant".into(), "--cert".into(), id.p("d.cert")];
    args.extend(net.registry_args());
    args.extend(["--registry-rpc".into(), net.chain.url().to_owned()]);
    let doc = vouch_json(&args);
    assert!(doc["unsigned"].as_str().unwrap().starts_with("0x02"), "{doc}");
    std::fs::write(id.p("grant.json"), doc.to_string()).unwrap();
    let signed = vouch_json(&[
        "streamr".into(),
        "sign".into(),
        id.p("grant.json"),
        "--principal-key".into(),
        id.p("p.key"),
    ]);
    net.send(&signed["eth_sendRawTransaction"]);
}

/// A bridge on the Streamr network (its sidecar loopback-only too).
fn bridge(net: &StreamrNet, args: &[&str]) -> Bridge {
    let script = sidecar_script();
    let mut all =
        vec!["--streamr-config", net.config_path(), "--sidecar", path_str(&script), "--fixed-peer"];
    all.extend_from_slice(args);
    Bridge::spawn_env(VOUCH, &all, &[("NODE_OPTIONS", &node_options())])
}

fn sidecar_up(bridge: &Bridge) {
    bridge.wait_stats("the sidecar in the network", |s| s["sidecar"]["up"] == json!(true));
}

/// The envelopes committed in a log, as `vouch bridge streamr export` frames
/// them: (timestamp, seq, chain) → signature hex.
fn exported_signatures(log: &Path) -> BTreeMap<(u64, u64, String), String> {
    let out = VOUCH.run(&["bridge", "streamr", "export", path_str(log)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut rest = &out.stdout[..];
    let mut map = BTreeMap::new();
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let env = Envelope::from_streamr_bytes(&rest[4..4 + len]).unwrap();
        map.insert(
            (env.id.timestamp, u64::from(env.id.seq), env.id.msg_chain_id.clone()),
            hex::encode(env.signature.0),
        );
        rest = &rest[4 + len..];
    }
    map
}

fn messages(sub: &Lines) -> Vec<Value> {
    sub.of("message")
}

fn errors(sub: &Lines, code: &str) -> usize {
    sub.of("error").iter().filter(|e| e["code"] == code).count()
}

/// A fresh envelope of `id`'s delegate (its own chain), as Streamr protobuf hex.
fn signed_hex(id: &Identity, chain: &str) -> String {
    let cbor = id.sign_envelope("d.cert", chain, None, &format!("{chain}.cbor"));
    hex::encode(Envelope::decode(&cbor).unwrap().to_streamr_bytes())
}

/// Streamr's SDK publishing `content` (hex) `count` times, `gap_ms` apart,
/// signed with `key`, on the fixtures' partition: its JSON answer.
fn sdk_publish(
    net: &StreamrNet,
    key: &str,
    stream: &str,
    content: &str,
    count: usize,
    gap_ms: u64,
) -> Value {
    let (p, count, gap) = (partition().to_string(), count.to_string(), gap_ms.to_string());
    net.client(&[
        "publish",
        "--key",
        key,
        "--stream",
        stream,
        "--partition",
        &p,
        "--content",
        content,
        "--count",
        &count,
        "--gap-ms",
        &gap,
    ])
}

/// A batch of fixture events under `id`'s certificate, as content bytes (hex).
fn batch_hex(id: &Identity) -> String {
    let cbor = id.sign_envelope("d.cert", "content", None, "content.cbor");
    hex::encode(Envelope::decode(&cbor).unwrap().content)
}

/// A private Streamr network where the gateway principal's stream exists
/// and its delegate holds PUBLISH, a validating SDK subscriber on the
/// stream's partition, and an authority snapshot naming the principal.
struct Granted {
    gateway: Identity,
    stream: String,
    net: StreamrNet,
    sub: Lines,
    snapshot: PathBuf,
    work: TempDir,
}

fn granted() -> Granted {
    let gateway = Identity::new(VOUCH, PRINCIPAL_KEY, DELEGATE_KEY);
    let stream = stream_of(&gateway);
    let net = StreamrNet::start(&[PRINCIPAL_KEY]);
    create_stream(&net, &gateway);
    grant_publish(&net, &gateway);
    let work = TempDir::new().unwrap();
    let snapshot = gateway_snapshot(work.path(), &[&gateway.principal]);
    let sub = net.subscriber(&stream, &[partition()]);
    Granted { gateway, stream, net, sub, snapshot, work }
}

#[test]
fn envelopes_cross_into_streamr_unchanged_and_back_into_another_network() {
    let Granted { gateway, stream, net, sub, snapshot, work } = granted();
    let ungranted = Identity::new(VOUCH, PRINCIPAL_KEY, UNGRANTED_KEY);
    let p = partition();
    // Network A: a verifier and a bridge following its log into Streamr.
    let node_a = NodeProcess::spawn(VOUCH, &work.path().join("a"), &snapshot);
    let log_a = work.path().join("a/log");
    let bridge_a = bridge(&net, &["--log", path_str(&log_a)]);
    // Network B: a verifier and a bridge from Streamr into its gossip.
    let node_b = NodeProcess::spawn(VOUCH, &work.path().join("b"), &snapshot);
    let bridge_b = bridge(
        &net,
        &[
            "--stream",
            &stream,
            "--partition",
            &p.to_string(),
            "--bootstrap",
            &node_b.p2p(),
            "--authority-snapshot",
            path_str(&snapshot),
            "--revocations-log",
            path_str(&work.path().join("b/log")),
        ],
    );
    assert_eq!(bridge_a.announce()["link"], "streamr");
    sidecar_up(&bridge_a);
    sidecar_up(&bridge_b);

    // A → bridge → Streamr: Streamr's SDK validates every message (signature,
    // PUBLISH on chain) and sees Vouch's publisher and signature unchanged.
    let n = publish(&gateway, &node_a.p2p(), 3);
    wait_accepted(&node_a, n);
    bridge_a.wait_stats("outbound publishes", |s| s["outbound"]["published"] == json!(n));
    let got = sub.wait("every envelope at the SDK subscriber", |l| {
        l.iter().filter(|v| v["type"] == "message").count() as u64 >= n
    });
    let signatures = exported_signatures(&log_a);
    assert_eq!(signatures.len() as u64, n);
    let delegate = delegate_of(&gateway);
    for m in got.iter().filter(|v| v["type"] == "message") {
        assert_eq!(m["publisherId"], json!(delegate), "{m}");
        assert_eq!(m["signatureType"], "ECDSA_SECP256K1_EVM");
        assert_eq!(m["contentType"], 1, "BINARY: {m}");
        assert_eq!((m["stream"].clone(), m["partition"].clone()), (json!(stream), json!(p)));
        let key = (
            m["timestamp"].as_u64().unwrap(),
            m["sequenceNumber"].as_u64().unwrap(),
            m["msgChainId"].as_str().unwrap().to_owned(),
        );
        assert_eq!(m["signature"].as_str(), signatures.get(&key).map(String::as_str), "{m}");
    }
    assert_eq!(messages(&sub).len() as u64, n);
    assert!(sub.of("error").is_empty(), "{:?}", sub.of("error"));

    // Streamr → bridge → B: exactly what A accepted.
    bridge_b.wait_stats("inbound forwards", |s| s["inbound"]["forwarded"] == json!(n));
    wait_accepted(&node_b, n);
    let stats_b = node_b.stats();
    assert_eq!((stats_b["rejected"].clone(), stats_b["ignored"].clone()), (json!(0), json!(0)));

    // The delegate publishing with Streamr's own SDK (its signature, its
    // numbering): the SDK subscriber and network B both accept it.
    let published = sdk_publish(&net, DELEGATE_KEY, &stream, &batch_hex(&gateway), 1, 0);
    assert_eq!(published["type"], "published", "{published}");
    sub.wait("the SDK-published message", |l| {
        l.iter().filter(|v| v["type"] == "message").count() as u64 > n
    });
    wait_accepted(&node_b, n + 1);

    // A delegate without PUBLISH: Streamr's SDK refuses it when publishing,
    // and every subscriber refuses its message injected unchanged.
    let refused = sdk_publish(&net, UNGRANTED_KEY, &stream, "00", 1, 0);
    assert_eq!(refused["code"], "MISSING_PERMISSION", "{refused}");
    net.client(&[
        "publish-raw",
        "--stream",
        &stream,
        "--message",
        &signed_hex(&ungranted, "ungranted"),
    ]);
    sub.wait("MISSING_PERMISSION", |_| errors(&sub, "MISSING_PERMISSION") == 1);

    // A tampered message: INVALID_SIGNATURE at the subscriber, bad_signature at the bridge.
    let mut tampered =
        Envelope::from_streamr_bytes(&hex::decode(signed_hex(&gateway, "tampered")).unwrap())
            .unwrap();
    tampered.signature.0[40] ^= 0x01; // inside s
    let tampered = hex::encode(tampered.to_streamr_bytes());
    net.client(&["publish-raw", "--stream", &stream, "--message", &tampered]);
    sub.wait("INVALID_SIGNATURE", |_| errors(&sub, "INVALID_SIGNATURE") == 1);
    bridge_b.wait_stats("the forgery refused", |s| inbound(s, "reject", "bad_signature") == 1);
    assert_eq!(messages(&sub).len() as u64, n + 1, "nothing refused was delivered");

    // `vouch streamr check`: A's log (one delegate, granted) agrees with the
    // chain; B's log also holds the ungranted delegate Vouch accepted.
    let check = |log: &Path| {
        let mut args = vec![
            "streamr".to_owned(),
            "check".into(),
            "--registry-rpc".into(),
            net.chain.url().to_owned(),
            "--log".into(),
            path_str(log).to_owned(),
            "--from-block".into(),
            "0".into(),
        ];
        args.extend(net.registry_args());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        VOUCH.run(&args)
    };
    let agree = ok_json(&check(&log_a));
    assert_eq!(agree["agree"], true, "{agree}");
    assert_eq!(agree["streams"][0]["delegates"][0]["streamr_publish"], true, "{agree}");
    wait_accepted(&node_b, n + 2);
    let out = check(&work.path().join("b/log"));
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let delegates = report["streams"][0]["delegates"].as_array().unwrap();
    let ungranted_delegate = delegate_of(&ungranted);
    let row = delegates.iter().find(|d| d["delegate"] == json!(ungranted_delegate)).unwrap();
    assert_eq!(
        (row["vouch"].clone(), row["streamr_publish"].clone()),
        (json!("accepts"), json!(false))
    );

    // A revoked grant stops the flow: the Vouch revocation reaches the
    // verifiers, the registry transaction removes PUBLISH, and then neither
    // Streamr's SDK nor a verifier takes the delegate's messages.
    gateway.revoke(&delegate, None, "revocation.cbor");
    let mut args = vec![
        "streamr".into(),
        "revoke".into(),
        "--revocation".into(),
        gateway.p("revocation.cbor"),
    ];
    args.extend(net.registry_args());
    let doc = vouch_json(&args);
    net.send(&doc["eth_sendTransaction"]);
    for node in [&node_a, &node_b] {
        VOUCH.json(&[
            "publish",
            "--raw",
            &gateway.p("revocation.cbor"),
            "--control",
            "--bootstrap",
            &node.p2p(),
            "--timeout",
            "60s",
        ]);
        node.wait_stats("the revocation applied", |s| {
            count_in(s, "control", "accept", "revocation") == 1
        });
    }
    // Bridge B's pipeline applies what B logged.
    bridge_b.wait_stats("the revocation in the bridge", |s| {
        s["inbound"]["revocations_applied"] == json!(1)
    });
    std::thread::sleep(Duration::from_millis(1500)); // the SDKs' permission caches expire (1 s)
    let after = sdk_publish(&net, DELEGATE_KEY, &stream, &batch_hex(&gateway), 1, 0);
    assert_eq!(after["code"], "MISSING_PERMISSION", "{after}");
    net.client(&[
        "publish-raw",
        "--stream",
        &stream,
        "--message",
        &signed_hex(&gateway, "revoked"),
    ]);
    sub.wait("MISSING_PERMISSION after the revocation", |_| {
        errors(&sub, "MISSING_PERMISSION") == 2
    });
    bridge_b.wait_stats("the revoked delegate refused", |s| inbound(s, "reject", "revoked") == 1);
    // Its envelopes no longer get into A's log, so nothing more is bridged.
    let _ = gateway.publish(&node_a.p2p(), "10s");
    node_a.wait_stats("the revoked envelopes refused", |s| count(s, "reject", "revoked") >= 1);
    assert_eq!(node_a.stats()["accepted"], json!(n));
    assert_eq!(node_b.stats()["accepted"], json!(n + 2));
    assert_eq!(bridge_a.stats()["outbound"]["published"], json!(n));
    assert_eq!(messages(&sub).len() as u64, n + 1);
    let agree = ok_json(&check(&log_a));
    assert_eq!(agree["agree"], true, "revoked on both sides: {agree}");
}

/// The sidecar is supervised: killed, it is restarted and what it had not
/// confirmed goes again; stopped (SIGSTOP), it misses its health checks and
/// is replaced. Nothing committed in A is lost on the way to Streamr.
#[test]
fn a_killed_or_hung_sidecar_is_replaced_and_nothing_is_lost() {
    let Granted { gateway, net, sub, snapshot, work, .. } = granted();
    let node_a = NodeProcess::spawn(VOUCH, &work.path().join("a"), &snapshot);
    let log_a = work.path().join("a/log");
    let config = work.path().join("bridge.toml");
    std::fs::write(
        &config,
        "[bridge.streamr.network]\nhealth_interval_ms = 200\nhealth_timeout_ms = 2000\n\
         restart_backoff_ms = 100\n",
    )
    .unwrap();
    let bridge_a = bridge(&net, &["--config", path_str(&config), "--log", path_str(&log_a)]);
    sidecar_up(&bridge_a);

    let sidecar = |what: &str| {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(pid) = child_pid(bridge_a.process.child.id(), "sidecar.mjs") {
                return pid.to_string();
            }
            assert!(Instant::now() < deadline, "no sidecar process {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let n1 = publish(&gateway, &node_a.p2p(), 1);
    wait_accepted(&node_a, n1);
    bridge_a.wait_stats("the first envelopes out", |s| s["outbound"]["published"] == json!(n1));

    // Killed: restarted, counted.
    let first = sidecar("to kill");
    assert!(Command::new("kill").args(["-KILL", &first]).status().unwrap().success());
    bridge_a.wait_stats("a restart", |s| {
        s["sidecar"]["restarts"].as_u64() >= Some(1) && s["sidecar"]["up"] == json!(true)
    });
    let n2 = publish(&gateway, &node_a.p2p(), 1);
    wait_accepted(&node_a, n1 + n2);
    bridge_a.wait_stats("the next envelopes out", |s| s["outbound"]["published"] == json!(n1 + n2));

    // Hung: replaced after its health checks go unanswered; envelopes
    // committed meanwhile wait and then cross.
    let second = sidecar("to stop");
    assert_ne!(first, second);
    assert!(Command::new("kill").args(["-STOP", &second]).status().unwrap().success());
    let n3 = publish(&gateway, &node_a.p2p(), 1);
    wait_accepted(&node_a, n1 + n2 + n3);
    let s = bridge_a.wait_stats("everything out after the hang", |s| {
        s["outbound"]["published"] == json!(n1 + n2 + n3)
    });
    assert!(s["sidecar"]["unhealthy"].as_u64() >= Some(1), "{s}");
    assert!(s["sidecar"]["starts"].as_u64() >= Some(3), "{s}");
    let _ =
        Command::new("kill").args(["-KILL", &second]).stderr(std::process::Stdio::null()).status();

    // Every committed envelope reached Streamr's SDK subscriber (at least once).
    let total = n1 + n2 + n3;
    sub.wait("every envelope at the subscriber", |l| {
        let ids: std::collections::BTreeSet<String> = l
            .iter()
            .filter(|v| v["type"] == "message")
            .map(|v| format!("{}/{}/{}", v["msgChainId"], v["timestamp"], v["sequenceNumber"]))
            .collect();
        ids.len() as u64 == total
    });
    let (status, metrics) = bridge_a.get("/metrics");
    assert_eq!(status, 200);
    for name in [
        "vouch_bridge_sidecar_restarts_total",
        "vouch_bridge_sidecar_unhealthy_total",
        "vouch_bridge_sidecar_queue_capacity 1024",
    ] {
        assert!(metrics.contains(name), "{name}: {metrics}");
    }
}

/// The calls `vouch streamr` encodes are StreamRegistryV5's, as
/// `@streamr/network-contracts@8.2.0` ships it.
#[test]
fn registry_calls_match_the_published_abi() {
    use alloy::json_abi::JsonAbi;
    use alloy::sol_types::{SolCall, SolEvent};
    use vouch_delegation::stream_registry::abi::IStreamRegistryV5 as R;
    let path = repo_root().join(
        "interop/node_modules/@streamr/network-contracts/dist/artifacts/contracts/StreamRegistry/StreamRegistryV5.sol/StreamRegistryV5.json",
    );
    let artifact: Value = serde_json::from_slice(
        &std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run `npm ci --prefix interop`)", path.display())),
    )
    .unwrap();
    let abi: JsonAbi = serde_json::from_value(artifact["abi"].clone()).unwrap();
    let functions: Vec<String> = abi.functions().map(|f| f.signature()).collect();
    for ours in [
        R::createStreamWithPermissionsCall::SIGNATURE,
        R::setPermissionsForUserCall::SIGNATURE,
        R::revokeAllPermissionsForUserCall::SIGNATURE,
        R::existsCall::SIGNATURE,
        R::getStreamMetadataCall::SIGNATURE,
        R::getPermissionsForUserCall::SIGNATURE,
        R::getDirectPermissionsForUserCall::SIGNATURE,
    ] {
        assert!(functions.iter().any(|f| f == ours), "{ours} is not in the 8.2.0 ABI");
    }
    let events: Vec<String> = abi.events().map(|e| e.signature()).collect();
    assert!(events.iter().any(|e| e == R::PermissionUpdated::SIGNATURE));
    // The Permission struct's fields, in order.
    let f = abi.function("getDirectPermissionsForUser").unwrap()[0].clone();
    let names: Vec<&str> = f.outputs[0].components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["canEdit", "canDelete", "publishExpiration", "subscribeExpiration", "canGrant"]
    );
}

fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64() * 1000.0
}

fn percentiles(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let pct = |p: f64| v[((v.len() as f64 * p).ceil() as usize).max(1) - 1];
    format!(
        "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0)
    )
}

/// Latency and throughput into Streamr, the bridge beside Streamr's own
/// SDK publishing the same content in the same run, received by one SDK
/// subscriber that validates everything. Latency one message at a time
/// (the bridge: from the envelope committed in A's log, as A's stats show
/// it, polled every 0.2 ms; the SDK: from its `publish` call); throughput
/// from a backlog (the bridge: envelopes already in the log when it starts;
/// the SDK: back-to-back `publish` calls), first to last receipt.
/// `cargo test -p vouch-verifier --release --test streamr_network -- --ignored --nocapture`
/// (`STREAMR_BENCH_N`, `STREAMR_BENCH_BACKLOG` change the sizes).
#[test]
#[ignore = "benchmark: prints latency and throughput figures"]
fn bench_streamr_network() {
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (n, backlog) = (env("STREAMR_BENCH_N", 100), env("STREAMR_BENCH_BACKLOG", 1000));
    let Granted { gateway, stream, net, sub, snapshot, work } = granted();
    // Stats polled faster than the API's default limit; the backlog faster
    // than a gateway's default rate.
    let unlimited = "[api.rate_limit]\nper_second = 0.0\n\
                     [validation.rate_limits.gateway]\nrate_per_sec = 1000000\nburst = 1000000\n";
    let node_a = NodeProcess::spawn_configured(VOUCH, &work.path().join("a"), &snapshot, unlimited);
    let log_a = work.path().join("a/log");
    let received = |k: usize| -> Vec<f64> {
        sub.wait("receipts", |l| l.iter().filter(|v| v["type"] == "message").count() >= k);
        messages(&sub).iter().map(|m| m["received_ms"].as_f64().unwrap()).collect()
    };

    // Bridge throughput: a backlog in A's log, then the bridge starts.
    let copies = backlog.div_ceil(8);
    let backlog = publish(&gateway, &node_a.p2p(), copies) as usize;
    wait_accepted(&node_a, backlog as u64);
    let bridge_a = bridge(&net, &["--log", path_str(&log_a)]);
    let times = received(backlog);
    let bridge_rate = (backlog - 1) as f64 / ((times[backlog - 1] - times[0]) / 1000.0);

    // Bridge latency: one envelope at a time, committed → received.
    // One envelope of the 8 fixture events per round: the batch is cut when full.
    let publisher = gateway.publisher(&node_a.p2p(), 8, 60_000);
    let events = std::fs::read(gateway.events()).unwrap();
    let mut bridge_ms = Vec::new();
    for i in 1..=n {
        for line in events.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            publisher.publish(vouch_sdk::adapter::from_kafka_line(line).unwrap()).unwrap();
        }
        publisher.flush(WAIT).unwrap();
        let deadline = Instant::now() + WAIT;
        while node_a.stats()["accepted"].as_u64().unwrap() < (backlog + i) as u64 {
            assert!(Instant::now() < deadline, "commit {i} in A never happened");
            std::thread::sleep(Duration::from_micros(200));
        }
        let committed = now_ms();
        let at = received(backlog + i)[backlog + i - 1];
        bridge_ms.push(at - committed);
    }
    let _ = publisher.close(Duration::from_secs(5));
    drop(bridge_a);

    // Streamr's own SDK, same content size, same subscriber.
    let content = batch_hex(&gateway);
    let base = messages(&sub).len();
    let sdk = |count: usize, gap_ms: u64| -> Vec<f64> {
        let out = sdk_publish(&net, DELEGATE_KEY, &stream, &content, count, gap_ms);
        assert_eq!(out["type"], "published", "{out}");
        out["sent_ms"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
    };
    let sent = sdk(n, 50);
    let got = received(base + n);
    let sdk_ms: Vec<f64> = (0..n).map(|i| got[base + i] - sent[i]).collect();
    let base = base + n;
    sdk(backlog, 0);
    let got = received(base + backlog);
    let sdk_rate = (backlog - 1) as f64 / ((got[base + backlog - 1] - got[base]) / 1000.0);
    assert!(sub.of("error").is_empty(), "{:?}", sub.of("error"));

    println!(
        "streamr network bench: {n} envelopes one at a time, a backlog of {backlog}, {} content bytes each",
        content.len() / 2
    );
    println!(
        "  bridge, committed in A -> received by a Streamr SDK subscriber: {}",
        percentiles(bridge_ms)
    );
    println!("  Streamr SDK publish -> received by the same subscriber: {}", percentiles(sdk_ms));
    println!(
        "  bridge throughput into Streamr: {bridge_rate:.0} msgs/s ({backlog} envelopes from A's log)"
    );
    println!(
        "  Streamr SDK publish throughput: {sdk_rate:.0} msgs/s ({backlog} messages, back to back)"
    );
}
