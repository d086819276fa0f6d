//! Parsing only the top-level fields a reader needs from a JSON object (`id`,
//! `resourceType`, the first step of a reference path) and skipping the rest without
//! building it. Hydration reads every exported file once per task; building each whole
//! resource as a `Value` only to look at two keys was most of its CPU time. The rest is
//! still walked through serde_json's own string and nesting checks (not `IgnoredAny`,
//! which lets lone surrogates and deep nesting through), so a line that would not decode
//! as a whole still does not.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// An object holding only `fields` of the object in `bytes` (in the order they appear).
/// Anything other than an object comes back as a value without fields (an empty array or
/// string, `null`; with `arbitrary_precision` a bare number arrives as an empty object).
pub fn parse(bytes: &[u8], fields: &[&str]) -> serde_json::Result<Value> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Fields(fields).deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

struct Fields<'f>(&'f [&'f str]);

impl<'de> DeserializeSeed<'de> for Fields<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Fields<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(wanted) = map.next_key_seed(Key(self.0))? {
            match wanted {
                Some(name) => {
                    let value: Value = map.next_value()?;
                    out.insert(name.to_string(), value);
                }
                None => map.next_value_seed(Skip)?,
            }
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(Value::Array(Vec::new()))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Value, E> {
        Ok(Value::String(String::new()))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// A value read and checked like any other, then dropped without being built. Going
/// through `deserialize_any` keeps serde_json's recursion limit and its string checks
/// (unpaired surrogates are errors); strings without escapes are not even copied.
struct Skip;

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Skip)?.is_some() {
            map.next_value_seed(Skip)?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
}

/// A key, compared with the wanted names without being copied: the name it matches.
struct Key<'f>(&'f [&'f str]);

impl<'de, 'f> DeserializeSeed<'de> for Key<'f> {
    type Value = Option<&'f str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, 'f> Visitor<'de> for Key<'f> {
    type Value = Option<&'f str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().copied().find(|name| *name == key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_only_the_named_fields() {
        let line = br#"{"resourceType":"Observation","id":"o1","valueQuantity":{"value":1.50},"performer":[{"reference":"Practitioner/p"}],"note":[{"text":"a \"quoted\" \u00e9"}]}"#;
        let v = parse(line, &["id", "performer", "resourceType"]).expect("parses");
        assert_eq!(
            v,
            json!({"resourceType":"Observation","id":"o1","performer":[{"reference":"Practitioner/p"}]})
        );
        // Escaped keys are still recognised.
        let v = parse(br#"{"\u0069d":"x"}"#, &["id"]).expect("parses");
        assert_eq!(v, json!({"id":"x"}));
    }

    #[test]
    fn bad_json_is_still_an_error() {
        for bad in [
            &br#"{"id":"x","skip":[1,}"#[..],
            br#"{"id":"x"} trailing"#,
            br#"{"id":"x","skip":tru}"#,
            // Unpaired surrogate in a skipped field (a whole parse refuses it too).
            br#"{"id":"x","note":"\ud800"}"#,
            b"",
        ] {
            assert!(
                parse(bad, &["id"]).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn nesting_too_deep_is_still_an_error() {
        let deep = format!(
            "{{\"id\":\"x\",\"n\":{}{}}}",
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(serde_json::from_str::<Value>(&deep).is_err());
        assert!(parse(deep.as_bytes(), &["id"]).is_err());
        let fine = format!(
            "{{\"id\":\"x\",\"n\":{}{}}}",
            "[".repeat(100),
            "]".repeat(100)
        );
        assert_eq!(
            parse(fine.as_bytes(), &["id"]).expect("parses"),
            json!({"id":"x"})
        );
    }

    #[test]
    fn other_values_have_no_fields() {
        assert_eq!(parse(b"[1,2]", &["id"]).expect("parses"), json!([]));
        assert_eq!(parse(b"\"s\"", &["id"]).expect("parses"), json!(""));
        let number = parse(b"12.5", &["id"]).expect("parses");
        assert!(number.get("id").is_none());
    }
}
