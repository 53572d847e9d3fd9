//! The export record (SPEC §4.2), its states and events, and its JSON shape.

use crate::fault::Fault;
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

/// Whether an export that expires at `expires_at` has, at `now` (both ISO dates as
/// `ids::iso` writes them, which compare as strings).
pub fn expired(expires_at: &str, now: &str) -> bool {
    expires_at <= now
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
        self.data_file_view()
            .map(|d| serde_json::to_value(d).unwrap_or(Value::Null))
    }

    fn data_file_view(&self) -> Option<DataFileView<'_>> {
        self.data_file.as_ref().map(|d| DataFileView {
            object: "facet",
            name: "content",
            mime: "application/zip",
            filename: &d.filename,
            size: d.size,
            etag: &d.sha256,
            state: 2,
            url: self.data_url(),
        })
    }

    pub fn is_expired(&self, now: &str) -> bool {
        expired(&self.expires_at, now)
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.view()).unwrap_or(Value::Null)
    }

    /// The API form (SPEC §4.2), serialized straight from the record: GET of one export is
    /// the hot read, and building a `serde_json` map first was ~16% of its CPU.
    pub fn view(&self) -> ExportView<'_> {
        let total = self.progress.total;
        let percent = match (self.state, total) {
            (State::Ready, _) => 100,
            (_, Some(t)) if t > 0 => ((self.progress.docs * 100) / t).min(100),
            _ => 0,
        };
        ExportView {
            id: self.id,
            object: "export",
            label: &self.label,
            description: self.description.as_deref(),
            state: self.state.name(),
            format: self.format.mime(),
            objects: &self.objects,
            export_files: self.export_files,
            zip_files: self.zip_files,
            paths: &self.paths,
            include: &self.include,
            expand: &self.expand,
            where_json: self.where_json.as_deref(),
            after_script: self.after_script.as_deref(),
            principal: self.principal,
            prefix: self.prefix.as_deref(),
            csv_escape_formulas: self.csv_escape_formulas,
            progress: ProgressView {
                docs: self.progress.docs,
                total,
                percent,
            },
            stats: self.stats.as_ref().map(|s| StatsView {
                docs: CountView { count: s.docs },
                files: FilesView {
                    count: s.files_count,
                    size: s.files_size,
                },
            }),
            data_file: self.data_file_view(),
            fault: self.fault(),
            created: &self.created,
            started: self.started.as_deref(),
            completed: self.completed.as_deref(),
            expires_at: &self.expires_at,
            creator: AccountRef {
                id: self.creator,
                object: "account",
                path: format!("/accounts/{}", self.creator),
            },
        }
    }
}

/// See [`ExportRecord::view`]; fields in the order of the API's properties.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportView<'a> {
    #[serde(rename = "_id")]
    id: ObjectId,
    object: &'static str,
    label: &'a str,
    description: Option<&'a str>,
    state: &'static str,
    format: &'static str,
    objects: &'a str,
    export_files: bool,
    zip_files: bool,
    paths: &'a [String],
    include: &'a [String],
    expand: &'a [String],
    #[serde(rename = "where")]
    where_json: Option<&'a str>,
    after_script: Option<&'a str>,
    principal: Option<ObjectId>,
    prefix: Option<&'a str>,
    csv_escape_formulas: bool,
    progress: ProgressView,
    stats: Option<StatsView>,
    data_file: Option<DataFileView<'a>>,
    fault: Option<Fault>,
    created: &'a str,
    started: Option<&'a str>,
    completed: Option<&'a str>,
    expires_at: &'a str,
    creator: AccountRef,
}

#[derive(Serialize)]
struct ProgressView {
    docs: u64,
    total: Option<u64>,
    percent: u64,
}

#[derive(Serialize)]
struct StatsView {
    docs: CountView,
    files: FilesView,
}

#[derive(Serialize)]
struct CountView {
    count: u64,
}

#[derive(Serialize)]
struct FilesView {
    count: u64,
    size: u64,
}

#[derive(Serialize)]
struct DataFileView<'a> {
    object: &'static str,
    name: &'static str,
    mime: &'static str,
    filename: &'a str,
    size: u64,
    #[serde(rename = "ETag")]
    etag: &'a str,
    state: u8,
    url: String,
}

#[derive(Serialize)]
struct AccountRef {
    #[serde(rename = "_id")]
    id: ObjectId,
    object: &'static str,
    path: String,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_is_the_api_shape_property_for_property_in_order() {
        let id = ObjectId::new();
        let creator = ObjectId::new();
        let fault = Fault::new(crate::fault::Category::Error, "storageFull", "full");
        let rec = ExportRecord {
            id,
            org: "acme".into(),
            label: "weekly \"q\"".into(),
            description: None,
            state: State::Running,
            format: Format::Csv,
            object: "c_step".into(),
            objects: "c_steps".into(),
            export_files: true,
            zip_files: false,
            paths: vec!["c_a".into(), "c_b.c_c".into()],
            include: vec![],
            expand: vec!["c_ref".into()],
            where_json: Some(r#"{"c_a":1}"#.into()),
            after_script: None,
            principal: Some(creator),
            prefix: Some("c_ref".into()),
            csv_escape_formulas: true,
            progress: Progress {
                docs: 250,
                total: Some(1000),
            },
            stats: Some(Stats {
                docs: 3,
                files_count: 2,
                files_size: 99,
                side_size: 7,
            }),
            data_file: Some(DataFile {
                blob: ObjectId::new(),
                size: 1234,
                sha256: "ab".repeat(32),
                filename: "export-x.zip".into(),
            }),
            fault: Some(serde_json::to_string(&fault).unwrap()),
            created: "2026-11-29T10:00:00.000Z".into(),
            started: Some("2026-11-29T10:00:01.000Z".into()),
            completed: None,
            expires_at: "2026-12-06T10:00:00.000Z".into(),
            creator,
            seq: 4,
        };
        let want = json!({
            "_id": id, "object": "export", "label": "weekly \"q\"", "description": null,
            "state": "running", "format": "text/csv", "objects": "c_steps",
            "exportFiles": true, "zipFiles": false, "paths": ["c_a", "c_b.c_c"], "include": [],
            "expand": ["c_ref"], "where": "{\"c_a\":1}", "afterScript": null,
            "principal": creator, "prefix": "c_ref", "csvEscapeFormulas": true,
            "progress": {"docs": 250, "total": 1000, "percent": 25},
            "stats": {"docs": {"count": 3}, "files": {"count": 2, "size": 99}},
            "dataFile": {"object": "facet", "name": "content", "mime": "application/zip",
                "filename": "export-x.zip", "size": 1234, "ETag": "ab".repeat(32), "state": 2,
                "url": format!("/acme/v2/exports/{id}/dataFile/content")},
            "fault": serde_json::to_value(&fault).unwrap(),
            "created": "2026-11-29T10:00:00.000Z", "started": "2026-11-29T10:00:01.000Z",
            "completed": null, "expiresAt": "2026-12-06T10:00:00.000Z",
            "creator": {"_id": creator, "object": "account", "path": format!("/accounts/{creator}")},
        });
        // the text, so that property order counts too
        assert_eq!(
            serde_json::to_string(&rec.view()).unwrap(),
            serde_json::to_string(&want).unwrap()
        );
        let ready = ExportRecord {
            state: State::Ready,
            progress: Progress {
                docs: 3,
                total: None,
            },
            stats: None,
            data_file: None,
            fault: None,
            ..rec
        };
        let v = ready.to_json();
        assert_eq!(
            v["progress"],
            json!({"docs": 3, "total": null, "percent": 100})
        );
        assert_eq!(
            (&v["stats"], &v["dataFile"], &v["fault"]),
            (&Value::Null, &Value::Null, &Value::Null)
        );
    }
}
