//! `GET /api/admin/analytics?from=&to=&bucket=day|week`.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime};

use super::params::{arg, Query};
use crate::error::AppError;
use crate::leads::analytics::{self, Bucket, Range};
use crate::startup::AppState;
use crate::time;

/// Without `from`, the range is this many UTC days up to `to`.
const DEFAULT_DAYS: i64 = 30;
/// The longest range: a year of daily buckets, leap day included.
const MAX_DAYS: i64 = 366;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/analytics", web::get().to(report));
}

async fn report(state: web::Data<AppState>, query: Query) -> Result<HttpResponse, AppError> {
    let bucket = bucket(arg(&query, "bucket"))?;
    let range = range(arg(&query, "from"), arg(&query, "to"), time::now())?;
    let report = state
        .db
        .read(move |conn| analytics::report(conn, range, bucket).map_err(AppError::from))
        .await?;
    Ok(HttpResponse::Ok().json(report))
}

fn bucket(raw: Option<&str>) -> Result<Bucket, AppError> {
    match raw.map(str::trim) {
        None | Some("day") => Ok(Bucket::Day),
        Some("week") => Ok(Bucket::Week),
        Some(other) => Err(AppError::BadRequest(format!(
            "bucket must be day or week, got '{other}'"
        ))),
    }
}

/// A bound of the range: an RFC 3339 timestamp (any offset, converted to
/// UTC), or a date, which means the start of that UTC day for `from` and
/// its end for `to` (so `from=2026-11-01&to=2026-11-30` is all of November).
fn bound(name: &str, raw: &str, end_of_day: bool) -> Result<NaiveDateTime, AppError> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.naive_utc());
    }
    if let Ok(day) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        let day = if end_of_day {
            day.succ_opt()
        } else {
            Some(day)
        };
        if let Some(start) = day.and_then(|d| d.and_hms_opt(0, 0, 0)) {
            return Ok(start);
        }
    }
    Err(AppError::BadRequest(format!(
        "{name} must be an RFC 3339 timestamp (2026-11-22T10:15:00Z) or a date (2026-11-22), got '{raw}'"
    )))
}

/// `[from, to)` from the query: `to` defaults to `now`, `from` to the start
/// of the UTC day `DEFAULT_DAYS - 1` days before `to`'s last day.
fn range(from: Option<&str>, to: Option<&str>, now: NaiveDateTime) -> Result<Range, AppError> {
    let to = match to {
        Some(raw) => bound("to", raw, true)?,
        None => now,
    };
    let from = match from {
        Some(raw) => bound("from", raw, false)?,
        None => {
            let last_day = (to - Duration::microseconds(1)).date();
            (last_day - Duration::days(DEFAULT_DAYS - 1))
                .and_hms_opt(0, 0, 0)
                .unwrap_or(to)
        }
    };
    if from >= to {
        return Err(AppError::BadRequest(format!(
            "from ({}) must be before to ({})",
            time::to_rfc3339(&from),
            time::to_rfc3339(&to)
        )));
    }
    if to - from > Duration::days(MAX_DAYS) {
        return Err(AppError::BadRequest(format!(
            "from and to may be at most {MAX_DAYS} days apart, got {} to {}",
            time::to_rfc3339(&from),
            time::to_rfc3339(&to)
        )));
    }
    Ok(Range { from, to })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        DateTime::parse_from_rfc3339(text).unwrap().naive_utc()
    }

    #[test]
    fn dates_cover_whole_days() {
        let r = range(
            Some("2026-11-01"),
            Some("2026-11-30"),
            at("2026-12-05T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(r.from, at("2026-11-01T00:00:00Z"));
        assert_eq!(r.to, at("2026-12-01T00:00:00Z"));
    }

    #[test]
    fn timestamps_are_taken_to_utc() {
        let r = range(
            Some("2026-11-01T02:00:00+02:00"),
            Some("2026-11-02T00:00:00Z"),
            at("2026-12-05T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(r.from, at("2026-11-01T00:00:00Z"));
    }

    #[test]
    fn default_is_thirty_days_up_to_now() {
        let now = at("2026-11-22T10:15:00Z");
        let r = range(None, None, now).unwrap();
        assert_eq!(r.from, at("2026-10-24T00:00:00Z"));
        assert_eq!(r.to, now);
    }

    #[test]
    fn bad_ranges_name_the_parameter() {
        let now = at("2026-11-22T10:15:00Z");
        for (from, to, name) in [
            (Some("yesterday"), None, "from"),
            (None, Some("2026-13-01"), "to"),
            (Some("2026-11-20"), Some("2026-11-10"), "from"),
            (Some("2025-01-01"), Some("2026-11-10"), "from"),
        ] {
            let e = range(from, to, now).unwrap_err().to_string();
            assert!(e.starts_with(name), "{e}");
        }
        assert!(bucket(Some("month"))
            .unwrap_err()
            .to_string()
            .starts_with("bucket"));
    }
}
