//! Exporting the documents' files (SPEC §4.4): with `zipFiles` each file becomes an archive
//! entry `files/<10-digit index>.<plural>.<docId>.<prop>.content.<ext>`; without it, a copy
//! stored beside the archive and listed at `/exports/{id}/files`. Either way the facet's
//! `path` in the exported data is rewritten to where the file now is. Files are streamed
//! segment by segment; the list of archive entries waits in an encrypted spill, so memory
//! does not grow with the number of files.

use crate::export::record::{Event, SideFile};
use crate::fault::Result;
use crate::model::files;
use crate::model::ids::ObjectId;
use crate::model::schema::ObjectDef;
use crate::store::blobs::BlobState;
use crate::store::spill::SpillWriter;
use crate::store::{BlobKind, Store};
use serde_json::{Map, Value, json};
use std::io::Write;

/// Extension for an archive entry, from the mime type.
pub fn extension(mime: &str) -> &'static str {
    let m = mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match m.as_str() {
        "text/plain" => "txt",
        "text/csv" => "csv",
        "text/html" => "html",
        "text/markdown" => "md",
        "application/json" => "json",
        "application/x-ndjson" => "ndjson",
        "application/xml" | "text/xml" => "xml",
        "application/pdf" => "pdf",
        "application/zip" => "zip",
        "application/gzip" => "gz",
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/svg+xml" => "svg",
        "audio/mpeg" => "mp3",
        "audio/wav" | "audio/x-wav" => "wav",
        "video/mp4" => "mp4",
        _ => "dat",
    }
}

/// Whether deflate is worth it for this mime type (already-compressed media is stored).
pub fn compressible(mime: &str) -> bool {
    !(mime.starts_with("image/") && mime != "image/svg+xml"
        || mime.starts_with("audio/")
        || mime.starts_with("video/")
        || matches!(
            mime,
            "application/zip" | "application/gzip" | "application/pdf"
        ))
}

pub enum Mode {
    /// Entries listed in a spill, added after the data entry.
    Zip {
        list: Box<SpillWriter>,
    },
    Side,
}

/// What the data entry's documents point at, collected while they are written.
pub struct FileSink {
    pub mode: Mode,
    pub store: Store,
    pub org: String,
    pub export: ObjectId,
    pub count: u64,
    pub size: u64,
    pub skipped: u64,
}

impl FileSink {
    pub fn new(store: &Store, org: &str, export: ObjectId, zip: bool) -> Result<FileSink> {
        let mode = if zip {
            Mode::Zip {
                list: Box::new(store.spill()?),
            }
        } else {
            Mode::Side
        };
        Ok(FileSink {
            mode,
            store: store.clone(),
            org: org.to_string(),
            export,
            count: 0,
            size: 0,
            skipped: 0,
        })
    }

    pub fn event(&self, name: &str, data: Value) {
        let _ = self
            .store
            .add_event(&self.org, self.export, &Event::new(name, data));
    }

    /// Rewrites the facets of `doc` (a document of `def` stored as `stored`) found in `out`.
    pub fn attach(
        &mut self,
        def: &ObjectDef,
        doc_id: ObjectId,
        stored: &Map<String, Value>,
        out: &mut Map<String, Value>,
    ) -> Result<()> {
        let prefix = format!("/{}/{}/", def.plural_name, doc_id);
        for v in out.values_mut() {
            self.walk(def, doc_id, stored, &prefix, v)?;
        }
        Ok(())
    }

    fn walk(
        &mut self,
        def: &ObjectDef,
        doc_id: ObjectId,
        stored: &Map<String, Value>,
        prefix: &str,
        v: &mut Value,
    ) -> Result<()> {
        match v {
            Value::Array(items) => {
                for it in items {
                    self.walk(def, doc_id, stored, prefix, it)?;
                }
            }
            Value::Object(m) if m.get("object").and_then(|o| o.as_str()) == Some("facet") => {
                let Some(path) = m.get("path").and_then(|p| p.as_str()).map(String::from) else {
                    return Ok(());
                };
                let Some(tail) = path
                    .strip_prefix(prefix)
                    .and_then(|t| t.strip_suffix("/content"))
                else {
                    return Ok(()); // a facet of another document (an expanded reference)
                };
                let parts: Vec<&str> = tail.split('/').collect();
                let facet = files::resolve(def, &parts)
                    .ok()
                    .and_then(|loc| files::get(stored, &loc));
                let blob = facet.as_ref().and_then(files::blob_of);
                let meta = match blob {
                    Some(b) => self
                        .store
                        .blob_meta(b)?
                        .filter(|m| m.state == BlobState::Complete),
                    None => None,
                };
                let (Some(facet), Some(meta)) = (facet, meta) else {
                    self.skipped += 1;
                    self.event(
                        "files.skipped",
                        json!({"path": path, "reason": "missing or not ready"}),
                    );
                    return Ok(());
                };
                if self.count == 0 && matches!(self.mode, Mode::Side) {
                    self.event("files.started", json!({}));
                }
                let mime = facet
                    .get("mime")
                    .and_then(|x| x.as_str())
                    .unwrap_or("application/octet-stream")
                    .to_string();
                let n = self.count;
                let new_path = match &mut self.mode {
                    Mode::Zip { list } => {
                        let prop = parts
                            .iter()
                            .filter(|p| ObjectId::parse(p).is_none() && p.parse::<u64>().is_err())
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(".");
                        let entry = format!(
                            "files/{n:010}.{}.{doc_id}.{prop}.content.{}",
                            def.plural_name,
                            extension(&mime)
                        );
                        writeln!(list.as_mut(), "{}\t{}\t{}", meta.id, mime, entry).map_err(
                            |e| crate::fault::Fault::from_io("file list spill failed", e),
                        )?;
                        entry
                    }
                    Mode::Side => {
                        let copy = self
                            .store
                            .copy_blob(&self.org, meta.id, BlobKind::SideFile)?;
                        let side = SideFile {
                            n: n as u32,
                            blob: copy.id,
                            mime: mime.clone(),
                            filename: facet
                                .get("filename")
                                .and_then(|x| x.as_str())
                                .unwrap_or("file")
                                .to_string(),
                            size: copy.size,
                            sha256: copy.sha256.clone(),
                            source: path.clone(),
                        };
                        self.store
                            .add_side_file(&self.org, self.export, &side, &copy)?;
                        side.url(&self.org, self.export)
                    }
                };
                m.insert("path".into(), Value::String(new_path));
                self.count += 1;
                self.size += meta.size;
            }
            Value::Object(m) => {
                for x in m.values_mut() {
                    self.walk(def, doc_id, stored, prefix, x)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}
