//! The wire format of a clock tick, shared by the server that writes it and the page that reads it.
//!
//! A tick is the server's UTC time as RFC 3339 with milliseconds and a `Z` suffix, for example
//! `2026-11-25T17:30:01.000Z`. Keeping both directions here means they cannot drift apart.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};

/// Formats an instant as the data of a clock tick.
pub fn encode(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses the data of a clock tick; `None` when it is not RFC 3339.
pub fn decode(data: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(data).ok().map(|instant| instant.with_timezone(&Utc))
}

// The human formats below are written out by hand rather than with `DateTime::format`: chrono's
// strftime machinery would add tens of kilobytes to the wasm bundle for three fixed layouts.

/// The time of day a person reads first, e.g. `17:30:01`.
pub fn time_of_day(instant: DateTime<Utc>) -> String {
    format!("{:02}:{:02}:{:02}", instant.hour(), instant.minute(), instant.second())
}

/// The time of day with milliseconds, e.g. `17:30:01.000`, for the list of recent ticks.
pub fn time_of_day_millis(instant: DateTime<Utc>) -> String {
    format!("{}.{:03}", time_of_day(instant), instant.timestamp_subsec_millis().min(999))
}

/// The calendar date in words, e.g. `Wednesday 25 November 2026`.
pub fn long_date(instant: DateTime<Utc>) -> String {
    const WEEKDAYS: [&str; 7] =
        ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    format!(
        "{} {} {} {}",
        WEEKDAYS[instant.weekday().num_days_from_monday() as usize],
        instant.day(),
        MONTHS[instant.month0() as usize],
        instant.year()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sample() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 17, 30, 1).unwrap() + chrono::Duration::milliseconds(7)
    }

    #[test]
    fn encode_writes_rfc3339_with_milliseconds_in_utc() {
        assert_eq!(encode(sample()), "2026-11-25T17:30:01.007Z");
    }

    #[test]
    fn decode_reads_back_what_encode_wrote() {
        assert_eq!(decode(&encode(sample())), Some(sample()));
    }

    #[test]
    fn decode_rejects_text_that_is_not_a_timestamp() {
        assert_eq!(decode("not a time"), None);
        assert_eq!(decode(""), None);
    }

    #[test]
    fn human_formats_match_chronos_own_formatting() {
        let into_new_year = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap()
            + chrono::Duration::nanoseconds(1_500_000_000);
        for instant in [sample(), Utc.with_ymd_and_hms(2027, 1, 3, 0, 0, 0).unwrap(), into_new_year] {
            assert_eq!(time_of_day(instant), instant.format("%H:%M:%S").to_string());
            assert_eq!(long_date(instant), instant.format("%A %-d %B %Y").to_string());
        }
    }

    #[test]
    fn human_formats_read_naturally() {
        assert_eq!(time_of_day(sample()), "17:30:01");
        assert_eq!(time_of_day_millis(sample()), "17:30:01.007");
        assert_eq!(long_date(sample()), "Wednesday 25 November 2026");
    }
}
