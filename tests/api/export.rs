//! `GET /api/admin/leads/export`: CSV a spreadsheet opens as it should
//! (quoting, UTF-8, formula cells made inert), NDJSON equal to the list, the
//! list's filters, parameter errors, and 100,000 leads streamed by the real
//! binary in bounded memory.

use std::time::Duration;

use serde_json::Value;

use crate::child::{Server, SECRETS};
use crate::helpers::{json_with_status, Backend, TestApp, TestDb, ADMIN_TOKEN};
use crate::on_both_databases;
use crate::payloads::{webhook, Msg, Sender, T0};
use crate::proxy::Proxy;
use crate::sql;

const BOM: &str = "\u{feff}";

/// The CSV header row, in column order.
const HEADER: &str = "id,phone_number,user_id,parent_user_id,username,sender_name,status,priority,\
value_minor,value_currency,assigned_to,next_follow_up_at,source_type,source_id,source_url,\
source_headline,business_phone_number_id,score,interactive_replies,message_count,first_message,\
first_message_time,last_message,last_message_time,is_active,converted_to_student,student_id,\
converted_at,created_at,updated_at,tags";

/// One lead per (phone, name, message), by webhook, oldest first.
async fn leads_from(app: &TestApp, people: &[(&str, &str, &str)]) {
    for (i, (phone, name, text)) in people.iter().enumerate() {
        let msg = Msg::text(
            &Sender::phone(phone).named(name),
            &format!("wamid.export.{i}"),
            T0 + i as i64,
            text,
        );
        json_with_status(app.post_webhook(&webhook(&[msg])).await, 200).await;
    }
}

/// Converts a lead, creating its student.
async fn convert(app: &TestApp, id: i64) {
    let response = app
        .client
        .post(app.url(&format!("/api/admin/leads/{id}/convert")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("convert request");
    json_with_status(response, 200).await;
}

async fn export(app: &TestApp, query: &str) -> (reqwest::header::HeaderMap, String) {
    let response = app
        .admin_get(&format!("/api/admin/leads/export?{query}"))
        .await;
    let headers = response.headers().clone();
    let status = response.status();
    let body = response.text().await.expect("export body");
    assert_eq!(status, 200, "{query}: {body}");
    (headers, body)
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The CSV's records as maps from column name to cell.
fn records(body: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut reader = csv::Reader::from_reader(body.strip_prefix(BOM).expect("BOM").as_bytes());
    let names: Vec<String> = reader
        .headers()
        .expect("header row")
        .iter()
        .map(str::to_string)
        .collect();
    reader
        .records()
        .map(|r| {
            let r = r.expect("a well-formed record");
            names
                .iter()
                .cloned()
                .zip(r.iter().map(str::to_string))
                .collect()
        })
        .collect()
}

async fn csv_quotes_cells_and_neutralises_formulas(app: TestApp) {
    let people = [
        ("15550000001", "Smith, John", "line one\nline two"),
        ("15550000002", "Ann \"Nan\" Lee", "plain"),
        ("15550000003", "=cmd|' /C calc'!A0", "\tTab=1+1"),
        ("15550000004", "+44 20 7946", "-1+2"),
        ("15550000005", "@SUM(A1:A9)", "\r=HYPERLINK(\"x\")"),
        ("15550000006", "Zoë 👍", "¿Tienen clases? 日本語"),
    ];
    leads_from(&app, &people).await;
    sql::execute(
        app.backend,
        &app.database_url(),
        "INSERT INTO lead_tags (lead_id, tag) SELECT id, 'vip' FROM leads WHERE phone_number = '15550000001';\
         INSERT INTO lead_tags (lead_id, tag) SELECT id, 'evening' FROM leads WHERE phone_number = '15550000001';",
    );
    let (headers, body) = export(&app, "format=csv").await;
    assert_eq!(
        header(&headers, "content-type"),
        "text/csv; charset=utf-8; header=present"
    );
    let disposition = header(&headers, "content-disposition");
    assert!(
        disposition.starts_with("attachment; filename=\"leads-") && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    assert!(body.starts_with(&format!("{BOM}{HEADER}\r\n")), "{body}");
    assert!(body.ends_with("\r\n"));
    // RFC 4180 in the raw bytes: quoted when needed, quotes doubled,
    // newlines kept inside the quotes.
    assert!(body.contains(",\"Smith, John\","), "{body}");
    assert!(body.contains(",\"Ann \"\"Nan\"\" Lee\","), "{body}");
    assert!(body.contains(",\"line one\nline two\","), "{body}");

    let rows = records(&body);
    assert_eq!(rows.len(), people.len());
    let by_phone = |phone: &str| {
        rows.iter()
            .find(|r| r["phone_number"] == phone)
            .unwrap_or_else(|| panic!("no row for {phone}"))
    };
    let expected = [
        ("15550000001", "Smith, John", "line one\nline two"),
        ("15550000002", "Ann \"Nan\" Lee", "plain"),
        ("15550000003", "'=cmd|' /C calc'!A0", "'\tTab=1+1"),
        ("15550000004", "'+44 20 7946", "'-1+2"),
        ("15550000005", "'@SUM(A1:A9)", "'\r=HYPERLINK(\"x\")"),
        ("15550000006", "Zoë 👍", "¿Tienen clases? 日本語"),
    ];
    for (phone, name, message) in expected {
        let row = by_phone(phone);
        assert_eq!(row["sender_name"], name, "{phone}");
        assert_eq!(row["first_message"], message, "{phone}");
        assert_eq!(row["last_message"], message, "{phone}");
    }
    let first = by_phone("15550000001");
    assert_eq!(first["tags"], "evening, vip");
    // NULL is an empty cell; times are RFC 3339 UTC; booleans true/false.
    assert_eq!(first["username"], "");
    assert_eq!(first["converted_at"], "");
    assert_eq!(first["student_id"], "");
    assert_eq!(first["is_active"], "true");
    assert_eq!(first["message_count"], "1");
    assert!(chrono::DateTime::parse_from_rfc3339(&first["created_at"]).is_ok());
    assert_eq!(first["first_message_time"], "2025-11-13T02:13:20Z");
    // Newest activity first, as in the list.
    let phones: Vec<&str> = rows.iter().map(|r| r["phone_number"].as_str()).collect();
    assert_eq!(phones[0], "15550000006");
    assert_eq!(phones[5], "15550000001");
}

async fn ndjson_is_the_list_plus_tags(app: TestApp) {
    leads_from(
        &app,
        &[
            ("15550000011", "Ada", "hello"),
            ("15550000012", "Grace", "hi"),
            ("15550000013", "Linus", "hey"),
        ],
    )
    .await;
    let list = app.leads().await;
    let id = list[0]["id"].as_i64().expect("id");
    convert(&app, id).await;
    let list = app.leads().await;
    let (headers, body) = export(&app, "format=ndjson").await;
    assert_eq!(header(&headers, "content-type"), "application/x-ndjson");
    assert!(header(&headers, "content-disposition").ends_with(".ndjson\""));
    assert!(body.ends_with('\n'));
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON lead per line"))
        .collect();
    assert_eq!(lines.len(), list.len());
    // The list's items carry their tags too: each line is exactly one item.
    for (line, lead) in lines.iter().zip(&list) {
        assert_eq!(line["tags"], serde_json::json!([]));
        assert_eq!(line, lead);
    }
}

async fn export_takes_the_list_filters(app: TestApp) {
    leads_from(
        &app,
        &[
            ("15550000021", "Ada", "evening classes?"),
            ("15550000022", "Grace", "morning classes?"),
            ("15550000023", "Linus", "prices?"),
            ("15550000024", "Ada Byron", "hello"),
        ],
    )
    .await;
    let list = app.leads().await;
    let ids: Vec<i64> = list.iter().filter_map(|l| l["id"].as_i64()).collect();
    convert(&app, ids[1]).await;
    json_with_status(
        app.admin_delete(&format!("/api/admin/leads/{}", ids[2]))
            .await,
        200,
    )
    .await;
    for filter in [
        "",
        "converted=true",
        "converted=false",
        "active=false",
        "active=true&converted=false",
        "q=ada",
        "q=classes",
        "q=nobody",
        "status=new",
        "status=converted,lost",
        "source=organic",
        "source=ad",
        &format!("business_number={}", crate::payloads::BUSINESS_NUMBER_ID),
    ] {
        let listed: Vec<i64> = app
            .admin_json(&format!("/api/admin/leads?limit=500&{filter}"))
            .await["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|l| l["id"].as_i64())
            .collect();
        let (_, body) = export(&app, &format!("format=csv&{filter}")).await;
        let exported: Vec<i64> = records(&body)
            .iter()
            .map(|r| r["id"].parse().expect("id"))
            .collect();
        assert_eq!(exported, listed, "filter {filter:?}");
        let (_, body) = export(&app, &format!("format=ndjson&{filter}")).await;
        assert_eq!(body.lines().count(), listed.len(), "filter {filter:?}");
    }
    // csv is the default format.
    let (_, body) = export(&app, "").await;
    assert!(body.starts_with(BOM));
}

async fn bad_parameters_are_named(app: TestApp) {
    let long = "x".repeat(201);
    for (query, parameter) in [
        ("format=xlsx", "format"),
        ("format=", "format"),
        ("converted=maybe", "converted"),
        ("active=1", "active"),
        (&format!("q={long}") as &str, "q"),
    ] {
        let body = json_with_status(
            app.admin_get(&format!("/api/admin/leads/export?{query}"))
                .await,
            400,
        )
        .await;
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.starts_with(parameter), "{query}: {error}");
    }
    assert_eq!(app.get("/api/admin/leads/export").await.status(), 401);
}

on_both_databases!(
    csv_quotes_cells_and_neutralises_formulas,
    ndjson_is_the_list_plus_tags,
    export_takes_the_list_filters,
    bad_parameters_are_named,
);

/// Resident and peak resident memory of a process, in bytes.
fn memory_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

const BIG: u64 = 100_000;
const MIB: u64 = 1024 * 1024;
/// The export server's pooled connections; each has a page cache of its own.
const POOL_SIZE: u64 = 2;
/// The page cache of each SQLite connection (`cache_size` in `src/db/mod.rs`).
const PAGE_CACHE: u64 = 32 * MIB;

/// 100,000 leads of about 3 KB each go out as a CSV of over 250 MiB while
/// the server's peak resident memory grows by a fixed amount well under
/// that; every lead comes once, in list order, across the 100 chunks.
async fn streams_100k_leads_in_bounded_memory(backend: Backend) {
    let Some(db) = TestDb::create(backend) else {
        eprintln!("skipped: PostgreSQL not configured");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut vars = SECRETS.to_vec();
    let pool_size = POOL_SIZE.to_string();
    vars.push(("DATABASE_POOL_SIZE", &pool_size));
    let server = Server::start(dir.path(), db.url(), &vars, "export").await;
    // Commas and quotes in every message: each row needs quoting.
    let filler = "evening classes, \"weekend\" too? ".repeat(45);
    sql::insert_leads(
        backend,
        &db.url(),
        BIG,
        &format!("'Lead ' || i || ': {filler}'"),
    );
    let first = server.admin_json("/api/admin/leads?limit=1").await;
    assert_eq!(first["total"], BIG);
    // A search waits for SQLite's search index to take in the new leads, so
    // that what its thread reads and caches meanwhile is not counted as the
    // export's.
    server.admin_json("/api/admin/leads?limit=1&q=Lead").await;

    let (rss_before, peak_before) = memory_of(server.pid());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .expect("client");
    let mut response = client
        .get(format!("{}/api/admin/leads/export?format=csv", server.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("export request");
    assert_eq!(response.status(), 200);
    let mut bytes = 0u64;
    let mut rss_max = rss_before;
    let mut next_sample = 0u64;
    // Rows hold no newlines: each line is the header or one lead, whose id
    // is the first cell.
    let mut line = Vec::new();
    let mut lines = 0u64;
    let mut expected_id = BIG;
    while let Some(piece) = response.chunk().await.expect("export chunk") {
        bytes += piece.len() as u64;
        if bytes >= next_sample {
            rss_max = rss_max.max(memory_of(server.pid()).0);
            next_sample = bytes + 4 * MIB;
        }
        for &b in piece.iter() {
            if b != b'\n' {
                line.push(b);
                continue;
            }
            if lines > 0 {
                let id: u64 = std::str::from_utf8(&line)
                    .ok()
                    .and_then(|l| l.split(',').next())
                    .and_then(|id| id.parse().ok())
                    .unwrap_or_else(|| panic!("line {lines} does not start with an id"));
                assert_eq!(id, expected_id, "line {lines}");
                expected_id -= 1;
            }
            lines += 1;
            line.clear();
        }
    }
    let (_, peak_after) = memory_of(server.pid());
    assert_eq!(lines, BIG + 1, "header and every lead");
    assert_eq!(expected_id, 0);
    assert!(line.is_empty(), "the last line is complete");
    let growth = peak_after
        .saturating_sub(peak_before)
        .max(rss_max - rss_before);
    eprintln!(
        "{backend:?}: exported {} MiB; server RSS {} MiB before, peak {} MiB after, growth {} MiB",
        bytes / MIB,
        rss_before / MIB,
        peak_after / MIB,
        growth / MIB
    );
    assert!(bytes > 250 * MIB, "{bytes} bytes");
    // What may grow is fixed, not proportional to the export: the page cache
    // of every pooled connection (the chunks go to whichever is free, and
    // the checkpointer borrows one too) plus a chunk in flight and the
    // allocator's slack. A server that held the export would grow by more
    // than 250 MiB.
    let bound = POOL_SIZE * PAGE_CACHE + 32 * MIB;
    assert!(
        growth < bound,
        "resident memory grew by {} MiB during an export of {} MiB (bound {} MiB)",
        growth / MIB,
        bytes / MIB,
        bound / MIB
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_100k_leads_in_bounded_memory_sqlite() {
    streams_100k_leads_in_bounded_memory(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_100k_leads_in_bounded_memory_postgres() {
    streams_100k_leads_in_bounded_memory(Backend::Postgres).await;
}

/// PostgreSQL goes away in the middle of an export: the response, already
/// `200`, breaks off without the end of the chunked transfer, so the client
/// gets an error rather than a short file that looks complete. Before the
/// first row, the same outage is a plain `503`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_failure_mid_export_truncates_the_response() {
    let Some(proxy) = Proxy::to_test_postgres().await else {
        eprintln!("skipped: PostgreSQL not configured");
        return;
    };
    let db = TestDb::create(Backend::Postgres).expect("a PostgreSQL test database");
    let direct = db.url();
    let app = TestApp::spawn_on(
        db,
        &proxy.route(&direct),
        &[("DATABASE_TIMEOUT_MS", "1000")],
    )
    .await;
    // 20 chunks of about 3 MB: more than the socket buffers hold.
    let filler = "x".repeat(3000);
    sql::insert_leads(Backend::Postgres, &direct, 20_000, &format!("'{filler}'"));

    let mut response = app.admin_get("/api/admin/leads/export?format=csv").await;
    assert_eq!(response.status(), 200);
    let first = response
        .chunk()
        .await
        .expect("first piece")
        .expect("some bytes");
    assert!(first.starts_with(BOM.as_bytes()));
    proxy.cut().await;
    let mut received = first.len();
    let ended = loop {
        match response.chunk().await {
            Ok(Some(piece)) => received += piece.len(),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert!(
        ended.is_err(),
        "the export ended cleanly after {received} bytes with the database gone"
    );
    assert!(received < 20_000 * 3000, "{received} bytes");

    let body = json_with_status(app.admin_get("/api/admin/leads/export").await, 503).await;
    assert!(body["error"].is_string(), "{body}");
    proxy.restore().await;
}
