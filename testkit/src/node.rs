//! A `vouch node` child process on loopback, and reading its ingest stats.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::WAIT;
use crate::cli::Vouch;
use crate::process::{Announced, http_get_with};

/// A `vouch node` child process; killed on drop unless it already exited.
#[derive(Debug)]
pub struct NodeProcess {
    /// The process and its announcement (`peer_id`, `p2p_listen`, `http`).
    pub process: Announced,
}

impl NodeProcess {
    /// A node on free loopback ports with an authority snapshot.
    pub fn spawn(vouch: Vouch, data_dir: &Path, snapshot: &Path) -> NodeProcess {
        NodeProcess::spawn_with(
            vouch,
            data_dir,
            snapshot,
            &["--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--http-listen", "127.0.0.1:0"],
        )
    }

    /// A node with its listen flags (and any others) given by the caller.
    pub fn spawn_with(
        vouch: Vouch,
        data_dir: &Path,
        snapshot: &Path,
        args: &[&str],
    ) -> NodeProcess {
        let base = ["--data-dir", data_dir.to_str().unwrap()];
        let authority = ["--authority-snapshot", snapshot.to_str().unwrap()];
        NodeProcess::spawn_args(vouch, &[&base[..], &authority, args].concat())
    }

    /// A node on free loopback ports whose configuration file holds
    /// `config` (TOML), written beside its data directory.
    pub fn spawn_configured(
        vouch: Vouch,
        data_dir: &Path,
        snapshot: &Path,
        config: &str,
    ) -> NodeProcess {
        let file = data_dir.with_extension("toml");
        std::fs::write(&file, config).unwrap();
        let args = ["--config", file.to_str().unwrap(), "--p2p-listen", "/ip4/127.0.0.1/tcp/0"];
        NodeProcess::spawn_with(
            vouch,
            data_dir,
            snapshot,
            &[&args[..], &["--http-listen", "127.0.0.1:0"]].concat(),
        )
    }

    /// `vouch node ARGS…`, all flags given by the caller.
    pub fn spawn_args(vouch: Vouch, args: &[&str]) -> NodeProcess {
        let mut command = vouch.command(&["node"]);
        command.args(args).stderr(Stdio::inherit());
        NodeProcess::spawn_command(command)
    }

    /// `vouch node ARGS…` under an open-file limit of `nofile` (soft and
    /// hard, as `ulimit -n` sets both), so the node cannot raise it.
    pub fn spawn_with_nofile(vouch: Vouch, nofile: u64, args: &[&str]) -> NodeProcess {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {nofile} && exec \"$0\" node \"$@\""))
            .arg(vouch.path())
            .args(args)
            .stderr(Stdio::inherit());
        NodeProcess::spawn_command(command)
    }

    /// Runs `command` (a `vouch node`; stderr as it says) and waits for its
    /// announcement line.
    pub fn spawn_command(mut command: Command) -> NodeProcess {
        let process = Announced::spawn(&mut command, "the node", WAIT);
        let announce = &process.announce;
        assert!(announce["peer_id"].as_str().is_some(), "{announce}");
        assert!(announce["http"].as_str().unwrap().starts_with("http://127.0.0.1:"), "{announce}");
        NodeProcess { process }
    }

    /// Its first p2p listen address (ending in `/p2p/<peer id>`).
    pub fn p2p(&self) -> String {
        self.process.announce["p2p_listen"][0].as_str().unwrap().to_owned()
    }

    /// Its libp2p peer id.
    pub fn peer_id(&self) -> String {
        self.process.announce["peer_id"].as_str().unwrap().to_owned()
    }

    /// The `host:port` of its HTTP API.
    pub fn host_port(&self) -> &str {
        self.process.host_port()
    }

    /// `GET path`: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        self.process.get(path)
    }

    /// `GET path` with extra request headers: (status, body).
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        http_get_with(self.host_port(), path, headers)
    }

    /// `GET path` that must answer 200 with JSON.
    pub fn get_json(&self, path: &str) -> Value {
        self.process.get_json(path)
    }

    /// `/v1/ingest/stats`.
    pub fn stats(&self) -> Value {
        self.get_json("/v1/ingest/stats")
    }

    /// Polls the stats until `done` holds; panics with the last stats otherwise.
    pub fn wait_stats(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        // Well inside the API's default per-client rate limit (10/s).
        self.process.wait_json("/v1/ingest/stats", what, Duration::from_millis(200), done)
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        self.process.terminate()
    }

    /// SIGKILL (no chance to commit or clean up), then the exit status.
    pub fn kill9(&mut self) -> ExitStatus {
        self.process.signal("-KILL")
    }

    /// Resident memory of the node process, KiB.
    pub fn rss_kib(&self) -> u64 {
        self.process.rss_kib()
    }

    /// One field of the node's `/proc/PID/status`; see [`Announced::status_field`].
    pub fn status_field(&self, field: &str) -> Option<String> {
        self.process.status_field(field)
    }
}

/// The count of one (outcome, reason) in `/v1/ingest/stats`.
pub fn count(stats: &Value, outcome: &str, reason: &str) -> u64 {
    count_in(stats, "by_reason", outcome, reason)
}

/// The count of one (outcome, reason) in a list of `/v1/ingest/stats`
/// (`by_reason`, or `control` for the control topic).
pub fn count_in(stats: &Value, list: &str, outcome: &str, reason: &str) -> u64 {
    stats[list]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == json!(outcome) && r["reason"] == json!(reason))
        .map(|r| r["count"].as_u64().unwrap())
        .sum()
}
