//! JSON: `[\n` + doc + (`,\n` + doc)* + `\n]`; no documents → `[]`.

use super::DocWriter;
use std::io::{self, Write};

pub struct JsonWriter<W: Write> {
    w: W,
    count: u64,
}

impl<W: Write> JsonWriter<W> {
    pub fn new(w: W) -> Self {
        JsonWriter { w, count: 0 }
    }
    pub fn into_inner(self) -> W {
        self.w
    }
}

impl<W: Write> DocWriter for JsonWriter<W> {
    fn write_doc(&mut self, json: &[u8]) -> io::Result<()> {
        self.w
            .write_all(if self.count == 0 { b"[\n" } else { b",\n" })?;
        self.count += 1;
        self.w.write_all(json)
    }
    fn finish(&mut self) -> io::Result<()> {
        self.w
            .write_all(if self.count == 0 { b"[]" } else { b"\n]" })?;
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn run(docs: &[Value]) -> String {
        let mut w = JsonWriter::new(Vec::new());
        for d in docs {
            w.write_doc(&serde_json::to_vec(d).unwrap()).unwrap();
        }
        w.finish().unwrap();
        String::from_utf8(w.into_inner()).unwrap()
    }

    #[test]
    fn layout() {
        assert_eq!(run(&[]), "[]");
        assert_eq!(run(&[json!({"_id": "a"})]), "[\n{\"_id\":\"a\"}\n]");
        assert_eq!(
            run(&[
                json!({"_id": "a"}),
                json!({"_id": "b", "t": [1, {"x": true}]})
            ]),
            "[\n{\"_id\":\"a\"},\n{\"_id\":\"b\",\"t\":[1,{\"x\":true}]}\n]"
        );
        let out = run(&[json!({"_id": "a", "s": "ü\"q"}), json!({"_id": "b"})]);
        let parsed: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed.as_array().unwrap().len(), 2);
    }
}
