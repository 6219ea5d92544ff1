//! Compact text columns for [`super::ShipmentTable`]: [`Labels`] for values that repeat
//! (carriers, warehouses, tiers: a code per row into a shared dictionary) and [`Texts`] for
//! values that do not (shipment ids, notes: one buffer and an end offset per row).
//!
//! Ten million shipments held their eight label columns and ids as `String`s in ~3.7 GB; as
//! codes and one buffer they take ~0.5 GB, and a categorical feature is a dictionary lookup per
//! distinct value instead of a hash of every row's text.

use std::hash::{Hash, Hasher};
use std::ops::Index;
use std::sync::Arc;

use rustc_hash::FxHashMap;

/// The code of a missing value.
const NONE: u32 = u32::MAX;

/// A column of repeated text values, `None` allowed.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    codes: Vec<u32>,
    /// Shared between copies of the column ([`Labels::select`] copies only codes).
    dict: Arc<Vec<Box<str>>>,
    /// Text to code, built when the first value is pushed into a column.
    index: Option<FxHashMap<Box<str>, u32>>,
}

impl Labels {
    pub fn with_capacity(n: usize) -> Self {
        Labels {
            codes: Vec::with_capacity(n),
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        self.codes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// The value of row `i`, `None` where missing.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&str> {
        match self.codes[i] {
            NONE => None,
            c => Some(&self.dict[c as usize]),
        }
    }

    /// Row `i`'s position in [`Labels::dictionary`], `None` where missing.
    #[inline]
    pub fn code(&self, i: usize) -> Option<u32> {
        Some(self.codes[i]).filter(|&c| c != NONE)
    }

    /// The distinct values, in order of first appearance (a copy may hold values no row uses).
    pub fn dictionary(&self) -> &[Box<str>] {
        &self.dict
    }

    pub fn push(&mut self, value: &str) {
        let code = self.intern(value);
        self.codes.push(code);
    }

    pub fn push_opt(&mut self, value: Option<&str>) {
        match value {
            Some(v) => self.push(v),
            None => self.codes.push(NONE),
        }
    }

    /// Sets row `i`.
    pub fn set(&mut self, i: usize, value: Option<&str>) {
        self.codes[i] = match value {
            Some(v) => self.intern(v),
            None => NONE,
        };
    }

    fn intern(&mut self, value: &str) -> u32 {
        let dict = &self.dict;
        let index = self.index.get_or_insert_with(|| {
            dict.iter()
                .enumerate()
                .map(|(i, v)| (v.clone(), i as u32))
                .collect()
        });
        if let Some(&c) = index.get(value) {
            return c;
        }
        let c = self.dict.len() as u32;
        index.insert(value.into(), c);
        Arc::make_mut(&mut self.dict).push(value.into());
        c
    }

    /// Appends another column's rows.
    pub fn extend_from(&mut self, other: &Labels) {
        let map: Vec<u32> = other.dict.iter().map(|v| self.intern(v)).collect();
        self.codes.extend(
            other
                .codes
                .iter()
                .map(|&c| if c == NONE { NONE } else { map[c as usize] }),
        );
    }

    /// The given rows, in the given order, sharing this column's dictionary.
    pub fn select(&self, rows: &[usize]) -> Labels {
        Labels {
            codes: rows.iter().map(|&r| self.codes[r]).collect(),
            dict: self.dict.clone(),
            index: None,
        }
    }

    /// Keeps the rows where `keep` is true.
    pub fn retain(&mut self, keep: &[bool]) {
        let mut k = keep.iter();
        self.codes.retain(|_| *k.next().unwrap_or(&true));
    }

    pub fn iter(&self) -> impl Iterator<Item = Option<&str>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.codes.capacity() * 4 + self.dict.iter().map(|v| v.len() + 16).sum::<usize>()
    }
}

impl Labels {
    /// The codes and dictionary, for writing the column out ([`super::spill`]).
    pub(crate) fn parts(&self) -> (&[u32], &[Box<str>]) {
        (&self.codes, &self.dict)
    }

    /// A column from [`Labels::parts`]; `None` when a code names no dictionary entry.
    pub(crate) fn from_parts(codes: Vec<u32>, dict: Vec<Box<str>>) -> Option<Self> {
        let n = dict.len() as u32;
        codes.iter().all(|&c| c == NONE || c < n).then(|| Labels {
            codes,
            dict: Arc::new(dict),
            index: None,
        })
    }
}

impl Index<usize> for Labels {
    type Output = str;

    /// The value of row `i` (`""` where missing).
    fn index(&self, i: usize) -> &str {
        self.get(i).unwrap_or("")
    }
}

impl PartialEq for Labels {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<'a> FromIterator<&'a str> for Labels {
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
        let mut l = Labels::default();
        for v in iter {
            l.push(v);
        }
        l
    }
}

impl<'a> FromIterator<Option<&'a str>> for Labels {
    fn from_iter<I: IntoIterator<Item = Option<&'a str>>>(iter: I) -> Self {
        let mut l = Labels::default();
        for v in iter {
            l.push_opt(v);
        }
        l
    }
}

/// A column of mostly distinct text values, `None` allowed: one buffer, one end per row.
#[derive(Debug, Clone, Default)]
pub struct Texts {
    bytes: String,
    /// End of each row's text in `bytes`; the top bit marks a missing value.
    ends: Vec<u64>,
}

const MISSING: u64 = 1 << 63;

impl Texts {
    pub fn with_capacity(rows: usize, bytes: usize) -> Self {
        Texts {
            bytes: String::with_capacity(bytes),
            ends: Vec::with_capacity(rows),
        }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    #[inline]
    pub fn get(&self, i: usize) -> Option<&str> {
        let end = self.ends[i];
        if end & MISSING != 0 {
            return None;
        }
        let start = if i == 0 {
            0
        } else {
            self.ends[i - 1] & !MISSING
        };
        Some(&self.bytes[start as usize..end as usize])
    }

    pub fn push(&mut self, value: &str) {
        self.bytes.push_str(value);
        self.ends.push(self.bytes.len() as u64);
    }

    pub fn push_opt(&mut self, value: Option<&str>) {
        match value {
            Some(v) => self.push(v),
            None => self.ends.push(self.bytes.len() as u64 | MISSING),
        }
    }

    pub fn extend_from(&mut self, other: &Texts) {
        let base = self.bytes.len() as u64;
        self.bytes.push_str(&other.bytes);
        self.ends.extend(
            other
                .ends
                .iter()
                .map(|&e| ((e & !MISSING) + base) | (e & MISSING)),
        );
    }

    pub fn select(&self, rows: &[usize]) -> Texts {
        let mut t = Texts::with_capacity(rows.len(), 0);
        for &r in rows {
            t.push_opt(self.get(r));
        }
        t
    }

    /// Keeps the rows where `keep` is true.
    pub fn retain(&mut self, keep: &[bool]) {
        if keep.iter().all(|&k| k) {
            return;
        }
        let old = std::mem::take(self);
        for (i, &k) in keep.iter().enumerate() {
            if k {
                self.push_opt(old.get(i));
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = Option<&str>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * 8
    }
}

impl Texts {
    /// The buffer and end offsets, for writing the column out ([`super::spill`]).
    pub(crate) fn parts(&self) -> (&str, &[u64]) {
        (&self.bytes, &self.ends)
    }

    /// A column from [`Texts::parts`]; `None` unless the ends rise within the buffer on
    /// character boundaries, so every [`Texts::get`] is a valid slice.
    pub(crate) fn from_parts(bytes: String, ends: Vec<u64>) -> Option<Self> {
        let mut start = 0u64;
        for &e in &ends {
            let end = e & !MISSING;
            if end < start || end > bytes.len() as u64 || !bytes.is_char_boundary(end as usize) {
                return None;
            }
            start = end;
        }
        Some(Texts { bytes, ends })
    }
}

impl Index<usize> for Texts {
    type Output = str;

    /// The value of row `i` (`""` where missing).
    fn index(&self, i: usize) -> &str {
        self.get(i).unwrap_or("")
    }
}

impl PartialEq for Texts {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<'a> FromIterator<&'a str> for Texts {
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
        let mut t = Texts::default();
        for v in iter {
            t.push(v);
        }
        t
    }
}

impl<'a> FromIterator<Option<&'a str>> for Texts {
    fn from_iter<I: IntoIterator<Item = Option<&'a str>>>(iter: I) -> Self {
        let mut t = Texts::default();
        for v in iter {
            t.push_opt(v);
        }
        t
    }
}

/// A shipment id reduced to 128 bits (two keyed SipHash passes: no collision is expected
/// among 10^15 ids), for sets and duplicate checks over millions of ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShipmentKey(u128);

impl ShipmentKey {
    pub fn of(id: &str) -> Self {
        // `DefaultHasher::new()` is SipHash-1-3 with fixed keys: the same id gives the same key
        // in every run of one build, which is all an in-memory set needs.
        let half = |salt: u8| {
            let mut h = std::hash::DefaultHasher::new();
            salt.hash(&mut h);
            id.hash(&mut h);
            h.finish()
        };
        ShipmentKey(((half(0x5a) as u128) << 64) | half(0xa5) as u128)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_share_a_dictionary_and_keep_missing_values() {
        let mut l: Labels = ["b", "a", "b"].into_iter().collect();
        l.push_opt(None);
        assert_eq!(l.len(), 4);
        assert_eq!((l.get(0), l.get(1), l.get(3)), (Some("b"), Some("a"), None));
        assert_eq!(&l[3], "");
        assert_eq!(l.dictionary().len(), 2);
        assert_eq!(l.code(2), Some(0));
        let s = l.select(&[3, 0]);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![None, Some("b")]);
        let mut other: Labels = ["c", "a"].into_iter().collect();
        other.extend_from(&l);
        assert_eq!(
            other.iter().collect::<Vec<_>>(),
            vec![Some("c"), Some("a"), Some("b"), Some("a"), Some("b"), None]
        );
        let mut r = other.clone();
        r.set(0, Some("z"));
        r.retain(&[true, false, true, true, false, true]);
        assert_eq!(
            r.iter().collect::<Vec<_>>(),
            vec![Some("z"), Some("b"), Some("a"), None]
        );
        assert_eq!(other.get(0), Some("c"), "a copy changes alone");
    }

    #[test]
    fn texts_keep_each_row_and_missing_ones() {
        let mut t: Texts = [Some("x1"), None, Some(""), Some("long text")]
            .into_iter()
            .collect();
        assert_eq!(t.get(1), None);
        assert_eq!(t.get(2), Some(""));
        assert_eq!(&t[3], "long text");
        t.retain(&[false, true, true, true]);
        assert_eq!(
            t.iter().collect::<Vec<_>>(),
            vec![None, Some(""), Some("long text")]
        );
        assert_eq!(
            t.select(&[2, 2]).iter().collect::<Vec<_>>(),
            vec![Some("long text"); 2]
        );
    }
}
