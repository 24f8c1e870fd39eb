//! `vouch envelope …`: sign go-livepeer events, verify and inspect envelopes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use vouch_delegation::{Role, SignedDelegation};
use vouch_schema::batch::TelemetryBatch;
use vouch_schema::event::{Event, Origin};
use vouch_schema::limits::{MAX_BATCH_EVENTS, MAX_ENVELOPE_BYTES, MAX_PARTITIONS};
use vouch_schema::streamr::partition_for_key;
use vouch_schema::{Envelope, MessageId};
use vouch_verifier::clock::now_ms;
use vouch_verifier::validate::ValidationConfig;
use vouch_verifier::validate::rules::{Arrival, Credentials, Rules};

use super::{
    AuthorityArgs, Exit, NetworkArgs, PasswordArgs, print_json, read_certificate, read_input,
    write_output,
};

/// The stream path every Vouch principal publishes under.
pub(crate) const DEFAULT_STREAM_PATH: &str = "/livepeer/telemetry";

/// Largest events file accepted: far more than one envelope can carry, so the
/// error names the real limit instead of an unreadable file.
const MAX_EVENTS_FILE: usize = 16 * 1024 * 1024;

#[derive(Debug, Subcommand)]
pub(crate) enum EnvelopeCommand {
    /// Sign go-livepeer events (a JSON array or NDJSON of Kafka envelopes) into one envelope.
    Sign(SignArgs),
    /// Check an envelope: structure, signature, certificate, stream and (optionally) authority.
    Verify(VerifyArgs),
    /// Print an envelope in human-readable form.
    Inspect(InspectArgs),
}

/// On-disk envelope formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Vouch's deterministic CBOR.
    Cbor,
    /// Streamr protobuf StreamMessage bytes, as hex text.
    StreamrHex,
}

#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    /// The delegate's key file.
    #[arg(long)]
    key: PathBuf,
    #[command(flatten)]
    password: PasswordArgs,
    /// The delegate's certificate (CBOR or wallet JSON).
    #[arg(long)]
    cert: PathBuf,
    /// Streamr stream id (default: 0x<principal>/livepeer/telemetry).
    #[arg(long)]
    stream_id: Option<String>,
    /// Partition 0-99 (default: from the certificate's region, as Streamr maps partition keys).
    #[arg(long)]
    partition: Option<u32>,
    /// go-livepeer events: a JSON array or NDJSON of {id, type, timestamp, gateway, data}.
    #[arg(long)]
    events: PathBuf,
    /// Message timestamp in ms (default: now).
    #[arg(long)]
    timestamp: Option<u64>,
    /// Message chain id (default: derived from time and process).
    #[arg(long)]
    msg_chain_id: Option<String>,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Cbor)]
    format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The envelope (CBOR or Streamr hex; detected).
    file: PathBuf,
    #[command(flatten)]
    network: NetworkArgs,
    #[command(flatten)]
    authority: AuthorityArgs,
    /// The stream path a principal's stream id must end in.
    #[arg(long, default_value = DEFAULT_STREAM_PATH)]
    stream_path: String,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// The envelope (CBOR or Streamr hex; detected).
    file: PathBuf,
}

pub(crate) fn run(cmd: EnvelopeCommand) -> Result<Exit> {
    match cmd {
        EnvelopeCommand::Sign(a) => sign(a),
        EnvelopeCommand::Verify(a) => verify(a),
        EnvelopeCommand::Inspect(a) => {
            print!("{}", inspect(&read_envelope(&a.file)?));
            Ok(Exit::Ok)
        }
    }
}

fn sign(a: SignArgs) -> Result<Exit> {
    let key = a.password.load_key(&a.key)?;
    let cert = read_certificate(&a.cert)?;
    let mut events = read_events(&a.events)?;
    if events.len() > MAX_BATCH_EVENTS {
        bail!("{} events, over the {MAX_BATCH_EVENTS}-event limit of one envelope", events.len());
    }
    for event in &mut events {
        stamp_provenance(event, &cert);
    }
    let partition = match a.partition {
        Some(p) if p >= MAX_PARTITIONS => bail!("--partition must be below {MAX_PARTITIONS}"),
        Some(p) => p,
        None if cert.region.is_empty() => 0,
        None => partition_for_key(MAX_PARTITIONS, &cert.region),
    };
    let timestamp = a.timestamp.unwrap_or_else(now_ms);
    let id = MessageId {
        stream_id: a
            .stream_id
            .unwrap_or_else(|| format!("{}{DEFAULT_STREAM_PATH}", cert.principal)),
        partition,
        timestamp,
        seq: 0,
        publisher: cert.delegate,
        msg_chain_id: a.msg_chain_id.unwrap_or_else(|| default_chain_id(timestamp)),
    };
    let content = TelemetryBatch::new(cert.encode(), events).encode();
    let env = Envelope::sign(id, None, content, &key)?;
    if env.id.publisher != cert.delegate {
        bail!(
            "the key's address {} is not the certificate's delegate {}",
            env.id.publisher,
            cert.delegate
        );
    }
    let bytes = match a.format {
        Format::Cbor => env.encode(),
        Format::StreamrHex => format!("{}\n", hex::encode(env.to_streamr_bytes())).into_bytes(),
    };
    write_output(&a.out, &bytes)?;
    print_json(&json!({
        "stream_id": env.id.stream_id,
        "partition": env.id.partition,
        "publisher": env.id.publisher,
        "events": TelemetryBatch::decode(&env.content).map(|b| b.events.len()).unwrap_or(0),
        "bytes": env.encoded_len(),
    }));
    Ok(Exit::Ok)
}

/// Fills the provenance fields go-livepeer does not know: the gateway's
/// region (the certificate's) and whether the event is a synthetic probe.
fn stamp_provenance(event: &mut Event, cert: &SignedDelegation) {
    if event.gateway_region.is_none() && !cert.region.is_empty() {
        event.gateway_region = Some(cert.region.clone());
    }
    if event.origin.is_none() {
        event.origin =
            Some(if cert.role == Role::Loadtest { Origin::Synthetic } else { Origin::Production });
    }
}

/// Twenty alphanumerics, like Streamr's own default chain ids.
fn default_chain_id(timestamp: u64) -> String {
    let seed = format!("{timestamp}-{}", std::process::id());
    blake3::hash(seed.as_bytes())
        .as_bytes()
        .iter()
        .take(20)
        .map(|b| {
            char::from(
                b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                    [usize::from(*b) % 62],
            )
        })
        .collect()
}

/// Reads go-livepeer events from a JSON array, a single object, or NDJSON.
fn read_events(path: &Path) -> Result<Vec<Event>> {
    let bytes = read_input(path, MAX_EVENTS_FILE)?;
    let text = std::str::from_utf8(&bytes).context("events file is not UTF-8")?;
    let values: Vec<Value> = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => items,
        Ok(single @ Value::Object(_)) => vec![single],
        Ok(_) => bail!("{}: expected a JSON array or objects", path.display()),
        Err(_) => text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .with_context(|| format!("{} line {}: not JSON", path.display(), i + 1))
            })
            .collect::<Result<_>>()?,
    };
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            Event::from_kafka_json(v).with_context(|| {
                format!("{} event {}: not a go-livepeer event", path.display(), i + 1)
            })
        })
        .collect()
}

/// Reads an envelope as CBOR or as Streamr protobuf hex, whichever it is.
pub(crate) fn read_envelope(path: &Path) -> Result<Envelope> {
    let bytes = read_input(path, 2 * MAX_ENVELOPE_BYTES + 1024)?;
    let trimmed = bytes.trim_ascii();
    if !trimmed.is_empty() && trimmed.iter().all(u8::is_ascii_hexdigit) {
        let proto = hex::decode(trimmed).context("odd-length hex")?;
        return Envelope::from_streamr_bytes(&proto)
            .with_context(|| format!("{} is not a Streamr envelope", path.display()));
    }
    Envelope::decode(&bytes).with_context(|| format!("{} is not an envelope", path.display()))
}

/// Everything `envelope verify` checks, in the verifier's order (cheap first).
fn verify(a: VerifyArgs) -> Result<Exit> {
    let env = read_envelope(&a.file)?;
    let mut report = json!({
        "stream_id": env.id.stream_id,
        "partition": env.id.partition,
        "timestamp": env.id.timestamp,
        "seq": env.id.seq,
        "publisher": env.id.publisher,
        "msg_chain_id": env.id.msg_chain_id,
    });
    let view = a.authority.load()?;
    if let Some(view) = &view {
        report["authority"] = json!({"source": view.source, "view_hash": hex::encode(view.hash())});
    }
    // The node's own rules (`validate::rules`), without its arrival-time
    // guards: a file has no arrival time.
    let config = ValidationConfig {
        network: a.network.network(),
        stream_path: a.stream_path.clone(),
        ..ValidationConfig::default()
    };
    let checked = Credentials::new(1, 1).check(
        &Rules::new(&config),
        &env.encode(),
        Arrival::Stored,
        view.as_ref(),
        |_, _| None,
    );
    match checked {
        Ok(c) => {
            report["principal"] = json!(c.certificate.principal());
            report["role"] = json!(c.certificate.role());
            report["region"] = json!(c.certificate.region());
            report["events"] = json!(c.batch.len());
            report["ok"] = json!(true);
            print_json(&report);
            Ok(Exit::Ok)
        }
        Err(e) => {
            report["ok"] = json!(false);
            report["error"] = json!(e.to_string());
            report["reason"] = json!(e.outcome().1);
            print_json(&report);
            eprintln!("envelope rejected: {e}");
            Ok(Exit::CheckFailed)
        }
    }
}

/// A human-readable dump. Shows what is there even when it does not verify.
fn inspect(env: &Envelope) -> String {
    let mut out = String::new();
    let id = &env.id;
    let sig = match env.verify() {
        Ok(()) => "valid".to_owned(),
        Err(e) => format!("INVALID ({e})"),
    };
    let _ = writeln!(out, "envelope v1  {} bytes", env.encoded_len());
    let _ = writeln!(out, "  stream      {}  partition {}", id.stream_id, id.partition);
    let _ = writeln!(out, "  number      {}/{}  chain {}", id.timestamp, id.seq, id.msg_chain_id);
    if let Some(p) = env.prev {
        let _ = writeln!(out, "  prev        {}/{}", p.timestamp, p.seq);
    }
    let _ = writeln!(out, "  publisher   {}", id.publisher);
    let _ = writeln!(out, "  signature   {sig}");
    let batch = match TelemetryBatch::decode(&env.content) {
        Ok(b) => b,
        Err(e) => {
            let _ = writeln!(
                out,
                "  content     {} bytes, not a telemetry batch: {e}",
                env.content.len()
            );
            return out;
        }
    };
    match SignedDelegation::decode(&batch.certificate) {
        Ok(c) => {
            let _ = writeln!(
                out,
                "  certificate principal {} delegates {} as {} in {:?}, valid {}..{} (chain {})",
                c.principal,
                c.delegate,
                c.role,
                c.region,
                c.not_before,
                c.not_after,
                c.network.chain_id
            );
        }
        Err(e) => {
            let _ = writeln!(out, "  certificate unreadable: {e}");
        }
    }
    let _ = writeln!(out, "  events      {}", batch.events.len());
    for e in &batch.events {
        let _ = writeln!(
            out,
            "    {:<22} {:<42} ts={} request={} model={} orch={}",
            e.family.as_str(),
            e.subtype.as_deref().unwrap_or("-"),
            e.ts.map_or("-".to_owned(), |t| t.to_string()),
            e.request_id.as_deref().unwrap_or("-"),
            e.model_id.as_deref().unwrap_or("-"),
            e.orchestrator.map_or("-".to_owned(), |o| o.to_string()),
        );
    }
    out
}
