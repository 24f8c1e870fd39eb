//! Oracles for the differential fuzz targets: the decoders as they were
//! before `vouch_schema::cbor` got its own byte-level checker and reader,
//! rebuilt here from public API and ciborium alone. `vouch_schema::cbor`
//! documents that the new checker accepts exactly what these accepted,
//! except that a repeated map key is now rejected (as it is here).

pub mod reference {
    use ciborium::Value as Cbor;
    use serde_json::{Map, Number, Value as Json};
    use vouch_schema::cbor::{CborError, MAX_DEPTH};
    use vouch_schema::event::{MAX_FAMILY_LEN, MAX_FIELD_LEN, MAX_JSON_DEPTH};
    use vouch_schema::{Address, Event, Family, Origin, TelemetryBatch};

    /// The old deterministic encoder: sort a deep copy, let ciborium write it.
    pub fn to_vec(value: &Cbor) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = ciborium::into_writer(&canonicalize(value), &mut out) {
            unreachable!("CBOR encoding into memory failed: {e}");
        }
        out
    }

    /// The old `cbor::from_slice` (decode with ciborium, re-encode, compare)
    /// plus the rule it missed: no map holds a key twice.
    pub fn cbor_from_slice(bytes: &[u8]) -> Result<Cbor, CborError> {
        let mut reader = bytes;
        let value: Cbor = ciborium::de::from_reader_with_recursion_limit(&mut reader, MAX_DEPTH)
            .map_err(|e| CborError::Malformed(e.to_string()))?;
        if !reader.is_empty() {
            return Err(CborError::TrailingBytes);
        }
        if to_vec(&value) != bytes || has_repeated_key(&value) {
            return Err(CborError::NonCanonical);
        }
        Ok(value)
    }

    fn has_repeated_key(value: &Cbor) -> bool {
        match value {
            Cbor::Array(items) => items.iter().any(has_repeated_key),
            Cbor::Map(entries) => {
                entries.windows(2).any(|w| to_vec(&w[0].0) == to_vec(&w[1].0))
                    || entries.iter().any(|(k, v)| has_repeated_key(k) || has_repeated_key(v))
            }
            Cbor::Tag(_, inner) => has_repeated_key(inner),
            _ => false,
        }
    }

    fn canonicalize(value: &Cbor) -> Cbor {
        match value {
            Cbor::Array(items) => Cbor::Array(items.iter().map(canonicalize).collect()),
            Cbor::Map(entries) => {
                let mut keyed: Vec<(Vec<u8>, Cbor, Cbor)> = entries
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
                Cbor::Map(keyed.into_iter().map(|(_, k, v)| (k, v)).collect())
            }
            Cbor::Tag(tag, inner) => Cbor::Tag(*tag, Box::new(canonicalize(inner))),
            other => other.clone(),
        }
    }

    /// Why the reference rejected an input (the reason is not compared).
    #[derive(Debug)]
    pub struct Rejected(pub &'static str);

    impl From<CborError> for Rejected {
        fn from(_: CborError) -> Rejected {
            Rejected("CBOR")
        }
    }

    /// The old `TelemetryBatch::decode`.
    pub fn batch_decode(bytes: &[u8]) -> Result<TelemetryBatch, Rejected> {
        if bytes.len() > vouch_schema::limits::MAX_ENVELOPE_BYTES {
            return Err(Rejected("oversize"));
        }
        let mut slots: [Option<Cbor>; 3] = Default::default();
        for (k, v) in int_keyed_map(cbor_from_slice(bytes)?, 3)? {
            if slots[k].replace(v).is_some() {
                return Err(Rejected("duplicate key"));
            }
        }
        let [schema, certificate, events] = slots;
        if !matches!(schema, Some(Cbor::Text(s)) if s == vouch_schema::batch::SCHEMA) {
            return Err(Rejected("schema"));
        }
        let Some(Cbor::Bytes(certificate)) = certificate else {
            return Err(Rejected("certificate"));
        };
        let Some(Cbor::Array(events)) = events else {
            return Err(Rejected("events"));
        };
        if events.len() > vouch_schema::limits::MAX_BATCH_EVENTS {
            return Err(Rejected("too many events"));
        }
        let events = events.into_iter().map(event_from_cbor).collect::<Result<_, _>>()?;
        Ok(TelemetryBatch::new(certificate, events))
    }

    /// The old `Event::decode`.
    pub fn event_decode(bytes: &[u8]) -> Result<Event, Rejected> {
        event_from_cbor(cbor_from_slice(bytes)?)
    }

    fn int_keyed_map(value: Cbor, known: usize) -> Result<Vec<(usize, Cbor)>, Rejected> {
        let Cbor::Map(entries) = value else { return Err(Rejected("not a map")) };
        entries
            .into_iter()
            .map(|(k, v)| match k {
                Cbor::Integer(i) => match u64::try_from(i) {
                    Ok(k) if k < known as u64 => Ok((k as usize, v)),
                    _ => Err(Rejected("key")),
                },
                _ => Err(Rejected("key")),
            })
            .collect()
    }

    fn text(t: Option<Cbor>, max: usize) -> Result<Option<String>, Rejected> {
        match t {
            None => Ok(None),
            Some(Cbor::Text(t)) if !t.is_empty() && t.len() <= max => Ok(Some(t)),
            Some(_) => Err(Rejected("text field")),
        }
    }

    fn uint(v: Option<Cbor>) -> Result<Option<u64>, Rejected> {
        match v {
            None => Ok(None),
            Some(Cbor::Integer(i)) => u64::try_from(i).map(Some).map_err(|_| Rejected("uint")),
            Some(_) => Err(Rejected("uint")),
        }
    }

    /// The old `Event::from_cbor`.
    pub fn event_from_cbor(value: Cbor) -> Result<Event, Rejected> {
        let mut slots: [Option<Cbor>; 13] = Default::default();
        for (k, v) in int_keyed_map(value, 13)? {
            if slots[k].replace(v).is_some() {
                return Err(Rejected("duplicate key"));
            }
        }
        let mut take = |k: usize| slots[k].take();
        let family = text(take(0), MAX_FAMILY_LEN)?.ok_or(Rejected("family"))?;
        let data = cbor_to_json(take(1).ok_or(Rejected("data"))?)?;
        let ts = uint(take(2))?;
        let subtype = text(take(3), MAX_FIELD_LEN)?;
        let stream_id = text(take(4), MAX_FIELD_LEN)?;
        let request_id = text(take(5), MAX_FIELD_LEN)?;
        let manifest_id = text(take(6), MAX_FIELD_LEN)?;
        let pipeline_id = text(take(7), MAX_FIELD_LEN)?;
        let model_id = text(take(8), MAX_FIELD_LEN)?;
        let gateway_region = text(take(10), MAX_FIELD_LEN)?;
        let orchestrator = match take(9) {
            None => None,
            Some(Cbor::Bytes(b)) => Some(Address::from_slice(&b).ok_or(Rejected("orchestrator"))?),
            Some(_) => return Err(Rejected("orchestrator")),
        };
        let origin = match uint(take(11))? {
            None => None,
            Some(code) => Some(Origin::from_code(code).ok_or(Rejected("origin"))?),
        };
        let kafka_envelope = match take(12) {
            None => None,
            Some(Cbor::Map(members)) => {
                let mut envelope = Map::new();
                for (k, v) in members {
                    let Cbor::Text(member) = k else { return Err(Rejected("kafka key")) };
                    if member == "type" || member == "data" {
                        return Err(Rejected("reserved member"));
                    }
                    let value = cbor_to_json(v)?;
                    if envelope.insert(member, value).is_some() {
                        return Err(Rejected("duplicate member"));
                    }
                }
                Some(envelope)
            }
            Some(_) => return Err(Rejected("kafka")),
        };
        Ok(Event {
            family: Family::from_name(&family),
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
            data,
            kafka_envelope,
        })
    }

    fn cbor_to_json(v: Cbor) -> Result<Json, Rejected> {
        fn convert(v: Cbor, left: usize) -> Result<Json, Rejected> {
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
                        return Err(Rejected("integer range"));
                    }
                }
                Cbor::Float(f) => Json::Number(Number::from_f64(f).ok_or(Rejected("float"))?),
                Cbor::Text(s) => Json::String(s),
                Cbor::Array(items) => {
                    let left = left.checked_sub(1).ok_or(Rejected("too deep"))?;
                    Json::Array(
                        items.into_iter().map(|i| convert(i, left)).collect::<Result<_, _>>()?,
                    )
                }
                Cbor::Map(entries) => {
                    let left = left.checked_sub(1).ok_or(Rejected("too deep"))?;
                    let mut map = Map::new();
                    for (k, v) in entries {
                        let Cbor::Text(k) = k else { return Err(Rejected("map key")) };
                        let v = convert(v, left)?;
                        if map.insert(k, v).is_some() {
                            return Err(Rejected("duplicate JSON key"));
                        }
                    }
                    Json::Object(map)
                }
                _ => return Err(Rejected("not JSON")),
            })
        }
        convert(v, MAX_JSON_DEPTH)
    }
}
