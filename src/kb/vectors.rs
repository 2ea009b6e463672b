//! Semantic search over the knowledge base: one embedding per chunk (rows
//! aligned with the chunk ordinals of [`super::KnowledgeBase::passages`]),
//! cosine similarity, and reciprocal-rank fusion with BM25 for hybrid
//! retrieval. Vectors are checked when the index is built: all rows the same
//! dimension, every number finite, no zero vector.

use std::collections::HashMap;

use crate::domain::Passage;

/// Rank constant of reciprocal-rank fusion (the usual 60).
const RRF_K: f32 = 60.0;

#[derive(Debug, Clone)]
pub struct VectorIndex {
    /// Unit-length rows, one per chunk.
    rows: Vec<Vec<f32>>,
    dimension: usize,
}

impl VectorIndex {
    pub fn new(rows: Vec<Vec<f32>>) -> Result<Self, String> {
        let dimension = rows.first().map_or(0, Vec::len);
        if dimension == 0 {
            return Err("no vectors".into());
        }
        let mut unit = Vec::with_capacity(rows.len());
        for (i, row) in rows.into_iter().enumerate() {
            if row.len() != dimension {
                return Err(format!(
                    "vector {i} has {} dimensions, not {dimension}",
                    row.len()
                ));
            }
            unit.push(normalise(row).ok_or_else(|| format!("vector {i} is zero or not finite"))?);
        }
        Ok(Self {
            rows: unit,
            dimension,
        })
    }

    pub fn dimension(&self) -> usize {
        self.dimension
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The `k` rows most similar to `query` (cosine), best first, as
    /// (ordinal, similarity); rows with no positive similarity are
    /// unrelated and left out. Empty when the dimension differs.
    pub fn nearest(&self, query: &[f32], k: usize) -> Vec<(usize, f32)> {
        if query.len() != self.dimension {
            return Vec::new();
        }
        let Some(query) = normalise(query.to_vec()) else {
            return Vec::new();
        };
        let mut scored: Vec<(usize, f32)> = self
            .rows
            .iter()
            .enumerate()
            .map(|(i, row)| (i, row.iter().zip(&query).map(|(a, b)| a * b).sum::<f32>()))
            .filter(|(_, similarity)| *similarity > 0.0)
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(k);
        scored
    }
}

fn normalise(mut row: Vec<f32>) -> Option<Vec<f32>> {
    if row.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return None;
    }
    row.iter_mut().for_each(|x| *x /= norm);
    Some(row)
}

/// Reciprocal-rank fusion of a keyword ranking and a semantic one: each
/// passage scores the sum of `1 / (60 + rank)` over the lists it is in.
/// Returns the best `top_k`, with the fused score, ties broken by chunk id.
pub fn fuse(
    keyword: &[Passage],
    semantic: &[(usize, f32)],
    all: &[Passage],
    top_k: usize,
) -> Vec<Passage> {
    let mut scores: HashMap<&str, (f32, &Passage)> = HashMap::new();
    for (rank, passage) in keyword.iter().enumerate() {
        let entry = scores.entry(passage.id.as_str()).or_insert((0.0, passage));
        entry.0 += 1.0 / (RRF_K + rank as f32 + 1.0);
    }
    for (rank, (ord, _)) in semantic.iter().enumerate() {
        let Some(passage) = all.get(*ord) else {
            continue;
        };
        let entry = scores.entry(passage.id.as_str()).or_insert((0.0, passage));
        entry.0 += 1.0 / (RRF_K + rank as f32 + 1.0);
    }
    let mut fused: Vec<(f32, &Passage)> = scores.into_values().collect();
    fused.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
    fused
        .into_iter()
        .take(top_k)
        .map(|(score, passage)| Passage {
            score,
            ..passage.clone()
        })
        .collect()
}

/// The text a chunk is embedded as: its title and heading give context.
pub fn embedding_text(passage: &Passage) -> String {
    let mut text = passage.title.clone();
    if let Some(heading) = &passage.heading {
        text.push_str(" - ");
        text.push_str(heading);
    }
    text.push('\n');
    text.push_str(&passage.text.replace("**", ""));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str) -> Passage {
        Passage {
            location: Default::default(),
            id: id.into(),
            title: id.into(),
            source: format!("{id}.md"),
            kind: None,
            heading: None,
            text: String::new(),
            score: 0.0,
            entities: vec![],
        }
    }

    #[test]
    fn nearest_is_cosine_and_checks_dimensions() {
        let index =
            VectorIndex::new(vec![vec![1.0, 0.0], vec![0.0, 2.0], vec![1.0, 1.0]]).expect("index");
        let near = index.nearest(&[0.0, 5.0], 2);
        assert_eq!(near[0].0, 1);
        assert!((near[0].1 - 1.0).abs() < 1e-6);
        assert_eq!(near[1].0, 2);
        assert!(
            index.nearest(&[1.0, 2.0, 3.0], 2).is_empty(),
            "wrong dimension"
        );
    }

    #[test]
    fn bad_vectors_are_refused() {
        assert!(VectorIndex::new(vec![]).is_err());
        assert!(VectorIndex::new(vec![vec![1.0], vec![1.0, 2.0]]).is_err());
        assert!(VectorIndex::new(vec![vec![f32::NAN, 1.0]]).is_err());
        assert!(VectorIndex::new(vec![vec![0.0, 0.0]]).is_err());
    }

    #[test]
    fn fusion_rewards_agreement() {
        let all = vec![p("a"), p("b"), p("c"), p("d")];
        // Keyword says a, b; meaning says c, b: b is in both and wins.
        let fused = fuse(&[p("a"), p("b")], &[(2, 0.9), (1, 0.8)], &all, 3);
        let ids: Vec<&str> = fused.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids[0], "b");
        assert_eq!(ids.len(), 3);
        assert!(!ids.contains(&"d"));
    }
}
