//! Knowledge bases: parsing documents into [`Document`]s, splitting them
//! into [`Chunk`]s, a BM25 index over the chunks ([`KnowledgeBase`], in
//! `index`), the on-disk knowledge bases a user fills with `kb add`
//! ([`store`]), and vectors for hybrid retrieval ([`vectors`]).
//!
//! Invariants:
//! - Parsing never fails: any text yields a document (front matter, title and
//!   body are all optional; CRLF is accepted).
//! - Chunks never cross a heading, are never empty, and stay within
//!   [`MAX_CHUNK_CHARS`] characters unless a single word is longer. Chunk ids
//!   are `<source>#<n>`, numbered from 0 in document order.
//! - The built-in sample lore is indexed in RAM and never changes; a user's
//!   knowledge base lives on disk and changes only through [`store`]'s
//!   single writer.

pub mod cache;
mod chunking;
pub mod corpus;
pub mod eval;
pub mod fetch;
mod index;
pub mod loaders;
mod markdown;
pub mod store;
pub mod vectors;

use include_dir::{Dir, include_dir};

pub use chunking::{MAX_CHUNK_CHARS, chunk};
pub use index::{DocRecord, KnowledgeBase, MAX_CHUNKS_PER_DOCUMENT, shortest_unambiguous};
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
    #[error("could not write to the knowledge-base index: {0}")]
    Write(#[source] tantivy::TantivyError),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Entity;

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
    fn ties_are_broken_the_same_way_whatever_the_input_order() {
        let docs = ["b.md", "a.md", "c.md"]
            .iter()
            .map(|s| doc(s, "# Same\n\nIdentical text about owls.\n"))
            .collect();
        let kb = KnowledgeBase::build(docs).expect("build");
        let hits = kb.search("owls", 3).expect("search");
        let ids: Vec<_> = hits.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids.len(), 3);
        // The same order every time, whatever order the documents came in.
        for order in [["c.md", "b.md", "a.md"], ["a.md", "c.md", "b.md"]] {
            let docs = order
                .iter()
                .map(|s| doc(s, "# Same\n\nIdentical text about owls.\n"))
                .collect();
            let again = KnowledgeBase::build(docs).expect("build");
            let hits = again.search("owls", 3).expect("search");
            let same: Vec<_> = hits.iter().map(|p| p.id.as_str()).collect();
            assert_eq!(same, ids);
        }
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
