//! Where an offset into the list lands: the day whose leads it falls among,
//! from per-day counts that triggers keep. In the default order (latest
//! activity first) they are the leads of each status, source type and
//! business number by the day of their latest message (migration
//! `lead_activity_days`), which serve the whole list and a list filtered on
//! one kind of value alone (as
//! [`LeadFilter::counted_values`](super::filter::LeadFilter) reads them); by
//! creation (`sort=created`), all leads by the day they were created
//! (`lead_created_days`). A page read from there steps over that day's
//! leads only, where an offset from the front steps over every lead ahead
//! of it: at 1 M leads PostgreSQL took 35–54 ms to step over 500,000
//! entries of the sort's index, and 190–230 ms to find the 100,000th lead
//! from an ad (BENCHMARKS.md, twenty-first pass).

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate, NaiveDateTime, NaiveTime};
use diesel::prelude::*;

use crate::db::schema::{lead_activity_days, lead_created_days};
use crate::db::DbConnection;
use crate::leads::value_counts::Counted;
use crate::with_conn;

/// The per-day counts an offset is found in.
#[derive(Debug, Clone, Copy)]
pub(super) enum ByDay<'a> {
    /// By the day of the latest message: all leads (`None`), or those of
    /// one kind of value.
    Activity(Option<&'a Counted<'a>>),
    /// By the day of creation, all leads.
    Created,
}

/// An offset into the list restated from a day's end: `skip` leads among
/// those whose latest message (or creation, by [`ByDay`]) came before
/// `before`, the next day's midnight (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Landing {
    pub before: NaiveDateTime,
    pub skip: i64,
}

/// Where `skip` lands among the leads `by_day` counts; `None` past the end.
pub(super) fn landing(
    conn: &mut DbConnection,
    by_day: ByDay<'_>,
    skip: i64,
) -> QueryResult<Option<Landing>> {
    // A row a day (and value): a few hundred to a few thousand a year.
    let mut days = BTreeMap::new();
    match by_day {
        ByDay::Activity(counted) => {
            // All leads, as every lead has one status: the whole list, or
            // what the rest of a kind is taken from.
            if counted.is_none_or(|c| c.rest) {
                add(&mut days, activity_rows(conn, "status", None)?, 1);
            }
            if let Some(c) = counted {
                let values = (!c.rest).then_some(&c.values[..]);
                let sign = if c.rest { -1 } else { 1 };
                add(&mut days, activity_rows(conn, c.kind, values)?, sign);
            }
        }
        ByDay::Created => {
            let rows = with_conn!(conn, c => lead_created_days::table
                .select((lead_created_days::day, lead_created_days::leads))
                .load(c))?;
            add(&mut days, rows, 1);
        }
    }
    Ok(land(days.into_iter().rev(), skip))
}

/// The activity rows of `kind`, of any of `values` or of every value.
fn activity_rows(
    conn: &mut DbConnection,
    kind: &str,
    values: Option<&[&str]>,
) -> QueryResult<Vec<(NaiveDate, i64)>> {
    with_conn!(conn, c => {
        let mut rows = lead_activity_days::table
            .filter(lead_activity_days::kind.eq(kind))
            .select((lead_activity_days::day, lead_activity_days::leads))
            .into_boxed();
        if let Some(values) = values {
            rows = rows.filter(lead_activity_days::value.eq_any(values.to_vec()));
        }
        rows.load(c)
    })
}

fn add(days: &mut BTreeMap<NaiveDate, i64>, rows: Vec<(NaiveDate, i64)>, sign: i64) {
    for (day, leads) in rows {
        *days.entry(day).or_default() += sign * leads;
    }
}

/// `days`: how many leads each day counts, latest day first.
fn land(days: impl IntoIterator<Item = (NaiveDate, i64)>, skip: i64) -> Option<Landing> {
    let mut ahead = 0;
    for (day, leads) in days {
        if ahead + leads > skip {
            let next = day.checked_add_days(Days::new(1))?;
            return Some(Landing {
                before: next.and_time(NaiveTime::MIN),
                skip: skip - ahead,
            });
        }
        ahead += leads;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, d).unwrap()
    }

    fn landed(d: u32, skip: i64) -> Option<Landing> {
        Some(Landing {
            before: day(d).and_hms_opt(0, 0, 0).unwrap(),
            skip,
        })
    }

    #[test]
    fn an_offset_lands_among_the_leads_of_its_day() {
        // 3 leads last wrote on the 7th, 2 on the 5th, 4 on the 1st.
        // A day left with no leads is stepped over.
        let days = [(day(7), 3), (day(6), 0), (day(5), 2), (day(1), 4)];
        assert_eq!(land(days, 0), landed(8, 0));
        assert_eq!(land(days, 2), landed(8, 2));
        assert_eq!(land(days, 3), landed(6, 0));
        assert_eq!(land(days, 4), landed(6, 1));
        assert_eq!(land(days, 5), landed(2, 0));
        assert_eq!(land(days, 8), landed(2, 3));
        assert_eq!(land(days, 9), None);
        assert_eq!(land([], 0), None);
    }
}
