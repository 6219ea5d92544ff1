//! Which shipments a history already holds, so an outcome or decision reported twice counts
//! once. Ten million shipment ids as `String`s in a hash set took ~1.1 GB for the two sets; here
//! each id is a 128-bit key (two keyed SipHash passes: no collision is expected among 10^15
//! ids) in a sorted vector, with a small hash set for the ones added since the last merge.

use rustc_hash::FxHashSet;

pub(super) use crate::data::table::ShipmentKey;

#[derive(Debug, Clone, Default)]
pub(super) struct Seen {
    sorted: Vec<ShipmentKey>,
    recent: FxHashSet<ShipmentKey>,
}

impl Seen {
    pub fn len(&self) -> usize {
        self.sorted.len() + self.recent.len()
    }

    pub fn contains(&self, key: ShipmentKey) -> bool {
        self.recent.contains(&key) || self.sorted.binary_search(&key).is_ok()
    }

    /// Adds one key; false when it was there.
    pub fn insert(&mut self, key: ShipmentKey) -> bool {
        if self.contains(key) {
            return false;
        }
        self.recent.insert(key);
        // Merging costs the whole vector; doing it when the set reaches a sixteenth of it keeps
        // an insert O(1) amortized and the set small.
        if self.recent.len() > (self.sorted.len() / 16).max(4096) {
            let mut new: Vec<ShipmentKey> = self.recent.drain().collect();
            new.sort_unstable();
            self.merge_sorted(&new);
        }
        true
    }

    /// Of `keys` (in the order given), which are new: neither held nor earlier in `keys`.
    /// They are added. One sort instead of a set lookup per key.
    pub fn insert_all(&mut self, keys: &[ShipmentKey]) -> Vec<bool> {
        let mut order: Vec<u32> = (0..keys.len() as u32).collect();
        // Stable: among repeats, the first given comes first and is the one kept.
        order.sort_by_key(|&i| keys[i as usize]);
        let mut fresh = vec![false; keys.len()];
        let mut new = Vec::with_capacity(keys.len());
        // The keys come in order, so each search starts where the last ended and gallops:
        // a block of keys against ten million held costs a few probes each, in cache.
        let mut from = 0;
        for (n, &i) in order.iter().enumerate() {
            let key = keys[i as usize];
            if n > 0 && keys[order[n - 1] as usize] == key {
                continue;
            }
            from = lower_bound_from(&self.sorted, from, key);
            if self.sorted.get(from) != Some(&key) && !self.recent.contains(&key) {
                fresh[i as usize] = true;
                new.push(key);
            }
        }
        // Merging costs the whole vector, so small batches wait in the set as single inserts do.
        if new.len() > (self.sorted.len() / 16).max(4096) {
            self.merge_sorted(&new);
        } else {
            self.recent.extend(new);
            if self.recent.len() > (self.sorted.len() / 16).max(4096) {
                let mut recent: Vec<ShipmentKey> = self.recent.drain().collect();
                recent.sort_unstable();
                self.merge_sorted(&recent);
            }
        }
        fresh
    }

    fn merge_sorted(&mut self, new: &[ShipmentKey]) {
        if new.is_empty() {
            return;
        }
        let old = std::mem::take(&mut self.sorted);
        let mut out = Vec::with_capacity(old.len() + new.len());
        let (mut a, mut b) = (old.iter().peekable(), new.iter().peekable());
        while let Some(&k) = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if y < x => b.next(),
            (Some(_), _) => a.next(),
            (None, _) => b.next(),
        } {
            out.push(k);
        }
        self.sorted = out;
    }
}

/// The first position at or after `from` whose key is not below `key`, all keys before `from`
/// being below it: galloping from `from`, then a binary search in the last stride.
fn lower_bound_from(sorted: &[ShipmentKey], from: usize, key: ShipmentKey) -> usize {
    let (mut lo, mut hi, mut step) = (from, from, 1);
    while hi < sorted.len() && sorted[hi] < key {
        lo = hi + 1;
        hi = from + step;
        step *= 2;
    }
    let hi = hi.min(sorted.len());
    lo + sorted[lo..hi].partition_point(|k| *k < key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_new_once_whichever_way_it_arrives() {
        let mut s = Seen::default();
        assert!(s.insert(ShipmentKey::of("a")));
        assert!(!s.insert(ShipmentKey::of("a")));
        let keys: Vec<ShipmentKey> = ["b", "a", "c", "b"].map(ShipmentKey::of).to_vec();
        assert_eq!(s.insert_all(&keys), vec![true, false, true, false]);
        assert_eq!(s.len(), 3);
        for i in 0..10_000 {
            assert!(s.insert(ShipmentKey::of(&format!("id-{i}"))));
        }
        assert!(s.contains(ShipmentKey::of("c")) && s.contains(ShipmentKey::of("id-9999")));
        assert!(!s.insert(ShipmentKey::of("id-17")));
        assert_eq!(s.len(), 10_003);
        assert_ne!(ShipmentKey::of("a"), ShipmentKey::of("b"));
    }

    #[test]
    fn batches_of_any_size_agree_with_a_plain_set() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let mut s = Seen::default();
        let mut plain = std::collections::HashSet::new();
        // Batches small (kept in the set) and large (merged), ids repeating within and across.
        for batch in [10, 5_000, 300, 40_000, 7, 2_000, 60_000, 1] {
            let ids: Vec<String> = (0..batch)
                .map(|_| format!("id-{}", rng.gen_range(0..80_000)))
                .collect();
            let keys: Vec<ShipmentKey> = ids.iter().map(|i| ShipmentKey::of(i)).collect();
            let expected: Vec<bool> = ids.iter().map(|i| plain.insert(i.clone())).collect();
            assert_eq!(s.insert_all(&keys), expected, "batch of {batch}");
            assert_eq!(s.len(), plain.len());
        }
        assert!(
            !s.sorted.is_empty() && !s.recent.is_empty(),
            "both paths were taken"
        );
    }
}
