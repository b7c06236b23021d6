//! `/api/admin/*`: bearer-token auth in front of every admin endpoint.

mod actor;
mod analytics;
mod conversations;
mod export;
mod json_body;
mod leads;
mod params;
mod pipeline;
mod reset;
mod students;
pub mod throttle;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, Error, ResponseError};
use std::net::IpAddr;
use std::time::Instant;

use crate::error::AppError;
use crate::startup::AppState;

pub fn scope() -> actix_web::Scope<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = Error,
        InitError = (),
    >,
> {
    web::scope("/api/admin")
        .wrap(from_fn(require_admin_token))
        // Before `leads`, whose `/leads/{id}` would take `export` for an id.
        .configure(export::configure)
        .configure(leads::configure)
        .configure(analytics::configure)
        .configure(students::configure)
        .configure(conversations::configure)
        .configure(reset::configure)
}

/// Every admin request passes here: no token configured → 503 (the API is
/// never open), an address with too many recent failures → 429, wrong or
/// missing bearer token → 401 (and counts as a failure).
async fn require_admin_token(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, Error> {
    let verdict = match req.app_data::<web::Data<AppState>>() {
        Some(state) => authorize(state, &req),
        None => Err(AppError::Internal("application state missing".into())),
    };
    match verdict {
        Ok(()) => Ok(next.call(req).await?.map_into_boxed_body()),
        Err(e) => Ok(req.into_response(e.error_response())),
    }
}

fn authorize(state: &AppState, req: &ServiceRequest) -> Result<(), AppError> {
    let client = client_address(state, req);
    let now = Instant::now();
    if let Some(ip) = client {
        if let Err(wait) = state.admin_throttle.check(ip, now) {
            let seconds = wait.as_secs().max(1);
            return Err(AppError::TooManyRequests(
                format!("too many failed admin logins from this address; retry in {seconds} s"),
                seconds,
            ));
        }
    }
    let verdict = check_token(state, req);
    if let (Err(AppError::Unauthorized(_)), Some(ip)) = (&verdict, client) {
        log::warn!("admin authentication failed from {ip}");
        state.admin_throttle.record_failure(ip, now);
    }
    verdict
}

/// The client's address: the TCP peer, or the proxy-reported one when
/// `TRUST_FORWARDED_FOR` says a trusted proxy sets `X-Forwarded-For`.
fn client_address(state: &AppState, req: &ServiceRequest) -> Option<IpAddr> {
    if state.config.trust_forwarded_for {
        let info = req.connection_info();
        if let Some(ip) = info.realip_remote_addr().and_then(parse_ip) {
            return Some(ip);
        }
    }
    req.peer_addr().map(|a| a.ip())
}

/// `1.2.3.4`, `1.2.3.4:567`, `[::1]:567` or `::1`.
fn parse_ip(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
}

fn check_token(state: &AppState, req: &ServiceRequest) -> Result<(), AppError> {
    let Some(expected) = state.config.admin_token.as_ref() else {
        return Err(AppError::Unavailable(
            "admin API disabled: set ADMIN_TOKEN to enable it".into(),
        ));
    };
    let presented = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or_else(|| {
            AppError::Unauthorized(
                "missing bearer token: send Authorization: Bearer <ADMIN_TOKEN>".into(),
            )
        })?;
    if expected.matches(presented.trim().as_bytes()) {
        Ok(())
    } else {
        Err(AppError::Unauthorized("invalid admin token".into()))
    }
}
