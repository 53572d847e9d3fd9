//! Encryption at rest: XChaCha20-Poly1305 for sealed values and wrapped keys, and the STREAM
//! construction (nonce = 19-byte prefix ‖ segment index u32 BE ‖ last-segment flag) for blobs,
//! which gives random access per segment and detects truncation and reordering.

use crate::fault::{Fault, Result};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use std::path::Path;

pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 24;
pub const TAG_LEN: usize = 16;
pub const STREAM_PREFIX_LEN: usize = 19;
/// Plaintext bytes per blob segment.
pub const SEGMENT_LEN: usize = 64 * 1024;

/// A 256-bit key. Debug never prints it.
#[derive(Clone)]
pub struct Key([u8; KEY_LEN]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(…)")
    }
}

impl Key {
    pub fn random() -> Key {
        let mut k = [0u8; KEY_LEN];
        rand::thread_rng().fill_bytes(&mut k);
        Key(k)
    }

    pub fn from_bytes(b: &[u8]) -> Option<Key> {
        Some(Key(b.try_into().ok()?))
    }

    /// Reads a master key: 64 hex characters (surrounding whitespace ignored).
    pub fn from_hex(s: &str) -> std::result::Result<Key, String> {
        let s = s.trim();
        let bytes = hex::decode(s).map_err(|_| "master key is not hex".to_string())?;
        Key::from_bytes(&bytes).ok_or_else(|| {
            format!(
                "master key must be {KEY_LEN} bytes (64 hex chars), got {}",
                bytes.len()
            )
        })
    }

    pub fn load_file(path: &Path) -> std::result::Result<Key, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read master key file {}: {e}", path.display()))?;
        Key::from_hex(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// A key for one purpose, derived from this one: SHA-256(label ‖ 0 ‖ key). This key is
    /// uniformly random, so one hash is a sound derivation, and the label keeps purposes apart.
    pub fn derive(&self, label: &[u8]) -> Key {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(label);
        h.update([0]);
        h.update(self.0);
        Key(h.finalize().into())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }

    /// Seals `plaintext` bound to `aad`: random nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Opens a sealed value; any change to it or to `aad` is a fault, never wrong bytes.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(tampered());
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        self.cipher()
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| tampered())
    }

    pub fn wrap(&self, aad: &[u8], key: &Key) -> Vec<u8> {
        self.seal(aad, &key.0)
    }

    pub fn unwrap_key(&self, aad: &[u8], wrapped: &[u8]) -> Result<Key> {
        let raw = self.open(aad, wrapped)?;
        Key::from_bytes(&raw).ok_or_else(tampered)
    }

    /// Encrypts segment `index` of a STREAM.
    pub fn seal_segment(
        &self,
        prefix: &[u8; STREAM_PREFIX_LEN],
        index: u32,
        last: bool,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Vec<u8> {
        let nonce = stream_nonce(prefix, index, last);
        self.cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers")
    }

    pub fn open_segment(
        &self,
        prefix: &[u8; STREAM_PREFIX_LEN],
        index: u32,
        last: bool,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>> {
        let nonce = stream_nonce(prefix, index, last);
        self.cipher()
            .decrypt(XNonce::from_slice(&nonce), Payload { msg: sealed, aad })
            .map_err(|_| tampered())
    }
}

fn stream_nonce(prefix: &[u8; STREAM_PREFIX_LEN], index: u32, last: bool) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[..STREAM_PREFIX_LEN].copy_from_slice(prefix);
    n[STREAM_PREFIX_LEN..STREAM_PREFIX_LEN + 4].copy_from_slice(&index.to_be_bytes());
    n[NONCE_LEN - 1] = last as u8;
    n
}

pub fn random_prefix() -> [u8; STREAM_PREFIX_LEN] {
    let mut p = [0u8; STREAM_PREFIX_LEN];
    rand::thread_rng().fill_bytes(&mut p);
    p
}

/// Random bytes as lowercase hex, for tokens and secrets.
pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

pub fn tampered() -> Fault {
    tracing::error!("authenticated decryption failed: stored data was altered or the key is wrong");
    Fault::new(
        crate::fault::Category::Error,
        "integrity",
        "Stored data failed its integrity check",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_tamper() {
        let k = Key::random();
        let s = k.seal(b"aad", b"hello world");
        assert_eq!(k.open(b"aad", &s).unwrap(), b"hello world");
        assert!(k.open(b"other", &s).is_err());
        for i in 0..s.len() {
            let mut t = s.clone();
            t[i] ^= 0x01;
            assert!(k.open(b"aad", &t).is_err(), "flip at {i} undetected");
        }
        assert!(k.open(b"aad", &s[..s.len() - 1]).is_err());
        assert!(Key::random().open(b"aad", &s).is_err());
    }

    #[test]
    fn stream_segments_bind_index_and_last_flag() {
        let k = Key::random();
        let p = random_prefix();
        let s0 = k.seal_segment(&p, 0, false, b"b", b"first");
        let s1 = k.seal_segment(&p, 1, true, b"b", b"second");
        assert_eq!(k.open_segment(&p, 0, false, b"b", &s0).unwrap(), b"first");
        assert_eq!(k.open_segment(&p, 1, true, b"b", &s1).unwrap(), b"second");
        // reordering or truncation (a non-last segment presented as last) is detected
        assert!(k.open_segment(&p, 1, true, b"b", &s0).is_err());
        assert!(k.open_segment(&p, 0, true, b"b", &s0).is_err());
        assert!(k.open_segment(&p, 1, true, b"c", &s1).is_err());
    }

    #[test]
    fn master_key_parsing() {
        let k = Key::random();
        assert_eq!(Key::from_hex(&format!(" {}\n", k.to_hex())).unwrap().0, k.0);
        assert!(Key::from_hex("abcd").unwrap_err().contains("32 bytes"));
        assert!(Key::from_hex("not hex").is_err());
    }
}
