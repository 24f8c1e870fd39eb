//! `vouch bridge streamr` child processes and what the bridge tests share:
//! authority snapshots, publishing fixture events through a node, waits.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::identity::{Identity, ok_json, vouch};
use super::node::{NodeProcess, count, http_get};
use super::subscriber::WAIT;

/// A `vouch bridge streamr` child process; killed on drop.
pub struct Bridge {
    pub child: Child,
    pub announce: Value,
}

impl Bridge {
    pub fn spawn(args: &[&str]) -> Bridge {
        Bridge::spawn_env(args, &[])
    }

    /// A bridge with extra environment variables (its sidecar inherits them).
    pub fn spawn_env(args: &[&str], env: &[(&str, &str)]) -> Bridge {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vouch"))
            .args(["bridge", "streamr", "--http-listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
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
        let first = rx.recv_timeout(WAIT).expect("bridge announced itself");
        let announce: Value = serde_json::from_str(&first).unwrap();
        assert!(announce["http"].as_str().unwrap().starts_with("http://127.0.0.1:"), "{announce}");
        Bridge { child, announce }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let base = self.announce["http"].as_str().unwrap();
        http_get(base.strip_prefix("http://").unwrap(), path)
    }

    pub fn stats(&self) -> Value {
        let (status, body) = self.get("/v1/bridge/stats");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    pub fn wait_stats(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let stats = self.stats();
            if done(&stats) {
                return stats;
            }
            assert!(Instant::now() < deadline, "bridge: {what} never happened: {stats}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "bridge did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn inbound(stats: &Value, outcome: &str, reason: &str) -> u64 {
    count(&stats["inbound"], outcome, reason)
}

pub fn accepted(node: &NodeProcess) -> u64 {
    node.stats()["accepted"].as_u64().unwrap()
}

/// Waits until `node` has accepted exactly `n` (and checks it stays there
/// while the bridges settle: nothing more may arrive).
pub fn wait_accepted(node: &NodeProcess, n: u64) {
    node.wait_stats(&format!("{n} accepted"), |s| s["accepted"].as_u64().unwrap() >= n);
    assert_eq!(accepted(node), n, "{}", node.stats());
}

/// Publishes `copies` × the 8 fixture events, one envelope per event.
pub fn publish(id: &Identity, bootstrap: &str, copies: usize) -> u64 {
    let events: String = std::fs::read_to_string(id.events()).unwrap().repeat(copies);
    std::fs::write(id.dir.path().join("many.ndjson"), &events).unwrap();
    std::fs::write(
        id.dir.path().join("publisher.toml"),
        "key_file = \"d.key\"\ncertificate = \"d.cert\"\n[batch]\nmax_events = 1\nlinger_ms = 0\n",
    )
    .unwrap();
    ok_json(&vouch(&[
        "publish",
        "--config",
        &id.p("publisher.toml"),
        "--events",
        &id.p("many.ndjson"),
        "--bootstrap",
        bootstrap,
        "--timeout",
        "60s",
    ]));
    (8 * copies) as u64
}

pub fn snapshot(dir: &Path, ids: &[&Identity]) -> PathBuf {
    let principals: Vec<Value> =
        ids.iter().map(|i| json!({"address": i.principal, "roles": ["gateway"]})).collect();
    let path = dir.join("authority.json");
    std::fs::write(&path, json!({ "principals": principals }).to_string()).unwrap();
    path
}

pub fn stream_of(id: &Identity) -> String {
    format!("{}/livepeer/telemetry", id.principal.to_lowercase())
}
