//! `/api/admin/*`: bearer-token auth in front of every admin endpoint.

mod conversations;
mod leads;
mod params;
mod students;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, Error, ResponseError};

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
        .configure(leads::configure)
        .configure(students::configure)
        .configure(conversations::configure)
}

/// Every admin request passes here: no token configured → 503 (the API is
/// never open), wrong or missing bearer token → 401.
async fn require_admin_token(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, Error> {
    let verdict = match req.app_data::<web::Data<AppState>>() {
        Some(state) => check_token(state, &req),
        None => Err(AppError::Internal("application state missing".into())),
    };
    match verdict {
        Ok(()) => Ok(next.call(req).await?.map_into_boxed_body()),
        Err(e) => Ok(req.into_response(e.error_response())),
    }
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
