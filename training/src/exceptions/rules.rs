//! Deterministic keyword rules over the taxonomy's keyword lists: the classifier of last
//! resort, which always answers, and says that rules answered.
//!
//! A note and each keyword are cut into lowercase words (anything not a letter or digit
//! separates words, and apostrophes are dropped, so "can't" and "cant" are the same word). A
//! keyword matches where its words appear in a row; a trailing `*` on its last word matches any
//! ending. Each matched keyword adds its word count to its category's score, so a specific
//! phrase outweighs a single generic word; the highest score wins, ties going to the category
//! listed first, and a note with no match is `other`.

use super::{Classification, ClassifierSource, Taxonomy};

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

    /// The category of one note.
    pub fn classify(&self, text: &str) -> Classification {
        let note = words(text);
        let mut best: Option<(usize, usize)> = None;
        let mut total = 0;
        let mut matched_by: Vec<Vec<&str>> = vec![Vec::new(); self.keywords.len()];
        for (c, keywords) in self.keywords.iter().enumerate() {
            let mut score = 0;
            for k in keywords {
                if occurs(k, &note) {
                    score += k.words.len();
                    matched_by[c].push(&k.text);
                }
            }
            total += score;
            if score > 0 && best.is_none_or(|(_, s)| score > s) {
                best = Some((c, score));
            }
        }
        let (index, confidence, matched) = match best {
            // The share of all keyword evidence that went to the winner, discounted for thin
            // evidence: one matched word gives 0.5, two uncontested words 0.67.
            Some((c, score)) => (
                c,
                score as f64 / (total as f64 + 1.0),
                matched_by[c].iter().map(|s| s.to_string()).collect(),
            ),
            None => (self.other, 0.0, Vec::new()),
        };
        let category = &self.taxonomy.categories[index];
        Classification {
            category: category.name.clone(),
            owner: category.owner.clone(),
            severity: category.severity,
            confidence: (confidence * 1e4).round() / 1e4,
            source: ClassifierSource::Rules,
            matched,
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
        assert_eq!(c.source, ClassifierSource::Rules);
        assert_eq!(
            (c.owner.as_str(), c.severity),
            ("carrier_claims", super::super::Severity::Critical)
        );
        assert_eq!(c.matched, vec!["lost".to_string()]);
        assert_eq!(c.confidence, 0.5);
        let none = rules.classify("");
        assert_eq!((none.category.as_str(), none.confidence), ("other", 0.0));
        // Words, not substrings: "price" holds "ice" but is not about ice.
        assert_eq!(category("price list attached"), "other");
        // Prefixes: `damag*` covers every ending.
        assert_eq!(category("damages noted on POD"), "damaged");
    }
}
