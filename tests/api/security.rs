//! Abuse resistance: brute-forcing the admin token, CORS, oversized headers
//! and clients that send too slowly.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, ADMIN_TOKEN};
use crate::payloads::{text_from, T0};

async fn admin_get_as(
    app: &TestApp,
    token: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .get(app.url("/api/admin/leads/stats"))
        .bearer_auth(token);
    if let Some(ip) = forwarded_for {
        request = request.header("X-Forwarded-For", ip);
    }
    request.send().await.expect("request")
}

async fn failed_admin_logins_are_throttled_per_address(app: TestApp) {
    let app = TestApp::spawn_with(
        app.backend,
        &[
            ("ADMIN_AUTH_MAX_FAILURES", "3"),
            ("TRUST_FORWARDED_FOR", "true"),
        ],
    )
    .await
    .unwrap();
    let attacker = Some("203.0.113.7");
    for _ in 0..3 {
        assert_eq!(admin_get_as(&app, "guess", attacker).await.status(), 401);
    }
    // Locked out now, even with the right token.
    let locked = admin_get_as(&app, ADMIN_TOKEN, attacker).await;
    assert_eq!(locked.status(), 429);
    let retry_after: u64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    let body: serde_json::Value = locked.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("too many"));
    // Another address is not affected, and neither is the webhook.
    assert_eq!(
        admin_get_as(&app, ADMIN_TOKEN, Some("198.51.100.2"))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.post_webhook(&text_from("15554440001", "wamid.SEC1", T0, "hi"))
            .await
            .status(),
        200
    );
}

async fn forwarded_for_is_ignored_unless_trusted(app: TestApp) {
    let app = TestApp::spawn_with(app.backend, &[("ADMIN_AUTH_MAX_FAILURES", "2")])
        .await
        .unwrap();
    // Rotating a spoofed header does not reset the count for the real peer.
    for i in 0..2 {
        let ip = format!("192.0.2.{i}");
        assert_eq!(admin_get_as(&app, "guess", Some(&ip)).await.status(), 401);
    }
    assert_eq!(
        admin_get_as(&app, ADMIN_TOKEN, Some("192.0.2.99"))
            .await
            .status(),
        429
    );
}

async fn cors_is_closed_by_default(app: TestApp) {
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/admin/leads"))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(preflight
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    let get = app
        .client
        .get(app.url("/api/admin/leads"))
        .bearer_auth(ADMIN_TOKEN)
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    assert!(get.headers().get("access-control-allow-origin").is_none());
}

async fn oversized_headers_are_refused(app: TestApp) {
    let huge = "a".repeat(256 * 1024);
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("X-Padding", huge)
        .send()
        .await;
    match response {
        Ok(r) => assert!(
            r.status() == 431 || r.status() == 400,
            "status {}",
            r.status()
        ),
        Err(e) => assert!(e.is_request() || e.is_connect() || e.is_body(), "{e}"),
    }
    // The server is fine afterwards.
    assert_eq!(app.get("/healthz").await.status(), 200);
}

/// Reads what the server answers on a raw connection, up to `limit`.
async fn read_answer(stream: &mut TcpStream, limit: Duration) -> String {
    let mut buf = vec![0u8; 4096];
    let mut answer = Vec::new();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match tokio::time::timeout(deadline - Instant::now(), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => break,
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

async fn clients_that_send_too_slowly_are_cut_off(app: TestApp) {
    let app = TestApp::spawn_with(app.backend, &[("REQUEST_TIMEOUT_SECS", "1")])
        .await
        .unwrap();
    let host = app.address.trim_start_matches("http://").to_string();

    // A request head that never completes.
    let started = Instant::now();
    let mut slow_head = TcpStream::connect(&host).await.unwrap();
    slow_head
        .write_all(b"POST /api/webhook/whatsapp HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let answer = read_answer(&mut slow_head, Duration::from_secs(8)).await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "connection held open"
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );

    // A body that never completes.
    let started = Instant::now();
    let mut slow_body = TcpStream::connect(&host).await.unwrap();
    slow_body
        .write_all(b"POST /api/webhook/whatsapp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\nX-Hub-Signature-256: sha256=00\r\n\r\n{\"object\":")
        .await
        .unwrap();
    let answer = read_answer(&mut slow_body, Duration::from_secs(8)).await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "connection held open"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(app.stats().await["messages_total"], 0);
}

crate::on_both_databases!(
    failed_admin_logins_are_throttled_per_address,
    forwarded_for_is_ignored_unless_trusted,
    cors_is_closed_by_default,
    oversized_headers_are_refused,
    clients_that_send_too_slowly_are_cut_off,
);
