//! `/openapi.json`: every route of the server, described once here (a test checks that
//! every route registered in `src/http` appears).

use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(openapi));
}

/// (method, path, tag, summary, auth)
pub const ROUTES: &[(&str, &str, &str, &str, &str)] = &[
    ("get", "/health", "operations", "Liveness", "none"),
    (
        "get",
        "/metrics",
        "operations",
        "Prometheus metrics",
        "none",
    ),
    (
        "get",
        "/openapi.json",
        "operations",
        "This document",
        "none",
    ),
    ("get", "/sys/orgs", "system", "List orgs", "system"),
    ("post", "/sys/orgs", "system", "Create an org", "system"),
    ("get", "/sys/orgs/{org}", "system", "Get an org", "system"),
    (
        "patch",
        "/sys/orgs/{org}",
        "system",
        "Update storageLimit, exportTtlDays, name",
        "system",
    ),
    (
        "post",
        "/sys/orgs/{org}/accounts",
        "system",
        "Create an account (returns its first API token)",
        "system",
    ),
    (
        "post",
        "/sys/orgs/{org}/accounts/{id}/tokens",
        "system",
        "Issue an API token",
        "system",
    ),
    (
        "delete",
        "/sys/orgs/{org}/accounts/{id}/tokens/{token}",
        "system",
        "Revoke an API token",
        "system",
    ),
    (
        "post",
        "/{org}/v2/accounts/login",
        "accounts",
        "Sign in with email and password (session cookie)",
        "none",
    ),
    (
        "post",
        "/{org}/v2/accounts/logout",
        "accounts",
        "Sign out",
        "account",
    ),
    (
        "get",
        "/{org}/v2/accounts/me",
        "accounts",
        "The calling account",
        "account",
    ),
    (
        "get",
        "/{org}/v2/accounts",
        "accounts",
        "List accounts",
        "administrator",
    ),
    (
        "post",
        "/{org}/v2/accounts",
        "accounts",
        "Create an account",
        "administrator",
    ),
    (
        "get",
        "/{org}/v2/accounts/{id}",
        "accounts",
        "Get an account",
        "self or administrator",
    ),
    (
        "post",
        "/{org}/v2/accounts/{id}/tokens",
        "accounts",
        "Issue an API token",
        "self or administrator",
    ),
    (
        "delete",
        "/{org}/v2/accounts/{id}/tokens/{token}",
        "accounts",
        "Revoke an API token",
        "self or administrator",
    ),
    (
        "get",
        "/{org}/v2/objects",
        "objects",
        "List object definitions",
        "account",
    ),
    (
        "post",
        "/{org}/v2/objects",
        "objects",
        "Define an object",
        "administrator",
    ),
    (
        "get",
        "/{org}/v2/objects/{name}",
        "objects",
        "Get a definition",
        "account",
    ),
    (
        "patch",
        "/{org}/v2/objects/{name}",
        "objects",
        "Add properties, change label/description/defaultAcl",
        "administrator",
    ),
    (
        "get",
        "/{org}/v2/org/storage",
        "org",
        "Storage limit and usage",
        "account",
    ),
    (
        "get",
        "/{org}/v2/org/webhook-secret",
        "org",
        "The webhook signing secret",
        "administrator",
    ),
    (
        "post",
        "/{org}/v2/org/webhook-secret",
        "org",
        "Rotate the webhook secret",
        "administrator",
    ),
    (
        "get",
        "/{org}/v2/exports",
        "exports",
        "List exports (newest first; where on state/label)",
        "administrator",
    ),
    (
        "post",
        "/{org}/v2/exports",
        "exports",
        "Create an export",
        "administrator",
    ),
    (
        "get",
        "/{org}/v2/exports/{id}",
        "exports",
        "Get an export (?include=events)",
        "administrator",
    ),
    (
        "delete",
        "/{org}/v2/exports/{id}",
        "exports",
        "Delete an export, its archive and side files",
        "administrator",
    ),
    (
        "post",
        "/{org}/v2/exports/{id}/cancel",
        "exports",
        "Cancel a pending or running export",
        "administrator",
    ),
    (
        "get",
        "/{org}/v2/exports/{id}/dataFile",
        "exports",
        "The archive's facet (202 until ready)",
        "administrator",
    ),
    (
        "get",
        "/{org}/v2/exports/{id}/dataFile/content",
        "exports",
        "Download the archive (Range, ETag)",
        "administrator",
    ),
    (
        "get",
        "/{org}/v2/exports/{id}/files",
        "exports",
        "List side files",
        "administrator",
    ),
    (
        "get",
        "/{org}/v2/exports/{id}/files/{n}",
        "exports",
        "Download a side file (Range, ETag)",
        "administrator",
    ),
    (
        "get",
        "/{org}/v2/{plural}",
        "documents",
        "List documents (where, paths, include, expand, sort, skip, limit)",
        "account (ACL)",
    ),
    (
        "post",
        "/{org}/v2/{plural}",
        "documents",
        "Create a document (JSON) or many (NDJSON)",
        "account",
    ),
    (
        "get",
        "/{org}/v2/{plural}/{id}",
        "documents",
        "Get a document",
        "account (ACL)",
    ),
    (
        "patch",
        "/{org}/v2/{plural}/{id}",
        "documents",
        "Update a document",
        "account (ACL update)",
    ),
    (
        "delete",
        "/{org}/v2/{plural}/{id}",
        "documents",
        "Delete a document",
        "account (ACL delete)",
    ),
    (
        "get",
        "/{org}/v2/{plural}/{id}/{tail}/content",
        "files",
        "Download a file",
        "account (ACL)",
    ),
    (
        "put",
        "/{org}/v2/{plural}/{id}/{tail}/content",
        "files",
        "Upload a file (raw body)",
        "account (ACL update)",
    ),
    (
        "get",
        "/{org}/admin",
        "admin page",
        "Redirect to the admin page",
        "none",
    ),
    (
        "get",
        "/{org}/admin/",
        "admin page",
        "The admin page",
        "none",
    ),
    (
        "get",
        "/{org}/admin/app.js",
        "admin page",
        "Admin page script",
        "none",
    ),
    (
        "get",
        "/{org}/admin/style.css",
        "admin page",
        "Admin page styles",
        "none",
    ),
];

pub fn document() -> Value {
    let mut paths = Map::new();
    for (method, path, tag, summary, auth) in ROUTES {
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let security = match *auth {
            "none" => json!([]),
            _ => json!([{"bearer": []}, {"session": []}]),
        };
        let op = json!({
            "tags": [tag], "summary": summary, "parameters": params, "security": security,
            "x-requires": auth,
            "responses": {"default": {"description": "A result, or a fault", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Fault"}}}}},
        });
        let entry = paths
            .entry(path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[*method] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "exportd", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Self-hosted data-export server compatible with the Medable Cortex Export API"},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "exportd_session"},
            },
            "schemas": {"Fault": {"type": "object", "properties": {
                "object": {"type": "string"}, "code": {"type": "string"}, "errCode": {"type": "string"},
                "status": {"type": "integer"}, "message": {"type": "string"}, "path": {"type": "string"},
                "faults": {"type": "array", "items": {"$ref": "#/components/schemas/Fault"}}}}},
        },
    })
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(document())
}
