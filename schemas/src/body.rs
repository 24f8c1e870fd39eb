//! An event's body (go-livepeer's `data`), kept as the deterministic CBOR it
//! was decoded from and turned into a JSON tree only when something asks
//! for one.
//!
//! Building a `serde_json` tree for every decoded event used to be most of
//! the cost of decoding a batch, and the verifier's hot path reads only a few
//! scalars from a body (the SLA engine's `/state`, `/inference_status/fps`,
//! …). [`Body::get_str`], [`Body::get_u64`] and [`Body::get_f64`] find those
//! in the bytes without building anything; [`Body::tree`] builds the tree once,
//! on first use. A decoded body encodes back to its bytes verbatim: decoding
//! checked that they are the deterministic encoding of that tree.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::OnceLock;

use serde_json::Value as Json;

use crate::cbor::{Item, Reader};
use crate::event::{MAX_JSON_DEPTH, lenient, read_json};

/// go-livepeer's `data` for one event: a JSON value, either built by the
/// caller or decoded from the wire.
///
/// It dereferences to the JSON tree (`body["source"]`, `body.get("source")`,
/// `body.pointer("/a/b")`, `body.as_array()`); its own methods use names the
/// tree does not have, so none of those changes meaning. Changing it through
/// `&mut` drops the decoded bytes, and the event is encoded from the tree
/// again.
#[derive(Clone)]
pub struct Body(Repr);

#[derive(Clone)]
enum Repr {
    /// Built from a tree (the adapter, the SDK, a hand-made event).
    Tree(Json),
    /// Decoded: the checked deterministic CBOR, and the tree once built.
    Encoded { bytes: Box<[u8]>, tree: OnceLock<Json> },
}

/// Where a JSON pointer leads in encoded bytes.
enum Seek<'a> {
    /// To the value the reader is at.
    Found(Reader<'a>),
    /// Nowhere: the tree has no value there either.
    Absent,
    /// The bytes cannot say (an array step or an escaped token): ask the tree.
    AskTree,
}

impl Body {
    /// A body decoded from `bytes`, which the decoder has checked to be one
    /// deterministic CBOR value in the JSON subset, nesting at most
    /// [`MAX_JSON_DEPTH`] deep.
    pub(crate) fn from_checked_cbor(bytes: &[u8]) -> Body {
        Body(Repr::Encoded { bytes: bytes.into(), tree: OnceLock::new() })
    }

    /// The JSON tree, built from the decoded bytes on first use.
    pub fn tree(&self) -> &Json {
        match &self.0 {
            Repr::Tree(json) => json,
            Repr::Encoded { bytes, tree } => tree.get_or_init(|| parse(bytes)),
        }
    }

    /// The tree, taken out of the body.
    pub fn into_tree(self) -> Json {
        match self.0 {
            Repr::Tree(json) => json,
            Repr::Encoded { bytes, tree } => tree.into_inner().unwrap_or_else(|| parse(&bytes)),
        }
    }

    /// The decoded bytes, when the body was decoded and has not been changed
    /// since: its deterministic encoding.
    pub(crate) fn encoded(&self) -> Option<&[u8]> {
        match &self.0 {
            Repr::Tree(_) => None,
            Repr::Encoded { bytes, .. } => Some(bytes),
        }
    }

    /// Non-empty text at `pointer` (see [`lenient::as_text`]), read from the
    /// decoded bytes when there are any.
    pub fn get_str(&self, pointer: &str) -> Option<&str> {
        if let Some(bytes) = self.encoded() {
            match seek(bytes, pointer) {
                Seek::Found(mut r) => {
                    return match r.next() {
                        Ok(Item::Text(t)) => std::str::from_utf8(t).ok().filter(|s| !s.is_empty()),
                        _ => None,
                    };
                }
                Seek::Absent => return None,
                Seek::AskTree => {}
            }
        }
        self.tree().pointer(pointer).and_then(lenient::as_text)
    }

    /// A whole non-negative number at `pointer`, numbers as strings included
    /// (see [`lenient::as_u64`]).
    pub fn get_u64(&self, pointer: &str) -> Option<u64> {
        self.scalar(pointer, lenient::as_u64)
    }

    /// A finite number at `pointer`, numbers as strings included (see
    /// [`lenient::as_f64`]).
    pub fn get_f64(&self, pointer: &str) -> Option<f64> {
        self.scalar(pointer, lenient::as_f64)
    }

    /// `read` applied to the scalar at `pointer`: from the decoded bytes, a
    /// scalar is built alone (a text allocates, a number does not); an array
    /// or a map reads as `None`, as `read` would have it.
    fn scalar<T>(&self, pointer: &str, read: impl Fn(&Json) -> Option<T>) -> Option<T> {
        if let Some(bytes) = self.encoded() {
            match seek(bytes, pointer) {
                // Depth 0: an array or a map stops the read (None), as `read`
                // returns None for them.
                Seek::Found(mut r) => return read_json(&mut r, 0).ok().and_then(|v| read(&v)),
                Seek::Absent => return None,
                Seek::AskTree => {}
            }
        }
        self.tree().pointer(pointer).and_then(read)
    }
}

/// Builds the tree of bytes that the decoder checked. They always read: the
/// decoder's fast path accepts only what this exact reader accepts (fuzzed
/// and property-tested against each other), so the `Null` is never made.
fn parse(bytes: &[u8]) -> Json {
    let tree = read_json(&mut Reader::new(bytes), MAX_JSON_DEPTH);
    debug_assert!(tree.is_ok(), "a checked body reads as JSON");
    tree.unwrap_or(Json::Null)
}

/// Follows `pointer` through encoded bytes the way `serde_json`'s
/// `Value::pointer` follows it through a tree: map steps by member name; an
/// array step or a token with an escape (`~0`, `~1`) is left to the tree.
fn seek<'a>(bytes: &'a [u8], pointer: &str) -> Seek<'a> {
    let mut r = Reader::new(bytes);
    if pointer.is_empty() {
        return Seek::Found(r);
    }
    let Some(tokens) = pointer.strip_prefix('/') else {
        return Seek::Absent;
    };
    if tokens.contains('~') {
        return Seek::AskTree;
    }
    for token in tokens.split('/') {
        let len = match r.next() {
            Ok(Item::Map(len)) => len,
            Ok(Item::Array(_)) | Err(_) => return Seek::AskTree,
            Ok(_) => return Seek::Absent,
        };
        let mut found = false;
        for _ in 0..len {
            let Ok(Item::Text(name)) = r.next() else {
                return Seek::AskTree;
            };
            // Member names are unique (the decoder checked), so the first
            // match is the only one.
            if name == token.as_bytes() {
                found = true;
                break;
            }
            if r.skip().is_err() {
                return Seek::AskTree;
            }
        }
        if !found {
            return Seek::Absent;
        }
    }
    Seek::Found(r)
}

impl From<Json> for Body {
    fn from(json: Json) -> Body {
        Body(Repr::Tree(json))
    }
}

impl Default for Body {
    /// `null`.
    fn default() -> Body {
        Body(Repr::Tree(Json::Null))
    }
}

impl Deref for Body {
    type Target = Json;

    fn deref(&self) -> &Json {
        self.tree()
    }
}

impl DerefMut for Body {
    /// The tree, to change: the decoded bytes no longer describe it, so they
    /// are dropped and the event is encoded from the tree.
    fn deref_mut(&mut self) -> &mut Json {
        if let Repr::Encoded { bytes, tree } = &mut self.0 {
            let json = tree.take().unwrap_or_else(|| parse(bytes));
            self.0 = Repr::Tree(json);
        }
        match &mut self.0 {
            Repr::Tree(json) => json,
            Repr::Encoded { .. } => unreachable!("the body was made a tree just above"),
        }
    }
}

impl PartialEq for Body {
    /// Equal trees. Equal bytes are equal trees, which skips building them.
    fn eq(&self, other: &Body) -> bool {
        match (self.encoded(), other.encoded()) {
            (Some(a), Some(b)) if a == b => true,
            _ => self.tree() == other.tree(),
        }
    }
}

impl Eq for Body {}

impl PartialEq<Json> for Body {
    fn eq(&self, other: &Json) -> bool {
        self.tree() == other
    }
}

impl PartialEq<Body> for Json {
    fn eq(&self, other: &Body) -> bool {
        self == other.tree()
    }
}

impl fmt::Debug for Body {
    /// As the tree: a decoded body prints like a built one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.tree(), f)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::event::testing::arb_json;
    use crate::event::write_json;

    fn encoded(json: &Json) -> Body {
        let mut bytes = Vec::new();
        write_json(json, &mut bytes, &mut Vec::new());
        Body::from_checked_cbor(&bytes)
    }

    /// Every pointer that leads somewhere in `v`, plus misses next to them.
    fn pointers(v: &Json, at: String, out: &mut Vec<String>) {
        out.push(at.clone());
        out.push(format!("{at}/missing"));
        match v {
            Json::Object(map) => {
                for (name, child) in map {
                    let token = name.replace('~', "~0").replace('/', "~1");
                    pointers(child, format!("{at}/{token}"), out);
                }
            }
            Json::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    pointers(child, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn reads_go_livepeer_fields_from_the_bytes() {
        let status = json!({
            "state": "ONLINE",
            "inference_status": {"fps": 29.5, "last_error": ""},
            "last_status_timestamp": "1764000000000",
            "start_time": 1764000000000u64,
            "gpu": [1, 2],
        });
        let body = encoded(&status);
        assert_eq!(body.get_str("/state"), Some("ONLINE"));
        assert_eq!(body.get_f64("/inference_status/fps"), Some(29.5));
        assert_eq!(body.get_str("/inference_status/last_error"), None, "empty text");
        assert_eq!(body.get_u64("/last_status_timestamp"), Some(1_764_000_000_000));
        assert_eq!(body.get_u64("/start_time"), Some(1_764_000_000_000));
        assert_eq!(body.get_u64("/gpu"), None, "an array is no number");
        assert_eq!(body.get_u64("/gpu/1"), Some(2), "array steps go to the tree");
        assert_eq!(body.get_str("/absent"), None);
        assert_eq!(body.get_str("state"), None, "a pointer starts with /");
        assert_eq!(body.get("state"), Some(&json!("ONLINE")), "get is the tree's member lookup");
        assert_eq!(body, status);
    }

    #[test]
    fn a_change_drops_the_bytes() {
        let mut body = encoded(&json!({"a": 1}));
        assert!(body.encoded().is_some());
        body["a"] = json!(2);
        assert!(body.encoded().is_none());
        assert_eq!(body.get_u64("/a"), Some(2));
        assert_eq!(body.into_tree(), json!({"a": 2}));
    }

    proptest! {
        /// Reading from the bytes answers exactly what reading the tree does.
        #[test]
        fn bytes_answer_as_the_tree(json in arb_json()) {
            let body = encoded(&json);
            let tree = Body::from(json.clone());
            let mut all = Vec::new();
            pointers(&json, String::new(), &mut all);
            for p in &all {
                prop_assert_eq!(body.get_str(p), tree.get_str(p), "get_str {}", p);
                prop_assert_eq!(body.get_u64(p), tree.get_u64(p), "get_u64 {}", p);
                prop_assert_eq!(
                    body.get_f64(p).map(f64::to_bits),
                    tree.get_f64(p).map(f64::to_bits),
                    "get_f64 {}", p
                );
            }
            prop_assert_eq!(body.tree(), &json);
            prop_assert_eq!(&body, &tree);
            // The tree built from the bytes encodes back to them, so an event
            // may copy a decoded body's bytes instead of encoding its tree.
            let mut again = Vec::new();
            write_json(body.tree(), &mut again, &mut Vec::new());
            prop_assert_eq!(Some(again.as_slice()), body.encoded());
        }
    }
}
