//! Exporting files: as stored, zipped into the archive, or stored beside it.

mod common;

use actix_web::test::TestRequest;
use common::*;
use serde_json::{Value, json};

struct Setup {
    tok: String,
    d1: String,
    d2: String,
    row: String,
    /// (expected entry suffix, bytes) in export order
    files: Vec<(String, Vec<u8>)>,
}

async fn put<S: TestService>(svc: &S, tok: &str, path: &str, mime: &str, body: &[u8]) -> Value {
    let (s, v) = raw(
        svc,
        TestRequest::put()
            .uri(path)
            .insert_header(("Authorization", format!("Bearer {tok}")))
            .insert_header(("Content-Type", mime))
            .set_payload(body.to_vec()),
    )
    .await;
    assert_eq!(s, 201, "{path}: {v}");
    v
}

async fn setup<S: TestService>(svc: &S) -> Setup {
    let tok = org_with_admin(svc, "acme").await;
    let (s, v) = call(
        svc,
        "POST",
        "/acme/v2/objects",
        Some(&tok),
        Some(json!({"name": "c_rec", "properties": [
            {"name": "c_t", "type": "String"},
            {"name": "c_file", "type": "File"},
            {"name": "c_files", "type": "File", "array": true},
            {"name": "c_doc", "type": "Document", "properties": [{"name": "c_f", "type": "File"}, {"name": "c_x", "type": "String"}]},
            {"name": "c_rows", "type": "Document", "array": true, "properties": [{"name": "c_f", "type": "File"}, {"name": "c_v", "type": "String"}]}]})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (_, a) = call(
        svc,
        "POST",
        "/acme/v2/c_recs",
        Some(&tok),
        Some(json!({"c_t": "one", "c_rows": [{"c_v": "r"}]})),
    )
    .await;
    let (_, b) = call(
        svc,
        "POST",
        "/acme/v2/c_recs",
        Some(&tok),
        Some(json!({"c_t": "two", "c_doc": {"c_x": "x"}})),
    )
    .await;
    let (d1, d2) = (
        a["_id"].as_str().unwrap().to_string(),
        b["_id"].as_str().unwrap().to_string(),
    );
    let row = a["c_rows"][0]["_id"].as_str().unwrap().to_string();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 256) as u8).collect();
    let files = vec![
        (
            format!("c_recs.{d1}.c_file.content.txt"),
            b"hello file".to_vec(),
            format!("/acme/v2/c_recs/{d1}/c_file/content"),
            "text/plain",
        ),
        (
            format!("c_recs.{d1}.c_files.content.png"),
            vec![0x89, b'P', b'N', b'G', 1, 2, 3],
            format!("/acme/v2/c_recs/{d1}/c_files/content"),
            "image/png",
        ),
        (
            format!("c_recs.{d1}.c_files.content.dat"),
            big,
            format!("/acme/v2/c_recs/{d1}/c_files/content"),
            "application/x-unknown",
        ),
        (
            format!("c_recs.{d1}.c_rows.c_f.content.csv"),
            b"a,b\n1,2\n".to_vec(),
            format!("/acme/v2/c_recs/{d1}/c_rows/{row}/c_f/content"),
            "text/csv",
        ),
        (
            format!("c_recs.{d2}.c_doc.c_f.content.json"),
            b"{\"k\":1}".to_vec(),
            format!("/acme/v2/c_recs/{d2}/c_doc/c_f/content"),
            "application/json",
        ),
    ];
    for (_, bytes, path, mime) in &files {
        put(svc, &tok, path, mime, bytes).await;
    }
    Setup {
        tok,
        d1,
        d2,
        row,
        files: files.into_iter().map(|(n, b, _, _)| (n, b)).collect(),
    }
}

async fn run_export<S: TestService>(
    svc: &S,
    tok: &str,
    body: Value,
) -> (Value, Vec<(String, Vec<u8>)>) {
    let (s, v) = call(svc, "POST", "/acme/v2/exports", Some(tok), Some(body)).await;
    assert_eq!(s, 201, "{v}");
    let id = v["_id"].as_str().unwrap().to_string();
    let rec = wait_ready(svc, tok, "acme", &id).await;
    assert_eq!(rec["state"], "ready", "{rec}");
    let (_, zip) = get_bytes(svc, tok, &format!("/acme/v2/exports/{id}/dataFile/content")).await;
    (rec, unzip(&zip))
}

fn lines(entry: &[u8]) -> Vec<Value> {
    String::from_utf8(entry.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[actix_web::test]
async fn without_export_files_facets_are_exported_as_stored() {
    let app = app().await;
    let s = setup(&app.svc).await;
    let (rec, entries) =
        run_export(&app.svc, &s.tok, json!({"label": "f", "objects": "c_recs"})).await;
    assert_eq!(entries.len(), 1);
    let docs = lines(&entries[0].1);
    assert_eq!(
        docs[0]["c_file"]["path"],
        format!("/c_recs/{}/c_file/content", s.d1)
    );
    assert_eq!(
        docs[0]["c_files"][1]["path"],
        format!("/c_recs/{}/c_files/1/content", s.d1)
    );
    assert_eq!(rec["stats"]["files"], json!({"count": 0, "size": 0}));
}

#[actix_web::test]
async fn zip_files_puts_every_file_in_the_archive_and_rewrites_paths() {
    let app = app().await;
    let s = setup(&app.svc).await;
    let (rec, entries) = run_export(
        &app.svc,
        &s.tok,
        json!({"label": "z", "objects": "c_recs", "exportFiles": true, "zipFiles": true}),
    )
    .await;
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    let mut want = vec![format!(
        "{}.ndjson",
        rec["dataFile"]["filename"]
            .as_str()
            .unwrap()
            .trim_end_matches(".zip")
    )];
    for (i, (suffix, _)) in s.files.iter().enumerate() {
        want.push(format!("files/{i:010}.{suffix}"));
    }
    assert_eq!(names, want);
    for (i, (_, bytes)) in s.files.iter().enumerate() {
        assert_eq!(&entries[i + 1].1, bytes, "entry {}", entries[i + 1].0);
    }
    let docs = lines(&entries[0].1);
    assert_eq!(docs[0]["c_file"]["path"], want[1]);
    assert_eq!(docs[0]["c_files"][0]["path"], want[2]);
    assert_eq!(docs[0]["c_files"][1]["path"], want[3]);
    assert_eq!(docs[0]["c_rows"][0]["c_f"]["path"], want[4]);
    assert_eq!(docs[0]["c_rows"][0]["_id"], s.row.as_str());
    assert_eq!(docs[1]["c_doc"]["c_f"]["path"], want[5]);
    let total: usize = s.files.iter().map(|(_, b)| b.len()).sum();
    assert_eq!(rec["stats"]["files"], json!({"count": 5, "size": total}));
    let (_, st) = call(&app.svc, "GET", "/acme/v2/org/storage", Some(&s.tok), None).await;
    assert_eq!(st["exports"], rec["dataFile"]["size"]);

    // CSV carries the facet's leaf values as columns
    let (_, entries) = run_export(
        &app.svc,
        &s.tok,
        json!({"label": "c", "objects": "c_recs", "format": "text/csv", "exportFiles": true, "zipFiles": true, "paths": ["c_file", "c_doc"]}),
    )
    .await;
    let csv = String::from_utf8(entries[0].1.clone()).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "c_file.path")
        .expect("c_file.path column");
    let row1: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(
        row1[col],
        format!("files/0000000000.c_recs.{}.c_file.content.txt", s.d1)
    );
    assert!(
        header.contains(&"c_file.ETag") && header.contains(&"c_doc.c_f.mime"),
        "{header:?}"
    );
    assert_eq!(
        entries.len(),
        3,
        "only the files of exported paths are added"
    );
    assert!(app.state.store.check_consistency().unwrap().is_empty());
}

#[actix_web::test]
async fn side_files_are_listed_downloadable_counted_and_removed_with_the_export() {
    let app = app().await;
    let s = setup(&app.svc).await;
    let (rec, entries) = run_export(
        &app.svc,
        &s.tok,
        json!({"label": "s", "objects": "c_recs", "exportFiles": true}),
    )
    .await;
    assert_eq!(entries.len(), 1, "side files are not in the archive");
    let id = rec["_id"].as_str().unwrap();
    let docs = lines(&entries[0].1);
    assert_eq!(
        docs[0]["c_file"]["path"],
        format!("/acme/v2/exports/{id}/files/0")
    );
    assert_eq!(
        docs[1]["c_doc"]["c_f"]["path"],
        format!("/acme/v2/exports/{id}/files/4")
    );
    let (st, list) = call(
        &app.svc,
        "GET",
        &format!("/acme/v2/exports/{id}/files?total=true&limit=3"),
        Some(&s.tok),
        None,
    )
    .await;
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["total"], 5);
    assert_eq!(list["hasMore"], true);
    assert_eq!(
        list["data"][1]["path"],
        format!("/acme/v2/exports/{id}/files/1")
    );
    assert_eq!(list["data"][1]["mime"], "image/png");
    for (n, (_, bytes)) in s.files.iter().enumerate() {
        let (code, got) = get_bytes(
            &app.svc,
            &s.tok,
            &format!("/acme/v2/exports/{id}/files/{n}"),
        )
        .await;
        assert_eq!(code, 200);
        assert_eq!(&got, bytes, "side file {n}");
    }
    let (code, part) = raw_bytes(
        &app.svc,
        TestRequest::get()
            .uri(&format!("/acme/v2/exports/{id}/files/2"))
            .insert_header(("Authorization", format!("Bearer {}", s.tok)))
            .insert_header(("Range", "bytes=65530-65545")),
    )
    .await;
    assert_eq!((code, part.as_slice()), (206, &s.files[2].1[65530..65546]));
    let got = call(
        &app.svc,
        "GET",
        &format!("/acme/v2/exports/{id}/files/9"),
        Some(&s.tok),
        None,
    )
    .await;
    assert_eq!(got.0, 404);
    let total: u64 = s.files.iter().map(|(_, b)| b.len() as u64).sum();
    assert_eq!(rec["stats"]["files"], json!({"count": 5, "size": total}));
    let (_, storage) = call(&app.svc, "GET", "/acme/v2/org/storage", Some(&s.tok), None).await;
    assert_eq!(
        storage["exports"].as_u64().unwrap(),
        rec["dataFile"]["size"].as_u64().unwrap() + total
    );
    // the copies do not depend on the documents any more
    call(
        &app.svc,
        "DELETE",
        &format!("/acme/v2/c_recs/{}", s.d2),
        Some(&s.tok),
        None,
    )
    .await;
    let (_, got) = get_bytes(&app.svc, &s.tok, &format!("/acme/v2/exports/{id}/files/4")).await;
    assert_eq!(got, s.files[4].1);
    assert!(app.state.store.check_consistency().unwrap().is_empty());
    // delete: archive, side files and quota go
    call(
        &app.svc,
        "DELETE",
        &format!("/acme/v2/exports/{id}"),
        Some(&s.tok),
        None,
    )
    .await;
    let (_, storage) = call(&app.svc, "GET", "/acme/v2/org/storage", Some(&s.tok), None).await;
    assert_eq!(storage["exports"], 0);
    let problems = app.state.store.check_consistency().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(app.state.store.all_side_file_blobs().unwrap().len(), 0);
}

#[actix_web::test]
async fn missing_files_are_skipped_with_an_event_and_limits_keep_nothing() {
    let app = app_with(|c| c.janitor_interval = std::time::Duration::from_secs(1)).await;
    let s = setup(&app.svc).await;
    // a file whose content is gone
    let store = &app.state.store;
    let doc = store
        .get_doc(
            "acme",
            "c_rec",
            exportd::model::ids::ObjectId::parse(&s.d2).unwrap(),
        )
        .unwrap()
        .unwrap();
    let blob = exportd::model::files::blob_of(&doc.props["c_doc"]["c_f"]).unwrap();
    store.remove_blob_data(blob).unwrap();
    let (rec, entries) = run_export(
        &app.svc,
        &s.tok,
        json!({"label": "m", "objects": "c_recs", "exportFiles": true, "zipFiles": true}),
    )
    .await;
    let kept = rec["dataFile"]["size"].clone();
    assert_eq!(entries.len(), 5);
    assert_eq!(rec["stats"]["files"]["count"], 4);
    let docs = lines(&entries[0].1);
    assert_eq!(
        docs[1]["c_doc"]["c_f"]["path"],
        format!("/c_recs/{}/c_doc/c_f/content", s.d2)
    );
    let (_, full) = call(
        &app.svc,
        "GET",
        &format!(
            "/acme/v2/exports/{}?include=events",
            rec["_id"].as_str().unwrap()
        ),
        Some(&s.tok),
        None,
    )
    .await;
    let names: Vec<&str> = full["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"files.skipped")
            && names.contains(&"files.started")
            && names.contains(&"files.completed"),
        "{names:?}"
    );

    // side files that would cross the storage limit: error, nothing kept
    let (_, st) = call(&app.svc, "GET", "/acme/v2/org/storage", Some(&s.tok), None).await;
    let used = st["used"].as_u64().unwrap();
    call(
        &app.svc,
        "PATCH",
        "/sys/orgs/acme",
        Some(SYS),
        Some(json!({"storageLimit": used + 100_000})),
    )
    .await;
    let (code, v) = call(
        &app.svc,
        "POST",
        "/acme/v2/exports",
        Some(&s.tok),
        Some(json!({"label": "q", "objects": "c_recs", "exportFiles": true})),
    )
    .await;
    assert_eq!(code, 201);
    let rec = wait_ready(&app.svc, &s.tok, "acme", v["_id"].as_str().unwrap()).await;
    assert_eq!(rec["state"], "error");
    assert_eq!(
        rec["fault"]["errCode"],
        "cortex.accessDenied.storageLimitExceeded"
    );
    let (_, st) = call(&app.svc, "GET", "/acme/v2/org/storage", Some(&s.tok), None).await;
    assert_eq!(st["used"].as_u64().unwrap(), used);
    call(
        &app.svc,
        "PATCH",
        "/sys/orgs/acme",
        Some(SYS),
        Some(json!({"storageLimit": null, "exportTtlDays": 0.00003})),
    )
    .await;

    // expiry removes side files too
    let (_, v) = call(
        &app.svc,
        "POST",
        "/acme/v2/exports",
        Some(&s.tok),
        Some(json!({"label": "e", "objects": "c_recs", "exportFiles": true})),
    )
    .await;
    wait_ready(&app.svc, &s.tok, "acme", v["_id"].as_str().unwrap()).await;
    actix_web::rt::time::sleep(std::time::Duration::from_millis(4500)).await;
    let (_, st) = call(&app.svc, "GET", "/acme/v2/org/storage", Some(&s.tok), None).await;
    assert_eq!(
        st["exports"], kept,
        "only the first export (7 days) is left"
    );
    assert_eq!(store.all_side_file_blobs().unwrap().len(), 0);
    let problems = store.check_consistency().unwrap();
    // the blob removed by hand is the only finding: its document and the usage still count it
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].contains(&blob.to_hex()) && problems[1].contains("files_bytes: 200032"),
        "{problems:?}"
    );
}

#[actix_web::test]
async fn ten_thousand_small_files_export() {
    let app = app().await;
    let tok = org_with_admin(&app.svc, "acme").await;
    call(&app.svc, "POST", "/acme/v2/objects", Some(&tok), Some(json!({"name": "c_f", "properties": [{"name": "c_files", "type": "File", "array": true}]}))).await;
    let (_, d) = call(
        &app.svc,
        "POST",
        "/acme/v2/c_fs",
        Some(&tok),
        Some(json!({})),
    )
    .await;
    let id = d["_id"].as_str().unwrap().to_string();
    let doc_id = exportd::model::ids::ObjectId::parse(&id).unwrap();
    // 10,000 facets written straight through the store (the upload path is tested elsewhere)
    let store = &app.state.store;
    let mut doc = store.get_doc("acme", "c_f", doc_id).unwrap().unwrap();
    let mut items = Vec::new();
    for i in 0..10_000u32 {
        let mut w = store
            .blob_writer("acme", exportd::store::BlobKind::File)
            .unwrap();
        w.write_all(format!("file {i}").as_bytes()).unwrap();
        let meta = w.finish().unwrap();
        store.commit_blob(&meta).unwrap();
        store.unpin_blob(meta.id);
        items.push(exportd::model::files::facet(
            "text/plain",
            &format!("f{i}.txt"),
            meta.size,
            &meta.sha256,
            meta.id,
        ));
    }
    doc.props.insert("c_files".into(), Value::Array(items));
    store.update_doc("acme", "c_f", &doc, &[]).unwrap();
    let (rec, entries) = run_export(
        &app.svc,
        &tok,
        json!({"label": "many", "objects": "c_fs", "exportFiles": true, "zipFiles": true}),
    )
    .await;
    assert_eq!(entries.len(), 10_001);
    assert_eq!(rec["stats"]["files"]["count"], 10_000);
    assert_eq!(
        entries[10_000].0,
        format!("files/0000009999.c_fs.{id}.c_files.content.txt")
    );
    assert_eq!(entries[10_000].1, b"file 9999");
}
