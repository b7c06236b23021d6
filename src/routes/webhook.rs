//! `/api/webhook/whatsapp`: the subscription handshake and signed events.

use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;

use crate::error::AppError;
use crate::failures;
use crate::ingest;
use crate::startup::AppState;
use crate::time;
use crate::whatsapp::{payload, signature};

const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

#[derive(Deserialize)]
pub struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// GET: echo `hub.challenge` when the verify token matches; 403 otherwise.
pub async fn handshake(state: web::Data<AppState>, query: web::Query<Handshake>) -> HttpResponse {
    let forbidden = |why: &str| HttpResponse::Forbidden().json(serde_json::json!({ "error": why }));
    let Some(expected) = state.config.verify_token.as_ref() else {
        return forbidden("webhook verification disabled: WHATSAPP_VERIFY_TOKEN is not set");
    };
    let q = query.into_inner();
    match (q.mode.as_deref(), q.verify_token, q.challenge) {
        (Some("subscribe"), Some(token), Some(challenge)) if expected.matches(token.as_bytes()) => {
            HttpResponse::Ok()
                .content_type("text/plain")
                .body(challenge)
        }
        _ => forbidden("verification failed"),
    }
}

/// POST: verify the signature over the raw bytes, then parse and commit
/// everything in one write; `200` only once it is committed.
pub async fn receive(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let Some(secret) = state.config.app_secret.as_ref() else {
        return Err(AppError::Unavailable(
            "webhook disabled: WHATSAPP_APP_SECRET is not set".into(),
        ));
    };
    // A client trickling its body must not hold a worker forever.
    let body = tokio::time::timeout(
        state.config.request_timeout,
        read_limited(&request, payload, state.config.max_body_bytes),
    )
    .await
    .map_err(|_| AppError::RequestTimeout("the request body took too long to arrive".into()))??;
    let header = request
        .headers()
        .get(SIGNATURE_HEADER)
        .ok_or_else(|| AppError::Unauthorized(format!("missing {SIGNATURE_HEADER} header")))?
        .to_str()
        .map_err(|_| AppError::Unauthorized(format!("malformed {SIGNATURE_HEADER} header")))?;
    signature::verify(secret.expose().as_bytes(), &body, header)
        .map_err(|e| AppError::Unauthorized(format!("{SIGNATURE_HEADER}: {e}")))?;

    // The raw body goes to the writer for dead-lettering; `Bytes` shares it
    // rather than copying up to WEBHOOK_MAX_BODY_BYTES per request.
    let raw = body.clone();
    let report = match payload::parse(&body) {
        Ok(parsed) => state.ingestor.submit(parsed, raw).await?,
        Err(e) => {
            let reason = e.to_string();
            log::warn!("webhook body dead-lettered: {reason}");
            state
                .db
                .write(move |conn| {
                    failures::record(conn, &reason, &raw, time::now())
                        .map_err(ingest::queue::store_failed)
                })
                .await?;
            ingest::IngestReport {
                dead_lettered: 1,
                ..Default::default()
            }
        }
    };

    log::info!(
        "webhook: {} stored, {} duplicate, {} from students, {} leads created, {} merged, {} statuses, {} dead-lettered",
        report.stored.len(),
        report.duplicates,
        report.from_students,
        report.leads_created,
        report.leads_merged,
        report.statuses_applied + report.statuses_ignored,
        report.dead_lettered
    );
    let stored = report.stored.len();
    // Committed: only now may the live conversations see these messages.
    for entry in report.stored {
        state.conversations.append(entry);
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "status": "ok",
        "stored": stored,
        "duplicates": report.duplicates,
        "dead_lettered": report.dead_lettered,
    })))
}

/// Reads the raw body, refusing more than `limit` bytes with `413` (early,
/// from `Content-Length`, when the client declares it).
async fn read_limited(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, AppError> {
    let too_large = || {
        AppError::PayloadTooLarge(format!(
            "body larger than the {limit}-byte limit (WEBHOOK_MAX_BODY_BYTES)"
        ))
    };
    let declared = request
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(8 * 1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| AppError::BadRequest(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
