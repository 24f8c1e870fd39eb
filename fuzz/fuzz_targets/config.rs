//! Verifier configuration text: the `[validation]` table (the guards'
//! bounds, `verifier/src/validate/config.rs`, compiled here from the same
//! source) and the SLA policy and model registry files (`vouch-sla`).
//!
//! Asserts, for every accepted input: a validation config survives a TOML
//! round trip; a policy or registry that parses hashes its own bytes and
//! parses again from the same text to the same hash.
#![no_main]

#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../../verifier/src/validate/config.rs"]
mod validation;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = toml::from_str::<validation::ValidationConfig>(text) {
        let written = toml::to_string(&config).expect("a parsed config serializes");
        let back: validation::ValidationConfig =
            toml::from_str(&written).expect("serialized config parses");
        assert_eq!(back, config);
    }
    if let Ok(policy) = vouch_sla::Policy::from_toml(text) {
        let again = vouch_sla::Policy::from_toml(text).expect("same text parses again");
        assert_eq!(again.hash, policy.hash);
    }
    if let Ok(registry) = vouch_sla::Registry::from_toml(text) {
        let again = vouch_sla::Registry::from_toml(text).expect("same text parses again");
        assert_eq!(again.hash, registry.hash);
    }
});
