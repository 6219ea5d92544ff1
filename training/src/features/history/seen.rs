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
        for (n, &i) in order.iter().enumerate() {
            let key = keys[i as usize];
            let repeat = n > 0 && keys[order[n - 1] as usize] == key;
            if !repeat && !self.contains(key) {
                fresh[i as usize] = true;
                new.push(key);
            }
        }
        self.merge_sorted(&new);
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
}
