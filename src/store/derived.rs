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

/// Entries kept at most; the cache starts over when full (records polled at once are few).
const MAX_ENTRIES: usize = 1024;

pub struct DerivedCache<T> {
    entries: RwLock<HashMap<Vec<u8>, Entry<T>>>,
}

struct Entry<T> {
    stored: sled::IVec,
    value: Arc<T>,
}

impl<T> Default for DerivedCache<T> {
    fn default() -> Self {
        DerivedCache {
            entries: RwLock::new(HashMap::new()),
        }
    }
}

impl<T> DerivedCache<T> {
    fn get(&self, key: &[u8], stored: &[u8]) -> Option<Arc<T>> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let e = entries.get(key)?;
        (e.stored == stored).then(|| e.value.clone())
    }

    fn put(&self, key: Vec<u8>, stored: sled::IVec, value: Arc<T>) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, Entry { stored, value });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.read().unwrap().len()
    }
}

impl Store {
    /// What `derive` makes of export `id` of `org` (`None` if there is no such record), from
    /// `cache` while the stored record is the one it was made from.
    pub fn derive_export<T>(
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

    #[test]
    fn serves_the_cached_value_only_while_the_record_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Key::random()).unwrap();
        let cache = DerivedCache::default();
        let rec = record(&store, "acme");
        store.create_export(&rec, None).unwrap();

        let derived = Cell::new(0);
        let counted = |r: ExportRecord| {
            derived.set(derived.get() + 1);
            Ok(r.label)
        };
        let a = store
            .derive_export(&cache, "acme", rec.id, counted)
            .unwrap();
        let b = store
            .derive_export(&cache, "acme", rec.id, counted)
            .unwrap();
        assert_eq!(a.as_deref().map(String::as_str), Some("x"));
        assert_eq!(b, a);
        assert_eq!(derived.get(), 1, "the second read is a hit");

        for (n, label_now) in ["second", "third"].into_iter().enumerate() {
            store
                .update_export("acme", rec.id, |r| {
                    r.label = label_now.into();
                    r.state = State::Running;
                    Ok(())
                })
                .unwrap();
            let got = store
                .derive_export(&cache, "acme", rec.id, counted)
                .unwrap();
            assert_eq!(got.as_deref().map(String::as_str), Some(label_now));
            assert_eq!(derived.get(), n + 2, "each rewrite is derived again");
        }
        // rewritten unchanged: sealed afresh, so derived again, to the same value
        store.update_export("acme", rec.id, |_| Ok(())).unwrap();
        assert_eq!(
            label(&store, &cache, "acme", rec.id).as_deref(),
            Some("third")
        );

        store.delete_export("acme", rec.id).unwrap();
        assert_eq!(label(&store, &cache, "acme", rec.id), None);
    }

    #[test]
    fn orgs_are_kept_apart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Key::random()).unwrap();
        let cache = DerivedCache::default();
        let rec = record(&store, "acme");
        store.create_export(&rec, None).unwrap();
        assert_eq!(label(&store, &cache, "acme", rec.id).as_deref(), Some("x"));
        // the same id under another org is another record (here: none)
        assert_eq!(label(&store, &cache, "acm", rec.id), None);
        assert_eq!(label(&store, &cache, "other", rec.id), None);
    }

    #[test]
    fn the_cache_starts_over_when_full() {
        let cache = DerivedCache::default();
        for n in 0..MAX_ENTRIES as u32 + 5 {
            let key = n.to_be_bytes().to_vec();
            cache.put(key.clone(), sled::IVec::from(&key[..]), Arc::new(n));
            assert_eq!(cache.get(&key, &key).as_deref(), Some(&n));
            assert!(cache.len() <= MAX_ENTRIES);
        }
        assert_eq!(cache.len(), 5);
        assert_eq!(cache.get(&0u32.to_be_bytes(), &0u32.to_be_bytes()), None);
        // an entry answers only for the bytes it was made from
        let last = (MAX_ENTRIES as u32 + 4).to_be_bytes();
        assert_eq!(cache.get(&last, b"other"), None);
    }
}
