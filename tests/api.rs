//! API integration tests for exportd (SPEC §1–3, §6): every endpoint, its bad inputs and its
//! access denials, against a real app over a temp data dir.

mod common;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::test::{self, TestRequest};
use common::{SYS, assert_fault, call, org_with_admin, raw, sub_paths};
use serde_json::{Value, json};
use sha2::Digest;

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

/// One request; returns status, response headers and the raw body.
async fn send<S, B>(svc: &S, req: TestRequest) -> (u16, HeaderMap, Vec<u8>)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    match svc.call(req.to_request()).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = test::read_body(resp).await;
            (status, headers, body.to_vec())
        }
        Err(e) => {
            let r = e.error_response();
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            let body = actix_web::body::to_bytes(r.into_body())
                .await
                .unwrap_or_default();
            (status, headers, body.to_vec())
        }
    }
}

fn hdr(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn bearer(tok: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {tok}"))
}

fn sha_hex(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

fn json_of(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or(Value::Null)
}

fn is_oid(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 24 && s.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The sub-fault of a validation fault at `path`; panics with the body when there is none.
fn sub<'a>(v: &'a Value, path: &str) -> &'a Value {
    v["faults"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["path"] == path))
        .unwrap_or_else(|| panic!("no sub-fault at {path}: {v}"))
}

/// Asserts a 400 validation fault holding a sub-fault at `path` with `err_code`.
fn assert_invalid_at(got: &(u16, Value), path: &str, err_code: &str) {
    assert_fault(got, 400, "cortex.validation.failed", None);
    let s = sub(&got.1, path);
    assert_eq!(s["errCode"], err_code, "sub-fault at {path}: {}", got.1);
}

/// Creates a non-admin account (roles ["user"]) through the org route; returns (id, token).
async fn user<S, B>(svc: &S, org: &str, admin: &str, email: &str) -> (String, String)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = call(
        svc,
        "POST",
        &format!("/{org}/v2/accounts"),
        Some(admin),
        Some(json!({"email": email, "roles": ["user"], "password": "user-password-1"})),
    )
    .await;
    assert_eq!(r.0, 201, "create user {email}: {}", r.1);
    (
        r.1["_id"].as_str().unwrap().to_string(),
        r.1["token"].as_str().unwrap().to_string(),
    )
}

/// The admin account's id (through `me`).
async fn me_id<S, B>(svc: &S, org: &str, tok: &str) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = call(
        svc,
        "GET",
        &format!("/{org}/v2/accounts/me"),
        Some(tok),
        None,
    )
    .await;
    assert_eq!(r.0, 200, "me: {}", r.1);
    r.1["_id"].as_str().unwrap().to_string()
}

async fn define<S, B>(svc: &S, org: &str, tok: &str, def: Value) -> Value
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = call(
        svc,
        "POST",
        &format!("/{org}/v2/objects"),
        Some(tok),
        Some(def),
    )
    .await;
    assert_eq!(r.0, 201, "define object: {}", r.1);
    r.1
}

async fn create_doc<S, B>(svc: &S, org: &str, tok: &str, plural: &str, body: Value) -> Value
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = call(
        svc,
        "POST",
        &format!("/{org}/v2/{plural}"),
        Some(tok),
        Some(body),
    )
    .await;
    assert_eq!(r.0, 201, "create doc: {}", r.1);
    r.1
}

async fn put_file<S, B>(svc: &S, path: &str, tok: &str, mime: &str, body: &[u8]) -> (u16, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    raw(
        svc,
        TestRequest::put()
            .uri(path)
            .insert_header(bearer(tok))
            .insert_header(("Content-Type", mime))
            .set_payload(body.to_vec()),
    )
    .await
}

async fn storage<S, B>(svc: &S, org: &str, tok: &str) -> Value
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = call(
        svc,
        "GET",
        &format!("/{org}/v2/org/storage"),
        Some(tok),
        None,
    )
    .await;
    assert_eq!(r.0, 200, "storage: {}", r.1);
    assert_eq!(r.1["object"], "storage");
    r.1
}

/// Signs in; returns (session cookie pair "exportd_session=...", csrf token, Set-Cookie).
async fn login<S, B>(svc: &S, org: &str, email: &str, password: &str) -> (String, String, String)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let (s, h, b) = send(
        svc,
        TestRequest::post()
            .uri(&format!("/{org}/v2/accounts/login"))
            .insert_header(("Content-Type", "application/json"))
            .set_payload(json!({"email": email, "password": password}).to_string()),
    )
    .await;
    let v = json_of(&b);
    assert_eq!(s, 200, "login: {v}");
    let set_cookie = hdr(&h, "set-cookie");
    let pair = set_cookie
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    assert!(pair.starts_with("exportd_session="), "cookie: {set_cookie}");
    let csrf = v["csrfToken"].as_str().expect("csrfToken").to_string();
    (pair, csrf, set_cookie)
}

fn parent_def() -> Value {
    json!({"name": "c_parent", "properties": [{"name": "c_title", "type": "String"}]})
}

/// A definition using every property type (c_parent must exist first).
fn thing_def() -> Value {
    json!({
        "name": "c_thing", "pluralName": "c_things", "label": "Thing",
        "properties": [
            {"name": "c_name", "type": "String", "required": true},
            {"name": "c_count", "type": "Number"},
            {"name": "c_flag", "type": "Boolean"},
            {"name": "c_when", "type": "Date"},
            {"name": "c_oid", "type": "ObjectId"},
            {"name": "c_parent", "type": "Reference", "sourceObject": "c_parents"},
            {"name": "c_who", "type": "Reference", "sourceObject": "account"},
            {"name": "c_tags", "type": "String", "array": true},
            {"name": "c_items", "type": "Document", "array": true, "properties": [
                {"name": "c_x", "type": "Number"},
                {"name": "c_file", "type": "File"}
            ]},
            {"name": "c_meta", "type": "Document", "properties": [
                {"name": "c_note", "type": "String"},
                {"name": "c_file", "type": "File"}
            ]},
            {"name": "c_opt", "type": "String", "optional": true},
            {"name": "c_any", "type": "Any"},
            {"name": "c_file", "type": "File"},
            {"name": "c_files", "type": "File", "array": true}
        ]
    })
}

/// An org "acme" with c_parent and c_thing defined; returns the admin token.
async fn setup<S, B>(svc: &S, org: &str) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let admin = org_with_admin(svc, org).await;
    define(svc, org, &admin, parent_def()).await;
    define(svc, org, &admin, thing_def()).await;
    admin
}

// ---------------------------------------------------------------------------------------------
// health, unknown routes
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn health_is_ok() {
    let app = common::app().await;
    let (s, v) = call(&app.svc, "GET", "/health", None, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["object"], "health");
    assert_eq!(v["status"], "ok");
}

#[actix_web::test]
async fn unknown_routes_and_methods_are_route_faults() {
    let app = common::app().await;
    let admin = setup(&app.svc, "acme").await;
    let d = create_doc(&app.svc, "acme", &admin, "c_things", json!({"c_name": "a"})).await;
    let id = d["_id"].as_str().unwrap();
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        ("GET", "/nope".into(), None),
        ("GET", "/sys".into(), Some(SYS)),
        ("DELETE", "/sys/orgs".into(), Some(SYS)),
        ("DELETE", "/sys/orgs/acme".into(), Some(SYS)),
        ("GET", "/acme/v3/objects".into(), Some(admin.as_str())),
        ("PUT", "/acme/v2/objects".into(), Some(admin.as_str())),
        (
            "DELETE",
            "/acme/v2/objects/c_thing".into(),
            Some(admin.as_str()),
        ),
        (
            "POST",
            format!("/acme/v2/c_things/{id}"),
            Some(admin.as_str()),
        ),
        ("PUT", "/acme/v2/c_things".into(), Some(admin.as_str())),
    ];
    for (m, p, t) in cases {
        let r = call(&app.svc, m, &p, t, None).await;
        assert_fault(&r, 404, "cortex.notFound.route", None);
        assert_eq!(r.1["code"], "kNotFound", "{m} {p}");
    }
}

// ---------------------------------------------------------------------------------------------
// /sys: orgs
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn sys_create_and_get_org() {
    let app = common::app().await;
    let r = call(
        &app.svc,
        "POST",
        "/sys/orgs",
        Some(SYS),
        Some(json!({"code": "acme"})),
    )
    .await;
    assert_eq!(r.0, 201, "{}", r.1);
    let org = r.1;
    assert_eq!(org["object"], "org");
    assert_eq!(org["code"], "acme");
    assert_eq!(org["name"], "acme", "name defaults to the code");
    assert_eq!(org["storageLimit"], Value::Null);
    assert_eq!(org["exportTtlDays"], 7.0);
    assert!(is_oid(&org["_id"]), "{org}");

    let r = call(
        &app.svc,
        "POST",
        "/sys/orgs",
        Some(SYS),
        Some(json!({"code": "beta-2", "name": "Beta Inc", "storageLimit": 1000})),
    )
    .await;
    assert_eq!(r.0, 201, "{}", r.1);
    assert_eq!(r.1["name"], "Beta Inc");
    assert_eq!(r.1["storageLimit"], 1000);

    let g = call(&app.svc, "GET", "/sys/orgs/acme", Some(SYS), None).await;
    assert_eq!(g.0, 200, "{}", g.1);
    assert_eq!(g.1, org);

    let r = call(&app.svc, "GET", "/sys/orgs/nope", Some(SYS), None).await;
    assert_fault(&r, 404, "cortex.notFound.org", None);
}

#[actix_web::test]
async fn sys_create_org_validation() {
    let app = common::app().await;
    let long = "a".repeat(41);
    for code in [
        "Acme",
        "-acme",
        "ac_me",
        "ac me",
        "",
        long.as_str(),
        "sys",
        "health",
    ] {
        let r = call(
            &app.svc,
            "POST",
            "/sys/orgs",
            Some(SYS),
            Some(json!({"code": code})),
        )
        .await;
        assert_fault(&r, 400, "cortex.validation.failed", None);
        assert_eq!(sub_paths(&r.1), vec!["code"], "code {code:?}: {}", r.1);
    }
    let r = call(
        &app.svc,
        "POST",
        "/sys/orgs",
        Some(SYS),
        Some(json!({"code": 5})),
    )
    .await;
    assert_invalid_at(&r, "code", "cortex.validation.invalidValue");
    let r = call(&app.svc, "POST", "/sys/orgs", Some(SYS), Some(json!({}))).await;
    assert_invalid_at(&r, "code", "cortex.validation.invalidValue");
    let r = call(
        &app.svc,
        "POST",
        "/sys/orgs",
        Some(SYS),
        Some(json!({"code": "ok", "bogus": 1})),
    )
    .await;
    assert_invalid_at(&r, "bogus", "cortex.validation.unknownField");
    let r = call(
        &app.svc,
        "POST",
        "/sys/orgs",
        Some(SYS),
        Some(json!({"code": "ok", "storageLimit": -1})),
    )
    .await;
    assert_invalid_at(&r, "storageLimit", "cortex.validation.invalidValue");
    let r = call(
        &app.svc,
        "POST",
        "/sys/orgs",
        Some(SYS),
        Some(json!(["code"])),
    )
    .await;
    assert_invalid_at(&r, "body", "cortex.validation.invalidValue");
    // nothing was created by the refused requests
    let l = call(&app.svc, "GET", "/sys/orgs?total=true", Some(SYS), None).await;
    assert_eq!(l.1["total"], 0, "{}", l.1);
    // the longest valid code
    let max = format!("a{}", "-9".repeat(19) + "z");
    assert_eq!(max.len(), 40);
    let r = call(
        &app.svc,
        "POST",
        "/sys/orgs",
        Some(SYS),
        Some(json!({"code": max})),
    )
    .await;
    assert_eq!(r.0, 201, "{}", r.1);
}

#[actix_web::test]
async fn sys_create_org_duplicate_is_409() {
    let app = common::app().await;
    let r = call(
        &app.svc,
        "POST",
        "/sys/orgs",
        Some(SYS),
        Some(json!({"code": "acme"})),
    )
    .await;
    assert_eq!(r.0, 201);
    let r = call(
        &app.svc,
        "POST",
        "/sys/orgs",
        Some(SYS),
        Some(json!({"code": "acme", "name": "x"})),
    )
    .await;
    assert_fault(&r, 409, "cortex.exists.org", None);
    assert_eq!(r.1["code"], "kExists");
}

#[actix_web::test]
async fn sys_list_orgs_paging() {
    let app = common::app().await;
    for c in ["o1", "o2", "o3"] {
        let r = call(
            &app.svc,
            "POST",
            "/sys/orgs",
            Some(SYS),
            Some(json!({"code": c})),
        )
        .await;
        assert_eq!(r.0, 201);
    }
    let (s, v) = call(&app.svc, "GET", "/sys/orgs", Some(SYS), None).await;
    assert_eq!(s, 200);
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"].as_array().unwrap().len(), 3);
    assert_eq!(v["hasMore"], false);
    assert!(v.get("total").is_none(), "total only when asked: {v}");

    let (_, v) = call(
        &app.svc,
        "GET",
        "/sys/orgs?limit=2&total=true",
        Some(SYS),
        None,
    )
    .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["hasMore"], true);
    assert_eq!(v["total"], 3);
    let first_two: Vec<Value> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["code"].clone())
        .collect();

    let (_, v) = call(&app.svc, "GET", "/sys/orgs?limit=2&skip=2", Some(SYS), None).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["hasMore"], false);
    assert!(
        !first_two.contains(&v["data"][0]["code"]),
        "skip overlaps: {v}"
    );

    for q in ["limit=0", "limit=1001", "limit=x"] {
        let r = call(&app.svc, "GET", &format!("/sys/orgs?{q}"), Some(SYS), None).await;
        assert_fault(&r, 400, "cortex.invalidArgument.limit", Some("limit"));
    }
    let r = call(&app.svc, "GET", "/sys/orgs?skip=-1", Some(SYS), None).await;
    assert_fault(&r, 400, "cortex.invalidArgument.skip", Some("skip"));
    let r = call(&app.svc, "GET", "/sys/orgs?foo=1", Some(SYS), None).await;
    assert_fault(
        &r,
        400,
        "cortex.invalidArgument.unknownParameter",
        Some("foo"),
    );
}

#[actix_web::test]
async fn sys_list_orgs_newest_first() {
    let app = common::app().await;
    for c in ["zeta", "alpha", "mid"] {
        let r = call(
            &app.svc,
            "POST",
            "/sys/orgs",
            Some(SYS),
            Some(json!({"code": c})),
        )
        .await;
        assert_eq!(r.0, 201);
    }
    let (_, v) = call(&app.svc, "GET", "/sys/orgs", Some(SYS), None).await;
    let codes: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, vec!["mid", "alpha", "zeta"], "{v}");
}

#[actix_web::test]
async fn sys_patch_org() {
    let app = common::app().await;
    let r = call(
        &app.svc,
        "POST",
        "/sys/orgs",
        Some(SYS),
        Some(json!({"code": "acme"})),
    )
    .await;
    assert_eq!(r.0, 201);
    let r = call(
        &app.svc,
        "PATCH",
        "/sys/orgs/acme",
        Some(SYS),
        Some(json!({"storageLimit": 5000, "exportTtlDays": 0.0001, "name": "Acme Corp"})),
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["storageLimit"], 5000);
    assert_eq!(r.1["exportTtlDays"], 0.0001);
    assert_eq!(r.1["name"], "Acme Corp");
    let g = call(&app.svc, "GET", "/sys/orgs/acme", Some(SYS), None).await;
    assert_eq!(g.1["storageLimit"], 5000);
    assert_eq!(g.1["exportTtlDays"], 0.0001);
    assert_eq!(g.1["name"], "Acme Corp");

    // null clears the limit; other fields are kept
    let r = call(
        &app.svc,
        "PATCH",
        "/sys/orgs/acme",
        Some(SYS),
        Some(json!({"storageLimit": null})),
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["storageLimit"], Value::Null);
    assert_eq!(r.1["exportTtlDays"], 0.0001);

    for bad in [json!(0), json!(-1), json!("7"), json!(true)] {
        let r = call(
            &app.svc,
            "PATCH",
            "/sys/orgs/acme",
            Some(SYS),
            Some(json!({"exportTtlDays": bad})),
        )
        .await;
        assert_invalid_at(&r, "exportTtlDays", "cortex.validation.invalidValue");
    }
    let r = call(
        &app.svc,
        "PATCH",
        "/sys/orgs/acme",
        Some(SYS),
        Some(json!({"storageLimit": 1.5})),
    )
    .await;
    assert_invalid_at(&r, "storageLimit", "cortex.validation.invalidValue");
    let r = call(
        &app.svc,
        "PATCH",
        "/sys/orgs/acme",
        Some(SYS),
        Some(json!({"code": "other"})),
    )
    .await;
    assert_invalid_at(&r, "code", "cortex.validation.readOnly");
    let r = call(
        &app.svc,
        "PATCH",
        "/sys/orgs/acme",
        Some(SYS),
        Some(json!({"bogus": 1})),
    )
    .await;
    assert_invalid_at(&r, "bogus", "cortex.validation.unknownField");
    let r = call(
        &app.svc,
        "PATCH",
        "/sys/orgs/nope",
        Some(SYS),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_fault(&r, 404, "cortex.notFound.org", None);
    // refused patches changed nothing
    let g = call(&app.svc, "GET", "/sys/orgs/acme", Some(SYS), None).await;
    assert_eq!(g.1["exportTtlDays"], 0.0001);
    assert_eq!(g.1["code"], "acme");
}

#[actix_web::test]
async fn sys_routes_need_the_system_token() {
    let app = common::app().await;
    let admin = org_with_admin(&app.svc, "acme").await;
    let routes: Vec<(&str, &str, Option<Value>)> = vec![
        ("GET", "/sys/orgs", None),
        ("POST", "/sys/orgs", Some(json!({"code": "x"}))),
        ("GET", "/sys/orgs/acme", None),
        ("PATCH", "/sys/orgs/acme", Some(json!({"name": "x"}))),
        (
            "POST",
            "/sys/orgs/acme/accounts",
            Some(json!({"email": "x@y.z"})),
        ),
    ];
    for (m, p, b) in routes {
        let r = call(&app.svc, m, p, None, b.clone()).await;
        assert_fault(&r, 401, "cortex.unauthorized.noCredentials", None);
        let r = call(&app.svc, m, p, Some(&admin), b.clone()).await;
        assert_fault(&r, 403, "cortex.accessDenied.systemOnly", None);
        let r = call(&app.svc, m, p, Some("not-a-token"), b).await;
        assert_fault(&r, 403, "cortex.accessDenied.systemOnly", None);
    }
    // nothing was created by the refused calls
    let l = call(&app.svc, "GET", "/sys/orgs?total=true", Some(SYS), None).await;
    assert_eq!(l.1["total"], 1);
    // and the system token cannot use org routes
    for p in [
        "/acme/v2/accounts/me",
        "/acme/v2/objects",
        "/acme/v2/org/storage",
    ] {
        let r = call(&app.svc, "GET", p, Some(SYS), None).await;
        assert_fault(&r, 403, "cortex.accessDenied.systemToken", None);
    }
}

// ---------------------------------------------------------------------------------------------
// accounts and tokens
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn sys_create_account() {
    let app = common::app().await;
    let r = call(
        &app.svc,
        "POST",
        "/sys/orgs",
        Some(SYS),
        Some(json!({"code": "acme"})),
    )
    .await;
    assert_eq!(r.0, 201);
    let r = call(
        &app.svc,
        "POST",
        "/sys/orgs/acme/accounts",
        Some(SYS),
        Some(json!({"email": "Boss@Acme.test", "name": "Boss", "roles": ["administrator"], "password": "long-enough"})),
    )
    .await;
    assert_eq!(r.0, 201, "{}", r.1);
    let a = r.1;
    assert_eq!(a["object"], "account");
    assert_eq!(a["email"], "Boss@Acme.test");
    assert_eq!(a["name"], "Boss");
    assert_eq!(a["roles"], json!(["administrator"]));
    assert!(is_oid(&a["_id"]) && is_oid(&a["tokenId"]), "{a}");
    assert!(
        a.get("password").is_none() && a.get("passwordHash").is_none(),
        "{a}"
    );
    let tok = a["token"].as_str().unwrap();
    let me = call(&app.svc, "GET", "/acme/v2/accounts/me", Some(tok), None).await;
    assert_eq!(me.0, 200, "{}", me.1);
    assert_eq!(me.1["_id"], a["_id"]);

    // default role is "user"
    let r = call(
        &app.svc,
        "POST",
        "/sys/orgs/acme/accounts",
        Some(SYS),
        Some(json!({"email": "u@acme.test"})),
    )
    .await;
    assert_eq!(r.0, 201, "{}", r.1);
    assert_eq!(r.1["roles"], json!(["user"]));
    assert_eq!(r.1["name"], Value::Null);

    // duplicate email, case-insensitively
    let r = call(
        &app.svc,
        "POST",
        "/sys/orgs/acme/accounts",
        Some(SYS),
        Some(json!({"email": "boss@acme.TEST"})),
    )
    .await;
    assert_fault(&r, 409, "cortex.exists.account", None);

    let bad: Vec<(Value, &str, &str)> = vec![
        (
            json!({"email": "not-an-email"}),
            "email",
            "cortex.validation.invalidValue",
        ),
        (json!({}), "email", "cortex.validation.invalidValue"),
        (
            json!({"email": "a b@c.d"}),
            "email",
            "cortex.validation.invalidValue",
        ),
        (
            json!({"email": "p@acme.test", "password": "short"}),
            "password",
            "cortex.validation.invalidValue",
        ),
        (
            json!({"email": "r@acme.test", "roles": ["bad role!"]}),
            "roles[0]",
            "cortex.validation.invalidValue",
        ),
        (
            json!({"email": "r@acme.test", "roles": "administrator"}),
            "roles",
            "cortex.validation.invalidValue",
        ),
        (
            json!({"email": "t@acme.test", "token": "x"}),
            "token",
            "cortex.validation.readOnly",
        ),
        (
            json!({"email": "b@acme.test", "bogus": true}),
            "bogus",
            "cortex.validation.unknownField",
        ),
    ];
    for (body, path, code) in bad {
        let r = call(
            &app.svc,
            "POST",
            "/sys/orgs/acme/accounts",
            Some(SYS),
            Some(body),
        )
        .await;
        assert_invalid_at(&r, path, code);
    }
    let r = call(
        &app.svc,
        "POST",
        "/sys/orgs/nope/accounts",
        Some(SYS),
        Some(json!({"email": "a@b.c"})),
    )
    .await;
    assert_fault(&r, 404, "cortex.notFound.org", None);

    // the administrator role by its fixed id; the same email in another org is a new account
    let r = call(
        &app.svc,
        "POST",
        "/sys/orgs",
        Some(SYS),
        Some(json!({"code": "other"})),
    )
    .await;
    assert_eq!(r.0, 201);
    let r = call(
        &app.svc,
        "POST",
        "/sys/orgs/other/accounts",
        Some(SYS),
        Some(json!({"email": "boss@acme.test", "roles": ["000000000000000000000004"]})),
    )
    .await;
    assert_eq!(r.0, 201, "{}", r.1);
    assert_eq!(r.1["roles"], json!(["administrator"]));
    let otok = r.1["token"].as_str().unwrap().to_string();
    let r = call(&app.svc, "GET", "/other/v2/accounts", Some(&otok), None).await;
    assert_eq!(r.0, 200, "an administrator: {}", r.1);
    let r = call(&app.svc, "GET", "/acme/v2/accounts/me", Some(&otok), None).await;
    assert_fault(&r, 404, "cortex.notFound.org", None);
}

#[actix_web::test]
async fn org_accounts_admin_only() {
    let app = common::app().await;
    let admin = org_with_admin(&app.svc, "acme").await;
    let r = call(
        &app.svc,
        "POST",
        "/acme/v2/accounts",
        Some(&admin),
        Some(json!({"email": "u1@acme.test", "roles": ["user", "analyst"]})),
    )
    .await;
    assert_eq!(r.0, 201, "{}", r.1);
    assert_eq!(r.1["roles"], json!(["user", "analyst"]));
    let utok = r.1["token"].as_str().unwrap().to_string();

    let r = call(
        &app.svc,
        "POST",
        "/acme/v2/accounts",
        Some(&utok),
        Some(json!({"email": "u2@acme.test"})),
    )
    .await;
    assert_fault(&r, 403, "cortex.accessDenied.role", None);
    let r = call(&app.svc, "GET", "/acme/v2/accounts", Some(&utok), None).await;
    assert_fault(&r, 403, "cortex.accessDenied.role", None);
    let r = call(
        &app.svc,
        "POST",
        "/acme/v2/accounts",
        Some(&admin),
        Some(json!({"email": "U1@acme.test"})),
    )
    .await;
    assert_fault(&r, 409, "cortex.exists.account", None);
    let r = call(
        &app.svc,
        "POST",
        "/acme/v2/accounts",
        Some(&admin),
        Some(json!({"email": "nope"})),
    )
    .await;
    assert_invalid_at(&r, "email", "cortex.validation.invalidValue");

    let (s, v) = call(
        &app.svc,
        "GET",
        "/acme/v2/accounts?total=true",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["object"], "list");
    assert_eq!(v["total"], 2);
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["email"], "u1@acme.test", "newest first: {v}");
    for a in data {
        assert!(
            a.get("token").is_none() && a.get("tokenId").is_none(),
            "token leaked: {a}"
        );
    }
    let (_, v) = call(
        &app.svc,
        "GET",
        "/acme/v2/accounts?limit=1",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["hasMore"], true);
    let r = call(
        &app.svc,
        "GET",
        "/acme/v2/accounts?limit=0",
        Some(&admin),
        None,
    )
    .await;
    assert_fault(&r, 400, "cortex.invalidArgument.limit", Some("limit"));
    let r = call(
        &app.svc,
        "GET",
        "/acme/v2/accounts?where=x",
        Some(&admin),
        None,
    )
    .await;
    assert_fault(
        &r,
        400,
        "cortex.invalidArgument.unknownParameter",
        Some("where"),
    );
}

#[actix_web::test]
async fn get_account_is_self_or_admin() {
    let app = common::app().await;
    let admin = org_with_admin(&app.svc, "acme").await;
    let admin_id = me_id(&app.svc, "acme", &admin).await;
    let (uid, utok) = user(&app.svc, "acme", &admin, "u@acme.test").await;

    let r = call(
        &app.svc,
        "GET",
        &format!("/acme/v2/accounts/{uid}"),
        Some(&utok),
        None,
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["email"], "u@acme.test");
    assert!(r.1.get("token").is_none(), "{}", r.1);
    let r = call(
        &app.svc,
        "GET",
        &format!("/acme/v2/accounts/{admin_id}"),
        Some(&utok),
        None,
    )
    .await;
    assert_fault(&r, 403, "cortex.accessDenied.role", None);
    let r = call(
        &app.svc,
        "GET",
        &format!("/acme/v2/accounts/{uid}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["_id"], uid);
    let r = call(
        &app.svc,
        "GET",
        "/acme/v2/accounts/0123456789abcdef01234567",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.0, 404, "{}", r.1);
    assert_eq!(r.1["object"], "fault");
    let r = call(
        &app.svc,
        "GET",
        "/acme/v2/accounts/not-an-id",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.0, 404, "{}", r.1);
    assert_eq!(r.1["object"], "fault");
}

#[actix_web::test]
async fn me_returns_account_and_org() {
    let app = common::app().await;
    let admin = org_with_admin(&app.svc, "acme").await;
    let (s, v) = call(&app.svc, "GET", "/acme/v2/accounts/me", Some(&admin), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["object"], "account");
    assert_eq!(v["email"], "admin@acme.test");
    assert_eq!(v["roles"], json!(["administrator"]));
    assert_eq!(v["org"]["code"], "acme");
    assert!(v.get("token").is_none(), "{v}");
    let r = call(&app.svc, "GET", "/acme/v2/accounts/me", None, None).await;
    assert_fault(&r, 401, "cortex.unauthorized.noCredentials", None);
    let r = call(
        &app.svc,
        "GET",
        "/acme/v2/accounts/me",
        Some("exd_00"),
        None,
    )
    .await;
    assert_fault(&r, 401, "cortex.unauthorized.invalidToken", None);
}

#[actix_web::test]
async fn org_tokens_issue_and_revoke() {
    let app = common::app().await;
    let admin = org_with_admin(&app.svc, "acme").await;
    let admin_id = me_id(&app.svc, "acme", &admin).await;
    let r = call(
        &app.svc,
        "POST",
        "/acme/v2/accounts",
        Some(&admin),
        Some(json!({"email": "u@acme.test"})),
    )
    .await;
    assert_eq!(r.0, 201);
    let uid = r.1["_id"].as_str().unwrap().to_string();
    let first_tok = r.1["token"].as_str().unwrap().to_string();
    let first_id = r.1["tokenId"].as_str().unwrap().to_string();

    // a user issues a second token for itself
    let r = call(
        &app.svc,
        "POST",
        &format!("/acme/v2/accounts/{uid}/tokens"),
        Some(&first_tok),
        None,
    )
    .await;
    assert_eq!(r.0, 201, "{}", r.1);
    assert_eq!(r.1["object"], "token");
    assert!(is_oid(&r.1["_id"]), "{}", r.1);
    let second_tok = r.1["token"].as_str().unwrap().to_string();
    let second_id = r.1["_id"].as_str().unwrap().to_string();
    assert_ne!(second_tok, first_tok);
    let me = call(
        &app.svc,
        "GET",
        "/acme/v2/accounts/me",
        Some(&second_tok),
        None,
    )
    .await;
    assert_eq!(me.1["_id"], uid);

    // but not for someone else, nor revoke someone else's
    let r = call(
        &app.svc,
        "POST",
        &format!("/acme/v2/accounts/{admin_id}/tokens"),
        Some(&first_tok),
        None,
    )
    .await;
    assert_fault(&r, 403, "cortex.accessDenied.role", None);
    let r = call(
        &app.svc,
        "DELETE",
        &format!("/acme/v2/accounts/{admin_id}/tokens/{first_id}"),
        Some(&first_tok),
        None,
    )
    .await;
    assert_fault(&r, 403, "cortex.accessDenied.role", None);

    // a token id under the wrong account is not found, and the token keeps working
    let r = call(
        &app.svc,
        "DELETE",
        &format!("/acme/v2/accounts/{admin_id}/tokens/{second_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.0, 404, "{}", r.1);
    let me = call(
        &app.svc,
        "GET",
        "/acme/v2/accounts/me",
        Some(&second_tok),
        None,
    )
    .await;
    assert_eq!(me.0, 200);

    // the user revokes its second token
    let r = call(
        &app.svc,
        "DELETE",
        &format!("/acme/v2/accounts/{uid}/tokens/{second_id}"),
        Some(&first_tok),
        None,
    )
    .await;
    assert_eq!(r, (200, json!({"object": "result", "data": true})));
    let r = call(
        &app.svc,
        "GET",
        "/acme/v2/accounts/me",
        Some(&second_tok),
        None,
    )
    .await;
    assert_fault(&r, 401, "cortex.unauthorized.invalidToken", None);

    // the admin revokes the user's first token
    let r = call(
        &app.svc,
        "DELETE",
        &format!("/acme/v2/accounts/{uid}/tokens/{first_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r, (200, json!({"object": "result", "data": true})));
    let r = call(&app.svc, "GET", "/acme/v2/objects", Some(&first_tok), None).await;
    assert_fault(&r, 401, "cortex.unauthorized.invalidToken", None);
    // revoking twice: not found
    let r = call(
        &app.svc,
        "DELETE",
        &format!("/acme/v2/accounts/{uid}/tokens/{first_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.0, 404, "{}", r.1);
    // issuing for an unknown account
    let r = call(
        &app.svc,
        "POST",
        "/acme/v2/accounts/0123456789abcdef01234567/tokens",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.0, 404, "{}", r.1);
}

#[actix_web::test]
async fn sys_tokens_issue_and_revoke() {
    let app = common::app().await;
    let admin = org_with_admin(&app.svc, "acme").await;
    let aid = me_id(&app.svc, "acme", &admin).await;
    let r = call(
        &app.svc,
        "POST",
        &format!("/sys/orgs/acme/accounts/{aid}/tokens"),
        Some(SYS),
        None,
    )
    .await;
    assert_eq!(r.0, 201, "{}", r.1);
    assert_eq!(r.1["object"], "token");
    let tok = r.1["token"].as_str().unwrap().to_string();
    let tid = r.1["_id"].as_str().unwrap().to_string();
    assert_eq!(
        call(&app.svc, "GET", "/acme/v2/accounts/me", Some(&tok), None)
            .await
            .0,
        200
    );

    let r = call(
        &app.svc,
        "POST",
        &format!("/sys/orgs/acme/accounts/{aid}/tokens"),
        Some(&admin),
        None,
    )
    .await;
    assert_fault(&r, 403, "cortex.accessDenied.systemOnly", None);
    let r = call(
        &app.svc,
        "POST",
        &format!("/sys/orgs/nope/accounts/{aid}/tokens"),
        Some(SYS),
        None,
    )
    .await;
    assert_fault(&r, 404, "cortex.notFound.org", None);
    let r = call(
        &app.svc,
        "POST",
        "/sys/orgs/acme/accounts/0123456789abcdef01234567/tokens",
        Some(SYS),
        None,
    )
    .await;
    assert_eq!(r.0, 404, "{}", r.1);

    let r = call(
        &app.svc,
        "DELETE",
        &format!("/sys/orgs/acme/accounts/{aid}/tokens/{tid}"),
        Some(SYS),
        None,
    )
    .await;
    assert_eq!(r, (200, json!({"object": "result", "data": true})));
    let r = call(&app.svc, "GET", "/acme/v2/accounts/me", Some(&tok), None).await;
    assert_fault(&r, 401, "cortex.unauthorized.invalidToken", None);
    // the other token is untouched
    assert_eq!(
        call(&app.svc, "GET", "/acme/v2/accounts/me", Some(&admin), None)
            .await
            .0,
        200
    );
    let r = call(
        &app.svc,
        "DELETE",
        &format!("/sys/orgs/acme/accounts/{aid}/tokens/{tid}"),
        Some(SYS),
        None,
    )
    .await;
    assert_eq!(r.0, 404, "{}", r.1);
}

// ---------------------------------------------------------------------------------------------
// login, sessions, CSRF, throttling
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn login_sets_session_cookie_and_csrf_guards_writes() {
    let app = common::app().await;
    let _admin = org_with_admin(&app.svc, "sess-org").await;
    let (cookie, csrf, set_cookie) =
        login(&app.svc, "sess-org", "ADMIN@sess-org.test", "correct-horse").await;
    let lc = set_cookie.to_ascii_lowercase();
    assert!(lc.contains("httponly"), "{set_cookie}");
    assert!(lc.contains("samesite=strict"), "{set_cookie}");
    assert!(set_cookie.contains("Path=/sess-org/"), "{set_cookie}");
    assert!(!csrf.is_empty());
    let (_, _, b) = send(
        &app.svc,
        TestRequest::post()
            .uri("/sess-org/v2/accounts/login")
            .insert_header(("Content-Type", "application/json"))
            .set_payload(
                json!({"email": "admin@sess-org.test", "password": "correct-horse"}).to_string(),
            ),
    )
    .await;
    let v = json_of(&b);
    assert_eq!(v["object"], "account", "{v}");
    assert_eq!(v["email"], "admin@sess-org.test");
    let text = v.to_string();
    assert!(
        !text.contains("argon2") && !text.contains("correct-horse") && v.get("token").is_none(),
        "{v}"
    );
    assert_ne!(v["csrfToken"], csrf, "each session has its own CSRF token");

    // GETs work with the cookie alone; me echoes the CSRF token
    let (s, h, b) = send(
        &app.svc,
        TestRequest::get()
            .uri("/sess-org/v2/accounts/me")
            .insert_header(("Cookie", cookie.clone())),
    )
    .await;
    assert_eq!(s, 200, "{}", json_of(&b));
    assert_eq!(json_of(&b)["email"], "admin@sess-org.test");
    assert_eq!(hdr(&h, "x-csrf-token"), csrf);

    let def = json!({"name": "c_note", "properties": [{"name": "c_t", "type": "String"}]});
    let post = |extra: Option<&str>| {
        let mut r = TestRequest::post()
            .uri("/sess-org/v2/objects")
            .insert_header(("Cookie", cookie.clone()))
            .insert_header(("Content-Type", "application/json"))
            .set_payload(def.to_string());
        if let Some(c) = extra {
            r = r.insert_header(("X-CSRF-Token", c.to_string()));
        }
        r
    };
    let r = raw(&app.svc, post(None)).await;
    assert_fault(&r, 403, "cortex.accessDenied.csrf", None);
    let r = raw(&app.svc, post(Some("wrong"))).await;
    assert_fault(&r, 403, "cortex.accessDenied.csrf", None);
    let r = raw(&app.svc, post(Some(&csrf))).await;
    assert_eq!(r.0, 201, "{}", r.1);
}

#[actix_web::test]
async fn login_bad_credentials() {
    let app = common::app().await;
    let admin = org_with_admin(&app.svc, "cred-org").await;
    // an account without a password cannot sign in
    let r = call(
        &app.svc,
        "POST",
        "/cred-org/v2/accounts",
        Some(&admin),
        Some(json!({"email": "nopw@cred-org.test"})),
    )
    .await;
    assert_eq!(r.0, 201);
    let cases = [
        ("cred-org", "admin@cred-org.test", "wrong-password"),
        ("cred-org", "ghost@cred-org.test", "correct-horse"),
        ("cred-org", "nopw@cred-org.test", "whatever-password"),
        ("no-such-org", "admin@cred-org.test", "correct-horse"),
    ];
    for (org, email, pw) in cases {
        let (s, h, b) = send(
            &app.svc,
            TestRequest::post()
                .uri(&format!("/{org}/v2/accounts/login"))
                .insert_header(("Content-Type", "application/json"))
                .set_payload(json!({"email": email, "password": pw}).to_string()),
        )
        .await;
        assert_fault(
            &(s, json_of(&b)),
            401,
            "cortex.unauthorized.invalidCredentials",
            None,
        );
        assert!(h.get("set-cookie").is_none(), "no cookie on failure");
    }
    let r = call(
        &app.svc,
        "POST",
        "/cred-org/v2/accounts/login",
        None,
        Some(json!({"email": "admin@cred-org.test"})),
    )
    .await;
    assert_invalid_at(&r, "password", "cortex.validation.invalidValue");
    let r = call(
        &app.svc,
        "POST",
        "/cred-org/v2/accounts/login",
        None,
        Some(json!({"email": "a@b.c", "password": "x", "remember": true})),
    )
    .await;
    assert_invalid_at(&r, "remember", "cortex.validation.unknownField");
}

#[actix_web::test]
async fn logout_invalidates_the_session() {
    let app = common::app().await;
    let _admin = org_with_admin(&app.svc, "out-org").await;
    let (cookie, csrf, _) = login(&app.svc, "out-org", "admin@out-org.test", "correct-horse").await;
    let logout = |c: Option<&str>| {
        let mut r = TestRequest::post()
            .uri("/out-org/v2/accounts/logout")
            .insert_header(("Cookie", cookie.clone()));
        if let Some(c) = c {
            r = r.insert_header(("X-CSRF-Token", c.to_string()));
        }
        r
    };
    let r = raw(&app.svc, logout(None)).await;
    assert_fault(&r, 403, "cortex.accessDenied.csrf", None);
    let (s, h, b) = send(&app.svc, logout(Some(&csrf))).await;
    assert_eq!(s, 200, "{}", json_of(&b));
    assert_eq!(json_of(&b), json!({"object": "result", "data": true}));
    assert!(
        hdr(&h, "set-cookie").starts_with("exportd_session="),
        "removal cookie"
    );

    let r = raw(
        &app.svc,
        TestRequest::get()
            .uri("/out-org/v2/accounts/me")
            .insert_header(("Cookie", cookie.clone())),
    )
    .await;
    assert_fault(&r, 401, "cortex.unauthorized.invalidSession", None);
    let r = raw(
        &app.svc,
        TestRequest::get()
            .uri("/out-org/v2/accounts/me")
            .insert_header(("Cookie", "exportd_session=forged")),
    )
    .await;
    assert_fault(&r, 401, "cortex.unauthorized.invalidSession", None);
}

#[actix_web::test]
async fn login_is_throttled_after_ten_failures() {
    let app = common::app().await;
    let admin = org_with_admin(&app.svc, "throttle-org").await;
    let r = call(
        &app.svc,
        "POST",
        "/throttle-org/v2/accounts",
        Some(&admin),
        Some(json!({"email": "other@throttle-org.test", "password": "other-password"})),
    )
    .await;
    assert_eq!(r.0, 201);
    let attempt = |pw: &str| json!({"email": "admin@throttle-org.test", "password": pw});
    for i in 0..10 {
        let r = call(
            &app.svc,
            "POST",
            "/throttle-org/v2/accounts/login",
            None,
            Some(attempt("bad-password")),
        )
        .await;
        assert_fault(&r, 401, "cortex.unauthorized.invalidCredentials", None);
        assert_eq!(r.1["code"], "kUnauthorized", "attempt {i}");
    }
    let r = call(
        &app.svc,
        "POST",
        "/throttle-org/v2/accounts/login",
        None,
        Some(attempt("correct-horse")),
    )
    .await;
    assert_fault(&r, 429, "cortex.throttled.login", None);
    assert_eq!(r.1["code"], "kThrottled");
    // another email is not throttled
    let (_, csrf, _) = login(
        &app.svc,
        "throttle-org",
        "other@throttle-org.test",
        "other-password",
    )
    .await;
    assert!(!csrf.is_empty());
}

#[actix_web::test]
async fn cross_org_access_is_not_found() {
    let app = common::app().await;
    let a = setup(&app.svc, "org-a").await;
    let b = setup(&app.svc, "org-b").await;
    let bdoc = create_doc(
        &app.svc,
        "org-b",
        &b,
        "c_things",
        json!({"c_name": "secret"}),
    )
    .await;
    let bid = bdoc["_id"].as_str().unwrap();
    let paths = [
        "/org-b/v2/accounts/me".to_string(),
        "/org-b/v2/objects".to_string(),
        "/org-b/v2/c_things".to_string(),
        format!("/org-b/v2/c_things/{bid}"),
        "/org-b/v2/org/storage".to_string(),
        "/no-such-org/v2/objects".to_string(),
    ];
    for p in &paths {
        let r = call(&app.svc, "GET", p, Some(&a), None).await;
        assert_fault(&r, 404, "cortex.notFound.org", None);
    }
    let r = call(
        &app.svc,
        "PATCH",
        &format!("/org-b/v2/c_things/{bid}"),
        Some(&a),
        Some(json!({"c_name": "x"})),
    )
    .await;
    assert_fault(&r, 404, "cortex.notFound.org", None);
    let r = call(
        &app.svc,
        "DELETE",
        &format!("/org-b/v2/c_things/{bid}"),
        Some(&a),
        None,
    )
    .await;
    assert_fault(&r, 404, "cortex.notFound.org", None);
    let r = call(
        &app.svc,
        "POST",
        "/org-b/v2/c_things",
        Some(&a),
        Some(json!({"c_name": "x"})),
    )
    .await;
    assert_fault(&r, 404, "cortex.notFound.org", None);
    // the doc id does not exist in org A either
    let r = call(
        &app.svc,
        "GET",
        &format!("/org-a/v2/c_things/{bid}"),
        Some(&a),
        None,
    )
    .await;
    assert_eq!(r.0, 404, "{}", r.1);
    // a session of org A is not valid in org B
    let (cookie, _, _) = login(&app.svc, "org-a", "admin@org-a.test", "correct-horse").await;
    let r = raw(
        &app.svc,
        TestRequest::get()
            .uri("/org-b/v2/objects")
            .insert_header(("Cookie", cookie)),
    )
    .await;
    assert_fault(&r, 404, "cortex.notFound.org", None);
    // an account of org A cannot sign in at org B
    let r = call(
        &app.svc,
        "POST",
        "/org-b/v2/accounts/login",
        None,
        Some(json!({"email": "admin@org-a.test", "password": "correct-horse"})),
    )
    .await;
    assert_fault(&r, 401, "cortex.unauthorized.invalidCredentials", None);
    // B's document was untouched
    let r = call(
        &app.svc,
        "GET",
        &format!("/org-b/v2/c_things/{bid}"),
        Some(&b),
        None,
    )
    .await;
    assert_eq!(r.1["c_name"], "secret");
}

// ---------------------------------------------------------------------------------------------
// object definitions
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn objects_create_get_list() {
    let app = common::app().await;
    let admin = org_with_admin(&app.svc, "acme").await;
    let (_, utok) = user(&app.svc, "acme", &admin, "u@acme.test").await;
    let p = define(&app.svc, "acme", &admin, parent_def()).await;
    assert_eq!(p["object"], "object");
    assert_eq!(p["name"], "c_parent");
    assert_eq!(p["pluralName"], "c_parents");
    let t = define(&app.svc, "acme", &admin, thing_def()).await;
    assert_eq!(t["pluralName"], "c_things");
    assert_eq!(t["label"], "Thing");
    let props = t["properties"].as_array().unwrap();
    assert_eq!(props.len(), 14);
    assert_eq!(props[0]["name"], "c_name");
    assert_eq!(props[0]["required"], true);
    // sourceObject given by plural is stored as the object name
    assert_eq!(props[5]["sourceObject"], "c_parent");
    assert_eq!(props[5]["expandable"], true);
    assert_eq!(props[8]["properties"].as_array().unwrap().len(), 2);

    for name in ["c_thing", "c_things"] {
        let r = call(
            &app.svc,
            "GET",
            &format!("/acme/v2/objects/{name}"),
            Some(&utok),
            None,
        )
        .await;
        assert_eq!(r.0, 200, "{}", r.1);
        assert_eq!(r.1, t);
    }
    let (s, v) = call(
        &app.svc,
        "GET",
        "/acme/v2/objects?total=true",
        Some(&utok),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["object"], "list");
    assert_eq!(v["total"], 2);
    let mut names: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["c_parent", "c_thing"]);

    let r = call(
        &app.svc,
        "GET",
        "/acme/v2/objects/c_nope",
        Some(&utok),
        None,
    )
    .await;
    assert_eq!(r.0, 404, "{}", r.1);
    assert_eq!(r.1["object"], "fault");
    let r = call(
        &app.svc,
        "GET",
        "/acme/v2/objects?limit=0",
        Some(&utok),
        None,
    )
    .await;
    assert_fault(&r, 400, "cortex.invalidArgument.limit", Some("limit"));

    // only administrators write definitions
    let r = call(
        &app.svc,
        "POST",
        "/acme/v2/objects",
        Some(&utok),
        Some(json!({"name": "c_mine", "properties": []})),
    )
    .await;
    assert_fault(&r, 403, "cortex.accessDenied.role", None);
    let r = call(
        &app.svc,
        "PATCH",
        "/acme/v2/objects/c_thing",
        Some(&utok),
        Some(json!({"label": "Mine"})),
    )
    .await;
    assert_fault(&r, 403, "cortex.accessDenied.role", None);
    let r = call(
        &app.svc,
        "GET",
        "/acme/v2/objects/c_mine",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.0, 404);
}

#[actix_web::test]
async fn objects_list_newest_first() {
    let app = common::app().await;
    let admin = org_with_admin(&app.svc, "acme").await;
    for n in ["c_zeta", "c_alpha", "c_mid"] {
        define(&app.svc, "acme", &admin, json!({"name": n})).await;
    }
    let (_, v) = call(&app.svc, "GET", "/acme/v2/objects", Some(&admin), None).await;
    let names: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["c_mid", "c_alpha", "c_zeta"], "{v}");
}

#[actix_web::test]
async fn objects_invalid_names() {
    let app = common::app().await;
    let admin = org_with_admin(&app.svc, "acme").await;
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"name": "thing"}),
            "name",
            "cortex.validation.invalidValue",
        ),
        (
            json!({"name": "c_"}),
            "name",
            "cortex.validation.invalidValue",
        ),
        (
            json!({"name": "c_Thing"}),
            "name",
            "cortex.validation.invalidValue",
        ),
        (
            json!({"name": "c_thing", "pluralName": "things"}),
            "pluralName",
            "cortex.validation.invalidValue",
        ),
        (
            json!({"name": "c_thing", "pluralName": "c_thing"}),
            "pluralName",
            "cortex.validation.invalidValue",
        ),
        (
            json!({"name": "account"}),
            "name",
            "cortex.validation.reservedName",
        ),
        (
            json!({"name": "export"}),
            "name",
            "cortex.validation.reservedName",
        ),
        (
            json!({"name": "exports"}),
            "name",
            "cortex.validation.reservedName",
        ),
        (
            json!({"name": "org"}),
            "name",
            "cortex.validation.reservedName",
        ),
        (
            json!({"name": "deployment"}),
            "name",
            "cortex.validation.reservedName",
        ),
        (json!({}), "name", "cortex.validation.invalidValue"),
        (
            json!({"name": "c_x", "bogus": 1}),
            "bogus",
            "cortex.validation.unknownField",
        ),
        (
            json!({"name": "c_x", "_id": "0123456789abcdef01234567"}),
            "_id",
            "cortex.validation.readOnly",
        ),
        (
            json!({"name": "c_x", "defaultAcl": [{"type": "group", "target": "user", "allow": "read"}]}),
            "defaultAcl[0].type",
            "cortex.validation.invalidValue",
        ),
        (
            json!({"name": "c_x", "defaultAcl": [{"type": "role", "target": "user", "allow": "own"}]}),
            "defaultAcl[0].allow",
            "cortex.validation.invalidValue",
        ),
    ];
    for (body, path, code) in cases {
        let r = call(
            &app.svc,
            "POST",
            "/acme/v2/objects",
            Some(&admin),
            Some(body.clone()),
        )
        .await;
        assert_invalid_at(&r, path, code);
    }
    let (_, v) = call(
        &app.svc,
        "GET",
        "/acme/v2/objects?total=true",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(v["total"], 0, "refused definitions were stored: {v}");
}

#[actix_web::test]
async fn objects_invalid_properties() {
    let app = common::app().await;
    let admin = org_with_admin(&app.svc, "acme").await;
    define(&app.svc, "acme", &admin, parent_def()).await;
    define(&app.svc, "acme", &admin, thing_def()).await;
    let s = |n: &str| json!({"name": n, "type": "String"});
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!("c_a"), "properties", "cortex.validation.invalidValue"),
        (
            json!([{"name": "c_a", "type": "Strin"}]),
            "properties[0].type",
            "cortex.validation.invalidValue",
        ),
        (
            json!([{"name": "c_a"}]),
            "properties[0].type",
            "cortex.validation.invalidValue",
        ),
        (
            json!([{"type": "String"}]),
            "properties[0].name",
            "cortex.validation.invalidValue",
        ),
        (
            json!([{"name": "c_a", "type": "Document"}]),
            "properties[0].properties",
            "cortex.validation.invalidValue",
        ),
        (
            json!([s("c_z"), {"name": "c_a", "type": "Document", "properties": []}]),
            "properties[1].properties",
            "cortex.validation.invalidValue",
        ),
        (
            json!([{"name": "c_a", "type": "Document", "properties": [
                {"name": "c_b", "type": "Document", "properties": [s("c_c")]}
            ]}]),
            "properties[0].properties[0].type",
            "cortex.validation.invalidValue",
        ),
        (
            json!([{"name": "c_r", "type": "Reference"}]),
            "properties[0].sourceObject",
            "cortex.validation.invalidValue",
        ),
        (
            json!([s("c_z"), {"name": "c_r", "type": "Reference", "sourceObject": "c_nope"}]),
            "properties[1].sourceObject",
            "cortex.validation.invalidValue",
        ),
        (
            json!([{"name": "c_l", "type": "List", "linkedProperty": "c_parent"}]),
            "properties[0].sourceObject",
            "cortex.validation.invalidValue",
        ),
        (
            json!([{"name": "c_l", "type": "List", "sourceObject": "c_thing"}]),
            "properties[0].linkedProperty",
            "cortex.validation.invalidValue",
        ),
        (
            // c_thing.c_parent is a Reference, but to c_parent, not back to this object
            json!([s("c_z"), {"name": "c_l", "type": "List", "sourceObject": "c_thing", "linkedProperty": "c_parent"}]),
            "properties[1].linkedProperty",
            "cortex.validation.invalidValue",
        ),
        (
            json!([{"name": "c_l", "type": "List", "sourceObject": "c_thing", "linkedProperty": "c_name"}]),
            "properties[0].linkedProperty",
            "cortex.validation.invalidValue",
        ),
        (
            json!([s("c_a"), {"name": "c_a", "type": "Number"}]),
            "properties[1].name",
            "cortex.validation.invalidValue",
        ),
        (
            json!([{"name": "created", "type": "Date"}]),
            "properties[0].name",
            "cortex.validation.invalidValue",
        ),
        (
            json!([{"name": "_id", "type": "ObjectId"}]),
            "properties[0].name",
            "cortex.validation.invalidValue",
        ),
        (
            json!([{"name": "c-bad", "type": "String"}]),
            "properties[0].name",
            "cortex.validation.invalidValue",
        ),
        (
            json!([{"name": "c_a", "type": "String", "bogus": 1}]),
            "properties[0].bogus",
            "cortex.validation.unknownField",
        ),
        (
            json!([{"name": "c_a", "type": "String", "readAccess": "god"}]),
            "properties[0].readAccess",
            "cortex.validation.invalidValue",
        ),
        (
            json!([{"name": "c_a", "type": "File", "required": true}]),
            "properties[0].required",
            "cortex.validation.invalidValue",
        ),
        (
            json!([{"name": "c_a", "type": "String", "sourceObject": "c_thing"}]),
            "properties[0].sourceObject",
            "cortex.validation.invalidValue",
        ),
        (
            json!([{"name": "c_a", "type": "String", "array": "yes"}]),
            "properties[0].array",
            "cortex.validation.invalidValue",
        ),
    ];
    for (i, (props, path, code)) in cases.into_iter().enumerate() {
        let body = json!({"name": format!("c_bad{i}"), "properties": props});
        let r = call(
            &app.svc,
            "POST",
            "/acme/v2/objects",
            Some(&admin),
            Some(body),
        )
        .await;
        assert_invalid_at(&r, path, code);
    }
    // valid: a self-reference, and a List linked back through the other object
    define(
        &app.svc,
        "acme",
        &admin,
        json!({"name": "c_node", "properties": [{"name": "c_up", "type": "Reference", "sourceObject": "c_node"}]}),
    )
    .await;
    let r = call(
        &app.svc,
        "PATCH",
        "/acme/v2/objects/c_parent",
        Some(&admin),
        Some(json!({"properties": [{"name": "c_kids", "type": "List", "sourceObject": "c_thing", "linkedProperty": "c_parent"}]})),
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.1);
    let (_, v) = call(
        &app.svc,
        "GET",
        "/acme/v2/objects?total=true",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(v["total"], 3, "refused definitions were stored: {v}");
}

#[actix_web::test]
async fn objects_duplicate_name_is_409() {
    let app = common::app().await;
    let admin = org_with_admin(&app.svc, "acme").await;
    define(&app.svc, "acme", &admin, parent_def()).await;
    let r = call(
        &app.svc,
        "POST",
        "/acme/v2/objects",
        Some(&admin),
        Some(parent_def()),
    )
    .await;
    assert_fault(&r, 409, "cortex.exists.object", None);
}

#[actix_web::test]
async fn objects_duplicate_name_with_new_plural_is_409() {
    let app = common::app().await;
    let admin = org_with_admin(&app.svc, "acme").await;
    define(&app.svc, "acme", &admin, parent_def()).await;
    let r = call(
        &app.svc,
        "POST",
        "/acme/v2/objects",
        Some(&admin),
        Some(json!({"name": "c_parent", "pluralName": "c_parentz"})),
    )
    .await;
    assert_fault(&r, 409, "cortex.exists.object", None);
    // a plural that collides with an existing name is also taken
    let r = call(
        &app.svc,
        "POST",
        "/acme/v2/objects",
        Some(&admin),
        Some(json!({"name": "c_other", "pluralName": "c_parents"})),
    )
    .await;
    assert_fault(&r, 409, "cortex.exists.object", None);
}

#[actix_web::test]
async fn objects_patch_adds_properties_and_keeps_documents() {
    let app = common::app().await;
    let admin = org_with_admin(&app.svc, "acme").await;
    define(
        &app.svc,
        "acme",
        &admin,
        json!({"name": "c_step", "properties": [{"name": "c_n", "type": "Number"}]}),
    )
    .await;
    let old = create_doc(&app.svc, "acme", &admin, "c_steps", json!({"c_n": 1})).await;
    let oid = old["_id"].as_str().unwrap();

    let r = call(
        &app.svc,
        "PATCH",
        "/acme/v2/objects/c_steps",
        Some(&admin),
        Some(json!({"label": "Steps", "properties": [{"name": "c_note", "type": "String", "required": true}]})),
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.1);
    let g = call(
        &app.svc,
        "GET",
        "/acme/v2/objects/c_step",
        Some(&admin),
        None,
    )
    .await;
    let names: Vec<&str> = g.1["properties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["c_n", "c_note"], "{}", g.1);
    assert_eq!(g.1["label"], "Steps");

    // the old document still reads and patches
    let r = call(
        &app.svc,
        "GET",
        &format!("/acme/v2/c_steps/{oid}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["c_n"], 1);
    let r = call(
        &app.svc,
        "PATCH",
        &format!("/acme/v2/c_steps/{oid}"),
        Some(&admin),
        Some(json!({"c_n": 2})),
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["c_n"], 2);
    // new documents use the new property (required now)
    let r = call(
        &app.svc,
        "POST",
        "/acme/v2/c_steps",
        Some(&admin),
        Some(json!({"c_n": 3})),
    )
    .await;
    assert_invalid_at(&r, "c_note", "cortex.validation.invalidValue");
    let d = create_doc(
        &app.svc,
        "acme",
        &admin,
        "c_steps",
        json!({"c_n": 3, "c_note": "hi"}),
    )
    .await;
    assert_eq!(d["c_note"], "hi");

    // a property's type cannot change
    let r = call(
        &app.svc,
        "PATCH",
        "/acme/v2/objects/c_step",
        Some(&admin),
        Some(json!({"properties": [{"name": "c_n", "type": "String"}]})),
    )
    .await;
    assert_invalid_at(&r, "properties[0]", "cortex.validation.invalidValue");
    let r = call(
        &app.svc,
        "PATCH",
        "/acme/v2/objects/c_step",
        Some(&admin),
        Some(json!({"properties": [{"name": "c_n", "type": "Number", "array": true}]})),
    )
    .await;
    assert_invalid_at(&r, "properties[0]", "cortex.validation.invalidValue");
    let r = call(
        &app.svc,
        "PATCH",
        "/acme/v2/objects/c_step",
        Some(&admin),
        Some(json!({"properties": [{"name": "c_n", "type": "Number", "required": true}]})),
    )
    .await;
    assert_invalid_at(&r, "properties[0]", "cortex.validation.invalidValue");
    let r = call(
        &app.svc,
        "PATCH",
        "/acme/v2/objects/c_step",
        Some(&admin),
        Some(json!({"name": "c_x"})),
    )
    .await;
    assert_invalid_at(&r, "name", "cortex.validation.readOnly");
    let r = call(
        &app.svc,
        "PATCH",
        "/acme/v2/objects/c_nope",
        Some(&admin),
        Some(json!({"label": "x"})),
    )
    .await;
    assert_eq!(r.0, 404, "{}", r.1);
}

#[actix_web::test]
async fn objects_patch_response_shows_the_new_definition() {
    let app = common::app().await;
    let admin = org_with_admin(&app.svc, "acme").await;
    define(
        &app.svc,
        "acme",
        &admin,
        json!({"name": "c_step", "properties": [{"name": "c_n", "type": "Number"}]}),
    )
    .await;
    let r = call(
        &app.svc,
        "PATCH",
        "/acme/v2/objects/c_step",
        Some(&admin),
        Some(json!({"label": "Steps", "properties": [{"name": "c_note", "type": "String"}]})),
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["label"], "Steps", "{}", r.1);
    assert_eq!(r.1["properties"].as_array().unwrap().len(), 2, "{}", r.1);
    assert!(r.1["updated"].is_string(), "{}", r.1);
}

// ---------------------------------------------------------------------------------------------
// documents
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn documents_create_casts_and_renders() {
    let app = common::app().await;
    let admin = setup(&app.svc, "acme").await;
    let admin_id = me_id(&app.svc, "acme", &admin).await;
    let parent = create_doc(
        &app.svc,
        "acme",
        &admin,
        "c_parents",
        json!({"c_title": "P"}),
    )
    .await;
    let pid = parent["_id"].as_str().unwrap().to_string();

    let d = create_doc(
        &app.svc,
        "acme",
        &admin,
        "c_things",
        json!({
            "c_name": "first",
            "c_count": "42",
            "c_flag": "true",
            "c_when": "2026-01-01",
            "c_oid": "0123456789ABCDEF01234567",
            "c_parent": pid,
            "c_who": {"_id": admin_id},
            "c_tags": ["a", "b"],
            "c_items": [{"c_x": "2.5"}, {"c_x": 3}],
            "c_meta": {"c_note": "n"},
            "c_opt": "hidden",
            "c_any": {"deep": [1, "two", null]}
        }),
    )
    .await;
    let id = d["_id"].as_str().unwrap().to_string();
    assert!(is_oid(&d["_id"]), "{d}");
    assert_eq!(d["object"], "c_thing");
    assert!(
        d["created"]
            .as_str()
            .is_some_and(|s| s.len() == 24 && s.ends_with('Z')),
        "{d}"
    );
    let acct_ref =
        json!({"_id": admin_id, "object": "account", "path": format!("/accounts/{admin_id}")});
    assert_eq!(d["creator"], acct_ref);
    assert_eq!(d["owner"], acct_ref);
    assert_eq!(d["c_name"], "first");
    assert_eq!(d["c_count"], 42);
    assert!(d["c_count"].is_number());
    assert_eq!(d["c_flag"], true);
    assert_eq!(d["c_when"], "2026-01-01T00:00:00.000Z");
    assert_eq!(d["c_oid"], "0123456789abcdef01234567");
    assert_eq!(
        d["c_parent"],
        json!({"_id": pid, "object": "c_parent", "path": format!("/c_parents/{pid}")})
    );
    assert_eq!(d["c_who"], acct_ref);
    assert_eq!(d["c_tags"], json!(["a", "b"]));
    let items = d["c_items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["c_x"], 2.5);
    assert_eq!(items[1]["c_x"], 3);
    assert!(is_oid(&items[0]["_id"]) && is_oid(&items[1]["_id"]), "{d}");
    assert_ne!(items[0]["_id"], items[1]["_id"]);
    assert_eq!(d["c_meta"], json!({"c_note": "n"}));
    assert!(
        d["c_meta"].get("_id").is_none(),
        "a single Document has no _id: {d}"
    );
    assert_eq!(d["c_any"], json!({"deep": [1, "two", null]}));
    assert!(
        d.get("c_opt").is_none(),
        "optional properties are hidden by default: {d}"
    );

    let g = call(
        &app.svc,
        "GET",
        &format!("/acme/v2/c_things/{id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(g.0, 200, "{}", g.1);
    assert_eq!(g.1, d);
    let g = call(
        &app.svc,
        "GET",
        &format!("/acme/v2/c_thing/{id}?include=c_opt"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(g.0, 200, "{}", g.1);
    assert_eq!(g.1["c_opt"], "hidden");

    // explicit element ids are kept; a single value for an array becomes a one-element array
    let eid = "0123456789abcdef0123abcd";
    let d = create_doc(
        &app.svc,
        "acme",
        &admin,
        "c_things",
        json!({"c_name": 7, "c_tags": "solo", "c_items": [{"_id": eid, "c_x": 1}], "c_when": "2026-11-29T13:00:00.5+01:00"}),
    )
    .await;
    assert_eq!(d["c_name"], "7");
    assert_eq!(d["c_tags"], json!(["solo"]));
    assert_eq!(d["c_items"][0]["_id"], eid);
    assert_eq!(d["c_when"], "2026-11-29T12:00:00.500Z");
    let d = create_doc(
        &app.svc,
        "acme",
        &admin,
        "c_things",
        json!({"c_name": "e", "c_when": 86_400_000}),
    )
    .await;
    assert_eq!(d["c_when"], "1970-01-02T00:00:00.000Z");
}

#[actix_web::test]
async fn documents_create_validation_faults() {
    let app = common::app().await;
    let admin = setup(&app.svc, "acme").await;
    let r = call(
        &app.svc,
        "POST",
        "/acme/v2/c_things",
        Some(&admin),
        Some(json!({
            "c_count": "abc",
            "c_flag": "maybe",
            "c_when": "yesterday",
            "c_oid": "xyz",
            "c_parent": "0123456789abcdef01234567",
            "c_who": "not-an-id",
            "c_tags": ["ok", null],
            "c_items": [{"c_x": "x"}, {"c_x": 1, "c_y": 2}],
            "c_meta": {"c_note": ["array"]},
            "c_file": {"mime": "text/plain"},
            "bogus": 1,
            "_id": "0123456789abcdef01234567"
        })),
    )
    .await;
    assert_fault(&r, 400, "cortex.validation.failed", None);
    assert_eq!(r.1["code"], "kValidationError");
    let v = &r.1;
    let expect = [
        ("c_name", "cortex.validation.invalidValue"),
        ("c_count", "cortex.validation.invalidValue"),
        ("c_flag", "cortex.validation.invalidValue"),
        ("c_when", "cortex.validation.invalidValue"),
        ("c_oid", "cortex.validation.invalidValue"),
        ("c_parent", "cortex.validation.invalidReference"),
        ("c_who", "cortex.validation.invalidValue"),
        ("c_tags[1]", "cortex.validation.invalidValue"),
        ("c_items[0].c_x", "cortex.validation.invalidValue"),
        ("c_items[1].c_y", "cortex.validation.unknownField"),
        ("c_meta.c_note", "cortex.validation.invalidValue"),
        ("c_file", "cortex.validation.invalidValue"),
        ("bogus", "cortex.validation.unknownField"),
        ("_id", "cortex.validation.readOnly"),
    ];
    for (path, code) in expect {
        assert_eq!(sub(v, path)["errCode"], code, "at {path}: {v}");
    }
    assert_eq!(v["faults"].as_array().unwrap().len(), expect.len(), "{v}");

    // a body that is not an object
    let r = call(
        &app.svc,
        "POST",
        "/acme/v2/c_things",
        Some(&admin),
        Some(json!([1, 2])),
    )
    .await;
    assert_invalid_at(&r, "body", "cortex.validation.invalidValue");
    // a reference to a document of another object is invalid
    let other = create_doc(&app.svc, "acme", &admin, "c_things", json!({"c_name": "t"})).await;
    let r = call(
        &app.svc,
        "POST",
        "/acme/v2/c_things",
        Some(&admin),
        Some(json!({"c_name": "x", "c_parent": other["_id"]})),
    )
    .await;
    assert_invalid_at(&r, "c_parent", "cortex.validation.invalidReference");
    // nothing but the one good document was stored
    let (_, l) = call(
        &app.svc,
        "GET",
        "/acme/v2/c_things?total=true",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(l["total"], 1, "{l}");
}

#[actix_web::test]
async fn documents_body_errors() {
    let app = common::app().await;
    let admin = setup(&app.svc, "acme").await;
    let post = |ct: &str, body: Vec<u8>| {
        TestRequest::post()
            .uri("/acme/v2/c_things")
            .insert_header(bearer(&admin))
            .insert_header(("Content-Type", ct.to_string()))
            .set_payload(body)
    };
    let r = raw(&app.svc, post("text/plain", br#"{"c_name":"x"}"#.to_vec())).await;
    assert_fault(&r, 400, "cortex.invalidArgument.contentType", None);
    assert_eq!(r.1["code"], "kInvalidArgument");
    let r = raw(
        &app.svc,
        TestRequest::post()
            .uri("/acme/v2/c_things")
            .insert_header(bearer(&admin))
            .set_payload(br#"{"c_name":"x"}"#.to_vec()),
    )
    .await;
    assert_fault(&r, 400, "cortex.invalidArgument.contentType", None);
    let r = raw(
        &app.svc,
        post("application/json", b"{\"c_name\": ".to_vec()),
    )
    .await;
    assert_fault(&r, 400, "cortex.invalidArgument.json", None);
    let r = raw(&app.svc, post("application/json", b"".to_vec())).await;
    assert_fault(&r, 400, "cortex.invalidArgument.json", None);
    let r = raw(
        &app.svc,
        post(
            "application/json; charset=utf-8",
            br#"{"c_name":"ok"}"#.to_vec(),
        ),
    )
    .await;
    assert_eq!(r.0, 201, "a charset parameter is fine: {}", r.1);

    let big = json!({"c_name": "x".repeat(1024 * 1024)})
        .to_string()
        .into_bytes();
    let r = raw(&app.svc, post("application/json", big.clone())).await;
    assert_fault(&r, 413, "cortex.tooLarge.body", None);
    assert_eq!(r.1["code"], "kRequestTooLarge");
    // the same limit guards every JSON body (PATCH, /sys)
    let r = raw(
        &app.svc,
        TestRequest::post()
            .uri("/sys/orgs")
            .insert_header(bearer(SYS))
            .insert_header(("Content-Type", "application/json"))
            .set_payload(big),
    )
    .await;
    assert_fault(&r, 413, "cortex.tooLarge.body", None);

    let r = call(
        &app.svc,
        "POST",
        "/acme/v2/c_nopes",
        Some(&admin),
        Some(json!({"c_name": "x"})),
    )
    .await;
    assert_fault(&r, 404, "cortex.notFound.object", None);
    let r = call(&app.svc, "GET", "/acme/v2/c_nopes", Some(&admin), None).await;
    assert_fault(&r, 404, "cortex.notFound.object", None);
    let r = call(
        &app.svc,
        "POST",
        "/acme/v2/c_things",
        None,
        Some(json!({"c_name": "x"})),
    )
    .await;
    assert_fault(&r, 401, "cortex.unauthorized.noCredentials", None);

    let (_, l) = call(
        &app.svc,
        "GET",
        "/acme/v2/c_things?total=true",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(l["total"], 1, "{l}");
}

#[actix_web::test]
async fn documents_bulk_ndjson() {
    let app = common::app().await;
    let admin = setup(&app.svc, "acme").await;
    let body = [
        r#"{"c_name": "one", "c_count": "1"}"#,
        "",
        r#"{"c_name": "bad", "c_count": "abc"}"#,
        r#"{"c_name": "#,
        r#"{"c_name": "two", "bogus": true}"#,
        "  ",
        r#"{"c_name": "three", "c_items": [{"c_x": 3}]}"#,
        r#"[1]"#,
        r#"{"c_count": 4}"#,
    ]
    .join("\n")
        + "\n";
    let (s, v) = raw(
        &app.svc,
        TestRequest::post()
            .uri("/acme/v2/c_things")
            .insert_header(bearer(&admin))
            .insert_header(("Content-Type", "application/x-ndjson"))
            .set_payload(body),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["object"], "result");
    let data = &v["data"];
    assert_eq!(data["inserted"], 2, "{v}");
    assert_eq!(data["faultCount"], 5, "{v}");
    let ids: Vec<String> = data["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2);
    let faults = data["faults"].as_array().unwrap();
    let idx: Vec<u64> = faults
        .iter()
        .map(|f| f["index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, vec![2, 3, 4, 7, 8], "{v}");
    assert_eq!(faults[0]["errCode"], "cortex.validation.failed");
    assert_eq!(sub_paths(&faults[0]), vec!["c_count"]);
    assert_eq!(faults[1]["errCode"], "cortex.invalidArgument.json");
    assert_eq!(faults[2]["errCode"], "cortex.validation.failed");
    assert_eq!(
        sub(&faults[2], "bogus")["errCode"],
        "cortex.validation.unknownField"
    );
    assert_eq!(faults[3]["errCode"], "cortex.validation.failed");
    assert_eq!(sub_paths(&faults[4]), vec!["c_name"]);

    // the kept lines are stored, in order
    let r = call(
        &app.svc,
        "GET",
        &format!("/acme/v2/c_things/{}", ids[0]),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["c_name"], "one");
    assert_eq!(r.1["c_count"], 1);
    let r = call(
        &app.svc,
        "GET",
        &format!("/acme/v2/c_things/{}", ids[1]),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.1["c_name"], "three");
    assert!(is_oid(&r.1["c_items"][0]["_id"]), "{}", r.1);
    let (_, l) = call(
        &app.svc,
        "GET",
        "/acme/v2/c_things?total=true",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(l["total"], 2);

    // an unknown object is refused before the body is read
    let r = raw(
        &app.svc,
        TestRequest::post()
            .uri("/acme/v2/c_nopes")
            .insert_header(bearer(&admin))
            .insert_header(("Content-Type", "application/x-ndjson"))
            .set_payload("{}\n"),
    )
    .await;
    assert_fault(&r, 404, "cortex.notFound.object", None);
    // CRLF line ends and no trailing newline
    let (s, v) = raw(
        &app.svc,
        TestRequest::post()
            .uri("/acme/v2/c_things")
            .insert_header(bearer(&admin))
            .insert_header(("Content-Type", "application/x-ndjson"))
            .set_payload("{\"c_name\":\"a\"}\r\n{\"c_name\":\"b\"}"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["inserted"], 2, "{v}");
    assert_eq!(v["data"]["faultCount"], 0, "{v}");
    // an empty body inserts nothing
    let (s, v) = raw(
        &app.svc,
        TestRequest::post()
            .uri("/acme/v2/c_things")
            .insert_header(bearer(&admin))
            .insert_header(("Content-Type", "application/x-ndjson"))
            .set_payload("\n\n"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["data"],
        json!({"inserted": 0, "ids": [], "faults": [], "faultCount": 0})
    );
    let (_, l) = call(
        &app.svc,
        "GET",
        "/acme/v2/c_things?total=true",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(l["total"], 4);
}

#[actix_web::test]
async fn documents_list_paging_and_include() {
    let app = common::app().await;
    let admin = setup(&app.svc, "acme").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let d = create_doc(
            &app.svc,
            "acme",
            &admin,
            "c_things",
            json!({"c_name": format!("d{i}"), "c_opt": format!("o{i}")}),
        )
        .await;
        ids.push(d["_id"].as_str().unwrap().to_string());
    }
    let (s, v) = call(&app.svc, "GET", "/acme/v2/c_things", Some(&admin), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["object"], "list");
    assert_eq!(v["hasMore"], false);
    let got: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["_id"].as_str().unwrap())
        .collect();
    let mut want: Vec<&str> = ids.iter().map(|s| s.as_str()).collect();
    want.reverse();
    assert_eq!(got, want, "newest first");
    assert!(v["data"][0].get("c_opt").is_none(), "optional hidden: {v}");
    assert!(v.get("total").is_none());

    let (_, v) = call(
        &app.svc,
        "GET",
        "/acme/v2/c_things?limit=2&skip=1&total=true",
        Some(&admin),
        None,
    )
    .await;
    let got: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["_id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[3].as_str(), ids[2].as_str()]);
    assert_eq!(v["hasMore"], true);
    assert_eq!(v["total"], 5);
    let (_, v) = call(
        &app.svc,
        "GET",
        "/acme/v2/c_things?limit=2&skip=3",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["hasMore"], false);
    let (_, v) = call(
        &app.svc,
        "GET",
        "/acme/v2/c_things?skip=10",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(v["data"], json!([]));
    assert_eq!(v["hasMore"], false);

    let (_, v) = call(
        &app.svc,
        "GET",
        "/acme/v2/c_things?include=c_opt&limit=1",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(v["data"][0]["c_opt"], "o4", "{v}");
    // the singular name works as well
    let (s, v) = call(
        &app.svc,
        "GET",
        "/acme/v2/c_thing?limit=1",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["data"][0]["_id"], ids[4]);
}

#[actix_web::test]
async fn documents_list_bad_parameters() {
    let app = common::app().await;
    let admin = setup(&app.svc, "acme").await;
    for q in ["limit=0", "limit=1001", "limit=-1", "limit=ten", "limit="] {
        let r = call(
            &app.svc,
            "GET",
            &format!("/acme/v2/c_things?{q}"),
            Some(&admin),
            None,
        )
        .await;
        assert_fault(&r, 400, "cortex.invalidArgument.limit", Some("limit"));
    }
    let (s, _) = call(
        &app.svc,
        "GET",
        "/acme/v2/c_things?limit=1000",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let r = call(
        &app.svc,
        "GET",
        "/acme/v2/c_things?skip=x",
        Some(&admin),
        None,
    )
    .await;
    assert_fault(&r, 400, "cortex.invalidArgument.skip", Some("skip"));
    let r = call(
        &app.svc,
        "GET",
        "/acme/v2/c_things?total=yes",
        Some(&admin),
        None,
    )
    .await;
    assert_fault(&r, 400, "cortex.invalidArgument.total", Some("total"));
    let r = call(
        &app.svc,
        "GET",
        "/acme/v2/c_things?bogus=1",
        Some(&admin),
        None,
    )
    .await;
    assert_fault(
        &r,
        400,
        "cortex.invalidArgument.unknownParameter",
        Some("bogus"),
    );
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// where/sort/paths/expand on a list never reach documents the caller may not read.
#[actix_web::test]
async fn documents_list_queries_respect_acl() {
    let app = common::app().await;
    let admin = setup(&app.svc, "acme").await;
    let (_, alice) = user(&app.svc, "acme", &admin, "alice@acme.test").await;
    let (_, bob) = user(&app.svc, "acme", &admin, "bob@acme.test").await;
    let p = create_doc(
        &app.svc,
        "acme",
        &admin,
        "c_parents",
        json!({"c_title": "TOP SECRET"}),
    )
    .await;
    let pid = p["_id"].as_str().unwrap();
    // a document the caller cannot read cannot be referenced (its id cannot be probed)
    let r = call(
        &app.svc,
        "POST",
        "/acme/v2/c_things",
        Some(&alice),
        Some(json!({"c_name": "probe", "c_parent": pid})),
    )
    .await;
    assert_fault(&r, 400, "cortex.validation.failed", None);
    assert_eq!(
        r.1["faults"][0]["errCode"],
        "cortex.validation.invalidReference"
    );
    // while users may read parents they link to one; then the grant is withdrawn
    let grant = |acl: Value| {
        call(
            &app.svc,
            "PATCH",
            "/acme/v2/objects/c_parent",
            Some(&admin),
            Some(json!({"defaultAcl": acl})),
        )
    };
    assert_eq!(
        grant(json!([{"type": "role", "target": "user", "allow": "read"}]))
            .await
            .0,
        200
    );
    create_doc(
        &app.svc,
        "acme",
        &alice,
        "c_things",
        json!({"c_name": "alice's", "c_count": 5, "c_parent": pid}),
    )
    .await;
    let mine = create_doc(
        &app.svc,
        "acme",
        &bob,
        "c_things",
        json!({"c_name": "bob's", "c_count": 1, "c_parent": pid}),
    )
    .await;
    let mine_id = mine["_id"].as_str().unwrap();
    assert_eq!(grant(json!([])).await.0, 200);

    let list = |q: String| format!("/acme/v2/c_things?total=true&{q}");
    let w = |v: Value| format!("where={}", enc(&v.to_string()));
    for q in [
        w(json!({"c_count": 5})),
        w(json!({"c_name": {"$regex": "/alice/"}})),
        w(json!({"c_count": {"$gte": 0}})) + "&sort=-c_count",
    ] {
        let (s, v) = call(&app.svc, "GET", &list(q.clone()), Some(&bob), None).await;
        assert_eq!(s, 200, "{q}: {v}");
        assert!(!v.to_string().contains("alice's"), "{q}: {v}");
        assert!(
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d["_id"] == mine_id),
            "{q}: {v}"
        );
        assert!(v["total"].as_u64().unwrap() <= 1, "{q}: {v}");
    }
    let (_, v) = call(
        &app.svc,
        "GET",
        &list(w(json!({"c_count": 5}))),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(v["total"], 1, "the admin sees it: {v}");

    // expanding a reference to a document the caller cannot read keeps the reference
    let (_, v) = call(
        &app.svc,
        "GET",
        &list("expand=c_parent".into()),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(
        v["data"][0]["c_parent"]["c_title"], "TOP SECRET",
        "expand works: {v}"
    );
    for q in ["expand=c_parent", "paths=c_name,c_parent.c_title"] {
        let (s, v) = call(&app.svc, "GET", &list(q.into()), Some(&bob), None).await;
        assert_eq!(s, 200, "{q}: {v}");
        assert!(!v.to_string().contains("TOP SECRET"), "{q} leaks: {v}");
        assert_eq!(v["total"], 1, "{q}: {v}");
    }
    let (s, v) = call(
        &app.svc,
        "GET",
        &format!("/acme/v2/c_things/{mine_id}?expand=c_parent"),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(!v.to_string().contains("TOP SECRET"), "{v}");
    assert_eq!(v["c_parent"]["_id"], pid);

    // bad query parameters are faults naming the parameter
    let r = call(
        &app.svc,
        "GET",
        "/acme/v2/c_things?where=%7Bbad",
        Some(&bob),
        None,
    )
    .await;
    assert_fault(&r, 400, "cortex.invalidArgument.query", Some("where"));
    let r = call(
        &app.svc,
        "GET",
        "/acme/v2/c_things?paths=c_zz",
        Some(&bob),
        None,
    )
    .await;
    assert_fault(&r, 400, "cortex.invalidArgument.paths", Some("paths[0]"));
}

#[actix_web::test]
async fn documents_patch() {
    let app = common::app().await;
    let admin = setup(&app.svc, "acme").await;
    let d = create_doc(
        &app.svc,
        "acme",
        &admin,
        "c_things",
        json!({"c_name": "a", "c_count": 1, "c_tags": ["x"]}),
    )
    .await;
    let id = d["_id"].as_str().unwrap();
    let url = format!("/acme/v2/c_things/{id}");
    assert!(d.get("updated").is_none(), "{d}");

    let (s, v) = call(
        &app.svc,
        "PATCH",
        &url,
        Some(&admin),
        Some(json!({"c_count": "7", "c_tags": null, "c_flag": false})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["c_count"], 7);
    assert_eq!(v["c_flag"], false);
    assert_eq!(v["c_name"], "a", "untouched values stay");
    assert!(v.get("c_tags").is_none(), "null removes: {v}");
    assert!(v["updated"].is_string(), "{v}");
    assert_eq!(v["created"], d["created"]);
    let g = call(&app.svc, "GET", &url, Some(&admin), None).await;
    assert_eq!(g.1, v);

    let r = call(
        &app.svc,
        "PATCH",
        &url,
        Some(&admin),
        Some(json!({"c_name": null})),
    )
    .await;
    assert_invalid_at(&r, "c_name", "cortex.validation.invalidValue");
    for k in ["created", "_id", "owner", "creator", "object", "updated"] {
        let r = call(&app.svc, "PATCH", &url, Some(&admin), Some(json!({k: "x"}))).await;
        assert_invalid_at(&r, k, "cortex.validation.readOnly");
    }
    let r = call(
        &app.svc,
        "PATCH",
        &url,
        Some(&admin),
        Some(json!({"bogus": 1, "c_count": "z"})),
    )
    .await;
    assert_invalid_at(&r, "bogus", "cortex.validation.unknownField");
    assert_eq!(
        sub(&r.1, "c_count")["errCode"],
        "cortex.validation.invalidValue"
    );
    let r = call(
        &app.svc,
        "PATCH",
        &url,
        Some(&admin),
        Some(json!({"c_parent": "0123456789abcdef01234567"})),
    )
    .await;
    assert_invalid_at(&r, "c_parent", "cortex.validation.invalidReference");
    let r = call(
        &app.svc,
        "PATCH",
        &url,
        Some(&admin),
        Some(json!({"c_file": {"x": 1}})),
    )
    .await;
    assert_invalid_at(&r, "c_file", "cortex.validation.invalidValue");
    let r = raw(
        &app.svc,
        TestRequest::patch()
            .uri(&url)
            .insert_header(bearer(&admin))
            .insert_header(("Content-Type", "text/plain"))
            .set_payload("{}"),
    )
    .await;
    assert_fault(&r, 400, "cortex.invalidArgument.contentType", None);
    // refused patches changed nothing
    let g2 = call(&app.svc, "GET", &url, Some(&admin), None).await;
    assert_eq!(g2.1, v);

    let r = call(
        &app.svc,
        "PATCH",
        "/acme/v2/c_things/0123456789abcdef01234567",
        Some(&admin),
        Some(json!({"c_count": 1})),
    )
    .await;
    assert_eq!(r.0, 404, "{}", r.1);
    let r = call(
        &app.svc,
        "PATCH",
        &format!("/acme/v2/c_nopes/{id}"),
        Some(&admin),
        Some(json!({"c_count": 1})),
    )
    .await;
    assert_fault(&r, 404, "cortex.notFound.object", None);
}

#[actix_web::test]
async fn documents_delete() {
    let app = common::app().await;
    let admin = setup(&app.svc, "acme").await;
    let d = create_doc(&app.svc, "acme", &admin, "c_things", json!({"c_name": "a"})).await;
    let keep = create_doc(&app.svc, "acme", &admin, "c_things", json!({"c_name": "b"})).await;
    let url = format!("/acme/v2/c_things/{}", d["_id"].as_str().unwrap());
    let r = call(&app.svc, "DELETE", &url, Some(&admin), None).await;
    assert_eq!(r, (200, json!({"object": "result", "data": true})));
    let r = call(&app.svc, "GET", &url, Some(&admin), None).await;
    assert_eq!(r.0, 404, "{}", r.1);
    assert_eq!(r.1["object"], "fault");
    let r = call(&app.svc, "DELETE", &url, Some(&admin), None).await;
    assert_eq!(r.0, 404, "{}", r.1);
    let (_, l) = call(
        &app.svc,
        "GET",
        "/acme/v2/c_things?total=true",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(l["total"], 1);
    assert_eq!(l["data"][0]["_id"], keep["_id"]);
    for bad in [
        "nope",
        "0123456789abcdef0123456",
        "0123456789abcdef0123456g",
    ] {
        let r = call(
            &app.svc,
            "GET",
            &format!("/acme/v2/c_things/{bad}"),
            Some(&admin),
            None,
        )
        .await;
        assert_eq!(r.0, 404, "{bad}: {}", r.1);
        assert_eq!(r.1["object"], "fault");
        let r = call(
            &app.svc,
            "DELETE",
            &format!("/acme/v2/c_things/{bad}"),
            Some(&admin),
            None,
        )
        .await;
        assert_eq!(r.0, 404, "{bad}: {}", r.1);
    }
    let r = call(
        &app.svc,
        "DELETE",
        &format!("/acme/v2/c_nopes/{}", keep["_id"].as_str().unwrap()),
        Some(&admin),
        None,
    )
    .await;
    assert_fault(&r, 404, "cortex.notFound.object", None);
}

// ---------------------------------------------------------------------------------------------
// ACL
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn acl_owner_only_by_default() {
    let app = common::app().await;
    let admin = setup(&app.svc, "acme").await;
    let (_, alice) = user(&app.svc, "acme", &admin, "alice@acme.test").await;
    let (_, bob) = user(&app.svc, "acme", &admin, "bob@acme.test").await;
    let a = create_doc(
        &app.svc,
        "acme",
        &alice,
        "c_things",
        json!({"c_name": "alice's"}),
    )
    .await;
    let b = create_doc(
        &app.svc,
        "acme",
        &bob,
        "c_things",
        json!({"c_name": "bob's"}),
    )
    .await;
    let aurl = format!("/acme/v2/c_things/{}", a["_id"].as_str().unwrap());

    let (_, l) = call(
        &app.svc,
        "GET",
        "/acme/v2/c_things?total=true",
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(l["total"], 1, "{l}");
    assert_eq!(l["data"][0]["_id"], b["_id"]);
    let r = call(&app.svc, "GET", &aurl, Some(&bob), None).await;
    assert_eq!(r.0, 404, "{}", r.1);
    let r = call(
        &app.svc,
        "PATCH",
        &aurl,
        Some(&bob),
        Some(json!({"c_count": 1})),
    )
    .await;
    assert_eq!(r.0, 404, "{}", r.1);
    let r = call(&app.svc, "DELETE", &aurl, Some(&bob), None).await;
    assert_eq!(r.0, 404, "{}", r.1);
    let r = put_file(
        &app.svc,
        &format!("{aurl}/c_file/content"),
        &bob,
        "text/plain",
        b"x",
    )
    .await;
    assert_eq!(r.0, 404, "{}", r.1);

    // the owner can do everything, the admin sees all
    let r = call(
        &app.svc,
        "PATCH",
        &aurl,
        Some(&alice),
        Some(json!({"c_count": 2})),
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.1);
    let (_, l) = call(
        &app.svc,
        "GET",
        "/acme/v2/c_things?total=true",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(l["total"], 2);
    let r = call(&app.svc, "GET", &aurl, Some(&admin), None).await;
    assert_eq!(r.1["c_count"], 2);

    // a grant added to the definition later applies at once
    let r = call(
        &app.svc,
        "PATCH",
        "/acme/v2/objects/c_thing",
        Some(&admin),
        Some(json!({"defaultAcl": [{"type": "role", "target": "user", "allow": "read"}]})),
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.1);
    let r = call(&app.svc, "GET", &aurl, Some(&bob), None).await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["c_name"], "alice's");
    let r = call(
        &app.svc,
        "PATCH",
        &aurl,
        Some(&bob),
        Some(json!({"c_count": 3})),
    )
    .await;
    assert_fault(&r, 403, "cortex.accessDenied.update", None);

    let r = call(&app.svc, "DELETE", &aurl, Some(&alice), None).await;
    assert_eq!(r.0, 200, "{}", r.1);
}

#[actix_web::test]
async fn acl_role_read_grant() {
    let app = common::app().await;
    let admin = org_with_admin(&app.svc, "acme").await;
    define(
        &app.svc,
        "acme",
        &admin,
        json!({
            "name": "c_memo",
            "defaultAcl": [{"type": "role", "target": "user", "allow": "read"}],
            "properties": [{"name": "c_t", "type": "String"}, {"name": "c_f", "type": "File"}]
        }),
    )
    .await;
    let (_, alice) = user(&app.svc, "acme", &admin, "alice@acme.test").await;
    let (_, bob) = user(&app.svc, "acme", &admin, "bob@acme.test").await;
    let r = call(
        &app.svc,
        "POST",
        "/acme/v2/accounts",
        Some(&admin),
        Some(json!({"email": "c@acme.test", "roles": ["guest"]})),
    )
    .await;
    let carol = r.1["token"].as_str().unwrap().to_string();
    let a = create_doc(&app.svc, "acme", &alice, "c_memos", json!({"c_t": "hello"})).await;
    let url = format!("/acme/v2/c_memos/{}", a["_id"].as_str().unwrap());
    let put = put_file(
        &app.svc,
        &format!("{url}/c_f/content"),
        &alice,
        "text/plain",
        b"memo",
    )
    .await;
    assert_eq!(put.0, 201, "{}", put.1);

    let r = call(&app.svc, "GET", &url, Some(&bob), None).await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["c_t"], "hello");
    let (_, l) = call(
        &app.svc,
        "GET",
        "/acme/v2/c_memos?total=true",
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(l["total"], 1);
    let (s, _, body) = send(
        &app.svc,
        TestRequest::get()
            .uri(&format!("{url}/c_f/content"))
            .insert_header(bearer(&bob)),
    )
    .await;
    assert_eq!((s, body.as_slice()), (200, b"memo".as_slice()));

    let r = call(
        &app.svc,
        "PATCH",
        &url,
        Some(&bob),
        Some(json!({"c_t": "changed"})),
    )
    .await;
    assert_fault(&r, 403, "cortex.accessDenied.update", None);
    let r = call(&app.svc, "DELETE", &url, Some(&bob), None).await;
    assert_fault(&r, 403, "cortex.accessDenied.delete", None);
    let r = put_file(
        &app.svc,
        &format!("{url}/c_f/content"),
        &bob,
        "text/plain",
        b"x",
    )
    .await;
    assert_fault(&r, 403, "cortex.accessDenied.update", None);

    // a role without a grant sees nothing
    let r = call(&app.svc, "GET", &url, Some(&carol), None).await;
    assert_eq!(r.0, 404, "{}", r.1);
    let (_, l) = call(
        &app.svc,
        "GET",
        "/acme/v2/c_memos?total=true",
        Some(&carol),
        None,
    )
    .await;
    assert_eq!(l["total"], 0);
    // nothing changed
    let r = call(&app.svc, "GET", &url, Some(&alice), None).await;
    assert_eq!(r.1["c_t"], "hello");
}

#[actix_web::test]
async fn acl_account_update_grant() {
    let app = common::app().await;
    let admin = org_with_admin(&app.svc, "acme").await;
    let (bob_id, bob) = user(&app.svc, "acme", &admin, "bob@acme.test").await;
    let (_, alice) = user(&app.svc, "acme", &admin, "alice@acme.test").await;
    define(
        &app.svc,
        "acme",
        &admin,
        json!({
            "name": "c_memo",
            "defaultAcl": [{"type": "account", "target": bob_id, "allow": "update"}],
            "properties": [{"name": "c_t", "type": "String"}]
        }),
    )
    .await;
    let a = create_doc(&app.svc, "acme", &alice, "c_memos", json!({"c_t": "hello"})).await;
    let url = format!("/acme/v2/c_memos/{}", a["_id"].as_str().unwrap());
    let r = call(
        &app.svc,
        "PATCH",
        &url,
        Some(&bob),
        Some(json!({"c_t": "by bob"})),
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["c_t"], "by bob");
    let r = call(&app.svc, "DELETE", &url, Some(&bob), None).await;
    assert_fault(&r, 403, "cortex.accessDenied.delete", None);
    let r = call(&app.svc, "GET", &url, Some(&alice), None).await;
    assert_eq!(r.1["c_t"], "by bob");
    // an account grant needs an account id
    let r = call(
        &app.svc,
        "POST",
        "/acme/v2/objects",
        Some(&admin),
        Some(json!({"name": "c_bad", "defaultAcl": [{"type": "account", "target": "bob", "allow": "read"}]})),
    )
    .await;
    assert_invalid_at(&r, "defaultAcl[0].target", "cortex.validation.invalidValue");
}

#[actix_web::test]
async fn acl_read_access_hides_properties_on_get() {
    let app = common::app().await;
    let admin = org_with_admin(&app.svc, "acme").await;
    define(
        &app.svc,
        "acme",
        &admin,
        json!({
            "name": "c_memo",
            "defaultAcl": [{"type": "role", "target": "user", "allow": "read"}],
            "properties": [
                {"name": "c_t", "type": "String"},
                {"name": "c_secret", "type": "String", "readAccess": "update"}
            ]
        }),
    )
    .await;
    let (_, alice) = user(&app.svc, "acme", &admin, "alice@acme.test").await;
    let (_, bob) = user(&app.svc, "acme", &admin, "bob@acme.test").await;
    let a = create_doc(
        &app.svc,
        "acme",
        &alice,
        "c_memos",
        json!({"c_t": "hi", "c_secret": "s3"}),
    )
    .await;
    let url = format!("/acme/v2/c_memos/{}", a["_id"].as_str().unwrap());
    let r = call(&app.svc, "GET", &url, Some(&alice), None).await;
    assert_eq!(r.1["c_secret"], "s3", "the owner sees it");
    let r = call(&app.svc, "GET", &url, Some(&bob), None).await;
    assert_eq!(r.0, 200);
    assert_eq!(r.1["c_t"], "hi");
    assert!(
        r.1.get("c_secret").is_none(),
        "readAccess above read is left out: {}",
        r.1
    );
}

/// A memo object whose c_secret needs update access, readable by role user; returns
/// (alice's doc id, alice, bob).
async fn secret_memo<S, B>(svc: &S, admin: &str) -> (String, String, String)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    define(
        svc,
        "acme",
        admin,
        json!({
            "name": "c_memo",
            "defaultAcl": [{"type": "role", "target": "user", "allow": "read"}],
            "properties": [
                {"name": "c_t", "type": "String"},
                {"name": "c_secret", "type": "String", "readAccess": "update"}
            ]
        }),
    )
    .await;
    let (_, alice) = user(svc, "acme", admin, "alice@acme.test").await;
    let (_, bob) = user(svc, "acme", admin, "bob@acme.test").await;
    let a = create_doc(
        svc,
        "acme",
        &alice,
        "c_memos",
        json!({"c_t": "hi", "c_secret": "s3"}),
    )
    .await;
    (a["_id"].as_str().unwrap().to_string(), alice, bob)
}

#[actix_web::test]
async fn acl_read_access_hides_properties_in_lists() {
    let app = common::app().await;
    let admin = org_with_admin(&app.svc, "acme").await;
    let (_, alice, bob) = secret_memo(&app.svc, &admin).await;
    let (_, l) = call(&app.svc, "GET", "/acme/v2/c_memos", Some(&alice), None).await;
    assert_eq!(l["data"][0]["c_secret"], "s3", "the owner sees it: {l}");
    let (s, l) = call(&app.svc, "GET", "/acme/v2/c_memos", Some(&bob), None).await;
    assert_eq!(s, 200);
    assert_eq!(l["data"][0]["c_t"], "hi", "{l}");
    assert!(l["data"][0].get("c_secret").is_none(), "{l}");
    let (_, l) = call(
        &app.svc,
        "GET",
        "/acme/v2/c_memos?paths=c_t,c_secret",
        Some(&bob),
        None,
    )
    .await;
    assert!(!l.to_string().contains("s3"), "{l}");
}

#[actix_web::test]
async fn acl_where_cannot_probe_unreadable_properties() {
    let app = common::app().await;
    let admin = org_with_admin(&app.svc, "acme").await;
    let (_, _, bob) = secret_memo(&app.svc, &admin).await;
    let probe = |guess: &str| {
        format!(
            "/acme/v2/c_memos?total=true&where={}",
            enc(&json!({"c_secret": guess}).to_string())
        )
    };
    let right = call(&app.svc, "GET", &probe("s3"), Some(&bob), None).await;
    let wrong = call(&app.svc, "GET", &probe("nope"), Some(&bob), None).await;
    assert_eq!(right.0, wrong.0, "{} / {}", right.1, wrong.1);
    assert_eq!(
        right.1["total"], wrong.1["total"],
        "{} / {}",
        right.1, wrong.1
    );
}

// ---------------------------------------------------------------------------------------------
// files
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn files_upload_and_download() {
    let app = common::app().await;
    let admin = setup(&app.svc, "acme").await;
    let d = create_doc(&app.svc, "acme", &admin, "c_things", json!({"c_name": "f"})).await;
    let id = d["_id"].as_str().unwrap();
    let bytes = b"hello world";
    let url = format!("/acme/v2/c_things/{id}/c_file/content");
    let (s, f) = put_file(
        &app.svc,
        &format!("{url}?filename=a.txt"),
        &admin,
        "text/plain",
        bytes,
    )
    .await;
    assert_eq!(s, 201, "{f}");
    let expect = json!({
        "object": "facet", "name": "content", "mime": "text/plain", "filename": "a.txt",
        "size": 11, "ETag": sha_hex(bytes), "state": 2,
        "path": format!("/c_things/{id}/c_file/content")
    });
    assert_eq!(f, expect);
    let g = call(
        &app.svc,
        "GET",
        &format!("/acme/v2/c_things/{id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(g.1["c_file"], expect, "{}", g.1);
    assert!(g.1["updated"].is_string());

    let (s, h, body) = send(
        &app.svc,
        TestRequest::get().uri(&url).insert_header(bearer(&admin)),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(body, bytes);
    assert_eq!(hdr(&h, "etag"), format!("\"{}\"", sha_hex(bytes)));
    assert_eq!(hdr(&h, "accept-ranges"), "bytes");
    assert_eq!(hdr(&h, "content-type"), "text/plain");
    let cd = hdr(&h, "content-disposition");
    assert!(cd.starts_with("attachment") && cd.contains("a.txt"), "{cd}");

    // binary content with a mime type, filename defaulting to the property name
    let bin: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let (s, f) = put_file(&app.svc, &url, &admin, "application/octet-stream", &bin).await;
    assert_eq!(s, 201, "{f}");
    assert_eq!(f["size"], 70_000);
    assert_eq!(f["filename"], "c_file");
    assert_eq!(f["ETag"], sha_hex(&bin));
    let (s, h, body) = send(
        &app.svc,
        TestRequest::get().uri(&url).insert_header(bearer(&admin)),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(hdr(&h, "content-type"), "application/octet-stream");
    assert!(
        body == bin,
        "replaced content downloads ({} bytes)",
        body.len()
    );
}

#[actix_web::test]
async fn files_filename_is_sanitised() {
    let app = common::app().await;
    let admin = setup(&app.svc, "acme").await;
    let d = create_doc(&app.svc, "acme", &admin, "c_things", json!({"c_name": "f"})).await;
    let url = format!(
        "/acme/v2/c_things/{}/c_file/content",
        d["_id"].as_str().unwrap()
    );
    let (s, f) = put_file(
        &app.svc,
        &format!("{url}?filename=..%2F..%2Fetc%2Fpass%22wd%0D%0AX-Evil%3A%201"),
        &admin,
        "text/plain",
        b"x",
    )
    .await;
    assert_eq!(s, 201, "{f}");
    let name = f["filename"].as_str().unwrap();
    assert!(
        !name.contains('/') && !name.contains('"') && !name.contains('\r') && !name.contains('\n'),
        "{f}"
    );
    assert!(!name.starts_with('.'), "{f}");
    let (s, h, _) = send(
        &app.svc,
        TestRequest::get().uri(&url).insert_header(bearer(&admin)),
    )
    .await;
    assert_eq!(s, 200);
    assert!(h.get("x-evil").is_none());
    let cd = hdr(&h, "content-disposition");
    assert_eq!(cd.matches('"').count(), 2, "{cd}");
    assert!(!cd.contains('/'), "{cd}");
}

#[actix_web::test]
async fn acl_read_access_hides_files() {
    let app = common::app().await;
    let admin = org_with_admin(&app.svc, "acme").await;
    define(
        &app.svc,
        "acme",
        &admin,
        json!({
            "name": "c_memo",
            "defaultAcl": [{"type": "role", "target": "user", "allow": "read"}],
            "properties": [
                {"name": "c_open", "type": "File"},
                {"name": "c_private", "type": "File", "readAccess": "update"}
            ]
        }),
    )
    .await;
    let (_, alice) = user(&app.svc, "acme", &admin, "alice@acme.test").await;
    let (_, bob) = user(&app.svc, "acme", &admin, "bob@acme.test").await;
    let a = create_doc(&app.svc, "acme", &alice, "c_memos", json!({})).await;
    let base = format!("/acme/v2/c_memos/{}", a["_id"].as_str().unwrap());
    for p in ["c_open", "c_private"] {
        let r = put_file(
            &app.svc,
            &format!("{base}/{p}/content"),
            &alice,
            "text/plain",
            p.as_bytes(),
        )
        .await;
        assert_eq!(r.0, 201, "{}", r.1);
    }
    let get = |p: &str, tok: &str| {
        TestRequest::get()
            .uri(&format!("{base}/{p}/content"))
            .insert_header(bearer(tok))
    };
    let (s, _, b) = send(&app.svc, get("c_private", &alice)).await;
    assert_eq!(
        (s, b.as_slice()),
        (200, b"c_private".as_slice()),
        "the owner reads it"
    );
    let (s, _, b) = send(&app.svc, get("c_open", &bob)).await;
    assert_eq!((s, b.as_slice()), (200, b"c_open".as_slice()));
    let (s, _, b) = send(&app.svc, get("c_private", &bob)).await;
    assert_eq!(
        s,
        404,
        "readAccess above the reader's level: {}",
        json_of(&b)
    );
    assert_eq!(json_of(&b)["object"], "fault");
}

#[actix_web::test]
async fn files_ranges_and_conditional_get() {
    let app = common::app().await;
    let admin = setup(&app.svc, "acme").await;
    let d = create_doc(&app.svc, "acme", &admin, "c_things", json!({"c_name": "f"})).await;
    let url = format!(
        "/acme/v2/c_things/{}/c_file/content",
        d["_id"].as_str().unwrap()
    );
    let bytes = b"0123456789";
    assert_eq!(
        put_file(&app.svc, &url, &admin, "text/plain", bytes)
            .await
            .0,
        201
    );
    let get = |range: Option<&str>, inm: Option<String>| {
        let mut r = TestRequest::get().uri(&url).insert_header(bearer(&admin));
        if let Some(v) = range {
            r = r.insert_header(("Range", v.to_string()));
        }
        if let Some(v) = inm {
            r = r.insert_header(("If-None-Match", v));
        }
        r
    };
    let (s, h, b) = send(&app.svc, get(Some("bytes=2-4"), None)).await;
    assert_eq!(s, 206);
    assert_eq!(b, b"234");
    assert_eq!(hdr(&h, "content-range"), "bytes 2-4/10");
    let (s, h, b) = send(&app.svc, get(Some("bytes=7-"), None)).await;
    assert_eq!((s, b.as_slice()), (206, b"789".as_slice()));
    assert_eq!(hdr(&h, "content-range"), "bytes 7-9/10");
    let (s, h, b) = send(&app.svc, get(Some("bytes=-3"), None)).await;
    assert_eq!((s, b.as_slice()), (206, b"789".as_slice()));
    assert_eq!(hdr(&h, "content-range"), "bytes 7-9/10");
    let (s, _, b) = send(&app.svc, get(Some("bytes=5-100"), None)).await;
    assert_eq!((s, b.as_slice()), (206, b"56789".as_slice()));

    for bad in ["bytes=10-", "bytes=20-30", "bytes=5-2", "bytes=-0"] {
        let (s, h, b) = send(&app.svc, get(Some(bad), None)).await;
        let v = json_of(&b);
        assert_eq!(s, 416, "{bad}: {v}");
        assert_eq!(v["object"], "fault", "{bad}");
        assert_eq!(v["status"], 416, "{bad}");
        assert_eq!(hdr(&h, "content-range"), "bytes */10", "{bad}");
    }

    let etag = format!("\"{}\"", sha_hex(bytes));
    let (s, h, b) = send(&app.svc, get(None, Some(etag.clone()))).await;
    assert_eq!(s, 304);
    assert!(b.is_empty());
    assert_eq!(hdr(&h, "etag"), etag);
    let (s, _, b) = send(&app.svc, get(None, Some("\"other\"".into()))).await;
    assert_eq!((s, b.as_slice()), (200, bytes.as_slice()));
    // If-None-Match compares weakly: W/"etag" is a hit, in a list too
    let (s, _, b) = send(&app.svc, get(None, Some(format!("\"x\", W/{etag}")))).await;
    assert_eq!((s, b.len()), (304, 0));
    // If-Range: the Range holds only for this strong ETag; otherwise the whole content
    let ranged = |if_range: &str| {
        get(Some("bytes=2-4"), None).insert_header(("If-Range", if_range.to_string()))
    };
    let (s, _, b) = send(&app.svc, ranged(&etag)).await;
    assert_eq!((s, b.as_slice()), (206, b"234".as_slice()));
    for stale in [
        "\"other\"".to_string(),
        format!("W/{etag}"),
        "Sat, 29 Nov 2026 10:00:00 GMT".to_string(),
    ] {
        let (s, h, b) = send(&app.svc, ranged(&stale)).await;
        assert_eq!((s, b.as_slice()), (200, bytes.as_slice()), "{stale}");
        assert_eq!(hdr(&h, "etag"), etag);
    }
}

#[actix_web::test]
async fn files_ranges_across_segments_and_empty_files() {
    let app = common::app().await;
    let admin = setup(&app.svc, "acme").await;
    let d = create_doc(
        &app.svc,
        "acme",
        &admin,
        "c_things",
        json!({"c_name": "big"}),
    )
    .await;
    let base = format!("/acme/v2/c_things/{}", d["_id"].as_str().unwrap());
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (s, f) = put_file(
        &app.svc,
        &format!("{base}/c_file/content"),
        &admin,
        "application/octet-stream",
        &data,
    )
    .await;
    assert_eq!(s, 201, "{f}");
    assert_eq!(f["size"], 200_000);
    let url = format!("{base}/c_file/content");
    let ranges: [(&str, usize, usize); 6] = [
        ("bytes=65530-65545", 65_530, 65_546),
        ("bytes=131072-131080", 131_072, 131_081),
        ("bytes=65536-196607", 65_536, 196_608),
        ("bytes=-10", 199_990, 200_000),
        ("bytes=0-", 0, 200_000),
        ("bytes=199999-199999", 199_999, 200_000),
    ];
    for (range, from, to) in ranges {
        let (s, h, b) = send(
            &app.svc,
            TestRequest::get()
                .uri(&url)
                .insert_header(bearer(&admin))
                .insert_header(("Range", range)),
        )
        .await;
        assert_eq!(s, 206, "{range}");
        assert!(b == data[from..to], "{range}: got {} bytes", b.len());
        assert_eq!(
            hdr(&h, "content-range"),
            format!("bytes {from}-{}/200000", to - 1),
            "{range}"
        );
        assert_eq!(
            hdr(&h, "content-length"),
            (to - from).to_string(),
            "{range}"
        );
    }

    // an empty file
    let (s, f) = put_file(
        &app.svc,
        &format!("{base}/c_files/content"),
        &admin,
        "text/plain",
        b"",
    )
    .await;
    assert_eq!(s, 201, "{f}");
    assert_eq!(f["size"], 0);
    assert_eq!(f["ETag"], sha_hex(b""));
    let url = format!("{base}/c_files/0/content");
    let (s, h, b) = send(
        &app.svc,
        TestRequest::get().uri(&url).insert_header(bearer(&admin)),
    )
    .await;
    assert_eq!(s, 200, "{}", json_of(&b));
    assert!(b.is_empty());
    assert_eq!(hdr(&h, "etag"), format!("\"{}\"", sha_hex(b"")));
    let (s, _, _) = send(
        &app.svc,
        TestRequest::get()
            .uri(&url)
            .insert_header(bearer(&admin))
            .insert_header(("Range", "bytes=0-")),
    )
    .await;
    assert_eq!(s, 416);
    assert_eq!(storage(&app.svc, "acme", &admin).await["files"], 200_000);
}

#[actix_web::test]
async fn files_nested_and_arrays() {
    let app = common::app().await;
    let admin = setup(&app.svc, "acme").await;
    let d = create_doc(
        &app.svc,
        "acme",
        &admin,
        "c_things",
        json!({"c_name": "n", "c_items": [{"c_x": 1}, {"c_x": 2}], "c_meta": {"c_note": "m"}}),
    )
    .await;
    let id = d["_id"].as_str().unwrap().to_string();
    let e1 = d["c_items"][1]["_id"].as_str().unwrap().to_string();
    let base = format!("/acme/v2/c_things/{id}");

    // a file in a Document-array element
    let (s, f) = put_file(
        &app.svc,
        &format!("{base}/c_items/{e1}/c_file/content?filename=e.txt"),
        &admin,
        "text/plain",
        b"elem",
    )
    .await;
    assert_eq!(s, 201, "{f}");
    assert_eq!(
        f["path"],
        format!("/c_things/{id}/c_items/{e1}/c_file/content")
    );
    // a file in a single Document
    let (s, f) = put_file(
        &app.svc,
        &format!("{base}/c_meta/c_file/content"),
        &admin,
        "text/csv",
        b"a,b",
    )
    .await;
    assert_eq!(s, 201, "{f}");
    assert_eq!(f["path"], format!("/c_things/{id}/c_meta/c_file/content"));
    // File arrays append
    for (i, content) in [b"first".as_slice(), b"second".as_slice()]
        .iter()
        .enumerate()
    {
        let (s, f) = put_file(
            &app.svc,
            &format!("{base}/c_files/content"),
            &admin,
            "text/plain",
            content,
        )
        .await;
        assert_eq!(s, 201, "{f}");
        assert_eq!(f["path"], format!("/c_things/{id}/c_files/{i}/content"));
    }

    let g = call(&app.svc, "GET", &base, Some(&admin), None).await;
    assert_eq!(g.0, 200);
    let v = g.1;
    assert_eq!(v["c_items"][1]["c_file"]["filename"], "e.txt", "{v}");
    assert_eq!(v["c_items"][1]["c_x"], 2);
    assert!(v["c_items"][0].get("c_file").is_none());
    assert_eq!(v["c_meta"]["c_file"]["mime"], "text/csv");
    assert_eq!(v["c_meta"]["c_note"], "m");
    assert_eq!(v["c_files"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["c_files"][1]["path"],
        format!("/c_things/{id}/c_files/1/content")
    );

    let get = |p: String| TestRequest::get().uri(&p).insert_header(bearer(&admin));
    let (s, _, b) = send(&app.svc, get(format!("{base}/c_items/{e1}/c_file/content"))).await;
    assert_eq!((s, b.as_slice()), (200, b"elem".as_slice()));
    let (s, _, b) = send(&app.svc, get(format!("{base}/c_meta/c_file/content"))).await;
    assert_eq!((s, b.as_slice()), (200, b"a,b".as_slice()));
    let (s, _, b) = send(&app.svc, get(format!("{base}/c_files/0/content"))).await;
    assert_eq!((s, b.as_slice()), (200, b"first".as_slice()));
    let (s, _, b) = send(&app.svc, get(format!("{base}/c_files/1/content"))).await;
    assert_eq!((s, b.as_slice()), (200, b"second".as_slice()));
    // replacing an array entry by index
    let (s, f) = put_file(
        &app.svc,
        &format!("{base}/c_files/0/content"),
        &admin,
        "text/plain",
        b"FIRST",
    )
    .await;
    assert_eq!(s, 201, "{f}");
    assert_eq!(f["path"], format!("/c_things/{id}/c_files/0/content"));
    let (_, _, b) = send(&app.svc, get(format!("{base}/c_files/0/content"))).await;
    assert_eq!(b, b"FIRST");

    // missing entries and elements
    for p in [
        format!("{base}/c_files/2/content"),
        format!("{base}/c_files/content"),
        format!("{base}/c_items/0123456789abcdef01234567/c_file/content"),
        format!(
            "{base}/c_items/{}/c_file/content",
            d["c_items"][0]["_id"].as_str().unwrap()
        ),
    ] {
        let (s, _, b) = send(&app.svc, get(p.clone())).await;
        assert_eq!(s, 404, "{p}: {}", json_of(&b));
        assert_eq!(json_of(&b)["object"], "fault");
    }
    let (s, f) = put_file(
        &app.svc,
        &format!("{base}/c_files/5/content"),
        &admin,
        "text/plain",
        b"x",
    )
    .await;
    assert_eq!(s, 404, "{f}");
    let (s, f) = put_file(
        &app.svc,
        &format!("{base}/c_items/0123456789abcdef01234567/c_file/content"),
        &admin,
        "text/plain",
        b"x",
    )
    .await;
    assert_eq!(s, 404, "{f}");
    // re-sending a Document-array element through PATCH keeps its file
    let items =
        json!([{"_id": d["c_items"][0]["_id"], "c_x": 10}, {"_id": e1, "c_x": 20, "c_file": {}}]);
    let r = call(
        &app.svc,
        "PATCH",
        &base,
        Some(&admin),
        Some(json!({"c_items": items})),
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["c_items"][1]["c_x"], 20);
    assert_eq!(r.1["c_items"][1]["c_file"]["filename"], "e.txt", "{}", r.1);
    let (s, _, b) = send(&app.svc, get(format!("{base}/c_items/{e1}/c_file/content"))).await;
    assert_eq!((s, b.as_slice()), (200, b"elem".as_slice()));
}

#[actix_web::test]
async fn files_errors() {
    let app = common::app().await;
    let admin = setup(&app.svc, "acme").await;
    let d = create_doc(&app.svc, "acme", &admin, "c_things", json!({"c_name": "f"})).await;
    let base = format!("/acme/v2/c_things/{}", d["_id"].as_str().unwrap());
    // not a File property, unknown property, unknown doc, unknown object
    for p in [
        format!("{base}/c_name/content"),
        format!("{base}/c_nope/content"),
        "/acme/v2/c_things/0123456789abcdef01234567/c_file/content".to_string(),
        "/acme/v2/c_things/bad/c_file/content".to_string(),
    ] {
        let r = put_file(&app.svc, &p, &admin, "text/plain", b"x").await;
        assert_eq!(r.0, 404, "{p}: {}", r.1);
        assert_eq!(r.1["object"], "fault");
        let r = raw(
            &app.svc,
            TestRequest::get().uri(&p).insert_header(bearer(&admin)),
        )
        .await;
        assert_eq!(r.0, 404, "{p}: {}", r.1);
    }
    let r = put_file(
        &app.svc,
        &format!(
            "/acme/v2/c_nopes/{}/c_file/content",
            d["_id"].as_str().unwrap()
        ),
        &admin,
        "text/plain",
        b"x",
    )
    .await;
    assert_fault(&r, 404, "cortex.notFound.object", None);
    // nothing uploaded yet
    let r = raw(
        &app.svc,
        TestRequest::get()
            .uri(&format!("{base}/c_file/content"))
            .insert_header(bearer(&admin)),
    )
    .await;
    assert_eq!(r.0, 404, "{}", r.1);
    assert_eq!(r.1["object"], "fault");
    // no credentials; an unknown query parameter
    let r = raw(
        &app.svc,
        TestRequest::put()
            .uri(&format!("{base}/c_file/content"))
            .insert_header(("Content-Type", "text/plain"))
            .set_payload("x"),
    )
    .await;
    assert_fault(&r, 401, "cortex.unauthorized.noCredentials", None);
    let r = put_file(
        &app.svc,
        &format!("{base}/c_file/content?name=x"),
        &admin,
        "text/plain",
        b"x",
    )
    .await;
    assert_fault(
        &r,
        400,
        "cortex.invalidArgument.unknownParameter",
        Some("name"),
    );
    let r = put_file(
        &app.svc,
        &format!("{base}/c_file/content"),
        &admin,
        "notamime",
        b"x",
    )
    .await;
    assert_fault(&r, 400, "cortex.invalidArgument.contentType", None);
    // a declared length over the upload limit (1 GiB in tests) is refused before reading
    let r = raw(
        &app.svc,
        TestRequest::put()
            .uri(&format!("{base}/c_file/content"))
            .insert_header(bearer(&admin))
            .insert_header(("Content-Type", "text/plain"))
            .set_payload("x")
            .insert_header(("Content-Length", "2000000000")),
    )
    .await;
    assert_fault(&r, 413, "cortex.tooLarge.body", None);
    // the same for an NDJSON bulk body over its limit (4 GiB in tests)
    let r = raw(
        &app.svc,
        TestRequest::post()
            .uri("/acme/v2/c_things")
            .insert_header(bearer(&admin))
            .insert_header(("Content-Type", "application/x-ndjson"))
            .set_payload("{}")
            .insert_header(("Content-Length", "5000000000")),
    )
    .await;
    assert_fault(&r, 413, "cortex.tooLarge.body", None);
    // none of that stored anything
    let st = storage(&app.svc, "acme", &admin).await;
    assert_eq!(st["files"], 0, "{st}");
}

#[actix_web::test]
async fn files_storage_accounting() {
    let app = common::app().await;
    let admin = setup(&app.svc, "acme").await;
    let st = storage(&app.svc, "acme", &admin).await;
    assert_eq!(
        (
            st["used"].clone(),
            st["files"].clone(),
            st["exports"].clone()
        ),
        (json!(0), json!(0), json!(0))
    );
    assert_eq!(st["limit"], Value::Null);

    let d = create_doc(
        &app.svc,
        "acme",
        &admin,
        "c_things",
        json!({"c_name": "f", "c_items": [{"c_x": 1}]}),
    )
    .await;
    let id = d["_id"].as_str().unwrap();
    let e0 = d["c_items"][0]["_id"].as_str().unwrap();
    let base = format!("/acme/v2/c_things/{id}");
    assert_eq!(
        put_file(
            &app.svc,
            &format!("{base}/c_file/content"),
            &admin,
            "text/plain",
            &[b'a'; 11]
        )
        .await
        .0,
        201
    );
    let st = storage(&app.svc, "acme", &admin).await;
    assert_eq!(st["files"], 11, "{st}");
    assert_eq!(st["used"], 11, "{st}");
    // replacing a file releases the old one
    assert_eq!(
        put_file(
            &app.svc,
            &format!("{base}/c_file/content"),
            &admin,
            "text/plain",
            &[b'b'; 5]
        )
        .await
        .0,
        201
    );
    assert_eq!(storage(&app.svc, "acme", &admin).await["files"], 5);
    assert_eq!(
        put_file(
            &app.svc,
            &format!("{base}/c_files/content"),
            &admin,
            "text/plain",
            &[b'c'; 7]
        )
        .await
        .0,
        201
    );
    assert_eq!(
        put_file(
            &app.svc,
            &format!("{base}/c_items/{e0}/c_file/content"),
            &admin,
            "text/plain",
            &[b'd'; 3]
        )
        .await
        .0,
        201
    );
    assert_eq!(storage(&app.svc, "acme", &admin).await["files"], 15);
    // PATCH null drops a file
    let r = call(
        &app.svc,
        "PATCH",
        &base,
        Some(&admin),
        Some(json!({"c_file": null})),
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert!(r.1.get("c_file").is_none());
    assert_eq!(storage(&app.svc, "acme", &admin).await["files"], 10);
    let r = raw(
        &app.svc,
        TestRequest::get()
            .uri(&format!("{base}/c_file/content"))
            .insert_header(bearer(&admin)),
    )
    .await;
    assert_eq!(r.0, 404, "{}", r.1);
    // replacing the Document array without the element drops the element's file
    let r = call(
        &app.svc,
        "PATCH",
        &base,
        Some(&admin),
        Some(json!({"c_items": []})),
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(storage(&app.svc, "acme", &admin).await["files"], 7);
    let r = raw(
        &app.svc,
        TestRequest::get()
            .uri(&format!("{base}/c_items/{e0}/c_file/content"))
            .insert_header(bearer(&admin)),
    )
    .await;
    assert_eq!(r.0, 404, "{}", r.1);
    // a second document's files are counted separately
    let d2 = create_doc(&app.svc, "acme", &admin, "c_things", json!({"c_name": "g"})).await;
    let base2 = format!("/acme/v2/c_things/{}", d2["_id"].as_str().unwrap());
    assert_eq!(
        put_file(
            &app.svc,
            &format!("{base2}/c_file/content"),
            &admin,
            "text/plain",
            &[b'e'; 100]
        )
        .await
        .0,
        201
    );
    assert_eq!(storage(&app.svc, "acme", &admin).await["files"], 107);
    // deleting a document releases all its files (nested ones too)
    assert_eq!(
        call(&app.svc, "DELETE", &base, Some(&admin), None).await.0,
        200
    );
    let st = storage(&app.svc, "acme", &admin).await;
    assert_eq!(st["files"], 100, "{st}");
    assert_eq!(st["used"], 100, "{st}");
    assert_eq!(
        call(&app.svc, "DELETE", &base2, Some(&admin), None).await.0,
        200
    );
    assert_eq!(storage(&app.svc, "acme", &admin).await["files"], 0);
    // any account may read the org's storage
    let (_, utok) = user(&app.svc, "acme", &admin, "u@acme.test").await;
    assert_eq!(storage(&app.svc, "acme", &utok).await["files"], 0);
}

#[actix_web::test]
async fn files_storage_limit() {
    let app = common::app().await;
    let admin = setup(&app.svc, "acme").await;
    let r = call(
        &app.svc,
        "PATCH",
        "/sys/orgs/acme",
        Some(SYS),
        Some(json!({"storageLimit": 10})),
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(storage(&app.svc, "acme", &admin).await["limit"], 10);
    let d = create_doc(&app.svc, "acme", &admin, "c_things", json!({"c_name": "f"})).await;
    let base = format!("/acme/v2/c_things/{}", d["_id"].as_str().unwrap());

    // a file that would cross the limit is refused and keeps nothing
    let r = put_file(
        &app.svc,
        &format!("{base}/c_file/content"),
        &admin,
        "text/plain",
        &[b'x'; 11],
    )
    .await;
    assert_fault(&r, 403, "cortex.accessDenied.storageLimitExceeded", None);
    assert_eq!(r.1["code"], "kAccessDenied");
    let st = storage(&app.svc, "acme", &admin).await;
    assert_eq!(
        (st["files"].clone(), st["used"].clone()),
        (json!(0), json!(0)),
        "{st}"
    );
    let g = call(&app.svc, "GET", &base, Some(&admin), None).await;
    assert!(g.1.get("c_file").is_none(), "{}", g.1);

    // up to the limit is fine; at the limit, further uploads are refused
    let r = put_file(
        &app.svc,
        &format!("{base}/c_file/content"),
        &admin,
        "text/plain",
        &[b'x'; 10],
    )
    .await;
    assert_eq!(r.0, 201, "{}", r.1);
    let r = put_file(
        &app.svc,
        &format!("{base}/c_files/content"),
        &admin,
        "text/plain",
        b"y",
    )
    .await;
    assert_fault(&r, 403, "cortex.accessDenied.storageLimitExceeded", None);
    let st = storage(&app.svc, "acme", &admin).await;
    assert_eq!(st["used"], 10, "{st}");

    // lifting the limit lets uploads through again
    let r = call(
        &app.svc,
        "PATCH",
        "/sys/orgs/acme",
        Some(SYS),
        Some(json!({"storageLimit": null})),
    )
    .await;
    assert_eq!(r.0, 200);
    let r = put_file(
        &app.svc,
        &format!("{base}/c_files/content"),
        &admin,
        "text/plain",
        b"y",
    )
    .await;
    assert_eq!(r.0, 201, "{}", r.1);
    assert_eq!(storage(&app.svc, "acme", &admin).await["used"], 11);
}

// ---------------------------------------------------------------------------------------------
// org: webhook secret
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn webhook_secret_get_and_rotate() {
    let app = common::app().await;
    let admin = org_with_admin(&app.svc, "acme").await;
    let other = org_with_admin(&app.svc, "other").await;
    let (_, utok) = user(&app.svc, "acme", &admin, "u@acme.test").await;
    let (s, v) = call(
        &app.svc,
        "GET",
        "/acme/v2/org/webhook-secret",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["object"], "result");
    let first = v["data"].as_str().unwrap().to_string();
    assert!(
        first.len() >= 32 && first.chars().all(|c| c.is_ascii_hexdigit()),
        "{first}"
    );
    let (_, v) = call(
        &app.svc,
        "GET",
        "/acme/v2/org/webhook-secret",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(v["data"], first, "stable until rotated");
    let (_, ov) = call(
        &app.svc,
        "GET",
        "/other/v2/org/webhook-secret",
        Some(&other),
        None,
    )
    .await;
    assert_ne!(ov["data"], first, "each org has its own secret");

    let (s, v) = call(
        &app.svc,
        "POST",
        "/acme/v2/org/webhook-secret",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["object"], "result");
    let second = v["data"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    assert!(second.chars().all(|c| c.is_ascii_hexdigit()));
    let (_, v) = call(
        &app.svc,
        "GET",
        "/acme/v2/org/webhook-secret",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(v["data"], second);
    let (_, ov2) = call(
        &app.svc,
        "GET",
        "/other/v2/org/webhook-secret",
        Some(&other),
        None,
    )
    .await;
    assert_eq!(ov2["data"], ov["data"], "rotation is per org");

    let r = call(
        &app.svc,
        "GET",
        "/acme/v2/org/webhook-secret",
        Some(&utok),
        None,
    )
    .await;
    assert_fault(&r, 403, "cortex.accessDenied.role", None);
    let r = call(
        &app.svc,
        "POST",
        "/acme/v2/org/webhook-secret",
        Some(&utok),
        None,
    )
    .await;
    assert_fault(&r, 403, "cortex.accessDenied.role", None);
    let r = call(&app.svc, "GET", "/acme/v2/org/webhook-secret", None, None).await;
    assert_fault(&r, 401, "cortex.unauthorized.noCredentials", None);
    let (_, v) = call(
        &app.svc,
        "GET",
        "/acme/v2/org/webhook-secret",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(v["data"], second, "refused calls rotated nothing");
}
