//! A gateway that signs envelopes of one chain directly with the library,
//! for tests that write logs themselves (export, sinks) instead of running
//! a node. Included by path.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use k256::ecdsa::SigningKey;
use vouch_delegation::{DelegationTerms, Eip712Network, Role, SignedDelegation};
use vouch_schema::crypto::address_of;
use vouch_schema::{Address, Envelope, Event, MessageId, MessageRef, TelemetryBatch};

/// The signing key with number `n` (big-endian in the last 4 bytes).
pub fn key(n: u32) -> SigningKey {
    let mut k = [0u8; 32];
    k[28..].copy_from_slice(&n.to_be_bytes());
    SigningKey::from_bytes(&k.into()).unwrap()
}

/// Principal `1000 + n`'s gateway delegate `5000 + n`, signing one chain.
pub struct ChainSigner {
    pub principal: Address,
    pub delegate: SigningKey,
    pub cert: Vec<u8>,
    prev: Option<MessageRef>,
    ts: u64,
    partition: u32,
    chain: String,
}

impl ChainSigner {
    pub fn new(n: u32, partition: u32, chain: &str) -> ChainSigner {
        let principal = key(1000 + n);
        let delegate = key(5000 + n);
        let terms = DelegationTerms {
            delegate: address_of(delegate.verifying_key()),
            role: Role::Gateway,
            region: "FRA".to_owned(),
            not_before: 1_700_000_000,
            not_after: 1_900_000_000,
            nonce: 1,
        };
        let cert = SignedDelegation::issue(&principal, Eip712Network::arbitrum_one(), terms)
            .unwrap()
            .encode();
        ChainSigner {
            principal: address_of(principal.verifying_key()),
            delegate,
            cert,
            prev: None,
            ts: 1_764_158_400_000,
            partition,
            chain: chain.to_owned(),
        }
    }

    pub fn delegate_address(&self) -> Address {
        address_of(self.delegate.verifying_key())
    }

    /// The chain's next envelope, a second after the last; `events` gets its timestamp.
    pub fn next(&mut self, events: impl FnOnce(u64) -> Vec<Event>) -> Envelope {
        self.ts += 1000;
        let batch = TelemetryBatch::new(self.cert.clone(), events(self.ts));
        let id = MessageId {
            stream_id: format!("{}/livepeer/telemetry", self.principal),
            partition: self.partition,
            timestamp: self.ts,
            seq: 0,
            publisher: Address::ZERO,
            msg_chain_id: self.chain.clone(),
        };
        let env = Envelope::sign(id, self.prev, batch.encode(), &self.delegate).unwrap();
        self.prev = Some(env.id.as_ref());
        env
    }
}
