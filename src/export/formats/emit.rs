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
    /// A string given as stored bytes, not yet checked to be UTF-8; false (and nothing
    /// written) when they are not. Outputs that scan strings anyway check on the way.
    fn utf8(&mut self, b: &[u8]) -> bool {
        match std::str::from_utf8(b) {
            Ok(s) => {
                self.str(s);
                true
            }
            Err(_) => false,
        }
    }
    /// A string given in parts (paths), so that it need not be built first.
    fn str_parts(&mut self, parts: &[&str]) {
        self.str(&parts.concat());
    }
    /// `key(k)`, for a key whose JSON (`"k":`) was made beforehand.
    fn key_ready(&mut self, k: &Key) {
        self.key(&k.name);
    }
    /// A reference to document `id`: `{"_id":id,"object":..,"path":"/plural/id"}`.
    fn reference(&mut self, r: &RefShape, id: &str) {
        reference_events(self, r, id);
    }
}

fn reference_events<E: Emit + ?Sized>(e: &mut E, r: &RefShape, id: &str) {
    e.begin_object();
    e.key("_id");
    e.str(id);
    e.key("object");
    e.str(&r.object);
    e.key("path");
    e.str_parts(&["/", &r.plural, "/", id]);
    e.end_object();
}

/// A key known before rendering, with its JSON made once.
pub struct Key {
    pub name: String,
    json: Vec<u8>,
}

impl Key {
    pub fn new(name: &str) -> Key {
        let mut json = serde_json::to_vec(name).unwrap_or_default();
        json.push(b':');
        Key {
            name: name.to_string(),
            json,
        }
    }
}

/// The target of references (object and plural name), with the JSON that goes between
/// a reference's two copies of the id made once.
pub struct RefShape {
    pub object: String,
    pub plural: String,
    /// `","object":"<object>","path":"/<plural>/`, escaped.
    between: Vec<u8>,
}

impl RefShape {
    pub fn new(object: &str, plural: &str) -> RefShape {
        let mut between = b"\",\"object\":".to_vec();
        between.extend(serde_json::to_vec(object).unwrap_or_default());
        between.extend(b",\"path\":");
        let path = serde_json::to_vec(&format!("/{plural}/")).unwrap_or_default();
        // the path's string, left open for the id
        between.extend(&path[..path.len().saturating_sub(1)]);
        RefShape {
            object: object.to_string(),
            plural: plural.to_string(),
            between,
        }
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

/// Whether serde_json escapes byte `b` in a string: only '"', '\\' and control characters.
#[inline(always)]
fn escaped(b: u8) -> bool {
    (b < 0x20) | (b == b'"') | (b == b'\\')
}

/// Whether JSON needs no escape in `s`.
fn plain(s: &str) -> bool {
    plain_ascii(s.as_bytes(), escaped)
}

/// Whether none of `b` is `special`. Checked in blocks without early exit, which the
/// compiler vectorizes.
#[inline(always)]
fn plain_ascii(b: &[u8], special: impl Fn(u8) -> bool) -> bool {
    let mut blocks = b.chunks_exact(16);
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
    fn utf8(&mut self, b: &[u8]) -> bool {
        // plain ASCII (most stored strings) is valid UTF-8 needing no escape: one pass
        if plain_ascii(b, |b| escaped(b) | (b >= 0x80)) {
            self.buf.push(b'"');
            self.buf.extend_from_slice(b);
            self.buf.push(b'"');
            return true;
        }
        match std::str::from_utf8(b) {
            Ok(s) => {
                self.string(s);
                true
            }
            Err(_) => false,
        }
    }
    fn key_ready(&mut self, k: &Key) {
        self.separate();
        self.buf.extend_from_slice(&k.json);
    }
    fn reference(&mut self, r: &RefShape, id: &str) {
        if !plain(id) {
            return reference_events(self, r, id);
        }
        self.buf.extend_from_slice(b"{\"_id\":\"");
        self.buf.extend_from_slice(id.as_bytes());
        self.buf.extend_from_slice(&r.between);
        self.buf.extend_from_slice(id.as_bytes());
        self.buf.extend_from_slice(b"\"}");
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
    fn stored_bytes_are_checked_and_escaped_like_strings() {
        let long = "0123456789abcdef".repeat(3);
        for s in [
            "",
            "plain",
            "é",
            "x\"y",
            "\\",
            "\u{1}",
            "\u{7f}",
            "日本語",
            &long,
        ] {
            for t in [s.to_string(), format!("{long}{s}"), format!("{s}{long}")] {
                let mut out = JsonOut::default();
                assert!(out.utf8(t.as_bytes()));
                assert_eq!(out.buf, serde_json::to_vec(&t).unwrap(), "{t:?}");
            }
        }
        for bad in [
            &b"\xff"[..],
            b"abc\xc3",
            b"0123456789abcdef\xed\xa0\x80",
            b"\xc0\xaf",
        ] {
            let mut out = JsonOut::default();
            assert!(!out.utf8(bad), "{bad:?}");
            assert!(out.buf.is_empty());
        }
    }

    #[test]
    fn ready_keys_and_references_match_serde_json() {
        for (object, plural) in [("account", "accounts"), ("c_\"q", "c_\\é\n")] {
            let shape = RefShape::new(object, plural);
            for id in ["6b0c048aa502f3d31dfe4120", "a\"b", ""] {
                let mut out = JsonOut::default();
                out.begin_array();
                out.item();
                out.reference(&shape, id);
                out.item();
                out.begin_object();
                out.key_ready(&Key::new(plural));
                out.reference(&shape, id);
                out.key_ready(&Key::new("k"));
                out.null();
                out.end_object();
                out.end_array();
                let r = json!({"_id": id, "object": object, "path": format!("/{plural}/{id}")});
                let want = json!([r.clone(), {plural: r, "k": null}]);
                assert_eq!(
                    out.buf,
                    serde_json::to_vec(&want).unwrap(),
                    "{object} {plural} {id}"
                );
            }
        }
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
