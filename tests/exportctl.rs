//! `exportctl` as a process against a live `exportd serve`: login/logout and the config file,
//! create --wait, list, get, resumable and verified download, cancel, delete, exit codes.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SYS: &str = "exportctl-test-system-token";
const ORG: &str = "acme";
const DOCS: usize = 300;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running server with an org, an administrator and `c_steps` holding `DOCS` documents.
struct Fixture {
    server: Child,
    dir: tempfile::TempDir,
    base: String,
    token: String,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn call(method: &str, url: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let req = ureq::request(method, url).set("Authorization", &format!("Bearer {token}"));
    let res = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    match res {
        Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
        Err(ureq::Error::Status(s, r)) => (s, r.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("master.key");
        std::fs::write(&key, "22".repeat(32)).unwrap();
        let port = free_port();
        let server = Command::new(env!("CARGO_BIN_EXE_exportd"))
            .args(["serve", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--master-key-file")
            .arg(&key)
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .env("EXPORTD_SYSTEM_TOKEN", SYS)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut fx = Fixture {
            server,
            dir,
            base: format!("http://127.0.0.1:{port}"),
            token: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if ureq::get(&format!("{}/health", fx.base)).call().is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let (s, v) = fx.sys("POST", "/sys/orgs", json!({"code": ORG}));
        assert_eq!(s, 201, "{v}");
        let (s, acct) = fx.sys(
            "POST",
            &format!("/sys/orgs/{ORG}/accounts"),
            json!({"email": "admin@acme.test", "roles": ["administrator"]}),
        );
        assert_eq!(s, 201, "{acct}");
        fx.token = acct["token"].as_str().unwrap().to_string();
        let (s, v) = fx.api(
            "POST",
            "objects",
            Some(json!({"name": "c_step", "label": "Step", "properties": [
                {"name": "c_n", "type": "Number"},
                {"name": "c_name", "type": "String"}]})),
        );
        assert_eq!(s, 201, "{v}");
        let lines: Vec<String> = (0..DOCS)
            .map(|i| {
                json!({"c_n": i, "c_name": format!("step number {i} of the walk")}).to_string()
            })
            .collect();
        let r = ureq::post(&format!("{}/{ORG}/v2/c_steps", fx.base))
            .set("Authorization", &format!("Bearer {}", fx.token))
            .set("Content-Type", "application/x-ndjson")
            .send_string(&lines.join("\n"))
            .unwrap();
        let bulk: Value = r.into_json().unwrap();
        assert_eq!(bulk["data"]["inserted"], json!(DOCS), "{bulk}");
        fx
    }

    fn sys(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        call(method, &format!("{}{path}", self.base), SYS, Some(body))
    }

    fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        call(
            method,
            &format!("{}/{ORG}/v2/{path}", self.base),
            &self.token,
            body,
        )
    }

    fn config(&self) -> PathBuf {
        self.dir
            .path()
            .join("cfg")
            .join("exportctl")
            .join("config.json")
    }

    /// exportctl with the fixture's config file and no credentials in the environment.
    fn ctl(&self, args: &[&str]) -> Out {
        self.ctl_in(self.dir.path(), args)
    }

    fn ctl_in(&self, cwd: &Path, args: &[&str]) -> Out {
        run_ctl(cwd, &self.config(), args, &[])
    }

    fn login(&self) {
        let o = self.ctl(&[
            "login",
            "--url",
            &self.base,
            "--org",
            ORG,
            "--token",
            &self.token,
        ]);
        assert_eq!(o.code, 0, "{o:?}");
    }

    /// create --wait --json → the ready record.
    fn create_ready(&self, extra: &[&str]) -> Value {
        let mut args = vec![
            "export",
            "create",
            "--objects",
            "c_steps",
            "--wait",
            "--json",
        ];
        args.extend_from_slice(extra);
        let o = self.ctl(&args);
        assert_eq!(o.code, 0, "{o:?}");
        let rec: Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(rec["state"], "ready", "{rec}");
        rec
    }

    fn archive(&self, id: &str) -> Vec<u8> {
        let mut r = ureq::get(&format!(
            "{}/{ORG}/v2/exports/{id}/dataFile/content",
            self.base
        ))
        .set("Authorization", &format!("Bearer {}", self.token))
        .call()
        .unwrap()
        .into_reader();
        let mut bytes = Vec::new();
        r.read_to_end(&mut bytes).unwrap();
        bytes
    }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn run_ctl(cwd: &Path, config: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_exportctl"));
    cmd.args(args)
        .current_dir(cwd)
        .env("EXPORTCTL_CONFIG", config)
        .env_remove("EXPORTD_URL")
        .env_remove("EXPORTD_ORG")
        .env_remove("EXPORTD_TOKEN")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o: Output = cmd.output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// The `c_n` values of an NDJSON archive.
fn archive_numbers(bytes: &[u8]) -> BTreeSet<u64> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    assert_eq!(zip.len(), 1);
    let mut entry = zip.by_index(0).unwrap();
    let name = entry.name().unwrap().to_string();
    assert!(name.ends_with(".ndjson"), "{name}");
    let mut text = String::new();
    entry.read_to_string(&mut text).unwrap();
    text.split('\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["object"], "c_step");
            v["c_n"].as_u64().unwrap()
        })
        .collect()
}

#[test]
fn login_config_file_and_logout() {
    let fx = Fixture::new();
    let cfg = fx.config();

    // no config, no environment: usage error 2 with a clear message
    let o = fx.ctl(&["export", "list"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("exportctl login"), "{o:?}");

    // a bad token is refused with the server's fault, and nothing is saved
    let o = fx.ctl(&[
        "login",
        "--url",
        &fx.base,
        "--org",
        ORG,
        "--token",
        "not-a-token",
    ]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("cortex.unauthorized"), "{o:?}");
    assert!(!cfg.exists());

    // an unreachable server is a failure (1), not a usage error
    let dead = format!("http://127.0.0.1:{}", free_port());
    let o = fx.ctl(&["login", "--url", &dead, "--org", ORG, "--token", &fx.token]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(!cfg.exists());

    // login with only some of the values → 2
    let o = fx.ctl(&["login", "--url", &fx.base]);
    assert_eq!(o.code, 2, "{o:?}");

    // a good login writes the file 0600 in a 0700 directory
    let o = fx.ctl(&[
        "login",
        "--url",
        &format!("{}/", fx.base),
        "--org",
        ORG,
        "--token",
        &fx.token,
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("admin@acme.test"), "{o:?}");
    let mode = std::fs::metadata(&cfg).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dmode = std::fs::metadata(cfg.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dmode, 0o700);
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    assert_eq!(stored["url"], fx.base.as_str());
    assert_eq!(stored["org"], ORG);
    assert_eq!(stored["token"], fx.token.as_str());

    // the stored credentials work
    let o = fx.ctl(&["export", "list"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("No exports"), "{o:?}");

    // environment overrides the file: a bad token in EXPORTD_TOKEN is used and refused
    let o = run_ctl(
        fx.dir.path(),
        &cfg,
        &["export", "list"],
        &[("EXPORTD_TOKEN", "bad-token")],
    );
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("cortex.unauthorized"), "{o:?}");
    // ... and a flag overrides the environment
    let o = run_ctl(
        fx.dir.path(),
        &cfg,
        &["export", "list", "--token", &fx.token],
        &[("EXPORTD_TOKEN", "bad-token")],
    );
    assert_eq!(o.code, 0, "{o:?}");

    // the environment alone is enough, without any file
    let none = fx.dir.path().join("nowhere.json");
    let o = run_ctl(
        fx.dir.path(),
        &none,
        &["export", "list", "--json"],
        &[
            ("EXPORTD_URL", &fx.base),
            ("EXPORTD_ORG", ORG),
            ("EXPORTD_TOKEN", &fx.token),
        ],
    );
    assert_eq!(o.code, 0, "{o:?}");
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["object"], "list");

    // a corrupt config file is a usage error
    let bad = fx.dir.path().join("bad.json");
    std::fs::write(&bad, "{not json").unwrap();
    let o = run_ctl(fx.dir.path(), &bad, &["export", "list"], &[]);
    assert_eq!(o.code, 2, "{o:?}");

    // logout removes the file; then commands need credentials again
    let o = fx.ctl(&["logout"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(!cfg.exists());
    let o = fx.ctl(&["export", "list"]);
    assert_eq!(o.code, 2, "{o:?}");
}

#[test]
fn create_wait_list_get_and_download() {
    let fx = Fixture::new();
    fx.login();

    let rec = fx.create_ready(&["--label", "Steps walk", "--description", "all of them"]);
    let id = rec["_id"].as_str().unwrap().to_string();
    assert_eq!(rec["stats"]["docs"]["count"], json!(DOCS));
    assert_eq!(rec["format"], "application/x-ndjson");
    // the server agrees
    let (s, v) = fx.api("GET", &format!("exports/{id}"), None);
    assert_eq!(s, 200);
    assert_eq!(v["state"], "ready");

    // without --json: a human summary
    let o = fx.ctl(&[
        "export",
        "create",
        "--label",
        "Evens",
        "--objects",
        "c_steps",
        "--where",
        r#"{"c_n":{"$lt":100}}"#,
        "--paths",
        "c_n",
        "--format",
        "text/csv",
        "--wait",
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("is ready: 100 documents"), "{o:?}");

    // list: a table holding both labels, newest first
    let o = fx.ctl(&["export", "list"]);
    assert_eq!(o.code, 0, "{o:?}");
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(lines[0].starts_with("ID"), "{o:?}");
    for col in ["LABEL", "STATE", "PROGRESS", "SIZE", "CREATED", "EXPIRES"] {
        assert!(lines[0].contains(col), "{o:?}");
    }
    assert!(
        lines[1].contains("Evens") && lines[2].contains("Steps walk"),
        "{o:?}"
    );
    assert!(
        lines[2].contains(&id) && lines[2].contains("ready"),
        "{o:?}"
    );
    // --json parses, --limit and --state reach the server
    let o = fx.ctl(&["export", "list", "--json", "--limit", "1"]);
    assert_eq!(o.code, 0, "{o:?}");
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["hasMore"], true);
    let o = fx.ctl(&["export", "list", "--state", "error", "--json"]);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["data"], json!([]), "{o:?}");
    let o = fx.ctl(&["export", "list", "--state", "ready"]);
    assert!(o.stdout.contains("Steps walk"), "{o:?}");

    // get: key/value view, the event timeline, and --json
    let o = fx.ctl(&["export", "get", &id, "--events"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout.contains("label:") && o.stdout.contains("Steps walk"),
        "{o:?}"
    );
    assert!(o.stdout.contains("all of them"), "{o:?}");
    assert!(
        o.stdout.contains(rec["dataFile"]["ETag"].as_str().unwrap()),
        "{o:?}"
    );
    assert!(o.stdout.contains("Events:"), "{o:?}");
    assert!(
        o.stdout.contains("queued") && o.stdout.contains("started"),
        "{o:?}"
    );
    let o = fx.ctl(&["export", "get", &id, "--json"]);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["_id"], id.as_str());
    assert!(v.get("events").is_none());

    // download into the current directory under the server's file name
    let etag = rec["dataFile"]["ETag"].as_str().unwrap().to_string();
    let filename = rec["dataFile"]["filename"].as_str().unwrap().to_string();
    let work = fx.dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let o = fx.ctl_in(&work, &["export", "download", &id]);
    assert_eq!(o.code, 0, "{o:?}");
    let bytes = std::fs::read(work.join(&filename)).unwrap();
    assert_eq!(
        bytes.len() as u64,
        rec["dataFile"]["size"].as_u64().unwrap()
    );
    assert_eq!(sha256_hex(&bytes), etag);
    assert!(!work.join(format!("{filename}.part")).exists());
    let numbers = archive_numbers(&bytes);
    assert_eq!(numbers, (0..DOCS as u64).collect::<BTreeSet<_>>());

    // resume: .part holds the first half of the right bytes
    let out = work.join("resumed.zip");
    let part = work.join("resumed.zip.part");
    let half = bytes.len() / 2;
    std::fs::write(&part, &bytes[..half]).unwrap();
    let o = fx.ctl_in(&work, &["export", "download", &id, "-o", "resumed.zip"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    assert!(!part.exists());
    // the server saw a range request starting where .part ended
    let (_, v) = fx.api("GET", &format!("exports/{id}?include=events"), None);
    let ranges: Vec<Value> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "downloaded")
        .map(|e| e["data"]["range"].clone())
        .collect();
    assert!(
        ranges.contains(&json!(format!("bytes={half}-"))),
        "{ranges:?}"
    );

    // resume over wrong bytes: the SHA-256 mismatch is reported, nothing is kept
    let wrong = work.join("wrong.zip");
    let wrong_part = work.join("wrong.zip.part");
    let mut garbage = bytes[..half].to_vec();
    for b in garbage.iter_mut().take(64) {
        *b ^= 0x5a;
    }
    std::fs::write(&wrong_part, &garbage).unwrap();
    let o = fx.ctl_in(&work, &["export", "download", &id, "-o", "wrong.zip"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("SHA-256 mismatch"), "{o:?}");
    assert!(o.stderr.contains(&etag), "{o:?}");
    assert!(!wrong.exists() && !wrong_part.exists());
    // ... and the next run downloads it afresh
    let o = fx.ctl_in(&work, &["export", "download", &id, "-o", "wrong.zip"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(std::fs::read(&wrong).unwrap(), bytes);

    // a .part already complete is verified without downloading again; one too long restarts
    std::fs::write(work.join("full.zip.part"), &bytes).unwrap();
    let o = fx.ctl_in(&work, &["export", "download", &id, "-o", "full.zip"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(std::fs::read(work.join("full.zip")).unwrap(), bytes);
    let mut long = bytes.clone();
    long.extend_from_slice(b"trailing");
    std::fs::write(work.join("long.zip.part"), &long).unwrap();
    let o = fx.ctl_in(&work, &["export", "download", &id, "-o", "long.zip"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(std::fs::read(work.join("long.zip")).unwrap(), bytes);
    // -o naming a directory uses the server's file name inside it
    let sub = work.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let o = fx.ctl_in(&work, &["export", "download", &id, "-o", "sub"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(std::fs::read(sub.join(&filename)).unwrap(), bytes);
    // what the server serves is what was saved
    assert_eq!(fx.archive(&id), bytes);
}

#[test]
fn cancel_delete_and_exit_codes() {
    let fx = Fixture::new();
    fx.login();
    let rec = fx.create_ready(&["--label", "To remove"]);
    let id = rec["_id"].as_str().unwrap().to_string();

    // cancel of an ended export: the 409 fault on stderr, exit 1
    let o = fx.ctl(&["export", "cancel", &id]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("cortex.conflict."), "{o:?}");
    assert!(o.stderr.contains("409"), "{o:?}");
    assert!(o.stderr.contains("cannot be cancelled"), "{o:?}");

    // delete → gone
    let o = fx.ctl(&["export", "delete", &id]);
    assert_eq!(o.code, 0, "{o:?}");
    let (s, _) = fx.api("GET", &format!("exports/{id}"), None);
    assert_eq!(s, 404);
    let o = fx.ctl(&["export", "get", &id]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("cortex.notFound"), "{o:?}");
    let o = fx.ctl(&["export", "delete", &id]);
    assert_eq!(o.code, 1, "{o:?}");
    let o = fx.ctl(&["export", "download", &id]);
    assert_eq!(o.code, 1, "{o:?}");

    // usage errors → 2
    for args in [
        &["export", "create", "--objects", "c_steps"][..], // no --label
        &["export", "frobnicate"][..],
        &["export", "get", "not-an-id"][..],
        &["export", "list", "--limit", "0"][..],
        &["export", "list", "--state", "done"][..],
        &[
            "export",
            "create",
            "--label",
            "x",
            "--objects",
            "c_steps",
            "--format",
            "xml",
        ][..],
        &[
            "export",
            "create",
            "--label",
            "x",
            "--objects",
            "c_steps",
            "--after-script",
            "/nonexistent/script.js",
        ][..],
    ] {
        let o = fx.ctl(args);
        assert_eq!(o.code, 2, "{args:?}: {o:?}");
    }

    // a bad where: exit 1 with the fault and its path
    let o = fx.ctl(&[
        "export",
        "create",
        "--label",
        "bad",
        "--objects",
        "c_steps",
        "--where",
        r#"{"c_n":{"$foo":1}}"#,
    ]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("where.c_n.$foo"), "{o:?}");
    assert!(o.stderr.contains("cortex."), "{o:?}");
    let o = fx.ctl(&[
        "export",
        "create",
        "--label",
        "bad",
        "--objects",
        "c_steps",
        "--where",
        "{not json",
    ]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr.contains("path: where") || o.stderr.contains("(path: where"),
        "{o:?}"
    );
    // other validation faults name their field
    let o = fx.ctl(&[
        "export",
        "create",
        "--label",
        "bad",
        "--objects",
        "c_nothing",
        "--paths",
        "c_n",
    ]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("objects"), "{o:?}");
    // no export was created by the refused requests
    let (_, v) = fx.api("GET", "exports", None);
    assert_eq!(v["data"], json!([]), "{v}");
}

#[test]
fn wait_reports_an_export_that_fails() {
    let fx = Fixture::new();
    fx.login();
    // a storage limit the archive will cross: the export ends in error
    let (s, v) = fx.sys(
        "PATCH",
        &format!("/sys/orgs/{ORG}"),
        json!({"storageLimit": 64}),
    );
    assert_eq!(s, 200, "{v}");
    let o = fx.ctl(&[
        "export",
        "create",
        "--label",
        "Too big",
        "--objects",
        "c_steps",
        "--wait",
    ]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("storageLimitExceeded"), "{o:?}");
    let (_, v) = fx.api("GET", "exports", None);
    let rec = &v["data"][0];
    assert_eq!(rec["state"], "error", "{v}");
    // get shows the fault; download refuses with it
    let id = rec["_id"].as_str().unwrap();
    let o = fx.ctl(&["export", "get", id]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout.contains("fault:") && o.stdout.contains("storageLimitExceeded"),
        "{o:?}"
    );
    let o = fx.ctl(&["export", "download", id]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("storageLimitExceeded"), "{o:?}");
    // cancel of an export in error is a 409 too
    let o = fx.ctl(&["export", "cancel", id]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("409"), "{o:?}");
}

#[test]
fn cancel_a_queued_export_ends_its_wait() {
    let fx = Fixture::new();
    fx.login();
    // enough documents that the first export is still running while the second is queued
    for batch in 0..4 {
        let lines: Vec<String> = (0..2500)
            .map(|i| {
                json!({"c_n": 1000 + batch * 2500 + i, "c_name": "filler ".repeat(20)}).to_string()
            })
            .collect();
        let r = ureq::post(&format!("{}/{ORG}/v2/c_steps", fx.base))
            .set("Authorization", &format!("Bearer {}", fx.token))
            .set("Content-Type", "application/x-ndjson")
            .send_string(&lines.join("\n"))
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let (s, first) = fx.api(
        "POST",
        "exports",
        Some(json!({"label": "Big first", "objects": "c_steps"})),
    );
    assert_eq!(s, 201, "{first}");
    let waiter = Command::new(env!("CARGO_BIN_EXE_exportctl"))
        .args([
            "export",
            "create",
            "--label",
            "Queued second",
            "--objects",
            "c_steps",
            "--wait",
        ])
        .current_dir(fx.dir.path())
        .env("EXPORTCTL_CONFIG", fx.config())
        .env_remove("EXPORTD_URL")
        .env_remove("EXPORTD_ORG")
        .env_remove("EXPORTD_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let second = loop {
        let (_, v) = fx.api("GET", "exports", None);
        if let Some(r) = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["label"] == "Queued second")
        {
            break r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the second export never appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let id = second["_id"].as_str().unwrap();
    assert_eq!(second["state"], "pending", "{second}");
    let o = fx.ctl(&["export", "cancel", id]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout.contains("Cancelled") && o.stdout.contains("error"),
        "{o:?}"
    );
    // the waiting client sees the export end in error and reports the cancellation
    let out = waiter.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cortex.cancelled"), "{stderr}");
    // the first export is unaffected
    let (_, v) = fx.api(
        "GET",
        &format!("exports/{}", first["_id"].as_str().unwrap()),
        None,
    );
    assert_ne!(v["state"], "error", "{v}");
}
