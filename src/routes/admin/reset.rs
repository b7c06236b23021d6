//! `POST /api/admin/reset`: wipes every lead, message, tag, note, timeline
//! entry, dead letter and live conversation; students stay.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::actor;
use super::json_body;
use crate::error::AppError;
use crate::leads::reset::{self, CONFIRMATION};
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/reset", web::post().to(reset));
}

async fn reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let demand = || {
        AppError::Unprocessable(format!(
            "confirm must be exactly \"{CONFIRMATION}\": this deletes every lead, message, \
             note, tag, timeline entry, webhook failure and live conversation"
        ))
    };
    let actor = actor::from_request(&req)?;
    let body = json_body::object(&body, &format!("{{\"confirm\": \"{CONFIRMATION}\"}}"))
        .map_err(|_| demand())?;
    if body.len() != 1 || body.get("confirm").and_then(Value::as_str) != Some(CONFIRMATION) {
        return Err(demand());
    }
    let wiped = state
        .db
        .write(|conn| reset::wipe(conn).map_err(AppError::from))
        .await?;
    // After the commit: a conversation is only a cache of stored messages.
    let conversations = state.conversations.len();
    state.conversations.clear();
    log::warn!(
        "admin reset by {}: removed {} leads, {} messages, {} tags, {} notes, {} timeline entries, \
         {} webhook failures, {conversations} live conversations",
        actor.as_deref().unwrap_or("an unnamed admin"),
        wiped.leads,
        wiped.messages,
        wiped.tags,
        wiped.notes,
        wiped.activity,
        wiped.webhook_failures,
    );
    let mut deleted =
        serde_json::to_value(&wiped).map_err(|e| AppError::Internal(e.to_string()))?;
    deleted["conversations"] = json!(conversations);
    Ok(HttpResponse::Ok().json(json!({ "deleted": deleted })))
}
