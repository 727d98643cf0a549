//! Keyed pseudonyms: `<keyId>:` + base64url (no padding) of the first 128 bits of
//! HMAC-SHA-256 under a key derived (in Python) per purpose and identifier type.
//!
//! The key itself is not kept: only the two HMAC pad states derived from it, which are
//! as secret as the key and are wiped when dropped. Nothing here formats or logs them.

use sha2::block_api::compress256;
use zeroize::{Zeroize, Zeroizing};

const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

pub const PSEUDONYM_CHARS: usize = 22;

/// HMAC-SHA-256 with the key's pad blocks already compressed.
pub struct Hmac {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl Drop for Hmac {
    fn drop(&mut self) {
        self.inner.zeroize();
        self.outer.zeroize();
    }
}

impl Hmac {
    pub fn new(key: &[u8]) -> Hmac {
        let mut block = Zeroizing::new([0u8; 64]);
        if key.len() > 64 {
            let digest = Zeroizing::new(sha256(key));
            block[..32].copy_from_slice(&digest[..]);
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let mut pad = Zeroizing::new([0u8; 64]);
        let mut inner = IV;
        for (p, k) in pad.iter_mut().zip(block.iter()) {
            *p = k ^ 0x36;
        }
        compress256(&mut inner, &[*pad]);
        let mut outer = IV;
        for (p, k) in pad.iter_mut().zip(block.iter()) {
            *p = k ^ 0x5c;
        }
        compress256(&mut outer, &[*pad]);
        Hmac { inner, outer }
    }

    /// The MAC of a message of at most 55 bytes (identifiers are at most 16).
    pub fn mac_short(&self, message: &[u8]) -> [u8; 32] {
        debug_assert!(message.len() <= 55);
        let mut state = self.inner;
        let mut block = [0u8; 64];
        block[..message.len()].copy_from_slice(message);
        block[message.len()] = 0x80;
        let bits = ((64 + message.len()) * 8) as u64;
        block[56..].copy_from_slice(&bits.to_be_bytes());
        compress256(&mut state, &[block]);
        self.finish(&state)
    }

    /// The MAC of a message of any length (record ids: up to 128 characters of UTF-8).
    pub fn mac(&self, message: &[u8]) -> [u8; 32] {
        let mut state = self.inner;
        let mut chunks = message.chunks_exact(64);
        for chunk in &mut chunks {
            let mut block = [0u8; 64];
            block.copy_from_slice(chunk);
            compress256(&mut state, &[block]);
        }
        let rest = chunks.remainder();
        let mut tail = [0u8; 128];
        tail[..rest.len()].copy_from_slice(rest);
        tail[rest.len()] = 0x80;
        let blocks = if rest.len() < 56 { 1 } else { 2 };
        let bits = ((64 + message.len()) as u64) * 8;
        tail[blocks * 64 - 8..blocks * 64].copy_from_slice(&bits.to_be_bytes());
        for i in 0..blocks {
            let mut block = [0u8; 64];
            block.copy_from_slice(&tail[i * 64..i * 64 + 64]);
            compress256(&mut state, &[block]);
        }
        self.finish(&state)
    }

    /// The outer hash over the inner digest.
    fn finish(&self, state: &[u32; 8]) -> [u8; 32] {
        let mut block = [0u8; 64];
        for (i, word) in state.iter().enumerate() {
            block[i * 4..i * 4 + 4].copy_from_slice(&word.to_be_bytes());
        }
        block[32] = 0x80;
        block[56..].copy_from_slice(&(((64 + 32) * 8) as u64).to_be_bytes());
        let mut outer = self.outer;
        compress256(&mut outer, &[block]);
        let mut out = [0u8; 32];
        for (i, word) in outer.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

/// Plain SHA-256 (for keys longer than a block, which HMAC hashes first).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut state = IV;
    let mut chunks = data.chunks_exact(64);
    for chunk in &mut chunks {
        let mut block = [0u8; 64];
        block.copy_from_slice(chunk);
        compress256(&mut state, &[block]);
    }
    let rest = chunks.remainder();
    let mut tail = [0u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let blocks = if rest.len() < 56 { 1 } else { 2 };
    let bits = (data.len() as u64) * 8;
    tail[blocks * 64 - 8..blocks * 64].copy_from_slice(&bits.to_be_bytes());
    for i in 0..blocks {
        let mut block = [0u8; 64];
        block.copy_from_slice(&tail[i * 64..i * 64 + 64]);
        compress256(&mut state, &[block]);
    }
    let mut out = [0u8; 32];
    for (i, word) in state.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&word.to_be_bytes());
    }
    out
}

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url of 16 bytes without padding: 22 characters.
pub fn base64url16(data: &[u8; 16]) -> [u8; PSEUDONYM_CHARS] {
    let mut out = [0u8; PSEUDONYM_CHARS];
    let mut o = 0;
    for chunk in data.chunks(3) {
        let b0 = chunk[0] as u32;
        let b1 = *chunk.get(1).unwrap_or(&0) as u32;
        let b2 = *chunk.get(2).unwrap_or(&0) as u32;
        let n = (b0 << 16) | (b1 << 8) | b2;
        let chars = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        let count = chunk.len() + 1;
        for &c in chars.iter().take(count) {
            out[o] = BASE64URL[c as usize];
            o += 1;
        }
    }
    out
}

/// Pseudonyms for one purpose and identifier type (cached per identifier by
/// `pseudocache::PseudonymCache`).
pub struct Pseudonymizer {
    mac: Hmac,
}

impl Pseudonymizer {
    pub fn new(key: &[u8]) -> Pseudonymizer {
        Pseudonymizer {
            mac: Hmac::new(key),
        }
    }

    /// The 22 characters after `<keyId>:` for a normalized identifier.
    pub fn compute(&self, value: &[u8]) -> [u8; PSEUDONYM_CHARS] {
        let digest = self.mac.mac_short(value);
        let mut head = [0u8; 16];
        head.copy_from_slice(&digest[..16]);
        base64url16(&head)
    }

    /// The 22 characters after `<keyId>:` for any text, not cached (record ids do not
    /// repeat): as `PurposePseudonymizer.uncached` in `keys.py`.
    pub fn uncached(&self, value: &[u8]) -> [u8; PSEUDONYM_CHARS] {
        let digest = self.mac.mac(value);
        let mut head = [0u8; 16];
        head.copy_from_slice(&digest[..16]);
        base64url16(&head)
    }

    /// The 22 characters after `<keyId>:` for a value that is no normalized identifier
    /// (another party's service code or sender name): not cached, they are rare.
    pub fn pseudonym_text(&self, value: &[u8]) -> [u8; PSEUDONYM_CHARS] {
        self.uncached(value)
    }
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer(<key withheld>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha256_of_known_inputs() {
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&sha256(&[b'a'; 100])),
            "2816597888e4a0d3a36b82b83316ab32680eb8f00f8cd3b904d681246d285a0e"
        );
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = Hmac::new(b"Jefe");
        assert_eq!(
            hex(&mac.mac_short(b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hmac_of_long_messages_matches_rfc_4231_case_7() {
        let mac = Hmac::new(&[0xaa; 131]);
        let data = b"This is a test using a larger than block-size key and a larger than \
block-size data. The key needs to be hashed before being used by the HMAC algorithm.";
        assert_eq!(
            hex(&mac.mac(data)),
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"
        );
        for length in [0, 1, 54, 55, 56, 63, 64, 65, 119, 120, 200, 512] {
            let message = vec![b'7'; length];
            if length <= 55 {
                assert_eq!(mac.mac(&message), mac.mac_short(&message));
            }
        }
    }

    #[test]
    fn base64url_without_padding() {
        assert_eq!(&base64url16(&[0xff; 16]), b"_____________________w");
        assert_eq!(&base64url16(&[0; 16]), b"AAAAAAAAAAAAAAAAAAAAAA");
    }
}
