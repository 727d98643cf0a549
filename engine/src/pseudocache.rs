//! The pseudonym cache: one entry per identifier holding its pseudonym under every purpose.
//!
//! A record asks for the pseudonyms of a few identifiers (its served number, the other
//! party, IMSI, IMEI) under several purposes (each route's key and fields). Caching them
//! per (purpose, identifier) costs one cache-missing hash lookup per pseudonym; keeping an
//! identifier's pseudonyms for all purposes side by side costs one miss per identifier,
//! and the rest of the record's pseudonyms of that identifier are in the CPU cache. It
//! never changes an answer: a pseudonym is a pure function of the key and the identifier.
//!
//! Each identifier type has its own table: open addressing with linear probing over a
//! flat buffer, entries `[identifier key: u64][computed lanes: u64][pseudonym; lanes]`.
//! Bounded as the Python engine's cache is: two generations, a full young one becoming the
//! old one, so the hot identifiers survive. Pseudonyms are no secret (they are the output),
//! but the buffers are wiped when dropped all the same.

use zeroize::Zeroize;

use crate::normalize::Digits;
use crate::pseudonym::{Pseudonymizer, PSEUDONYM_CHARS};

/// Bytes of one generation's table at most; it holds at most half as many entries as it
/// has slots (so probes stay short).
const TABLE_BYTES: usize = 16 << 20;
const MAX_SLOTS: usize = 1 << 17;
const HEADER: usize = 16;

struct Table {
    /// `slots * stride` bytes, zero = empty (an identifier key is never zero).
    data: Vec<u8>,
    entries: usize,
}

impl Table {
    fn empty() -> Table {
        Table {
            data: Vec::new(),
            entries: 0,
        }
    }

    /// A table of `bytes` zero bytes (pages the kernel zeroes as they are first touched).
    fn zeroed(bytes: usize) -> Table {
        let data = vec![0u8; bytes];
        huge_pages(&data);
        Table { data, entries: 0 }
    }
}

/// Ask for transparent huge pages under a table: its entries are read at random, and with
/// 4 KiB pages nearly every read of a large table also misses the TLB.
fn huge_pages(data: &[u8]) {
    #[cfg(target_os = "linux")]
    {
        extern "C" {
            fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
        }
        const MADV_HUGEPAGE: i32 = 14;
        const PAGE: usize = 4096;
        let start = data.as_ptr() as usize;
        let aligned = start.next_multiple_of(PAGE);
        let end = start + data.len();
        if end > aligned + PAGE {
            // SAFETY: a hint about pages this Vec owns; it changes no content, and a
            // refusal (no THP) only leaves the pages as they are.
            unsafe {
                madvise(
                    aligned as *mut std::ffi::c_void,
                    end - aligned,
                    MADV_HUGEPAGE,
                );
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = data;
}

impl Drop for Table {
    fn drop(&mut self) {
        self.data.zeroize();
    }
}

/// The cached pseudonyms of one identifier type, for `lanes` pseudonymizers.
pub struct PseudonymCache {
    /// The pseudonymizer (index into the engine's) of each lane.
    pub pseudonymizers: Vec<usize>,
    stride: usize,
    slots: usize,
    young: Table,
    old: Table,
}

#[inline(always)]
fn prefetch(byte: &u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it reads nothing and cannot fault.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(byte).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = byte;
}

fn key_of(entry: &[u8]) -> u64 {
    u64::from_ne_bytes(entry[..8].try_into().unwrap_or_default())
}

fn filled_of(entry: &[u8]) -> u64 {
    u64::from_ne_bytes(entry[8..16].try_into().unwrap_or_default())
}

impl PseudonymCache {
    /// A cache for the pseudonymizers `pseudonymizers` (at most 64).
    pub fn new(pseudonymizers: Vec<usize>) -> PseudonymCache {
        assert!(pseudonymizers.len() <= 64, "at most 64 lanes");
        let stride = (HEADER + PSEUDONYM_CHARS * pseudonymizers.len()).next_multiple_of(8);
        // A power of two that fits TABLE_BYTES (the last power below it).
        let fit = (TABLE_BYTES / stride + 1).next_power_of_two() / 2;
        let slots = fit.min(MAX_SLOTS);
        PseudonymCache {
            pseudonymizers,
            stride,
            slots: slots.max(16),
            young: Table::empty(),
            old: Table::empty(),
        }
    }

    /// The lane of pseudonymizer `slot`, if this cache has one.
    pub fn lane(&self, slot: usize) -> Option<usize> {
        self.pseudonymizers.iter().position(|&s| s == slot)
    }

    fn home(&self, key: u64) -> usize {
        // Fibonacci hashing: the identifier keys are packed decimal digits.
        (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - self.slots.trailing_zeros())) as usize
    }

    /// The slot of `key` in `table`: where it is, or the empty slot where it would go.
    fn find(&self, table: &Table, key: u64) -> (usize, bool) {
        let mask = self.slots - 1;
        let mut slot = self.home(key);
        loop {
            let at = slot * self.stride;
            let found = key_of(&table.data[at..]);
            if found == key {
                return (slot, true);
            }
            if found == 0 {
                return (slot, false);
            }
            slot = (slot + 1) & mask;
        }
    }

    /// Ask the CPU to bring `value`'s entries in (both generations) while other work goes
    /// on: a record's identifiers are known long before their pseudonyms are needed, and
    /// each entry is otherwise a cache miss.
    pub fn prefetch(&self, value: &Digits) {
        let home = self.home(value.key()) * self.stride;
        for table in [&self.young, &self.old] {
            // The entry's first two cache lines: its key and its first lanes.
            if let Some(line) = table.data.get(home) {
                prefetch(line);
            }
            if let Some(line) = table.data.get(home + 64) {
                prefetch(line);
            }
        }
    }

    /// The pseudonym of `value` in `lane`, computed by `pseudonymizers[lane's]` on a miss.
    pub fn pseudonym(
        &mut self,
        lane: usize,
        value: &Digits,
        pseudonymizers: &[Pseudonymizer],
    ) -> [u8; PSEUDONYM_CHARS] {
        let key = value.key();
        let bit = 1u64 << lane;
        let at_lane = HEADER + lane * PSEUDONYM_CHARS;
        if self.young.data.is_empty() {
            self.young = Table::zeroed(self.slots * self.stride);
        }
        let (slot, present) = self.find(&self.young, key);
        let at = slot * self.stride;
        if present {
            let entry = &self.young.data[at..at + self.stride];
            if filled_of(entry) & bit != 0 {
                let mut out = [0u8; PSEUDONYM_CHARS];
                out.copy_from_slice(&entry[at_lane..at_lane + PSEUDONYM_CHARS]);
                return out;
            }
            let chars = self.fetch(lane, value, pseudonymizers);
            let entry = &mut self.young.data[at..at + self.stride];
            entry[at_lane..at_lane + PSEUDONYM_CHARS].copy_from_slice(&chars);
            let filled = filled_of(entry) | bit;
            entry[8..16].copy_from_slice(&filled.to_ne_bytes());
            return chars;
        }
        // Not young: take what the old generation has of it, then add the lane asked for.
        let mut buffer = [0u8; HEADER + PSEUDONYM_CHARS * 64];
        let entry = &mut buffer[..self.stride];
        if !self.old.data.is_empty() {
            let (old_slot, old_present) = self.find(&self.old, key);
            if old_present {
                let from = old_slot * self.stride;
                entry.copy_from_slice(&self.old.data[from..from + self.stride]);
            }
        }
        let chars = if filled_of(entry) & bit != 0 {
            let mut out = [0u8; PSEUDONYM_CHARS];
            out.copy_from_slice(&entry[at_lane..at_lane + PSEUDONYM_CHARS]);
            out
        } else {
            let chars = pseudonymizers[self.pseudonymizers[lane]].compute(value.as_bytes());
            entry[at_lane..at_lane + PSEUDONYM_CHARS].copy_from_slice(&chars);
            let filled = filled_of(entry) | bit;
            entry[8..16].copy_from_slice(&filled.to_ne_bytes());
            chars
        };
        entry[..8].copy_from_slice(&key.to_ne_bytes());
        let slot = if self.young.entries >= self.slots / 2 {
            // The young generation is full: it becomes the old one.
            self.old = std::mem::replace(&mut self.young, Table::zeroed(self.slots * self.stride));
            self.home(key)
        } else {
            slot
        };
        let at = slot * self.stride;
        self.young.data[at..at + self.stride].copy_from_slice(entry);
        self.young.entries += 1;
        chars
    }

    fn fetch(
        &self,
        lane: usize,
        value: &Digits,
        pseudonymizers: &[Pseudonymizer],
    ) -> [u8; PSEUDONYM_CHARS] {
        if !self.old.data.is_empty() {
            let (slot, present) = self.find(&self.old, value.key());
            let entry = &self.old.data[slot * self.stride..(slot + 1) * self.stride];
            if present && filled_of(entry) & (1u64 << lane) != 0 {
                let at = HEADER + lane * PSEUDONYM_CHARS;
                let mut out = [0u8; PSEUDONYM_CHARS];
                out.copy_from_slice(&entry[at..at + PSEUDONYM_CHARS]);
                return out;
            }
        }
        pseudonymizers[self.pseudonymizers[lane]].compute(value.as_bytes())
    }
}

/// The caches of the three identifier types (msisdn, imsi, imei) for route plans whose
/// pseudonymizers are `slots` (per plan, one per identifier type); and each plan's lanes.
pub fn caches_for(slots: &[[usize; 3]]) -> (Vec<PseudonymCache>, Vec<[usize; 3]>) {
    let mut caches = Vec::with_capacity(3);
    for id_type in 0..3 {
        let mut used: Vec<usize> = Vec::new();
        for plan in slots {
            if !used.contains(&plan[id_type]) {
                used.push(plan[id_type]);
            }
        }
        caches.push(PseudonymCache::new(used));
    }
    let lanes = slots
        .iter()
        .map(|plan| {
            let mut lanes = [0; 3];
            for (id_type, lane) in lanes.iter_mut().enumerate() {
                *lane = caches[id_type].lane(plan[id_type]).unwrap_or(0);
            }
            lanes
        })
        .collect();
    (caches, lanes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(n: u64) -> Digits {
        Digits::new(format!("4670{n:07}").as_bytes()).unwrap()
    }

    #[test]
    fn cached_pseudonyms_are_the_computed_ones_across_generations() {
        let pseudonymizers = vec![
            Pseudonymizer::new(b"key-a"),
            Pseudonymizer::new(b"key-b"),
            Pseudonymizer::new(b"key-c"),
        ];
        let mut cache = PseudonymCache::new(vec![2, 0]);
        assert_eq!(cache.lane(0), Some(1));
        assert_eq!(cache.lane(1), None);
        // A small table, so the young generation fills and turns old several times.
        cache.slots = 64;
        let identifiers = (cache.slots as u64) * 3;
        for round in 0..4 {
            for n in (0..identifiers).step_by(1 + round) {
                let value = digits(n % 50 + n);
                for lane in [0, 1] {
                    let want = pseudonymizers[cache.pseudonymizers[lane]].compute(value.as_bytes());
                    assert_eq!(cache.pseudonym(lane, &value, &pseudonymizers), want);
                }
            }
        }
        assert!(cache.young.entries <= cache.slots / 2);
    }
}
