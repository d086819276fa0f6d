//! The fast way to a resource's digest: one pass over a line's bytes that writes the
//! canonical form `digest::digest` hashes (the same bytes, so the same digest) without
//! building a `serde_json::Value` first. Building the tree (a map and a string allocation
//! per field) was most of a delta's CPU time; this pass allocates nothing per line once
//! its buffers have grown.
//!
//! It is at least as strict as serde_json: whatever it accepts, serde_json accepts and
//! reads as the same value. What it does not accept goes the slow way (serde_json, then
//! `digest::digest`), so a document it is unsure of is never compared by a guess. The
//! tests hold both ways to the same digests on generated documents.

use super::digest::Digest;
use sha2::{Digest as _, Sha256};

/// Below serde_json's own nesting limit (128): deeper documents go the slow way.
const MAX_DEPTH: usize = 100;

/// A line's identity and digest, computed in one pass.
#[derive(Debug, PartialEq, Eq)]
pub struct Canonical {
    /// Top-level `resourceType` and `id`, when both are strings.
    pub identity: Option<(String, String)>,
    pub digest: Digest,
}

/// Reusable buffers: one per thread that reads lines.
#[derive(Default)]
pub struct Canonicalizer {
    out: Vec<u8>,
    scratch: Vec<u8>,
    string: Vec<u8>,
    members: Vec<Member>,
}

/// One object member written to `out`: where its key (decoded) and its value (canonical)
/// are, so the members can be put in key order afterwards.
#[derive(Clone, Copy)]
struct Member {
    key: (usize, usize),
    value: (usize, usize),
    order: usize,
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Canonicalizer {
    /// The canonical digest of one JSON document, or `None` when it is not one this pass
    /// is sure of (invalid, or too deep): then use serde_json.
    pub fn canonical(&mut self, line: &[u8]) -> Option<Canonical> {
        // The whole line at once (fast), so the strings need no check of their own: their
        // bytes are the line's, or characters of `\u` escapes.
        std::str::from_utf8(line).ok()?;
        self.out.clear();
        let mut p = Parser {
            bytes: line,
            pos: 0,
        };
        p.skip_ws();
        let mut identity = (None, None);
        self.value(&mut p, 0, Some(&mut identity))?;
        p.skip_ws();
        if p.pos != line.len() {
            return None;
        }
        let full = Sha256::digest(&self.out);
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&full[..16]);
        let identity = match identity {
            (Some(t), Some(id)) => Some((t, id)),
            _ => None,
        };
        Some(Canonical { identity, digest })
    }

    fn header(&mut self, tag: u8) -> usize {
        self.out.push(tag);
        let at = self.out.len();
        self.out.extend_from_slice(&[0u8; 8]);
        at
    }

    fn patch(&mut self, at: usize, n: u64) {
        self.out[at..at + 8].copy_from_slice(&n.to_le_bytes());
    }

    /// One value at `p` into `out`. `identity`: this is the top-level object, whose
    /// `resourceType` and `id` strings are wanted.
    fn value(
        &mut self,
        p: &mut Parser<'_>,
        depth: usize,
        identity: Option<&mut (Option<String>, Option<String>)>,
    ) -> Option<()> {
        match p.peek()? {
            b'{' => self.object(p, depth + 1, identity),
            b'[' => self.array(p, depth + 1),
            b'"' => {
                self.string.clear();
                let mut buf = std::mem::take(&mut self.string);
                let ok = p.string(&mut buf);
                self.string = buf;
                ok?;
                self.out.push(b's');
                self.out
                    .extend_from_slice(&(self.string.len() as u64).to_le_bytes());
                self.out.extend_from_slice(&self.string);
                Some(())
            }
            b't' => {
                p.literal(b"true")?;
                self.out.push(b't');
                Some(())
            }
            b'f' => {
                p.literal(b"false")?;
                self.out.push(b'f');
                Some(())
            }
            b'n' => {
                p.literal(b"null")?;
                self.out.push(b'z');
                Some(())
            }
            b'-' | b'0'..=b'9' => {
                self.string.clear();
                let mut buf = std::mem::take(&mut self.string);
                let ok = p.number(&mut buf);
                self.string = buf;
                ok?;
                self.out.push(b'n');
                self.out
                    .extend_from_slice(&(self.string.len() as u64).to_le_bytes());
                self.out.extend_from_slice(&self.string);
                Some(())
            }
            _ => None,
        }
    }

    fn array(&mut self, p: &mut Parser<'_>, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        p.pos += 1;
        let at = self.header(b'a');
        let mut n = 0u64;
        p.skip_ws();
        if p.peek()? == b']' {
            p.pos += 1;
            self.patch(at, 0);
            return Some(());
        }
        loop {
            p.skip_ws();
            self.value(p, depth, None)?;
            n += 1;
            p.skip_ws();
            match p.next()? {
                b',' => continue,
                b']' => break,
                _ => return None,
            }
        }
        self.patch(at, n);
        Some(())
    }

    fn object(
        &mut self,
        p: &mut Parser<'_>,
        depth: usize,
        mut identity: Option<&mut (Option<String>, Option<String>)>,
    ) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        p.pos += 1;
        let at = self.header(b'o');
        let body = self.out.len();
        let first_member = self.members.len();
        p.skip_ws();
        if p.peek()? == b'}' {
            p.pos += 1;
            self.patch(at, 0);
            return Some(());
        }
        loop {
            p.skip_ws();
            if p.peek()? != b'"' {
                return None;
            }
            // The key, decoded, straight into `out` (moved into place below).
            self.string.clear();
            let mut buf = std::mem::take(&mut self.string);
            let ok = p.string(&mut buf);
            self.string = buf;
            ok?;
            let key_start = self.out.len();
            self.out.extend_from_slice(&self.string);
            let key = (key_start, self.out.len());
            p.skip_ws();
            if p.next()? != b':' {
                return None;
            }
            p.skip_ws();
            let value_start = self.out.len();
            let top_string = identity.is_some() && p.peek() == Some(b'"');
            self.value(p, depth, None)?;
            let value = (value_start, self.out.len());
            if top_string && let Some(id) = identity.as_deref_mut() {
                // A string value is `s`, 8 length bytes, then the text.
                let text = &self.out[value_start + 9..value.1];
                let wanted = match &self.out[key.0..key.1] {
                    b"resourceType" => Some(&mut id.0),
                    b"id" => Some(&mut id.1),
                    _ => None,
                };
                if let Some(slot) = wanted {
                    *slot = std::str::from_utf8(text).ok().map(str::to_string);
                }
            } else if let Some(id) = identity.as_deref_mut() {
                // A later non-string value under the same key replaces an earlier string.
                match &self.out[key.0..key.1] {
                    b"resourceType" => id.0 = None,
                    b"id" => id.1 = None,
                    _ => {}
                }
            }
            let order = self.members.len() - first_member;
            self.members.push(Member { key, value, order });
            p.skip_ws();
            match p.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
        // Put the members in key order (a repeated key: the last one counts, as in
        // serde_json), each as `k`, key length, key, value.
        let mut members: Vec<Member> = self.members.drain(first_member..).collect();
        let out = &self.out;
        members.sort_by(|a, b| {
            out[a.key.0..a.key.1]
                .cmp(&out[b.key.0..b.key.1])
                .then(a.order.cmp(&b.order))
        });
        self.scratch.clear();
        let mut count = 0u64;
        for (i, m) in members.iter().enumerate() {
            let key = &out[m.key.0..m.key.1];
            if members
                .get(i + 1)
                .is_some_and(|next| out[next.key.0..next.key.1] == *key)
            {
                continue;
            }
            count += 1;
            self.scratch.push(b'k');
            self.scratch
                .extend_from_slice(&(key.len() as u64).to_le_bytes());
            self.scratch.extend_from_slice(key);
            self.scratch.extend_from_slice(&out[m.value.0..m.value.1]);
        }
        self.out.truncate(body);
        self.out.extend_from_slice(&self.scratch);
        self.patch(at, count);
        Some(())
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.bytes.get(self.pos..self.pos + word.len())? == word {
            self.pos += word.len();
            Some(())
        } else {
            None
        }
    }

    /// JSON's number grammar, spelled into `buf` as serde_json keeps it (its
    /// `arbitrary_precision` text): digits as written, the exponent as `e` with a sign.
    fn number(&mut self, buf: &mut Vec<u8>) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
            buf.push(b'-');
        }
        match self.next()? {
            b'0' => buf.push(b'0'),
            d @ b'1'..=b'9' => {
                buf.push(d);
                self.digits(buf);
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            buf.push(b'.');
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits(buf);
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            buf.push(b'e');
            match self.peek() {
                Some(sign @ (b'+' | b'-')) => {
                    self.pos += 1;
                    buf.push(sign);
                }
                _ => buf.push(b'+'),
            }
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits(buf);
        }
        Some(())
    }

    fn digits(&mut self, buf: &mut Vec<u8>) {
        while let Some(d) = self.peek().filter(u8::is_ascii_digit) {
            self.pos += 1;
            buf.push(d);
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let text = self.bytes.get(self.pos..self.pos + 4)?;
        let mut n = 0u32;
        for b in text {
            n = n * 16 + char::from(*b).to_digit(16)?;
        }
        self.pos += 4;
        Some(n)
    }

    /// A string at `pos` (the opening quote), decoded into `buf` (the line is valid UTF-8);
    /// control characters and lone surrogates refused (as serde_json does).
    fn string(&mut self, buf: &mut Vec<u8>) -> Option<()> {
        self.pos += 1;
        loop {
            let rest = self.bytes.get(self.pos..)?;
            let run = rest
                .iter()
                .position(|b| matches!(b, b'"' | b'\\') || *b < 0x20)?;
            buf.extend_from_slice(&rest[..run]);
            self.pos += run;
            match self.next()? {
                b'"' => break,
                b'\\' => match self.next()? {
                    b'"' => buf.push(b'"'),
                    b'\\' => buf.push(b'\\'),
                    b'/' => buf.push(b'/'),
                    b'b' => buf.push(0x08),
                    b'f' => buf.push(0x0c),
                    b'n' => buf.push(b'\n'),
                    b'r' => buf.push(b'\r'),
                    b't' => buf.push(b'\t'),
                    b'u' => {
                        let first = self.hex4()?;
                        let c = match first {
                            0xD800..=0xDBFF => {
                                self.literal(b"\\u")?;
                                let second = self.hex4()?;
                                if !(0xDC00..=0xDFFF).contains(&second) {
                                    return None;
                                }
                                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                            }
                            0xDC00..=0xDFFF => return None,
                            c => c,
                        };
                        let c = char::from_u32(c)?;
                        let mut utf8 = [0u8; 4];
                        buf.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                    }
                    _ => return None,
                },
                // A control character inside a string.
                _ => return None,
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::digest;
    use proptest::prelude::*;
    use serde_json::Value;

    /// The slow way, as the delta falls back to it.
    fn slow(line: &[u8]) -> Option<Canonical> {
        let value: Value = serde_json::from_slice(line).ok()?;
        let identity = match (
            value.get("resourceType").and_then(Value::as_str),
            value.get("id").and_then(Value::as_str),
        ) {
            (Some(t), Some(id)) => Some((t.to_string(), id.to_string())),
            _ => None,
        };
        Some(Canonical {
            identity,
            digest: digest::digest(&value),
        })
    }

    fn fast(line: &str) -> Option<Canonical> {
        Canonicalizer::default().canonical(line.as_bytes())
    }

    #[test]
    fn same_digests_as_the_slow_way() {
        let docs = [
            r#"{"resourceType":"Condition","id":"c1","code":{"text":"é"},"n":[1,2.50,-3e+7,0]}"#,
            r#"[1E5,1e5,1e+5,-2.0E-3,0e0]"#,
            r#" { "id" : "c1" , "resourceType" : "Condition" } "#,
            r#"{"a":"\u00e9\n\"\\\/\b\f\r\t","b":"\ud83d\ude00"}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"id":"x","id":7,"resourceType":"T"}"#,
            r#"{"id":7,"id":"x","resourceType":"T"}"#,
            r#"[]"#,
            r#"{}"#,
            r#"[{},[],"",0,-0,true,false,null]"#,
            r#""just a string""#,
            r#"{"b":{"d":1,"c":[{"z":1,"y":2}]},"a":null}"#,
        ];
        for doc in docs {
            assert_eq!(fast(doc), slow(doc.as_bytes()), "{doc}");
            assert!(fast(doc).is_some(), "{doc}");
        }
    }

    #[test]
    fn refuses_what_serde_json_refuses() {
        let docs = [
            "",
            "{",
            r#"{"a":1,}"#,
            "[1,]",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            "\"\u{1}\"",
            r#""\x""#,
            r#""\ud800""#,
            r#""\udc00x""#,
            r#""\ud800\u0041""#,
            "nul",
            "truex",
            "[1] [2]",
            "NaN",
        ];
        for doc in docs {
            assert!(slow(doc.as_bytes()).is_none(), "serde_json reads {doc:?}");
            assert_eq!(fast(doc), None, "{doc:?}");
        }
        // Invalid UTF-8 inside a string.
        assert_eq!(Canonicalizer::default().canonical(b"\"\xff\""), None);
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert_eq!(fast(&deep), None);
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (any::<i32>(), 0u32..1000).prop_map(|(a, b)| {
                serde_json::from_str(&format!("{a}.{b:03}")).unwrap_or(Value::Null)
            }),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(("[a-zé]{0,6}", inner), 0..6)
                    .prop_map(|pairs| { Value::Object(pairs.into_iter().collect()) }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn generated_documents_digest_alike(value in json_value(), pretty in any::<bool>()) {
            let text = if pretty {
                serde_json::to_string_pretty(&value).unwrap_or_default()
            } else {
                crate::json::to_ndjson_line(&value)
            };
            prop_assert_eq!(fast(&text), slow(text.as_bytes()));
        }

        #[test]
        fn damaged_documents_are_never_read_differently(
            value in json_value(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = crate::json::to_ndjson_line(&value).into_bytes();
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            let got = Canonicalizer::default().canonical(&bytes);
            if got.is_some() {
                prop_assert_eq!(got, slow(&bytes));
            }
        }
    }
}
