//! Reading request bodies: JSON with a size limit and a content-type check, as faults.

use crate::app::AppState;
use crate::fault::{Fault, Result};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde_json::Value;

/// A JSON request body as a `serde_json::Value`; validation happens field by field later.
pub struct JsonBody(pub Value);

pub fn content_type(req: &HttpRequest) -> String {
    req.headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

pub fn content_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get("Content-Length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

pub fn wrong_type(expected: &str) -> Fault {
    Fault::invalid("contentType", format!("Content-Type must be {expected}"))
}

/// Reads the whole body, refusing more than `limit` bytes with 413.
pub async fn read_limited(
    req: &HttpRequest,
    payload: &mut Payload,
    limit: usize,
) -> Result<Vec<u8>> {
    if content_length(req).is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit as u64));
    }
    let mut buf = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| Fault::invalid("body", format!("Could not read the body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large(limit as u64));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

pub fn too_large(limit: u64) -> Fault {
    Fault::too_large(format!(
        "The request body is larger than the limit of {limit} bytes"
    ))
}

pub fn parse_json(bytes: &[u8]) -> Result<Value> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Fault::invalid(
            "json",
            "The request body is empty; a JSON value is required",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| Fault::invalid("json", format!("Malformed JSON: {e}")))
}

impl FromRequest for JsonBody {
    type Error = Fault;
    type Future = LocalBoxFuture<'static, Result<Self>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let limit = req
                .app_data::<web::Data<AppState>>()
                .map_or(1024 * 1024, |s| s.config.max_json_bytes);
            if content_type(&req) != "application/json" {
                return Err(wrong_type("application/json"));
            }
            let bytes = read_limited(&req, &mut payload, limit).await?;
            Ok(JsonBody(parse_json(&bytes)?))
        })
    }
}
