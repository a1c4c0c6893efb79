//! Ranking: the k best of many scores (a bounded min-heap, so memory stays O(k) whatever the
//! library size), a brute-force cosine index over quantised vectors — the engine that must
//! work everywhere, behind [`VectorSearch`] so pgvector or another engine can stand in where
//! installed — and reciprocal rank fusion of a full-text ranking with a vector ranking.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;

use super::vector::{StoredVector, VectorError, quantize};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit<Id> {
    pub id: Id,
    pub score: f32,
}

/// Heap entry: ordered by score, then by arrival (earlier is better), so results are
/// deterministic when scores tie.
struct Entry<Id> {
    score: f32,
    seq: usize,
    id: Id,
}

impl<Id> PartialEq for Entry<Id> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<Id> Eq for Entry<Id> {}
impl<Id> PartialOrd for Entry<Id> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<Id> Ord for Entry<Id> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// The `k` highest scores of `scored`, best first. NaN scores are dropped.
pub fn top_k<Id>(scored: impl IntoIterator<Item = (Id, f32)>, k: usize) -> Vec<Hit<Id>> {
    if k == 0 {
        return Vec::new();
    }
    let mut heap: BinaryHeap<Reverse<Entry<Id>>> = BinaryHeap::with_capacity(k + 1);
    for (seq, (id, score)) in scored.into_iter().enumerate() {
        if score.is_nan() {
            continue;
        }
        let entry = Entry { score, seq, id };
        if heap.len() < k {
            heap.push(Reverse(entry));
        } else if heap.peek().is_some_and(|Reverse(worst)| entry > *worst) {
            heap.pop();
            heap.push(Reverse(entry));
        }
    }
    let mut best: Vec<Entry<Id>> = heap.into_iter().map(|Reverse(e)| e).collect();
    best.sort_by(|a, b| b.cmp(a));
    best.into_iter()
        .map(|e| Hit {
            id: e.id,
            score: e.score,
        })
        .collect()
}

/// Nearest-neighbour search by cosine similarity, whatever the engine.
pub trait VectorSearch<Id> {
    fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit<Id>>, VectorError>;
}

/// Every vector of one model, quantised to `i8` in one contiguous array, compared with the
/// query by integer dot products (which the compiler vectorises). Scores are cosine
/// similarities of the quantised vectors.
#[derive(Debug, Clone)]
pub struct BruteForceIndex<Id> {
    model: String,
    dim: usize,
    ids: Vec<Id>,
    /// Per row: scale / norm, turning an integer dot product into a cosine.
    factors: Vec<f32>,
    data: Vec<i8>,
}

impl<Id: Clone> BruteForceIndex<Id> {
    pub fn new(model: &str, dim: usize) -> Self {
        Self {
            model: model.to_owned(),
            dim,
            ids: Vec::new(),
            factors: Vec::new(),
            data: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Adds a stored vector; one of another model or dimension is refused.
    pub fn push(&mut self, id: Id, vector: &StoredVector) -> Result<(), VectorError> {
        if vector.model != self.model || vector.dim != self.dim {
            return Err(VectorError::Mismatch);
        }
        let (scale, q) = vector.as_i8()?;
        self.push_quantized(id, scale, &q);
        Ok(())
    }

    fn push_quantized(&mut self, id: Id, scale: f32, q: &[i8]) {
        let norm = scale * (q.iter().map(|&x| i32::from(x).pow(2)).sum::<i32>() as f32).sqrt();
        self.factors
            .push(if norm > 0.0 { scale / norm } else { 0.0 });
        self.data.extend_from_slice(q);
        self.ids.push(id);
    }
}

fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum()
}

impl<Id: Clone> VectorSearch<Id> for BruteForceIndex<Id> {
    fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit<Id>>, VectorError> {
        if query.len() != self.dim {
            return Err(VectorError::Mismatch);
        }
        let (scale, q) = quantize(query);
        let norm = scale * (q.iter().map(|&x| i32::from(x).pow(2)).sum::<i32>() as f32).sqrt();
        if norm == 0.0 {
            return Ok(Vec::new());
        }
        let query_factor = scale / norm;
        let scores = self
            .data
            .chunks_exact(self.dim)
            .zip(&self.factors)
            .map(|(row, factor)| dot_i8(&q, row) as f32 * factor * query_factor);
        Ok(top_k(self.ids.iter().cloned().zip(scores), k))
    }
}

/// The usual constant of reciprocal rank fusion (Cormack et al., 2009): it damps the weight
/// of the very first ranks so one list cannot dominate.
pub const RRF_K: f32 = 60.0;

/// Reciprocal rank fusion: each id scores Σ 1 / (k + rank) over the rankings it appears in
/// (rank from 1). Only ranks matter, so a BM25 score and a cosine need no common scale.
/// Ties keep the order in which ids were first seen.
pub fn reciprocal_rank_fusion<Id: Clone + Eq + Hash>(rankings: &[&[Id]], k: f32) -> Vec<Hit<Id>> {
    let mut scores: HashMap<Id, (f32, usize)> = HashMap::new();
    let mut seen = 0;
    for ranking in rankings {
        for (rank, id) in ranking.iter().enumerate() {
            let entry = scores.entry(id.clone()).or_insert_with(|| {
                seen += 1;
                (0.0, seen)
            });
            entry.0 += 1.0 / (k + rank as f32 + 1.0);
        }
    }
    let mut fused: Vec<(Id, f32, usize)> =
        scores.into_iter().map(|(id, (s, o))| (id, s, o)).collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    fused
        .into_iter()
        .map(|(id, score, _)| Hit { id, score })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::vector::{VectorFormat, cosine, normalize, pseudo_random_unit as vector};

    #[test]
    fn top_k_keeps_the_best_in_order_and_breaks_ties_by_arrival() {
        let scored = [
            ("a", 0.1),
            ("b", 0.9),
            ("c", 0.5),
            ("d", 0.9),
            ("e", f32::NAN),
            ("f", 0.7),
        ];
        let hits = top_k(scored, 3);
        let ids: Vec<_> = hits.iter().map(|h| h.id).collect();
        assert_eq!(ids, vec!["b", "d", "f"]);
        assert!(top_k(scored, 0).is_empty());
        assert_eq!(top_k(scored, 10).len(), 5);
    }

    #[test]
    fn brute_force_matches_exact_cosine_ranking() {
        let dim = 256;
        let mut index = BruteForceIndex::new("m", dim);
        let vectors: Vec<Vec<f32>> = (0..2000).map(|i| vector(i, dim)).collect();
        for (i, v) in vectors.iter().enumerate() {
            let stored = StoredVector::encode("m", v, VectorFormat::I8).unwrap();
            index.push(i, &stored).unwrap();
        }
        let mut agree = 0;
        for q in 0..20u64 {
            // A query near vector q*7: the right answer is known.
            let target = (q * 7) as usize;
            let mut query: Vec<f32> = vectors[target]
                .iter()
                .zip(vector(10_000 + q, dim))
                .map(|(a, b)| a + 0.3 * b)
                .collect();
            normalize(&mut query);
            let hits = index.search(&query, 10).unwrap();
            assert_eq!(hits[0].id, target);
            let exact = top_k(
                vectors
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (i, cosine(&query, v).unwrap())),
                10,
            );
            let exact_ids: Vec<_> = exact.iter().map(|h| h.id).collect();
            agree += hits.iter().filter(|h| exact_ids.contains(&h.id)).count();
            assert!((hits[0].score - exact[0].score).abs() < 0.01);
        }
        // Quantisation may swap near-ties at the tail; the lists agree on ≥ 90 %.
        assert!(agree >= 180, "{agree}/200");
    }

    #[test]
    fn index_refuses_other_models_and_dimensions() {
        let mut index: BruteForceIndex<u32> = BruteForceIndex::new("mistral-embed", 4);
        let other = StoredVector::encode("parlo-local", &[0.5; 4], VectorFormat::I8).unwrap();
        assert_eq!(index.push(1, &other), Err(VectorError::Mismatch));
        let short = StoredVector::encode("mistral-embed", &[0.5; 3], VectorFormat::I8).unwrap();
        assert_eq!(index.push(1, &short), Err(VectorError::Mismatch));
        assert_eq!(index.search(&[1.0; 3], 5), Err(VectorError::Mismatch));
        assert!(index.search(&[0.0; 4], 5).unwrap().is_empty());
    }

    #[test]
    fn rrf_rewards_agreement() {
        let full_text = ["a", "b", "c", "d"];
        let vectors = ["c", "a", "e"];
        let fused = reciprocal_rank_fusion(&[&full_text, &vectors], RRF_K);
        let ids: Vec<_> = fused.iter().map(|h| h.id).collect();
        // a: 1/61 + 1/62, c: 1/63 + 1/61, b: 1/62, e: 1/63, d: 1/64.
        assert_eq!(ids, vec!["a", "c", "b", "e", "d"]);
        assert!((fused[0].score - (1.0 / 61.0 + 1.0 / 62.0)).abs() < 1e-6);
        // One empty ranking (no embedding key): the other ranking comes through unchanged.
        let only = reciprocal_rank_fusion(&[&full_text, &[]], RRF_K);
        assert_eq!(only.iter().map(|h| h.id).collect::<Vec<_>>(), full_text);
    }
}
