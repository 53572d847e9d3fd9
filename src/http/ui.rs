//! The admin page (`/{org}/admin/`): plain HTML/CSS/JS embedded in the binary. It talks to the
//! same API as every other client, signed in with the session cookie.

use actix_web::{HttpRequest, HttpResponse, web};

const INDEX: &str = include_str!("../../ui/index.html");
const APP_JS: &str = include_str!("../../ui/app.js");
const STYLE: &str = include_str!("../../ui/style.css");

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/{org}/admin", web::get().to(redirect))
        .route("/{org}/admin/", web::get().to(index))
        .route("/{org}/admin/app.js", web::get().to(app_js))
        .route("/{org}/admin/style.css", web::get().to(style));
}

/// The page may only load its own files and talk to its own origin.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn page(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Content-Type", content_type))
        .insert_header(("Content-Security-Policy", CSP))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("Cache-Control", "no-cache"))
        .body(body)
}

async fn redirect(req: HttpRequest) -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header(("Location", format!("{}/", req.path())))
        .finish()
}

async fn index() -> HttpResponse {
    page("text/html; charset=utf-8", INDEX)
}

async fn app_js() -> HttpResponse {
    page("text/javascript; charset=utf-8", APP_JS)
}

async fn style() -> HttpResponse {
    page("text/css; charset=utf-8", STYLE)
}
