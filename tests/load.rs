//! Load: 100 client threads across 20 orgs hammer the built server on loopback for
//! `EXPORTD_LOAD_SECS` (default 15) with a mix of create export, list, get, download
//! (dataFile/content, SHA-256 checked against the ETag) and delete. Each thread works on its
//! own exports, so every answer has one right status: any other (or a transport error) is an
//! unexpected error, and there must be none. Afterwards every created export that the test
//! did not delete must be listed once and end `ready`; per-org FIFO is checked from the event
//! timestamps (an export whose create was answered before another's was sent must end before
//! that one starts; no two runs of an org overlap). p50/p99 latencies per operation are
//! printed, not asserted. Small data: this is about concurrency, not size.

mod support;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

const ORGS: usize = 20;
const THREADS: usize = 100;
const DOCS_PER_ORG: usize = 30;
/// Exports a thread keeps at most (it deletes before creating more).
const KEEP: usize = 5;
const OPS: [&str; 5] = ["create", "list", "get", "download", "delete"];

struct Created {
    org: usize,
    id: String,
    sent: Instant,
    answered: Instant,
}

#[derive(Default)]
struct Shared {
    created: Vec<Created>,
    deleted: Vec<String>,
    errors: Vec<String>,
    latencies: BTreeMap<&'static str, Vec<Duration>>,
    downloads_verified: usize,
    bytes_downloaded: u64,
}

struct Mine {
    id: String,
    /// The archive's ETag once the export was seen ready.
    ready_etag: Option<String>,
}

fn client(
    http: Http,
    org: usize,
    token: String,
    deadline: Instant,
    mut rng: StdRng,
    shared: Arc<Mutex<Shared>>,
) {
    let code = format!("l{org:02}");
    let mut mine: Vec<Mine> = Vec::new();
    let mut lat: BTreeMap<&'static str, Vec<Duration>> = BTreeMap::new();
    let mut errors = Vec::new();
    let mut created = Vec::new();
    let mut deleted = Vec::new();
    let (mut verified, mut bytes) = (0, 0u64);
    while Instant::now() < deadline {
        let roll = rng.gen_range(0..100);
        let mut op = match roll {
            0..25 => "create",
            25..45 => "list",
            45..70 => "get",
            70..85 => "download",
            _ => "delete",
        };
        if op == "create" && mine.len() >= KEEP {
            op = "delete";
        }
        if (op == "get" || op == "delete") && mine.is_empty() {
            op = "create";
        }
        if op == "download" && !mine.iter().any(|m| m.ready_etag.is_some()) {
            op = if mine.is_empty() { "list" } else { "get" };
        }
        let t0 = Instant::now();
        let outcome: Result<(), String> = match op {
            "create" => {
                let format =
                    ["application/x-ndjson", "application/json", "text/csv"][rng.gen_range(0..3)];
                let body = json!({"label": "load", "objects": "c_items", "format": format});
                match http.json("POST", &format!("/{code}/v2/exports"), &token, Some(body)) {
                    Ok((201, v)) => {
                        let id = v["_id"].as_str().unwrap().to_string();
                        created.push(Created {
                            org,
                            id: id.clone(),
                            sent: t0,
                            answered: Instant::now(),
                        });
                        mine.push(Mine {
                            id,
                            ready_etag: None,
                        });
                        Ok(())
                    }
                    Ok((s, v)) => Err(format!("create: {s} {v}")),
                    Err(e) => Err(e),
                }
            }
            "list" => match http.json("GET", &format!("/{code}/v2/exports?limit=20"), &token, None)
            {
                Ok((200, v)) if v["object"] == "list" => Ok(()),
                Ok((s, v)) => Err(format!("list: {s} {v}")),
                Err(e) => Err(e),
            },
            "get" => {
                let k = rng.gen_range(0..mine.len());
                let id = mine[k].id.clone();
                match http.json("GET", &format!("/{code}/v2/exports/{id}"), &token, None) {
                    Ok((200, v)) => {
                        if v["state"] == "ready" {
                            mine[k].ready_etag = v["dataFile"]["ETag"].as_str().map(String::from);
                        }
                        if v["state"] == "error" {
                            Err(format!("export {id} failed: {v}"))
                        } else {
                            Ok(())
                        }
                    }
                    Ok((s, v)) => Err(format!("get {id}: {s} {v}")),
                    Err(e) => Err(e),
                }
            }
            "download" => {
                let ready: Vec<usize> = (0..mine.len())
                    .filter(|k| mine[*k].ready_etag.is_some())
                    .collect();
                let m = &mine[ready[rng.gen_range(0..ready.len())]];
                let path = format!("/{code}/v2/exports/{}/dataFile/content", m.id);
                match http.send("GET", &path, Some(&token), None) {
                    Ok(a) if a.status == 200 && !a.cut => {
                        let sha = sha256_hex(&a.body);
                        if a.etag.as_deref() != Some(sha.as_str())
                            || m.ready_etag.as_deref() != Some(sha.as_str())
                        {
                            Err(format!(
                                "download {}: SHA-256 {sha}, ETag {:?}, record {:?}",
                                m.id, a.etag, m.ready_etag
                            ))
                        } else {
                            verified += 1;
                            bytes += a.body.len() as u64;
                            Ok(())
                        }
                    }
                    Ok(a) => Err(format!(
                        "download {}: {} (cut {}) {}",
                        m.id,
                        a.status,
                        a.cut,
                        String::from_utf8_lossy(&a.body)
                    )),
                    Err(e) => Err(e),
                }
            }
            _ => {
                let k = rng.gen_range(0..mine.len());
                let id = mine.swap_remove(k).id;
                match http.json("DELETE", &format!("/{code}/v2/exports/{id}"), &token, None) {
                    Ok((200, _)) => {
                        deleted.push(id);
                        Ok(())
                    }
                    Ok((s, v)) => Err(format!("delete {id}: {s} {v}")),
                    Err(e) => Err(e),
                }
            }
        };
        let op: &'static str = OPS.iter().find(|o| **o == op).unwrap();
        lat.entry(op).or_default().push(t0.elapsed());
        if let Err(e) = outcome {
            errors.push(format!("{code} {op}: {e}"));
        }
    }
    let mut s = shared.lock().unwrap();
    s.created.extend(created);
    s.deleted.extend(deleted);
    s.errors.extend(errors);
    for (op, v) in lat {
        s.latencies.entry(op).or_default().extend(v);
    }
    s.downloads_verified += verified;
    s.bytes_downloaded += bytes;
}

/// An export's runs as [start, end] from its events and completion.
fn runs(events: &[(String, String)], completed: Option<&str>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut open: Option<String> = None;
    for (name, at) in events {
        match name.as_str() {
            "started" => {
                if let Some(o) = open.replace(at.clone()) {
                    out.push((o, at.clone()));
                }
            }
            "aborted" => {
                if let Some(o) = open.take() {
                    out.push((o, at.clone()));
                }
            }
            _ => {}
        }
    }
    if let Some(o) = open {
        out.push((o, completed.unwrap_or("~").to_string()));
    }
    out
}

#[test]
fn hundred_clients_twenty_orgs_no_errors_no_lost_exports_fifo_kept() {
    let secs = env_usize("EXPORTD_LOAD_SECS", 15) as u64;
    let seed = seed_from_env("EXPORTD_LOAD_SEED");
    eprintln!(
        "load: seed {seed} (EXPORTD_LOAD_SEED), {THREADS} threads over {ORGS} orgs for {secs} s (EXPORTD_LOAD_SECS)"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), free_port(), &[]);
    let http = Http::new(&server.base());
    let mut tokens = Vec::new();
    for o in 0..ORGS {
        let code = format!("l{o:02}");
        let tok = http.org_with_admin(&code, json!({}));
        let (s, v) = http.must(
            "POST",
            &format!("/{code}/v2/objects"),
            &tok,
            Some(json!({"name": "c_item", "properties": [
                {"name": "c_name", "type": "String"}, {"name": "c_n", "type": "Number"}]})),
        );
        assert_eq!(s, 201, "{v}");
        let lines: Vec<String> = (0..DOCS_PER_ORG)
            .map(|n| json!({"c_name": format!("{code} item {n}"), "c_n": n}).to_string())
            .collect();
        let (s, v) = http
            .bulk(&format!("/{code}/v2/c_items"), &tok, &lines)
            .unwrap();
        assert_eq!(s, 200, "{v}");
        tokens.push(tok);
    }
    let shared = Arc::new(Mutex::new(Shared::default()));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut rng = StdRng::seed_from_u64(seed);
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let org = t % ORGS;
            let (h, tok, sh) = (
                Http::new(&server.base()),
                tokens[org].clone(),
                shared.clone(),
            );
            let r = StdRng::seed_from_u64(rng.r#gen());
            std::thread::spawn(move || client(h, org, tok, deadline, r, sh))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let wall = started.elapsed();
    let s = shared.lock().unwrap();
    let c = format!("[seed {seed}]");

    // latencies first, so a failure below still shows them
    let total_ops: usize = s.latencies.values().map(|v| v.len()).sum();
    eprintln!(
        "load: {total_ops} requests in {:.1} s ({:.0}/s), {} exports created, {} deleted, {} downloads verified ({} KiB)",
        wall.as_secs_f64(),
        total_ops as f64 / wall.as_secs_f64(),
        s.created.len(),
        s.deleted.len(),
        s.downloads_verified,
        s.bytes_downloaded / 1024
    );
    for (op, v) in &s.latencies {
        let mut v = v.clone();
        v.sort();
        eprintln!(
            "  {op:<9} n={:<6} p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms",
            v.len(),
            percentile(&v, 50.0).as_secs_f64() * 1000.0,
            percentile(&v, 99.0).as_secs_f64() * 1000.0,
            v.last().unwrap().as_secs_f64() * 1000.0
        );
    }
    assert!(
        s.errors.is_empty(),
        "{c} {} unexpected answers, first: {:#?}",
        s.errors.len(),
        &s.errors[..s.errors.len().min(10)]
    );
    assert!(s.created.len() >= THREADS, "{c} too little was created");

    // every export the test kept ends ready; the listing holds exactly those
    let gone: std::collections::HashSet<&str> = s.deleted.iter().map(|d| d.as_str()).collect();
    let settle = Instant::now() + Duration::from_secs(120);
    let live_q =
        "where=%7B%22state%22%3A%7B%22%24in%22%3A%5B%22pending%22%2C%22running%22%5D%7D%7D";
    for (o, tok) in tokens.iter().enumerate() {
        let code = format!("l{o:02}");
        loop {
            let (st, v) = http.must("GET", &format!("/{code}/v2/exports?{live_q}"), tok, None);
            assert_eq!(st, 200, "{v}");
            if v["data"].as_array().unwrap().is_empty() {
                break;
            }
            assert!(
                Instant::now() < settle,
                "{c} {code}: exports never settled: {v}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let mut by_org: HashMap<usize, Vec<&Created>> = HashMap::new();
    for cr in &s.created {
        if !gone.contains(cr.id.as_str()) {
            by_org.entry(cr.org).or_default().push(cr);
        }
    }
    let mut checked = 0;
    let mut fifo_pairs = 0;
    for (o, tok) in tokens.iter().enumerate() {
        let code = format!("l{o:02}");
        let kept = by_org.remove(&o).unwrap_or_default();
        let (_, list) = http.must("GET", &format!("/{code}/v2/exports?limit=1000"), tok, None);
        let mut listed: Vec<String> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["_id"].as_str().unwrap().to_string())
            .collect();
        listed.sort();
        let mut want: Vec<String> = kept.iter().map(|k| k.id.clone()).collect();
        want.sort();
        assert_eq!(
            listed, want,
            "{c} {code}: the listing is not the exports kept"
        );
        // (created, events, completed)
        let mut seen = Vec::new();
        for k in &kept {
            let (st, v) = http.must(
                "GET",
                &format!("/{code}/v2/exports/{}?include=events", k.id),
                tok,
                None,
            );
            assert_eq!(st, 200);
            assert_eq!(v["state"], "ready", "{c} {code}: export ended {v}");
            let events: Vec<(String, String)> = v["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["name"].as_str().unwrap().to_string(),
                        e["at"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            let starts = events.iter().filter(|e| e.0 == "started").count();
            assert_eq!(starts, 1, "{c} {code}: {} started {starts} times", k.id);
            seen.push((*k, events, v["completed"].as_str().unwrap().to_string()));
            checked += 1;
        }
        for (a, _, a_done) in &seen {
            for (b, b_events, _) in &seen {
                if a.answered < b.sent {
                    fifo_pairs += 1;
                    let b_start = &b_events.iter().find(|e| e.0 == "started").unwrap().1;
                    assert!(
                        a_done <= b_start,
                        "{c} {code}: FIFO broken: {} was created after {} was acknowledged but started at {b_start}, before it ended at {a_done}",
                        b.id,
                        a.id
                    );
                }
            }
        }
        let all: Vec<(&str, (String, String))> = seen
            .iter()
            .flat_map(|(k, ev, done)| {
                runs(ev, Some(done.as_str()))
                    .into_iter()
                    .map(move |r| (k.id.as_str(), r))
            })
            .collect();
        for (i, (x, rx)) in all.iter().enumerate() {
            for (y, ry) in &all[i + 1..] {
                assert!(
                    x == y || !(rx.0 < ry.1 && ry.0 < rx.1),
                    "{c} {code}: runs of {x} {rx:?} and {y} {ry:?} overlap"
                );
            }
        }
    }
    let log = server.log();
    assert!(!log.contains("panicked"), "{c} the server panicked:\n{log}");
    assert!(server.term(Duration::from_secs(10)), "{c} SIGTERM");
    let store = open_store(&server.data_dir());
    let problems = store.check_consistency().unwrap();
    assert!(problems.is_empty(), "{c} {problems:#?}");
    eprintln!(
        "load: seed {seed}: 0 unexpected answers, {checked} kept exports all ready, {fifo_pairs} ordered pairs in FIFO, store consistent"
    );
}
