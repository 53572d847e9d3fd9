//! One export run, on a blocking thread: cursor over ids up to a mark taken at start →
//! ACL/matcher → projector → format writer → zip entry (deflate) → encrypted blob (SHA-256
//! on the way) → one transaction flips the record to `ready`. Records are read on one
//! thread and opened in batches on a pool, which in the fast lane also filters and renders
//! (JSON) or flattens (CSV) them; this thread writes the results in order. Memory is bounded
//! by the batch and buffer sizes, never by the export's size. CSV goes through an encrypted
//! spill file.

use crate::export::deflate::ParallelDeflate;
use crate::export::direct::{Plan, RawRoot};
use crate::export::files::{FileSink, Mode, compressible};
use crate::export::formats::DocWriter;
use crate::export::formats::csv::{CsvWriter, Flattener, SpillRows};
use crate::export::formats::emit::{self, Emit, JsonOut};
use crate::export::formats::json::JsonWriter;
use crate::export::formats::ndjson::NdjsonWriter;
use crate::export::prefix::Target;
use crate::export::record::{Event, ExportRecord, Format, State, Stats};
use crate::fault::{Category, Fault};
use crate::model::ids::{ObjectId, now_iso};
use crate::model::schema::ObjectDef;
use crate::query::Projector;
use crate::query::ast::Expr;
use crate::query::matcher::{matches, matches_element, matches_root};
use crate::query::projection::visible_doc;
use crate::store::data::{DocOpener, SealedDoc, StoreLookup};
use crate::store::rawdoc::RawDoc;
use crate::store::{BlobKind, BlobMeta, BlobWriter, Store};
use serde_json::{Map, Value, json};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};
use zip::write::SimpleFileOptions;

/// Why a run was asked to stop.
pub const RUN: u8 = 0;
pub const STOP_CANCEL: u8 = 1;
pub const STOP_DELETE: u8 = 2;
pub const STOP_SHUTDOWN: u8 = 3;

/// How often the cancel flag is looked at (documents).
const CHECK_EVERY: u64 = 256;
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
const BUF: usize = 256 * 1024;
/// Documents per batch read ahead and opened together.
const READ_BATCH: usize = 256;
// the stop flag is looked at between batches
const _: () = assert!(READ_BATCH as u64 <= CHECK_EVERY);
/// Batches read ahead of the writing.
const READ_AHEAD: usize = 8;

pub enum Outcome {
    Ready(Box<ExportRecord>),
    Failed(Fault),
    /// Stopped by cancel, delete or shutdown (the flag value says which).
    Stopped(u8),
    /// The record was not pending (deleted or cancelled before it started).
    Skipped,
}

pub fn cancelled_fault() -> Fault {
    Fault::new(Category::Cancelled, "export", "The export was cancelled")
}

struct Run<'a> {
    store: &'a Store,
    rec: ExportRecord,
    flag: &'a AtomicU8,
    last_progress: Instant,
    done: u64,
    files: Option<FileSink>,
}

#[derive(Debug)]
enum Stop {
    Flag(u8),
    Fault(Fault),
}

impl From<Fault> for Stop {
    fn from(f: Fault) -> Stop {
        Stop::Fault(f)
    }
}

fn io_fault(e: std::io::Error) -> Stop {
    Stop::Fault(Fault::from_io("writing the archive failed", e))
}

/// Runs the export `id` of `org` to its end state.
pub fn run(store: &Store, org: &str, id: ObjectId, flag: Arc<AtomicU8>) -> Outcome {
    let rec = match store.update_export(org, id, |r| {
        if r.state != State::Pending {
            return Err(Fault::conflict("state", "not pending"));
        }
        r.state = State::Running;
        r.started = Some(now_iso());
        r.progress = Default::default();
        Ok(())
    }) {
        Ok(r) => r,
        Err(_) => return Outcome::Skipped,
    };
    let _ = store.add_event(org, id, &Event::new("started", json!({})));
    // side files of an interrupted earlier attempt are redone
    if let Err(e) = store.remove_side_files(org, id) {
        return Outcome::Failed(e);
    }
    let mut run = Run {
        store,
        rec,
        flag: &flag,
        last_progress: Instant::now(),
        done: 0,
        files: None,
    };
    match run.execute() {
        Ok(rec) => Outcome::Ready(Box::new(rec)),
        Err(Stop::Flag(f)) => Outcome::Stopped(f),
        Err(Stop::Fault(f)) => Outcome::Failed(f),
    }
}

/// Test seam: `EXPORTD_FAULT_EXPORT_PACE_MS=N` (read once) sleeps N ms at every stop check
/// (every 256 documents), so that process tests catch an export mid-run on any machine.
/// Does nothing unless set.
fn pace() -> Option<Duration> {
    static PACE: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();
    *PACE.get_or_init(|| {
        std::env::var("EXPORTD_FAULT_EXPORT_PACE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
    })
}

impl Run<'_> {
    fn check(&mut self) -> std::result::Result<(), Stop> {
        if let Some(p) = pace() {
            std::thread::sleep(p);
        }
        let f = self.flag.load(Ordering::Relaxed);
        if f != RUN {
            return Err(Stop::Flag(f));
        }
        if self.last_progress.elapsed() >= PROGRESS_EVERY {
            self.last_progress = Instant::now();
            let docs = self.done;
            let _ = self.store.update_export(&self.rec.org, self.rec.id, |r| {
                if r.state == State::Running {
                    r.progress.docs = docs;
                }
                Ok(())
            });
        }
        Ok(())
    }

    fn event(&self, name: &str, data: Value) {
        if let Err(e) = self
            .store
            .add_event(&self.rec.org, self.rec.id, &Event::new(name, data))
        {
            tracing::warn!(error = %e, "could not record export event");
        }
    }

    fn execute(&mut self) -> std::result::Result<ExportRecord, Stop> {
        let org = self.rec.org.clone();
        let def = self
            .store
            .find_object(&org, &self.rec.object)?
            .ok_or_else(|| {
                Fault::new(
                    Category::NotFound,
                    "object",
                    "The exported object no longer exists",
                )
            })?;
        let cat = self.store.list_objects(&org)?;
        let principal = match self.rec.principal {
            Some(p) => Some(self.store.get_account(&org, p)?.ok_or_else(|| {
                Fault::new(
                    Category::NotFound,
                    "principal",
                    "The principal account no longer exists",
                )
            })?),
            None => None,
        };
        let projector = Projector {
            paths: self.rec.paths.clone(),
            include: self.rec.include.clone(),
            expand: self.rec.expand.clone(),
            principal,
        };
        let target = match crate::export::prefix::resolve(
            &def,
            self.rec.prefix.as_deref(),
            &StorePrefix(self.store, &org),
        )? {
            Ok(t) => t,
            Err(m) => return Err(Stop::Fault(Fault::invalid("prefix", m).at("prefix"))),
        };
        let filter = match &self.rec.where_json {
            Some(w) => Some(target.parse_where(w)?),
            None => None,
        };
        // the default view of whole documents goes from stored bytes to output directly
        let plan = match &target {
            Target::Object(d) | Target::List { source: d, .. } if !self.rec.export_files => {
                Plan::for_projector(d, &cat, &projector)
            }
            _ => None,
        };
        // documents created from now on are not part of this export
        let scanned = match &target {
            Target::Object(d) => Some(d.name.as_str()),
            Target::List { source, .. } => Some(source.name.as_str()),
            Target::Elements { .. } => None,
        };
        let mark = match scanned {
            Some(object) => self.store.last_doc_id(&org, object)?,
            None => None,
        };
        let total = match &target {
            // the usage counter, not a count: counting would be a second pass over the data
            Target::Object(d) => Some(
                self.store
                    .usage(&org)?
                    .docs
                    .get(&d.name)
                    .copied()
                    .unwrap_or(0),
            ),
            _ => None,
        };
        let _ = self.store.update_export(&org, self.rec.id, |r| {
            r.progress.total = total;
            Ok(())
        });

        let archive = ArchiveSink {
            blob: self.store.blob_writer(&org, BlobKind::Archive)?,
            failed: false,
        };
        let mut zip = zip::ZipWriter::new_stream(archive);
        let entry = format!("{}.{}", self.rec.base_name(), self.rec.format.ext());
        let opts = entry_options(&self.rec.created)
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(6))
            .large_file(true);
        zip.start_file(entry.as_str(), opts)
            .map_err(|e| Stop::Fault(Fault::internal("zip failed", e)))?;
        let mut data =
            ParallelDeflate::new(RawEntry(&mut zip), DEFLATE_LEVEL, cores()).map_err(io_fault)?;

        if self.rec.export_files {
            self.files = Some(FileSink::new(
                self.store,
                &org,
                self.rec.id,
                self.rec.zip_files,
            )?);
        }
        self.event("cursor.started", json!({"total": total}));
        let src = Source {
            target: &target,
            cat: &cat,
            projector: &projector,
            filter: filter.as_ref(),
            mark,
            plan: plan.as_ref(),
        };
        let count = match self.rec.format {
            Format::Ndjson => {
                // no BufWriter: the deflater buffers whole chunks itself
                let w = NdjsonWriter::new(&mut data);
                self.json_docs(&src, w)?
            }
            Format::Json => {
                let w = JsonWriter::new(&mut data);
                self.json_docs(&src, w)?
            }
            Format::Csv => self.csv(&src, &mut data)?,
        };
        let (_, crc, len) = data.finish().map_err(io_fault)?;
        // SAFETY: `len` and `crc` describe exactly the bytes deflated into this entry
        unsafe { zip.set_file_metadata(len, crc) }
            .map_err(|e| Stop::Fault(Fault::internal("zip failed", e)))?;
        let (files_count, files_size) = match self.files.take() {
            Some(sink) => {
                let counted = (sink.count, sink.size);
                self.file_entries(sink, &mut zip)?;
                counted
            }
            None => (0, 0),
        };
        let archive = zip
            .finish()
            .map_err(|e| Stop::Fault(Fault::internal("zip failed", e)))?
            .into_inner();
        self.check()?;
        let meta = archive.finish()?;
        // side files count against the storage limit with the archive; zipped ones are in it
        let stats = Stats {
            docs: count,
            files_count,
            files_size,
            side_size: if self.rec.zip_files { 0 } else { files_size },
        };
        let limit = self.store.get_org(&org)?.and_then(|o| o.storage_limit);
        match self
            .store
            .finish_ready(&org, self.rec.id, &meta, &stats, self.done, limit)
        {
            Ok(rec) => Ok(rec),
            Err(f) => {
                let _ = self.store.remove_blob_data(meta.id);
                Err(Stop::Fault(f))
            }
        }
    }

    /// Writes every document as compact JSON through `w` (NDJSON and JSON).
    fn json_docs<W: DocWriter>(
        &mut self,
        src: &Source,
        mut w: W,
    ) -> std::result::Result<u64, Stop> {
        let mut write = |json: &[u8]| w.write_doc(json);
        let n = self.each_doc(
            src,
            Out::Json {
                json: JsonOut::default(),
                write: &mut write,
            },
        )?;
        w.finish().map_err(io_fault)?;
        Ok(n)
    }

    /// Feeds every exported document (in `_id` order, up to the mark) to `out`.
    fn each_doc(&mut self, src: &Source, mut out: Out) -> std::result::Result<u64, Stop> {
        let count = match src.target {
            Target::Object(def) => self.scan(src, def, None, &mut out)?,
            Target::List {
                parent_id,
                source,
                linked,
            } => self.scan(src, source, Some((linked.as_str(), *parent_id)), &mut out)?,
            Target::Elements {
                parent,
                parent_id,
                prop,
            } => self.elements(src, parent, *parent_id, prop, &mut out)?,
        };
        self.event("cursor.completed", json!({"docs": count}));
        Ok(count)
    }

    /// Counts `n` more documents read, looking at the stop flag (and saving progress) each
    /// time another `CHECK_EVERY` have gone by (batches are no larger, so once per batch).
    fn count_read(&mut self, seen: &mut u64, n: u64) -> std::result::Result<(), Stop> {
        let before = *seen / CHECK_EVERY;
        *seen += n;
        if *seen / CHECK_EVERY != before {
            self.done = *seen;
            self.check()?;
        }
        Ok(())
    }

    /// The documents of `def` (List members: those whose `linked` reference is `parent`).
    fn scan(
        &mut self,
        src: &Source,
        def: &ObjectDef,
        member_of: Option<(&str, ObjectId)>,
        out: &mut Out,
    ) -> std::result::Result<u64, Stop> {
        let org = self.rec.org.clone();
        let store = self.store.clone();
        let mark = src.mark;
        let mut count = 0u64;
        let mut seen = 0u64;
        let principal = src.projector.principal.as_ref();
        let (opener, records) = store.sealed_docs(&org, &def.name)?;
        // records past the mark (created after the start) end the scan
        let keep = |k: &[u8]| match opener.id(k) {
            Ok(id) => mark.is_some_and(|m| id <= m),
            Err(_) => true,
        };
        match (src.plan, out) {
            // the fast lane to JSON: the reading threads render, this one only writes
            (Some(plan), Out::Json { write, .. }) => read_ahead(
                records,
                keep,
                |batch| {
                    // room for ~1 KiB documents without growing (regrowth copies)
                    let mut json = JsonOut::with_capacity(batch.len() * 1024);
                    let mut ends = Vec::with_capacity(batch.len());
                    render_batch(&batch, &opener, src, def, member_of, plan, &mut json, |j| {
                        ends.push(j.buf.len());
                        Ok(())
                    })?;
                    Ok(Rendered {
                        read: batch.len() as u64,
                        out: (json.buf, ends),
                    })
                },
                |Rendered {
                     read,
                     out: (json, ends),
                 }| {
                    self.count_read(&mut seen, read)?;
                    let mut start = 0;
                    for &end in &ends {
                        write(&json[start..end]).map_err(io_fault)?;
                        start = end;
                    }
                    count += ends.len() as u64;
                    Ok(())
                },
            )?,
            // CSV's fast lane: the reading threads flatten too, this one numbers and spills
            (Some(plan), Out::Csv { flat, spill }) => read_ahead(
                records,
                keep,
                |batch| {
                    let mut apart = Flattener::default();
                    let mut rows = Vec::with_capacity(batch.len() * 512);
                    let mut docs = 0u64;
                    render_batch(
                        &batch,
                        &opener,
                        src,
                        def,
                        member_of,
                        plan,
                        &mut apart,
                        |f| {
                            docs += 1;
                            f.spill_row(&mut rows)
                                .map_err(|e| Fault::internal("flattening failed", e))
                        },
                    )?;
                    Ok(Rendered {
                        read: batch.len() as u64,
                        out: (apart.into_batch(rows), docs),
                    })
                },
                |Rendered {
                     read,
                     out: (rows, docs),
                 }| {
                    self.count_read(&mut seen, read)?;
                    flat.merge(&rows, *spill).map_err(io_fault)?;
                    count += docs;
                    Ok(())
                },
            )?,
            (None, out) => {
                let mut lookup = StoreLookup::new(&store, &org, principal);
                read_ahead(
                    records,
                    keep,
                    |batch| open_all(&batch, |r| opener.doc(r)),
                    |docs| {
                        self.count_read(&mut seen, docs.len() as u64)?;
                        for d in docs {
                            if let Some((linked, parent)) = member_of
                                && !references(d.props.get(linked), parent)
                            {
                                continue;
                            }
                            if !src.projector.readable(def, &d) {
                                continue;
                            }
                            if let Some(e) = src.filter {
                                // a principal's where sees only what the principal may read
                                if !matches(e, &visible_doc(def, &d, principal)) {
                                    continue;
                                }
                            }
                            let mut shaped = src.projector.project(def, &d, src.cat, &mut lookup);
                            if let Some(sink) = self.files.as_mut() {
                                sink.attach(def, d.id, &d.props, &mut shaped)?;
                            }
                            out.doc(&shaped).map_err(io_fault)?;
                            count += 1;
                        }
                        Ok(())
                    },
                )?
            }
        }
        self.done = seen;
        Ok(count)
    }

    /// The elements of one document's Document array.
    fn elements(
        &mut self,
        src: &Source,
        parent: &ObjectDef,
        parent_id: ObjectId,
        prop: &crate::model::schema::PropDef,
        out: &mut Out,
    ) -> std::result::Result<u64, Stop> {
        let org = self.rec.org.clone();
        let store = self.store.clone();
        let Some(doc) = store.get_doc(&org, &parent.name, parent_id)? else {
            return Err(Stop::Fault(
                Fault::invalid("prefix", "The prefix document no longer exists").at("prefix"),
            ));
        };
        if !src.projector.readable(parent, &doc) {
            return Ok(0);
        }
        let mut full = crate::model::document::render(parent, &doc, src.cat);
        if let Some(a) = &src.projector.principal {
            let level = crate::model::acl::level(parent, &doc, a);
            if prop.read_level() > level {
                return Ok(0);
            }
            crate::query::projection::strip_unreadable(&parent.properties, &mut full, level);
        }
        let stored: Vec<Value> = doc
            .props
            .get(&prop.name)
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default();
        let rendered: Vec<Value> = full
            .get(&prop.name)
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default();
        let mut lookup = StoreLookup::new(&store, &org, src.projector.principal.as_ref());
        let mut count = 0u64;
        for (i, (s, r)) in stored.iter().zip(rendered).enumerate() {
            if (i as u64).is_multiple_of(CHECK_EVERY) {
                self.check()?;
            }
            let (Some(sm), Value::Object(rm)) = (s.as_object(), r) else {
                continue;
            };
            if src.filter.is_some_and(|e| !matches_element(e, sm)) {
                continue;
            }
            let mut shaped = src.projector.shape(&prop.properties, rm, &mut lookup);
            if let Some(sink) = self.files.as_mut() {
                sink.attach(parent, parent_id, &doc.props, &mut shaped)?;
            }
            out.doc(&shaped).map_err(io_fault)?;
            count += 1;
            self.done = count;
        }
        Ok(count)
    }

    /// Zip mode: every listed file becomes an archive entry after the data entry.
    fn file_entries(&mut self, sink: FileSink, zip: &mut Archive) -> std::result::Result<(), Stop> {
        let FileSink {
            mode, count, size, ..
        } = sink;
        let Mode::Zip { list } = mode else {
            if count > 0 {
                self.event("files.completed", json!({"count": count, "size": size}));
            }
            return Ok(());
        };
        let list = list.into_reader()?;
        if count == 0 {
            return Ok(());
        }
        self.event("files.started", json!({"count": count}));
        let (store, org) = (self.store.clone(), self.rec.org.clone());
        let zfail = |e: zip::result::ZipError| Stop::Fault(Fault::internal("zip failed", e));
        for line in BufReader::new(list).lines() {
            let line = line.map_err(io_fault)?;
            let mut cols = line.splitn(3, '\t');
            let (Some(blob), Some(mime), Some(entry)) = (cols.next(), cols.next(), cols.next())
            else {
                continue;
            };
            let Some(blob) = ObjectId::parse(blob) else {
                continue;
            };
            let method = if compressible(mime) {
                zip::CompressionMethod::Deflated
            } else {
                zip::CompressionMethod::Stored
            };
            let opts = entry_options(&self.rec.created)
                .compression_method(method)
                .large_file(true);
            zip.start_file(entry, opts).map_err(zfail)?;
            let reader = store.blob_reader(&org, blob)?;
            for i in 0..reader.meta.segments {
                zip.write_all(&reader.segment(i)?).map_err(io_fault)?;
            }
            self.check()?;
        }
        self.event("files.completed", json!({"count": count, "size": size}));
        Ok(())
    }

    /// Pass one flattens every document into a row of cells, spilled (deflated, encrypted)
    /// while the columns are collected; pass two writes the rows in the final column order.
    fn csv<W: Write>(&mut self, src: &Source, out: &mut W) -> std::result::Result<u64, Stop> {
        // the spill is deflated (fast level): a fraction of the bytes to seal, write and read
        let mut spill = BufWriter::with_capacity(
            BUF,
            flate2::write::DeflateEncoder::new(self.store.spill()?, flate2::Compression::fast()),
        );
        let mut flat = Flattener::default();
        let count = self.each_doc(
            src,
            Out::Csv {
                flat: &mut flat,
                spill: &mut spill,
            },
        )?;
        let spill = spill
            .into_inner()
            .map_err(|e| io_fault(e.into_error()))?
            .finish()
            .map_err(io_fault)?
            .into_reader()?;
        let (header, position) = flat.columns();
        self.event("csv.started", json!({"columns": header.len()}));
        let mut rows = SpillRows::new(BufReader::with_capacity(
            BUF,
            flate2::read::DeflateDecoder::new(spill),
        ));
        let mut w = CsvWriter::new(out, &header, position, self.rec.csv_escape_formulas)
            .map_err(io_fault)?;
        let mut n = 0u64;
        while let Some(row) = rows.next_row().map_err(io_fault)? {
            w.write_row(row).map_err(io_fault)?;
            n += 1;
            if n.is_multiple_of(CHECK_EVERY) {
                self.check()?;
            }
        }
        w.finish().map_err(io_fault)?.flush().map_err(io_fault)?;
        self.event("csv.completed", json!({"rows": n}));
        Ok(count)
    }
}

/// Where exported documents go: flattened into CSV rows and spilled, or as their compact
/// JSON (NDJSON and JSON). The fast lane renders or flattens on the reading threads.
enum Out<'w> {
    Csv {
        flat: &'w mut Flattener,
        spill: &'w mut dyn Write,
    },
    Json {
        /// For documents rendered here.
        json: JsonOut,
        write: &'w mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    },
}

impl Out<'_> {
    /// A document the general path projected.
    fn doc(&mut self, d: &Map<String, Value>) -> std::io::Result<()> {
        match self {
            Out::Csv { flat, spill } => {
                emit::object(d, *flat);
                flat.spill_row(*spill)
            }
            Out::Json { json, write } => {
                json.clear();
                emit::object(d, json);
                write(&json.buf)
            }
        }
    }
}

/// What the fast lane made of a batch (JSON: the documents one after another and where each
/// ends; CSV: the rows and how many), and how many records it read.
struct Rendered<T> {
    read: u64,
    out: T,
}

/// Opens each record of a batch and renders those the export takes into `e`, calling
/// `taken` after each.
#[allow(clippy::too_many_arguments)]
fn render_batch<E: Emit>(
    batch: &[SealedDoc],
    opener: &DocOpener,
    src: &Source,
    def: &ObjectDef,
    member_of: Option<(&str, ObjectId)>,
    plan: &Plan,
    e: &mut E,
    mut taken: impl FnMut(&mut E) -> Result<(), Fault>,
) -> Result<(), Fault> {
    for r in batch {
        let rec = opener.record(r)?;
        if let Some((doc, level)) = admit(src, def, member_of, &rec)? {
            plan.render(&doc, level, e)?;
            taken(e)?;
        }
    }
    Ok(())
}

/// A stored document of `def` in the fast lane, with the level it is seen at, if the
/// export takes it: a member of the list, readable, and matching the filter.
fn admit<'r>(
    src: &Source,
    def: &ObjectDef,
    member_of: Option<(&str, ObjectId)>,
    rec: &'r [u8],
) -> Result<Option<(RawDoc<'r>, u8)>, Fault> {
    let doc = RawDoc::parse(rec)?;
    if let Some((linked, parent)) = member_of {
        let v = doc.prop(linked).and_then(|v| v.to_value().ok());
        if !references(v.as_ref(), parent) {
            return Ok(None);
        }
    }
    // without a principal the level is `direct::ALL`, which reads everything
    let level = crate::export::direct::level(def, &doc, src.projector.principal.as_ref());
    if !crate::model::acl::may_read(level) {
        return Ok(None);
    }
    if let Some(e) = src.filter {
        let root = RawRoot {
            def,
            doc: &doc,
            level,
        };
        if !matches_root(e, &root) {
            return Ok(None);
        }
    }
    Ok(Some((doc, level)))
}

/// Opens every record of a batch, or fails with the first that does not open.
fn open_all<T>(
    batch: &[SealedDoc],
    open: impl Fn(&SealedDoc) -> Result<T, Fault>,
) -> Result<Vec<T>, Fault> {
    batch.iter().map(open).collect()
}

/// Reads sealed records on one thread and hands them in batches to a few others, which
/// open them (decrypt; then decode, or render outright) so that neither reading nor
/// decryption limits an export; `each` gets the batches' results in order. Reading stops
/// at the first key `keep` refuses, or at the first error, which `each`'s caller gets in
/// order too.
fn read_ahead<T: Send>(
    records: impl Iterator<Item = Result<SealedDoc, Fault>> + Send,
    keep: impl Fn(&[u8]) -> bool + Send,
    open: impl Fn(Vec<SealedDoc>) -> Result<T, Fault> + Sync,
    mut each: impl FnMut(T) -> std::result::Result<(), Stop>,
) -> std::result::Result<(), Stop> {
    use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
    type Opened<T> = Result<T, Fault>;
    let workers = cores();
    let (jobs, job_rx) = sync_channel::<(Vec<SealedDoc>, SyncSender<Opened<T>>)>(workers);
    let job_rx = std::sync::Mutex::new(job_rx);
    // the receivers of the batches, in reading order
    let (order, in_order) = sync_channel::<Receiver<Opened<T>>>(READ_AHEAD);
    std::thread::scope(|scope| {
        // the senders belong to this closure: should a thread fail to start, returning drops
        // them, so the workers already started see the channel close instead of waiting on
        // it while the scope waits on them
        let (jobs, order) = (jobs, order);
        let (open, job_rx) = (&open, &job_rx);
        for i in 0..workers {
            spawn_named(scope, format!("export-open-{i}"), move || {
                loop {
                    let job = job_rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((batch, reply)) = job else { return };
                    let _ = reply.send(open(batch));
                }
            })?;
        }
        spawn_named(scope, "export-read".into(), move || {
            let send = |batch: Vec<SealedDoc>| {
                let (reply, opened) = sync_channel(1);
                order.send(opened).is_ok() && jobs.send((batch, reply)).is_ok()
            };
            let mut records = records;
            let mut batch = Vec::with_capacity(READ_BATCH);
            loop {
                match records.next() {
                    Some(Ok(r)) if keep(&r.0) => {
                        batch.push(r);
                        if batch.len() == READ_BATCH && !send(std::mem::take(&mut batch)) {
                            return;
                        }
                    }
                    Some(Ok(_)) | None => break,
                    Some(Err(e)) => {
                        if !batch.is_empty() && !send(std::mem::take(&mut batch)) {
                            return;
                        }
                        let (reply, failed) = sync_channel(1);
                        let _ = reply.send(Err(e));
                        let _ = order.send(failed);
                        return;
                    }
                }
            }
            if !batch.is_empty() {
                send(batch);
            }
        })?;
        for opened in in_order {
            let batch = opened
                .recv()
                .map_err(|_| Fault::internal("reading documents failed", "a reader stopped"))??;
            each(batch)?;
        }
        Ok(())
    })
}

/// A scoped thread with a name, so that a profile or `top -H` tells an export's threads
/// apart (unnamed ones show their parent's name).
fn spawn_named<'scope, 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    name: String,
    f: impl FnOnce() + Send + 'scope,
) -> Result<(), Fault> {
    std::thread::Builder::new()
        .name(name)
        .spawn_scoped(scope, f)
        .map(drop)
        .map_err(|e| Fault::internal("cannot start an export thread", e))
}

type Archive = zip::ZipWriter<zip::write::StreamWriter<ArchiveSink>>;

/// The archive's blob. After a failed write the run is over, so later writes are dropped:
/// the zip writer, dropped on the way out, would otherwise try again to write its central
/// directory and print that failure to stderr. A sink that failed cannot finish.
struct ArchiveSink {
    blob: BlobWriter,
    failed: bool,
}

impl ArchiveSink {
    fn finish(self) -> Result<BlobMeta, Fault> {
        if self.failed {
            return Err(Fault::internal(
                "writing the archive failed",
                "finish after a failed write",
            ));
        }
        self.blob.finish()
    }
}

impl Write for ArchiveSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.failed {
            return Ok(buf.len());
        }
        self.blob.write(buf).inspect_err(|_| self.failed = true)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Deflate level of the data entry. Measured with zlib-rs on 100 MB of the bench's NDJSON
/// (512 KiB chunks, one core): level 6 157 MB/s for 4.86% of the input, 4 255 MB/s 5.18%,
/// 3 358 MB/s 5.49%, 2 435 MB/s 5.91%, 1 620 MB/s 7.95%. Deflate is the largest single
/// cost of an export; 2 is the knee: 2.8× level 6's speed for archives 22% larger, where
/// 1 would be 1.4× faster again for 34% more.
const DEFLATE_LEVEL: u32 = 2;

/// Worker threads per pool (deflate, opening records): one per core.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The current entry's raw data: writes bypass the zip writer's own encoder, for data that
/// is already deflated (see `export::deflate`). Its encoder, given no input, ends the
/// stream with an empty final block when the entry is finished.
struct RawEntry<'a>(&'a mut Archive);

impl Write for RawEntry<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // SAFETY: only valid deflate data of the current entry is written, in order, and
        // nothing seeks; the entry's CRC and size are set before it is finished.
        match unsafe { self.0.get_mut() } {
            Some(w) => w.write(buf),
            None => Err(std::io::Error::other("no zip entry is open")),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What one run reads and how it shapes it.
struct Source<'a> {
    target: &'a Target,
    cat: &'a [ObjectDef],
    projector: &'a Projector,
    filter: Option<&'a Expr>,
    /// The last document id taken (None: the object was empty at the start).
    mark: Option<ObjectId>,
    /// The fast lane's plan, when the export's shape allows it.
    plan: Option<&'a Plan>,
}

/// Zip entry options dated at the export's creation (UTC; zip dates have no zone).
fn entry_options(created: &str) -> SimpleFileOptions {
    use chrono::{Datelike, Timelike};
    let opts = SimpleFileOptions::default();
    match chrono::DateTime::parse_from_rfc3339(created) {
        Ok(t) => match zip::DateTime::from_date_and_time(
            t.year().clamp(1980, 2107) as u16,
            t.month() as u8,
            t.day() as u8,
            t.hour() as u8,
            t.minute() as u8,
            t.second().min(58) as u8,
        ) {
            Ok(d) => opts.last_modified_time(d),
            Err(_) => opts,
        },
        Err(_) => opts,
    }
}

/// Whether a stored Reference value (single or array) points at `id`.
fn references(v: Option<&Value>, id: ObjectId) -> bool {
    let hex = id.to_hex();
    match v {
        Some(Value::String(s)) => *s == hex,
        Some(Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(hex.as_str())),
        _ => false,
    }
}

struct StorePrefix<'a>(&'a Store, &'a str);

impl crate::export::prefix::PrefixContext for StorePrefix<'_> {
    fn object(&self, name: &str) -> crate::fault::Result<Option<ObjectDef>> {
        self.0.find_object(self.1, name)
    }
    fn doc_exists(&self, object: &str, id: ObjectId) -> crate::fault::Result<bool> {
        self.0.doc_exists(self.1, object, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn record(i: u32) -> Result<SealedDoc, Fault> {
        Ok((i.to_be_bytes().as_slice().into(), vec![0u8; 8].into()))
    }

    fn number(r: &SealedDoc) -> u32 {
        u32::from_be_bytes(r.0.as_ref().try_into().unwrap())
    }

    fn numbers(batch: Vec<SealedDoc>) -> Result<Vec<u32>, Fault> {
        Ok(batch.iter().map(number).collect())
    }

    #[test]
    fn batches_arrive_in_reading_order_until_keep_refuses() {
        let mut got = Vec::new();
        let mut batches = 0;
        read_ahead(
            (0..1000).map(record),
            |_| true,
            numbers,
            |b| {
                batches += 1;
                got.extend(b);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
        assert_eq!(batches, 1000usize.div_ceil(READ_BATCH));

        let mut got = Vec::new();
        let keep = |k: &[u8]| u32::from_be_bytes(k.try_into().unwrap()) < 600;
        read_ahead((0..1000).map(record), keep, numbers, |b| {
            got.extend(b);
            Ok(())
        })
        .unwrap();
        assert_eq!(got, (0..600).collect::<Vec<_>>());
    }

    #[test]
    fn a_read_or_open_error_comes_after_the_records_before_it() {
        let bad = || Fault::internal("bad record", "test");
        let records = (0..700)
            .map(record)
            .chain([Err(bad())])
            .chain((700..900).map(record));
        let mut got = Vec::new();
        let out = read_ahead(
            records,
            |_| true,
            numbers,
            |b| {
                got.extend(b);
                Ok(())
            },
        );
        assert!(matches!(out, Err(Stop::Fault(f)) if f.message == "bad record"));
        assert_eq!(got, (0..700).collect::<Vec<_>>());

        // a batch that fails to open fails whole, after the batches before it
        let open = |batch: Vec<SealedDoc>| {
            if batch.iter().any(|r| number(r) == 300) {
                return Err(bad());
            }
            numbers(batch)
        };
        let mut got = Vec::new();
        let out = read_ahead(
            (0..1000).map(record),
            |_| true,
            open,
            |b| {
                got.extend(b);
                Ok(())
            },
        );
        assert!(matches!(out, Err(Stop::Fault(_))));
        assert_eq!(got, (0..READ_BATCH as u32).collect::<Vec<_>>());
    }

    #[test]
    fn stopping_early_stops_the_reading() {
        let pulled = AtomicUsize::new(0);
        let records = (0..10_000_000).map(|i| {
            pulled.fetch_add(1, Ordering::Relaxed);
            record(i)
        });
        let out = read_ahead(records, |_| true, numbers, |_| Err(Stop::Flag(STOP_CANCEL)));
        assert!(matches!(out, Err(Stop::Flag(STOP_CANCEL))));
        // at most the batches queued ahead (and in the workers) were read
        let bound = (READ_AHEAD + 2 * cores() + 2) * READ_BATCH;
        assert!(pulled.load(Ordering::Relaxed) <= bound, "{pulled:?}");
    }
}
