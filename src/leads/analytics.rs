//! Lead analytics over a time range: per-day or per-week series of new
//! leads, messages and conversions, breakdowns by status, source, message
//! type and business number, and the median time to conversion.
//!
//! The database does the counting: four queries, each a range scan of one
//! covering index (see the `analytics_indexes` migrations), return at most a
//! few thousand groups per day and type, which are folded into buckets here
//! (weeks are summed from days, so both backends need only a "day of"
//! expression). Days are UTC days; weeks start on Monday.

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Double, Nullable, Text, Timestamp};
use serde::Serialize;

use crate::db::DbConnection;
use crate::leads::service::conversion_rate;

/// The pipeline stages, in pipeline order: every one is reported, with zero
/// when no lead is in it.
const STATUSES: [&str; 5] = ["new", "contacted", "qualified", "converted", "lost"];

/// What `source` says for a lead without click-to-WhatsApp attribution.
const ORGANIC: &str = "organic";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Day,
    Week,
}

impl Bucket {
    /// The first day of the bucket that holds `day`.
    pub fn start(self, day: NaiveDate) -> NaiveDate {
        match self {
            Bucket::Day => day,
            Bucket::Week => day - Duration::days(i64::from(day.weekday().num_days_from_monday())),
        }
    }

    fn step(self) -> Duration {
        match self {
            Bucket::Day => Duration::days(1),
            Bucket::Week => Duration::days(7),
        }
    }
}

/// The half-open range `[from, to)` that analytics cover, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: NaiveDateTime,
    pub to: NaiveDateTime,
}

impl Range {
    /// The UTC day of the range's last instant.
    pub fn last_day(&self) -> NaiveDate {
        (self.to - Duration::microseconds(1)).date()
    }
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Totals {
    /// Leads created in the range.
    pub new_leads: i64,
    /// Of those, how many have converted since.
    pub new_leads_converted: i64,
    /// `new_leads_converted` ÷ `new_leads`, as `/leads/stats` shows it.
    pub conversion_rate: String,
    /// Leads whose conversion falls in the range, whenever they arrived.
    pub conversions: i64,
    /// Messages received in the range.
    pub messages: i64,
    /// Mean `message_count` of the new leads (all their messages so far);
    /// `null` without new leads.
    pub average_messages_per_lead: Option<f64>,
    /// Median of conversion time minus first message time, in whole
    /// seconds, over the conversions in the range; `null` without any.
    pub median_seconds_to_conversion: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BucketRow {
    /// First day of the bucket (a Monday for weeks).
    pub start: NaiveDate,
    pub new_leads: i64,
    pub new_leads_converted: i64,
    pub conversion_rate: String,
    pub conversions: i64,
    pub messages: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusRow {
    pub status: String,
    pub leads: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceRow {
    /// `ad`, `post`, … or `organic` for a lead that wrote on its own.
    pub source: String,
    pub leads: i64,
    pub converted: i64,
    pub conversion_rate: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageTypeRow {
    pub message_type: String,
    pub messages: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BusinessNumberRow {
    /// `null` for leads and messages stored without one.
    pub business_phone_number_id: Option<String>,
    /// New leads that first wrote to this number.
    pub leads: i64,
    pub converted: i64,
    /// Messages received on this number.
    pub messages: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub from: NaiveDateTime,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub to: NaiveDateTime,
    pub bucket: Bucket,
    pub totals: Totals,
    pub buckets: Vec<BucketRow>,
    pub by_status: Vec<StatusRow>,
    pub by_source: Vec<SourceRow>,
    pub by_message_type: Vec<MessageTypeRow>,
    pub by_business_number: Vec<BusinessNumberRow>,
}

/// New leads of one day with the same status, source and business number.
#[derive(Debug, QueryableByName)]
struct LeadGroup {
    #[diesel(sql_type = Date)]
    day: NaiveDate,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Text>)]
    source_type: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    business_phone_number_id: Option<String>,
    #[diesel(sql_type = BigInt)]
    leads: i64,
    #[diesel(sql_type = BigInt)]
    converted: i64,
    #[diesel(sql_type = BigInt)]
    messages: i64,
}

#[derive(Debug, QueryableByName)]
struct ConversionDay {
    #[diesel(sql_type = Date)]
    day: NaiveDate,
    #[diesel(sql_type = BigInt)]
    conversions: i64,
}

/// Messages of one day with the same type and business number.
#[derive(Debug, QueryableByName)]
struct MessageGroup {
    #[diesel(sql_type = Date)]
    day: NaiveDate,
    #[diesel(sql_type = Text)]
    message_type: String,
    #[diesel(sql_type = Nullable<Text>)]
    business_phone_number_id: Option<String>,
    #[diesel(sql_type = BigInt)]
    messages: i64,
}

#[derive(Debug, QueryableByName)]
struct Seconds {
    #[diesel(sql_type = Nullable<Double>)]
    seconds: Option<f64>,
}

/// The SQL that differs between the backends.
#[derive(Clone, Copy)]
enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The UTC day of a timestamp column. SQLite stores timestamps as
    /// `YYYY-MM-DD HH:MM:SS…` text, so the day is its first ten characters.
    fn day(self, column: &str) -> String {
        match self {
            Dialect::Sqlite => format!("substr({column}, 1, 10)"),
            Dialect::Postgres => format!("CAST({column} AS date)"),
        }
    }

    /// `column >= from AND column < to`, with the bounds bound as the first
    /// two parameters. On SQLite the condition on the day comes first: it is
    /// what lets the `analytics_indexes` start at the range (its dates are
    /// formatted here, never taken from the request).
    fn in_range(self, column: &str, range: Range) -> String {
        match self {
            Dialect::Sqlite => format!(
                "{day} BETWEEN '{first}' AND '{last}' AND {column} >= ? AND {column} < ?",
                day = self.day(column),
                first = range.from.date(),
                last = range.last_day(),
            ),
            Dialect::Postgres => format!("{column} >= $1 AND {column} < $2"),
        }
    }
}

/// Runs `sql` (built for the connection's dialect) with the range bound as
/// its first two parameters.
fn load<R>(
    conn: &mut DbConnection,
    range: Range,
    sql: impl Fn(Dialect, Range) -> String,
) -> QueryResult<Vec<R>>
where
    R: QueryableByName<diesel::sqlite::Sqlite> + QueryableByName<diesel::pg::Pg> + 'static,
{
    match conn {
        DbConnection::Sqlite(c) => diesel::sql_query(sql(Dialect::Sqlite, range))
            .bind::<Timestamp, _>(range.from)
            .bind::<Timestamp, _>(range.to)
            .load(c),
        DbConnection::Postgres(c) => diesel::sql_query(sql(Dialect::Postgres, range))
            .bind::<Timestamp, _>(range.from)
            .bind::<Timestamp, _>(range.to)
            .load(c),
    }
}

fn lead_groups(conn: &mut DbConnection, range: Range) -> QueryResult<Vec<LeadGroup>> {
    load(conn, range, lead_groups_sql)
}

fn lead_groups_sql(d: Dialect, range: Range) -> String {
    format!(
        "SELECT {day} AS day, status, source_type, business_phone_number_id, \
                COUNT(*) AS leads, COUNT(converted_at) AS converted, \
                CAST(SUM(message_count) AS BIGINT) AS messages \
         FROM leads WHERE {range} GROUP BY 1, 2, 3, 4",
        day = d.day("created_at"),
        range = d.in_range("created_at", range),
    )
}

fn conversion_days(conn: &mut DbConnection, range: Range) -> QueryResult<Vec<ConversionDay>> {
    load(conn, range, conversion_days_sql)
}

fn conversion_days_sql(d: Dialect, range: Range) -> String {
    format!(
        "SELECT {day} AS day, COUNT(*) AS conversions FROM leads WHERE {range} GROUP BY 1",
        day = d.day("converted_at"),
        range = d.in_range("converted_at", range),
    )
}

fn message_groups(conn: &mut DbConnection, range: Range) -> QueryResult<Vec<MessageGroup>> {
    load(conn, range, message_groups_sql)
}

fn message_groups_sql(d: Dialect, range: Range) -> String {
    format!(
        "SELECT {day} AS day, message_type, business_phone_number_id, COUNT(*) AS messages \
         FROM messages WHERE {range} GROUP BY 1, 2, 3",
        day = d.day("received_at"),
        range = d.in_range("received_at", range),
    )
}

/// The median of `converted_at - first_message_time` over the `count`
/// conversions in the range. PostgreSQL has `percentile_cont`; SQLite sorts
/// the durations and reads the middle one or two with `LIMIT … OFFSET`.
/// Either way only the number comes back.
fn median_seconds_to_conversion(
    conn: &mut DbConnection,
    range: Range,
    count: i64,
) -> QueryResult<Option<f64>> {
    if count == 0 {
        return Ok(None);
    }
    let rows: Vec<Seconds> = match conn {
        DbConnection::Sqlite(c) => diesel::sql_query(format!(
            "SELECT AVG(d) AS seconds FROM (\
                 SELECT (julianday(converted_at) - julianday(first_message_time)) * 86400.0 AS d \
                 FROM leads WHERE {} ORDER BY d LIMIT ? OFFSET ?)",
            Dialect::Sqlite.in_range("converted_at", range)
        ))
        .bind::<Timestamp, _>(range.from)
        .bind::<Timestamp, _>(range.to)
        .bind::<BigInt, _>(2 - count % 2)
        .bind::<BigInt, _>((count - 1) / 2)
        .load(c)?,
        DbConnection::Postgres(c) => diesel::sql_query(format!(
            "SELECT CAST(EXTRACT(EPOCH FROM percentile_cont(0.5) WITHIN GROUP \
                 (ORDER BY converted_at - first_message_time)) AS double precision) AS seconds \
             FROM leads WHERE {}",
            Dialect::Postgres.in_range("converted_at", range)
        ))
        .bind::<Timestamp, _>(range.from)
        .bind::<Timestamp, _>(range.to)
        .load(c)?,
    };
    Ok(rows.into_iter().next().and_then(|r| r.seconds))
}

/// The analytics of `range`, in buckets of `bucket`.
pub fn report(conn: &mut DbConnection, range: Range, bucket: Bucket) -> QueryResult<Report> {
    let lead_groups = lead_groups(conn, range)?;
    let conversion_days = conversion_days(conn, range)?;
    let message_groups = message_groups(conn, range)?;
    let conversions: i64 = conversion_days.iter().map(|d| d.conversions).sum();
    let median = median_seconds_to_conversion(conn, range, conversions)?;

    // Every bucket that the range touches, zero until counted.
    let mut buckets: BTreeMap<NaiveDate, BucketRow> = BTreeMap::new();
    let last_day = range.last_day();
    let mut start = bucket.start(range.from.date());
    while start <= last_day {
        buckets.insert(
            start,
            BucketRow {
                start,
                new_leads: 0,
                new_leads_converted: 0,
                conversion_rate: String::new(),
                conversions: 0,
                messages: 0,
            },
        );
        start += bucket.step();
    }

    let mut totals = Totals {
        conversions,
        ..Totals::default()
    };
    let mut lead_messages = 0i64;
    let mut by_status: Vec<StatusRow> = STATUSES
        .iter()
        .map(|s| StatusRow {
            status: s.to_string(),
            leads: 0,
        })
        .collect();
    let mut by_source: HashMap<String, (i64, i64)> = HashMap::new();
    let mut by_number: HashMap<Option<String>, BusinessNumberRow> = HashMap::new();
    for g in lead_groups {
        totals.new_leads += g.leads;
        totals.new_leads_converted += g.converted;
        lead_messages += g.messages;
        if let Some(b) = buckets.get_mut(&bucket.start(g.day)) {
            b.new_leads += g.leads;
            b.new_leads_converted += g.converted;
        }
        match by_status.iter_mut().find(|s| s.status == g.status) {
            Some(s) => s.leads += g.leads,
            None => by_status.push(StatusRow {
                status: g.status,
                leads: g.leads,
            }),
        }
        let source = by_source
            .entry(g.source_type.unwrap_or_else(|| ORGANIC.to_string()))
            .or_default();
        source.0 += g.leads;
        source.1 += g.converted;
        let number = business_number(&mut by_number, g.business_phone_number_id);
        number.leads += g.leads;
        number.converted += g.converted;
    }
    for d in conversion_days {
        if let Some(b) = buckets.get_mut(&bucket.start(d.day)) {
            b.conversions += d.conversions;
        }
    }
    let mut by_type: HashMap<String, i64> = HashMap::new();
    for g in message_groups {
        totals.messages += g.messages;
        if let Some(b) = buckets.get_mut(&bucket.start(g.day)) {
            b.messages += g.messages;
        }
        *by_type.entry(g.message_type).or_default() += g.messages;
        business_number(&mut by_number, g.business_phone_number_id).messages += g.messages;
    }

    totals.conversion_rate = conversion_rate(totals.new_leads_converted, totals.new_leads);
    totals.average_messages_per_lead = (totals.new_leads > 0)
        .then(|| (lead_messages as f64 / totals.new_leads as f64 * 100.0).round() / 100.0);
    totals.median_seconds_to_conversion = median.map(|s| s.round() as i64);

    let mut by_source: Vec<SourceRow> = by_source
        .into_iter()
        .map(|(source, (leads, converted))| SourceRow {
            source,
            leads,
            converted,
            conversion_rate: conversion_rate(converted, leads),
        })
        .collect();
    by_source.sort_by(|a, b| b.leads.cmp(&a.leads).then_with(|| a.source.cmp(&b.source)));
    let mut by_message_type: Vec<MessageTypeRow> = by_type
        .into_iter()
        .map(|(message_type, messages)| MessageTypeRow {
            message_type,
            messages,
        })
        .collect();
    by_message_type.sort_by(|a, b| {
        b.messages
            .cmp(&a.messages)
            .then_with(|| a.message_type.cmp(&b.message_type))
    });
    let mut by_business_number: Vec<BusinessNumberRow> = by_number.into_values().collect();
    by_business_number.sort_by(|a, b| {
        (b.leads, b.messages)
            .cmp(&(a.leads, a.messages))
            .then_with(|| a.business_phone_number_id.cmp(&b.business_phone_number_id))
    });

    Ok(Report {
        from: range.from,
        to: range.to,
        bucket,
        totals,
        buckets: buckets
            .into_values()
            .map(|mut b| {
                b.conversion_rate = conversion_rate(b.new_leads_converted, b.new_leads);
                b
            })
            .collect(),
        by_status,
        by_source,
        by_message_type,
        by_business_number,
    })
}

fn business_number(
    rows: &mut HashMap<Option<String>, BusinessNumberRow>,
    id: Option<String>,
) -> &mut BusinessNumberRow {
    rows.entry(id.clone()).or_insert(BusinessNumberRow {
        business_phone_number_id: id,
        leads: 0,
        converted: 0,
        messages: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2026-11-16 is a Monday.
        assert_eq!(Bucket::Week.start(date(2026, 11, 16)), date(2026, 11, 16));
        assert_eq!(Bucket::Week.start(date(2026, 11, 22)), date(2026, 11, 16));
        assert_eq!(Bucket::Week.start(date(2026, 11, 23)), date(2026, 11, 23));
        assert_eq!(Bucket::Day.start(date(2026, 11, 22)), date(2026, 11, 22));
    }

    #[derive(QueryableByName)]
    struct PlanStep {
        #[diesel(sql_type = Text)]
        detail: String,
    }

    /// On SQLite each grouping is read from its covering index alone. The
    /// write path keeps no other index on those columns for them: a message
    /// writes no plain `received_at` index entry (migration 000012).
    #[test]
    fn sqlite_reads_each_grouping_from_its_covering_index() {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::db::test_pool(&dir);
        let mut conn = pool.get().unwrap();
        let DbConnection::Sqlite(c) = &mut *conn else {
            panic!("test_pool is SQLite");
        };
        let range = Range {
            from: date(2026, 11, 1).and_hms_opt(0, 0, 0).unwrap(),
            to: date(2026, 12, 1).and_hms_opt(0, 0, 0).unwrap(),
        };
        type Sql = fn(Dialect, Range) -> String;
        let groupings: [(Sql, &str); 3] = [
            (lead_groups_sql, "leads_analytics_created_idx"),
            (conversion_days_sql, "leads_analytics_converted_idx"),
            (message_groups_sql, "messages_analytics_received_idx"),
        ];
        for (sql, index) in groupings {
            let plan: Vec<PlanStep> = diesel::sql_query(format!(
                "EXPLAIN QUERY PLAN {}",
                sql(Dialect::Sqlite, range)
            ))
            .bind::<Timestamp, _>(range.from)
            .bind::<Timestamp, _>(range.to)
            .load(c)
            .unwrap();
            let plan: Vec<&str> = plan.iter().map(|step| step.detail.as_str()).collect();
            assert!(
                plan.iter()
                    .any(|step| step.contains(&format!("USING COVERING INDEX {index}"))),
                "expected {index}, got {plan:?}"
            );
        }
    }
}
