//! Authority: "may this principal publish in this role now?"
//!
//! Answers always come from an in-memory [`AuthorityView`], never from a
//! network call on the hot path. A view is built from a snapshot file
//! ([`snapshot`]) or read from Livepeer's contracts over JSON-RPC
//! ([`onchain`]) by a background refresher. Each view has a content hash so
//! the verifier can record which view it used and a replay can use the same.

pub mod onchain;
pub mod snapshot;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use vouch_schema::Address;

use crate::Role;

/// One principal's standing in a view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalEntry {
    /// The principal's on-chain address.
    pub address: Address,
    /// Principal roles it holds (`orchestrator`, `gateway`, `verifier`).
    pub roles: BTreeSet<Role>,
    /// Bonded stake in LPT wei as a decimal string, where known (used by the
    /// load-test gateway's top-N sampling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stake: Option<String>,
}

/// A fixed set of authorized principals, the unit a verifier records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorityView {
    /// Where the view came from, e.g. `snapshot:authority.json` or `chain:42161@<block>`.
    pub source: String,
    /// Principals sorted by address.
    pub principals: Vec<PrincipalEntry>,
}

impl AuthorityView {
    /// Builds a view, sorting and merging entries so equal content hashes equal.
    pub fn new(
        source: impl Into<String>,
        entries: impl IntoIterator<Item = PrincipalEntry>,
    ) -> Self {
        let mut merged: BTreeMap<Address, PrincipalEntry> = BTreeMap::new();
        for e in entries {
            match merged.get_mut(&e.address) {
                Some(existing) => {
                    existing.roles.extend(e.roles);
                    if existing.stake.is_none() {
                        existing.stake = e.stake;
                    }
                }
                None => {
                    merged.insert(e.address, e);
                }
            }
        }
        AuthorityView { source: source.into(), principals: merged.into_values().collect() }
    }

    /// Whether `principal` holds the on-chain standing that `role` needs.
    pub fn allows(&self, principal: Address, role: Role) -> bool {
        let needed = role.principal_role();
        self.principals
            .binary_search_by(|e| e.address.cmp(&principal))
            .is_ok_and(|i| self.principals[i].roles.contains(&needed))
    }

    /// Whether `address` is a principal of this view in any principal role:
    /// who may sign revocations (the role a revoked delegate held does not
    /// matter, only that its principal answers for something on chain).
    pub fn is_principal(&self, address: Address) -> bool {
        self.principals
            .binary_search_by(|e| e.address.cmp(&address))
            .is_ok_and(|i| !self.principals[i].roles.is_empty())
    }

    /// The canonical JSON of this view (sorted, compact): what gets recorded.
    pub fn canonical_json(&self) -> Vec<u8> {
        // Serializing plain data with string keys into memory cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// blake3 of the canonical JSON of the principals alone: the id a log
    /// records. The source (which names the block a chain view was read at)
    /// is left out, so refreshing an unchanged active set keeps the same id
    /// and the log records a new view only when who may publish changes.
    pub fn hash(&self) -> [u8; 32] {
        // Serializing plain data with string keys into memory cannot fail.
        let principals = serde_json::to_vec(&self.principals).unwrap_or_default();
        *blake3::hash(&principals).as_bytes()
    }
}

/// A source of authority answers backed by a cached view.
pub trait Authority: Send + Sync {
    /// The view in force now. Cheap: an `Arc` clone of cached data.
    fn current(&self) -> Arc<AuthorityView>;

    /// Whether `principal` may publish as `role` under the current view.
    fn allows(&self, principal: Address, role: Role) -> bool {
        self.current().allows(principal, role)
    }

    /// Whether `address` is a principal (any role) of the current view.
    fn is_principal(&self, address: Address) -> bool {
        self.current().is_principal(address)
    }
}

/// An authority whose view is replaced wholesale by a refresher (or fixed).
#[derive(Debug)]
pub struct CachedAuthority {
    view: RwLock<Arc<AuthorityView>>,
}

impl CachedAuthority {
    /// Starts with `view`.
    pub fn new(view: AuthorityView) -> Self {
        CachedAuthority { view: RwLock::new(Arc::new(view)) }
    }

    /// Swaps in a newer view; readers see either the old or the new one whole.
    pub fn replace(&self, view: AuthorityView) {
        let mut guard = self.view.write().unwrap_or_else(|p| p.into_inner());
        *guard = Arc::new(view);
    }
}

impl Authority for CachedAuthority {
    fn current(&self) -> Arc<AuthorityView> {
        self.view.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod view_tests {
    use super::*;

    fn entry(byte: u8, roles: &[Role]) -> PrincipalEntry {
        PrincipalEntry {
            address: Address([byte; 20]),
            roles: roles.iter().copied().collect(),
            stake: None,
        }
    }

    #[test]
    fn hash_names_the_principals_not_where_they_were_read() {
        let a = AuthorityView::new("chain:42161@100", [entry(1, &[Role::Orchestrator])]);
        let b = AuthorityView::new("chain:42161@200", [entry(1, &[Role::Orchestrator])]);
        let c = AuthorityView::new("chain:42161@200", [entry(1, &[Role::Gateway])]);
        assert_eq!(a.hash(), b.hash());
        assert_ne!(a.hash(), c.hash());
    }

    #[test]
    fn runners_ride_on_orchestrators_and_loadtest_on_gateways() {
        let v = AuthorityView::new(
            "test",
            [
                entry(2, &[Role::Gateway]),
                entry(1, &[Role::Orchestrator]),
                entry(2, &[Role::Verifier]),
            ],
        );
        assert_eq!(v.principals.len(), 2, "merged by address");
        assert!(v.allows(Address([1; 20]), Role::Runner));
        assert!(!v.allows(Address([1; 20]), Role::Gateway));
        assert!(v.allows(Address([2; 20]), Role::Loadtest));
        assert!(v.allows(Address([2; 20]), Role::Verifier));
        assert!(!v.allows(Address([3; 20]), Role::Orchestrator));
        assert!(v.is_principal(Address([1; 20])) && v.is_principal(Address([2; 20])));
        assert!(!v.is_principal(Address([3; 20])));
        let roleless = AuthorityView::new("test", [entry(4, &[])]);
        assert!(!roleless.is_principal(Address([4; 20])), "listed without a role");
    }
}
