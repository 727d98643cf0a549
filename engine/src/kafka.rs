//! Kafka's wire pieces the producer needs: record batches (v2, CRC-32C, no compression),
//! the default partitioner's murmur2, and Kafka's varints.
//!
//! The bytes must equal what aiokafka's `BatchBuilder` builds for the same records (the
//! worker's own path for the Python engine); `tests/unit/test_native_batches.py` compares
//! them, and `pipeline.shell.produce.reference_record_batches` is the specification.

/// Size of a v2 record batch's header, before its first record.
pub const HEADER_BYTES: usize = 61;

/// Kafka's murmur2 of a key (the Java client's `Utils.murmur2`), as the default
/// partitioner uses it: `(murmur2(key) & 0x7fffffff) % partitions`.
pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ (data.len() as u32);
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        let mut k = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = words.remainder();
    if tail.len() == 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// The partition of a keyed message among `partitions` (Kafka's default partitioner).
pub fn partition_of(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) & 0x7fff_ffff) % partitions
}

const CRC32C_POLY: u32 = 0x82f6_3b78;

const fn crc_tables() -> [[u32; 256]; 8] {
    let mut tables = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ CRC32C_POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        tables[0][i] = crc;
        i += 1;
    }
    let mut t = 1;
    while t < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = tables[t - 1][i];
            tables[t][i] = (prev >> 8) ^ tables[0][(prev & 0xff) as usize];
            i += 1;
        }
        t += 1;
    }
    tables
}

static CRC_TABLES: [[u32; 256]; 8] = crc_tables();

/// CRC-32C (Castagnoli) in software, eight bytes at a time.
pub fn crc32c_software(data: &[u8]) -> u32 {
    let t = &CRC_TABLES;
    let mut crc = !0u32;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let lo = crc ^ u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        let hi = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
        crc = t[7][(lo & 0xff) as usize]
            ^ t[6][((lo >> 8) & 0xff) as usize]
            ^ t[5][((lo >> 16) & 0xff) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xff) as usize]
            ^ t[2][((hi >> 8) & 0xff) as usize]
            ^ t[1][((hi >> 16) & 0xff) as usize]
            ^ t[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
        crc = (crc >> 8) ^ t[0][((crc ^ u32::from(b)) & 0xff) as usize];
    }
    !crc
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
unsafe fn crc32c_sse42(data: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
    let mut crc = u64::from(!0u32);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let word = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        crc = _mm_crc32_u64(crc, word);
    }
    let mut crc = crc as u32;
    for &b in chunks.remainder() {
        crc = _mm_crc32_u8(crc, b);
    }
    !crc
}

/// CRC-32C (Castagnoli), as Kafka's v2 record batches carry it: in hardware where the CPU
/// has SSE 4.2, else in software (the same values).
pub fn crc32c(data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("sse4.2") {
            // SAFETY: the CPU has SSE 4.2, checked just above.
            return unsafe { crc32c_sse42(data) };
        }
    }
    crc32c_software(data)
}

/// Bytes of `value` as a Kafka (zigzag) varint.
pub fn varint_len(value: i64) -> usize {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Append `value` as a Kafka (zigzag) varint.
pub fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One header, encoded as a record carries it (name length, name, value length, value).
pub fn encode_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    put_varint(out, name.len() as i64);
    out.extend_from_slice(name);
    put_varint(out, value.len() as i64);
    out.extend_from_slice(value);
}

/// Bytes `encode_header` writes.
pub fn header_len(name: &[u8], value: &[u8]) -> usize {
    varint_len(name.len() as i64) + name.len() + varint_len(value.len() as i64) + value.len()
}

/// A record's headers as pieces already encoded (see [`encode_header`]): the route's fixed
/// ones, then the record's own, concatenated in order.
pub struct EncodedHeaders<'a> {
    pub count: usize,
    pub parts: [&'a [u8]; 3],
}

impl EncodedHeaders<'_> {
    fn len(&self) -> usize {
        self.parts.iter().map(|p| p.len()).sum()
    }
}

/// Record batches are built as aiokafka's `BatchBuilder(batch_size, 0)` builds them: no
/// compression, no producer id, base sequence 0, every record stamped `timestamp_ms`, a
/// record refused (the batch closed, the record starting the next) when a non-empty batch
/// would reach `batch_bytes` with it.
pub struct BatchLayout {
    pub batch_bytes: usize,
    pub timestamp_ms: i64,
}

/// The body length of a record (what its length varint says).
pub fn record_body_len(
    offset_delta: u32,
    key: Option<&[u8]>,
    value_len: usize,
    headers: &EncodedHeaders<'_>,
) -> usize {
    let mut body = 1 + 1 + varint_len(i64::from(offset_delta)); // attributes, timestamp delta
    body += match key {
        Some(k) => varint_len(k.len() as i64) + k.len(),
        None => 1,
    };
    body += varint_len(value_len as i64) + value_len;
    body + varint_len(headers.count as i64) + headers.len()
}

/// Sizes the record batches of one partition as records come: where a batch closes.
#[derive(Default, Clone, Copy)]
pub struct BatchSizer {
    /// Bytes of the open batch (header included), 0 if none is open.
    pub bytes: usize,
    pub records: u32,
}

impl BatchSizer {
    /// Make room for a record of `body` bytes at offset delta `self.records` (call
    /// [`record_body_len`] with it): `Some(closed batch (bytes, records))` if the open
    /// batch closes first, the record then starting the next one at offset delta 0.
    pub fn fits(&mut self, layout: &BatchLayout, body: usize) -> Option<(usize, u32)> {
        let required = body + varint_len(body as i64);
        // aiokafka's test: a record that would reach the size (not only pass it) waits.
        if self.records > 0 && self.bytes + required >= layout.batch_bytes {
            let closed = (self.bytes, self.records);
            *self = BatchSizer::default();
            return Some(closed);
        }
        None
    }

    /// Count a record of `body` bytes in (after [`BatchSizer::fits`]).
    pub fn add(&mut self, body: usize) {
        if self.records == 0 {
            self.bytes = HEADER_BYTES;
        }
        self.bytes += body + varint_len(body as i64);
        self.records += 1;
    }
}

/// Writes into a buffer sized beforehand.
pub struct Cursor<'a> {
    pub buf: &'a mut [u8],
    pub pos: usize,
}

impl Cursor<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.pos..self.pos + bytes.len()].copy_from_slice(bytes);
        self.pos += bytes.len();
    }

    #[inline]
    fn varint(&mut self, value: i64) {
        let mut v = ((value << 1) ^ (value >> 63)) as u64;
        while v >= 0x80 {
            self.buf[self.pos] = (v as u8) | 0x80;
            self.pos += 1;
            v >>= 7;
        }
        self.buf[self.pos] = v as u8;
        self.pos += 1;
    }

    /// Write one record of body length `body` (from [`record_body_len`]).
    pub fn record(
        &mut self,
        body: usize,
        offset_delta: u32,
        key: Option<&[u8]>,
        value: &[u8],
        headers: &EncodedHeaders<'_>,
    ) {
        self.varint(body as i64);
        self.put(&[0, 0]); // attributes; timestamp delta: every record has the batch's time
        self.varint(i64::from(offset_delta));
        match key {
            Some(k) => {
                self.varint(k.len() as i64);
                self.put(k);
            }
            None => self.put(&[1]), // -1: no key
        }
        self.varint(value.len() as i64);
        self.put(value);
        self.varint(headers.count as i64);
        for part in headers.parts {
            self.put(part);
        }
    }
}

/// Fill in the header of a record batch whose records follow it in `batch` (all of it).
pub fn write_header(batch: &mut [u8], records: u32, layout: &BatchLayout) {
    let length = (batch.len() - 12) as i32;
    let h = &mut batch[..HEADER_BYTES];
    h[0..8].copy_from_slice(&0i64.to_be_bytes()); // base offset
    h[8..12].copy_from_slice(&length.to_be_bytes());
    h[12..16].copy_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch: none
    h[16] = 2; // magic
    h[21..23].copy_from_slice(&0i16.to_be_bytes()); // attributes
    h[23..27].copy_from_slice(&(records as i32 - 1).to_be_bytes()); // last offset delta
    h[27..35].copy_from_slice(&layout.timestamp_ms.to_be_bytes()); // first timestamp
    h[35..43].copy_from_slice(&layout.timestamp_ms.to_be_bytes()); // max timestamp
    h[43..51].copy_from_slice(&(-1i64).to_be_bytes()); // producer id
    h[51..53].copy_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    h[53..57].copy_from_slice(&0i32.to_be_bytes()); // base sequence, as aiokafka has it
    h[57..61].copy_from_slice(&(records as i32).to_be_bytes());
    let crc = crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas_values() {
        // From the Java client's UtilsTest (signed there) and aiokafka's partitioner.
        assert_eq!(murmur2(b"21") as i32, -973_932_308);
        assert_eq!(murmur2(b"foobar") as i32, -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string") as i32, -985_981_536);
        assert_eq!(
            murmur2(b"a-little-bit-longer-string") as i32,
            -1_486_304_829
        );
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") as i32,
            -58_897_971
        );
        assert_eq!(murmur2(b"abc") as i32, 479_470_107);
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c_software(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(b""), 0);
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in 0..data.len() {
            assert_eq!(crc32c(&data[..len]), crc32c_software(&data[..len]));
        }
    }

    #[test]
    fn varints_are_zigzag() {
        for (value, bytes) in [
            (0i64, vec![0u8]),
            (-1, vec![1]),
            (1, vec![2]),
            (63, vec![126]),
            (64, vec![128, 1]),
            (300, vec![216, 4]),
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out, bytes);
            assert_eq!(varint_len(value), bytes.len());
        }
    }

    #[test]
    fn a_full_batch_closes_and_the_next_takes_the_record() {
        let layout = BatchLayout {
            batch_bytes: 1000,
            timestamp_ms: 1,
        };
        let none = EncodedHeaders {
            count: 0,
            parts: [b"", b"", b""],
        };
        let mut sizer = BatchSizer::default();
        let mut closed = Vec::new();
        for _ in 0..10 {
            let body = record_body_len(sizer.records, Some(b"k"), 300, &none);
            if let Some(batch) = sizer.fits(&layout, body) {
                closed.push(batch);
            }
            let body = record_body_len(sizer.records, Some(b"k"), 300, &none);
            sizer.add(body);
        }
        closed.push((sizer.bytes, sizer.records));
        assert!(closed.len() > 1);
        assert!(closed.iter().all(|&(bytes, _)| bytes < 1000));
        assert_eq!(closed.iter().map(|&(_, n)| n).sum::<u32>(), 10);
    }
}
