//! The telemetry batch (DESIGN.md §3.2): the signed content of an envelope.
//!
//! `{0: "vouch/1", 1: delegation certificate bytes, 2: [* event]}` in
//! deterministic CBOR (rule `telemetry-batch` of `schemas/telemetry.cddl`).
//! The certificate rides in every batch so that any verifier can check any
//! message without a lookup; it is opaque here.

use crate::cbor::{self, CborError, Duplicates, Item, MapError, Reader, major};
use crate::event::{Event, EventError};
use crate::limits::{MAX_BATCH_EVENTS, MAX_ENVELOPE_BYTES};

/// The schema string of this version of the format.
pub const SCHEMA: &str = "vouch/1";

/// Integer keys of the batch map. They never change meaning.
pub(crate) mod key {
    pub(crate) const SCHEMA: u64 = 0;
    pub(crate) const CERTIFICATE: u64 = 1;
    pub(crate) const EVENTS: u64 = 2;
    pub(crate) const ALL: [u64; 3] = [0, 1, 2];
}

/// A batch of events and the certificate that delegates their signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryBatch {
    /// The encoded delegation certificate (opaque to this module).
    pub certificate: Vec<u8>,
    /// At most [`MAX_BATCH_EVENTS`] events.
    pub events: Vec<Event>,
}

/// Why bytes are not a well-formed batch. Each malformed case has its own
/// variant, with a stable message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Larger than [`MAX_ENVELOPE_BYTES`], which no envelope's content can be
    /// (checked before any decoding).
    #[error("batch is {0} bytes, over the {MAX_ENVELOPE_BYTES}-byte limit")]
    Oversize(usize),
    /// Not deterministic CBOR.
    #[error("batch CBOR: {0}")]
    Cbor(#[from] CborError),
    /// Not a map with known unsigned integer keys.
    #[error("batch structure: {0}")]
    Structure(#[from] MapError),
    /// A key appears twice in the batch map.
    #[error("batch key {0} appears twice")]
    DuplicateKey(u64),
    /// A required field is absent.
    #[error("batch field {0} is missing")]
    Missing(&'static str),
    /// A field has the wrong CBOR type.
    #[error("batch field {0} has the wrong type")]
    WrongType(&'static str),
    /// A schema string other than [`SCHEMA`] (shown up to 64 characters).
    #[error("unsupported batch schema {0:?}")]
    Schema(String),
    /// More than [`MAX_BATCH_EVENTS`] events.
    #[error("batch holds {0} events, over the {MAX_BATCH_EVENTS}-event limit")]
    TooManyEvents(usize),
    /// One event is malformed.
    #[error("batch event {index}: {source}")]
    Event {
        /// Its position in the batch, from 0.
        index: usize,
        /// What is wrong with it.
        source: EventError,
    },
}

impl TelemetryBatch {
    /// A batch of `events` under `certificate`.
    pub fn new(certificate: Vec<u8>, events: Vec<Event>) -> TelemetryBatch {
        TelemetryBatch { certificate, events }
    }

    /// Checks the rules decoding enforces (event count and every event),
    /// except the size limit, which depends on the encoding.
    pub fn validate(&self) -> Result<(), BatchError> {
        if self.events.len() > MAX_BATCH_EVENTS {
            return Err(BatchError::TooManyEvents(self.events.len()));
        }
        for (index, event) in self.events.iter().enumerate() {
            event.validate().map_err(|source| BatchError::Event { index, source })?;
        }
        Ok(())
    }

    /// The deterministic CBOR encoding. Limits are not checked here: call
    /// [`TelemetryBatch::validate`] first on a batch built by hand.
    pub fn encode(&self) -> Vec<u8> {
        // Room for typical events, so that the buffer rarely grows.
        let mut out = Vec::with_capacity(16 + self.certificate.len() + 512 * self.events.len());
        cbor::write_head(&mut out, major::MAP, 3);
        cbor::write_uint(&mut out, key::SCHEMA);
        cbor::write_text(&mut out, SCHEMA);
        cbor::write_uint(&mut out, key::CERTIFICATE);
        cbor::write_bytes(&mut out, &self.certificate);
        cbor::write_uint(&mut out, key::EVENTS);
        cbor::write_head(&mut out, major::ARRAY, self.events.len() as u64);
        let mut scratch = Vec::new();
        for event in &self.events {
            event.write_cbor(&mut out, &mut scratch);
        }
        out
    }

    /// Strictly decodes a batch: size first, then deterministic CBOR, known
    /// keys, schema, event count, and every event.
    pub fn decode(bytes: &[u8]) -> Result<TelemetryBatch, BatchError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(BatchError::Oversize(bytes.len()));
        }
        if let Some(batch) = decode_valid(bytes) {
            return Ok(batch);
        }
        cbor::check(bytes, Duplicates::Allow)?;
        let mut r = Reader::new(bytes);
        let Item::Map(len) = r.next()? else {
            return Err(BatchError::Structure(MapError::NotAMap));
        };
        let mut seen = [false; key::ALL.len()];
        let mut duplicate = None;
        let mut schema: Slot<()> = None;
        let mut certificate: Slot<Vec<u8>> = None;
        let mut events: Slot<Vec<Event>> = None;
        for _ in 0..len {
            let Item::Uint(k) = r.next()? else {
                return Err(BatchError::Structure(MapError::BadKey));
            };
            let Some(seen) = usize::try_from(k).ok().and_then(|i| seen.get_mut(i)) else {
                return Err(BatchError::Structure(MapError::UnknownKey(k)));
            };
            if *seen {
                // Reported once every key is known to be valid.
                duplicate.get_or_insert(k);
                r.skip()?;
                continue;
            }
            *seen = true;
            match k {
                key::SCHEMA => schema = r.slot(read_schema)?,
                key::CERTIFICATE => certificate = r.slot(read_certificate)?,
                _ => events = r.slot(read_events)?,
            }
        }
        r.finish()?;
        if let Some(k) = duplicate {
            return Err(BatchError::DuplicateKey(k));
        }
        schema.ok_or(BatchError::Missing("schema"))??;
        let certificate = certificate.ok_or(BatchError::Missing("certificate"))??;
        let events = events.ok_or(BatchError::Missing("events"))??;
        Ok(TelemetryBatch { certificate, events })
    }
}

/// The fast path of decoding: a batch that is valid in every respect, read
/// in one pass; `None` at the first thing that is not (see [`Event::read_valid`]).
fn decode_valid(bytes: &[u8]) -> Option<TelemetryBatch> {
    let mut r = Reader::new(bytes);
    if r.next().ok()? != Item::Map(3) || r.next().ok()? != Item::Uint(key::SCHEMA) {
        return None;
    }
    if r.next().ok()? != Item::Text(SCHEMA.as_bytes())
        || r.next().ok()? != Item::Uint(key::CERTIFICATE)
    {
        return None;
    }
    let Item::Bytes(certificate) = r.next().ok()? else {
        return None;
    };
    if r.next().ok()? != Item::Uint(key::EVENTS) {
        return None;
    }
    let Item::Array(len) = r.next().ok()? else {
        return None;
    };
    let len = usize::try_from(len).ok().filter(|len| *len <= MAX_BATCH_EVENTS)?;
    let mut events = Vec::with_capacity(len);
    for _ in 0..len {
        events.push(Event::read_valid(&mut r)?);
    }
    r.at_end().then(|| TelemetryBatch { certificate: certificate.to_vec(), events })
}

/// A field as read, kept until every key has been seen.
type Slot<T> = Option<Result<T, BatchError>>;

fn read_schema(r: &mut Reader<'_>) -> Result<(), BatchError> {
    match r.next()? {
        Item::Text(s) if s == SCHEMA.as_bytes() => Ok(()),
        Item::Text(s) => Err(BatchError::Schema(cbor::text(s)?.chars().take(64).collect())),
        _ => Err(BatchError::WrongType("schema")),
    }
}

fn read_certificate(r: &mut Reader<'_>) -> Result<Vec<u8>, BatchError> {
    match r.next()? {
        Item::Bytes(b) => Ok(b.to_vec()),
        _ => Err(BatchError::WrongType("certificate")),
    }
}

fn read_events(r: &mut Reader<'_>) -> Result<Vec<Event>, BatchError> {
    let Item::Array(len) = r.next()? else {
        return Err(BatchError::WrongType("events"));
    };
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len > MAX_BATCH_EVENTS {
        return Err(BatchError::TooManyEvents(len));
    }
    let mut events = Vec::with_capacity(len);
    for index in 0..len {
        events.push(Event::read_cbor(r).map_err(|source| BatchError::Event { index, source })?);
    }
    Ok(events)
}
