//! Test helpers: a real app over a temp data dir, and calls that return (status, JSON).
#![allow(dead_code)]

use actix_web::dev::{Service, ServiceResponse};
use actix_web::test;
use exportd::app::AppState;
use exportd::config::Config;
use serde_json::{Value, json};

pub const SYS: &str = "test-system-token";

pub struct TestApp<S> {
    pub svc: S,
    pub state: actix_web::web::Data<AppState>,
    pub dir: tempfile::TempDir,
}

/// A fresh app with its own data dir.
pub async fn app() -> TestApp<impl Service<actix_http::Request, Response = ServiceResponse<impl actix_web::body::MessageBody>, Error = actix_web::Error>> {
    let dir = tempfile::tempdir().unwrap();
    let state = exportd::app::build_state(Config::for_tests(dir.path().to_path_buf())).unwrap();
    let svc = test::init_service(exportd::http::build(state.clone())).await;
    TestApp { svc, state, dir }
}

/// One request; returns the status and the body parsed as JSON (Null when empty or not JSON).
pub async fn call<S, B>(
    svc: &S,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let mut req = test::TestRequest::default()
        .method(actix_web::http::Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path);
    if let Some(t) = token {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    if let Some(b) = body {
        req = req.insert_header(("Content-Type", "application/json")).set_payload(b.to_string());
    }
    raw(svc, req).await
}

/// Sends a prepared request; returns (status, JSON body or Null).
pub async fn raw<S, B>(svc: &S, req: test::TestRequest) -> (u16, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let (status, bytes) = raw_bytes(svc, req).await;
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

pub async fn raw_bytes<S, B>(svc: &S, req: test::TestRequest) -> (u16, Vec<u8>)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let resp = match svc.call(req.to_request()).await {
        Ok(r) => r,
        Err(e) => {
            let r = e.error_response();
            let status = r.status().as_u16();
            let body = actix_web::body::to_bytes(r.into_body()).await.unwrap_or_default();
            return (status, body.to_vec());
        }
    };
    let status = resp.status().as_u16();
    let body = test::read_body(resp).await;
    (status, body.to_vec())
}

/// Creates an org and an administrator; returns the admin's token.
pub async fn org_with_admin<S, B>(svc: &S, code: &str) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let (s, _) = call(svc, "POST", "/sys/orgs", Some(SYS), Some(json!({"code": code}))).await;
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
        .map(|a| a.iter().filter_map(|f| f["path"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}
