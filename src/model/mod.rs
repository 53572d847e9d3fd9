//! The data model: ids, definitions, documents, orgs and accounts, access.
pub mod acl;
pub mod document;
pub mod files;
pub mod ids;
pub mod input;
pub mod org;
pub mod schema;
