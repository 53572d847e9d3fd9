//! The afterScript sandbox, run inside the `exportd hook` child process: a bare boa context
//! (no filesystem, network, process or module loading exists in it), with loop, recursion and
//! stack limits, `console.*` captured and `notify(url, payload)` queued. The child also caps
//! its own memory, CPU time and open files with rlimits before it reads the script.

use boa_engine::object::ObjectInitializer;
use boa_engine::property::Attribute;
use boa_engine::{Context, JsArgs, JsResult, JsValue, NativeFunction, Source, js_string};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::cell::RefCell;
use std::io::{Read, Write};

pub const MAX_LOG_BYTES: usize = 64 * 1024;
pub const MAX_NOTIFICATIONS: usize = 10;
pub const LOOP_LIMIT: u64 = 10_000_000;
pub const RECURSION_LIMIT: usize = 256;

#[derive(Debug, Serialize, Deserialize)]
pub struct HookInput {
    pub script: String,
    pub arguments: Value,
    pub principal: Value,
    pub memory_bytes: u64,
    pub cpu_seconds: u64,
}

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct HookOutput {
    pub err: Option<String>,
    pub logs: Vec<String>,
    pub notifications: Vec<(String, Value)>,
    pub logs_truncated: bool,
}

thread_local! {
    static OUT: RefCell<HookOutput> = RefCell::new(HookOutput::default());
    static LOG_BYTES: RefCell<usize> = const { RefCell::new(0) };
}

fn log_line(level: &str, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let parts: Vec<String> = args
        .iter()
        .map(|a| match a.as_string() {
            Some(s) => Ok(s.to_std_string_escaped()),
            None => match a.to_json(ctx) {
                Ok(Some(v)) => Ok(v.to_string()),
                _ => a.to_string(ctx).map(|s| s.to_std_string_escaped()),
            },
        })
        .collect::<JsResult<_>>()?;
    let line = if level == "log" {
        parts.join(" ")
    } else {
        format!("[{level}] {}", parts.join(" "))
    };
    OUT.with(|o| {
        LOG_BYTES.with(|n| {
            let mut n = n.borrow_mut();
            let mut o = o.borrow_mut();
            if *n + line.len() > MAX_LOG_BYTES {
                o.logs_truncated = true;
            } else {
                *n += line.len() + 1;
                o.logs.push(line);
            }
        })
    });
    Ok(JsValue::undefined())
}

fn notify(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let url = args
        .get_or_undefined(0)
        .to_string(ctx)?
        .to_std_string_escaped();
    let payload = args
        .get_or_undefined(1)
        .to_json(ctx)?
        .unwrap_or(Value::Null);
    let queued = OUT.with(|o| {
        let mut o = o.borrow_mut();
        if o.notifications.len() >= MAX_NOTIFICATIONS {
            false
        } else {
            o.notifications.push((url, payload));
            true
        }
    });
    if !queued {
        return Err(boa_engine::JsNativeError::range()
            .with_message(format!("at most {MAX_NOTIFICATIONS} notifications per run"))
            .into());
    }
    Ok(JsValue::undefined())
}

/// Caps this process's memory, CPU time, file size and open files (Linux rlimits).
pub fn limit_process(memory_bytes: u64, cpu_seconds: u64) {
    #[cfg(unix)]
    unsafe {
        // SAFETY: setrlimit only reads the struct we pass; failures leave the old limits.
        let set = |res, v: u64| {
            let l = libc::rlimit {
                rlim_cur: v as libc::rlim_t,
                rlim_max: v as libc::rlim_t,
            };
            libc::setrlimit(res, &l);
        };
        set(libc::RLIMIT_AS, memory_bytes);
        set(libc::RLIMIT_CPU, cpu_seconds);
        set(libc::RLIMIT_FSIZE, 0);
        set(libc::RLIMIT_NOFILE, 16);
        set(libc::RLIMIT_CORE, 0);
    }
}

/// The environment variable through which the server names itself to its hook child.
pub const PARENT_ENV: &str = "EXPORTD_HOOK_PARENT";

/// Ties this process's life to the server that started it (Linux): were the server killed
/// mid-run, the script would otherwise go on to its CPU limit with nobody to read its outcome.
pub fn die_with_parent() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY (both blocks): plain syscalls about this process, no memory passed.
        let current_parent = || unsafe { libc::getppid() };
        let parent = std::env::var(PARENT_ENV)
            .ok()
            .and_then(|p| p.parse::<libc::pid_t>().ok())
            .unwrap_or_else(current_parent);
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
        // the server died before the prctl took hold: this process is already an orphan
        if current_parent() != parent {
            std::process::exit(3);
        }
    }
}

/// Runs a script in a fresh context; returns what it logged, queued and threw.
pub fn run(input: &HookInput) -> HookOutput {
    OUT.with(|o| *o.borrow_mut() = HookOutput::default());
    LOG_BYTES.with(|n| *n.borrow_mut() = 0);
    let mut ctx = Context::default();
    ctx.runtime_limits_mut()
        .set_loop_iteration_limit(LOOP_LIMIT);
    ctx.runtime_limits_mut()
        .set_recursion_limit(RECURSION_LIMIT);
    let result = setup(&mut ctx, input)
        .and_then(|_| ctx.eval(Source::from_bytes(input.script.as_bytes())))
        .and_then(|v| settle(&mut ctx, v));
    let mut out = OUT.with(|o| std::mem::take(&mut *o.borrow_mut()));
    if let Err(e) = result {
        out.err = Some(e.to_string());
    }
    out
}

/// Runs pending jobs; a script whose completion value is a rejected promise failed.
fn settle(ctx: &mut Context, v: JsValue) -> JsResult<()> {
    ctx.run_jobs()?;
    if let Some(obj) = v.as_object()
        && let Ok(p) = boa_engine::object::builtins::JsPromise::from_object(obj.clone())
        && let boa_engine::builtins::promise::PromiseState::Rejected(reason) = p.state()
    {
        return Err(boa_engine::JsError::from_opaque(reason));
    }
    Ok(())
}

fn setup(ctx: &mut Context, input: &HookInput) -> JsResult<()> {
    macro_rules! level {
        ($name:literal) => {
            NativeFunction::from_fn_ptr(|_, args, ctx| log_line($name, args, ctx))
        };
    }
    let console = ObjectInitializer::new(ctx)
        .function(level!("log"), js_string!("log"), 0)
        .function(level!("info"), js_string!("info"), 0)
        .function(level!("warn"), js_string!("warn"), 0)
        .function(level!("error"), js_string!("error"), 0)
        .build();
    ctx.register_global_property(js_string!("console"), console, Attribute::all())?;
    ctx.register_global_callable(js_string!("notify"), 2, NativeFunction::from_fn_ptr(notify))?;
    let args = JsValue::from_json(&input.arguments, ctx)?;
    let principal = JsValue::from_json(&input.principal, ctx)?;
    let script = ObjectInitializer::new(ctx)
        .property(js_string!("arguments"), args, Attribute::all())
        .property(js_string!("principal"), principal, Attribute::all())
        .build();
    ctx.register_global_property(js_string!("script"), script, Attribute::all())?;
    Ok(())
}

/// The `exportd hook` child: limits itself, reads one HookInput on stdin, writes one
/// HookOutput on stdout. With `check`, it only parses the script (`err` is the syntax error).
pub fn child_main(check: bool) -> i32 {
    die_with_parent();
    let mut raw = Vec::new();
    if std::io::stdin()
        .take(8 * 1024 * 1024)
        .read_to_end(&mut raw)
        .is_err()
    {
        return 3;
    }
    let Ok(input) = serde_json::from_slice::<HookInput>(&raw) else {
        return 3;
    };
    limit_process(input.memory_bytes, input.cpu_seconds);
    let out = if check {
        HookOutput {
            err: check_syntax(&input.script).err(),
            ..Default::default()
        }
    } else {
        run(&input)
    };
    let mut stdout = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut stdout, &out);
    let _ = stdout.flush();
    0
}

/// Parses a script without running it; the message names line and column. The parser
/// recurses on nesting without a limit, so a hostile script overflows any thread's stack:
/// call this only in the `exportd hook --check` child (`runner::check_syntax`).
pub fn check_syntax(src: &str) -> Result<(), String> {
    let mut ctx = Context::default();
    boa_engine::Script::parse(Source::from_bytes(src.as_bytes()), None, &mut ctx)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run_src(src: &str) -> HookOutput {
        run(&HookInput {
            script: src.into(),
            arguments: json!({"err": null, "export": {"label": "x"}}),
            principal: json!({}),
            memory_bytes: 0,
            cpu_seconds: 0,
        })
    }

    #[test]
    fn logs_notifications_and_errors_are_captured() {
        let o = run_src(
            "console.log('hi', 1, {a: 2}); console.warn('w'); notify('http://x/y', {label: script.arguments.export.label});",
        );
        assert_eq!(o.err, None);
        assert_eq!(
            o.logs,
            vec!["hi 1 {\"a\":2}".to_string(), "[warn] w".to_string()]
        );
        assert_eq!(
            o.notifications,
            vec![("http://x/y".to_string(), json!({"label": "x"}))]
        );
        assert!(
            run_src("throw new Error('boom')")
                .err
                .unwrap()
                .contains("boom")
        );
        assert!(run_src("while (true) {}").err.unwrap().contains("loop"));
        assert!(run_src("function f() { return f() } f()").err.is_some());
        for probe in [
            "require('fs')",
            "process.env",
            "Deno.env",
            "fetch('http://x')",
            "new XMLHttpRequest()",
        ] {
            assert!(run_src(probe).err.is_some(), "{probe} should not exist");
        }
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        assert!(check_syntax("let a = 1;\nconsole.log(a)").is_ok());
        let e = check_syntax("let a = 1;\nlet = = 2;").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
    }
}
