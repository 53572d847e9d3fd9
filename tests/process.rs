//! The built binary as a process: acknowledged writes survive SIGKILL, SIGTERM stops cleanly,
//! and bad configuration exits non-zero with one clear line.

use serde_json::{Value, json};
use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SYS: &str = "process-test-system-token";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_key(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("master.key");
    std::fs::write(&p, "11".repeat(32)).unwrap();
    p
}

fn spawn(dir: &Path, port: u16) -> Child {
    spawn_with(dir, port, &[])
}

fn spawn_with(dir: &Path, port: u16, envs: &[(&str, &str)]) -> Child {
    let key = write_key(dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_exportd"))
        .args(["serve", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--master-key-file")
        .arg(key)
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .env("EXPORTD_SYSTEM_TOKEN", SYS)
        .env("RUST_LOG", "warn")
        .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
        // large exports take seconds on any machine, so a signal can catch one mid-run
        .env("EXPORTD_FAULT_EXPORT_PACE_MS", "10")
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if ureq::get(&format!("http://127.0.0.1:{port}/health"))
            .call()
            .is_ok()
        {
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("server did not start on port {port}");
}

struct Client {
    base: String,
    token: String,
}

impl Client {
    /// A client of the server on `port`, without a token yet.
    fn at(port: u16) -> Client {
        Client {
            base: format!("http://127.0.0.1:{port}"),
            token: String::new(),
        }
    }

    fn send(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let req = ureq::request(method, &format!("{}{path}", self.base))
            .set("Authorization", &format!("Bearer {token}"));
        let res = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match res {
            Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
            Err(ureq::Error::Status(s, r)) => (s, r.into_json().unwrap_or(Value::Null)),
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }
    fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.send(method, path, &self.token, body)
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = spawn(dir.path(), port);
    let mut c = Client::at(port);
    assert_eq!(
        c.send("POST", "/sys/orgs", SYS, Some(json!({"code": "acme"})))
            .0,
        201
    );
    let (s, acct) = c.send(
        "POST",
        "/sys/orgs/acme/accounts",
        SYS,
        Some(json!({"email": "a@acme.test", "roles": ["administrator"]})),
    );
    assert_eq!(s, 201);
    c.token = acct["token"].as_str().unwrap().to_string();
    let (s, _) = c.api(
        "POST",
        "/acme/v2/objects",
        Some(json!({"name": "c_note", "properties": [
            {"name": "c_text", "type": "String"}, {"name": "c_file", "type": "File"}]})),
    );
    assert_eq!(s, 201);

    let mut acked: Vec<(String, String)> = Vec::new();
    for i in 0..20 {
        let text = format!("note number {i}");
        let (s, d) = c.api("POST", "/acme/v2/c_notes", Some(json!({"c_text": text})));
        assert_eq!(s, 201);
        acked.push((d["_id"].as_str().unwrap().to_string(), text));
    }
    // bulk
    let lines: Vec<String> = (0..500)
        .map(|i| json!({"c_text": format!("bulk {i}")}).to_string())
        .collect();
    let r = ureq::post(&format!("{}/acme/v2/c_notes", c.base))
        .set("Authorization", &format!("Bearer {}", c.token))
        .set("Content-Type", "application/x-ndjson")
        .send_string(&lines.join("\n"))
        .unwrap();
    let bulk: Value = r.into_json().unwrap();
    let ids = bulk["data"]["ids"].as_array().unwrap();
    assert_eq!(ids.len(), 500);
    for (i, id) in ids.iter().enumerate() {
        acked.push((id.as_str().unwrap().to_string(), format!("bulk {i}")));
    }
    // files, the last one acknowledged right before the kill
    let mut files = Vec::new();
    for (i, (id, _)) in acked.iter().take(5).enumerate() {
        let content: Vec<u8> = (0..(70_000 + i * 1000))
            .map(|b| (b * 7 + i) as u8)
            .collect();
        let r = ureq::put(&format!("{}/acme/v2/c_notes/{id}/c_file/content", c.base))
            .set("Authorization", &format!("Bearer {}", c.token))
            .set("Content-Type", "application/octet-stream")
            .send_bytes(&content)
            .unwrap();
        assert_eq!(r.status(), 201);
        files.push((id.clone(), content));
    }
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();

    let mut server = spawn(dir.path(), port);
    for (id, text) in &acked {
        let (s, d) = c.api("GET", &format!("/acme/v2/c_notes/{id}"), None);
        assert_eq!(s, 200, "document {id} lost");
        assert_eq!(d["c_text"], text.as_str());
    }
    for (id, content) in &files {
        let r = ureq::get(&format!("{}/acme/v2/c_notes/{id}/c_file/content", c.base))
            .set("Authorization", &format!("Bearer {}", c.token))
            .call()
            .unwrap();
        let mut got = Vec::new();
        r.into_reader().read_to_end(&mut got).unwrap();
        assert_eq!(&got, content, "file of {id} differs after restart");
    }
    let (_, storage) = c.api("GET", "/acme/v2/org/storage", None);
    let expected: usize = files.iter().map(|(_, b)| b.len()).sum();
    assert_eq!(storage["files"], expected);
    let (_, list) = c.api("GET", "/acme/v2/c_notes?limit=1&total=true", None);
    assert_eq!(list["total"], acked.len());
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn sigterm_stops_cleanly_within_ten_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = spawn(dir.path(), port);
    let c = Client::at(port);
    assert_eq!(
        c.send("POST", "/sys/orgs", SYS, Some(json!({"code": "acme"})))
            .0,
        201
    );
    let started = Instant::now();
    let rc = send_signal(server.id(), "TERM");
    assert!(rc);
    let status =
        wait_with_timeout(server, Duration::from_secs(10)).expect("did not exit within 10 s");
    assert!(status.success(), "exit status {status:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // the stop recorded its mark and the log position it made durable
    let clean = dir.path().join("data/clean-shutdown");
    let text = std::fs::read_to_string(&clean).expect("a clean stop leaves its mark");
    let (mark, lsn) = text.split_once(' ').unwrap();
    assert_eq!(mark.len(), 32, "{text}");
    assert!(lsn.parse::<u64>().unwrap() > 0, "{text}");
    // the org created before the stop is still there, and the start checked the mark
    let server = spawn(dir.path(), port);
    assert!(!clean.exists());
    assert_eq!(c.send("GET", "/sys/orgs/acme", SYS, None).0, 200);
    assert!(send_signal(server.id(), "INT"));
    let status = wait_with_timeout(server, Duration::from_secs(10)).expect("SIGINT: no exit");
    assert!(status.success());
}

fn send_signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success()
}

fn wait_with_timeout(mut child: Child, t: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + t;
    while Instant::now() < deadline {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}

/// Runs the binary, which must exit by itself within 20 s; returns (exit code, stderr).
fn run_fails(args: &[&str], envs: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_exportd"));
    cmd.args(args)
        .env_remove("EXPORTD_MASTER_KEY")
        .env_remove("EXPORTD_MASTER_KEY_FILE")
        .env("RUST_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.envs([(k, v)]);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = wait_with_timeout(child, Duration::from_secs(20))
        .expect("exportd should have exited on bad configuration");
    (status.code().unwrap_or(-1), reader.join().unwrap())
}

#[test]
fn bad_configuration_exits_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();

    let (code, err) = run_fails(&["serve", "--data-dir", data, "--bind", "127.0.0.1:0"], &[]);
    assert_ne!(code, 0);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("master key"), "{err}");

    let bad_key = dir.path().join("bad.key");
    std::fs::write(&bad_key, "abcd").unwrap();
    let (code, err) = run_fails(
        &[
            "serve",
            "--data-dir",
            data,
            "--master-key-file",
            bad_key.to_str().unwrap(),
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("32 bytes"), "{err}");

    // port in use
    let key = write_key(dir.path());
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let (code, err) = run_fails(
        &[
            "serve",
            "--data-dir",
            data,
            "--master-key-file",
            key.to_str().unwrap(),
            "--bind",
            &format!("127.0.0.1:{port}"),
        ],
        &[("EXPORTD_SYSTEM_TOKEN", "x")],
    );
    assert_ne!(code, 0);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("cannot listen"), "{err}");

    // a data dir that is a file
    let file = dir.path().join("plainfile");
    std::fs::write(&file, "x").unwrap();
    let (code, err) = run_fails(
        &[
            "serve",
            "--data-dir",
            file.to_str().unwrap(),
            "--master-key-file",
            key.to_str().unwrap(),
        ],
        &[("EXPORTD_SYSTEM_TOKEN", "x")],
    );
    assert_ne!(code, 0);
    assert!(err.contains("data dir"), "{err}");

    // a different master key for an existing data dir
    drop(
        exportd::store::Store::open(
            std::path::Path::new(data),
            exportd::crypto::Key::from_hex(&"11".repeat(32)).unwrap(),
        )
        .unwrap(),
    );
    let other = dir.path().join("other.key");
    std::fs::write(&other, "22".repeat(32)).unwrap();
    let (code, err) = run_fails(
        &[
            "serve",
            "--data-dir",
            data,
            "--master-key-file",
            other.to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
        ],
        &[("EXPORTD_SYSTEM_TOKEN", "x")],
    );
    assert_ne!(code, 0);
    assert!(err.contains("does not match"), "{err}");
}

fn setup_big_org(c: &mut Client, docs: usize) {
    assert_eq!(
        c.send("POST", "/sys/orgs", SYS, Some(json!({"code": "acme"})))
            .0,
        201
    );
    let (_, acct) = c.send(
        "POST",
        "/sys/orgs/acme/accounts",
        SYS,
        Some(json!({"email": "a@acme.test", "roles": ["administrator"]})),
    );
    c.token = acct["token"].as_str().unwrap().to_string();
    let (s, _) = c.api(
        "POST",
        "/acme/v2/objects",
        Some(json!({"name": "c_row", "properties": [{"name": "c_text", "type": "String"}, {"name": "c_n", "type": "Number"}]})),
    );
    assert_eq!(s, 201);
    let lines: Vec<String> = (0..docs)
        .map(|i| json!({"c_text": format!("row {i} {}", "y".repeat(300)), "c_n": i}).to_string())
        .collect();
    for chunk in lines.chunks(20_000) {
        let r = ureq::post(&format!("{}/acme/v2/c_rows", c.base))
            .set("Authorization", &format!("Bearer {}", c.token))
            .set("Content-Type", "application/x-ndjson")
            .send_string(&chunk.join("\n"))
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

fn wait_for(c: &Client, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (s, v) = c.api(
            "GET",
            &format!("/acme/v2/exports/{id}?include=events"),
            None,
        );
        if s == 200 && pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "export {id} stuck: {v}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn verify_store(dir: &Path) {
    let key = exportd::crypto::Key::from_hex(&"11".repeat(32)).unwrap();
    let store = exportd::store::Store::open(&dir.join("data"), key).unwrap();
    let problems = store.check_consistency().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn an_export_killed_mid_run_completes_exactly_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = spawn(dir.path(), port);
    let mut c = Client::at(port);
    setup_big_org(&mut c, 50_000);
    let (_, a) = c.api(
        "POST",
        "/acme/v2/exports",
        Some(json!({"label": "big", "objects": "c_rows", "format": "text/csv"})),
    );
    let (_, b) = c.api(
        "POST",
        "/acme/v2/exports",
        Some(json!({"label": "next", "objects": "c_rows", "paths": ["c_n"]})),
    );
    let (a, b) = (
        a["_id"].as_str().unwrap().to_string(),
        b["_id"].as_str().unwrap().to_string(),
    );
    wait_for(&c, &a, |v| {
        v["state"] == "running" && v["progress"]["docs"].as_u64().unwrap_or(0) > 0
    });
    server.kill().unwrap();
    server.wait().unwrap();

    let mut server = spawn(dir.path(), port);
    let ra = wait_for(&c, &a, |v| v["state"] == "ready");
    let rb = wait_for(&c, &b, |v| v["state"] == "ready");
    let names: Vec<&str> = ra["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    let aborted = ra["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "aborted")
        .expect("aborted event");
    assert_eq!(aborted["data"]["willRestart"], true);
    assert_eq!(
        names.iter().filter(|n| **n == "started").count(),
        2,
        "{names:?}"
    );
    assert!(
        ra["completed"].as_str() <= rb["started"].as_str(),
        "order lost: {ra} {rb}"
    );
    assert_eq!(ra["stats"]["docs"]["count"], 50_000);
    let (_, list) = c.api("GET", "/acme/v2/exports?total=true", None);
    assert_eq!(list["total"], 2);
    let (_, st) = c.api("GET", "/acme/v2/org/storage", None);
    assert_eq!(
        st["exports"].as_u64().unwrap(),
        ra["dataFile"]["size"].as_u64().unwrap() + rb["dataFile"]["size"].as_u64().unwrap()
    );
    assert!(send_signal(server.id(), "TERM"));
    assert!(
        wait_with_timeout(server, Duration::from_secs(10))
            .unwrap()
            .success()
    );
    server = spawn(dir.path(), port);
    server.kill().unwrap();
    server.wait().unwrap();
    verify_store(dir.path());
}

/// The afterScript limits of a server: wall-clock timeout and CPU time, both `secs`.
fn hook_limits(secs: &str) -> [(&str, &str); 2] {
    [
        ("EXPORTD_HOOK_TIMEOUT", secs),
        ("EXPORTD_HOOK_CPU_SECS", secs),
    ]
}

/// An export in a fresh org whose afterScript has started a regex that backtracks
/// exponentially over `letters` letters (40: seconds of work, 60: hours) with no loop for the
/// sandbox's iteration limit to stop; its id.
fn export_with_a_backtracking_after_script(c: &mut Client, letters: usize) -> String {
    setup_big_org(c, 10);
    let script = format!("/(a+)+b/.test('a'.repeat({letters}))");
    let (_, a) = c.api(
        "POST",
        "/acme/v2/exports",
        Some(json!({"label": "backtracking", "objects": "c_rows", "afterScript": script})),
    );
    let a = a["_id"].as_str().unwrap().to_string();
    wait_for(c, &a, |v| {
        v["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["name"] == "afterScript.started"))
    });
    a
}

/// A clean mark promises that nothing wrote after it: an afterScript still writing when the
/// stop gives up waiting (5 s) means a stop without it, recovered at the next start as after
/// a crash.
#[test]
fn a_stop_that_an_after_script_outlasts_leaves_no_clean_mark() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let envs = hook_limits("7");
    let server = spawn_with(dir.path(), port, &envs);
    let mut c = Client::at(port);
    let a = export_with_a_backtracking_after_script(&mut c, 40);
    let t = Instant::now();
    assert!(send_signal(server.id(), "TERM"));
    let status = wait_with_timeout(server, Duration::from_secs(10)).expect("no exit in 10 s");
    assert!(
        t.elapsed() >= Duration::from_secs(5),
        "the stop waited for the writer"
    );
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(
        log.contains("stopping without the clean-shutdown mark"),
        "{log}"
    );
    assert!(status.success(), "{status:?}");
    assert!(!dir.path().join("data/clean-shutdown").exists());
    let mut server = spawn_with(dir.path(), port, &envs);
    let ra = wait_for(&c, &a, |v| v["state"] == "ready");
    let events = ra["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["name"] == "afterScript.completed"),
        "{events:?}"
    );
    server.kill().unwrap();
    server.wait().unwrap();
}

/// `(state, ppid)` of a process from `/proc/<pid>/stat`; `None` once it is gone.
#[cfg(target_os = "linux")]
fn proc_state(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses
    let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    Some((state, rest.next()?.parse().ok()?))
}

/// The `exportd hook` children of `parent`.
#[cfg(target_os = "linux")]
fn hook_children(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if proc_state(pid).is_some_and(|(_, ppid)| ppid == parent)
            && cmdline.split(|b| *b == 0).any(|arg| arg == b"hook")
        {
            found.push(pid);
        }
    }
    found
}

/// A server killed when the test ends, passing or not: one left behind here would run its
/// endless script on one of CI's cores.
#[cfg(target_os = "linux")]
struct KilledAtEnd(Child);

#[cfg(target_os = "linux")]
impl Drop for KilledAtEnd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(target_os = "linux")]
#[test]
fn an_after_script_dies_with_a_killed_server() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // limits far beyond the test: only the server's death can end the script in time
    let mut server = KilledAtEnd(spawn_with(dir.path(), port, &hook_limits("300")));
    let mut c = Client::at(port);
    export_with_a_backtracking_after_script(&mut c, 60);
    // a child that runs (starting up or in the script: either way, without the server it
    // would go on to run the script to its limits)
    let deadline = Instant::now() + Duration::from_secs(10);
    let hook = loop {
        if let Some(pid) = hook_children(server.0.id())
            .into_iter()
            .find(|pid| matches!(proc_state(*pid), Some(('R', _))))
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "no running `exportd hook` child");
        std::thread::sleep(Duration::from_millis(20));
    };
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    // gone, or dead (a zombie waiting for a reaper that may not reap); running it must not be
    let deadline = Instant::now() + Duration::from_secs(5);
    let running = loop {
        match proc_state(hook).filter(|(s, _)| !matches!(s, 'Z' | 'X')) {
            None => break None,
            Some((state, _)) if Instant::now() >= deadline => break Some(state),
            Some(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    if let Some(state) = running {
        send_signal(hook, "KILL");
        panic!("the hook child {hook} still runs (state {state}) 5 s after the server died");
    }
}

#[test]
fn sigterm_puts_a_running_export_back_to_pending() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = spawn(dir.path(), port);
    let mut c = Client::at(port);
    setup_big_org(&mut c, 30_000);
    let (_, a) = c.api(
        "POST",
        "/acme/v2/exports",
        Some(json!({"label": "big", "objects": "c_rows", "format": "text/csv"})),
    );
    let a = a["_id"].as_str().unwrap().to_string();
    wait_for(&c, &a, |v| v["state"] == "running");
    let t = Instant::now();
    assert!(send_signal(server.id(), "TERM"));
    assert!(
        wait_with_timeout(server, Duration::from_secs(10))
            .expect("no exit within 10 s")
            .success()
    );
    assert!(t.elapsed() < Duration::from_secs(10));
    {
        let key = exportd::crypto::Key::from_hex(&"11".repeat(32)).unwrap();
        let store = exportd::store::Store::open(&dir.path().join("data"), key).unwrap();
        let rec = store
            .get_export("acme", exportd::model::ids::ObjectId::parse(&a).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(rec.state, exportd::export::record::State::Pending);
    }
    let mut server = spawn(dir.path(), port);
    let ra = wait_for(&c, &a, |v| v["state"] == "ready");
    assert!(
        ra["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "aborted")
    );
    server.kill().unwrap();
    server.wait().unwrap();
    verify_store(dir.path());
}
