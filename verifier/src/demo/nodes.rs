//! The demo's verifiers: `vouch node` child processes on loopback, each
//! with a configuration file in the run's folder, bootstrapped to those
//! started before it, stopped with SIGTERM so that they commit their logs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::DemoError;

/// How long a node may take to announce itself.
const NODE_START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a node may take to exit after SIGTERM before it is killed.
const NODE_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a verifier process did not come up.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The process could not be started.
    #[error("starting {}", exe.display())]
    Spawn {
        /// The binary.
        exe: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Its first stdout line was not JSON.
    #[error("node announced {line:?}, not JSON")]
    NotJson {
        /// The line.
        line: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// It exited (or closed stdout) first.
    #[error("the node exited before announcing itself")]
    Exited,
    /// It said nothing in time.
    #[error("the node did not announce itself within {0:?}")]
    Timeout(Duration),
}

/// One verifier of the demo, as it announced itself.
#[derive(Debug)]
pub struct Verifier {
    /// `verifier-<n>`, from 1.
    pub name: String,
    /// Its HTTP API, `http://127.0.0.1:<port>`.
    pub http: String,
    /// Its libp2p peer id.
    pub peer_id: String,
    /// Its p2p listen addresses (each ending in `/p2p/<peer id>`).
    pub p2p: Vec<String>,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its configuration file.
    pub config: PathBuf,
    child: Child,
}

impl Verifier {
    /// Its process id (tests stop it abruptly with it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// The verifier processes; any still running when dropped are killed.
#[derive(Debug, Default)]
pub(super) struct Nodes {
    pub(super) list: Vec<Verifier>,
}

impl Nodes {
    /// Starts `count` nodes of `exe` in `dir`, each bootstrapped to those
    /// before it; `started` hears of each.
    pub(super) fn start_all(
        &mut self,
        exe: &Path,
        dir: &Path,
        count: usize,
        stop: &AtomicBool,
        started: &mut dyn FnMut(&Verifier),
    ) -> Result<(), DemoError> {
        for i in 1..=count {
            if stop.load(Ordering::SeqCst) {
                return Err(DemoError::Interrupted);
            }
            let name = format!("verifier-{i}");
            let bootstrap: Vec<String> =
                self.list.iter().flat_map(|n| n.p2p.iter().cloned()).collect();
            let config = dir.join(format!("{name}.toml"));
            std::fs::write(&config, node_config(&name, &bootstrap))
                .map_err(|e| DemoError::io(format!("writing {}", config.display()), e))?;
            let log_path = dir.join(format!("{name}.stderr.log"));
            let log = std::fs::File::create(&log_path)
                .map_err(|e| DemoError::io("creating the node's log file".into(), e))?;
            let mut command = Command::new(exe);
            command
                .args(["node", "--config"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::from(log));
            // A process group of its own: Ctrl-C in the terminal reaches only
            // the demo, which flushes its publishers before it stops the nodes.
            #[cfg(unix)]
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            let not_started =
                |source| DemoError::NodeStart { name: name.clone(), log: log_path.clone(), source };
            let mut child = command
                .spawn()
                .map_err(|source| not_started(StartError::Spawn { exe: exe.to_owned(), source }))?;
            let announce = match read_announce(&mut child) {
                Ok(a) => a,
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(not_started(e));
                }
            };
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            let node = Verifier {
                name: name.clone(),
                http: text(&announce["http"]),
                peer_id: text(&announce["peer_id"]),
                p2p: announce["p2p_listen"]
                    .as_array()
                    .map(|a| a.iter().map(text).collect())
                    .unwrap_or_default(),
                data_dir: dir.join(&name),
                config,
                child,
            };
            started(&node);
            self.list.push(node);
        }
        Ok(())
    }

    /// SIGTERM to every node, then waits for each (killing one that hangs);
    /// `report` hears of each that exited badly or had to be killed.
    pub(super) fn stop(&mut self, report: &mut dyn FnMut(&str)) {
        for n in &mut self.list {
            if matches!(n.child.try_wait(), Ok(None)) {
                let _ = Command::new("kill").args(["-TERM", &n.child.id().to_string()]).status();
            }
        }
        for n in &mut self.list {
            let deadline = Instant::now() + NODE_STOP_TIMEOUT;
            loop {
                match n.child.try_wait() {
                    Ok(Some(status)) => {
                        if !status.success() {
                            report(&format!("  {} exited with {status}", n.name));
                        }
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    _ => {
                        report(&format!("  {} did not stop in time; killed", n.name));
                        let _ = n.child.kill();
                        let _ = n.child.wait();
                        break;
                    }
                }
            }
        }
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for n in &mut self.list {
            if matches!(n.child.try_wait(), Ok(None)) {
                let _ = n.child.kill();
                let _ = n.child.wait();
            }
        }
    }
}

/// A node's configuration: loopback listeners, the run's authority
/// snapshot and demo policy (paths relative to the file).
fn node_config(name: &str, bootstrap: &[String]) -> String {
    let list = |v: &[String]| v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
    format!(
        "# vouch demo: {name}. Paths are relative to this file.\n\
         data_dir = \"{name}\"\n\n\
         [p2p]\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\nbootstrap = [{}]\n\n\
         [http]\nlisten = \"127.0.0.1:0\"\n\n\
         [authority]\nsnapshot = \"authority.json\"\n\n\
         [sla]\n# Short timings so scores appear within two minutes; never for production.\n\
         policy = \"sla-policy-demo.toml\"\n\
         also = [\"naap-quality-benchmark-demo.toml\"]\n\n\
         [checkpoint]\n# This verifier's delegate (role verifier) signs its checkpoints.\n\
         key = \"keys/{name}.key\"\ncertificate = \"keys/{name}.cert\"\n",
        list(bootstrap)
    )
}

/// Reads the node's announce line; the rest of its stdout is drained by a thread.
fn read_announce(child: &mut Child) -> Result<Value, StartError> {
    let Some(stdout) = child.stdout.take() else { return Err(StartError::Exited) };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next();
        let _ = tx.send(first);
        for _ in lines {}
    });
    match rx.recv_timeout(NODE_START_TIMEOUT) {
        Ok(Some(Ok(line))) => {
            serde_json::from_str(&line).map_err(|source| StartError::NotJson { line, source })
        }
        Ok(_) => Err(StartError::Exited),
        Err(_) => Err(StartError::Timeout(NODE_START_TIMEOUT)),
    }
}

/// A GET over plain HTTP/1.0 (no chunking) on loopback; `None` on any failure.
pub(super) fn http_get_json(base: &str, path: &str) -> Option<Value> {
    let host = base.strip_prefix("http://")?;
    let mut stream = TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut response = Vec::new();
    stream.take(16 << 20).read_to_end(&mut response).ok()?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    serde_json::from_slice(&response[split + 4..]).ok()
}
