//! An event's decoded JSON parts (go-livepeer's `data`, the Kafka envelope's
//! other members), kept as the deterministic CBOR they were decoded from and
//! turned into `serde_json` trees only when something asks for one.
//!
//! Building a `serde_json` tree for every decoded event used to be most of
//! the cost of decoding a batch, and the verifier's hot path reads only a few
//! scalars from a body (the SLA engine's `/state`, `/inference_status/fps`,
//! …). [`Body::get_str`], [`Body::get_u64`] and [`Body::get_f64`] find those
//! in the bytes without building anything; [`Lazy::tree`] builds the tree
//! once, on first use. A decoded part encodes back to its bytes verbatim:
//! decoding checked that they are the deterministic encoding of that tree.

use std::borrow::Cow;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::OnceLock;

use serde_json::{Map, Value as Json};

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
pub type Body = Lazy<Json>;

/// The Kafka envelope's members other than `type` and `data` (`id`,
/// `timestamp`, `gateway`), as [`Body`] keeps `data`: a JSON object that
/// dereferences to its member map.
pub type Members = Lazy<Map<String, Json>>;

/// A JSON part of an event: built from a tree, or decoded and kept as its
/// checked bytes until something asks for the tree. See [`Body`] and
/// [`Members`].
#[derive(Clone)]
pub struct Lazy<T: Tree>(Repr<T>);

#[derive(Clone)]
enum Repr<T> {
    /// Built from a tree (the adapter, the SDK, a hand-made event).
    Tree(T),
    /// Decoded: the checked deterministic CBOR, and the tree once built.
    Encoded { bytes: Box<[u8]>, tree: OnceLock<T> },
}

/// The trees a [`Lazy`] part can hold: a JSON value ([`Body`]) or a JSON
/// object's members ([`Members`]). Sealed: building one from bytes is for
/// bytes this crate's decoder checked, so it is not callable from outside.
pub trait Tree: Clone + Default + PartialEq + fmt::Debug + sealed::Parse {}

impl Tree for Json {}
impl Tree for Map<String, Json> {}

mod sealed {
    /// Builds a tree from bytes the decoder checked. They always read: the
    /// decoder's fast path accepts only what this exact reader accepts
    /// (fuzzed and property-tested against each other), so the default tree
    /// is never made.
    pub trait Parse: Sized {
        fn parse(bytes: &[u8]) -> Self;
    }
}

impl sealed::Parse for Json {
    fn parse(bytes: &[u8]) -> Json {
        let tree = read_json(&mut Reader::new(bytes), MAX_JSON_DEPTH);
        debug_assert!(tree.is_ok(), "a checked body reads as JSON");
        tree.unwrap_or_default()
    }
}

impl sealed::Parse for Map<String, Json> {
    /// Each member's value nests at most [`MAX_JSON_DEPTH`] deep, so the
    /// object around them may take one level more.
    fn parse(bytes: &[u8]) -> Map<String, Json> {
        let tree = read_json(&mut Reader::new(bytes), MAX_JSON_DEPTH + 1);
        debug_assert!(matches!(tree, Ok(Json::Object(_))), "checked members read as an object");
        match tree {
            Ok(Json::Object(members)) => members,
            _ => Map::new(),
        }
    }
}

impl<T: Tree> Lazy<T> {
    /// A part decoded from `bytes`, which the decoder has checked to be the
    /// deterministic CBOR of a `T` in the JSON subset, nesting at most
    /// [`MAX_JSON_DEPTH`] deep.
    pub(crate) fn from_checked_cbor(bytes: &[u8]) -> Lazy<T> {
        Lazy(Repr::Encoded { bytes: bytes.into(), tree: OnceLock::new() })
    }

    /// The tree, built from the decoded bytes on first use.
    pub fn tree(&self) -> &T {
        match &self.0 {
            Repr::Tree(tree) => tree,
            Repr::Encoded { bytes, tree } => tree.get_or_init(|| T::parse(bytes)),
        }
    }

    /// The tree, taken out.
    pub fn into_tree(self) -> T {
        match self.0 {
            Repr::Tree(tree) => tree,
            Repr::Encoded { bytes, tree } => tree.into_inner().unwrap_or_else(|| T::parse(&bytes)),
        }
    }

    /// The decoded bytes, when the part was decoded and has not been changed
    /// since: its deterministic encoding.
    pub(crate) fn encoded(&self) -> Option<&[u8]> {
        match &self.0 {
            Repr::Tree(_) => None,
            Repr::Encoded { bytes, .. } => Some(bytes),
        }
    }
}

impl Body {
    /// The body, borrowed for reading: from the decoded bytes when there
    /// are any (nothing is built), else from the tree.
    pub fn view(&self) -> BodyRef<'_> {
        match self.encoded() {
            Some(bytes) => BodyRef(View::Encoded(bytes)),
            None => BodyRef(View::Tree(self.tree())),
        }
    }

    /// Non-empty text at `pointer` ([`BodyRef::get_str`]).
    pub fn get_str(&self, pointer: &str) -> Option<&str> {
        self.view().get_str(pointer)
    }

    /// A whole non-negative number at `pointer` ([`BodyRef::get_u64`]).
    pub fn get_u64(&self, pointer: &str) -> Option<u64> {
        self.view().get_u64(pointer)
    }

    /// A finite number at `pointer` ([`BodyRef::get_f64`]).
    pub fn get_f64(&self, pointer: &str) -> Option<f64> {
        self.view().get_f64(pointer)
    }
}

/// A body borrowed for reading: checked deterministic CBOR read in place
/// (a decoded [`Body`], or a body inside a
/// [`DecodedBatch`](crate::batch::DecodedBatch)'s bytes), or a built tree.
///
/// Its getters follow a JSON pointer as `serde_json`'s `Value::pointer`
/// does and read the scalar there as [`lenient`] reads it; on bytes they
/// build nothing but a scalar (a text borrows, a number is copied).
#[derive(Clone, Copy)]
pub struct BodyRef<'a>(View<'a>);

#[derive(Clone, Copy)]
enum View<'a> {
    /// Bytes the decoder checked.
    Encoded(&'a [u8]),
    /// A tree.
    Tree(&'a Json),
}

impl<'a> BodyRef<'a> {
    /// A body in `bytes`, which the decoder has checked to be the
    /// deterministic CBOR of a JSON value nesting at most
    /// [`MAX_JSON_DEPTH`] deep.
    pub(crate) fn from_checked_cbor(bytes: &'a [u8]) -> BodyRef<'a> {
        BodyRef(View::Encoded(bytes))
    }

    /// Non-empty text at `pointer` (see [`lenient::as_text`]).
    pub fn get_str(&self, pointer: &str) -> Option<&'a str> {
        match self.0 {
            View::Encoded(bytes) => match seek(bytes, pointer)?.next() {
                Ok(Item::Text(t)) => std::str::from_utf8(t).ok().filter(|s| !s.is_empty()),
                _ => None,
            },
            View::Tree(tree) => tree.pointer(pointer).and_then(lenient::as_text),
        }
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

    /// The values of an object body's members `names`, found in one pass
    /// over its bytes (a reader of several members of a large body would
    /// otherwise walk it once each): `None` for a name the object does not
    /// hold, every one `None` for a body that is no object.
    pub fn members<const N: usize>(&self, names: [&str; N]) -> [Option<BodyRef<'a>>; N] {
        let mut found = [None; N];
        match self.0 {
            View::Encoded(bytes) => {
                let mut r = Reader::new(bytes);
                let Ok(Item::Map(len)) = r.next() else { return found };
                for _ in 0..len {
                    let Ok(Item::Text(name)) = r.next() else { return found };
                    let start = r.position();
                    if r.skip().is_err() {
                        return found;
                    }
                    let value = bytes.get(start..r.position()).map(BodyRef::from_checked_cbor);
                    for (slot, wanted) in found.iter_mut().zip(names) {
                        if wanted.as_bytes() == name {
                            *slot = value;
                        }
                    }
                    // Names are unique (the decoder checked): once every
                    // one is found, the rest of the body holds none.
                    if found.iter().all(Option::is_some) {
                        break;
                    }
                }
            }
            View::Tree(tree) => {
                for (slot, name) in found.iter_mut().zip(names) {
                    *slot = tree.get(name).map(BodyRef::from);
                }
            }
        }
        found
    }

    /// The JSON tree: borrowed from a built body, built from bytes (each
    /// call builds it again; readers of a few fields use the getters).
    pub fn tree(&self) -> Cow<'a, Json> {
        match self.0 {
            View::Encoded(bytes) => Cow::Owned(<Json as sealed::Parse>::parse(bytes)),
            View::Tree(tree) => Cow::Borrowed(tree),
        }
    }

    /// `read` applied to the scalar at `pointer`: from bytes, a scalar is
    /// built alone (a text allocates, a number does not); an array or a map
    /// reads as `None`, as `read` would have it.
    fn scalar<T>(&self, pointer: &str, read: impl Fn(&Json) -> Option<T>) -> Option<T> {
        match self.0 {
            // Depth 0: an array or a map stops the read (None), as `read`
            // returns None for them.
            View::Encoded(bytes) => {
                read_json(&mut seek(bytes, pointer)?, 0).ok().and_then(|v| read(&v))
            }
            View::Tree(tree) => tree.pointer(pointer).and_then(read),
        }
    }
}

impl<'a> From<&'a Json> for BodyRef<'a> {
    fn from(tree: &'a Json) -> BodyRef<'a> {
        BodyRef(View::Tree(tree))
    }
}

impl fmt::Debug for BodyRef<'_> {
    /// As the tree, like [`Body`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.tree(), f)
    }
}

/// Follows `pointer` through checked bytes exactly as `serde_json`'s
/// `Value::pointer` follows it through the tree they encode: a reader at the
/// value it leads to, `None` where it leads nowhere. Tokens are unescaped
/// as there (`~1` to `/`, then `~0` to `~`); a map step goes by member name,
/// an array step by a decimal index without sign or leading zero.
fn seek<'a>(bytes: &'a [u8], pointer: &str) -> Option<Reader<'a>> {
    let mut r = Reader::new(bytes);
    if pointer.is_empty() {
        return Some(r);
    }
    for token in pointer.strip_prefix('/')?.split('/') {
        let token: Cow<'_, str> = if token.contains('~') {
            Cow::Owned(token.replace("~1", "/").replace("~0", "~"))
        } else {
            Cow::Borrowed(token)
        };
        match r.next().ok()? {
            Item::Map(len) => {
                let mut found = false;
                for _ in 0..len {
                    let Item::Text(name) = r.next().ok()? else {
                        return None;
                    };
                    // Member names are unique (the decoder checked), so the
                    // first match is the only one.
                    if name == token.as_bytes() {
                        found = true;
                        break;
                    }
                    r.skip().ok()?;
                }
                if !found {
                    return None;
                }
            }
            Item::Array(len) => {
                let index = array_index(&token)?;
                if index >= len {
                    return None;
                }
                for _ in 0..index {
                    r.skip().ok()?;
                }
            }
            _ => return None,
        }
    }
    Some(r)
}

/// `serde_json`'s reading of an array step: decimal digits, no `+`, no
/// leading zero.
fn array_index(token: &str) -> Option<u64> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
}

impl<T: Tree> From<T> for Lazy<T> {
    fn from(tree: T) -> Lazy<T> {
        Lazy(Repr::Tree(tree))
    }
}

impl<T: Tree> Default for Lazy<T> {
    /// `null`, or no members.
    fn default() -> Lazy<T> {
        Lazy(Repr::Tree(T::default()))
    }
}

impl<T: Tree> Deref for Lazy<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.tree()
    }
}

impl<T: Tree> DerefMut for Lazy<T> {
    /// The tree, to change: the decoded bytes no longer describe it, so they
    /// are dropped and the event is encoded from the tree.
    fn deref_mut(&mut self) -> &mut T {
        if let Repr::Encoded { bytes, tree } = &mut self.0 {
            let built = tree.take().unwrap_or_else(|| T::parse(bytes));
            self.0 = Repr::Tree(built);
        }
        match &mut self.0 {
            Repr::Tree(tree) => tree,
            Repr::Encoded { .. } => unreachable!("the part was made a tree just above"),
        }
    }
}

impl<T: Tree> PartialEq for Lazy<T> {
    /// Equal trees. Equal bytes are equal trees, which skips building them.
    fn eq(&self, other: &Lazy<T>) -> bool {
        match (self.encoded(), other.encoded()) {
            (Some(a), Some(b)) if a == b => true,
            _ => self.tree() == other.tree(),
        }
    }
}

impl<T: Tree> Eq for Lazy<T> where T: Eq {}

impl<T: Tree> PartialEq<T> for Lazy<T> {
    fn eq(&self, other: &T) -> bool {
        self.tree() == other
    }
}

impl PartialEq<Body> for Json {
    fn eq(&self, other: &Body) -> bool {
        self == other.tree()
    }
}

impl<T: Tree> fmt::Debug for Lazy<T> {
    /// As the tree: a decoded part prints like a built one.
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
                // Index forms serde_json refuses, and one past the end.
                for token in ["+0", "00", "-1", "01", "~0"] {
                    out.push(format!("{at}/{token}"));
                }
                out.push(format!("{at}/{}", items.len()));
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
        assert_eq!(body.get_u64("/gpu/1"), Some(2), "array steps");
        assert_eq!(body.get_u64("/gpu/01"), None, "no leading zero, as serde_json");
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

    /// A decoded event keeps its Kafka members' bytes, encodes them back
    /// verbatim, and, once they are changed, encodes the change.
    #[test]
    fn kafka_members_stay_bytes_until_changed() {
        let json = json!({
            "id": "5f0c8c1e", "type": "ai_stream_status", "timestamp": "1764000000000",
            "gateway": "0xabc", "data": {"state": "ONLINE"},
        });
        let event = crate::Event::from_kafka_json(&json).unwrap();
        let bytes = event.encode();
        let mut decoded = crate::Event::decode(&bytes).unwrap();
        let members = decoded.kafka_envelope.as_ref().unwrap();
        assert!(members.encoded().is_some(), "decoded members are kept as bytes");
        assert_eq!(members.get("gateway"), Some(&json!("0xabc")));
        assert_eq!(members.len(), 3);
        assert_eq!(decoded, event);
        assert_eq!(decoded.encode(), bytes);

        decoded.kafka_envelope.as_mut().unwrap().insert("region".to_owned(), json!("FRA"));
        assert!(decoded.kafka_envelope.as_ref().unwrap().encoded().is_none());
        let changed = crate::Event::decode(&decoded.encode()).unwrap();
        assert_eq!(changed.kafka_envelope.unwrap().get("region"), Some(&json!("FRA")));
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
            // Members read in one pass are the tree's members.
            let names: Vec<String> = match &json {
                Json::Object(map) => map.keys().take(2).cloned().collect(),
                _ => Vec::new(),
            };
            let first = names.first().map_or("a", String::as_str);
            let second = names.get(1).map_or("b", String::as_str);
            let wanted = [second, "missing", first];
            let trees = |b: &Body| b.view().members(wanted).map(|m| m.map(|m| m.tree().into_owned()));
            prop_assert_eq!(trees(&body), trees(&tree));
            prop_assert_eq!(trees(&body), wanted.map(|n| json.get(n).cloned()));
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
