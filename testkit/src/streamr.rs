//! A private Streamr network on loopback for end-to-end tests: ganache 7
//! (chain id 31337, as Streamr's `dev2` environment) with Streamr's
//! StreamRegistryV5 deployed from `@streamr/network-contracts@8.2.0`, a
//! trackerless-network entry point, and Streamr SDK clients
//! (`interop/streamr-client.mjs`) as independent subscribers and publishers.
//! Every Node process runs with `interop/loopback-only.cjs` preloaded, so
//! nothing listens beyond 127.0.0.1 or reaches the internet. Everything is
//! killed on drop.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::process::stdout_lines;
use crate::{WAIT, ganache, repo_root};

/// Ether for each funded account (1,000 ETH, in wei, hex).
const BALANCE: &str = "0x3635C9ADC5DEA00000";

/// The deployer's key (funded; deploys the registry).
const DEPLOYER_KEY: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";

/// `NODE_OPTIONS` for every Node process of a test: the loopback-only preload.
pub fn node_options() -> String {
    format!("--require={}", repo_root().join("interop/loopback-only.cjs").display())
}

/// `node SCRIPT` in the repository root, loopback only.
pub fn node(script: &str) -> Command {
    let root = repo_root();
    assert!(
        root.join("interop/node_modules/@streamr/sdk").is_dir(),
        "interop/node_modules lacks @streamr/sdk: run `npm ci --prefix interop` (scripts/test.sh does)"
    );
    let mut c = Command::new("node");
    c.arg(root.join(script)).current_dir(&root).env("NODE_OPTIONS", node_options());
    c
}

/// A child whose stdout lines (JSON; anything else kept as `{"type":
/// "noise"}`) are all kept, so a test can wait on their whole history.
#[derive(Debug)]
pub struct Lines {
    child: Child,
    stdin: Option<ChildStdin>,
    incoming: mpsc::Receiver<String>,
    seen: RefCell<Vec<Value>>,
}

impl Lines {
    /// Runs `command` with stdin and stdout piped (stderr inherited).
    pub fn spawn(mut command: Command) -> Lines {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run node (Node.js 20+ is needed): {e}"));
        let incoming = stdout_lines(&mut child);
        let stdin = child.stdin.take();
        Lines { child, stdin, incoming, seen: RefCell::default() }
    }

    /// Every line so far.
    pub fn all(&self) -> Vec<Value> {
        let mut seen = self.seen.borrow_mut();
        seen.extend(self.incoming.try_iter().map(|line| {
            serde_json::from_str(&line).unwrap_or_else(|_| json!({"type": "noise", "line": line}))
        }));
        seen.clone()
    }

    /// Lines of one `type`.
    pub fn of(&self, kind: &str) -> Vec<Value> {
        self.all().into_iter().filter(|l| l["type"] == kind).collect()
    }

    /// Waits until `done` holds over the lines so far; panics with them otherwise.
    pub fn wait(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let all = self.all();
            if done(&all) {
                return all;
            }
            if Instant::now() > deadline {
                let mut kinds = BTreeMap::<String, usize>::new();
                for l in &all {
                    *kinds.entry(l["type"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
                }
                let last: Vec<String> = all
                    .iter()
                    .rev()
                    .take(3)
                    .map(|l| l.to_string().chars().take(300).collect())
                    .collect();
                panic!("{what} never happened: lines by type {kinds:?}, the last: {last:#?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The network: chain, registry, entry point, and the SDK client config.
#[derive(Debug)]
pub struct StreamrNet {
    /// The chain holding the registry.
    pub chain: ganache::Ganache,
    /// The StreamRegistryV5 address (lowercase 0x-hex).
    pub registry: String,
    /// Runs as long as the network is needed.
    _entry_point: Lines,
    /// A StreamrClient config (JSON file) for this network.
    client_config: PathBuf,
    /// Holds the config.
    _dir: TempDir,
}

impl StreamrNet {
    /// Starts the chain (the deployer and `funded` keys unlocked, with
    /// ether), deploys the registry and starts the entry point.
    pub fn start(funded: &[&str]) -> StreamrNet {
        // Gas estimated for requests without one, as a wallet does.
        let mut options = vec![
            "--chain.chainId".to_owned(),
            "31337".to_owned(),
            "--miner.defaultTransactionGasLimit".to_owned(),
            "estimate".to_owned(),
        ];
        for key in std::iter::once(&DEPLOYER_KEY).chain(funded) {
            options.push("--wallet.accounts".to_owned());
            options.push(format!("{key},{BALANCE}"));
        }
        let options: Vec<&str> = options.iter().map(String::as_str).collect();
        let node_options = node_options();
        let chain =
            ganache::Ganache::start_with(&options, &[("NODE_OPTIONS", node_options.as_str())]);
        let out = node("interop/streamr-registry.mjs")
            .args(["deploy", "--rpc", chain.url()])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "deploy: {}", String::from_utf8_lossy(&out.stderr));
        let deployed: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(deployed["chainId"], 31337);
        let registry = deployed["streamRegistry"].as_str().unwrap().to_owned();

        let entry_point = Lines::spawn(node("interop/streamr-entry-point.mjs"));
        let entry = entry_point.wait("the entry point", |l| !l.is_empty())[0].clone();
        assert_eq!(entry["websocket"]["host"], "127.0.0.1", "{entry}");

        let dir = TempDir::new().unwrap();
        let client_config = dir.path().join("streamr-client.json");
        let config = json!({
            "environment": "dev2",
            "network": {"controlLayer": {
                "entryPoints": [entry],
                "websocketHost": "127.0.0.1",
                "websocketServerEnableTls": false,
                "iceServers": [],
                "entryPointDiscovery": {"enabled": false},
            }},
            "contracts": {
                "ethereumNetwork": {"chainId": 31337},
                "rpcs": [{"url": chain.url()}],
                "rpcQuorum": 1,
                "streamRegistryChainAddress": registry,
                // Never asked by what the tests do; a closed loopback port.
                "theGraphUrl": ganache::closed_port_url(),
                "pollInterval": 100,
            },
            "metrics": false,
            // Permissions re-read within a second, so a revocation shows quickly.
            "cache": {"maxAge": 1000},
        });
        std::fs::write(&client_config, config.to_string()).unwrap();
        StreamrNet { chain, registry, _entry_point: entry_point, client_config, _dir: dir }
    }

    /// The registry flags of `vouch streamr`.
    pub fn registry_args(&self) -> Vec<String> {
        vec![
            "--registry".into(),
            self.registry.clone(),
            "--registry-chain-id".into(),
            "31337".into(),
        ]
    }

    /// The StreamrClient config file's path.
    pub fn config_path(&self) -> &str {
        self.client_config.to_str().unwrap()
    }

    /// A validating SDK subscriber on `stream`'s `partitions`, once subscribed.
    pub fn subscriber(&self, stream: &str, partitions: &[u32]) -> Lines {
        let mut c = node("interop/streamr-client.mjs");
        c.args(["subscribe", "--config", self.config_path(), "--stream", stream]);
        for p in partitions {
            c.args(["--partition", &p.to_string()]);
        }
        let sub = Lines::spawn(c);
        sub.wait("the subscriber ready", |l| l.iter().any(|v| v["type"] == "ready"));
        sub
    }

    /// `streamr-client.mjs ARGS` to its end: its one JSON line.
    pub fn client(&self, args: &[&str]) -> Value {
        let out = node("interop/streamr-client.mjs")
            .args(args)
            .args(["--config", self.config_path()])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "streamr-client {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.lines().last().unwrap_or("null"))
            .unwrap_or_else(|e| panic!("streamr-client {args:?} printed {text:?}: {e}"))
    }

    /// Sends a transaction request a tool printed (`eth_sendTransaction` of
    /// an unlocked account, or `eth_sendRawTransaction`) and checks it succeeded.
    pub fn send(&self, request: &Value) -> Value {
        self.chain.transact(request)
    }
}

/// The bridge's sidecar script (`interop/streamr-sidecar/sidecar.mjs`).
pub fn sidecar_script() -> PathBuf {
    repo_root().join("interop/streamr-sidecar/sidecar.mjs")
}
