//! Encrypted scratch files for an export's second pass (CSV rows, the list of files to zip).
//!
//! A spill lives only as long as the export that writes it, so it stays out of sled: written
//! through sled, every spilled byte went through the log and the page cache (a 1M-row CSV
//! spill raised the server's peak memory by ~100 MiB and left that much log garbage). Here
//! it is a file in `<data-dir>/tmp`, unlinked as soon as it is created (a crash leaves
//! nothing behind), sealed in STREAM segments with a key that exists only in memory, so its
//! bytes are unreadable at rest and any change to them is a fault when read back.

use super::Store;
use crate::crypto::{Key, SEGMENT_LEN, STREAM_PREFIX_LEN, TAG_LEN, random_hex, random_prefix};
use crate::fault::{Fault, Result};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const AAD: &[u8] = b"exportd.spill.v1";

/// Where spills are made, under the data directory.
pub(crate) const SPILL_DIR: &str = "tmp";

/// Removes spill files a crash left behind (only on systems that keep an unlinked file's
/// name, or if the crash came between creating and unlinking).
pub(crate) fn clear_spill_dir(dir: &Path) -> std::io::Result<()> {
    let spills = dir.join(SPILL_DIR);
    std::fs::create_dir_all(&spills)?;
    for entry in std::fs::read_dir(&spills)? {
        let path = entry?.path();
        if path.is_file() {
            std::fs::remove_file(path)?;
        }
    }
    Ok(())
}

/// Writes a spill; [`SpillWriter::into_reader`] turns it into its reader.
pub struct SpillWriter {
    store: Store,
    file: File,
    /// Set only where the file could not be unlinked while open; removed on drop.
    unlink: Option<Unlink>,
    key: Key,
    prefix: [u8; STREAM_PREFIX_LEN],
    buf: Vec<u8>,
    segments: u32,
}

impl Store {
    /// A new, empty spill.
    pub fn spill(&self) -> Result<SpillWriter> {
        let path = self
            .dir
            .join(SPILL_DIR)
            .join(format!("spill-{}", random_hex(12)));
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(&path)
            .map_err(|e| Fault::from_io("cannot create a spill file", e))?;
        let unlink = std::fs::remove_file(&path).err().map(|_| Unlink(path));
        Ok(SpillWriter {
            store: self.clone(),
            file,
            unlink,
            key: Key::random(),
            prefix: random_prefix(),
            buf: Vec::with_capacity(SEGMENT_LEN),
            segments: 0,
        })
    }
}

impl SpillWriter {
    fn seal(&mut self, last: bool) -> Result<()> {
        let sealed = self
            .key
            .seal_segment(&self.prefix, self.segments, last, AAD, &self.buf);
        self.store.blob_write_fault.charge(sealed.len())?;
        let len = u32::try_from(sealed.len()).expect("a sealed segment is under 4 GiB");
        self.file
            .write_all(&len.to_le_bytes())
            .and_then(|_| self.file.write_all(&sealed))
            .map_err(|e| Fault::from_io("writing a spill failed", e))?;
        self.segments += 1;
        self.buf.clear();
        Ok(())
    }

    /// Seals the last segment and rewinds: the spill's bytes, in order.
    pub fn into_reader(mut self) -> Result<SpillReader> {
        self.seal(true)?;
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(|e| Fault::from_io("rewinding a spill failed", e))?;
        Ok(SpillReader {
            file: BufReader::with_capacity(SEGMENT_LEN + TAG_LEN + 4, self.file),
            key: self.key,
            prefix: self.prefix,
            segments: self.segments,
            next: 0,
            buf: Vec::new(),
            pos: 0,
            _unlink: self.unlink,
        })
    }
}

impl Write for SpillWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() == SEGMENT_LEN {
            // the fault rides inside the io error so the export reports it as it is
            self.seal(false).map_err(std::io::Error::other)?;
        }
        let n = (SEGMENT_LEN - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Removes a spill file that could not be unlinked while open.
struct Unlink(PathBuf);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Reads a spill back in order; a changed, reordered, cut or extended spill is a fault.
pub struct SpillReader {
    file: BufReader<File>,
    key: Key,
    prefix: [u8; STREAM_PREFIX_LEN],
    segments: u32,
    next: u32,
    buf: Vec<u8>,
    pos: usize,
    _unlink: Option<Unlink>,
}

impl SpillReader {
    fn next_segment(&mut self) -> Result<()> {
        let tampered = crate::crypto::tampered;
        let io = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => tampered(),
            _ => Fault::from_io("reading a spill failed", e),
        };
        let mut len = [0u8; 4];
        self.file.read_exact(&mut len).map_err(io)?;
        let len = u32::from_le_bytes(len) as usize;
        if len > SEGMENT_LEN + TAG_LEN {
            return Err(tampered());
        }
        let mut sealed = vec![0u8; len];
        self.file.read_exact(&mut sealed).map_err(io)?;
        let last = self.next + 1 == self.segments;
        self.buf = self
            .key
            .open_segment(&self.prefix, self.next, last, AAD, &sealed)?;
        self.next += 1;
        self.pos = 0;
        if last && self.file.read(&mut [0u8; 1]).map_err(io)? != 0 {
            return Err(tampered());
        }
        Ok(())
    }
}

impl Read for SpillReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.next == self.segments {
                return Ok(0);
            }
            self.next_segment().map_err(std::io::Error::other)?;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Key::random()).unwrap();
        (dir, store)
    }

    fn spilled(store: &Store, data: &[u8]) -> SpillReader {
        let mut w = store.spill().unwrap();
        for chunk in data.chunks(7777) {
            w.write_all(chunk).unwrap();
        }
        w.into_reader().unwrap()
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn reads_back_what_was_written_and_leaves_no_file() {
        let (dir, store) = store();
        for len in [0, 1, SEGMENT_LEN, SEGMENT_LEN + 1, 3 * SEGMENT_LEN + 12345] {
            let data = pattern(len);
            let mut back = Vec::new();
            spilled(&store, &data).read_to_end(&mut back).unwrap();
            assert_eq!(back, data, "length {len}");
        }
        let left: Vec<_> = std::fs::read_dir(dir.path().join(SPILL_DIR))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "spill files left behind: {left:?}");
    }

    #[test]
    fn the_file_holds_no_plaintext() {
        let (_dir, store) = store();
        let secret = b"patient-identifier-0042 ".repeat(5000);
        let mut r = spilled(&store, &secret);
        let mut raw = Vec::new();
        r.file.get_mut().read_to_end(&mut raw).unwrap();
        assert!(raw.len() > secret.len());
        assert!(!raw.windows(23).any(|w| w == &secret[..23]));
    }

    type Alteration = Box<dyn Fn(&mut Vec<u8>)>;

    /// Rewrites the spill file under the reader and reads it back.
    fn read_altered(alter: impl Fn(&mut Vec<u8>)) -> std::io::Result<Vec<u8>> {
        let (_dir, store) = store();
        let mut r = spilled(&store, &pattern(2 * SEGMENT_LEN + 500));
        let file = r.file.get_mut();
        let mut raw = Vec::new();
        file.read_to_end(&mut raw).unwrap();
        alter(&mut raw);
        file.set_len(0).unwrap();
        file.seek(SeekFrom::Start(0)).unwrap();
        file.write_all(&raw).unwrap();
        file.seek(SeekFrom::Start(0)).unwrap();
        let mut back = Vec::new();
        r.read_to_end(&mut back).map(|_| back)
    }

    #[test]
    fn a_changed_cut_reordered_or_extended_spill_is_a_fault() {
        assert_eq!(
            read_altered(|_| {}).unwrap(),
            pattern(2 * SEGMENT_LEN + 500)
        );
        let seg = 4 + SEGMENT_LEN + TAG_LEN;
        let alterations: [(&str, Alteration); 6] = [
            ("a flipped byte", Box::new(move |raw| raw[seg + 100] ^= 1)),
            ("a cut at a segment", Box::new(move |raw| raw.truncate(seg))),
            (
                "a cut inside one",
                Box::new(move |raw| raw.truncate(seg + 9)),
            ),
            ("a bigger length", Box::new(|raw| raw[1] = 0xff)),
            (
                "swapped segments",
                Box::new(move |raw| {
                    let (a, b) = raw.split_at_mut(seg);
                    a.swap_with_slice(&mut b[..seg]);
                }),
            ),
            ("a byte appended", Box::new(|raw| raw.push(0))),
        ];
        for (what, alter) in alterations {
            let err = read_altered(alter).expect_err(what);
            let fault = err.get_ref().and_then(|e| e.downcast_ref::<Fault>());
            assert_eq!(
                fault.map(|f| f.err_code.as_str()),
                Some("cortex.error.integrity"),
                "{what}: {err}"
            );
        }
    }

    #[test]
    fn disk_full_is_a_storage_fault() {
        let (_dir, store) = store();
        store.blob_write_fault.fail_after(10);
        let mut w = store.spill().unwrap();
        let err = w.write_all(&pattern(3 * SEGMENT_LEN)).unwrap_err();
        let fault = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<Fault>())
            .unwrap();
        assert_eq!(fault.err_code, "cortex.error.storageFull");
        store.blob_write_fault.clear();
    }

    #[test]
    fn leftovers_are_cleared_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let key = Key::random();
        drop(Store::open(dir.path(), key.clone()).unwrap());
        let stale = dir.path().join(SPILL_DIR).join("spill-stale");
        std::fs::write(&stale, b"x").unwrap();
        let _store = Store::open(dir.path(), key).unwrap();
        assert!(!stale.exists());
    }
}
