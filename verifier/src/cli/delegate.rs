//! `vouch delegate …`: certificates and revocations.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use vouch_delegation::{
    DelegationTerms, Policy, Role, SignedDelegation, SignedRevocation, VerifiedDelegation, wallet,
};
use vouch_schema::Address;
use vouch_verifier::clock::now_secs;

use super::{
    AuthorityArgs, Exit, NetworkArgs, PasswordArgs, print_json, read_certificate, read_input,
    write_output,
};

#[derive(Debug, Subcommand)]
pub(crate) enum DelegateCommand {
    /// Sign a certificate authorizing a delegate key (run offline, on the principal's machine).
    Issue(IssueArgs),
    /// Check a certificate's signature, validity and (optionally) the principal's standing.
    Verify(VerifyArgs),
    /// Sign a revocation of a delegate key.
    Revoke(RevokeArgs),
    /// Turn a wallet's eth_signTypedData_v4 output (JSON) into a certificate.
    Import(ImportArgs),
    /// Print a certificate as wallet JSON ({domain, types, primaryType, message, signature}).
    Export(ExportArgs),
    /// Print the unsigned eth_signTypedData_v4 request for a certificate, to sign in any wallet.
    Request(RequestArgs),
}

#[derive(Debug, Args)]
pub(crate) struct TermsArgs {
    /// The delegate's address (`vouch keygen` prints it).
    #[arg(long)]
    delegate: Address,
    /// orchestrator, runner, gateway, loadtest or verifier.
    #[arg(long)]
    role: Role,
    /// The principal's declared region for the delegate's box, e.g. FRA.
    #[arg(long, default_value = "")]
    region: String,
    /// How long the certificate is valid, e.g. 30d, 12h.
    #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
    valid_for: Duration,
    /// Start of validity, Unix seconds (default: now).
    #[arg(long)]
    not_before: Option<u64>,
    /// Distinguishes otherwise equal certificates (default: the start time).
    #[arg(long)]
    nonce: Option<u64>,
}

impl TermsArgs {
    fn terms(&self) -> DelegationTerms {
        let not_before = self.not_before.unwrap_or_else(now_secs);
        DelegationTerms {
            delegate: self.delegate,
            role: self.role,
            region: self.region.clone(),
            not_before,
            not_after: not_before.saturating_add(self.valid_for.as_secs()),
            nonce: self.nonce.unwrap_or(not_before),
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct IssueArgs {
    /// The principal's key: a hex key file or an encrypted keystore.
    #[arg(long)]
    principal_key: PathBuf,
    #[command(flatten)]
    password: PasswordArgs,
    #[command(flatten)]
    terms: TermsArgs,
    #[command(flatten)]
    network: NetworkArgs,
    /// Where to write the certificate (CBOR).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The certificate: CBOR, or signed wallet JSON.
    cert: PathBuf,
    #[command(flatten)]
    network: NetworkArgs,
    #[command(flatten)]
    authority: AuthorityArgs,
    /// Check validity at this Unix time instead of now.
    #[arg(long)]
    at: Option<u64>,
    /// Longest accepted lifetime.
    #[arg(long, default_value = "90d", value_parser = humantime::parse_duration)]
    max_lifetime: Duration,
}

#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    /// The principal's key: a hex key file or an encrypted keystore.
    #[arg(long)]
    principal_key: PathBuf,
    #[command(flatten)]
    password: PasswordArgs,
    /// The delegate to revoke.
    #[arg(long)]
    delegate: Address,
    /// Effective from this Unix time (default: now).
    #[arg(long)]
    revoked_at: Option<u64>,
    #[command(flatten)]
    network: NetworkArgs,
    /// Where to write the revocation (CBOR).
    #[arg(long)]
    out: PathBuf,
    /// Also print it as wallet JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The wallet's output: {domain, types, primaryType, message, signature}.
    wallet_json: PathBuf,
    /// Where to write the certificate (CBOR).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The certificate (CBOR or wallet JSON).
    cert: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct RequestArgs {
    /// The principal that will sign.
    #[arg(long)]
    principal: Address,
    #[command(flatten)]
    terms: TermsArgs,
    #[command(flatten)]
    network: NetworkArgs,
}

pub(crate) fn run(cmd: DelegateCommand) -> Result<Exit> {
    match cmd {
        DelegateCommand::Issue(a) => issue(a),
        DelegateCommand::Verify(a) => verify(a),
        DelegateCommand::Revoke(a) => revoke(a),
        DelegateCommand::Import(a) => import(a),
        DelegateCommand::Export(a) => {
            print_json(&wallet::export_delegation(&read_certificate(&a.cert)?));
            Ok(Exit::Ok)
        }
        DelegateCommand::Request(a) => {
            print_json(&wallet::delegation_request(
                &a.network.network(),
                a.principal,
                &a.terms.terms(),
            ));
            Ok(Exit::Ok)
        }
    }
}

fn issue(a: IssueArgs) -> Result<Exit> {
    let key = a.password.load_key(&a.principal_key)?;
    let cert = SignedDelegation::issue(&key, a.network.network(), a.terms.terms())?;
    write_output(&a.out, &cert.encode())?;
    print_json(&summary(&cert));
    Ok(Exit::Ok)
}

fn verify(a: VerifyArgs) -> Result<Exit> {
    let cert = read_certificate(&a.cert)?;
    let policy = Policy { max_lifetime_secs: a.max_lifetime.as_secs(), ..Policy::default() };
    let at = a.at.unwrap_or_else(now_secs);
    let verified = match cert.verify(&a.network.network(), at, &policy) {
        Ok(v) => v,
        Err(e) => return Ok(report_failure(&cert, &e.to_string())),
    };
    let authority = a.authority.load()?;
    let mut report = summary(verified.certificate());
    report["certificate_hash"] = json!(hex::encode(verified.hash()));
    if let Some(view) = &authority {
        report["authority"] = json!({"source": view.source, "view_hash": hex::encode(view.hash())});
        if !authorized(&verified, view) {
            let why = format!(
                "principal {} does not hold the {} role in {}",
                verified.principal(),
                verified.role().principal_role(),
                view.source
            );
            return Ok(report_failure(&cert, &why));
        }
    }
    report["ok"] = json!(true);
    print_json(&report);
    Ok(Exit::Ok)
}

fn authorized(
    cert: &VerifiedDelegation,
    view: &vouch_delegation::authority::AuthorityView,
) -> bool {
    view.allows(cert.principal(), cert.role())
}

fn report_failure(cert: &SignedDelegation, why: &str) -> Exit {
    let mut report = summary(cert);
    report["ok"] = json!(false);
    report["error"] = json!(why);
    print_json(&report);
    eprintln!("certificate rejected: {why}");
    Exit::CheckFailed
}

fn revoke(a: RevokeArgs) -> Result<Exit> {
    let key = a.password.load_key(&a.principal_key)?;
    let revocation = SignedRevocation::issue(
        &key,
        a.network.network(),
        a.delegate,
        a.revoked_at.unwrap_or_else(now_secs),
    );
    write_output(&a.out, &revocation.encode())?;
    if a.json {
        print_json(&wallet::export_revocation(&revocation));
    } else {
        print_json(&json!({
            "principal": revocation.principal,
            "delegate": revocation.delegate,
            "revoked_at": revocation.revoked_at,
            "hash": hex::encode(revocation.hash()),
        }));
    }
    Ok(Exit::Ok)
}

fn import(a: ImportArgs) -> Result<Exit> {
    let bytes = read_input(&a.wallet_json, 64 * 1024)?;
    let text = std::str::from_utf8(&bytes).context("wallet JSON is not UTF-8")?;
    let cert = match wallet::import_delegation(text) {
        Ok(c) => c,
        Err(e) => bail!("{} is not a signed Delegation: {e}", a.wallet_json.display()),
    };
    write_output(&a.out, &cert.encode())?;
    print_json(&summary(&cert));
    Ok(Exit::Ok)
}

fn summary(cert: &SignedDelegation) -> serde_json::Value {
    json!({
        "principal": cert.principal,
        "delegate": cert.delegate,
        "role": cert.role,
        "region": cert.region,
        "not_before": cert.not_before,
        "not_after": cert.not_after,
        "nonce": cert.nonce,
        "chain_id": cert.network.chain_id,
        "verifying_contract": cert.network.verifying_contract,
    })
}
