//! HTTP only: extract, validate, call the layer below, answer. No SQL here.

pub mod admin;
pub mod health;
pub mod webhook;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(
            web::resource("/api/webhook/whatsapp")
                .route(web::get().to(webhook::handshake))
                .route(web::post().to(webhook::receive)),
        )
        .service(admin::scope());
}
