//! The ceiling: what this machine, this client and actix-web can do at all.
//!
//! A bare actix-web server in the same process, on `127.0.0.1:0`, with one
//! handler that reads the body, checks its signature with leadhook's own
//! [`signature::verify`] and answers `200` with a body like leadhook's. No
//! JSON parsing, no database, no logging middleware. Measured with the same
//! client and settings as the real server, it bounds what leadhook could
//! reach here: the real server's figures as a fraction of the ceiling say
//! how much the work behind the signature check costs.

use std::net::SocketAddr;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

use crate::whatsapp::signature;

/// What leadhook answers for one stored message: same size, same type.
const OK_BODY: &str = r#"{"status":"ok","stored":1,"duplicates":0,"dead_lettered":0}"#;

struct Secret(Vec<u8>);

/// Whether `body` carries a valid `X-Hub-Signature-256` for `secret`: the
/// one check the bare handlers make (also `examples/store_ceiling`).
pub fn is_signed(secret: &[u8], request: &HttpRequest, body: &[u8]) -> bool {
    request
        .headers()
        .get("X-Hub-Signature-256")
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| signature::verify(secret, body, h).is_ok())
}

async fn receive(
    secret: web::Data<Secret>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if is_signed(&secret.0, &request, &body) {
        HttpResponse::Ok()
            .content_type("application/json")
            .body(OK_BODY)
    } else {
        HttpResponse::Unauthorized()
            .content_type("application/json")
            .body(r#"{"error":"X-Hub-Signature-256 does not match the request body"}"#)
    }
}

/// A running ceiling server.
pub struct Ceiling {
    pub addr: SocketAddr,
    pub workers: usize,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Ceiling {
    /// Starts the server with `workers` worker threads, serving `path`.
    pub fn start(secret: &[u8], path: &str, workers: usize) -> std::io::Result<Ceiling> {
        let secret = web::Data::new(Secret(secret.to_vec()));
        let path = path.to_owned();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(secret.clone())
                .app_data(web::PayloadConfig::new(4 * 1024 * 1024))
                .route(&path, web::post().to(receive))
        })
        .workers(workers)
        .disable_signals()
        .shutdown_timeout(1)
        .bind(("127.0.0.1", 0))?;
        let addr = server
            .addrs()
            .first()
            .copied()
            .ok_or_else(|| std::io::Error::other("the ceiling server bound no address"))?;
        let server = server.run();
        let handle = server.handle();
        let task = tokio::spawn(server);
        Ok(Ceiling {
            addr,
            workers,
            handle,
            task,
        })
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.task.await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::loadtest::body::{Phase, RequestFactory};
    use crate::loadtest::http::Conn;

    #[tokio::test]
    async fn answers_200_to_signed_requests_and_401_to_others() {
        let ceiling = Ceiling::start(b"s3cret", "/api/webhook/whatsapp", 1).unwrap();
        let host = ceiling.addr.to_string();
        let good = RequestFactory::new(b"s3cret", &host, "/api/webhook/whatsapp", 10);
        let bad = RequestFactory::new(b"other", &host, "/api/webhook/whatsapp", 10);
        let mut conn = Conn::connect(ceiling.addr).await.unwrap();
        assert_eq!(
            conn.exchange(&good.request(Phase::Measure, 1))
                .await
                .unwrap(),
            (200, false)
        );
        assert_eq!(
            conn.exchange(&bad.request(Phase::Measure, 2))
                .await
                .unwrap(),
            (401, false)
        );
        assert_eq!(
            conn.exchange(&good.request(Phase::Measure, 3))
                .await
                .unwrap(),
            (200, false)
        );
        ceiling.stop().await;
    }
}
