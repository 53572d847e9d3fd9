//! The access matrix: every route of the server × every kind of caller → the expected status
//! (and errCode where SPEC §1 defines one). The table below is the contract in data form; one
//! assertion per cell, and a failure lists every cell that differs (route, caller, expected,
//! actual).
//!
//! Where SPEC.md says it: administrators only on every export route (§2, §4.1); another org's
//! token gets 404, never 403, so orgs cannot be probed (§2); the system token may call `/sys`
//! only (§2); session cookies need the CSRF header on state-changing requests (§2);
//! object definitions are written by administrators and read by any account (§2); documents
//! follow the object's ACL (§3).
//!
//! Where SPEC.md is silent, the choices (a secure server's) are:
//! - `/health`, `/openapi.json` and the admin page's static files are public: they hold no
//!   org data. The admin page answers for any org code, existing or not, so it cannot be used
//!   to probe org codes. `/metrics` is public too (Prometheus scrapers), but it names orgs only
//!   to the system token (see `metrics_name_orgs_only_to_the_system_token`).
//! - On `/sys`, any bearer token that is not the system token is refused with 403
//!   `accessDenied.systemOnly` without being looked up, so a garbage token and an org token
//!   look the same; a request with no bearer token at all (cookies do not count) is 401.
//! - The system token on an org route is 403 `accessDenied.systemToken`.
//! - Authentication comes before everything else, so an unauthenticated caller learns nothing
//!   about the org, the object or the id in the path (always 401).
//! - A document the caller may not read is 404 (not 403) on every document and file route, so
//!   ids cannot be probed; a document it may read but not change is 403.
//! - Role checks come before lookups: a non-administrator gets 403 on export routes whatever
//!   the id, so export ids cannot be probed either.
//! - Revoking a token through one's own account id only works for one's own tokens (404
//!   otherwise), whoever asks.
//! - Signing in needs no credentials; a bearer token or a stale cookie sent along is ignored.

mod common;

use actix_web::test::TestRequest;
use common::*;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;

// ---------------------------------------------------------------------------------------------
// the table
// ---------------------------------------------------------------------------------------------

/// An expected answer: the status and, for faults, the errCode.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Exp {
    status: u16,
    err: Option<&'static str>,
}

const fn ok(status: u16) -> Exp {
    Exp { status, err: None }
}

const fn fault(status: u16, err: &'static str) -> Exp {
    Exp {
        status,
        err: Some(err),
    }
}

// success
const OK: Exp = ok(200);
const CR: Exp = ok(201);
const RD: Exp = ok(308);
// authentication
const NC: Exp = fault(401, "cortex.unauthorized.noCredentials");
const BT: Exp = fault(401, "cortex.unauthorized.invalidToken");
const LO: Exp = fault(401, "cortex.unauthorized.invalidSession");
const EX: Exp = fault(401, "cortex.unauthorized.sessionExpired");
// authorization
const RO: Exp = fault(403, "cortex.accessDenied.role");
const CS: Exp = fault(403, "cortex.accessDenied.csrf");
const ST: Exp = fault(403, "cortex.accessDenied.systemToken");
const SO: Exp = fault(403, "cortex.accessDenied.systemOnly");
const AU: Exp = fault(403, "cortex.accessDenied.update");
const AD: Exp = fault(403, "cortex.accessDenied.delete");
// not found
const OG: Exp = fault(404, "cortex.notFound.org");
const NI: Exp = fault(404, "cortex.notFound.instance");
const NE: Exp = fault(404, "cortex.notFound.export");
const NO: Exp = fault(404, "cortex.notFound.object");

/// The callers, in the column order of `Row::expect`.
const CALLERS: [&str; 10] = [
    "no credentials",
    "bad bearer token",
    "logged-out session cookie",
    "expired session cookie",
    "user role (same org)",
    "administrator of another org",
    "administrator (bearer)",
    "administrator (session + CSRF)",
    "administrator (session, no CSRF header)",
    "system token",
];
const ANON: usize = 0;
const BAD: usize = 1;
const LOGGED_OUT: usize = 2;
const EXPIRED: usize = 3;
const USER: usize = 4;
const OTHER: usize = 5;
const ADMIN: usize = 6;
const SESSION: usize = 7;
const NO_CSRF: usize = 8;
const SYSTEM: usize = 9;

#[derive(Clone, Copy, Debug)]
enum Body {
    None,
    /// JSON; `{n}` becomes a number unique to the cell.
    Json(&'static str),
    Ndjson(&'static str),
    /// (content type, bytes)
    Raw(&'static str, &'static str),
}

/// A resource made fresh for each cell (the row changes or destroys it); its id replaces
/// `{fresh}` in the path.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fresh {
    No,
    /// A pending export of acme (exports do not start during the matrix).
    Export,
    /// A c_things document owned by the administrator.
    Doc,
    /// A c_things document owned by the user.
    UserDoc,
    /// A c_shareds document (the user may read it, not change it).
    SharedDoc,
    /// A token of the administrator (its token id).
    AdminToken,
    /// A token of the user (its token id).
    UserToken,
    /// A new administrator session for the session callers (the row ends it).
    Session,
}

#[derive(Debug)]
struct Row {
    method: &'static str,
    /// Placeholders: {admin} {user} (account ids), {doc} (admin's c_things doc), {udoc}
    /// (user's), {sdoc} (c_shareds doc), {ready} (a ready export), {side} (a ready export with
    /// side files), {missing} (an id nobody has), {fresh} (see `Fresh`).
    path: &'static str,
    body: Body,
    fresh: Fresh,
    expect: [Exp; 10],
}

const fn r(
    method: &'static str,
    path: &'static str,
    body: Body,
    fresh: Fresh,
    expect: [Exp; 10],
) -> Row {
    Row {
        method,
        path,
        body,
        fresh,
        expect,
    }
}

use Body::{Json, Ndjson, Raw};
use Fresh::No;
const NB: Body = Body::None;

#[rustfmt::skip]
const MATRIX: &[Row] = &[
    //                                                                     anon bad  out  exp  user oth  adm  ses  nocs sys
    // ---- operations: public
    r("GET", "/health", NB, No,                                            [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK]),
    r("GET", "/metrics", NB, No,                                           [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK]),
    r("GET", "/openapi.json", NB, No,                                      [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK]),
    // ---- admin page: public static files, for any org code (no probing)
    r("GET", "/acme/admin", NB, No,                                        [RD, RD, RD, RD, RD, RD, RD, RD, RD, RD]),
    r("GET", "/acme/admin/", NB, No,                                       [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK]),
    r("GET", "/acme/admin/app.js", NB, No,                                 [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK]),
    r("GET", "/acme/admin/style.css", NB, No,                              [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK]),
    r("GET", "/nope/admin/", NB, No,                                       [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK]),
    // ---- /sys: the system token only; cookies are not credentials here
    r("GET", "/sys/orgs", NB, No,                                          [NC, SO, NC, NC, SO, SO, SO, NC, NC, OK]),
    r("POST", "/sys/orgs", Json(r#"{"code":"new-{n}"}"#), No,              [NC, SO, NC, NC, SO, SO, SO, NC, NC, CR]),
    r("GET", "/sys/orgs/acme", NB, No,                                     [NC, SO, NC, NC, SO, SO, SO, NC, NC, OK]),
    r("GET", "/sys/orgs/nope", NB, No,                                     [NC, SO, NC, NC, SO, SO, SO, NC, NC, OG]),
    r("PATCH", "/sys/orgs/acme", Json(r#"{"name":"Acme"}"#), No,           [NC, SO, NC, NC, SO, SO, SO, NC, NC, OK]),
    r("POST", "/sys/orgs/acme/accounts", Json(r#"{"email":"sys{n}@acme.test"}"#), No,
                                                                           [NC, SO, NC, NC, SO, SO, SO, NC, NC, CR]),
    r("POST", "/sys/orgs/acme/accounts/{user}/tokens", NB, No,             [NC, SO, NC, NC, SO, SO, SO, NC, NC, CR]),
    r("DELETE", "/sys/orgs/acme/accounts/{user}/tokens/{fresh}", NB, Fresh::UserToken,
                                                                           [NC, SO, NC, NC, SO, SO, SO, NC, NC, OK]),
    // ---- accounts
    r("POST", "/acme/v2/accounts/login", Json(r#"{"email":"user@acme.test","password":"user-password-1"}"#), No,
                                                                           [OK, OK, OK, OK, OK, OK, OK, OK, OK, OK]),
    r("POST", "/acme/v2/accounts/logout", NB, Fresh::Session,              [NC, BT, LO, EX, OK, OG, OK, OK, CS, ST]),
    r("GET", "/acme/v2/accounts/me", NB, No,                               [NC, BT, LO, EX, OK, OG, OK, OK, OK, ST]),
    r("GET", "/acme/v2/accounts", NB, No,                                  [NC, BT, LO, EX, RO, OG, OK, OK, OK, ST]),
    r("POST", "/acme/v2/accounts", Json(r#"{"email":"new{n}@acme.test","roles":["user"]}"#), No,
                                                                           [NC, BT, LO, EX, RO, OG, CR, CR, CS, ST]),
    r("GET", "/acme/v2/accounts/{admin}", NB, No,                          [NC, BT, LO, EX, RO, OG, OK, OK, OK, ST]),
    r("GET", "/acme/v2/accounts/{user}", NB, No,                           [NC, BT, LO, EX, OK, OG, OK, OK, OK, ST]),
    r("POST", "/acme/v2/accounts/{admin}/tokens", NB, No,                  [NC, BT, LO, EX, RO, OG, CR, CR, CS, ST]),
    r("POST", "/acme/v2/accounts/{user}/tokens", NB, No,                   [NC, BT, LO, EX, CR, OG, CR, CR, CS, ST]),
    r("DELETE", "/acme/v2/accounts/{admin}/tokens/{fresh}", NB, Fresh::AdminToken,
                                                                           [NC, BT, LO, EX, RO, OG, OK, OK, CS, ST]),
    r("DELETE", "/acme/v2/accounts/{user}/tokens/{fresh}", NB, Fresh::UserToken,
                                                                           [NC, BT, LO, EX, OK, OG, OK, OK, CS, ST]),
    // the admin's token named under the user's id: nobody revokes it that way
    r("DELETE", "/acme/v2/accounts/{user}/tokens/{fresh}", NB, Fresh::AdminToken,
                                                                           [NC, BT, LO, EX, NI, OG, NI, NI, CS, ST]),
    // ---- object definitions: administrators write, any account reads
    r("GET", "/acme/v2/objects", NB, No,                                   [NC, BT, LO, EX, OK, OG, OK, OK, OK, ST]),
    r("POST", "/acme/v2/objects", Json(r#"{"name":"c_new{n}","properties":[{"name":"c_a","type":"String"}]}"#), No,
                                                                           [NC, BT, LO, EX, RO, OG, CR, CR, CS, ST]),
    r("GET", "/acme/v2/objects/c_things", NB, No,                          [NC, BT, LO, EX, OK, OG, OK, OK, OK, ST]),
    r("PATCH", "/acme/v2/objects/c_things", Json(r#"{"label":"Things"}"#), No,
                                                                           [NC, BT, LO, EX, RO, OG, OK, OK, CS, ST]),
    // ---- org
    r("GET", "/acme/v2/org/storage", NB, No,                               [NC, BT, LO, EX, OK, OG, OK, OK, OK, ST]),
    r("GET", "/acme/v2/org/webhook-secret", NB, No,                        [NC, BT, LO, EX, RO, OG, OK, OK, OK, ST]),
    r("POST", "/acme/v2/org/webhook-secret", NB, No,                       [NC, BT, LO, EX, RO, OG, OK, OK, CS, ST]),
    // ---- documents (c_things: no defaultAcl, so the user reads only its own)
    r("GET", "/acme/v2/c_things", NB, No,                                  [NC, BT, LO, EX, OK, OG, OK, OK, OK, ST]),
    r("POST", "/acme/v2/c_things", Json(r#"{"c_name":"n{n}"}"#), No,       [NC, BT, LO, EX, CR, OG, CR, CR, CS, ST]),
    r("POST", "/acme/v2/c_things", Ndjson("{\"c_name\":\"a\"}\n{\"c_name\":\"b\"}"), No,
                                                                           [NC, BT, LO, EX, OK, OG, OK, OK, CS, ST]),
    r("GET", "/acme/v2/c_nopes", NB, No,                                   [NC, BT, LO, EX, NO, OG, NO, NO, NO, ST]),
    r("GET", "/acme/v2/c_things/{doc}", NB, No,                            [NC, BT, LO, EX, NI, OG, OK, OK, OK, ST]),
    r("PATCH", "/acme/v2/c_things/{doc}", Json(r#"{"c_name":"patched"}"#), No,
                                                                           [NC, BT, LO, EX, NI, OG, OK, OK, CS, ST]),
    r("DELETE", "/acme/v2/c_things/{fresh}", NB, Fresh::Doc,               [NC, BT, LO, EX, NI, OG, OK, OK, CS, ST]),
    r("GET", "/acme/v2/c_things/{doc}/c_file/content", NB, No,             [NC, BT, LO, EX, NI, OG, OK, OK, OK, ST]),
    r("PUT", "/acme/v2/c_things/{doc}/c_file/content", Raw("text/plain", "hello"), No,
                                                                           [NC, BT, LO, EX, NI, OG, CR, CR, CS, ST]),
    r("GET", "/acme/v2/c_things/{udoc}", NB, No,                           [NC, BT, LO, EX, OK, OG, OK, OK, OK, ST]),
    r("PATCH", "/acme/v2/c_things/{udoc}", Json(r#"{"c_name":"mine"}"#), No,
                                                                           [NC, BT, LO, EX, OK, OG, OK, OK, CS, ST]),
    r("DELETE", "/acme/v2/c_things/{fresh}", NB, Fresh::UserDoc,           [NC, BT, LO, EX, OK, OG, OK, OK, CS, ST]),
    // c_shareds: defaultAcl grants the user role read; c_secret needs readAccess update
    r("GET", "/acme/v2/c_shareds/{sdoc}", NB, No,                          [NC, BT, LO, EX, OK, OG, OK, OK, OK, ST]),
    r("PATCH", "/acme/v2/c_shareds/{sdoc}", Json(r#"{"c_name":"x"}"#), No, [NC, BT, LO, EX, AU, OG, OK, OK, CS, ST]),
    r("DELETE", "/acme/v2/c_shareds/{fresh}", NB, Fresh::SharedDoc,        [NC, BT, LO, EX, AD, OG, OK, OK, CS, ST]),
    r("GET", "/acme/v2/c_shareds/{sdoc}/c_file/content", NB, No,           [NC, BT, LO, EX, OK, OG, OK, OK, OK, ST]),
    r("GET", "/acme/v2/c_shareds/{sdoc}/c_secret/content", NB, No,         [NC, BT, LO, EX, NI, OG, OK, OK, OK, ST]),
    r("PUT", "/acme/v2/c_shareds/{sdoc}/c_file/content", Raw("text/plain", "hi"), No,
                                                                           [NC, BT, LO, EX, AU, OG, CR, CR, CS, ST]),
    // ---- exports: administrators only
    r("GET", "/acme/v2/exports", NB, No,                                   [NC, BT, LO, EX, RO, OG, OK, OK, OK, ST]),
    r("POST", "/acme/v2/exports", Json(r#"{"label":"m{n}","objects":"c_things"}"#), No,
                                                                           [NC, BT, LO, EX, RO, OG, CR, CR, CS, ST]),
    r("GET", "/acme/v2/exports/{ready}", NB, No,                           [NC, BT, LO, EX, RO, OG, OK, OK, OK, ST]),
    r("GET", "/acme/v2/exports/{missing}", NB, No,                         [NC, BT, LO, EX, RO, OG, NE, NE, NE, ST]),
    r("DELETE", "/acme/v2/exports/{fresh}", NB, Fresh::Export,             [NC, BT, LO, EX, RO, OG, OK, OK, CS, ST]),
    r("POST", "/acme/v2/exports/{fresh}/cancel", NB, Fresh::Export,        [NC, BT, LO, EX, RO, OG, OK, OK, CS, ST]),
    r("GET", "/acme/v2/exports/{ready}/dataFile", NB, No,                  [NC, BT, LO, EX, RO, OG, OK, OK, OK, ST]),
    r("GET", "/acme/v2/exports/{ready}/dataFile/content", NB, No,          [NC, BT, LO, EX, RO, OG, OK, OK, OK, ST]),
    r("GET", "/acme/v2/exports/{side}/files", NB, No,                      [NC, BT, LO, EX, RO, OG, OK, OK, OK, ST]),
    r("GET", "/acme/v2/exports/{side}/files/0", NB, No,                    [NC, BT, LO, EX, RO, OG, OK, OK, OK, ST]),
    // ---- acme's ids under another org's path: not found for that org's administrator too
    r("GET", "/other/v2/exports/{ready}", NB, No,                          [NC, BT, LO, EX, OG, NE, OG, OG, OG, ST]),
    r("DELETE", "/other/v2/exports/{ready}", NB, No,                       [NC, BT, LO, EX, OG, NE, OG, OG, OG, ST]),
    r("POST", "/other/v2/exports/{ready}/cancel", NB, No,                  [NC, BT, LO, EX, OG, NE, OG, OG, OG, ST]),
    r("GET", "/other/v2/exports/{ready}/dataFile", NB, No,                 [NC, BT, LO, EX, OG, NE, OG, OG, OG, ST]),
    r("GET", "/other/v2/exports/{ready}/dataFile/content", NB, No,         [NC, BT, LO, EX, OG, NE, OG, OG, OG, ST]),
    r("GET", "/other/v2/exports/{side}/files", NB, No,                     [NC, BT, LO, EX, OG, NE, OG, OG, OG, ST]),
    r("GET", "/other/v2/exports/{side}/files/0", NB, No,                   [NC, BT, LO, EX, OG, NE, OG, OG, OG, ST]),
    r("GET", "/other/v2/c_things/{doc}", NB, No,                           [NC, BT, LO, EX, OG, NI, OG, OG, OG, ST]),
    r("PATCH", "/other/v2/c_things/{doc}", Json(r#"{"c_name":"x"}"#), No,  [NC, BT, LO, EX, OG, NI, OG, OG, OG, ST]),
    r("DELETE", "/other/v2/c_things/{doc}", NB, No,                        [NC, BT, LO, EX, OG, NI, OG, OG, OG, ST]),
    r("GET", "/other/v2/c_things/{doc}/c_file/content", NB, No,            [NC, BT, LO, EX, OG, NI, OG, OG, OG, ST]),
    r("PUT", "/other/v2/c_things/{doc}/c_file/content", Raw("text/plain", "x"), No,
                                                                           [NC, BT, LO, EX, OG, NI, OG, OG, OG, ST]),
    r("GET", "/other/v2/accounts/{admin}", NB, No,                         [NC, BT, LO, EX, OG, NI, OG, OG, OG, ST]),
    r("POST", "/other/v2/accounts/{admin}/tokens", NB, No,                 [NC, BT, LO, EX, OG, NI, OG, OG, OG, ST]),
    // ---- an org that does not exist looks like one that does
    r("GET", "/nope/v2/objects", NB, No,                                   [NC, BT, LO, EX, OG, OG, OG, OG, OG, ST]),
    r("GET", "/nope/v2/exports", NB, No,                                   [NC, BT, LO, EX, OG, OG, OG, OG, OG, ST]),
];

// ---------------------------------------------------------------------------------------------
// the fixture
// ---------------------------------------------------------------------------------------------

struct Fixture {
    admin_tok: String,
    user_tok: String,
    other_tok: String,
    admin_id: String,
    user_id: String,
    doc: String,
    udoc: String,
    sdoc: String,
    ready: String,
    side: String,
    /// The administrator's session: (cookie pair, CSRF token).
    session: (String, String),
    logged_out_cookie: String,
}

fn bearer(t: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {t}"))
}

fn id_of(v: &Value) -> String {
    v["_id"].as_str().expect("an _id").to_string()
}

async fn put_file<S: TestService>(svc: &S, tok: &str, path: &str, body: &str) {
    let (s, v) = raw(
        svc,
        TestRequest::put()
            .uri(path)
            .insert_header(bearer(tok))
            .insert_header(("Content-Type", "text/plain"))
            .set_payload(body.to_string()),
    )
    .await;
    assert_eq!(s, 201, "{path}: {v}");
}

/// Signs in for real; returns (cookie pair, CSRF token).
async fn login<S: TestService>(svc: &S, email: &str, password: &str) -> (String, String) {
    let resp = actix_web::dev::Service::call(
        svc,
        TestRequest::post()
            .uri("/acme/v2/accounts/login")
            .insert_header(("Content-Type", "application/json"))
            .set_payload(json!({"email": email, "password": password}).to_string())
            .to_request(),
    )
    .await
    .unwrap_or_else(|_| panic!("login {email}"));
    assert_eq!(resp.status().as_u16(), 200, "login {email}");
    let pair = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .trim()
        .to_string();
    let body: Value = actix_web::test::read_body_json(resp).await;
    assert!(pair.starts_with("exportd_session="), "{pair}");
    (pair, body["csrfToken"].as_str().unwrap().to_string())
}

async fn fixture<S: TestService>(app: &TestApp<S>) -> Fixture {
    let svc = &app.svc;
    let admin_tok = org_with_admin(svc, "acme").await;
    let other_tok = org_with_admin(svc, "other").await;
    let me = call_expect(svc, "GET", "/acme/v2/accounts/me", &admin_tok, None, 200).await;
    let admin_id = id_of(&me);
    let u = call_expect(
        svc,
        "POST",
        "/acme/v2/accounts",
        &admin_tok,
        Some(json!({"email": "user@acme.test", "roles": ["user"], "password": "user-password-1"})),
        201,
    )
    .await;
    let user_id = id_of(&u);
    let user_tok = u["token"].as_str().unwrap().to_string();
    let things = json!({"name": "c_thing", "properties": [
        {"name": "c_name", "type": "String"}, {"name": "c_file", "type": "File"}]});
    for (org, tok) in [("acme", &admin_tok), ("other", &other_tok)] {
        call_expect(
            svc,
            "POST",
            &format!("/{org}/v2/objects"),
            tok,
            Some(things.clone()),
            201,
        )
        .await;
    }
    call_expect(
        svc,
        "POST",
        "/acme/v2/objects",
        &admin_tok,
        Some(json!({"name": "c_shared",
            "defaultAcl": [{"type": "role", "target": "user", "allow": "read"}],
            "properties": [{"name": "c_name", "type": "String"},
                           {"name": "c_file", "type": "File"},
                           {"name": "c_secret", "type": "File", "readAccess": "update"}]})),
        201,
    )
    .await;
    let doc = id_of(
        &call_expect(
            svc,
            "POST",
            "/acme/v2/c_things",
            &admin_tok,
            Some(json!({"c_name": "admin's"})),
            201,
        )
        .await,
    );
    put_file(
        svc,
        &admin_tok,
        &format!("/acme/v2/c_things/{doc}/c_file/content"),
        "admin file",
    )
    .await;
    let udoc = id_of(
        &call_expect(
            svc,
            "POST",
            "/acme/v2/c_things",
            &user_tok,
            Some(json!({"c_name": "user's"})),
            201,
        )
        .await,
    );
    let sdoc = id_of(
        &call_expect(
            svc,
            "POST",
            "/acme/v2/c_shareds",
            &admin_tok,
            Some(json!({"c_name": "shared"})),
            201,
        )
        .await,
    );
    for prop in ["c_file", "c_secret"] {
        put_file(
            svc,
            &admin_tok,
            &format!("/acme/v2/c_shareds/{sdoc}/{prop}/content"),
            prop,
        )
        .await;
    }
    let ready = id_of(
        &call_expect(
            svc,
            "POST",
            "/acme/v2/exports",
            &admin_tok,
            Some(json!({"label": "ready", "objects": "c_things"})),
            201,
        )
        .await,
    );
    let side = id_of(
        &call_expect(
            svc,
            "POST",
            "/acme/v2/exports",
            &admin_tok,
            Some(json!({"label": "side", "objects": "c_things", "exportFiles": true})),
            201,
        )
        .await,
    );
    for id in [&ready, &side] {
        let v = wait_ready(svc, &admin_tok, "acme", id).await;
        assert_eq!(v["state"], "ready", "{v}");
    }
    let v = call_expect(
        svc,
        "GET",
        &format!("/acme/v2/exports/{side}"),
        &admin_tok,
        None,
        200,
    )
    .await;
    assert_eq!(v["stats"]["files"]["count"], 1, "one side file: {v}");
    // From here on no export starts: exports created by the matrix stay `pending`, so that
    // cancel and delete meet the same state in every cell. (White-box: the flag SIGTERM sets.)
    app.state
        .exports
        .shutting_down
        .store(true, Ordering::SeqCst);

    let session = login(svc, "admin@acme.test", "correct-horse").await;
    let gone = login(svc, "admin@acme.test", "correct-horse").await;
    let (s, v) = raw(
        svc,
        TestRequest::post()
            .uri("/acme/v2/accounts/logout")
            .insert_header(("Cookie", gone.0.clone()))
            .insert_header(("X-CSRF-Token", gone.1.clone())),
    )
    .await;
    assert_eq!(s, 200, "logout: {v}");
    Fixture {
        admin_tok,
        user_tok,
        other_tok,
        admin_id,
        user_id,
        doc,
        udoc,
        sdoc,
        ready,
        side,
        session,
        logged_out_cookie: gone.0,
    }
}

/// A session of the administrator that expired a minute ago, written straight to the store
/// (a session is checked, and dropped, on its first use after expiry: one per cell).
fn expired_cookie<S>(app: &TestApp<S>, admin_id: &str) -> String {
    let sid = exportd::crypto::random_hex(32);
    let sess = exportd::model::org::Session {
        org: "acme".into(),
        account: exportd::model::ids::ObjectId::parse(admin_id).unwrap(),
        csrf: "expired-csrf".into(),
        expires: chrono::Utc::now().timestamp() - 60,
    };
    app.state
        .store
        .put_session(&exportd::crypto::sha256(sid.as_bytes()), &sess)
        .unwrap();
    format!("{}={sid}", exportd::auth::SESSION_COOKIE)
}

/// Makes the row's fresh resource; returns its id.
async fn make_fresh<S: TestService>(app: &TestApp<S>, fx: &Fixture, fresh: Fresh) -> String {
    let svc = &app.svc;
    match fresh {
        Fresh::No | Fresh::Session => String::new(),
        Fresh::Export => id_of(
            &call_expect(
                svc,
                "POST",
                "/acme/v2/exports",
                &fx.admin_tok,
                Some(json!({"label": "fresh", "objects": "c_things"})),
                201,
            )
            .await,
        ),
        Fresh::Doc | Fresh::UserDoc | Fresh::SharedDoc => {
            let (plural, tok) = match fresh {
                Fresh::Doc => ("c_things", &fx.admin_tok),
                Fresh::UserDoc => ("c_things", &fx.user_tok),
                _ => ("c_shareds", &fx.admin_tok),
            };
            id_of(
                &call_expect(
                    svc,
                    "POST",
                    &format!("/acme/v2/{plural}"),
                    tok,
                    Some(json!({"c_name": "fresh"})),
                    201,
                )
                .await,
            )
        }
        Fresh::AdminToken | Fresh::UserToken => {
            let acct = if fresh == Fresh::AdminToken {
                &fx.admin_id
            } else {
                &fx.user_id
            };
            id_of(
                &call_expect(
                    svc,
                    "POST",
                    &format!("/sys/orgs/acme/accounts/{acct}/tokens"),
                    SYS,
                    None,
                    201,
                )
                .await,
            )
        }
    }
}

fn fill(path: &str, fx: &Fixture, fresh: &str) -> String {
    path.replace("{admin}", &fx.admin_id)
        .replace("{user}", &fx.user_id)
        .replace("{doc}", &fx.doc)
        .replace("{udoc}", &fx.udoc)
        .replace("{sdoc}", &fx.sdoc)
        .replace("{ready}", &fx.ready)
        .replace("{side}", &fx.side)
        .replace("{missing}", "0123456789abcdef01234567")
        .replace("{fresh}", fresh)
}

/// Runs one cell; returns (status, body as JSON or Null).
async fn run_cell<S: TestService>(
    app: &TestApp<S>,
    fx: &Fixture,
    row: &Row,
    caller: usize,
    n: usize,
) -> (String, u16, Value) {
    let fresh = make_fresh(app, fx, row.fresh).await;
    let path = fill(row.path, fx, &fresh);
    let mut req = TestRequest::default()
        .method(actix_web::http::Method::from_bytes(row.method.as_bytes()).unwrap())
        .uri(&path);
    match row.body {
        Body::None => {}
        Body::Json(t) => {
            req = req
                .insert_header(("Content-Type", "application/json"))
                .set_payload(t.replace("{n}", &n.to_string()));
        }
        Body::Ndjson(t) => {
            req = req
                .insert_header(("Content-Type", "application/x-ndjson"))
                .set_payload(t);
        }
        Body::Raw(ct, t) => {
            req = req.insert_header(("Content-Type", ct)).set_payload(t);
        }
    }
    let session = if row.fresh == Fresh::Session && matches!(caller, SESSION | NO_CSRF) {
        login(&app.svc, "admin@acme.test", "correct-horse").await
    } else {
        fx.session.clone()
    };
    req = match caller {
        ANON => req,
        BAD => req.insert_header(bearer(&format!("exd_{}", "0".repeat(64)))),
        LOGGED_OUT => req
            .insert_header(("Cookie", fx.logged_out_cookie.clone()))
            .insert_header(("X-CSRF-Token", "whatever")),
        EXPIRED => req
            .insert_header(("Cookie", expired_cookie(app, &fx.admin_id)))
            .insert_header(("X-CSRF-Token", "expired-csrf")),
        USER => req.insert_header(bearer(&fx.user_tok)),
        OTHER => req.insert_header(bearer(&fx.other_tok)),
        ADMIN => req.insert_header(bearer(&fx.admin_tok)),
        SESSION => req
            .insert_header(("Cookie", session.0))
            .insert_header(("X-CSRF-Token", session.1)),
        NO_CSRF => req.insert_header(("Cookie", session.0)),
        SYSTEM => req.insert_header(bearer(SYS)),
        _ => unreachable!(),
    };
    let (status, bytes) = raw_bytes(&app.svc, req).await;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (path, status, body)
}

/// What is wrong with an answer, if anything.
fn mismatch(exp: Exp, status: u16, body: &Value) -> Option<String> {
    if status != exp.status {
        return Some(format!("status {status}"));
    }
    let err = exp.err?;
    let well_formed = body["object"] == "fault" && body["status"] == status;
    if body["errCode"] != err || !well_formed {
        return Some(format!("fault {body}"));
    }
    None
}

#[actix_web::test]
async fn every_route_times_every_caller() {
    let app = app().await;
    let fx = fixture(&app).await;
    let mut failures = Vec::new();
    let mut cells = 0;
    for row in MATRIX {
        for (caller, exp) in row.expect.iter().enumerate() {
            cells += 1;
            let (path, status, body) = run_cell(&app, &fx, row, caller, cells).await;
            if let Some(got) = mismatch(*exp, status, &body) {
                failures.push(format!(
                    "{} {} [{}] ({}): expected {}{}, got {got}",
                    row.method,
                    row.path,
                    CALLERS[caller],
                    path,
                    exp.status,
                    exp.err.map(|e| format!(" {e}")).unwrap_or_default(),
                ));
            }
        }
    }
    assert_eq!(cells, MATRIX.len() * CALLERS.len());
    assert!(
        failures.is_empty(),
        "{} of {cells} cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // the refused calls changed nothing they should not have: the fixture is intact
    for p in [
        format!("/acme/v2/c_things/{}", fx.doc),
        format!("/acme/v2/exports/{}", fx.ready),
        format!("/acme/v2/exports/{}/files/0", fx.side),
    ] {
        let (s, _) = get_bytes(&app.svc, &fx.admin_tok, &p).await;
        assert_eq!(s, 200, "{p} survived the matrix");
    }
}

/// Every route the server documents (and a test in operability.rs checks that the
/// documented routes are the registered ones) has at least one row in the matrix.
#[test]
fn the_matrix_covers_every_documented_route() {
    fn matches(template: &str, path: &str) -> bool {
        let t: Vec<&str> = template.split('/').collect();
        let p: Vec<&str> = path.split('/').collect();
        // `{tail}` stands for one or more segments
        if let Some(i) = t.iter().position(|s| *s == "{tail}") {
            let after = t.len() - i - 1;
            if p.len() < t.len() {
                return false;
            }
            let head = t[..i].iter().zip(&p[..i]);
            let tail = t[i + 1..].iter().zip(&p[p.len() - after..]);
            return head.chain(tail).all(|(a, b)| a.starts_with('{') || a == b);
        }
        t.len() == p.len()
            && t.iter()
                .zip(&p)
                .all(|(a, b)| a.starts_with('{') && !b.is_empty() || a == b)
    }
    let missing: Vec<String> = exportd::http::openapi::ROUTES
        .iter()
        .filter(|(m, tpl, ..)| {
            !MATRIX
                .iter()
                .any(|r| r.method.eq_ignore_ascii_case(m) && matches(tpl, r.path))
        })
        .map(|(m, tpl, ..)| format!("{m} {tpl}"))
        .collect();
    assert!(missing.is_empty(), "routes without a row: {missing:?}");
    // and no row names a route the server does not document
    let unknown: Vec<String> = MATRIX
        .iter()
        .filter(|r| {
            !exportd::http::openapi::ROUTES
                .iter()
                .any(|(m, tpl, ..)| r.method.eq_ignore_ascii_case(m) && matches(tpl, r.path))
        })
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        unknown.is_empty(),
        "rows for undocumented routes: {unknown:?}"
    );
}

/// `/metrics` is public, but only the system token sees which orgs have exports queued: an
/// anonymous scrape must not list org codes (SPEC §2: orgs cannot be probed).
#[actix_web::test]
async fn metrics_name_orgs_only_to_the_system_token() {
    let app = app().await;
    let tok = org_with_admin(&app.svc, "secret-tenant").await;
    call_expect(
        &app.svc,
        "POST",
        "/secret-tenant/v2/objects",
        &tok,
        Some(json!({"name": "c_x", "properties": [{"name": "c_n", "type": "Number"}]})),
        201,
    )
    .await;
    // keep the export queued so the org has a queue depth to report
    app.state
        .exports
        .shutting_down
        .store(true, Ordering::SeqCst);
    call_expect(
        &app.svc,
        "POST",
        "/secret-tenant/v2/exports",
        &tok,
        Some(json!({"label": "q", "objects": "c_xs"})),
        201,
    )
    .await;
    let scrape = |who: Option<&str>| {
        let mut req = TestRequest::get().uri("/metrics");
        if let Some(t) = who {
            req = req.insert_header(bearer(t));
        }
        req
    };
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    let (s, anon) = raw_bytes(&app.svc, scrape(None)).await;
    assert_eq!(s, 200);
    let anon = text(anon);
    assert!(anon.contains("exportd_queued_exports 1"), "{anon}");
    assert!(
        !anon.contains("secret-tenant"),
        "an anonymous scrape names an org:\n{anon}"
    );
    let (s, admin) = raw_bytes(&app.svc, scrape(Some(&tok))).await;
    assert_eq!(s, 200);
    assert!(
        !text(admin).contains("secret-tenant"),
        "org tokens do not see other orgs either"
    );
    let (s, sys) = raw_bytes(&app.svc, scrape(Some(SYS))).await;
    assert_eq!(s, 200);
    let sys = text(sys);
    assert!(
        sys.contains("exportd_queue_depth{org=\"secret-tenant\"} 1"),
        "{sys}"
    );
}
