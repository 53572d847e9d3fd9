//! The admin page (`/{org}/admin/`) in a real browser: headless Debian Chromium driven through
//! chromedriver's W3C WebDriver HTTP API by a tiny client over `ureq`.
//!
//! The test spawns the built server, creates an org, an administrator with a password, an
//! object and 50 documents through the API, then in the browser signs in, submits a bad
//! `where` (the message must appear beside the where field), creates a CSV export, watches it
//! reach `ready` in the table (live polling), opens its detail and event timeline, downloads
//! the zip from the page with the session cookie and checks the CSV rows against the `where`,
//! checks the page at 390×844, deletes the export through the confirm modal and signs out.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian `chromium`, `chromium-driver`;
//! `scripts/test.sh` installs them). Without them the test fails; it never passes silently.
//! On a failure it saves `target/browser-failure-<step>.png` and prints the path; every run
//! leaves `target/browser-{login,where-error,detail,desktop,phone}.png` to look at.

use base64::Engine;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::{Cursor, Read};
use std::net::TcpListener;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SYS: &str = "browser-test-system-token";
const ORG: &str = "acme";
const EMAIL: &str = "admin@acme.test";
const PASSWORD: &str = "correct horse battery staple";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const DOCS: i64 = 50;
const GOOD_WHERE: &str = r#"{"c_n": {"$gte": 10}}"#;
const BAD_WHERE: &str = r#"{"c_n": {"$foo": 1}}"#;

type R<T> = Result<T, String>;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn target_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn tail(path: &Path, lines: usize) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A child process killed (with its whole process group) when dropped.
struct Proc {
    child: Child,
    group: bool,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.group {
            // chromedriver runs in its own process group: take the browser down with it
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// the server and its API
// ---------------------------------------------------------------------------------------------

fn spawn_server(dir: &Path, port: u16) -> Proc {
    let key = dir.join("master.key");
    std::fs::write(&key, "5a".repeat(32)).unwrap();
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_exportd"))
        .args(["serve", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--master-key-file")
        .arg(&key)
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .env("EXPORTD_SYSTEM_TOKEN", SYS)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn exportd");
    let proc = Proc {
        child,
        group: false,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if ureq::get(&format!("http://127.0.0.1:{port}/health"))
            .call()
            .is_ok()
        {
            return proc;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "exportd did not start on port {port}:\n{}",
        tail(&dir.join("server.log"), 20)
    );
}

fn call(
    method: &str,
    url: &str,
    token: &str,
    body: Option<Value>,
    ndjson: Option<&str>,
) -> (u16, Value) {
    let req = ureq::request(method, url).set("Authorization", &format!("Bearer {token}"));
    let res = match (body, ndjson) {
        (Some(b), _) => req.send_json(b),
        (None, Some(lines)) => req
            .set("Content-Type", "application/x-ndjson")
            .send_string(lines),
        (None, None) => req.call(),
    };
    match res {
        Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
        Err(ureq::Error::Status(s, r)) => (s, r.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

/// An org, its administrator (with a password and an API token), an object and 50 documents.
fn seed(base: &str) -> String {
    let (s, v) = call(
        "POST",
        &format!("{base}/sys/orgs"),
        SYS,
        Some(json!({"code": ORG, "name": "Acme Corp"})),
        None,
    );
    assert_eq!(s, 201, "create org: {v}");
    let (s, acct) = call(
        "POST",
        &format!("{base}/sys/orgs/{ORG}/accounts"),
        SYS,
        Some(
            json!({"email": EMAIL, "name": "Ada Admin", "roles": ["administrator"],
                    "password": PASSWORD}),
        ),
        None,
    );
    assert_eq!(s, 201, "create account: {acct}");
    let token = acct["token"].as_str().expect("account token").to_string();
    let (s, v) = call(
        "POST",
        &format!("{base}/{ORG}/v2/objects"),
        &token,
        Some(
            json!({"name": "c_item", "pluralName": "c_items", "label": "Item", "properties": [
            {"name": "c_n", "type": "Number"}, {"name": "c_name", "type": "String"}]}),
        ),
        None,
    );
    assert_eq!(s, 201, "create object: {v}");
    let lines: Vec<String> = (0..DOCS)
        .map(|i| json!({"c_n": i, "c_name": item_name(i)}).to_string())
        .collect();
    let (s, v) = call(
        "POST",
        &format!("{base}/{ORG}/v2/c_items"),
        &token,
        None,
        Some(&lines.join("\n")),
    );
    assert_eq!(s, 200, "bulk insert: {v}");
    assert_eq!(v["data"]["inserted"], DOCS, "bulk insert: {v}");
    token
}

/// Names with a comma and quotes, so the CSV check also covers quoting.
fn item_name(i: i64) -> String {
    format!("item {i}, \"no. {i}\"")
}

// ---------------------------------------------------------------------------------------------
// a tiny W3C WebDriver client
// ---------------------------------------------------------------------------------------------

struct Driver {
    _proc: Proc,
    base: String,
    log: PathBuf,
}

fn start_chromedriver(dir: &Path) -> Driver {
    use std::os::unix::process::CommandExt;
    let port = free_port();
    let log_path = dir.join("chromedriver.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
    let driver = Driver {
        _proc: Proc { child, group: true },
        base: format!("http://127.0.0.1:{port}"),
        log: log_path,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(r) = ureq::get(&format!("{}/status", driver.base)).call()
            && let Ok(v) = r.into_json::<Value>()
            && v["value"]["ready"] == true
        {
            return driver;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("chromedriver did not start:\n{}", tail(&driver.log, 20));
}

fn wd(method: &str, url: &str, body: Option<Value>) -> R<Value> {
    let req = ureq::request(method, url).timeout(Duration::from_secs(60));
    let res = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    match res {
        Ok(r) => {
            let v: Value = r.into_json().map_err(|e| format!("{method} {url}: {e}"))?;
            Ok(v["value"].clone())
        }
        Err(ureq::Error::Status(s, r)) => {
            let v: Value = r.into_json().unwrap_or(Value::Null);
            Err(format!(
                "{method} {url}: {s} {}: {}",
                v["value"]["error"].as_str().unwrap_or("?"),
                v["value"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("")
            ))
        }
        Err(e) => Err(format!("{method} {url}: {e}")),
    }
}

/// One browser session. Dropping it quits the browser.
struct Browser {
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = wd("DELETE", &self.url, None);
    }
}

impl Browser {
    fn new(driver: &Driver) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            format!("--user-data-dir={}", profile.path().display()),
            "--window-size=1280,800".into(),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
            "timeouts": {"script": 30000, "pageLoad": 30000, "implicit": 0}
        }}});
        let v = wd("POST", &format!("{}/session", driver.base), Some(caps)).unwrap_or_else(|e| {
            panic!(
                "cannot start a Chromium session: {e}\n{}",
                tail(&driver.log, 20)
            )
        });
        let sid = v["sessionId"].as_str().expect("sessionId").to_string();
        Browser {
            url: format!("{}/session/{sid}", driver.base),
            _profile: profile,
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> R<Value> {
        wd(method, &format!("{}{path}", self.url), body)
    }

    fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .unwrap();
    }

    fn find(&self, css: &str) -> R<String> {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        v[ELEMENT]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no element reference for {css}: {v}"))
    }

    fn el(&self, css: &str) -> String {
        self.find(css).unwrap_or_else(|e| panic!("find {css}: {e}"))
    }

    fn click(&self, css: &str) {
        let id = self.el(css);
        self.cmd("POST", &format!("/element/{id}/click"), Some(json!({})))
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Clears a field and types into it.
    fn fill(&self, css: &str, text: &str) {
        let id = self.el(css);
        self.cmd("POST", &format!("/element/{id}/clear"), Some(json!({})))
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    fn text(&self, css: &str) -> String {
        let id = self.el(css);
        self.cmd("GET", &format!("/element/{id}/text"), None)
            .unwrap_or_else(|e| panic!("text of {css}: {e}"))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn displayed(&self, css: &str) -> bool {
        let id = self.el(css);
        self.cmd("GET", &format!("/element/{id}/displayed"), None)
            .unwrap_or_else(|e| panic!("displayed {css}: {e}"))
            == true
    }

    fn js(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    fn js_async(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/async",
            Some(json!({"script": script, "args": args})),
        )
        .unwrap_or_else(|e| panic!("async script failed: {e}\n{script}"))
    }

    /// Polls `script` (a function body returning a value) until it returns something other
    /// than null/false/""; returns that value.
    fn wait_js(&self, what: &str, timeout: Duration, script: &str, args: Value) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.js(script, args.clone());
            let falsy = v.is_null() || v == false || v == "";
            if !falsy {
                return v;
            }
            if Instant::now() > deadline {
                panic!("timed out after {timeout:?} waiting for {what}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_visible(&self, css: &str) {
        self.wait_js(
            &format!("{css} to be visible"),
            Duration::from_secs(20),
            "const e = document.querySelector(arguments[0]);
             return !!e && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden';",
            json!([css]),
        );
    }

    /// Sets the viewport exactly (CSS pixels) through the DevTools protocol.
    fn viewport(&self, width: u32, height: u32, mobile: bool) {
        self.cmd(
            "POST",
            "/goog/cdp/execute",
            Some(
                json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": {
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}}),
            ),
        )
        .unwrap_or_else(|e| panic!("set viewport {width}x{height}: {e}"));
    }

    fn screenshot(&self, path: &Path) -> R<()> {
        let v = self.cmd("GET", "/screenshot", None)?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .map_err(|e| e.to_string())?;
        std::fs::write(path, png).map_err(|e| e.to_string())
    }

    /// The browser console (chromedriver's log endpoint).
    fn console(&self) -> Vec<Value> {
        self.cmd("POST", "/se/log", Some(json!({"type": "browser"})))
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// steps
// ---------------------------------------------------------------------------------------------

struct Run<'a> {
    b: &'a Browser,
    logs: Vec<PathBuf>,
}

impl Run<'_> {
    /// Runs one step; on a panic saves `target/browser-failure-<step>.png`, prints the logs'
    /// tails and fails.
    fn step<T>(&self, name: &str, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(v) => {
                eprintln!("step {name}: ok in {:.2?}", t.elapsed());
                v
            }
            Err(p) => {
                let shot = target_dir().join(format!("browser-failure-{name}.png"));
                match self.b.screenshot(&shot) {
                    Ok(()) => eprintln!("step {name} FAILED; screenshot: {}", shot.display()),
                    Err(e) => eprintln!("step {name} FAILED; no screenshot: {e}"),
                }
                for c in self.b.console() {
                    eprintln!("console: {} {}", c["level"], c["message"]);
                }
                for l in &self.logs {
                    eprintln!("--- {} ---\n{}", l.display(), tail(l, 20));
                }
                resume_unwind(p)
            }
        }
    }
}

fn row_sel(id: &str) -> String {
    format!("tr[data-testid=export-row][data-id=\"{id}\"]")
}

/// Creates an export from the form; returns its id (read from the new table row).
fn submit_create(b: &Browser, label: &str, format: &str, where_: &str) -> String {
    b.fill("#f-label", label);
    b.click("#f-objects option[value=\"c_items\"]");
    b.click(&format!("#f-format option[value=\"{format}\"]"));
    b.fill("#f-where", where_);
    b.click("#create-submit");
    b.wait_js(
        &format!("a row for the export {label}"),
        Duration::from_secs(10),
        "const rows = [...document.querySelectorAll('tr[data-testid=export-row]')];
         const r = rows.find(r => r.querySelector('[data-testid=open-detail]').textContent === arguments[0]);
         return r ? r.dataset.id : null;",
        json!([label]),
    )
    .as_str()
    .unwrap()
    .to_string()
}

fn wait_ready(b: &Browser, id: &str) {
    let state = b.wait_js(
        "the export to end (ready or error) in the table",
        Duration::from_secs(60),
        "const s = document.querySelector(arguments[0] + ' [data-testid=export-state] .badge');
         return s && (s.dataset.state === 'ready' || s.dataset.state === 'error') ? s.dataset.state : null;",
        json!([row_sel(id)]),
    );
    assert_eq!(
        state,
        "ready",
        "export ended in {state}: {}",
        b.text(&format!("{} [data-testid=export-progress]", row_sel(id)))
    );
}

#[test]
fn admin_page_in_headless_chromium() {
    let started = Instant::now();
    for (path, pkg) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: the browser test needs Debian's `{pkg}` package \
             (scripts/test.sh installs it: apt-get install -y chromium chromium-driver)"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = spawn_server(dir.path(), port);
    let base = format!("http://127.0.0.1:{port}");
    let token = seed(&base);
    let page = format!("{base}/{ORG}/admin/");

    let driver = start_chromedriver(dir.path());
    let b = Browser::new(&driver);
    let run = Run {
        b: &b,
        logs: vec![dir.path().join("server.log"), driver.log.clone()],
    };
    eprintln!("setup: {:.2?}", started.elapsed());

    run.step("load", || {
        b.viewport(1280, 800, false);
        b.goto(&page);
        b.wait_visible("#login-form");
        assert_eq!(b.text("#login-org"), ORG);
        let (w, h) = (
            b.js("return innerWidth", json!([])),
            b.js("return innerHeight", json!([])),
        );
        assert_eq!((w, h), (json!(1280), json!(800)), "viewport");
    });

    run.step("bad-login", || {
        b.fill("#login-email", EMAIL);
        b.fill("#login-password", "not the password");
        b.click("#login-submit");
        b.wait_visible("#login-error");
        assert!(
            b.text("#login-error").contains("Invalid email or password"),
            "{}",
            b.text("#login-error")
        );
        assert!(!b.displayed("#app-view"));
        b.screenshot(&target_dir().join("browser-login.png"))
            .unwrap();
    });

    run.step("sign-in", || {
        b.fill("#login-password", PASSWORD);
        b.click("#login-submit");
        b.wait_visible("#app-view");
        assert_eq!(b.text("#org-code"), ORG);
        assert_eq!(b.text("#account-email"), EMAIL);
        assert!(b.displayed("#sign-out"));
        assert!(!b.displayed("#login-view"));
        b.wait_js(
            "the object select to list c_items",
            Duration::from_secs(10),
            "return !!document.querySelector('#f-objects option[value=\"c_items\"]');",
            json!([]),
        );
    });

    run.step("bad-where", || {
        b.fill("#f-label", "Items n >= 10");
        b.click("#f-format option[value=\"text/csv\"]");
        b.fill("#f-where", BAD_WHERE);
        b.click("#create-submit");
        b.wait_visible("#err-where");
        let msg = b.text("#err-where");
        assert!(msg.contains("$foo"), "where message: {msg}");
        assert_eq!(
            b.js(
                "return document.getElementById('f-where').getAttribute('aria-invalid')",
                json!([])
            ),
            "true"
        );
        // beside the where field: right under it, in the same field block
        let beside = b.js(
            "const f = document.getElementById('f-where'), e = document.getElementById('err-where');
             return f.parentElement === e.parentElement && e.getBoundingClientRect().top >= f.getBoundingClientRect().bottom - 1;",
            json!([]),
        );
        assert_eq!(beside, true, "the where message is not beside the field");
        b.js("document.getElementById('f-where').scrollIntoView({block: 'center'})", json!([]));
        b.screenshot(&target_dir().join("browser-where-error.png")).unwrap();
        // no other field is blamed and nothing was created
        for f in ["label", "objects", "format", "paths"] {
            assert!(!b.displayed(&format!("#err-{f}")), "{f} blamed too");
        }
        assert_eq!(
            b.js(
                "return document.querySelectorAll('tr[data-testid=export-row]').length",
                json!([])
            ),
            0
        );
    });

    let id = run.step("create", || {
        let id = submit_create(&b, "Items n >= 10", "text/csv", GOOD_WHERE);
        assert!(!b.displayed("#err-where"), "the where message stays");
        id
    });

    run.step("ready", || {
        wait_ready(&b, &id);
        let row = row_sel(&id);
        assert!(
            b.text(&format!("{row} [data-testid=export-progress]"))
                .contains("40 docs")
        );
        assert!(
            b.text(&format!("{row} [data-testid=export-size]"))
                .ends_with('B')
        );
        assert!(b.displayed(&format!("{row} [data-testid=download]")));
        assert!(b.find(&format!("{row} [data-testid=cancel]")).is_err());
    });

    run.step("detail", || {
        b.click(&format!("{} [data-testid=open-detail]", row_sel(&id)));
        b.wait_visible("#detail-dialog");
        b.wait_js(
            "the event timeline",
            Duration::from_secs(10),
            "return document.querySelector('#detail-events li[data-event=queued]') &&
                    document.querySelector('#detail-events li[data-event=started]');",
            json!([]),
        );
        assert_eq!(b.text("#detail-title"), "Items n >= 10");
        assert_eq!(b.text("#detail-fields [data-field=ID]"), id);
        assert_eq!(b.text("#detail-fields [data-field=Where]"), GOOD_WHERE);
        assert_eq!(b.text("#detail-fields [data-field=Format]"), "text/csv");
        assert_eq!(
            b.text("#detail-fields [data-field=\"Documents exported\"]"),
            "40"
        );
        b.screenshot(&target_dir().join("browser-detail.png"))
            .unwrap();
        b.click("#detail-close");
        b.wait_js(
            "the detail to close",
            Duration::from_secs(5),
            "return !document.getElementById('detail-dialog').open;",
            json!([]),
        );
    });

    run.step("download", || {
        let href = b.js(
            "return document.querySelector(arguments[0] + ' [data-testid=download]').getAttribute('href');",
            json!([row_sel(&id)]),
        );
        assert_eq!(href, format!("/{ORG}/v2/exports/{id}/dataFile/content"));
        // fetched by the page itself: authenticated by the session cookie alone
        let got = b.js_async(
            "const [url, done] = arguments;
             fetch(url).then(async r => {
               const u = new Uint8Array(await r.arrayBuffer());
               let s = '';
               for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode(...u.subarray(i, i + 0x8000));
               done({status: r.status, type: r.headers.get('Content-Type'), b64: btoa(s)});
             }).catch(e => done({error: String(e)}));",
            json!([href]),
        );
        assert_eq!(got["status"], 200, "download: {got}");
        assert_eq!(got["type"], "application/zip");
        let zip_bytes = base64::engine::general_purpose::STANDARD
            .decode(got["b64"].as_str().unwrap())
            .unwrap();
        let mut zip = zip::ZipArchive::new(Cursor::new(zip_bytes)).expect("a zip");
        assert_eq!(zip.len(), 1, "one data entry");
        let mut entry = zip.by_index(0).unwrap();
        let name = entry.name().unwrap().to_string();
        assert!(
            name.starts_with("export-") && name.ends_with(".csv"),
            "{name}"
        );
        let mut text = String::new();
        entry.read_to_string(&mut text).unwrap();
        let mut rdr = csv::Reader::from_reader(text.as_bytes());
        let headers = rdr.headers().unwrap().clone();
        assert_eq!(&headers[0], "_id", "{headers:?}");
        let col = |n: &str| headers.iter().position(|h| h == n).unwrap();
        let (cn, cname) = (col("c_n"), col("c_name"));
        let mut seen = BTreeSet::new();
        for rec in rdr.records() {
            let rec = rec.unwrap();
            let n: i64 = rec[cn].parse().unwrap();
            assert!(n >= 10, "row with c_n {n} does not match the where");
            assert_eq!(rec[cname], item_name(n));
            assert!(seen.insert(n), "c_n {n} twice");
        }
        assert_eq!(seen, (10..DOCS).collect::<BTreeSet<_>>());
    });

    run.step("second-export", || {
        let id2 = submit_create(&b, "All items", "application/x-ndjson", "");
        wait_ready(&b, &id2);
    });

    run.step("desktop-screenshot", || {
        // no transient toast in the picture
        b.js(
            "window.scrollTo(0, 0); document.getElementById('status').hidden = true;",
            json!([]),
        );
        let shot = target_dir().join("browser-desktop.png");
        b.screenshot(&shot).unwrap();
        eprintln!("desktop screenshot: {}", shot.display());
    });

    run.step("phone", || {
        b.viewport(390, 844, true);
        b.goto(&page);
        b.wait_visible("#app-view");
        b.wait_visible(&row_sel(&id));
        assert_eq!(b.js("return innerWidth", json!([])), 390);
        assert!(b.displayed("#create-form"), "create form not visible");
        assert!(b.displayed("#exports-table"), "exports table not visible");
        assert!(b.displayed(&format!("{} [data-testid=download]", row_sel(&id))));
        let overflow = b.js(
            "return document.documentElement.scrollWidth - innerWidth",
            json!([]),
        );
        assert_eq!(overflow, 0, "the page scrolls sideways on a phone");
        let shot = target_dir().join("browser-phone.png");
        b.screenshot(&shot).unwrap();
        eprintln!("phone screenshot: {}", shot.display());
        b.viewport(1280, 800, false);
        b.goto(&page);
        b.wait_visible(&row_sel(&id));
    });

    run.step("delete", || {
        let row = row_sel(&id);
        // the modal's "keep it" keeps it
        b.click(&format!("{row} [data-testid=delete]"));
        b.wait_visible("#confirm-dialog");
        assert!(b.text("#confirm-message").contains("Items n >= 10"));
        b.click("#confirm-cancel");
        b.wait_js(
            "the confirm modal to close",
            Duration::from_secs(5),
            "return !document.getElementById('confirm-dialog').open;",
            json!([]),
        );
        assert!(b.displayed(&row));
        // confirmed: gone from the table and from the server
        b.click(&format!("{row} [data-testid=delete]"));
        b.wait_visible("#confirm-dialog");
        b.click("#confirm-ok");
        b.wait_js(
            "the row to disappear",
            Duration::from_secs(10),
            "return !document.querySelector(arguments[0]);",
            json!([row]),
        );
        let (s, v) = call(
            "GET",
            &format!("{base}/{ORG}/v2/exports/{id}"),
            &token,
            None,
            None,
        );
        assert_eq!(s, 404, "deleted export still there: {v}");
    });

    run.step("sign-out", || {
        b.click("#sign-out");
        b.wait_visible("#login-form");
        assert!(!b.displayed("#app-view"));
        // the session is gone: a reload shows the sign-in form again
        b.goto(&page);
        b.wait_visible("#login-form");
    });

    run.step("console", || {
        let bad: Vec<String> = b
            .console()
            .iter()
            .map(|c| c["message"].as_str().unwrap_or_default().to_string())
            .filter(|m| m.contains("Content Security Policy") || m.contains("Uncaught"))
            .collect();
        assert!(bad.is_empty(), "console errors: {bad:#?}");
    });

    eprintln!("browser test: {:.2?} in all", started.elapsed());
}
