//! Helpers for tests that run the built `exportd` binary as a process (crash matrix, tamper,
//! load): start/stop/kill a server over a data dir, an HTTP client whose transport errors are
//! values (a killed server is expected), and the store opened offline once the server is gone.
#![allow(dead_code)]

use serde_json::Value;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SYS: &str = "reliability-test-system-token";
pub const KEY_HEX: &str = "1111111111111111111111111111111111111111111111111111111111111111";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The seed of a test: `$var` if set, else the clock (printed by the caller).
pub fn seed_from_env(var: &str) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

pub fn env_usize(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// One `exportd serve` process over `<root>/data`, its log in `<root>/server-<n>.log`.
pub struct Server {
    pub child: Option<Child>,
    pub root: PathBuf,
    pub port: u16,
    pub extra: Vec<String>,
    pub lives: u32,
}

impl Server {
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.root.join(format!("server-{}.log", self.lives))
    }

    /// Spawns without waiting.
    pub fn spawn(root: &Path, port: u16, extra: &[&str]) -> Server {
        let mut s = Server {
            child: None,
            root: root.to_path_buf(),
            port,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            lives: 0,
        };
        s.launch();
        s
    }

    /// Spawns and waits until `/health` answers (panics with the log if it does not).
    pub fn start(root: &Path, port: u16, extra: &[&str]) -> Server {
        let mut s = Server::spawn(root, port, extra);
        s.wait_healthy(Duration::from_secs(30));
        s
    }

    fn launch(&mut self) {
        let key = self.root.join("master.key");
        if !key.exists() {
            std::fs::write(&key, KEY_HEX).unwrap();
        }
        self.lives += 1;
        let log = std::fs::File::create(self.log_path()).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_exportd"))
            .args(["serve", "--data-dir"])
            .arg(self.data_dir())
            .arg("--master-key-file")
            .arg(&key)
            .args(["--bind", &format!("127.0.0.1:{}", self.port)])
            .args(&self.extra)
            .env("EXPORTD_SYSTEM_TOKEN", SYS)
            .env("RUST_LOG", "warn")
            .env_remove("EXPORTD_MASTER_KEY")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// The current life's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn wait_healthy(&mut self, t: Duration) {
        let deadline = Instant::now() + t;
        let agent = agent(Duration::from_secs(2));
        let mut port_taken = 0;
        while Instant::now() < deadline {
            if agent.get(&format!("{}/health", self.base())).call().is_ok() {
                return;
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                // the port went to another socket meanwhile (e.g. an outgoing connection's
                // ephemeral port): wait for it and start again
                if self.log().contains("cannot listen on") && port_taken < 20 {
                    port_taken += 1;
                    std::thread::sleep(Duration::from_millis(250));
                    self.launch();
                    continue;
                }
                panic!(
                    "server exited ({st}) before answering; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        panic!(
            "server did not answer /health on port {}; log:\n{}",
            self.port,
            self.log()
        );
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM; returns whether it exited 0 within `t` (killed otherwise).
    pub fn term(&mut self, t: Duration) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + t;
        while Instant::now() < deadline {
            if let Some(st) = c.try_wait().unwrap() {
                return st.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// A new life over the same data dir and port.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
        self.wait_healthy(Duration::from_secs(30));
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout(timeout)
        .build()
}

/// An HTTP answer: status, headers of interest and the body.
pub struct Answer {
    pub status: u16,
    pub etag: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// The body ended before its Content-Length (a stopped download).
    pub cut: bool,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A client whose transport failures (connection refused, reset, cut body) are `Err`.
#[derive(Clone)]
pub struct Http {
    pub base: String,
    pub agent: ureq::Agent,
}

impl Http {
    pub fn new(base: &str) -> Http {
        Http {
            base: base.to_string(),
            agent: agent(Duration::from_secs(60)),
        }
    }

    /// Sends a request; `Err` only when no full HTTP answer came back.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, &[u8])>,
    ) -> Result<Answer, String> {
        self.send_with(method, path, token, &[], body)
    }

    /// `send` with extra headers.
    pub fn send_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Result<Answer, String> {
        let mut req = self.agent.request(method, &format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        if let Some(t) = token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let res = match body {
            Some((ct, b)) => req.set("Content-Type", ct).send_bytes(b),
            None => req.call(),
        };
        let resp = match res {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(format!("{method} {path}: {e}")),
        };
        let status = resp.status();
        let etag = resp.header("ETag").map(|s| s.trim_matches('"').to_string());
        let content_type = resp.header("Content-Type").map(String::from);
        let len: Option<usize> = resp.header("Content-Length").and_then(|s| s.parse().ok());
        let mut body = Vec::new();
        let read = resp.into_reader().read_to_end(&mut body);
        let cut = read.is_err() || len.is_some_and(|l| l != body.len());
        Ok(Answer {
            status,
            etag,
            content_type,
            body,
            cut,
        })
    }

    /// JSON request; `Err` on transport failure.
    pub fn json(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let b = body.map(|b| b.to_string());
        let a = self.send(
            method,
            path,
            Some(token),
            b.as_deref().map(|s| ("application/json", s.as_bytes())),
        )?;
        Ok((a.status, a.json()))
    }

    /// JSON request that must get an answer.
    pub fn must(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        self.json(method, path, token, body)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// NDJSON bulk insert; `Ok((status, json))`.
    pub fn bulk(&self, path: &str, token: &str, lines: &[String]) -> Result<(u16, Value), String> {
        let body = lines.join("\n");
        let a = self.send(
            "POST",
            path,
            Some(token),
            Some(("application/x-ndjson", body.as_bytes())),
        )?;
        Ok((a.status, a.json()))
    }

    /// Creates an org and an administrator; returns the admin's token.
    pub fn org_with_admin(&self, code: &str, extra: Value) -> String {
        let mut body = serde_json::json!({ "code": code });
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        let (s, v) = self.must("POST", "/sys/orgs", SYS, Some(body));
        assert_eq!(s, 201, "create org {code}: {v}");
        let (s, a) = self.must(
            "POST",
            &format!("/sys/orgs/{code}/accounts"),
            SYS,
            Some(serde_json::json!({"email": format!("admin@{code}.test"), "roles": ["administrator"]})),
        );
        assert_eq!(s, 201, "create admin of {code}: {a}");
        a["token"].as_str().unwrap().to_string()
    }
}

/// Opens the store of a stopped server.
pub fn open_store(data_dir: &Path) -> exportd::store::Store {
    let key = exportd::crypto::Key::from_hex(KEY_HEX).unwrap();
    exportd::store::Store::open(data_dir, key).unwrap_or_else(|e| panic!("open store: {e}"))
}

/// Whether a JSON body is a fault per SPEC §1 with this HTTP status.
pub fn is_fault(status: u16, v: &Value) -> bool {
    v["object"] == "fault"
        && v["status"].as_u64() == Some(status as u64)
        && v["errCode"]
            .as_str()
            .is_some_and(|c| c.starts_with("cortex."))
        && v["code"].as_str().is_some_and(|c| c.starts_with('k'))
        && v["message"].is_string()
}

pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
