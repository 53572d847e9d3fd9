//! Test helpers: a real app over a temp data dir, and calls that return (status, JSON).
#![allow(dead_code)]

use actix_web::dev::{Service, ServiceResponse};
use actix_web::test;
use exportd::app::AppState;
use exportd::config::Config;
use serde_json::{Value, json};

pub const SYS: &str = "test-system-token";

/// The app under test, as every helper takes it.
pub trait TestService:
    Service<actix_http::Request, Response = ServiceResponse<Self::Body>, Error = actix_web::Error>
{
    type Body: actix_web::body::MessageBody;
}

impl<S, B> TestService for S
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    type Body = B;
}

pub struct TestApp<S> {
    pub svc: S,
    pub state: actix_web::web::Data<AppState>,
    pub dir: tempfile::TempDir,
}

/// A fresh app with its own data dir.
pub async fn app() -> TestApp<
    impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    >,
> {
    app_with(|_| {}).await
}

/// A fresh app whose config `tweak` may change first.
pub async fn app_with(
    tweak: impl FnOnce(&mut Config),
) -> TestApp<
    impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    >,
> {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(dir.path().to_path_buf());
    tweak(&mut config);
    let state = exportd::app::build_state(config).unwrap();
    let svc = test::init_service(exportd::http::build(state.clone())).await;
    TestApp { svc, state, dir }
}

/// One request; returns the status and the body parsed as JSON (Null when empty or not JSON).
pub async fn call<S: TestService>(
    svc: &S,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = test::TestRequest::default()
        .method(actix_web::http::Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path);
    if let Some(t) = token {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    if let Some(b) = body {
        req = req
            .insert_header(("Content-Type", "application/json"))
            .set_payload(b.to_string());
    }
    raw(svc, req).await
}

/// Sends a prepared request; returns (status, JSON body or Null).
/// `call` as `tok` that must answer `status`; returns the body.
pub async fn call_expect<S: TestService>(
    svc: &S,
    method: &str,
    path: &str,
    tok: &str,
    body: Option<Value>,
    status: u16,
) -> Value {
    let (s, v) = call(svc, method, path, Some(tok), body).await;
    assert_eq!(s, status, "{method} {path}: {v}");
    v
}

pub async fn raw<S: TestService>(svc: &S, req: test::TestRequest) -> (u16, Value) {
    let (status, bytes) = raw_bytes(svc, req).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

pub async fn raw_bytes<S: TestService>(svc: &S, req: test::TestRequest) -> (u16, Vec<u8>) {
    let resp = match svc.call(req.to_request()).await {
        Ok(r) => r,
        Err(e) => {
            let r = e.error_response();
            let status = r.status().as_u16();
            let body = actix_web::body::to_bytes(r.into_body())
                .await
                .unwrap_or_default();
            return (status, body.to_vec());
        }
    };
    let status = resp.status().as_u16();
    let body = test::read_body(resp).await;
    (status, body.to_vec())
}

/// Creates an org and an administrator; returns the admin's token.
pub async fn org_with_admin<S: TestService>(svc: &S, code: &str) -> String {
    let (s, _) = call(
        svc,
        "POST",
        "/sys/orgs",
        Some(SYS),
        Some(json!({"code": code})),
    )
    .await;
    assert_eq!(s, 201, "create org {code}");
    let (s, a) = call(
        svc,
        "POST",
        &format!("/sys/orgs/{code}/accounts"),
        Some(SYS),
        Some(json!({"email": format!("admin@{code}.test"), "roles": ["administrator"], "password": "correct-horse"})),
    )
    .await;
    assert_eq!(s, 201, "create admin: {a}");
    a["token"].as_str().unwrap().to_string()
}

/// Asserts a fault's status, errCode and (optionally) path.
pub fn assert_fault(got: &(u16, Value), status: u16, err_code: &str, path: Option<&str>) {
    let (s, v) = got;
    assert_eq!(*s, status, "status; body: {v}");
    assert_eq!(v["object"], "fault", "not a fault: {v}");
    assert_eq!(v["status"], status, "fault status: {v}");
    assert_eq!(v["errCode"], err_code, "errCode: {v}");
    if let Some(p) = path {
        assert_eq!(v["path"], p, "path: {v}");
    }
}

/// The sub-fault paths of a validation fault.
pub fn sub_paths(v: &Value) -> Vec<String> {
    v["faults"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["path"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Polls an export until `pred` holds for its record (30 s at most).
pub async fn wait_export<S, B>(
    svc: &S,
    tok: &str,
    org: &str,
    id: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (s, v) = call(
            svc,
            "GET",
            &format!("/{org}/v2/exports/{id}"),
            Some(tok),
            None,
        )
        .await;
        if s == 200 && pred(&v) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "export {id} never reached the state; last: {s} {v}"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

pub async fn wait_ready<S: TestService>(svc: &S, tok: &str, org: &str, id: &str) -> Value {
    wait_export(svc, tok, org, id, |v| {
        v["state"] == "ready" || v["state"] == "error"
    })
    .await
}

/// GETs a path with a token; returns status and raw bytes.
pub async fn get_bytes<S: TestService>(svc: &S, tok: &str, path: &str) -> (u16, Vec<u8>) {
    raw_bytes(
        svc,
        test::TestRequest::get()
            .uri(path)
            .insert_header(("Authorization", format!("Bearer {tok}"))),
    )
    .await
}

/// The entries of a zip: (name, content).
pub fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a valid zip");
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let mut out = Vec::new();
            f.read_to_end(&mut out).unwrap();
            (f.name().unwrap().to_string(), out)
        })
        .collect()
}

/// Sends an NDJSON bulk body; returns the result data.
pub async fn bulk<S: TestService>(svc: &S, tok: &str, path: &str, lines: &[Value]) -> Value {
    let body: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let (s, v) = raw(
        svc,
        test::TestRequest::post()
            .uri(path)
            .insert_header(("Authorization", format!("Bearer {tok}")))
            .insert_header(("Content-Type", "application/x-ndjson"))
            .set_payload(body.join("\n")),
    )
    .await;
    assert_eq!(s, 200, "bulk: {v}");
    v["data"].clone()
}
