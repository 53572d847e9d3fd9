//! File content: upload (streamed into an encrypted blob), download (streamed, with ETag and
//! single ranges). `serve_blob` is shared with export downloads.

use crate::app::AppState;
use crate::auth::OrgCaller;
use crate::fault::{Category, Fault, Result};
use crate::http::body::{content_length, too_large};
use crate::http::documents::object_def;
use crate::http::parse_id;
use crate::model::acl;
use crate::model::document::render_facet;
use crate::model::files::{self, FileLoc};
use crate::model::ids::ObjectId;
use crate::store::{BlobKind, Store, blocking};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/{org}/v2/{plural}/{id}/{tail:.+}/content")
            .route(web::get().to(download))
            .route(web::put().to(upload)),
    );
}

fn tail_parts(tail: &str) -> Vec<&str> {
    tail.split('/').filter(|s| !s.is_empty()).collect()
}

/// Characters a file name offered for saving must not hold: path separators and their
/// compatibility look-alikes (NFKC turns `／` into `/`), what Windows refuses (`: * ? " < > |`,
/// so `C:x` names no drive), controls, and the bidi overrides that disguise an extension.
fn unsafe_in_filename(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '/' | '\\'
                | '"'
                | ':'
                | '*'
                | '?'
                | '<'
                | '>'
                | '|'
                | '\u{ff0f}'
                | '\u{ff3c}'
                | '\u{fe68}'
                | '\u{2215}'
                | '\u{2044}'
                | '\u{29f8}'
                | '\u{29f9}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// Characters that read as a leading `.` (hidden files, `..`) once normalized.
fn dot_like(c: char) -> bool {
    matches!(
        c,
        '.' | '\u{ff0e}' | '\u{2024}' | '\u{2025}' | '\u{2026}' | '\u{fe52}'
    )
}

fn clean_filename(s: &str) -> String {
    let c: String = s
        .chars()
        .map(|c| if unsafe_in_filename(c) { '_' } else { c })
        .take(255)
        .collect();
    let c = c
        .trim()
        .trim_start_matches(|c: char| dot_like(c) || c.is_whitespace())
        .to_string();
    if c.is_empty() { "file".into() } else { c }
}

/// `attachment; filename="..."`, plus RFC 6266's `filename*` for a name that is not ASCII
/// (header values are ASCII: the plain parameter gets `_` for the rest).
fn content_disposition(filename: &str) -> String {
    let name = clean_filename(filename);
    if name.is_ascii() {
        return format!("attachment; filename=\"{name}\"");
    }
    let ascii: String = name
        .chars()
        .map(|c| if c.is_ascii() { c } else { '_' })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

fn clean_mime(req: &HttpRequest) -> Result<String> {
    let raw = req
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .trim();
    let ok = raw.len() <= 255
        && raw.contains('/')
        && raw.chars().all(|c| c.is_ascii_graphic() || c == ' ');
    if ok {
        Ok(raw.to_string())
    } else {
        Err(Fault::invalid(
            "contentType",
            "Content-Type is not a valid mime type",
        ))
    }
}

async fn upload(
    req: HttpRequest,
    caller: OrgCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String, String)>,
    q: web::Query<HashMap<String, String>>,
    mut payload: web::Payload,
) -> Result<HttpResponse> {
    crate::http::only_params(&q, &["filename"])?;
    let (_, plural, id, tail) = path.into_inner();
    let mime = clean_mime(&req)?;
    let max = state.config.max_file_bytes;
    if content_length(&req).is_some_and(|n| n > max) {
        return Err(too_large(max));
    }
    let store = state.store.clone();
    let org = caller.org.clone();
    let acct = caller.account.clone();
    let (s2, o2) = (store.clone(), org.code.clone());
    let tail2 = tail.clone();
    let (def, loc, doc_id) = blocking(move || {
        let def = object_def(&s2, &o2, &plural)?;
        let doc_id = parse_id(&id, "document")?;
        let doc = s2
            .get_doc(&o2, &def.name, doc_id)?
            .filter(|d| acl::can_read(&def, d, &acct))
            .ok_or_else(|| Fault::not_found("document"))?;
        if !acl::can_update(&def, &doc, &acct) {
            return Err(Fault::access_denied(
                "update",
                "You may not update this document",
            ));
        }
        let loc = files::resolve(&def, &tail_parts(&tail2))?;
        // the element or index must exist before bytes are accepted
        let mut probe = doc.props.clone();
        files::set(&mut probe, &loc, serde_json::Value::Null)?;
        if let Some(limit) = s2.get_org(&o2)?.and_then(|o| o.storage_limit)
            && s2.usage(&o2)?.used() >= limit
        {
            return Err(Fault::storage_limit());
        }
        Ok((def, loc, doc_id))
    })
    .await?;
    let filename = clean_filename(q.get("filename").map_or(loc.prop.as_str(), |s| s.as_str()));

    // stream the body into a blob on a blocking thread
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(8);
    let (s3, o3) = (store.clone(), org.code.clone());
    // counted until the blob is finished, which can come after the request is dropped
    let writing = store.writers.enter();
    let writer = tokio::task::spawn_blocking(move || {
        let _writing = writing;
        let mut w = s3.blob_writer(&o3, BlobKind::File)?;
        w.limit(max);
        while let Some(chunk) = rx.blocking_recv() {
            w.write_all(&chunk)?;
        }
        w.finish()
    });
    let mut read_error = None;
    while let Some(chunk) = payload.next().await {
        match chunk {
            Ok(c) => {
                if tx.send(c).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                read_error = Some(Fault::invalid(
                    "body",
                    format!("Could not read the body: {e}"),
                ));
                break;
            }
        }
    }
    drop(tx);
    let written = writer
        .await
        .map_err(|e| Fault::internal("upload worker failed", e))?;
    let meta = match (read_error, written) {
        (Some(f), Ok(meta)) => {
            let s = store.clone();
            let _ = blocking(move || s.remove_blob_data(meta.id)).await;
            return Err(f);
        }
        (_, r) => r?,
    };

    let o4 = org.code.clone();
    let limit = org.storage_limit;
    let blob_id = meta.id;
    let facet = blocking(move || {
        let result = attach(
            &store, &o4, &def, doc_id, &loc, &meta, &mime, &filename, limit,
        );
        if result.is_err() {
            let _ = store.remove_blob_data(blob_id);
        }
        result
    })
    .await?;
    Ok(HttpResponse::Created().json(facet))
}

#[allow(clippy::too_many_arguments)]
fn attach(
    store: &Store,
    org: &str,
    def: &crate::model::schema::ObjectDef,
    doc_id: ObjectId,
    loc: &FileLoc,
    meta: &crate::store::BlobMeta,
    mime: &str,
    filename: &str,
    limit: Option<u64>,
) -> Result<serde_json::Value> {
    let mut doc = store
        .get_doc(org, &def.name, doc_id)?
        .ok_or_else(|| Fault::not_found("document"))?;
    let facet = files::facet(mime, filename, meta.size, &meta.sha256, meta.id);
    let replaced = files::set(&mut doc.props, loc, facet.clone())?;
    doc.updated = Some(crate::model::ids::now_iso());
    let replaced_blob = replaced.as_ref().and_then(files::blob_of);
    store.attach_file(org, &def.name, &doc, meta, replaced_blob, limit)?;
    let path = facet_path(def, doc_id, loc, &doc.props);
    Ok(render_facet(&facet, &path))
}

/// The download path of the facet at `loc` (array appends resolve to their new index).
fn facet_path(
    def: &crate::model::schema::ObjectDef,
    doc_id: ObjectId,
    loc: &FileLoc,
    props: &serde_json::Map<String, serde_json::Value>,
) -> String {
    let mut p = format!("/{}/{}", def.plural_name, doc_id);
    if let Some((dp, elem)) = &loc.container {
        p.push('/');
        p.push_str(dp);
        if let Some(e) = elem {
            p.push('/');
            p.push_str(&e.to_hex());
        }
    }
    p.push('/');
    p.push_str(&loc.prop);
    if loc.array {
        let idx = loc.index.unwrap_or_else(|| {
            let holder = match &loc.container {
                None => Some(props),
                Some((dp, None)) => props.get(dp).and_then(|v| v.as_object()),
                Some((dp, Some(e))) => props.get(dp).and_then(|v| v.as_array()).and_then(|a| {
                    a.iter().filter_map(|x| x.as_object()).find(|x| {
                        x.get("_id").and_then(|i| i.as_str()) == Some(e.to_hex().as_str())
                    })
                }),
            };
            holder
                .and_then(|h| h.get(&loc.prop))
                .and_then(|v| v.as_array())
                .map_or(0, |a| a.len().saturating_sub(1))
        });
        p.push_str(&format!("/{idx}"));
    }
    p.push_str("/content");
    p
}

async fn download(
    req: HttpRequest,
    caller: OrgCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String, String)>,
) -> Result<HttpResponse> {
    let (_, plural, id, tail) = path.into_inner();
    let store = state.store.clone();
    let org = caller.org.code.clone();
    let (s2, o2) = (store.clone(), org.clone());
    let facet = blocking(move || {
        let def = object_def(&s2, &o2, &plural)?;
        let doc_id = parse_id(&id, "document")?;
        let doc = s2
            .get_doc(&o2, &def.name, doc_id)?
            .filter(|d| acl::can_read(&def, d, &caller.account))
            .ok_or_else(|| Fault::not_found("document"))?;
        let loc = files::resolve(&def, &tail_parts(&tail))?;
        if def
            .prop_path(&loc.prop)
            .is_some_and(|p| p.read_level() > acl::level(&def, &doc, &caller.account))
        {
            return Err(Fault::not_found("file"));
        }
        files::get(&doc.props, &loc).ok_or_else(|| Fault::not_found("file"))
    })
    .await?;
    let blob = files::blob_of(&facet).ok_or_else(|| Fault::not_found("file"))?;
    let mime = facet
        .get("mime")
        .and_then(|m| m.as_str())
        .unwrap_or("application/octet-stream")
        .to_string();
    let filename = facet
        .get("filename")
        .and_then(|m| m.as_str())
        .unwrap_or("file")
        .to_string();
    serve_blob(&req, store, org, blob, &mime, &filename).await
}

/// A parsed single `Range: bytes=...` header against a blob of `size` bytes.
#[derive(Debug, PartialEq)]
pub enum RangeReq {
    Full,
    Part(u64, u64),
    Unsatisfiable,
}

pub fn parse_range(header: Option<&str>, size: u64) -> RangeReq {
    let Some(h) = header else {
        return RangeReq::Full;
    };
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return RangeReq::Full;
    };
    if spec.contains(',') {
        return RangeReq::Full; // several ranges: serve the whole entity
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeReq::Unsatisfiable;
    };
    let (a, b) = (a.trim(), b.trim());
    // positions are 1*DIGIT of any length: past u64 they only mean "beyond the end"
    let pos = |s: &str| {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u64>().unwrap_or(u64::MAX))
    };
    let range = if a.is_empty() {
        match pos(b) {
            Some(0) | None => return RangeReq::Unsatisfiable,
            Some(n) => (size.saturating_sub(n), size),
        }
    } else {
        let Some(start) = pos(a) else {
            return RangeReq::Unsatisfiable;
        };
        let end = if b.is_empty() {
            size
        } else {
            match pos(b) {
                Some(e) if e >= start => e.saturating_add(1).min(size),
                _ => return RangeReq::Unsatisfiable,
            }
        };
        (start, end)
    };
    if range.0 >= size || range.0 >= range.1 {
        RangeReq::Unsatisfiable
    } else {
        RangeReq::Part(range.0, range.1)
    }
}

/// Whether an `If-None-Match` list names `etag`, by weak comparison (RFC 9110 §13.1.2:
/// `W/"x"` matches `"x"`).
fn none_match_hits(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// Whether a `Range` is to be honoured under `If-Range`: only if the validator is this
/// strong ETag (a date never holds: no Last-Modified is sent); otherwise the whole
/// content goes out, as a resuming client expects when what it holds has changed.
fn if_range_holds(header: Option<&str>, etag: &str) -> bool {
    header.is_none_or(|v| v.trim() == etag)
}

/// Streams a blob with ETag, If-None-Match, single Range (with If-Range) and
/// Content-Disposition.
pub async fn serve_blob(
    req: &HttpRequest,
    store: Store,
    org: String,
    blob: ObjectId,
    mime: &str,
    filename: &str,
) -> Result<HttpResponse> {
    let reader = Arc::new(blocking(move || store.blob_reader(&org, blob)).await?);
    let size = reader.meta.size;
    let etag = format!("\"{}\"", reader.meta.sha256);
    let inm = req
        .headers()
        .get("If-None-Match")
        .and_then(|v| v.to_str().ok());
    if inm.is_some_and(|v| none_match_hits(v, &etag)) {
        return Ok(HttpResponse::NotModified()
            .insert_header(("ETag", etag))
            .finish());
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    // an If-Range that is not text is a validator that does not match
    let if_range = req
        .headers()
        .get("If-Range")
        .map(|v| v.to_str().unwrap_or_default());
    let range = if if_range_holds(if_range, &etag) {
        parse_range(header("Range"), size)
    } else {
        RangeReq::Full
    };
    let (status, start, end) = match range {
        RangeReq::Full => (StatusCode::OK, 0, size),
        RangeReq::Part(s, e) => (StatusCode::PARTIAL_CONTENT, s, e),
        RangeReq::Unsatisfiable => {
            let mut f = Fault::new(
                Category::InvalidArgument,
                "range",
                "The requested range is not satisfiable",
            )
            .at("Range");
            f.status = 416;
            let mut r = actix_web::ResponseError::error_response(&f);
            r.headers_mut().insert(
                actix_web::http::header::CONTENT_RANGE,
                actix_web::http::header::HeaderValue::from_str(&format!("bytes */{size}")).unwrap(),
            );
            return Ok(r);
        }
    };
    let seg = crate::crypto::SEGMENT_LEN as u64;
    let first = (start / seg) as u32;
    let last = if end == 0 {
        0
    } else {
        ((end - 1) / seg) as u32
    };
    // the first segment is read before the headers go out, so a damaged blob is a fault
    let r1 = reader.clone();
    let head = if end > start {
        blocking(move || r1.segment_slice(first, start, end)).await?
    } else {
        Vec::new()
    };
    let rest = futures_util::stream::iter((first + 1)..=last)
        .filter(move |_| std::future::ready(end > start))
        .then(move |i| {
            let r = reader.clone();
            async move {
                blocking(move || r.segment_slice(i, start, end))
                    .await
                    .map(bytes::Bytes::from)
                    .map_err(actix_web::Error::from)
            }
        });
    let body = futures_util::stream::once(std::future::ready(Ok::<_, actix_web::Error>(
        bytes::Bytes::from(head),
    )))
    .chain(rest);
    let mut resp = HttpResponse::build(status);
    resp.insert_header(("Content-Type", mime))
        .insert_header(("ETag", etag))
        .insert_header(("Accept-Ranges", "bytes"))
        .insert_header(("Content-Disposition", content_disposition(filename)))
        .no_chunking(end - start);
    if status == StatusCode::PARTIAL_CONTENT {
        resp.insert_header((
            "Content-Range",
            format!("bytes {}-{}/{}", start, end - 1, size),
        ));
    }
    Ok(resp.streaming(body))
}
