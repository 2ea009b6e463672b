//! The offline generator's random tables (`assets/tables/scenario.toml`):
//! parsing and validation. Invariants of a parsed [`Tables`]: every list
//! exists and is non-empty, no entry is blank, template lists hold only the
//! known placeholders with balanced braces, and value lists (adjectives,
//! nouns, times, weather, the `*_names` lists) hold no braces at all, so
//! filling a template once never leaves a `{` or `}` behind.

use thiserror::Error;

/// The embedded tables file, shipped inside the binary.
const EMBEDDED: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/tables/scenario.toml"
));

/// The placeholders a template may contain, without braces.
pub(crate) const PLACEHOLDERS: [&str; 9] = [
    "place",
    "npc",
    "faction",
    "creature",
    "relic",
    "adjective",
    "noun",
    "time",
    "weather",
];

/// One list of the tables file, by its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum List {
    Adjectives,
    Nouns,
    Titles,
    Times,
    Weather,
    Settings,
    Hooks,
    Encounters,
    NpcRoles,
    Complications,
    Rewards,
    NpcNames,
    PlaceNames,
    FactionNames,
    CreatureNames,
    RelicNames,
}

impl List {
    pub(crate) const ALL: [List; 16] = [
        List::Adjectives,
        List::Nouns,
        List::Titles,
        List::Times,
        List::Weather,
        List::Settings,
        List::Hooks,
        List::Encounters,
        List::NpcRoles,
        List::Complications,
        List::Rewards,
        List::NpcNames,
        List::PlaceNames,
        List::FactionNames,
        List::CreatureNames,
        List::RelicNames,
    ];

    /// The list's key in the TOML file.
    pub(crate) const fn key(self) -> &'static str {
        match self {
            List::Adjectives => "adjectives",
            List::Nouns => "nouns",
            List::Titles => "titles",
            List::Times => "times",
            List::Weather => "weather",
            List::Settings => "settings",
            List::Hooks => "hooks",
            List::Encounters => "encounters",
            List::NpcRoles => "npc_roles",
            List::Complications => "complications",
            List::Rewards => "rewards",
            List::NpcNames => "npc_names",
            List::PlaceNames => "place_names",
            List::FactionNames => "faction_names",
            List::CreatureNames => "creature_names",
            List::RelicNames => "relic_names",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }

    /// Whether entries are templates (may hold placeholders) rather than
    /// values substituted into templates.
    const fn is_template(self) -> bool {
        matches!(
            self,
            List::Titles
                | List::Settings
                | List::Hooks
                | List::Encounters
                | List::NpcRoles
                | List::Complications
                | List::Rewards
        )
    }
}

/// Why a tables file was rejected.
#[derive(Debug, Error)]
pub enum TablesError {
    #[error("scenario tables are not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("table `{0}` is missing")]
    Missing(&'static str),
    #[error("table `{0}` must be an array of strings")]
    NotStrings(&'static str),
    #[error("table `{0}` is empty")]
    Empty(&'static str),
    #[error("table `{0}` has a blank entry")]
    BlankEntry(&'static str),
    #[error("unknown placeholder \"{{{placeholder}}}\" in table `{table}`")]
    UnknownPlaceholder {
        placeholder: String,
        table: &'static str,
    },
    #[error("unbalanced brace in table `{table}`: {entry:?}")]
    UnbalancedBrace { table: &'static str, entry: String },
    #[error("table `{table}` holds values, so it cannot contain placeholders or braces: {entry:?}")]
    BraceInValue { table: &'static str, entry: String },
}

/// The parsed, validated tables.
#[derive(Debug, Clone)]
pub struct Tables {
    lists: Vec<Vec<String>>,
}

impl Tables {
    /// Parses and validates a tables file (see the module invariants).
    pub fn parse(text: &str) -> Result<Tables, TablesError> {
        let root: toml::Table = toml::from_str(text)?;
        let mut lists = Vec::with_capacity(List::ALL.len());
        for list in List::ALL {
            let key = list.key();
            let value = root.get(key).ok_or(TablesError::Missing(key))?;
            let array = value.as_array().ok_or(TablesError::NotStrings(key))?;
            if array.is_empty() {
                return Err(TablesError::Empty(key));
            }
            let mut entries = Vec::with_capacity(array.len());
            for item in array {
                let entry = item.as_str().ok_or(TablesError::NotStrings(key))?.trim();
                if entry.is_empty() {
                    return Err(TablesError::BlankEntry(key));
                }
                if list.is_template() {
                    check_template(key, entry)?;
                } else if entry.contains(['{', '}']) {
                    return Err(TablesError::BraceInValue {
                        table: key,
                        entry: entry.to_owned(),
                    });
                }
                entries.push(entry.to_owned());
            }
            lists.push(entries);
        }
        Ok(Tables { lists })
    }

    /// The tables shipped in `assets/tables/scenario.toml`.
    pub fn embedded() -> Result<Tables, TablesError> {
        Tables::parse(EMBEDDED)
    }

    /// Whether `name` appears verbatim in one of the fallback name lists.
    pub fn has_fallback_name(&self, name: &str) -> bool {
        [
            List::NpcNames,
            List::PlaceNames,
            List::FactionNames,
            List::CreatureNames,
            List::RelicNames,
        ]
        .into_iter()
        .any(|list| self.list(list).iter().any(|entry| entry == name))
    }

    /// The entries of one list; never empty.
    pub(crate) fn list(&self, list: List) -> &[String] {
        self.lists.get(list.index()).map_or(&[], Vec::as_slice)
    }
}

/// Checks that every `{...}` in a template names a known placeholder and
/// that braces are balanced and not nested.
fn check_template(table: &'static str, entry: &str) -> Result<(), TablesError> {
    let unbalanced = || TablesError::UnbalancedBrace {
        table,
        entry: entry.to_owned(),
    };
    let mut rest = entry;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(unbalanced());
        }
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or_else(unbalanced)?;
        let name = &after[..close];
        if name.contains('{') {
            return Err(unbalanced());
        }
        if !PLACEHOLDERS.contains(&name) {
            return Err(TablesError::UnknownPlaceholder {
                placeholder: name.to_owned(),
                table,
            });
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small but complete tables file for tests that must not depend on
    /// the shipped assets.
    pub(crate) const FIXTURE: &str = r#"
adjectives = ["ashen", "drowned", "silent", "gilded", "hollow", "burning"]
nouns = ["vigil", "bargain", "descent", "crown", "lantern", "reckoning"]
titles = [
    "The {adjective} {noun} of {place}",
    "{relic} and the {adjective} {noun}",
    "Shadows over {place}",
    "The {noun} of {faction}",
    "What {npc} Buried",
]
times = ["at dusk", "before dawn", "on the longest night", "at the turn of the tide"]
weather = ["a cold drizzle", "thick fog", "a howling gale", "still, heavy heat"]
settings = [
    "{place}, {time}, under {weather}. The air smells of {noun}.",
    "The party reaches {place} {time}; {weather} hides the road behind them.",
    "Word of an {adjective} {noun} draws the party to {place} {time}.",
]
hooks = [
    "{npc} begs the party to recover {relic} before {faction} finds it.",
    "A dying courier carries a map to {place} and a warning about {creature}.",
    "{faction} offers gold to anyone who will escort {npc} to {place}.",
    "The party wakes {time} to find {relic} missing and {npc} gone.",
    "Rumour says a {creature} nests beneath {place}.",
]
encounters = [
    "A {creature} bursts from the {noun} {time}.",
    "Agents of {faction} demand a toll at {place}.",
    "{npc} bargains for safe passage, lying about {relic}.",
    "An {adjective} shrine hides a trap guarding {relic}.",
    "A {creature} stalks the party through {weather}.",
]
npc_roles = [
    "a guide who knows the back ways into {place}",
    "an agent of {faction}, hungry for {relic}",
    "a scholar obsessed with the {adjective} {noun}",
    "a rival of {npc}, quick to anger",
]
complications = [
    "{faction} is already on site, and they outnumber the party.",
    "{weather} rolls in {time}, cutting the party off from {place}.",
    "{npc} has been lying from the start.",
]
rewards = [
    "{relic}, and the gratitude of {npc}.",
    "A purse of gold and a favour owed by {faction}.",
    "A map to {place}, marked with an {adjective} sign.",
]
npc_names = ["Odo Fenwick", "Marta Quill", "Brother Anselm", "Yara Tenn"]
place_names = ["the Salt Hollows", "Greywater Ford", "the Ninefold Stair"]
faction_names = ["the Lantern Guild", "the Ashen Court", "the Tidewardens"]
creature_names = ["ghoul", "marsh drake", "owlbear"]
relic_names = ["the Amber Key", "the Drowned Bell", "the Ninth Map"]
"#;

    #[test]
    fn fixture_parses() {
        let tables = Tables::parse(FIXTURE).unwrap();
        assert_eq!(tables.list(List::Titles).len(), 5);
        assert!(tables.has_fallback_name("Odo Fenwick"));
        assert!(tables.has_fallback_name("the Drowned Bell"));
        assert!(!tables.has_fallback_name("Odo"));
        assert!(!tables.has_fallback_name("ashen"));
    }

    #[test]
    fn embedded_tables_parse() {
        let tables = Tables::embedded().unwrap();
        for list in List::ALL {
            assert!(!tables.list(list).is_empty(), "{}", list.key());
        }
    }

    #[test]
    fn rejects_unknown_placeholder() {
        let text = FIXTURE.replace("Shadows over {place}", "Shadows over {foo}");
        let err = Tables::parse(&text).unwrap_err();
        assert!(matches!(err, TablesError::UnknownPlaceholder { .. }));
        assert_eq!(
            err.to_string(),
            "unknown placeholder \"{foo}\" in table `titles`"
        );
    }

    #[test]
    fn rejects_empty_list() {
        let start = FIXTURE.find("hooks = [").unwrap();
        let end = start + FIXTURE[start..].find("]\n").unwrap() + 1;
        let text = format!("{}hooks = []{}", &FIXTURE[..start], &FIXTURE[end..]);
        let err = Tables::parse(&text).unwrap_err();
        assert!(matches!(err, TablesError::Empty("hooks")));
        assert_eq!(err.to_string(), "table `hooks` is empty");
    }

    #[test]
    fn rejects_missing_list_bad_toml_and_stray_braces() {
        let text = FIXTURE.replace("rewards = [", "rewardz = [");
        let err = Tables::parse(&text).unwrap_err();
        assert_eq!(err.to_string(), "table `rewards` is missing");

        let err = Tables::parse("adjectives = [").unwrap_err();
        assert!(matches!(err, TablesError::Toml(_)), "{err}");

        let text = FIXTURE.replace("Shadows over {place}", "Shadows over {place");
        let err = Tables::parse(&text).unwrap_err();
        assert!(
            matches!(
                err,
                TablesError::UnbalancedBrace {
                    table: "titles",
                    ..
                }
            ),
            "{err}"
        );

        let text = FIXTURE.replace("\"Greywater Ford\"", "\"Greywater {place}\"");
        let err = Tables::parse(&text).unwrap_err();
        assert!(
            matches!(
                err,
                TablesError::BraceInValue {
                    table: "place_names",
                    ..
                }
            ),
            "{err}"
        );

        let text = FIXTURE.replace("\"Yara Tenn\"", "\"  \"");
        let err = Tables::parse(&text).unwrap_err();
        assert_eq!(err.to_string(), "table `npc_names` has a blank entry");

        let text = FIXTURE.replace("\"Yara Tenn\"", "3");
        let err = Tables::parse(&text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "table `npc_names` must be an array of strings"
        );
    }
}
