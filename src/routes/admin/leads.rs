//! Lead endpoints of the admin API.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::params::{self, arg, Page, Query};
use crate::error::AppError;
use crate::leads::service::{self, Cursor, LeadFilter};
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // `stats` before `{id}`, or it would be taken for an id.
    cfg.route("/leads", web::get().to(list))
        .route("/leads/stats", web::get().to(stats))
        .route("/leads/{id}", web::get().to(detail))
        .route("/leads/{id}", web::delete().to(delete))
        .route("/leads/{id}/convert", web::post().to(convert));
}

async fn list(state: web::Data<AppState>, query: Query) -> Result<HttpResponse, AppError> {
    let (skip, limit) = params::list_page(&query)?;
    let cursor = arg(&query, "cursor")
        .map(|raw| {
            Cursor::decode(raw.trim()).ok_or_else(|| {
                AppError::BadRequest(format!(
                    "cursor must be a next_cursor value from a previous page, got '{raw}'"
                ))
            })
        })
        .transpose()?;
    if cursor.is_some() && skip > 0 {
        return Err(AppError::BadRequest(
            "use either skip or cursor, not both".into(),
        ));
    }
    let filter = lead_filter(&query)?;
    let page = state
        .db
        .read(move |conn| service::list(conn, &filter, cursor, skip, limit).map_err(AppError::from))
        .await?;
    Ok(HttpResponse::Ok().json(Page {
        items: page.items,
        total: page.total,
        skip,
        limit,
        next_cursor: Some(page.next.map(|c| c.encode())),
    }))
}

/// The filters of the lead list, shared by the list and its export.
pub fn lead_filter(query: &Query) -> Result<LeadFilter, AppError> {
    let q = arg(query, "q").map(str::trim).filter(|q| !q.is_empty());
    if q.is_some_and(|q| q.chars().count() > 200) {
        return Err(AppError::BadRequest(
            "q must be at most 200 characters".into(),
        ));
    }
    Ok(LeadFilter {
        converted: params::boolean("converted", arg(query, "converted"))?,
        active: params::boolean("active", arg(query, "active"))?,
        q: q.map(str::to_string),
    })
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
    let before = arg(&query, "before")
        .map(|b| params::id("before", b))
        .transpose()?;
    let (_, limit) = params::page(None, arg(&query, "limit"), 200, 1000)?;
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
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let id = params::id("lead id", &path)?;
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
        .write(move |conn| service::convert(conn, id, body.student_id))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "lead": lead, "student": student })))
}

async fn delete(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: Query,
) -> Result<HttpResponse, AppError> {
    let id = params::id("lead id", &path)?;
    if params::boolean("hard", arg(&query, "hard"))?.unwrap_or(false) {
        state
            .db
            .write(move |conn| service::hard_delete(conn, id))
            .await?;
        Ok(HttpResponse::Ok().json(serde_json::json!({ "deleted": id })))
    } else {
        let lead = state
            .db
            .write(move |conn| service::deactivate(conn, id))
            .await?;
        Ok(HttpResponse::Ok().json(serde_json::json!({ "lead": lead })))
    }
}
