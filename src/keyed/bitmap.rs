//! The two-level bitmap of a [`KeyedNotifier`](crate::KeyedNotifier): one
//! bit per key, one summary bit per key word, and the orders that make a
//! drain find every key set before its wake without scanning the others.
//!
//! # Shape
//!
//! Key `k` is bit `k % W` of key word `k / W` (`W` = `usize::BITS`); key word
//! `w` is bit `w % W` of summary word `w / W`. With 65 536 keys on a 64-bit
//! target that is 1 024 key words under 16 summary words.
//!
//! * **notify(k)**: set `k`'s bit in its key word (one read-modify-write). If
//!   it was set already the key is pending: return, no system call. Otherwise
//!   set the key word's summary bit, then call the ordinary [`Waker::notify`]
//!   (which coalesces on the notifier's own pending bit).
//! * **drain**: first [`Notifier::drain`] (re-arm the fd), then for each
//!   non-zero summary word swap it to 0, and for each bit it had swap that key
//!   word to 0 and yield its bits. Cost: one load per summary word plus one
//!   swap per fired key word: O(keys fired + capacity / W²).
//!
//! The orders matter, and the loom models in `src/keyed/loom_tests.rs` check
//! them:
//!
//! * The drain clears a summary word *before* it reads the key words under
//!   it. Read first and clear after, and a notify that sets a key bit between
//!   the two finds the summary bit still set, so the summary bit it relies on
//!   is then cleared under it: the key sits in its word with nothing pointing
//!   at it, and no drain finds it (`summary_cleared_after_read_loses_keys`).
//! * A notify that sets a key bit after the drain swapped that key word read
//!   (AcqRel) the swap, so the drain's re-arm of the notifier happens before
//!   the notify's `Waker::notify`: that wake is a new one, and the next drain
//!   finds the key through the summary bit the notify set in between.
//! * A notify whose key bit the drain's swap read is yielded by that drain,
//!   and the swap (Acquire) synchronizes with the notify's set (Release):
//!   everything the sender did before `notify` is visible when the key is
//!   yielded.
//! * A summary word that a drain loads as 0 (and skips without a swap) was
//!   either clear when the notifier was re-armed, or was set by a notify
//!   whose `Waker::notify` comes after the re-arm: a wake is due, and the
//!   next drain finds it.

use std::collections::TryReserveError;
use std::fmt;

use crate::loom::{
    AtomicUsize,
    Ordering::{AcqRel, Relaxed},
};

/// Bits per atomic word.
pub(super) const W: usize = usize::BITS as usize;

/// The two-level bitmap: the part of the keyed notifier that the loom model
/// drives without a real fd.
pub(crate) struct Bitmap {
    /// Bit `k % W` of word `k / W` is key `k`.
    pub(super) words: Box<[AtomicUsize]>,
    /// Bit `w % W` of summary word `w / W` says key word `w` may be non-zero.
    pub(super) summary: Box<[AtomicUsize]>,
}

impl Bitmap {
    /// A bitmap for keys `0..capacity`, or the allocator's refusal (a
    /// capacity beyond the machine's memory) instead of an abort.
    pub(crate) fn new(capacity: usize) -> Result<Bitmap, TryReserveError> {
        let words = capacity.div_ceil(W);
        let atomics = |n: usize| -> Result<Box<[AtomicUsize]>, TryReserveError> {
            let mut v = Vec::new();
            v.try_reserve_exact(n)?;
            v.extend((0..n).map(|_| AtomicUsize::new(0)));
            Ok(v.into_boxed_slice())
        };
        Ok(Bitmap {
            words: atomics(words)?,
            summary: atomics(words.div_ceil(W))?,
        })
    }

    /// The sender's half: sets `key`'s bit. `Some(true)` if it was clear, and
    /// then the caller must wake the notifier; `Some(false)` if the key was
    /// pending already; `None` if `key` is beyond the bitmap. Atomics only,
    /// no panic.
    pub(crate) fn set(&self, key: usize) -> Option<bool> {
        let w = key / W;
        let bit = 1 << (key % W);
        // Release: the sender's work before `notify` happens-before the
        // drain's swap that reads this bit (or a later value: the swap is an
        // RMW, so it continues this release sequence even when this call only
        // found the bit set). Acquire: if this reads a drain's swap to 0, the
        // drain's re-arm of the notifier, sequenced before the swap, happens
        // before the `Waker::notify` this call goes on to make.
        let prev = self.words.get(w)?.fetch_or(bit, AcqRel);
        if prev & bit != 0 {
            return Some(false);
        }
        // Point the drain at the word. AcqRel so that a drain that reads this
        // summary bit also sees the key bit set before it.
        self.summary.get(w / W)?.fetch_or(1 << (w % W), AcqRel);
        Some(true)
    }

    /// Whether any key may be set. Relaxed loads of the summary words only.
    pub(crate) fn any(&self) -> bool {
        self.summary.iter().any(|s| s.load(Relaxed) != 0)
    }
}

impl fmt::Debug for Bitmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bitmap")
            .field("words", &self.words.len())
            .field("summary_words", &self.summary.len())
            .finish()
    }
}

/// Where a drain is in the bitmap: the summary bits and key bits it has
/// taken out (swapped to 0) and not yet yielded, and the next summary word to
/// look at.
#[derive(Debug, Default)]
pub(crate) struct Cursor {
    /// The next summary word to load.
    next: usize,
    /// The summary word `groups` came from.
    group: usize,
    /// Summary bits taken and not yet visited.
    groups: usize,
    /// The key word `keys` came from.
    word: usize,
    /// Key bits taken and not yet yielded.
    keys: usize,
}

impl Cursor {
    /// A cursor at the end: yields nothing, and has nothing to put back.
    pub(crate) fn done(map: &Bitmap) -> Cursor {
        Cursor {
            next: map.summary.len(),
            ..Cursor::default()
        }
    }

    /// The next fired key. Call only after the notifier was re-armed. Once
    /// it has returned `None` it always does: it has passed every summary
    /// word, and a key set after it passed comes with a wake of its own (see
    /// the module doc), for the next drain.
    pub(crate) fn next(&mut self, map: &Bitmap) -> Option<usize> {
        loop {
            if self.keys != 0 {
                let key = self.word * W + self.keys.trailing_zeros() as usize;
                self.keys &= self.keys - 1;
                return Some(key);
            }
            if self.groups != 0 {
                self.word = self.group * W + self.groups.trailing_zeros() as usize;
                self.groups &= self.groups - 1;
                // After the summary swap that gave us this bit (see the
                // module doc). Acquire: pairs with the senders' Release.
                // Release: a sender whose set reads this 0 sees our re-arm.
                self.keys = map.words.get(self.word).map_or(0, |w| w.swap(0, AcqRel));
                continue;
            }
            let summary = map.summary.get(self.next..)?;
            let Some((i, s)) = summary
                .iter()
                .enumerate()
                .find(|(_, s)| s.load(Relaxed) != 0)
            else {
                // The end: stay there (fused), with nothing to put back.
                self.next = map.summary.len();
                return None;
            };
            self.group = self.next + i;
            self.next = self.group + 1;
            // Clear the summary word *before* reading the key words under
            // it (see the module doc). A sender sets its key bit before its
            // summary bit, so a key bit whose summary bit this swap clears
            // is either taken by our key-word swap below, or set after it,
            // by a notify whose summary bit and wake both come after our
            // re-arm. AcqRel: pairs with the senders' AcqRel summary sets.
            self.groups = s.swap(0, AcqRel);
        }
    }

    /// Puts back what was taken and not yielded, as a sender would (key bits
    /// first, then the summary bit). `true` if any key is left in the bitmap
    /// for a later drain, which then needs a wake.
    pub(crate) fn put_back(&mut self, map: &Bitmap) -> bool {
        if self.keys != 0 {
            if let Some(word) = map.words.get(self.word) {
                word.fetch_or(self.keys, AcqRel);
            }
            self.groups |= 1 << (self.word % W);
            self.keys = 0;
        }
        let mut left = false;
        if self.groups != 0 {
            if let Some(s) = map.summary.get(self.group) {
                s.fetch_or(self.groups, AcqRel);
            }
            self.groups = 0;
            left = true;
        }
        let rest = map.summary.get(self.next..).unwrap_or(&[]);
        self.next = map.summary.len();
        left || rest.iter().any(|s| s.load(Relaxed) != 0)
    }
}

#[cfg(all(test, not(wakefd_loom)))]
mod tests {
    use super::*;

    fn drain_all(map: &Bitmap) -> Vec<usize> {
        let mut cursor = Cursor::default();
        std::iter::from_fn(|| cursor.next(map)).collect()
    }

    #[test]
    fn sizes_round_up() {
        for (capacity, words, summary) in [(0, 0, 0), (1, 1, 1), (W, 1, 1), (W + 1, 2, 1)] {
            let map = Bitmap::new(capacity).unwrap();
            assert_eq!((map.words.len(), map.summary.len()), (words, summary));
        }
        let map = Bitmap::new(W * W + 1).unwrap();
        assert_eq!((map.words.len(), map.summary.len()), (W + 1, 2));
    }

    #[test]
    fn set_coalesces_per_key_and_drain_yields_each_once() {
        let map = Bitmap::new(65_536).unwrap();
        let keys = [0, 1, 63, 64, 4095, 4096, 65_535];
        for key in keys {
            assert_eq!(map.set(key), Some(true));
            assert_eq!(map.set(key), Some(false));
        }
        assert_eq!(map.set(65_536 * 2), None);
        assert!(map.any());
        assert_eq!(drain_all(&map), keys);
        assert!(!map.any());
        assert_eq!(drain_all(&map), []);
    }

    #[test]
    fn put_back_keeps_what_was_not_yielded() {
        let map = Bitmap::new(10_000).unwrap();
        let keys = [5, 6, 70, 9_000];
        for key in keys {
            map.set(key);
        }
        let mut cursor = Cursor::default();
        assert_eq!(cursor.next(&map), Some(5));
        assert!(cursor.put_back(&map));
        assert_eq!(cursor.next(&map), None);
        assert_eq!(drain_all(&map), [6, 70, 9_000]);

        let mut cursor = Cursor::default();
        assert_eq!(cursor.next(&map), None);
        assert!(!cursor.put_back(&map));
    }
}
