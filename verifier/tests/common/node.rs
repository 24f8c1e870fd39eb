//! A `vouch node` child process for end-to-end tests, and a minimal HTTP
//! client for its API.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::subscriber::WAIT;

/// A `vouch node` child process; killed on drop unless it already exited.
pub struct NodeProcess {
    pub child: Child,
    pub announce: Value,
}

impl NodeProcess {
    /// A node on free loopback ports with an authority snapshot.
    pub fn spawn(data_dir: &Path, snapshot: &Path) -> NodeProcess {
        NodeProcess::spawn_with(
            data_dir,
            snapshot,
            &["--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--http-listen", "127.0.0.1:0"],
        )
    }

    /// A node with its listen flags (and any others) given by the caller.
    pub fn spawn_with(data_dir: &Path, snapshot: &Path, args: &[&str]) -> NodeProcess {
        let base = ["--data-dir", data_dir.to_str().unwrap()];
        let authority = ["--authority-snapshot", snapshot.to_str().unwrap()];
        NodeProcess::spawn_args(&[&base[..], &authority, args].concat())
    }

    /// A node on free loopback ports whose configuration file holds
    /// `config` (TOML), written beside its data directory.
    pub fn spawn_configured(data_dir: &Path, snapshot: &Path, config: &str) -> NodeProcess {
        let file = data_dir.with_extension("toml");
        std::fs::write(&file, config).unwrap();
        let args = ["--config", file.to_str().unwrap(), "--p2p-listen", "/ip4/127.0.0.1/tcp/0"];
        NodeProcess::spawn_with(
            data_dir,
            snapshot,
            &[&args[..], &["--http-listen", "127.0.0.1:0"]].concat(),
        )
    }

    /// `vouch node ARGS…`, all flags given by the caller.
    pub fn spawn_args(args: &[&str]) -> NodeProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vouch"));
        command.arg("node").args(args).stderr(Stdio::inherit());
        NodeProcess::spawn_command(command)
    }

    /// `vouch node ARGS…` under an open-file limit of `nofile` (soft and
    /// hard, as `ulimit -n` sets both), so the node cannot raise it.
    pub fn spawn_with_nofile(nofile: u64, args: &[&str]) -> NodeProcess {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {nofile} && exec \"$0\" node \"$@\""))
            .arg(env!("CARGO_BIN_EXE_vouch"))
            .args(args)
            .stderr(Stdio::inherit());
        NodeProcess::spawn_command(command)
    }

    /// Runs `command` (a `vouch node`) with stdout piped and waits for its
    /// announcement line.
    pub fn spawn_command(mut command: Command) -> NodeProcess {
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
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

    pub fn p2p(&self) -> String {
        self.announce["p2p_listen"][0].as_str().unwrap().to_owned()
    }

    pub fn peer_id(&self) -> String {
        self.announce["peer_id"].as_str().unwrap().to_owned()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        self.get_with(path, &[])
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        http_get_with(self.host_port(), path, headers)
    }

    pub fn host_port(&self) -> &str {
        self.announce["http"].as_str().unwrap().strip_prefix("http://").unwrap()
    }

    pub fn stats(&self) -> Value {
        let (status, body) = self.get("/v1/ingest/stats");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Polls the stats until `done` holds; panics with the last stats otherwise.
    pub fn wait_stats(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let stats = self.stats();
            if done(&stats) {
                return stats;
            }
            assert!(Instant::now() < deadline, "{what} never happened: {stats}");
            // Well inside the API's default per-client rate limit (10/s).
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("-TERM")
    }

    /// SIGKILL (no chance to commit or clean up), then the exit status.
    pub fn kill9(&mut self) -> std::process::ExitStatus {
        self.signal("-KILL")
    }

    fn signal(&mut self, signal: &str) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args([signal, &pid]).status().unwrap().success());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "node did not exit after {signal}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident memory of the node process, KiB (from /proc).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A minimal HTTP/1.1 GET over std: (status, body).
pub fn http_get(host_port: &str, path: &str) -> (u16, String) {
    http_get_with(host_port, path, &[])
}

/// A GET with extra request headers.
pub fn http_get_with(host_port: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut stream = TcpStream::connect(host_port).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host_port}\r\n{extra}Connection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
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
