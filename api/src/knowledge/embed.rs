//! A deterministic local embedding: feature hashing of word unigrams, word bigrams and
//! character trigrams into a fixed number of dimensions, with sublinear term weights and a
//! hashed sign (to cancel collisions on average), L2-normalised. It needs no model and no
//! network, gives the same vector on every machine and in every version that keeps
//! [`LOCAL_MODEL`], and is good enough to exercise hybrid retrieval in tests, in the fake
//! upstream and in the offline evaluation. It is not a substitute for `mistral-embed`:
//! it matches words and word pieces, not meanings.

use std::collections::BTreeMap;

use super::vector::normalize;

/// The model name stored with local vectors; bump it if the features change, so old vectors
/// are never compared with new ones.
pub const LOCAL_MODEL: &str = "parlo-local-hash-v1";

/// Words too common to tell passages apart (English; other languages still get trigrams).
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "do", "does", "for", "from",
    "how", "i", "if", "in", "into", "is", "it", "its", "me", "my", "of", "on", "or", "so", "that",
    "the", "their", "then", "there", "these", "this", "to", "was", "we", "what", "when", "where",
    "which", "who", "why", "will", "with", "would", "you", "your",
];

/// Lowercased words (letters and digits, any script); `_` and `'` split words.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Words without stopwords and with a plural `s` removed, for ranking ("timeouts" finds
/// "timeout"). Deliberately no more stemming than that: it is English-only and the real
/// full-text engines bring their own per-language stemmers.
pub fn terms(text: &str) -> Vec<String> {
    words(text)
        .into_iter()
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .map(|w| match w.strip_suffix('s') {
            Some(stem) if stem.chars().count() >= 3 && !stem.ends_with(['s', 'u', 'i']) => {
                stem.to_owned()
            }
            _ => w,
        })
        .collect()
}

/// FNV-1a, 64-bit: tiny, stable across platforms and Rust versions (unlike `DefaultHasher`,
/// whose algorithm is unspecified), which is what makes the embedding reproducible.
fn fnv1a(kind: u8, text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in std::iter::once(kind).chain(text.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[derive(Debug, Clone, Copy)]
pub struct LocalEmbedder {
    pub dim: usize,
}

impl Default for LocalEmbedder {
    fn default() -> Self {
        Self { dim: 512 }
    }
}

impl LocalEmbedder {
    pub fn new(dim: usize) -> Self {
        Self {
            dim: dim.clamp(16, 4096),
        }
    }

    pub fn model(&self) -> &'static str {
        LOCAL_MODEL
    }

    /// The unit vector of `text` (all zeros for text without words).
    pub fn embed(&self, text: &str) -> Vec<f32> {
        let terms = terms(text);
        // Ordered, so the floating-point sums run in the same order on every run.
        let mut features: BTreeMap<(u8, String), f32> = BTreeMap::new();
        for term in &terms {
            *features.entry((b'u', term.clone())).or_default() += 1.0;
            // Trigrams of the word with boundary marks: "install" and "installing" share most.
            let marked: Vec<char> = format!("<{term}>").chars().collect();
            for gram in marked.windows(3) {
                *features.entry((b't', gram.iter().collect())).or_default() += 0.25;
            }
        }
        for pair in terms.windows(2) {
            *features
                .entry((b'b', format!("{} {}", pair[0], pair[1])))
                .or_default() += 0.5;
        }
        let mut vector = vec![0f32; self.dim];
        for ((kind, feature), weight) in features {
            let hash = fnv1a(kind, &feature);
            let slot = (hash % self.dim as u64) as usize;
            let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
            // Sublinear: a word said ten times is not ten times as relevant.
            vector[slot] += sign * (1.0 + weight.ln().max(0.0)) * weight.min(1.0);
        }
        normalize(&mut vector);
        vector
    }

    pub fn embed_all<S: AsRef<str>>(&self, texts: &[S]) -> Vec<Vec<f32>> {
        texts.iter().map(|t| self.embed(t.as_ref())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::vector::cosine;

    #[test]
    fn embedding_is_deterministic_and_unit_length() {
        let e = LocalEmbedder::default();
        let a = e.embed("How do I reset my password?");
        assert_eq!(a, e.embed("How do I reset my password?"));
        assert_eq!(a.len(), 512);
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        // FNV-1a's published test vector ("a"): the hash, hence every vector, is pinned.
        assert_eq!(fnv1a(b'a', ""), 0xaf63_dc4c_8601_ec8c);
        let nonzero = a.iter().filter(|x| **x != 0.0).count();
        assert!(nonzero > 10, "{nonzero}");
    }

    #[test]
    fn related_texts_are_closer_than_unrelated_ones() {
        let e = LocalEmbedder::default();
        let question = e.embed("how can I reset a forgotten password");
        let answer = e.embed("To reset your password, open Settings and choose Forgot password.");
        let other = e.embed("Invoices are sent by email at the start of each month.");
        let near = cosine(&question, &answer).unwrap();
        let far = cosine(&question, &other).unwrap();
        assert!(near > far + 0.2, "near {near}, far {far}");
        // Word pieces: "installing" still finds "installation", not an unrelated text.
        let install = cosine(&e.embed("installing"), &e.embed("installation guide")).unwrap();
        let refund = cosine(&e.embed("installing"), &e.embed("refund policy")).unwrap();
        assert!(
            install > 0.1 && install > refund + 0.1,
            "{install} vs {refund}"
        );
        assert!(e.embed("?!").iter().all(|x| *x == 0.0));
    }

    #[test]
    fn words_and_terms() {
        assert_eq!(
            words("Axum's Router::new()"),
            vec!["axum", "s", "router", "new"]
        );
        assert_eq!(terms("How do I use the Router?"), vec!["use", "router"]);
        assert_eq!(
            terms("routers timeouts class status axis bus"),
            vec!["router", "timeout", "class", "status", "axis", "bus"]
        );
        assert_eq!(
            words("Prix à 10 €, déjà payé"),
            vec!["prix", "à", "10", "déjà", "payé"]
        );
    }
}
