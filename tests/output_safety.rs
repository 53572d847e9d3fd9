//! What exports write is safe to open: (a) archive entry names and side-file names carry no
//! path tricks whatever the documents, file names and mime types hold (SPEC §4.5: "no path
//! with `..`, a leading `/`, or a backslash"; here also no drive letter, no control character
//! and no Unicode look-alike of `/`, `\` or a leading `.`), checked with the `zip` crate,
//! Python's zipfile and `unzip -t`; (b) `csvEscapeFormulas` (SPEC §4.2) byte for byte.

mod common;

use actix_web::test::TestRequest;
use common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;

// ---------------------------------------------------------------------------------------------
// hostile inputs
// ---------------------------------------------------------------------------------------------

/// File names (sent as `?filename=`) and property values.
const HOSTILE_NAMES: &[&str] = &[
    "../../etc/passwd",
    "/abs/path",
    "a\\b",
    "C:\\x",
    "C:x",
    "nul\u{0}byte",
    "..",
    ".",
    ".hidden",
    "a\r\nX-Evil: 1",
    "\u{2025}/\u{2025}/etc/passwd",
    "\u{ff0e}\u{ff0e}\u{ff0f}etc\u{ff0f}passwd",
    "\u{fe68}\u{ff3c}windows",
    "\u{2024}\u{2024}\u{2215}x",
    "\u{202e}txt.exe",
    "e\u{301}.txt",
    "<>:\"|?*",
    "\u{7f}\u{1b}[31mred",
    " ../ spaced",
];

/// Content types: printable ASCII (the upload refuses anything else), path-shaped.
const HOSTILE_MIMES: &[&str] = &[
    "../../etc/passwd",
    "/abs",
    "a\\b/c",
    "C:\\x/y",
    "text/plain/../../x",
    "image/png; name=../../x",
    "text/..",
    "application/zip",
    "text/plain",
    "x/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
];

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).expect("%XX"));
            i += 3;
        } else {
            assert!(b[i] != b'%', "a bare % in {s}");
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("UTF-8 after decoding")
}

fn long_name() -> String {
    format!("{}.txt", "x".repeat(1000))
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// what "safe" means
// ---------------------------------------------------------------------------------------------

/// Characters whose compatibility form (NFKC) is `/` or `\`.
const SLASH_LOOKALIKES: &[char] = &['\u{ff0f}', '\u{ff3c}', '\u{fe68}'];
/// Characters whose compatibility form starts with `.`.
const DOT_LOOKALIKES: &[char] = &['\u{ff0e}', '\u{2024}', '\u{2025}', '\u{2026}', '\u{fe52}'];

fn drive_letter(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

/// Why an archive entry name is unsafe, if it is.
fn entry_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty");
    }
    if name.starts_with('/') {
        return Some("leading /");
    }
    if name.contains('\\') {
        return Some("backslash");
    }
    if name.chars().any(|c| c.is_control()) {
        return Some("control character");
    }
    if name.chars().any(|c| SLASH_LOOKALIKES.contains(&c)) {
        return Some("a look-alike of / or \\");
    }
    for seg in name.split('/') {
        if seg == ".." || seg == "." {
            return Some("a . or .. segment");
        }
        if drive_letter(seg) {
            return Some("a drive letter");
        }
        if seg.starts_with(DOT_LOOKALIKES) {
            return Some("a segment starting with a look-alike of .");
        }
    }
    None
}

/// Why a side file's name (one path segment, offered to browsers) is unsafe, if it is.
fn file_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.chars().count() > 255 {
        return Some("empty or longer than 255");
    }
    if name.contains('/') {
        return Some("a slash");
    }
    if name.starts_with(['.', ' ']) {
        return Some("a leading dot or space");
    }
    if name.chars().any(|c| "<>:\"|?*".contains(c)) {
        return Some("a character Windows refuses");
    }
    if name
        .chars()
        .any(|c| matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
    {
        return Some("a bidi control (a disguised extension)");
    }
    entry_problem(name)
}

// ---------------------------------------------------------------------------------------------
// setup
// ---------------------------------------------------------------------------------------------

struct Upload {
    /// The upload path, e.g. `/acme/v2/c_evils/<id>/c_files/content`.
    path: String,
    bytes: Vec<u8>,
}

struct Evil {
    tok: String,
    uploads: Vec<Upload>,
}

async fn ok<S: TestService>(svc: &S, method: &str, path: &str, tok: &str, body: Value) -> Value {
    let (s, v) = call(svc, method, path, Some(tok), Some(body)).await;
    assert!(s == 200 || s == 201, "{method} {path}: {s} {v}");
    v
}

async fn evil_setup<S: TestService>(svc: &S) -> Evil {
    let tok = org_with_admin(svc, "acme").await;
    // object and property names never carry path tricks: they are refused outright
    for name in [
        "c_../x",
        "c_a/b",
        "c_a\\b",
        "../c_x",
        "c_x\u{0}",
        "c_\u{ff0e}\u{ff0e}",
    ] {
        let (s, v) = call(
            svc,
            "POST",
            "/acme/v2/objects",
            Some(&tok),
            Some(json!({"name": name, "properties": [{"name": "c_s", "type": "String"}]})),
        )
        .await;
        assert_eq!(s, 400, "object name {name:?}: {v}");
        let (s, v) = call(
            svc,
            "POST",
            "/acme/v2/objects",
            Some(&tok),
            Some(json!({"name": "c_ok", "properties": [{"name": name, "type": "File"}]})),
        )
        .await;
        assert_eq!(s, 400, "property name {name:?}: {v}");
    }
    ok(
        svc,
        "POST",
        "/acme/v2/objects",
        &tok,
        json!({"name": "c_evil", "properties": [
            {"name": "c_s", "type": "String"},
            {"name": "c_file", "type": "File"},
            {"name": "c_files", "type": "File", "array": true},
            {"name": "c_doc", "type": "Document", "properties": [
                {"name": "c_f", "type": "File"}, {"name": "c_x", "type": "String"}]},
            {"name": "c_rows", "type": "Document", "array": true, "properties": [
                {"name": "c_f", "type": "File"}, {"name": "c_v", "type": "String"}]}]}),
    )
    .await;
    let mut names: Vec<String> = HOSTILE_NAMES.iter().map(|s| s.to_string()).collect();
    names.push(long_name());
    let mut uploads = Vec::new();
    let mut n = 0;
    for (i, chunk) in names.chunks(4).enumerate() {
        let value = chunk[0].clone();
        let doc = ok(
            svc,
            "POST",
            "/acme/v2/c_evils",
            &tok,
            json!({"c_s": value, "c_doc": {"c_x": value}, "c_rows": [{"c_v": value}]}),
        )
        .await;
        let id = doc["_id"].as_str().unwrap().to_string();
        let row = doc["c_rows"][0]["_id"].as_str().unwrap().to_string();
        let targets = [
            format!("/acme/v2/c_evils/{id}/c_file/content"),
            format!("/acme/v2/c_evils/{id}/c_files/content"),
            format!("/acme/v2/c_evils/{id}/c_doc/c_f/content"),
            format!("/acme/v2/c_evils/{id}/c_rows/{row}/c_f/content"),
            format!("/acme/v2/c_evils/{id}/c_files/content"),
        ];
        for (j, target) in targets.iter().enumerate() {
            let name = &chunk[j % chunk.len()];
            let mime = HOSTILE_MIMES[n % HOSTILE_MIMES.len()];
            let bytes = format!("file {n} of doc {i}: {name}").into_bytes();
            let (s, v) = raw(
                svc,
                TestRequest::put()
                    .uri(&format!("{target}?filename={}", pct(name)))
                    .insert_header(("Authorization", format!("Bearer {tok}")))
                    .insert_header(("Content-Type", mime))
                    .set_payload(bytes.clone()),
            )
            .await;
            assert_eq!(s, 201, "upload {name:?} as {mime:?}: {v}");
            // the stored facet's filename is already safe to offer
            let stored = v["filename"].as_str().unwrap_or_default();
            assert_eq!(
                file_name_problem(stored),
                None,
                "{name:?} was stored as {stored:?}"
            );
            uploads.push(Upload {
                path: target.clone(),
                bytes,
            });
            n += 1;
        }
    }
    Evil { tok, uploads }
}

async fn run_export<S: TestService>(svc: &S, tok: &str, body: Value) -> (String, Vec<u8>) {
    let v = ok(svc, "POST", "/acme/v2/exports", tok, body).await;
    let id = v["_id"].as_str().unwrap().to_string();
    let rec = wait_ready(svc, tok, "acme", &id).await;
    assert_eq!(rec["state"], "ready", "{rec}");
    let (s, zip) = get_bytes(svc, tok, &format!("/acme/v2/exports/{id}/dataFile/content")).await;
    assert_eq!(s, 200);
    (id, zip)
}

/// The entry names the zip crate reads (raw, as stored).
fn zip_names(zip: &[u8]) -> Vec<String> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("a zip");
    (0..z.len())
        .map(|i| {
            let f = z.by_index_raw(i).unwrap();
            String::from_utf8(f.name_raw().to_vec()).expect("an entry name in UTF-8")
        })
        .collect()
}

/// The entry names Python's zipfile reads, after its own integrity test (`None` when there is
/// no python3 here).
fn python_names(zip_path: &std::path::Path) -> Option<Vec<String>> {
    let script = "import json, sys, zipfile\n\
                  z = zipfile.ZipFile(sys.argv[1])\n\
                  bad = z.testzip()\n\
                  assert bad is None, bad\n\
                  print(json.dumps([i.filename for i in z.infolist()]))";
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(zip_path)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "python zipfile: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("python printed JSON"))
}

/// `unzip -t` must pass (false when unzip is not installed).
fn unzip_t(zip_path: &std::path::Path) -> bool {
    match std::process::Command::new("unzip")
        .arg("-t")
        .arg(zip_path)
        .output()
    {
        Ok(out) => {
            assert!(
                out.status.success(),
                "unzip -t: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            true
        }
        Err(_) => false,
    }
}

fn is_data_entry(name: &str, ext: &str) -> bool {
    // export-<created ISO with : → _>.<ext>, e.g. export-2026-11-29T12_00_00.000Z.csv
    let Some(stamp) = name
        .strip_prefix("export-")
        .and_then(|s| s.strip_suffix(&format!(".{ext}")))
    else {
        return false;
    };
    stamp.len() == 24
        && stamp
            .chars()
            .all(|c| c.is_ascii_digit() || "-T_.Z".contains(c))
}

/// `files/<10 digits>.c_evils.<24 hex>.<prop path>.content.<ext>`
fn is_file_entry(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("files/") else {
        return false;
    };
    let parts: Vec<&str> = rest.split('.').collect();
    parts.len() >= 6
        && parts[0].len() == 10
        && parts[0].chars().all(|c| c.is_ascii_digit())
        && parts[1] == "c_evils"
        && parts[2].len() == 24
        && parts[2].chars().all(|c| c.is_ascii_hexdigit())
        && parts[parts.len() - 2] == "content"
        && parts[3..parts.len() - 2]
            .iter()
            .all(|p| p.starts_with("c_") && p.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        && parts[parts.len() - 1]
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

const FORMATS: &[(&str, &str)] = &[
    ("application/x-ndjson", "ndjson"),
    ("application/json", "json"),
    ("text/csv", "csv"),
];

// ---------------------------------------------------------------------------------------------
// (a) entry names
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn zipped_files_get_safe_entry_names_in_every_format() {
    let app = app().await;
    let e = evil_setup(&app.svc).await;
    let uploaded: Vec<Vec<u8>> = {
        let mut v: Vec<Vec<u8>> = e.uploads.iter().map(|u| u.bytes.clone()).collect();
        v.sort();
        v
    };
    let mut python_checked = false;
    let mut unzip_checked = false;
    for (format, ext) in FORMATS {
        let (_, zip) = run_export(
            &app.svc,
            &e.tok,
            json!({"label": "evil", "objects": "c_evils", "format": format,
                   "exportFiles": true, "zipFiles": true}),
        )
        .await;
        let names = zip_names(&zip);
        for n in &names {
            assert_eq!(entry_problem(n), None, "{format}: entry {n:?}");
        }
        assert_eq!(names.len(), 1 + e.uploads.len(), "{format}: {names:?}");
        assert!(is_data_entry(&names[0], ext), "{format}: {:?}", names[0]);
        for n in &names[1..] {
            assert!(is_file_entry(n), "{format}: {n:?}");
        }
        // the entries hold exactly the uploaded files, and the data points at each of them
        let entries = unzip(&zip);
        let data = String::from_utf8(entries[0].1.clone()).unwrap();
        let mut got: Vec<Vec<u8>> = entries[1..].iter().map(|(_, b)| b.clone()).collect();
        got.sort();
        assert_eq!(got, uploaded, "{format}: file contents");
        for (n, _) in &entries[1..] {
            assert!(
                data.contains(n.as_str()),
                "{format}: the data never names {n}"
            );
        }
        // no hostile value leaked into a name through the data either
        assert!(!data.contains("files/.."), "{format}");
        if *ext == "ndjson" {
            // each facet's path is the entry holding that very file
            let by_name: std::collections::HashMap<&str, &Vec<u8>> =
                entries.iter().map(|(n, b)| (n.as_str(), b)).collect();
            let mut seen = 0;
            for line in data.lines() {
                let doc: Value = serde_json::from_str(line).unwrap();
                let id = doc["_id"].as_str().unwrap();
                let mut facets = vec![
                    (
                        format!("/acme/v2/c_evils/{id}/c_file/content"),
                        &doc["c_file"],
                    ),
                    (
                        format!("/acme/v2/c_evils/{id}/c_doc/c_f/content"),
                        &doc["c_doc"]["c_f"],
                    ),
                ];
                let row = doc["c_rows"][0]["_id"].as_str().unwrap();
                facets.push((
                    format!("/acme/v2/c_evils/{id}/c_rows/{row}/c_f/content"),
                    &doc["c_rows"][0]["c_f"],
                ));
                for (target, facet) in facets {
                    let entry = facet["path"].as_str().unwrap();
                    let want = &e.uploads.iter().find(|u| u.path == target).unwrap().bytes;
                    assert_eq!(by_name[entry], want, "{entry} for {target}");
                    assert_eq!(
                        file_name_problem(facet["filename"].as_str().unwrap()),
                        None,
                        "{facet}"
                    );
                    seen += 1;
                }
                for f in doc["c_files"].as_array().unwrap() {
                    assert!(by_name.contains_key(f["path"].as_str().unwrap()), "{f}");
                    seen += 1;
                }
            }
            assert_eq!(seen, e.uploads.len());
        }
        // stock tools agree
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("export.{ext}.zip"));
        std::fs::write(&path, &zip).unwrap();
        if let Some(py) = python_names(&path) {
            assert_eq!(py, names, "{format}: Python reads other names");
            python_checked = true;
        }
        unzip_checked |= unzip_t(&path);
    }
    if !python_checked {
        eprintln!("python3 not found: Python's zipfile check skipped");
    }
    if !unzip_checked {
        eprintln!("unzip not found: unzip -t skipped");
    }
}

#[actix_web::test]
async fn side_files_get_safe_names_paths_and_headers_in_every_format() {
    let app = app().await;
    let e = evil_setup(&app.svc).await;
    let mut uploaded: Vec<Vec<u8>> = e.uploads.iter().map(|u| u.bytes.clone()).collect();
    uploaded.sort();
    for (format, ext) in FORMATS {
        let (id, zip) = run_export(
            &app.svc,
            &e.tok,
            json!({"label": "evil side", "objects": "c_evils", "format": format,
                   "exportFiles": true}),
        )
        .await;
        // the archive holds the data only
        let names = zip_names(&zip);
        assert_eq!(names.len(), 1, "{format}: {names:?}");
        assert!(is_data_entry(&names[0], ext), "{format}: {names:?}");
        let data = String::from_utf8(unzip(&zip).remove(0).1).unwrap();
        let (s, list) = call(
            &app.svc,
            "GET",
            &format!("/acme/v2/exports/{id}/files?limit=1000"),
            Some(&e.tok),
            None,
        )
        .await;
        assert_eq!(s, 200, "{list}");
        let items = list["data"].as_array().unwrap();
        assert_eq!(items.len(), e.uploads.len(), "{format}");
        let mut got = Vec::new();
        let mut ns = BTreeSet::new();
        for f in items {
            let name = f["filename"].as_str().unwrap();
            assert_eq!(file_name_problem(name), None, "{format}: side file {f}");
            let n = f["n"].as_u64().unwrap();
            assert!(ns.insert(n), "{format}: n {n} twice");
            let url = format!("/acme/v2/exports/{id}/files/{n}");
            assert_eq!(f["path"], url.as_str(), "{format}: {f}");
            assert!(data.contains(&url), "{format}: the data never names {url}");
            let resp = actix_web::dev::Service::call(
                &app.svc,
                TestRequest::get()
                    .uri(&url)
                    .insert_header(("Authorization", format!("Bearer {}", e.tok)))
                    .to_request(),
            )
            .await
            .unwrap_or_else(|_| panic!("GET {url}"));
            assert_eq!(resp.status().as_u16(), 200, "{url}");
            let cd = resp
                .headers()
                .get("content-disposition")
                .expect("Content-Disposition")
                .to_str()
                .expect("an ASCII Content-Disposition")
                .to_string();
            assert!(resp.headers().get("x-evil").is_none(), "{url}");
            // attachment; filename="<ASCII>"[; filename*=UTF-8''<percent-encoded>]
            let rest = cd
                .strip_prefix("attachment; filename=\"")
                .unwrap_or_else(|| panic!("{format}: Content-Disposition {cd:?}"));
            let (plain, ext) = rest
                .split_once('"')
                .unwrap_or_else(|| panic!("{format}: Content-Disposition {cd:?}"));
            assert_eq!(file_name_problem(plain), None, "{format}: {cd:?}");
            let offered = match ext.strip_prefix("; filename*=UTF-8''") {
                Some(enc) => percent_decode(enc),
                None => {
                    assert_eq!(ext, "", "{format}: {cd:?}");
                    plain.to_string()
                }
            };
            assert_eq!(file_name_problem(&offered), None, "{format}: {cd:?}");
            assert_eq!(offered, name, "{format}: {cd:?} offers another name");
            got.push(actix_web::test::read_body(resp).await.to_vec());
        }
        got.sort();
        assert_eq!(got, uploaded, "{format}: side file contents");
    }
}

// ---------------------------------------------------------------------------------------------
// (b) csvEscapeFormulas
// ---------------------------------------------------------------------------------------------

/// Cell values: one document each. The spec's list is `= + - @` TAB CR at the start of a
/// cell; everything else (a leading space, a full-width `＝`, an inner `=`) stays as it is.
const CELLS: &[&str] = &[
    "=1+2",
    "+1",
    "-1",
    "@SUM(A1)",
    "\tTAB",
    "\rCR",
    "=\"quoted\",comma",
    "-",
    "=",
    "safe",
    "'=already",
    " =space",
    "a=b",
    "\u{ff1d}full",
    "",
    "\nLF",
];

/// Numbers of the same documents: SPEC escapes *cells* starting with `-`, and a negative
/// number's cell starts with `-`, so it is escaped too.
fn numbers() -> Vec<Value> {
    vec![
        json!(-5),
        json!(5),
        json!(-0.5),
        json!(0),
        json!(1.5),
        json!(-100),
    ]
}

fn escape(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_string()
    }
}

/// RFC 4180: quoted when holding `"`, `,`, CR or LF; inner quotes doubled.
fn quote(cell: &str) -> String {
    if cell.contains(['"', ',', '\r', '\n']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}

#[actix_web::test]
async fn csv_formula_escaping_is_byte_exact() {
    let app = app().await;
    let tok = org_with_admin(&app.svc, "acme").await;
    ok(
        &app.svc,
        "POST",
        "/acme/v2/objects",
        &tok,
        json!({"name": "c_cell", "properties": [
            {"name": "c_s", "type": "String"},
            {"name": "c_n", "type": "Number"},
            {"name": "c_doc", "type": "Document", "properties": [{"name": "c_x", "type": "String"}]},
            {"name": "c_rows", "type": "Document", "array": true, "properties": [{"name": "c_v", "type": "String"}]},
            {"name": "c_tags", "type": "String", "array": true},
            {"name": "c_any", "type": "Any"}]}),
    )
    .await;
    // header cells from keys inside an Any value: quoted where RFC 4180 says, never escaped
    // (a column always starts with its property's name, which cannot start with a formula
    // character, so no header cell can need the `'`)
    let any = json!({"=k": "=v", "a\"b": "-x", "x,y": "@y", "n\nl": "+z"});
    let mut rows: Vec<std::collections::BTreeMap<String, String>> = Vec::new();
    for (i, cell) in CELLS.iter().enumerate() {
        let n = numbers()[i % numbers().len()].clone();
        let mut body = json!({"c_s": cell, "c_n": n, "c_doc": {"c_x": cell},
                              "c_rows": [{"c_v": cell}], "c_tags": [cell]});
        if i == 0 {
            body["c_any"] = any.clone();
        }
        let doc = ok(&app.svc, "POST", "/acme/v2/c_cells", &tok, body).await;
        let mut row = std::collections::BTreeMap::new();
        row.insert("_id".to_string(), doc["_id"].as_str().unwrap().to_string());
        row.insert("object".into(), "c_cell".into());
        row.insert("c_s".into(), cell.to_string());
        row.insert("c_n".into(), n.to_string());
        row.insert("c_doc.c_x".into(), cell.to_string());
        row.insert(
            "c_rows[0]._id".into(),
            doc["c_rows"][0]["_id"].as_str().unwrap().to_string(),
        );
        row.insert("c_rows[0].c_v".into(), cell.to_string());
        row.insert("c_tags[0]".into(), cell.to_string());
        if i == 0 {
            for (k, v) in any.as_object().unwrap() {
                row.insert(format!("c_any.{k}"), v.as_str().unwrap().to_string());
            }
        }
        rows.push(row);
    }
    // columns: _id first, then the rest in plain string order (SPEC §4.5)
    let mut columns = vec!["_id".to_string()];
    let rest: BTreeSet<String> = rows
        .iter()
        .flat_map(|r| r.keys().cloned())
        .filter(|k| k != "_id")
        .collect();
    columns.extend(rest);
    let expected = |escaped: bool| -> String {
        let line = |cells: Vec<String>| -> String {
            let cells: Vec<String> = cells
                .iter()
                .map(|c| quote(&if escaped { escape(c) } else { c.clone() }))
                .collect();
            format!("{}\n", cells.join(","))
        };
        let mut out = line(columns.clone());
        for r in &rows {
            out.push_str(&line(
                columns
                    .iter()
                    .map(|c| r.get(c).cloned().unwrap_or_default())
                    .collect(),
            ));
        }
        out
    };
    let paths = json!(["c_s", "c_n", "c_doc.c_x", "c_rows.c_v", "c_tags", "c_any"]);
    for flag in [true, false] {
        let (_, zip) = run_export(
            &app.svc,
            &tok,
            json!({"label": "csv", "objects": "c_cells", "format": "text/csv",
                   "paths": paths, "csvEscapeFormulas": flag}),
        )
        .await;
        let entries = unzip(&zip);
        assert_eq!(entries.len(), 1);
        let csv = String::from_utf8(entries[0].1.clone()).unwrap();
        let want = expected(flag);
        assert_eq!(
            csv, want,
            "csvEscapeFormulas={flag}\n--- got\n{csv:?}\n--- want\n{want:?}"
        );
    }
    // the header really holds the hostile keys, and the negative numbers really are escaped
    let escaped = expected(true);
    assert!(
        escaped.starts_with(
            "_id,c_any.=k,\"c_any.a\"\"b\",\"c_any.n\nl\",\"c_any.x,y\",c_doc.c_x,c_n,"
        ),
        "{escaped:?}"
    );
    assert!(escaped.contains(",'-5,") && escaped.contains(",'-0.5,"));
    // the flag is about CSV only: other formats keep the values as they are
    for format in ["application/x-ndjson", "application/json"] {
        let (_, zip) = run_export(
            &app.svc,
            &tok,
            json!({"label": "nd", "objects": "c_cells", "format": format,
                   "paths": ["c_s", "c_n"], "csvEscapeFormulas": true}),
        )
        .await;
        let data = String::from_utf8(unzip(&zip).remove(0).1).unwrap();
        let docs: Vec<Value> = if format == "application/json" {
            serde_json::from_str(&data).unwrap()
        } else {
            data.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        };
        assert_eq!(docs.len(), CELLS.len(), "{format}");
        for (i, d) in docs.iter().enumerate() {
            assert_eq!(d["c_s"], CELLS[i], "{format}: {d}");
            assert_eq!(d["c_n"], numbers()[i % numbers().len()], "{format}: {d}");
        }
    }
}
