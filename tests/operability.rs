//! /openapi.json covers every route; /metrics reports exports, queues and faults.

mod common;

use common::*;
use serde_json::json;

/// (path, method) of every route registered in src/http, read from the source.
fn registered_routes() -> Vec<(String, String)> {
    let re = regex::Regex::new(r#"(?s)(?:route|resource)\(\s*"([^"]+)""#).unwrap();
    let method_re = regex::Regex::new(r"web::(get|post|put|patch|delete)\(\)").unwrap();
    let tail_re = regex::Regex::new(r"\{(\w+):[^}]+\}").unwrap();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("src/http").unwrap() {
        let path = entry.unwrap().path();
        let src = std::fs::read_to_string(&path).unwrap();
        let starts: Vec<(usize, String)> = re
            .captures_iter(&src)
            .map(|c| (c.get(0).unwrap().start(), c[1].to_string()))
            .collect();
        for (i, (start, route)) in starts.iter().enumerate() {
            // the methods between this registration and the next
            let end = starts.get(i + 1).map_or(src.len(), |n| n.0);
            let route = tail_re.replace_all(route, "{$1}").to_string();
            for m in method_re.captures_iter(&src[*start..end]) {
                out.push((route.clone(), m[1].to_string()));
            }
        }
    }
    assert!(
        out.len() > 30,
        "the source scan found too few routes: {out:?}"
    );
    out
}

#[actix_web::test]
async fn openapi_lists_every_registered_route_and_nothing_else() {
    let app = app().await;
    let (s, doc) = call(&app.svc, "GET", "/openapi.json", None, None).await;
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    let routes = registered_routes();
    for (path, method) in &routes {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is missing from /openapi.json"
        );
    }
    // and every documented route exists
    let paths = doc["paths"].as_object().unwrap();
    let documented: usize = paths.values().map(|v| v.as_object().unwrap().len()).sum();
    assert_eq!(
        documented,
        routes.len(),
        "documented routes that are not registered"
    );
}

#[actix_web::test]
async fn metrics_count_exports_queues_and_faults() {
    let app = app().await;
    let tok = org_with_admin(&app.svc, "acme").await;
    call(
        &app.svc,
        "POST",
        "/acme/v2/objects",
        Some(&tok),
        Some(json!({"name": "c_x", "properties": [{"name": "c_n", "type": "Number"}]})),
    )
    .await;
    call(
        &app.svc,
        "POST",
        "/acme/v2/c_xs",
        Some(&tok),
        Some(json!({"c_n": 1})),
    )
    .await;
    let before = metrics(&app.svc).await;
    let (_, v) = call(
        &app.svc,
        "POST",
        "/acme/v2/exports",
        Some(&tok),
        Some(json!({"label": "m", "objects": "c_xs"})),
    )
    .await;
    wait_ready(&app.svc, &tok, "acme", v["_id"].as_str().unwrap()).await;
    call(&app.svc, "GET", "/acme/v2/nope/a/b/c", Some(&tok), None).await;
    let after = metrics(&app.svc).await;
    let value = |text: &str, name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .map_or(0.0, |l| l.rsplit(' ').next().unwrap().parse().unwrap())
    };
    assert!(after.contains("# TYPE exportd_exports_ready_total counter"));
    // metrics are process-wide, and tests run side by side: compare before and after
    assert!(
        value(&after, "exportd_exports_ready_total")
            >= value(&before, "exportd_exports_ready_total") + 1.0
    );
    assert!(
        value(&after, "exportd_documents_exported_total")
            >= value(&before, "exportd_documents_exported_total") + 1.0
    );
    assert!(
        value(
            &after,
            "exportd_faults_total{err_code=\"cortex.notFound.route\"}"
        ) >= 1.0,
        "{after}"
    );
    assert!(after.contains("exportd_export_duration_seconds_count"));
    assert!(after.contains("exportd_exports_running"));

    // a cancel counts whether the export was running or still waiting in its queue: the
    // second of two exports of 5,000 documents is cancelled while the first one runs
    let lines: Vec<_> = (0..5000).map(|n| json!({"c_n": n})).collect();
    bulk(&app.svc, &tok, "/acme/v2/c_xs", &lines).await;
    let before = metrics(&app.svc).await;
    let mut ids = Vec::new();
    for label in ["first", "second"] {
        let (s, v) = call(
            &app.svc,
            "POST",
            "/acme/v2/exports",
            Some(&tok),
            Some(json!({"label": label, "objects": "c_xs"})),
        )
        .await;
        assert_eq!(s, 201, "{v}");
        ids.push(v["_id"].as_str().unwrap().to_string());
    }
    let (s, v) = call(
        &app.svc,
        "POST",
        &format!("/acme/v2/exports/{}/cancel", ids[1]),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    wait_ready(&app.svc, &tok, "acme", &ids[0]).await;
    let after = metrics(&app.svc).await;
    assert!(
        value(&after, "exportd_exports_cancelled_total")
            >= value(&before, "exportd_exports_cancelled_total") + 1.0,
        "{after}"
    );
}

async fn metrics<S: TestService>(svc: &S) -> String {
    let (s, body) = raw_bytes(svc, actix_web::test::TestRequest::get().uri("/metrics")).await;
    assert_eq!(s, 200);
    String::from_utf8(body).unwrap()
}
