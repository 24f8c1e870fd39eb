//! Principals with a delegate and the delegate's certificate, in memory
//! (made with [`SignedDelegation::issue`]; [`crate::cli::Identity`] is the
//! kind the `vouch` command line makes), and a chain of envelopes one of
//! them signs.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;

use k256::ecdsa::SigningKey;
use vouch_delegation::authority::PrincipalEntry;
use vouch_delegation::{DelegationTerms, Eip712Network, Role, SignedDelegation, keys};
use vouch_schema::crypto::address_of;
use vouch_schema::{Address, Envelope, Event, MessageId, MessageRef, TelemetryBatch};
use vouch_sdk::Signer;

/// The EIP-712 domain of a local chain (ganache's id 1337, a made-up contract).
pub fn local_chain() -> Eip712Network {
    Eip712Network { chain_id: 1337, verifying_contract: Address([0xab; 20]) }
}

/// A principal, its delegate key and the certificate that binds them.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The principal's key (it signs the certificate and revocations).
    pub principal: SigningKey,
    /// The delegate's hot key (it signs envelopes).
    pub delegate: SigningKey,
    /// The principal's certificate for the delegate.
    pub certificate: SignedDelegation,
}

impl Actor {
    /// `principal` delegating to `delegate` as `role` in `region`, valid
    /// over `valid` (Unix seconds, end exclusive as `not_after`), nonce 1,
    /// signed for `network`.
    pub fn issue(
        principal: SigningKey,
        delegate: SigningKey,
        role: Role,
        region: &str,
        valid: Range<u64>,
        network: Eip712Network,
    ) -> Actor {
        let terms = DelegationTerms {
            delegate: address_of(delegate.verifying_key()),
            role,
            region: region.to_owned(),
            not_before: valid.start,
            not_after: valid.end,
            nonce: 1,
        };
        let certificate = SignedDelegation::issue(&principal, network, terms).unwrap();
        Actor { principal, delegate, certificate }
    }

    /// Principal key number `1000 + n` with delegate key number `5000 + n`
    /// ([`crate::keys::numbered`]), certified on Arbitrum One.
    pub fn numbered(n: u32, role: Role, region: &str, valid: Range<u64>) -> Actor {
        Actor::issue(
            crate::keys::numbered(1000 + n),
            crate::keys::numbered(5000 + n),
            role,
            region,
            valid,
            Eip712Network::arbitrum_one(),
        )
    }

    /// Fresh random keys, certified for `network`.
    pub fn generated(role: Role, region: &str, valid: Range<u64>, network: Eip712Network) -> Actor {
        Actor::issue(keys::generate(), keys::generate(), role, region, valid, network)
    }

    /// The principal's address.
    pub fn principal_address(&self) -> Address {
        address_of(self.principal.verifying_key())
    }

    /// The delegate's address.
    pub fn delegate_address(&self) -> Address {
        address_of(self.delegate.verifying_key())
    }

    /// The principal's telemetry stream, `<principal>/livepeer/telemetry`.
    pub fn stream_id(&self) -> String {
        format!("{}/livepeer/telemetry", self.principal_address())
    }

    /// The certificate's bytes, as a batch carries them.
    pub fn cert(&self) -> Vec<u8> {
        self.certificate.encode()
    }

    /// The principal's entry in an authority view: the role that may
    /// delegate the certificate's role.
    pub fn entry(&self) -> PrincipalEntry {
        PrincipalEntry {
            address: self.principal_address(),
            roles: BTreeSet::from([self.certificate.role.principal_role()]),
            stake: None,
        }
    }

    /// The SDK's signer for the delegate.
    pub fn signer(&self) -> Signer {
        Signer::new(self.delegate.clone(), self.certificate.clone())
    }

    /// Writes the delegate's key and certificate into `dir` as the files
    /// `key_file` and `cert_file`, as a publisher's configuration names them.
    pub fn write_files(&self, dir: &Path, key_file: &str, cert_file: &str) {
        keys::write_hex_key(&dir.join(key_file), &self.delegate, keys::WriteMode::Overwrite)
            .unwrap();
        std::fs::write(dir.join(cert_file), self.cert()).unwrap();
    }
}

/// One chain of envelopes signed by a gateway [`Actor`] (principal key
/// `1000 + n`, delegate `5000 + n`, region FRA), a second apart, for tests
/// that write logs themselves (export, sinks) instead of running a node.
#[derive(Debug)]
pub struct ChainSigner {
    /// Who signs.
    pub actor: Actor,
    prev: Option<MessageRef>,
    ts: u64,
    partition: u32,
    chain: String,
}

impl ChainSigner {
    /// Gateway `n`'s chain `chain` on `partition`.
    pub fn new(n: u32, partition: u32, chain: &str) -> ChainSigner {
        let actor = Actor::numbered(n, Role::Gateway, "FRA", 1_700_000_000..1_900_000_000);
        ChainSigner::with_actor(actor, partition, chain, 1_764_158_400_000)
    }

    /// `actor`'s chain `chain` on `partition`, its first envelope after `ts`.
    pub fn with_actor(actor: Actor, partition: u32, chain: &str, ts: u64) -> ChainSigner {
        ChainSigner { actor, prev: None, ts, partition, chain: chain.to_owned() }
    }

    /// The last envelope's timestamp (ms).
    pub fn last_ts(&self) -> u64 {
        self.ts
    }

    /// The partition the chain publishes on.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The principal's address.
    pub fn principal(&self) -> Address {
        self.actor.principal_address()
    }

    /// The delegate's address.
    pub fn delegate_address(&self) -> Address {
        self.actor.delegate_address()
    }

    /// The chain's next envelope, a second after the last; `events` gets its timestamp.
    pub fn next(&mut self, events: impl FnOnce(u64) -> Vec<Event>) -> Envelope {
        self.next_at(self.ts + 1000, events)
    }

    /// The chain's next envelope stamped `ts` (later than the last);
    /// `events` gets its timestamp.
    pub fn next_at(&mut self, ts: u64, events: impl FnOnce(u64) -> Vec<Event>) -> Envelope {
        self.ts = ts;
        let batch = TelemetryBatch::new(self.actor.cert(), events(self.ts));
        let id = MessageId {
            stream_id: self.actor.stream_id(),
            partition: self.partition,
            timestamp: self.ts,
            seq: 0,
            publisher: Address::ZERO,
            msg_chain_id: self.chain.clone(),
        };
        let env = Envelope::sign(id, self.prev, batch.encode(), &self.actor.delegate).unwrap();
        self.prev = Some(env.id.as_ref());
        env
    }
}
