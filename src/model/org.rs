//! Orgs and accounts as stored, and their JSON shapes.

use crate::model::ids::ObjectId;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const ADMIN_ROLE: &str = "administrator";
pub const ADMIN_ROLE_ID: ObjectId = ObjectId::from_u32(4);
pub const DEFAULT_EXPORT_TTL_DAYS: f64 = 7.0;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Org {
    pub id: ObjectId,
    pub code: String,
    pub name: String,
    /// Bytes; None = unlimited.
    pub storage_limit: Option<u64>,
    pub export_ttl_days: f64,
    pub created: String,
    /// The org's data key, wrapped by the master key (AAD = "org:<code>").
    pub wrapped_key: Vec<u8>,
    /// The webhook secret, sealed with the org key.
    pub webhook_secret: Vec<u8>,
}

impl Org {
    pub fn to_json(&self) -> Value {
        json!({
            "_id": self.id,
            "object": "org",
            "code": self.code,
            "name": self.name,
            "storageLimit": self.storage_limit,
            "exportTtlDays": self.export_ttl_days,
            "created": self.created,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Account {
    pub id: ObjectId,
    pub org: String,
    pub email: String,
    pub name: Option<String>,
    pub roles: Vec<String>,
    pub password_hash: Option<String>,
    pub created: String,
}

impl Account {
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == ADMIN_ROLE)
    }

    /// Whether the account holds a role, named or by id (the administrator role's fixed id).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role) || (role == ADMIN_ROLE_ID.to_hex() && self.is_admin())
    }

    pub fn to_json(&self) -> Value {
        json!({
            "_id": self.id,
            "object": "account",
            "email": self.email,
            "name": self.name,
            "roles": self.roles,
            "created": self.created,
        })
    }
}

/// An API token record, keyed by the token's SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenRec {
    pub id: ObjectId,
    pub org: String,
    pub account: ObjectId,
    pub created: String,
}

/// A login session, keyed by the session id's SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Session {
    pub org: String,
    pub account: ObjectId,
    pub csrf: String,
    /// Unix seconds.
    pub expires: i64,
}

/// Storage counters of one org (bytes are plaintext sizes).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Usage {
    pub docs: std::collections::BTreeMap<String, u64>,
    pub files_count: u64,
    pub files_bytes: u64,
    pub exports_count: u64,
    pub exports_bytes: u64,
}

impl Usage {
    pub fn used(&self) -> u64 {
        self.files_bytes + self.exports_bytes
    }
}
