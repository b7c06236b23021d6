//! The total of a list filtered on statuses, on a source or on a business
//! number alone, from the per-value counts triggers keep (migration
//! `lead_value_counts`) rather than by counting the matching leads. At
//! 1 M leads a common value's count read 400,000–600,000 index entries
//! (PostgreSQL 10–12 ms of a 16–25 ms page; BENCHMARKS.md, twentieth pass).

use diesel::prelude::*;

use crate::db::schema::lead_value_counts;
use crate::db::DbConnection;
use crate::leads::filter::{LeadFilter, Source, Totals};
use crate::leads::pipeline::Vocabulary;
use crate::with_conn;

/// What the counts hold for a filter: the leads of any of `values` of
/// `kind`, or (`rest`) all leads but those with any value of `kind`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Counted<'a> {
    pub kind: &'static str,
    pub values: Vec<&'a str>,
    pub rest: bool,
}

impl LeadFilter {
    /// The counts to read for this filter's total ([`count_from_values`]):
    /// `Some` when it filters on exactly one of statuses, source or
    /// business number, and on nothing else.
    pub(super) fn counted_values(&self) -> Option<Counted<'_>> {
        let rest = LeadFilter {
            statuses: Vec::new(),
            source: None,
            business_number: None,
            ..self.clone()
        };
        if !rest.unfiltered() {
            return None;
        }
        let counted = |kind, values, rest| Some(Counted { kind, values, rest });
        match (&self.statuses[..], &self.source, &self.business_number) {
            ([], None, None) => None,
            (statuses, None, None) => {
                counted("status", statuses.iter().map(|s| s.name()).collect(), false)
            }
            ([], Some(Source::Referral(kind)), None) => counted("source", vec![kind], false),
            // Organic: no source at all, which has no row of its own.
            ([], Some(Source::Organic), None) => counted("source", Vec::new(), true),
            ([], None, Some(number)) => counted("business_number", vec![number], false),
            _ => None,
        }
    }
}

/// A filter's total from the per-value counts ([`LeadFilter::counted_values`]);
/// `totals` gives all leads for the rest of a kind.
pub(super) fn count_from_values(
    conn: &mut DbConnection,
    counted: &Counted<'_>,
    totals: Totals,
) -> QueryResult<i64> {
    let of_kind = lead_value_counts::table
        .filter(lead_value_counts::kind.eq(counted.kind))
        .select(lead_value_counts::leads);
    let counts: Vec<i64> = if counted.rest {
        with_conn!(conn, c => of_kind.load(c))?
    } else {
        let of_values = of_kind.filter(lead_value_counts::value.eq_any(&counted.values));
        with_conn!(conn, c => of_values.load(c))?
    };
    let sum: i64 = counts.iter().sum();
    Ok(if counted.rest {
        totals.leads - sum
    } else {
        sum
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leads::pipeline::Status;

    fn counted(filter: &LeadFilter) -> Option<(&'static str, Vec<&str>, bool)> {
        filter.counted_values().map(|c| (c.kind, c.values, c.rest))
    }

    #[test]
    fn one_kind_of_value_alone_is_counted() {
        let statuses = LeadFilter {
            statuses: vec![Status::New, Status::Lost],
            ..LeadFilter::default()
        };
        assert_eq!(
            counted(&statuses),
            Some(("status", vec!["new", "lost"], false))
        );
        let ad = LeadFilter {
            source: Some(Source::Referral("ad".into())),
            ..LeadFilter::default()
        };
        assert_eq!(counted(&ad), Some(("source", vec!["ad"], false)));
        let organic = LeadFilter {
            source: Some(Source::Organic),
            ..LeadFilter::default()
        };
        assert_eq!(counted(&organic), Some(("source", vec![], true)));
        let number = LeadFilter {
            business_number: Some("1065".into()),
            ..LeadFilter::default()
        };
        assert_eq!(
            counted(&number),
            Some(("business_number", vec!["1065"], false))
        );
    }

    #[test]
    fn anything_beside_the_value_is_counted_by_the_page() {
        assert_eq!(counted(&LeadFilter::default()), None);
        let base = LeadFilter {
            business_number: Some("1065".into()),
            ..LeadFilter::default()
        };
        let beside = [
            LeadFilter {
                statuses: vec![Status::New],
                ..base.clone()
            },
            LeadFilter {
                source: Some(Source::Organic),
                ..base.clone()
            },
            LeadFilter {
                active: Some(true),
                ..base.clone()
            },
            LeadFilter {
                converted: Some(false),
                ..base.clone()
            },
            LeadFilter {
                q: Some("hola".into()),
                ..base.clone()
            },
            LeadFilter {
                tag: Some("vip".into()),
                ..base.clone()
            },
            LeadFilter {
                source_id: Some("ad-1".into()),
                ..base.clone()
            },
        ];
        for filter in beside {
            assert_eq!(counted(&filter), None, "{filter:?}");
        }
    }
}
