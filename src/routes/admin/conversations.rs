//! Live conversations (from memory) and dead-lettered webhook bodies.

use actix_web::{web, HttpResponse};

use super::params::{self, Page, Query};
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
    query: Query,
) -> Result<HttpResponse, AppError> {
    let (skip, limit) = params::list_page(&query)?;
    let (items, total) = state
        .db
        .read(move |conn| failures::list(conn, skip, limit).map_err(AppError::from))
        .await?;
    Ok(HttpResponse::Ok().json(Page::by_skip(items, total, skip, limit)))
}
