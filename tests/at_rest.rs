//! Encryption at rest: no plaintext customer data on disk, and tampering is a fault.

mod common;

use actix_web::test::TestRequest;
use common::*;
use exportd::model::ids::ObjectId;
use serde_json::json;

const NEEDLE_DOC: &str = "ZEBRA-PLAINTEXT-7731-doc";
const NEEDLE_BULK: &str = "OKAPI-PLAINTEXT-4410-bulk";
const NEEDLE_FILE: &str = "NARWHAL-PLAINTEXT-9902-file";
const NEEDLE_NAME: &str = "QUOKKA-secret-filename";
// metadata records: an export's label and `where`, an object's label, an account's name
const NEEDLE_LABEL: &str = "WOMBAT-PLAINTEXT-2208-label";
const NEEDLE_WHERE: &str = "AXOLOTL-PLAINTEXT-5150-where";
const NEEDLE_ACCOUNT: &str = "PANGOLIN-PLAINTEXT-3377-account";

fn scan(dir: &std::path::Path, needles: &[&str], hits: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            scan(&p, needles, hits);
        } else {
            let bytes = std::fs::read(&p).unwrap();
            for n in needles {
                if bytes.windows(n.len()).any(|w| w == n.as_bytes()) {
                    hits.push(format!("{n} in {}", p.display()));
                }
            }
        }
    }
}

#[actix_web::test]
async fn no_plaintext_in_the_data_directory() {
    let app = app().await;
    let tok = org_with_admin(&app.svc, "acme").await;
    let (s, _) = call(
        &app.svc,
        "POST",
        "/acme/v2/objects",
        Some(&tok),
        Some(json!({"name": "c_rec", "label": NEEDLE_LABEL, "properties": [
            {"name": "c_text", "type": "String"},
            {"name": "c_any", "type": "Any"},
            {"name": "c_doc", "type": "Document", "properties": [{"name": "c_inner", "type": "String"}]},
            {"name": "c_file", "type": "File"}]})),
    )
    .await;
    assert_eq!(s, 201);
    let mut ids = Vec::new();
    for i in 0..50 {
        let (s, d) = call(
            &app.svc,
            "POST",
            "/acme/v2/c_recs",
            Some(&tok),
            Some(json!({"c_text": format!("{NEEDLE_DOC} {i}"), "c_any": {"k": NEEDLE_DOC}, "c_doc": {"c_inner": NEEDLE_DOC}})),
        )
        .await;
        assert_eq!(s, 201);
        ids.push(d["_id"].as_str().unwrap().to_string());
    }
    let body: String = (0..200)
        .map(|i| json!({"c_text": format!("{NEEDLE_BULK} {i}")}).to_string() + "\n")
        .collect();
    let (s, r) = raw(
        &app.svc,
        TestRequest::post()
            .uri("/acme/v2/c_recs")
            .insert_header(("Authorization", format!("Bearer {tok}")))
            .insert_header(("Content-Type", "application/x-ndjson"))
            .set_payload(body),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(r["data"]["inserted"], 200);
    // a file of three segments full of the needle
    let content = NEEDLE_FILE.repeat(150_000 / NEEDLE_FILE.len());
    let (s, _) = raw(
        &app.svc,
        TestRequest::put()
            .uri(&format!(
                "/acme/v2/c_recs/{}/c_file/content?filename={NEEDLE_NAME}.txt",
                ids[0]
            ))
            .insert_header(("Authorization", format!("Bearer {tok}")))
            .insert_header(("Content-Type", "text/plain"))
            .set_payload(content.clone()),
    )
    .await;
    assert_eq!(s, 201);
    // the data really is there and readable through the API
    let (s, got) = raw_bytes(
        &app.svc,
        TestRequest::get()
            .uri(&format!("/acme/v2/c_recs/{}/c_file/content", ids[0]))
            .insert_header(("Authorization", format!("Bearer {tok}"))),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(got, content.as_bytes());
    let (_, d) = call(
        &app.svc,
        "GET",
        &format!("/acme/v2/c_recs/{}", ids[1]),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(d["c_text"], format!("{NEEDLE_DOC} 1"));
    // an export whose label and `where` carry customer data, and an account's name
    let (s, e) = call(
        &app.svc,
        "POST",
        "/acme/v2/exports",
        Some(&tok),
        Some(json!({"label": NEEDLE_LABEL, "objects": "c_recs",
            "where": json!({"c_text": {"$regex": format!("/^{NEEDLE_WHERE}/")}}).to_string()})),
    )
    .await;
    assert_eq!(s, 201, "{e}");
    let done = wait_ready(&app.svc, &tok, "acme", e["_id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "ready", "{done}");
    assert_eq!(done["label"], NEEDLE_LABEL);
    let (s, a) = call(
        &app.svc,
        "POST",
        "/acme/v2/accounts",
        Some(&tok),
        Some(
            json!({"email": "reader@example.com", "name": NEEDLE_ACCOUNT,
            "password": "correct horse battery staple", "roles": []}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{a}");

    app.state.store.flush().unwrap();
    let mut hits = Vec::new();
    scan(
        app.dir.path(),
        &[
            NEEDLE_DOC,
            NEEDLE_BULK,
            NEEDLE_FILE,
            NEEDLE_NAME,
            NEEDLE_LABEL,
            NEEDLE_WHERE,
            NEEDLE_ACCOUNT,
        ],
        &mut hits,
    );
    // the scan itself works: a plaintext file planted in the dir is found
    std::fs::write(app.dir.path().join("planted"), NEEDLE_FILE).unwrap();
    let mut control = Vec::new();
    scan(app.dir.path(), &[NEEDLE_FILE], &mut control);
    assert_eq!(control.len(), 1);
    assert!(hits.is_empty(), "plaintext found on disk: {hits:?}");
}

async fn setup_with_file() -> (
    TestApp<
        impl actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
            Error = actix_web::Error,
        >,
    >,
    String,
    String,
    Vec<u8>,
) {
    let app = app().await;
    let tok = org_with_admin(&app.svc, "acme").await;
    call(
        &app.svc,
        "POST",
        "/acme/v2/objects",
        Some(&tok),
        Some(json!({"name": "c_rec", "properties": [{"name": "c_text", "type": "String"}, {"name": "c_file", "type": "File"}]})),
    )
    .await;
    let (_, d) = call(
        &app.svc,
        "POST",
        "/acme/v2/c_recs",
        Some(&tok),
        Some(json!({"c_text": "hello"})),
    )
    .await;
    let id = d["_id"].as_str().unwrap().to_string();
    let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (s, _) = raw(
        &app.svc,
        TestRequest::put()
            .uri(&format!("/acme/v2/c_recs/{id}/c_file/content"))
            .insert_header(("Authorization", format!("Bearer {tok}")))
            .insert_header(("Content-Type", "application/octet-stream"))
            .set_payload(content.clone()),
    )
    .await;
    assert_eq!(s, 201);
    (app, tok, id, content)
}

fn file_blob(app_store: &exportd::store::Store, id: &str) -> ObjectId {
    let doc = app_store
        .get_doc("acme", "c_rec", ObjectId::parse(id).unwrap())
        .unwrap()
        .unwrap();
    exportd::model::files::blob_of(&doc.props["c_file"]).unwrap()
}

#[actix_web::test]
async fn every_flipped_byte_of_a_segment_or_key_is_detected() {
    let (app, _tok, id, content) = setup_with_file().await;
    let store = &app.state.store;
    let blob = file_blob(store, &id);
    let reader = store.blob_reader("acme", blob).unwrap();
    assert_eq!(reader.read_all().unwrap(), content);
    assert_eq!(reader.meta.segments, 4);

    // the last (short) segment: every byte position
    let mut seg_key = blob.bytes().to_vec();
    seg_key.extend_from_slice(&3u32.to_be_bytes());
    let original = store.t.blobs.get(&seg_key).unwrap().unwrap();
    for i in 0..original.len() {
        let mut t = original.to_vec();
        t[i] ^= 0x80;
        store.t.blobs.insert(&seg_key, t).unwrap();
        assert!(
            reader.segment(3).is_err(),
            "flip at byte {i} of the segment went unnoticed"
        );
    }
    store.t.blobs.insert(&seg_key, original.clone()).unwrap();
    assert!(reader.segment(3).is_ok());

    // every byte of the stored meta (wrapped key, prefix, size, sha...)
    let meta_raw = store.t.blob_meta.get(blob.bytes()).unwrap().unwrap();
    for i in 0..meta_raw.len() {
        let mut t = meta_raw.to_vec();
        t[i] ^= 0x01;
        store.t.blob_meta.insert(blob.bytes(), t).unwrap();
        // the meta is a sealed record: no flip, even in its created timestamp, opens
        assert!(
            store.blob_reader("acme", blob).is_err(),
            "flip at meta byte {i} went unnoticed"
        );
    }
    store.t.blob_meta.insert(blob.bytes(), meta_raw).unwrap();

    // dropping the last segment (truncation) or swapping two segments is detected
    store.t.blobs.remove(&seg_key).unwrap();
    assert!(store.blob_reader("acme", blob).unwrap().read_all().is_err());
    store.t.blobs.insert(&seg_key, original).unwrap();
    let mut k0 = blob.bytes().to_vec();
    k0.extend_from_slice(&0u32.to_be_bytes());
    let mut k1 = blob.bytes().to_vec();
    k1.extend_from_slice(&1u32.to_be_bytes());
    let (s0, s1) = (
        store.t.blobs.get(&k0).unwrap().unwrap(),
        store.t.blobs.get(&k1).unwrap().unwrap(),
    );
    store.t.blobs.insert(&k0, s1.clone()).unwrap();
    store.t.blobs.insert(&k1, s0.clone()).unwrap();
    assert!(reader.segment(0).is_err() && reader.segment(1).is_err());
    store.t.blobs.insert(&k0, s0).unwrap();
    store.t.blobs.insert(&k1, s1).unwrap();
    assert_eq!(reader.read_all().unwrap(), content);
}

#[actix_web::test]
async fn tampered_file_is_a_fault_over_http_and_the_server_keeps_serving() {
    let (app, tok, id, _content) = setup_with_file().await;
    let store = &app.state.store;
    let blob = file_blob(store, &id);
    let mut k = blob.bytes().to_vec();
    k.extend_from_slice(&0u32.to_be_bytes());
    let mut seg = store.t.blobs.get(&k).unwrap().unwrap().to_vec();
    seg[100] ^= 0xff;
    store.t.blobs.insert(&k, seg).unwrap();
    let got = raw(
        &app.svc,
        TestRequest::get()
            .uri(&format!("/acme/v2/c_recs/{id}/c_file/content"))
            .insert_header(("Authorization", format!("Bearer {tok}"))),
    )
    .await;
    assert_fault(&got, 500, "cortex.error.integrity", None);
    let (s, d) = call(
        &app.svc,
        "GET",
        &format!("/acme/v2/c_recs/{id}"),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(d["c_text"], "hello");
}

#[actix_web::test]
async fn tampered_or_swapped_documents_are_faults() {
    let (app, tok, id, _) = setup_with_file().await;
    let (_, other) = call(
        &app.svc,
        "POST",
        "/acme/v2/c_recs",
        Some(&tok),
        Some(json!({"c_text": "other"})),
    )
    .await;
    let other = other["_id"].as_str().unwrap().to_string();
    let store = &app.state.store;
    let key_a = exportd::store::data::doc_key("acme", "c_rec", ObjectId::parse(&id).unwrap());
    let key_b = exportd::store::data::doc_key("acme", "c_rec", ObjectId::parse(&other).unwrap());
    let sealed = store.t.docs.get(&key_a).unwrap().unwrap();
    for i in 0..sealed.len() {
        let mut t = sealed.to_vec();
        t[i] ^= 0x04;
        assert!(
            store.open_doc("acme", &key_a, &t).is_err(),
            "flip at {i} undetected"
        );
    }
    // the value of document A under the key of B does not open (AAD binds the key)
    assert!(store.open_doc("acme", &key_b, &sealed).is_err());
    let mut t = sealed.to_vec();
    t[40] ^= 0x01;
    store.t.docs.insert(&key_a, t).unwrap();
    let got = call(
        &app.svc,
        "GET",
        &format!("/acme/v2/c_recs/{id}"),
        Some(&tok),
        None,
    )
    .await;
    assert_fault(&got, 500, "cortex.error.integrity", None);
    let (s, _) = call(
        &app.svc,
        "GET",
        &format!("/acme/v2/c_recs/{other}"),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(s, 200);
}
