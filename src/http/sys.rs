//! `/sys/...`: the operator's routes (system token only): orgs and their first accounts.

use crate::app::AppState;
use crate::auth::{SysCaller, org_not_found};
use crate::fault::{Fault, Faults, Result};
use crate::http::accounts::{create_account, issue_token, revoke_token};
use crate::http::body::JsonBody;
use crate::http::{Paging, created, list, only_params, parse_id};
use crate::model::input::Fields;
use crate::store::blocking;
use actix_web::{HttpResponse, web};
use regex::Regex;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::OnceLock;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/sys/orgs")
            .route(web::get().to(list_orgs))
            .route(web::post().to(create_org)),
    )
    .service(
        web::resource("/sys/orgs/{org}")
            .route(web::get().to(get_org))
            .route(web::patch().to(patch_org)),
    )
    .route(
        "/sys/orgs/{org}/accounts",
        web::post().to(sys_create_account),
    )
    .route(
        "/sys/orgs/{org}/accounts/{id}/tokens",
        web::post().to(sys_issue_token),
    )
    .route(
        "/sys/orgs/{org}/accounts/{id}/tokens/{token}",
        web::delete().to(sys_revoke_token),
    );
}

pub fn org_code_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| Regex::new(r"^[a-z0-9][a-z0-9-]{0,39}$").unwrap())
}

/// Paths under /{org}/ that are not org codes because other routes own them.
const RESERVED_CODES: &[&str] = &["sys", "health", "metrics", "openapi.json"];

fn storage_limit(f: &mut Fields) -> Option<Option<u64>> {
    match f.take("storageLimit") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::Number(n)) if n.as_u64().is_some() => Some(n.as_u64()),
        Some(_) => {
            f.bad(
                "storageLimit",
                "storageLimit must be a non-negative integer (bytes) or null",
            );
            None
        }
    }
}

async fn create_org(
    _: SysCaller,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let mut faults = Faults::default();
    let Some(mut f) = Fields::from_value(body.0, "", &mut faults) else {
        return Err(Fault::validation(faults.0));
    };
    let code = f.string("code", true, 40);
    let name = f.string("name", false, 100);
    let limit = storage_limit(&mut f);
    f.finish();
    if let Some(c) = &code
        && (!org_code_re().is_match(c) || RESERVED_CODES.contains(&c.as_str()))
    {
        faults.bad(
            "code",
            "code must match [a-z0-9][a-z0-9-]{0,39} and not be reserved",
        );
    }
    faults.finish()?;
    let code = code.unwrap_or_default();
    let name = name.unwrap_or_else(|| code.clone());
    let store = state.store.clone();
    let org = blocking(move || store.create_org(&code, &name, limit.flatten())).await?;
    Ok(created(org.to_json()))
}

async fn list_orgs(
    _: SysCaller,
    state: web::Data<AppState>,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse> {
    only_params(&q, &["limit", "skip", "total"])?;
    let p = Paging::from_query(&q)?;
    let store = state.store.clone();
    let mut orgs = blocking(move || store.list_orgs()).await?;
    orgs.sort_by_key(|o| std::cmp::Reverse(o.id));
    let total = orgs.len() as u64;
    let items: Vec<Value> = orgs
        .iter()
        .skip(p.skip)
        .take(p.limit + 1)
        .map(|o| o.to_json())
        .collect();
    Ok(list(items, p, p.total.then_some(total)))
}

async fn get_org(
    _: SysCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let code = path.into_inner();
    let store = state.store.clone();
    let org = blocking(move || store.get_org(&code)?.ok_or_else(|| org_not_found(&code))).await?;
    Ok(HttpResponse::Ok().json(org.to_json()))
}

async fn patch_org(
    _: SysCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let code = path.into_inner();
    let mut faults = Faults::default();
    let Some(mut f) = Fields::from_value(body.0, "", &mut faults) else {
        return Err(Fault::validation(faults.0));
    };
    f.read_only(&["_id", "code", "object", "created"]);
    let name = f.string("name", false, 100);
    let limit = storage_limit(&mut f);
    let ttl = f.number("exportTtlDays");
    if let Some(t) = ttl
        && !(t.is_finite() && t > 0.0 && t <= 3650.0)
    {
        f.bad(
            "exportTtlDays",
            "exportTtlDays must be a positive number of days (at most 3650)",
        );
    }
    f.finish();
    faults.finish()?;
    let store = state.store.clone();
    let org = blocking(move || {
        let mut org = store.get_org(&code)?.ok_or_else(|| org_not_found(&code))?;
        if let Some(n) = name {
            org.name = n;
        }
        if let Some(l) = limit {
            org.storage_limit = l;
        }
        if let Some(t) = ttl {
            org.export_ttl_days = t;
        }
        store.put_org(&org)?;
        Ok(org)
    })
    .await?;
    Ok(HttpResponse::Ok().json(org.to_json()))
}

async fn existing_org(state: &web::Data<AppState>, code: &str) -> Result<()> {
    let store = state.store.clone();
    let c = code.to_string();
    blocking(move || {
        store
            .get_org(&c)?
            .map(|_| ())
            .ok_or_else(|| org_not_found(&c))
    })
    .await
}

async fn sys_create_account(
    _: SysCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let code = path.into_inner();
    existing_org(&state, &code).await?;
    Ok(created(create_account(&state, &code, body.0).await?))
}

async fn sys_issue_token(
    _: SysCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (code, id) = path.into_inner();
    existing_org(&state, &code).await?;
    let id = parse_id(&id, "account")?;
    Ok(created(issue_token(&state, &code, id).await?))
}

async fn sys_revoke_token(
    _: SysCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse> {
    let (code, id, tok) = path.into_inner();
    existing_org(&state, &code).await?;
    let id = parse_id(&id, "account")?;
    let tok = parse_id(&tok, "token")?;
    revoke_token(&state, &code, id, tok).await?;
    Ok(crate::http::result(Value::Bool(true)))
}
