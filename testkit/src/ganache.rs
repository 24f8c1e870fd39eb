//! A throwaway local Ethereum node (ganache 7) with Livepeer contract
//! stand-ins, for integration tests.
//!
//! Each [`Ganache`] is its own node on a free port (tests run in parallel);
//! dropping it kills the node, also when the test panics. Contracts are
//! deployed and driven through `interop/chain.mjs`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, repo_root};

/// How long a node may take to answer its first request (the suite starts
/// several at once on few cores).
const START_DEADLINE: Duration = Duration::from_secs(90);

/// Fails the test unless `npm ci --prefix interop` has been run.
pub fn require_node_modules() -> PathBuf {
    let root = repo_root();
    let cli = root.join("interop/node_modules/ganache/dist/node/cli.js");
    assert!(
        cli.is_file() && root.join("interop/node_modules/solc").is_dir(),
        "interop/node_modules is missing: run `npm ci --prefix interop` first"
    );
    cli
}

/// An http URL on which a connection is refused.
pub fn closed_port_url() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

/// Addresses of a deployment made by `chain.mjs deploy` (lowercase 0x-hex).
#[derive(Debug, Clone)]
pub struct Deployed {
    /// The ControllerMock.
    pub controller: String,
    /// The BondingManagerMock (registered in the Controller unless deployed unregistered).
    pub bonding_manager: String,
    /// The node's chain id (1337 for ganache).
    pub chain_id: u64,
}

/// A running ganache node; killed on drop.
#[derive(Debug)]
pub struct Ganache {
    child: Child,
    port: u16,
    url: String,
    root: PathBuf,
}

impl Ganache {
    /// Starts a node on a free port and waits until it answers JSON-RPC.
    pub fn start() -> Ganache {
        Ganache::start_with(&["--wallet.deterministic"], &[])
    }

    /// Like [`Ganache::start`] with ganache options of the caller's (chain
    /// id, accounts) instead of `--wallet.deterministic`, and extra
    /// environment variables (a `NODE_OPTIONS` preload).
    pub fn start_with(options: &[&str], env: &[(&str, &str)]) -> Ganache {
        let cli = require_node_modules();
        let root = repo_root();
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new("node")
                .arg(&cli)
                .args(["--server.host", "127.0.0.1", "--server.port", &port.to_string()])
                .args(options)
                .arg("--logging.quiet")
                .envs(env.iter().copied())
                .current_dir(&root)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run `node` (is Node.js installed?): {e}"));
            let mut node = Ganache {
                child,
                port,
                url: format!("http://127.0.0.1:{port}"),
                root: root.clone(),
            };
            match node.wait_ready() {
                Ok(()) => return node,
                Err(e) => last_error = e, // e.g. the port was taken meanwhile; drop kills it
            }
        }
        panic!("ganache did not start: {last_error}");
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!(
                    "ganache exited with {status} before listening on port {}",
                    self.port
                ));
            }
            if rpc_chain_id(self.port).is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no JSON-RPC answer on port {} within {START_DEADLINE:?}",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The port the node listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs `node interop/chain.mjs <command> --rpc <url> <args...>` and
    /// returns its JSON output; panics with its stderr if it fails.
    pub fn chain(&self, command: &str, args: &[&str]) -> serde_json::Value {
        let out = Command::new("node")
            .arg(self.root.join("interop/chain.mjs"))
            .arg(command)
            .args(["--rpc", &self.url])
            .args(args)
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run `node`: {e}"));
        assert!(
            out.status.success(),
            "chain.mjs {command} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "chain.mjs {command} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Deploys Controller + BondingManager, registers the BondingManager and
    /// adds `transcoders`: a JSON array of `{"address", "stake", "active"}`.
    pub fn deploy(&self, transcoders: &serde_json::Value) -> Deployed {
        self.deploy_with(transcoders, &[])
    }

    /// Like [`Ganache::deploy`] but leaves the Controller without a BondingManager.
    pub fn deploy_unregistered(&self) -> Deployed {
        self.deploy_with(&serde_json::json!([]), &["--no-register"])
    }

    fn deploy_with(&self, transcoders: &serde_json::Value, extra: &[&str]) -> Deployed {
        let list = transcoders.to_string();
        let mut args = vec!["--transcoders", list.as_str()];
        args.extend_from_slice(extra);
        let out = self.chain("deploy", &args);
        let field = |k: &str| {
            out[k].as_str().unwrap_or_else(|| panic!("deploy output lacks {k}: {out}")).to_owned()
        };
        Deployed {
            controller: field("controller"),
            bonding_manager: field("bondingManager"),
            chain_id: out["chainId"]
                .as_u64()
                .unwrap_or_else(|| panic!("deploy output lacks chainId: {out}")),
        }
    }

    /// Adds transcoders to a deployed pool (same JSON as [`Ganache::deploy`]).
    pub fn add(&self, d: &Deployed, transcoders: &serde_json::Value) {
        self.chain(
            "add",
            &["--bonding-manager", &d.bonding_manager, "--transcoders", &transcoders.to_string()],
        );
    }

    /// Sets a transcoder's active flag.
    pub fn set_active(&self, d: &Deployed, transcoder: &str, active: bool) {
        let flag = if active { "true" } else { "false" };
        self.chain(
            "set-active",
            &["--bonding-manager", &d.bonding_manager, "--address", transcoder, "--active", flag],
        );
    }

    /// Points `transcoder`'s pool successor at `next` (breaks the list on purpose).
    pub fn corrupt_next(&self, d: &Deployed, transcoder: &str, next: &str) {
        self.chain(
            "corrupt-next",
            &["--bonding-manager", &d.bonding_manager, "--address", transcoder, "--next", next],
        );
    }

    /// One JSON-RPC call; panics unless the node answers with a result.
    pub fn rpc(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let body =
            serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        self.request(&body)
    }

    /// Sends a whole JSON-RPC request object as given (e.g. the
    /// `eth_sendTransaction` request a tool prepared); panics unless the
    /// node answers with a result, which it returns.
    pub fn request(&self, body: &serde_json::Value) -> serde_json::Value {
        let reply = rpc_post(self.port, &body.to_string())
            .unwrap_or_else(|| panic!("no JSON-RPC answer to {body}"));
        assert!(reply.get("error").is_none(), "{body} failed: {reply}");
        reply["result"].clone()
    }

    /// Sends a transaction request and checks that it was mined and succeeded.
    pub fn transact(&self, body: &serde_json::Value) -> serde_json::Value {
        let hash = self.request(body);
        let receipt = self.rpc("eth_getTransactionReceipt", serde_json::json!([hash]));
        assert_eq!(receipt["status"], "0x1", "transaction reverted: {receipt}");
        receipt
    }

    /// Kills the node now (the same as dropping it).
    pub fn stop(self) {}
}

impl Drop for Ganache {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `eth_chainId` over a bare HTTP/1.1 request, `None` until the node answers.
fn rpc_chain_id(port: u16) -> Option<u64> {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#;
    let v = rpc_post(port, body)?;
    u64::from_str_radix(v["result"].as_str()?.trim_start_matches("0x"), 16).ok()
}

/// One JSON-RPC request over a bare HTTP/1.1 connection.
fn rpc_post(port: u16, body: &str) -> Option<serde_json::Value> {
    let mut s =
        TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_secs(1))
            .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    let json = reply.split("\r\n\r\n").nth(1)?;
    serde_json::from_str(json.trim()).ok()
}
