//! A stored document read in place. The decrypted record (codec version byte, then
//! rmp-serde's named map of `StoredDoc`) is walked without building `serde_json` values, so
//! an export can go from stored bytes to output bytes without a tree per document (see
//! `export::direct`). Values are kept as slices holding exactly one msgpack value.

use super::codec::VERSION;
use crate::fault::{Fault, Result};
use rmp::Marker;
use serde_json::Value;

/// One msgpack item: scalars whole, containers as their length (the items follow).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Item<'a> {
    Nil,
    Bool(bool),
    UInt(u64),
    Int(i64),
    Float(f64),
    Str(&'a str),
    /// A string not checked to be UTF-8 yet (readers made by `Raw::unchecked_reader`).
    Text(&'a [u8]),
    Array(u32),
    Map(u32),
    /// Binary and extension values: never written for documents.
    Other,
}

/// A cursor over msgpack bytes.
#[derive(Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Strings come as `Item::Text`, for an output that checks them as it writes them.
    unchecked: bool,
}

fn unreadable() -> Fault {
    Fault::internal("stored record is unreadable", "malformed msgpack")
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            unchecked: false,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or_else(unreadable)?;
        let s = self.buf.get(self.pos..end).ok_or_else(unreadable)?;
        self.pos = end;
        Ok(s)
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn len(&mut self, width: usize) -> Result<usize> {
        Ok(match width {
            1 => self.be::<1>()?[0] as usize,
            2 => u16::from_be_bytes(self.be()?) as usize,
            _ => u32::from_be_bytes(self.be()?) as usize,
        })
    }

    fn str(&mut self, n: usize, check: bool) -> Result<Item<'a>> {
        let b = self.take(n)?;
        if !check {
            return Ok(Item::Str(""));
        }
        if self.unchecked {
            return Ok(Item::Text(b));
        }
        std::str::from_utf8(b)
            .map(Item::Str)
            .map_err(|_| unreadable())
    }

    /// The next item; for containers, their items come next.
    pub fn item(&mut self) -> Result<Item<'a>> {
        self.read(true)
    }

    /// As `item`; strings are only stepped over (as "") when not `check`ed.
    fn read(&mut self, check: bool) -> Result<Item<'a>> {
        let m = self.be::<1>()?[0];
        Ok(match Marker::from_u8(m) {
            Marker::Null => Item::Nil,
            Marker::True => Item::Bool(true),
            Marker::False => Item::Bool(false),
            Marker::FixPos(n) => Item::UInt(n as u64),
            Marker::FixNeg(n) => Item::Int(n as i64),
            Marker::U8 => Item::UInt(self.be::<1>()?[0] as u64),
            Marker::U16 => Item::UInt(u16::from_be_bytes(self.be()?) as u64),
            Marker::U32 => Item::UInt(u32::from_be_bytes(self.be()?) as u64),
            Marker::U64 => Item::UInt(u64::from_be_bytes(self.be()?)),
            Marker::I8 => Item::Int(i8::from_be_bytes(self.be()?) as i64),
            Marker::I16 => Item::Int(i16::from_be_bytes(self.be()?) as i64),
            Marker::I32 => Item::Int(i32::from_be_bytes(self.be()?) as i64),
            Marker::I64 => Item::Int(i64::from_be_bytes(self.be()?)),
            Marker::F32 => Item::Float(f32::from_be_bytes(self.be()?) as f64),
            Marker::F64 => Item::Float(f64::from_be_bytes(self.be()?)),
            Marker::FixStr(n) => self.str(n as usize, check)?,
            Marker::Str8 => {
                let n = self.len(1)?;
                self.str(n, check)?
            }
            Marker::Str16 => {
                let n = self.len(2)?;
                self.str(n, check)?
            }
            Marker::Str32 => {
                let n = self.len(4)?;
                self.str(n, check)?
            }
            Marker::FixArray(n) => Item::Array(n as u32),
            Marker::Array16 => Item::Array(self.len(2)? as u32),
            Marker::Array32 => Item::Array(self.len(4)? as u32),
            Marker::FixMap(n) => Item::Map(n as u32),
            Marker::Map16 => Item::Map(self.len(2)? as u32),
            Marker::Map32 => Item::Map(self.len(4)? as u32),
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
                let w = match m {
                    0xc4 => 1,
                    0xc5 => 2,
                    _ => 4,
                };
                let n = self.len(w)?;
                self.take(n)?;
                Item::Other
            }
            Marker::FixExt1 | Marker::FixExt2 | Marker::FixExt4 | Marker::FixExt8 => {
                let n = 1usize << (m - 0xd4);
                self.take(1 + n)?;
                Item::Other
            }
            Marker::FixExt16 => {
                self.take(17)?;
                Item::Other
            }
            Marker::Ext8 | Marker::Ext16 | Marker::Ext32 => {
                let w = match m {
                    0xc7 => 1,
                    0xc8 => 2,
                    _ => 4,
                };
                let n = self.len(w)?;
                self.take(1 + n)?;
                Item::Other
            }
            Marker::Reserved => return Err(unreadable()),
        })
    }

    /// The next whole value as its own slice.
    pub fn value(&mut self) -> Result<Raw<'a>> {
        let start = self.pos;
        // items still to read: a container adds its items, so no recursion on deep values;
        // strings are checked when they are read, not when they are stepped over
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            match self.read(false)? {
                Item::Array(n) => pending += n as u64,
                Item::Map(n) => pending += 2 * n as u64,
                _ => {}
            }
        }
        Ok(Raw(&self.buf[start..self.pos]))
    }

    /// A map key, as bytes for comparing with names. Checked to be UTF-8 all the same: the
    /// general path refuses a record with a key that is not, and so must the fast lane.
    fn key(&mut self) -> Result<&'a [u8]> {
        let n = match self.be::<1>()?[0] {
            m @ 0xa0..=0xbf => (m & 0x1f) as usize,
            0xd9 => self.len(1)?,
            0xda => self.len(2)?,
            0xdb => self.len(4)?,
            _ => return Err(unreadable()),
        };
        let b = self.take(n)?;
        // names are short and ASCII: an inline check, not a call to the UTF-8 validator
        if b.is_ascii() || std::str::from_utf8(b).is_ok() {
            Ok(b)
        } else {
            Err(unreadable())
        }
    }

    /// The entries of the map that comes next, read in one pass.
    fn entries(&mut self) -> Result<Vec<(&'a [u8], Raw<'a>)>> {
        let Item::Map(n) = self.item()? else {
            return Err(unreadable());
        };
        // the length is the record's word: capacity only up to what the bytes can hold
        let left = self.buf.len().saturating_sub(self.pos);
        let mut out = Vec::with_capacity((n as usize).min(left / 2));
        for _ in 0..n {
            let k = self.key()?;
            out.push((k, self.value()?));
        }
        Ok(out)
    }

    fn string(&mut self) -> Result<&'a str> {
        match self.item()? {
            Item::Str(s) => Ok(s),
            _ => Err(unreadable()),
        }
    }
}

/// Exactly one msgpack value.
#[derive(Debug, Clone, Copy)]
pub struct Raw<'a>(pub &'a [u8]);

impl<'a> Raw<'a> {
    pub fn reader(self) -> Reader<'a> {
        Reader::new(self.0)
    }

    /// A reader giving strings as `Item::Text`: whoever writes them checks them.
    pub fn unchecked_reader(self) -> Reader<'a> {
        Reader {
            unchecked: true,
            ..self.reader()
        }
    }

    /// The value as a string, if it is one.
    pub fn as_str(self) -> Option<&'a str> {
        match self.reader().item() {
            Ok(Item::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// The entries of a map value (None: not a map), keys as bytes (see `Reader::key`). A
    /// key stored twice (never written so) is found at its first place.
    pub fn entries(self) -> Option<Vec<(&'a [u8], Raw<'a>)>> {
        self.reader().entries().ok()
    }

    /// The items of an array value (None: not an array).
    pub fn items(self) -> Option<Vec<Raw<'a>>> {
        let mut r = self.reader();
        let Ok(Item::Array(n)) = r.item() else {
            return None;
        };
        (0..n).map(|_| r.value().ok()).collect()
    }

    /// The value as `serde_json` would have decoded it.
    pub fn to_value(self) -> Result<Value> {
        rmp_serde::from_slice(self.0).map_err(|e| Fault::internal("stored record is unreadable", e))
    }
}

/// A decrypted document record, borrowed.
#[derive(Debug)]
pub struct RawDoc<'a> {
    pub id: &'a str,
    pub created: &'a str,
    pub updated: Option<&'a str>,
    pub creator: &'a str,
    pub owner: &'a str,
    /// Stored properties, in stored order (names as bytes, see `Reader::key`).
    pub props: Vec<(&'a [u8], Raw<'a>)>,
}

impl<'a> RawDoc<'a> {
    /// Reads a record as `codec::encode` wrote a `StoredDoc`.
    pub fn parse(record: &'a [u8]) -> Result<RawDoc<'a>> {
        let Some((&VERSION, body)) = record.split_first() else {
            return Err(Fault::internal(
                "stored record has an unknown format version",
                record.first().copied().unwrap_or_default(),
            ));
        };
        let mut r = Reader::new(body);
        let Item::Map(n) = r.item()? else {
            return Err(unreadable());
        };
        let mut doc = RawDoc {
            id: "",
            created: "",
            updated: None,
            creator: "",
            owner: "",
            props: Vec::new(),
        };
        let mut seen = 0u8;
        for _ in 0..n {
            match r.key()? {
                b"id" => (doc.id, seen) = (r.string()?, seen | 1),
                b"created" => (doc.created, seen) = (r.string()?, seen | 2),
                b"creator" => (doc.creator, seen) = (r.string()?, seen | 4),
                b"owner" => (doc.owner, seen) = (r.string()?, seen | 8),
                b"updated" => {
                    doc.updated = match r.item()? {
                        Item::Nil => None,
                        Item::Str(s) => Some(s),
                        _ => return Err(unreadable()),
                    }
                }
                b"props" => {
                    doc.props = r.entries()?;
                    seen |= 16;
                }
                _ => {
                    r.value()?;
                }
            }
        }
        if seen != 31 {
            return Err(unreadable());
        }
        Ok(doc)
    }

    pub fn prop(&self, name: &str) -> Option<Raw<'a>> {
        let name = name.as_bytes();
        self.props.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }
}

/// Looks names up in a map's entries, each search starting after the last hit: renderers
/// ask in definition order, which is mostly the stored order, so a lookup usually compares
/// one key instead of scanning.
pub struct Lookup<'m, 'a> {
    entries: &'m [(&'a [u8], Raw<'a>)],
    next: usize,
}

impl<'m, 'a> Lookup<'m, 'a> {
    pub fn new(entries: &'m [(&'a [u8], Raw<'a>)]) -> Self {
        Lookup { entries, next: 0 }
    }

    pub fn get(&mut self, name: &str) -> Option<Raw<'a>> {
        let name = name.as_bytes();
        let (passed, rest) = self.entries.split_at(self.next.min(self.entries.len()));
        let (i, v) = rest
            .iter()
            .enumerate()
            .map(|(i, e)| (i + passed.len(), e))
            .chain(passed.iter().enumerate())
            .find(|(_, (k, _))| *k == name)
            .map(|(i, (_, v))| (i, *v))?;
        self.next = i + 1;
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::document::StoredDoc;
    use crate::model::ids::ObjectId;
    use crate::store::codec::encode;
    use serde_json::json;

    fn stored(props: Value) -> StoredDoc {
        StoredDoc {
            id: ObjectId::new(),
            created: "2026-01-02T03:04:05.000Z".into(),
            updated: Some("2026-01-03T03:04:05.000Z".into()),
            creator: ObjectId::new(),
            owner: ObjectId::new(),
            props: props.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn reads_what_the_codec_wrote() {
        let d = stored(json!({
            "c_s": "héllo", "c_n": -5, "c_big": u64::MAX, "c_f": 1.5, "c_b": true,
            "c_null": null, "c_a": [1, "x", [2]], "c_m": {"k": {"z": 1}},
            "c_long": "x".repeat(70_000),
        }));
        let bytes = encode(&d);
        let raw = RawDoc::parse(&bytes).unwrap();
        assert_eq!(raw.id, d.id.to_hex());
        assert_eq!(raw.created, d.created);
        assert_eq!(raw.updated, d.updated.as_deref());
        assert_eq!(raw.creator, d.creator.to_hex());
        assert_eq!(raw.owner, d.owner.to_hex());
        let keys: Vec<&[u8]> = raw.props.iter().map(|(k, _)| *k).collect();
        let want: Vec<&[u8]> = d.props.keys().map(|k| k.as_bytes()).collect();
        assert_eq!(keys, want);
        for (k, v) in &d.props {
            assert_eq!(&raw.prop(k).unwrap().to_value().unwrap(), v, "{k}");
        }
        assert_eq!(raw.prop("c_s").unwrap().as_str(), Some("héllo"));
        assert_eq!(raw.prop("c_a").unwrap().items().unwrap().len(), 3);
        assert_eq!(raw.prop("c_m").unwrap().entries().unwrap()[0].0, b"k");
        assert!(raw.prop("c_n").unwrap().entries().is_none());
    }

    #[test]
    fn lookups_find_every_key_in_any_order() {
        let bytes = encode(&stored(json!({"a": 1, "b": 2, "c": 3, "d": 4})));
        let raw = RawDoc::parse(&bytes).unwrap();
        for order in [
            ["a", "b", "c", "d"],
            ["d", "c", "b", "a"],
            ["b", "d", "a", "c"],
            ["c", "a", "d", "b"],
        ] {
            let mut l = Lookup::new(&raw.props);
            for k in order {
                assert_eq!(
                    l.get(k).unwrap().to_value().unwrap(),
                    raw.prop(k).unwrap().to_value().unwrap()
                );
            }
            assert!(l.get("z").is_none());
            assert!(l.get("a").is_some(), "a miss leaves the cursor usable");
        }
        assert!(Lookup::new(&[]).get("a").is_none());
    }

    #[test]
    fn truncated_or_foreign_bytes_are_faults() {
        let bytes = encode(&stored(json!({"c_s": "abc", "c_a": [1, 2, 3]})));
        for cut in 0..bytes.len() {
            assert!(RawDoc::parse(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(RawDoc::parse(&[2, 0x80]).is_err());
        assert!(RawDoc::parse(&[VERSION, 0xc1]).is_err());
        // a map lacking the envelope
        assert!(RawDoc::parse(&[VERSION, 0x80]).is_err());
        // props claiming 4G entries in a few bytes: a fault, not a 4G allocation
        let mut huge = vec![VERSION, 0x81, 0xa5];
        huge.extend(b"props");
        huge.extend([0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, b'k', 0x01]);
        assert!(RawDoc::parse(&huge).is_err());
    }

    #[test]
    fn values_are_stepped_over_whole_in_every_form() {
        let d = stored(json!({
            "fixint": 5, "neg": -3, "nil": null, "t": true, "f": false, "u8": 200, "u16": 60_000,
            "u32": 4_000_000_000u64, "u64": u64::MAX, "i8": -100, "i16": -30_000,
            "i32": -2_000_000_000i64, "i64": i64::MIN, "f64": 1.5, "s": "x".repeat(31),
            "s8": "y".repeat(200), "s16": "z".repeat(70_000), "a": [1, [2, [3]], {"k": "v"}],
            "a16": vec![0; 20], "m16": (0..20).map(|i| (format!("k{i}"), json!(i)))
                .collect::<serde_json::Map<_, _>>(),
        }));
        let bytes = encode(&d);
        let raw = RawDoc::parse(&bytes).unwrap();
        assert_eq!(raw.props.len(), d.props.len());
        for (k, v) in &d.props {
            let got = raw.prop(k).unwrap();
            assert_eq!(&got.to_value().unwrap(), v, "{k}");
            // exactly one value: stepping over it again ends at its end
            let mut r = got.reader();
            r.value().unwrap();
            assert_eq!(r.pos, got.0.len(), "{k}");
        }
        for cut in 0..bytes.len() {
            assert!(RawDoc::parse(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn keys_of_every_string_width_are_read_and_must_be_utf8() {
        let keys_of = |key: &[u8]| {
            let mut m = vec![0x81u8];
            rmp::encode::write_str_len(&mut m, key.len() as u32).unwrap();
            m.extend_from_slice(key);
            m.push(0x01);
            let entries = Raw(&m).entries()?;
            Some(entries.iter().map(|(k, _)| k.to_vec()).collect::<Vec<_>>())
        };
        let (k40, k300, k80k) = ("k".repeat(40), "k".repeat(300), "ü".repeat(40_000));
        for key in ["", "c_a", "é", &k40, &k300, &k80k] {
            let want = vec![key.as_bytes().to_vec()];
            assert_eq!(keys_of(key.as_bytes()), Some(want), "{} bytes", key.len());
        }
        assert_eq!(keys_of(b"\xff"), None);
        assert_eq!(keys_of(b"ok\xc3"), None);
        assert_eq!(
            keys_of(&[b'a'; 70_000][..]).map(|k| k[0].len()),
            Some(70_000)
        );
        // keys that are not strings
        assert!(Raw(&[0x81, 0x01, 0x01]).entries().is_none());
        assert!(Raw(&[0x81, 0xc0, 0x01]).entries().is_none());
    }

    #[test]
    fn deep_values_are_skipped_without_recursion() {
        let mut v = vec![VERSION];
        v.extend(std::iter::repeat_n(0x91u8, 1_000_000));
        v.push(0xc0);
        assert!(Reader::new(&v[1..]).value().is_ok());
    }
}
