//! Orgs, accounts, API tokens and sessions.

use super::codec::Rec;
use super::{Store, key, org_key_aad, prefix};
use crate::crypto::Key;
use crate::fault::{Fault, Result};
use crate::model::ids::{ObjectId, now_iso};
use crate::model::org::{Account, Org, Session, TokenRec, Usage};
use sled::Transactional;
use sled::transaction::ConflictableTransactionError as Tx;

impl Store {
    pub fn get_org(&self, code: &str) -> Result<Option<Org>> {
        self.get_rec(Rec::Orgs, code.as_bytes())
    }

    pub fn list_orgs(&self) -> Result<Vec<Org>> {
        self.scan_rec(Rec::Orgs, b"")
    }

    /// Creates an org with a fresh data key and webhook secret; 409 if the code is taken.
    pub fn create_org(&self, code: &str, name: &str, storage_limit: Option<u64>) -> Result<Org> {
        let data_key = Key::random();
        let secret = crate::crypto::random_hex(32);
        let org = Org {
            id: ObjectId::new(),
            code: code.to_string(),
            name: name.to_string(),
            storage_limit,
            export_ttl_days: crate::model::org::DEFAULT_EXPORT_TTL_DAYS,
            created: now_iso(),
            wrapped_key: self.master.wrap(&org_key_aad(code), &data_key),
            webhook_secret: data_key.seal(b"webhook_secret", secret.as_bytes()),
        };
        let value = self.records.seal(Rec::Orgs, code.as_bytes(), &org);
        let usage_value = self
            .records
            .seal(Rec::Usage, code.as_bytes(), &Usage::default());
        let res = (&self.t.orgs, &self.t.usage).transaction(|(orgs, usage)| {
            if orgs.get(code)?.is_some() {
                return Err(Tx::Abort(Fault::exists(
                    "org",
                    format!("An org with code {code} already exists"),
                )));
            }
            orgs.insert(code, value.clone())?;
            usage.insert(code, usage_value.clone())?;
            Ok(())
        });
        self.callers.changed();
        res?;
        self.flush()?;
        Ok(org)
    }

    pub fn put_org(&self, org: &Org) -> Result<()> {
        let res = self.put_rec(Rec::Orgs, org.code.as_bytes(), org);
        self.callers.changed();
        res?;
        self.flush()
    }

    pub fn webhook_secret(&self, org: &Org) -> Result<String> {
        let k = self.org_key(&org.code)?;
        let raw = k.open(b"webhook_secret", &org.webhook_secret)?;
        String::from_utf8(raw).map_err(|e| Fault::internal("webhook secret is unreadable", e))
    }

    pub fn rotate_webhook_secret(&self, code: &str) -> Result<String> {
        let k = self.org_key(code)?;
        let secret = crate::crypto::random_hex(32);
        let mut org = self.get_org(code)?.ok_or_else(|| Fault::not_found("org"))?;
        org.webhook_secret = k.seal(b"webhook_secret", secret.as_bytes());
        self.put_org(&org)?;
        Ok(secret)
    }

    // ---- accounts ----

    pub fn get_account(&self, org: &str, id: ObjectId) -> Result<Option<Account>> {
        self.get_rec(Rec::Accounts, &key(&[org.as_bytes(), id.bytes()]))
    }

    pub fn account_by_email(&self, org: &str, email: &str) -> Result<Option<Account>> {
        let k = key(&[org.as_bytes(), email.to_ascii_lowercase().as_bytes()]);
        match self.t.account_emails.get(k)? {
            Some(id) => match ObjectId::from_slice(&id) {
                Some(id) => self.get_account(org, id),
                None => Err(Fault::internal("account index is corrupt", "bad id")),
            },
            None => Ok(None),
        }
    }

    pub fn list_accounts(&self, org: &str) -> Result<Vec<Account>> {
        self.scan_rec(Rec::Accounts, &prefix(&[org.as_bytes()]))
    }

    /// Creates the account and its first token in one transaction (409 on a taken email).
    pub fn create_account(
        &self,
        acct: &Account,
        token_hash: &[u8; 32],
        tok: &TokenRec,
    ) -> Result<()> {
        let email_key = key(&[
            acct.org.as_bytes(),
            acct.email.to_ascii_lowercase().as_bytes(),
        ]);
        let acct_key = key(&[acct.org.as_bytes(), acct.id.bytes()]);
        let tok_id_key = key(&[acct.org.as_bytes(), tok.id.bytes()]);
        let (av, tv) = (
            self.records.seal(Rec::Accounts, &acct_key, acct),
            self.records.seal(Rec::Tokens, token_hash, tok),
        );
        let res = (
            &self.t.accounts,
            &self.t.account_emails,
            &self.t.tokens,
            &self.t.token_ids,
        )
            .transaction(|(accounts, emails, tokens, token_ids)| {
                if emails.get(&email_key)?.is_some() {
                    return Err(Tx::Abort(
                        Fault::exists("account", "An account with this email already exists")
                            .at("email"),
                    ));
                }
                emails.insert(email_key.as_slice(), acct.id.bytes().as_slice())?;
                accounts.insert(acct_key.as_slice(), av.as_slice())?;
                tokens.insert(token_hash.as_slice(), tv.as_slice())?;
                token_ids.insert(tok_id_key.as_slice(), token_hash.as_slice())?;
                Ok(())
            });
        self.callers.changed();
        res?;
        self.flush()
    }

    pub fn add_token(&self, token_hash: &[u8; 32], tok: &TokenRec) -> Result<()> {
        let tok_id_key = key(&[tok.org.as_bytes(), tok.id.bytes()]);
        let tv = self.records.seal(Rec::Tokens, token_hash, tok);
        let res = (&self.t.tokens, &self.t.token_ids).transaction(|(tokens, ids)| {
            tokens.insert(token_hash.as_slice(), tv.as_slice())?;
            ids.insert(tok_id_key.as_slice(), token_hash.as_slice())?;
            Ok::<_, Tx<Fault>>(())
        });
        self.callers.changed();
        res?;
        self.flush()
    }

    pub fn token(&self, token_hash: &[u8; 32]) -> Result<Option<TokenRec>> {
        self.get_rec(Rec::Tokens, token_hash)
    }

    /// Revokes a token of `account`; 404 when it is not one of theirs.
    pub fn revoke_token(&self, org: &str, account: ObjectId, token_id: ObjectId) -> Result<()> {
        let id_key = key(&[org.as_bytes(), token_id.bytes()]);
        let res = (&self.t.tokens, &self.t.token_ids).transaction(|(tokens, ids)| {
            let Some(hash) = ids.get(&id_key)? else {
                return Err(Tx::Abort(Fault::not_found("token")));
            };
            let rec: Option<TokenRec> = self.records.tx_get(Rec::Tokens, tokens, &hash)?;
            if rec.is_some_and(|r| r.account != account) {
                return Err(Tx::Abort(Fault::not_found("token")));
            }
            tokens.remove(hash)?;
            ids.remove(id_key.as_slice())?;
            Ok(())
        });
        self.callers.changed();
        res?;
        self.flush()
    }

    // ---- sessions ----

    pub fn put_session(&self, sid_hash: &[u8; 32], s: &Session) -> Result<()> {
        self.put_rec(Rec::Sessions, sid_hash, s)?;
        self.flush()
    }

    pub fn session(&self, sid_hash: &[u8; 32]) -> Result<Option<Session>> {
        self.get_rec(Rec::Sessions, sid_hash)
    }

    pub fn delete_session(&self, sid_hash: &[u8; 32]) -> Result<()> {
        self.t.sessions.remove(sid_hash)?;
        self.flush()
    }

    /// Drops sessions past their expiry (called by the janitor).
    pub fn purge_sessions(&self, now: i64) -> Result<usize> {
        let mut n = 0;
        for r in self.t.sessions.iter() {
            let (k, v) = r?;
            // a damaged session is left alone (using it fails): it must not stop the purge
            let Ok(s) = self.records.open::<Session>(Rec::Sessions, &k, &v) else {
                continue;
            };
            if s.expires <= now {
                self.t.sessions.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }
}
