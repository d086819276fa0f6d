//! Synthetic timestamps: instants in 2019–2025 spelled with `Z` or a UTC offset, and dates.

use super::rng::Rng;
use chrono::{DateTime, FixedOffset, Utc};

/// 2019-01-02T00:00:00Z: nothing generated is earlier, whatever its offset.
pub const EARLIEST: i64 = 1_546_387_200;
/// 2025-12-30T00:00:00Z: nothing generated is later, whatever its offset.
pub const LATEST: i64 = 1_767_052_800;

const DAY: i64 = 86_400;

/// Offsets (minutes east of UTC) used when an instant is not spelled with `Z`.
const OFFSETS: [i32; 6] = [-300, -240, -420, 60, 120, 330];

/// How an instant is spelled.
#[derive(Clone, Copy, Debug)]
pub struct Spelling {
    offset_minutes: Option<i32>,
    millis: Option<u32>,
}

impl Spelling {
    pub fn random(rng: &mut Rng) -> Self {
        let offset_minutes = if rng.chance(0.55) {
            None
        } else {
            Some(*rng.pick(&OFFSETS))
        };
        let millis = if rng.chance(0.3) {
            Some(rng.below(1000) as u32)
        } else {
            None
        };
        Self {
            offset_minutes,
            millis,
        }
    }
}

pub fn clamp(secs: i64) -> i64 {
    secs.clamp(EARLIEST, LATEST)
}

/// An instant `secs` (Unix seconds) spelled as FHIR `instant`, clamped to the quarter-1
/// range.
pub fn instant(secs: i64, spelling: Spelling) -> String {
    format_instant(clamp(secs), spelling)
}

/// An instant `secs` spelled as FHIR `instant`, whatever its year (quarter-2 changes are
/// later than [`LATEST`]).
pub fn format_instant(secs: i64, spelling: Spelling) -> String {
    let Some(utc) = DateTime::<Utc>::from_timestamp(secs, 0) else {
        return "2020-01-01T00:00:00Z".to_string();
    };
    let frac = spelling
        .millis
        .map(|m| format!(".{m:03}"))
        .unwrap_or_default();
    match spelling
        .offset_minutes
        .and_then(|m| FixedOffset::east_opt(m * 60))
    {
        Some(offset) => {
            let local = utc.with_timezone(&offset);
            format!(
                "{}{}{}",
                local.format("%Y-%m-%dT%H:%M:%S"),
                frac,
                local.format("%:z")
            )
        }
        None => format!("{}{}Z", utc.format("%Y-%m-%dT%H:%M:%S"), frac),
    }
}

/// A random instant spelling for `secs`.
pub fn random_instant(rng: &mut Rng, secs: i64) -> String {
    let spelling = Spelling::random(rng);
    instant(secs, spelling)
}

/// The UTC calendar date of `secs`, `YYYY-MM-DD`.
pub fn date(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "2020-01-01".to_string())
}

/// A moment `0..=max_days` days (plus random seconds) after `secs`, clamped to the range.
pub fn later(rng: &mut Rng, secs: i64, max_days: i64) -> i64 {
    clamp(secs + rng.range_i64(0, max_days * DAY) + rng.range_i64(0, 3_600))
}

/// A random moment in `[from, to]`.
pub fn between(rng: &mut Rng, from: i64, to: i64) -> i64 {
    clamp(rng.range_i64(from, to))
}

pub const fn days(n: i64) -> i64 {
    n * DAY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        let z = Spelling {
            offset_minutes: None,
            millis: None,
        };
        assert_eq!(instant(EARLIEST, z), "2019-01-02T00:00:00Z");
        let o = Spelling {
            offset_minutes: Some(-300),
            millis: Some(7),
        };
        assert_eq!(instant(EARLIEST, o), "2019-01-01T19:00:00.007-05:00");
        assert_eq!(date(LATEST), "2025-12-30");
    }
}
