//! `application/x-www-form-urlencoded` parsing for query strings and the token form body.

/// Decodes `a=1&b=x%2By` into ordered pairs (duplicates kept, empty segments skipped).
pub fn parse(input: &str) -> Result<Vec<(String, String)>, String> {
    input
        .split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (k, v) = segment.split_once('=').unwrap_or((segment, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

/// Percent-decodes one component (`+` is a space).
pub fn decode(input: &str) -> Result<String, String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad percent escape in {input:?}"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("{input:?} is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let pairs = parse("a=1&b=x%2By+z&c&&d=%C3%A9").unwrap_or_default();
        assert_eq!(
            pairs,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x+y z".into()),
                ("c".into(), "".into()),
                ("d".into(), "é".into()),
            ]
        );
        assert!(parse("a=%zz").is_err());
        assert!(parse("a=%ff").is_err());
    }
}
