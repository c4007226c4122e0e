//! Merkle trees as in RFC 6962 (§2.1): leaf = H(0x00 ‖ data), node = H(0x01 ‖ left ‖ right),
//! the empty tree hashes to H(""), and a tree of n leaves splits at the largest power of two
//! below n. Built level by level, promoting an odd last node unchanged, which gives the same root.

use crate::codec::{sha256, sha256_parts, Digest};
use serde::{Deserialize, Serialize};

/// The hash of one leaf.
pub fn leaf_hash(data: &[u8]) -> Digest {
    sha256_parts(&[&[0x00], data])
}

/// The hash of an interior node.
pub fn node_hash(left: &Digest, right: &Digest) -> Digest {
    sha256_parts(&[&[0x01], &left.0, &right.0])
}

/// The root over leaves given as data.
pub fn root<T: AsRef<[u8]>>(leaves: &[T]) -> Digest {
    let hashes: Vec<Digest> = leaves.iter().map(|l| leaf_hash(l.as_ref())).collect();
    root_from_leaf_hashes(hashes)
}

/// The root over leaf hashes already computed.
pub fn root_from_leaf_hashes(mut level: Vec<Digest>) -> Digest {
    if level.is_empty() {
        return sha256(&[]);
    }
    while level.len() > 1 {
        level = next_level(&level);
    }
    level[0]
}

/// One level up: pairs hashed, an odd last node promoted unchanged.
pub fn next_level(level: &[Digest]) -> Vec<Digest> {
    level
        .chunks(2)
        .map(|pair| match pair {
            [l, r] => node_hash(l, r),
            [single] => *single,
            _ => unreachable!("chunks(2) yields one or two items"),
        })
        .collect()
}

/// An inclusion proof: the audit path of RFC 6962 §2.1.1, from the leaf upwards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    /// Index of the leaf.
    pub index: u64,
    /// Number of leaves in the tree.
    pub tree_size: u64,
    /// Sibling hashes from the leaf level up.
    pub path: Vec<Digest>,
}

/// The audit path of leaf `index` in the tree over `leaves`. None if the index is out of range.
pub fn prove<T: AsRef<[u8]>>(leaves: &[T], index: usize) -> Option<InclusionProof> {
    if index >= leaves.len() {
        return None;
    }
    let mut level: Vec<Digest> = leaves.iter().map(|l| leaf_hash(l.as_ref())).collect();
    let mut path = Vec::new();
    let mut i = index;
    while level.len() > 1 {
        let sibling = i ^ 1;
        if sibling < level.len() {
            path.push(level[sibling]);
        }
        level = next_level(&level);
        i /= 2;
    }
    Some(InclusionProof { index: index as u64, tree_size: leaves.len() as u64, path })
}

impl InclusionProof {
    /// Checks that `leaf_data` sits at `self.index` in a tree whose root is `root`
    /// (the verification algorithm of RFC 9162 §2.1.3.2).
    pub fn verify(&self, leaf_data: &[u8], root: &Digest) -> bool {
        if self.index >= self.tree_size {
            return false;
        }
        let mut fn_ = self.index;
        let mut sn = self.tree_size - 1;
        let mut r = leaf_hash(leaf_data);
        for p in &self.path {
            if sn == 0 {
                return false;
            }
            if fn_ & 1 == 1 || fn_ == sn {
                r = node_hash(p, &r);
                if fn_ & 1 == 0 {
                    while fn_ & 1 == 0 && fn_ != 0 {
                        fn_ >>= 1;
                        sn >>= 1;
                    }
                }
            } else {
                r = node_hash(&r, p);
            }
            fn_ >>= 1;
            sn >>= 1;
        }
        sn == 0 && r == *root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6962's recursive definition, as a check on the level-by-level build.
    fn reference_root(leaves: &[Vec<u8>]) -> Digest {
        match leaves.len() {
            0 => sha256(&[]),
            1 => leaf_hash(&leaves[0]),
            n => {
                // The largest power of two strictly below n.
                let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
                node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }

    fn leaves(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("leaf {i}").into_bytes()).collect()
    }

    #[test]
    fn matches_recursive_definition_for_small_trees() {
        for n in 0..70 {
            let l = leaves(n);
            assert_eq!(root(&l), reference_root(&l), "tree size {n}");
        }
    }

    #[test]
    fn empty_and_single() {
        let empty: [&[u8]; 0] = [];
        assert_eq!(root(&empty).to_hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(root(&[b"x"]), leaf_hash(b"x"));
    }

    #[test]
    fn every_proof_verifies_and_wrong_ones_fail() {
        for n in 1..40 {
            let l = leaves(n);
            let r = root(&l);
            for i in 0..n {
                let p = prove(&l, i).unwrap();
                assert!(p.verify(&l[i], &r), "n={n} i={i}");
                assert!(!p.verify(b"other", &r));
                let mut moved = p.clone();
                moved.index = ((i + 1) % n) as u64;
                if n > 1 {
                    assert!(!moved.verify(&l[i], &r), "n={n} i={i} moved");
                }
            }
            assert!(prove(&l, n).is_none());
        }
    }
}
