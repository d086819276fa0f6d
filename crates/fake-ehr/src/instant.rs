//! FHIR date/dateTime/instant parsing and the `gt/ge/lt/le/eq` prefix comparisons used by
//! date search parameters. Everything compares as UTC milliseconds; a value without a zone
//! is UTC and a partial date means its first moment.

use chrono::{DateTime, NaiveDate, NaiveDateTime};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefix {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

/// One parsed date search value, e.g. `ge2024-01-01T00:00:00Z`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateFilter {
    pub prefix: Prefix,
    pub millis: i64,
}

impl DateFilter {
    pub fn parse(value: &str) -> Result<Self, String> {
        let (prefix, rest) = match value.get(..2) {
            Some("gt") => (Prefix::Gt, &value[2..]),
            Some("ge") => (Prefix::Ge, &value[2..]),
            Some("lt") => (Prefix::Lt, &value[2..]),
            Some("le") => (Prefix::Le, &value[2..]),
            Some("eq") => (Prefix::Eq, &value[2..]),
            _ => (Prefix::Eq, value),
        };
        let millis = parse_millis(rest).ok_or_else(|| format!("invalid date {value:?}"))?;
        Ok(Self { prefix, millis })
    }

    pub fn matches(&self, millis: i64) -> bool {
        match self.prefix {
            Prefix::Eq => millis == self.millis,
            Prefix::Gt => millis > self.millis,
            Prefix::Ge => millis >= self.millis,
            Prefix::Lt => millis < self.millis,
            Prefix::Le => millis <= self.millis,
        }
    }
}

/// Milliseconds since the epoch of a FHIR `date`, `dateTime` or `instant`.
pub fn parse_millis(value: &str) -> Option<i64> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(value) {
        return Some(dt.timestamp_millis());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(value, format) {
            return Some(naive.and_utc().timestamp_millis());
        }
    }
    let date = match value.len() {
        4 => NaiveDate::parse_from_str(&format!("{value}-01-01"), "%Y-%m-%d").ok()?,
        7 => NaiveDate::parse_from_str(&format!("{value}-01"), "%Y-%m-%d").ok()?,
        10 => NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()?,
        _ => return None,
    };
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_compares() {
        let z = parse_millis("2021-03-04T05:06:07Z");
        assert_eq!(z, parse_millis("2021-03-04T00:06:07-05:00"));
        assert_eq!(z, parse_millis("2021-03-04T05:06:07"));
        assert_eq!(
            parse_millis("2021-03-04"),
            parse_millis("2021-03-04T00:00:00Z")
        );
        assert_eq!(parse_millis("2021"), parse_millis("2021-01-01"));
        assert_eq!(parse_millis("2021-02"), parse_millis("2021-02-01"));
        assert!(parse_millis("2021-03-04T05:06:07 05:00").is_none());
        let f = DateFilter::parse("ge2021-03-04").ok();
        assert!(f.is_some_and(|f| f.matches(parse_millis("2021-03-04T00:00:00Z").unwrap_or(0))));
        assert!(DateFilter::parse("gx2021").is_err());
    }
}
