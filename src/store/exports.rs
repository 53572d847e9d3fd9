//! Export records, the durable per-org queue and the event log. Every state change that must
//! agree with usage, the queue or a blob happens in one transaction.

use super::blobs::{BlobMeta, mark_deleting};
use super::codec::Rec;
use super::data::tx_usage;
use super::{Store, key, prefix};
use crate::export::record::{DataFile, Event, ExportRecord, SideFile, State, Stats};
use crate::fault::{Fault, Result};
use crate::model::ids::{ObjectId, now_iso};
use sled::Transactional;
use sled::transaction::ConflictableTransactionError as Tx;

pub(super) fn export_key(org: &str, id: ObjectId) -> Vec<u8> {
    key(&[org.as_bytes(), id.bytes()])
}

fn queue_key(org: &str, seq: u64) -> Vec<u8> {
    key(&[org.as_bytes(), &seq.to_be_bytes()])
}

/// The distinct (org, export id) pairs that keys of `tree` (org ‖ 0 ‖ id ‖ 0 ‖ …) start
/// with. A skip scan: one key read per export, however long its log.
fn export_prefixes(tree: &sled::Tree) -> Result<Vec<(String, ObjectId)>> {
    let mut out = Vec::new();
    let mut from: Vec<u8> = Vec::new();
    while let Some(r) = tree.range(from.as_slice()..).next() {
        let (k, _) = r?;
        let parsed = k.iter().position(|b| *b == 0).and_then(|sep| {
            let org = std::str::from_utf8(&k[..sep]).ok()?;
            let id = k.get(sep + 1..sep + 13).and_then(ObjectId::from_slice)?;
            Some((org.to_string(), id))
        });
        match parsed {
            Some((org, id)) => {
                // past every key under org ‖ 0 ‖ id ‖ 0
                from = key(&[org.as_bytes(), id.bytes()]);
                from.push(1);
                out.push((org, id));
            }
            None => {
                from = k.to_vec();
                from.push(0);
            }
        }
    }
    Ok(out)
}

/// Side files belong to a run in progress or a ready export; any other state has none.
fn keeps_side_files(state: State) -> bool {
    matches!(state, State::Running | State::Ready)
}

pub fn not_found() -> Fault {
    Fault::new(
        crate::fault::Category::NotFound,
        "export",
        "Export was not found",
    )
}

impl Store {
    /// Stores a new pending export at the tail of its org's queue (refused at the storage
    /// limit). Durable when this returns.
    pub fn create_export(&self, rec: &ExportRecord, limit: Option<u64>) -> Result<()> {
        let k = export_key(&rec.org, rec.id);
        let qk = queue_key(&rec.org, rec.seq);
        let v = self.records.seal(Rec::Exports, &k, rec);
        let res =
            (&self.t.exports, &self.t.export_queue, &self.t.usage).transaction(|(et, qt, ut)| {
                let u = tx_usage(&self.records, ut, &rec.org)?;
                if limit.is_some_and(|l| u.used() >= l) {
                    return Err(Tx::Abort(Fault::storage_limit()));
                }
                et.insert(k.as_slice(), v.as_slice())?;
                qt.insert(qk.as_slice(), rec.id.bytes().as_slice())?;
                Ok(())
            });
        res?;
        let position = self.queue(&rec.org)?.len().saturating_sub(1);
        self.add_event(
            &rec.org,
            rec.id,
            &Event::new("queued", serde_json::json!({"position": position})),
        )?;
        self.flush()
    }

    pub fn get_export(&self, org: &str, id: ObjectId) -> Result<Option<ExportRecord>> {
        self.get_rec(Rec::Exports, &export_key(org, id))
    }

    /// The org's exports, newest first.
    pub fn iter_exports<'a>(
        &'a self,
        org: &str,
    ) -> impl Iterator<Item = Result<ExportRecord>> + 'a {
        self.t
            .exports
            .scan_prefix(prefix(&[org.as_bytes()]))
            .rev()
            .map(|r| {
                let (k, v) = r?;
                self.records.open(Rec::Exports, &k, &v)
            })
    }

    pub fn all_exports(&self) -> Result<Vec<ExportRecord>> {
        self.scan_rec(Rec::Exports, b"")
    }

    /// Every export record that can be read; damaged ones are logged and left alone (reading
    /// one is a fault), so that one of them cannot stop sweeps over all orgs.
    pub fn readable_exports(&self) -> Result<Vec<ExportRecord>> {
        let mut out = Vec::new();
        for r in self.t.exports.iter() {
            let (k, v) = r?;
            match self.records.open::<ExportRecord>(Rec::Exports, &k, &v) {
                Ok(rec) => out.push(rec),
                Err(_) => tracing::error!(
                    key = %hex::encode(&k),
                    "an export record is unreadable; left as it is"
                ),
            }
        }
        Ok(out)
    }

    /// The org's queue in order (ids of pending and running exports).
    pub fn queue(&self, org: &str) -> Result<Vec<ObjectId>> {
        self.t
            .export_queue
            .scan_prefix(prefix(&[org.as_bytes()]))
            .values()
            .map(|v| {
                ObjectId::from_slice(&v?)
                    .ok_or_else(|| Fault::internal("queue entry is corrupt", ""))
            })
            .collect()
    }

    /// Orgs with queued work, from the queue tree.
    pub fn orgs_with_queue(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for k in self.t.export_queue.iter().keys() {
            let k = k?;
            let org = k.split(|b| *b == 0).next().unwrap_or_default();
            let org = String::from_utf8_lossy(org).to_string();
            if out.last() != Some(&org) {
                out.push(org);
            }
        }
        Ok(out)
    }

    /// Applies `f` to the record atomically; `f` may refuse with a fault.
    pub fn update_export<F>(&self, org: &str, id: ObjectId, f: F) -> Result<ExportRecord>
    where
        F: Fn(&mut ExportRecord) -> Result<()>,
    {
        let k = export_key(org, id);
        let res = self.t.exports.transaction(|et| {
            let mut rec = self
                .records
                .tx_get::<ExportRecord>(Rec::Exports, et, &k)?
                .ok_or_else(|| Tx::Abort(not_found()))?;
            f(&mut rec).map_err(Tx::Abort)?;
            self.records.tx_put(Rec::Exports, et, &k, &rec)?;
            Ok(rec)
        });
        Ok(res?)
    }

    /// Appends to the export's event log; an export that is gone (deleted while its run or
    /// hook was finishing) gets none, so no log outlives its export.
    pub fn add_event(&self, org: &str, id: ObjectId, ev: &Event) -> Result<()> {
        let seq = self.next_seq()?;
        let k = key(&[org.as_bytes(), id.bytes(), &seq.to_be_bytes()]);
        let v = self.records.seal(Rec::ExportEvents, &k, ev);
        let rk = export_key(org, id);
        // one transaction with the record's existence: a delete cannot slip in between
        let res = (&self.t.exports, &self.t.export_events).transaction(|(et, evt)| {
            if et.get(&rk)?.is_some() {
                evt.insert(k.as_slice(), v.as_slice())?;
            }
            Ok::<_, Tx<Fault>>(())
        });
        Ok(res?)
    }

    pub fn events(&self, org: &str, id: ObjectId) -> Result<Vec<Event>> {
        self.scan_rec(Rec::ExportEvents, &prefix(&[org.as_bytes(), id.bytes()]))
    }

    /// The run succeeded: one transaction makes the archive visible, counts it, flips the
    /// record to `ready` and takes it off the queue. Refused if the record is no longer
    /// running (cancelled or deleted meanwhile) or the archive would cross the storage limit.
    pub fn finish_ready(
        &self,
        org: &str,
        id: ObjectId,
        blob: &BlobMeta,
        stats: &Stats,
        scanned: u64,
        limit: Option<u64>,
    ) -> Result<ExportRecord> {
        let k = export_key(org, id);
        let bv = self.records.seal(Rec::BlobMeta, blob.id.bytes(), blob);
        let res = (
            &self.t.exports,
            &self.t.export_queue,
            &self.t.usage,
            &self.t.blob_meta,
        )
            .transaction(|(et, qt, ut, bt)| {
                let mut rec = self
                    .records
                    .tx_get::<ExportRecord>(Rec::Exports, et, &k)?
                    .ok_or_else(|| Tx::Abort(not_found()))?;
                if rec.state != State::Running {
                    return Err(Tx::Abort(Fault::conflict(
                        "state",
                        "The export is no longer running",
                    )));
                }
                let mut u = tx_usage(&self.records, ut, org)?;
                let size = blob.size + stats.side_size;
                if limit.is_some_and(|l| u.used() + size > l) {
                    return Err(Tx::Abort(Fault::storage_limit()));
                }
                u.exports_bytes += size;
                u.exports_count += 1;
                self.records.tx_put(Rec::Usage, ut, org.as_bytes(), &u)?;
                bt.insert(blob.id.bytes().as_slice(), bv.as_slice())?;
                rec.state = State::Ready;
                rec.completed = Some(now_iso());
                rec.progress.docs = scanned.max(rec.progress.total.unwrap_or(0));
                rec.stats = Some(stats.clone());
                rec.data_file = Some(DataFile {
                    blob: blob.id,
                    size: blob.size,
                    sha256: blob.sha256.clone(),
                    filename: format!("{}.zip", rec.base_name()),
                });
                qt.remove(queue_key(org, rec.seq))?;
                self.records.tx_put(Rec::Exports, et, &k, &rec)?;
                Ok(rec)
            });
        let rec = res?;
        self.unpin_blob(blob.id);
        self.flush()?;
        Ok(rec)
    }

    /// The run failed or was cancelled: `error` with the fault, off the queue. A record that
    /// already ended is left as it is.
    pub fn finish_error(
        &self,
        org: &str,
        id: ObjectId,
        fault: &Fault,
    ) -> Result<Option<ExportRecord>> {
        let k = export_key(org, id);
        let fj = serde_json::to_string(fault).unwrap_or_default();
        let res = (&self.t.exports, &self.t.export_queue).transaction(|(et, qt)| {
            let Some(mut rec) = self.records.tx_get::<ExportRecord>(Rec::Exports, et, &k)? else {
                return Ok(None);
            };
            if matches!(rec.state, State::Ready | State::Error) {
                return Ok(None);
            }
            rec.state = State::Error;
            rec.fault = Some(fj.clone());
            rec.completed = Some(now_iso());
            qt.remove(queue_key(org, rec.seq))?;
            self.records.tx_put(Rec::Exports, et, &k, &rec)?;
            Ok(Some(rec))
        });
        let rec = res?;
        if rec.is_some() {
            self.remove_side_files(org, id)?;
        }
        self.flush()?;
        Ok(rec)
    }

    /// Records a side file of a running export (`exportFiles && !zipFiles`): its blob
    /// becomes complete and listed at once; it goes away with the export.
    pub fn add_side_file(
        &self,
        org: &str,
        export: ObjectId,
        file: &SideFile,
        blob: &BlobMeta,
    ) -> Result<()> {
        let k = key(&[org.as_bytes(), export.bytes(), &file.n.to_be_bytes()]);
        let (fv, bv) = (
            self.records.seal(Rec::ExportFiles, &k, file),
            self.records.seal(Rec::BlobMeta, blob.id.bytes(), blob),
        );
        let res = (&self.t.export_files, &self.t.blob_meta).transaction(|(ft, bt)| {
            ft.insert(k.as_slice(), fv.as_slice())?;
            bt.insert(blob.id.bytes().as_slice(), bv.as_slice())?;
            Ok::<_, Tx<Fault>>(())
        });
        res?;
        self.unpin_blob(blob.id);
        Ok(())
    }

    /// Side files of an export, from `skip`, at most `limit`.
    pub fn side_files(
        &self,
        org: &str,
        export: ObjectId,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<SideFile>> {
        self.t
            .export_files
            .scan_prefix(prefix(&[org.as_bytes(), export.bytes()]))
            .skip(skip)
            .take(limit)
            .map(|r| {
                let (k, v) = r?;
                self.records.open(Rec::ExportFiles, &k, &v)
            })
            .collect()
    }

    pub fn side_file(&self, org: &str, export: ObjectId, n: u32) -> Result<Option<SideFile>> {
        let k = key(&[org.as_bytes(), export.bytes(), &n.to_be_bytes()]);
        self.get_rec(Rec::ExportFiles, &k)
    }

    pub fn count_side_files(&self, org: &str, export: ObjectId) -> Result<u64> {
        Ok(self
            .t
            .export_files
            .scan_prefix(prefix(&[org.as_bytes(), export.bytes()]))
            .keys()
            .count() as u64)
    }

    /// Removes an export's side files and their blobs (usage is the caller's business).
    pub fn remove_side_files(&self, org: &str, export: ObjectId) -> Result<()> {
        for r in self
            .t
            .export_files
            .scan_prefix(prefix(&[org.as_bytes(), export.bytes()]))
        {
            let (k, v) = r?;
            let f: SideFile = self.records.open(Rec::ExportFiles, &k, &v)?;
            self.remove_blob_data(f.blob)?;
            self.t.export_files.remove(k)?;
        }
        Ok(())
    }

    /// Every side file's blob (for consistency checks); a damaged record is an `Err` in
    /// its place, so that one cannot hide the others.
    pub fn all_side_file_blobs(&self) -> Result<Vec<Result<ObjectId>>> {
        self.t
            .export_files
            .iter()
            .map(|r| {
                let (k, v) = r?;
                Ok(self
                    .records
                    .open::<SideFile>(Rec::ExportFiles, &k, &v)
                    .map(|f| f.blob))
            })
            .collect()
    }

    /// Deletes the record, its queue entry, archive and events, releasing its quota.
    pub fn delete_export(&self, org: &str, id: ObjectId) -> Result<()> {
        let k = export_key(org, id);
        let res = (
            &self.t.exports,
            &self.t.export_queue,
            &self.t.usage,
            &self.t.blob_meta,
        )
            .transaction(|(et, qt, ut, bt)| {
                let rec = self
                    .records
                    .tx_get::<ExportRecord>(Rec::Exports, et, &k)?
                    .ok_or_else(|| Tx::Abort(not_found()))?;
                if let Some(df) = &rec.data_file {
                    let mut u = tx_usage(&self.records, ut, org)?;
                    let size = df.size + rec.stats.as_ref().map_or(0, |s| s.side_size);
                    u.exports_bytes = u.exports_bytes.saturating_sub(size);
                    u.exports_count = u.exports_count.saturating_sub(1);
                    self.records.tx_put(Rec::Usage, ut, org.as_bytes(), &u)?;
                    mark_deleting(&self.records, bt, df.blob)?;
                }
                qt.remove(queue_key(org, rec.seq))?;
                et.remove(k.as_slice())?;
                Ok(rec)
            });
        let rec = res?;
        if let Some(df) = rec.data_file {
            self.remove_blob_data(df.blob)?;
        }
        self.remove_side_files(org, id)?;
        self.remove_events(org, id)?;
        self.flush()
    }

    fn remove_events(&self, org: &str, id: ObjectId) -> Result<()> {
        let mut batch = sled::Batch::default();
        for k in self
            .t
            .export_events
            .scan_prefix(prefix(&[org.as_bytes(), id.bytes()]))
            .keys()
        {
            batch.remove(k?);
        }
        self.t.export_events.apply_batch(batch)?;
        Ok(())
    }

    /// Removes what a crash in a delete or a failure (or a run that outlived its export's
    /// deletion) left behind: side files of exports that are gone or did not end `ready`,
    /// and event logs of exports that are gone. Returns how many exports were cleaned.
    pub fn sweep_export_leftovers(&self) -> Result<usize> {
        let mut n = 0;
        for (org, id) in export_prefixes(&self.t.export_files)? {
            let stale = match self.get_export(&org, id) {
                Ok(Some(rec)) => !keeps_side_files(rec.state),
                Ok(None) => true,
                // a damaged record is left alone, with what hangs off it
                Err(_) => false,
            };
            if stale {
                // one damaged side-file record must not stop the sweep (or the start)
                match self.remove_side_files(&org, id) {
                    Ok(()) => n += 1,
                    Err(e) => tracing::error!(%org, export = %id, error = %e,
                        "side files of a gone export could not be removed; left as they are"),
                }
            }
        }
        for (org, id) in export_prefixes(&self.t.export_events)? {
            if !self.t.exports.contains_key(export_key(&org, id))? {
                self.remove_events(&org, id)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Side-file and event keys (org ‖ export id ‖ …) whose export is not in `exports`.
    pub fn orphan_export_records(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for (tree, what, files_tree) in [
            (&self.t.export_files, "side files", true),
            (&self.t.export_events, "events", false),
        ] {
            for (org, id) in export_prefixes(tree)? {
                match self.get_export(&org, id) {
                    Err(e) => out.push(format!(
                        "{what} of export {id} of {org}, whose record is unreadable ({e})"
                    )),
                    Ok(None) => out.push(format!("{what} of export {id} of {org}, which is gone")),
                    Ok(Some(rec)) if files_tree && !keeps_side_files(rec.state) => {
                        out.push(format!(
                            "side files of export {id} of {org}, which is {}",
                            rec.state.name()
                        ))
                    }
                    Ok(Some(_)) => {}
                }
            }
        }
        Ok(out)
    }

    /// At start: exports found `running` go back to `pending`, keeping their queue position.
    pub fn recover_running(&self) -> Result<Vec<ExportRecord>> {
        let mut out = Vec::new();
        // a damaged record is left alone (reading it is a fault): it must not stop the start
        for rec in self.readable_exports()? {
            if rec.state == State::Running {
                // what the interrupted run produced is redone by the next one
                self.remove_side_files(&rec.org, rec.id)?;
                let r = self.update_export(&rec.org, rec.id, |r| {
                    r.state = State::Pending;
                    r.progress = Default::default();
                    Ok(())
                })?;
                self.add_event(
                    &r.org,
                    r.id,
                    &Event::new("aborted", serde_json::json!({"willRestart": true})),
                )?;
                out.push(r);
            }
        }
        self.flush()?;
        Ok(out)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::crypto::Key;
    use crate::export::record::{Format, Progress};
    use crate::store::BlobKind;

    pub(crate) fn record(store: &Store, org: &str) -> ExportRecord {
        ExportRecord {
            id: ObjectId::new(),
            org: org.into(),
            label: "x".into(),
            description: None,
            state: State::Pending,
            format: Format::Ndjson,
            object: "c_a".into(),
            objects: "c_as".into(),
            export_files: true,
            zip_files: false,
            paths: vec![],
            include: vec![],
            expand: vec![],
            where_json: None,
            after_script: None,
            principal: None,
            prefix: None,
            csv_escape_formulas: false,
            progress: Progress::default(),
            stats: None,
            data_file: None,
            fault: None,
            created: now_iso(),
            started: None,
            completed: None,
            expires_at: "9999-01-01T00:00:00.000Z".into(),
            creator: ObjectId::new(),
            seq: store.next_seq().unwrap(),
        }
    }

    /// A running export with one side file and a few events.
    fn running_with_side_file(store: &Store) -> ExportRecord {
        let rec = record(store, "acme");
        store.create_export(&rec, None).unwrap();
        store
            .update_export("acme", rec.id, |r| {
                r.state = State::Running;
                Ok(())
            })
            .unwrap();
        let mut w = store.blob_writer("acme", BlobKind::SideFile).unwrap();
        w.write_all(b"side file bytes").unwrap();
        let blob = w.finish().unwrap();
        let file = SideFile {
            n: 0,
            blob: blob.id,
            mime: "text/plain".into(),
            filename: "a.txt".into(),
            size: blob.size,
            sha256: blob.sha256.clone(),
            source: "/c_as/x/c_f/content".into(),
        };
        store.add_side_file("acme", rec.id, &file, &blob).unwrap();
        store
            .add_event(
                "acme",
                rec.id,
                &Event::new("started", serde_json::json!({})),
            )
            .unwrap();
        rec
    }

    #[test]
    fn export_prefixes_are_found_once_each_even_with_zero_bytes_in_ids() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        let zeros = ObjectId([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let ff = ObjectId([0xff; 12]);
        let want = [("a", zeros), ("a", ff), ("ab", zeros), ("b", ff)];
        for (org, id) in want {
            for n in 0u32..3 {
                tree.insert(key(&[org.as_bytes(), id.bytes(), &n.to_be_bytes()]), b"")
                    .unwrap();
            }
        }
        tree.insert(b"junk-without-separator", b"").unwrap();
        let got = export_prefixes(&tree).unwrap();
        let want: Vec<(String, ObjectId)> = want.iter().map(|(o, i)| (o.to_string(), *i)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn leftovers_of_interrupted_deletes_and_failures_are_found_and_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Key::random()).unwrap();
        store.create_org("acme", "Acme", None).unwrap();

        // a crash right after delete's transaction: the record and queue entry are gone,
        // its side file and events are not
        let deleted = running_with_side_file(&store);
        store
            .t
            .exports
            .remove(export_key("acme", deleted.id))
            .unwrap();
        store
            .t
            .export_queue
            .remove(queue_key("acme", deleted.seq))
            .unwrap();
        // a crash right after finish_error's transaction: `error`, its side file kept
        let failed = running_with_side_file(&store);
        store
            .update_export("acme", failed.id, |r| {
                r.state = State::Error;
                Ok(())
            })
            .unwrap();
        store
            .t
            .export_queue
            .remove(queue_key("acme", failed.seq))
            .unwrap();
        // a live run keeps its side file and events
        let live = running_with_side_file(&store);

        let problems = store.check_consistency().unwrap();
        let about = |id: ObjectId| problems.iter().filter(|p| p.contains(&id.to_hex())).count();
        assert_eq!(
            (about(deleted.id), about(failed.id), about(live.id)),
            (2, 1, 0),
            "{problems:#?}"
        );
        // an event for an export that is gone is not written
        store
            .add_event(
                "acme",
                deleted.id,
                &Event::new("late", serde_json::json!({})),
            )
            .unwrap();

        // a damaged side-file record of a gone export is left alone; it does not stop the sweep
        let damaged = key(&[b"acme", ObjectId::new().bytes(), &0u32.to_be_bytes()]);
        store
            .t
            .export_files
            .insert(&damaged, b"\x02garbage")
            .unwrap();

        assert_eq!(store.sweep_export_leftovers().unwrap(), 3);
        assert_eq!(
            store.check_consistency().unwrap().len(),
            2,
            "gone, and unreadable"
        );
        store.t.export_files.remove(&damaged).unwrap();
        assert_eq!(store.check_consistency().unwrap(), Vec::<String>::new());
        assert!(store.events("acme", deleted.id).unwrap().is_empty());
        assert!(
            store
                .side_files("acme", failed.id, 0, 10)
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.side_files("acme", live.id, 0, 10).unwrap().len(), 1);
        assert_eq!(store.events("acme", live.id).unwrap().len(), 2);
        assert_eq!(store.sweep_export_leftovers().unwrap(), 0);
    }
}
