//! Who is calling: API tokens (stored as SHA-256 only), session cookies with a CSRF token,
//! the system token, argon2 password hashes, and the `OrgCaller`/`SysCaller` extractors.

pub mod passwords;

use crate::app::AppState;
use crate::crypto::{random_hex, sha256};
use crate::fault::{Fault, Result};
use crate::model::org::{Account, Org};
use crate::store::blocking;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use subtle::ConstantTimeEq;

pub const SESSION_COOKIE: &str = "exportd_session";
pub const CSRF_HEADER: &str = "X-CSRF-Token";
pub const SESSION_SECS: i64 = 12 * 3600;

pub fn new_token() -> String {
    format!("exd_{}", random_hex(32))
}

pub(crate) fn bearer(req: &HttpRequest) -> Option<String> {
    let h = req.headers().get("Authorization")?.to_str().ok()?;
    let (scheme, tok) = h.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| tok.trim().to_string())
}

pub fn is_system_token(state: &AppState, token: &str) -> bool {
    sha256(token.as_bytes())
        .ct_eq(&state.system_token_hash)
        .into()
}

pub fn org_not_found(org: &str) -> Fault {
    Fault::new(
        crate::fault::Category::NotFound,
        "org",
        format!("Org {org} was not found"),
    )
}

/// An authenticated account of the org in the request path.
#[derive(Debug, Clone)]
pub struct OrgCaller {
    pub org: Org,
    pub account: Account,
    /// The session's CSRF token when authenticated by cookie.
    pub csrf: Option<String>,
}

impl OrgCaller {
    pub fn require_admin(&self) -> Result<()> {
        if self.account.is_admin() {
            Ok(())
        } else {
            Err(Fault::access_denied(
                "role",
                "This action requires the administrator role",
            ))
        }
    }
}

impl FromRequest for OrgCaller {
    type Error = Fault;
    type Future = LocalBoxFuture<'static, Result<Self>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate_org(&req).await })
    }
}

async fn authenticate_org(req: &HttpRequest) -> Result<OrgCaller> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| Fault::internal("app state missing", ""))?
        .clone();
    let org_code = req.match_info().get("org").unwrap_or_default().to_string();
    let store = state.store.clone();
    if let Some(tok) = bearer(req) {
        if is_system_token(&state, &tok) {
            return Err(Fault::access_denied(
                "systemToken",
                "The system token may call /sys routes only",
            ));
        }
        let hash = sha256(tok.as_bytes());
        // point reads of small, hot trees (and a cache in front of them): microseconds, less
        // than a hop to the blocking pool and back (that hop halved GET throughput)
        let found = store.token_caller(&hash, &org_code)?;
        return match found {
            None => Err(Fault::unauthorized(
                "invalidToken",
                "The token is not valid",
            )),
            Some(None) => Err(org_not_found(&org_code)),
            Some(Some((org, account))) => Ok(OrgCaller {
                org,
                account,
                csrf: None,
            }),
        };
    }
    if let Some(c) = req.cookie(SESSION_COOKIE) {
        let hash = sha256(c.value().as_bytes());
        let code = org_code.clone();
        let s2 = store.clone();
        let found = blocking(move || {
            let Some(sess) = s2.session(&hash)? else {
                return Ok(None);
            };
            if sess.expires <= chrono::Utc::now().timestamp() {
                s2.delete_session(&hash)?;
                return Ok(Some(Err(Fault::unauthorized(
                    "sessionExpired",
                    "The session has expired; sign in again",
                ))));
            }
            if sess.org != code {
                return Ok(Some(Err(org_not_found(&code))));
            }
            let org = s2.get_org(&code)?;
            let acct = s2.get_account(&code, sess.account)?;
            Ok(Some(match org.zip(acct) {
                Some((org, account)) => Ok((org, account, sess.csrf)),
                None => Err(org_not_found(&code)),
            }))
        })
        .await?;
        let (org, account, csrf) = match found {
            None => {
                return Err(Fault::unauthorized(
                    "invalidSession",
                    "The session is not valid; sign in again",
                ));
            }
            Some(r) => r?,
        };
        let safe = matches!(req.method().as_str(), "GET" | "HEAD" | "OPTIONS");
        if !safe {
            let given = req
                .headers()
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !bool::from(given.as_bytes().ct_eq(csrf.as_bytes())) {
                return Err(Fault::access_denied(
                    "csrf",
                    "A state-changing request with a session needs the X-CSRF-Token header",
                ));
            }
        }
        return Ok(OrgCaller {
            org,
            account,
            csrf: Some(csrf),
        });
    }
    Err(Fault::unauthorized(
        "noCredentials",
        "Authentication required: send Authorization: Bearer <token> or sign in",
    ))
}

/// The operator, authenticated by the system token.
pub struct SysCaller;

impl FromRequest for SysCaller {
    type Error = Fault;
    type Future = std::future::Ready<Result<Self>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let r = (|| {
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| Fault::internal("app state missing", ""))?;
            match bearer(req) {
                None => Err(Fault::unauthorized(
                    "noCredentials",
                    "The system token is required: Authorization: Bearer <token>",
                )),
                Some(t) if is_system_token(state, &t) => Ok(SysCaller),
                Some(_) => Err(Fault::access_denied(
                    "systemOnly",
                    "Only the system token may call /sys routes",
                )),
            }
        })();
        std::future::ready(r)
    }
}
