//! The Export API and engine: formats byte for byte, the archive, FIFO per org, cancel,
//! delete, downloads, expiry, quota, access.

mod common;

use actix_web::test::TestRequest;
use common::*;
use serde_json::{Value, json};

async fn define<S: TestService>(svc: &S, tok: &str, org: &str, body: Value) {
    let (s, v) = call(
        svc,
        "POST",
        &format!("/{org}/v2/objects"),
        Some(tok),
        Some(body),
    )
    .await;
    assert_eq!(s, 201, "{v}");
}

fn item_def() -> Value {
    json!({"name": "c_item", "properties": [
        {"name": "c_name", "type": "String"},
        {"name": "c_n", "type": "Number"},
        {"name": "c_ok", "type": "Boolean"},
        {"name": "c_when", "type": "Date"},
        {"name": "c_ref", "type": "Reference", "sourceObject": "c_item"},
        {"name": "c_tags", "type": "String", "array": true},
        {"name": "c_doc", "type": "Document", "properties": [{"name": "c_x", "type": "String"}, {"name": "c_y", "type": "Number"}]},
        {"name": "c_rows", "type": "Document", "array": true, "properties": [{"name": "c_v", "type": "String"}]},
        {"name": "c_any", "type": "Any"},
        {"name": "c_secret", "type": "String", "optional": true}
    ]})
}

async fn create_export<S: TestService>(svc: &S, tok: &str, org: &str, body: Value) -> String {
    let (s, v) = call(
        svc,
        "POST",
        &format!("/{org}/v2/exports"),
        Some(tok),
        Some(body),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["state"], "pending");
    v["_id"].as_str().unwrap().to_string()
}

/// Runs an export to ready and returns (record, entry name, entry bytes).
async fn export_entry<S: TestService>(
    svc: &S,
    tok: &str,
    org: &str,
    body: Value,
) -> (Value, String, String) {
    let id = create_export(svc, tok, org, body).await;
    let rec = wait_ready(svc, tok, org, &id).await;
    assert_eq!(rec["state"], "ready", "{rec}");
    let (s, zip) = get_bytes(
        svc,
        tok,
        &format!("/{org}/v2/exports/{id}/dataFile/content"),
    )
    .await;
    assert_eq!(s, 200);
    let entries = unzip(&zip);
    assert_eq!(entries.len(), 1);
    let (name, bytes) = entries.into_iter().next().unwrap();
    (rec, name, String::from_utf8(bytes).unwrap())
}

#[actix_web::test]
async fn empty_exports_have_the_exact_empty_layouts() {
    let app = app().await;
    let tok = org_with_admin(&app.svc, "acme").await;
    define(&app.svc, &tok, "acme", item_def()).await;
    for (fmt, ext, want) in [
        ("application/x-ndjson", "ndjson", ""),
        ("application/json", "json", "[]"),
        ("text/csv", "csv", "_id\n"),
    ] {
        let (rec, name, body) = export_entry(
            &app.svc,
            &tok,
            "acme",
            json!({"label": "e", "objects": "c_items", "format": fmt}),
        )
        .await;
        assert_eq!(body, want, "{fmt}");
        let created = rec["created"].as_str().unwrap().replace(':', "_");
        assert_eq!(name, format!("export-{created}.{ext}"));
        assert_eq!(rec["dataFile"]["filename"], format!("export-{created}.zip"));
        assert_eq!(rec["stats"]["docs"]["count"], 0);
    }
}

#[actix_web::test]
async fn documents_export_byte_for_byte_in_every_format() {
    let app = app().await;
    let tok = org_with_admin(&app.svc, "acme").await;
    define(&app.svc, &tok, "acme", item_def()).await;
    let (_, first) = call(
        &app.svc,
        "POST",
        "/acme/v2/c_items",
        Some(&tok),
        Some(json!({"c_name": "Ünïcødé ☃ \"q\", line\nbreak", "c_n": 1.5, "c_ok": true, "c_when": "2026-11-29T12:00:00Z",
                    "c_tags": ["a", "b"], "c_doc": {"c_x": "x", "c_y": 0}, "c_rows": [{"c_v": "r1"}],
                    "c_any": {"k": null, "e": [], "o": {}}, "c_secret": "hidden"})),
    )
    .await;
    let a = first["_id"].as_str().unwrap().to_string();
    let (_, second) = call(
        &app.svc,
        "POST",
        "/acme/v2/c_items",
        Some(&tok),
        Some(json!({"c_ref": a, "c_n": -3})),
    )
    .await;
    let b = second["_id"].as_str().unwrap().to_string();
    let row = first["c_rows"][0]["_id"].as_str().unwrap().to_string();
    let acct = first["creator"]["_id"].as_str().unwrap().to_string();
    let (ca, cb) = (
        first["created"].as_str().unwrap().to_string(),
        second["created"].as_str().unwrap().to_string(),
    );
    let env = |id: &str, created: &str| {
        format!(
            r#""_id":"{id}","object":"c_item","created":"{created}","creator":{{"_id":"{acct}","object":"account","path":"/accounts/{acct}"}},"owner":{{"_id":"{acct}","object":"account","path":"/accounts/{acct}"}}"#
        )
    };
    let doc_a = format!(
        r#"{{{},"c_name":"Ünïcødé ☃ \"q\", line\nbreak","c_n":1.5,"c_ok":true,"c_when":"2026-11-29T12:00:00.000Z","c_tags":["a","b"],"c_doc":{{"c_x":"x","c_y":0}},"c_rows":[{{"_id":"{row}","c_v":"r1"}}],"c_any":{{"k":null,"e":[],"o":{{}}}}}}"#,
        env(&a, &ca)
    );
    let doc_b = format!(
        r#"{{{},"c_n":-3,"c_ref":{{"_id":"{a}","object":"c_item","path":"/c_items/{a}"}}}}"#,
        env(&b, &cb)
    );

    let (_, _, nd) = export_entry(
        &app.svc,
        &tok,
        "acme",
        json!({"label": "n", "objects": "c_items"}),
    )
    .await;
    assert_eq!(nd, format!("{doc_a}\n{doc_b}"));
    let (_, _, js) = export_entry(
        &app.svc,
        &tok,
        "acme",
        json!({"label": "j", "objects": "c_item", "format": "application/json"}),
    )
    .await;
    assert_eq!(js, format!("[\n{doc_a},\n{doc_b}\n]"));

    let (_, _, csv) = export_entry(
        &app.svc,
        &tok,
        "acme",
        json!({"label": "c", "objects": "c_items", "format": "text/csv"}),
    )
    .await;
    let header = "_id,c_any.k,c_doc.c_x,c_doc.c_y,c_n,c_name,c_ok,c_ref._id,c_ref.object,c_ref.path,c_rows[0]._id,c_rows[0].c_v,c_tags[0],c_tags[1],c_when,created,creator._id,creator.object,creator.path,object,owner._id,owner.object,owner.path";
    let acc = format!("{acct},account,/accounts/{acct}");
    let row_a = format!(
        "{a},,x,0,1.5,\"Ünïcødé ☃ \"\"q\"\", line\nbreak\",true,,,,{row},r1,a,b,2026-11-29T12:00:00.000Z,{ca},{acc},c_item,{acc}"
    );
    let row_b = format!("{b},,,,-3,,,{a},c_item,/c_items/{a},,,,,,{cb},{acc},c_item,{acc}");
    assert_eq!(csv, format!("{header}\n{row_a}\n{row_b}\n"));

    // paths and include shape the output
    let (_, _, nd) = export_entry(
        &app.svc,
        &tok,
        "acme",
        json!({"label": "p", "objects": "c_items", "paths": ["c_doc.c_x", "c_secret", "c_rows.c_v"]}),
    )
    .await;
    assert_eq!(
        nd,
        format!(
            r#"{{"_id":"{a}","object":"c_item","c_doc":{{"c_x":"x"}},"c_rows":[{{"_id":"{row}","c_v":"r1"}}],"c_secret":"hidden"}}
{{"_id":"{b}","object":"c_item"}}"#
        )
    );
    let (_, _, nd) = export_entry(
        &app.svc,
        &tok,
        "acme",
        json!({"label": "i", "objects": "c_items", "include": ["c_secret"]}),
    )
    .await;
    assert!(
        nd.lines()
            .next()
            .unwrap()
            .ends_with(r#","c_secret":"hidden"}"#),
        "{nd}"
    );

    // CSV formula escaping
    call(
        &app.svc,
        "POST",
        "/acme/v2/c_items",
        Some(&tok),
        Some(json!({"c_name": "=1+2"})),
    )
    .await;
    let (_, _, csv) = export_entry(
        &app.svc,
        &tok,
        "acme",
        json!({"label": "f", "objects": "c_items", "format": "text/csv", "paths": ["c_name"], "csvEscapeFormulas": true}),
    )
    .await;
    assert!(
        csv.lines().last().unwrap().contains(",'=1+2,c_item"),
        "{csv}"
    );
}

#[actix_web::test]
async fn the_archive_verifies_with_stock_tools() {
    let app = app().await;
    let tok = org_with_admin(&app.svc, "acme").await;
    define(&app.svc, &tok, "acme", item_def()).await;
    let lines: Vec<Value> = (0..3000)
        .map(|i| json!({"c_name": format!("item {i}"), "c_n": i, "c_tags": ["t"]}))
        .collect();
    bulk(&app.svc, &tok, "/acme/v2/c_items", &lines).await;
    let id = create_export(
        &app.svc,
        &tok,
        "acme",
        json!({"label": "z", "objects": "c_items", "format": "text/csv"}),
    )
    .await;
    let rec = wait_ready(&app.svc, &tok, "acme", &id).await;
    let (_, zip) = get_bytes(
        &app.svc,
        &tok,
        &format!("/acme/v2/exports/{id}/dataFile/content"),
    )
    .await;
    assert_eq!(zip.len() as u64, rec["dataFile"]["size"].as_u64().unwrap());
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&zip)),
        rec["dataFile"]["ETag"].as_str().unwrap()
    );
    let path = app.dir.path().join("out.zip");
    std::fs::write(&path, &zip).unwrap();
    let unzip = std::process::Command::new("unzip")
        .arg("-t")
        .arg(&path)
        .output()
        .expect("unzip installed");
    assert!(
        unzip.status.success(),
        "{}",
        String::from_utf8_lossy(&unzip.stdout)
    );
    let py = std::process::Command::new("python3")
        .args(["-c", "import sys,zipfile; z=zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; n=z.namelist(); assert len(n)==1 and '/' not in n[0] and '..' not in n[0] and '\\\\' not in n[0]; print(len(z.read(n[0]).decode().splitlines()))"])
        .arg(&path)
        .output()
        .expect("python3");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&py.stdout).trim(), "3001");
}

/// (started, completed) per export from the records.
fn span(v: &Value) -> (String, String) {
    (
        v["started"].as_str().unwrap().to_string(),
        v["completed"].as_str().unwrap().to_string(),
    )
}

#[actix_web::test]
async fn each_org_runs_one_export_at_a_time_in_creation_order() {
    let app = app().await;
    let mut orgs = Vec::new();
    for (org, n) in [("alpha", 5), ("beta", 3)] {
        let tok = org_with_admin(&app.svc, org).await;
        define(&app.svc, &tok, org, item_def()).await;
        let lines: Vec<Value> = (0..1500)
            .map(|i| json!({"c_name": format!("{org} {i}"), "c_n": i}))
            .collect();
        bulk(&app.svc, &tok, &format!("/{org}/v2/c_items"), &lines).await;
        orgs.push((org, n, tok));
    }
    let mut created = Vec::new();
    for round in 0..5 {
        for (org, n, tok) in &orgs {
            if round < *n {
                let fmt = if round % 2 == 0 {
                    "text/csv"
                } else {
                    "application/x-ndjson"
                };
                let id = create_export(
                    &app.svc,
                    tok,
                    org,
                    json!({"label": format!("{org}-{round}"), "objects": "c_items", "format": fmt}),
                )
                .await;
                created.push((org.to_string(), tok.clone(), id));
            }
        }
    }
    for (org, n, tok) in &orgs {
        let mine: Vec<&(String, String, String)> =
            created.iter().filter(|(o, _, _)| o == org).collect();
        assert_eq!(mine.len(), *n);
        let mut spans = Vec::new();
        for (_, _, id) in &mine {
            let rec = wait_ready(&app.svc, tok, org, id).await;
            assert_eq!(rec["state"], "ready");
            let (_, full) = call(
                &app.svc,
                "GET",
                &format!("/{org}/v2/exports/{id}?include=events"),
                Some(tok),
                None,
            )
            .await;
            let names: Vec<&str> = full["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap())
                .collect();
            assert_eq!(
                &names[..3],
                ["queued", "started", "cursor.started"],
                "{names:?}"
            );
            spans.push(span(&rec));
        }
        for w in spans.windows(2) {
            assert!(
                w[0].0 <= w[1].0,
                "{org}: started out of creation order: {spans:?}"
            );
            assert!(w[0].1 <= w[1].0, "{org}: two exports overlapped: {spans:?}");
        }
    }
    assert!(app.state.store.check_consistency().unwrap().is_empty());
}

/// More documents than one read-ahead batch (256), columns first appearing in late batches:
/// every document once, in order, each CSV cell under its own column (the CSV rows are
/// flattened per batch on the reading threads and renumbered in order).
#[actix_web::test]
async fn exports_across_many_batches_keep_order_and_late_columns() {
    let app = app().await;
    let svc = &app.svc;
    let tok = org_with_admin(svc, "batches").await;
    define(svc, &tok, "batches", item_def()).await;
    let n = 700usize;
    let lines: Vec<Value> = (0..n)
        .map(|i| {
            let tags: Vec<String> = (0..i % 4).map(|t| format!("t{t}")).collect();
            json!({"c_n": i, "c_any": {format!("k{}", i / 150): i}, "c_tags": tags})
        })
        .collect();
    bulk(svc, &tok, "/batches/v2/c_items", &lines).await;
    let export = async |format: &str| {
        let body = json!({"label": "b", "objects": "c_items", "format": format});
        export_entry(svc, &tok, "batches", body).await.2
    };

    let ndjson = export("application/x-ndjson").await;
    let docs: Vec<Value> = ndjson
        .split('\n')
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let counts: Vec<u64> = docs.iter().map(|d| d["c_n"].as_u64().unwrap()).collect();
    assert_eq!(counts, (0..n as u64).collect::<Vec<_>>());
    let array = export("application/json").await;
    assert_eq!(
        serde_json::from_str::<Value>(&array).unwrap(),
        Value::Array(docs)
    );

    let csv = export("text/csv").await;
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    for k in 0..=(n - 1) / 150 {
        col(&format!("c_any.k{k}"));
    }
    assert!(header.iter().all(|h| !h.starts_with("c_tags[3]")));
    let rows: Vec<csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), n);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.len(), header.len());
        assert_eq!(&row[col("c_n")], i.to_string(), "row {i}");
        for k in 0..=(n - 1) / 150 {
            let want = if k == i / 150 {
                i.to_string()
            } else {
                String::new()
            };
            assert_eq!(row[col(&format!("c_any.k{k}"))], want, "row {i} k{k}");
        }
        for t in 0..3 {
            let want = if t < i % 4 {
                format!("t{t}")
            } else {
                String::new()
            };
            assert_eq!(row[col(&format!("c_tags[{t}]"))], want, "row {i} tag {t}");
        }
    }
}

async fn big_org<S: TestService>(svc: &S, org: &str, n: usize) -> String {
    let tok = org_with_admin(svc, org).await;
    define(svc, &tok, org, item_def()).await;
    let lines: Vec<Value> = (0..n)
        .map(|i| json!({"c_name": format!("row {i} {}", "x".repeat(200)), "c_n": i}))
        .collect();
    for chunk in lines.chunks(5000) {
        bulk(svc, &tok, &format!("/{org}/v2/c_items"), chunk).await;
    }
    tok
}

#[actix_web::test]
async fn cancel_and_delete_stop_runs_and_leave_nothing_behind() {
    let app = app().await;
    let tok = big_org(&app.svc, "acme", 20_000).await;
    let first = create_export(
        &app.svc,
        &tok,
        "acme",
        json!({"label": "big", "objects": "c_items", "format": "text/csv"}),
    )
    .await;
    let second = create_export(
        &app.svc,
        &tok,
        "acme",
        json!({"label": "queued", "objects": "c_items"}),
    )
    .await;
    // the second waits behind the first: its data file is not ready
    let got = call(
        &app.svc,
        "GET",
        &format!("/acme/v2/exports/{second}/dataFile"),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(got.0, 202, "{}", got.1);
    assert_eq!(got.1["errCode"], "cortex.accepted.mediaNotReady");
    // cancel the pending one
    let (s, v) = call(
        &app.svc,
        "POST",
        &format!("/acme/v2/exports/{second}/cancel"),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "error");
    assert_eq!(v["fault"]["code"], "kCancelled");
    // cancel the running one
    wait_export(&app.svc, &tok, "acme", &first, |v| v["state"] == "running").await;
    let started = std::time::Instant::now();
    let (s, v) = call(
        &app.svc,
        "POST",
        &format!("/acme/v2/exports/{first}/cancel"),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(v["state"], "error");
    assert_eq!(v["fault"]["code"], "kCancelled");
    assert_eq!(v["dataFile"], Value::Null);
    // cancelling again is a conflict
    let got = call(
        &app.svc,
        "POST",
        &format!("/acme/v2/exports/{first}/cancel"),
        Some(&tok),
        None,
    )
    .await;
    assert_fault(&got, 409, "cortex.conflict.state", None);
    let (_, full) = call(
        &app.svc,
        "GET",
        &format!("/acme/v2/exports/{first}?include=events"),
        Some(&tok),
        None,
    )
    .await;
    assert!(
        full["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "cancelled")
    );

    // delete a running export
    let third = create_export(
        &app.svc,
        &tok,
        "acme",
        json!({"label": "del", "objects": "c_items"}),
    )
    .await;
    wait_export(&app.svc, &tok, "acme", &third, |v| v["state"] == "running").await;
    let started = std::time::Instant::now();
    let (s, v) = call(
        &app.svc,
        "DELETE",
        &format!("/acme/v2/exports/{third}"),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!((s, v), (200, json!({"object": "result", "data": true})));
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    let got = call(
        &app.svc,
        "GET",
        &format!("/acme/v2/exports/{third}"),
        Some(&tok),
        None,
    )
    .await;
    assert_fault(&got, 404, "cortex.notFound.export", None);
    // a later export still runs
    let fourth = create_export(
        &app.svc,
        &tok,
        "acme",
        json!({"label": "after", "objects": "c_items", "paths": ["c_n"]}),
    )
    .await;
    let rec = wait_ready(&app.svc, &tok, "acme", &fourth).await;
    assert_eq!(rec["state"], "ready");
    assert_eq!(rec["stats"]["docs"]["count"], 20_000);
    let (_, st) = call(&app.svc, "GET", "/acme/v2/org/storage", Some(&tok), None).await;
    assert_eq!(st["exports"], rec["dataFile"]["size"]);
    // delete a ready export: archive and quota go
    call(
        &app.svc,
        "DELETE",
        &format!("/acme/v2/exports/{fourth}"),
        Some(&tok),
        None,
    )
    .await;
    let (_, st) = call(&app.svc, "GET", "/acme/v2/org/storage", Some(&tok), None).await;
    assert_eq!(st["exports"], 0);
    let problems = app.state.store.check_consistency().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

#[actix_web::test]
async fn downloads_support_etag_ranges_and_record_events() {
    let app = app().await;
    let tok = org_with_admin(&app.svc, "acme").await;
    define(&app.svc, &tok, "acme", item_def()).await;
    let lines: Vec<Value> = (0..500)
        .map(|i| json!({"c_name": format!("n{i}")}))
        .collect();
    bulk(&app.svc, &tok, "/acme/v2/c_items", &lines).await;
    let id = create_export(
        &app.svc,
        &tok,
        "acme",
        json!({"label": "d", "objects": "c_items"}),
    )
    .await;
    let rec = wait_ready(&app.svc, &tok, "acme", &id).await;
    let url = format!("/acme/v2/exports/{id}/dataFile/content");
    let etag = format!("\"{}\"", rec["dataFile"]["ETag"].as_str().unwrap());
    let size = rec["dataFile"]["size"].as_u64().unwrap();
    let (_, full) = get_bytes(&app.svc, &tok, &url).await;

    let resp = actix_web::test::call_service(
        &app.svc,
        TestRequest::get()
            .uri(&url)
            .insert_header(("Authorization", format!("Bearer {tok}")))
            .to_request(),
    )
    .await;
    let h = resp.headers();
    assert_eq!(h.get("Content-Type").unwrap(), "application/zip");
    assert_eq!(h.get("ETag").unwrap().to_str().unwrap(), etag);
    assert_eq!(h.get("Accept-Ranges").unwrap(), "bytes");
    assert!(
        h.get("Content-Disposition")
            .unwrap()
            .to_str()
            .unwrap()
            .contains(rec["dataFile"]["filename"].as_str().unwrap())
    );

    let auth = ("Authorization", format!("Bearer {tok}"));
    let (s, part) = raw_bytes(
        &app.svc,
        TestRequest::get()
            .uri(&url)
            .insert_header(auth.clone())
            .insert_header(("Range", "bytes=10-19")),
    )
    .await;
    assert_eq!(s, 206);
    assert_eq!(part, full[10..20]);
    let (s, tail) = raw_bytes(
        &app.svc,
        TestRequest::get()
            .uri(&url)
            .insert_header(auth.clone())
            .insert_header(("Range", "bytes=-5")),
    )
    .await;
    assert_eq!((s, tail.as_slice()), (206, &full[full.len() - 5..]));
    let got = raw(
        &app.svc,
        TestRequest::get()
            .uri(&url)
            .insert_header(auth.clone())
            .insert_header(("Range", format!("bytes={size}-"))),
    )
    .await;
    assert_fault(&got, 416, "cortex.invalidArgument.range", None);
    let (s, body) = raw_bytes(
        &app.svc,
        TestRequest::get()
            .uri(&url)
            .insert_header(auth.clone())
            .insert_header(("If-None-Match", etag.clone())),
    )
    .await;
    assert_eq!((s, body.len()), (304, 0));
    let (s, facet) = call(
        &app.svc,
        "GET",
        &format!("/acme/v2/exports/{id}/dataFile"),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(facet["url"], url);
    let (_, v) = call(
        &app.svc,
        "GET",
        &format!("/acme/v2/exports/{id}?include=events"),
        Some(&tok),
        None,
    )
    .await;
    let downloads: Vec<&Value> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "downloaded")
        .collect();
    // 304 and 416 deliver nothing and are not downloads
    assert_eq!(downloads.len(), 4, "{v}");
    assert_eq!(downloads[2]["data"]["range"], "bytes=10-19");
    assert_eq!(downloads[2]["data"]["status"], 206);
    assert_eq!(downloads[0]["data"]["by"], rec["creator"]["_id"]);
}

/// An export of acme's `c_items`, run to ready after the org's exports were set to expire
/// `ttl_days` after creation: (id, record).
async fn ready_export_expiring<S: TestService>(
    svc: &S,
    tok: &str,
    ttl_days: f64,
) -> (String, Value) {
    let body = json!({"exportTtlDays": ttl_days});
    let (s, v) = call(svc, "PATCH", "/sys/orgs/acme", Some(SYS), Some(body)).await;
    assert_eq!(s, 200, "{v}");
    let id = create_export(
        svc,
        tok,
        "acme",
        json!({"label": "x", "objects": "c_items"}),
    )
    .await;
    let rec = wait_ready(svc, tok, "acme", &id).await;
    (id, rec)
}

#[actix_web::test]
async fn exports_expire_and_release_their_quota() {
    let app = app_with(|c| c.janitor_interval = std::time::Duration::from_secs(1)).await;
    let tok = org_with_admin(&app.svc, "acme").await;
    define(&app.svc, &tok, "acme", item_def()).await;
    call(
        &app.svc,
        "POST",
        "/acme/v2/c_items",
        Some(&tok),
        Some(json!({"c_name": "x"})),
    )
    .await;
    let (id, rec) = ready_export_expiring(&app.svc, &tok, 0.00003).await;
    let created = chrono::DateTime::parse_from_rfc3339(rec["created"].as_str().unwrap()).unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(rec["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!((expires - created).num_milliseconds(), 2592);
    actix_web::rt::time::sleep(std::time::Duration::from_millis(4500)).await;
    let got = call(
        &app.svc,
        "GET",
        &format!("/acme/v2/exports/{id}"),
        Some(&tok),
        None,
    )
    .await;
    assert_fault(&got, 404, "cortex.notFound.export", None);
    assert!(
        app.state
            .store
            .get_export("acme", exportd::model::ids::ObjectId::parse(&id).unwrap())
            .unwrap()
            .is_none()
    );
    let (_, st) = call(&app.svc, "GET", "/acme/v2/org/storage", Some(&tok), None).await;
    assert_eq!(st["exports"], 0);
    assert!(app.state.store.check_consistency().unwrap().is_empty());
}

/// `GET /exports/{id}` read again answers the same (its body is cached per stored record),
/// for its own org only, with its events on request, and not once it has expired, though
/// the janitor has not yet deleted it.
#[actix_web::test]
async fn an_export_read_again_answers_the_same_for_its_org_until_it_expires() {
    let app = app_with(|c| c.janitor_interval = std::time::Duration::from_secs(3600)).await;
    let tok = org_with_admin(&app.svc, "acme").await;
    let other = org_with_admin(&app.svc, "other").await;
    define(&app.svc, &tok, "acme", item_def()).await;
    let (id, rec) = ready_export_expiring(&app.svc, &tok, 0.0001).await;
    let path = format!("/acme/v2/exports/{id}");
    for _ in 0..2 {
        let req = TestRequest::get()
            .uri(&path)
            .insert_header(("Authorization", format!("Bearer {tok}")));
        let resp = actix_web::test::call_service(&app.svc, req.to_request()).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers().get("content-type").unwrap(),
            "application/json"
        );
        let body: Value = actix_web::test::read_body_json(resp).await;
        assert_eq!(body, rec);
    }
    let (s, with_events) = call(
        &app.svc,
        "GET",
        &format!("{path}?include=events"),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        (&with_events["_id"], &with_events["state"]),
        (&rec["_id"], &rec["state"])
    );
    assert!(
        with_events["events"].as_array().unwrap().len() >= 2,
        "{with_events}"
    );
    // the same id under another org is not that org's export
    let got = call(
        &app.svc,
        "GET",
        &format!("/other/v2/exports/{id}"),
        Some(&other),
        None,
    )
    .await;
    assert_fault(&got, 404, "cortex.notFound.export", None);

    let expires = chrono::DateTime::parse_from_rfc3339(rec["expiresAt"].as_str().unwrap()).unwrap();
    let left = expires.with_timezone(&chrono::Utc) - chrono::Utc::now();
    let wait = left.to_std().unwrap_or_default() + std::time::Duration::from_millis(300);
    actix_web::rt::time::sleep(wait).await;
    let got = call(&app.svc, "GET", &path, Some(&tok), None).await;
    assert_fault(&got, 404, "cortex.notFound.export", None);
    let oid = exportd::model::ids::ObjectId::parse(&id).unwrap();
    assert!(
        app.state.store.get_export("acme", oid).unwrap().is_some(),
        "not yet deleted"
    );
}

#[actix_web::test]
async fn storage_limit_refuses_and_fails_exports_keeping_nothing() {
    let app = app().await;
    let tok = org_with_admin(&app.svc, "acme").await;
    define(&app.svc, &tok, "acme", json!({"name": "c_f", "properties": [{"name": "c_file", "type": "File"}, {"name": "c_t", "type": "String"}]})).await;
    let (_, d) = call(
        &app.svc,
        "POST",
        "/acme/v2/c_fs",
        Some(&tok),
        Some(json!({"c_t": "x".repeat(2000)})),
    )
    .await;
    let doc = d["_id"].as_str().unwrap();
    let (s, _) = raw(
        &app.svc,
        TestRequest::put()
            .uri(&format!("/acme/v2/c_fs/{doc}/c_file/content"))
            .insert_header(("Authorization", format!("Bearer {tok}")))
            .insert_header(("Content-Type", "text/plain"))
            .set_payload(vec![b'a'; 1000]),
    )
    .await;
    assert_eq!(s, 201);
    // room for 10 more bytes: the export's archive would cross the limit
    call(
        &app.svc,
        "PATCH",
        "/sys/orgs/acme",
        Some(SYS),
        Some(json!({"storageLimit": 1010})),
    )
    .await;
    let id = create_export(
        &app.svc,
        &tok,
        "acme",
        json!({"label": "q", "objects": "c_fs"}),
    )
    .await;
    let rec = wait_ready(&app.svc, &tok, "acme", &id).await;
    assert_eq!(rec["state"], "error");
    assert_eq!(
        rec["fault"]["errCode"],
        "cortex.accessDenied.storageLimitExceeded"
    );
    assert_eq!(rec["dataFile"], Value::Null);
    let (_, st) = call(&app.svc, "GET", "/acme/v2/org/storage", Some(&tok), None).await;
    assert_eq!(
        (st["used"].clone(), st["exports"].clone()),
        (json!(1000), json!(0))
    );
    // at the limit: creation is refused
    call(
        &app.svc,
        "PATCH",
        "/sys/orgs/acme",
        Some(SYS),
        Some(json!({"storageLimit": 1000})),
    )
    .await;
    let got = call(
        &app.svc,
        "POST",
        "/acme/v2/exports",
        Some(&tok),
        Some(json!({"label": "q", "objects": "c_fs"})),
    )
    .await;
    assert_fault(&got, 403, "cortex.accessDenied.storageLimitExceeded", None);
    assert!(app.state.store.check_consistency().unwrap().is_empty());
}

#[actix_web::test]
async fn create_validation_names_every_bad_field() {
    let app = app().await;
    let tok = org_with_admin(&app.svc, "acme").await;
    define(&app.svc, &tok, "acme", item_def()).await;
    let got = call(
        &app.svc,
        "POST",
        "/acme/v2/exports",
        Some(&tok),
        Some(json!({"label": "x".repeat(101), "description": "d".repeat(256), "objects": "c_items",
                    "format": "text/xml", "paths": ["c_nope", "c_doc.c_x"], "include": [5], "expand": ["c_name"],
                    "where": "{not json", "principal": "000000000000000000000000", "zipFiles": true,
                    "state": "ready", "bogus": 1})),
    )
    .await;
    assert_fault(&got, 400, "cortex.validation.failed", None);
    let mut paths = sub_paths(&got.1);
    paths.sort();
    assert_eq!(
        paths,
        [
            "bogus",
            "description",
            "expand[0]",
            "format",
            "include[0]",
            "label",
            "paths[0]",
            "principal",
            "state",
            "where",
            "zipFiles"
        ]
    );
    let got = call(
        &app.svc,
        "POST",
        "/acme/v2/exports",
        Some(&tok),
        Some(json!({"label": "x", "objects": "exports"})),
    )
    .await;
    assert_eq!(
        got.1["faults"][0]["errCode"],
        "cortex.validation.reservedObject"
    );
    let got = call(
        &app.svc,
        "POST",
        "/acme/v2/exports",
        Some(&tok),
        Some(json!({"label": "x", "objects": "c_unknowns"})),
    )
    .await;
    assert_eq!(got.1["faults"][0]["path"], "objects");
    let got = call(
        &app.svc,
        "POST",
        "/acme/v2/exports",
        Some(&tok),
        Some(json!({"objects": "c_items"})),
    )
    .await;
    assert_eq!(sub_paths(&got.1), ["label"]);
    // a bad prefix and a script that does not parse are named
    for (k, v) in [("prefix", json!("x/y")), ("afterScript", json!("let = ;"))] {
        let mut body = json!({"label": "x", "objects": "c_items"});
        body[k] = v;
        let got = call(&app.svc, "POST", "/acme/v2/exports", Some(&tok), Some(body)).await;
        assert_eq!(got.0, 400, "{k}");
        assert_eq!(got.1["faults"][0]["path"], k);
    }
}

#[actix_web::test]
async fn only_administrators_of_the_org_reach_exports() {
    let app = app().await;
    let tok = org_with_admin(&app.svc, "acme").await;
    let other = org_with_admin(&app.svc, "other").await;
    define(&app.svc, &tok, "acme", item_def()).await;
    let (_, user) = call(
        &app.svc,
        "POST",
        "/acme/v2/accounts",
        Some(&tok),
        Some(json!({"email": "u@acme.test", "roles": ["user"]})),
    )
    .await;
    let user = user["token"].as_str().unwrap().to_string();
    let id = create_export(
        &app.svc,
        &tok,
        "acme",
        json!({"label": "x", "objects": "c_items"}),
    )
    .await;
    wait_ready(&app.svc, &tok, "acme", &id).await;
    let routes = [
        ("GET", "/acme/v2/exports".to_string()),
        ("POST", "/acme/v2/exports".to_string()),
        ("GET", format!("/acme/v2/exports/{id}")),
        ("DELETE", format!("/acme/v2/exports/{id}")),
        ("POST", format!("/acme/v2/exports/{id}/cancel")),
        ("GET", format!("/acme/v2/exports/{id}/dataFile")),
        ("GET", format!("/acme/v2/exports/{id}/dataFile/content")),
    ];
    for (m, p) in &routes {
        let body = (*m == "POST").then(|| json!({"label": "x", "objects": "c_items"}));
        let got = call(&app.svc, m, p, Some(&user), body.clone()).await;
        assert_fault(&got, 403, "cortex.accessDenied.role", None);
        let got = call(&app.svc, m, p, Some(&other), body.clone()).await;
        assert_fault(&got, 404, "cortex.notFound.org", None);
        let got = call(&app.svc, m, p, None, body).await;
        assert_fault(&got, 401, "cortex.unauthorized.noCredentials", None);
    }
    // other org's admin using its own org path cannot see acme's export
    let got = call(
        &app.svc,
        "GET",
        &format!("/other/v2/exports/{id}"),
        Some(&other),
        None,
    )
    .await;
    assert_fault(&got, 404, "cortex.notFound.export", None);
}

#[actix_web::test]
async fn list_is_newest_first_with_paging_total_and_where() {
    let app = app().await;
    let tok = org_with_admin(&app.svc, "acme").await;
    define(&app.svc, &tok, "acme", item_def()).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            create_export(
                &app.svc,
                &tok,
                "acme",
                json!({"label": format!("L{i}"), "objects": "c_items"}),
            )
            .await,
        );
    }
    for id in &ids {
        wait_ready(&app.svc, &tok, "acme", id).await;
    }
    let (_, v) = call(
        &app.svc,
        "GET",
        "/acme/v2/exports?limit=3&total=true",
        Some(&tok),
        None,
    )
    .await;
    let got: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["_id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[3].as_str(), ids[2].as_str(), ids[1].as_str()]);
    assert_eq!(
        (v["hasMore"].clone(), v["total"].clone()),
        (json!(true), json!(4))
    );
    // each item is the export as GET answers it, field for field and in its order
    for item in v["data"].as_array().unwrap() {
        let id = item["_id"].as_str().unwrap();
        let (_, one) = call(
            &app.svc,
            "GET",
            &format!("/acme/v2/exports/{id}"),
            Some(&tok),
            None,
        )
        .await;
        assert_eq!(item.to_string(), one.to_string());
    }
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["object", "data", "hasMore", "total"]);
    let (_, v) = call(&app.svc, "GET", "/acme/v2/exports?skip=3", Some(&tok), None).await;
    assert_eq!(v["data"][0]["_id"], ids[0].as_str());
    assert_eq!(v["hasMore"], false);
    let q =
        "/acme/v2/exports?where=%7B%22label%22%3A%7B%22%24regex%22%3A%22%2Fl%5B12%5D%2Fi%22%7D%7D";
    let (_, v) = call(&app.svc, "GET", q, Some(&tok), None).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2, "{v}");
    let (_, v) = call(
        &app.svc,
        "GET",
        "/acme/v2/exports?where=%7B%22state%22%3A%22error%22%7D",
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 0);
    let got = call(
        &app.svc,
        "GET",
        "/acme/v2/exports?where=%7B%22objects%22%3A1%7D",
        Some(&tok),
        None,
    )
    .await;
    assert_fault(
        &got,
        400,
        "cortex.invalidArgument.query",
        Some("where.objects"),
    );
}

#[actix_web::test]
async fn a_principal_sees_only_what_it_may_read() {
    let app = app().await;
    let tok = org_with_admin(&app.svc, "acme").await;
    define(
        &app.svc,
        &tok,
        "acme",
        json!({"name": "c_note", "properties": [{"name": "c_t", "type": "String"}, {"name": "c_private", "type": "String", "readAccess": "delete"}]}),
    )
    .await;
    let (_, user) = call(
        &app.svc,
        "POST",
        "/acme/v2/accounts",
        Some(&tok),
        Some(json!({"email": "u@acme.test"})),
    )
    .await;
    let (uid, utok) = (
        user["_id"].as_str().unwrap().to_string(),
        user["token"].as_str().unwrap().to_string(),
    );
    call(
        &app.svc,
        "POST",
        "/acme/v2/c_notes",
        Some(&tok),
        Some(json!({"c_t": "admin's", "c_private": "p"})),
    )
    .await;
    let (s, mine) = call(
        &app.svc,
        "POST",
        "/acme/v2/c_notes",
        Some(&utok),
        Some(json!({"c_t": "user's", "c_private": "q"})),
    )
    .await;
    assert_eq!(s, 201);
    let (_, _, nd) = export_entry(&app.svc, &tok, "acme", json!({"label": "p", "objects": "c_notes", "principal": uid, "paths": ["c_t", "c_private"]})).await;
    assert_eq!(
        nd,
        format!(
            r#"{{"_id":"{}","object":"c_note","c_t":"user's","c_private":"q"}}"#,
            mine["_id"].as_str().unwrap()
        )
    );
    // with a role grant of read, the admin's note is visible but not its delete-level property
    let (s, _) = call(
        &app.svc,
        "PATCH",
        "/acme/v2/objects/c_note",
        Some(&tok),
        Some(json!({"defaultAcl": [{"type": "role", "target": "user", "allow": "read"}]})),
    )
    .await;
    assert_eq!(s, 200);
    let (_, _, nd) = export_entry(&app.svc, &tok, "acme", json!({"label": "p", "objects": "c_notes", "principal": uid, "paths": ["c_t", "c_private"]})).await;
    let lines: Vec<Value> = nd
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["c_t"], "admin's");
    assert_eq!(lines[0].get("c_private"), None);
    assert_eq!(lines[1]["c_private"], "q");
}
