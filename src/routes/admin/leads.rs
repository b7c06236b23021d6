//! Lead endpoints of the admin API.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{NaiveDate, NaiveDateTime};
use serde::Deserialize;

use super::actor;
use super::params::{self, arg, Page, Query};
use crate::error::AppError;
use crate::leads::filter::{self, Cursor, LeadFilter, Sort, Source, Window};
use crate::leads::pipeline::Vocabulary;
use crate::leads::{change, service, tags, view};
use crate::startup::AppState;
use crate::time;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // `stats` before `{id}`, or it would be taken for an id.
    cfg.route("/leads", web::get().to(list))
        .route("/leads/stats", web::get().to(stats))
        .configure(super::pipeline::configure)
        .route("/leads/{id}", web::get().to(detail))
        .route("/leads/{id}", web::delete().to(delete))
        .route("/leads/{id}/convert", web::post().to(convert));
}

/// The list's filters and sort from the query string (everything but
/// `skip`, `limit` and `cursor`), shared by every endpoint that lists leads.
/// Errors are `400`s naming the parameter and what it accepts.
pub fn lead_filter(query: &Query) -> Result<(LeadFilter, Sort), AppError> {
    let q = arg(query, "q").map(str::trim).filter(|q| !q.is_empty());
    if q.is_some_and(|q| q.chars().count() > 200) {
        return Err(AppError::BadRequest(
            "q must be at most 200 characters".into(),
        ));
    }
    let tag = arg(query, "tag")
        .map(|raw| tags::normalise(raw).map_err(|e| AppError::BadRequest(format!("tag: {e}"))))
        .transpose()?;
    let assigned_to = arg(query, "assigned_to")
        .map(str::trim)
        .map(|a| match a.is_empty() {
            true => Err(AppError::BadRequest(
                "assigned_to must name a staff id; use assigned=false for unassigned leads".into(),
            )),
            false => Ok(a.to_string()),
        })
        .transpose()?;
    let filter = LeadFilter {
        converted: params::boolean("converted", arg(query, "converted"))?,
        active: params::boolean("active", arg(query, "active"))?,
        q: q.map(str::to_string),
        statuses: one_of_list("status", arg(query, "status"))?,
        priorities: one_of_list("priority", arg(query, "priority"))?,
        tag,
        assigned_to,
        assigned: params::boolean("assigned", arg(query, "assigned"))?,
        created_after: instant("created_after", arg(query, "created_after"))?,
        created_before: instant("created_before", arg(query, "created_before"))?,
        last_activity_after: instant("last_activity_after", arg(query, "last_activity_after"))?,
        last_activity_before: instant("last_activity_before", arg(query, "last_activity_before"))?,
        follow_up_due: params::boolean("follow_up_due", arg(query, "follow_up_due"))?,
        source: text("source", arg(query, "source"))?.map(|s| match s.as_str() {
            "organic" => Source::Organic,
            _ => Source::Referral(s),
        }),
        source_id: text("source_id", arg(query, "source_id"))?,
        business_number: text("business_number", arg(query, "business_number"))?,
    };
    let sort = match arg(query, "sort").map(str::trim) {
        None => Sort::default(),
        Some(name) => Sort::parse_field("sort", name).map_err(AppError::BadRequest)?,
    };
    Ok((filter, sort))
}

/// A non-blank exact-match value.
fn text(name: &str, raw: Option<&str>) -> Result<Option<String>, AppError> {
    match raw.map(str::trim) {
        None => Ok(None),
        Some("") => Err(AppError::BadRequest(format!(
            "{name} must not be empty (leave it out to not filter on it)"
        ))),
        Some(value) => Ok(Some(value.to_string())),
    }
}

/// `status=new,contacted`: any of the listed values.
fn one_of_list<V: Vocabulary>(name: &str, raw: Option<&str>) -> Result<Vec<V>, AppError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let mut values = Vec::new();
    for part in raw.split(',').map(str::trim) {
        let value = V::parse_field(name, part).map_err(AppError::BadRequest)?;
        if !values.contains(&value) {
            values.push(value);
        }
    }
    Ok(values)
}

/// An RFC 3339 time, or a `YYYY-MM-DD` date meaning its midnight UTC.
fn instant(name: &str, raw: Option<&str>) -> Result<Option<NaiveDateTime>, AppError> {
    let Some(raw) = raw.map(str::trim) else {
        return Ok(None);
    };
    // An unencoded `+` in a query string arrives as a space.
    let parsed = change::parse_instant(&raw.replace(' ', "+")).or_else(|| {
        NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    });
    parsed.map(Some).ok_or_else(|| {
        AppError::BadRequest(format!(
            "{name} must be an RFC 3339 time (e.g. 2026-11-22T10:00:00Z) or a date (2026-11-22), got '{raw}'"
        ))
    })
}

async fn list(state: web::Data<AppState>, query: Query) -> Result<HttpResponse, AppError> {
    let (skip, limit) = params::list_page(&query)?;
    let (filter, sort) = lead_filter(&query)?;
    let cursor = arg(&query, "cursor")
        .map(|raw| {
            let cursor = Cursor::decode(raw.trim()).ok_or_else(|| {
                AppError::BadRequest(format!(
                    "cursor must be a next_cursor value from a previous page, got '{raw}'"
                ))
            })?;
            if cursor.sort != sort {
                return Err(AppError::BadRequest(format!(
                    "cursor belongs to sort={}, not sort={}: pass the same sort as the page it came from",
                    cursor.sort.name(),
                    sort.name()
                )));
            }
            Ok(cursor)
        })
        .transpose()?;
    if cursor.is_some() && skip > 0 {
        return Err(AppError::BadRequest(
            "use either skip or cursor, not both".into(),
        ));
    }
    let (items, total, next) = state
        .db
        .read(move |conn| {
            let window = Window {
                skip,
                limit,
                with_total: true,
            };
            let page = filter::list(conn, &filter, sort, cursor, window, time::now())?;
            let items = view::with_tags(conn, page.items)?;
            // Asked for with `with_total`, so always there.
            Ok::<_, AppError>((items, page.total.unwrap_or_default(), page.next))
        })
        .await?;
    Ok(HttpResponse::Ok().json(Page {
        items,
        total,
        skip,
        limit,
        next_cursor: Some(next.map(|c| c.encode())),
    }))
}

async fn stats(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let stats = state
        .db
        .read(|conn| service::stats(conn).map_err(AppError::from))
        .await?;
    Ok(HttpResponse::Ok().json(stats))
}

async fn detail(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: Query,
) -> Result<HttpResponse, AppError> {
    let id = params::id("lead id", &path)?;
    let (before, limit) = params::history_page(&query)?;
    let detail = state
        .db
        .read(move |conn| service::detail(conn, id, before, limit))
        .await?;
    Ok(HttpResponse::Ok().json(detail))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConvertBody {
    student_id: Option<i64>,
}

async fn convert(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let id = params::id("lead id", &path)?;
    let actor = actor::from_request(&req)?;
    // An empty body is allowed: the student is then made from the lead.
    let body: ConvertBody = if body.iter().all(u8::is_ascii_whitespace) {
        ConvertBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            AppError::Unprocessable(format!(
                "body must be {{\"student_id\": <integer>}} or empty: {e}"
            ))
        })?
    };
    let (lead, student) = state
        .db
        .write(move |conn| {
            let (lead, student) = service::convert(conn, id, body.student_id, actor.as_deref())?;
            Ok::<_, AppError>((view::one(conn, lead)?, student))
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "lead": lead, "student": student })))
}

async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: Query,
) -> Result<HttpResponse, AppError> {
    let id = params::id("lead id", &path)?;
    let actor = actor::from_request(&req)?;
    if params::boolean("hard", arg(&query, "hard"))?.unwrap_or(false) {
        state
            .db
            .write(move |conn| service::hard_delete(conn, id))
            .await?;
        Ok(HttpResponse::Ok().json(serde_json::json!({ "deleted": id })))
    } else {
        let lead = state
            .db
            .write(move |conn| {
                let lead = service::deactivate(conn, id, actor.as_deref())?;
                Ok::<_, AppError>(view::one(conn, lead)?)
            })
            .await?;
        Ok(HttpResponse::Ok().json(serde_json::json!({ "lead": lead })))
    }
}
