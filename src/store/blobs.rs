//! The encrypted blob store: files, archives, side files and spills, each sealed with its own
//! key in 64 KiB STREAM segments (`blobs`: id ‖ segment u32 BE → sealed segment) and described
//! by a `BlobMeta`. The blob key is wrapped by the master key with the blob's size, segment
//! count, nonce prefix and SHA-256 as associated data, so tampering with the metadata, a
//! segment, or the order or number of segments makes reads fail instead of returning bytes.

use super::Store;
use super::codec::{Rec, RecordSeal};
use crate::crypto::{Key, SEGMENT_LEN, STREAM_PREFIX_LEN, random_prefix};
use crate::fault::{Fault, Result};
use crate::model::ids::{ObjectId, now_iso};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, OnceLock};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum BlobKind {
    File,
    Archive,
    SideFile,
    /// Written by earlier versions (spills are now files, see `spill.rs`); reclaimed at start.
    Spill,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum BlobState {
    /// Being written; reclaimed if its writer is gone (crash, failure).
    Writing,
    Complete,
    /// Logically deleted; its segments are being removed.
    Deleting,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BlobMeta {
    pub id: ObjectId,
    pub org: String,
    pub kind: BlobKind,
    pub state: BlobState,
    pub size: u64,
    pub segments: u32,
    pub prefix: Vec<u8>,
    pub sha256: String,
    pub wrapped_key: Vec<u8>,
    pub created: String,
}

impl BlobMeta {
    fn key_aad(&self) -> Vec<u8> {
        let mut a = b"exportd.blob.v1".to_vec();
        a.extend_from_slice(self.id.bytes());
        a.extend_from_slice(self.org.as_bytes());
        a.push(0);
        a.extend_from_slice(&self.size.to_be_bytes());
        a.extend_from_slice(&self.segments.to_be_bytes());
        a.extend_from_slice(&self.prefix);
        a.extend_from_slice(self.sha256.as_bytes());
        a
    }

    /// Plaintext length of segment `i`.
    fn segment_len(&self, i: u32) -> u64 {
        if i + 1 < self.segments {
            SEGMENT_LEN as u64
        } else {
            self.size - (self.segments as u64 - 1) * SEGMENT_LEN as u64
        }
    }
}

/// Fault-injection seam, for tests only: blob segment writes fail as on a full disk
/// (ENOSPC) once a budget of sealed bytes is spent. Off, and one atomic load per 64 KiB
/// segment, unless armed: by `EXPORTD_FAULT_BLOB_WRITE_AFTER_BYTES=N` (read once when the
/// store opens) or by [`WriteFault::fail_after`] from an in-process test.
#[doc(hidden)]
#[derive(Debug)]
pub struct WriteFault(std::sync::atomic::AtomicU64);

impl WriteFault {
    const OFF: u64 = u64::MAX;

    pub(crate) fn from_env() -> WriteFault {
        let budget = std::env::var("EXPORTD_FAULT_BLOB_WRITE_AFTER_BYTES")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(Self::OFF);
        WriteFault(std::sync::atomic::AtomicU64::new(budget))
    }

    /// Segment writes succeed for `bytes` more sealed bytes, then fail until [`clear`].
    ///
    /// [`clear`]: WriteFault::clear
    pub fn fail_after(&self, bytes: u64) {
        self.0.store(bytes.min(Self::OFF - 1), Ordering::SeqCst);
    }

    pub fn clear(&self) {
        self.0.store(Self::OFF, Ordering::SeqCst);
    }

    pub(crate) fn charge(&self, n: usize) -> Result<()> {
        let n = n as u64;
        let left = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                (left != Self::OFF).then(|| left.saturating_sub(n))
            });
        match left {
            Ok(left) if left < n => {
                Err(sled::Error::Io(std::io::Error::from_raw_os_error(libc::ENOSPC)).into())
            }
            _ => Ok(()),
        }
    }
}

fn seg_key(id: ObjectId, i: u32) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..12].copy_from_slice(id.bytes());
    k[12..].copy_from_slice(&i.to_be_bytes());
    k
}

/// Blobs whose writer is alive in this process; the reclaimer leaves them alone.
fn active() -> &'static Mutex<HashSet<ObjectId>> {
    static A: OnceLock<Mutex<HashSet<ObjectId>>> = OnceLock::new();
    A.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Writes one blob; use only on a blocking thread. Dropped without `finish`, it deletes what
/// it wrote.
pub struct BlobWriter {
    store: Store,
    meta: BlobMeta,
    key: Key,
    prefix: [u8; STREAM_PREFIX_LEN],
    buf: Vec<u8>,
    hasher: Sha256,
    max_size: Option<u64>,
    done: bool,
}

impl BlobWriter {
    pub fn id(&self) -> ObjectId {
        self.meta.id
    }

    pub fn size(&self) -> u64 {
        self.meta.size + self.buf.len() as u64
    }

    /// Refuses (with 413) writes past `max` bytes.
    pub fn limit(&mut self, max: u64) {
        self.max_size = Some(max);
    }

    pub fn write_all(&mut self, mut data: &[u8]) -> Result<()> {
        if let Some(max) = self.max_size
            && self.size() + data.len() as u64 > max
        {
            return Err(Fault::too_large(format!(
                "The content is larger than the limit of {max} bytes"
            )));
        }
        while !data.is_empty() {
            if self.buf.len() == SEGMENT_LEN {
                self.seal(false)?;
            }
            let n = (SEGMENT_LEN - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            self.hasher.update(&data[..n]);
            data = &data[n..];
        }
        Ok(())
    }

    fn seal(&mut self, last: bool) -> Result<()> {
        let i = self.meta.segments;
        let sealed = self
            .key
            .seal_segment(&self.prefix, i, last, self.meta.id.bytes(), &self.buf);
        self.store.blob_write_fault.charge(sealed.len())?;
        self.store
            .t
            .blobs
            .insert(seg_key(self.meta.id, i), sealed)?;
        self.meta.segments += 1;
        self.meta.size += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Seals the last segment and returns the completed meta. The blob becomes visible only
    /// when the caller stores that meta (see [`Store::commit_blob`]), typically in the same
    /// transaction as the record that points at it.
    pub fn finish(mut self) -> Result<BlobMeta> {
        self.seal(true)?;
        let mut meta = self.meta.clone();
        meta.sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        meta.state = BlobState::Complete;
        meta.wrapped_key = self.store.master.wrap(&meta.key_aad(), &self.key);
        // stays pinned until the caller commits its meta (or removes it)
        self.done = true;
        Ok(meta)
    }
}

impl std::io::Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // the fault rides inside the io error, so the export can report it as it is
        // (e.g. storageFull) rather than as a generic write failure
        self.write_all(buf).map_err(std::io::Error::other)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.done {
            let id = self.meta.id;
            if let Err(e) = self.store.remove_blob_data(id) {
                tracing::warn!(blob = %id, error = %e, "could not reclaim an abandoned blob; the janitor will");
            }
            active()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        }
    }
}

/// Reads one completed blob by segment (random access).
pub struct BlobReader {
    store: Store,
    pub meta: BlobMeta,
    key: Key,
    prefix: [u8; STREAM_PREFIX_LEN],
}

impl BlobReader {
    pub fn segment(&self, i: u32) -> Result<Vec<u8>> {
        if i >= self.meta.segments {
            return Err(Fault::invalid("range", "Segment out of range"));
        }
        let sealed = self
            .store
            .t
            .blobs
            .get(seg_key(self.meta.id, i))?
            .ok_or_else(crate::crypto::tampered)?;
        let last = i + 1 == self.meta.segments;
        let plain = self
            .key
            .open_segment(&self.prefix, i, last, self.meta.id.bytes(), &sealed)?;
        if plain.len() as u64 != self.meta.segment_len(i) {
            return Err(crate::crypto::tampered());
        }
        Ok(plain)
    }

    /// The bytes `[start, end)` that fall in segment `i`.
    pub fn segment_slice(&self, i: u32, start: u64, end: u64) -> Result<Vec<u8>> {
        let seg = self.segment(i)?;
        let base = i as u64 * SEGMENT_LEN as u64;
        let from = start.saturating_sub(base).min(seg.len() as u64) as usize;
        let to = (end.saturating_sub(base)).min(seg.len() as u64) as usize;
        Ok(seg[from..to.max(from)].to_vec())
    }

    /// Reads the whole blob (tests and small blobs only).
    pub fn read_all(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.meta.size as usize);
        for i in 0..self.meta.segments {
            out.extend_from_slice(&self.segment(i)?);
        }
        Ok(out)
    }
}

impl Store {
    /// Starts a blob for `org`; its meta is stored as `Writing` so a crash leaves a trace
    /// the reclaimer can follow.
    pub fn blob_writer(&self, org: &str, kind: BlobKind) -> Result<BlobWriter> {
        let meta = BlobMeta {
            id: ObjectId::new(),
            org: org.to_string(),
            kind,
            state: BlobState::Writing,
            size: 0,
            segments: 0,
            prefix: Vec::new(),
            sha256: String::new(),
            wrapped_key: Vec::new(),
            created: now_iso(),
        };
        let prefix = random_prefix();
        let mut stored = meta.clone();
        stored.prefix = prefix.to_vec();
        active()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(meta.id);
        self.put_rec(Rec::BlobMeta, meta.id.bytes(), &stored)?;
        Ok(BlobWriter {
            store: self.clone(),
            meta: stored,
            key: Key::random(),
            prefix,
            buf: Vec::with_capacity(SEGMENT_LEN),
            hasher: Sha256::new(),
            max_size: None,
            done: false,
        })
    }

    pub fn blob_meta(&self, id: ObjectId) -> Result<Option<BlobMeta>> {
        self.get_rec(Rec::BlobMeta, id.bytes())
    }

    /// Opens a completed blob of `org` for reading; a missing or foreign blob is a 404.
    pub fn blob_reader(&self, org: &str, id: ObjectId) -> Result<BlobReader> {
        let meta = self
            .blob_meta(id)?
            .filter(|m| m.org == org && m.state == BlobState::Complete)
            .ok_or_else(|| Fault::not_found("file content"))?;
        // the key AAD binds the meta's own id: another blob's meta stored under this id
        // would otherwise open (and serve that blob)
        if meta.id != id {
            return Err(crate::crypto::tampered());
        }
        let key = self.master.unwrap_key(&meta.key_aad(), &meta.wrapped_key)?;
        let prefix: [u8; STREAM_PREFIX_LEN] = meta
            .prefix
            .as_slice()
            .try_into()
            .map_err(|_| crate::crypto::tampered())?;
        Ok(BlobReader {
            store: self.clone(),
            meta,
            key,
            prefix,
        })
    }

    /// Stores a finished blob's meta outside any other transaction.
    /// The blob stays pinned: the caller unpins it when done with it.
    pub fn commit_blob(&self, meta: &BlobMeta) -> Result<()> {
        self.put_rec(Rec::BlobMeta, meta.id.bytes(), meta)?;
        Ok(())
    }

    /// Removes a blob's segments and meta (the caller has already released its usage).
    pub fn remove_blob_data(&self, id: ObjectId) -> Result<()> {
        let mut batch = sled::Batch::default();
        for k in self.t.blobs.scan_prefix(id.bytes()).keys() {
            batch.remove(k?);
        }
        self.t.blobs.apply_batch(batch)?;
        self.t.blob_meta.remove(id.bytes())?;
        self.unpin_blob(id);
        Ok(())
    }

    /// Reclaims blobs left `Writing` by a dead writer or `Deleting` by an interrupted
    /// delete, and segments without any meta. Returns how many blobs were reclaimed.
    pub fn reclaim_blobs(&self) -> Result<usize> {
        let live = active().lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut doomed = Vec::new();
        for r in self.t.blob_meta.iter() {
            let (k, v) = r?;
            // a damaged meta is left alone (its reads fail): it must not stop the start
            let Ok(m) = self.records.open::<BlobMeta>(Rec::BlobMeta, &k, &v) else {
                tracing::error!(blob = %hex::encode(&k), "a blob meta is unreadable; left as it is");
                continue;
            };
            // spills never outlive their run
            let dead = m.state != BlobState::Complete || m.kind == BlobKind::Spill;
            if dead && !live.contains(&m.id) {
                doomed.push(m.id);
            }
        }
        // segments whose meta is gone: a skip scan reads one key per blob, never the
        // segments themselves (a full scan would pull every blob through the page cache)
        let mut from: Vec<u8> = Vec::new();
        while let Some(r) = self.t.blobs.range(from.as_slice()..).next() {
            let (k, _) = r?;
            let Ok(id) = <[u8; 12]>::try_from(&k[..12.min(k.len())]) else {
                from = k.to_vec();
                from.push(0);
                continue;
            };
            let oid = ObjectId(id);
            if !live.contains(&oid) && self.t.blob_meta.get(id)?.is_none() && !doomed.contains(&oid)
            {
                doomed.push(oid);
            }
            match next_prefix(&id) {
                Some(next) => from = next,
                None => break,
            }
        }
        for id in &doomed {
            self.remove_blob_data(*id)?;
        }
        Ok(doomed.len())
    }

    /// Every blob meta, for checks and recounts.
    pub fn all_blob_metas(&self) -> Result<Vec<BlobMeta>> {
        self.scan_rec(Rec::BlobMeta, b"")
    }
}

/// The smallest key greater than every key starting with `prefix` (None: there is none).
fn next_prefix(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < u8::MAX {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

/// Marks a blob as being deleted inside a transaction over `blob_meta`.
pub fn mark_deleting(
    rs: &RecordSeal,
    tx: &sled::transaction::TransactionalTree,
    id: ObjectId,
) -> std::result::Result<(), sled::transaction::ConflictableTransactionError<Fault>> {
    if let Some(mut m) = rs.tx_get::<BlobMeta>(Rec::BlobMeta, tx, id.bytes())? {
        m.state = BlobState::Deleting;
        rs.tx_put(Rec::BlobMeta, tx, id.bytes(), &m)?;
    }
    Ok(())
}

impl Store {
    /// Lets the reclaimer have a blob whose writer finished (its meta is now committed,
    /// or it is being removed).
    pub fn unpin_blob(&self, id: ObjectId) {
        active()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
}

impl Store {
    /// Copies a completed blob of `org` into a new blob (new key), segment by segment. The
    /// copy is returned finished but not yet committed (see `BlobWriter::finish`).
    pub fn copy_blob(&self, org: &str, src: ObjectId, kind: BlobKind) -> Result<BlobMeta> {
        let reader = self.blob_reader(org, src)?;
        let mut w = self.blob_writer(org, kind)?;
        for i in 0..reader.meta.segments {
            w.write_all(&reader.segment(i)?)?;
        }
        w.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::next_prefix;

    #[test]
    fn next_prefix_skips_every_key_under_the_prefix() {
        assert_eq!(next_prefix(&[1, 2, 3]), Some(vec![1, 2, 4]));
        assert_eq!(next_prefix(&[1, 0xff]), Some(vec![2]));
        assert_eq!(next_prefix(&[0xff, 0xff]), None);
        let id = [7u8; 12];
        let next = next_prefix(&id).unwrap();
        let mut seg = id.to_vec();
        seg.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(seg.as_slice() < next.as_slice() && id.as_slice() < next.as_slice());
    }
}
