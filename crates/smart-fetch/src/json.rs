//! The three JSON spellings the Python tool writes (docs/folders.md#json-spellings): compact
//! ASCII-escaped NDJSON records, `json.dumps`-default log lines, and 2-space pretty `.metadata`.
//! Numbers pass through as the server spelled them (serde_json `arbitrary_precision`), keys keep
//! order. Owns serialization only; never touches files (callers hand in any `io::Write`).

use serde::Serialize;
use serde_json::Value;
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter, Serializer};
use std::io;

/// Compact, no whitespace, non-ASCII escaped as `\uXXXX` (lowercase hex, surrogate pairs).
pub fn to_ndjson_line(value: &Value) -> String {
    render(value, Ascii(CompactFormatter))
}

/// Python `json.dumps` defaults: `", "` and `": "` separators, ASCII escaping.
pub fn to_log_line(value: &Value) -> String {
    render(value, Ascii(PythonSpaced))
}

/// 2-space indentation, one array element per line, ASCII escaping, no trailing newline.
pub fn to_pretty_ascii(value: &Value) -> String {
    render(value, Ascii(PrettyFormatter::with_indent(b"  ")))
}

/// Stream one record in the NDJSON spelling (without the trailing newline) straight into a
/// writer, so large resources are not first collected into a `String`.
pub fn write_ndjson<W, T>(writer: &mut W, value: &T) -> io::Result<()>
where
    W: io::Write + ?Sized,
    T: Serialize + ?Sized,
{
    let mut ser = Serializer::with_formatter(writer, Ascii(CompactFormatter));
    value.serialize(&mut ser).map_err(io::Error::other)
}

fn render<F: Formatter>(value: &Value, formatter: F) -> String {
    let mut buf = Vec::with_capacity(128);
    let mut ser = Serializer::with_formatter(&mut buf, formatter);
    // Serializing a `Value` into a `Vec` cannot fail: every map key is a string and the
    // writer never errors. Keep whatever was produced rather than panic.
    let _ = value.serialize(&mut ser);
    // Every formatter here escapes non-ASCII, so the bytes are ASCII and therefore UTF-8.
    String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Python's separators when no indent is given: `", "` between items, `": "` after keys.
struct PythonSpaced;

impl Formatter for PythonSpaced {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }
}

/// Wraps a layout formatter and adds Python's `ensure_ascii=True` escaping. serde_json
/// already escapes `"`, `\` and C0 controls exactly as Python does (short forms for
/// `\b \f \n \r \t`, lowercase `\u00XX` otherwise); everything else that Python escapes
/// (DEL and all non-ASCII) arrives here inside string fragments.
struct Ascii<F>(F);

impl<F: Formatter> Formatter for Ascii<F> {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let bytes = fragment.as_bytes();
        // Fast path: the overwhelming majority of FHIR text is plain ASCII.
        if !bytes.iter().any(|&b| b >= 0x7f) {
            return writer.write_all(bytes);
        }
        let mut start = 0;
        for (i, ch) in fragment.char_indices() {
            if (ch as u32) < 0x7f {
                continue;
            }
            if start < i {
                writer.write_all(&bytes[start..i])?;
            }
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            start = i + ch.len_utf8();
        }
        if start < bytes.len() {
            writer.write_all(&bytes[start..])?;
        }
        Ok(())
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_array(writer)
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array(writer)
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(writer, first)
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array_value(writer)
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object(writer)
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object(writer)
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(writer, first)
    }

    fn end_object_key<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object_key(writer)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object_value(writer)
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object_value(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Value {
        match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => panic!("bad test JSON {text}: {e}"),
        }
    }

    #[test]
    fn compact_ascii_keeps_number_spelling_and_order() {
        let v = parse(r#"{"a": "é", "b": [1.50, 2]}"#);
        assert_eq!(to_ndjson_line(&v), r#"{"a":"\u00e9","b":[1.50,2]}"#);
        let v = parse(r#"{"z": 1, "a": {"y": 100.000, "b": -0.0}}"#);
        assert_eq!(to_ndjson_line(&v), r#"{"z":1,"a":{"y":100.000,"b":-0.0}}"#);
    }

    #[test]
    fn log_style_uses_python_separators() {
        let v = parse(r#"{"a": "é", "b": [1.50, 2]}"#);
        assert_eq!(to_log_line(&v), r#"{"a": "\u00e9", "b": [1.50, 2]}"#);
        let v = parse(r#"{"a": {}, "b": [], "c": null, "d": true}"#);
        assert_eq!(
            to_log_line(&v),
            r#"{"a": {}, "b": [], "c": null, "d": true}"#
        );
    }

    #[test]
    fn escapes_like_python_ensure_ascii() {
        let v =
            Value::String("a/b \"q\" \\ \n\r\t\u{8}\u{c}\u{1}\u{7f}\u{e9}\u{20ac}\u{1f600}".into());
        assert_eq!(
            to_ndjson_line(&v),
            r#""a/b \"q\" \\ \n\r\t\b\f\u0001\u007f\u00e9\u20ac\ud83d\ude00""#
        );
        // Keys are escaped too.
        let v = parse(r#"{"ké": "x"}"#);
        assert_eq!(to_ndjson_line(&v), r#"{"k\u00e9":"x"}"#);
    }

    #[test]
    fn pretty_matches_python_indent_2() {
        let v = parse(
            r#"{"filters": {"Patient": [], "Condition": ["code=1", "code=2"]}, "e": {}, "since": null, "n": 1.0, "s": "ü"}"#,
        );
        let expected = "{\n  \"filters\": {\n    \"Patient\": [],\n    \"Condition\": [\n      \"code=1\",\n      \"code=2\"\n    ]\n  },\n  \"e\": {},\n  \"since\": null,\n  \"n\": 1.0,\n  \"s\": \"\\u00fc\"\n}";
        assert_eq!(to_pretty_ascii(&v), expected);
        assert_eq!(to_pretty_ascii(&parse("[]")), "[]");
    }

    #[test]
    fn streaming_writer_matches_string_form() {
        let v = parse(r#"{"a": "é", "b": [1.50, 2]}"#);
        let mut out = Vec::new();
        assert!(write_ndjson(&mut out, &v).is_ok());
        assert_eq!(String::from_utf8_lossy(&out), to_ndjson_line(&v));
    }
}
