//! Tampering with the data directory of a stopped server: seeded random byte flips in sled's
//! files (the log `db/db`, snapshots `db/snap.*`, and `db/blobs/*` when sled spilled large
//! values there; not `conf`, which only makes sled refuse to open), then a restart and a read
//! of every document, file, export archive and side file through the API. Each answer must be
//! the original bytes, a fault (SPEC §1) or a download stopped short after a prefix of the
//! original bytes; never other bytes with a 200. The server must keep answering `/health`,
//! or, if sled refuses the damaged database, exit non-zero with one line and no panic.
//!
//! sled checksums everything it writes and its recovery takes a damaged message for a torn
//! write, rolling back to the last intact one; the server detects that against the mark of
//! its last clean shutdown and refuses to start. So raw flips mostly end in a refusal; the
//! second test tampers one level up: with the store opened by the test, it flips bytes in
//! (or swaps) stored values of the authenticated trees (sealed documents, blob segments,
//! blob metas), which sled then carries faithfully, and the server must catch them itself
//! (and still start).
//!
//! `EXPORTD_TAMPER_CASES` (default 12 each) sets the number of cases, `EXPORTD_TAMPER_SEED`
//! the seed (printed), `EXPORTD_TAMPER_TREES` the trees of the second test (comma-separated,
//! default `docs,blobs,blob_meta`).

mod support;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

const ORG: &str = "acme";

/// What the pristine server answered, to compare against.
struct Originals {
    token: String,
    docs: BTreeMap<String, Value>,
    /// Downloadable things: path → bytes.
    blobs: BTreeMap<String, Vec<u8>>,
}

fn setup(root: &Path) -> Originals {
    let port = free_port();
    let mut server = Server::start(root, port, &[]);
    let http = Http::new(&server.base());
    let token = http.org_with_admin(ORG, json!({}));
    let (s, v) = http.must(
        "POST",
        "/acme/v2/objects",
        &token,
        Some(json!({"name": "c_rec", "properties": [
            {"name": "c_text", "type": "String"}, {"name": "c_n", "type": "Number"},
            {"name": "c_doc", "type": "Document", "properties": [{"name": "c_inner", "type": "String"}]},
            {"name": "c_file", "type": "File"}]})),
    );
    assert_eq!(s, 201, "{v}");
    let lines: Vec<String> = (0..300)
        .map(|n| {
            json!({"c_text": format!("record {n} {}", "t".repeat(n % 7 * 90)), "c_n": n,
                   "c_doc": {"c_inner": format!("inner {n}")}})
            .to_string()
        })
        .collect();
    let (s, v) = http.bulk("/acme/v2/c_recs", &token, &lines).unwrap();
    assert_eq!(s, 200, "{v}");
    let ids: Vec<String> = v["data"]["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect();
    let mut blobs = BTreeMap::new();
    for (k, size) in [9_000usize, 64 * 1024, 70_000, 150_000, 200_000, 1]
        .iter()
        .enumerate()
    {
        let content: Vec<u8> = (0..*size).map(|b| ((b * 13 + k * 7) % 251) as u8).collect();
        let path = format!("/acme/v2/c_recs/{}/c_file/content", ids[k * 40]);
        let a = http
            .send(
                "PUT",
                &path,
                Some(&token),
                Some(("application/octet-stream", &content)),
            )
            .unwrap();
        assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
        blobs.insert(path, content);
    }
    let mut exports = Vec::new();
    for body in [
        json!({"label": "nd", "objects": "c_recs"}),
        json!({"label": "csv", "objects": "c_recs", "format": "text/csv"}),
        json!({"label": "zipped", "objects": "c_recs", "format": "application/json", "exportFiles": true, "zipFiles": true}),
        json!({"label": "side", "objects": "c_recs", "exportFiles": true, "paths": ["c_file"]}),
    ] {
        let (s, v) = http.must("POST", "/acme/v2/exports", &token, Some(body));
        assert_eq!(s, 201, "{v}");
        exports.push(v["_id"].as_str().unwrap().to_string());
    }
    for id in &exports {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, v) = http.must("GET", &format!("/acme/v2/exports/{id}"), &token, None);
            if v["state"] == "ready" {
                break;
            }
            assert!(v["state"] != "error" && Instant::now() < deadline, "{v}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let path = format!("/acme/v2/exports/{id}/dataFile/content");
        let a = http.send("GET", &path, Some(&token), None).unwrap();
        assert_eq!(a.status, 200);
        blobs.insert(path, a.body);
        let (_, files) = http.must("GET", &format!("/acme/v2/exports/{id}/files"), &token, None);
        for n in 0..files["data"].as_array().map_or(0, |a| a.len()) {
            let path = format!("/acme/v2/exports/{id}/files/{n}");
            let a = http.send("GET", &path, Some(&token), None).unwrap();
            assert_eq!(a.status, 200);
            blobs.insert(path, a.body);
        }
    }
    let mut docs = BTreeMap::new();
    for id in &ids {
        let (s, v) = http.must("GET", &format!("/acme/v2/c_recs/{id}"), &token, None);
        assert_eq!(s, 200);
        docs.insert(id.clone(), v);
    }
    assert!(server.term(Duration::from_secs(10)), "clean stop");
    Originals { token, docs, blobs }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// sled's files that hold data: the log, snapshots and spilled blobs (not `conf`).
fn targets(data: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    files_under(&data.join("db"), &mut all);
    all.retain(|p| {
        let name = p.file_name().unwrap().to_string_lossy();
        name != "conf" && std::fs::metadata(p).is_ok_and(|m| m.len() > 0)
    });
    all.sort();
    all
}

/// Flips bytes of one file; returns a description (file, positions).
fn tamper(data: &Path, rng: &mut StdRng, case: usize) -> String {
    let files = targets(data);
    assert!(!files.is_empty());
    // rotate over the kinds of file so every kind is hit
    let blobs: Vec<&PathBuf> = files
        .iter()
        .filter(|p| p.parent().is_some_and(|d| d.ends_with("blobs")))
        .collect();
    let others: Vec<&PathBuf> = files.iter().filter(|p| !blobs.contains(p)).collect();
    let file = if case % 2 == 1 && !blobs.is_empty() {
        blobs[rng.gen_range(0..blobs.len())]
    } else {
        others[rng.gen_range(0..others.len())]
    };
    let mut bytes = std::fs::read(file).unwrap();
    let flips = rng.gen_range(1..=12);
    let burst = rng.gen_bool(0.3);
    let mut at = Vec::new();
    let mut pos = rng.gen_range(0..bytes.len());
    for _ in 0..flips {
        if !burst || at.is_empty() {
            // prefer bytes that hold something (sled preallocates zeroed space)
            pos = rng.gen_range(0..bytes.len());
            for _ in 0..64 {
                if bytes[pos] != 0 {
                    break;
                }
                pos = rng.gen_range(0..bytes.len());
            }
        } else {
            pos = (pos + 1) % bytes.len();
        }
        bytes[pos] ^= rng.gen_range(1..=255u8);
        at.push(pos);
    }
    std::fs::write(file, &bytes).unwrap();
    format!(
        "{} ({} bytes): {} flips{} at {at:?}",
        file.strip_prefix(data).unwrap().display(),
        bytes.len(),
        flips,
        if burst { " (burst)" } else { "" }
    )
}

#[derive(Default, Debug)]
struct Tally {
    original: usize,
    /// Requests retried after a transport failure with the server still up.
    retried: usize,
    faults: BTreeMap<u16, usize>,
    stopped: usize,
}

/// One answer: the original, a fault, or (downloads) a stopped prefix of the original.
fn judge(a: &Answer, original: &[u8], what: &str, c: &str, t: &mut Tally) {
    if a.status == 200 || a.status == 206 {
        if a.cut {
            assert!(
                original.starts_with(&a.body),
                "{c} {what}: a stopped download delivered other bytes"
            );
            t.stopped += 1;
        } else {
            assert!(
                a.body == original,
                "{c} {what}: 200 with other bytes ({} vs {} bytes)",
                a.body.len(),
                original.len()
            );
            t.original += 1;
        }
        return;
    }
    let v = a.json();
    assert!(
        a.status >= 400 && is_fault(a.status, &v) || a.status == 202 && v["object"] == "fault",
        "{c} {what}: answered {} with {}",
        a.status,
        String::from_utf8_lossy(&a.body)
    );
    *t.faults.entry(a.status).or_default() += 1;
}

/// A GET; a transport failure is retried once on a new connection if the server is still
/// up (a kept-alive connection the server closed), and fails the test if it is not.
fn get(
    server: &mut Server,
    http: &Http,
    path: &str,
    tok: Option<&str>,
    headers: &[(&str, &str)],
    c: &str,
    t: &mut Tally,
) -> Answer {
    match http.send_with("GET", path, tok, headers, None) {
        Ok(a) => a,
        Err(e) => {
            let alive = server.child.as_mut().unwrap().try_wait().unwrap().is_none();
            assert!(alive, "{c} {path}: {e}; the server died:\n{}", server.log());
            t.retried += 1;
            eprintln!("  {path}: {e}; retried on a new connection");
            Http::new(&http.base)
                .send_with("GET", path, tok, headers, None)
                .unwrap_or_else(|e2| panic!("{c} {path}: {e}, then {e2}\n{}", server.log()))
        }
    }
}

fn read_everything(server: &mut Server, http: &Http, o: &Originals, c: &str, t: &mut Tally) {
    let tok = Some(o.token.as_str());
    for (id, want) in &o.docs {
        let path = format!("/acme/v2/c_recs/{id}");
        let a = get(server, http, &path, tok, &[], c, t);
        if a.status == 200 {
            assert!(!a.cut, "{c} {path}: cut JSON");
            assert_eq!(&a.json(), want, "{c} {path}: 200 with another document");
            t.original += 1;
        } else {
            judge(&a, b"", &path, c, t);
        }
    }
    // the list: every document it shows is an original
    let a = get(server, http, "/acme/v2/c_recs?limit=1000", tok, &[], c, t);
    if a.status == 200 {
        let v = a.json();
        for d in v["data"]
            .as_array()
            .unwrap_or_else(|| panic!("{c} list: {v}"))
        {
            let id = d["_id"].as_str().unwrap();
            assert_eq!(
                o.docs.get(id),
                Some(d),
                "{c} the list shows another document {id}"
            );
        }
        t.original += 1;
    } else {
        judge(&a, b"", "list", c, t);
    }
    for (path, want) in &o.blobs {
        let a = get(server, http, path, tok, &[], c, t);
        if a.status == 200 && !a.cut {
            assert_eq!(
                a.etag.as_deref(),
                Some(sha256_hex(want).as_str()),
                "{c} {path}: ETag"
            );
        }
        judge(&a, want, path, c, t);
        // a range in the middle
        if want.len() > 70_000 {
            let a = get(
                server,
                http,
                path,
                tok,
                &[("Range", "bytes=65000-69999")],
                c,
                t,
            );
            judge(&a, &want[65000..70000], &format!("{path} (range)"), c, t);
        }
    }
}

/// Starts the server over a tampered copy; `None` if it refused to start (after checking it
/// said why in one line, without a panic).
fn start_tampered(root: &Path, c: &str) -> Option<(Server, Http)> {
    let mut server = Server::spawn(root, free_port(), &[]);
    let mut http = Http::new(&server.base());
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if http
            .send("GET", "/health", None, None)
            .is_ok_and(|a| a.status == 200)
        {
            return Some((server, http));
        }
        if let Some(st) = server.child.as_mut().unwrap().try_wait().unwrap() {
            let log = server.log();
            if log.contains("cannot listen on") {
                // the port was taken meanwhile: another one
                server = Server::spawn(root, free_port(), &[]);
                http = Http::new(&server.base());
                continue;
            }
            assert!(!st.success(), "{c} exited 0 without serving");
            assert!(!log.contains("panicked"), "{c} panicked at start:\n{log}");
            // one line says why (log records may come before it)
            let said: Vec<&str> = log.lines().filter(|l| l.starts_with("exportd: ")).collect();
            assert_eq!(said.len(), 1, "{c} not one line:\n{log}");
            assert_eq!(log.trim().lines().last(), Some(said[0]), "{c} {log}");
            eprintln!("  refused to start: {}", said[0]);
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "{c} neither serving nor exited within 30 s:\n{}",
        server.log()
    );
}

/// Reads everything, then `/health`; adds to `total`.
fn check_serving(server: &mut Server, http: &Http, o: &Originals, c: &str, total: &mut Tally) {
    let mut t = Tally::default();
    read_everything(server, http, o, c, &mut t);
    let a = http
        .send("GET", "/health", None, None)
        .unwrap_or_else(|e| panic!("{c} /health after the reads: {e}\n{}", server.log()));
    assert_eq!(a.status, 200, "{c} /health");
    let panics = server.log().matches("panicked").count();
    eprintln!(
        "  {} originals, faults by status {:?}, {} stopped downloads, {} retried, {panics} panics caught",
        t.original, t.faults, t.stopped, t.retried
    );
    total.original += t.original;
    total.stopped += t.stopped;
    total.retried += t.retried;
    for (k, n) in t.faults {
        *total.faults.entry(k).or_default() += n;
    }
    server.kill();
}

#[test]
fn flipped_bytes_on_disk_are_faults_or_originals_never_other_bytes() {
    let cases = env_usize("EXPORTD_TAMPER_CASES", 12);
    let seed = seed_from_env("EXPORTD_TAMPER_SEED");
    eprintln!("tamper: seed {seed} (EXPORTD_TAMPER_SEED), {cases} cases (EXPORTD_TAMPER_CASES)");
    let started = Instant::now();
    let pristine = tempfile::tempdir().unwrap();
    let originals = setup(pristine.path());
    let mut listing: Vec<String> = targets(&pristine.path().join("data"))
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p.strip_prefix(pristine.path()).unwrap().display(),
                std::fs::metadata(p).unwrap().len()
            )
        })
        .collect();
    listing.sort();
    eprintln!("tamper targets: {listing:?}");
    let mut refused = 0;
    let mut total = Tally::default();
    for case in 0..cases {
        let mut rng =
            StdRng::seed_from_u64(seed ^ (case as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let root = tempfile::tempdir().unwrap();
        copy_dir(pristine.path(), root.path());
        let what = tamper(&root.path().join("data"), &mut rng, case);
        let c = format!("[seed {seed}, case {case}: {what}]");
        eprintln!("case {case}: {what}");
        match start_tampered(root.path(), &c) {
            Some((mut server, http)) => {
                check_serving(&mut server, &http, &originals, &c, &mut total)
            }
            None => refused += 1,
        }
    }
    eprintln!(
        "tamper: seed {seed}: {cases} cases, {refused} refused to start with one line; reads: {} originals, faults {:?}, {} stopped downloads, {} retried; {:.1} s",
        total.original,
        total.faults,
        total.stopped,
        total.retried,
        started.elapsed().as_secs_f64()
    );
}

fn tree<'a>(store: &'a exportd::store::Store, name: &str) -> &'a sled::Tree {
    match name {
        "docs" => &store.t.docs,
        "blobs" => &store.t.blobs,
        "blob_meta" => &store.t.blob_meta,
        "exports" => &store.t.exports,
        "export_files" => &store.t.export_files,
        "objects" => &store.t.objects,
        "orgs" => &store.t.orgs,
        "usage" => &store.t.usage,
        other => panic!("no tree {other}"),
    }
}

/// Flips bytes in one stored value, or swaps the values of two keys, in one tree.
fn tamper_records(data: &Path, rng: &mut StdRng, trees: &[String]) -> String {
    let store = open_store(data);
    let name = &trees[rng.gen_range(0..trees.len())];
    let t = tree(&store, name);
    let keys: Vec<sled::IVec> = t.iter().keys().map(|k| k.unwrap()).collect();
    assert!(!keys.is_empty(), "tree {name} is empty");
    // a tree of one record (one org) can only have its value changed
    let what = if keys.len() < 2 || rng.gen_bool(0.7) {
        let k = &keys[rng.gen_range(0..keys.len())];
        let mut v = t.get(k).unwrap().unwrap().to_vec();
        let flips = rng.gen_range(1..=4);
        let mut at = Vec::new();
        for _ in 0..flips {
            let i = rng.gen_range(0..v.len());
            v[i] ^= 1u8 << rng.gen_range(0..8);
            at.push(i);
        }
        t.insert(k, v.as_slice()).unwrap();
        format!(
            "{name}: {flips} bit flips at {at:?} of a {}-byte value",
            v.len()
        )
    } else {
        let a = &keys[rng.gen_range(0..keys.len())];
        let mut b = &keys[rng.gen_range(0..keys.len())];
        while b == a {
            b = &keys[rng.gen_range(0..keys.len())];
        }
        let (va, vb) = (t.get(a).unwrap().unwrap(), t.get(b).unwrap().unwrap());
        t.insert(a, vb).unwrap();
        t.insert(b, va).unwrap();
        format!("{name}: values of two keys swapped")
    };
    store.flush().unwrap();
    what
}

#[test]
fn tampered_stored_values_are_faults_or_originals_never_other_bytes() {
    let cases = env_usize("EXPORTD_TAMPER_CASES", 12);
    let seed = seed_from_env("EXPORTD_TAMPER_SEED");
    let trees: Vec<String> = std::env::var("EXPORTD_TAMPER_TREES")
        .unwrap_or_else(|_| "docs,blobs,blob_meta,exports,export_files,objects,orgs,usage".into())
        .split(',')
        .map(String::from)
        .collect();
    eprintln!("tamper records: seed {seed} (EXPORTD_TAMPER_SEED), {cases} cases, trees {trees:?}");
    let started = Instant::now();
    let pristine = tempfile::tempdir().unwrap();
    let originals = setup(pristine.path());
    let mut total = Tally::default();
    for case in 0..cases {
        let mut rng =
            StdRng::seed_from_u64(seed ^ (case as u64 + 101).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let root = tempfile::tempdir().unwrap();
        copy_dir(pristine.path(), root.path());
        let what = tamper_records(&root.path().join("data"), &mut rng, &trees);
        let c = format!("[seed {seed}, record case {case}: {what}]");
        eprintln!("record case {case}: {what}");
        match start_tampered(root.path(), &c) {
            Some((mut server, http)) => {
                check_serving(&mut server, &http, &originals, &c, &mut total)
            }
            // sled itself is intact: one damaged record must not keep the server down
            None => panic!("{c} refused to start over one damaged record"),
        }
    }
    eprintln!(
        "tamper records: seed {seed}: {cases} cases, all served; reads: {} originals, faults {:?}, {} stopped downloads, {} retried; {:.1} s",
        total.original,
        total.faults,
        total.stopped,
        total.retried,
        started.elapsed().as_secs_f64()
    );
    assert!(
        total.faults.values().sum::<usize>() + total.stopped > 0 || cases < 4,
        "no case was noticed at all: the tampering missed"
    );
}
