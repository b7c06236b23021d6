//! How `q` finds leads: through the backends' search indexes (the union
//! of three index look-ups, counted without reading a lead where it can),
//! or by a `LIKE` scan; and when a term is broad enough that its page is
//! better found by walking the leads in sort order ([`super::filter::list`]).

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use crate::db::DbConnection;
use crate::leads::filter::{LeadFilter, Totals};

impl LeadFilter {
    /// The conditions a search's count tests each matching lead id against,
    /// when `q` comes with no filter but `active` and `converted`: then the
    /// search indexes answer the total, as for `q` alone. Each of the two
    /// is tested against the leads that are inactive, or converted, read
    /// from a partial index of their own (migration `flag_indexes`), where
    /// the page's own count looks every matching lead up (1 M leads, a
    /// word in 240,000 of them with `active=true`: SQLite 235 → 150 ms,
    /// PostgreSQL 2.0 → 0.8 s; BENCHMARKS.md, eighteenth pass). Reading
    /// that side costs time in proportion to its size whatever the term,
    /// so this holds only while each side used is at most
    /// 1/[`FLAG_SIDE_SHARE`] of all leads and at most [`FLAG_SIDE_MAX`]
    /// leads; otherwise `None`, and the page counts.
    pub(super) fn search_count_conditions(&self, totals: Totals) -> Option<Vec<String>> {
        let Totals {
            leads,
            active,
            converted,
            ..
        } = totals;
        let rest = LeadFilter {
            q: None,
            active: None,
            converted: None,
            ..self.clone()
        };
        if self.q.is_none() || !rest.counted_by_counters() {
            return None;
        }
        // (the filter, how many leads its index holds, those leads, and the
        // value they have). The texts must stay the partial indexes' own.
        let flags = [
            (
                self.active,
                leads - active,
                "(SELECT id FROM leads WHERE is_active = FALSE)",
                false,
            ),
            (
                self.converted,
                converted,
                "(SELECT id FROM leads WHERE converted_to_student = TRUE)",
                true,
            ),
        ];
        let mut conditions = Vec::new();
        for (wanted, held, side, value) in flags {
            let Some(wanted) = wanted else { continue };
            if held * FLAG_SIDE_SHARE > leads || held > FLAG_SIDE_MAX {
                return None;
            }
            let not = if wanted == value { "" } else { "NOT " };
            conditions.push(format!("id {not}IN {side}"));
        }
        Some(conditions)
    }
}

/// A search's `active` or `converted` filter is tested against the leads
/// its partial index holds while they are at most this share (1/n) of all
/// leads…
const FLAG_SIDE_SHARE: i64 = 10;
/// …and at most this many. PostgreSQL tests `id IN (…)` against a hash of
/// the side only when its estimate of the hash fits in the memory a hash
/// may take (twice the count's 16 MB of `work_mem`; about 33 bytes an id,
/// so about a million ids); beyond it, it searches the side once for
/// every matching message.
const FLAG_SIDE_MAX: i64 = 500_000;

/// `%text%` for `LIKE … ESCAPE '\'`, lower-cased, with wildcards escaped.
pub(super) fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for ch in text.to_lowercase().chars() {
        if matches!(ch, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    pattern
}

/// How `q` is looked up.
pub(super) enum Search {
    /// Through the search indexes (see the `search_indexes` and
    /// `notes_search` migrations, and SQLite's [`crate::db::search_index`]).
    Indexed(IndexedSearch),
    /// A `LIKE` scan: SQLite's trigram index needs three characters or more.
    Scan(String),
}

/// The ids of the leads a term is found in, as a query in the backend's own
/// SQL: the union of three index lookups (the lead's fields, its messages,
/// its notes), with the term bound before the second, third and fourth
/// part. One `IN` over this union, rather than three conditions joined by
/// `OR`, lets PostgreSQL use each part's index: with the `OR` it tested the
/// lead expression on every lead (3.8 s at 1 M leads, even for a term found
/// nowhere).
pub(super) struct IndexedSearch {
    pub(super) union: [&'static str; 4],
    pub(super) term: String,
}

impl IndexedSearch {
    /// The union with the backend's placeholders, for a raw query that
    /// binds the term three times.
    fn union_sql(&self, conn: &DbConnection) -> String {
        let placeholders = match conn {
            DbConnection::Sqlite(_) => ["?"; 3],
            DbConnection::Postgres(_) => ["$1", "$2", "$3"],
        };
        let [first, second, third, last] = self.union;
        let [a, b, c] = placeholders;
        format!("{first}{a}{second}{b}{third}{c}{last}")
    }
}

impl Search {
    pub(super) fn for_backend(conn: &DbConnection, q: &str) -> Search {
        match conn {
            DbConnection::Sqlite(_) if q.chars().count() < 3 => Search::Scan(like_pattern(q)),
            DbConnection::Sqlite(_) => Search::Indexed(IndexedSearch {
                union: [
                    "SELECT rowid AS id FROM leads_search WHERE leads_search MATCH ",
                    // A message's search row id carries its lead's id in the
                    // low 32 bits (migration `search_by_lead`).
                    " UNION ALL SELECT rowid & 0xFFFFFFFF FROM messages_search \
                     WHERE messages_search MATCH ",
                    " UNION ALL SELECT n.lead_id FROM lead_notes n WHERE n.id IN \
                     (SELECT rowid FROM notes_search WHERE notes_search MATCH ",
                    ")",
                ],
                // An FTS5 phrase: matched as a substring by the trigram tokenizer.
                term: format!("\"{}\"", q.replace('"', "\"\"")),
            }),
            // The expressions must stay the ones the trigram indexes are built
            // on; the lead's fields and the messages' text are kept
            // lower-cased in tables of their own (migrations
            // `lead_search_table`, `message_search_table`).
            DbConnection::Postgres(_) => Search::Indexed(IndexedSearch {
                union: [
                    "SELECT s.lead_id AS id FROM lead_search s WHERE s.terms LIKE ",
                    " ESCAPE '\\' UNION ALL SELECT m.lead_id FROM message_search m WHERE m.body LIKE ",
                    " ESCAPE '\\' UNION ALL SELECT n.lead_id FROM lead_notes n WHERE lower(n.body) LIKE ",
                    " ESCAPE '\\'",
                ],
                term: like_pattern(q),
            }),
        }
    }
}

/// The answer of a raw `SELECT count(*) AS n …`.
#[derive(QueryableByName)]
pub(super) struct Count {
    #[diesel(sql_type = BigInt)]
    pub(super) n: i64,
}

/// A term found in at least this share (1/n) of all messages, or of all
/// leads, is "broad": its page is found by walking the leads in sort order.
const BROAD_SHARE: i64 = 100;
/// …and in at least this many.
const BROAD_MIN: i64 = 2_000;

/// Whether `term` (an FTS5 phrase) occurs in so many messages that walking
/// the leads in sort order and testing each one with `LIKE` fills a page
/// sooner than collecting every matching lead first. Reads at most the
/// threshold's number of index entries. `messages`: all messages, from the
/// running totals.
pub(super) fn matches_broadly(
    conn: &mut DbConnection,
    term: &str,
    messages: i64,
) -> QueryResult<bool> {
    let DbConnection::Sqlite(c) = conn else {
        return Ok(false);
    };
    let threshold = (messages / BROAD_SHARE).max(BROAD_MIN);
    let found: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM (SELECT rowid FROM messages_search \
         WHERE messages_search MATCH ? LIMIT ?)",
    )
    .bind::<Text, _>(term)
    .bind::<BigInt, _>(threshold)
    .get_result(c)?;
    Ok(found.n >= threshold)
}

/// How many leads a search alone finds, counted from the ids the search
/// yields without visiting a lead: every id names an existing lead (on
/// SQLite, the index as of the wait for it in [`list`], which has applied
/// every delete committed before the search began; PostgreSQL's foreign
/// keys; the NULL `lead_id` of a student's message is not counted).
/// - SQLite reads them from the search indexes alone: for a term in 290,000
///   messages of 240,000 leads, 0.12 s against 0.26 s through `leads`.
/// - PostgreSQL has to read each matching message's row from the heap, but
///   does not look each lead up again. With the default 4 MB of `work_mem`
///   the bitmap of matching messages turns lossy and every row of 20,000
///   pages is tested again; 16 MB keeps it exact. Together: 3.45 s through
///   `leads`, 1.27 s so, at 1 M leads (BENCHMARKS.md, seventh pass). The
///   rows are read from `message_search`, which holds only each message's
///   id, lead and text: 262 ms against 558 ms from `messages` for a word
///   in 292,000 messages (nineteenth pass).
///
/// `conditions` (from [`LeadFilter::search_count_conditions`]) narrow the
/// ids counted. As the aggregate's `FILTER`, each side's ids are read
/// once, and SQLite tests the ids before it sorts them out (150 ms against
/// 194 ms as a `WHERE` over the union, 1 M leads).
pub(super) fn count_from_search_indexes(
    conn: &mut DbConnection,
    search: &IndexedSearch,
    conditions: &[String],
) -> QueryResult<i64> {
    let only = if conditions.is_empty() {
        String::new()
    } else {
        format!(" FILTER (WHERE {})", conditions.join(" AND "))
    };
    let query = diesel::sql_query(format!(
        "SELECT count(DISTINCT id){only} AS n FROM ({}) AS found",
        search.union_sql(conn)
    ))
    .bind::<Text, _>(&search.term)
    .bind::<Text, _>(&search.term)
    .bind::<Text, _>(&search.term);
    let found: Count = match conn {
        DbConnection::Sqlite(c) => query.get_result(c)?,
        DbConnection::Postgres(c) => c.transaction(|c| {
            diesel::sql_query("SET LOCAL work_mem = '16MB'").execute(c)?;
            query.get_result(c)
        })?,
    };
    Ok(found.n)
}

/// How many matching leads make a search broad: the same share of all leads
/// as [`matches_broadly`] asks of the messages. Walking the leads in sort
/// order then tests about `limit × BROAD_SHARE` of them at most for a page.
pub(super) fn broad_lead_count(all_leads: i64) -> i64 {
    (all_leads / BROAD_SHARE).max(BROAD_MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_counts_through_the_flag_indexes_while_their_sides_are_small() {
        let search = |active, converted| LeadFilter {
            q: Some("course".into()),
            active,
            converted,
            ..LeadFilter::default()
        };
        // 1,000 leads, 900 of them active (100 inactive), 50 converted.
        let totals = Totals {
            leads: 1_000,
            active: 900,
            converted: 50,
            messages: 0,
        };
        let conditions = |filter: LeadFilter| filter.search_count_conditions(totals);
        assert_eq!(conditions(search(None, None)), Some(vec![]));
        assert_eq!(
            conditions(search(Some(true), Some(false))),
            Some(vec![
                "id NOT IN (SELECT id FROM leads WHERE is_active = FALSE)".to_string(),
                "id NOT IN (SELECT id FROM leads WHERE converted_to_student = TRUE)".to_string(),
            ])
        );
        assert_eq!(
            conditions(search(Some(false), Some(true))),
            Some(vec![
                "id IN (SELECT id FROM leads WHERE is_active = FALSE)".to_string(),
                "id IN (SELECT id FROM leads WHERE converted_to_student = TRUE)".to_string(),
            ])
        );
        // One inactive lead more than a tenth: the page counts.
        let over = Totals {
            active: 899,
            ..totals
        };
        assert_eq!(search(Some(true), None).search_count_conditions(over), None);
        assert!(search(None, Some(true))
            .search_count_conditions(over)
            .is_some());
        // More leads on a side than a hash of them may take in PostgreSQL's
        // memory, though under a tenth: the page counts.
        let large = Totals {
            leads: 10_000_000,
            active: 9_400_000,
            ..totals
        };
        assert_eq!(
            search(Some(false), None).search_count_conditions(large),
            None
        );
        assert!(search(None, Some(false))
            .search_count_conditions(large)
            .is_some());
        // Another filter, or no search: the page counts.
        let tagged = LeadFilter {
            tag: Some("vip".into()),
            ..search(None, None)
        };
        assert_eq!(conditions(tagged), None);
        assert_eq!(conditions(LeadFilter::default()), None);
    }

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_pattern("Ada_50%"), "%ada\\_50\\%%");
    }
}
