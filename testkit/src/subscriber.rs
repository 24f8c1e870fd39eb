//! A `vouch subscribe` child process: the receiving end that decodes and
//! verifies every envelope it gets over gossip and prints it as a line.

use std::process::{ExitStatus, Stdio};
use std::time::Instant;

use serde_json::Value;

use crate::WAIT;
use crate::cli::Vouch;
use crate::process::Announced;

/// A `vouch subscribe` child process; killed on drop.
#[derive(Debug)]
pub struct Subscriber {
    process: Announced,
    /// Its listen multiaddrs (each ending in `/p2p/<peer id>`).
    pub listen: Vec<String>,
}

impl Subscriber {
    /// Listens on `listen` for all partitions and exits after `count`
    /// messages (or 120 s).
    pub fn spawn(vouch: Vouch, listen: &str, count: usize) -> Subscriber {
        let mut command = vouch.command(&["subscribe", "--listen", listen, "--partitions", "0-99"]);
        command.args(["--count", &count.to_string(), "--timeout", "120s"]).stderr(Stdio::inherit());
        let process = Announced::spawn(&mut command, "the subscriber", WAIT);
        let announce = &process.announce;
        assert!(announce["peer_id"].as_str().is_some(), "{announce}");
        let listen = announce["listen"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect::<Vec<_>>();
        assert!(!listen.is_empty(), "{announce}");
        Subscriber { process, listen }
    }

    /// The next `n` message lines, parsed.
    pub fn take(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        (0..n)
            .map(|i| {
                let left = deadline.saturating_duration_since(Instant::now());
                let line = self
                    .process
                    .lines
                    .recv_timeout(left)
                    .unwrap_or_else(|e| panic!("message {i} of {n} not received: {e}"));
                serde_json::from_str(&line).unwrap()
            })
            .collect()
    }

    /// Waits for the process to exit on its own (after `--count`).
    pub fn wait_exit(mut self) -> ExitStatus {
        self.process.wait_exit("subscriber exit")
    }

    /// Waits for the process to exit on its own, successfully.
    pub fn wait_success(self) {
        let status = self.wait_exit();
        assert!(status.success(), "subscriber exited with {status}");
    }
}
