//! secp256k1 key files.
//!
//! Two formats:
//! - a **hex key file** for delegate (hot) keys: `0x` followed by the 64 hex
//!   digits of the 32-byte secret and a newline, mode 0600;
//! - an **Ethereum JSON keystore v3** (scrypt, AES-128-CTR), what geth,
//!   Foundry and most wallets export, for principal keys.
//!
//! Files are written atomically (a private temporary file, then a rename or
//! link), never overwrite an existing file unless asked, and are created with
//! mode 0600 on Unix. [`load_signing_key`] reads either format.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use alloy::signers::local::{LocalSigner, LocalSignerError};
use k256::ecdsa::SigningKey;
use k256::elliptic_curve::zeroize::Zeroizing;
use rand_core::{OsRng, RngCore};
use vouch_schema::Address;

/// Largest key file read, in bytes (a keystore is about 500).
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Whether a write may replace an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Fail with [`KeyError::Exists`] if the file exists.
    CreateNew,
    /// Replace the file if it exists.
    Overwrite,
}

/// Why a hex key string is not a secp256k1 secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexKeyError {
    /// Not hex digits (after an optional `0x` and surrounding whitespace).
    #[error("not a hex key: expected 0x followed by 64 hex digits")]
    BadHex,
    /// Hex of the wrong number of bytes.
    #[error("key is {0} bytes, a secp256k1 secret is 32")]
    WrongLength(usize),
    /// 32 bytes, but zero or not below the curve order.
    #[error("not a valid secp256k1 secret (zero or not below the curve order)")]
    InvalidScalar,
}

/// Why a key file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file does not exist.
    #[error("key file {} does not exist", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The file exists and [`WriteMode::CreateNew`] was asked for.
    #[error("key file {} already exists; refusing to overwrite it", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// Reading or writing failed.
    #[error("cannot {action} key file {}: {source}", path.display())]
    Io {
        /// What was being done: `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// Larger than any key file.
    #[error("key file {} is over 64 KiB; not a key", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A hex key file whose contents are not a key.
    #[error("key file {}: {source}", path.display())]
    Hex {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: HexKeyError,
    },
    /// A keystore was found but no password given.
    #[error("key file {} is an encrypted keystore; a password is needed", path.display())]
    PasswordRequired {
        /// The file.
        path: PathBuf,
    },
    /// The keystore's MAC does not match: the password is wrong.
    #[error("wrong password for keystore {}", path.display())]
    WrongPassword {
        /// The file.
        path: PathBuf,
    },
    /// The keystore is malformed or uses something unsupported.
    #[error("cannot use keystore {}: {source}", path.display())]
    Keystore {
        /// The file.
        path: PathBuf,
        /// The keystore library's error.
        source: LocalSignerError,
    },
}

/// A new random key from the operating system's generator.
pub fn generate() -> SigningKey {
    SigningKey::random(&mut OsRng)
}

/// The Ethereum address of `key`.
pub fn address(key: &SigningKey) -> Address {
    vouch_schema::crypto::address_of(key.verifying_key())
}

/// Parses `0x`-hex (the `0x` optional, surrounding whitespace ignored) of a
/// 32-byte secret.
pub fn parse_hex_key(text: &str) -> Result<SigningKey, HexKeyError> {
    let t = text.trim();
    let digits = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
    let bytes = Zeroizing::new(hex::decode(digits).map_err(|_| HexKeyError::BadHex)?);
    if bytes.len() != 32 {
        return Err(HexKeyError::WrongLength(bytes.len()));
    }
    SigningKey::from_slice(&bytes).map_err(|_| HexKeyError::InvalidScalar)
}

/// The hex key file contents for `key`: `0x`, 64 lowercase hex digits, newline.
pub fn to_hex_key(key: &SigningKey) -> Zeroizing<String> {
    Zeroizing::new(format!("0x{}\n", hex::encode(key.to_bytes())))
}

/// Reads a hex key file, warning (via `tracing`) if other users may read it.
pub fn read_hex_key(path: &Path) -> Result<SigningKey, KeyError> {
    let text = read_small(path)?;
    let text = std::str::from_utf8(&text)
        .map_err(|_| KeyError::Hex { path: path.to_owned(), source: HexKeyError::BadHex })?;
    parse_hex_key(text).map_err(|source| KeyError::Hex { path: path.to_owned(), source })
}

/// Writes `key` as a hex key file, mode 0600, atomically.
pub fn write_hex_key(path: &Path, key: &SigningKey, mode: WriteMode) -> Result<(), KeyError> {
    let text = to_hex_key(key);
    write_atomically(path, mode, |tmp| {
        let mut f = create_private(tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    })
}

/// Decrypts an Ethereum JSON keystore (v3, scrypt or pbkdf2).
pub fn read_keystore(path: &Path, password: &str) -> Result<SigningKey, KeyError> {
    if !path.exists() {
        return Err(KeyError::Missing { path: path.to_owned() });
    }
    warn_if_loose(path);
    LocalSigner::decrypt_keystore(path, password)
        .map(LocalSigner::into_credential)
        .map_err(|e| keystore_error(path, e))
}

/// Encrypts `key` into an Ethereum JSON keystore v3 (scrypt), mode 0600, atomically.
pub fn write_keystore(
    path: &Path,
    key: &SigningKey,
    password: &str,
    mode: WriteMode,
) -> Result<(), KeyError> {
    let secret = Zeroizing::new(key.to_bytes());
    write_atomically(path, mode, |tmp| {
        // The keystore library writes a whole file itself, so let it write
        // into a private directory and move the file out.
        let mut dir = tmp.as_os_str().to_owned();
        dir.push(".d");
        let dir = PathBuf::from(dir);
        create_private_dir(&dir)?;
        let written = LocalSigner::encrypt_keystore(
            &dir,
            &mut OsRng,
            secret.as_slice(),
            password,
            Some("keystore.json"),
        );
        let result = match written {
            Ok(_) => {
                let inner = dir.join("keystore.json");
                set_private(&inner).and_then(|()| fs::rename(&inner, tmp))
            }
            Err(e) => Err(io::Error::other(e)),
        };
        let _ = fs::remove_dir_all(&dir);
        result
    })
}

/// Reads a key file in either format: a keystore (JSON, needs `password`) or
/// a hex key file (`password` ignored).
pub fn load_signing_key(path: &Path, password: Option<&str>) -> Result<SigningKey, KeyError> {
    let bytes = read_small(path)?;
    let is_json = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if !is_json {
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| KeyError::Hex { path: path.to_owned(), source: HexKeyError::BadHex })?;
        return parse_hex_key(text)
            .map_err(|source| KeyError::Hex { path: path.to_owned(), source });
    }
    match password {
        Some(p) => read_keystore(path, p),
        None => Err(KeyError::PasswordRequired { path: path.to_owned() }),
    }
}

fn keystore_error(path: &Path, e: LocalSignerError) -> KeyError {
    let path = path.to_owned();
    match e {
        LocalSignerError::EthKeystoreError(ks) if ks.to_string() == "Mac Mismatch" => {
            KeyError::WrongPassword { path }
        }
        LocalSignerError::EcdsaError(_) => {
            KeyError::Hex { path, source: HexKeyError::InvalidScalar }
        }
        source => KeyError::Keystore { path, source },
    }
}

/// Reads a file of at most [`MAX_KEY_FILE_BYTES`], warning if its mode is loose.
fn read_small(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let file = File::open(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => KeyError::Missing { path: path.to_owned() },
        _ => KeyError::Io { action: "read", path: path.to_owned(), source },
    })?;
    warn_if_loose(path);
    let mut buf = Zeroizing::new(Vec::new());
    file.take(MAX_KEY_FILE_BYTES + 1).read_to_end(&mut buf).map_err(|source| KeyError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })?;
    if buf.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(KeyError::TooLarge { path: path.to_owned() });
    }
    Ok(buf)
}

#[cfg(unix)]
fn warn_if_loose(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{mode:o}"),
                "key file is readable by other users; run chmod 600 on it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_loose(_path: &Path) {}

/// Creates a new file that only its owner can read.
fn create_private(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

fn create_private_dir(path: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

fn set_private(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Writes `path` by letting `fill` create a temporary file next to it, then
/// moving that into place: a reader sees no file or the whole file.
fn write_atomically(
    path: &Path,
    mode: WriteMode,
    fill: impl FnOnce(&Path) -> io::Result<()>,
) -> Result<(), KeyError> {
    let io_err = |source| KeyError::Io { action: "write", path: path.to_owned(), source };
    let exists = || KeyError::Exists { path: path.to_owned() };
    if mode == WriteMode::CreateNew && path.symlink_metadata().is_ok() {
        return Err(exists());
    }
    let name = path.file_name().ok_or_else(|| {
        io_err(io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))
    })?;
    let tmp =
        path.with_file_name(format!(".{}.tmp-{:016x}", name.to_string_lossy(), OsRng.next_u64()));
    let published = fill(&tmp).and_then(|()| match mode {
        WriteMode::Overwrite => fs::rename(&tmp, path),
        // A hard link fails if the target exists, so two writers cannot
        // both win; fall back to a rename where links are unsupported.
        WriteMode::CreateNew => match fs::hard_link(&tmp, path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
            Err(_) if path.symlink_metadata().is_ok() => {
                Err(io::Error::from(io::ErrorKind::AlreadyExists))
            }
            Err(_) => fs::rename(&tmp, path),
        },
    });
    let _ = fs::remove_file(&tmp);
    match published {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(exists()),
        Err(e) => Err(io_err(e)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key_one() -> SigningKey {
        parse_hex_key("0x0000000000000000000000000000000000000000000000000000000000000001").unwrap()
    }

    #[test]
    fn generated_keys_differ_and_have_addresses() {
        let (a, b) = (generate(), generate());
        assert_ne!(a.to_bytes(), b.to_bytes());
        assert_ne!(address(&a), address(&b));
        assert_eq!(address(&key_one()).to_string(), "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf");
    }

    #[test]
    fn hex_parse_errors() {
        assert_eq!(parse_hex_key("0xzz").err(), Some(HexKeyError::BadHex));
        assert_eq!(parse_hex_key("0x123").err(), Some(HexKeyError::BadHex));
        assert_eq!(parse_hex_key("0x1234").err(), Some(HexKeyError::WrongLength(2)));
        assert_eq!(parse_hex_key(&"00".repeat(32)).err(), Some(HexKeyError::InvalidScalar));
        assert_eq!(parse_hex_key(&"ff".repeat(32)).err(), Some(HexKeyError::InvalidScalar));
        // No 0x, uppercase, surrounding whitespace.
        let k = parse_hex_key(&format!("  {}01\r\n", "00".repeat(31))).unwrap();
        assert_eq!(k.to_bytes(), key_one().to_bytes());
        assert_eq!(
            HexKeyError::WrongLength(2).to_string(),
            "key is 2 bytes, a secp256k1 secret is 32"
        );
    }

    #[test]
    fn hex_file_round_trip_mode_and_no_clobber() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("delegate.key");
        let key = generate();
        write_hex_key(&path, &key, WriteMode::CreateNew).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("0x") && text.ends_with('\n') && text.len() == 67);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(read_hex_key(&path).unwrap().to_bytes(), key.to_bytes());
        assert_eq!(load_signing_key(&path, None).unwrap().to_bytes(), key.to_bytes());

        let other = generate();
        let err = write_hex_key(&path, &other, WriteMode::CreateNew).unwrap_err();
        assert!(matches!(err, KeyError::Exists { .. }), "{err}");
        assert!(err.to_string().ends_with("already exists; refusing to overwrite it"));
        assert_eq!(read_hex_key(&path).unwrap().to_bytes(), key.to_bytes());
        write_hex_key(&path, &other, WriteMode::Overwrite).unwrap();
        assert_eq!(read_hex_key(&path).unwrap().to_bytes(), other.to_bytes());
        // No temporary files left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn hex_file_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        assert!(matches!(read_hex_key(&path), Err(KeyError::Missing { .. })));
        assert!(matches!(load_signing_key(&path, None), Err(KeyError::Missing { .. })));
        for (text, want) in [
            ("hello", HexKeyError::BadHex),
            ("0x00", HexKeyError::WrongLength(1)),
            (&"00".repeat(32), HexKeyError::InvalidScalar),
        ] {
            fs::write(&path, text).unwrap();
            match read_hex_key(&path) {
                Err(KeyError::Hex { source, .. }) => assert_eq!(source, want),
                other => panic!("{text}: {other:?}"),
            }
        }
        fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(matches!(
            load_signing_key(&path, None),
            Err(KeyError::Hex { source: HexKeyError::BadHex, .. })
        ));
        fs::write(&path, vec![b'0'; 70_000]).unwrap();
        assert!(matches!(read_hex_key(&path), Err(KeyError::TooLarge { .. })));
        let err = write_hex_key(&dir.path().join("no/such/dir"), &key_one(), WriteMode::CreateNew)
            .unwrap_err();
        assert!(matches!(err, KeyError::Io { action: "write", .. }), "{err}");
    }

    #[test]
    fn keystore_round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("principal.json");
        let key = generate();
        write_keystore(&path, &key, "hunter2", WriteMode::CreateNew).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["version"], 3);
        assert_eq!(json["crypto"]["kdf"], "scrypt");
        assert_eq!(read_keystore(&path, "hunter2").unwrap().to_bytes(), key.to_bytes());
        assert_eq!(load_signing_key(&path, Some("hunter2")).unwrap().to_bytes(), key.to_bytes());
        assert!(matches!(load_signing_key(&path, None), Err(KeyError::PasswordRequired { .. })));
        assert!(matches!(read_keystore(&path, "wrong"), Err(KeyError::WrongPassword { .. })));
        assert!(matches!(
            write_keystore(&path, &key, "x", WriteMode::CreateNew),
            Err(KeyError::Exists { .. })
        ));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);

        fs::write(&path, "{\"version\": 3}").unwrap();
        assert!(matches!(load_signing_key(&path, Some("x")), Err(KeyError::Keystore { .. })));
        assert!(matches!(
            read_keystore(&dir.path().join("nope.json"), "x"),
            Err(KeyError::Missing { .. })
        ));
    }

    /// A keystore made by another implementation (the Web3 Secret Storage
    /// test vector, pbkdf2, password "testpassword").
    #[test]
    fn reads_the_web3_secret_storage_vector() {
        let json = r#"{"crypto":{"cipher":"aes-128-ctr","cipherparams":{"iv":"6087dab2f9fdbbfaddc31a909735c1e6"},"ciphertext":"5318b4d5bcd28de64ee5559e671353e16f075ecae9f99c7a79a38af5f869aa46","kdf":"pbkdf2","kdfparams":{"c":262144,"dklen":32,"prf":"hmac-sha256","salt":"ae3cd4e7013836a3df6bd7241b12db061dbe2c6785853cce422d148a624ce0bd"},"mac":"517ead924a9d0dc3124507e3393d175ce3ff7c1e96529c6c555ce9e51205e9b2"},"id":"3198bc9c-6672-5ab3-d995-4942343ae5b6","version":3}"#;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vector.json");
        fs::write(&path, json).unwrap();
        let key = load_signing_key(&path, Some("testpassword")).unwrap();
        assert_eq!(
            hex::encode(key.to_bytes()),
            "7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d"
        );
    }
}
