//! A `vouch subscribe` child process for end-to-end tests: the receiving
//! end that decodes and verifies every envelope it gets over gossip.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long any single wait in these tests may take (generous: CI machines are slow).
pub const WAIT: Duration = Duration::from_secs(90);

/// A `vouch subscribe` child process; killed on drop.
pub struct Subscriber {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Its listen multiaddrs (each ending in `/p2p/<peer id>`).
    pub listen: Vec<String>,
}

impl Subscriber {
    pub fn spawn(listen: &str, count: usize) -> Subscriber {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vouch"))
            .args(["subscribe", "--listen", listen, "--partitions", "0-99"])
            .args(["--count", &count.to_string(), "--timeout", "120s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines.recv_timeout(WAIT).expect("subscriber announced itself");
        let announce: Value = serde_json::from_str(&first).unwrap();
        assert!(announce["peer_id"].as_str().is_some(), "{announce}");
        let listen = announce["listen"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect::<Vec<_>>();
        assert!(!listen.is_empty(), "{announce}");
        Subscriber { child, lines, listen }
    }

    /// The next `n` message lines, parsed.
    pub fn take(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        (0..n)
            .map(|i| {
                let left = deadline.saturating_duration_since(Instant::now());
                let line = self
                    .lines
                    .recv_timeout(left)
                    .unwrap_or_else(|e| panic!("message {i} of {n} not received: {e}"));
                serde_json::from_str(&line).unwrap()
            })
            .collect()
    }

    /// Waits for the process to exit on its own (after `--count`).
    pub fn wait_exit(mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "subscriber did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn wait_success(self) {
        let status = self.wait_exit();
        assert!(status.success(), "subscriber exited with {status}");
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
