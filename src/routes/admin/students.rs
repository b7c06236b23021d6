//! Student registry endpoints of the admin API.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::params::{self, Page, Query};
use crate::error::AppError;
use crate::identity::{Bsuid, PhoneNumber};
use crate::leads::service;
use crate::startup::AppState;
use crate::students::{NewStudent, Student};
use crate::time;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/students", web::get().to(list))
        .route("/students", web::post().to(register));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StudentBody {
    phone_number: Option<String>,
    user_id: Option<String>,
    parent_user_id: Option<String>,
    username: Option<String>,
    name: Option<String>,
    email: Option<String>,
}

fn non_blank(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

async fn register(state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, AppError> {
    let body: StudentBody = serde_json::from_slice(&body).map_err(|e| {
        AppError::Unprocessable(format!(
            "body must be JSON {{\"phone_number\", \"user_id\", \"parent_user_id\", \"username\", \"name\", \"email\"}}: {e}"
        ))
    })?;
    let phone = non_blank(body.phone_number)
        .map(|p| {
            PhoneNumber::parse(&p)
                .map_err(|e| AppError::Unprocessable(format!("phone_number: {e}")))
        })
        .transpose()?;
    let bsuid = non_blank(body.user_id)
        .map(|b| Bsuid::parse(&b).map_err(|e| AppError::Unprocessable(format!("user_id: {e}"))))
        .transpose()?;
    if phone.is_none() && bsuid.is_none() {
        return Err(AppError::Unprocessable(
            "a student needs a phone_number or a user_id (BSUID), or both".into(),
        ));
    }
    let parent = non_blank(body.parent_user_id)
        .map(|b| {
            Bsuid::parse(&b).map_err(|e| AppError::Unprocessable(format!("parent_user_id: {e}")))
        })
        .transpose()?;
    let username = non_blank(body.username);
    let name = non_blank(body.name);
    let email = non_blank(body.email);
    let (student, linked) = state
        .db
        .write(move |conn| {
            let phone = phone.as_ref().map(|p| p.as_str());
            let user_id = bsuid.as_ref().map(|b| b.as_str());
            if let Some(existing) = Student::find_by_identity(conn, phone, user_id)? {
                return Err(AppError::Conflict(format!(
                    "student {} is already registered with this phone number or user id",
                    existing.id
                )));
            }
            let now = time::now();
            let student = Student::insert(
                conn,
                &NewStudent {
                    phone_number: phone,
                    user_id,
                    parent_user_id: parent.as_ref().map(|b| b.as_str()),
                    username: username.as_deref(),
                    name: name.as_deref(),
                    email: email.as_deref(),
                    created_at: now,
                },
            )?;
            let linked = service::link_student(conn, &student, now)?;
            Ok((student, linked))
        })
        .await?;
    Ok(HttpResponse::Created()
        .json(serde_json::json!({ "student": student, "leads_linked": linked })))
}

async fn list(state: web::Data<AppState>, query: Query) -> Result<HttpResponse, AppError> {
    let (skip, limit) = params::list_page(&query)?;
    let (items, total) = state
        .db
        .read(move |conn| Student::list(conn, skip, limit).map_err(AppError::from))
        .await?;
    Ok(HttpResponse::Ok().json(Page::by_skip(items, total, skip, limit)))
}
