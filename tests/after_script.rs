//! afterScript: a script that logs and notifies (HMAC verified by a local receiver), the
//! containment of hostile scripts, the allow-list and a receiver that is down.

mod common;

use common::*;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A tiny HTTP receiver on loopback: records (X-Exportd-Signature, body) and answers 200.
fn receiver() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let got: Received = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(50) {
            let Ok(mut s) = conn else { continue };
            s.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head_end, len) = loop {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break (0, 0);
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..p]).to_string();
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    break (p + 4, len);
                }
            };
            while buf.len() < head_end + len {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            let sig = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("X-Exportd-Signature:")
                        .or_else(|| l.strip_prefix("x-exportd-signature:"))
                        .map(|v| v.trim().to_string())
                })
                .unwrap_or_default();
            g.lock().unwrap().push((sig, buf[head_end..].to_vec()));
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, got)
}

async fn setup<S: TestService>(svc: &S) -> String {
    let tok = org_with_admin(svc, "acme").await;
    call(
        svc,
        "POST",
        "/acme/v2/objects",
        Some(&tok),
        Some(json!({"name": "c_x", "properties": [{"name": "c_n", "type": "Number"}]})),
    )
    .await;
    call(
        svc,
        "POST",
        "/acme/v2/c_xs",
        Some(&tok),
        Some(json!({"c_n": 1})),
    )
    .await;
    tok
}

/// Creates an export with `script`, waits for it and for its afterScript.completed event.
async fn run_script<S: TestService>(
    svc: &S,
    tok: &str,
    script: &str,
    wait_for: &[&str],
) -> (Value, Vec<Value>) {
    let (s, v) = call(
        svc,
        "POST",
        "/acme/v2/exports",
        Some(tok),
        Some(json!({"label": "s", "objects": "c_xs", "afterScript": script})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let id = v["_id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, rec) = call(
            svc,
            "GET",
            &format!("/acme/v2/exports/{id}?include=events"),
            Some(tok),
            None,
        )
        .await;
        let events = rec["events"].as_array().cloned().unwrap_or_default();
        if wait_for
            .iter()
            .all(|w| events.iter().any(|e| e["name"] == *w))
        {
            return (rec, events);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "script never finished: {rec}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

fn event<'a>(events: &'a [Value], name: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no {name} event in {events:?}"))
}

#[actix_web::test]
async fn a_script_logs_and_sends_a_signed_notification() {
    let (url, got) = receiver();
    let allow = url.clone();
    let app = app_with(move |c| {
        c.hook.exe = env!("CARGO_BIN_EXE_exportd").into();
        c.hook.allow = vec![allow];
    })
    .await;
    let tok = setup(&app.svc).await;
    let script = format!(
        "const e = script.arguments.export;\nconsole.log('export', e.label, e.state);\nconsole.error('err is', script.arguments.err);\nnotify('{url}/done', {{id: e._id, state: e.state, docs: e.stats.docs.count, by: script.principal.email}});"
    );
    let (rec, events) = run_script(
        &app.svc,
        &tok,
        &script,
        &["afterScript.completed", "notify.delivered"],
    )
    .await;
    assert_eq!(rec["state"], "ready");
    let done = event(&events, "afterScript.completed");
    assert_eq!(done["data"]["err"], Value::Null);
    assert_eq!(
        done["data"]["logs"],
        json!(["export s ready", "[error] err is null"])
    );
    assert_eq!(event(&events, "notify.delivered")["data"]["status"], 200);
    let (sig, body) = got.lock().unwrap()[0].clone();
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        payload,
        json!({"id": rec["_id"], "state": "ready", "docs": 1, "by": "admin@acme.test"})
    );
    let (_, secret) = call(
        &app.svc,
        "GET",
        "/acme/v2/org/webhook-secret",
        Some(&tok),
        None,
    )
    .await;
    let secret = secret["data"].as_str().unwrap();
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&body);
    assert_eq!(
        sig,
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    );
    let names: Vec<&str> = events.iter().map(|e| e["name"].as_str().unwrap()).collect();
    let started = names
        .iter()
        .position(|n| *n == "afterScript.started")
        .unwrap();
    assert!(
        names.iter().position(|n| *n == "cursor.completed").unwrap() < started,
        "{names:?}"
    );
}

#[actix_web::test]
async fn hostile_scripts_end_only_themselves() {
    let app = app_with(|c| {
        c.hook.exe = env!("CARGO_BIN_EXE_exportd").into();
        c.hook.timeout = Duration::from_secs(3);
        c.hook.memory_bytes = 128 * 1024 * 1024;
    })
    .await;
    let tok = setup(&app.svc).await;
    for script in [
        "while (true) {}",
        "function f() { return f() + 1 } f()",
        "let a = []; while (true) { a.push(new Array(1000000).fill(7)) }",
        "'x'.repeat(1 << 29).repeat(8)",
        "throw new Error('boom')",
        "require('fs').readFileSync('/etc/passwd')",
        "import('fs')",
        "process.env.HOME",
        "this.constructor.constructor('return process')().exit(1)",
        "Function('return this')().process.kill()",
        "fetch('http://127.0.0.1:1/')",
        "new XMLHttpRequest()",
        "Deno.readFile('/etc/passwd')",
        "notify('file:///etc/passwd', 1); notify('http://10.0.0.1/x', 2); throw 'after'",
    ] {
        let (rec, events) = run_script(&app.svc, &tok, script, &["afterScript.completed"]).await;
        assert_eq!(
            rec["state"], "ready",
            "{script}: the export's state must not change"
        );
        let err = &event(&events, "afterScript.completed")["data"]["err"];
        assert!(
            err.is_string() && !err.as_str().unwrap().is_empty(),
            "{script}: err {err}"
        );
    }
}

#[actix_web::test]
async fn the_server_keeps_serving_while_a_script_is_stuck() {
    let app = app_with(|c| {
        c.hook.exe = env!("CARGO_BIN_EXE_exportd").into();
        c.hook.timeout = Duration::from_secs(4);
    })
    .await;
    let tok = setup(&app.svc).await;
    // the loop limit counts per frame: a loop of calls of loops runs until the wall clock
    let script = "function burn() { let s = 0; for (let i = 0; i < 5000000; i++) { s += i } return s } while (true) { burn() }";
    let (s, v) = call(
        &app.svc,
        "POST",
        "/acme/v2/exports",
        Some(&tok),
        Some(json!({"label": "stuck", "objects": "c_xs", "afterScript": script})),
    )
    .await;
    assert_eq!(s, 201);
    let id = v["_id"].as_str().unwrap().to_string();
    let started = std::time::Instant::now();
    // wait until the script is running, then use the server
    loop {
        let (_, rec) = call(
            &app.svc,
            "GET",
            &format!("/acme/v2/exports/{id}?include=events"),
            Some(&tok),
            None,
        )
        .await;
        let ev = rec["events"].as_array().unwrap();
        if ev.iter().any(|e| e["name"] == "afterScript.started") {
            assert!(!ev.iter().any(|e| e["name"] == "afterScript.completed"));
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let t = std::time::Instant::now();
    let (s, _) = call(&app.svc, "GET", "/acme/v2/c_xs", Some(&tok), None).await;
    assert_eq!(s, 200);
    let (s, other) = call(
        &app.svc,
        "POST",
        "/acme/v2/exports",
        Some(&tok),
        Some(json!({"label": "next", "objects": "c_xs"})),
    )
    .await;
    assert_eq!(s, 201);
    let next = wait_ready(&app.svc, &tok, "acme", other["_id"].as_str().unwrap()).await;
    assert_eq!(
        next["state"], "ready",
        "the org's queue goes on while the script runs"
    );
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "requests were held up by the script"
    );
    // the stuck script is stopped by the wall clock
    let rec = loop {
        let (_, rec) = call(
            &app.svc,
            "GET",
            &format!("/acme/v2/exports/{id}?include=events"),
            Some(&tok),
            None,
        )
        .await;
        if rec["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "afterScript.completed")
        {
            break rec;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the stuck script was never stopped"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    let done = event(rec["events"].as_array().unwrap(), "afterScript.completed").clone();
    assert!(
        done["data"]["err"]
            .as_str()
            .unwrap()
            .contains("longer than"),
        "{done}"
    );
    assert!(started.elapsed() >= Duration::from_secs(4));
    assert_eq!(rec["state"], "ready");
}

#[actix_web::test]
async fn urls_off_the_list_are_refused_and_a_down_receiver_is_retried() {
    let (url, got) = receiver();
    // a port with nothing listening
    let down = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let (allow, allow_down) = (url.clone(), down.clone());
    let app = app_with(move |c| {
        c.hook.exe = env!("CARGO_BIN_EXE_exportd").into();
        c.hook.allow = vec![allow, allow_down];
    })
    .await;
    let tok = setup(&app.svc).await;
    let script = format!(
        "notify('http://example.invalid/x', {{a: 1}}); notify('{url}0/x', {{b: 2}}); notify('{down}/hook', {{c: 3}});"
    );
    let (_, events) = run_script(
        &app.svc,
        &tok,
        &script,
        &["afterScript.completed", "notify.failed"],
    )
    .await;
    let refused: Vec<&Value> = events
        .iter()
        .filter(|e| e["name"] == "notify.refused")
        .collect();
    assert_eq!(refused.len(), 2, "{events:?}");
    assert_eq!(refused[0]["data"]["url"], "http://example.invalid/x");
    let failed = event(&events, "notify.failed");
    assert_eq!(failed["data"]["url"], format!("{down}/hook"));
    assert_eq!(failed["data"]["attempts"], 4);
    assert!(
        got.lock().unwrap().is_empty(),
        "nothing may reach the receiver"
    );

    let got = call(
        &app.svc,
        "POST",
        "/acme/v2/exports",
        Some(&tok),
        Some(json!({"label": "x", "objects": "c_xs", "afterScript": "let x = 1;\nlet = = 2;"})),
    )
    .await;
    assert_fault(&got, 400, "cortex.validation.failed", None);
    assert_eq!(got.1["faults"][0]["path"], "afterScript");
    assert!(
        got.1["faults"][0]["message"]
            .as_str()
            .unwrap()
            .contains("line 2"),
        "{}",
        got.1
    );
}
