//! Hashed n-gram features of a note, fastText-style: every word, every pair of neighbouring
//! words, and the character n-grams of each word with its boundaries marked (`<drv>` gives
//! `<dr`, `drv`, `rv>`, ...). Character n-grams carry a note's meaning across the spellings
//! real notes come in ("delivrey", "dlvry", "delivery"), which is what generalizes beyond the
//! notes a model was trained on.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NgramConfig {
    /// Hash buckets: the embedding table's rows.
    pub buckets: u32,
    pub min_n: usize,
    pub max_n: usize,
}

impl Default for NgramConfig {
    fn default() -> Self {
        NgramConfig {
            buckets: 1 << 15,
            min_n: 3,
            max_n: 5,
        }
    }
}

impl NgramConfig {
    /// The bucket of every feature of `text` (repeats kept: a word said twice counts twice).
    pub fn ids(&self, text: &str) -> Vec<u32> {
        let words = words(text);
        let mut ids = Vec::with_capacity(words.len() * 12);
        let mut bucket = |kind: u8, s: &str| {
            ids.push((fnv1a(kind, s.as_bytes()) % self.buckets as u64) as u32);
        };
        for (i, w) in words.iter().enumerate() {
            bucket(b'w', w);
            if let Some(next) = words.get(i + 1) {
                bucket(b'b', &format!("{w} {next}"));
            }
            let marked: Vec<char> = std::iter::once('<')
                .chain(w.chars())
                .chain(std::iter::once('>'))
                .collect();
            for n in self.min_n..=self.max_n {
                for gram in marked.windows(n) {
                    bucket(b'c', &gram.iter().collect::<String>());
                }
            }
        }
        ids
    }
}

/// Lowercase words; apostrophes dropped ("can't" is "cant") and digits folded to `0`, so
/// order numbers and times do not each become a feature of their own.
fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace(['\'', '’'], "")
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            w.chars()
                .map(|c| if c.is_ascii_digit() { '0' } else { c })
                .collect()
        })
        .collect()
}

fn fnv1a(kind: u8, bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in std::iter::once(&kind).chain(bytes) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspellings_share_most_features_and_numbers_fold() {
        let c = NgramConfig::default();
        let shared = |a: &str, b: &str| {
            let (a, b) = (c.ids(a), c.ids(b));
            a.iter().filter(|x| b.contains(x)).count() as f64 / a.len() as f64
        };
        assert!(shared("delivrey refused", "delivery refused") > 0.5);
        assert!(shared("delivery refused", "storm warning") < 0.1);
        assert_eq!(c.ids("order 4471"), c.ids("ORDER 9903"));
        assert!(c.ids("").is_empty());
        assert!(c.ids("x y z").iter().all(|&i| i < c.buckets));
    }
}
