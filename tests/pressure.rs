//! Resource pressure: an export that runs into the org's storage limit, and a disk that fills
//! up under the blob writer (the test-only seam `Store::blob_write_fault`), must each end the
//! export in `error` with a clear fault, leave nothing partial (no data file, no side files,
//! no blob or segment left behind) and give the usage back to what it was before; the store
//! stays consistent and the next export, once there is room, is `ready`.

mod common;

use actix_web::test::TestRequest;
use common::*;
use serde_json::{Value, json};

/// What must come back to its value from before a failed export.
#[derive(Debug, PartialEq)]
struct Footprint {
    storage: Value,
    blob_metas: usize,
    segments: usize,
}

fn footprint(store: &exportd::store::Store, mut storage: Value) -> Footprint {
    // the limit is what the test changes; the rest must come back
    storage.as_object_mut().unwrap().remove("limit");
    Footprint {
        storage,
        blob_metas: store.all_blob_metas().unwrap().len(),
        segments: store.t.blobs.len(),
    }
}

async fn storage<S: TestService>(svc: &S, tok: &str) -> Value {
    let (s, v) = call(svc, "GET", "/acme/v2/org/storage", Some(tok), None).await;
    assert_eq!(s, 200, "{v}");
    v
}

/// An org with `docs` documents of incompressible-ish text, and `files` files of 40 KB.
async fn setup<S: TestService>(svc: &S, docs: usize, files: usize) -> (String, Vec<String>) {
    let tok = org_with_admin(svc, "acme").await;
    call_expect(
        svc,
        "POST",
        "/acme/v2/objects",
        &tok,
        Some(json!({"name": "c_rec", "properties": [
            {"name": "c_text", "type": "String"}, {"name": "c_n", "type": "Number"},
            {"name": "c_file", "type": "File"}]})),
        201,
    )
    .await;
    let lines: Vec<Value> = (0..docs)
        .map(|n| {
            let text: String = (0..12)
                .map(|k| {
                    format!(
                        "{:016x}",
                        (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ k
                    )
                })
                .collect();
            json!({"c_text": text, "c_n": n})
        })
        .collect();
    let mut ids = Vec::new();
    for chunk in lines.chunks(5000) {
        let r = bulk(svc, &tok, "/acme/v2/c_recs", chunk).await;
        ids.extend(
            r["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_str().unwrap().to_string()),
        );
    }
    for (k, id) in ids.iter().take(files).enumerate() {
        let content: Vec<u8> = (0..40_000u32).map(|b| (b * 7 + k as u32) as u8).collect();
        let (s, v) = raw(
            svc,
            TestRequest::put()
                .uri(&format!("/acme/v2/c_recs/{id}/c_file/content"))
                .insert_header(("Authorization", format!("Bearer {tok}")))
                .insert_header(("Content-Type", "application/octet-stream"))
                .set_payload(content),
        )
        .await;
        assert_eq!(s, 201, "{v}");
    }
    (tok, ids)
}

/// Sets acme's storage limit (`null`: none); the system API must accept it.
async fn set_storage_limit<S: TestService>(svc: &S, limit: Value) {
    call_expect(
        svc,
        "PATCH",
        "/sys/orgs/acme",
        SYS,
        Some(json!({"storageLimit": limit})),
        200,
    )
    .await;
}

async fn create<S: TestService>(svc: &S, tok: &str, body: Value) -> String {
    let (s, v) = call(svc, "POST", "/acme/v2/exports", Some(tok), Some(body)).await;
    assert_eq!(s, 201, "{v}");
    v["_id"].as_str().unwrap().to_string()
}

/// The export ended in `error` with a fault of this errCode and kept nothing.
async fn assert_failed_clean<S: TestService>(
    svc: &S,
    tok: &str,
    id: &str,
    err_codes: &[&str],
) -> Value {
    let rec = wait_ready(svc, tok, "acme", id).await;
    assert_eq!(
        rec["state"], "error",
        "the export should have failed: {rec}"
    );
    let fault: Value = match &rec["fault"] {
        Value::String(s) => serde_json::from_str(s).unwrap(),
        other => other.clone(),
    };
    assert_eq!(fault["object"], "fault", "{rec}");
    assert!(
        err_codes.contains(&fault["errCode"].as_str().unwrap_or("")),
        "fault {fault}, expected one of {err_codes:?}"
    );
    assert!(!fault["message"].as_str().unwrap_or("").is_empty());
    assert!(rec["dataFile"].is_null(), "{rec}");
    let got = call(
        svc,
        "GET",
        &format!("/acme/v2/exports/{id}/dataFile"),
        Some(tok),
        None,
    )
    .await;
    assert_fault(&got, 404, "cortex.notFound.dataFile", None);
    let got = call(
        svc,
        "GET",
        &format!("/acme/v2/exports/{id}/dataFile/content"),
        Some(tok),
        None,
    )
    .await;
    assert_eq!(got.0, 404, "{}", got.1);
    let (s, files) = call(
        svc,
        "GET",
        &format!("/acme/v2/exports/{id}/files"),
        Some(tok),
        None,
    )
    .await;
    assert!(
        s == 404 || files["data"].as_array().is_some_and(|a| a.is_empty()),
        "side files left: {s} {files}"
    );
    fault
}

#[actix_web::test]
async fn storage_limit_reached_mid_export_fails_it_and_keeps_nothing() {
    let app = app().await;
    let store = app.state.store.clone();
    let (tok, _) = setup(&app.svc, 3000, 3).await;

    // 1. room for less than the archive and its side files, set before the run
    let before = storage(&app.svc, &tok).await;
    let used = before["used"].as_u64().unwrap();
    set_storage_limit(&app.svc, json!(used + 60_000)).await;
    let before = footprint(&store, storage(&app.svc, &tok).await);
    let id = create(
        &app.svc,
        &tok,
        json!({"label": "side", "objects": "c_recs", "exportFiles": true}),
    )
    .await;
    let fault = assert_failed_clean(
        &app.svc,
        &tok,
        &id,
        &["cortex.accessDenied.storageLimitExceeded"],
    )
    .await;
    assert_eq!(fault["status"], 403);
    assert_eq!(footprint(&store, storage(&app.svc, &tok).await), before);
    assert!(store.check_consistency().unwrap().is_empty());

    // 2. the limit comes down to the usage while a big export runs
    set_storage_limit(&app.svc, Value::Null).await;
    call_expect(
        &app.svc,
        "DELETE",
        &format!("/acme/v2/exports/{id}"),
        &tok,
        None,
        200,
    )
    .await;
    let lines: Vec<Value> = (0..27_000)
        .map(|n| json!({"c_text": format!("more {n} {:x}", n * 7919), "c_n": n}))
        .collect();
    for chunk in lines.chunks(9000) {
        bulk(&app.svc, &tok, "/acme/v2/c_recs", chunk).await;
    }
    let before = footprint(&store, storage(&app.svc, &tok).await);
    let id = create(
        &app.svc,
        &tok,
        json!({"label": "big", "objects": "c_recs", "format": "text/csv"}),
    )
    .await;
    let running = wait_export(&app.svc, &tok, "acme", &id, |v| v["state"] != "pending").await;
    assert_eq!(
        running["state"], "running",
        "the export ended too soon to test: {running}"
    );
    let used = before.storage["used"].as_u64().unwrap();
    set_storage_limit(&app.svc, json!(used)).await;
    let fault = assert_failed_clean(
        &app.svc,
        &tok,
        &id,
        &["cortex.accessDenied.storageLimitExceeded"],
    )
    .await;
    eprintln!("limit reached mid-run: {fault}");
    assert_eq!(footprint(&store, storage(&app.svc, &tok).await), before);
    assert!(store.check_consistency().unwrap().is_empty());

    // 3. with room again, the same export is ready
    call(
        &app.svc,
        "PATCH",
        "/sys/orgs/acme",
        Some(SYS),
        Some(json!({"storageLimit": null})),
    )
    .await;
    let id = create(
        &app.svc,
        &tok,
        json!({"label": "again", "objects": "c_recs", "format": "text/csv"}),
    )
    .await;
    assert_eq!(
        wait_ready(&app.svc, &tok, "acme", &id).await["state"],
        "ready"
    );
    assert!(store.check_consistency().unwrap().is_empty());
}

#[actix_web::test]
async fn disk_full_at_the_blob_writer_fails_the_export_and_reclaims_everything() {
    let app = app().await;
    let store = app.state.store.clone();
    let (tok, ids) = setup(&app.svc, 8000, 4).await;
    let mut seen_faults = Vec::new();
    let bodies = [
        json!({"label": "nd", "objects": "c_recs"}),
        json!({"label": "csv", "objects": "c_recs", "format": "text/csv"}),
        json!({"label": "side", "objects": "c_recs", "exportFiles": true}),
        json!({"label": "zip", "objects": "c_recs", "exportFiles": true, "zipFiles": true}),
    ];
    for body in bodies {
        // a run with room: how big its archive is; its deletion gives everything back
        let before = footprint(&store, storage(&app.svc, &tok).await);
        let id = create(&app.svc, &tok, body.clone()).await;
        let rec = wait_ready(&app.svc, &tok, "acme", &id).await;
        assert_eq!(rec["state"], "ready", "{rec}");
        let size = rec["dataFile"]["size"].as_u64().unwrap();
        assert!(
            size > 200_000,
            "the archive is too small to fail midway: {size}"
        );
        call_expect(
            &app.svc,
            "DELETE",
            &format!("/acme/v2/exports/{id}"),
            &tok,
            None,
            200,
        )
        .await;
        assert_eq!(footprint(&store, storage(&app.svc, &tok).await), before);
        // the disk fills at the first segment, a few segments in, and near the end
        for budget in [0, 100_000, size - 30_000] {
            store.blob_write_fault.fail_after(budget);
            let id = create(&app.svc, &tok, body.clone()).await;
            let fault =
                assert_failed_clean(&app.svc, &tok, &id, &["cortex.error.storageFull"]).await;
            store.blob_write_fault.clear();
            assert_eq!(fault["status"], 500, "{fault}");
            seen_faults.push(format!(
                "{} ({size} B archive), full after {budget} B: {} {}",
                body["label"], fault["errCode"], fault["message"]
            ));
            let after = footprint(&store, storage(&app.svc, &tok).await);
            assert_eq!(
                after, before,
                "{body} full after {budget} B: something partial is left"
            );
            let problems = store.check_consistency().unwrap();
            assert!(problems.is_empty(), "{problems:?}");
        }
    }
    eprintln!("disk-full faults: {seen_faults:#?}");

    // an upload into a full disk: a clear 500, no partial file, usage unchanged
    let before = footprint(&store, storage(&app.svc, &tok).await);
    store.blob_write_fault.fail_after(70_000);
    let got = raw(
        &app.svc,
        TestRequest::put()
            .uri(&format!("/acme/v2/c_recs/{}/c_file/content", ids[100]))
            .insert_header(("Authorization", format!("Bearer {tok}")))
            .insert_header(("Content-Type", "application/octet-stream"))
            .set_payload(vec![7u8; 300_000]),
    )
    .await;
    store.blob_write_fault.clear();
    assert_fault(&got, 500, "cortex.error.storageFull", None);
    assert_eq!(footprint(&store, storage(&app.svc, &tok).await), before);
    let (_, d) = call(
        &app.svc,
        "GET",
        &format!("/acme/v2/c_recs/{}", ids[100]),
        Some(&tok),
        None,
    )
    .await;
    assert!(d.get("c_file").is_none_or(|f| f.is_null()), "{d}");
    assert!(store.check_consistency().unwrap().is_empty());
}
