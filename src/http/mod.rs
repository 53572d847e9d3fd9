//! The HTTP layer: one file per resource, each with `configure`. Handlers extract, call the
//! store or a model function, and shape the response; every error leaves as a fault.

pub mod accounts;
pub mod body;
pub mod documents;
pub mod exports;
pub mod files;
pub mod health;
pub mod objects;
pub mod openapi;
pub mod org;
pub mod sys;
pub mod ui;

use crate::app::AppState;
use crate::fault::{Category, Fault, Result};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use futures_util::FutureExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;

/// Everything the app serves, for `App::configure` (used by the server and the tests).
pub fn app(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(state)
            .app_data(
                web::PathConfig::default()
                    .error_handler(|e, _| Fault::invalid("path", e.to_string()).into()),
            )
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|e, _| Fault::invalid("query", e.to_string()).into()),
            )
            .configure(health::configure)
            // routes are tried in order, each with a regex: the export API, the hot path
            // (polled while jobs run), goes first; no route before it overlaps its paths
            .configure(exports::configure)
            .configure(openapi::configure)
            .configure(sys::configure)
            .configure(accounts::configure)
            .configure(objects::configure)
            .configure(org::configure)
            .configure(ui::configure)
            // documents and files take the generic /{org}/v2/{plural} routes: register last
            .configure(files::configure)
            .configure(documents::configure)
            .default_service(web::to(unknown_route));
    }
}

async fn unknown_route(req: HttpRequest) -> Result<HttpResponse> {
    Err(Fault::new(
        Category::NotFound,
        "route",
        format!("No route for {} {}", req.method(), req.path()),
    ))
}

/// The app with its middleware, as served and as tested.
pub fn build(
    state: web::Data<AppState>,
) -> actix_web::App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    actix_web::App::new()
        .wrap(actix_web::middleware::from_fn(guard))
        .configure(app(state))
}

/// Wraps every request: panics and non-fault error responses become faults, and each request
/// is logged with its id.
async fn guard(
    req: ServiceRequest,
    next: actix_web::middleware::Next<impl MessageBody + 'static>,
) -> actix_web::Result<ServiceResponse<BoxBody>> {
    // no clone of the request here: routing needs it uniquely owned
    let method = req.method().to_string();
    let path = req.path().to_string();
    let started = std::time::Instant::now();
    let rid = crate::crypto::random_hex(8);
    let out = match AssertUnwindSafe(next.call(req)).catch_unwind().await {
        Ok(Ok(res)) => Ok(ensure_fault(res.map_into_boxed_body())),
        Ok(Err(e)) if e.as_error::<Fault>().is_some() => Err(e),
        Ok(Err(e)) => {
            Err(
                fault_for_status(e.as_response_error().status_code().as_u16(), &method, &path)
                    .into(),
            )
        }
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %msg, %path, "handler panicked");
            Err(Fault::new(Category::Error, "unspecified", "internal error").into())
        }
    };
    let status = match &out {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    crate::metrics::get().request(status);
    tracing::info!(request_id = %rid, %method, %path, status, ms = started.elapsed().as_millis() as u64, "request");
    out.map(|mut r| {
        if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&rid) {
            r.headers_mut().insert(
                actix_web::http::header::HeaderName::from_static("x-request-id"),
                v,
            );
        }
        r
    })
}

fn fault_for_status(status: u16, method: &str, path: &str) -> Fault {
    match status {
        404 | 405 => Fault::new(
            Category::NotFound,
            "route",
            format!("No route for {method} {path}"),
        ),
        413 => Fault::too_large("The request body is too large"),
        400..=499 => Fault::invalid("request", "The request could not be read"),
        _ => Fault::new(Category::Error, "unspecified", "internal error"),
    }
}

fn ensure_fault(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = res.status();
    if status.as_u16() < 400 {
        return res;
    }
    let is_json = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return res;
    }
    let f = fault_for_status(
        status.as_u16(),
        res.request().method().as_str(),
        res.request().path(),
    );
    let (req, _) = res.into_parts();
    ServiceResponse::new(req, f.error_response())
}

/// `{"object":"result","data":...}`
pub fn result(data: Value) -> HttpResponse {
    HttpResponse::Ok().json(json!({"object": "result", "data": data}))
}

pub fn created(v: Value) -> HttpResponse {
    HttpResponse::Created().json(v)
}

/// Paging parameters of SPEC §1.
#[derive(Debug, Clone, Copy)]
pub struct Paging {
    pub limit: usize,
    pub skip: usize,
    pub total: bool,
}

impl Paging {
    pub fn from_query(q: &HashMap<String, String>) -> Result<Paging> {
        let limit = match q.get("limit") {
            None => 100,
            Some(s) => match s.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => n,
                _ => {
                    return Err(
                        Fault::invalid("limit", "limit must be an integer from 1 to 1000")
                            .at("limit"),
                    );
                }
            },
        };
        let skip = match q.get("skip") {
            None => 0,
            Some(s) => s.parse::<usize>().map_err(|_| {
                Fault::invalid("skip", "skip must be a non-negative integer").at("skip")
            })?,
        };
        let total = match q.get("total").map(|s| s.as_str()) {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return Err(Fault::invalid("total", "total must be true or false").at("total"));
            }
        };
        Ok(Paging { limit, skip, total })
    }
}

/// `{"object":"list","data":[...],"hasMore":...,"total":...}` from up to `limit + 1` items,
/// serialized straight from them (no `serde_json` tree per item).
pub fn list<T: serde::Serialize>(mut items: Vec<T>, p: Paging, total: Option<u64>) -> HttpResponse {
    #[derive(serde::Serialize)]
    struct Page<T> {
        object: &'static str,
        data: Vec<T>,
        #[serde(rename = "hasMore")]
        has_more: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
    }
    let has_more = items.len() > p.limit;
    items.truncate(p.limit);
    HttpResponse::Ok().json(Page {
        object: "list",
        data: items,
        has_more,
        total,
    })
}

/// Refuses query parameters a route does not know (SPEC: unknown fields are faults).
pub fn only_params(q: &HashMap<String, String>, allowed: &[&str]) -> Result<()> {
    for k in q.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(
                Fault::invalid("unknownParameter", format!("Unknown parameter {k}")).at(k.clone()),
            );
        }
    }
    Ok(())
}

pub fn parse_id(s: &str, what: &str) -> Result<crate::model::ids::ObjectId> {
    crate::model::ids::ObjectId::parse(s).ok_or_else(|| Fault::not_found(what))
}
