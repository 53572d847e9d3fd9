//! Accounts, API tokens, password login with a session cookie, logout and `me`.

use crate::app::AppState;
use crate::auth::{CSRF_HEADER, OrgCaller, SESSION_COOKIE, SESSION_SECS, new_token, passwords};
use crate::crypto::{random_hex, sha256};
use crate::fault::{Category, Fault, Faults, Result};
use crate::http::body::JsonBody;
use crate::http::{Paging, created, list, only_params, parse_id, result};
use crate::model::ids::{ObjectId, now_iso};
use crate::model::input::Fields;
use crate::model::org::{ADMIN_ROLE, ADMIN_ROLE_ID, Account, Session, TokenRec};
use crate::store::blocking;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::{HttpRequest, HttpResponse, web};
use regex::Regex;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/{org}/v2/accounts/login", web::post().to(login))
        .route("/{org}/v2/accounts/logout", web::post().to(logout))
        .route("/{org}/v2/accounts/me", web::get().to(me))
        .service(
            web::resource("/{org}/v2/accounts")
                .route(web::get().to(list_accounts))
                .route(web::post().to(org_create_account)),
        )
        .route("/{org}/v2/accounts/{id}", web::get().to(get_account))
        .route(
            "/{org}/v2/accounts/{id}/tokens",
            web::post().to(org_issue_token),
        )
        .route(
            "/{org}/v2/accounts/{id}/tokens/{token}",
            web::delete().to(org_revoke_token),
        );
}

fn role_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| Regex::new(r"^[a-zA-Z][a-zA-Z0-9_-]{0,39}$").unwrap())
}

fn email_ok(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Validates an account body and creates it with a first API token (shown once).
pub async fn create_account(state: &web::Data<AppState>, org: &str, body: Value) -> Result<Value> {
    let mut faults = Faults::default();
    let Some(mut f) = Fields::from_value(body, "", &mut faults) else {
        return Err(Fault::validation(faults.0));
    };
    f.read_only(&["_id", "object", "created", "token"]);
    let email = f.string("email", true, 254);
    let name = f.string("name", false, 100);
    let roles = f.strings("roles", 20, 40);
    let password = f.string("password", false, passwords::MAX_LEN);
    f.finish();
    if let Some(e) = &email
        && !email_ok(e)
    {
        faults.bad("email", "email is not a valid address");
    }
    if let Some(p) = &password
        && p.chars().count() < passwords::MIN_LEN
    {
        faults.bad(
            "password",
            format!(
                "password must be at least {} characters",
                passwords::MIN_LEN
            ),
        );
    }
    let mut clean_roles = Vec::new();
    for (i, r) in roles
        .unwrap_or_else(|| vec!["user".into()])
        .into_iter()
        .enumerate()
    {
        let r = if r == ADMIN_ROLE_ID.to_hex() {
            ADMIN_ROLE.to_string()
        } else {
            r
        };
        if !role_re().is_match(&r) {
            faults.bad(
                &format!("roles[{i}]"),
                "a role is a name of letters, digits, _ and -",
            );
        } else if !clean_roles.contains(&r) {
            clean_roles.push(r);
        }
    }
    faults.finish()?;
    let acct = Account {
        id: ObjectId::new(),
        org: org.to_string(),
        email: email.unwrap_or_default(),
        name,
        roles: clean_roles,
        password_hash: None,
        created: now_iso(),
    };
    let token = new_token();
    let rec = TokenRec {
        id: ObjectId::new(),
        org: org.to_string(),
        account: acct.id,
        created: now_iso(),
    };
    let store = state.store.clone();
    let mut a2 = acct.clone();
    let token_id = rec.id;
    let hash = sha256(token.as_bytes());
    let acct = blocking(move || {
        a2.password_hash = password.map(|p| passwords::hash(&p));
        store.create_account(&a2, &hash, &rec)?;
        Ok(a2)
    })
    .await?;
    let mut v = acct.to_json();
    v["token"] = json!(token);
    v["tokenId"] = json!(token_id);
    Ok(v)
}

pub async fn issue_token(
    state: &web::Data<AppState>,
    org: &str,
    account: ObjectId,
) -> Result<Value> {
    let store = state.store.clone();
    let org = org.to_string();
    let token = new_token();
    let hash = sha256(token.as_bytes());
    let rec = blocking(move || {
        store
            .get_account(&org, account)?
            .ok_or_else(|| Fault::not_found("account"))?;
        let rec = TokenRec {
            id: ObjectId::new(),
            org,
            account,
            created: now_iso(),
        };
        store.add_token(&hash, &rec)?;
        Ok(rec)
    })
    .await?;
    Ok(
        json!({"object": "token", "_id": rec.id, "account": account, "token": token, "created": rec.created}),
    )
}

pub async fn revoke_token(
    state: &web::Data<AppState>,
    org: &str,
    account: ObjectId,
    token: ObjectId,
) -> Result<()> {
    let store = state.store.clone();
    let org = org.to_string();
    blocking(move || store.revoke_token(&org, account, token)).await
}

async fn org_create_account(
    caller: OrgCaller,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse> {
    caller.require_admin()?;
    Ok(created(
        create_account(&state, &caller.org.code, body.0).await?,
    ))
}

async fn list_accounts(
    caller: OrgCaller,
    state: web::Data<AppState>,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse> {
    caller.require_admin()?;
    only_params(&q, &["limit", "skip", "total"])?;
    let p = Paging::from_query(&q)?;
    let store = state.store.clone();
    let code = caller.org.code.clone();
    let all = blocking(move || store.list_accounts(&code)).await?;
    let total = all.len() as u64;
    let items = all
        .iter()
        .rev()
        .skip(p.skip)
        .take(p.limit + 1)
        .map(|a| a.to_json())
        .collect();
    Ok(list(items, p, p.total.then_some(total)))
}

/// Administrators see every account; others only themselves.
fn self_or_admin(caller: &OrgCaller, id: ObjectId) -> Result<()> {
    if caller.account.id == id {
        Ok(())
    } else {
        caller.require_admin()
    }
}

async fn get_account(
    caller: OrgCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let id = parse_id(&path.1, "account")?;
    self_or_admin(&caller, id)?;
    let store = state.store.clone();
    let code = caller.org.code.clone();
    let a = blocking(move || {
        store
            .get_account(&code, id)?
            .ok_or_else(|| Fault::not_found("account"))
    })
    .await?;
    Ok(HttpResponse::Ok().json(a.to_json()))
}

async fn org_issue_token(
    caller: OrgCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let id = parse_id(&path.1, "account")?;
    self_or_admin(&caller, id)?;
    Ok(created(issue_token(&state, &caller.org.code, id).await?))
}

async fn org_revoke_token(
    caller: OrgCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse> {
    let id = parse_id(&path.1, "account")?;
    let tok = parse_id(&path.2, "token")?;
    self_or_admin(&caller, id)?;
    revoke_token(&state, &caller.org.code, id, tok).await?;
    Ok(result(Value::Bool(true)))
}

async fn me(caller: OrgCaller) -> HttpResponse {
    let mut r = HttpResponse::Ok();
    if let Some(c) = &caller.csrf {
        r.insert_header((CSRF_HEADER, c.as_str()));
    }
    let mut v = caller.account.to_json();
    v["org"] = json!({"code": caller.org.code, "name": caller.org.name});
    r.json(v)
}

/// Failed sign-ins per (org, email) in the current window; past the limit: 429.
type Failures = HashMap<(String, String), (u32, Instant)>;

fn failures() -> &'static Mutex<Failures> {
    static F: OnceLock<Mutex<Failures>> = OnceLock::new();
    F.get_or_init(|| Mutex::new(HashMap::new()))
}
const MAX_FAILURES: u32 = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

fn throttled(key: &(String, String)) -> bool {
    let mut f = failures().lock().unwrap_or_else(|e| e.into_inner());
    match f.get(key) {
        Some((_, at)) if at.elapsed() > FAILURE_WINDOW => {
            f.remove(key);
            false
        }
        Some((n, _)) => *n >= MAX_FAILURES,
        None => false,
    }
}

fn note_failure(key: (String, String)) {
    let mut f = failures().lock().unwrap_or_else(|e| e.into_inner());
    if f.len() > 100_000 {
        f.retain(|_, (_, at)| at.elapsed() <= FAILURE_WINDOW);
    }
    let e = f.entry(key).or_insert((0, Instant::now()));
    e.0 += 1;
}

async fn login(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let org = path.into_inner();
    let mut faults = Faults::default();
    let Some(mut f) = Fields::from_value(body.0, "", &mut faults) else {
        return Err(Fault::validation(faults.0));
    };
    let email = f.string("email", true, 254);
    let password = f.string("password", true, passwords::MAX_LEN);
    f.finish();
    faults.finish()?;
    let (email, password) = (email.unwrap_or_default(), password.unwrap_or_default());
    let tkey = (org.clone(), email.to_ascii_lowercase());
    if throttled(&tkey) {
        return Err(Fault::new(
            Category::Throttled,
            "login",
            "Too many failed sign-ins; try again later",
        ));
    }
    let store = state.store.clone();
    let (o2, e2) = (org.clone(), email.clone());
    let acct = blocking(move || {
        let acct = match store.get_org(&o2)? {
            Some(_) => store.account_by_email(&o2, &e2)?,
            None => None,
        };
        let hash = acct.as_ref().and_then(|a| a.password_hash.clone());
        let ok = passwords::verify(
            &password,
            hash.as_deref().unwrap_or(passwords::dummy_hash()),
        );
        Ok(acct.filter(|_| ok && hash.is_some()))
    })
    .await?;
    let Some(acct) = acct else {
        note_failure(tkey);
        return Err(Fault::unauthorized(
            "invalidCredentials",
            "Invalid email or password",
        ));
    };
    let sid = random_hex(32);
    let csrf = random_hex(16);
    let sess = Session {
        org: org.clone(),
        account: acct.id,
        csrf: csrf.clone(),
        expires: chrono::Utc::now().timestamp() + SESSION_SECS,
    };
    let store = state.store.clone();
    let h = sha256(sid.as_bytes());
    blocking(move || store.put_session(&h, &sess)).await?;
    let cookie = Cookie::build(SESSION_COOKIE, sid)
        .path(format!("/{org}/"))
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(actix_web::cookie::time::Duration::seconds(SESSION_SECS))
        .finish();
    let mut v = acct.to_json();
    v["csrfToken"] = json!(csrf);
    Ok(HttpResponse::Ok()
        .cookie(cookie)
        .insert_header((CSRF_HEADER, csrf))
        .json(v))
}

async fn logout(
    req: HttpRequest,
    caller: OrgCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    if let Some(c) = req.cookie(SESSION_COOKIE) {
        let h = sha256(c.value().as_bytes());
        let store = state.store.clone();
        blocking(move || store.delete_session(&h)).await?;
    }
    let mut gone = Cookie::build(SESSION_COOKIE, "")
        .path(format!("/{}/", caller.org.code))
        .http_only(true)
        .same_site(SameSite::Strict)
        .finish();
    gone.make_removal();
    Ok(HttpResponse::Ok()
        .cookie(gone)
        .json(json!({"object": "result", "data": true})))
}
