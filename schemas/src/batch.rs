//! The telemetry batch (DESIGN.md §3.2): the signed content of an envelope.
//!
//! `{0: "vouch/1", 1: delegation certificate bytes, 2: [* event]}` in
//! deterministic CBOR (rule `telemetry-batch` of `schemas/telemetry.cddl`).
//! The certificate rides in every batch so that any verifier can check any
//! message without a lookup; it is opaque here.
//!
//! [`TelemetryBatch::encode`] encodes a batch whose events are at hand;
//! [`BatchWriter`] builds the same bytes one encoded event at a time and
//! knows their exact size before each event goes in (the SDK's publisher
//! fills envelopes up to a byte limit with it).

use crate::cbor::{self, CborError, Duplicates, Item, MapError, Reader, major};
use crate::event::{Event, EventError, EventRef};
use crate::event_view::EventLayout;
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
        write_prefix(&mut out, &self.certificate);
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
        check_size(bytes)?;
        match Layout::read_valid(bytes) {
            Some(layout) => Ok(layout.to_batch(bytes)),
            None => decode_exact(bytes),
        }
    }
}

/// A batch decoded for reading: its bytes, kept, and where each event's
/// fields lie in them. Decoding accepts and refuses exactly what
/// [`TelemetryBatch::decode`] does, but allocates nothing per event; the
/// events are read in place ([`DecodedBatch::events`]). What a verifier
/// holds for every accepted envelope until its SLA engines have read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBatch {
    bytes: Vec<u8>,
    layout: Layout,
}

impl DecodedBatch {
    /// Strictly decodes a batch, as [`TelemetryBatch::decode`] does, and
    /// keeps a copy of its bytes.
    pub fn decode(bytes: &[u8]) -> Result<DecodedBatch, BatchError> {
        check_size(bytes)?;
        match Layout::read_valid(bytes) {
            Some(layout) => Ok(DecodedBatch { bytes: bytes.to_vec(), layout }),
            // The fast path accepts every batch the exact one does (the
            // batch fuzz target asserts it), so the exact path only says
            // why; a batch it accepted all the same is refused as a bug.
            None => Err(decode_exact(bytes)
                .err()
                .unwrap_or(BatchError::Cbor(CborError::Malformed(cbor::Malformed::ReadBack)))),
        }
    }

    /// The encoded delegation certificate.
    pub fn certificate(&self) -> &[u8] {
        self.bytes.get(self.layout.certificate.clone()).unwrap_or_default()
    }

    /// How many events it holds.
    pub fn len(&self) -> usize {
        self.layout.events.len()
    }

    /// Whether it holds no event.
    pub fn is_empty(&self) -> bool {
        self.layout.events.is_empty()
    }

    /// Its events, read in place, in order.
    pub fn events(&self) -> impl ExactSizeIterator<Item = EventRef<'_>> + '_ {
        self.layout.events.iter().map(|e| e.view(&self.bytes, &self.layout.texts))
    }

    /// The batch with owned events (for a reader that keeps them).
    pub fn to_batch(&self) -> TelemetryBatch {
        self.layout.to_batch(&self.bytes)
    }
}

/// Where a valid batch's certificate and events lie in its bytes, and its
/// events' header texts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Layout {
    certificate: std::ops::Range<usize>,
    events: Vec<EventLayout>,
    /// Every event's header texts, one after another (see
    /// [`EventLayout::read_valid`]).
    texts: String,
}

impl Layout {
    /// The fast path of decoding: a batch that is valid in every respect,
    /// read in one pass; `None` at the first thing that is not (see
    /// [`EventLayout::read_valid`]).
    fn read_valid(bytes: &[u8]) -> Option<Layout> {
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
        let certificate = r.position() - certificate.len()..r.position();
        if r.next().ok()? != Item::Uint(key::EVENTS) {
            return None;
        }
        let Item::Array(len) = r.next().ok()? else {
            return None;
        };
        let len = usize::try_from(len).ok().filter(|len| *len <= MAX_BATCH_EVENTS)?;
        let mut events = Vec::with_capacity(len);
        // Room for go-livepeer's usual header (a subtype, two or three ids
        // and a model), and never more than the bytes hold.
        let mut texts = String::with_capacity((len * 96).min(bytes.len()));
        for _ in 0..len {
            events.push(EventLayout::read_valid(&mut r, &mut texts)?);
        }
        r.at_end().then_some(Layout { certificate, events, texts })
    }

    /// The batch, owned, from the bytes it was read from.
    fn to_batch(&self, bytes: &[u8]) -> TelemetryBatch {
        TelemetryBatch {
            certificate: bytes.get(self.certificate.clone()).unwrap_or_default().to_vec(),
            events: self.events.iter().map(|e| e.to_event(bytes, &self.texts)).collect(),
        }
    }
}

/// No envelope's content is larger than [`MAX_ENVELOPE_BYTES`]: checked
/// before any decoding.
fn check_size(bytes: &[u8]) -> Result<(), BatchError> {
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(BatchError::Oversize(bytes.len()));
    }
    Ok(())
}

/// The exact path of decoding: reports the first problem of a batch the
/// fast path gave up on, in the order the format defines.
fn decode_exact(bytes: &[u8]) -> Result<TelemetryBatch, BatchError> {
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
        let Some(k) = r.map_key::<BatchError>(&mut seen, &mut duplicate)? else { continue };
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

/// Appends the start of a batch's encoding, up to its events array:
/// `{0: "vouch/1", 1: certificate, 2: ` (keys in order, as deterministic
/// CBOR wants them). The array's head and the events follow.
fn write_prefix(out: &mut Vec<u8>, certificate: &[u8]) {
    cbor::write_head(out, major::MAP, 3);
    cbor::write_uint(out, key::SCHEMA);
    cbor::write_text(out, SCHEMA);
    cbor::write_uint(out, key::CERTIFICATE);
    cbor::write_bytes(out, certificate);
    cbor::write_uint(out, key::EVENTS);
}

/// Builds a batch's encoding one encoded event at a time.
///
/// A publisher that fills envelopes up to a byte limit must know, before an
/// event goes in, how large the batch would be with it. The encoding is the
/// certificate's prefix (written once, in [`BatchWriter::new`]), the events
/// array's head, whose length grows with the event count, then the events
/// back to back; [`BatchWriter::would_fit`] counts all three exactly, and
/// [`BatchWriter::finish`] returns the bytes [`TelemetryBatch::encode`]
/// writes for the same certificate and events.
///
/// ```
/// use vouch_schema::batch::BatchWriter;
/// use vouch_schema::{Event, TelemetryBatch};
///
/// let event = Event::from_type_and_data("probe", serde_json::json!({}), 1)?;
/// let mut writer = BatchWriter::new(b"certificate");
/// let encoded = event.encode();
/// assert!(writer.would_fit(encoded.len(), 64 * 1024));
/// writer.push(&encoded);
/// let size = writer.encoded_len();
/// let bytes = writer.finish();
/// assert_eq!(bytes.len(), size);
/// assert_eq!(bytes, TelemetryBatch::new(b"certificate".to_vec(), vec![event]).encode());
/// assert!(writer.is_empty());
/// # Ok::<(), vouch_schema::EventError>(())
/// ```
#[derive(Debug, Clone)]
pub struct BatchWriter {
    /// The encoding up to the events array: see [`write_prefix`].
    prefix: Vec<u8>,
    /// The encoded events pushed since the last [`BatchWriter::finish`].
    events: Vec<u8>,
    /// How many events `events` holds.
    len: usize,
}

impl BatchWriter {
    /// An empty batch under `certificate` (the encoded delegation certificate).
    pub fn new(certificate: &[u8]) -> BatchWriter {
        BatchWriter::with_capacity(certificate, 0)
    }

    /// As [`BatchWriter::new`], with room for `capacity` bytes of events
    /// reserved up front (a publisher reserves its batch size limit, so the
    /// buffer never grows while it fills).
    pub fn with_capacity(certificate: &[u8], capacity: usize) -> BatchWriter {
        let mut prefix = Vec::with_capacity(16 + certificate.len());
        write_prefix(&mut prefix, certificate);
        BatchWriter { prefix, events: Vec::with_capacity(capacity), len: 0 }
    }

    /// The number of events pushed since the last [`BatchWriter::finish`].
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no event has been pushed since the last [`BatchWriter::finish`].
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The exact length of the bytes [`BatchWriter::finish`] would return now.
    #[inline]
    pub fn encoded_len(&self) -> usize {
        self.size(self.len, self.events.len())
    }

    /// Whether one more event of `event_bytes` encoded bytes keeps the batch
    /// within `max_bytes` bytes and [`MAX_BATCH_EVENTS`] events. Exact: the
    /// batch after [`BatchWriter::push`] is at most `max_bytes` long if and
    /// only if this says so (and the event count allows it).
    #[inline]
    pub fn would_fit(&self, event_bytes: usize, max_bytes: usize) -> bool {
        self.len < MAX_BATCH_EVENTS
            && self.size(self.len + 1, self.events.len().saturating_add(event_bytes)) <= max_bytes
    }

    /// Appends one event's encoding, as [`Event::encode`] writes it. The
    /// bytes are copied as they are: push only the encoding of an event that
    /// passes [`Event::validate`], or the batch will not decode. Check the
    /// limits first with [`BatchWriter::would_fit`]; this does not.
    #[inline]
    pub fn push(&mut self, encoded_event: &[u8]) {
        self.events.extend_from_slice(encoded_event);
        self.len += 1;
    }

    /// The batch's encoding, byte for byte what [`TelemetryBatch::encode`]
    /// writes for the same certificate and events. The writer is left empty,
    /// under the same certificate, for the next batch.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.finish_into(&mut out);
        out
    }

    /// [`BatchWriter::finish`] into `out` (emptied first), so that a writer
    /// sealing batch after batch can reuse their buffers.
    pub fn finish_into(&mut self, out: &mut Vec<u8>) {
        out.clear();
        out.reserve_exact(self.encoded_len());
        out.extend_from_slice(&self.prefix);
        cbor::write_head(out, major::ARRAY, self.len as u64);
        out.extend_from_slice(&self.events);
        self.events.clear();
        self.len = 0;
    }

    /// The length of a batch of `events` events of `event_bytes` bytes in all.
    #[inline]
    fn size(&self, events: usize, event_bytes: usize) -> usize {
        self.prefix.len().saturating_add(cbor::head_len(events as u64)).saturating_add(event_bytes)
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::event::testing::arb_event;
    use proptest::prelude::*;

    /// Pushes `events` into a writer, checking at each step that the size it
    /// predicted is the size it then has.
    fn write(certificate: &[u8], events: &[Event]) -> Vec<u8> {
        let mut writer = BatchWriter::new(certificate);
        for event in events {
            let encoded = event.encode();
            let predicted = writer.size(writer.len() + 1, writer.events.len() + encoded.len());
            assert!(writer.would_fit(encoded.len(), predicted));
            assert!(!writer.would_fit(encoded.len(), predicted - 1));
            writer.push(&encoded);
            assert_eq!(writer.encoded_len(), predicted);
        }
        assert_eq!(writer.len(), events.len());
        let size = writer.encoded_len();
        let bytes = writer.finish();
        assert_eq!(bytes.len(), size);
        assert!(writer.is_empty());
        bytes
    }

    /// Every width of the certificate's and the events array's heads.
    #[test]
    fn writer_matches_the_encoder_across_head_widths() {
        for (cert_len, n) in [(0, 0), (5, 1), (300, 23), (300, 24), (70_000, 300)] {
            let cert = vec![0xab; cert_len];
            let events: Vec<Event> = (0..n)
                .map(|i| {
                    Event::from_type_and_data("probe", serde_json::json!({"i": i}), 1).unwrap()
                })
                .collect();
            let expected = TelemetryBatch::new(cert.clone(), events.clone()).encode();
            assert_eq!(write(&cert, &events), expected, "{cert_len} {n}");
        }
    }

    #[test]
    fn writer_is_reusable_and_counts_events() {
        let event = Event::from_type_and_data("probe", serde_json::json!({}), 1).unwrap();
        let encoded = event.encode();
        let mut writer = BatchWriter::with_capacity(b"cert", 1024);
        let empty = writer.finish();
        assert_eq!(empty, TelemetryBatch::new(b"cert".to_vec(), vec![]).encode());
        for _ in 0..MAX_BATCH_EVENTS {
            assert!(writer.would_fit(encoded.len(), usize::MAX));
            writer.push(&encoded);
        }
        assert!(!writer.would_fit(0, usize::MAX), "over the event limit");
        let full = writer.finish();
        let batch = TelemetryBatch::decode(&full);
        assert_eq!(batch.map(|b| b.events.len()), Ok(MAX_BATCH_EVENTS));
        writer.push(&encoded);
        assert_eq!(writer.finish(), TelemetryBatch::new(b"cert".to_vec(), vec![event]).encode());
    }

    /// The view of `event` read in place says what the owned event says.
    fn assert_same_view(view: EventRef<'_>, event: &Event) {
        let owned = event.view();
        assert_eq!(view.family, owned.family);
        assert_eq!(view.ts, owned.ts);
        let texts = |v: EventRef<'_>| {
            [v.subtype, v.stream_id, v.request_id, v.manifest_id, v.pipeline_id, v.model_id]
                .map(|t| t.map(str::to_owned))
        };
        assert_eq!(texts(view), texts(owned));
        assert_eq!(view.gateway_region, owned.gateway_region);
        assert_eq!((view.orchestrator, view.origin), (owned.orchestrator, owned.origin));
        assert_eq!(view.data.tree(), owned.data.tree());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// A batch decoded for reading accepts and refuses what the owned
        /// decoder does, with the same error, and its events read in place
        /// as the owned ones, on valid batches and on damaged copies.
        #[test]
        fn decoded_batches_read_as_owned_ones(
            events in prop::collection::vec(arb_event(), 0..12),
            certificate in prop::collection::vec(any::<u8>(), 0..40),
            damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        ) {
            let valid = TelemetryBatch::new(certificate, events).encode();
            let mut damaged = valid.clone();
            for (at, byte) in &damage {
                if !damaged.is_empty() {
                    let i = at.index(damaged.len());
                    damaged[i] = *byte;
                }
            }
            for bytes in [valid, damaged] {
                let owned = TelemetryBatch::decode(&bytes);
                let decoded = DecodedBatch::decode(&bytes);
                match (&owned, &decoded) {
                    (Ok(owned), Ok(decoded)) => {
                        prop_assert_eq!(&decoded.to_batch(), owned);
                        prop_assert_eq!(decoded.certificate(), owned.certificate.as_slice());
                        prop_assert_eq!(decoded.len(), owned.events.len());
                        for (view, event) in decoded.events().zip(&owned.events) {
                            assert_same_view(view, event);
                        }
                    }
                    (Err(a), Err(b)) => prop_assert_eq!(a, b),
                    _ => prop_assert!(false, "owned {:?}, decoded {:?}", owned, decoded),
                }
            }
        }

        /// The writer's bytes are the encoder's, and its size prediction is
        /// exact, for any events (valid or not) and certificate.
        #[test]
        fn writer_matches_the_encoder(
            events in prop::collection::vec(arb_event(), 0..30),
            certificate in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            let bytes = write(&certificate, &events);
            prop_assert_eq!(bytes, TelemetryBatch::new(certificate, events).encode());
        }
    }
}
