//! Deterministic keyword rules over the taxonomy's keyword lists: the classifier of last
//! resort, which always answers, and says that rules answered.
//!
//! A note and each keyword are cut into lowercase words (anything not a letter or digit
//! separates words, and apostrophes are dropped, so "can't" and "cant" are the same word). A
//! keyword matches where its words appear in a row; a trailing `*` on its last word matches any
//! ending. Each matched keyword adds its word count to its category's score, so a specific
//! phrase outweighs a single generic word; the highest score wins, ties going to the category
//! listed first, and a note with no match is `other`.

use super::{Alternative, Answer, Taxonomy, Tier};

#[derive(Debug, Clone)]
struct Keyword {
    text: String,
    words: Vec<String>,
    /// The last word is a prefix (`damag*`).
    prefix: bool,
}

/// The keyword rules of a taxonomy, prepared for matching.
#[derive(Debug, Clone)]
pub struct KeywordRules {
    taxonomy: Taxonomy,
    keywords: Vec<Vec<Keyword>>,
    other: usize,
}

impl KeywordRules {
    pub fn new(taxonomy: Taxonomy) -> Self {
        let keywords = taxonomy
            .categories
            .iter()
            .map(|c| {
                c.keywords
                    .iter()
                    .map(|k| {
                        let prefix = k.trim_end().ends_with('*');
                        Keyword {
                            text: k.clone(),
                            words: words(k.trim_end().trim_end_matches('*')),
                            prefix,
                        }
                    })
                    .filter(|k| !k.words.is_empty())
                    .collect()
            })
            .collect();
        let other = taxonomy
            .categories
            .iter()
            .position(|c| c.name == "other")
            .expect("a checked taxonomy has `other`");
        KeywordRules {
            taxonomy,
            keywords,
            other,
        }
    }

    pub fn taxonomy(&self) -> &Taxonomy {
        &self.taxonomy
    }

    /// The name of the category [`KeywordRules::classify`] gives a note.
    pub fn category_of(&self, text: &str) -> &str {
        let name = self.classify(text).category;
        self.taxonomy
            .categories
            .iter()
            .map(|c| c.name.as_str())
            .find(|c| *c == name)
            .unwrap_or_default()
    }

    /// The category of one note. `needs_review` is left false: the caller applies the
    /// taxonomy's review threshold.
    pub fn classify(&self, text: &str) -> Answer {
        let note = words(text);
        let mut scores = vec![0usize; self.keywords.len()];
        let mut matched_by: Vec<Vec<&str>> = vec![Vec::new(); self.keywords.len()];
        for (c, keywords) in self.keywords.iter().enumerate() {
            for k in keywords {
                if occurs(k, &note) {
                    scores[c] += k.words.len();
                    matched_by[c].push(&k.text);
                }
            }
        }
        let total: usize = scores.iter().sum();
        // Highest score first, ties to the category listed first (a stable sort keeps order).
        let mut order: Vec<usize> = (0..scores.len()).filter(|&c| scores[c] > 0).collect();
        order.sort_by(|&a, &b| scores[b].cmp(&scores[a]));
        // The share of all keyword evidence, discounted for thin evidence: one matched word
        // gives 0.5, two uncontested words 0.67.
        let share = |c: usize| (scores[c] as f64 / (total as f64 + 1.0) * 1e4).round() / 1e4;
        let (index, confidence) = match order.first() {
            Some(&c) => (c, share(c)),
            None => (self.other, 0.0),
        };
        let category = &self.taxonomy.categories[index];
        Answer {
            category: category.name.clone(),
            confidence,
            alternatives: order
                .iter()
                .skip(1)
                .take(2)
                .map(|&c| Alternative {
                    category: self.taxonomy.categories[c].name.clone(),
                    confidence: share(c),
                })
                .collect(),
            owner: category.owner.clone(),
            severity: category.severity,
            tier: Tier::Rules,
            needs_review: false,
            truncated: false,
            matched: matched_by[index].iter().map(|s| s.to_string()).collect(),
        }
    }
}

fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace(['\'', '’'], "")
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn occurs(k: &Keyword, note: &[String]) -> bool {
    let n = k.words.len();
    if note.len() < n {
        return false;
    }
    note.windows(n).any(|w| {
        w.iter().zip(&k.words).enumerate().all(|(i, (a, b))| {
            if k.prefix && i == n - 1 {
                a.starts_with(b.as_str())
            } else {
                a == b
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn category(text: &str) -> String {
        KeywordRules::new(Taxonomy::default())
            .classify(text)
            .category
    }

    #[test]
    fn notes_in_three_voices_find_their_category() {
        let cases = [
            (
                "drv called, cnee closed, retry tmrw",
                "recipient_unavailable",
            ),
            (
                "Shipment held at depot awaiting consignee instructions",
                "recipient_unavailable",
            ),
            (
                "where is my parcel?? tracking hasn't moved in 5 days",
                "lost",
            ),
            ("Truck broke down on the A7, ETA +6h", "vehicle_issue"),
            ("2 cartons arrived DAMAGED, one leaking", "damaged"),
            (
                "Customs hold - commercial invoice missing",
                "customs_documents",
            ),
            ("short pick on SKU 4471, backorder raised", "stock_shortage"),
            ("Customer refused delivery, RTS", "refused"),
            (
                "Pls deliver next week instead, we're closed for inventory",
                "reschedule_request",
            ),
            (
                "order on credit hold until invoice 2231 is paid",
                "payment_hold",
            ),
            ("Snow storm, roads closed around Lyon", "weather"),
            (
                "Missed linehaul at Memphis hub, rolled to next day",
                "carrier_delay",
            ),
            (
                "labels not printed, loading late at dock 4",
                "warehouse_delay",
            ),
            ("wrong addr, street not found", "address_issue"),
            ("thanks for the quick delivery", "other"),
        ];
        for (text, want) in cases {
            assert_eq!(category(text), want, "{text}");
        }
    }

    #[test]
    fn answers_say_rules_answered_and_how_sure_they_are() {
        let rules = KeywordRules::new(Taxonomy::default());
        let c = rules.classify("Parcel LOST in transit");
        assert_eq!(c.tier, Tier::Rules);
        assert_eq!(
            (c.owner.as_str(), c.severity),
            ("carrier_claims", super::super::Severity::Critical)
        );
        assert_eq!(c.matched, vec!["lost".to_string()]);
        assert_eq!(c.confidence, 0.5);
        let none = rules.classify("");
        assert_eq!((none.category.as_str(), none.confidence), ("other", 0.0));
        assert!(none.alternatives.is_empty());
        // Runners-up by evidence: "broke down" and "flat tyre" (4 words) beat "damag*" (1).
        let two = rules.classify("the truck broke down with a flat tyre, one carton damaged");
        assert_eq!(two.category, "vehicle_issue");
        assert_eq!(two.alternatives[0].category, "damaged");
        assert!(two.alternatives[0].confidence < two.confidence);
        // Words, not substrings: "price" holds "ice" but is not about ice.
        assert_eq!(category("price list attached"), "other");
        // Prefixes: `damag*` covers every ending.
        assert_eq!(category("damages noted on POD"), "damaged");
    }
}
