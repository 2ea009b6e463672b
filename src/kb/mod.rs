//! The built-in knowledge base: parsing lore markdown into [`Document`]s,
//! splitting documents into [`Chunk`]s, and a BM25 index over the chunks
//! ([`KnowledgeBase`]) that answers free-text queries with
//! [`Passage`]s.
//!
//! Invariants:
//! - Parsing never fails: any text yields a document (front matter, title and
//!   body are all optional; CRLF is accepted).
//! - Chunks never cross a heading, are never empty, and stay within
//!   [`MAX_CHUNK_CHARS`] characters unless a single word is longer. Chunk ids
//!   are `<source>#<n>`, numbered from 0 in document order.
//! - The index lives in RAM, is built once and never changes, so a
//!   [`KnowledgeBase`] is immutable, `Send + Sync` and cheap to search from
//!   many threads.
//! - Search never fails on user syntax: the query is tokenised with the same
//!   analyzer as the index and turned into an OR of term queries. Results are
//!   deterministic: best score first, ties broken by chunk id.

mod chunking;
pub mod loaders;
mod markdown;
pub mod vectors;

use std::collections::{HashMap, HashSet};
use std::fmt;

use include_dir::{Dir, include_dir};
use tantivy::collector::TopDocs;
use tantivy::merge_policy::NoMergePolicy;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    FAST, Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer, TokenStream,
};
use tantivy::{Index, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term};

use crate::domain::{Entity, Passage};

pub use chunking::{MAX_CHUNK_CHARS, chunk};
pub use markdown::parse_markdown;

/// One document, as parsed from a markdown file or produced by a
/// [`loaders`] function from text, HTML or PDF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Where the document comes from (a file name for the embedded lore, an
    /// absolute path or a URL for the on-disk knowledge base).
    pub source: String,
    /// The first `# ` heading, or the source name without its extension.
    pub title: String,
    /// `kind:` from the front matter (`place`, `npc`, ...).
    pub kind: Option<String>,
    /// `tags:` from the front matter.
    pub tags: Vec<String>,
    /// Everything after the front matter, without the title line and without
    /// leading and trailing blank lines (markdown, `\n` line ends). Line `i`
    /// (0-based) of the body is line `body_line + i` of the source text.
    pub body: String,
    /// 1-based line number, in the source text, of the body's first line.
    /// For HTML and PDF the "source text" is the extracted text (see
    /// [`loaders`]).
    pub body_line: usize,
}

/// A piece of a document small enough to retrieve and cite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// `<source>#<n>`, `n` counting from 0 in document order.
    pub id: String,
    pub source: String,
    pub title: String,
    pub kind: Option<String>,
    /// The nearest heading above the chunk, if any: the last element of
    /// `trail`.
    pub heading: Option<String>,
    /// Every enclosing heading inside the body, outermost first (e.g.
    /// `["History", "The Founding"]`); the document title is not in it.
    pub trail: Vec<String>,
    /// 1-based inclusive range of the source lines the chunk's text comes
    /// from (its heading line excluded).
    pub lines: (usize, usize),
    /// The chunk's markdown text (without its heading line).
    pub text: String,
}

/// Why building or searching the index failed.
#[derive(thiserror::Error, Debug)]
pub enum KbError {
    #[error("could not build the knowledge-base index: {0}")]
    Build(#[source] tantivy::TantivyError),
    #[error("knowledge-base search failed: {0}")]
    Search(#[source] tantivy::TantivyError),
    #[error("knowledge-base index is inconsistent: {0}")]
    Inconsistent(String),
}

/// The sample lore shipped inside the binary.
static LORE_DIR: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/assets/lore");

/// The sample lore embedded in the binary: every `*.md` file under
/// `assets/lore`, sorted by path, with the file name as the source.
pub fn embedded_lore() -> Vec<Document> {
    let mut files = Vec::new();
    collect_markdown_files(&LORE_DIR, &mut files);
    files.sort_by(|a, b| a.path().cmp(b.path()));
    files
        .into_iter()
        .map(|file| {
            let source = file
                .path()
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_else(|| file.path().to_string_lossy().into_owned());
            let text = String::from_utf8_lossy(file.contents());
            parse_markdown(&source, &text)
        })
        .collect()
}

fn collect_markdown_files<'a>(dir: &'a Dir<'a>, out: &mut Vec<&'a include_dir::File<'a>>) {
    for file in dir.files() {
        let is_markdown = file
            .path()
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("md"));
        if is_markdown {
            out.push(file);
        }
    }
    for sub in dir.dirs() {
        collect_markdown_files(sub, out);
    }
}

/// Name of the analyzer registered on the index and used for queries.
const ANALYZER: &str = "lore_en";
/// Heap of the (single-threaded) index writer: tantivy's minimum.
const WRITER_HEAP_BYTES: usize = 15_000_000;
/// Query-time boost of the title field.
const TITLE_BOOST: f32 = 2.0;

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    source: Field,
    kind: Field,
    title: Field,
    heading: Field,
    body: Field,
    /// Position of the chunk in `KnowledgeBase::passages` (fast field).
    ord: Field,
}

/// Most chunks of one document a search returns.
pub const MAX_CHUNKS_PER_DOCUMENT: usize = 3;

/// An immutable in-memory BM25 index over the chunks of a set of documents.
pub struct KnowledgeBase {
    searcher: Searcher,
    fields: Fields,
    analyzer: TextAnalyzer,
    /// One passage per chunk (score 0, entities filled), indexed by `ord`.
    passages: Vec<Passage>,
    /// `[segment_ord][doc_id]` -> `ord`.
    doc_map: Vec<Vec<Option<usize>>>,
    documents: usize,
}

impl fmt::Debug for KnowledgeBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KnowledgeBase")
            .field("documents", &self.documents)
            .field("chunks", &self.passages.len())
            .finish_non_exhaustive()
    }
}

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(Stemmer::new(Language::English))
        .build()
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let text = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(ANALYZER)
                .set_index_option(IndexRecordOption::WithFreqs),
        )
        .set_stored();
    let fields = Fields {
        id: builder.add_text_field("id", STRING | STORED),
        source: builder.add_text_field("source", STRING | STORED),
        kind: builder.add_text_field("kind", STRING | STORED),
        title: builder.add_text_field("title", text.clone()),
        heading: builder.add_text_field("heading", text.clone()),
        body: builder.add_text_field("body", text),
        ord: builder.add_u64_field("ord", FAST),
    };
    (builder.build(), fields)
}

impl KnowledgeBase {
    /// Build an in-memory index of all chunks of `docs`.
    pub fn build(docs: Vec<Document>) -> Result<KnowledgeBase, KbError> {
        let titles = TitleIndex::new(&docs);
        let chunks: Vec<Chunk> = docs.iter().flat_map(chunk).collect();

        let (schema, fields) = schema();
        let index = Index::create_in_ram(schema);
        let analyzer = analyzer();
        index.tokenizers().register(ANALYZER, analyzer.clone());

        let mut writer: IndexWriter<TantivyDocument> = index
            .writer_with_num_threads(1, WRITER_HEAP_BYTES)
            .map_err(KbError::Build)?;
        writer.set_merge_policy(Box::new(NoMergePolicy));
        for (ord, chunk) in chunks.iter().enumerate() {
            let mut doc = TantivyDocument::default();
            doc.add_text(fields.id, &chunk.id);
            doc.add_text(fields.source, &chunk.source);
            if let Some(kind) = &chunk.kind {
                doc.add_text(fields.kind, kind);
            }
            doc.add_text(fields.title, &chunk.title);
            if let Some(heading) = &chunk.heading {
                doc.add_text(fields.heading, heading);
            }
            doc.add_text(fields.body, &chunk.text);
            doc.add_u64(fields.ord, ord as u64);
            writer.add_document(doc).map_err(KbError::Build)?;
        }
        writer.commit().map_err(KbError::Build)?;
        writer.wait_merging_threads().map_err(KbError::Build)?;

        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(KbError::Build)?;
        let searcher = reader.searcher();

        let mut doc_map = Vec::with_capacity(searcher.segment_readers().len());
        for segment in searcher.segment_readers() {
            let column = segment.fast_fields().u64("ord").map_err(KbError::Build)?;
            let ords = (0..segment.max_doc())
                .map(|doc| column.first(doc).and_then(|ord| usize::try_from(ord).ok()))
                .collect();
            doc_map.push(ords);
        }

        let passages = chunks
            .into_iter()
            .map(|chunk| {
                let entities = titles.entities_for(&chunk);
                Passage {
                    id: chunk.id,
                    title: chunk.title,
                    source: chunk.source,
                    kind: chunk.kind,
                    heading: chunk.heading,
                    text: chunk.text,
                    score: 0.0,
                    entities,
                }
            })
            .collect();

        Ok(KnowledgeBase {
            searcher,
            fields,
            analyzer,
            passages,
            doc_map,
            documents: docs.len(),
        })
    }

    /// BM25 search with OR semantics over title (boosted), heading and body.
    /// Returns at most `top_k` passages, best first, all with a positive
    /// score. A query with no searchable words returns no passages.
    pub fn search(&self, query: &str, top_k: usize) -> Result<Vec<Passage>, KbError> {
        if top_k == 0 || self.passages.is_empty() {
            return Ok(Vec::new());
        }
        let terms = self.query_terms(query);
        if terms.is_empty() {
            return Ok(Vec::new());
        }

        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for term in &terms {
            for (field, boost) in [
                (self.fields.title, TITLE_BOOST),
                (self.fields.heading, 1.0),
                (self.fields.body, 1.0),
            ] {
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

        // Collect every match (the corpus is small) so that ties at the
        // `top_k` boundary are broken by chunk id, not by index order.
        let hits = self
            .searcher
            .search(&query, &TopDocs::with_limit(self.passages.len()))
            .map_err(KbError::Search)?;

        let mut scored = Vec::with_capacity(hits.len());
        for (score, address) in hits {
            if score.is_nan() || score <= 0.0 {
                continue;
            }
            let ord = self
                .doc_map
                .get(address.segment_ord as usize)
                .and_then(|segment| segment.get(address.doc_id as usize))
                .copied()
                .flatten()
                .ok_or_else(|| {
                    KbError::Inconsistent(format!(
                        "no chunk for document {} of segment {}",
                        address.doc_id, address.segment_ord
                    ))
                })?;
            let passage = self.passages.get(ord).ok_or_else(|| {
                KbError::Inconsistent(format!("chunk ordinal {ord} out of range"))
            })?;
            scored.push((score, passage));
        }
        scored.sort_by(|(sa, pa), (sb, pb)| sb.total_cmp(sa).then_with(|| pa.id.cmp(&pb.id)));
        // At most a few chunks of one document, so that the lore handed to
        // a generator spans several documents (names, places, factions).
        let mut per_source: HashMap<&str, usize> = HashMap::new();
        scored.retain(|(_, passage)| {
            let n = per_source.entry(passage.source.as_str()).or_insert(0);
            *n += 1;
            *n <= MAX_CHUNKS_PER_DOCUMENT
        });
        scored.truncate(top_k);

        Ok(scored
            .into_iter()
            .map(|(score, passage)| Passage {
                score,
                ..passage.clone()
            })
            .collect())
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

    /// Number of documents the index was built from.
    pub fn document_count(&self) -> usize {
        self.documents
    }

    /// Number of indexed chunks.
    pub fn chunk_count(&self) -> usize {
        self.passages.len()
    }

    /// Every chunk as a passage (score 0), in ordinal order: the rows of a
    /// [`vectors::VectorIndex`] line up with these.
    pub fn passages(&self) -> &[Passage] {
        &self.passages
    }
}

/// Document titles by normalised name, for recognising bold names.
struct TitleIndex {
    /// normalised title -> entity (display name, kind); first document wins.
    by_key: HashMap<String, Entity>,
}

impl TitleIndex {
    fn new(docs: &[Document]) -> Self {
        let mut by_key = HashMap::new();
        for doc in docs {
            let Some(kind) = &doc.kind else { continue };
            let key = entity_key(&doc.title);
            if key.is_empty() {
                continue;
            }
            by_key.entry(key).or_insert_with(|| Entity {
                name: entity_name(&doc.title),
                kind: kind.clone(),
            });
        }
        Self { by_key }
    }

    /// The chunk's own document (when it has a kind), then every bold name
    /// that matches a document title, in order of appearance, deduplicated.
    fn entities_for(&self, chunk: &Chunk) -> Vec<Entity> {
        let mut entities: Vec<Entity> = Vec::new();
        let mut push = |entity: Entity| {
            if !entities.iter().any(|e| e.name == entity.name) {
                entities.push(entity);
            }
        };
        if let Some(kind) = &chunk.kind {
            push(Entity {
                name: entity_name(&chunk.title),
                kind: kind.clone(),
            });
        }
        for name in bold_spans(&chunk.text) {
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

    fn doc(source: &str, text: &str) -> Document {
        parse_markdown(source, text)
    }

    fn sample_docs() -> Vec<Document> {
        vec![
            doc(
                "waystone.md",
                "---\nkind: place\ntags: [waystone, ruins]\n---\n# The Shattered Waystone\n\n\
                 A broken monolith on the moor, guarded by **Warden Ilsa Marrow**.\n\n\
                 ## History\n\nIt cracked when the leylines failed. **Nobody Special** saw it.\n",
            ),
            doc(
                "ilsa.md",
                "---\nkind: npc\ntags: [warden]\n---\n# Warden Ilsa Marrow\n\n\
                 A stern keeper who watches over **the Shattered Waystone** day and night.\n",
            ),
            doc(
                "guild.md",
                "---\nkind: faction\n---\n# The Lantern Guild\n\n\
                 Merchants of light. They trade lamp oil along the river roads.\n",
            ),
            doc(
                "notes.md",
                "# Travel Notes\n\nThe river roads flood in spring. Carry lamp oil.\n",
            ),
        ]
    }

    fn sample_kb() -> KnowledgeBase {
        KnowledgeBase::build(sample_docs()).expect("build")
    }

    #[test]
    fn knowledge_base_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<KnowledgeBase>();
    }

    #[test]
    fn build_counts_documents_and_chunks() {
        let kb = sample_kb();
        assert_eq!(kb.document_count(), 4);
        assert_eq!(kb.chunk_count(), 5);
    }

    #[test]
    fn stemming_matches_inflected_forms() {
        let kb = sample_kb();
        let hits = kb.search("guards", 10).expect("search");
        assert!(!hits.is_empty());
        assert_eq!(hits[0].id, "waystone.md#0", "{hits:#?}");
        assert!(hits.iter().all(|p| p.score > 0.0));
    }

    #[test]
    fn title_matches_rank_first() {
        let kb = sample_kb();
        let hits = kb.search("who guards the waystone?", 3).expect("search");
        assert_eq!(hits[0].title, "The Shattered Waystone", "{hits:#?}");
    }

    #[test]
    fn lenient_parsing_never_fails() {
        let kb = sample_kb();
        for query in [
            "\"unbalanced (quote: AND OR",
            "title:waystone^3 -guild +[1 TO 2}",
            "*** ((( ))) \\ ~ ^",
            "NOT",
        ] {
            kb.search(query, 5)
                .unwrap_or_else(|e| panic!("{query}: {e}"));
        }
        let hits = kb.search("\"unbalanced (guild: AND OR", 5).expect("search");
        assert_eq!(hits[0].source, "guild.md");
    }

    #[test]
    fn empty_and_punctuation_queries_return_nothing() {
        let kb = sample_kb();
        assert!(kb.search("", 5).expect("search").is_empty());
        assert!(kb.search("  ?!... ()\" ", 5).expect("search").is_empty());
        assert!(kb.search("waystone", 0).expect("search").is_empty());
    }

    #[test]
    fn one_document_fills_at_most_its_share_of_places() {
        let long = parse_markdown(
            "long.md",
            "# Ember Notes\n\n## One\n\nEmber ember ember.\n\n## Two\n\nEmber ember.\n\n## Three\n\nEmber.\n\n## Four\n\nEmber again.\n\n## Five\n\nAn ember.\n",
        );
        let other = parse_markdown("other.md", "# Other\n\nOne ember here.\n");
        let kb = KnowledgeBase::build(vec![long, other]).expect("build");
        let hits = kb.search("ember", 5).expect("search");
        let from_long = hits.iter().filter(|p| p.source == "long.md").count();
        assert_eq!(from_long, MAX_CHUNKS_PER_DOCUMENT, "{hits:?}");
        assert!(hits.iter().any(|p| p.source == "other.md"), "{hits:?}");
    }

    #[test]
    fn top_k_is_respected_and_order_is_deterministic() {
        let kb = sample_kb();
        let all = kb
            .search("the lamp oil river waystone", 100)
            .expect("search");
        assert!(all.len() >= 4, "{all:#?}");
        let two = kb.search("the lamp oil river waystone", 2).expect("search");
        assert_eq!(two.len(), 2);
        assert_eq!(two[..], all[..2]);
        for pair in all.windows(2) {
            assert!(
                pair[0].score > pair[1].score
                    || (pair[0].score == pair[1].score && pair[0].id < pair[1].id)
            );
        }
        let again = kb
            .search("the lamp oil river waystone", 100)
            .expect("search");
        assert_eq!(all, again);
    }

    #[test]
    fn ties_are_broken_by_chunk_id() {
        let docs = ["b.md", "a.md", "c.md"]
            .iter()
            .map(|s| doc(s, "# Same\n\nIdentical text about owls.\n"))
            .collect();
        let kb = KnowledgeBase::build(docs).expect("build");
        let hits = kb.search("owls", 2).expect("search");
        let ids: Vec<_> = hits.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["a.md#0", "b.md#0"]);
    }

    #[test]
    fn entities_are_filled_with_kinds() {
        let kb = sample_kb();
        let hits = kb.search("monolith moor", 1).expect("search");
        let passage = &hits[0];
        assert_eq!(passage.id, "waystone.md#0");
        assert_eq!(
            passage.entities,
            vec![
                Entity {
                    name: "the Shattered Waystone".into(),
                    kind: "place".into()
                },
                Entity {
                    name: "Warden Ilsa Marrow".into(),
                    kind: "npc".into()
                },
            ]
        );

        // "the Shattered Waystone" in bold matches the title "The Shattered Waystone".
        let hits = kb.search("stern keeper", 1).expect("search");
        assert_eq!(hits[0].source, "ilsa.md");
        assert_eq!(
            hits[0].entities,
            vec![
                Entity {
                    name: "Warden Ilsa Marrow".into(),
                    kind: "npc".into()
                },
                Entity {
                    name: "the Shattered Waystone".into(),
                    kind: "place".into()
                },
            ]
        );

        // Unknown bold names are skipped; a document without kind adds nothing.
        let hits = kb.search("cracked leylines", 1).expect("search");
        assert_eq!(hits[0].heading.as_deref(), Some("History"));
        assert_eq!(hits[0].entities.len(), 1);
        let hits = kb.search("spring flood", 1).expect("search");
        assert_eq!(hits[0].source, "notes.md");
        assert!(hits[0].entities.is_empty());
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
    fn empty_knowledge_base_searches_fine() {
        let kb = KnowledgeBase::build(Vec::new()).expect("build");
        assert_eq!(kb.chunk_count(), 0);
        assert!(kb.search("anything", 5).expect("search").is_empty());
    }

    #[test]
    fn embedded_lore_is_searchable() {
        let docs = embedded_lore();
        assert!(docs.len() >= 25, "only {} lore documents", docs.len());
        let mut sources: Vec<_> = docs.iter().map(|d| d.source.clone()).collect();
        sources.sort();
        assert_eq!(
            sources,
            docs.iter().map(|d| d.source.clone()).collect::<Vec<_>>()
        );
        let start = std::time::Instant::now();
        let kb = KnowledgeBase::build(docs).expect("build");
        eprintln!(
            "embedded lore: {} documents, {} chunks, built in {:?}",
            kb.document_count(),
            kb.chunk_count(),
            start.elapsed()
        );
        let hits = kb.search("who guards the waystone?", 5).expect("search");
        assert!(
            hits.iter()
                .take(2)
                .any(|p| p.title == "The Shattered Waystone"),
            "{:#?}",
            hits.iter()
                .map(|p| (&p.id, &p.title, p.score))
                .collect::<Vec<_>>()
        );
    }
}
