//! The `vouch` CLI end to end, as a principal, a delegate and an auditor use
//! it, checked against independent implementations: Streamr's own signer
//! (`@streamr/utils`), a wallet library (ethers v6) and a real local
//! Ethereum node (ganache) running Livepeer contract stand-ins.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};
use tempfile::TempDir;
use vouch_testkit::cli::Vouch;
use vouch_testkit::ganache;
use vouch_testkit::{fixtures, now_secs, repo_root};

const VOUCH: Vouch = Vouch::at(env!("CARGO_BIN_EXE_vouch"));

const PRINCIPAL_KEY: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";
const OTHER_KEY: &str = "0x2222222222222222222222222222222222222222222222222222222222222222";
const DELEGATE_KEY: &str = "0x3333333333333333333333333333333333333333333333333333333333333333";

/// Runs `vouch`, asserts the exit code, and parses stdout as JSON when it is.
fn vouch_json(args: &[&str], code: i32) -> Value {
    let out = VOUCH.run(args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(code),
        "vouch {args:?}\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or(Value::Null)
}

fn node(script: &str, args: &[&str]) -> Value {
    let root = repo_root();
    ganache::require_node_modules();
    let out =
        Command::new("node").arg(root.join("interop").join(script)).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "node {script} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

struct Workspace {
    dir: TempDir,
}

impl Workspace {
    fn new() -> Self {
        Workspace { dir: TempDir::new().unwrap() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn p(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_owned()
    }

    fn key(&self, name: &str, hex: &str) -> String {
        std::fs::write(self.path(name), format!("{hex}\n")).unwrap();
        self.p(name)
    }

    fn write(&self, name: &str, text: &str) -> String {
        std::fs::write(self.path(name), text).unwrap();
        self.p(name)
    }

    /// The address of a hex key, as `vouch` computes it.
    fn address_of(&self, key: &str) -> String {
        VOUCH.address_of(key, &self.p("probe.cert"))
    }

    fn issue(
        &self,
        principal_key: &str,
        delegate: &str,
        role: &str,
        out: &str,
        extra: &[&str],
    ) -> Value {
        let cert = self.p(out);
        let mut args = vec![
            "delegate",
            "issue",
            "--principal-key",
            principal_key,
            "--delegate",
            delegate,
            "--role",
            role,
            "--region",
            "FRA",
            "--out",
            &cert,
        ];
        args.extend_from_slice(extra);
        vouch_json(&args, 0)
    }

    /// The fixture events as NDJSON, as go-livepeer's Kafka consumers write it.
    fn events(&self) -> String {
        self.write("events.ndjson", &fixtures::kafka_ndjson())
    }
}

#[test]
fn keygen_writes_a_private_key_file_once() {
    let w = Workspace::new();
    let out = VOUCH.run(&["keygen", "--out", &w.p("k")]);
    assert!(out.status.success());
    let addr = String::from_utf8(out.stdout).unwrap();
    assert!(addr.trim().starts_with("0x") && addr.trim().len() == 42, "{addr}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(w.path("k")).unwrap().permissions().mode() & 0o777, 0o600);
    let again = VOUCH.run(&["keygen", "--out", &w.p("k")]);
    assert_eq!(again.status.code(), Some(2), "never overwrites a key");
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
}

#[test]
fn keystore_principal_key_issues_certificates() {
    let w = Workspace::new();
    let pw = w.write("pw", "correct horse\n");
    let addr =
        VOUCH.run(&["keygen", "--keystore", "--password-file", &pw, "--out", &w.p("ks.json")]);
    assert!(addr.status.success(), "{}", String::from_utf8_lossy(&addr.stderr));
    let addr = String::from_utf8(addr.stdout).unwrap().trim().to_owned();
    let delegate = w.address_of(&w.key("d", DELEGATE_KEY));
    let cert = w.p("c.cert");
    let v = vouch_json(
        &[
            "delegate",
            "issue",
            "--principal-key",
            &w.p("ks.json"),
            "--password-file",
            &pw,
            "--delegate",
            &delegate,
            "--role",
            "orchestrator",
            "--out",
            &cert,
        ],
        0,
    );
    assert_eq!(v["principal"], json!(addr));
    let wrong = w.write("wrong", "nope\n");
    let out = VOUCH.run(&[
        "delegate",
        "issue",
        "--principal-key",
        &w.p("ks.json"),
        "--password-file",
        &wrong,
        "--delegate",
        &delegate,
        "--role",
        "orchestrator",
        "--out",
        &w.p("c2.cert"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).to_lowercase().contains("password"));
}

#[test]
fn certificates_issue_verify_export_and_import() {
    let w = Workspace::new();
    let pk = w.key("p", PRINCIPAL_KEY);
    let delegate = w.address_of(&w.key("d", DELEGATE_KEY));
    let issued = w.issue(&pk, &delegate, "gateway", "c.cert", &["--valid-for", "7d"]);
    assert_eq!(
        issued["not_after"].as_u64().unwrap() - issued["not_before"].as_u64().unwrap(),
        7 * 86400
    );

    let ok = vouch_json(&["delegate", "verify", &w.p("c.cert")], 0);
    assert_eq!(ok["ok"], json!(true));
    assert_eq!(ok["delegate"], json!(delegate));

    // Another network's domain, a time after expiry: both refused with exit 1.
    let other = vouch_json(&["delegate", "verify", &w.p("c.cert"), "--chain-id", "1"], 1);
    assert!(other["error"].as_str().unwrap().contains("network"), "{other}");
    let late = (issued["not_after"].as_u64().unwrap() + 1).to_string();
    let expired = vouch_json(&["delegate", "verify", &w.p("c.cert"), "--at", &late], 1);
    assert!(expired["error"].as_str().unwrap().contains("expired"), "{expired}");

    // Wallet JSON out and back gives the same certificate bytes.
    let out = VOUCH.run(&["delegate", "export", &w.p("c.cert")]);
    assert!(out.status.success());
    let wallet_json = w.write("wallet.json", &String::from_utf8(out.stdout).unwrap());
    vouch_json(&["delegate", "import", &wallet_json, "--out", &w.p("back.cert")], 0);
    assert_eq!(
        std::fs::read(w.path("c.cert")).unwrap(),
        std::fs::read(w.path("back.cert")).unwrap()
    );

    // Garbage is a clear error, not a crash.
    let junk = w.write("junk.cert", "not a certificate");
    let out = VOUCH.run(&["delegate", "verify", &junk]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a delegation certificate"));
}

#[test]
fn wallet_signed_certificates_verify_in_vouch_and_vouch_certificates_in_ethers() {
    let w = Workspace::new();
    let pk = w.key("p", PRINCIPAL_KEY);
    let principal = w.address_of(&pk);
    let delegate = w.address_of(&w.key("d", DELEGATE_KEY));
    let now = now_secs();

    // ethers signs (as a hardware or browser wallet would); vouch verifies.
    let msg = json!({"principal": principal, "delegate": delegate, "role": 0, "region": "MDW",
        "notBefore": now.to_string(), "notAfter": (now + 86400).to_string(), "nonce": "7"});
    let signed = node("wallet.mjs", &["sign-delegation", PRINCIPAL_KEY, &msg.to_string()]);
    let file = w.write("ethers.json", &signed.to_string());
    let v = vouch_json(&["delegate", "verify", &file], 0);
    assert_eq!(
        (v["principal"].as_str(), v["role"].as_str()),
        (Some(principal.as_str()), Some("orchestrator"))
    );

    // vouch signs; ethers recovers the principal.
    w.issue(&pk, &delegate, "runner", "c.cert", &[]);
    let out = VOUCH.run(&["delegate", "export", &w.p("c.cert")]);
    let exported = w.write("vouch.json", &String::from_utf8(out.stdout).unwrap());
    let checked = node("wallet.mjs", &["verify", &exported]);
    assert_eq!(checked["ok"], json!(true), "{checked}");
    assert_eq!(checked["signer"].as_str().unwrap().to_lowercase(), principal);

    // One changed field breaks both sides.
    let mut tampered: Value =
        serde_json::from_str(&std::fs::read_to_string(&exported).unwrap()).unwrap();
    tampered["message"]["region"] = json!("LAX");
    let bad = w.write("tampered.json", &tampered.to_string());
    assert_eq!(node("wallet.mjs", &["verify", &bad])["ok"], json!(false));
    let v = vouch_json(&["delegate", "verify", &bad], 1);
    assert_eq!(v["ok"], json!(false));

    // Revocations too.
    let out = VOUCH.run(&[
        "delegate",
        "revoke",
        "--principal-key",
        &pk,
        "--delegate",
        &delegate,
        "--out",
        &w.p("r.bin"),
        "--json",
    ]);
    assert!(out.status.success());
    let rev = w.write("rev.json", &String::from_utf8(out.stdout).unwrap());
    assert_eq!(node("wallet.mjs", &["verify", &rev])["ok"], json!(true));
}

#[test]
fn envelopes_verify_with_streamr_utils_and_tampering_is_caught() {
    let w = Workspace::new();
    let pk = w.key("p", PRINCIPAL_KEY);
    let dk = w.key("d", DELEGATE_KEY);
    let delegate = w.address_of(&dk);
    w.issue(&pk, &delegate, "gateway", "c.cert", &[]);
    let events = w.events();
    let signed = vouch_json(
        &[
            "envelope",
            "sign",
            "--key",
            &dk,
            "--cert",
            &w.p("c.cert"),
            "--events",
            &events,
            "--out",
            &w.p("e.hex"),
            "--format",
            "streamr-hex",
        ],
        0,
    );
    assert_eq!(signed["events"], json!(8));
    let hex = std::fs::read_to_string(w.path("e.hex")).unwrap();

    // Streamr's own signer accepts it, and re-signing with the same key in
    // Node gives the same bytes (RFC 6979).
    let streamr = node("streamr.mjs", &["verify", hex.trim(), DELEGATE_KEY]);
    assert_eq!(streamr["ok"], json!(true), "{streamr}");
    assert_eq!(streamr["resignedIdentical"], json!(true));
    assert_eq!(streamr["reencodeIdentical"], json!(true));
    assert_eq!(streamr["publisher"], json!(delegate));

    let v = vouch_json(&["envelope", "verify", &w.p("e.hex")], 0);
    assert_eq!(
        (v["ok"].clone(), v["events"].clone(), v["role"].clone()),
        (json!(true), json!(8), json!("gateway"))
    );

    let dump =
        String::from_utf8(VOUCH.run(&["envelope", "inspect", &w.p("e.hex")]).stdout).unwrap();
    assert!(dump.contains("signature   valid") && dump.contains("ai_stream_status"), "{dump}");

    // Flip one content byte near the end: both verifiers refuse it.
    let mut bytes = ::hex::decode(hex.trim()).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x01;
    let tampered = w.write("t.hex", &::hex::encode(&bytes));
    assert_eq!(node("streamr.mjs", &["verify", &::hex::encode(&bytes)])["ok"], json!(false));
    let v = vouch_json(&["envelope", "verify", &tampered], 1);
    assert_eq!(v["ok"], json!(false));

    // The CBOR form verifies the same way.
    vouch_json(
        &[
            "envelope",
            "sign",
            "--key",
            &dk,
            "--cert",
            &w.p("c.cert"),
            "--events",
            &events,
            "--out",
            &w.p("e.cbor"),
        ],
        0,
    );
    vouch_json(&["envelope", "verify", &w.p("e.cbor")], 0);

    // A key that is not the certificate's delegate cannot sign under it.
    let other = w.key("o", OTHER_KEY);
    let out = VOUCH.run(&[
        "envelope",
        "sign",
        "--key",
        &other,
        "--cert",
        &w.p("c.cert"),
        "--events",
        &events,
        "--out",
        &w.p("x"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not the certificate's delegate"));
}

#[test]
fn delegate_verify_asks_a_real_local_chain() {
    let w = Workspace::new();
    let active_key = w.key("a", PRINCIPAL_KEY);
    let inactive_key = w.key("i", OTHER_KEY);
    let active = w.address_of(&active_key);
    let inactive = w.address_of(&inactive_key);
    let delegate = w.address_of(&w.key("d", DELEGATE_KEY));

    let chain = ganache::Ganache::start();
    let deployed = chain.deploy(&json!([
        {"address": active, "stake": "5000", "active": true},
        {"address": inactive, "stake": "10", "active": false},
    ]));
    let url = chain.url().to_owned();
    let rpc = ["--rpc", url.as_str(), "--controller", deployed.controller.as_str()];

    w.issue(&active_key, &delegate, "orchestrator", "active.cert", &[]);
    w.issue(&inactive_key, &delegate, "orchestrator", "inactive.cert", &[]);

    let ok = vouch_json(&[&["delegate", "verify", &w.p("active.cert")][..], &rpc].concat(), 0);
    assert_eq!(ok["ok"], json!(true));
    assert!(ok["authority"]["source"].as_str().unwrap().starts_with("chain:1337@"), "{ok}");

    let refused =
        vouch_json(&[&["delegate", "verify", &w.p("inactive.cert")][..], &rpc].concat(), 1);
    assert!(
        refused["error"].as_str().unwrap().contains("does not hold the orchestrator role"),
        "{refused}"
    );

    // The same answers offline, from a snapshot taken from the chain.
    let snap = w.p("authority.json");
    let taken = vouch_json(&[&["authority", "snapshot", "--out", &snap][..], &rpc].concat(), 0);
    assert_eq!(taken["principals"], json!(1));
    vouch_json(&["delegate", "verify", &w.p("active.cert"), "--authority-snapshot", &snap], 0);
    vouch_json(&["delegate", "verify", &w.p("inactive.cert"), "--authority-snapshot", &snap], 1);

    // An unreachable node is a clear error, not a hang.
    let closed = ganache::closed_port_url();
    let out = VOUCH.run(&[
        "delegate",
        "verify",
        &w.p("active.cert"),
        "--rpc",
        &closed,
        "--rpc-timeout",
        "5s",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unreachable") || err.contains("refused"), "{err}");
}

#[test]
fn every_command_has_help() {
    for cmd in [
        &["keygen"][..],
        &["delegate", "issue"],
        &["delegate", "verify"],
        &["delegate", "revoke"],
        &["delegate", "import"],
        &["delegate", "export"],
        &["envelope", "sign"],
        &["envelope", "verify"],
        &["envelope", "inspect"],
        &["authority", "snapshot"],
    ] {
        let out = VOUCH.run(&[cmd, &["--help"]].concat());
        assert!(out.status.success(), "{cmd:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: vouch"));
    }
}
