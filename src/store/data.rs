//! Object definitions, sealed documents, file facets and the usage counters.

use super::blobs::{BlobMeta, mark_deleting};
use super::codec::{Rec, RecordSeal, decode, encode};
use super::{Store, key, prefix};
use crate::fault::{Fault, Result};
use crate::model::document::{RefCheck, StoredDoc};
use crate::model::ids::ObjectId;
use crate::model::org::Usage;
use crate::model::schema::ObjectDef;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError as Tx, TransactionalTree};

/// The org's usage counters, read inside a transaction.
pub(crate) fn tx_usage(
    rs: &RecordSeal,
    usage: &TransactionalTree,
    org: &str,
) -> std::result::Result<Usage, Tx<Fault>> {
    Ok(rs
        .tx_get(Rec::Usage, usage, org.as_bytes())?
        .unwrap_or_default())
}

pub fn doc_key(org: &str, object: &str, id: ObjectId) -> Vec<u8> {
    key(&[org.as_bytes(), object.as_bytes(), id.bytes()])
}

impl Store {
    // ---- object definitions ----

    pub fn list_objects(&self, org: &str) -> Result<Vec<ObjectDef>> {
        self.scan_rec(Rec::Objects, &prefix(&[org.as_bytes()]))
    }

    /// Finds a definition by name or plural name.
    pub fn find_object(&self, org: &str, name: &str) -> Result<Option<ObjectDef>> {
        if let Some(def) = self.get_rec(Rec::Objects, &key(&[org.as_bytes(), name.as_bytes()]))? {
            return Ok(Some(def));
        }
        Ok(self
            .list_objects(org)?
            .into_iter()
            .find(|o| o.plural_name == name))
    }

    pub fn put_object(&self, org: &str, def: &ObjectDef) -> Result<()> {
        self.put_rec(
            Rec::Objects,
            &key(&[org.as_bytes(), def.name.as_bytes()]),
            def,
        )?;
        self.flush()
    }

    // ---- documents ----

    fn seal_doc(&self, org: &str, object: &str, doc: &StoredDoc) -> Result<(Vec<u8>, Vec<u8>)> {
        let k = doc_key(org, object, doc.id);
        let sealed = self.org_key(org)?.seal(&k, &encode(doc));
        Ok((k, sealed))
    }

    pub fn open_doc(&self, org: &str, k: &[u8], sealed: &[u8]) -> Result<StoredDoc> {
        decode(&self.org_key(org)?.open(k, sealed)?)
    }

    pub fn get_doc(&self, org: &str, object: &str, id: ObjectId) -> Result<Option<StoredDoc>> {
        let k = doc_key(org, object, id);
        match self.t.docs.get(&k)? {
            Some(v) => self.open_doc(org, &k, &v).map(Some),
            None => Ok(None),
        }
    }

    pub fn doc_exists(&self, org: &str, object: &str, id: ObjectId) -> Result<bool> {
        Ok(self.t.docs.contains_key(doc_key(org, object, id))?)
    }

    /// Inserts new documents and counts them, in one transaction. Not flushed: callers flush
    /// once per acknowledged request.
    pub fn insert_docs(&self, org: &str, object: &str, docs: &[StoredDoc]) -> Result<()> {
        let sealed: Vec<(Vec<u8>, Vec<u8>)> = docs
            .iter()
            .map(|d| self.seal_doc(org, object, d))
            .collect::<Result<_>>()?;
        let res = (&self.t.docs, &self.t.usage).transaction(|(dt, ut)| {
            for (k, v) in &sealed {
                dt.insert(k.as_slice(), v.as_slice())?;
            }
            let mut u = tx_usage(&self.records, ut, org)?;
            *u.docs.entry(object.to_string()).or_default() += sealed.len() as u64;
            self.records.tx_put(Rec::Usage, ut, org.as_bytes(), &u)?;
            Ok(())
        });
        res?;
        Ok(())
    }

    /// Replaces a document's value; blobs the update dropped are released and reclaimed.
    pub fn update_doc(
        &self,
        org: &str,
        object: &str,
        doc: &StoredDoc,
        dropped: &[ObjectId],
    ) -> Result<()> {
        let (k, v) = self.seal_doc(org, object, doc)?;
        let drop_metas = self.metas(dropped)?;
        let res = (&self.t.docs, &self.t.usage, &self.t.blob_meta).transaction(|(dt, ut, bt)| {
            if dt.get(&k)?.is_none() {
                return Err(Tx::Abort(Fault::not_found("document")));
            }
            dt.insert(k.as_slice(), v.as_slice())?;
            release_files(&self.records, ut, bt, org, &drop_metas)?;
            Ok(())
        });
        res?;
        self.finish_deletes(dropped)?;
        self.flush()
    }

    /// Deletes a document, releasing its files.
    pub fn delete_doc(
        &self,
        org: &str,
        object: &str,
        id: ObjectId,
        blobs: &[ObjectId],
    ) -> Result<()> {
        let k = doc_key(org, object, id);
        let drop_metas = self.metas(blobs)?;
        let res = (&self.t.docs, &self.t.usage, &self.t.blob_meta).transaction(|(dt, ut, bt)| {
            if dt.remove(k.as_slice())?.is_none() {
                return Err(Tx::Abort(Fault::not_found("document")));
            }
            release_files(&self.records, ut, bt, org, &drop_metas)?;
            let mut u = tx_usage(&self.records, ut, org)?;
            if let Some(n) = u.docs.get_mut(object) {
                *n = n.saturating_sub(1);
            }
            self.records.tx_put(Rec::Usage, ut, org.as_bytes(), &u)?;
            Ok(())
        });
        res?;
        self.finish_deletes(blobs)?;
        self.flush()
    }

    fn metas(&self, ids: &[ObjectId]) -> Result<Vec<BlobMeta>> {
        Ok(ids
            .iter()
            .map(|id| self.blob_meta(*id))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect())
    }

    fn finish_deletes(&self, ids: &[ObjectId]) -> Result<()> {
        for id in ids {
            self.remove_blob_data(*id)?;
        }
        Ok(())
    }

    /// The largest document id of `object` now: an export takes the documents up to it.
    /// (Comparing with a freshly made id would not do: ids made by different processes in
    /// the same second are not ordered.)
    pub fn last_doc_id(&self, org: &str, object: &str) -> Result<Option<ObjectId>> {
        match self
            .t
            .docs
            .scan_prefix(prefix(&[org.as_bytes(), object.as_bytes()]))
            .keys()
            .next_back()
        {
            Some(k) => {
                let k = k?;
                Ok(ObjectId::from_slice(&k[k.len() - 12..]))
            }
            None => Ok(None),
        }
    }

    // ---- files ----

    /// Stores an uploaded file: the document gets `doc` (with the new facet), the blob meta
    /// becomes visible, usage grows, and `replaced` (if any) is released — all at once. The
    /// storage limit is checked inside the transaction.
    pub fn attach_file(
        &self,
        org: &str,
        object: &str,
        doc: &StoredDoc,
        blob: &BlobMeta,
        replaced: Option<ObjectId>,
        limit: Option<u64>,
    ) -> Result<()> {
        let (k, v) = self.seal_doc(org, object, doc)?;
        let drop_metas = self.metas(&replaced.into_iter().collect::<Vec<_>>())?;
        let bv = self.records.seal(Rec::BlobMeta, blob.id.bytes(), blob);
        let res = (&self.t.docs, &self.t.usage, &self.t.blob_meta).transaction(|(dt, ut, bt)| {
            if dt.get(&k)?.is_none() {
                return Err(Tx::Abort(Fault::not_found("document")));
            }
            release_files(&self.records, ut, bt, org, &drop_metas)?;
            let mut u = tx_usage(&self.records, ut, org)?;
            if limit.is_some_and(|l| u.used() + blob.size > l) {
                return Err(Tx::Abort(Fault::storage_limit()));
            }
            u.files_bytes += blob.size;
            u.files_count += 1;
            self.records.tx_put(Rec::Usage, ut, org.as_bytes(), &u)?;
            dt.insert(k.as_slice(), v.as_slice())?;
            bt.insert(blob.id.bytes().as_slice(), bv.as_slice())?;
            Ok(())
        });
        res?;
        self.unpin_blob(blob.id);
        self.finish_deletes(&replaced.into_iter().collect::<Vec<_>>())?;
        self.flush()
    }

    pub fn usage(&self, org: &str) -> Result<Usage> {
        Ok(self
            .get_rec(Rec::Usage, org.as_bytes())?
            .unwrap_or_default())
    }
}

/// Releases file blobs inside a transaction: usage shrinks, metas become `Deleting`.
fn release_files(
    rs: &RecordSeal,
    ut: &TransactionalTree,
    bt: &TransactionalTree,
    org: &str,
    metas: &[BlobMeta],
) -> std::result::Result<(), Tx<Fault>> {
    if metas.is_empty() {
        return Ok(());
    }
    let mut u = tx_usage(rs, ut, org)?;
    for m in metas {
        u.files_bytes = u.files_bytes.saturating_sub(m.size);
        u.files_count = u.files_count.saturating_sub(1);
        mark_deleting(rs, bt, m.id)?;
    }
    rs.tx_put(Rec::Usage, ut, org.as_bytes(), &u)?;
    Ok(())
}

/// Reference checks straight against the store.
pub struct StoreRefs<'a> {
    pub store: &'a Store,
    pub org: &'a str,
    /// Ids inserted earlier in the same bulk request, not yet committed.
    pub pending: std::collections::HashSet<(String, ObjectId)>,
    /// A non-administrator may only reference documents it can read (no probing of ids).
    pub viewer: Option<crate::model::org::Account>,
}

impl<'a> StoreRefs<'a> {
    pub fn new(store: &'a Store, org: &'a str, viewer: &crate::model::org::Account) -> Self {
        StoreRefs {
            store,
            org,
            pending: Default::default(),
            viewer: Some(viewer.clone()).filter(|a| !a.is_admin()),
        }
    }
}

impl RefCheck for StoreRefs<'_> {
    fn exists(&mut self, object: &str, id: ObjectId) -> Result<bool> {
        if self.pending.contains(&(object.to_string(), id)) {
            return Ok(true);
        }
        if object == "account" {
            return Ok(self.store.get_account(self.org, id)?.is_some());
        }
        match &self.viewer {
            None => self.store.doc_exists(self.org, object, id),
            Some(v) => {
                let Some(def) = self.store.find_object(self.org, object)? else {
                    return Ok(false);
                };
                Ok(self
                    .store
                    .get_doc(self.org, object, id)?
                    .is_some_and(|d| crate::model::acl::can_read(&def, &d, v)))
            }
        }
    }
}

impl Store {
    /// Lazily decrypts the documents of `object` in `_id` order (descending when `reverse`).
    pub fn iter_docs<'a>(
        &'a self,
        org: &'a str,
        object: &str,
        reverse: bool,
    ) -> Box<dyn Iterator<Item = Result<StoredDoc>> + 'a> {
        let p = prefix(&[org.as_bytes(), object.as_bytes()]);
        let iter = self.t.docs.scan_prefix(p);
        let open = move |r: sled::Result<(sled::IVec, sled::IVec)>| {
            let (k, v) = r?;
            self.open_doc(org, &k, &v)
        };
        if reverse {
            Box::new(iter.rev().map(open))
        } else {
            Box::new(iter.map(open))
        }
    }
}

/// A sealed document record as stored: its key and value.
pub type SealedDoc = (sled::IVec, sled::IVec);

/// Opens sealed document records of one org; cheap to share between threads.
#[derive(Clone)]
pub struct DocOpener {
    key: crate::crypto::Key,
    /// Length of the `org ‖ object` key prefix; the id follows it.
    at: usize,
}

impl DocOpener {
    /// The decrypted record (for `rawdoc::RawDoc::parse`); the id is in it too.
    pub fn record(&self, (k, v): &SealedDoc) -> Result<Vec<u8>> {
        self.key.open(k, v)
    }

    pub fn doc(&self, (k, v): &SealedDoc) -> Result<StoredDoc> {
        decode(&self.key.open(k, v)?)
    }

    /// The document id in a record key.
    pub fn id(&self, k: &[u8]) -> Result<ObjectId> {
        k.get(self.at..)
            .and_then(ObjectId::from_slice)
            .ok_or_else(|| Fault::internal("document key is malformed", ""))
    }
}

impl Store {
    /// The sealed records of an object's documents in `_id` order, and what opens them: the
    /// export reads them on one thread and opens them on others.
    pub fn sealed_docs<'a>(
        &'a self,
        org: &str,
        object: &str,
    ) -> Result<(
        DocOpener,
        impl Iterator<Item = Result<SealedDoc>> + Send + 'a,
    )> {
        let p = prefix(&[org.as_bytes(), object.as_bytes()]);
        let opener = DocOpener {
            key: self.org_key(org)?,
            at: p.len(),
        };
        let iter = self.t.docs.scan_prefix(p).map(|r| Ok(r?));
        Ok((opener, iter))
    }
}

/// Projection lookups against the store, seen by `viewer` (None: everything is readable).
pub struct StoreLookup<'a> {
    store: &'a Store,
    org: &'a str,
    viewer: Option<&'a crate::model::org::Account>,
    cat: Option<Vec<ObjectDef>>,
}

impl<'a> StoreLookup<'a> {
    pub fn new(
        store: &'a Store,
        org: &'a str,
        viewer: Option<&'a crate::model::org::Account>,
    ) -> Self {
        StoreLookup {
            store,
            org,
            viewer,
            cat: None,
        }
    }

    fn catalog(&mut self) -> &[ObjectDef] {
        if self.cat.is_none() {
            self.cat = Some(self.store.list_objects(self.org).unwrap_or_default());
        }
        self.cat.as_deref().unwrap_or_default()
    }
}

impl crate::query::projection::Lookup for StoreLookup<'_> {
    fn def(&mut self, object: &str) -> Option<ObjectDef> {
        self.catalog().iter().find(|o| o.name == object).cloned()
    }

    fn expanded(
        &mut self,
        def: &ObjectDef,
        id: ObjectId,
    ) -> Option<serde_json::Map<String, serde_json::Value>> {
        let doc = self.store.get_doc(self.org, &def.name, id).ok()??;
        let mut full = crate::model::document::render(def, &doc, self.catalog());
        if let Some(v) = self.viewer {
            if !crate::model::acl::can_read(def, &doc, v) {
                return None;
            }
            crate::query::projection::strip_unreadable(
                &def.properties,
                &mut full,
                crate::model::acl::level(def, &doc, v),
            );
        }
        crate::query::projection::drop_optional(&def.properties, &mut full, "", &[]);
        Some(full)
    }
}
