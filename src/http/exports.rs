//! The Export API (SPEC §4.1): administrators only; other orgs get 404.

use crate::app::AppState;
use crate::auth::OrgCaller;
use crate::export::create::{CreateContext, parse_create};
use crate::export::pipeline::{STOP_CANCEL, STOP_DELETE, cancelled_fault};
use crate::export::prefix::PrefixContext;
use crate::export::record::{Event, ExportRecord, State, expired};
use crate::fault::{Category, Fault, Result};
use crate::http::body::JsonBody;
use crate::http::files::serve_blob;
use crate::http::{Paging, created, list, only_params, result};
use crate::model::ids::{ObjectId, now_iso};
use crate::model::schema::ObjectDef;
use crate::store::exports::not_found;
use crate::store::{Store, blocking};
use actix_web::{HttpRequest, HttpResponse, web};
use regex::Regex;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/{org}/v2/exports")
            .route(web::get().to(list_exports))
            .route(web::post().to(create_export)),
    )
    .service(
        web::resource("/{org}/v2/exports/{id}")
            .route(web::get().to(get_export))
            .route(web::delete().to(delete_export)),
    )
    .route(
        "/{org}/v2/exports/{id}/cancel",
        web::post().to(cancel_export),
    )
    .route("/{org}/v2/exports/{id}/dataFile", web::get().to(data_file))
    .route(
        "/{org}/v2/exports/{id}/dataFile/content",
        web::get().to(data_content),
    )
    .route("/{org}/v2/exports/{id}/files", web::get().to(list_files))
    .route(
        "/{org}/v2/exports/{id}/files/{n}",
        web::get().to(file_content),
    );
}

fn export_id(s: &str) -> Result<ObjectId> {
    ObjectId::parse(s).ok_or_else(not_found)
}

/// A record of the caller's org that has not expired.
fn load(store: &Store, org: &str, id: ObjectId) -> Result<ExportRecord> {
    store
        .get_export(org, id)?
        .filter(|r| !r.is_expired(&now_iso()))
        .ok_or_else(not_found)
}

/// `load` from a handler: on the blocking pool, for the caller's org.
async fn load_async(
    state: &web::Data<AppState>,
    caller: &OrgCaller,
    id: ObjectId,
) -> Result<ExportRecord> {
    let (store, org) = (state.store.clone(), caller.org.code.clone());
    blocking(move || load(&store, &org, id)).await
}

struct Ctx<'a> {
    store: &'a Store,
    org: &'a str,
    hook: &'a crate::hook::runner::HookConfig,
}

impl PrefixContext for Ctx<'_> {
    fn object(&self, name: &str) -> Result<Option<ObjectDef>> {
        self.store.find_object(self.org, name)
    }
    fn doc_exists(&self, object: &str, id: ObjectId) -> Result<bool> {
        self.store.doc_exists(self.org, object, id)
    }
}

impl CreateContext for Ctx<'_> {
    fn account_exists(&self, id: ObjectId) -> Result<bool> {
        Ok(self.store.get_account(self.org, id)?.is_some())
    }
    fn catalog(&self) -> Result<Vec<ObjectDef>> {
        self.store.list_objects(self.org)
    }
    fn check_script(&self, src: &str) -> Result<std::result::Result<(), String>> {
        crate::hook::runner::check_syntax(self.hook, src)
    }
}

async fn create_export(
    caller: OrgCaller,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse> {
    caller.require_admin()?;
    let store = state.store.clone();
    let config = state.config.clone();
    let rec = blocking(move || {
        let ctx = Ctx {
            store: &store,
            org: &caller.org.code,
            hook: &config.hook,
        };
        let (mut rec, _def) = parse_create(body.0, &caller.org, caller.account.id, &ctx)?;
        rec.seq = store.next_seq()?;
        store.create_export(&rec, caller.org.storage_limit)?;
        Ok(rec)
    })
    .await?;
    state.exports.enqueue(&rec.org, rec.id);
    Ok(created(rec.to_json()))
}

/// `where` on exports: `state` and `label`, by equality, `$in` (state) or `$regex` (label).
type RecordTest = Box<dyn Fn(&ExportRecord) -> bool + Send>;

fn export_filter(where_s: &str) -> Result<RecordTest> {
    let bad = |m: String, p: &str| {
        Fault::invalid("query", m).at(format!("where.{p}").trim_end_matches('.').to_string())
    };
    let v: Value = serde_json::from_str(where_s)
        .map_err(|e| bad(format!("where is not valid JSON: {e}"), ""))?;
    let Value::Object(m) = v else {
        return Err(bad("where must be a JSON object".into(), ""));
    };
    let mut tests: Vec<RecordTest> = Vec::new();
    for (k, cond) in m {
        match (k.as_str(), cond) {
            ("state", Value::String(s)) => {
                let st =
                    State::parse(&s).ok_or_else(|| bad(format!("Unknown state {s}"), "state"))?;
                tests.push(Box::new(move |r| r.state == st));
            }
            ("state", Value::Object(o)) => {
                let Some(Value::Array(items)) = o.get("$in") else {
                    return Err(bad(
                        "state accepts a string or {\"$in\": [...]}".into(),
                        "state",
                    ));
                };
                if o.len() != 1 {
                    return Err(bad("Only $in is supported on state".into(), "state"));
                }
                let mut states = Vec::new();
                for it in items {
                    let st = it
                        .as_str()
                        .and_then(State::parse)
                        .ok_or_else(|| bad("Unknown state".into(), "state.$in"))?;
                    states.push(st);
                }
                tests.push(Box::new(move |r| states.contains(&r.state)));
            }
            ("label", Value::String(s)) => tests.push(Box::new(move |r| r.label == s)),
            ("label", Value::Object(o)) => {
                let re = match (o.get("$regex"), o.len()) {
                    (Some(Value::String(p)), 1) => {
                        parse_regex(p).map_err(|m| bad(m, "label.$regex"))?
                    }
                    _ => {
                        return Err(bad(
                            "label accepts a string or {\"$regex\": \"/.../\"}".into(),
                            "label",
                        ));
                    }
                };
                tests.push(Box::new(move |r| re.is_match(&r.label)));
            }
            (other, _) => return Err(bad(format!("Cannot filter exports by {other}"), other)),
        }
    }
    Ok(Box::new(move |r| tests.iter().all(|t| t(r))))
}

/// `/pattern/flags` with flags from `imsx`.
pub fn parse_regex(s: &str) -> std::result::Result<Regex, String> {
    let body = s
        .strip_prefix('/')
        .ok_or("A regex is written /pattern/flags")?;
    let end = body.rfind('/').ok_or("A regex is written /pattern/flags")?;
    let (pat, flags) = (&body[..end], &body[end + 1..]);
    if pat.is_empty() || s.len() > 255 {
        return Err("A regex pattern is 1 to 255 characters".into());
    }
    let mut b = regex::RegexBuilder::new(pat);
    for f in flags.chars() {
        match f {
            'i' => b.case_insensitive(true),
            'm' => b.multi_line(true),
            's' => b.dot_matches_new_line(true),
            'x' => b.ignore_whitespace(true),
            _ => return Err(format!("Unknown regex flag {f}")),
        };
    }
    b.size_limit(1 << 20)
        .build()
        .map_err(|e| format!("Invalid regex: {e}"))
}

async fn list_exports(
    caller: OrgCaller,
    state: web::Data<AppState>,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse> {
    caller.require_admin()?;
    only_params(&q, &["limit", "skip", "total", "where"])?;
    let p = Paging::from_query(&q)?;
    let filter = match q.get("where") {
        Some(w) => Some(export_filter(w)?),
        None => None,
    };
    let store = state.store.clone();
    let org = caller.org.code.clone();
    let (items, total) = blocking(move || {
        let now = now_iso();
        let mut items = Vec::new();
        let mut total = 0u64;
        for r in store.iter_exports(&org) {
            let r = r?;
            if r.is_expired(&now) || filter.as_ref().is_some_and(|f| !f(&r)) {
                continue;
            }
            if total as usize >= p.skip && items.len() <= p.limit {
                items.push(r);
            }
            total += 1;
            if !p.total && items.len() > p.limit {
                break;
            }
        }
        Ok((items, total))
    })
    .await?;
    let views: Vec<_> = items.iter().map(ExportRecord::view).collect();
    Ok(list(views, p, p.total.then_some(total)))
}

async fn get_export(
    caller: OrgCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse> {
    caller.require_admin()?;
    only_params(&q, &["include"])?;
    let with_events = match q.get("include").map(|s| s.as_str()) {
        None => false,
        Some("events") => true,
        Some(_) => {
            return Err(Fault::invalid("include", "include accepts only events").at("include"));
        }
    };
    let id = export_id(&path.1)?;
    let (store, org) = (&state.store, &caller.org.code);
    // one record (and its events): point reads served from sled's cache, inline like auth;
    // the plain form is rendered once per stored version of the record
    if !with_events {
        let view = store
            .derive_export(&state.export_views, org, id, RenderedExport::of)?
            .filter(|v| !expired(&v.expires_at, &now_iso()))
            .ok_or_else(not_found)?;
        return Ok(HttpResponse::Ok()
            .content_type(actix_web::http::header::ContentType::json())
            .body(view.body.clone()));
    }
    let r = load(store, org, id)?;
    let events = store.events(org, id)?;
    Ok(HttpResponse::Ok().json(WithEvents {
        export: r.view(),
        events: events.iter().map(|e| e.to_json()).collect(),
    }))
}

/// An export's API form, rendered once per stored version of its record (see
/// [`crate::store::derived`]): the body of `GET /exports/{id}`.
pub struct RenderedExport {
    expires_at: String,
    body: web::Bytes,
}

impl crate::store::derived::Weight for RenderedExport {
    fn weight(&self) -> usize {
        self.expires_at.len() + self.body.len()
    }
}

impl RenderedExport {
    fn of(r: ExportRecord) -> Result<RenderedExport> {
        let body = serde_json::to_vec(&r.view())
            .map_err(|e| Fault::internal("cannot render an export", e))?;
        Ok(RenderedExport {
            expires_at: r.expires_at,
            body: body.into(),
        })
    }
}

/// An export with its event log (`include=events`).
#[derive(serde::Serialize)]
struct WithEvents<'a> {
    #[serde(flatten)]
    export: crate::export::record::ExportView<'a>,
    events: Vec<Value>,
}

async fn delete_export(
    caller: OrgCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    caller.require_admin()?;
    let id = export_id(&path.1)?;
    load_async(&state, &caller, id).await?;
    state
        .exports
        .stop(id, STOP_DELETE, Duration::from_secs(5))
        .await;
    let (store, org) = (state.store.clone(), caller.org.code.clone());
    blocking(move || store.delete_export(&org, id)).await?;
    Ok(result(Value::Bool(true)))
}

async fn cancel_export(
    caller: OrgCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    caller.require_admin()?;
    let id = export_id(&path.1)?;
    let rec = load_async(&state, &caller, id).await?;
    if !matches!(rec.state, State::Pending | State::Running) {
        return Err(Fault::conflict(
            "state",
            format!(
                "An export in state {} cannot be cancelled",
                rec.state.name()
            ),
        ));
    }
    if !state
        .exports
        .stop(id, STOP_CANCEL, Duration::from_secs(5))
        .await
    {
        // not running: cancel it in place (the exporter skips it)
        let (store, org) = (state.store.clone(), caller.org.code.clone());
        blocking(move || {
            if store.finish_error(&org, id, &cancelled_fault())?.is_some() {
                crate::metrics::get()
                    .exports_cancelled
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                store.add_event(&org, id, &Event::new("cancelled", json!({})))?;
            }
            Ok(())
        })
        .await?;
    }
    let rec = load_async(&state, &caller, id).await?;
    if !matches!(rec.state, State::Error) {
        // it finished in the meantime
        return Err(Fault::conflict(
            "state",
            format!("The export ended in state {} first", rec.state.name()),
        ));
    }
    Ok(HttpResponse::Ok().json(rec.to_json()))
}

fn not_ready(rec: &ExportRecord) -> Result<HttpResponse> {
    match rec.state {
        State::Pending | State::Running => Ok(HttpResponse::Accepted().json(Fault::new(
            Category::Accepted,
            "mediaNotReady",
            "The export's data file is not ready yet",
        ))),
        _ => Err(Fault::new(
            Category::NotFound,
            "dataFile",
            "The export failed and has no data file",
        )),
    }
}

async fn data_file(
    caller: OrgCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    caller.require_admin()?;
    let id = export_id(&path.1)?;
    let rec = load_async(&state, &caller, id).await?;
    match rec.data_file_json() {
        Some(v) if rec.state == State::Ready => Ok(HttpResponse::Ok().json(v)),
        _ => not_ready(&rec),
    }
}

async fn data_content(
    req: HttpRequest,
    caller: OrgCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    caller.require_admin()?;
    let id = export_id(&path.1)?;
    let rec = load_async(&state, &caller, id).await?;
    let Some(df) = rec.data_file.clone().filter(|_| rec.state == State::Ready) else {
        return not_ready(&rec);
    };
    let resp = serve_blob(
        &req,
        state.store.clone(),
        caller.org.code.clone(),
        df.blob,
        "application/zip",
        &df.filename,
    )
    .await?;
    let range = req
        .headers()
        .get("Range")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let (store, org, by) = (
        state.store.clone(),
        caller.org.code.clone(),
        caller.account.id,
    );
    let status = resp.status().as_u16();
    if !matches!(status, 200 | 206) {
        return Ok(resp);
    }
    blocking(move || {
        store.add_event(
            &org,
            id,
            &Event::new(
                "downloaded",
                json!({"by": by, "range": range, "status": status}),
            ),
        )
    })
    .await?;
    Ok(resp)
}

/// Side files (`exportFiles && !zipFiles`) of a ready export.
async fn list_files(
    caller: OrgCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse> {
    caller.require_admin()?;
    only_params(&q, &["limit", "skip", "total"])?;
    let p = Paging::from_query(&q)?;
    let id = export_id(&path.1)?;
    let (store, org) = (state.store.clone(), caller.org.code.clone());
    let (rec, files, total) = blocking(move || {
        let rec = load(&store, &org, id)?;
        let files = store.side_files(&org, id, p.skip, p.limit + 1)?;
        let total = if p.total {
            Some(store.count_side_files(&org, id)?)
        } else {
            None
        };
        Ok((rec, files, total))
    })
    .await?;
    if rec.state != State::Ready {
        return not_ready(&rec);
    }
    let items = files.iter().map(|f| f.to_json(&rec.org, rec.id)).collect();
    Ok(list(items, p, total))
}

async fn file_content(
    req: HttpRequest,
    caller: OrgCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse> {
    caller.require_admin()?;
    let id = export_id(&path.1)?;
    let n: u32 = path.2.parse().map_err(|_| Fault::not_found("file"))?;
    let (store, org) = (state.store.clone(), caller.org.code.clone());
    let (rec, file) =
        blocking(move || Ok((load(&store, &org, id)?, store.side_file(&org, id, n)?))).await?;
    if rec.state != State::Ready {
        return not_ready(&rec);
    }
    let file = file.ok_or_else(|| Fault::not_found("file"))?;
    serve_blob(
        &req,
        state.store.clone(),
        caller.org.code.clone(),
        file.blob,
        &file.mime,
        &file.filename,
    )
    .await
}
