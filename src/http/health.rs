//! `GET /health`: liveness plus a cheap store check.

use crate::app::AppState;
use actix_web::{HttpResponse, web};
use serde_json::json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/metrics", web::get().to(metrics));
}

async fn health(state: web::Data<AppState>) -> HttpResponse {
    let ok = !state.store.t.meta.is_empty();
    let body = json!({"object": "health", "status": if ok { "ok" } else { "degraded" }, "version": env!("CARGO_PKG_VERSION")});
    if ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus text format. Like `/health`, it tells nothing about any org's data beyond
/// queue depths; put it behind your network's access rules.
async fn metrics(state: web::Data<AppState>) -> crate::fault::Result<HttpResponse> {
    let running = state
        .exports
        .running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .len();
    let store = state.store.clone();
    let queues = crate::store::blocking(move || {
        let mut out = Vec::new();
        for org in store.orgs_with_queue()? {
            let n = store.queue(&org)?.len();
            out.push((org, n));
        }
        Ok(out)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Content-Type", "text/plain; version=0.0.4"))
        .body(crate::metrics::get().render(running, &queues)))
}
