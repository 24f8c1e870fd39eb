//! A `vouch bridge streamr` child process on loopback, and what the bridge
//! tests share: publishing fixture events through a node, waiting for a
//! node's accepted count, reading the bridge's inbound counts.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::WAIT;
use crate::cli::{Identity, Vouch};
use crate::node::{NodeProcess, count};
use crate::process::Announced;

/// A `vouch bridge streamr` child process; killed on drop.
#[derive(Debug)]
pub struct Bridge {
    /// The process and its announcement (`http`, `link`, `mqtt`, `log`,
    /// `streams`, `peer_id`, `p2p_listen`).
    pub process: Announced,
}

impl Bridge {
    /// `vouch bridge streamr ARGS…` with its HTTP API on a free loopback port.
    pub fn spawn(vouch: Vouch, args: &[&str]) -> Bridge {
        Bridge::spawn_env(vouch, args, &[])
    }

    /// [`Bridge::spawn`] with extra environment variables (its sidecar
    /// inherits them: a `NODE_OPTIONS` preload).
    pub fn spawn_env(vouch: Vouch, args: &[&str], env: &[(&str, &str)]) -> Bridge {
        let mut command = vouch.command(&["bridge", "streamr", "--http-listen", "127.0.0.1:0"]);
        command.args(args).envs(env.iter().copied()).stderr(Stdio::inherit());
        let process = Announced::spawn(&mut command, "the bridge", WAIT);
        let announce = &process.announce;
        assert!(announce["http"].as_str().unwrap().starts_with("http://127.0.0.1:"), "{announce}");
        Bridge { process }
    }

    /// What it announced.
    pub fn announce(&self) -> &Value {
        &self.process.announce
    }

    /// `GET path` of its HTTP API: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        self.process.get(path)
    }

    /// `/v1/bridge/stats`.
    pub fn stats(&self) -> Value {
        self.process.get_json("/v1/bridge/stats")
    }

    /// Polls the stats until `done` holds; panics with the last stats otherwise.
    pub fn wait_stats(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let what = format!("bridge: {what}");
        self.process.wait_json("/v1/bridge/stats", &what, Duration::from_millis(50), done)
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        self.process.terminate()
    }
}

/// The count of one (outcome, reason) in the bridge stats' inbound pipeline.
pub fn inbound(stats: &Value, outcome: &str, reason: &str) -> u64 {
    count(&stats["inbound"], outcome, reason)
}

/// What `node` has accepted so far.
pub fn accepted(node: &NodeProcess) -> u64 {
    node.stats()["accepted"].as_u64().unwrap()
}

/// Waits until `node` has accepted exactly `n` (and checks it stays there
/// while the bridges settle: nothing more may arrive).
pub fn wait_accepted(node: &NodeProcess, n: u64) {
    node.wait_stats(&format!("{n} accepted"), |s| s["accepted"].as_u64().unwrap() >= n);
    assert_eq!(accepted(node), n, "{}", node.stats());
}

/// Publishes `copies` × the 8 fixture events through `bootstrap`, one
/// envelope per event; returns how many envelopes that is.
pub fn publish(id: &Identity, bootstrap: &str, copies: usize) -> u64 {
    let events: String = std::fs::read_to_string(id.events()).unwrap().repeat(copies);
    std::fs::write(id.dir.path().join("many.ndjson"), &events).unwrap();
    id.vouch.json(&[
        "publish",
        "--config",
        &id.one_event_per_envelope(),
        "--events",
        &id.p("many.ndjson"),
        "--bootstrap",
        bootstrap,
        "--timeout",
        "60s",
    ]);
    (8 * copies) as u64
}

/// The principal's telemetry stream id, `0x<principal>/livepeer/telemetry`.
pub fn stream_of(id: &Identity) -> String {
    format!("{}/livepeer/telemetry", id.principal.to_lowercase())
}
