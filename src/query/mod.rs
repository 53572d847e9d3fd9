//! The query engine (SPEC §5, §4.4), used by exports and document lists: `where` parsing and
//! matching, projection (`paths`, `include`, `expand`, principal), and `prefix`. Pure code
//! over definitions and stored documents; lookups it needs come through small traits.

pub mod ast;
pub mod matcher;
pub mod parse;
pub mod projection;

pub use projection::Projector;
