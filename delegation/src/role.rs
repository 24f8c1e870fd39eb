//! The roles a principal can delegate.

use std::fmt;
use std::str::FromStr;

/// What a delegate may publish as. The numbers are the `uint8 role` of the
/// EIP-712 `Delegation` type and never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Role {
    /// An orchestrator node (its self-reports never raise its own score).
    Orchestrator = 0,
    /// A GPU runner box behind an orchestrator.
    Runner = 1,
    /// A gateway: its observations are what scores are made of.
    Gateway = 2,
    /// A load-test gateway publishing synthetic probes.
    Loadtest = 3,
    /// A verifier node (checkpoints on the control topic).
    Verifier = 4,
}

/// Every role, in numeric order.
pub const ALL_ROLES: [Role; 5] =
    [Role::Orchestrator, Role::Runner, Role::Gateway, Role::Loadtest, Role::Verifier];

/// A role name or number that Vouch does not define.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}; expected orchestrator, runner, gateway, loadtest or verifier")]
pub struct UnknownRole(pub String);

impl Role {
    /// The lowercase name used in config files, snapshots and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Orchestrator => "orchestrator",
            Role::Runner => "runner",
            Role::Gateway => "gateway",
            Role::Loadtest => "loadtest",
            Role::Verifier => "verifier",
        }
    }

    /// The role with EIP-712 number `n`.
    pub fn from_u8(n: u8) -> Result<Role, UnknownRole> {
        ALL_ROLES.get(usize::from(n)).copied().ok_or_else(|| UnknownRole(n.to_string()))
    }

    /// Which on-chain standing authorizes this role: runners act for an
    /// orchestrator, and load-test gateways are gateways.
    pub fn principal_role(self) -> Role {
        match self {
            Role::Runner => Role::Orchestrator,
            Role::Loadtest => Role::Gateway,
            other => other,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL_ROLES
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

impl serde::Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_round_trip() {
        for r in ALL_ROLES {
            assert_eq!(Role::from_u8(r as u8), Ok(r));
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!(Role::from_u8(5).is_err());
        assert!("admin".parse::<Role>().is_err());
    }
}
