//! The embedded store: one sled database holding every record and encrypted blob.
//! sled is only touched from blocking threads: async callers go through [`blocking`].
//! Keys are big-endian / separator-joined so that prefix scans come out ordered.

pub mod blobs;
pub mod callers;
pub mod check;
pub mod codec;
pub mod data;
pub mod derived;
pub mod exports;
pub mod identity;
pub mod rawdoc;
pub mod spill;
pub mod writers;

use crate::crypto::Key;
use crate::fault::{Fault, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

pub use blobs::{BlobKind, BlobMeta, BlobWriter};
use codec::{Rec, RecordSeal};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The trees of DESIGN.md ("Storage").
pub struct Trees {
    pub meta: sled::Tree,
    pub orgs: sled::Tree,
    pub accounts: sled::Tree,
    pub account_emails: sled::Tree,
    pub tokens: sled::Tree,
    pub token_ids: sled::Tree,
    pub sessions: sled::Tree,
    pub objects: sled::Tree,
    pub docs: sled::Tree,
    pub exports: sled::Tree,
    pub export_queue: sled::Tree,
    pub export_events: sled::Tree,
    pub export_files: sled::Tree,
    pub blobs: sled::Tree,
    pub blob_meta: sled::Tree,
    pub usage: sled::Tree,
}

impl Trees {
    /// The tree that holds the records of `rec`.
    pub fn of(&self, rec: Rec) -> &sled::Tree {
        match rec {
            Rec::Orgs => &self.orgs,
            Rec::Accounts => &self.accounts,
            Rec::Tokens => &self.tokens,
            Rec::Sessions => &self.sessions,
            Rec::Objects => &self.objects,
            Rec::Exports => &self.exports,
            Rec::ExportEvents => &self.export_events,
            Rec::ExportFiles => &self.export_files,
            Rec::BlobMeta => &self.blob_meta,
            Rec::Usage => &self.usage,
        }
    }
}

pub struct Inner {
    pub db: sled::Db,
    /// The data directory (spills are made under it).
    pub dir: PathBuf,
    pub t: Trees,
    pub master: Key,
    /// Seals every metadata record (see [`codec::RecordSeal`]).
    pub records: RecordSeal,
    /// API-token callers (see [`callers`]).
    callers: callers::CallerCache,
    org_keys: RwLock<HashMap<String, Key>>,
    /// Test-only fault injection at the blob writer (see [`blobs::WriteFault`]).
    #[doc(hidden)]
    pub blob_write_fault: blobs::WriteFault,
    /// Background work writing to the store (see `writers`), waited for by a stop.
    pub writers: writers::Writers,
}

#[derive(Clone)]
pub struct Store(pub Arc<Inner>);

impl std::ops::Deref for Store {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

const KEY_CHECK: &[u8] = b"master_key_check";
/// What `KEY_CHECK` seals: the format of the metadata records. Only the master key can
/// write it. Before records were sealed it said `exportd`; during the upgrade it says so.
const FORMAT_SEALED: &[u8] = b"exportd.records-sealed";
const FORMAT_PLAIN: &[u8] = b"exportd";
const FORMAT_UPGRADING: &[u8] = b"exportd.records-sealing";

/// Default size of sled's page cache, MiB (`--cache-mb`).
pub const DEFAULT_CACHE_MB: u64 = 32;

impl Store {
    /// Opens (or creates) the database in `dir` with the default page cache
    /// (`DEFAULT_CACHE_MB`) and checks that `master` is its key.
    pub fn open(dir: &Path, master: Key) -> std::result::Result<Store, String> {
        Store::open_with_cache(dir, master, DEFAULT_CACHE_MB)
    }

    /// Opens (or creates) the database in `dir` with a page cache of `cache_mb` MiB.
    /// The cache bounds the server's memory: exports scan through it, so their peak
    /// RSS stays near idle plus at most this much whatever their size.
    pub fn open_with_cache(
        dir: &Path,
        master: Key,
        cache_mb: u64,
    ) -> std::result::Result<Store, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create data dir {}: {e}", dir.display()))?;
        let probe = dir.join(".write-test");
        std::fs::write(&probe, b"")
            .map_err(|e| format!("data dir {} is not writable: {e}", dir.display()))?;
        let _ = std::fs::remove_file(&probe);
        let clean_file = dir.join(CLEAN_FILE);
        let clean_stop = CleanStop::read(&clean_file)?;
        // after a clean stop no torn write can exist: a damaged message inside the log is
        // refused instead of skipped (which would roll back the rest of its segment while
        // later ones, the mark among them, are replayed), and so is a log that ends short of
        // what the stop made durable (sled would cut it there and zero what follows)
        let strict = clean_stop.is_some();
        let config = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(cache_mb.max(1) * 1024 * 1024)
            .strict_recovery(strict)
            .clean_shutdown_lsn(clean_stop.as_ref().and_then(|c| c.stable_lsn));
        // sled's recovery panics on some damaged logs (e.g. "tried to serialize
        // Uninitialized"): that is a database it cannot open, said in one line (nothing of
        // the half-opened database is used after such a panic)
        let db = quiet_catch(std::panic::AssertUnwindSafe(move || config.open()))
            .map_err(|msg| {
                format!(
                    "cannot open the database in {}: it is damaged ({msg})",
                    dir.display()
                )
            })?
            .map_err(|e| match e {
                sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => format!(
                    "data dir {} is in use by another exportd process",
                    dir.display()
                ),
                sled::Error::Corruption { at, .. } if strict => format!(
                    "the database in {} is damaged: its log does not read back intact ({}), so \
                     acknowledged writes would be missing; restore a backup, or delete {} to \
                     serve what is left",
                    dir.display(),
                    match at {
                        Some(sled::DiskPtr::Inline(at)) => format!("at byte {at} of db/db"),
                        Some(sled::DiskPtr::Blob(at, blob)) => format!(
                            "blob file db/blobs/{blob}, written at byte {at} of db/db, is gone"
                        ),
                        None => "place unknown".to_string(),
                    },
                    clean_file.display()
                ),
                other => format!("cannot open the database in {}: {other}", dir.display()),
            })?;
        let open = |name: &str| {
            db.open_tree(name)
                .map_err(|e| format!("cannot open tree {name}: {e}"))
        };
        let t = Trees {
            meta: open("meta")?,
            orgs: open("orgs")?,
            accounts: open("accounts")?,
            account_emails: open("account_emails")?,
            tokens: open("tokens")?,
            token_ids: open("token_ids")?,
            sessions: open("sessions")?,
            objects: open("objects")?,
            docs: open("docs")?,
            exports: open("exports")?,
            export_queue: open("export_queue")?,
            export_events: open("export_events")?,
            export_files: open("export_files")?,
            blobs: open("blobs")?,
            blob_meta: open("blob_meta")?,
            usage: open("usage")?,
        };
        if let Some(clean_stop) = clean_stop {
            clean_stop.check(dir, &clean_file, &t.meta)?;
        }
        let records = RecordSeal::new(&master);
        let stored_check = t.meta.get(KEY_CHECK).map_err(|e| e.to_string())?;
        let fresh = stored_check.is_none();
        // every version wrote the check first: data without it is a damaged database, and
        // taking it as new would let any key in (and lock the right one out)
        if fresh && (!t.orgs.is_empty() || !t.docs.is_empty() || !t.blobs.is_empty()) {
            return Err(format!(
                "the database in {} holds data but no master-key check: it is damaged; \
                 restore a backup",
                dir.display()
            ));
        }
        let format = match stored_check {
            Some(sealed) => master.open(KEY_CHECK, &sealed).map_err(|_| {
                format!(
                    "the master key does not match the data in {}",
                    dir.display()
                )
            })?,
            None => FORMAT_SEALED.to_vec(),
        };
        let upgrade_failed =
            |e: String| format!("cannot upgrade the database in {}: {e}", dir.display());
        let seal_check = |value: &[u8]| {
            t.meta
                .insert(KEY_CHECK, master.seal(KEY_CHECK, value))
                .and_then(|_| db.flush())
                .map_err(|e| e.to_string())
        };
        match format.as_slice() {
            FORMAT_SEALED => {}
            FORMAT_PLAIN | FORMAT_UPGRADING => {
                // a database of an earlier version, whose metadata records were plain. A
                // plain database holds no sealed record: if it does, its check value was put
                // back from an older copy (to have planted plain records sealed), and nothing
                // is upgraded. The upgrade marks itself first, so a crash midway resumes.
                if format == FORMAT_PLAIN {
                    if any_sealed_record(&t).map_err(|e| upgrade_failed(e.to_string()))? {
                        return Err(format!(
                            "the database in {} holds sealed records but says it has none: its \
                             master-key check was replaced from an older copy; restore a backup",
                            dir.display()
                        ));
                    }
                    seal_check(FORMAT_UPGRADING).map_err(upgrade_failed)?;
                }
                let n = seal_plain_records(&t, &records)
                    .and_then(|n| db.flush().map(|_| n))
                    .map_err(|e| upgrade_failed(e.to_string()))?;
                tracing::info!(
                    records = n,
                    "sealed the metadata records of an earlier version"
                );
            }
            _ => {
                return Err(format!(
                    "the database in {} is of an unknown format (a newer version?)",
                    dir.display()
                ));
            }
        }
        if format != FORMAT_SEALED || fresh {
            seal_check(FORMAT_SEALED)?;
        }
        spill::clear_spill_dir(dir)
            .map_err(|e| format!("cannot prepare {}/{}: {e}", dir.display(), spill::SPILL_DIR))?;
        Ok(Store(Arc::new(Inner {
            db,
            dir: dir.to_path_buf(),
            t,
            records,
            callers: Default::default(),
            master,
            org_keys: RwLock::new(HashMap::new()),
            blob_write_fault: blobs::WriteFault::from_env(),
            writers: Default::default(),
        })))
    }

    /// The last step of a clean stop (after the final flush): a random mark goes into the
    /// database and, with the log position made durable, into `<dir>/clean-shutdown`, so the
    /// next start can tell whether sled recovered the database that was shut down. sled's
    /// recovery takes a damaged log message or blob file for a torn write and silently rolls
    /// back to the last intact write (older documents served as current ones); the next
    /// start opens strictly (see [`CleanStop`]) and checks the mark, written last.
    pub fn mark_clean_shutdown(&self, dir: &Path) -> std::result::Result<(), String> {
        let mark = crate::crypto::random_hex(16);
        self.t
            .meta
            .insert(CLEAN_MARK, mark.as_bytes())
            .and_then(|_| self.db.flush())
            .map_err(|e| format!("cannot record the clean shutdown: {e}"))?;
        let stable_lsn = self.db.stable_lsn();
        let tmp = dir.join(format!("{CLEAN_FILE}.tmp"));
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            write!(f, "{mark} {stable_lsn}")?;
            f.sync_all()?;
            std::fs::rename(&tmp, dir.join(CLEAN_FILE))?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| format!("cannot record the clean shutdown in {}: {e}", dir.display()))
    }

    pub fn get_rec<T: DeserializeOwned>(&self, rec: Rec, key: &[u8]) -> Result<Option<T>> {
        self.t
            .of(rec)
            .get(key)?
            .map(|v| self.records.open(rec, key, &v))
            .transpose()
    }

    pub fn put_rec<T: Serialize>(&self, rec: Rec, key: &[u8], v: &T) -> Result<()> {
        self.t.of(rec).insert(key, self.records.seal(rec, key, v))?;
        Ok(())
    }

    /// Every record of `rec` whose key starts with `prefix`, in key order.
    pub fn scan_rec<T: DeserializeOwned>(&self, rec: Rec, prefix: &[u8]) -> Result<Vec<T>> {
        self.t
            .of(rec)
            .scan_prefix(prefix)
            .map(|r| {
                let (k, v) = r?;
                self.records.open(rec, &k, &v)
            })
            .collect()
    }

    /// Makes acknowledged writes durable before the response goes out.
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    /// The org's data key, unwrapped once and cached.
    pub fn org_key(&self, org: &str) -> Result<Key> {
        if let Some(k) = self
            .org_keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(org)
        {
            return Ok(k.clone());
        }
        let o = self.get_org(org)?.ok_or_else(|| Fault::not_found("org"))?;
        let k = self.master.unwrap_key(&org_key_aad(org), &o.wrapped_key)?;
        self.org_keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(org.to_string(), k.clone());
        Ok(k)
    }

    /// A monotonically increasing number (queue positions, etc.).
    pub fn next_seq(&self) -> Result<u64> {
        Ok(self.db.generate_id()?)
    }
}

const CLEAN_MARK: &[u8] = b"clean_shutdown";
const CLEAN_FILE: &str = "clean-shutdown";

/// What a clean stop (see [`Store::mark_clean_shutdown`]) left in `<dir>/clean-shutdown`:
/// the mark it wrote last, and the log position it made durable (absent in files of
/// earlier versions).
struct CleanStop {
    mark: Vec<u8>,
    stable_lsn: Option<i64>,
}

impl CleanStop {
    fn read(path: &Path) -> std::result::Result<Option<CleanStop>, String> {
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let mut fields = text.splitn(2, |b| *b == b' ');
        let mark = fields.next().unwrap_or_default().to_vec();
        let stable_lsn = match fields.next() {
            None => None,
            Some(lsn) => Some(
                std::str::from_utf8(lsn)
                    .ok()
                    .and_then(|lsn| lsn.parse().ok())
                    .ok_or_else(|| {
                        format!(
                            "{} is damaged: delete it to start without checking the last \
                             clean shutdown",
                            path.display()
                        )
                    })?,
            ),
        };
        Ok(Some(CleanStop { mark, stable_lsn }))
    }

    /// The recovered database must hold the mark written last; the file is then removed
    /// for good, since after a crash there is nothing to compare (sled's recovery of a torn
    /// tail is legitimate then).
    fn check(&self, dir: &Path, path: &Path, meta: &sled::Tree) -> std::result::Result<(), String> {
        let got = meta.get(CLEAN_MARK).map_err(|e| {
            format!(
                "cannot open the database in {}: it is damaged ({e})",
                dir.display()
            )
        })?;
        if got.as_deref() != Some(self.mark.as_slice()) {
            return Err(format!(
                "the database in {} is not the one that was shut down cleanly: it was damaged \
                 or rolled back and acknowledged writes are missing; restore a backup, or \
                 delete {} to serve what is left",
                dir.display(),
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .and_then(|_| std::fs::File::open(dir)?.sync_all())
            .map_err(|e| format!("cannot remove {}: {e}", path.display()))
    }
}

/// Whether any metadata tree holds a sealed record.
fn any_sealed_record(t: &Trees) -> std::result::Result<bool, sled::Error> {
    for rec in Rec::ALL {
        for r in t.of(rec).iter().values() {
            if r?.first() == Some(&codec::SEALED) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Seals every plain record left by an earlier version, tree by tree (idempotent: a crash
/// midway is finished at the next start, which finds the upgrade's mark).
fn seal_plain_records(t: &Trees, records: &RecordSeal) -> std::result::Result<usize, sled::Error> {
    let mut n = 0;
    for rec in Rec::ALL {
        let tree = t.of(rec);
        for r in tree.iter() {
            let (k, v) = r?;
            if let Some(sealed) = records.upgrade(rec, &k, &v) {
                tree.insert(k, sealed)?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Runs `f`, turning a panic into `Err(its message)` without the panic hook's report (only
/// for panics on this thread while `f` runs; other threads report as usual).
fn quiet_catch<T>(
    f: impl FnOnce() -> T + std::panic::UnwindSafe,
) -> std::result::Result<T, String> {
    use std::cell::Cell;
    thread_local!(static QUIET: Cell<bool> = const { Cell::new(false) });
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                report(info)
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let r = std::panic::catch_unwind(f);
    QUIET.with(|q| q.set(false));
    r.map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the storage engine failed".into())
    })
}

pub fn org_key_aad(org: &str) -> Vec<u8> {
    format!("org:{org}").into_bytes()
}

/// `org ‖ 0 ‖ part ‖ 0 ‖ ...`: org codes and names never hold a NUL byte.
pub fn key(parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            k.push(0);
        }
        k.extend_from_slice(p);
    }
    k
}

/// Prefix for scanning everything under `parts` (ends with the separator).
pub fn prefix(parts: &[&[u8]]) -> Vec<u8> {
    let mut k = key(parts);
    k.push(0);
    k
}

/// Runs store work on the blocking pool and maps every failure (including a panic) to a Fault.
pub async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    actix_web::web::block(f).await?
}

#[cfg(test)]
mod tests {
    use super::*;
    use codec::{SEALED, encode};

    /// Rewrites the database as an earlier version left it: plain records, the old mark.
    fn downgrade(store: &Store) {
        for rec in Rec::ALL {
            let tree = store.t.of(rec);
            for r in tree.iter() {
                let (k, v) = r.unwrap();
                let plain = &store.records.open_plain(rec, &k, &v).unwrap();
                tree.insert(k, plain.as_slice()).unwrap();
            }
        }
        store
            .t
            .meta
            .insert(KEY_CHECK, store.master.seal(KEY_CHECK, b"exportd"))
            .unwrap();
        store.db.flush().unwrap();
    }

    #[test]
    fn plain_records_of_an_earlier_version_are_sealed_at_start_and_refused_after() {
        let dir = tempfile::tempdir().unwrap();
        let master = Key::random();
        let store = Store::open(dir.path(), master.clone()).unwrap();
        let org = store.create_org("acme", "Acme", Some(1000)).unwrap();
        let raw = store.t.orgs.get("acme").unwrap().unwrap();
        assert_eq!(raw[0], SEALED);
        downgrade(&store);
        assert_eq!(
            store.t.orgs.get("acme").unwrap().unwrap()[0],
            codec::VERSION
        );
        drop(store);

        let store = reopen(dir.path(), &master).unwrap();
        for rec in Rec::ALL {
            for r in store.t.of(rec).iter() {
                assert_eq!(r.unwrap().1[0], SEALED, "{rec:?}");
            }
        }
        let got = store.get_org("acme").unwrap().unwrap();
        assert_eq!((got.id, got.storage_limit), (org.id, Some(1000)));
        assert_eq!(store.usage("acme").unwrap().used(), 0);

        // after the upgrade a planted plain record is a fault, also after a restart
        let mut forged = got.clone();
        forged.storage_limit = None;
        store.t.orgs.insert("acme", encode(&forged)).unwrap();
        store.db.flush().unwrap();
        drop(store);
        let store = reopen(dir.path(), &master).unwrap();
        let err = store.get_org("acme").unwrap_err();
        assert_eq!(err.err_code, "cortex.error.integrity");

        // nor can the check value be put back to "plain" to have a planted record sealed
        store
            .t
            .meta
            .insert(KEY_CHECK, master.seal(KEY_CHECK, FORMAT_PLAIN))
            .unwrap();
        store.db.flush().unwrap();
        drop(store);
        let refused = reopen(dir.path(), &master).err().unwrap();
        assert!(refused.contains("replaced from an older copy"), "{refused}");
        // nor removed, to have any key taken as the database's
        let db = reopen_sled(dir.path());
        db.open_tree("meta").unwrap().remove(KEY_CHECK).unwrap();
        db.flush().unwrap();
        drop(db);
        let refused = reopen(dir.path(), &Key::random()).err().unwrap();
        assert!(refused.contains("no master-key check"), "{refused}");
        let store = reopen_sled(dir.path());
        let forged_plain = store
            .open_tree("orgs")
            .unwrap()
            .get("acme")
            .unwrap()
            .unwrap();
        assert_eq!(
            forged_plain[0],
            codec::VERSION,
            "the planted record was left plain"
        );
    }

    #[test]
    fn an_upgrade_cut_short_is_finished_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let master = Key::random();
        let store = Store::open(dir.path(), master.clone()).unwrap();
        store.create_org("acme", "Acme", None).unwrap();
        store.create_org("beta", "Beta", Some(7)).unwrap();
        downgrade(&store);
        // the crash came after the mark and one sealed record
        let org = store.t.orgs.get("acme").unwrap().unwrap();
        let sealed = store.records.upgrade(Rec::Orgs, b"acme", &org).unwrap();
        store.t.orgs.insert("acme", sealed).unwrap();
        store
            .t
            .meta
            .insert(KEY_CHECK, master.seal(KEY_CHECK, FORMAT_UPGRADING))
            .unwrap();
        store.db.flush().unwrap();
        drop(store);
        let store = reopen(dir.path(), &master).unwrap();
        assert_eq!(
            store.get_org("beta").unwrap().unwrap().storage_limit,
            Some(7)
        );
        assert_eq!(store.get_org("acme").unwrap().unwrap().code, "acme");
        for rec in Rec::ALL {
            for r in store.t.of(rec).iter() {
                assert_eq!(r.unwrap().1[0], SEALED, "{rec:?}");
            }
        }
    }

    /// Waits until sled has let go of the data dir: its last background writes may still
    /// be under way after the handle is dropped, and the tests read and change the files.
    fn released(dir: &Path) {
        use std::os::fd::AsRawFd;
        let Ok(log) = std::fs::File::open(dir.join("db/db")) else {
            return; // no database yet
        };
        for _ in 0..100 {
            // SAFETY: flock on a descriptor this function owns
            if unsafe { libc::flock(log.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return; // closing the file releases the lock
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("sled still holds {}", dir.display());
    }

    fn reopen(dir: &Path, master: &Key) -> std::result::Result<Store, String> {
        released(dir);
        Store::open(dir, master.clone())
    }

    fn reopen_sled(dir: &Path) -> sled::Db {
        released(dir);
        sled::open(dir.join("db")).unwrap()
    }

    #[test]
    fn a_data_dir_in_use_is_refused_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let master = Key::random();
        let store = Store::open(dir.path(), master.clone()).unwrap();
        let refused = Store::open(dir.path(), master.clone()).err().unwrap();
        assert!(
            refused.contains("is in use by another exportd process"),
            "{refused}"
        );
        drop(store);
        reopen(dir.path(), &master).unwrap();
    }

    /// A clean stop of `store` in `dir`, waited for until sled has let go of the files.
    fn stop_cleanly(store: Store, dir: &Path) {
        store.flush().unwrap();
        store.mark_clean_shutdown(dir).unwrap();
        drop(store);
        released(dir);
    }

    /// sled's log segment size (its default, which exportd keeps).
    const SEGMENT: usize = 512 * 1024;

    /// A database whose log spans several segments, stopped cleanly; the values written.
    fn stopped_cleanly_over_segments(dir: &Path, master: &Key) -> Vec<(String, String)> {
        let store = reopen(dir, master).unwrap();
        let written: Vec<(String, String)> = (0..2000)
            .map(|i| (format!("k{i:05}"), crate::crypto::random_hex(512)))
            .collect();
        for (k, v) in &written {
            store.t.docs.insert(k, v.as_bytes()).unwrap();
        }
        stop_cleanly(store, dir);
        let log_len = std::fs::metadata(dir.join("db/db")).unwrap().len();
        assert!(
            log_len > 3 * SEGMENT as u64,
            "the log spans {log_len} bytes"
        );
        written
    }

    /// The log's segments by their headers, in log order: (LSN, file offset). A header
    /// stores its LSN at bytes 4..12, little-endian, XOR 0x7FFF_FFFF_FFFF_FFFF; zeroed
    /// (free) segments decode to no multiple of the segment size below 2^40.
    fn segments_in_log_order(dir: &Path) -> Vec<(i64, usize)> {
        let log = std::fs::read(dir.join("db/db")).unwrap();
        // the file ends where the last write ended, inside its segment: every start that
        // leaves room for a header counts
        let mut segments: Vec<(i64, usize)> = (0..log.len().saturating_sub(20))
            .step_by(SEGMENT)
            .map(|lid| {
                let lsn = i64::from_le_bytes(log[lid + 4..lid + 12].try_into().unwrap());
                (lsn ^ 0x7FFF_FFFF_FFFF_FFFF, lid)
            })
            .filter(|(lsn, _)| (0..1 << 40).contains(lsn) && lsn % SEGMENT as i64 == 0)
            .collect();
        segments.sort();
        segments
    }

    fn flip(path: &Path, at: usize) {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[at] ^= 0x20;
        std::fs::write(path, bytes).unwrap();
    }

    /// Flips the byte of the log at `lsn`, found through its segment's header.
    fn flip_at_lsn(dir: &Path, lsn: i64) {
        let base = lsn / SEGMENT as i64 * SEGMENT as i64;
        let segments = segments_in_log_order(dir);
        let &(_, lid) = segments.iter().find(|(at, _)| *at == base).unwrap();
        flip(&dir.join("db/db"), lid + (lsn - base) as usize);
    }

    /// The log position the last clean stop of `dir` recorded.
    fn clean_stop_lsn(dir: &Path) -> i64 {
        CleanStop::read(&dir.join(CLEAN_FILE))
            .unwrap()
            .expect("a clean stop")
            .stable_lsn
            .expect("the stop records its log position")
    }

    /// Damage to a cleanly stopped database: refused without a write, as long as the
    /// clean-stop file is there.
    fn refused_until_the_clean_file_goes(dir: &Path, master: &Key, at: &str) {
        refused_untouched(dir, master, at);
        // without it the damage is taken for a torn write, as after a crash: sled skips it
        // (or fails on what it skipped), but the strict refusal is gone
        std::fs::remove_file(dir.join(CLEAN_FILE)).unwrap();
        if let Err(e) = reopen(dir, master) {
            assert!(!e.contains("does not read back intact"), "{e}");
        }
    }

    fn refused_untouched(dir: &Path, master: &Key, at: &str) {
        let log = std::fs::read(dir.join("db/db")).unwrap();
        for _ in 0..2 {
            let refused = reopen(dir, master).err().unwrap();
            assert!(refused.contains("is damaged"), "{refused}");
            assert!(refused.contains(at), "{refused}");
            assert!(refused.contains("clean-shutdown"), "{refused}");
        }
        assert!(
            std::fs::read(dir.join("db/db")).unwrap() == log,
            "the refused opens left the log as it was"
        );
    }

    #[test]
    fn damage_inside_the_log_of_a_clean_stop_is_refused_not_skipped() {
        let master = Key::random();
        let dir = tempfile::tempdir().unwrap();
        stopped_cleanly_over_segments(dir.path(), &master);
        // a message in the middle of the log's first segment (sled would skip the segment's
        // rest and replay the later ones: writes lost in the middle, the clean mark still
        // there); a segment that is not the last was written whole
        let segments = segments_in_log_order(dir.path());
        assert!(segments.len() > 2, "{segments:?}");
        flip(&dir.path().join("db/db"), segments[0].1 + SEGMENT / 2);
        refused_until_the_clean_file_goes(dir.path(), &master, "of db/db");

        // undamaged, such a database opens strictly, every value intact
        let intact = tempfile::tempdir().unwrap();
        let written = stopped_cleanly_over_segments(intact.path(), &master);
        let store = reopen(intact.path(), &master).unwrap();
        assert!(!intact.path().join(CLEAN_FILE).exists());
        for (k, v) in &written {
            assert_eq!(store.t.docs.get(k).unwrap().as_deref(), Some(v.as_bytes()));
        }
    }

    #[test]
    fn damage_at_the_end_of_the_log_of_a_clean_stop_is_refused_before_sled_cuts_it() {
        let master = Key::random();
        let dir = tempfile::tempdir().unwrap();
        stopped_cleanly_over_segments(dir.path(), &master);
        // in the last write (the mark), which sled's first pass would take for a torn tail
        flip_at_lsn(dir.path(), clean_stop_lsn(dir.path()) - 40);
        refused_until_the_clean_file_goes(dir.path(), &master, "of db/db");
    }

    #[test]
    fn a_write_torn_after_the_clean_stop_is_cut_as_after_a_crash() {
        let master = Key::random();
        let dir = tempfile::tempdir().unwrap();
        let written = stopped_cleanly_over_segments(dir.path(), &master);
        let tip = clean_stop_lsn(dir.path());
        // a writer the stop did not wait for (a request dropped at the graceful stop's
        // limit) wrote after the mark, and the process ended with its write torn: the mark
        // is still there, the log goes on past the position it vouches for
        let db = reopen_sled(dir.path());
        let late = vec![7u8; 300];
        db.insert("late", late.clone()).unwrap();
        db.flush().unwrap();
        let end = db.stable_lsn();
        drop(db);
        released(dir.path());
        let torn = end - 40;
        assert!(torn > tip, "{torn} is not past the clean stop's {tip}");
        flip_at_lsn(dir.path(), torn);

        // everything the clean stop vouched for is served, not refused; the torn tail is
        // cut as sled cuts any, so the late write is gone or whole, never damaged
        let store = reopen(dir.path(), &master).expect("a torn tail past the mark opens");
        for (k, v) in &written {
            assert_eq!(store.t.docs.get(k).unwrap().as_deref(), Some(v.as_bytes()));
        }
        drop(store);
        let db = reopen_sled(dir.path());
        assert!(db.get("late").unwrap().is_none_or(|v| v == late));
    }

    #[test]
    fn a_clean_stop_file_without_the_log_position_is_read_as_earlier_versions_wrote_it() {
        let master = Key::random();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(CLEAN_FILE);
        let stop = |store: Store| {
            stop_cleanly(store, dir.path());
            std::fs::read_to_string(&file).unwrap()
        };
        let written = stop(Store::open(dir.path(), master.clone()).unwrap());
        let (mark, lsn) = written.split_once(' ').unwrap();
        assert!(lsn.parse::<i64>().unwrap() > 0, "{written}");
        std::fs::write(&file, mark).unwrap();
        let store = reopen(dir.path(), &master).unwrap();
        assert!(!file.exists(), "checked and removed");

        // an earlier version's mark that is not the database's still refuses
        stop(store);
        std::fs::write(&file, "0123456789abcdef0123456789abcdef").unwrap();
        let refused = reopen(dir.path(), &master).err().unwrap();
        assert!(
            refused.contains("not the one that was shut down cleanly"),
            "{refused}"
        );
        // a position that is no number is a damaged file, said as such
        std::fs::write(&file, format!("{mark} 12x")).unwrap();
        let refused = reopen(dir.path(), &master).err().unwrap();
        assert!(refused.contains("clean-shutdown is damaged"), "{refused}");
    }

    #[test]
    fn clean_stops_of_every_size_open_strictly() {
        let master = Key::random();
        let dir = tempfile::tempdir().unwrap();
        let mut written: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
        for round in 0..40usize {
            let store =
                reopen(dir.path(), &master).unwrap_or_else(|e| panic!("round {round}: {e}"));
            for (k, v) in &written {
                let got = store.t.docs.get(k).unwrap();
                assert_eq!(got.as_deref(), Some(v.as_slice()), "round {round}: {k}");
            }
            // sizes that end segments anywhere: small values, values near and above
            // sled's blob threshold, a few or many per round, some overwritten
            let count = 1 + round * 37 % 150;
            for i in 0..count {
                let len = [7, 300, 4_000, 20_000, 70_000][(round + i) % 5];
                let key = format!("k{}", (round * 131 + i * 7) % 900);
                let value = crate::crypto::random_hex(len / 2 + 1).into_bytes();
                store.t.docs.insert(&key, value.clone()).unwrap();
                written.insert(key, value);
            }
            if round % 3 == 0 {
                let key = format!("k{}", round * 11 % 900);
                store.t.docs.remove(&key).unwrap();
                written.remove(&key);
            }
            stop_cleanly(store, dir.path());
        }
        let store = reopen(dir.path(), &master).unwrap();
        assert_eq!(store.t.docs.len(), written.len());
    }

    #[test]
    fn a_blob_file_gone_from_a_clean_stop_is_refused() {
        let master = Key::random();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), master.clone()).unwrap();
        // a leaf this large is written as a blob file, referenced from the log
        let big = crate::crypto::random_hex(150_000);
        store.t.docs.insert("big", big.as_bytes()).unwrap();
        stop_cleanly(store, dir.path());
        let newest = std::fs::read_dir(dir.path().join("db/blobs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .max_by_key(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .parse::<u64>()
                    .unwrap()
            })
            .expect("a blob file");
        let kept = std::fs::read(&newest).unwrap();
        std::fs::remove_file(&newest).unwrap();
        refused_untouched(dir.path(), &master, "is gone");

        // the refusal kept everything: with the file back the database is whole
        std::fs::write(&newest, kept).unwrap();
        let store = reopen(dir.path(), &master).unwrap();
        assert_eq!(
            store.t.docs.get("big").unwrap().as_deref(),
            Some(big.as_bytes())
        );
    }

    #[test]
    fn a_damaged_segment_header_of_a_clean_stop_is_refused() {
        let master = Key::random();
        let dir = tempfile::tempdir().unwrap();
        stopped_cleanly_over_segments(dir.path(), &master);
        // the first segment's header (its LSN): the segment would be left out of recovery
        let lid = segments_in_log_order(dir.path())[0].1;
        flip(&dir.path().join("db/db"), lid + 6);
        refused_until_the_clean_file_goes(dir.path(), &master, &format!("at byte {lid} "));
    }

    /// The vendored sled walks a scanned leaf by position (`Iter::next_idx`): scans over
    /// many leaves must still give every key in range once, in order, both ways and mixed,
    /// and see writes made between steps as a fresh scan would once past the leaf at hand.
    #[test]
    fn sled_scans_walk_every_key_once_in_order() {
        use rand::{Rng, SeedableRng};
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let db = sled::Config::new().temporary(true).open().unwrap();
        let mut model = std::collections::BTreeMap::new();
        for i in 0..20_000u32 {
            // shared prefixes of several lengths, so leaves prefix-encode their keys
            let key = format!(
                "{}/{:05}/{}",
                ["a", "ab", "abc"][i as usize % 3],
                i % 977,
                i
            )
            .into_bytes();
            let value = vec![(i % 251) as u8; rng.gen_range(0..64)];
            db.insert(&key, value.clone()).unwrap();
            model.insert(key, value);
        }
        let keys: Vec<Vec<u8>> = model.keys().cloned().collect();
        let pick = |rng: &mut rand::rngs::StdRng| keys[rng.gen_range(0..keys.len())].clone();
        for round in 0..60 {
            let (a, b) = (pick(&mut rng), pick(&mut rng));
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let lo = [Included(lo.clone()), Excluded(lo), Unbounded][round % 3].clone();
            let hi = [Excluded(hi.clone()), Unbounded, Included(hi)][round / 3 % 3].clone();
            let want: Vec<_> = model.range((lo.clone(), hi.clone())).collect();
            let range = || db.range::<Vec<u8>, _>((lo.clone(), hi.clone()));
            let forward: Vec<_> = range().map(|r| r.unwrap()).collect();
            assert_eq!(forward.len(), want.len(), "round {round}");
            for ((k, v), (wk, wv)) in forward.iter().zip(&want) {
                assert_eq!((&k[..], &v[..]), (&wk[..], &wv[..]), "round {round}");
            }
            let backward: Vec<_> = range().rev().map(|r| r.unwrap().0).collect();
            assert!(
                backward
                    .iter()
                    .rev()
                    .map(|k| &k[..])
                    .eq(want.iter().map(|w| &w.0[..]))
            );
            // alternating ends meet in the middle, every key once
            let mut both = range();
            let (mut front, mut back): (Vec<sled::IVec>, Vec<sled::IVec>) = (vec![], vec![]);
            loop {
                let (end, step) = if rng.gen_bool(0.5) {
                    (&mut front, both.next())
                } else {
                    (&mut back, both.next_back())
                };
                match step {
                    Some(r) => end.push(r.unwrap().0),
                    None => break,
                }
                assert!(front.len() + back.len() <= want.len(), "round {round}");
            }
            front.extend(back.into_iter().rev());
            assert!(
                front
                    .iter()
                    .map(|k| &k[..])
                    .eq(want.iter().map(|w| &w.0[..])),
                "round {round}"
            );
        }
        // writes between steps: what is behind the scan is never seen again, and a key
        // inserted ahead of it, beyond the leaf at hand, is found
        let mut scan = db.iter();
        let first = scan.next().unwrap().unwrap().0;
        db.remove(&first).unwrap();
        db.insert(b"zzz-late", b"x".as_slice()).unwrap();
        let rest: Vec<_> = scan.map(|r| r.unwrap().0).collect();
        assert!(!rest.contains(&first));
        assert_eq!(rest.last().map(|k| &k[..]), Some(&b"zzz-late"[..]));
        assert_eq!(rest.len(), keys.len());
    }
}
