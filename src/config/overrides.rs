//! Settings from `LOREWEAVE_*` environment variables and command-line flags
//! ([`Overrides`]), and how they are laid over a file's [`Config`]
//! ([`Config::apply`]).
//!
//! Invariants: switching a section to another provider never carries a key
//! meant for one server over to another (`api_key_env` is dropped between
//! network providers); the result of `apply` has passed validation.

use std::str::FromStr;

use super::ConfigError;
use super::schema::{Config, EmbeddingsProvider, RetrieverProvider, or_list};
use super::validate::validate_kb_name;

/// Settings from the environment or the command line; `None` leaves the file's
/// value. Layered file < environment < flags: `flags.or(env)`, then
/// [`Config::apply`].
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct Overrides {
    /// `PROVIDER[:MODEL]`, e.g. `ollama:llama3.2`.
    pub llm: Option<String>,
    pub llm_url: Option<String>,
    /// "local" or "hayhooks".
    pub retriever: Option<String>,
    pub retriever_url: Option<String>,
    /// `PROVIDER[:MODEL]`, e.g. `ollama:nomic-embed-text`.
    pub embeddings: Option<String>,
    pub embeddings_url: Option<String>,
    /// The knowledge base's name (`[kb] name`).
    pub kb: Option<String>,
}

impl Overrides {
    /// `LOREWEAVE_LLM`, `LOREWEAVE_LLM_URL`, `LOREWEAVE_RETRIEVER`,
    /// `LOREWEAVE_RETRIEVER_URL`, `LOREWEAVE_EMBEDDINGS`,
    /// `LOREWEAVE_EMBEDDINGS_URL`, `LOREWEAVE_KB`; empty values are ignored.
    pub fn from_env() -> Overrides {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`Overrides::from_env`], reading variables through `f`.
    pub fn from_lookup(f: impl Fn(&str) -> Option<String>) -> Overrides {
        let get = |name: &str| {
            f(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        Overrides {
            llm: get("LOREWEAVE_LLM"),
            llm_url: get("LOREWEAVE_LLM_URL"),
            retriever: get("LOREWEAVE_RETRIEVER"),
            retriever_url: get("LOREWEAVE_RETRIEVER_URL"),
            embeddings: get("LOREWEAVE_EMBEDDINGS"),
            embeddings_url: get("LOREWEAVE_EMBEDDINGS_URL"),
            kb: get("LOREWEAVE_KB"),
        }
    }

    /// Each setting from `self` when it has one, else from `lower`.
    pub fn or(self, lower: Overrides) -> Overrides {
        Overrides {
            llm: self.llm.or(lower.llm),
            llm_url: self.llm_url.or(lower.llm_url),
            retriever: self.retriever.or(lower.retriever),
            retriever_url: self.retriever_url.or(lower.retriever_url),
            embeddings: self.embeddings.or(lower.embeddings),
            embeddings_url: self.embeddings_url.or(lower.embeddings_url),
            kb: self.kb.or(lower.kb),
        }
    }
}

impl Config {
    /// Applies environment and flag overrides (merge them first with
    /// [`Overrides::or`]), then validates the result.
    ///
    /// `--llm PROVIDER[:MODEL]` sets the provider and, when given, the model.
    /// Switching to another provider resets `base_url` to the new provider's
    /// default and clears the model unless one is given; switching between
    /// two network providers also clears `api_key_env`, so a key meant for
    /// one server is never sent to another. `--embeddings` works the same.
    /// `--kb NAME` (or `LOREWEAVE_KB`) names the knowledge base; a name that
    /// [`validate_kb_name`] refuses is an error.
    pub fn apply(&mut self, o: &Overrides) -> Result<(), ConfigError> {
        if let Some(spec) = &o.llm {
            let llm = &mut self.llm;
            let model = switch_provider(
                spec,
                "--llm (or LOREWEAVE_LLM)",
                "ollama:llama3.2",
                &mut llm.provider,
                [&mut llm.base_url, &mut llm.model, &mut llm.api_key_env],
            )?;
            if let Some(model) = model {
                llm.model = model.to_string();
            }
        }
        if let Some(url) = &o.llm_url {
            self.llm.base_url = url.trim().to_string();
        }

        if let Some(spec) = &o.embeddings {
            let emb = &mut self.embeddings;
            let model = switch_provider(
                spec,
                "--embeddings (or LOREWEAVE_EMBEDDINGS)",
                "ollama:nomic-embed-text",
                &mut emb.provider,
                [&mut emb.base_url, &mut emb.model, &mut emb.api_key_env],
            )?;
            match model {
                Some(_) if emb.provider == EmbeddingsProvider::None => {
                    return Err(ConfigError::Invalid(
                        "--embeddings none takes no model".into(),
                    ));
                }
                Some(model) => emb.model = model.to_string(),
                None => {}
            }
        }
        if let Some(url) = &o.embeddings_url {
            self.embeddings.base_url = url.trim().to_string();
        }

        if let Some(spec) = &o.retriever {
            let spec = spec.trim();
            if spec.contains(':') {
                return Err(ConfigError::Invalid(format!(
                    "--retriever (or LOREWEAVE_RETRIEVER) wants a PROVIDER, {}; give a hayhooks URL with --retriever-url",
                    or_list(RetrieverProvider::ALL)
                )));
            }
            self.retriever.provider = spec.parse().map_err(|e| {
                ConfigError::Invalid(format!(
                    "--retriever (or LOREWEAVE_RETRIEVER) wants a PROVIDER: {e}"
                ))
            })?;
        }
        if let Some(url) = &o.retriever_url {
            self.retriever.url = url.trim().to_string();
        }
        if let Some(name) = &o.kb {
            let name = name.trim();
            validate_kb_name(name).map_err(|e| {
                ConfigError::Invalid(format!(
                    "--kb (or LOREWEAVE_KB) wants a knowledge base NAME: {e}"
                ))
            })?;
            self.kb.name = name.to_string();
        }
        self.validate()
    }
}

/// `--llm` / `--embeddings`: parse `PROVIDER[:MODEL]` into the section's
/// provider and return the model, if one was given. Switching to another
/// provider drops the section's `base_url` and `model`, and its
/// `api_key_env` when leaving a network provider (the default, first
/// variant is the local one), so a key meant for one server is never sent
/// to another.
fn switch_provider<'s, P>(
    spec: &'s str,
    flag: &str,
    example: &str,
    provider: &mut P,
    [base_url, model, api_key_env]: [&mut String; 3],
) -> Result<Option<&'s str>, ConfigError>
where
    P: FromStr<Err = String> + PartialEq + Copy + Default,
{
    let wants = || format!("{flag} wants PROVIDER[:MODEL], e.g. {example}");
    let (name, given) = split_spec(spec);
    let new: P = name
        .parse()
        .map_err(|e| ConfigError::Invalid(format!("{}: {e}", wants())))?;
    if new != *provider {
        base_url.clear();
        model.clear();
        if *provider != P::default() {
            api_key_env.clear();
        }
    }
    *provider = new;
    if given == Some("") {
        return Err(ConfigError::Invalid(format!(
            "{}: the model after `:` is empty",
            wants()
        )));
    }
    Ok(given)
}

/// "ollama:llama3.2:1b" -> ("ollama", Some("llama3.2:1b")): the model may
/// itself contain ':'.
fn split_spec(spec: &str) -> (&str, Option<&str>) {
    match spec.trim().split_once(':') {
        Some((provider, model)) => (provider.trim(), Some(model.trim())),
        None => (spec.trim(), None),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::{LlmProvider, parse};

    fn env(pairs: &[(&str, &str)]) -> Overrides {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Overrides::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn overrides_layer_file_then_environment_then_flags() {
        let file = "[llm]\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\nbase_url = \"http://vllm:8000/v1\"\n[retriever]\nprovider = \"hayhooks\"\nurl = \"http://file:1416/lore/run\"\n";
        let base = parse(file).unwrap();

        let environment = env(&[
            ("LOREWEAVE_LLM", "ollama:llama3.2"),
            ("LOREWEAVE_RETRIEVER_URL", "http://env:1416/lore/run"),
            ("LOREWEAVE_EMBEDDINGS", ""),
        ]);
        assert_eq!(environment.embeddings, None, "empty values are ignored");

        let mut c = base.clone();
        c.apply(&Overrides::default().or(environment.clone()))
            .unwrap();
        assert_eq!(c.llm.provider, LlmProvider::Ollama);
        assert_eq!(c.llm.model, "llama3.2");
        assert_eq!(
            c.llm.base_url, "",
            "a new provider gets its own default url"
        );
        assert_eq!(c.llm.endpoint().as_deref(), Some("http://127.0.0.1:11434"));
        assert_eq!(c.retriever.url, "http://env:1416/lore/run");
        assert_eq!(
            c.retriever.provider,
            RetrieverProvider::Hayhooks,
            "from the file"
        );

        let flags = Overrides {
            llm: Some("openai:gpt-4.1".into()),
            retriever: Some("local".into()),
            ..Overrides::default()
        };
        let mut c = base.clone();
        c.apply(&flags.or(environment)).unwrap();
        assert_eq!(c.llm.provider, LlmProvider::OpenAi);
        assert_eq!(c.llm.model, "gpt-4.1");
        assert_eq!(
            c.llm.base_url, "http://vllm:8000/v1",
            "same provider keeps the file's url"
        );
        assert_eq!(c.retriever.provider, RetrieverProvider::Local);
        assert_eq!(c.retriever.url, "http://env:1416/lore/run");
    }

    #[test]
    fn provider_model_specs_keep_colons_in_the_model() {
        let mut c = Config::default();
        c.apply(&Overrides {
            llm: Some("ollama:llama3.2:1b".into()),
            embeddings: Some("openai:text-embedding-3-small".into()),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(c.llm.provider, LlmProvider::Ollama);
        assert_eq!(c.llm.model, "llama3.2:1b");
        assert_eq!(c.embeddings.model, "text-embedding-3-small");
        assert_eq!(split_spec(" offline "), ("offline", None));
    }

    #[test]
    fn bad_overrides_say_what_is_wanted() {
        let bad = |o: Overrides| Config::default().apply(&o).unwrap_err().to_string();
        let e = bad(Overrides {
            llm: Some("gpt4".into()),
            ..Overrides::default()
        });
        assert!(
            e.contains("--llm") && e.contains("PROVIDER[:MODEL]") && e.contains("ollama:llama3.2"),
            "{e}"
        );
        let e = bad(Overrides {
            llm: Some("openai".into()),
            ..Overrides::default()
        });
        assert!(e.contains("needs a model"), "{e}");
        let e = bad(Overrides {
            llm: Some("ollama:".into()),
            ..Overrides::default()
        });
        assert!(e.contains("empty"), "{e}");
        let e = bad(Overrides {
            retriever: Some("hayhooks".into()),
            ..Overrides::default()
        });
        assert!(e.contains("--retriever-url"), "{e}");
        let e = bad(Overrides {
            llm_url: Some("not a url".into()),
            ..Overrides::default()
        });
        assert!(e.contains("base_url"), "{e}");
    }

    #[test]
    fn the_kb_name_comes_from_the_environment_or_a_flag_and_is_checked() {
        let environment = env(&[("LOREWEAVE_KB", " lore-2 ")]);
        assert_eq!(environment.kb.as_deref(), Some("lore-2"));

        let mut c = Config::default();
        c.apply(&Overrides::default().or(environment.clone()))
            .unwrap();
        assert_eq!(c.kb.name, "lore-2");

        let flags = Overrides {
            kb: Some("campaign".into()),
            ..Overrides::default()
        };
        let mut c = Config::default();
        c.apply(&flags.or(environment)).unwrap();
        assert_eq!(c.kb.name, "campaign", "a flag wins over the environment");

        let mut c = Config::default();
        let e = c
            .apply(&Overrides {
                kb: Some("../other".into()),
                ..Overrides::default()
            })
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--kb (or LOREWEAVE_KB)") && e.contains("'/'"),
            "{e}"
        );
        assert_eq!(c.kb.name, "default", "a refused name is not taken");
    }
}
