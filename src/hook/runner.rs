//! Runs an export's afterScript in a child process (`exportd hook`, the same binary): no
//! environment, no inherited descriptors beyond its pipes, memory/CPU rlimits set by the
//! child, and a wall-clock timeout after which it is killed. The outcome becomes the
//! `afterScript.completed` event; its notifications go to `webhook`.

use super::sandbox::{HookInput, HookOutput};
use crate::export::record::{Event, ExportRecord, State};
use crate::store::Store;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct HookConfig {
    /// The exportd binary (its `hook` mode runs scripts).
    pub exe: PathBuf,
    pub timeout: Duration,
    pub memory_bytes: u64,
    pub cpu_seconds: u64,
    pub allow: Vec<String>,
}

const MAX_OUTPUT: u64 = 1024 * 1024;

/// Spawns the child and waits for it (at most `timeout`).
pub fn run_child(cfg: &HookConfig, input: &HookInput) -> HookOutput {
    let failed = |m: String| HookOutput {
        err: Some(m),
        ..Default::default()
    };
    let mut child = match Command::new(&cfg.exe)
        .arg("hook")
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return failed(format!("the script runner could not start: {e}")),
    };
    let body = serde_json::to_vec(input).unwrap_or_default();
    let mut stdin = child.stdin.take();
    let writer = std::thread::spawn(move || {
        if let Some(s) = stdin.as_mut() {
            let _ = s.write_all(&body);
        }
    });
    let mut stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.take(MAX_OUTPUT).read_to_end(&mut out);
        }
        out
    });
    let deadline = Instant::now() + cfg.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => break None,
        }
    };
    let _ = writer.join();
    let out = reader.join().unwrap_or_default();
    let Some(status) = status else {
        return failed(format!(
            "the script ran longer than {} s and was stopped",
            cfg.timeout.as_secs_f64()
        ));
    };
    if !status.success() {
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            if let Some(sig) = status.signal() {
                let why = match sig {
                    libc::SIGXCPU => "its CPU time limit",
                    libc::SIGABRT | libc::SIGSEGV | libc::SIGKILL => "its memory limit or a crash",
                    _ => "a signal",
                };
                return failed(format!("the script was stopped by {why} (signal {sig})"));
            }
        }
        return failed(format!("the script runner failed ({status})"));
    }
    serde_json::from_slice(&out)
        .unwrap_or_else(|_| failed("the script runner returned nothing readable".into()))
}

/// Runs the afterScript of an export that has ended, records its outcome, and delivers its
/// notifications. The export's state never changes here.
pub fn after_run(store: &Store, cfg: &HookConfig, rec: &ExportRecord) {
    let Some(script) = rec.after_script.clone() else {
        return;
    };
    if !matches!(rec.state, State::Ready | State::Error) {
        return;
    }
    let event = |name: &str, data: Value| {
        if let Err(e) = store.add_event(&rec.org, rec.id, &Event::new(name, data)) {
            tracing::warn!(error = %e, "could not record an afterScript event");
        }
    };
    event("afterScript.started", json!({}));
    let principal = store
        .get_account(&rec.org, rec.creator)
        .ok()
        .flatten()
        .map_or(Value::Null, |a| a.to_json());
    let err = rec.fault().map_or(Value::Null, |f| {
        serde_json::to_value(f).unwrap_or(Value::Null)
    });
    let input = HookInput {
        script,
        arguments: json!({"err": err, "export": rec.to_json()}),
        principal,
        memory_bytes: cfg.memory_bytes,
        cpu_seconds: cfg.cpu_seconds,
    };
    let out = run_child(cfg, &input);
    event(
        "afterScript.completed",
        json!({"err": out.err, "logs": out.logs, "logsTruncated": out.logs_truncated,
               "notifications": out.notifications.len()}),
    );
    if !out.notifications.is_empty() {
        let secret = store
            .get_org(&rec.org)
            .ok()
            .flatten()
            .and_then(|o| store.webhook_secret(&o).ok())
            .unwrap_or_default();
        super::webhook::deliver_all(
            &out.notifications,
            &cfg.allow,
            &secret,
            &mut |name, data| event(name, data),
        );
    }
    let _ = store.flush();
}
