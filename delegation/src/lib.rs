//! Vouch identity and delegation.
//!
//! A principal (an on-chain orchestrator or gateway account) signs, once and
//! offline, an EIP-712 [`Delegation`] certificate that authorizes a hot
//! delegate key on a box to publish telemetry in one [`Role`]
//! ([`SignedDelegation`], checked into a [`VerifiedDelegation`]). A
//! [`Revocation`] withdraws it ([`SignedRevocation`], [`VerifiedRevocation`]).
//! Any EIP-712 wallet can sign either ([`wallet`]); [`keys`] reads and writes
//! the key files. A verifier signs a [`Checkpoint`] of each sealed minute
//! with its verifier-role delegate ([`SignedCheckpoint`]). [`authority`] answers whether a principal is entitled to a
//! role at all, from a cached view of the chain or a snapshot.

pub mod authority;
mod certificate;
mod checkpoint;
mod eip712;
pub mod keys;
mod revocation;
mod role;
pub mod stream_registry;
pub mod wallet;
mod wire;

pub use certificate::{
    CertificateError, DelegationTerms, Policy, SignedDelegation, VerifiedDelegation,
};
pub use checkpoint::{
    Checkpoint, CheckpointError, NOTE_ORIGIN, PARTITION_BYTES, SignedCheckpoint, VerifiedCheckpoint,
};
pub use eip712::{
    DELEGATION_TYPE, DOMAIN_NAME, DOMAIN_VERSION, Delegation, Eip712Network, REVOCATION_TYPE,
    Revocation,
};
pub use revocation::{SignedRevocation, VerifiedRevocation};
pub use role::{ALL_ROLES, Role, UnknownRole};
pub use wire::{DecodeError, MAX_ENCODED_BYTES, MAX_REGION_BYTES, WIRE_VERSION};
