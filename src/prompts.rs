//! Prompt templates for language-model backends: one for RAG chat, one for
//! scenarios, shipped in `assets/prompts/` and overridable from the config.
//! Retrieved passages go into the prompt with their citation numbers, so the
//! model's `[n]` references point at the same passages the UI lists.
//!
//! Placeholders: `{passages}`, `{prompt}` (scenario) and `{question}`
//! (chat). Unknown placeholders are left as written.

use crate::domain::{GenerationTask, Passage, Role, TaskMode};

const CHAT: &str = include_str!("../assets/prompts/chat.md");
const SCENARIO: &str = include_str!("../assets/prompts/scenario.md");

/// One chat message for an LLM API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PromptMessage {
    /// "system", "user" or "assistant".
    pub role: &'static str,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompts {
    pub chat: String,
    pub scenario: String,
}

impl Default for Prompts {
    fn default() -> Self {
        Self {
            chat: CHAT.to_string(),
            scenario: SCENARIO.to_string(),
        }
    }
}

impl Prompts {
    /// The messages to send for `task`.
    pub fn messages(&self, task: &GenerationTask) -> Vec<PromptMessage> {
        let passages = passages_block(&task.passages, task.no_lore_reason.as_deref());
        match &task.mode {
            TaskMode::Chat { question, history } => {
                let system = self
                    .chat
                    .replace("{passages}", &passages)
                    .replace("{question}", question);
                let mut messages = vec![PromptMessage {
                    role: "system",
                    content: system.trim_end().to_string(),
                }];
                for turn in history {
                    messages.push(PromptMessage {
                        role: match turn.role {
                            Role::User => "user",
                            Role::Assistant => "assistant",
                        },
                        content: turn.text.clone(),
                    });
                }
                messages.push(PromptMessage {
                    role: "user",
                    content: question.clone(),
                });
                messages
            }
            TaskMode::Scenario { prompt, .. } => {
                let content = self
                    .scenario
                    .replace("{passages}", &passages)
                    .replace("{prompt}", prompt);
                vec![PromptMessage {
                    role: "user",
                    content: content.trim_end().to_string(),
                }]
            }
        }
    }
}

/// "[1] Title (source › trail · lines)\ntext" blocks, markup stripped; or why there are none.
pub fn passages_block(passages: &[Passage], no_lore: Option<&str>) -> String {
    if passages.is_empty() {
        let why = no_lore.unwrap_or("no lore matched");
        return format!("(none: {why}. Say that no lore was available, and do not cite.)");
    }
    passages
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let place = if p.location.is_unknown() {
                p.source.clone()
            } else {
                format!("{} › {}", p.source, p.location)
            };
            format!(
                "[{}] {} ({place})\n{}",
                i + 1,
                p.title,
                p.text.replace("**", "").trim()
            )
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ChatTurn;

    fn passage(n: usize) -> Passage {
        Passage {
            location: Default::default(),
            id: format!("p{n}"),
            title: format!("Title {n}"),
            source: format!("doc{n}.md"),
            kind: None,
            heading: None,
            text: format!("The **Name {n}** text."),
            score: 1.0,
            entities: vec![],
        }
    }

    #[test]
    fn chat_prompt_numbers_passages_and_keeps_history_order() {
        let task = GenerationTask {
            mode: TaskMode::Chat {
                question: "who?".into(),
                history: vec![
                    ChatTurn {
                        role: Role::User,
                        text: "earlier".into(),
                    },
                    ChatTurn {
                        role: Role::Assistant,
                        text: "answer".into(),
                    },
                ],
            },
            passages: vec![passage(1), passage(2)],
            no_lore_reason: None,
        };
        let m = Prompts::default().messages(&task);
        let roles: Vec<&str> = m.iter().map(|m| m.role).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        assert!(
            m[0].content
                .contains("[1] Title 1 (doc1.md)\nThe Name 1 text.")
        );
        assert!(m[0].content.contains("[2] Title 2 (doc2.md)"));
        assert!(!m[0].content.contains("{passages}"));
        assert_eq!(m[3].content, "who?");
    }

    #[test]
    fn scenario_prompt_without_lore_says_why() {
        let task = GenerationTask {
            mode: TaskMode::Scenario {
                prompt: "the ford".into(),
                seed: 1,
            },
            passages: vec![],
            no_lore_reason: Some("retrieval timed out after 10 s".into()),
        };
        let m = Prompts::default().messages(&task);
        assert_eq!(m.len(), 1);
        assert!(m[0].content.contains("Write one scenario about: the ford"));
        assert!(
            m[0].content
                .contains("none: retrieval timed out after 10 s")
        );
    }
}
