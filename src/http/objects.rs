//! Object definitions: administrators write, every account of the org reads.

use crate::app::AppState;
use crate::auth::OrgCaller;
use crate::fault::{Fault, Result};
use crate::http::body::JsonBody;
use crate::http::{Paging, created, list, only_params};
use crate::model::schema::{apply_patch, parse_definition};
use crate::store::blocking;
use actix_web::{HttpResponse, web};
use std::collections::HashMap;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/{org}/v2/objects")
            .route(web::get().to(list_objects))
            .route(web::post().to(create_object)),
    )
    .service(
        web::resource("/{org}/v2/objects/{name}")
            .route(web::get().to(get_object))
            .route(web::patch().to(patch_object)),
    );
}

async fn create_object(
    caller: OrgCaller,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse> {
    caller.require_admin()?;
    let store = state.store.clone();
    let org = caller.org.code.clone();
    let def = blocking(move || {
        let others = store.list_objects(&org)?;
        let def = parse_definition(body.0, &others)?;
        store.put_object(&org, &def)?;
        Ok(def)
    })
    .await?;
    Ok(created(def.to_json()))
}

async fn list_objects(
    caller: OrgCaller,
    state: web::Data<AppState>,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse> {
    only_params(&q, &["limit", "skip", "total"])?;
    let p = Paging::from_query(&q)?;
    let store = state.store.clone();
    let org = caller.org.code.clone();
    let mut all = blocking(move || store.list_objects(&org)).await?;
    all.sort_by_key(|o| std::cmp::Reverse(o.id));
    let total = all.len() as u64;
    let items = all
        .iter()
        .skip(p.skip)
        .take(p.limit + 1)
        .map(|o| o.to_json())
        .collect();
    Ok(list(items, p, p.total.then_some(total)))
}

async fn get_object(
    caller: OrgCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let name = path.into_inner().1;
    let store = state.store.clone();
    let org = caller.org.code.clone();
    let def = blocking(move || {
        store
            .find_object(&org, &name)?
            .ok_or_else(|| Fault::not_found("object"))
    })
    .await?;
    Ok(HttpResponse::Ok().json(def.to_json()))
}

async fn patch_object(
    caller: OrgCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: JsonBody,
) -> Result<HttpResponse> {
    caller.require_admin()?;
    let name = path.into_inner().1;
    let store = state.store.clone();
    let org = caller.org.code.clone();
    let def = blocking(move || {
        let def = store
            .find_object(&org, &name)?
            .ok_or_else(|| crate::http::documents::unknown_object(&name))?;
        let others = store.list_objects(&org)?;
        let new = apply_patch(&def, body.0, &others)?;
        store.put_object(&org, &new)?;
        Ok(new)
    })
    .await?;
    Ok(HttpResponse::Ok().json(def.to_json()))
}
