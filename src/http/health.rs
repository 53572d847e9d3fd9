//! `GET /health`: liveness plus a cheap store check.

use crate::app::AppState;
use actix_web::{HttpResponse, web};
use serde_json::json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health));
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
