//! Okapi BM25 in memory, only for the evaluation: the production full-text engines are
//! SQLite FTS5 (whose `bm25()` is this formula) and PostgreSQL's tsvector ranking.

use std::collections::HashMap;

use crate::knowledge::embed::terms;
use crate::knowledge::rank::{Hit, top_k};

const K1: f64 = 1.2;
const B: f64 = 0.75;

pub(super) struct Bm25 {
    docs: Vec<HashMap<String, u32>>,
    lengths: Vec<f64>,
    average: f64,
    document_frequency: HashMap<String, u32>,
}

impl Bm25 {
    pub fn new<S: AsRef<str>>(texts: &[S]) -> Self {
        let mut docs = Vec::new();
        let mut lengths = Vec::new();
        let mut document_frequency: HashMap<String, u32> = HashMap::new();
        for text in texts {
            let mut tf: HashMap<String, u32> = HashMap::new();
            let words = terms(text.as_ref());
            lengths.push(words.len() as f64);
            for w in words {
                *tf.entry(w).or_default() += 1;
            }
            for term in tf.keys() {
                *document_frequency.entry(term.clone()).or_default() += 1;
            }
            docs.push(tf);
        }
        let average = lengths.iter().sum::<f64>() / lengths.len().max(1) as f64;
        Self {
            docs,
            lengths,
            average,
            document_frequency,
        }
    }

    pub fn search(&self, query: &str, k: usize) -> Vec<Hit<usize>> {
        let n = self.docs.len() as f64;
        let query = terms(query);
        let scores = self.docs.iter().enumerate().map(|(i, tf)| {
            let mut score = 0.0;
            for term in &query {
                let Some(&f) = tf.get(term) else { continue };
                let df = f64::from(self.document_frequency[term]);
                let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
                let f = f64::from(f);
                score += idf * f * (K1 + 1.0)
                    / (f + K1 * (1.0 - B + B * self.lengths[i] / self.average));
            }
            (i, score as f32)
        });
        top_k(scores.filter(|(_, s)| *s > 0.0), k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rare_matching_terms_rank_first() {
        let bm25 = Bm25::new(&[
            "the router nests other routers",
            "timeouts are configured on the agent",
            "router router router",
            "unrelated text about invoices",
        ]);
        let hits = bm25.search("configure a timeout for the agent", 10);
        assert_eq!(hits[0].id, 1);
        assert_eq!(hits.len(), 1);
        let hits = bm25.search("router", 10);
        assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![2, 0]);
    }
}
