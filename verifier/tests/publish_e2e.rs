//! Publishing end to end across processes on loopback: `vouch publish`
//! (the SDK in a CLI), `vouch publish --raw`, and the Go program linking the
//! SDK's C ABI, each received by a separate `vouch subscribe` process that
//! verifies every envelope. Waits are bounded; nothing asserts timing.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::subscriber::Subscriber;
use serde_json::{Value, json};
use tempfile::TempDir;

const PRINCIPAL_KEY: &str = "0x4444444444444444444444444444444444444444444444444444444444444444";
const DELEGATE_KEY: &str = "0x5555555555555555555555555555555555555555555555555555555555555555";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn vouch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vouch")).args(args).output().unwrap()
}

fn ok_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// A gateway identity: principal and delegate keys, and a certificate.
struct Identity {
    dir: TempDir,
}

impl Identity {
    fn new() -> Identity {
        let dir = TempDir::new().unwrap();
        std::fs::write(dir.path().join("p.key"), PRINCIPAL_KEY).unwrap();
        std::fs::write(dir.path().join("d.key"), DELEGATE_KEY).unwrap();
        let id = Identity { dir };
        let probe = ok_json(&vouch(&[
            "delegate",
            "issue",
            "--principal-key",
            &id.p("d.key"),
            "--delegate",
            &format!("0x{}", "00".repeat(20)),
            "--role",
            "gateway",
            "--out",
            &id.p("probe"),
        ]));
        let delegate = probe["principal"].as_str().unwrap().to_owned();
        ok_json(&vouch(&[
            "delegate",
            "issue",
            "--principal-key",
            &id.p("p.key"),
            "--delegate",
            &delegate,
            "--role",
            "gateway",
            "--region",
            "FRA",
            "--out",
            &id.p("d.cert"),
        ]));
        id
    }

    fn p(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    /// The 8 real go-livepeer fixture events as NDJSON.
    fn events(&self) -> String {
        let fixtures = repo_root().join("schemas/tests/data/go-livepeer-kafka-samples.json");
        let all: Vec<Value> = serde_json::from_slice(&std::fs::read(fixtures).unwrap()).unwrap();
        let ndjson: String = all.iter().map(|e| format!("{e}\n")).collect();
        std::fs::write(self.dir.path().join("events.ndjson"), ndjson).unwrap();
        self.p("events.ndjson")
    }
}

#[test]
fn vouch_publish_replays_go_livepeer_events_to_a_subscriber() {
    let id = Identity::new();
    let events = id.events();
    let sub = Subscriber::spawn("/ip4/127.0.0.1/tcp/0", 1);
    let out = vouch(&[
        "publish",
        "--key",
        &id.p("d.key"),
        "--cert",
        &id.p("d.cert"),
        "--events",
        &events,
        "--bootstrap",
        &sub.listen[0],
        "--timeout",
        "60s",
    ]);
    let report = ok_json(&out);
    assert_eq!(report["lines"], json!(8));
    assert_eq!(report["stats"]["sent_events"], json!(8), "{report}");
    let got = sub.take(1);
    assert_eq!(got[0]["ok"], json!(true), "{}", got[0]);
    assert_eq!(got[0]["prev"], Value::Null, "a chain's first message");
    sub.wait_success();
}

#[test]
fn raw_publish_carries_bytes_unchanged_and_a_forgery_is_caught() {
    let id = Identity::new();
    let events = id.events();
    ok_json(&vouch(&[
        "envelope",
        "sign",
        "--key",
        &id.p("d.key"),
        "--cert",
        &id.p("d.cert"),
        "--events",
        &events,
        "--out",
        &id.p("good.cbor"),
    ]));
    let mut forged = std::fs::read(id.p("good.cbor")).unwrap();
    let n = forged.len();
    forged[n - 70] ^= 0x01; // inside the content, before the signature
    std::fs::write(id.p("forged.cbor"), &forged).unwrap();

    let sub = Subscriber::spawn("/ip4/127.0.0.1/tcp/0", 2);
    ok_json(&vouch(&[
        "publish",
        "--raw",
        &id.p("good.cbor"),
        &id.p("forged.cbor"),
        "--bootstrap",
        &sub.listen[0],
        "--timeout",
        "60s",
    ]));
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
    let id = Identity::new();
    let sub = Subscriber::spawn("/ip4/127.0.0.1/tcp/0", 1);
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
