//! The EIP-712 types and domain that Vouch certificates are signed under.
//!
//! The domain is `{name: "Vouch Telemetry", version: "1", chainId,
//! verifyingContract}`, where `chainId` and `verifyingContract` come from the
//! network configuration ([`Eip712Network`]): Arbitrum One and Livepeer's
//! BondingManager proxy by default. Signing hashes are computed by alloy's
//! `SolStruct`, so they equal what `eth_signTypedData_v4` wallets sign.

use std::fmt;

use alloy::primitives::{Address as AlloyAddress, U256};
use alloy::sol_types::{Eip712Domain, SolStruct};
use serde::{Deserialize, Serialize};
use vouch_schema::Address;

/// The EIP-712 domain `name`.
pub const DOMAIN_NAME: &str = "Vouch Telemetry";
/// The EIP-712 domain `version`.
pub const DOMAIN_VERSION: &str = "1";

alloy::sol! {
    /// The EIP-712 `Delegation` struct: a principal authorizes a delegate key
    /// to publish as `role` from `region` between `notBefore` and `notAfter`
    /// (Unix seconds).
    #[derive(Debug, PartialEq, Eq)]
    struct Delegation {
        /// The principal's on-chain address (the signer).
        address principal;
        /// The hot key being authorized.
        address delegate;
        /// The [`Role`](crate::Role) number.
        uint8 role;
        /// The principal's declared region for the delegate's box.
        string region;
        /// First second of validity (Unix seconds, inclusive).
        uint64 notBefore;
        /// End of validity (Unix seconds, exclusive).
        uint64 notAfter;
        /// Distinguishes certificates with otherwise equal fields.
        uint64 nonce;
    }

    /// The EIP-712 `Revocation` struct: the principal withdraws every
    /// certificate of `delegate` from `revokedAt` (Unix seconds) on.
    #[derive(Debug, PartialEq, Eq)]
    struct Revocation {
        /// The principal's on-chain address (the signer).
        address principal;
        /// The delegate whose certificates are withdrawn.
        address delegate;
        /// When the revocation takes effect (Unix seconds).
        uint64 revokedAt;
    }
}

/// The `encodeType` string of [`Delegation`], as EIP-712 hashes it.
pub const DELEGATION_TYPE: &str = "Delegation(address principal,address delegate,uint8 role,string region,uint64 notBefore,uint64 notAfter,uint64 nonce)";
/// The `encodeType` string of [`Revocation`], as EIP-712 hashes it.
pub const REVOCATION_TYPE: &str = "Revocation(address principal,address delegate,uint64 revokedAt)";

/// The chain and contract a signature is bound to: the variable half of the
/// EIP-712 domain. A certificate signed for one network never verifies on another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Eip712Network {
    /// The EIP-155 chain id (`chainId` in the domain).
    pub chain_id: u64,
    /// The `verifyingContract`: Livepeer's BondingManager proxy on that chain.
    pub verifying_contract: Address,
}

/// Livepeer's BondingManager proxy on Arbitrum One.
const ARBITRUM_ONE_BONDING_MANAGER: [u8; 20] = [
    0x35, 0xbc, 0xf3, 0xc3, 0x05, 0x94, 0x19, 0x1d, 0x53, 0x23, 0x1e, 0x4f, 0xf3, 0x33, 0xe8, 0xa7,
    0x70, 0x45, 0x3e, 0x40,
];

impl Eip712Network {
    /// Arbitrum One (chain id 42161) and Livepeer's BondingManager proxy
    /// `0x35Bcf3c30594191d53231E4FF333E8A770453e40`.
    pub const fn arbitrum_one() -> Self {
        Eip712Network { chain_id: 42161, verifying_contract: Address(ARBITRUM_ONE_BONDING_MANAGER) }
    }

    /// The full EIP-712 domain for this network.
    pub fn domain(&self) -> Eip712Domain {
        Eip712Domain::new(
            Some(DOMAIN_NAME.into()),
            Some(DOMAIN_VERSION.into()),
            Some(U256::from(self.chain_id)),
            Some(to_alloy(self.verifying_contract)),
            None,
        )
    }

    /// The EIP-712 domain separator (`hashStruct(domain)`).
    pub fn domain_separator(&self) -> [u8; 32] {
        self.domain().hash_struct().0
    }
}

impl Default for Eip712Network {
    /// [`Eip712Network::arbitrum_one`].
    fn default() -> Self {
        Self::arbitrum_one()
    }
}

impl fmt::Display for Eip712Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "chain {} contract {}", self.chain_id, self.verifying_contract)
    }
}

/// The EIP-712 signing hash of `value` under `network`'s domain:
/// `keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(value))`.
pub(crate) fn signing_hash<T: SolStruct>(value: &T, network: &Eip712Network) -> [u8; 32] {
    value.eip712_signing_hash(&network.domain()).0
}

/// Our address type as alloy's.
pub(crate) fn to_alloy(a: Address) -> AlloyAddress {
    AlloyAddress::from(a.0)
}

/// The EIP-55 checksummed form of `a`, what wallets display.
pub(crate) fn checksummed(a: Address) -> String {
    to_alloy(a).to_checksum(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_types_match_the_design() {
        assert_eq!(Delegation::eip712_encode_type(), DELEGATION_TYPE);
        assert_eq!(Revocation::eip712_encode_type(), REVOCATION_TYPE);
    }

    #[test]
    fn arbitrum_one_is_the_default_network() {
        let n = Eip712Network::default();
        assert_eq!(n.chain_id, 42161);
        assert_eq!(checksummed(n.verifying_contract), "0x35Bcf3c30594191d53231E4FF333E8A770453e40");
        assert_eq!(
            n.to_string(),
            "chain 42161 contract 0x35bcf3c30594191d53231e4ff333e8a770453e40"
        );
    }

    #[test]
    fn domain_separator_depends_on_chain_and_contract() {
        let a = Eip712Network::arbitrum_one();
        let b = Eip712Network { chain_id: 1337, ..a };
        let c = Eip712Network { verifying_contract: Address([1; 20]), ..a };
        assert_ne!(a.domain_separator(), b.domain_separator());
        assert_ne!(a.domain_separator(), c.domain_separator());
    }
}
