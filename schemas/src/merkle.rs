//! Merkle trees over a minute's accepted envelopes, as Certificate
//! Transparency builds them (RFC 6962 §2.1, SHA-256): a verifier's signed
//! checkpoint commits to the root over the sorted ids of the envelopes it
//! accepted in that minute, and an auditor proves one envelope's inclusion
//! with the audit path. SHA-256 rather than blake3 so that any language's
//! standard library can check a proof (the leaves are blake3 envelope ids).

use sha2::{Digest, Sha256};

/// A node or root hash.
pub type Hash = [u8; 32];

/// The id a Merkle leaf commits to: blake3 of the envelope's bytes (the same
/// hash the verifier's log chain folds in for every frame).
pub fn envelope_id(envelope_bytes: &[u8]) -> Hash {
    *blake3::hash(envelope_bytes).as_bytes()
}

/// `SHA-256(0x00 ‖ leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two below `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The Merkle tree hash of `leaves` in the given order (RFC 6962 `MTH`);
/// the empty tree's is `SHA-256("")`.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaf_hash(&leaves[0]),
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The audit path of leaf `index` in `leaves` (RFC 6962 `PATH`), bottom up;
/// `None` when `index` is out of range.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    let (mut lo, mut hi, mut m) = (0, leaves.len(), index);
    // Walk down, remembering the sibling subtree roots, then reverse.
    while hi - lo > 1 {
        let k = split(hi - lo);
        if m < k {
            path.push(root(&leaves[lo + k..hi]));
            hi = lo + k;
        } else {
            path.push(root(&leaves[lo..lo + k]));
            lo += k;
            m -= k;
        }
    }
    path.reverse();
    Some(path)
}

/// Whether `path` proves `leaf` at `index` in a tree of `size` leaves with
/// `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, path: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = leaf_hash(leaf);
    for p in path {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && &r == root
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| envelope_id(&(i as u64).to_be_bytes())).collect()
    }

    #[test]
    fn rfc6962_shapes() {
        assert_eq!(
            hex::encode(root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let l = leaves(3);
        let expected =
            node_hash(&node_hash(&leaf_hash(&l[0]), &leaf_hash(&l[1])), &leaf_hash(&l[2]));
        assert_eq!(root(&l), expected);
        assert_eq!(inclusion_proof(&l, 3), None);
        assert_eq!(inclusion_proof(&l[..1], 0), Some(Vec::new()));
    }

    proptest! {
        #[test]
        fn every_leaf_proves_and_nothing_else_does(n in 1usize..70, pick in 0usize..70, flip in 0usize..32) {
            let l = leaves(n);
            let r = root(&l);
            let i = pick % n;
            let path = inclusion_proof(&l, i).unwrap();
            prop_assert!(verify_inclusion(&l[i], i as u64, n as u64, &path, &r));
            let other = (i + 1) % n;
            if other != i {
                prop_assert!(!verify_inclusion(&l[other], i as u64, n as u64, &path, &r));
            }
            let mut bad = r;
            bad[flip] ^= 1;
            prop_assert!(!verify_inclusion(&l[i], i as u64, n as u64, &path, &bad));
            prop_assert!(!verify_inclusion(&l[i], n as u64, n as u64, &path, &r), "index past the end");
        }
    }
}
