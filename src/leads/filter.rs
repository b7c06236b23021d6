//! The lead list: filters, sort orders, keyset cursors and the query that
//! reads one page.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Text};

use crate::db::schema::{lead_counters, lead_notes, lead_tags, leads, messages};
use crate::db::{search_index, DbConnection};
use crate::leads::day_counts::{self, ByDay, Landing};
use crate::leads::pipeline::{Priority, Status, Vocabulary};
use crate::leads::search::{
    broad_lead_count, count_from_search_indexes, like_pattern, matches_broadly, Search,
};
use crate::leads::value_counts::count_from_values;
use crate::leads::Lead;
use crate::with_conn;

diesel::define_sql_function! {
    /// SQL `lower()`: both backends have it; PostgreSQL's `LIKE` is case-sensitive.
    fn lower(x: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>;
}

/// Filters of the lead list, already validated by the HTTP layer. Empty
/// lists and `None` mean "any".
#[derive(Debug, Default, Clone)]
pub struct LeadFilter {
    pub converted: Option<bool>,
    pub active: Option<bool>,
    /// Free text: phone, BSUID, username, name, message text or note text.
    pub q: Option<String>,
    /// Any of these statuses.
    pub statuses: Vec<Status>,
    /// Any of these priorities.
    pub priorities: Vec<Priority>,
    /// Leads carrying this (normalised) tag.
    pub tag: Option<String>,
    pub assigned_to: Option<String>,
    /// `true`: assigned to anyone; `false`: unassigned.
    pub assigned: Option<bool>,
    /// `created_at` in `[after, before)`.
    pub created_after: Option<NaiveDateTime>,
    pub created_before: Option<NaiveDateTime>,
    /// `last_message_time` in `[after, before)`.
    pub last_activity_after: Option<NaiveDateTime>,
    pub last_activity_before: Option<NaiveDateTime>,
    /// `true`: a follow-up is set and its time has come (by `now`);
    /// `false`: no follow-up is due (none set, or set in the future).
    pub follow_up_due: Option<bool>,
    /// Attribution: the referral's source type (`ad`, `post`, …), or
    /// [`Source::Organic`] for leads that came without one.
    pub source: Option<Source>,
    /// The referral's ad or post id.
    pub source_id: Option<String>,
    /// The business number (WhatsApp phone-number id) the lead first wrote to.
    pub business_number: Option<String>,
}

/// The attribution a list can filter on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// No referral: the person wrote on their own.
    Organic,
    /// A referral of this source type.
    Referral(String),
}

impl LeadFilter {
    /// Whether the running totals answer the list's total: no filter, or a
    /// single `active`/`converted` one.
    pub(super) fn counted_by_counters(&self) -> bool {
        let LeadFilter {
            converted,
            active,
            q,
            statuses,
            priorities,
            tag,
            assigned_to,
            assigned,
            created_after,
            created_before,
            last_activity_after,
            last_activity_before,
            follow_up_due,
            source,
            source_id,
            business_number,
        } = self;
        q.is_none()
            && !(active.is_some() && converted.is_some())
            && statuses.is_empty()
            && priorities.is_empty()
            && tag.is_none()
            && assigned_to.is_none()
            && assigned.is_none()
            && created_after.is_none()
            && created_before.is_none()
            && last_activity_after.is_none()
            && last_activity_before.is_none()
            && follow_up_due.is_none()
            && source.is_none()
            && source_id.is_none()
            && business_number.is_none()
    }

    /// Whether the list is the whole list: no filter at all.
    pub(super) fn unfiltered(&self) -> bool {
        self.active.is_none() && self.converted.is_none() && self.counted_by_counters()
    }
}

/// Order of the lead list; always descending, id breaking ties. Each has an
/// index on `(key DESC, id DESC)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Newest `last_message_time` first.
    #[default]
    LastActivity,
    Created,
    MessageCount,
    /// Highest deal value first (amounts compared regardless of currency);
    /// leads without a value last.
    Value,
    Score,
}

impl Vocabulary for Sort {
    const ALL: &'static [Sort] = &[
        Sort::LastActivity,
        Sort::Created,
        Sort::MessageCount,
        Sort::Value,
        Sort::Score,
    ];

    fn name(self) -> &'static str {
        match self {
            Sort::LastActivity => "last_activity",
            Sort::Created => "created",
            Sort::MessageCount => "message_count",
            Sort::Value => "value",
            Sort::Score => "score",
        }
    }
}

/// The sort key of the last row of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Time(NaiveDateTime),
    Number(i64),
    /// A lead without a value (sorted after every lead with one).
    NoValue,
}

/// Position in the lead list: the sort it belongs to and the last row of the
/// previous page. Unlike `skip`, it costs the same on page 1 and page
/// 20,000, and rows moving ahead of it (new leads, new activity) are never
/// shown twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub sort: Sort,
    pub key: Key,
    pub id: i64,
}

impl Cursor {
    fn after(sort: Sort, lead: &Lead) -> Cursor {
        let key = match sort {
            Sort::LastActivity => Key::Time(lead.last_message_time),
            Sort::Created => Key::Time(lead.created_at),
            Sort::MessageCount => Key::Number(lead.message_count),
            Sort::Score => Key::Number(lead.score),
            Sort::Value => lead.value_minor.map_or(Key::NoValue, Key::Number),
        };
        Cursor {
            sort,
            key,
            id: lead.id,
        }
    }

    /// `<sort>.<key>.<id>`, times in microseconds since the epoch: opaque to
    /// clients.
    pub fn encode(&self) -> String {
        let key = match self.key {
            Key::Time(t) => t.and_utc().timestamp_micros().to_string(),
            Key::Number(n) => n.to_string(),
            Key::NoValue => "none".to_string(),
        };
        format!("{}.{key}.{}", self.sort.name(), self.id)
    }

    pub fn decode(text: &str) -> Option<Cursor> {
        let mut parts = text.split('.');
        let (sort, key, id) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let sort = Sort::parse(sort)?;
        let key = match sort {
            Sort::LastActivity | Sort::Created => {
                Key::Time(chrono::DateTime::from_timestamp_micros(key.parse().ok()?)?.naive_utc())
            }
            Sort::Value if key == "none" => Key::NoValue,
            Sort::MessageCount | Sort::Score | Sort::Value => Key::Number(key.parse().ok()?),
        };
        let id = id.parse().ok().filter(|id| *id > 0)?;
        Some(Cursor { sort, key, id })
    }
}

/// Whether SQLite should find a filtered page by walking the sort's index
/// and testing each lead, rather than through a filter's own index. Through
/// the filter's index it collects and sorts every matching lead; walking,
/// it tests about `wanted × all / matching` leads. Walking wins when that is
/// fewer than the matching leads (1 M leads, `source=ad` on 250,000 of
/// them: 214 ms through the index, 5 ms walking), and loses badly for a
/// rare value (a business number on no lead: 3.7 s walking). SQLite does
/// not weigh the page's `LIMIT` this way itself; `None` (PostgreSQL, or no
/// count) keeps the planner's choice. The same holds for `active=false` and
/// `converted=true`, whose partial indexes (migration `flag_indexes`) SQLite
/// picks once it knows the bound value: 30,000 inactive leads of 1 M, 45 ms
/// through the index and 6 ms walking. Their count comes from the running
/// totals.
fn walk_filters(all_leads: Option<i64>, matching: Option<i64>, wanted: i64) -> bool {
    match (all_leads, matching) {
        (Some(all), Some(matching)) if matching > 0 => {
            // Compared as wanted × all < matching², without overflow.
            (wanted as i128) * (all as i128) < (matching as i128) * (matching as i128)
        }
        _ => false,
    }
}

/// The value sort's key, highest first and leads without a value last
/// (`shown`), or the reverse. PostgreSQL puts NULLs first in a descending
/// order and SQLite last, so the order is written out with `NULLS LAST`,
/// which both read (diesel offers it for PostgreSQL alone). Both serve it
/// from `leads_value_keyset_idx`, where sorting on `value_minor IS NULL`
/// first had each sort every lead: 1 M leads, the first page 0.3–0.5 s on
/// PostgreSQL and 1.7 s on SQLite.
fn value_key(shown: bool) -> diesel::expression::SqlLiteral<Nullable<diesel::sql_types::BigInt>> {
    diesel::dsl::sql(if shown {
        "leads.value_minor DESC NULLS LAST"
    } else {
        "leads.value_minor ASC NULLS FIRST"
    })
}

/// A page at an offset, read from the end of the list: the rows to step
/// over from there, and how many to take. From the end a page in the back
/// half steps over fewer rows, and an offset costs a step per row (1 M
/// leads, PostgreSQL: 54 ms for `skip=900000` from the front). The list's
/// last page, which an admin table links to, is then as quick as its first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FromEnd {
    skip: i64,
    take: i64,
}

impl FromEnd {
    /// `Some` when a page at `skip` of a list of `total` is nearer its end
    /// (`take` 0 when it is past the end); `None` to read from the front,
    /// also when the total is unknown.
    fn nearer(skip: i64, limit: i64, total: Option<i64>) -> Option<FromEnd> {
        let total = total?;
        let take = limit.min(total - skip).max(0);
        let behind = (total - skip - take).max(0);
        (skip > 0 && behind < skip).then_some(FromEnd { skip: behind, take })
    }
}

/// One page of the lead list.
#[derive(Debug)]
pub struct LeadPage {
    pub items: Vec<Lead>,
    /// How many leads match in all; `None` when the window did not ask.
    pub total: Option<i64>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

/// Which rows of the filtered, sorted list a caller wants.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub skip: i64,
    pub limit: i64,
    /// Whether to count every matching lead. The list shows the count; an
    /// export reading chunk after chunk does not need it, and for a filter
    /// the running totals cannot answer, counting costs a scan per chunk.
    pub with_total: bool,
}

/// A page of leads in `sort` order (from `window.skip`, or after `cursor`,
/// which the caller has checked belongs to `sort`), and how many match in
/// all when asked. `now` decides which follow-ups are due.
pub fn list(
    conn: &mut DbConnection,
    filter: &LeadFilter,
    sort: Sort,
    cursor: Option<Cursor>,
    window: Window,
    now: NaiveDateTime,
) -> QueryResult<LeadPage> {
    let Window {
        skip,
        limit,
        with_total,
    } = window;
    // The count needs every matching lead, which the search indexes find
    // fastest. A page needs only the first `limit` in sort order: for a term
    // in a large share of the messages, testing leads one by one in that
    // order finds them after a few hundred, where collecting the matches
    // first would visit hundreds of thousands (SQLite, 1 M leads: 0.9 s for
    // one page of a word in 6 % of the messages; PostgreSQL: 0.25 s for a
    // name in 3 % of the leads, 9 ms walking). A term is broad when SQLite's
    // capped probe of the message index says so (answered before any count,
    // so it serves exports too), or when the count finds it in a large share
    // of the leads (both databases).
    let search = filter.q.as_deref().map(|q| Search::for_backend(conn, q));
    if let (Some(Search::Indexed(_)), DbConnection::Sqlite(c)) = (&search, &mut *conn) {
        // SQLite's message and lead indexes are kept beside the writer: find
        // what was committed before this request, as a search always has.
        search_index::wait_until_current(c, search_index::CATCH_UP_WAIT)?;
    }
    let scan = filter.q.as_deref().map(|q| Search::Scan(like_pattern(q)));
    // The running totals, read once for what needs them: all messages for
    // SQLite's probe of a term; the total itself, or all leads when the page
    // counts its matches itself, which decides whether a search
    // (`broad_count`) or, on SQLite, a filter (`walk_filters`) is broad; and
    // the leads an `active` or `converted` filter matches, for the same
    // decision, also when no total is asked for (an export's chunks); the
    // same for a filter on one kind of value, whose count comes from the
    // per-value counts.
    let probes = matches!(
        (&search, &*conn),
        (Some(Search::Indexed(_)), DbConnection::Sqlite(_))
    );
    let flags = filter.active.is_some() || filter.converted.is_some();
    let values = filter.counted_values();
    let totals = if probes || with_total || flags || values.is_some() {
        Some(counters(conn)?)
    } else {
        None
    };
    // The list's total as the triggers keep it, when they keep it: the
    // running totals, or the per-value counts (never both).
    let kept_total = match (totals, &values) {
        (Some(t), _) if filter.counted_by_counters() => Some(t.of(filter)),
        (Some(t), Some(values)) => Some(count_from_values(conn, values, t)?),
        _ => None,
    };
    let probed_broad = match (&search, totals) {
        (Some(Search::Indexed(s)), Some(t)) if probes => {
            matches_broadly(conn, &s.term, t.messages)?
        }
        _ => false,
    };
    // A page at an offset into the list in activity order, unfiltered or on
    // one kind of value, or by creation, unfiltered, starts at the day its
    // offset lands in (`day_counts`), when that steps over fewer leads than
    // reading from the nearer end.
    let by_day = match (sort, &values) {
        _ if cursor.is_some() || skip == 0 => None,
        (Sort::LastActivity, Some(values)) => Some(ByDay::Activity(Some(values))),
        (Sort::LastActivity, None) if filter.unfiltered() => Some(ByDay::Activity(None)),
        (Sort::Created, None) if filter.unfiltered() => Some(ByDay::Created),
        _ => None,
    };
    let landing = match by_day {
        Some(by_day) => day_counts::landing(conn, by_day, skip)?,
        None => None,
    };
    let all_leads = totals.map(|t| t.leads);
    let broad_count = match &search {
        Some(Search::Indexed(_)) if !probed_broad => all_leads.map(broad_lead_count),
        _ => None,
    };
    // SQLite only: PostgreSQL's planner weighs the page's LIMIT itself.
    let walk_all_leads = match conn {
        DbConnection::Sqlite(_) => all_leads,
        DbConnection::Postgres(_) => None,
    };
    let total = if !with_total {
        None
    } else if kept_total.is_some() {
        kept_total
    } else {
        match (
            &search,
            totals.and_then(|t| filter.search_count_conditions(t)),
        ) {
            (Some(Search::Indexed(s)), Some(conditions)) => {
                Some(count_from_search_indexes(conn, s, &conditions)?)
            }
            _ => None,
        }
    };
    let (items, counted) = with_conn!(conn, c => 'page: {
        // Built twice (count and page): a boxed query cannot be cloned.
        // `walk`: test leads one by one in sort order (a broad search);
        // `unindexed`: keep SQLite's planner off the filters' own indexes,
        // so that it walks the sort's index too (see `walk_filters`).
        let build = |walk: bool, unindexed: bool| {
            let search = if walk { scan.as_ref() } else { search.as_ref() };
            // `+column` is an expression to SQLite, which no index serves.
            let column = |name: &str| {
                let prefix = if unindexed { "+" } else { "" };
                format!("{prefix}leads.{name}")
            };
            let mut query = leads::table.into_boxed();
            if let Some(converted) = filter.converted {
                query = query.filter(
                    diesel::dsl::sql::<Bool>(&column("converted_to_student")).eq(converted),
                );
            }
            if let Some(active) = filter.active {
                query = query.filter(diesel::dsl::sql::<Bool>(&column("is_active")).eq(active));
            }
            if !filter.statuses.is_empty() {
                query = query.filter(
                    diesel::dsl::sql::<Text>(&column("status"))
                        .eq_any(filter.statuses.iter().map(|s| s.name())),
                );
            }
            if !filter.priorities.is_empty() {
                query = query.filter(leads::priority.eq_any(filter.priorities.iter().map(|p| p.name())));
            }
            if let Some(tag) = &filter.tag {
                query = query.filter(leads::id.eq_any(
                    lead_tags::table.filter(lead_tags::tag.eq(tag.clone())).select(lead_tags::lead_id),
                ));
            }
            if let Some(assignee) = &filter.assigned_to {
                query = query.filter(leads::assigned_to.eq(assignee.clone()));
            }
            match filter.assigned {
                Some(true) => query = query.filter(leads::assigned_to.is_not_null()),
                Some(false) => query = query.filter(leads::assigned_to.is_null()),
                None => {}
            }
            if let Some(t) = filter.created_after {
                query = query.filter(leads::created_at.ge(t));
            }
            if let Some(t) = filter.created_before {
                query = query.filter(leads::created_at.lt(t));
            }
            if let Some(t) = filter.last_activity_after {
                query = query.filter(leads::last_message_time.ge(t));
            }
            if let Some(t) = filter.last_activity_before {
                query = query.filter(leads::last_message_time.lt(t));
            }
            match &filter.source {
                Some(Source::Organic) => query = query.filter(leads::source_type.is_null()),
                Some(Source::Referral(kind)) => {
                    query = query.filter(
                        diesel::dsl::sql::<Nullable<Text>>(&column("source_type")).eq(kind.clone()),
                    )
                }
                None => {}
            }
            if let Some(id) = &filter.source_id {
                query = query.filter(leads::source_id.eq(id.clone()));
            }
            if let Some(number) = &filter.business_number {
                query = query.filter(
                    diesel::dsl::sql::<Nullable<Text>>(&column("business_phone_number_id"))
                        .eq(number.clone()),
                );
            }
            match filter.follow_up_due {
                Some(true) => query = query.filter(leads::next_follow_up_at.le(now)),
                Some(false) => {
                    query = query.filter(
                        leads::next_follow_up_at.is_null().or(leads::next_follow_up_at.gt(now)),
                    )
                }
                None => {}
            }
            match search {
                Some(Search::Indexed(s)) => {
                    query = query.filter(
                        diesel::dsl::sql::<Bool>("leads.id IN (")
                            .sql(s.union[0])
                            .bind::<Text, _>(s.term.clone())
                            .sql(s.union[1])
                            .bind::<Text, _>(s.term.clone())
                            .sql(s.union[2])
                            .bind::<Text, _>(s.term.clone())
                            .sql(s.union[3])
                            .sql(")"),
                    );
                }
                Some(Search::Scan(p)) => {
                    // `OFFSET 0` keeps each look-up per lead. Without it,
                    // PostgreSQL may answer the EXISTS from a hash of every
                    // matching message, chosen for the whole list though the
                    // page stops after a few hundred leads (1 M leads, a word
                    // in 145,710 messages: 463 ms for the page, 9 ms so).
                    let in_messages = messages::table
                        .filter(messages::lead_id.eq(leads::id.nullable()))
                        .filter(lower(messages::body.nullable()).like(p).escape('\\'))
                        .offset(0);
                    let in_notes = lead_notes::table
                        .filter(lead_notes::lead_id.eq(leads::id))
                        .filter(lower(lead_notes::body.nullable()).like(p).escape('\\'))
                        .offset(0);
                    query = query.filter(
                        lower(leads::phone_number).like(p).escape('\\')
                            .or(lower(leads::user_id).like(p).escape('\\'))
                            .or(lower(leads::username).like(p).escape('\\'))
                            .or(lower(leads::sender_name).like(p).escape('\\'))
                            .or(diesel::dsl::exists(in_messages))
                            .or(diesel::dsl::exists(in_notes)),
                    );
                }
                None => {}
            }
            query
        };
        let counted: Option<i64> = match total {
            None if with_total => Some(build(false, false).count().get_result(c)?),
            _ => None,
        };
        let broad = probed_broad
            || broad_count.is_some_and(|at_least| counted.or(total).is_some_and(|n| n >= at_least));
        let from_end = FromEnd::nearer(skip, limit, counted.or(total));
        if from_end.is_some_and(|f| f.take == 0) {
            break 'page QueryResult::Ok((Vec::new(), counted));
        }
        let landing = landing.filter(|l| l.skip < from_end.map_or(skip, |f| f.skip));
        let wanted = match (landing, from_end) {
            (Some(l), _) => l.skip + limit,
            (None, Some(f)) => f.skip + f.take,
            (None, None) => skip + limit,
        };
        let unindexed = walk_filters(walk_all_leads, counted.or(kept_total), wanted);
        // (A macro: a closure over the boxed query cannot name its lifetime.)
        // `$down` orders the list as shown (`desc`, `$shown` true); `asc`
        // and false read the list from its end.
        macro_rules! ordered {
            ($page:expr) => {
                ordered!($page, desc, true)
            };
            ($page:expr, $down:ident, $shown:expr) => {
                match sort {
                    Sort::LastActivity => {
                        $page.order((leads::last_message_time.$down(), leads::id.$down()))
                    }
                    Sort::Created => $page.order((leads::created_at.$down(), leads::id.$down())),
                    Sort::MessageCount => {
                        $page.order((leads::message_count.$down(), leads::id.$down()))
                    }
                    Sort::Score => $page.order((leads::score.$down(), leads::id.$down())),
                    Sort::Value => $page.order((value_key($shown), leads::id.$down())),
                }
            };
        }
        let Some(at) = cursor else {
            let items: Vec<Lead> = if skip == 0 {
                ordered!(build(broad, unindexed))
                    .limit(limit)
                    .select(Lead::as_select())
                    .load(c)?
            } else {
                // The page's ids first, then their rows: PostgreSQL reads
                // the skipped leads' ids from the sort index alone, where
                // an offset over whole rows fetched each skipped row from
                // the table (1 M leads, skip=900000: 2.5 s, 54 ms so).
                let page = build(broad, unindexed);
                let ids = match (landing, from_end) {
                    (Some(Landing { before, skip }), _) => {
                        let page = match sort {
                            Sort::Created => page.filter(leads::created_at.lt(before)),
                            _ => page.filter(leads::last_message_time.lt(before)),
                        };
                        ordered!(page).offset(skip).limit(limit)
                    }
                    (None, Some(FromEnd { skip, take })) => {
                        ordered!(page, asc, false).offset(skip).limit(take)
                    }
                    (None, None) => ordered!(page).offset(skip).limit(limit),
                }
                .select(leads::id);
                ordered!(leads::table.into_boxed().filter(leads::id.eq_any(ids)))
                    .select(Lead::as_select())
                    .load(c)?
            };
            // (Not `return`: this block is inside `list`, not a closure.)
            break 'page QueryResult::Ok((items, counted));
        };
        // Callers pass `skip` 0 with a cursor (the API answers 400 to both).
        // A page after a cursor is read in index seeks: the leads that tie
        // with the cursor's key (at lower ids), then those past the key.
        // One query with `key < k OR (key = k AND id < i)` seeks on the key
        // alone and steps over every tie ahead of the cursor: 47 ms at 1 M
        // leads sharing one score, where the two seeks take about 1 ms.
        macro_rules! ties_and_past {
            ($column:expr, $key:expr) => {
                (
                    build(broad, unindexed).filter($column.eq($key)),
                    vec![build(broad, unindexed).filter($column.lt($key))],
                )
            };
        }
        let (ties, past) = match (sort, at.key) {
            (Sort::LastActivity, Key::Time(t)) => ties_and_past!(leads::last_message_time, t),
            (Sort::Created, Key::Time(t)) => ties_and_past!(leads::created_at, t),
            (Sort::MessageCount, Key::Number(n)) => ties_and_past!(leads::message_count, n),
            (Sort::Score, Key::Number(n)) => ties_and_past!(leads::score, n),
            // Leads without a value come after every value: a seek of their
            // own, as `value < n OR value IS NULL` is no range of the index
            // to PostgreSQL, which stepped over every lead with a higher
            // value (333,000 of 1 M leads with a value: 385 ms, 0.1 ms so).
            (Sort::Value, Key::Number(n)) => {
                let (ties, mut past) = ties_and_past!(leads::value_minor, n);
                past.push(build(broad, unindexed).filter(leads::value_minor.is_null()));
                (ties, past)
            }
            (Sort::Value, Key::NoValue) => {
                (build(broad, unindexed).filter(leads::value_minor.is_null()), Vec::new())
            }
            // `Cursor::decode` pairs every sort with its kind of key.
            _ => {
                return Err(diesel::result::Error::QueryBuilderError(
                    "cursor key does not fit its sort".into(),
                ))
            }
        };
        let mut items: Vec<Lead> = ordered!(ties.filter(leads::id.lt(at.id)))
            .limit(limit)
            .select(Lead::as_select())
            .load(c)?;
        for past in past {
            let missing = limit - items.len() as i64;
            if missing == 0 {
                break;
            }
            items.extend(
                ordered!(past)
                    .limit(missing)
                    .select(Lead::as_select())
                    .load::<Lead>(c)?,
            );
        }
        QueryResult::Ok((items, counted))
    })?;
    let next = if items.len() as i64 == limit {
        items.last().map(|lead| Cursor::after(sort, lead))
    } else {
        None
    };
    Ok(LeadPage {
        total: counted.or(total),
        items,
        next,
    })
}

/// The running totals that triggers keep (see the `lead_counters`
/// migration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub leads: i64,
    pub active: i64,
    pub converted: i64,
    pub messages: i64,
}

impl Totals {
    /// The total of a filter the running totals answer
    /// ([`LeadFilter::counted_by_counters`]).
    fn of(&self, filter: &LeadFilter) -> i64 {
        match (filter.active, filter.converted) {
            (Some(true), _) => self.active,
            (Some(false), _) => self.leads - self.active,
            (_, Some(true)) => self.converted,
            (_, Some(false)) => self.leads - self.converted,
            (None, None) => self.leads,
        }
    }
}

/// Reads the running totals.
pub fn counters(conn: &mut DbConnection) -> QueryResult<Totals> {
    let (leads, active, converted, messages) = with_conn!(conn, c => lead_counters::table
        .find(1)
        .select((
            lead_counters::leads,
            lead_counters::active,
            lead_counters::converted,
            lead_counters::messages,
        ))
        .first(c))?;
    Ok(Totals {
        leads,
        active,
        converted,
        messages,
    })
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;

    use super::*;
    use crate::leads::search::Count;

    #[test]
    fn a_page_walks_the_sort_index_when_matches_are_dense_enough() {
        let walks = |all, matching, wanted| walk_filters(Some(all), Some(matching), wanted);
        // 1 M leads, 250,000 match: 50 wanted means testing about 200.
        assert!(walks(1_000_000, 250_000, 50));
        // Deep: 100,050 wanted means testing about 400,000.
        assert!(!walks(1_000_000, 250_000, 100_050));
        // Rare or absent values keep their index.
        assert!(!walks(1_000_000, 100, 50));
        assert!(!walks(1_000_000, 0, 50));
        // No count, or PostgreSQL: the planner decides.
        assert!(!walk_filters(None, Some(250_000), 50));
        assert!(!walk_filters(Some(1_000_000), None, 50));
        assert!(walks(i64::MAX, i64::MAX, i64::MAX - 1));
    }

    #[test]
    fn a_page_in_the_back_half_is_read_from_the_end() {
        let from_end = |skip, limit, total| FromEnd::nearer(skip, limit, Some(total));
        // 10 leads, rows 0..9: rows 6..8 are 1 row from the end.
        assert_eq!(from_end(6, 3, 10), Some(FromEnd { skip: 1, take: 3 }));
        // The last, partial page: rows 8 and 9.
        assert_eq!(from_end(8, 3, 10), Some(FromEnd { skip: 0, take: 2 }));
        // Past the end: nothing to read.
        assert_eq!(from_end(10, 3, 10), Some(FromEnd { skip: 0, take: 0 }));
        assert_eq!(from_end(25, 3, 10), Some(FromEnd { skip: 0, take: 0 }));
        // The front half, the first page, and an unknown total: from the front.
        assert_eq!(from_end(3, 3, 10), None);
        assert_eq!(from_end(0, 50, 10), None);
        assert_eq!(FromEnd::nearer(900, 50, None), None);
        // 1 M leads, skip=900000: 99,950 rows from the end.
        assert_eq!(
            from_end(900_000, 50, 1_000_000),
            Some(FromEnd {
                skip: 99_950,
                take: 50
            })
        );
    }

    /// 500 leads with 10 messages each; every even lead wrote about a course
    /// in each message (2,500 messages: a broad term), lead 7 once about a
    /// syllabus. Lead `i` was last active `i` minutes after midnight.
    fn leads_with_messages(conn: &mut DbConnection) {
        execute(
            conn,
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
             INSERT INTO leads (id, phone_number, first_message, first_message_time, last_message,
                                last_message_time, message_count, created_at, updated_at)
             SELECT i, '1555' || i, 'hi', '2026-01-01 00:00:00', 'hi',
                    datetime('2026-01-01 00:00:00', '+' || i || ' minutes'), 10,
                    '2026-01-01 00:00:00', '2026-01-01 00:00:00' FROM n;
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 4999)
             INSERT INTO messages (wamid, lead_id, message_type, body, wa_timestamp, received_at)
             SELECT 'wamid.' || i, i / 10 + 1, 'text',
                    CASE WHEN (i / 10 + 1) % 2 = 0 THEN 'Which Course is this?'
                         WHEN i = 65 THEN 'the syllabus please' ELSE 'hello there' END,
                    '2026-01-01 00:00:00', '2026-01-01 00:00:00' FROM n;",
        );
    }

    fn execute(conn: &mut DbConnection, sql: &str) {
        let DbConnection::Sqlite(c) = conn else {
            unreachable!("the unit-test database is SQLite")
        };
        c.batch_execute(sql).expect("statements run");
    }

    #[test]
    fn a_broad_term_pages_by_testing_leads_in_order_with_the_same_result() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let pool = crate::db::test_pool(&dir);
        let conn: &mut DbConnection = &mut pool.get().expect("a connection");
        leads_with_messages(conn);
        crate::db::test_search_catch_up(&dir);
        let messages = counters(conn).expect("the running totals").messages;
        assert!(matches_broadly(conn, "\"course\"", messages).expect("probed"));
        assert!(!matches_broadly(conn, "\"syllabus\"", messages).expect("probed"));

        let filter = LeadFilter {
            q: Some("COURSE".into()),
            ..LeadFilter::default()
        };
        let window = Window {
            skip: 0,
            limit: 20,
            with_total: true,
        };
        let now = NaiveDateTime::default();
        let first = list(conn, &filter, Sort::LastActivity, None, window, now).expect("a page");
        let ids: Vec<i64> = first.items.iter().map(|l| l.id).collect();
        assert_eq!(ids, (461..=500).rev().step_by(2).collect::<Vec<i64>>());
        assert_eq!(first.total, Some(250), "the count still takes every match");
        let second =
            list(conn, &filter, Sort::LastActivity, first.next, window, now).expect("a page");
        let ids: Vec<i64> = second.items.iter().map(|l| l.id).collect();
        assert_eq!(ids, (421..=460).rev().step_by(2).collect::<Vec<i64>>());

        let rare = LeadFilter {
            q: Some("syllabus".into()),
            ..LeadFilter::default()
        };
        let page = list(conn, &rare, Sort::LastActivity, None, window, now).expect("a page");
        assert_eq!(page.items.iter().map(|l| l.id).collect::<Vec<_>>(), [7]);
        assert_eq!(page.total, Some(1));
    }

    #[test]
    fn search_rows_follow_their_message_to_its_lead() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let pool = crate::db::test_pool(&dir);
        let conn: &mut DbConnection = &mut pool.get().expect("a connection");
        leads_with_messages(conn);
        let window = Window {
            skip: 0,
            limit: 50,
            with_total: true,
        };
        let found = |conn: &mut DbConnection, q: &str| {
            crate::db::test_search_catch_up(&dir);
            let filter = LeadFilter {
                q: Some(q.into()),
                ..LeadFilter::default()
            };
            let page = list(
                conn,
                &filter,
                Sort::LastActivity,
                None,
                window,
                NaiveDateTime::default(),
            )
            .expect("a page");
            let ids: Vec<i64> = page.items.iter().map(|l| l.id).collect();
            assert_eq!(page.total, Some(ids.len() as i64), "q={q}: {ids:?}");
            ids
        };
        let search_rows = |conn: &mut DbConnection| -> i64 {
            crate::db::test_search_catch_up(&dir);
            let DbConnection::Sqlite(c) = conn else {
                unreachable!("the unit-test database is SQLite")
            };
            diesel::sql_query("SELECT count(*) AS n FROM messages_search")
                .get_result::<Count>(c)
                .expect("counted")
                .n
        };
        assert_eq!(found(conn, "syllabus"), [7]);
        assert_eq!(search_rows(conn), 5_000);

        // A merge moves the messages; a student's message has no lead.
        execute(
            conn,
            "UPDATE messages SET lead_id = 9 WHERE lead_id = 7;
             UPDATE leads SET sender_name = 'Syllabus Sam' WHERE id = 9;
             INSERT INTO messages (wamid, lead_id, message_type, body, wa_timestamp, received_at)
             VALUES ('wamid.student', NULL, 'text', 'a zebra crossing',
                     '2026-01-01 00:00:00', '2026-01-01 00:00:00');",
        );
        // In its name and in a message: one lead, counted once.
        assert_eq!(found(conn, "syllabus"), [9]);
        assert_eq!(found(conn, "zebra"), Vec::<i64>::new());
        assert_eq!(search_rows(conn), 5_000);

        execute(
            conn,
            "UPDATE messages SET lead_id = 3 WHERE wamid = 'wamid.student';
             UPDATE messages SET body = 'the reading list' WHERE wamid = 'wamid.65';",
        );
        assert_eq!(found(conn, "zebra"), [3]);
        assert_eq!(found(conn, "syllabus"), [9], "by name alone now");
        assert_eq!(found(conn, "reading list"), [9]);

        execute(conn, "DELETE FROM messages WHERE lead_id = 9;");
        assert_eq!(found(conn, "reading list"), Vec::<i64>::new());
        assert_eq!(search_rows(conn), 5_000 + 1 - 20);
    }

    #[test]
    fn cursors_round_trip_and_carry_their_sort() {
        let t = chrono::DateTime::from_timestamp_micros(1_763_000_000_123_456)
            .unwrap()
            .naive_utc();
        for cursor in [
            Cursor {
                sort: Sort::LastActivity,
                key: Key::Time(t),
                id: 7,
            },
            Cursor {
                sort: Sort::Created,
                key: Key::Time(t),
                id: 7,
            },
            Cursor {
                sort: Sort::MessageCount,
                key: Key::Number(3),
                id: 7,
            },
            Cursor {
                sort: Sort::Value,
                key: Key::NoValue,
                id: 7,
            },
            Cursor {
                sort: Sort::Value,
                key: Key::Number(0),
                id: 7,
            },
            Cursor {
                sort: Sort::Score,
                key: Key::Number(-2),
                id: 7,
            },
        ] {
            assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        }
        assert_eq!(
            Cursor::decode("created.1763000000123456.7").map(|c| c.sort),
            Some(Sort::Created)
        );
        for bad in [
            "",
            "1_1",
            "created.x.7",
            "score.none.7",
            "value.1.0",
            "size.1.1",
            "score.1.1.1",
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }
}
