//! The query engine's seams: which documents an export (or a list) takes, and what of each.
//! Pure code over rendered documents and definitions; no I/O of its own.

pub mod projection;

pub use projection::Projector;
