//! The built-in offline generator: a [`ChatModel`] that needs no network and
//! no language model. Scenarios come from seeded random tables
//! (`assets/tables/scenario.toml`) filled with names and facts from the
//! retrieved passages; chat answers are extracted from the passages with
//! citations. Both are clearly labelled offline.
//!
//! Invariants: output is a pure function of the task (and the tables), so
//! the same task always streams the same text; the stream is finite, never
//! fails, never sleeps, and its chunks concatenate to exactly the text.

mod answer;
mod scenario;
mod tables;
mod text;

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;

use crate::backends::{ChatModel, Chunk};
use crate::domain::{BackendError, GenerationTask, TaskMode};

pub use answer::answer;
pub use scenario::{Origin, ScenarioDraft, UsedEntity, write_scenario};
pub use tables::{Tables, TablesError};

/// Words per streamed chunk.
const WORDS_PER_CHUNK: usize = 3;

/// The offline generator as a chat model.
#[derive(Debug, Clone)]
pub struct OfflineModel {
    tables: Arc<Tables>,
}

impl OfflineModel {
    pub fn new(tables: Arc<Tables>) -> Self {
        Self { tables }
    }

    /// The whole text the model produces for `task`.
    pub fn render(&self, task: &GenerationTask) -> String {
        let reason = task.no_lore_reason.as_deref();
        match &task.mode {
            TaskMode::Scenario { prompt, seed } => {
                write_scenario(&self.tables, prompt, *seed, &task.passages, reason).markdown
            }
            TaskMode::Chat { question, .. } => answer(question, &task.passages, reason),
        }
    }
}

impl ChatModel for OfflineModel {
    fn generate(&self, task: GenerationTask) -> BoxStream<'static, Result<Chunk, BackendError>> {
        let chunks = chunk_words(&self.render(&task), WORDS_PER_CHUNK);
        futures::stream::iter(chunks.into_iter().map(|text| Ok(Chunk::Text(text)))).boxed()
    }
}

/// Splits `text` into pieces of `words` words each, every piece keeping the
/// whitespace that follows its words, so the pieces concatenate to `text`.
fn chunk_words(text: &str, words: usize) -> Vec<String> {
    let words = words.max(1);
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut count = 0;
    let mut in_word = false;
    for (index, c) in text.char_indices() {
        let is_space = c.is_whitespace();
        if !is_space && !in_word {
            if count == words {
                chunks.push(text[start..index].to_owned());
                start = index;
                count = 0;
            }
            count += 1;
        }
        in_word = !is_space;
    }
    if start < text.len() {
        chunks.push(text[start..].to_owned());
    }
    chunks
}

#[cfg(test)]
pub(crate) mod tests {
    use futures::executor::block_on_stream;

    use super::*;
    use crate::domain::{Entity, Passage};

    /// A passage for tests.
    pub(crate) fn passage(
        title: &str,
        source: &str,
        kind: &str,
        text: &str,
        entities: &[(&str, &str)],
    ) -> Passage {
        Passage {
            location: Default::default(),
            id: format!("{source}#0"),
            title: title.to_owned(),
            source: source.to_owned(),
            kind: Some(kind.to_owned()),
            heading: None,
            text: text.to_owned(),
            score: 1.0,
            entities: entities
                .iter()
                .map(|(name, kind)| Entity {
                    name: (*name).to_owned(),
                    kind: (*kind).to_owned(),
                })
                .collect(),
        }
    }

    fn model() -> OfflineModel {
        OfflineModel::new(Arc::new(Tables::parse(tables::tests::FIXTURE).unwrap()))
    }

    fn lore() -> Vec<Passage> {
        vec![passage(
            "The Shattered Waystone",
            "shattered-waystone.md",
            "place",
            "The **Shattered Waystone** is guarded by **Warden Ilsa Marrow**, who has kept its vigil for thirty winters.",
            &[
                ("the Shattered Waystone", "place"),
                ("Warden Ilsa Marrow", "npc"),
            ],
        )]
    }

    fn collect(model: &OfflineModel, task: GenerationTask) -> Vec<String> {
        block_on_stream(model.generate(task))
            .filter_map(|chunk| chunk.unwrap().text())
            .collect()
    }

    #[test]
    fn chunks_concatenate_to_the_text() {
        for text in [
            "",
            "one",
            "  lead\n\nand  trail  \n",
            "# Title\n\n*a* b c d e f g\n- x\n",
        ] {
            let chunks = chunk_words(text, 3);
            assert_eq!(chunks.concat(), text);
            assert!(chunks.iter().all(|c| !c.is_empty()));
            for chunk in &chunks {
                assert!(chunk.split_whitespace().count() <= 3, "{chunk:?}");
            }
        }
        assert_eq!(chunk_words("a b c d e", 2), ["a b ", "c d ", "e"]);
    }

    #[test]
    fn scenario_stream_matches_write_scenario() {
        let model = model();
        let tables = Tables::parse(tables::tests::FIXTURE).unwrap();
        let task = GenerationTask {
            mode: TaskMode::Scenario {
                prompt: "the waystone".to_owned(),
                seed: 42,
            },
            passages: lore(),
            no_lore_reason: None,
        };
        let chunks = collect(&model, task.clone());
        assert!(chunks.len() > 1);
        let expected = write_scenario(&tables, "the waystone", 42, &lore(), None).markdown;
        assert_eq!(chunks.concat(), expected);
        assert_eq!(
            collect(&model, task).concat(),
            expected,
            "not deterministic"
        );
    }

    #[test]
    fn chat_stream_matches_answer() {
        let model = model();
        let task = GenerationTask {
            mode: TaskMode::Chat {
                question: "who guards the waystone?".to_owned(),
                history: Vec::new(),
            },
            passages: lore(),
            no_lore_reason: None,
        };
        let chunks = collect(&model, task);
        assert!(chunks.len() > 1);
        let expected = answer("who guards the waystone?", &lore(), None);
        assert_eq!(chunks.concat(), expected);
        assert!(expected.contains("[1]"));

        let task = GenerationTask {
            mode: TaskMode::Chat {
                question: "who guards the waystone?".to_owned(),
                history: Vec::new(),
            },
            passages: Vec::new(),
            no_lore_reason: Some("retrieval timed out after 10 s".to_owned()),
        };
        assert_eq!(
            collect(&model, task).concat(),
            answer(
                "who guards the waystone?",
                &[],
                Some("retrieval timed out after 10 s")
            )
        );
    }
}
