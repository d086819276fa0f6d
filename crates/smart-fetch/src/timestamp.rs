//! Timestamps as the Python tool spells them (local-offset ISO-8601, `+00:00` never `Z`,
//! microseconds only when non-zero) and FHIR date parsing for comparisons (spec §9.7).

use chrono::{DateTime, FixedOffset};

pub type Timestamp = DateTime<FixedOffset>;

/// Current time in the machine's local offset.
pub fn now() -> Timestamp {
    todo!()
}

/// Python `datetime.isoformat()` spelling.
pub fn isoformat(ts: &Timestamp) -> String {
    let _ = ts;
    todo!()
}

/// Parse a FHIR date / dateTime / instant (partial dates, leap seconds, +14:00 default).
pub fn parse_fhir(value: &str) -> Option<Timestamp> {
    let _ = value;
    todo!()
}

/// Today's local date as `YYYY-MM-DD` (the default export nickname).
pub fn today_local() -> String {
    todo!()
}
