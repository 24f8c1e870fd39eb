//! Livepeer's active orchestrator set, read from the chain over JSON-RPC.
//!
//! [`fetch_view`] resolves the BondingManager through the Controller
//! (`getContract(keccak256("BondingManager"))`), walks the transcoder pool
//! first→next until the zero address, keeps the transcoders for which
//! `isActiveTranscoder` is true as [`Role::Orchestrator`] principals with
//! their `transcoderTotalStake`, and merges in a configured gateway
//! allowlist. Every call of one fetch reads the same block, so a view is a
//! consistent snapshot named `chain:<chainId>@<block>`, and the whole fetch
//! runs under one deadline ([`ChainOptions::timeout`]): an unreachable or
//! stalled node is an error, never a hang.
//!
//! [`OnChainAuthority`] keeps such a view in a [`CachedAuthority`] and
//! refreshes it from a background task; the hot path only ever reads the
//! cache.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use alloy::primitives::{U256, keccak256};
use alloy::providers::{Provider, ProviderBuilder, RootProvider};
use alloy::transports::http::reqwest;
use alloy::transports::{RpcError, TransportError, TransportErrorKind};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use vouch_schema::Address;

use super::{AuthorityView, CachedAuthority, PrincipalEntry};
use crate::Role;

/// The ABI subset Vouch reads (Livepeer `Controller` and `BondingManagerTarget`).
#[allow(missing_docs, unreachable_pub)]
mod abi {
    alloy::sol! {
        /// Livepeer's contract registry.
        #[sol(rpc)]
        interface IController {
            function getContract(bytes32 id) external view returns (address);
        }

        /// The view functions of Livepeer's BondingManager (called on the proxy).
        #[sol(rpc)]
        interface IBondingManager {
            function getFirstTranscoderInPool() external view returns (address);
            function getNextTranscoderInPool(address transcoder) external view returns (address);
            function getTranscoderPoolSize() external view returns (uint256);
            function isActiveTranscoder(address transcoder) external view returns (bool);
            function transcoderTotalStake(address transcoder) external view returns (uint256);
        }
    }
}

use abi::{IBondingManager, IController};

/// Arbitrum One's chain id, where Livepeer's protocol contracts live.
pub const ARBITRUM_ONE_CHAIN_ID: u64 = 42161;

/// Livepeer's Controller on Arbitrum One (`0xD8E8328501E9645d16Cf49539efC04f734606ee4`).
pub const ARBITRUM_ONE_CONTROLLER: Address =
    Address(alloy::primitives::address!("D8E8328501E9645d16Cf49539efC04f734606ee4").0.0);

/// The Controller key under which the BondingManager is registered.
pub const BONDING_MANAGER_NAME: &str = "BondingManager";

/// Default deadline for one whole fetch.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default bound on the number of pool entries a walk may visit.
pub const DEFAULT_MAX_POOL_WALK: usize = 1000;

/// Default interval between background refreshes.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Floor on the refresh interval, so a zero in a config cannot hammer the node.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_millis(100);

/// How many `isActiveTranscoder`/`transcoderTotalStake` lookups run at once
/// (kept low so public RPC endpoints do not rate-limit a fetch).
const LOOKUP_CONCURRENCY: usize = 8;

/// How a fetch talks to the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainOptions {
    /// Deadline for one whole fetch (every RPC call in it together).
    pub timeout: Duration,
    /// The most pool entries a walk may visit before it is abandoned.
    pub max_pool_walk: usize,
    /// Gateway allowlist, merged into every view as [`Role::Gateway`] principals.
    pub gateways: Vec<Address>,
    /// If set, a node reporting another chain id is refused
    /// ([`OnChainError::WrongChain`]).
    pub expected_chain_id: Option<u64>,
}

impl Default for ChainOptions {
    fn default() -> Self {
        ChainOptions {
            timeout: DEFAULT_TIMEOUT,
            max_pool_walk: DEFAULT_MAX_POOL_WALK,
            gateways: Vec::new(),
            expected_chain_id: None,
        }
    }
}

/// Why the chain could not be read. The messages are stable (the parts in
/// braces aside) so operators and tests can match on them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OnChainError {
    /// The RPC URL does not parse.
    #[error("invalid JSON-RPC URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No connection could be made (refused, DNS failure, TLS failure, ...).
    #[error("cannot reach the Ethereum JSON-RPC node at {url}: {reason}")]
    Unreachable {
        /// The node's URL.
        url: String,
        /// The connection error.
        reason: String,
    },
    /// The fetch did not complete within [`ChainOptions::timeout`].
    #[error("the Ethereum JSON-RPC node at {url} did not answer within {timeout:?}")]
    Timeout {
        /// The node's URL.
        url: String,
        /// The deadline that passed.
        timeout: Duration,
    },
    /// The node answered with an error, or with something that does not decode.
    #[error("JSON-RPC call failed: {0}")]
    Rpc(String),
    /// The node is on another chain than [`ChainOptions::expected_chain_id`].
    #[error("the JSON-RPC node is on chain {actual}, expected chain {expected}")]
    WrongChain {
        /// The configured chain id.
        expected: u64,
        /// The chain id the node reports.
        actual: u64,
    },
    /// No code at an address that should hold a contract.
    #[error("no contract at {address} (expected the {what})")]
    NotAContract {
        /// Which contract was expected (`Controller`, `BondingManager`).
        what: &'static str,
        /// The address without code.
        address: Address,
    },
    /// The Controller maps `keccak256("BondingManager")` to the zero address.
    #[error("the Controller at {controller} has no BondingManager registered")]
    BondingManagerNotRegistered {
        /// The Controller asked.
        controller: Address,
    },
    /// The pool is larger than [`ChainOptions::max_pool_walk`], or the walk
    /// did not end after as many entries as the pool reports.
    #[error("the transcoder pool walk exceeds {limit} entries (pool reports {reported})")]
    PoolWalkTooLong {
        /// The bound that was hit.
        limit: usize,
        /// `getTranscoderPoolSize()` as reported.
        reported: String,
    },
    /// The walk came back to a transcoder it had already visited.
    #[error("the transcoder pool walk loops: {address} is visited twice")]
    PoolWalkLoop {
        /// The transcoder seen twice.
        address: Address,
    },
    /// The walk ended early: fewer entries than `getTranscoderPoolSize()`.
    #[error("the transcoder pool walk found {walked} transcoders but the pool reports {reported}")]
    PoolSizeMismatch {
        /// Entries found by the walk.
        walked: usize,
        /// `getTranscoderPoolSize()` as reported.
        reported: usize,
    },
}

pub(crate) fn to_eth(a: Address) -> alloy::primitives::Address {
    alloy::primitives::Address::from(a.0)
}

pub(crate) fn from_eth(a: alloy::primitives::Address) -> Address {
    Address(a.into_array())
}

/// A read-only connection to one node, with the URL kept for error messages
/// (also how [`crate::stream_registry`] reads Streamr's StreamRegistry).
pub(crate) struct Chain {
    pub(crate) url: String,
    pub(crate) provider: RootProvider,
}

impl Chain {
    pub(crate) fn connect(rpc_url: &str, timeout: Duration) -> Result<Chain, OnChainError> {
        let invalid = |reason: String| OnChainError::InvalidUrl { url: rpc_url.to_owned(), reason };
        let url = reqwest::Url::parse(rpc_url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("only http and https are supported".to_owned()));
        }
        // The outer deadline bounds the fetch; these keep no request alive past it.
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        let shown = redact(&url);
        let provider =
            ProviderBuilder::new().disable_recommended_fillers().connect_reqwest(client, url);
        Ok(Chain { url: shown, provider })
    }

    pub(crate) fn transport_error(&self, e: &TransportError) -> OnChainError {
        classify(&self.url, e)
    }

    pub(crate) fn contract_error(&self, e: alloy::contract::Error) -> OnChainError {
        contract_error(&self.url, e)
    }

    pub(crate) async fn chain_id(&self) -> Result<u64, OnChainError> {
        self.provider.get_chain_id().await.map_err(|e| self.transport_error(&e))
    }

    pub(crate) async fn ensure_contract(
        &self,
        what: &'static str,
        address: Address,
        block: u64,
    ) -> Result<(), OnChainError> {
        let code = self
            .provider
            .get_code_at(to_eth(address))
            .number(block)
            .await
            .map_err(|e| self.transport_error(&e))?;
        if code.is_empty() {
            return Err(OnChainError::NotAContract { what, address });
        }
        Ok(())
    }

    /// Resolves the BondingManager through the Controller at `block`.
    async fn bonding_manager(
        &self,
        controller: Address,
        block: u64,
    ) -> Result<Address, OnChainError> {
        self.ensure_contract("Controller", controller, block).await?;
        let id = keccak256(BONDING_MANAGER_NAME.as_bytes());
        let bm = IController::new(to_eth(controller), &self.provider)
            .getContract(id)
            .block(block.into())
            .call()
            .await
            .map_err(|e| self.contract_error(e))?;
        let bm = from_eth(bm);
        if bm == Address::ZERO {
            return Err(OnChainError::BondingManagerNotRegistered { controller });
        }
        self.ensure_contract("BondingManager", bm, block).await?;
        Ok(bm)
    }
}

fn contract_error(url: &str, e: alloy::contract::Error) -> OnChainError {
    match e {
        alloy::contract::Error::TransportError(t) => classify(url, &t),
        other => OnChainError::Rpc(other.to_string()),
    }
}

/// `scheme://host[:port]`, plus `/…` when the URL had a path or query: RPC
/// URLs often carry an API key in the path, which must not reach logs.
fn redact(url: &reqwest::Url) -> String {
    let mut out = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
        out.push_str("/…");
    }
    out
}

/// Maps a transport error to a stable kind: connection failures are
/// [`OnChainError::Unreachable`], client timeouts [`OnChainError::Timeout`].
fn classify(url: &str, e: &TransportError) -> OnChainError {
    if let RpcError::Transport(TransportErrorKind::Custom(inner)) = e
        && let Some(re) = inner.downcast_ref::<reqwest::Error>()
    {
        if re.is_timeout() {
            return OnChainError::Timeout { url: url.to_owned(), timeout: Duration::ZERO };
        }
        if re.is_connect() {
            return OnChainError::Unreachable { url: url.to_owned(), reason: source_chain(re) };
        }
    }
    OnChainError::Rpc(e.to_string())
}

/// The causes under `e`, outermost first ("connection refused" lives deep);
/// `e` itself is left out because reqwest puts the full URL in it.
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() { "connection failed".to_owned() } else { parts.join(": ") }
}

/// Runs `fut` under the fetch deadline, turning both the deadline and a
/// client-side timeout into [`OnChainError::Timeout`] with the real bound.
pub(crate) async fn with_deadline<T>(
    url: &str,
    timeout: Duration,
    fut: impl Future<Output = Result<T, OnChainError>>,
) -> Result<T, OnChainError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Err(OnChainError::Timeout { .. })) | Err(_) => {
            Err(OnChainError::Timeout { url: url.to_owned(), timeout })
        }
        Ok(result) => result,
    }
}

/// Reads the authority view from Livepeer's contracts at the node's latest block.
///
/// `controller` is Livepeer's Controller ([`ARBITRUM_ONE_CONTROLLER`] in
/// production). Active transcoders become orchestrators with their total
/// stake; [`ChainOptions::gateways`] become gateways. The view's source is
/// `chain:<chainId>@<block>`. Fails as a whole (never returns a partial
/// view) and within [`ChainOptions::timeout`].
pub async fn fetch_view(
    rpc_url: &str,
    controller: Address,
    opts: &ChainOptions,
) -> Result<AuthorityView, OnChainError> {
    let chain = Chain::connect(rpc_url, opts.timeout)?;
    let (chain_id, block, pool) =
        with_deadline(&chain.url, opts.timeout, walk_pool(&chain, controller, opts)).await?;
    let orchestrators = pool.into_iter().filter(|t| t.active).map(|t| PrincipalEntry {
        address: t.address,
        roles: [Role::Orchestrator].into(),
        stake: Some(t.stake),
    });
    let gateways = opts.gateways.iter().map(|&address| PrincipalEntry {
        address,
        roles: [Role::Gateway].into(),
        stake: None,
    });
    Ok(AuthorityView::new(format!("chain:{chain_id}@{block}"), orchestrators.chain(gateways)))
}

/// Walks the transcoder pool at the latest block and returns it in pool
/// order (highest stake first) with each transcoder's active flag and total
/// stake. The diagnostic counterpart of [`fetch_view`], with the same
/// bounds and errors.
pub async fn pool(
    rpc_url: &str,
    controller: Address,
    opts: &ChainOptions,
) -> Result<Vec<PoolEntry>, OnChainError> {
    let chain = Chain::connect(rpc_url, opts.timeout)?;
    let (_, _, pool) =
        with_deadline(&chain.url, opts.timeout, walk_pool(&chain, controller, opts)).await?;
    Ok(pool)
}

/// Chain id, block number and the pool in order, every read at that block.
async fn walk_pool(
    chain: &Chain,
    controller: Address,
    opts: &ChainOptions,
) -> Result<(u64, u64, Vec<PoolEntry>), OnChainError> {
    let chain_id = chain.chain_id().await?;
    if let Some(expected) = opts.expected_chain_id
        && expected != chain_id
    {
        return Err(OnChainError::WrongChain { expected, actual: chain_id });
    }
    let block = chain.provider.get_block_number().await.map_err(|e| chain.transport_error(&e))?;
    let bm_address = chain.bonding_manager(controller, block).await?;
    let bm = IBondingManager::new(to_eth(bm_address), chain.provider.clone());
    let err = |e| chain.contract_error(e);

    let reported = bm.getTranscoderPoolSize().block(block.into()).call().await.map_err(err)?;
    let size = match usize::try_from(reported) {
        Ok(n) if n <= opts.max_pool_walk => n,
        _ => {
            return Err(OnChainError::PoolWalkTooLong {
                limit: opts.max_pool_walk,
                reported: reported.to_string(),
            });
        }
    };

    // Walk sequentially (each step needs the previous answer) while the
    // per-transcoder lookups run alongside, a few at a time. Dropping the
    // set on an early return cancels them.
    let limiter = Arc::new(Semaphore::new(LOOKUP_CONCURRENCY));
    let mut lookups: JoinSet<Result<(usize, PoolEntry), OnChainError>> = JoinSet::new();
    let mut seen: HashSet<Address> = HashSet::new();
    let mut next = bm.getFirstTranscoderInPool().block(block.into()).call().await.map_err(err)?;
    while !next.is_zero() {
        let address = from_eth(next);
        if !seen.insert(address) {
            return Err(OnChainError::PoolWalkLoop { address });
        }
        if seen.len() > size {
            return Err(OnChainError::PoolWalkTooLong {
                limit: size,
                reported: reported.to_string(),
            });
        }
        let index = seen.len() - 1;
        let (task_bm, limiter, url) = (bm.clone(), limiter.clone(), chain.url.clone());
        lookups.spawn(async move {
            let _permit =
                limiter.acquire_owned().await.map_err(|e| OnChainError::Rpc(e.to_string()))?;
            let err = |e| contract_error(&url, e);
            let active =
                task_bm.isActiveTranscoder(next).block(block.into()).call().await.map_err(err)?;
            let stake: U256 =
                task_bm.transcoderTotalStake(next).block(block.into()).call().await.map_err(err)?;
            Ok((index, PoolEntry { address, active, stake: stake.to_string() }))
        });
        next = bm.getNextTranscoderInPool(next).block(block.into()).call().await.map_err(err)?;
    }
    if seen.len() != size {
        return Err(OnChainError::PoolSizeMismatch { walked: seen.len(), reported: size });
    }

    let mut found = Vec::with_capacity(size);
    while let Some(joined) = lookups.join_next().await {
        found.push(
            joined.map_err(|e| OnChainError::Rpc(format!("pool lookup task failed: {e}")))??,
        );
    }
    found.sort_unstable_by_key(|(index, _)| *index);
    Ok((chain_id, block, found.into_iter().map(|(_, entry)| entry).collect()))
}

/// One transcoder of the pool, as [`pool`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolEntry {
    /// The transcoder's address.
    pub address: Address,
    /// `isActiveTranscoder` at the block read.
    pub active: bool,
    /// `transcoderTotalStake` in LPT wei, as a decimal string.
    pub stake: String,
}

/// The BondingManager address the Controller holds now (also the EIP-712
/// `verifyingContract` of delegation certificates).
pub async fn resolve_bonding_manager(
    rpc_url: &str,
    controller: Address,
    opts: &ChainOptions,
) -> Result<Address, OnChainError> {
    let chain = Chain::connect(rpc_url, opts.timeout)?;
    with_deadline(&chain.url, opts.timeout, async {
        let block =
            chain.provider.get_block_number().await.map_err(|e| chain.transport_error(&e))?;
        chain.bonding_manager(controller, block).await
    })
    .await
}

/// Whether `transcoder` is active now (`isActiveTranscoder`), in a few RPC
/// calls and without a pool walk. For tools and diagnostics: the hot path
/// uses a cached view instead.
pub async fn is_active(
    rpc_url: &str,
    controller: Address,
    transcoder: Address,
    opts: &ChainOptions,
) -> Result<bool, OnChainError> {
    let chain = Chain::connect(rpc_url, opts.timeout)?;
    with_deadline(&chain.url, opts.timeout, async {
        let block =
            chain.provider.get_block_number().await.map_err(|e| chain.transport_error(&e))?;
        let bm = chain.bonding_manager(controller, block).await?;
        IBondingManager::new(to_eth(bm), &chain.provider)
            .isActiveTranscoder(to_eth(transcoder))
            .block(block.into())
            .call()
            .await
            .map_err(|e| chain.contract_error(e))
    })
    .await
}

/// Counters of a background refresher, readable at any time.
#[derive(Debug, Default)]
pub struct RefreshStats {
    successes: AtomicU64,
    failures: AtomicU64,
    consecutive_failures: AtomicU64,
    last_error: Mutex<Option<OnChainError>>,
}

impl RefreshStats {
    /// Refreshes that replaced the view (the initial fetch not included).
    pub fn successes(&self) -> u64 {
        self.successes.load(Ordering::Relaxed)
    }

    /// Refreshes that failed, in total.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Failures since the last success (0 when the view is fresh).
    pub fn consecutive_failures(&self) -> u64 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    /// The most recent failure, cleared by the next success.
    pub fn last_error(&self) -> Option<OnChainError> {
        self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn record_success(&self) {
        self.successes.fetch_add(1, Ordering::Relaxed);
        self.consecutive_failures.store(0, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn record_failure(&self, e: OnChainError) -> u64 {
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// The background refresher of an [`OnChainAuthority`].
///
/// Dropping the handle detaches the task (like a [`JoinHandle`]); the task
/// ends by itself once every `Arc` of its [`CachedAuthority`] is dropped,
/// or at once with [`RefreshHandle::abort`].
#[derive(Debug)]
pub struct RefreshHandle {
    task: JoinHandle<()>,
    stats: Arc<RefreshStats>,
}

impl RefreshHandle {
    /// The refresher's counters.
    pub fn stats(&self) -> &Arc<RefreshStats> {
        &self.stats
    }

    /// Stops the refresher; the cached view stays as it is.
    pub fn abort(&self) {
        self.task.abort();
    }

    /// Whether the task has ended (aborted, or its authority was dropped).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// The underlying task handle.
    pub fn into_join_handle(self) -> JoinHandle<()> {
        self.task
    }
}

/// An authority backed by Livepeer's contracts: a [`CachedAuthority`]
/// refreshed in the background every [`OnChainAuthority::refresh_interval`].
///
/// A failed refresh keeps the last good view (and is logged and counted in
/// [`RefreshStats`]); answers never wait on the network.
#[derive(Clone, PartialEq, Eq)]
pub struct OnChainAuthority {
    /// The Ethereum JSON-RPC endpoint (http or https).
    pub rpc_url: String,
    /// Livepeer's Controller.
    pub controller: Address,
    /// How each fetch talks to the chain.
    pub options: ChainOptions,
    /// Time between the end of one refresh and the start of the next (at least 100 ms).
    pub refresh_interval: Duration,
}

impl fmt::Debug for OnChainAuthority {
    // The URL may embed an API key; show only its scheme, host and port.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = reqwest::Url::parse(&self.rpc_url)
            .map(|u| redact(&u))
            .unwrap_or_else(|_| "<invalid>".to_owned());
        f.debug_struct("OnChainAuthority")
            .field("rpc_url", &shown)
            .field("controller", &self.controller)
            .field("options", &self.options)
            .field("refresh_interval", &self.refresh_interval)
            .finish()
    }
}

impl OnChainAuthority {
    /// An authority reading `controller` through `rpc_url`, with default
    /// options and refresh interval.
    pub fn new(rpc_url: impl Into<String>, controller: Address) -> Self {
        OnChainAuthority {
            rpc_url: rpc_url.into(),
            controller,
            options: ChainOptions::default(),
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
        }
    }

    /// Replaces the chain options.
    pub fn with_options(mut self, options: ChainOptions) -> Self {
        self.options = options;
        self
    }

    /// Replaces the refresh interval.
    pub fn with_refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// Fetches the first view (failing if it cannot), then starts the
    /// background refresher on the current tokio runtime.
    pub async fn spawn(self) -> Result<(Arc<CachedAuthority>, RefreshHandle), OnChainError> {
        let first = fetch_view(&self.rpc_url, self.controller, &self.options).await?;
        tracing::info!(source = %first.source, principals = first.principals.len(), "on-chain authority view loaded");
        let cache = Arc::new(CachedAuthority::new(first));
        let stats = Arc::new(RefreshStats::default());
        let task = tokio::spawn(refresh_loop(self, Arc::downgrade(&cache), stats.clone()));
        Ok((cache, RefreshHandle { task, stats }))
    }
}

async fn refresh_loop(
    cfg: OnChainAuthority,
    cache: Weak<CachedAuthority>,
    stats: Arc<RefreshStats>,
) {
    use super::Authority as _;
    loop {
        tokio::time::sleep(cfg.refresh_interval.max(MIN_REFRESH_INTERVAL)).await;
        if cache.strong_count() == 0 {
            break;
        }
        match fetch_view(&cfg.rpc_url, cfg.controller, &cfg.options).await {
            Ok(view) => {
                let Some(cache) = cache.upgrade() else { break };
                let changed = cache.current().principals != view.principals;
                if changed {
                    tracing::info!(source = %view.source, principals = view.principals.len(), "on-chain authority view changed");
                } else {
                    tracing::debug!(source = %view.source, "on-chain authority view refreshed, unchanged");
                }
                cache.replace(view);
                stats.record_success();
            }
            Err(e) => {
                tracing::warn!(error = %e, "on-chain authority refresh failed; keeping the last good view");
                let consecutive = stats.record_failure(e);
                tracing::debug!(consecutive, "on-chain authority refresh failures in a row");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn arbitrum_controller_constant_matches_the_reference() {
        assert_eq!(ARBITRUM_ONE_CONTROLLER.to_hex(), "0xd8e8328501e9645d16cf49539efc04f734606ee4");
    }

    #[test]
    fn bonding_manager_key_is_keccak_of_the_name() {
        // go-livepeer: crypto.Keccak256Hash([]byte("BondingManager")).
        assert_eq!(
            hex::encode(keccak256(BONDING_MANAGER_NAME.as_bytes())),
            "2517d59a36a86548e38734e8ab416f42afff4bca78706a66ad65750dae7f9e37"
        );
    }

    #[tokio::test]
    async fn rejects_non_http_urls_before_any_io() {
        let err = fetch_view("ws://127.0.0.1:1", Address::ZERO, &ChainOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, OnChainError::InvalidUrl { .. }), "{err}");
        let err =
            fetch_view("not a url", Address::ZERO, &ChainOptions::default()).await.unwrap_err();
        assert!(matches!(err, OnChainError::InvalidUrl { .. }), "{err}");
    }

    #[test]
    fn urls_in_errors_and_logs_hide_paths_and_keys() {
        let shown = |u: &str| redact(&reqwest::Url::parse(u).unwrap());
        assert_eq!(shown("http://127.0.0.1:8545"), "http://127.0.0.1:8545");
        assert_eq!(shown("https://arb.example/v2/SECRETKEY"), "https://arb.example/…");
        assert_eq!(shown("https://arb.example/?key=SECRET"), "https://arb.example/…");
        assert_eq!(shown("https://user:pw@arb.example"), "https://arb.example/…");
    }

    #[test]
    fn debug_hides_the_url_path() {
        let a = OnChainAuthority::new("https://arb.example/v2/SECRETKEY", ARBITRUM_ONE_CONTROLLER);
        let shown = format!("{a:?}");
        assert!(!shown.contains("SECRETKEY"), "{shown}");
        assert!(shown.contains("https://arb.example"), "{shown}");
    }
}
