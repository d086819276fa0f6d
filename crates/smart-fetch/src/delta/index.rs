//! The earlier export, remembered as one digest per resource: a map from each resource's
//! key (`digest::key`) to the digest of its content. Its resources themselves are never
//! held, so memory is 24 bytes a resource (plus the table's slack), whatever their size:
//! about 10 MB for a 10,000-patient group of 400,000 resources.
//!
//! A resource the export holds twice with different content (hydration may write one
//! resource into two files), or two resources whose keys collide, leave the key
//! *ambiguous*: whatever the later export holds under it is kept. Wrong matches can only
//! keep a line, never drop one.

use super::digest::Digest;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Marks a key whose earlier content is not known for sure. A real digest equals it with
/// probability 2^-128.
const AMBIGUOUS: Digest = [0; 16];

/// The keys are hashes already: use them as they are.
#[derive(Default)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (keys are `u64`); fold anything else in, to be total.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Default)]
pub struct Index {
    map: HashMap<u64, Digest, BuildHasherDefault<PassThrough>>,
}

impl Index {
    /// Room for `n` resources up front, so the table is sized once (the earlier export's
    /// completion record says how many it holds).
    pub fn with_capacity(n: usize) -> Self {
        Index {
            map: HashMap::with_capacity_and_hasher(n, BuildHasherDefault::default()),
        }
    }

    pub fn insert(&mut self, key: u64, digest: Digest) {
        let digest = if digest == AMBIGUOUS {
            // Vanishingly unlikely; keep the meaning of the marker intact anyway.
            let mut d = digest;
            d[0] = 1;
            d
        } else {
            digest
        };
        self.map
            .entry(key)
            .and_modify(|old| {
                if *old != digest {
                    *old = AMBIGUOUS;
                }
            })
            .or_insert(digest);
    }

    /// Whether the earlier export held exactly this content under this key.
    pub fn holds(&self, key: u64, digest: &Digest) -> bool {
        self.map
            .get(&key)
            .is_some_and(|d| *d != AMBIGUOUS && d == digest)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_content_matches_and_doubtful_keys_never_do() {
        let mut index = Index::with_capacity(4);
        assert!(index.is_empty());
        index.insert(1, [7; 16]);
        index.insert(2, [8; 16]);
        index.insert(2, [8; 16]);
        index.insert(3, [9; 16]);
        index.insert(3, [10; 16]);
        index.insert(4, AMBIGUOUS);
        assert_eq!(index.len(), 4);
        assert!(index.holds(1, &[7; 16]));
        assert!(!index.holds(1, &[8; 16]));
        assert!(
            index.holds(2, &[8; 16]),
            "the same content twice is no doubt"
        );
        assert!(!index.holds(3, &[9; 16]));
        assert!(!index.holds(3, &[10; 16]));
        assert!(!index.holds(4, &AMBIGUOUS));
        assert!(!index.holds(5, &[7; 16]));
    }
}
