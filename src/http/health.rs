//! `GET /health`: liveness plus a cheap store check.

use crate::app::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
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

/// Prometheus text format. Like `/health`, it tells nothing about any org's data; put it
/// behind your network's access rules. Queue depths per org name the orgs, so they are shown
/// only to the system token (SPEC §2: orgs cannot be probed); everyone sees the total.
async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> crate::fault::Result<HttpResponse> {
    let operator =
        crate::auth::bearer(&req).is_some_and(|t| crate::auth::is_system_token(&state, &t));
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
        .body(crate::metrics::get().render(
            running,
            queues.iter().map(|(_, n)| n).sum(),
            if operator { &queues } else { &[] },
        )))
}
