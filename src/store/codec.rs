//! Record values. The plain encoding is one format-version byte, then rmp-serde (named
//! fields, so records can grow); documents use it inside their org-key seal. Every other
//! record is stored sealed ([`RecordSeal`]): encrypted and authenticated with a key derived
//! from the master key and bound to its tree and key, so what a record says (a role, a
//! state, a quota, an export's `where`) can be neither read nor changed, nor moved to
//! another key, without the master key.

use crate::crypto::{Key, tampered};
use crate::fault::{Fault, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::transaction::{ConflictableTransactionError as Tx, TransactionalTree};

pub const VERSION: u8 = 1;

/// The first byte of a sealed record; the plain encoding is inside.
pub const SEALED: u8 = 2;

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = vec![VERSION];
    rmp_serde::encode::write_named(&mut out, v).expect("records always serialize");
    out
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&VERSION, rest)) => rmp_serde::from_slice(rest)
            .map_err(|e| Fault::internal("stored record is unreadable", e)),
        Some((v, _)) => Err(Fault::internal(
            "stored record has an unknown format version",
            v,
        )),
        None => Err(Fault::internal("stored record is empty", "")),
    }
}

/// The trees whose records are sealed; the name is part of each record's associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rec {
    Orgs,
    Accounts,
    Tokens,
    Sessions,
    Objects,
    Exports,
    ExportEvents,
    ExportFiles,
    BlobMeta,
    Usage,
}

impl Rec {
    pub const ALL: [Rec; 10] = [
        Rec::Orgs,
        Rec::Accounts,
        Rec::Tokens,
        Rec::Sessions,
        Rec::Objects,
        Rec::Exports,
        Rec::ExportEvents,
        Rec::ExportFiles,
        Rec::BlobMeta,
        Rec::Usage,
    ];

    /// The sled tree's name.
    pub fn tree(self) -> &'static str {
        match self {
            Rec::Orgs => "orgs",
            Rec::Accounts => "accounts",
            Rec::Tokens => "tokens",
            Rec::Sessions => "sessions",
            Rec::Objects => "objects",
            Rec::Exports => "exports",
            Rec::ExportEvents => "export_events",
            Rec::ExportFiles => "export_files",
            Rec::BlobMeta => "blob_meta",
            Rec::Usage => "usage",
        }
    }
}

/// Seals and opens the records of the trees in [`Rec`].
pub struct RecordSeal(Key);

impl RecordSeal {
    pub fn new(master: &Key) -> RecordSeal {
        RecordSeal(master.derive(b"exportd.records.v1"))
    }

    fn aad(tree: Rec, key: &[u8]) -> Vec<u8> {
        let name = tree.tree();
        let mut a = Vec::with_capacity(16 + name.len() + key.len());
        a.extend_from_slice(b"exportd.record\0");
        a.extend_from_slice(name.as_bytes());
        a.push(0);
        a.extend_from_slice(key);
        a
    }

    pub fn seal<T: Serialize>(&self, tree: Rec, key: &[u8], v: &T) -> Vec<u8> {
        self.seal_plain(tree, key, &encode(v))
    }

    fn seal_plain(&self, tree: Rec, key: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut out = vec![SEALED];
        out.extend_from_slice(&self.0.seal(&Self::aad(tree, key), plain));
        out
    }

    /// A record stored under `key` in `tree`; anything not sealed there by this key is a fault.
    pub fn open<T: DeserializeOwned>(&self, tree: Rec, key: &[u8], stored: &[u8]) -> Result<T> {
        decode(&self.open_plain(tree, key, stored)?)
    }

    /// The plain encoding inside a sealed record.
    pub fn open_plain(&self, tree: Rec, key: &[u8], stored: &[u8]) -> Result<Vec<u8>> {
        match stored.split_first() {
            Some((&SEALED, sealed)) => self.0.open(&Self::aad(tree, key), sealed),
            _ => Err(tampered()),
        }
    }

    /// A record read inside a sled transaction (see [`RecordSeal::open`]).
    pub fn tx_get<T: DeserializeOwned>(
        &self,
        tree: Rec,
        t: &TransactionalTree,
        key: &[u8],
    ) -> std::result::Result<Option<T>, Tx<Fault>> {
        match t.get(key)? {
            Some(v) => Ok(Some(self.open(tree, key, &v).map_err(Tx::Abort)?)),
            None => Ok(None),
        }
    }

    /// A record written inside a sled transaction.
    pub fn tx_put<T: Serialize>(
        &self,
        tree: Rec,
        t: &TransactionalTree,
        key: &[u8],
        v: &T,
    ) -> std::result::Result<(), Tx<Fault>> {
        t.insert(key, self.seal(tree, key, v))?;
        Ok(())
    }

    /// The sealed form of a record written in the plain encoding by an earlier version, or
    /// `None` if it is not plain (already sealed).
    pub fn upgrade(&self, tree: Rec, key: &[u8], stored: &[u8]) -> Option<Vec<u8>> {
        (stored.first() == Some(&VERSION)).then(|| self.seal_plain(tree, key, stored))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_check() {
        let v = vec!["a".to_string(), "b".to_string()];
        let b = encode(&v);
        assert_eq!(b[0], VERSION);
        assert_eq!(decode::<Vec<String>>(&b).unwrap(), v);
        let mut bad = b.clone();
        bad[0] = 9;
        assert!(decode::<Vec<String>>(&bad).is_err());
        assert!(decode::<Vec<String>>(&[]).is_err());
    }

    #[test]
    fn sealed_records_are_bound_to_their_key_tree_and_master_key() {
        let master = Key::random();
        let rs = RecordSeal::new(&master);
        let role = "administrator".to_string();
        let sealed = rs.seal(Rec::Accounts, b"acme\0a1", &role);
        assert_eq!(sealed[0], SEALED);
        assert!(!sealed.windows(role.len()).any(|w| w == role.as_bytes()));
        assert_eq!(
            rs.open::<String>(Rec::Accounts, b"acme\0a1", &sealed)
                .unwrap(),
            role
        );
        let integrity = |r: Result<String>| r.unwrap_err().err_code.clone();
        // moved to another key or tree, opened with another master key, changed, or plain
        for (what, got) in [
            ("other key", rs.open(Rec::Accounts, b"acme\0a2", &sealed)),
            ("other tree", rs.open(Rec::Sessions, b"acme\0a1", &sealed)),
            (
                "other master",
                RecordSeal::new(&Key::random()).open(Rec::Accounts, b"acme\0a1", &sealed),
            ),
            ("plain", rs.open(Rec::Accounts, b"acme\0a1", &encode(&role))),
            ("empty", rs.open(Rec::Accounts, b"acme\0a1", &[])),
        ] {
            assert_eq!(integrity(got), "cortex.error.integrity", "{what}");
        }
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x40;
            assert!(
                rs.open::<String>(Rec::Accounts, b"acme\0a1", &bad).is_err(),
                "byte {i}"
            );
        }
    }

    #[test]
    fn plain_records_upgrade_once() {
        let rs = RecordSeal::new(&Key::random());
        let plain = encode(&42u64);
        let sealed = rs.upgrade(Rec::Usage, b"acme", &plain).unwrap();
        assert_eq!(rs.open::<u64>(Rec::Usage, b"acme", &sealed).unwrap(), 42);
        assert_eq!(rs.upgrade(Rec::Usage, b"acme", &sealed), None);
    }
}
