//! A principal, its delegate key and certificate, made with the `vouch`
//! CLI itself, for the end-to-end tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn vouch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vouch")).args(args).output().unwrap()
}

pub fn ok_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// A gateway principal, its delegate key and certificate, in a temp dir.
pub struct Identity {
    pub dir: TempDir,
    pub principal: String,
}

impl Identity {
    pub fn new(principal_key: &str, delegate_key: &str) -> Identity {
        Identity::with_role(principal_key, delegate_key, "gateway")
    }

    /// A principal whose delegate publishes as `role`.
    pub fn with_role(principal_key: &str, delegate_key: &str, role: &str) -> Identity {
        let dir = TempDir::new().unwrap();
        std::fs::write(dir.path().join("p.key"), principal_key).unwrap();
        std::fs::write(dir.path().join("d.key"), delegate_key).unwrap();
        let mut id = Identity { dir, principal: String::new() };
        // Issuing with the delegate key as "principal" reveals its address.
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
        let issued = ok_json(&vouch(&[
            "delegate",
            "issue",
            "--principal-key",
            &id.p("p.key"),
            "--delegate",
            &delegate,
            "--role",
            role,
            "--region",
            "FRA",
            "--out",
            &id.p("d.cert"),
        ]));
        id.principal = issued["principal"].as_str().unwrap().to_owned();
        id
    }

    /// `vouch envelope sign` of the fixture events with the delegate key and
    /// `cert` (a file in the identity's directory) on chain `chain`, stamped
    /// `timestamp_ms` (default now), into `out`; returns the envelope bytes.
    pub fn sign_envelope(
        &self,
        cert: &str,
        chain: &str,
        timestamp_ms: Option<u64>,
        out: &str,
    ) -> Vec<u8> {
        let (key, cert, events, out) = (self.p("d.key"), self.p(cert), self.events(), self.p(out));
        let stamp = timestamp_ms.map(|t| t.to_string());
        let mut args =
            vec!["envelope", "sign", "--key", &key, "--cert", &cert, "--events", &events];
        if let Some(stamp) = &stamp {
            args.extend(["--timestamp", stamp]);
        }
        args.extend(["--msg-chain-id", chain, "--out", &out]);
        ok_json(&vouch(&args));
        std::fs::read(out).unwrap()
    }

    /// `vouch delegate revoke` of `delegate` with the principal key,
    /// effective at `revoked_at` (Unix seconds; default now), into `out`;
    /// returns the revocation bytes.
    pub fn revoke(&self, delegate: &str, revoked_at: Option<u64>, out: &str) -> Vec<u8> {
        let (key, out) = (self.p("p.key"), self.p(out));
        let at = revoked_at.map(|t| t.to_string());
        let mut args = vec!["delegate", "revoke", "--principal-key", &key, "--delegate", delegate];
        if let Some(at) = &at {
            args.extend(["--revoked-at", at]);
        }
        args.extend(["--out", &out]);
        ok_json(&vouch(&args));
        std::fs::read(out).unwrap()
    }

    pub fn p(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    /// `vouch publish` of the fixture events to `bootstrap`, giving up
    /// after `timeout` (e.g. `"60s"`).
    pub fn publish(&self, bootstrap: &str, timeout: &str) -> Output {
        let events = self.events();
        vouch(&[
            "publish",
            "--key",
            &self.p("d.key"),
            "--cert",
            &self.p("d.cert"),
            "--events",
            &events,
            "--bootstrap",
            bootstrap,
            "--timeout",
            timeout,
        ])
    }

    /// The 8 real go-livepeer fixture events as NDJSON.
    pub fn events(&self) -> String {
        let fixtures = repo_root().join("schemas/tests/data/go-livepeer-kafka-samples.json");
        let all: Vec<Value> = serde_json::from_slice(&std::fs::read(fixtures).unwrap()).unwrap();
        let ndjson: String = all.iter().map(|e| format!("{e}\n")).collect();
        std::fs::write(self.dir.path().join("events.ndjson"), ndjson).unwrap();
        self.p("events.ndjson")
    }
}
