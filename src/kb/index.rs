//! The tantivy index behind every knowledge base, in RAM (the built-in
//! sample lore) or on disk (a user's knowledge base, see [`super::store`]),
//! and [`KnowledgeBase`], which searches it.
//!
//! One index holds everything about a knowledge base, as records told apart
//! by their `type` field:
//! - `chunk`: one retrievable passage (title, heading, body are indexed);
//! - `doc`: the manifest entry of one source document (its key, content
//!   hash, title, sizes, when it was indexed);
//! - `root`: a path or URL given to `kb add`, re-checked by `kb sync`.
//!
//! Invariants:
//! - A document's `doc` record and its `chunk` records share the `path` term,
//!   and are always deleted and added in the same commit. Because the
//!   manifest lives in the index, one tantivy commit (atomic) moves both:
//!   a crash can never leave the manifest and the chunks disagreeing.
//! - Only `chunk` records carry indexed text, so a search can only hit
//!   chunks.
//! - Search never fails on user syntax: the query is tokenised with the same
//!   analyzer as the index and turned into an OR of term queries. Results are
//!   deterministic: best score first, ties broken by document then chunk
//!   number; at most [`MAX_CHUNKS_PER_DOCUMENT`] chunks of one document.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
    TextOptions, Value,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer, TokenStream,
};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term,
};

use super::{Chunk, Document, KbError};
use crate::domain::{Entity, Location, Passage};

/// Name of the analyzer registered on the index and used for queries.
const ANALYZER: &str = "lore_en";
/// Query-time boost of the title field.
const TITLE_BOOST: f32 = 2.0;
/// Separates the headings of a trail in its stored field.
const TRAIL_SEPARATOR: char = '\u{1f}';

/// Most chunks of one document a search returns.
pub const MAX_CHUNKS_PER_DOCUMENT: usize = 3;

pub(crate) const TYPE_CHUNK: &str = "chunk";
pub(crate) const TYPE_DOC: &str = "doc";
pub(crate) const TYPE_ROOT: &str = "root";

#[derive(Clone, Copy, Debug)]
pub(crate) struct Fields {
    pub record: Field,
    pub path: Field,
    pub id: Field,
    pub title: Field,
    pub kind: Field,
    pub heading: Field,
    pub trail: Field,
    pub body: Field,
    pub line_start: Field,
    pub line_end: Field,
    /// Hash of `path`: ties between equal scores are broken by it.
    pub key: Field,
    /// Chunk number inside its document.
    pub n: Field,
    pub doc_title: Field,
    pub hash: Field,
    pub bytes: Field,
    pub indexed_at: Field,
    pub chunks: Field,
    pub root: Field,
    pub tags: Field,
    /// On a root record: 1 when it was walked with hidden files.
    pub hidden: Field,
}

pub(crate) fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(Stemmer::new(Language::English))
        .build()
}

pub(crate) fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let text = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(ANALYZER)
                .set_index_option(IndexRecordOption::WithFreqs),
        )
        .set_stored();
    let fields = Fields {
        record: builder.add_text_field("type", STRING),
        path: builder.add_text_field("path", STRING | STORED),
        id: builder.add_text_field("id", STORED),
        title: builder.add_text_field("title", text.clone()),
        kind: builder.add_text_field("kind", STORED),
        heading: builder.add_text_field("heading", text.clone()),
        trail: builder.add_text_field("trail", STORED),
        body: builder.add_text_field("body", text),
        line_start: builder.add_u64_field("line_start", STORED),
        line_end: builder.add_u64_field("line_end", STORED),
        key: builder.add_u64_field("key", FAST),
        n: builder.add_u64_field("n", FAST),
        doc_title: builder.add_text_field("doc_title", STORED),
        hash: builder.add_text_field("hash", STORED),
        bytes: builder.add_u64_field("bytes", STORED),
        indexed_at: builder.add_u64_field("indexed_at", STORED | INDEXED),
        chunks: builder.add_u64_field("chunks", STORED),
        root: builder.add_text_field("root", STRING | STORED),
        tags: builder.add_text_field("tags", STORED),
        hidden: builder.add_u64_field("hidden", STORED),
    };
    (builder.build(), fields)
}

/// Register the analyzer on an index (created or opened).
pub(crate) fn register(index: &Index) {
    index.tokenizers().register(ANALYZER, analyzer());
}

/// The first 8 bytes of the path's BLAKE3 hash.
fn path_key(path: &str) -> u64 {
    let hash = blake3::hash(path.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_be_bytes(bytes)
}

/// What the manifest knows of one indexed document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DocRecord {
    /// Absolute path or URL: the document's key.
    pub path: String,
    pub title: String,
    /// BLAKE3 of the raw bytes, hex.
    pub hash: String,
    pub bytes: u64,
    pub chunks: u64,
    /// Seconds since the Unix epoch.
    pub indexed_at: u64,
    /// The root (as given to `kb add`, absolute) it was found under.
    pub root: String,
}

/// Delete a document's records (its manifest entry and its chunks).
pub(crate) fn delete_document(writer: &IndexWriter<TantivyDocument>, fields: &Fields, path: &str) {
    writer.delete_term(Term::from_field_text(fields.path, path));
}

/// Add a document's manifest entry and chunks. The caller deletes the old
/// ones first, in the same commit.
pub(crate) fn add_document(
    writer: &IndexWriter<TantivyDocument>,
    fields: &Fields,
    doc: &Document,
    chunks: &[Chunk],
    record: &DocRecord,
) -> Result<(), KbError> {
    let key = path_key(&record.path);
    for (n, chunk) in chunks.iter().enumerate() {
        let mut d = TantivyDocument::default();
        d.add_text(fields.record, TYPE_CHUNK);
        d.add_text(fields.path, &record.path);
        d.add_text(fields.id, &chunk.id);
        d.add_text(fields.title, &chunk.title);
        if let Some(kind) = &chunk.kind {
            d.add_text(fields.kind, kind);
        }
        if let Some(heading) = &chunk.heading {
            d.add_text(fields.heading, heading);
        }
        if !chunk.trail.is_empty() {
            let trail: Vec<&str> = chunk.trail.iter().map(String::as_str).collect();
            d.add_text(fields.trail, trail.join(&TRAIL_SEPARATOR.to_string()));
        }
        d.add_text(fields.body, &chunk.text);
        if chunk.lines.0 > 0 {
            d.add_u64(fields.line_start, chunk.lines.0 as u64);
            d.add_u64(fields.line_end, chunk.lines.1 as u64);
        }
        d.add_u64(fields.key, key);
        d.add_u64(fields.n, n as u64);
        writer.add_document(d).map_err(KbError::Write)?;
    }
    let mut d = TantivyDocument::default();
    d.add_text(fields.record, TYPE_DOC);
    d.add_text(fields.path, &record.path);
    d.add_text(fields.doc_title, &record.title);
    if let Some(kind) = &doc.kind {
        d.add_text(fields.kind, kind);
    }
    if !doc.tags.is_empty() {
        d.add_text(fields.tags, doc.tags.join(","));
    }
    d.add_text(fields.hash, &record.hash);
    d.add_u64(fields.bytes, record.bytes);
    d.add_u64(fields.chunks, record.chunks);
    d.add_u64(fields.indexed_at, record.indexed_at);
    d.add_text(fields.root, &record.root);
    d.add_u64(fields.key, key);
    writer.add_document(d).map_err(KbError::Write)?;
    Ok(())
}

/// Record a root given to `kb add` (idempotent: the old record goes).
pub(crate) fn add_root(
    writer: &IndexWriter<TantivyDocument>,
    fields: &Fields,
    root: &str,
    added_at: u64,
    hidden: bool,
) -> Result<(), KbError> {
    delete_root(writer, fields, root)?;
    let mut d = TantivyDocument::default();
    d.add_text(fields.record, TYPE_ROOT);
    d.add_text(fields.root, root);
    d.add_u64(fields.indexed_at, added_at);
    d.add_u64(fields.hidden, u64::from(hidden));
    writer.add_document(d).map_err(KbError::Write)?;
    Ok(())
}

/// Forget a root. `doc` records carry their root as a term too, so this
/// deletes by `type:root AND root:ROOT`, never by the root term alone.
pub(crate) fn delete_root(
    writer: &IndexWriter<TantivyDocument>,
    fields: &Fields,
    root: &str,
) -> Result<(), KbError> {
    let term = |field: Field, value: &str| -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, value),
            IndexRecordOption::Basic,
        ))
    };
    let query = BooleanQuery::new(vec![
        (Occur::Must, term(fields.record, TYPE_ROOT)),
        (Occur::Must, term(fields.root, root)),
    ]);
    writer
        .delete_query(Box::new(query))
        .map(|_| ())
        .map_err(KbError::Write)
}

/// The segments a searcher sees, with their delete opstamps.
type Generation = std::collections::BTreeMap<tantivy::index::SegmentId, Option<tantivy::Opstamp>>;

/// What a search needs to know of every document: display names (the
/// shortest unambiguous path) and titles (for recognising entities).
#[derive(Debug, Default)]
struct Catalog {
    display: HashMap<String, String>,
    titles: TitleIndex,
    /// Live manifest and root records, which BM25 should not count as
    /// documents (see [`ChunkStatistics`]).
    other_records: u64,
}

/// BM25 statistics over the chunks alone. Manifest and root records share
/// the index but hold no indexed text; counted as documents they would
/// lower the average field length and raise every IDF, so scores would
/// drift with the number of files rather than with the text.
///
/// tantivy counts deleted documents until segments merge (in the total and
/// in every term's document frequency alike), so the total here is
/// tantivy's minus the live non-chunk records: never below any chunk
/// term's frequency.
struct ChunkStatistics<'a> {
    searcher: &'a Searcher,
    other_records: u64,
}

impl ChunkStatistics<'_> {
    fn total(&self) -> tantivy::Result<u64> {
        use tantivy::query::Bm25StatisticsProvider;
        Ok(self
            .searcher
            .total_num_docs()?
            .saturating_sub(self.other_records)
            .max(1))
    }
}

impl tantivy::query::Bm25StatisticsProvider for ChunkStatistics<'_> {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        self.searcher.total_num_tokens(field)
    }

    fn total_num_docs(&self) -> tantivy::Result<u64> {
        self.total()
    }

    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        Ok(self.searcher.doc_freq(term)?.min(self.total()?))
    }
}

/// A searchable knowledge base over an index in RAM or on disk. Cheap to
/// share between threads; every search sees the latest commit the reader
/// has loaded.
pub struct KnowledgeBase {
    reader: IndexReader,
    fields: Fields,
    analyzer: TextAnalyzer,
    /// Per searcher generation: what the documents are called.
    catalog: Mutex<Option<(Generation, Arc<Catalog>)>>,
    /// The knowledge base's name, for status lines.
    name: String,
    /// Its directory on disk (none for the in-memory sample lore).
    dir: Option<std::path::PathBuf>,
}

impl fmt::Debug for KnowledgeBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KnowledgeBase").finish_non_exhaustive()
    }
}

/// Heap of the index writer that builds an in-memory index: tantivy's
/// minimum per thread.
pub(crate) const WRITER_HEAP_BYTES: usize = 15_000_000;

impl KnowledgeBase {
    /// Build an in-memory index of all chunks of `docs` (keyed by their
    /// `source`): the built-in sample lore, and tests.
    pub fn build(docs: Vec<Document>) -> Result<KnowledgeBase, KbError> {
        let (schema, fields) = schema();
        let index = Index::create_in_ram(schema);
        register(&index);
        let mut writer: IndexWriter<TantivyDocument> = index
            .writer_with_num_threads(1, WRITER_HEAP_BYTES)
            .map_err(KbError::Build)?;
        writer.set_merge_policy(Box::new(tantivy::merge_policy::NoMergePolicy));
        for doc in &docs {
            let chunks = super::chunk(doc);
            let record = DocRecord {
                path: doc.source.clone(),
                title: doc.title.clone(),
                hash: blake3::hash(doc.body.as_bytes()).to_hex().to_string(),
                bytes: doc.body.len() as u64,
                chunks: chunks.len() as u64,
                indexed_at: 0,
                root: String::new(),
            };
            add_document(&writer, &fields, doc, &chunks, &record)?;
        }
        writer.commit().map_err(KbError::Build)?;
        writer.wait_merging_threads().map_err(KbError::Build)?;
        Self::from_index(&index, fields, ReloadPolicy::Manual)
    }

    /// A knowledge base over an existing index.
    pub(crate) fn from_index(
        index: &Index,
        fields: Fields,
        policy: ReloadPolicy,
    ) -> Result<KnowledgeBase, KbError> {
        register(index);
        let reader = index
            .reader_builder()
            .reload_policy(policy)
            .try_into()
            .map_err(KbError::Build)?;
        Ok(KnowledgeBase {
            reader,
            fields,
            analyzer: analyzer(),
            catalog: Mutex::new(None),
            name: String::new(),
            dir: None,
        })
    }

    /// The same knowledge base, known by `name`.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// The same knowledge base, living in `dir` (its chunk vectors too).
    pub fn in_dir(mut self, dir: &std::path::Path) -> Self {
        self.dir = Some(dir.to_owned());
        self
    }

    /// Where the knowledge base lives on disk, if it does.
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_deref()
    }

    /// The knowledge base's name (empty for an unnamed one).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Load the latest commit now (after this process wrote one).
    pub fn reload(&self) -> Result<(), KbError> {
        self.reader.reload().map_err(KbError::Search)
    }

    fn searcher(&self) -> Searcher {
        self.reader.searcher()
    }

    fn type_query(&self, record: &str) -> TermQuery {
        TermQuery::new(
            Term::from_field_text(self.fields.record, record),
            IndexRecordOption::Basic,
        )
    }

    fn catalog(&self, searcher: &Searcher) -> Result<Arc<Catalog>, KbError> {
        // Keyed by the segments (and their deletes), not the generation
        // id: a reload that changed nothing keeps the catalog.
        let generation: Generation = searcher.generation().segments().clone();
        let mut cached = self
            .catalog
            .lock()
            .map_err(|_| KbError::Inconsistent("catalog lock poisoned".into()))?;
        if let Some((at, catalog)) = cached.as_ref()
            && *at == generation
        {
            return Ok(catalog.clone());
        }
        let docs = self.doc_entries(searcher)?;
        let paths: Vec<&str> = docs.iter().map(|d| d.0.path.as_str()).collect();
        let display = shortest_unambiguous(&paths);
        let titles = TitleIndex::new(docs.iter().map(|(r, kind)| (r.title.as_str(), kind)));
        let roots = searcher
            .search(&self.type_query(TYPE_ROOT), &Count)
            .map_err(KbError::Search)?;
        let catalog = Arc::new(Catalog {
            display,
            titles,
            other_records: (docs.len() + roots) as u64,
        });
        *cached = Some((generation, catalog.clone()));
        Ok(catalog)
    }

    /// The address of every record of one type.
    fn all_of(&self, searcher: &Searcher, record: &str) -> Result<Vec<DocAddress>, KbError> {
        let query = self.type_query(record);
        let total = searcher.search(&query, &Count).map_err(KbError::Search)?;
        if total == 0 {
            return Ok(Vec::new());
        }
        Ok(searcher
            .search(&query, &TopDocs::with_limit(total))
            .map_err(KbError::Search)?
            .into_iter()
            .map(|(_, address)| address)
            .collect())
    }

    /// Every manifest entry with its document kind.
    fn doc_entries(
        &self,
        searcher: &Searcher,
    ) -> Result<Vec<(DocRecord, Option<String>)>, KbError> {
        let hits = self.all_of(searcher, TYPE_DOC)?;
        let mut out = Vec::with_capacity(hits.len());
        for address in hits {
            let doc: TantivyDocument = searcher.doc(address).map_err(KbError::Search)?;
            let f = &self.fields;
            out.push((
                DocRecord {
                    path: text(&doc, f.path),
                    title: text(&doc, f.doc_title),
                    hash: text(&doc, f.hash),
                    bytes: number(&doc, f.bytes),
                    chunks: number(&doc, f.chunks),
                    indexed_at: number(&doc, f.indexed_at),
                    root: text(&doc, f.root),
                },
                opt_text(&doc, f.kind),
            ));
        }
        out.sort_by(|a, b| a.0.path.cmp(&b.0.path));
        Ok(out)
    }

    /// The manifest: every document, sorted by path.
    pub fn documents(&self) -> Result<Vec<DocRecord>, KbError> {
        let searcher = self.searcher();
        Ok(self
            .doc_entries(&searcher)?
            .into_iter()
            .map(|(record, _)| record)
            .collect())
    }

    /// Every root given to `kb add`, sorted.
    pub fn roots(&self) -> Result<Vec<String>, KbError> {
        Ok(self
            .roots_with_options()?
            .into_iter()
            .map(|(root, _)| root)
            .collect())
    }

    /// Every root with whether it was walked with hidden files, sorted.
    pub fn roots_with_options(&self) -> Result<Vec<(String, bool)>, KbError> {
        let searcher = self.searcher();
        let mut roots = Vec::new();
        for address in self.all_of(&searcher, TYPE_ROOT)? {
            let doc: TantivyDocument = searcher.doc(address).map_err(KbError::Search)?;
            roots.push((
                text(&doc, self.fields.root),
                number(&doc, self.fields.hidden) == 1,
            ));
        }
        roots.sort();
        roots.dedup_by(|a, b| a.0 == b.0);
        Ok(roots)
    }

    /// How the path of a document is shown: the shortest suffix of its path
    /// that no other document shares.
    pub fn display_name(&self, path: &str) -> String {
        let searcher = self.searcher();
        self.catalog(&searcher)
            .ok()
            .and_then(|c| c.display.get(path).cloned())
            .unwrap_or_else(|| path.to_owned())
    }

    /// Number of documents in the manifest.
    pub fn document_count(&self) -> usize {
        let searcher = self.searcher();
        searcher
            .search(&self.type_query(TYPE_DOC), &Count)
            .unwrap_or(0)
    }

    /// Number of indexed chunks.
    pub fn chunk_count(&self) -> usize {
        let searcher = self.searcher();
        searcher
            .search(&self.type_query(TYPE_CHUNK), &Count)
            .unwrap_or(0)
    }

    /// BM25 search with OR semantics over title (boosted), heading and body.
    /// Returns at most `top_k` passages, best first, all with a positive
    /// score. A query with no searchable words returns no passages.
    pub fn search(&self, query: &str, top_k: usize) -> Result<Vec<Passage>, KbError> {
        self.search_capped(query, top_k, MAX_CHUNKS_PER_DOCUMENT)
    }

    /// [`Self::search`] with another cap on chunks per document (`usize::MAX`
    /// for none: benchmarks against retrievers that rank chunks alone).
    pub fn search_capped(
        &self,
        query: &str,
        top_k: usize,
        per_document: usize,
    ) -> Result<Vec<Passage>, KbError> {
        let fields = [
            (self.fields.title, TITLE_BOOST),
            (self.fields.heading, 1.0),
            (self.fields.body, 1.0),
        ];
        self.search_fields(query, top_k, per_document, &fields)
    }

    /// BM25 over the chunks' bodies alone (no title or heading field, no
    /// per-document cap): how a single-field retriever such as Haystack's
    /// `InMemoryBM25Retriever` ranks the same chunks, for benchmarks that
    /// must rank alike to compare cost (`scripts/bench-peers`).
    pub fn search_body(&self, query: &str, top_k: usize) -> Result<Vec<Passage>, KbError> {
        self.search_fields(query, top_k, usize::MAX, &[(self.fields.body, 1.0)])
    }

    /// The search itself: an OR of every query term in each of `fields`
    /// (with its boost).
    fn search_fields(
        &self,
        query: &str,
        top_k: usize,
        per_document: usize,
        fields: &[(Field, f32)],
    ) -> Result<Vec<Passage>, KbError> {
        if top_k == 0 || per_document == 0 {
            return Ok(Vec::new());
        }
        let terms = self.query_terms(query);
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for term in &terms {
            for &(field, boost) in fields {
                let term_query: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(field, term),
                    IndexRecordOption::WithFreqs,
                ));
                let clause: Box<dyn Query> = if boost == 1.0 {
                    term_query
                } else {
                    Box::new(BoostQuery::new(term_query, boost))
                };
                clauses.push((Occur::Should, clause));
            }
        }
        let query = BooleanQuery::new(clauses);
        let searcher = self.searcher();
        let catalog = self.catalog(&searcher)?;
        let statistics = ChunkStatistics {
            searcher: &searcher,
            other_records: catalog.other_records,
        };

        // Collect deep enough that the per-document cap still leaves top_k,
        // and past the boundary so that ties there are broken by key, not
        // by index order; go deeper when the cap ate too much.
        let mut limit = (top_k * 4).max(32);
        loop {
            let hits = searcher
                .search_with_statistics_provider(&query, &TopDocs::with_limit(limit), &statistics)
                .map_err(KbError::Search)?;
            let exhausted = hits.len() < limit;
            let mut scored = Vec::with_capacity(hits.len());
            for (score, address) in hits {
                if score.is_nan() || score <= 0.0 {
                    continue;
                }
                let (key, n) = self.order_of(&searcher, address)?;
                scored.push((score, key, n, address));
            }
            // Only the scores at the deep end may be cut mid-tie: drop the
            // lowest score when more could follow, so no tie is split.
            if !exhausted && let Some(&(lowest, ..)) = scored.last() {
                let kept = scored.iter().filter(|(s, ..)| *s > lowest).count();
                if kept >= top_k {
                    scored.truncate(kept);
                }
            }
            scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            let mut per_key: HashMap<u64, usize> = HashMap::new();
            scored.retain(|(_, key, ..)| {
                let seen = per_key.entry(*key).or_insert(0);
                *seen += 1;
                *seen <= per_document
            });
            if scored.len() >= top_k || exhausted {
                scored.truncate(top_k);
                return scored
                    .into_iter()
                    .map(|(score, _, _, address)| self.passage(&searcher, &catalog, address, score))
                    .collect();
            }
            limit *= 4;
        }
    }

    fn order_of(&self, searcher: &Searcher, address: DocAddress) -> Result<(u64, u64), KbError> {
        let segment = searcher.segment_reader(address.segment_ord);
        let fast = segment.fast_fields();
        let key = fast.u64("key").map_err(KbError::Search)?;
        let n = fast.u64("n").map_err(KbError::Search)?;
        Ok((
            key.first(address.doc_id).unwrap_or(0),
            n.first(address.doc_id).unwrap_or(0),
        ))
    }

    fn passage(
        &self,
        searcher: &Searcher,
        catalog: &Catalog,
        address: DocAddress,
        score: f32,
    ) -> Result<Passage, KbError> {
        let doc: TantivyDocument = searcher.doc(address).map_err(KbError::Search)?;
        Ok(self.passage_of(&doc, catalog, score))
    }

    fn passage_of(&self, doc: &TantivyDocument, catalog: &Catalog, score: f32) -> Passage {
        let f = &self.fields;
        let path = text(doc, f.path);
        let title = text(doc, f.title);
        let kind = opt_text(doc, f.kind);
        let body = text(doc, f.body);
        let trail: Vec<String> = opt_text(doc, f.trail)
            .map(|t| t.split(TRAIL_SEPARATOR).map(str::to_owned).collect())
            .unwrap_or_default();
        let lines = match (
            doc.get_first(f.line_start).and_then(|v| v.as_u64()),
            doc.get_first(f.line_end).and_then(|v| v.as_u64()),
        ) {
            (Some(start), Some(end)) => Some((start as usize, end as usize)),
            _ => None,
        };
        let entities = catalog.titles.entities_for(&title, kind.as_deref(), &body);
        let source = catalog
            .display
            .get(&path)
            .cloned()
            .unwrap_or_else(|| path.clone());
        Passage {
            id: text(doc, f.id),
            title,
            source,
            kind,
            heading: opt_text(doc, f.heading),
            text: body,
            score,
            entities,
            location: Location { trail, lines },
        }
    }

    /// Every chunk as a passage (score 0), in a stable order (by document
    /// key, then chunk number): what hybrid retrieval embeds.
    pub fn passages(&self) -> Result<Vec<Passage>, KbError> {
        let searcher = self.searcher();
        let catalog = self.catalog(&searcher)?;
        let hits = self.all_of(&searcher, TYPE_CHUNK)?;
        let mut keyed = Vec::with_capacity(hits.len());
        for address in hits {
            let (key, n) = self.order_of(&searcher, address)?;
            keyed.push((key, n, address));
        }
        keyed.sort_by_key(|&(key, n, _)| (key, n));
        keyed
            .into_iter()
            .map(|(_, _, address)| self.passage(&searcher, &catalog, address, 0.0))
            .collect()
    }

    /// Every record, for checks in tests.
    #[cfg(test)]
    fn record_count(&self) -> usize {
        self.searcher()
            .search(&tantivy::query::AllQuery, &Count)
            .unwrap_or(0)
    }

    /// The distinct analyzed terms of a query, in order of first appearance.
    fn query_terms(&self, query: &str) -> Vec<String> {
        let mut analyzer = self.analyzer.clone();
        let mut stream = analyzer.token_stream(query);
        let mut seen = HashSet::new();
        let mut terms = Vec::new();
        while stream.advance() {
            let text = &stream.token().text;
            if !text.is_empty() && seen.insert(text.clone()) {
                terms.push(text.clone());
            }
        }
        terms
    }

    /// The analyzed terms of `text`, for highlighting matches in snippets.
    pub fn analyze(&self, text: &str) -> Vec<String> {
        self.query_terms(text)
    }
}

fn text(doc: &TantivyDocument, field: Field) -> String {
    opt_text(doc, field).unwrap_or_default()
}

fn opt_text(doc: &TantivyDocument, field: Field) -> Option<String> {
    doc.get_first(field)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

fn number(doc: &TantivyDocument, field: Field) -> u64 {
    doc.get_first(field).and_then(|v| v.as_u64()).unwrap_or(0)
}

/// For each path, the shortest suffix of whole components that no other
/// path ends with; URLs are shown whole.
pub fn shortest_unambiguous(paths: &[&str]) -> HashMap<String, String> {
    // Each suffix is a tail of the path string that starts after a
    // separator: counted as borrowed slices, no allocation per suffix.
    fn tails(path: &str) -> impl Iterator<Item = &str> {
        let trimmed = path.trim_end_matches(['/', '\\']);
        let starts = trimmed
            .char_indices()
            .rev()
            .filter(|(_, c)| matches!(c, '/' | '\\'))
            .map(|(i, _)| i + 1);
        std::iter::once(trimmed.len())
            .chain(starts)
            .skip(1)
            .chain(std::iter::once(0))
            .map(move |start| trimmed[start..].trim_start_matches(['/', '\\']))
            .filter(|tail| !tail.is_empty())
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for path in paths.iter().filter(|p| !is_url(p)) {
        let mut seen = HashSet::new();
        for tail in tails(path) {
            if seen.insert(tail) {
                *counts.entry(tail).or_insert(0) += 1;
            }
        }
    }
    paths
        .iter()
        .map(|path| {
            let shown = if is_url(path) {
                path
            } else {
                tails(path)
                    .find(|tail| counts.get(tail) == Some(&1))
                    .unwrap_or(path)
            };
            (path.to_string(), shown.replace('\\', "/"))
        })
        .collect()
}

fn is_url(path: &str) -> bool {
    path.starts_with("http://") || path.starts_with("https://")
}

/// Document titles by normalised name, for recognising bold names.
#[derive(Debug, Default)]
struct TitleIndex {
    /// normalised title -> entity (display name, kind); first document wins.
    by_key: HashMap<String, Entity>,
}

impl TitleIndex {
    fn new<'a>(docs: impl Iterator<Item = (&'a str, &'a Option<String>)>) -> Self {
        let mut by_key = HashMap::new();
        for (title, kind) in docs {
            let Some(kind) = kind else { continue };
            let key = entity_key(title);
            if key.is_empty() {
                continue;
            }
            by_key.entry(key).or_insert_with(|| Entity {
                name: entity_name(title),
                kind: kind.clone(),
            });
        }
        Self { by_key }
    }

    /// The chunk's own document (when it has a kind), then every bold name
    /// that matches a document title, in order of appearance, deduplicated.
    fn entities_for(&self, title: &str, kind: Option<&str>, text: &str) -> Vec<Entity> {
        let mut entities: Vec<Entity> = Vec::new();
        let mut push = |entity: Entity| {
            if !entities.iter().any(|e| e.name == entity.name) {
                entities.push(entity);
            }
        };
        if let Some(kind) = kind {
            push(Entity {
                name: entity_name(title),
                kind: kind.to_owned(),
            });
        }
        for name in bold_spans(text) {
            if let Some(entity) = self.by_key.get(&entity_key(name)) {
                push(entity.clone());
            }
        }
        entities
    }
}

/// Lowercase, whitespace-normalised, without a leading "the " and without
/// trailing punctuation: the form in which bold names and titles are compared.
fn entity_key(name: &str) -> String {
    let normalised = name
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    let trimmed = normalised.trim_end_matches(['.', ',', ';', ':', '!', '?']);
    trimmed
        .strip_prefix("the ")
        .unwrap_or(trimmed)
        .trim()
        .to_owned()
}

/// A title as an entity name: as written, except that a leading "The "
/// becomes "the " so it reads well mid-sentence.
fn entity_name(title: &str) -> String {
    let title = title.trim();
    match title.strip_prefix("The ") {
        Some(rest) => format!("the {rest}"),
        None => title.to_owned(),
    }
}

/// The contents of every `**...**` span in `text`, in order.
fn bold_spans(text: &str) -> Vec<&str> {
    let mut spans = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("**") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("**") else { break };
        let inner = after[..end].trim();
        if !inner.is_empty() {
            spans.push(inner);
        }
        rest = &after[end + 2..];
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kb::parse_markdown;

    #[test]
    fn shortest_paths_disambiguate_same_file_names() {
        let map = shortest_unambiguous(&[
            "/home/a/notes/README.md",
            "/home/a/wiki/README.md",
            "/home/a/wiki/ash.md",
            "https://example.org/page",
        ]);
        assert_eq!(map["/home/a/notes/README.md"], "notes/README.md");
        assert_eq!(map["/home/a/wiki/README.md"], "wiki/README.md");
        assert_eq!(map["/home/a/wiki/ash.md"], "ash.md");
        assert_eq!(map["https://example.org/page"], "https://example.org/page");
    }

    #[test]
    fn bold_spans_are_found() {
        assert_eq!(bold_spans("a **B c** d **e** **unclosed"), vec!["B c", "e"]);
        assert_eq!(
            entity_key("The  Shattered\nWaystone."),
            "shattered waystone"
        );
    }

    #[test]
    fn only_chunks_are_searchable_and_records_are_counted() {
        let docs = vec![parse_markdown(
            "a.md",
            "# Alpha doc\n\nAlpha text.\n\n## Beta\n\nMore alpha.\n",
        )];
        let kb = KnowledgeBase::build(docs).expect("build");
        assert_eq!(kb.document_count(), 1);
        assert_eq!(kb.chunk_count(), 2);
        assert_eq!(kb.record_count(), 3);
        let hits = kb.search("alpha doc", 10).expect("search");
        assert_eq!(hits.len(), 2);
        assert!(hits.iter().all(|p| p.id.starts_with("a.md#")));
    }

    #[test]
    fn body_search_ranks_bodies_alone_and_has_no_per_document_cap() {
        let docs = vec![
            // "heron" only in the title: the full search finds it, the
            // body search does not.
            parse_markdown(
                "title.md",
                "# Heron hall

Stone walls and a gate.
",
            ),
            // Four sections that all say "ember" in their bodies.
            parse_markdown(
                "many.md",
                "# Forge

## One

Ember.

## Two

Ember.

## Three

Ember.

## Four

Ember.
",
            ),
        ];
        let kb = KnowledgeBase::build(docs).expect("build");
        let full = kb.search("heron", 5).expect("search");
        assert_eq!(full.len(), 1, "{full:?}");
        assert!(kb.search_body("heron", 5).expect("search").is_empty());
        let capped = kb.search("ember", 10).expect("search");
        let body = kb.search_body("ember", 10).expect("search");
        assert_eq!(capped.len(), MAX_CHUNKS_PER_DOCUMENT);
        assert_eq!(body.len(), 4, "{body:?}");
        assert!(body.iter().all(|p| p.id.starts_with("many.md#")));
    }
}
