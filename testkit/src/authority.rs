//! Authority views and the snapshot files `vouch node --authority-snapshot`
//! reads.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use vouch_delegation::Role;
use vouch_delegation::authority::PrincipalEntry;
use vouch_schema::Address;

/// `address` holding `role`, without stake.
pub fn entry(address: Address, role: Role) -> PrincipalEntry {
    PrincipalEntry { address, roles: BTreeSet::from([role]), stake: None }
}

/// Writes `dir/authority.json`, a snapshot listing `principals` (hex
/// addresses) as gateways; returns its path.
pub fn gateway_snapshot(dir: &Path, principals: &[&str]) -> PathBuf {
    let entries: Vec<Value> =
        principals.iter().map(|p| json!({"address": p, "roles": ["gateway"]})).collect();
    let path = dir.join("authority.json");
    std::fs::write(&path, json!({ "principals": entries }).to_string()).unwrap();
    path
}
