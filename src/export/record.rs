//! The export record (SPEC §4.2), its states and events, and its JSON shape.

use crate::fault::Fault;
use crate::model::document::reference;
use crate::model::ids::ObjectId;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum State {
    Pending,
    Running,
    Ready,
    Error,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Running => "running",
            State::Ready => "ready",
            State::Error => "error",
        }
    }
    pub fn parse(s: &str) -> Option<State> {
        Some(match s {
            "pending" => State::Pending,
            "running" => State::Running,
            "ready" => State::Ready,
            "error" => State::Error,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Json,
    Csv,
}

impl Format {
    pub fn mime(self) -> &'static str {
        match self {
            Format::Ndjson => "application/x-ndjson",
            Format::Json => "application/json",
            Format::Csv => "text/csv",
        }
    }
    pub fn ext(self) -> &'static str {
        match self {
            Format::Ndjson => "ndjson",
            Format::Json => "json",
            Format::Csv => "csv",
        }
    }
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "application/x-ndjson" => Format::Ndjson,
            "application/json" => Format::Json,
            "text/csv" => Format::Csv,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Progress {
    pub docs: u64,
    pub total: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    pub docs: u64,
    pub files_count: u64,
    pub files_size: u64,
    /// Bytes of side files (`exportFiles && !zipFiles`), counted against the storage
    /// limit with the archive; zipped files are inside the archive already.
    #[serde(default)]
    pub side_size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DataFile {
    pub blob: ObjectId,
    pub size: u64,
    pub sha256: String,
    pub filename: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub name: String,
    pub at: String,
    /// JSON text (rmp-serde cannot carry arbitrary `Value`s losslessly for every shape).
    pub data: String,
}

impl Event {
    pub fn new(name: &str, data: Value) -> Event {
        Event {
            name: name.to_string(),
            at: crate::model::ids::now_iso(),
            data: data.to_string(),
        }
    }
    pub fn to_json(&self) -> Value {
        json!({"name": self.name, "at": self.at,
               "data": serde_json::from_str::<Value>(&self.data).unwrap_or(Value::Null)})
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExportRecord {
    pub id: ObjectId,
    pub org: String,
    pub label: String,
    pub description: Option<String>,
    pub state: State,
    pub format: Format,
    /// The object's name and plural as given at creation.
    pub object: String,
    pub objects: String,
    pub export_files: bool,
    pub zip_files: bool,
    pub paths: Vec<String>,
    pub include: Vec<String>,
    pub expand: Vec<String>,
    pub where_json: Option<String>,
    pub after_script: Option<String>,
    pub principal: Option<ObjectId>,
    pub prefix: Option<String>,
    pub csv_escape_formulas: bool,
    pub progress: Progress,
    pub stats: Option<Stats>,
    pub data_file: Option<DataFile>,
    /// JSON of the fault when state is `error`.
    pub fault: Option<String>,
    pub created: String,
    pub started: Option<String>,
    pub completed: Option<String>,
    pub expires_at: String,
    pub creator: ObjectId,
    /// Position in the org's queue.
    pub seq: u64,
}

impl ExportRecord {
    pub fn fault(&self) -> Option<Fault> {
        self.fault
            .as_deref()
            .and_then(|f| serde_json::from_str(f).ok())
    }

    /// `export-<created, ':' → '_'>`
    pub fn base_name(&self) -> String {
        format!("export-{}", self.created.replace(':', "_"))
    }

    pub fn data_url(&self) -> String {
        format!("/{}/v2/exports/{}/dataFile/content", self.org, self.id)
    }

    pub fn data_file_json(&self) -> Option<Value> {
        self.data_file.as_ref().map(|d| {
            json!({"object": "facet", "name": "content", "mime": "application/zip",
                   "filename": d.filename, "size": d.size, "ETag": d.sha256, "state": 2,
                   "url": self.data_url()})
        })
    }

    pub fn is_expired(&self, now: &str) -> bool {
        self.expires_at.as_str() <= now
    }

    pub fn to_json(&self) -> Value {
        let total = self.progress.total;
        let percent = match (self.state, total) {
            (State::Ready, _) => 100,
            (_, Some(t)) if t > 0 => ((self.progress.docs * 100) / t).min(100),
            _ => 0,
        };
        json!({
            "_id": self.id,
            "object": "export",
            "label": self.label,
            "description": self.description,
            "state": self.state.name(),
            "format": self.format.mime(),
            "objects": self.objects,
            "exportFiles": self.export_files,
            "zipFiles": self.zip_files,
            "paths": self.paths,
            "include": self.include,
            "expand": self.expand,
            "where": self.where_json,
            "afterScript": self.after_script,
            "principal": self.principal,
            "prefix": self.prefix,
            "csvEscapeFormulas": self.csv_escape_formulas,
            "progress": {"docs": self.progress.docs, "total": total, "percent": percent},
            "stats": self.stats.as_ref().map(|s| json!({
                "docs": {"count": s.docs},
                "files": {"count": s.files_count, "size": s.files_size}})),
            "dataFile": self.data_file_json(),
            "fault": self.fault().map(|f| serde_json::to_value(f).unwrap_or(Value::Null)),
            "created": self.created,
            "started": self.started,
            "completed": self.completed,
            "expiresAt": self.expires_at,
            "creator": reference("account", "accounts", &self.creator.to_hex()),
        })
    }
}

/// A file stored beside an export's archive (`exportFiles && !zipFiles`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SideFile {
    pub n: u32,
    pub blob: ObjectId,
    pub mime: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    /// Where the file came from (`/<plural>/<id>/<prop>/content`).
    pub source: String,
}

impl SideFile {
    pub fn url(&self, org: &str, export: ObjectId) -> String {
        format!("/{org}/v2/exports/{export}/files/{}", self.n)
    }

    pub fn to_json(&self, org: &str, export: ObjectId) -> Value {
        json!({"object": "facet", "name": "content", "mime": self.mime, "filename": self.filename,
               "size": self.size, "ETag": self.sha256, "state": 2, "path": self.url(org, export),
               "n": self.n, "source": self.source})
    }
}
