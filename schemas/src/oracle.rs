//! The codec that the byte-level one replaced, kept as the one oracle of
//! the differential tests (this crate's) and fuzz targets (`fuzz/`): values
//! through `ciborium::Value`, deterministic encoding by sorting a deep copy
//! and letting ciborium write it, strict decoding by decoding with ciborium,
//! re-encoding and comparing. [`crate::cbor`] documents the one intended
//! difference: a repeated map key is rejected ([`cbor::from_slice_unique`]
//! adds that rule to the old reader).
//!
//! Compiled for this crate's tests and with the non-default `oracle` feature
//! (which only the fuzz crate turns on); no production code calls it. If
//! the wire format changes on purpose, change it too.

/// The old [`crate::cbor`] codec.
pub mod cbor {
    use crate::SharedError;
    use crate::cbor::{CborError, MAX_DEPTH, Malformed};
    use ciborium::Value;

    /// The old `cbor::to_vec`: sort a deep copy, let ciborium write it.
    pub fn to_vec(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = ciborium::into_writer(&canonicalize(value), &mut out) {
            unreachable!("CBOR encoding into memory failed: {e}");
        }
        out
    }

    /// The old `cbor::from_slice` (decode with ciborium, re-encode,
    /// compare), which accepted repeated map keys.
    pub fn from_slice(bytes: &[u8]) -> Result<Value, CborError> {
        let mut reader = bytes;
        let value: Value =
            ciborium::de::from_reader_with_recursion_limit(&mut reader, MAX_DEPTH)
                .map_err(|e| CborError::Malformed(Malformed::Decoder(SharedError::new_dyn(e))))?;
        if !reader.is_empty() {
            return Err(CborError::TrailingBytes);
        }
        if to_vec(&value) != bytes {
            return Err(CborError::NonCanonical);
        }
        Ok(value)
    }

    /// The old `from_slice` plus the rule it missed: no map holds a key twice.
    pub fn from_slice_unique(bytes: &[u8]) -> Result<Value, CborError> {
        let value = from_slice(bytes)?;
        if has_repeated_key(&value) {
            return Err(CborError::NonCanonical);
        }
        Ok(value)
    }

    fn has_repeated_key(value: &Value) -> bool {
        match value {
            Value::Array(items) => items.iter().any(has_repeated_key),
            Value::Map(entries) => {
                entries.windows(2).any(|w| to_vec(&w[0].0) == to_vec(&w[1].0))
                    || entries.iter().any(|(k, v)| has_repeated_key(k) || has_repeated_key(v))
            }
            Value::Tag(_, inner) => has_repeated_key(inner),
            _ => false,
        }
    }

    fn canonicalize(value: &Value) -> Value {
        match value {
            Value::Array(items) => Value::Array(items.iter().map(canonicalize).collect()),
            Value::Map(entries) => {
                let mut keyed: Vec<(Vec<u8>, Value, Value)> = entries
                    .iter()
                    .map(|(k, v)| {
                        let k = canonicalize(k);
                        let mut kb = Vec::new();
                        if let Err(e) = ciborium::into_writer(&k, &mut kb) {
                            unreachable!("CBOR encoding into memory failed: {e}");
                        }
                        (kb, k, canonicalize(v))
                    })
                    .collect();
                keyed.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Map(keyed.into_iter().map(|(_, k, v)| (k, v)).collect())
            }
            Value::Tag(tag, inner) => Value::Tag(*tag, Box::new(canonicalize(inner))),
            other => other.clone(),
        }
    }
}

/// The old event codec: an [`Event`](crate::Event) through a
/// `ciborium::Value`. Errors are the typed [`EventError`](crate::EventError)s
/// the direct decoder returns, so that tests compare them exactly.
pub mod event {
    use ciborium::Value as Cbor;
    use serde_json::{Map, Number, Value as Json};

    use crate::Address;
    use crate::cbor;
    use crate::event::{
        Event, EventError, MAX_FIELD_LEN, MAX_JSON_DEPTH, Origin, check_text, family_from_name, key,
    };

    /// The old `Event::encode`.
    pub fn encode(event: &Event) -> Vec<u8> {
        super::cbor::to_vec(&to_cbor(event))
    }

    /// The old `Event::decode`.
    pub fn decode(bytes: &[u8]) -> Result<Event, EventError> {
        from_cbor(super::cbor::from_slice(bytes)?)
    }

    /// The old `Event::to_cbor`: the event as a CBOR value (map entries in
    /// any order; the encoder sorts).
    pub fn to_cbor(this: &Event) -> Cbor {
        let mut entries = vec![
            (uint(key::FAMILY), Cbor::Text(this.family.as_str().to_owned())),
            (uint(key::DATA), json_to_cbor(&this.data)),
        ];
        if let Some(ts) = this.ts {
            entries.push((uint(key::TS), uint(ts)));
        }
        let texts = [
            (key::SUBTYPE, &this.subtype),
            (key::STREAM_ID, &this.stream_id),
            (key::REQUEST_ID, &this.request_id),
            (key::MANIFEST_ID, &this.manifest_id),
            (key::PIPELINE_ID, &this.pipeline_id),
            (key::MODEL_ID, &this.model_id),
        ];
        for (k, text) in texts {
            if let Some(text) = text {
                entries.push((uint(k), Cbor::Text(text.clone())));
            }
        }
        if let Some(orchestrator) = this.orchestrator {
            entries.push((uint(key::ORCHESTRATOR), Cbor::Bytes(orchestrator.0.to_vec())));
        }
        if let Some(region) = &this.gateway_region {
            entries.push((uint(key::GATEWAY_REGION), Cbor::Text(region.clone())));
        }
        if let Some(origin) = this.origin {
            entries.push((uint(key::ORIGIN), uint(origin.code())));
        }
        if let Some(envelope) = &this.kafka_envelope {
            let members = envelope
                .iter()
                .map(|(name, value)| (Cbor::Text(name.clone()), json_to_cbor(value)))
                .collect();
            entries.push((uint(key::KAFKA), Cbor::Map(members)));
        }
        Cbor::Map(entries)
    }

    /// The old `Event::from_cbor`: strictly converts a decoded CBOR value
    /// into an event.
    pub fn from_cbor(value: Cbor) -> Result<Event, EventError> {
        let mut slots: [Option<Cbor>; 13] = Default::default();
        for (k, v) in cbor::int_keyed_map(value, &key::ALL)? {
            let slot = &mut slots[k as usize];
            if slot.is_some() {
                return Err(EventError::DuplicateKey(k));
            }
            *slot = Some(v);
        }
        let mut take = |k: u64| slots[k as usize].take();
        let name = |k: u64| key::NAMES[k as usize];

        let family = match take(key::FAMILY) {
            Some(Cbor::Text(t)) => family_from_name(&t, name(key::FAMILY))?,
            Some(_) => return Err(EventError::WrongType(name(key::FAMILY))),
            None => return Err(EventError::Missing(name(key::FAMILY))),
        };
        let data = cbor_to_json(take(key::DATA).ok_or(EventError::Missing(name(key::DATA)))?)?;
        let ts = match take(key::TS) {
            None => None,
            Some(Cbor::Integer(i)) => {
                Some(u64::try_from(i).map_err(|_| EventError::WrongType(name(key::TS)))?)
            }
            Some(_) => return Err(EventError::WrongType(name(key::TS))),
        };
        let mut text = |k: u64| -> Result<Option<String>, EventError> {
            match take(k) {
                None => Ok(None),
                Some(Cbor::Text(t)) => {
                    check_text(&t, name(k), MAX_FIELD_LEN)?;
                    Ok(Some(t))
                }
                Some(_) => Err(EventError::WrongType(name(k))),
            }
        };
        let subtype = text(key::SUBTYPE)?;
        let stream_id = text(key::STREAM_ID)?;
        let request_id = text(key::REQUEST_ID)?;
        let manifest_id = text(key::MANIFEST_ID)?;
        let pipeline_id = text(key::PIPELINE_ID)?;
        let model_id = text(key::MODEL_ID)?;
        let gateway_region = text(key::GATEWAY_REGION)?;
        let orchestrator = match take(key::ORCHESTRATOR) {
            None => None,
            Some(Cbor::Bytes(b)) => {
                Some(Address::from_slice(&b).ok_or(EventError::WrongLength {
                    field: name(key::ORCHESTRATOR),
                    expected: 20,
                    actual: b.len(),
                })?)
            }
            Some(_) => return Err(EventError::WrongType(name(key::ORCHESTRATOR))),
        };
        let origin = match take(key::ORIGIN) {
            None => None,
            Some(Cbor::Integer(i)) => {
                let code =
                    u64::try_from(i).map_err(|_| EventError::WrongType(name(key::ORIGIN)))?;
                Some(Origin::from_code(code).ok_or(EventError::UnknownOrigin(code))?)
            }
            Some(_) => return Err(EventError::WrongType(name(key::ORIGIN))),
        };
        let kafka_envelope = match take(key::KAFKA) {
            None => None,
            Some(Cbor::Map(members)) => {
                let mut envelope = Map::new();
                for (k, v) in members {
                    let Cbor::Text(member) = k else {
                        return Err(EventError::WrongType(name(key::KAFKA)));
                    };
                    if member == "type" || member == "data" {
                        return Err(EventError::ReservedMember(member));
                    }
                    let value = cbor_to_json(v)?;
                    if envelope.contains_key(&member) {
                        return Err(EventError::DuplicateJsonKey(member));
                    }
                    envelope.insert(member, value);
                }
                Some(envelope)
            }
            Some(_) => return Err(EventError::WrongType(name(key::KAFKA))),
        };
        Ok(Event {
            family,
            ts,
            subtype,
            stream_id,
            request_id,
            manifest_id,
            pipeline_id,
            model_id,
            orchestrator,
            gateway_region,
            origin,
            data: data.into(),
            kafka_envelope: kafka_envelope.map(Into::into),
        })
    }

    fn uint(v: u64) -> Cbor {
        Cbor::Integer(v.into())
    }

    /// A JSON value as CBOR: integers as CBOR integers, floats as CBOR floats
    /// (the shortest lossless head, written by the encoder).
    fn json_to_cbor(v: &Json) -> Cbor {
        match v {
            Json::Null => Cbor::Null,
            Json::Bool(b) => Cbor::Bool(*b),
            Json::Number(n) => {
                if let Some(u) = n.as_u64() {
                    uint(u)
                } else if let Some(i) = n.as_i64() {
                    Cbor::Integer(i.into())
                } else {
                    // serde_json numbers are u64, i64 or finite f64.
                    Cbor::Float(n.as_f64().unwrap_or(0.0))
                }
            }
            Json::String(s) => Cbor::Text(s.clone()),
            Json::Array(items) => Cbor::Array(items.iter().map(json_to_cbor).collect()),
            Json::Object(map) => Cbor::Map(
                map.iter().map(|(k, v)| (Cbor::Text(k.clone()), json_to_cbor(v))).collect(),
            ),
        }
    }

    /// Strictly converts a CBOR value in the JSON subset back to JSON.
    fn cbor_to_json(v: Cbor) -> Result<Json, EventError> {
        fn convert(v: Cbor, left: usize) -> Result<Json, EventError> {
            Ok(match v {
                Cbor::Null => Json::Null,
                Cbor::Bool(b) => Json::Bool(b),
                Cbor::Integer(i) => {
                    let i = i128::from(i);
                    if let Ok(u) = u64::try_from(i) {
                        Json::Number(u.into())
                    } else if let Ok(s) = i64::try_from(i) {
                        Json::Number(s.into())
                    } else {
                        return Err(EventError::NotJson("integer outside the 64-bit range"));
                    }
                }
                Cbor::Float(f) => Json::Number(
                    Number::from_f64(f).ok_or(EventError::NotJson("non-finite float"))?,
                ),
                Cbor::Text(s) => Json::String(s),
                Cbor::Array(items) => {
                    let left = left.checked_sub(1).ok_or(EventError::TooDeep)?;
                    Json::Array(
                        items.into_iter().map(|i| convert(i, left)).collect::<Result<_, _>>()?,
                    )
                }
                Cbor::Map(entries) => {
                    let left = left.checked_sub(1).ok_or(EventError::TooDeep)?;
                    let mut map = Map::new();
                    for (k, v) in entries {
                        let Cbor::Text(k) = k else {
                            return Err(EventError::NotJson("map key that is not text"));
                        };
                        let v = convert(v, left)?;
                        if map.contains_key(&k) {
                            return Err(EventError::DuplicateJsonKey(k));
                        }
                        map.insert(k, v);
                    }
                    Json::Object(map)
                }
                Cbor::Bytes(_) => return Err(EventError::NotJson("byte string")),
                Cbor::Tag(..) => return Err(EventError::NotJson("tag")),
                _ => return Err(EventError::NotJson("simple value")),
            })
        }
        convert(v, MAX_JSON_DEPTH)
    }
}

/// The old [`TelemetryBatch`](crate::TelemetryBatch) codec, on top of [`event`].
pub mod batch {
    use ciborium::Value as Cbor;

    use super::event::{from_cbor, to_cbor};
    use crate::batch::{BatchError, SCHEMA, TelemetryBatch, key};
    use crate::cbor;
    use crate::limits::{MAX_BATCH_EVENTS, MAX_ENVELOPE_BYTES};

    fn uint(v: u64) -> Cbor {
        Cbor::Integer(v.into())
    }

    /// The old `TelemetryBatch::encode`.
    pub fn encode(batch: &TelemetryBatch) -> Vec<u8> {
        let events = batch.events.iter().map(to_cbor).collect();
        super::cbor::to_vec(&Cbor::Map(vec![
            (uint(key::SCHEMA), Cbor::Text(SCHEMA.to_owned())),
            (uint(key::CERTIFICATE), Cbor::Bytes(batch.certificate.clone())),
            (uint(key::EVENTS), Cbor::Array(events)),
        ]))
    }

    /// The old `TelemetryBatch::decode`.
    pub fn decode(bytes: &[u8]) -> Result<TelemetryBatch, BatchError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(BatchError::Oversize(bytes.len()));
        }
        let mut slots: [Option<Cbor>; 3] = Default::default();
        for (k, v) in cbor::int_keyed_map(super::cbor::from_slice(bytes)?, &key::ALL)? {
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
            .map(|(index, v)| from_cbor(v).map_err(|source| BatchError::Event { index, source }))
            .collect::<Result<_, _>>()?;
        Ok(TelemetryBatch { certificate, events })
    }
}
