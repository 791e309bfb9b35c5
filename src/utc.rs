//! The UTC calendar time of a Unix time, for lines people read (who holds an output
//! directory, log stamps). Civil-from-days (Howard Hinnant's algorithm), proleptic Gregorian.

use std::time::{SystemTime, UNIX_EPOCH};

/// A calendar date and time of day in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl Utc {
    /// The time `secs` seconds after 1970-01-01 00:00:00 UTC.
    pub fn of_unix(secs: u64) -> Utc {
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        Utc {
            year: yoe + era * 400 + i64::from(month <= 2),
            month: month as u8,
            day: day as u8,
            hour: (rem / 3600) as u8,
            minute: (rem / 60 % 60) as u8,
            second: (rem % 60) as u8,
        }
    }

    /// Now (the epoch if the clock is set before it).
    pub fn now() -> Utc {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Utc::of_unix(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::Utc;

    #[test]
    fn unix_times_are_civil_dates() {
        let at = |secs| {
            let t = Utc::of_unix(secs);
            (t.year, t.month, t.day, t.hour, t.minute, t.second)
        };
        assert_eq!(at(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(at(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(at(1_764_683_540), (2025, 12, 2, 13, 52, 20));
        assert_eq!(at(1_796_150_692), (2026, 12, 1, 18, 44, 52));
    }
}
