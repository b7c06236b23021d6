//! Finding leads: every filter and sort of the list, `q` over notes, and
//! keyset paging in every sort, also while webhooks keep arriving; a search
//! finds what was answered before it, and SQLite's search index is rebuilt
//! when lost.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::helpers::{json_with_status, Backend, TestApp};
use crate::payloads::{text_from, webhook, Msg, Sender, T0};
use crate::sql;
use crate::staff::{expect_every_offset, ids_of, leads_from, listed_ids, note, patched};

async fn filters_by_status_priority_tag_and_assignee(app: TestApp) {
    let l = leads_from(
        &app,
        &["15556660001", "15556660002", "15556660003", "15556660004"],
    )
    .await;
    patched(&app, l[0], &json!({"status": "contacted", "priority": "high", "tags": ["vip"], "assigned_to": "alice"})).await;
    patched(
        &app,
        l[1],
        &json!({"status": "qualified", "tags": ["vip", "webinar"], "assigned_to": "bob"}),
    )
    .await;
    patched(&app, l[2], &json!({"status": "lost", "priority": "low"})).await;

    assert_eq!(listed_ids(&app, "status=contacted").await, [l[0]]);
    assert_eq!(
        listed_ids(&app, "status=contacted,qualified").await,
        [l[1], l[0]]
    );
    assert_eq!(listed_ids(&app, "status=new").await, [l[3]]);
    assert_eq!(listed_ids(&app, "priority=medium").await, [l[3], l[1]]);
    assert_eq!(listed_ids(&app, "priority=high,low").await, [l[2], l[0]]);
    assert_eq!(listed_ids(&app, "tag=vip").await, [l[1], l[0]]);
    assert_eq!(
        listed_ids(&app, "tag=%20VIP%20").await,
        [l[1], l[0]],
        "tags are normalised"
    );
    assert_eq!(
        listed_ids(&app, "tag=webinar&status=qualified").await,
        [l[1]]
    );
    assert_eq!(listed_ids(&app, "tag=nobody").await, Vec::<i64>::new());
    assert_eq!(listed_ids(&app, "assigned_to=alice").await, [l[0]]);
    assert_eq!(listed_ids(&app, "assigned=true").await, [l[1], l[0]]);
    assert_eq!(listed_ids(&app, "assigned=false").await, [l[3], l[2]]);
    assert_eq!(
        listed_ids(&app, "status=lost&active=true&converted=false").await,
        [l[2]]
    );
}

async fn filters_by_time_ranges_and_due_follow_ups(app: TestApp) {
    let l = leads_from(&app, &["15556660011", "15556660012", "15556660013"]).await;
    let created: Vec<String> = {
        let mut all = Vec::new();
        for id in &l {
            let lead = app.admin_json(&format!("/api/admin/leads/{id}")).await["lead"].clone();
            all.push(lead["created_at"].as_str().unwrap().to_string());
        }
        all
    };
    assert_eq!(
        listed_ids(&app, &format!("created_after={}", created[1])).await,
        [l[2], l[1]]
    );
    assert_eq!(
        listed_ids(&app, &format!("created_before={}", created[1])).await,
        [l[0]]
    );
    assert_eq!(
        listed_ids(
            &app,
            &format!("created_after={}&created_before={}", created[1], created[2])
        )
        .await,
        [l[1]]
    );
    // Last activity follows WhatsApp's timestamps: T0, T0 + 1, T0 + 2.
    let at = |offset: i64| {
        chrono::DateTime::from_timestamp(T0 + offset, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    assert_eq!(
        listed_ids(&app, &format!("last_activity_after={}", at(1))).await,
        [l[2], l[1]]
    );
    assert_eq!(
        listed_ids(&app, &format!("last_activity_before={}", at(1))).await,
        [l[0]]
    );
    // An offset in the query: `+` encoded, or left raw (arrives as a space).
    let day = chrono::DateTime::from_timestamp(T0, 0)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    assert_eq!(
        listed_ids(&app, &format!("last_activity_after={day}T00:00:00%2B00:00"))
            .await
            .len(),
        3
    );
    assert_eq!(
        listed_ids(&app, &format!("last_activity_after={day}T00:00:00+00:00"))
            .await
            .len(),
        3
    );
    assert_eq!(
        listed_ids(&app, &format!("last_activity_after={day}"))
            .await
            .len(),
        3
    );
    assert_eq!(listed_ids(&app, "created_before=2000-01-01").await.len(), 0);

    patched(
        &app,
        l[0],
        &json!({"next_follow_up_at": "2020-01-01T09:00:00Z"}),
    )
    .await;
    patched(
        &app,
        l[1],
        &json!({"next_follow_up_at": "2100-01-01T09:00:00Z"}),
    )
    .await;
    assert_eq!(listed_ids(&app, "follow_up_due=true").await, [l[0]]);
    assert_eq!(listed_ids(&app, "follow_up_due=false").await, [l[2], l[1]]);
}

async fn sorts_by_created_message_count_value_and_score(app: TestApp) {
    let l = leads_from(
        &app,
        &["15556660021", "15556660022", "15556660023", "15556660024"],
    )
    .await;
    // Later WhatsApp activity for the first lead, and more messages.
    for i in 0..3 {
        let body = text_from(
            "15556660021",
            &format!("wamid.more{i}"),
            T0 + 100 + i,
            "more",
        );
        assert_eq!(app.post_webhook(&body).await.status(), 200);
    }
    let body = text_from("15556660023", "wamid.more-c", T0 + 50, "more");
    assert_eq!(app.post_webhook(&body).await.status(), 200);
    patched(
        &app,
        l[1],
        &json!({"value": {"amount_minor": 500, "currency": "EUR"}}),
    )
    .await;
    patched(
        &app,
        l[2],
        &json!({"value": {"amount_minor": 90000, "currency": "USD"}}),
    )
    .await;
    patched(
        &app,
        l[3],
        &json!({"value": {"amount_minor": 500, "currency": "GBP"}}),
    )
    .await;

    assert_eq!(listed_ids(&app, "").await, [l[0], l[2], l[3], l[1]]);
    assert_eq!(
        listed_ids(&app, "sort=last_activity").await,
        [l[0], l[2], l[3], l[1]]
    );
    assert_eq!(
        listed_ids(&app, "sort=created").await,
        [l[3], l[2], l[1], l[0]]
    );
    assert_eq!(
        listed_ids(&app, "sort=message_count").await,
        [l[0], l[2], l[3], l[1]]
    );
    // Equal values: newest id first; leads without a value last.
    assert_eq!(
        listed_ids(&app, "sort=value").await,
        [l[2], l[3], l[1], l[0]]
    );
    // Scores (README formula): four messages in a live conversation 26, two
    // 18, one 4 each; equal scores newest id first.
    assert_eq!(
        listed_ids(&app, "sort=score").await,
        [l[0], l[2], l[3], l[1]]
    );
    let scores: Vec<i64> = app
        .leads()
        .await
        .iter()
        .map(|lead| lead["score"].as_i64().expect("score"))
        .collect();
    assert_eq!(scores.iter().sum::<i64>(), 26 + 18 + 4 + 4, "{scores:?}");
    assert_eq!(
        listed_ids(&app, "sort=value&tag=none").await,
        Vec::<i64>::new()
    );
}

/// Walks the whole list with `limit` per page through `next_cursor`.
async fn walk(app: &TestApp, query: &str, limit: usize) -> Vec<i64> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/admin/leads?limit={limit}&{query}&cursor={c}"),
            None => format!("/api/admin/leads?limit={limit}&{query}"),
        };
        let page = app.admin_json(&path).await;
        seen.extend(ids_of(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return seen,
        }
    }
}

async fn every_sort_pages_with_its_own_cursor(app: TestApp) {
    let phones: Vec<String> = (0..9).map(|i| format!("155566600{i:02}")).collect();
    let phones: Vec<&str> = phones.iter().map(String::as_str).collect();
    let l = leads_from(&app, &phones).await;
    // Ties on every key, and leads without a value.
    for (i, id) in l.iter().enumerate().take(6) {
        let amount = [700, 700, 100, 700, 0, 100][i];
        patched(
            &app,
            *id,
            &json!({"value": {"amount_minor": amount, "currency": "EUR"}}),
        )
        .await;
    }
    for sort in [
        "last_activity",
        "created",
        "message_count",
        "value",
        "score",
    ] {
        let all = listed_ids(&app, &format!("sort={sort}")).await;
        assert_eq!(all.len(), 9);
        for limit in [1, 2, 4] {
            assert_eq!(
                walk(&app, &format!("sort={sort}"), limit).await,
                all,
                "sort={sort} limit={limit}"
            );
        }
        assert_eq!(
            walk(&app, &format!("sort={sort}&priority=medium"), 2).await,
            all
        );
        // Filters that match most leads: on SQLite a small page walks the
        // sort's index and tests them (`walk_filters`), a large one does not.
        let number = crate::payloads::BUSINESS_NUMBER_ID;
        for limit in [1, 50] {
            assert_eq!(
                walk(
                    &app,
                    &format!("sort={sort}&status=new&business_number={number}"),
                    limit
                )
                .await,
                all,
                "sort={sort} limit={limit}"
            );
        }
        // A page at any offset is the same slice of the list, whether read
        // from the front or, in the back half, from the end; past the end
        // it is empty. Counted by the running totals, and by a filter.
        for filter in ["", "&priority=medium"] {
            let query = format!("sort={sort}{filter}");
            assert_eq!(expect_every_offset(&app, &query).await, all, "{query}");
        }
    }
    let values = listed_ids(&app, "sort=value").await;
    assert_eq!(
        values,
        [l[3], l[1], l[0], l[5], l[2], l[4], l[8], l[7], l[6]]
    );

    // A cursor belongs to its sort.
    let page = app.admin_json("/api/admin/leads?limit=2&sort=value").await;
    let cursor = page["next_cursor"].as_str().unwrap();
    for query in [
        format!("cursor={cursor}"),
        format!("cursor={cursor}&sort=created"),
    ] {
        let answer = json_with_status(
            app.admin_get(&format!("/api/admin/leads?{query}")).await,
            400,
        )
        .await;
        let error = answer["error"].as_str().unwrap();
        assert!(
            error.contains("cursor") && error.contains("sort=value"),
            "{error}"
        );
    }
}

/// A page at an offset into the whole list, in activity order or by
/// creation, starts at the day the offset lands in, from per-day counts
/// that triggers keep (`lead_activity_days`, `lead_created_days`). Every
/// offset must give the same slice of the list read in one piece, also
/// after leads move to another day, leave the list or all go at once.
async fn every_offset_lands_on_its_slice_through_every_change(app: TestApp) {
    const DAY: i64 = 86_400;
    // Midnight UTC, so that leads sit on both sides of a day's boundary.
    let midnight = T0 - T0 % DAY;
    let expect_leads = |count: usize| {
        let app = &app;
        async move {
            for query in ["", "sort=created"] {
                let all = expect_every_offset(app, query).await;
                assert_eq!(all.len(), count, "{query}");
            }
        }
    };
    let send = |phone: String, id: String, at: i64| {
        let app = &app;
        async move {
            let body = text_from(&phone, &id, at, "hello");
            assert_eq!(app.post_webhook(&body).await.status(), 200);
            app.lead_id(&phone).await
        }
    };
    // Fourteen leads over four days, three or four a day, the last of a day
    // a second before midnight and the first of the next at midnight.
    let mut ids = Vec::new();
    for i in 0..14i64 {
        let at = midnight + (i / 4) * DAY + [-1, 0, 3_600, 80_000][i as usize % 4];
        ids.push(send(format!("155567700{i:02}"), format!("wamid.AD{i}"), at).await);
    }
    expect_leads(14).await;

    // New messages move two leads to the latest day and one to a day of
    // its own, later still.
    send(
        "15556770001".into(),
        "wamid.AD-m1".into(),
        midnight + 3 * DAY + 7,
    )
    .await;
    send(
        "15556770005".into(),
        "wamid.AD-m2".into(),
        midnight + 3 * DAY + 9,
    )
    .await;
    send(
        "15556770002".into(),
        "wamid.AD-m3".into(),
        midnight + 5 * DAY,
    )
    .await;
    expect_leads(14).await;

    // A lead deleted through the API, one in SQL (as a merge does); two
    // leads written in SQL (as an import would), created on days before and
    // after today; and times changed in SQL: one lead's latest message, and
    // the creation of eight leads (all created today, through webhooks) to
    // days before and after today, on both sides of midnight.
    let path = format!("/api/admin/leads/{}?hard=true", ids[9]);
    json_with_status(app.admin_delete(&path).await, 200).await;
    let moved_back = "'2025-01-02 03:04:05'";
    let created: String = [
        "2030-03-02 00:00:00",
        "2030-03-01 23:59:59",
        "2030-03-01 00:00:00",
        "2030-03-02 00:00:00",
        "2025-03-02 00:00:00",
        "2025-03-01 23:59:59",
        "2025-03-01 00:00:00",
        "2025-03-03 12:00:00",
    ]
    .iter()
    .zip(&ids[1..9])
    .map(|(at, id)| format!("UPDATE leads SET created_at = '{at}' WHERE id = {id};"))
    .collect();
    sql::execute(
        app.backend,
        &app.database_url(),
        &format!(
            "DELETE FROM leads WHERE id = {};
             INSERT INTO leads (phone_number, first_message, first_message_time,
                                last_message, last_message_time, created_at, updated_at)
             VALUES ('15556779901', 'hi', '2025-03-05 10:00:00', 'hi',
                     '2025-03-05 10:00:00', '2025-03-05 10:00:00', '2025-03-05 10:00:00'),
                    ('15556779902', 'hi', '2030-03-05 10:00:00', 'hi',
                     '2030-03-05 10:00:00', '2030-03-05 10:00:00', '2030-03-05 10:00:00');
             UPDATE leads SET last_message_time = {moved_back} WHERE id = {};
             {created}",
            ids[0], ids[13]
        ),
    );
    expect_leads(14).await;

    let reset = json!({"confirm": "delete all leads"});
    json_with_status(app.admin_post("/api/admin/reset", &reset).await, 200).await;
    expect_leads(0).await;
    for i in 0..3i64 {
        send(
            format!("155567701{i:02}"),
            format!("wamid.AD-r{i}"),
            midnight + i * DAY,
        )
        .await;
    }
    expect_leads(3).await;
}

async fn bad_filter_parameters_are_400_naming_the_parameter(app: TestApp) {
    for (query, expected) in [
        (
            "status=won",
            "status must be one of new, contacted, qualified, converted, lost",
        ),
        ("status=new,", "status must be one of"),
        (
            "priority=urgent",
            "priority must be one of low, medium, high",
        ),
        (
            "sort=name",
            "sort must be one of last_activity, created, message_count, value, score",
        ),
        ("tag=a,b", "tag:"),
        ("assigned_to=", "assigned_to"),
        ("assigned=maybe", "assigned must be true or false"),
        ("follow_up_due=1", "follow_up_due must be true or false"),
        (
            "created_after=yesterday",
            "created_after must be an RFC 3339 time",
        ),
        ("created_before=2026-13-01", "created_before"),
        ("last_activity_after=1763000000", "last_activity_after"),
        ("last_activity_before=x", "last_activity_before"),
        ("cursor=1_1", "cursor"),
        ("cursor=created.1.1&skip=2&sort=created", "cursor"),
    ] {
        let answer = json_with_status(
            app.admin_get(&format!("/api/admin/leads?{query}")).await,
            400,
        )
        .await;
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(expected), "{query}: {error}");
    }
}

async fn q_searches_notes_too(app: TestApp) {
    let l = leads_from(&app, &["15556660031", "15556660032"]).await;
    let added = note(
        &app,
        l[1],
        &json!({"author": "alice", "body": "Prefers Saturday mornings"}),
    )
    .await;
    json_with_status(added, 201).await;
    for q in ["saturday", "SATURDAY%20MORN", "ur"] {
        let found = listed_ids(&app, &format!("q={q}")).await;
        assert!(found.contains(&l[1]), "q={q}: {found:?}");
        assert!(!found.contains(&l[0]), "q={q}: {found:?}");
    }
    // Message text still matches, next to notes.
    assert_eq!(listed_ids(&app, "q=hello").await, [l[1], l[0]]);
}

/// Pages through the list while another task keeps posting webhooks: new
/// leads, and new messages for half of the leads that existed at the start.
/// No lead is ever listed twice. In `created` order (a key that never
/// changes) every lead that existed at the start is listed; in activity
/// order, every one that got no new message meanwhile (one that did moved
/// ahead of the cursor, where this walk no longer looks).
async fn cursor_paging_while_webhooks_arrive(app: TestApp) {
    let phones: Vec<String> = (0..30).map(|i| format!("155577700{i:02}")).collect();
    let phones: Vec<&str> = phones.iter().map(String::as_str).collect();
    let start = leads_from(&app, &phones).await;
    let quiet: Vec<i64> = start.iter().copied().skip(1).step_by(2).collect();

    for sort in ["created", "last_activity", "message_count"] {
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            let client = app.endpoint();
            let sort = sort.to_string();
            tokio::spawn(async move {
                let mut n = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    let fresh = text_from(
                        &format!("1555888{:04}", n % 10_000),
                        &format!("wamid.{sort}.new{n}"),
                        T0 + 10_000 + n,
                        "new lead",
                    );
                    let again = text_from(
                        &format!("155577700{:02}", (n % 15) * 2),
                        &format!("wamid.{sort}.again{n}"),
                        T0 + 20_000 + n,
                        "again",
                    );
                    for body in [fresh, again] {
                        let bytes = serde_json::to_vec(&body).unwrap();
                        assert_eq!(
                            client.post_webhook(&bytes).await,
                            crate::helpers::PostOutcome::Answered(200)
                        );
                    }
                    n += 1;
                }
                n
            })
        };
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/admin/leads?limit=4&sort={sort}&cursor={c}"),
                None => format!("/api/admin/leads?limit=4&sort={sort}"),
            };
            let page = app.admin_json(&path).await;
            seen.extend(ids_of(&page));
            tokio::time::sleep(std::time::Duration::from_millis(15)).await;
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
        }
        stop.store(true, Ordering::Relaxed);
        let posted = writer.await.expect("webhook task");
        assert!(posted > 0, "webhooks arrived during the walk");

        let unique: HashSet<i64> = seen.iter().copied().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "sort={sort}: a lead was listed twice: {seen:?}"
        );
        let must_see: &[i64] = if sort == "created" { &start } else { &quiet };
        for id in must_see {
            assert!(
                unique.contains(id),
                "sort={sort}: lead {id} was skipped: {seen:?}"
            );
        }
    }
}

/// Each listed lead carries its tags, sorted.
async fn list_items_carry_their_tags(app: TestApp) {
    let l = leads_from(&app, &["15556660041", "15556660042"]).await;
    patched(&app, l[0], &json!({"tags": ["b", "a"]})).await;
    let page = app.admin_json("/api/admin/leads").await;
    let tags: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|lead| &lead["tags"])
        .collect();
    assert_eq!(tags, [&json!([]), &json!(["a", "b"])]);
}

async fn a_name_shared_by_many_leads_is_paged_in_order_with_an_exact_total(app: TestApp) {
    // 2,000 of 2,100 leads carry the name: at least 1 % of the leads and at
    // least 2,000, so the page walks the leads in activity order instead of
    // collecting every match first. The answer must not change with it.
    let senders: Vec<Sender> = (0..2_100)
        .map(|i| {
            let name = if i % 21 == 0 {
                format!("Grace {i}")
            } else {
                format!("Ada Lovelace {i}")
            };
            Sender::phone(&format!("1555888{i:04}")).named(&name)
        })
        .collect();
    let messages: Vec<Msg> = senders
        .iter()
        .enumerate()
        .map(|(i, sender)| Msg::text(sender, &format!("wamid.ADA{i}"), T0 + i as i64, "hello"))
        .collect();
    let reply = app.post_webhook(&webhook(&messages)).await;
    assert_eq!(reply.status(), 200);

    let first = app.admin_json("/api/admin/leads?q=LOVELACE&limit=50").await;
    assert_eq!(first["total"], 2_000, "{}", first["total"]);
    let phones = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|lead| lead["phone_number"].as_str().unwrap().to_string())
            .collect()
    };
    // Newest activity first: the highest sender numbers that carry the name.
    let expected: Vec<String> = (0..2_100)
        .rev()
        .filter(|i| i % 21 != 0)
        .map(|i| format!("1555888{i:04}"))
        .collect();
    assert_eq!(phones(&first), expected[..50]);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = app
        .admin_json(&format!(
            "/api/admin/leads?q=LOVELACE&limit=50&cursor={cursor}"
        ))
        .await;
    assert_eq!(phones(&second), expected[50..100]);
    let deep = app
        .admin_json("/api/admin/leads?q=lovelace&limit=10&skip=1990")
        .await;
    assert_eq!(phones(&deep), expected[1990..]);
    let rare = app.admin_json("/api/admin/leads?q=grace&limit=500").await;
    assert_eq!(rare["total"], 100);
}

/// A lead is found by the name it has now, not by one it had, and not at
/// all once it is deleted with its messages.
async fn a_lead_is_found_by_its_current_name_until_it_is_deleted(app: TestApp) {
    let before = Sender::phone("15557350001").named("Grace Hopper");
    let after = Sender::phone("15557350001").named("Grace Brewster");
    for msg in [
        Msg::text(&before, "wamid.RN1", T0, "hello"),
        Msg::text(&after, "wamid.RN2", T0 + 1, "hello again"),
    ] {
        assert_eq!(app.post_webhook(&webhook(&[msg])).await.status(), 200);
    }
    let id = app.lead_id("brewster").await;
    assert!(listed_ids(&app, "q=hopper").await.is_empty());
    let path = format!("/api/admin/leads/{id}?hard=true");
    json_with_status(app.admin_delete(&path).await, 200).await;
    assert!(listed_ids(&app, "q=brewster").await.is_empty());
    assert!(listed_ids(&app, "q=15557350001").await.is_empty());
}

/// `q` finds a message under the lead it belongs to now and by the text it
/// has now: after it moves to another lead (as in a merge), after a
/// student's message is given a lead, after its text changes, and not once
/// it is deleted. Also a word in most messages, whose page is found by
/// testing leads in activity order, each with a look-up of its messages
/// (the walk's sub-queries, which carry `OFFSET 0`). The changes are made in SQL,
/// as a merge or a reset makes them, to reach every path of PostgreSQL's
/// `message_search` triggers and SQLite's index notes.
async fn a_message_is_found_under_its_current_lead_and_text(app: TestApp) {
    // 2,200 leads, one message each; 2,094 about a course: a broad term
    // (in at least 2,000 leads and messages).
    let senders: Vec<Sender> = (0..2_200)
        .map(|i| Sender::phone(&format!("1555777{i:04}")))
        .collect();
    let messages: Vec<Msg> = senders
        .iter()
        .enumerate()
        .map(|(i, sender)| {
            let body = match i {
                7 => "the syllabus please",
                _ if i % 21 == 0 => "hello there",
                _ => "Which Course is this?",
            };
            Msg::text(sender, &format!("wamid.MV{i}"), T0 + i as i64, body)
        })
        .collect();
    assert_eq!(app.post_webhook(&webhook(&messages)).await.status(), 200);
    let id = |i: usize| {
        let app = &app;
        async move { app.lead_id(&format!("1555777{i:04}")).await }
    };
    let (lead3, lead7, lead9) = (id(3).await, id(7).await, id(9).await);

    let first = app.admin_json("/api/admin/leads?q=COURSE&limit=50").await;
    assert_eq!(first["total"], 2_094, "{}", first["total"]);
    let course: Vec<i64> = {
        let mut ids = Vec::new();
        for i in (0..2_200usize).rev().filter(|i| *i != 7 && i % 21 != 0) {
            if ids.len() == 50 {
                break;
            }
            ids.push(id(i).await);
        }
        ids
    };
    assert_eq!(ids_of(&first), course, "newest activity first");
    assert_eq!(listed_ids(&app, "q=syllabus").await, [lead7]);

    let sql = |statements: &str| sql::execute(app.backend, &app.database_url(), statements);
    sql(&format!(
        "UPDATE messages SET lead_id = {lead9} WHERE lead_id = {lead7};
         INSERT INTO messages (wamid, lead_id, message_type, body, wa_timestamp, received_at)
         VALUES ('wamid.MVstudent', NULL, 'text', 'a zebra crossing',
                 '2026-01-01 00:00:00', '2026-01-01 00:00:00');"
    ));
    assert_eq!(
        listed_ids(&app, "q=syllabus").await,
        [lead9],
        "moved to its new lead"
    );
    assert!(
        listed_ids(&app, "q=zebra").await.is_empty(),
        "a student's message"
    );

    sql(&format!(
        "UPDATE messages SET lead_id = {lead3} WHERE wamid = 'wamid.MVstudent';
         UPDATE messages SET body = 'the Reading List' WHERE wamid = 'wamid.MV7';"
    ));
    assert_eq!(listed_ids(&app, "q=zebra").await, [lead3], "given a lead");
    assert!(
        listed_ids(&app, "q=syllabus").await.is_empty(),
        "its old text"
    );
    assert_eq!(
        listed_ids(&app, "q=reading%20list").await,
        [lead9],
        "its new text"
    );

    sql(&format!(
        "DELETE FROM messages WHERE lead_id IN ({lead3}, {lead9});"
    ));
    assert!(listed_ids(&app, "q=reading").await.is_empty(), "deleted");
    assert!(listed_ids(&app, "q=zebra").await.is_empty(), "deleted");
    assert_eq!(
        app.admin_json("/api/admin/leads?q=course&limit=1").await["total"],
        2_092,
        "the leads 3 and 9 wrote about a course in their deleted messages"
    );
}

/// `q` with `active` and `converted`: while the inactive and the converted
/// leads are each at most a tenth of all leads, the count tests the search's
/// matches against them; beyond that the page counts its matches itself.
/// Either way the total and the items are exactly the matching leads.
async fn a_search_with_active_and_converted_counts_exactly(app: TestApp) {
    // 40 leads: every tenth wrote "bye", the rest about tuition.
    let mut leads = Vec::new();
    for i in 0..40_i64 {
        let phone = format!("15557340{i:03}");
        let text = if i % 10 == 9 {
            "bye"
        } else {
            "what are the tuition fees?"
        };
        let body = text_from(&phone, &format!("wamid.TF{i}"), T0 + i, text);
        assert_eq!(app.post_webhook(&body).await.status(), 200);
        leads.push(app.lead_id(&phone).await);
    }
    let mut inactive = HashSet::new();
    let mut converted = HashSet::new();
    // 3 of 40 on each side; leads 9 and 19 wrote "bye", which the search
    // must not count whatever their flags.
    for (deactivate, convert) in [(0, 1), (9, 19), (21, 22)] {
        deactivate_and_convert(&app, leads[deactivate], leads[convert]).await;
        inactive.insert(leads[deactivate]);
        converted.insert(leads[convert]);
    }
    expect_search_by_flags(&app, &leads, &inactive, &converted).await;
    // 10 of 40 on each side: more than a tenth.
    for (deactivate, convert) in (2..9).zip(10..17) {
        deactivate_and_convert(&app, leads[deactivate], leads[convert]).await;
        inactive.insert(leads[deactivate]);
        converted.insert(leads[convert]);
    }
    expect_search_by_flags(&app, &leads, &inactive, &converted).await;
}

async fn deactivate_and_convert(app: &TestApp, deactivate: i64, convert: i64) {
    let path = format!("/api/admin/leads/{deactivate}");
    json_with_status(app.admin_delete(&path).await, 200).await;
    let path = format!("/api/admin/leads/{convert}/convert");
    json_with_status(app.admin_post(&path, &json!({})).await, 200).await;
}

/// `q=tuition` under every combination of `active` and `converted` lists
/// exactly the matching leads (all but every tenth of `leads`), with a
/// total to match, also when the page holds fewer than the total.
async fn expect_search_by_flags(
    app: &TestApp,
    leads: &[i64],
    inactive: &HashSet<i64>,
    converted: &HashSet<i64>,
) {
    let flags = [None, Some(true), Some(false)];
    for active in flags {
        for is_converted in flags {
            let mut query = String::from("q=tuition");
            if let Some(a) = active {
                query.push_str(&format!("&active={a}"));
            }
            if let Some(c) = is_converted {
                query.push_str(&format!("&converted={c}"));
            }
            let expected: HashSet<i64> = leads
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 10 != 9)
                .map(|(_, id)| *id)
                .filter(|id| active.is_none_or(|a| a != inactive.contains(id)))
                .filter(|id| is_converted.is_none_or(|c| c == converted.contains(id)))
                .collect();
            let found: HashSet<i64> = listed_ids(app, &query).await.into_iter().collect();
            assert_eq!(found, expected, "{query}");
            let page = app
                .admin_json(&format!("/api/admin/leads?limit=2&{query}"))
                .await;
            assert_eq!(page["total"], expected.len(), "{query}, limit=2");
        }
    }
}

/// A search finds every message answered `200` before it began, and the lead
/// it created, while other webhooks keep arriving. (SQLite's search indexes
/// are kept by a thread beside the writer; a search waits for it to catch up.)
async fn a_search_finds_each_message_and_lead_answered_before_it(app: TestApp) {
    let app = &app;
    let others = async {
        for i in 0..300 {
            let body = text_from(
                &format!("1555771{i:04}"),
                &format!("wamid.F{i}"),
                T0 + i,
                "filler words",
            );
            assert_eq!(app.post_webhook(&body).await.status(), 200);
        }
    };
    let searched = async {
        for i in 0..40 {
            let phone = format!("1555772{i:04}");
            let word = format!("zq{i}kx");
            let body = text_from(
                &phone,
                &format!("wamid.S{i}"),
                T0 + i,
                &format!("about {word} please"),
            );
            assert_eq!(app.post_webhook(&body).await.status(), 200);
            let page = app.admin_json(&format!("/api/admin/leads?q={word}")).await;
            assert_eq!(page["total"], 1, "q={word}: {page}");
            assert_eq!(page["items"][0]["phone_number"], phone.as_str(), "q={word}");
            // The lead the message created, by its number alone.
            let page = app.admin_json(&format!("/api/admin/leads?q={phone}")).await;
            assert_eq!(page["total"], 1, "q={phone}: {page}");
            assert_eq!(
                page["items"][0]["phone_number"],
                phone.as_str(),
                "q={phone}"
            );
        }
    };
    tokio::join!(others, searched);
    let page = app.admin_json("/api/admin/leads?q=filler&limit=1").await;
    assert_eq!(page["total"], 300);
}

/// SQLite's search index is derived data in a file beside the database: when
/// it is lost, the server builds it again from the messages at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_sqlite_search_index_is_built_again_at_start() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("SQLite");
    for i in 0..3 {
        let body = text_from(
            &format!("155577300{i}"),
            &format!("wamid.L{i}"),
            T0 + i,
            "lost and found",
        );
        assert_eq!(app.post_webhook(&body).await.status(), 200);
    }
    assert_eq!(app.admin_json("/api/admin/leads?q=found").await["total"], 3);
    assert_eq!(
        app.admin_json("/api/admin/leads?q=1555773001").await["total"],
        1
    );
    let database = app.database_url();
    let index = format!("{database}-search");
    assert!(
        std::path::Path::new(&index).exists(),
        "the index lives in {index}"
    );
    let app = app
        .restart_after(|| {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{index}{suffix}"));
            }
        })
        .await;
    let page = app.admin_json("/api/admin/leads?q=found").await;
    assert_eq!(page["total"], 3, "{page}");
    let page = app.admin_json("/api/admin/leads?q=1555773001").await;
    assert_eq!(page["total"], 1, "the leads are indexed again too: {page}");
    let body = text_from("1555773009", "wamid.L9", T0 + 9, "found again");
    assert_eq!(app.post_webhook(&body).await.status(), 200);
    assert_eq!(app.admin_json("/api/admin/leads?q=found").await["total"], 4);
}

crate::on_both_databases!(
    a_search_finds_each_message_and_lead_answered_before_it,
    a_name_shared_by_many_leads_is_paged_in_order_with_an_exact_total,
    filters_by_status_priority_tag_and_assignee,
    filters_by_time_ranges_and_due_follow_ups,
    sorts_by_created_message_count_value_and_score,
    every_sort_pages_with_its_own_cursor,
    every_offset_lands_on_its_slice_through_every_change,
    bad_filter_parameters_are_400_naming_the_parameter,
    q_searches_notes_too,
    cursor_paging_while_webhooks_arrive,
    list_items_carry_their_tags,
    a_search_with_active_and_converted_counts_exactly,
    a_lead_is_found_by_its_current_name_until_it_is_deleted,
    a_message_is_found_under_its_current_lead_and_text,
);
