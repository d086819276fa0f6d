//! Percent-encoding exactly as the Python tool's URLs spell it, so the requests a server sees
//! (and the kickoff URL in `log.ndjson`) are the same from either tool. Python's
//! `urllib.parse.quote(s, safe='')` and `quote_plus(s, safe='')` (what `urlencode` uses) keep
//! letters, digits and `_.-~` and write every other UTF-8 byte as `%XX` in capitals;
//! `quote_plus` writes a space as `+`. The sets live here once, on the `percent-encoding`
//! crate, instead of a hand-written loop per caller. `tests/python_oracle.rs` checks them
//! against Python's own functions.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// What `quote(s, safe='')` encodes: everything but ASCII letters, digits and `_.-~`.
pub const PY_QUOTE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~');

/// `PY_QUOTE` without the space, which `quote_plus` turns into `+` instead.
const PY_QUOTE_PLUS: &AsciiSet = &PY_QUOTE.remove(b' ');

/// Python's `urllib.parse.quote(text, safe='')`: for a value inside a query or path (an ID,
/// an MRN with its identifier system).
pub fn quote(text: &str) -> String {
    utf8_percent_encode(text, PY_QUOTE).to_string()
}

/// Python's `urllib.parse.quote_plus(text, safe='')`, as `urlencode` applies it to every name
/// and value: like [`quote`], but a space becomes `+`.
pub fn quote_plus(text: &str) -> String {
    // A `+` in the text is already `%2B` here, so every `+` left is a space.
    utf8_percent_encode(text, PY_QUOTE_PLUS)
        .to_string()
        .replace(' ', "+")
}

/// Python's `urllib.parse.unquote_plus(text)`: `+` is a space, `%XX` a byte; a `%` not
/// followed by two hex digits stays as it is, and bytes that are not UTF-8 become U+FFFD.
pub fn unquote_plus(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_characters_stay_and_the_rest_is_upper_case_hex() {
        assert_eq!(quote("AZaz09_.-~"), "AZaz09_.-~");
        assert_eq!(
            quote("urn:oid:1.2|A B+c/é"),
            "urn%3Aoid%3A1.2%7CA%20B%2Bc%2F%C3%A9"
        );
        assert_eq!(quote_plus("a b+c,d*"), "a+b%2Bc%2Cd%2A");
        assert_eq!(quote(""), "");
    }

    #[test]
    fn unquote_plus_undoes_quote_plus_and_keeps_broken_escapes() {
        for text in ["a b+c,d", "Condition?code=a%2Cb", "é ü 🙂", ""] {
            assert_eq!(unquote_plus(&quote_plus(text)), text);
        }
        assert_eq!(unquote_plus("a+b%2Cc%zz%4"), "a b,c%zz%4");
        assert_eq!(unquote_plus("%FF"), "\u{fffd}");
    }
}
