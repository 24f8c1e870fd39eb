//! The simulated network's identities: for every orchestrator, gateway and
//! the load-test gateway a principal key, a delegate key and a real EIP-712
//! delegation certificate, plus the authority snapshot that admits them.
//!
//! Keys come from the seed, so the same seed gives the same addresses (and
//! so the same load-test schedule). They are demo keys: written to the demo
//! folder in the clear, worthless anywhere else.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k256::ecdsa::SigningKey;
use serde_json::json;
use vouch_delegation::authority::{AuthorityView, PrincipalEntry, snapshot};
use vouch_delegation::keys::{self, WriteMode};
use vouch_delegation::{DelegationTerms, Eip712Network, Role, SignedDelegation};
use vouch_schema::Address;

use super::events::Profile;
use super::rng::SplitMix64;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    /// Orchestrators (profiles by [`Profile::for_index`]).
    pub orchestrators: usize,
    /// Gateway regions, one gateway each (the load-test gateway uses the first).
    pub regions: Vec<String>,
    /// Seed of keys, stakes and everything else random.
    pub seed: u64,
    /// The EIP-712 domain certificates are signed for.
    pub network: Eip712Network,
    /// Certificates are valid from `now_secs` − 60 for `valid_for_secs`.
    pub now_secs: u64,
    /// Certificate lifetime, seconds.
    pub valid_for_secs: u64,
    /// Verifiers, each with a verifier-role delegate that signs its checkpoints.
    pub verifiers: usize,
}

/// Why a network could not be generated or written.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The spec has no orchestrator.
    #[error("simulated network: at least one orchestrator is needed")]
    NoOrchestrators,
    /// The spec has no gateway region.
    #[error("simulated network: at least one gateway region is needed")]
    NoRegions,
    /// Issuing a certificate failed.
    #[error("issuing a certificate: {0}")]
    Certificate(#[from] vouch_delegation::CertificateError),
    /// Writing a key file failed.
    #[error("writing a key: {0}")]
    Key(#[from] vouch_delegation::keys::KeyError),
    /// Writing the snapshot failed.
    #[error("writing the authority snapshot: {0}")]
    Snapshot(#[from] vouch_delegation::authority::snapshot::SnapshotError),
    /// Writing another file failed.
    #[error("writing {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// One simulated participant: its principal, its delegate and the certificate between them.
#[derive(Clone)]
pub struct Identity {
    /// A short name (`orchestrator-07`, `gateway-fra`, `loadtest`).
    pub name: String,
    /// The principal's (cold) key: signs only the certificate.
    pub principal_key: SigningKey,
    /// The delegate's (hot) key: signs envelopes.
    pub delegate_key: SigningKey,
    /// The certificate authorizing the delegate.
    pub certificate: SignedDelegation,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("name", &self.name)
            .field("principal", &self.principal())
            .field("role", &self.certificate.role)
            .field("region", &self.certificate.region)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// The principal's address.
    pub fn principal(&self) -> Address {
        self.certificate.principal
    }

    /// The region the certificate declares.
    pub fn region(&self) -> &str {
        &self.certificate.region
    }
}

/// A simulated orchestrator.
#[derive(Debug, Clone)]
pub struct SimOrchestrator {
    /// Its identity (role orchestrator).
    pub identity: Identity,
    /// How it behaves.
    pub profile: Profile,
    /// Bonded stake, LPT wei.
    pub stake: u128,
}

/// The whole simulated network.
#[derive(Debug, Clone)]
pub struct Network {
    /// Orchestrators in index order.
    pub orchestrators: Vec<SimOrchestrator>,
    /// One gateway per region.
    pub gateways: Vec<Identity>,
    /// The load-test gateway (role loadtest under a gateway principal).
    pub loadtest: Identity,
    /// The verifiers (role verifier), `verifier-1` on.
    pub verifiers: Vec<Identity>,
}

fn seeded_key(rng: &mut SplitMix64) -> SigningKey {
    loop {
        let mut bytes = [0u8; 32];
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_be_bytes());
        }
        // All but about 2^-128 of 32-byte strings are valid scalars.
        if let Ok(key) = SigningKey::from_slice(&bytes) {
            return key;
        }
    }
}

impl Network {
    /// Generates every key and certificate of `spec`.
    pub fn generate(spec: &NetworkSpec) -> Result<Network, NetworkError> {
        if spec.orchestrators == 0 {
            return Err(NetworkError::NoOrchestrators);
        }
        if spec.regions.is_empty() {
            return Err(NetworkError::NoRegions);
        }
        let mut rng = SplitMix64::new(spec.seed);
        let mut nonce = 0u64;
        let mut identity = |name: String, role: Role, region: &str| {
            let principal_key = seeded_key(&mut rng);
            let delegate_key = seeded_key(&mut rng);
            nonce += 1;
            let certificate = SignedDelegation::issue(
                &principal_key,
                spec.network,
                DelegationTerms {
                    delegate: keys::address(&delegate_key),
                    role,
                    region: region.to_owned(),
                    not_before: spec.now_secs.saturating_sub(60),
                    not_after: spec.now_secs + spec.valid_for_secs,
                    nonce,
                },
            )?;
            Ok::<_, NetworkError>(Identity { name, principal_key, delegate_key, certificate })
        };
        let mut orchestrators = Vec::with_capacity(spec.orchestrators);
        for i in 0..spec.orchestrators {
            let region = &spec.regions[i % spec.regions.len()];
            let id = identity(format!("orchestrator-{:02}", i + 1), Role::Orchestrator, region)?;
            orchestrators.push((id, Profile::for_index(i)));
        }
        let gateways = spec
            .regions
            .iter()
            .map(|r| identity(format!("gateway-{}", r.to_lowercase()), Role::Gateway, r))
            .collect::<Result<Vec<_>, _>>()?;
        let loadtest = identity("loadtest".to_owned(), Role::Loadtest, &spec.regions[0])?;
        // Drawn after everyone else, so adding verifiers changes no other key.
        let verifiers = (1..=spec.verifiers)
            .map(|i| identity(format!("verifier-{i}"), Role::Verifier, &spec.regions[0]))
            .collect::<Result<Vec<_>, _>>()?;
        // Stakes from their own stream, so adding a gateway does not change them:
        // 1,000 to 500,000 LPT, distinct.
        let mut stake_rng = SplitMix64::new(spec.seed ^ 0x5741_4b45);
        let mut seen = BTreeSet::new();
        let orchestrators = orchestrators
            .into_iter()
            .map(|(identity, profile)| {
                let mut lpt = stake_rng.between(1_000, 500_000);
                while !seen.insert(lpt) {
                    lpt += 1;
                }
                SimOrchestrator { identity, profile, stake: u128::from(lpt) * 10u128.pow(18) }
            })
            .collect();
        Ok(Network { orchestrators, gateways, loadtest, verifiers })
    }

    /// The orchestrator with principal `address`.
    pub fn orchestrator(&self, address: &Address) -> Option<&SimOrchestrator> {
        self.orchestrators.iter().find(|o| o.identity.principal() == *address)
    }

    /// A view admitting every orchestrator (with its stake) and every gateway
    /// principal (the load-test one included).
    pub fn authority_view(&self) -> AuthorityView {
        let orchestrators = self.orchestrators.iter().map(|o| PrincipalEntry {
            address: o.identity.principal(),
            roles: BTreeSet::from([Role::Orchestrator]),
            stake: Some(o.stake.to_string()),
        });
        let gateways = self.gateways.iter().chain([&self.loadtest]).map(|g| PrincipalEntry {
            address: g.principal(),
            roles: BTreeSet::from([Role::Gateway]),
            stake: None,
        });
        let verifiers = self.verifiers.iter().map(|v| PrincipalEntry {
            address: v.principal(),
            roles: BTreeSet::from([Role::Verifier]),
            stake: None,
        });
        AuthorityView::new(
            "snapshot:authority.json",
            orchestrators.chain(gateways).chain(verifiers),
        )
    }

    /// Writes `authority.json`, `profiles.json` and, under `keys/`, every
    /// principal key, delegate key (`.key`, hex) and certificate (`.cert`, CBOR).
    pub fn write(&self, dir: &Path) -> Result<(), NetworkError> {
        let keys_dir = dir.join("keys");
        std::fs::create_dir_all(&keys_dir)
            .map_err(|source| NetworkError::Io { path: keys_dir.clone(), source })?;
        let all = self
            .orchestrators
            .iter()
            .map(|o| &o.identity)
            .chain(&self.gateways)
            .chain([&self.loadtest])
            .chain(&self.verifiers);
        for id in all {
            keys::write_hex_key(
                &keys_dir.join(format!("{}.principal.key", id.name)),
                &id.principal_key,
                WriteMode::Overwrite,
            )?;
            keys::write_hex_key(
                &keys_dir.join(format!("{}.key", id.name)),
                &id.delegate_key,
                WriteMode::Overwrite,
            )?;
            let cert = keys_dir.join(format!("{}.cert", id.name));
            std::fs::write(&cert, id.certificate.encode())
                .map_err(|source| NetworkError::Io { path: cert, source })?;
        }
        snapshot::write(
            &dir.join("authority.json"),
            &self.authority_view(),
            Some("vouch demo: simulated principals"),
        )?;
        let profiles: serde_json::Map<String, serde_json::Value> = self
            .orchestrators
            .iter()
            .map(|o| {
                (
                    o.identity.principal().to_hex(),
                    json!({"name": o.identity.name, "profile": o.profile.as_str(),
                           "region": o.identity.region(), "stake": o.stake.to_string()}),
                )
            })
            .collect();
        let path = dir.join("profiles.json");
        let text = serde_json::to_vec_pretty(&profiles).unwrap_or_default();
        std::fs::write(&path, text).map_err(|source| NetworkError::Io { path, source })?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(seed: u64) -> NetworkSpec {
        NetworkSpec {
            verifiers: 2,
            orchestrators: 6,
            regions: vec!["FRA".into(), "NYC".into()],
            seed,
            network: Eip712Network::arbitrum_one(),
            now_secs: 1_795_687_200,
            valid_for_secs: 86_400,
        }
    }

    #[test]
    fn seeded_and_verifiable() {
        let a = Network::generate(&spec(1)).unwrap();
        let b = Network::generate(&spec(1)).unwrap();
        let c = Network::generate(&spec(2)).unwrap();
        let addrs = |n: &Network| {
            n.orchestrators.iter().map(|o| o.identity.principal()).collect::<Vec<_>>()
        };
        assert_eq!(addrs(&a), addrs(&b));
        assert_ne!(addrs(&a), addrs(&c));
        let policy = vouch_delegation::Policy::default();
        let view = a.authority_view();
        for id in
            a.orchestrators.iter().map(|o| &o.identity).chain(&a.gateways).chain([&a.loadtest])
        {
            id.certificate.verify(&Eip712Network::arbitrum_one(), 1_795_687_200, &policy).unwrap();
            assert!(view.allows(id.principal(), id.certificate.role), "{id:?}");
        }
        assert_eq!(a.loadtest.certificate.role, Role::Loadtest);
    }
}
