//! Timestamps as the write path binds and reads them, without chrono's
//! format strings.
//!
//! SQLite stores a timestamp as text, `YYYY-MM-DD HH:MM:SS` with up to nine
//! digits of fraction, and diesel writes and reads it through chrono's
//! `format`/`parse_from_str`, which interpret their format string anew for
//! every value: a tenth of the SQLite writer's instructions per message
//! went there (binding each message's and lead's times, reading each
//! looked-up lead's). [`SqlTime`] writes exactly the text diesel writes and
//! reads it back digit by digit, handing anything else (another layout, a
//! Julian day number) to diesel's own parser. On PostgreSQL, which sends
//! timestamps in binary, it is diesel's `NaiveDateTime` unchanged.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Timestamp;
use diesel::sqlite::{Sqlite, SqliteValue};

/// A `NaiveDateTime` with faster SQLite text conversions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, AsExpression, FromSqlRow)]
#[diesel(sql_type = Timestamp)]
pub struct SqlTime(pub NaiveDateTime);

impl From<NaiveDateTime> for SqlTime {
    fn from(t: NaiveDateTime) -> Self {
        SqlTime(t)
    }
}

impl From<SqlTime> for NaiveDateTime {
    fn from(t: SqlTime) -> Self {
        t.0
    }
}

impl ToSql<Timestamp, Sqlite> for SqlTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        match format(&self.0) {
            Some(text) => {
                out.set_value(text);
                Ok(IsNull::No)
            }
            // A year outside 0000–9999 or a leap second: diesel's way.
            None => <NaiveDateTime as ToSql<Timestamp, Sqlite>>::to_sql(&self.0, out),
        }
    }
}

impl FromSql<Timestamp, Sqlite> for SqlTime {
    fn from_sql(mut value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        if let Some(t) = parse(value.read_text()) {
            return Ok(SqlTime(t));
        }
        <NaiveDateTime as FromSql<Timestamp, Sqlite>>::from_sql(value).map(SqlTime)
    }
}

impl ToSql<Timestamp, Pg> for SqlTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <NaiveDateTime as ToSql<Timestamp, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<Timestamp, Pg> for SqlTime {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <NaiveDateTime as FromSql<Timestamp, Pg>>::from_sql(value).map(SqlTime)
    }
}

/// `%F %T%.f` as chrono prints it: the fraction left out when it is zero,
/// else in 3, 6 or 9 digits, as few as hold it exactly. `None` for what
/// this does not cover (a year outside 0–9999, a leap second).
fn format(t: &NaiveDateTime) -> Option<String> {
    let (year, nanos) = (t.year(), t.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return None;
    }
    fn digits(out: &mut String, value: u32, width: u32) {
        for place in (0..width).rev() {
            let digit = (value / 10u32.pow(place)) % 10;
            out.push(char::from(b'0' + digit as u8));
        }
    }
    let mut out = String::with_capacity(29);
    digits(&mut out, year as u32, 4);
    let fields = [
        ('-', t.month()),
        ('-', t.day()),
        (' ', t.hour()),
        (':', t.minute()),
        (':', t.second()),
    ];
    for (separator, value) in fields {
        out.push(separator);
        digits(&mut out, value, 2);
    }
    if nanos != 0 {
        out.push('.');
        if nanos % 1_000_000 == 0 {
            digits(&mut out, nanos / 1_000_000, 3);
        } else if nanos % 1_000 == 0 {
            digits(&mut out, nanos / 1_000, 6);
        } else {
            digits(&mut out, nanos, 9);
        }
    }
    Some(out)
}

/// Reads `YYYY-MM-DD HH:MM:SS` with an optional fraction of 1 to 9 digits;
/// `None` for any other text.
fn parse(text: &str) -> Option<NaiveDateTime> {
    let b = text.as_bytes();
    let separators = [(4, b'-'), (7, b'-'), (10, b' '), (13, b':'), (16, b':')];
    if b.len() < 19 || separators.iter().any(|&(i, c)| b[i] != c) {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let date = NaiveDate::from_ymd_opt(number(0..4)? as i32, number(5..7)?, number(8..10)?)?;
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            number(20..b.len())? * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    let time =
        NaiveTime::from_hms_nano_opt(number(11..13)?, number(14..16)?, number(17..19)?, nanos)?;
    Some(date.and_time(time))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadtest::content::Rng;

    /// Timestamps of every kind the fraction can take, over four centuries.
    fn samples() -> Vec<NaiveDateTime> {
        let mut rng = Rng::new(7);
        let base = NaiveDate::from_ymd_opt(1900, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        (0..20_000)
            .map(|i| {
                let secs = rng.below(400 * 366 * 86_400) as i64;
                let nanos = match i % 4 {
                    0 => 0,
                    1 => rng.below(1000) as u32 * 1_000_000,
                    2 => rng.below(1_000_000) as u32 * 1_000,
                    _ => rng.below(1_000_000_000) as u32,
                };
                base + chrono::Duration::seconds(secs) + chrono::Duration::nanoseconds(nanos.into())
            })
            .collect()
    }

    #[test]
    fn writes_the_text_diesel_writes() {
        for t in samples() {
            assert_eq!(format(&t).unwrap(), t.format("%F %T%.f").to_string());
        }
    }

    #[test]
    fn reads_back_what_it_writes_and_what_chrono_reads() {
        for t in samples() {
            assert_eq!(parse(&format(&t).unwrap()), Some(t));
        }
        // Fractions of any length, as other writers may have stored them.
        let t = |s: &str| NaiveDateTime::parse_from_str(s, "%F %T%.f").unwrap();
        for text in [
            "2026-12-07 10:00:00.5",
            "2026-12-07 10:00:00.12",
            "2026-12-07 23:59:59.1234",
        ] {
            assert_eq!(parse(text), Some(t(text)), "{text}");
        }
    }

    #[test]
    fn leaves_other_layouts_to_diesel() {
        for text in [
            "2026-12-07T10:00:00",
            "2026-12-07 10:00",
            "2026-12-07 10:00:00.",
            "2026-12-07 10:00:00.1234567890",
            "2026-13-07 10:00:00",
            "2026-12-07 24:00:00",
            "2459000.5",
            "",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
    }
}
