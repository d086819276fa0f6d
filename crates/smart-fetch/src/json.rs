//! The three JSON spellings the Python tool writes (spec §22): compact ASCII-escaped NDJSON
//! records, `json.dumps`-default log lines, and 2-space pretty `.metadata`. Numbers pass
//! through as the server spelled them (serde_json `arbitrary_precision`), keys keep order.
//! Owns serialization only; never touches files.

use serde_json::Value;

/// Compact, no whitespace, non-ASCII escaped as `\uXXXX` (lowercase hex, surrogate pairs).
pub fn to_ndjson_line(value: &Value) -> String {
    let _ = value;
    todo!()
}

/// Python `json.dumps` defaults: `", "` and `": "` separators, ASCII escaping.
pub fn to_log_line(value: &Value) -> String {
    let _ = value;
    todo!()
}

/// 2-space indentation, one array element per line, ASCII escaping, no trailing newline.
pub fn to_pretty_ascii(value: &Value) -> String {
    let _ = value;
    todo!()
}
