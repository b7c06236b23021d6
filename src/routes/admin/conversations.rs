//! Live conversations (from memory) and dead-lettered webhook bodies.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};

use super::params;
use crate::error::AppError;
use crate::failures;
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/conversations", web::get().to(conversations))
        .route("/webhook-failures", web::get().to(webhook_failures));
}

async fn conversations(state: web::Data<AppState>) -> HttpResponse {
    let items = state.conversations.list();
    let limits = state.conversations.limits();
    HttpResponse::Ok().json(serde_json::json!({
        "items": items,
        "total": items.len(),
        "limits": {
            "max_messages": limits.max_messages,
            "max_conversations": limits.max_conversations,
            "idle_ttl_secs": limits.idle_ttl.as_secs(),
        },
    }))
}

async fn webhook_failures(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, AppError> {
    let (skip, limit) = params::page(
        query.get("skip").map(String::as_str),
        query.get("limit").map(String::as_str),
        50,
        500,
    )?;
    let (items, total) = state
        .db
        .read(move |conn| failures::list(conn, skip, limit).map_err(AppError::from))
        .await?;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "items": items, "total": total, "skip": skip, "limit": limit })))
}
