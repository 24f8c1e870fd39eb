//! Streamr's StreamRegistry (V5): the on-chain half of "who may publish on a
//! principal's stream", lined up with Vouch's certificates.
//!
//! On Streamr a principal owns `0x<principal>/livepeer/telemetry` and grants
//! PUBLISH to each delegate key; in Vouch the same principal signs a
//! certificate for the same key. This module prepares the registry
//! transactions for the principal's (cold) machine — create the stream,
//! grant PUBLISH until the certificate's `notAfter`, revoke it together with
//! a Vouch revocation — as an `eth_sendTransaction` request any wallet can
//! sign, or as an unsigned EIP-1559 transaction ([`PreparedTx`]); signs one
//! offline with a principal key ([`sign`]); and reads the registry back
//! ([`read_permissions`], [`publishers`]) so a tool can check that both
//! sides agree.
//!
//! The calls are encoded with alloy from the StreamRegistryV5 ABI of
//! `@streamr/network-contracts@8.2.0` (the subset below; a test compares
//! it with the package's ABI).

use std::collections::BTreeMap;
use std::time::Duration;

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::network::TxSignerSync;
use alloy::primitives::{Bytes, TxKind, U256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolEvent};
use k256::ecdsa::SigningKey;
use serde_json::{Value, json};
use vouch_schema::Address;

use crate::authority::onchain::{Chain, OnChainError, from_eth, to_eth, with_deadline};
use crate::{SignedDelegation, SignedRevocation};

/// The StreamRegistryV5 subset Vouch calls, as in
/// `@streamr/network-contracts@8.2.0`'s ABI.
#[allow(missing_docs, unreachable_pub, clippy::too_many_arguments)]
pub mod abi {
    alloy::sol! {
        /// Streamr's stream and permission registry (V5).
        #[sol(rpc)]
        interface IStreamRegistryV5 {
            /// One user's permissions on one stream (expirations in Unix seconds).
            struct Permission {
                bool canEdit;
                bool canDelete;
                uint256 publishExpiration;
                uint256 subscribeExpiration;
                bool canGrant;
            }
            event PermissionUpdated(string streamId, address user, bool canEdit, bool canDelete, uint256 publishExpiration, uint256 subscribeExpiration, bool canGrant);
            function createStreamWithPermissions(string streamIdPath, string metadataJsonString, address[] users, Permission[] permissions) external;
            function setPermissionsForUser(string streamId, address user, bool canEdit, bool canDelete, uint256 publishExpiration, uint256 subscribeExpiration, bool canGrant) external;
            function revokeAllPermissionsForUser(string streamId, address user) external;
            function exists(string streamId) external view returns (bool);
            function getStreamMetadata(string streamId) external view returns (string);
            function getPermissionsForUser(string streamId, address user) external view returns (Permission);
            function getDirectPermissionsForUser(string streamId, address user) external view returns (Permission);
        }
    }
}

use abi::IStreamRegistryV5;

/// Polygon mainnet's chain id, where Streamr's registry lives.
pub const POLYGON_CHAIN_ID: u64 = 137;

/// Streamr's StreamRegistry on Polygon (`0x0D483E10612F327FC11965Fc82E90dC19b141641`).
pub const POLYGON_STREAM_REGISTRY: Address =
    Address(alloy::primitives::address!("0D483E10612F327FC11965Fc82E90dC19b141641").0.0);

/// Partitions a Vouch stream is created with: every envelope partition (0–99)
/// is a Streamr partition, and 100 is Streamr's maximum.
pub const STREAM_PARTITIONS: u32 = 100;

/// Streamr's `MAX_INT` expiration: never expires.
pub const NEVER: U256 = U256::MAX;

/// Bound on the `PermissionUpdated` logs [`publishers`] reads.
pub const MAX_PERMISSION_LOGS: usize = 100_000;

/// `0x<principal>` followed by `path`: the stream id a principal owns.
pub fn stream_id(principal: Address, path: &str) -> String {
    format!("{principal}{path}")
}

/// Why a transaction could not be prepared or signed. Messages are stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// A stream path Streamr refuses (`error_invalidPathChars`, `error_pathMustStartWithSlash`).
    #[error("stream path {0:?} must start with / and hold only A-Z a-z 0-9 - . / _")]
    BadPath(String),
    /// The transaction's signer is not the account it is prepared for.
    #[error("the key is {key}, but the transaction is from {from}")]
    WrongKey {
        /// The key's address.
        key: Address,
        /// The transaction's `from`.
        from: Address,
    },
    /// The transaction lacks the fields a signature needs.
    #[error("the transaction has no {0}: prepare it with --rpc or --nonce and the fee flags")]
    Incomplete(&'static str),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// Calldata that is none of the registry calls Vouch prepares.
    #[error("the calldata is not a StreamRegistry call vouch prepares")]
    UnknownCall,
    /// A prepared-transaction document that does not parse.
    #[error("prepared transaction: {0}")]
    Document(String),
}

fn expiration(v: U256) -> String {
    if v == NEVER { "never".to_owned() } else { v.to_string() }
}

/// The calldata decoded back into its call, for a person to compare with
/// what a wallet shows: one of the calls [`create_stream`],
/// [`grant_publish`] and [`revoke_publish`] prepare.
pub fn describe(data: &[u8]) -> Result<String, RegistryError> {
    use IStreamRegistryV5 as R;
    if let Ok(c) = R::createStreamWithPermissionsCall::abi_decode(data) {
        let grants: Vec<String> = c
            .users
            .iter()
            .zip(&c.permissions)
            .map(|(user, p)| {
                format!(
                    "{}: publish until {}, subscribe until {}",
                    from_eth(*user),
                    expiration(p.publishExpiration),
                    expiration(p.subscribeExpiration)
                )
            })
            .collect();
        return Ok(format!(
            "createStreamWithPermissions(path {:?}, metadata {}, [{}])",
            c.streamIdPath,
            c.metadataJsonString,
            grants.join("; ")
        ));
    }
    if let Ok(c) = R::setPermissionsForUserCall::abi_decode(data) {
        return Ok(format!(
            "setPermissionsForUser({:?}, {}, edit {}, delete {}, publish until {}, subscribe until {}, grant {})",
            c.streamId,
            from_eth(c.user),
            c.canEdit,
            c.canDelete,
            expiration(c.publishExpiration),
            expiration(c.subscribeExpiration),
            c.canGrant
        ));
    }
    if let Ok(c) = R::revokeAllPermissionsForUserCall::abi_decode(data) {
        return Ok(format!("revokeAllPermissionsForUser({:?}, {})", c.streamId, from_eth(c.user)));
    }
    Err(RegistryError::UnknownCall)
}

/// Streamr's own path rule (`_createStreamAndPermission`), checked before a
/// wallet is asked to sign a transaction that would revert.
pub fn check_path(path: &str) -> Result<(), RegistryError> {
    let ok = path.starts_with('/')
        && path.bytes().skip(1).all(|b| b.is_ascii_alphanumeric() || b"-./_".contains(&b));
    if ok { Ok(()) } else { Err(RegistryError::BadPath(path.to_owned())) }
}

/// Nonce and EIP-1559 fees: what turns a call into a signable transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxParams {
    /// The sender's next nonce.
    pub nonce: u64,
    /// Gas limit.
    pub gas_limit: u64,
    /// `maxFeePerGas`, wei.
    pub max_fee_per_gas: u128,
    /// `maxPriorityFeePerGas`, wei.
    pub max_priority_fee_per_gas: u128,
}

/// One registry call for the principal to sign: who sends it, where, and
/// the ABI-encoded calldata, with a human-readable rendering of the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedTx {
    /// The principal (the stream owner), who must send it.
    pub from: Address,
    /// The StreamRegistry.
    pub to: Address,
    /// The registry's chain.
    pub chain_id: u64,
    /// ABI-encoded calldata.
    pub data: Vec<u8>,
    /// Nonce and fees, when known.
    pub params: Option<TxParams>,
}

impl PreparedTx {
    /// Reads back the document [`PreparedTx::to_json`] writes; nonce and
    /// fees come from its `transaction`, when present.
    pub fn from_json(doc: &Value) -> Result<PreparedTx, RegistryError> {
        let bad = |what: &str| RegistryError::Document(format!("{what} is missing or malformed"));
        let address = |key: &str| -> Result<Address, RegistryError> {
            doc[key].as_str().and_then(|s| s.parse().ok()).ok_or_else(|| bad(key))
        };
        let data = doc["data"]
            .as_str()
            .and_then(|d| hex::decode(d.trim_start_matches("0x")).ok())
            .ok_or_else(|| bad("data"))?;
        let chain_id = doc["chain_id"].as_u64().ok_or_else(|| bad("chain_id"))?;
        let tx = &doc["transaction"];
        let params = if tx.is_null() {
            None
        } else {
            let quantity = |key: &str| -> Result<u128, RegistryError> {
                tx[key]
                    .as_str()
                    .and_then(|v| u128::from_str_radix(v.trim_start_matches("0x"), 16).ok())
                    .ok_or_else(|| bad(&format!("transaction.{key}")))
            };
            let small = |key: &str| -> Result<u64, RegistryError> {
                u64::try_from(quantity(key)?).map_err(|_| bad(&format!("transaction.{key}")))
            };
            if small("chainId")? != chain_id {
                return Err(bad("transaction.chainId"));
            }
            Some(TxParams {
                nonce: small("nonce")?,
                gas_limit: small("gas")?,
                max_fee_per_gas: quantity("maxFeePerGas")?,
                max_priority_fee_per_gas: quantity("maxPriorityFeePerGas")?,
            })
        };
        Ok(PreparedTx { from: address("from")?, to: address("to")?, chain_id, data, params })
    }

    /// The EIP-1559 transaction, once nonce and fees are known.
    pub fn eip1559(&self) -> Result<TxEip1559, RegistryError> {
        let p = self.params.ok_or(RegistryError::Incomplete("nonce or fees"))?;
        Ok(TxEip1559 {
            chain_id: self.chain_id,
            nonce: p.nonce,
            gas_limit: p.gas_limit,
            max_fee_per_gas: p.max_fee_per_gas,
            max_priority_fee_per_gas: p.max_priority_fee_per_gas,
            to: TxKind::Call(to_eth(self.to)),
            value: U256::ZERO,
            access_list: Default::default(),
            input: Bytes::from(self.data.clone()),
        })
    }

    /// The JSON document `vouch streamr create|grant|revoke` print: the call,
    /// an `eth_sendTransaction` request for a wallet, and with nonce and fees
    /// the transaction's fields and its unsigned EIP-2718 encoding
    /// (`0x02 ‖ rlp(...)`, what an offline signer signs).
    pub fn to_json(&self) -> Value {
        let data = format!("0x{}", hex::encode(&self.data));
        let call = describe(&self.data).unwrap_or_else(|e| e.to_string());
        let mut out = json!({
            "from": self.from,
            "to": self.to,
            "chain_id": self.chain_id,
            "call": call,
            "data": data,
            "eth_sendTransaction": {
                "jsonrpc": "2.0", "id": 1, "method": "eth_sendTransaction",
                "params": [{
                    "from": self.from, "to": self.to, "data": data, "value": "0x0",
                    "chainId": format!("{:#x}", self.chain_id),
                }],
            },
        });
        if let (Some(p), Ok(tx)) = (self.params, self.eip1559()) {
            // The wallet request carries them too (a wallet may still adjust fees).
            let request = &mut out["eth_sendTransaction"]["params"][0];
            request["nonce"] = json!(format!("{:#x}", p.nonce));
            request["gas"] = json!(format!("{:#x}", p.gas_limit));
            request["maxFeePerGas"] = json!(format!("{:#x}", p.max_fee_per_gas));
            request["maxPriorityFeePerGas"] = json!(format!("{:#x}", p.max_priority_fee_per_gas));
            out["transaction"] = json!({
                "type": "0x2",
                "chainId": format!("{:#x}", self.chain_id),
                "nonce": format!("{:#x}", p.nonce),
                "gas": format!("{:#x}", p.gas_limit),
                "maxFeePerGas": format!("{:#x}", p.max_fee_per_gas),
                "maxPriorityFeePerGas": format!("{:#x}", p.max_priority_fee_per_gas),
                "from": self.from, "to": self.to, "value": "0x0", "data": data,
            });
            out["unsigned"] = json!(format!("0x{}", hex::encode(tx.encoded_for_signing())));
        }
        out
    }
}

/// Creates `0x<principal><path>` with [`STREAM_PARTITIONS`] partitions and,
/// if `public_subscribe`, SUBSCRIBE for everyone (telemetry is public; the
/// owner keeps every permission, as Streamr always grants its creator).
pub fn create_stream(
    principal: Address,
    path: &str,
    registry: Address,
    chain_id: u64,
    public_subscribe: bool,
) -> Result<PreparedTx, RegistryError> {
    check_path(path)?;
    let metadata = json!({ "partitions": STREAM_PARTITIONS }).to_string();
    let (users, permissions) = if public_subscribe {
        (
            vec![alloy::primitives::Address::ZERO],
            vec![IStreamRegistryV5::Permission {
                canEdit: false,
                canDelete: false,
                publishExpiration: U256::ZERO,
                subscribeExpiration: NEVER,
                canGrant: false,
            }],
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let data = IStreamRegistryV5::createStreamWithPermissionsCall {
        streamIdPath: path.to_owned(),
        metadataJsonString: metadata,
        users,
        permissions,
    }
    .abi_encode();
    Ok(PreparedTx { from: principal, to: registry, chain_id, data, params: None })
}

/// Grants PUBLISH on the certificate's stream to its delegate until the
/// certificate's `notAfter`, and nothing else: the on-chain grant ends when
/// Vouch stops accepting the certificate.
pub fn grant_publish(
    cert: &SignedDelegation,
    path: &str,
    registry: Address,
    chain_id: u64,
) -> Result<PreparedTx, RegistryError> {
    check_path(path)?;
    let stream = stream_id(cert.principal, path);
    let data = IStreamRegistryV5::setPermissionsForUserCall {
        streamId: stream,
        user: to_eth(cert.delegate),
        canEdit: false,
        canDelete: false,
        publishExpiration: U256::from(cert.not_after),
        subscribeExpiration: U256::ZERO,
        canGrant: false,
    }
    .abi_encode();
    Ok(PreparedTx { from: cert.principal, to: registry, chain_id, data, params: None })
}

/// Withdraws every permission the revoked delegate holds on the principal's
/// stream: the on-chain half of a Vouch revocation.
pub fn revoke_publish(
    revocation: &SignedRevocation,
    path: &str,
    registry: Address,
    chain_id: u64,
) -> Result<PreparedTx, RegistryError> {
    check_path(path)?;
    let stream = stream_id(revocation.principal, path);
    let data = IStreamRegistryV5::revokeAllPermissionsForUserCall {
        streamId: stream,
        user: to_eth(revocation.delegate),
    }
    .abi_encode();
    Ok(PreparedTx { from: revocation.principal, to: registry, chain_id, data, params: None })
}

/// Signs a prepared transaction with the principal's key, offline: the raw
/// EIP-2718 bytes for `eth_sendRawTransaction`.
pub fn sign(tx: &PreparedTx, key: &SigningKey) -> Result<Vec<u8>, RegistryError> {
    describe(&tx.data)?;
    let signer = PrivateKeySigner::from_signing_key(key.clone());
    let address = from_eth(signer.address());
    if address != tx.from {
        return Err(RegistryError::WrongKey { key: address, from: tx.from });
    }
    let mut unsigned = tx.eip1559()?;
    let signature = signer
        .sign_transaction_sync(&mut unsigned)
        .map_err(|e| RegistryError::Sign(e.to_string()))?;
    Ok(TxEnvelope::from(unsigned.into_signed(signature)).encoded_2718())
}

/// Asks a node for the nonce, gas and fees of `tx` (on a machine with RPC
/// access; the signing machine needs none).
pub async fn fill_params(
    rpc_url: &str,
    tx: &PreparedTx,
    timeout: Duration,
) -> Result<TxParams, OnChainError> {
    let chain = Chain::connect(rpc_url, timeout)?;
    with_deadline(&chain.url, timeout, async {
        let err = |e: alloy::transports::TransportError| chain.transport_error(&e);
        let actual = chain.chain_id().await?;
        if actual != tx.chain_id {
            return Err(OnChainError::WrongChain { expected: tx.chain_id, actual });
        }
        let from = to_eth(tx.from);
        let nonce = chain.provider.get_transaction_count(from).pending().await.map_err(err)?;
        let request = alloy::rpc::types::TransactionRequest::default()
            .from(from)
            .to(to_eth(tx.to))
            .input(Bytes::from(tx.data.clone()).into());
        let gas = chain.provider.estimate_gas(request).await.map_err(err)?;
        let gas_price = chain.provider.get_gas_price().await.map_err(err)?;
        // Room for the base fee to double before the transaction is included.
        let priority = gas_price.clamp(1, 30_000_000_000);
        Ok(TxParams {
            nonce,
            gas_limit: gas.saturating_mul(6) / 5,
            max_fee_per_gas: gas_price.saturating_mul(2).max(priority),
            max_priority_fee_per_gas: priority,
        })
    })
    .await
}

/// One user's permissions on a stream, as the registry reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permissions {
    /// Whether the stream exists at all.
    pub stream_exists: bool,
    /// `publishExpiration` of the user's own grant (Unix seconds; `u64::MAX` for never).
    pub publish_expiration: u64,
    /// `publishExpiration` of the public grant (anyone may publish until then).
    pub public_publish_expiration: u64,
}

impl Permissions {
    /// Whether the user may publish at `now` (Unix seconds), directly or publicly:
    /// Streamr's `hasPermission(PUBLISH)`, expiration included.
    pub fn can_publish(&self, now: u64) -> bool {
        self.stream_exists && self.publish_expiration.max(self.public_publish_expiration) >= now
    }
}

fn seconds(v: U256) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// Reads `user`'s direct and the public PUBLISH grant on `stream`.
pub async fn read_permissions(
    rpc_url: &str,
    registry: Address,
    stream: &str,
    user: Address,
    timeout: Duration,
) -> Result<Permissions, OnChainError> {
    let chain = Chain::connect(rpc_url, timeout)?;
    with_deadline(&chain.url, timeout, async {
        let block =
            chain.provider.get_block_number().await.map_err(|e| chain.transport_error(&e))?;
        chain.ensure_contract("StreamRegistry", registry, block).await?;
        let r = IStreamRegistryV5::new(to_eth(registry), &chain.provider);
        let exists = r
            .exists(stream.to_owned())
            .block(block.into())
            .call()
            .await
            .map_err(|e| chain.contract_error(e))?;
        if !exists {
            return Ok(Permissions {
                stream_exists: false,
                publish_expiration: 0,
                public_publish_expiration: 0,
            });
        }
        let direct = r
            .getDirectPermissionsForUser(stream.to_owned(), to_eth(user))
            .block(block.into())
            .call()
            .await
            .map_err(|e| chain.contract_error(e))?;
        let public = r
            .getDirectPermissionsForUser(stream.to_owned(), alloy::primitives::Address::ZERO)
            .block(block.into())
            .call()
            .await
            .map_err(|e| chain.contract_error(e))?;
        Ok(Permissions {
            stream_exists: true,
            publish_expiration: seconds(direct.publishExpiration),
            public_publish_expiration: seconds(public.publishExpiration),
        })
    })
    .await
}

/// Every user whose PUBLISH grant on `stream` the registry's
/// `PermissionUpdated` logs show, from `from_block` on, with its latest
/// `publishExpiration` (0 once revoked). At most [`MAX_PERMISSION_LOGS`]
/// logs are read; nodes limit `eth_getLogs` ranges, so give the block the
/// stream was created in.
pub async fn publishers(
    rpc_url: &str,
    registry: Address,
    stream: &str,
    from_block: u64,
    timeout: Duration,
) -> Result<BTreeMap<Address, u64>, OnChainError> {
    let chain = Chain::connect(rpc_url, timeout)?;
    with_deadline(&chain.url, timeout, async {
        let filter = Filter::new()
            .address(to_eth(registry))
            .event_signature(IStreamRegistryV5::PermissionUpdated::SIGNATURE_HASH)
            .from_block(from_block);
        let logs =
            chain.provider.get_logs(&filter).await.map_err(|e| chain.transport_error(&e))?;
        if logs.len() > MAX_PERMISSION_LOGS {
            return Err(OnChainError::Rpc(format!(
                "{} PermissionUpdated logs, over the {MAX_PERMISSION_LOGS} read: give a later block",
                logs.len()
            )));
        }
        let mut out = BTreeMap::new();
        for log in logs {
            let event = IStreamRegistryV5::PermissionUpdated::decode_log_data(log.data())
                .map_err(|e| OnChainError::Rpc(format!("PermissionUpdated log: {e}")))?;
            if event.streamId == stream {
                out.insert(from_eth(event.user), seconds(event.publishExpiration));
            }
        }
        Ok(out)
    })
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{DelegationTerms, Eip712Network, Role};

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32].into()).unwrap()
    }

    fn cert() -> SignedDelegation {
        let delegate = vouch_schema::crypto::address_of(key(2).verifying_key());
        let terms = DelegationTerms {
            delegate,
            role: Role::Gateway,
            region: "FRA".into(),
            not_before: 1_700_000_000,
            not_after: 1_800_000_000,
            nonce: 1,
        };
        SignedDelegation::issue(&key(1), Eip712Network::arbitrum_one(), terms).unwrap()
    }

    #[test]
    fn paths_follow_streamr_rules() {
        assert!(check_path("/livepeer/telemetry").is_ok());
        assert!(check_path("/a-b_c.d/9").is_ok());
        for bad in ["livepeer", "/a b", "/ä", "/a?b", ""] {
            assert_eq!(check_path(bad), Err(RegistryError::BadPath(bad.into())));
        }
    }

    #[test]
    fn grant_encodes_the_certificate_window() {
        let c = cert();
        let tx = grant_publish(&c, "/livepeer/telemetry", POLYGON_STREAM_REGISTRY, 137).unwrap();
        let decoded = IStreamRegistryV5::setPermissionsForUserCall::abi_decode(&tx.data).unwrap();
        assert_eq!(decoded.streamId, format!("{}/livepeer/telemetry", c.principal));
        assert_eq!(from_eth(decoded.user), c.delegate);
        assert_eq!(decoded.publishExpiration, U256::from(1_800_000_000u64));
        assert!(!decoded.canGrant && !decoded.canEdit && !decoded.canDelete);
        assert_eq!(tx.from, c.principal);
        // setPermissionsForUser(string,address,bool,bool,uint256,uint256,bool)
        assert_eq!(
            hex::encode(&tx.data[..4]),
            hex::encode(
                &alloy::primitives::keccak256(
                    b"setPermissionsForUser(string,address,bool,bool,uint256,uint256,bool)"
                )[..4]
            )
        );
    }

    #[test]
    fn signing_checks_the_key_and_round_trips() {
        let c = cert();
        let mut tx =
            grant_publish(&c, "/livepeer/telemetry", POLYGON_STREAM_REGISTRY, 137).unwrap();
        assert_eq!(sign(&tx, &key(1)), Err(RegistryError::Incomplete("nonce or fees")));
        tx.params = Some(TxParams {
            nonce: 3,
            gas_limit: 100_000,
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
        });
        assert!(matches!(sign(&tx, &key(2)), Err(RegistryError::WrongKey { .. })));
        let raw = sign(&tx, &key(1)).unwrap();
        use alloy::eips::eip2718::Decodable2718;
        let envelope = TxEnvelope::decode_2718(&mut raw.as_slice()).unwrap();
        let signed = envelope.as_eip1559().unwrap();
        let recovered =
            signed.signature().recover_address_from_prehash(&signed.signature_hash()).unwrap();
        assert_eq!(from_eth(recovered), c.principal);
        let json = tx.to_json();
        assert!(json["unsigned"].as_str().unwrap().starts_with("0x02"));
        assert_eq!(json["eth_sendTransaction"]["params"][0]["chainId"], "0x89");
        assert!(json["call"].as_str().unwrap().starts_with("setPermissionsForUser("), "{json}");
        assert_eq!(PreparedTx::from_json(&json).unwrap(), tx, "the document reads back");
        let mut other = tx.clone();
        other.data = vec![1, 2, 3, 4];
        assert_eq!(sign(&other, &key(1)), Err(RegistryError::UnknownCall));
    }

    #[test]
    fn create_and_revoke_describe_themselves() {
        let c = cert();
        let create =
            create_stream(c.principal, "/livepeer/telemetry", POLYGON_STREAM_REGISTRY, 137, true)
                .unwrap();
        let text = describe(&create.data).unwrap();
        assert!(
            text.contains("\"/livepeer/telemetry\"") && text.contains("{\"partitions\":100}"),
            "{text}"
        );
        assert!(
            text.contains(
                "0x0000000000000000000000000000000000000000: publish until 0, subscribe until never"
            ),
            "{text}"
        );
        let revocation =
            crate::SignedRevocation::issue(&key(1), Eip712Network::arbitrum_one(), c.delegate, 5);
        let revoke =
            revoke_publish(&revocation, "/livepeer/telemetry", POLYGON_STREAM_REGISTRY, 137)
                .unwrap();
        assert_eq!(
            describe(&revoke.data).unwrap(),
            format!(
                "revokeAllPermissionsForUser(\"{}/livepeer/telemetry\", {})",
                c.principal, c.delegate
            )
        );
    }

    #[test]
    fn permissions_follow_streamr_expiry() {
        let p = Permissions {
            stream_exists: true,
            publish_expiration: 10,
            public_publish_expiration: 0,
        };
        assert!(p.can_publish(10) && !p.can_publish(11));
        let public =
            Permissions { publish_expiration: 0, public_publish_expiration: u64::MAX, ..p };
        assert!(public.can_publish(u64::MAX));
        assert!(!Permissions { stream_exists: false, ..public }.can_publish(0));
    }
}
