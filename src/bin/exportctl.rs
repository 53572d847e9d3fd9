//! `exportctl`: the command-line client of exportd's Export API (SPEC §4).
//!
//! Credentials come from `--url/--org/--token`, then `EXPORTD_URL/EXPORTD_ORG/EXPORTD_TOKEN`,
//! then the config file written by `exportctl login` (`$EXPORTCTL_CONFIG`, else
//! `$XDG_CONFIG_HOME/exportctl/config.json`, else `~/.config/exportctl/config.json`).
//!
//! Exit codes: 0 success, 1 a fault from the server or a failed operation, 2 a usage error
//! (bad arguments, missing or unreadable configuration).

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, IsTerminal, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Consecutive network errors tolerated while polling with `--wait`.
const POLL_RETRIES: u32 = 20;

#[derive(Parser)]
#[command(
    name = "exportctl",
    version,
    about = "Command-line client for exportd data exports",
    propagate_version = true
)]
struct Cli {
    /// Server base URL, e.g. http://127.0.0.1:8080 (overrides the config file)
    #[arg(
        long,
        global = true,
        env = "EXPORTD_URL",
        help_heading = "Connection",
        value_name = "URL"
    )]
    url: Option<String>,
    /// Org code (overrides the config file)
    #[arg(
        long,
        global = true,
        env = "EXPORTD_ORG",
        help_heading = "Connection",
        value_name = "ORG"
    )]
    org: Option<String>,
    /// API token (overrides the config file); `-` reads it from standard input
    #[arg(
        long,
        global = true,
        env = "EXPORTD_TOKEN",
        hide_env_values = true,
        help_heading = "Connection",
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// Print the server's JSON instead of human-readable text
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify the credentials (GET /{org}/v2/accounts/me) and store them in the config file
    Login,
    /// Remove the stored credentials
    Logout,
    /// Create, inspect, download, cancel and delete exports
    #[command(subcommand)]
    Export(Box<ExportCmd>),
}

#[derive(Subcommand)]
enum ExportCmd {
    /// Create an export (optionally waiting until it ends)
    Create(CreateArgs),
    /// List exports, newest first
    List(ListArgs),
    /// Show one export
    Get {
        #[arg(value_parser = parse_id)]
        id: String,
        /// Also show the event timeline
        #[arg(long)]
        events: bool,
    },
    /// Download an export's archive (resumable, SHA-256 verified)
    Download {
        #[arg(value_parser = parse_id)]
        id: String,
        /// Where to write the archive (default: the server's file name in the current directory;
        /// an existing directory receives the server's file name)
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Cancel a pending or running export
    Cancel {
        #[arg(value_parser = parse_id)]
        id: String,
    },
    /// Delete an export, its archive and side files
    Delete {
        #[arg(value_parser = parse_id)]
        id: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    #[value(name = "ndjson", alias = "application/x-ndjson")]
    Ndjson,
    #[value(name = "json", alias = "application/json")]
    Json,
    #[value(name = "csv", alias = "text/csv")]
    Csv,
}

impl FormatArg {
    fn mime(self) -> &'static str {
        match self {
            FormatArg::Ndjson => "application/x-ndjson",
            FormatArg::Json => "application/json",
            FormatArg::Csv => "text/csv",
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum StateArg {
    Pending,
    Running,
    Ready,
    Error,
}

impl StateArg {
    fn name(self) -> &'static str {
        match self {
            StateArg::Pending => "pending",
            StateArg::Running => "running",
            StateArg::Ready => "ready",
            StateArg::Error => "error",
        }
    }
}

#[derive(Args)]
struct CreateArgs {
    /// Label (1-100 characters)
    #[arg(long)]
    label: String,
    /// Object to export (plural or singular name), e.g. c_steps
    #[arg(long)]
    objects: String,
    /// Data format: ndjson (default), json, csv, or their mime types
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Description (up to 255 characters)
    #[arg(long)]
    description: Option<String>,
    /// A where query as JSON, e.g. '{"c_n":{"$gte":10}}'
    #[arg(long = "where", value_name = "JSON")]
    where_json: Option<String>,
    /// Paths to export (comma-separated or repeated)
    #[arg(long, value_delimiter = ',', value_name = "PATHS")]
    paths: Vec<String>,
    /// Optional properties to include (comma-separated or repeated)
    #[arg(long, value_delimiter = ',', value_name = "PATHS")]
    include: Vec<String>,
    /// Reference paths to expand (comma-separated or repeated)
    #[arg(long, value_delimiter = ',', value_name = "PATHS")]
    expand: Vec<String>,
    /// Export file contents
    #[arg(long)]
    export_files: bool,
    /// Put exported files into the archive
    #[arg(long)]
    zip_files: bool,
    /// JavaScript file run after the export ends (`-` reads standard input)
    #[arg(long, value_name = "FILE")]
    after_script: Option<PathBuf>,
    /// Run the export as this account id (only what it may read is exported)
    #[arg(long, value_name = "ID")]
    principal: Option<String>,
    /// `<_id>/<property>`: export that document's Document-array or List elements
    #[arg(long)]
    prefix: Option<String>,
    /// Prefix CSV cells starting with = + - @ TAB CR with a quote
    #[arg(long)]
    csv_escape_formulas: bool,
    /// Wait until the export is ready or failed, with a progress bar
    #[arg(long)]
    wait: bool,
}

#[derive(Args)]
struct ListArgs {
    /// How many exports to show (1-1000; server default 100)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: Option<u32>,
    /// Skip this many exports
    #[arg(long)]
    skip: Option<u32>,
    /// Only exports in this state
    #[arg(long, value_enum)]
    state: Option<StateArg>,
}

fn parse_id(s: &str) -> Result<String, String> {
    if s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err("an export id is 24 hexadecimal characters".into())
    }
}

// ---------------------------------------------------------------------------------------------
// failures

enum Fail {
    /// Bad usage or configuration: exit 2.
    Usage(String),
    /// A fault answered by the server: exit 1.
    Fault(Value),
    /// Any other failure: exit 1.
    Msg(String),
    /// The server could not be reached: exit 1.
    Net(String),
}

type R<T> = Result<T, Fail>;

fn usage<T>(m: impl Into<String>) -> R<T> {
    Err(Fail::Usage(m.into()))
}

fn fail<T>(m: impl Into<String>) -> R<T> {
    Err(Fail::Msg(m.into()))
}

fn print_fault(f: &Value) {
    let s = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or("");
    let status = f.get("status").and_then(Value::as_u64);
    let code = match s("errCode") {
        "" => "cortex.error.unspecified",
        c => c,
    };
    match status {
        Some(st) => eprintln!("error: {code} ({st}): {}", s("message")),
        None => eprintln!("error: {code}: {}", s("message")),
    }
    if !s("path").is_empty() {
        eprintln!("  path: {}", s("path"));
    }
    print_sub_faults(f, 1);
}

fn print_sub_faults(f: &Value, depth: usize) {
    let Some(subs) = f.get("faults").and_then(Value::as_array) else {
        return;
    };
    for sub in subs {
        let s = |k: &str| sub.get(k).and_then(Value::as_str).unwrap_or("");
        let mut line = format!("{}- {}: {}", "  ".repeat(depth), s("errCode"), s("message"));
        if !s("path").is_empty() {
            line.push_str(&format!(" (path: {})", s("path")));
        }
        eprintln!("{line}");
        print_sub_faults(sub, depth + 1);
    }
}

// ---------------------------------------------------------------------------------------------
// configuration

#[derive(Serialize, Deserialize, Default, Clone)]
struct Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    org: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn config_path() -> R<PathBuf> {
    if let Some(p) = non_empty_env("EXPORTCTL_CONFIG") {
        return Ok(PathBuf::from(p));
    }
    if let Some(x) = non_empty_env("XDG_CONFIG_HOME").filter(|x| Path::new(x).is_absolute()) {
        return Ok(Path::new(&x).join("exportctl").join("config.json"));
    }
    match non_empty_env("HOME") {
        Some(h) => Ok(Path::new(&h)
            .join(".config")
            .join("exportctl")
            .join("config.json")),
        None => usage("cannot locate the config file: set EXPORTCTL_CONFIG or HOME"),
    }
}

fn load_config(path: &Path) -> R<Option<Config>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return usage(format!("cannot read config {}: {e}", path.display())),
    };
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "warning: {} is readable by other users; it holds an API token (chmod 600 it)",
            path.display()
        );
    }
    serde_json::from_str(&text)
        .map(Some)
        .or_else(|e| usage(format!("config {} is not valid: {e}", path.display())))
}

/// Writes the config atomically, the file 0600 and a created directory 0700.
fn save_config(path: &Path, cfg: &Config) -> R<()> {
    let io_fail = |what: &str, e: io::Error| Fail::Msg(format!("cannot {what}: {e}"));
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| io_fail(&format!("create {}", dir.display()), e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.json".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        let mut text = serde_json::to_string_pretty(cfg).expect("config serializes");
        text.push('\n');
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_fail(&format!("write {}", path.display()), e)
    })
}

fn valid_org(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 40
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn normalize_url(u: &str) -> R<String> {
    let u = u.trim().trim_end_matches('/');
    if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() <= "https://".len() {
        return usage(format!(
            "invalid server URL {u:?}: expected http://HOST[:PORT] or https://..."
        ));
    }
    Ok(u.to_string())
}

fn read_token_stdin() -> R<String> {
    let mut s = String::new();
    io::stdin()
        .read_line(&mut s)
        .map_err(|e| Fail::Usage(format!("cannot read the token from standard input: {e}")))?;
    Ok(s.trim().to_string())
}

/// Flags and environment over the config file; all three values are required.
fn credentials(cli: &Cli, file: Option<Config>) -> R<(String, String, String)> {
    let file = file.unwrap_or_default();
    let pick = |flag: &Option<String>, stored: Option<String>| {
        flag.clone()
            .filter(|v| !v.is_empty())
            .or(stored.filter(|v| !v.is_empty()))
    };
    let url = pick(&cli.url, file.url);
    let org = pick(&cli.org, file.org);
    let mut token = pick(&cli.token, file.token);
    if token.as_deref() == Some("-") {
        token = Some(read_token_stdin()?).filter(|t| !t.is_empty());
    }
    let mut missing = Vec::new();
    if url.is_none() {
        missing.push("url (--url or EXPORTD_URL)");
    }
    if org.is_none() {
        missing.push("org (--org or EXPORTD_ORG)");
    }
    if token.is_none() {
        missing.push("token (--token or EXPORTD_TOKEN)");
    }
    if !missing.is_empty() {
        return Err(Fail::Usage(format!("missing {}", missing.join(", "))));
    }
    let (url, org, token) = (url.unwrap(), org.unwrap(), token.unwrap());
    if !valid_org(&org) {
        return usage(format!(
            "invalid org code {org:?}: lowercase letters, digits and '-', up to 40"
        ));
    }
    Ok((normalize_url(&url)?, org, token))
}

// ---------------------------------------------------------------------------------------------
// HTTP

struct Client {
    agent: ureq::Agent,
    base: String,
    org: String,
    token: String,
}

impl Client {
    fn new(base: String, org: String, token: String) -> Client {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(Duration::from_secs(120))
            .user_agent(concat!("exportctl/", env!("CARGO_PKG_VERSION")))
            .build();
        Client {
            agent,
            base,
            org,
            token,
        }
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        self.agent
            .request(method, &format!("{}/{}/v2/{path}", self.base, self.org))
            .set("Authorization", &format!("Bearer {}", self.token))
    }

    /// Sends a request; a fault answer becomes `Fail::Fault`.
    fn send(&self, req: ureq::Request, body: Option<&Value>) -> R<ureq::Response> {
        let res = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match res {
            Ok(r) => Ok(r),
            Err(ureq::Error::Status(status, r)) => {
                let text = r.into_string().unwrap_or_default();
                match serde_json::from_str::<Value>(&text) {
                    Ok(v) if v.get("object").and_then(Value::as_str) == Some("fault") => {
                        Err(Fail::Fault(v))
                    }
                    _ => fail(format!(
                        "the server answered HTTP {status}{}",
                        if text.trim().is_empty() {
                            String::new()
                        } else {
                            format!(": {}", text.trim().chars().take(200).collect::<String>())
                        }
                    )),
                }
            }
            Err(e) => Err(Fail::Net(format!("cannot reach {}: {e}", self.base))),
        }
    }

    fn json(&self, method: &str, path: &str, body: Option<&Value>) -> R<Value> {
        let r = self.send(self.request(method, path), body)?;
        r.into_json::<Value>()
            .or_else(|e| fail(format!("the server's answer is not JSON: {e}")))
    }

    fn export(&self, id: &str, events: bool) -> R<Value> {
        let mut req = self.request("GET", &format!("exports/{id}"));
        if events {
            req = req.query("include", "events");
        }
        self.send(req, None)?
            .into_json::<Value>()
            .or_else(|e| fail(format!("the server's answer is not JSON: {e}")))
    }
}

// ---------------------------------------------------------------------------------------------
// output helpers

fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("JSON serializes")
    );
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// `2026-11-29T12:00:00.000Z` → `2026-11-29 12:00:00`.
fn short_date(v: &Value) -> String {
    match v.as_str() {
        Some(s) if s.len() >= 19 => s[..19].replacen('T', " ", 1),
        Some(s) => s.to_string(),
        None => "-".into(),
    }
}

fn progress_text(rec: &Value) -> String {
    let p = &rec["progress"];
    let docs = p["docs"].as_u64().unwrap_or(0);
    match p["total"].as_u64() {
        Some(t) => format!(
            "{docs}/{t} ({}%)",
            p["percent"].as_u64().unwrap_or_default()
        ),
        None => format!("{docs}"),
    }
}

fn size_text(rec: &Value) -> String {
    rec["dataFile"]["size"]
        .as_u64()
        .map(|n| HumanBytes(n).to_string())
        .unwrap_or_else(|| "-".into())
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(c);
                out.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn print_record(rec: &Value) {
    let mut kv: Vec<(&str, String)> = vec![
        ("id", str_of(rec, "_id").into()),
        ("label", str_of(rec, "label").into()),
    ];
    if let Some(d) = rec["description"].as_str() {
        kv.push(("description", d.into()));
    }
    kv.push(("state", str_of(rec, "state").into()));
    kv.push(("format", str_of(rec, "format").into()));
    kv.push(("objects", str_of(rec, "objects").into()));
    if let Some(w) = rec["where"].as_str() {
        kv.push(("where", w.into()));
    }
    for k in ["paths", "include", "expand"] {
        if let Some(a) = rec[k].as_array().filter(|a| !a.is_empty()) {
            let items: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
            kv.push((k, items.join(", ")));
        }
    }
    if rec["exportFiles"].as_bool() == Some(true) {
        let zipped = rec["zipFiles"].as_bool() == Some(true);
        kv.push((
            "files",
            if zipped {
                "exported, in the archive"
            } else {
                "exported, beside the archive"
            }
            .into(),
        ));
    }
    if rec["csvEscapeFormulas"].as_bool() == Some(true) {
        kv.push(("csvEscapeFormulas", "true".into()));
    }
    if let Some(p) = rec["principal"].as_str() {
        kv.push(("principal", p.into()));
    }
    if let Some(p) = rec["prefix"].as_str() {
        kv.push(("prefix", p.into()));
    }
    if let Some(s) = rec["afterScript"].as_str() {
        kv.push((
            "afterScript",
            format!(
                "{} lines, {}",
                s.lines().count(),
                HumanBytes(s.len() as u64)
            ),
        ));
    }
    kv.push(("progress", progress_text(rec)));
    if rec["stats"].is_object() {
        let st = &rec["stats"];
        kv.push((
            "documents",
            st["docs"]["count"].as_u64().unwrap_or(0).to_string(),
        ));
        let files = st["files"]["count"].as_u64().unwrap_or(0);
        if files > 0 {
            kv.push((
                "files exported",
                format!(
                    "{files} ({})",
                    HumanBytes(st["files"]["size"].as_u64().unwrap_or(0))
                ),
            ));
        }
    }
    let df = &rec["dataFile"];
    if df.is_object() {
        kv.push(("data file", str_of(df, "filename").into()));
        kv.push(("size", size_text(rec)));
        kv.push(("sha256", str_of(df, "ETag").into()));
    }
    if rec["fault"].is_object() {
        let f = &rec["fault"];
        let mut t = format!("{}: {}", str_of(f, "errCode"), str_of(f, "message"));
        if let Some(p) = f["path"].as_str() {
            t.push_str(&format!(" (path: {p})"));
        }
        kv.push(("fault", t));
    }
    kv.push(("created", short_date(&rec["created"])));
    if !rec["started"].is_null() {
        kv.push(("started", short_date(&rec["started"])));
    }
    if !rec["completed"].is_null() {
        kv.push(("completed", short_date(&rec["completed"])));
    }
    kv.push(("expires", short_date(&rec["expiresAt"])));
    if let Some(c) = rec["creator"]["_id"].as_str() {
        kv.push(("creator", c.into()));
    }
    let w = kv.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    for (k, v) in &kv {
        println!("{:<w$} {v}", format!("{k}:"), w = w);
    }
    if let Some(events) = rec["events"].as_array() {
        println!();
        println!("Events:");
        if events.is_empty() {
            println!("  (none)");
        }
        for e in events {
            let data = match &e["data"] {
                Value::Null => String::new(),
                Value::Object(m) if m.is_empty() => String::new(),
                d => d.to_string(),
            };
            println!(
                "  {}  {:<22} {}",
                e["at"].as_str().unwrap_or("-"),
                str_of(e, "name"),
                data
            )
        }
    }
}

fn stderr_target() -> ProgressDrawTarget {
    if io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

// ---------------------------------------------------------------------------------------------
// commands

fn cmd_login(cli: &Cli) -> R<()> {
    let path = config_path()?;
    // a config file that cannot be parsed is replaced by the new login
    let existing = load_config(&path).ok().flatten();
    let (url, org, token) = credentials(cli, existing)?;
    let client = Client::new(url.clone(), org.clone(), token.clone());
    let me = client.json("GET", "accounts/me", None)?;
    save_config(
        &path,
        &Config {
            url: Some(url.clone()),
            org: Some(org.clone()),
            token: Some(token),
        },
    )?;
    if cli.json {
        print_json(&me);
        return Ok(());
    }
    let who = me["email"].as_str().unwrap_or("?");
    println!("Logged in to {url} (org {org}) as {who}.");
    println!("Credentials saved to {}.", path.display());
    let admin = me["roles"]
        .as_array()
        .is_some_and(|r| r.iter().any(|x| x.as_str() == Some("administrator")));
    if !admin {
        eprintln!("warning: this account is not an administrator; exports need that role");
    }
    Ok(())
}

fn cmd_logout(cli: &Cli) -> R<()> {
    let path = config_path()?;
    match fs::remove_file(&path) {
        Ok(()) => {
            if !cli.json {
                println!("Removed {}.", path.display());
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if !cli.json {
                println!("Not logged in (no {}).", path.display());
            }
            Ok(())
        }
        Err(e) => fail(format!("cannot remove {}: {e}", path.display())),
    }
}

fn client(cli: &Cli) -> R<Client> {
    let path = config_path()?;
    let file = load_config(&path)?;
    let had_file = file.is_some();
    match credentials(cli, file) {
        Ok((u, o, t)) => Ok(Client::new(u, o, t)),
        Err(Fail::Usage(m)) if !had_file => usage(format!(
            "not logged in: {m}.\nRun `exportctl login --url URL --org ORG --token TOKEN` \
             or set EXPORTD_URL, EXPORTD_ORG and EXPORTD_TOKEN (no config file at {})",
            path.display()
        )),
        Err(e) => Err(e),
    }
}

fn cmd_create(cli: &Cli, c: &Client, a: &CreateArgs) -> R<()> {
    let mut body = Map::new();
    body.insert("label".into(), json!(a.label));
    body.insert("objects".into(), json!(a.objects));
    if let Some(f) = a.format {
        body.insert("format".into(), json!(f.mime()));
    }
    if let Some(d) = &a.description {
        body.insert("description".into(), json!(d));
    }
    if let Some(w) = &a.where_json {
        // sent as a JSON string; the server parses and validates it (§5)
        body.insert("where".into(), json!(w));
    }
    for (k, v) in [
        ("paths", &a.paths),
        ("include", &a.include),
        ("expand", &a.expand),
    ] {
        let items: Vec<&str> = v
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        if !items.is_empty() {
            body.insert(k.into(), json!(items));
        }
    }
    if a.export_files {
        body.insert("exportFiles".into(), json!(true));
    }
    if a.zip_files {
        body.insert("zipFiles".into(), json!(true));
    }
    if let Some(p) = &a.after_script {
        let src = if p.as_os_str() == "-" {
            let mut s = String::new();
            io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| Fail::Usage(format!("cannot read the script from stdin: {e}")))?;
            s
        } else {
            fs::read_to_string(p)
                .map_err(|e| Fail::Usage(format!("cannot read {}: {e}", p.display())))?
        };
        body.insert("afterScript".into(), json!(src));
    }
    if let Some(p) = &a.principal {
        body.insert("principal".into(), json!(p));
    }
    if let Some(p) = &a.prefix {
        body.insert("prefix".into(), json!(p));
    }
    if a.csv_escape_formulas {
        body.insert("csvEscapeFormulas".into(), json!(true));
    }
    let rec = c.json("POST", "exports", Some(&Value::Object(body)))?;
    let id = str_of(&rec, "_id").to_string();
    if !a.wait {
        if cli.json {
            print_json(&rec);
        } else {
            println!(
                "Created export {id} ({}), state {}.",
                a.label,
                str_of(&rec, "state")
            );
        }
        return Ok(());
    }
    if !cli.json {
        eprintln!("Created export {id}; waiting for it to finish…");
    }
    let rec = wait_for(c, &id)?;
    if cli.json {
        print_json(&rec);
    }
    finish_report(cli, &rec)
}

/// Polls the record every 500 ms until it is `ready` or `error`.
fn wait_for(c: &Client, id: &str) -> R<Value> {
    let pb = ProgressBar::with_draw_target(None, stderr_target());
    let spinner = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {pos} docs  {msg}")
        .expect("template");
    let bar = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] [{wide_bar}] {pos}/{len} docs ({percent}%)  {msg}",
    )
    .expect("template")
    .progress_chars("=> ");
    pb.set_style(spinner.clone());
    pb.enable_steady_tick(Duration::from_millis(120));
    let mut has_total = false;
    let mut errors = 0;
    let rec = loop {
        let rec = match c.export(id, false) {
            Ok(r) => {
                errors = 0;
                r
            }
            Err(Fail::Net(_)) if errors < POLL_RETRIES => {
                errors += 1;
                pb.set_message("(server unreachable, retrying)");
                std::thread::sleep(POLL_INTERVAL);
                continue;
            }
            Err(e) => {
                pb.finish_and_clear();
                return Err(e);
            }
        };
        let state = str_of(&rec, "state").to_string();
        let docs = rec["progress"]["docs"].as_u64().unwrap_or(0);
        match rec["progress"]["total"].as_u64() {
            Some(t) => {
                if !has_total {
                    pb.set_style(bar.clone());
                    has_total = true;
                }
                pb.set_length(t);
            }
            None if has_total => {
                pb.set_style(spinner.clone());
                pb.unset_length();
                has_total = false;
            }
            None => {}
        }
        pb.set_position(docs);
        pb.set_message(state.clone());
        if state == "ready" || state == "error" {
            break rec;
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    pb.finish_and_clear();
    Ok(rec)
}

/// After `--wait`: a summary, or the fault and exit 1.
fn finish_report(cli: &Cli, rec: &Value) -> R<()> {
    let id = str_of(rec, "_id");
    if str_of(rec, "state") == "error" {
        let f = rec["fault"].clone();
        if f.is_object() {
            eprintln!("Export {id} failed.");
            return Err(Fail::Fault(f));
        }
        return fail(format!("export {id} failed"));
    }
    if !cli.json {
        println!(
            "Export {id} is ready: {} documents, {} ({}).",
            rec["stats"]["docs"]["count"].as_u64().unwrap_or(0),
            size_text(rec),
            str_of(&rec["dataFile"], "filename")
        );
        println!("Download it with: exportctl export download {id}");
    }
    Ok(())
}

fn cmd_list(cli: &Cli, c: &Client, a: &ListArgs) -> R<()> {
    let mut req = c.request("GET", "exports");
    if let Some(l) = a.limit {
        req = req.query("limit", &l.to_string());
    }
    if let Some(s) = a.skip {
        req = req.query("skip", &s.to_string());
    }
    if let Some(st) = a.state {
        req = req.query("where", &json!({"state": st.name()}).to_string());
    }
    let list: Value = c
        .send(req, None)?
        .into_json()
        .or_else(|e| fail(format!("the server's answer is not JSON: {e}")))?;
    if cli.json {
        print_json(&list);
        return Ok(());
    }
    let items = list["data"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        println!("No exports.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|r| {
            vec![
                str_of(r, "_id").into(),
                truncate(str_of(r, "label"), 40),
                str_of(r, "state").into(),
                progress_text(r),
                size_text(r),
                short_date(&r["created"]),
                short_date(&r["expiresAt"]),
            ]
        })
        .collect();
    print_table(
        &[
            "ID", "LABEL", "STATE", "PROGRESS", "SIZE", "CREATED", "EXPIRES",
        ],
        &rows,
    );
    if list["hasMore"].as_bool() == Some(true) {
        println!("(more exports exist: use --limit / --skip)");
    }
    Ok(())
}

fn cmd_get(cli: &Cli, c: &Client, id: &str, events: bool) -> R<()> {
    let rec = c.export(id, events)?;
    if cli.json {
        print_json(&rec);
    } else {
        print_record(&rec);
    }
    Ok(())
}

fn cmd_cancel(cli: &Cli, c: &Client, id: &str) -> R<()> {
    let rec = c.json("POST", &format!("exports/{id}/cancel"), None)?;
    if cli.json {
        print_json(&rec);
    } else {
        println!("Cancelled export {id} (state {}).", str_of(&rec, "state"));
    }
    Ok(())
}

fn cmd_delete(cli: &Cli, c: &Client, id: &str) -> R<()> {
    let v = c.json("DELETE", &format!("exports/{id}"), None)?;
    if cli.json {
        print_json(&v);
    } else {
        println!("Deleted export {id}.");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// download

fn part_path(target: &Path) -> PathBuf {
    let mut s = target.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// The server's file name, reduced to a plain name in the current directory.
fn safe_filename(name: &str, id: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    if base.is_empty() || base == "." || base == ".." {
        format!("export-{id}.zip")
    } else {
        base.to_string()
    }
}

/// `bytes S-E/T` → S.
fn content_range_start(h: Option<&str>) -> Option<u64> {
    let rest = h?.trim().strip_prefix("bytes ")?;
    rest.split('-').next()?.trim().parse().ok()
}

fn hash_file(path: &Path, h: &mut Sha256) -> io::Result<u64> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            return Ok(n);
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
}

fn cmd_download(cli: &Cli, c: &Client, id: &str, output: Option<&Path>) -> R<()> {
    let rec = c.export(id, false)?;
    match str_of(&rec, "state") {
        "ready" => {}
        "error" => {
            eprintln!("Export {id} failed and has no data file.");
            return match rec["fault"].clone() {
                f @ Value::Object(_) => Err(Fail::Fault(f)),
                _ => fail(format!("export {id} failed")),
            };
        }
        s => {
            return fail(format!(
                "export {id} is {s}, not ready yet (wait with `exportctl export get {id}`)"
            ));
        }
    }
    let df = &rec["dataFile"];
    let (Some(size), Some(etag)) = (df["size"].as_u64(), df["ETag"].as_str()) else {
        return fail(format!("export {id} has no data file"));
    };
    let etag = etag.to_ascii_lowercase();
    let name = safe_filename(str_of(df, "filename"), id);
    let target = match output {
        Some(p) if p.is_dir() => p.join(&name),
        Some(p) => p.to_path_buf(),
        None => PathBuf::from(&name),
    };
    let part = part_path(&target);
    let io_fail = |what: String, e: io::Error| Fail::Msg(format!("{what}: {e}"));

    let mut have = match fs::metadata(&part) {
        Ok(m) => m.len(),
        Err(_) => 0,
    };
    if have > size {
        // not a prefix of this archive
        fs::remove_file(&part).map_err(|e| io_fail(format!("remove {}", part.display()), e))?;
        have = 0;
    }
    let pb = ProgressBar::with_draw_target(Some(size), stderr_target());
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    let mut hasher = Sha256::new();
    let mut attempts = 0;
    while have < size {
        attempts += 1;
        if attempts > 3 {
            pb.finish_and_clear();
            return fail("the server did not answer the range request consistently");
        }
        let mut req = c.request("GET", &format!("exports/{id}/dataFile/content"));
        if have > 0 {
            req = req
                .set("Range", &format!("bytes={have}-"))
                .set("If-Range", &format!("\"{etag}\""));
        }
        let resp = match c.send(req, None) {
            Ok(r) => r,
            Err(Fail::Fault(f)) if f["status"].as_u64() == Some(416) => {
                let _ = fs::remove_file(&part);
                have = 0;
                continue;
            }
            Err(e) => {
                pb.finish_and_clear();
                return Err(e);
            }
        };
        let served_etag = resp.header("ETag").map(|t| {
            t.trim()
                .trim_start_matches("W/")
                .trim_matches('"')
                .to_ascii_lowercase()
        });
        let append = match resp.status() {
            206 if content_range_start(resp.header("Content-Range")) == Some(have)
                && served_etag.as_deref().is_none_or(|t| t == etag) =>
            {
                true
            }
            206 => {
                // a range we did not ask for, or another file: start over
                let _ = fs::remove_file(&part);
                have = 0;
                continue;
            }
            200 => false,
            s => {
                pb.finish_and_clear();
                return fail(format!("unexpected HTTP {s} for the data file"));
            }
        };
        hasher = Sha256::new();
        let mut file = if append {
            let n = hash_file(&part, &mut hasher)
                .map_err(|e| io_fail(format!("read {}", part.display()), e))?;
            if n != have {
                return fail(format!("{} changed while resuming", part.display()));
            }
            OpenOptions::new().append(true).open(&part)
        } else {
            have = 0;
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&part)
        }
        .map_err(|e| io_fail(format!("open {}", part.display()), e))?;
        if append {
            pb.println(format!(
                "Resuming {} at {} of {}",
                target.display(),
                HumanBytes(have),
                HumanBytes(size)
            ));
        }
        pb.set_position(have);
        let mut reader = resp.into_reader();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let k = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = file.sync_all();
                    pb.finish_and_clear();
                    return fail(format!(
                        "download interrupted after {} of {}: {e}; run the same command again to resume",
                        HumanBytes(have),
                        HumanBytes(size)
                    ));
                }
            };
            if have + k as u64 > size {
                drop(file);
                let _ = fs::remove_file(&part);
                pb.finish_and_clear();
                return fail(format!(
                    "the server sent more than the {size} bytes of the data file; nothing was kept"
                ));
            }
            file.write_all(&buf[..k])
                .map_err(|e| io_fail(format!("write {}", part.display()), e))?;
            hasher.update(&buf[..k]);
            have += k as u64;
            pb.set_position(have);
        }
        file.sync_all()
            .map_err(|e| io_fail(format!("write {}", part.display()), e))?;
        if have < size {
            pb.finish_and_clear();
            return fail(format!(
                "download ended early after {} of {}; run the same command again to resume",
                HumanBytes(have),
                HumanBytes(size)
            ));
        }
    }
    pb.finish_and_clear();
    if attempts == 0 {
        // the whole file was already in .part
        hash_file(&part, &mut hasher)
            .map_err(|e| io_fail(format!("read {}", part.display()), e))?;
    }
    let got = hex::encode(hasher.finalize());
    if got != etag {
        let _ = fs::remove_file(&part);
        return fail(format!(
            "SHA-256 mismatch for {}: expected {etag}, got {got}; the partial file was removed, \
             run the command again to download it afresh",
            target.display()
        ));
    }
    fs::rename(&part, &target).map_err(|e| {
        io_fail(
            format!("rename {} to {}", part.display(), target.display()),
            e,
        )
    })?;
    if cli.json {
        print_json(&json!({"file": target, "size": size, "sha256": got, "export": id}));
    } else {
        println!(
            "Downloaded {} ({}, SHA-256 verified).",
            target.display(),
            HumanBytes(size)
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------

fn run(cli: &Cli) -> R<()> {
    match &cli.command {
        Command::Login => cmd_login(cli),
        Command::Logout => cmd_logout(cli),
        Command::Export(cmd) => {
            let c = client(cli)?;
            match cmd.as_ref() {
                ExportCmd::Create(a) => cmd_create(cli, &c, a),
                ExportCmd::List(a) => cmd_list(cli, &c, a),
                ExportCmd::Get { id, events } => cmd_get(cli, &c, id, *events),
                ExportCmd::Download { id, output } => cmd_download(cli, &c, id, output.as_deref()),
                ExportCmd::Cancel { id } => cmd_cancel(cli, &c, id),
                ExportCmd::Delete { id } => cmd_delete(cli, &c, id),
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail::Usage(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
        Err(Fail::Fault(f)) => {
            print_fault(&f);
            ExitCode::from(1)
        }
        Err(Fail::Msg(m) | Fail::Net(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(1)
        }
    }
}
