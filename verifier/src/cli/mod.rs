//! Command-line parsing and dispatch; one module per subcommand.
//!
//! Exit codes: 0 success, 1 a check failed (bad signature, unauthorized, …),
//! 2 usage or input errors (clap's convention, and ours for unreadable files).

mod authority;
mod bridge;
mod delegate;
mod demo;
mod envelope;
mod export;
mod keygen;
mod loadtest;
mod node;
mod prove;
mod publish;
mod replay;
mod serve;
mod sink;
mod streamr;
mod subscribe;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use k256::ecdsa::SigningKey;
use vouch_delegation::authority::{AuthorityView, onchain, snapshot};
use vouch_delegation::{Eip712Network, SignedDelegation, keys, wallet};
use vouch_schema::Address;

/// Signed, verifiable SLA telemetry for Livepeer's real-time AI video network.
#[derive(Debug, Parser)]
#[command(name = "vouch", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a secp256k1 key and print its address.
    Keygen(keygen::KeygenArgs),
    /// Issue, verify, revoke, import and export delegation certificates.
    #[command(subcommand)]
    Delegate(delegate::DelegateCommand),
    /// Sign, verify and inspect envelopes of go-livepeer events.
    #[command(subcommand)]
    Envelope(envelope::EnvelopeCommand),
    /// Read authority views from the chain.
    #[command(subcommand)]
    Authority(authority::AuthorityCommand),
    /// Replay go-livepeer events through the SDK, or publish signed envelopes unchanged.
    Publish(publish::PublishArgs),
    /// Join the gossip network, verify every envelope received and print it as NDJSON.
    Subscribe(subscribe::SubscribeArgs),
    /// Run a verifier node: gossip in, validation, durable log, HTTP API.
    Node(node::NodeArgs),
    /// Bridge accepted envelopes to other networks (a Streamr network, with Streamr's SDK).
    #[command(subcommand)]
    Bridge(bridge::BridgeCommand),
    /// Prepare and check the principal's Streamr stream and its PUBLISH grants (StreamRegistry).
    #[command(subcommand)]
    Streamr(streamr::StreamrCommand),
    /// Export accepted events from a verifier's log (NDJSON, go-livepeer's Kafka shape).
    #[command(subcommand)]
    Export(export::ExportCommand),
    /// Follow a verifier's log into a store (ClickHouse).
    #[command(subcommand)]
    Sink(sink::SinkCommand),
    /// Audit a verifier's log: hash chain, certificates and signatures, with the recorded authority views.
    Replay(replay::ReplayArgs),
    /// Prove an envelope is in the checkpoint its verifier signed for its minute.
    Prove(prove::ProveArgs),
    /// Run a whole simulated network on loopback: 3 verifiers, ~20 orchestrators, gateways, a load test.
    Demo(demo::DemoArgs),
    /// Probe orchestrators with synthetic sessions (all, top-n by stake, or seeded weighted sampling).
    Loadtest(loadtest::LoadtestArgs),
}

/// What a command found: success, or a check that failed (exit 1).
pub(crate) enum Exit {
    Ok,
    CheckFailed,
}

pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // gossipsub warns once per message a slow peer could not
                // take: the node counts those (`vouch_gossip_send_failed_total`).
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("warn,libp2p_gossipsub=error")
                }),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Keygen(args) => keygen::run(args),
        Command::Delegate(cmd) => delegate::run(cmd),
        Command::Envelope(cmd) => envelope::run(cmd),
        Command::Authority(cmd) => authority::run(cmd),
        Command::Publish(args) => publish::run(args),
        Command::Subscribe(args) => subscribe::run(args),
        Command::Node(args) => node::run(args),
        Command::Bridge(cmd) => bridge::run(cmd),
        Command::Streamr(cmd) => streamr::run(cmd),
        Command::Export(cmd) => export::run(cmd),
        Command::Sink(cmd) => sink::run(cmd),
        Command::Replay(args) => replay::run(args),
        Command::Prove(args) => prove::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Loadtest(args) => loadtest::run(args),
    };
    match result {
        Ok(Exit::Ok) => ExitCode::SUCCESS,
        Ok(Exit::CheckFailed) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {}", chain_message(&e));
            ExitCode::from(2)
        }
    }
}

/// `e` and its causes joined by `: `, each cause once. The library errors
/// keep their cause as `source()` and also show it in their own message
/// (those messages are stable), so a cause the text already holds is not
/// repeated.
fn chain_message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// The EIP-712 domain's variable half: which chain and contract certificates are bound to.
#[derive(Debug, Clone, Args)]
pub(crate) struct NetworkArgs {
    /// EIP-712 chainId (default: Arbitrum One).
    #[arg(long, env = "VOUCH_CHAIN_ID", default_value_t = Eip712Network::arbitrum_one().chain_id)]
    chain_id: u64,
    /// EIP-712 verifyingContract: Livepeer's BondingManager (default: its Arbitrum One proxy).
    #[arg(long, env = "VOUCH_VERIFYING_CONTRACT", default_value_t = Eip712Network::arbitrum_one().verifying_contract)]
    verifying_contract: Address,
}

impl NetworkArgs {
    pub(crate) fn network(&self) -> Eip712Network {
        Eip712Network { chain_id: self.chain_id, verifying_contract: self.verifying_contract }
    }
}

/// How to read a key file that may be an encrypted keystore.
#[derive(Debug, Clone, Args)]
pub(crate) struct PasswordArgs {
    /// File holding the keystore password (first line). Else $VOUCH_KEY_PASSWORD.
    #[arg(long)]
    password_file: Option<PathBuf>,
}

impl PasswordArgs {
    pub(crate) fn password(&self) -> Result<Option<String>> {
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading password file {}", path.display()))?;
            return Ok(Some(text.lines().next().unwrap_or_default().to_owned()));
        }
        Ok(std::env::var("VOUCH_KEY_PASSWORD").ok())
    }

    pub(crate) fn load_key(&self, path: &Path) -> Result<SigningKey> {
        let password = self.password()?;
        Ok(keys::load_signing_key(path, password.as_deref())?)
    }
}

/// Where to check that a principal holds an on-chain role (optional).
#[derive(Debug, Clone, Args)]
pub(crate) struct AuthorityArgs {
    /// An authority snapshot file (JSON).
    #[arg(long, conflicts_with = "rpc")]
    authority_snapshot: Option<PathBuf>,
    /// An Ethereum JSON-RPC endpoint to read Livepeer's active set from.
    #[arg(long)]
    rpc: Option<String>,
    /// Livepeer's Controller contract (default: Arbitrum One's).
    #[arg(long, default_value_t = onchain::ARBITRUM_ONE_CONTROLLER)]
    controller: Address,
    /// Give up on the chain after this long.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    rpc_timeout: std::time::Duration,
}

impl AuthorityArgs {
    /// The view to check against, or `None` when no source was given.
    pub(crate) fn load(&self) -> Result<Option<AuthorityView>> {
        if let Some(path) = &self.authority_snapshot {
            return Ok(Some(snapshot::load(path)?));
        }
        let Some(url) = &self.rpc else { return Ok(None) };
        let opts = onchain::ChainOptions { timeout: self.rpc_timeout, ..Default::default() };
        let view = runtime()?.block_on(onchain::fetch_view(url, self.controller, &opts))?;
        Ok(Some(view))
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Reads a certificate in either form: CBOR (as `delegate issue` writes)
/// or a signed wallet JSON document.
pub(crate) fn read_certificate(path: &Path) -> Result<SignedDelegation> {
    let bytes = read_input(path, vouch_delegation::MAX_ENCODED_BYTES * 64)?;
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        let text = std::str::from_utf8(&bytes).context("wallet JSON is not UTF-8")?;
        return wallet::import_delegation(text)
            .with_context(|| format!("{} is not a signed Delegation", path.display()));
    }
    SignedDelegation::decode(&bytes)
        .with_context(|| format!("{} is not a delegation certificate", path.display()))
}

/// Reads a whole file, refusing anything over `limit` bytes before reading it.
pub(crate) fn read_input(path: &Path, limit: usize) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.len() > limit as u64 {
        bail!("{} is {} bytes, over the {limit}-byte limit", path.display(), meta.len());
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Writes `bytes` to `path` (replacing it).
pub(crate) fn write_output(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

pub(crate) fn print_json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_the_message_already_shows_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let file =
            vouch_verifier::config_file::FileError::Read { path: "p.toml".into(), source: io };
        let config = vouch_verifier::node::ConfigError::File(file);
        let e =
            anyhow::Error::from(vouch_verifier::node::NodeError::from(config)).context("starting");
        assert_eq!(e.chain().count(), 4);
        assert_eq!(chain_message(&e), "starting: configuration: reading p.toml: gone");

        let e = anyhow::Error::from(std::io::Error::other("inner")).context("outer");
        assert_eq!(chain_message(&e), "outer: inner");
    }
}
