//! The go-livepeer adapter: go-livepeer's own events, unchanged, into
//! [`Event`]s.
//!
//! go-livepeer hands every event to `monitor.SendQueueEventAsync(type, data)`
//! and writes it to Kafka as `{id, type, timestamp, gateway, data}`. The SDK
//! takes either form: [`from_go_livepeer`] the pair, [`from_kafka_line`] one
//! line of Kafka JSON (NDJSON). Both are lossless (every member of `data` is
//! kept, however untidy: empty strings, numbers as strings, nulls) and both
//! return a typed [`AdapterError`] for input that cannot be an event; neither
//! ever panics. Redaction is a separate step ([`crate::redact`]).

use serde_json::Value as Json;
use vouch_schema::event::MAX_FAMILY_LEN;
use vouch_schema::{Event, EventError};

/// Largest JSON accepted for one event, in bytes. An event must fit in one
/// 64 KiB envelope beside its certificate; 32 KiB of JSON leaves room for
/// that whatever the body holds.
pub const MAX_EVENT_JSON_BYTES: usize = 32 * 1024;

/// Why bytes are not a go-livepeer event. Messages are stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    /// Longer than [`MAX_EVENT_JSON_BYTES`] (checked before parsing).
    #[error("event JSON is {len} bytes, over the {max}-byte limit")]
    TooLarge {
        /// The input's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not UTF-8 JSON (the parser's reason, without input excerpts).
    #[error("event is not JSON: {0}")]
    NotJson(String),
    /// The family (`type`) is empty, longer than 64 bytes, or not
    /// lowercase `a-z`, `0-9` and `_` (shown up to 64 characters).
    #[error("invalid event family {0:?}")]
    BadFamily(String),
    /// The JSON is not an event (not an object, `type` or `data` missing, too deep, …).
    #[error("invalid event: {0}")]
    Event(#[from] EventError),
}

/// Converts the pair go-livepeer's `SendQueueEventAsync(type, data)`
/// receives: `family` is its `type`, `data_json` its `data` marshalled to
/// JSON. `now_ms` is the event time when `data` has no usable `timestamp`.
pub fn from_go_livepeer(
    family: &str,
    data_json: &[u8],
    now_ms: u64,
) -> Result<Event, AdapterError> {
    check_family(family)?;
    let data = parse(data_json)?;
    Ok(Event::from_type_and_data(family, data, now_ms)?)
}

/// The checks of [`from_go_livepeer`] that cost no parse: the family's name
/// and the JSON's size. Callers that hand the parse to another thread run
/// these first, so the obviously wrong is refused on the spot.
pub fn check_pair(family: &str, data_json: &[u8]) -> Result<(), AdapterError> {
    check_family(family)?;
    check_size(data_json)
}

/// Converts one line of go-livepeer's Kafka JSON,
/// `{id, type, timestamp, gateway, data}` (surrounding whitespace, such as
/// an NDJSON line's `\r\n`, is ignored).
pub fn from_kafka_line(line: &[u8]) -> Result<Event, AdapterError> {
    check_size(line)?;
    let json = parse(line.trim_ascii())?;
    if let Some(Json::String(family)) = json.get("type") {
        check_family(family)?;
    }
    Ok(Event::from_kafka_json(&json)?)
}

/// Parses at most [`MAX_EVENT_JSON_BYTES`] of JSON.
fn parse(bytes: &[u8]) -> Result<Json, AdapterError> {
    check_size(bytes)?;
    serde_json::from_slice(bytes).map_err(|e| AdapterError::NotJson(json_reason(&e)))
}

/// serde_json's reason without the input it quotes: a category and position.
fn json_reason(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Io => "I/O error",
        Category::Syntax => "syntax error",
        Category::Data => "unexpected value",
        Category::Eof => "unexpected end of input",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

/// At most [`MAX_EVENT_JSON_BYTES`].
fn check_size(bytes: &[u8]) -> Result<(), AdapterError> {
    if bytes.len() > MAX_EVENT_JSON_BYTES {
        return Err(AdapterError::TooLarge { len: bytes.len(), max: MAX_EVENT_JSON_BYTES });
    }
    Ok(())
}

/// go-livepeer's families are lowercase snake_case names.
fn check_family(family: &str) -> Result<(), AdapterError> {
    let ok = !family.is_empty()
        && family.len() <= MAX_FAMILY_LEN
        && family.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok { Ok(()) } else { Err(AdapterError::BadFamily(family.chars().take(64).collect())) }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pair_and_line_agree() {
        let data =
            br#"{"type":"gateway_receive_stream_request","timestamp":"17","request_id":"ab"}"#;
        let a = from_go_livepeer("stream_trace", data, 99).unwrap();
        assert_eq!(a.ts, Some(17));
        assert_eq!(a.request_id.as_deref(), Some("ab"));
        let line = br#"  {"id":"x","type":"stream_trace","timestamp":"5","gateway":"","data":{}}  
"#;
        let b = from_kafka_line(line).unwrap();
        assert_eq!(b.ts, Some(5));
        assert_eq!(b.kafka_envelope.unwrap().len(), 3);
    }

    #[test]
    fn bad_input_is_typed() {
        assert!(matches!(from_go_livepeer("stream_trace", b"{", 1), Err(AdapterError::NotJson(_))));
        assert!(matches!(
            from_go_livepeer("Stream Trace", b"{}", 1),
            Err(AdapterError::BadFamily(_))
        ));
        assert!(matches!(from_go_livepeer("", b"{}", 1), Err(AdapterError::BadFamily(_))));
        let big = vec![b' '; MAX_EVENT_JSON_BYTES + 1];
        assert!(matches!(from_kafka_line(&big), Err(AdapterError::TooLarge { .. })));
        assert!(matches!(
            from_kafka_line(b"[1]"),
            Err(AdapterError::Event(EventError::NotAnObject))
        ));
        assert!(matches!(
            from_kafka_line(br#"{"type":"x"}"#),
            Err(AdapterError::Event(EventError::Missing("data")))
        ));
        let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
        assert!(matches!(
            from_go_livepeer("x", deep.as_bytes(), 1),
            Err(AdapterError::Event(EventError::TooDeep))
        ));
    }
}
