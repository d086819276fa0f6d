//! Making text that came from a server safe to show on a terminal: control characters
//! (escape sequences can clear the screen, retitle the window or hide text) are written
//! out as visible escapes instead. Everything a server says passes through `printable`
//! before it is printed or put into an error message.

use std::borrow::Cow;

/// `text` with every control character (C0, DEL, C1) but the plain newline written as a
/// visible escape (`\u{1b}`), so it cannot drive the terminal.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn is_unsafe(c: char) -> bool {
    c != '\n'
        && (c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters_only() {
        assert_eq!(
            printable("plain text, café\nline 2"),
            "plain text, café\nline 2"
        );
        assert_eq!(printable("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(printable("\u{1b}]0;title\u{7}"), "\\u{1b}]0;title\\u{7}");
        assert_eq!(
            printable("x\ry\u{9b}z\u{202e}"),
            "x\\u{d}y\\u{9b}z\\u{202e}"
        );
    }
}
