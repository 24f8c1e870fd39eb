//! Authority views from a JSON snapshot file: offline, demo and replay.
//!
//! ```json
//! {
//!   "source": "chain:42161@250000000",
//!   "note": "top 100 orchestrators",
//!   "principals": [
//!     {"address": "0x…", "roles": ["orchestrator", "gateway"], "stake": "123"}
//!   ]
//! }
//! ```
//!
//! `source` (where the snapshot was taken from) and `note` are optional and
//! informational; `stake` (LPT wei, decimal string) is optional. Roles are the
//! on-chain standings `orchestrator`, `gateway` and `verifier`. A view loaded
//! from a file has source `snapshot:<file name>`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vouch_schema::Address;

use super::{AuthorityView, CachedAuthority, PrincipalEntry};
use crate::Role;

/// Why a snapshot cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Reading or writing the file failed.
    #[error("cannot {action} snapshot {}: {source}", path.display())]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// Not JSON of the snapshot's shape (the message names the member and position).
    #[error("snapshot {file} is malformed: {source}")]
    Json {
        /// The file name.
        file: String,
        /// serde_json's error.
        source: serde_json::Error,
    },
    /// A principal's address is not `0x` and 40 hex digits.
    #[error("snapshot {file}: principal #{index} has an invalid address {value:?}")]
    BadAddress {
        /// The file name.
        file: String,
        /// The principal's position in the list, from 0.
        index: usize,
        /// The address as written.
        value: String,
    },
    /// A role name Vouch does not define.
    #[error(
        "snapshot {file}: principal {principal} has unknown role {role:?}; \
         expected orchestrator, gateway or verifier"
    )]
    UnknownRole {
        /// The file name.
        file: String,
        /// The principal.
        principal: Address,
        /// The role as written.
        role: String,
    },
    /// A delegated role (`runner`, `loadtest`), which no principal holds on chain.
    #[error(
        "snapshot {file}: principal {principal} lists {role}, a delegated role; \
         list {needed} instead"
    )]
    NotAPrincipalRole {
        /// The file name.
        file: String,
        /// The principal.
        principal: Address,
        /// The role as written.
        role: Role,
        /// The on-chain standing that authorizes it.
        needed: Role,
    },
    /// `stake` is not a decimal string of digits.
    #[error("snapshot {file}: principal {principal} has stake {value:?}, not a decimal integer")]
    BadStake {
        /// The file name.
        file: String,
        /// The principal.
        principal: Address,
        /// The stake as written.
        value: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    principals: Vec<SnapshotPrincipal>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotPrincipal {
    address: String,
    roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stake: Option<String>,
}

/// Parses snapshot JSON; `file_name` names it in errors and in the view's
/// source, `snapshot:<file_name>`.
pub fn parse(json: &[u8], file_name: &str) -> Result<AuthorityView, SnapshotError> {
    let file = || file_name.to_owned();
    let parsed: SnapshotFile = serde_json::from_slice(json)
        .map_err(|source| SnapshotError::Json { file: file(), source })?;
    let mut entries = Vec::with_capacity(parsed.principals.len());
    for (index, p) in parsed.principals.into_iter().enumerate() {
        let address: Address = p.address.parse().map_err(|_| SnapshotError::BadAddress {
            file: file(),
            index,
            value: p.address.clone(),
        })?;
        let mut roles = std::collections::BTreeSet::new();
        for name in p.roles {
            let role: Role = name.parse().map_err(|_| SnapshotError::UnknownRole {
                file: file(),
                principal: address,
                role: name,
            })?;
            if role.principal_role() != role {
                return Err(SnapshotError::NotAPrincipalRole {
                    file: file(),
                    principal: address,
                    role,
                    needed: role.principal_role(),
                });
            }
            roles.insert(role);
        }
        if let Some(stake) = &p.stake
            && (stake.is_empty() || !stake.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(SnapshotError::BadStake {
                file: file(),
                principal: address,
                value: stake.clone(),
            });
        }
        entries.push(PrincipalEntry { address, roles, stake: p.stake });
    }
    Ok(AuthorityView::new(format!("snapshot:{file_name}"), entries))
}

/// Reads a snapshot file.
pub fn load(path: &Path) -> Result<AuthorityView, SnapshotError> {
    let bytes = fs::read(path).map_err(|source| SnapshotError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })?;
    parse(&bytes, &file_name(path))
}

/// The snapshot JSON for `view` (pretty, sorted by address), recording the
/// view's source as `"source"` and `note` if given.
pub fn to_json(view: &AuthorityView, note: Option<&str>) -> Vec<u8> {
    let file = SnapshotFile {
        source: Some(view.source.clone()),
        note: note.map(str::to_owned),
        principals: view
            .principals
            .iter()
            .map(|p| SnapshotPrincipal {
                address: p.address.to_hex(),
                roles: p.roles.iter().map(|r| r.as_str().to_owned()).collect(),
                stake: p.stake.clone(),
            })
            .collect(),
    };
    // Plain strings and lists always serialize.
    let mut out = serde_json::to_vec_pretty(&file).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Writes [`to_json`] to `path` atomically (a temporary file, then a rename),
/// replacing any existing file.
pub fn write(path: &Path, view: &AuthorityView, note: Option<&str>) -> Result<(), SnapshotError> {
    let io_err = |source| SnapshotError::Io { action: "write", path: path.to_owned(), source };
    let tmp = path.with_file_name(format!(".{}.tmp-{}", file_name(path), std::process::id()));
    let result = fs::write(&tmp, to_json(view, note)).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// An [`Authority`](super::Authority) backed by a snapshot file.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotAuthority;

impl SnapshotAuthority {
    /// Loads `path` into a [`CachedAuthority`].
    pub fn open(path: &Path) -> Result<CachedAuthority, SnapshotError> {
        load(path).map(CachedAuthority::new)
    }

    /// Re-reads `path` into `authority` (e.g. on SIGHUP); on error the old
    /// view stays in force.
    pub fn reload(authority: &CachedAuthority, path: &Path) -> Result<(), SnapshotError> {
        authority.replace(load(path)?);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::authority::Authority;

    const A: &str = "0x90F8bf6A479f320ead074411a4B0e7944Ea8c9C1";
    const B: &str = "0x1111111111111111111111111111111111111111";

    fn err(json: &str) -> SnapshotError {
        parse(json.as_bytes(), "s.json").unwrap_err()
    }

    #[test]
    fn malformed_json_keeps_serde_json_error_as_source() {
        let e = err(r#"{"principal":[]}"#);
        let source = std::error::Error::source(&e).expect("a source");
        let json = source.downcast_ref::<serde_json::Error>().expect("serde_json's error");
        assert!(json.is_data(), "{json}");
        assert_eq!(e.to_string(), format!("snapshot s.json is malformed: {json}"));
    }

    #[test]
    fn parses_and_authorizes() {
        let json = format!(
            r#"{{"source":"chain:42161@1","note":"demo","principals":[
                {{"address":"{A}","roles":["orchestrator","Gateway"],"stake":"123"}},
                {{"address":"{B}","roles":["gateway"]}}]}}"#
        );
        let view = parse(json.as_bytes(), "authority.json").unwrap();
        assert_eq!(view.source, "snapshot:authority.json");
        assert_eq!(view.principals.len(), 2);
        let a: Address = A.parse().unwrap();
        let b: Address = B.parse().unwrap();
        assert!(view.allows(a, Role::Runner));
        assert!(view.allows(a, Role::Gateway));
        assert!(view.allows(b, Role::Loadtest));
        assert!(!view.allows(b, Role::Orchestrator));
        assert!(!view.allows(b, Role::Verifier));
    }

    #[test]
    fn each_error_names_the_problem() {
        let e = err(&format!(r#"{{"principals":[{{"address":"{A}","roles":["admin"]}}]}}"#));
        assert!(matches!(&e, SnapshotError::UnknownRole { role, .. } if role == "admin"));
        assert_eq!(
            e.to_string(),
            "snapshot s.json: principal 0x90f8bf6a479f320ead074411a4b0e7944ea8c9c1 has unknown \
             role \"admin\"; expected orchestrator, gateway or verifier"
        );
        let e = err(&format!(r#"{{"principals":[{{"address":"{A}","roles":["runner"]}}]}}"#));
        assert!(matches!(e, SnapshotError::NotAPrincipalRole { needed: Role::Orchestrator, .. }));
        let e = err(r#"{"principals":[{"address":"0x12","roles":[]}]}"#);
        assert!(matches!(e, SnapshotError::BadAddress { index: 0, .. }), "{e}");
        let e = err(&format!(r#"{{"principals":[{{"address":"{A}","roles":[],"stake":"1e3"}}]}}"#));
        assert!(matches!(e, SnapshotError::BadStake { .. }), "{e}");
        let e = err(r#"{"principal":[]}"#);
        assert!(
            matches!(&e, SnapshotError::Json { source, .. } if source.to_string().contains("principal"))
        );
        assert!(matches!(err("not json"), SnapshotError::Json { .. }));
        let e = load(Path::new("/nonexistent/s.json")).unwrap_err();
        assert!(matches!(e, SnapshotError::Io { action: "read", .. }));
    }

    #[test]
    fn write_load_round_trip_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authority.json");
        let entries = [
            PrincipalEntry {
                address: B.parse().unwrap(),
                roles: [Role::Gateway].into(),
                stake: None,
            },
            PrincipalEntry {
                address: A.parse().unwrap(),
                roles: [Role::Orchestrator].into(),
                stake: Some("5".into()),
            },
        ];
        let view = AuthorityView::new("chain:42161@7", entries.clone());
        write(&path, &view, Some("test")).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"source\": \"chain:42161@7\""), "{text}");
        let back = load(&path).unwrap();
        assert_eq!(back.principals, view.principals);
        assert_eq!(back.source, "snapshot:authority.json");

        let authority = SnapshotAuthority::open(&path).unwrap();
        assert!(authority.allows(A.parse().unwrap(), Role::Orchestrator));
        write(&path, &AuthorityView::new("x", entries[..1].to_vec()), None).unwrap();
        SnapshotAuthority::reload(&authority, &path).unwrap();
        assert!(!authority.allows(A.parse().unwrap(), Role::Orchestrator));
        fs::write(&path, "{").unwrap();
        assert!(SnapshotAuthority::reload(&authority, &path).is_err());
        assert!(authority.allows(B.parse().unwrap(), Role::Gateway));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
