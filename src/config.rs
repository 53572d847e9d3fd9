//! Command line and `EXPORTD_*` environment (SPEC §6), validated into a `Config`.

use crate::crypto::Key;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "exportd",
    version,
    about = "Self-hosted multi-tenant data-export server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Create a demo org with data (once), then serve it.
    Demo(DemoArgs),
    /// Internal: run one afterScript in a sandboxed child process (`--check`: only parse it).
    #[command(hide = true)]
    Hook {
        #[arg(long)]
        check: bool,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Flags shared by `serve` and `demo`.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Address to listen on.
    #[arg(long, env = "EXPORTD_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Exports running at once across all orgs (default: CPU cores).
    #[arg(long, env = "EXPORTD_MAX_CONCURRENT")]
    pub max_concurrent: Option<usize>,
    /// Seconds between janitor runs (expiry, orphan reclaim).
    #[arg(long, env = "EXPORTD_JANITOR_INTERVAL", default_value_t = 60)]
    pub janitor_interval: u64,
    /// URL prefixes afterScript notifications may be sent to (repeatable).
    #[arg(long = "hook-allow", env = "EXPORTD_HOOK_ALLOW", value_delimiter = ',')]
    pub hook_allow: Vec<String>,
    #[arg(long, env = "EXPORTD_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Size of the database page cache, MiB: the main part of the server's memory.
    #[arg(long, env = "EXPORTD_CACHE_MB", default_value_t = crate::store::DEFAULT_CACHE_MB,
          value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub cache_mb: u64,
    /// Largest JSON request body, bytes.
    #[arg(long, env = "EXPORTD_MAX_JSON_BYTES", default_value_t = 1024 * 1024)]
    pub max_json_bytes: usize,
    /// Largest NDJSON bulk insert body, bytes.
    #[arg(long, env = "EXPORTD_MAX_BULK_BYTES", default_value_t = 4 * 1024 * 1024 * 1024)]
    pub max_bulk_bytes: u64,
    /// Largest uploaded file, bytes.
    #[arg(long, env = "EXPORTD_MAX_FILE_BYTES", default_value_t = 1024 * 1024 * 1024)]
    pub max_file_bytes: u64,
    /// Wall-clock limit of one afterScript run, seconds (then the child is killed).
    #[arg(long, env = "EXPORTD_HOOK_TIMEOUT", default_value_t = 10)]
    pub hook_timeout: u64,
    /// Memory cap of the afterScript child process, MiB.
    #[arg(long, env = "EXPORTD_HOOK_MEMORY_MB", default_value_t = 256)]
    pub hook_memory_mb: u64,
    /// CPU-time cap of the afterScript child process, seconds.
    #[arg(long, env = "EXPORTD_HOOK_CPU_SECS", default_value_t = 10)]
    pub hook_cpu_secs: u64,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Directory holding the database.
    #[arg(long, env = "EXPORTD_DATA_DIR")]
    pub data_dir: PathBuf,
    /// File holding the 32-byte master key as 64 hex chars (or set EXPORTD_MASTER_KEY).
    #[arg(long, env = "EXPORTD_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    #[arg(long, env = "EXPORTD_DATA_DIR", default_value = "exportd-demo")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub common: Common,
}

/// Everything the server needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub bind: String,
    pub master_key: Key,
    pub max_concurrent: usize,
    pub janitor_interval: Duration,
    pub hook_allow: Vec<String>,
    pub log_format: LogFormat,
    pub max_json_bytes: usize,
    pub max_bulk_bytes: u64,
    pub max_file_bytes: u64,
    pub cache_mb: u64,
    /// `EXPORTD_SYSTEM_TOKEN`, else generated into `<data-dir>/system.token`.
    pub system_token: Option<String>,
    pub hook: crate::hook::runner::HookConfig,
}

fn hook_config(
    exe: Option<PathBuf>,
    timeout: u64,
    memory_mb: u64,
    cpu: u64,
    allow: Vec<String>,
) -> crate::hook::runner::HookConfig {
    crate::hook::runner::HookConfig {
        exe: exe.unwrap_or_else(|| {
            std::env::current_exe().unwrap_or_else(|_| PathBuf::from("exportd"))
        }),
        timeout: Duration::from_secs(timeout.max(1)),
        memory_bytes: memory_mb.max(16) * 1024 * 1024,
        cpu_seconds: cpu.max(1),
        allow,
    }
}

impl Config {
    pub fn from_common(data_dir: PathBuf, master_key: Key, c: Common) -> Result<Config, String> {
        if c.janitor_interval == 0 {
            return Err("--janitor-interval must be at least 1 second".into());
        }
        if c.max_concurrent == Some(0) {
            return Err("--max-concurrent must be at least 1".into());
        }
        for a in &c.hook_allow {
            if !(a.starts_with("http://") || a.starts_with("https://")) {
                return Err(format!(
                    "--hook-allow {a}: must start with http:// or https://"
                ));
            }
        }
        Ok(Config {
            data_dir,
            bind: c.bind,
            master_key,
            max_concurrent: c
                .max_concurrent
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
            janitor_interval: Duration::from_secs(c.janitor_interval),
            hook: hook_config(
                None,
                c.hook_timeout,
                c.hook_memory_mb,
                c.hook_cpu_secs,
                c.hook_allow.clone(),
            ),
            hook_allow: c.hook_allow,
            log_format: c.log_format,
            max_json_bytes: c.max_json_bytes,
            max_bulk_bytes: c.max_bulk_bytes,
            max_file_bytes: c.max_file_bytes,
            cache_mb: c.cache_mb,
            system_token: std::env::var("EXPORTD_SYSTEM_TOKEN")
                .ok()
                .filter(|s| !s.is_empty()),
        })
    }

    /// `serve`: the master key must come from the file or `EXPORTD_MASTER_KEY`.
    pub fn for_serve(a: ServeArgs) -> Result<Config, String> {
        let key = match (&a.master_key_file, std::env::var("EXPORTD_MASTER_KEY").ok()) {
            (Some(f), _) => Key::load_file(f)?,
            (None, Some(hex)) if !hex.is_empty() => {
                Key::from_hex(&hex).map_err(|e| format!("EXPORTD_MASTER_KEY: {e}"))?
            }
            _ => {
                return Err(
                    "no master key: pass --master-key-file FILE or set EXPORTD_MASTER_KEY".into(),
                );
            }
        };
        Config::from_common(a.data_dir, key, a.common)
    }

    /// A config for tests: a temp data dir, a random key, everything else default.
    pub fn for_tests(data_dir: PathBuf) -> Config {
        let mut hook = hook_config(None, 10, 256, 10, Vec::new());
        // integration tests run from target/<profile>/deps/, beside which cargo builds the
        // exportd binary whose `hook` mode checks and runs scripts
        if let Some(bin) = hook
            .exe
            .parent()
            .filter(|d| d.ends_with("deps"))
            .and_then(|d| d.parent())
            .map(|d| d.join("exportd"))
            .filter(|b| b.is_file())
        {
            hook.exe = bin;
        }
        Config {
            data_dir,
            bind: "127.0.0.1:0".into(),
            master_key: Key::random(),
            max_concurrent: 2,
            janitor_interval: Duration::from_secs(60),
            hook_allow: Vec::new(),
            log_format: LogFormat::Text,
            max_json_bytes: 1024 * 1024,
            max_bulk_bytes: 1 << 32,
            max_file_bytes: 1 << 30,
            cache_mb: crate::store::DEFAULT_CACHE_MB,
            system_token: Some("test-system-token".into()),
            hook,
        }
    }
}
