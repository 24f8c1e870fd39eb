//! Events read in place: [`EventRef`], a borrowed event, and the layout that
//! the decoder's fast path records for each event of a batch.
//!
//! A verifier reads a handful of fields of every event it scores and keeps
//! the bytes in its log anyway, so decoding a batch into owned [`Event`]s
//! (a string, a body and a member map allocated and copied per event, all
//! dropped right after scoring) was most of what decoding cost. The fast
//! path instead records where each field lies ([`EventLayout`], integers
//! only) and copies the header's short texts, checked as UTF-8 once, into
//! one string for the whole batch; [`EventRef`] borrows the fields from the
//! bytes and that string when asked.

use crate::Address;
use crate::body::{BodyRef, Members};
use crate::cbor::{Item, Reader};
use crate::event::{
    Event, Family, MAX_FAMILY_LEN, MAX_FIELD_LEN, MAX_JSON_DEPTH, Origin, key, valid_json,
    valid_name, valid_text,
};

/// One event borrowed for reading: the normalized header and the body, from
/// an owned [`Event`] ([`Event::view`]) or from a decoded batch's bytes
/// ([`DecodedBatch::events`](crate::batch::DecodedBatch::events)). The
/// Kafka envelope's members are not part of the view; an owned event has
/// them.
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    /// The family (Kafka envelope `type`).
    pub family: &'a Family,
    /// Event time, ms since the Unix epoch ([`Event::ts`]).
    pub ts: Option<u64>,
    /// The subtype ([`Event::subtype`]).
    pub subtype: Option<&'a str>,
    /// go-livepeer's `stream_id`.
    pub stream_id: Option<&'a str>,
    /// Gateway session id ([`Event::request_id`]).
    pub request_id: Option<&'a str>,
    /// Orchestrator session id ([`Event::manifest_id`]).
    pub manifest_id: Option<&'a str>,
    /// go-livepeer's `pipeline_id`.
    pub pipeline_id: Option<&'a str>,
    /// The model id ([`Event::model_id`]).
    pub model_id: Option<&'a str>,
    /// The orchestrator's address.
    pub orchestrator: Option<Address>,
    /// The gateway's region.
    pub gateway_region: Option<&'a str>,
    /// Production or synthetic.
    pub origin: Option<Origin>,
    /// go-livepeer's `data`.
    pub data: BodyRef<'a>,
}

impl<'a> EventRef<'a> {
    /// Non-empty text at `pointer` in the body ([`BodyRef::get_str`]).
    pub fn get_str(&self, pointer: &str) -> Option<&'a str> {
        self.data.get_str(pointer)
    }

    /// A whole non-negative number at `pointer` ([`BodyRef::get_u64`]).
    pub fn get_u64(&self, pointer: &str) -> Option<u64> {
        self.data.get_u64(pointer)
    }

    /// A finite number at `pointer` ([`BodyRef::get_f64`]).
    pub fn get_f64(&self, pointer: &str) -> Option<f64> {
        self.data.get_f64(pointer)
    }
}

impl Event {
    /// The event borrowed for reading: what a decoded batch's events give,
    /// so that one reader (the SLA engine) takes both.
    pub fn view(&self) -> EventRef<'_> {
        EventRef {
            family: &self.family,
            ts: self.ts,
            subtype: self.subtype.as_deref(),
            stream_id: self.stream_id.as_deref(),
            request_id: self.request_id.as_deref(),
            manifest_id: self.manifest_id.as_deref(),
            pipeline_id: self.pipeline_id.as_deref(),
            model_id: self.model_id.as_deref(),
            orchestrator: self.orchestrator,
            gateway_region: self.gateway_region.as_deref(),
            origin: self.origin,
            data: self.data.view(),
        }
    }
}

impl<'a> From<&'a Event> for EventRef<'a> {
    fn from(event: &'a Event) -> EventRef<'a> {
        event.view()
    }
}

/// Where a part of an event lies: `start..end` in the bytes its reader
/// reads (the body, the Kafka members) or in the texts it was read with (a
/// header text). Empty means absent: every text the format allows is
/// non-empty, and a body or a member map is at least one byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// `start..end`; `None` past 4 GiB, which no envelope reaches (the
    /// fast path then gives up).
    fn new(start: usize, end: usize) -> Option<Span> {
        Some(Span { start: u32::try_from(start).ok()?, end: u32::try_from(end).ok()? })
    }

    /// The span from `start` to where `r` is now.
    fn since(r: &Reader<'_>, start: usize) -> Option<Span> {
        Span::new(start, r.position())
    }

    fn range(self) -> Option<std::ops::Range<usize>> {
        (self.end > self.start).then_some(self.start as usize..self.end as usize)
    }

    /// The bytes it covers; `None` when empty (absent).
    fn get(self, bytes: &[u8]) -> Option<&[u8]> {
        bytes.get(self.range()?)
    }

    /// The text it covers in `texts`; `None` when empty (absent).
    fn text(self, texts: &str) -> Option<&str> {
        texts.get(self.range()?)
    }
}

/// The header's texts, in this order: keys 3 to 8, then key 10.
const TEXT_KEYS: [u64; 7] = [
    key::SUBTYPE,
    key::STREAM_ID,
    key::REQUEST_ID,
    key::MANIFEST_ID,
    key::PIPELINE_ID,
    key::MODEL_ID,
    key::GATEWAY_REGION,
];

/// Where each field of one valid event lies in the bytes it was read from,
/// as [`EventLayout::read_valid`] found them: the fast path of decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EventLayout {
    family: Family,
    ts: Option<u64>,
    /// The texts of [`TEXT_KEYS`], in that order, in the texts the event
    /// was read with.
    texts: [Span; TEXT_KEYS.len()],
    orchestrator: Option<Address>,
    origin: Option<Origin>,
    /// The body's whole encoding.
    data: Span,
    /// The Kafka member map's whole encoding; empty when absent.
    kafka: Span,
}

impl EventLayout {
    /// Reads an event that is valid in every respect, deterministic
    /// encoding included (shortest heads and floats, keys in strictly
    /// increasing order, UTF-8), in one pass over unchecked bytes, and gives
    /// up (`None`) at the first thing that is not, leaving the exact path
    /// ([`crate::cbor::check`], then [`Event::read_cbor`]) to say why. It
    /// must never accept what the exact path rejects. Positions are those
    /// of `r`'s bytes; the header's texts are appended to `texts`, where
    /// their spans point (so that reading them needs no second UTF-8 check).
    pub(crate) fn read_valid(r: &mut Reader<'_>, texts: &mut String) -> Option<EventLayout> {
        let Item::Map(len) = r.next().ok()? else {
            return None;
        };
        let mut family = None;
        let mut data = None;
        let mut layout = EventLayout {
            family: Family::Probe,
            ts: None,
            texts: [Span::default(); TEXT_KEYS.len()],
            orchestrator: None,
            origin: None,
            data: Span::default(),
            kafka: Span::default(),
        };
        // Keys 0..=12 are one byte each, so their encoded order is numeric.
        let mut prev_key = None;
        for _ in 0..len {
            let Item::Uint(k) = r.next().ok()? else {
                return None;
            };
            if prev_key.is_some_and(|prev| prev >= k) {
                return None;
            }
            prev_key = Some(k);
            match k {
                key::FAMILY => family = Some(Family::from_name(valid_text(r, MAX_FAMILY_LEN)?)),
                key::DATA => {
                    let start = r.position();
                    valid_json(r, MAX_JSON_DEPTH)?;
                    data = Some(Span::since(r, start)?);
                }
                key::TS => {
                    let Item::Uint(ts) = r.next().ok()? else {
                        return None;
                    };
                    layout.ts = Some(ts);
                }
                key::SUBTYPE..=key::MODEL_ID | key::GATEWAY_REGION => {
                    let text = valid_text(r, MAX_FIELD_LEN)?;
                    let slot = TEXT_KEYS.iter().position(|t| *t == k)?;
                    let start = texts.len();
                    texts.push_str(text);
                    *layout.texts.get_mut(slot)? = Span::new(start, texts.len())?;
                }
                key::ORCHESTRATOR => {
                    let Item::Bytes(b) = r.next().ok()? else {
                        return None;
                    };
                    layout.orchestrator = Some(Address::from_slice(b)?);
                }
                key::ORIGIN => {
                    let Item::Uint(code) = r.next().ok()? else {
                        return None;
                    };
                    layout.origin = Some(Origin::from_code(code)?);
                }
                key::KAFKA => {
                    let start = r.position();
                    let Item::Map(len) = r.next().ok()? else {
                        return None;
                    };
                    let mut prev = None;
                    for _ in 0..len {
                        let name = valid_name(r, &mut prev)?;
                        if name == b"type" || name == b"data" {
                            return None;
                        }
                        valid_json(r, MAX_JSON_DEPTH)?;
                    }
                    layout.kafka = Span::since(r, start)?;
                }
                _ => return None,
            }
        }
        // Family and data are required.
        layout.family = family?;
        layout.data = data?;
        Some(layout)
    }

    /// The event borrowed from `bytes` and `texts`, what it was read from
    /// and with.
    pub(crate) fn view<'a>(&'a self, bytes: &'a [u8], texts: &'a str) -> EventRef<'a> {
        let [subtype, stream_id, request_id, manifest_id, pipeline_id, model_id, region] =
            self.texts.map(|span| span.text(texts));
        EventRef {
            family: &self.family,
            ts: self.ts,
            subtype,
            stream_id,
            request_id,
            manifest_id,
            pipeline_id,
            model_id,
            orchestrator: self.orchestrator,
            gateway_region: region,
            origin: self.origin,
            data: BodyRef::from_checked_cbor(self.data.get(bytes).unwrap_or_default()),
        }
    }

    /// The event, owned, from `bytes` and `texts`, what it was read from
    /// and with.
    pub(crate) fn to_event(&self, bytes: &[u8], texts: &str) -> Event {
        let view = self.view(bytes, texts);
        let text = |t: Option<&str>| t.map(str::to_owned);
        Event {
            family: self.family.clone(),
            ts: view.ts,
            subtype: text(view.subtype),
            stream_id: text(view.stream_id),
            request_id: text(view.request_id),
            manifest_id: text(view.manifest_id),
            pipeline_id: text(view.pipeline_id),
            model_id: text(view.model_id),
            orchestrator: view.orchestrator,
            gateway_region: text(view.gateway_region),
            origin: view.origin,
            data: crate::Body::from_checked_cbor(self.data.get(bytes).unwrap_or_default()),
            kafka_envelope: self.kafka.get(bytes).map(Members::from_checked_cbor),
        }
    }
}
