//! Liveness and readiness for the PaaS.

use actix_web::{get, web, HttpResponse};

use crate::startup::AppState;

/// 200 while the process serves requests.
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// 200 when the database answers, else 503: a load balancer stops sending
/// webhooks to an instance that could only answer 503 to them.
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.db.ping().await {
        HttpResponse::Ok().json(serde_json::json!({ "status": "ready" }))
    } else {
        HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({ "status": "unavailable", "error": "database unavailable" }))
    }
}
