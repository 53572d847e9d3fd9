//! Output formats (SPEC §4.5), pure writers over any `io::Write`.

pub mod csv;
pub mod emit;
pub mod json;
pub mod ndjson;

use std::io;

/// Writes documents one after another, each given as its compact JSON (see `emit::JsonOut`);
/// `finish` closes the document stream.
pub trait DocWriter {
    fn write_doc(&mut self, json: &[u8]) -> io::Result<()>;
    fn finish(&mut self) -> io::Result<()>;
}
