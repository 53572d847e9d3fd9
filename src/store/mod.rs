//! The embedded store: one sled database holding every record and encrypted blob.
//! sled is only touched from blocking threads: async callers go through [`blocking`].
//! Keys are big-endian / separator-joined so that prefix scans come out ordered.

pub mod blobs;
pub mod check;
pub mod codec;
pub mod data;
pub mod exports;
pub mod identity;

use crate::crypto::Key;
use crate::fault::{Fault, Result};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

pub use blobs::{BlobKind, BlobMeta, BlobWriter};

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

pub struct Inner {
    pub db: sled::Db,
    pub t: Trees,
    pub master: Key,
    org_keys: RwLock<HashMap<String, Key>>,
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

/// Default size of sled's page cache, MiB (`--cache-mb`).
pub const DEFAULT_CACHE_MB: u64 = 64;

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
        let db = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(cache_mb.max(1) * 1024 * 1024)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => format!(
                    "data dir {} is in use by another exportd process",
                    dir.display()
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
        match t.meta.get(KEY_CHECK).map_err(|e| e.to_string())? {
            Some(sealed) => {
                master.open(KEY_CHECK, &sealed).map_err(|_| {
                    format!(
                        "the master key does not match the data in {}",
                        dir.display()
                    )
                })?;
            }
            None => {
                t.meta
                    .insert(KEY_CHECK, master.seal(KEY_CHECK, b"exportd"))
                    .map_err(|e| e.to_string())?;
                db.flush().map_err(|e| e.to_string())?;
            }
        }
        Ok(Store(Arc::new(Inner {
            db,
            t,
            master,
            org_keys: RwLock::new(HashMap::new()),
        })))
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
