//! Crash matrix: the built server is SIGKILLed at seeded random moments while exports are
//! being created, running, finishing, deleted and expired, and while NDJSON bulk bodies are
//! being ingested, then restarted. After every kill:
//!
//! - offline (store opened by the test, before the restart): the only problems
//!   `check_consistency` finds are the debris a crash may leave and the start-up reclaim
//!   removes (unfinished or half-deleted blobs), usage equals a recount, and debris seen at the
//!   previous kill is gone (the server reclaimed it when it restarted); every acknowledged
//!   document is present with its value;
//! - over the API (after the restart): every acknowledged export is listed exactly once
//!   unless its acknowledged delete succeeded (then 404) or it expired (then 404); no more
//!   unacknowledged records than creates left without an answer; per-org FIFO from the event
//!   log (an export starts only after every export acknowledged before it ended; no two runs
//!   of one org overlap; a run restarts only after an `aborted`); the server log has no panic.
//!
//! At the end every export settles, ready archives match their ETag, SIGTERM exits 0 and
//! the store is fully consistent. `EXPORTD_CRASH_KILLS` (default 20) sets the number of
//! kills, `EXPORTD_CRASH_SEED` the seed (printed).

mod support;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

/// `cx` has a tiny export TTL (2.6 s) so the janitor expires its exports all the time.
const ORGS: [&str; 4] = ["c0", "c1", "c2", "cx"];
const TTL_DAYS: f64 = 0.00003;
const PHASES: [&str; 6] = [
    "creating",
    "running",
    "finishing",
    "deleting",
    "expiring",
    "ingesting",
];
/// Documents of `c_row` per org: c0's exports take a few hundred ms, the others are short.
const ROWS: [usize; 4] = [6000, 1200, 300, 200];
const FILES_IN_C2: usize = 8;

struct Acked {
    id: String,
    expires: chrono::DateTime<chrono::Utc>,
}

#[derive(Default)]
struct OrgLedger {
    token: String,
    /// Exports whose create answered 201, in answer order (one client per org, so this is
    /// creation order).
    acked: Vec<Acked>,
    deleted: HashSet<String>,
    /// Deletes sent without an answer: either outcome is right.
    maybe_deleted: HashSet<String>,
    unacked_creates: usize,
}

#[derive(Default)]
struct Ledger {
    orgs: BTreeMap<String, OrgLedger>,
    /// Acknowledged bulk documents of c1/c_ing: id → c_n.
    docs: HashMap<String, u64>,
    bulk_sent: u64,
    bulk_unacked: u64,
    /// Answers no client should ever get.
    errors: Vec<String>,
}

impl OrgLedger {
    /// Acknowledged exports neither deleted (surely or maybe) nor expired.
    fn kept(&self) -> impl Iterator<Item = &Acked> {
        self.acked.iter().filter(move |a| {
            !self.deleted.contains(&a.id)
                && !self.maybe_deleted.contains(&a.id)
                && a.expires > chrono::Utc::now()
        })
    }
}

impl Ledger {
    fn org_mut(&mut self, org: &str) -> &mut OrgLedger {
        self.orgs.get_mut(org).unwrap()
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn live_query() -> String {
    format!(
        "where={}&limit=1000",
        enc(r#"{"state":{"$in":["pending","running"]}}"#)
    )
}

fn ctx(seed: u64, kill: usize, phase: &str) -> String {
    format!("[seed {seed}, kill {kill}, {phase}]")
}

fn main_setup(http: &Http, ledger: &mut Ledger) {
    for (i, org) in ORGS.iter().enumerate() {
        let tok = http.org_with_admin(org, json!({}));
        let (s, v) = http.must(
            "POST",
            &format!("/{org}/v2/objects"),
            &tok,
            Some(json!({"name": "c_row", "properties": [
                {"name": "c_text", "type": "String"}, {"name": "c_n", "type": "Number"},
                {"name": "c_file", "type": "File"}]})),
        );
        assert_eq!(s, 201, "{v}");
        let lines: Vec<String> = (0..ROWS[i])
            .map(|n| {
                json!({"c_text": format!("{org} row {n} {}", "r".repeat(200)), "c_n": n})
                    .to_string()
            })
            .collect();
        let (s, v) = http
            .bulk(&format!("/{org}/v2/c_rows"), &tok, &lines)
            .unwrap();
        assert_eq!(s, 200, "{v}");
        if *org == "c2" {
            let ids = v["data"]["ids"].as_array().unwrap();
            for (k, id) in ids.iter().take(FILES_IN_C2).enumerate() {
                let content: Vec<u8> = (0..(40_000 + k * 9_000))
                    .map(|b| (b * 31 + k) as u8)
                    .collect();
                let a = http
                    .send(
                        "PUT",
                        &format!("/c2/v2/c_rows/{}/c_file/content", id.as_str().unwrap()),
                        Some(&tok),
                        Some(("application/octet-stream", &content)),
                    )
                    .unwrap();
                assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
            }
        }
        if *org == "c1" {
            let (s, v) = http.must(
                "POST",
                "/c1/v2/objects",
                &tok,
                Some(json!({"name": "c_ing", "properties": [
                    {"name": "c_text", "type": "String"}, {"name": "c_n", "type": "Number"}]})),
            );
            assert_eq!(s, 201, "{v}");
        }
        if *org == "cx" {
            let (s, v) = http.must(
                "PATCH",
                "/sys/orgs/cx",
                SYS,
                Some(json!({"exportTtlDays": TTL_DAYS})),
            );
            assert_eq!(s, 200, "{v}");
        }
        ledger.orgs.insert(
            org.to_string(),
            OrgLedger {
                token: tok,
                ..Default::default()
            },
        );
    }
}

/// One org's export client for one life of the server: creates, polls and deletes
/// sequentially until stopped or the server is gone.
fn export_client(
    http: Http,
    org: &'static str,
    phase: &'static str,
    mut rng: StdRng,
    stop: Arc<AtomicBool>,
    saw_running: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
) {
    let token = ledger.lock().unwrap().orgs[org].token.clone();
    let note = |e: String| ledger.lock().unwrap().errors.push(format!("{org}: {e}"));
    while !stop.load(Ordering::SeqCst) {
        let live = match http.json(
            "GET",
            &format!("/{org}/v2/exports?{}", live_query()),
            &token,
            None,
        ) {
            Ok((200, v)) => v["data"].as_array().cloned().unwrap_or_default(),
            Ok((s, v)) => {
                note(format!("list answered {s}: {v}"));
                break;
            }
            Err(_) => break,
        };
        if live.iter().any(|e| e["state"] == "running") && org == "c0" {
            saw_running.store(true, Ordering::SeqCst);
        }
        let n = live.len();
        let (cap, p_delete) = match phase {
            "creating" => (8, 0.1),
            "running" => (if org == "c0" { 2 } else { 1 }, 0.05),
            "finishing" => (if org == "c0" { 1 } else { 4 }, 0.05),
            "deleting" => (3, 0.6),
            "expiring" => (if org == "cx" { 4 } else { 1 }, 0.05),
            _ => (1, 0.05),
        };
        let kept = ledger.lock().unwrap().orgs[org].kept().count();
        // creating: make room rather than wait, so creates keep coming
        let make_room = phase == "creating" && n >= cap;
        if rng.gen_bool(p_delete) || kept > 12 || make_room {
            // delete one acknowledged export (any state)
            let pick = {
                let l = ledger.lock().unwrap();
                let c: Vec<&Acked> = l.orgs[org].kept().collect();
                (!c.is_empty()).then(|| {
                    let a = c[rng.gen_range(0..c.len())];
                    (a.id.clone(), a.expires)
                })
            };
            if let Some((id, expires)) = pick {
                match http.json("DELETE", &format!("/{org}/v2/exports/{id}"), &token, None) {
                    Ok((200, _)) => {
                        ledger.lock().unwrap().org_mut(org).deleted.insert(id);
                    }
                    Ok((404, _)) if expires <= chrono::Utc::now() => {
                        // expired meanwhile: gone either way
                        ledger.lock().unwrap().org_mut(org).deleted.insert(id);
                    }
                    Ok((s, v)) => note(format!("DELETE {id} answered {s}: {v}")),
                    Err(_) => {
                        ledger.lock().unwrap().org_mut(org).maybe_deleted.insert(id);
                        break;
                    }
                }
                continue;
            }
        }
        if n < cap {
            let format =
                ["application/x-ndjson", "application/json", "text/csv"][rng.gen_range(0..3)];
            let mut body = json!({"label": format!("{phase} {}", rng.r#gen::<u16>()), "objects": "c_rows", "format": format});
            if org == "c2" && rng.gen_bool(0.5) {
                body["exportFiles"] = json!(true);
                body["zipFiles"] = json!(rng.gen_bool(0.5));
            }
            if org != "c0" && rng.gen_bool(0.3) {
                body["paths"] = json!(["c_n"]);
            }
            match http.json("POST", &format!("/{org}/v2/exports"), &token, Some(body)) {
                Ok((201, v)) => {
                    let id = v["_id"].as_str().unwrap().to_string();
                    let expires =
                        chrono::DateTime::parse_from_rfc3339(v["expiresAt"].as_str().unwrap())
                            .unwrap()
                            .with_timezone(&chrono::Utc);
                    ledger
                        .lock()
                        .unwrap()
                        .org_mut(org)
                        .acked
                        .push(Acked { id, expires });
                }
                Ok((s, v)) => note(format!("create answered {s}: {v}")),
                Err(_) => {
                    ledger.lock().unwrap().org_mut(org).unacked_creates += 1;
                    break;
                }
            }
            continue;
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(5..30)));
    }
}

/// NDJSON bulk bodies into c1/c_ing; each line carries a unique c_n.
fn ingest_client(
    http: Http,
    phase: &'static str,
    mut rng: StdRng,
    stop: Arc<AtomicBool>,
    next_n: Arc<AtomicU64>,
    ledger: Arc<Mutex<Ledger>>,
) {
    let token = ledger.lock().unwrap().orgs["c1"].token.clone();
    let mut bodies = 0;
    while !stop.load(Ordering::SeqCst) {
        // long runs stop growing the object past ~150k documents (offline checks read it all)
        let big = ledger.lock().unwrap().docs.len() < 150_000;
        let lines_per_body = if phase == "ingesting" && big {
            rng.gen_range(2000..6000)
        } else if phase == "ingesting" {
            rng.gen_range(100..400)
        } else if bodies == 0 {
            rng.gen_range(100..800)
        } else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let first = next_n.fetch_add(lines_per_body, Ordering::SeqCst);
        let lines: Vec<String> = (first..first + lines_per_body)
            .map(|n| json!({"c_n": n, "c_text": format!("ingested {n}")}).to_string())
            .collect();
        ledger.lock().unwrap().bulk_sent += 1;
        bodies += 1;
        match http.bulk("/c1/v2/c_ings", &token, &lines) {
            Ok((200, v)) => {
                let ids = v["data"]["ids"].as_array().cloned().unwrap_or_default();
                let mut l = ledger.lock().unwrap();
                if ids.len() as u64 != lines_per_body || v["data"]["faultCount"] != 0 {
                    l.errors.push(format!(
                        "bulk kept {} of {lines_per_body}: {}",
                        ids.len(),
                        v["data"]["faults"]
                    ));
                }
                for (k, id) in ids.iter().enumerate() {
                    l.docs
                        .insert(id.as_str().unwrap().to_string(), first + k as u64);
                }
            }
            Ok((s, v)) => ledger
                .lock()
                .unwrap()
                .errors
                .push(format!("bulk answered {s}: {v}")),
            Err(_) => {
                ledger.lock().unwrap().bulk_unacked += 1;
                break;
            }
        }
    }
}

/// Requests left without an answer so far: (creates, deletes, bulk bodies).
fn in_flight(l: &Ledger) -> (usize, usize, usize) {
    (
        l.orgs.values().map(|o| o.unacked_creates).sum(),
        l.orgs.values().map(|o| o.maybe_deleted.len()).sum(),
        l.bulk_unacked as usize,
    )
}

/// Debris a crash may leave and the start-up reclaim and sweep remove, by blob or export id.
fn debris_id(problem: &str) -> Option<String> {
    let rest = problem
        .strip_prefix("orphan blob ")
        .or_else(|| problem.strip_prefix("segments of blob "))
        .or_else(|| problem.strip_prefix("side files of export "))
        .or_else(|| problem.strip_prefix("events of export "))?;
    Some(rest.split_whitespace().next()?.to_string())
}

/// The store of the killed server: only reclaimable debris (none left over from the previous
/// kill), usage equal to a recount, every acknowledged document present.
fn offline_check(
    data: &std::path::Path,
    ledger: &Ledger,
    previous_debris: &HashSet<String>,
    c: &str,
) -> HashSet<String> {
    let store = open_store(data);
    let problems = store.check_consistency().unwrap();
    let mut debris = HashSet::new();
    for p in &problems {
        match debris_id(p) {
            Some(id) => {
                assert!(
                    !previous_debris.contains(&id),
                    "{c} debris of the previous crash was not reclaimed at restart: {p}"
                );
                debris.insert(id);
            }
            None => panic!("{c} the crash left an inconsistency: {p}\nall: {problems:#?}"),
        }
    }
    let mut present: HashMap<String, u64> = HashMap::new();
    for d in store.iter_docs("c1", "c_ing", false) {
        let d = d.unwrap();
        present.insert(d.id.to_hex(), d.props["c_n"].as_f64().unwrap() as u64);
    }
    for (id, n) in &ledger.docs {
        match present.get(id) {
            Some(got) => assert_eq!(got, n, "{c} document {id} has another value"),
            None => panic!("{c} acknowledged document {id} (c_n {n}) is lost"),
        }
    }
    drop(store);
    debris
}

struct Seen {
    state: String,
    completed: Option<String>,
    events: Vec<(String, String)>,
}

fn seen(http: &Http, org: &str, tok: &str, id: &str) -> Option<Seen> {
    let (s, v) = http.must(
        "GET",
        &format!("/{org}/v2/exports/{id}?include=events"),
        tok,
        None,
    );
    if s == 404 {
        return None;
    }
    assert_eq!(s, 200, "GET export {id}: {v}");
    Some(Seen {
        state: v["state"].as_str().unwrap().to_string(),
        completed: v["completed"].as_str().map(String::from),
        events: v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_string(),
                    e["at"].as_str().unwrap().to_string(),
                )
            })
            .collect(),
    })
}

/// Runs of an export as [start, end) from its events (end: the `aborted` of a crash or the
/// completion; "~" while it still runs).
fn runs(s: &Seen) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut open: Option<String> = None;
    for (name, at) in &s.events {
        match name.as_str() {
            "started" => {
                if let Some(o) = open.take() {
                    // a start without an abort in between: a second run (checked elsewhere)
                    out.push((o, at.clone()));
                }
                open = Some(at.clone());
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
        let end = match s.state.as_str() {
            "ready" | "error" => s.completed.clone().unwrap_or_else(|| "~".into()),
            _ => "~".into(),
        };
        out.push((o, end));
    }
    out
}

/// Over the API: acknowledged exports present exactly once (or gone when deleted/expired),
/// no phantom records, per-org FIFO and exclusive runs.
fn api_check(http: &Http, ledger: &Ledger, c: &str) -> usize {
    let mut checked = 0;
    for (org, o) in &ledger.orgs {
        let tok = &o.token;
        let before = chrono::Utc::now();
        let (s, list) = http.must(
            "GET",
            &format!("/{org}/v2/exports?limit=1000&total=true"),
            tok,
            None,
        );
        assert_eq!(s, 200, "{c} list {org}: {list}");
        let listed: Vec<String> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["_id"].as_str().unwrap().to_string())
            .collect();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for id in &listed {
            *counts.entry(id.as_str()).or_default() += 1;
        }
        assert!(
            counts.values().all(|n| *n == 1),
            "{c} an export is listed twice in {org}: {listed:?}"
        );
        let after = chrono::Utc::now();
        let acked: HashSet<&str> = o.acked.iter().map(|a| a.id.as_str()).collect();
        let mut present: Vec<(&str, bool)> = Vec::new(); // (id, acknowledged)
        for a in &o.acked {
            let n = counts.get(a.id.as_str()).copied().unwrap_or(0);
            // the API hides an export once expired: for sure before the listing, or not
            // yet after it
            let expired = a.expires <= before;
            let live = a.expires > after;
            if o.deleted.contains(&a.id) {
                assert_eq!(
                    n, 0,
                    "{c} {org}: export {} was deleted (acknowledged) but is listed",
                    a.id
                );
                let (s, _) = http.must("GET", &format!("/{org}/v2/exports/{}", a.id), tok, None);
                assert_eq!(s, 404, "{c} {org}: deleted export {} answers {s}", a.id);
            } else if expired {
                assert_eq!(
                    n, 0,
                    "{c} {org}: export {} expired at {} but is listed",
                    a.id, a.expires
                );
            } else if o.maybe_deleted.contains(&a.id) || !live {
                // either
            } else {
                assert_eq!(n, 1, "{c} {org}: acknowledged export {} is lost", a.id);
            }
            if n == 1 {
                present.push((a.id.as_str(), true));
            }
        }
        let extras: Vec<&String> = listed
            .iter()
            .filter(|id| !acked.contains(id.as_str()))
            .collect();
        assert!(
            extras.len() <= o.unacked_creates,
            "{c} {org}: {} records nobody acknowledged, only {} creates went unanswered: {extras:?}",
            extras.len(),
            o.unacked_creates
        );
        for e in &extras {
            present.push((e.as_str(), false));
        }
        // FIFO and exclusive runs, from the event logs
        // newest first: runs go on while we read, so an earlier export is always read after
        // a later one and its view is at least as fresh (a later export seen started means
        // the earlier one is seen ended)
        let mut views: Vec<(String, bool, Seen)> = Vec::new();
        for (id, is_acked) in present.into_iter().rev() {
            if let Some(s) = seen(http, org, tok, id) {
                views.push((id.to_string(), is_acked, s));
            }
        }
        views.reverse();
        checked += views.len();
        let problems = fifo_problems(&views);
        assert!(problems.is_empty(), "{c} {org}: {problems:#?}");
    }
    checked
}

/// Per-org FIFO and exclusive runs over the exports of one org: `(id, acknowledged, seen)`,
/// acknowledged ones in creation order, each read no earlier than the ones after it. Runs
/// still open when read are covered by the order check; the overlap check takes the runs
/// that have ended (their bounds are facts, whenever they were read). Returns what is wrong.
fn fifo_problems(views: &[(String, bool, Seen)]) -> Vec<String> {
    let mut out = Vec::new();
    for (id, _, s) in views {
        let starts = s.events.iter().filter(|e| e.0 == "started").count();
        let aborts = s.events.iter().filter(|e| e.0 == "aborted").count();
        if starts > aborts + 1 {
            out.push(format!(
                "export {id} started {starts} times with {aborts} aborts: {:?}",
                s.events
            ));
        }
    }
    let ordered: Vec<&(String, bool, Seen)> = views.iter().filter(|v| v.1).collect();
    for (i, (a, _, sa)) in ordered.iter().enumerate() {
        for (b, _, sb) in &ordered[i + 1..] {
            for (name, at) in &sb.events {
                let ended = matches!(sa.state.as_str(), "ready" | "error");
                if name == "started"
                    && !(ended
                        && sa
                            .completed
                            .as_deref()
                            .is_some_and(|done| done <= at.as_str()))
                {
                    out.push(format!(
                        "FIFO broken: {b} started at {at} before the earlier {a} ended ({} {:?})\n{a}: {:?}\n{b}: {:?}",
                        sa.state, sa.completed, sa.events, sb.events
                    ));
                }
            }
        }
    }
    let all_runs: Vec<(&str, (String, String))> = views
        .iter()
        .flat_map(|(id, _, s)| runs(s).into_iter().map(move |r| (id.as_str(), r)))
        .collect();
    for (i, (x, rx)) in all_runs.iter().enumerate() {
        for (y, ry) in &all_runs[i + 1..] {
            let closed = rx.1 != "~" && ry.1 != "~";
            if x != y && closed && rx.0 < ry.1 && ry.0 < rx.1 {
                out.push(format!("runs of {x} {rx:?} and {y} {ry:?} overlap"));
            }
        }
    }
    out
}

#[test]
fn the_fifo_check_sees_violations() {
    let ev = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(n, a)| (n.to_string(), a.to_string()))
            .collect()
    };
    let done = |events: Vec<(String, String)>, completed: &str| Seen {
        state: "ready".into(),
        completed: Some(completed.into()),
        events,
    };
    let t = |s: u32| format!("2026-11-29T12:00:{s:02}.000Z");
    // in order, a crash in the middle of the first run: fine
    let a = done(
        ev(&[
            ("queued", &t(0)),
            ("started", &t(1)),
            ("aborted", &t(3)),
            ("started", &t(4)),
        ]),
        &t(5),
    );
    let b = done(ev(&[("queued", &t(0)), ("started", &t(5))]), &t(6));
    let ok = vec![("a".to_string(), true, a), ("b".to_string(), true, b)];
    assert!(fifo_problems(&ok).is_empty(), "{:?}", fifo_problems(&ok));
    // b started before a ended
    let a = done(ev(&[("started", &t(1))]), &t(5));
    let b = done(ev(&[("started", &t(4))]), &t(6));
    let p = fifo_problems(&[("a".into(), true, a), ("b".into(), true, b)]);
    assert!(p.iter().any(|p| p.starts_with("FIFO broken")), "{p:?}");
    assert!(p.iter().any(|p| p.contains("overlap")), "{p:?}");
    // an unacknowledged record running beside another one
    let a = done(ev(&[("started", &t(1))]), &t(5));
    let x = done(ev(&[("started", &t(2))]), &t(3));
    let p = fifo_problems(&[("a".into(), true, a), ("x".into(), false, x)]);
    assert_eq!(p.len(), 1, "{p:?}");
    // the later one started while the earlier one is still pending
    let a = Seen {
        state: "pending".into(),
        completed: None,
        events: ev(&[("queued", &t(0))]),
    };
    let b = done(ev(&[("started", &t(1))]), &t(2));
    assert_eq!(
        fifo_problems(&[("a".into(), true, a), ("b".into(), true, b)]).len(),
        1
    );
    // restarted without an abort (a second run of the same export)
    let a = done(ev(&[("started", &t(1)), ("started", &t(2))]), &t(3));
    assert_eq!(fifo_problems(&[("a".into(), true, a)]).len(), 1);
}

fn no_panic_in_log(server: &Server, c: &str) {
    let log = server.log();
    assert!(!log.contains("panicked"), "{c} the server panicked:\n{log}");
}

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let kills = env_usize("EXPORTD_CRASH_KILLS", 20);
    let seed = seed_from_env("EXPORTD_CRASH_SEED");
    eprintln!(
        "crash matrix: seed {seed} (EXPORTD_CRASH_SEED), {kills} kills (EXPORTD_CRASH_KILLS)"
    );
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = Server::start(
        dir.path(),
        port,
        &["--janitor-interval", "1", "--max-concurrent", "2"],
    );
    let http = Http::new(&server.base());
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    main_setup(&http, &mut ledger.lock().unwrap());
    let next_n = Arc::new(AtomicU64::new(0));
    let mut debris: HashSet<String> = HashSet::new();
    let mut per_phase: BTreeMap<&str, usize> = BTreeMap::new();
    let mut debris_total = 0;
    let mut running_hits = 0;
    let mut cut_totals = (0, 0, 0);

    for k in 0..kills {
        let phase = PHASES[k % PHASES.len()];
        let c = ctx(seed, k, phase);
        let mut rng =
            StdRng::seed_from_u64(seed ^ (k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let stop = Arc::new(AtomicBool::new(false));
        let saw_running = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for org in ORGS {
            let (h, st, sr, l) = (
                http.clone(),
                stop.clone(),
                saw_running.clone(),
                ledger.clone(),
            );
            let r = StdRng::seed_from_u64(rng.r#gen());
            threads.push(std::thread::spawn(move || {
                export_client(h, org, phase, r, st, sr, l)
            }));
        }
        {
            let (h, st, n, l) = (http.clone(), stop.clone(), next_n.clone(), ledger.clone());
            let r = StdRng::seed_from_u64(rng.r#gen());
            threads.push(std::thread::spawn(move || {
                ingest_client(h, phase, r, st, n, l)
            }));
        }
        let in_flight_before = in_flight(&ledger.lock().unwrap());
        let t0 = Instant::now();
        let delay = match phase {
            "creating" => rng.gen_range(30..400),
            "running" => {
                let deadline = Instant::now() + Duration::from_secs(5);
                while !saw_running.load(Ordering::SeqCst) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
                if saw_running.load(Ordering::SeqCst) {
                    running_hits += 1;
                }
                rng.gen_range(0..250)
            }
            "finishing" => rng.gen_range(100..900),
            "deleting" => rng.gen_range(100..700),
            "expiring" => rng.gen_range(500..3000),
            _ => rng.gen_range(50..800),
        };
        std::thread::sleep(Duration::from_millis(delay));
        let at = t0.elapsed();
        no_panic_in_log(&server, &c);
        server.kill();
        stop.store(true, Ordering::SeqCst);
        for t in threads {
            t.join().unwrap();
        }
        *per_phase.entry(phase).or_default() += 1;
        {
            let l = ledger.lock().unwrap();
            assert!(
                l.errors.is_empty(),
                "{c} unexpected answers: {:#?}",
                l.errors
            );
            debris = offline_check(&server.data_dir(), &l, &debris, &c);
            debris_total += debris.len();
        }
        server.restart();
        let l = ledger.lock().unwrap();
        let checked = api_check(&http, &l, &c);
        let acked: usize = l.orgs.values().map(|o| o.acked.len()).sum();
        let cut = in_flight(&l);
        let cut = (
            cut.0 - in_flight_before.0,
            cut.1 - in_flight_before.1,
            cut.2 - in_flight_before.2,
        );
        cut_totals = (
            cut_totals.0 + cut.0,
            cut_totals.1 + cut.1,
            cut_totals.2 + cut.2,
        );
        eprintln!(
            "kill {k:>3} {phase:<9} at {:>5} ms: cut short {} creates, {} deletes, {} bulk bodies; \
             {acked} exports acknowledged, {checked} visible checked, {} documents acknowledged, {} debris blobs",
            at.as_millis(),
            cut.0,
            cut.1,
            cut.2,
            l.docs.len(),
            debris.len()
        );
    }

    // settle: every export ends, archives match their ETag
    let c = ctx(seed, kills, "settle");
    let l = ledger.lock().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    for (org, o) in &l.orgs {
        loop {
            let (s, v) = http.must(
                "GET",
                &format!("/{org}/v2/exports?{}", live_query()),
                &o.token,
                None,
            );
            assert_eq!(s, 200);
            if v["data"].as_array().unwrap().is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{c} {org}: exports never settled: {v}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    api_check(&http, &l, &c);
    let mut downloads = 0;
    for (org, o) in &l.orgs {
        let (_, list) = http.must(
            "GET",
            &format!("/{org}/v2/exports?limit=1000"),
            &o.token,
            None,
        );
        for e in list["data"].as_array().unwrap() {
            assert!(
                e["state"] == "ready" || e["state"] == "error",
                "{c} {org}: unsettled export {e}"
            );
            if e["state"] == "error" {
                panic!("{c} {org}: an export failed: {e}");
            }
            if downloads < 12 {
                let a = http
                    .send(
                        "GET",
                        &format!(
                            "/{org}/v2/exports/{}/dataFile/content",
                            e["_id"].as_str().unwrap()
                        ),
                        Some(&o.token),
                        None,
                    )
                    .unwrap();
                if a.status == 404 && org == "cx" {
                    continue; // expired since the listing
                }
                assert_eq!(
                    a.status,
                    200,
                    "{c} download: {}",
                    String::from_utf8_lossy(&a.body)
                );
                assert!(!a.cut);
                assert_eq!(
                    a.etag.as_deref(),
                    Some(sha256_hex(&a.body).as_str()),
                    "{c} archive differs from its ETag"
                );
                assert_eq!(e["dataFile"]["ETag"].as_str(), a.etag.as_deref());
                downloads += 1;
            }
        }
    }
    no_panic_in_log(&server, &c);
    assert!(
        server.term(Duration::from_secs(10)),
        "{c} SIGTERM did not exit 0 within 10 s"
    );
    let store = open_store(&server.data_dir());
    let problems = store.check_consistency().unwrap();
    assert!(
        problems.is_empty(),
        "{c} after the last clean stop: {problems:#?}"
    );
    drop(store);
    let exports: usize = l.orgs.values().map(|o| o.acked.len()).sum();
    let deleted: usize = l.orgs.values().map(|o| o.deleted.len()).sum();
    let unacked: usize = l.orgs.values().map(|o| o.unacked_creates).sum();
    eprintln!(
        "crash matrix: seed {seed}: {kills} kills {per_phase:?} ({running_hits} with a run observed first), requests cut short by the kills: \
         {cut_totals:?} (creates, deletes, bulk bodies); \
         {exports} exports acknowledged ({deleted} deleted, {unacked} creates unanswered), \
         {} documents acknowledged in {} bulk bodies ({} unanswered), {debris_total} debris blobs reclaimed, \
         {downloads} archives verified, {:.1} s",
        l.docs.len(),
        l.bulk_sent,
        l.bulk_unacked,
        started.elapsed().as_secs_f64()
    );
}
