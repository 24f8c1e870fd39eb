//! The on-chain authority against a real local node: ganache 7 running the
//! Livepeer stand-ins of `interop/contracts/LivepeerMock.sol`, read over
//! real JSON-RPC. Needs Node.js and `npm ci --prefix interop`.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::json;
use vouch_delegation::Role;
use vouch_delegation::authority::Authority;
use vouch_delegation::authority::onchain::{
    self, ChainOptions, OnChainAuthority, OnChainError, PoolEntry,
};
use vouch_schema::Address;
use vouch_testkit::ganache::{self, Deployed, Ganache};

const A: &str = "0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const C: &str = "0xcccccccccccccccccccccccccccccccccccccccc";
const D: &str = "0xdddddddddddddddddddddddddddddddddddddddd";
const GATEWAY: &str = "0x9999999999999999999999999999999999999999";
/// 1200 LPT in wei: larger than u64, so stakes must stay decimal strings.
const BIG: &str = "1200000000000000000000";

fn addr(s: &str) -> Address {
    s.parse().unwrap()
}

/// A (active, biggest stake), B (registered but inactive), C (active).
fn three_transcoders(node: &Ganache) -> Deployed {
    node.deploy(&json!([
        {"address": C, "stake": "100", "active": true},
        {"address": A, "stake": BIG, "active": true},
        {"address": B, "stake": "500", "active": false},
    ]))
}

fn opts() -> ChainOptions {
    ChainOptions { timeout: Duration::from_secs(20), ..ChainOptions::default() }
}

#[tokio::test]
async fn active_transcoders_are_orchestrators_and_inactive_ones_are_refused() {
    let node = Ganache::start();
    let d = three_transcoders(&node);
    let options = ChainOptions { gateways: vec![addr(GATEWAY)], ..opts() };
    let view = onchain::fetch_view(node.url(), addr(&d.controller), &options).await.unwrap();

    assert!(view.source.starts_with(&format!("chain:{}@", d.chain_id)), "{}", view.source);
    assert!(view.allows(addr(A), Role::Orchestrator));
    assert!(view.allows(addr(A), Role::Runner), "runners act for an active orchestrator");
    assert!(view.allows(addr(C), Role::Orchestrator));
    assert!(!view.allows(addr(B), Role::Orchestrator), "registered but inactive");
    assert!(!view.allows(addr(B), Role::Runner));
    assert!(!view.allows(addr(D), Role::Orchestrator), "not in the pool");
    assert!(!view.allows(addr(A), Role::Gateway), "an orchestrator is not a gateway");
    assert!(view.allows(addr(GATEWAY), Role::Gateway), "allowlisted gateway");
    assert!(view.allows(addr(GATEWAY), Role::Loadtest));
    assert!(!view.allows(addr(GATEWAY), Role::Orchestrator));

    let a = view.principals.iter().find(|p| p.address == addr(A)).unwrap();
    assert_eq!(a.stake.as_deref(), Some(BIG));
    assert_eq!(view.principals.len(), 3, "A, C and the gateway: {view:?}");

    assert!(onchain::is_active(node.url(), addr(&d.controller), addr(A), &opts()).await.unwrap());
    assert!(!onchain::is_active(node.url(), addr(&d.controller), addr(B), &opts()).await.unwrap());
    assert_eq!(
        onchain::resolve_bonding_manager(node.url(), addr(&d.controller), &opts()).await.unwrap(),
        addr(&d.bonding_manager)
    );

    // Same chain state, same block: the same view, byte for byte.
    let again = onchain::fetch_view(node.url(), addr(&d.controller), &options).await.unwrap();
    assert_eq!(again.hash(), view.hash());
}

#[tokio::test]
async fn pool_walk_returns_every_transcoder_in_stake_order() {
    let node = Ganache::start();
    let d = three_transcoders(&node);
    let pool = onchain::pool(node.url(), addr(&d.controller), &opts()).await.unwrap();
    let expected = [(A, true, BIG), (B, false, "500"), (C, true, "100")]
        .map(|(a, active, stake)| PoolEntry { address: addr(a), active, stake: stake.to_owned() });
    assert_eq!(pool, expected);

    // An empty pool is a valid, empty view.
    let empty = node.deploy(&json!([]));
    let view = onchain::fetch_view(node.url(), addr(&empty.controller), &opts()).await.unwrap();
    assert!(view.principals.is_empty());
}

#[tokio::test]
async fn unreachable_node_is_a_clear_error() {
    let url = ganache::closed_port_url();
    let options = ChainOptions { timeout: Duration::from_secs(5), ..ChainOptions::default() };
    let err = onchain::fetch_view(&url, addr(A), &options).await.unwrap_err();
    assert!(matches!(&err, OnChainError::Unreachable { url: u, .. } if *u == url), "{err:?}");
    let message = err.to_string();
    assert!(message.starts_with(&format!("cannot reach the Ethereum JSON-RPC node at {url}: ")));
    assert!(message.contains("Connection refused"), "{message}");

    // An API key in the URL's path never reaches the message.
    let keyed = format!("{url}/v2/SECRETKEY");
    let err = onchain::fetch_view(&keyed, addr(A), &options).await.unwrap_err();
    assert!(matches!(&err, OnChainError::Unreachable { url: u, .. } if *u == format!("{url}/…")));
    assert!(!err.to_string().contains("SECRETKEY"), "{err}");

    // The refresher refuses to start without a first view.
    let spawned = OnChainAuthority::new(&url, addr(A)).with_options(options).spawn().await;
    assert!(matches!(spawned, Err(OnChainError::Unreachable { .. })));
}

#[tokio::test]
async fn a_node_that_never_answers_times_out() {
    // Accepts connections, never replies.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let options = ChainOptions { timeout: Duration::from_millis(300), ..ChainOptions::default() };
    let err = onchain::fetch_view(&url, addr(A), &options).await.unwrap_err();
    assert_eq!(
        err,
        OnChainError::Timeout { url: url.clone(), timeout: Duration::from_millis(300) }
    );
    drop(listener);
}

#[tokio::test]
async fn misconfigured_contracts_are_named_errors() {
    let node = Ganache::start();
    let controller = addr(&three_transcoders(&node).controller);

    // An account without code (ganache account 0).
    let eoa = addr("0x90F8bf6A479f320ead074411a4B0e7944Ea8c9C1");
    let err = onchain::fetch_view(node.url(), eoa, &opts()).await.unwrap_err();
    assert_eq!(err, OnChainError::NotAContract { what: "Controller", address: eoa });

    let bare = addr(&node.deploy_unregistered().controller);
    let err = onchain::fetch_view(node.url(), bare, &opts()).await.unwrap_err();
    assert_eq!(err, OnChainError::BondingManagerNotRegistered { controller: bare });

    let wrong = ChainOptions { expected_chain_id: Some(onchain::ARBITRUM_ONE_CHAIN_ID), ..opts() };
    let err = onchain::fetch_view(node.url(), controller, &wrong).await.unwrap_err();
    assert_eq!(err, OnChainError::WrongChain { expected: 42161, actual: 1337 });

    let small = ChainOptions { max_pool_walk: 2, ..opts() };
    let err = onchain::fetch_view(node.url(), controller, &small).await.unwrap_err();
    assert_eq!(err, OnChainError::PoolWalkTooLong { limit: 2, reported: "3".into() });
}

#[tokio::test]
async fn a_broken_pool_list_is_refused_not_walked_forever() {
    let node = Ganache::start();
    let d = three_transcoders(&node);
    // Pool order A → B → C. C → A makes a cycle.
    node.corrupt_next(&d, C, A);
    let err = onchain::fetch_view(node.url(), addr(&d.controller), &opts()).await.unwrap_err();
    assert_eq!(err, OnChainError::PoolWalkLoop { address: addr(A) });

    // C → D (outside the pool, whose successor is zero): longer than reported.
    node.corrupt_next(&d, C, D);
    let err = onchain::fetch_view(node.url(), addr(&d.controller), &opts()).await.unwrap_err();
    assert_eq!(err, OnChainError::PoolWalkTooLong { limit: 3, reported: "3".into() });

    // B → 0: the walk ends early.
    node.corrupt_next(&d, B, "0x0000000000000000000000000000000000000000");
    let err = onchain::fetch_view(node.url(), addr(&d.controller), &opts()).await.unwrap_err();
    assert_eq!(err, OnChainError::PoolSizeMismatch { walked: 2, reported: 3 });
}

/// Polls `cond` until it holds or a generous deadline passes.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresher_picks_up_changes_and_keeps_the_last_good_view() {
    let node = Ganache::start();
    let d = three_transcoders(&node);
    let (authority, handle) = OnChainAuthority::new(node.url(), addr(&d.controller))
        .with_options(opts())
        .with_refresh_interval(Duration::from_millis(200))
        .spawn()
        .await
        .unwrap();
    assert!(authority.allows(addr(A), Role::Orchestrator));
    assert!(!authority.allows(addr(B), Role::Orchestrator));

    node.set_active(&d, B, true);
    node.add(&d, &json!([{"address": D, "stake": "7", "active": true}]));
    eventually("B and D are active", || {
        authority.allows(addr(B), Role::Orchestrator)
            && authority.allows(addr(D), Role::Orchestrator)
    })
    .await;
    let stats = handle.stats().clone();
    assert!(stats.successes() >= 1);

    // The node goes away: refreshes fail, the last good view stays.
    let last_good = authority.current();
    node.stop();
    eventually("a refresh failed", || stats.failures() >= 2).await;
    assert!(
        matches!(stats.last_error(), Some(OnChainError::Unreachable { .. })),
        "{:?}",
        stats.last_error()
    );
    assert!(stats.consecutive_failures() >= 2);
    assert_eq!(authority.current().hash(), last_good.hash());
    assert!(authority.allows(addr(B), Role::Orchestrator));

    // The refresher ends once nobody holds the authority.
    drop(authority);
    eventually("the refresher stopped", || handle.is_finished()).await;
}
