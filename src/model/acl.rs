//! Document access (SPEC §3 ACL): owner, administrators, and `defaultAcl` grants.

use crate::model::document::StoredDoc;
use crate::model::ids::ObjectId;
use crate::model::org::Account;
use crate::model::schema::{ObjectDef, access_level};

pub const OWNER_LEVEL: u8 = 7;

/// The access level `acct` has on `doc` (0 = none).
pub fn level(def: &ObjectDef, doc: &StoredDoc, acct: &Account) -> u8 {
    level_for_owner(def, doc.owner, acct)
}

/// The access level `acct` has on a document of `def` owned by `owner`.
pub fn level_for_owner(def: &ObjectDef, owner: ObjectId, acct: &Account) -> u8 {
    if acct.is_admin() {
        return access_level("script").unwrap_or(8);
    }
    let mut lvl = if owner == acct.id { OWNER_LEVEL } else { 0 };
    for g in &def.default_acl {
        let applies = match g.kind.as_str() {
            "account" => g.target == acct.id.to_hex(),
            "role" => acct.has_role(&g.target),
            _ => false,
        };
        if applies {
            lvl = lvl.max(g.level());
        }
    }
    lvl
}

pub fn can_read(def: &ObjectDef, doc: &StoredDoc, acct: &Account) -> bool {
    may_read(level(def, doc, acct))
}

/// Whether an access level allows reading.
pub fn may_read(level: u8) -> bool {
    level >= access_level("read").unwrap_or(4)
}

pub fn can_update(def: &ObjectDef, doc: &StoredDoc, acct: &Account) -> bool {
    level(def, doc, acct) >= access_level("update").unwrap_or(6)
}

pub fn can_delete(def: &ObjectDef, doc: &StoredDoc, acct: &Account) -> bool {
    level(def, doc, acct) >= access_level("delete").unwrap_or(7)
}
