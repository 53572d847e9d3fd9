//! Org-level resources for its members: storage usage and the webhook secret.

use crate::app::AppState;
use crate::auth::OrgCaller;
use crate::fault::Result;
use crate::http::result;
use crate::store::blocking;
use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/{org}/v2/org/storage", web::get().to(storage))
        .service(
            web::resource("/{org}/v2/org/webhook-secret")
                .route(web::get().to(get_secret))
                .route(web::post().to(rotate_secret)),
        );
}

async fn storage(caller: OrgCaller, state: web::Data<AppState>) -> Result<HttpResponse> {
    let store = state.store.clone();
    let org = caller.org.code.clone();
    let u = blocking(move || store.usage(&org)).await?;
    Ok(HttpResponse::Ok().json(json!({
        "object": "storage",
        "limit": caller.org.storage_limit,
        "used": u.used(),
        "files": u.files_bytes,
        "exports": u.exports_bytes,
        "counts": {"files": u.files_count, "exports": u.exports_count, "documents": u.docs},
    })))
}

async fn get_secret(caller: OrgCaller, state: web::Data<AppState>) -> Result<HttpResponse> {
    caller.require_admin()?;
    let store = state.store.clone();
    let s = blocking(move || store.webhook_secret(&caller.org)).await?;
    Ok(result(Value::String(s)))
}

async fn rotate_secret(caller: OrgCaller, state: web::Data<AppState>) -> Result<HttpResponse> {
    caller.require_admin()?;
    let store = state.store.clone();
    let code = caller.org.code.clone();
    let s = blocking(move || store.rotate_webhook_secret(&code)).await?;
    Ok(result(Value::String(s)))
}
