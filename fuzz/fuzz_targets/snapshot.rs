//! `authority::snapshot::parse`: an authority snapshot file.
//!
//! Asserts, for every accepted file: principals are strictly sorted by
//! address and hold only principal roles; `allows` agrees with the roles;
//! `to_json` → `parse` gives the same principals; the canonical JSON reads
//! back as the same view.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_delegation::ALL_ROLES;
use vouch_delegation::authority::{AuthorityView, snapshot};

fuzz_target!(|data: &[u8]| {
    let Ok(view) = snapshot::parse(data, "fuzz.json") else { return };
    assert_eq!(view.source, "snapshot:fuzz.json");
    for pair in view.principals.windows(2) {
        assert!(pair[0].address < pair[1].address, "principals not sorted and merged");
    }
    for p in &view.principals {
        for role in ALL_ROLES {
            assert_eq!(view.allows(p.address, role), p.roles.contains(&role.principal_role()));
        }
        assert!(p.roles.iter().all(|r| r.principal_role() == *r));
    }

    let written = snapshot::to_json(&view, Some("note"));
    let back = snapshot::parse(&written, "again.json").expect("to_json output is rejected");
    assert_eq!(back.principals, view.principals);

    let canonical = view.canonical_json();
    let reread: AuthorityView =
        serde_json::from_slice(&canonical).expect("canonical JSON is rejected");
    assert_eq!(reread, view);
    assert_eq!(reread.hash(), view.hash());
});
