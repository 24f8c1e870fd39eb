//! The telemetry batch (DESIGN.md §3.2): the signed content of an envelope.
//!
//! `{0: "vouch/1", 1: delegation certificate bytes, 2: [* event]}` in
//! deterministic CBOR (rule `telemetry-batch` of `schemas/telemetry.cddl`).
//! The certificate rides in every batch so that any verifier can check any
//! message without a lookup; it is opaque here.

use ciborium::Value as Cbor;

use crate::cbor::{self, CborError, MapError};
use crate::event::{Event, EventError};
use crate::limits::{MAX_BATCH_EVENTS, MAX_ENVELOPE_BYTES};

/// The schema string of this version of the format.
pub const SCHEMA: &str = "vouch/1";

/// Integer keys of the batch map. They never change meaning.
mod key {
    pub(super) const SCHEMA: u64 = 0;
    pub(super) const CERTIFICATE: u64 = 1;
    pub(super) const EVENTS: u64 = 2;
    pub(super) const ALL: [u64; 3] = [0, 1, 2];
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
        let events = self.events.iter().map(Event::to_cbor).collect();
        cbor::to_vec(&Cbor::Map(vec![
            (uint(key::SCHEMA), Cbor::Text(SCHEMA.to_owned())),
            (uint(key::CERTIFICATE), Cbor::Bytes(self.certificate.clone())),
            (uint(key::EVENTS), Cbor::Array(events)),
        ]))
    }

    /// Strictly decodes a batch: size first, then deterministic CBOR, known
    /// keys, schema, event count, and every event.
    pub fn decode(bytes: &[u8]) -> Result<TelemetryBatch, BatchError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(BatchError::Oversize(bytes.len()));
        }
        let mut slots: [Option<Cbor>; 3] = Default::default();
        for (k, v) in cbor::int_keyed_map(cbor::from_slice(bytes)?, &key::ALL)? {
            let slot = &mut slots[k as usize];
            if slot.is_some() {
                return Err(BatchError::DuplicateKey(k));
            }
            *slot = Some(v);
        }
        let [schema, certificate, events] = slots;
        match schema {
            Some(Cbor::Text(s)) if s == SCHEMA => {}
            Some(Cbor::Text(s)) => return Err(BatchError::Schema(s.chars().take(64).collect())),
            Some(_) => return Err(BatchError::WrongType("schema")),
            None => return Err(BatchError::Missing("schema")),
        }
        let certificate = match certificate {
            Some(Cbor::Bytes(b)) => b,
            Some(_) => return Err(BatchError::WrongType("certificate")),
            None => return Err(BatchError::Missing("certificate")),
        };
        let events = match events {
            Some(Cbor::Array(items)) => items,
            Some(_) => return Err(BatchError::WrongType("events")),
            None => return Err(BatchError::Missing("events")),
        };
        if events.len() > MAX_BATCH_EVENTS {
            return Err(BatchError::TooManyEvents(events.len()));
        }
        let events = events
            .into_iter()
            .enumerate()
            .map(|(index, v)| {
                Event::from_cbor(v).map_err(|source| BatchError::Event { index, source })
            })
            .collect::<Result<_, _>>()?;
        Ok(TelemetryBatch { certificate, events })
    }
}

fn uint(v: u64) -> Cbor {
    Cbor::Integer(v.into())
}
