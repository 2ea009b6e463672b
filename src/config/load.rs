//! The configuration file on disk: where it is (`default_path`,
//! `resolve_path`), reading it (`load`), writing the commented default
//! (`init`), and reading the prompt templates it names.
//!
//! Invariants: a missing file means the defaults unless it was named with
//! `--config`; `init` never replaces a file without `force`, and there is no
//! window between checking for one and writing.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::schema::Config;
use super::{ConfigError, parse};
use crate::prompts::Prompts;

/// The commented default configuration that `config init` writes.
pub const DEFAULT_TOML: &str = include_str!("../../assets/config.toml");

/// The file name inside the configuration directory.
pub const FILE_NAME: &str = "config.toml";

/// `$XDG_CONFIG_HOME/loreweave/config.toml` (or the platform's equivalent);
/// `None` when there is no home directory.
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "loreweave").map(|d| d.config_dir().join(FILE_NAME))
}

/// Where the config is read from: the flag, else the default path.
pub fn resolve_path(flag: Option<&Path>) -> Option<PathBuf> {
    flag.map(Path::to_path_buf).or_else(default_path)
}

/// Reads and parses the file at `path`. A missing file is the defaults,
/// unless it was named explicitly (`--config`). Relative prompt template
/// paths are taken relative to the file's directory.
pub fn load(path: Option<&Path>, explicit: bool) -> Result<Config, ConfigError> {
    let Some(path) = path else {
        return if explicit {
            Err(ConfigError::Invalid(
                "no configuration file was named".into(),
            ))
        } else {
            Ok(Config::default())
        };
    };
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return if explicit {
                Err(ConfigError::NotFound {
                    path: path.to_path_buf(),
                })
            } else {
                Ok(Config::default())
            };
        }
        Err(source) => {
            return Err(ConfigError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut config = parse(&text)?;
    let dir = path.parent().unwrap_or(Path::new(""));
    for template in [&mut config.prompts.chat, &mut config.prompts.scenario] {
        let trimmed = template.trim();
        if trimmed.is_empty() {
            continue;
        }
        let expanded = expand_home(trimmed);
        let resolved = if expanded.is_relative() {
            dir.join(expanded)
        } else {
            expanded
        };
        *template = resolved.to_string_lossy().into_owned();
    }
    Ok(config)
}

/// `config init`: writes the commented default to `path`, creating its
/// directory; an existing file is replaced only with `force`.
pub fn init(path: &Path, force: bool) -> Result<PathBuf, ConfigError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ConfigError::Io { path, source }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        // create_new: no window between "does it exist" and writing.
        options.create_new(true);
    }
    let mut file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(ConfigError::Exists {
                path: path.to_path_buf(),
            });
        }
        Err(source) => return Err(io(path)(source)),
    };
    file.write_all(DEFAULT_TOML.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io(path))?;
    Ok(path.to_path_buf())
}

impl Config {
    /// The prompt templates: built-in, or read from the files named in
    /// `[prompts]`.
    pub fn prompts(&self) -> Result<Prompts, ConfigError> {
        let mut prompts = Prompts::default();
        if let Some(text) = read_template(&self.prompts.chat)? {
            prompts.chat = text;
        }
        if let Some(text) = read_template(&self.prompts.scenario)? {
            prompts.scenario = text;
        }
        Ok(prompts)
    }
}

fn read_template(path: &str) -> Result<Option<String>, ConfigError> {
    if path.trim().is_empty() {
        return Ok(None);
    }
    let path = expand_home(path.trim());
    let text = fs::read_to_string(&path).map_err(|source| ConfigError::Io {
        path: path.clone(),
        source,
    })?;
    if text.trim().is_empty() {
        return Err(ConfigError::Invalid(format!(
            "prompt template {} is empty",
            path.display()
        )));
    }
    Ok(Some(text))
}

/// "~/x" is x in the home directory.
fn expand_home(path: &str) -> PathBuf {
    if let Some(rest) = path.strip_prefix("~/")
        && let Some(dirs) = directories::BaseDirs::new()
    {
        return dirs.home_dir().join(rest);
    }
    PathBuf::from(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_a_parsable_file_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/loreweave/config.toml");
        assert_eq!(init(&path, false).unwrap(), path);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(parse(&text).unwrap(), Config::default());

        fs::write(&path, "[llm]\n").unwrap();
        let e = init(&path, false).unwrap_err();
        assert!(matches!(e, ConfigError::Exists { .. }));
        assert!(e.to_string().contains("--force"), "{e}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "[llm]\n", "untouched");
        init(&path, true).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), DEFAULT_TOML);
    }

    #[test]
    fn load_missing_default_is_defaults_but_missing_explicit_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.toml");
        assert_eq!(load(Some(&missing), false).unwrap(), Config::default());
        assert!(matches!(
            load(Some(&missing), true),
            Err(ConfigError::NotFound { .. })
        ));
        assert_eq!(load(None, false).unwrap(), Config::default());

        let bad = dir.path().join("bad.toml");
        fs::write(&bad, "[llm]\nmodle = 1\n").unwrap();
        let e = load(Some(&bad), true).unwrap_err();
        assert_eq!(e.diagnostics()[0].line, 2);
        assert_eq!(resolve_path(Some(&bad)), Some(bad.clone()));
    }

    #[test]
    fn prompt_templates_come_from_files_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("chat.md"),
            "Lore: {passages}\nQ: {question}\n",
        )
        .unwrap();
        let path = dir.path().join("config.toml");
        fs::write(&path, "[prompts]\nchat = \"chat.md\"\n").unwrap();
        let c = load(Some(&path), true).unwrap();
        let p = c.prompts().unwrap();
        assert_eq!(p.chat, "Lore: {passages}\nQ: {question}\n");
        assert_eq!(p.scenario, Prompts::default().scenario);

        fs::write(&path, "[prompts]\nscenario = \"gone.md\"\n").unwrap();
        let e = load(Some(&path), true).unwrap().prompts().unwrap_err();
        assert!(e.to_string().contains("gone.md"), "{e}");
    }
}
