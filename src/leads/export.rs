//! Lead export: the lead list's rows, read in keyset chunks and written as
//! CSV (for spreadsheets) or NDJSON (one lead as JSON per line).
//!
//! A chunk is read on a pooled connection that is returned before the chunk
//! is sent, so an export holds at most one chunk in memory and no
//! connection while the client reads.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::QueryResult;
use serde::Serialize;

use crate::db::DbConnection;
use crate::leads::filter::{self, Cursor, LeadFilter, Sort, Window};
use crate::leads::{tags, Lead};
use crate::time;

/// Leads per read.
pub const CHUNK: i64 = 1_000;

/// Leads of the export in list order, with their tags.
pub struct Chunk {
    pub leads: Vec<Lead>,
    pub tags: HashMap<i64, Vec<String>>,
    /// Where the next chunk starts; `None` after the last.
    pub next: Option<Cursor>,
}

/// The chunk of leads matching `filter`, in `sort` order, after `cursor`
/// (from the start without one).
pub fn chunk(
    conn: &mut DbConnection,
    filter: &LeadFilter,
    sort: Sort,
    cursor: Option<Cursor>,
) -> QueryResult<Chunk> {
    let window = Window {
        skip: 0,
        limit: CHUNK,
        with_total: false,
    };
    let page = filter::list(conn, filter, sort, cursor, window, time::now())?;
    let ids: Vec<i64> = page.items.iter().map(|l| l.id).collect();
    Ok(Chunk {
        tags: tags::for_leads(conn, &ids)?,
        leads: page.items,
        next: page.next,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8; header=present",
            Format::Ndjson => "application/x-ndjson",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        }
    }

    /// What comes before the first lead: for CSV a byte-order mark (without
    /// it Excel reads UTF-8 as the local code page) and the header row.
    pub fn preamble(self) -> Vec<u8> {
        match self {
            Format::Csv => {
                let mut out = "\u{feff}".as_bytes().to_vec();
                let names = COLUMNS.iter().map(|(name, _)| *name).chain(["tags"]);
                write_csv(&mut out, [names.map(str::to_string).collect()]);
                out
            }
            Format::Ndjson => Vec::new(),
        }
    }

    /// Appends the chunk's leads to `out`.
    pub fn write(self, out: &mut Vec<u8>, chunk: &Chunk) {
        let no_tags = Vec::new();
        let tags_of = |lead: &Lead| chunk.tags.get(&lead.id).unwrap_or(&no_tags);
        match self {
            Format::Csv => write_csv(out, chunk.leads.iter().map(|l| csv_record(l, tags_of(l)))),
            Format::Ndjson => {
                for lead in &chunk.leads {
                    let line = Line {
                        lead,
                        tags: tags_of(lead),
                    };
                    // Serialising a `Lead` into memory cannot fail.
                    if serde_json::to_writer(&mut *out, &line).is_ok() {
                        out.push(b'\n');
                    }
                }
            }
        }
    }
}

/// An NDJSON line: the lead as the API shows it, plus its tags.
#[derive(Serialize)]
struct Line<'a> {
    #[serde(flatten)]
    lead: &'a Lead,
    tags: &'a [String],
}

/// A CSV cell before formatting.
enum Cell<'a> {
    /// Text that came from outside (a person, WhatsApp, an admin): guarded
    /// against formula injection.
    Text(Option<&'a str>),
    Number(Option<i64>),
    Time(Option<NaiveDateTime>),
    Bool(bool),
}

type Column = (&'static str, fn(&Lead) -> Cell<'_>);

/// The CSV columns, in order; `tags` follows.
const COLUMNS: &[Column] = &[
    ("id", |l| Cell::Number(Some(l.id))),
    ("phone_number", |l| Cell::Text(l.phone_number.as_deref())),
    ("user_id", |l| Cell::Text(l.user_id.as_deref())),
    ("parent_user_id", |l| {
        Cell::Text(l.parent_user_id.as_deref())
    }),
    ("username", |l| Cell::Text(l.username.as_deref())),
    ("sender_name", |l| Cell::Text(l.sender_name.as_deref())),
    ("status", |l| Cell::Text(Some(&l.status))),
    ("priority", |l| Cell::Text(Some(&l.priority))),
    ("value_minor", |l| Cell::Number(l.value_minor)),
    ("value_currency", |l| {
        Cell::Text(l.value_currency.as_deref())
    }),
    ("assigned_to", |l| Cell::Text(l.assigned_to.as_deref())),
    ("next_follow_up_at", |l| Cell::Time(l.next_follow_up_at)),
    ("source_type", |l| Cell::Text(l.source_type.as_deref())),
    ("source_id", |l| Cell::Text(l.source_id.as_deref())),
    ("source_url", |l| Cell::Text(l.source_url.as_deref())),
    ("source_headline", |l| {
        Cell::Text(l.source_headline.as_deref())
    }),
    ("business_phone_number_id", |l| {
        Cell::Text(l.business_phone_number_id.as_deref())
    }),
    ("score", |l| Cell::Number(Some(l.score))),
    ("interactive_replies", |l| {
        Cell::Number(Some(l.interactive_replies))
    }),
    ("message_count", |l| Cell::Number(Some(l.message_count))),
    ("first_message", |l| Cell::Text(Some(&l.first_message))),
    ("first_message_time", |l| {
        Cell::Time(Some(l.first_message_time))
    }),
    ("last_message", |l| Cell::Text(Some(&l.last_message))),
    ("last_message_time", |l| {
        Cell::Time(Some(l.last_message_time))
    }),
    ("is_active", |l| Cell::Bool(l.is_active)),
    ("converted_to_student", |l| {
        Cell::Bool(l.converted_to_student)
    }),
    ("student_id", |l| Cell::Number(l.student_id)),
    ("converted_at", |l| Cell::Time(l.converted_at)),
    ("created_at", |l| Cell::Time(Some(l.created_at))),
    ("updated_at", |l| Cell::Time(Some(l.updated_at))),
];

fn csv_record(lead: &Lead, tags: &[String]) -> Vec<String> {
    let mut record: Vec<String> = COLUMNS
        .iter()
        .map(|(_, cell)| match cell(lead) {
            Cell::Text(t) => t.map(neutralize_formula).unwrap_or_default(),
            Cell::Number(n) => n.map(|n| n.to_string()).unwrap_or_default(),
            Cell::Time(t) => t.as_ref().map(time::to_rfc3339).unwrap_or_default(),
            Cell::Bool(b) => b.to_string(),
        })
        .collect();
    record.push(neutralize_formula(&tags.join(", ")));
    record
}

/// Writes records as RFC 4180 CSV: CRLF line ends, a cell quoted when it
/// holds a comma, quote, CR or LF, quotes doubled.
fn write_csv(out: &mut Vec<u8>, records: impl IntoIterator<Item = Vec<String>>) {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(out);
    for record in records {
        // Writing into memory cannot fail, and every record has the same
        // number of cells.
        let _ = writer.write_record(&record);
    }
    let _ = writer.flush();
}

/// A spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` as a
/// formula (and some skip a leading tab or CR first): such text gets a
/// leading `'`, which spreadsheets show as text and do not evaluate.
pub fn neutralize_formula(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_become_text() {
        assert_eq!(neutralize_formula("=1+2"), "'=1+2");
        assert_eq!(neutralize_formula("+1 555"), "'+1 555");
        assert_eq!(neutralize_formula("-2"), "'-2");
        assert_eq!(neutralize_formula("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(neutralize_formula("\t=x"), "'\t=x");
        assert_eq!(neutralize_formula("\r=x"), "'\r=x");
        assert_eq!(neutralize_formula("a=b"), "a=b");
        assert_eq!(neutralize_formula(""), "");
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let mut out = Vec::new();
        write_csv(
            &mut out,
            [vec![
                "plain".into(),
                "a,b".into(),
                "say \"hi\"".into(),
                "two\nlines".into(),
                "ünïcödé 👍".into(),
            ]],
        );
        assert_eq!(
            String::from_utf8(out).unwrap_or_default(),
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",ünïcödé 👍\r\n"
        );
    }
}
