//! Generated hostile inputs against the real app: export create bodies, `where` strings, NDJSON
//! bulk lines and request headers (Range, If-None-Match, Content-Type, Authorization, Cookie).
//!
//! Every answer must be 2xx, 304 or 4xx — never 5xx — and every 4xx must be a fault as SPEC §1
//! defines it (`object: "fault"`, `errCode: cortex.<category>.<detail>` with the category's
//! `code` and `status`, a `message`). Beyond that, each area checks what it can know for sure
//! (a `where` the document list accepts is accepted by export creation too and vice versa;
//! every NDJSON line is either inserted or reported at its index; garbage credentials never
//! grant anything; a well-formed Range gets exactly the bytes RFC 9110 says), and the server
//! still answers `/health` afterwards.
//!
//! Deterministic: a fixed seed per area (xorshift64*). `EXPORTD_FUZZ_CASES` sets the total
//! number of generated inputs (default 12,000, split 30/30/25/15 between bodies, where
//! strings, NDJSON lines and header sets); `EXPORTD_FUZZ_SEED` changes the seed. A failure
//! names the area, the case number and the seed, so it can be replayed.

mod common;

use actix_web::http::header::HeaderValue;
use actix_web::test::TestRequest;
use common::*;
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------------------------
// configuration and randomness
// ---------------------------------------------------------------------------------------------

fn total_cases() -> usize {
    std::env::var("EXPORTD_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12_000)
}

/// The cases of one area: `percent` of the total.
fn share(percent: usize) -> usize {
    (total_cases() * percent).div_ceil(100)
}

fn seed(area: u64) -> u64 {
    let base = std::env::var("EXPORTD_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_e4b0_27d0_u64);
    base ^ area.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// xorshift64*: small, fast and the same everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// generators
// ---------------------------------------------------------------------------------------------

const NASTY_STRINGS: &[&str] = &[
    "",
    " ",
    "a",
    "null",
    "true",
    "0",
    "-1",
    "1e400",
    "NaN",
    "$where",
    "$regex",
    "{}",
    "[]",
    "{\"$gt\":1}",
    "../../etc/passwd",
    "/abs/path",
    "a\\b",
    "C:\\x",
    "\u{0}",
    "a\u{0}b",
    "\u{7}\u{8}\u{1b}[31m",
    "line\nbreak",
    "cr\rlf\r\n",
    "tab\there",
    "\u{feff}bom",
    "\u{202e}rtl",
    "e\u{301}",
    "\u{ff0e}\u{ff0e}/",
    "𝕏𝕐ℤ",
    "😀👍🏽",
    "日本語",
    "\u{fffd}",
    "\"quoted\"",
    "'single'",
    "<script>alert(1)</script>",
    "2026-11-29T12:00:00.000Z",
    "2026-13-45",
    "+275760-09-13T00:00:00.000Z",
    "0123456789abcdef01234567",
    "ffffffffffffffffffffffff",
    "c_name",
    "c_doc.c_x",
    "c_rows._id",
    "c_ref._id",
    "c_rows.0.c_k",
    "c_nope",
    "_id",
    "created",
    "/a/i",
    "/(a+)+$/",
    "/[/",
    "/x/q",
    "=1+2",
    "@SUM(A1)",
];

fn rand_char(r: &mut Rng) -> char {
    match r.below(6) {
        0 => char::from(r.range(0x20, 0x7e) as u8),
        1 => char::from(r.below(0x20) as u8),
        2 => char::from_u32(r.range(0x80, 0x7ff) as u32).unwrap_or('x'),
        3 => char::from_u32(r.range(0x800, 0xd7ff) as u32).unwrap_or('x'),
        4 => char::from_u32(r.range(0x1_0000, 0x10_ffff) as u32).unwrap_or('x'),
        _ => *r.pick(&['.', '/', '\\', '$', '"', '\'', '{', '[', ':', ',', '\0']),
    }
}

fn rand_string(r: &mut Rng) -> String {
    match r.below(10) {
        0..=3 => r.pick(NASTY_STRINGS).to_string(),
        4..=6 => (0..r.range(1, 24)).map(|_| rand_char(r)).collect(),
        7 => "a".repeat(r.range(90, 300)),
        8 => rand_char(r).to_string().repeat(r.range(1_000, 20_000)),
        _ => {
            // a long run of mixed text
            (0..r.range(200, 3_000)).map(|_| rand_char(r)).collect()
        }
    }
}

fn rand_number(r: &mut Rng) -> Value {
    match r.below(12) {
        0 => json!(0),
        1 => json!(-1),
        2 => json!(i64::MIN),
        3 => json!(u64::MAX),
        4 => json!(9_007_199_254_740_993u64),
        5 => json!(1e308),
        6 => json!(-1e308),
        7 => json!(5e-324),
        8 => json!(-0.0),
        9 => json!(0.1),
        10 => json!(r.next() as i64),
        _ => json!(r.range(0, 100)),
    }
}

/// A random JSON value, nested at most `depth` more levels.
fn rand_value(r: &mut Rng, depth: usize) -> Value {
    let pick = if depth == 0 { r.below(5) } else { r.below(8) };
    match pick {
        0 => Value::Null,
        1 => Value::Bool(r.chance(50)),
        2 => rand_number(r),
        3 | 4 => Value::String(rand_string(r)),
        5 => Value::Array(
            (0..r.range(0, 4))
                .map(|_| rand_value(r, depth - 1))
                .collect(),
        ),
        6 => {
            let mut m = Map::new();
            for _ in 0..r.range(0, 4) {
                m.insert(rand_string(r), rand_value(r, depth - 1));
            }
            Value::Object(m)
        }
        _ => deep_value(r.range(2, 40)),
    }
}

/// Arrays and objects nested `n` deep (JSON parsers stop at 128: both sides are covered).
fn deep_value(n: usize) -> Value {
    let mut v = json!(1);
    for i in 0..n {
        v = if i % 2 == 0 {
            json!([v])
        } else {
            json!({ "k": v })
        };
    }
    v
}

/// Mutates a string a character at a time.
fn mutate_string(r: &mut Rng, s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    for _ in 0..r.range(1, 4) {
        match r.below(6) {
            0 if !chars.is_empty() => {
                let i = r.below(chars.len());
                chars.remove(i);
            }
            1 => {
                let i = r.below(chars.len() + 1);
                chars.insert(i, rand_char(r));
            }
            2 if !chars.is_empty() => {
                let i = r.below(chars.len());
                chars[i] = rand_char(r);
            }
            3 => chars.truncate(r.below(chars.len() + 1)),
            4 if !chars.is_empty() => {
                let i = r.below(chars.len());
                let seg: Vec<char> = chars[i..].to_vec();
                chars.extend(seg);
            }
            _ => chars.extend(rand_string(r).chars()),
        }
    }
    chars.into_iter().collect()
}

/// Mutates serialized text a byte at a time (the result need not be UTF-8 or JSON).
fn mutate_bytes(r: &mut Rng, text: &[u8]) -> Vec<u8> {
    let mut b = text.to_vec();
    for _ in 0..r.range(1, 4) {
        match r.below(8) {
            0 if !b.is_empty() => {
                let i = r.below(b.len());
                b[i] ^= 1 << r.below(8);
            }
            1 => {
                let i = r.below(b.len() + 1);
                b.insert(i, r.next() as u8);
            }
            2 if !b.is_empty() => {
                let i = r.below(b.len());
                let n = r.range(1, 8).min(b.len() - i);
                b.drain(i..i + n);
            }
            3 => b.truncate(r.below(b.len() + 1)),
            4 => {
                let i = r.below(b.len() + 1);
                let tok = r.pick(&[
                    "1e400",
                    "-1e400",
                    "123456789012345678901234567890",
                    "0.0000000000000000000000000001",
                    "-0",
                    "NaN",
                    "Infinity",
                    "\"\\ud800\"",
                    "\"\\u0000\"",
                    "[[[[[[[[",
                    "}}}}",
                    ",,",
                    "\u{0}",
                ]);
                b.splice(i..i, tok.bytes());
            }
            5 => {
                // deep nesting, past any parser's limit
                let n = r.range(100, 5_000);
                let open = if r.chance(50) { "[" } else { "{\"a\":" };
                let mut v = open.repeat(n).into_bytes();
                v.extend(b.iter());
                b = v;
            }
            6 => {
                let n = r.range(1, 16);
                b.extend(r.bytes(n));
            }
            _ if !b.is_empty() => {
                let i = r.below(b.len());
                b[i] = *r.pick(b"{}[]\",:\\ ");
            }
            _ => {}
        }
    }
    b
}

/// Percent-encodes every byte that is not unreserved.
fn pct(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

fn clip(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    if s.chars().count() > 600 {
        format!(
            "{}… ({} bytes)",
            s.chars().take(600).collect::<String>(),
            b.len()
        )
    } else {
        s.into_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// the checks every answer gets
// ---------------------------------------------------------------------------------------------

/// The category table of SPEC §1 (plus `accepted`, 202, used by dataFile).
fn category_status(cat: &str) -> Option<(&'static str, u16)> {
    Some(match cat {
        "invalidArgument" => ("kInvalidArgument", 400),
        "validation" => ("kValidationError", 400),
        "accessDenied" => ("kAccessDenied", 403),
        "unauthorized" => ("kUnauthorized", 401),
        "notFound" => ("kNotFound", 404),
        "exists" => ("kExists", 409),
        "conflict" => ("kConflict", 409),
        "tooLarge" => ("kRequestTooLarge", 413),
        "throttled" => ("kThrottled", 429),
        "expired" => ("kExpired", 410),
        "error" => ("kError", 500),
        "unsupportedOperation" => ("kUnsupportedOperation", 400),
        "accepted" => ("kAccepted", 202),
        _ => return None,
    })
}

/// Why `v` is not a well-formed fault with HTTP status `status`, if it is not.
fn fault_problem(v: &Value, status: u16, top: bool) -> Option<String> {
    if v["object"] != "fault" {
        return Some("object is not \"fault\"".into());
    }
    let Some(err) = v["errCode"].as_str() else {
        return Some("no errCode".into());
    };
    let parts: Vec<&str> = err.split('.').collect();
    if parts.len() != 3 || parts[0] != "cortex" || parts[2].is_empty() {
        return Some(format!("errCode {err} is not cortex.<category>.<detail>"));
    }
    let Some((code, cat_status)) = category_status(parts[1]) else {
        return Some(format!("unknown category in {err}"));
    };
    if v["code"] != code {
        return Some(format!("code {} for {err}", v["code"]));
    }
    if !v["message"].is_string() {
        return Some("no message".into());
    }
    // an unsatisfiable Range is the one fault whose HTTP status is not its category's
    let expected_status = if err == "cortex.invalidArgument.range" {
        416
    } else {
        cat_status
    };
    if v["status"] != expected_status {
        return Some(format!("status {} for {err}", v["status"]));
    }
    if top && status != expected_status {
        return Some(format!("HTTP {status} for {err}"));
    }
    if let Some(subs) = v.get("faults") {
        let Some(subs) = subs.as_array() else {
            return Some("faults is not an array".into());
        };
        for s in subs {
            if let Some(p) = fault_problem(s, 0, false) {
                return Some(format!("sub-fault: {p}"));
            }
        }
    }
    None
}

struct Answer {
    status: u16,
    headers: actix_web::http::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }
}

async fn send<S: TestService>(svc: &S, req: TestRequest) -> Answer {
    match svc.call(req.to_request()).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = actix_web::test::read_body(resp).await.to_vec();
            Answer {
                status,
                headers,
                body,
            }
        }
        Err(e) => {
            let r = e.error_response();
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            let body = actix_web::body::to_bytes(r.into_body())
                .await
                .map(|b| b.to_vec())
                .unwrap_or_default();
            Answer {
                status,
                headers,
                body,
            }
        }
    }
}

/// The rules for every answer: never 5xx; every 4xx is a well-formed fault.
fn check(a: &Answer, what: &dyn Fn() -> String) {
    assert!(
        a.status < 500,
        "5xx: {}\n→ {} {}",
        what(),
        a.status,
        clip(&a.body)
    );
    assert!(
        (200..300).contains(&a.status) || a.status == 304 || (400..500).contains(&a.status),
        "unexpected status: {}\n→ {} {}",
        what(),
        a.status,
        clip(&a.body)
    );
    if a.status >= 400 {
        let v = a.json();
        if let Some(p) = fault_problem(&v, a.status, true) {
            panic!(
                "not a fault ({p}): {}\n→ {} {}",
                what(),
                a.status,
                clip(&a.body)
            );
        }
    }
}

/// Answers by status, printed at the end of an area (`--nocapture` shows them).
#[derive(Default)]
struct Tally(std::collections::BTreeMap<u16, usize>);

impl Tally {
    fn add(&mut self, status: u16) {
        *self.0.entry(status).or_default() += 1;
    }
    fn print(&self, area: &str, cases: usize) {
        eprintln!("{area}: {cases} cases, answers by status {:?}", self.0);
    }
}

async fn assert_healthy<S: TestService>(svc: &S) {
    let (s, v) = call(svc, "GET", "/health", None, None).await;
    assert_eq!(s, 200, "health after fuzzing: {v}");
    assert_eq!(v["status"], "ok");
}

// ---------------------------------------------------------------------------------------------
// the fixture
// ---------------------------------------------------------------------------------------------

struct Fx {
    /// Administrator of `fz`, an org at its storage limit: exports are validated in full and
    /// then refused (403), so thousands of creates queue nothing.
    tok: String,
    /// Administrator of `live`, without a limit: a sample of the generated exports runs.
    live: String,
    user_id: String,
    items: Vec<String>,
    row_id: String,
    /// A document of fz with a file, its bytes, and a ready export of fz with its archive.
    file_doc: String,
    file: Vec<u8>,
    ready: String,
    archive: Vec<u8>,
    live_doc: String,
}

fn item_def() -> Value {
    json!({"name": "c_item", "properties": [
        {"name": "c_name", "type": "String", "indexed": true},
        {"name": "c_n", "type": "Number"},
        {"name": "c_b", "type": "Boolean"},
        {"name": "c_d", "type": "Date"},
        {"name": "c_oid", "type": "ObjectId"},
        {"name": "c_tags", "type": "String", "array": true},
        {"name": "c_doc", "type": "Document", "properties": [
            {"name": "c_x", "type": "String"}, {"name": "c_y", "type": "Number"}]},
        {"name": "c_rows", "type": "Document", "array": true, "properties": [
            {"name": "c_v", "type": "String"}, {"name": "c_k", "type": "Number"}]},
        {"name": "c_ref", "type": "Reference", "sourceObject": "c_target"},
        {"name": "c_any", "type": "Any"},
        {"name": "c_file", "type": "File"},
        {"name": "c_note", "type": "String", "optional": true}]})
}

fn bulk_def() -> Value {
    json!({"name": "c_bulk", "properties": [
        {"name": "c_name", "type": "String", "required": true},
        {"name": "c_n", "type": "Number"},
        {"name": "c_d", "type": "Date"},
        {"name": "c_tags", "type": "String", "array": true},
        {"name": "c_doc", "type": "Document", "properties": [{"name": "c_x", "type": "String"}]},
        {"name": "c_rows", "type": "Document", "array": true, "properties": [{"name": "c_k", "type": "Number"}]},
        {"name": "c_ref", "type": "Reference", "sourceObject": "c_target"},
        {"name": "c_any", "type": "Any"}]})
}

async fn put_file<S: TestService>(svc: &S, tok: &str, path: &str, bytes: &[u8]) {
    let a = send(
        svc,
        TestRequest::put()
            .uri(path)
            .insert_header(("Authorization", format!("Bearer {tok}")))
            .insert_header(("Content-Type", "application/octet-stream"))
            .set_payload(bytes.to_vec()),
    )
    .await;
    assert_eq!(a.status, 201, "{path}: {}", clip(&a.body));
}

async fn fixture<S: TestService>(svc: &S) -> Fx {
    let tok = org_with_admin(svc, "fz").await;
    let live = org_with_admin(svc, "live").await;
    let user = call_expect(
        svc,
        "POST",
        "/fz/v2/accounts",
        &tok,
        Some(json!({"email": "u@fz.test", "roles": ["user"]})),
        201,
    )
    .await;
    let user_id = user["_id"].as_str().unwrap().to_string();
    for (org, t) in [("fz", &tok), ("live", &live)] {
        for def in [
            json!({"name": "c_target", "properties": [{"name": "c_name", "type": "String"}]}),
            item_def(),
            bulk_def(),
        ] {
            call_expect(
                svc,
                "POST",
                &format!("/{org}/v2/objects"),
                t,
                Some(def),
                201,
            )
            .await;
        }
    }
    let target = call_expect(
        svc,
        "POST",
        "/fz/v2/c_targets",
        &tok,
        Some(json!({"c_name": "t"})),
        201,
    )
    .await;
    let target = target["_id"].as_str().unwrap().to_string();
    let mut items = Vec::new();
    for i in 0..40 {
        let doc = json!({
            "c_name": format!("item {i}"), "c_n": i, "c_b": i % 2 == 0,
            "c_d": format!("2026-01-{:02}", i % 28 + 1), "c_oid": "0123456789abcdef01234567",
            "c_tags": if i % 3 == 0 { json!(["red", "blue"]) } else { json!(["green"]) },
            "c_doc": {"c_x": format!("x{i}"), "c_y": -i},
            "c_rows": [{"c_v": "a", "c_k": i}, {"c_v": "=b", "c_k": i + 1}],
            "c_ref": target, "c_any": {"deep": [1, {"x": i}]}, "c_note": "n"});
        let v = call_expect(svc, "POST", "/fz/v2/c_items", &tok, Some(doc.clone()), 201).await;
        items.push(v["_id"].as_str().unwrap().to_string());
        if i < 10 {
            let mut d = doc;
            d.as_object_mut().unwrap().remove("c_ref");
            call_expect(svc, "POST", "/live/v2/c_items", &live, Some(d), 201).await;
        }
    }
    let first = call_expect(
        svc,
        "GET",
        &format!("/fz/v2/c_items/{}", items[0]),
        &tok,
        None,
        200,
    )
    .await;
    let row_id = first["c_rows"][0]["_id"].as_str().unwrap().to_string();
    // a file that spans three encrypted segments
    let file: Vec<u8> = (0..140_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let file_doc = items[1].clone();
    put_file(
        svc,
        &tok,
        &format!("/fz/v2/c_items/{file_doc}/c_file/content"),
        &file,
    )
    .await;
    let ready = call_expect(
        svc,
        "POST",
        "/fz/v2/exports",
        &tok,
        Some(json!({"label": "ready", "objects": "c_items", "format": "text/csv"})),
        201,
    )
    .await;
    let ready = ready["_id"].as_str().unwrap().to_string();
    let v = wait_ready(svc, &tok, "fz", &ready).await;
    assert_eq!(v["state"], "ready", "{v}");
    let (s, archive) = get_bytes(
        svc,
        &tok,
        &format!("/fz/v2/exports/{ready}/dataFile/content"),
    )
    .await;
    assert_eq!(s, 200);
    // fz is now at its limit: creates are validated, then refused
    call_expect(
        svc,
        "PATCH",
        "/sys/orgs/fz",
        SYS,
        Some(json!({"storageLimit": 0})),
        200,
    )
    .await;
    let live_doc = call_expect(
        svc,
        "POST",
        "/live/v2/c_items",
        &live,
        Some(json!({"c_name": "files here"})),
        201,
    )
    .await;
    Fx {
        tok,
        live,
        user_id,
        row_id,
        items,
        file_doc,
        file,
        ready,
        archive,
        live_doc: live_doc["_id"].as_str().unwrap().to_string(),
    }
}

/// An app whose afterScripts (should a generated one pass validation) run in the real hook
/// binary, never in this test binary.
async fn fuzz_app() -> TestApp<impl TestService> {
    app_with(|c| {
        c.hook.exe = env!("CARGO_BIN_EXE_exportd").into();
        c.hook.timeout = std::time::Duration::from_secs(2);
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// where strings
// ---------------------------------------------------------------------------------------------

fn valid_wheres(fx: &Fx) -> Vec<Value> {
    let id = &fx.items[3];
    vec![
        json!({"c_n": 3}),
        json!({"c_n": {"$gte": 1, "$lt": 40}}),
        json!({"c_name": {"$regex": "/^item 1/i"}}),
        json!({"c_tags": "red"}),
        json!({"c_tags": {"$all": ["red", "blue"]}}),
        json!({"c_tags": {"$size": 2}}),
        json!({"$or": [{"c_n": 1}, {"c_b": true}]}),
        json!({"$and": [{"c_d": {"$gt": "2026-01-05"}}, {"c_oid": {"$exists": true}}]}),
        json!({"c_rows": {"$elemMatch": {"c_k": {"$gt": 2}, "c_v": "a"}}}),
        json!({"c_doc.c_x": "x1"}),
        json!({"c_doc.c_y": {"$lte": -3}}),
        json!({"c_ref": {"$ne": null}}),
        json!({"c_ref._id": {"$in": [id]}}),
        json!({"_id": {"$lt": "ffffffffffffffffffffffff"}}),
        json!({"_id": id}),
        json!({"created": {"$gte": "2000-01-01T00:00:00.000Z"}}),
        json!({"owner": {"$exists": true}}),
        json!({"c_any": {"$type": "object"}}),
        json!({"c_name": {"$in": [{"$regex": "/1$/"}, "item 2"]}}),
        json!({"c_n": {"$nin": [1, 2, 3]}}),
        json!({"c_name": null}),
        json!({"c_rows._id": fx.row_id}),
        json!({"c_tags": {"$all": [{"$elemMatch": {"$eq": "red"}}]}}),
        json!({"c_file": null}),
        json!({"c_b": "true"}),
        json!({"c_n": "7"}),
        json!({"updated": {"$exists": false}}),
    ]
}

const OPS: &[&str] = &[
    "$eq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$exists",
    "$regex",
    "$size",
    "$all",
    "$elemMatch",
    "$type",
    "$and",
    "$or",
    "$not",
    "$where",
    "$expr",
    "$foo",
    "$",
    "",
];

const FIELDS: &[&str] = &[
    "c_name",
    "c_n",
    "c_b",
    "c_d",
    "c_oid",
    "c_tags",
    "c_doc",
    "c_doc.c_x",
    "c_doc.c_y",
    "c_rows",
    "c_rows.c_k",
    "c_rows._id",
    "c_ref",
    "c_ref._id",
    "c_ref.c_name",
    "c_any",
    "c_any.deep",
    "c_file",
    "c_note",
    "_id",
    "created",
    "updated",
    "creator",
    "owner._id",
    "object",
    "c_rows.0.c_k",
    "c_nope",
    "c_doc..c_x",
    ".c_n",
];

/// Every node of a JSON tree, as a path of steps, so one can be replaced.
fn nodes(v: &Value, at: Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for k in m.keys() {
                let mut p = at.clone();
                p.push(Step::Key(k.clone()));
                nodes(&m[k], p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let mut p = at.clone();
                p.push(Step::Index(i));
                nodes(x, p, out);
            }
        }
        _ => {}
    }
}

#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn node_mut<'a>(v: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(v, |v, s| match s {
        Step::Key(k) => &mut v[k.as_str()],
        Step::Index(i) => &mut v[*i],
    })
}

/// A JSON-level mutation of a query: a node replaced, a key renamed, a branch wrapped.
fn mutate_query(r: &mut Rng, q: &mut Value) {
    let mut all = Vec::new();
    nodes(q, Vec::new(), &mut all);
    let target = r.pick(&all).clone();
    let node = node_mut(q, &target);
    match r.below(7) {
        0 => *node = rand_value(r, 3),
        1 => {
            if let Value::Object(m) = node
                && let Some(k) = m.keys().nth(r.below(m.len().max(1))).cloned()
            {
                let v = m.remove(&k).unwrap();
                let new = if r.chance(50) {
                    r.pick(OPS).to_string()
                } else {
                    r.pick(FIELDS).to_string()
                };
                m.insert(new, v);
            } else {
                *node = json!({ *r.pick(FIELDS): rand_value(r, 2) });
            }
        }
        2 => {
            let inner = node.take();
            *node = match r.below(4) {
                0 => json!({"$and": [inner]}),
                1 => json!({"$or": [inner.clone(), inner]}),
                2 => json!({"c_rows": {"$elemMatch": inner}}),
                _ => json!({ *r.pick(FIELDS): { *r.pick(OPS): inner } }),
            };
        }
        3 => {
            let op = r.pick(OPS).to_string();
            *node = json!({ *r.pick(FIELDS): { op: rand_value(r, 2) } });
        }
        4 => {
            // a query nested past the depth limit
            let mut inner = node.take();
            for _ in 0..r.range(6, 14) {
                inner = if r.chance(50) {
                    json!({"$and": [inner]})
                } else {
                    json!({"$or": [inner]})
                };
            }
            *node = inner;
        }
        5 => {
            if let Value::Object(m) = node {
                m.insert(r.pick(FIELDS).to_string(), rand_value(r, 2));
            }
        }
        _ => {
            let n = *r.pick(&[0usize, 1, 101, 200]);
            *node = json!({ *r.pick(&["$and", "$or"]): vec![json!({"c_n": 1}); n] });
        }
    }
}

/// One generated `where`: bytes (not always UTF-8).
fn gen_where(r: &mut Rng, fx: &Fx) -> Vec<u8> {
    let valid = valid_wheres(fx);
    let mut q = r.pick(&valid).clone();
    match r.below(10) {
        0 => q.to_string().into_bytes(),
        1..=4 => {
            for _ in 0..r.range(1, 3) {
                mutate_query(r, &mut q);
            }
            q.to_string().into_bytes()
        }
        5 | 6 => mutate_bytes(r, q.to_string().as_bytes()),
        7 => {
            let n = r.range(0, 1100);
            r.bytes(n)
        }
        8 => {
            // deep nesting as text, within and past the 1024-character limit
            let n = r.range(2, 300);
            let mut s = "{\"$and\":[".repeat(n);
            s.push_str("{\"c_n\":1}");
            s.push_str(&"]}".repeat(n));
            s.into_bytes()
        }
        _ => rand_string(r).into_bytes(),
    }
}

#[actix_web::test]
async fn where_strings() {
    let app = fuzz_app().await;
    let fx = fixture(&app.svc).await;
    let seed = seed(2);
    let mut r = Rng::new(seed);
    let cases = share(30);
    let (mut accepted, mut refused) = (0, 0);
    let mut tally = Tally::default();
    for case in 0..cases {
        let w = gen_where(&mut r, &fx);
        let what = |route: &str| format!("where case {case} (seed {seed}) {route}: {}", clip(&w));
        // the document list (a URI has at most 64 KiB: longer ones never reach a server)
        let mut uri = format!("/fz/v2/c_items?limit=5&where={}", pct(&w));
        if uri.len() > 60_000 {
            uri = format!("/fz/v2/c_items?limit=5&where={}", pct(&w[..16_000]));
        }
        if r.chance(20) {
            uri.push_str(&format!(
                "&sort={}",
                pct(json!({ *r.pick(FIELDS): *r.pick(&[1, -1, 0, 2]) })
                    .to_string()
                    .as_bytes())
            ));
        }
        let list = send(
            &app.svc,
            TestRequest::get()
                .uri(&uri)
                .insert_header(("Authorization", format!("Bearer {}", fx.tok))),
        )
        .await;
        check(&list, &|| what("GET list"));
        tally.add(list.status);
        assert!(
            matches!(list.status, 200 | 400),
            "{} → {}",
            what("GET list"),
            list.status
        );
        if list.status == 400 {
            let e = list.json()["errCode"].clone();
            assert!(
                e == "cortex.invalidArgument.query" || e == "cortex.invalidArgument.sort",
                "{} → {e}",
                what("GET list")
            );
        }
        // the export list's own filter (state, label)
        if case % 10 == 0 {
            let a = send(
                &app.svc,
                TestRequest::get()
                    .uri(&format!(
                        "/fz/v2/exports?where={}",
                        pct(&w[..w.len().min(16_000)])
                    ))
                    .insert_header(("Authorization", format!("Bearer {}", fx.tok))),
            )
            .await;
            check(&a, &|| what("GET exports"));
        }
        // export creation parses the same string with the same engine
        let Ok(ws) = std::str::from_utf8(&w) else {
            continue;
        };
        if uri.contains("&sort=") || w.len() > 16_000 {
            continue; // the list may have refused the sort, not the where; or saw a part
        }
        let body = json!({"label": "w", "objects": "c_items", "where": ws});
        let (s, v) = call(
            &app.svc,
            "POST",
            "/fz/v2/exports",
            Some(&fx.tok),
            Some(body),
        )
        .await;
        let a = Answer {
            status: s,
            headers: Default::default(),
            body: v.to_string().into_bytes(),
        };
        check(&a, &|| what("POST export"));
        if list.status == 200 {
            accepted += 1;
            // valid: refused only because fz is at its storage limit
            assert_eq!(
                v["errCode"],
                "cortex.accessDenied.storageLimitExceeded",
                "{}: the list accepted it, export creation said {s} {v}",
                what("POST export")
            );
        } else {
            refused += 1;
            assert_eq!(s, 400, "{}: the list refused it: {v}", what("POST export"));
            assert!(
                sub_paths(&v).iter().any(|p| p.starts_with("where")),
                "{}: the list refused it, export creation did not blame where: {v}",
                what("POST export")
            );
        }
    }
    tally.print("where (document list)", cases);
    eprintln!("where: {accepted} accepted by both, {refused} refused by both");
    // the generator reaches both sides
    assert!(accepted > cases / 50, "accepted {accepted} of {cases}");
    assert!(refused > cases / 5, "refused {refused} of {cases}");
    assert_healthy(&app.svc).await;
}

// ---------------------------------------------------------------------------------------------
// export create bodies
// ---------------------------------------------------------------------------------------------

const BODY_FIELDS: &[&str] = &[
    "label",
    "description",
    "objects",
    "format",
    "exportFiles",
    "zipFiles",
    "paths",
    "include",
    "expand",
    "where",
    "afterScript",
    "principal",
    "prefix",
    "csvEscapeFormulas",
    "_id",
    "state",
    "dataFile",
    "created",
    "creator",
    "unknownField",
    "",
    "__proto__",
    "constructor",
];

fn valid_bodies(fx: &Fx) -> Vec<Value> {
    vec![
        json!({"label": "a", "objects": "c_items"}),
        json!({"label": "csv", "objects": "c_items", "format": "text/csv", "paths": ["c_name", "c_n", "c_doc.c_x"], "csvEscapeFormulas": true}),
        json!({"label": "json", "objects": "c_item", "format": "application/json", "include": ["c_note"], "expand": ["c_ref"]}),
        json!({"label": "w", "objects": "c_items", "where": "{\"c_n\":{\"$gte\":3}}", "description": "d"}),
        json!({"label": "files", "objects": "c_items", "exportFiles": true, "zipFiles": true}),
        json!({"label": "side", "objects": "c_items", "exportFiles": true, "format": "application/x-ndjson"}),
        json!({"label": "prefix", "objects": "c_items", "prefix": format!("{}/c_rows", fx.items[0])}),
        json!({"label": "script", "objects": "c_items", "afterScript": "console.log(script.arguments.export.label)"}),
        json!({"label": "principal", "objects": "c_items", "principal": fx.user_id}),
        json!({"label": "ref", "objects": "c_items", "paths": ["c_ref.c_name", "c_rows.c_k"]}),
    ]
}

fn mutate_body(r: &mut Rng, body: &mut Value) {
    if !body.is_object() {
        // an earlier mutation replaced the whole body: mutate that, or start a new object
        if r.chance(50) {
            *body = rand_value(r, 3);
        } else {
            *body = json!({});
        }
        return;
    }
    match r.below(9) {
        0 | 1 => {
            let f = r.pick(BODY_FIELDS).to_string();
            body[f.as_str()] = rand_value(r, 3);
        }
        2 => {
            if let Value::Object(m) = body
                && !m.is_empty()
            {
                let k = m.keys().nth(r.below(m.len())).unwrap().clone();
                m.remove(&k);
            }
        }
        3 => {
            if let Value::Object(m) = body
                && !m.is_empty()
            {
                let k = m.keys().nth(r.below(m.len())).unwrap().clone();
                if let Some(Value::String(s)) = m.get(&k) {
                    let s = mutate_string(r, s);
                    m.insert(k, Value::String(s));
                }
            }
        }
        4 => {
            let f = *r.pick(&["paths", "include", "expand"]);
            let n = *r.pick(&[0usize, 1, 3, 100, 101]);
            let items: Vec<Value> = (0..n)
                .map(|_| {
                    if r.chance(60) {
                        json!(*r.pick(FIELDS))
                    } else {
                        Value::String(rand_string(r))
                    }
                })
                .collect();
            body[f] = Value::Array(items);
        }
        5 => {
            body["where"] = Value::String(String::from_utf8_lossy(&gen_where_plain(r)).into());
        }
        6 => {
            body["afterScript"] = Value::String(gen_script(r));
        }
        7 => *body = rand_value(r, 3),
        _ => {
            body[rand_string(r).as_str()] = rand_value(r, 2);
        }
    }
}

/// A `where` mutation without the fixture (for bodies).
fn gen_where_plain(r: &mut Rng) -> Vec<u8> {
    let mut q = json!({"c_n": {"$gte": 3}, "c_tags": "red"});
    mutate_query(r, &mut q);
    if r.chance(30) {
        mutate_bytes(r, q.to_string().as_bytes())
    } else {
        q.to_string().into_bytes()
    }
}

/// Scripts that parse, scripts that do not, and scripts built to hurt a recursive parser.
fn gen_script(r: &mut Rng) -> String {
    let n = *r.pick(&[10usize, 1_000, 10_000, 50_000]);
    match r.below(12) {
        0 => "console.log(1)".into(),
        1 => "notify('http://example.invalid/', {a: 1})".into(),
        2 => mutate_string(r, "function f(a) { return a.b[0] + `x${a}`; } f({b: [1]});"),
        3 => "(".repeat(n),
        4 => "[".repeat(n),
        5 => "{".repeat(n),
        6 => format!("x = {}1{}", "(".repeat(n / 2), ")".repeat(n / 2)),
        7 => format!("x = {}1", "-".repeat(n)),
        8 => format!("x = {}1", "!".repeat(n)),
        9 => format!("{}0", "a => ".repeat(n / 5)),
        10 => format!("{}}}", "if (1) {".repeat(n / 8)),
        _ => (0..r.range(1, 400)).map(|_| rand_char(r)).collect(),
    }
}

#[actix_web::test]
async fn export_create_bodies() {
    let app = fuzz_app().await;
    let fx = fixture(&app.svc).await;
    let seed = seed(1);
    let mut r = Rng::new(seed);
    let cases = share(30);
    let valid = valid_bodies(&fx);
    let mut created_live = Vec::new();
    let mut validated = 0;
    let mut tally = Tally::default();
    for case in 0..cases {
        let mut body = r.pick(&valid).clone();
        let mutations = if case % 20 == 0 { 0 } else { r.range(1, 3) };
        for _ in 0..mutations {
            mutate_body(&mut r, &mut body);
        }
        let (text, as_is) = if r.chance(15) {
            (mutate_bytes(&mut r, body.to_string().as_bytes()), false)
        } else if r.chance(1) {
            // past the 1 MiB JSON limit
            let big = json!({"label": "big", "objects": "c_items", "description": "x".repeat(1 << 20), "b": body});
            (big.to_string().into_bytes(), false)
        } else {
            (body.to_string().into_bytes(), true)
        };
        let what = || format!("body case {case} (seed {seed}): {}", clip(&text));
        let a = send(
            &app.svc,
            TestRequest::post()
                .uri("/fz/v2/exports")
                .insert_header(("Authorization", format!("Bearer {}", fx.tok)))
                .insert_header(("Content-Type", "application/json"))
                .set_payload(text.clone()),
        )
        .await;
        check(&a, &what);
        tally.add(a.status);
        assert_ne!(a.status, 201, "{}: fz is at its limit", what());
        if a.json()["errCode"] == "cortex.accessDenied.storageLimitExceeded" {
            validated += 1;
        }
        if mutations == 0 && as_is {
            assert_eq!(
                a.json()["errCode"],
                "cortex.accessDenied.storageLimitExceeded",
                "{}: a valid body",
                what()
            );
        }
        // a sample runs for real in `live` (no afterScript: no child processes here)
        if case % 25 == 0 {
            let mut b = body.clone();
            if let Value::Object(m) = &mut b {
                m.remove("afterScript");
                m.remove("prefix");
                m.remove("principal");
            }
            let a = send(
                &app.svc,
                TestRequest::post()
                    .uri("/live/v2/exports")
                    .insert_header(("Authorization", format!("Bearer {}", fx.live)))
                    .insert_header(("Content-Type", "application/json"))
                    .set_payload(b.to_string()),
            )
            .await;
            check(&a, &|| format!("live {}", what()));
            if a.status == 201 {
                created_live.push(a.json()["_id"].as_str().unwrap().to_string());
            }
        }
    }
    tally.print("export bodies", cases);
    eprintln!(
        "export bodies: {validated} passed validation, {} ran in live",
        created_live.len()
    );
    assert!(validated > 0 && validated < cases, "validated {validated}");
    assert!(!created_live.is_empty());
    // every export that was accepted ends ready, or in error for a reason that is not ours
    for id in &created_live {
        let v = wait_ready(&app.svc, &fx.live, "live", id).await;
        assert!(
            v["state"] == "ready"
                || !v["fault"]["errCode"]
                    .as_str()
                    .unwrap_or("cortex.error")
                    .starts_with("cortex.error"),
            "export {id} failed inside: {v}"
        );
    }
    assert!(app.state.store.check_consistency().unwrap().is_empty());
    assert_healthy(&app.svc).await;
}

// ---------------------------------------------------------------------------------------------
// NDJSON bulk lines
// ---------------------------------------------------------------------------------------------

/// One line and whether it is certainly valid.
fn gen_line(r: &mut Rng, target: &str) -> (Vec<u8>, bool) {
    let mut doc = json!({
        "c_name": format!("n{}", r.below(1000)),
        "c_n": r.range(0, 1000),
        "c_d": "2026-11-29",
        "c_tags": ["a", "b"],
        "c_doc": {"c_x": "x"},
        "c_rows": [{"c_k": 1}, {"c_k": 2}],
        "c_ref": target,
        "c_any": {"k": [1, "two", null]},
    });
    match r.below(12) {
        0..=2 => (doc.to_string().into_bytes(), true),
        3 => (Vec::new(), false),
        4 => (b" \t ".to_vec(), false),
        5 => {
            // a big line, still within the 1 MiB line limit
            let n = if r.chance(15) {
                r.range(500_000, 900_000)
            } else {
                r.range(1_000, 60_000)
            };
            doc["c_any"] = json!("y".repeat(n));
            (doc.to_string().into_bytes(), true)
        }
        6 | 7 => {
            for _ in 0..r.range(1, 3) {
                let f = *r.pick(&[
                    "c_name", "c_n", "c_d", "c_tags", "c_doc", "c_rows", "c_ref", "c_any",
                    "c_nope", "_id", "owner", "created",
                ]);
                doc[f] = rand_value(r, 3);
            }
            (doc.to_string().into_bytes(), false)
        }
        8 | 9 => (mutate_bytes(r, doc.to_string().as_bytes()), false),
        10 => (rand_value(r, 4).to_string().into_bytes(), false),
        _ => {
            let n = r.range(1, 200);
            (r.bytes(n), false)
        }
    }
}

#[actix_web::test]
async fn ndjson_bulk_lines() {
    let app = fuzz_app().await;
    let fx = fixture(&app.svc).await;
    let target = call_expect(
        &app.svc,
        "GET",
        "/fz/v2/c_targets?limit=1",
        &fx.tok,
        None,
        200,
    )
    .await["data"][0]["_id"]
        .as_str()
        .unwrap()
        .to_string();
    let seed = seed(3);
    let mut r = Rng::new(seed);
    let lines_wanted = share(25);
    let (mut sent, mut request, mut inserted_total) = (0, 0, 0u64);
    let mut refused_total = 0u64;
    while sent < lines_wanted {
        let n = r.range(1, 40).min(lines_wanted - sent);
        let mut body = Vec::new();
        let mut valid_at = Vec::new();
        let mut blank = Vec::new();
        for i in 0..n {
            let (mut line, valid) = gen_line(&mut r, &target);
            // a line ends at \n: generated bytes may not hold one
            for b in line.iter_mut() {
                if *b == b'\n' {
                    *b = b' ';
                }
            }
            if valid {
                valid_at.push(i as u64);
            }
            let trimmed = line.strip_suffix(b"\r").unwrap_or(&line);
            if trimmed.iter().all(|b| b.is_ascii_whitespace()) {
                blank.push(i as u64);
            }
            if r.chance(10) {
                line.push(b'\r');
            }
            body.extend_from_slice(&line);
            if i + 1 < n || r.chance(50) {
                body.push(b'\n');
            }
        }
        sent += n;
        request += 1;
        let what = || {
            format!(
                "bulk request {request} (seed {seed}, {n} lines): {}",
                clip(&body)
            )
        };
        let a = send(
            &app.svc,
            TestRequest::post()
                .uri("/fz/v2/c_bulks")
                .insert_header(("Authorization", format!("Bearer {}", fx.tok)))
                .insert_header(("Content-Type", "application/x-ndjson"))
                .set_payload(body.clone()),
        )
        .await;
        check(&a, &what);
        assert_eq!(a.status, 200, "{}", what());
        let v = a.json();
        let d = &v["data"];
        let inserted = d["inserted"].as_u64().unwrap();
        let fault_count = d["faultCount"].as_u64().unwrap();
        assert_eq!(d["ids"].as_array().unwrap().len() as u64, inserted);
        // every non-blank line is either inserted or reported, once, at its index
        assert_eq!(
            inserted + fault_count,
            n as u64 - blank.len() as u64,
            "{}: {v}",
            what()
        );
        let mut seen = std::collections::HashSet::new();
        for f in d["faults"].as_array().unwrap() {
            assert!(fault_problem(f, 0, false).is_none(), "{}: {f}", what());
            let i = f["index"].as_u64().expect("a line index");
            assert!(i < n as u64 && !blank.contains(&i), "{}: {f}", what());
            assert!(seen.insert(i), "{}: index {i} twice", what());
            assert!(
                !valid_at.contains(&i),
                "{}: a valid line was refused: {f}",
                what()
            );
        }
        inserted_total += inserted;
        refused_total += fault_count;
    }
    eprintln!(
        "ndjson: {sent} lines in {request} requests: {inserted_total} inserted, {refused_total} refused"
    );
    assert!(inserted_total > 0 && refused_total > 0);
    // what was acknowledged is there
    let (_, v) = call(
        &app.svc,
        "GET",
        "/fz/v2/c_bulks?limit=1&total=true",
        Some(&fx.tok),
        None,
    )
    .await;
    assert_eq!(v["total"].as_u64(), Some(inserted_total), "{v}");
    assert!(app.state.store.check_consistency().unwrap().is_empty());
    assert_healthy(&app.svc).await;
}

// ---------------------------------------------------------------------------------------------
// request headers
// ---------------------------------------------------------------------------------------------

/// A Range header and, for the canonical forms, the answer RFC 9110 §14 requires:
/// Some(Some((start, end_exclusive))) → 206, Some(None) → 416, None → any of 200/206/416.
fn gen_range(r: &mut Rng, size: u64) -> (Vec<u8>, Option<Option<(u64, u64)>>) {
    let num = |r: &mut Rng| -> (String, u128) {
        let n: u128 = match r.below(8) {
            0 => 0,
            1 => size as u128 - 1,
            2 => size as u128,
            3 => size as u128 + 1,
            4 => u64::MAX as u128,
            5 => 99_999_999_999_999_999_999u128,
            6 => r.below(65_536 * 2 + 10) as u128,
            _ => r.below(size as usize) as u128,
        };
        (n.to_string(), n)
    };
    let sz = size as u128;
    match r.below(6) {
        0 => {
            let ((a, av), (b, bv)) = (num(r), num(r));
            let want = if bv < av {
                None // syntactically invalid: ignored (200) or refused (416)
            } else if av >= sz {
                Some(None)
            } else {
                Some(Some((av as u64, (bv.min(sz - 1) + 1) as u64)))
            };
            (format!("bytes={a}-{b}").into_bytes(), want)
        }
        1 => {
            let (a, av) = num(r);
            let want = if av >= sz {
                Some(None)
            } else {
                Some(Some((av as u64, size)))
            };
            (format!("bytes={a}-").into_bytes(), want)
        }
        2 => {
            let (n, nv) = num(r);
            let want = if nv == 0 {
                Some(None)
            } else {
                Some(Some(((sz - nv.min(sz)) as u64, size)))
            };
            (format!("bytes=-{n}").into_bytes(), want)
        }
        3 => {
            let s = *r.pick(&[
                "bytes=0-1,5-9",
                "bytes=",
                "bytes=-",
                "bytes=--1",
                "bytes=1-2-3",
                "bytes=a-b",
                "bytes=+5-9",
                "bytes= 5 - 9 ",
                "items=0-9",
                "BYTES=0-9",
                "bytes=0x10-0x20",
                "bytes=-0-",
                "bytes=1.5-2",
                "bytes=\u{0660}-\u{0661}",
            ]);
            (s.as_bytes().to_vec(), None)
        }
        4 => (mutate_bytes(r, b"bytes=100-200"), None),
        _ => {
            let n = r.range(0, 300);
            (r.bytes(n), None)
        }
    }
}

fn header_value(bytes: &[u8]) -> Option<HeaderValue> {
    HeaderValue::from_bytes(bytes).ok()
}

/// Range and If-None-Match against a file download and an archive download.
async fn range_case<S: TestService>(
    svc: &S,
    r: &mut Rng,
    fx: &Fx,
    case: usize,
    seed: u64,
) -> usize {
    let (path, content) = if r.chance(50) {
        (
            format!("/fz/v2/c_items/{}/c_file/content", fx.file_doc),
            &fx.file,
        )
    } else {
        (
            format!("/fz/v2/exports/{}/dataFile/content", fx.ready),
            &fx.archive,
        )
    };
    let size = content.len() as u64;
    let etag = format!(
        "\"{}\"",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(content))
    );
    let (range, want) = gen_range(r, size);
    let inm: Option<(Vec<u8>, bool)> = match r.below(8) {
        0 => Some((etag.clone().into_bytes(), true)),
        1 => Some((b"*".to_vec(), true)),
        2 => Some((format!("\"nope\", {etag}").into_bytes(), true)),
        3 => Some((format!("W/{etag}").into_bytes(), false)),
        4 => Some((etag.trim_matches('"').as_bytes().to_vec(), false)),
        5 => Some((mutate_bytes(r, etag.as_bytes()), false)),
        _ => None,
    };
    let mut req = TestRequest::get()
        .uri(&path)
        .insert_header(("Authorization", format!("Bearer {}", fx.tok)));
    let mut headers_sent = 0;
    let range_v = header_value(&range);
    if let Some(v) = range_v.clone() {
        req = req.insert_header(("Range", v));
        headers_sent += 1;
    }
    let mut inm_matches = None;
    if let Some((b, m)) = &inm
        && let Some(v) = header_value(b)
    {
        req = req.insert_header(("If-None-Match", v));
        inm_matches = Some(*m);
        headers_sent += 1;
    }
    let what = || {
        format!(
            "header case {case} (seed {seed}) GET {path} Range: {:?} If-None-Match: {:?}",
            String::from_utf8_lossy(&range),
            inm.as_ref()
                .map(|(b, _)| String::from_utf8_lossy(b).into_owned())
        )
    };
    let a = send(svc, req).await;
    check(&a, &what);
    if inm_matches == Some(true) {
        assert_eq!(a.status, 304, "{}", what());
        assert_eq!(a.header("etag"), etag, "{}", what());
        return headers_sent;
    }
    match a.status {
        200 => assert_eq!(a.body, *content, "{}: 200 with other bytes", what()),
        206 => {
            let cr = a.header("content-range");
            let (span, total) = cr
                .strip_prefix("bytes ")
                .and_then(|s| s.split_once('/'))
                .unwrap_or_else(|| panic!("{}: Content-Range {cr}", what()));
            assert_eq!(total, size.to_string(), "{}", what());
            let (s, e) = span.split_once('-').unwrap();
            let (s, e): (usize, usize) = (s.parse().unwrap(), e.parse().unwrap());
            assert!(s <= e && e < size as usize, "{}: {cr}", what());
            assert_eq!(a.body, content[s..=e], "{}: bytes of {cr}", what());
        }
        416 => assert_eq!(
            a.header("content-range"),
            format!("bytes */{size}"),
            "{}",
            what()
        ),
        304 => assert!(
            inm_matches.is_some(),
            "{}: 304 without If-None-Match",
            what()
        ),
        s => panic!("{}: status {s}", what()),
    }
    // a weak or unquoted validator may or may not match (weak comparison); nothing else may
    if a.status == 304 {
        return headers_sent;
    }
    if range_v.is_some()
        && let Some(want) = want
    {
        match want {
            Some((s, e)) => {
                let full = s == 0 && e == size;
                assert!(
                    a.status == 206 || full && a.status == 200,
                    "{}: expected 206 bytes {s}-{}, got {}",
                    what(),
                    e - 1,
                    a.status
                );
                if a.status == 206 {
                    assert_eq!(
                        a.header("content-range"),
                        format!("bytes {s}-{}/{size}", e - 1),
                        "{}",
                        what()
                    );
                }
            }
            None => assert_eq!(a.status, 416, "{}: expected 416", what()),
        }
    }
    headers_sent
}

/// Authorization and Cookie garbage: nothing but the real token or session gets in.
async fn credentials_case<S: TestService>(
    svc: &S,
    r: &mut Rng,
    fx: &Fx,
    session: &str,
    case: usize,
    seed: u64,
) -> usize {
    let tok = &fx.tok;
    let token: (String, bool) = match r.below(9) {
        0 => (tok.clone(), true),
        1 => (format!("{tok}x"), false),
        2 => (tok[..tok.len() - 1].to_string(), false),
        3 => (tok.to_uppercase(), false),
        4 => (String::new(), false),
        5 => (SYS.to_string(), false),
        6 => (format!("{tok} {tok}"), false),
        7 => ("exd_".to_string() + &"0".repeat(64), false),
        _ => (rand_string(r), false),
    };
    let scheme = *r.pick(&[
        "Bearer", "bearer", "BEARER", "Basic", "Token", "", "Bearer:",
    ]);
    let sep = *r.pick(&[" ", "  ", "\t", ""]);
    let auth: Option<Vec<u8>> = match r.below(5) {
        0 => None,
        1 => Some(mutate_bytes(r, format!("Bearer {tok}").as_bytes())),
        _ => Some(format!("{scheme}{sep}{}", token.0).into_bytes()),
    };
    let cookie: Option<Vec<u8>> = match r.below(7) {
        0 => None,
        1 => Some(format!("exportd_session={}", rand_string(r)).into_bytes()),
        2 => Some(mutate_bytes(r, session.as_bytes())),
        3 => Some(format!("a=b; {session}x; c=\"d").into_bytes()),
        4 => Some(
            (0..r.range(1, 60))
                .map(|i| format!("k{i}={}", "v".repeat(r.range(0, 300))))
                .collect::<Vec<_>>()
                .join("; ")
                .into_bytes(),
        ),
        5 => Some(format!("{session}x; exportd_session=; {session}").into_bytes()),
        _ => {
            let n = r.range(0, 400);
            Some(r.bytes(n))
        }
    };
    let path = *r.pick(&[
        "/fz/v2/objects",
        "/fz/v2/accounts/me",
        "/fz/v2/exports",
        "/fz/v2/c_items?limit=1",
    ]);
    let mut req = TestRequest::get().uri(path);
    let mut sent = 0;
    let mut auth_sent = None;
    if let Some(b) = &auth
        && let Some(v) = header_value(b)
    {
        req = req.insert_header(("Authorization", v));
        auth_sent = Some(b.clone());
        sent += 1;
    }
    if let Some(b) = &cookie
        && let Some(v) = header_value(b)
    {
        req = req.insert_header(("Cookie", v));
        sent += 1;
    }
    let what = || {
        format!(
            "header case {case} (seed {seed}) GET {path} Authorization: {:?} Cookie: {:?}",
            auth.as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned()),
            cookie
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
        )
    };
    let a = send(svc, req).await;
    check(&a, &what);
    // `Bearer <the token>` gets in; without a real secret in the request, nothing does
    let names_token = auth_sent.as_ref().is_some_and(|b| {
        std::str::from_utf8(b).is_ok_and(|s| {
            s.split_once(' ')
                .is_some_and(|(sch, t)| sch.eq_ignore_ascii_case("bearer") && t.trim() == tok)
        })
    });
    let contains = |hay: &Option<Vec<u8>>, needle: &str| {
        hay.as_ref()
            .is_some_and(|h| h.windows(needle.len()).any(|w| w == needle.as_bytes()))
    };
    let sid = session.split_once('=').map_or("", |(_, v)| v);
    let has_secret = contains(&auth_sent, tok) || contains(&cookie, sid);
    if names_token {
        assert_eq!(a.status, 200, "{}: the real token was refused", what());
    } else if !has_secret {
        assert!(
            matches!(a.status, 401 | 403),
            "{}: garbage credentials answered {}",
            what(),
            a.status
        );
    }
    sent
}

/// Content-Type garbage on JSON, NDJSON and file uploads.
async fn content_type_case<S: TestService>(
    svc: &S,
    r: &mut Rng,
    fx: &Fx,
    case: usize,
    seed: u64,
) -> usize {
    let ct: Vec<u8> = match r.below(6) {
        0 => r
            .pick(&[
                "application/json",
                "application/json; charset=utf-8",
                "APPLICATION/JSON",
                " application/json ;;; x",
                "application/x-ndjson",
                "application/x-ndjson; charset=utf-8",
                "text/plain",
                "",
                "application/jsonx",
                "multipart/form-data; boundary=x",
                "application/x-www-form-urlencoded",
                "*/*",
                "image/png",
                "application/octet-stream",
            ])
            .as_bytes()
            .to_vec(),
        1 | 2 => mutate_bytes(r, b"application/json; charset=utf-8"),
        3 => mutate_bytes(r, b"application/x-ndjson"),
        4 => rand_string(r).into_bytes(),
        _ => {
            let n = r.range(0, 300);
            r.bytes(n)
        }
    };
    let Some(v) = header_value(&ct) else {
        return 0;
    };
    // what the server reads: visible ASCII only, the part before `;`, lower-cased
    let readable = std::str::from_utf8(&ct)
        .ok()
        .filter(|s| s.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)));
    let essence = readable
        .map(|s| {
            s.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let what = |route: &str| {
        format!(
            "header case {case} (seed {seed}) {route} Content-Type: {:?}",
            String::from_utf8_lossy(&ct)
        )
    };
    if r.chance(70) {
        let doc = json!({"c_name": "typed", "c_n": 1});
        let a = send(
            svc,
            TestRequest::post()
                .uri("/fz/v2/c_bulks")
                .insert_header(("Authorization", format!("Bearer {}", fx.tok)))
                .insert_header(("Content-Type", v))
                .set_payload(doc.to_string()),
        )
        .await;
        check(&a, &|| what("POST /fz/v2/c_bulks"));
        let want = match essence.as_str() {
            "application/json" => 201,
            "application/x-ndjson" => 200,
            _ => 400,
        };
        assert_eq!(
            a.status,
            want,
            "{}: {}",
            what("POST /fz/v2/c_bulks"),
            clip(&a.body)
        );
    } else {
        let path = format!("/live/v2/c_items/{}/c_file/content", fx.live_doc);
        let a = send(
            svc,
            TestRequest::put()
                .uri(&path)
                .insert_header(("Authorization", format!("Bearer {}", fx.live)))
                .insert_header(("Content-Type", v))
                .set_payload(b"some bytes".to_vec()),
        )
        .await;
        check(&a, &|| what("PUT file"));
        // a mime type is kept when it is printable ASCII with a `/` (≤ 255 chars); a header
        // that is not text at all counts as absent (application/octet-stream)
        let want = match readable.map(str::trim) {
            None => 201,
            Some(m)
                if m.len() <= 255
                    && m.contains('/')
                    && m.chars().all(|c| c.is_ascii_graphic() || c == ' ') =>
            {
                201
            }
            Some(_) => 400,
        };
        assert_eq!(a.status, want, "{}: {}", what("PUT file"), clip(&a.body));
        if a.status == 201 {
            // the mime is kept only when it is printable
            let mime = a.json()["mime"].as_str().unwrap_or_default().to_string();
            assert!(
                mime.bytes().all(|b| (0x20..0x7f).contains(&b)),
                "{}: mime {mime:?}",
                what("PUT file")
            );
        }
    }
    1
}

#[actix_web::test]
async fn request_headers() {
    let app = fuzz_app().await;
    let fx = fixture(&app.svc).await;
    // a real session, whose cookie the generator mangles
    let login = send(
        &app.svc,
        TestRequest::post()
            .uri("/fz/v2/accounts/login")
            .insert_header(("Content-Type", "application/json"))
            .set_payload(
                json!({"email": "admin@fz.test", "password": "correct-horse"}).to_string(),
            ),
    )
    .await;
    assert_eq!(login.status, 200);
    let session = login
        .header("set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let seed = seed(4);
    let mut r = Rng::new(seed);
    let cases = share(15);
    let mut headers_sent = 0;
    for case in 0..cases {
        headers_sent += match case % 3 {
            0 => range_case(&app.svc, &mut r, &fx, case, seed).await,
            1 => credentials_case(&app.svc, &mut r, &fx, &session, case, seed).await,
            _ => content_type_case(&app.svc, &mut r, &fx, case, seed).await,
        };
    }
    eprintln!("headers: {cases} cases, {headers_sent} generated headers sent");
    assert!(
        headers_sent >= cases,
        "only {headers_sent} headers were sendable"
    );
    assert_healthy(&app.svc).await;
}

// ---------------------------------------------------------------------------------------------
// regressions the generators found, pinned
// ---------------------------------------------------------------------------------------------

/// boa's parser recurses without a limit: a hundred `(` overflowed the 2 MiB stack of the
/// server thread that checked an afterScript at creation, and the whole server aborted. The
/// check now runs in the `exportd hook --check` child; the script is refused, the server lives.
#[actix_web::test]
async fn deeply_nested_after_scripts_are_refused_and_the_server_lives() {
    let app = fuzz_app().await;
    let tok = org_with_admin(&app.svc, "acme").await;
    call_expect(
        &app.svc,
        "POST",
        "/acme/v2/objects",
        &tok,
        Some(json!({"name": "c_x", "properties": [{"name": "c_n", "type": "Number"}]})),
        201,
    )
    .await;
    let create = |script: String| {
        call(
            &app.svc,
            "POST",
            "/acme/v2/exports",
            Some(&tok),
            Some(json!({"label": "s", "objects": "c_xs", "afterScript": script})),
        )
    };
    let n = 50_000;
    for script in [
        "(".repeat(100),
        "(".repeat(n),
        "[".repeat(n),
        "{".repeat(n),
        format!("x = {}1{}", "(".repeat(n / 2 - 4), ")".repeat(n / 2 - 4)),
        format!("x = {}1", "-".repeat(n - 8)),
        format!("x = {}1", "!".repeat(n - 8)),
        format!("{}0", "a => ".repeat(n / 5 - 1)),
        format!("x = {}{}", "`${".repeat(n / 4), "}`".repeat(n / 4)),
    ] {
        let got = create(script.clone()).await;
        assert_eq!(got.0, 400, "{}…: {}", &script[..12], got.1);
        assert!(
            sub_paths(&got.1).contains(&"afterScript".to_string()),
            "{}…: {}",
            &script[..12],
            got.1
        );
    }
    // ordinary scripts, moderately nested ones included, still pass; syntax errors still
    // name their line
    // (and they run: the child's memory cap is not eaten by the allocator's reservation)
    for (script, log) in [
        (
            "console.log(script.arguments.export.label)".to_string(),
            "s",
        ),
        (
            format!("console.log({}1{})", "(".repeat(40), ")".repeat(40)),
            "1",
        ),
        (
            "const e = script.arguments.export; if (e) { for (let i = 0; i < 2; i++) { if (i) { console.log(JSON.stringify({a: [1, {b: (i + 1) * 2}]})) } } }".to_string(),
            "{\"a\":[1,{\"b\":4}]}",
        ),
    ] {
        let got = create(script).await;
        assert_eq!(got.0, 201, "{}", got.1);
        let id = got.1["_id"].as_str().unwrap().to_string();
        let done = wait_export(&app.svc, &tok, "acme", &id, |v| {
            v["state"] == "ready"
        })
        .await;
        assert_eq!(done["state"], "ready");
        let v = wait_export(&app.svc, &tok, "acme", &format!("{id}?include=events"), |v| {
            v["events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["name"] == "afterScript.completed"))
        })
        .await;
        let ev = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "afterScript.completed")
            .unwrap()
            .clone();
        assert_eq!(ev["data"]["err"], Value::Null, "{ev}");
        assert_eq!(ev["data"]["logs"], json!([log]), "{ev}");
    }
    let got = create("let a = 1;\nlet = ;".into()).await;
    assert_eq!(got.0, 400, "{}", got.1);
    assert!(got.1.to_string().contains("line 2"), "{}", got.1);
    assert_healthy(&app.svc).await;
}

/// A Range position is 1*DIGIT of any length (RFC 9110 §14.1.1): a last position past u64
/// means "to the end" (it wrapped to 0 and answered 416, or panicked in debug builds), as
/// does a suffix longer than the file; a first position past the end is unsatisfiable.
#[actix_web::test]
async fn range_positions_past_u64_mean_the_end() {
    let app = fuzz_app().await;
    let tok = org_with_admin(&app.svc, "acme").await;
    call_expect(
        &app.svc,
        "POST",
        "/acme/v2/objects",
        &tok,
        Some(json!({"name": "c_x", "properties": [{"name": "c_f", "type": "File"}]})),
        201,
    )
    .await;
    let doc = call_expect(
        &app.svc,
        "POST",
        "/acme/v2/c_xs",
        &tok,
        Some(json!({})),
        201,
    )
    .await;
    let path = format!("/acme/v2/c_xs/{}/c_f/content", doc["_id"].as_str().unwrap());
    let file: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    put_file(&app.svc, &tok, &path, &file).await;
    for (range, want) in [
        ("bytes=0-18446744073709551615", Some((0, 999))),
        ("bytes=3-18446744073709551614", Some((3, 999))),
        ("bytes=3-99999999999999999999999", Some((3, 999))),
        ("bytes=-99999999999999999999", Some((0, 999))),
        ("bytes=-18446744073709551615", Some((0, 999))),
        ("bytes=990-", Some((990, 999))),
        ("bytes=99999999999999999999-", None),
        ("bytes=18446744073709551615-18446744073709551615", None),
        ("bytes=1000-", None),
    ] {
        let a = send(
            &app.svc,
            TestRequest::get()
                .uri(&path)
                .insert_header(("Authorization", format!("Bearer {tok}")))
                .insert_header(("Range", range)),
        )
        .await;
        match want {
            Some((s, e)) => {
                assert_eq!(a.status, 206, "{range}: {}", clip(&a.body));
                assert_eq!(a.header("content-range"), format!("bytes {s}-{e}/1000"));
                assert_eq!(a.body, file[s..=e], "{range}");
            }
            None => {
                assert_eq!(a.status, 416, "{range}: {}", clip(&a.body));
                assert_eq!(a.header("content-range"), "bytes */1000", "{range}");
            }
        }
    }
}
