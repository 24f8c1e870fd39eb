//! `vouch node` end to end, real processes on loopback: a verifier node with
//! an authority snapshot, `vouch publish` clients (an authorized gateway, a
//! forged envelope, an unauthorized principal), counts read over HTTP, then
//! SIGTERM and a check of the log the node left. Waits are bounded; nothing
//! asserts timing.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::identity::{Identity, ok_json, vouch};
use common::subscriber::WAIT;
use serde_json::{Value, json};
use tempfile::TempDir;
use vouch_verifier::store::{LogReader, RecordKind};

const GATEWAY_KEY: &str = "0x4444444444444444444444444444444444444444444444444444444444444444";
const GATEWAY_DELEGATE_KEY: &str =
    "0x5555555555555555555555555555555555555555555555555555555555555555";
const STRANGER_KEY: &str = "0x6666666666666666666666666666666666666666666666666666666666666666";
const STRANGER_DELEGATE_KEY: &str =
    "0x7777777777777777777777777777777777777777777777777777777777777777";

impl Identity {
    fn publish_events(&self, bootstrap: &str) {
        let events = self.events();
        ok_json(&vouch(&[
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
            "60s",
        ]));
    }
}

/// A `vouch node` child process; killed on drop unless it already exited.
struct NodeProcess {
    child: Child,
    announce: Value,
}

impl NodeProcess {
    fn spawn(data_dir: &Path, snapshot: &Path) -> NodeProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vouch"))
            .args(["node", "--data-dir", data_dir.to_str().unwrap()])
            .args(["--authority-snapshot", snapshot.to_str().unwrap()])
            .args(["--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--http-listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = rx.recv_timeout(WAIT).expect("node announced itself");
        let announce: Value = serde_json::from_str(&first).unwrap();
        assert!(announce["peer_id"].as_str().is_some(), "{announce}");
        assert!(announce["http"].as_str().unwrap().starts_with("http://127.0.0.1:"), "{announce}");
        NodeProcess { child, announce }
    }

    fn p2p(&self) -> String {
        self.announce["p2p_listen"][0].as_str().unwrap().to_owned()
    }

    fn get(&self, path: &str) -> (u16, String) {
        let base = self.announce["http"].as_str().unwrap();
        http_get(base.strip_prefix("http://").unwrap(), path)
    }

    fn stats(&self) -> Value {
        let (status, body) = self.get("/v1/ingest/stats");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Polls the stats until `done` holds; panics with the last stats otherwise.
    fn wait_stats(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let stats = self.stats();
            if done(&stats) {
                return stats;
            }
            assert!(Instant::now() < deadline, "{what} never happened: {stats}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "node did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET over std: (status, body).
fn http_get(host_port: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(host_port).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

fn count(stats: &Value, outcome: &str, reason: &str) -> u64 {
    stats["by_reason"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == json!(outcome) && r["reason"] == json!(reason))
        .map(|r| r["count"].as_u64().unwrap())
        .sum()
}

#[test]
fn node_accepts_rejects_and_leaves_a_verifiable_log() {
    let gateway = Identity::new(GATEWAY_KEY, GATEWAY_DELEGATE_KEY);
    let stranger = Identity::new(STRANGER_KEY, STRANGER_DELEGATE_KEY);
    let work = TempDir::new().unwrap();
    let snapshot = work.path().join("authority.json");
    let view = json!({"principals": [{"address": gateway.principal, "roles": ["gateway"]}]});
    std::fs::write(&snapshot, view.to_string()).unwrap();
    let data_dir = work.path().join("data");
    let mut node = NodeProcess::spawn(&data_dir, &snapshot);

    let (status, body) = node.get("/healthz");
    assert_eq!(
        (status, serde_json::from_str::<Value>(&body).unwrap()),
        (200, json!({"status": "ok"}))
    );

    // An authorized gateway's events are accepted.
    gateway.publish_events(&node.p2p());
    node.wait_stats("an accepted envelope", |s| s["accepted"].as_u64().unwrap() >= 1);

    // A forged envelope (signature altered; never published intact) is rejected.
    ok_json(&vouch(&[
        "envelope",
        "sign",
        "--key",
        &gateway.p("d.key"),
        "--cert",
        &gateway.p("d.cert"),
        "--events",
        &gateway.events(),
        "--out",
        &gateway.p("good.cbor"),
    ]));
    let mut forged = std::fs::read(gateway.p("good.cbor")).unwrap();
    let n = forged.len();
    forged[n - 10] ^= 0x01; // inside the signature's s
    std::fs::write(gateway.p("forged.cbor"), &forged).unwrap();
    ok_json(&vouch(&[
        "publish",
        "--raw",
        &gateway.p("forged.cbor"),
        "--bootstrap",
        &node.p2p(),
        "--timeout",
        "60s",
    ]));
    node.wait_stats("a bad_signature rejection", |s| count(s, "reject", "bad_signature") >= 1);

    // A principal outside the authority snapshot is rejected.
    stranger.publish_events(&node.p2p());
    let stats =
        node.wait_stats("an unauthorized rejection", |s| count(s, "reject", "unauthorized") >= 1);
    assert!(stats["rejected"].as_u64().unwrap() >= 2, "{stats}");

    let (status, metrics) = node.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("vouch_ingest_total{outcome=\"reject\",reason=\"bad_signature\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("vouch_log_records "), "{metrics}");

    let accepted = node.stats()["accepted"].as_u64().unwrap();
    let status = node.terminate();
    assert!(status.success(), "node exited with {status}");

    // The log verifies and holds exactly the accepted envelopes (plus the authority view).
    let log_dir = data_dir.join("log");
    let summary = vouch_verifier::store::verify(&log_dir).unwrap();
    let records: Vec<_> = LogReader::open(&log_dir, 0).unwrap().map(Result::unwrap).collect();
    assert_eq!(summary.records, records.len() as u64);
    let envelopes = records.iter().filter(|r| r.kind == RecordKind::Envelope).count() as u64;
    assert_eq!(envelopes, accepted);
    let views: Vec<_> = records.iter().filter(|r| r.kind == RecordKind::AuthorityView).collect();
    assert_eq!(views.len(), 1);
    let recorded: Value = serde_json::from_slice(&views[0].payload).unwrap();
    assert_eq!(recorded["principals"][0]["address"], json!(gateway.principal));

    // A restart on the same directory reopens the log, keeps what it held,
    // and records the view in force again.
    let mut node = NodeProcess::spawn(&data_dir, &snapshot);
    node.wait_stats("the reopened log", |s| s["log_records"].as_u64() == Some(summary.records + 1));
    assert!(node.terminate().success());
    let after = vouch_verifier::store::verify(&log_dir).unwrap();
    assert_eq!(after.records, summary.records + 1);
}
