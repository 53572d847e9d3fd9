//! Documents of custom objects: create (one JSON document, or NDJSON bulk streamed line by
//! line), list, read, patch, delete. Access follows the object's ACL (SPEC §3).

use crate::app::AppState;
use crate::auth::OrgCaller;
use crate::fault::{Category, Fault, Result};
use crate::http::body::{
    content_length, content_type, parse_json, read_limited, too_large, wrong_type,
};
use crate::http::{Paging, created, list, only_params, parse_id, result};
use crate::model::acl;
use crate::model::document::{StoredDoc, collect_blobs, new_doc, patch_doc, render};
use crate::model::org::Account;
use crate::model::schema::ObjectDef;
use crate::query::Projector;
use crate::query::matcher::{matches, sort_cmp, sort_value};
use crate::query::parse::{parse_sort, parse_where};
use crate::query::projection::{check_expand, check_path, drop_optional, visible_doc};
use crate::store::data::{StoreLookup, StoreRefs};
use crate::store::{Store, blocking};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/{org}/v2/{plural}")
            .route(web::get().to(list_docs))
            .route(web::post().to(create_docs)),
    )
    .service(
        web::resource("/{org}/v2/{plural}/{id}")
            .route(web::get().to(get_doc))
            .route(web::patch().to(patch_doc_route))
            .route(web::delete().to(delete_doc)),
    );
}

/// Longest accepted NDJSON line.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
const BATCH: usize = 1000;
const MAX_REPORTED_FAULTS: usize = 1000;

pub fn unknown_object(name: &str) -> Fault {
    Fault::new(
        Category::NotFound,
        "object",
        format!("Object {name} was not found"),
    )
}

/// The definition behind a plural (or singular) name in the path.
pub fn object_def(store: &Store, org: &str, plural: &str) -> Result<ObjectDef> {
    store
        .find_object(org, plural)?
        .ok_or_else(|| unknown_object(plural))
}

/// A comma-separated list parameter (`include`, `paths`, `expand`).
fn list_param(q: &HashMap<String, String>, name: &str) -> Vec<String> {
    q.get(name)
        .map(|s| {
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Builds the projector of `paths`/`include` for a request, validating each path.
fn projector(
    q: &HashMap<String, String>,
    def: &ObjectDef,
    cat: &[ObjectDef],
    viewer: &Account,
) -> Result<Projector> {
    let mut pr = Projector {
        paths: list_param(q, "paths"),
        include: list_param(q, "include"),
        principal: Some(viewer.clone()),
        ..Default::default()
    };
    for (name, list) in [("paths", &pr.paths), ("include", &pr.include)] {
        for (i, p) in list.iter().enumerate() {
            check_path(def, p, cat)
                .map_err(|m| Fault::invalid(name, m).at(format!("{name}[{i}]")))?;
        }
    }
    pr.expand = list_param(q, "expand");
    for (i, p) in pr.expand.iter().enumerate() {
        check_expand(def, p, cat)
            .map_err(|m| Fault::invalid("expand", m).at(format!("expand[{i}]")))?;
    }
    Ok(pr)
}

pub fn view(def: &ObjectDef, doc: &StoredDoc, cat: &[ObjectDef], include: &[String]) -> Value {
    let mut full = render(def, doc, cat);
    drop_optional(&def.properties, &mut full, "", include);
    Value::Object(full)
}

async fn list_docs(
    caller: OrgCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse> {
    only_params(
        &q,
        &[
            "limit", "skip", "total", "include", "where", "paths", "expand", "sort",
        ],
    )?;
    let p = Paging::from_query(&q)?;
    let store = state.store.clone();
    let org = caller.org.code.clone();
    let (items, total) = blocking(move || {
        let def = object_def(&store, &org, &path.1)?;
        let cat = store.list_objects(&org)?;
        let pr = projector(&q, &def, &cat, &caller.account)?;
        let filter = match q.get("where") {
            Some(w) => Some(parse_where(w, &def)?),
            None => None,
        };
        let sort = match q.get("sort") {
            Some(s) => parse_sort(s, &def)?,
            None => Vec::new(),
        };
        // where and sort see only what the caller may read
        let wanted = |d: &StoredDoc| {
            acl::can_read(&def, d, &caller.account)
                && filter
                    .as_ref()
                    .is_none_or(|e| matches(e, &visible_doc(&def, d, Some(&caller.account))))
        };
        let mut lookup = StoreLookup::new(&store, &org, Some(&caller.account));
        let mut total = 0u64;
        let mut items = Vec::new();
        if sort.is_empty() {
            for d in store.iter_docs(&org, &def.name, true) {
                let d = d?;
                if !wanted(&d) {
                    continue;
                }
                if total as usize >= p.skip && items.len() <= p.limit {
                    items.push(Value::Object(pr.project(
                        &def,
                        &d,
                        cat.as_slice(),
                        &mut lookup,
                    )));
                }
                total += 1;
                if !p.total && items.len() > p.limit {
                    break;
                }
            }
        } else {
            // keep the best skip+limit+1 by the sort keys, then project those
            let keep = p.skip + p.limit + 1;
            let key = |d: &StoredDoc| {
                let seen = visible_doc(&def, d, Some(&caller.account));
                sort.iter()
                    .map(|k| sort_value(&seen, &k.field))
                    .collect::<Vec<_>>()
            };
            let order = |a: &(Vec<Value>, StoredDoc), b: &(Vec<Value>, StoredDoc)| {
                for (i, k) in sort.iter().enumerate() {
                    let o = sort_cmp(&a.0[i], &b.0[i]);
                    let o = if k.descending { o.reverse() } else { o };
                    if o != std::cmp::Ordering::Equal {
                        return o;
                    }
                }
                b.1.id.cmp(&a.1.id)
            };
            let mut best: Vec<(Vec<Value>, StoredDoc)> = Vec::new();
            for d in store.iter_docs(&org, &def.name, true) {
                let d = d?;
                if !wanted(&d) {
                    continue;
                }
                total += 1;
                best.push((key(&d), d));
                if best.len() >= keep * 2 {
                    best.sort_by(order);
                    best.truncate(keep);
                }
            }
            best.sort_by(order);
            for (_, d) in best.into_iter().skip(p.skip).take(p.limit + 1) {
                items.push(Value::Object(pr.project(
                    &def,
                    &d,
                    cat.as_slice(),
                    &mut lookup,
                )));
            }
        }
        Ok((items, total))
    })
    .await?;
    Ok(list(items, p, p.total.then_some(total)))
}

async fn get_doc(
    caller: OrgCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse> {
    only_params(&q, &["include", "paths", "expand"])?;
    let (_, plural, id) = path.into_inner();
    let store = state.store.clone();
    let org = caller.org.code.clone();
    let v = blocking(move || {
        let def = object_def(&store, &org, &plural)?;
        let id = parse_id(&id, "document")?;
        let d = store
            .get_doc(&org, &def.name, id)?
            .filter(|d| acl::can_read(&def, d, &caller.account))
            .ok_or_else(|| Fault::not_found("document"))?;
        let cat = store.list_objects(&org)?;
        let pr = projector(&q, &def, &cat, &caller.account)?;
        let mut lookup = StoreLookup::new(&store, &org, Some(&caller.account));
        Ok(Value::Object(pr.project(
            &def,
            &d,
            cat.as_slice(),
            &mut lookup,
        )))
    })
    .await?;
    Ok(HttpResponse::Ok().json(v))
}

async fn patch_doc_route(
    caller: OrgCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
    body: crate::http::body::JsonBody,
) -> Result<HttpResponse> {
    let (_, plural, id) = path.into_inner();
    let store = state.store.clone();
    let org = caller.org.code.clone();
    let v = blocking(move || {
        let def = object_def(&store, &org, &plural)?;
        let id = parse_id(&id, "document")?;
        let d = store
            .get_doc(&org, &def.name, id)?
            .filter(|d| acl::can_read(&def, d, &caller.account))
            .ok_or_else(|| Fault::not_found("document"))?;
        if !acl::can_update(&def, &d, &caller.account) {
            return Err(Fault::access_denied(
                "update",
                "You may not update this document",
            ));
        }
        let mut refs = StoreRefs::new(&store, &org, &caller.account);
        let (new, dropped) = patch_doc(&def, &d, body.0, &mut refs)?;
        store.update_doc(&org, &def.name, &new, &dropped)?;
        let cat = store.list_objects(&org)?;
        Ok(view(&def, &new, &cat, &[]))
    })
    .await?;
    Ok(HttpResponse::Ok().json(v))
}

async fn delete_doc(
    caller: OrgCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse> {
    let (_, plural, id) = path.into_inner();
    let store = state.store.clone();
    let org = caller.org.code.clone();
    blocking(move || {
        let def = object_def(&store, &org, &plural)?;
        let id = parse_id(&id, "document")?;
        let d = store
            .get_doc(&org, &def.name, id)?
            .filter(|d| acl::can_read(&def, d, &caller.account))
            .ok_or_else(|| Fault::not_found("document"))?;
        if !acl::can_delete(&def, &d, &caller.account) {
            return Err(Fault::access_denied(
                "delete",
                "You may not delete this document",
            ));
        }
        let mut blobs = Vec::new();
        for p in &def.properties {
            if let Some(v) = d.props.get(&p.name) {
                collect_blobs(p, v, &mut blobs);
            }
        }
        store.delete_doc(&org, &def.name, id, &blobs)
    })
    .await?;
    Ok(result(Value::Bool(true)))
}

async fn create_docs(
    req: HttpRequest,
    caller: OrgCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let ct = content_type(&req);
    let plural = path.into_inner().1;
    match ct.as_str() {
        "application/json" => {
            let mut payload = payload.into_inner();
            let bytes = read_limited(&req, &mut payload, state.config.max_json_bytes).await?;
            let body = parse_json(&bytes)?;
            let store = state.store.clone();
            let org = caller.org.code.clone();
            let v = blocking(move || {
                let def = object_def(&store, &org, &plural)?;
                let mut refs = StoreRefs::new(&store, &org, &caller.account);
                let doc = new_doc(&def, body, caller.account.id, &mut refs)?;
                store.insert_docs(&org, &def.name, std::slice::from_ref(&doc))?;
                store.flush()?;
                let cat = store.list_objects(&org)?;
                Ok(view(&def, &doc, &cat, &[]))
            })
            .await?;
            Ok(created(v))
        }
        "application/x-ndjson" => bulk_insert(req, caller, state, plural, payload).await,
        _ => Err(wrong_type("application/json or application/x-ndjson")),
    }
}

/// NDJSON bulk insert: the body streams through a bounded channel to a blocking worker that
/// validates line by line and commits batches, so memory stays flat for any body size.
async fn bulk_insert(
    req: HttpRequest,
    caller: OrgCaller,
    state: web::Data<AppState>,
    plural: String,
    mut payload: web::Payload,
) -> Result<HttpResponse> {
    let limit = state.config.max_bulk_bytes;
    if content_length(&req).is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let store = state.store.clone();
    let org = caller.org.code.clone();
    // resolve the object before reading the body
    let (s2, o2, p2) = (store.clone(), org.clone(), plural.clone());
    let def = blocking(move || object_def(&s2, &o2, &p2)).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
    let account = caller.account.clone();
    // counted until its last batch is in, which can come after the request is dropped
    let writing = store.writers.enter();
    let worker = tokio::task::spawn_blocking(move || {
        let _writing = writing;
        bulk_worker(store, org, def, account, rx)
    });
    let mut received: u64 = 0;
    let mut cut_short = None;
    while let Some(chunk) = payload.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                cut_short = Some(Fault::invalid(
                    "body",
                    format!("Could not read the body: {e}"),
                ));
                break;
            }
        };
        received += chunk.len() as u64;
        if received > limit {
            cut_short = Some(too_large(limit));
            break;
        }
        if tx.send(chunk).await.is_err() {
            break; // the worker failed; its error is reported below
        }
    }
    drop(tx);
    let mut out = worker
        .await
        .map_err(|e| Fault::internal("bulk insert worker failed", e))??;
    if let Some(f) = cut_short {
        let at = out.lines;
        out.faults.push(f.with_index(at));
    }
    let faults: Vec<Value> = out
        .faults
        .iter()
        .map(|f| serde_json::to_value(f).unwrap_or(Value::Null))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "object": "result",
        "data": {
            "inserted": out.ids.len(),
            "ids": out.ids,
            "faults": faults,
            "faultCount": out.fault_count,
        }
    })))
}

struct BulkOutcome {
    ids: Vec<String>,
    faults: Vec<Fault>,
    fault_count: u64,
    lines: u64,
}

fn bulk_worker(
    store: Store,
    org: String,
    def: ObjectDef,
    account: Account,
    mut rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
) -> Result<BulkOutcome> {
    let mut out = BulkOutcome {
        ids: Vec::new(),
        faults: Vec::new(),
        fault_count: 0,
        lines: 0,
    };
    let mut line: Vec<u8> = Vec::new();
    let mut overlong = false;
    let mut batch: Vec<StoredDoc> = Vec::with_capacity(BATCH);
    let mut refs = StoreRefs::new(&store, &org, &account);

    let commit =
        |batch: &mut Vec<StoredDoc>, refs: &mut StoreRefs, out: &mut BulkOutcome| -> Result<()> {
            if batch.is_empty() {
                return Ok(());
            }
            store.insert_docs(&org, &def.name, batch)?;
            out.ids.extend(batch.iter().map(|d| d.id.to_hex()));
            batch.clear();
            refs.pending.clear();
            Ok(())
        };
    let fault = |out: &mut BulkOutcome, f: Fault| {
        out.fault_count += 1;
        if out.faults.len() < MAX_REPORTED_FAULTS {
            out.faults.push(f);
        }
    };

    let handle_line = |line: &[u8],
                       overlong: bool,
                       out: &mut BulkOutcome,
                       batch: &mut Vec<StoredDoc>,
                       refs: &mut StoreRefs|
     -> Result<()> {
        let index = out.lines;
        out.lines += 1;
        if overlong {
            fault(
                out,
                Fault::too_large(format!("Line is longer than {MAX_LINE_BYTES} bytes"))
                    .with_index(index),
            );
            return Ok(());
        }
        let text = line.strip_suffix(b"\r").unwrap_or(line);
        if text.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(());
        }
        let parsed = parse_json(text).and_then(|v| new_doc(&def, v, account.id, refs));
        match parsed {
            Ok(d) => {
                refs.pending.insert((def.name.clone(), d.id));
                batch.push(d);
            }
            Err(f) => fault(out, f.with_index(index)),
        }
        Ok(())
    };

    while let Some(chunk) = rx.blocking_recv() {
        let mut rest: &[u8] = &chunk;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            let (head, tail) = rest.split_at(pos);
            if !overlong {
                if line.len() + head.len() > MAX_LINE_BYTES {
                    overlong = true;
                    line.clear();
                } else {
                    line.extend_from_slice(head);
                }
            }
            handle_line(&line, overlong, &mut out, &mut batch, &mut refs)?;
            line.clear();
            overlong = false;
            rest = &tail[1..];
            if batch.len() >= BATCH {
                commit(&mut batch, &mut refs, &mut out)?;
            }
        }
        if !overlong {
            if line.len() + rest.len() > MAX_LINE_BYTES {
                overlong = true;
                line.clear();
            } else {
                line.extend_from_slice(rest);
            }
        }
    }
    if !line.is_empty() || overlong {
        handle_line(&line, overlong, &mut out, &mut batch, &mut refs)?;
    }
    commit(&mut batch, &mut refs, &mut out)?;
    store.flush()?;
    Ok(out)
}
