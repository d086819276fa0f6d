//! What "the same resource" means for a delta: a 128-bit digest of a resource's parsed JSON
//! in a canonical form, and a 64-bit key for its `resourceType` and `id`. Two quarters'
//! exports are compared through these alone, so the earlier export costs 24 bytes a
//! resource in memory however large its resources are.
//!
//! The canonical form is what any JSON reader (Cumulus ETL's included) sees of a line:
//! object keys in sorted order, strings by their decoded characters (`"é"` and `"\u00e9"`
//! are the same), whitespace ignored, and every value typed and length-prefixed so that no
//! two different documents feed the hash the same bytes. Numbers are compared as spelled
//! (`1.50` is not `1.5`; serde_json's `arbitrary_precision` text, which only writes an
//! exponent as `e+5` for `E5`): a difference in spelling alone then counts as a change,
//! which only ever keeps a line the ETL did not need, never drops one it did. `canon` gets
//! the same digest without building a tree; this is the reference and the fallback. Inlined attachment
//! data is a string like any other, so a changed attachment is a changed resource.
//!
//! SHA-256 (truncated to 128 bits) rather than a fast non-cryptographic hash: the
//! resources come from a server, and a digest that two different contents can share by
//! design would let one change hide behind another. At the sizes a delta reads (gzip and
//! JSON parsing cost more) the difference in speed does not show.

use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::hash::{Hash, Hasher};

/// Digest of one resource's content.
pub type Digest = [u8; 16];

/// Digest of `value` in its canonical form.
pub fn digest(value: &Value) -> Digest {
    let mut hasher = Sha256::new();
    feed(&mut hasher, value);
    let full = hasher.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

fn feed_bytes(hasher: &mut Sha256, tag: u8, bytes: &[u8]) {
    hasher.update([tag]);
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

fn feed(hasher: &mut Sha256, value: &Value) {
    match value {
        Value::Null => hasher.update(b"z"),
        Value::Bool(true) => hasher.update(b"t"),
        Value::Bool(false) => hasher.update(b"f"),
        // As spelled: the `arbitrary_precision` feature keeps the server's digits.
        Value::Number(n) => feed_bytes(hasher, b'n', n.as_str().as_bytes()),
        Value::String(s) => feed_bytes(hasher, b's', s.as_bytes()),
        Value::Array(items) => {
            hasher.update([b'a']);
            hasher.update((items.len() as u64).to_le_bytes());
            for item in items {
                feed(hasher, item);
            }
        }
        Value::Object(map) => {
            hasher.update([b'o']);
            hasher.update((map.len() as u64).to_le_bytes());
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            for (k, v) in entries {
                feed_bytes(hasher, b'k', k.as_bytes());
                feed(hasher, v);
            }
        }
    }
}

/// A resource's identity (`resourceType` and `id`) as a 64-bit key. Two resources sharing
/// a key by chance are both kept (see `index`), so the key needs no strength, only spread.
pub fn key(resource_type: &str, id: &str) -> u64 {
    // `DefaultHasher::new()` is SipHash with fixed keys: the same on every run.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    resource_type.hash(&mut hasher);
    id.hash(&mut hasher);
    hasher.finish()
}

/// The key of a parsed resource, or `None` when it has no string `resourceType` or `id`
/// (such a line cannot be matched with anything and is always kept).
pub fn key_of(value: &Value) -> Option<u64> {
    let t = value.get("resourceType")?.as_str()?;
    let id = value.get("id")?.as_str()?;
    Some(key(t, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Value {
        match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    fn same(a: &str, b: &str) -> bool {
        digest(&parse(a)) == digest(&parse(b))
    }

    #[test]
    fn canonical_form() {
        // Key order, whitespace and string escapes are not content.
        assert!(same(
            r#"{"resourceType":"Condition","id":"c1","code":{"text":"é"}}"#,
            r#"{ "id": "c1", "code": {"text": "\u00e9"}, "resourceType": "Condition" }"#
        ));
        // Anything a reader would see differently is.
        assert!(!same(r#"{"a":[1,2]}"#, r#"{"a":[2,1]}"#));
        assert!(!same(r#"{"a":"1"}"#, r#"{"a":1}"#));
        assert!(!same(r#"{"a":null}"#, r#"{}"#));
        assert!(!same(r#"{"a":true}"#, r#"{"a":"true"}"#));
        assert!(!same(r#"{"a":1.50}"#, r#"{"a":1.5}"#));
        // Values cannot run into each other: ["ab",""] is not ["a","b"].
        assert!(!same(r#"["ab",""]"#, r#"["a","b"]"#));
        assert!(!same(r#"{"a":{"b":1}}"#, r#"{"a":{},"b":1}"#));
        assert!(!same(r#"{"ab":"c"}"#, r#"{"a":"bc"}"#));
        // An inlined attachment is content.
        assert!(!same(
            r#"{"content":[{"attachment":{"data":"aGk="}}]}"#,
            r#"{"content":[{"attachment":{"data":"aG8="}}]}"#
        ));
    }

    #[test]
    fn keys() {
        assert_eq!(key("Condition", "c1"), key("Condition", "c1"));
        assert_ne!(key("Condition", "c1"), key("Observation", "c1"));
        assert_ne!(key("Condition", "c1"), key("Condition", "c2"));
        // The split between type and id counts.
        assert_ne!(key("ab", "c"), key("a", "bc"));
        assert_eq!(
            key_of(&parse(r#"{"id":"c1","resourceType":"Condition"}"#)),
            Some(key("Condition", "c1"))
        );
        assert_eq!(key_of(&parse(r#"{"resourceType":"Condition"}"#)), None);
        assert_eq!(
            key_of(&parse(r#"{"resourceType":"Condition","id":7}"#)),
            None
        );
    }
}
