//! Reading `Content-Type` values the way the Python tool did
//! (docs/hydration.md#inlining-attachments): the media type with Python `email` semantics
//! (malformed → `text/plain`), the `charset` parameter, and whether a charset names an encoding
//! Python knows. Pure string functions.

/// The inline default: text, HTML and XHTML.
pub const DEFAULT_MIMETYPES: [&str; 3] = ["text/plain", "text/html", "application/xhtml+xml"];

/// `--mimetypes`: lower-cased, split on `,`, not trimmed; absent = the default set.
pub fn allowed(value: Option<&str>) -> Vec<String> {
    match value {
        Some(v) => v.to_lowercase().split(',').map(str::to_string).collect(),
        None => DEFAULT_MIMETYPES.iter().map(|m| m.to_string()).collect(),
    }
}

/// The lower-cased media type without parameters; anything without exactly one `/` is
/// `text/plain` (RFC 2045 §5.2, as Python's `Message.get_content_type`).
pub fn media_type(content_type: &str) -> String {
    let main = content_type
        .split_once(';')
        .map_or(content_type, |(m, _)| m)
        .trim()
        .to_lowercase();
    if main.matches('/').count() == 1 {
        main
    } else {
        "text/plain".to_string()
    }
}

/// The `charset` parameter, unquoted and lower-cased, if present (and ASCII).
pub fn charset(content_type: &str) -> Option<String> {
    params(content_type)
        .into_iter()
        .skip(1)
        .filter_map(|p| {
            let (name, value) = p.split_once('=')?;
            (name.trim().eq_ignore_ascii_case("charset")).then(|| unquote(value.trim()))
        })
        .next()
        .filter(|c| c.is_ascii())
        .map(|c| c.to_lowercase())
}

/// The charset to record for an inlined attachment: the response's, when Python knows the
/// encoding, else `utf-8`.
pub fn recorded_charset(content_type: Option<&str>) -> String {
    content_type
        .and_then(charset)
        .filter(|c| is_known_encoding(c))
        .unwrap_or_else(|| "utf-8".to_string())
}

/// Split on `;` outside double quotes (Python `email.message._parseparam`).
fn params(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for ch in value.chars() {
        match ch {
            '\\' if quoted && !escaped => {
                escaped = true;
                current.push(ch);
                continue;
            }
            '"' if !escaped => quoted = !quoted,
            ';' if !quoted => {
                out.push(std::mem::take(&mut current).trim().to_string());
                escaped = false;
                continue;
            }
            _ => {}
        }
        escaped = false;
        current.push(ch);
    }
    out.push(current.trim().to_string());
    out
}

fn unquote(value: &str) -> String {
    if value.len() >= 2
        && ((value.starts_with('"') && value.ends_with('"'))
            || (value.starts_with('<') && value.ends_with('>')))
    {
        return value[1..value.len() - 1]
            .replace("\\\\", "\\")
            .replace("\\\"", "\"");
    }
    value.to_string()
}

/// Python codec names and aliases (as `encodings.normalize_encoding` spells them) that
/// `codecs.lookup` accepts on every platform.
#[rustfmt::skip]
const KNOWN_ENCODINGS: &[&str] = &[
    "646", "ansi_x3.4_1968", "ansi_x3_4_1968", "ansi_x3.4_1986", "arabic", "ascii", "asmo_708",
    "big5", "big5_hkscs", "big5_tw", "big5hkscs", "chinese", "cp037", "cp1006", "cp1026",
    "cp1125", "cp1140", "cp1250", "cp1251", "cp1252", "cp1253", "cp1254", "cp1255", "cp1256",
    "cp1257", "cp1258", "cp1361", "cp273", "cp367", "cp424", "cp437", "cp500", "cp720",
    "cp737", "cp775", "cp819", "cp850", "cp852", "cp855", "cp856", "cp857", "cp858", "cp860",
    "cp861", "cp862", "cp863", "cp864", "cp865", "cp866", "cp869", "cp874", "cp875", "cp932",
    "cp936", "cp949", "cp950", "cp_gr", "cp_is", "csascii", "csbig5", "cseuckr",
    "csiso2022jp", "csiso2022kr", "csiso58gb231280", "csisolatin1", "csisolatin2",
    "csisolatincyrillic", "csisolatingreek", "csisolatinhebrew", "cskoi8r", "csptcp154",
    "csshiftjis", "cyrillic", "cyrillic_asian", "ebcdic_cp_be", "ebcdic_cp_ca", "ebcdic_cp_ch",
    "ebcdic_cp_he", "ebcdic_cp_nl", "ebcdic_cp_us", "ebcdic_cp_wt", "ecma_114", "ecma_118",
    "elot_928", "euc_cn", "euc_jis_2004", "euc_jisx0213", "euc_jp", "euc_kr", "euccn",
    "eucgb2312_cn", "eucjis2004", "eucjisx0213", "eucjp", "euckr", "gb18030", "gb18030_2000",
    "gb2312", "gb2312_1980", "gb2312_80", "gbk", "greek", "greek8", "hebrew", "hkscs",
    "hp_roman8", "hz", "hz_gb", "hz_gb_2312", "hzgb", "ibm037", "ibm039", "ibm1026",
    "ibm1140", "ibm273", "ibm367", "ibm424", "ibm437", "ibm500", "ibm775", "ibm819",
    "ibm850", "ibm852", "ibm855", "ibm857", "ibm858", "ibm860", "ibm861", "ibm862",
    "ibm863", "ibm864", "ibm865", "ibm866", "ibm869", "iso2022_jp", "iso2022_jp_1",
    "iso2022_jp_2", "iso2022_jp_2004", "iso2022_jp_3", "iso2022_jp_ext", "iso2022_kr",
    "iso2022jp", "iso2022jp_1", "iso2022jp_2", "iso2022jp_2004", "iso2022jp_3",
    "iso2022jp_ext", "iso2022kr", "iso646_us", "iso8859", "iso8859_1", "iso8859_10",
    "iso8859_11", "iso8859_13", "iso8859_14", "iso8859_15", "iso8859_16", "iso8859_2",
    "iso8859_3", "iso8859_4", "iso8859_5", "iso8859_6", "iso8859_7", "iso8859_8",
    "iso8859_9", "iso_646.irv_1991", "iso_8859_1", "iso_8859_10", "iso_8859_10_1992",
    "iso_8859_11", "iso_8859_11_2001", "iso_8859_13", "iso_8859_14", "iso_8859_14_1998",
    "iso_8859_15", "iso_8859_16", "iso_8859_16_2001", "iso_8859_1_1987", "iso_8859_2",
    "iso_8859_2_1987", "iso_8859_3", "iso_8859_3_1988", "iso_8859_4", "iso_8859_4_1988",
    "iso_8859_5", "iso_8859_5_1988", "iso_8859_6", "iso_8859_6_1987", "iso_8859_7",
    "iso_8859_7_1987", "iso_8859_8", "iso_8859_8_1988", "iso_8859_9", "iso_8859_9_1989",
    "iso_celtic", "iso_ir_100", "iso_ir_101", "iso_ir_109", "iso_ir_110", "iso_ir_126",
    "iso_ir_127", "iso_ir_138", "iso_ir_144", "iso_ir_148", "iso_ir_157", "iso_ir_166",
    "iso_ir_199", "iso_ir_226", "iso_ir_58", "iso_ir_6", "johab", "koi8_r", "koi8_t",
    "koi8_u", "korean", "ks_c_5601", "ks_c_5601_1987", "ks_x_1001", "ksc5601", "ksx1001",
    "kz1048", "kz_1048", "l1", "l10", "l2", "l3", "l4", "l5", "l6", "l7", "l8", "l9", "latin",
    "latin1", "latin10", "latin2", "latin3", "latin4", "latin5", "latin6", "latin7", "latin8",
    "latin9", "latin_1", "mac_cyrillic", "mac_greek", "mac_iceland", "mac_latin2",
    "mac_roman", "mac_turkish", "maccentraleurope", "maccyrillic", "macgreek", "maciceland",
    "maclatin2", "macroman", "macturkish", "ms1361", "ms932", "ms936", "ms949", "ms950",
    "ms_kanji", "mskanji", "pt154", "ptcp154", "r8", "rk1048", "roman8", "s_jis",
    "s_jis_2004", "s_jisx0213", "shift_jis", "shift_jis_2004", "shift_jisx0213", "sjis",
    "sjis2004", "sjis_2004", "sjisx0213", "strk1048_2002", "thai", "tis260", "tis620",
    "tis_620", "tis_620_0", "tis_620_2529_0", "tis_620_2529_1", "u16", "u32", "u7", "u8",
    "u_jis", "ucs2", "ucs4", "uhc", "ujis", "unicode_1_1_utf_7", "unicodebigunmarked",
    "unicodelittleunmarked", "us", "us_ascii", "utf", "utf16", "utf32", "utf7", "utf8",
    "utf8_ucs2", "utf8_ucs4", "utf_16", "utf_16_be", "utf_16_le", "utf_16be", "utf_16le",
    "utf_32", "utf_32_be", "utf_32_le", "utf_32be", "utf_32le", "utf_7", "utf_8",
    "utf_8_sig", "cp65001", "windows_1250", "windows_1251", "windows_1252", "windows_1253",
    "windows_1254", "windows_1255", "windows_1256", "windows_1257", "windows_1258",
    "x_mac_japanese", "x_mac_korean", "x_mac_simp_chinese", "x_mac_trad_chinese", "8859",
    "cp154", "csibm037", "csibm1026", "csibm273", "csibm424", "csibm500", "csibm855",
    "csibm857", "csibm860", "csibm861", "csibm863", "csibm864", "csibm865", "csibm866",
    "csibm869", "cspc775baltic", "cspc850multilingual", "cspc862latinhebrew", "cspc8codepage437",
    "cspcp852", "850", "852", "855", "857", "858", "860", "861", "862", "863", "864", "865",
    "866", "869", "437", "936", "949", "950", "1125", "1140", "273", "424", "500", "775",
    "037", "1026",
];

/// Python's `codecs.lookup` on `name`: lower-cased, every run of characters other than
/// letters, digits and `.` turned into one `_`, then looked up (also with `.` as `_`).
pub fn is_known_encoding(name: &str) -> bool {
    let mut norm = String::with_capacity(name.len());
    let mut pending = false;
    for ch in name.to_lowercase().chars() {
        if ch.is_alphanumeric() || ch == '.' {
            if pending && !norm.is_empty() {
                norm.push('_');
            }
            pending = false;
            norm.push(ch);
        } else {
            pending = true;
        }
    }
    let dotless = norm.replace('.', "_");
    KNOWN_ENCODINGS.iter().any(|k| *k == norm || *k == dotless)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_like_python_email() {
        assert_eq!(media_type("text/plain"), "text/plain");
        assert_eq!(media_type("Text/HTML; charset=UTF-8"), "text/html");
        assert_eq!(
            media_type("  application/xhtml+xml ;x=1"),
            "application/xhtml+xml"
        );
        assert_eq!(media_type("garbage"), "text/plain");
        assert_eq!(media_type("a/b/c"), "text/plain");
        assert_eq!(media_type(""), "text/plain");
        assert_eq!(media_type("tEXt/Custom1"), "text/custom1");
    }

    #[test]
    fn charsets() {
        assert_eq!(
            charset("text/html; charset=ASCII").as_deref(),
            Some("ascii")
        );
        assert_eq!(
            charset("text/html;charset=\"utf8\"").as_deref(),
            Some("utf8")
        );
        assert_eq!(
            charset("text/html; name=\"a;b\"; CHARSET = iso-8859-1").as_deref(),
            Some("iso-8859-1")
        );
        assert_eq!(charset("text/html"), None);
        assert_eq!(charset("text/html; charset=é"), None);
        assert_eq!(recorded_charset(Some("text/html; charset=ascii")), "ascii");
        assert_eq!(recorded_charset(Some("text/plain")), "utf-8");
        assert_eq!(recorded_charset(None), "utf-8");
        assert_eq!(recorded_charset(Some("text/plain; charset=utf8")), "utf8");
        assert_eq!(
            recorded_charset(Some("text/plain; charset=UTF-16LE")),
            "utf-16le"
        );
        assert_eq!(
            recorded_charset(Some("text/plain; charset=Windows-1252")),
            "windows-1252"
        );
        assert_eq!(recorded_charset(Some("text/plain; charset=bogus")), "utf-8");
        assert!(is_known_encoding("ISO_8859-1:1987"));
        assert!(is_known_encoding("us-ascii"));
        assert!(is_known_encoding("latin-1"));
        assert!(!is_known_encoding(""));
        assert!(!is_known_encoding("klingon"));
    }

    #[test]
    fn mimetype_option() {
        assert_eq!(allowed(None), DEFAULT_MIMETYPES);
        assert_eq!(
            allowed(Some("tEXt/Custom1,application/custom2")),
            ["text/custom1", "application/custom2"]
        );
        assert_eq!(
            allowed(Some("text/plain, text/html")),
            ["text/plain", " text/html"]
        );
    }
}
