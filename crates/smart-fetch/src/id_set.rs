//! A set of ids kept as 128-bit digests: the patients a crawl has queued and the Patients it
//! has written. These are the only parts of a crawl's memory that grow with the cohort, and
//! as `String`s they cost about 65 bytes an id each (6 to 7 MB per set at 100,000 patients);
//! as digests about 20. SHA-256, truncated, as in `delta::digest`: the ids come from the
//! server, and two ids sharing a digest would make one patient look already queued or
//! written, a loss nobody would see; a fast non-cryptographic hash can be made to collide.

use sha2::{Digest as _, Sha256};
use std::collections::HashSet;

#[derive(Default)]
pub struct IdSet {
    digests: HashSet<[u8; 16]>,
}

fn digest(id: &str) -> [u8; 16] {
    let full = Sha256::digest(id.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

impl IdSet {
    /// Adds `id`; false when it was there already.
    pub fn insert(&mut self, id: &str) -> bool {
        self.digests.insert(digest(id))
    }

    pub fn contains(&self, id: &str) -> bool {
        self.digests.contains(&digest(id))
    }

    pub fn len(&self) -> usize {
        self.digests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }
}

impl<'a> FromIterator<&'a str> for IdSet {
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
        let mut set = IdSet::default();
        for id in iter {
            set.insert(id);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_each_id_once_and_only_those() {
        let mut set: IdSet = ["a", "b"].into_iter().collect();
        assert!(!set.insert("a"));
        assert!(set.insert("c"));
        assert!(set.contains("b") && !set.contains("d") && !set.contains("A"));
        assert_eq!(set.len(), 3);
        assert!(!set.is_empty());
    }
}
