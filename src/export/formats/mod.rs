//! Output formats (SPEC §4.5), pure writers over any `io::Write`.

pub mod csv;
pub mod json;
pub mod ndjson;

use serde_json::{Map, Value};
use std::io::{self, Write};

/// Writes documents one after another; `finish` closes the document stream.
pub trait DocWriter {
    fn write_doc(&mut self, doc: &Map<String, Value>) -> io::Result<()>;
    fn finish(&mut self) -> io::Result<()>;
}

pub fn write_json<W: Write>(w: &mut W, doc: &Map<String, Value>) -> io::Result<()> {
    serde_json::to_writer(w, doc).map_err(io::Error::other)
}
