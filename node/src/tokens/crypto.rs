//! The small amount of cryptography the token store needs, built on `sha2` alone: HMAC-SHA256
//! (RFC 2104; the sregistry signature and the sealing PRF), constant-time comparison, and the
//! node's token-sealing key.
//!
//! Sealing is a one-block PRF stream cipher: `ct = secret XOR HMAC-SHA256(K, DOMAIN ‖ hash ‖
//! nonce)`, with a fresh 16-byte nonce per token and the token's sha256 (`hash`, the record's
//! key) bound in, so a ciphertext moved to another record opens to garbage. Opening checks that
//! the result hashes back to `hash`; that is the integrity check (a wrong key, a damaged record
//! or a record edited without the key all fail it). Confidentiality rests on HMAC-SHA256 being a
//! PRF under `K`, which lives in `keys/tokens.key` (0600), never in the index.
//!
//! Owns the primitives and the key file's format. Must not touch records or log secrets.

use crate::secrets::{self, SecretError};
use sha2::{Digest, Sha256};
use std::path::Path;

/// SHA-256's block size, the HMAC key block.
const BLOCK: usize = 64;
/// Domain separation for the sealing keystream.
const SEAL_DOMAIN: &[u8] = b"shubnet/token-seal/v1";
/// Length of a sealing nonce.
pub const NONCE_LEN: usize = 16;
/// Length of a token's raw secret (40 hex digits).
pub const SECRET_LEN: usize = 20;

/// HMAC-SHA256 of the concatenation of `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut k0 = [0u8; BLOCK];
    if key.len() > BLOCK {
        k0[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k0[..key.len()].copy_from_slice(key);
    }
    let mut ipad = [0x36u8; BLOCK];
    let mut opad = [0x5cu8; BLOCK];
    for ((i, o), k) in ipad.iter_mut().zip(opad.iter_mut()).zip(k0.iter()) {
        *i ^= k;
        *o ^= k;
    }
    let mut inner = Sha256::new();
    inner.update(ipad);
    for p in parts {
        inner.update(p);
    }
    let mut outer = Sha256::new();
    outer.update(opad);
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Equality of two byte strings without an early exit on the first difference (lengths are not
/// secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The node's key for sealing token secrets. Its `Debug` shows nothing.
#[derive(Clone)]
pub struct SealKey([u8; 32]);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(<secret>)")
    }
}

impl SealKey {
    /// Loads the key at `path` (64 hex digits, mode 0600), creating it on first use.
    pub fn load_or_create(path: &Path) -> Result<Self, SecretError> {
        secrets::create_hex_seed(path)?;
        let malformed = || SecretError::Malformed(path.display().to_string(), "token sealing key");
        let raw = secrets::read(path)?;
        let text = std::str::from_utf8(&raw).map_err(|_| malformed())?;
        let bytes = hex::decode(text.trim()).map_err(|_| malformed())?;
        Ok(Self(bytes.try_into().map_err(|_| malformed())?))
    }

    /// A key from bytes (tests).
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(key)
    }

    fn keystream(&self, hash: &[u8; 32], nonce: &[u8; NONCE_LEN]) -> [u8; 32] {
        hmac_sha256(&self.0, &[SEAL_DOMAIN, hash, nonce])
    }

    /// Seals `secret`, the raw bytes of the token whose sha256 is `hash`.
    pub fn seal(
        &self,
        hash: &[u8; 32],
        nonce: [u8; NONCE_LEN],
        secret: &[u8; SECRET_LEN],
    ) -> Sealed {
        let ks = self.keystream(hash, &nonce);
        let mut ct = [0u8; SECRET_LEN];
        for ((c, s), k) in ct.iter_mut().zip(secret).zip(ks.iter()) {
            *c = s ^ k;
        }
        Sealed { nonce, ct }
    }

    /// Opens a sealed secret to the token text, or `None` if it does not hash back to `hash`
    /// (another node's key, or a damaged or forged record).
    pub fn open(&self, hash: &[u8; 32], sealed: &Sealed) -> Option<String> {
        let ks = self.keystream(hash, &sealed.nonce);
        let mut secret = [0u8; SECRET_LEN];
        for ((s, c), k) in secret.iter_mut().zip(sealed.ct.iter()).zip(ks.iter()) {
            *s = c ^ k;
        }
        let token = hex::encode(secret);
        ct_eq(&Sha256::digest(token.as_bytes()), hash).then_some(token)
    }
}

/// A sealed token secret as stored: nonce and ciphertext.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Fresh per token.
    pub nonce: [u8; NONCE_LEN],
    /// The secret XOR the keystream.
    pub ct: [u8; SECRET_LEN],
}

impl Sealed {
    /// `nonce ‖ ct` as hex, for the record.
    pub fn to_hex(&self) -> String {
        let mut v = Vec::with_capacity(NONCE_LEN + SECRET_LEN);
        v.extend_from_slice(&self.nonce);
        v.extend_from_slice(&self.ct);
        hex::encode(v)
    }

    /// Parses [`Sealed::to_hex`].
    pub fn from_hex(text: &str) -> Option<Self> {
        let v = hex::decode(text).ok()?;
        if v.len() != NONCE_LEN + SECRET_LEN {
            return None;
        }
        Some(Self {
            nonce: v[..NONCE_LEN].try_into().ok()?,
            ct: v[NONCE_LEN..].try_into().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(key: &[u8], msg: &[u8]) -> String {
        hex::encode(hmac_sha256(key, &[msg]))
    }

    #[test]
    fn hmac_matches_rfc4231_and_sregistry() {
        // RFC 4231 test cases 1, 2 and 6 (a key longer than the block).
        assert_eq!(
            h(&[0x0b; 20], b"Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            h(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            h(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            ),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        // The sregistry client's real signature (client-protocols.md §1.4).
        assert_eq!(
            h(
                b"5027225717bf0030465db1e7099e496022c42181",
                b"pull|dinosaur|20261125T18Z|tacos|latest|"
            ),
            "f563004a2d2e73eeb40ba52c53c492c2227e7fd2c1d896c595fce698ac90710d"
        );
        // Parts are concatenated.
        assert_eq!(
            hmac_sha256(b"k", &[b"ab", b"c"]),
            hmac_sha256(b"k", &[b"abc"])
        );
    }

    #[test]
    fn ct_eq_is_equality() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn seal_opens_only_with_the_key_and_the_record() {
        let secret = [7u8; SECRET_LEN];
        let token = hex::encode(secret);
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let key = SealKey::from_bytes([1; 32]);
        let sealed = key.seal(&hash, [9; NONCE_LEN], &secret);
        assert_ne!(&sealed.ct, &secret);
        assert_eq!(key.open(&hash, &sealed).as_deref(), Some(token.as_str()));
        let back = Sealed::from_hex(&sealed.to_hex()).expect("hex");
        assert!(back == sealed);
        // Another node's key, another record, a flipped bit: nothing.
        assert_eq!(SealKey::from_bytes([2; 32]).open(&hash, &sealed), None);
        assert_eq!(key.open(&[0; 32], &sealed), None);
        let mut bad = sealed.clone();
        bad.ct[3] ^= 1;
        assert_eq!(key.open(&hash, &bad), None);
        assert!(Sealed::from_hex("00").is_none());
        assert!(!format!("{key:?}").contains("01"));
    }

    #[test]
    fn key_file_is_private_and_stable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("keys/tokens.key");
        let a = SealKey::load_or_create(&p).expect("create");
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = SealKey::load_or_create(&p).expect("load");
        assert_eq!(a.0, b.0);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            SealKey::load_or_create(&p),
            Err(SecretError::Exposed(..))
        ));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::write(&p, "not hex").expect("write");
        assert!(matches!(
            SealKey::load_or_create(&p),
            Err(SecretError::Malformed(..))
        ));
    }
}
