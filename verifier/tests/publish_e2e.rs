//! Publishing end to end across processes on loopback: `vouch publish`
//! (the SDK in a CLI), `vouch publish --raw`, and the Go program linking the
//! SDK's C ABI, each received by a separate `vouch subscribe` process that
//! verifies every envelope. Waits are bounded; nothing asserts timing.
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Command;

use serde_json::{Value, json};
use vouch_testkit::cli::{Identity, Vouch, ok_json};
use vouch_testkit::repo_root;
use vouch_testkit::subscriber::Subscriber;

const VOUCH: Vouch = Vouch::at(env!("CARGO_BIN_EXE_vouch"));

#[test]
fn vouch_publish_replays_go_livepeer_events_to_a_subscriber() {
    let id = Identity::filled(VOUCH, 0x44, 0x55);
    let sub = Subscriber::spawn(VOUCH, "/ip4/127.0.0.1/tcp/0", 1);
    let report = ok_json(&id.publish(&sub.listen[0], "60s"));
    assert_eq!(report["lines"], json!(8));
    assert_eq!(report["stats"]["sent_events"], json!(8), "{report}");
    let got = sub.take(1);
    assert_eq!(got[0]["ok"], json!(true), "{}", got[0]);
    assert_eq!(got[0]["prev"], Value::Null, "a chain's first message");
    sub.wait_success();
}

#[test]
fn raw_publish_carries_bytes_unchanged_and_a_forgery_is_caught() {
    let id = Identity::filled(VOUCH, 0x44, 0x55);
    let mut forged = id.sign("good.cbor");
    let n = forged.len();
    forged[n - 70] ^= 0x01; // inside the content, before the signature
    std::fs::write(id.p("forged.cbor"), &forged).unwrap();

    let sub = Subscriber::spawn(VOUCH, "/ip4/127.0.0.1/tcp/0", 2);
    VOUCH.json(&[
        "publish",
        "--raw",
        &id.p("good.cbor"),
        &id.p("forged.cbor"),
        "--bootstrap",
        &sub.listen[0],
        "--timeout",
        "60s",
    ]);
    let got = sub.take(2);
    let oks: Vec<bool> = got.iter().map(|l| l["ok"].as_bool().unwrap()).collect();
    assert_eq!(oks.iter().filter(|ok| **ok).count(), 1, "{got:?}");
    let bad = got.iter().find(|l| l["ok"] == json!(false)).unwrap();
    assert!(bad["error"].as_str().unwrap().contains("signature"), "{bad}");
    assert_eq!(bad["bytes"], json!(n), "the forged bytes arrived unchanged");
}

#[test]
fn go_program_publishes_over_gossip_through_the_c_abi() {
    assert!(
        Command::new("go").arg("version").output().is_ok_and(|o| o.status.success()),
        "Go is missing: run scripts/go-example.sh once (it installs Debian's golang-go)"
    );
    let id = Identity::filled(VOUCH, 0x44, 0x55);
    let sub = Subscriber::spawn(VOUCH, "/ip4/127.0.0.1/tcp/0", 1);
    let config = format!(
        "key_file = {:?}\ncertificate = {:?}\n[transport]\nkind = \"gossip\"\nbootstrap = [{:?}]\n",
        id.p("d.key"),
        id.p("d.cert"),
        sub.listen[0]
    );
    std::fs::write(id.dir.path().join("gossip.toml"), config).unwrap();
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/go-example.sh"))
        .args(["--config", &id.p("gossip.toml"), "--work", &id.p("go")])
        .output()
        .unwrap();
    let stats = ok_json(&out);
    assert_eq!(stats["sent_events"], json!(8), "{stats}");
    let got = sub.take(1);
    assert_eq!(got[0]["ok"], json!(true), "{}", got[0]);
    sub.wait_success();
}
