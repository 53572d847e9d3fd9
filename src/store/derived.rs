//! Values derived from sealed records (an export's rendered API form), cached against the
//! exact bytes stored. `GET` of one export is the hot request, polled while jobs run, and
//! opening and decoding its record was ~19% of the server's CPU. A hit costs the point read
//! and a byte comparison. A record rewritten since is sealed afresh (new nonce), so its bytes
//! differ and the stale entry is never served; equal bytes under one key are the same record.

use super::Store;
use super::codec::Rec;
use super::exports::export_key;
use crate::export::record::ExportRecord;
use crate::fault::Result;
use crate::model::ids::ObjectId;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Bytes kept at most, stored records and derived values counted: records can be large
/// (an `afterScript`, long lists), and a cache of a thousand of them must not hold 100 MiB.
/// The cache starts over when a new entry would not fit.
const MAX_BYTES: usize = 4 << 20;
/// An entry larger than this is derived on every read, not kept.
const MAX_ENTRY_BYTES: usize = 64 << 10;

/// What a derived value occupies, for the cache's byte bound.
pub trait Weight {
    fn weight(&self) -> usize;
}

pub struct DerivedCache<T> {
    inner: RwLock<Inner<T>>,
}

struct Inner<T> {
    entries: HashMap<Vec<u8>, Entry<T>>,
    bytes: usize,
}

struct Entry<T> {
    stored: sled::IVec,
    value: Arc<T>,
    bytes: usize,
}

impl<T> Default for DerivedCache<T> {
    fn default() -> Self {
        DerivedCache {
            inner: RwLock::new(Inner {
                entries: HashMap::new(),
                bytes: 0,
            }),
        }
    }
}

impl<T: Weight> DerivedCache<T> {
    fn get(&self, key: &[u8], stored: &[u8]) -> Option<Arc<T>> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let e = inner.entries.get(key)?;
        (e.stored == stored).then(|| e.value.clone())
    }

    fn put(&self, key: Vec<u8>, stored: sled::IVec, value: Arc<T>) {
        let bytes = key.len() + stored.len() + value.weight();
        if bytes > MAX_ENTRY_BYTES {
            return;
        }
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        // a newer version of a record replaces the older one in place
        if let Some(old) = inner.entries.remove(&key) {
            inner.bytes -= old.bytes;
        }
        if inner.bytes + bytes > MAX_BYTES {
            inner.entries.clear();
            inner.bytes = 0;
        }
        inner.bytes += bytes;
        inner.entries.insert(
            key,
            Entry {
                stored,
                value,
                bytes,
            },
        );
    }

    #[cfg(test)]
    fn len_and_bytes(&self) -> (usize, usize) {
        let inner = self.inner.read().unwrap();
        (inner.entries.len(), inner.bytes)
    }
}

impl Store {
    /// What `derive` makes of export `id` of `org` (`None` if there is no such record), from
    /// `cache` while the stored record is the one it was made from.
    pub fn derive_export<T: Weight>(
        &self,
        cache: &DerivedCache<T>,
        org: &str,
        id: ObjectId,
        derive: impl FnOnce(ExportRecord) -> Result<T>,
    ) -> Result<Option<Arc<T>>> {
        let key = export_key(org, id);
        let Some(stored) = self.t.exports.get(&key)? else {
            return Ok(None);
        };
        if let Some(hit) = cache.get(&key, &stored) {
            return Ok(Some(hit));
        }
        let value = Arc::new(derive(self.records.open(Rec::Exports, &key, &stored)?)?);
        cache.put(key, stored, value.clone());
        Ok(Some(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Key;
    use crate::export::record::State;
    use crate::store::exports::tests::record;
    use std::cell::Cell;

    fn label(
        store: &Store,
        cache: &DerivedCache<String>,
        org: &str,
        id: ObjectId,
    ) -> Option<String> {
        let got = store
            .derive_export(cache, org, id, |r| Ok(r.label))
            .unwrap();
        got.map(|s| s.to_string())
    }

    /// A store holding one pending export of `acme`, labelled "x".
    fn store_with_export() -> (tempfile::TempDir, Store, ExportRecord) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Key::random()).unwrap();
        let rec = record(&store, "acme");
        store.create_export(&rec, None).unwrap();
        (dir, store, rec)
    }

    #[test]
    fn serves_the_cached_value_only_while_the_record_is_unchanged() {
        let (_dir, store, rec) = store_with_export();
        let cache = DerivedCache::default();
        let derived = Cell::new(0);
        let read = || {
            let got = store.derive_export(&cache, "acme", rec.id, |r: ExportRecord| {
                derived.set(derived.get() + 1);
                Ok(r.label)
            });
            got.unwrap().map(|s| s.to_string())
        };
        assert_eq!(read().as_deref(), Some("x"));
        assert_eq!(read().as_deref(), Some("x"));
        assert_eq!(derived.get(), 1, "the second read is a hit");

        for (n, label_now) in ["second", "third"].into_iter().enumerate() {
            store
                .update_export("acme", rec.id, |r| {
                    r.label = label_now.into();
                    r.state = State::Running;
                    Ok(())
                })
                .unwrap();
            assert_eq!(read().as_deref(), Some(label_now));
            assert_eq!(derived.get(), n + 2, "each rewrite is derived again");
        }
        // rewritten unchanged: sealed afresh, so derived again, to the same value
        store.update_export("acme", rec.id, |_| Ok(())).unwrap();
        assert_eq!(read().as_deref(), Some("third"));
        assert_eq!(derived.get(), 4);

        store.delete_export("acme", rec.id).unwrap();
        assert_eq!(read(), None);
    }

    #[test]
    fn orgs_are_kept_apart() {
        let (_dir, store, rec) = store_with_export();
        let cache = DerivedCache::default();
        // the same id under another org is another record
        let mut theirs = record(&store, "other");
        (theirs.id, theirs.label) = (rec.id, "theirs".into());
        store.create_export(&theirs, None).unwrap();
        for _ in 0..2 {
            assert_eq!(label(&store, &cache, "acme", rec.id).as_deref(), Some("x"));
            assert_eq!(
                label(&store, &cache, "other", rec.id).as_deref(),
                Some("theirs")
            );
            assert_eq!(label(&store, &cache, "acm", rec.id), None);
        }
    }

    impl Weight for u32 {
        fn weight(&self) -> usize {
            *self as usize
        }
    }

    impl Weight for String {
        fn weight(&self) -> usize {
            self.len()
        }
    }

    fn put(cache: &DerivedCache<u32>, n: u32, weight: u32) {
        let key = n.to_be_bytes().to_vec();
        cache.put(key.clone(), sled::IVec::from(&key[..]), Arc::new(weight));
    }

    fn hit(cache: &DerivedCache<u32>, n: u32) -> Option<u32> {
        let key = n.to_be_bytes();
        cache.get(&key, &key).as_deref().copied()
    }

    #[test]
    fn the_cache_keeps_to_its_byte_bound() {
        let cache = DerivedCache::default();
        let weight = 1000; // + 8 bytes of key and stored value
        let fit = MAX_BYTES / (weight as usize + 8);
        for n in 0..fit as u32 {
            put(&cache, n, weight);
            assert_eq!(hit(&cache, n), Some(weight));
        }
        assert_eq!(cache.len_and_bytes(), (fit, fit * 1008));
        // replacing an entry keeps the others, and counts the new size only
        put(&cache, 0, weight - 100);
        assert_eq!(cache.len_and_bytes(), (fit, fit * 1008 - 100));
        assert_eq!(hit(&cache, 1), Some(weight));
        // a new one that does not fit starts the cache over
        put(&cache, fit as u32, weight);
        assert_eq!(cache.len_and_bytes(), (1, 1008));
        assert_eq!(hit(&cache, 1), None);
        assert_eq!(hit(&cache, fit as u32), Some(weight));
        // an entry above the per-entry bound is not kept, and leaves the others
        put(&cache, 7, MAX_ENTRY_BYTES as u32);
        assert_eq!(hit(&cache, 7), None);
        assert_eq!(cache.len_and_bytes(), (1, 1008));
        // an entry answers only for the bytes it was made from
        let key = (fit as u32).to_be_bytes();
        assert_eq!(cache.get(&key, b"other"), None);
    }
}
