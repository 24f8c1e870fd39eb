//! Keccak-256 of several messages at once, one message per SIMD lane.
//!
//! A verifier hashes every envelope's whole content (Streamr's signature
//! scheme signs it), tens of KiB per envelope, and the Keccak permutation
//! has no parallelism of its own that a single stream can use well: the
//! best single-stream assembly (keccak-asm, OpenSSL's CRYPTOGAMS) runs at
//! about 9 cycles a byte. Eight independent messages, each in one 64-bit
//! lane of AVX-512 registers, turn the same rounds into plain vector
//! instructions (rotate and three-input logic are single instructions
//! there), at a fraction of the cost per message. AVX2 does four lanes the
//! same way; a CPU with neither hashes one message at a time as before.
//!
//! The digests are the very bytes [`Keccak256`] gives (property tests hold
//! them equal for any lengths and any split into parts), so nothing that
//! is signed, logged or compared changes.

use keccak_asm::{Digest, Keccak256};

/// Keccak-256's rate: the bytes absorbed per permutation.
const RATE: usize = 136;
/// Lanes (u64 words) of the state that a block covers.
const RATE_WORDS: usize = RATE / 8;

/// The round constants of Keccak-f[1600] (FIPS 202, §3.2.5).
const RC: [u64; 24] = [
    0x0000_0000_0000_0001,
    0x0000_0000_0000_8082,
    0x8000_0000_0000_808A,
    0x8000_0000_8000_8000,
    0x0000_0000_0000_808B,
    0x0000_0000_8000_0001,
    0x8000_0000_8000_8081,
    0x8000_0000_0000_8009,
    0x0000_0000_0000_008A,
    0x0000_0000_0000_0088,
    0x0000_0000_8000_8009,
    0x0000_0000_8000_000A,
    0x0000_0000_8000_808B,
    0x8000_0000_0000_008B,
    0x8000_0000_0000_8089,
    0x8000_0000_0000_8003,
    0x8000_0000_0000_8002,
    0x8000_0000_0000_0080,
    0x0000_0000_0000_800A,
    0x8000_0000_8000_000A,
    0x8000_0000_8000_8081,
    0x8000_0000_0000_8080,
    0x0000_0000_8000_0001,
    0x8000_0000_8000_8008,
];

/// How many messages [`keccak256_batch`] hashes at once on this CPU: 8 with
/// AVX-512, 4 with AVX2, otherwise 1 (one at a time, as [`Keccak256`]).
/// A caller gathers at least this many messages before asking, when it can.
pub fn batch_lanes() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return 8;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return 4;
        }
    }
    1
}

/// Keccak-256 of each message, a message being the concatenation of its
/// parts: `out[i]` is the digest of `messages[i]`. Messages are hashed
/// [`batch_lanes`] at a time, those of similar length together (a group
/// runs as long as its longest message).
pub fn keccak256_batch(messages: &[&[&[u8]]]) -> Vec<[u8; 32]> {
    let mut out = vec![[0u8; 32]; messages.len()];
    let lanes = batch_lanes();
    let mut order: Vec<usize> = (0..messages.len()).collect();
    order.sort_by_key(|&i| messages[i].iter().map(|p| p.len()).sum::<usize>());
    for group in order.chunks(lanes) {
        if group.len() == 1 {
            out[group[0]] = one(messages[group[0]]);
            continue;
        }
        let mut streams: Vec<Stream<'_>> =
            group.iter().map(|&i| Stream::new(messages[i])).collect();
        let digests = lanes_of(&mut streams, lanes);
        for (&i, digest) in group.iter().zip(digests) {
            out[i] = digest;
        }
    }
    out
}

/// One message's digest, by the single-stream assembly.
fn one(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Keccak256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Runs up to `lanes` streams through the vector permutation of that width.
fn lanes_of(streams: &mut [Stream<'_>], lanes: usize) -> Vec<[u8; 32]> {
    #[cfg(target_arch = "x86_64")]
    {
        if lanes == 8 {
            // SAFETY: `batch_lanes` returned 8 only after the CPU was
            // detected to have AVX-512F, the one feature `x8` enables.
            #[allow(unsafe_code)]
            return unsafe { x8::hash(streams) };
        }
        if lanes == 4 {
            // SAFETY: as above, AVX2 was detected.
            #[allow(unsafe_code)]
            return unsafe { x4::hash(streams) };
        }
    }
    // Not reached: `batch_lanes` is 1 elsewhere, and a group of one is
    // hashed by `one`. One at a time all the same.
    let _ = lanes;
    streams.iter().map(|s| one(s.parts)).collect()
}

/// A message, read one padded block at a time.
struct Stream<'a> {
    parts: &'a [&'a [u8]],
    /// The part being read and the offset in it.
    part: usize,
    offset: usize,
    /// Blocks the padded message takes: its length / [`RATE`] + 1, since
    /// the padding always adds at least one byte.
    blocks: usize,
    /// Blocks read so far.
    read: usize,
}

impl<'a> Stream<'a> {
    fn new(parts: &'a [&'a [u8]]) -> Self {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        Stream { parts, part: 0, offset: 0, blocks: len / RATE + 1, read: 0 }
    }

    /// Fills `block` with the next block of the padded message (Keccak's
    /// legacy `0x01 … 0x80` padding, as Ethereum's Keccak-256), or zeros once
    /// the message is over: a lane that finished early runs idle.
    fn next_block(&mut self, block: &mut [u8; RATE]) {
        if self.read >= self.blocks {
            *block = [0; RATE];
            return;
        }
        let mut filled = 0;
        while filled < RATE && self.part < self.parts.len() {
            let part = &self.parts[self.part][self.offset..];
            let n = part.len().min(RATE - filled);
            block[filled..filled + n].copy_from_slice(&part[..n]);
            filled += n;
            self.offset += n;
            if self.offset == self.parts[self.part].len() {
                self.part += 1;
                self.offset = 0;
            }
        }
        self.read += 1;
        if self.read == self.blocks {
            block[filled..].fill(0);
            block[filled] |= 0x01;
            block[RATE - 1] |= 0x80;
        }
    }
}

/// Words `0..RATE_WORDS` of a block, little-endian.
#[inline(always)]
fn word(block: &[u8; RATE], j: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&block[8 * j..8 * j + 8]);
    u64::from_le_bytes(w)
}

/// θ's last step, ρ and π: `$b[dst] = rol(a[s] ^ d[s % 5], r)` for each
/// `(s, dst, r)` given.
macro_rules! rho_pi {
    ($a:ident, $b:ident, $d:ident; $(($s:literal, $dst:literal, $r:literal)),*) => {
        $( $b[$dst] = rol::<$r>(xor($a[$s], $d[$s % 5])); )*
    };
}

/// The permutation and the absorb loop, written once over a vector type
/// `V` of `$lanes` u64 lanes and the few operations Keccak needs:
/// `xor`, `xor3`, `rol::<N>`, `chi` (`a ^ (!b & c)`), `splat` and `gather`
/// (one word from each lane's block).
macro_rules! lanes_impl {
    ($feature:literal, $lanes:literal) => {
        /// One round after another over the 25-word state.
        #[target_feature(enable = $feature)]
        fn permute(a: &mut [V; 25]) {
            for rc in RC {
                let c = [
                    xor3(xor3(a[0], a[5], a[10]), a[15], a[20]),
                    xor3(xor3(a[1], a[6], a[11]), a[16], a[21]),
                    xor3(xor3(a[2], a[7], a[12]), a[17], a[22]),
                    xor3(xor3(a[3], a[8], a[13]), a[18], a[23]),
                    xor3(xor3(a[4], a[9], a[14]), a[19], a[24]),
                ];
                let d = [
                    xor(c[4], rol::<1>(c[1])),
                    xor(c[0], rol::<1>(c[2])),
                    xor(c[1], rol::<1>(c[3])),
                    xor(c[2], rol::<1>(c[4])),
                    xor(c[3], rol::<1>(c[0])),
                ];
                // θ applied, then ρ (the rotations) and π (the lane moves):
                // word `s` goes to `b[dst]` rotated by `r`, from the table
                // of FIPS 202, §3.2.2–3.2.3.
                let mut b = [splat(0); 25];
                rho_pi!(a, b, d;
                    (0, 0, 0), (1, 10, 1), (2, 20, 62), (3, 5, 28), (4, 15, 27),
                    (5, 16, 36), (6, 1, 44), (7, 11, 6), (8, 21, 55), (9, 6, 20),
                    (10, 7, 3), (11, 17, 10), (12, 2, 43), (13, 12, 25), (14, 22, 39),
                    (15, 23, 41), (16, 8, 45), (17, 18, 15), (18, 3, 21), (19, 13, 8),
                    (20, 14, 18), (21, 24, 2), (22, 9, 61), (23, 19, 56), (24, 4, 14)
                );
                for y in 0..5 {
                    let row = [b[5 * y], b[5 * y + 1], b[5 * y + 2], b[5 * y + 3], b[5 * y + 4]];
                    for x in 0..5 {
                        a[5 * y + x] = chi(row[x], row[(x + 1) % 5], row[(x + 2) % 5]);
                    }
                }
                a[0] = xor(a[0], splat(rc));
            }
        }

        /// Hashes up to `$lanes` streams in lockstep; a stream's digest is
        /// taken from its lane after its own last block.
        #[target_feature(enable = $feature)]
        pub(super) fn hash(streams: &mut [Stream<'_>]) -> Vec<[u8; 32]> {
            let mut digests = vec![[0u8; 32]; streams.len()];
            let rounds = streams.iter().map(|s| s.blocks).max().unwrap_or(0);
            let mut a = [splat(0); 25];
            let mut blocks = [[0u8; RATE]; $lanes];
            for n in 0..rounds {
                for (stream, block) in streams.iter_mut().zip(blocks.iter_mut()) {
                    stream.next_block(block);
                }
                for j in 0..RATE_WORDS {
                    a[j] = xor(a[j], gather(&blocks, j));
                }
                permute(&mut a);
                if streams.iter().any(|s| s.blocks == n + 1) {
                    let words = [unpack(a[0]), unpack(a[1]), unpack(a[2]), unpack(a[3])];
                    for (lane, stream) in streams.iter().enumerate() {
                        if stream.blocks == n + 1 {
                            for (w, word) in words.iter().enumerate() {
                                digests[lane][8 * w..8 * w + 8]
                                    .copy_from_slice(&word[lane].to_le_bytes());
                            }
                        }
                    }
                }
            }
            digests
        }
    };
}

/// Eight lanes in AVX-512 registers.
#[cfg(target_arch = "x86_64")]
mod x8 {
    use std::arch::x86_64::*;

    use super::{RATE, RATE_WORDS, RC, Stream, word};

    type V = __m512i;

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn xor(a: V, b: V) -> V {
        _mm512_xor_si512(a, b)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn xor3(a: V, b: V, c: V) -> V {
        _mm512_ternarylogic_epi64::<0x96>(a, b, c)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn chi(a: V, b: V, c: V) -> V {
        // Truth table of a ^ (!b & c), with a, b, c the index's bits 2, 1, 0.
        _mm512_ternarylogic_epi64::<0xD2>(a, b, c)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn rol<const N: i32>(a: V) -> V {
        _mm512_rol_epi64::<N>(a)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn splat(w: u64) -> V {
        _mm512_set1_epi64(w as i64)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn gather(blocks: &[[u8; RATE]; 8], j: usize) -> V {
        let w = |l: usize| word(&blocks[l], j) as i64;
        _mm512_set_epi64(w(7), w(6), w(5), w(4), w(3), w(2), w(1), w(0))
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn unpack(a: V) -> [u64; 8] {
        let lo = _mm512_castsi512_si256(a);
        let hi = _mm512_extracti64x4_epi64::<1>(a);
        [
            _mm256_extract_epi64::<0>(lo) as u64,
            _mm256_extract_epi64::<1>(lo) as u64,
            _mm256_extract_epi64::<2>(lo) as u64,
            _mm256_extract_epi64::<3>(lo) as u64,
            _mm256_extract_epi64::<0>(hi) as u64,
            _mm256_extract_epi64::<1>(hi) as u64,
            _mm256_extract_epi64::<2>(hi) as u64,
            _mm256_extract_epi64::<3>(hi) as u64,
        ]
    }

    lanes_impl!("avx512f", 8);
}

/// Four lanes in AVX2 registers.
#[cfg(target_arch = "x86_64")]
mod x4 {
    use std::arch::x86_64::*;

    use super::{RATE, RATE_WORDS, RC, Stream, word};

    type V = __m256i;

    #[inline]
    #[target_feature(enable = "avx2")]
    fn xor(a: V, b: V) -> V {
        _mm256_xor_si256(a, b)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn xor3(a: V, b: V, c: V) -> V {
        _mm256_xor_si256(_mm256_xor_si256(a, b), c)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn chi(a: V, b: V, c: V) -> V {
        _mm256_xor_si256(a, _mm256_andnot_si256(b, c))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn rol<const N: i32>(a: V) -> V {
        let left = _mm256_sllv_epi64(a, _mm256_set1_epi64x(i64::from(N)));
        let right = _mm256_srlv_epi64(a, _mm256_set1_epi64x(64 - i64::from(N)));
        _mm256_or_si256(left, right)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn splat(w: u64) -> V {
        _mm256_set1_epi64x(w as i64)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn gather(blocks: &[[u8; RATE]; 4], j: usize) -> V {
        let w = |l: usize| word(&blocks[l], j) as i64;
        _mm256_set_epi64x(w(3), w(2), w(1), w(0))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn unpack(a: V) -> [u64; 4] {
        [
            _mm256_extract_epi64::<0>(a) as u64,
            _mm256_extract_epi64::<1>(a) as u64,
            _mm256_extract_epi64::<2>(a) as u64,
            _mm256_extract_epi64::<3>(a) as u64,
        ]
    }

    lanes_impl!("avx2", 4);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn expected(parts: &[&[u8]]) -> [u8; 32] {
        one(parts)
    }

    #[test]
    fn empty_and_boundary_lengths_match_the_single_stream_digest() {
        // Lengths around the rate, where the padding byte lands in the last
        // slot (0x81) or needs a block of its own.
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let lens = [0, 1, 134, 135, 136, 137, 271, 272, 273, 999];
        let messages: Vec<Vec<&[u8]>> = lens.iter().map(|&n| vec![&data[..n]]).collect();
        let refs: Vec<&[&[u8]]> = messages.iter().map(Vec::as_slice).collect();
        let got = keccak256_batch(&refs);
        for (m, d) in refs.iter().zip(&got) {
            assert_eq!(*d, expected(m));
        }
        // The empty message's Keccak-256, as every Ethereum library has it.
        assert_eq!(
            hex::encode(got[0]),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }

    proptest! {
        /// Any number of messages, any lengths, any split into parts: the
        /// batch gives each message the single-stream digest.
        #[test]
        fn batch_digests_are_the_single_stream_digests(
            messages in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..400), 0..4),
                0..20,
            )
        ) {
            let parts: Vec<Vec<&[u8]>> =
                messages.iter().map(|m| m.iter().map(Vec::as_slice).collect()).collect();
            let refs: Vec<&[&[u8]]> = parts.iter().map(Vec::as_slice).collect();
            let got = keccak256_batch(&refs);
            prop_assert_eq!(got.len(), refs.len());
            for (m, d) in refs.iter().zip(&got) {
                prop_assert_eq!(*d, expected(m));
            }
        }
    }

    /// Every width this CPU has, each against the single-stream digest
    /// (the batch itself uses only the widest).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_available_width_matches() {
        let data: Vec<u8> = (0..30_000u32).map(|i| (i * 31 + 11) as u8).collect();
        let lens = [0usize, 5, 136, 500, 28_000, 29_999, 1_000, 77];
        let messages: Vec<Vec<&[u8]>> =
            lens.iter().map(|&n| vec![&data[..n / 3], &data[n / 3..n]]).collect();
        for (width, available) in [
            (8, std::arch::is_x86_feature_detected!("avx512f")),
            (4, std::arch::is_x86_feature_detected!("avx2")),
        ] {
            if !available {
                continue;
            }
            for group in messages.chunks(width) {
                let mut streams: Vec<Stream<'_>> = group.iter().map(|m| Stream::new(m)).collect();
                let got = lanes_of(&mut streams, width);
                for (m, d) in group.iter().zip(&got) {
                    assert_eq!(*d, expected(m), "width {width}, {} bytes", m.concat().len());
                }
            }
        }
    }
}
