//! exportd: a self-hosted, multi-tenant data-export server compatible with the Medable Cortex
//! Export API. See README.md, and SPEC.md / DESIGN.md in the shared folder.

pub mod app;
pub mod auth;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod export;
pub mod fault;
pub mod hook;
pub mod http;
pub mod metrics;
pub mod model;
pub mod query;
pub mod store;
