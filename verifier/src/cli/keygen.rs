//! `vouch keygen`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use vouch_delegation::keys::{self, WriteMode};

use super::{Exit, PasswordArgs};

#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    /// Where to write the key (created with mode 0600; never overwritten).
    #[arg(long)]
    out: PathBuf,
    /// Write an encrypted Ethereum JSON keystore (scrypt) instead of a hex
    /// key file: for principal keys. Needs a password.
    #[arg(long)]
    keystore: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

pub(crate) fn run(args: KeygenArgs) -> Result<Exit> {
    let key = keys::generate();
    if args.keystore {
        let Some(password) = args.password.password()? else {
            bail!("--keystore needs a password: --password-file FILE or $VOUCH_KEY_PASSWORD");
        };
        keys::write_keystore(&args.out, &key, &password, WriteMode::CreateNew)?;
    } else {
        keys::write_hex_key(&args.out, &key, WriteMode::CreateNew)?;
    }
    println!("{}", keys::address(&key));
    Ok(Exit::Ok)
}
