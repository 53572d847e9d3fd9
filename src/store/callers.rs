//! API-token callers, cached. `GET` of one export is the hot request, and reading the token,
//! org and account records (three point reads, each a sealed record to open and decode)
//! was ~27% of its CPU. Every write to orgs, accounts or tokens moves the generation on,
//! which invalidates every entry for lookups that start after it: a revoked token is refused
//! from the next request on, a changed storage limit applies at once.

use super::Store;
use crate::fault::Result;
use crate::model::org::{Account, Org};
use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Entries kept at most; the cache starts over when full (tokens in use are few).
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub struct CallerCache {
    generation: AtomicU64,
    entries: RwLock<HashMap<[u8; 32], Entry>>,
}

struct Entry {
    generation: u64,
    org: Org,
    account: Account,
}

impl CallerCache {
    /// Called after every write to orgs, accounts or tokens (whether it committed or not).
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn get(&self, hash: &[u8; 32], org: &str) -> Option<(Org, Account)> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let e = entries.get(hash)?;
        (e.generation == self.generation.load(Ordering::SeqCst) && e.org.code == org)
            .then(|| (e.org.clone(), e.account.clone()))
    }

    /// Keeps what was read at `generation` (taken before the reads): if anything changed
    /// since, the entry is stale from the start and never served.
    fn put(&self, hash: [u8; 32], generation: u64, org: &Org, account: &Account) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            hash,
            Entry {
                generation,
                org: org.clone(),
                account: account.clone(),
            },
        );
    }
}

impl Store {
    /// What an API token (by its SHA-256) stands for on org `code`: `None` for an unknown
    /// token, `Some(None)` for a token of another org or whose org or account is gone.
    pub fn token_caller(
        &self,
        hash: &[u8; 32],
        code: &str,
    ) -> Result<Option<Option<(Org, Account)>>> {
        if let Some(hit) = self.callers.get(hash, code) {
            return Ok(Some(Some(hit)));
        }
        let generation = self.callers.generation.load(Ordering::SeqCst);
        let Some(rec) = self.token(hash)? else {
            return Ok(None);
        };
        if rec.org != code {
            return Ok(Some(None));
        }
        let found = self
            .get_org(code)?
            .zip(self.get_account(code, rec.account)?);
        if let Some((org, account)) = &found {
            self.callers.put(*hash, generation, org, account);
        }
        Ok(Some(found))
    }
}

#[cfg(test)]
mod tests {
    use crate::crypto::{Key, sha256};
    use crate::model::ids::{ObjectId, now_iso};
    use crate::model::org::{Account, TokenRec};
    use crate::store::Store;

    #[test]
    fn a_revoked_token_or_a_changed_org_is_seen_at_the_next_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Key::random()).unwrap();
        store.create_org("acme", "Acme", None).unwrap();
        store.create_org("other", "Other", None).unwrap();
        let acct = Account {
            id: ObjectId::new(),
            org: "acme".into(),
            email: "a@example.com".into(),
            name: None,
            roles: vec!["administrator".into()],
            password_hash: None,
            created: now_iso(),
        };
        let tok = TokenRec {
            id: ObjectId::new(),
            org: "acme".into(),
            account: acct.id,
            created: now_iso(),
        };
        let hash = sha256(b"exd_token");
        store.create_account(&acct, &hash, &tok).unwrap();

        let caller = |code: &str| store.token_caller(&hash, code).unwrap();
        let (org, account) = caller("acme").unwrap().unwrap();
        assert_eq!((org.code.as_str(), account.id), ("acme", acct.id));
        // served from the cache now; another org's path is still refused
        assert_eq!(caller("acme").unwrap().unwrap().1.id, acct.id);
        assert!(caller("other").unwrap().is_none());
        assert!(
            store
                .token_caller(&sha256(b"nope"), "acme")
                .unwrap()
                .is_none()
        );

        // a changed org (e.g. its storage limit) is what the next lookup sees
        let mut changed = org.clone();
        changed.storage_limit = Some(5);
        store.put_org(&changed).unwrap();
        assert_eq!(caller("acme").unwrap().unwrap().0.storage_limit, Some(5));

        // a revoked token is refused at the next lookup, though it was cached
        assert!(caller("acme").is_some());
        store.revoke_token("acme", acct.id, tok.id).unwrap();
        assert!(caller("acme").is_none());
    }
}
