//! Record values: one format-version byte, then rmp-serde (named fields, so records can grow).

use crate::fault::{Fault, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub const VERSION: u8 = 1;

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = vec![VERSION];
    rmp_serde::encode::write_named(&mut out, v).expect("records always serialize");
    out
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&VERSION, rest)) => rmp_serde::from_slice(rest)
            .map_err(|e| Fault::internal("stored record is unreadable", e)),
        Some((v, _)) => Err(Fault::internal(
            "stored record has an unknown format version",
            v,
        )),
        None => Err(Fault::internal("stored record is empty", "")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_check() {
        let v = vec!["a".to_string(), "b".to_string()];
        let b = encode(&v);
        assert_eq!(b[0], VERSION);
        assert_eq!(decode::<Vec<String>>(&b).unwrap(), v);
        let mut bad = b.clone();
        bad[0] = 9;
        assert!(decode::<Vec<String>>(&bad).is_err());
        assert!(decode::<Vec<String>>(&[]).is_err());
    }
}
