//! ObjectIds (SPEC §1): 4-byte seconds, 5 random bytes, 3-byte counter; hex order is creation
//! order within a process.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ObjectId(pub [u8; 12]);

fn process_random() -> &'static [u8; 5] {
    static R: OnceLock<[u8; 5]> = OnceLock::new();
    R.get_or_init(rand::random)
}

fn counter() -> &'static AtomicU32 {
    static C: OnceLock<AtomicU32> = OnceLock::new();
    C.get_or_init(|| AtomicU32::new(rand::random::<u32>() & 0x00ff_ffff))
}

impl ObjectId {
    pub fn new() -> ObjectId {
        let secs = chrono::Utc::now().timestamp() as u32;
        let c = counter().fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff;
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&secs.to_be_bytes());
        b[4..9].copy_from_slice(process_random());
        b[9..].copy_from_slice(&c.to_be_bytes()[1..]);
        ObjectId(b)
    }

    /// A fixed id, e.g. the administrator role `000000000000000000000004`.
    pub const fn from_u32(n: u32) -> ObjectId {
        let nb = n.to_be_bytes();
        ObjectId([0, 0, 0, 0, 0, 0, 0, 0, nb[0], nb[1], nb[2], nb[3]])
    }

    pub fn parse(s: &str) -> Option<ObjectId> {
        if s.len() != 24 {
            return None;
        }
        let mut b = [0u8; 12];
        hex::decode_to_slice(s, &mut b).ok()?;
        Some(ObjectId(b))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn bytes(&self) -> &[u8; 12] {
        &self.0
    }

    pub fn from_slice(b: &[u8]) -> Option<ObjectId> {
        Some(ObjectId(b.try_into().ok()?))
    }

    /// The smallest id not created before `secs`; used as a scan bound.
    pub fn max_for_secs(secs: u32) -> ObjectId {
        let mut b = [0xffu8; 12];
        b[..4].copy_from_slice(&secs.to_be_bytes());
        ObjectId(b)
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({})", self.to_hex())
    }
}

impl Serialize for ObjectId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for ObjectId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ObjectId::parse(&s).ok_or_else(|| serde::de::Error::custom("invalid ObjectId"))
    }
}

/// `iso`'s format as a chrono pattern.
const ISO_PATTERN: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

/// Dates: ISO-8601 UTC with milliseconds. Years are 0000–9999 so that the string order is
/// the time order (see `parse_date`).
pub fn iso(t: chrono::DateTime<chrono::Utc>) -> String {
    use chrono::{Datelike, Timelike};
    use std::fmt::Write as _;
    let (year, ms) = (t.year(), t.nanosecond() / 1_000_000);
    // other years and leap seconds: chrono's own formatting, which parses the pattern on
    // every call (a few percent of a GET)
    if !(0..=9999).contains(&year) || ms > 999 {
        return t.format(ISO_PATTERN).to_string();
    }
    let mut s = String::with_capacity(24);
    let _ = write!(
        s,
        "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    s
}

pub fn now_iso() -> String {
    iso(chrono::Utc::now())
}

/// Parses an ISO-8601 date (with or without time/offset) or epoch milliseconds into the
/// canonical form; None when it cannot be read as a date.
pub fn parse_date(v: &serde_json::Value) -> Option<String> {
    parse_date_any(v).filter(|s| s.len() == 24 && s.as_bytes()[0].is_ascii_digit())
}

fn parse_date_any(v: &serde_json::Value) -> Option<String> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
    match v {
        serde_json::Value::String(s) => {
            let s = s.trim();
            if let Ok(d) = DateTime::parse_from_rfc3339(s) {
                return Some(iso(d.with_timezone(&Utc)));
            }
            if let Ok(d) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
                return Some(iso(Utc.from_utc_datetime(&d)));
            }
            if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                return Some(iso(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0)?)));
            }
            None
        }
        serde_json::Value::Number(n) => {
            let ms = n.as_i64()?;
            Utc.timestamp_millis_opt(ms).single().map(iso)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_in_creation_order_and_round_trip() {
        let a = ObjectId::new();
        let b = ObjectId::new();
        assert!(a < b);
        assert!(a.to_hex() < b.to_hex());
        assert_eq!(ObjectId::parse(&a.to_hex()), Some(a));
        assert_eq!(ObjectId::parse("zz"), None);
        assert_eq!(ObjectId::parse("00000000000000000000000g"), None);
        assert_eq!(ObjectId::from_u32(4).to_hex(), "000000000000000000000004");
    }

    proptest::proptest! {
        #[test]
        fn iso_writes_what_chrono_formats(ms in -62_167_219_200_000i64..=253_402_300_799_999i64, leap in 0u32..3) {
            use chrono::{TimeZone, Timelike};
            let t = chrono::Utc.timestamp_millis_opt(ms).unwrap();
            // a leap second's nanoseconds run past one second
            let t = if leap == 0 && t.second() == 59 {
                t.with_nanosecond(1_000_000_000 + t.nanosecond()).unwrap_or(t)
            } else {
                t
            };
            proptest::prop_assert_eq!(iso(t), t.format(ISO_PATTERN).to_string());
        }
    }

    #[test]
    fn iso_edges_match_chrono() {
        use chrono::{NaiveDate, TimeZone};
        let chrono_iso = |t: chrono::DateTime<chrono::Utc>| t.format(ISO_PATTERN).to_string();
        let at = |y, mo, d, h, mi, s, ns| {
            let n = NaiveDate::from_ymd_opt(y, mo, d)
                .unwrap()
                .and_hms_nano_opt(h, mi, s, ns)
                .unwrap();
            chrono::Utc.from_utc_datetime(&n)
        };
        for t in [
            at(0, 1, 1, 0, 0, 0, 0),
            at(9999, 12, 31, 23, 59, 59, 999_999_999),
            at(2016, 12, 31, 23, 59, 59, 1_500_000_000), // a leap second
            at(10000, 1, 1, 0, 0, 0, 0),
            at(-1, 12, 31, 23, 59, 59, 0),
            at(2026, 11, 29, 20, 5, 7, 1_000_000),
        ] {
            assert_eq!(iso(t), chrono_iso(t));
        }
        assert_eq!(
            iso(at(2026, 1, 2, 3, 4, 5, 6_000_000)),
            "2026-01-02T03:04:05.006Z"
        );
    }

    #[test]
    fn dates_are_normalised() {
        use serde_json::json;
        assert_eq!(
            parse_date(&json!("2026-11-29T12:00:00Z")).unwrap(),
            "2026-11-29T12:00:00.000Z"
        );
        assert_eq!(
            parse_date(&json!("2026-11-29T13:00:00.5+01:00")).unwrap(),
            "2026-11-29T12:00:00.500Z"
        );
        assert_eq!(
            parse_date(&json!("2026-11-29")).unwrap(),
            "2026-11-29T00:00:00.000Z"
        );
        assert_eq!(parse_date(&json!(0)).unwrap(), "1970-01-01T00:00:00.000Z");
        assert_eq!(parse_date(&json!("yesterday")), None);
        // outside 0000-9999 the string order would not be the time order
        assert_eq!(parse_date(&json!(253402300800000i64)), None);
        assert_eq!(parse_date(&json!(-62167219200001i64)), None);
        assert_eq!(
            parse_date(&json!(253402300799999i64)).unwrap(),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(parse_date(&json!(true)), None);
    }
}
