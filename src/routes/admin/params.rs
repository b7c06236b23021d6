//! Query-string values of the admin API, validated into typed values with
//! errors that say which parameter is wrong and what it accepts.

use std::collections::HashMap;

use serde::Serialize;

use crate::error::AppError;

/// The query string of an admin request, as sent.
pub type Query = actix_web::web::Query<HashMap<String, String>>;

pub fn arg<'a>(query: &'a Query, name: &str) -> Option<&'a str> {
    query.get(name).map(String::as_str)
}

/// One page of a list: `{"items": […], "total": N, "skip": S, "limit": L}`,
/// plus `next_cursor` where the list supports keyset paging.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub skip: i64,
    pub limit: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Option<String>>,
}

impl<T> Page<T> {
    /// A page of a list paged by `skip` only.
    pub fn by_skip(items: Vec<T>, total: i64, skip: i64, limit: i64) -> Self {
        Page {
            items,
            total,
            skip,
            limit,
            next_cursor: None,
        }
    }
}

/// `skip` and `limit` of a list endpoint (limit 1–500, default 50).
pub fn list_page(query: &Query) -> Result<(i64, i64), AppError> {
    page(arg(query, "skip"), arg(query, "limit"), 50, 500)
}

/// `skip`/`limit` pagination.
pub fn page(
    skip: Option<&str>,
    limit: Option<&str>,
    default_limit: i64,
    max_limit: i64,
) -> Result<(i64, i64), AppError> {
    let skip = match skip {
        None => 0,
        Some(raw) => raw
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                AppError::BadRequest(format!("skip must be a whole number ≥ 0, got '{raw}'"))
            })?,
    };
    let limit = match limit {
        None => default_limit,
        Some(raw) => raw
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max_limit).contains(n))
            .ok_or_else(|| {
                AppError::BadRequest(format!(
                    "limit must be a whole number from 1 to {max_limit}, got '{raw}'"
                ))
            })?,
    };
    Ok((skip, limit))
}

pub fn boolean(name: &str, raw: Option<&str>) -> Result<Option<bool>, AppError> {
    match raw.map(str::trim) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(AppError::BadRequest(format!(
            "{name} must be true or false, got '{other}'"
        ))),
    }
}

pub fn id(name: &str, raw: &str) -> Result<i64, AppError> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            AppError::BadRequest(format!(
                "{name} must be a positive whole number, got '{raw}'"
            ))
        })
}

/// `before` (an id to page back from) and `limit` (default 200, at most
/// 1000) of a lead's history: its messages or its timeline.
pub fn history_page(query: &Query) -> Result<(Option<i64>, i64), AppError> {
    let before = arg(query, "before").map(|b| id("before", b)).transpose()?;
    let (_, limit) = page(None, arg(query, "limit"), 200, 1000)?;
    Ok((before, limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination_bounds() {
        assert_eq!(page(None, None, 50, 500).unwrap(), (0, 50));
        assert_eq!(page(Some("10"), Some("500"), 50, 500).unwrap(), (10, 500));
        assert!(page(Some("-1"), None, 50, 500).is_err());
        assert!(page(None, Some("0"), 50, 500).is_err());
        assert!(page(None, Some("501"), 50, 500).is_err());
        assert!(page(None, Some("x"), 50, 500).is_err());
    }

    #[test]
    fn booleans_are_strict() {
        assert_eq!(boolean("active", Some("true")).unwrap(), Some(true));
        assert_eq!(boolean("active", None).unwrap(), None);
        assert!(boolean("active", Some("yes")).is_err());
    }
}
