//! Timestamps as the Python tool spells them (local-offset ISO-8601, `+00:00` never `Z`,
//! microseconds only when non-zero) and FHIR date parsing for comparisons
//! (docs/since.md#reading-fhir-dates). Pure functions over strings and the clock; no files, no
//! knowledge of where values go.

use chrono::{DateTime, FixedOffset, Local, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

pub type Timestamp = DateTime<FixedOffset>;

/// Current time in the machine's local offset, truncated to microseconds: Python datetimes
/// carry no finer precision, and truncating keeps `parse_fhir(isoformat(now()))` lossless.
pub fn now() -> Timestamp {
    let now = Local::now().fixed_offset();
    let micros = now.nanosecond() / 1_000;
    now.with_nanosecond(micros * 1_000).unwrap_or(now)
}

/// Python `datetime.isoformat()` spelling.
pub fn isoformat(ts: &Timestamp) -> String {
    let mut out = ts.format("%Y-%m-%dT%H:%M:%S").to_string();
    // Leap-second nanoseconds (>= 1e9) have no Python equivalent; clamp like `:60` → `:59`.
    let micros = (ts.nanosecond() / 1_000).min(999_999);
    if micros != 0 {
        out.push_str(&format!(".{micros:06}"));
    }
    let offset = ts.offset().local_minus_utc();
    let sign = if offset < 0 { '-' } else { '+' };
    let abs = offset.unsigned_abs();
    out.push_str(&format!("{sign}{:02}:{:02}", abs / 3600, (abs % 3600) / 60));
    if !abs.is_multiple_of(60) {
        out.push_str(&format!(":{:02}", abs % 60));
    }
    out
}

/// Parse a FHIR date / dateTime / instant (partial dates, leap seconds, +14:00 default).
/// Also accepts our own `isoformat` output, so `.metadata` `done` values round-trip.
pub fn parse_fhir(value: &str) -> Option<Timestamp> {
    if value.is_empty() {
        return None;
    }
    let b = value.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    let mut text = value.to_string();
    if b.len() == 4 && digits(b) {
        text.push_str("-01-01");
    } else if b.len() == 7 && digits(&b[..4]) && b[4] == b'-' && digits(&b[5..]) {
        text.push_str("-01");
    }
    // FHIR allows `:60` leap seconds; chrono and Python do not, so fold them onto `:59`.
    let text = text.replace(":60", ":59");
    let (naive, offset) = parse_iso(&text)?;
    // No zone means "somewhere on Earth": +14:00 is the earliest possible instant.
    let offset = offset.or_else(|| FixedOffset::east_opt(14 * 3600))?;
    naive.and_local_timezone(offset).single()
}

/// Today's local date as `YYYY-MM-DD` (the default export nickname).
pub fn today_local() -> String {
    now().format("%Y-%m-%d").to_string()
}

/// The subset of Python 3.11 `datetime.fromisoformat` that FHIR values and our own output
/// use: `YYYY-MM-DD` or `YYYYMMDD`, then optionally `T`/space and `HH[:MM[:SS[.f…]]]`
/// (basic `HHMMSS` too), then optionally `Z` or `±HH[:MM[:SS[.ffffff]]]` / `±HHMM`.
fn parse_iso(text: &str) -> Option<(NaiveDateTime, Option<FixedOffset>)> {
    if !text.is_ascii() {
        return None;
    }
    let s = text.as_bytes();
    let (date, rest) = if s.len() >= 10 && s[4] == b'-' {
        (
            parse_date(&s[0..4], &s[5..7], &s[8..10], s[7] == b'-')?,
            &s[10..],
        )
    } else if s.len() >= 8 && s[..8].iter().all(u8::is_ascii_digit) {
        (parse_date(&s[0..4], &s[4..6], &s[6..8], true)?, &s[8..])
    } else {
        return None;
    };
    if rest.is_empty() {
        return Some((date.and_time(NaiveTime::MIN), None));
    }
    if !matches!(rest[0], b'T' | b't' | b' ') {
        return None;
    }
    let rest = &rest[1..];
    // The time ends where the zone starts.
    let zone_at = rest
        .iter()
        .position(|c| matches!(c, b'Z' | b'z' | b'+' | b'-'))
        .unwrap_or(rest.len());
    let time = parse_time(&rest[..zone_at])?;
    let offset = if zone_at == rest.len() {
        None
    } else {
        Some(parse_offset(&rest[zone_at..])?)
    };
    Some((date.and_time(time), offset))
}

fn number(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

fn parse_date(y: &[u8], m: &[u8], d: &[u8], ok: bool) -> Option<NaiveDate> {
    if !ok {
        return None;
    }
    NaiveDate::from_ymd_opt(number(y)? as i32, number(m)?, number(d)?)
}

/// `HH`, `HH:MM`, `HH:MM:SS`, `HHMM`, `HHMMSS`, each optionally with `.`/`,` and fraction
/// digits of any length (truncated to microseconds, as Python does).
fn parse_time(s: &[u8]) -> Option<NaiveTime> {
    let (clock, fraction) = match s.iter().position(|&c| c == b'.' || c == b',') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let parts: Vec<&[u8]> = if clock.contains(&b':') {
        clock.split(|&c| c == b':').collect()
    } else {
        clock.chunks(2).collect()
    };
    if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.len() != 2) {
        return None;
    }
    // Python only accepts a fraction after full seconds.
    if fraction.is_some() && parts.len() != 3 {
        return None;
    }
    let hour = number(parts[0])?;
    let minute = parts.get(1).map_or(Some(0), |p| number(p))?;
    let second = parts.get(2).map_or(Some(0), |p| number(p))?;
    let micros = match fraction {
        None => 0,
        Some(f) => {
            if f.is_empty() || !f.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let mut digits: Vec<u8> = f.iter().take(6).copied().collect();
            digits.resize(6, b'0');
            number(&digits)?
        }
    };
    NaiveTime::from_hms_micro_opt(hour, minute, second, micros)
}

fn parse_offset(s: &[u8]) -> Option<FixedOffset> {
    match s {
        [b'Z' | b'z'] => return FixedOffset::east_opt(0),
        [] => return None,
        _ => {}
    }
    let sign = match s[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let body = &s[1..];
    // Sub-second offset fractions exist in Python but never in FHIR; accept and ignore them.
    let body = match body.iter().position(|&c| c == b'.') {
        Some(i) if i == 8 => &body[..i],
        Some(_) => return None,
        None => body,
    };
    let parts: Vec<&[u8]> = if body.contains(&b':') {
        body.split(|&c| c == b':').collect()
    } else {
        body.chunks(2).collect()
    };
    if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.len() != 2) {
        return None;
    }
    let hours = number(parts[0])?;
    let minutes = parts.get(1).map_or(Some(0), |p| number(p))?;
    let seconds = parts.get(2).map_or(Some(0), |p| number(p))?;
    if minutes >= 60 || seconds >= 60 {
        return None;
    }
    let total = (hours * 3600 + minutes * 60 + seconds) as i32;
    FixedOffset::east_opt(sign * total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iso(text: &str) -> Option<String> {
        parse_fhir(text).map(|t| isoformat(&t))
    }

    #[test]
    fn isoformat_like_python() {
        let tz = FixedOffset::east_opt(4 * 3600);
        let ts = tz.and_then(|tz| {
            NaiveDate::from_ymd_opt(2021, 9, 15)
                .and_then(|d| d.and_hms_opt(1, 23, 45))
                .and_then(|n| n.and_local_timezone(tz).single())
        });
        let Some(ts) = ts else {
            panic!("bad test date")
        };
        assert_eq!(isoformat(&ts), "2021-09-15T01:23:45+04:00");
        let Some(ts2) = ts.with_nanosecond(123_000_000) else {
            panic!()
        };
        assert_eq!(isoformat(&ts2), "2021-09-15T01:23:45.123000+04:00");
        let Some(ts3) = ts.with_nanosecond(1_999) else {
            panic!()
        };
        assert_eq!(isoformat(&ts3), "2021-09-15T01:23:45.000001+04:00");
        let utc = ts.with_timezone(&FixedOffset::east_opt(0).unwrap_or(*ts.offset()));
        assert_eq!(isoformat(&utc), "2021-09-14T21:23:45+00:00");
        let neg =
            ts.with_timezone(&FixedOffset::west_opt(5 * 3600 + 30 * 60).unwrap_or(*ts.offset()));
        assert_eq!(isoformat(&neg), "2021-09-14T15:53:45-05:30");
    }

    #[test]
    fn parses_fhir_dates_per_spec() {
        assert_eq!(iso(""), None);
        assert_eq!(iso("2020").as_deref(), Some("2020-01-01T00:00:00+14:00"));
        assert_eq!(iso("2020-03").as_deref(), Some("2020-03-01T00:00:00+14:00"));
        assert_eq!(
            iso("2020-01-01").as_deref(),
            Some("2020-01-01T00:00:00+14:00")
        );
        assert_eq!(
            iso("2020-01-01T10:00:60-10").as_deref(),
            Some("2020-01-01T10:00:59-10:00")
        );
        assert_eq!(
            iso("2024-10-16T12:00:00.123Z").as_deref(),
            Some("2024-10-16T12:00:00.123000+00:00")
        );
        assert_eq!(
            iso("2024-10-16T12:00:00.123456789+05:30").as_deref(),
            Some("2024-10-16T12:00:00.123456+05:30")
        );
        assert_eq!(
            iso("2024-10-16T12:00:00").as_deref(),
            Some("2024-10-16T12:00:00+14:00")
        );
        assert_eq!(
            iso("2024-10-16T12:00Z").as_deref(),
            Some("2024-10-16T12:00:00+00:00")
        );
        assert_eq!(
            iso("2024-10-16T12:00:00-0500").as_deref(),
            Some("2024-10-16T12:00:00-05:00")
        );
        assert_eq!(iso("blarg"), None);
        assert_eq!(iso("2020-13-01"), None);
        assert_eq!(iso("2020-01-01T25:00:00Z"), None);
        assert_eq!(iso("2020-1"), None);
    }

    #[test]
    fn own_output_round_trips() {
        let t = now();
        assert_eq!(parse_fhir(&isoformat(&t)), Some(t));
        for s in [
            "2021-09-15T01:23:45+04:00",
            "2021-09-15T01:23:45.000100-03:00",
        ] {
            assert_eq!(iso(s).as_deref(), Some(s));
        }
    }

    #[test]
    fn comparisons_are_on_instants() {
        let (Some(a), Some(b)) = (parse_fhir("2020-01-01"), parse_fhir("2019-12-31T10:00:00Z"))
        else {
            panic!("parse failed")
        };
        // 2020-01-01T00:00+14:00 is 2019-12-31T10:00Z.
        assert_eq!(a, b);
        assert_eq!(today_local().len(), 10);
    }
}
