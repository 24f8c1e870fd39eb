//! Child processes that announce themselves with one JSON line on stdout
//! (`vouch node`, `vouch subscribe`, `vouch bridge streamr`, `vouch demo`),
//! killed when dropped, and what tests do with them: read their later
//! lines, signal them, wait for them, ask their HTTP API.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::WAIT;

/// Reads `child`'s stdout (which must be piped) line by line on a thread
/// of its own, so that a test can wait for a line with a deadline.
pub fn stdout_lines(child: &mut Child) -> mpsc::Receiver<String> {
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
    rx
}

/// A running child whose first stdout line was a JSON announcement;
/// killed on drop unless it already exited.
#[derive(Debug)]
pub struct Announced {
    /// The process.
    pub child: Child,
    /// Its announcement.
    pub announce: Value,
    /// Its later stdout lines.
    pub lines: mpsc::Receiver<String>,
}

impl Announced {
    /// Runs `command` with stdout piped (stdin and stderr as the command
    /// says) and waits up to `within` for its announcement; `what` names it
    /// in a failure.
    pub fn spawn(command: &mut Command, what: &str, within: Duration) -> Announced {
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        let lines = stdout_lines(&mut child);
        let first = lines
            .recv_timeout(within)
            .unwrap_or_else(|e| panic!("{what} did not announce itself: {e}"));
        let announce: Value = serde_json::from_str(&first)
            .unwrap_or_else(|e| panic!("{what} announced {first:?}, not JSON: {e}"));
        Announced { child, announce, lines }
    }

    /// The `host:port` of the `http://…` address it announced.
    pub fn host_port(&self) -> &str {
        self.announce["http"].as_str().unwrap().strip_prefix("http://").unwrap()
    }

    /// `GET path` of its HTTP API: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.host_port(), path)
    }

    /// `GET path` that must answer 200 with JSON.
    pub fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Polls `GET path` every `every` until `done` holds of its JSON;
    /// panics with the last answer after [`WAIT`].
    pub fn wait_json(
        &self,
        path: &str,
        what: &str,
        every: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let answer = self.get_json(path);
            if done(&answer) {
                return answer;
            }
            assert!(Instant::now() < deadline, "{what} never happened: {answer}");
            std::thread::sleep(every);
        }
    }

    /// Sends `signal` (`-TERM`, `-KILL`, `-INT`, …), then waits for the exit.
    pub fn signal(&mut self, signal: &str) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args([signal, &pid]).status().unwrap().success());
        self.wait_exit(&format!("exit after {signal}"))
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("-TERM")
    }

    /// Waits up to [`WAIT`] for the process to exit; `what` names the wait
    /// in a failure.
    pub fn wait_exit(&mut self, what: &str) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "no {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident memory of the process, KiB (from /proc).
    pub fn rss_kib(&self) -> u64 {
        self.status_field("VmRSS")
            .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// One field of the process's `/proc/PID/status` (e.g. `THP_enabled`),
    /// trimmed; `None` when this kernel does not report it.
    pub fn status_field(&self, field: &str) -> Option<String> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status.lines().find_map(|l| {
            let value = l.strip_prefix(field)?.strip_prefix(':')?;
            Some(value.trim().to_owned())
        })
    }
}

impl Drop for Announced {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

/// The pid of `parent`'s child whose command line contains `needle` (e.g.
/// the bridge's sidecar), if it has one now. Linux lists children under the
/// thread that spawned them, so every thread of `parent` is looked at.
pub fn child_pid(parent: u32, needle: &str) -> Option<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{parent}/task")).ok()?;
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace().filter_map(|p| p.parse::<u32>().ok()).collect::<Vec<_>>()
        })
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
}
