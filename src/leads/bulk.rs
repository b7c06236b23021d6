//! One edit applied to many leads in one transaction, answered per lead.
//!
//! The whole call is one job of the single writer, so it commits at once or
//! not at all. Within it, each lead either takes the entire edit or is left
//! untouched: a lead that does not exist is reported `not_found`, one whose
//! rules refuse the edit (e.g. a status change of a converted lead) is
//! reported `rejected` with the reason, and the others are updated.

use chrono::NaiveDateTime;
use serde::Serialize;
use serde_json::Value;

use crate::db::DbConnection;
use crate::error::AppError;
use crate::leads::change::{self, LeadChange, Origin, Outcome};

pub const MAX_IDS: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Updated,
    /// The lead already had every requested value.
    Unchanged,
    NotFound,
    Rejected,
}

#[derive(Debug, Serialize)]
pub struct LeadResult {
    pub id: i64,
    pub result: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct BulkReport {
    pub updated: usize,
    pub unchanged: usize,
    pub not_found: usize,
    pub rejected: usize,
    /// One entry per distinct id, in the order sent.
    pub results: Vec<LeadResult>,
}

/// The `ids` of a bulk request: 1 to 500 positive whole numbers; repeats
/// count once.
pub fn ids(value: Option<&Value>) -> Result<Vec<i64>, AppError> {
    let shape = || {
        AppError::Unprocessable(format!(
            "ids must be an array of 1 to {MAX_IDS} lead ids (positive whole numbers)"
        ))
    };
    let items = value.and_then(Value::as_array).ok_or_else(shape)?;
    if items.is_empty() || items.len() > MAX_IDS {
        return Err(shape());
    }
    let mut ids = Vec::with_capacity(items.len());
    for item in items {
        let id = item.as_i64().filter(|id| *id > 0).ok_or_else(|| {
            AppError::Unprocessable(format!(
                "ids must hold positive whole numbers, got {item} in it"
            ))
        })?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

pub fn apply(
    conn: &mut DbConnection,
    ids: &[i64],
    change: &LeadChange,
    actor: Option<String>,
    at: NaiveDateTime,
) -> Result<BulkReport, AppError> {
    let origin = Origin { actor, bulk: true };
    let mut report = BulkReport::default();
    for &id in ids {
        let (result, error) = match change::apply(conn, id, change, &origin, at) {
            Ok(Outcome::Updated(_)) => (Verdict::Updated, None),
            Ok(Outcome::Unchanged(_)) => (Verdict::Unchanged, None),
            Err(AppError::NotFound(_)) => (Verdict::NotFound, None),
            Err(AppError::Conflict(e) | AppError::Unprocessable(e)) => (Verdict::Rejected, Some(e)),
            // The database failed: the whole call fails and nothing stays.
            Err(e) => return Err(e),
        };
        match result {
            Verdict::Updated => report.updated += 1,
            Verdict::Unchanged => report.unchanged += 1,
            Verdict::NotFound => report.not_found += 1,
            Verdict::Rejected => report.rejected += 1,
        }
        report.results.push(LeadResult { id, result, error });
    }
    Ok(report)
}
