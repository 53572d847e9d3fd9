//! A document as a stream of events (objects, arrays, keys, scalars), so that the renderers
//! (from a `serde_json` map, or straight from stored bytes) and the outputs (JSON bytes, CSV
//! cells) meet in one place without a tree in between.

use serde_json::{Map, Number, Value};

pub trait Emit {
    fn begin_object(&mut self);
    fn end_object(&mut self);
    fn begin_array(&mut self);
    fn end_array(&mut self);
    /// The key of the next value inside an object.
    fn key(&mut self, k: &str);
    /// Comes before each value inside an array.
    fn item(&mut self);
    fn null(&mut self);
    fn bool(&mut self, b: bool);
    fn number(&mut self, n: &Number);
    fn str(&mut self, s: &str);
    /// A string given in parts (paths), so that it need not be built first.
    fn str_parts(&mut self, parts: &[&str]) {
        self.str(&parts.concat());
    }
}

/// Emits a `serde_json` value as it is.
pub fn value<E: Emit>(v: &Value, e: &mut E) {
    match v {
        Value::Null => e.null(),
        Value::Bool(b) => e.bool(*b),
        Value::Number(n) => e.number(n),
        Value::String(s) => e.str(s),
        Value::Array(items) => {
            e.begin_array();
            for it in items {
                e.item();
                value(it, e);
            }
            e.end_array();
        }
        Value::Object(m) => object(m, e),
    }
}

pub fn object<E: Emit>(m: &Map<String, Value>, e: &mut E) {
    e.begin_object();
    for (k, v) in m {
        e.key(k);
        value(v, e);
    }
    e.end_object();
}

/// Compact JSON (serde_json's exact bytes) appended to a buffer.
#[derive(Default)]
pub struct JsonOut {
    pub buf: Vec<u8>,
    /// Per open container: whether nothing was written in it yet.
    first: Vec<bool>,
}

impl JsonOut {
    pub fn with_capacity(bytes: usize) -> Self {
        JsonOut {
            buf: Vec::with_capacity(bytes),
            first: Vec::new(),
        }
    }

    /// Empties the buffer for the next document.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.first.clear();
    }

    fn separate(&mut self) {
        if let Some(first) = self.first.last_mut() {
            if !*first {
                self.buf.push(b',');
            }
            *first = false;
        }
    }

    fn string(&mut self, s: &str) {
        if plain(s) {
            self.buf.push(b'"');
            self.buf.extend_from_slice(s.as_bytes());
            self.buf.push(b'"');
        } else {
            // serde_json's own escaping, so both renderers give identical bytes
            let _ = serde_json::to_writer(&mut self.buf, s);
        }
    }
}

/// Whether JSON needs no escape in `s`: serde_json escapes only '"', '\\' and control
/// characters. Checked in blocks without early exit, which the compiler vectorizes.
fn plain(s: &str) -> bool {
    let special = |b: u8| (b < 0x20) | (b == b'"') | (b == b'\\');
    let mut blocks = s.as_bytes().chunks_exact(16);
    for block in &mut blocks {
        if block.iter().fold(false, |acc, &b| acc | special(b)) {
            return false;
        }
    }
    !blocks.remainder().iter().any(|&b| special(b))
}

impl Emit for JsonOut {
    fn begin_object(&mut self) {
        self.buf.push(b'{');
        self.first.push(true);
    }
    fn end_object(&mut self) {
        self.buf.push(b'}');
        self.first.pop();
    }
    fn begin_array(&mut self) {
        self.buf.push(b'[');
        self.first.push(true);
    }
    fn end_array(&mut self) {
        self.buf.push(b']');
        self.first.pop();
    }
    fn key(&mut self, k: &str) {
        self.separate();
        self.string(k);
        self.buf.push(b':');
    }
    fn item(&mut self) {
        self.separate();
    }
    fn null(&mut self) {
        self.buf.extend_from_slice(b"null");
    }
    fn bool(&mut self, b: bool) {
        self.buf
            .extend_from_slice(if b { b"true" } else { b"false" });
    }
    fn number(&mut self, n: &Number) {
        let _ = serde_json::to_writer(&mut self.buf, n);
    }
    fn str(&mut self, s: &str) {
        self.string(s);
    }
    fn str_parts(&mut self, parts: &[&str]) {
        if parts.iter().all(|p| plain(p)) {
            self.buf.push(b'"');
            parts
                .iter()
                .for_each(|p| self.buf.extend_from_slice(p.as_bytes()));
            self.buf.push(b'"');
        } else {
            self.string(&parts.concat());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_out_matches_serde_json() {
        let v = json!({
            "a": [1, -2, 1.5, 1e300, "x\"\\\n\u{1}é", null, true, false, [], {}],
            "b": {"c": {"d": [[1], [2, {"e": 3}]]}}, "": "", "u": u64::MAX,
        });
        let mut out = JsonOut::default();
        value(&v, &mut out);
        assert_eq!(out.buf, serde_json::to_vec(&v).unwrap());
    }

    #[test]
    fn parts_are_escaped_as_one_string() {
        for parts in [
            &["/a", "/b"][..],
            &["/\"", "\u{1}", "é\\"],
            &[],
            &["0123456789abcdef0123456789abcdef\u{7f}"],
            &["0123456789abcdef\n0123456789abcdef"],
            &["0123456789abcdef0123456789abcde\\"],
        ] {
            let mut out = JsonOut::default();
            out.str_parts(parts);
            assert_eq!(out.buf, serde_json::to_vec(&parts.concat()).unwrap());
        }
    }
}
