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

/// How a child ended without an answer.
enum Ended {
    Start(String),
    Timeout,
    Signal(i32),
    Failed(String),
    Unreadable,
}

impl Ended {
    fn message(&self, cfg: &HookConfig) -> String {
        match self {
            Ended::Start(e) => format!("the script runner could not start: {e}"),
            Ended::Timeout => format!(
                "the script ran longer than {} s and was stopped",
                cfg.timeout.as_secs_f64()
            ),
            Ended::Signal(sig) => {
                #[cfg(unix)]
                let why = match *sig {
                    libc::SIGXCPU => "its CPU time limit",
                    libc::SIGABRT | libc::SIGSEGV | libc::SIGKILL => "its memory limit or a crash",
                    _ => "a signal",
                };
                #[cfg(not(unix))]
                let why = "a signal";
                format!("the script was stopped by {why} (signal {sig})")
            }
            Ended::Failed(status) => format!("the script runner failed ({status})"),
            Ended::Unreadable => "the script runner returned nothing readable".into(),
        }
    }
}

/// Spawns the child and waits for it (at most `timeout`).
pub fn run_child(cfg: &HookConfig, input: &HookInput) -> HookOutput {
    child(cfg, input, false).unwrap_or_else(|e| HookOutput {
        err: Some(e.message(cfg)),
        ..Default::default()
    })
}

/// Parses an afterScript in the child (`exportd hook --check`) under the same limits as a run:
/// boa's parser recurses without a limit, so a script nested deeply enough (a hundred `(` do
/// it on a 2 MiB thread stack) overflows the stack of whichever process parses it.
/// `Ok(Err(message))`: the script does not parse, or the parser gave up on it.
pub fn check_syntax(
    cfg: &HookConfig,
    src: &str,
) -> crate::fault::Result<std::result::Result<(), String>> {
    let input = HookInput {
        script: src.to_string(),
        arguments: Value::Null,
        principal: Value::Null,
        memory_bytes: cfg.memory_bytes,
        cpu_seconds: cfg.cpu_seconds,
    };
    match child(cfg, &input, true) {
        Ok(out) => Ok(out.err.map_or(Ok(()), Err)),
        Err(Ended::Timeout | Ended::Signal(_)) => Ok(Err(
            "the script is nested too deeply or is too large for the parser".into(),
        )),
        Err(e) => Err(crate::fault::Fault::internal(
            "the script checker failed",
            e.message(cfg),
        )),
    }
}

/// Returns only once the child has ended: the child dies with the thread that spawned it
/// (`sandbox::die_with_parent`), so that thread must outlive it.
fn child(cfg: &HookConfig, input: &HookInput, check: bool) -> Result<HookOutput, Ended> {
    let mut command = Command::new(&cfg.exe);
    command.arg("hook");
    if check {
        command.arg("--check");
    }
    let mut child = match command
        .env_clear()
        // mimalloc reserves 1 GiB of address space up front by default, past the child's
        // RLIMIT_AS (256 MiB by default): every later mapping failed, so any script with a
        // little nesting died with SIGSEGV. Reserve small; the limit then caps real use.
        .env("MIMALLOC_ARENA_RESERVE", "16MiB")
        // the child checks it is still ours once it has asked to die with us: a server
        // killed between the spawn and that request would otherwise leave an orphan running
        .env(super::sandbox::PARENT_ENV, std::process::id().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Err(Ended::Start(e.to_string())),
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
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            // past the deadline, or the child cannot be waited on: it must not live on
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let _ = writer.join();
    let out = reader.join().unwrap_or_default();
    let Some(status) = status else {
        return Err(Ended::Timeout);
    };
    if !status.success() {
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            if let Some(sig) = status.signal() {
                return Err(Ended::Signal(sig));
            }
        }
        return Err(Ended::Failed(status.to_string()));
    }
    serde_json::from_slice(&out).map_err(|_| Ended::Unreadable)
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
