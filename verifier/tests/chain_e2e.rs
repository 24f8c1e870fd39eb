//! Authority from chain through a running `vouch node`: a real local
//! Ethereum node (ganache) runs Livepeer contract stand-ins; the verifier
//! reads the active set over JSON-RPC and refreshes it in the background.
//! Deactivating an orchestrator on chain stops its new events after the
//! next refresh, and the log records both views. Waits are bounded.
#![allow(clippy::unwrap_used, missing_docs)]

use serde_json::json;
use tempfile::TempDir;
use vouch_testkit::cli::{Identity, Vouch, ok_json};
use vouch_testkit::ganache;
use vouch_testkit::node::{NodeProcess, count};
use vouch_verifier::store::{LogReader, RecordKind};

const VOUCH: Vouch = Vouch::at(env!("CARGO_BIN_EXE_vouch"));

const ORCH_KEY: &str = "0x8888888888888888888888888888888888888888888888888888888888888888";
const ORCH_DELEGATE_KEY: &str =
    "0x9999999999999999999999999999999999999999999999999999999999999999";

#[test]
fn deactivating_an_orchestrator_on_chain_stops_its_new_events() {
    let orch = Identity::with_role(VOUCH, ORCH_KEY, ORCH_DELEGATE_KEY, "orchestrator");
    let chain = ganache::Ganache::start();
    let deployed = chain.deploy(&json!([
        {"address": orch.principal, "stake": "1000", "active": true},
        {"address": "0x00000000000000000000000000000000000000aa", "stake": "5", "active": true},
    ]));
    let work = TempDir::new().unwrap();
    let config = work.path().join("verifier.toml");
    std::fs::write(
        &config,
        format!(
            "[authority]\nrpc = \"{}\"\ncontroller = \"{}\"\nrefresh_interval_secs = 1\n",
            chain.url(),
            deployed.controller
        ),
    )
    .unwrap();
    let data_dir = work.path().join("data");
    let mut node = NodeProcess::spawn_args(
        VOUCH,
        &[
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--p2p-listen",
            "/ip4/127.0.0.1/tcp/0",
            "--http-listen",
            "127.0.0.1:0",
        ],
    );
    let publish = || ok_json(&orch.publish(&node.p2p(), "60s"));

    publish();
    node.wait_stats("the active orchestrator accepted", |s| s["accepted"].as_u64().unwrap() >= 1);

    chain.set_active(&deployed, &orch.principal, false);
    // The refresher records the new view in the log once it has read it.
    let log_dir = data_dir.join("log");
    let views = || {
        LogReader::open(&log_dir, 0)
            .unwrap()
            .filter(|r| r.as_ref().unwrap().kind == RecordKind::AuthorityView)
            .count()
    };
    node.wait_stats("the refreshed view recorded", |_| views() >= 2);
    let accepted = node.stats()["accepted"].as_u64().unwrap();
    publish();
    let stats = node.wait_stats("the deactivated orchestrator refused", |s| {
        count(s, "reject", "unauthorized") >= 1
    });
    assert_eq!(stats["accepted"].as_u64().unwrap(), accepted, "{stats}");
    assert!(node.terminate().success());

    let recorded: Vec<serde_json::Value> = LogReader::open(&log_dir, 0)
        .unwrap()
        .map(Result::unwrap)
        .filter(|r| r.kind == RecordKind::AuthorityView)
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .collect();
    let has_orch = |v: &serde_json::Value| {
        v["principals"].as_array().unwrap().iter().any(|p| p["address"] == json!(orch.principal))
    };
    assert!(has_orch(&recorded[0]), "first view holds the orchestrator: {}", recorded[0]);
    assert!(!has_orch(recorded.last().unwrap()), "last view lacks it");
}
