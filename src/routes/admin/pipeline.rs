//! Pipeline endpoints: editing a lead, its notes and timeline, and bulk
//! edits.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::actor;
use super::json_body;
use super::params::{self, Query};
use crate::error::AppError;
use crate::leads::activity;
use crate::leads::bulk;
use crate::leads::change::{self, LeadChange, Origin, Outcome};
use crate::leads::notes::{self, NewNote};
use crate::leads::service::lead_not_found;
use crate::leads::{view, Lead};
use crate::startup::AppState;
use crate::time;

/// Registered before `/leads/{id}` so that `bulk` is never taken for an id.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/leads/bulk", web::post().to(bulk_edit))
        .route("/leads/{id}", web::patch().to(edit))
        .route("/leads/{id}/notes", web::post().to(add_note))
        .route("/leads/{id}/notes", web::get().to(list_notes))
        .route("/leads/{id}/activity", web::get().to(timeline));
}

const EDIT_SHAPE: &str = "of fields to change, e.g. {\"status\": \"contacted\"}";

async fn edit(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let id = params::id("lead id", &path)?;
    let origin = Origin {
        actor: actor::from_request(&req)?,
        bulk: false,
    };
    let change = LeadChange::from_json(&json_body::object(&body, EDIT_SHAPE)?, false, &[])?;
    let lead = state
        .db
        .write(move |conn| {
            let lead = match change::apply(conn, id, &change, &origin, time::now())? {
                Outcome::Updated(lead) | Outcome::Unchanged(lead) => lead,
            };
            Ok::<_, AppError>(view::one(conn, lead)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "lead": lead })))
}

async fn bulk_edit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let actor = actor::from_request(&req)?;
    let body = json_body::object(
        &body,
        "{\"ids\": [lead ids], <one or more fields to change>}",
    )?;
    let ids = bulk::ids(body.get("ids"))?;
    let change = LeadChange::from_json(&body, true, &["ids"])?;
    let report = state
        .db
        .write(move |conn| bulk::apply(conn, &ids, &change, actor, time::now()))
        .await?;
    Ok(HttpResponse::Ok().json(report))
}

async fn add_note(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let id = params::id("lead id", &path)?;
    let body = json_body::object(&body, "{\"author\": \"…\", \"body\": \"…\"}")?;
    if let Some(unknown) = body
        .keys()
        .find(|k| !matches!(k.as_str(), "author" | "body"))
    {
        return Err(AppError::Unprocessable(format!(
            "unknown field '{unknown}'; a note has author and body"
        )));
    }
    let text = |field: &str| body.get(field).and_then(Value::as_str);
    let note = NewNote::new(text("author"), text("body"))?;
    let note = state
        .db
        .write(move |conn| notes::add(conn, id, &note, time::now()))
        .await?;
    Ok(HttpResponse::Created().json(json!({ "note": note })))
}

async fn list_notes(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = params::id("lead id", &path)?;
    let items = state
        .db
        .read(move |conn| {
            Lead::find(conn, id)?.ok_or_else(|| lead_not_found(id))?;
            Ok::<_, AppError>(notes::for_lead(conn, id)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

async fn timeline(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: Query,
) -> Result<HttpResponse, AppError> {
    let id = params::id("lead id", &path)?;
    let (before, limit) = params::history_page(&query)?;
    let timeline = state
        .db
        .read(move |conn| {
            let lead = Lead::find(conn, id)?.ok_or_else(|| lead_not_found(id))?;
            Ok::<_, AppError>(activity::timeline(conn, &lead, before, limit)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(timeline))
}
