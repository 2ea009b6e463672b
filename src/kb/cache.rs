//! Chunk vectors kept with a knowledge base, keyed by the BLAKE3 hash of
//! the text a chunk is embedded as and by the embedding model: inserting
//! one paragraph re-embeds only the chunks whose text changed, and
//! re-adding an unchanged tree embeds nothing.
//!
//! On disk: `NAME/vectors/<model-key>.bin`, append-only records of
//! `[32-byte text hash][u32 dimension, LE][dimension x f32, LE]`, and
//! `<model-key>.model` naming the model. It is a cache: a torn last record
//! (a kill mid-append) is ignored and the chunk embedded again, and a
//! vector missing for any reason is recomputed, so it can never disagree
//! with the index in a way that matters.
//!
//! Invariants: one model per file; every vector in a file has the file's
//! dimension (a model that changed its vector size starts a new file, and
//! says so); vectors are checked finite before they are stored.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;

use crate::domain::Passage;

use super::vectors::embedding_text;

/// The key of a chunk's vector: the hash of its embedding text.
pub type TextKey = [u8; 32];

pub fn text_key(passage: &Passage) -> TextKey {
    *blake3::hash(embedding_text(passage).as_bytes()).as_bytes()
}

/// The file name stem of a model's vectors.
fn model_key(model: &str) -> String {
    blake3::hash(model.as_bytes()).to_hex()[..16].to_owned()
}

#[derive(Debug, Default)]
pub struct VectorCache {
    /// `None`: in memory only (the built-in sample lore).
    file: Option<PathBuf>,
    model: String,
    map: HashMap<TextKey, Vec<f32>>,
    dimension: Option<usize>,
}

impl VectorCache {
    /// A cache that lives as long as the process.
    pub fn memory(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            ..Default::default()
        }
    }

    /// The vectors of `model` kept under `dir` (a knowledge base's
    /// directory). Also returns the other models that have vectors there.
    pub fn open(dir: &Path, model: &str) -> std::io::Result<(Self, Vec<String>)> {
        let vectors = dir.join("vectors");
        std::fs::create_dir_all(&vectors)?;
        let key = model_key(model);
        let file = vectors.join(format!("{key}.bin"));
        std::fs::write(vectors.join(format!("{key}.model")), model)?;
        let mut others = Vec::new();
        for entry in std::fs::read_dir(&vectors)?.filter_map(Result::ok) {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "model")
                && path.file_stem().is_some_and(|s| s.to_string_lossy() != key)
                && let Ok(name) = std::fs::read_to_string(&path)
            {
                others.push(name);
            }
        }
        others.sort();
        let mut cache = Self {
            file: Some(file.clone()),
            model: model.to_owned(),
            ..Default::default()
        };
        match File::open(&file) {
            Ok(mut f) => {
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes)?;
                cache.load(&bytes);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok((cache, others))
    }

    fn load(&mut self, mut bytes: &[u8]) {
        while bytes.len() >= 36 {
            let mut key = [0u8; 32];
            key.copy_from_slice(&bytes[..32]);
            let mut dim = [0u8; 4];
            dim.copy_from_slice(&bytes[32..36]);
            let dim = u32::from_le_bytes(dim) as usize;
            let len = 36 + dim * 4;
            if dim == 0 || bytes.len() < len {
                break; // a torn last record
            }
            let row: Vec<f32> = bytes[36..len]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if self.dimension.is_none_or(|d| d == dim) && row.iter().all(|x| x.is_finite()) {
                self.dimension = Some(dim);
                self.map.insert(key, row);
            }
            bytes = &bytes[len..];
        }
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, key: &TextKey) -> Option<&Vec<f32>> {
        self.map.get(key)
    }

    /// Keep new vectors (appended to the file, when there is one).
    pub fn insert(&mut self, rows: Vec<(TextKey, Vec<f32>)>) -> Result<(), String> {
        if let Some(row) = rows.iter().find(|(_, v)| v.iter().any(|x| !x.is_finite())) {
            return Err(format!("a vector of {} numbers is not finite", row.1.len()));
        }
        if let Some((_, first)) = rows.first() {
            match self.dimension {
                Some(d) if d != first.len() => {
                    // The model now answers with another size: start over.
                    self.map.clear();
                    if let Some(file) = &self.file {
                        let _ = std::fs::remove_file(file);
                    }
                    tracing::warn!(
                        was = d,
                        now = first.len(),
                        "embedding size changed: chunk vectors are recomputed"
                    );
                }
                _ => {}
            }
            self.dimension = Some(first.len());
            if rows.iter().any(|(_, v)| v.len() != first.len()) {
                return Err("vectors of different sizes in one batch".into());
            }
        }
        if let Some(file) = &self.file {
            let io = |e: std::io::Error| format!("cannot write {}: {e}", file.display());
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(file)
                .map_err(io)?;
            let mut w = BufWriter::new(f);
            for (key, row) in &rows {
                w.write_all(key).map_err(io)?;
                w.write_all(&(row.len() as u32).to_le_bytes()).map_err(io)?;
                for x in row {
                    w.write_all(&x.to_le_bytes()).map_err(io)?;
                }
            }
            w.flush().map_err(io)?;
        }
        self.map.extend(rows);
        Ok(())
    }
}

/// What bringing the vectors up to date did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmbedReport {
    pub chunks: usize,
    pub cached: usize,
    pub embedded: usize,
    pub batches: usize,
}

/// One batch of texts to embed; the vectors in order, or why not.
pub type EmbedBatch<'a> =
    &'a (dyn Fn(Vec<String>) -> BoxFuture<'static, Result<Vec<Vec<f32>>, String>> + Sync);

/// Embed the chunks whose vectors `cache` lacks, in batches of
/// `batch_size`, storing each batch as it arrives (a failure keeps what was
/// stored). Returns the vectors of every passage, in order.
pub async fn embed_missing(
    passages: &[Passage],
    cache: &mut VectorCache,
    batch_size: usize,
    embed: EmbedBatch<'_>,
) -> Result<(Vec<Vec<f32>>, EmbedReport), String> {
    let keys: Vec<TextKey> = passages.iter().map(text_key).collect();
    let mut missing: Vec<usize> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, key) in keys.iter().enumerate() {
        if cache.get(key).is_none() && seen.insert(*key) {
            missing.push(i);
        }
    }
    let mut report = EmbedReport {
        chunks: passages.len(),
        cached: passages.len() - missing.len(),
        ..Default::default()
    };
    for batch in missing.chunks(batch_size.max(1)) {
        let texts: Vec<String> = batch
            .iter()
            .map(|&i| embedding_text(&passages[i]))
            .collect();
        let vectors = embed(texts).await?;
        if vectors.len() != batch.len() {
            return Err(format!(
                "{} vectors for {} texts",
                vectors.len(),
                batch.len()
            ));
        }
        let rows = batch.iter().map(|&i| keys[i]).zip(vectors).collect();
        cache.insert(rows)?;
        report.embedded += batch.len();
        report.batches += 1;
    }
    let mut rows = Vec::with_capacity(passages.len());
    for key in &keys {
        rows.push(
            cache
                .get(key)
                .cloned()
                .ok_or_else(|| "a chunk vector went missing".to_owned())?,
        );
    }
    Ok((rows, report))
}

/// A deterministic embedder for tests and figures: words (lowercased,
/// crudely stemmed) hashed into 256 buckets. Not a model: it measures the
/// plumbing of hybrid retrieval, not the quality of a real embedding.
pub fn test_embedder(text: &str) -> Vec<f32> {
    let mut v = vec![0.0f32; 256];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
    {
        let word = word.to_lowercase();
        let stem = word.trim_end_matches('s');
        let h = blake3::hash(stem.as_bytes()).as_bytes()[..2]
            .iter()
            .fold(0usize, |acc, b| acc * 256 + *b as usize);
        v[h % 256] += 1.0;
    }
    v[255] += 0.01;
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kb::KnowledgeBase;
    use futures::FutureExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A deterministic embedder: words hashed into 64 buckets.
    pub(crate) fn hashed(text: &str) -> Vec<f32> {
        let mut v = vec![0.0f32; 64];
        for word in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let h = blake3::hash(word.to_lowercase().as_bytes()).as_bytes()[0] as usize;
            v[h % 64] += 1.0;
        }
        v[63] += 0.01;
        v
    }

    fn counting(
        calls: Arc<AtomicUsize>,
        texts_seen: Arc<AtomicUsize>,
    ) -> impl Fn(Vec<String>) -> BoxFuture<'static, Result<Vec<Vec<f32>>, String>> + Sync {
        move |texts: Vec<String>| {
            calls.fetch_add(1, Ordering::Relaxed);
            texts_seen.fetch_add(texts.len(), Ordering::Relaxed);
            let rows: Vec<Vec<f32>> = texts.iter().map(|t| hashed(t)).collect();
            async move { Ok(rows) }.boxed()
        }
    }

    fn kb(docs: &[(&str, &str)]) -> KnowledgeBase {
        KnowledgeBase::build(
            docs.iter()
                .map(|(s, t)| crate::kb::parse_markdown(s, t))
                .collect(),
        )
        .expect("build")
    }

    #[tokio::test]
    async fn only_new_or_changed_chunks_are_embedded_and_vectors_persist() {
        let tmp = tempfile::tempdir().expect("tmp");
        let calls = Arc::new(AtomicUsize::new(0));
        let texts = Arc::new(AtomicUsize::new(0));
        let embed = counting(calls.clone(), texts.clone());
        let one = kb(&[
            (
                "a.md",
                "# A\n\n## One\n\nAmber gate.\n\n## Two\n\nBronze bell.\n",
            ),
            ("b.md", "# B\n\nCopper kettle.\n"),
        ]);
        let passages = one.passages().expect("passages");
        let (mut cache, others) = VectorCache::open(tmp.path(), "test:hashed").expect("open");
        assert!(others.is_empty());
        let (rows, report) = embed_missing(&passages, &mut cache, 2, &embed)
            .await
            .expect("embed");
        assert_eq!(rows.len(), 3);
        assert_eq!((report.embedded, report.batches, report.cached), (3, 2, 0));

        // Reopened from disk: the same tree embeds nothing.
        let (mut cache, _) = VectorCache::open(tmp.path(), "test:hashed").expect("open");
        assert_eq!(cache.len(), 3);
        let (_, report) = embed_missing(&passages, &mut cache, 2, &embed)
            .await
            .expect("embed");
        assert_eq!(report.embedded, 0);
        assert_eq!(calls.load(Ordering::Relaxed), 2);

        // A paragraph inserted in one section: only that chunk is new.
        let two = kb(&[
            (
                "a.md",
                "# A\n\n## One\n\nAmber gate.\n\n## Inserted\n\nDusk lantern.\n\n## Two\n\nBronze bell.\n",
            ),
            ("b.md", "# B\n\nCopper kettle.\n"),
        ]);
        let (_, report) = embed_missing(&two.passages().expect("p"), &mut cache, 2, &embed)
            .await
            .expect("embed");
        assert_eq!((report.embedded, report.cached), (1, 3));
        assert_eq!(texts.load(Ordering::Relaxed), 4);

        // Another model: everything again, and the first one is named.
        let (mut other, others) = VectorCache::open(tmp.path(), "test:other").expect("open");
        assert_eq!(others, vec!["test:hashed".to_owned()]);
        let (_, report) = embed_missing(&passages, &mut other, 8, &embed)
            .await
            .expect("embed");
        assert_eq!(report.embedded, 3);
    }

    #[test]
    fn a_torn_last_record_is_ignored() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (mut cache, _) = VectorCache::open(tmp.path(), "m").expect("open");
        cache
            .insert(vec![([1; 32], vec![1.0, 2.0]), ([2; 32], vec![3.0, 4.0])])
            .expect("insert");
        let file = tmp
            .path()
            .join("vectors")
            .join(format!("{}.bin", model_key("m")));
        let bytes = std::fs::read(&file).expect("read");
        std::fs::write(&file, &bytes[..bytes.len() - 3]).expect("truncate");
        let (cache, _) = VectorCache::open(tmp.path(), "m").expect("open");
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&[1; 32]), Some(&vec![1.0, 2.0]));
    }
}
