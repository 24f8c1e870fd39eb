//! Deterministic CBOR (RFC 8949 §4.2.1, "core deterministic encoding").
//!
//! Everything Vouch signs or hashes is encoded here, so two implementations
//! that follow the CDDL produce the same bytes. Decoding is strict: the input
//! must be exactly the deterministic encoding of the value it holds, which
//! rules out indefinite lengths, over-long integer or float heads, unsorted
//! or duplicate map keys, and trailing bytes.
//!
//! Both directions work on the bytes directly. [`write`](fn@write) emits each head in
//! its shortest form and orders map entries with a comparator that agrees
//! with the bytewise order of the encoded keys, without copying the value.
//! [`from_slice`] checks the input in one pass over the bytes (well-formed,
//! shortest heads and floats, definite lengths, keys in strictly increasing
//! order, UTF-8, nesting depth, nothing after the item) and then builds the
//! value. It accepts exactly what "decode with ciborium, re-encode, compare"
//! accepted, with the same error for each input, except that a repeated map
//! key is now rejected; the tests and fuzz targets hold the old
//! implementation as an oracle (`vouch_schema::oracle`, feature `oracle`).
//!
//! The event and batch codecs read their structures straight from the bytes:
//! first in one strict pass that gives up at anything unexpected, and only
//! then, to name the problem, through the same checker.

use std::cmp::Ordering;

use ciborium::Value;

/// Nesting depth accepted when decoding outside bytes: deep enough for any
/// go-livepeer event, shallow enough that hostile input cannot exhaust the stack.
/// Arrays, maps and tags (other than a bignum's) each count one level.
pub const MAX_DEPTH: usize = 64;

/// How bytes are not well-formed CBOR ([`CborError::Malformed`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// The item breaks CBOR's grammar at a byte offset.
    #[error("{what} at byte {at}")]
    At {
        /// What is wrong (`unexpected end of input`, `unknown simple value`, ...).
        what: &'static str,
        /// Byte offset in the input.
        at: usize,
    },
    /// Arrays, maps and tags nest deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {MAX_DEPTH} at byte {at}")]
    TooDeep {
        /// Byte offset in the input.
        at: usize,
    },
    /// Checked bytes did not read back (a bug in this module).
    #[error("internal: checked CBOR did not read back")]
    ReadBack,
    /// Another decoder refused the bytes (the legacy codec in `oracle`).
    #[error(transparent)]
    Decoder(crate::SharedError<dyn std::error::Error + Send + Sync>),
}

/// Why bytes are not a deterministic CBOR item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    /// The bytes are not well-formed CBOR (or nest deeper than [`MAX_DEPTH`]).
    #[error("malformed CBOR: {0}")]
    Malformed(#[source] Malformed),
    /// Well-formed CBOR follows the first item.
    #[error("trailing bytes after the CBOR item")]
    TrailingBytes,
    /// Well-formed, but not the deterministic encoding of its value.
    #[error("CBOR is not in deterministic encoding (RFC 8949 §4.2.1)")]
    NonCanonical,
}

/// CBOR major types.
pub(crate) mod major {
    pub(crate) const UINT: u8 = 0;
    pub(crate) const NINT: u8 = 1;
    pub(crate) const BYTES: u8 = 2;
    pub(crate) const TEXT: u8 = 3;
    pub(crate) const ARRAY: u8 = 4;
    pub(crate) const MAP: u8 = 5;
    pub(crate) const TAG: u8 = 6;
    pub(crate) const SIMPLE: u8 = 7;
}

/// The tags that ciborium reads as 128-bit integers (RFC 8949 §3.4.3).
const TAG_BIGPOS: u64 = 2;
const TAG_BIGNEG: u64 = 3;

const FALSE: u8 = 0xf4;
const TRUE: u8 = 0xf5;
const NULL: u8 = 0xf6;
const BREAK: u8 = 0xff;

// --- encoding ----------------------------------------------------------------

/// Encodes `value` deterministically: map keys sorted by their encoded bytes,
/// shortest integer, length and float heads, definite lengths.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write(value, &mut out);
    out
}

/// Appends the deterministic encoding of `value` to `out`.
pub fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Integer(i) => write_i128(out, i128::from(*i)),
        Value::Bytes(b) => write_bytes(out, b),
        Value::Text(t) => write_text(out, t),
        Value::Array(items) => {
            write_head(out, major::ARRAY, len_u64(items.len()));
            for item in items {
                write(item, out);
            }
        }
        Value::Map(entries) => write_map(entries, out),
        Value::Tag(tag, inner) => {
            write_head(out, major::TAG, *tag);
            write(inner, out);
        }
        Value::Float(f) => write_float(out, *f),
        Value::Bool(b) => out.push(if *b { TRUE } else { FALSE }),
        Value::Null => out.push(NULL),
        // `Value` is non-exhaustive; a variant added by a later ciborium gets
        // ciborium's own encoding, as everything did before.
        other => {
            if let Err(e) = ciborium::into_writer(other, &mut *out) {
                unreachable!("CBOR encoding into memory failed: {e}");
            }
        }
    }
}

/// Writes a map's entries in the order of their encoded keys. A stable sort,
/// so that equal keys (which no decoder accepts) keep their order.
fn write_map(entries: &[(Value, Value)], out: &mut Vec<u8>) {
    write_head(out, major::MAP, len_u64(entries.len()));
    if entries.iter().all(|(k, _)| cheap_key(k)) {
        let sorted = entries.windows(2).all(|w| cmp_cheap_keys(&w[0].0, &w[1].0).is_le());
        if sorted {
            for (k, v) in entries {
                write(k, out);
                write(v, out);
            }
        } else {
            let mut order: Vec<&(Value, Value)> = entries.iter().collect();
            order.sort_by(|a, b| cmp_cheap_keys(&a.0, &b.0));
            for (k, v) in order {
                write(k, out);
                write(v, out);
            }
        }
    } else {
        // Keys of other types: compare their encodings.
        let mut keyed: Vec<(Vec<u8>, &Value)> =
            entries.iter().map(|(k, v)| (to_vec(k), v)).collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, v) in keyed {
            out.extend_from_slice(&k);
            write(v, out);
        }
    }
}

/// Keys that [`cmp_cheap_keys`] orders without encoding them.
fn cheap_key(key: &Value) -> bool {
    match key {
        Value::Integer(i) => int_head(i128::from(*i)).is_some(),
        Value::Text(_) | Value::Bytes(_) => true,
        _ => false,
    }
}

/// The major type and argument of an integer that needs no bignum.
fn int_head(i: i128) -> Option<(u8, u64)> {
    if i >= 0 {
        u64::try_from(i).ok().map(|u| (major::UINT, u))
    } else {
        u64::try_from(-1 - i).ok().map(|u| (major::NINT, u))
    }
}

/// The bytewise order of the encodings of two [`cheap_key`]s. Heads with a
/// larger argument are never shorter, so within one major type the order is
/// the order of the arguments, then (strings) of the contents.
fn cmp_cheap_keys(a: &Value, b: &Value) -> Ordering {
    fn parts(v: &Value) -> (u8, u64, &[u8]) {
        match v {
            Value::Integer(i) => {
                let (m, arg) = int_head(i128::from(*i)).unwrap_or((major::TAG, u64::MAX));
                (m, arg, &[])
            }
            Value::Bytes(b) => (major::BYTES, len_u64(b.len()), b),
            Value::Text(t) => (major::TEXT, len_u64(t.len()), t.as_bytes()),
            _ => (major::SIMPLE, u64::MAX, &[]),
        }
    }
    let (ma, la, ba) = parts(a);
    let (mb, lb, bb) = parts(b);
    ma.cmp(&mb).then(la.cmp(&lb)).then_with(|| ba.cmp(bb))
}

fn len_u64(len: usize) -> u64 {
    // usize is at most 64 bits on every supported target.
    u64::try_from(len).unwrap_or(u64::MAX)
}

/// Appends a head (initial byte and argument) in its shortest form.
#[inline]
pub(crate) fn write_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    if arg < 24 {
        out.push(m | arg as u8);
    } else if arg <= 0xff {
        out.extend_from_slice(&[m | 24, arg as u8]);
    } else if arg <= 0xffff {
        let b = (arg as u16).to_be_bytes();
        out.extend_from_slice(&[m | 25, b[0], b[1]]);
    } else if arg <= 0xffff_ffff {
        let b = (arg as u32).to_be_bytes();
        out.extend_from_slice(&[m | 26, b[0], b[1], b[2], b[3]]);
    } else {
        out.push(m | 27);
        out.extend_from_slice(&arg.to_be_bytes());
    }
}

/// The length of the head [`write_head`] writes for `arg`: what a writer
/// that appends items later needs to know the encoding's size in advance
/// (see `batch::BatchWriter`).
#[inline]
pub(crate) const fn head_len(arg: u64) -> usize {
    match arg {
        0..24 => 1,
        24..0x100 => 2,
        0x100..0x1_0000 => 3,
        0x1_0000..0x1_0000_0000 => 5,
        _ => 9,
    }
}

/// Appends an unsigned integer.
#[inline]
pub(crate) fn write_uint(out: &mut Vec<u8>, v: u64) {
    write_head(out, major::UINT, v);
}

/// Appends a signed integer.
#[inline]
pub(crate) fn write_int(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        write_head(out, major::UINT, v as u64);
    } else {
        // -1 - v, which is !v in two's complement.
        write_head(out, major::NINT, !(v as u64));
    }
}

/// Appends an integer, as a bignum when it needs more than 64 bits (as ciborium does).
fn write_i128(out: &mut Vec<u8>, v: i128) {
    if let Some((m, arg)) = int_head(v) {
        write_head(out, m, arg);
        return;
    }
    let (tag, raw) = if v < 0 { (TAG_BIGNEG, !(v as u128)) } else { (TAG_BIGPOS, v as u128) };
    let bytes = raw.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    write_head(out, major::TAG, tag);
    write_bytes(out, &bytes[skip..]);
}

/// Appends a text string.
#[inline]
pub(crate) fn write_text(out: &mut Vec<u8>, s: &str) {
    write_head(out, major::TEXT, len_u64(s.len()));
    out.extend_from_slice(s.as_bytes());
}

/// Appends a byte string.
#[inline]
pub(crate) fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    write_head(out, major::BYTES, len_u64(b.len()));
    out.extend_from_slice(b);
}

/// Appends a float in the shortest of half, single and double precision
/// that holds it exactly (bit for bit, NaN payloads included).
#[inline]
pub(crate) fn write_float(out: &mut Vec<u8>, x: f64) {
    let mut buf = [0u8; 9];
    let n = float_encoding(x, &mut buf);
    out.extend_from_slice(&buf[..n]);
}

/// The deterministic encoding of `x` in `buf`; returns its length.
fn float_encoding(x: f64, buf: &mut [u8; 9]) -> usize {
    let half = f64_to_f16(x);
    if f16_to_f64(half).to_bits() == x.to_bits() {
        buf[0] = 0xf9;
        buf[1..3].copy_from_slice(&half.to_be_bytes());
        return 3;
    }
    let single = x as f32;
    if f64::from(single).to_bits() == x.to_bits() {
        buf[0] = 0xfa;
        buf[1..5].copy_from_slice(&single.to_bits().to_be_bytes());
        return 5;
    }
    buf[0] = 0xfb;
    buf[1..9].copy_from_slice(&x.to_bits().to_be_bytes());
    9
}

/// f64 to IEEE half precision bits, as the `half` crate's portable conversion
/// (used by ciborium) computes it: round to nearest, NaNs kept quiet with the
/// top of their payload. (`half` may use the F16C instruction instead; the two
/// agree wherever the result converts back exactly, all that matters here.)
fn f64_to_f16(value: f64) -> u16 {
    let val = value.to_bits();
    let x = (val >> 32) as u32;
    let sign = x & 0x8000_0000;
    let exp = x & 0x7ff0_0000;
    let man = x & 0x000f_ffff;
    if exp == 0x7ff0_0000 {
        let nan_bit = if man == 0 && (val as u32) == 0 { 0 } else { 0x0200 };
        return ((sign >> 16) | 0x7c00 | nan_bit | (man >> 10)) as u16;
    }
    let half_sign = sign >> 16;
    let half_exp = i64::from(exp >> 20) - 1023 + 15;
    if half_exp >= 0x1f {
        return (half_sign | 0x7c00) as u16;
    }
    if half_exp <= 0 {
        if 10 - half_exp > 21 {
            return half_sign as u16;
        }
        let man = man | 0x0010_0000;
        let shift = (11 - half_exp) as u32;
        let mut half_man = man >> shift;
        let round_bit = 1u32 << (shift - 1);
        if (man & round_bit) != 0 && (man & (3 * round_bit - 1)) != 0 {
            half_man += 1;
        }
        return (half_sign | half_man) as u16;
    }
    let half_exp = (half_exp as u32) << 10;
    let half_man = man >> 10;
    let round_bit = 0x0000_0200;
    if (man & round_bit) != 0 && (man & (3 * round_bit - 1)) != 0 {
        ((half_sign | half_exp | half_man) + 1) as u16
    } else {
        (half_sign | half_exp | half_man) as u16
    }
}

/// IEEE half precision bits to f64, exactly; NaNs become quiet, keeping their payload.
fn f16_to_f64(i: u16) -> f64 {
    if i & 0x7fff == 0 {
        return f64::from_bits(u64::from(i) << 48);
    }
    let half_sign = u64::from(i & 0x8000);
    let half_exp = u64::from(i & 0x7c00);
    let half_man = u64::from(i & 0x03ff);
    if half_exp == 0x7c00 {
        return if half_man == 0 {
            f64::from_bits((half_sign << 48) | 0x7ff0_0000_0000_0000)
        } else {
            f64::from_bits((half_sign << 48) | 0x7ff8_0000_0000_0000 | (half_man << 42))
        };
    }
    let sign = half_sign << 48;
    if half_exp == 0 {
        // Subnormal: normalize. half_man is in 1..=0x3ff here.
        let e = u64::from((half_man as u16).leading_zeros()) - 6;
        let exp = (1023 - 15 - e) << 52;
        let man = (half_man << (43 + e)) & 0x000f_ffff_ffff_ffff;
        return f64::from_bits(sign | exp | man);
    }
    let exp = ((half_exp >> 10) + 1023 - 15) << 52;
    f64::from_bits(sign | exp | (half_man << 42))
}

// --- strict decoding -----------------------------------------------------------

/// Decodes one deterministic CBOR item that spans all of `bytes`.
///
/// Errors, in order of precedence: [`CborError::Malformed`] anywhere in the
/// item, then [`CborError::TrailingBytes`], then [`CborError::NonCanonical`]
/// (which includes a map holding the same key twice).
pub fn from_slice(bytes: &[u8]) -> Result<Value, CborError> {
    check(bytes, Duplicates::Reject)?;
    let mut reader = Reader::new(bytes);
    let value = reader.value()?;
    reader.finish()?;
    Ok(value)
}

/// Whether [`check`] accepts a map key equal to the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Duplicates {
    /// A repeated key is non-canonical ([`from_slice`]).
    Reject,
    /// A repeated key passes, for a decoder that reports it with its own
    /// error (the event and batch codecs). Keys must still be in order, so
    /// repeated keys are adjacent.
    Allow,
}

/// Checks that `bytes` is exactly one deterministic CBOR item, in one pass,
/// without building it. After `Ok`, [`Reader`] can read the bytes.
pub(crate) fn check(bytes: &[u8], duplicates: Duplicates) -> Result<(), CborError> {
    let mut checker = Checker {
        bytes,
        pos: 0,
        canonical: true,
        allow_duplicates: duplicates == Duplicates::Allow,
    };
    checker.item(MAX_DEPTH)?;
    if checker.pos != bytes.len() {
        return Err(CborError::TrailingBytes);
    }
    if !checker.canonical {
        return Err(CborError::NonCanonical);
    }
    Ok(())
}

fn malformed(what: &'static str, at: usize) -> CborError {
    CborError::Malformed(Malformed::At { what, at })
}

fn eof(at: usize) -> CborError {
    malformed("unexpected end of input", at)
}

fn internal() -> CborError {
    CborError::Malformed(Malformed::ReadBack)
}

/// The strict single-pass checker. It accepts the same inputs as ciborium's
/// reader (with the same recursion limit), and records rather than reports a
/// non-deterministic form, so that a malformed item later in the input still
/// wins, as it did when decoding came before re-encoding.
struct Checker<'a> {
    bytes: &'a [u8],
    pos: usize,
    canonical: bool,
    allow_duplicates: bool,
}

impl<'a> Checker<'a> {
    #[inline]
    fn byte(&mut self) -> Result<u8, CborError> {
        let b = *self.bytes.get(self.pos).ok_or_else(|| eof(self.pos))?;
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    fn take(&mut self, len: u64) -> Result<&'a [u8], CborError> {
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| self.pos.checked_add(len))
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| eof(self.bytes.len()))?;
        let s = self.bytes.get(self.pos..end).ok_or_else(|| eof(self.pos))?;
        self.pos = end;
        Ok(s)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], CborError> {
        let at = self.pos;
        self.take(N as u64)?.try_into().map_err(|_| eof(at))
    }

    /// The argument of a head with additional information `ai` (0..=27),
    /// noting an argument that a shorter head could hold.
    #[inline]
    fn argument(&mut self, ai: u8, at: usize) -> Result<u64, CborError> {
        let (arg, min) = match ai {
            0..=23 => return Ok(u64::from(ai)),
            24 => (u64::from(self.byte()?), 24),
            25 => (u64::from(u16::from_be_bytes(self.array()?)), 0x100),
            26 => (u64::from(u32::from_be_bytes(self.array()?)), 0x1_0000),
            27 => (u64::from_be_bytes(self.array()?), 0x1_0000_0000),
            _ => return Err(malformed("reserved additional information", at)),
        };
        if arg < min {
            self.canonical = false;
        }
        Ok(arg)
    }

    fn item(&mut self, depth: usize) -> Result<(), CborError> {
        let at = self.pos;
        let initial = self.byte()?;
        let (m, ai) = (initial >> 5, initial & 0x1f);
        if m == major::SIMPLE {
            return self.simple(ai, at);
        }
        if ai == 31 {
            return self.indefinite(m, depth, at);
        }
        let arg = self.argument(ai, at)?;
        match m {
            major::UINT | major::NINT => Ok(()),
            major::BYTES => self.take(arg).map(drop),
            major::TEXT => {
                let s = self.take(arg)?;
                if std::str::from_utf8(s).is_err() {
                    return Err(malformed("invalid UTF-8 in a text string", at));
                }
                Ok(())
            }
            major::ARRAY => {
                let inner = nested(depth, at)?;
                for _ in 0..arg {
                    self.item(inner)?;
                }
                Ok(())
            }
            major::MAP => {
                let inner = nested(depth, at)?;
                self.map_entries(arg, inner)
            }
            _ => self.tag(arg, depth),
        }
    }

    fn map_entries(&mut self, len: u64, depth: usize) -> Result<(), CborError> {
        let mut prev: Option<(usize, usize)> = None;
        for _ in 0..len {
            let start = self.pos;
            self.item(depth)?;
            let end = self.pos;
            if let Some((ps, pe)) = prev
                && self.canonical
            {
                let previous = self.bytes.get(ps..pe).unwrap_or_default();
                let key = self.bytes.get(start..end).unwrap_or_default();
                match previous.cmp(key) {
                    Ordering::Less => {}
                    Ordering::Equal if self.allow_duplicates => {}
                    _ => self.canonical = false,
                }
            }
            prev = Some((start, end));
            self.item(depth)?;
        }
        Ok(())
    }

    fn tag(&mut self, tag: u64, depth: usize) -> Result<(), CborError> {
        if tag == TAG_BIGPOS || tag == TAG_BIGNEG {
            // ciborium reads a bignum with a definite byte string of at most
            // 16 bytes as an integer (no nesting level); the deterministic
            // form of one is a bignum only above 64 bits, without leading zeros.
            let (save_pos, save_canonical) = (self.pos, self.canonical);
            let at = self.pos;
            let next = *self.bytes.get(self.pos).ok_or_else(|| eof(self.pos))?;
            if next >> 5 == major::BYTES && next & 0x1f != 31 {
                self.pos += 1;
                let len = self.argument(next & 0x1f, at)?;
                if len <= 16 {
                    let content = self.take(len)?;
                    let digits = content.iter().skip_while(|b| **b == 0).count();
                    let top = content.len() - digits;
                    if tag == TAG_BIGNEG
                        && digits == 16
                        && content.get(top).is_some_and(|b| *b >= 0x80)
                    {
                        return Err(malformed("negative bignum below -2^127", at));
                    }
                    if top != 0 || digits <= 8 {
                        self.canonical = false;
                    }
                    return Ok(());
                }
                (self.pos, self.canonical) = (save_pos, save_canonical);
            }
        }
        let inner = nested(depth, self.pos)?;
        self.item(inner)
    }

    fn simple(&mut self, ai: u8, at: usize) -> Result<(), CborError> {
        let x = match ai {
            20..=22 => return Ok(()),
            // `undefined` reads as null, whose encoding is 0xf6.
            23 => {
                self.canonical = false;
                return Ok(());
            }
            24 => {
                return match self.byte()? {
                    20..=23 => {
                        self.canonical = false;
                        Ok(())
                    }
                    _ => Err(malformed("unknown simple value", at)),
                };
            }
            25 => f16_to_f64(u16::from_be_bytes(self.array()?)),
            26 => f64::from(f32::from_be_bytes(self.array()?)),
            27 => f64::from_be_bytes(self.array()?),
            0..=19 => return Err(malformed("unknown simple value", at)),
            31 => return Err(malformed("unexpected break", at)),
            _ => return Err(malformed("reserved additional information", at)),
        };
        let mut buf = [0u8; 9];
        let n = float_encoding(x, &mut buf);
        if self.bytes.get(at..self.pos) != buf.get(..n) {
            self.canonical = false;
        }
        Ok(())
    }

    /// An indefinite-length item (never deterministic, but it must be well-formed).
    fn indefinite(&mut self, m: u8, depth: usize, at: usize) -> Result<(), CborError> {
        self.canonical = false;
        match m {
            major::BYTES | major::TEXT => self.chunks(m),
            major::ARRAY => {
                let inner = nested(depth, at)?;
                while !self.at_break() {
                    self.item(inner)?;
                }
                self.pos += 1;
                Ok(())
            }
            major::MAP => {
                let inner = nested(depth, at)?;
                while !self.at_break() {
                    self.item(inner)?;
                    self.item(inner)?;
                }
                self.pos += 1;
                Ok(())
            }
            _ => Err(malformed("indefinite length on an integer or tag", at)),
        }
    }

    fn at_break(&self) -> bool {
        self.bytes.get(self.pos) == Some(&BREAK)
    }

    /// The chunks of an indefinite-length string, up to its break. Like
    /// ciborium, accepts indefinite chunks nested inside (each needs its own
    /// break); each definite text chunk must be UTF-8 on its own.
    fn chunks(&mut self, m: u8) -> Result<(), CborError> {
        let mut open = 1usize;
        loop {
            let at = self.pos;
            let initial = self.byte()?;
            if initial == BREAK {
                open -= 1;
                if open == 0 {
                    return Ok(());
                }
                continue;
            }
            if initial >> 5 != m {
                return Err(malformed("string chunk of another type", at));
            }
            let ai = initial & 0x1f;
            if ai == 31 {
                open += 1;
                continue;
            }
            let len = self.argument(ai, at)?;
            let chunk = self.take(len)?;
            if m == major::TEXT && std::str::from_utf8(chunk).is_err() {
                return Err(malformed("invalid UTF-8 in a text string", at));
            }
        }
    }
}

/// The depth left inside a container or tag found with `depth` left.
fn nested(depth: usize, at: usize) -> Result<usize, CborError> {
    depth.checked_sub(1).ok_or(CborError::Malformed(Malformed::TooDeep { at }))
}

/// One data item's head as [`Reader::next`] reads it: scalars whole,
/// strings as slices of the input, containers and tags as their head only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Item<'a> {
    /// Major type 0.
    Uint(u64),
    /// Major type 1: the value is -1 minus this.
    Nint(u64),
    /// A byte string.
    Bytes(&'a [u8]),
    /// A text string's bytes (UTF-8 only if [`check`] has seen them).
    Text(&'a [u8]),
    /// An array of this many items, which follow.
    Array(u64),
    /// A map of this many pairs, which follow.
    Map(u64),
    /// A tag; its content follows.
    Tag(u64),
    /// `false` or `true`.
    Bool(bool),
    /// `null`.
    Null,
    /// A float of any width.
    Float(f64),
}

/// Reads items from bytes that [`check`] accepted, or (as a fast path that
/// gives up at the first surprise) from unchecked bytes: see [`Reader::next`].
/// It never panics; on bytes it cannot read it returns [`CborError::Malformed`].
#[derive(Clone)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, pos: 0 }
    }

    /// Whether every byte has been read.
    pub(crate) fn at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }

    /// How many bytes have been read: where the next item starts.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Checks that every byte has been read.
    pub(crate) fn finish(&self) -> Result<(), CborError> {
        if self.at_end() { Ok(()) } else { Err(internal()) }
    }

    /// The next key of an integer-keyed map whose keys index `seen`, for a
    /// decoder that reads each field once: `Some(key)` the first time a key
    /// comes; `None` for a repeat, whose value is skipped and which is
    /// noted in `duplicate` (the first one), to be reported once every key
    /// is known to be valid.
    pub(crate) fn map_key<E: From<CborError> + From<MapError>>(
        &mut self,
        seen: &mut [bool],
        duplicate: &mut Option<u64>,
    ) -> Result<Option<u64>, E> {
        let Item::Uint(k) = self.next()? else {
            return Err(MapError::BadKey.into());
        };
        let Some(seen) = usize::try_from(k).ok().and_then(|i| seen.get_mut(i)) else {
            return Err(MapError::UnknownKey(k).into());
        };
        if *seen {
            duplicate.get_or_insert(k);
            self.skip()?;
            return Ok(None);
        }
        *seen = true;
        Ok(Some(k))
    }

    /// Reads one field with `read`, for a decoder that reports a field's
    /// error only after it has seen every key: returns `read`'s result,
    /// having moved past the whole item even where `read` stopped inside it.
    pub(crate) fn slot<T, E>(
        &mut self,
        read: impl FnOnce(&mut Reader<'a>) -> Result<T, E>,
    ) -> Result<Option<Result<T, E>>, CborError> {
        let start = self.pos;
        let result = read(self);
        if result.is_err() {
            self.pos = start;
            self.skip()?;
        }
        Ok(Some(result))
    }

    /// At most `n`, and at most the bytes left: a safe capacity for `n` items.
    pub(crate) fn capacity(&self, n: u64) -> usize {
        usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len() - self.pos.min(self.bytes.len()))
    }

    #[inline(always)]
    fn byte(&mut self) -> Result<u8, CborError> {
        let b = *self.bytes.get(self.pos).ok_or_else(internal)?;
        self.pos += 1;
        Ok(b)
    }

    #[inline(always)]
    fn take(&mut self, len: u64) -> Result<&'a [u8], CborError> {
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| self.pos.checked_add(len))
            .ok_or_else(internal)?;
        let s = self.bytes.get(self.pos..end).ok_or_else(internal)?;
        self.pos = end;
        Ok(s)
    }

    #[inline(always)]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], CborError> {
        self.take(N as u64)?.try_into().map_err(|_| internal())
    }

    /// The next item's head (and a scalar's or string's content). Strict:
    /// a head that is not the shortest, an indefinite length, a float not in
    /// its shortest form or a simple value other than false, true and null is
    /// an error (never met after [`check`]; the sign to give up for a caller
    /// reading unchecked bytes). Text is not checked for UTF-8 here.
    #[inline(always)]
    pub(crate) fn next(&mut self) -> Result<Item<'a>, CborError> {
        let start = self.pos;
        let initial = self.byte()?;
        let (m, ai) = (initial >> 5, initial & 0x1f);
        if m == major::SIMPLE {
            let x = match ai {
                20 => return Ok(Item::Bool(false)),
                21 => return Ok(Item::Bool(true)),
                22 => return Ok(Item::Null),
                25 => f16_to_f64(u16::from_be_bytes(self.array()?)),
                26 => f64::from(f32::from_be_bytes(self.array()?)),
                27 => f64::from_be_bytes(self.array()?),
                _ => return Err(internal()),
            };
            let mut buf = [0u8; 9];
            let n = float_encoding(x, &mut buf);
            if self.bytes.get(start..self.pos) != buf.get(..n) {
                return Err(internal());
            }
            return Ok(Item::Float(x));
        }
        let (arg, min) = match ai {
            0..=23 => (u64::from(ai), 0),
            24 => (u64::from(self.byte()?), 24),
            25 => (u64::from(u16::from_be_bytes(self.array()?)), 0x100),
            26 => (u64::from(u32::from_be_bytes(self.array()?)), 0x1_0000),
            27 => (u64::from_be_bytes(self.array()?), 0x1_0000_0000),
            _ => return Err(internal()),
        };
        if arg < min {
            return Err(internal());
        }
        Ok(match m {
            major::UINT => Item::Uint(arg),
            major::NINT => Item::Nint(arg),
            major::BYTES => Item::Bytes(self.take(arg)?),
            major::TEXT => Item::Text(self.take(arg)?),
            major::ARRAY => Item::Array(arg),
            major::MAP => Item::Map(arg),
            _ => Item::Tag(arg),
        })
    }

    /// Skips one whole item.
    pub(crate) fn skip(&mut self) -> Result<(), CborError> {
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            let more = match self.next()? {
                Item::Array(n) => Some(n),
                Item::Map(n) => n.checked_mul(2),
                Item::Tag(_) => Some(1),
                _ => Some(0),
            };
            pending = more.and_then(|n| pending.checked_add(n)).ok_or_else(internal)?;
        }
        Ok(())
    }

    /// The next item as a value, as ciborium would have decoded it.
    fn value(&mut self) -> Result<Value, CborError> {
        Ok(match self.next()? {
            Item::Uint(u) => Value::Integer(u.into()),
            Item::Nint(n) => Value::from(-1 - i128::from(n)),
            Item::Bytes(b) => Value::Bytes(b.to_vec()),
            Item::Text(t) => Value::Text(text(t)?.to_owned()),
            Item::Array(n) => {
                let mut items = Vec::with_capacity(self.capacity(n));
                for _ in 0..n {
                    items.push(self.value()?);
                }
                Value::Array(items)
            }
            Item::Map(n) => {
                let mut entries = Vec::with_capacity(self.capacity(n));
                for _ in 0..n {
                    let k = self.value()?;
                    entries.push((k, self.value()?));
                }
                Value::Map(entries)
            }
            Item::Tag(tag) => Value::Tag(tag, Box::new(self.value()?)),
            Item::Bool(b) => Value::Bool(b),
            Item::Null => Value::Null,
            Item::Float(f) => Value::Float(f),
        })
    }
}

/// A checked text string's bytes as `str`.
#[inline]
pub(crate) fn text(bytes: &[u8]) -> Result<&str, CborError> {
    std::str::from_utf8(bytes).map_err(|_| internal())
}

/// Reads a map with small unsigned integer keys in strictly increasing order,
/// as every Vouch structure is. Unknown keys are an error so that a field the
/// reader does not understand is never silently ignored.
pub fn int_keyed_map(value: Value, known: &[u64]) -> Result<Vec<(u64, Value)>, MapError> {
    let Value::Map(entries) = value else {
        return Err(MapError::NotAMap);
    };
    let mut out = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        let key = match k {
            Value::Integer(i) => u64::try_from(i).map_err(|_| MapError::BadKey)?,
            _ => return Err(MapError::BadKey),
        };
        if !known.contains(&key) {
            return Err(MapError::UnknownKey(key));
        }
        out.push((key, v));
    }
    Ok(out)
}

/// Why a CBOR value is not the integer-keyed map a structure expects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// The item is not a map.
    #[error("expected a CBOR map")]
    NotAMap,
    /// A key is not an unsigned integer.
    #[error("map key is not an unsigned integer")]
    BadKey,
    /// A key that this version of the format does not define.
    #[error("unknown map key {0}")]
    UnknownKey(u64),
}

/// Test inputs shared by the codec tests: arbitrary values, and a loose
/// encoder that writes a value in any of its well-formed but (usually)
/// non-deterministic encodings.
#[cfg(test)]
pub(crate) mod testing {
    use super::{TAG_BIGNEG, TAG_BIGPOS, major};
    use ciborium::Value;
    use proptest::prelude::*;

    /// Integers across every head width and sign, bignum range included.
    pub(crate) fn arb_integer() -> impl Strategy<Value = Value> {
        prop_oneof![
            (0u64..30).prop_map(|n| Value::Integer(n.into())),
            any::<u64>().prop_map(|n| Value::Integer(n.into())),
            any::<i64>().prop_map(|n| Value::Integer(n.into())),
            (-(1i128 << 64)..-(1i128 << 63)).prop_map(Value::from),
            any::<u128>().prop_map(Value::from),
            any::<i128>().prop_map(Value::from),
        ]
    }

    /// Floats: every bit pattern (NaN payloads too) and the usual suspects.
    pub(crate) fn arb_float() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<u64>().prop_map(|b| Value::Float(f64::from_bits(b))),
            any::<u32>().prop_map(|b| Value::Float(f64::from(f32::from_bits(b)))),
            any::<u16>().prop_map(|b| Value::Float(super::f16_to_f64(b))),
            prop::sample::select(vec![
                0.0,
                -0.0,
                1.0,
                1.5,
                65504.0,
                65520.0,
                100000.0,
                5.960464477539063e-8,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NAN,
                f64::MAX,
                f64::MIN_POSITIVE,
            ])
            .prop_map(Value::Float),
        ]
    }

    /// Text from a small pool (so that map keys repeat) or arbitrary.
    pub(crate) fn arb_text() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec!["", "a", "b", "aa", "type", "data", "id", "é", "\u{10000}"])
                .prop_map(str::to_owned),
            "\\PC{0,12}",
        ]
    }

    pub(crate) fn arb_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            3 => arb_integer(),
            2 => arb_float(),
            3 => arb_text().prop_map(Value::Text),
            1 => prop::collection::vec(any::<u8>(), 0..20).prop_map(Value::Bytes),
            1 => any::<bool>().prop_map(Value::Bool),
            1 => Just(Value::Null),
        ]
    }

    /// Any value: nested arrays, maps (keys of any type, sometimes
    /// repeated, in any order) and tags (bignum tags included).
    pub(crate) fn arb_value() -> impl Strategy<Value = Value> {
        arb_leaf().prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((inner.clone(), inner.clone()), 0..5).prop_map(Value::Map),
                prop::collection::vec((arb_text().prop_map(Value::Text), inner.clone()), 0..5)
                    .prop_map(Value::Map),
                (prop_oneof![Just(TAG_BIGPOS), Just(TAG_BIGNEG), 0u64..30, any::<u64>()], inner)
                    .prop_map(|(t, v)| Value::Tag(t, Box::new(v))),
            ]
        })
    }

    /// Choices for [`loose`], read in a cycle; mostly the deterministic one.
    pub(crate) struct Choices {
        bytes: Vec<u8>,
        at: usize,
    }

    impl Choices {
        pub(crate) fn new(bytes: Vec<u8>) -> Choices {
            Choices { bytes, at: 0 }
        }

        fn next(&mut self) -> u8 {
            let b = self.bytes.get(self.at % self.bytes.len().max(1)).copied().unwrap_or(0xff);
            self.at += 1;
            b
        }

        /// True about once in `n` draws.
        fn one_in(&mut self, n: u8) -> bool {
            self.next().is_multiple_of(n)
        }
    }

    /// A head of the shortest or (by choice) a longer width.
    fn head(out: &mut Vec<u8>, m: u8, arg: u64, c: &mut Choices) {
        match c.next() % 10 {
            0 if arg <= 0xff => out.extend_from_slice(&[(m << 5) | 24, arg as u8]),
            1 if arg <= 0xffff => {
                out.push((m << 5) | 25);
                out.extend_from_slice(&(arg as u16).to_be_bytes());
            }
            2 if arg <= 0xffff_ffff => {
                out.push((m << 5) | 26);
                out.extend_from_slice(&(arg as u32).to_be_bytes());
            }
            3 => {
                out.push((m << 5) | 27);
                out.extend_from_slice(&arg.to_be_bytes());
            }
            _ => super::write_head(out, m, arg),
        }
    }

    /// A string's content as one definite string, or as indefinite chunks
    /// (split anywhere, so text chunks may not be UTF-8 on their own, and
    /// sometimes empty or themselves indefinite).
    fn string(out: &mut Vec<u8>, m: u8, content: &[u8], c: &mut Choices) {
        chunked(out, m, content, c, 2);
    }

    fn chunked(out: &mut Vec<u8>, m: u8, content: &[u8], c: &mut Choices, nest: u8) {
        if !c.one_in(6) {
            head(out, m, content.len() as u64, c);
            out.extend_from_slice(content);
            return;
        }
        out.push((m << 5) | 31);
        let mut rest = content;
        let mut budget = content.len() + 2;
        while !rest.is_empty() || (budget > 0 && c.one_in(4)) {
            budget = budget.saturating_sub(1);
            let n = if budget == 0 { rest.len() } else { (c.next() as usize % 4).min(rest.len()) };
            let (chunk, tail) = rest.split_at(n);
            if nest > 0 && c.one_in(8) {
                chunked(out, m, chunk, c, nest - 1);
            } else {
                head(out, m, n as u64, c);
                out.extend_from_slice(chunk);
            }
            rest = tail;
        }
        out.push(0xff);
    }

    /// `value` in a well-formed encoding chosen by `c`: heads of any width,
    /// indefinite lengths and chunked strings, map entries in their given
    /// order (unsorted) or sorted, floats wider than needed, `null` as
    /// `undefined`, simple values in two bytes, bignums for small integers.
    pub(crate) fn loose(value: &Value, c: &mut Choices) -> Vec<u8> {
        let mut out = Vec::new();
        loose_into(value, &mut out, c);
        out
    }

    fn loose_into(value: &Value, out: &mut Vec<u8>, c: &mut Choices) {
        match value {
            Value::Integer(i) => {
                let i = i128::from(*i);
                let (m, arg) =
                    if i >= 0 { (major::UINT, i as u64) } else { (major::NINT, (-1 - i) as u64) };
                if c.one_in(12) {
                    let tag = if m == major::UINT { TAG_BIGPOS } else { TAG_BIGNEG };
                    head(out, major::TAG, tag, c);
                    let mut digits = arg.to_be_bytes().to_vec();
                    if !c.one_in(2) {
                        digits.retain({
                            let mut leading = true;
                            move |b| {
                                leading &= *b == 0;
                                !leading
                            }
                        });
                    }
                    string(out, major::BYTES, &digits, c);
                } else {
                    head(out, m, arg, c);
                }
            }
            Value::Bytes(b) => string(out, major::BYTES, b, c),
            Value::Text(t) => string(out, major::TEXT, t.as_bytes(), c),
            Value::Array(items) => {
                let indefinite = c.one_in(6);
                if indefinite {
                    out.push(0x9f);
                } else {
                    head(out, major::ARRAY, items.len() as u64, c);
                }
                for item in items {
                    loose_into(item, out, c);
                }
                if indefinite {
                    out.push(0xff);
                }
            }
            Value::Map(entries) => {
                let indefinite = c.one_in(6);
                if indefinite {
                    out.push(0xbf);
                } else {
                    head(out, major::MAP, entries.len() as u64, c);
                }
                let mut encoded: Vec<(Vec<u8>, Vec<u8>)> =
                    entries.iter().map(|(k, v)| (loose(k, c), loose(v, c))).collect();
                if !c.one_in(3) {
                    encoded.sort_by(|a, b| a.0.cmp(&b.0));
                }
                for (k, v) in encoded {
                    out.extend_from_slice(&k);
                    out.extend_from_slice(&v);
                }
                if indefinite {
                    out.push(0xff);
                }
            }
            Value::Tag(tag, inner) => {
                head(out, major::TAG, *tag, c);
                loose_into(inner, out, c);
            }
            Value::Float(f) => match c.next() % 8 {
                0 if f64::from(*f as f32).to_bits() == f.to_bits() => {
                    out.push(0xfa);
                    out.extend_from_slice(&(*f as f32).to_bits().to_be_bytes());
                }
                1 => {
                    out.push(0xfb);
                    out.extend_from_slice(&f.to_bits().to_be_bytes());
                }
                _ => super::write_float(out, *f),
            },
            Value::Bool(b) => {
                let v = if *b { 21 } else { 20 };
                if c.one_in(10) { out.extend_from_slice(&[0xf8, v]) } else { out.push(0xe0 | v) }
            }
            Value::Null => match c.next() % 12 {
                0 => out.push(0xf7),
                1 => out.extend_from_slice(&[0xf8, 22]),
                _ => out.push(0xf6),
            },
            other => out.extend_from_slice(&super::to_vec(other)),
        }
    }

    /// Byte-level damage: each edit sets, inserts or deletes a byte, or cuts the input.
    pub(crate) fn mutate(mut bytes: Vec<u8>, edits: &[(prop::sample::Index, u8, u8)]) -> Vec<u8> {
        for (at, op, byte) in edits {
            let i = at.index(bytes.len() + 1);
            match op % 4 {
                0 if i < bytes.len() => bytes[i] = *byte,
                1 => bytes.insert(i, *byte),
                2 if i < bytes.len() => {
                    bytes.remove(i);
                }
                3 => bytes.truncate(i),
                _ => {}
            }
        }
        bytes
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::oracle;

    #[test]
    fn sorts_keys_by_encoded_bytes() {
        // 10 (0x0a) sorts before 100 (0x18 0x64), and "b" before "aa" (shorter first).
        let v = Value::Map(vec![
            (Value::Integer(100.into()), Value::Null),
            (Value::Integer(10.into()), Value::Null),
        ]);
        assert_eq!(to_vec(&v), [0xa2, 0x0a, 0xf6, 0x18, 0x64, 0xf6]);
        let t = Value::Map(vec![
            (Value::Text("aa".into()), Value::Null),
            (Value::Text("b".into()), Value::Null),
        ]);
        assert_eq!(to_vec(&t)[1..3], [0x61, b'b']);
    }

    #[test]
    fn head_len_is_the_length_write_head_writes() {
        let edges = [0, 23, 24, 0xff, 0x100, 0xffff, 0x1_0000, 0xffff_ffff, 0x1_0000_0000];
        for arg in edges.into_iter().chain([u64::MAX]) {
            let mut out = Vec::new();
            write_head(&mut out, major::ARRAY, arg);
            assert_eq!(head_len(arg), out.len(), "{arg}");
        }
    }

    #[test]
    fn rejects_each_non_canonical_form() {
        // Over-long integer head: 1 as 0x18 0x01.
        assert_eq!(from_slice(&[0x18, 0x01]), Err(CborError::NonCanonical));
        // Indefinite-length array.
        assert_eq!(from_slice(&[0x9f, 0x01, 0xff]), Err(CborError::NonCanonical));
        // Unsorted map keys.
        assert_eq!(from_slice(&[0xa2, 0x02, 0xf6, 0x01, 0xf6]), Err(CborError::NonCanonical));
        // A float that fits in half precision written as double.
        assert_eq!(from_slice(&[0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]), Err(CborError::NonCanonical));
        assert_eq!(from_slice(&[0x01, 0x01]), Err(CborError::TrailingBytes));
        assert!(matches!(from_slice(&[0x1c]), Err(CborError::Malformed(_))));
        assert!(matches!(from_slice(&[]), Err(CborError::Malformed(_))));
    }

    #[test]
    fn rejects_duplicate_map_keys() {
        // {1: null, 1: null}: sorted, but the key repeats.
        assert_eq!(from_slice(&[0xa2, 0x01, 0xf6, 0x01, 0xf6]), Err(CborError::NonCanonical));
        // {"a": 1, "a": 2}, nested in an array.
        let nested = [0x81, 0xa2, 0x61, b'a', 0x01, 0x61, b'a', 0x02];
        assert_eq!(from_slice(&nested), Err(CborError::NonCanonical));
        // Equal values under distinct keys are fine.
        assert!(from_slice(&[0xa2, 0x01, 0xf6, 0x02, 0xf6]).is_ok());
        // The old reader let them through: this is the one intended difference.
        assert!(oracle::cbor::from_slice(&[0xa2, 0x01, 0xf6, 0x01, 0xf6]).is_ok());
        // The event and batch codecs see them, to report them by name.
        assert_eq!(check(&[0xa2, 0x01, 0xf6, 0x01, 0xf6], Duplicates::Allow), Ok(()));
        // A malformed item after the repeated key still wins.
        assert!(matches!(
            from_slice(&[0xa2, 0x01, 0xf6, 0x01, 0x1c]),
            Err(CborError::Malformed(_))
        ));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = vec![0x81u8; 100_000];
        assert!(matches!(from_slice(&deep), Err(CborError::Malformed(_))));
        // Exactly MAX_DEPTH containers (or tags) are fine; one more is not.
        let mut ok = vec![0x81u8; MAX_DEPTH];
        ok.push(0x00);
        assert!(from_slice(&ok).is_ok());
        let mut over = vec![0x81u8; MAX_DEPTH + 1];
        over.push(0x00);
        assert!(matches!(from_slice(&over), Err(CborError::Malformed(_))));
        let mut tags = vec![0xc6u8; MAX_DEPTH];
        tags.push(0x00);
        assert!(from_slice(&tags).is_ok());
        tags.insert(0, 0xc6);
        assert!(matches!(from_slice(&tags), Err(CborError::Malformed(_))));
        // Every kind of level, around the limit, as the reference counts them.
        let levels: [&[u8]; 5] = [&[0x81], &[0xa1, 0x00], &[0xc6], &[0x9f], &[0xbf, 0x00]];
        for depth in MAX_DEPTH - 2..MAX_DEPTH + 2 {
            for i in 0..levels.len() {
                for inner in [&[0x00][..], &[0xc2, 0x49, 1, 0, 0, 0, 0, 0, 0, 0, 0], &[0x80]] {
                    let mut bytes = Vec::new();
                    for d in 0..depth {
                        bytes.extend_from_slice(levels[(i + d) % levels.len()]);
                    }
                    bytes.extend_from_slice(inner);
                    for d in (0..depth).rev() {
                        if levels[(i + d) % levels.len()][0] & 0x1f == 31 {
                            bytes.push(0xff);
                        }
                    }
                    assert_same_outcome(&bytes);
                }
            }
        }
    }

    #[test]
    fn int_keyed_map_rejects_unknown_keys() {
        let v = Value::Map(vec![(Value::Integer(7.into()), Value::Null)]);
        assert_eq!(int_keyed_map(v, &[0, 1]), Err(MapError::UnknownKey(7)));
        assert_eq!(int_keyed_map(Value::Null, &[0]), Err(MapError::NotAMap));
    }

    #[test]
    fn half_precision_conversions_match_the_half_crate_rules() {
        for bits in 0..=u16::MAX {
            let x = f16_to_f64(bits);
            let quiet_nan = bits & 0x7c00 == 0x7c00 && bits & 0x0200 != 0;
            if !x.is_nan() || quiet_nan {
                assert_eq!(f64_to_f16(x), bits, "{bits:#06x}");
            }
        }
        assert_eq!(f64_to_f16(1.0 + f64::EPSILON), 0x3c00);
        assert_eq!(f64_to_f16(65520.0), 0x7c00);
        assert_eq!(f64_to_f16(1e-10), 0);
    }

    /// Old-style tests on the odd corners of what ciborium accepted.
    #[test]
    fn agrees_with_the_reference_on_corner_cases() {
        let cases: Vec<Vec<u8>> = vec![
            vec![0xf8, 0x14],                               // false in the two-byte form
            vec![0xf8, 0x18],                               // unknown simple value
            vec![0xf0],                                     // unknown simple value
            vec![0xf7],                                     // undefined
            vec![0xff],                                     // lone break
            vec![0x5f, 0x41, 0x00, 0x5f, 0xff, 0xff],       // nested indefinite chunks
            vec![0x7f, 0x61, 0xff, 0xff],                   // invalid UTF-8 chunk
            vec![0x7f, 0x41, 0x00, 0xff],                   // bytes chunk in text
            vec![0x62, 0xc3, 0xa9],                         // "é"
            vec![0x61, 0xc3],                               // truncated UTF-8
            vec![0xc2, 0x49, 1, 0, 0, 0, 0, 0, 0, 0, 0],    // bignum 2^64
            vec![0xc2, 0x4a, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], // with a leading zero
            vec![0xc2, 0x48, 1, 0, 0, 0, 0, 0, 0, 0],       // bignum that fits 64 bits
            vec![0xc3, 0x50, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], // below -2^127
            vec![0xc3, 0x50, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            vec![0xc2, 0x51, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], // 17 bytes
            vec![0xc2, 0x5f, 0xff], // bignum, indefinite bytes
            vec![0xc2, 0x61, b'a'], // bignum tag on text
            vec![0xd8, 0x02, 0x49, 1, 0, 0, 0, 0, 0, 0, 0, 0], // long tag head
            vec![0xc2],             // tag without content
            vec![0xf9, 0x7e, 0x00], // quiet NaN, half
            vec![0xf9, 0x7c, 0x01], // signalling NaN, half
            vec![0xfa, 0x7f, 0xc0, 0x00, 0x01], // NaN, single
            vec![0xfb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 1], // signalling NaN, double
            vec![0xfb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1], // quiet NaN, double
            vec![0xf9, 0x80, 0x00], // -0.0
            vec![0xfa, 0x47, 0xc3, 0x50, 0x00], // 100000.0
            vec![0xbf, 0x01, 0xff], // break in value position
            vec![0xbf, 0x01, 0x02, 0xff, 0x00], // indefinite map, trailing
            vec![0x1f],             // indefinite integer
            vec![0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // huge length
            vec![0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // huge array
            vec![0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // -2^64
            vec![0xa2, 0x61, b'b', 0x00, 0x62, b'a', b'a', 0x00], // "b" < "aa"
            vec![0xa2, 0x20, 0x00, 0x01, 0x00], // -1 before 1: unsorted
            vec![0x18, 0x01, 0x1c], // non-canonical, then trailing garbage
        ];
        for bytes in cases {
            assert_same_outcome(&bytes);
        }
    }

    /// `from_slice` and the reference give the same outcome (the message of a
    /// malformed input aside), and an accepted input re-encodes to itself.
    pub(crate) fn assert_same_outcome(bytes: &[u8]) {
        let ours = from_slice(bytes);
        let theirs = oracle::cbor::from_slice_unique(bytes);
        match (&ours, &theirs) {
            (Err(CborError::Malformed(_)), Err(CborError::Malformed(_))) => {}
            (Err(a), Err(b)) if a == b => {}
            (Ok(a), Ok(b)) => {
                assert_eq!(to_vec(a), bytes, "{bytes:02x?}");
                assert_eq!(oracle::cbor::to_vec(b), bytes, "{bytes:02x?}");
            }
            _ => panic!("{bytes:02x?}: ours {ours:?}, reference {theirs:?}"),
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// The direct encoder writes the bytes the ciborium-based one wrote.
        #[test]
        fn encoder_matches_the_reference(value in testing::arb_value()) {
            proptest::prop_assert_eq!(to_vec(&value), oracle::cbor::to_vec(&value));
        }

        /// The single-pass reader accepts and rejects what decoding, then
        /// re-encoding and comparing did (plus the repeated-key rule), on
        /// deterministic, loosely encoded and damaged inputs.
        #[test]
        fn decoder_matches_the_reference(
            value in testing::arb_value(),
            choices in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..48),
            edits in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(),
                 proptest::prelude::any::<u8>(),
                 proptest::prelude::any::<u8>()),
                0..3,
            ),
        ) {
            let canonical = to_vec(&value);
            assert_same_outcome(&canonical);
            let loose = testing::loose(&value, &mut testing::Choices::new(choices));
            assert_same_outcome(&loose);
            assert_same_outcome(&testing::mutate(canonical, &edits));
            assert_same_outcome(&testing::mutate(loose, &edits));
        }

        #[test]
        fn random_bytes_match_the_reference(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            assert_same_outcome(&bytes);
        }
    }
}
