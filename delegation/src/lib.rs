//! Vouch identity and delegation.
//!
//! A principal (an on-chain orchestrator or gateway account) signs, once and
//! offline, an EIP-712 [`Delegation`] certificate that authorizes a hot
//! delegate key on a box to publish telemetry in one [`Role`]. A
//! [`Revocation`] withdraws it. [`authority`] answers whether a principal is
//! entitled to a role at all, from a cached view of the chain or a snapshot.

pub mod authority;
mod role;

pub use role::{ALL_ROLES, Role, UnknownRole};
