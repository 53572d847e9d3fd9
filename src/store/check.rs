//! A consistency check of the whole store: every blob is referenced and complete, every
//! segment has its blob, side files and events belong to live exports, and the usage
//! counters equal a recount. Used by tests (crash and
//! recovery) and available to operators.

use super::Store;
use super::blobs::BlobState;
use crate::export::record::State;
use crate::fault::Result;
use crate::model::document::collect_blobs;
use crate::model::ids::ObjectId;
use crate::model::org::Usage;
use std::collections::{BTreeMap, HashSet};

impl Store {
    /// Returns the problems found (empty when the store is consistent).
    pub fn check_consistency(&self) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        let mut referenced: HashSet<ObjectId> = HashSet::new();
        let mut recount: BTreeMap<String, Usage> = BTreeMap::new();
        for org in self.list_orgs()? {
            let u = recount.entry(org.code.clone()).or_default();
            for def in self.list_objects(&org.code)? {
                let mut n = 0u64;
                for d in self.iter_docs(&org.code, &def.name, false) {
                    let d = d?;
                    n += 1;
                    let mut blobs = Vec::new();
                    for p in &def.properties {
                        if let Some(v) = d.props.get(&p.name) {
                            collect_blobs(p, v, &mut blobs);
                        }
                    }
                    for b in blobs {
                        match self.blob_meta(b)? {
                            Some(m) if m.state == BlobState::Complete => {
                                u.files_bytes += m.size;
                                u.files_count += 1;
                            }
                            _ => problems
                                .push(format!("document {} points at missing blob {b}", d.id)),
                        }
                        referenced.insert(b);
                    }
                }
                if n > 0 {
                    u.docs.insert(def.name.clone(), n);
                }
            }
        }
        for rec in self.all_exports()? {
            if let Some(df) = &rec.data_file {
                referenced.insert(df.blob);
                if rec.state != State::Ready {
                    problems.push(format!(
                        "export {} has a data file but is {}",
                        rec.id,
                        rec.state.name()
                    ));
                }
                let u = recount.entry(rec.org.clone()).or_default();
                u.exports_bytes += df.size + rec.stats.as_ref().map_or(0, |s| s.side_size);
                u.exports_count += 1;
            } else if rec.state == State::Ready {
                problems.push(format!("export {} is ready without a data file", rec.id));
            }
        }
        problems.extend(self.orphan_export_records()?);
        for b in self.all_side_file_blobs()? {
            match b {
                Ok(b) => {
                    referenced.insert(b);
                }
                Err(e) => problems.push(format!("a side-file record is unreadable ({e})")),
            }
        }
        for m in self.all_blob_metas()? {
            if !referenced.contains(&m.id) {
                problems.push(format!(
                    "orphan blob {} ({:?}, {:?})",
                    m.id, m.kind, m.state
                ));
            } else if m.state != BlobState::Complete {
                problems.push(format!("blob {} is {:?}", m.id, m.state));
            }
        }
        let mut last = None;
        for k in self.t.blobs.iter().keys() {
            let k = k?;
            let id = ObjectId::from_slice(&k[..12.min(k.len())]).unwrap_or_default();
            if last == Some(id) {
                continue;
            }
            last = Some(id);
            if self.blob_meta(id)?.is_none() {
                problems.push(format!("segments of blob {id} have no meta"));
            }
        }
        for (org, want) in recount {
            let got = self.usage(&org)?;
            let mut got_docs = got.docs.clone();
            got_docs.retain(|_, n| *n > 0);
            if got_docs != want.docs
                || got.files_bytes != want.files_bytes
                || got.files_count != want.files_count
                || got.exports_bytes != want.exports_bytes
                || got.exports_count != want.exports_count
            {
                problems.push(format!(
                    "usage of {org} is {got:?}, a recount gives {want:?}"
                ));
            }
        }
        Ok(problems)
    }
}
