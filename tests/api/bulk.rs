//! Bulk edits: one change to many leads in one transaction, answered per id.

use serde_json::{json, Value};

use crate::helpers::{json_with_status, TestApp};
use crate::staff::{bulk, kinds, lead_by_id, leads_from, patched, timeline};

/// `(id, result)` pairs of a bulk answer.
fn verdicts(report: &Value) -> Vec<(i64, String)> {
    report["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["id"].as_i64().unwrap(),
                r["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn bulk_status_applies_to_existing_leads_and_reports_missing_ones(app: TestApp) {
    let ids = leads_from(&app, &["15554440001", "15554440002", "15554440003"]).await;
    patched(&app, ids[1], &json!({"status": "contacted"})).await;
    let missing = ids[2] + 1000;
    let body = json!({"ids": [ids[0], ids[1], missing, ids[0]], "status": "contacted"});
    let report = json_with_status(bulk(&app, &body, Some("dana")).await, 200).await;
    assert_eq!(
        verdicts(&report),
        [
            (ids[0], "updated".to_string()),
            (ids[1], "unchanged".to_string()),
            (missing, "not_found".to_string()),
        ]
    );
    assert_eq!(
        (
            &report["updated"],
            &report["unchanged"],
            &report["not_found"],
            &report["rejected"]
        ),
        (&json!(1), &json!(1), &json!(1), &json!(0))
    );
    assert_eq!(lead_by_id(&app, ids[0]).await["status"], "contacted");
    assert_eq!(
        lead_by_id(&app, ids[2]).await["status"],
        "new",
        "not in the call"
    );
    let last = timeline(&app, ids[0]).await.pop().unwrap();
    assert_eq!(last["kind"], "status_changed");
    assert_eq!(last["actor"], "dana");
    assert_eq!(
        last["detail"],
        json!({"from": "new", "to": "contacted", "bulk": true})
    );
}

async fn bulk_partial_failure_rejects_only_the_leads_whose_rules_refuse(app: TestApp) {
    let ids = leads_from(&app, &["15554440011", "15554440012", "15554440013"]).await;
    let converted = app
        .admin_post(&format!("/api/admin/leads/{}/convert", ids[1]), &json!({}))
        .await;
    json_with_status(converted, 200).await;
    // ids[2] already has 20 tags: one more would exceed the limit.
    let full: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
    patched(&app, ids[2], &json!({"tags": full})).await;
    let before: Vec<Value> =
        futures::future::join_all(ids.iter().map(|id| lead_by_id(&app, *id))).await;

    let body = json!({"ids": ids, "status": "lost", "add_tags": ["cold"]});
    let report = json_with_status(bulk(&app, &body, None).await, 200).await;
    let results = report["results"].as_array().unwrap();
    assert_eq!(results[0]["result"], "updated");
    assert_eq!(results[1]["result"], "rejected");
    assert!(
        results[1]["error"].as_str().unwrap().contains("converted"),
        "{report}"
    );
    assert_eq!(results[2]["result"], "rejected");
    assert!(
        results[2]["error"].as_str().unwrap().contains("at most 20"),
        "{report}"
    );
    assert!(results[0].get("error").is_none());

    let first = lead_by_id(&app, ids[0]).await;
    assert_eq!(
        (first["status"].as_str(), &first["tags"]),
        (Some("lost"), &json!(["cold"]))
    );
    // Never half-applied: the rejected leads kept their status and tags.
    assert_eq!(lead_by_id(&app, ids[1]).await, before[1]);
    assert_eq!(lead_by_id(&app, ids[2]).await, before[2]);
    assert_eq!(kinds(&app, ids[1]).await.last().unwrap(), "converted");
}

async fn bulk_tags_assignment_and_deactivation(app: TestApp) {
    let ids = leads_from(&app, &["15554440021", "15554440022"]).await;
    patched(&app, ids[0], &json!({"tags": ["cold", "webinar"]})).await;

    let body = json!({"ids": ids, "add_tags": ["VIP"], "remove_tags": ["cold"]});
    let report = json_with_status(bulk(&app, &body, None).await, 200).await;
    assert_eq!(report["updated"], 2);
    assert_eq!(
        lead_by_id(&app, ids[0]).await["tags"],
        json!(["vip", "webinar"])
    );
    assert_eq!(lead_by_id(&app, ids[1]).await["tags"], json!(["vip"]));

    let report = json_with_status(
        bulk(&app, &json!({"ids": ids, "assigned_to": "erin"}), None).await,
        200,
    )
    .await;
    assert_eq!(report["updated"], 2);
    let listed = app.admin_json("/api/admin/leads?assigned_to=erin").await;
    assert_eq!(listed["total"], 2);

    let report = json_with_status(
        bulk(&app, &json!({"ids": [ids[0]], "deactivate": true}), None).await,
        200,
    )
    .await;
    assert_eq!(report["updated"], 1);
    assert_eq!(lead_by_id(&app, ids[0]).await["is_active"], false);
    assert_eq!(app.stats().await["active_leads"], 1);
    assert_eq!(kinds(&app, ids[0]).await.last().unwrap(), "deactivated");
    // Deactivating again changes nothing.
    let report = json_with_status(
        bulk(&app, &json!({"ids": [ids[0]], "deactivate": true}), None).await,
        200,
    )
    .await;
    assert_eq!(verdicts(&report), [(ids[0], "unchanged".to_string())]);
}

async fn bad_bulk_requests_are_422_and_change_nothing(app: TestApp) {
    let ids = leads_from(&app, &["15554440031"]).await;
    let before = lead_by_id(&app, ids[0]).await;
    let too_many: Vec<i64> = (1..=501).collect();
    for (body, expected) in [
        (
            json!({"status": "lost"}),
            "ids must be an array of 1 to 500",
        ),
        (
            json!({"ids": [], "status": "lost"}),
            "ids must be an array of 1 to 500",
        ),
        (
            json!({"ids": too_many, "status": "lost"}),
            "ids must be an array of 1 to 500",
        ),
        (
            json!({"ids": [ids[0], "x"], "status": "lost"}),
            "positive whole numbers",
        ),
        (
            json!({"ids": [ids[0], 0], "status": "lost"}),
            "positive whole numbers",
        ),
        (json!({"ids": [ids[0]]}), "nothing to change"),
        (
            json!({"ids": [ids[0]], "status": "won"}),
            "status must be one of new, contacted",
        ),
        (
            json!({"ids": [ids[0]], "status": "lost", "notify": true}),
            "unknown field 'notify'",
        ),
        (
            json!({"ids": [ids[0]], "deactivate": false}),
            "deactivate must be true",
        ),
        (json!({"ids": [ids[0]], "status": "converted"}), "converted"),
    ] {
        let response = bulk(&app, &body, None).await;
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap();
        if expected == "converted" {
            // A valid request whose rule refuses the lead: answered per id.
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["results"][0]["result"], "rejected");
            continue;
        }
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(expected),
            "{body}: {answer}"
        );
    }
    assert_eq!(lead_by_id(&app, ids[0]).await, before);
    assert_eq!(kinds(&app, ids[0]).await, ["first_contact"]);
}

async fn five_hundred_ids_in_one_call(app: TestApp) {
    let ids = leads_from(&app, &["15554440041", "15554440042"]).await;
    // Real ids and ids that do not exist, 500 in all.
    let mut all: Vec<i64> = ids.clone();
    all.extend((1..=498).map(|i| 1_000_000 + i));
    let report = json_with_status(
        bulk(&app, &json!({"ids": all, "priority": "high"}), None).await,
        200,
    )
    .await;
    assert_eq!(
        (&report["updated"], &report["not_found"]),
        (&json!(2), &json!(498))
    );
    let high = app.admin_json("/api/admin/leads?priority=high").await;
    assert_eq!(high["total"], 2);
}

crate::on_both_databases!(
    bulk_status_applies_to_existing_leads_and_reports_missing_ones,
    bulk_partial_failure_rejects_only_the_leads_whose_rules_refuse,
    bulk_tags_assignment_and_deactivation,
    bad_bulk_requests_are_422_and_change_nothing,
    five_hundred_ids_in_one_call,
);
