//! NDJSON: one document per line joined by `\n`, no trailing newline.

use super::DocWriter;
use std::io::{self, Write};

pub struct NdjsonWriter<W: Write> {
    w: W,
    first: bool,
}

impl<W: Write> NdjsonWriter<W> {
    pub fn new(w: W) -> Self {
        NdjsonWriter { w, first: true }
    }
    pub fn into_inner(self) -> W {
        self.w
    }
}

impl<W: Write> DocWriter for NdjsonWriter<W> {
    fn write_doc(&mut self, json: &[u8]) -> io::Result<()> {
        if !self.first {
            self.w.write_all(b"\n")?;
        }
        self.first = false;
        self.w.write_all(json)
    }
    fn finish(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn run(docs: &[Value]) -> String {
        let mut w = NdjsonWriter::new(Vec::new());
        for d in docs {
            w.write_doc(&serde_json::to_vec(d).unwrap()).unwrap();
        }
        w.finish().unwrap();
        String::from_utf8(w.into_inner()).unwrap()
    }

    #[test]
    fn layout() {
        assert_eq!(run(&[]), "");
        assert_eq!(run(&[json!({"_id": "a"})]), r#"{"_id":"a"}"#);
        assert_eq!(
            run(&[
                json!({"_id": "a", "x": "é\n"}),
                json!({"_id": "b", "n": null})
            ]),
            "{\"_id\":\"a\",\"x\":\"é\\n\"}\n{\"_id\":\"b\",\"n\":null}"
        );
    }
}
